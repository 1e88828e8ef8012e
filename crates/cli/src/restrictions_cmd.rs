//! `xiezhi restrictions list|lift`: restrictions through a running server's
//! `/v1/restrictions` (listing needs `decisions:read`, lifting `restrictions:write`). A table
//! for a person, or the server's JSON with `--json`. Also the pieces `xiezhi appeals` shares:
//! the target server, the key, one request, and tables.

use crate::client::ApiKeyArgs;
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum RestrictionsCommand {
    /// Restrictions, oldest first, a page at a time (`--cursor` goes on from `next_cursor`).
    List {
        /// active or lifted.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        credit_line_id: Option<String>,
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long)]
        cursor: Option<String>,
        /// 1 to 500 (default 100).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        target: Target,
    },
    /// Lift a restriction in force, with a reason kept in its history.
    Lift {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
    },
}

/// Where to send a command, which key, and how to print the answer.
#[derive(clap::Args)]
pub struct Target {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    #[command(flatten)]
    pub key: ApiKeyArgs,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Target {
    /// The key, as every command reads it (`XIEZHI_KEY`, `XIEZHI_API_KEY`, `--api-key-file`,
    /// ./xiezhi-data/admin.key).
    fn api_key(&self) -> Result<String, String> {
        self.key.key()
    }
}

/// A query string from the parameters that are set (values percent-encoded).
pub fn query_string(params: &[(&str, Option<String>)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let set: Vec<String> =
        params.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v)))).collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

/// Sends one request; answers the status and the JSON body.
pub fn send(target: &Target, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
    send_with_key(target, method, path, body, None)
}

/// [`send`] with an `Idempotency-Key` header, so a re-run of the same command (a timeout,
/// a dropped connection) gets the first answer instead of acting twice.
pub fn send_with_key(
    target: &Target,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> Result<(u16, Value), String> {
    crate::client::request_json(&target.server, &target.api_key()?, method, path, body, idempotency_key)
}

/// Prints an answer: the JSON with `--json`, else `table` of it; a refusal's problem goes to
/// stderr. Exit 0 on success, 1 on a refusal, 2 when the server could not be asked.
pub fn finish(
    command: &str,
    target: &Target,
    answer: Result<(u16, Value), String>,
    table: impl Fn(&Value) -> String,
) -> ExitCode {
    match answer {
        Ok((status, body)) if status < 300 => {
            if target.json {
                println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
            } else {
                print!("{}", table(&body));
            }
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            let code = body["code"].as_str().unwrap_or("error");
            let detail = body["detail"].as_str().unwrap_or_default();
            if target.json {
                println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
            }
            eprintln!("xiezhi {command}: {status} {code}: {detail}");
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("xiezhi {command}: {message}");
            ExitCode::from(2)
        }
    }
}

/// Rows as aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// A JSON value as a table cell: strings bare, lists joined, nothing as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn restriction_row(r: &Value) -> Vec<String> {
    ["id", "status", "credit_line_id", "user_id", "scope", "reason_codes", "imposed_at", "expires_at"]
        .iter()
        .map(|k| cell(&r[*k]))
        .collect()
}

const RESTRICTION_HEADER: &[&str] = &["ID", "STATUS", "CREDIT LINE", "USER", "SCOPE", "REASONS", "IMPOSED", "EXPIRES"];

fn restrictions_table(page: &Value) -> String {
    let rows: Vec<Vec<String>> =
        page["restrictions"].as_array().map(|a| a.iter().map(restriction_row).collect()).unwrap_or_default();
    crate::client::with_next_cursor(table(RESTRICTION_HEADER, &rows), page)
}

fn lifted_table(r: &Value) -> String {
    let mut out = table(RESTRICTION_HEADER, &[restriction_row(r)]);
    if let Some(last) = r["history"].as_array().and_then(|h| h.last()) {
        out.push_str(&format!("lifted at {} by {}: {}\n", cell(&last["at"]), cell(&last["by"]), cell(&last["reason"])));
    }
    out
}

pub fn run(command: RestrictionsCommand) -> ExitCode {
    match command {
        RestrictionsCommand::List { status, credit_line_id, user_id, cursor, limit, target } => {
            let query = query_string(&[
                ("status", status),
                ("credit_line_id", credit_line_id),
                ("user_id", user_id),
                ("cursor", cursor),
                ("limit", limit.map(|l| l.to_string())),
            ]);
            let answer = send(&target, reqwest::Method::GET, &format!("/v1/restrictions{query}"), None);
            finish("restrictions list", &target, answer, restrictions_table)
        }
        RestrictionsCommand::Lift { id, reason, target } => {
            let path = format!("/v1/restrictions/{}/lift", query_path(&id));
            let answer = send(&target, reqwest::Method::POST, &path, Some(json!({ "reason": reason })));
            finish("restrictions lift", &target, answer, lifted_table)
        }
    }
}

/// An id as one path segment: anything that is not an id character is percent-encoded, so
/// an id cannot reach another route.
pub fn query_path(id: &str) -> String {
    query_string(&[("x", Some(id.to_owned()))]).trim_start_matches("?x=").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_path_segments_are_encoded() {
        assert_eq!(query_string(&[("a", None)]), "");
        assert_eq!(
            query_string(&[("status", Some("active".into())), ("x", None), ("u", Some("a b/&".into()))]),
            "?status=active&u=a%20b%2F%26"
        );
        assert_eq!(query_path("rs_1/../x"), "rs_1%2F..%2Fx");
    }

    #[test]
    fn tables_align_and_show_nothing_as_a_dash() {
        let out = table(&["A", "LONGER"], &[vec!["xyz".into(), cell(&Value::Null)]]);
        assert_eq!(out, "A    LONGER\nxyz  -\n");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
    }
}
