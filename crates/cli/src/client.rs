//! Talking to a running server: which API key to send, and an HTTP client that sends it.
//!
//! The key comes from `XIEZHI_KEY` (the name issue 14 gives the operators' commands), else
//! `XIEZHI_API_KEY`, else from `--api-key-file`, else from `./xiezhi-data/admin.key` (where `xiezhi serve` writes the bootstrap key). Never from a
//! flag's value: command lines are visible to every user of the machine (`ps`).

use clap::Args;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use std::path::PathBuf;

/// Where the bootstrap admin key is looked for when nothing else names one.
const DEFAULT_ADMIN_KEY_FILE: &str = "./xiezhi-data/admin.key";

#[derive(Args, Clone, Debug, Default)]
pub struct ApiKeyArgs {
    /// A file holding the API key to send (default: `XIEZHI_KEY`, else `XIEZHI_API_KEY`,
    /// else ./xiezhi-data/admin.key).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
}

impl ApiKeyArgs {
    pub fn key(&self) -> Result<String, String> {
        for name in ["XIEZHI_KEY", "XIEZHI_API_KEY"] {
            match std::env::var(name) {
                Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_owned()),
                _ => {}
            }
        }
        let path = self.api_key_file.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_ADMIN_KEY_FILE));
        let key = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "no API key: set XIEZHI_KEY (or XIEZHI_API_KEY) or --api-key-file (reading {}: {e}); `xiezhi serve` writes \
                 the first admin key to <data-dir>/admin.key",
                path.display()
            )
        })?;
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        Ok(key)
    }
}

/// Headers that authenticate every request with `key` (marked sensitive, so a debug print of
/// a request never shows it).
pub fn auth_headers(key: &str) -> Result<HeaderMap, String> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| "the API key is not visible ASCII".to_owned())?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    Ok(headers)
}

/// An HTTP client that sends `key` with every request.
pub fn client(key: &str, builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder.default_headers(auth_headers(key)?).build().map_err(|e| e.to_string())
}

/// One request from an operator's command to a running server, on a runtime of its own:
/// answers the status and the JSON body. With `idempotency_key`, a re-run of the same command
/// (a timeout, a dropped connection) gets the first answer instead of acting twice.
pub fn request_json(
    server: &str,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
    idempotency_key: Option<&str>,
) -> Result<(u16, serde_json::Value), String> {
    let client = client(key, reqwest::Client::builder())?;
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut request = client.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.map_err(|e| format!("cannot reach {server}: {e}"))?;
        let status = response.status().as_u16();
        let body =
            response.json::<serde_json::Value>().await.map_err(|e| format!("unreadable answer from {url}: {e}"))?;
        Ok((status, body))
    })
}

/// A page's table, then where the next page starts when there is one.
pub fn with_next_cursor(mut table: String, page: &serde_json::Value) -> String {
    if let Some(next) = page["next_cursor"].as_str() {
        table.push_str(&format!("more: --cursor {next}\n"));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `XIEZHI_KEY` (issue 14's name) wins over `XIEZHI_API_KEY`, which wins over the file;
    /// a blank variable counts as unset. (nextest runs each test in its own process, so the
    /// environment is this test's alone.)
    #[test]
    fn the_key_comes_from_xiezhi_key_then_xiezhi_api_key_then_the_file() {
        let dir = std::env::temp_dir().join(format!("xiezhi-client-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("admin.key");
        std::fs::write(&file, "key_from_file\n").unwrap();
        let args = ApiKeyArgs { api_key_file: Some(file) };
        std::env::set_var("XIEZHI_KEY", "key_a");
        std::env::set_var("XIEZHI_API_KEY", "key_b");
        assert_eq!(args.key().unwrap(), "key_a");
        std::env::set_var("XIEZHI_KEY", "  ");
        assert_eq!(args.key().unwrap(), "key_b");
        std::env::remove_var("XIEZHI_KEY");
        std::env::remove_var("XIEZHI_API_KEY");
        assert_eq!(args.key().unwrap(), "key_from_file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
