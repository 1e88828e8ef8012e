//! Recovery of wrongly restricted honest users (issue 14): under the blunt baseline, which
//! restricts honest shoppers on any burst, every one of them gets their line back by a
//! challenge, an appeal, an escalation or the expiry; reviewers claim and decide only in
//! their working hours; their error rate decides who wins an appeal; and an appeal nobody
//! decides by the policy's deadline escalates and lifts.

use serde_json::Value;
use xiezhi_sim::clock::{DAY_MS, HOUR_MS};
use xiezhi_sim::{run_with, Bank, ConfigRun, EngineConfig, Mix, RunConfig};

const FRAUD_HEAVY: &str = include_str!("../mix/fraud-heavy.json");

/// Fraud-heavy traffic, with `overrides` (a JSON object of mix keys) laid over it.
fn config(users: u32, days: u32, overrides: &str) -> RunConfig {
    let mut mix: Value = serde_json::from_str(FRAUD_HEAVY).unwrap();
    merge(&mut mix, serde_json::from_str(overrides).unwrap());
    RunConfig {
        users,
        merchants: users / 5,
        days,
        seed: 42,
        warmup_days: 1,
        mix: Mix::with_overrides(&mix.to_string()).unwrap(),
    }
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// The strict baseline over `config`, in process.
fn strict_run(config: &RunConfig) -> ConfigRun {
    let currency = xiezhi_money::Currency::from_alpha(&config.mix.currency).unwrap();
    let mut bank = Bank::new(&EngineConfig::strict(), currency).unwrap();
    run_with(config, "strict", &mut bank, &mut |_, _| {}).unwrap()
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("`{key}` is not a number in {v}"))
}

/// The policy the strict baseline runs under (the shipped one): its appeal deadline and
/// compensation, as the engine loaded them.
fn strict_policy() -> xiezhi_risk::PolicyDocument {
    EngineConfig::strict().build().unwrap().policy().document.clone()
}

/// Local (UTC+8, the mix's zone) hour of `at_ms`, and whether it falls on a weekend.
fn local_hour_and_weekend(at_ms: i64) -> (i64, bool) {
    let local_ms = at_ms + 8 * HOUR_MS;
    let day = local_ms.div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: day 0 is weekday 4 counting from Sunday = 0.
    let weekday = (day + 4).rem_euclid(7);
    (local_ms.rem_euclid(DAY_MS) / HOUR_MS, weekday == 0 || weekday == 6)
}

#[test]
fn every_wrongly_restricted_honest_user_recovers_and_the_report_says_how_long_it_took() {
    let config = config(1_000, 7, "{}");
    let run = strict_run(&config);
    let o = run.tally.overall_json();
    let restricted = num(&o, "honest_users_restricted");
    assert!(restricted > 100.0, "the strict baseline should restrict honest users here: {o}");
    assert_eq!(o["honest_restricted_users_not_recovered"], 0, "{o}");
    assert_eq!(num(&o, "honest_restricted_users_recovered"), restricted, "{o}");
    assert!(num(&o, "honest_users_restricted_at_end") > 0.0, "some were still restricted at the end: {o}");
    // Every wrong restriction ended one way or another, and each way happened here.
    let by = &o["recovered_by"];
    let ways = ["challenge", "appeal", "escalation", "expiry"];
    assert_eq!(ways.iter().map(|w| num(by, w)).sum::<f64>(), num(&o, "honest_restrictions"), "{o}");
    for way in ways {
        assert!(num(by, way) > 0.0, "nobody recovered by {way}: {o}");
    }
    let (p50, p95, max) = (
        num(&o, "honest_time_to_recovery_hours_p50"),
        num(&o, "honest_time_to_recovery_hours_p95"),
        num(&o, "honest_time_to_recovery_hours_max"),
    );
    let policy = strict_policy();
    assert!(0.0 < p50 && p50 <= p95 && p95 <= max, "{o}");
    assert!(max <= policy.restriction.max_duration_hours() as f64, "no restriction outlasts the policy: {o}");
    // Every overturn pays the policy's compensation.
    let (_, per_overturn_minor) = policy.compensation.amount_minor().unwrap();
    assert!(num(&o, "appeals_overturned") > 0.0, "{o}");
    assert_eq!(num(&o, "compensation_paid_count"), num(&o, "appeals_overturned"), "{o}");
    assert_eq!(num(&o, "compensation_paid_minor"), num(&o, "appeals_overturned") * per_overturn_minor as f64, "{o}");
    assert_eq!(
        num(&o, "appeals_filed"),
        num(&o, "appeals_overturned") + num(&o, "appeals_upheld") + num(&o, "appeals_undecided"),
        "{o}"
    );
    // The same seed, the same run.
    assert_eq!(strict_run(&config).tally.overall_json()["recovered_by"], o["recovered_by"]);
}

#[test]
fn reviewers_claim_and_decide_only_in_their_working_hours_and_deadlines_are_the_policys() {
    let config = config(1_000, 7, r#"{"reviewers": {"working_hours": [10, 16], "minutes_per_appeal": [20, 30]}}"#);
    let run = strict_run(&config);
    let appeals = run.tally.appeals();
    let deadline_ms = strict_policy().restriction.appeal_deadline_hours * HOUR_MS;
    let mut decided = 0;
    for a in appeals {
        assert_eq!(a.deadline_ms - a.filed_at_ms, deadline_ms, "{a:?}");
        let (Some(claimed), Some(done)) = (a.claimed_at_ms, a.decided_at_ms) else {
            assert!(a.decided_at_ms.is_none(), "decided unclaimed: {a:?}");
            continue;
        };
        decided += 1;
        assert!(claimed >= a.filed_at_ms && (20..=30).contains(&((done - claimed) / 60_000)), "{a:?}");
        for at in [claimed, done] {
            let (hour, weekend) = local_hour_and_weekend(at);
            assert!(!weekend && (10..16).contains(&hour) || at == done && hour == 16 && at % HOUR_MS == 0, "{a:?}");
        }
        assert_eq!(done.div_euclid(DAY_MS), claimed.div_euclid(DAY_MS), "a review ends on its shift: {a:?}");
    }
    assert!(decided > 20, "{decided} appeals decided of {}", appeals.len());
    // Appeals are filed around the clock, weekends included (2026-10-31 is a Saturday).
    assert!(appeals.iter().any(|a| {
        let (h, w) = local_hour_and_weekend(a.filed_at_ms);
        w || !(10..16).contains(&h)
    }));
}

/// Decided appeals by filer: (honest overturned, honest upheld, fraud overturned, fraud upheld).
fn outcomes(run: &ConfigRun) -> (usize, usize, usize, usize) {
    let count = |honest: bool, overturned: bool| {
        run.tally.appeals().iter().filter(|a| a.honest == honest && a.overturned == Some(overturned)).count()
    };
    (count(true, true), count(true, false), count(false, true), count(false, false))
}

#[test]
fn the_error_rate_decides_who_wins_an_appeal() {
    let team = r#""count": 30, "weekends": true, "working_hours": [0, 24]"#;
    let right = config(
        1_000,
        7,
        &format!(
            r#"{{"adversaries": {{"restricted_fraudster_appeal_prob": 1.0}}, "reviewers": {{{team}, "error_rate_pct": 0}}}}"#
        ),
    );
    let (honest_won, honest_lost, fraud_won, fraud_lost) = outcomes(&strict_run(&right));
    assert!(honest_won > 50 && fraud_lost > 5, "{honest_won} {fraud_lost}");
    assert_eq!((honest_lost, fraud_won), (0, 0), "reviewers who never err");
    let wrong = config(
        1_000,
        7,
        &format!(
            r#"{{"adversaries": {{"restricted_fraudster_appeal_prob": 1.0}}, "reviewers": {{{team}, "error_rate_pct": 100}}}}"#
        ),
    );
    let (honest_won, honest_lost, fraud_won, fraud_lost) = outcomes(&strict_run(&wrong));
    assert!(honest_lost > 50 && fraud_won > 5, "{honest_lost} {fraud_won}");
    assert_eq!((honest_won, fraud_lost), (0, 0), "reviewers who always err");
}

#[test]
fn an_appeal_past_its_deadline_escalates_and_lifts_the_restriction() {
    // One reviewer, an hour a day, an hour an appeal: nearly every appeal waits past its deadline.
    let slow = r#"{"reviewers": {"count": 1, "working_hours": [9, 10], "minutes_per_appeal": [60, 60]}}"#;
    let run = strict_run(&config(1_000, 7, slow));
    let escalated: Vec<_> = run.tally.appeals().iter().filter(|a| a.escalated_at_ms.is_some()).collect();
    assert!(escalated.len() > 50, "{}", escalated.len());
    for a in &escalated {
        assert_eq!(a.escalated_at_ms, Some(a.deadline_ms), "escalated at its deadline: {a:?}");
        assert!(a.decided_at_ms.is_none_or(|d| d > a.deadline_ms), "decided in time yet escalated: {a:?}");
    }
    assert!(escalated.iter().any(|a| a.escalation_lifted), "the shipped policy lifts on escalation");
    let o = run.tally.overall_json();
    assert!(num(&o["recovered_by"], "escalation") > 0.0, "{o}");
    assert_eq!(o["honest_restricted_users_not_recovered"], 0, "{o}");

    // A policy that does not lift on escalation: escalated appeals lift nothing.
    let mut policy: Value = serde_json::from_str(xiezhi_risk::Policy::default_document()).unwrap();
    policy["restriction"]["appeal_auto_lift_on_escalation"] = false.into();
    let engine = EngineConfig { policy_json: Some(policy.to_string()), ..EngineConfig::strict() };
    let config = config(1_000, 7, slow);
    let currency = xiezhi_money::Currency::from_alpha(&config.mix.currency).unwrap();
    let run = run_with(&config, "strict", &mut Bank::new(&engine, currency).unwrap(), &mut |_, _| {}).unwrap();
    let o = run.tally.overall_json();
    assert!(num(&o, "appeals_escalated") > 50.0, "{o}");
    assert_eq!(o["recovered_by"]["escalation"], 0, "{o}");
    assert!(run.tally.appeals().iter().all(|a| !a.escalation_lifted));
    assert_eq!(o["honest_restricted_users_not_recovered"], 0, "the expiry still ends every one: {o}");
}

/// Nobody appeals: the run is what it was before appeals existed (no draw moved, nothing
/// filed), whatever the reviewers are like.
#[test]
fn without_appeals_the_traffic_does_not_depend_on_the_reviewers() {
    let off = r#""honest": {"appeal_prob": 0}, "adversaries": {"restricted_fraudster_appeal_prob": 0}"#;
    let a = strict_run(&config(500, 4, &format!("{{{off}}}")));
    let b = strict_run(&config(500, 4, &format!(r#"{{{off}, "reviewers": {{"count": 1, "error_rate_pct": 100}}}}"#)));
    let (a, b) = (a.tally.overall_json(), b.tally.overall_json());
    assert_eq!(a["appeals_filed"], 0);
    for key in ["payments", "honest_restrictions", "honest_payments_declined_pct", "fraud_loss_minor", "recovered_by"] {
        assert_eq!(a[key], b[key], "{key}");
    }
}

/// A team working around the clock never idles while appeals wait, even when a review
/// would run past midnight (the next shift follows without a break).
#[test]
fn a_round_the_clock_reviewer_never_idles_while_appeals_wait() {
    // Few appeals (one restricted shopper in twenty), so that one slow reviewer keeps up.
    let team = r#"{"honest": {"appeal_prob": 0.05}, "adversaries": {"restricted_fraudster_appeal_prob": 0},
        "reviewers": {"count": 1, "working_hours": [0, 24], "weekends": true, "minutes_per_appeal": [300, 600]}}"#;
    let run = strict_run(&config(300, 6, team));
    let mut claimed: Vec<_> = run.tally.appeals().iter().filter(|a| a.claimed_at_ms.is_some()).collect();
    claimed.sort_by_key(|a| a.claimed_at_ms);
    assert!(claimed.len() > 5, "{} claimed: {}", claimed.len(), run.tally.overall_json());
    for pair in claimed.windows(2) {
        let (before, next) = (pair[0], pair[1]);
        let free_at = before.decided_at_ms.expect("claimed appeals are decided by the end");
        // Waiting when the reviewer got free: claimed then; else claimed as it was filed.
        assert_eq!(next.claimed_at_ms, Some(free_at.max(next.filed_at_ms)), "{before:?} then {next:?}");
    }
}
