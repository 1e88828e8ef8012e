//! Ledger invariants: every transaction balances in both books, available credit never goes
//! below zero, failed operations change nothing, and replaying the journal rebuilds the same
//! state.

use proptest::prelude::*;
use xiezhi_ledger::{Book, HoldStatus, Ledger, LedgerError, Operation, PlatformAccount, Transaction};
use xiezhi_money::Currency;

const HOUR_MS: i64 = 3_600_000;

fn cny() -> Currency {
    Currency::from_code("CNY").unwrap()
}

fn open(ledger: &mut Ledger, id: &str, limit_minor: i64) -> Transaction {
    ledger
        .execute(
            Operation::OpenLine { credit_line_id: id.into(), user_id: format!("u_{id}"), currency: cny(), limit_minor },
            0,
        )
        .unwrap()
}

fn authorize(
    ledger: &mut Ledger,
    hold: &str,
    line: &str,
    amount_minor: i64,
    now_ms: i64,
) -> Result<Transaction, LedgerError> {
    ledger.execute(
        Operation::Authorize {
            hold_id: hold.into(),
            credit_line_id: line.into(),
            amount_minor,
            expires_at_ms: now_ms + HOUR_MS,
        },
        now_ms,
    )
}

#[test]
fn payment_lifecycle_moves_credit_and_money() {
    let mut ledger = Ledger::new();
    open(&mut ledger, "cl", 100_000);
    authorize(&mut ledger, "h1", "cl", 30_000, 1).unwrap();
    let line = ledger.credit_line("cl").unwrap();
    assert_eq!((line.available_minor(), line.held_minor(), line.receivable_minor()), (70_000, 30_000, 0));

    // Partial capture releases the rest.
    let capture = ledger.execute(Operation::Capture { hold_id: "h1".into(), amount_minor: 25_000 }, 2).unwrap();
    assert!(capture.is_balanced());
    let line = ledger.credit_line("cl").unwrap();
    assert_eq!((line.available_minor(), line.held_minor(), line.receivable_minor()), (75_000, 0, 25_000));
    assert_eq!(ledger.platform_balance(cny(), PlatformAccount::MerchantSettlementPayable), -25_000);

    // Refund restores available credit.
    ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 5_000 }, 3).unwrap();
    let line = ledger.credit_line("cl").unwrap();
    assert_eq!((line.available_minor(), line.receivable_minor()), (80_000, 20_000));
    assert_eq!(
        ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 20_001 }, 4),
        Err(LedgerError::RefundExceedsCaptured { requested_minor: 20_001, refundable_minor: 20_000 })
    );

    // Repayment.
    assert!(matches!(
        ledger.execute(Operation::Repay { credit_line_id: "cl".into(), amount_minor: 20_001 }, 5),
        Err(LedgerError::RepaymentExceedsBalance { .. })
    ));
    ledger.execute(Operation::Repay { credit_line_id: "cl".into(), amount_minor: 20_000 }, 5).unwrap();
    let line = ledger.credit_line("cl").unwrap();
    assert_eq!((line.available_minor(), line.receivable_minor()), (100_000, 0));
    assert_eq!(ledger.platform_balance(cny(), PlatformAccount::RepaymentsReceived), 20_000);

    // A refund after repayment becomes a credit balance owed to the user.
    ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 20_000 }, 6).unwrap();
    let line = ledger.credit_line("cl").unwrap();
    assert_eq!((line.available_minor(), line.receivable_minor(), line.credit_balance_minor()), (100_000, 0, 20_000));
    assert_eq!(ledger.trial_balance(), (0, 0));
}

#[test]
fn over_limit_is_refused_and_changes_nothing() {
    let mut ledger = Ledger::new();
    open(&mut ledger, "cl", 10_000);
    authorize(&mut ledger, "h1", "cl", 9_000, 1).unwrap();
    let before = ledger.clone();
    assert_eq!(
        authorize(&mut ledger, "h2", "cl", 1_001, 1),
        Err(LedgerError::InsufficientCredit { requested_minor: 1_001, available_minor: 1_000 })
    );
    assert_eq!(ledger, before);
    authorize(&mut ledger, "h2", "cl", 1_000, 1).unwrap();
    assert_eq!(ledger.credit_line("cl").unwrap().available_minor(), 0);
}

#[test]
fn holds_expire_void_and_refuse_late_capture() {
    let mut ledger = Ledger::new();
    open(&mut ledger, "cl", 10_000);
    authorize(&mut ledger, "h1", "cl", 4_000, 0).unwrap();
    authorize(&mut ledger, "h2", "cl", 3_000, 10).unwrap();
    assert_eq!(ledger.expire_due(HOUR_MS - 1, 100).len(), 0);
    let expired = ledger.expire_due(HOUR_MS, 100);
    assert_eq!(expired.len(), 1);
    assert_eq!(ledger.hold("h1").unwrap().status, HoldStatus::Expired);
    assert_eq!(ledger.credit_line("cl").unwrap().available_minor(), 7_000);
    assert_eq!(
        ledger.execute(Operation::Capture { hold_id: "h1".into(), amount_minor: 1 }, HOUR_MS),
        Err(LedgerError::HoldNotPending { status: HoldStatus::Expired })
    );
    assert_eq!(
        ledger.execute(Operation::Capture { hold_id: "h2".into(), amount_minor: 1 }, HOUR_MS + 10),
        Err(LedgerError::HoldExpired { expires_at_ms: HOUR_MS + 10 })
    );
    ledger.execute(Operation::Void { hold_id: "h2".into() }, HOUR_MS + 10).unwrap();
    assert_eq!(ledger.credit_line("cl").unwrap().available_minor(), 10_000);
    assert_eq!(ledger.pending_hold_count(), 0);
}

#[test]
fn bad_amounts_and_ids_are_typed_errors() {
    let mut ledger = Ledger::new();
    open(&mut ledger, "cl", 10_000);
    assert_eq!(authorize(&mut ledger, "h", "cl", 0, 0), Err(LedgerError::NonPositiveAmount(0)));
    assert_eq!(authorize(&mut ledger, "h", "cl", -5, 0), Err(LedgerError::NonPositiveAmount(-5)));
    assert!(matches!(authorize(&mut ledger, "h", "cl", i64::MAX, 0), Err(LedgerError::AmountTooLarge(_))));
    assert_eq!(authorize(&mut ledger, "h", "nope", 1, 0), Err(LedgerError::UnknownCreditLine("nope".into())));
    authorize(&mut ledger, "h", "cl", 1, 0).unwrap();
    assert_eq!(authorize(&mut ledger, "h", "cl", 1, 0), Err(LedgerError::DuplicateId("h".into())));
    assert_eq!(
        ledger.execute(Operation::Capture { hold_id: "h".into(), amount_minor: 2 }, 1),
        Err(LedgerError::CaptureExceedsHold { requested_minor: 2, held_minor: 1 })
    );
    assert_eq!(
        ledger.execute(
            Operation::Authorize {
                hold_id: "x".into(),
                credit_line_id: "cl".into(),
                amount_minor: 1,
                expires_at_ms: 0
            },
            0
        ),
        Err(LedgerError::InvalidExpiry)
    );
}

#[test]
fn replay_rejects_a_tampered_journal() {
    let mut ledger = Ledger::new();
    let mut journal = vec![open(&mut ledger, "cl", 10_000)];
    journal.push(authorize(&mut ledger, "h", "cl", 500, 0).unwrap());
    let mut tampered = journal.clone();
    tampered[1].postings[1].amount_minor = 400;
    tampered[1].postings[0].amount_minor = -400;
    let mut fresh = Ledger::new();
    fresh.replay(&tampered[0]).unwrap();
    assert!(matches!(fresh.replay(&tampered[1]), Err(LedgerError::ReplayMismatch { id: 2, .. })));
    let mut out_of_order = Ledger::new();
    assert!(matches!(out_of_order.replay(&journal[1]), Err(LedgerError::ReplayMismatch { .. })));
}

#[derive(Debug, Clone)]
enum Step {
    Authorize { line: usize, amount_minor: i64 },
    Capture { hold: usize, part_pct: i64 },
    Void { hold: usize },
    Refund { hold: usize, amount_minor: i64 },
    Repay { line: usize, amount_minor: i64 },
    Advance { ms: i64 },
    Deposit { amount_minor: i64 },
    Payout { line: usize, amount_minor: i64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, -10i64..60_000).prop_map(|(line, amount_minor)| Step::Authorize { line, amount_minor }),
        3 => (0usize..40, 0i64..=110).prop_map(|(hold, part_pct)| Step::Capture { hold, part_pct }),
        1 => (0usize..40).prop_map(|hold| Step::Void { hold }),
        2 => (0usize..40, 1i64..30_000).prop_map(|(hold, amount_minor)| Step::Refund { hold, amount_minor }),
        2 => (0usize..3, 1i64..50_000).prop_map(|(line, amount_minor)| Step::Repay { line, amount_minor }),
        1 => (0i64..2 * HOUR_MS).prop_map(|ms| Step::Advance { ms }),
        1 => (-10i64..20_000).prop_map(|amount_minor| Step::Deposit { amount_minor }),
        2 => (0usize..4, -10i64..15_000).prop_map(|(line, amount_minor)| Step::Payout { line, amount_minor }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_under_any_sequence(limits in prop::collection::vec(0i64..200_000, 3), steps in prop::collection::vec(step(), 1..120)) {
        let mut ledger = Ledger::new();
        let mut journal = Vec::new();
        for (i, limit) in limits.iter().enumerate() {
            journal.push(open(&mut ledger, &format!("cl{i}"), *limit));
        }
        let mut now_ms = 0i64;
        let mut holds = 0usize;
        for step in steps {
            let before = ledger.clone();
            let operation = match step {
                Step::Advance { ms } => {
                    now_ms += ms;
                    journal.extend(ledger.expire_due(now_ms, usize::MAX));
                    continue;
                }
                Step::Authorize { line, amount_minor } => {
                    holds += 1;
                    Operation::Authorize { hold_id: format!("h{holds}"), credit_line_id: format!("cl{line}"), amount_minor, expires_at_ms: now_ms + HOUR_MS }
                }
                Step::Capture { hold, part_pct } => {
                    let amount = ledger.hold(&format!("h{hold}")).map_or(1, |h| h.amount_minor * part_pct / 100);
                    Operation::Capture { hold_id: format!("h{hold}"), amount_minor: amount }
                }
                Step::Void { hold } => Operation::Void { hold_id: format!("h{hold}") },
                Step::Refund { hold, amount_minor } => Operation::Refund { hold_id: format!("h{hold}"), amount_minor },
                Step::Repay { line, amount_minor } => Operation::Repay { credit_line_id: format!("cl{line}"), amount_minor },
                Step::Deposit { amount_minor } => {
                    Operation::FundDeposit { currency: cny(), amount_minor, reference: "top-up".into() }
                }
                // Line 3 does not exist: a payout to it is refused.
                Step::Payout { line, amount_minor } => Operation::CompensationPayout {
                    appeal_id: format!("ap{}", journal.len()),
                    credit_line_id: format!("cl{line}"),
                    amount_minor,
                },
            };
            let fund_before = ledger.fund_balance_minor(cny());
            match ledger.execute(operation, now_ms) {
                Ok(transaction) => {
                    prop_assert_eq!(transaction.book_sum(Book::Credit), 0);
                    prop_assert_eq!(transaction.book_sum(Book::Money), 0);
                    if let Operation::CompensationPayout { appeal_id, amount_minor, .. } = &transaction.operation {
                        // A payout names its appeal and moves exactly its amount out of the fund.
                        prop_assert!(!appeal_id.is_empty());
                        prop_assert_eq!(ledger.fund_balance_minor(cny()), fund_before - i128::from(*amount_minor));
                    }
                    journal.push(transaction);
                }
                Err(LedgerError::FundInsufficient { fund_minor, .. }) => {
                    prop_assert_eq!(fund_minor, fund_before);
                    prop_assert_eq!(&ledger, &before, "a refused payout changed the ledger");
                }
                Err(_) => prop_assert_eq!(&ledger, &before, "a failed operation changed the ledger"),
            }
            prop_assert!(ledger.fund_balance_minor(cny()) >= 0, "the fund went below zero");
            prop_assert_eq!(ledger.trial_balance(), (0, 0));
            for line in ledger.credit_lines() {
                prop_assert!(line.available_minor() >= 0);
                prop_assert_eq!(line.available_minor() + line.held_minor() + line.receivable_minor(), line.limit_minor());
            }
        }
        // Replaying the journal rebuilds exactly the same ledger.
        let mut replayed = Ledger::new();
        for transaction in &journal {
            replayed.replay(transaction).unwrap();
        }
        prop_assert_eq!(&replayed, &ledger);
        // Replaying any entry twice is refused: the journal is applied once.
        if let Some(last) = journal.last() {
            prop_assert!(replayed.replay(last).is_err());
        }
    }
}

#[test]
fn settled_holds_can_be_evicted_and_restored_for_refunds() {
    let mut ledger = Ledger::new();
    let mut journal = vec![open(&mut ledger, "cl", 10_000)];
    journal.push(authorize(&mut ledger, "h1", "cl", 4_000, 0).unwrap());
    journal.push(authorize(&mut ledger, "h2", "cl", 1_000, 0).unwrap());
    journal.push(ledger.execute(Operation::Capture { hold_id: "h1".into(), amount_minor: 3_000 }, 1).unwrap());
    journal.push(ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 500 }, 1).unwrap());
    let last = journal.last().unwrap().id;
    // Not while the store could still miss the hold's last change.
    assert_eq!(ledger.evict_settled_holds(last - 1), 0);
    assert_eq!(ledger.evict_settled_holds(last), 1);
    assert!(ledger.hold("h1").is_none());
    assert!(ledger.hold("h2").is_some(), "pending holds stay resident");
    assert_eq!(
        ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 1 }, 2),
        Err(LedgerError::UnknownHold("h1".into()))
    );
    let of = |hold: &str| -> Vec<Transaction> {
        journal.iter().filter(|t| t.operation.hold_id() == Some(hold)).cloned().collect()
    };
    // A source behind the evicted hold (missing its refund) is refused, not guessed from.
    let behind: Vec<Transaction> = of("h1").into_iter().filter(|t| t.id < last).collect();
    assert_eq!(
        ledger.restore_hold("h1", &behind, last - 1),
        Err(LedgerError::StaleRestore { as_of: last - 1, horizon: last })
    );
    assert!(matches!(ledger.restore_hold("h2x", &of("h2"), last), Err(LedgerError::HoldHistory { .. })));
    let mut pending_only = of("h2");
    if let Operation::Authorize { hold_id, .. } = &mut pending_only[0].operation {
        *hold_id = "h3".into();
    }
    assert!(ledger.restore_hold("h3", &pending_only, last).is_err(), "pending holds cannot be restored");
    // From its capture on, as the store keeps it: the same hold as from its authorization.
    let mut from_capture = ledger.clone();
    from_capture.restore_hold("h1", &of("h1")[1..], last).unwrap();
    ledger.restore_hold("h1", &of("h1"), last).unwrap();
    let (mut a, mut b) = (ledger.hold("h1").unwrap().clone(), from_capture.hold("h1").unwrap().clone());
    (a.expires_at_ms, b.expires_at_ms) = (0, 0);
    assert_eq!(a, b, "the expiry of a settled hold is never used");
    assert_eq!(ledger.hold("h1").unwrap().refunded_minor, 500);
    assert_eq!(
        ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 2_501 }, 2),
        Err(LedgerError::RefundExceedsCaptured { requested_minor: 2_501, refundable_minor: 2_500 })
    );
    ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 2_500 }, 2).unwrap();
    assert_eq!(ledger.credit_line("cl").unwrap().available_minor(), 9_000);
}

#[test]
fn a_restored_hold_is_what_replaying_its_journal_gives() {
    // An over-refund in the history is refused rather than restored.
    let mut ledger = Ledger::new();
    let mut journal = vec![open(&mut ledger, "cl", 10_000)];
    journal.push(authorize(&mut ledger, "h1", "cl", 1_000, 0).unwrap());
    journal.push(ledger.execute(Operation::Capture { hold_id: "h1".into(), amount_minor: 1_000 }, 1).unwrap());
    journal.push(ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 700 }, 1).unwrap());
    let last = journal.last().unwrap().id;
    let mut forged = journal.last().unwrap().clone();
    forged.id = last + 1;
    ledger.evict_settled_holds(last);
    let history: Vec<Transaction> = journal[1..].iter().cloned().chain([forged]).collect();
    assert!(matches!(ledger.restore_hold("h1", &history, last + 1), Err(LedgerError::HoldHistory { .. })));
    assert_eq!(ledger.restore_hold("h1", &journal[1..], last), Ok(()));
    let mut replayed = Ledger::new();
    for transaction in &journal {
        replayed.replay(transaction).unwrap();
    }
    assert_eq!(ledger.hold("h1"), replayed.hold("h1"));
}

#[test]
fn an_accepted_entry_is_applied_as_recorded_and_a_malformed_one_is_not() {
    let mut ledger = Ledger::new();
    let mut journal = vec![open(&mut ledger, "cl", 10_000)];
    journal.push(authorize(&mut ledger, "h1", "cl", 1_000, 0).unwrap());
    journal.push(ledger.execute(Operation::Capture { hold_id: "h1".into(), amount_minor: 1_000 }, 1).unwrap());
    journal.push(ledger.execute(Operation::Refund { hold_id: "h1".into(), amount_minor: 700 }, 1).unwrap());
    // A second refund of 600 recorded against 300 refundable: what a lagging record let in.
    let mut replayed = Ledger::new();
    for transaction in &journal {
        replayed.replay(transaction).unwrap();
    }
    let mut forged = journal[3].clone();
    forged.id = 5;
    if let Operation::Refund { amount_minor, .. } = &mut forged.operation {
        *amount_minor = 600;
    }
    for posting in &mut forged.postings {
        posting.amount_minor = posting.amount_minor.signum() * 600;
    }
    assert!(matches!(replayed.replay(&forged), Err(LedgerError::ReplayMismatch { id: 5, .. })));
    let mut accepted = replayed.clone();
    accepted.replay_as_recorded(&forged).unwrap();
    assert_eq!(accepted.hold("h1").unwrap().refunded_minor, 1_300);
    assert_eq!(accepted.last_transaction_id(), 5);
    assert_eq!(accepted.trial_balance(), (0, 0), "an accepted entry still balances");
    // Never what does not balance, skips an id, or posts to a line that does not exist.
    let mut unbalanced = forged.clone();
    unbalanced.postings[0].amount_minor += 1;
    assert!(replayed.clone().replay_as_recorded(&unbalanced).is_err());
    let mut gap = forged.clone();
    gap.id = 6;
    assert!(replayed.clone().replay_as_recorded(&gap).is_err());
    let mut elsewhere = forged;
    for posting in &mut elsewhere.postings {
        if let xiezhi_ledger::Account::Line { credit_line_id, .. } = &mut posting.account {
            *credit_line_id = "nowhere".into();
        }
    }
    assert_eq!(replayed.replay_as_recorded(&elsewhere), Err(LedgerError::UnknownCreditLine("nowhere".into())));
}

#[test]
fn an_accepted_entry_that_breaks_a_lines_rules_freezes_the_line() {
    let mut ledger = Ledger::new();
    open(&mut ledger, "cl", 10_000);
    open(&mut ledger, "other", 10_000);
    authorize(&mut ledger, "h1", "cl", 1_000, 0).unwrap();
    ledger.execute(Operation::Capture { hold_id: "h1".into(), amount_minor: 1_000 }, 1).unwrap();
    authorize(&mut ledger, "h2", "cl", 500, 0).unwrap();
    // Recorded as if the whole 1,100 reduced what the user owes: receivable goes below zero.
    let line = |account| xiezhi_ledger::Account::Line { credit_line_id: "cl".into(), account };
    let posting = |account, amount_minor| xiezhi_ledger::Posting { account, amount_minor };
    let broken = Transaction {
        id: ledger.last_transaction_id() + 1,
        at_ms: 2,
        currency: cny(),
        operation: Operation::Refund { hold_id: "h1".into(), amount_minor: 1_100 },
        postings: vec![
            posting(
                xiezhi_ledger::Account::Platform {
                    currency: cny(),
                    account: PlatformAccount::MerchantSettlementPayable,
                },
                1_100,
            ),
            posting(line(xiezhi_ledger::LineAccount::Receivable), -1_100),
            posting(line(xiezhi_ledger::LineAccount::Drawn), -1_100),
            posting(line(xiezhi_ledger::LineAccount::Available), 1_100),
        ],
    };
    ledger.replay_as_recorded(&broken).unwrap();
    assert!(ledger.is_frozen("cl") && !ledger.is_frozen("other"));
    // Nothing moves on the frozen line (and nothing panics); other lines go on.
    assert_eq!(authorize(&mut ledger, "h3", "cl", 1, 2), Err(LedgerError::LineFrozen("cl".into())));
    assert_eq!(ledger.execute(Operation::Void { hold_id: "h2".into() }, 2), Err(LedgerError::LineFrozen("cl".into())));
    assert!(ledger.expire_due(i64::MAX / 2, 10).is_empty(), "the frozen line's hold is not expired either");
    authorize(&mut ledger, "h4", "other", 100, 2).unwrap();
}

/// What merchants are owed and what users repaid only grow: the platform's accounts sum
/// past what one `i64` holds without a panic, and a line's own balance that would overflow
/// is refused with a typed error instead.
#[test]
fn no_sequence_of_operations_overflows_a_balance() {
    const MAX: i64 = xiezhi_money::MAX_AMOUNT_MINOR;
    let mut ledger = Ledger::new();
    open(&mut ledger, "cl", MAX);
    let cycles = 10_000; // 10^19 minor units in all, past i64::MAX (9.2 × 10^18)
    let mut refused = None;
    for i in 0..cycles {
        let hold = format!("h{i}");
        authorize(&mut ledger, &hold, "cl", MAX, 0).unwrap();
        ledger.execute(Operation::Capture { hold_id: hold.clone(), amount_minor: MAX }, 1).unwrap();
        ledger.execute(Operation::Repay { credit_line_id: "cl".into(), amount_minor: MAX }, 1).unwrap();
        // Refunding repaid spending is owed back to the user: the line's credit balance grows.
        match ledger.execute(Operation::Refund { hold_id: hold, amount_minor: MAX }, 1) {
            Ok(_) => {}
            Err(error) => {
                refused = Some((i, error));
                break;
            }
        }
    }
    let (at, error) = refused.expect("the credit balance cannot grow for ever");
    assert_eq!(error, LedgerError::BalanceOverflow { credit_line_id: "cl".into(), account: "credit_balance" });
    assert_eq!(at, (i64::MAX / MAX) as usize, "refused exactly when the next refund would overflow");
    let repaid = ledger.platform_balance(cny(), PlatformAccount::RepaymentsReceived);
    assert_eq!(repaid, i128::from(MAX) * (at as i128 + 1), "the platform's sum went past i64::MAX");
    assert!(repaid > i128::from(i64::MAX));
    assert_eq!(ledger.trial_balance(), (0, 0));
}
