//! `xiezhi outbox list|replay`: the notification outbox through a running server's
//! `/v1/outbox` (needs `outbox:read`) and `/v1/outbox/replay` (needs `outbox:replay`). A
//! table for a person, or the server's JSON with `--json`; the key and the exit codes are
//! those of `xiezhi restrictions` (`XIEZHI_KEY`, else `XIEZHI_API_KEY`; 1 refused, 2
//! unreachable).

use crate::restrictions_cmd::{cell, finish, send, table, Target};
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

/// Most calls `replay --all-dead` makes (16 dead letters each): a bound, not a goal.
const MAX_REPLAY_CALLS: usize = 1_000;

#[derive(Subcommand)]
pub enum OutboxCommand {
    /// Messages by status, oldest first.
    List {
        /// pending (not yet delivered, not given up), dead or delivered.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        cursor: Option<String>,
        /// 1-500.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        target: Target,
    },
    /// Send dead letters again, with their ids unchanged (receivers drop what they have).
    Replay {
        /// One dead message.
        #[arg(long, conflicts_with = "all_dead", required_unless_present = "all_dead")]
        id: Option<String>,
        /// Every dead message, oldest first.
        #[arg(long)]
        all_dead: bool,
        #[command(flatten)]
        target: Target,
    },
}

const HEADER: &[&str] = &["ID", "KIND", "CHANNEL", "ENDPOINT", "STATE", "AT", "ATTEMPTS", "LAST ERROR"];

fn list_table(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            ["id", "kind", "channel", "endpoint_id", "state", "state_at", "attempts", "last_error"]
                .iter()
                .map(|k| cell(&m[*k]))
                .collect()
        })
        .collect();
    let mut out = table(HEADER, &rows);
    if let Some(next) = page["next_cursor"].as_str() {
        out.push_str(&format!("more: --cursor {next}\n"));
    }
    out
}

fn replay_table(answer: &Value) -> String {
    let ids: Vec<&str> = answer["replayed"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut out = format!("replayed {} message(s)\n", ids.len());
    for id in ids {
        out.push_str(&format!("{id}\n"));
    }
    out
}

/// `--all-dead`: calls until the server says no dead letters remain, gathering the ids.
fn replay_all(target: &Target) -> Result<(u16, Value), String> {
    let mut replayed: Vec<Value> = vec![];
    for _ in 0..MAX_REPLAY_CALLS {
        let (status, body) = send(target, reqwest::Method::POST, "/v1/outbox/replay", Some(json!({"all_dead": true})))?;
        if status >= 300 {
            return Ok((status, body));
        }
        replayed.extend(body["replayed"].as_array().cloned().unwrap_or_default());
        if body["more"] != true {
            return Ok((status, json!({ "replayed": replayed, "more": false })));
        }
    }
    Ok((200, json!({ "replayed": replayed, "more": true })))
}

pub fn run(command: OutboxCommand) -> ExitCode {
    match command {
        OutboxCommand::List { status, cursor, limit, target } => {
            let limit = limit.map(|l| l.to_string());
            let query =
                crate::restrictions_cmd::query_string(&[("status", status), ("cursor", cursor), ("limit", limit)]);
            let answer = send(&target, reqwest::Method::GET, &format!("/v1/outbox{query}"), None);
            finish("outbox list", &target, answer, list_table)
        }
        OutboxCommand::Replay { id: Some(id), target, .. } => {
            let answer = send(&target, reqwest::Method::POST, "/v1/outbox/replay", Some(json!({ "id": id })));
            finish("outbox replay", &target, answer, replay_table)
        }
        OutboxCommand::Replay { id: None, target, .. } => {
            finish("outbox replay", &target, replay_all(&target), replay_table)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_shows_no_address_and_says_where_to_go_on() {
        let page = json!({"messages": [{"id": "msg_1", "kind": "appeal_decided", "channel": "webhook",
            "endpoint_id": "operator", "state": "dead", "state_at": "2026-11-30T01:00:00Z", "attempts": 12,
            "replays": 0, "last_error": "HTTP 503"}], "next_cursor": "msg_1"});
        let out = list_table(&page);
        assert!(out.contains("msg_1") && out.contains("appeal_decided") && out.contains("HTTP 503"), "{out}");
        assert!(out.ends_with("more: --cursor msg_1\n"), "{out}");
        assert_eq!(replay_table(&json!({"replayed": ["msg_1", "msg_2"]})), "replayed 2 message(s)\nmsg_1\nmsg_2\n");
    }
}
