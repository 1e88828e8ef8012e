//! Nothing secret in the logs: the demo runs with every log level on, a shopper is stepped
//! up, answers from their phone and holds a token; then every line the server wrote (stdout
//! and stderr) is scanned for the admin key, the demo's keys, the phone gateway's token,
//! the shopper token, the outbox key and every code the phone received (codes go through
//! the outbox: sealed in their rows, opened only to send).

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Whether `text` holds `code` as a word of its own (a code is six digits; the same digits
/// inside a longer number or an id are not the code).
fn holds_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// The key codes are sealed under in the outbox: a secret like the others.
const OUTBOX_KEY: &str = "5f3c9a0d7e21b4c8a6f0e9d3b7c1a5e2f4d8b0c6a9e3f7d1b5c2a8e4f0d6b3c9";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_token_or_code_reaches_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        // A clock 20x the wall: a code lives 15 s, long enough to answer on a loaded machine.
        .args(["serve", "--listen", "127.0.0.1:0", "--demo", "--demo-shoppers", "300", "--clock-speed", "20"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "trace")
        .env("XIEZHI_OUTBOX_KEY", OUTBOX_KEY)
        .env_remove("XIEZHI_BOOTSTRAP_ADMIN_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let server = common::Server(child);
    let mut printed = String::new();
    while !printed.contains("Ctrl-C stops") {
        assert!(stdout.read_line(&mut printed).unwrap() > 0, "the server stopped: {printed}");
    }
    let stdout_reader = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        rest
    });
    let base = printed.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap().trim().to_owned();
    let admin_key = read("admin.key");
    let keys: Value = serde_json::from_str(&read("demo-keys.json")).unwrap();
    let phone_token = read("phone-gateway.token");
    let phone_base = printed
        .lines()
        .find(|l| l.starts_with("phone gateway"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap()
        .trim_end_matches(';')
        .to_owned();

    // A shopper of the demo's wallet: a large payment from a new phone is stepped up; the
    // code arrives at the phone; the shopper answers it with a token of their own.
    let wallet = common::client_with(keys["wallet"].as_str().unwrap());
    let population: Value = serde_json::from_str(&read("demo-population-v5.json")).unwrap();
    // A shopper whose application got a line of 10,000.00 or more (not the first such one,
    // which other checks may use).
    let line = (0..population["line_ids"].as_array().unwrap().len())
        .filter(|i| {
            population["line_ids"][i].as_str().is_some_and(|id| !id.is_empty())
                && population["line_limits"][i].as_i64().is_some_and(|l| l >= 1_000_000)
        })
        .nth(1)
        .and_then(|i| population["line_ids"][i].as_str())
        .expect("shoppers with lines of 10,000.00 or more");
    let qr = population["merchant_ids"][0][1].as_str().unwrap();
    let body = serde_json::json!({"credit_line_id": line, "qr_payload": qr, "amount": "1500.00",
        "context": {"device_id": "log-scan-phone", "ip": "198.51.100.77", "network": "5g"}});
    let paid: Value =
        wallet.post(format!("{base}/v1/payments")).json(&body).send().await.unwrap().json().await.unwrap();
    let minted: Value = wallet
        .post(format!("{base}/v1/shopper-tokens"))
        .json(&serde_json::json!({"credit_line_id": line, "device_id": "log-scan-phone"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap().to_owned();
    let shopper = common::client_with(&token);
    let plain = reqwest::Client::new();
    let mut codes = Vec::new();
    if let Some(challenge_id) = paid["decision"]["challenge_id"].as_str() {
        let code = common::code_from_phone(&phone_base, &phone_token, challenge_id).await;
        let answered: Value = shopper
            .post(format!("{base}/v1/challenges/{challenge_id}"))
            .json(&serde_json::json!({"code": code}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answered["status"], "passed", "{answered}");
        let inbox = shopper.get(format!("{base}/v1/credit-lines/{line}/notifications")).send().await.unwrap();
        assert!(!holds_code(&inbox.text().await.unwrap(), &code), "the inbox shows no code");
    } else {
        panic!("the payment was not stepped up: {paid}");
    }
    // Let the demo run a while, then collect every code its shoppers' phones received.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all: Value = plain.get(&phone_base).bearer_auth(&phone_token).send().await.unwrap().json().await.unwrap();
    for message in all["messages"].as_array().unwrap() {
        if message["challenge_id"].is_string() {
            codes.push(code_in_message(message).unwrap_or_else(|| panic!("no code in {message}")));
        }
    }
    assert!(!codes.is_empty());
    drop(server);
    let logs = format!("{}{}{}", printed, stdout_reader.join().unwrap(), stderr_reader.join().unwrap());
    assert!(logs.lines().count() > 10, "the server logged little: {logs}");
    let secrets = [
        ("the admin key", admin_key.as_str()),
        ("the operator key", keys["operator"].as_str().unwrap()),
        ("the merchant key", keys["merchant"].as_str().unwrap()),
        ("the wallet key", keys["wallet"].as_str().unwrap()),
        ("the phone gateway token", phone_token.as_str()),
        ("the shopper token", token.as_str()),
        ("the outbox key", OUTBOX_KEY),
    ];
    for (what, secret) in secrets {
        assert!(!logs.contains(secret), "{what} is in the logs");
        assert!(!logs.contains(&secret[secret.len() - 16..]), "a part of {what} is in the logs");
    }
    for code in &codes {
        assert!(!holds_code(&logs, code), "the code {code} is in the logs");
    }
}

/// The code in a message the phone kept (its six-digit word), in whichever language it was
/// sent (the shopper's: Chinese unless their contact says English).
fn code_in_message(message: &Value) -> Option<String> {
    ["en", "zh"].iter().find_map(|language| message["text"][language].as_str().and_then(xiezhi_core::code_in))
}
