//! Wrapping a store, for tests that inject faults into a real one: implement [`Wrapper`]
//! (where the inner store is, and the calls the fault changes); every other call passes
//! through to the inner store.

use crate::{Batch, BooksReport, Record, RecordKind, Snapshot, Store, StoreError};
use xiezhi_ledger::Transaction;

pub trait Wrapper: Send + 'static {
    fn inner(&mut self) -> &mut dyn Store;
    fn inner_ref(&self) -> &dyn Store;

    fn record(&mut self, kind: RecordKind, id: &str) -> Result<Option<Record>, StoreError> {
        self.inner().record(kind, id)
    }
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.inner().commit(batch)
    }
    fn open_committer(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        self.inner_ref().open_committer()
    }
}

impl<W: Wrapper> Store for W {
    fn for_each_journal_entry(
        &mut self,
        visit: &mut dyn FnMut(Transaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner().for_each_journal_entry(visit)
    }
    fn records(&mut self, kind: RecordKind) -> Result<Vec<Record>, StoreError> {
        self.inner().records(kind)
    }
    fn end_reads(&mut self) -> Result<(), StoreError> {
        self.inner().end_reads()
    }
    fn read_snapshot(&mut self) -> Result<Snapshot, StoreError> {
        self.inner().read_snapshot()
    }
    fn hold_journal(&mut self, hold_id: &str) -> Result<Vec<Transaction>, StoreError> {
        self.inner().hold_journal(hold_id)
    }
    fn open_committer(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        Wrapper::open_committer(self)
    }
    fn for_each_record(
        &mut self,
        kind: RecordKind,
        visit: &mut dyn FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner().for_each_record(kind, visit)
    }
    fn record(&mut self, kind: RecordKind, id: &str) -> Result<Option<Record>, StoreError> {
        Wrapper::record(self, kind, id)
    }
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        Wrapper::commit(self, batch)
    }
    fn delete_records_before(&mut self, kind: RecordKind, before_ms: i64, max: usize) -> Result<usize, StoreError> {
        self.inner().delete_records_before(kind, before_ms, max)
    }
    fn check_books(&mut self) -> Result<BooksReport, StoreError> {
        self.inner().check_books()
    }
}
