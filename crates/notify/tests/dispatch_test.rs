//! The dispatcher's routing and decisions with an in-process SMS gateway: each message
//! reaches its channel in its language, a missing channel waits, a message that cannot be
//! sent is parked at once, a slow channel times out, and limits are enforced.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xiezhi_notify::*;

#[derive(Default)]
struct Phone {
    texts: Mutex<Vec<SmsMessage>>,
    stall: bool,
}

impl SmsSender for Phone {
    fn send_sms(&self, sms: SmsMessage) -> BoxFuture<'_, Result<(), DeliveryError>> {
        Box::pin(async move {
            if self.stall {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if sms.to == "+000" {
                return Err(DeliveryError::Permanent("invalid number".into()));
            }
            self.texts.lock().unwrap().push(sms);
            Ok(())
        })
    }
}

fn challenge(id: &str, phone: &str, language: Language) -> OutboxMessage {
    let arguments: BTreeMap<String, String> =
        [("code", "042917"), ("minutes", "5"), ("challenge_id", "ch_1"), ("credit_line_id", "cl_1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    OutboxMessage {
        id: id.into(),
        kind: EventKind::ChallengeCode,
        recipient: Recipient::Sms { phone: phone.into() },
        language,
        arguments,
    }
}

fn with_phone(phone: Arc<Phone>, config: DispatcherConfig) -> Dispatcher {
    let channels = Channels { sms: Some(Arc::new(SmsChannel::new(phone))), ..Channels::default() };
    Dispatcher::new(channels, config).expect("valid")
}

#[tokio::test]
async fn each_message_goes_to_its_channel_in_its_language() {
    let phone = Arc::new(Phone::default());
    let dispatcher = with_phone(phone.clone(), DispatcherConfig::default());
    let batch = vec![
        OutboxEntry::new(challenge("m_zh", "+8613800000001", Language::Zh)),
        OutboxEntry::new(challenge("m_en", "+8613800000002", Language::En)),
    ];
    let transitions = dispatcher.dispatch(batch, 0).await.expect("dispatches");
    assert!(transitions.iter().all(|t| matches!(t.entry.state, DeliveryState::Delivered { .. })));
    let mut texts = phone.texts.lock().unwrap().clone();
    texts.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!((texts[0].id.as_str(), texts[0].to.as_str()), ("m_en", "+8613800000002"));
    assert_eq!(texts[0].text, "042917 is your Xiezhi code, valid 5 min. Never share it.");
    assert_eq!(texts[1].text, "【獬豸】验证码 042917，5 分钟内有效，请勿告诉他人。");
    assert!(!format!("{:?}", texts[0]).contains("042917"), "Debug never shows the text");
}

#[tokio::test]
async fn a_missing_channel_waits_and_an_unsendable_message_is_parked() {
    let phone = Arc::new(Phone::default());
    let dispatcher = with_phone(phone, DispatcherConfig::default());
    let mut email = challenge("m_mail", "x", Language::En);
    email.recipient = Recipient::Email { address: "a@example.com".into() };
    let mut corrupt = challenge("m_bad", "+8613800000003", Language::En);
    corrupt.arguments.remove("code");
    let batch = vec![
        OutboxEntry::new(email),
        OutboxEntry::new(corrupt),
        OutboxEntry::new(challenge("m_refused", "+000", Language::En)),
    ];
    let by_id: BTreeMap<String, OutboxEntry> = dispatcher
        .dispatch(batch, 0)
        .await
        .expect("dispatches")
        .into_iter()
        .map(|t| (t.entry.message.id.clone(), t.entry))
        .collect();
    assert!(matches!(by_id["m_mail"].state, DeliveryState::RetryAt { .. }));
    assert_eq!(by_id["m_mail"].last_error.as_deref(), Some("no Email channel is configured"));
    assert!(matches!(by_id["m_bad"].state, DeliveryState::Dead { .. }));
    assert_eq!(
        by_id["m_bad"].last_error.as_deref(),
        Some("invalid message: argument `code` is required for this kind (permanent)")
    );
    assert!(matches!(by_id["m_refused"].state, DeliveryState::Dead { .. }));
}

#[tokio::test]
async fn a_stalled_channel_times_out_and_is_retried() {
    let phone = Arc::new(Phone { stall: true, ..Phone::default() });
    let config = DispatcherConfig { attempt_timeout: Duration::from_millis(50), ..DispatcherConfig::default() };
    let dispatcher = with_phone(phone, config);
    let transitions = dispatcher
        .dispatch(vec![OutboxEntry::new(challenge("m", "+86138", Language::En))], 0)
        .await
        .expect("dispatches");
    assert!(matches!(transitions[0].entry.state, DeliveryState::RetryAt { .. }));
    assert_eq!(transitions[0].entry.last_error.as_deref(), Some("the attempt timed out"));
}

#[tokio::test]
async fn limits_are_enforced() {
    let phone = Arc::new(Phone::default());
    let config = |concurrency, lease_ms| DispatcherConfig { concurrency, lease_ms, ..DispatcherConfig::default() };
    let channels = Channels::default();
    assert_eq!(Dispatcher::new(channels.clone(), config(0, 600_000)).err(), Some(DispatchError::Concurrency));
    assert_eq!(Dispatcher::new(channels.clone(), config(65, 600_000)).err(), Some(DispatchError::Concurrency));
    assert_eq!(Dispatcher::new(channels.clone(), config(8, 1_000)).err(), Some(DispatchError::Lease));
    let bad_policy =
        DispatcherConfig { policy: RetryPolicy { max_attempts: 0, ..RetryPolicy::default() }, ..config(8, 600_000) };
    assert!(matches!(Dispatcher::new(channels, bad_policy), Err(DispatchError::Policy(_))));
    let dispatcher = with_phone(phone, DispatcherConfig::default());
    let too_many: Vec<OutboxEntry> =
        (0..=MAX_DISPATCH_BATCH).map(|i| OutboxEntry::new(challenge(&format!("m{i}"), "+86", Language::En))).collect();
    assert_eq!(dispatcher.claim(too_many, 0).err(), Some(DispatchError::BatchTooLarge));
}

#[tokio::test]
async fn deliver_sends_only_claimed_rows() {
    let phone = Arc::new(Phone::default());
    let dispatcher = with_phone(phone.clone(), DispatcherConfig::default());
    let mut delivered = OutboxEntry::new(challenge("m_done", "+86138", Language::En));
    delivered.begin(0).expect("begins");
    delivered.succeed(1).expect("delivered");
    let pending = OutboxEntry::new(challenge("m_pending", "+86138", Language::En));
    assert!(dispatcher.deliver(vec![delivered, pending]).await.is_empty());
    assert!(phone.texts.lock().unwrap().is_empty(), "nothing was sent");
}

/// A challenge code's row as the writer stores it: the code sealed beside the message.
fn sealed(key: &CodeKey, id: &str, expires_at_ms: i64) -> OutboxEntry {
    let mut message = challenge(id, "+8613800000009", Language::En);
    let code = message.arguments.remove("code").unwrap();
    let mut entry = OutboxEntry::new(message);
    let ciphertext = Some(key.seal(id, &code).unwrap());
    entry.code = Some(SealedCode { challenge_id: "ch_1".into(), expires_at_ms, ciphertext });
    entry.validate_at_rest().expect("a valid row at rest");
    entry
}

#[tokio::test]
async fn a_sealed_code_is_opened_to_send_and_erased_after() {
    let key = CodeKey::generate().unwrap();
    let phone = Arc::new(Phone::default());
    let dispatcher = with_phone(phone.clone(), DispatcherConfig::default()).with_code_key(key.clone());
    let transitions = dispatcher.dispatch(vec![sealed(&key, "m_code", i64::MAX)], 0).await.unwrap();
    assert!(matches!(transitions[0].entry.state, DeliveryState::Delivered { .. }));
    assert_eq!(transitions[0].entry.code.as_ref().unwrap().ciphertext, None, "erased once delivered");
    assert!(!transitions[0].entry.message.arguments.contains_key("code"), "the row never holds the code");
    let texts = phone.texts.lock().unwrap().clone();
    assert!(texts[0].text.contains("042917"), "{}", texts[0].text);
    assert_eq!(texts[0].challenge_id.as_deref(), Some("ch_1"));
}

#[tokio::test]
async fn an_expired_or_unopenable_code_is_never_sent() {
    let key = CodeKey::generate().unwrap();
    let phone = Arc::new(Phone::default());
    let other = with_phone(phone.clone(), DispatcherConfig::default()).with_code_key(CodeKey::generate().unwrap());
    let transitions = other.dispatch(vec![sealed(&key, "m_other_key", i64::MAX)], 0).await.unwrap();
    assert!(matches!(transitions[0].entry.state, DeliveryState::Dead { .. }), "another key: dead at once");
    assert!(transitions[0].entry.last_error.as_deref().unwrap().contains("undeliverable"));
    assert_eq!(transitions[0].entry.code.as_ref().unwrap().ciphertext, None);
    let clock: Arc<dyn Fn() -> i64 + Send + Sync> = Arc::new(|| 20_000);
    let channels = Channels { sms: Some(Arc::new(SmsChannel::new(phone.clone()))), ..Channels::default() };
    let late = Dispatcher::with_clock(channels, DispatcherConfig::default(), clock).unwrap().with_code_key(key.clone());
    let transitions = late.dispatch(vec![sealed(&key, "m_late", 10_000)], 20_000).await.unwrap();
    assert!(matches!(transitions[0].entry.state, DeliveryState::Dead { .. }), "expired: dead at once");
    assert!(transitions[0].entry.last_error.as_deref().unwrap().contains("expired"));
    let moved = sealed(&key, "m_late", i64::MAX).code;
    let mut elsewhere = sealed(&key, "m_elsewhere", i64::MAX);
    elsewhere.code = moved;
    let transitions = with_phone(phone.clone(), DispatcherConfig::default())
        .with_code_key(key)
        .dispatch(vec![elsewhere], 0)
        .await
        .unwrap();
    assert!(matches!(transitions[0].entry.state, DeliveryState::Dead { .. }), "a ciphertext moved to another row");
    assert!(phone.texts.lock().unwrap().is_empty(), "nothing was sent");
}
