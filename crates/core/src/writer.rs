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
    pub payments: AtomicU64,
    pub pending_holds: AtomicU64,
    pub healthy: AtomicBool,
    pub ready: AtomicBool,
}

pub(crate) fn spawn(
    mut store: Box<dyn Store>,
    config: &ServiceConfig,
    clock: Arc<dyn Clock>,
    receiver: Receiver<Envelope>,
    stats: Arc<WriterStats>,
) -> Result<(), CoreError> {
    let unavailable = |e: xiezhi_store::StoreError| CoreError::StorageUnavailable {
        message: e.to_string(),
    };
    let snapshot = store.load().map_err(unavailable)?;
    let state = State::load(snapshot, config.acceptance.clone(), config.hold_ttl_ms)
        .map_err(unavailable)?;
    stats.healthy.store(true, Ordering::Relaxed);
    stats.ready.store(true, Ordering::Relaxed);
    let max_batch = config.max_batch.clamp(1, xiezhi_store::MAX_BATCH_ITEMS / 4);
    let acceptance = config.acceptance.clone();
    let hold_ttl_ms = config.hold_ttl_ms;
    std::thread::Builder::new()
        .name("xiezhi-writer".into())
        .spawn(move || {
            let mut writer = Writer {
                store,
                state,
                clock,
                stats,
                max_batch,
                acceptance,
                hold_ttl_ms,
            };
            writer.run(receiver);
        })
        .map_err(|e| CoreError::StorageUnavailable {
            message: format!("cannot start the writer: {e}"),
        })?;
    Ok(())
}

struct Writer {
    store: Box<dyn Store>,
    state: State,
    clock: Arc<dyn Clock>,
    stats: Arc<WriterStats>,
    max_batch: usize,
    acceptance: crate::AcceptanceConfig,
    hold_ttl_ms: i64,
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
            self.state
                .expire_due(now_ms, MAX_EXPIRIES_PER_SWEEP, &mut batch);
        }
        let mut results: Vec<Result<Reply, CoreError>> = Vec::with_capacity(envelopes.len());
        for envelope in envelopes.iter_mut() {
            let command = std::mem::replace(
                &mut envelope.command,
                crate::Command::GetMerchant { id: String::new() },
            );
            results.push(self.state.apply(
                command,
                envelope.idempotency.take(),
                now_ms,
                &mut batch,
            ));
        }
        let mut healthy = true;
        if !batch.is_empty() {
            let started = Instant::now();
            match self.store.commit(&batch) {
                Ok(()) => {
                    let elapsed_us = started.elapsed().as_micros() as f64;
                    metrics::histogram!("xiezhi_commit_duration_us").record(elapsed_us);
                    metrics::histogram!("xiezhi_commit_batch_requests")
                        .record(envelopes.len() as f64);
                    self.stats.commits.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .committed_requests
                        .fetch_add(envelopes.len() as u64, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::error!(%error, "group commit failed; rebuilding state from the store");
                    self.stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                    for result in results.iter_mut() {
                        *result = Err(CoreError::StorageUnavailable {
                            message: error.to_string(),
                        });
                    }
                    // What was applied in memory was not persisted: start again from the store.
                    healthy = self.reload();
                }
            }
        }
        for (envelope, result) in envelopes.drain(..).zip(results) {
            // The client may have gone away; the outcome is durable either way.
            let _ = envelope.reply.send(result);
        }
        self.stats
            .payments
            .store(self.state.payment_count() as u64, Ordering::Relaxed);
        self.stats.pending_holds.store(
            self.state.ledger.pending_hold_count() as u64,
            Ordering::Relaxed,
        );
        healthy
    }

    fn reload(&mut self) -> bool {
        let loaded = self
            .store
            .load()
            .and_then(|snapshot| State::load(snapshot, self.acceptance.clone(), self.hold_ttl_ms));
        match loaded {
            Ok(state) => {
                self.state = state;
                true
            }
            Err(error) => {
                tracing::error!(%error, "cannot reload state; the writer stops");
                false
            }
        }
    }
}
