//! Xiezhi's population simulator and decision-quality yardstick.
//!
//! A seeded population of shoppers, merchants and adversaries pays over simulated days; the
//! traffic goes through the real risk engine and the real ledger in process ([`Bank`]), or
//! through a running server (a [`Driver`] the CLI provides). The ground truth of every
//! payment stays here and is never shown to the engine; the [`report`] counts who was wrongly
//! hurt and what got through, overall, per scenario and per configuration.

pub mod applicants;
pub mod clock;
pub mod driver;
pub mod mix;
pub mod report;
mod sim;
pub mod sweep;
pub mod world;

pub use driver::{AppealTerms, Bank, ChallengeEnd, Driver, EngineConfig, NullDriver, PayRequest, PayResult};
pub use mix::Mix;
pub use report::{markdown, AppealRecord, Recovery, Scenario, Tally, Truth, KEY_FIGURES};
pub use sim::{RunConfig, Simulation, MAX_DAYS, MAX_MERCHANTS, MAX_USERS};

use serde_json::{json, Map, Value};
use std::time::Instant;

/// The blunt baseline's rules.
pub const STRICT_RULES: &str = include_str!("../baselines/strict-rules.json");

#[derive(thiserror::Error)]
pub enum SimError {
    #[error("invalid mix: {0}")]
    Mix(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("driver: {0}")]
    Driver(String),
    /// The public data the population's credit applications come from (a missing file
    /// names the command that fetches it, in one line).
    #[error("{0}")]
    Data(String),
}

/// As its message, so a test that unwraps one fails with that one line.
impl std::fmt::Debug for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// One configuration's run.
pub struct ConfigRun {
    pub name: String,
    pub tally: Tally,
    pub wall_s: f64,
    /// Payments in the measured days.
    pub payments: u64,
    /// Payments sent, warm-up included.
    pub executed_payments: u64,
    pub mode: &'static str,
    /// The comparison run of a mix with credit applications: the same population with its
    /// lines opened on fixed limits, so no credit layer (`credit.compare_without`).
    pub without_credit_layer: bool,
}

impl ConfigRun {
    /// Payments sent per second of wall time, warm-up included.
    pub fn payments_per_s(&self) -> f64 {
        self.executed_payments as f64 / self.wall_s.max(1e-9)
    }
}

/// Runs the population once through `driver`.
pub fn run_with(
    config: &RunConfig,
    name: &str,
    driver: &mut dyn Driver,
    progress: &mut dyn FnMut(u32, u64),
) -> Result<ConfigRun, SimError> {
    run_simulation(Simulation::new(config)?, name, driver, progress)
}

/// Runs a population already built (a driver may need its start first).
pub fn run_simulation(
    mut sim: Simulation<'_>,
    name: &str,
    driver: &mut dyn Driver,
    progress: &mut dyn FnMut(u32, u64),
) -> Result<ConfigRun, SimError> {
    let started = Instant::now();
    sim.run(driver, progress)?;
    let payments = sim.tally.overall_payments();
    let executed_payments = sim.executed_payments();
    Ok(ConfigRun {
        name: name.to_owned(),
        tally: sim.tally,
        wall_s: started.elapsed().as_secs_f64(),
        payments,
        executed_payments,
        mode: driver.mode(),
        without_credit_layer: false,
    })
}

/// Runs the population in process once per configuration, each on its own thread (they
/// share nothing), and returns them in the order given.
pub fn run_in_process(
    config: &RunConfig,
    engines: &[EngineConfig],
    progress: &(dyn Fn(&str, u32, u64) + Sync),
) -> Result<Vec<ConfigRun>, SimError> {
    let currency = xiezhi_money::Currency::from_alpha(&config.mix.currency)
        .ok_or_else(|| SimError::Mix(format!("unknown currency `{}`", config.mix.currency)))?;
    // With credit applications (and `credit.compare_without`), the main configuration also
    // runs on the same population with fixed limits: the credit layer's worth.
    let mut jobs: Vec<(&EngineConfig, std::borrow::Cow<'_, RunConfig>, String, bool)> =
        engines.iter().map(|e| (e, std::borrow::Cow::Borrowed(config), e.name.clone(), false)).collect();
    let credit = &config.mix.credit;
    if let (true, true, Some(main)) = (credit.applications, credit.compare_without, engines.first()) {
        let mut without = config.clone();
        without.mix.credit.applications = false;
        jobs.push((main, std::borrow::Cow::Owned(without), without_credit_layer(&main.name), true));
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(engine, config, name, without)| {
                scope.spawn(move || {
                    let mut bank = Bank::new(engine, currency)?;
                    let mut run =
                        run_with(config, name, &mut bank, &mut |day, payments| progress(name, day, payments))?;
                    run.without_credit_layer = *without;
                    Ok(run)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a simulation thread panicked")).collect()
    })
}

/// The name of a configuration's run without the credit layer.
pub fn without_credit_layer(name: &str) -> String {
    format!("{name}-without-credit-layer")
}

/// The figures the credit layer's comparison shows, with and without it.
pub const CREDIT_LAYER_FIGURES: [&str; 10] = [
    "default_loss_minor",
    "default_amount_minor",
    "fraud_loss_minor",
    "honest_users_restricted_pct",
    "honest_payments_declined_pct",
    "honest_payments_stepped_up_pct",
    "honest_payments_skipped_no_credit",
    "approval_rate_pct",
    "payments",
    "worst_honest_scenario_declined_pct",
];

/// The worst honest scenario's share of honest payments declined, and its name.
fn worst_honest_scenario(tally: &Tally) -> (Value, Value) {
    let scenarios = tally.scenarios_json();
    let mut worst: Option<(&str, f64)> = None;
    for s in Scenario::ALL.iter().filter(|s| s.is_honest()) {
        if let Some(pct) = scenarios.get(s.name()).and_then(|b| b["honest_payments_declined_pct"].as_f64()) {
            if worst.is_none_or(|(_, w)| pct > w) {
                worst = Some((s.name(), pct));
            }
        }
    }
    worst.map_or((Value::Null, Value::Null), |(name, pct)| (json!(pct), json!(name)))
}

/// The credit layer's block: the main configuration's figures with the credit layer (its
/// lines opened on applications) and without (fixed limits), on the same population.
fn credit_layer(primary: &ConfigRun, without: &ConfigRun) -> Value {
    let overall = |run: &ConfigRun| {
        let mut o = run.tally.overall_json();
        let (pct, name) = worst_honest_scenario(&run.tally);
        o["worst_honest_scenario_declined_pct"] = pct;
        o["worst_honest_scenario"] = name;
        o
    };
    let (with, wo) = (overall(primary), overall(without));
    let mut figures = Map::new();
    for key in CREDIT_LAYER_FIGURES {
        figures.insert(key.to_owned(), json!({"with": with[key], "without": wo[key]}));
    }
    figures.insert(
        "worst_honest_scenario".into(),
        json!({"with": with["worst_honest_scenario"], "without": wo["worst_honest_scenario"]}),
    );
    let (a, b) = (with["default_loss_minor"].as_i64().unwrap_or(0), wo["default_loss_minor"].as_i64().unwrap_or(0));
    let reduction = if b > 0 { json!(((b - a) as f64 / b as f64 * 100_000.0).round() / 1_000.0) } else { Value::Null };
    json!({
        "configuration": primary.name,
        "without": without.name,
        "default_loss_reduction_pct": reduction,
        "figures": figures,
        "lines": {"with": primary.tally.lines_json(), "without": without.tally.lines_json()},
    })
}

/// The report: the first run is `overall` and `scenarios`; every run is a `baselines`
/// entry under its configuration name, but the main configuration's run without the credit
/// layer, which is the `credit_layer` block's `without` column.
pub fn report(config: &RunConfig, runs: &[ConfigRun]) -> Value {
    assert!(!runs.is_empty(), "a report needs a run");
    let primary = &runs[0];
    let mut baselines = Map::new();
    let mut performance = Map::new();
    for r in runs {
        // The run without the credit layer is not a configuration of its own: it is the
        // main one on fixed limits, shown in `credit_layer`.
        if !r.without_credit_layer {
            baselines.insert(r.name.clone(), r.tally.overall_json());
        }
        performance.insert(
            r.name.clone(),
            json!({"wall_s": (r.wall_s * 100.0).round() / 100.0, "payments_per_s": r.payments_per_s().round()}),
        );
    }
    let mut report = json!({
        "simulation": {
            "users": config.users,
            "merchants": config.merchants,
            "days": config.days,
            "seed": config.seed,
            "mix": config.mix.version,
            "start_date": config.mix.start_date,
            "mode": primary.mode,
            "configuration": primary.name,
            "performance": performance,
        },
        "overall": primary.tally.overall_json(),
        "scenarios": primary.tally.scenarios_json(),
        "baselines": baselines,
    });
    if let Some(watch) = primary.tally.watch_json() {
        report["challenger"] = watch;
    }
    report["credit_lines"] = primary.tally.lines_json();
    if let Some(without) = runs.iter().find(|r| r.without_credit_layer && r.name == without_credit_layer(&primary.name))
    {
        report["credit_layer"] = credit_layer(primary, without);
    }
    report
}

/// Payments a simulated shopper makes on an average day under `mix`: measured by running a
/// small population for a week through the [`NullDriver`] (a few milliseconds).
pub fn payments_per_user_day(mix: &Mix) -> f64 {
    let config = RunConfig { users: 2_000, merchants: 400, days: 7, seed: 7, warmup_days: 0, mix: mix.clone() };
    match run_with(&config, "estimate", &mut NullDriver, &mut |_, _| {}) {
        Ok(run) => run.executed_payments as f64 / (2_000.0 * 7.0),
        Err(_) => 2.0,
    }
}
