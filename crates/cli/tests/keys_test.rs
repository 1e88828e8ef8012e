//! The first start makes an admin key and says where it is, never what it is; `xiezhi keys`
//! manages keys through the API with it.

mod common;

use serde_json::Value;
use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn keys(args: &[&str], key_file: &Path, base: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .arg("keys")
        .args(args)
        .args(["--server", base, "--api-key-file"])
        .arg(key_file)
        .env_remove("XIEZHI_API_KEY")
        .output()
        .expect("run xiezhi keys")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_writes_an_admin_key_and_keys_are_managed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (server, base, mut stdout) = common::serve_with(dir.path(), &[], None);
    let mut said = String::new();
    while !said.contains("admin key") {
        assert!(stdout.read_line(&mut said).unwrap() > 0, "the server stopped: {said}");
    }
    let key_file = dir.path().join("admin.key");
    assert!(said.contains(key_file.to_str().unwrap()), "the path is printed: {said}");
    let admin_key = std::fs::read_to_string(&key_file).unwrap().trim().to_owned();
    assert!(admin_key.starts_with("xz_") && admin_key.len() >= 3 + 32, "at least 128 bits");
    assert!(!said.contains(&admin_key), "the key is never printed");
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);

    let made =
        json(&keys(&["create", "--name", "reports", "--kind", "operator", "--scope", "stats:read"], &key_file, &base));
    let reports_key = made["key"].as_str().unwrap().to_owned();
    let reports = common::client_with(&reports_key);
    assert_eq!(reports.get(format!("{base}/v1/stats")).send().await.unwrap().status(), 200);
    assert_eq!(reports.get(format!("{base}/v1/rules")).send().await.unwrap().status(), 403);
    let listed = json(&keys(&["list"], &key_file, &base));
    let text = listed.to_string();
    assert!(!text.contains(&reports_key) && !text.contains(&admin_key), "a listing shows no key");
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 2, "{listed}");
    // Wrong requests exit 1 with the server's problem.
    let refused = keys(&["create", "--name", "m", "--kind", "merchant"], &key_file, &base);
    assert_eq!(refused.status.code(), Some(1));
    let id = made["id"].as_str().unwrap();
    let rotated = json(&keys(&["rotate", id, "--overlap-s", "0"], &key_file, &base));
    assert_eq!(reports.get(format!("{base}/v1/stats")).send().await.unwrap().status(), 401, "no overlap asked");
    let successor = common::client_with(rotated["key"].as_str().unwrap());
    assert_eq!(successor.get(format!("{base}/v1/stats")).send().await.unwrap().status(), 200);
    json(&keys(&["revoke", rotated["id"].as_str().unwrap()], &key_file, &base));
    assert_eq!(successor.get(format!("{base}/v1/stats")).send().await.unwrap().status(), 401);
    drop(server);

    // A restart keeps the keys and makes no new admin key.
    let (_server, base, _stdout) = common::serve_with(dir.path(), &[], None);
    let admin = common::client_with(&admin_key);
    assert_eq!(admin.get(format!("{base}/v1/api-keys")).send().await.unwrap().status(), 200);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), admin_key);
}
