//! The conformance suite every [`Store`] implementation runs in its own tests:
//! `xiezhi_store::conformance::run(|| open_the_same_store())`. `open` must open the same
//! underlying storage each time it is called, so reopening is part of what is tested.

use crate::{Batch, Record, RecordKind, Snapshot, Store, StoreError};
use serde_json::json;
use xiezhi_ledger::{Ledger, Operation, Transaction};
use xiezhi_money::Currency;

/// Runs every check against a fresh, empty store. Panics with the name of the failing check.
pub fn run<S: Store, F: FnMut() -> S>(mut open: F) {
    empty_store_holds_nothing(&mut open);
    commit_survives_reopen(&mut open);
    records_are_replaced_by_id(&mut open);
    records_stream_in_id_order(&mut open);
    journal_gaps_are_refused_atomically(&mut open);
    oversized_batches_are_refused(&mut open);
    old_records_are_deleted_by_age(&mut open);
    books_are_checked_from_postings(&mut open);
    a_read_snapshot_does_not_see_a_second_handles_commit(&mut open);
    generations_only_go_forward(&mut open);
    every_kind_is_its_own_key_space(&mut open);
    outbox_rows_live_and_die_with_their_event(&mut open);
}

fn sample_journal(from_ledger: &mut Ledger, first_line: usize, count: usize) -> Vec<Transaction> {
    let cny = Currency::from_code("CNY").expect("CNY");
    let mut out = Vec::new();
    for i in first_line..first_line + count {
        let line = format!("cl_conf_{i}");
        out.push(
            from_ledger
                .execute(
                    Operation::OpenLine {
                        credit_line_id: line.clone(),
                        user_id: format!("u{i}"),
                        currency: cny,
                        limit_minor: 10_000,
                    },
                    1,
                )
                .expect("open"),
        );
        out.push(
            from_ledger
                .execute(
                    Operation::Authorize {
                        hold_id: format!("h_conf_{i}"),
                        credit_line_id: line,
                        amount_minor: 1_234,
                        expires_at_ms: 1_000_000,
                    },
                    2,
                )
                .expect("authorize"),
        );
        out.push(
            from_ledger
                .execute(Operation::Capture { hold_id: format!("h_conf_{i}"), amount_minor: 1_000 }, 3)
                .expect("capture"),
        );
    }
    out
}

fn record(kind: RecordKind, id: &str, value: i64) -> Record {
    Record { kind, id: id.to_owned(), body: json!({ "id": id, "value": value }).to_string(), updated_at_ms: value }
}

fn value_of(record: &Record) -> i64 {
    let body: serde_json::Value =
        serde_json::from_str(&record.body).expect("record bodies are the JSON that was written");
    body["value"].as_i64().expect("value")
}

fn empty_store_holds_nothing<S: Store>(open: &mut impl FnMut() -> S) {
    let mut store = open();
    assert!(store.journal().expect("journal").is_empty(), "empty_store_holds_nothing: journal");
    for kind in RecordKind::ALL {
        assert!(store.records(kind).expect("records").is_empty(), "empty_store_holds_nothing: records");
    }
    assert!(store.record(RecordKind::Payment, "p1").expect("record").is_none(), "empty_store_holds_nothing: record");
}

fn commit_survives_reopen<S: Store>(open: &mut impl FnMut() -> S) {
    let mut ledger = Ledger::new();
    let journal = sample_journal(&mut ledger, 0, 3);
    {
        let mut store = open();
        store
            .commit(&Batch {
                transactions: journal.clone(),
                records: vec![record(RecordKind::Merchant, "m1", 1), record(RecordKind::Payment, "p1", 2)],
                generation: 0,
            })
            .expect("commit");
    }
    let mut store = open();
    let stored = store.journal().expect("journal");
    assert_eq!(stored, journal, "commit_survives_reopen: journal differs");
    let mut replayed = Ledger::new();
    for transaction in &stored {
        replayed.replay(transaction).expect("commit_survives_reopen: replay");
    }
    assert_eq!(replayed, ledger, "commit_survives_reopen: replayed ledger differs");
    assert_eq!(store.records(RecordKind::Merchant).expect("records").len(), 1, "commit_survives_reopen: merchants");
    let payment =
        store.record(RecordKind::Payment, "p1").expect("record").expect("commit_survives_reopen: payment p1 missing");
    assert_eq!(value_of(&payment), 2);
    assert!(
        store.record(RecordKind::Merchant, "p1").expect("record").is_none(),
        "commit_survives_reopen: kinds are separate key spaces"
    );
}

fn records_are_replaced_by_id<S: Store>(open: &mut impl FnMut() -> S) {
    let mut store = open();
    store
        .commit(&Batch {
            transactions: vec![],
            records: vec![record(RecordKind::Payment, "p1", 5), record(RecordKind::Idempotency, "p1", 6)],
            generation: 0,
        })
        .expect("commit");
    let mut store = open();
    let payment = store.record(RecordKind::Payment, "p1").expect("record").expect("payment p1");
    assert_eq!(value_of(&payment), 5, "records_are_replaced_by_id: not replaced");
    assert_eq!(store.records(RecordKind::Payment).expect("records").len(), 1, "records_are_replaced_by_id: duplicated");
    let key = store.record(RecordKind::Idempotency, "p1").expect("record").expect("idempotency p1");
    assert_eq!(value_of(&key), 6, "records_are_replaced_by_id: kinds must be separate key spaces");
}

/// Every kind a writer stores (the setting included, which `ALL` leaves out), written once
/// under the same id in one batch, survives a reopen as its own record: a kind added to the
/// enum that an implementation maps onto another's rows, or drops, fails here.
fn every_kind_is_its_own_key_space<S: Store>(open: &mut impl FnMut() -> S) {
    let name = "every_kind_is_its_own_key_space";
    let kinds: Vec<RecordKind> = RecordKind::ALL.iter().copied().chain([RecordKind::Setting]).collect();
    let records = kinds.iter().enumerate().map(|(i, kind)| record(*kind, "same_id", 100 + i as i64)).collect();
    open().commit(&Batch { transactions: vec![], records, generation: 0 }).expect("commit");
    let mut store = open();
    for (i, kind) in kinds.iter().enumerate() {
        let stored = store.record(*kind, "same_id").expect("record");
        let stored = stored.unwrap_or_else(|| panic!("{name}: {} missing after reopen", kind.as_str()));
        assert_eq!(value_of(&stored), 100 + i as i64, "{name}: {} holds another kind's record", kind.as_str());
        let listed = store.records(*kind).expect("records");
        assert!(listed.iter().any(|r| r.id == "same_id" && r.kind == *kind), "{name}: {} not listed", kind.as_str());
    }
    store.end_reads().expect("end reads");
}

fn records_stream_in_id_order<S: Store>(open: &mut impl FnMut() -> S) {
    let mut store = open();
    let ids = ["d_0003", "d_0001", "d_0002"];
    let records = ids.iter().enumerate().map(|(i, id)| record(RecordKind::Decision, id, i as i64)).collect();
    store.commit(&Batch { transactions: vec![], records, generation: 0 }).expect("commit");
    let mut store = open();
    let mut seen = vec![];
    store
        .for_each_record(RecordKind::Decision, &mut |r| {
            seen.push(r.id);
            Ok(())
        })
        .expect("for_each_record");
    assert_eq!(seen, ["d_0001", "d_0002", "d_0003"], "records_stream_in_id_order");
    let mut calls = 0;
    let stopped = store.for_each_record(RecordKind::Decision, &mut |_| {
        calls += 1;
        Err(StoreError::Corrupt("stop".into()))
    });
    assert!(stopped.is_err() && calls == 1, "records_stream_in_id_order: a visitor's error stops the walk");
}

fn journal_gaps_are_refused_atomically<S: Store>(open: &mut impl FnMut() -> S) {
    let mut store = open();
    let before = store.journal().expect("journal");
    let mut ledger = Ledger::new();
    for transaction in &before {
        ledger.replay(transaction).expect("replay");
    }
    let mut next = sample_journal(&mut ledger, 100, 1);
    next[0].id += 10; // leaves a gap
    let result = store.commit(&Batch {
        transactions: next,
        records: vec![record(RecordKind::Merchant, "gap", 9)],
        generation: 0,
    });
    assert!(matches!(result, Err(StoreError::JournalGap { .. })), "journal_gaps_are_refused_atomically: {result:?}");
    let mut store = open();
    assert_eq!(
        store.journal().expect("journal").len(),
        before.len(),
        "journal_gaps_are_refused_atomically: journal changed"
    );
    assert!(
        store.record(RecordKind::Merchant, "gap").expect("record").is_none(),
        "journal_gaps_are_refused_atomically: record from a failed batch is visible"
    );
}

fn oversized_batches_are_refused<S: Store>(open: &mut impl FnMut() -> S) {
    let records = (0..=crate::MAX_BATCH_ITEMS).map(|i| record(RecordKind::Payment, &format!("big{i}"), 0)).collect();
    let result = open().commit(&Batch { transactions: vec![], records, generation: 0 });
    assert!(matches!(result, Err(StoreError::BatchTooLarge { .. })), "oversized_batches_are_refused: {result:?}");
}

fn old_records_are_deleted_by_age<S: Store>(open: &mut impl FnMut() -> S) {
    let mut store = open();
    let records = (0..10).map(|i| record(RecordKind::Idempotency, &format!("age{i}"), 1_000 + i)).collect();
    store.commit(&Batch { transactions: vec![], records, generation: 0 }).expect("commit");
    let deleted = store.delete_records_before(RecordKind::Idempotency, 1_005, 3).expect("delete");
    assert_eq!(deleted, 3, "old_records_are_deleted_by_age: the limit applies");
    let deleted = store.delete_records_before(RecordKind::Idempotency, 1_005, 100).expect("delete");
    assert_eq!(deleted, 3, "old_records_are_deleted_by_age: p1 (6) and age0..age4 are older than 1005");
    let mut store = open();
    assert!(
        store.record(RecordKind::Idempotency, "age4").expect("record").is_none(),
        "old_records_are_deleted_by_age: age4 survived"
    );
    assert!(
        store.record(RecordKind::Idempotency, "age5").expect("record").is_some(),
        "old_records_are_deleted_by_age: age5 deleted"
    );
    assert!(
        store.record(RecordKind::Payment, "p1").expect("record").is_some(),
        "old_records_are_deleted_by_age: other kinds untouched"
    );
}

fn books_are_checked_from_postings<S: Store>(open: &mut impl FnMut() -> S) {
    let report = open().check_books().expect("check_books");
    assert!(report.is_balanced(), "books_are_checked_from_postings: {report:?}");
    assert_eq!(report.transactions, 9, "books_are_checked_from_postings: transaction count");
    assert!(report.postings >= 9 * 2);
}

fn ledger_of(store: &mut impl Store) -> Ledger {
    let mut ledger = Ledger::new();
    for transaction in store.journal().expect("journal") {
        ledger.replay(&transaction).expect("replay");
    }
    ledger
}

/// The writer reads through one handle while a committer commits through another: a read
/// transaction keeps seeing the store as it was when it began (the records, the journal and
/// the generation alike) until it ends, and the next one sees the commit.
fn a_read_snapshot_does_not_see_a_second_handles_commit<S: Store>(open: &mut impl FnMut() -> S) {
    let name = "a_read_snapshot_does_not_see_a_second_handles_commit";
    let mut reader = open();
    let mut committer = open();
    let before = reader.read_snapshot().expect("snapshot");
    assert_eq!(before.last_journal_id, ledger_of(&mut reader).last_transaction_id(), "{name}: last journal id");
    assert!(reader.record(RecordKind::Payment, "snap").expect("record").is_none(), "{name}: absent at first");
    let mut ledger = ledger_of(&mut committer);
    let transactions = sample_journal(&mut ledger, 200, 1);
    let batch = Batch { transactions, records: vec![record(RecordKind::Payment, "snap", 1)], generation: 7 };
    committer.commit(&batch).expect("commit");
    assert!(reader.record(RecordKind::Payment, "snap").expect("record").is_none(), "{name}: seen mid-snapshot");
    assert!(reader.hold_journal("h_conf_200").expect("hold journal").is_empty(), "{name}: journal mid-snapshot");
    assert_eq!(reader.read_snapshot().expect("snapshot"), before, "{name}: the snapshot moved");
    reader.end_reads().expect("end reads");
    let after = reader.read_snapshot().expect("snapshot");
    assert_eq!(
        after,
        Snapshot { generation: 7, last_journal_id: before.last_journal_id + 3 },
        "{name}: the next snapshot"
    );
    assert!(reader.record(RecordKind::Payment, "snap").expect("record").is_some(), "{name}: not seen after");
    let hold = reader.hold_journal("h_conf_200").expect("hold journal");
    assert_eq!(hold, batch.transactions[2..].to_vec(), "{name}: a hold's journal from its capture on");
    reader.end_reads().expect("end reads");
}

fn generations_only_go_forward<S: Store>(open: &mut impl FnMut() -> S) {
    let name = "generations_only_go_forward";
    let mut store = open();
    let stored = store.read_snapshot().expect("snapshot").generation;
    assert!(stored > 0, "{name}: an earlier check committed generation 7");
    let behind =
        Batch { transactions: vec![], records: vec![record(RecordKind::Payment, "behind", 1)], generation: stored };
    let result = store.commit(&behind);
    assert!(matches!(result, Err(StoreError::GenerationBehind { .. })), "{name}: {result:?}");
    assert!(store.record(RecordKind::Payment, "behind").expect("record").is_none(), "{name}: a refused batch wrote");
    // Tools that are not the writer commit with generation 0, which leaves it alone.
    let tool = Batch { transactions: vec![], records: vec![record(RecordKind::Payment, "tool", 1)], generation: 0 };
    store.commit(&tool).expect("commit");
    assert_eq!(store.read_snapshot().expect("snapshot").generation, stored, "{name}: generation 0 moved it");
    let next =
        Batch { transactions: vec![], records: vec![record(RecordKind::Payment, "next", 1)], generation: stored + 1 };
    store.commit(&next).expect("commit");
    drop(store);
    let mut store = open();
    assert_eq!(store.read_snapshot().expect("snapshot").generation, stored + 1, "{name}: after reopening");
    store.end_reads().expect("end reads");
}

/// The transactional outbox rests on this: an outbox row is committed in the same batch as
/// the event it tells of, so both are durable or neither is (a refused batch leaves no
/// message for an event that never happened), and a later state of the row replaces it.
fn outbox_rows_live_and_die_with_their_event<S: Store>(open: &mut impl FnMut() -> S) {
    let name = "outbox_rows_live_and_die_with_their_event";
    let mut store = open();
    let before = store.journal().expect("journal");
    let mut ledger = Ledger::new();
    for transaction in &before {
        ledger.replay(transaction).expect("replay");
    }
    let mut gap = sample_journal(&mut ledger, 300, 1);
    gap[0].id += 10;
    let refused = Batch {
        transactions: gap,
        records: vec![record(RecordKind::Appeal, "ap_out", 1), record(RecordKind::Outbox, "msg_refused", 1)],
        generation: 0,
    };
    assert!(store.commit(&refused).is_err(), "{name}: a batch with a journal gap was accepted");
    let event = Batch {
        transactions: vec![],
        records: vec![record(RecordKind::Appeal, "ap_out", 2), record(RecordKind::Outbox, "msg_out", 2)],
        generation: 0,
    };
    store.commit(&event).expect("commit");
    let delivered =
        Batch { transactions: vec![], records: vec![record(RecordKind::Outbox, "msg_out", 3)], generation: 0 };
    store.commit(&delivered).expect("commit");
    let mut store = open();
    assert!(store.record(RecordKind::Outbox, "msg_refused").expect("record").is_none(), "{name}: refused row kept");
    let rows = store.records(RecordKind::Outbox).expect("records");
    let row = rows.iter().find(|r| r.id == "msg_out").unwrap_or_else(|| panic!("{name}: the row is missing"));
    assert_eq!(value_of(row), 3, "{name}: the later state did not replace the row");
    assert_eq!(rows.iter().filter(|r| r.id == "msg_out").count(), 1, "{name}: the row is listed twice");
    let appeal = store.record(RecordKind::Appeal, "ap_out").expect("record");
    assert_eq!(appeal.as_ref().map(value_of), Some(2), "{name}: the event is missing");
    store.end_reads().expect("end reads");
}
