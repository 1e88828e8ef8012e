//! The compensation fund over a real socket and a real store: deposits are operators'
//! (`fund:write`; other keys and shopper tokens get 403), a zero or negative deposit is 422,
//! an overturned appeal is paid at once when the fund holds enough and waits when it does
//! not, a deposit pays the waiting oldest first, and a restart in the middle keeps the fund
//! and every compensation's state, with `store check` passing.

mod common;

use common::{send, ManualClock};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xiezhi_store_sqlite::SqliteStore;

const START_MS: i64 = 1_795_000_000_000;

use common::Running;

async fn start(dir: &Path, clock: Arc<ManualClock>) -> Running {
    common::start_on(dir, clock).await
}

struct World {
    api: common::Api,
    qr: String,
}

impl std::ops::Deref for World {
    type Target = common::Api;
    fn deref(&self) -> &common::Api {
        &self.api
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut common::Api {
        &mut self.api
    }
}

impl World {
    async fn line(&self, user: &str) -> String {
        let body = json!({"user_id": user, "currency": "CNY", "limit": "2000.00"});
        self.created(&self.wallet, "/v1/credit-lines", body).await["id"].as_str().unwrap().to_owned()
    }

    /// Restricts `user`'s line (a deny-list hit), has the user appeal, and an operator
    /// overturn it; the appeal's id.
    async fn overturned(&self, line: &str, user: &str) -> String {
        let entry = json!({"list": "deny", "subject_kind": "user", "subject": user, "reason": "test", "author": "t"});
        let entry = self.created(&self.admin, "/v1/lists", entry).await;
        let body = json!({"credit_line_id": line, "qr_payload": self.qr, "amount": "12.00",
                          "context": {"device_id": "phone-1", "ip": "10.0.0.1"}});
        let payment = self.created(&self.wallet, "/v1/payments", body).await;
        assert_eq!(payment["decision"]["outcome"], "restrict", "{payment}");
        let url = format!("{}/v1/lists/{}", self.base, entry["id"].as_str().unwrap());
        assert_eq!(send(&self.admin, Method::DELETE, &url, None).await.0, StatusCode::OK);
        let shopper = self.token(line).await;
        let appeal = json!({"decision_id": payment["id"], "message": "It was me."});
        let appeal = self.created(&shopper, "/v1/appeals", appeal).await;
        let id = appeal["id"].as_str().unwrap().to_owned();
        assert_eq!(self.post(&self.admin, &format!("/v1/appeals/{id}/claim"), json!({})).await.0, StatusCode::OK);
        let (status, decided) =
            self.post(&self.admin, &format!("/v1/appeals/{id}/decision"), json!({"outcome": "overturn"})).await;
        assert_eq!(status, StatusCode::OK, "{decided}");
        id
    }

    async fn deposit(&self, amount: &str, reference: &str) -> Value {
        let body = json!({"amount": amount, "currency": "CNY", "reference": reference});
        self.created(&self.admin, "/v1/fund/deposits", body).await
    }

    async fn fund(&self) -> Value {
        let (status, fund) = self.get(&self.admin, "/v1/fund").await;
        assert_eq!(status, StatusCode::OK, "{fund}");
        let cny = fund["funds"].as_array().unwrap().iter().find(|f| f["currency"] == "CNY").cloned();
        cny.unwrap_or_else(|| panic!("a CNY fund: {fund}"))
    }

    /// The user's one compensation, as their status shows it.
    async fn compensation_of(&self, user: &str) -> Value {
        let (status, body) = self.get(&self.admin, &format!("/v1/users/{user}/status")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["compensation"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{body}");
        list[0].clone()
    }

    async fn credit_balance(&self, line: &str) -> String {
        let (_, line) = self.get(&self.admin, &format!("/v1/credit-lines/{line}")).await;
        line["credit_balance"].as_str().unwrap().to_owned()
    }
}

async fn world(base: String) -> World {
    let admin = common::client_with(common::ADMIN_KEY);
    let mut w = World { api: common::Api { base, admin: admin.clone(), wallet: admin }, qr: String::new() };
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    w.qr = w.created(&w.admin, "/v1/merchants", merchant).await["qr_payload"].as_str().unwrap().to_owned();
    w.wallet = w.key(json!({"name": "wallet", "kind": "wallet", "wallet_id": "w1"})).await;
    w
}

fn check_books(dir: &Path) -> xiezhi_core::books::StoreCheck {
    let mut store = SqliteStore::open_dir(dir).unwrap();
    xiezhi_core::books::check_store(&mut store).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_are_for_operators_with_fund_write_and_refuse_what_is_not_a_positive_amount() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), Arc::new(ManualClock(AtomicI64::new(START_MS)))).await;
    let w = world(running.base.clone()).await;
    let body = |amount: &str, currency: &str| json!({"amount": amount, "currency": currency, "reference": "r"});
    for (amount, currency, field) in [
        ("-5.00", "CNY", "amount"),
        ("0", "CNY", "amount"),
        ("0.00", "CNY", "amount"),
        ("ten", "CNY", "amount"),
        ("1.234", "CNY", "amount"),
        ("10.00", "ZZZ", "currency"),
        ("10.00", "cny", "currency"),
    ] {
        let (status, problem) = w.post(&w.admin, "/v1/fund/deposits", body(amount, currency)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{amount} {currency}: {problem}");
        assert_eq!((problem["code"].as_str(), problem["field"].as_str()), (Some("invalid_deposit"), Some(field)));
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{problem}");
    }
    assert_eq!(w.fund().await["balance"], "0.00", "nothing refused reached the fund");

    // Only operator keys with the fund's scopes; never a wallet, a merchant or a shopper.
    let line = w.line("alice").await;
    let shopper = w.token(&line).await;
    let reader = w.key(json!({"name": "auditor", "kind": "operator", "scopes": ["fund:read"]})).await;
    let other = w.key(json!({"name": "reviewer", "kind": "operator", "scopes": ["appeals:decide"]})).await;
    for client in [&w.wallet, &shopper, &reader, &other] {
        let (status, problem) = w.post(client, "/v1/fund/deposits", body("10.00", "CNY")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    }
    for client in [&w.wallet, &shopper, &other] {
        assert_eq!(w.get(client, "/v1/fund").await.0, StatusCode::FORBIDDEN);
        assert_eq!(w.get(client, "/v1/compensations").await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(w.get(&reader, "/v1/fund").await.0, StatusCode::OK);
    assert_eq!(w.get(&reader, "/v1/compensations?status=paid").await.0, StatusCode::OK);

    // A deposit is idempotent under its key; the same key with another body is refused.
    let treasurer =
        w.key(json!({"name": "treasurer", "kind": "operator", "scopes": ["fund:write", "fund:read"]})).await;
    let url = format!("{}/v1/fund/deposits", w.base);
    let post = |b: Value| treasurer.post(&url).header("Idempotency-Key", "dep-1").json(&b).send();
    let first: Value = post(body("100.00", "CNY")).await.unwrap().json().await.unwrap();
    let again = post(body("100.00", "CNY")).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.json::<Value>().await.unwrap()["transaction_id"], first["transaction_id"], "{first}");
    let reused = post(body("200.00", "CNY")).await.unwrap();
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let fund = w.fund().await;
    assert_eq!((fund["balance"].as_str(), fund["deposited"].as_str()), (Some("100.00"), Some("100.00")), "{fund}");
    assert_eq!(first["deposited_by"].as_str().map(|k| k.starts_with("key_")), Some(true), "{first}");
    let (status, problem) = w.get(&w.admin, "/v1/compensations?limit=501").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, problem) = w.get(&w.admin, "/v1/compensations?status=owed").await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::BAD_REQUEST, Some("status")));
    running.stop().await;
    let check = check_books(dir.path());
    assert!(check.balanced && check.records_agree, "{check:?}");
    assert_eq!(check.compensation_funds["CNY"], "100.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_fund_makes_compensation_wait_and_deposits_pay_it_oldest_first_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let running = start(dir.path(), Arc::clone(&clock)).await;
    let w = world(running.base.clone()).await;
    let (alice, bob, carol) = (w.line("alice").await, w.line("bob").await, w.line("carol").await);

    // The fund holds 80.00; the policy pays 50.00 per wrongful restriction.
    w.deposit("80.00", "opening balance").await;
    let alice_appeal = w.overturned(&alice, "alice").await;
    let paid = w.compensation_of("alice").await;
    assert_eq!(
        (paid["status"].as_str(), paid["amount"].as_str(), paid["currency"].as_str()),
        (Some("paid"), Some("50.00"), Some("CNY")),
        "{paid}"
    );
    assert_eq!(paid["appeal_id"], alice_appeal.as_str());
    assert!(paid["transaction_id"].is_u64() && paid["paid_at"].is_string(), "{paid}");
    assert_eq!(paid["waive_fees_while_wrongly_restricted"], true);
    assert_eq!(paid["fees_waived"], "0.00");
    assert!(paid["note"].as_str().unwrap().contains("nothing to waive"), "{paid}");
    assert_eq!(w.credit_balance(&alice).await, "50.00", "credited to the line as credit balance");
    assert_eq!(w.fund().await["balance"], "30.00");

    // Two more overturns than the fund can pay: both wait, and are reported.
    clock.0.fetch_add(1_000, Ordering::SeqCst);
    let bob_appeal = w.overturned(&bob, "bob").await;
    clock.0.fetch_add(1_000, Ordering::SeqCst);
    let carol_appeal = w.overturned(&carol, "carol").await;
    for user in ["bob", "carol"] {
        let waiting = w.compensation_of(user).await;
        assert_eq!(waiting["status"], "waiting_for_funds", "{waiting}");
        assert!(waiting["transaction_id"].is_null() && waiting["paid_at"].is_null(), "{waiting}");
    }
    assert_eq!(w.credit_balance(&bob).await, "0.00");
    let fund = w.fund().await;
    assert_eq!(
        (fund["balance"].as_str(), fund["waiting_count"].as_u64(), fund["waiting_amount"].as_str()),
        (Some("30.00"), Some(2), Some("100.00")),
        "{fund}"
    );
    let (_, waiting) = w.get(&w.admin, "/v1/compensations?status=waiting_for_funds").await;
    let order: Vec<&str> =
        waiting["compensations"].as_array().unwrap().iter().map(|c| c["appeal_id"].as_str().unwrap()).collect();
    assert_eq!(order, [bob_appeal.as_str(), carol_appeal.as_str()], "oldest first");

    // 30.00 more covers one: the oldest (bob), never carol ahead of him.
    let deposit = w.deposit("30.00", "top-up 1").await;
    let paid: Vec<&str> =
        deposit["paid"].as_array().unwrap().iter().map(|c| c["appeal_id"].as_str().unwrap()).collect();
    assert_eq!(paid, [bob_appeal.as_str()], "{deposit}");
    assert_eq!(deposit["fund"]["balance"], "10.00", "{deposit}");
    assert_eq!(deposit["fund"]["waiting_count"], 1);
    assert_eq!(w.compensation_of("bob").await["status"], "paid");
    assert_eq!(w.compensation_of("carol").await["status"], "waiting_for_funds");

    // Restart with carol still waiting: the books check out, and nothing is lost.
    running.stop().await;
    let check = check_books(dir.path());
    assert!(check.balanced && check.records_agree, "{check:?}");
    assert_eq!((check.compensations_checked, check.compensation_funds["CNY"].as_str()), (3, "10.00"));
    assert!(check.compensation_disagreements.is_empty(), "{check:?}");
    let running = start(dir.path(), Arc::clone(&clock)).await;
    let w = World { api: common::Api { base: running.base.clone(), ..w.api }, ..w };
    let fund = w.fund().await;
    assert_eq!((fund["balance"].as_str(), fund["waiting_count"].as_u64()), (Some("10.00"), Some(1)), "{fund}");
    assert_eq!(w.compensation_of("alice").await["status"], "paid");
    assert_eq!(w.compensation_of("bob").await["status"], "paid");
    assert_eq!(w.compensation_of("carol").await["status"], "waiting_for_funds");
    assert_eq!(w.credit_balance(&bob).await, "50.00");

    // The next deposit pays carol; the fund ends empty, never below.
    let deposit = w.deposit("40.00", "top-up 2").await;
    assert_eq!(deposit["paid"][0]["appeal_id"], carol_appeal.as_str(), "{deposit}");
    let fund = w.fund().await;
    assert_eq!(
        (
            fund["balance"].as_str(),
            fund["deposited"].as_str(),
            fund["paid_out"].as_str(),
            fund["waiting_count"].as_u64()
        ),
        (Some("0.00"), Some("150.00"), Some("150.00"), Some(0)),
        "{fund}"
    );
    assert_eq!(w.credit_balance(&carol).await, "50.00");
    // A page at a time, oldest first.
    let (_, first) = w.get(&w.admin, "/v1/compensations?limit=2").await;
    assert_eq!(first["compensations"].as_array().unwrap().len(), 2, "{first}");
    let cursor = first["next_cursor"].as_str().expect("more to come").to_owned();
    let (_, rest) = w.get(&w.admin, &format!("/v1/compensations?limit=2&cursor={cursor}")).await;
    assert_eq!(rest["compensations"][0]["appeal_id"], carol_appeal.as_str(), "{rest}");
    assert!(rest["next_cursor"].is_null(), "{rest}");
    running.stop().await;
    let check = check_books(dir.path());
    assert!(check.balanced && check.records_agree, "{check:?}");
    assert_eq!(check.compensation_funds["CNY"], "0.00");
    assert_eq!(check.platform_balances["CNY:platform_own_funds"], "150.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_pays_six_at_once_and_the_sweep_the_rest_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let running = start(dir.path(), Arc::clone(&clock)).await;
    let w = world(running.base.clone()).await;
    let mut appeals = Vec::new();
    for i in 0..8 {
        let user = format!("user{i}");
        let line = w.line(&user).await;
        clock.0.fetch_add(1_000, Ordering::SeqCst);
        appeals.push(w.overturned(&line, &user).await);
    }
    assert_eq!(w.fund().await["waiting_count"], 8);
    // 350.00 covers seven of the eight (50.00 each): six in the deposit's own batch.
    let deposit = w.deposit("350.00", "top-up").await;
    let paid: Vec<&str> =
        deposit["paid"].as_array().unwrap().iter().map(|c| c["appeal_id"].as_str().unwrap()).collect();
    let first_six: Vec<&str> = appeals[..6].iter().map(String::as_str).collect();
    assert_eq!(paid, first_six, "{deposit}");
    // The writer's sweep (twice a second) pays the seventh, with no request to notice it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.fund().await["waiting_count"] != 1 {
        assert!(std::time::Instant::now() < deadline, "the sweep paid nothing: {}", w.fund().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, waiting) = w.get(&w.admin, "/v1/compensations?status=waiting_for_funds").await;
    assert_eq!(waiting["compensations"][0]["appeal_id"], appeals[7].as_str(), "the youngest waits: {waiting}");
    assert_eq!(w.fund().await["balance"], "0.00");
    running.stop().await;

    // The store check catches a record that says paid without its payout.
    let check = check_books(dir.path());
    assert!(check.balanced && check.records_agree && check.compensations_checked == 8, "{check:?}");
    let mut store = SqliteStore::open_dir(dir.path()).unwrap();
    let record = xiezhi_store::Store::record(&mut store, xiezhi_store::RecordKind::Compensation, &appeals[7])
        .unwrap()
        .expect("stored under its appeal");
    let mut forged: Value = serde_json::from_str(&record.body).unwrap();
    forged["status"] = json!("paid");
    forged["transaction_id"] = json!(1);
    forged["paid_at_ms"] = json!(START_MS);
    let forged = xiezhi_store::Record { body: forged.to_string(), ..record };
    let batch = xiezhi_store::Batch { transactions: vec![], records: vec![forged], generation: 0 };
    xiezhi_store::Store::commit(&mut store, &batch).unwrap();
    drop(store);
    let check = check_books(dir.path());
    assert!(!check.records_agree, "{check:?}");
    assert_eq!(check.compensation_disagreements.len(), 1, "{check:?}");
    assert_eq!(check.compensation_disagreements[0].appeal_id, appeals[7]);
}
