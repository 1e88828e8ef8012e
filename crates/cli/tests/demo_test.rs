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
    for _ in 0..17 {
        stdout.read_line(&mut banner).unwrap();
    }
    assert!(
        banner.contains("/v1/stats") && banner.contains("/metrics") && banner.contains("qr?format=png"),
        "{banner}"
    );

    let client = reqwest::Client::new();
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
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("demo-population-v3.json")).unwrap()).unwrap();
    let body = serde_json::json!({"credit_line_id": population["line_ids"][0], "qr_payload": population["merchant_ids"][0][1],
        "amount": "1500.00", "context": {"device_id": "a-brand-new-phone", "ip": "198.51.100.20", "network": "5g"}});
    let payment: Value =
        client.post(format!("{base}/v1/payments")).json(&body).send().await.unwrap().json().await.unwrap();
    assert_ne!(
        payment["decision"]["outcome"], "approve",
        "a large first payment from a new phone is checked: {payment}"
    );
    let explained = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["decision", "explain", payment["id"].as_str().unwrap(), "--server", &base])
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
    assert!(report["credit_lines"].as_u64().unwrap() >= 300, "{report}");
}
