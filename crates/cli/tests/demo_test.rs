//! The README's first command: `xiezhi serve --demo` comes up, seeds, and keeps paying.

mod common;

use serde_json::Value;
use std::io::BufRead;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seeds_and_sends_live_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, mut stdout) =
        common::serve(dir.path(), &["--demo", "--demo-rate", "50", "--demo-shoppers", "300"]);
    // The banner tells a newcomer where to look.
    let mut banner = String::new();
    while !banner.contains("Ctrl-C stops") {
        assert!(stdout.read_line(&mut banner).unwrap() > 0, "the server stopped: {banner}");
    }
    assert!(banner.contains("/v1/stats") && banner.contains("/metrics") && banner.contains("qr?format="), "{banner}");

    // The banner says where the keys are and never shows one.
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo-keys.json")).unwrap()).unwrap();
    for kind in ["operator", "merchant", "wallet"] {
        let key = keys[kind].as_str().unwrap();
        assert!(!banner.contains(key), "the banner shows the {kind} key");
    }
    assert!(banner.contains("demo-keys.json") && banner.contains("Authorization: Bearer $WALLET_KEY"), "{banner}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("demo-keys.json")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let client = common::client_with(keys["operator"].as_str().unwrap());
    let wallet = common::client_with(keys["wallet"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let stats: Value = client.get(format!("{base}/v1/stats")).send().await.unwrap().json().await.unwrap();
        if stats["payments"].as_u64().unwrap_or(0) >= 40 {
            break stats;
        }
        assert!(Instant::now() < deadline, "the demo sent too little traffic: {stats}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stats["failed_commits"], 0);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("xiezhi_payments_total{outcome=\"approve\"}"), "{metrics}");
    assert!(metrics.contains("xiezhi_decision_latency_us"), "{metrics}");
    assert!(banner.contains("decision explain"), "{banner}");

    // A payment of our own, explained by the CLI as a person reads it.
    let population: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo-population-v5.json")).unwrap()).unwrap();
    // A shopper whose application got a line of 10,000.00 or more (some are declined, some
    // get small starter lines).
    let line = (0..population["line_ids"].as_array().unwrap().len())
        .find(|i| {
            population["line_ids"][i].as_str().is_some_and(|id| !id.is_empty())
                && population["line_limits"][i].as_i64().is_some_and(|l| l >= 1_000_000)
        })
        .map(|i| population["line_ids"][i].clone())
        .expect("a shopper with a line of 10,000.00 or more");
    let body = serde_json::json!({"credit_line_id": line, "qr_payload": population["merchant_ids"][0][1],
        "amount": "1500.00", "context": {"device_id": "a-brand-new-phone", "ip": "198.51.100.20", "network": "5g"}});
    let payment: Value =
        wallet.post(format!("{base}/v1/payments")).json(&body).send().await.unwrap().json().await.unwrap();
    assert_ne!(
        payment["decision"]["outcome"], "approve",
        "a large first payment from a new phone is checked: {payment}"
    );
    let explained = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["decision", "explain", payment["id"].as_str().unwrap(), "--server", &base])
        .env("XIEZHI_API_KEY", keys["operator"].as_str().unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(explained.status.success(), "{text}{}", String::from_utf8_lossy(&explained.stderr));
    for expected in
        ["Outcome: ", "new_device_high_amount", "zh: ", "Ways out:", "What each layer found:", "Versions: engine 1"]
    {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["decision", "explain", "pay_nope", "--server", &base])
        .env("XIEZHI_API_KEY", keys["operator"].as_str().unwrap())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    drop(server);

    let check = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["store", "check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    // Every shopper applied; those the scorecard declined have no line.
    let declined = population["declined"].as_array().map_or(0, Vec::len) as u64;
    assert!(declined < 30, "{declined} of 300 applications declined");
    assert!(report["credit_lines"].as_u64().unwrap() + declined >= 300, "{report}");
}
