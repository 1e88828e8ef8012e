use crate::sharded::ShardedMap;
use crate::transaction::{Account, LineAccount, Operation, PlatformAccount, Posting, Transaction};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use xiezhi_money::{Currency, MAX_AMOUNT_MINOR};

/// The longest a hold may stay pending: 30 days, the usual authorization validity.
pub const MAX_HOLD_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("credit line `{0}` does not exist")]
    UnknownCreditLine(String),
    #[error("hold `{0}` does not exist")]
    UnknownHold(String),
    #[error("`{0}` already exists")]
    DuplicateId(String),
    #[error("amount must be greater than zero, got {0}")]
    NonPositiveAmount(i64),
    #[error("amount {0} exceeds the maximum of {MAX_AMOUNT_MINOR} minor units")]
    AmountTooLarge(i64),
    #[error("currency {got} does not match the credit line's {expected}")]
    CurrencyMismatch { expected: Currency, got: Currency },
    #[error("insufficient credit: requested {requested_minor}, available {available_minor}")]
    InsufficientCredit { requested_minor: i64, available_minor: i64 },
    #[error("hold is {status:?}, not pending")]
    HoldNotPending { status: HoldStatus },
    #[error("hold expired at {expires_at_ms}")]
    HoldExpired { expires_at_ms: i64 },
    #[error("hold has not expired yet (expires at {expires_at_ms})")]
    HoldNotExpired { expires_at_ms: i64 },
    #[error("hold expiry must be after now and within {MAX_HOLD_TTL_MS} ms")]
    InvalidExpiry,
    #[error("capture of {requested_minor} exceeds the held {held_minor}")]
    CaptureExceedsHold { requested_minor: i64, held_minor: i64 },
    #[error("refund of {requested_minor} exceeds the refundable {refundable_minor}")]
    RefundExceedsCaptured { requested_minor: i64, refundable_minor: i64 },
    #[error("repayment of {requested_minor} exceeds the outstanding {receivable_minor}")]
    RepaymentExceedsBalance { requested_minor: i64, receivable_minor: i64 },
    #[error("replayed transaction {id} does not match the journal: {detail}")]
    ReplayMismatch { id: u64, detail: String },
    #[error(
        "cannot restore a hold from a source as of transaction {as_of}: holds changed up to {horizon} were evicted"
    )]
    StaleRestore { as_of: u64, horizon: u64 },
    #[error("the journal of hold `{hold_id}` is not a valid history: {detail}")]
    HoldHistory { hold_id: String, detail: String },
    #[error("credit line `{0}` is frozen: an entry accepted as recorded left its balances outside the ledger's rules")]
    LineFrozen(String),
    #[error("the {account} balance of credit line `{credit_line_id}` would overflow")]
    BalanceOverflow { credit_line_id: String, account: &'static str },
    #[error("the {currency} compensation fund holds {fund_minor}, less than the payout of {requested_minor}")]
    FundInsufficient { currency: Currency, requested_minor: i64, fund_minor: i128 },
    #[error("a compensation payout must name its appeal")]
    PayoutWithoutAppeal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Pending,
    Captured,
    Voided,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub credit_line_id: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub expires_at_ms: i64,
    pub status: HoldStatus,
    /// Id of the last transaction that changed this hold: a hold may leave memory only once
    /// the store a later restore reads from is known to hold this transaction.
    #[serde(default)]
    pub last_transaction_id: u64,
}

/// A credit line and its balances. Balances are signed account balances (debit positive);
/// the accessors give the natural, non-negative figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditLine {
    pub id: String,
    pub user_id: String,
    pub currency: Currency,
    balances: [i64; 6],
}

impl CreditLine {
    fn balance(&self, account: LineAccount) -> i64 {
        self.balances[account as usize]
    }
    pub fn limit_minor(&self) -> i64 {
        -self.balance(LineAccount::Limit)
    }
    pub fn available_minor(&self) -> i64 {
        self.balance(LineAccount::Available)
    }
    pub fn held_minor(&self) -> i64 {
        self.balance(LineAccount::Held)
    }
    pub fn drawn_minor(&self) -> i64 {
        self.balance(LineAccount::Drawn)
    }
    pub fn receivable_minor(&self) -> i64 {
        self.balance(LineAccount::Receivable)
    }
    /// Owed to the user (refunds of spending already repaid).
    pub fn credit_balance_minor(&self) -> i64 {
        -self.balance(LineAccount::CreditBalance)
    }

    /// The per-line invariants, without asserting them (a line an entry accepted as
    /// recorded may break them).
    fn invariants_hold(&self) -> bool {
        let sum = self.balances[..4].iter().map(|b| i128::from(*b)).sum::<i128>();
        sum == 0
            && self.available_minor() >= 0
            && self.held_minor() >= 0
            && self.limit_minor() >= 0
            && self.drawn_minor() == self.receivable_minor()
            && self.receivable_minor() >= 0
            && self.credit_balance_minor() >= 0
    }

    /// The per-line invariants. Cheap enough to check after every operation.
    fn assert_invariants(&self) {
        let sum = self.balances[..4].iter().map(|b| i128::from(*b)).sum::<i128>();
        assert_eq!(sum, 0, "credit book of line {} does not balance", self.id);
        assert!(self.available_minor() >= 0, "line {} available below zero", self.id);
        assert!(self.held_minor() >= 0, "line {} held below zero", self.id);
        assert!(self.limit_minor() >= 0, "line {} limit below zero", self.id);
        assert_eq!(self.drawn_minor(), self.receivable_minor(), "line {} drawn != receivable", self.id);
        assert!(self.receivable_minor() >= 0 && self.credit_balance_minor() >= 0);
    }
}

/// The whole ledger in memory. Single-threaded by design: callers serialise operations
/// (the service does so through one writer), which is what makes "available never goes
/// below zero" hold under any number of concurrent authorizations.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ledger {
    lines: ShardedMap<CreditLine>,
    holds: ShardedMap<Hold>,
    pending_by_expiry: BTreeSet<(i64, String)>,
    /// Holds resident in memory that are no longer pending (eviction candidates).
    settled_resident: Vec<String>,
    /// The highest `last_transaction_id` of any evicted hold: a restore must read a source
    /// that holds at least the journal up to here, or it could bring back an older hold.
    eviction_horizon: u64,
    /// Lines an entry accepted as recorded left outside the per-line invariants: shown, but
    /// no operation touches them until an operator corrects them.
    frozen_lines: BTreeSet<String>,
    /// The platform's accounts sum every line's activity for ever (what merchants are owed,
    /// what users repaid), so they are kept wider than one amount and never overflow.
    platform: BTreeMap<(Currency, PlatformAccount), i128>,
    last_transaction_id: u64,
}

fn check_amount(amount_minor: i64) -> Result<(), LedgerError> {
    if amount_minor <= 0 {
        return Err(LedgerError::NonPositiveAmount(amount_minor));
    }
    if amount_minor > MAX_AMOUNT_MINOR {
        return Err(LedgerError::AmountTooLarge(amount_minor));
    }
    Ok(())
}

fn line_posting(credit_line_id: &str, account: LineAccount, amount_minor: i64) -> Posting {
    Posting { account: Account::Line { credit_line_id: credit_line_id.to_owned(), account }, amount_minor }
}

fn platform_posting(currency: Currency, account: PlatformAccount, amount_minor: i64) -> Posting {
    Posting { account: Account::Platform { currency, account }, amount_minor }
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    pub fn credit_line(&self, id: &str) -> Option<&CreditLine> {
        self.lines.get(id)
    }

    pub fn hold(&self, id: &str) -> Option<&Hold> {
        self.holds.get(id)
    }

    pub fn credit_lines(&self) -> impl Iterator<Item = &CreditLine> {
        self.lines.values()
    }

    pub fn platform_balance(&self, currency: Currency, account: PlatformAccount) -> i128 {
        self.platform.get(&(currency, account)).copied().unwrap_or(0)
    }

    pub fn last_transaction_id(&self) -> u64 {
        self.last_transaction_id
    }

    /// What the compensation fund of `currency` can still pay (the fund's account is
    /// credit-normal, so this is its balance negated). Never below zero.
    pub fn fund_balance_minor(&self, currency: Currency) -> i128 {
        -self.platform_balance(currency, PlatformAccount::CompensationFund)
    }

    /// The currencies any platform account has a posting in, in order.
    pub fn platform_currencies(&self) -> Vec<Currency> {
        let mut currencies: Vec<Currency> = self.platform.keys().map(|(c, _)| *c).collect();
        currencies.dedup();
        currencies
    }

    pub fn pending_hold_count(&self) -> usize {
        self.pending_by_expiry.len()
    }

    /// Sum of every account balance in each book; both are zero when the books balance.
    pub fn trial_balance(&self) -> (i128, i128) {
        let mut credit = 0i128;
        let mut money = 0i128;
        for line in self.lines.values() {
            credit += line.balances[..4].iter().map(|b| i128::from(*b)).sum::<i128>();
            money += i128::from(line.balance(LineAccount::Receivable))
                + i128::from(line.balance(LineAccount::CreditBalance));
        }
        money += self.platform.values().sum::<i128>();
        (credit, money)
    }

    /// Executes one operation at `now_ms`, returning the balanced transaction it posted.
    /// On error nothing changed.
    pub fn execute(&mut self, operation: Operation, now_ms: i64) -> Result<Transaction, LedgerError> {
        let (currency, postings) = self.plan(&operation, now_ms)?;
        self.check_line_balances(&postings)?;
        let transaction =
            Transaction { id: self.last_transaction_id + 1, at_ms: now_ms, currency, operation, postings };
        assert!(transaction.is_balanced(), "unbalanced transaction {transaction:?}");
        self.commit(&transaction);
        Ok(transaction)
    }

    /// Re-executes a journal transaction (on start-up) and checks it posts exactly what the
    /// journal says it posted.
    pub fn replay(&mut self, transaction: &Transaction) -> Result<(), LedgerError> {
        let mismatch = |detail: String| LedgerError::ReplayMismatch { id: transaction.id, detail };
        if transaction.id != self.last_transaction_id + 1 {
            return Err(mismatch(format!("expected id {}", self.last_transaction_id + 1)));
        }
        if !transaction.is_balanced() {
            return Err(mismatch("journal entry does not balance".into()));
        }
        let (currency, postings) =
            self.plan(&transaction.operation, transaction.at_ms).map_err(|e| mismatch(e.to_string()))?;
        self.check_line_balances(&postings).map_err(|e| mismatch(e.to_string()))?;
        if currency != transaction.currency || postings != transaction.postings {
            return Err(mismatch("postings differ".into()));
        }
        self.commit(transaction);
        Ok(())
    }

    /// Transactions that expire every pending hold whose expiry is at or before `now_ms`.
    pub fn expire_due(&mut self, now_ms: i64, max: usize) -> Vec<Transaction> {
        let due: Vec<String> = self
            .pending_by_expiry
            .iter()
            .take_while(|(expires_at_ms, _)| *expires_at_ms <= now_ms)
            .filter(|(_, id)| self.holds.get(id).is_some_and(|h| !self.frozen_lines.contains(&h.credit_line_id)))
            .take(max)
            .map(|(_, id)| id.clone())
            .collect();
        due.into_iter()
            .map(|hold_id| self.execute(Operation::Expire { hold_id }, now_ms).expect("due hold expires"))
            .collect()
    }

    /// Forgets settled holds whose last transaction is at or before `durable_through` (the
    /// last journal id the store's current read snapshot holds), so memory keeps only live
    /// authorizations and holds whose latest change a read of the store could still miss.
    /// A later refund of an evicted hold brings it back through [`Ledger::restore_hold`].
    pub fn evict_settled_holds(&mut self, durable_through: u64) -> usize {
        let mut evicted = 0;
        let mut kept = Vec::new();
        for id in std::mem::take(&mut self.settled_resident) {
            let Some(hold) = self.holds.get(&id) else { continue };
            if hold.status == HoldStatus::Pending {
                continue;
            }
            if hold.last_transaction_id > durable_through {
                kept.push(id);
                continue;
            }
            self.eviction_horizon = self.eviction_horizon.max(hold.last_transaction_id);
            self.holds.remove(&id);
            evicted += 1;
        }
        self.settled_resident = kept;
        evicted
    }

    /// Brings back an evicted hold by replaying its own journal entries (all of them, or those
    /// from its capture on: only captured holds are ever needed again), read from a store
    /// whose snapshot holds the journal up to `as_of_transaction_id`. Refused if that source
    /// could be behind a hold already evicted (it might miss the hold's latest refund), if the
    /// entries are not one hold's valid history, or if they end pending (pending holds never
    /// leave memory). The ledger then refuses exactly what replaying the journal would.
    pub fn restore_hold(
        &mut self,
        hold_id: &str,
        entries: &[Transaction],
        as_of_transaction_id: u64,
    ) -> Result<(), LedgerError> {
        if self.holds.contains_key(hold_id) {
            return Ok(());
        }
        if as_of_transaction_id < self.eviction_horizon {
            return Err(LedgerError::StaleRestore { as_of: as_of_transaction_id, horizon: self.eviction_horizon });
        }
        let hold = hold_from_journal(hold_id, entries, as_of_transaction_id)?;
        let line = self.line(&hold.credit_line_id)?;
        if line.currency != hold.currency {
            return Err(LedgerError::CurrencyMismatch { expected: line.currency, got: hold.currency });
        }
        if hold.status == HoldStatus::Pending {
            return Err(LedgerError::HoldHistory {
                hold_id: hold_id.to_owned(),
                detail: "it is still pending, and pending holds never leave memory".into(),
            });
        }
        assert!(hold.refunded_minor <= hold.captured_minor && hold.captured_minor <= hold.amount_minor);
        self.settled_resident.push(hold.id.clone());
        self.holds.insert(hold.id.clone(), hold);
        Ok(())
    }

    /// Every hold in memory (pending ones, and settled ones not evicted), in no order.
    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    /// Pending holds (always resident), in no particular order.
    pub fn pending_holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values().filter(|h| h.status == HoldStatus::Pending)
    }

    /// Validates `operation` against the current state and computes its postings.
    fn plan(&self, operation: &Operation, now_ms: i64) -> Result<(Currency, Vec<Posting>), LedgerError> {
        if let Some(line) = self.line_of(operation).filter(|line| self.frozen_lines.contains(*line)) {
            return Err(LedgerError::LineFrozen(line.to_owned()));
        }
        match operation {
            Operation::OpenLine { credit_line_id, currency, limit_minor, .. } => {
                if self.lines.contains_key(credit_line_id) {
                    return Err(LedgerError::DuplicateId(credit_line_id.clone()));
                }
                if *limit_minor < 0 {
                    return Err(LedgerError::NonPositiveAmount(*limit_minor));
                }
                if *limit_minor > MAX_AMOUNT_MINOR {
                    return Err(LedgerError::AmountTooLarge(*limit_minor));
                }
                Ok((
                    *currency,
                    vec![
                        line_posting(credit_line_id, LineAccount::Limit, -limit_minor),
                        line_posting(credit_line_id, LineAccount::Available, *limit_minor),
                    ],
                ))
            }
            Operation::Authorize { hold_id, credit_line_id, amount_minor, expires_at_ms } => {
                check_amount(*amount_minor)?;
                if self.holds.contains_key(hold_id) {
                    return Err(LedgerError::DuplicateId(hold_id.clone()));
                }
                if *expires_at_ms <= now_ms || expires_at_ms.saturating_sub(now_ms) > MAX_HOLD_TTL_MS {
                    return Err(LedgerError::InvalidExpiry);
                }
                let line = self.line(credit_line_id)?;
                if line.available_minor() < *amount_minor {
                    return Err(LedgerError::InsufficientCredit {
                        requested_minor: *amount_minor,
                        available_minor: line.available_minor(),
                    });
                }
                Ok((
                    line.currency,
                    vec![
                        line_posting(credit_line_id, LineAccount::Available, -amount_minor),
                        line_posting(credit_line_id, LineAccount::Held, *amount_minor),
                    ],
                ))
            }
            Operation::Capture { hold_id, amount_minor } => {
                check_amount(*amount_minor)?;
                let hold = self.pending_hold(hold_id)?;
                if now_ms >= hold.expires_at_ms {
                    return Err(LedgerError::HoldExpired { expires_at_ms: hold.expires_at_ms });
                }
                if *amount_minor > hold.amount_minor {
                    return Err(LedgerError::CaptureExceedsHold {
                        requested_minor: *amount_minor,
                        held_minor: hold.amount_minor,
                    });
                }
                let id = &hold.credit_line_id;
                let mut postings = vec![line_posting(id, LineAccount::Held, -hold.amount_minor)];
                if hold.amount_minor > *amount_minor {
                    postings.push(line_posting(id, LineAccount::Available, hold.amount_minor - amount_minor));
                }
                postings.push(line_posting(id, LineAccount::Drawn, *amount_minor));
                postings.push(line_posting(id, LineAccount::Receivable, *amount_minor));
                postings.push(platform_posting(
                    hold.currency,
                    PlatformAccount::MerchantSettlementPayable,
                    -amount_minor,
                ));
                Ok((hold.currency, postings))
            }
            Operation::Void { hold_id } => {
                let hold = self.pending_hold(hold_id)?;
                Ok((hold.currency, release(hold)))
            }
            Operation::Expire { hold_id } => {
                let hold = self.pending_hold(hold_id)?;
                if now_ms < hold.expires_at_ms {
                    return Err(LedgerError::HoldNotExpired { expires_at_ms: hold.expires_at_ms });
                }
                Ok((hold.currency, release(hold)))
            }
            Operation::Refund { hold_id, amount_minor } => {
                check_amount(*amount_minor)?;
                let hold = self.holds.get(hold_id).ok_or_else(|| LedgerError::UnknownHold(hold_id.clone()))?;
                if hold.status != HoldStatus::Captured {
                    return Err(LedgerError::HoldNotPending { status: hold.status });
                }
                let refundable_minor = hold.captured_minor - hold.refunded_minor;
                if *amount_minor > refundable_minor {
                    return Err(LedgerError::RefundExceedsCaptured {
                        requested_minor: *amount_minor,
                        refundable_minor,
                    });
                }
                let line = self.line(&hold.credit_line_id)?;
                // What the user still owes is reduced first; the rest of the refund is owed
                // back to the user as a credit balance.
                let against_receivable = (*amount_minor).min(line.receivable_minor());
                let to_credit_balance = amount_minor - against_receivable;
                let id = &hold.credit_line_id;
                let mut postings =
                    vec![platform_posting(hold.currency, PlatformAccount::MerchantSettlementPayable, *amount_minor)];
                if against_receivable > 0 {
                    postings.push(line_posting(id, LineAccount::Receivable, -against_receivable));
                    postings.push(line_posting(id, LineAccount::Drawn, -against_receivable));
                    postings.push(line_posting(id, LineAccount::Available, against_receivable));
                }
                if to_credit_balance > 0 {
                    postings.push(line_posting(id, LineAccount::CreditBalance, -to_credit_balance));
                }
                Ok((hold.currency, postings))
            }
            Operation::Repay { credit_line_id, amount_minor } => {
                check_amount(*amount_minor)?;
                let line = self.line(credit_line_id)?;
                if *amount_minor > line.receivable_minor() {
                    return Err(LedgerError::RepaymentExceedsBalance {
                        requested_minor: *amount_minor,
                        receivable_minor: line.receivable_minor(),
                    });
                }
                Ok((
                    line.currency,
                    vec![
                        platform_posting(line.currency, PlatformAccount::RepaymentsReceived, *amount_minor),
                        line_posting(credit_line_id, LineAccount::Receivable, -amount_minor),
                        line_posting(credit_line_id, LineAccount::Drawn, -amount_minor),
                        line_posting(credit_line_id, LineAccount::Available, *amount_minor),
                    ],
                ))
            }
            Operation::FundDeposit { currency, amount_minor, .. } => {
                check_amount(*amount_minor)?;
                Ok((
                    *currency,
                    vec![
                        platform_posting(*currency, PlatformAccount::PlatformOwnFunds, *amount_minor),
                        platform_posting(*currency, PlatformAccount::CompensationFund, -amount_minor),
                    ],
                ))
            }
            Operation::CompensationPayout { appeal_id, credit_line_id, amount_minor } => {
                self.plan_payout(appeal_id, credit_line_id, *amount_minor)
            }
        }
    }

    /// A payout moves money the fund holds to what the platform owes the user; the fund never
    /// pays more than it holds.
    fn plan_payout(
        &self,
        appeal_id: &str,
        credit_line_id: &str,
        amount_minor: i64,
    ) -> Result<(Currency, Vec<Posting>), LedgerError> {
        check_amount(amount_minor)?;
        if appeal_id.is_empty() {
            return Err(LedgerError::PayoutWithoutAppeal);
        }
        let line = self.line(credit_line_id)?;
        let fund_minor = self.fund_balance_minor(line.currency);
        if fund_minor < i128::from(amount_minor) {
            return Err(LedgerError::FundInsufficient {
                currency: line.currency,
                requested_minor: amount_minor,
                fund_minor,
            });
        }
        Ok((
            line.currency,
            vec![
                platform_posting(line.currency, PlatformAccount::CompensationFund, amount_minor),
                line_posting(credit_line_id, LineAccount::CreditBalance, -amount_minor),
            ],
        ))
    }

    /// Applies a planned, balanced transaction. Cannot fail: everything was checked in `plan`.
    fn commit(&mut self, transaction: &Transaction) {
        match &transaction.operation {
            Operation::OpenLine { .. } | Operation::Authorize { .. } => self.commit_line_or_hold(transaction),
            Operation::Capture { hold_id, amount_minor } => {
                self.settle_hold(hold_id, HoldStatus::Captured);
                self.holds.get_mut(hold_id).expect("planned").captured_minor = *amount_minor;
            }
            Operation::Void { hold_id } => self.settle_hold(hold_id, HoldStatus::Voided),
            Operation::Expire { hold_id } => self.settle_hold(hold_id, HoldStatus::Expired),
            Operation::Refund { hold_id, amount_minor } => {
                self.holds.get_mut(hold_id).expect("planned").refunded_minor += amount_minor;
            }
            Operation::Repay { .. } | Operation::FundDeposit { .. } | Operation::CompensationPayout { .. } => {}
        }
        if let Some(hold) = transaction.operation.hold_id().and_then(|id| self.holds.get_mut(id)) {
            assert!(hold.last_transaction_id < transaction.id, "hold {} changed out of journal order", hold.id);
            hold.last_transaction_id = transaction.id;
        }
        for id in self.post_balances(transaction) {
            self.lines.get(id).expect("touched lines exist").assert_invariants();
        }
        assert!(
            self.fund_balance_minor(transaction.currency) >= 0,
            "the {} compensation fund went below zero at transaction {}",
            transaction.currency,
            transaction.id
        );
        self.last_transaction_id = transaction.id;
    }

    /// What opening a line or authorizing a hold adds to memory.
    fn commit_line_or_hold(&mut self, transaction: &Transaction) {
        match &transaction.operation {
            Operation::OpenLine { credit_line_id, user_id, currency, .. } => {
                self.lines.insert(
                    credit_line_id.clone(),
                    CreditLine {
                        id: credit_line_id.clone(),
                        user_id: user_id.clone(),
                        currency: *currency,
                        balances: [0; 6],
                    },
                );
            }
            Operation::Authorize { hold_id, expires_at_ms, .. } => {
                let hold = authorized_hold(transaction).expect("an authorization");
                self.holds.insert(hold_id.clone(), hold);
                self.pending_by_expiry.insert((*expires_at_ms, hold_id.clone()));
            }
            _ => unreachable!("only lines and holds are created"),
        }
    }

    /// Adds a transaction's postings to the balances; returns the lines it touched.
    fn post_balances<'t>(&mut self, transaction: &'t Transaction) -> Vec<&'t str> {
        let mut touched_lines: Vec<&str> = Vec::with_capacity(2);
        for posting in &transaction.postings {
            match &posting.account {
                Account::Line { credit_line_id, account } => {
                    let line = self.lines.get_mut(credit_line_id).expect("posting to a known line");
                    let balance = &mut line.balances[*account as usize];
                    *balance = balance.checked_add(posting.amount_minor).expect("checked by check_line_balances");
                    if !touched_lines.contains(&credit_line_id.as_str()) {
                        touched_lines.push(credit_line_id);
                    }
                }
                Account::Platform { currency, account } => {
                    *self.platform.entry((*currency, *account)).or_insert(0) += i128::from(posting.amount_minor);
                }
            }
        }
        touched_lines
    }

    /// Applies a journal entry as it was recorded, without deciding it again: for an entry
    /// an operator accepted after [`Ledger::replay`] refused it (an audited repair), and to
    /// show, read-only, the books of a journal that failed its check. The entry must follow
    /// the journal, balance in each book and post only to lines that exist; the hold it
    /// names changes as far as its operation allows. The per-line invariants are not
    /// asserted: they may be exactly what the entry broke.
    pub fn replay_as_recorded(&mut self, transaction: &Transaction) -> Result<(), LedgerError> {
        let mismatch = |detail: String| LedgerError::ReplayMismatch { id: transaction.id, detail };
        if transaction.id != self.last_transaction_id + 1 {
            return Err(mismatch(format!("expected id {}", self.last_transaction_id + 1)));
        }
        if !transaction.is_balanced() {
            return Err(mismatch("journal entry does not balance".into()));
        }
        let opened = match &transaction.operation {
            Operation::OpenLine { credit_line_id, .. } => Some(credit_line_id.as_str()),
            _ => None,
        };
        for posting in &transaction.postings {
            check_amount(posting.amount_minor.checked_abs().unwrap_or(i64::MAX).max(1))?;
            if let Account::Line { credit_line_id, .. } = &posting.account {
                if opened != Some(credit_line_id.as_str()) && !self.lines.contains_key(credit_line_id) {
                    return Err(LedgerError::UnknownCreditLine(credit_line_id.clone()));
                }
            }
        }
        self.check_line_balances(&transaction.postings)?;
        self.change_hold_as_recorded(transaction);
        for id in self.post_balances(transaction) {
            if !self.lines.get(id).expect("touched lines exist").invariants_hold() {
                self.frozen_lines.insert(id.to_owned());
            }
        }
        self.last_transaction_id = transaction.id;
        Ok(())
    }

    /// Refuses postings that would take any line balance past what an `i64` holds (a line's
    /// credit balance, say, after years of refunds of repaid spending), so posting them
    /// never overflows. A line not opened yet starts from zero.
    fn check_line_balances(&self, postings: &[Posting]) -> Result<(), LedgerError> {
        let mut after: Vec<(&str, LineAccount, i64)> = Vec::with_capacity(postings.len());
        for posting in postings {
            let Account::Line { credit_line_id, account } = &posting.account else { continue };
            let current = match after.iter().position(|(id, a, _)| *id == credit_line_id && a == account) {
                Some(i) => after.swap_remove(i).2,
                None => self.lines.get(credit_line_id).map_or(0, |line| line.balance(*account)),
            };
            let overflow =
                || LedgerError::BalanceOverflow { credit_line_id: credit_line_id.clone(), account: account.as_str() };
            after.push((credit_line_id, *account, current.checked_add(posting.amount_minor).ok_or_else(overflow)?));
        }
        Ok(())
    }

    /// Lines frozen by an entry accepted as recorded.
    pub fn frozen_lines(&self) -> impl Iterator<Item = &str> {
        self.frozen_lines.iter().map(String::as_str)
    }

    pub fn is_frozen(&self, credit_line_id: &str) -> bool {
        self.frozen_lines.contains(credit_line_id)
    }

    /// The line an operation would change, if it already exists.
    fn line_of<'a>(&'a self, operation: &'a Operation) -> Option<&'a str> {
        match operation {
            Operation::OpenLine { .. } => None,
            Operation::Authorize { credit_line_id, .. }
            | Operation::Repay { credit_line_id, .. }
            | Operation::CompensationPayout { credit_line_id, .. } => Some(credit_line_id),
            Operation::FundDeposit { .. } => None,
            other => other.hold_id().and_then(|id| self.holds.get(id)).map(|h| h.credit_line_id.as_str()),
        }
    }

    fn change_hold_as_recorded(&mut self, transaction: &Transaction) {
        let pending = |ledger: &Ledger, id: &str| ledger.holds.get(id).is_some_and(|h| h.status == HoldStatus::Pending);
        match &transaction.operation {
            Operation::OpenLine { credit_line_id, .. } if !self.lines.contains_key(credit_line_id) => {
                self.commit_line_or_hold(transaction)
            }
            Operation::Authorize { hold_id, .. } if !self.holds.contains_key(hold_id) => {
                self.commit_line_or_hold(transaction)
            }
            Operation::Capture { hold_id, amount_minor } if pending(self, hold_id) => {
                self.settle_hold(hold_id, HoldStatus::Captured);
                self.holds.get_mut(hold_id).expect("pending").captured_minor = *amount_minor;
            }
            Operation::Void { hold_id } if pending(self, hold_id) => self.settle_hold(hold_id, HoldStatus::Voided),
            Operation::Expire { hold_id } if pending(self, hold_id) => self.settle_hold(hold_id, HoldStatus::Expired),
            Operation::Refund { hold_id, amount_minor } => {
                if let Some(hold) = self.holds.get_mut(hold_id) {
                    hold.refunded_minor += amount_minor;
                }
            }
            _ => {}
        }
        if let Some(hold) = transaction.operation.hold_id().and_then(|id| self.holds.get_mut(id)) {
            hold.last_transaction_id = transaction.id;
        }
    }

    fn settle_hold(&mut self, hold_id: &str, status: HoldStatus) {
        let hold = self.holds.get_mut(hold_id).expect("planned");
        assert_eq!(hold.status, HoldStatus::Pending);
        hold.status = status;
        let removed = self.pending_by_expiry.remove(&(hold.expires_at_ms, hold_id.to_owned()));
        assert!(removed, "pending hold {hold_id} missing from the expiry index");
        self.settled_resident.push(hold_id.to_owned());
    }

    fn line(&self, id: &str) -> Result<&CreditLine, LedgerError> {
        self.lines.get(id).ok_or_else(|| LedgerError::UnknownCreditLine(id.to_owned()))
    }

    fn pending_hold(&self, id: &str) -> Result<&Hold, LedgerError> {
        let hold = self.holds.get(id).ok_or_else(|| LedgerError::UnknownHold(id.to_owned()))?;
        if hold.status != HoldStatus::Pending {
            return Err(LedgerError::HoldNotPending { status: hold.status });
        }
        Ok(hold)
    }
}

/// The pending hold an authorization creates (before its id is set as its last transaction).
fn authorized_hold(transaction: &Transaction) -> Option<Hold> {
    let Operation::Authorize { hold_id, credit_line_id, amount_minor, expires_at_ms } = &transaction.operation else {
        return None;
    };
    Some(Hold {
        id: hold_id.clone(),
        credit_line_id: credit_line_id.clone(),
        currency: transaction.currency,
        amount_minor: *amount_minor,
        captured_minor: 0,
        refunded_minor: 0,
        expires_at_ms: *expires_at_ms,
        status: HoldStatus::Pending,
        last_transaction_id: 0,
    })
}

/// The line and amount a capture released from its hold, read from its postings.
fn held_by(capture: &Transaction) -> Option<(String, i64)> {
    capture.postings.iter().find_map(|p| match &p.account {
        Account::Line { credit_line_id, account: LineAccount::Held } if p.amount_minor < 0 => {
            Some((credit_line_id.clone(), -p.amount_minor))
        }
        _ => None,
    })
}

/// One hold as its journal entries leave it (from its authorization, or from its capture),
/// checking each step as the ledger would have.
fn hold_from_journal(hold_id: &str, entries: &[Transaction], as_of: u64) -> Result<Hold, LedgerError> {
    let bad = |detail: String| LedgerError::HoldHistory { hold_id: hold_id.to_owned(), detail };
    let mut hold: Option<Hold> = None;
    let mut last_id = 0;
    for transaction in entries {
        if transaction.id <= last_id || transaction.id > as_of {
            return Err(bad(format!("entry {} is out of order or after {as_of}", transaction.id)));
        }
        last_id = transaction.id;
        if transaction.operation.hold_id() != Some(hold_id) {
            return Err(bad(format!("entry {} belongs to another hold", transaction.id)));
        }
        let step_ok = match (&transaction.operation, hold.as_mut()) {
            (Operation::Authorize { .. }, None) => {
                hold = authorized_hold(transaction);
                true
            }
            // A history may start at the capture: the hold's line and amount are in the
            // capture's own postings (it releases the whole hold).
            (Operation::Capture { amount_minor, .. }, None) => match held_by(transaction) {
                Some((credit_line_id, held_minor)) => {
                    hold = Some(Hold {
                        id: hold_id.to_owned(),
                        credit_line_id,
                        currency: transaction.currency,
                        amount_minor: held_minor,
                        captured_minor: *amount_minor,
                        refunded_minor: 0,
                        expires_at_ms: transaction.at_ms,
                        status: HoldStatus::Captured,
                        last_transaction_id: 0,
                    });
                    *amount_minor <= held_minor
                }
                None => false,
            },
            (Operation::Capture { amount_minor, .. }, Some(h)) if h.status == HoldStatus::Pending => {
                h.status = HoldStatus::Captured;
                h.captured_minor = *amount_minor;
                *amount_minor <= h.amount_minor
            }
            (Operation::Void { .. }, Some(h)) if h.status == HoldStatus::Pending => {
                h.status = HoldStatus::Voided;
                true
            }
            (Operation::Expire { .. }, Some(h)) if h.status == HoldStatus::Pending => {
                h.status = HoldStatus::Expired;
                true
            }
            (Operation::Refund { amount_minor, .. }, Some(h)) if h.status == HoldStatus::Captured => {
                h.refunded_minor += amount_minor;
                h.refunded_minor <= h.captured_minor
            }
            _ => false,
        };
        if !step_ok {
            return Err(bad(format!(
                "entry {} ({:?}) does not follow from the entries before it",
                transaction.id, transaction.operation
            )));
        }
        if let Some(h) = hold.as_mut() {
            h.last_transaction_id = transaction.id;
        }
    }
    hold.ok_or_else(|| LedgerError::UnknownHold(hold_id.to_owned()))
}

fn release(hold: &Hold) -> Vec<Posting> {
    vec![
        line_posting(&hold.credit_line_id, LineAccount::Held, -hold.amount_minor),
        line_posting(&hold.credit_line_id, LineAccount::Available, hold.amount_minor),
    ]
}
