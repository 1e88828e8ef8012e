//! The "complete your profile" way out (issue 14): the wallet submits the fields the
//! policy's `kyc_levels` requires for a level, and the line's `profile.kyc_level` is raised
//! to it, so a payment declined `policy_kyc_level` passes when tried again.
//!
//! The values are personal data. They are checked here and then dropped: the line keeps the
//! names of the fields and when they were recorded, never the values, and neither the
//! answer nor any log carries them ([`ProfileSubmission`]'s `Debug` shows names only).

use crate::access::Caller;
use crate::error::CoreError;
use crate::model::*;
use crate::restrictions::actor;
use crate::state::State;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xiezhi_risk::PolicyDocument;
use xiezhi_store::Batch;

/// The longest value a profile field may have, in characters.
pub const MAX_PROFILE_FIELD_VALUE_CHARS: usize = 256;
/// The most profile steps a line remembers (the oldest are dropped).
pub const MAX_PROFILE_STEPS: usize = 16;
/// The reason code a restriction lifted by a profile step must have been imposed for.
const KYC_CODE: &str = "policy_kyc_level";

/// `POST /v1/credit-lines/{id}/profile`: the level asked for and the fields it requires.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProfileSubmission {
    /// The KYC level to reach: one the policy's `kyc_levels` names (1 to 3).
    pub kyc_level: i64,
    /// Every field the level requires, by name, each a non-empty text of at most 256
    /// characters. Checked, never stored nor echoed.
    pub fields: BTreeMap<String, String>,
}

/// Names only: a submission may be logged with a command, its values never.
impl std::fmt::Debug for ProfileSubmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSubmission")
            .field("kyc_level", &self.kyc_level)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A profile step the line went through: which fields, for which level, when, by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileStep {
    pub kyc_level: i64,
    pub fields: Vec<String>,
    pub at_ms: i64,
    /// The key or token that submitted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// What a profile step answers: the line's level now and the fields recorded (names only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ProfileStepView {
    pub credit_line_id: String,
    /// The line's KYC level after the step (never lower than before).
    pub kyc_level: i64,
    pub previous_kyc_level: i64,
    /// The names of the fields recorded; their values are not kept.
    pub fields_recorded: Vec<String>,
    pub recorded_at: String,
    /// The restriction the step lifted: one imposed for the KYC level alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restriction_lifted: Option<String>,
}

fn rejected(fields: Vec<String>, message: String) -> CoreError {
    CoreError::ProfileRejected { fields, message }
}

/// A client's name for a field, cut short before it is quoted back.
fn quoted(name: &str) -> String {
    name.chars().take(64).collect()
}

/// The required field names of the submission's level, once every one is present,
/// non-empty and short enough, and nothing else is sent.
fn check_submission(policy: &PolicyDocument, s: &ProfileSubmission) -> Result<Vec<String>, CoreError> {
    let Some(required) = policy.kyc_fields(s.kyc_level) else {
        let levels: Vec<&str> = policy.kyc_levels.keys().map(String::as_str).collect();
        let message = match levels.is_empty() {
            true => "the policy names no profile fields for any KYC level: no profile step is offered".to_owned(),
            false => {
                format!("`kyc_level` {} is not one the policy asks fields for ({})", s.kyc_level, levels.join(", "))
            }
        };
        return Err(rejected(vec!["kyc_level".into()], message));
    };
    // A few names are enough to say what is wrong; the body bounds how many are sent.
    let unknown: Vec<String> = s
        .fields
        .keys()
        .filter(|k| !required.contains(k))
        .take(xiezhi_risk::policy::MAX_KYC_FIELDS)
        .map(|k| format!("fields.{}", quoted(k)))
        .collect();
    if !unknown.is_empty() {
        let message = format!("not fields of KYC level {}: {}", s.kyc_level, unknown.join(", "));
        return Err(rejected(unknown, message));
    }
    let missing: Vec<String> =
        required.iter().filter(|k| !s.fields.contains_key(*k)).map(|k| format!("fields.{k}")).collect();
    if !missing.is_empty() {
        return Err(rejected(missing.clone(), format!("required and missing: {}", missing.join(", "))));
    }
    let invalid: Vec<String> = s
        .fields
        .iter()
        .filter(|(_, v)| v.trim().is_empty() || v.chars().count() > MAX_PROFILE_FIELD_VALUE_CHARS)
        .map(|(k, _)| format!("fields.{k}"))
        .collect();
    if !invalid.is_empty() {
        let message =
            format!("empty or longer than {MAX_PROFILE_FIELD_VALUE_CHARS} characters: {}", invalid.join(", "));
        return Err(rejected(invalid, message));
    }
    Ok(required.to_vec())
}

impl State {
    /// Records a profile step on a line: raises its KYC level to the submitted one (never
    /// lowers it), keeps the field names and the time, and lifts a restriction in force
    /// that was imposed for the KYC level alone.
    pub(crate) fn complete_profile(
        &mut self,
        caller: &Caller,
        credit_line_id: &str,
        submission: ProfileSubmission,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let mut line = self
            .line_profiles
            .get(credit_line_id)
            .cloned()
            .ok_or_else(|| CoreError::CreditLineNotFound { id: credit_line_id.to_owned() })?;
        let fields = check_submission(&self.engine.policy().document, &submission)?;
        let level = submission.kyc_level;
        // The values go no further than the check.
        drop(submission);
        let previous = line.profile.kyc_level;
        line.profile.kyc_level = previous.max(level);
        let step = ProfileStep { kyc_level: level, fields: fields.clone(), at_ms: now_ms, by: Some(actor(caller)) };
        line.profile_steps.push(step);
        let excess = line.profile_steps.len().saturating_sub(MAX_PROFILE_STEPS);
        line.profile_steps.drain(..excess);
        let kyc_level = line.profile.kyc_level;
        self.save_line_profile(line, now_ms, out);
        let lifted = self.lift_on_profile(caller, credit_line_id, now_ms, out)?;
        let view = ProfileStepView {
            credit_line_id: credit_line_id.to_owned(),
            kyc_level,
            previous_kyc_level: previous,
            fields_recorded: fields,
            recorded_at: timestamp(now_ms),
            restriction_lifted: lifted,
        };
        Ok(Reply::Document(serde_json::to_value(view).unwrap_or_default()))
    }

    /// Lifts the restriction in force on the line when every reason it was imposed for is
    /// the KYC level, which the profile step has just answered. Returns its id.
    fn lift_on_profile(
        &mut self,
        caller: &Caller,
        credit_line_id: &str,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Option<String>, CoreError> {
        let Some(r) = self.active_restriction(credit_line_id, now_ms).cloned() else { return Ok(None) };
        if r.reason_codes.is_empty() || r.reason_codes.iter().any(|c| c != KYC_CODE) {
            return Ok(None);
        }
        let mut lifted = RestrictionEvent::new(RestrictionEventKind::Lifted, now_ms);
        lifted.cause = Some(LiftCause::ProfileCompleted);
        lifted.by = Some(actor(caller));
        lifted.reason = Some("profile_completed".into());
        let id = r.id.clone();
        self.lift(r, lifted, true, now_ms, out)?;
        Ok(Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission(level: i64, fields: &[(&str, &str)]) -> ProfileSubmission {
        ProfileSubmission {
            kyc_level: level,
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn policy() -> PolicyDocument {
        serde_json::from_str(xiezhi_risk::Policy::default_document()).expect("the shipped policy")
    }

    #[test]
    fn a_submission_is_checked_against_the_policy_and_its_debug_shows_names_only() {
        let full = [("full_name", "Li Lei"), ("id_number", "110101199003074578"), ("address", "Beijing")];
        assert_eq!(check_submission(&policy(), &submission(2, &full)).unwrap(), ["full_name", "id_number", "address"]);
        let fields_of = |s: ProfileSubmission| match check_submission(&policy(), &s) {
            Err(CoreError::ProfileRejected { fields, .. }) => fields,
            other => panic!("{other:?}"),
        };
        assert_eq!(fields_of(submission(2, &full[..2])), ["fields.address"]);
        assert_eq!(fields_of(submission(1, &full)), ["kyc_level"]);
        assert_eq!(fields_of(submission(2, &[full[0], full[1], ("address", "")])), ["fields.address"]);
        let debug = format!("{:?}", submission(2, &full));
        assert!(debug.contains("id_number") && !debug.contains("110101199003074578"), "{debug}");
    }
}
