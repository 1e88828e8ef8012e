//! `xiezhi model train|evaluate` as an operator runs them: JSON out, a versioned artefact,
//! and clear refusals (unknown dataset, a schema that does not match, a tampered file).

mod common;

use serde_json::{json, Value};
use std::process::Command;

fn xiezhi(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xiezhi")).args(args).output().expect("run xiezhi")
}

#[test]
fn train_then_evaluate_a_scorecard() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("german");
    let o = xiezhi(&[
        "model",
        "train",
        "--dataset",
        "german_credit",
        "--kind",
        "scorecard",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let version = summary["version"].as_str().unwrap().to_owned();
    assert!(version.starts_with("scorecard-german_credit-"), "{summary}");
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["training_data_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["content_sha256"].as_str().unwrap().len(), 64);
    assert!(manifest["features"].as_array().unwrap().len() >= 5);
    assert!(manifest["metrics"]["test"]["roc_auc"].as_f64().unwrap() > 0.75);

    // Deterministic: the same data gives the same model, byte for byte.
    let again = dir.path().join("again");
    assert!(xiezhi(&["model", "train", "--dataset", "german_credit", "--out", again.to_str().unwrap()])
        .status
        .success());
    assert_eq!(std::fs::read(out.join("model.json")).unwrap(), std::fs::read(again.join("model.json")).unwrap());

    let o = xiezhi(&["model", "evaluate", "--model", out.to_str().unwrap(), "--dataset", "german_credit", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["brier", "dataset", "ks", "pr_auc", "roc_auc", "rows_test"]);
    assert_eq!(m["dataset"], "german_credit");
    assert_eq!(m["rows_test"], 300);
    assert!(m["roc_auc"].as_f64().unwrap() >= 0.7838, "{m}");

    // One applicant, as an adverse-action notice reads: the costliest features, each a
    // catalogue reason code with zh and en text.
    let o = xiezhi(&[
        "model",
        "explain",
        "--model",
        out.to_str().unwrap(),
        "--dataset",
        "german_credit",
        "--row",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    let reasons = e["reasons"].as_array().unwrap();
    assert!(!reasons.is_empty() && reasons.len() <= 4, "{e}");
    let lost: Vec<f64> = reasons.iter().map(|r| r["points_lost"].as_f64().unwrap()).collect();
    assert!(lost.windows(2).all(|w| w[0] >= w[1]), "costliest first: {lost:?}");
    for r in reasons {
        assert!(r["reason_code"].as_str().unwrap().starts_with("credit_"), "{r}");
        assert!(
            !r["explanation"]["en"].as_str().unwrap().is_empty()
                && !r["explanation"]["zh"].as_str().unwrap().is_empty()
        );
    }
    assert!(e["score"].as_f64().unwrap() > 300.0 && e["score"].as_f64().unwrap() < 900.0, "{e}");
    let o =
        xiezhi(&["model", "explain", "--model", out.to_str().unwrap(), "--dataset", "german_credit", "--row", "300"]);
    assert_eq!(o.status.code(), Some(2), "row 300 is past the 300-row test split");

    // A limit from the policy's score bands and the declared income; a re-score proposal.
    let propose = |extra: &[&str]| -> Value {
        let mut args = vec![
            "model",
            "propose-limit",
            "--model",
            out.to_str().unwrap(),
            "--dataset",
            "german_credit",
            "--row",
            "0",
        ];
        args.extend_from_slice(extra);
        let o = xiezhi(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let opened = propose(&["--monthly-income", "12000.00"]);
    assert_eq!(opened["proposal"]["change"], "open", "{opened}");
    let limit = opened["proposal"]["limit"].as_str().unwrap().to_owned();
    let richer = propose(&["--monthly-income", "1000000.00"]);
    assert!(richer["proposal"]["limit"].as_str().unwrap().parse::<f64>().unwrap() >= limit.parse::<f64>().unwrap());
    assert_eq!(richer["proposal"]["bounded_by"], "band_max");
    let kept = propose(&["--monthly-income", "12000.00", "--current-limit", &limit]);
    assert_eq!(kept["proposal"]["change"], "keep", "{kept}");
    let raised = propose(&["--monthly-income", "12000.00", "--current-limit", "100.00"]);
    assert_eq!(raised["proposal"]["change"], "increase", "{raised}");
    let o = xiezhi(&[
        "model",
        "propose-limit",
        "--model",
        out.to_str().unwrap(),
        "--dataset",
        "german_credit",
        "--monthly-income",
        "-5",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--monthly-income"));

    // Another dataset's columns: refused, naming what is missing.
    let o = xiezhi(&["model", "evaluate", "--model", out.to_str().unwrap(), "--dataset", "modeldata_credit_data"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no column"), "{}", String::from_utf8_lossy(&o.stderr));

    // A model edited by hand is never served.
    let model = std::fs::read_to_string(out.join("model.json")).unwrap();
    std::fs::write(out.join("model.json"), model.replacen("\"points\": ", "\"points\": 1", 1)).unwrap();
    let o = xiezhi(&["model", "evaluate", "--model", out.to_str().unwrap(), "--dataset", "german_credit"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SHA-256"), "{}", String::from_utf8_lossy(&o.stderr));

    let o = xiezhi(&["model", "train", "--dataset", "nope", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("german_credit"));
}

#[test]
fn train_then_evaluate_boosted_trees() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gbdt");
    let o = xiezhi(&[
        "model",
        "train",
        "--dataset",
        "modeldata_credit_data",
        "--kind",
        "gbdt",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["version"].as_str().unwrap().starts_with("gbdt-modeldata_credit_data-"), "{summary}");
    let o = xiezhi(&[
        "model",
        "evaluate",
        "--model",
        out.to_str().unwrap(),
        "--dataset",
        "modeldata_credit_data",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["rows_test"], 1338);
    assert!(m["roc_auc"].as_f64().unwrap() >= 0.8334, "{m}");
    let o =
        xiezhi(&["model", "train", "--dataset", "german_credit", "--kind", "forest", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("scorecard, gbdt"));
}

#[test]
fn a_fraud_model_trained_on_simulated_traffic_scores_payments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mix = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/mix/fraud-heavy.json");
    // Labelled traffic: the engine's features for every payment, with the truth.
    let export = data.join("sim_traffic.csv");
    let o = xiezhi(&[
        "simulate",
        "--users",
        "1500",
        "--merchants",
        "300",
        "--days",
        "10",
        "--warmup-days",
        "2",
        "--seed",
        "5",
        "--mix",
        mix,
        "--export-features",
        export.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let header = std::fs::read_to_string(&export).unwrap().lines().next().unwrap().to_owned();
    assert!(header.starts_with("amount_minor,currency,mcc") && header.ends_with(",fraud"), "{header}");
    assert!(!header.contains("fraud_score"), "the score is the model's output, not its input");

    let model = dir.path().join("fraud-gbdt");
    let o = xiezhi(&[
        "model",
        "train",
        "--dataset",
        "sim_traffic",
        "--kind",
        "gbdt",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(summary["test"]["recall_at_1pct_fpr"].as_f64().is_some(), "{summary}");

    // The model as the engine's scorer, on another population.
    let report = dir.path().join("report.json");
    let o = xiezhi(&[
        "simulate",
        "--users",
        "1500",
        "--merchants",
        "300",
        "--days",
        "5",
        "--warmup-days",
        "2",
        "--seed",
        "6",
        "--mix",
        mix,
        "--fraud-model",
        model.to_str().unwrap(),
        "--baselines",
        "default",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["simulation"]["configuration"], "custom");
    assert!(r["baselines"]["custom"]["fraud_payments_stopped_pct"].as_f64().unwrap() > 50.0, "{}", r["baselines"]);

    // Served: decisions name the model; `kill -HUP` swaps in a retrained one, and a broken
    // one is refused while the running model stays.
    let (server, base, _stdout) =
        common::serve(&dir.path().join("served"), &["--fraud-model", model.to_str().unwrap()]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = common::client();
    let post = |path: &str, body: Value| -> Value {
        runtime.block_on(async {
            client.post(format!("{base}{path}")).json(&body).send().await.unwrap().json().await.unwrap()
        })
    };
    let get = |path: &str| -> Value {
        runtime.block_on(async { client.get(format!("{base}{path}")).send().await.unwrap().json().await.unwrap() })
    };
    let merchant = post(
        "/v1/merchants",
        json!({"name": "Lotus", "city": "Shanghai", "country": "CN", "mcc": "5411", "currency": "CNY"}),
    );
    let line = post(
        "/v1/credit-lines",
        json!({"user_id": "u1", "currency": "CNY", "limit": "5000.00",
        "profile": {"birth_date": "1990-01-01", "kyc_level": 2, "region": "CN-SH"}}),
    );
    let pay = || -> String {
        let p = post(
            "/v1/payments",
            json!({"credit_line_id": line["id"], "qr_payload": merchant["qr_payload"], "amount": "12.00",
            "context": {"device_id": "phone-1", "ip": "10.1.2.3", "network": "wifi"}}),
        );
        let d = get(&format!("/v1/payments/{}/decision", p["id"].as_str().unwrap()));
        d["versions"]["scorer"].as_str().unwrap().to_owned()
    };
    let first = summary["version"].as_str().unwrap().to_owned();
    assert_eq!(pay(), format!("gbdt@{first}"));
    let retrained = dir.path().join("fraud-gbdt-2");
    let o = xiezhi(&[
        "model",
        "train",
        "--dataset",
        "sim_traffic",
        "--kind",
        "gbdt",
        "--seed",
        "2",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        retrained.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let second: Value = serde_json::from_slice(&o.stdout).unwrap();
    let second = second["version"].as_str().unwrap().to_owned();
    for file in ["manifest.json", "model.json"] {
        std::fs::copy(retrained.join(file), model.join(file)).unwrap();
    }
    let hup = |server: &common::Server| {
        assert!(Command::new("kill").args(["-HUP", &server.0.id().to_string()]).status().unwrap().success());
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    hup(&server);
    assert_ne!(second, first, "another seed, another model");
    assert_eq!(pay(), format!("gbdt@{second}"), "the reloaded model scores the next payment");
    std::fs::write(model.join("model.json"), "{}").unwrap();
    hup(&server);
    assert_eq!(pay(), format!("gbdt@{second}"), "a broken model leaves the running one");
    drop(server);

    // A credit model is not a fraud scorer: refused at start, naming why.
    let credit = dir.path().join("credit");
    assert!(xiezhi(&[
        "model",
        "train",
        "--dataset",
        "german_credit",
        "--kind",
        "gbdt",
        "--out",
        credit.to_str().unwrap()
    ])
    .status
    .success());
    let o = xiezhi(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("store").to_str().unwrap(),
        "--fraud-model",
        credit.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("is not an engine feature"), "{stderr}");
}
