//! A store whose journal fails replay (here: a refund beyond what was captured, the kind of
//! entry a record lagging behind the journal once let in) still has a way forward:
//! `store check` names the entry and its payment, `serve` refuses to take payments on it
//! and says what to do, `serve --read-only` answers reads, and `store accept` lets it start
//! again with the operator's name and reason on record, the payment frozen.

mod common;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use xiezhi_ledger::{Account, Ledger, LineAccount, Operation, PlatformAccount, Posting, Transaction};
use xiezhi_store::{Batch, Store};
use xiezhi_store_sqlite::SqliteStore;

fn xiezhi(args: &[&str], data_dir: &Path) -> (i32, Value, String) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_xiezhi")).args(args).arg("--data-dir").arg(data_dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), json, String::from_utf8_lossy(&output.stderr).into_owned())
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Pays 10.00, captures it and refunds 4.00 through the API; returns (payment, line, qr).
async fn a_refunded_payment(dir: &Path) -> (String, String, String) {
    let (_server, base, _stdout) = common::serve(dir, &[]);
    let client = common::client();
    let merchant =
        json!({"name": "Repair Mart", "city": "Hangzhou", "country": "CN", "mcc": "5411", "currency": "CNY"});
    let (_, merchant) = post(&client, format!("{base}/v1/merchants"), merchant).await;
    let line = json!({"user_id": "u", "currency": "CNY", "limit": "500.00"});
    let (_, line) = post(&client, format!("{base}/v1/credit-lines"), line).await;
    let qr = merchant["qr_payload"].as_str().unwrap().to_owned();
    let pay = json!({"credit_line_id": line["id"], "qr_payload": qr, "amount": "10.00"});
    let (status, payment) = post(&client, format!("{base}/v1/payments"), pay).await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap().to_owned();
    assert_eq!(post(&client, format!("{base}/v1/payments/{id}/capture"), json!({})).await.0, 200);
    assert_eq!(post(&client, format!("{base}/v1/payments/{id}/refunds"), json!({"amount": "4.00"})).await.0, 201);
    (id, line["id"].as_str().unwrap().to_owned(), qr)
}

/// Appends a refund of 6.01 against the 6.00 still refundable, posted as the ledger posts
/// refunds (what is owed first, the rest as a credit balance): balanced, as a bug left it.
fn append_an_over_refund(dir: &Path, payment_id: &str, line_id: &str) -> u64 {
    let mut store = SqliteStore::open_dir(dir).unwrap();
    let mut ledger = Ledger::new();
    for transaction in store.journal().unwrap() {
        ledger.replay(&transaction).unwrap();
    }
    let currency = ledger.credit_line(line_id).unwrap().currency;
    let line = |account| Account::Line { credit_line_id: line_id.into(), account };
    let posting = |account, amount_minor| Posting { account, amount_minor };
    let forged = Transaction {
        id: ledger.last_transaction_id() + 1,
        at_ms: 1_800_000_000_000,
        currency,
        operation: Operation::Refund { hold_id: payment_id.into(), amount_minor: 601 },
        postings: vec![
            posting(Account::Platform { currency, account: PlatformAccount::MerchantSettlementPayable }, 601),
            posting(line(LineAccount::Receivable), -600),
            posting(line(LineAccount::Drawn), -600),
            posting(line(LineAccount::Available), 600),
            posting(line(LineAccount::CreditBalance), -1),
        ],
    };
    assert!(forged.is_balanced());
    store.commit(&Batch { transactions: vec![forged.clone()], records: vec![], generation: 0 }).unwrap();
    forged.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_fails_replay_is_named_served_read_only_and_accepted_on_record() {
    let dir = tempfile::tempdir().unwrap();
    let (payment_id, line_id, qr) = a_refunded_payment(dir.path()).await;
    let bad = append_an_over_refund(dir.path(), &payment_id, &line_id);

    let (code, report, _) = xiezhi(&["store", "check"], dir.path());
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["balanced"], false, "an over-refund balances, but replay refuses it: {report}");
    assert_eq!(report["first_refused_transaction"]["id"], bad);
    assert_eq!(report["first_refused_transaction"]["payments"], json!([payment_id]));
    assert_eq!(report["first_refused_transaction"]["credit_line_id"], line_id);
    assert!(report["replay_error"].as_str().unwrap().contains("refund of 601 exceeds the refundable 600"), "{report}");
    assert_eq!(report["payment_disagreements"][0]["payment_id"], payment_id, "record 4.00 refunded, ledger 10.01");

    // A normal start refuses the books and says what to do.
    let (code, _, stderr) = xiezhi(&["serve", "--listen", "127.0.0.1:0"], dir.path());
    assert_eq!(code, 1);
    for hint in ["store check", "--read-only", &format!("store accept --transaction {bad}")] {
        assert!(stderr.contains(hint), "{hint} missing from: {stderr}");
    }

    // Read-only: reads answer, writes are refused with 503 read_only.
    {
        let (_server, base, _stdout) = common::serve(dir.path(), &["--read-only"]);
        let client = common::client();
        let health: Value = client.get(format!("{base}/healthz")).send().await.unwrap().json().await.unwrap();
        assert_eq!(health["status"], "read_only", "{health}");
        assert!(health["read_only"].as_str().unwrap().contains(&format!("journal entry {bad}")), "{health}");
        let payment = client.get(format!("{base}/v1/payments/{payment_id}")).send().await.unwrap();
        assert_eq!(payment.status(), 200);
        let pay = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "1.00"});
        let (status, problem) = post(&client, format!("{base}/v1/payments"), pay).await;
        assert_eq!((status, problem["code"].as_str()), (503, Some("read_only")), "{problem}");
    }

    // Accepting is one known entry at a time, with a name and a reason.
    let accept = |transaction: u64| {
        let t = transaction.to_string();
        let args =
            ["store", "accept", "--transaction", &t, "--operator", "alice", "--reason", "refund INC-42 paid by hand"];
        xiezhi(&args, dir.path())
    };
    let (code, _, stderr) = accept(bad - 1);
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("accept {bad} first")), "{stderr}");
    let (code, accepted, stderr) = accept(bad);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((accepted["operator"].as_str(), accepted["transaction_id"].as_u64()), (Some("alice"), Some(bad)));
    let (code, report, _) = xiezhi(&["store", "check"], dir.path());
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["accepted_transactions"][0]["reason"], "refund INC-42 paid by hand");
    assert_eq!(report["accepted_transactions"][0]["payments"], json!([payment_id]));
    assert_eq!(report["frozen_credit_lines"], json!([]), "the line still keeps the ledger's rules");

    // The service starts; the accepted payment moves no more money, the rest works.
    let (_server, base, _stdout) = common::serve(dir.path(), &[]);
    let client = common::client();
    let (status, problem) =
        post(&client, format!("{base}/v1/payments/{payment_id}/refunds"), json!({"amount": "0.01"})).await;
    assert_eq!((status, problem["code"].as_str()), (500, Some("books_disagree")), "{problem}");
    let pay = json!({"credit_line_id": line_id, "qr_payload": qr, "amount": "1.00"});
    let (status, paid) = post(&client, format!("{base}/v1/payments"), pay).await;
    assert_eq!(status, 201, "{paid}");
}
