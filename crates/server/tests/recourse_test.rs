//! Restrictions, the user's status and appeals over a real socket, with the service on a
//! manual clock: who may see and do what (another user's restriction, decision, status or
//! appeal is 404), the bad paths (a blank reason, a second appeal, a decision before a claim,
//! by another reviewer, or twice), and the clock (an appeal past its deadline escalates and
//! lifts its restriction without anyone asking).

mod common;

use common::{send, ManualClock};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xiezhi_core::{Service, ServiceConfig};
use xiezhi_store_sqlite::SqliteStore;

const START_MS: i64 = 1_795_000_000_000;

struct World {
    api: common::Api,
    clock: Arc<ManualClock>,
    qr: String,
    alice_line: String,
    bob_line: String,
    alice: Client,
    bob: Client,
    _dir: tempfile::TempDir,
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
    /// A payment on `line` the deny list restricts; the entry is then removed.
    async fn restrict(&self, line: &str, user: &str) -> Value {
        let entry = json!({"list": "deny", "subject_kind": "user", "subject": user, "reason": "test", "author": "t"});
        let entry = self.created(&self.admin, "/v1/lists", entry).await;
        let body = json!({"credit_line_id": line, "qr_payload": self.qr, "amount": "12.00",
                          "context": {"device_id": "phone-1", "ip": "10.0.0.1"}});
        let payment = self.created(&self.wallet, "/v1/payments", body).await;
        assert_eq!(payment["decision"]["outcome"], "restrict", "{payment}");
        let url = format!("{}/v1/lists/{}", self.base, entry["id"].as_str().unwrap());
        assert_eq!(send(&self.admin, Method::DELETE, &url, None).await.0, StatusCode::OK);
        payment
    }

    /// The one restriction in force on `line`.
    async fn active(&self, line: &str) -> Value {
        let (status, page) =
            self.get(&self.admin, &format!("/v1/restrictions?status=active&credit_line_id={line}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["restrictions"].as_array().unwrap().len(), 1, "{page}");
        page["restrictions"][0].clone()
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
        api: common::Api { base, admin: admin.clone(), wallet: admin.clone() },
        clock,
        qr: merchant["qr_payload"].as_str().unwrap().to_owned(),
        alice_line: String::new(),
        bob_line: String::new(),
        alice: admin.clone(),
        bob: admin,
        _dir: dir,
    };
    w.wallet = w.key(json!({"name": "wallet", "kind": "wallet", "wallet_id": "w1"})).await;
    let line = |user: &str| json!({"user_id": user, "currency": "CNY", "limit": "2000.00"});
    w.alice_line = w.created(&w.wallet, "/v1/credit-lines", line("alice")).await["id"].as_str().unwrap().to_owned();
    w.bob_line = w.created(&w.wallet, "/v1/credit-lines", line("bob")).await["id"].as_str().unwrap().to_owned();
    w.alice = w.token(&w.alice_line.clone()).await;
    w.bob = w.token(&w.bob_line.clone()).await;
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restriction_is_a_record_with_its_author_history_and_ways_out() {
    let w = world().await;
    let payment = w.restrict(&w.alice_line, "alice").await;
    let r = w.active(&w.alice_line).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!((r["scope"].as_str(), r["user_id"].as_str()), (Some("scan_to_pay"), Some("alice")), "{r}");
    assert_eq!(r["reason_codes"], json!(["deny_listed_user"]));
    assert_eq!(r["imposed_by"]["kind"], "decision");
    assert_eq!(r["imposed_by"]["payment_id"], payment["id"]);
    assert_eq!(r["imposed_by"]["policy_version"], "cn-credit-scan-to-pay@2");
    assert!(!r["imposed_by"]["sources"].as_array().unwrap().is_empty(), "what raised the signal: {r}");
    assert_eq!(r["history"][0]["kind"], "imposed");
    let imposed: jiff::Timestamp = r["imposed_at"].as_str().unwrap().parse().unwrap();
    let expires: jiff::Timestamp = r["expires_at"].as_str().unwrap().parse().unwrap();
    let hours = (expires.as_millisecond() - imposed.as_millisecond()) / 3_600_000;
    assert!((1..=168).contains(&hours), "within the policy's max_duration_hours: {hours} h");
    assert_eq!(w.get(&w.admin, &format!("/v1/restrictions/{id}")).await.1, r, "one by id is the listed one");

    // The user's status, in the language asked for, with every way out.
    let response = w
        .alice
        .get(format!("{}/v1/users/alice/status", w.base))
        .header("accept-language", "en-GB,en;q=0.9,zh;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-language"], "en");
    let text = response.text().await.unwrap();
    let status: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = status.as_object().unwrap().keys().map(String::as_str).collect();
    for key in ["user_id", "can_pay", "lines", "restrictions", "appeals", "compensation"] {
        assert!(keys.contains(&key), "{key} in {text}");
    }
    assert_eq!(keys.len(), 6, "exactly the contract's keys: {text}");
    assert_eq!(status["can_pay"], false);
    assert_eq!(
        status["lines"],
        json!([{"credit_line_id": w.alice_line, "can_pay": false, "available": "2000.00", "limit": "2000.00"}])
    );
    let shown = &status["restrictions"][0];
    assert_eq!(shown["id"], id);
    let explanation = &text[text.find("\"explanation\"").unwrap()..];
    assert!(explanation.find("\"en\"").unwrap() < explanation.find("\"zh\"").unwrap(), "English first: {text}");
    let ways: Vec<&str> = shown["ways_out"].as_array().unwrap().iter().map(|x| x["action"].as_str().unwrap()).collect();
    assert_eq!(ways, ["verify_identity", "appeal", "wait"], "{shown}");
    assert_eq!(shown["ways_out"][0]["challenge_id"], r["challenge_id"]);
    assert_eq!((status["appeals"].clone(), status["compensation"].clone()), (json!([]), json!([])));
    let zh = w.get(&w.alice, "/v1/users/alice/status").await.1;
    assert_eq!(zh["restrictions"][0]["explanation"], shown["explanation"], "the same words, in another order");

    // Who may ask: the user's token, its wallet and an operator; nobody else sees the user.
    assert_eq!(w.get(&w.bob, "/v1/users/alice/status").await.0, StatusCode::NOT_FOUND);
    assert_eq!(w.get(&w.bob, "/v1/users/nobody/status").await.0, StatusCode::NOT_FOUND);
    assert_eq!(w.get(&w.wallet, "/v1/users/alice/status").await.0, StatusCode::OK);
    assert_eq!(w.get(&w.admin, "/v1/users/alice/status").await.0, StatusCode::OK);
    let other_wallet = w.key(json!({"name": "w2", "kind": "wallet", "wallet_id": "w2"})).await;
    let (status, problem) = w.get(&other_wallet, "/v1/users/alice/status").await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("user_not_found")));
    assert_eq!(w.get(&w.alice, "/v1/restrictions").await.0, StatusCode::FORBIDDEN, "a shopper lists nothing");

    // An operator lifts it, with a reason; never with none, and never twice.
    let lift = format!("/v1/restrictions/{id}/lift");
    let (status, problem) = w.post(&w.admin, &lift, json!({"reason": "  "})).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_text")),
        "{problem}"
    );
    assert_eq!(w.post(&w.admin, &lift, json!({})).await.0, StatusCode::BAD_REQUEST, "no reason at all");
    let (status, _) = w.post(&w.admin, &lift, json!({"reason": "x".repeat(501)})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(w.post(&w.wallet, &lift, json!({"reason": "mine"})).await.0, StatusCode::FORBIDDEN);
    let (status, lifted) = w.post(&w.admin, &lift, json!({"reason": "customer called"})).await;
    assert_eq!(status, StatusCode::OK, "{lifted}");
    assert_eq!(lifted["status"], "lifted");
    let last = lifted["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["kind"].as_str(), last["cause"].as_str()), (Some("lifted"), Some("operator")), "{lifted}");
    assert_eq!(last["reason"], "customer called");
    assert!(last["by"].as_str().unwrap().starts_with("key_"), "the operator's key: {last}");
    let (status, problem) = w.post(&w.admin, &lift, json!({"reason": "again"})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("restriction_not_active")));
    let (status, problem) = w.post(&w.admin, "/v1/restrictions/rs_absent/lift", json!({"reason": "r"})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("restriction_not_found")));

    // Listings filter and page.
    let lifted_page = w.get(&w.admin, "/v1/restrictions?status=lifted&user_id=alice").await.1;
    assert_eq!(lifted_page["restrictions"][0]["id"], id, "{lifted_page}");
    assert_eq!(w.get(&w.admin, "/v1/restrictions?status=active").await.1["restrictions"], json!([]));
    assert_eq!(w.get(&w.admin, "/v1/restrictions?status=maybe").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(w.get(&w.admin, "/v1/restrictions?limit=501").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(w.get(&w.admin, "/v1/restrictions?colour=red").await.0, StatusCode::BAD_REQUEST);
    w.restrict(&w.bob_line, "bob").await;
    let first = w.get(&w.admin, "/v1/restrictions?limit=1").await.1;
    assert_eq!(first["restrictions"][0]["id"], id);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = w.get(&w.admin, &format!("/v1/restrictions?limit=1&cursor={cursor}")).await.1;
    assert_eq!(second["restrictions"][0]["user_id"], "bob");
    assert!(second["next_cursor"].is_null(), "{second}");
    let status = w.get(&w.alice, "/v1/users/alice/status").await.1;
    assert_eq!((status["can_pay"].clone(), status["restrictions"].clone()), (json!(true), json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appeals_are_filed_by_their_owner_and_decided_once_by_their_claimer() {
    let w = world().await;
    let payment = w.restrict(&w.alice_line, "alice").await;
    let payment_id = payment["id"].as_str().unwrap();
    let r = w.active(&w.alice_line).await;
    let rid = r["id"].as_str().unwrap();

    // Someone else's restriction or decision is not found, exactly as a missing one.
    let (status, problem) = w.post(&w.bob, "/v1/appeals", json!({"restriction_id": rid, "message": "mine"})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("restriction_not_found")));
    let (status, problem) = w.post(&w.bob, "/v1/appeals", json!({"decision_id": payment_id, "message": "m"})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("decision_not_found")));
    let (status, _) = w.post(&w.alice, "/v1/appeals", json!({"restriction_id": "rs_absent", "message": "m"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Bad messages and subjects.
    let (status, problem) = w.post(&w.alice, "/v1/appeals", json!({"restriction_id": rid, "message": " "})).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("message")));
    let long = "长".repeat(2_001);
    let (status, _) = w.post(&w.alice, "/v1/appeals", json!({"restriction_id": rid, "message": long})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let both = json!({"restriction_id": rid, "decision_id": payment_id, "message": "m"});
    assert_eq!(w.post(&w.alice, "/v1/appeals", both).await.0, StatusCode::BAD_REQUEST);

    let filed = w.created(&w.alice, "/v1/appeals", json!({"restriction_id": rid, "message": "It was me."})).await;
    let id = filed["id"].as_str().unwrap().to_owned();
    assert_eq!((filed["status"].as_str(), filed["decision_id"].as_str()), (Some("open"), Some(payment_id)));
    let filed_at: jiff::Timestamp = filed["filed_at"].as_str().unwrap().parse().unwrap();
    let deadline: jiff::Timestamp = filed["deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline.as_millisecond() - filed_at.as_millisecond(), 24 * 3_600_000, "the policy's 24 hours");
    // One open appeal per restriction and decision: the second names the first.
    let (status, problem) = w.post(&w.alice, "/v1/appeals", json!({"decision_id": payment_id, "message": "m"})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("appeal_exists")), "{problem}");
    assert_eq!(problem["appeal_id"], id.as_str());
    let status = w.get(&w.alice, "/v1/users/alice/status").await.1;
    assert_eq!(status["appeals"][0]["id"], id.as_str());
    let ways: Vec<&str> = status["restrictions"][0]["ways_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert!(!ways.contains(&"appeal"), "no second appeal offered while one waits: {ways:?}");
    assert_eq!(w.get(&w.alice, &format!("/v1/appeals/{id}")).await.0, StatusCode::OK);
    assert_eq!(w.get(&w.bob, &format!("/v1/appeals/{id}")).await.0, StatusCode::NOT_FOUND);
    let queue = w.get(&w.admin, "/v1/appeals?status=open").await.1;
    assert_eq!(queue["appeals"][0]["id"], id.as_str());

    // Claim, then decide: only the claimer, only once.
    let reviewer =
        |name: &str| json!({"name": name, "kind": "operator", "scopes": ["appeals:decide", "decisions:read"]});
    let (ana, ben) = (w.key(reviewer("ana")).await, w.key(reviewer("ben")).await);
    let decide = format!("/v1/appeals/{id}/decision");
    let overturn = json!({"outcome": "overturn", "note": "device and place match her habits"});
    let (status, problem) = w.post(&ana, &decide, overturn.clone()).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("appeal_not_claimed")));
    let (status, claimed) = w.post(&ana, &format!("/v1/appeals/{id}/claim"), json!({})).await;
    assert_eq!((status, claimed["status"].as_str()), (StatusCode::OK, Some("claimed")), "{claimed}");
    assert_eq!(w.post(&ana, &format!("/v1/appeals/{id}/claim"), json!({})).await.0, StatusCode::OK, "her own again");
    let (status, problem) = w.post(&ben, &format!("/v1/appeals/{id}/claim"), json!({})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("appeal_claimed")));
    let (status, problem) = w.post(&ben, &decide, overturn.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another reviewer: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains("claimed"), "says why: {problem}");
    assert_eq!(w.post(&w.alice, &decide, overturn.clone()).await.0, StatusCode::FORBIDDEN, "not by the user");
    assert_eq!(w.post(&ana, &decide, json!({"outcome": "maybe"})).await.0, StatusCode::BAD_REQUEST);
    let (status, decided) = w.post(&ana, &decide, overturn.clone()).await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!((decided["status"].as_str(), decided["outcome"].as_str()), (Some("decided"), Some("overturn")));
    assert_eq!(
        (decided["lifted_restriction"].as_bool(), decided["compensation_due"].as_bool()),
        (Some(true), Some(true))
    );
    let (status, problem) = w.post(&ana, &decide, json!({"outcome": "uphold"})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("appeal_decided")));

    // The overturn lifted the restriction, with its history saying so, and labelled the decision.
    let lifted = w.get(&w.admin, &format!("/v1/restrictions/{rid}")).await.1;
    let kinds: Vec<&str> = lifted["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["imposed", "appeal_filed", "appeal_decided", "lifted"], "{lifted}");
    assert_eq!(lifted["history"][2]["outcome"], "overturn");
    assert_eq!(lifted["history"][3]["cause"], "appeal_overturned");
    let record = w.get(&w.admin, &format!("/v1/payments/{payment_id}/decision")).await.1;
    assert_eq!(
        (record["label"]["label"].as_str(), record["label"]["appeal_id"].as_str()),
        (Some("false_positive"), Some(id.as_str()))
    );
    assert_eq!(w.get(&w.alice, "/v1/users/alice/status").await.1["can_pay"], true);
    assert_eq!(w.get(&w.admin, "/v1/appeals?status=decided").await.1["appeals"][0]["id"], id.as_str());

    // A decided subject may be appealed anew, here by the user's wallet; never by another wallet.
    let w2 = w.key(json!({"name": "w2", "kind": "wallet", "wallet_id": "w2"})).await;
    let again = json!({"restriction_id": rid, "message": "once more"});
    let (status, problem) = w.post(&w2, "/v1/appeals", again.clone()).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("restriction_not_found")));
    let second = w.created(&w.wallet, "/v1/appeals", again).await;
    assert_eq!(
        (second["status"].as_str(), second["filed_by"].as_str().map(|b| b.starts_with("key_"))),
        (Some("open"), Some(true))
    );
    // An approved payment has nothing to appeal.
    let body = json!({"credit_line_id": w.alice_line, "qr_payload": w.qr, "amount": "5.00", "context": {"device_id": "phone-1"}});
    let approved = w.created(&w.wallet, "/v1/payments", body).await;
    let (status, problem) =
        w.post(&w.alice, "/v1/appeals", json!({"decision_id": approved["id"], "message": "m"})).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("not_appealable")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appeal_past_its_deadline_escalates_and_lifts_its_restriction_on_the_clock() {
    let w = world().await;
    // A one-hour review deadline (the restriction itself lasts 24 h).
    let (_, policy) = w.get(&w.admin, "/v1/policy").await;
    let mut document = policy["document"].clone();
    document["version"] = json!(document["version"].as_u64().unwrap() + 1);
    document["restriction"]["appeal_deadline_hours"] = json!(1);
    let put = w.admin.put(format!("{}/v1/policy", w.base)).json(&document).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    w.restrict(&w.alice_line, "alice").await;
    let rid = w.active(&w.alice_line).await["id"].as_str().unwrap().to_owned();
    let filed = w.created(&w.alice, "/v1/appeals", json!({"restriction_id": rid, "message": "please"})).await;
    let id = filed["id"].as_str().unwrap();
    assert_eq!(w.get(&w.admin, &format!("/v1/appeals/{id}")).await.1["status"], "open");

    w.clock.0.fetch_add(3_600_000 + 1_000, Ordering::SeqCst);
    // Nobody pays or asks the writer anything: its sweep escalates on the service clock.
    let until = Instant::now() + Duration::from_secs(5);
    let escalated = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, appeal) = w.get(&w.admin, &format!("/v1/appeals/{id}")).await;
        if appeal["status"] == "escalated" {
            break appeal;
        }
        assert!(Instant::now() < until, "the appeal never escalated: {appeal}");
    };
    assert!(escalated["escalated_at"].is_string() && escalated["lifted_restriction"] == true, "{escalated}");
    let lifted = w.get(&w.admin, &format!("/v1/restrictions/{rid}")).await.1;
    assert_eq!(lifted["status"], "lifted", "{lifted}");
    let kinds: Vec<&str> = lifted["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["imposed", "appeal_filed", "appeal_escalated", "lifted"]);
    assert_eq!(
        (lifted["history"][3]["cause"].as_str(), lifted["history"][3]["by"].as_str()),
        (Some("appeal_escalated"), Some("system"))
    );
    let queue = w.get(&w.admin, "/v1/appeals?status=escalated").await.1;
    assert_eq!(queue["appeals"][0]["id"], id);
    assert_eq!(w.get(&w.admin, "/v1/users/alice/status").await.1["can_pay"], true);
    // Still to be decided: claimed, it stays listed as escalated, and an uphold leaves it lifted.
    let claimed = w.post(&w.admin, &format!("/v1/appeals/{id}/claim"), json!({})).await.1;
    assert_eq!(claimed["status"], "escalated", "{claimed}");
    let (status, upheld) = w.post(&w.admin, &format!("/v1/appeals/{id}/decision"), json!({"outcome": "uphold"})).await;
    assert_eq!(
        (status, upheld["outcome"].as_str(), upheld["compensation_due"].as_bool()),
        (StatusCode::OK, Some("uphold"), Some(false))
    );
    assert_eq!(w.get(&w.admin, &format!("/v1/restrictions/{rid}")).await.1["status"], "lifted");
}
