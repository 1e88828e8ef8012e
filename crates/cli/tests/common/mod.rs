//! Starting `xiezhi serve` for a test: a free port, its base URL, and a guard that kills it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The admin key every test server is bootstrapped with (`XIEZHI_BOOTSTRAP_ADMIN_KEY`).
pub const ADMIN_KEY: &str = "xz_cli_test_admin_key_0123456789abcdef01234567";

/// Headers that send `key`.
pub fn auth(key: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse().expect("visible ASCII"));
    headers
}

/// A client that sends the admin key with every request.
pub fn client() -> reqwest::Client {
    client_with(ADMIN_KEY)
}

/// A client that sends `key` with every request (a hung server fails the test, not stalls it).
pub fn client_with(key: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .default_headers(auth(key))
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("HTTP client")
}

/// Kills the server when dropped, so a failing assertion never leaves it running.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `xiezhi serve --listen 127.0.0.1:0 --data-dir DIR` with `extra` arguments. Returns
/// the server, its base URL and the rest of its stdout (keep it open while the server runs:
/// it prints there).
pub fn serve(data_dir: &Path, extra: &[&str]) -> (Server, String, BufReader<ChildStdout>) {
    serve_with(data_dir, extra, Some(ADMIN_KEY))
}

/// As [`serve`], with `bootstrap_key` as `XIEZHI_BOOTSTRAP_ADMIN_KEY` (unset when `None`).
pub fn serve_with(
    data_dir: &Path,
    extra: &[&str],
    bootstrap_key: Option<&str>,
) -> (Server, String, BufReader<ChildStdout>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xiezhi"));
    command.args(["serve", "--listen", "127.0.0.1:0"]).args(extra).arg("--data-dir").arg(data_dir);
    match bootstrap_key {
        Some(key) => command.env("XIEZHI_BOOTSTRAP_ADMIN_KEY", key),
        None => command.env_remove("XIEZHI_BOOTSTRAP_ADMIN_KEY"),
    };
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn xiezhi serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the listening line");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    (Server(child), base, stdout)
}

/// Fails unless every one of `files` in `regenerated` has exactly the bytes of the same file
/// in `shipped`: a shipped artefact is what its documented command produces. `regenerate`
/// says how to bring the shipped copy up to date.
pub fn assert_regenerates_shipped(regenerated: &Path, shipped: &Path, files: &[&str], regenerate: &str) {
    for file in files {
        let read =
            |dir: &Path| std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()));
        assert!(
            read(regenerated) == read(shipped),
            "{file}: {} is not what its command produces now; {regenerate} and re-measure docs/QUALITY.md",
            shipped.display()
        );
    }
}

/// Waits (up to 10 s) for the one-time code of `challenge_id` to reach the loopback phone
/// gateway at `messages_url` (`…/messages`), in whichever language the shopper reads.
pub async fn code_from_phone(messages_url: &str, phone_token: &str, challenge_id: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got: serde_json::Value = reqwest::Client::new()
            .get(messages_url)
            .bearer_auth(phone_token)
            .query(&[("challenge_id", challenge_id)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = &got["messages"][0]["text"];
        if let Some(code) = [&text["en"], &text["zh"]].iter().find_map(|t| t.as_str().and_then(xiezhi_core::code_in)) {
            return code;
        }
        assert!(std::time::Instant::now() < deadline, "no code reached the phone");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `xiezhi ARGS --server BASE` with the admin key in `XIEZHI_KEY` (and no `XIEZHI_API_KEY`
/// inherited from the environment).
pub fn xiezhi_as_admin(args: &[&str], base: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(args)
        .args(["--server", base])
        .env("XIEZHI_KEY", ADMIN_KEY)
        .env_remove("XIEZHI_API_KEY")
        .output()
        .expect("run xiezhi")
}

/// The standard output of a command that must have succeeded (both streams shown if not).
pub fn ok(output: &std::process::Output) -> String {
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    stdout.into_owned()
}
