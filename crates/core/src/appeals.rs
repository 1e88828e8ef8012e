//! Appeals: a user asks a person to review a decision or a restriction. A reviewer with
//! `appeals:decide` claims the appeal and decides it (the one who claimed it, and only
//! once); an overturn lifts the restriction, labels the decision a false positive and
//! owes compensation, which the fund pays in the same batch when it can (`fund.rs`). An
//! appeal not decided by its deadline (the policy's `appeal_deadline_hours` after it was
//! filed) escalates on the writer's sweep and, when
//! the policy says so, lifts its restriction at once.
//!
//! Appeals are held in memory like restrictions (a few per restricted user); an index of
//! undecided ones by deadline lets the sweep find those due without a scan.

use crate::access::Caller;
use crate::error::CoreError;
use crate::lifecycle::{LifecycleEvent, LifecycleKind};
use crate::model::*;
use crate::restrictions::{actor, check_free_text, page, page_limit};
use crate::state::State;
use serde::{Deserialize, Serialize};
use xiezhi_store::{Batch, RecordKind};

/// The longest appeal message, in characters.
pub const MAX_APPEAL_MESSAGE_CHARS: usize = 2_000;
/// The longest reviewer's note, in characters.
pub const MAX_APPEAL_NOTE_CHARS: usize = 2_000;
/// The most appeals the status endpoint shows a user (the newest).
pub const MAX_STATUS_APPEALS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppealStatus {
    /// Filed, waiting for a reviewer.
    Open,
    /// A reviewer took it.
    Claimed,
    /// Decided (`outcome`); cannot be decided again.
    Decided,
    /// Not decided by its deadline: still to be decided, by whoever claims it.
    Escalated,
}

/// An appeal as stored (and shown, with instants rendered: [`AppealView`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appeal {
    pub id: String,
    pub credit_line_id: String,
    pub user_id: String,
    /// The payment whose decision is appealed (for a restriction, the one that imposed it).
    pub decision_id: Option<String>,
    pub restriction_id: Option<String>,
    pub message: String,
    pub status: AppealStatus,
    pub filed_at_ms: i64,
    /// When a person must have decided it by.
    pub deadline_ms: i64,
    pub filed_by: String,
    /// The principal (the first key of a rotation chain, or `system`) that claimed it.
    pub claimed_by: Option<String>,
    pub claimed_at_ms: Option<i64>,
    pub escalated_at_ms: Option<i64>,
    pub outcome: Option<AppealOutcome>,
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<i64>,
    /// Whether this appeal lifted its restriction (overturned, or escalated under a policy
    /// that lifts then).
    pub lifted_restriction: bool,
    /// Set on an overturn: the compensation fund owes the user (a `compensation` record).
    pub compensation_due: bool,
}

/// `POST /v1/appeals`: exactly one of `decision_id` (a payment's id) and `restriction_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAppeal {
    /// The payment whose decision is appealed.
    #[serde(default)]
    pub decision_id: Option<String>,
    #[serde(default)]
    pub restriction_id: Option<String>,
    /// What the user wants the reviewer to know (1 to 2,000 characters).
    #[cfg_attr(
        feature = "utoipa",
        schema(min_length = 1, max_length = 2000, example = "I was at home; it was me paying.")
    )]
    pub message: String,
}

/// `POST /v1/appeals/{id}/decision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppealDecision {
    pub outcome: AppealOutcome,
    /// Why, for the user and the record (up to 2,000 characters).
    #[serde(default)]
    #[cfg_attr(feature = "utoipa", schema(max_length = 2000, example = "Device and place match the user's habits."))]
    pub note: Option<String>,
}

/// Which appeals `GET /v1/appeals` lists, oldest first from after `cursor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppealQuery {
    pub status: Option<AppealStatus>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// An appeal as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct AppealView {
    pub id: String,
    pub status: AppealStatus,
    pub credit_line_id: String,
    pub user_id: String,
    pub decision_id: Option<String>,
    pub restriction_id: Option<String>,
    pub message: String,
    pub filed_at: String,
    pub deadline: String,
    pub filed_by: String,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<String>,
    pub escalated_at: Option<String>,
    pub outcome: Option<AppealOutcome>,
    pub note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub lifted_restriction: bool,
    pub compensation_due: bool,
}

impl From<&Appeal> for AppealView {
    fn from(a: &Appeal) -> AppealView {
        AppealView {
            id: a.id.clone(),
            status: a.status,
            credit_line_id: a.credit_line_id.clone(),
            user_id: a.user_id.clone(),
            decision_id: a.decision_id.clone(),
            restriction_id: a.restriction_id.clone(),
            message: a.message.clone(),
            filed_at: timestamp(a.filed_at_ms),
            deadline: timestamp(a.deadline_ms),
            filed_by: a.filed_by.clone(),
            claimed_by: a.claimed_by.clone(),
            claimed_at: a.claimed_at_ms.map(timestamp),
            escalated_at: a.escalated_at_ms.map(timestamp),
            outcome: a.outcome,
            note: a.note.clone(),
            decided_by: a.decided_by.clone(),
            decided_at: a.decided_at_ms.map(timestamp),
            lifted_restriction: a.lifted_restriction,
            compensation_due: a.compensation_due,
        }
    }
}

/// A page of appeals; `next_cursor` goes on where it stopped (absent: nothing more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct AppealPage {
    pub appeals: Vec<AppealView>,
    pub next_cursor: Option<String>,
}

/// What a reviewer found a decision to be, kept beside the decision record (which stays as
/// decided) and shown with it as `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionLabel {
    pub payment_id: String,
    /// `false_positive`: the decision stopped someone it should not have.
    pub label: String,
    pub appeal_id: String,
    pub by: String,
    pub at: String,
}

/// What an appeal is about, resolved from its request.
struct Subject {
    credit_line_id: String,
    user_id: String,
    decision_id: Option<String>,
    restriction_id: Option<String>,
    /// Until when it may be appealed.
    window_ms: i64,
    /// An approved payment's decision: nothing to appeal. Checked after whose it is, so a
    /// stranger learns nothing from the answer.
    approved: bool,
}

impl Subject {
    /// The keys under which "one open appeal" is enforced: the decision and the restriction.
    fn keys(&self) -> impl Iterator<Item = &String> {
        self.decision_id.iter().chain(self.restriction_id.iter())
    }
}

/// A lift an appeal causes, with the user's inbox read before anything was written.
struct AppealLift {
    cause: LiftCause,
    reason: Option<String>,
    inbox: Vec<Notification>,
}

/// The principal that claims and decides: a key's rotation chain, so a reviewer whose key
/// was rotated still decides what they claimed.
fn principal(caller: &Caller) -> Result<String, CoreError> {
    match caller {
        Caller::System => Ok("system".into()),
        Caller::Key(p) => Ok(p.principal_id.clone()),
        Caller::Shopper(_) => Err(CoreError::Forbidden {
            scope: "appeals:decide".into(),
            message: "a shopper token cannot review appeals".into(),
        }),
    }
}

impl State {
    pub(crate) fn reload_appeals(&mut self) -> Result<(), xiezhi_store::StoreError> {
        self.appeals.clear();
        self.appeals_by_subject.clear();
        self.appeals_by_user.clear();
        self.undecided_appeals.clear();
        for r in self.store.records(RecordKind::Appeal)? {
            let appeal: Appeal = serde_json::from_str(&r.body)
                .map_err(|e| xiezhi_store::StoreError::Corrupt(format!("appeal record {}: {e}", r.id)))?;
            self.remember_appeal(appeal);
        }
        Ok(())
    }

    /// Takes an appeal into memory and its indexes.
    fn remember_appeal(&mut self, a: Appeal) {
        if let Some(previous) = self.appeals.get(&a.id) {
            self.undecided_appeals.remove(&(previous.deadline_ms, a.id.clone()));
        } else {
            for key in a.decision_id.iter().chain(a.restriction_id.iter()) {
                self.appeals_by_subject.entry(key.clone()).or_default().push(a.id.clone());
            }
            self.appeals_by_user.entry(a.user_id.clone()).or_default().push(a.id.clone());
        }
        // The sweep escalates those still undecided and not yet escalated.
        if a.outcome.is_none() && a.escalated_at_ms.is_none() {
            self.undecided_appeals.insert((a.deadline_ms, a.id.clone()));
        }
        self.appeals.insert(a.id.clone(), a);
    }

    fn save_appeal(&mut self, a: Appeal, now_ms: i64, out: &mut Batch) {
        assert_eq!(
            a.status == AppealStatus::Decided,
            a.outcome.is_some(),
            "appeal {}: decided iff it has an outcome",
            a.id
        );
        assert!(a.decision_id.is_some() || a.restriction_id.is_some(), "appeal {} is about nothing", a.id);
        assert!(
            !a.compensation_due || a.outcome == Some(AppealOutcome::Overturn),
            "appeal {}: owed only on overturn",
            a.id
        );
        self.put(out, RecordKind::Appeal, &a.id, &a, now_ms);
        let before = self.appeals.get(&a.id).cloned();
        self.appeal_events(before.as_ref(), &a, now_ms, out);
        self.remember_appeal(a);
    }

    pub(crate) fn appeal(&self, id: &str) -> Result<&Appeal, CoreError> {
        self.appeals.get(id).ok_or_else(|| CoreError::AppealNotFound { id: id.to_owned() })
    }

    fn appeal_reply(&self, id: &str) -> Result<Reply, CoreError> {
        let view = AppealView::from(self.appeal(id)?);
        Ok(Reply::Document(serde_json::to_value(view).expect("views serialise")))
    }

    pub(crate) fn get_appeal(&self, id: &str) -> Result<Reply, CoreError> {
        self.appeal_reply(id)
    }

    /// The line an appeal request is about, for [`State::authorize`]: what is not the
    /// caller's is answered as not found.
    pub(crate) fn appeal_subject_line(&mut self, request: &NewAppeal) -> Result<String, CoreError> {
        Ok(self.appeal_subject(request)?.credit_line_id)
    }

    fn appeal_subject(&mut self, request: &NewAppeal) -> Result<Subject, CoreError> {
        match (&request.decision_id, &request.restriction_id) {
            (Some(_), Some(_)) | (None, None) => Err(CoreError::InvalidRequest {
                field: "restriction_id".into(),
                message: "name exactly one of `decision_id` and `restriction_id`".into(),
            }),
            (None, Some(id)) => {
                crate::state::check_text("restriction_id", id)?;
                let r = self.restriction(id)?;
                Ok(Subject {
                    credit_line_id: r.credit_line_id.clone(),
                    user_id: r.user_id.clone(),
                    decision_id: r.payment_id.clone(),
                    restriction_id: Some(r.id.clone()),
                    window_ms: r.appeal_deadline_ms,
                    approved: false,
                })
            }
            (Some(id), None) => {
                crate::state::check_text("decision_id", id)?;
                let d: xiezhi_risk::DecisionRecord = self
                    .get(RecordKind::Decision, id)?
                    .ok_or_else(|| CoreError::DecisionNotFound { id: id.to_owned() })?;
                // A decision that restricted the line brings its restriction into the appeal.
                let restriction = self.restrictions_by_line.get(&d.facts.credit_line_id).and_then(|ids| {
                    ids.iter().find(|r| self.restrictions.get(*r).is_some_and(|r| r.payment_id.as_ref() == Some(id)))
                });
                let restriction = restriction.cloned();
                let appeal_days = self.engine.policy().document.restriction.appeal_days;
                // A step-up answered and paid went through: nothing to appeal either.
                let went_through = self
                    .payment(id)
                    .is_ok_and(|p| !matches!(p.status, PaymentStatus::Declined | PaymentStatus::ChallengeRequired));
                Ok(Subject {
                    credit_line_id: d.facts.credit_line_id.clone(),
                    user_id: d.facts.user_id.clone(),
                    decision_id: Some(id.clone()),
                    restriction_id: restriction,
                    window_ms: d.facts.now_ms + appeal_days * 86_400_000,
                    approved: d.outcome == Outcome::Approve || went_through,
                })
            }
        }
    }

    /// `POST /v1/appeals`: one open appeal per decision and restriction (a second is `409`
    /// naming the first), within the appeal window, at most [`MAX_APPEALS_PER_SUBJECT`].
    pub(crate) fn file_appeal(
        &mut self,
        caller: &Caller,
        request: NewAppeal,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let subject = self.appeal_subject(&request)?;
        check_free_text("message", &request.message, MAX_APPEAL_MESSAGE_CHARS)?;
        if subject.approved {
            return Err(CoreError::NotAppealable {
                message: "a payment that went through has nothing to appeal".into(),
            });
        }
        let earlier: Vec<&Appeal> = subject
            .keys()
            .filter_map(|k| self.appeals_by_subject.get(k))
            .flatten()
            .filter_map(|id| self.appeals.get(id))
            .collect();
        if let Some(open) = earlier.iter().find(|a| a.outcome.is_none()) {
            return Err(CoreError::AppealExists { appeal_id: open.id.clone() });
        }
        if earlier.len() >= MAX_APPEALS_PER_SUBJECT {
            let message = format!("at most {MAX_APPEALS_PER_SUBJECT} appeals of one decision or restriction");
            return Err(CoreError::NotAppealable { message });
        }
        if now_ms > subject.window_ms {
            let message = format!("the time to appeal ended at {}", timestamp(subject.window_ms));
            return Err(CoreError::NotAppealable { message });
        }
        let hours = self.engine.policy().document.restriction.appeal_deadline_hours;
        let appeal = Appeal {
            id: crate::restrictions::ordered_id("ap", now_ms, self.appeals.keys().next_back()),
            credit_line_id: subject.credit_line_id,
            user_id: subject.user_id,
            decision_id: subject.decision_id,
            restriction_id: subject.restriction_id,
            message: request.message,
            status: AppealStatus::Open,
            filed_at_ms: now_ms,
            deadline_ms: now_ms + hours * 3_600_000,
            filed_by: actor(caller),
            claimed_by: None,
            claimed_at_ms: None,
            escalated_at_ms: None,
            outcome: None,
            note: None,
            decided_by: None,
            decided_at_ms: None,
            lifted_restriction: false,
            compensation_due: false,
        };
        let id = appeal.id.clone();
        // The appealed decision's lifecycle says so (read before anything is written).
        if let Some(payment_id) = &appeal.decision_id {
            let event =
                LifecycleEvent { appeal_id: Some(id.clone()), ..LifecycleEvent::new(LifecycleKind::Appealed, now_ms) };
            self.record_on_payment(payment_id, event, now_ms, out)?;
        }
        self.record_on_restriction(&appeal, RestrictionEventKind::AppealFiled, None, now_ms, out);
        self.save_appeal(appeal, now_ms, out);
        metrics::counter!("xiezhi_appeals_total", "event" => "filed").increment(1);
        self.appeal_reply(&id)
    }

    /// Adds an appeal's event to its restriction's history (none for a decision alone)
    /// and, with `lift`, lifts the restriction (in force: the caller checked) in the same
    /// write, telling the user through the inbox the caller read.
    fn record_on_restriction(
        &mut self,
        a: &Appeal,
        kind: RestrictionEventKind,
        lift: Option<AppealLift>,
        now_ms: i64,
        out: &mut Batch,
    ) {
        let Some(mut r) = a.restriction_id.as_ref().and_then(|id| self.restrictions.get(id)).cloned() else { return };
        let mut event = RestrictionEvent::new(kind, now_ms);
        event.appeal_id = Some(a.id.clone());
        event.by = match kind {
            RestrictionEventKind::AppealFiled => Some(a.filed_by.clone()),
            RestrictionEventKind::AppealDecided => a.decided_by.clone(),
            _ => Some("system".into()),
        };
        event.outcome = a.outcome;
        r.record(event);
        let Some(lift) = lift else { return self.save_restriction(r, now_ms, out) };
        assert!(r.in_force(now_ms), "appeal {} lifts restriction {}, which is not in force", a.id, r.id);
        let mut lifted = RestrictionEvent::new(RestrictionEventKind::Lifted, now_ms);
        lifted.cause = Some(lift.cause);
        lifted.by = if lift.cause == LiftCause::AppealEscalated { Some("system".into()) } else { a.decided_by.clone() };
        lifted.reason = lift.reason;
        lifted.appeal_id = Some(a.id.clone());
        r.lifted_at_ms = Some(now_ms);
        r.record(lifted);
        let line = r.credit_line_id.clone();
        self.save_restriction(r, now_ms, out);
        let message = self.engine.catalogue().both("notify-restriction-lifted", &[]);
        self.notify_into(lift.inbox, &line, "restriction_lifted", message, None, now_ms, out);
    }

    pub(crate) fn list_appeals(&self, query: &AppealQuery) -> Result<Reply, CoreError> {
        let limit = page_limit(query.limit)?;
        let (found, next_cursor) = page(&self.appeals, query.cursor.as_deref(), limit, |a: &Appeal| {
            query.status.is_none_or(|s| s == a.status)
        });
        let view = AppealPage { appeals: found.into_iter().map(AppealView::from).collect(), next_cursor };
        Ok(Reply::Document(serde_json::to_value(view).expect("views serialise")))
    }

    /// `POST /v1/appeals/{id}/claim`: the caller takes the appeal. Claiming one's own claim
    /// again changes nothing; another's claim is `409`; a decided appeal is `409`.
    pub(crate) fn claim_appeal(
        &mut self,
        caller: &Caller,
        id: &str,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let me = principal(caller)?;
        let mut a = self.appeal(id)?.clone();
        if a.outcome.is_some() {
            return Err(CoreError::AppealDecided { id: id.to_owned() });
        }
        match &a.claimed_by {
            Some(holder) if *holder == me => return self.appeal_reply(id),
            Some(holder) => return Err(CoreError::AppealClaimed { id: id.to_owned(), claimed_by: holder.clone() }),
            None => {}
        }
        a.claimed_by = Some(me);
        a.claimed_at_ms = Some(now_ms);
        // An escalated appeal stays listed as escalated until it is decided.
        if a.status == AppealStatus::Open {
            a.status = AppealStatus::Claimed;
        }
        self.save_appeal(a, now_ms, out);
        self.appeal_reply(id)
    }

    /// `POST /v1/appeals/{id}/decision`: only by the principal that claimed it (`403`
    /// otherwise), only once (`409`), only once claimed (`409 appeal_not_claimed`: a
    /// decision names its reviewer, so claiming is an explicit step).
    pub(crate) fn decide_appeal(
        &mut self,
        caller: &Caller,
        id: &str,
        decision: AppealDecision,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let me = principal(caller)?;
        let mut a = self.appeal(id)?.clone();
        if a.outcome.is_some() {
            return Err(CoreError::AppealDecided { id: id.to_owned() });
        }
        let Some(holder) = a.claimed_by.clone() else { return Err(CoreError::AppealNotClaimed { id: id.to_owned() }) };
        if holder != me {
            return Err(CoreError::Forbidden {
                scope: String::new(),
                message: format!("appeal `{id}` is claimed by `{holder}`; only the reviewer who claimed it decides"),
            });
        }
        let note = decision.note.filter(|n| !n.trim().is_empty());
        if let Some(note) = &note {
            check_free_text("note", note, MAX_APPEAL_NOTE_CHARS)?;
        }
        // Everything that can refuse has; reads for the lift come before any write.
        let overturn = decision.outcome == AppealOutcome::Overturn;
        let lift =
            a.restriction_id.as_ref().and_then(|r| self.restrictions.get(r)).filter(|r| r.in_force(now_ms)).cloned();
        let inbox = match (&lift, overturn) {
            (Some(r), true) => Some(self.inbox(&r.credit_line_id)?),
            _ => None,
        };
        if let Some(payment_id) = a.decision_id.clone() {
            let kind = if overturn { LifecycleKind::AppealOverturned } else { LifecycleKind::AppealUpheld };
            let event = LifecycleEvent { appeal_id: Some(a.id.clone()), ..LifecycleEvent::new(kind, now_ms) };
            self.record_on_payment(&payment_id, event, now_ms, out)?;
        }
        a.status = AppealStatus::Decided;
        a.outcome = Some(decision.outcome);
        a.note = note.clone();
        a.decided_by = Some(actor(caller));
        a.decided_at_ms = Some(now_ms);
        a.compensation_due = overturn;
        a.lifted_restriction |= inbox.is_some();
        let lift = inbox.map(|inbox| AppealLift { cause: LiftCause::AppealOverturned, reason: note, inbox });
        self.record_on_restriction(&a, RestrictionEventKind::AppealDecided, lift, now_ms, out);
        if overturn {
            self.label_false_positive(&a, now_ms, out);
        }
        let outcome = if overturn { "overturned" } else { "upheld" };
        metrics::counter!("xiezhi_appeals_total", "event" => outcome).increment(1);
        self.save_appeal(a, now_ms, out);
        self.appeal_reply(id)
    }

    /// An overturned appeal's decision is a false positive (the quality report counts
    /// them), and the user is owed compensation: paid by the fund in this batch when it
    /// holds enough (`fund.rs`).
    fn label_false_positive(&mut self, a: &Appeal, now_ms: i64, out: &mut Batch) {
        let by = a.decided_by.clone().unwrap_or_default();
        if let Some(payment_id) = &a.decision_id {
            let label = DecisionLabel {
                payment_id: payment_id.clone(),
                label: "false_positive".into(),
                appeal_id: a.id.clone(),
                by,
                at: timestamp(now_ms),
            };
            self.put(out, RecordKind::DecisionLabel, payment_id, &label, now_ms);
        }
        self.owe_compensation(a, now_ms, out);
    }

    /// Escalates appeals past their deadline (at most `max`), on the service clock; under a
    /// policy that says so, each lifts its restriction. Each writes at most three items: the
    /// appeal, its restriction and the user's inbox.
    pub(crate) fn escalate_appeals(&mut self, now_ms: i64, max: usize, out: &mut Batch) -> Result<usize, CoreError> {
        let due: Vec<String> = self
            .undecided_appeals
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(max)
            .map(|(_, id)| id.clone())
            .collect();
        let auto_lift = self.engine.policy().document.restriction.appeal_auto_lift_on_escalation;
        for id in &due {
            let mut a = self.appeal(id)?.clone();
            let lift = a.restriction_id.as_ref().and_then(|r| self.restrictions.get(r)).filter(|r| r.in_force(now_ms));
            let inbox = match lift.map(|r| r.credit_line_id.clone()) {
                Some(line) if auto_lift => Some(self.inbox(&line)?),
                _ => None,
            };
            a.status = AppealStatus::Escalated;
            a.escalated_at_ms = Some(now_ms);
            a.lifted_restriction |= inbox.is_some();
            let lift = inbox.map(|inbox| AppealLift { cause: LiftCause::AppealEscalated, reason: None, inbox });
            self.record_on_restriction(&a, RestrictionEventKind::AppealEscalated, lift, now_ms, out);
            metrics::counter!("xiezhi_appeals_total", "event" => "escalated").increment(1);
            tracing::warn!(appeal_id = %a.id, "appeal escalated: not decided by its deadline");
            self.save_appeal(a, now_ms, out);
        }
        Ok(due.len())
    }

    /// The newest appeals of a user, for the status endpoint.
    pub(crate) fn user_appeals(&self, user_id: &str) -> Vec<AppealView> {
        let ids = self.appeals_by_user.get(user_id).map(Vec::as_slice).unwrap_or_default();
        ids.iter().rev().take(MAX_STATUS_APPEALS).filter_map(|id| self.appeals.get(id)).map(AppealView::from).collect()
    }

    /// Whether an appeal of this restriction is waiting for a decision.
    pub(crate) fn open_appeal_on(&self, restriction_id: &str) -> bool {
        self.appeals_by_subject
            .get(restriction_id)
            .is_some_and(|ids| ids.iter().any(|id| self.appeals.get(id).is_some_and(|a| a.outcome.is_none())))
    }
}
