//! Email through lettre to a real SMTP server on loopback (aiosmtpd, from `scripts/services`):
//! the message arrives, addressed as the outbox said, with its subject and body in the
//! recipient's language and its outbox id in `Message-ID` and `Xiezhi-Message-Id`.
//!
//! The server is the one `XIEZHI_TEST_SMTP` (`127.0.0.1:PORT`) and
//! `XIEZHI_TEST_SMTP_MAILBOX` name (`eval "$(scripts/services start)"`, as scripts/test does);
//! without them the test starts its own through `scripts/services`. It never skips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xiezhi_notify::email::DEFAULT_SMTP_TIMEOUT;
use xiezhi_notify::*;

/// The SMTP server to send to: the environment's, or one this test started (and stops).
struct SmtpServer {
    address: String,
    mailbox: PathBuf,
    owned: Option<tempfile::TempDir>,
}

fn services_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services")
}

impl SmtpServer {
    fn get() -> SmtpServer {
        if let (Ok(address), Ok(mailbox)) =
            (std::env::var("XIEZHI_TEST_SMTP"), std::env::var("XIEZHI_TEST_SMTP_MAILBOX"))
        {
            return SmtpServer { address, mailbox: mailbox.into(), owned: None };
        }
        let state = tempfile::tempdir().expect("a temporary directory");
        let output = Command::new(services_script()).arg("start").arg(state.path()).output();
        let output = output.unwrap_or_else(|e| panic!("cannot run scripts/services start: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let var =
            |name: &str| stdout.lines().find_map(|l| l.strip_prefix(&format!("export {name}=")).map(str::to_owned));
        match (output.status.success(), var("XIEZHI_TEST_SMTP"), var("XIEZHI_TEST_SMTP_MAILBOX")) {
            (true, Some(address), Some(mailbox)) => SmtpServer { address, mailbox: mailbox.into(), owned: Some(state) },
            _ => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let last = stderr.lines().last().unwrap_or("no output");
                panic!("the SMTP test server did not start (scripts/services start): {last}");
            }
        }
    }

    fn channel(&self) -> EmailChannel {
        let (host, port) = self.address.rsplit_once(':').expect("XIEZHI_TEST_SMTP is HOST:PORT");
        let config = SmtpConfig {
            host: host.into(),
            port: port.parse().expect("XIEZHI_TEST_SMTP's port is a number"),
            security: SmtpSecurity::Plain,
            credentials: None,
            from: "Xiezhi <notify@xiezhi.test>".into(),
            hello_name: "localhost".into(),
            timeout: DEFAULT_SMTP_TIMEOUT,
        };
        EmailChannel::new(&config).expect("a loopback SMTP channel")
    }

    /// What the server wrote for the message with outbox id `id`, waiting for it.
    fn received(&self, id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for entry in std::fs::read_dir(&self.mailbox).expect("the mailbox directory").flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
                if json["xiezhi_message_id"] == id {
                    return json;
                }
            }
            assert!(Instant::now() < deadline, "message {id} never reached {}", self.mailbox.display());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(state) = &self.owned {
            let _ = Command::new(services_script()).arg("stop").arg(state.path()).status();
        }
    }
}

fn message(kind: EventKind, address: &str, language: Language, arguments: &[(&str, &str)]) -> OutboxMessage {
    let arguments: BTreeMap<String, String> =
        arguments.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    OutboxMessage {
        // Unique per run: a shared mailbox keeps every run's messages.
        id: new_message_id().expect("OS generator"),
        kind,
        recipient: Recipient::Email { address: address.into() },
        language,
        arguments,
    }
}

#[tokio::test]
async fn email_arrives_at_a_real_smtp_server_in_the_recipients_language() {
    let server = SmtpServer::get();
    let channels = Channels { email: Some(Arc::new(server.channel())), ..Channels::default() };
    let dispatcher = Dispatcher::new(channels, DispatcherConfig::default()).expect("dispatcher");
    let zh = message(
        EventKind::RestrictionImposed,
        "shopper-zh@example.com",
        Language::Zh,
        &[
            ("restriction_id", "rs_42"),
            ("scope", "scan_to_pay"),
            ("expires_at", "2026-05-02T10:00:00Z"),
            ("appeal_deadline", "2026-05-09T10:00:00Z"),
        ],
    );
    let en = message(
        EventKind::CompensationPaid,
        "shopper-en@example.com",
        Language::En,
        &[("appeal_id", "ap_7"), ("amount", "50.00"), ("currency", "CNY")],
    );
    let batch = vec![OutboxEntry::new(zh.clone()), OutboxEntry::new(en.clone())];
    let transitions = dispatcher.dispatch(batch, 0).await.expect("dispatches");
    for t in &transitions {
        assert!(matches!(t.entry.state, DeliveryState::Delivered { .. }), "{t:?}");
    }

    let got = server.received(&zh.id);
    assert_eq!(got["rcpt_tos"], serde_json::json!(["shopper-zh@example.com"]));
    assert_eq!(got["mail_from"], "notify@xiezhi.test");
    assert_eq!(got["message_id"], format!("<{}@xiezhi.notify>", zh.id));
    assert_eq!(got["content_type"], "text/plain");
    assert_eq!(got["subject"], "您账户的信用支付已暂停");
    let body = got["body"].as_str().expect("a text body");
    assert!(body.contains("我们已暂停您账户的扫码信用支付，至 2026-05-02T10:00:00Z 为止。"), "{body}");
    assert!(body.contains("编号：rs_42") && body.contains("本邮件由獬豸发送"), "{body}");

    let got = server.received(&en.id);
    assert_eq!(got["to"], "shopper-en@example.com");
    assert_eq!(got["subject"], "Compensation has been paid to your credit line");
    let body = got["body"].as_str().expect("a text body");
    assert!(body.contains("We paid 50.00 CNY into your credit line"), "{body}");
    assert!(body.contains("This message was sent by Xiezhi."), "{body}");
}

#[tokio::test]
async fn an_smtp_server_that_is_not_there_is_retried() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("binds").local_addr().expect("address").port();
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::Plain,
        credentials: None,
        from: "notify@xiezhi.test".into(),
        hello_name: "localhost".into(),
        timeout: Duration::from_secs(5),
    };
    let channels =
        Channels { email: Some(Arc::new(EmailChannel::new(&config).expect("valid"))), ..Channels::default() };
    let dispatcher = Dispatcher::new(channels, DispatcherConfig::default()).expect("dispatcher");
    let m = message(
        EventKind::AppealReceived,
        "a@example.com",
        Language::En,
        &[("appeal_id", "ap_1"), ("deadline", "soon")],
    );
    let transitions = dispatcher.dispatch(vec![OutboxEntry::new(m)], 0).await.expect("dispatches");
    assert!(matches!(transitions[0].entry.state, DeliveryState::RetryAt { .. }), "{transitions:?}");
    assert!(transitions[0].entry.last_error.as_deref().is_some_and(|e| e.starts_with("SMTP: ")));
}
