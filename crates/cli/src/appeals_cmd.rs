//! `xiezhi appeals list|claim|decide`: the appeals review queue through a running server's
//! `/v1/appeals` (needs `appeals:decide`). Claim before deciding: only the reviewer who
//! claimed an appeal decides it, once.

use crate::restrictions_cmd::{cell, finish, query_path, query_string, send, table, Target};
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AppealsCommand {
    /// Appeals, oldest first, a page at a time (`--cursor` goes on from `next_cursor`).
    List {
        /// open, claimed, decided or escalated.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        cursor: Option<String>,
        /// 1 to 500 (default 100).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        target: Target,
    },
    /// Take an appeal to review it (the key's holder then decides it).
    Claim {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Decide an appeal you claimed: uphold, or overturn (lifts the restriction, labels the
    /// decision a false positive, records compensation due).
    Decide {
        id: String,
        /// uphold or overturn.
        #[arg(long)]
        outcome: String,
        /// Why, for the user and the record.
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        target: Target,
    },
}

const HEADER: &[&str] = &["ID", "STATUS", "USER", "ABOUT", "FILED", "DEADLINE", "CLAIMED BY", "OUTCOME"];

fn row(a: &Value) -> Vec<String> {
    let about = match (a["restriction_id"].as_str(), a["decision_id"].as_str()) {
        (Some(r), _) => r.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => "-".to_owned(),
    };
    vec![
        cell(&a["id"]),
        cell(&a["status"]),
        cell(&a["user_id"]),
        about,
        cell(&a["filed_at"]),
        cell(&a["deadline"]),
        cell(&a["claimed_by"]),
        cell(&a["outcome"]),
    ]
}

fn page_table(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["appeals"].as_array().map(|a| a.iter().map(row).collect()).unwrap_or_default();
    crate::client::with_next_cursor(table(HEADER, &rows), page)
}

fn one_table(appeal: &Value) -> String {
    let mut out = table(HEADER, &[row(appeal)]);
    out.push_str(&format!("message: {}\n", cell(&appeal["message"])));
    if appeal["outcome"].is_string() {
        out.push_str(&format!(
            "decided by {} at {}; restriction lifted: {}; compensation due: {}\n",
            cell(&appeal["decided_by"]),
            cell(&appeal["decided_at"]),
            cell(&appeal["lifted_restriction"]),
            cell(&appeal["compensation_due"]),
        ));
    }
    out
}

pub fn run(command: AppealsCommand) -> ExitCode {
    match command {
        AppealsCommand::List { status, cursor, limit, target } => {
            let query =
                query_string(&[("status", status), ("cursor", cursor), ("limit", limit.map(|l| l.to_string()))]);
            let answer = send(&target, reqwest::Method::GET, &format!("/v1/appeals{query}"), None);
            finish("appeals list", &target, answer, page_table)
        }
        AppealsCommand::Claim { id, target } => {
            let path = format!("/v1/appeals/{}/claim", query_path(&id));
            let answer = send(&target, reqwest::Method::POST, &path, Some(json!({})));
            finish("appeals claim", &target, answer, one_table)
        }
        AppealsCommand::Decide { id, outcome, note, target } => {
            let mut body = json!({ "outcome": outcome });
            if let Some(note) = note {
                body["note"] = json!(note);
            }
            let path = format!("/v1/appeals/{}/decision", query_path(&id));
            let answer = send(&target, reqwest::Method::POST, &path, Some(body));
            finish("appeals decide", &target, answer, one_table)
        }
    }
}
