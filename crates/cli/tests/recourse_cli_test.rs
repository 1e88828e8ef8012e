//! `xiezhi restrictions list|lift` and `xiezhi appeals list|claim|decide` against a running
//! `xiezhi serve`, with the key in `XIEZHI_KEY`: tables for a person, the server's JSON with
//! `--json`, and a refusal as exit 1 with the server's problem on stderr.

mod common;

use serde_json::{json, Value};
use std::process::Output;

use common::xiezhi_as_admin as xiezhi;

use common::ok;

fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let response = common::client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

/// Opens a line for `user` and restricts it through the deny list (the entry then removed).
async fn restricted_line(base: &str, qr: &str, user: &str) -> String {
    let line = post(base, "/v1/credit-lines", json!({"user_id": user, "currency": "CNY", "limit": "900.00"})).await;
    let line = line["id"].as_str().unwrap().to_owned();
    let entry = json!({"list": "deny", "subject_kind": "user", "subject": user, "reason": "t", "author": "t"});
    let entry = post(base, "/v1/lists", entry).await;
    let body = json!({"credit_line_id": line, "qr_payload": qr, "amount": "9.00", "context": {"device_id": "d"}});
    assert_eq!(post(base, "/v1/payments", body).await["decision"]["outcome"], "restrict");
    let url = format!("{base}/v1/lists/{}", entry["id"].as_str().unwrap());
    assert!(common::client().delete(url).send().await.unwrap().status().is_success());
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_and_lift_restrictions_and_decide_appeals_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, _stdout) = common::serve(dir.path(), &[]);
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let qr = post(&base, "/v1/merchants", merchant).await["qr_payload"].as_str().unwrap().to_owned();
    let alice = restricted_line(&base, &qr, "alice").await;
    let bob = restricted_line(&base, &qr, "bob").await;

    let listed: Value = serde_json::from_str(&ok(&xiezhi(&["restrictions", "list", "--json"], &base))).unwrap();
    let ids: Vec<&str> = listed["restrictions"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{listed}");
    let table = ok(&xiezhi(&["restrictions", "list", "--status", "active", "--credit-line-id", &alice], &base));
    assert!(table.starts_with("ID") && table.contains(ids[0]) && !table.contains(ids[1]), "{table}");
    assert!(table.contains("deny_listed_user") && table.contains("scan_to_pay"), "{table}");

    // Lifting needs a reason; a lifted one cannot be lifted again.
    let stderr = refused(&xiezhi(&["restrictions", "lift", ids[1], "--reason", " "], &base));
    assert!(stderr.contains("422 invalid_text"), "{stderr}");
    let lifted = ok(&xiezhi(&["restrictions", "lift", ids[1], "--reason", "called the shopper"], &base));
    assert!(lifted.contains("lifted at") && lifted.contains("called the shopper"), "{lifted}");
    let stderr = refused(&xiezhi(&["restrictions", "lift", ids[1], "--reason", "again"], &base));
    assert!(stderr.contains("409 restriction_not_active"), "{stderr}");
    let lifted_page = ok(&xiezhi(&["restrictions", "list", "--status", "lifted", "--json"], &base));
    assert!(lifted_page.contains(&bob), "{lifted_page}");

    // The support desk files an appeal for alice; a reviewer works the queue.
    let appeal = post(&base, "/v1/appeals", json!({"restriction_id": ids[0], "message": "called in"})).await;
    let id = appeal["id"].as_str().unwrap();
    let queue = ok(&xiezhi(&["appeals", "list", "--status", "open"], &base));
    assert!(queue.contains(id) && queue.contains(ids[0]), "{queue}");
    let stderr = refused(&xiezhi(&["appeals", "decide", id, "--outcome", "overturn"], &base));
    assert!(stderr.contains("409 appeal_not_claimed"), "{stderr}");
    let claimed: Value = serde_json::from_str(&ok(&xiezhi(&["appeals", "claim", id, "--json"], &base))).unwrap();
    assert_eq!(claimed["status"], "claimed");
    let decided = ok(&xiezhi(&["appeals", "decide", id, "--outcome", "overturn", "--note", "her phone"], &base));
    assert!(decided.contains("decided by") && decided.contains("compensation due: true"), "{decided}");
    let stderr = refused(&xiezhi(&["appeals", "decide", id, "--outcome", "uphold"], &base));
    assert!(stderr.contains("409 appeal_decided"), "{stderr}");
    let active = ok(&xiezhi(&["restrictions", "list", "--status", "active", "--json"], &base));
    assert_eq!(serde_json::from_str::<Value>(&active).unwrap()["restrictions"], json!([]), "the overturn lifted it");
    // Nothing to reach: exit 2 and one line.
    let unreachable = xiezhi(&["appeals", "list"], "http://127.0.0.1:9");
    assert_eq!(unreachable.status.code(), Some(2));
}
