//! The dispatcher: takes a batch of outbox rows, decides which are due (pure), sends each
//! through its channel with bounded concurrency (the only I/O), and returns the state
//! changes for the caller to persist. It holds no rows and no queue of its own: the outbox
//! is the queue, so nothing is lost when the process dies.
//!
//! The intended loop (the writer's store is the outbox):
//!
//! 1. read up to [`MAX_DISPATCH_BATCH`] rows that [`OutboxEntry::is_due`];
//! 2. [`Dispatcher::claim`] them and persist the `delivering` rows, each as a
//!    compare-and-set on [`Transition::from`] (so two dispatchers never send the same row
//!    at once; a row whose write lost is dropped from this round);
//! 3. [`Dispatcher::deliver`] the claimed rows and persist what comes back.
//!
//! A crash between 2 and 3 leaves rows `delivering`; once their lease has passed the next
//! `claim` reclaims them as failed attempts, so they are sent again: at least once, and
//! receivers drop the duplicate by the message id.

use crate::backoff::{os_random, RetryPolicy};
use crate::message::{ChannelKind, OutboxMessage};
use crate::outbox::{DeliveryError, DeliveryState, OutboxEntry};
use crate::render::Renderer;
use crate::Channel;
use std::sync::Arc;
use std::time::Duration;

/// Most rows one call takes.
pub const MAX_DISPATCH_BATCH: usize = 1_024;
/// Most sends in flight at once, and the default.
pub const MAX_CONCURRENCY: usize = 64;
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The whole of one attempt (connect, TLS, request, answer), whatever the channel's own
/// timeouts say.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a `delivering` row is left alone before it counts as a lost attempt: longer
/// than any attempt can take.
pub const DEFAULT_LEASE_MS: i64 = 5 * 60 * 1000;

/// Unix milliseconds (replaceable in tests).
pub type MillisClock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatcherConfig {
    pub policy: RetryPolicy,
    pub concurrency: usize,
    pub attempt_timeout: Duration,
    pub lease_ms: i64,
}

impl Default for DispatcherConfig {
    fn default() -> DispatcherConfig {
        DispatcherConfig {
            policy: RetryPolicy::default(),
            concurrency: DEFAULT_CONCURRENCY,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            lease_ms: DEFAULT_LEASE_MS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("the retry policy: {0}")]
    Policy(#[from] crate::backoff::PolicyError),
    #[error("concurrency must be 1-{MAX_CONCURRENCY}")]
    Concurrency,
    #[error("the lease must be longer than the attempt timeout, which must be non-zero")]
    Lease,
    #[error("at most {MAX_DISPATCH_BATCH} rows per call")]
    BatchTooLarge,
}

/// One row's change: persist `entry` where the stored row is still in state `from` with
/// `from_attempts` attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: DeliveryState,
    pub from_attempts: u32,
    pub entry: OutboxEntry,
}

/// What [`Dispatcher::claim`] decided.
#[derive(Debug, Default)]
pub struct Claim {
    /// Rows now `delivering`: persist, then hand them to [`Dispatcher::deliver`].
    pub to_send: Vec<Transition>,
    /// Lost attempts reclaimed (now `retry_at` or `dead`): persist only.
    pub reclaimed: Vec<Transition>,
}

/// The channel for each kind; a kind with none is retried (and in the end parked), so
/// messages wait for a channel configured later rather than vanish.
#[derive(Clone, Default)]
pub struct Channels {
    pub webhook: Option<Arc<dyn Channel>>,
    pub email: Option<Arc<dyn Channel>>,
    pub sms: Option<Arc<dyn Channel>>,
}

impl Channels {
    fn get(&self, kind: ChannelKind) -> Option<&Arc<dyn Channel>> {
        match kind {
            ChannelKind::Webhook => self.webhook.as_ref(),
            ChannelKind::Email => self.email.as_ref(),
            ChannelKind::Sms => self.sms.as_ref(),
        }
    }
}

struct Inner {
    channels: Channels,
    renderer: Renderer,
    config: DispatcherConfig,
    clock: MillisClock,
    /// Opens challenge codes' sealed codes; without it such rows go dead unsent.
    code_key: Option<crate::sealed::CodeKey>,
}

/// Routes outbox rows to their channels. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("config", &self.inner.config).finish()
    }
}

fn transition(before: &OutboxEntry, entry: OutboxEntry) -> Transition {
    Transition { from: before.state, from_attempts: before.attempts, entry }
}

impl Dispatcher {
    pub fn new(channels: Channels, config: DispatcherConfig) -> Result<Dispatcher, DispatchError> {
        Dispatcher::with_clock(channels, config, Arc::new(system_unix_millis))
    }

    /// A dispatcher reading time from `clock` (unix milliseconds) rather than the system's.
    pub fn with_clock(
        channels: Channels,
        config: DispatcherConfig,
        clock: MillisClock,
    ) -> Result<Dispatcher, DispatchError> {
        config.policy.check()?;
        if !(1..=MAX_CONCURRENCY).contains(&config.concurrency) {
            return Err(DispatchError::Concurrency);
        }
        let timeout_ms = i64::try_from(config.attempt_timeout.as_millis()).unwrap_or(i64::MAX);
        if config.attempt_timeout.is_zero() || config.lease_ms <= timeout_ms {
            return Err(DispatchError::Lease);
        }
        let inner = Inner { channels, renderer: Renderer::new(), config, clock, code_key: None };
        Ok(Dispatcher { inner: Arc::new(inner) })
    }

    /// The key challenge codes are sealed under (`crate::sealed`). Call it on a dispatcher
    /// just made: one already cloned keeps no key, and its code rows go dead unsent.
    pub fn with_code_key(mut self, key: crate::sealed::CodeKey) -> Dispatcher {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.code_key = Some(key);
        }
        self
    }

    pub fn config(&self) -> &DispatcherConfig {
        &self.inner.config
    }

    /// Pure apart from the jitter's random draw: which rows to send now. Rows that are
    /// not due (delivered, dead, waiting, or in flight within their lease) are left out.
    pub fn claim(&self, batch: Vec<OutboxEntry>, now_ms: i64) -> Result<Claim, DispatchError> {
        if batch.len() > MAX_DISPATCH_BATCH {
            return Err(DispatchError::BatchTooLarge);
        }
        let config = &self.inner.config;
        let mut claim = Claim::default();
        for before in batch {
            if !before.is_due(now_ms, config.lease_ms) {
                continue;
            }
            let mut entry = before.clone();
            if matches!(entry.state, DeliveryState::Delivering { .. }) {
                if entry.reclaim(now_ms, config.lease_ms, &config.policy, os_random()).is_ok() {
                    claim.reclaimed.push(transition(&before, entry));
                }
            } else if entry.begin(now_ms).is_ok() {
                claim.to_send.push(transition(&before, entry));
            }
        }
        Ok(claim)
    }

    /// Sends claimed (`delivering`) rows, at most `concurrency` at once, and returns each
    /// one's outcome: `delivered`, `retry_at` or `dead`. Rows in any other state are not
    /// sent and are left out, as is a row whose attempt panicked (still `delivering` in the
    /// store: reclaimed after its lease).
    pub async fn deliver(&self, claimed: Vec<OutboxEntry>) -> Vec<Transition> {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.inner.config.concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        let mut results = Vec::with_capacity(claimed.len());
        for entry in claimed {
            if !matches!(entry.state, DeliveryState::Delivering { .. }) {
                // Only rows from `claim` are sent: anything else is the caller's mistake,
                // and sending it could send a delivered message again.
                tracing::error!(message_id = %entry.message.id, state = entry.state.name(), "deliver was handed a row that was not claimed");
                continue;
            }
            // The semaphore is never closed, so acquiring only waits.
            let Ok(permit) = semaphore.clone().acquire_owned().await else { break };
            let inner = self.inner.clone();
            tasks.spawn(async move {
                let _permit = permit;
                inner.attempt(entry).await
            });
            while let Some(done) = tasks.try_join_next() {
                results.extend(done.ok().flatten());
            }
        }
        while let Some(done) = tasks.join_next().await {
            results.extend(done.ok().flatten());
        }
        results
    }

    /// `claim` and `deliver` in one call, for callers that persist only the outcome (each
    /// transition's `from` is then the row as read). A crash mid-send leaves those rows as
    /// they were, so they are sent again, but the lost attempt is not counted.
    pub async fn dispatch(&self, batch: Vec<OutboxEntry>, now_ms: i64) -> Result<Vec<Transition>, DispatchError> {
        let claim = self.claim(batch, now_ms)?;
        let originals: std::collections::HashMap<String, (DeliveryState, u32)> =
            claim.to_send.iter().map(|t| (t.entry.message.id.clone(), (t.from, t.from_attempts))).collect();
        let mut out = claim.reclaimed;
        for mut done in self.deliver(claim.to_send.into_iter().map(|t| t.entry).collect()).await {
            if let Some((from, from_attempts)) = originals.get(&done.entry.message.id) {
                done.from = *from;
                done.from_attempts = *from_attempts;
            }
            out.push(done);
        }
        Ok(out)
    }
}

impl Inner {
    async fn send(&self, message: &OutboxMessage) -> Result<(), DeliveryError> {
        message.validate().map_err(|e| DeliveryError::Permanent(format!("invalid message: {e}")))?;
        let kind = message.recipient.channel();
        let channel = self
            .channels
            .get(kind)
            .ok_or_else(|| DeliveryError::Transient(format!("no {kind:?} channel is configured")))?;
        let content = self.renderer.render(message).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let sent = tokio::time::timeout(self.config.attempt_timeout, channel.send(message, &content)).await;
        sent.unwrap_or_else(|_| Err(DeliveryError::Transient("the attempt timed out".into())))
    }

    /// The message as sent. A challenge code's row gets its code back, opened just now,
    /// unless its challenge expired (a late code is worthless) or this key cannot open it
    /// (another key since a restart): both are final, so the row goes dead, never garbled.
    fn sendable(&self, entry: &OutboxEntry) -> Result<OutboxMessage, DeliveryError> {
        let Some(code) = &entry.code else { return Ok(entry.message.clone()) };
        if (self.clock)() >= code.expires_at_ms {
            return Err(DeliveryError::Permanent("expired: the challenge expired before its code was sent".into()));
        }
        let sealed = code
            .ciphertext
            .as_deref()
            .ok_or_else(|| DeliveryError::Permanent("the code was erased and is never sent again".into()))?;
        let key =
            self.code_key.as_ref().ok_or_else(|| DeliveryError::Permanent("no outbox key to open the code".into()))?;
        let plain =
            key.open(&entry.message.id, sealed).map_err(|e| DeliveryError::Permanent(format!("undeliverable: {e}")))?;
        let mut message = entry.message.clone();
        message.arguments.insert("code".into(), plain);
        Ok(message)
    }

    /// One attempt on a claimed row, and the decision it leads to.
    async fn attempt(&self, before: OutboxEntry) -> Option<Transition> {
        let outcome = match self.sendable(&before) {
            Ok(message) => self.send(&message).await,
            Err(error) => Err(error),
        };
        let now_ms = (self.clock)();
        let mut entry = before.clone();
        let channel = channel_label(before.message.recipient.channel());
        let applied = match &outcome {
            Ok(()) => entry.succeed(now_ms),
            Err(error) => entry.fail(now_ms, error, &self.config.policy, os_random()),
        };
        if let Err(refused) = applied {
            // `deliver` lets only claimed (`delivering`) rows through, so this cannot happen.
            tracing::error!(message_id = %before.message.id, %refused, "an attempt's outcome could not be applied");
            return None;
        }
        if matches!(entry.state, DeliveryState::Delivered { .. } | DeliveryState::Dead { .. }) {
            // Sent or given up: the code has no further use at rest.
            entry.erase_code();
        }
        let state = entry.state.name();
        metrics::counter!("xiezhi_notifications_total", "channel" => channel, "state" => state).increment(1);
        if let Err(error) = &outcome {
            // Ids, kinds and the error only: never the recipient, the text or a code.
            tracing::warn!(message_id = %before.message.id, kind = before.message.kind.as_str(), channel,
                attempt = entry.attempts, next = state, %error, "a notification was not delivered");
        }
        Some(transition(&before, entry))
    }
}

fn channel_label(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "webhook",
        ChannelKind::Email => "email",
        ChannelKind::Sms => "sms",
    }
}
