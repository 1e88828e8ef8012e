//! `xiezhi keys create|list|rotate|revoke`: API keys through a running server's
//! `/v1/api-keys` (the caller's key needs `keys:admin`). A new key is printed once, on
//! stdout, as the server returned it: store it then, it cannot be shown again.

use crate::client::ApiKeyArgs;
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key: prints it once, with its id and scopes.
    Create {
        #[arg(long)]
        name: String,
        /// operator, merchant or wallet.
        #[arg(long)]
        kind: String,
        /// A scope to grant (repeatable); default every scope the kind may hold.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The merchant a merchant key acts for.
        #[arg(long)]
        merchant_id: Option<String>,
        /// The wallet a wallet key acts for (the lines it opens belong to it).
        #[arg(long)]
        wallet_id: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Every key with its kind, scopes and state; never a key itself.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Make a successor with the same kind, scopes and binding; the old key stays valid for
    /// the overlap, so clients can switch without an outage.
    Rotate {
        id: String,
        /// Seconds the old key stays valid (default a day, at most 30 days).
        #[arg(long)]
        overlap_s: Option<i64>,
        #[command(flatten)]
        target: Target,
    },
    /// Stop a key at once.
    Revoke {
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(clap::Args)]
pub struct Target {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    #[command(flatten)]
    key: ApiKeyArgs,
}

pub fn run(command: KeysCommand) -> ExitCode {
    let (target, method, path, body) = match command {
        KeysCommand::Create { name, kind, scopes, merchant_id, wallet_id, target } => {
            let mut body = json!({ "name": name, "kind": kind });
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if let Some(id) = merchant_id {
                body["merchant_id"] = json!(id);
            }
            if let Some(id) = wallet_id {
                body["wallet_id"] = json!(id);
            }
            (target, reqwest::Method::POST, "/v1/api-keys".to_owned(), Some(body))
        }
        KeysCommand::List { target } => (target, reqwest::Method::GET, "/v1/api-keys".to_owned(), None),
        KeysCommand::Rotate { id, overlap_s, target } => {
            let body = overlap_s.map_or_else(|| json!({}), |s| json!({ "overlap_s": s }));
            (target, reqwest::Method::POST, format!("/v1/api-keys/{id}/rotate"), Some(body))
        }
        KeysCommand::Revoke { id, target } => (target, reqwest::Method::DELETE, format!("/v1/api-keys/{id}"), None),
    };
    match send(&target, method, &path, body) {
        Ok((status, body)) => {
            println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default());
            if status < 300 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("xiezhi keys: {message}");
            ExitCode::from(2)
        }
    }
}

fn send(target: &Target, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
    crate::client::request_json(&target.server, &target.key.key()?, method, path, body, None)
}
