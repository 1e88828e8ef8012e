//! The README's first command: `xiezhi serve --demo` comes up, seeds, and keeps paying.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seeds_and_sends_live_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["serve", "--demo", "--demo-rate", "50", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let server = Server(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    // The banner tells a newcomer where to look.
    let mut banner = String::new();
    for _ in 0..12 {
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
    drop(server);

    let check = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["store", "check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["credit_lines"], 200);
}
