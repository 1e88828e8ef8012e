//! The HTTP API over a real socket: status codes, problem+json codes, idempotency, limits.

mod common;

use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use xiezhi_core::{Service, ServiceConfig, SystemClock};
use xiezhi_store_sqlite::SqliteStore;

struct Api {
    base: String,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Api {
    start_with(ServiceConfig::default()).await
}

async fn start_with(config: ServiceConfig) -> Api {
    let (base, _service, dir) = common::start(config).await;
    Api { base, client: common::client_with(common::ADMIN_KEY), _dir: dir }
}

impl Api {
    async fn post(&self, path: &str, body: Value, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        split(request.send().await.unwrap()).await
    }

    async fn post_raw(&self, path: &str, body: String) -> (StatusCode, Value) {
        let request =
            self.client.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body);
        split(request.send().await.unwrap()).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        split(self.client.put(format!("{}{path}", self.base)).json(&body).send().await.unwrap()).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        split(self.client.delete(format!("{}{path}", self.base)).send().await.unwrap()).await
    }

    /// The one-time code the user's phone received for `challenge_id`. The inbox says a code
    /// was sent and never shows it.
    async fn code_for(&self, line_id: &str, challenge_id: &str) -> String {
        let code = common::phone().code_for(challenge_id).unwrap_or_else(|| panic!("no code sent for {challenge_id}"));
        let (status, inbox) = self.get(&format!("/v1/credit-lines/{line_id}/notifications")).await;
        assert_eq!(status, StatusCode::OK, "{inbox}");
        let text = inbox.to_string();
        assert!(text.contains(challenge_id), "the inbox tells of the code: {text}");
        assert!(!text.contains(&code), "the inbox never shows the code: {text}");
        code
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        split(self.client.get(format!("{}{path}", self.base)).send().await.unwrap()).await
    }

    async fn merchant(&self) -> Value {
        let (status, body) = self
            .post(
                "/v1/merchants",
                json!({"name": "Lotus Market", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn line(&self, limit: &str) -> Value {
        let (status, body) =
            self.post("/v1/credit-lines", json!({"user_id": "u1", "currency": "CNY", "limit": limit, "profile": {"birth_date": "1990-04-01", "kyc_level": 2, "region": "CN-SH"}}), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

async fn split(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let problem = response.headers().get("content-type").is_some_and(|v| v == "application/problem+json");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        assert!(problem, "error {status} is not problem+json: {body}");
        assert!(body["code"].is_string(), "problem without code: {body}");
    }
    (status, body)
}

#[tokio::test]
async fn scan_to_pay_over_http() {
    let api = start().await;
    let merchant = api.merchant().await;
    let qr = merchant["qr_payload"].as_str().unwrap().to_owned();
    assert!(qr.starts_with("000201010211"));
    let line = api.line("1000.00").await;
    let line_id = line["id"].as_str().unwrap();
    assert_eq!(line["available"], "1000.00");

    let (status, body) = api.post("/v1/payments", json!({"credit_line_id": line_id, "qr_payload": qr}), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("amount_required")));

    let (status, payment) = api
        .post("/v1/payments", json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "88.80", "context": {"device_id": "d1", "ip": "203.0.113.9"}}), Some("pay-1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "authorized");
    assert_eq!(payment["decision"]["outcome"], "approve");
    assert_eq!(payment["decision"]["reason_codes"], json!([]));
    let id = payment["id"].as_str().unwrap();

    let (_, fetched) = api.get(&format!("/v1/payments/{id}")).await;
    assert_eq!(fetched["amount"], "88.80");
    let (_, line_now) = api.get(&format!("/v1/credit-lines/{line_id}")).await;
    assert_eq!((line_now["available"].as_str(), line_now["held"].as_str()), (Some("911.20"), Some("88.80")));

    let (status, captured) = api.post(&format!("/v1/payments/{id}/capture"), json!({"amount": "80.00"}), None).await;
    assert_eq!((status, captured["status"].as_str()), (StatusCode::OK, Some("captured")));
    let (status, refunded) = api.post(&format!("/v1/payments/{id}/refunds"), json!({"amount": "80.00"}), None).await;
    assert_eq!((status, refunded["status"].as_str()), (StatusCode::CREATED, Some("refunded")));
    let (status, body) = api.post(&format!("/v1/payments/{id}/void"), json!({}), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_payment_state")));

    // Over the limit: declined with a reason code, not an error.
    let (status, declined) = api
        .post(
            "/v1/payments",
            json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "5000", "context": {"device_id": "d1"}}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(declined["status"], "declined");
    assert_eq!(declined["decision"]["outcome"], "decline");
    assert_eq!(declined["decision"]["reason_codes"][0], "insufficient_credit", "{declined}");
    // Every figure quoted says where it comes from, the lower amount's too.
    assert_eq!(
        declined["decision"]["explanation"]["en"],
        "This payment did not go through. This payment of 5000.00 CNY is more than your available credit of \
         1000.00 CNY (your 1000.00 CNY limit less what you owe and what is on hold). You can pay up to 1000.00 CNY \
         now: that is your available credit."
    );
    assert_eq!(
        declined["decision"]["explanation"]["zh"],
        "这笔支付未能完成。这笔支付 5000.00 CNY 超过了您的可用额度 1000.00 CNY（即您的额度 1000.00 CNY \
         减去待还款和冻结中的金额）。现在最多可支付 1000.00 CNY：这是您的可用额度。"
    );
    assert_eq!(declined["decision"]["recovery"][0], json!({"action": "lower_amount", "max_amount": "1000.00"}));

    // Repayment.
    let (_, p2) =
        api.post("/v1/payments", json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "10"}), None).await;
    let p2 = p2["id"].as_str().unwrap();
    api.post(&format!("/v1/payments/{p2}/capture"), json!({}), None).await;
    let (status, repayment) =
        api.post(&format!("/v1/credit-lines/{line_id}/repayments"), json!({"amount": "10.00"}), None).await;
    assert_eq!(status, StatusCode::CREATED, "{repayment}");
    assert_eq!(repayment["credit_line"]["available"], "1000.00");

    // Dynamic QR.
    let mid = merchant["id"].as_str().unwrap();
    let (status, dynamic) =
        api.post(&format!("/v1/merchants/{mid}/qr"), json!({"amount": "12.30", "bill_number": "INV-1"}), None).await;
    assert_eq!(status, StatusCode::CREATED, "{dynamic}");
    let dynamic_qr = dynamic["qr_payload"].as_str().unwrap();
    let (status, body) = api
        .post("/v1/payments", json!({"credit_line_id": line_id, "qr_payload": dynamic_qr, "amount": "12.31"}), None)
        .await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("amount_mismatch")));
    let (status, body) =
        api.post("/v1/payments", json!({"credit_line_id": line_id, "qr_payload": dynamic_qr}), None).await;
    assert_eq!((status, body["amount"].as_str()), (StatusCode::CREATED, Some("12.30")));
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let api = start().await;
    let merchant = api.merchant().await;
    let qr = merchant["qr_payload"].as_str().unwrap().to_owned();
    let line = api.line("100").await;
    let line_id = line["id"].as_str().unwrap();
    let pay = |amount: Value| json!({"credit_line_id": line_id, "qr_payload": qr, "amount": amount});

    for (amount, code) in [
        (json!("1.001"), "invalid_amount"),
        (json!("-1"), "invalid_amount"),
        (json!("99999999999999999999"), "invalid_amount"),
        (json!("1e3"), "invalid_amount"),
        (json!(12.5), "invalid_type"),
    ] {
        let (status, body) = api.post("/v1/payments", pay(amount.clone()), None).await;
        assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{amount}: {body}");
    }

    let (status, body) = api
        .post(
            "/v1/payments",
            json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "1", "colour": "red"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str(), body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_field"), Some("colour"))
    );
    let (status, body) = api
        .post(
            "/v1/payments",
            json!({"credit_line_id": line_id, "qr_payload": qr, "context": {"gps": "x"}, "amount": "1"}),
            None,
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("gps")));
    let (status, body) = api.post_raw("/v1/payments", "{not json".into()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_json")));
    // A value of the wrong type names its field and what the field takes.
    for (body, field, expected) in [
        (json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "1", "context": "phone"}), "context", "struct"),
        (json!({"credit_line_id": line_id, "qr_payload": qr, "amount": true}), "amount", "a string"),
        (json!({"credit_line_id": 7, "qr_payload": qr, "amount": "1"}), "credit_line_id", "a string"),
    ] {
        let (status, problem) = api.post("/v1/payments", body, None).await;
        assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_type")), "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(expected) && !detail.contains("amounts are") || field == "amount", "{detail}");
    }
    // A malformed tip is invalid_amount, even where the code does not prompt for one.
    for tip in ["-1.00", "1.001"] {
        let body = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "1", "tip": tip});
        let (status, problem) = api.post("/v1/payments", body, None).await;
        assert_eq!(
            (status, problem["code"].as_str(), problem["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_amount"), Some("tip")),
            "{problem}"
        );
    }
    let (status, body) = api.post_raw("/v1/payments", format!("{{\"qr_payload\": \"{}\"}}", "x".repeat(70_000))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));

    // Broken QR codes name the defect.
    let bad_crc = format!("{}0000", &qr[..qr.len() - 4]);
    let (status, body) =
        api.post("/v1/payments", json!({"credit_line_id": line_id, "qr_payload": bad_crc, "amount": "1"}), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_qr")));
    assert_eq!(body["qr_error"]["code"], "bad_crc");
    assert_eq!(body["qr_error"]["field_id"], "63");
    let pix = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
    let (status, body) =
        api.post("/v1/payments", json!({"credit_line_id": line_id, "qr_payload": pix, "amount": "1"}), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("merchant_not_accepted")));

    let (status, body) =
        api.post("/v1/credit-lines", json!({"user_id": "u", "currency": "XYZ", "limit": "1"}), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unknown_currency")));
    let (status, body) = api.get("/v1/payments/pay_nope").await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("payment_not_found")));
    let (status, body) = api
        .post(
            "/v1/payments",
            json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "1", "context": {"ip": "not-an-ip"}}),
            None,
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("context.ip")));
}

#[tokio::test]
async fn idempotency_keys_over_http() {
    let api = start().await;
    let merchant = api.merchant().await;
    let qr = merchant["qr_payload"].as_str().unwrap().to_owned();
    let line = api.line("100").await;
    let line_id = line["id"].as_str().unwrap();
    let body = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "30"});
    let (s1, first) = api.post("/v1/payments", body.clone(), Some("idem-1")).await;
    let (s2, second) = api.post("/v1/payments", body.clone(), Some("idem-1")).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, second);
    let (_, line_now) = api.get(&format!("/v1/credit-lines/{line_id}")).await;
    assert_eq!(line_now["available"], "70.00");
    let other = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "31"});
    let (status, problem) = api.post("/v1/payments", other, Some("idem-1")).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")));
    // Concurrent retries with one key create one payment.
    let mut handles = Vec::new();
    for _ in 0..8 {
        let client = api.client.clone();
        let url = format!("{}/v1/payments", api.base);
        let body = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "5"});
        handles.push(tokio::spawn(async move {
            let r = client.post(url).header("Idempotency-Key", "burst").json(&body).send().await.unwrap();
            r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (_, line_now) = api.get(&format!("/v1/credit-lines/{line_id}")).await;
    assert_eq!(line_now["available"], "65.00");
}

#[tokio::test]
async fn qr_images_health_and_metrics() {
    let api = start().await;
    let merchant = api.merchant().await;
    let id = merchant["id"].as_str().unwrap();
    let png = api.client.get(format!("{}/v1/merchants/{id}/qr?format=png", api.base)).send().await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[1..4], b"PNG");
    let svg = api.client.get(format!("{}/v1/merchants/{id}/qr?format=svg", api.base)).send().await.unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let (status, body) = api.get(&format!("/v1/merchants/{id}/qr?format=gif")).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("format")));
    let (status, health) = api.get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));
    let metrics = api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("xiezhi_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/merchants\""), "{metrics}");
    assert!(metrics.contains("xiezhi_commit_duration_us"), "{metrics}");
}

/// Step-up: a large payment from a new device waits for a one-time code; the code from the
/// user's inbox completes it, and the decision record explains it.
#[tokio::test]
async fn step_up_is_completed_with_the_code_from_the_inbox() {
    let api = start().await;
    let qr = api.merchant().await["qr_payload"].as_str().unwrap().to_owned();
    let line = api.line("20000.00").await;
    let line_id = line["id"].as_str().unwrap();
    let body = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "1500.00", "context": {"device_id": "new-phone", "ip": "198.51.100.7", "network": "4g"}});
    let (status, payment) = api.post("/v1/payments", body, Some("big-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(payment["status"], "challenge_required", "{payment}");
    let decision = &payment["decision"];
    assert_eq!(decision["outcome"], "step_up");
    assert!(decision["reason_codes"].as_array().unwrap().contains(&json!("new_device_high_amount")), "{decision}");
    assert!(decision["explanation"]["en"].as_str().unwrap().contains("device you have not used before"));
    assert!(decision["explanation"]["zh"].as_str().unwrap().contains("新设备"));
    let challenge_id = decision["challenge_id"].as_str().unwrap();
    assert_eq!(decision["recovery"][0]["action"], "one_time_code");
    assert_eq!(decision["recovery"][0]["challenge_id"], challenge_id);
    assert!(decision["expires_at"].is_string());
    let (_, line_now) = api.get(&format!("/v1/credit-lines/{line_id}")).await;
    assert_eq!(line_now["held"], "0.00", "no credit is held while the challenge waits");

    // A wrong code uses an attempt; the right one authorizes the payment.
    let (status, wrong) = api.post(&format!("/v1/challenges/{challenge_id}"), json!({"code": "000000x"}), None).await;
    assert_eq!((status, wrong["field"].as_str()), (StatusCode::BAD_REQUEST, Some("code")));
    let code = api.code_for(line_id, challenge_id).await;
    let wrong_code = if code == "111111" { "222222" } else { "111111" };
    let (_, after_wrong) = api.post(&format!("/v1/challenges/{challenge_id}"), json!({"code": wrong_code}), None).await;
    assert_eq!((after_wrong["status"].as_str(), after_wrong["attempts_left"].as_u64()), (Some("pending"), Some(2)));
    let (status, passed) = api.post(&format!("/v1/challenges/{challenge_id}"), json!({"code": code}), None).await;
    assert_eq!(status, StatusCode::OK, "{passed}");
    assert_eq!(passed["status"], "passed");
    assert_eq!(passed["payment"]["status"], "authorized");
    assert_eq!(passed["payment"]["decision"]["outcome"], "approve");
    let (_, line_now) = api.get(&format!("/v1/credit-lines/{line_id}")).await;
    assert_eq!(line_now["held"], "1500.00");

    // The decision record: inputs, features, the rule that fired, versions.
    let id = payment["id"].as_str().unwrap();
    let (status, record) = api.get(&format!("/v1/payments/{id}/decision")).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["outcome"], "step_up");
    assert_eq!(record["facts"]["amount_minor"], 150_000);
    assert_eq!(record["features"]["device_first_seen"], true);
    assert!(record["signals"].as_array().unwrap().iter().any(|s| s["source"] == "new_device_large_amount@1"));
    assert_eq!(record["versions"]["rules"], "default-4");
    assert_eq!(record["versions"]["policy"], "cn-credit-scan-to-pay@2");
    assert!(record["score"]["value"].is_i64());
    let (status, _) = api.get("/v1/payments/pay_nope/decision").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Three wrong codes fail the challenge and decline the payment; the failures then restrict
/// the line, with an end, a reason, and a challenge that lifts it.
#[tokio::test]
async fn failed_challenges_restrict_the_line_and_a_passed_one_lifts_it() {
    let api = start().await;
    let qr = api.merchant().await["qr_payload"].as_str().unwrap().to_owned();
    let line = api.line("20000.00").await;
    let line_id = line["id"].as_str().unwrap();
    let body = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "1500.00", "context": {"device_id": "thief-phone"}});
    let (_, payment) = api.post("/v1/payments", body.clone(), None).await;
    let challenge_id = payment["decision"]["challenge_id"].as_str().unwrap().to_owned();
    let code = api.code_for(line_id, &challenge_id).await;
    let wrong = if code == "123456" { "654321" } else { "123456" };
    let mut last = Value::Null;
    for _ in 0..3 {
        last = api.post(&format!("/v1/challenges/{challenge_id}"), json!({"code": wrong}), None).await.1;
    }
    assert_eq!(last["status"], "failed");
    assert_eq!(last["payment"]["status"], "declined");
    assert!(last["payment"]["decision"]["reason_codes"].as_array().unwrap().contains(&json!("challenge_failed")));
    // Even the right code changes nothing now.
    let (_, late) = api.post(&format!("/v1/challenges/{challenge_id}"), json!({"code": code}), None).await;
    assert_eq!(late["status"], "failed");

    let small = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "12.00", "context": {"device_id": "thief-phone"}});
    let (_, restricted) = api.post("/v1/payments", small.clone(), None).await;
    assert_eq!(restricted["decision"]["outcome"], "restrict", "{restricted}");
    assert_eq!(restricted["decision"]["reason_codes"][0], "repeated_challenge_failures");
    assert!(restricted["decision"]["expires_at"].is_string());
    let (_, line_now) = api.get(&format!("/v1/credit-lines/{line_id}")).await;
    let restriction = &line_now["restriction"];
    assert_eq!(restriction["reason_code"], "repeated_challenge_failures", "{line_now}");
    assert!(restriction["until"].is_string() && restriction["appeal_deadline"].is_string());
    // Further payments are declined as restricted, with the way out.
    let (_, blocked) = api.post("/v1/payments", small.clone(), None).await;
    assert!(blocked["decision"]["reason_codes"].as_array().unwrap().contains(&json!("line_restricted")), "{blocked}");
    assert_eq!(blocked["decision"]["outcome"], "decline", "an attempt while restricted does not restrict again");
    assert_eq!(blocked["decision"]["challenge_id"], restriction["challenge_id"], "{blocked}");
    assert!(blocked["decision"]["recovery"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "verify_identity" && r["challenge_id"] == restriction["challenge_id"]));
    // The owner verifies with the code sent to their phone: the restriction is lifted.
    let lift_id = restriction["challenge_id"].as_str().unwrap();
    let lift_code = api.code_for(line_id, lift_id).await;
    let (_, lifted) = api.post(&format!("/v1/challenges/{lift_id}"), json!({"code": lift_code}), None).await;
    assert_eq!(lifted["status"], "passed", "{lifted}");
    assert!(lifted["credit_line"]["restriction"].is_null(), "{lifted}");
    let (_, line_now) = api.get(&format!("/v1/credit-lines/{line_id}")).await;
    assert!(line_now["restriction"].is_null());
}

#[tokio::test]
async fn rules_policy_and_lists_are_managed_over_the_api() {
    let api = start().await;
    let qr = api.merchant().await["qr_payload"].as_str().unwrap().to_owned();
    let line = api.line("20000.00").await;
    let line_id = line["id"].as_str().unwrap();

    let (status, rules) = api.get("/v1/rules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rules["version"], "default-4");
    let (_, features) = api.get("/v1/rules/features").await;
    assert!(features["features"].as_array().unwrap().iter().any(|f| f["name"] == "user_count_1m"));
    let (_, codes) = api.get("/v1/reason-codes").await;
    let burst =
        codes["reason_codes"].as_array().unwrap().iter().find(|c| c["code"] == "velocity_burst").unwrap().clone();
    assert!(!burst["explanation"]["zh"].as_str().unwrap().is_empty());

    // A bad rule is refused with its id, and the live set is unchanged.
    let bad = json!({"version": "v2", "rules": [{"id": "typo", "version": 1, "expression": "amount_minr > 1",
        "effect": {"outcome": "decline"}, "reason_code": "velocity_burst", "mode": "live"}]});
    let (status, problem) = api.put("/v1/rules", bad).await;
    assert_eq!(
        (status, problem["code"].as_str(), problem["rule_id"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("rule_rejected"), Some("typo"))
    );
    assert!(problem["detail"].as_str().unwrap().contains("amount_minr"));
    assert_eq!(api.get("/v1/rules").await.1["version"], "default-4");

    // A valid set swaps in and decides the next payment.
    let good = json!({"version": "v2", "rules": [{"id": "no_coffee_over_50", "version": 1,
        "expression": "amount_minor > 5000", "effect": {"outcome": "decline"}, "reason_code": "amount_unusual", "mode": "live"}]});
    let (status, swapped) = api.put("/v1/rules", good).await;
    assert_eq!((status, swapped["version"].as_str()), (StatusCode::OK, Some("v2")));
    let pay = |amount: &str| json!({"credit_line_id": line_id, "qr_payload": qr, "amount": amount, "context": {"device_id": "d"}});
    let (_, p) = api.post("/v1/payments", pay("60.00"), None).await;
    assert_eq!(p["decision"]["reason_codes"], json!(["amount_unusual"]), "{p}");
    let declined_id = p["id"].as_str().unwrap().to_owned();
    let (_, record) = api.get(&format!("/v1/payments/{}/decision", p["id"].as_str().unwrap())).await;
    assert_eq!(record["versions"]["rules"], "v2");
    // Replayed under the shipped rules, the same payment would have been approved.
    let first =
        api.post(&format!("/v1/payments/{}/decision/replay", p["id"].as_str().unwrap()), json!({}), None).await.1;
    assert_eq!(
        (first["changed"].as_bool(), first["replayed"]["outcome"].as_str()),
        (Some(false), Some("decline")),
        "{first}"
    );

    // Lists: deny the device; the entry needs a reason and an author.
    let (status, problem) = api
        .post(
            "/v1/lists",
            json!({"list": "deny", "subject_kind": "device", "subject": "d", "reason": "", "author": "a"}),
            None,
        )
        .await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::BAD_REQUEST, Some("reason")));
    let (status, entry) = api
        .post("/v1/lists", json!({"list": "deny", "subject_kind": "device", "subject": "d", "reason": "device farm", "author": "analyst-7", "expires_at": "2099-01-01T00:00:00Z"}), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    let (_, p) = api.post("/v1/payments", pay("10.00"), None).await;
    assert!(p["decision"]["reason_codes"].as_array().unwrap().contains(&json!("deny_listed_device")), "{p}");
    let (status, _) = api.delete(&format!("/v1/lists/{}", entry["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    let (_, p) = api.post("/v1/payments", pay("10.00"), None).await;
    assert_eq!(p["decision"]["outcome"], "approve", "{p}");

    let back = json!({"version": "v3", "rules": []});
    assert_eq!(api.put("/v1/rules", back).await.0, StatusCode::OK);
    let replay = api.post(&format!("/v1/payments/{}/decision/replay", declined_id), json!({}), None).await.1;
    assert_eq!(replay["changed"], true, "{replay}");
    assert_eq!(
        (replay["stored"]["outcome"].as_str(), replay["replayed"]["outcome"].as_str()),
        (Some("decline"), Some("approve"))
    );
    assert_eq!(replay["replayed"]["versions"]["rules"], "v3");

    // Policy: scheduled and ended clauses are visible; an older version is refused.
    let (_, policy) = api.get("/v1/policy").await;
    let states: Vec<&str> =
        policy["clauses"].as_array().unwrap().iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert!(states.contains(&"in_force"));
    let (status, problem) = api.put("/v1/policy", policy["document"].clone()).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("policy_rejected")));
}

/// One client's sequence on its own line, over HTTP: pay with a key, re-send it, capture,
/// refund 3.00 then 4.00, over-refund 6.00, read back. Returns what it saw go wrong.
async fn one_clients_sequences(api: &Api, qr: &str, line_id: &str, client: usize) -> Vec<String> {
    let mut anomalies = vec![];
    for round in 0..25 {
        let key = format!("c{client}-r{round}");
        let body = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "10.00"});
        let (status, paid) = api.post("/v1/payments", body.clone(), Some(&key)).await;
        let id = paid["id"].as_str().unwrap_or_default().to_owned();
        let (_, again) = api.post("/v1/payments", body, Some(&key)).await;
        let steps = [
            (format!("/v1/payments/{id}/capture"), json!({}), StatusCode::OK, "captured", "0.00"),
            (
                format!("/v1/payments/{id}/refunds"),
                json!({"amount": "3.00"}),
                StatusCode::CREATED,
                "partially_refunded",
                "3.00",
            ),
            (
                format!("/v1/payments/{id}/refunds"),
                json!({"amount": "4.00"}),
                StatusCode::CREATED,
                "partially_refunded",
                "7.00",
            ),
        ];
        let mut seen = vec![(status, paid["status"].clone(), again["id"] == paid["id"])];
        for (path, body, expected, status_name, refunded) in steps {
            let (status, payment) = api.post(&path, body, None).await;
            let ok = status == expected && payment["status"] == status_name && payment["refunded_amount"] == refunded;
            if !ok {
                anomalies.push(format!("client {client} round {round} {path}: {status} {payment}"));
            }
        }
        let (status, over) = api.post(&format!("/v1/payments/{id}/refunds"), json!({"amount": "6.00"}), None).await;
        if status != StatusCode::UNPROCESSABLE_ENTITY || over["code"] != "refund_exceeds_captured" {
            anomalies.push(format!("client {client} round {round} over-refund: {status} {over}"));
        }
        let (_, read) = api.get(&format!("/v1/payments/{id}")).await;
        seen.push((StatusCode::OK, read["refunded_amount"].clone(), true));
        if seen != [(StatusCode::CREATED, json!("authorized"), true), (StatusCode::OK, json!("7.00"), true)] {
            anomalies.push(format!("client {client} round {round}: {seen:?}"));
        }
    }
    anomalies
}

/// Issue 11 as it was found: sixteen clients, each on its own line, each waiting for every
/// answer before its next request. Before the fix, about a hundred of these sequences a
/// second went wrong (404 on a capture, a refund lost, a second payment for one key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_each_see_their_own_writes() {
    let risk =
        xiezhi_core::RiskConfig { rules_json: Some(r#"{"version":"none","rules":[]}"#.into()), ..Default::default() };
    let api = Arc::new(start_with(ServiceConfig { risk, ..Default::default() }).await);
    let qr = api.merchant().await["qr_payload"].as_str().unwrap().to_owned();
    let mut clients = vec![];
    for client in 0..16 {
        let (api, qr) = (Arc::clone(&api), qr.clone());
        let line = api.line("100000.00").await["id"].as_str().unwrap().to_owned();
        clients.push(tokio::spawn(async move { one_clients_sequences(&api, &qr, &line, client).await }));
    }
    let mut anomalies = vec![];
    for client in clients {
        anomalies.extend(client.await.unwrap());
    }
    assert!(anomalies.is_empty(), "{} anomalies, first: {:?}", anomalies.len(), &anomalies[..anomalies.len().min(3)]);
}

/// What a client says about its device and network is stored with every payment: each
/// field has a bound, named in the refusal (before issue 12 a user agent could fill the
/// 64 KiB body).
#[tokio::test]
async fn context_fields_are_bounded() {
    let api = start().await;
    let qr = api.merchant().await["qr_payload"].as_str().unwrap().to_owned();
    let line = api.line("1000.00").await["id"].as_str().unwrap().to_owned();
    let pay = |context: Value| json!({"credit_line_id": line, "qr_payload": qr, "amount": "10.00", "context": context});
    for (field, max_chars) in
        [("user_agent", 256), ("network", 32), ("app_version", 32), ("device_id", 128), ("ip", 64)]
    {
        let (status, problem) = api.post("/v1/payments", pay(json!({ field: "x".repeat(max_chars + 1) })), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {problem}");
        assert_eq!(problem["field"], format!("context.{field}"), "{problem}");
    }
    let fits =
        json!({"user_agent": "u".repeat(256), "network": "wifi", "app_version": "9".repeat(32), "device_id": "d1"});
    let (status, payment) = api.post("/v1/payments", pay(fits), None).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    let (status, problem) = api
        .post("/v1/payments", json!({"credit_line_id": "c".repeat(129), "qr_payload": qr, "amount": "1.00"}), None)
        .await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::BAD_REQUEST, Some("credit_line_id")), "{problem}");
}

/// Metric labels come from closed sets: made-up methods do not each become a series.
#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let api = start().await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        api.client.request(method, format!("{}/v1/payments", api.base)).send().await.unwrap();
    }
    let metrics = api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("BREW"), "a client-chosen method became a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
}

/// A stepped-up payment that waits for its code, then a shopper answers it. What the code
/// answers is the step-up; the policy, the lists and credit are checked again as they stand
/// by then (before issue 12 only credit and a restriction were).
#[tokio::test]
async fn a_passed_challenge_meets_the_lists_and_policy_as_they_stand_now() {
    let api = start().await;
    let qr = api.merchant().await["qr_payload"].as_str().unwrap().to_owned();
    // Not round amounts: two round payments from new lines at one new merchant look like
    // cash-out.
    let step_up = |key: &'static str, line_id: String, amount: &'static str| {
        let (api, qr) = (&api, qr.clone());
        async move {
            let body = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": amount,
                "context": {"device_id": format!("new-phone-{key}"), "ip": "198.51.100.7", "network": "4g"}});
            let (_, payment) = api.post("/v1/payments", body, Some(key)).await;
            assert_eq!(payment["status"], "challenge_required", "{payment}");
            let challenge_id = payment["decision"]["challenge_id"].as_str().unwrap().to_owned();
            let code = api.code_for(&line_id, &challenge_id).await;
            (challenge_id, code)
        }
    };
    // Deny-listed while the code was on its way.
    let line = api.line("20000.00").await;
    let (challenge_id, code) = step_up("a", line["id"].as_str().unwrap().to_owned(), "1234.56").await;
    let entry = json!({"list": "deny", "subject_kind": "user", "subject": "u1", "reason": "stolen phone report", "author": "analyst-7"});
    assert_eq!(api.post("/v1/lists", entry, None).await.0, StatusCode::CREATED);
    let (_, answered) = api.post(&format!("/v1/challenges/{challenge_id}"), json!({"code": code}), None).await;
    assert_eq!(answered["status"], "passed", "{answered}");
    assert_eq!(answered["payment"]["status"], "declined", "{answered}");
    assert!(answered["payment"]["decision"]["reason_codes"].as_array().unwrap().contains(&json!("deny_listed_user")));
    // What to do now: a person can review a deny-list entry; no code is offered again.
    let ways = &answered["payment"]["decision"]["recovery"];
    assert_eq!(ways[0]["action"], "appeal", "{answered}");
    assert!(ways[0]["deadline"].is_string(), "{answered}");
    let (_, line_now) = api.get(&format!("/v1/credit-lines/{}", line["id"].as_str().unwrap())).await;
    assert_eq!(line_now["held"], "0.00");
    let (_, entries) = api.get("/v1/lists").await;
    let id = entries["entries"][0]["id"].as_str().unwrap();
    assert_eq!(api.delete(&format!("/v1/lists/{id}")).await.0, StatusCode::OK);

    // A new policy lowered the per-payment cap below the amount meanwhile.
    let line = api.line("20000.00").await["id"].as_str().unwrap().to_owned();
    let (challenge_id, code) = step_up("b", line, "1345.67").await;
    let (_, policy) = api.get("/v1/policy").await;
    let mut document = policy["document"].clone();
    document["version"] = json!(3);
    document["clauses"][0]["rule"]["payment_cap"]["max_amount"] = json!("1000.00");
    assert_eq!(api.put("/v1/policy", document).await.0, StatusCode::OK);
    let (_, answered) = api.post(&format!("/v1/challenges/{challenge_id}"), json!({"code": code}), None).await;
    assert_eq!(answered["payment"]["status"], "declined", "{answered}");
    let codes = answered["payment"]["decision"]["reason_codes"].as_array().unwrap();
    assert!(codes.contains(&json!("policy_payment_cap")), "{answered}");
    assert!(answered["payment"]["decision"]["explanation"]["en"].as_str().unwrap().contains("1000.00"), "{answered}");
}

/// A store whose reads panic on demand: a broken invariant on the writer thread.
struct PanickyStore {
    inner: Box<dyn xiezhi_store::Store>,
    panic: Arc<std::sync::atomic::AtomicBool>,
}

impl xiezhi_store::wrap::Wrapper for PanickyStore {
    fn inner(&mut self) -> &mut dyn xiezhi_store::Store {
        self.inner.as_mut()
    }
    fn inner_ref(&self) -> &dyn xiezhi_store::Store {
        self.inner.as_ref()
    }
    fn record(
        &mut self,
        kind: xiezhi_store::RecordKind,
        id: &str,
    ) -> Result<Option<xiezhi_store::Record>, xiezhi_store::StoreError> {
        // Only a request's read of a payment panics: the rebuild after a panic reads settings
        // by id too, and must not meet the fault the test set for the request (it did, now
        // and then, when the test reset the fault a moment after the rebuild began).
        let faulty = kind == xiezhi_store::RecordKind::Payment;
        assert!(!(faulty && self.panic.load(std::sync::atomic::Ordering::SeqCst)), "an invariant broke");
        self.inner.record(kind, id)
    }
}

/// A panic on the writer thread: the requests of its batch get 503, the writer starts
/// again from the store and serves the next request; if it keeps panicking it stays down,
/// and `/healthz` answers 503 with `writer: down` (before issue 12 it said 200 while every
/// request got 503).
#[tokio::test]
async fn a_panicking_writer_restarts_from_the_store_or_is_reported_down() {
    let dir = tempfile::tempdir().unwrap();
    let panic = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let store = PanickyStore { inner: Box::new(SqliteStore::open_dir(dir.path()).unwrap()), panic: panic.clone() };
    let service =
        Service::start(Box::new(store), common::with_phone(ServiceConfig::default()), Arc::new(SystemClock)).unwrap();
    let base = common::serve(service).await;
    let api = Api { base, client: common::client_with(common::ADMIN_KEY), _dir: dir };
    let line_id = api.line("100.00").await["id"].as_str().unwrap().to_owned();

    panic.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, problem) = api.get("/v1/payments/pay_absent").await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("storage_unavailable")));
    panic.store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, line) = api.get(&format!("/v1/credit-lines/{line_id}")).await;
    assert_eq!((status, line["available"].as_str()), (StatusCode::OK, Some("100.00")), "restarted from the store");
    let (status, health) = api.get("/healthz").await;
    assert_eq!(
        (status, health["writer"].as_str(), health["writer_restarts"].as_u64()),
        (StatusCode::OK, Some("up"), Some(1))
    );

    panic.store(true, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..4 {
        assert_eq!(api.get("/v1/payments/pay_absent").await.0, StatusCode::SERVICE_UNAVAILABLE);
    }
    // Health is not an error document: read it as it comes.
    let response = api.client.get(format!("{}/healthz", api.base)).send().await.unwrap();
    let status = response.status();
    let health: Value = response.json().await.unwrap();
    assert_eq!((status, health["writer"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("down")), "{health}");
}
