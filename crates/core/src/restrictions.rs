//! Restrictions as records: each has an id, a scope, its reason codes, who or what imposed
//! it, when it ends (never later than the policy allows) and its history. They lift at their
//! end (the writer's sweep, on the service clock), when their challenge is passed, when an
//! appeal is overturned or escalates, or when an operator lifts one with a reason; every
//! lift is written in the same batch as its cause.
//!
//! All restrictions are held in memory (a few hundred bytes each; a line is restricted only
//! after a `restrict` decision), like merchants and line profiles: the writer reads them on
//! every payment of a restricted line and lists them without a store scan.

use crate::access::Caller;
use crate::error::CoreError;
use crate::model::*;
use crate::state::{new_id, State};
use serde::{Deserialize, Serialize};
use xiezhi_risk::{DecisionRecord, SignalMode};
use xiezhi_store::{Batch, RecordKind};

/// The most restrictions one page of `GET /v1/restrictions` lists.
pub const MAX_PAGE: usize = 500;
/// Listed when a request names no `limit`.
pub const DEFAULT_PAGE: usize = 100;
/// The most records one listing request looks at before it answers with what it found and
/// a cursor to go on from: a selective filter never holds the writer for long.
pub const MAX_SCANNED_PER_PAGE: usize = 100_000;
/// The longest reason an operator gives for a lift, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// `status` in `GET /v1/restrictions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RestrictionStatus {
    Active,
    Lifted,
}

/// Which restrictions `GET /v1/restrictions` lists, oldest first from after `cursor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestrictionQuery {
    pub status: Option<RestrictionStatus>,
    pub credit_line_id: Option<String>,
    pub user_id: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `POST /v1/restrictions/{id}/lift`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LiftRequest {
    /// Why, for the record (1 to 500 characters): kept in the restriction's history.
    #[cfg_attr(
        feature = "utoipa",
        schema(min_length = 1, max_length = 500, example = "customer called; verified by phone")
    )]
    pub reason: String,
}

/// One event of a restriction's history, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RestrictionEventView {
    pub kind: RestrictionEventKind,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<LiftCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appeal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AppealOutcome>,
}

/// A restriction with everything recorded about it (`GET /v1/restrictions/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RestrictionRecordView {
    pub id: String,
    pub status: RestrictionStatus,
    pub credit_line_id: String,
    pub user_id: String,
    pub scope: RestrictionScope,
    pub reason_codes: Vec<String>,
    pub explanation: Explanation,
    pub imposed_by: ImposedBy,
    pub imposed_at: String,
    pub expires_at: String,
    pub appeal_deadline: String,
    pub lifted_at: Option<String>,
    /// The payment whose decision imposed it.
    pub payment_id: Option<String>,
    /// The challenge that lifts it when passed.
    pub challenge_id: Option<String>,
    pub history: Vec<RestrictionEventView>,
}

/// A page of restrictions; `next_cursor` goes on where it stopped (absent: nothing more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RestrictionPage {
    pub restrictions: Vec<RestrictionRecordView>,
    pub next_cursor: Option<String>,
}

impl RestrictionRecordView {
    fn of(r: &Restriction, now_ms: i64) -> RestrictionRecordView {
        let status = if r.in_force(now_ms) { RestrictionStatus::Active } else { RestrictionStatus::Lifted };
        RestrictionRecordView {
            id: r.id.clone(),
            status,
            credit_line_id: r.credit_line_id.clone(),
            user_id: r.user_id.clone(),
            scope: r.scope,
            reason_codes: r.reason_codes.clone(),
            explanation: r.explanation.clone(),
            imposed_by: r.imposed_by.clone(),
            imposed_at: timestamp(r.created_at_ms),
            expires_at: timestamp(r.until_ms),
            appeal_deadline: timestamp(r.appeal_deadline_ms),
            // One that reached its end before the sweep wrote the lift ended then.
            lifted_at: r.lifted_at_ms.or((status == RestrictionStatus::Lifted).then_some(r.until_ms)).map(timestamp),
            payment_id: r.payment_id.clone(),
            challenge_id: r.challenge_id.clone(),
            history: r
                .history
                .iter()
                .map(|e| RestrictionEventView {
                    kind: e.kind,
                    at: timestamp(e.at_ms),
                    cause: e.cause,
                    by: e.by.clone(),
                    reason: e.reason.clone(),
                    appeal_id: e.appeal_id.clone(),
                    outcome: e.outcome,
                })
                .collect(),
        }
    }
}

/// A new id (`prefix_` + 11 hex digits of milliseconds + 80 random bits) that sorts after
/// `last`, the greatest id of its kind: listings go oldest first by id and a cursor is an id,
/// so an id made in the same millisecond as the last (or on a clock that stood still or went
/// back) takes the millisecond after the last's instead. Nothing reads the time from an id.
pub(crate) fn ordered_id(prefix: &str, now_ms: i64, last: Option<&String>) -> String {
    let digits = prefix.len() + 1..prefix.len() + 12;
    let last_ms = last.and_then(|l| l.get(digits)).and_then(|hex| i64::from_str_radix(hex, 16).ok());
    let id = new_id(prefix, last_ms.map_or(now_ms, |l| now_ms.max(l + 1)));
    assert!(last.is_none_or(|l| id > *l || last_ms.is_none()), "{prefix} ids out of order: {id} after {last:?}");
    id
}

/// Who a caller is, as a restriction's or an appeal's history names them.
pub(crate) fn actor(caller: &Caller) -> String {
    match caller {
        Caller::System => "system".into(),
        Caller::Key(p) => p.key_id.clone(),
        Caller::Shopper(s) => format!("shopper:{}", s.credit_line_id),
    }
}

/// Free text an operator or a user writes (a lift's reason, an appeal's message, a
/// reviewer's note): not blank, at most `max_chars`, no control characters but line breaks
/// and tabs. Refused as `422 invalid_text`: the request was well formed, the text is not
/// acceptable.
pub(crate) fn check_free_text(field: &str, text: &str, max_chars: usize) -> Result<(), CoreError> {
    let length = text.chars().count();
    let controls = text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
    if text.trim().is_empty() || length > max_chars || controls {
        return Err(CoreError::InvalidText {
            field: field.to_owned(),
            message: format!("`{field}` must be 1 to {max_chars} characters of text, not blank"),
        });
    }
    Ok(())
}

/// Who or what imposed a restriction on a `restrict` decision: the sources of the live
/// signals behind its reason codes, and the versions in force.
fn imposed_by(d: &DecisionRecord) -> ImposedBy {
    let mut sources: Vec<String> = Vec::new();
    for s in &d.signals {
        let counted = matches!(s.mode, SignalMode::Live | SignalMode::Capped);
        if counted && d.reason_codes.contains(&s.reason_code) && !sources.contains(&s.source) {
            sources.push(s.source.clone());
        }
    }
    ImposedBy {
        kind: ImposerKind::Decision,
        payment_id: Some(d.facts.payment_id.clone()),
        sources,
        policy_version: Some(d.versions.policy.clone()),
        rules_version: Some(d.versions.rules.clone()),
        model_version: Some(d.versions.scorer.clone()),
        operator: None,
    }
}

impl State {
    /// The restriction in force on a line at `now_ms`, if any.
    pub(crate) fn active_restriction(&self, credit_line_id: &str, now_ms: i64) -> Option<&Restriction> {
        let id = self.active_restrictions.get(credit_line_id)?;
        self.restrictions.get(id).filter(|r| r.in_force(now_ms))
    }

    /// Takes a stored restriction into memory (at start-up, and after every write).
    pub(crate) fn remember_restriction(&mut self, r: Restriction) {
        if r.lifted_at_ms.is_none() {
            // One in force per line: a later one replaces an earlier one in the index (a
            // record from before ids, never lifted when superseded, stays unlisted there).
            let newer = self
                .active_restrictions
                .get(&r.credit_line_id)
                .and_then(|id| self.restrictions.get(id))
                .is_none_or(|current| current.created_at_ms <= r.created_at_ms);
            if newer {
                self.active_restrictions.insert(r.credit_line_id.clone(), r.id.clone());
            }
        } else if self.active_restrictions.get(&r.credit_line_id) == Some(&r.id) {
            self.active_restrictions.remove(&r.credit_line_id);
        }
        let by_line = self.restrictions_by_line.entry(r.credit_line_id.clone()).or_default();
        if !by_line.contains(&r.id) {
            by_line.push(r.id.clone());
        }
        self.restrictions.insert(r.id.clone(), r);
    }

    /// Writes a restriction into the batch and memory, checking what must hold of it.
    pub(crate) fn save_restriction(&mut self, r: Restriction, now_ms: i64, out: &mut Batch) {
        assert!(!r.id.is_empty() && r.history.len() <= MAX_RESTRICTION_EVENTS, "restriction {} malformed", r.id);
        assert!(r.until_ms > r.created_at_ms, "restriction {} ends before it starts", r.id);
        let lifts = r.history.iter().filter(|e| e.kind == RestrictionEventKind::Lifted).count();
        assert_eq!(usize::from(r.lifted_at_ms.is_some()), lifts, "restriction {}: lifted iff one lift event", r.id);
        self.put(out, RecordKind::Restriction, &r.id, &r, now_ms);
        let before = self.restrictions.get(&r.id).cloned();
        self.restriction_events(before.as_ref(), &r, now_ms, out);
        self.remember_restriction(r);
    }

    /// Restricts a line after a `restrict` decision, with a challenge that lifts it. Its end
    /// is the decision's, cut to the policy's `max_duration_hours`.
    pub(crate) fn restrict(&mut self, d: &DecisionRecord, now_ms: i64, out: &mut Batch) -> Result<String, CoreError> {
        let f = &d.facts;
        let policy = &self.engine.policy().document.restriction;
        let longest_ms = policy.max_duration_hours() * 3_600_000;
        let until_ms = d.expires_at_ms.unwrap_or(now_ms + 24 * 3_600_000).min(now_ms + longest_ms);
        let appeal_deadline_ms = now_ms + policy.appeal_days * 86_400_000;
        let challenge_id = self.open_challenge(
            ChallengePurpose::LiftRestriction,
            xiezhi_risk::ChallengeMethod::OneTimeCode,
            Some(f.payment_id.clone()),
            &f.credit_line_id,
            &f.user_id,
            f.device_id.clone(),
            now_ms,
            out,
        )?;
        if let Some(current) = self.active_restriction(&f.credit_line_id, now_ms).cloned() {
            let mut lifted = RestrictionEvent::new(RestrictionEventKind::Lifted, now_ms);
            lifted.cause = Some(LiftCause::Superseded);
            lifted.by = Some("system".into());
            self.lift(current, lifted, false, now_ms, out)?;
        }
        let mut imposed = RestrictionEvent::new(RestrictionEventKind::Imposed, now_ms);
        imposed.by = Some(format!("decision:{}", f.payment_id));
        let restriction = Restriction {
            id: ordered_id("rs", now_ms, self.restrictions.keys().next_back()),
            credit_line_id: f.credit_line_id.clone(),
            user_id: f.user_id.clone(),
            scope: RestrictionScope::ScanToPay,
            reason_codes: d.reason_codes.clone(),
            reason_code: d.reason_codes.first().cloned().unwrap_or_default(),
            explanation: d.explanation.clone(),
            payment_id: Some(f.payment_id.clone()),
            challenge_id: Some(challenge_id.clone()),
            imposed_by: imposed_by(d),
            created_at_ms: now_ms,
            until_ms,
            appeal_deadline_ms,
            lifted_at_ms: None,
            history: vec![imposed],
        };
        let message = self
            .engine
            .catalogue()
            .both("notify-restricted", &[("until", timestamp(until_ms)), ("deadline", timestamp(appeal_deadline_ms))]);
        self.save_restriction(restriction, now_ms, out);
        self.notify(&f.credit_line_id, "restricted", message, Some(challenge_id.clone()), now_ms, out)?;
        Ok(challenge_id)
    }

    /// Lifts a restriction in force: `event` (a `lifted` event with its cause and author)
    /// closes its history, and the user's inbox says so when `tell` (a restriction replaced
    /// by a newer one is not news). Writes the restriction and, when told, the inbox.
    pub(crate) fn lift(
        &mut self,
        mut r: Restriction,
        event: RestrictionEvent,
        tell: bool,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<(), CoreError> {
        assert_eq!(event.kind, RestrictionEventKind::Lifted, "a lift ends with a lifted event");
        assert!(r.lifted_at_ms.is_none(), "restriction {} lifted twice", r.id);
        // Read before writing: a failed inbox read must leave nothing half-done.
        let inbox = if tell { Some(self.inbox(&r.credit_line_id)?) } else { None };
        r.lifted_at_ms = Some(now_ms);
        r.record(event);
        let line = r.credit_line_id.clone();
        self.save_restriction(r, now_ms, out);
        if let Some(inbox) = inbox {
            let message = self.engine.catalogue().both("notify-restriction-lifted", &[]);
            self.notify_into(inbox, &line, "restriction_lifted", message, None, now_ms, out);
        }
        Ok(())
    }

    /// Lifts restrictions whose time is up (at most `max`), on the service clock.
    pub(crate) fn expire_restrictions(&mut self, now_ms: i64, max: usize, out: &mut Batch) -> Result<usize, CoreError> {
        let due: Vec<String> = self
            .active_restrictions
            .values()
            .filter(|id| self.restrictions.get(*id).is_some_and(|r| r.lifted_at_ms.is_none() && r.until_ms <= now_ms))
            .take(max)
            .cloned()
            .collect();
        for id in &due {
            let r = self.restrictions.get(id).cloned().expect("due restrictions are held");
            let mut event = RestrictionEvent::new(RestrictionEventKind::Lifted, r.until_ms.min(now_ms));
            event.cause = Some(LiftCause::Expired);
            event.by = Some("system".into());
            self.lift(r, event, true, now_ms, out)?;
        }
        Ok(due.len())
    }

    /// A passed lifting challenge lifts the restriction it was opened for (and only that
    /// one: a newer restriction on the line has its own challenge).
    pub(crate) fn lift_on_challenge(&mut self, c: &Challenge, now_ms: i64, out: &mut Batch) -> Result<(), CoreError> {
        let Some(mut r) = self.active_restriction(&c.credit_line_id, now_ms).cloned() else { return Ok(()) };
        if r.challenge_id.as_deref() != Some(c.id.as_str()) {
            return Ok(());
        }
        let mut passed = RestrictionEvent::new(RestrictionEventKind::ChallengePassed, now_ms);
        passed.by = Some(format!("shopper:{}", c.credit_line_id));
        r.record(passed);
        let mut lifted = RestrictionEvent::new(RestrictionEventKind::Lifted, now_ms);
        lifted.cause = Some(LiftCause::ChallengePassed);
        lifted.by = Some(format!("shopper:{}", c.credit_line_id));
        self.lift(r, lifted, true, now_ms, out)
    }

    pub(crate) fn restriction(&self, id: &str) -> Result<&Restriction, CoreError> {
        self.restrictions.get(id).ok_or_else(|| CoreError::RestrictionNotFound { id: id.to_owned() })
    }

    pub(crate) fn restriction_record(&self, id: &str, now_ms: i64) -> Result<Reply, CoreError> {
        let view = RestrictionRecordView::of(self.restriction(id)?, now_ms);
        Ok(Reply::Document(serde_json::to_value(view).expect("views serialise")))
    }

    /// `POST /v1/restrictions/{id}/lift`: an operator lifts a restriction in force, with a
    /// reason kept in its history.
    pub(crate) fn lift_by_operator(
        &mut self,
        caller: &Caller,
        id: &str,
        request: LiftRequest,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let r = self.restriction(id)?.clone();
        check_free_text("reason", &request.reason, MAX_REASON_CHARS)?;
        if !r.in_force(now_ms) {
            return Err(CoreError::RestrictionNotActive { id: id.to_owned() });
        }
        let mut event = RestrictionEvent::new(RestrictionEventKind::Lifted, now_ms);
        event.cause = Some(LiftCause::Operator);
        event.by = Some(actor(caller));
        event.reason = Some(request.reason.trim().to_owned());
        tracing::info!(restriction_id = %id, by = %actor(caller), "restriction lifted by an operator");
        self.lift(r, event, true, now_ms, out)?;
        self.restriction_record(id, now_ms)
    }

    /// `GET /v1/restrictions`: oldest first after `cursor`, filtered, at most `limit`.
    pub(crate) fn list_restrictions(&self, query: &RestrictionQuery, now_ms: i64) -> Result<Reply, CoreError> {
        let limit = page_limit(query.limit)?;
        let wanted = |r: &Restriction| {
            let status = if r.in_force(now_ms) { RestrictionStatus::Active } else { RestrictionStatus::Lifted };
            query.status.is_none_or(|s| s == status)
                && query.credit_line_id.as_ref().is_none_or(|l| *l == r.credit_line_id)
                && query.user_id.as_ref().is_none_or(|u| *u == r.user_id)
        };
        let (found, next_cursor) = page(&self.restrictions, query.cursor.as_deref(), limit, wanted);
        let restrictions = found.into_iter().map(|r| RestrictionRecordView::of(r, now_ms)).collect();
        let view = RestrictionPage { restrictions, next_cursor };
        Ok(Reply::Document(serde_json::to_value(view).expect("views serialise")))
    }
}

/// A page size: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when not given.
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, CoreError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => {
            Err(CoreError::InvalidRequest { field: "limit".into(), message: format!("`limit` is 1 to {MAX_PAGE}") })
        }
    }
}

/// Up to `limit` records of `all` after `cursor` (ids order them by creation) for which
/// `wanted` holds, looking at no more than [`MAX_SCANNED_PER_PAGE`]; and the cursor to go on
/// from, when there may be more.
pub(crate) fn page<'a, T>(
    all: &'a std::collections::BTreeMap<String, T>,
    cursor: Option<&str>,
    limit: usize,
    wanted: impl Fn(&T) -> bool,
) -> (Vec<&'a T>, Option<String>) {
    use std::ops::Bound;
    let start = cursor.map_or(Bound::Unbounded, |c| Bound::Excluded(c.to_owned()));
    let mut found = Vec::new();
    let mut last_seen = None;
    for (scanned, (id, item)) in all.range((start, Bound::Unbounded)).enumerate() {
        if found.len() == limit || scanned == MAX_SCANNED_PER_PAGE {
            // Stopped before the end: go on after the last record looked at.
            return (found, last_seen);
        }
        last_seen = Some(id.clone());
        if wanted(item) {
            found.push(item);
        }
    }
    (found, None)
}

#[cfg(test)]
mod tests {
    use super::ordered_id;

    #[test]
    fn ids_made_in_one_millisecond_sort_in_the_order_they_were_made() {
        let mut last: Option<String> = None;
        for _ in 0..1_000 {
            let id = ordered_id("rs", 1_700_000_000_000, last.as_ref());
            assert!(last.as_ref().is_none_or(|l| id > *l), "{id} after {last:?}");
            assert_eq!(id.len(), "rs_".len() + 11 + 20);
            last = Some(id);
        }
        // A clock that went back still sorts after; an id of another form is not read.
        let later = ordered_id("rs", 1_600_000_000_000, last.as_ref());
        assert!(later > *last.as_ref().unwrap());
        let legacy = "cl_0123".to_owned();
        assert!(ordered_id("rs", 5, Some(&legacy)).starts_with("rs_00000000005"));
    }
}
