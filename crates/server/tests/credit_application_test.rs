//! `POST /v1/credit-lines` with an `application`: the shipped credit scorecard scores it, the
//! policy's band and the declared income set the limit, the answer carries the score, the
//! band and the reasons, and the band caps a young low-band line at payment time. A line
//! opened with a `limit` is as it always was.

mod common;

use reqwest::{Client, StatusCode};
use serde_json::{json, Map, Value};
use xiezhi_core::xiezhi_risk::shipped_credit_model;
use xiezhi_core::ServiceConfig;

struct Api {
    base: String,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Api {
    let (base, _service, dir) = common::start(ServiceConfig::default()).await;
    Api { base, client: common::client_with(common::ADMIN_KEY), _dir: dir }
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn apply(&self, user: &str, application: Map<String, Value>, income: &str) -> (StatusCode, Value) {
        let body = json!({"user_id": user, "currency": "CNY", "application": application, "monthly_income": income,
            "profile": {"birth_date": "1990-04-01", "kyc_level": 2, "region": "CN-SH"}});
        self.post("/v1/credit-lines", body).await
    }
}

/// An application the shipped scorecard scores in `[lo, hi)`.
fn scoring(lo: i64, hi: i64) -> Map<String, Value> {
    shipped_credit_model().example_application(lo, hi).unwrap_or_else(|| panic!("no application in [{lo}, {hi})"))
}

/// What a reason may never name.
const PROTECTED: &[&str] = &["age", "sex", "gender", "marital", "married", "nationality", "foreign"];

fn check_reasons(credit: &Value) {
    let reasons = credit["reasons"].as_array().expect("reasons");
    for r in reasons {
        let code = r["code"].as_str().unwrap();
        assert!(code.starts_with("credit_") && code != "credit_profile_other", "{r}");
        let en = r["explanation"]["en"].as_str().unwrap().to_ascii_lowercase();
        assert!(!r["explanation"]["zh"].as_str().unwrap().is_empty() && !en.is_empty(), "{r}");
        let words: Vec<&str> = en.split(|c: char| !c.is_ascii_alphabetic()).collect();
        assert!(!PROTECTED.iter().any(|p| words.contains(p)), "{r}");
    }
}

#[tokio::test]
async fn an_application_sets_the_limit_from_the_band_and_the_income() {
    let api = start().await;
    // Band A (600 and up): 300 % of the income, at most 50,000.00.
    let (status, line) = api.apply("strong", scoring(600, 700), "12000.00").await;
    assert_eq!(status, StatusCode::CREATED, "{line}");
    assert_eq!(line["limit"], "36000.00");
    assert_eq!(line["available"], "36000.00");
    assert_eq!(line["credit"]["band"], "A");
    assert!(line["credit"]["score"].as_i64().unwrap() >= 600, "{line}");
    check_reasons(&line["credit"]);
    // The line keeps its assessment.
    let (status, again) = api.get(&format!("/v1/credit-lines/{}", line["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["credit"], line["credit"]);
    // Band D (480 to 520): half the income, at most 5,000.00; the reasons say what cost it.
    let (status, low) = api.apply("weaker", scoring(480, 520), "8000.00").await;
    assert_eq!(status, StatusCode::CREATED, "{low}");
    assert_eq!((low["limit"].as_str(), low["credit"]["band"].as_str()), (Some("4000.00"), Some("D")));
    assert!(!low["credit"]["reasons"].as_array().unwrap().is_empty(), "{low}");
    check_reasons(&low["credit"]);
    // A line with a fixed limit is as it always was: no credit assessment.
    let (status, fixed) =
        api.post("/v1/credit-lines", json!({"user_id": "fixed", "currency": "CNY", "limit": "2000.00"})).await;
    assert_eq!(status, StatusCode::CREATED, "{fixed}");
    assert_eq!(fixed["limit"], "2000.00");
    assert!(fixed.get("credit").is_none(), "{fixed}");
}

#[tokio::test]
async fn below_every_band_no_line_is_opened_and_the_reasons_say_why() {
    let api = start().await;
    let (status, problem) = api.apply("weak", scoring(0, 440), "30000.00").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "credit_declined");
    assert!(problem["credit"]["band"].is_null(), "{problem}");
    assert!(problem["credit"]["score"].as_i64().unwrap() < 440);
    assert_eq!(problem["credit"]["reasons"].as_array().unwrap().len(), 4, "{problem}");
    check_reasons(&problem["credit"]);
    // Nothing was opened: the same user may apply again with a better application.
    let (status, line) = api.apply("weak", scoring(520, 560), "10000.00").await;
    assert_eq!(status, StatusCode::CREATED, "{line}");
    assert_eq!((line["credit"]["band"].as_str(), line["limit"].as_str()), (Some("C"), Some("10000.00")));
}

#[tokio::test]
async fn a_bad_application_is_refused_naming_the_field() {
    let api = start().await;
    let good = scoring(600, 700);
    let model = shipped_credit_model();
    // A numeric feature: one without levels.
    let numeric = model.features().iter().find(|f| f.levels.is_empty()).unwrap().name.clone();
    let body = |f: &dyn Fn(&mut Value)| {
        let mut b = json!({"user_id": "u", "currency": "CNY", "application": good, "monthly_income": "9000.00"});
        f(&mut b);
        b
    };
    let cases: Vec<(Value, &str, String)> = vec![
        (body(&|b| b["limit"] = json!("1000.00")), "invalid_request", "application".into()),
        (
            body(&|b| {
                b.as_object_mut().unwrap().remove("application");
                b.as_object_mut().unwrap().remove("monthly_income");
            }),
            "invalid_request",
            "limit".into(),
        ),
        (
            body(&|b| {
                b.as_object_mut().unwrap().remove("application");
                b["limit"] = json!("1000.00");
            }),
            "invalid_request",
            "monthly_income".into(),
        ),
        (
            body(&|b| {
                b.as_object_mut().unwrap().remove("monthly_income");
            }),
            "missing_field",
            "monthly_income".into(),
        ),
        (body(&|b| b["application"]["age_in_years"] = json!(40)), "unknown_field", "application.age_in_years".into()),
        (
            body(&|b| {
                b["application"].as_object_mut().unwrap().remove("purpose");
            }),
            "missing_field",
            "application.purpose".into(),
        ),
        (body(&|b| b["application"][&numeric] = json!("12")), "invalid_type", format!("application.{numeric}")),
        (body(&|b| b["application"]["purpose"] = json!(7)), "invalid_type", "application.purpose".into()),
        (body(&|b| b["application"]["purpose"] = json!("a yacht")), "invalid_request", "application.purpose".into()),
        (body(&|b| b["application"] = json!([1, 2])), "invalid_type", "application".into()),
        (body(&|b| b["monthly_income"] = json!("-5")), "invalid_amount", "monthly_income".into()),
        (body(&|b| b["currency"] = json!("USD")), "currency_not_admitted", String::new()),
    ];
    for (body, code, field) in cases {
        let (status, problem) = api.post("/v1/credit-lines", body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status} {problem}");
        assert_eq!(problem["code"], code, "{body}: {problem}");
        if !field.is_empty() {
            assert_eq!(problem["field"], field.as_str(), "{body}: {problem}");
        }
    }
}

#[tokio::test]
async fn a_young_low_band_line_is_capped_at_a_new_merchant() {
    let api = start().await;
    let (status, line) = api.apply("young", scoring(480, 520), "10000.00").await;
    assert_eq!(status, StatusCode::CREATED, "{line}");
    assert_eq!((line["limit"].as_str(), line["credit"]["band"].as_str()), (Some("5000.00"), Some("D")));
    let (status, merchant) = api
        .post(
            "/v1/merchants",
            json!({"name": "Lotus Market", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{merchant}");
    // 2,000.00 at a shop the shopper never paid: over 35 % of a line opened today.
    let pay = json!({"credit_line_id": line["id"], "qr_payload": merchant["qr_payload"], "amount": "2000.00",
        "context": {"device_id": "phone-1", "ip": "203.0.113.9", "network": "wifi"}});
    let (status, payment) = api.post("/v1/payments", pay).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "declined", "{payment}");
    let decision = &payment["decision"];
    assert!(decision["reason_codes"].as_array().unwrap().iter().any(|c| c == "band_spend_cap"), "{decision}");
    assert!(decision["explanation"]["en"].as_str().unwrap().contains("credit band D"), "{decision}");
    let lower = decision["recovery"].as_array().unwrap().iter().find(|r| r["action"] == "lower_amount");
    assert_eq!(lower.map(|r| r["max_amount"].clone()), Some(json!("1750.00")), "{decision}");
    let (status, record) = api.get(&format!("/v1/payments/{}/decision", payment["id"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["features"]["credit_band"], "D", "{record}");
}
