//! A batch never carries more than one store commit may. Requests pile up in the open batch
//! while the committer is busy; each restriction with an idempotency key writes seven items,
//! so 1,200 of them are more than the 8,192 one commit takes. Before batches were sized by items, that commit
//! failed and the writer rebuilt its whole state from the store.

mod common;

use common::*;
use std::sync::{Arc, Condvar, Mutex};
use xiezhi_core::xiezhi_risk::{ListKind, NewListEntry, SubjectKind};
use xiezhi_core::*;
use xiezhi_store::wrap::Wrapper;
use xiezhi_store::{Batch, Store, StoreError};
use xiezhi_store_sqlite::SqliteStore;

/// A store whose committer waits while the gate is shut.
struct GatedStore {
    inner: Box<dyn Store>,
    /// Open (true) or shut.
    gate: Arc<(Mutex<bool>, Condvar)>,
    committer: bool,
}

impl GatedStore {
    fn set(gate: &(Mutex<bool>, Condvar), open: bool) {
        *gate.0.lock().unwrap() = open;
        gate.1.notify_all();
    }
}

impl Wrapper for GatedStore {
    fn inner(&mut self) -> &mut dyn Store {
        self.inner.as_mut()
    }
    fn inner_ref(&self) -> &dyn Store {
        self.inner.as_ref()
    }
    fn open_committer(&self) -> Result<Option<Box<dyn Store>>, StoreError> {
        let inner = self.inner.open_committer()?.expect("SQLite offers a committer");
        Ok(Some(Box::new(GatedStore { inner, gate: Arc::clone(&self.gate), committer: true })))
    }
    fn commit(&mut self, batch: &Batch) -> Result<(), StoreError> {
        if self.committer {
            let (open, changed) = &*self.gate;
            let _open = changed.wait_while(open.lock().unwrap(), |open| !*open).unwrap();
        }
        self.inner.commit(batch)
    }
}

fn deny(user: &str) -> Command {
    Command::AddListEntry(NewListEntry {
        list: ListKind::Deny,
        subject_kind: SubjectKind::User,
        subject: user.into(),
        reason: "test".into(),
        author: "analyst".into(),
        expires_at: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restrictions_piling_up_behind_a_slow_commit_split_into_batches_that_fit() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new((Mutex::new(true), Condvar::new()));
    let store = GatedStore {
        inner: Box::new(SqliteStore::open_dir(dir.path()).unwrap()),
        gate: gate.clone(),
        committer: false,
    };
    let clock = Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(START_MS)));
    let config = ServiceConfig { max_batch: 2_048, ..Default::default() };
    let service = Service::start(Box::new(store), config, clock).unwrap();
    let (shop, users) = tokio::task::block_in_place(|| {
        let shop = merchant(&service, "Lotus Market");
        let users: Vec<(String, String)> = (0..1_200)
            .map(|i| {
                let user = format!("mule-{i}");
                run(&service, deny(&user)).unwrap();
                (line_for(&service, &user, "1000.00").id, user)
            })
            .collect();
        (shop, users)
    });
    // The committer stalls on the next batch; everything sent meanwhile piles up.
    GatedStore::set(&gate, false);
    let stalled = tokio::spawn({
        let service = service.clone();
        let line = NewCreditLine {
            user_id: "stall".into(),
            currency: "CNY".into(),
            limit: "1.00".into(),
            profile: Default::default(),
            opened_at: None,
            wallet_id: None,
            contact: None,
        };
        async move { service.execute(Command::CreateCreditLine(line), None).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let payments: Vec<_> = users
        .iter()
        .map(|(line_id, _)| {
            let command = service.prepare_payment(payment_request(line_id, &shop.qr_payload, Some("10.00"))).unwrap();
            let service = service.clone();
            let key = key(&format!("pay-{line_id}"));
            tokio::spawn(async move { service.execute(command, key).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    GatedStore::set(&gate, true);
    stalled.await.unwrap().unwrap();
    for payment in payments {
        let p = payment_of(payment.await.unwrap());
        assert_eq!((p.status, p.decision.outcome), (PaymentStatus::Declined, Outcome::Restrict), "{p:?}");
    }
    assert_eq!(service.stats().failed_commits.load(std::sync::atomic::Ordering::Relaxed), 0);
}
