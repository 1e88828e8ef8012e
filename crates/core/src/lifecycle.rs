//! What happened to a payment after its decision: the challenge sent and how it ended, the
//! hold authorized, captured, voided, expired or refunded, and the appeals of the decision.
//! Each event is kept on the payment's record, written in the same batch as the event
//! itself (the payment record is rewritten by every one of them anyway), so the lifecycle
//! is exactly as durable as the payment's state and costs no extra write. The decision
//! record stays as decided; `GET /v1/payments/{id}/decision` shows both.

use crate::error::CoreError;
use crate::model::{timestamp, ChallengeStatus, Payment};
use crate::state::State;
use serde::{Deserialize, Serialize};
use xiezhi_store::{Batch, RecordKind};

/// Most events one payment keeps: each kind happens at most a few times (refunds and
/// appeals are bounded), so this is a guard against a bug, never a limit reached in use.
pub const MAX_LIFECYCLE_EVENTS: usize = 64;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LifecycleKind {
    /// A challenge was opened and its code sent to the shopper's phone: a step-up's, or the
    /// one that lifts the restriction a decision imposed.
    ChallengeSent,
    ChallengePassed,
    /// The shopper gave up, or ran out of tries.
    ChallengeFailed,
    /// Nobody answered in time.
    ChallengeExpired,
    /// The hold was placed on the line: at once on an approval, after a passed challenge.
    Authorized,
    /// Refused after a passed challenge: caps, lists, restrictions or credit had changed.
    Declined,
    Captured,
    Voided,
    /// The hold ran out before it was captured.
    Expired,
    /// Part or all of what was captured was refunded (`full` when it is all by now).
    Refunded,
    /// The shopper appealed the decision to a person.
    Appealed,
    AppealUpheld,
    AppealOverturned,
}

impl LifecycleKind {
    /// How a challenge ended, as an event.
    pub fn resolved(status: ChallengeStatus) -> LifecycleKind {
        match status {
            ChallengeStatus::Passed => LifecycleKind::ChallengePassed,
            ChallengeStatus::Expired => LifecycleKind::ChallengeExpired,
            ChallengeStatus::Failed | ChallengeStatus::Pending => LifecycleKind::ChallengeFailed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleKind::ChallengeSent => "challenge_sent",
            LifecycleKind::ChallengePassed => "challenge_passed",
            LifecycleKind::ChallengeFailed => "challenge_failed",
            LifecycleKind::ChallengeExpired => "challenge_expired",
            LifecycleKind::Authorized => "authorized",
            LifecycleKind::Declined => "declined",
            LifecycleKind::Captured => "captured",
            LifecycleKind::Voided => "voided",
            LifecycleKind::Expired => "expired",
            LifecycleKind::Refunded => "refunded",
            LifecycleKind::Appealed => "appealed",
            LifecycleKind::AppealUpheld => "appeal_upheld",
            LifecycleKind::AppealOverturned => "appeal_overturned",
        }
    }
}

/// One event, with when it happened and what it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LifecycleEvent {
    pub event: LifecycleKind,
    /// When, as RFC 3339 (UTC).
    pub at: String,
    /// When, in milliseconds since the Unix epoch (the record's own clock, as `now_ms`).
    pub at_ms: i64,
    /// The challenge sent, passed, failed or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    /// Captured or refunded, in minor units of the payment's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_minor: Option<i64>,
    /// A refund: whether everything captured has now been refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<bool>,
    /// The appeal filed or decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appeal_id: Option<String>,
    /// A decline after a passed challenge: the reasons that refused it then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<String>,
}

impl LifecycleEvent {
    pub fn new(event: LifecycleKind, at_ms: i64) -> LifecycleEvent {
        LifecycleEvent {
            event,
            at: timestamp(at_ms),
            at_ms,
            challenge_id: None,
            amount_minor: None,
            full: None,
            appeal_id: None,
            reason_codes: vec![],
        }
    }

    pub fn challenge(event: LifecycleKind, challenge_id: &str, at_ms: i64) -> LifecycleEvent {
        LifecycleEvent { challenge_id: Some(challenge_id.to_owned()), ..LifecycleEvent::new(event, at_ms) }
    }

    pub fn amount(event: LifecycleKind, amount_minor: i64, at_ms: i64) -> LifecycleEvent {
        LifecycleEvent { amount_minor: Some(amount_minor), ..LifecycleEvent::new(event, at_ms) }
    }
}

impl Payment {
    /// Adds an event to the payment's lifecycle (kept in time order: events come from the
    /// writer, whose clock never goes back).
    pub(crate) fn record(&mut self, event: LifecycleEvent) {
        if self.lifecycle.len() < MAX_LIFECYCLE_EVENTS {
            self.lifecycle.push(event);
        }
    }
}

impl State {
    /// Records an event on a payment not otherwise changed by it (an appeal): the payment
    /// record is rewritten with the event and nothing else. Reads before it writes, so a
    /// failed read leaves the batch as it was; a payment that is gone records nothing.
    pub(crate) fn record_on_payment(
        &mut self,
        payment_id: &str,
        event: LifecycleEvent,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<(), CoreError> {
        let Some(mut payment) = self.get::<Payment>(RecordKind::Payment, payment_id)? else { return Ok(()) };
        payment.record(event);
        self.put(out, RecordKind::Payment, payment_id, &payment, now_ms);
        Ok(())
    }

    /// A payment's lifecycle, oldest first (empty for a payment gone or recorded before
    /// lifecycles were kept).
    pub(crate) fn lifecycle(&mut self, payment_id: &str) -> Result<Vec<LifecycleEvent>, CoreError> {
        Ok(self.get::<Payment>(RecordKind::Payment, payment_id)?.map(|p| p.lifecycle).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_what_the_api_sends() {
        use LifecycleKind::*;
        for kind in [
            ChallengeSent,
            ChallengePassed,
            ChallengeFailed,
            ChallengeExpired,
            Authorized,
            Declined,
            Captured,
            Voided,
            Expired,
            Refunded,
            Appealed,
            AppealUpheld,
            AppealOverturned,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        // A refund's record: only the fields it has, and it reads back the same.
        let event = LifecycleEvent { full: Some(false), ..LifecycleEvent::amount(Refunded, 3_000, 1_795_000_000_000) };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"event": "refunded", "at": "2026-11-18T11:06:40Z", "at_ms": 1_795_000_000_000i64,
                               "amount_minor": 3_000, "full": false})
        );
        assert_eq!(serde_json::from_value::<LifecycleEvent>(json).unwrap(), event);
    }
}
