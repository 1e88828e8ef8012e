//! What ships: the credit scorecard the service assesses applications with
//! (`crates/risk/models/credit-default`, compiled in) is exactly what
//! `xiezhi model train --dataset german_credit_application --kind scorecard` trains from the
//! public data, byte for byte, and reads no protected attribute. Without the data: the one
//! line naming `scripts/fetch-data`.

mod common;

use serde_json::Value;
use std::process::Command;

const SHIPPED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../risk/models/credit-default");

/// Regenerates the shipped scorecard and compares both files' hashes: a change to the
/// dataset loader, the scorecard's training or the data that moves the model fails here
/// until the model is regenerated (and docs/QUALITY.md re-measured with it).
#[test]
fn the_shipped_credit_model_is_what_its_command_trains() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("credit-default");
    let o = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["model", "train", "--dataset", "german_credit_application", "--kind", "scorecard", "--out"])
        .arg(&out)
        .output()
        .expect("run xiezhi model train");
    let stderr = String::from_utf8_lossy(&o.stderr);
    if stderr.contains("scripts/fetch-data") {
        // The data is not here: fail with the one line that says how to fetch it.
        panic!("{}", stderr.trim());
    }
    assert!(o.status.success(), "{stderr}");
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    common::assert_regenerates_shipped(&out, std::path::Path::new(SHIPPED_DIR), &["manifest.json", "model.json"], &format!("now {}; regenerate it with `cargo run --release -p xiezhi-cli -- model train --dataset german_credit_application --kind scorecard --out crates/risk/models/credit-default`", summary["version"]));
    let features: Vec<&str> = summary["features"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for protected in ["age_in_years", "personal_status_and_sex", "foreign_worker"] {
        assert!(!features.contains(&protected), "{protected} in {features:?}");
    }
    assert!(summary["test"]["roc_auc"].as_f64().unwrap() > 0.78, "{summary}");
}
