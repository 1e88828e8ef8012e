//! The HTTP API over a real socket: status codes, problem+json codes, idempotency, limits.

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
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    let service = Service::start(Box::new(store), ServiceConfig::default(), Arc::new(SystemClock)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(xiezhi_server::serve(listener, xiezhi_server::router(service), std::future::pending()));
    Api { base, client: Client::new(), _dir: dir }
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
            self.post("/v1/credit-lines", json!({"user_id": "u1", "currency": "CNY", "limit": limit}), None).await;
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
    let (status, declined) =
        api.post("/v1/payments", json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "5000"}), None).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(declined["status"], "declined");
    assert_eq!(declined["decision"]["outcome"], "decline");
    assert_eq!(declined["decision"]["reason_codes"], json!(["insufficient_credit"]));

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
