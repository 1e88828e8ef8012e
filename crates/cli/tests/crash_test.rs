//! Crash safety of the embedded store: the server is killed with SIGKILL in the middle of a
//! stream of payments; the store must reopen with balanced books and every payment that was
//! acknowledged (HTTP 201) present with the outcome the client was told.

mod common;

use common::Server;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn xiezhi() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xiezhi"))
}

/// Starts `xiezhi serve` on a free port and returns the child and its base URL.
fn serve(data_dir: &Path) -> (Server, String) {
    let (server, base, _stdout) = common::serve(data_dir, &[]);
    (server, base)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Result<(u16, Value), reqwest::Error> {
    let response = client.post(url).json(&body).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_write_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    let mut qr = String::new();

    for round in 0..3 {
        let (mut child, base) = serve(dir.path());
        if round == 0 {
            let (status, merchant) = post(
                &client,
                format!("{base}/v1/merchants"),
                json!({"name": "Crash Mart", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"}),
            )
            .await
            .unwrap();
            assert_eq!(status, 201);
            qr = merchant["qr_payload"].as_str().unwrap().to_owned();
            for _ in 0..8 {
                let (status, line) = post(
                    &client,
                    format!("{base}/v1/credit-lines"),
                    json!({"user_id": "u", "currency": "CNY", "limit": "300.00"}),
                )
                .await
                .unwrap();
                assert_eq!(status, 201);
                lines.push(line["id"].as_str().unwrap().to_owned());
            }
        }
        // 16 concurrent clients pay until the server dies under them.
        let mut tasks = Vec::new();
        for worker in 0..16 {
            let client = client.clone();
            let base = base.clone();
            let line = lines[worker % lines.len()].clone();
            let qr = qr.clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let body = json!({"credit_line_id": line, "qr_payload": qr, "amount": format!("{}.{:02}", 1 + i % 7, i % 100)});
                    match post(&client, format!("{base}/v1/payments"), body).await {
                        Ok((201, payment)) => acked.push((payment["id"].as_str().unwrap().to_owned(), payment["status"].as_str().unwrap().to_owned())),
                        Ok((status, body)) => panic!("unexpected {status}: {body}"),
                        Err(_) => break, // the server is gone
                    }
                }
                acked
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 250 * round)).await;
        child.0.kill().expect("SIGKILL");
        child.0.wait().unwrap();
        for task in tasks {
            acknowledged.extend(task.await.unwrap());
        }

        let check = xiezhi().args(["store", "check", "--data-dir"]).arg(dir.path()).output().unwrap();
        let report: Value = serde_json::from_slice(&check.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&check.stderr)));
        assert!(check.status.success(), "books do not balance after a crash: {report}");
        assert_eq!(report["balanced"], true);
    }
    assert!(acknowledged.len() > 50, "too little traffic to mean anything: {}", acknowledged.len());

    // Every acknowledged payment is there, with the outcome the client saw.
    let (child, base) = serve(dir.path());
    for (id, status) in &acknowledged {
        let payment: Value = client.get(format!("{base}/v1/payments/{id}")).send().await.unwrap().json().await.unwrap();
        assert_eq!(payment["status"].as_str(), Some(status.as_str()), "payment {id} after restart: {payment}");
    }
    // And no credit line is overdrawn.
    for line in &lines {
        let line: Value =
            client.get(format!("{base}/v1/credit-lines/{line}")).send().await.unwrap().json().await.unwrap();
        assert!(!line["available"].as_str().unwrap().starts_with('-'), "{line}");
    }
    drop(child);
}
