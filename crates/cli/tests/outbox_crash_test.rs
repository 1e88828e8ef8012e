//! The transactional outbox under SIGKILL: `xiezhi serve` is killed right after an event
//! commits (a restriction imposed, its answer just received) and, in other rounds, right
//! after the operator's webhook receiver got the message but before the server could
//! record it delivered. After every restart nothing is lost: each event's message arrives,
//! under one message id, exactly once at the receiver's idempotent view (a set of ids),
//! and at least once raw; a message caught mid-send arrives twice raw, with the same id.
//! Every body is signed with the configured secret.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::process::ChildStdout;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_crash_test_0123456789abcdef0123456789abcdef";
/// Rounds of: restrict one user, kill, restart. Odd rounds kill mid-send.
const ROUNDS: usize = 6;

/// What the operator's receiver saw: every delivery as it came (raw), by message id.
#[derive(Default)]
struct Received {
    raw: Vec<(String, Value)>,
    bad_signatures: usize,
}

#[derive(Clone)]
struct Receiver {
    received: Arc<Mutex<Received>>,
    /// Answer slowly (the server is killed while it waits).
    slow: Arc<AtomicBool>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers.get("Xiezhi-Message-Id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let signature = headers.get("Xiezhi-Signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let verified = xiezhi_notify::verify_signature(SECRET.as_bytes(), signature, &body, now, 300).is_ok();
    {
        let mut received = receiver.received.lock().unwrap();
        if !verified {
            received.bad_signatures += 1;
        }
        received.raw.push((id, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    }
    if receiver.slow.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    StatusCode::OK
}

async fn start_receiver() -> (String, Receiver) {
    let receiver = Receiver { received: Arc::default(), slow: Arc::default() };
    let router = axum::Router::new().route("/hooks", axum::routing::post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, receiver)
}

struct Running {
    server: common::Server,
    base: String,
    _stdout: BufReader<ChildStdout>,
}

fn start(dir: &std::path::Path, hook: &str, secret_file: &std::path::Path) -> Running {
    let secret = secret_file.to_str().unwrap();
    let args = ["--webhook-url", hook, "--webhook-secret-file", secret, "--outbox-lease-secs", "2"];
    let (server, base, stdout) = common::serve(dir, &args);
    Running { server, base, _stdout: stdout }
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let response = common::client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

async fn get(base: &str, path: &str) -> Value {
    let response = common::client().get(format!("{base}{path}")).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// Restricts a new user's line; returns the restriction id from the event's commit.
async fn restrict(base: &str, qr: &str, user: &str) -> String {
    let line = post(base, "/v1/credit-lines", json!({"user_id": user, "currency": "CNY", "limit": "900.00"})).await;
    let line = line["id"].as_str().unwrap().to_owned();
    let entry = json!({"list": "deny", "subject_kind": "user", "subject": user, "reason": "t", "author": "t"});
    post(base, "/v1/lists", entry).await;
    let body = json!({"credit_line_id": line, "qr_payload": qr, "amount": "9.00", "context": {"device_id": "d"}});
    assert_eq!(post(base, "/v1/payments", body).await["decision"]["outcome"], "restrict");
    let page = get(base, &format!("/v1/restrictions?credit_line_id={line}")).await;
    page["restrictions"][0]["id"].as_str().unwrap().to_owned()
}

fn restriction_ids_seen(received: &Received) -> BTreeMap<String, BTreeSet<String>> {
    // restriction id → the message ids that told of it.
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, body) in &received.raw {
        if body["type"] == "restriction_imposed" {
            let restriction = body["data"]["restriction_id"].as_str().unwrap_or_default().to_owned();
            seen.entry(restriction).or_default().insert(id.clone());
        }
    }
    seen
}

async fn wait_for(receiver: &Receiver, what: &str, done: impl Fn(&Received) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&receiver.received.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_commit_and_delivery_loses_nothing_and_duplicates_only_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook-secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let data = dir.path().join("data");
    let (hook, receiver) = start_receiver().await;
    let mut running = start(&data, &hook, &secret_file);
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let qr = post(&running.base, "/v1/merchants", merchant).await["qr_payload"].as_str().unwrap().to_owned();
    let mut restrictions = vec![];
    let mut caught_mid_send = vec![];
    for round in 0..ROUNDS {
        let mid_send = round % 2 == 1;
        receiver.slow.store(mid_send, Ordering::SeqCst);
        let restriction = restrict(&running.base, &qr, &format!("user{round}")).await;
        if mid_send {
            // The receiver has the message and holds its answer: the server dies before
            // it can record the delivery.
            let r = restriction.clone();
            wait_for(&receiver, "the message mid-send", |got| restriction_ids_seen(got).contains_key(&r)).await;
            caught_mid_send.push(restriction.clone());
        }
        running.server.0.kill().unwrap(); // SIGKILL
        running.server.0.wait().unwrap();
        restrictions.push(restriction);
        running = start(&data, &hook, &secret_file);
    }
    receiver.slow.store(false, Ordering::SeqCst);
    let expected: BTreeSet<String> = restrictions.iter().cloned().collect();
    wait_for(&receiver, "every restriction's message", |got| {
        expected.iter().all(|r| restriction_ids_seen(got).contains_key(r))
    })
    .await;
    // Messages caught mid-send are sent again after their lease, under the same id.
    wait_for(&receiver, "the resends of messages caught mid-send", |got| {
        caught_mid_send
            .iter()
            .all(|r| got.raw.iter().filter(|(_, b)| b["data"]["restriction_id"] == r.as_str()).count() >= 2)
    })
    .await;
    // Let anything still in flight land before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let idempotent_count = {
        let received = receiver.received.lock().unwrap();
        assert_eq!(received.bad_signatures, 0, "every delivery is signed with the configured secret");
        let seen = restriction_ids_seen(&received);
        assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), expected, "no event lost, none invented");
        for (restriction, ids) in &seen {
            assert_eq!(ids.len(), 1, "restriction {restriction} was told under several message ids: {ids:?}");
        }
        let idempotent: BTreeSet<&String> = received.raw.iter().map(|(id, _)| id).collect();
        assert_eq!(idempotent.len(), ROUNDS, "the idempotent view holds each event's message once");
        assert!(received.raw.len() >= ROUNDS + caught_mid_send.len(), "raw: {}", received.raw.len());
        idempotent.len()
    };

    // The server agrees: every row delivered, none pending or dead.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered = get(&running.base, "/v1/outbox?status=delivered&limit=500").await;
        let pending = get(&running.base, "/v1/outbox?status=pending").await;
        let dead = get(&running.base, "/v1/outbox?status=dead").await;
        let count = |page: &Value| page["messages"].as_array().map_or(0, Vec::len);
        if count(&delivered) == idempotent_count && count(&pending) == 0 {
            assert_eq!(count(&dead), 0, "{dead}");
            let ids: BTreeSet<String> = delivered["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
            let received: BTreeSet<String> = idempotent_ids(&receiver);
            assert_eq!(ids, received, "the receiver got exactly the outbox's messages");
            break;
        }
        assert!(Instant::now() < deadline, "rows not delivered: {pending}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn idempotent_ids(receiver: &Receiver) -> BTreeSet<String> {
    receiver.received.lock().unwrap().raw.iter().map(|(id, _)| id.clone()).collect()
}
