//! The outbox row's life, as a pure type: no clock, no I/O, no randomness of its own.
//!
//! ```text
//!   pending ──begin──▶ delivering ──succeed──▶ delivered
//!      ▲                  │    ▲
//!      │                  │fail (transient, attempts left)
//!      │                  ▼    │begin (once due)
//!      │               retry_at(t)
//!      │                  │fail (permanent, or the last attempt)
//!      └────replay──── dead ◀─┘
//! ```
//!
//! A `delivering` row whose outcome was never recorded (the process died mid-send) is
//! `reclaim`ed once its lease has passed: counted as a failed attempt, so it is sent again
//! (at least once; the receiver's idempotency key drops the duplicate) or, if it was the
//! last attempt, parked as dead. `delivered` is final; `dead` leaves only by `replay`.

use crate::backoff::RetryPolicy;
use crate::message::OutboxMessage;
use serde::{Deserialize, Serialize};

/// Longest error text kept on a row.
pub const MAX_ERROR_CHARS: usize = 512;
/// Most replays of one message (each gives it a fresh set of attempts).
pub const MAX_REPLAYS: u32 = 100;

/// Where a message is in its life. Times are unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivering { since_ms: i64 },
    Delivered { at_ms: i64 },
    RetryAt { at_ms: i64 },
    Dead { at_ms: i64 },
}

impl DeliveryState {
    pub fn name(&self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivering { .. } => "delivering",
            DeliveryState::Delivered { .. } => "delivered",
            DeliveryState::RetryAt { .. } => "retry_at",
            DeliveryState::Dead { .. } => "dead",
        }
    }
}

/// One outbox row: the message and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub message: OutboxMessage,
    pub state: DeliveryState,
    /// Attempts begun since the message was stored or last replayed.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub replays: u32,
    /// A challenge-code row's sealed code (`crate::sealed`); `None` on every other row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::sealed::SealedCode>,
}

/// How one attempt ended badly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth trying again (timeouts, 5xx, a 4xx SMTP reply, a channel or endpoint not
    /// configured yet).
    #[error("{0}")]
    Transient(String),
    /// Trying again cannot help (a refused address, a 410, a message that does not render).
    #[error("{0} (permanent)")]
    Permanent(String),
}

/// A transition the row's state does not allow; the row is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("cannot {event} a message that is {from}")]
    WrongState { event: &'static str, from: &'static str },
    #[error("the message is not due until {at_ms}")]
    NotDue { at_ms: i64 },
    #[error("the lease of the attempt in flight has not expired")]
    LeaseHeld,
    #[error("the message was replayed {MAX_REPLAYS} times already")]
    TooManyReplays,
}

fn clip(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(MAX_ERROR_CHARS).collect()
}

impl OutboxEntry {
    /// A new row, as the writer stores it beside its event.
    pub fn new(message: OutboxMessage) -> OutboxEntry {
        OutboxEntry { message, state: DeliveryState::Pending, attempts: 0, last_error: None, replays: 0, code: None }
    }

    /// Checks a row as stored: a challenge code's row carries its code sealed beside the
    /// message, never as an argument; every other row is a complete, sendable message.
    pub fn validate_at_rest(&self) -> Result<(), crate::message::MessageError> {
        let is_code = self.message.kind == crate::message::EventKind::ChallengeCode;
        if self.message.arguments.contains_key("code") || is_code != self.code.is_some() {
            return Err(crate::message::MessageError::BadArgument("code".into()));
        }
        if !is_code {
            return self.message.validate();
        }
        // What the dispatcher will send: the same message with a code put in.
        let mut sendable = self.message.clone();
        sendable.arguments.insert("code".into(), "000000".into());
        sendable.validate()
    }

    /// Erases the sealed code (delivered, dead, or its challenge over): the row keeps
    /// everything else. Returns whether there was one.
    pub fn erase_code(&mut self) -> bool {
        self.code.as_mut().and_then(|c| c.ciphertext.take()).is_some()
    }

    fn wrong(&self, event: &'static str) -> TransitionError {
        TransitionError::WrongState { event, from: self.state.name() }
    }

    /// Whether a dispatcher should pick the row up at `now_ms` (to `begin` it, or to
    /// `reclaim` an attempt whose lease of `lease_ms` ran out).
    pub fn is_due(&self, now_ms: i64, lease_ms: i64) -> bool {
        match self.state {
            DeliveryState::Pending => true,
            DeliveryState::RetryAt { at_ms } => at_ms <= now_ms,
            DeliveryState::Delivering { since_ms } => since_ms.saturating_add(lease_ms) <= now_ms,
            DeliveryState::Delivered { .. } | DeliveryState::Dead { .. } => false,
        }
    }

    /// Starts an attempt: `pending` or a due `retry_at` becomes `delivering`. The writer
    /// persists this before sending, so a crash mid-send is seen and reclaimed.
    pub fn begin(&mut self, now_ms: i64) -> Result<(), TransitionError> {
        match self.state {
            DeliveryState::Pending => {}
            DeliveryState::RetryAt { at_ms } if at_ms > now_ms => return Err(TransitionError::NotDue { at_ms }),
            DeliveryState::RetryAt { .. } => {}
            _ => return Err(self.wrong("begin")),
        }
        self.state = DeliveryState::Delivering { since_ms: now_ms };
        self.attempts += 1;
        Ok(())
    }

    /// The attempt in flight was delivered.
    pub fn succeed(&mut self, now_ms: i64) -> Result<(), TransitionError> {
        if !matches!(self.state, DeliveryState::Delivering { .. }) {
            return Err(self.wrong("succeed"));
        }
        self.state = DeliveryState::Delivered { at_ms: now_ms };
        self.last_error = None;
        Ok(())
    }

    /// The attempt in flight failed: retry after the policy's jittered wait (`random` from
    /// the OS generator), or dead if the failure is permanent or attempts are used up.
    pub fn fail(
        &mut self,
        now_ms: i64,
        error: &DeliveryError,
        policy: &RetryPolicy,
        random: u64,
    ) -> Result<(), TransitionError> {
        if !matches!(self.state, DeliveryState::Delivering { .. }) {
            return Err(self.wrong("fail"));
        }
        self.last_error = Some(clip(&error.to_string()));
        let permanent = matches!(error, DeliveryError::Permanent(_));
        self.state = if permanent || self.attempts >= policy.max_attempts {
            DeliveryState::Dead { at_ms: now_ms }
        } else {
            let wait = i64::try_from(policy.delay_ms(self.attempts, random)).unwrap_or(i64::MAX);
            DeliveryState::RetryAt { at_ms: now_ms.saturating_add(wait) }
        };
        Ok(())
    }

    /// An attempt whose outcome was never recorded within `lease_ms`: a failed attempt.
    pub fn reclaim(
        &mut self,
        now_ms: i64,
        lease_ms: i64,
        policy: &RetryPolicy,
        random: u64,
    ) -> Result<(), TransitionError> {
        match self.state {
            DeliveryState::Delivering { since_ms } if since_ms.saturating_add(lease_ms) > now_ms => {
                Err(TransitionError::LeaseHeld)
            }
            DeliveryState::Delivering { .. } => {
                let error = DeliveryError::Transient("no outcome was recorded within the lease".into());
                self.fail(now_ms, &error, policy, random)
            }
            _ => Err(self.wrong("reclaim")),
        }
    }

    /// A dead letter back to `pending` with a fresh set of attempts (`xiezhi outbox replay`).
    pub fn replay(&mut self) -> Result<(), TransitionError> {
        if !matches!(self.state, DeliveryState::Dead { .. }) {
            return Err(self.wrong("replay"));
        }
        if self.replays >= MAX_REPLAYS {
            return Err(TransitionError::TooManyReplays);
        }
        self.state = DeliveryState::Pending;
        self.attempts = 0;
        self.replays += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::sample;
    use crate::message::{EventKind, Language, Recipient};
    use proptest::prelude::*;

    fn entry() -> OutboxEntry {
        OutboxEntry::new(sample(
            EventKind::AppealReceived,
            Recipient::Webhook { endpoint_id: "ops".into() },
            Language::En,
        ))
    }

    const POLICY: RetryPolicy = RetryPolicy { base_ms: 1_000, cap_ms: 8_000, max_attempts: 3 };

    #[test]
    fn a_message_retries_then_dies_and_replays() {
        let mut e = entry();
        let err = DeliveryError::Transient("HTTP 503".into());
        e.begin(0).expect("pending begins");
        e.fail(10, &err, &POLICY, u64::MAX).expect("fails");
        assert_eq!(e.state, DeliveryState::RetryAt { at_ms: 10 + (u64::MAX % 1001) as i64 });
        assert_eq!(e.begin(11), Err(TransitionError::NotDue { at_ms: 10 + (u64::MAX % 1001) as i64 }));
        e.begin(5_000).expect("due");
        e.fail(5_000, &err, &POLICY, 0).expect("fails");
        assert_eq!(e.state, DeliveryState::RetryAt { at_ms: 5_000 });
        e.begin(5_000).expect("due");
        e.fail(6_000, &err, &POLICY, 0).expect("fails");
        assert_eq!(e.state, DeliveryState::Dead { at_ms: 6_000 });
        assert_eq!(e.attempts, 3);
        assert_eq!(e.last_error.as_deref(), Some("HTTP 503"));
        assert!(!e.is_due(i64::MAX, 0));
        e.replay().expect("dead replays");
        assert_eq!((e.state, e.attempts, e.replays), (DeliveryState::Pending, 0, 1));
        e.begin(7_000).expect("begins");
        e.succeed(7_001).expect("delivered");
        assert_eq!(e.replay(), Err(TransitionError::WrongState { event: "replay", from: "delivered" }));
    }

    #[test]
    fn a_permanent_failure_is_dead_at_once() {
        let mut e = entry();
        e.begin(0).expect("begins");
        e.fail(1, &DeliveryError::Permanent("HTTP 410".into()), &POLICY, 0).expect("fails");
        assert_eq!(e.state, DeliveryState::Dead { at_ms: 1 });
        assert_eq!(e.last_error.as_deref(), Some("HTTP 410 (permanent)"));
    }

    #[test]
    fn an_attempt_lost_in_a_crash_is_reclaimed_after_its_lease() {
        let mut e = entry();
        e.begin(1_000).expect("begins");
        assert!(!e.is_due(1_500, 1_000));
        assert_eq!(e.reclaim(1_500, 1_000, &POLICY, 0), Err(TransitionError::LeaseHeld));
        assert!(e.is_due(2_000, 1_000));
        e.reclaim(2_000, 1_000, &POLICY, 0).expect("reclaimed");
        assert_eq!(e.state, DeliveryState::RetryAt { at_ms: 2_000 });
        assert_eq!(e.attempts, 1);
    }

    #[test]
    fn rows_round_trip_through_json() {
        let mut e = entry();
        e.begin(5).expect("begins");
        let json = serde_json::to_string(&e).expect("serialises");
        assert!(json.contains(r#""state":{"state":"delivering","since_ms":5}"#), "{json}");
        assert_eq!(serde_json::from_str::<OutboxEntry>(&json).expect("parses"), e);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Begin,
        Succeed,
        Fail { permanent: bool, random: u64 },
        Reclaim { random: u64 },
        Replay,
        Wait(i64),
    }

    fn ops() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Begin),
            1 => Just(Op::Succeed),
            3 => (any::<bool>(), any::<u64>()).prop_map(|(permanent, random)| Op::Fail { permanent, random }),
            1 => any::<u64>().prop_map(|random| Op::Reclaim { random }),
            1 => Just(Op::Replay),
            2 => (0i64..20_000).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #[test]
        fn the_state_machine_keeps_its_invariants(
            ops in proptest::collection::vec(ops(), 1..80),
            max_attempts in 1u32..6,
        ) {
            let policy = RetryPolicy { max_attempts, ..POLICY };
            let lease = 5_000;
            let mut e = entry();
            let mut now = 0i64;
            for op in ops {
                let before = e.clone();
                let result = match op {
                    Op::Begin => e.begin(now),
                    Op::Succeed => e.succeed(now),
                    Op::Fail { permanent, random } => {
                        let error = if permanent { DeliveryError::Permanent("x".into()) } else { DeliveryError::Transient("y".into()) };
                        e.fail(now, &error, &policy, random)
                    }
                    Op::Reclaim { random } => e.reclaim(now, lease, &policy, random),
                    Op::Replay => e.replay(),
                    Op::Wait(ms) => { now += ms; Ok(()) }
                };
                // A refused transition changes nothing.
                if result.is_err() {
                    prop_assert_eq!(&e, &before);
                }
                prop_assert!(e.attempts <= policy.max_attempts);
                match before.state {
                    // Delivered is final: nothing moves it, so it is never also dead.
                    DeliveryState::Delivered { .. } => prop_assert_eq!(&e, &before),
                    // Dead leaves only by replay, and only to pending.
                    DeliveryState::Dead { .. } if e.state != before.state => {
                        let replayed = matches!(op, Op::Replay);
                        prop_assert!(replayed);
                        prop_assert_eq!(e.state, DeliveryState::Pending);
                    }
                    _ => {}
                }
                if matches!(op, Op::Replay) && result.is_ok() {
                    let was_dead = matches!(before.state, DeliveryState::Dead { .. });
                    prop_assert!(was_dead);
                }
                // A retry is scheduled within [now, now + cap] of the failure that set it.
                if let (DeliveryState::RetryAt { at_ms }, true) = (e.state, e.state != before.state) {
                    prop_assert!(at_ms >= now && at_ms <= now + policy.cap_ms as i64);
                }
            }
        }
    }
}
