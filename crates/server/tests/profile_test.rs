//! The "complete your profile" way out (issue 14) over a real socket: a payment declined for
//! the KYC level names the level, the fields and the route; the wallet submits them; the
//! same payment then passes. The values are personal data: never in the answer, never in
//! the store's files. The level survives a restart and is never lowered.

mod common;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use xiezhi_core::KeyKind;

/// A value no other test data contains, to look for in the store's bytes.
const SECRET_ID_NUMBER: &str = "330106199001011234-Xq7Zp";
const SECRET_NAME: &str = "Zhang Sanfeng-PII-marker";

async fn post(client: &Client, url: String, body: Value) -> (StatusCode, Value) {
    common::send(client, Method::POST, &url, Some(body)).await
}

async fn wallet_key(base: &str, admin: &Client, wallet_id: &str) -> Client {
    let scopes: Vec<&str> = KeyKind::Wallet.allowed().list().iter().map(|s| s.as_str()).collect();
    let body = json!({"name": wallet_id, "kind": "wallet", "scopes": scopes, "wallet_id": wallet_id});
    let (status, key) = post(admin, format!("{base}/v1/api-keys"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    common::client_with(key["key"].as_str().unwrap())
}

/// A merchant, and a line the wallet `w1` opened for an identity at level 0.
async fn shop_and_line(base: &str, admin: &Client, wallet: &Client) -> (String, String) {
    let merchant =
        json!({"name": "Lotus Market", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let (status, merchant) = post(admin, format!("{base}/v1/merchants"), merchant).await;
    assert_eq!(status, StatusCode::CREATED, "{merchant}");
    let line = json!({"user_id": "u-kyc", "currency": "CNY", "limit": "5000.00",
                      "profile": {"birth_date": "1990-04-01", "region": "CN-SH"}});
    let (status, line) = post(wallet, format!("{base}/v1/credit-lines"), line).await;
    assert_eq!(status, StatusCode::CREATED, "{line}");
    // A small payment first, so the device is not new when the large one comes.
    let qr = merchant["qr_payload"].as_str().unwrap();
    let small = pay_amount(base, wallet, line["id"].as_str().unwrap(), qr, "23.45").await;
    assert_eq!(small["status"], "authorized", "{small}");
    (merchant["qr_payload"].as_str().unwrap().to_owned(), line["id"].as_str().unwrap().to_owned())
}

/// 1234.56 CNY (above the policy's 1000.00 for KYC level 2; not round) from device `d1`.
async fn pay(base: &str, wallet: &Client, line: &str, qr: &str) -> Value {
    pay_amount(base, wallet, line, qr, "1234.56").await
}

async fn pay_amount(base: &str, wallet: &Client, line: &str, qr: &str, amount: &str) -> Value {
    let body = json!({"credit_line_id": line, "qr_payload": qr, "amount": amount,
                      "context": {"device_id": "d1", "ip": "203.0.113.9", "network": "wifi"}});
    let (status, payment) = post(wallet, format!("{base}/v1/payments"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    payment
}

fn complete_fields() -> Value {
    json!({"full_name": SECRET_NAME, "id_number": SECRET_ID_NUMBER, "address": "1 West Lake Road, Hangzhou"})
}

/// Every byte of every file under `dir`.
fn store_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(store_bytes(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kyc_decline_is_recovered_by_completing_the_profile_and_the_values_are_never_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_on(dir.path(), Arc::new(xiezhi_core::SystemClock)).await;
    let base = server.base.clone();
    let admin = common::client_with(common::ADMIN_KEY);
    let wallet = wallet_key(&base, &admin, "w1").await;
    let (qr, line) = shop_and_line(&base, &admin, &wallet).await;

    // Declined for the KYC level: the way out names the level, the fields and the route.
    let declined = pay(&base, &wallet, &line, &qr).await;
    let decision = &declined["decision"];
    assert_eq!(declined["status"], "declined", "{declined}");
    assert!(decision["reason_codes"].as_array().unwrap().contains(&json!("policy_kyc_level")), "{decision}");
    let way = decision["recovery"].as_array().unwrap().iter().find(|r| r["action"] == "complete_profile");
    let way = way.unwrap_or_else(|| panic!("no complete_profile: {decision}"));
    assert_eq!(way["kyc_level"], 2, "{way}");
    assert_eq!(way["fields"], json!(["full_name", "id_number", "address"]), "{way}");
    let endpoint = way["endpoint"].as_str().unwrap();
    assert_eq!(endpoint, format!("/v1/credit-lines/{line}/profile"));

    // A missing field is named; nothing is recorded.
    let mut partial = complete_fields();
    partial.as_object_mut().unwrap().remove("address");
    let (status, problem) =
        post(&wallet, format!("{base}{endpoint}"), json!({"kyc_level": 2, "fields": partial})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("profile_rejected")));
    assert_eq!(problem["fields"], json!(["fields.address"]), "{problem}");
    assert!(!problem.to_string().contains(SECRET_ID_NUMBER), "{problem}");

    // Another wallet's key does not see the line.
    let other = wallet_key(&base, &admin, "w2").await;
    let body = json!({"kyc_level": 2, "fields": complete_fields()});
    let (status, problem) = post(&other, format!("{base}{endpoint}"), body.clone()).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("credit_line_not_found")));

    // Complete: the level is raised, the names recorded, the values not echoed.
    let (status, step) = post(&wallet, format!("{base}{endpoint}"), body).await;
    assert_eq!(status, StatusCode::OK, "{step}");
    assert_eq!((step["kyc_level"].as_i64(), step["previous_kyc_level"].as_i64()), (Some(2), Some(0)), "{step}");
    assert_eq!(step["fields_recorded"], json!(["full_name", "id_number", "address"]));
    assert!(!step.to_string().contains(SECRET_ID_NUMBER) && !step.to_string().contains(SECRET_NAME), "{step}");

    // The same payment passes the policy now.
    let again = pay(&base, &wallet, &line, &qr).await;
    assert_eq!(again["status"], "authorized", "{again}");
    assert!(!again["decision"]["reason_codes"].as_array().unwrap().contains(&json!("policy_kyc_level")));

    // A lower level does not lower the line's.
    let (status, step) =
        post(&wallet, format!("{base}{endpoint}"), json!({"kyc_level": 2, "fields": complete_fields()})).await;
    assert_eq!((status, step["kyc_level"].as_i64()), (StatusCode::OK, Some(2)), "{step}");

    // Restarted on the same files: the level holds; the values are in none of them.
    server.stop().await;
    let bytes = store_bytes(dir.path());
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, SECRET_ID_NUMBER) && !contains(&bytes, SECRET_NAME), "a profile value is in the store");
    let server = common::start_on(dir.path(), Arc::new(xiezhi_core::SystemClock)).await;
    let base = server.base.clone();
    let again = pay(&base, &admin, &line, &qr).await;
    assert!(!again["decision"]["reason_codes"].as_array().unwrap().contains(&json!("policy_kyc_level")), "{again}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_step_refuses_unknown_levels_and_fields_empty_and_long_values_cleanly() {
    let (base, _service, _dir) = common::start(xiezhi_core::ServiceConfig::default()).await;
    let admin = common::client_with(common::ADMIN_KEY);
    let wallet = wallet_key(&base, &admin, "w1").await;
    let (_qr, line) = shop_and_line(&base, &admin, &wallet).await;
    let url = format!("{base}/v1/credit-lines/{line}/profile");
    let long = "x".repeat(xiezhi_core::MAX_PROFILE_FIELD_VALUE_CHARS + 1);
    let with = |field: &str, value: Value| {
        let mut fields = complete_fields();
        fields[field] = value;
        json!({"kyc_level": 2, "fields": fields})
    };
    let cases = [
        (json!({"kyc_level": 1, "fields": complete_fields()}), json!(["kyc_level"])),
        (json!({"kyc_level": 9, "fields": {}}), json!(["kyc_level"])),
        (with("nickname", json!("x")), json!(["fields.nickname"])),
        (with("address", json!("  ")), json!(["fields.address"])),
        (with("full_name", json!(long)), json!(["fields.full_name"])),
    ];
    for (body, fields) in cases {
        let (status, problem) = post(&wallet, url.clone(), body.clone()).await;
        assert_eq!((status, &problem["fields"]), (StatusCode::UNPROCESSABLE_ENTITY, &fields), "{body}: {problem}");
    }
    // Not JSON of the right shape: a 400, never a 500.
    for body in
        [json!({"kyc_level": "2", "fields": {}}), json!({"kyc_level": 2, "fields": {"full_name": 1}}), json!([])]
    {
        let (status, problem) = post(&wallet, url.clone(), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
    }
    let (_, line_now) = common::send(&wallet, Method::GET, &format!("{base}/v1/credit-lines/{line}"), None).await;
    assert!(line_now["id"].is_string(), "{line_now}");
}

/// Under a policy that restricts for the KYC level, the profile step lifts the restriction
/// it answers, and its history says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restriction_for_the_kyc_level_alone_is_lifted_by_the_profile_step() {
    let (base, _service, _dir) = common::start(xiezhi_core::ServiceConfig::default()).await;
    let admin = common::client_with(common::ADMIN_KEY);
    let (_, policy) = common::send(&admin, Method::GET, &format!("{base}/v1/policy"), None).await;
    let mut document = policy["document"].clone();
    document["severity"] = json!({"policy_kyc_level": "restrict"});
    document["version"] = json!(document["version"].as_u64().unwrap() + 1);
    let (status, body) = common::send(&admin, Method::PUT, &format!("{base}/v1/policy"), Some(document)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let wallet = wallet_key(&base, &admin, "w1").await;
    let (qr, line) = shop_and_line(&base, &admin, &wallet).await;
    let restricted = pay(&base, &wallet, &line, &qr).await;
    assert_eq!(restricted["decision"]["outcome"], "restrict", "{restricted}");
    let (_, listed) =
        common::send(&admin, Method::GET, &format!("{base}/v1/restrictions?credit_line_id={line}"), None).await;
    let restriction = listed["restrictions"][0]["id"].as_str().unwrap_or_else(|| panic!("{listed}")).to_owned();
    assert_eq!(listed["restrictions"][0]["reason_codes"], json!(["policy_kyc_level"]), "{listed}");

    let body = json!({"kyc_level": 2, "fields": complete_fields()});
    let (status, step) = post(&wallet, format!("{base}/v1/credit-lines/{line}/profile"), body).await;
    assert_eq!(status, StatusCode::OK, "{step}");
    assert_eq!(step["restriction_lifted"], restriction.as_str(), "{step}");
    let (_, record) = common::send(&admin, Method::GET, &format!("{base}/v1/restrictions/{restriction}"), None).await;
    assert_eq!(record["status"], "lifted", "{record}");
    let lift = record["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (lift["cause"].as_str(), lift["reason"].as_str()),
        (Some("profile_completed"), Some("profile_completed"))
    );
    let again = pay(&base, &wallet, &line, &qr).await;
    assert_eq!(again["status"], "authorized", "{again}");
}
