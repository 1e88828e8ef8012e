//! The transactional outbox on the real store: every event (restriction imposed and lifted,
//! appeal received and decided, compensation paid) writes its messages in its own batch,
//! one per recipient, in the user's language, and they survive a restart; a one-time code
//! is a row of its own, sealed (never in plaintext in any record), SMS only; delivery changes are compare-and-set, and dead letters replay.

mod common;

use common::{merchant, payment_request, run, ManualClock, START_MS};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;
use xiezhi_core::*;
use xiezhi_notify::{DeliveryError, DeliveryState, OutboxEntry, RetryPolicy, Transition};
use xiezhi_store::{RecordKind, Store};
use xiezhi_store_sqlite::SqliteStore;

/// The key codes are sealed under (the test opens them with it).
fn key() -> xiezhi_notify::CodeKey {
    xiezhi_notify::CodeKey::from_hex(&"a5".repeat(32)).unwrap()
}

fn config(codes: &Arc<RecordingNotifier>) -> ServiceConfig {
    ServiceConfig {
        notifier: Some(NotifierHandle(codes.clone())),
        outbox: OutboxConfig { sms: true, email: true, operator_webhooks: vec!["operator".into()] },
        outbox_key: Some(key()),
        ..ServiceConfig::default()
    }
}

fn is_code(row: &OutboxEntry) -> bool {
    row.message.kind == xiezhi_notify::EventKind::ChallengeCode
}

fn start(dir: &std::path::Path, clock: &Arc<ManualClock>, codes: &Arc<RecordingNotifier>) -> Service {
    let store = SqliteStore::open_dir(dir).unwrap();
    Service::start(Box::new(store), config(codes), clock.clone()).unwrap()
}

fn document(reply: Result<Reply, CoreError>) -> Value {
    match reply {
        Ok(Reply::Document(value)) => value,
        other => panic!("{other:?}"),
    }
}

fn line_with_contact(service: &Service, user_id: &str, email: &str, language: Language) -> CreditLineView {
    let request = NewCreditLine {
        user_id: user_id.into(),
        currency: "CNY".into(),
        limit: "2000.00".into(),
        profile: Default::default(),
        opened_at: None,
        wallet_id: None,
        contact: Some(Contact { email: Some(email.into()), language: Some(language) }),
    };
    match run(service, Command::CreateCreditLine(request)).unwrap() {
        Reply::CreditLine(l) => l,
        other => panic!("{other:?}"),
    }
}

/// A payment the deny list restricts; the entry is removed again afterwards.
fn restrict(service: &Service, line_id: &str, qr: &str, user: &str) -> PaymentView {
    let entry = xiezhi_risk::NewListEntry {
        list: xiezhi_risk::ListKind::Deny,
        subject_kind: xiezhi_risk::SubjectKind::User,
        subject: user.into(),
        reason: "test".into(),
        author: "test".into(),
        expires_at: None,
    };
    let entry = document(run(service, Command::AddListEntry(entry)))["id"].as_str().unwrap().to_owned();
    let command = service.prepare_payment(payment_request(line_id, qr, Some("12.00"))).unwrap();
    let payment = common::payment_of(run(service, command));
    assert_eq!(payment.decision.outcome, Outcome::Restrict, "{:?}", payment.decision);
    document(run(service, Command::RemoveListEntry { id: entry }));
    payment
}

fn stored_rows(dir: &std::path::Path) -> Vec<OutboxEntry> {
    let mut store = SqliteStore::open_dir(dir).unwrap();
    let rows = store.records(RecordKind::Outbox).unwrap();
    rows.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect()
}

/// (kind, channel) → how many rows.
fn census(rows: &[OutboxEntry]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        let channel = format!("{:?}", row.message.recipient.channel()).to_lowercase();
        *counts.entry((row.message.kind.as_str().to_owned(), channel)).or_insert(0) += 1;
    }
    counts
}

/// Whether `text` holds `code` as a token of its own (not inside a longer number, a hash or
/// an id, where six digits in a row turn up by chance).
fn holds_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + code.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric()) && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[test]
fn every_event_writes_its_messages_with_it_and_no_code_ever_does() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let codes = Arc::new(RecordingNotifier::default());
    let service = start(dir.path(), &clock, &codes);
    let qr = merchant(&service, "Lotus").qr_payload;
    let line = line_with_contact(&service, "alice", "alice@example.com", Language::En);
    let payment = restrict(&service, &line.id, &qr, "alice");
    let restriction_id = document(run(&service, Command::ListRestrictions(RestrictionQuery::default())))
        ["restrictions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = NewAppeal { decision_id: None, restriction_id: Some(restriction_id.clone()), message: "me".into() };
    let appeal_id = document(run(&service, Command::FileAppeal(request)))["id"].as_str().unwrap().to_owned();
    document(run(&service, Command::ClaimAppeal { id: appeal_id.clone() }));
    let decision = AppealDecision { outcome: AppealOutcome::Overturn, note: Some("a mistake".into()) };
    document(run(&service, Command::DecideAppeal { id: appeal_id.clone(), decision }));
    // The fund is empty: the compensation waits, and is paid (and told) by the deposit.
    let deposit = FundDepositRequest { amount: "1000.00".into(), currency: "CNY".into(), reference: "t".into() };
    let deposited = document(run(&service, Command::FundDeposit(deposit)));
    assert_eq!(deposited["paid"][0]["appeal_id"], appeal_id.as_str(), "{deposited}");
    drop(service);
    std::thread::sleep(Duration::from_millis(50));

    let rows = stored_rows(dir.path());
    let expected: BTreeMap<(String, String), usize> =
        ["restriction_imposed", "appeal_received", "appeal_decided", "restriction_lifted", "compensation_paid"]
            .iter()
            .flat_map(|kind| ["sms", "email", "webhook"].map(|channel| ((kind.to_string(), channel.to_owned()), 1)))
            .chain([(("challenge_code".to_owned(), "sms".to_owned()), 1)])
            .collect();
    assert_eq!(census(&rows), expected, "one message per event and recipient, nothing else");
    for row in &rows {
        assert_eq!(row.state, DeliveryState::Pending, "{:?}", row.message);
        assert_eq!(row.message.language, xiezhi_notify::Language::En, "the line's language");
        row.validate_at_rest().unwrap();
    }
    let by_kind = |kind: &str| rows.iter().find(|r| r.message.kind.as_str() == kind).unwrap().message.clone();
    assert_eq!(by_kind("restriction_imposed").arguments["restriction_id"], restriction_id);
    assert_eq!(by_kind("restriction_lifted").arguments["lifted_by"], "appeal");
    assert_eq!(by_kind("appeal_decided").arguments["outcome"], "overturn");
    assert_eq!(by_kind("appeal_decided").arguments["appeal_id"], appeal_id);
    assert_eq!(by_kind("compensation_paid").arguments["currency"], "CNY");
    let emails: Vec<_> =
        rows.iter().filter(|r| r.message.recipient.channel() == xiezhi_notify::ChannelKind::Email).collect();
    assert!(emails
        .iter()
        .all(|r| r.message.recipient == xiezhi_notify::Recipient::Email { address: "alice@example.com".into() }));
    let ids: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.message.id.as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "message ids are unique");
    // The restriction's one-time code is sealed in its row, never handed to the notifier
    // and never in plaintext in any record.
    assert!(codes.messages().is_empty(), "with SMS in the outbox, codes go through it only");
    let sent: Vec<String> = rows
        .iter()
        .filter_map(|r| r.code.as_ref().map(|c| (r, c)))
        .map(|(r, c)| key().open(&r.message.id, c.ciphertext.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(sent.len(), 1, "the restriction's lifting challenge sent one code");
    let mut store = SqliteStore::open_dir(dir.path()).unwrap();
    for kind in RecordKind::ALL {
        for record in store.records(kind).unwrap() {
            for code in &sent {
                assert!(!holds_code(&record.body, code), "{} record {} holds a code", kind.as_str(), record.id);
            }
        }
    }
    assert!(!payment.id.is_empty());
}

#[test]
fn a_user_with_no_contact_gets_sms_in_chinese_and_no_email() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let codes = Arc::new(RecordingNotifier::default());
    let service = start(dir.path(), &clock, &codes);
    let qr = merchant(&service, "Lotus").qr_payload;
    let line = common::line_for(&service, "bob", "2000.00");
    restrict(&service, &line.id, &qr, "bob");
    drop(service);
    std::thread::sleep(Duration::from_millis(50));
    let rows = stored_rows(dir.path());
    let channels: Vec<String> = census(&rows).into_keys().map(|(_, c)| c).collect();
    assert_eq!(channels, ["sms", "sms", "webhook"], "the code by SMS only, the restriction to both");
    assert!(rows.iter().all(|r| r.message.language == xiezhi_notify::Language::Zh));
    assert!(rows.iter().any(|r| r.message.recipient == xiezhi_notify::Recipient::Sms { phone: "bob".into() }));
}

#[test]
fn a_bad_email_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let codes = Arc::new(RecordingNotifier::default());
    let service = start(dir.path(), &clock, &codes);
    for bad in ["no-at-sign", "a@b@c.com", "a @b.com", "@b.com", "a@nodot"] {
        let request = NewCreditLine {
            user_id: "carol".into(),
            currency: "CNY".into(),
            limit: "10.00".into(),
            profile: Default::default(),
            opened_at: None,
            wallet_id: None,
            contact: Some(Contact { email: Some(bad.into()), language: None }),
        };
        match run(&service, Command::CreateCreditLine(request)) {
            Err(CoreError::InvalidRequest { field, .. }) => assert_eq!(field, "contact.email", "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

/// The event rows due (a code's row is the code tests' subject: crates/core/src/code_outbox_tests.rs).
fn due(service: &Service) -> Vec<OutboxEntry> {
    let rows = document(run(service, Command::DueOutbox { max: 16, lease_ms: 60_000 }))["rows"].clone();
    let rows: Vec<OutboxEntry> = serde_json::from_value(rows).unwrap();
    rows.into_iter().filter(|r| !is_code(r)).collect()
}

fn begun(entry: &OutboxEntry, now_ms: i64) -> Transition {
    let mut next = entry.clone();
    next.begin(now_ms).unwrap();
    Transition { from: entry.state, from_attempts: entry.attempts, entry: next }
}

fn record(service: &Service, transitions: Vec<Transition>) -> Value {
    document(run(service, Command::RecordOutbox(transitions)))
}

#[test]
fn claims_are_compare_and_set_and_dead_letters_replay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let codes = Arc::new(RecordingNotifier::default());
    let service = start(dir.path(), &clock, &codes);
    let qr = merchant(&service, "Lotus").qr_payload;
    let line = common::line_for(&service, "dora", "2000.00");
    restrict(&service, &line.id, &qr, "dora");
    let rows = due(&service);
    assert_eq!(rows.len(), 2, "SMS and the operator's webhook");
    let (first, second) = (&rows[0], &rows[1]);

    // A step the state machine never takes (pending straight to delivered) is refused.
    let mut skipped = first.clone();
    skipped.state = DeliveryState::Delivered { at_ms: START_MS };
    let skip = Transition { from: first.state, from_attempts: first.attempts, entry: skipped };
    assert_eq!(record(&service, vec![skip])["refused"][0], first.message.id.as_str());
    assert_eq!(due(&service).len(), 2, "the refused step changed nothing");
    // Two dispatchers claim the same row: the second loses.
    let claim = begun(first, START_MS);
    assert_eq!(record(&service, vec![claim.clone()])["applied"][0], first.message.id.as_str());
    assert_eq!(record(&service, vec![claim.clone()])["lost"][0], first.message.id.as_str());
    let left = due(&service);
    assert_eq!(left.len(), 1, "a claimed row within its lease is not due");
    assert_eq!(left[0].message.id, second.message.id);

    // Delivered: final, listed as delivered, never due again.
    let mut delivered = claim.entry.clone();
    delivered.succeed(START_MS + 1).unwrap();
    let t = Transition { from: claim.entry.state, from_attempts: claim.entry.attempts, entry: delivered };
    assert_eq!(record(&service, vec![t])["applied"].as_array().unwrap().len(), 1);
    let page = document(run(
        &service,
        Command::ListOutbox(OutboxQuery { status: Some(OutboxStatus::Delivered), ..Default::default() }),
    ));
    assert_eq!(page["messages"][0]["id"], first.message.id.as_str(), "{page}");
    assert_eq!(page["messages"][0]["state"], "delivered");
    assert!(page["messages"][0].get("recipient").is_none() && !page.to_string().contains("dora"), "{page}");

    // A permanent failure parks the other as dead; a replay brings it back once.
    let claim = begun(second, START_MS);
    record(&service, vec![claim.clone()]);
    let mut dead = claim.entry.clone();
    let policy = RetryPolicy::default();
    dead.fail(START_MS + 2, &DeliveryError::Permanent("HTTP 410".into()), &policy, 0).unwrap();
    record(&service, vec![Transition { from: claim.entry.state, from_attempts: 1, entry: dead }]);
    let dead_page = document(run(
        &service,
        Command::ListOutbox(OutboxQuery { status: Some(OutboxStatus::Dead), ..Default::default() }),
    ));
    assert_eq!(dead_page["messages"][0]["last_error"], "HTTP 410 (permanent)", "{dead_page}");
    assert!(due(&service).is_empty());
    let id = second.message.id.clone();
    let replay =
        |id: Option<String>, all_dead: bool| run(&service, Command::ReplayOutbox(OutboxReplay { id, all_dead }));
    assert_eq!(document(replay(Some(id.clone()), false))["replayed"][0], id.as_str());
    assert!(matches!(replay(Some(id.clone()), false), Err(CoreError::OutboxNotDead { .. })));
    assert!(matches!(replay(Some("msg_nope".into()), false), Err(CoreError::OutboxMessageNotFound { .. })));
    assert!(matches!(replay(Some(id.clone()), true), Err(CoreError::InvalidRequest { .. })));
    assert_eq!(document(replay(None, true)), serde_json::json!({"replayed": [], "more": false}));
    let again = due(&service);
    assert_eq!((again.len(), again[0].replays, again[0].attempts), (1, 1, 0));
    assert_eq!(again[0].message, second.message, "a replay sends the same message, same id");

    // And all of it survives a restart.
    drop(service);
    std::thread::sleep(Duration::from_millis(50));
    let service = start(dir.path(), &clock, &codes);
    assert_eq!(due(&service), again);
}

/// A store whose commits fail while `fail` is set.
struct FailingCommits {
    inner: Box<dyn Store>,
    fail: Arc<std::sync::atomic::AtomicBool>,
    committer: bool,
}

impl xiezhi_store::wrap::Wrapper for FailingCommits {
    fn inner(&mut self) -> &mut dyn Store {
        self.inner.as_mut()
    }
    fn inner_ref(&self) -> &dyn Store {
        self.inner.as_ref()
    }
    fn open_committer(&self) -> Result<Option<Box<dyn Store>>, xiezhi_store::StoreError> {
        if !self.committer {
            return Ok(None);
        }
        let inner = self.inner.open_committer()?.expect("SQLite offers a committer");
        Ok(Some(Box::new(FailingCommits { inner, fail: self.fail.clone(), committer: false })))
    }
    fn commit(&mut self, batch: &xiezhi_store::Batch) -> Result<(), xiezhi_store::StoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(xiezhi_store::StoreError::Io("disk on fire".into()));
        }
        self.inner.commit(batch)
    }
}

fn outbox_page(service: &Service) -> Vec<Value> {
    let page = document(run(service, Command::ListOutbox(OutboxQuery::default())));
    page["messages"].as_array().unwrap().clone()
}

#[test]
fn a_batch_that_fails_leaves_no_message_for_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let codes = Arc::new(RecordingNotifier::default());
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let inner = Box::new(SqliteStore::open_dir(dir.path()).unwrap());
    let store = FailingCommits { inner, fail: fail.clone(), committer: true };
    let service = Service::start(Box::new(store), config(&codes), clock.clone()).unwrap();
    let qr = merchant(&service, "Lotus").qr_payload;
    let line = common::line_for(&service, "fay", "2000.00");
    let entry = xiezhi_risk::NewListEntry {
        list: xiezhi_risk::ListKind::Deny,
        subject_kind: xiezhi_risk::SubjectKind::User,
        subject: "fay".into(),
        reason: "test".into(),
        author: "test".into(),
        expires_at: None,
    };
    document(run(&service, Command::AddListEntry(entry)));
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let command = service.prepare_payment(payment_request(&line.id, &qr, Some("12.00"))).unwrap();
    assert!(matches!(run(&service, command), Err(CoreError::StorageUnavailable { .. })));
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    // The writer rebuilt its memory from the store: the restriction and its messages are
    // gone together, in memory as on disk.
    let restrictions = document(run(&service, Command::ListRestrictions(RestrictionQuery::default())));
    assert_eq!(restrictions["restrictions"], serde_json::json!([]));
    assert_eq!(outbox_page(&service), Vec::<Value>::new());
    assert!(codes.messages().is_empty(), "no code for a challenge that was never stored");
    // The same payment again commits, with its messages.
    let command = service.prepare_payment(payment_request(&line.id, &qr, Some("12.00"))).unwrap();
    assert_eq!(common::payment_of(run(&service, command)).decision.outcome, Outcome::Restrict);
    let kinds: Vec<String> = outbox_page(&service).iter().map(|m| format!("{}/{}", m["kind"], m["channel"])).collect();
    assert_eq!(
        kinds,
        ["\"challenge_code\"/\"sms\"", "\"restriction_imposed\"/\"sms\"", "\"restriction_imposed\"/\"webhook\""]
    );
    drop(service);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(stored_rows(dir.path()).len(), 3);
}
