//! `xiezhi fund balance|deposit` against a running `xiezhi serve`: the key from `XIEZHI_KEY`
//! (else `XIEZHI_API_KEY`), a table or `--json`, a refused deposit as exit 1 with the
//! server's problem on stderr, a deposit re-run with its idempotency key made once, and an
//! unreachable server as exit 2.

mod common;

use serde_json::{json, Value};
use std::process::{Command, Output};

fn xiezhi(args: &[&str], base: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xiezhi"));
    command.args(args).args(["--server", base]).env_remove("XIEZHI_KEY").env_remove("XIEZHI_API_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run xiezhi")
}

use common::ok;

fn refused(output: &Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_and_fill_the_fund_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, base, _stdout) = common::serve(dir.path(), &[]);
    let admin = [("XIEZHI_KEY", common::ADMIN_KEY)];

    let empty = ok(&xiezhi(&["fund", "balance"], &base, &admin));
    assert!(empty.starts_with("CURRENCY  BALANCE") && empty.contains("CNY       0.00"), "{empty}");

    for amount in ["-5.00", "0"] {
        let args = ["fund", "deposit", "--amount", amount, "--reference", "r"];
        let stderr = refused(&xiezhi(&args, &base, &admin));
        assert!(stderr.contains("422 invalid_deposit"), "{amount}: {stderr}");
    }

    let deposit =
        ["fund", "deposit", "--amount", "100.00", "--reference", "treasury", "--idempotency-key", "d-1", "--json"];
    let first: Value = serde_json::from_str(&ok(&xiezhi(&deposit, &base, &admin))).unwrap();
    assert_eq!((first["amount"].as_str(), first["fund"]["balance"].as_str()), (Some("100.00"), Some("100.00")));
    // The same command again (a retry after a timeout, say) deposits once.
    let again: Value = serde_json::from_str(&ok(&xiezhi(&deposit, &base, &admin))).unwrap();
    assert_eq!(again["transaction_id"], first["transaction_id"]);
    // XIEZHI_API_KEY is read when XIEZHI_KEY is not set.
    let table = ok(&xiezhi(
        &["fund", "deposit", "--amount", "0.50", "--reference", "r2"],
        &base,
        &[("XIEZHI_API_KEY", common::ADMIN_KEY)],
    ));
    assert!(table.starts_with("deposited 0.50 CNY"), "{table}");
    let balance: Value = serde_json::from_str(&ok(&xiezhi(&["fund", "balance", "--json"], &base, &admin))).unwrap();
    assert_eq!(
        balance["funds"][0],
        json!({"currency": "CNY", "balance": "100.50", "deposited": "100.50",
        "paid_out": "0.00", "waiting_count": 0, "waiting_amount": "0.00"})
    );

    // A wallet's key may not touch the fund.
    let wallet = json!({"name": "wallet", "kind": "wallet", "wallet_id": "w1"});
    let response = common::client().post(format!("{base}/v1/api-keys")).json(&wallet).send().await.unwrap();
    let wallet_key = response.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_owned();
    let stderr = refused(&xiezhi(&["fund", "balance"], &base, &[("XIEZHI_KEY", &wallet_key)]));
    assert!(stderr.contains("403 forbidden"), "{stderr}");

    let unreachable = xiezhi(&["fund", "balance"], "http://127.0.0.1:9", &admin);
    assert_eq!(unreachable.status.code(), Some(2));
}
