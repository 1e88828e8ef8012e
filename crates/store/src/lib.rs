//! The storage boundary of Xiezhi.
//!
//! A store keeps two things: the ledger journal (balanced [`Transaction`]s in id order) and
//! JSON records keyed by kind and id (merchants, payments, idempotency keys). It knows nothing
//! of HTTP and nothing of what the records mean. Every implementation must pass the
//! [`conformance`] suite.

pub mod conformance;
pub mod wrap;

use serde::{Deserialize, Serialize};
use xiezhi_ledger::Transaction;

/// Most transactions and records one [`Store::commit`] may carry; the writer batches up to
/// this many requests into one group commit.
pub const MAX_BATCH_ITEMS: usize = 8_192;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("batch of {items} items exceeds the limit of {MAX_BATCH_ITEMS}")]
    BatchTooLarge { items: usize },
    #[error("journal entry {got} does not follow {last}")]
    JournalGap { last: u64, got: u64 },
    #[error("batch generation {got} is behind the stored generation {stored}")]
    GenerationBehind { stored: u64, got: u64 },
}

/// What the reads of one read transaction see: every batch up to `generation` and the
/// journal up to `last_journal_id`, and nothing committed after (by this handle or another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Snapshot {
    pub generation: u64,
    pub last_journal_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    Merchant,
    Payment,
    Idempotency,
    /// The risk engine's record of one payment decision, keyed by payment id.
    Decision,
    /// A step-up or identity challenge.
    Challenge,
    /// A restriction on a credit line, keyed by its id (`rs_…`); records written before
    /// restrictions had ids are keyed by their credit line id.
    Restriction,
    /// Facts about a credit line the ledger does not keep (profile, opening time).
    LineProfile,
    /// A deny or allow list entry.
    ListEntry,
    /// A message to a user's app inbox (challenge codes, restriction notices).
    Notification,
    /// Operator settings that must survive restarts (the active rule set).
    Setting,
    /// An operator's audited repair of the stored books (a journal entry accepted as
    /// recorded after replay refused it). Never deleted.
    Repair,
    /// An API key: its hash, kind, scopes and history, never the key itself.
    ApiKey,
    /// A user's appeal of a decision or a restriction, and its review.
    Appeal,
    /// What a person found a decision to be (a false positive, on an overturned appeal),
    /// keyed by payment id. Kept apart from the decision record, which stays as decided.
    DecisionLabel,
    /// Compensation owed to a user for a wrongful decision (an overturned appeal), keyed by
    /// appeal id: what the compensation fund pays from.
    Compensation,
    /// A notification waiting to be delivered, or delivered, or parked as a dead letter
    /// (the transactional outbox), keyed by message id. Written in the batch of the event it
    /// tells of; its delivery state changes only by compare-and-set through the writer.
    Outbox,
}

impl RecordKind {
    pub const ALL: [RecordKind; 15] = [
        RecordKind::Merchant,
        RecordKind::Payment,
        RecordKind::Idempotency,
        RecordKind::Decision,
        RecordKind::Challenge,
        RecordKind::Restriction,
        RecordKind::LineProfile,
        RecordKind::ListEntry,
        RecordKind::Notification,
        RecordKind::Repair,
        RecordKind::ApiKey,
        RecordKind::Appeal,
        RecordKind::DecisionLabel,
        RecordKind::Compensation,
        RecordKind::Outbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Merchant => "merchant",
            RecordKind::Payment => "payment",
            RecordKind::Idempotency => "idempotency",
            RecordKind::Decision => "decision",
            RecordKind::Challenge => "challenge",
            RecordKind::Restriction => "restriction",
            RecordKind::LineProfile => "line_profile",
            RecordKind::ListEntry => "list_entry",
            RecordKind::Notification => "notification",
            RecordKind::Setting => "setting",
            RecordKind::Repair => "repair",
            RecordKind::ApiKey => "api_key",
            RecordKind::Appeal => "appeal",
            RecordKind::DecisionLabel => "decision_label",
            RecordKind::Compensation => "compensation",
            RecordKind::Outbox => "outbox",
        }
    }
}

/// One JSON document. A later commit of the same kind and id replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub kind: RecordKind,
    pub id: String,
    /// The document as JSON text (serialised once, by its owner).
    pub body: String,
    pub updated_at_ms: i64,
}

/// What one group commit writes, atomically.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub transactions: Vec<Transaction>,
    pub records: Vec<Record>,
    /// The writer's sequence number of this batch. Stored with it, so a reader can tell from
    /// its snapshot alone which batches it contains ([`Store::read_snapshot`]). Each commit's
    /// generation is above the stored one (else `GenerationBehind`); 0, for tools that are
    /// not the writer, leaves the stored generation as it is. An empty batch stores nothing.
    pub generation: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty() && self.records.is_empty()
    }
    pub fn items(&self) -> usize {
        self.transactions.len() + self.records.len()
    }
}

/// The result of checking the stored books independently of the in-memory ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BooksReport {
    pub transactions: u64,
    pub postings: u64,
    /// Journal entries whose postings do not sum to zero in some book.
    pub unbalanced_transactions: Vec<u64>,
    /// Sum of all postings per book ("credit", "money"); zero when the books balance.
    pub book_totals: Vec<(String, i128)>,
}

impl BooksReport {
    pub fn is_balanced(&self) -> bool {
        self.unbalanced_transactions.is_empty() && self.book_totals.iter().all(|(_, total)| *total == 0)
    }
}

/// Durable storage. Implementations are used from one writer thread at a time.
///
/// What the writer's linearizability rests on (ARCHITECTURE.md, "What a read sees"), and the
/// conformance suite checks: reads on a handle share one read transaction until
/// [`Store::end_reads`] or [`Store::commit`] on that handle; within it every read sees exactly
/// the snapshot [`Store::read_snapshot`] describes; a batch another handle commits meanwhile
/// becomes visible only in a later read transaction; and a commit is atomic, its generation,
/// journal entries and records appearing together.
///
/// Only what must be resident is read at start-up (the journal and the small record kinds);
/// payments and idempotency records are read one at a time, by id, when a request needs
/// them, so the service's memory does not grow with its history.
pub trait Store: Send + 'static {
    /// Visits the journal in id order, one entry at a time (start-up replay streams through
    /// this, so the journal never has to fit in memory at once).
    fn for_each_journal_entry(
        &mut self,
        visit: &mut dyn FnMut(Transaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The whole journal, in id order, collected (for tests and small tools).
    fn journal(&mut self) -> Result<Vec<Transaction>, StoreError> {
        let mut journal = Vec::new();
        self.for_each_journal_entry(&mut |transaction| {
            journal.push(transaction);
            Ok(())
        })?;
        Ok(journal)
    }

    /// Every record of one kind (for kinds small enough to keep in memory, e.g. merchants).
    fn records(&mut self, kind: RecordKind) -> Result<Vec<Record>, StoreError>;

    /// Ends the read transaction that reads since the last commit shared, so the next read
    /// sees everything committed since (by this handle or a committer's).
    fn end_reads(&mut self) -> Result<(), StoreError>;

    /// The snapshot the reads of the current read transaction see, starting one if none is
    /// open. Every read until the next [`Store::end_reads`] or [`Store::commit`] on this
    /// handle sees exactly this snapshot: a batch committed meanwhile by another handle stays
    /// invisible until then. This is what lets the writer keep a batch's records in memory
    /// for exactly as long as a read could miss them.
    fn read_snapshot(&mut self) -> Result<Snapshot, StoreError>;

    /// The journal entries of one hold from its capture on (the capture and its refunds), in
    /// id order, as of the current read snapshot: what the ledger rebuilds an evicted captured
    /// hold from. Empty for a hold never captured.
    fn hold_journal(&mut self, hold_id: &str) -> Result<Vec<Transaction>, StoreError>;

    /// A second handle on the same store for a committer thread, when the implementation
    /// lets one connection commit while another reads (SQLite in WAL mode does). The service
    /// then applies the next batch while the previous one is being made durable. `None`
    /// (the default) means commits stay on the reading handle.
    fn open_committer(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        Ok(None)
    }

    /// Every record of one kind in id order, one at a time (for kinds too large to collect,
    /// e.g. decisions replayed into the risk engine at start-up).
    fn for_each_record(
        &mut self,
        kind: RecordKind,
        visit: &mut dyn FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut records = self.records(kind)?;
        records.sort_by(|a, b| a.id.cmp(&b.id));
        for record in records {
            visit(record)?;
        }
        Ok(())
    }

    /// One record by kind and id.
    fn record(&mut self, kind: RecordKind, id: &str) -> Result<Option<Record>, StoreError>;

    /// Writes a batch atomically; when it returns `Ok`, the batch survives a crash or power
    /// loss. Journal ids must continue the stored journal without gaps, and the batch's
    /// generation must not be behind the stored one. Ends this handle's read transaction.
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError>;

    /// Durably deletes up to `max` records of `kind` last updated before `before_ms`
    /// (retention, e.g. of idempotency keys). Returns how many were deleted.
    fn delete_records_before(&mut self, kind: RecordKind, before_ms: i64, max: usize) -> Result<usize, StoreError>;

    /// Checks that every stored transaction balances, from the stored postings alone.
    fn check_books(&mut self) -> Result<BooksReport, StoreError>;
}
