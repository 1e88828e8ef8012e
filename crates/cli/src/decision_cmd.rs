//! `xiezhi decision explain ID`, `xiezhi decision replay ID` and `xiezhi rules check FILE`.

use clap::Subcommand;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use xiezhi_core::{LifecycleEvent, LifecycleKind};
use xiezhi_risk::{money, Catalogue, DecisionRecord, Policy, RuleSet};

#[derive(Subcommand)]
pub enum DecisionCommand {
    /// Print a payment's decision record for a person: outcome, reasons in zh and en, what
    /// happened after the decision (challenge, authorization, capture, void, refunds,
    /// appeals), the ways out, what each layer found, the score and the versions in force.
    Explain {
        /// The payment id.
        id: String,
        /// The server to ask.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Print the record as JSON instead (with its `lifecycle`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        key: crate::client::ApiKeyArgs,
    },
    /// Re-run a payment's decision from its recorded facts and features under the policy,
    /// rules and scorer in force now; says whether the outcome would change.
    Replay {
        id: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        key: crate::client::ApiKeyArgs,
    },
}

impl DecisionCommand {
    fn target(&self) -> (&str, &str, bool, &crate::client::ApiKeyArgs) {
        match self {
            DecisionCommand::Explain { id, server, json, key } | DecisionCommand::Replay { id, server, json, key } => {
                (id, server, *json, key)
            }
        }
    }
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Validate a rule set (and optionally a policy document) offline; exits 1 naming the
    /// first bad rule.
    Check {
        file: PathBuf,
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

pub fn run_rules(command: RulesCommand) -> ExitCode {
    let RulesCommand::Check { file, policy } = command;
    let catalogue = Catalogue::new();
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("xiezhi rules check: {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let rules = match RuleSet::from_json(&text, &catalogue) {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("xiezhi rules check: {}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    let live = rules.rules.iter().filter(|r| r.definition.mode == xiezhi_risk::rules::RuleMode::Live).count();
    println!(
        "{}: rule set {} is valid: {} rules ({live} live, {} shadow)",
        file.display(),
        rules.version,
        rules.rules.len(),
        rules.rules.len() - live
    );
    if let Some(path) = policy {
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| Policy::from_json(&t, &catalogue).map_err(|e| e.to_string()))
        {
            Ok(p) => println!("{}: policy {} is valid: {} clauses", path.display(), p.version(), p.clauses.len()),
            Err(e) => {
                eprintln!("xiezhi rules check: {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

pub fn run_decision(command: DecisionCommand) -> ExitCode {
    let replay = matches!(command, DecisionCommand::Replay { .. });
    let (id, server, json, key) = command.target();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let url =
        format!("{}/v1/payments/{id}/decision{}", server.trim_end_matches('/'), if replay { "/replay" } else { "" });
    let fetched: Result<(u16, Value), String> = runtime.block_on(async {
        let client = crate::client::client(&key.key()?, reqwest::Client::builder())?;
        let request = if replay { client.post(&url).json(&serde_json::json!({})) } else { client.get(&url) };
        let response = request.send().await.map_err(|e| format!("cannot reach {server}: {e}"))?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.map_err(|e| format!("unreadable answer from {url}: {e}"))?;
        Ok((status, body))
    });
    let (status, body) = match fetched {
        Ok(answer) => answer,
        Err(message) => {
            eprintln!("xiezhi decision explain: {message}");
            return ExitCode::from(2);
        }
    };
    if status != 200 {
        eprintln!(
            "xiezhi decision explain: {} ({})",
            body["detail"].as_str().unwrap_or("error"),
            body["code"].as_str().unwrap_or("?")
        );
        return ExitCode::from(1);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&body).expect("json"));
        return ExitCode::SUCCESS;
    }
    if replay {
        let line = |d: &Value| {
            format!(
                "{} [{}] under rules {}, policy {}",
                d["outcome"].as_str().unwrap_or("?"),
                d["reason_codes"]
                    .as_array()
                    .map(|c| c.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default(),
                d["versions"]["rules"].as_str().unwrap_or("?"),
                d["versions"]["policy"].as_str().unwrap_or("?"),
            )
        };
        println!("Payment {id}");
        println!("  decided:  {}", line(&body["stored"]));
        println!("  today:    {}", line(&body["replayed"]));
        println!(
            "  {}",
            if body["changed"] == true { "CHANGED: today's rules would decide differently" } else { "unchanged" }
        );
        return ExitCode::SUCCESS;
    }
    // What happened after the decision comes beside the record (a server before lifecycles
    // were kept sends none: nothing happened that it knows of).
    let lifecycle: Vec<LifecycleEvent> = serde_json::from_value(body["lifecycle"].clone()).unwrap_or_default();
    match serde_json::from_value::<DecisionRecord>(body) {
        Ok(record) => {
            print!("{}", explain(&record, &lifecycle));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xiezhi decision explain: the record does not match this version of xiezhi: {e}");
            ExitCode::from(1)
        }
    }
}

fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_else(|_| ms.to_string())
}

/// Only the time of day of an instant on the decision's day; the date too otherwise.
fn clock(ms: i64, decided_ms: i64) -> String {
    let (Ok(at), Ok(decided)) = (jiff::Timestamp::from_millisecond(ms), jiff::Timestamp::from_millisecond(decided_ms))
    else {
        return ms.to_string();
    };
    let same_day = at.strftime("%Y-%m-%d").to_string() == decided.strftime("%Y-%m-%d").to_string();
    at.strftime(if same_day { "%H:%M:%S" } else { "%Y-%m-%d %H:%M:%S" }).to_string()
}

/// The decision and what happened after it, on one line: "STEP_UP 10:01:00 → challenge
/// sent 10:01:00 → passed 10:01:30 → authorized 10:01:30 → captured 10:02:00 100.00 CNY".
pub fn lifecycle_line(r: &DecisionRecord, lifecycle: &[LifecycleEvent]) -> String {
    let f = &r.facts;
    let mut line = format!("{} {}", r.outcome.as_str().to_uppercase(), clock(f.now_ms, f.now_ms));
    for e in lifecycle {
        let what = match e.event {
            LifecycleKind::ChallengePassed => "passed".to_owned(),
            LifecycleKind::ChallengeFailed => "failed".to_owned(),
            LifecycleKind::Expired => "hold expired".to_owned(),
            other => other.as_str().replace('_', " "),
        };
        line.push_str(&format!(" → {what} {}", clock(e.at_ms, f.now_ms)));
        if let Some(amount) = e.amount_minor {
            let part = match e.full {
                Some(true) => " (full)",
                Some(false) => " (partial)",
                None => "",
            };
            line.push_str(&format!(" {}{part}", money(amount, f.currency)));
        }
        if let Some(appeal) = &e.appeal_id {
            line.push_str(&format!(" ({appeal})"));
        }
        if !e.reason_codes.is_empty() {
            line.push_str(&format!(" [{}]", e.reason_codes.join(", ")));
        }
    }
    line
}

/// The ways out, one a line, with their details.
fn ways_out(out: &mut String, r: &DecisionRecord) {
    use std::fmt::Write;
    let f = &r.facts;
    if !r.recovery.is_empty() {
        let _ = writeln!(out, "\nWays out:");
        for way in &r.recovery {
            let mut line = format!(
                "  - {}",
                serde_json::to_value(way.action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
            );
            if let Some(max) = way.max_amount_minor {
                let _ = write!(line, " (at most {}", money(max, f.currency));
                if let Some(basis) = &way.basis {
                    let _ = write!(line, ", from {basis}");
                }
                line.push(')');
            }
            if let Some(until) = way.until_ms {
                let _ = write!(line, " (after {})", when(until));
            }
            if let Some(deadline) = way.deadline_ms {
                let _ = write!(line, " (by {})", when(deadline));
            }
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The record as a person reads it, with what happened after the decision.
pub fn explain(r: &DecisionRecord, lifecycle: &[LifecycleEvent]) -> String {
    use std::fmt::Write;
    let f = &r.facts;
    let mut out = String::new();
    let _ = writeln!(out, "Payment {}  ({})", f.payment_id, when(f.now_ms));
    let _ = writeln!(
        out,
        "  {} at merchant {} (MCC {}, {}) on line {} of user {}",
        money(f.amount_minor, f.currency),
        f.merchant_id,
        f.mcc,
        f.merchant_country,
        f.credit_line_id,
        f.user_id
    );
    let _ = writeln!(
        out,
        "  device {}  ip {}  network {}",
        f.device_id.as_deref().unwrap_or("-"),
        f.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
        f.network.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        out,
        "\nOutcome: {}   reasons: {}",
        r.outcome.as_str().to_uppercase(),
        if r.reason_codes.is_empty() { "none".into() } else { r.reason_codes.join(", ") }
    );
    let _ = writeln!(out, "  en: {}", r.explanation.en);
    let _ = writeln!(out, "  zh: {}", r.explanation.zh);
    let _ = writeln!(out, "  lifecycle: {}", lifecycle_line(r, lifecycle));
    if let Some(expires) = r.expires_at_ms {
        let _ = writeln!(out, "  until: {}", when(expires));
    }
    ways_out(&mut out, r);
    for notice in &r.notices {
        let _ = writeln!(out, "\nNotice ({}): {}", notice.clause_id, notice.explanation.en);
    }
    let _ = writeln!(out, "\nWhat each layer found:");
    if r.signals.is_empty() {
        let _ = writeln!(out, "  nothing");
    }
    for s in &r.signals {
        let mode = format!("{:?}", s.mode).to_lowercase();
        let points = s.points.map(|p| format!(" {p:+} points")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<12} {:<28} {:<9} {:<10} from {}{points}",
            format!("{:?}", s.layer).to_lowercase(),
            s.reason_code,
            s.outcome.as_str(),
            mode,
            s.source
        );
    }
    let _ = writeln!(
        out,
        "\nFraud score {} / 1000 ({}@{}), risk points {}; top contributions:",
        r.score.value, r.score.scorer, r.score.version, r.risk_points
    );
    for c in r.score.contributions.iter().take(5) {
        let _ = writeln!(out, "  {:+5}  {}", c.points, c.feature);
    }
    let _ = writeln!(out, "\nKey features:");
    for name in [
        "user_count_1m",
        "user_count_1h",
        "user_sum_24h_minor",
        "user_distinct_merchants_1h",
        "amount_vs_user_avg_pct",
        "device_first_seen",
        "device_trusted",
        "ip_first_seen",
        "network_changed",
        "is_retry",
        "utilization_after_pct",
    ] {
        let _ = writeln!(out, "  {name:<28} {}", serde_json::to_string(&r.features[name]).unwrap_or_default());
    }
    let _ = writeln!(
        out,
        "\nRules evaluated: {}{}",
        r.rules_evaluated,
        if r.rule_errors.is_empty() { String::new() } else { format!(", errors: {}", r.rule_errors.len()) }
    );
    let _ = writeln!(
        out,
        "Versions: engine {}, policy {}, rules {}, scorer {}; decided in {} µs",
        r.versions.engine, r.versions.policy, r.versions.rules, r.versions.scorer, r.latency_us
    );
    out
}
