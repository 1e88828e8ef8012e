//! The transactional outbox: the messages an event owes its user and the operator, stored
//! as `outbox` records in the same batch as the event, so a committed event always has its
//! messages and a refused batch has none. Delivery is `xiezhi_notify`'s; what happens here
//! is writing rows, handing out due ones, and applying delivery outcomes by compare-and-set.
//!
//! A one-time code is an outbox row too (`challenge_code`, SMS only), written in its
//! challenge's batch with the code sealed under the outbox key, bound to the row id
//! (`xiezhi_notify::sealed`); the code is never a stored argument. The ciphertext is erased
//! once the row is delivered or dead, or its challenge is over, and such a row is never
//! replayed (ARCHITECTURE.md, "The path of a notification").

use crate::appeals::Appeal;
use crate::error::CoreError;
use crate::model::{timestamp, AppealOutcome, LiftCause, Reply, Restriction};
use crate::restrictions::ordered_id;
use crate::state::State;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xiezhi_notify::{
    DeliveryState, EventKind, Language as NotifyLanguage, OutboxEntry, OutboxMessage, Recipient, SealedCode,
};
use xiezhi_store::{Batch, RecordKind, StoreError};

/// Most operator webhook endpoints every event is sent to.
pub const MAX_OPERATOR_WEBHOOKS: usize = 2;
/// Most messages one event writes: SMS, email and each operator endpoint.
pub const MAX_MESSAGES_PER_EVENT: usize = 2 + MAX_OPERATOR_WEBHOOKS;
/// Most rows one claim hands out, one record or replay command changes: each is one store
/// item, and a command writes at most `MAX_ITEMS_PER_COMMAND`.
pub const MAX_OUTBOX_ROWS_PER_COMMAND: usize = 16;
/// Most rows one `GET /v1/outbox` page lists (the listings' common page limit).
pub const MAX_OUTBOX_PAGE: usize = crate::restrictions::MAX_PAGE;

/// Which channels the writer writes messages for. A channel the service does not send on
/// gets no rows: they would only retry and die.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxConfig {
    /// SMS to the user id (the SMS gateway maps it to the number).
    pub sms: bool,
    /// Email to the line's `contact.email`, when it has one.
    pub email: bool,
    /// Operator webhook endpoint ids (at most [`MAX_OPERATOR_WEBHOOKS`]); every event goes
    /// to each.
    pub operator_webhooks: Vec<String>,
}

impl OutboxConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.operator_webhooks.len() > MAX_OPERATOR_WEBHOOKS {
            return Err(format!("at most {MAX_OPERATOR_WEBHOOKS} operator webhook endpoints"));
        }
        Ok(())
    }
}

/// The status a listing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Not delivered yet and not given up: `pending`, `delivering` or `retry_at`.
    Pending,
    Dead,
    Delivered,
}

impl OutboxStatus {
    fn holds(self, state: &DeliveryState) -> bool {
        match state {
            DeliveryState::Delivered { .. } => self == OutboxStatus::Delivered,
            DeliveryState::Dead { .. } => self == OutboxStatus::Dead,
            _ => self == OutboxStatus::Pending,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OutboxQuery {
    pub status: Option<OutboxStatus>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// `POST /v1/outbox/replay`: one dead letter, or the oldest dead letters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutboxReplay {
    /// A message id (`msg_…`). Not with `all_dead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Replays the oldest dead letters, up to 16 a call (`more` says whether some remain).
    #[serde(default)]
    pub all_dead: bool,
}

/// One row as listed: never the recipient's address or number, never the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct OutboxRowView {
    pub id: String,
    /// `restriction_imposed`, `restriction_lifted`, `appeal_received`, `appeal_decided`,
    /// `compensation_paid`, `challenge_code` (never the code or its ciphertext).
    pub kind: String,
    /// `sms`, `email` or `webhook`.
    pub channel: String,
    /// The webhook endpoint id; addresses and numbers are not shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    /// `pending`, `delivering`, `retry_at`, `delivered` or `dead`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_at: Option<String>,
    pub attempts: u32,
    pub replays: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl From<&OutboxEntry> for OutboxRowView {
    fn from(e: &OutboxEntry) -> OutboxRowView {
        let (channel, endpoint_id) = match &e.message.recipient {
            Recipient::Webhook { endpoint_id } => ("webhook", Some(endpoint_id.clone())),
            Recipient::Email { .. } => ("email", None),
            Recipient::Sms { .. } => ("sms", None),
        };
        let at_ms = match e.state {
            DeliveryState::Pending => None,
            DeliveryState::Delivering { since_ms } => Some(since_ms),
            DeliveryState::Delivered { at_ms } | DeliveryState::RetryAt { at_ms } | DeliveryState::Dead { at_ms } => {
                Some(at_ms)
            }
        };
        OutboxRowView {
            id: e.message.id.clone(),
            kind: e.message.kind.as_str().to_owned(),
            channel: channel.to_owned(),
            endpoint_id,
            state: e.state.name().to_owned(),
            state_at: at_ms.map(timestamp),
            attempts: e.attempts,
            replays: e.replays,
            last_error: e.last_error.clone(),
        }
    }
}

/// `GET /v1/outbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct OutboxPage {
    pub messages: Vec<OutboxRowView>,
    /// Where the next page starts; `null` at the end.
    pub next_cursor: Option<String>,
}

/// `POST /v1/outbox/replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct OutboxReplayView {
    /// The message ids now pending again.
    pub replayed: Vec<String>,
    /// With `all_dead`: whether dead letters remain (call again).
    pub more: bool,
}

fn document<T: Serialize>(view: T) -> Reply {
    Reply::Document(serde_json::to_value(view).expect("views serialise"))
}

/// One delivery change for the writer to apply where the stored row is still as it was
/// read: `from` and `from_attempts` (a `xiezhi_notify::Transition`).
pub type OutboxTransition = xiezhi_notify::Transition;

/// What the rows of one event are about, and the arguments their templates take.
struct Event {
    kind: EventKind,
    credit_line_id: String,
    user_id: String,
    arguments: Vec<(&'static str, String)>,
}

/// Whether a transition is one step of the row's state machine (`xiezhi_notify::outbox`):
/// pending or a retry begins an attempt (one more), an attempt in flight ends (delivered,
/// retry or dead) or is reclaimed, with its count unchanged. Replays do not come this way.
fn step_allowed(t: &OutboxTransition) -> bool {
    let to = t.entry.state;
    let begins = matches!(t.from, DeliveryState::Pending | DeliveryState::RetryAt { .. })
        && matches!(to, DeliveryState::Delivering { .. })
        && t.entry.attempts == t.from_attempts.saturating_add(1);
    let ends = matches!(t.from, DeliveryState::Delivering { .. })
        && matches!(to, DeliveryState::Delivered { .. } | DeliveryState::RetryAt { .. } | DeliveryState::Dead { .. })
        && t.entry.attempts == t.from_attempts;
    begins || ends
}

fn lifted_by(cause: Option<LiftCause>) -> &'static str {
    // The templates' selector values (crates/notify/locales).
    match cause {
        Some(LiftCause::Expired) => "expired",
        Some(LiftCause::ChallengePassed) => "challenge",
        Some(LiftCause::AppealOverturned) => "appeal",
        Some(LiftCause::ProfileCompleted) => "profile",
        _ => "operator",
    }
}

fn scope_name(r: &Restriction) -> String {
    serde_json::to_value(r.scope).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl State {
    /// Takes the stored outbox into memory (at start-up and after every reload).
    pub(crate) fn reload_outbox(&mut self) -> Result<(), StoreError> {
        self.outbox_rows.clear();
        self.open_outbox.clear();
        self.dead_outbox.clear();
        self.code_rows.clear();
        for r in self.store.records(RecordKind::Outbox)? {
            let entry: OutboxEntry = serde_json::from_str(&r.body)
                .map_err(|e| StoreError::Corrupt(format!("outbox record {}: {e}", r.id)))?;
            self.remember_outbox(entry);
        }
        Ok(())
    }

    fn remember_outbox(&mut self, entry: OutboxEntry) {
        let id = entry.message.id.clone();
        match &entry.code {
            Some(SealedCode { challenge_id, ciphertext: Some(_), .. }) => {
                self.code_rows.insert(challenge_id.clone(), id.clone());
            }
            Some(SealedCode { challenge_id, .. }) => {
                self.code_rows.remove(challenge_id);
            }
            None => {}
        }
        self.open_outbox.remove(&id);
        self.dead_outbox.remove(&id);
        match entry.state {
            DeliveryState::Delivered { .. } => {}
            DeliveryState::Dead { .. } => {
                self.dead_outbox.insert(id.clone());
            }
            _ => {
                self.open_outbox.insert(id.clone());
            }
        }
        self.outbox_rows.insert(id, entry);
    }

    fn save_outbox(&mut self, mut entry: OutboxEntry, now_ms: i64, out: &mut Batch) {
        if matches!(entry.state, DeliveryState::Delivered { .. } | DeliveryState::Dead { .. }) {
            // Sent or given up: a code is erased from the row whoever recorded it.
            entry.erase_code();
        }
        assert!(!entry.message.arguments.contains_key("code"), "a plaintext one-time code reached the outbox");
        assert!(entry.validate_at_rest().is_ok(), "outbox message {} is not sendable", entry.message.id);
        self.put(out, RecordKind::Outbox, &entry.message.id.clone(), &entry, now_ms);
        self.remember_outbox(entry);
    }

    /// The recipients of an event for a line's owner, in the owner's language.
    fn recipients(&self, credit_line_id: &str, user_id: &str) -> (Vec<Recipient>, NotifyLanguage) {
        let contact = self.line_profiles.get(credit_line_id).and_then(|p| p.contact.as_ref());
        let language = match contact.and_then(|c| c.language) {
            Some(crate::status::Language::En) => NotifyLanguage::En,
            _ => NotifyLanguage::Zh,
        };
        let config = &self.outbox_config;
        let mut recipients = Vec::with_capacity(MAX_MESSAGES_PER_EVENT);
        if config.sms && !user_id.is_empty() {
            recipients.push(Recipient::Sms { phone: user_id.to_owned() });
        }
        if let (true, Some(address)) = (config.email, contact.and_then(|c| c.email.clone())) {
            recipients.push(Recipient::Email { address });
        }
        for endpoint_id in config.operator_webhooks.iter().take(MAX_OPERATOR_WEBHOOKS) {
            recipients.push(Recipient::Webhook { endpoint_id: endpoint_id.clone() });
        }
        (recipients, language)
    }

    /// Writes an event's messages into the batch: at most [`MAX_MESSAGES_PER_EVENT`]
    /// items. A message that would not validate (a user id with a space as the SMS
    /// recipient) is left out and counted, rather than failing the event.
    fn emit(&mut self, event: Event, now_ms: i64, out: &mut Batch) {
        let (recipients, language) = self.recipients(&event.credit_line_id, &event.user_id);
        let before = out.items();
        for recipient in recipients {
            let id = ordered_id("msg", now_ms, self.outbox_rows.keys().next_back());
            let arguments: BTreeMap<String, String> =
                event.arguments.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
            let message = OutboxMessage { id, kind: event.kind, recipient, language, arguments };
            if let Err(error) = message.validate() {
                metrics::counter!("xiezhi_outbox_unsendable_total").increment(1);
                tracing::warn!(kind = event.kind.as_str(), %error, "an outbox message was not written");
                continue;
            }
            self.save_outbox(OutboxEntry::new(message), now_ms, out);
        }
        assert!(out.items() - before <= MAX_MESSAGES_PER_EVENT, "one event wrote too many outbox rows");
    }

    /// A challenge's code as an outbox row in the challenge's own batch: an SMS to its user,
    /// the code sealed under the outbox key and bound to the row id. A code that cannot be
    /// sealed or sent (a user id that is no phone) writes no row, and is counted.
    pub(crate) fn code_event(
        &mut self,
        challenge: &crate::model::Challenge,
        code: &str,
        minutes: &str,
        now_ms: i64,
        out: &mut Batch,
    ) {
        let (_, language) = self.recipients(&challenge.credit_line_id, &challenge.user_id);
        let id = ordered_id("msg", now_ms, self.outbox_rows.keys().next_back());
        let arguments: BTreeMap<String, String> = [
            ("minutes", minutes),
            ("challenge_id", challenge.id.as_str()),
            ("credit_line_id", challenge.credit_line_id.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let recipient = Recipient::Sms { phone: challenge.user_id.clone() };
        let message = OutboxMessage { id: id.clone(), kind: EventKind::ChallengeCode, recipient, language, arguments };
        let mut entry = OutboxEntry::new(message);
        let sealed = self.code_key.seal(&id, code);
        let expires_at_ms = challenge.expires_at_ms;
        let written = sealed.map_err(|e| e.to_string()).and_then(|ciphertext| {
            let challenge_id = challenge.id.clone();
            entry.code = Some(SealedCode { challenge_id, expires_at_ms, ciphertext: Some(ciphertext) });
            entry.validate_at_rest().map_err(|e| e.to_string())
        });
        if let Err(error) = written {
            metrics::counter!("xiezhi_outbox_unsendable_total").increment(1);
            tracing::warn!(kind = "challenge_code", challenge_id = %challenge.id, %error, "a code's outbox row was not written");
            return;
        }
        self.save_outbox(entry, now_ms, out);
        self.outbox_wake.notify_one();
    }

    /// A challenge is over (answered, failed or expired): its code, if still at rest, is
    /// erased, and a row not yet delivered goes dead, so the code is never sent late.
    pub(crate) fn retire_code(
        &mut self,
        challenge_id: &str,
        status: crate::model::ChallengeStatus,
        now_ms: i64,
        out: &mut Batch,
    ) {
        let Some(id) = self.code_rows.remove(challenge_id) else { return };
        let Some(mut entry) = self.outbox_rows.get(&id).cloned() else { return };
        if !matches!(entry.state, DeliveryState::Delivered { .. } | DeliveryState::Dead { .. }) {
            let why = if status == crate::model::ChallengeStatus::Expired { "expired" } else { "answered" };
            entry.state = DeliveryState::Dead { at_ms: now_ms };
            entry.last_error = Some(format!("{why}: the challenge ended before its code was sent; never sent now"));
            metrics::counter!("xiezhi_outbox_codes_retired_total").increment(1);
        }
        self.save_outbox(entry, now_ms, out);
    }

    /// The messages a restriction's change owes: imposed (new) or lifted (not superseded:
    /// a restriction replaced by a newer one is not news).
    pub(crate) fn restriction_events(
        &mut self,
        before: Option<&Restriction>,
        r: &Restriction,
        now_ms: i64,
        out: &mut Batch,
    ) {
        let kind = match (before, r.lifted_at_ms) {
            (None, None) => EventKind::RestrictionImposed,
            (Some(b), Some(_)) if b.lifted_at_ms.is_none() => EventKind::RestrictionLifted,
            _ => return,
        };
        let mut arguments = vec![("restriction_id", r.id.clone()), ("scope", scope_name(r))];
        if kind == EventKind::RestrictionImposed {
            arguments.push(("expires_at", timestamp(r.until_ms)));
            arguments.push(("appeal_deadline", timestamp(r.appeal_deadline_ms)));
        } else {
            let cause = r.history.iter().rev().find_map(|e| e.cause);
            if cause == Some(LiftCause::Superseded) {
                return;
            }
            arguments.push(("lifted_by", lifted_by(cause).to_owned()));
        }
        let event = Event { kind, credit_line_id: r.credit_line_id.clone(), user_id: r.user_id.clone(), arguments };
        self.emit(event, now_ms, out);
    }

    /// The messages an appeal's change owes: received (new) or decided.
    pub(crate) fn appeal_events(&mut self, before: Option<&Appeal>, a: &Appeal, now_ms: i64, out: &mut Batch) {
        let (kind, arguments) = match (before, a.outcome) {
            (None, _) => (EventKind::AppealReceived, vec![("deadline", timestamp(a.deadline_ms))]),
            (Some(b), Some(outcome)) if b.outcome.is_none() => {
                let outcome = if outcome == AppealOutcome::Overturn { "overturn" } else { "uphold" };
                (EventKind::AppealDecided, vec![("outcome", outcome.to_owned())])
            }
            _ => return,
        };
        let mut arguments = arguments;
        arguments.push(("appeal_id", a.id.clone()));
        let event = Event { kind, credit_line_id: a.credit_line_id.clone(), user_id: a.user_id.clone(), arguments };
        self.emit(event, now_ms, out);
    }

    /// The messages a compensation owes once it is paid.
    pub(crate) fn compensation_events(
        &mut self,
        was_paid: bool,
        c: &crate::fund::Compensation,
        now_ms: i64,
        out: &mut Batch,
    ) {
        if was_paid || c.status != crate::fund::CompensationStatus::Paid {
            return;
        }
        let amount = xiezhi_money::Currency::from_alpha(&c.currency)
            .map_or_else(|| c.amount_minor.to_string(), |currency| crate::model::decimal(c.amount_minor, currency));
        let arguments = vec![("appeal_id", c.appeal_id.clone()), ("amount", amount), ("currency", c.currency.clone())];
        let event = Event {
            kind: EventKind::CompensationPaid,
            credit_line_id: c.credit_line_id.clone(),
            user_id: c.user_id.clone(),
            arguments,
        };
        self.emit(event, now_ms, out);
    }

    /// Up to `max` rows a dispatcher should look at now (pending, due for a retry, or in
    /// flight past `lease_ms`), oldest first. Reads only: claiming is a [`State::record_outbox`].
    pub(crate) fn due_outbox(&self, max: usize, lease_ms: i64, now_ms: i64) -> Reply {
        let due: Vec<&OutboxEntry> = self
            .open_outbox
            .iter()
            .filter_map(|id| self.outbox_rows.get(id))
            .filter(|e| e.is_due(now_ms, lease_ms))
            .take(max.min(MAX_OUTBOX_ROWS_PER_COMMAND))
            .collect();
        Reply::Document(serde_json::json!({ "rows": due }))
    }

    /// Applies delivery transitions, each only where the row is still in the state it was
    /// read in (compare-and-set): a row another dispatcher moved meanwhile is left alone and
    /// reported `lost`, so two dispatchers never both send it.
    pub(crate) fn record_outbox(
        &mut self,
        transitions: Vec<OutboxTransition>,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        if transitions.len() > MAX_OUTBOX_ROWS_PER_COMMAND {
            return Err(CoreError::InvalidRequest {
                field: "transitions".into(),
                message: format!("at most {MAX_OUTBOX_ROWS_PER_COMMAND} transitions at once"),
            });
        }
        let (mut applied, mut lost, mut refused) = (vec![], vec![], vec![]);
        for t in transitions {
            let id = t.entry.message.id.clone();
            let current = self.outbox_rows.get(&id);
            let unchanged = current.is_some_and(|c| {
                c.state == t.from
                    && c.attempts == t.from_attempts
                    && c.message == t.entry.message
                    && c.replays == t.entry.replays
            });
            if !unchanged {
                lost.push(id);
            } else if !step_allowed(&t) {
                // Not a step the row's state machine takes: a dispatcher's bug, kept out
                // of the store rather than trusted.
                tracing::error!(message_id = %id, from = t.from.name(), to = t.entry.state.name(), "an outbox transition was refused");
                refused.push(id);
            } else {
                self.save_outbox(t.entry, now_ms, out);
                applied.push(id);
            }
        }
        Ok(Reply::Document(serde_json::json!({ "applied": applied, "lost": lost, "refused": refused })))
    }

    pub(crate) fn list_outbox(&self, query: &OutboxQuery) -> Result<Reply, CoreError> {
        let limit = crate::restrictions::page_limit(query.limit)?;
        let status = query.status;
        let (rows, next_cursor) = crate::restrictions::page(&self.outbox_rows, query.cursor.as_deref(), limit, |e| {
            status.is_none_or(|s| s.holds(&e.state))
        });
        let messages = rows.into_iter().map(OutboxRowView::from).collect();
        Ok(document(OutboxPage { messages, next_cursor }))
    }

    /// Dead letters back to `pending` with a fresh set of attempts.
    pub(crate) fn replay_outbox(
        &mut self,
        request: OutboxReplay,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let ids: Vec<String> = match (&request.id, request.all_dead) {
            (Some(_), true) | (None, false) => {
                return Err(CoreError::InvalidRequest {
                    field: "id".into(),
                    message: "give a message `id` or `all_dead: true`, not both".into(),
                })
            }
            (Some(id), false) => {
                let entry =
                    self.outbox_rows.get(id).ok_or_else(|| CoreError::OutboxMessageNotFound { id: id.clone() })?;
                if !matches!(entry.state, DeliveryState::Dead { .. }) {
                    return Err(CoreError::OutboxNotDead { id: id.clone(), state: entry.state.name().to_owned() });
                }
                if entry.code.is_some() {
                    return Err(CoreError::OutboxCodeNotReplayable { id: id.clone() });
                }
                vec![id.clone()]
            }
            (None, true) => self.dead_letters(MAX_OUTBOX_ROWS_PER_COMMAND + 1),
        };
        let more = ids.len() > MAX_OUTBOX_ROWS_PER_COMMAND;
        let mut replayed = vec![];
        for id in ids.into_iter().take(MAX_OUTBOX_ROWS_PER_COMMAND) {
            let Some(mut entry) = self.outbox_rows.get(&id).cloned() else { continue };
            match entry.replay() {
                Ok(()) => {
                    self.save_outbox(entry, now_ms, out);
                    replayed.push(id);
                }
                Err(refused) if request.id.is_some() => {
                    return Err(CoreError::OutboxNotDead { id, state: refused.to_string() });
                }
                Err(_) => {}
            }
        }
        metrics::counter!("xiezhi_outbox_replayed_total").increment(replayed.len() as u64);
        Ok(document(OutboxReplayView { replayed, more }))
    }

    /// The oldest dead letters that may still be replayed, up to `max`.
    fn dead_letters(&self, max: usize) -> Vec<String> {
        self.dead_outbox
            .iter()
            // A code's dead row was erased: it is skipped, never sent again.
            .filter(|id| {
                self.outbox_rows
                    .get(*id)
                    .is_some_and(|e| e.code.is_none() && e.replays < xiezhi_notify::outbox::MAX_REPLAYS)
            })
            .take(max)
            .cloned()
            .collect()
    }
}
