//! The service is linearizable on the real store: a request that starts after another's
//! answer sees its effects, one idempotency key is one payment, and the books never refund
//! more than was captured, however the clients interleave. Each test here failed before the
//! writer's overlays were tied to the store's snapshot generation.

mod common;

use common::*;
use xiezhi_core::*;
use xiezhi_store::Store;
use xiezhi_store_sqlite::SqliteStore;

const CLIENTS: usize = 16;

/// One client's pay → re-send → capture → refund → refund → over-refund sequence on its own
/// line, each answer checked against what one client alone must see. Returns the anomalies.
fn client_sequences(service: &Service, qr: &str, line_id: &str, client: usize, rounds: usize) -> Vec<String> {
    let mut anomalies = vec![];
    let mut check = |what: &str, ok: bool, detail: String| {
        if !ok {
            anomalies.push(format!("client {client} {what}: {detail}"));
        }
    };
    for round in 0..rounds {
        let k = format!("pay-{client}-{round}");
        let command = service.prepare_payment(payment_request(line_id, qr, Some("10.00"))).unwrap();
        let first = payment_of(service.execute_blocking(command.clone(), key(&k)));
        if first.status != PaymentStatus::Authorized {
            check("pay", false, format!("{:?} {:?}", first.status, first.decision.reason_codes));
            continue;
        }
        let again = payment_of(service.execute_blocking(command, key(&k)));
        check("re-send with the same key", again.id == first.id, format!("{} then {}", first.id, again.id));
        let id = first.id.clone();
        let captured = run(service, Command::Capture { payment_id: id.clone(), amount: None });
        let ok = matches!(&captured, Ok(Reply::Payment(p)) if p.status == PaymentStatus::Captured);
        check("capture", ok, format!("{captured:?}"));
        let refund = |amount: &str| run(service, Command::Refund { payment_id: id.clone(), amount: amount.into() });
        let r1 = refund("3.00");
        let ok = matches!(&r1, Ok(Reply::Payment(p)) if p.refunded_amount == "3.00");
        check("first refund", ok, format!("{r1:?}"));
        let r2 = refund("4.00");
        let ok = matches!(&r2, Ok(Reply::Payment(p)) if p.refunded_amount == "7.00");
        check("second refund", ok, format!("{r2:?}"));
        let r3 = refund("6.00");
        let ok = matches!(&r3, Err(CoreError::RefundExceedsCaptured { refundable, .. }) if refundable == "3.00");
        check("over-refund", ok, format!("{r3:?}"));
        let seen = payment_of(run(service, Command::GetPayment { id: id.clone() }));
        check("read back", seen.refunded_amount == "7.00", format!("{seen:?}"));
    }
    anomalies
}

#[test]
fn acknowledged_writes_are_seen_by_the_next_request_of_any_client() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = start(dir.path(), no_rules());
    let shop = merchant(&service, "Lotus Market");
    let lines: Vec<String> = (0..CLIENTS).map(|c| line_for(&service, &format!("user-{c}"), "100000.00").id).collect();
    let anomalies: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(client, line_id)| {
                let (service, qr) = (&service, &shop.qr_payload);
                scope.spawn(move || client_sequences(service, qr, line_id, client, 60))
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(anomalies.is_empty(), "{} anomalies, first: {:?}", anomalies.len(), &anomalies[..anomalies.len().min(5)]);
    // Every line: 60 payments of 10.00 captured, 7.00 of each refunded.
    for line_id in &lines {
        let line = get_line(&service, line_id);
        assert_eq!(line.receivable, "180.00", "{line:?}");
    }
    drop(service);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(SqliteStore::open_dir(dir.path()).unwrap().check_books().unwrap().is_balanced());
    // The store starts again: replay accepts every transaction the service accepted.
    let (service, _) = start(dir.path(), no_rules());
    assert_eq!(get_line(&service, &lines[0]).receivable, "180.00");
}

/// Stripe's rule: a result is stored under a key only when the request changed something.
/// A refusal that a later state can turn into a success is not kept for the retry.
#[test]
fn a_refusal_is_not_kept_under_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = start(dir.path(), no_rules());
    let shop = merchant(&service, "Lotus Market");
    let cl = line_for(&service, "u1", "1000.00");
    let command = service.prepare_payment(payment_request(&cl.id, &shop.qr_payload, Some("50.00"))).unwrap();
    let p = payment_of(service.execute_blocking(command, key("pay-1")));
    let refund = Command::Refund { payment_id: p.id.clone(), amount: "20.00".into() };
    // Not captured yet: 409, and the answer is not remembered.
    let early = service.execute_blocking(refund.clone(), key("refund-1"));
    assert!(matches!(early, Err(CoreError::InvalidPaymentState { .. })), "{early:?}");
    payment_of(run(&service, Command::Capture { payment_id: p.id.clone(), amount: None }));
    let retried = payment_of(service.execute_blocking(refund.clone(), key("refund-1")));
    assert_eq!(retried.refunded_amount, "20.00");
    // Now that it changed the books, the same key replays it and refunds nothing more.
    let replayed = payment_of(service.execute_blocking(refund, key("refund-1")));
    assert_eq!(replayed, retried);
    assert_eq!(get_line(&service, &cl.id).receivable, "30.00");
}
