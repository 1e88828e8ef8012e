//! The yardstick on a small population (seconds): the default configuration stays within
//! bounds recorded in docs/QUALITY.md, the blunt baseline is measurably worse for honest
//! users, runs reproduce, and the ledger behind them balances.

use serde_json::Value;
use xiezhi_sim::{run_in_process, run_with, Bank, EngineConfig, Mix, RunConfig, KEY_FIGURES};

/// Adversaries far more common than in the shipped mix, so that a small population still
/// meets every one of them.
const FRAUD_HEAVY: &str = include_str!("../mix/fraud-heavy.json");

fn small(users: u32, days: u32) -> RunConfig {
    RunConfig {
        users,
        merchants: users / 5,
        days,
        seed: 42,
        warmup_days: 3,
        mix: Mix::with_overrides(FRAUD_HEAVY).unwrap(),
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

#[test]
fn a_small_population_stays_within_the_recorded_bounds() {
    let config = small(2_000, 14);
    let runs = run_in_process(&config, &[EngineConfig::shipped(), EngineConfig::strict()], &|_, _, _| {}).unwrap();
    let report = xiezhi_sim::report(&config, &runs);

    // The contract: every key in every block.
    for block in [&report["overall"], &report["baselines"]["default"], &report["baselines"]["strict"]] {
        for key in KEY_FIGURES {
            assert!(block.get(key).is_some(), "`{key}` missing from {block}");
        }
    }
    for scenario in [
        "routine",
        "market_stroll",
        "weekend_mall",
        "account_takeover",
        "card_testing",
        "collusion_cash_out",
        "synthetic_identity",
        "first_party_default",
        "compromised_qr",
    ] {
        let s = &report["scenarios"][scenario];
        assert!(num(s, "payments") > 0.0, "no `{scenario}` payments: the population lost a behaviour");
        for key in KEY_FIGURES {
            assert!(s.get(key).is_some(), "`{key}` missing from scenario {scenario}");
        }
    }

    let d = &report["overall"];
    let payments = num(d, "payments");
    assert!(payments > 50_000.0, "{payments} payments: the population shrank");
    // Bounds at about twice (for harm) or nine tenths (for protection) of the figures
    // recorded in docs/QUALITY.md for this population (seed 42) under the shipped
    // configuration (default-3 rules, the shipped fraud model): 1 honest user restricted (a
    // takeover victim whose own payment met the failures the thief left on the line), 0.002 %
    // of honest payments declined, 0.065 % stepped up, 96.5 % of fraud payments and 94.0 % of
    // fraud amount stopped. A change that doubles the harm fails here. Since the credit layer
    // (issue 13 item 5, the fraud model regenerated on its traffic): 1 restricted, 0.015 %
    // declined (at the bound, which was not loosened), 0.065 % stepped up, 95.8 % and 96.4 %
    // stopped. With default-4 (the payee check live) and the model regenerated on its
    // traffic: 1, 0.015 %, 0.063 %, 96.1 % and 96.5 %. Since shops and lines are aged from
    // the first simulated day, warm-up included (no shop "two days old" with a week of
    // takings) and simulated appeals (a restricted owner who does not lift with the code
    // appeals): 1, 0.013 %, 0.050 %, 95.8 % and 96.2 %.
    assert!(num(d, "honest_users_restricted") <= 2.0, "{d}");
    assert!(num(d, "honest_payments_declined_pct") <= 0.015, "{d}");
    assert!(num(d, "honest_payments_stepped_up_pct") <= 0.15, "{d}");
    assert!(num(d, "fraud_amount_stopped_pct") >= 84.5, "{d}");
    assert!(num(d, "fraud_payments_stopped_pct") >= 86.5, "{d}");
    assert!(num(d, "approval_rate_pct") >= 99.0, "{d}");
    assert!(num(d, "decision_latency_us_p99") > 0.0, "{d}");
    assert!(num(d, "retries_with_same_key") > 0.0, "{d}");
    assert_eq!(d["idempotent_replay_mismatches"], 0, "a re-sent payment was answered differently");
    let ato = &report["scenarios"]["account_takeover"];
    assert!(num(ato, "fraud_amount_stopped_pct") >= 95.0, "account takeover: {ato}");
    let ring = &report["scenarios"]["collusion_cash_out"];
    assert!(num(ring, "fraud_amount_stopped_pct") >= 80.0, "cash-out rings: {ring}");
    // 73.6 % recorded: the bust-out's first large payment looks like an honest large purchase
    // on a young line, which default-2 declined (3 % of honest ones) and default-3 does not.
    // 86.1 % since the credit layer (small lines for the low bands, and their young lines'
    // cap at new merchants).
    let bust_out = &report["scenarios"]["synthetic_identity"];
    assert!(num(bust_out, "fraud_amount_stopped_pct") >= 66.0, "synthetic identities: {bust_out}");

    // The blunt baseline: far more honest users hurt, which the default must beat by far.
    let strict = &report["baselines"]["strict"];
    assert!(num(strict, "honest_users_restricted_pct") >= 50.0, "{strict}");
    assert!(num(d, "honest_users_restricted_pct") * 20.0 < num(strict, "honest_users_restricted_pct"));
    assert_eq!(report["simulation"]["mix"], "mix-1-fraud-heavy");
    assert!(num(d, "honest_payments_declined_pct") * 20.0 < num(strict, "honest_payments_declined_pct"));
}

#[test]
fn a_run_reproduces_from_its_seed() {
    let config = small(400, 4);
    let strip = |mut v: Value| {
        v["simulation"]["performance"] = Value::Null;
        for path in [&["overall"][..], &["baselines", "default"][..]] {
            let block = path.iter().fold(&mut v, |v, k| &mut v[*k]);
            block["decision_latency_us_p50"] = Value::Null;
            block["decision_latency_us_p99"] = Value::Null;
        }
        if let Some(scenarios) = v["scenarios"].as_object_mut() {
            for s in scenarios.values_mut() {
                s["decision_latency_us_p50"] = Value::Null;
                s["decision_latency_us_p99"] = Value::Null;
            }
        }
        v
    };
    let a = run_in_process(&config, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap();
    let b = run_in_process(&config, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap();
    let (a, b) = (strip(xiezhi_sim::report(&config, &a)), strip(xiezhi_sim::report(&config, &b)));
    assert_eq!(a, b);
    let mut other = config.clone();
    other.seed += 1;
    let c =
        strip(xiezhi_sim::report(&other, &run_in_process(&other, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap()));
    assert_ne!(a["overall"]["payments"], c["overall"]["payments"], "another seed, another population");
}

#[test]
fn the_ledger_behind_a_run_balances_and_no_line_goes_below_zero() {
    let config = small(500, 6);
    let currency = xiezhi_money::Currency::from_alpha("CNY").unwrap();
    let mut bank = Bank::new(&EngineConfig::shipped(), currency).unwrap();
    let run = run_with(&config, "default", &mut bank, &mut |_, _| {}).unwrap();
    assert!(run.executed_payments > 5_000);
    let ledger = bank.ledger();
    assert_eq!(ledger.trial_balance(), (0, 0), "every book sums to zero");
    let mut drawn = 0;
    for line in ledger.credit_lines() {
        assert!(line.available_minor() >= 0, "{line:?}");
        assert!(line.held_minor() >= 0 && line.receivable_minor() >= 0, "{line:?}");
        drawn += line.drawn_minor();
    }
    assert!(drawn > 0, "shoppers spent something");
}

#[test]
fn bad_configurations_are_refused() {
    let mut config = small(400, 4);
    config.users = 5;
    assert!(xiezhi_sim::Simulation::new(&config).is_err());
    let mut config = small(400, 4);
    config.days = 0;
    assert!(xiezhi_sim::Simulation::new(&config).is_err());
    let bad_rules = EngineConfig {
        name: "bad".into(),
        rules_json: Some("{\"rules\": 3}".into()),
        policy_json: None,
        scorer: None,
        challenger: None,
    };
    assert!(run_in_process(&small(400, 1), &[bad_rules], &|_, _, _| {}).is_err());
}

/// Scores every payment as surely fraud.
struct Paranoid;

impl xiezhi_risk::Scorer for Paranoid {
    fn name(&self) -> &str {
        "paranoid"
    }
    fn version(&self) -> &str {
        "1"
    }
    fn features(&self) -> &[xiezhi_risk::Feature] {
        &[]
    }
    fn score(&self, _: &xiezhi_risk::FeatureVector) -> Result<xiezhi_risk::Score, xiezhi_risk::ScoreError> {
        Ok(xiezhi_risk::Score { scorer: "paranoid".into(), version: "1".into(), value: 1000, contributions: vec![] })
    }
}

/// Champion and challenger on the same payments: a challenger identical to the champion
/// agrees with it figure for figure; a paranoid one stops more fraud and bothers more honest
/// shoppers; and watching changes nothing the champion decides.
#[test]
fn a_challenger_is_measured_on_the_champions_payments() {
    let config = small(800, 5);
    let alone = run_in_process(&config, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap();
    let twin = EngineConfig { challenger: Some(xiezhi_risk::shipped_scorer()), ..EngineConfig::shipped() };
    let paranoid = EngineConfig {
        name: "watched".into(),
        challenger: Some(std::sync::Arc::new(Paranoid)),
        ..EngineConfig::shipped()
    };
    let runs = run_in_process(&config, &[twin, paranoid], &|_, _, _| {}).unwrap();
    let alone = xiezhi_sim::report(&config, &alone);
    let twin = xiezhi_sim::report(&config, &runs[..1]);
    let watched = xiezhi_sim::report(&config, &runs[1..]);
    assert!(alone.get("challenger").is_none());
    // Everything but the time it took (watching costs a second evaluation).
    let decided = |report: &Value| {
        let mut overall = report["overall"].clone();
        let block = overall.as_object_mut().unwrap();
        block.retain(|key, _| !key.starts_with("decision_latency"));
        overall
    };
    assert_eq!(decided(&twin), decided(&alone), "watching changes nothing the champion decides");
    assert_eq!(twin["challenger"]["champion"], twin["challenger"]["challenger"], "a twin agrees");
    let (champion, challenger) = (&watched["challenger"]["champion"], &watched["challenger"]["challenger"]);
    assert!(num(challenger, "fraud_amount_stopped_pct") >= num(champion, "fraud_amount_stopped_pct"), "{watched}");
    let bothered =
        |side: &Value| num(side, "honest_payments_declined_pct") + num(side, "honest_payments_stepped_up_pct");
    assert!(bothered(challenger) > 50.0 && bothered(champion) < 10.0, "{}", watched["challenger"]);
    assert_eq!(decided(&watched), decided(&alone));
}

/// A takeover after a SIM swap: the thief receives the codes and passes the step-ups, so
/// under the heuristic scorer (which mostly steps takeovers up) they get through where a
/// thief without the phone number is stopped; the shipped model declines what it scores
/// surely fraud, so device, behaviour and amount stop the SIM-swap thief too.
#[test]
fn a_sim_swap_thief_passes_the_step_ups_a_plain_thief_fails() {
    let mut config = small(2_000, 7);
    let over =
        r#"{"adversaries": {"account_takeover": {"per_10k_users": 60}, "sim_swap_takeover": {"per_10k_users": 60}}}"#;
    config.mix = Mix::with_overrides(over).unwrap();
    let runs = run_in_process(&config, &[EngineConfig::heuristic(), EngineConfig::shipped()], &|_, _, _| {}).unwrap();
    let heuristic = xiezhi_sim::report(&config, &runs[..1]);
    let (plain, swapped) = (&heuristic["scenarios"]["account_takeover"], &heuristic["scenarios"]["sim_swap_takeover"]);
    assert!(num(swapped, "payments") > 0.0, "no SIM-swap payments: {}", heuristic["scenarios"]);
    assert!(
        num(swapped, "fraud_amount_stopped_pct") < num(plain, "fraud_amount_stopped_pct"),
        "the code protects against a plain thief, not one holding the number: {plain} vs {swapped}"
    );
    let shipped = xiezhi_sim::report(&config, &runs[1..]);
    let swapped = &shipped["scenarios"]["sim_swap_takeover"];
    assert!(num(swapped, "fraud_amount_stopped_pct") >= 95.0, "the shipped model: {swapped}");
}

/// A prober learning the step-up amount is met as an adversary of its own: its payments are
/// counted in its scenario, and most of its amount is stopped (the engine does not gate on
/// the amount alone: a new device on a proxy network is stepped up at small amounts too).
/// About 90 % is stopped here; shops' refunds of returns give some victims more credit to
/// probe for, hence the bound's margin.
#[test]
fn a_step_up_prober_is_its_own_scenario() {
    let mut config = small(2_000, 7);
    config.mix = Mix::with_overrides(r#"{"adversaries": {"step_up_prober": {"per_10k_users": 60}}}"#).unwrap();
    let runs = run_in_process(&config, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap();
    let report = xiezhi_sim::report(&config, &runs);
    let prober = &report["scenarios"]["step_up_prober"];
    assert!(num(prober, "payments") >= 24.0, "{prober}");
    assert!(num(prober, "fraud_amount_stopped_pct") >= 85.0, "{prober}");
}

/// A ring spread across several colluding shops still runs whole (every member pays), and a
/// mix that names one shop per ring draws exactly what a mix without the parameter did.
#[test]
fn rings_spread_across_many_shops_and_one_shop_rings_are_unchanged() {
    let mut spread = small(2_000, 7);
    spread.mix = Mix::with_overrides(
        r#"{"adversaries": {"collusion_cash_out": {"rings_per_100k_users": 100, "members": [8, 15], "merchants_per_ring": [4, 6]}}}"#,
    )
    .unwrap();
    let runs = run_in_process(&spread, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap();
    let report = xiezhi_sim::report(&spread, &runs);
    assert!(num(&report["scenarios"]["collusion_cash_out"], "payments") > 20.0, "{}", report["scenarios"]);
    let one = |merchants: &str| {
        let mut config = small(1_000, 4);
        let text =
            format!(r#"{{"adversaries": {{"collusion_cash_out": {{"rings_per_100k_users": 200{merchants}}}}}}}"#);
        config.mix = Mix::with_overrides(&text).unwrap();
        let runs = run_in_process(&config, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap();
        xiezhi_sim::report(&config, &runs)["scenarios"]["collusion_cash_out"]["fraud_amount_minor"].clone()
    };
    assert_eq!(one(""), one(r#", "merchants_per_ring": [1, 1]"#));
}

/// The small sweep CI holds: three mixes drawn from the shipped ranges (sweep seed 1),
/// 2,000 fraud-heavy users × 14 days each, with bounds at about twice the recorded harm and
/// nine tenths of the recorded protection (docs/QUALITY.md, "The figures CI holds"). A change
/// that makes the configuration fail a family of attackers it held fails here, even if the
/// default mix still looks fine.
#[test]
fn a_small_sweep_stays_within_the_recorded_bounds() {
    use xiezhi_sim::sweep::{sweep_block, Ranges};
    let ranges = Ranges::shipped();
    let base = small(2_000, 14);
    let mut mixes = Vec::new();
    for index in 0..3 {
        let (mix, drawn) = ranges.draw(&base.mix, 1, index).unwrap();
        let config = RunConfig { mix, ..base.clone() };
        let runs = run_in_process(&config, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap();
        let report = xiezhi_sim::report(&config, &runs);
        mixes.push(serde_json::json!({"index": index, "parameters": drawn, "overall": report["overall"], "scenarios": report["scenarios"]}));
    }
    let sweep = sweep_block(&ranges, 1, mixes);
    let (worst, median) = (&sweep["worst"]["overall"], &sweep["median"]["overall"]);
    // Recorded 2026-11-29 (ranges-5) under the shipped configuration (default-3 rules, the
    // shipped fraud model): honest users restricted worst 0, declined worst 0.008 %, stepped up
    // worst 0.065 %, worst honest scenario declined 0.797 %; fraud amount stopped median
    // 99.2 %, worst 98.6 %. Re-recorded 2026-11-30 with the credit layer (bounds unchanged):
    // restricted 0, declined worst 0.017 %, stepped up worst 0.052 %, worst honest scenario
    // 0.842 %, fraud amount stopped 99.4 % / 97.7 %. With default-4: 0, 0.018 %, 0.049 %,
    // 1.053 %, 99.4 % / 97.7 %. With shops aged from the first simulated day: 0, 0.010 %,
    // 0.046 %, 1.062 %, 99.4 % / 97.7 %.
    assert!(num(worst, "honest_users_restricted_pct") <= 0.05, "{worst}");
    assert!(num(worst, "honest_payments_declined_pct") <= 0.02, "{worst}");
    assert!(num(worst, "honest_payments_stepped_up_pct") <= 0.13, "{worst}");
    assert!(num(worst, "worst_honest_scenario_declined_pct") <= 1.6, "{worst}");
    assert!(num(median, "fraud_amount_stopped_pct") >= 89.3, "{median}");
    assert!(num(worst, "fraud_amount_stopped_pct") >= 88.7, "{worst}");
}
