//! `GET /v1/users/{user_id}/status`: can this user pay, and if not, why and what can they
//! do. One answer from the writer's memory: the user's lines, the restrictions in force on
//! them with their ways out, the user's appeals, and what the compensation fund owes or
//! paid them.

use crate::appeals::AppealView;
use crate::error::CoreError;
use crate::model::*;
use crate::state::State;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

/// The most lines one status answer shows (a user has one or two in practice).
pub const MAX_STATUS_LINES: usize = 50;

/// The language a user reads first: `Accept-Language` decides (there is no language in a
/// line's profile); Chinese when it names neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    Zh,
    En,
}

impl Language {
    /// The first of `zh` and `en` an `Accept-Language` header prefers (by `q`, then order).
    pub fn from_accept_language(header: Option<&str>) -> Language {
        let Some(header) = header else { return Language::default() };
        let mut best: Option<(f32, usize, Language)> = None;
        for (position, item) in header.split(',').take(32).enumerate() {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let language = match tag.split('-').next() {
                Some("zh") => Language::Zh,
                Some("en") => Language::En,
                _ => continue,
            };
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.trim().parse::<f32>().ok()))
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(bq, bp, _)| q > bq || (q == bq && position < bp)) {
                best = Some((q, position, language));
            }
        }
        best.map_or(Language::default(), |(_, _, language)| language)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }
}

/// An explanation with the user's language first (`{zh, en}` or `{en, zh}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalizedExplanation {
    pub first: Language,
    pub text: Explanation,
}

impl Serialize for LocalizedExplanation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Explanation", 2)?;
        let (zh, en) = (&self.text.zh, &self.text.en);
        match self.first {
            Language::Zh => {
                s.serialize_field("zh", zh)?;
                s.serialize_field("en", en)?;
            }
            Language::En => {
                s.serialize_field("en", en)?;
                s.serialize_field("zh", zh)?;
            }
        }
        s.end()
    }
}

impl<'de> Deserialize<'de> for LocalizedExplanation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<LocalizedExplanation, D::Error> {
        Ok(LocalizedExplanation { first: Language::default(), text: Explanation::deserialize(deserializer)? })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LineStatusView {
    pub credit_line_id: String,
    /// No restriction in force, not frozen, and credit available.
    pub can_pay: bool,
    pub available: String,
    pub limit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RestrictionStatusView {
    pub id: String,
    pub scope: RestrictionScope,
    pub reason_codes: Vec<String>,
    /// In the user's language first.
    #[cfg_attr(feature = "utoipa", schema(value_type = Explanation))]
    pub explanation: LocalizedExplanation,
    pub imposed_at: String,
    pub expires_at: String,
    /// What the user can do now: `verify_identity` (a challenge still open), `appeal`
    /// (before its deadline, when none is waiting), `wait` (until it ends).
    pub ways_out: Vec<RecoveryView>,
}

/// `GET /v1/users/{user_id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct UserStatusView {
    pub user_id: String,
    /// Whether any of the user's lines can pay.
    pub can_pay: bool,
    pub lines: Vec<LineStatusView>,
    pub restrictions: Vec<RestrictionStatusView>,
    pub appeals: Vec<AppealView>,
    /// What the compensation fund owes or paid the user (the newest first, at most 20).
    pub compensation: Vec<crate::fund::CompensationView>,
    /// Sent as `Content-Language`, not in the body.
    #[serde(skip)]
    pub language: Language,
}

impl State {
    /// The user's lines the caller may see: a wallet's own, or all of them.
    fn user_line_ids(&self, user_id: &str, wallet_id: Option<&str>) -> Vec<String> {
        let ids = self.user_lines.get(user_id).map(Vec::as_slice).unwrap_or_default();
        ids.iter()
            .filter(|id| {
                wallet_id.is_none_or(|w| self.line_profiles.get(*id).is_some_and(|p| p.wallet_id.as_deref() == Some(w)))
            })
            .take(MAX_STATUS_LINES)
            .cloned()
            .collect()
    }

    pub(crate) fn user_status(
        &self,
        user_id: &str,
        wallet_id: Option<&str>,
        language: Language,
        now_ms: i64,
    ) -> Result<Reply, CoreError> {
        let line_ids = self.user_line_ids(user_id, wallet_id);
        if line_ids.is_empty() {
            return Err(CoreError::UserNotFound { id: user_id.to_owned() });
        }
        let mut lines = Vec::with_capacity(line_ids.len());
        let mut restrictions = Vec::new();
        for id in &line_ids {
            let Some(line) = self.ledger.credit_line(id) else { continue };
            let restriction = self.active_restriction(id, now_ms);
            let can_pay = restriction.is_none() && !self.ledger.is_frozen(id) && line.available_minor() > 0;
            lines.push(LineStatusView {
                credit_line_id: id.clone(),
                can_pay,
                available: decimal(line.available_minor(), line.currency),
                limit: decimal(line.limit_minor(), line.currency),
            });
            if let Some(r) = restriction {
                restrictions.push(self.restriction_status(r, language, now_ms));
            }
        }
        Ok(Reply::UserStatus(Box::new(UserStatusView {
            user_id: user_id.to_owned(),
            can_pay: lines.iter().any(|l| l.can_pay),
            lines,
            restrictions,
            appeals: self.user_appeals(user_id),
            compensation: self.user_compensations(user_id, &line_ids),
            language,
        })))
    }

    fn restriction_status(&self, r: &Restriction, language: Language, now_ms: i64) -> RestrictionStatusView {
        let way = RecoveryView::new;
        let mut ways_out = Vec::new();
        let challenge = r.challenge_id.as_ref().and_then(|id| self.challenges.get(id));
        if let Some(c) = challenge.filter(|c| c.status == ChallengeStatus::Pending && c.expires_at_ms > now_ms) {
            ways_out.push(RecoveryView { challenge_id: Some(c.id.clone()), ..way(RecoveryKind::VerifyIdentity) });
        }
        if now_ms <= r.appeal_deadline_ms && !self.open_appeal_on(&r.id) {
            ways_out
                .push(RecoveryView { deadline: Some(timestamp(r.appeal_deadline_ms)), ..way(RecoveryKind::Appeal) });
        }
        ways_out.push(RecoveryView { until: Some(timestamp(r.until_ms)), ..way(RecoveryKind::Wait) });
        RestrictionStatusView {
            id: r.id.clone(),
            scope: r.scope,
            reason_codes: r.reason_codes.clone(),
            explanation: LocalizedExplanation { first: language, text: r.explanation.clone() },
            imposed_at: timestamp(r.created_at_ms),
            expires_at: timestamp(r.until_ms),
            ways_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_of_zh_and_en() {
        let pick = |h: Option<&str>| Language::from_accept_language(h);
        assert_eq!(pick(None), Language::Zh);
        assert_eq!(pick(Some("en-US,en;q=0.9,zh-CN;q=0.8")), Language::En);
        assert_eq!(pick(Some("fr, zh-TW;q=0.5, en;q=0.4")), Language::Zh);
        assert_eq!(pick(Some("en;q=0.2, zh;q=0.7")), Language::Zh);
        assert_eq!(pick(Some("en;q=0, de")), Language::Zh, "q=0 means not wanted; nothing known: the default");
        assert_eq!(pick(Some(";;;,,q=;")), Language::Zh);
    }

    #[test]
    fn the_users_language_comes_first() {
        let text = Explanation { zh: "中".into(), en: "en".into() };
        let en = serde_json::to_string(&LocalizedExplanation { first: Language::En, text: text.clone() }).unwrap();
        assert_eq!(en, r#"{"en":"en","zh":"中"}"#);
        let zh = serde_json::to_string(&LocalizedExplanation { first: Language::Zh, text }).unwrap();
        assert_eq!(zh, r#"{"zh":"中","en":"en"}"#);
    }
}
