//! Webhooks against a real HTTP receiver on loopback: signatures verified as a receiver
//! would, failures retried until delivered, at-least-once delivery that an idempotent
//! receiver sees exactly once per message id, dead letters after the last attempt and
//! their replay, lost attempts reclaimed, bounded concurrency.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xiezhi_notify::dispatch::system_unix_millis;
use xiezhi_notify::webhook::system_unix_seconds;
use xiezhi_notify::*;

const SECRET: &str = "whsec_0f1e2d3c4b5a69788796a5b4c3d2e1f0_test";

/// A receiver that verifies each request's signature, fails the first `fail_first`
/// requests for each id *after* recording it (as if its answer were lost), and keeps an
/// idempotent view: the ids it has acted on, once each.
#[derive(Default)]
struct Receiver {
    fail_first: usize,
    healthy: AtomicBool,
    requests: AtomicUsize,
    per_id: Mutex<HashMap<String, usize>>,
    acted_on: Mutex<Vec<String>>,
    bad_signatures: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay_ms: u64,
}

async fn receive(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    rx.requests.fetch_add(1, Ordering::SeqCst);
    let now = rx.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    rx.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if rx.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(rx.delay_ms)).await;
    }
    rx.in_flight.fetch_sub(1, Ordering::SeqCst);
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if verify_signature(SECRET.as_bytes(), header, &body, system_unix_seconds(), 300).is_err() {
        rx.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(headers.get("xiezhi-message-id").and_then(|v| v.to_str().ok()), Some(id.as_str()));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("the body is JSON");
    assert_eq!(json["id"], id.as_str());
    if !rx.healthy.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let seen = {
        let mut per_id = rx.per_id.lock().unwrap();
        let n = per_id.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    if seen == 1 {
        rx.acted_on.lock().unwrap().push(id);
    }
    if seen <= rx.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn start(receiver: Receiver) -> (Arc<Receiver>, String) {
    let receiver = Arc::new(receiver);
    let app = Router::new().route("/hooks", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let url = format!("http://{}/hooks", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

fn message(i: usize, endpoint: &str) -> OutboxMessage {
    let arguments: BTreeMap<String, String> =
        [("appeal_id", format!("ap_{i}")), ("deadline", "2026-05-02T10:00:00Z".to_owned())]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    OutboxMessage {
        id: format!("msg_{i}"),
        kind: EventKind::AppealReceived,
        recipient: Recipient::Webhook { endpoint_id: endpoint.into() },
        language: Language::Zh,
        arguments,
    }
}

fn dispatcher(url: &str, policy: RetryPolicy, concurrency: usize) -> Dispatcher {
    let secret = WebhookSecret::new(SECRET).expect("valid");
    let endpoint = WebhookEndpoint::new("ops", url, secret).expect("valid");
    let webhook = WebhookChannel::new(vec![endpoint], WebhookConfig::default()).expect("channel");
    let channels = Channels { webhook: Some(Arc::new(webhook)), ..Channels::default() };
    let config = DispatcherConfig { policy, concurrency, ..DispatcherConfig::default() };
    Dispatcher::new(channels, config).expect("dispatcher")
}

/// The outbox as a store would keep it; transitions are applied as compare-and-set.
#[derive(Default)]
struct Outbox(BTreeMap<String, OutboxEntry>);

impl Outbox {
    fn with(messages: impl IntoIterator<Item = OutboxMessage>) -> Outbox {
        Outbox(messages.into_iter().map(|m| (m.id.clone(), OutboxEntry::new(m))).collect())
    }

    fn apply(&mut self, transitions: Vec<Transition>) {
        for t in transitions {
            let row = self.0.get_mut(&t.entry.message.id).expect("known row");
            assert_eq!((row.state, row.attempts), (t.from, t.from_attempts), "compare-and-set");
            *row = t.entry;
        }
    }

    fn rows(&self) -> Vec<OutboxEntry> {
        self.0.values().cloned().collect()
    }

    fn settled(&self) -> bool {
        self.0.values().all(|e| matches!(e.state, DeliveryState::Delivered { .. } | DeliveryState::Dead { .. }))
    }

    /// Runs the dispatcher's loop (claim, persist, deliver, persist) until every row is
    /// delivered or dead.
    async fn drain(&mut self, dispatcher: &Dispatcher) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.settled() {
            assert!(std::time::Instant::now() < deadline, "the outbox did not settle: {:?}", self.rows());
            let claim = dispatcher.claim(self.rows(), system_unix_millis()).expect("claims");
            let to_send: Vec<OutboxEntry> = claim.to_send.iter().map(|t| t.entry.clone()).collect();
            self.apply(claim.reclaimed);
            self.apply(claim.to_send);
            let outcomes = dispatcher.deliver(to_send).await;
            self.apply(outcomes);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

const FAST: RetryPolicy = RetryPolicy { base_ms: 5, cap_ms: 40, max_attempts: 6 };

#[tokio::test]
async fn failures_are_retried_and_the_idempotent_receiver_acts_once_per_id() {
    let (rx, url) = start(Receiver { fail_first: 3, healthy: AtomicBool::new(true), ..Receiver::default() }).await;
    let dispatcher = dispatcher(&url, FAST, 4);
    let mut outbox = Outbox::with((0..10).map(|i| message(i, "ops")));
    outbox.drain(&dispatcher).await;

    for row in outbox.rows() {
        assert!(matches!(row.state, DeliveryState::Delivered { .. }), "{row:?}");
        assert_eq!(row.attempts, 4, "three lost answers, then one that arrived");
    }
    assert_eq!(rx.requests.load(Ordering::SeqCst), 40, "every attempt reached the receiver");
    let acted: HashSet<String> = rx.acted_on.lock().unwrap().iter().cloned().collect();
    assert_eq!(rx.acted_on.lock().unwrap().len(), 10, "acted on once per id");
    assert_eq!(acted, (0..10).map(|i| format!("msg_{i}")).collect::<HashSet<_>>());
    assert_eq!(rx.bad_signatures.load(Ordering::SeqCst), 0);
    assert!(rx.max_in_flight.load(Ordering::SeqCst) <= 4);
}

#[tokio::test]
async fn after_the_last_attempt_a_message_is_dead_until_replayed() {
    let (rx, url) = start(Receiver::default()).await; // unhealthy: every answer is 503
    let dispatcher = dispatcher(&url, RetryPolicy { max_attempts: 3, ..FAST }, 2);
    let mut outbox = Outbox::with([message(1, "ops"), message(2, "ops")]);
    outbox.drain(&dispatcher).await;
    for row in outbox.rows() {
        assert!(matches!(row.state, DeliveryState::Dead { .. }), "{row:?}");
        assert_eq!(row.attempts, 3);
        assert_eq!(row.last_error.as_deref(), Some("HTTP 503 Service Unavailable"));
    }
    assert_eq!(rx.requests.load(Ordering::SeqCst), 6);
    // Dead letters are not due: another round sends nothing.
    assert!(dispatcher.claim(outbox.rows(), i64::MAX).expect("claims").to_send.is_empty());

    // The receiver comes back; the operator replays the dead letters.
    rx.healthy.store(true, Ordering::SeqCst);
    for row in outbox.0.values_mut() {
        row.replay().expect("dead letters replay");
    }
    outbox.drain(&dispatcher).await;
    for row in outbox.rows() {
        assert!(matches!(row.state, DeliveryState::Delivered { .. }), "{row:?}");
        assert_eq!((row.attempts, row.replays), (1, 1));
    }
    assert_eq!(rx.acted_on.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_attempt_lost_in_a_crash_is_sent_again_after_its_lease() {
    let (rx, url) = start(Receiver { healthy: AtomicBool::new(true), ..Receiver::default() }).await;
    let dispatcher = dispatcher(&url, FAST, 2);
    let mut outbox = Outbox::with([message(7, "ops")]);
    // Claimed and persisted a lease ago, then the process died before sending.
    let lease = dispatcher.config().lease_ms;
    let then = system_unix_millis() - lease;
    let claim = dispatcher.claim(outbox.rows(), then).expect("claims");
    outbox.apply(claim.to_send);
    assert!(dispatcher.claim(outbox.rows(), then + 1_000).expect("claims").to_send.is_empty(), "lease held");
    // The next round (a restarted process): reclaimed as a failed attempt, then sent.
    let claim = dispatcher.claim(outbox.rows(), system_unix_millis()).expect("claims");
    assert_eq!(claim.reclaimed.len(), 1);
    assert!(claim.to_send.is_empty());
    outbox.apply(claim.reclaimed);
    outbox.drain(&dispatcher).await;
    let row = &outbox.rows()[0];
    assert!(matches!(row.state, DeliveryState::Delivered { .. }), "{row:?}");
    assert_eq!(row.attempts, 2);
    assert_eq!(rx.acted_on.lock().unwrap().as_slice(), ["msg_7"]);
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let receiver = Receiver { healthy: AtomicBool::new(true), delay_ms: 30, ..Receiver::default() };
    let (rx, url) = start(receiver).await;
    let dispatcher = dispatcher(&url, FAST, 2);
    let transitions =
        dispatcher.dispatch(Outbox::with((0..8).map(|i| message(i, "ops"))).rows(), 0).await.expect("dispatches");
    assert_eq!(transitions.len(), 8);
    assert!(transitions.iter().all(|t| t.from == DeliveryState::Pending && t.from_attempts == 0));
    assert!(transitions.iter().all(|t| matches!(t.entry.state, DeliveryState::Delivered { .. })));
    assert_eq!(rx.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unknown_endpoint_waits_and_a_wrong_secret_is_refused_by_the_receiver() {
    let (rx, url) = start(Receiver { healthy: AtomicBool::new(true), ..Receiver::default() }).await;
    let dispatcher = dispatcher(&url, FAST, 2);
    let transitions = dispatcher.dispatch(vec![OutboxEntry::new(message(1, "nobody"))], 0).await.expect("dispatches");
    assert!(matches!(transitions[0].entry.state, DeliveryState::RetryAt { .. }), "{transitions:?}");
    assert_eq!(transitions[0].entry.last_error.as_deref(), Some("no webhook endpoint `nobody` is configured"));

    let other = WebhookSecret::generate().expect("OS generator");
    let endpoint = WebhookEndpoint::new("ops", &url, other).expect("valid");
    let webhook = WebhookChannel::new(vec![endpoint], WebhookConfig::default()).expect("channel");
    let channels = Channels { webhook: Some(Arc::new(webhook)), ..Channels::default() };
    let wrong =
        Dispatcher::new(channels, DispatcherConfig { policy: FAST, ..DispatcherConfig::default() }).expect("valid");
    let transitions = wrong.dispatch(vec![OutboxEntry::new(message(2, "ops"))], 0).await.expect("dispatches");
    assert_eq!(transitions[0].entry.last_error.as_deref(), Some("HTTP 401 Unauthorized"));
    assert_eq!(rx.bad_signatures.load(Ordering::SeqCst), 1);
}
