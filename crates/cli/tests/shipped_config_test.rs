//! What ships: the fraud model `serve` and `simulate` decide with when no flag says
//! otherwise is exactly what its recipe trains (same bytes), and the two commands decide
//! with the same configuration.

mod common;

use serde_json::{json, Value};
use std::process::Command;

const SHIPPED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../risk/models/fraud-default");

/// Regenerates the shipped model from its recipe and compares every file's hash: a change
/// to the simulator, the engine's features or the trainer that moves the model fails here
/// until the model is regenerated (and docs/QUALITY.md re-measured with it).
#[test]
fn the_shipped_fraud_model_is_what_its_recipe_trains() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fraud-default");
    let o = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["model", "train-sim", "--out"])
        .arg(&out)
        .output()
        .expect("run xiezhi model train-sim");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    common::assert_regenerates_shipped(&out, std::path::Path::new(SHIPPED_DIR), &["recipe.json", "manifest.json", "model.json"], &format!("now {}; regenerate it with `cargo run --release -p xiezhi-cli -- model train-sim --out crates/risk/models/fraud-default`", summary["version"]));
    assert!(summary["test"]["roc_auc"].as_f64().unwrap() > 0.99, "{summary}");
}

/// `serve` with no configuration flags decides a payment under the same rules, policy,
/// scorer and engine that `simulate` with none reports measuring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_simulate_default_to_the_same_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, _stdout) = common::serve(dir.path(), &[]);
    let client = common::client();
    let post = |path: &str, body: Value| {
        let request = client.post(format!("{base}{path}")).json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let merchant_body =
        json!({"name": "Lotus Market", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let (status, merchant) = post("/v1/merchants", merchant_body).await;
    assert!(status.is_success(), "{merchant}");
    let line_body = json!({"user_id": "u1", "currency": "CNY", "limit": "5000.00",
        "profile": {"birth_date": "1990-04-01", "kyc_level": 2, "region": "CN-SH"}});
    let (status, line) = post("/v1/credit-lines", line_body).await;
    assert!(status.is_success(), "{line}");
    let pay = json!({"credit_line_id": line["id"], "qr_payload": merchant["qr_payload"], "amount": "35.00",
        "context": {"device_id": "phone-1", "ip": "198.51.100.7", "network": "wifi"}});
    let (status, payment) = post("/v1/payments", pay).await;
    assert!(status.is_success(), "{payment}");
    let url = format!("{base}/v1/payments/{}/decision", payment["id"].as_str().unwrap());
    let record: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    let served = record["versions"].clone();

    let o = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["simulate", "--users", "20", "--merchants", "5", "--days", "1", "--warmup-days", "0"])
        .args(["--baselines", "none", "--json"])
        .output()
        .expect("run xiezhi simulate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let simulated = report["simulation"]["versions"].clone();
    assert_eq!(report["simulation"]["configuration"], "default");
    assert!(served["scorer"].as_str().unwrap().starts_with("gbdt@gbdt-sim_traffic-"), "{served}");
    assert_eq!(served, simulated, "serve decides with {served}, simulate measures {simulated}");
}
