//! `xiezhi report conduct` against a running `xiezhi serve` (`--server`, key in `XIEZHI_KEY`)
//! and offline on its data directory (`--data-dir`): the same figures both ways, Markdown by
//! default and JSON with `--json`; bad dates and a directory without a store as exit 2 with
//! one line, a refusal by the server as exit 1.

mod common;

use serde_json::{json, Value};
use std::process::{Command, Output};

fn xiezhi(args: &[&str], key: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(args)
        .env("XIEZHI_KEY", key)
        .env_remove("XIEZHI_API_KEY")
        .output()
        .expect("run xiezhi")
}

use common::ok;

fn failed(output: &Output, code: i32) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(code), "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr.into_owned()
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let response = common::client().post(format!("{base}{path}")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conduct_report_reads_the_same_from_a_server_and_from_its_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, _stdout) = common::serve(dir.path(), &[]);
    let merchant = json!({"name": "Lotus", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let qr = post(&base, "/v1/merchants", merchant).await["qr_payload"].as_str().unwrap().to_owned();
    let line = post(&base, "/v1/credit-lines", json!({"user_id": "alice", "currency": "CNY", "limit": "900.00"})).await;
    let entry = json!({"list": "deny", "subject_kind": "user", "subject": "alice", "reason": "t", "author": "t"});
    post(&base, "/v1/lists", entry).await;
    let body = json!({"credit_line_id": line["id"], "qr_payload": qr, "amount": "9.00", "context": {"device_id": "d"}});
    let payment = post(&base, "/v1/payments", body).await;
    assert_eq!(payment["decision"]["outcome"], "restrict");
    let page = common::client().get(format!("{base}/v1/restrictions")).send().await.unwrap();
    let page: Value = page.json().await.unwrap();
    let id = page["restrictions"][0]["id"].as_str().unwrap().to_owned();
    post(&base, &format!("/v1/restrictions/{id}/lift"), json!({"reason": "verified by phone"})).await;

    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    let dir_arg = dir.path().to_str().unwrap();
    let online = ["report", "conduct", "--from", &today, "--to", &today, "--server", &base];
    let offline = ["report", "conduct", "--from", &today, "--to", &today, "--data-dir", dir_arg];
    let with_json = |args: &[&str]| -> Value {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        serde_json::from_str(&ok(&xiezhi(&args, common::ADMIN_KEY))).unwrap()
    };
    let (mut served, mut read) = (with_json(&online), with_json(&offline));
    assert_eq!(served["restrictions"]["imposed"], 1, "{served}");
    assert_eq!(served["restrictions"]["time_to_lift"]["operator"]["count"], 1, "{served}");
    assert_eq!(served["restrictions"]["by_reason_code"][0]["reason_code"], "deny_listed_user", "{served}");
    // The same figures; each stands at its own clock's instant.
    served["as_of"].take();
    read["as_of"].take();
    assert_eq!(served, read);

    let markdown = ok(&xiezhi(&offline, common::ADMIN_KEY));
    assert!(markdown.starts_with(&format!("# Conduct report, {today} to {today} (UTC)")), "{markdown}");
    assert!(markdown.contains("| deny_listed_user | scan_to_pay | 1 |"), "{markdown}");
    assert!(markdown.contains("| operator | 1 |"), "{markdown}");
    // The same tables after the `As of` line.
    let served_markdown = ok(&xiezhi(&online, common::ADMIN_KEY));
    assert_eq!(served_markdown.lines().skip(3).collect::<Vec<_>>(), markdown.lines().skip(3).collect::<Vec<_>>());

    // Bad input: one line, exit 2, before any server or store is asked.
    let stderr = failed(&xiezhi(&["report", "conduct", "--from", "2026-12-01", "--to", "2026-11-30"], "k"), 2);
    assert!(stderr.contains("--to") && stderr.contains("before"), "{stderr}");
    let stderr = failed(&xiezhi(&["report", "conduct", "--from", "yesterday", "--to", "2026-11-30"], "k"), 2);
    assert!(stderr.contains("--from") && stderr.contains("ISO date"), "{stderr}");
    let stderr = failed(&xiezhi(&["report", "conduct", "--from", "2024-01-01", "--to", "2025-12-31"], "k"), 2);
    assert!(stderr.contains("366 days"), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let args = ["report", "conduct", "--from", &today, "--to", &today, "--data-dir", empty.path().to_str().unwrap()];
    assert!(failed(&xiezhi(&args, "k"), 2).contains("no store here"));
    // A key the server refuses: exit 1 with its problem.
    let stderr = failed(&xiezhi(&online, "xz_not_a_key"), 1);
    assert!(stderr.contains("401 unauthenticated"), "{stderr}");
}
