//! `xiezhi fund balance|deposit`: the compensation fund through a running server's
//! `/v1/fund` (needs `fund:read`) and `/v1/fund/deposits` (needs `fund:write`). A table for
//! a person, or the server's JSON with `--json`; the key and the exit codes are those of
//! `xiezhi restrictions` (`XIEZHI_KEY`, else `XIEZHI_API_KEY`; 1 refused, 2 unreachable).

use crate::restrictions_cmd::{cell, finish, send, send_with_key, table, Target};
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum FundCommand {
    /// The fund per currency: balance, deposited, paid out, compensations waiting.
    Balance {
        #[command(flatten)]
        target: Target,
    },
    /// Pay the platform's own money into the fund; waiting compensations are paid from it,
    /// oldest first.
    Deposit {
        /// A positive decimal, e.g. 10000.00. A negative one is passed on for the server to
        /// refuse with its reason, not taken for a flag.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// A currency the policy grants credit in.
        #[arg(long, default_value = "CNY")]
        currency: String,
        /// Where the money came from (a treasury transfer's reference).
        #[arg(long)]
        reference: String,
        /// Sent as `Idempotency-Key`: running the same deposit again with the same key
        /// deposits once.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

const FUND_HEADER: &[&str] = &["CURRENCY", "BALANCE", "DEPOSITED", "PAID OUT", "WAITING", "WAITING AMOUNT"];

fn fund_row(f: &Value) -> Vec<String> {
    ["currency", "balance", "deposited", "paid_out", "waiting_count", "waiting_amount"]
        .iter()
        .map(|k| cell(&f[*k]))
        .collect()
}

fn balance_table(view: &Value) -> String {
    let rows: Vec<Vec<String>> = view["funds"].as_array().map(|a| a.iter().map(fund_row).collect()).unwrap_or_default();
    table(FUND_HEADER, &rows)
}

fn deposit_table(deposit: &Value) -> String {
    let mut out = format!(
        "deposited {} {} (transaction {}, reference {})\n",
        cell(&deposit["amount"]),
        cell(&deposit["currency"]),
        cell(&deposit["transaction_id"]),
        cell(&deposit["reference"])
    );
    out.push_str(&table(FUND_HEADER, &[fund_row(&deposit["fund"])]));
    for paid in deposit["paid"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "paid {} {} to {} (appeal {})\n",
            cell(&paid["amount"]),
            cell(&paid["currency"]),
            cell(&paid["credit_line_id"]),
            cell(&paid["appeal_id"])
        ));
    }
    out
}

pub fn run(command: FundCommand) -> ExitCode {
    match command {
        FundCommand::Balance { target } => {
            let answer = send(&target, reqwest::Method::GET, "/v1/fund", None);
            finish("fund balance", &target, answer, balance_table)
        }
        FundCommand::Deposit { amount, currency, reference, idempotency_key, target } => {
            let body = json!({ "amount": amount, "currency": currency, "reference": reference });
            let key = idempotency_key.as_deref();
            let answer = send_with_key(&target, reqwest::Method::POST, "/v1/fund/deposits", Some(body), key);
            finish("fund deposit", &target, answer, deposit_table)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deposit_prints_the_fund_and_what_it_paid() {
        let deposit = json!({"amount": "80.00", "currency": "CNY", "transaction_id": 7, "reference": "r",
            "fund": {"currency": "CNY", "balance": "30.00", "deposited": "80.00", "paid_out": "50.00",
                     "waiting_count": 0, "waiting_amount": "0.00"},
            "paid": [{"amount": "50.00", "currency": "CNY", "credit_line_id": "cl_1", "appeal_id": "ap_1"}]});
        let out = deposit_table(&deposit);
        assert!(out.starts_with("deposited 80.00 CNY (transaction 7, reference r)\n"), "{out}");
        assert!(out.contains("CNY       30.00"), "{out}");
        assert!(out.ends_with("paid 50.00 CNY to cl_1 (appeal ap_1)\n"), "{out}");
    }
}
