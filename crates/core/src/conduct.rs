//! The conduct report (`xiezhi report conduct`, `GET /v1/reports/conduct`): how the
//! platform treated the people it stopped, over a period of whole UTC days, for the operator
//! and its regulator. Restrictions by reason code and scope, how long they took to lift and
//! how they lifted, their challenges passed and failed, appeals received and decided (and
//! whether within their deadline), compensation paid and waiting, and decisions labelled
//! false positives.
//!
//! One pure computation ([`ConductReport::compute`]) over the stored records
//! ([`ConductRecords`]), gathered either from a data directory's store, offline
//! ([`ConductRecords::read`]), or from a running service through its read commands
//! ([`Service::conduct_records`]): the two give the same figures for the same records.
//!
//! **Cohorts.** Every figure counts what *began* in the period, as it stands at the report's
//! `as_of` instant: restrictions imposed in it (with their lifting challenge, their lift and
//! its time, whenever those came), appeals filed in it (with their outcome, escalation and
//! deadline, whenever those came), and the compensation and false-positive labels of those
//! appeals. So the figures of a period only grow more final when it is reported again
//! later, and no event is counted in two periods.

use crate::appeals::{Appeal, AppealPage, AppealView, DecisionLabel};
use crate::error::CoreError;
use crate::fund::{Compensation, CompensationPage, CompensationStatus, CompensationView};
use crate::model::*;
use crate::restrictions::{RestrictionPage, RestrictionRecordView};
use crate::{Caller, Command, Service};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use xiezhi_money::Currency;
use xiezhi_store::{RecordKind, Store, StoreError};

/// The longest period one report covers, in days.
pub const MAX_REPORT_DAYS: i64 = 366;
const DAY_MS: i64 = 86_400_000;
/// Reads a running service answers at once while gathering challenges and labels.
const READS_IN_FLIGHT: usize = 256;

/// A period of whole days, UTC: `from` 00:00 to the end of `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportPeriod {
    pub from: jiff::civil::Date,
    pub to: jiff::civil::Date,
    start_ms: i64,
    end_ms: i64,
}

fn shown(text: &str) -> String {
    text.chars().take(32).collect()
}

fn midnight_ms(date: jiff::civil::Date) -> Option<i64> {
    date.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp().as_millisecond())
}

impl ReportPeriod {
    /// `from` and `to` as ISO dates (`2026-11-30`), both included; refused (`400
    /// invalid_request` naming the field) when malformed, `to` before `from`, or longer than
    /// [`MAX_REPORT_DAYS`].
    pub fn parse(from: &str, to: &str) -> Result<ReportPeriod, CoreError> {
        let date = |field: &str, text: &str| {
            let bad = || CoreError::InvalidRequest {
                field: field.to_owned(),
                message: format!("`{field}` must be an ISO date (UTC) such as 2026-11-30, not `{}`", shown(text)),
            };
            let shape = text.len() == 10
                && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
            if !shape {
                return Err(bad());
            }
            let date: jiff::civil::Date = text.parse().map_err(|_| bad())?;
            midnight_ms(date).map(|ms| (date, ms)).ok_or_else(bad)
        };
        let (from, start_ms) = date("from", from)?;
        let (to, to_ms) = date("to", to)?;
        if to < from {
            return Err(CoreError::InvalidRequest {
                field: "to".into(),
                message: format!("`to` ({to}) is before `from` ({from})"),
            });
        }
        let end_ms = to_ms + DAY_MS;
        if (end_ms - start_ms) / DAY_MS > MAX_REPORT_DAYS {
            return Err(CoreError::InvalidRequest {
                field: "to".into(),
                message: format!("a report covers at most {MAX_REPORT_DAYS} days; {from} to {to} is longer"),
            });
        }
        Ok(ReportPeriod { from, to, start_ms, end_ms })
    }

    /// Whether an instant falls within the period.
    pub fn contains(&self, ms: i64) -> bool {
        (self.start_ms..self.end_ms).contains(&ms)
    }
}

/// What the report is computed from: the stored records, as stored.
#[derive(Debug, Clone, Default)]
pub struct ConductRecords {
    pub restrictions: Vec<Restriction>,
    pub appeals: Vec<Appeal>,
    pub compensations: Vec<Compensation>,
    /// The status of each lifting challenge of the restrictions imposed in the period, by id.
    pub challenges: HashMap<String, ChallengeStatus>,
    pub labels: Vec<DecisionLabel>,
}

/// `GET /v1/reports/conduct` and `xiezhi report conduct --json`: the keys are stable (README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ConductReport {
    /// The period's first day (UTC).
    pub from: String,
    /// The period's last day (UTC), included.
    pub to: String,
    /// The instant the figures stand at: the service clock, or the wall clock offline.
    pub as_of: String,
    pub restrictions: RestrictionFigures,
    /// The lifting challenges of the restrictions imposed in the period.
    pub challenges: ChallengeFigures,
    pub appeals: AppealFigures,
    /// Owed for the appeals filed in the period that were overturned.
    pub compensation: CompensationFigures,
    /// Decisions a reviewer labelled `false_positive`, on appeals filed in the period.
    pub decisions_labelled_false_positive: u64,
}

/// Restrictions imposed in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RestrictionFigures {
    pub imposed: u64,
    /// Not lifted and not at their end at `as_of`.
    pub in_force: u64,
    pub by_scope: ScopeCounts,
    /// One row per reason code and scope (a restriction with two codes counts under each).
    pub by_reason_code: Vec<ReasonCount>,
    /// From imposed to lifted, by how they lifted (those lifted by `as_of`).
    pub time_to_lift: LiftTimes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ScopeCounts {
    pub payment: u64,
    pub scan_to_pay: u64,
    pub credit_line: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ReasonCount {
    pub reason_code: String,
    pub scope: RestrictionScope,
    pub count: u64,
}

/// Times to lift, per way of lifting, and for all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LiftTimes {
    pub all: LiftFigure,
    /// It reached its end.
    pub expiry: LiftFigure,
    /// Its challenge was passed.
    pub challenge: LiftFigure,
    /// An appeal was overturned.
    pub appeal: LiftFigure,
    /// Its appeal passed its deadline undecided and the policy lifts then.
    pub escalation: LiftFigure,
    /// An operator lifted it, with a reason.
    pub operator: LiftFigure,
    /// A newer restriction on the line replaced it.
    pub superseded: LiftFigure,
    /// Lifted before records said why.
    pub unrecorded: LiftFigure,
}

/// How many, and the median and 95th percentile of their times (nearest rank: the smallest
/// time at least half, or 95 %, of them took no longer than), in whole seconds; `null` when
/// there are none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LiftFigure {
    pub count: u64,
    pub median_seconds: Option<i64>,
    pub p95_seconds: Option<i64>,
}

/// The lifting challenges of the restrictions imposed in the period, by their status now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ChallengeFigures {
    pub offered: u64,
    pub passed: u64,
    /// Too many wrong codes.
    pub failed: u64,
    /// Not answered in time.
    pub expired: u64,
    pub pending: u64,
}

/// Appeals filed in the period, as they stand at `as_of`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct AppealFigures {
    pub received: u64,
    pub overturned: u64,
    pub upheld: u64,
    /// Not decided yet (escalated or not).
    pub undecided: u64,
    /// Passed their deadline undecided (decided since or not).
    pub escalated: u64,
    pub decided_within_deadline: u64,
    pub decided_late: u64,
    pub undecided_past_deadline: u64,
    /// `decided_within_deadline` over the appeals whose deadline has passed or that were
    /// decided (within, late, or undecided past it), to four places; `null` when none.
    pub within_deadline_share: Option<f64>,
}

/// Compensation owed for the overturned appeals filed in the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CompensationFigures {
    pub owed: u64,
    pub paid: MoneyFigure,
    pub waiting_for_funds: MoneyFigure,
    /// Owed but not payable automatically (an operator settles them).
    pub due: MoneyFigure,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct MoneyFigure {
    pub count: u64,
    /// Per currency, in the currency's major unit.
    pub amounts: Vec<CurrencyAmount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CurrencyAmount {
    pub currency: String,
    #[cfg_attr(feature = "utoipa", schema(example = "50.00"))]
    pub amount: String,
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], pct: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

fn lift_figure(mut times_ms: Vec<i64>) -> LiftFigure {
    times_ms.sort_unstable();
    let seconds: Vec<i64> = times_ms.iter().map(|ms| ms / 1_000).collect();
    LiftFigure {
        count: seconds.len() as u64,
        median_seconds: percentile(&seconds, 50),
        p95_seconds: percentile(&seconds, 95),
    }
}

/// Sums per currency, as a figure.
#[derive(Default)]
struct MoneyTally {
    count: u64,
    minor: BTreeMap<String, i128>,
}

impl MoneyTally {
    fn add(&mut self, c: &Compensation) {
        self.count += 1;
        if Currency::from_alpha(&c.currency).is_some() {
            *self.minor.entry(c.currency.clone()).or_default() += i128::from(c.amount_minor);
        }
    }

    fn figure(self) -> MoneyFigure {
        let amounts = self
            .minor
            .into_iter()
            .filter_map(|(alpha, minor)| {
                let currency = Currency::from_alpha(&alpha)?;
                let amount = xiezhi_money::format_minor_wide(minor, currency.minor_unit_exponent());
                Some(CurrencyAmount { currency: alpha, amount })
            })
            .collect();
        MoneyFigure { count: self.count, amounts }
    }
}

/// When a restriction lifted and why, as the records say: its `lifted` event (an expiry's is
/// at its end); one that reached its end before the sweep wrote the lift lifted then.
fn lift_of(r: &Restriction, as_of_ms: i64) -> Option<(i64, Option<LiftCause>)> {
    if r.lifted_at_ms.is_some() {
        let event = r.history.iter().rev().find(|e| e.kind == RestrictionEventKind::Lifted);
        let at = event.map_or(r.lifted_at_ms.unwrap_or(r.until_ms), |e| e.at_ms);
        return Some((at, event.and_then(|e| e.cause)));
    }
    (r.until_ms <= as_of_ms).then_some((r.until_ms, Some(LiftCause::Expired)))
}

fn scope_name(scope: RestrictionScope) -> &'static str {
    match scope {
        RestrictionScope::Payment => "payment",
        RestrictionScope::ScanToPay => "scan_to_pay",
        RestrictionScope::CreditLine => "credit_line",
    }
}

impl ConductReport {
    /// The report over `records` for `period`, as things stand at `as_of_ms`.
    pub fn compute(records: &ConductRecords, period: &ReportPeriod, as_of_ms: i64) -> ConductReport {
        // Restrictions imposed in the period.
        let mut imposed = 0;
        let mut in_force = 0;
        let mut by_scope = ScopeCounts::default();
        let mut by_reason: BTreeMap<(String, &'static str), (RestrictionScope, u64)> = BTreeMap::new();
        let mut times: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
        let mut challenges = ChallengeFigures::default();
        for r in records.restrictions.iter().filter(|r| period.contains(r.created_at_ms)) {
            imposed += 1;
            match r.scope {
                RestrictionScope::Payment => by_scope.payment += 1,
                RestrictionScope::ScanToPay => by_scope.scan_to_pay += 1,
                RestrictionScope::CreditLine => by_scope.credit_line += 1,
            }
            let codes: Vec<String> = if r.reason_codes.is_empty() {
                vec![if r.reason_code.is_empty() { "unrecorded".to_owned() } else { r.reason_code.clone() }]
            } else {
                r.reason_codes.clone()
            };
            for code in codes.into_iter().collect::<std::collections::BTreeSet<_>>() {
                by_reason.entry((code, scope_name(r.scope))).or_insert((r.scope, 0)).1 += 1;
            }
            match lift_of(r, as_of_ms) {
                None => in_force += 1,
                Some((at_ms, cause)) => {
                    let kind = match cause {
                        Some(LiftCause::Expired) => "expiry",
                        Some(LiftCause::ChallengePassed) => "challenge",
                        Some(LiftCause::AppealOverturned) => "appeal",
                        Some(LiftCause::AppealEscalated) => "escalation",
                        Some(LiftCause::Operator) => "operator",
                        Some(LiftCause::Superseded) => "superseded",
                        Some(LiftCause::ProfileCompleted) => "profile",
                        None => "unrecorded",
                    };
                    let took = (at_ms - r.created_at_ms).max(0);
                    times.entry(kind).or_default().push(took);
                    times.entry("all").or_default().push(took);
                }
            }
            let status = r.challenge_id.as_ref().and_then(|id| records.challenges.get(id));
            if let Some(status) = status {
                challenges.offered += 1;
                match status {
                    ChallengeStatus::Passed => challenges.passed += 1,
                    ChallengeStatus::Failed => challenges.failed += 1,
                    ChallengeStatus::Expired => challenges.expired += 1,
                    ChallengeStatus::Pending => challenges.pending += 1,
                }
            }
        }
        let mut take = |kind: &str| lift_figure(times.remove(kind).unwrap_or_default());
        let time_to_lift = LiftTimes {
            all: take("all"),
            expiry: take("expiry"),
            challenge: take("challenge"),
            appeal: take("appeal"),
            escalation: take("escalation"),
            operator: take("operator"),
            superseded: take("superseded"),
            unrecorded: take("unrecorded"),
        };
        let by_reason_code = by_reason
            .into_iter()
            .map(|((reason_code, _), (scope, count))| ReasonCount { reason_code, scope, count })
            .collect();

        // Appeals filed in the period.
        let mut appeals = AppealFigures::default();
        let mut cohort: HashSet<&str> = HashSet::new();
        let mut filed_at: HashMap<&str, i64> = HashMap::new();
        for a in &records.appeals {
            filed_at.insert(a.id.as_str(), a.filed_at_ms);
            if !period.contains(a.filed_at_ms) {
                continue;
            }
            cohort.insert(a.id.as_str());
            appeals.received += 1;
            match a.outcome {
                Some(AppealOutcome::Overturn) => appeals.overturned += 1,
                Some(AppealOutcome::Uphold) => appeals.upheld += 1,
                None => appeals.undecided += 1,
            }
            if a.escalated_at_ms.is_some() {
                appeals.escalated += 1;
            }
            match (a.outcome, a.decided_at_ms) {
                (Some(_), Some(at)) if at <= a.deadline_ms => appeals.decided_within_deadline += 1,
                (Some(_), _) => appeals.decided_late += 1,
                (None, _) if a.deadline_ms <= as_of_ms || a.escalated_at_ms.is_some() => {
                    appeals.undecided_past_deadline += 1
                }
                (None, _) => {}
            }
        }
        let judged = appeals.decided_within_deadline + appeals.decided_late + appeals.undecided_past_deadline;
        appeals.within_deadline_share = (judged > 0)
            .then(|| (appeals.decided_within_deadline as f64 / judged as f64 * 10_000.0).round() / 10_000.0);
        // An appeal's compensation and label belong to its period; without the appeal at
        // hand, to the period they were written in.
        let in_cohort = |appeal_id: &str, written_ms: i64| match filed_at.get(appeal_id) {
            Some(_) => cohort.contains(appeal_id),
            None => period.contains(written_ms),
        };

        let (mut owed, mut paid, mut waiting, mut due) =
            (0, MoneyTally::default(), MoneyTally::default(), MoneyTally::default());
        for c in records.compensations.iter().filter(|c| in_cohort(&c.appeal_id, c.created_at_ms)) {
            owed += 1;
            match c.status {
                CompensationStatus::Paid => paid.add(c),
                CompensationStatus::WaitingForFunds => waiting.add(c),
                CompensationStatus::Due => due.add(c),
            }
        }
        let compensation =
            CompensationFigures { owed, paid: paid.figure(), waiting_for_funds: waiting.figure(), due: due.figure() };
        let labelled: HashSet<&str> = records
            .labels
            .iter()
            .filter(|l| l.label == "false_positive")
            .filter(|l| in_cohort(&l.appeal_id, parse_ms(&l.at).unwrap_or(i64::MIN)))
            .map(|l| l.payment_id.as_str())
            .collect();

        ConductReport {
            from: period.from.to_string(),
            to: period.to.to_string(),
            as_of: timestamp(as_of_ms),
            restrictions: RestrictionFigures { imposed, in_force, by_scope, by_reason_code, time_to_lift },
            challenges,
            appeals,
            compensation,
            decisions_labelled_false_positive: labelled.len() as u64,
        }
    }

    /// The report as Markdown tables, for a person (and a regulator's filing).
    pub fn markdown(&self) -> String {
        let mut out = format!("# Conduct report, {} to {} (UTC)\n\nAs of {}.\n\n", self.from, self.to, self.as_of);
        let r = &self.restrictions;
        out.push_str(&format!(
            "## Restrictions\n\n{} imposed ({} still in force): {} scan to pay, {} payment, {} credit line.\n\n",
            r.imposed, r.in_force, r.by_scope.scan_to_pay, r.by_scope.payment, r.by_scope.credit_line
        ));
        out.push_str("| Reason code | Scope | Restrictions |\n|---|---|---:|\n");
        for row in &r.by_reason_code {
            out.push_str(&format!("| {} | {} | {} |\n", row.reason_code, scope_name(row.scope), row.count));
        }
        out.push_str("\n| Lifted by | Count | Median time to lift | p95 time to lift |\n|---|---:|---:|---:|\n");
        let t = &r.time_to_lift;
        let rows = [
            ("expiry", &t.expiry),
            ("challenge", &t.challenge),
            ("appeal", &t.appeal),
            ("escalation", &t.escalation),
            ("operator", &t.operator),
            ("superseded", &t.superseded),
            ("unrecorded", &t.unrecorded),
            ("all", &t.all),
        ];
        for (name, f) in rows {
            out.push_str(&format!(
                "| {name} | {} | {} | {} |\n",
                f.count,
                duration(f.median_seconds),
                duration(f.p95_seconds)
            ));
        }
        let c = &self.challenges;
        out.push_str(&format!(
            "\n## Challenges to lift a restriction\n\n| Offered | Passed | Failed | Expired | Pending |\n|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} |\n",
            c.offered, c.passed, c.failed, c.expired, c.pending
        ));
        let a = &self.appeals;
        let share = a.within_deadline_share.map_or("-".to_owned(), |s| format!("{:.1} %", s * 100.0));
        out.push_str(&format!(
            "\n## Appeals\n\n| Received | Overturned | Upheld | Undecided | Escalated |\n|---:|---:|---:|---:|---:|\n| {} | {} | {} | {} | {} |\n\n\
             | Decided within deadline | Decided late | Undecided past deadline | Within deadline |\n|---:|---:|---:|---:|\n| {} | {} | {} | {} |\n",
            a.received, a.overturned, a.upheld, a.undecided, a.escalated,
            a.decided_within_deadline, a.decided_late, a.undecided_past_deadline, share
        ));
        let m = &self.compensation;
        let money = |f: &MoneyFigure| {
            let amounts: Vec<String> = f.amounts.iter().map(|x| format!("{} {}", x.amount, x.currency)).collect();
            if amounts.is_empty() {
                "-".to_owned()
            } else {
                amounts.join(", ")
            }
        };
        out.push_str(&format!(
            "\n## Compensation\n\n{} owed.\n\n| Status | Count | Amount |\n|---|---:|---:|\n| paid | {} | {} |\n| waiting for funds | {} | {} |\n| due (settled by hand) | {} | {} |\n",
            m.owed, m.paid.count, money(&m.paid), m.waiting_for_funds.count, money(&m.waiting_for_funds),
            m.due.count, money(&m.due)
        ));
        out.push_str(&format!(
            "\n## False positives\n\n{} decisions labelled false positive.\n",
            self.decisions_labelled_false_positive
        ));
        out
    }
}

/// Seconds as `1 d 2 h`, `3 h 4 min`, `5 min 6 s` or `7 s`; `-` for none.
fn duration(seconds: Option<i64>) -> String {
    let Some(s) = seconds else { return "-".into() };
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec} s"),
        (0, 0, _) => format!("{m} min {sec} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// An instant as [`timestamp`] wrote it (RFC 3339, or milliseconds when out of range).
fn parse_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).ok().or_else(|| text.parse().ok())
}

fn corrupt(kind: &str, id: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("{kind} record {id}: {what}"))
}

impl ConductRecords {
    /// Reads what the report needs from a store (a data directory, offline): every
    /// restriction, appeal, compensation and decision label, and the lifting challenges of
    /// the restrictions imposed in `period`. Reads only.
    pub fn read(store: &mut dyn Store, period: &ReportPeriod) -> Result<ConductRecords, StoreError> {
        fn parse<T: serde::de::DeserializeOwned>(r: &xiezhi_store::Record) -> Result<T, StoreError> {
            serde_json::from_str(&r.body).map_err(|e| corrupt(r.kind.as_str(), &r.id, &e.to_string()))
        }
        let mut records = ConductRecords::default();
        for r in store.records(RecordKind::Restriction)? {
            let mut restriction: Restriction = parse(&r)?;
            restriction.upgrade(&r.id, None);
            records.restrictions.push(restriction);
        }
        for r in store.records(RecordKind::Appeal)? {
            records.appeals.push(parse(&r)?);
        }
        for r in store.records(RecordKind::Compensation)? {
            let mut c: Compensation = parse(&r)?;
            if c.id.is_empty() {
                c.id.clone_from(&r.id);
            }
            records.compensations.push(c);
        }
        for r in store.records(RecordKind::DecisionLabel)? {
            records.labels.push(parse(&r)?);
        }
        let wanted: Vec<String> = records
            .restrictions
            .iter()
            .filter(|r| period.contains(r.created_at_ms))
            .filter_map(|r| r.challenge_id.clone())
            .collect();
        for id in wanted {
            if let Some(r) = store.record(RecordKind::Challenge, &id)? {
                let c: Challenge = parse(&r)?;
                records.challenges.insert(id, c.status);
            }
        }
        store.end_reads()?;
        Ok(records)
    }
}

fn unreadable(what: &str) -> CoreError {
    CoreError::StorageUnavailable { message: format!("the service answered an unreadable {what}") }
}

fn ms_of(text: &str, what: &str) -> Result<i64, CoreError> {
    parse_ms(text).ok_or_else(|| unreadable(what))
}

fn document<T: serde::de::DeserializeOwned>(reply: Reply, what: &str) -> Result<T, CoreError> {
    match reply {
        Reply::Document(value) => serde_json::from_value(value).map_err(|_| unreadable(what)),
        _ => Err(unreadable(what)),
    }
}

fn restriction_of(v: RestrictionRecordView) -> Result<Restriction, CoreError> {
    let what = "restriction";
    let history = v
        .history
        .into_iter()
        .map(|e| -> Result<RestrictionEvent, CoreError> {
            Ok(RestrictionEvent {
                kind: e.kind,
                at_ms: ms_of(&e.at, what)?,
                cause: e.cause,
                by: e.by,
                reason: e.reason,
                appeal_id: e.appeal_id,
                outcome: e.outcome,
            })
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    // The view shows an unswept expiry as lifted at its end; the record knows only lifts.
    let lifted_at_ms = history.iter().rev().find(|e| e.kind == RestrictionEventKind::Lifted).map(|e| e.at_ms);
    Ok(Restriction {
        reason_code: v.reason_codes.first().cloned().unwrap_or_default(),
        created_at_ms: ms_of(&v.imposed_at, what)?,
        until_ms: ms_of(&v.expires_at, what)?,
        appeal_deadline_ms: ms_of(&v.appeal_deadline, what)?,
        lifted_at_ms,
        id: v.id,
        credit_line_id: v.credit_line_id,
        user_id: v.user_id,
        scope: v.scope,
        reason_codes: v.reason_codes,
        explanation: v.explanation,
        payment_id: v.payment_id,
        challenge_id: v.challenge_id,
        imposed_by: v.imposed_by,
        history,
    })
}

fn appeal_of(v: AppealView) -> Result<Appeal, CoreError> {
    let what = "appeal";
    let optional = |t: &Option<String>| t.as_deref().map(|t| ms_of(t, what)).transpose();
    Ok(Appeal {
        filed_at_ms: ms_of(&v.filed_at, what)?,
        deadline_ms: ms_of(&v.deadline, what)?,
        claimed_at_ms: optional(&v.claimed_at)?,
        escalated_at_ms: optional(&v.escalated_at)?,
        decided_at_ms: optional(&v.decided_at)?,
        id: v.id,
        credit_line_id: v.credit_line_id,
        user_id: v.user_id,
        decision_id: v.decision_id,
        restriction_id: v.restriction_id,
        message: v.message,
        status: v.status,
        filed_by: v.filed_by,
        claimed_by: v.claimed_by,
        outcome: v.outcome,
        note: v.note,
        decided_by: v.decided_by,
        lifted_restriction: v.lifted_restriction,
        compensation_due: v.compensation_due,
    })
}

fn compensation_of(v: CompensationView) -> Result<Compensation, CoreError> {
    let what = "compensation";
    let amount_minor = match Currency::from_alpha(&v.currency) {
        Some(currency) => xiezhi_money::parse_minor(&v.amount, currency, xiezhi_money::Sign::Any),
        None => v.amount.parse().map_err(|_| xiezhi_money::MoneyError::Empty),
    }
    .map_err(|_| unreadable(what))?;
    Ok(Compensation {
        created_at_ms: ms_of(&v.created_at, what)?,
        paid_at_ms: v.paid_at.as_deref().map(|t| ms_of(t, what)).transpose()?,
        id: v.id,
        appeal_id: v.appeal_id,
        user_id: v.user_id,
        credit_line_id: v.credit_line_id,
        decision_id: v.decision_id,
        restriction_id: v.restriction_id,
        amount_minor,
        currency: v.currency,
        status: v.status,
        transaction_id: v.transaction_id,
        waive_fees: v.waive_fees_while_wrongly_restricted,
        note: v.note,
    })
}

impl Service {
    /// Gathers what the report needs from the running service, through its read commands
    /// (run for the process itself: the route's own scope was checked): every restriction,
    /// appeal and compensation a page at a time, the lifting challenges of the restrictions
    /// imposed in `period`, and the labels of the decisions its overturned appeals name.
    pub async fn conduct_records(&self, period: &ReportPeriod) -> Result<ConductRecords, CoreError> {
        let limit = Some(crate::MAX_PAGE);
        let mut records = ConductRecords::default();
        let mut cursor = None;
        loop {
            let query = crate::RestrictionQuery { cursor: cursor.take(), limit, ..Default::default() };
            let page: RestrictionPage = document(self.execute(Command::ListRestrictions(query), None).await?, "page")?;
            for v in page.restrictions {
                records.restrictions.push(restriction_of(v)?);
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        loop {
            let query = crate::AppealQuery { cursor: cursor.take(), limit, ..Default::default() };
            let page: AppealPage = document(self.execute(Command::ListAppeals(query), None).await?, "page")?;
            for v in page.appeals {
                records.appeals.push(appeal_of(v)?);
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        loop {
            let query = crate::CompensationQuery { cursor: cursor.take(), limit, ..Default::default() };
            let page: CompensationPage =
                document(self.execute(Command::ListCompensations(query), None).await?, "page")?;
            for v in page.compensations {
                records.compensations.push(compensation_of(v)?);
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let challenge_ids: Vec<String> = records
            .restrictions
            .iter()
            .filter(|r| period.contains(r.created_at_ms))
            .filter_map(|r| r.challenge_id.clone())
            .collect();
        let commands = challenge_ids.iter().map(|id| Command::GetChallenge { id: id.clone() }).collect();
        for (id, answer) in challenge_ids.iter().zip(self.read_many(commands).await?) {
            match answer {
                Ok(Reply::Challenge(view)) => {
                    records.challenges.insert(id.clone(), view.status);
                }
                Err(CoreError::ChallengeNotFound { .. }) => {}
                Err(other) => return Err(other),
                Ok(_) => return Err(unreadable("challenge")),
            }
        }
        let decision_ids: Vec<String> = records
            .appeals
            .iter()
            .filter(|a| a.outcome == Some(AppealOutcome::Overturn) && period.contains(a.filed_at_ms))
            .filter_map(|a| a.decision_id.clone())
            .collect();
        let commands = decision_ids.iter().map(|id| Command::GetDecision { payment_id: id.clone() }).collect();
        for answer in self.read_many(commands).await? {
            match answer {
                Ok(Reply::Document(mut value)) => {
                    if let Ok(label) = serde_json::from_value::<DecisionLabel>(value["label"].take()) {
                        records.labels.push(label);
                    }
                }
                Err(CoreError::DecisionNotFound { .. } | CoreError::PaymentNotFound { .. }) => {}
                Err(other) => return Err(other),
                Ok(_) => return Err(unreadable("decision")),
            }
        }
        Ok(records)
    }

    /// Runs read commands [`READS_IN_FLIGHT`] at a time (one writer batch answers them
    /// together), each answer in the order asked.
    async fn read_many(&self, commands: Vec<Command>) -> Result<Vec<Result<Reply, CoreError>>, CoreError> {
        let mut answers = Vec::with_capacity(commands.len());
        let mut commands = commands.into_iter().peekable();
        while commands.peek().is_some() {
            let mut waiting = Vec::new();
            for command in commands.by_ref().take(READS_IN_FLIGHT) {
                let (envelope, receiver) = Service::envelope(Caller::System, command, None)?;
                match self.queue.try_send(envelope) {
                    Ok(()) => waiting.push(receiver),
                    Err(std::sync::mpsc::TrySendError::Full(_)) => return Err(CoreError::Overloaded),
                    Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(crate::stopped()),
                }
            }
            for receiver in waiting {
                answers.push(receiver.await.unwrap_or_else(|_| Err(crate::stopped())));
            }
        }
        Ok(answers)
    }

    /// The conduct report for `period`, as the service stands now (its clock).
    pub async fn conduct_report(&self, period: &ReportPeriod) -> Result<ConductReport, CoreError> {
        let records = self.conduct_records(period).await?;
        Ok(ConductReport::compute(&records, period, self.clock().now_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AppealStatus;

    const H: i64 = 3_600_000;

    /// 2026-11-`day` at `hour`:00 UTC, in milliseconds.
    fn at(month: i8, day: i8, hour: i64) -> i64 {
        midnight_ms(jiff::civil::date(2026, month, day)).unwrap() + hour * H
    }

    fn restriction(id: &str, created: i64, until: i64, lift: Option<(i64, LiftCause)>, codes: &[&str]) -> Restriction {
        let mut history = vec![RestrictionEvent::new(RestrictionEventKind::Imposed, created)];
        if let Some((lifted, cause)) = lift {
            let mut event = RestrictionEvent::new(RestrictionEventKind::Lifted, lifted);
            event.cause = Some(cause);
            history.push(event);
        }
        Restriction {
            id: id.into(),
            credit_line_id: format!("cl_{id}"),
            user_id: format!("user_{id}"),
            scope: RestrictionScope::ScanToPay,
            reason_codes: codes.iter().map(|c| c.to_string()).collect(),
            reason_code: codes.first().map(|c| c.to_string()).unwrap_or_default(),
            explanation: Explanation::default(),
            payment_id: Some(format!("pay_{id}")),
            challenge_id: Some(format!("ch_{id}")),
            imposed_by: ImposedBy::default(),
            created_at_ms: created,
            until_ms: until,
            appeal_deadline_ms: created + 7 * 24 * H,
            // The sweep writes an expiry a moment after the end its event names.
            lifted_at_ms: lift.map(|(lifted, _)| lifted + 400),
            history,
        }
    }

    fn appeal(id: &str, filed: i64, outcome: Option<(AppealOutcome, i64)>, escalated: Option<i64>) -> Appeal {
        Appeal {
            id: id.into(),
            credit_line_id: "cl_x".into(),
            user_id: "user_x".into(),
            decision_id: Some(format!("pay_{id}")),
            restriction_id: None,
            message: "it was me".into(),
            status: if outcome.is_some() { AppealStatus::Decided } else { AppealStatus::Open },
            filed_at_ms: filed,
            deadline_ms: filed + 24 * H,
            filed_by: "shopper:cl_x".into(),
            claimed_by: None,
            claimed_at_ms: None,
            escalated_at_ms: escalated,
            outcome: outcome.map(|(o, _)| o),
            note: None,
            decided_by: outcome.map(|_| "key_ana".into()),
            decided_at_ms: outcome.map(|(_, t)| t),
            lifted_restriction: false,
            compensation_due: matches!(outcome, Some((AppealOutcome::Overturn, _))),
        }
    }

    fn compensation(appeal_id: &str, created: i64, status: CompensationStatus, currency: &str) -> Compensation {
        Compensation {
            id: format!("cp_{appeal_id}"),
            appeal_id: appeal_id.into(),
            user_id: "user_x".into(),
            credit_line_id: "cl_x".into(),
            decision_id: None,
            restriction_id: None,
            amount_minor: if currency.is_empty() { 0 } else { 5_000 },
            currency: currency.into(),
            status,
            created_at_ms: created,
            paid_at_ms: (status == CompensationStatus::Paid).then_some(created),
            transaction_id: (status == CompensationStatus::Paid).then_some(9),
            waive_fees: true,
            note: None,
        }
    }

    fn label(appeal_id: &str, when: i64) -> DecisionLabel {
        DecisionLabel {
            payment_id: format!("pay_{appeal_id}"),
            label: "false_positive".into(),
            appeal_id: appeal_id.into(),
            by: "key_ana".into(),
            at: timestamp(when),
        }
    }

    fn records() -> ConductRecords {
        let day = 24 * H;
        let t = |d: i8| at(11, d, 0);
        let restrictions = vec![
            // Expiry: the sweep's event names the end.
            restriction("r1", t(2), t(2) + day, Some((t(2) + day, LiftCause::Expired)), &["deny_listed_user"]),
            restriction(
                "r2",
                t(3),
                t(3) + day,
                Some((t(3) + 600_000, LiftCause::ChallengePassed)),
                &["account_takeover_suspected", "velocity_user_burst"],
            ),
            restriction(
                "r3",
                t(4),
                t(4) + day,
                Some((t(4) + 2 * H, LiftCause::AppealOverturned)),
                &["deny_listed_user"],
            ),
            restriction(
                "r4",
                t(5),
                t(5) + 48 * H,
                Some((t(5) + 25 * H, LiftCause::AppealEscalated)),
                &["deny_listed_user"],
            ),
            restriction("r5", t(6), t(6) + day, Some((t(6) + H, LiftCause::Operator)), &["account_takeover_suspected"]),
            // At its end, the sweep not yet round: lifted by expiry at its end.
            restriction("r6", t(7), t(7) + day, None, &["deny_listed_user"]),
            // Still in force at the report's instant.
            restriction("r7", at(11, 30, 23), at(12, 20, 0), None, &["deny_listed_user"]),
            // Outside the period, on either side (the end is exclusive).
            restriction("r8", at(10, 31, 23), at(11, 1, 23), Some((at(11, 1, 0), LiftCause::Operator)), &["x"]),
            restriction("r9", at(12, 1, 0), at(12, 2, 0), None, &["y"]),
        ];
        let mut challenges = HashMap::new();
        for (id, status) in [
            ("r1", ChallengeStatus::Expired),
            ("r2", ChallengeStatus::Passed),
            ("r3", ChallengeStatus::Failed),
            ("r4", ChallengeStatus::Expired),
            ("r5", ChallengeStatus::Failed),
            ("r6", ChallengeStatus::Expired),
            ("r7", ChallengeStatus::Pending),
            ("r8", ChallengeStatus::Passed),
        ] {
            challenges.insert(format!("ch_{id}"), status);
        }
        let appeals = vec![
            appeal("a1", t(2), Some((AppealOutcome::Overturn, t(2) + 2 * H)), None),
            appeal("a2", t(3), None, Some(t(3) + day)),
            appeal("a3", t(4), Some((AppealOutcome::Uphold, t(4) + 30 * H)), Some(t(4) + day)),
            appeal("a4", t(5), Some((AppealOutcome::Uphold, t(5) + H)), None),
            appeal("a5", at(11, 30, 20), None, None),
            appeal("a6", at(10, 31, 0), Some((AppealOutcome::Overturn, at(10, 31, 1))), None),
            // Decided after its deadline, the sweep never having escalated it.
            appeal("a7", t(6), Some((AppealOutcome::Overturn, t(6) + 26 * H)), None),
        ];
        let compensations = vec![
            compensation("a1", t(2) + 2 * H, CompensationStatus::Paid, "CNY"),
            compensation("a7", t(7) + 2 * H, CompensationStatus::WaitingForFunds, "CNY"),
            compensation("a6", at(10, 31, 1), CompensationStatus::Paid, "CNY"),
            // Its appeal not at hand: counted by when it was written.
            compensation("ap_gone", t(10), CompensationStatus::Due, ""),
        ];
        let labels = vec![label("a1", t(2) + 2 * H), label("a7", t(7) + 2 * H), label("a6", at(10, 31, 1))];
        ConductRecords { restrictions, appeals, compensations, challenges, labels }
    }

    #[test]
    fn the_report_counts_what_began_in_the_period_as_it_stands() {
        let period = ReportPeriod::parse("2026-11-01", "2026-11-30").unwrap();
        let report = ConductReport::compute(&records(), &period, at(12, 10, 0));
        assert_eq!((report.from.as_str(), report.to.as_str()), ("2026-11-01", "2026-11-30"));
        assert_eq!(report.as_of, "2026-12-10T00:00:00Z");

        let r = &report.restrictions;
        assert_eq!((r.imposed, r.in_force), (7, 1));
        assert_eq!(r.by_scope, ScopeCounts { payment: 0, scan_to_pay: 7, credit_line: 0 });
        let rows: Vec<(&str, u64)> = r.by_reason_code.iter().map(|x| (x.reason_code.as_str(), x.count)).collect();
        assert_eq!(rows, [("account_takeover_suspected", 2), ("deny_listed_user", 5), ("velocity_user_burst", 1)]);
        let t = &r.time_to_lift;
        let figure =
            |count, median: i64, p95: i64| LiftFigure { count, median_seconds: Some(median), p95_seconds: Some(p95) };
        assert_eq!(t.expiry, figure(2, 86_400, 86_400), "r1 at its end (not the sweep's moment after), r6 unswept");
        assert_eq!(t.challenge, figure(1, 600, 600));
        assert_eq!(t.appeal, figure(1, 7_200, 7_200));
        assert_eq!(t.escalation, figure(1, 90_000, 90_000));
        assert_eq!(t.operator, figure(1, 3_600, 3_600));
        assert_eq!(t.superseded, LiftFigure::default());
        assert_eq!(t.unrecorded, LiftFigure::default());
        // 600, 3,600, 7,200, 86,400, 86,400, 90,000 s: the 3rd and the 6th by nearest rank.
        assert_eq!(t.all, figure(6, 7_200, 90_000));

        let c = &report.challenges;
        assert_eq!((c.offered, c.passed, c.failed, c.expired, c.pending), (7, 1, 2, 3, 1));

        let a = &report.appeals;
        assert_eq!((a.received, a.overturned, a.upheld, a.undecided, a.escalated), (6, 2, 2, 2, 2));
        assert_eq!((a.decided_within_deadline, a.decided_late, a.undecided_past_deadline), (2, 2, 2));
        assert_eq!(a.within_deadline_share, Some(0.3333));

        let m = &report.compensation;
        assert_eq!(m.owed, 3);
        let cny = |amount: &str| vec![CurrencyAmount { currency: "CNY".into(), amount: amount.into() }];
        assert_eq!(m.paid, MoneyFigure { count: 1, amounts: cny("50.00") });
        assert_eq!(m.waiting_for_funds, MoneyFigure { count: 1, amounts: cny("50.00") });
        assert_eq!(m.due, MoneyFigure { count: 1, amounts: vec![] });
        assert_eq!(report.decisions_labelled_false_positive, 2);

        // JSON round trip (what `--server` prints as a table), and the tables name every figure.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(serde_json::from_value::<ConductReport>(json.clone()).unwrap(), report);
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let expected = ["appeals", "as_of", "challenges", "compensation", "decisions_labelled_false_positive", "from"];
        assert_eq!(keys, [&expected[..], &["restrictions", "to"]].concat(), "the documented keys, sorted");
        let md = report.markdown();
        assert!(md.contains("| deny_listed_user | scan_to_pay | 5 |"), "{md}");
        assert!(md.contains("| expiry | 2 | 1 d 0 h | 1 d 0 h |"), "{md}");
        assert!(md.contains("| challenge | 1 | 10 min 0 s | 10 min 0 s |"), "{md}");
        assert!(md.contains("| 2 | 2 | 2 | 33.3 % |"), "{md}");
        assert!(md.contains("| paid | 1 | 50.00 CNY |"), "{md}");
    }

    #[test]
    fn deadlines_not_yet_reached_are_neither_met_nor_missed() {
        let period = ReportPeriod::parse("2026-11-01", "2026-11-30").unwrap();
        // a5's deadline (1 December, 20:00) is still ahead: it is judged later.
        let report = ConductReport::compute(&records(), &period, at(12, 1, 0));
        assert_eq!(report.appeals.undecided_past_deadline, 1);
        assert_eq!(report.appeals.within_deadline_share, Some(0.4));
        assert_eq!(report.restrictions.in_force, 1, "r7");
        // Nothing at all: no share, no times.
        let empty = ConductReport::compute(&ConductRecords::default(), &period, at(12, 1, 0));
        assert_eq!(empty.appeals.within_deadline_share, None);
        assert_eq!(empty.restrictions.time_to_lift.all, LiftFigure::default());
        assert!(empty.markdown().contains("| all | 0 | - | - |"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<i64> = (1..=20).collect();
        assert_eq!((percentile(&values, 50), percentile(&values, 95)), (Some(10), Some(19)));
        assert_eq!((percentile(&[1, 2, 3, 4], 50), percentile(&[1, 2, 3, 4], 95)), (Some(2), Some(4)));
        assert_eq!((percentile(&[7], 50), percentile(&[7], 95)), (Some(7), Some(7)));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(
            lift_figure(vec![2_999, 1_000]),
            LiftFigure { count: 2, median_seconds: Some(1), p95_seconds: Some(2) }
        );
    }

    #[test]
    fn periods_are_whole_utc_days_and_bad_ones_are_refused_by_field() {
        let p = ReportPeriod::parse("2026-11-30", "2026-11-30").unwrap();
        assert!(p.contains(at(11, 30, 0)) && p.contains(at(12, 1, 0) - 1) && !p.contains(at(12, 1, 0)));
        assert!(!p.contains(at(11, 30, 0) - 1));
        assert!(ReportPeriod::parse("2024-01-01", "2024-12-31").is_ok(), "a leap year: 366 days");
        let field = |from: &str, to: &str| match ReportPeriod::parse(from, to) {
            Err(CoreError::InvalidRequest { field, message }) => (field, message),
            other => panic!("{from}..{to}: {other:?}"),
        };
        assert_eq!(field("2026-12-01", "2026-11-30").0, "to");
        assert!(field("2026-12-01", "2026-11-30").1.contains("before"));
        assert_eq!(field("2025-01-01", "2026-01-02").0, "to", "367 days");
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "30/11/2026",
            "2026-11-30T00:00:00Z",
            "20261130",
            "+2026-11-3",
            "２０２６-11-30",
        ] {
            assert_eq!(field(bad, "2026-11-30").0, "from", "{bad:?}");
            assert_eq!(field("2026-11-30", bad).0, "to", "{bad:?}");
        }
        assert!(field("x".repeat(1_000).as_str(), "2026-11-30").1.len() < 200, "the message quotes a little");
    }
}
