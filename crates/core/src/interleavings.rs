//! The writer's state driven by hand through the orderings that once broke it: a batch
//! applied while the one before is still being committed on the committer's handle, a
//! commit finishing between two reads of one batch, a slow commit with several batches on
//! top, a settled hold evicted and then refunded. Each ordering is replayed exactly, every
//! run, on the real store with a second handle committing, as the pipelined writer does.

use crate::decide::RiskConfig;
use crate::model::*;
use crate::state::State;
use crate::{Command, CoreError, IdempotencyKey, PreparedPayment};
use xiezhi_store::{Batch, Store};
use xiezhi_store_sqlite::SqliteStore;

const NOW_MS: i64 = 1_764_000_000_000;

/// The writer's state on one handle and the committer's handle beside it.
struct Pipeline {
    state: State,
    committer: Box<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    fn new() -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let committer = store.open_committer().unwrap().expect("SQLite offers a committer");
        let risk = RiskConfig { rules_json: Some(r#"{"version":"none","rules":[]}"#.into()), ..Default::default() };
        let config = crate::ServiceConfig { risk, ..Default::default() };
        let state = State::load(Box::new(store), &config).unwrap();
        Pipeline { state, committer, _dir: dir }
    }

    fn apply(&mut self, batch: &mut Batch, command: Command, key: Option<&str>) -> Result<Reply, CoreError> {
        let key = key.map(|k| IdempotencyKey { key: k.into(), fingerprint: format!("fp-{k}") });
        self.state.apply(&crate::Caller::System, command, key, NOW_MS, batch)
    }

    /// Seals the open batch as the writer hands it over; the caller commits it later.
    fn seal(&mut self, mut batch: Batch) -> Batch {
        batch.generation = self.state.seal().unwrap();
        batch
    }

    fn commit(&mut self, batch: &Batch) {
        self.committer.commit(batch).unwrap();
    }

    /// A merchant and a line, committed.
    fn setup(&mut self) -> (String, String) {
        let mut batch = Batch::default();
        let merchant = NewMerchant::lotus_market();
        let Ok(Reply::Merchant(m)) = self.apply(&mut batch, Command::CreateMerchant(merchant), None) else { panic!() };
        let line = NewCreditLine {
            user_id: "u1".into(),
            currency: "CNY".into(),
            limit: "1000.00".into(),
            profile: Default::default(),
            opened_at: None,
            wallet_id: None,
            contact: None,
        };
        let Ok(Reply::CreditLine(l)) = self.apply(&mut batch, Command::CreateCreditLine(line), None) else { panic!() };
        let batch = self.seal(batch);
        self.commit(&batch);
        (m.qr_payload, l.id)
    }
}

fn pay_command(qr: &str, line_id: &str, amount: &str) -> Command {
    let request = NewPayment {
        credit_line_id: line_id.into(),
        qr_payload: qr.into(),
        amount: Some(amount.into()),
        tip: None,
        context: PaymentContext { device_id: Some("d1".into()), ..Default::default() },
    };
    let qr = xiezhi_qr::decode(qr, xiezhi_qr::DecodeOptions::default()).unwrap();
    Command::CreatePayment(Box::new(PreparedPayment { request, qr }))
}

fn payment(reply: Result<Reply, CoreError>) -> PaymentView {
    match reply {
        Ok(Reply::Payment(p)) => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_commit_between_two_reads_of_one_batch_hides_nothing() {
    let mut p = Pipeline::new();
    let (qr, line_id) = p.setup();
    let mut batch = Batch::default();
    let paid = payment(p.apply(&mut batch, pay_command(&qr, &line_id, "10.00"), Some("k1")));
    let first = p.seal(batch);
    // The next batch reads before the payment's batch is durable...
    let mut batch = Batch::default();
    let seen = payment(p.apply(&mut batch, Command::GetPayment { id: paid.id.clone() }, None));
    assert_eq!(seen.status, PaymentStatus::Authorized);
    // ...then the committer finishes, and the same batch reads again: its snapshot began
    // before that commit, so only the overlay has the payment.
    p.commit(&first);
    let again = payment(p.apply(&mut batch, pay_command(&qr, &line_id, "10.00"), Some("k1")));
    assert_eq!(again.id, paid.id, "the same key paid twice");
    let captured = payment(p.apply(&mut batch, Command::Capture { payment_id: paid.id.clone(), amount: None }, None));
    assert_eq!(captured.status, PaymentStatus::Captured);
    let decision = p.apply(&mut batch, Command::GetDecision { payment_id: paid.id.clone() }, None);
    assert!(matches!(decision, Ok(Reply::Document(_))), "{decision:?}");
    let second = p.seal(batch);
    p.commit(&second);
    let mut batch = Batch::default();
    let refunded =
        payment(p.apply(&mut batch, Command::Refund { payment_id: paid.id.clone(), amount: "4.00".into() }, None));
    assert_eq!((refunded.status, refunded.refunded_amount.as_str()), (PaymentStatus::PartiallyRefunded, "4.00"));
}

#[test]
fn a_slow_commit_under_several_batches_hides_nothing() {
    let mut p = Pipeline::new();
    let (qr, line_id) = p.setup();
    let mut sealed = vec![];
    let mut batch = Batch::default();
    let paid = payment(p.apply(&mut batch, pay_command(&qr, &line_id, "10.00"), None));
    sealed.push(p.seal(batch));
    let steps = [
        Command::Capture { payment_id: paid.id.clone(), amount: Some("9.00".into()) },
        Command::Refund { payment_id: paid.id.clone(), amount: "3.00".into() },
        Command::Refund { payment_id: paid.id.clone(), amount: "4.00".into() },
    ];
    for step in steps {
        let mut batch = Batch::default();
        payment(p.apply(&mut batch, step, None));
        sealed.push(p.seal(batch));
    }
    // Nothing is durable yet, and every batch saw the one before it.
    let mut batch = Batch::default();
    let over = p.apply(&mut batch, Command::Refund { payment_id: paid.id.clone(), amount: "2.01".into() }, None);
    assert!(
        matches!(&over, Err(CoreError::RefundExceedsCaptured { refundable, .. }) if refundable == "2.00"),
        "{over:?}"
    );
    for batch in &sealed {
        p.commit(batch);
    }
    let seen = payment(p.apply(&mut batch, Command::GetPayment { id: paid.id.clone() }, None));
    assert_eq!((seen.captured_amount.as_str(), seen.refunded_amount.as_str()), ("9.00", "7.00"));
}

#[test]
fn a_settled_hold_leaves_memory_only_once_the_store_holds_it_and_comes_back_exact() {
    let mut p = Pipeline::new();
    let (qr, line_id) = p.setup();
    let mut batch = Batch::default();
    let paid = payment(p.apply(&mut batch, pay_command(&qr, &line_id, "10.00"), None));
    payment(p.apply(&mut batch, Command::Capture { payment_id: paid.id.clone(), amount: None }, None));
    payment(p.apply(&mut batch, Command::Refund { payment_id: paid.id.clone(), amount: "3.00".into() }, None));
    let captured = p.seal(batch);
    assert!(p.state.ledger.hold(&paid.id).is_some(), "evicted before the store held its last change");
    // A refund while that batch is still being committed uses the resident hold.
    let mut batch = Batch::default();
    payment(p.apply(&mut batch, Command::Refund { payment_id: paid.id.clone(), amount: "4.00".into() }, None));
    let refunded = p.seal(batch);
    p.commit(&captured);
    p.commit(&refunded);
    // The next read of the store starts a snapshot that holds both batches: the hold may go.
    let mut batch = Batch::default();
    let absent = p.apply(&mut batch, Command::GetPayment { id: "pay_absent".into() }, None);
    assert!(matches!(absent, Err(CoreError::PaymentNotFound { .. })), "{absent:?}");
    assert!(p.state.ledger.hold(&paid.id).is_none(), "a settled hold the store holds leaves memory");
    // Rebuilt from its journal: 7.00 of 10.00 refunded, whatever a record might say.
    let over = p.apply(&mut batch, Command::Refund { payment_id: paid.id.clone(), amount: "6.00".into() }, None);
    assert!(
        matches!(&over, Err(CoreError::RefundExceedsCaptured { refundable, .. }) if refundable == "3.00"),
        "{over:?}"
    );
    let last =
        payment(p.apply(&mut batch, Command::Refund { payment_id: paid.id.clone(), amount: "3.00".into() }, None));
    assert_eq!((last.status, last.refunded_amount.as_str()), (PaymentStatus::Refunded, "10.00"));
}

#[test]
fn after_a_refused_commit_the_state_reloads_and_numbers_batches_past_it() {
    let mut p = Pipeline::new();
    let (qr, line_id) = p.setup();
    let mut batch = Batch::default();
    let lost = payment(p.apply(&mut batch, pay_command(&qr, &line_id, "10.00"), Some("k-lost")));
    let refused = p.seal(batch);
    // The committer refused it (a failed disk): the writer reloads from the store.
    p.state.reload().unwrap();
    let mut batch = Batch::default();
    let missing = p.apply(&mut batch, Command::GetPayment { id: lost.id.clone() }, None);
    assert!(matches!(missing, Err(CoreError::PaymentNotFound { .. })), "{missing:?}");
    let retried = payment(p.apply(&mut batch, pay_command(&qr, &line_id, "10.00"), Some("k-lost")));
    assert_ne!(retried.id, lost.id, "the refused payment never happened; its retry is new");
    let next = p.seal(batch);
    assert!(next.generation > refused.generation, "a refused batch's generation was reused");
    p.commit(&next);
}

#[test]
fn batches_that_read_nothing_still_let_the_overlay_go() {
    let mut p = Pipeline::new();
    let (qr, line_id) = p.setup();
    for _ in 0..20 {
        let mut batch = Batch::default();
        payment(p.apply(&mut batch, pay_command(&qr, &line_id, "1.00"), None));
        let sealed = p.seal(batch);
        p.commit(&sealed);
        assert!(p.state.overlay_batches() <= 5, "the overlay keeps {} batches", p.state.overlay_batches());
    }
}
