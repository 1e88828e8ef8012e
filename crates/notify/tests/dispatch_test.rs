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
        [("code", "042917"), ("minutes", "5")].into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
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
