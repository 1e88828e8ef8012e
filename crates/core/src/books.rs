//! The payment records against the ledger: the ledger is the truth for money, and a record
//! that says otherwise is never acted on. The writer checks each payment it moves money
//! for; `xiezhi store check` checks them all ([`check_store`]).

use crate::error::CoreError;
use crate::model::{timestamp, Payment, PaymentStatus, MAX_TEXT_CHARS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xiezhi_ledger::{Hold, HoldStatus, Ledger, LedgerError, Operation, PlatformAccount, Transaction};
use xiezhi_store::{Batch, RecordKind, Store, StoreError};

/// Whether a payment's record says what the ledger says of its hold. `hold` is `None` when
/// the ledger has no such hold in memory: never for an authorized payment (pending holds
/// stay resident), allowed for a voided or expired one (settled holds are evicted), and for
/// a captured one only before it was restored from the journal.
pub fn agrees_with_hold(payment: &Payment, hold: Option<&Hold>) -> Result<(), String> {
    use PaymentStatus as P;
    let agrees = match (payment.status, hold) {
        (P::Declined | P::ChallengeRequired, None) => true,
        (P::Authorized, Some(h)) => h.status == HoldStatus::Pending && h.amount_minor == payment.amount_minor,
        (P::Captured | P::PartiallyRefunded | P::Refunded, Some(h)) => {
            h.status == HoldStatus::Captured
                && h.captured_minor == payment.captured_minor
                && h.refunded_minor == payment.refunded_minor
                && (payment.status == P::Refunded) == (h.refunded_minor == h.captured_minor)
                && (payment.status == P::Captured) == (h.refunded_minor == 0)
        }
        (P::Voided, h) => h.is_none_or(|h| h.status == HoldStatus::Voided),
        (P::Expired, h) => h.is_none_or(|h| h.status == HoldStatus::Expired),
        _ => false,
    };
    if agrees {
        return Ok(());
    }
    let ledger = match hold {
        Some(h) => format!(
            "the ledger's hold is {:?} with {} held, {} captured, {} refunded",
            h.status, h.amount_minor, h.captured_minor, h.refunded_minor
        ),
        None => "the ledger has no hold for it".to_owned(),
    };
    Err(format!(
        "the record says {} with {} captured and {} refunded; {ledger}",
        payment.status.as_str(),
        payment.captured_minor,
        payment.refunded_minor
    ))
}

/// [`agrees_with_hold`] as the writer's refusal: the request changes nothing.
pub(crate) fn check_agrees(payment: &Payment, hold: Option<&Hold>) -> Result<(), CoreError> {
    agrees_with_hold(payment, hold).map_err(|detail| {
        tracing::error!(payment_id = %payment.id, %detail, "a payment record disagrees with the ledger");
        metrics::counter!("xiezhi_books_disagreements_total").increment(1);
        CoreError::BooksDisagree { id: payment.id.clone(), detail }
    })
}

/// An operator's acceptance of a journal entry that replay refused: from then on the
/// service applies it as recorded ([`Ledger::replay_as_recorded`]) instead of refusing to
/// start. Stored as a `repair` record keyed `txn-{id}`, never deleted, and listed by
/// `xiezhi store check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedTransaction {
    pub transaction_id: u64,
    /// What replay said when it refused the entry.
    pub refusal: String,
    pub payments: Vec<String>,
    pub operator: String,
    pub reason: String,
    pub accepted_at: String,
}

/// A journal entry that replay refuses: the first one names where the books went wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefusedTransaction {
    pub id: u64,
    pub at: String,
    pub operation: serde_json::Value,
    pub error: String,
    pub credit_line_id: Option<String>,
    /// The payments it touched (a hold's id is its payment's).
    pub payments: Vec<String>,
}

/// The ledger the journal gives, and the first entry it refused.
pub struct Replay {
    pub ledger: Ledger,
    pub first_refused: Option<RefusedTransaction>,
    /// Every compensation payout in the journal, by appeal, for the records to be checked
    /// against (payouts are rare: one per overturned appeal).
    pub payouts: BTreeMap<String, Payout>,
}

/// A payout as the journal has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub transaction_id: u64,
    pub credit_line_id: String,
    pub amount_minor: i64,
    /// Another payout for the same appeal came before this one (paid twice).
    pub repeated: bool,
}

fn refused(ledger: &Ledger, transaction: &Transaction, error: LedgerError) -> RefusedTransaction {
    let hold_id = transaction.operation.hold_id();
    let credit_line_id = match &transaction.operation {
        Operation::OpenLine { credit_line_id, .. }
        | Operation::Authorize { credit_line_id, .. }
        | Operation::Repay { credit_line_id, .. }
        | Operation::CompensationPayout { credit_line_id, .. } => Some(credit_line_id.clone()),
        _ => hold_id.and_then(|id| ledger.hold(id)).map(|h| h.credit_line_id.clone()),
    };
    RefusedTransaction {
        id: transaction.id,
        at: timestamp(transaction.at_ms),
        operation: serde_json::to_value(&transaction.operation).expect("operations serialise"),
        error: error.to_string(),
        credit_line_id,
        payments: hold_id.map(str::to_owned).into_iter().collect(),
    }
}

pub fn accepted_transactions(store: &mut dyn Store) -> Result<BTreeMap<u64, AcceptedTransaction>, StoreError> {
    let mut accepted = BTreeMap::new();
    for record in store.records(RecordKind::Repair)? {
        let repair: AcceptedTransaction = serde_json::from_str(&record.body)
            .map_err(|e| StoreError::Corrupt(format!("repair record {}: {e}", record.id)))?;
        accepted.insert(repair.transaction_id, repair);
    }
    Ok(accepted)
}

/// Replays the stored journal: strictly, except the entries an operator accepted. The
/// first entry refused stops the replay, unless `as_recorded`, which applies it (and every
/// later one replay refuses) as recorded: how a read-only start and `store check` show the
/// books a corrupt journal gives.
pub fn replay_journal(
    store: &mut dyn Store,
    accepted: &BTreeMap<u64, AcceptedTransaction>,
    as_recorded: bool,
) -> Result<Replay, StoreError> {
    let mut ledger = Ledger::new();
    let mut first_refused = None;
    let mut payouts = BTreeMap::new();
    store.for_each_journal_entry(&mut |transaction| {
        if first_refused.is_some() && !as_recorded {
            return Ok(());
        }
        if let Operation::CompensationPayout { appeal_id, credit_line_id, amount_minor } = &transaction.operation {
            let repeated = payouts.contains_key(appeal_id);
            let payout = Payout {
                transaction_id: transaction.id,
                credit_line_id: credit_line_id.clone(),
                amount_minor: *amount_minor,
                repeated,
            };
            payouts.insert(appeal_id.clone(), payout);
        }
        let strict = if accepted.contains_key(&transaction.id) { None } else { Some(ledger.replay(&transaction)) };
        match strict {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) => {
                let entry = refused(&ledger, &transaction, error);
                first_refused.get_or_insert(entry);
                if as_recorded {
                    ledger.replay_as_recorded(&transaction).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                }
                Ok(())
            }
            None => ledger.replay_as_recorded(&transaction).map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    })?;
    Ok(Replay { ledger, first_refused, payouts })
}

/// A payment record that says otherwise than the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentDisagreement {
    pub payment_id: String,
    pub detail: String,
}

/// What `xiezhi store check` finds: the postings summed by the store, the journal replayed
/// through the ledger, and every payment record compared with the ledger's hold.
#[derive(Debug, Clone, Serialize)]
pub struct StoreCheck {
    /// Every entry balances, the trial balance is zero, and replay refuses nothing that an
    /// operator has not accepted.
    pub balanced: bool,
    /// Every payment record agrees with the ledger, and every hold has its payment (but for
    /// the payments of accepted entries, listed with them).
    pub records_agree: bool,
    pub transactions: u64,
    pub postings: u64,
    pub unbalanced_transactions: Vec<u64>,
    /// The first refusal's message (kept for scripts that read it).
    pub replay_error: Option<String>,
    pub first_refused_transaction: Option<RefusedTransaction>,
    pub accepted_transactions: Vec<AcceptedTransaction>,
    pub payments_checked: u64,
    pub payments_disagreeing: u64,
    /// The first [`MAX_LISTED_DISAGREEMENTS`].
    pub payment_disagreements: Vec<PaymentDisagreement>,
    pub credit_lines: usize,
    /// Lines an accepted entry left outside the ledger's rules: they move no money.
    pub frozen_credit_lines: Vec<String>,
    pub pending_holds: usize,
    pub platform_balances: BTreeMap<String, String>,
    /// What each currency's compensation fund can still pay, as the journal rebuilds it;
    /// never below zero on sound books.
    pub compensation_funds: BTreeMap<String, String>,
    pub compensations_checked: u64,
    /// Compensation records that say otherwise than the journal's payouts (paid without a
    /// payout, a payout with no paid record, another amount or line, paid twice).
    pub compensation_disagreements: Vec<CompensationDisagreement>,
}

/// A compensation record (or a payout) the journal and the records disagree on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompensationDisagreement {
    pub appeal_id: String,
    pub detail: String,
}

/// Most disagreements listed one by one (all are counted).
pub const MAX_LISTED_DISAGREEMENTS: usize = 100;

pub fn check_store(store: &mut dyn Store) -> Result<StoreCheck, StoreError> {
    let books = store.check_books()?;
    let accepted = accepted_transactions(store)?;
    let Replay { ledger, first_refused, payouts } = replay_journal(store, &accepted, true)?;
    // Payments an accepted entry touched disagree knowingly; the acceptance lists them.
    let known: std::collections::HashSet<&str> =
        accepted.values().flat_map(|a| a.payments.iter().map(String::as_str)).collect();
    let mut disagreements = Vec::new();
    let (mut checked, mut disagreeing) = (0u64, 0u64);
    let mut note = |payment_id: &str, detail: String| {
        if known.contains(payment_id) {
            return;
        }
        disagreeing += 1;
        if disagreements.len() < MAX_LISTED_DISAGREEMENTS {
            disagreements.push(PaymentDisagreement { payment_id: payment_id.to_owned(), detail });
        }
    };
    let mut with_record = std::collections::HashSet::new();
    store.for_each_record(RecordKind::Payment, &mut |record| {
        let payment: Payment = serde_json::from_str(&record.body)
            .map_err(|e| StoreError::Corrupt(format!("payment record {}: {e}", record.id)))?;
        checked += 1;
        if let Err(detail) = agrees_with_hold(&payment, ledger.hold(&payment.id)) {
            note(&payment.id, detail);
        }
        with_record.insert(payment.id);
        Ok(())
    })?;
    for hold in ledger.holds().filter(|h| !with_record.contains(&h.id)) {
        note(&hold.id, "the ledger holds credit for it, but there is no payment record".into());
    }
    let (credit_total, money_total) = ledger.trial_balance();
    let (compensations_checked, compensation_disagreements) = check_compensations(store, &payouts)?;
    let funds_sound = ledger.platform_currencies().into_iter().all(|c| ledger.fund_balance_minor(c) >= 0);
    Ok(StoreCheck {
        balanced: books.is_balanced()
            && credit_total == 0
            && money_total == 0
            && first_refused.is_none()
            && funds_sound,
        records_agree: disagreeing == 0 && compensation_disagreements.is_empty(),
        transactions: books.transactions,
        postings: books.postings,
        unbalanced_transactions: books.unbalanced_transactions,
        replay_error: first_refused.as_ref().map(|r| r.error.clone()),
        first_refused_transaction: first_refused,
        accepted_transactions: accepted.into_values().collect(),
        payments_checked: checked,
        payments_disagreeing: disagreeing,
        payment_disagreements: disagreements,
        credit_lines: ledger.credit_lines().count(),
        frozen_credit_lines: ledger.frozen_lines().map(str::to_owned).collect(),
        pending_holds: ledger.pending_hold_count(),
        platform_balances: platform_balances(&ledger),
        compensation_funds: ledger
            .platform_currencies()
            .into_iter()
            .map(|c| {
                (
                    c.alpha().to_owned(),
                    xiezhi_money::format_minor_wide(ledger.fund_balance_minor(c), c.minor_unit_exponent()),
                )
            })
            .collect(),
        compensations_checked,
        compensation_disagreements,
    })
}

/// Every compensation record against the journal's payouts, both ways: a paid record names
/// the payout of its appeal (same transaction, line and amount), an unpaid one has none,
/// and every payout has its paid record. At most [`MAX_LISTED_DISAGREEMENTS`] are listed.
fn check_compensations(
    store: &mut dyn Store,
    payouts: &BTreeMap<String, Payout>,
) -> Result<(u64, Vec<CompensationDisagreement>), StoreError> {
    use crate::fund::{Compensation, CompensationStatus};
    let mut checked = 0u64;
    let mut found = Vec::new();
    let mut with_record = std::collections::HashSet::new();
    store.for_each_record(RecordKind::Compensation, &mut |record| {
        let c: Compensation = serde_json::from_str(&record.body)
            .map_err(|e| StoreError::Corrupt(format!("compensation record {}: {e}", record.id)))?;
        checked += 1;
        let payout = payouts.get(&c.appeal_id);
        let detail = match (c.status, payout) {
            (_, Some(p)) if p.repeated => {
                Some(format!("paid more than once (last in transaction {})", p.transaction_id))
            }
            (CompensationStatus::Paid, Some(p))
                if Some(p.transaction_id) != c.transaction_id
                    || p.credit_line_id != c.credit_line_id
                    || p.amount_minor != c.amount_minor =>
            {
                Some(format!(
                    "the record says {} to {} in transaction {:?}; the journal pays {} to {} in transaction {}",
                    c.amount_minor,
                    c.credit_line_id,
                    c.transaction_id,
                    p.amount_minor,
                    p.credit_line_id,
                    p.transaction_id
                ))
            }
            (CompensationStatus::Paid, None) => Some("the record says paid; the journal has no payout for it".into()),
            (status, Some(p)) if status != CompensationStatus::Paid => {
                Some(format!("the journal paid it in transaction {}; the record says {status:?}", p.transaction_id))
            }
            _ => None,
        };
        if let Some(detail) = detail.filter(|_| found.len() < MAX_LISTED_DISAGREEMENTS) {
            found.push(CompensationDisagreement { appeal_id: c.appeal_id.clone(), detail });
        }
        with_record.insert(c.appeal_id);
        Ok(())
    })?;
    for (appeal_id, p) in payouts.iter().filter(|(id, _)| !with_record.contains(*id)) {
        if found.len() < MAX_LISTED_DISAGREEMENTS {
            let detail = format!("transaction {} pays it, but there is no compensation record", p.transaction_id);
            found.push(CompensationDisagreement { appeal_id: appeal_id.clone(), detail });
        }
    }
    Ok((checked, found))
}

fn platform_balances(ledger: &Ledger) -> BTreeMap<String, String> {
    let mut currencies: std::collections::BTreeSet<_> = ledger.credit_lines().map(|l| l.currency).collect();
    currencies.extend(ledger.platform_currencies());
    let mut balances = BTreeMap::new();
    for currency in currencies {
        for account in [
            PlatformAccount::MerchantSettlementPayable,
            PlatformAccount::RepaymentsReceived,
            PlatformAccount::FeeIncome,
            PlatformAccount::CompensationFund,
            PlatformAccount::PlatformOwnFunds,
        ] {
            let minor = ledger.platform_balance(currency, account);
            let text = xiezhi_money::format_minor_wide(minor, currency.minor_unit_exponent());
            balances.insert(format!("{currency}:{}", account.as_str()), text);
        }
    }
    balances
}

/// Why `accept` refuses.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the journal replays cleanly: there is nothing to accept")]
    NothingRefused,
    #[error("transaction {asked} is not the first the journal refuses; accept {first} first, after reading `xiezhi store check`")]
    NotTheFirst { asked: u64, first: u64 },
    #[error("`{field}` must be 1 to {MAX_TEXT_CHARS} printable characters")]
    Text { field: &'static str },
}

/// Accepts the first journal entry replay refuses, as recorded, with who and why: the
/// audited way to let a service whose books failed their check start again. One entry at
/// a time, and only the first, so every acceptance is a decision about one known entry.
pub fn accept_transaction(
    store: &mut dyn Store,
    transaction_id: u64,
    operator: &str,
    reason: &str,
    now_ms: i64,
) -> Result<AcceptedTransaction, RepairError> {
    for (field, text) in [("operator", operator), ("reason", reason)] {
        if text.trim().is_empty() || text.chars().count() > MAX_TEXT_CHARS || text.chars().any(char::is_control) {
            return Err(RepairError::Text { field });
        }
    }
    let accepted = accepted_transactions(store)?;
    let first = replay_journal(store, &accepted, false)?.first_refused.ok_or(RepairError::NothingRefused)?;
    if first.id != transaction_id {
        return Err(RepairError::NotTheFirst { asked: transaction_id, first: first.id });
    }
    let repair = AcceptedTransaction {
        transaction_id,
        refusal: first.error,
        payments: first.payments,
        operator: operator.to_owned(),
        reason: reason.to_owned(),
        accepted_at: timestamp(now_ms),
    };
    let record = crate::state::record(RecordKind::Repair, &format!("txn-{transaction_id}"), &repair, now_ms);
    store.commit(&Batch { transactions: vec![], records: vec![record], generation: 0 })?;
    tracing::warn!(transaction_id, operator, reason, "journal entry accepted as recorded");
    Ok(repair)
}
