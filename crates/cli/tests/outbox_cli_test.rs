//! `xiezhi outbox list|replay` against a running `xiezhi serve`: a webhook the receiver
//! answers `410 Gone` is parked as a dead letter at once; `replay --all-dead` sends it again
//! under the same id once the receiver takes it; replaying what is not dead is refused.

mod common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_cli_test_0123456789abcdef0123456789abcdef";

#[derive(Clone, Default)]
struct Receiver {
    /// Message ids answered 2xx, in order.
    accepted: Arc<Mutex<Vec<String>>>,
    gone: Arc<AtomicBool>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap) -> StatusCode {
    if receiver.gone.load(Ordering::SeqCst) {
        return StatusCode::GONE;
    }
    let id = headers.get("Xiezhi-Message-Id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    receiver.accepted.lock().unwrap().push(id.to_owned());
    StatusCode::NO_CONTENT
}

use common::xiezhi_as_admin as xiezhi;

fn json_of(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap()
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let response = common::client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

fn dead_ids(base: &str) -> Vec<String> {
    let page = json_of(&xiezhi(&["outbox", "list", "--status", "dead", "--json"], base));
    page["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_under_their_own_ids() {
    let receiver = Receiver::default();
    receiver.gone.store(true, Ordering::SeqCst);
    let router = axum::Router::new().route("/hooks", axum::routing::post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let data = dir.path().join("data");
    let args = ["--webhook-url", hook.as_str(), "--webhook-secret-file", secret_file.to_str().unwrap()];
    let (_server, base, _stdout) = common::serve(&data, &args);
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let qr = post(&base, "/v1/merchants", merchant).await["qr_payload"].as_str().unwrap().to_owned();
    let line = post(&base, "/v1/credit-lines", json!({"user_id": "eve", "currency": "CNY", "limit": "900.00"})).await;
    let entry = json!({"list": "deny", "subject_kind": "user", "subject": "eve", "reason": "t", "author": "t"});
    post(&base, "/v1/lists", entry).await;
    let body = json!({"credit_line_id": line["id"], "qr_payload": qr, "amount": "9.00", "context": {"device_id": "d"}});
    assert_eq!(post(&base, "/v1/payments", body).await["decision"]["outcome"], "restrict");

    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = dead_ids(&base);
        if !dead.is_empty() {
            break dead;
        }
        assert!(Instant::now() < deadline, "the 410 never parked the message");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    let table = String::from_utf8_lossy(&xiezhi(&["outbox", "list", "--status", "dead"], &base).stdout).into_owned();
    assert!(table.contains(&dead[0]) && table.contains("410") && table.contains("restriction_imposed"), "{table}");
    assert!(!table.contains("eve"), "no recipient in the listing: {table}");

    receiver.gone.store(false, Ordering::SeqCst);
    let replayed = json_of(&xiezhi(&["outbox", "replay", "--all-dead", "--json"], &base));
    assert_eq!(replayed["replayed"], json!(dead), "{replayed}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.accepted.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the replayed message never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*receiver.accepted.lock().unwrap(), dead, "the same message, under the same id");
    assert!(dead_ids(&base).is_empty());

    // Replaying what is not dead: exit 1 and the server's problem.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let refused = xiezhi(&["outbox", "replay", "--id", &dead[0]], &base);
        let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
        if stderr.contains("409 outbox_not_dead") && stderr.contains("delivered") {
            assert_eq!(refused.status.code(), Some(1));
            break;
        }
        // The delivery may not be recorded yet (the receiver answers before the server
        // writes it down).
        assert!(Instant::now() < deadline, "{stderr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let unknown = xiezhi(&["outbox", "replay", "--id", "msg_nope"], &base);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("404 outbox_message_not_found"));
}
