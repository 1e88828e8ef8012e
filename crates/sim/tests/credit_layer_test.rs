//! The credit layer on a simulated population: users apply with rows of the public credit
//! data drawn by their ground truth, the shipped scorecard and policy set their limits (and
//! cap young low-band lines at payment time), and the same people on fixed limits lose more
//! to first-party default. Needs `../shared/data` (or `scripts/fetch-data`'s copy): without
//! it, the one-line error naming `scripts/fetch-data`.

use serde_json::Value;
use xiezhi_sim::world::UserClass;
use xiezhi_sim::{run_in_process, EngineConfig, Mix, RunConfig, Simulation};

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// 2,000 users over two weeks with defaulters and synthetic identities made common.
fn config(over: &str) -> RunConfig {
    RunConfig {
        users: 2_000,
        merchants: 400,
        days: 14,
        seed: 42,
        warmup_days: 3,
        mix: Mix::with_overrides(over).expect("a valid mix"),
    }
}

const COMMON_DEFAULTERS: &str = r#"{"adversaries": {"first_party_default": {"per_10k_users": 200},
    "synthetic_identity": {"per_10k_users": 100}}}"#;

#[test]
fn applications_are_drawn_by_ground_truth_from_rows_the_scorecard_never_saw() {
    let config = config(COMMON_DEFAULTERS);
    assert!(config.mix.credit.applications, "mix-1 opens lines on applications");
    let sim = Simulation::new(&config).unwrap();
    let applicants = xiezhi_sim::applicants::Applicants::load(&xiezhi_datasets::default_data_dir()).unwrap();
    assert_eq!(applicants.dataset, "german_credit_application");
    // The German data's test rows: 210 who repaid and 90 who did not.
    assert_eq!((applicants.good.len(), applicants.bad.len()), (210, 90));
    let model = xiezhi_risk::shipped_credit_model();
    let (mut defaulters, mut honest) = (0, 0);
    for u in &sim.world().users {
        let a = u.application.as_ref().expect("every user applies");
        assert_eq!(a.answers.len(), model.features().len());
        assert!(model.parse(&a.answers).is_ok(), "an application the model takes");
        let [lo, hi] = config.mix.credit.monthly_income_yuan;
        assert!((lo * 100..=hi * 100).contains(&a.monthly_income_minor));
        let from_bad = applicants.bad.iter().any(|r| **r == *a.answers);
        let from_good = applicants.good.iter().any(|r| **r == *a.answers);
        match u.class {
            UserClass::Default => {
                defaulters += 1;
                assert!(from_bad, "a defaulter applies like one");
            }
            UserClass::Honest => {
                honest += 1;
                assert!(from_good, "an honest shopper applies like one who repaid");
            }
            UserClass::Fraud => {}
        }
    }
    assert_eq!(defaulters, 40);
    assert!(honest > 1_800, "{honest}");
}

#[test]
fn the_credit_layer_cuts_default_loss_on_the_same_population() {
    let config = config(COMMON_DEFAULTERS);
    let runs = run_in_process(&config, &[EngineConfig::shipped()], &|_, _, _| {}).unwrap();
    assert_eq!(runs.len(), 2, "the main configuration, and the same without the credit layer");
    let report = xiezhi_sim::report(&config, &runs);
    let credit = &report["credit_layer"];
    assert_eq!(credit["without"], "default-without-credit-layer");
    assert!(report["baselines"].get("default-without-credit-layer").is_none(), "not a configuration of its own");
    let figures = &credit["figures"];
    let (with, without) = (num(&figures["default_loss_minor"], "with"), num(&figures["default_loss_minor"], "without"));
    assert!(without > 0.0, "the defaulters spent: {credit}");
    let reduction = num(credit, "default_loss_reduction_pct");
    assert!(reduction >= 30.0, "default loss {with} with the layer, {without} without: {reduction} % lower");
    // Honest friction: no more honest payments declined (a tenth of a point of slack for a
    // population this small), and few honest applicants turned away.
    let declined = &figures["honest_payments_declined_pct"];
    assert!(num(declined, "with") <= num(declined, "without") + 0.1, "{declined}");
    let lines = &credit["lines"]["with"];
    assert!(num(&lines["honest"], "declined_pct") < 5.0, "{lines}");
    // The layer works through the limit: defaulters get less credit than honest shoppers.
    assert!(num(&lines["default"], "mean_limit_minor") < 0.6 * num(&lines["honest"], "mean_limit_minor"), "{lines}");
    // The same people without it: fixed limits, nobody declined.
    let fixed = &credit["lines"]["without"];
    assert_eq!(num(&fixed["honest"], "applied"), 0.0);
    assert_eq!(report["credit_lines"], credit["lines"]["with"]);
    let markdown = xiezhi_sim::markdown(&report);
    assert!(markdown.contains("## The credit layer"), "{markdown}");
}

#[test]
fn a_declined_applicant_never_pays_with_credit() {
    // A policy whose every band is out of reach: every application is declined.
    let mut policy: Value = serde_json::from_str(xiezhi_risk::Policy::default_document()).unwrap();
    for (i, band) in policy["credit_limits"]["bands"].as_array_mut().unwrap().iter_mut().enumerate() {
        band["min_score"] = serde_json::json!(10_000 - i as i64);
    }
    let engine = EngineConfig { policy_json: Some(policy.to_string()), ..EngineConfig::shipped() };
    let mut config = config("{}");
    config.days = 3;
    config.mix.credit.compare_without = false;
    let runs = run_in_process(&config, &[engine], &|_, _, _| {}).unwrap();
    let report = xiezhi_sim::report(&config, &runs);
    assert_eq!(report["overall"]["payments"], 0, "{}", report["overall"]);
    assert_eq!(report["credit_lines"]["honest"]["declined_pct"], 100.0);
    assert!(report.get("credit_layer").is_none());
}

#[test]
fn a_mix_without_applications_opens_fixed_limits_and_needs_no_data() {
    let config = config(r#"{"credit": {"applications": false}}"#);
    let sim = Simulation::new(&config).unwrap();
    assert!(sim.world().users.iter().all(|u| u.application.is_none()));
    let limits: Vec<i64> = config.mix.honest.limit_yuan.iter().map(|y| y * 100).collect();
    assert!(sim.world().users.iter().all(|u| limits.contains(&u.limit_minor)));
}
