//! Records written by batches that a read of the store might not see yet.
//!
//! The writer applies batch N+1 while the committer makes batch N durable on its own store
//! handle, and the writer's reads share one read transaction per batch whose snapshot may
//! predate N's commit. So every record a batch writes is kept here, tagged with the batch's
//! sequence number (its generation), and reads look here first. An entry leaves only when
//! the store reports a snapshot whose generation includes its batch: from then on every read
//! (snapshots only move forward) finds it in the store. Nothing else, not a commit report
//! and not a timer, lets an entry go.
//!
//! Invariants, asserted: generations are sealed in order; the store never reports a
//! generation that was not sealed, nor one older than it reported before; every entry left
//! belongs to a batch above the generation reads see.

use std::collections::{HashMap, VecDeque};
use xiezhi_store::{Record, RecordKind};

struct Entry {
    generation: u64,
    body: String,
}

pub(crate) struct Overlay {
    records: HashMap<RecordKind, HashMap<String, Entry>>,
    /// What each sealed batch not yet seen in a snapshot wrote, oldest first.
    sealed: VecDeque<(u64, Vec<(RecordKind, String)>)>,
    /// The batch being built and the keys it wrote.
    open_generation: u64,
    open_keys: Vec<(RecordKind, String)>,
    /// The generation of the newest snapshot the store reported.
    visible: u64,
}

impl Overlay {
    /// An empty overlay whose first batch will be `next_generation`; everything at or below
    /// `visible` is in the store.
    pub fn new(visible: u64, next_generation: u64) -> Overlay {
        assert!(next_generation > visible, "the next batch {next_generation} is already in the store ({visible})");
        Overlay {
            records: HashMap::new(),
            sealed: VecDeque::new(),
            open_generation: next_generation,
            open_keys: Vec::new(),
            visible,
        }
    }

    /// The generation of the batch being built.
    pub fn open_generation(&self) -> u64 {
        self.open_generation
    }

    /// Records a write of the open batch.
    pub fn put(&mut self, record: &Record) {
        let by_id = self.records.entry(record.kind).or_default();
        let previous =
            by_id.insert(record.id.clone(), Entry { generation: self.open_generation, body: record.body.clone() });
        if previous.is_none_or(|p| p.generation != self.open_generation) {
            self.open_keys.push((record.kind, record.id.clone()));
        }
    }

    /// The latest body written for a record by a batch the store's snapshot may not hold.
    pub fn get(&self, kind: RecordKind, id: &str) -> Option<&str> {
        self.records.get(&kind)?.get(id).map(|e| e.body.as_str())
    }

    pub fn contains(&self, kind: RecordKind, id: &str) -> bool {
        self.get(kind, id).is_some()
    }

    /// Closes the open batch; its writes stay until a snapshot holds them. Returns its
    /// generation, which the store commits with it.
    pub fn seal(&mut self) -> u64 {
        let generation = self.open_generation;
        self.sealed.push_back((generation, std::mem::take(&mut self.open_keys)));
        self.open_generation += 1;
        generation
    }

    /// The store's read snapshot now holds every batch up to `generation`: their entries go,
    /// unless a later batch wrote the same record again.
    pub fn release_through(&mut self, generation: u64) {
        assert!(
            generation < self.open_generation,
            "the store holds generation {generation}, but only batches below {} were sealed",
            self.open_generation
        );
        assert!(generation >= self.visible, "the store's snapshot went back from {} to {generation}", self.visible);
        self.visible = generation;
        while self.sealed.front().is_some_and(|(g, _)| *g <= generation) {
            let (batch, keys) = self.sealed.pop_front().expect("checked");
            for (kind, id) in keys {
                let by_id = self.records.get_mut(&kind).expect("a written kind has a map");
                if by_id.get(&id).is_some_and(|e| e.generation == batch) {
                    by_id.remove(&id);
                }
            }
        }
        debug_assert!(self.records.values().flat_map(HashMap::values).all(|e| e.generation > generation));
    }

    /// Sealed batches not yet known to be in the store.
    pub fn sealed_batches(&self) -> usize {
        self.sealed.len()
    }

    /// How many records are held (for the metrics and the tests).
    pub fn len(&self) -> usize {
        self.records.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: RecordKind, id: &str, body: &str) -> Record {
        Record { kind, id: id.into(), body: body.into(), updated_at_ms: 0 }
    }

    #[test]
    fn entries_stay_until_a_snapshot_holds_their_batch() {
        let mut overlay = Overlay::new(0, 1);
        overlay.put(&record(RecordKind::Payment, "p1", "v1"));
        assert_eq!(overlay.seal(), 1);
        overlay.put(&record(RecordKind::Payment, "p1", "v2"));
        overlay.put(&record(RecordKind::Payment, "p2", "w1"));
        assert_eq!(overlay.seal(), 2);
        // A snapshot from before batch 1 releases nothing.
        overlay.release_through(0);
        assert_eq!(overlay.get(RecordKind::Payment, "p1"), Some("v2"));
        // Batch 1 is in the store, but batch 2 rewrote p1 since: the newer value stays.
        overlay.release_through(1);
        assert_eq!(overlay.get(RecordKind::Payment, "p1"), Some("v2"));
        assert_eq!(overlay.len(), 2);
        overlay.release_through(2);
        assert_eq!(overlay.len(), 0);
        assert!(!overlay.contains(RecordKind::Payment, "p2"));
    }

    #[test]
    fn kinds_are_separate() {
        let mut overlay = Overlay::new(4, 5);
        overlay.put(&record(RecordKind::Payment, "x", "payment"));
        overlay.put(&record(RecordKind::Decision, "x", "decision"));
        assert_eq!(overlay.get(RecordKind::Decision, "x"), Some("decision"));
        assert_eq!(overlay.seal(), 5);
        overlay.release_through(5);
        assert_eq!(overlay.get(RecordKind::Payment, "x"), None);
    }

    #[test]
    #[should_panic(expected = "only batches below")]
    fn a_generation_never_sealed_is_refused() {
        let mut overlay = Overlay::new(0, 1);
        overlay.release_through(1);
    }

    #[test]
    #[should_panic(expected = "went back")]
    fn a_snapshot_that_goes_back_is_refused() {
        let mut overlay = Overlay::new(0, 1);
        overlay.seal();
        overlay.seal();
        overlay.release_through(2);
        overlay.release_through(1);
    }
}
