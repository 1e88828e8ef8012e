//! One-time codes through the outbox, at the writer's state: the code's row is in the very
//! batch that stores its challenge, sealed (never in plaintext) and bound to its row, and
//! it is erased and never sent once its challenge is over.

use crate::model::*;
use crate::state::State;
use crate::{Command, OutboxConfig, PreparedPayment};
use xiezhi_notify::{CodeKey, DeliveryState, EventKind, OutboxEntry};
use xiezhi_store::{Batch, RecordKind};
use xiezhi_store_sqlite::SqliteStore;

const NOW_MS: i64 = 1_764_000_000_000;

fn state(key: &CodeKey) -> (State, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    let risk = crate::RiskConfig { rules_json: Some(r#"{"version":"none","rules":[]}"#.into()), ..Default::default() };
    let outbox = OutboxConfig { sms: true, ..Default::default() };
    let config = crate::ServiceConfig { risk, outbox, outbox_key: Some(key.clone()), ..Default::default() };
    (State::load(Box::new(store), &config).unwrap(), dir)
}

fn apply(state: &mut State, batch: &mut Batch, command: Command) -> Reply {
    state.apply(&crate::Caller::System, command, None, NOW_MS, batch).unwrap()
}

/// A restricted payment (the deny list), whose lifting challenge sends a code: the batch
/// of the payment alone.
fn restricted_payment(state: &mut State) -> Batch {
    let mut setup = Batch::default();
    let merchant = NewMerchant::lotus_market();
    let Reply::Merchant(m) = apply(state, &mut setup, Command::CreateMerchant(merchant)) else { panic!() };
    let line = NewCreditLine {
        user_id: "u1".into(),
        currency: "CNY".into(),
        limit: "1000.00".into(),
        profile: Default::default(),
        opened_at: None,
        wallet_id: None,
        contact: None,
    };
    let Reply::CreditLine(l) = apply(state, &mut setup, Command::CreateCreditLine(line)) else { panic!() };
    let entry = xiezhi_risk::NewListEntry {
        list: xiezhi_risk::ListKind::Deny,
        subject_kind: xiezhi_risk::SubjectKind::User,
        subject: "u1".into(),
        reason: "test".into(),
        author: "test".into(),
        expires_at: None,
    };
    apply(state, &mut setup, Command::AddListEntry(entry));
    let request = NewPayment {
        credit_line_id: l.id,
        qr_payload: m.qr_payload.clone(),
        amount: Some("12.00".into()),
        tip: None,
        context: PaymentContext { device_id: Some("d1".into()), ..Default::default() },
    };
    let qr = xiezhi_qr::decode(&m.qr_payload, xiezhi_qr::DecodeOptions::default()).unwrap();
    let mut batch = Batch::default();
    let command = Command::CreatePayment(Box::new(PreparedPayment { request, qr }));
    let Reply::Payment(p) = apply(state, &mut batch, command) else { panic!() };
    assert_eq!(p.decision.outcome, Outcome::Restrict, "{:?}", p.decision);
    batch
}

fn code_rows(batch: &Batch) -> Vec<OutboxEntry> {
    batch
        .records
        .iter()
        .filter(|r| r.kind == RecordKind::Outbox)
        .map(|r| serde_json::from_str::<OutboxEntry>(&r.body).unwrap())
        .filter(|e| e.message.kind == EventKind::ChallengeCode)
        .collect()
}

#[test]
fn a_code_row_is_written_sealed_in_the_same_batch_as_its_challenge() {
    let key = CodeKey::generate().unwrap();
    let (mut state, _dir) = state(&key);
    let batch = restricted_payment(&mut state);
    let challenges: Vec<&str> =
        batch.records.iter().filter(|r| r.kind == RecordKind::Challenge).map(|r| r.id.as_str()).collect();
    let rows = code_rows(&batch);
    assert_eq!((challenges.len(), rows.len()), (1, 1), "one challenge, one code row, in one batch");
    let row = &rows[0];
    let sealed = row.code.as_ref().expect("a sealed code");
    assert_eq!(sealed.challenge_id, challenges[0]);
    assert_eq!(row.message.arguments["challenge_id"], challenges[0]);
    assert!(!row.message.arguments.contains_key("code"), "never a stored argument");
    let code = key.open(&row.message.id, sealed.ciphertext.as_deref().unwrap()).unwrap();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
    for record in &batch.records {
        assert!(!record.body.contains(&code), "{} record {} holds the code", record.kind.as_str(), record.id);
    }
    assert!(state.code_rows.contains_key(challenges[0]));
}

#[test]
fn an_ended_challenge_erases_its_code_and_its_row_is_never_replayed() {
    let key = CodeKey::generate().unwrap();
    let (mut state, _dir) = state(&key);
    let batch = restricted_payment(&mut state);
    let row = code_rows(&batch).remove(0);
    let expires_at_ms = row.code.as_ref().unwrap().expires_at_ms;
    let mut sweep = Batch::default();
    assert_eq!(state.expire_challenges(expires_at_ms, 10, &mut sweep).unwrap(), 1);
    let retired = code_rows(&sweep);
    assert_eq!(retired.len(), 1, "the expiry rewrites the code's row in its own batch");
    assert!(matches!(retired[0].state, DeliveryState::Dead { .. }), "never sent late");
    assert_eq!(retired[0].code.as_ref().unwrap().ciphertext, None, "the ciphertext is erased");
    assert!(retired[0].last_error.as_deref().unwrap().starts_with("expired"));
    assert!(state.code_rows.is_empty());
    let replay = crate::OutboxReplay { id: Some(row.message.id.clone()), all_dead: false };
    let refused = state.replay_outbox(replay, expires_at_ms, &mut Batch::default());
    assert!(matches!(refused, Err(crate::CoreError::OutboxCodeNotReplayable { .. })), "{refused:?}");
    let all = crate::OutboxReplay { id: None, all_dead: true };
    let Ok(Reply::Document(skipped)) = state.replay_outbox(all, expires_at_ms, &mut Batch::default()) else { panic!() };
    assert_eq!(skipped["replayed"], serde_json::json!([]), "all_dead skips a code's row");
}
