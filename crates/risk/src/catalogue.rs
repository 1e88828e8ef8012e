//! The reason-code catalogue: every code the engine can give, what the user reads about it
//! in zh and en (Fluent files under `locales/`), and the ways out. Codes are a contract:
//! clients and operators' scripts match on them, so a code is never renamed, only added.

use crate::rules::Layer;
use crate::Outcome;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a user can do about a decision. Serialised as `{"action": "...", ...}` with the
/// details each action needs filled in by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecoveryKind {
    /// Enter the one-time code sent to the registered phone (`POST /v1/challenges/{id}`).
    OneTimeCode,
    /// Log in again on this device and confirm with the code sent (`POST /v1/challenges/{id}`).
    Reauthenticate,
    /// Pay a lower amount, at most `max_amount`.
    LowerAmount,
    /// Repay part of the balance to free credit.
    Repay,
    /// Try again after `until`.
    Wait,
    /// Raise the identity verification level or complete the profile.
    CompleteProfile,
    /// Ask a person to review the decision, before `deadline`.
    Appeal,
    /// Pay with another method; credit cannot be used here.
    UseOtherPaymentMethod,
    /// Verify identity to lift a restriction (`POST /v1/challenges/{id}`).
    VerifyIdentity,
}

impl RecoveryKind {
    /// Whether this way out can be offered on a decision with `outcome`. A step-up's way
    /// out is its challenge (or paying less, later or otherwise, which avoids it): nobody
    /// needs to appeal a payment that is only waiting for a code, and there is no
    /// restriction to verify away. A decline opens no challenge, so no code is offered; it
    /// can point at the restriction's lifting challenge only when a restriction in force is
    /// why (`line_restricted`). A restriction is lifted by verifying, by a person on appeal,
    /// or by time; paying less or repaying does not lift it.
    pub fn fits(self, outcome: Outcome, line_restricted: bool) -> bool {
        match outcome {
            Outcome::Approve => false,
            Outcome::StepUp => {
                matches!(self, OneTimeCode | Reauthenticate | LowerAmount | Wait | UseOtherPaymentMethod)
            }
            Outcome::Decline => match self {
                OneTimeCode | Reauthenticate => false,
                VerifyIdentity => line_restricted,
                _ => true,
            },
            Outcome::Restrict => matches!(self, VerifyIdentity | Appeal | Wait | UseOtherPaymentMethod),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReasonCode {
    pub code: &'static str,
    pub layer: Layer,
    /// The outcome the default policy gives this code; the active policy may override it.
    pub default_outcome: Outcome,
    pub recovery: &'static [RecoveryKind],
}

use Outcome::*;
use RecoveryKind::*;

/// The catalogue. Adding a code means adding a line here and a message in both locales
/// (a test checks every code has both).
pub const REASON_CODES: &[ReasonCode] = &[
    rc("line_restricted", Layer::Policy, Decline, &[VerifyIdentity, Appeal, Wait]),
    rc("policy_payment_cap", Layer::Policy, Decline, &[LowerAmount]),
    rc("policy_daily_cap", Layer::Policy, Decline, &[LowerAmount, Wait]),
    rc("policy_mcc_blocked", Layer::Policy, Decline, &[UseOtherPaymentMethod]),
    rc("policy_min_age", Layer::Policy, Decline, &[UseOtherPaymentMethod, CompleteProfile]),
    rc("policy_kyc_level", Layer::Policy, Decline, &[CompleteProfile]),
    rc("policy_region", Layer::Policy, Decline, &[UseOtherPaymentMethod]),
    rc("deny_listed_user", Layer::Lists, Restrict, &[Appeal]),
    rc("deny_listed_device", Layer::Lists, Decline, &[Appeal]),
    rc("deny_listed_ip", Layer::Lists, StepUp, &[OneTimeCode, Appeal]),
    rc("deny_listed_merchant", Layer::Lists, Decline, &[UseOtherPaymentMethod]),
    rc("velocity_burst", Layer::Behaviour, StepUp, &[OneTimeCode, Wait]),
    rc("card_testing", Layer::Behaviour, Decline, &[Wait, Appeal]),
    rc("spend_velocity", Layer::Behaviour, StepUp, &[OneTimeCode, LowerAmount]),
    rc("amount_unusual", Layer::Behaviour, StepUp, &[OneTimeCode, LowerAmount]),
    rc("merchant_cash_out_pattern", Layer::Behaviour, Decline, &[UseOtherPaymentMethod, Appeal]),
    rc("merchant_qr_suspicious", Layer::Behaviour, StepUp, &[OneTimeCode, UseOtherPaymentMethod]),
    rc("new_device_high_amount", Layer::Environment, StepUp, &[OneTimeCode, LowerAmount]),
    rc("device_shared", Layer::Environment, Decline, &[Appeal]),
    rc("ip_changed", Layer::Environment, StepUp, &[Reauthenticate]),
    rc("ip_shared", Layer::Environment, StepUp, &[OneTimeCode]),
    rc("account_takeover_suspected", Layer::Environment, Restrict, &[VerifyIdentity, Appeal]),
    rc("fraud_score_elevated", Layer::Score, StepUp, &[OneTimeCode]),
    rc("fraud_score_high", Layer::Score, Decline, &[Appeal]),
    rc("challenge_failed", Layer::Score, Decline, &[Wait, Appeal]),
    rc("repeated_challenge_failures", Layer::Score, Restrict, &[VerifyIdentity, Appeal]),
    rc("new_line_spend_limit", Layer::Credit, Decline, &[LowerAmount, Wait]),
    rc("insufficient_credit", Layer::Credit, Decline, &[LowerAmount, Repay]),
    // A young line in a low credit band, held to a share of its limit a day where the
    // shopper pays a merchant for the first time (policy `credit_band_caps`).
    rc("band_spend_cap", Layer::Credit, Decline, &[LowerAmount, Wait]),
    // Credit score reasons (adverse action): what cost an applicant the most points.
    rc("credit_history_weak", Layer::Credit, Decline, &[Appeal]),
    rc("credit_amount_high", Layer::Credit, Decline, &[LowerAmount, Appeal]),
    rc("credit_term_long", Layer::Credit, Decline, &[Appeal]),
    rc("credit_income_low", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_savings_low", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_employment_short", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_debt_high", Layer::Credit, Decline, &[Repay, Appeal]),
    rc("credit_utilization_high", Layer::Credit, Decline, &[Repay, Appeal]),
    rc("credit_recent_inquiries", Layer::Credit, Decline, &[Wait, Appeal]),
    rc("credit_profile_other", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_purpose", Layer::Credit, Decline, &[Appeal]),
    rc("credit_housing", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_residence_short", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_guarantor_none", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_employment_type", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_phone_unregistered", Layer::Credit, Decline, &[CompleteProfile, Appeal]),
    rc("credit_dependants", Layer::Credit, Decline, &[Appeal]),
];

const fn rc(
    code: &'static str,
    layer: Layer,
    default_outcome: Outcome,
    recovery: &'static [RecoveryKind],
) -> ReasonCode {
    ReasonCode { code, layer, default_outcome, recovery }
}

const EN: &str = include_str!("../locales/en.ftl");
const ZH: &str = include_str!("../locales/zh.ftl");

/// A user-facing explanation in both languages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Explanation {
    pub zh: String,
    pub en: String,
}

pub struct Catalogue {
    codes: BTreeMap<&'static str, ReasonCode>,
    en: FluentBundle<FluentResource>,
    zh: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue").field("codes", &self.codes.len()).finish()
    }
}

/// Locale text that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("the {locale} messages do not parse: {message}")]
    Parse { locale: &'static str, message: String },
    #[error("the {locale} messages define an id twice: {message}")]
    Duplicate { locale: &'static str, message: String },
}

fn bundle(locale: &'static str, source: &str) -> Result<FluentBundle<FluentResource>, CatalogueError> {
    let langid: unic_langid::LanguageIdentifier = locale.parse().expect("locale ids are constants");
    let mut bundle = FluentBundle::new_concurrent(vec![langid]);
    // Explanations are plain text for apps and SMS; no bidi isolation marks.
    bundle.set_use_isolating(false);
    let resource = FluentResource::try_new(source.to_owned())
        .map_err(|(_, errors)| CatalogueError::Parse { locale, message: format!("{errors:?}") })?;
    bundle
        .add_resource(resource)
        .map_err(|errors| CatalogueError::Duplicate { locale, message: format!("{errors:?}") })?;
    Ok(bundle)
}

impl Default for Catalogue {
    fn default() -> Catalogue {
        Catalogue::new()
    }
}

impl Catalogue {
    pub fn new() -> Catalogue {
        Catalogue::from_sources(EN, ZH).expect("the shipped locale files parse")
    }

    /// The catalogue with other locale text (Fluent), e.g. to check a translation before
    /// it ships.
    pub fn from_sources(en: &str, zh: &str) -> Result<Catalogue, CatalogueError> {
        let codes = REASON_CODES.iter().map(|c| (c.code, *c)).collect();
        Ok(Catalogue { codes, en: bundle("en", en)?, zh: bundle("zh-CN", zh)? })
    }

    /// The shipped Fluent source of one language.
    pub fn source(language: Language) -> &'static str {
        match language {
            Language::En => EN,
            Language::Zh => ZH,
        }
    }

    pub fn contains(&self, code: &str) -> bool {
        self.codes.contains_key(code)
    }

    pub fn get(&self, code: &str) -> Option<&ReasonCode> {
        self.codes.get(code)
    }

    pub fn codes(&self) -> impl Iterator<Item = &ReasonCode> {
        self.codes.values()
    }

    /// One message in one language, or `None` when the locale lacks it or an argument it
    /// quotes is missing.
    pub fn message(&self, language: Language, id: &str, args: &[(&str, String)]) -> Option<String> {
        self.format(language, id, None, args)
    }

    /// A message's value, or one of its attributes (`attribute`), formatted; `None` when
    /// either is missing or formatting reports an error.
    fn format(&self, language: Language, id: &str, attribute: Option<&str>, args: &[(&str, String)]) -> Option<String> {
        let bundle = match language {
            Language::En => &self.en,
            Language::Zh => &self.zh,
        };
        let message = bundle.get_message(id)?;
        let pattern = match attribute {
            Some(name) => message.get_attribute(name)?.value(),
            None => message.value()?,
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        let mut errors = vec![];
        let text = bundle.format_pattern(pattern, Some(&fluent_args), &mut errors);
        errors.is_empty().then(|| text.into_owned())
    }

    /// One message in both languages (inbox messages, notices).
    pub fn both(&self, id: &str, args: &[(&str, String)]) -> Explanation {
        Explanation {
            en: self.message(Language::En, id, args).unwrap_or_else(|| id.to_owned()),
            zh: self.message(Language::Zh, id, args).unwrap_or_else(|| id.to_owned()),
        }
    }

    /// The sentence for one reason code (Fluent ids spell `_` as `-`).
    pub fn reason(&self, language: Language, code: &str, args: &[(&str, String)]) -> Option<String> {
        self.message(language, &code.replace('_', "-"), args)
    }

    /// The sentence for one reason code given under `outcome`: the message's attribute named
    /// after the outcome (`account-takeover-suspected` `.step-up`) where what the user reads
    /// differs by outcome, else its value. A reason can come under any outcome (the policy's
    /// severity and the rules choose it, and a reason is listed under a harsher outcome that
    /// another reason gave), and "we paused credit payments" beside "one more check" is false.
    pub fn reason_under(
        &self,
        language: Language,
        code: &str,
        outcome: Outcome,
        args: &[(&str, String)],
    ) -> Option<String> {
        let id = code.replace('_', "-");
        self.format(language, &id, Some(outcome.fluent_id()), args).or_else(|| self.format(language, &id, None, args))
    }

    /// The headline of an outcome (`outcome-restrict` quotes `$until`); without the
    /// arguments it quotes, its `.plain` attribute.
    pub fn headline(&self, language: Language, outcome: Outcome, args: &[(&str, String)]) -> Option<String> {
        let id = format!("outcome-{}", outcome.fluent_id());
        self.format(language, &id, None, args).or_else(|| self.format(language, &id, Some("plain"), &[]))
    }

    /// The explanation of a decision: the outcome's headline, then one sentence per reason.
    pub fn explain(&self, outcome: Outcome, reasons: &[(&str, Vec<(&str, String)>)]) -> Explanation {
        self.explain_with(outcome, &[], reasons, &[])
    }

    /// [`Catalogue::explain`] with the headline's arguments (a restriction's end) and
    /// closing sentences after the reasons (`notes`: message ids with their arguments, such
    /// as where the figure of a lower amount comes from).
    pub fn explain_with(
        &self,
        outcome: Outcome,
        headline: &[(&str, String)],
        reasons: &[(&str, Vec<(&str, String)>)],
        notes: &[(&str, Vec<(&str, String)>)],
    ) -> Explanation {
        let one = |language: Language| {
            let mut text = self.headline(language, outcome, headline).unwrap_or_default();
            let mut add = |sentence: String| {
                if !text.is_empty() && language == Language::En {
                    text.push(' ');
                }
                text.push_str(&sentence);
            };
            for (code, args) in reasons {
                // Without the arguments it quotes (a line frozen by a repair has no end to
                // quote), a message's `.plain` sentence rather than its raw id.
                add(self
                    .reason_under(language, code, outcome, args)
                    .or_else(|| self.reason_under(language, code, outcome, &[]))
                    .or_else(|| self.format(language, &code.replace('_', "-"), Some("plain"), &[]))
                    .unwrap_or_else(|| code.to_string()));
            }
            for (id, args) in notes {
                add(self.message(language, id, args).unwrap_or_default());
            }
            text
        };
        Explanation { en: one(Language::En), zh: one(Language::Zh) }
    }

    /// The outcomes a decision can have while it gives `code` as a reason: every outcome
    /// but approval. Derived rather than listed, because nothing narrower holds: the
    /// policy's `severity` may give any code any outcome, a rule may ask for any outcome
    /// but approval, and a decision lists milder reasons under the harshest one. The code's
    /// default outcome is always among them.
    pub fn outcomes_for(&self, code: &str) -> Vec<Outcome> {
        let default = self.codes.get(code).map(|c| c.default_outcome);
        Outcome::ALL.into_iter().filter(|o| *o > Outcome::Approve || default == Some(*o)).collect()
    }

    /// The ways out of a decision with `outcome` whose deciding reasons are `codes`, in the
    /// catalogue's order, keeping only those that fit the outcome ([`RecoveryKind::fits`];
    /// `line_restricted`: a restriction in force is among the reasons). A step-up always
    /// offers its challenge first; a restriction always offers what lifts it (verifying,
    /// an appeal, its end); a decline with nothing left offers a person's review.
    pub fn ways_out(&self, outcome: Outcome, codes: &[&str], line_restricted: bool) -> Vec<RecoveryKind> {
        let mut ways: Vec<RecoveryKind> = Vec::new();
        for kind in codes.iter().filter_map(|c| self.codes.get(c)).flat_map(|c| c.recovery.iter()) {
            if kind.fits(outcome, line_restricted) && !ways.contains(kind) {
                ways.push(*kind);
            }
        }
        let challenge = |w: &RecoveryKind| matches!(w, OneTimeCode | Reauthenticate);
        match outcome {
            // The challenge comes first: it is what the payment waits for.
            Outcome::StepUp if ways.iter().any(challenge) => ways.sort_by_key(|w| !challenge(w)),
            Outcome::StepUp => ways.insert(0, OneTimeCode),
            Outcome::Restrict => {
                for kind in [VerifyIdentity, Appeal, Wait] {
                    if !ways.contains(&kind) {
                        ways.push(kind);
                    }
                }
            }
            Outcome::Decline if ways.is_empty() => ways.push(Appeal),
            _ => {}
        }
        ways
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Zh,
}

/// The protected attribute a model feature describes, by its name: age, sex (and marital
/// status, which some data joins to it), nationality or foreign-worker status, and the
/// other grounds credit law forbids deciding on. A credit model reading one is refused
/// (`credit::CreditModel`), so no reason ever comes from one. Matched on whole words of
/// the name (`age_in_years`, `AGE`, `personal_status_and_sex`), never inside one
/// (`installment_rate_in_percentage_of_disposable_income` is not about age).
pub fn protected_attribute(feature: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &str)] = &[
        ("personal_status", "sex and marital status"),
        ("age", "age"),
        ("birth", "age"),
        ("sex", "sex"),
        ("gender", "sex"),
        ("marital", "marital status"),
        ("marriage", "marital status"),
        ("nationality", "nationality"),
        ("citizenship", "nationality"),
        ("foreign", "foreign-worker status"),
        ("race", "race"),
        ("ethnicity", "race"),
        ("religion", "religion"),
    ];
    let name = feature.to_ascii_lowercase();
    let words: Vec<&str> = name.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    WORDS.iter().find_map(|(key, attribute)| {
        let parts: Vec<&str> = key.split('_').collect();
        words.windows(parts.len()).any(|w| w == parts.as_slice()).then_some(*attribute)
    })
}

/// The credit reason code for a model feature, by what the feature measures (its name):
/// how a scorecard's or a credit model's costliest features become an adverse-action
/// notice a person can read. Checked in order; the first match wins. A protected attribute
/// ([`protected_attribute`]) gets `credit_profile_other`, which names nothing: it should
/// never be a reason at all, and a served credit model cannot read one.
pub fn credit_reason_for_feature(feature: &str) -> &'static str {
    const RULES: &[(&[&str], &str)] = &[
        (&["inq"], "credit_recent_inquiries"),
        (&["purpose"], "credit_purpose"),
        (&["guarantor", "other_debtors"], "credit_guarantor_none"),
        // `months` is the AER data's months at the current address.
        (&["residence", "months"], "credit_residence_short"),
        (&["housing", "home"], "credit_housing"),
        (&["telephone", "phone"], "credit_phone_unregistered"),
        (&["maintenance", "dependents", "dependants"], "credit_dependants"),
        (&["util", "limit_bal", "bill", "revol"], "credit_utilization_high"),
        (&["history", "records", "delinq", "late", "chgoff", "default", "reports"], "credit_history_weak"),
        (&["debt", "bal_il", "installment", "liable", "existing_credits", "majorcards"], "credit_debt_high"),
        (&["income", "annual_inc", "salary"], "credit_income_low"),
        (&["saving", "assets", "checking", "property", "owner"], "credit_savings_low"),
        (&["job", "selfemp"], "credit_employment_type"),
        (&["employ", "seniority", "emp_", "noemp"], "credit_employment_short"),
        (&["duration", "term", "time"], "credit_term_long"),
        (&["amount", "amnt", "appv", "gross", "price", "funded"], "credit_amount_high"),
    ];
    if protected_attribute(feature).is_some() {
        return "credit_profile_other";
    }
    let name = feature.to_ascii_lowercase();
    RULES
        .iter()
        .find(|(keys, _)| keys.iter().any(|k| name.contains(k)))
        .map_or("credit_profile_other", |(_, code)| code)
}

#[cfg(test)]
mod credit_reason_tests {
    use super::*;

    #[test]
    fn features_map_to_readable_credit_reasons() {
        for (feature, code) in [
            ("credit_history", "credit_history_weak"),
            ("status_of_existing_checking_account", "credit_savings_low"),
            ("duration_in_month", "credit_term_long"),
            ("credit_amount", "credit_amount_high"),
            ("present_employment_since", "credit_employment_short"),
            ("Income", "credit_income_low"),
            ("revol_util", "credit_utilization_high"),
            ("inq_last_6mths", "credit_recent_inquiries"),
            ("Records", "credit_history_weak"),
            ("purpose", "credit_purpose"),
            ("housing", "credit_housing"),
            ("present_residence_since", "credit_residence_short"),
            ("other_debtors_or_guarantors", "credit_guarantor_none"),
            ("job", "credit_employment_type"),
            ("other_installment_plans", "credit_debt_high"),
            ("age_in_years", "credit_profile_other"),
        ] {
            assert_eq!(credit_reason_for_feature(feature), code, "{feature}");
        }
        for (feature, attribute) in [
            ("age_in_years", Some("age")),
            ("AGE", Some("age")),
            ("user_age_years", Some("age")),
            ("personal_status_and_sex", Some("sex and marital status")),
            ("foreign_worker", Some("foreign-worker status")),
            ("MARRIAGE", Some("marital status")),
            ("installment_rate_in_percentage_of_disposable_income", None),
            ("mortgage_usage", None),
            ("Seniority", None),
        ] {
            assert_eq!(protected_attribute(feature), attribute, "{feature}");
        }
        let catalogue = Catalogue::new();
        for code in REASON_CODES.iter().filter(|c| c.code.starts_with("credit_")) {
            for language in [Language::En, Language::Zh] {
                assert!(catalogue.reason(language, code.code, &[]).is_some(), "{} has no {language:?} text", code.code);
            }
        }
    }
}
