//! The payment service: merchants, credit lines, scan-to-pay payments and their lifecycle,
//! with idempotency keys and durable group commit. No HTTP and no SQL here: the server
//! crate speaks HTTP, a [`xiezhi_store::Store`] speaks storage.
//!
//! All state changes go through one writer thread ([`writer`]). Requests queue on a
//! bounded channel; the writer takes a batch of up to `max_batch` requests, applies them to
//! the in-memory ledger, commits everything they wrote in one storage transaction (one
//! fsync), and only then replies. Serialising through one writer is what makes "available
//! credit never goes below zero" hold under any concurrency, and group commit is what keeps
//! throughput up despite an fsync per commit.

mod access;
mod appeals;
pub mod books;
#[cfg(test)]
mod code_outbox_tests;
pub mod conduct;
mod decide;
mod error;
mod fund;
#[cfg(test)]
mod interleavings;
mod lifecycle;
mod model;
mod notify;
mod outbox;
mod overlay;
mod profile;
mod random;
mod restrictions;
mod state;
mod status;
mod writer;

pub use access::{
    key_sha256, ApiKey, Caller, KeyCommand, KeyKind, KeyRefusal, KeyRing, NewApiKey, Principal, Scope, Scopes, Shopper,
    DEFAULT_ROTATION_OVERLAP_S, KEY_PREFIX, MAX_API_KEYS, MAX_ROTATION_OVERLAP_S, MIN_BOOTSTRAP_KEY_CHARS,
};
pub use appeals::{
    Appeal, AppealDecision, AppealPage, AppealQuery, AppealStatus, AppealView, DecisionLabel, NewAppeal,
    MAX_APPEAL_MESSAGE_CHARS, MAX_APPEAL_NOTE_CHARS, MAX_STATUS_APPEALS,
};
pub use decide::{RiskConfig, MAX_WRONG_ANSWERS_PER_LINE_HOUR};
pub use error::CoreError;
pub use fund::{
    Compensation, CompensationPage, CompensationQuery, CompensationStatus, CompensationView, FundBalanceView,
    FundDepositRequest, FundDepositView, FundView, MAX_PAYOUTS_PER_DEPOSIT, MAX_STATUS_COMPENSATIONS,
};
pub use lifecycle::{LifecycleEvent, LifecycleKind, MAX_LIFECYCLE_EVENTS};
pub use model::*;
pub use notify::{code_in, Notifier, NotifierHandle, OutboundMessage, RecordingNotifier, MAX_RECORDED_MESSAGES};
pub use outbox::{
    OutboxConfig, OutboxPage, OutboxQuery, OutboxReplay, OutboxReplayView, OutboxRowView, OutboxStatus,
    OutboxTransition, MAX_MESSAGES_PER_EVENT, MAX_OPERATOR_WEBHOOKS, MAX_OUTBOX_PAGE, MAX_OUTBOX_ROWS_PER_COMMAND,
};
pub use profile::{ProfileStep, ProfileStepView, ProfileSubmission, MAX_PROFILE_FIELD_VALUE_CHARS, MAX_PROFILE_STEPS};
pub use restrictions::{
    LiftRequest, RestrictionEventView, RestrictionPage, RestrictionQuery, RestrictionRecordView, RestrictionStatus,
    DEFAULT_PAGE, MAX_PAGE, MAX_REASON_CHARS, MAX_SCANNED_PER_PAGE,
};
pub use status::{
    Language, LineStatusView, LocalizedExplanation, RestrictionStatusView, UserStatusView, MAX_STATUS_LINES,
};
pub use writer::{Clock, ScaledClock, SystemClock, WriterStats, MAX_CLOCK_SPEED};
pub use xiezhi_risk;

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use tokio::sync::oneshot;
use xiezhi_qr::{DecodeOptions, MerchantPresentedQr};
use xiezhi_store::Store;

/// Longest accepted idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// A partner scheme whose QR codes Xiezhi accepts and routes to registered merchants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcceptedScheme {
    pub globally_unique_identifier: String,
    /// Sub-field of the scheme's merchant account template that holds the merchant's id.
    pub merchant_ref_field: String,
}

/// Which merchant-account identifiers are accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcceptanceConfig {
    /// Xiezhi's own globally unique identifier in template 26 of its merchants' codes.
    pub own_guid: String,
    pub partner_schemes: Vec<AcceptedScheme>,
}

impl Default for AcceptanceConfig {
    fn default() -> AcceptanceConfig {
        AcceptanceConfig { own_guid: "cn.xiezhi.pay".into(), partner_schemes: vec![] }
    }
}

impl AcceptanceConfig {
    pub fn scheme(&self, guid: &str) -> Option<&AcceptedScheme> {
        self.partner_schemes.iter().find(|s| s.globally_unique_identifier.eq_ignore_ascii_case(guid))
    }
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub acceptance: AcceptanceConfig,
    /// How long an authorization holds credit before it expires.
    pub hold_ttl_ms: i64,
    /// Most requests in one group commit.
    pub max_batch: usize,
    /// Requests that may wait for the writer; beyond this the service answers `overloaded`.
    pub queue_capacity: usize,
    /// Refuse QR codes with content deviations (`--strict`).
    pub strict_qr: bool,
    /// How long an idempotency key is remembered.
    pub idempotency_retention_ms: i64,
    /// Policy and rules for the risk engine.
    pub risk: RiskConfig,
    /// Serve reads only, and start even on books whose journal fails replay (shown as
    /// recorded): what an operator runs while deciding what to do about them.
    pub read_only: bool,
    /// The secret one-time codes are kept under (HMAC-SHA-256). Keep it across restarts and
    /// apart from the store (`xiezhi serve` keeps it in `<data-dir>/code-secret`): a copy of
    /// the store alone then neither shows a code nor lets anyone try codes against it.
    /// `None`: a fresh secret per process, so codes sent before a restart no longer match
    /// after it (right for tests, wrong for a service).
    pub code_secret: Option<[u8; 32]>,
    /// Where the writer publishes the valid API keys; [`Service::key_ring`] hands it to the
    /// HTTP layer. A fresh ring by default.
    pub key_ring: Arc<KeyRing>,
    /// Where one-time codes go once their batch is durable when the outbox has no SMS
    /// channel (an embedder's or a test's in-process receiver; never stored). With SMS in
    /// the outbox, codes are sealed outbox rows and this is not used. `None`: nowhere.
    pub notifier: Option<NotifierHandle>,
    /// Which channels events write outbox rows for (none by default: a service that sends
    /// nothing stores nothing to send). With SMS on, one-time codes are outbox rows too
    /// (sealed under `outbox_key`) and no longer go to the `notifier`.
    pub outbox: OutboxConfig,
    /// The key one-time codes are sealed under in their outbox rows (`xiezhi serve` takes
    /// it from `XIEZHI_OUTBOX_KEY` or `--outbox-key-file`). `None`: a fresh key per process
    /// from the OS generator, so codes still pending at a restart go dead unsent.
    pub outbox_key: Option<xiezhi_notify::CodeKey>,
    /// Woken when a code's outbox row is written, so the dispatcher sends it at once rather
    /// than at its next poll (it claims the row in a later batch, so never before the
    /// row's own batch is durable).
    pub outbox_wake: Arc<tokio::sync::Notify>,
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            acceptance: AcceptanceConfig::default(),
            hold_ttl_ms: 7 * 24 * 3_600_000,
            max_batch: 1_024,
            queue_capacity: 16_384,
            strict_qr: false,
            idempotency_retention_ms: 24 * 3_600_000,
            risk: RiskConfig::default(),
            read_only: false,
            code_secret: None,
            key_ring: Arc::default(),
            notifier: None,
            outbox: OutboxConfig::default(),
            outbox_key: None,
            outbox_wake: Arc::default(),
        }
    }
}

/// A payment request whose QR code has been decoded (off the writer thread).
#[derive(Debug, Clone)]
pub struct PreparedPayment {
    pub request: NewPayment,
    pub qr: MerchantPresentedQr,
}

#[derive(Debug, Clone)]
pub enum Command {
    CreateMerchant(NewMerchant),
    CreateCreditLine(NewCreditLine),
    /// A line whose limit the credit scorecard and the policy set (see
    /// [`credit_line_command`]).
    ApplyForCreditLine(Box<CreditLineApplication>),
    CreatePayment(Box<PreparedPayment>),
    Capture {
        payment_id: String,
        amount: Option<String>,
    },
    Void {
        payment_id: String,
    },
    Refund {
        payment_id: String,
        amount: String,
    },
    Repay {
        credit_line_id: String,
        amount: String,
    },
    /// A profile step: the fields a KYC level requires (`POST /v1/credit-lines/{id}/profile`).
    CompleteProfile {
        credit_line_id: String,
        submission: ProfileSubmission,
    },
    IssueDynamicQr {
        merchant_id: String,
        amount: String,
        bill_number: Option<String>,
    },
    GetMerchant {
        id: String,
    },
    GetCreditLine {
        id: String,
    },
    GetPayment {
        id: String,
    },
    GetDecision {
        payment_id: String,
    },
    /// The stored decision re-run under today's policy, rules and scorer.
    ReplayDecision {
        payment_id: String,
    },
    CompleteChallenge {
        id: String,
        answer: ChallengeAnswer,
    },
    GetChallenge {
        id: String,
    },
    GetNotifications {
        credit_line_id: String,
    },
    GetRules,
    PutRules(xiezhi_risk::RuleSetDefinition),
    GetPolicy,
    /// A policy document as JSON text.
    PutPolicy(String),
    AddListEntry(xiezhi_risk::NewListEntry),
    RemoveListEntry {
        id: String,
    },
    GetLists,
    /// Swap the fraud scorer between two payments (a reloaded model); kept if the writer
    /// rebuilds its memory.
    SetScorer(ScorerHandle),
    /// Create, list, rotate or revoke API keys.
    Keys(KeyCommand),
    ListRestrictions(RestrictionQuery),
    GetRestriction {
        id: String,
    },
    /// An operator lifts a restriction in force, with a reason.
    LiftRestriction {
        id: String,
        request: LiftRequest,
    },
    /// Can the user pay, and if not, why and what can they do.
    UserStatus {
        user_id: String,
        language: Language,
    },
    FileAppeal(NewAppeal),
    ListAppeals(AppealQuery),
    GetAppeal {
        id: String,
    },
    ClaimAppeal {
        id: String,
    },
    DecideAppeal {
        id: String,
        decision: AppealDecision,
    },
    /// The platform's own money into the compensation fund; pays what waits.
    FundDeposit(FundDepositRequest),
    GetFund,
    ListCompensations(CompensationQuery),
    /// Up to `max` outbox rows a dispatcher should look at now (a read: claiming them is a
    /// [`Command::RecordOutbox`]). For the process's own dispatcher.
    DueOutbox {
        max: usize,
        lease_ms: i64,
    },
    /// Delivery transitions, each applied only where its row is still as read.
    RecordOutbox(Vec<OutboxTransition>),
    ListOutbox(OutboxQuery),
    /// Dead letters back to pending.
    ReplayOutbox(OutboxReplay),
}

impl Command {
    /// Whether the command can change stored state (refused when serving reads only).
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Command::IssueDynamicQr { .. }
                | Command::GetMerchant { .. }
                | Command::GetCreditLine { .. }
                | Command::GetPayment { .. }
                | Command::GetDecision { .. }
                | Command::ReplayDecision { .. }
                | Command::GetChallenge { .. }
                | Command::GetNotifications { .. }
                | Command::GetRules
                | Command::GetPolicy
                | Command::GetLists
                | Command::SetScorer(_)
                | Command::Keys(KeyCommand::List)
                | Command::ListRestrictions(_)
                | Command::GetRestriction { .. }
                | Command::UserStatus { .. }
                | Command::ListAppeals(_)
                | Command::GetAppeal { .. }
                | Command::GetFund
                | Command::ListCompensations(_)
                | Command::DueOutbox { .. }
                | Command::ListOutbox(_)
        )
    }
}

impl Command {
    /// The new line a command opens, if it opens one (with a limit or on an application).
    pub fn new_line(&self) -> Option<&NewCreditLine> {
        match self {
            Command::CreateCreditLine(r) => Some(r),
            Command::ApplyForCreditLine(a) => Some(&a.line),
            _ => None,
        }
    }
}

/// The command for a `POST /v1/credit-lines` body: a line with its fixed `limit`, or, with
/// `application` and `monthly_income`, one the credit scorecard sets the limit of. The
/// application is checked against the credit model here, off the writer thread: an unknown
/// field, a missing one or one of the wrong type is refused naming it
/// (`application.<feature>`).
pub fn credit_line_command(request: CreditLineRequest) -> Result<Command, CoreError> {
    let CreditLineRequest {
        user_id,
        currency,
        limit,
        application,
        monthly_income,
        profile,
        opened_at,
        wallet_id,
        contact,
    } = request;
    let line = |limit: String| NewCreditLine { user_id, currency, limit, profile, opened_at, wallet_id, contact };
    match (limit, application, monthly_income) {
        (Some(_), Some(_), _) => Err(CoreError::InvalidRequest {
            field: "application".into(),
            message: "give `limit` (a fixed limit) or `application` (the scorecard sets the limit), not both".into(),
        }),
        (None, None, _) => Err(CoreError::InvalidRequest {
            field: "limit".into(),
            message: "give `limit` (a fixed limit) or `application` with `monthly_income`".into(),
        }),
        (Some(_), None, Some(_)) => Err(CoreError::InvalidRequest {
            field: "monthly_income".into(),
            message: "`monthly_income` goes with `application`, not with a fixed `limit`".into(),
        }),
        (Some(limit), None, None) => Ok(Command::CreateCreditLine(line(limit))),
        (None, Some(_), None) => Err(CoreError::MissingField { field: "monthly_income".into() }),
        (None, Some(application), Some(monthly_income)) => {
            let application = xiezhi_risk::shipped_credit_model().parse(&application)?;
            Ok(Command::ApplyForCreditLine(Box::new(CreditLineApplication {
                line: line(String::new()),
                application,
                monthly_income,
            })))
        }
    }
}

/// A fraud scorer to hand to the writer.
#[derive(Clone)]
pub struct ScorerHandle(pub std::sync::Arc<dyn xiezhi_risk::Scorer>);

impl std::fmt::Debug for ScorerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScorerHandle({}@{})", self.0.name(), self.0.version())
    }
}

/// An idempotency key and the fingerprint (hash of method, path and body) of the request it
/// came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub fingerprint: String,
}

pub(crate) struct Envelope {
    pub caller: Caller,
    pub command: Command,
    pub idempotency: Option<IdempotencyKey>,
    pub reply: oneshot::Sender<Result<Reply, CoreError>>,
}

/// A handle to the running service. Cheap to clone; every clone talks to the same writer.
#[derive(Clone)]
pub struct Service {
    queue: SyncSender<Envelope>,
    strict_qr: bool,
    stats: Arc<WriterStats>,
    clock: Arc<dyn Clock>,
    key_ring: Arc<KeyRing>,
}

impl Service {
    /// Loads the store, replays the journal, and starts the writer thread.
    pub fn start(store: Box<dyn Store>, config: ServiceConfig, clock: Arc<dyn Clock>) -> Result<Service, CoreError> {
        let (queue, receiver) = sync_channel(config.queue_capacity);
        let stats = Arc::new(WriterStats::default());
        writer::spawn(store, &config, Arc::clone(&clock), receiver, Arc::clone(&stats))?;
        let key_ring = Arc::clone(&config.key_ring);
        Ok(Service { queue, strict_qr: config.strict_qr, stats, clock, key_ring })
    }

    /// The valid API keys, as the writer last published them.
    pub fn key_ring(&self) -> &KeyRing {
        &self.key_ring
    }

    /// The service's clock: what it stamps and decides with.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Decodes the QR code of a payment request, on the caller's thread.
    pub fn prepare_payment(&self, request: NewPayment) -> Result<Command, CoreError> {
        let qr = xiezhi_qr::decode(request.qr_payload.trim(), DecodeOptions { strict: self.strict_qr })?;
        Ok(Command::CreatePayment(Box::new(PreparedPayment { request, qr })))
    }

    fn envelope(
        caller: Caller,
        command: Command,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<(Envelope, oneshot::Receiver<Result<Reply, CoreError>>), CoreError> {
        if let Some(key) = &idempotency {
            if key.key.is_empty() || key.key.len() > MAX_IDEMPOTENCY_KEY_BYTES || !key.key.is_ascii() {
                return Err(CoreError::InvalidRequest {
                    field: "Idempotency-Key".into(),
                    message: format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} ASCII characters"),
                });
            }
        }
        let (reply, receiver) = oneshot::channel();
        Ok((Envelope { caller, command, idempotency, reply }, receiver))
    }

    /// Runs a command for the process itself (trusted); see [`Service::execute_as`].
    pub async fn execute(&self, command: Command, idempotency: Option<IdempotencyKey>) -> Result<Reply, CoreError> {
        self.execute_as(Caller::System, command, idempotency).await
    }

    /// Runs a command for `caller`, who may act only on what is theirs; never blocks the
    /// calling task on a full queue (answers `overloaded`).
    pub async fn execute_as(
        &self,
        caller: Caller,
        command: Command,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Reply, CoreError> {
        let (envelope, receiver) = Self::envelope(caller, command, idempotency)?;
        match self.queue.try_send(envelope) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("xiezhi_overloaded_total").increment(1);
                return Err(CoreError::Overloaded);
            }
            Err(TrySendError::Disconnected(_)) => return Err(stopped()),
        }
        receiver.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Runs a command from a plain thread, waiting for queue space (benchmarks, CLI).
    pub fn execute_blocking(&self, command: Command, idempotency: Option<IdempotencyKey>) -> Result<Reply, CoreError> {
        let (envelope, receiver) = Self::envelope(Caller::System, command, idempotency)?;
        self.queue.send(envelope).map_err(|_| stopped())?;
        receiver.blocking_recv().unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> CoreError {
    CoreError::StorageUnavailable { message: "the writer has stopped".into() }
}
