//! The compensation fund: deposits from the platform's own money, payouts credited to a
//! user's line naming their appeal, never below zero, rebuilt by replay.

use xiezhi_ledger::{Account, Book, Ledger, LedgerError, LineAccount, Operation, PlatformAccount};
use xiezhi_money::Currency;

fn cny() -> Currency {
    Currency::from_code("CNY").unwrap()
}

fn ledger_with_line() -> (Ledger, Vec<xiezhi_ledger::Transaction>) {
    let mut ledger = Ledger::new();
    let open = Operation::OpenLine {
        credit_line_id: "cl1".into(),
        user_id: "u1".into(),
        currency: cny(),
        limit_minor: 100_000,
    };
    let journal = vec![ledger.execute(open, 0).unwrap()];
    (ledger, journal)
}

fn deposit(amount_minor: i64) -> Operation {
    Operation::FundDeposit { currency: cny(), amount_minor, reference: "treasury-2026-11".into() }
}

fn payout(appeal_id: &str, amount_minor: i64) -> Operation {
    Operation::CompensationPayout { appeal_id: appeal_id.into(), credit_line_id: "cl1".into(), amount_minor }
}

#[test]
fn a_deposit_fills_the_fund_from_the_platforms_own_money() {
    let (mut ledger, _) = ledger_with_line();
    let t = ledger.execute(deposit(5_000), 1).unwrap();
    assert!(t.is_balanced());
    assert_eq!(t.book_sum(Book::Money), 0);
    assert_eq!(ledger.fund_balance_minor(cny()), 5_000);
    assert_eq!(ledger.platform_balance(cny(), PlatformAccount::PlatformOwnFunds), 5_000);
    assert_eq!(ledger.trial_balance(), (0, 0));
    for amount in [0, -1, 1_000_000_000_000_001] {
        let before = ledger.clone();
        assert!(ledger.execute(deposit(amount), 2).is_err(), "{amount} is refused");
        assert_eq!(ledger, before);
    }
}

#[test]
fn a_payout_is_credited_to_the_line_and_names_its_appeal() {
    let (mut ledger, _) = ledger_with_line();
    ledger.execute(deposit(5_000), 1).unwrap();
    let t = ledger.execute(payout("ap_1", 2_000), 2).unwrap();
    assert!(t.is_balanced());
    assert!(matches!(&t.operation, Operation::CompensationPayout { appeal_id, .. } if appeal_id == "ap_1"));
    let credited = Account::Line { credit_line_id: "cl1".into(), account: LineAccount::CreditBalance };
    assert!(t.postings.iter().any(|p| p.account == credited && p.amount_minor == -2_000));
    let line = ledger.credit_line("cl1").unwrap();
    assert_eq!(line.credit_balance_minor(), 2_000);
    assert_eq!(line.available_minor(), 100_000, "compensation is money owed, not credit capacity");
    assert_eq!(ledger.fund_balance_minor(cny()), 3_000);
    assert_eq!(ledger.trial_balance(), (0, 0));
    assert_eq!(ledger.execute(payout("", 1), 3), Err(LedgerError::PayoutWithoutAppeal));
    assert!(matches!(ledger.execute(payout("ap_2", 0), 3), Err(LedgerError::NonPositiveAmount(0))));
}

#[test]
fn the_fund_never_goes_below_zero() {
    let (mut ledger, _) = ledger_with_line();
    assert_eq!(
        ledger.execute(payout("ap_1", 1), 1),
        Err(LedgerError::FundInsufficient { currency: cny(), requested_minor: 1, fund_minor: 0 })
    );
    ledger.execute(deposit(1_500), 1).unwrap();
    ledger.execute(payout("ap_1", 1_000), 2).unwrap();
    let before = ledger.clone();
    assert_eq!(
        ledger.execute(payout("ap_2", 501), 3),
        Err(LedgerError::FundInsufficient { currency: cny(), requested_minor: 501, fund_minor: 500 })
    );
    assert_eq!(ledger, before, "a refused payout changes nothing");
    ledger.execute(payout("ap_2", 500), 3).unwrap();
    assert_eq!(ledger.fund_balance_minor(cny()), 0);
    // Another currency's fund is its own: the CNY line cannot be paid from USD money.
    let usd = Currency::from_code("USD").unwrap();
    ledger.execute(Operation::FundDeposit { currency: usd, amount_minor: 9_000, reference: "usd".into() }, 4).unwrap();
    assert!(matches!(ledger.execute(payout("ap_3", 1), 5), Err(LedgerError::FundInsufficient { .. })));
    assert_eq!(ledger.platform_currencies(), vec![cny(), usd]);
}

#[test]
fn replay_rebuilds_the_fund_and_refuses_an_overdraft_in_the_journal() {
    let (mut ledger, mut journal) = ledger_with_line();
    journal.push(ledger.execute(deposit(3_000), 1).unwrap());
    journal.push(ledger.execute(payout("ap_1", 1_200), 2).unwrap());
    journal.push(ledger.execute(payout("ap_2", 1_800), 3).unwrap());
    let mut replayed = Ledger::new();
    for t in &journal {
        replayed.replay(t).unwrap();
    }
    assert_eq!(replayed, ledger);
    assert_eq!(replayed.fund_balance_minor(cny()), 0);
    // A journal whose deposit was made smaller no longer covers the payouts: replay names it.
    let mut tampered = journal.clone();
    tampered[1] = {
        let mut scratch = Ledger::new();
        scratch.replay(&journal[0]).unwrap();
        scratch.execute(deposit(2_000), 1).unwrap()
    };
    let mut replayed = Ledger::new();
    let refused = tampered.iter().map(|t| replayed.replay(t)).find_map(Result::err);
    assert!(matches!(refused, Some(LedgerError::ReplayMismatch { id: 4, .. })), "{refused:?}");
}
