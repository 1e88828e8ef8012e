//! Regulatory policy as a versioned document. Each clause has its own effective dates, so a
//! new rule is scheduled ahead and a repealed one ends on its date without a deploy. The
//! document also sets severity: which outcome each reason code gets, the score thresholds,
//! how long a restriction lasts, and when a device becomes trusted.

use crate::catalogue::Catalogue;
use crate::Outcome;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;
use xiezhi_money::{parse_minor, Currency, Sign};

/// Most clauses in one policy document.
pub const MAX_CLAUSES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("policy: {message}")]
pub struct PolicyError {
    pub message: String,
}

fn policy_error(message: impl Into<String>) -> PolicyError {
    PolicyError { message: message.into() }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClauseRule {
    /// Most one credit payment may be, in this currency.
    PaymentCap {
        currency: String,
        max_amount: String,
    },
    /// Most a user may pay with credit per local calendar day, in this currency.
    DailyCap {
        currency: String,
        max_amount: String,
    },
    /// Merchant categories where credit may not be used.
    BlockedMccs {
        mccs: Vec<String>,
    },
    MinAge {
        years: i64,
    },
    /// Identity verification level required; only above `above_amount` when given.
    MinKycLevel {
        level: i64,
        #[serde(default)]
        above_amount: Option<String>,
        #[serde(default)]
        currency: Option<String>,
    },
    /// Regions (ISO 3166-2 or alpha-2 prefixes) where credit scan-to-pay is not offered.
    BlockedRegions {
        regions: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clause {
    pub id: String,
    /// RFC 3339; the clause applies from this instant.
    pub effective_from: String,
    /// RFC 3339; the clause stops applying at this instant (repeal).
    #[serde(default)]
    pub effective_until: Option<String>,
    /// Where the clause comes from, e.g. the regulation's reference.
    #[serde(default)]
    pub source: String,
    pub rule: ClauseRule,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Fraud score plus rule points at or above which the payment is stepped up.
    pub step_up_score: i64,
    /// … and at or above which it is declined.
    pub decline_score: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictionPolicy {
    pub duration_hours: i64,
    /// Failed challenges within 24 h that restrict the line.
    pub failed_challenges_to_restrict: i64,
    /// Days the user has to appeal a restriction.
    pub appeal_days: i64,
    /// The longest any restriction may last, in hours: every restriction expires, whatever
    /// imposed it. Absent (documents written before it): 30 days, or `duration_hours` when
    /// that is longer, so a stored document never stops loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_hours: Option<i64>,
    /// Hours a person has to decide an appeal once it is filed; past them the appeal
    /// escalates.
    #[serde(default = "default_appeal_deadline_hours")]
    pub appeal_deadline_hours: i64,
    /// Whether an escalated appeal lifts its restriction at once: the user waits no longer
    /// for a review that is late.
    #[serde(default = "default_true")]
    pub appeal_auto_lift_on_escalation: bool,
}

/// What `max_duration_hours` is when a document does not set it: 30 days.
pub const DEFAULT_MAX_RESTRICTION_HOURS: i64 = 30 * 24;

fn default_appeal_deadline_hours() -> i64 {
    24
}

fn default_true() -> bool {
    true
}

impl RestrictionPolicy {
    /// The longest a restriction may last, in hours (see `max_duration_hours`).
    pub fn max_duration_hours(&self) -> i64 {
        self.max_duration_hours.unwrap_or(DEFAULT_MAX_RESTRICTION_HOURS.max(self.duration_hours))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    /// Approved payments on a device before it is trusted for the user.
    pub device_trusted_after_payments: u32,
    /// The same user, merchant and amount within this many seconds is a client retry.
    pub retry_window_seconds: i64,
    /// Per currency: amounts at or under this are "tiny" (card-testing size).
    pub tiny_amounts: BTreeMap<String, String>,
    /// How long a challenge can be answered.
    pub challenge_ttl_seconds: i64,
    /// Wrong codes accepted before a challenge fails.
    pub challenge_max_attempts: u32,
    /// Days before a clause takes effect during which affected payments carry a notice.
    pub notice_days: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    pub id: String,
    pub version: u32,
    /// Offset of the local day used by daily caps, in minutes east of UTC (480 for China).
    pub timezone_offset_minutes: i64,
    pub clauses: Vec<Clause>,
    /// Outcome per reason code, overriding the catalogue's default.
    #[serde(default)]
    pub severity: BTreeMap<String, Outcome>,
    pub thresholds: Thresholds,
    pub restriction: RestrictionPolicy,
    pub trust: TrustPolicy,
    /// Limits by score band and income: what a line opened on an application gets
    /// (`POST /v1/credit-lines` with `application`, `xiezhi model propose-limit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_limits: Option<crate::limits::CreditLimitPolicy>,
    /// How much of a line in a given credit band may be used, at payment time (the credit
    /// layer). Lines opened with a fixed limit have no band and are never capped here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credit_band_caps: Vec<CreditBandCap>,
    /// What the compensation fund pays a user a reviewer found wrongly stopped. Read by the
    /// service when an appeal is overturned, never by the engine: it changes no decision.
    #[serde(default)]
    pub compensation: CompensationPolicy,
    /// The profile fields each KYC level asks for, by level (`"2"`): what the
    /// `complete_profile` way out of `policy_kyc_level` names, and what
    /// `POST /v1/credit-lines/{id}/profile` requires. A policy without it offers no
    /// profile step: the way out names the level only, and the route refuses every level.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kyc_levels: BTreeMap<String, KycLevelFields>,
}

/// The fields a KYC level requires (names only; the values never reach the policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KycLevelFields {
    pub fields: Vec<String>,
}

/// The most fields one level may require, and the longest field name.
pub const MAX_KYC_FIELDS: usize = 16;
pub const MAX_KYC_FIELD_NAME_CHARS: usize = 32;

/// Levels are 1 to 3 (0 is none), each with 1 to [`MAX_KYC_FIELDS`] distinct snake_case
/// names: the names are a contract with the wallets that send them.
fn check_kyc_levels(document: &PolicyDocument) -> Result<(), PolicyError> {
    for (level, spec) in &document.kyc_levels {
        if !matches!(level.as_str(), "1" | "2" | "3") {
            return Err(policy_error(format!("kyc_levels: `{level}` is not a level (1, 2 or 3)")));
        }
        if spec.fields.is_empty() || spec.fields.len() > MAX_KYC_FIELDS {
            return Err(policy_error(format!("kyc_levels `{level}`: 1 to {MAX_KYC_FIELDS} fields")));
        }
        let mut seen = std::collections::HashSet::new();
        for name in &spec.fields {
            let well_formed = !name.is_empty()
                && name.len() <= MAX_KYC_FIELD_NAME_CHARS
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !well_formed {
                return Err(policy_error(format!(
                    "kyc_levels `{level}`: field `{name}` is not a snake_case name of at most {MAX_KYC_FIELD_NAME_CHARS} characters"
                )));
            }
            if !seen.insert(name.as_str()) {
                return Err(policy_error(format!("kyc_levels `{level}`: field `{name}` is listed twice")));
            }
        }
    }
    Ok(())
}

impl PolicyDocument {
    /// The fields KYC level `level` requires, if the policy says.
    pub fn kyc_fields(&self, level: i64) -> Option<&[String]> {
        self.kyc_levels.get(&level.to_string()).map(|l| l.fields.as_slice())
    }
}

/// Compensation for a wrongful restriction or decision (an overturned appeal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompensationPolicy {
    /// A fixed amount per wrongful restriction (a decimal in `currency`, like the clauses'
    /// amounts), credited to the user's line as credit balance.
    #[serde(default = "default_compensation_amount")]
    pub per_wrongful_restriction: String,
    /// The currency of the amount; a line in another currency is owed nothing automatic.
    #[serde(default = "default_compensation_currency")]
    pub currency: String,
    /// Whether fees charged while a line was wrongly restricted are waived on overturn.
    #[serde(default = "default_true")]
    pub waive_fees_while_wrongly_restricted: bool,
}

fn default_compensation_amount() -> String {
    "50.00".into()
}

fn default_compensation_currency() -> String {
    "CNY".into()
}

impl Default for CompensationPolicy {
    fn default() -> CompensationPolicy {
        CompensationPolicy {
            per_wrongful_restriction: default_compensation_amount(),
            currency: default_compensation_currency(),
            waive_fees_while_wrongly_restricted: true,
        }
    }
}

impl CompensationPolicy {
    /// The amount owed per wrongful restriction, in minor units of its currency (checked
    /// when the policy compiles, so a loaded policy always has one).
    pub fn amount_minor(&self) -> Result<(Currency, i64), PolicyError> {
        let c = currency("compensation", &self.currency)?;
        Ok((c, amount("compensation.per_wrongful_restriction", &self.per_wrongful_restriction, c)?))
    }
}

/// A cap on a banded line's use: while the line is younger than `line_age_days_under`
/// days and its band is one of `bands`, a payment (at a merchant the shopper has not paid
/// before, when `first_visit_only`) may not take the day's approved spending past
/// `daily_share_of_limit_pct` % of the limit. Refused as `band_spend_cap`, with the amount
/// that would still go through today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditBandCap {
    pub id: String,
    pub bands: Vec<String>,
    pub line_age_days_under: i64,
    #[serde(default)]
    pub first_visit_only: bool,
    pub daily_share_of_limit_pct: i64,
}

/// Most credit band caps in one policy document.
pub const MAX_CREDIT_BAND_CAPS: usize = 32;

/// A clause with its dates and amounts parsed.
#[derive(Debug, Clone)]
pub struct ActiveClause {
    pub id: String,
    pub from_ms: i64,
    pub until_ms: Option<i64>,
    pub rule: CompiledRule,
}

#[derive(Debug, Clone)]
pub enum CompiledRule {
    PaymentCap { currency: Currency, max_minor: i64 },
    DailyCap { currency: Currency, max_minor: i64 },
    BlockedMccs { mccs: Vec<String> },
    MinAge { years: i64 },
    MinKycLevel { level: i64, above: Option<(Currency, i64)> },
    BlockedRegions { regions: Vec<String> },
}

/// A policy document ready to use.
#[derive(Debug, Clone)]
pub struct Policy {
    pub document: PolicyDocument,
    pub clauses: Vec<ActiveClause>,
    pub tiny_minor: BTreeMap<Currency, i64>,
    pub severity: BTreeMap<String, Outcome>,
}

fn timestamp_ms(field: &str, clause: &str, text: &str) -> Result<i64, PolicyError> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| policy_error(format!("clause `{clause}`: `{field}` is not an RFC 3339 instant: {e}")))
}

fn currency(clause: &str, code: &str) -> Result<Currency, PolicyError> {
    Currency::from_alpha(code).ok_or_else(|| policy_error(format!("clause `{clause}`: unknown currency `{code}`")))
}

fn amount(clause: &str, text: &str, currency: Currency) -> Result<i64, PolicyError> {
    parse_minor(text, currency, Sign::Positive).map_err(|e| policy_error(format!("clause `{clause}`: {e}")))
}

impl Policy {
    pub fn from_json(text: &str, catalogue: &Catalogue) -> Result<Policy, PolicyError> {
        let document: PolicyDocument =
            serde_json::from_str(text).map_err(|e| policy_error(format!("not a valid policy document: {e}")))?;
        Policy::compile(document, catalogue)
    }

    pub fn compile(document: PolicyDocument, catalogue: &Catalogue) -> Result<Policy, PolicyError> {
        if document.clauses.len() > MAX_CLAUSES {
            return Err(policy_error(format!("at most {MAX_CLAUSES} clauses")));
        }
        if !(-14 * 60..=14 * 60).contains(&document.timezone_offset_minutes) {
            return Err(policy_error("timezone_offset_minutes must be within ±14 h"));
        }
        if let Some(limits) = &document.credit_limits {
            crate::limits::CreditLimits::compile(limits).map_err(policy_error)?;
        }
        check_band_caps(&document)?;
        check_kyc_levels(&document)?;
        document.compensation.amount_minor()?;
        let t = &document.thresholds;
        if !(0 < t.step_up_score && t.step_up_score <= t.decline_score && t.decline_score <= 10_000) {
            return Err(policy_error("thresholds need 0 < step_up_score <= decline_score <= 10000"));
        }
        let r = &document.restriction;
        if !(1..=24 * 365).contains(&r.duration_hours) || r.failed_challenges_to_restrict < 1 || r.appeal_days < 1 {
            return Err(policy_error(
                "restriction: duration_hours 1..8760, failed_challenges_to_restrict >= 1, appeal_days >= 1",
            ));
        }
        if r.max_duration_hours.is_some_and(|max| !(r.duration_hours..=24 * 365).contains(&max))
            || !(1..=30 * 24).contains(&r.appeal_deadline_hours)
        {
            return Err(policy_error(
                "restriction: max_duration_hours duration_hours..8760, appeal_deadline_hours 1..720",
            ));
        }
        let trust = &document.trust;
        if !(1..=3_600).contains(&trust.retry_window_seconds)
            || !(30..=3_600).contains(&trust.challenge_ttl_seconds)
            || !(1..=10).contains(&trust.challenge_max_attempts)
            || !(0..=365).contains(&trust.notice_days)
        {
            return Err(policy_error(
                "trust: retry_window_seconds 1..3600, challenge_ttl_seconds 30..3600, challenge_max_attempts 1..10, notice_days 0..365",
            ));
        }
        for code in document.severity.keys() {
            if !catalogue.contains(code) {
                return Err(policy_error(format!("severity: unknown reason code `{code}`")));
            }
        }
        let mut tiny_minor = BTreeMap::new();
        for (code, text) in &trust.tiny_amounts {
            let c = currency("trust.tiny_amounts", code)?;
            tiny_minor.insert(c, amount("trust.tiny_amounts", text, c)?);
        }
        let mut ids = std::collections::HashSet::new();
        let mut clauses = Vec::with_capacity(document.clauses.len());
        for clause in &document.clauses {
            let id = clause.id.as_str();
            if id.is_empty() || !ids.insert(id) {
                return Err(policy_error(format!("clause ids must be present and unique (`{id}`)")));
            }
            let from_ms = timestamp_ms("effective_from", id, &clause.effective_from)?;
            let until_ms =
                clause.effective_until.as_deref().map(|t| timestamp_ms("effective_until", id, t)).transpose()?;
            if until_ms.is_some_and(|u| u <= from_ms) {
                return Err(policy_error(format!("clause `{id}`: effective_until must be after effective_from")));
            }
            let rule = match &clause.rule {
                ClauseRule::PaymentCap { currency: c, max_amount } => {
                    let c = currency(id, c)?;
                    CompiledRule::PaymentCap { currency: c, max_minor: amount(id, max_amount, c)? }
                }
                ClauseRule::DailyCap { currency: c, max_amount } => {
                    let c = currency(id, c)?;
                    CompiledRule::DailyCap { currency: c, max_minor: amount(id, max_amount, c)? }
                }
                ClauseRule::BlockedMccs { mccs } => {
                    if mccs.iter().any(|m| m.len() != 4 || !m.bytes().all(|b| b.is_ascii_digit())) {
                        return Err(policy_error(format!("clause `{id}`: MCCs are four digits")));
                    }
                    let mut mccs = mccs.clone();
                    mccs.sort();
                    CompiledRule::BlockedMccs { mccs }
                }
                ClauseRule::MinAge { years } => {
                    if !(0..=120).contains(years) {
                        return Err(policy_error(format!("clause `{id}`: years 0..120")));
                    }
                    CompiledRule::MinAge { years: *years }
                }
                ClauseRule::MinKycLevel { level, above_amount, currency: c } => {
                    if !(0..=3).contains(level) {
                        return Err(policy_error(format!("clause `{id}`: level 0..3")));
                    }
                    let above = match (above_amount, c) {
                        (Some(a), Some(c)) => {
                            let c = currency(id, c)?;
                            Some((c, amount(id, a, c)?))
                        }
                        (None, None) => None,
                        _ => return Err(policy_error(format!("clause `{id}`: above_amount needs currency"))),
                    };
                    CompiledRule::MinKycLevel { level: *level, above }
                }
                ClauseRule::BlockedRegions { regions } => CompiledRule::BlockedRegions { regions: regions.clone() },
            };
            clauses.push(ActiveClause { id: id.to_owned(), from_ms, until_ms, rule });
        }
        let severity = document.severity.clone();
        Ok(Policy { document, clauses, tiny_minor, severity })
    }

    pub fn default_document() -> &'static str {
        include_str!("../policy/default.json")
    }

    pub fn version(&self) -> String {
        format!("{}@{}", self.document.id, self.document.version)
    }

    /// The outcome this policy gives a reason code.
    pub fn outcome_for(&self, code: &str, catalogue: &Catalogue) -> Outcome {
        self.severity
            .get(code)
            .copied()
            .or_else(|| catalogue.get(code).map(|c| c.default_outcome))
            .unwrap_or(Outcome::Decline)
    }

    pub fn in_force(&self, clause: &ActiveClause, now_ms: i64) -> bool {
        clause.from_ms <= now_ms && clause.until_ms.is_none_or(|u| now_ms < u)
    }

    /// Whether credit in `currency` may be granted now: only where a clause in force caps
    /// each payment in it, so no line runs in a currency whose amounts nothing bounds.
    pub fn admits(&self, currency: Currency, now_ms: i64) -> bool {
        self.clauses.iter().any(|c| {
            matches!(c.rule, CompiledRule::PaymentCap { currency: capped, .. } if capped == currency)
                && self.in_force(c, now_ms)
        })
    }

    /// Clauses that take effect within the notice period.
    pub fn upcoming(&self, clause: &ActiveClause, now_ms: i64) -> bool {
        let notice_ms = self.document.trust.notice_days * 86_400_000;
        now_ms < clause.from_ms && clause.from_ms - now_ms <= notice_ms
    }

    /// Start of the local calendar day containing `now_ms`, in UTC milliseconds.
    pub fn local_midnight_ms(&self, now_ms: i64) -> i64 {
        let offset_ms = self.document.timezone_offset_minutes * 60_000;
        (now_ms + offset_ms).div_euclid(86_400_000) * 86_400_000 - offset_ms
    }
}

/// Band caps name bands the policy's `credit_limits` has, with shares and ages in range.
fn check_band_caps(document: &PolicyDocument) -> Result<(), PolicyError> {
    let caps = &document.credit_band_caps;
    if caps.len() > MAX_CREDIT_BAND_CAPS {
        return Err(policy_error(format!("at most {MAX_CREDIT_BAND_CAPS} credit_band_caps")));
    }
    let mut ids = std::collections::HashSet::new();
    for cap in caps {
        let id = cap.id.as_str();
        if id.is_empty() || !ids.insert(id) {
            return Err(policy_error(format!("credit_band_caps ids must be present and unique (`{id}`)")));
        }
        if cap.bands.is_empty() || cap.bands.len() > 32 {
            return Err(policy_error(format!("credit_band_caps `{id}`: 1 to 32 bands")));
        }
        for band in &cap.bands {
            let known = document.credit_limits.as_ref().is_some_and(|l| l.bands.iter().any(|b| &b.name == band));
            if !known {
                return Err(policy_error(format!("credit_band_caps `{id}`: no credit_limits band `{band}`")));
            }
        }
        if !(1..=100).contains(&cap.daily_share_of_limit_pct) || !(1..=36_500).contains(&cap.line_age_days_under) {
            return Err(policy_error(format!(
                "credit_band_caps `{id}`: daily_share_of_limit_pct 1..100, line_age_days_under 1..36500"
            )));
        }
    }
    Ok(())
}

impl Policy {
    /// The credit-limit policy, compiled (checked when the policy was loaded).
    pub fn credit_limits(&self) -> Option<crate::limits::CreditLimits> {
        self.document.credit_limits.as_ref().and_then(|l| crate::limits::CreditLimits::compile(l).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shipped() -> serde_json::Value {
        serde_json::from_str(Policy::default_document()).expect("the shipped policy is JSON")
    }

    fn compile(document: &serde_json::Value) -> Result<Policy, PolicyError> {
        Policy::from_json(&document.to_string(), &Catalogue::new())
    }

    #[test]
    fn kyc_levels_name_their_fields_and_a_document_without_them_offers_no_profile_step() {
        let mut document = shipped();
        let policy = compile(&document).unwrap();
        let fields = policy.document.kyc_fields(2).expect("the shipped policy names level 2's fields");
        assert_eq!(fields, ["full_name", "id_number", "address"]);
        assert_eq!(policy.document.kyc_fields(1), None);
        document.as_object_mut().unwrap().remove("kyc_levels");
        let older = compile(&document).expect("a document without kyc_levels still loads");
        assert_eq!(older.document.kyc_fields(2), None);
        let refused = [
            (json!({"4": {"fields": ["full_name"]}}), "is not a level"),
            (json!({"2": {"fields": []}}), "1 to 16 fields"),
            (json!({"2": {"fields": ["Full Name"]}}), "not a snake_case name"),
            (json!({"2": {"fields": ["address", "address"]}}), "listed twice"),
            (json!({"2": {"fields": ["address"], "extra": 1}}), "unknown field"),
        ];
        for (levels, says) in refused {
            let mut document = shipped();
            document["kyc_levels"] = levels.clone();
            let error = compile(&document).expect_err("refused").to_string();
            assert!(error.contains(says), "{levels}: {error}");
        }
    }

    #[test]
    fn compensation_defaults_for_older_documents_and_bad_amounts_are_refused() {
        let mut document = shipped();
        let (currency, minor) = compile(&document).unwrap().document.compensation.amount_minor().unwrap();
        assert_eq!((currency.alpha(), minor), ("CNY", 5_000));
        document.as_object_mut().unwrap().remove("compensation");
        let older = compile(&document).expect("an older document still loads").document.compensation;
        assert_eq!(older, CompensationPolicy::default());
        for (field, value) in
            [("per_wrongful_restriction", "-1.00"), ("per_wrongful_restriction", "0"), ("currency", "XXQ")]
        {
            let mut document = shipped();
            document["compensation"][field] = value.into();
            assert!(compile(&document).is_err(), "{field} = {value} is refused");
        }
    }

    #[test]
    fn restriction_and_appeal_limits_default_for_documents_written_before_them() {
        let mut document = shipped();
        let restriction = document["restriction"].as_object_mut().unwrap();
        for field in ["max_duration_hours", "appeal_deadline_hours", "appeal_auto_lift_on_escalation"] {
            restriction.remove(field);
        }
        let r = compile(&document).expect("an older document still loads").document.restriction;
        assert_eq!((r.max_duration_hours(), r.appeal_deadline_hours), (DEFAULT_MAX_RESTRICTION_HOURS, 24));
        assert!(r.appeal_auto_lift_on_escalation);
        // An older document with a long restriction is never cut below its own duration.
        document["restriction"]["duration_hours"] = 2_000.into();
        assert_eq!(compile(&document).unwrap().document.restriction.max_duration_hours(), 2_000);
        let shipped = compile(&shipped()).unwrap().document.restriction;
        assert_eq!((shipped.max_duration_hours(), shipped.appeal_deadline_hours), (168, 24));
    }

    #[test]
    fn a_maximum_below_the_duration_or_a_deadline_out_of_range_is_refused() {
        let mut document = shipped();
        document["restriction"]["max_duration_hours"] = 12.into();
        assert!(compile(&document).unwrap_err().message.contains("max_duration_hours"));
        let mut document = shipped();
        document["restriction"]["appeal_deadline_hours"] = 0.into();
        assert!(compile(&document).unwrap_err().message.contains("appeal_deadline_hours"));
    }
}
