//! The payment service end to end on the real SQLite store: lifecycle, declines, QR
//! resolution, idempotency, restart, concurrency and a failing disk.

mod common;

use common::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use xiezhi_core::*;
use xiezhi_store::wrap::Wrapper;
use xiezhi_store::{Batch, Record, RecordKind, Store, StoreError};
use xiezhi_store_sqlite::SqliteStore;

#[test]
fn scan_pay_capture_refund_repay() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = start(dir.path(), ServiceConfig::default());
    let shop = merchant(&service, "Lotus Market");
    let cl = line(&service, "1000.00");
    assert_eq!((cl.limit.as_str(), cl.available.as_str()), ("1000.00", "1000.00"));

    assert_eq!(pay(&service, &cl.id, &shop.qr_payload, None), Err(CoreError::AmountRequired));
    let p = pay(&service, &cl.id, &shop.qr_payload, Some("120.50")).unwrap();
    assert_eq!(p.status, PaymentStatus::Authorized);
    assert_eq!(p.decision.outcome, Outcome::Approve);
    assert_eq!(p.merchant_id, shop.id);
    let l = get_line(&service, &cl.id);
    assert_eq!((l.available.as_str(), l.held.as_str()), ("879.50", "120.50"));

    let p = payment_of(run(&service, Command::Capture { payment_id: p.id.clone(), amount: Some("100.00".into()) }));
    assert_eq!((p.status, p.captured_amount.as_str()), (PaymentStatus::Captured, "100.00"));
    let l = get_line(&service, &cl.id);
    assert_eq!((l.available.as_str(), l.held.as_str(), l.receivable.as_str()), ("900.00", "0.00", "100.00"));

    let p = payment_of(run(&service, Command::Refund { payment_id: p.id.clone(), amount: "30.00".into() }));
    assert_eq!((p.status, p.refunded_amount.as_str(), p.refunds.len()), (PaymentStatus::PartiallyRefunded, "30.00", 1));
    assert!(matches!(
        run(&service, Command::Refund { payment_id: p.id.clone(), amount: "70.01".into() }),
        Err(CoreError::RefundExceedsCaptured { .. })
    ));

    match run(&service, Command::Repay { credit_line_id: cl.id.clone(), amount: "70.00".into() }).unwrap() {
        Reply::Repayment(r) => {
            assert_eq!(r.credit_line.available, "1000.00");
            assert_eq!(r.credit_line.receivable, "0.00");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        run(&service, Command::Repay { credit_line_id: cl.id.clone(), amount: "0.01".into() }),
        Err(CoreError::RepaymentExceedsBalance { .. })
    ));
    // Capturing twice, or voiding a captured payment, is a state error, not a crash.
    assert!(matches!(
        run(&service, Command::Void { payment_id: p.id.clone() }),
        Err(CoreError::InvalidPaymentState { .. })
    ));
}

#[test]
fn over_limit_is_declined_with_a_reason_code() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = start(dir.path(), ServiceConfig::default());
    let shop = merchant(&service, "Lotus Market");
    let cl = line(&service, "100.00");
    let p = pay(&service, &cl.id, &shop.qr_payload, Some("100.01")).unwrap();
    assert_eq!(p.status, PaymentStatus::Declined);
    assert_eq!(p.decision.outcome, Outcome::Decline);
    assert_eq!(p.decision.reason_codes, vec!["insufficient_credit".to_string()]);
    assert_eq!(get_line(&service, &cl.id).available, "100.00");
    // The declined payment is on record.
    let again = payment_of(run(&service, Command::GetPayment { id: p.id.clone() }));
    assert_eq!(again.status, PaymentStatus::Declined);
}

#[test]
fn dynamic_codes_fix_the_amount() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = start(dir.path(), ServiceConfig::default());
    let shop = merchant(&service, "华联超市");
    let decoded = xiezhi_qr::decode(&shop.qr_payload, Default::default()).unwrap();
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    assert_eq!(decoded.merchant_information_language.unwrap().merchant_name.as_deref(), Some("华联超市"));
    let cl = line(&service, "500");
    let qr = match run(
        &service,
        Command::IssueDynamicQr {
            merchant_id: shop.id.clone(),
            amount: "23.70".into(),
            bill_number: Some("B-77".into()),
        },
    )
    .unwrap()
    {
        Reply::DynamicQr(q) => q.qr_payload,
        other => panic!("{other:?}"),
    };
    assert!(matches!(pay(&service, &cl.id, &qr, Some("23.71")), Err(CoreError::AmountMismatch { .. })));
    let p = pay(&service, &cl.id, &qr, None).unwrap();
    assert_eq!((p.amount.as_str(), p.dynamic_qr, p.bill_number.as_deref()), ("23.70", true, Some("B-77")));
    let p2 = pay(&service, &cl.id, &qr, Some("23.7")).unwrap();
    assert_eq!(p2.amount, "23.70");
}

#[test]
fn foreign_and_unknown_codes_are_not_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServiceConfig {
        acceptance: AcceptanceConfig {
            own_guid: "cn.xiezhi.pay".into(),
            partner_schemes: vec![AcceptedScheme {
                globally_unique_identifier: "D15600000000".into(),
                merchant_ref_field: "05".into(),
            }],
        },
        ..Default::default()
    };
    let (service, _) = start(dir.path(), config);
    let cl = line(&service, "500");
    let pix = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
    assert!(matches!(pay(&service, &cl.id, pix, Some("1")), Err(CoreError::MerchantNotAccepted { .. })));
    // The EMVCo sample is a partner-scheme code; it routes once a merchant claims its ref.
    let sample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";
    assert!(matches!(pay(&service, &cl.id, sample, None), Err(CoreError::MerchantNotAccepted { .. })));
    let request = NewMerchant {
        name: "Best Transport".into(),
        city: "Beijing".into(),
        country: "CN".into(),
        mcc: "4111".into(),
        currency: "CNY".into(),
        partner_accounts: vec![PartnerAccount {
            globally_unique_identifier: "d15600000000".into(),
            merchant_ref: "A93FO3230Q".into(),
        }],
        onboarded_at: None,
    };
    let best = match run(&service, Command::CreateMerchant(request)).unwrap() {
        Reply::Merchant(m) => m,
        other => panic!("{other:?}"),
    };
    let p = pay(&service, &cl.id, sample, None).unwrap();
    assert_eq!((p.merchant_id.as_str(), p.amount.as_str()), (best.id.as_str(), "23.72"));
    // An unregistered id under our own GUID.
    let mut fake = xiezhi_qr::decode(&best.qr_payload, Default::default()).unwrap();
    fake.merchant_account_information[0].fields.insert("01".into(), "mch_nope".into());
    let fake = fake.encode().unwrap();
    assert!(matches!(pay(&service, &cl.id, &fake, Some("1")), Err(CoreError::MerchantNotAccepted { .. })));
    // Broken payload and currency mismatch.
    assert!(matches!(pay(&service, &cl.id, "0002010102", Some("1")), Err(CoreError::InvalidQr { .. })));
    // No credit in a currency the policy does not cap (the shipped policy caps CNY only).
    let usd_line = NewCreditLine {
        user_id: "u".into(),
        currency: "USD".into(),
        limit: "5".into(),
        profile: Default::default(),
        opened_at: None,
        wallet_id: None,
        contact: None,
    };
    assert_eq!(
        run(&service, Command::CreateCreditLine(usd_line)),
        Err(CoreError::CurrencyNotAdmitted { currency: "USD".into() })
    );
    let usd_shop = NewMerchant {
        name: "Dollar Shop".into(),
        city: "Hong Kong".into(),
        country: "HK".into(),
        mcc: "5411".into(),
        currency: "USD".into(),
        partner_accounts: vec![],
        onboarded_at: None,
    };
    let Ok(Reply::Merchant(usd_shop)) = run(&service, Command::CreateMerchant(usd_shop)) else { panic!() };
    assert!(matches!(pay(&service, &cl.id, &usd_shop.qr_payload, Some("1")), Err(CoreError::CurrencyMismatch { .. })));
    assert!(matches!(pay(&service, &cl.id, &best.qr_payload, Some("1.001")), Err(CoreError::InvalidAmount { .. })));
    assert!(matches!(pay(&service, &cl.id, &best.qr_payload, Some("-1")), Err(CoreError::InvalidAmount { .. })));
    assert!(matches!(
        run(
            &service,
            Command::CreateCreditLine(NewCreditLine {
                user_id: "u".into(),
                currency: "XXX".into(),
                limit: "5".into(),
                profile: Default::default(),
                opened_at: None,
                wallet_id: None,
                contact: None
            })
        ),
        Err(CoreError::UnknownCurrency { .. })
    ));
}

#[test]
fn idempotency_keys_replay_and_refuse_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = start(dir.path(), ServiceConfig::default());
    let shop = merchant(&service, "Lotus Market");
    let cl = line(&service, "100");
    let key = |fingerprint: &str| Some(IdempotencyKey { key: "k-1".into(), fingerprint: fingerprint.into() });
    let command = service.prepare_payment(payment_request(&cl.id, &shop.qr_payload, Some("10"))).unwrap();
    let first = payment_of(service.execute_blocking(command.clone(), key("f1")));
    let second = payment_of(service.execute_blocking(command.clone(), key("f1")));
    assert_eq!(first, second);
    assert_eq!(get_line(&service, &cl.id).available, "90.00", "a replay must not authorize twice");
    assert_eq!(
        service.execute_blocking(command, key("f2")),
        Err(CoreError::IdempotencyKeyReused { key: "k-1".into() })
    );
    // Survives a restart.
    drop(service);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (service, _) = start(dir.path(), ServiceConfig::default());
    let command = service.prepare_payment(payment_request(&cl.id, &shop.qr_payload, Some("10"))).unwrap();
    assert_eq!(payment_of(service.execute_blocking(command, key("f1"))), first);
    assert_eq!(get_line(&service, &cl.id).available, "90.00");
}

#[test]
fn holds_expire_on_the_service_clock() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServiceConfig { hold_ttl_ms: 60_000, ..Default::default() };
    let (service, clock) = start(dir.path(), config);
    let shop = merchant(&service, "Lotus Market");
    let cl = line(&service, "100");
    let p = pay(&service, &cl.id, &shop.qr_payload, Some("40")).unwrap();
    clock.0.fetch_add(60_000, Ordering::SeqCst);
    // The sweep runs within a sweep interval of idle time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = payment_of(run(&service, Command::GetPayment { id: p.id.clone() }));
        if now.status == PaymentStatus::Expired {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "hold never expired");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(get_line(&service, &cl.id).available, "100.00");
    assert!(matches!(
        run(&service, Command::Capture { payment_id: p.id, amount: None }),
        Err(CoreError::InvalidPaymentState { .. })
    ));
}

/// A store that fails commits on demand, to check that a failed commit loses nothing that
/// was acknowledged and acknowledges nothing that was lost.
struct FlakyStore {
    inner: Box<dyn Store>,
    fail: Arc<AtomicBool>,
    fail_reads: Arc<AtomicBool>,
    /// Offer a (flaky) committer handle, so commits are pipelined.
    pipelined: bool,
}

impl Wrapper for FlakyStore {
    fn inner(&mut self) -> &mut dyn Store {
        self.inner.as_mut()
    }
    fn inner_ref(&self) -> &dyn Store {
        self.inner.as_ref()
    }
    fn open_committer(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        if !self.pipelined {
            return Ok(None);
        }
        let inner = self.inner.open_committer()?.expect("SQLite offers a committer");
        Ok(Some(Box::new(FlakyStore {
            inner,
            fail: self.fail.clone(),
            fail_reads: Arc::new(AtomicBool::new(false)),
            pipelined: false,
        })))
    }
    fn record(&mut self, kind: RecordKind, id: &str) -> Result<Option<Record>, StoreError> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Io("read error".into()));
        }
        self.inner.record(kind, id)
    }
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Io("disk on fire".into()));
        }
        self.inner.commit(batch)
    }
}

#[test]
fn a_failed_commit_is_reported_and_rolled_back() {
    a_failed_commit_is_reported_and_rolled_back_in(false);
}

#[test]
fn a_failed_pipelined_commit_is_reported_and_rolled_back() {
    a_failed_commit_is_reported_and_rolled_back_in(true);
}

fn a_failed_commit_is_reported_and_rolled_back_in(pipelined: bool) {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let fail_reads = Arc::new(AtomicBool::new(false));
    let store = FlakyStore {
        inner: Box::new(SqliteStore::open_dir(dir.path()).unwrap()),
        fail: fail.clone(),
        fail_reads: fail_reads.clone(),
        pipelined,
    };
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = Service::start(Box::new(store), ServiceConfig::default(), clock).unwrap();
    let shop = merchant(&service, "Lotus Market");
    let cl = line(&service, "100");
    fail.store(true, Ordering::SeqCst);
    assert!(matches!(pay(&service, &cl.id, &shop.qr_payload, Some("60")), Err(CoreError::StorageUnavailable { .. })));
    fail.store(false, Ordering::SeqCst);
    assert_eq!(get_line(&service, &cl.id).available, "100.00", "the failed authorization must not hold credit");
    let p = pay(&service, &cl.id, &shop.qr_payload, Some("60")).unwrap();
    assert_eq!(p.status, PaymentStatus::Authorized);
    // Enough batches that the payment's has left the writer's overlay (which keeps only the
    // few latest batches the store's snapshot may not hold): the capture reads the store.
    for _ in 0..8 {
        line(&service, "1");
    }
    // A read failure in the middle of a capture must not commit half of it.
    fail_reads.store(true, Ordering::SeqCst);
    assert!(matches!(
        run(&service, Command::Capture { payment_id: p.id.clone(), amount: None }),
        Err(CoreError::StorageUnavailable { .. })
    ));
    fail_reads.store(false, Ordering::SeqCst);
    let l = get_line(&service, &cl.id);
    assert_eq!((l.held.as_str(), l.receivable.as_str()), ("60.00", "0.00"));
    let p = payment_of(run(&service, Command::Capture { payment_id: p.id.clone(), amount: None }));
    assert_eq!(p.status, PaymentStatus::Captured);
}

#[test]
fn refunds_work_after_settled_holds_leave_memory_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = start(dir.path(), ServiceConfig::default());
    let shop = merchant(&service, "Lotus Market");
    let cl = line(&service, "100");
    let p = pay(&service, &cl.id, &shop.qr_payload, Some("50")).unwrap();
    payment_of(run(&service, Command::Capture { payment_id: p.id.clone(), amount: Some("40".into()) }));
    // Separate commits: the captured hold has been evicted by now.
    let p1 = payment_of(run(&service, Command::Refund { payment_id: p.id.clone(), amount: "10".into() }));
    assert_eq!(p1.status, PaymentStatus::PartiallyRefunded);
    drop(service);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (service, _) = start(dir.path(), ServiceConfig::default());
    assert!(matches!(
        run(&service, Command::Refund { payment_id: p.id.clone(), amount: "30.01".into() }),
        Err(CoreError::RefundExceedsCaptured { .. })
    ));
    let p2 = payment_of(run(&service, Command::Refund { payment_id: p.id.clone(), amount: "30".into() }));
    assert_eq!((p2.status, p2.refunded_amount.as_str()), (PaymentStatus::Refunded, "40.00"));
    let l = get_line(&service, &cl.id);
    assert_eq!((l.available.as_str(), l.receivable.as_str()), ("100.00", "0.00"));
    assert_eq!(service.stats().pending_holds.load(Ordering::Relaxed), 0);
}

#[test]
fn idempotency_keys_expire_after_the_retention_period() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServiceConfig { idempotency_retention_ms: 10_000, ..Default::default() };
    let (service, clock) = start(dir.path(), config);
    let cl = line(&service, "100");
    let key = Some(IdempotencyKey { key: "old".into(), fingerprint: "f1".into() });
    let request = NewCreditLine {
        user_id: "u2".into(),
        currency: "CNY".into(),
        limit: "5".into(),
        profile: Default::default(),
        opened_at: None,
        wallet_id: None,
        contact: None,
    };
    service.execute_blocking(Command::CreateCreditLine(request), key.clone()).unwrap();
    let other = Some(IdempotencyKey { key: "old".into(), fingerprint: "f2".into() });
    assert!(matches!(
        service.execute_blocking(Command::GetCreditLine { id: cl.id.clone() }, other.clone()),
        Err(CoreError::IdempotencyKeyReused { .. })
    ));
    clock.0.fetch_add(10_001, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while service.execute_blocking(Command::GetCreditLine { id: cl.id.clone() }, other.clone()).is_err() {
        assert!(std::time::Instant::now() < deadline, "the key was never pruned");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Many threads authorize against one credit line at once: the approved total never
    /// exceeds the limit, available never goes below zero, and the books balance.
    #[test]
    fn concurrent_authorizations_never_overdraw(amounts in prop::collection::vec(1u32..5_000, 16..160), limit in 1_000u32..200_000, threads in 2usize..16) {
        let dir = tempfile::tempdir().unwrap();
        // The ledger's invariant under concurrency, without risk rules stepping the burst up.
        let risk = RiskConfig { rules_json: Some(r#"{"version":"none","rules":[]}"#.into()), ..Default::default() };
        let (service, _) = start(dir.path(), ServiceConfig { max_batch: 64, risk, ..Default::default() });
        let shop = merchant(&service, "Lotus Market");
        let cl = line(&service, &format!("{}.{:02}", limit / 100, limit % 100));
        let chunks: Vec<Vec<u32>> = amounts.chunks(amounts.len().div_ceil(threads)).map(<[u32]>::to_vec).collect();
        let approved: Vec<(i64, usize)> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let service = service.clone();
                    let qr = shop.qr_payload.clone();
                    let line_id = cl.id.clone();
                    scope.spawn(move || {
                        let mut approved_minor = 0i64;
                        let mut declined = 0usize;
                        for amount in chunk {
                            let text = format!("{}.{:02}", amount / 100, amount % 100);
                            let p = pay(&service, &line_id, &qr, Some(&text)).unwrap();
                            match p.status {
                                PaymentStatus::Authorized => approved_minor += i64::from(amount),
                                PaymentStatus::Declined => declined += 1,
                                other => panic!("{other:?}"),
                            }
                        }
                        (approved_minor, declined)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let approved_minor: i64 = approved.iter().map(|(a, _)| a).sum();
        let declined: usize = approved.iter().map(|(_, d)| d).sum();
        prop_assert!(approved_minor <= i64::from(limit));
        let l = get_line(&service, &cl.id);
        let available_minor = xiezhi_money::parse_minor(&l.available, xiezhi_money::Currency::from_code("CNY").unwrap(), xiezhi_money::Sign::Any).unwrap();
        prop_assert_eq!(available_minor, i64::from(limit) - approved_minor);
        prop_assert!(available_minor >= 0);
        // A decline only happens when the smallest amount did not fit at some point.
        if declined > 0 {
            prop_assert!(available_minor < i64::from(*amounts.iter().max().unwrap()));
        }
        drop(service);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let report = SqliteStore::open_dir(dir.path()).unwrap().check_books().unwrap();
        prop_assert!(report.is_balanced(), "{:?}", report);
    }
}

/// Pipelined commits under concurrency with a commit failing in the middle: every payment a
/// client saw authorized is in the books after a restart, no refused one holds credit, and
/// the books balance.
#[test]
fn a_commit_failing_under_pipelined_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let store = FlakyStore {
        inner: Box::new(SqliteStore::open_dir(dir.path()).unwrap()),
        fail: fail.clone(),
        fail_reads: Arc::new(AtomicBool::new(false)),
        pipelined: true,
    };
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let risk = RiskConfig { rules_json: Some(r#"{"version":"none","rules":[]}"#.into()), ..Default::default() };
    let service =
        Service::start(Box::new(store), ServiceConfig { max_batch: 8, risk, ..Default::default() }, clock).unwrap();
    let shop = merchant(&service, "Lotus Market");
    let lines: Vec<String> = (0..8).map(|_| line(&service, "1000000").id).collect();
    let flipper = {
        let fail = fail.clone();
        std::thread::spawn(move || {
            for _ in 0..6 {
                std::thread::sleep(std::time::Duration::from_millis(15));
                fail.store(true, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(3));
                fail.store(false, Ordering::SeqCst);
            }
        })
    };
    let outcomes: Vec<(String, String, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = lines
            .iter()
            .map(|line_id| {
                let (service, qr) = (service.clone(), shop.qr_payload.clone());
                scope.spawn(move || {
                    let mut seen = vec![];
                    for i in 0..60 {
                        match pay(&service, line_id, &qr, Some(&format!("{}.00", 1 + i % 9))) {
                            Ok(p) => seen.push((p.id, line_id.clone(), p.status == PaymentStatus::Authorized)),
                            Err(CoreError::StorageUnavailable { .. }) => {}
                            Err(other) => panic!("{other:?}"),
                        }
                    }
                    seen
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    flipper.join().unwrap();
    assert!(service.stats().failed_commits.load(Ordering::Relaxed) > 0, "no commit failed: the test tested nothing");
    drop(service);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (service, _) = start(dir.path(), ServiceConfig::default());
    let mut held: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for (id, line_id, authorized) in &outcomes {
        let p = payment_of(run(&service, Command::GetPayment { id: id.clone() }));
        assert_eq!(p.status == PaymentStatus::Authorized, *authorized, "payment {id} changed after the restart");
        if *authorized {
            let minor = xiezhi_money::parse_minor(
                &p.amount,
                xiezhi_money::Currency::from_code("CNY").unwrap(),
                xiezhi_money::Sign::Any,
            )
            .unwrap();
            *held.entry(line_id.clone()).or_default() += minor;
        }
    }
    assert!(outcomes.len() > 100, "the load must get through between failures ({})", outcomes.len());
    for line_id in &lines {
        let l = get_line(&service, line_id);
        let held_minor = xiezhi_money::parse_minor(
            &l.held,
            xiezhi_money::Currency::from_code("CNY").unwrap(),
            xiezhi_money::Sign::Any,
        )
        .unwrap();
        assert_eq!(
            held_minor,
            held.get(line_id).copied().unwrap_or(0),
            "line {line_id}: held credit matches acknowledged payments"
        );
    }
}
