//! The embedded store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! A commit is one SQLite transaction; with WAL and FULL sync the WAL is fsynced before
//! `COMMIT` returns, so an acknowledged batch survives a crash or power loss. Throughput
//! comes from group commit upstream: the service's writer puts many requests in one batch,
//! so one fsync serves them all.
//!
//! Each journal entry is stored twice on purpose: the whole transaction as JSON (what replay
//! reads) and its postings as rows (what [`Store::check_books`] sums with SQL, independently
//! of the Rust code that wrote them).

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use xiezhi_ledger::{Operation, Transaction};
use xiezhi_store::{Batch, BooksReport, Record, RecordKind, Snapshot, Store, StoreError, MAX_BATCH_ITEMS};

const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    currency TEXT NOT NULL,
    body TEXT NOT NULL,
    hold_id TEXT
);
CREATE TABLE IF NOT EXISTS postings (
    transaction_id INTEGER NOT NULL,
    book TEXT NOT NULL CHECK (book IN ('credit', 'money')),
    account TEXT NOT NULL,
    amount_minor INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    UNIQUE (kind, id)
);
CREATE INDEX IF NOT EXISTS idempotency_age ON records (updated_at_ms) WHERE kind = 'idempotency';
";

/// Created after migrations, which add the column it indexes to older journals.
const HOLD_INDEX: &str = "CREATE INDEX IF NOT EXISTS journal_hold ON journal (hold_id) WHERE hold_id IS NOT NULL;";

pub struct SqliteStore {
    connection: Connection,
    path: std::path::PathBuf,
    /// Dropping this stops the background checkpointer.
    _checkpointer: Option<std::sync::mpsc::Sender<()>>,
    /// A transaction is open: reads made while a batch is being built share one read
    /// transaction (one lock round-trip), which `commit` then turns into the write.
    in_transaction: bool,
    /// Id of the last journal entry on disk, once known.
    last_journal_id: Option<u64>,
    /// The generation stored by the last commit, once known (a committer handle is the only
    /// one that commits, so it need not read it back each time).
    last_generation: Option<u64>,
    /// What the open read transaction sees, once asked.
    snapshot: Option<Snapshot>,
}

/// How often the background thread copies the WAL back into the database.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Checkpoints run on their own connection and thread (PASSIVE: they never block the
/// writer), so a commit never pays for copying the WAL into the database file; that copy is
/// what otherwise puts multi-millisecond stalls into the commit latency tail.
fn spawn_checkpointer(path: &Path) -> Option<std::sync::mpsc::Sender<()>> {
    let connection = Connection::open(path).ok()?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("xiezhi-checkpoint".into())
        .spawn(move || loop {
            match stopped.recv_timeout(CHECKPOINT_INTERVAL) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        eprintln!("xiezhi: WAL checkpoint failed: {error}");
                    }
                }
                _ => return,
            }
        })
        .ok()?;
    Some(stop)
}

/// Version 1 kept records in a `WITHOUT ROWID` table keyed by (kind, id). Records grew past
/// a kilobyte once every payment also stored its decision, and such rows split leaf pages
/// at every few inserts; version 2 keeps them in a rowid table (rows appended in order)
/// with a unique index on (kind, id).
fn migrate_v1_to_v2(connection: &Connection) -> Result<(), StoreError> {
    connection
        .execute_batch(
            "BEGIN IMMEDIATE;
             DROP INDEX IF EXISTS idempotency_age;
             ALTER TABLE records RENAME TO records_v1;
             CREATE TABLE records (
                 kind TEXT NOT NULL,
                 id TEXT NOT NULL,
                 body TEXT NOT NULL,
                 updated_at_ms INTEGER NOT NULL,
                 UNIQUE (kind, id)
             );
             INSERT INTO records (kind, id, body, updated_at_ms)
                 SELECT kind, id, body, updated_at_ms FROM records_v1 ORDER BY updated_at_ms;
             DROP TABLE records_v1;
             CREATE INDEX idempotency_age ON records (updated_at_ms) WHERE kind = 'idempotency';
             UPDATE meta SET value = '2' WHERE key = 'schema_version';
             COMMIT;",
        )
        .map_err(|e| StoreError::Io(format!("migrating the store from schema 1 to 2: {e}")))
}

/// Version 3 names the hold of each capture and refund in a column of its own, indexed, so
/// an evicted captured hold is rebuilt from its own entries (`Store::hold_journal`) instead
/// of from a record that might lag behind the journal. Authorizations, voids and expiries
/// are not indexed: a hold that was never captured is never needed again once settled, and
/// most journal entries are authorizations.
fn migrate_v2_to_v3(connection: &Connection) -> Result<(), StoreError> {
    let has_column: bool = connection
        .query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('journal') WHERE name = 'hold_id'", [], |row| row.get(0))
        .map_err(io)?;
    let add_column = if has_column { "" } else { "ALTER TABLE journal ADD COLUMN hold_id TEXT;" };
    connection
        .execute_batch(&format!(
            "BEGIN IMMEDIATE;
             {add_column}
             UPDATE journal SET hold_id = json_extract(body, '$.operation.hold_id')
                 WHERE json_extract(body, '$.operation.type') IN ('capture', 'refund');
             UPDATE meta SET value = '3' WHERE key = 'schema_version';
             COMMIT;"
        ))
        .map_err(|e| StoreError::Io(format!("migrating the store from schema 2 to 3: {e}")))
}

fn io(error: rusqlite::Error) -> StoreError {
    StoreError::Io(error.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir/xiezhi.sqlite3`.
    pub fn open_dir(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(format!("create {}: {e}", dir.display())))?;
        SqliteStore::open(&dir.join("xiezhi.sqlite3"))
    }

    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, true)
    }

    fn open_with(path: &Path, checkpointer: bool) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(io)?;
        // Two connections share the file when commits are pipelined; never fail on a lock
        // the other holds for a moment.
        connection.busy_timeout(std::time::Duration::from_secs(5)).map_err(io)?;
        // WAL: readers never block the writer and a commit is one sequential WAL append.
        // FULL: the WAL is fsynced at every commit, so acknowledged writes are durable.
        let mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0)).map_err(io)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Io(format!("could not enable WAL mode (got {mode})")));
        }
        // Autocheckpoint at 1,000 pages is a safety net: the background checkpointer keeps
        // the WAL short. Raising it to 8,000 let the writer copy 32 MiB in one go now and
        // then, which took the HTTP p99 at 5,000 requests/s from 7 to 19 ms (BENCHMARKS.md).
        connection
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA wal_autocheckpoint=1000;")
            .map_err(io)?;
        connection.execute_batch(SCHEMA).map_err(io)?;
        let version: Option<String> = connection
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |row| row.get(0))
            .optional()
            .map_err(io)?;
        match version {
            None => {
                connection
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                        params![SCHEMA_VERSION.to_string()],
                    )
                    .map_err(io)?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) if v == "1" => {
                migrate_v1_to_v2(&connection)?;
                migrate_v2_to_v3(&connection)?;
            }
            Some(v) if v == "2" => migrate_v2_to_v3(&connection)?,
            Some(v) => {
                return Err(StoreError::Corrupt(format!("schema version {v}, this build reads {SCHEMA_VERSION}")))
            }
        }
        connection.execute_batch(HOLD_INDEX).map_err(io)?;
        let checkpointer = if checkpointer { spawn_checkpointer(path) } else { None };
        Ok(SqliteStore {
            connection,
            path: path.to_owned(),
            _checkpointer: checkpointer,
            in_transaction: false,
            last_journal_id: None,
            last_generation: None,
            snapshot: None,
        })
    }

    fn last_journal_id(&mut self) -> Result<u64, StoreError> {
        if let Some(last) = self.last_journal_id {
            return Ok(last);
        }
        let last: Option<i64> =
            self.connection.query_row("SELECT MAX(id) FROM journal", [], |row| row.get(0)).map_err(io)?;
        let last = last.unwrap_or(0) as u64;
        self.last_journal_id = Some(last);
        Ok(last)
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if !self.in_transaction {
            self.connection.execute_batch("BEGIN").map_err(io)?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn end(&mut self, commit: bool) -> Result<(), StoreError> {
        if !self.in_transaction {
            return Ok(());
        }
        self.in_transaction = false;
        self.snapshot = None;
        if commit {
            if let Err(error) = self.connection.execute_batch("COMMIT") {
                let _ = self.connection.execute_batch("ROLLBACK");
                return Err(io(error));
            }
            Ok(())
        } else {
            self.connection.execute_batch("ROLLBACK").map_err(io)
        }
    }

    /// The generation of the newest batch in what this connection reads now.
    fn stored_generation(&self) -> Result<u64, StoreError> {
        let text: Option<String> = self
            .connection
            .prepare_cached("SELECT value FROM meta WHERE key = 'generation'")
            .map_err(io)?
            .query_row([], |row| row.get(0))
            .optional()
            .map_err(io)?;
        match text {
            None => Ok(0),
            Some(text) => text.parse().map_err(|_| StoreError::Corrupt(format!("stored generation `{text}`"))),
        }
    }

    /// `stored` is the generation already stored, as this handle last knew it.
    fn write_batch(&mut self, batch: &Batch, stored: u64) -> Result<(), StoreError> {
        if batch.generation != 0 && batch.generation <= stored {
            return Err(StoreError::GenerationBehind { stored, got: batch.generation });
        }
        let mut last = self.last_journal_id()?;
        let tx = &self.connection;
        if batch.generation > stored {
            tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES ('generation', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value
                 WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
            )
            .map_err(io)?
            .execute(params![batch.generation.to_string()])
            .map_err(io)?;
        }
        let mut journal = tx
            .prepare_cached("INSERT INTO journal (id, at_ms, currency, body, hold_id) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(io)?;
        let mut postings = tx
            .prepare_cached(
                "INSERT INTO postings (transaction_id, book, account, amount_minor) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(io)?;
        for transaction in &batch.transactions {
            if transaction.id != last + 1 {
                return Err(StoreError::JournalGap { last, got: transaction.id });
            }
            last = transaction.id;
            let body = serde_json::to_string(transaction).map_err(|e| StoreError::Io(e.to_string()))?;
            let hold_id = match &transaction.operation {
                Operation::Capture { hold_id, .. } | Operation::Refund { hold_id, .. } => Some(hold_id.as_str()),
                _ => None,
            };
            journal
                .execute(params![transaction.id as i64, transaction.at_ms, transaction.currency.alpha(), body, hold_id])
                .map_err(io)?;
            for posting in &transaction.postings {
                let book = match posting.account.book() {
                    xiezhi_ledger::Book::Credit => "credit",
                    xiezhi_ledger::Book::Money => "money",
                };
                postings
                    .execute(params![transaction.id as i64, book, posting.account.name(), posting.amount_minor])
                    .map_err(io)?;
            }
        }
        let mut records = tx
            .prepare_cached(
                "INSERT INTO records (kind, id, body, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, updated_at_ms = excluded.updated_at_ms",
            )
            .map_err(io)?;
        for record in &batch.records {
            records.execute(params![record.kind.as_str(), record.id, record.body, record.updated_at_ms]).map_err(io)?;
        }
        Ok(())
    }
}

/// The retention delete. For idempotency records the age index is named explicitly: left to
/// itself, SQLite's planner prefers the primary-key prefix `kind = ?` and scans every key
/// (with 400k keys that scan, twice a second, took the HTTP p99 from 7 ms to 150 ms).
fn delete_before_sql(kind: RecordKind) -> String {
    let name = kind.as_str();
    let index = match kind {
        RecordKind::Idempotency => "INDEXED BY idempotency_age",
        _ => "",
    };
    format!(
        "DELETE FROM records WHERE kind = '{name}' AND id IN
           (SELECT id FROM records {index} WHERE kind = '{name}' AND updated_at_ms < ?1 LIMIT ?2)"
    )
}

/// Decodes one stored journal row, checking that the row's id is the transaction's.
fn journal_entry(id: i64, body: &str) -> Result<Transaction, StoreError> {
    let transaction: Transaction =
        serde_json::from_str(body).map_err(|e| StoreError::Corrupt(format!("journal entry {id}: {e}")))?;
    if transaction.id != id as u64 {
        return Err(StoreError::Corrupt(format!("journal row {id} holds transaction {}", transaction.id)));
    }
    Ok(transaction)
}

impl Store for SqliteStore {
    fn end_reads(&mut self) -> Result<(), StoreError> {
        self.end(true)
    }

    fn read_snapshot(&mut self) -> Result<Snapshot, StoreError> {
        if let Some(snapshot) = self.snapshot.filter(|_| self.in_transaction) {
            return Ok(snapshot);
        }
        // In WAL mode a read transaction sees the database as of its first read and keeps
        // that view until it ends; asked within the transaction, these two figures describe
        // exactly what every other read of it sees.
        self.begin()?;
        let generation = self.stored_generation()?;
        let last: Option<i64> = self
            .connection
            .prepare_cached("SELECT MAX(id) FROM journal")
            .map_err(io)?
            .query_row([], |row| row.get(0))
            .map_err(io)?;
        let snapshot = Snapshot { generation, last_journal_id: last.unwrap_or(0) as u64 };
        self.snapshot = Some(snapshot);
        Ok(snapshot)
    }

    fn hold_journal(&mut self, hold_id: &str) -> Result<Vec<Transaction>, StoreError> {
        self.begin()?;
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, body FROM journal WHERE hold_id = ?1 ORDER BY id")
            .map_err(io)?;
        let mut rows = statement.query(params![hold_id]).map_err(io)?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next().map_err(io)? {
            let id: i64 = row.get(0).map_err(io)?;
            let body = row.get_ref(1).map_err(io)?.as_str().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            entries.push(journal_entry(id, body)?);
        }
        Ok(entries)
    }

    fn open_committer(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        // WAL mode: this connection commits while the first one reads its own snapshots.
        Ok(Some(Box::new(SqliteStore::open_with(&self.path, false)?)))
    }

    fn for_each_journal_entry(
        &mut self,
        visit: &mut dyn FnMut(Transaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut statement = self.connection.prepare("SELECT id, body FROM journal ORDER BY id").map_err(io)?;
        let mut rows = statement.query([]).map_err(io)?;
        while let Some(row) = rows.next().map_err(io)? {
            let id: i64 = row.get(0).map_err(io)?;
            let body = row
                .get_ref(1)
                .map_err(io)?
                .as_str()
                .map_err(|e| StoreError::Corrupt(format!("journal entry {id}: {e}")))?;
            visit(journal_entry(id, body)?)?;
        }
        Ok(())
    }

    fn records(&mut self, kind: RecordKind) -> Result<Vec<Record>, StoreError> {
        self.begin()?;
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, body, updated_at_ms FROM records WHERE kind = ?1")
            .map_err(io)?;
        let rows = statement
            .query_map(params![kind.as_str()], |row| {
                Ok(Record { kind, id: row.get(0)?, body: row.get(1)?, updated_at_ms: row.get(2)? })
            })
            .map_err(io)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(io)
    }

    fn for_each_record(
        &mut self,
        kind: RecordKind,
        visit: &mut dyn FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.begin()?;
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, body, updated_at_ms FROM records WHERE kind = ?1 ORDER BY id")
            .map_err(io)?;
        let mut rows = statement.query(params![kind.as_str()]).map_err(io)?;
        while let Some(row) = rows.next().map_err(io)? {
            visit(Record {
                kind,
                id: row.get(0).map_err(io)?,
                body: row.get(1).map_err(io)?,
                updated_at_ms: row.get(2).map_err(io)?,
            })?;
        }
        Ok(())
    }

    fn record(&mut self, kind: RecordKind, id: &str) -> Result<Option<Record>, StoreError> {
        self.begin()?;
        let mut statement = self
            .connection
            .prepare_cached("SELECT body, updated_at_ms FROM records WHERE kind = ?1 AND id = ?2")
            .map_err(io)?;
        statement
            .query_row(params![kind.as_str(), id], |row| {
                Ok(Record { kind, id: id.to_owned(), body: row.get(0)?, updated_at_ms: row.get(1)? })
            })
            .optional()
            .map_err(io)
    }

    fn delete_records_before(&mut self, kind: RecordKind, before_ms: i64, max: usize) -> Result<usize, StoreError> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.begin()?;
        let deleted = self.connection.execute(&delete_before_sql(kind), params![before_ms, max]);
        match deleted {
            Ok(deleted) => {
                self.end(true)?;
                Ok(deleted)
            }
            Err(error) => {
                let _ = self.end(false);
                Err(io(error))
            }
        }
    }

    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if batch.items() > MAX_BATCH_ITEMS {
            return Err(StoreError::BatchTooLarge { items: batch.items() });
        }
        if batch.is_empty() {
            return self.end(true);
        }
        self.begin()?;
        let written = self
            .last_generation
            .map_or_else(|| self.stored_generation(), Ok)
            .and_then(|stored| self.write_batch(batch, stored).map(|()| stored))
            .and_then(|stored| self.end(true).map(|()| stored));
        match written {
            Ok(stored) => {
                self.last_journal_id = batch.transactions.last().map(|t| t.id).or(self.last_journal_id);
                self.last_generation = Some(stored.max(batch.generation));
                Ok(())
            }
            Err(error) => {
                let _ = self.end(false);
                self.last_journal_id = None;
                self.last_generation = None;
                Err(error)
            }
        }
    }

    fn check_books(&mut self) -> Result<BooksReport, StoreError> {
        let transactions: i64 =
            self.connection.query_row("SELECT COUNT(*) FROM journal", [], |row| row.get(0)).map_err(io)?;
        let postings: i64 =
            self.connection.query_row("SELECT COUNT(*) FROM postings", [], |row| row.get(0)).map_err(io)?;
        let mut statement = self
            .connection
            .prepare(
                "SELECT transaction_id FROM postings GROUP BY transaction_id, book HAVING SUM(amount_minor) != 0
                 UNION
                 SELECT id FROM journal WHERE id NOT IN (SELECT transaction_id FROM postings)
                 ORDER BY 1 LIMIT 1000",
            )
            .map_err(io)?;
        let unbalanced_transactions = statement
            .query_map([], |row| row.get::<_, i64>(0))
            .map_err(io)?
            .map(|r| r.map(|id| id as u64))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        let mut statement = self
            .connection
            .prepare("SELECT book, SUM(amount_minor) FROM postings GROUP BY book ORDER BY book")
            .map_err(io)?;
        let book_totals = statement
            .query_map([], |row| Ok((row.get::<_, String>(0)?, i128::from(row.get::<_, i64>(1)?))))
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        Ok(BooksReport {
            transactions: transactions as u64,
            postings: postings as u64,
            unbalanced_transactions,
            book_totals,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger with line `cl` (500 CNY) and the transaction that opened it.
    fn a_line() -> (xiezhi_ledger::Ledger, Transaction) {
        let mut ledger = xiezhi_ledger::Ledger::new();
        let currency = xiezhi_money::Currency::from_code("CNY").unwrap();
        let open = Operation::OpenLine { credit_line_id: "cl".into(), user_id: "u".into(), currency, limit_minor: 500 };
        let transaction = ledger.execute(open, 0).unwrap();
        (ledger, transaction)
    }

    #[test]
    fn passes_the_store_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conformance.sqlite3");
        xiezhi_store::conformance::run(|| SqliteStore::open(&path).unwrap());
    }

    #[test]
    fn check_books_catches_a_tampered_posting() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open_dir(dir.path()).unwrap();
        let (_, open) = a_line();
        store.commit(&Batch { transactions: vec![open], records: vec![], generation: 0 }).unwrap();
        assert!(store.check_books().unwrap().is_balanced());
        store.connection.execute("UPDATE postings SET amount_minor = amount_minor + 1 WHERE rowid = 1", []).unwrap();
        let report = store.check_books().unwrap();
        assert_eq!(report.unbalanced_transactions, vec![1]);
        assert!(!report.is_balanced());
    }

    #[test]
    fn idempotency_retention_uses_the_age_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let plan: Vec<String> = store
            .connection
            .prepare(&format!("EXPLAIN QUERY PLAN {}", delete_before_sql(RecordKind::Idempotency)))
            .unwrap()
            .query_map(params![0, 10], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(plan.iter().any(|step| step.contains("idempotency_age")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.starts_with("SCAN")), "{plan:?}");
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        store.connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'", []).unwrap();
        drop(store);
        assert!(matches!(SqliteStore::open_dir(dir.path()), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn migrates_a_schema_1_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xiezhi.sqlite3");
        {
            // A store as schema 1 left it: records WITHOUT ROWID keyed by (kind, id).
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                 INSERT INTO meta VALUES ('schema_version', '1');
                 CREATE TABLE records (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                     updated_at_ms INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;
                 CREATE INDEX idempotency_age ON records (updated_at_ms) WHERE kind = 'idempotency';
                 INSERT INTO records VALUES ('payment', 'p1', '{\"v\":1}', 5), ('idempotency', 'k1', '{\"v\":2}', 6);",
            )
            .unwrap();
        }
        let mut store = SqliteStore::open(&path).unwrap();
        let version: String = store
            .connection
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION.to_string());
        assert_eq!(store.record(RecordKind::Payment, "p1").unwrap().unwrap().body, r#"{"v":1}"#);
        assert_eq!(store.record(RecordKind::Idempotency, "k1").unwrap().unwrap().updated_at_ms, 6);
        let sql: String = store
            .connection
            .query_row("SELECT sql FROM sqlite_master WHERE name = 'records'", [], |r| r.get(0))
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        // The retention delete still finds the age index.
        assert_eq!(store.delete_records_before(RecordKind::Idempotency, 10, 100).unwrap(), 1);
        // And a second open is a no-op.
        drop(store);
        SqliteStore::open(&path).unwrap();
    }

    #[test]
    fn migrates_a_schema_2_journal_to_name_its_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xiezhi.sqlite3");
        let (mut ledger, open) = a_line();
        let hold = ledger
            .execute(
                xiezhi_ledger::Operation::Authorize {
                    hold_id: "pay_1".into(),
                    credit_line_id: "cl".into(),
                    amount_minor: 100,
                    expires_at_ms: 1_000,
                },
                0,
            )
            .unwrap();
        let capture =
            ledger.execute(xiezhi_ledger::Operation::Capture { hold_id: "pay_1".into(), amount_minor: 60 }, 1).unwrap();
        {
            // A store as schema 2 left it: no hold column in the journal.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                 INSERT INTO meta VALUES ('schema_version', '2');
                 CREATE TABLE journal (id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, currency TEXT NOT NULL,
                     body TEXT NOT NULL);",
            )
            .unwrap();
            for t in [&open, &hold, &capture] {
                c.execute(
                    "INSERT INTO journal (id, at_ms, currency, body) VALUES (?1, 0, 'CNY', ?2)",
                    params![t.id as i64, serde_json::to_string(t).unwrap()],
                )
                .unwrap();
            }
        }
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.hold_journal("pay_1").unwrap(), vec![capture], "the capture, not the authorization {hold:?}");
        assert!(store.hold_journal("cl").unwrap().is_empty());
        assert_eq!(store.read_snapshot().unwrap(), Snapshot { generation: 0, last_journal_id: 3 });
    }
}
