//! The writer's state: the ledger plus merchants, payments and idempotency records, and the
//! rules that turn one command into ledger transactions and records. Runs on one thread.

use crate::access::Caller;
use crate::decide::RiskConfig;
use crate::error::CoreError;
use crate::lifecycle::{LifecycleEvent, LifecycleKind};
use crate::model::*;
use crate::{AcceptanceConfig, Command, IdempotencyKey, PreparedPayment, ServiceConfig};
use xiezhi_risk::{ChallengeMethod, Engine};

/// The record kinds the writer reads by id while applying commands, through [`State::get`].
/// Merchants, line profiles, restrictions, list entries and settings are held in memory and
/// read from the store only by a reload.
/// Restrictions and appeals are held in memory too; decision labels are read by id.
const READ_BY_ID: [RecordKind; 6] = [
    RecordKind::Payment,
    RecordKind::Idempotency,
    RecordKind::Decision,
    RecordKind::Challenge,
    RecordKind::Notification,
    RecordKind::DecisionLabel,
];

/// Sealed batches the overlay holds before a seal takes a snapshot to let them go, even
/// though nothing read: with one batch committing and one waiting, the oldest of these is
/// durable by then, so the overlay stays within a few batches.
const MAX_UNRELEASED_BATCHES: usize = 4;

/// How often the risk engine forgets idle devices, networks, merchants and users.
const RISK_PRUNE_INTERVAL_MS: i64 = 10 * 60_000;

fn check_profile(profile: &UserProfile) -> Result<(), CoreError> {
    if let Some(date) = &profile.birth_date {
        if date.parse::<jiff::civil::Date>().is_err() {
            return Err(CoreError::InvalidRequest {
                field: "profile.birth_date".into(),
                message: format!("`{date}` is not a date such as 1990-04-01"),
            });
        }
    }
    if !(0..=3).contains(&profile.kyc_level) {
        return Err(CoreError::InvalidRequest {
            field: "profile.kyc_level".into(),
            message: "`kyc_level` is 0 (none) to 3 (ID plus face match)".into(),
        });
    }
    if profile.region.chars().count() > 16 || profile.region.chars().any(|c| c.is_control()) {
        return Err(CoreError::InvalidRequest {
            field: "profile.region".into(),
            message: "`region` is an ISO 3166-2 code such as CN-SH".into(),
        });
    }
    Ok(())
}
/// An email address the outbox can send to: one `@` between non-empty parts, no spaces or
/// control characters (the SMTP relay judges the rest, and a refusal parks the message).
fn check_contact(contact: Option<&Contact>) -> Result<(), CoreError> {
    let Some(email) = contact.and_then(|c| c.email.as_deref()) else { return Ok(()) };
    let well_formed = email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && domain.contains('.')
        });
    if well_formed {
        Ok(())
    } else {
        Err(CoreError::InvalidRequest {
            field: "contact.email".into(),
            message: format!("`email` is an address such as alice@example.com, at most {MAX_EMAIL_CHARS} characters"),
        })
    }
}

use crate::overlay::Overlay;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use xiezhi_ledger::{HoldStatus, Ledger, LedgerError, Operation};
use xiezhi_money::{parse_minor, Currency, Money, MoneyError, Sign, MAX_AMOUNT_MINOR};
use xiezhi_qr::{AccountTemplate, LanguageTemplate, MerchantPresentedQr, PointOfInitiation};
use xiezhi_store::{Batch, Record, RecordKind, Snapshot, Store, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdempotencyRecord {
    pub fingerprint: String,
    pub outcome: Result<Reply, CoreError>,
    pub created_at_ms: i64,
}

/// What the writer keeps in memory: the ledger (credit lines and pending holds) and the
/// merchants. Payments, idempotency keys, decisions, challenges and inboxes live in the
/// store and are read by id through [`State::get`], which sees every batch already applied,
/// committed or not (the [`Overlay`]).
pub(crate) struct State {
    pub(crate) store: Box<dyn Store>,
    pub ledger: Ledger,
    pub(crate) merchants: HashMap<String, Merchant>,
    /// (lower-cased partner GUID, merchant ref) → merchant id.
    partner_index: HashMap<(String, String), String>,
    /// Records of batches the store's read snapshot may not hold yet.
    overlay: Overlay,
    /// The read snapshot the overlay and the ledger's evictions were last aligned with.
    snapshot: Snapshot,
    config: AcceptanceConfig,
    pub(crate) hold_ttl_ms: i64,
    pub(crate) engine: Engine,
    pub(crate) risk_config: RiskConfig,
    pub(crate) line_profiles: HashMap<String, LineProfile>,
    /// The wallet each user's first line belongs to (`None`: opened by an operator for no
    /// wallet). A user is one wallet's: the engine remembers behaviour per user, so another
    /// wallet opening lines under the same id could restrict the user or text their phone.
    pub(crate) user_wallets: HashMap<String, Option<String>>,
    /// Every restriction, by id (ids order them by creation: listings page through this).
    pub(crate) restrictions: BTreeMap<String, Restriction>,
    /// The restriction in force (or not yet swept at its end) per credit line.
    pub(crate) active_restrictions: HashMap<String, String>,
    /// Every restriction's id per credit line, oldest first.
    pub(crate) restrictions_by_line: HashMap<String, Vec<String>>,
    /// Each user's lines, in the order they were opened.
    pub(crate) user_lines: HashMap<String, Vec<String>>,
    /// Every appeal, by id.
    pub(crate) appeals: BTreeMap<String, crate::appeals::Appeal>,
    /// Appeal ids per decision id and per restriction id.
    pub(crate) appeals_by_subject: HashMap<String, Vec<String>>,
    /// Appeal ids per user, oldest first.
    pub(crate) appeals_by_user: HashMap<String, Vec<String>>,
    /// (deadline, id) of appeals neither decided nor escalated: the sweep's queue.
    pub(crate) undecided_appeals: BTreeSet<(i64, String)>,
    /// Every compensation, by id (ids order them by creation: oldest first).
    pub(crate) compensations: BTreeMap<String, crate::fund::Compensation>,
    /// Compensation ids per user, oldest first.
    pub(crate) compensations_by_user: HashMap<String, Vec<String>>,
    /// Ids of compensations waiting for the fund, per currency, oldest first.
    pub(crate) waiting_compensations: BTreeMap<Currency, BTreeSet<String>>,
    /// Pending challenges, by id (resolved ones are read through [`State::get`]).
    pub(crate) challenges: HashMap<String, Challenge>,
    last_risk_prune_ms: i64,
    /// Why only reads are served (a read-only start): commands that write are refused.
    read_only: Option<String>,
    /// The secret one-time codes are kept under (an HMAC), never stored with them.
    pub(crate) code_secret: [u8; 32],
    /// Recent wrong code answers per credit line (at most the hourly limit each).
    pub(crate) wrong_answers: HashMap<String, Vec<i64>>,
    /// Every API key ever made, by id (revoked ones included, for the listing).
    pub(crate) api_keys: HashMap<String, crate::access::ApiKey>,
    /// The valid keys, shared with the HTTP layer.
    pub(crate) key_ring: std::sync::Arc<crate::access::KeyRing>,
    /// Messages the commands applied since the writer last took them want sent once their
    /// batch is durable (they hold one-time codes: never stored).
    pub(crate) outbox: Vec<crate::notify::OutboundMessage>,
    /// Which channels events write outbox rows for.
    pub(crate) outbox_config: crate::outbox::OutboxConfig,
    /// Every outbox row, by message id (ids order them by creation).
    pub(crate) outbox_rows: BTreeMap<String, xiezhi_notify::OutboxEntry>,
    /// Ids of rows still to deliver (pending, in flight or waiting to retry).
    pub(crate) open_outbox: BTreeSet<String>,
    /// Ids of dead letters.
    pub(crate) dead_outbox: BTreeSet<String>,
    /// The key codes are sealed under in their outbox rows (never stored).
    pub(crate) code_key: xiezhi_notify::CodeKey,
    /// Challenge id → the outbox row still holding its sealed code.
    pub(crate) code_rows: HashMap<String, String>,
    /// Woken when a code's row is written.
    pub(crate) outbox_wake: std::sync::Arc<tokio::sync::Notify>,
}

pub(crate) fn storage(error: StoreError) -> CoreError {
    CoreError::StorageUnavailable { message: error.to_string() }
}

fn corrupt(kind: RecordKind, id: &str, error: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("{} record {id}: {error}", kind.as_str()))
}

pub(crate) fn record<T: Serialize>(kind: RecordKind, id: &str, value: &T, now_ms: i64) -> Record {
    Record {
        kind,
        id: id.to_owned(),
        body: serde_json::to_string(value).expect("records serialise"),
        updated_at_ms: now_ms,
    }
}

/// Time-ordered ids with 80 random bits from the OS generator: nobody can guess the next
/// id from earlier ones, and a collision within one millisecond is about as likely as a
/// hardware fault, which is why payment ids are not looked up before use.
pub(crate) fn new_id(prefix: &str, now_ms: i64) -> String {
    let random: [u8; 10] = crate::random::os_bytes();
    format!("{prefix}_{:011x}{}", now_ms.max(0), crate::decide::hex(&random))
}

fn amount_error(field: &str, error: MoneyError) -> CoreError {
    match error {
        MoneyError::UnknownCurrency { code } => CoreError::UnknownCurrency { currency: code },
        other => CoreError::InvalidAmount { field: field.to_owned(), message: format!("`{field}`: {other}") },
    }
}

fn parse_amount(field: &str, text: &str, currency: Currency, sign: Sign) -> Result<i64, CoreError> {
    parse_minor(text, currency, sign).map_err(|e| amount_error(field, e))
}

pub(crate) fn parse_currency(code: &str) -> Result<Currency, CoreError> {
    // Alphabetic codes only at the API; numeric codes belong to QR payloads.
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        if let Some(currency) = Currency::from_alpha(code) {
            return Ok(currency);
        }
    }
    Err(CoreError::UnknownCurrency { currency: code.to_owned() })
}

/// An optional RFC 3339 instant in the past (onboarding dates of a migrated book); now when
/// absent.
fn past_instant(field: &str, text: Option<&str>, now_ms: i64) -> Result<i64, CoreError> {
    let Some(text) = text else { return Ok(now_ms) };
    let invalid = |message: String| CoreError::InvalidRequest { field: field.into(), message };
    let at: jiff::Timestamp = text
        .parse()
        .map_err(|_| invalid(format!("`{field}` is an RFC 3339 instant, e.g. 2024-03-01T09:00:00+08:00")))?;
    let at_ms = at.as_millisecond();
    if at_ms > now_ms {
        return Err(invalid(format!("`{field}` is in the future")));
    }
    if at_ms < 946_684_800_000 {
        return Err(invalid(format!("`{field}` is before 2000")));
    }
    Ok(at_ms)
}

pub(crate) fn check_text(field: &str, value: &str) -> Result<(), CoreError> {
    check_text_up_to(field, value, MAX_TEXT_CHARS)
}

fn check_text_up_to(field: &str, value: &str, max_chars: usize) -> Result<(), CoreError> {
    let length = value.chars().count();
    if length == 0 || length > max_chars || value.chars().any(char::is_control) {
        return Err(CoreError::InvalidRequest {
            field: field.to_owned(),
            message: format!("`{field}` must be 1 to {max_chars} printable characters"),
        });
    }
    Ok(())
}

/// Every text a client sends about its device and network is bounded: it is stored with
/// every payment and read by the engine.
fn check_context(context: &PaymentContext) -> Result<(), CoreError> {
    let fields = [
        ("context.device_id", &context.device_id, MAX_TEXT_CHARS),
        ("context.ip", &context.ip, MAX_IP_CHARS),
        ("context.network", &context.network, MAX_CONTEXT_TAG_CHARS),
        ("context.user_agent", &context.user_agent, MAX_USER_AGENT_CHARS),
        ("context.app_version", &context.app_version, MAX_CONTEXT_TAG_CHARS),
    ];
    for (field, value, max_chars) in fields {
        if let Some(value) = value {
            check_text_up_to(field, value, max_chars)?;
        }
    }
    Ok(())
}

impl State {
    /// Replays the journal and loads the merchants.
    pub fn load(store: Box<dyn Store>, config: &ServiceConfig) -> Result<State, StoreError> {
        let mut state = State {
            store,
            ledger: Ledger::new(),
            merchants: HashMap::new(),
            partner_index: HashMap::new(),
            overlay: Overlay::new(0, 1),
            snapshot: Snapshot::default(),
            config: config.acceptance.clone(),
            hold_ttl_ms: config.hold_ttl_ms,
            engine: Engine::with_defaults(),
            risk_config: config.risk.clone(),
            read_only: config.read_only.then(|| "started with --read-only".to_owned()),
            code_secret: config.code_secret.unwrap_or_else(crate::random::os_bytes),
            wrong_answers: HashMap::new(),
            api_keys: HashMap::new(),
            key_ring: std::sync::Arc::clone(&config.key_ring),
            outbox: Vec::new(),
            outbox_config: config.outbox.clone(),
            outbox_rows: BTreeMap::new(),
            open_outbox: BTreeSet::new(),
            dead_outbox: BTreeSet::new(),
            code_key: config
                .outbox_key
                .clone()
                .unwrap_or_else(|| xiezhi_notify::CodeKey::from_bytes(&crate::random::os_bytes())),
            code_rows: HashMap::new(),
            outbox_wake: std::sync::Arc::clone(&config.outbox_wake),
            line_profiles: HashMap::new(),
            user_wallets: HashMap::new(),
            restrictions: BTreeMap::new(),
            active_restrictions: HashMap::new(),
            restrictions_by_line: HashMap::new(),
            user_lines: HashMap::new(),
            appeals: BTreeMap::new(),
            appeals_by_subject: HashMap::new(),
            appeals_by_user: HashMap::new(),
            undecided_appeals: BTreeSet::new(),
            compensations: BTreeMap::new(),
            compensations_by_user: HashMap::new(),
            waiting_compensations: BTreeMap::new(),
            challenges: HashMap::new(),
            last_risk_prune_ms: 0,
        };
        state.reload()?;
        Ok(state)
    }

    /// Rebuilds everything in memory from the store (at start-up, and after a failed commit
    /// left memory ahead of the disk).
    pub fn reload(&mut self) -> Result<(), StoreError> {
        // Start from what is durable now: a fresh snapshot, and batches numbered above the
        // stored generation and every batch sealed before (a refused batch's number is never
        // reused, so no overlay entry can be mistaken for a stored one).
        self.store.end_reads()?;
        // Messages of batches that never became durable are for challenges that do not exist.
        self.outbox.clear();
        self.snapshot = self.store.read_snapshot()?;
        let next = self.overlay.open_generation().max(self.snapshot.generation + 1);
        self.overlay = Overlay::new(self.snapshot.generation, next);
        let mut ledger = self.replay_journal()?;
        assert_eq!(ledger.last_transaction_id(), self.snapshot.last_journal_id, "the journal read is the snapshot's");
        ledger.evict_settled_holds(self.snapshot.last_journal_id);
        self.ledger = ledger;
        self.merchants.clear();
        self.partner_index.clear();
        for record in self.store.records(RecordKind::Merchant)? {
            let merchant: Merchant =
                serde_json::from_str(&record.body).map_err(|e| corrupt(record.kind, &record.id, e))?;
            self.index_merchant(merchant);
        }
        self.reload_risk()?;
        self.reload_keys()?;
        self.reload_outbox()?;
        // Reads of this reload end here, so the next batch reads a fresh snapshot.
        self.store.end_reads()?;
        if self.read_only.is_some() {
            return Ok(());
        }
        self.check_consistency()
    }

    /// The ledger from the journal. A refused entry stops a normal start (the books are not
    /// what the journal says they should be); a read-only start shows them as recorded.
    fn replay_journal(&mut self) -> Result<Ledger, StoreError> {
        let accepted = crate::books::accepted_transactions(self.store.as_mut())?;
        let read_only = self.read_only.is_some();
        let replay = crate::books::replay_journal(self.store.as_mut(), &accepted, read_only)?;
        match (replay.first_refused, read_only) {
            (None, _) => Ok(replay.ledger),
            (Some(refused), true) => {
                tracing::error!(transaction = refused.id, error = %refused.error, "read-only: the journal fails replay");
                self.read_only = Some(format!(
                    "journal entry {} is refused on replay ({}); the books are shown as recorded",
                    refused.id, refused.error
                ));
                Ok(replay.ledger)
            }
            (Some(refused), false) => Err(StoreError::Corrupt(format!(
                "journal entry {} ({}, payments {:?}) is refused on replay: {}. The service takes no payments on \
                 books it cannot vouch for: `xiezhi store check` shows what is wrong, `xiezhi serve --read-only` \
                 serves reads meanwhile, and `xiezhi store accept --transaction {}` applies the entry as recorded, \
                 with your name and reason on record",
                refused.id, refused.at, refused.payments, refused.error, refused.id
            ))),
        }
    }

    /// Payments and holds are written in the same commit, so every pending hold has an
    /// authorized payment that agrees with it.
    fn check_consistency(&mut self) -> Result<(), StoreError> {
        let pending: Vec<String> = self.ledger.pending_holds().map(|h| h.id.clone()).collect();
        for id in pending {
            let record = self
                .store
                .record(RecordKind::Payment, &id)?
                .ok_or_else(|| StoreError::Corrupt(format!("pending hold {id} has no payment record")))?;
            let payment: Payment = serde_json::from_str(&record.body).map_err(|e| corrupt(record.kind, &id, e))?;
            crate::books::agrees_with_hold(&payment, self.ledger.hold(&id))
                .map_err(|detail| StoreError::Corrupt(format!("payment {id}: {detail}")))?;
        }
        Ok(())
    }

    /// Why the service serves reads only, if it does.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// Commits a batch on this state's own store handle (commits without a separate
    /// committer), then starts the next batch.
    pub fn commit(&mut self, batch: &mut Batch) -> Result<(), StoreError> {
        batch.generation = self.overlay.open_generation();
        self.store.commit(batch)?;
        self.seal()?;
        // Committed on this very handle: the next snapshot holds it, so it may go now.
        self.sync_snapshot()?;
        self.store.end_reads()
    }

    /// Closes the batch being built and ends its read transaction. Returns the closed
    /// batch's generation, to commit it under. The overlay lets go of batches the store
    /// holds whenever a read starts a snapshot; when batches pass without reads, a snapshot
    /// is taken here every few batches, which keeps the overlay to a handful of batches.
    pub fn seal(&mut self) -> Result<u64, StoreError> {
        self.store.end_reads()?;
        let generation = self.overlay.seal();
        if self.overlay.sealed_batches() > MAX_UNRELEASED_BATCHES {
            self.sync_snapshot()?;
            self.store.end_reads()?;
        }
        metrics::gauge!("xiezhi_overlay_records").set(self.overlay.len() as f64);
        Ok(generation)
    }

    #[cfg(test)]
    pub fn overlay_batches(&self) -> usize {
        self.overlay.sealed_batches()
    }

    /// Ends the read transaction while the writer waits for work, so an idle service holds
    /// no snapshot open. The next read starts a newer one; the overlay stays valid.
    pub fn idle(&mut self) -> Result<(), StoreError> {
        self.store.end_reads()
    }

    /// Aligns memory with the store's current read snapshot: overlay entries of batches it
    /// holds go, and settled holds whose last transaction it holds may leave the ledger.
    fn sync_snapshot(&mut self) -> Result<Snapshot, StoreError> {
        let snapshot = self.store.read_snapshot()?;
        if snapshot != self.snapshot {
            assert!(snapshot.last_journal_id <= self.ledger.last_transaction_id(), "the store is ahead of the ledger");
            self.overlay.release_through(snapshot.generation);
            self.ledger.evict_settled_holds(snapshot.last_journal_id);
            self.snapshot = snapshot;
        }
        Ok(snapshot)
    }

    /// Adds a record to the batch. Every later read of this writer sees it at once: kinds
    /// read by id go into the overlay; the others live in the writer's memory anyway and are
    /// read from the store only when it reloads.
    pub(crate) fn put_record(&mut self, out: &mut Batch, record: Record) {
        if READ_BY_ID.contains(&record.kind) {
            self.overlay.put(&record);
        }
        out.records.push(record);
    }

    pub(crate) fn put<T: Serialize>(&mut self, out: &mut Batch, kind: RecordKind, id: &str, value: &T, now_ms: i64) {
        self.put_record(out, record(kind, id, value, now_ms));
    }

    /// A record as the latest batch applied left it, committed or not: from the overlay, or
    /// else from the store's snapshot, which then holds every batch the overlay let go.
    pub(crate) fn get<T: DeserializeOwned>(&mut self, kind: RecordKind, id: &str) -> Result<Option<T>, CoreError> {
        assert!(READ_BY_ID.contains(&kind), "{kind:?} records are not overlaid, so not read by id");
        if let Some(body) = self.overlay.get(kind, id) {
            return serde_json::from_str(body).map(Some).map_err(|e| storage(corrupt(kind, id, e)));
        }
        self.sync_snapshot().map_err(storage)?;
        match self.store.record(kind, id).map_err(storage)? {
            Some(r) => serde_json::from_str(&r.body).map(Some).map_err(|e| storage(corrupt(kind, id, e))),
            None => Ok(None),
        }
    }

    /// Brings an evicted hold back from its journal, read from the snapshot the ledger
    /// checks it against. A hold with no journal stays absent (the payment never held).
    fn restore_hold(&mut self, hold_id: &str) -> Result<(), CoreError> {
        if self.ledger.hold(hold_id).is_some() {
            return Ok(());
        }
        let snapshot = self.sync_snapshot().map_err(storage)?;
        let entries = self.store.hold_journal(hold_id).map_err(storage)?;
        if entries.is_empty() {
            return Ok(());
        }
        self.ledger
            .restore_hold(hold_id, &entries, snapshot.last_journal_id)
            .map_err(|e| CoreError::BooksDisagree { id: hold_id.to_owned(), detail: e.to_string() })
    }

    /// Deletes idempotency records older than the retention period.
    pub fn prune_idempotency(&mut self, before_ms: i64, max: usize) -> Result<usize, StoreError> {
        self.store.delete_records_before(RecordKind::Idempotency, before_ms, max)
    }

    fn index_merchant(&mut self, merchant: Merchant) {
        for account in &merchant.partner_accounts {
            self.partner_index.insert(
                (account.globally_unique_identifier.to_ascii_lowercase(), account.merchant_ref.clone()),
                merchant.id.clone(),
            );
        }
        self.merchants.insert(merchant.id.clone(), merchant);
    }

    /// Applies one command, honouring its idempotency key. Everything to persist goes into
    /// `out`; the caller commits `out` before anyone sees the reply.
    pub fn apply(
        &mut self,
        caller: &Caller,
        command: Command,
        idempotency: Option<IdempotencyKey>,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        if let (Some(reason), true) = (&self.read_only, command.writes()) {
            return Err(CoreError::ReadOnly { reason: reason.clone() });
        }
        self.authorize(caller, &command)?;
        // A key's answer holds the key itself, shown once: it is never kept for a replay.
        let idempotency = idempotency.filter(|_| !matches!(command, Command::Keys(_)));
        // Keys are scoped per caller, so two callers cannot collide or read each other's answers.
        let stored_key = idempotency.as_ref().map(|key| match caller.idempotency_scope() {
            Some(scope) => format!("{scope}:{}", key.key),
            None => key.key.clone(),
        });
        if let (Some(key), Some(stored_key)) = (&idempotency, &stored_key) {
            // Refusals stored by earlier versions are not answers: the request runs again.
            let stored =
                self.get::<IdempotencyRecord>(RecordKind::Idempotency, stored_key)?.filter(|e| e.outcome.is_ok());
            if let Some(entry) = stored {
                if entry.fingerprint != key.fingerprint {
                    return Err(CoreError::IdempotencyKeyReused { key: key.key.clone() });
                }
                metrics::counter!("xiezhi_idempotent_replays_total").increment(1);
                return entry.outcome;
            }
        }
        let items_before = out.items();
        let outcome = self.execute(caller, command, now_ms, out);
        let changed = out.items() > items_before;
        if let (Err(error), true) = (&outcome, changed) {
            if !error.is_transient() {
                // Every refusal is decided before a command writes anything; one that came
                // after would leave half a change in memory. Refuse the batch and reload.
                tracing::error!(%error, "a command failed after it began to change state");
                return Err(CoreError::StorageUnavailable {
                    message: format!("the request failed half-way ({}); nothing of it was kept", error.code()),
                });
            }
        }
        // Stripe's rule: the answer is kept under the key only when the request changed
        // something. Refusals (invalid input, not found, a state that another request may
        // change) changed nothing and are not kept: a retry runs again and may succeed.
        if let (Some(key), Some(stored_key), Ok(reply), true) = (idempotency, stored_key, &outcome, changed) {
            let entry =
                IdempotencyRecord { fingerprint: key.fingerprint, outcome: Ok(reply.clone()), created_at_ms: now_ms };
            self.put(out, RecordKind::Idempotency, &stored_key, &entry, now_ms);
        }
        outcome
    }

    /// Expires due holds and marks their payments expired.
    pub fn expire_due(&mut self, now_ms: i64, max: usize, out: &mut Batch) -> Result<usize, CoreError> {
        if self.read_only.is_some() {
            return Ok(0);
        }
        let expired = self.ledger.expire_due(now_ms, max);
        let count = expired.len();
        for transaction in expired {
            if let Operation::Expire { hold_id } = &transaction.operation {
                let hold_id = hold_id.clone();
                self.update_payment(&hold_id, now_ms, out, |p| {
                    p.status = PaymentStatus::Expired;
                    p.record(LifecycleEvent::new(LifecycleKind::Expired, now_ms));
                })?;
            }
            out.transactions.push(transaction);
        }
        let challenges = self.expire_challenges(now_ms, max, out)?;
        let restrictions = self.expire_restrictions(now_ms, max, out)?;
        let appeals = self.escalate_appeals(now_ms, max, out)?;
        let compensations = self.pay_waiting(None, max, now_ms, out).len();
        if now_ms - self.last_risk_prune_ms >= RISK_PRUNE_INTERVAL_MS {
            self.last_risk_prune_ms = now_ms;
            self.prune_risk_state(now_ms);
        }
        Ok(count + challenges + restrictions + appeals + compensations)
    }

    fn execute(&mut self, caller: &Caller, command: Command, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        match command {
            Command::CreateMerchant(request) => self.create_merchant(caller, request, now_ms, out),
            Command::CreateCreditLine(request) => self.create_credit_line(caller, request, now_ms, out),
            Command::ApplyForCreditLine(application) => self.apply_for_credit_line(caller, *application, now_ms, out),
            Command::Keys(command) => self.key_command(caller, command, now_ms, out),
            Command::CreatePayment(prepared) => self.create_payment(*prepared, now_ms, out),
            Command::Capture { payment_id, amount } => self.capture(&payment_id, amount.as_deref(), now_ms, out),
            Command::Void { payment_id } => self.void(&payment_id, now_ms, out),
            Command::Refund { payment_id, amount } => self.refund(&payment_id, &amount, now_ms, out),
            Command::Repay { credit_line_id, amount } => self.repay(&credit_line_id, &amount, now_ms, out),
            Command::CompleteProfile { credit_line_id, submission } => {
                self.complete_profile(caller, &credit_line_id, submission, now_ms, out)
            }
            Command::IssueDynamicQr { merchant_id, amount, bill_number } => {
                self.dynamic_qr(&merchant_id, &amount, bill_number).map(Reply::DynamicQr)
            }
            Command::GetMerchant { id } => self.merchant(&id).map(|m| Reply::Merchant(m.into())),
            Command::GetCreditLine { id } => self.credit_line_view_at(&id, now_ms).map(Reply::CreditLine),
            Command::GetPayment { id } => self.payment(&id).map(|p| Reply::Payment((&p).into())),
            Command::GetDecision { payment_id } => self.decision_record(&payment_id),
            Command::ReplayDecision { payment_id } => self.replay_decision(&payment_id),
            Command::CompleteChallenge { id, answer } => self.complete_challenge(&id, answer, now_ms, out),
            Command::GetChallenge { id } => self.challenge_view(&id),
            Command::GetNotifications { credit_line_id } => self.notifications(&credit_line_id),
            Command::GetRules => Ok(self.rules_document()),
            Command::PutRules(definition) => self.put_rules(definition, now_ms, out),
            Command::GetPolicy => Ok(self.policy_document(now_ms)),
            Command::PutPolicy(text) => self.put_policy(text, now_ms, out),
            Command::AddListEntry(entry) => self.add_list_entry(entry, now_ms, out),
            Command::RemoveListEntry { id } => self.remove_list_entry(&id, now_ms, out),
            Command::GetLists => Ok(self.lists_document()),
            Command::ListRestrictions(query) => self.list_restrictions(&query, now_ms),
            Command::GetRestriction { id } => self.restriction_record(&id, now_ms),
            Command::LiftRestriction { id, request } => self.lift_by_operator(caller, &id, request, now_ms, out),
            Command::UserStatus { user_id, language } => {
                let wallet_id = match caller {
                    Caller::Key(p) if p.kind == crate::KeyKind::Wallet => p.wallet_id.as_deref(),
                    _ => None,
                };
                self.user_status(&user_id, wallet_id, language, now_ms)
            }
            Command::FileAppeal(request) => self.file_appeal(caller, request, now_ms, out),
            Command::ListAppeals(query) => self.list_appeals(&query),
            Command::GetAppeal { id } => self.get_appeal(&id),
            Command::ClaimAppeal { id } => self.claim_appeal(caller, &id, now_ms, out),
            Command::DecideAppeal { id, decision } => self.decide_appeal(caller, &id, decision, now_ms, out),
            Command::FundDeposit(request) => self.deposit_fund(caller, request, now_ms, out),
            Command::GetFund => Ok(self.fund_view()),
            Command::ListCompensations(query) => self.list_compensations(&query),
            Command::DueOutbox { max, lease_ms } => Ok(self.due_outbox(max, lease_ms, now_ms)),
            Command::RecordOutbox(transitions) => self.record_outbox(transitions, now_ms, out),
            Command::ListOutbox(query) => self.list_outbox(&query),
            Command::ReplayOutbox(request) => self.replay_outbox(request, now_ms, out),
            Command::SetScorer(handle) => {
                self.engine.set_scorer(std::sync::Arc::clone(&handle.0));
                self.risk_config.scorer = Some(handle.0);
                let v = self.engine.versions();
                Ok(Reply::Document(serde_json::json!({ "scorer": v.scorer })))
            }
        }
    }

    fn merchant(&self, id: &str) -> Result<&Merchant, CoreError> {
        self.merchants.get(id).ok_or_else(|| CoreError::MerchantNotFound { id: id.to_owned() })
    }

    /// A payment as the latest batch applied left it.
    pub(crate) fn payment(&mut self, id: &str) -> Result<Payment, CoreError> {
        self.get(RecordKind::Payment, id)?.ok_or_else(|| CoreError::PaymentNotFound { id: id.to_owned() })
    }

    fn credit_line_view(&self, id: &str) -> Result<CreditLineView, CoreError> {
        let mut view = self
            .ledger
            .credit_line(id)
            .map(CreditLineView::from)
            .ok_or_else(|| CoreError::CreditLineNotFound { id: id.to_owned() })?;
        view.credit =
            self.line_profiles.get(id).and_then(|p| p.credit.as_ref()).map(|c| CreditView::from(&c.assessment));
        Ok(view)
    }

    /// The line with the restriction in force at `now_ms`, if any.
    pub(crate) fn credit_line_view_at(&self, id: &str, now_ms: i64) -> Result<CreditLineView, CoreError> {
        let mut view = self.credit_line_view(id)?;
        view.restriction = self.restriction_view(id, now_ms);
        Ok(view)
    }

    fn create_merchant(
        &mut self,
        caller: &Caller,
        request: NewMerchant,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        check_text("name", &request.name)?;
        check_text("city", &request.city)?;
        if request.country.len() != 2 || !request.country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(CoreError::InvalidRequest {
                field: "country".into(),
                message: "`country` must be an ISO 3166-1 alpha-2 code such as CN".into(),
            });
        }
        if request.mcc.len() != 4 || !request.mcc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CoreError::InvalidRequest {
                field: "mcc".into(),
                message: "`mcc` must be a four-digit merchant category code".into(),
            });
        }
        let currency = parse_currency(&request.currency)?;
        if request.partner_accounts.len() > 8 {
            return Err(CoreError::InvalidRequest {
                field: "partner_accounts".into(),
                message: "at most 8 partner accounts".into(),
            });
        }
        for account in &request.partner_accounts {
            check_text("partner_accounts.merchant_ref", &account.merchant_ref)?;
            if self.config.scheme(&account.globally_unique_identifier).is_none() {
                return Err(CoreError::InvalidRequest {
                    field: "partner_accounts.globally_unique_identifier".into(),
                    message: format!("`{}` is not an accepted partner scheme", account.globally_unique_identifier),
                });
            }
            let key = (account.globally_unique_identifier.to_ascii_lowercase(), account.merchant_ref.clone());
            if self.partner_index.contains_key(&key) {
                return Err(CoreError::InvalidRequest {
                    field: "partner_accounts.merchant_ref".into(),
                    message: format!(
                        "partner account `{}` is already registered to another merchant",
                        account.merchant_ref
                    ),
                });
            }
        }
        let mut id = new_id("mch", now_ms);
        while self.merchants.contains_key(&id) {
            id = new_id("mch", now_ms);
        }
        let mut merchant = Merchant {
            id: id.clone(),
            name: request.name,
            city: request.city,
            country: request.country,
            mcc: request.mcc,
            currency,
            qr_payload: String::new(),
            partner_accounts: request.partner_accounts,
            created_at_ms: past_instant("onboarded_at", request.onboarded_at.as_deref(), now_ms)?,
            created_by: caller.key_id().map(str::to_owned),
        };
        merchant.qr_payload = merchant_qr(&self.config.own_guid, &merchant, None, None).encode()?;
        self.put(out, RecordKind::Merchant, &id, &merchant, now_ms);
        let view = MerchantView::from(&merchant);
        self.index_merchant(merchant);
        Ok(Reply::Merchant(view))
    }

    fn create_credit_line(
        &mut self,
        caller: &Caller,
        request: NewCreditLine,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let currency = self.check_new_line(&request, now_ms)?;
        let limit_minor = parse_amount("limit", &request.limit, currency, Sign::NonNegative)?;
        self.open_line(caller, request, currency, limit_minor, None, now_ms, out)
    }

    /// A line on an application: the credit scorecard scores it, the policy's
    /// `credit_limits` band and the declared income set the limit, and the band stays with
    /// the line (its payments' `credit_band`). Below every band no line is opened: `422
    /// credit_declined` with the score and the reasons.
    fn apply_for_credit_line(
        &mut self,
        caller: &Caller,
        request: CreditLineApplication,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let currency = self.check_new_line(&request.line, now_ms)?;
        let income_minor = parse_amount("monthly_income", &request.monthly_income, currency, Sign::NonNegative)?;
        let limits = self.engine.policy().credit_limits().ok_or_else(|| CoreError::InvalidRequest {
            field: "application".into(),
            message: "the policy in force sets no `credit_limits`: open the line with a `limit`".into(),
        })?;
        if limits.currency != currency {
            return Err(CoreError::InvalidRequest {
                field: "currency".into(),
                message: format!("credit limits are set in {}: apply in it", limits.currency.alpha()),
            });
        }
        let model = xiezhi_risk::shipped_credit_model();
        let assessment = model.assess(&request.application, income_minor, &limits, self.engine.catalogue());
        if assessment.band.is_none() {
            return Err(CoreError::CreditDeclined { credit: CreditView::from(&assessment) });
        }
        let limit_minor = assessment.limit_minor;
        let credit = LineCredit { assessment, monthly_income_minor: income_minor };
        self.open_line(caller, request.line, currency, limit_minor, Some(credit), now_ms, out)
    }

    /// What every new line is checked for before anything is decided: its user id, a
    /// currency the policy admits, the profile, the wallet and `opened_at`.
    fn check_new_line(&self, request: &NewCreditLine, now_ms: i64) -> Result<Currency, CoreError> {
        check_text("user_id", &request.user_id)?;
        let currency = parse_currency(&request.currency)?;
        if !self.engine.policy().admits(currency, now_ms) {
            return Err(CoreError::CurrencyNotAdmitted { currency: currency.alpha().into() });
        }
        check_profile(&request.profile)?;
        check_contact(request.contact.as_ref())?;
        if let Some(wallet_id) = &request.wallet_id {
            check_text("wallet_id", wallet_id)?;
        }
        past_instant("opened_at", request.opened_at.as_deref(), now_ms)?;
        Ok(currency)
    }

    #[allow(clippy::too_many_arguments)]
    fn open_line(
        &mut self,
        caller: &Caller,
        request: NewCreditLine,
        currency: Currency,
        limit_minor: i64,
        credit: Option<LineCredit>,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let opened_at_ms = past_instant("opened_at", request.opened_at.as_deref(), now_ms)?;
        let wallet_id = match caller {
            Caller::Key(p) if p.wallet_id.is_some() => p.wallet_id.clone(),
            _ => request.wallet_id.clone(),
        };
        if let (Some(_), Some(bound)) = (&wallet_id, self.user_wallets.get(&request.user_id)) {
            if *bound != wallet_id {
                return Err(CoreError::Forbidden {
                    scope: String::new(),
                    message: format!("user `{}` belongs to another wallet", request.user_id),
                });
            }
        }
        let mut id = new_id("cl", now_ms);
        while self.ledger.credit_line(&id).is_some() {
            id = new_id("cl", now_ms);
        }
        let transaction = self
            .ledger
            .execute(
                Operation::OpenLine { credit_line_id: id.clone(), user_id: request.user_id, currency, limit_minor },
                now_ms,
            )
            .map_err(|e| CoreError::InvalidRequest { field: "limit".into(), message: e.to_string() })?;
        out.transactions.push(transaction);
        let user_id = self.ledger.credit_line(&id).map(|l| l.user_id.clone()).unwrap_or_default();
        let profile = LineProfile {
            credit_line_id: id.clone(),
            user_id,
            profile: request.profile,
            opened_at_ms,
            wallet_id,
            opened_by: caller.key_id().map(str::to_owned),
            credit,
            contact: request.contact,
            profile_steps: Vec::new(),
        };
        self.save_line_profile(profile, now_ms, out);
        self.credit_line_view(&id).map(Reply::CreditLine)
    }

    fn resolve_merchant(&self, qr: &MerchantPresentedQr) -> Result<&Merchant, CoreError> {
        for account in &qr.merchant_account_information {
            let Some(guid) = account.globally_unique_identifier.as_deref() else {
                continue;
            };
            if guid.eq_ignore_ascii_case(&self.config.own_guid) {
                let merchant_id = account.fields.get("01").map(String::as_str).unwrap_or("");
                return self.merchants.get(merchant_id).ok_or_else(|| CoreError::MerchantNotAccepted {
                    reason: format!("merchant `{merchant_id}` is not registered with Xiezhi"),
                });
            }
            if let Some(scheme) = self.config.scheme(guid) {
                let merchant_ref = account.fields.get(&scheme.merchant_ref_field).cloned().unwrap_or_default();
                if let Some(id) = self.partner_index.get(&(guid.to_ascii_lowercase(), merchant_ref)) {
                    return self.merchant(id);
                }
            }
        }
        let seen: Vec<&str> =
            qr.merchant_account_information.iter().filter_map(|a| a.globally_unique_identifier.as_deref()).collect();
        Err(CoreError::MerchantNotAccepted {
            reason: if seen.is_empty() {
                "the code carries no merchant account template with a globally unique identifier".into()
            } else {
                format!("no registered merchant for scheme(s) {}", seen.join(", "))
            },
        })
    }

    fn create_payment(&mut self, prepared: PreparedPayment, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        let PreparedPayment { request, qr } = prepared;
        let currency =
            qr.currency().ok_or_else(|| CoreError::UnknownCurrency { currency: qr.transaction_currency.clone() })?;
        let merchant = self.resolve_merchant(&qr)?.clone();
        let (merchant_id, merchant_name) = (merchant.id.clone(), merchant.name.clone());
        check_text("credit_line_id", &request.credit_line_id)?;
        let line = self
            .ledger
            .credit_line(&request.credit_line_id)
            .ok_or_else(|| CoreError::CreditLineNotFound { id: request.credit_line_id.clone() })?;
        if self.ledger.is_frozen(&request.credit_line_id) {
            return Err(frozen(&request.credit_line_id));
        }
        if line.currency != currency {
            return Err(CoreError::CurrencyMismatch {
                expected: line.currency.alpha().into(),
                got: currency.alpha().into(),
            });
        }
        let (available_minor, limit_minor, user_id) =
            (line.available_minor(), line.limit_minor(), line.user_id.clone());
        check_context(&request.context)?;
        let qr_amount = match &qr.transaction_amount {
            Some(text) => Some(parse_amount("qr_payload", text.trim_end_matches('.'), currency, Sign::Positive)?),
            None => None,
        };
        let requested = match &request.amount {
            Some(text) => Some(parse_amount("amount", text, currency, Sign::Positive)?),
            None => None,
        };
        let base_minor = match (qr_amount, requested) {
            (Some(q), Some(r)) if q != r => {
                return Err(CoreError::AmountMismatch {
                    requested: decimal(r, currency),
                    qr_amount: decimal(q, currency),
                })
            }
            (Some(q), _) => q,
            (None, Some(r)) => r,
            (None, None) => return Err(CoreError::AmountRequired),
        };
        let fee_minor = fee(&qr, &request, base_minor, currency)?;
        let amount_minor = base_minor.checked_add(fee_minor).filter(|a| *a <= MAX_AMOUNT_MINOR).ok_or_else(|| {
            CoreError::InvalidAmount { field: "amount".into(), message: "amount with fee is too large".into() }
        })?;

        let mut id = new_id("pay", now_ms);
        while self.overlay.contains(RecordKind::Payment, &id) || self.ledger.hold(&id).is_some() {
            id = new_id("pay", now_ms);
        }
        let mut payment = Payment {
            id: id.clone(),
            credit_line_id: request.credit_line_id.clone(),
            merchant_id,
            merchant_name,
            currency,
            amount_minor,
            fee_minor,
            captured_minor: 0,
            refunded_minor: 0,
            status: PaymentStatus::Declined,
            decision: Decision {
                outcome: Outcome::Decline,
                reason_codes: vec![],
                explanation: Explanation::default(),
                recovery: vec![],
                expires_at: None,
                challenge_id: None,
                notices: vec![],
            },
            refunds: vec![],
            context: request.context,
            dynamic_qr: qr.point_of_initiation == Some(PointOfInitiation::Dynamic),
            bill_number: qr.additional_data.bill_number.clone(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            expires_at_ms: None,
            lifecycle: vec![],
        };
        let facts = self.payment_facts(&payment, &merchant, &user_id, available_minor, limit_minor, now_ms)?;
        let decision = self.decide(facts, out);
        let mut challenge_id = None;
        match decision.outcome {
            Outcome::Approve => {
                let expires_at_ms = now_ms + self.hold_ttl_ms;
                let transaction = self
                    .ledger
                    .execute(
                        Operation::Authorize {
                            hold_id: id.clone(),
                            credit_line_id: request.credit_line_id,
                            amount_minor,
                            expires_at_ms,
                        },
                        now_ms,
                    )
                    .map_err(|e| CoreError::InvalidRequest { field: "amount".into(), message: e.to_string() })?;
                out.transactions.push(transaction);
                payment.status = PaymentStatus::Authorized;
                payment.expires_at_ms = Some(expires_at_ms);
                payment.record(LifecycleEvent::new(LifecycleKind::Authorized, now_ms));
            }
            Outcome::StepUp => {
                let method = Engine::challenge_method(&decision).unwrap_or(ChallengeMethod::OneTimeCode);
                let f = &decision.facts;
                challenge_id = Some(self.open_challenge(
                    ChallengePurpose::Payment,
                    method,
                    Some(id.clone()),
                    &f.credit_line_id,
                    &f.user_id,
                    f.device_id.clone(),
                    now_ms,
                    out,
                )?);
                if let Some(challenge_id) = &challenge_id {
                    payment.record(LifecycleEvent::challenge(LifecycleKind::ChallengeSent, challenge_id, now_ms));
                }
                payment.status = PaymentStatus::ChallengeRequired;
            }
            Outcome::Decline => {
                payment.status = PaymentStatus::Declined;
                // Refused because the line is restricted: the way out is the restriction's
                // own lifting challenge.
                if decision.reason_codes.iter().any(|c| c == "line_restricted") {
                    challenge_id =
                        self.active_restriction(&payment.credit_line_id, now_ms).and_then(|r| r.challenge_id.clone());
                }
            }
            Outcome::Restrict => {
                let lift = self.restrict(&decision, now_ms, out)?;
                // The restriction's lifting challenge, sent with it.
                payment.record(LifecycleEvent::challenge(LifecycleKind::ChallengeSent, &lift, now_ms));
                challenge_id = Some(lift);
                payment.status = PaymentStatus::Declined;
            }
        }
        payment.decision = self.decision_view(&decision, challenge_id);
        metrics::counter!("xiezhi_payments_total", "outcome" => decision.outcome.as_str()).increment(1);
        self.put(out, RecordKind::Payment, &id, &payment, now_ms);
        Ok(Reply::Payment(PaymentView::from(&payment)))
    }

    /// The payment whose hold the ledger reports in `allowed` states. The ledger decides
    /// (an evicted hold is first rebuilt from its journal); the record is read to be updated
    /// and to name the state in a refusal, and must agree with the ledger.
    fn payment_held(&mut self, id: &str, allowed: &[HoldStatus], action: &str) -> Result<Payment, CoreError> {
        let payment = self.payment(id)?;
        if matches!(
            payment.status,
            PaymentStatus::Captured | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
        ) {
            self.restore_hold(id)?;
        }
        let hold = self.ledger.hold(id);
        crate::books::check_agrees(&payment, hold)?;
        if !hold.is_some_and(|h| allowed.contains(&h.status)) {
            return Err(CoreError::InvalidPaymentState {
                status: payment.status.as_str().into(),
                message: format!("a {} payment cannot be {action}", payment.status.as_str()),
            });
        }
        Ok(payment)
    }

    /// Posts one operation on a payment's hold and records the payment as the ledger's hold
    /// now stands.
    fn post_on_hold(
        &mut self,
        payment: Payment,
        operation: Operation,
        now_ms: i64,
        out: &mut Batch,
        change: impl FnOnce(&mut Payment),
    ) -> Result<Reply, CoreError> {
        // What the payment's lifecycle records of this operation (the refund with its amount).
        let (event, refunded_minor) = match &operation {
            Operation::Capture { .. } => (Some(LifecycleKind::Captured), 0),
            Operation::Void { .. } => (Some(LifecycleKind::Voided), 0),
            Operation::Refund { amount_minor, .. } => (Some(LifecycleKind::Refunded), *amount_minor),
            _ => (None, 0),
        };
        let transaction = self.ledger.execute(operation, now_ms).map_err(|e| ledger_error(e, payment.currency))?;
        out.transactions.push(transaction);
        let hold = self.ledger.hold(&payment.id).expect("a hold just posted to is resident").clone();
        Ok(self.save_payment(payment, now_ms, out, |p| {
            change(p);
            match event {
                Some(LifecycleKind::Captured) => {
                    p.record(LifecycleEvent::amount(LifecycleKind::Captured, hold.captured_minor, now_ms))
                }
                Some(LifecycleKind::Refunded) => p.record(LifecycleEvent {
                    full: Some(hold.refunded_minor == hold.captured_minor),
                    ..LifecycleEvent::amount(LifecycleKind::Refunded, refunded_minor, now_ms)
                }),
                Some(kind) => p.record(LifecycleEvent::new(kind, now_ms)),
                None => {}
            }
            p.captured_minor = hold.captured_minor;
            p.refunded_minor = hold.refunded_minor;
            p.status = match hold.status {
                HoldStatus::Pending => PaymentStatus::Authorized,
                HoldStatus::Voided => PaymentStatus::Voided,
                HoldStatus::Expired => PaymentStatus::Expired,
                HoldStatus::Captured if hold.refunded_minor == 0 => PaymentStatus::Captured,
                HoldStatus::Captured if hold.refunded_minor == hold.captured_minor => PaymentStatus::Refunded,
                HoldStatus::Captured => PaymentStatus::PartiallyRefunded,
            };
            assert!(
                crate::books::agrees_with_hold(p, Some(&hold)).is_ok(),
                "payment {} recorded unlike its hold",
                p.id
            );
        }))
    }

    fn capture(&mut self, id: &str, amount: Option<&str>, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        let payment = self.payment_held(id, &[HoldStatus::Pending], "captured")?;
        let amount_minor = match amount {
            Some(text) => parse_amount("amount", text, payment.currency, Sign::Positive)?,
            None => payment.amount_minor,
        };
        self.post_on_hold(payment, Operation::Capture { hold_id: id.to_owned(), amount_minor }, now_ms, out, |_| {})
    }

    fn void(&mut self, id: &str, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        let payment = self.payment_held(id, &[HoldStatus::Pending], "voided")?;
        self.post_on_hold(payment, Operation::Void { hold_id: id.to_owned() }, now_ms, out, |_| {})
    }

    fn refund(&mut self, id: &str, amount: &str, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        let payment = self.payment_held(id, &[HoldStatus::Captured], "refunded")?;
        if payment.refunds.len() >= MAX_REFUNDS_PER_PAYMENT {
            return Err(CoreError::InvalidPaymentState {
                status: payment.status.as_str().into(),
                message: format!("a payment can have at most {MAX_REFUNDS_PER_PAYMENT} refunds"),
            });
        }
        let amount_minor = parse_amount("amount", amount, payment.currency, Sign::Positive)?;
        let operation = Operation::Refund { hold_id: id.to_owned(), amount_minor };
        let (merchant_id, line_id) = (payment.merchant_id.clone(), payment.credit_line_id.clone());
        let reply = self.post_on_hold(payment, operation, now_ms, out, |p| {
            let refund_id = format!("{}_r{}", p.id, p.refunds.len() + 1);
            p.refunds.push(RefundEntry { id: refund_id, amount_minor, at_ms: now_ms });
        })?;
        // The engine hears of every refund: a shop refunding much of what it sells, or a line
        // paying again where it was just refunded, is how credit is cycled through refunds.
        let user_id = self.ledger.credit_line(&line_id).map(|l| l.user_id.clone()).unwrap_or_default();
        self.engine.state_mut().record_refund(&user_id, &merchant_id, amount_minor, now_ms);
        Ok(reply)
    }

    fn repay(&mut self, credit_line_id: &str, amount: &str, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        let line = self
            .ledger
            .credit_line(credit_line_id)
            .ok_or_else(|| CoreError::CreditLineNotFound { id: credit_line_id.to_owned() })?;
        let currency = line.currency;
        let amount_minor = parse_amount("amount", amount, currency, Sign::Positive)?;
        let transaction = self
            .ledger
            .execute(Operation::Repay { credit_line_id: credit_line_id.to_owned(), amount_minor }, now_ms)
            .map_err(|e| ledger_error(e, currency))?;
        let id = format!("rp_{}", transaction.id);
        out.transactions.push(transaction);
        Ok(Reply::Repayment(RepaymentView {
            id,
            amount: decimal(amount_minor, currency),
            credit_line: self.credit_line_view(credit_line_id)?,
            created_at: timestamp(now_ms),
        }))
    }

    fn update_payment(
        &mut self,
        id: &str,
        now_ms: i64,
        out: &mut Batch,
        change: impl FnOnce(&mut Payment),
    ) -> Result<Reply, CoreError> {
        let payment = self.payment(id)?;
        Ok(self.save_payment(payment, now_ms, out, change))
    }

    /// Records a change to a payment read earlier in this command. Cannot fail, so it is
    /// safe after the ledger has already posted the matching transaction.
    pub(crate) fn save_payment(
        &mut self,
        mut payment: Payment,
        now_ms: i64,
        out: &mut Batch,
        change: impl FnOnce(&mut Payment),
    ) -> Reply {
        change(&mut payment);
        payment.updated_at_ms = now_ms;
        self.put(out, RecordKind::Payment, &payment.id, &payment, now_ms);
        Reply::Payment(PaymentView::from(&payment))
    }
}

/// The tip or convenience fee a QR code adds to the amount (EMV tags 55–57).
fn fee(qr: &MerchantPresentedQr, request: &NewPayment, base_minor: i64, currency: Currency) -> Result<i64, CoreError> {
    let indicator = qr.tip_or_convenience_indicator.as_deref();
    // A malformed tip is a malformed amount, whatever the code prompts for.
    if let Some(text) = &request.tip {
        parse_amount("tip", text, currency, Sign::NonNegative)?;
    }
    if request.tip.is_some() && indicator != Some("01") {
        return Err(CoreError::InvalidRequest {
            field: "tip".into(),
            message: "this QR code does not prompt for a tip".into(),
        });
    }
    match indicator {
        Some("01") => match &request.tip {
            Some(text) => parse_amount("tip", text, currency, Sign::NonNegative),
            None => Ok(0),
        },
        Some("02") => match &qr.convenience_fee_fixed {
            Some(text) => parse_amount("qr_payload", text, currency, Sign::NonNegative),
            None => Ok(0),
        },
        Some("03") => match &qr.convenience_fee_percentage {
            Some(text) => {
                // Percentage with up to two decimals, as basis points; rounded half up to the
                // minor unit, in integers.
                let basis_points = parse_minor(text, Currency::from_alpha("USD").expect("USD"), Sign::NonNegative)
                    .map_err(|e| amount_error("qr_payload", e))?;
                if basis_points > 10_000 {
                    return Err(CoreError::InvalidAmount {
                        field: "qr_payload".into(),
                        message: format!("convenience fee of {text}% is over 100%"),
                    });
                }
                let fee = (i128::from(base_minor) * i128::from(basis_points) + 5_000) / 10_000;
                Ok(i64::try_from(fee).expect("fee is at most the base amount"))
            }
            None => Ok(0),
        },
        _ => Ok(0),
    }
}

/// A line an operator's accepted repair left outside the ledger's rules moves no money.
pub(crate) fn frozen(credit_line_id: &str) -> CoreError {
    let detail = LedgerError::LineFrozen(credit_line_id.to_owned()).to_string();
    CoreError::BooksDisagree { id: credit_line_id.to_owned(), detail }
}

fn ledger_error(error: LedgerError, currency: Currency) -> CoreError {
    let d = |minor: i64| decimal(minor, currency);
    match error {
        LedgerError::CaptureExceedsHold { requested_minor, held_minor } => {
            CoreError::CaptureExceedsAuthorized { requested: d(requested_minor), authorized: d(held_minor) }
        }
        LedgerError::RefundExceedsCaptured { requested_minor, refundable_minor } => {
            CoreError::RefundExceedsCaptured { requested: d(requested_minor), refundable: d(refundable_minor) }
        }
        LedgerError::RepaymentExceedsBalance { requested_minor, receivable_minor } => {
            CoreError::RepaymentExceedsBalance { requested: d(requested_minor), outstanding: d(receivable_minor) }
        }
        LedgerError::HoldExpired { expires_at_ms } => {
            CoreError::AuthorizationExpired { expires_at: timestamp(expires_at_ms) }
        }
        LedgerError::HoldNotPending { status } => CoreError::InvalidPaymentState {
            status: format!("{status:?}").to_lowercase(),
            message: "the authorization is no longer pending".into(),
        },
        LedgerError::LineFrozen(id) => frozen(&id),
        error @ LedgerError::BalanceOverflow { .. } => {
            CoreError::InvalidAmount { field: "amount".into(), message: error.to_string() }
        }
        other => CoreError::InvalidRequest { field: "amount".into(), message: other.to_string() },
    }
}

/// Builds the EMV payload for one of our merchants: template 26 with our globally unique
/// identifier and the merchant id in sub-field 01. Names and cities that are not ASCII or
/// are longer than the spec allows go, in full, into the language template 64.
pub(crate) fn merchant_qr(
    own_guid: &str,
    merchant: &Merchant,
    amount: Option<Money>,
    bill_number: Option<&str>,
) -> MerchantPresentedQr {
    let ascii = |text: &str, max: usize| -> String {
        let cleaned: String = text.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(max).collect();
        if cleaned.trim().is_empty() {
            "MERCHANT".into()
        } else {
            cleaned.trim().to_owned()
        }
    };
    let needs_language = !merchant.name.is_ascii() || merchant.name.chars().count() > 25 || !merchant.city.is_ascii();
    MerchantPresentedQr {
        payload_format_indicator: "01".into(),
        point_of_initiation: Some(if amount.is_some() {
            PointOfInitiation::Dynamic
        } else {
            PointOfInitiation::Static
        }),
        merchant_account_information: vec![AccountTemplate::template("26", own_guid, &[("01", &merchant.id)])],
        merchant_category_code: Some(merchant.mcc.clone()),
        transaction_currency: merchant.currency.numeric_str(),
        transaction_amount: amount.map(|a| a.to_decimal_string()),
        tip_or_convenience_indicator: None,
        convenience_fee_fixed: None,
        convenience_fee_percentage: None,
        country_code: Some(merchant.country.clone()),
        merchant_name: Some(ascii(&merchant.name, 25)),
        merchant_city: Some(ascii(&merchant.city, 15)),
        postal_code: None,
        additional_data: xiezhi_qr::AdditionalData {
            bill_number: bill_number.map(str::to_owned),
            ..Default::default()
        },
        merchant_information_language: needs_language.then(|| LanguageTemplate {
            language_preference: Some(if merchant.name.is_ascii() { "EN".into() } else { "ZH".into() }),
            merchant_name: Some(merchant.name.chars().take(25).collect()),
            merchant_city: Some(merchant.city.chars().take(15).collect()),
            other: Default::default(),
        }),
        reserved: Default::default(),
        unreserved_templates: vec![],
        crc: String::new(),
        warnings: vec![],
    }
}

impl State {
    /// A dynamic QR code for one payment at `merchant_id`.
    pub fn dynamic_qr(
        &self,
        merchant_id: &str,
        amount: &str,
        bill_number: Option<String>,
    ) -> Result<DynamicQrView, CoreError> {
        let merchant = self.merchant(merchant_id)?;
        let amount_minor = parse_amount("amount", amount, merchant.currency, Sign::Positive)?;
        if let Some(bill) = &bill_number {
            if bill.is_empty() || bill.chars().count() > 25 || !bill.is_ascii() {
                return Err(CoreError::InvalidRequest {
                    field: "bill_number".into(),
                    message: "`bill_number` must be 1 to 25 ASCII characters".into(),
                });
            }
        }
        let money = Money::from_minor(amount_minor, merchant.currency).map_err(|e| amount_error("amount", e))?;
        let qr_payload = merchant_qr(&self.config.own_guid, merchant, Some(money), bill_number.as_deref()).encode()?;
        Ok(DynamicQrView {
            merchant_id: merchant.id.clone(),
            amount: money.to_decimal_string(),
            currency: merchant.currency.alpha().into(),
            bill_number,
            qr_payload,
        })
    }
}
