//! The pipeline: facts → features → signals by layer → one outcome, its reasons, its
//! explanation and its ways out, plus the record that lets anyone explain or replay it.

use crate::catalogue::{Catalogue, Explanation, Language, RecoveryKind};
use crate::features::{Feature, FeatureClass, FeatureVector};
use crate::lists::{ListKind, Lists, Subjects};
use crate::policy::{CompiledRule, Policy, PolicyDocument};
use crate::rules::{Effect, Layer, RuleMode, RuleSet};
use crate::scorer::{HeuristicScorer, Score, Scorer};
use crate::velocity::{Attempt, RiskState, VelocityPolicy};
use crate::Outcome;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use xiezhi_money::{format_minor, Currency};

/// The engine's own version, part of every decision record.
pub const ENGINE_VERSION: &str = "1";

/// What the user declared and what verification established. Kept with the credit line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    /// ISO 8601 date, e.g. "1990-04-01".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// 0 none, 1 phone, 2 ID document, 3 ID plus face match.
    #[serde(default)]
    pub kyc_level: i64,
    /// ISO 3166-2 region, e.g. "CN-SH".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveRestriction {
    pub reason_code: String,
    pub until_ms: i64,
}

/// Everything a decision is made from. Stored in the decision record, so a decision can be
/// re-run later from its record alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFacts {
    pub payment_id: String,
    pub user_id: String,
    pub credit_line_id: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub merchant_id: String,
    pub mcc: String,
    pub merchant_country: String,
    pub merchant_created_at_ms: i64,
    pub device_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub network: Option<String>,
    pub available_minor: i64,
    pub limit_minor: i64,
    pub line_opened_at_ms: i64,
    pub profile: UserProfile,
    pub restriction: Option<ActiveRestriction>,
    pub now_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalMode {
    /// Counted in the outcome.
    Live,
    /// A shadow rule: recorded, never counted.
    Shadow,
    /// Counted, but capped at `step_up`: network signals alone on a trusted device.
    Capped,
    /// Recorded, not counted: the user, device, network or merchant is allow-listed.
    Suppressed,
}

/// One layer's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub layer: Layer,
    pub reason_code: String,
    /// Policy clause, list entry, `rule_id@version`, scorer or built-in check that raised it.
    pub source: String,
    pub outcome: Outcome,
    pub mode: SignalMode,
    /// Values for the explanation (`cap`, `remaining`, `until`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<(String, String)>,
    /// Risk points a score-effect rule added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
}

impl Signal {
    fn counts(&self) -> bool {
        matches!(self.mode, SignalMode::Live | SignalMode::Capped)
    }
}

/// A way out, with the details it needs. Amounts are in minor units of the payment's
/// currency; the API renders them as decimals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    pub action: RecoveryKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
    /// Filled in by the service when it opens the challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    /// Where `max_amount_minor` comes from: the reason code whose figure it is (a cap, what
    /// a cap leaves, the available credit), or `usual_amount` (what the user usually pays).
    /// The explanation says it in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// `complete_profile` of a `policy_kyc_level` decline: the KYC level the payment needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kyc_level: Option<i64>,
    /// With `kyc_level`: the profile fields the policy requires for it (`kyc_levels`), when
    /// the policy names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// With `fields`: where to submit them, `POST /v1/credit-lines/{id}/profile` for the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl Recovery {
    fn new(action: RecoveryKind) -> Recovery {
        Recovery {
            action,
            max_amount_minor: None,
            until_ms: None,
            deadline_ms: None,
            challenge_id: None,
            basis: None,
            kyc_level: None,
            fields: None,
            endpoint: None,
        }
    }

    /// Fills in the profile step for a payment of line `credit_line_id` that needs KYC
    /// level `level`: the fields the policy requires for it, and the route taking them.
    fn profile_step(&mut self, level: i64, policy: &PolicyDocument, credit_line_id: &str) {
        self.kyc_level = Some(level);
        if let Some(fields) = policy.kyc_fields(level) {
            self.fields = Some(fields.to_vec());
            self.endpoint = Some(format!("/v1/credit-lines/{credit_line_id}/profile"));
        }
    }
}

/// A policy clause that will soon apply to payments like this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub clause_id: String,
    pub reason_code: String,
    pub effective_from_ms: i64,
    pub explanation: Explanation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleErrorRecord {
    pub rule: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub engine: String,
    pub policy: String,
    pub rules: String,
    pub scorer: String,
}

/// Everything about one decision: inputs, features, what every layer found, the score,
/// the versions in force, and the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub facts: PaymentFacts,
    pub features: FeatureVector,
    pub signals: Vec<Signal>,
    pub rules_evaluated: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_errors: Vec<RuleErrorRecord>,
    pub score: Score,
    /// Fraud score plus the points of live score-effect rules.
    pub risk_points: i64,
    pub versions: Versions,
    pub outcome: Outcome,
    pub reason_codes: Vec<String>,
    pub explanation: Explanation,
    pub recovery: Vec<Recovery>,
    pub expires_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    /// Time spent deciding, in microseconds (filled in by the caller, which owns a clock).
    #[serde(default)]
    pub latency_us: u64,
    /// The configured scorer could not score this payment; the heuristic scorer did.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scorer_fallback: bool,
    /// The challenger scorer's view of the same payment: it only watched (the scorer that
    /// decided is `versions.scorer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenger: Option<Watched>,
}

/// What a challenger scorer would have decided, on the same facts and features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watched {
    /// `name@version` of the scorer that watched.
    pub scorer: String,
    pub score: i64,
    pub outcome: Outcome,
    pub reason_codes: Vec<String>,
}

/// The challenge a step-up asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChallengeMethod {
    OneTimeCode,
    Reauthenticate,
}

pub struct Engine {
    catalogue: Arc<Catalogue>,
    policy: Arc<Policy>,
    rules: Arc<RuleSet>,
    lists: Lists,
    scorer: Arc<dyn Scorer>,
    /// A scorer that watches every decision without deciding any (champion and challenger).
    challenger: Option<Arc<dyn Scorer>>,
    state: RiskState,
    /// The versions in force, built once per change rather than per decision.
    versions: Versions,
    /// The explanation of a plain approval, formatted once.
    approve_explanation: Explanation,
    /// Each banded line's credit band (an index into `band_names`): lines opened on an
    /// application. Lines opened with a fixed limit are not here.
    credit_bands: rustc_hash::FxHashMap<Box<str>, u8>,
    band_names: Vec<Box<str>>,
}

/// An amount as people read it in explanations: "5000.00 CNY".
pub fn money(minor: i64, currency: Currency) -> String {
    format!("{} {}", format_minor(minor, currency.minor_unit_exponent()), currency.alpha())
}

fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

/// What `policy_kyc_level` quotes: the level needed, the user's, and the amount above
/// which it is needed (`scope` `above`), or none (`scope` `all`).
fn kyc_args(level: i64, user_level: i64, above: Option<(Currency, i64)>) -> Vec<(String, String)> {
    let mut args = vec![("min_level".into(), level.to_string()), ("level".into(), user_level.to_string())];
    match above {
        Some((currency, minor)) => {
            args.push(("scope".into(), "above".into()));
            args.push(("above".into(), money(minor, currency)));
        }
        None => args.push(("scope".into(), "all".into())),
    }
    args
}

fn age_years(birth_date: &str, now_ms: i64) -> Option<i64> {
    let birth: jiff::civil::Date = birth_date.parse().ok()?;
    let today = jiff::Timestamp::from_millisecond(now_ms).ok()?.to_zoned(jiff::tz::TimeZone::UTC).date();
    let mut years = i64::from(today.year()) - i64::from(birth.year());
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    Some(years)
}

impl Engine {
    pub fn new(catalogue: Arc<Catalogue>, policy: Arc<Policy>, rules: Arc<RuleSet>) -> Engine {
        let approve_explanation = catalogue.explain(Outcome::Approve, &[]);
        let mut engine = Engine {
            catalogue,
            policy,
            rules,
            lists: Lists::default(),
            scorer: Arc::new(HeuristicScorer),
            challenger: None,
            state: RiskState::new(),
            versions: Versions {
                engine: String::new(),
                policy: String::new(),
                rules: String::new(),
                scorer: String::new(),
            },
            approve_explanation,
            credit_bands: Default::default(),
            band_names: Vec::new(),
        };
        engine.versions = engine.current_versions();
        engine
    }

    /// The engine with the shipped policy and rules.
    pub fn with_defaults() -> Engine {
        let catalogue = Arc::new(Catalogue::new());
        let policy = Policy::from_json(Policy::default_document(), &catalogue).expect("the shipped policy is valid");
        let rules = RuleSet::from_json(default_rules(), &catalogue).expect("the shipped rules are valid");
        Engine::new(catalogue, Arc::new(policy), Arc::new(rules))
    }

    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.catalogue
    }
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }
    pub fn lists(&self) -> &Lists {
        &self.lists
    }
    pub fn lists_mut(&mut self) -> &mut Lists {
        &mut self.lists
    }
    pub fn state(&self) -> &RiskState {
        &self.state
    }
    pub fn state_mut(&mut self) -> &mut RiskState {
        &mut self.state
    }
    /// Swaps the rule set; the next decision uses it. Callers serialise this with decisions
    /// (the service does it on its writer thread), so no decision sees half of two sets.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
        self.versions = self.current_versions();
    }
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
        self.versions = self.current_versions();
    }
    pub fn set_scorer(&mut self, scorer: Arc<dyn Scorer>) {
        self.scorer = scorer;
        self.versions = self.current_versions();
    }

    /// Has `challenger` score every payment beside the scorer in force, without deciding
    /// any: each decision record then says what it would have decided (`None`: no watcher).
    pub fn set_challenger(&mut self, challenger: Option<Arc<dyn Scorer>>) {
        self.challenger = challenger;
    }

    /// Remembers the credit band a line was opened in (`None` forgets it). The band is the
    /// `credit_band` feature of the line's payments, which the policy's `credit_band_caps`
    /// read. The service tells the engine when it opens a line on an application and again
    /// for every banded line when it rebuilds the engine's memory.
    pub fn set_credit_band(&mut self, credit_line_id: &str, band: Option<&str>) {
        let Some(band) = band else {
            self.credit_bands.remove(credit_line_id);
            return;
        };
        let index = match self.band_names.iter().position(|b| &**b == band) {
            Some(i) => i,
            None => {
                // Band names come from the policy (at most 32 bands a policy); a name never
                // seen is added, and past 255 the oldest names are not worth a bigger index.
                assert!(self.band_names.len() < usize::from(u8::MAX), "more than 255 credit band names");
                self.band_names.push(band.into());
                self.band_names.len() - 1
            }
        };
        self.credit_bands.insert(credit_line_id.into(), index as u8);
    }

    /// The credit band of a line opened on an application.
    pub fn credit_band(&self, credit_line_id: &str) -> Option<&str> {
        self.credit_bands.get(credit_line_id).map(|i| &*self.band_names[usize::from(*i)])
    }

    pub fn versions(&self) -> Versions {
        self.versions.clone()
    }

    fn current_versions(&self) -> Versions {
        Versions {
            engine: ENGINE_VERSION.into(),
            policy: self.policy.version(),
            rules: self.rules.version.clone(),
            scorer: format!("{}@{}", self.scorer.name(), self.scorer.version()),
        }
    }

    pub fn velocity_policy(&self, now_ms: i64) -> VelocityPolicy {
        let trust = &self.policy.document.trust;
        VelocityPolicy {
            retry_window_s: trust.retry_window_seconds as u32,
            device_trusted_after: trust.device_trusted_after_payments,
            today_start_s: (self.policy.local_midnight_ms(now_ms).max(0) / 1_000) as u32,
        }
    }

    pub fn attempt<'a>(&self, facts: &'a PaymentFacts) -> Attempt<'a> {
        let f = facts;
        Attempt {
            user_id: &f.user_id,
            device_id: f.device_id.as_deref(),
            ip: f.ip,
            network: f.network.as_deref(),
            merchant_id: &f.merchant_id,
            amount_minor: f.amount_minor,
            tiny: self.policy.tiny_minor.get(&f.currency).is_some_and(|t| f.amount_minor <= *t),
            round: is_round(f.amount_minor, f.currency),
            new_line: f.now_ms - f.line_opened_at_ms < 30 * 86_400_000,
            now_ms: f.now_ms,
        }
    }

    /// Decides one payment and remembers it in the velocity state.
    pub fn decide(&mut self, facts: PaymentFacts) -> DecisionRecord {
        let mut features = FeatureVector::new();
        self.fill_features(&facts, &mut features);
        // The challenger sees the same facts and features, before anything is recorded.
        let watched = self.challenger.as_ref().map(|challenger| {
            let shadow = self.evaluate_with(facts.clone(), features.clone(), challenger.as_ref());
            Watched {
                scorer: format!("{}@{}", challenger.name(), challenger.version()),
                score: shadow.score.value,
                outcome: shadow.outcome,
                reason_codes: shadow.reason_codes,
            }
        });
        let mut record = self.evaluate_features(facts, features);
        record.challenger = watched;
        let attempt = self.attempt(&record.facts);
        let is_retry = record.features.bool(Feature::IsRetry);
        let policy = self.velocity_policy(record.facts.now_ms);
        self.state.record(&attempt, record.outcome, is_retry, &policy);
        record
    }

    /// Decides one payment without changing any state: what `decide` would answer.
    pub fn evaluate(&self, facts: PaymentFacts) -> DecisionRecord {
        let mut features = FeatureVector::new();
        self.fill_features(&facts, &mut features);
        self.evaluate_features(facts, features)
    }

    /// Fills every feature of `facts` from the facts and the velocity state.
    pub fn fill_features(&self, facts: &PaymentFacts, out: &mut FeatureVector) {
        let f = facts;
        let attempt = self.attempt(f);
        out.set_int(Feature::AmountMinor, f.amount_minor);
        out.set_string(Feature::Currency, f.currency.alpha());
        out.set_string(Feature::Mcc, &f.mcc);
        out.set_string(Feature::MerchantCountry, &f.merchant_country);
        out.set_bool(Feature::AmountIsRound, attempt.round);
        out.set_bool(Feature::AmountIsTiny, attempt.tiny);
        out.set_int(
            Feature::UserAgeYears,
            f.profile.birth_date.as_deref().and_then(|b| age_years(b, f.now_ms)).unwrap_or(-1),
        );
        out.set_int(Feature::KycLevel, f.profile.kyc_level);
        out.set_string(Feature::UserRegion, &f.profile.region);
        out.set_int(Feature::LineAgeDays, (f.now_ms - f.line_opened_at_ms).max(0) / 86_400_000);
        out.set_int(Feature::MerchantAgeDays, (f.now_ms - f.merchant_created_at_ms).max(0) / 86_400_000);
        out.set_int(Feature::AvailableMinor, f.available_minor);
        out.set_int(Feature::LimitMinor, f.limit_minor);
        let used_after = f.limit_minor - f.available_minor + f.amount_minor;
        out.set_int(
            Feature::UtilizationAfterPct,
            if f.limit_minor > 0 { used_after.saturating_mul(100) / f.limit_minor } else { 100 },
        );
        let subjects =
            Subjects { user_id: &f.user_id, device_id: f.device_id.as_deref(), ip: f.ip, merchant_id: &f.merchant_id };
        let allow_user =
            self.lists.find(ListKind::Allow, crate::SubjectKind::User, subjects.user_id, f.now_ms).is_some();
        out.set_bool(Feature::UserAllowListed, allow_user);
        out.set_string(Feature::CreditBand, self.credit_band(&f.credit_line_id).unwrap_or(""));
        self.state.features(&attempt, &self.velocity_policy(f.now_ms), out);
    }

    /// The layers, from the features on. Pure: the same facts and features give the same
    /// record, which is what replay checks.
    pub fn evaluate_features(&self, facts: PaymentFacts, features: FeatureVector) -> DecisionRecord {
        self.evaluate_with(facts, features, self.scorer.as_ref())
    }

    /// [`Engine::evaluate_features`] with `scorer` in the score layer.
    fn evaluate_with(&self, facts: PaymentFacts, mut features: FeatureVector, scorer: &dyn Scorer) -> DecisionRecord {
        let (mut score, scorer_fallback) = match scorer.score(&features) {
            Ok(score) => (score, false),
            Err(_) => (HeuristicScorer.points(&features), true),
        };
        features.set_int(Feature::FraudScore, score.value);
        let f = &facts;
        let cur = f.currency;
        let policy = &self.policy;
        let mut signals: Vec<Signal> = Vec::new();
        let mut notices = Vec::new();
        // The most each refusing reason would let through, with the reason: the lower
        // amount offered is the least of them, and the explanation says which it is.
        let mut limit_candidates: Vec<(i64, &'static str)> = Vec::new();
        let mut wait_until: Option<i64> = None;
        let signal = |layer: Layer, code: &str, source: &str, args: Vec<(String, String)>| Signal {
            layer,
            reason_code: code.to_owned(),
            source: source.to_owned(),
            outcome: policy.outcome_for(code, &self.catalogue),
            mode: SignalMode::Live,
            args,
            points: None,
        };

        // 1. Regulatory policy (and a restriction already in force on the line).
        if let Some(r) = f.restriction.as_ref().filter(|r| r.until_ms > f.now_ms) {
            signals.push(signal(
                Layer::Policy,
                "line_restricted",
                &r.reason_code,
                vec![("until".into(), when(r.until_ms))],
            ));
            wait_until = Some(r.until_ms);
        }
        let today_minor = features.int(Feature::UserSumTodayMinor);
        for clause in &policy.clauses {
            let in_force = policy.in_force(clause, f.now_ms);
            if !in_force && !policy.upcoming(clause, f.now_ms) {
                continue;
            }
            type Hit = (&'static str, Vec<(String, String)>, Option<i64>, Option<i64>);
            let hit: Option<Hit> = match &clause.rule {
                CompiledRule::PaymentCap { currency, max_minor } if *currency == cur && f.amount_minor > *max_minor => {
                    Some(("policy_payment_cap", vec![("cap".into(), money(*max_minor, cur))], Some(*max_minor), None))
                }
                CompiledRule::DailyCap { currency, max_minor }
                    if *currency == cur && today_minor.saturating_add(f.amount_minor) > *max_minor =>
                {
                    let remaining = (*max_minor - today_minor).max(0);
                    Some((
                        "policy_daily_cap",
                        vec![
                            ("cap".into(), money(*max_minor, cur)),
                            ("remaining".into(), money(remaining, cur)),
                            ("spent".into(), money(today_minor, cur)),
                        ],
                        Some(remaining),
                        Some(policy.local_midnight_ms(f.now_ms) + 86_400_000),
                    ))
                }
                CompiledRule::BlockedMccs { mccs } if mccs.binary_search(&f.mcc).is_ok() => {
                    Some(("policy_mcc_blocked", vec![("mcc".into(), f.mcc.clone())], None, None))
                }
                CompiledRule::MinAge { years } => {
                    let age = features.int(Feature::UserAgeYears);
                    (age >= 0 && age < *years)
                        .then(|| ("policy_min_age", vec![("min_age".into(), years.to_string())], None, None))
                }
                CompiledRule::MinKycLevel { level, above } => {
                    let applies = match above {
                        Some((c, minor)) => *c == cur && f.amount_minor > *minor,
                        None => true,
                    };
                    (applies && f.profile.kyc_level < *level).then(|| {
                        ("policy_kyc_level", kyc_args(*level, f.profile.kyc_level, *above), above.map(|(_, m)| m), None)
                    })
                }
                CompiledRule::BlockedRegions { regions } => regions
                    .iter()
                    .any(|r| !f.profile.region.is_empty() && f.profile.region.starts_with(r.as_str()))
                    .then(|| ("policy_region", vec![("region".into(), f.profile.region.clone())], None, None)),
                _ => None,
            };
            let Some((code, args, limit, wait)) = hit else { continue };
            if in_force {
                limit_candidates.extend(limit.map(|m| (m, code)));
                wait_until = wait_until.max(wait);
                signals.push(signal(Layer::Policy, code, &clause.id, args));
            } else {
                // Users hear about a rule before it bites, not from a declined payment.
                let args_ref: Vec<(&str, String)> = args.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                let message = |language| self.catalogue.reason(language, code, &args_ref).unwrap_or_default();
                let when_text = when(clause.from_ms);
                notices.push(Notice {
                    clause_id: clause.id.clone(),
                    reason_code: code.to_owned(),
                    effective_from_ms: clause.from_ms,
                    explanation: Explanation {
                        en: format!("From {when_text}: {}", message(Language::En)),
                        zh: format!("自 {when_text} 起：{}", message(Language::Zh)),
                    },
                });
            }
        }

        // 2. Lists.
        let subjects =
            Subjects { user_id: &f.user_id, device_id: f.device_id.as_deref(), ip: f.ip, merchant_id: &f.merchant_id };
        for entry in self.lists.matches(ListKind::Deny, &subjects, f.now_ms) {
            let code = match entry.subject_kind {
                crate::SubjectKind::User => "deny_listed_user",
                crate::SubjectKind::Device => "deny_listed_device",
                crate::SubjectKind::Ip => "deny_listed_ip",
                crate::SubjectKind::Merchant => "deny_listed_merchant",
            };
            signals.push(signal(Layer::Lists, code, &entry.id, vec![]));
        }
        let allowed: Vec<crate::SubjectKind> =
            self.lists.matches(ListKind::Allow, &subjects, f.now_ms).iter().map(|e| e.subject_kind).collect();

        // 3–5. Rules (behaviour, environment, score, credit), in layer order.
        let mut rule_errors = Vec::new();
        let mut rule_points = 0i64;
        let trusted = features.bool(Feature::DeviceTrusted);
        let mut rule_signals: Vec<Signal> = Vec::new();
        for rule in &self.rules.rules {
            let d = &rule.definition;
            match rule.evaluate(&features) {
                Ok(false) => continue,
                Err(e) => {
                    rule_errors.push(RuleErrorRecord { rule: format!("{}@{}", d.id, d.version), error: e.to_string() });
                    continue;
                }
                Ok(true) => {}
            }
            let (outcome, points) = match d.effect {
                Effect::Outcome(o) => (o, None),
                Effect::Score(p) => (Outcome::Approve, Some(p)),
            };
            let mut mode = if d.mode == RuleMode::Shadow { SignalMode::Shadow } else { SignalMode::Live };
            let environment_only = rule.features.iter().any(|x| x.class() == FeatureClass::Environment)
                && rule.features.iter().all(|x| matches!(x.class(), FeatureClass::Environment | FeatureClass::Payment));
            let mut outcome = outcome;
            if mode == SignalMode::Live && trusted && environment_only && outcome > Outcome::StepUp {
                mode = SignalMode::Capped;
                outcome = Outcome::StepUp;
            }
            if mode == SignalMode::Live {
                if let Some(p) = points {
                    rule_points += p;
                }
            }
            rule_signals.push(Signal {
                layer: d.layer,
                reason_code: d.reason_code.clone(),
                source: format!("{}@{}", d.id, d.version),
                outcome,
                mode,
                args: vec![],
                points,
            });
        }
        rule_signals.sort_by_key(|s| s.layer);
        signals.extend(rule_signals);

        // 5. Fraud score and the engine's own checks.
        let fraud_score = features.int(Feature::FraudScore);
        let risk_points = fraud_score + rule_points;
        let t = &policy.document.thresholds;
        let score_source = format!("{}@{}", self.scorer.name(), self.scorer.version());
        // The features that pushed the score up most, on the signal: what an analyst or an
        // appeal reads first.
        if risk_points >= t.step_up_score {
            explain_score(scorer, &features, &mut score, scorer_fallback);
        }
        let factors = || -> Vec<(String, String)> {
            let top: Vec<&str> =
                score.contributions.iter().filter(|c| c.points > 0).take(3).map(|c| c.feature.as_str()).collect();
            if top.is_empty() {
                vec![]
            } else {
                vec![("factors".into(), top.join(", "))]
            }
        };
        if risk_points >= t.decline_score {
            signals.push(signal(Layer::Score, "fraud_score_high", &score_source, factors()));
        } else if risk_points >= t.step_up_score {
            signals.push(signal(Layer::Score, "fraud_score_elevated", &score_source, factors()));
        }
        let failed = features.int(Feature::UserFailedChallenges24h);
        if failed >= policy.document.restriction.failed_challenges_to_restrict {
            signals.push(signal(Layer::Score, "repeated_challenge_failures", "challenges", vec![]));
        }
        if f.amount_minor > f.available_minor {
            limit_candidates.push((f.available_minor, "insufficient_credit"));
            signals.push(signal(
                Layer::Credit,
                "insufficient_credit",
                "credit_line",
                vec![
                    ("available".into(), money(f.available_minor, cur)),
                    ("amount".into(), money(f.amount_minor, cur)),
                    ("limit".into(), money(f.limit_minor, cur)),
                ],
            ));
        }
        // The line's credit band: how much of a young low-band line may be used in a day
        // where the shopper pays a merchant for the first time (the policy's
        // `credit_band_caps`). Read from the features, so a replay decides as it was decided.
        let band = features.string(Feature::CreditBand);
        if !band.is_empty() {
            let today = features.int(Feature::UserSumTodayMinor);
            let limit = features.int(Feature::LimitMinor);
            for cap in &policy.document.credit_band_caps {
                let applies = cap.bands.iter().any(|b| b == band)
                    && features.int(Feature::LineAgeDays) < cap.line_age_days_under
                    && (!cap.first_visit_only || features.bool(Feature::MerchantFirstVisit));
                let allowed = (i128::from(limit) * i128::from(cap.daily_share_of_limit_pct) / 100) as i64;
                if !applies || today.saturating_add(features.int(Feature::AmountMinor)) <= allowed {
                    continue;
                }
                let remaining = allowed.saturating_sub(today).max(0);
                limit_candidates.push((remaining, "band_spend_cap"));
                wait_until = wait_until.max(Some(policy.local_midnight_ms(f.now_ms) + 86_400_000));
                signals.push(signal(
                    Layer::Credit,
                    "band_spend_cap",
                    &format!("credit_band_caps/{}", cap.id),
                    vec![
                        ("band".into(), band.to_owned()),
                        ("cap".into(), money(allowed, cur)),
                        ("remaining".into(), money(remaining, cur)),
                        ("pct".into(), cap.daily_share_of_limit_pct.to_string()),
                        ("limit".into(), money(limit, cur)),
                        ("spent".into(), money(today, cur)),
                    ],
                ));
                break;
            }
        }

        // A line already restricted is not restricted again by each refused attempt: that
        // would push the end of the restriction back at every try, so it would never expire.
        if f.restriction.as_ref().is_some_and(|r| r.until_ms > f.now_ms) {
            for s in signals.iter_mut().filter(|s| s.outcome == Outcome::Restrict) {
                s.outcome = Outcome::Decline;
            }
        }

        // Allow lists: recorded, not counted, for the layers they vouch for.
        for s in signals.iter_mut() {
            let vouched = (allowed.contains(&crate::SubjectKind::User)
                && matches!(s.layer, Layer::Behaviour | Layer::Environment | Layer::Score))
                || ((allowed.contains(&crate::SubjectKind::Device) || allowed.contains(&crate::SubjectKind::Ip))
                    && s.layer == Layer::Environment)
                || (allowed.contains(&crate::SubjectKind::Merchant) && s.reason_code.starts_with("merchant_"));
            if vouched && s.counts() && s.reason_code != "repeated_challenge_failures" {
                s.mode = SignalMode::Suppressed;
            }
        }

        // A decision a person will read (anything but a plain approval) shows what moved the
        // score; an approval skips the cost of explaining it.
        if signals.iter().any(|s| s.counts() && s.outcome > Outcome::Approve) {
            explain_score(scorer, &features, &mut score, scorer_fallback);
        }
        let mut record = self.finish(
            facts,
            features,
            score,
            signals,
            notices,
            rule_errors,
            risk_points,
            limit_candidates,
            wait_until,
        );
        record.scorer_fallback = scorer_fallback;
        record
    }
}

/// Fills `score`'s contributions from `scorer` when it left them out (a model scores without
/// them). A fallback score is the heuristic's, already explained; a scorer that cannot explain
/// leaves them empty rather than failing a decision already made.
fn explain_score(scorer: &dyn Scorer, features: &FeatureVector, score: &mut Score, fallback: bool) {
    if score.contributions.is_empty() && !fallback {
        score.contributions = scorer.explain(features).unwrap_or_default();
    }
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        facts: PaymentFacts,
        features: FeatureVector,
        score: Score,
        signals: Vec<Signal>,
        notices: Vec<Notice>,
        rule_errors: Vec<RuleErrorRecord>,
        risk_points: i64,
        limit_candidates: Vec<(i64, &'static str)>,
        wait_until: Option<i64>,
    ) -> DecisionRecord {
        let f = &facts;
        let outcome = signals.iter().filter(|s| s.counts()).map(|s| s.outcome).max().unwrap_or(Outcome::Approve);
        let mut counted: Vec<&Signal> = signals.iter().filter(|s| s.counts() && s.outcome > Outcome::Approve).collect();
        counted.sort_by(|a, b| b.outcome.cmp(&a.outcome).then(a.layer.cmp(&b.layer)));
        let mut reason_codes: Vec<String> = Vec::new();
        for s in &counted {
            if !reason_codes.contains(&s.reason_code) {
                reason_codes.push(s.reason_code.clone());
            }
        }
        let mut reasons: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
        for code in &reason_codes {
            let args = counted
                .iter()
                .find(|s| &s.reason_code == code)
                .map(|s| s.args.iter().map(|(k, v)| (k.as_str(), v.clone())).collect())
                .unwrap_or_default();
            reasons.push((code.as_str(), args));
        }
        let restriction = &self.policy.document.restriction;
        let expires_at_ms = match outcome {
            Outcome::Restrict => Some(f.now_ms + restriction.duration_hours * 3_600_000),
            Outcome::StepUp => Some(f.now_ms + self.policy.document.trust.challenge_ttl_seconds * 1_000),
            Outcome::Decline => wait_until,
            Outcome::Approve => None,
        };
        // The ways out of the reasons that decided the outcome; milder reasons come along only
        // when they are what stands in the way next.
        let deciding: Vec<&str> =
            counted.iter().filter(|s| s.outcome == outcome).map(|s| s.reason_code.as_str()).collect();
        let line_restricted = reason_codes.iter().any(|c| c == "line_restricted");
        let ways = self.catalogue.ways_out(outcome, &deciding, line_restricted);
        let mut recovery = self.recovery(f, &features, outcome, &ways, &limit_candidates, wait_until, expires_at_ms);
        self.name_profile_step(f, &counted, &mut recovery);
        let explanation = if outcome == Outcome::Approve && reasons.is_empty() {
            self.approve_explanation.clone()
        } else {
            let until = expires_at_ms.filter(|_| outcome == Outcome::Restrict);
            let headline: Vec<(&str, String)> = until.map(|t| ("until", when(t))).into_iter().collect();
            // The figure of a lower amount is said with where it comes from.
            let notes: Vec<(&str, Vec<(&str, String)>)> = recovery
                .iter()
                .filter_map(|r| Some((r.max_amount_minor?, r.basis.clone()?)))
                .map(|(max, basis)| ("way-lower-amount", vec![("max", money(max, f.currency)), ("basis", basis)]))
                .collect();
            self.catalogue.explain_with(outcome, &headline, &reasons, &notes)
        };
        DecisionRecord {
            features,
            signals,
            rules_evaluated: self.rules.rules.len(),
            rule_errors,
            score,
            risk_points,
            versions: self.versions(),
            outcome,
            reason_codes,
            explanation,
            recovery,
            expires_at_ms,
            notices,
            latency_us: 0,
            scorer_fallback: false,
            challenger: None,
            facts,
        }
    }

    /// The ways out `ways` with the details each needs: the most a lower amount may be (the
    /// least any refusing reason lets through, else what the user usually pays, never more
    /// than the available credit) and where that figure comes from, when to try again, the
    /// appeal deadline. A lower amount that would not help, or repaying with nothing owed,
    /// is left out; a decline left with nothing offers a person's review.
    #[allow(clippy::too_many_arguments)]
    fn recovery(
        &self,
        f: &PaymentFacts,
        features: &FeatureVector,
        outcome: Outcome,
        ways: &[RecoveryKind],
        limit_candidates: &[(i64, &'static str)],
        wait_until: Option<i64>,
        expires_at_ms: Option<i64>,
    ) -> Vec<Recovery> {
        let appeal_ms = self.policy.document.restriction.appeal_days * 86_400_000;
        let mut recovery: Vec<Recovery> = Vec::new();
        for kind in ways {
            let mut r = Recovery::new(*kind);
            match kind {
                RecoveryKind::LowerAmount => {
                    let (max, basis) = limit_candidates.iter().copied().min().unwrap_or_else(|| {
                        // Amount-based behaviour signals: the user's usual range.
                        let usual = features
                            .int(Feature::UserMaxAmountMinor)
                            .max(features.int(Feature::UserAvgAmountMinor) * 2);
                        (usual, "usual_amount")
                    });
                    let (max, basis) =
                        if f.available_minor < max { (f.available_minor, "insufficient_credit") } else { (max, basis) };
                    if max <= 0 || max >= f.amount_minor {
                        continue;
                    }
                    r.max_amount_minor = Some(max);
                    r.basis = Some(basis.to_owned());
                }
                RecoveryKind::Wait => {
                    r.until_ms = match outcome {
                        Outcome::Restrict => expires_at_ms,
                        _ => wait_until.or(Some(f.now_ms + 3_600_000)),
                    };
                }
                RecoveryKind::Appeal => r.deadline_ms = Some(f.now_ms + appeal_ms),
                RecoveryKind::Repay if f.limit_minor - f.available_minor <= 0 => continue,
                _ => {}
            }
            recovery.push(r);
        }
        if outcome == Outcome::Decline && recovery.is_empty() {
            recovery.push(Recovery { deadline_ms: Some(f.now_ms + appeal_ms), ..Recovery::new(RecoveryKind::Appeal) });
        }
        recovery
    }

    /// The `complete_profile` way out of a `policy_kyc_level` refusal names the highest
    /// level any such clause asks for (`min_level`), the fields and the route. Only the
    /// details of the way out change, never which ways or the outcome.
    fn name_profile_step(&self, f: &PaymentFacts, counted: &[&Signal], recovery: &mut [Recovery]) {
        let needed = counted
            .iter()
            .filter(|s| s.reason_code == "policy_kyc_level")
            .filter_map(|s| s.args.iter().find(|(k, _)| k == "min_level")?.1.parse::<i64>().ok())
            .max();
        let Some(level) = needed else { return };
        for r in recovery.iter_mut().filter(|r| r.action == RecoveryKind::CompleteProfile) {
            r.profile_step(level, &self.policy.document, &f.credit_line_id);
        }
    }

    /// What still refuses a stepped-up payment once its challenge is passed: the signals of
    /// the layers a code does not answer (the regulatory policy, the lists, credit) that
    /// decline or restrict it, evaluated afresh, since caps, lists, restrictions and credit
    /// may have changed while the shopper looked for the code. Reads state only.
    pub fn refusals_after_challenge(&self, facts: PaymentFacts) -> Vec<Signal> {
        let record = self.evaluate(facts);
        record
            .signals
            .into_iter()
            .filter(|s| s.counts() && s.outcome >= Outcome::Decline)
            .filter(|s| matches!(s.layer, Layer::Policy | Layer::Lists | Layer::Credit))
            .collect()
    }

    /// The challenge a step-up decision asks for.
    pub fn challenge_method(record: &DecisionRecord) -> Option<ChallengeMethod> {
        if record.outcome != Outcome::StepUp {
            return None;
        }
        record.recovery.iter().find_map(|r| match r.action {
            RecoveryKind::OneTimeCode => Some(ChallengeMethod::OneTimeCode),
            RecoveryKind::Reauthenticate => Some(ChallengeMethod::Reauthenticate),
            _ => None,
        })
    }

    /// Re-runs a stored decision with the features it recorded and the engine's current
    /// policy, rules and scorer: what would be decided today. With unchanged versions the
    /// result must equal the record.
    pub fn replay(&self, record: &DecisionRecord) -> DecisionRecord {
        let features = record.features.clone();
        let mut replayed = self.evaluate_features(record.facts.clone(), features);
        replayed.latency_us = record.latency_us;
        replayed
    }
}

/// A whole multiple of 100 major units (100.00, 500.00, 2000.00).
pub fn is_round(amount_minor: i64, currency: Currency) -> bool {
    let unit = 10i64.pow(u32::from(currency.minor_unit_exponent())) * 100;
    amount_minor > 0 && amount_minor % unit == 0
}

/// The rule set that ships with Xiezhi (`crates/risk/rules/default.json`).
pub fn default_rules() -> &'static str {
    include_str!("../rules/default.json")
}
