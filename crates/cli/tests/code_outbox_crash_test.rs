//! One-time codes through the transactional outbox under SIGKILL. A step-up's code is
//! written, sealed, in the challenge's batch; the server is killed after that commit and
//! before any delivery (the SMS gateway refuses until the test lets it through). Restarted
//! with the same `--outbox-key-file`, the gateway receives the code exactly once and it
//! passes the challenge; restarted with another key, the row is dead with a clear reason
//! and nothing is sent. The store file never holds the code in plaintext, and neither
//! `GET /v1/outbox` nor `xiezhi outbox list` shows it. A code whose challenge expired
//! before the gateway took it is never sent; without a configured key `serve` says at start
//! that pending codes die with the process.

mod common;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::io::BufReader;
use std::process::{ChildStdout, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "0c1d2e3f405162738495a6b7c8d9eafb0c1d2e3f405162738495a6b7c8d9eafb";
const OTHER_KEY: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";

/// The SMS gateway: refuses (503) until `open`, then keeps what it accepts.
#[derive(Clone, Default)]
struct Gateway {
    open: Arc<AtomicBool>,
    refused: Arc<Mutex<Vec<Value>>>,
    accepted: Arc<Mutex<Vec<Value>>>,
}

async fn receive(State(gateway): State<Gateway>, Json(message): Json<Value>) -> StatusCode {
    if !gateway.open.load(Ordering::SeqCst) {
        gateway.refused.lock().unwrap().push(message);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    gateway.accepted.lock().unwrap().push(message);
    StatusCode::ACCEPTED
}

async fn start_gateway() -> (String, Gateway) {
    let gateway = Gateway::default();
    let router = axum::Router::new().route("/messages", axum::routing::post(receive)).with_state(gateway.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/messages", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, gateway)
}

struct Running {
    server: common::Server,
    base: String,
    _stdout: BufReader<ChildStdout>,
}

fn start(dir: &std::path::Path, gateway: &str, key_file: &std::path::Path) -> Running {
    let key = key_file.to_str().unwrap();
    // The hand-weighted scorer steps up a new phone paying 1500.00.
    let args = [
        "--sms-gateway-url",
        gateway,
        "--outbox-key-file",
        key,
        "--outbox-lease-secs",
        "2",
        "--fraud-model",
        "heuristic",
    ];
    let (server, base, stdout) = common::serve(dir, &args);
    Running { server, base, _stdout: stdout }
}

fn kill(running: &mut Running) {
    running.server.0.kill().unwrap(); // SIGKILL
    running.server.0.wait().unwrap();
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let response = common::client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

async fn get_text(base: &str, path: &str) -> String {
    let response = common::client().get(format!("{base}{path}")).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.text().await.unwrap()
}

/// A new shopper's stepped-up payment; returns its challenge id (committed with its code).
async fn step_up(base: &str, user: &str) -> String {
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let qr = post(base, "/v1/merchants", merchant).await["qr_payload"].as_str().unwrap().to_owned();
    let line = json!({"user_id": user, "currency": "CNY", "limit": "20000.00",
                      "profile": {"birth_date": "1990-04-01", "kyc_level": 2, "region": "CN-SH"}});
    let line = post(base, "/v1/credit-lines", line).await["id"].as_str().unwrap().to_owned();
    let body = json!({"credit_line_id": line, "qr_payload": qr, "amount": "1500.00",
                      "context": {"device_id": "new-phone", "ip": "198.51.100.7", "network": "4g"}});
    let paid = post(base, "/v1/payments", body).await;
    assert_eq!(paid["decision"]["outcome"], "step_up", "{paid}");
    paid["decision"]["challenge_id"].as_str().unwrap().to_owned()
}

fn for_challenge(messages: &Mutex<Vec<Value>>, challenge_id: &str) -> Vec<Value> {
    messages.lock().unwrap().iter().filter(|m| m["challenge_id"] == challenge_id).cloned().collect()
}

fn code_of(message: &Value) -> String {
    let text = &message["text"];
    [&text["en"], &text["zh"]]
        .iter()
        .find_map(|t| t.as_str().and_then(xiezhi_core::code_in))
        .unwrap_or_else(|| panic!("no code in {message}"))
}

/// Every byte of the store (database, journal and WAL), as text where it is text.
fn store_bytes(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("xiezhi.sqlite3") {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }
    all
}

/// Whether `text` holds `code` as a word of its own (six digits inside a longer number or
/// an id turn up by chance).
fn holds_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn outbox_list(base: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["outbox", "list", "--json", "--server", base])
        .env("XIEZHI_KEY", common::ADMIN_KEY)
        .env_remove("XIEZHI_API_KEY")
        .output()
        .expect("run xiezhi");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_committed_before_a_sigkill_arrives_once_after_restart_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("outbox.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let data = dir.path().join("data");
    let (url, gateway) = start_gateway().await;
    let mut running = start(&data, &url, &key_file);
    let challenge_id = step_up(&running.base, "u1").await;
    // The commit is durable (the payment answered); the gateway refused what was tried.
    kill(&mut running);
    assert!(for_challenge(&gateway.accepted, &challenge_id).is_empty(), "nothing delivered before the kill");
    let at_kill = store_bytes(&data);

    gateway.open.store(true, Ordering::SeqCst);
    let running = start(&data, &url, &key_file);
    wait_for("the code after the restart", || !for_challenge(&gateway.accepted, &challenge_id).is_empty()).await;
    // Anything still in flight lands before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = for_challenge(&gateway.accepted, &challenge_id);
    assert_eq!(got.len(), 1, "the code arrives exactly once: {got:?}");
    assert_eq!(got[0]["kind"], "challenge_code");
    let code = code_of(&got[0]);
    let answered = post(&running.base, &format!("/v1/challenges/{challenge_id}"), json!({"code": code})).await;
    assert_eq!(answered["status"], "passed", "{answered}");

    assert!(!holds_code(&at_kill, &code), "the store held the code in plaintext while it waited");
    assert!(!holds_code(&store_bytes(&data), &code), "the store holds the code in plaintext");
    let listed = get_text(&running.base, "/v1/outbox?limit=100").await;
    assert!(listed.contains("challenge_code"), "{listed}");
    assert!(!holds_code(&listed, &code) && !listed.contains("xc1:"), "GET /v1/outbox shows the code: {listed}");
    let listed = outbox_list(&running.base);
    assert!(!holds_code(&listed, &code) && !listed.contains("xc1:"), "xiezhi outbox list shows the code: {listed}");
    // Delivered: the ciphertext is gone from the row too.
    drop(running);
    let mut store = xiezhi_store_sqlite::SqliteStore::open_dir(&data).unwrap();
    let rows = xiezhi_store::Store::records(&mut store, xiezhi_store::RecordKind::Outbox).unwrap();
    let row = rows.iter().find(|r| r.body.contains(&challenge_id)).expect("the code's row");
    assert!(row.body.contains("\"delivered\"") && !row.body.contains("xc1:"), "{}", row.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_sealed_under_another_key_is_never_sent_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("outbox.key");
    std::fs::write(&key_file, KEY).unwrap();
    let data = dir.path().join("data");
    let (url, gateway) = start_gateway().await;
    let mut running = start(&data, &url, &key_file);
    let challenge_id = step_up(&running.base, "u2").await;
    kill(&mut running);

    std::fs::write(&key_file, OTHER_KEY).unwrap();
    gateway.open.store(true, Ordering::SeqCst);
    let running = start(&data, &url, &key_file);
    let mut dead = String::new();
    let base = running.base.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dead.contains("challenge_code") {
        assert!(Instant::now() < deadline, "the code's row never went dead: {dead}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        dead = get_text(&base, "/v1/outbox?status=dead").await;
    }
    let page: Value = serde_json::from_str(&dead).unwrap();
    let row = &page["messages"][0];
    assert_eq!(row["channel"], "sms");
    assert!(row["last_error"].as_str().unwrap().contains("another key"), "a clear reason: {row}");
    assert!(for_challenge(&gateway.accepted, &challenge_id).is_empty(), "nothing sent, garbled or not");
    // A dead code's row is never replayed.
    let id = row["id"].as_str().unwrap();
    let response =
        common::client().post(format!("{base}/v1/outbox/replay")).json(&json!({"id": id})).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "outbox_code_not_replayable", "{problem}");
}

#[test]
fn without_an_outbox_key_serve_warns_that_pending_codes_die_with_the_process() {
    use std::io::{BufRead, Read};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["serve", "--listen", "127.0.0.1:0", "--phone-gateway", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("XIEZHI_OUTBOX_KEY")
        .env("XIEZHI_BOOTSTRAP_ADMIN_KEY", common::ADMIN_KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut server = common::Server(child);
    let mut listening = String::new();
    stdout.read_line(&mut listening).unwrap();
    assert!(listening.contains("listening"), "{listening}");
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let mut logged = String::new();
    stderr.read_to_string(&mut logged).unwrap();
    assert!(logged.contains("no outbox key"), "a clear warning at start: {logged}");
    assert!(logged.contains("cannot be read after a restart"), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_whose_challenge_expired_is_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("outbox.key");
    std::fs::write(&key_file, KEY).unwrap();
    let (url, gateway) = start_gateway().await;
    // A clock 1,000x the wall: the challenge's five minutes pass in a third of a second, while
    // the gateway still refuses.
    let key = key_file.to_str().unwrap();
    let args =
        ["--sms-gateway-url", &url, "--outbox-key-file", key, "--fraud-model", "heuristic", "--clock-speed", "1000"];
    let (_server, base, _stdout) = common::serve(&dir.path().join("data"), &args);
    let challenge_id = step_up(&base, "u3").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    gateway.open.store(true, Ordering::SeqCst);
    let mut dead = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dead.contains("challenge_code") {
        assert!(Instant::now() < deadline, "the expired code's row never went dead: {dead}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        dead = get_text(&base, "/v1/outbox?status=dead").await;
    }
    let page: Value = serde_json::from_str(&dead).unwrap();
    assert!(page["messages"][0]["last_error"].as_str().unwrap().starts_with("expired"), "{page}");
    // Time for a wrongful send to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(for_challenge(&gateway.accepted, &challenge_id).is_empty(), "an expired code was sent");
}
