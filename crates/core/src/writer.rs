//! The single writer: group commit over a bounded queue.

use crate::error::CoreError;
use crate::notify::NotifierHandle;
use crate::state::State;
use crate::{Envelope, Reply, ServiceConfig};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xiezhi_store::{Batch, Store};

/// How often pending holds are checked for expiry when the queue is idle.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// Most holds expired in one sweep, so a backlog never makes one commit huge.
const MAX_EXPIRIES_PER_SWEEP: usize = 1_000;
/// Each hold, challenge or restriction that lapses writes at most two items; an appeal that
/// escalates three (itself, its restriction lifted and the user's inbox); and the lift or
/// payout an expiry causes tells its user through at most one event's outbox rows.
const ITEMS_PER_EXPIRY: usize = 3 + crate::outbox::MAX_MESSAGES_PER_EVENT;
/// What a sweep expires, each kind up to the same number: holds, challenges, restrictions
/// and appeals; and compensations waiting for the fund it pays (two items each).
const SWEPT_KINDS: usize = 5;
/// The most items (journal entries and records) one command adds to a batch: a restriction
/// writes its decision, payment, challenge, restriction, the inbox twice and the key's
/// answer, and its outbox rows; a deposit pays up to six waiting compensations, each with
/// its event's outbox rows (38 in all). Asserted after every command; a batch takes another
/// command only while this much room is left, so no batch exceeds what one store commit
/// may carry.
pub(crate) const MAX_ITEMS_PER_COMMAND: usize = 48;
/// Reload attempts after a storage failure before the writer gives up.
const RECOVERY_ATTEMPTS: u32 = 12;
/// Panics the writer restarts after within [`RESTART_WINDOW`] before it stays down.
const MAX_RESTARTS: usize = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Most idempotency records deleted in one sweep.
const MAX_PRUNED_PER_SWEEP: usize = 5_000;

/// Where the service reads the time. Tests and simulations pass their own clock; nothing in
/// the service reads the wall clock directly.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
    /// Service seconds per wall-clock second: 1 in production.
    fn speed(&self) -> f64 {
        1.0
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        jiff::Timestamp::now().as_millisecond()
    }
}

/// Most service seconds per wall second a scaled clock runs at.
pub const MAX_CLOCK_SPEED: f64 = 100_000.0;

/// A clock that runs `speed` times faster than the wall, from `origin_ms` on: for demos and
/// simulations against a server (`serve --clock-speed`), so that days of shopping pass in
/// minutes and the service's windows and expiries see them as days. Never for production.
pub struct ScaledClock {
    wall_origin: std::time::Instant,
    origin_ms: i64,
    speed: f64,
}

impl ScaledClock {
    pub fn new(origin_ms: i64, speed: f64) -> ScaledClock {
        assert!((1.0..=MAX_CLOCK_SPEED).contains(&speed), "clock speed {speed} out of range");
        ScaledClock { wall_origin: std::time::Instant::now(), origin_ms, speed }
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> i64 {
        self.origin_ms + (self.wall_origin.elapsed().as_secs_f64() * 1_000.0 * self.speed) as i64
    }
    fn speed(&self) -> f64 {
        self.speed
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
    /// The writer is running (not down after a store it cannot read or repeated panics).
    pub healthy: AtomicBool,
    /// Times the writer panicked and started again from the store.
    pub writer_restarts: AtomicU64,
    /// Why the service serves reads only, when it does (set once, at start).
    pub read_only: std::sync::OnceLock<String>,
}

pub(crate) fn spawn(
    store: Box<dyn Store>,
    config: &ServiceConfig,
    clock: Arc<dyn Clock>,
    receiver: Receiver<Envelope>,
    stats: Arc<WriterStats>,
) -> Result<(), CoreError> {
    let unavailable = |e: xiezhi_store::StoreError| CoreError::StorageUnavailable { message: e.to_string() };
    let committer_store = store.open_committer().map_err(unavailable)?;
    let state = State::load(store, config).map_err(unavailable)?;
    if let Some(reason) = state.read_only() {
        let _ = stats.read_only.set(reason.to_owned());
    }
    stats.healthy.store(true, Ordering::Relaxed);
    stats.pending_holds.store(state.ledger.pending_hold_count() as u64, Ordering::Relaxed);
    let max_batch = config.max_batch.clamp(1, xiezhi_store::MAX_BATCH_ITEMS / 4);
    let idempotency_retention_ms = config.idempotency_retention_ms;
    let notifier = config.notifier.clone();
    let committer = match committer_store {
        Some(store) => Some(Committer::spawn(store, Arc::clone(&stats), config.notifier.clone())?),
        None => None,
    };
    std::thread::Builder::new()
        .name("xiezhi-writer".into())
        .spawn(move || {
            let mut writer = Writer { state, clock, stats, max_batch, idempotency_retention_ms, committer, notifier };
            writer.run_restarting(&receiver);
        })
        .map_err(|e| CoreError::StorageUnavailable { message: format!("cannot start the writer: {e}") })?;
    Ok(())
}

type Replies = Vec<tokio::sync::oneshot::Sender<Result<Reply, CoreError>>>;

/// How long the pipelined writer waits for more requests while the committer is busy,
/// before it looks again whether the committer is free.
const COMMITTER_POLL: Duration = Duration::from_micros(200);

/// The batch the pipelined writer is building.
#[derive(Default)]
struct OpenBatch {
    batch: Batch,
    /// Messages to hand to the notifier once the batch is durable.
    outbox: Vec<crate::notify::OutboundMessage>,
    replies: Replies,
    results: Vec<Result<Reply, CoreError>>,
    payments_created: u64,
    prune_before_ms: Option<i64>,
    poisoned: Option<CoreError>,
}

/// Publishes one successful group commit.
fn count_commit(stats: &WriterStats, started: Instant, requests: usize, payments_created: u64) {
    metrics::histogram!("xiezhi_commit_duration_us").record(started.elapsed().as_micros() as f64);
    metrics::histogram!("xiezhi_commit_batch_requests").record(requests as f64);
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.committed_requests.fetch_add(requests as u64, Ordering::Relaxed);
    stats.payments.fetch_add(payments_created, Ordering::Relaxed);
}

impl OpenBatch {
    /// Whether the batch can take one more command of any kind.
    fn has_room(&self) -> bool {
        self.batch.items() + MAX_ITEMS_PER_COMMAND <= xiezhi_store::MAX_BATCH_ITEMS
    }

    /// Expires due holds and challenges, as many as the batch has room for (the rest wait
    /// for the next sweep). Each expiry writes at most [`ITEMS_PER_EXPIRY`] items (asserted).
    fn sweep(&mut self, state: &mut State, now_ms: i64) -> Result<(), CoreError> {
        let room = xiezhi_store::MAX_BATCH_ITEMS.saturating_sub(self.batch.items() + MAX_ITEMS_PER_COMMAND);
        // Each swept kind up to `max`.
        let max = MAX_EXPIRIES_PER_SWEEP.min(room / (SWEPT_KINDS * ITEMS_PER_EXPIRY));
        let before = self.batch.items();
        let expired = state.expire_due(now_ms, max, &mut self.batch)?;
        let added = self.batch.items() - before;
        assert!(added <= expired * ITEMS_PER_EXPIRY && added <= room, "{expired} expiries wrote {added} items");
        Ok(())
    }

    /// Applies queued requests while the batch has room; the rest stay queued for the next
    /// batch. A storage error may leave memory half-way through a command; the batch is then
    /// poisoned and never committed.
    fn apply(&mut self, state: &mut State, envelopes: &mut VecDeque<Envelope>, now_ms: i64) {
        while self.has_room() {
            let Some(Envelope { caller, command, idempotency, reply }) = envelopes.pop_front() else { break };
            let creates_payment = matches!(command, crate::Command::CreatePayment(_));
            let items_before = self.batch.items();
            let result = state.apply(&caller, command, idempotency, now_ms, &mut self.batch);
            self.outbox.append(&mut state.outbox);
            let added = self.batch.items() - items_before;
            assert!(added <= MAX_ITEMS_PER_COMMAND, "one command wrote {added} items");
            if creates_payment && result.is_ok() {
                self.payments_created += 1;
            }
            if let Err(error @ CoreError::StorageUnavailable { .. }) = &result {
                self.poisoned = Some(error.clone());
            }
            self.replies.push(reply);
            self.results.push(result);
        }
    }

    fn fail(self, error: CoreError) {
        for reply in self.replies {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

/// One sealed batch on its way to durability.
struct Job {
    seq: u64,
    batch: Batch,
    outbox: Vec<crate::notify::OutboundMessage>,
    replies: Replies,
    results: Vec<Result<Reply, CoreError>>,
    payments_created: u64,
    /// Idempotency records older than this are deleted after the commit.
    prune_before_ms: Option<i64>,
}

enum ToCommitter {
    Commit(Job),
    /// The writer has rebuilt its state from the store: commit again.
    Reset,
}

/// The commit half of the pipeline: a thread with its own store handle that makes each
/// sealed batch durable, in order, and only then replies to its callers. While it waits for
/// the fsync of batch N the writer is already applying batch N+1. After a failed commit it
/// refuses every batch already applied on top of the failed one, until the writer has
/// reloaded from the store and says so.
struct Committer {
    jobs: std::sync::mpsc::SyncSender<ToCommitter>,
    done: Receiver<(u64, bool)>,
    in_flight: usize,
    /// The generation of the last batch reported (committed or refused).
    last_reported: u64,
}

/// Sealed batches that may wait for the committer; the writer blocks beyond this, which is
/// the pipeline's back-pressure.
const PIPELINE_DEPTH: usize = 1;

impl Committer {
    fn spawn(
        mut store: Box<dyn Store>,
        stats: Arc<WriterStats>,
        notifier: Option<NotifierHandle>,
    ) -> Result<Committer, CoreError> {
        let (jobs, job_receiver) = std::sync::mpsc::sync_channel::<ToCommitter>(PIPELINE_DEPTH);
        let (done_sender, done) = std::sync::mpsc::channel::<(u64, bool)>();
        std::thread::Builder::new()
            .name("xiezhi-committer".into())
            .spawn(move || {
                let mut failed = false;
                for message in job_receiver {
                    match message {
                        ToCommitter::Reset => failed = false,
                        ToCommitter::Commit(job) => {
                            let notifier = notifier.as_ref();
                            if !commit_job(store.as_mut(), job, &stats, notifier, &mut failed, &done_sender) {
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|e| CoreError::StorageUnavailable { message: format!("cannot start the committer: {e}") })?;
        Ok(Committer { jobs, done, in_flight: 0, last_reported: 0 })
    }
}

/// Commits one job (unless an earlier one failed), replies, and reports. Returns false only
/// when the writer is gone.
fn commit_job(
    store: &mut dyn Store,
    job: Job,
    stats: &WriterStats,
    notifier: Option<&NotifierHandle>,
    failed: &mut bool,
    done: &std::sync::mpsc::Sender<(u64, bool)>,
) -> bool {
    let Job { seq, batch, outbox, replies, mut results, payments_created, prune_before_ms } = job;
    let requests = results.len();
    let mut ok = !*failed;
    if !ok {
        for result in results.iter_mut() {
            *result = Err(CoreError::StorageUnavailable {
                message: "an earlier commit failed; the service is reloading".into(),
            });
        }
    } else if !batch.is_empty() {
        let started = Instant::now();
        match store.commit(&batch) {
            Ok(()) => count_commit(stats, started, requests, payments_created),
            Err(error) => {
                tracing::error!(%error, "group commit failed; the writer rebuilds its state from the store");
                stats.failed_commits.fetch_add(1, Ordering::Relaxed);
                for result in results.iter_mut() {
                    *result = Err(CoreError::StorageUnavailable { message: error.to_string() });
                }
                *failed = true;
                ok = false;
            }
        }
    }
    if ok {
        crate::notify::deliver(notifier, outbox);
        if let Some(before_ms) = prune_before_ms {
            match store.delete_records_before(xiezhi_store::RecordKind::Idempotency, before_ms, MAX_PRUNED_PER_SWEEP) {
                Ok(pruned) => metrics::counter!("xiezhi_idempotency_keys_pruned_total").increment(pruned as u64),
                Err(error) => tracing::warn!(%error, "pruning idempotency keys failed"),
            }
        }
    }
    // Report before replying, so the writer knows the committer is free (and seals the open
    // batch) by the time the callers' next requests arrive. What those requests read does
    // not depend on it: the overlay keeps this batch until the store's snapshot holds it.
    let writer_alive = done.send((seq, ok)).is_ok();
    for (reply, result) in replies.into_iter().zip(results) {
        // The client may have gone away; the outcome is durable either way.
        let _ = reply.send(result);
    }
    writer_alive
}

struct Writer {
    state: State,
    clock: Arc<dyn Clock>,
    stats: Arc<WriterStats>,
    max_batch: usize,
    idempotency_retention_ms: i64,
    /// Present when the store offers a second handle: commits are then pipelined.
    committer: Option<Committer>,
    notifier: Option<NotifierHandle>,
}

impl Writer {
    fn run(&mut self, receiver: &Receiver<Envelope>) {
        if self.committer.is_some() {
            return self.run_pipelined(receiver);
        }
        let mut envelopes: VecDeque<Envelope> = VecDeque::with_capacity(self.max_batch);
        let mut last_sweep = Instant::now();
        loop {
            if !self.end_reads_when_idle() {
                return;
            }
            // Requests left over from a full batch go first, without waiting.
            let wait = if envelopes.is_empty() { SWEEP_INTERVAL } else { Duration::ZERO };
            match receiver.recv_timeout(wait) {
                Ok(first) => envelopes.push_back(first),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while envelopes.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(next) => envelopes.push_back(next),
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

    /// Takes in the committer's reports. With `wait`, until nothing is in flight. Returns
    /// false if a commit failed (the state is then ahead of the store). A report changes
    /// nothing a read sees: the overlay lets a batch go only when the store's read snapshot
    /// holds it, which a report does not tell.
    fn absorb(&mut self, wait: bool) -> bool {
        let Some(committer) = self.committer.as_mut() else { return true };
        let mut all_committed = true;
        loop {
            let report = if wait && committer.in_flight > 0 {
                committer.done.recv().ok()
            } else {
                committer.done.try_recv().ok()
            };
            let Some((generation, committed)) = report else { break };
            assert!(generation > committer.last_reported, "commits reported out of order");
            committer.last_reported = generation;
            committer.in_flight = committer.in_flight.saturating_sub(1);
            all_committed &= committed;
        }
        all_committed
    }

    /// After a failed commit or read: let everything in flight finish (the committer refuses
    /// it), rebuild from the store, and let the committer take batches again.
    fn recover_pipeline(&mut self) -> bool {
        self.absorb(true);
        let healthy = self.recover();
        if let Some(committer) = &self.committer {
            if committer.jobs.send(ToCommitter::Reset).is_err() {
                return false;
            }
        }
        healthy
    }

    /// The pipelined loop. Requests are applied as they arrive into an open batch; the batch
    /// is sealed and handed to the committer as soon as the committer is free (or the batch
    /// is full). While batch N is being made durable, N+1 keeps growing, so a slow fsync
    /// makes the next commit larger rather than the queue longer.
    fn run_pipelined(&mut self, receiver: &Receiver<Envelope>) {
        let mut envelopes: VecDeque<Envelope> = VecDeque::with_capacity(self.max_batch);
        let mut open: Option<OpenBatch> = None;
        let mut last_sweep = Instant::now();
        loop {
            let wait = match (open.is_some(), envelopes.is_empty()) {
                (_, false) => Duration::ZERO,
                (true, true) => COMMITTER_POLL,
                (false, true) => SWEEP_INTERVAL,
            };
            if open.is_none() && !self.end_reads_when_idle() {
                return;
            }
            let mut disconnected = false;
            match receiver.recv_timeout(wait) {
                Ok(first) => envelopes.push_back(first),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
            let room = self.max_batch.saturating_sub(open.as_ref().map_or(0, |o| o.replies.len()));
            while envelopes.len() < room {
                match receiver.try_recv() {
                    Ok(next) => envelopes.push_back(next),
                    Err(_) => break,
                }
            }
            if !self.absorb(false) {
                // The open batch was built on state that never reached the disk.
                if let Some(batch) = open.take() {
                    batch.fail(CoreError::StorageUnavailable { message: "an earlier commit failed; retry".into() });
                }
                if !self.recover_pipeline() {
                    self.stats.healthy.store(false, Ordering::Relaxed);
                    return;
                }
            }
            let now_ms = self.clock.now_ms();
            let sweep = last_sweep.elapsed() >= SWEEP_INTERVAL;
            if sweep || !envelopes.is_empty() {
                let batch = open.get_or_insert_with(OpenBatch::default);
                if sweep {
                    last_sweep = Instant::now();
                    if self.state.read_only().is_none() {
                        batch.prune_before_ms = Some(now_ms - self.idempotency_retention_ms);
                    }
                    if let Err(error) = batch.sweep(&mut self.state, now_ms) {
                        tracing::error!(%error, "expiring holds failed");
                        batch.poisoned = Some(error);
                    }
                }
                batch.apply(&mut self.state, &mut envelopes, now_ms);
            }
            let committer_free = self.committer.as_ref().is_some_and(|c| c.in_flight == 0);
            let full = open.as_ref().is_some_and(|o| o.replies.len() >= self.max_batch || !o.has_room());
            if let Some(batch) = open.take_if(|_| committer_free || full || disconnected) {
                if !self.hand_over(batch) {
                    self.stats.healthy.store(false, Ordering::Relaxed);
                    return;
                }
            }
            if disconnected {
                self.absorb(true);
                return;
            }
        }
    }

    /// Seals the open batch and gives it to the committer; a poisoned batch is refused
    /// whole and the state rebuilt. Returns false if the writer cannot go on.
    fn hand_over(&mut self, open: OpenBatch) -> bool {
        let sealed = self.state.seal();
        let error = match (&open.poisoned, &sealed) {
            (None, Ok(_)) => None,
            (Some(error), _) => Some(error.clone()),
            (None, Err(error)) => Some(CoreError::StorageUnavailable { message: error.to_string() }),
        };
        if let Some(error) = error {
            tracing::error!(%error, "storage failed while building a batch; rebuilding state from the store");
            // Nothing of this batch is committed; earlier batches still finish first.
            self.absorb(true);
            open.fail(error);
            return self.recover_pipeline();
        }
        let OpenBatch { mut batch, outbox, replies, results, payments_created, prune_before_ms, .. } = open;
        let seq = sealed.expect("checked");
        batch.generation = seq;
        let job = Job { seq, batch, outbox, replies, results, payments_created, prune_before_ms };
        let committer = self.committer.as_mut().expect("pipelined");
        if committer.jobs.send(ToCommitter::Commit(job)).is_err() {
            return false;
        }
        committer.in_flight += 1;
        self.stats.pending_holds.store(self.state.ledger.pending_hold_count() as u64, Ordering::Relaxed);
        true
    }

    /// Applies a batch, commits it once, then replies. Returns false if the store is gone.
    fn process(&mut self, envelopes: &mut VecDeque<Envelope>, sweep: bool) -> bool {
        let now_ms = self.clock.now_ms();
        let mut open = OpenBatch::default();
        if sweep {
            if let Err(error) = open.sweep(&mut self.state, now_ms) {
                tracing::error!(%error, "expiring holds failed");
                return self.recover();
            }
            let prune = self.state.read_only().is_none().then_some(now_ms - self.idempotency_retention_ms);
            match prune.map(|before_ms| self.state.prune_idempotency(before_ms, MAX_PRUNED_PER_SWEEP)) {
                Some(Ok(pruned)) => metrics::counter!("xiezhi_idempotency_keys_pruned_total").increment(pruned as u64),
                Some(Err(error)) => tracing::warn!(%error, "pruning idempotency keys failed"),
                None => {}
            }
        }
        open.apply(&mut self.state, envelopes, now_ms);
        let OpenBatch { mut batch, outbox, replies, mut results, payments_created, poisoned, .. } = open;
        let requests = results.len();
        let mut needs_recovery = false;
        if let Some(error) = poisoned {
            tracing::error!(%error, "storage failed while building a batch; rebuilding state from the store");
            for result in results.iter_mut() {
                *result = Err(error.clone());
            }
            needs_recovery = true;
        } else if !batch.is_empty() {
            let started = Instant::now();
            match self.state.commit(&mut batch) {
                Ok(()) => {
                    count_commit(&self.stats, started, requests, payments_created);
                    crate::notify::deliver(self.notifier.as_ref(), outbox);
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

    /// Ends the read transaction before the writer waits for work. Returns false if the
    /// writer cannot go on.
    fn end_reads_when_idle(&mut self) -> bool {
        match self.state.idle() {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, "ending a read transaction failed; rebuilding state from the store");
                let healthy = self.rebuild();
                if !healthy {
                    self.stats.healthy.store(false, Ordering::Relaxed);
                }
                healthy
            }
        }
    }

    /// Runs the writer; a panic (a broken invariant) throws away what is in memory, and the
    /// writer starts again from the store, which holds everything acknowledged. The requests
    /// of the batch being applied get `503`; batches already with the committer finish. More
    /// than [`MAX_RESTARTS`] panics within [`RESTART_WINDOW`] mean something is wrong that a
    /// restart does not fix: the writer stays down and `/healthz` says so (`writer: down`).
    fn run_restarting(&mut self, receiver: &Receiver<Envelope>) {
        let mut panics: VecDeque<Instant> = VecDeque::new();
        loop {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(receiver)));
            let Err(panic) = run else { return };
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic without a message");
            metrics::counter!("xiezhi_writer_panics_total").increment(1);
            self.stats.writer_restarts.fetch_add(1, Ordering::Relaxed);
            panics.push_back(Instant::now());
            panics.retain(|at| at.elapsed() < RESTART_WINDOW);
            if panics.len() > MAX_RESTARTS {
                tracing::error!(panic = message, "the writer panicked again; it stays down");
                self.stats.healthy.store(false, Ordering::Relaxed);
                return;
            }
            tracing::error!(panic = message, "the writer panicked; rebuilding its state from the store");
            let healthy = self.rebuild();
            if !healthy {
                self.stats.healthy.store(false, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Rebuilds memory from the store after something went wrong, through the pipeline when
    /// there is one (in-flight batches finish first).
    fn rebuild(&mut self) -> bool {
        if self.committer.is_some() {
            self.recover_pipeline()
        } else {
            self.recover()
        }
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
