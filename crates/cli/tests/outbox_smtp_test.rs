//! Email end to end: `xiezhi serve --smtp-url` against a real SMTP server on loopback
//! (aiosmtpd through `scripts/services`). An appeal decided reaches its user's mailbox in
//! the language of their line's contact: English for one user, Chinese (the default) for
//! another; the outbox row of each is then `delivered`.
//!
//! The server is the one `XIEZHI_TEST_SMTP` and `XIEZHI_TEST_SMTP_MAILBOX` name, else one
//! this test starts through `scripts/services`. It never skips.

mod common;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Smtp {
    address: String,
    mailbox: PathBuf,
    owned: Option<tempfile::TempDir>,
}

fn services_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services")
}

impl Smtp {
    fn get() -> Smtp {
        if let (Ok(address), Ok(mailbox)) =
            (std::env::var("XIEZHI_TEST_SMTP"), std::env::var("XIEZHI_TEST_SMTP_MAILBOX"))
        {
            return Smtp { address, mailbox: mailbox.into(), owned: None };
        }
        let state = tempfile::tempdir().unwrap();
        let output = Command::new(services_script()).arg("start").arg(state.path()).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let var =
            |name: &str| stdout.lines().find_map(|l| l.strip_prefix(&format!("export {name}=")).map(str::to_owned));
        match (output.status.success(), var("XIEZHI_TEST_SMTP"), var("XIEZHI_TEST_SMTP_MAILBOX")) {
            (true, Some(address), Some(mailbox)) => Smtp { address, mailbox: mailbox.into(), owned: Some(state) },
            _ => panic!("scripts/services start failed: {}", String::from_utf8_lossy(&output.stderr)),
        }
    }

    /// The message delivered to `address`, waiting for it.
    fn received_by(&self, address: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for entry in std::fs::read_dir(&self.mailbox).unwrap().flatten() {
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
                let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
                if message["rcpt_tos"] == json!([address]) {
                    return message;
                }
            }
            assert!(Instant::now() < deadline, "nothing reached {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(state) = &self.owned {
            let _ = Command::new(services_script()).arg("stop").arg(state.path()).status();
        }
    }
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let response = common::client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// Opens a line with `contact`, restricts it, files an appeal and upholds it.
async fn appeal_decided(base: &str, qr: &str, user: &str, contact: Value) -> String {
    let line = json!({"user_id": user, "currency": "CNY", "limit": "900.00", "contact": contact});
    let line = post(base, "/v1/credit-lines", line).await["id"].as_str().unwrap().to_owned();
    let entry = json!({"list": "deny", "subject_kind": "user", "subject": user, "reason": "t", "author": "t"});
    post(base, "/v1/lists", entry).await;
    let body = json!({"credit_line_id": line, "qr_payload": qr, "amount": "9.00", "context": {"device_id": "d"}});
    let payment = post(base, "/v1/payments", body).await;
    assert_eq!(payment["decision"]["outcome"], "restrict");
    let appeal = json!({"decision_id": payment["id"], "message": "it was me"});
    let id = post(base, "/v1/appeals", appeal).await["id"].as_str().unwrap().to_owned();
    post(base, &format!("/v1/appeals/{id}/claim"), json!({})).await;
    post(base, &format!("/v1/appeals/{id}/decision"), json!({"outcome": "uphold", "note": "n"})).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appeal_decided_reaches_the_users_mailbox_in_their_language() {
    let smtp = Smtp::get();
    let dir = tempfile::tempdir().unwrap();
    let smtp_url = format!("smtp://{}", smtp.address);
    let args = ["--smtp-url", smtp_url.as_str(), "--smtp-from", "Xiezhi <notify@xiezhi.test>"];
    let (_server, base, _stdout) = common::serve(dir.path(), &args);
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let qr = post(&base, "/v1/merchants", merchant).await["qr_payload"].as_str().unwrap().to_owned();
    // Addresses unique to this run: a shared mailbox keeps earlier runs' messages.
    let run = std::process::id();
    let (en, zh) = (format!("en-{run}@example.com"), format!("zh-{run}@example.com"));
    let en_appeal = appeal_decided(&base, &qr, "ada", json!({"email": en, "language": "en"})).await;
    let zh_appeal = appeal_decided(&base, &qr, "bai", json!({"email": zh})).await;

    // Each user gets three emails (restriction imposed, appeal received, appeal decided);
    // the decision's is found by its subject.
    let decided = |address: &str, subject: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let first = smtp.received_by(address);
            let found = std::fs::read_dir(&smtp.mailbox).unwrap().flatten().find_map(|e| {
                let m: Value = serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
                (m["rcpt_tos"] == json!([address]) && m["subject"] == subject).then_some(m)
            });
            if let Some(found) = found {
                return found;
            }
            assert!(Instant::now() < deadline, "no `{subject}` for {address}; got: {first}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let got = decided(&en, "Your appeal has been decided");
    assert_eq!(got["mail_from"], "notify@xiezhi.test");
    let body = got["body"].as_str().unwrap();
    assert!(body.contains("kept the decision") && body.contains(&en_appeal), "{body}");
    let got = decided(&zh, "您的申诉已有结果");
    let body = got["body"].as_str().unwrap();
    assert!(body.contains("维持原决定") && body.contains(&zh_appeal), "{body}");
    let id = got["xiezhi_message_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msg_"), "{got}");
    assert_eq!(got["message_id"], format!("<{id}@xiezhi.notify>"));
}
