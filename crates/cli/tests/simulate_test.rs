//! `xiezhi simulate` as an operator runs it: in process with its baselines, against a
//! running server on a fast clock, and refusing bad input with one clear line.

mod common;

use serde_json::Value;
use std::process::Command;

const FRAUD_HEAVY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/mix/fraud-heavy.json");
const KEYS: [&str; 11] = [
    "honest_users_restricted_pct",
    "honest_payments_declined_pct",
    "honest_payments_stepped_up_pct",
    "fraud_payments_stopped_pct",
    "fraud_amount_stopped_pct",
    "fraud_loss_minor",
    "default_loss_minor",
    "approval_rate_pct",
    "decision_latency_us_p50",
    "decision_latency_us_p99",
    "payments",
];

fn xiezhi(args: &[&str]) -> std::process::Output {
    // `--target` runs send the test servers' admin key.
    Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(args)
        .env("XIEZHI_API_KEY", common::ADMIN_KEY)
        .output()
        .expect("run xiezhi")
}

#[test]
fn simulate_in_process_writes_the_report_with_its_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let markdown_path = dir.path().join("report.md");
    let out = xiezhi(&[
        "simulate",
        "--users",
        "600",
        "--merchants",
        "120",
        "--days",
        "3",
        "--warmup-days",
        "1",
        "--seed",
        "9",
        "--mix",
        FRAUD_HEAVY,
        "--report",
        report_path.to_str().unwrap(),
        "--markdown",
        markdown_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| figure | default | strict |"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&markdown_path).unwrap(), stdout);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["simulation"]["users"], 600);
    assert_eq!(report["simulation"]["seed"], 9);
    assert_eq!(report["simulation"]["mode"], "in_process");
    for block in [&report["overall"], &report["baselines"]["default"], &report["baselines"]["strict"]] {
        for key in KEYS {
            assert!(block.get(key).is_some(), "`{key}` missing: {block}");
        }
    }
    assert!(report["scenarios"]["routine"]["payments"].as_u64().unwrap() > 1_000, "{report}");
    assert_eq!(report["overall"], report["baselines"]["default"], "the main configuration is `default`");
}

#[test]
fn simulate_refuses_bad_input_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--users".into(), "5".into()], "--users"),
        (vec!["--baselines".into(), "lenient".into()], "unknown baseline `lenient`"),
        (vec!["--mix".into(), dir.path().join("missing.json").display().to_string()], "missing.json"),
        (
            vec!["--mix".into(), write(&dir, "typo.json", r#"{"honest": {"timeout_probability": 1}}"#)],
            "timeout_probability",
        ),
        (
            vec!["--rules".into(), write(&dir, "rules.json", r#"{"version": "x", "rules": [{"id": "r"}]}"#)],
            "rules.json",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["simulate".to_owned(), "--days".into(), "1".into()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = xiezhi(&refs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert!(stderr.contains(expected), "{all:?}: `{expected}` not in {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn simulate_against_a_server_on_a_fast_clock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, base, mut stdout) =
        common::serve(&data, &["--clock-speed", "20000", "--phone-gateway", "127.0.0.1:0"]);
    // The second line names the phone gateway the shoppers read their codes from.
    let mut said = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut said).unwrap();
    let phone = said
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no phone gateway in {said:?}"))
        .trim_end_matches(';')
        .trim_end_matches("/messages")
        .to_owned();
    let token_file = data.join("phone-gateway.token");

    // Every adversary, and many client timeouts: re-sends with the same key go to the server.
    // Mules are refunded within the day, and so are many honest purchases, so that refunds
    // go to the server; a compromised terminal's payments are made with dynamic codes.
    let mut mix: Value = serde_json::from_str(&std::fs::read_to_string(FRAUD_HEAVY).unwrap()).unwrap();
    mix["honest"] = serde_json::json!({"timeout_prob": 0.1, "refund_prob": 0.6, "refund_after_days": [0, 0]});
    mix["adversaries"]["mule_refund_network"] = serde_json::json!({"networks_per_100k_users": 400,
        "mules": [3, 4], "refund_after_hours": [1, 2], "pay_after_refund_minutes": [5, 10]});
    mix["adversaries"]["compromised_terminal"] = serde_json::json!({"per_100k_users": 800, "hours": [8, 12]});
    let mix_path = write(&dir, "mix.json", &mix.to_string());
    let report_path = dir.path().join("report.json");
    let out = xiezhi(&[
        "simulate",
        "--users",
        "250",
        "--merchants",
        "60",
        "--days",
        "1",
        "--seed",
        "3",
        "--mix",
        &mix_path,
        "--target",
        &base,
        "--phone-gateway",
        &phone,
        "--phone-gateway-token-file",
        token_file.to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["simulation"]["mode"], "http");
    let overall = &report["overall"];
    for key in KEYS {
        assert!(overall.get(key).is_some(), "`{key}` missing: {overall}");
    }
    let payments = overall["payments"].as_u64().unwrap();
    assert!(payments > 300, "{overall}");
    assert!(overall["approval_rate_pct"].as_f64().unwrap() > 90.0, "{overall}");
    // Payments re-sent with their key after a timeout got the same answer from the server.
    assert!(overall["retries_with_same_key"].as_u64().unwrap() > 5, "{overall}");
    assert_eq!(overall["idempotent_replay_mismatches"], 0, "{overall}");
    // Latency over HTTP is the whole request: far above the engine's microseconds.
    assert!(overall["decision_latency_us_p50"].as_f64().unwrap() > 50.0, "{overall}");

    // The server saw every one of them, and its books balance.
    let stats: Value = serde_json::from_str(
        &reqwest::blocking_get(&format!("{base}/v1/stats")).unwrap_or_else(|e| panic!("stats: {e}")),
    )
    .unwrap();
    assert!(stats["payments"].as_u64().unwrap() >= payments, "{stats} vs {payments}");
    // Codes went out to the phone gateway, and stepped-up shoppers answered from it. (On a
    // clock 20,000x the wall a code lives 15 ms, so whether an answer beats the expiry is
    // down to the machine's load; a passed challenge with a code from the gateway is shown
    // deterministically by log_scan_test.)
    let metrics = reqwest::blocking_get(&format!("{base}/metrics")).unwrap();
    let counter = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.split_whitespace().last().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    };
    assert!(counter("xiezhi_messages_delivered_total") >= 1.0, "no code reached the phone gateway:\n{metrics}");
    let answered = counter("xiezhi_http_requests_total{method=\"POST\",route=\"/v1/challenges/{id}\"");
    assert!(answered >= 1.0, "no stepped-up shopper answered a challenge:\n{metrics}");
    let refunds = counter("xiezhi_http_requests_total{method=\"POST\",route=\"/v1/payments/{id}/refunds\"");
    assert!(refunds >= 1.0, "no refund reached the server:\n{metrics}");
    let codes = counter("xiezhi_http_requests_total{method=\"POST\",route=\"/v1/merchants/{id}/qr\"");
    assert!(codes >= 1.0, "no dynamic code was issued:\n{metrics}");
    drop(server);
    let check = xiezhi(&["store", "check", "--data-dir", dir.path().join("data").to_str().unwrap()]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

mod reqwest {
    /// A GET on a fresh runtime: the test itself is synchronous.
    pub fn blocking_get(url: &str) -> Result<String, String> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let client = super::common::client();
            client.get(url).send().await.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())
        })
    }
}

/// `--sweep N --sweep-seed S`: N mixes drawn from the ranges, each in the report with the
/// values drawn, and the worst and median across them; the same seed draws the same mixes.
#[test]
fn a_sweep_reports_every_mix_and_the_worst_and_median() {
    let dir = tempfile::tempdir().unwrap();
    let run = |seed: &str, name: &str| {
        let path = dir.path().join(name);
        let out = xiezhi(&[
            "simulate",
            "--users",
            "500",
            "--merchants",
            "100",
            "--days",
            "3",
            "--warmup-days",
            "1",
            "--mix",
            FRAUD_HEAVY,
            "--sweep",
            "3",
            "--sweep-seed",
            seed,
            "--report",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("## Sweep: 3 mixes"));
        serde_json::from_str::<Value>(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let report = run("5", "a.json");
    let sweep = &report["sweep"];
    let mixes = sweep["mixes"].as_array().unwrap();
    assert_eq!(mixes.len(), 3);
    assert_ne!(mixes[0]["parameters"], mixes[1]["parameters"], "each mix is drawn anew");
    let drain = &mixes[0]["parameters"]["adversaries.account_takeover.drain_share_pct"];
    assert!(drain.is_array(), "{}", mixes[0]["parameters"]);
    for figure in ["fraud_amount_stopped_pct", "honest_users_restricted_pct"] {
        // A mix of 500 shoppers may draw no attacker at all: it has no fraud figure.
        let values: Vec<f64> = mixes.iter().filter_map(|m| m["overall"][figure].as_f64()).collect();
        assert!(!values.is_empty(), "no mix has `{figure}`");
        let worst = sweep["worst"]["overall"][figure].as_f64().unwrap();
        let expected = if figure.starts_with("fraud") {
            values.iter().copied().fold(f64::MAX, f64::min)
        } else {
            values.iter().copied().fold(f64::MIN, f64::max)
        };
        assert!((worst - expected).abs() < 0.001, "{figure}: worst {worst} of {values:?}");
        assert!(sweep["median"]["overall"][figure].is_number());
    }
    assert_eq!(run("5", "b.json")["sweep"]["mixes"][2]["parameters"], mixes[2]["parameters"], "the seed repeats");
    assert_ne!(run("6", "c.json")["sweep"]["mixes"][0]["parameters"], mixes[0]["parameters"]);
}

/// `--challenger shipped` on the shipped champion: the report's two columns agree, and
/// the markdown shows them side by side.
#[test]
fn a_challenger_is_reported_beside_the_champion() {
    let out = xiezhi(&[
        "simulate",
        "--users",
        "400",
        "--merchants",
        "80",
        "--days",
        "2",
        "--warmup-days",
        "1",
        "--mix",
        FRAUD_HEAVY,
        "--baselines",
        "none",
        "--challenger",
        "shipped",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let watch = &report["challenger"];
    assert_eq!(watch["champion"], watch["challenger"], "{watch}");
    let champion = watch["champion_scorer"].as_str().unwrap();
    assert!(champion.starts_with("gbdt@gbdt-sim_traffic-"), "the shipped model decides: {watch}");
    assert_eq!(watch["challenger_scorer"].as_str(), Some(champion), "{watch}");
    let out = xiezhi(&[
        "simulate",
        "--users",
        "300",
        "--days",
        "1",
        "--merchants",
        "60",
        "--baselines",
        "none",
        "--challenger",
        "heuristic",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Champion and challenger"));
}

/// Over HTTP, simulated appeals go to the server's real endpoints: restricted shoppers file
/// (`POST /v1/appeals`), reviewers claim and decide with the driver's key, and the server
/// lifts the restriction and owes compensation on each overturn.
#[test]
fn simulated_appeals_reach_the_server_and_overturns_lift() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let strict = concat!(env!("CARGO_MANIFEST_DIR"), "/../sim/baselines/strict-rules.json");
    let (server, base, _stdout) = common::serve(&data, &["--clock-speed", "20000", "--rules", strict]);
    // Nobody lifts with a code (there is no phone gateway), everyone appeals within minutes,
    // and a team that never errs works around the clock.
    let mix = serde_json::json!({
        "version": "appeals-over-http",
        "honest": {"lift_restriction_prob": 0.0, "appeal_prob": 1.0, "appeal_after_minutes": [5, 10]},
        "adversaries": {"restricted_fraudster_appeal_prob": 0.0},
        "reviewers": {"count": 5, "working_hours": [0, 24], "weekends": true, "error_rate_pct": 0},
        "credit": {"applications": false, "compare_without": false}
    });
    let mix_path = write(&dir, "mix.json", &mix.to_string());
    let report_path = dir.path().join("report.json");
    let out = xiezhi(&[
        "simulate",
        "--users",
        "150",
        "--merchants",
        "40",
        "--days",
        "1",
        "--warmup-days",
        "0",
        "--seed",
        "5",
        "--mix",
        &mix_path,
        "--target",
        &base,
        "--report",
        report_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let overall = &report["overall"];
    let overturned = overall["appeals_overturned"].as_u64().unwrap();
    assert!(overturned > 0, "{overall}");
    assert_eq!(overall["appeals_upheld"], 0, "{overall}");
    assert_eq!(overall["honest_restricted_users_not_recovered"], 0, "{overall}");

    // The server holds them, decided as the simulation decided them.
    let admin = |path: &str| -> Value {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let r = common::client().get(format!("{base}{path}")).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        })
    };
    let page = admin("/v1/appeals?status=decided&limit=500");
    let decided = page["appeals"].as_array().unwrap();
    assert!(decided.len() as u64 >= overturned, "{page}");
    assert!(decided.iter().all(|a| a["outcome"] == "overturn" && a["compensation_due"] == true), "{page}");
    assert!(decided.iter().any(|a| a["lifted_restriction"] == true), "{page}");
    drop(server);
}
