//! Families of populations, not points: `mix/ranges.json` gives each parameter a plausible
//! range, a sweep draws mixes from those ranges and runs each, and the report says how the
//! configuration did per mix and at its worst and median across them. A configuration tuned
//! on the default mix alone can look fine there and fail an attacker a little more patient;
//! the sweep's worst case is what it should be judged on.

use crate::mix::Mix;
use crate::sim::splitmix;
use crate::SimError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The shipped ranges.
pub const DEFAULT_RANGES: &str = include_str!("../mix/ranges.json");
/// The most mixes one sweep runs.
pub const MAX_SWEEP_MIXES: u32 = 1_000;

/// How one parameter varies.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Spread {
    /// A number in `[low, high]`.
    Range { range: [f64; 2], why: String },
    /// Both ends of a `[low, high]` parameter: the low end in `low`, the high end in `high`.
    Ends { low: [u32; 2], high: [u32; 2], why: String },
    /// One of these values.
    Choices { choices: Vec<Value>, why: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ranges {
    pub version: String,
    #[serde(default)]
    pub about: String,
    pub parameters: BTreeMap<String, Spread>,
}

/// FNV-1a of a parameter's path: a hash that never changes between builds (std's hasher
/// may), since it seeds the parameter's draws.
fn path_hash(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The JSON value at a dotted path, if there is one.
fn slot<'v>(value: &'v mut Value, path: &str) -> Option<&'v mut Value> {
    path.split('.').try_fold(value, |v, key| v.get_mut(key))
}

impl Ranges {
    pub fn shipped() -> Ranges {
        Ranges::from_json(DEFAULT_RANGES).expect("the shipped ranges are valid")
    }

    /// Reads a ranges document, refusing a parameter the mix does not have or a range that
    /// is upside down.
    pub fn from_json(text: &str) -> Result<Ranges, SimError> {
        let ranges: Ranges = serde_json::from_str(text).map_err(|e| SimError::Mix(format!("ranges: {e}")))?;
        let mut base: Value = serde_json::from_str(crate::mix::DEFAULT_MIX).expect("the shipped mix is JSON");
        for (path, spread) in &ranges.parameters {
            let Some(current) = slot(&mut base, path) else {
                return Err(SimError::Mix(format!("ranges: the mix has no parameter `{path}`")));
            };
            let fits = match spread {
                Spread::Range { range: [lo, hi], .. } => lo <= hi && current.is_number(),
                Spread::Ends { low, high, .. } => low[0] <= low[1] && high[0] <= high[1] && current.is_array(),
                Spread::Choices { choices, .. } => !choices.is_empty(),
            };
            if !fits {
                return Err(SimError::Mix(format!("ranges: `{path}` is not a valid range for that parameter")));
            }
        }
        Ok(ranges)
    }

    /// Mix number `index` of the sweep seeded `sweep_seed`: `base` with every ranged
    /// parameter drawn anew. Returns the mix and the values drawn, by path.
    pub fn draw(&self, base: &Mix, sweep_seed: u64, index: u32) -> Result<(Mix, Map<String, Value>), SimError> {
        let mix_seed = splitmix(splitmix(sweep_seed) ^ u64::from(index));
        let mut mix = serde_json::to_value(base).expect("a mix serialises");
        let mut drawn = Map::new();
        for (path, spread) in &self.parameters {
            // Each parameter draws from its own stream, so a parameter added to the ranges
            // leaves every other parameter's draws as they were.
            let mut rng = fastrand::Rng::with_seed(splitmix(mix_seed ^ path_hash(path)));
            let current = slot(&mut mix, path).expect("checked when the ranges were read");
            let value = match spread {
                Spread::Range { range: [lo, hi], .. } => {
                    let x = lo + rng.f64() * (hi - lo);
                    if current.is_u64() || current.is_i64() {
                        json!(x.round() as i64)
                    } else {
                        json!((x * 10_000.0).round() / 10_000.0)
                    }
                }
                Spread::Ends { low, high, .. } => {
                    let (a, b) = (rng.u32(low[0]..=low[1]), rng.u32(high[0]..=high[1]));
                    json!([a.min(b), a.max(b)])
                }
                Spread::Choices { choices, .. } => choices[rng.usize(..choices.len())].clone(),
            };
            *current = value.clone();
            drawn.insert(path.clone(), value);
        }
        mix["version"] = json!(format!("{}+{}#{sweep_seed}.{index}", base.version, self.version));
        let mix: Mix = serde_json::from_value(mix).map_err(|e| SimError::Mix(e.to_string()))?;
        mix.validate()?;
        Ok((mix, drawn))
    }
}

/// The figures a sweep summarises, and which way is better.
pub const SWEEP_FIGURES: [(&str, Better); 12] = [
    ("honest_users_restricted_pct", Better::Lower),
    ("honest_payments_declined_pct", Better::Lower),
    ("honest_payments_stepped_up_pct", Better::Lower),
    ("fraud_payments_stopped_pct", Better::Higher),
    ("fraud_amount_stopped_pct", Better::Higher),
    ("fraud_loss_minor", Better::Lower),
    ("default_loss_minor", Better::Lower),
    ("worst_honest_scenario_declined_pct", Better::Lower),
    ("worst_honest_scenario_stepped_up_pct", Better::Lower),
    // How long wrongly restricted honest users waited for their line, and who never got it
    // back within the policy's longest restriction.
    ("honest_time_to_recovery_hours_p95", Better::Lower),
    ("honest_time_to_recovery_hours_max", Better::Lower),
    ("honest_restricted_users_not_recovered", Better::Lower),
];

/// Adds to a mix's `overall` the friction of its worst honest scenario: the highest decline
/// and step-up rates among the scenarios of honest shoppers (an average can hide one
/// group of people the configuration keeps failing).
fn add_worst_honest_scenario(mix: &mut Value) {
    for (figure, source) in [
        ("worst_honest_scenario_declined_pct", "honest_payments_declined_pct"),
        ("worst_honest_scenario_stepped_up_pct", "honest_payments_stepped_up_pct"),
    ] {
        let worst = crate::Scenario::ALL
            .iter()
            .filter(|s| s.is_honest())
            .filter_map(|s| mix["scenarios"].get(s.name()).and_then(|b| b.get(source)).and_then(Value::as_f64))
            .fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v))));
        if let (Some(worst), Some(overall)) = (worst, mix["overall"].as_object_mut()) {
            overall.insert(figure.into(), json!(worst));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// Worst and median of each figure across `blocks` (one metrics object per mix; a mix
/// without the figure, e.g. a scenario that never ran in it, is left out).
fn summarise(blocks: &[&Value]) -> (Map<String, Value>, Map<String, Value>) {
    let (mut worst, mut median) = (Map::new(), Map::new());
    for (figure, better) in SWEEP_FIGURES {
        let mut values: Vec<f64> = blocks.iter().filter_map(|b| b.get(figure).and_then(Value::as_f64)).collect();
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        let worst_value = match better {
            Better::Higher => values[0],
            Better::Lower => values[values.len() - 1],
        };
        let middle = values.len() / 2;
        let median_value =
            if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 };
        worst.insert(figure.into(), json!((worst_value * 1_000.0).round() / 1_000.0));
        median.insert(figure.into(), json!((median_value * 1_000.0).round() / 1_000.0));
    }
    (worst, median)
}

/// The `sweep` block from each mix's report (`overall` and `scenarios` of the main
/// configuration, with the parameters drawn): `mixes`, and `worst` and `median` overall and
/// per scenario.
pub fn sweep_block(ranges: &Ranges, sweep_seed: u64, mut mixes: Vec<Value>) -> Value {
    mixes.iter_mut().for_each(add_worst_honest_scenario);
    let overall: Vec<&Value> = mixes.iter().map(|m| &m["overall"]).collect();
    let (worst_overall, median_overall) = summarise(&overall);
    let mut names: Vec<String> =
        mixes.iter().filter_map(|m| m["scenarios"].as_object()).flat_map(|s| s.keys().cloned()).collect();
    names.sort();
    names.dedup();
    let (mut worst_scenarios, mut median_scenarios) = (Map::new(), Map::new());
    for name in names {
        let blocks: Vec<&Value> = mixes.iter().filter_map(|m| m["scenarios"].get(&name)).collect();
        let (worst, median) = summarise(&blocks);
        worst_scenarios.insert(name.clone(), Value::Object(worst));
        median_scenarios.insert(name, Value::Object(median));
    }
    json!({
        "ranges": ranges.version,
        "sweep_seed": sweep_seed,
        "mixes": mixes,
        "worst": {"overall": worst_overall, "scenarios": worst_scenarios},
        "median": {"overall": median_overall, "scenarios": median_scenarios},
    })
}

/// The sweep as markdown: worst and median overall, then per scenario.
pub fn sweep_markdown(sweep: &Value) -> String {
    let mut out = format!(
        "## Sweep: {} mixes drawn from {} (seed {})\n\n| figure | median | worst |\n|---|---:|---:|\n",
        sweep["mixes"].as_array().map_or(0, Vec::len),
        sweep["ranges"].as_str().unwrap_or("?"),
        sweep["sweep_seed"]
    );
    let cell = |v: &Value| if v.is_null() { "–".to_owned() } else { v.to_string() };
    for (figure, _) in SWEEP_FIGURES {
        let (m, w) = (&sweep["median"]["overall"][figure], &sweep["worst"]["overall"][figure]);
        out.push_str(&format!("| {figure} | {} | {} |\n", cell(m), cell(w)));
    }
    out.push_str("\nBy scenario, median / worst:\n\n| scenario | fraud amount stopped % | honest users restricted % | honest declined % |\n|---|---:|---:|---:|\n");
    if let Some(scenarios) = sweep["worst"]["scenarios"].as_object() {
        for name in scenarios.keys() {
            let pair = |figure: &str| {
                format!(
                    "{} / {}",
                    cell(&sweep["median"]["scenarios"][name][figure]),
                    cell(&sweep["worst"]["scenarios"][name][figure])
                )
            };
            out.push_str(&format!(
                "| {name} | {} | {} | {} |\n",
                pair("fraud_amount_stopped_pct"),
                pair("honest_users_restricted_pct"),
                pair("honest_payments_declined_pct")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_ranges_hold_the_default_mix_and_draws_differ_and_repeat() {
        let ranges = Ranges::shipped();
        let base = Mix::default_mix();
        let (a, drawn_a) = ranges.draw(&base, 7, 0).unwrap();
        let (b, _) = ranges.draw(&base, 7, 1).unwrap();
        let (a_again, drawn_again) = ranges.draw(&base, 7, 0).unwrap();
        assert_eq!(drawn_a, drawn_again, "a draw is a function of the seed and the index");
        assert_eq!(a.version, a_again.version);
        assert_ne!(serde_json::to_value(&a).unwrap(), serde_json::to_value(&b).unwrap());
        assert_eq!(drawn_a.len(), ranges.parameters.len());
        // Every drawn value lies in its range.
        for (path, spread) in &ranges.parameters {
            match (spread, &drawn_a[path]) {
                (Spread::Range { range: [lo, hi], .. }, v) => {
                    let x = v.as_f64().unwrap();
                    assert!(x >= lo.floor() && x <= hi.ceil(), "{path} = {x}");
                }
                (Spread::Ends { low, high, .. }, v) => {
                    let (lo, hi) = (v[0].as_u64().unwrap() as u32, v[1].as_u64().unwrap() as u32);
                    assert!(lo <= hi && lo >= low[0].min(high[0]) && hi <= low[1].max(high[1]), "{path} = {v}");
                }
                (Spread::Choices { choices, .. }, v) => assert!(choices.contains(v), "{path} = {v}"),
            }
        }
        // Patient thieves are in the family: some draw takes 30 % or less at a time.
        let patient = (0..50).any(|i| {
            let (mix, _) = ranges.draw(&base, 1, i).unwrap();
            mix.adversaries.account_takeover.drain_share_pct[0] <= 30
        });
        assert!(patient);
    }

    /// A parameter added to the ranges leaves every other parameter's draws as they were,
    /// so figures measured before it stay comparable.
    #[test]
    fn a_new_parameter_leaves_the_other_draws_alone() {
        let base = Mix::default_mix();
        let fewer = Ranges::from_json(
            r#"{"version": "r", "parameters": {
                "honest.timeout_prob": {"range": [0.002, 0.05], "why": ""},
                "honest.trips_per_month": {"range": [0.05, 0.6], "why": ""}}}"#,
        )
        .unwrap();
        let more = Ranges::from_json(
            r#"{"version": "r", "parameters": {
                "honest.timeout_prob": {"range": [0.002, 0.05], "why": ""},
                "honest.refund_prob": {"range": [0.01, 0.12], "why": ""},
                "honest.trips_per_month": {"range": [0.05, 0.6], "why": ""}}}"#,
        )
        .unwrap();
        for index in 0..5 {
            let (_, a) = fewer.draw(&base, 3, index).unwrap();
            let (_, b) = more.draw(&base, 3, index).unwrap();
            assert_eq!(a["honest.timeout_prob"], b["honest.timeout_prob"]);
            assert_eq!(a["honest.trips_per_month"], b["honest.trips_per_month"]);
        }
        assert_eq!(path_hash("honest.refund_prob"), 0x8d77_ace1_95cb_a628, "the hash is fixed for good");
    }

    #[test]
    fn bad_ranges_are_named() {
        let e = Ranges::from_json(r#"{"version": "r", "parameters": {"honest.nope": {"range": [0, 1], "why": ""}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("honest.nope"), "{e}");
        let e = Ranges::from_json(
            r#"{"version": "r", "parameters": {"honest.timeout_prob": {"range": [1, 0], "why": ""}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("honest.timeout_prob"), "{e}");
    }

    #[test]
    fn worst_is_the_bad_end_and_median_the_middle() {
        let mixes: Vec<Value> = [10.0, 50.0, 30.0]
            .iter()
            .map(|stopped| json!({"overall": {"fraud_amount_stopped_pct": stopped, "honest_users_restricted_pct": stopped / 10.0}, "scenarios": {}}))
            .collect();
        let block = sweep_block(&Ranges::shipped(), 1, mixes);
        assert_eq!(block["worst"]["overall"]["fraud_amount_stopped_pct"], 10.0);
        assert_eq!(block["median"]["overall"]["fraud_amount_stopped_pct"], 30.0);
        assert_eq!(block["worst"]["overall"]["honest_users_restricted_pct"], 5.0);
    }

    #[test]
    fn the_worst_honest_scenario_is_the_highest_among_honest_ones_only() {
        let mix = json!({"overall": {}, "scenarios": {
            "routine": {"honest_payments_declined_pct": 0.1, "honest_payments_stepped_up_pct": 1.0},
            "travel": {"honest_payments_declined_pct": 0.7, "honest_payments_stepped_up_pct": 0.5},
            "compromised_qr": {"honest_payments_declined_pct": 50.0, "honest_payments_stepped_up_pct": 60.0},
        }});
        let block = sweep_block(&Ranges::shipped(), 1, vec![mix]);
        assert_eq!(block["worst"]["overall"]["worst_honest_scenario_declined_pct"], 0.7);
        assert_eq!(block["worst"]["overall"]["worst_honest_scenario_stepped_up_pct"], 1.0);
    }
}
