//! The single writer: group commit over a bounded queue.

use crate::error::CoreError;
use crate::state::State;
use crate::{Envelope, Reply, ServiceConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xiezhi_store::{Batch, Store};

/// How often pending holds are checked for expiry when the queue is idle.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// Most holds expired in one sweep, so a backlog never makes one commit huge.
const MAX_EXPIRIES_PER_SWEEP: usize = 1_000;
/// Reload attempts after a storage failure before the writer gives up.
const RECOVERY_ATTEMPTS: u32 = 12;
/// Most idempotency records deleted in one sweep.
const MAX_PRUNED_PER_SWEEP: usize = 5_000;

/// Where the service reads the time. Tests and simulations pass their own clock; nothing in
/// the service reads the wall clock directly.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}

/// Counters the writer publishes for health checks and benchmarks.
#[derive(Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub committed_requests: AtomicU64,
    pub failed_commits: AtomicU64,
    /// Payments created since the process started.
    pub payments: AtomicU64,
    pub pending_holds: AtomicU64,
    pub healthy: AtomicBool,
}

pub(crate) fn spawn(
    store: Box<dyn Store>,
    config: &ServiceConfig,
    clock: Arc<dyn Clock>,
    receiver: Receiver<Envelope>,
    stats: Arc<WriterStats>,
) -> Result<(), CoreError> {
    let unavailable = |e: xiezhi_store::StoreError| CoreError::StorageUnavailable { message: e.to_string() };
    let state =
        State::load(store, config.acceptance.clone(), config.hold_ttl_ms, config.risk.clone()).map_err(unavailable)?;
    stats.healthy.store(true, Ordering::Relaxed);
    stats.pending_holds.store(state.ledger.pending_hold_count() as u64, Ordering::Relaxed);
    let max_batch = config.max_batch.clamp(1, xiezhi_store::MAX_BATCH_ITEMS / 4);
    let idempotency_retention_ms = config.idempotency_retention_ms;
    std::thread::Builder::new()
        .name("xiezhi-writer".into())
        .spawn(move || {
            let mut writer = Writer { state, clock, stats, max_batch, idempotency_retention_ms };
            writer.run(receiver);
        })
        .map_err(|e| CoreError::StorageUnavailable { message: format!("cannot start the writer: {e}") })?;
    Ok(())
}

struct Writer {
    state: State,
    clock: Arc<dyn Clock>,
    stats: Arc<WriterStats>,
    max_batch: usize,
    idempotency_retention_ms: i64,
}

impl Writer {
    fn run(&mut self, receiver: Receiver<Envelope>) {
        let mut envelopes: Vec<Envelope> = Vec::with_capacity(self.max_batch);
        let mut last_sweep = Instant::now();
        loop {
            match receiver.recv_timeout(SWEEP_INTERVAL) {
                Ok(first) => envelopes.push(first),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while envelopes.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(next) => envelopes.push(next),
                    Err(_) => break,
                }
            }
            let sweep = last_sweep.elapsed() >= SWEEP_INTERVAL;
            if sweep {
                last_sweep = Instant::now();
            }
            if envelopes.is_empty() && !sweep {
                continue;
            }
            if !self.process(&mut envelopes, sweep) {
                self.stats.healthy.store(false, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Applies a batch, commits it once, then replies. Returns false if the store is gone.
    fn process(&mut self, envelopes: &mut Vec<Envelope>, sweep: bool) -> bool {
        let now_ms = self.clock.now_ms();
        let mut batch = Batch::default();
        if sweep {
            if let Err(error) = self.state.expire_due(now_ms, MAX_EXPIRIES_PER_SWEEP, &mut batch) {
                tracing::error!(%error, "expiring holds failed");
                return self.recover();
            }
            match self.state.prune_idempotency(now_ms - self.idempotency_retention_ms, MAX_PRUNED_PER_SWEEP) {
                Ok(pruned) => metrics::counter!("xiezhi_idempotency_keys_pruned_total").increment(pruned as u64),
                Err(error) => tracing::warn!(%error, "pruning idempotency keys failed"),
            }
        }
        let requests = envelopes.len();
        let mut replies = Vec::with_capacity(requests);
        let mut results: Vec<Result<Reply, CoreError>> = Vec::with_capacity(requests);
        let mut payments_created = 0;
        // A storage error while building the batch may leave memory half-way through a
        // command; such a batch is never committed.
        let mut poisoned = None;
        for Envelope { command, idempotency, reply } in envelopes.drain(..) {
            let creates_payment = matches!(command, crate::Command::CreatePayment(_));
            let result = self.state.apply(command, idempotency, now_ms, &mut batch);
            if creates_payment && result.is_ok() {
                payments_created += 1;
            }
            if let Err(error @ CoreError::StorageUnavailable { .. }) = &result {
                poisoned = Some(error.clone());
            }
            replies.push(reply);
            results.push(result);
        }
        let mut needs_recovery = false;
        if let Some(error) = poisoned {
            tracing::error!(%error, "storage failed while building a batch; rebuilding state from the store");
            for result in results.iter_mut() {
                *result = Err(error.clone());
            }
            needs_recovery = true;
        } else if !batch.is_empty() {
            let started = Instant::now();
            match self.state.commit(&batch) {
                Ok(()) => {
                    let elapsed_us = started.elapsed().as_micros() as f64;
                    metrics::histogram!("xiezhi_commit_duration_us").record(elapsed_us);
                    metrics::histogram!("xiezhi_commit_batch_requests").record(requests as f64);
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    self.stats.committed_requests.fetch_add(requests as u64, Ordering::Relaxed);
                    self.stats.payments.fetch_add(payments_created, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::error!(%error, "group commit failed; rebuilding state from the store");
                    self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                    for result in results.iter_mut() {
                        *result = Err(CoreError::StorageUnavailable { message: error.to_string() });
                    }
                    // What was applied in memory was not persisted: start again from the store.
                    needs_recovery = true;
                }
            }
        }
        for (reply, result) in replies.into_iter().zip(results) {
            // The client may have gone away; the outcome is durable either way.
            let _ = reply.send(result);
        }
        let healthy = !needs_recovery || self.recover();
        self.stats.pending_holds.store(self.state.ledger.pending_hold_count() as u64, Ordering::Relaxed);
        healthy
    }

    /// Rebuilds state from the store, retrying with backoff for about half a minute; new
    /// requests wait in the queue meanwhile. Gives up (the writer stops, health turns red)
    /// only if the store stays unreadable.
    fn recover(&mut self) -> bool {
        self.stats.healthy.store(false, Ordering::Relaxed);
        let mut delay = Duration::from_millis(10);
        for attempt in 1..=RECOVERY_ATTEMPTS {
            match self.state.reload() {
                Ok(()) => {
                    self.stats.healthy.store(true, Ordering::Relaxed);
                    return true;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, "cannot reload state from the store");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::error!("the store stayed unreadable; the writer stops");
        false
    }
}
