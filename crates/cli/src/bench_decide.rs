//! `xiezhi bench decide`: the risk engine alone, in process, on one thread — with a large
//! live rule set and velocity state for many users, as the targets name them.

use std::sync::Arc;
use std::time::Instant;
use xiezhi_money::Currency;
use xiezhi_risk::rules::cel_interpreter::InterpretedRules;
use xiezhi_risk::rules::{RuleSet, RuleSetDefinition};
use xiezhi_risk::velocity::Attempt;
use xiezhi_risk::{Engine, FeatureVector, Outcome, PaymentFacts, UserProfile};

pub struct DecideArgs {
    pub users: usize,
    pub rules: usize,
    pub decisions: usize,
    pub merchants: usize,
    pub interpreter: String,
    pub seed: u64,
    /// `shipped` (the default, what `serve` decides with), `heuristic`, or a model directory.
    pub fraud_model: Option<std::path::PathBuf>,
}

/// Resident memory of this process, in bytes (Linux).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// The shipped rules plus generated variants of realistic shapes, all live, up to `count`.
fn rule_set(count: usize) -> RuleSetDefinition {
    let mut definition: RuleSetDefinition =
        serde_json::from_str(xiezhi_risk::default_rules()).expect("the shipped rules parse");
    let templates = [
        ("user_count_1h >= {t} && amount_minor >= {a}", "velocity_burst"),
        ("amount_vs_user_avg_pct >= {p}00 && user_payments_total >= 5", "amount_unusual"),
        ("device_first_seen && amount_minor >= {a}", "new_device_high_amount"),
        ("merchant_round_amount_pct_24h >= {p} && merchant_payments_24h >= {t}0", "merchant_cash_out_pattern"),
        ("ip_first_seen && network_changed && amount_minor >= {a}", "ip_changed"),
        ("mcc in ['5411', '5812', '5999', '4121', '5311'] && amount_minor > {a}", "amount_unusual"),
        ("user_distinct_merchants_24h >= {t} && !device_trusted", "velocity_burst"),
        ("fraud_score >= {p}0 && amount_minor >= {a}", "fraud_score_elevated"),
        ("(user_sum_24h_minor + amount_minor) * 100 >= limit_minor * {p}", "spend_velocity"),
        ("merchant_country != 'CN' && amount_minor >= {a} && kyc_level < 3", "amount_unusual"),
    ];
    let mut i = 0;
    while definition.rules.len() < count {
        let (template, code) = templates[i % templates.len()];
        let n = i / templates.len();
        let expression = template
            .replace("{t}", &(5 + n % 20).to_string())
            .replace("{a}", &(200_000 + 10_000 * (n as i64 % 50)).to_string())
            .replace("{p}", &(80 + n % 20).to_string());
        let rule = serde_json::json!({
            "id": format!("bench_{i:03}"), "version": 1, "expression": expression,
            "effect": {"score": 5}, "reason_code": code, "mode": "live",
        });
        definition.rules.push(serde_json::from_value(rule).expect("rule"));
        i += 1;
    }
    for rule in &mut definition.rules {
        rule.mode = xiezhi_risk::rules::RuleMode::Live;
    }
    definition.rules.truncate(count);
    definition.version = format!("bench-{count}");
    definition
}

fn facts(rng: &mut fastrand::Rng, users: usize, merchants: usize, now_ms: i64, cny: Currency) -> PaymentFacts {
    let user = rng.usize(..users);
    let merchant = rng.usize(..merchants);
    // Amounts: mostly everyday (5–300 CNY), some larger.
    let amount_minor = if rng.u8(..100) < 90 { rng.i64(500..30_000) } else { rng.i64(30_000..800_000) };
    let roaming = rng.u8(..100) < 10;
    PaymentFacts {
        payment_id: format!("pay_{now_ms:x}{:08x}", rng.u32(..)),
        user_id: format!("user-{user}"),
        credit_line_id: format!("cl-{user}"),
        amount_minor,
        currency: cny,
        merchant_id: format!("mch-{merchant}"),
        mcc: ["5411", "5812", "5999", "4121", "5311", "5732"][merchant % 6].into(),
        merchant_country: "CN".into(),
        merchant_created_at_ms: now_ms - 400 * 86_400_000,
        device_id: Some(if rng.u8(..100) < 3 { format!("new-{}", rng.u32(..)) } else { format!("dev-{user}") }),
        ip: Some(std::net::IpAddr::V4(if roaming {
            std::net::Ipv4Addr::from(rng.u32(..))
        } else {
            std::net::Ipv4Addr::from(0x0A00_0000 | ((user as u32 & 0xFFFF) << 8) | 7)
        })),
        network: Some(if roaming { "4g" } else { "wifi" }.into()),
        available_minor: 2_000_000,
        limit_minor: 2_000_000,
        line_opened_at_ms: now_ms - 200 * 86_400_000,
        profile: UserProfile { birth_date: Some("1990-01-01".into()), kyc_level: 2, region: "CN-SH".into() },
        restriction: None,
        now_ms,
    }
}

pub fn decide(args: DecideArgs) -> Result<(), String> {
    let cny = Currency::from_alpha("CNY").expect("CNY");
    let mut engine = Engine::with_defaults();
    engine.set_scorer(crate::model_cmd::scorer_named(args.fraud_model.as_deref())?);
    let rules = RuleSet::compile(rule_set(args.rules), engine.catalogue()).map_err(|e| e.to_string())?;
    engine.set_rules(Arc::new(rules));
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let start_ms: i64 = 1_795_000_000_000;

    // Velocity state: every user has paid three times in the last day, on their own device
    // and home network, so each holds events, a device, a network and merchants.
    let rss_before = rss_bytes();
    let fill_started = Instant::now();
    engine.state_mut().reserve_users(args.users);
    let policy = engine.velocity_policy(start_ms);
    for user in 0..args.users {
        let user_id = format!("user-{user}");
        let device = format!("dev-{user}");
        for k in 0..3 {
            let merchant = format!("mch-{}", rng.usize(..args.merchants));
            let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000 | ((user as u32 & 0xFFFF) << 8) | 7));
            let attempt = Attempt {
                user_id: &user_id,
                device_id: Some(&device),
                ip: Some(ip),
                network: Some("wifi"),
                merchant_id: &merchant,
                amount_minor: rng.i64(500..30_000),
                tiny: false,
                round: false,
                new_line: false,
                now_ms: start_ms - 20 * 3_600_000 + k * 3_600_000 + rng.i64(0..3_000_000),
            };
            engine.state_mut().record(&attempt, Outcome::Approve, false, &policy);
        }
    }
    let fill_s = fill_started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();

    let interpreted = (args.interpreter == "cel").then(|| InterpretedRules::new(engine.rules()));
    let mut latencies_ns: Vec<u64> = Vec::with_capacity(args.decisions);
    let mut outcomes = [0usize; 4];
    // Warm-up: caches and branch predictors, not measured.
    for i in 0..(args.decisions / 20).min(10_000) {
        let f = facts(&mut rng, args.users, args.merchants, start_ms + i as i64, cny);
        engine.evaluate(f);
    }
    let started = Instant::now();
    for i in 0..args.decisions {
        let now_ms = start_ms + (i as i64) * 5;
        let f = facts(&mut rng, args.users, args.merchants, now_ms, cny);
        let t = Instant::now();
        let outcome = match &interpreted {
            None => engine.decide(f).outcome,
            Some(cel) => {
                // Same features, rules run by the interpreter instead: the rule cost alone.
                let mut features = FeatureVector::new();
                engine.fill_features(&f, &mut features);
                let fired = cel.evaluate(&features).iter().filter(|r| **r == Some(true)).count();
                if fired > 0 {
                    Outcome::StepUp
                } else {
                    Outcome::Approve
                }
            }
        };
        latencies_ns.push(t.elapsed().as_nanos() as u64);
        outcomes[outcome as usize] += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_ns.sort_unstable();
    let n = latencies_ns.len();
    let pct = |p: f64| latencies_ns[((n as f64 - 1.0) * p) as usize] as f64 / 1_000.0;
    let report = serde_json::json!({
        "benchmark": "risk_decisions_single_thread",
        "interpreter": if interpreted.is_some() { "cel crate interpreter (rules only; no record)" } else { "compiled (full decision and record)" },
        "live_rules": engine.rules().rules.len(),
        "scorer": engine.versions().scorer,
        "users_with_velocity_state": engine.state().user_count(),
        "velocity_fill_s": format!("{fill_s:.1}"),
        "velocity_state_rss_mib": format!("{:.1}", (rss_after.saturating_sub(rss_before)) as f64 / 1_048_576.0),
        "velocity_state_bytes_per_user": (rss_after.saturating_sub(rss_before)) / args.users.max(1) as u64,
        "decisions": n,
        "decisions_per_s": (n as f64 / elapsed).round(),
        "latency_us_p50": pct(0.50),
        "latency_us_p99": pct(0.99),
        "latency_us_p999": pct(0.999),
        "latency_us_max": latencies_ns[n - 1] as f64 / 1_000.0,
        "outcomes": {"approve": outcomes[0], "step_up": outcomes[1], "decline": outcomes[2], "restrict": outcomes[3]},
        "process_rss_mib": format!("{:.1}", rss_bytes() as f64 / 1_048_576.0),
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    Ok(())
}
