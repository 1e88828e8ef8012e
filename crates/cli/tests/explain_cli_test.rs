//! `xiezhi decision explain ID` against a running `xiezhi serve`: the decision and what
//! happened after it on one line, and `--json` with the `lifecycle` key.

mod common;

use serde_json::{json, Value};
use std::process::Command;

fn explain(id: &str, base: &str, json: bool) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xiezhi"));
    command.args(["decision", "explain", id, "--server", base]);
    if json {
        command.arg("--json");
    }
    let output = command.env("XIEZHI_API_KEY", common::ADMIN_KEY).output().expect("run xiezhi");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    stdout.into_owned()
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let response = common::client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// The line that tells the lifecycle.
fn lifecycle_line(text: &str) -> &str {
    text.lines().find(|l| l.trim_start().starts_with("lifecycle: ")).unwrap_or_else(|| panic!("no lifecycle:\n{text}"))
}

/// Fails unless every one of `parts` is in `told`, in this order.
fn in_order(told: &str, parts: &[&str]) {
    let mut from = 0;
    for part in parts {
        let at = told[from..].find(part).unwrap_or_else(|| panic!("`{part}` missing or out of order in {told}"));
        from += at + part.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_prints_what_happened_after_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    // The hand-weighted scorer: a new phone paying 1500.00 at a new shop is stepped up, not
    // declined as the shipped model scores a shop opened a second ago.
    let (_server, base, mut stdout) =
        common::serve(dir.path(), &["--fraud-model", "heuristic", "--phone-gateway", "127.0.0.1:0"]);
    // The second line names the phone gateway the shoppers read their codes from.
    let mut said = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut said).unwrap();
    let phone = said.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches(';').to_owned();
    let phone_token = std::fs::read_to_string(dir.path().join("phone-gateway.token")).unwrap().trim().to_owned();
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let qr = post(&base, "/v1/merchants", merchant).await["qr_payload"].as_str().unwrap().to_owned();
    let line = json!({"user_id": "u1", "currency": "CNY", "limit": "20000.00",
                      "profile": {"birth_date": "1990-04-01", "kyc_level": 2, "region": "CN-SH"}});
    let line = post(&base, "/v1/credit-lines", line).await["id"].as_str().unwrap().to_owned();
    let pay = |amount: &str, device: &str, ip: &str| {
        let context = json!({"device_id": device, "ip": ip, "network": "4g"});
        json!({"credit_line_id": line, "qr_payload": qr, "amount": amount, "context": context})
    };

    // A step-up waiting for its code (another shopper, before any refund at this shop).
    let line = json!({"user_id": "u2", "currency": "CNY", "limit": "20000.00",
                      "profile": {"birth_date": "1990-04-01", "kyc_level": 2, "region": "CN-SH"}});
    let line = post(&base, "/v1/credit-lines", line).await["id"].as_str().unwrap().to_owned();
    let body = json!({"credit_line_id": line, "qr_payload": qr, "amount": "1500.00",
                      "context": {"device_id": "new-phone", "ip": "198.51.100.7", "network": "4g"}});
    let waiting = post(&base, "/v1/payments", body).await;
    assert_eq!(waiting["decision"]["outcome"], "step_up", "{waiting}");
    let stepped = waiting["id"].as_str().unwrap();
    let text = explain(stepped, &base, false);
    assert!(lifecycle_line(&text).contains("STEP_UP ") && text.contains(" → challenge sent "), "{text}");
    assert!(!text.contains("- appeal") && !text.contains("- verify_identity"), "a step-up waits for its code:\n{text}");
    // The shopper answers with the code their phone received; the payment is captured.
    let challenge_id = waiting["decision"]["challenge_id"].as_str().unwrap();
    // In the shopper's language (Chinese unless their contact says English).
    let messages = format!("{}/messages", phone.trim_end_matches("/messages"));
    let code = common::code_from_phone(&messages, &phone_token, challenge_id).await;
    post(&base, &format!("/v1/challenges/{challenge_id}"), json!({"code": code})).await;
    post(&base, &format!("/v1/payments/{stepped}/capture"), json!({})).await;
    let text = explain(stepped, &base, false);
    let told = lifecycle_line(&text);
    let order = ["STEP_UP ", " → challenge sent ", " → passed ", " → authorized ", " → captured ", "1500.00 CNY"];
    in_order(told, &order);

    // Approved, captured, then partly refunded.
    let paid = post(&base, "/v1/payments", pay("80.00", "d1", "203.0.113.9")).await;
    assert_eq!(paid["status"], "authorized", "{paid}");
    let id = paid["id"].as_str().unwrap();
    post(&base, &format!("/v1/payments/{id}/capture"), json!({})).await;
    post(&base, &format!("/v1/payments/{id}/refunds"), json!({"amount": "30.00"})).await;
    let text = explain(id, &base, false);
    let told = lifecycle_line(&text);
    let order = ["APPROVE ", " → authorized ", " → captured ", "80.00 CNY", " → refunded ", "30.00 CNY (partial)"];
    in_order(told, &order);
    let document: Value = serde_json::from_str(&explain(id, &base, true)).unwrap();
    let events: Vec<&str> =
        document["lifecycle"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["authorized", "captured", "refunded"], "{document}");
}
