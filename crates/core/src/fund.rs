//! The compensation fund: the platform deposits its own money into it
//! (`POST /v1/fund/deposits`), and it pays users whose appeal a reviewer overturned the
//! policy's fixed amount, credited to their line as credit balance. Every payout is one
//! balanced ledger transaction naming its appeal, written in the same batch as the
//! compensation record that says it is paid.
//!
//! The fund never goes below zero (the ledger refuses): a compensation it cannot cover
//! waits (`waiting_for_funds`, counted in `GET /v1/fund`) until a deposit, and waiting ones
//! are paid oldest first per currency, a younger one never ahead of an older one, by the
//! deposit itself (up to [`MAX_PAYOUTS_PER_DEPOSIT`]) and by the writer's sweep after it.
//!
//! Compensation records are held in memory like appeals (one per overturned appeal), keyed
//! in the store by their appeal: an appeal is decided once, so it is owed once.

use crate::appeals::Appeal;
use crate::error::CoreError;
use crate::model::{decimal, timestamp, Reply};
use crate::restrictions::{actor, ordered_id, page, page_limit};
use crate::state::{check_text, State};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};
use xiezhi_ledger::{LedgerError, Operation, PlatformAccount};
use xiezhi_money::{parse_minor, Currency, Sign};
use xiezhi_store::{Batch, RecordKind, StoreError};

/// Waiting compensations a deposit pays in its own batch (two items each: the payout and
/// the record); the sweep pays the rest within half a second.
pub const MAX_PAYOUTS_PER_DEPOSIT: usize = 6;
/// The most compensation records the status endpoint shows a user (the newest).
pub const MAX_STATUS_COMPENSATIONS: usize = 20;

/// Why a compensation waived no fees: the ledger posts none today (`fee_income` has no
/// operation that credits it), so the policy's waiver has nothing to act on yet.
const NO_FEES_NOTE: &str =
    "the policy waives fees charged while wrongly restricted; the ledger charges no fees yet, so there was nothing to waive";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CompensationStatus {
    /// Owed, but not payable automatically (written before the fund existed, a line in
    /// another currency than the policy's amount, or a line the ledger froze): see `note`.
    Due,
    /// The fund held less than the amount: paid, oldest first, once a deposit covers it.
    WaitingForFunds,
    /// Credited to the line (`transaction_id` is the payout).
    Paid,
}

/// A compensation as stored (and shown, with amounts and instants rendered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compensation {
    /// Empty in records written before the fund: the appeal's id stands in for it.
    #[serde(default)]
    pub id: String,
    pub appeal_id: String,
    pub user_id: String,
    pub credit_line_id: String,
    #[serde(default)]
    pub decision_id: Option<String>,
    #[serde(default)]
    pub restriction_id: Option<String>,
    #[serde(default)]
    pub amount_minor: i64,
    /// ISO 4217 alphabetic code; empty when no amount applies.
    #[serde(default)]
    pub currency: String,
    pub status: CompensationStatus,
    pub created_at_ms: i64,
    #[serde(default)]
    pub paid_at_ms: Option<i64>,
    /// The ledger transaction that paid it.
    #[serde(default)]
    pub transaction_id: Option<u64>,
    /// The policy's `waive_fees_while_wrongly_restricted` when it was owed.
    #[serde(default)]
    pub waive_fees: bool,
    #[serde(default)]
    pub note: Option<String>,
}

impl Compensation {
    fn currency(&self) -> Option<Currency> {
        Currency::from_alpha(&self.currency)
    }
}

/// A compensation as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CompensationView {
    pub id: String,
    pub appeal_id: String,
    pub restriction_id: Option<String>,
    pub decision_id: Option<String>,
    pub user_id: String,
    pub credit_line_id: String,
    #[cfg_attr(feature = "utoipa", schema(example = "50.00"))]
    pub amount: String,
    pub currency: String,
    pub status: CompensationStatus,
    pub created_at: String,
    pub paid_at: Option<String>,
    /// The ledger transaction that credited the line.
    pub transaction_id: Option<u64>,
    pub waive_fees_while_wrongly_restricted: bool,
    /// What was waived (nothing while the ledger charges no fees).
    pub fees_waived: String,
    pub note: Option<String>,
}

impl From<&Compensation> for CompensationView {
    fn from(c: &Compensation) -> CompensationView {
        let money = |minor: i64| c.currency().map_or_else(|| minor.to_string(), |cur| decimal(minor, cur));
        CompensationView {
            id: c.id.clone(),
            appeal_id: c.appeal_id.clone(),
            restriction_id: c.restriction_id.clone(),
            decision_id: c.decision_id.clone(),
            user_id: c.user_id.clone(),
            credit_line_id: c.credit_line_id.clone(),
            amount: money(c.amount_minor),
            currency: c.currency.clone(),
            status: c.status,
            created_at: timestamp(c.created_at_ms),
            paid_at: c.paid_at_ms.map(timestamp),
            transaction_id: c.transaction_id,
            waive_fees_while_wrongly_restricted: c.waive_fees,
            fees_waived: money(0),
            note: c.note.clone(),
        }
    }
}

/// `POST /v1/fund/deposits`: the platform's own money into the fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FundDepositRequest {
    /// A positive decimal in `currency`.
    #[cfg_attr(feature = "utoipa", schema(pattern = r"^[0-9]{1,13}(\.[0-9]{1,2})?$", example = "1000.00"))]
    pub amount: String,
    /// A currency the policy grants credit in.
    #[cfg_attr(feature = "utoipa", schema(example = "CNY"))]
    pub currency: String,
    /// Where the money came from (a treasury transfer's reference), kept in the journal.
    #[cfg_attr(feature = "utoipa", schema(min_length = 1, max_length = 128, example = "treasury-2026-11-30"))]
    pub reference: String,
}

/// One currency's fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FundBalanceView {
    pub currency: String,
    /// What the fund can still pay.
    pub balance: String,
    /// Everything the platform has deposited.
    pub deposited: String,
    pub paid_out: String,
    /// Compensations waiting for a deposit, and what they add up to.
    pub waiting_count: u64,
    pub waiting_amount: String,
}

/// `GET /v1/fund`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FundView {
    pub funds: Vec<FundBalanceView>,
}

/// The answer to a deposit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct FundDepositView {
    /// The ledger transaction of the deposit.
    pub transaction_id: u64,
    pub amount: String,
    pub currency: String,
    pub reference: String,
    pub deposited_at: String,
    pub deposited_by: String,
    /// The fund after the deposit and the payouts it made.
    pub fund: FundBalanceView,
    /// Waiting compensations this deposit paid, oldest first.
    pub paid: Vec<CompensationView>,
}

/// Which compensations `GET /v1/compensations` lists, oldest first from after `cursor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompensationQuery {
    pub status: Option<CompensationStatus>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// A page of compensations; `next_cursor` goes on where it stopped (absent: nothing more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CompensationPage {
    pub compensations: Vec<CompensationView>,
    pub next_cursor: Option<String>,
}

fn invalid_deposit(field: &str, message: String) -> CoreError {
    CoreError::InvalidDeposit { field: field.to_owned(), message }
}

fn document<T: Serialize>(view: T) -> Reply {
    Reply::Document(serde_json::to_value(view).expect("views serialise"))
}

impl State {
    pub(crate) fn reload_compensations(&mut self) -> Result<(), StoreError> {
        self.compensations.clear();
        self.compensations_by_user.clear();
        self.waiting_compensations.clear();
        for r in self.store.records(RecordKind::Compensation)? {
            let mut c: Compensation = serde_json::from_str(&r.body)
                .map_err(|e| StoreError::Corrupt(format!("compensation record {}: {e}", r.id)))?;
            if c.id.is_empty() {
                c.id.clone_from(&r.id);
            }
            self.remember_compensation(c);
        }
        Ok(())
    }

    /// Takes a compensation into memory and its indexes.
    fn remember_compensation(&mut self, c: Compensation) {
        match self.compensations.get(&c.id) {
            Some(previous) => {
                if let Some(currency) = previous.currency() {
                    let emptied = self.waiting_compensations.get_mut(&currency).is_some_and(|waiting| {
                        waiting.remove(&c.id);
                        waiting.is_empty()
                    });
                    if emptied {
                        self.waiting_compensations.remove(&currency);
                    }
                }
            }
            None => self.compensations_by_user.entry(c.user_id.clone()).or_default().push(c.id.clone()),
        }
        if let (CompensationStatus::WaitingForFunds, Some(currency)) = (c.status, c.currency()) {
            self.waiting_compensations.entry(currency).or_default().insert(c.id.clone());
        }
        self.compensations.insert(c.id.clone(), c);
    }

    fn save_compensation(&mut self, c: Compensation, now_ms: i64, out: &mut Batch) {
        let paid = c.status == CompensationStatus::Paid;
        assert_eq!(paid, c.transaction_id.is_some(), "compensation {}: paid iff it names its payout", c.id);
        assert_eq!(paid, c.paid_at_ms.is_some(), "compensation {}: paid iff it has a time", c.id);
        assert!(c.status == CompensationStatus::Due || c.amount_minor > 0, "compensation {} of nothing", c.id);
        let key = c.appeal_id.clone();
        self.put(out, RecordKind::Compensation, &key, &c, now_ms);
        let was_paid = self.compensations.get(&c.id).is_some_and(|b| b.status == CompensationStatus::Paid);
        self.compensation_events(was_paid, &c, now_ms, out);
        self.remember_compensation(c);
    }

    /// What an overturned appeal owes: the policy's amount, paid at once if the fund holds
    /// it (in the decision's batch), else waiting for a deposit. Writes at most two items.
    pub(crate) fn owe_compensation(&mut self, a: &Appeal, now_ms: i64, out: &mut Batch) {
        let policy = self.engine.policy().document.compensation.clone();
        let line_currency = self.ledger.credit_line(&a.credit_line_id).map(|l| l.currency);
        let mut c = Compensation {
            id: ordered_id("cp", now_ms, self.compensations.keys().next_back()),
            appeal_id: a.id.clone(),
            user_id: a.user_id.clone(),
            credit_line_id: a.credit_line_id.clone(),
            decision_id: a.decision_id.clone(),
            restriction_id: a.restriction_id.clone(),
            amount_minor: 0,
            currency: String::new(),
            status: CompensationStatus::Due,
            created_at_ms: now_ms,
            paid_at_ms: None,
            transaction_id: None,
            waive_fees: policy.waive_fees_while_wrongly_restricted,
            note: policy.waive_fees_while_wrongly_restricted.then(|| NO_FEES_NOTE.to_owned()),
        };
        match (policy.amount_minor(), line_currency) {
            (Ok((currency, minor)), Some(line)) if line == currency => {
                c.amount_minor = minor;
                c.currency = currency.alpha().to_owned();
                self.pay(&mut c, now_ms, out);
            }
            (Ok((currency, _)), line) => {
                let line = line.map_or("an unknown currency", |l| l.alpha());
                c.note = Some(format!(
                    "the policy compensates in {currency}, the line is in {line}: an operator settles it by hand"
                ));
            }
            (Err(e), _) => c.note = Some(format!("the policy's compensation amount is unusable: {e}")),
        }
        self.save_compensation(c, now_ms, out);
    }

    /// Pays `c` from the fund if it holds enough (the payout goes into the batch); else it
    /// waits for a deposit. Whether it was paid.
    fn pay(&mut self, c: &mut Compensation, now_ms: i64, out: &mut Batch) -> bool {
        let payout = Operation::CompensationPayout {
            appeal_id: c.appeal_id.clone(),
            credit_line_id: c.credit_line_id.clone(),
            amount_minor: c.amount_minor,
        };
        match self.ledger.execute(payout, now_ms) {
            Ok(transaction) => {
                c.status = CompensationStatus::Paid;
                c.paid_at_ms = Some(now_ms);
                c.transaction_id = Some(transaction.id);
                out.transactions.push(transaction);
                metrics::counter!("xiezhi_compensations_total", "event" => "paid").increment(1);
                true
            }
            Err(LedgerError::FundInsufficient { currency, requested_minor, fund_minor }) => {
                if c.status != CompensationStatus::WaitingForFunds {
                    metrics::counter!("xiezhi_compensations_total", "event" => "waiting_for_funds").increment(1);
                    tracing::warn!(appeal_id = %c.appeal_id, %currency, requested_minor, %fund_minor,
                        "compensation waits: the fund holds less than it owes");
                }
                c.status = CompensationStatus::WaitingForFunds;
                false
            }
            Err(other) => {
                tracing::error!(appeal_id = %c.appeal_id, error = %other, "compensation not payable");
                c.status = CompensationStatus::Due;
                c.note = Some(format!("not paid automatically: {other}"));
                false
            }
        }
    }

    /// Pays waiting compensations oldest first, per currency (only `only` when given), while
    /// the fund covers the oldest: a younger one never goes ahead of an older one. Looks at
    /// no more than `max`; returns the ids it paid. Each writes two items.
    pub(crate) fn pay_waiting(
        &mut self,
        only: Option<Currency>,
        max: usize,
        now_ms: i64,
        out: &mut Batch,
    ) -> Vec<String> {
        let currencies: Vec<Currency> = match only {
            Some(currency) => vec![currency],
            None => self.waiting_compensations.keys().copied().collect(),
        };
        let (mut looked_at, mut paid) = (0, Vec::new());
        for currency in currencies {
            while looked_at < max {
                let Some(id) = self.waiting_compensations.get(&currency).and_then(BTreeSet::first).cloned() else {
                    break;
                };
                let mut c = self.compensations.get(&id).expect("waiting compensations are held").clone();
                if self.ledger.fund_balance_minor(currency) < i128::from(c.amount_minor) {
                    break;
                }
                looked_at += 1;
                let was_paid = self.pay(&mut c, now_ms, out);
                let still_waiting = c.status == CompensationStatus::WaitingForFunds;
                self.save_compensation(c, now_ms, out);
                if was_paid {
                    paid.push(id);
                } else if still_waiting {
                    break;
                }
            }
        }
        paid
    }

    /// `POST /v1/fund/deposits`: refused (`422 invalid_deposit`) unless a positive amount in
    /// a currency the policy grants credit in; then pays what waits in that currency.
    pub(crate) fn deposit_fund(
        &mut self,
        caller: &crate::Caller,
        request: FundDepositRequest,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let currency = match crate::state::parse_currency(&request.currency) {
            Ok(c) if self.engine.policy().admits(c, now_ms) => c,
            _ => {
                let message = format!(
                    "`currency` must be one the policy grants credit in (such as CNY), not `{}`",
                    request.currency.chars().take(16).collect::<String>()
                );
                return Err(invalid_deposit("currency", message));
            }
        };
        let amount_minor = parse_minor(&request.amount, currency, Sign::Positive).map_err(|e| {
            invalid_deposit("amount", format!("`amount` must be a positive amount of {currency}, such as 1000.00: {e}"))
        })?;
        check_text("reference", &request.reference)?;
        let deposit = Operation::FundDeposit { currency, amount_minor, reference: request.reference.clone() };
        let transaction = self.ledger.execute(deposit, now_ms).map_err(|e| invalid_deposit("amount", e.to_string()))?;
        let transaction_id = transaction.id;
        out.transactions.push(transaction);
        let by = actor(caller);
        tracing::info!(transaction_id, %currency, amount_minor, reference = %request.reference, %by, "fund deposit");
        metrics::counter!("xiezhi_fund_deposits_total").increment(1);
        let paid = self.pay_waiting(Some(currency), MAX_PAYOUTS_PER_DEPOSIT, now_ms, out);
        let paid = paid.iter().filter_map(|id| self.compensations.get(id)).map(CompensationView::from).collect();
        Ok(document(FundDepositView {
            transaction_id,
            amount: decimal(amount_minor, currency),
            currency: currency.alpha().to_owned(),
            reference: request.reference,
            deposited_at: timestamp(now_ms),
            deposited_by: by,
            fund: self.fund_balance(currency),
            paid,
        }))
    }

    fn fund_balance(&self, currency: Currency) -> FundBalanceView {
        let wide = |minor: i128| xiezhi_money::format_minor_wide(minor, currency.minor_unit_exponent());
        let balance = self.ledger.fund_balance_minor(currency);
        let deposited = self.ledger.platform_balance(currency, PlatformAccount::PlatformOwnFunds);
        let waiting = self.waiting_compensations.get(&currency);
        let waiting_minor: i128 = waiting
            .into_iter()
            .flatten()
            .filter_map(|id| self.compensations.get(id))
            .map(|c| i128::from(c.amount_minor))
            .sum();
        FundBalanceView {
            currency: currency.alpha().to_owned(),
            balance: wide(balance),
            deposited: wide(deposited),
            paid_out: wide(deposited - balance),
            waiting_count: waiting.map_or(0, |w| w.len() as u64),
            waiting_amount: wide(waiting_minor),
        }
    }

    /// `GET /v1/fund`: the policy's currency, and every currency with a deposit or a wait.
    pub(crate) fn fund_view(&self) -> Reply {
        let mut currencies: BTreeSet<Currency> = self.waiting_compensations.keys().copied().collect();
        if let Ok((currency, _)) = self.engine.policy().document.compensation.amount_minor() {
            currencies.insert(currency);
        }
        for currency in self.ledger.platform_currencies() {
            if self.ledger.platform_balance(currency, PlatformAccount::PlatformOwnFunds) != 0 {
                currencies.insert(currency);
            }
        }
        document(FundView { funds: currencies.into_iter().map(|c| self.fund_balance(c)).collect() })
    }

    /// `GET /v1/compensations`.
    pub(crate) fn list_compensations(&self, query: &CompensationQuery) -> Result<Reply, CoreError> {
        let limit = page_limit(query.limit)?;
        let (found, next_cursor) = page(&self.compensations, query.cursor.as_deref(), limit, |c: &Compensation| {
            query.status.is_none_or(|s| s == c.status)
        });
        let compensations = found.into_iter().map(CompensationView::from).collect();
        Ok(document(CompensationPage { compensations, next_cursor }))
    }

    /// The newest compensations of a user on the lines the caller may see.
    pub(crate) fn user_compensations(&self, user_id: &str, line_ids: &[String]) -> Vec<CompensationView> {
        let lines: HashSet<&str> = line_ids.iter().map(String::as_str).collect();
        let ids = self.compensations_by_user.get(user_id).map(Vec::as_slice).unwrap_or_default();
        ids.iter()
            .rev()
            .filter_map(|id| self.compensations.get(id))
            .filter(|c| lines.contains(c.credit_line_id.as_str()))
            .take(MAX_STATUS_COMPENSATIONS)
            .map(CompensationView::from)
            .collect()
    }
}
