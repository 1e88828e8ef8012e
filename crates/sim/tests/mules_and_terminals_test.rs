//! The adversaries of issue 13 that move money through a merchant: a mule network cycling
//! credit through a colluding merchant's refunds, and a shop's compromised terminal showing
//! the fraudster's dynamic codes. Each happens, is labelled fraud and is counted as a loss;
//! the refunds behind them balance in the books; and honest shoppers' own refunds (returns,
//! exchanges) hurt nobody.
//!
//! The engine runs with the shipped rules and policy and the heuristic scorer, so that these
//! tests hold the simulator's behaviour, not a trained model's judgement.

use serde_json::Value;
use xiezhi_sim::{run_in_process, run_with, Bank, EngineConfig, Mix, RunConfig, Simulation};

/// Every other adversary off: the figures below are the new ones' alone.
const ONLY: &str = r#""account_takeover": {"per_10k_users": 0}, "card_testing": {"per_10k_users": 0},
    "collusion_cash_out": {"rings_per_100k_users": 0}, "synthetic_identity": {"per_10k_users": 0},
    "first_party_default": {"per_10k_users": 0}, "compromised_qr": {"per_100k_users": 0}"#;

fn config(users: u32, days: u32, adversaries: &str) -> RunConfig {
    let text = format!(r#"{{"adversaries": {{{ONLY}, {adversaries}}}}}"#);
    RunConfig { users, merchants: users / 5, days, seed: 42, warmup_days: 3, mix: Mix::with_overrides(&text).unwrap() }
}

fn heuristic() -> EngineConfig {
    EngineConfig { scorer: None, ..EngineConfig::shipped() }
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

fn report(config: &RunConfig) -> Value {
    let runs = run_in_process(config, &[heuristic()], &|_, _, _| {}).unwrap();
    xiezhi_sim::report(config, &runs)
}

/// Mules pay a colluding merchant, are refunded, and pay again: the same credit goes through
/// several times, every payment is fraud, and every approved one is lost (the merchant was
/// paid and vanished owing the refunds; the mules never repay).
#[test]
fn a_mule_network_cycles_credit_through_refunds() {
    let config = config(3_000, 14, r#""mule_refund_network": {"networks_per_100k_users": 100}"#);
    let mut sim = Simulation::new(&config).unwrap();
    let mule_limits: i64 = sim
        .world()
        .users
        .iter()
        .filter(|u| u.class == xiezhi_sim::world::UserClass::Fraud)
        .map(|u| u.limit_minor)
        .sum();
    assert!(mule_limits > 0, "no mules were recruited");
    let currency = xiezhi_money::Currency::from_alpha("CNY").unwrap();
    let unchecked = EngineConfig { rules_json: Some(rules_with("refund_cycle_cash_out", false)), ..heuristic() };
    let mut bank = Bank::new(&unchecked, currency).unwrap();
    sim.run(&mut bank, &mut |_, _| {}).unwrap();
    let scenarios = sim.tally.scenarios_json();
    let mules = &scenarios["mule_refund_network"];
    assert!(num(mules, "payments") >= 20.0, "{mules}");
    assert_eq!(mules["payments_by_class"]["fraud"], mules["payments"], "every mule payment is fraud: {mules}");
    assert!(num(mules, "refunds") > 0.0 && num(mules, "refunded_minor") > 0.0, "the merchant refunds: {mules}");
    let (attempted, loss) = (num(mules, "fraud_amount_minor"), num(mules, "fraud_loss_minor"));
    let stopped = attempted * num(mules, "fraud_amount_stopped_pct") / 100.0;
    assert!((attempted - stopped - loss).abs() < attempted * 1e-4, "the loss is what went through: {mules}");
    // Refunds gave the credit back, so more went through than the mules' lines hold.
    assert!(loss > mule_limits as f64, "{loss} lost against {mule_limits} of credit: {mules}");
    // The books behind it balance, refunds of holds evicted at a day's upkeep included.
    let ledger = bank.ledger();
    assert_eq!(ledger.trial_balance(), (0, 0));
    assert!(ledger.credit_lines().all(|l| l.available_minor() >= 0 && l.receivable_minor() >= 0));
    // The shipped refund-cycle rule declines the mules' later rounds at a shop that refunds
    // most of what it sells; their first round looks like any large purchase and goes through.
    let checked = report(&config);
    let stopped_now = num(&checked["scenarios"]["mule_refund_network"], "fraud_amount_stopped_pct");
    assert!(
        stopped_now >= num(mules, "fraud_amount_stopped_pct") + 10.0,
        "{}",
        checked["scenarios"]["mule_refund_network"]
    );
}

/// The shipped rules with rule `id` live (`true`) or left out (`false`), to measure what it
/// adds.
fn rules_with(id: &str, live: bool) -> String {
    let mut rules: Value = serde_json::from_str(xiezhi_risk::default_rules()).unwrap();
    rules["version"] = format!("{}-{id}-{live}", rules["version"].as_str().unwrap()).into();
    let list = rules["rules"].as_array_mut().unwrap();
    list.retain(|r| live || r["id"] != id);
    for rule in list.iter_mut().filter(|r| r["id"] == id) {
        rule["mode"] = "live".into();
    }
    rules.to_string()
}

/// A busy shop's terminal shows the fraudster's codes for some hours: its honest customers
/// pay the fraudster's account, and every one of those payments that goes through is lost.
/// Without the payee check the rules see nothing (an older payee account dodges the
/// new-merchant rules); the payee check (live since default-4, once the engine remembers a
/// week) asks the payer to check the payee once the account has taken a few first-time
/// payers and nothing else all week, and most payers then find the fraud.
#[test]
fn a_compromised_terminal_diverts_a_busy_shop_s_customers() {
    let mut config = config(3_000, 14, r#""compromised_terminal": {"per_100k_users": 300, "hours": [4, 8]}"#);
    // A week of warm-up, as in the sweeps: the check waits for a week of memory (the next
    // test shows the first week).
    config.warmup_days = 7;
    let without = EngineConfig { rules_json: Some(rules_with("dormant_payee_sudden_counter", false)), ..heuristic() };
    let runs = run_in_process(&config, &[without], &|_, _, _| {}).unwrap();
    let unchecked = xiezhi_sim::report(&config, &runs);
    let diverted = &unchecked["scenarios"]["compromised_terminal"];
    assert!(num(diverted, "payments") >= 20.0, "{diverted}");
    assert_eq!(diverted["payments_by_class"]["fraud"], diverted["payments"], "{diverted}");
    let (attempted, loss) = (num(diverted, "fraud_amount_minor"), num(diverted, "fraud_loss_minor"));
    let stopped = attempted * num(diverted, "fraud_amount_stopped_pct") / 100.0;
    assert!(loss > 0.0 && (attempted - stopped - loss).abs() < attempted * 1e-4, "{diverted}");
    assert_eq!(unchecked["overall"]["users_by_class"]["fraud"], 0, "the payers are honest shoppers");

    let with = EngineConfig { rules_json: Some(rules_with("dormant_payee_sudden_counter", true)), ..heuristic() };
    let checked = xiezhi_sim::report(&config, &run_in_process(&config, &[with], &|_, _, _| {}).unwrap());
    let caught = &checked["scenarios"]["compromised_terminal"];
    let before = num(diverted, "fraud_amount_stopped_pct");
    assert!(num(caught, "fraud_amount_stopped_pct") >= before + 30.0, "the payee check catches most: {caught}");
    let (a, b) = (&unchecked["overall"], &checked["overall"]);
    assert!(num(b, "honest_payments_declined_pct") <= num(a, "honest_payments_declined_pct") + 0.005, "{a}\n{b}");
}

/// Shops refund returns (in full or in part, some of them exchanges for another purchase at
/// the same shop): refunds alone are no fraud signal, and many of them restrict or decline
/// no honest shopper more than none do.
#[test]
fn honest_refunds_hurt_no_honest_shopper() {
    let run = |honest: &str| {
        let mut config = config(2_000, 14, r#""mule_refund_network": {"networks_per_100k_users": 0}"#);
        let text = format!(r#"{{"adversaries": {{{ONLY}}}, "honest": {honest}}}"#);
        config.mix = Mix::with_overrides(&text).unwrap();
        report(&config)
    };
    let none = run(r#"{"refund_prob": 0}"#);
    let many = run(r#"{"refund_prob": 0.3, "exchange_share": 0.6, "refund_after_days": [0, 2]}"#);
    let refunds: f64 = many["scenarios"].as_object().unwrap().values().map(|s| num(s, "refunds")).sum();
    assert!(refunds >= 100.0, "{refunds} refunds");
    assert_eq!(num(&none["overall"], "refunds"), 0.0);
    let (a, b) = (&none["overall"], &many["overall"]);
    assert!(num(b, "honest_users_restricted") <= num(a, "honest_users_restricted") + 1.0, "{a}\n{b}");
    // Up to 0.03 points more: with six times the usual returns, a few small shops refund half
    // of what they sell in a week, and the refund-cycle rule declines an exchange there.
    assert!(num(b, "honest_payments_declined_pct") <= num(a, "honest_payments_declined_pct") + 0.03, "{a}\n{b}");
    assert!(num(b, "honest_payments_stepped_up_pct") <= num(a, "honest_payments_stepped_up_pct") + 0.1, "{a}\n{b}");
}

/// Refunds against a server's books: the in-process bank refunds holds it evicted, and a
/// run of both new adversaries leaves books that balance with no line below zero.
#[test]
fn refunds_after_eviction_keep_the_books_balanced() {
    let adversaries = r#""mule_refund_network": {"networks_per_100k_users": 200, "refund_after_hours": [30, 50]},
        "compromised_terminal": {"per_100k_users": 200}"#;
    let mut config = config(800, 6, adversaries);
    config.mix.honest.refund_prob = 0.5;
    let currency = xiezhi_money::Currency::from_alpha("CNY").unwrap();
    let mut bank = Bank::new(&heuristic(), currency).unwrap();
    let run = run_with(&config, "default", &mut bank, &mut |_, _| {}).unwrap();
    let refunds: f64 = run.tally.scenarios_json().as_object().unwrap().values().map(|s| num(s, "refunds")).sum();
    assert!(refunds > 10.0, "{refunds} refunds");
    let ledger = bank.ledger();
    assert_eq!(ledger.trial_balance(), (0, 0));
    assert!(ledger.credit_lines().all(|l| l.available_minor() >= 0 && l.held_minor() >= 0));
}

/// On a fresh service nobody's week is known, so every shop looks dormant to the payee
/// check: it waits until the engine remembers a week (`engine_memory_days`), and asks no
/// honest payer before. Without that guard it asks many of them.
#[test]
fn the_payee_check_waits_for_a_week_of_memory() {
    let mut config = config(3_000, 7, r#""mule_refund_network": {"networks_per_100k_users": 0}"#);
    config.warmup_days = 0;
    let unguarded_rules = {
        let mut rules: Value = serde_json::from_str(xiezhi_risk::default_rules()).unwrap();
        rules["version"] = "unguarded".into();
        for rule in
            rules["rules"].as_array_mut().unwrap().iter_mut().filter(|r| r["id"] == "dormant_payee_sudden_counter")
        {
            let expression = rule["expression"].as_str().unwrap().replace("engine_memory_days >= 7 && ", "");
            assert_ne!(rule["expression"], expression.as_str(), "the shipped rule has the guard");
            rule["expression"] = expression.into();
        }
        rules.to_string()
    };
    let unguarded = EngineConfig { name: "unguarded".into(), rules_json: Some(unguarded_rules), ..heuristic() };
    let runs = run_in_process(&config, &[heuristic(), unguarded], &|_, _, _| {}).unwrap();
    let result = xiezhi_sim::report(&config, &runs);
    let shipped = &result["overall"];
    let fresh = &result["baselines"]["unguarded"];
    let asked = |o: &Value| o["honest_top_reason_codes"]["merchant_qr_suspicious"].as_u64().unwrap_or(0);
    assert_eq!(asked(shipped), 0, "{shipped}");
    assert!(asked(fresh) >= 20, "the check without its guard asks honest payers: {fresh}");
    assert!(
        num(fresh, "honest_payments_stepped_up_pct") > num(shipped, "honest_payments_stepped_up_pct") + 0.5,
        "{shipped}\n{fresh}"
    );
}
