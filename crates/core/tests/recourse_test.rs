//! Restrictions and appeals on the real store, across restarts: a restriction's record,
//! history and appeals survive a restart at every step; a restriction stored before
//! restrictions had ids still loads, restricts and lifts; restrictions expire on the
//! service clock.

mod common;

use common::{line_for, merchant, payment_request, run, ManualClock, START_MS};
use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xiezhi_core::*;
use xiezhi_store::{Batch, Record, RecordKind, Store};
use xiezhi_store_sqlite::SqliteStore;

fn start(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Service {
    let store = SqliteStore::open_dir(dir).unwrap();
    Service::start(Box::new(store), ServiceConfig::default(), clock.clone()).unwrap()
}

fn restart(service: Service, dir: &std::path::Path, clock: &Arc<ManualClock>) -> Service {
    drop(service);
    std::thread::sleep(Duration::from_millis(50));
    start(dir, clock)
}

fn document(reply: Result<Reply, CoreError>) -> Value {
    match reply {
        Ok(Reply::Document(value)) => value,
        other => panic!("{other:?}"),
    }
}

fn deny_user(service: &Service, user: &str) -> String {
    let entry = xiezhi_risk::NewListEntry {
        list: xiezhi_risk::ListKind::Deny,
        subject_kind: xiezhi_risk::SubjectKind::User,
        subject: user.into(),
        reason: "test".into(),
        author: "test".into(),
        expires_at: None,
    };
    document(run(service, Command::AddListEntry(entry)))["id"].as_str().unwrap().to_owned()
}

/// A payment that the deny list restricts, the entry then removed so later payments go on.
fn restricted(service: &Service, line_id: &str, qr: &str, user: &str) -> PaymentView {
    let entry = deny_user(service, user);
    let command = service.prepare_payment(payment_request(line_id, qr, Some("12.00"))).unwrap();
    let payment = common::payment_of(run(service, command));
    assert_eq!(payment.decision.outcome, Outcome::Restrict, "{:?}", payment.decision);
    document(run(service, Command::RemoveListEntry { id: entry }));
    payment
}

fn restriction(service: &Service, id: &str) -> Value {
    document(run(service, Command::GetRestriction { id: id.into() }))
}

fn appeal(service: &Service, id: &str) -> Value {
    document(run(service, Command::GetAppeal { id: id.into() }))
}

#[test]
fn restrictions_their_history_and_appeals_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = start(dir.path(), &clock);
    let qr = merchant(&service, "Lotus").qr_payload;
    let line = line_for(&service, "alice", "2000.00");
    let payment = restricted(&service, &line.id, &qr, "alice");
    let page = document(run(&service, Command::ListRestrictions(RestrictionQuery::default())));
    let imposed = page["restrictions"][0].clone();
    let id = imposed["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rs_"), "{imposed}");
    assert_eq!(imposed["imposed_by"]["payment_id"], payment.id.as_str());
    assert_eq!(imposed["reason_codes"], serde_json::json!(["deny_listed_user"]));

    let service = restart(service, dir.path(), &clock);
    assert_eq!(restriction(&service, &id), imposed, "the restriction as it was before the restart");
    let request = NewAppeal { decision_id: None, restriction_id: Some(id.clone()), message: "it was me".into() };
    let filed = document(run(&service, Command::FileAppeal(request)));
    let appeal_id = filed["id"].as_str().unwrap().to_owned();
    assert_eq!(filed["decision_id"], payment.id.as_str(), "the restriction's decision comes with it");

    let service = restart(service, dir.path(), &clock);
    assert_eq!(appeal(&service, &appeal_id), filed);
    let history = restriction(&service, &id)["history"].clone();
    assert_eq!(history[1]["kind"], "appeal_filed", "{history}");
    // The open appeal is still the one: a second is refused after the restart too.
    let again = NewAppeal { decision_id: Some(payment.id.clone()), restriction_id: None, message: "again".into() };
    assert_eq!(
        run(&service, Command::FileAppeal(again)).unwrap_err(),
        CoreError::AppealExists { appeal_id: appeal_id.clone() }
    );
    document(run(&service, Command::ClaimAppeal { id: appeal_id.clone() }));
    let decision = AppealDecision { outcome: AppealOutcome::Overturn, note: Some("a mistake".into()) };
    let decided = document(run(&service, Command::DecideAppeal { id: appeal_id.clone(), decision }));
    assert_eq!((decided["status"].as_str(), decided["compensation_due"].as_bool()), (Some("decided"), Some(true)));

    let service = restart(service, dir.path(), &clock);
    assert_eq!(appeal(&service, &appeal_id), decided);
    let lifted = restriction(&service, &id);
    assert_eq!(lifted["status"], "lifted", "{lifted}");
    let kinds: Vec<&str> = lifted["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["imposed", "appeal_filed", "appeal_decided", "lifted"]);
    assert_eq!(lifted["history"][3]["cause"], "appeal_overturned");
    let record = document(run(&service, Command::GetDecision { payment_id: payment.id.clone() }));
    assert_eq!(record["label"]["label"], "false_positive", "the label survives too");
    assert!(common::get_line(&service, &line.id).restriction.is_none());
    let after = common::pay(&service, &line.id, &qr, Some("13.00")).unwrap();
    assert_eq!(after.status, PaymentStatus::Authorized, "{:?}", after.decision);
    // The compensation is on record, waiting: this store's fund holds nothing yet.
    drop(service);
    std::thread::sleep(Duration::from_millis(50));
    let mut store = SqliteStore::open_dir(dir.path()).unwrap();
    let due = store.record(RecordKind::Compensation, &appeal_id).unwrap().expect("compensation due is stored");
    assert!(due.body.contains("\"status\":\"waiting_for_funds\""), "{}", due.body);
}

/// A restriction record as builds before issue 14 wrote it: keyed by its line, one reason
/// code, no id, scope, author or history.
fn legacy_restriction(line_id: &str, until_ms: i64) -> Record {
    let body = serde_json::json!({
        "credit_line_id": line_id,
        "reason_code": "repeated_challenge_failures",
        "explanation": {"zh": "暂停", "en": "paused"},
        "payment_id": "pay_legacy",
        "challenge_id": null,
        "created_at_ms": START_MS,
        "until_ms": until_ms,
        "appeal_deadline_ms": START_MS + 14 * 86_400_000,
        "lifted_at_ms": null,
    });
    Record { kind: RecordKind::Restriction, id: line_id.into(), body: body.to_string(), updated_at_ms: START_MS }
}

#[test]
fn a_restriction_stored_before_ids_still_loads_restricts_and_lifts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = start(dir.path(), &clock);
    let qr = merchant(&service, "Lotus").qr_payload;
    let line = line_for(&service, "bo", "2000.00");
    drop(service);
    std::thread::sleep(Duration::from_millis(50));
    let mut store = SqliteStore::open_dir(dir.path()).unwrap();
    let records = vec![legacy_restriction(&line.id, START_MS + 3_600_000)];
    store.commit(&Batch { transactions: vec![], records, generation: 0 }).unwrap();
    drop(store);

    let service = start(dir.path(), &clock);
    let old = restriction(&service, &line.id);
    assert_eq!(old["id"], line.id.as_str(), "an old record is known by its key");
    assert_eq!(old["status"], "active");
    assert_eq!(old["user_id"], "bo", "its user comes from the line");
    assert_eq!(old["scope"], "scan_to_pay");
    assert_eq!(old["reason_codes"], serde_json::json!(["repeated_challenge_failures"]));
    assert_eq!(old["imposed_by"]["kind"], "unrecorded");
    assert_eq!(old["history"][0]["kind"], "imposed");
    let shown = common::get_line(&service, &line.id).restriction.expect("the line shows it");
    assert_eq!(shown.reason_codes, ["repeated_challenge_failures"]);
    let refused = common::pay(&service, &line.id, &qr, Some("10.00")).unwrap();
    assert!(refused.decision.reason_codes.contains(&"line_restricted".into()), "{:?}", refused.decision);

    // It ends on the service clock, written by the sweep, without a payment to notice it.
    clock.0.fetch_add(3_600_000, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    while restriction(&service, &line.id)["lifted_at"].is_null()
        || restriction(&service, &line.id)["history"].as_array().unwrap().len() < 2
    {
        assert!(Instant::now() < deadline, "the sweep never lifted the expired restriction");
        std::thread::sleep(Duration::from_millis(100));
    }
    let service = restart(service, dir.path(), &clock);
    let ended = restriction(&service, &line.id);
    assert_eq!(ended["status"], "lifted");
    assert_eq!(ended["history"][1]["cause"], "expired", "{ended}");
    assert_eq!(ended["history"][1]["by"], "system");
    let paid = common::pay(&service, &line.id, &qr, Some("10.00")).unwrap();
    assert_eq!(paid.status, PaymentStatus::Authorized, "{:?}", paid.decision);
}
