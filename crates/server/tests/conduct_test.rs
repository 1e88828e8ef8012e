//! The conduct report over a real service on a manual clock: five users restricted by a
//! declined payment, each restriction lifted another way (a passed challenge, an overturned
//! appeal, an operator after a failed challenge, an appeal that escalated, its end), then the
//! report read through `GET /v1/reports/conduct` and offline from the data directory, with
//! the same figures.

mod common;

use common::{send, ManualClock};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xiezhi_core::conduct::{ConductRecords, ConductReport, LiftFigure, ReportPeriod};
use xiezhi_core::{Service, ServiceConfig};
use xiezhi_store_sqlite::SqliteStore;

/// 2026-11-18T11:06:40Z.
const START_MS: i64 = 1_795_000_000_000;

struct World {
    api: common::Api,
    clock: Arc<ManualClock>,
    qr: String,
    dir: tempfile::TempDir,
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
    fn advance_to(&self, offset_ms: i64) {
        self.clock.0.store(START_MS + offset_ms, Ordering::SeqCst);
    }

    /// A line for `user` restricted by a deny-listed payment; its restriction.
    async fn restricted(&self, user: &str) -> Value {
        let line = json!({"user_id": user, "currency": "CNY", "limit": "2000.00"});
        let line = self.created(&self.wallet, "/v1/credit-lines", line).await["id"].as_str().unwrap().to_owned();
        let entry = json!({"list": "deny", "subject_kind": "user", "subject": user, "reason": "test", "author": "t"});
        let entry = self.created(&self.admin, "/v1/lists", entry).await;
        let body = json!({"credit_line_id": line, "qr_payload": self.qr, "amount": "12.00",
                          "context": {"device_id": format!("phone-{user}"), "ip": "10.0.0.1"}});
        let payment = self.created(&self.wallet, "/v1/payments", body).await;
        assert_eq!(payment["decision"]["outcome"], "restrict", "{payment}");
        let url = format!("{}/v1/lists/{}", self.base, entry["id"].as_str().unwrap());
        assert_eq!(send(&self.admin, Method::DELETE, &url, None).await.0, StatusCode::OK);
        let (_, page) = self.get(&self.admin, &format!("/v1/restrictions?status=active&credit_line_id={line}")).await;
        page["restrictions"][0].clone()
    }

    async fn appeal(&self, restriction: &Value) -> String {
        let body = json!({"restriction_id": restriction["id"], "message": "it was me"});
        self.created(&self.wallet, "/v1/appeals", body).await["id"].as_str().unwrap().to_owned()
    }

    async fn decide(&self, appeal: &str, outcome: &str) {
        self.ok(&self.admin, &format!("/v1/appeals/{appeal}/claim"), json!({})).await;
        self.ok(&self.admin, &format!("/v1/appeals/{appeal}/decision"), json!({"outcome": outcome})).await;
    }

    async fn answer(&self, restriction: &Value, code: &str) -> Value {
        let path = format!("/v1/challenges/{}", restriction["challenge_id"].as_str().unwrap());
        self.post(&self.wallet, &path, json!({"code": code})).await.1
    }

    /// Waits for the writer's sweep (on the service clock, with nobody asking) to make
    /// `done` true of the restriction.
    async fn swept(&self, restriction: &Value, done: impl Fn(&Value) -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, r) =
                self.get(&self.admin, &format!("/v1/restrictions/{}", restriction["id"].as_str().unwrap())).await;
            if done(&r) {
                return;
            }
            assert!(Instant::now() < until, "the sweep never came: {r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn report(&self, client: &Client, query: &str) -> (StatusCode, Value) {
        self.get(client, &format!("/v1/reports/conduct{query}")).await
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let store = SqliteStore::open_dir(dir.path()).unwrap();
    let service = Service::start(Box::new(store), common::with_phone(ServiceConfig::default()), clock.clone()).unwrap();
    let base = common::serve(service).await;
    let admin = common::client_with(common::ADMIN_KEY);
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let (_, merchant) = send(&admin, Method::POST, &format!("{base}/v1/merchants"), Some(merchant)).await;
    let mut w = World {
        api: common::Api { base, admin: admin.clone(), wallet: admin },
        clock,
        qr: merchant["qr_payload"].as_str().unwrap().to_owned(),
        dir,
    };
    let wallet =
        w.created(&w.admin, "/v1/api-keys", json!({"name": "wallet", "kind": "wallet", "wallet_id": "w1"})).await;
    w.wallet = common::client_with(wallet["key"].as_str().unwrap());
    w
}

fn lift(count: u64, seconds: i64) -> LiftFigure {
    LiftFigure { count, median_seconds: Some(seconds), p95_seconds: Some(seconds) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conduct_report_counts_every_way_out_the_same_online_and_offline() {
    let w = world().await;
    // A one-hour review deadline (restrictions last 24 h).
    let (_, policy) = w.get(&w.admin, "/v1/policy").await;
    let mut document = policy["document"].clone();
    document["version"] = json!(document["version"].as_u64().unwrap() + 1);
    document["restriction"]["appeal_deadline_hours"] = json!(1);
    let put = w.admin.put(format!("{}/v1/policy", w.base)).json(&document).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK);

    let alice = w.restricted("alice").await;
    let bob = w.restricted("bob").await;
    let carol = w.restricted("carol").await;
    let dave = w.restricted("dave").await;
    let erin = w.restricted("erin").await;
    let alice_appeal = w.appeal(&alice).await;
    w.appeal(&dave).await;
    let erin_appeal = w.appeal(&erin).await;

    // A minute on: bob passes his challenge, carol fails hers, erin's appeal is upheld.
    w.advance_to(60_000);
    let challenge = bob["challenge_id"].as_str().unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    let code = loop {
        if let Some(code) = common::phone().code_for(challenge) {
            break code;
        }
        assert!(Instant::now() < until, "no code sent for {challenge}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(w.answer(&bob, &code).await["status"], "passed");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        w.answer(&carol, wrong).await;
    }
    let path = format!("/v1/challenges/{}", carol["challenge_id"].as_str().unwrap());
    assert_eq!(w.get(&w.wallet, &path).await.1["status"], "failed");
    w.decide(&erin_appeal, "uphold").await;
    // Ten minutes: alice's appeal is overturned (the fund is empty: her compensation waits).
    w.advance_to(600_000);
    w.decide(&alice_appeal, "overturn").await;
    // Twenty: an operator lifts carol's.
    w.advance_to(1_200_000);
    let path = format!("/v1/restrictions/{}/lift", carol["id"].as_str().unwrap());
    w.ok(&w.admin, &path, json!({"reason": "verified by phone"})).await;
    // Past the hour: dave's appeal escalates and lifts his restriction on the sweep.
    w.advance_to(3_601_000);
    w.swept(&dave, |r| r["status"] == "lifted").await;
    // Past a day: erin's restriction reaches its end and the sweep writes the lift.
    w.advance_to(24 * 3_600_000 + 5_000);
    w.swept(&erin, |r| r["history"].as_array().unwrap().iter().any(|e| e["cause"] == "expired")).await;

    let (status, body) = w.report(&w.admin, "?from=2026-11-18&to=2026-11-19").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: ConductReport = serde_json::from_value(body.clone()).unwrap();
    assert_eq!((report.from.as_str(), report.to.as_str()), ("2026-11-18", "2026-11-19"));
    assert_eq!(report.as_of, "2026-11-19T11:06:45Z", "the service clock");
    let r = &report.restrictions;
    assert_eq!((r.imposed, r.in_force, r.by_scope.scan_to_pay), (5, 0, 5), "{body}");
    let denied = r.by_reason_code.iter().find(|x| x.reason_code == "deny_listed_user");
    assert_eq!(denied.map(|x| x.count), Some(5), "{body}");
    let t = &r.time_to_lift;
    assert_eq!(t.challenge, lift(1, 60), "{body}");
    assert_eq!(t.appeal, lift(1, 600), "{body}");
    assert_eq!(t.operator, lift(1, 1_200), "{body}");
    assert_eq!(t.escalation, lift(1, 3_601), "{body}");
    assert_eq!(t.expiry, lift(1, 86_400), "at its end, not when the sweep came: {body}");
    assert_eq!(t.superseded.count + t.unrecorded.count, 0);
    // 60, 600, 1,200, 3,601, 86,400 s.
    assert_eq!(t.all, LiftFigure { count: 5, median_seconds: Some(1_200), p95_seconds: Some(86_400) }, "{body}");
    let c = &report.challenges;
    assert_eq!((c.offered, c.passed, c.failed, c.expired, c.pending), (5, 1, 1, 3, 0), "{body}");
    let a = &report.appeals;
    assert_eq!((a.received, a.overturned, a.upheld, a.undecided, a.escalated), (3, 1, 1, 1, 1), "{body}");
    assert_eq!((a.decided_within_deadline, a.decided_late, a.undecided_past_deadline), (2, 0, 1));
    assert_eq!(a.within_deadline_share, Some(0.6667));
    let m = &report.compensation;
    assert_eq!((m.owed, m.paid.count, m.waiting_for_funds.count, m.due.count), (1, 0, 1, 0), "{body}");
    assert_eq!(body["compensation"]["waiting_for_funds"]["amounts"], json!([{"currency": "CNY", "amount": "50.00"}]));
    assert_eq!(report.decisions_labelled_false_positive, 1);

    // Offline, from the data directory (while the server runs), at the same instant: the
    // same report.
    let period = ReportPeriod::parse("2026-11-18", "2026-11-19").unwrap();
    let mut store = SqliteStore::open_dir(w.dir.path()).unwrap();
    let records = ConductRecords::read(&mut store, &period).unwrap();
    let as_of: jiff::Timestamp = report.as_of.parse().unwrap();
    assert_eq!(ConductReport::compute(&records, &period, as_of.as_millisecond()), report);
    // Nothing began on the next day.
    let (_, next) = w.report(&w.admin, "?from=2026-11-19&to=2026-11-19").await;
    assert_eq!((next["restrictions"]["imposed"].clone(), next["appeals"]["received"].clone()), (json!(0), json!(0)));

    // Who may read it: a key with reports:read only; not a wallet, not an appeals reviewer.
    let key = |scopes: Value| json!({"name": "regulator", "kind": "operator", "scopes": scopes});
    let made = w.created(&w.admin, "/v1/api-keys", key(json!(["reports:read"]))).await;
    let regulator = common::client_with(made["key"].as_str().unwrap());
    assert_eq!(w.report(&regulator, "?from=2026-11-18&to=2026-11-19").await, (StatusCode::OK, body));
    let made = w.created(&w.admin, "/v1/api-keys", key(json!(["appeals:decide", "decisions:read"]))).await;
    let reviewer = common::client_with(made["key"].as_str().unwrap());
    let (status, problem) = w.report(&reviewer, "?from=2026-11-18&to=2026-11-19").await;
    assert_eq!((status, problem["scope"].as_str()), (StatusCode::FORBIDDEN, Some("reports:read")));
    assert_eq!(w.report(&w.wallet, "?from=2026-11-18&to=2026-11-19").await.0, StatusCode::FORBIDDEN);

    // Bad periods: 400 naming the field, never a 500.
    for (query, field) in [
        ("?from=2026-11-19&to=2026-11-18", "to"),
        ("?from=2025-11-18&to=2026-11-19", "to"),
        ("?from=2026-11-31&to=2026-12-01", "from"),
        ("?from=18/11/2026&to=2026-11-19", "from"),
        ("?from=2026-11-18&to=", "to"),
        ("?from=2026-11-18", "to"),
        ("", "from"),
        ("?from=2026-11-18&to=2026-11-19&colour=red", "query"),
    ] {
        let (status, problem) = w.report(&w.admin, query).await;
        assert_eq!(
            (status, problem["code"].as_str(), problem["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request"), Some(field)),
            "{query}: {problem}"
        );
    }
}
