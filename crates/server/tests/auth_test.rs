//! Who may call what, over a real socket: every route in the access table with no key, a
//! wrong key, and a key of each kind lacking the route's scope; what merchant keys, wallet
//! keys and shopper tokens can reach; keys rotated with overlap and revoked; idempotency
//! keys scoped per caller.

mod common;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use xiezhi_core::{KeyKind, Scope, ServiceConfig};
use xiezhi_server::auth::{Access, ROUTES};

struct World {
    base: String,
    admin: Client,
    merchant_a: Value,
    merchant_b: Value,
    /// A line the operator opened (no wallet) and one the wallet opened.
    operator_line: String,
    wallet_line: String,
    wallet_key: String,
    /// A payment at merchant A (on the wallet's line) and one at merchant B.
    payment_a: String,
    payment_b: String,
    _dir: tempfile::TempDir,
}

async fn send(client: &Client, method: Method, url: &str, body: Option<Value>) -> (StatusCode, Value, Option<String>) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

async fn create(client: &Client, url: String, body: Value) -> Value {
    let (status, body, _) = send(client, Method::POST, &url, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
    body
}

async fn make_key(world_base: &str, admin: &Client, kind: KeyKind, scopes: Vec<Scope>, bind: Value) -> String {
    let mut body =
        json!({ "name": "test", "kind": kind, "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>() });
    for (k, v) in bind.as_object().unwrap() {
        body[k] = v.clone();
    }
    create(admin, format!("{world_base}/v1/api-keys"), body).await["key"].as_str().unwrap().to_owned()
}

fn merchant_body(name: &str) -> Value {
    json!({"name": name, "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"})
}

async fn pay(client: &Client, base: &str, line: &str, qr: &str) -> String {
    let body = json!({"credit_line_id": line, "qr_payload": qr, "amount": "12.00",
                      "context": {"device_id": "d1", "ip": "10.0.0.1"}});
    create(client, format!("{base}/v1/payments"), body).await["id"].as_str().unwrap().to_owned()
}

async fn world() -> World {
    let (base, _service, dir) = common::start(ServiceConfig::default()).await;
    let admin = common::client_with(common::ADMIN_KEY);
    let merchant_a = create(&admin, format!("{base}/v1/merchants"), merchant_body("A")).await;
    let merchant_b = create(&admin, format!("{base}/v1/merchants"), merchant_body("B")).await;
    let line = json!({"user_id": "u-op", "currency": "CNY", "limit": "1000.00"});
    let operator_line =
        create(&admin, format!("{base}/v1/credit-lines"), line).await["id"].as_str().unwrap().to_owned();
    let wallet_key =
        make_key(&base, &admin, KeyKind::Wallet, KeyKind::Wallet.allowed().list(), json!({"wallet_id": "w1"})).await;
    let wallet = common::client_with(&wallet_key);
    let line = json!({"user_id": "u-w", "currency": "CNY", "limit": "1000.00"});
    let wallet_line = create(&wallet, format!("{base}/v1/credit-lines"), line).await["id"].as_str().unwrap().to_owned();
    let payment_a = pay(&wallet, &base, &wallet_line, merchant_a["qr_payload"].as_str().unwrap()).await;
    let payment_b = pay(&admin, &base, &operator_line, merchant_b["qr_payload"].as_str().unwrap()).await;
    World {
        base,
        admin,
        merchant_a,
        merchant_b,
        operator_line,
        wallet_line,
        wallet_key,
        payment_a,
        payment_b,
        _dir: dir,
    }
}

impl World {
    fn url(&self, route: &str) -> String {
        let id = if route.starts_with("/v1/merchants/") {
            self.merchant_a["id"].as_str().unwrap()
        } else if route.starts_with("/v1/credit-lines/") {
            &self.operator_line
        } else if route.starts_with("/v1/payments/") {
            &self.payment_b
        } else {
            "absent"
        };
        format!("{}{}", self.base, route.replace("{id}", id))
    }
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_missing_or_wrong_key_and_a_key_without_its_scope() {
    let w = world().await;
    let nobody = Client::new();
    let wrong = common::client_with("xz_000000000000000000000000000000000000000000000000");
    // One key per (kind, scope): every scope the kind may hold except that one.
    let mut lacking: HashMap<(KeyKind, Scope), Client> = HashMap::new();
    let merchant_id = w.merchant_a["id"].clone();
    for kind in [KeyKind::Operator, KeyKind::Merchant, KeyKind::Wallet] {
        let bind = match kind {
            KeyKind::Operator => json!({}),
            KeyKind::Merchant => json!({ "merchant_id": merchant_id }),
            KeyKind::Wallet => json!({ "wallet_id": "w-table" }),
        };
        for scope in Scope::ALL {
            let scopes: Vec<Scope> = kind.allowed().list().into_iter().filter(|s| s != scope).collect();
            let key = make_key(&w.base, &w.admin, kind, scopes, bind.clone()).await;
            lacking.insert((kind, *scope), common::client_with(&key));
        }
    }
    let mut checked = 0;
    for (name, route, access) in ROUTES {
        let url = w.url(route);
        let body = (*name != "GET" && *name != "DELETE").then(|| json!({}));
        let (status, problem, challenge) = send(&nobody, method(name), &url, body.clone()).await;
        if *access == Access::Public {
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{name} {route} is public");
            continue;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} {route} without a key: {problem}");
        assert_eq!(problem["code"], "unauthenticated");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"xiezhi\""), "{name} {route}");
        let (status, problem, challenge) = send(&wrong, method(name), &url, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} {route} with a wrong key: {problem}");
        assert!(challenge.unwrap().contains("invalid_token"));
        let scope = match access {
            Access::Key(scope) | Access::KeyOrShopper(scope) => *scope,
            _ => continue,
        };
        for kind in [KeyKind::Operator, KeyKind::Merchant, KeyKind::Wallet] {
            let (status, problem, _) = send(&lacking[&(kind, scope)], method(name), &url, body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{name} {route} by a {kind:?} key without {scope:?}: {problem}");
            assert_eq!(
                (problem["code"].as_str(), problem["scope"].as_str()),
                (Some("forbidden"), Some(scope.as_str()))
            );
            checked += 1;
        }
    }
    assert!(checked >= 3 * 30, "{checked} refusals checked");
    // The admin key passes every gate (what the route then answers is its own business).
    for (name, route, _) in ROUTES.iter().filter(|(_, r, _)| !r.starts_with("/v1/api-keys/")) {
        let body = (*name != "GET" && *name != "DELETE").then(|| json!({}));
        let (status, problem, _) = send(&w.admin, method(name), &w.url(route), body).await;
        assert!(![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status), "{name} {route}: {problem}");
    }
    // HEAD needs what GET needs.
    let head = nobody.head(format!("{}/v1/stats", w.base)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchant_and_wallet_keys_reach_only_their_own() {
    let w = world().await;
    let merchant_a = w.merchant_a["id"].as_str().unwrap();
    let merchant_key = make_key(
        &w.base,
        &w.admin,
        KeyKind::Merchant,
        KeyKind::Merchant.allowed().list(),
        json!({ "merchant_id": merchant_a }),
    )
    .await;
    let merchant = common::client_with(&merchant_key);
    let get = |client: &Client, path: String| {
        let (client, url) = (client.clone(), format!("{}{path}", w.base));
        async move { send(&client, Method::GET, &url, None).await }
    };
    // Its own payment and merchant: yes. Another merchant's: not found, never shown.
    assert_eq!(get(&merchant, format!("/v1/payments/{}", w.payment_a)).await.0, StatusCode::OK);
    let (status, problem, _) = get(&merchant, format!("/v1/payments/{}", w.payment_b)).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("payment_not_found")));
    let capture = format!("{}/v1/payments/{}/capture", w.base, w.payment_b);
    assert_eq!(send(&merchant, Method::POST, &capture, Some(json!({}))).await.0, StatusCode::NOT_FOUND);
    let refund = format!("{}/v1/payments/{}/refunds", w.base, w.payment_b);
    assert_eq!(send(&merchant, Method::POST, &refund, Some(json!({"amount": "1.00"}))).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&merchant, format!("/v1/merchants/{merchant_a}")).await.0, StatusCode::OK);
    let other = w.merchant_b["id"].as_str().unwrap();
    assert_eq!(get(&merchant, format!("/v1/merchants/{other}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&merchant, format!("/v1/merchants/{other}/qr")).await.0, StatusCode::NOT_FOUND);
    let qr = format!("{}/v1/merchants/{other}/qr", w.base);
    assert_eq!(send(&merchant, Method::POST, &qr, Some(json!({"amount": "5.00"}))).await.0, StatusCode::NOT_FOUND);
    // Its own capture goes through.
    let capture = format!("{}/v1/payments/{}/capture", w.base, w.payment_a);
    assert_eq!(send(&merchant, Method::POST, &capture, Some(json!({}))).await.0, StatusCode::OK);

    // The wallet: the line it opened and its payments, nothing else.
    let wallet = common::client_with(&w.wallet_key);
    assert_eq!(get(&wallet, format!("/v1/credit-lines/{}", w.wallet_line)).await.0, StatusCode::OK);
    assert_eq!(get(&wallet, format!("/v1/credit-lines/{}", w.operator_line)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&wallet, format!("/v1/credit-lines/{}/notifications", w.operator_line)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&wallet, format!("/v1/payments/{}", w.payment_a)).await.0, StatusCode::OK);
    assert_eq!(get(&wallet, format!("/v1/payments/{}", w.payment_b)).await.0, StatusCode::NOT_FOUND);
    let qr_b = w.merchant_b["qr_payload"].as_str().unwrap();
    let body = json!({"credit_line_id": w.operator_line, "qr_payload": qr_b, "amount": "1.00"});
    let (status, problem, _) = send(&wallet, Method::POST, &format!("{}/v1/payments", w.base), Some(body)).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("credit_line_not_found")));
    let repay = format!("{}/v1/credit-lines/{}/repayments", w.base, w.operator_line);
    assert_eq!(send(&wallet, Method::POST, &repay, Some(json!({"amount": "1.00"}))).await.0, StatusCode::NOT_FOUND);
    // Nor may it open a line for another wallet.
    let line = json!({"user_id": "u", "currency": "CNY", "limit": "10.00", "wallet_id": "w2"});
    assert_eq!(
        send(&wallet, Method::POST, &format!("{}/v1/credit-lines", w.base), Some(line)).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backdating_and_kyc_levels_need_an_operator_key_that_may_migrate() {
    let w = world().await;
    let wallet = common::client_with(&w.wallet_key);
    let url = format!("{}/v1/credit-lines", w.base);
    let backdated = json!({"user_id": "u", "currency": "CNY", "limit": "10.00", "opened_at": "2020-01-01T00:00:00Z"});
    let verified = json!({"user_id": "u", "currency": "CNY", "limit": "10.00", "profile": {"kyc_level": 3}});
    for body in [&backdated, &verified] {
        let (status, problem, _) = send(&wallet, Method::POST, &url, Some(body.clone())).await;
        assert_eq!((status, problem["scope"].as_str()), (StatusCode::FORBIDDEN, Some("lines:migrate")), "{problem}");
    }
    let scopes: Vec<Scope> = Scope::ALL.iter().copied().filter(|s| *s != Scope::LinesMigrate).collect();
    let operator = common::client_with(&make_key(&w.base, &w.admin, KeyKind::Operator, scopes, json!({})).await);
    let (status, problem, _) = send(&operator, Method::POST, &url, Some(backdated.clone())).await;
    assert_eq!((status, problem["scope"].as_str()), (StatusCode::FORBIDDEN, Some("lines:migrate")));
    create(&w.admin, url.clone(), backdated).await;
    create(&w.admin, url.clone(), verified).await;
    // A backdated merchant needs merchants:write on an operator key: the admin has it.
    let mut merchant = merchant_body("Old Shop");
    merchant["onboarded_at"] = json!("2019-05-01T00:00:00Z");
    create(&w.admin, format!("{}/v1/merchants", w.base), merchant).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopper_tokens_speak_for_one_line_only() {
    let w = world().await;
    let wallet = common::client_with(&w.wallet_key);
    let mint = format!("{}/v1/shopper-tokens", w.base);
    let minted = create(&wallet, mint.clone(), json!({"credit_line_id": w.wallet_line, "device_id": "phone-1"})).await;
    let token = minted["token"].as_str().unwrap();
    assert!(token.starts_with("v4.public."), "{minted}");
    // A wallet cannot mint for a line it did not open.
    let body = json!({"credit_line_id": w.operator_line, "device_id": "phone-1"});
    assert_eq!(send(&wallet, Method::POST, &mint, Some(body)).await.0, StatusCode::NOT_FOUND);
    let body = json!({"credit_line_id": w.wallet_line, "device_id": "phone-1", "ttl_s": 86_400});
    assert_eq!(send(&wallet, Method::POST, &mint, Some(body)).await.0, StatusCode::BAD_REQUEST);

    let shopper = common::client_with(token);
    let get = |path: String| {
        let (client, url) = (shopper.clone(), format!("{}{path}", w.base));
        async move { send(&client, Method::GET, &url, None).await.0 }
    };
    assert_eq!(get(format!("/v1/credit-lines/{}", w.wallet_line)).await, StatusCode::OK);
    assert_eq!(get(format!("/v1/credit-lines/{}/notifications", w.wallet_line)).await, StatusCode::OK);
    assert_eq!(get(format!("/v1/credit-lines/{}", w.operator_line)).await, StatusCode::NOT_FOUND);
    assert_eq!(get(format!("/v1/payments/{}", w.payment_a)).await, StatusCode::FORBIDDEN);
    assert_eq!(get("/v1/rules".into()).await, StatusCode::FORBIDDEN);
    let pay = json!({"credit_line_id": w.wallet_line, "qr_payload": w.merchant_a["qr_payload"], "amount": "1.00"});
    assert_eq!(
        send(&shopper, Method::POST, &format!("{}/v1/payments", w.base), Some(pay)).await.0,
        StatusCode::FORBIDDEN
    );
    // A token changed by one character is refused.
    let mut forged = token.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        send(
            &common::client_with(&forged),
            Method::GET,
            &format!("{}/v1/credit-lines/{}", w.base, w.wallet_line),
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_rotated_with_overlap_and_revoked() {
    let w = world().await;
    let keys = format!("{}/v1/api-keys", w.base);
    let made =
        create(&w.admin, keys.clone(), json!({"name": "reports", "kind": "operator", "scopes": ["stats:read"]})).await;
    let (id, secret) = (made["id"].as_str().unwrap().to_owned(), made["key"].as_str().unwrap().to_owned());
    assert!(secret.starts_with("xz_") && secret.len() >= 3 + 32, "at least 128 bits: {secret}");
    let (status, listing, _) = send(&w.admin, Method::GET, &keys, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = listing.to_string();
    assert!(!text.contains(&secret) && !text.contains(&secret[10..]), "the listing shows no key");
    assert!(!text.contains("sha256"), "nor its hash: {text}");
    let stats = format!("{}/v1/stats", w.base);
    let old = common::client_with(&secret);
    assert_eq!(send(&old, Method::GET, &stats, None).await.0, StatusCode::OK);
    // Rotation: both work during the overlap.
    let rotated = create(&w.admin, format!("{keys}/{id}/rotate"), json!({"overlap_s": 3600})).await;
    let new = common::client_with(rotated["key"].as_str().unwrap());
    assert_eq!(rotated["scopes"], json!(["stats:read"]));
    assert_eq!(send(&old, Method::GET, &stats, None).await.0, StatusCode::OK);
    assert_eq!(send(&new, Method::GET, &stats, None).await.0, StatusCode::OK);
    // A rotation with no overlap ends the old key at once.
    let new_id = rotated["id"].as_str().unwrap();
    let again = create(&w.admin, format!("{keys}/{new_id}/rotate"), json!({"overlap_s": 0})).await;
    assert_eq!(send(&new, Method::GET, &stats, None).await.0, StatusCode::UNAUTHORIZED);
    // Revoked: refused at once.
    let newest = common::client_with(again["key"].as_str().unwrap());
    assert_eq!(send(&newest, Method::GET, &stats, None).await.0, StatusCode::OK);
    let revoke = format!("{keys}/{}", again["id"].as_str().unwrap());
    assert_eq!(send(&w.admin, Method::DELETE, &revoke, None).await.0, StatusCode::OK);
    assert_eq!(send(&newest, Method::GET, &stats, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&w.admin, Method::DELETE, &revoke, None).await.0, StatusCode::NOT_FOUND);
    // Bad requests: a merchant key without its merchant, a scope the kind cannot hold.
    let (status, _, _) = send(&w.admin, Method::POST, &keys, Some(json!({"name": "m", "kind": "merchant"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body = json!({"name": "w", "kind": "wallet", "wallet_id": "w", "scopes": ["rules:write"]});
    assert_eq!(send(&w.admin, Method::POST, &keys, Some(body)).await.0, StatusCode::BAD_REQUEST);
    let body = json!({"name": "x", "kind": "operator", "scopes": ["root"]});
    assert_eq!(send(&w.admin, Method::POST, &keys, Some(body)).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_scoped_per_caller() {
    let w = world().await;
    let other =
        common::client_with(&make_key(&w.base, &w.admin, KeyKind::Operator, vec![Scope::LinesWrite], json!({})).await);
    let url = format!("{}/v1/credit-lines", w.base);
    let post = |client: &Client, limit: &str| {
        let request = client
            .post(&url)
            .header("Idempotency-Key", "same-key")
            .json(&json!({"user_id": "u", "currency": "CNY", "limit": limit}));
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = post(&w.admin, "10.00").await;
    assert_eq!(status, StatusCode::CREATED);
    // Another caller's same key is its own: no collision, and it does not see the first answer.
    let (status, theirs) = post(&other, "20.00").await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_ne!(theirs["id"], first["id"]);
    assert_eq!(theirs["limit"], "20.00");
    // Each caller's retry gets its own answer back.
    assert_eq!(post(&w.admin, "10.00").await.1["id"], first["id"]);
    assert_eq!(post(&other, "20.00").await.1["id"], theirs["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_and_networks_over_their_rate_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = xiezhi_store_sqlite::SqliteStore::open_dir(dir.path()).unwrap();
    let clock = std::sync::Arc::new(xiezhi_core::SystemClock);
    let service = xiezhi_core::Service::start(Box::new(store), ServiceConfig::default(), clock).unwrap();
    let limits =
        xiezhi_server::rate::RateLimits { per_ip_per_s: 1, per_ip_burst: 30, per_caller_per_s: 1, per_caller_burst: 5 };
    let config = xiezhi_server::RouterConfig { rate_limits: limits, ..Default::default() };
    let base = common::serve_with(service, config).await;
    let admin = common::client_with(common::ADMIN_KEY);
    let stats = format!("{base}/v1/stats");
    let keys = format!("{base}/v1/api-keys");
    let other = create(&admin, keys, json!({"name": "o", "kind": "operator", "scopes": ["stats:read"]})).await;
    for i in 0..4 {
        assert_eq!(admin.get(&stats).send().await.unwrap().status(), StatusCode::OK, "request {i} is within the burst");
    }
    let refused = admin.get(&stats).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    // Another key has its own budget; the network's is shared by everyone on it, keyed or not.
    let other = common::client_with(other["key"].as_str().unwrap());
    assert_eq!(other.get(&stats).send().await.unwrap().status(), StatusCode::OK);
    let nobody = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(nobody.get(&stats).send().await.unwrap().status());
    }
    assert!(statuses.contains(&StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "unauthenticated floods meet the network limit");
}

/// What a hostile review found: a second wallet reusing a shopper's id, `keys:admin` as a
/// way to mint or take over a stronger key, and tokens outliving the key that minted them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wallet_takes_anothers_user_no_key_outranks_its_maker_and_tokens_die_with_their_key() {
    let w = world().await;
    // Wallet w1 opened a line for `u-w`; wallet w2 may not open one under that id.
    let other_wallet =
        make_key(&w.base, &w.admin, KeyKind::Wallet, KeyKind::Wallet.allowed().list(), json!({"wallet_id": "w2"}))
            .await;
    let other_wallet = common::client_with(&other_wallet);
    let url = format!("{}/v1/credit-lines", w.base);
    for user in ["u-w", "u-op"] {
        let body = json!({"user_id": user, "currency": "CNY", "limit": "10.00"});
        let (status, problem, _) = send(&other_wallet, Method::POST, &url, Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{user}: {problem}");
    }
    let body = json!({"user_id": "u-w2", "currency": "CNY", "limit": "10.00"});
    assert_eq!(send(&other_wallet, Method::POST, &url, Some(body)).await.0, StatusCode::CREATED);

    // A key holding keys:admin alone can neither mint a stronger key nor rotate or revoke one.
    let keys = format!("{}/v1/api-keys", w.base);
    let lesser =
        common::client_with(&make_key(&w.base, &w.admin, KeyKind::Operator, vec![Scope::KeysAdmin], json!({})).await);
    let body = json!({"name": "root", "kind": "operator"});
    let (status, problem, _) = send(&lesser, Method::POST, &keys, Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (_, listing, _) = send(&w.admin, Method::GET, &keys, None).await;
    let admin_id = listing["api_keys"].as_array().unwrap().iter().find(|k| k["created_by"] == "bootstrap").unwrap()
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotate = format!("{keys}/{admin_id}/rotate");
    assert_eq!(send(&lesser, Method::POST, &rotate, Some(json!({"overlap_s": 0}))).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send(&lesser, Method::DELETE, &format!("{keys}/{admin_id}"), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(send(&w.admin, Method::GET, &keys, None).await.0, StatusCode::OK, "the admin key still works");
    let body = json!({"name": "ok", "kind": "operator", "scopes": ["keys:admin"]});
    assert_eq!(send(&lesser, Method::POST, &keys, Some(body)).await.0, StatusCode::CREATED, "within its own scopes");

    // A shopper token dies with the wallet key that minted it.
    let minter_made = create(&w.admin, keys.clone(), json!({"name": "m", "kind": "wallet", "wallet_id": "w1"})).await;
    let minter = common::client_with(minter_made["key"].as_str().unwrap());
    let body = json!({"credit_line_id": w.wallet_line, "device_id": "p"});
    let token =
        create(&minter, format!("{}/v1/shopper-tokens", w.base), body).await["token"].as_str().unwrap().to_owned();
    let shopper = common::client_with(&token);
    let line_url = format!("{}/v1/credit-lines/{}", w.base, w.wallet_line);
    assert_eq!(send(&shopper, Method::GET, &line_url, None).await.0, StatusCode::OK);
    let revoke = format!("{keys}/{}", minter_made["id"].as_str().unwrap());
    assert_eq!(send(&w.admin, Method::DELETE, &revoke, None).await.0, StatusCode::OK);
    assert_eq!(send(&shopper, Method::GET, &line_url, None).await.0, StatusCode::UNAUTHORIZED);
    // Minting needs what the token will do: tokens:mint alone is not enough.
    let mint_only =
        make_key(&w.base, &w.admin, KeyKind::Wallet, vec![Scope::TokensMint], json!({"wallet_id": "w1"})).await;
    let body = json!({"credit_line_id": w.wallet_line, "device_id": "p"});
    let (status, _, _) =
        send(&common::client_with(&mint_only), Method::POST, &format!("{}/v1/shopper-tokens", w.base), Some(body))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
