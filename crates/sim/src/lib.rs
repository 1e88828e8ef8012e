//! Xiezhi's population simulator and decision-quality yardstick.
//!
//! A seeded population of shoppers, merchants and adversaries pays over simulated days; the
//! traffic goes through the real risk engine and the real ledger in process ([`Bank`]), or
//! through a running server (a [`Driver`] the CLI provides). The ground truth of every
//! payment stays here and is never shown to the engine; the [`report`] counts who was wrongly
//! hurt and what got through, overall, per scenario and per configuration.

pub mod clock;
pub mod driver;
pub mod mix;
pub mod report;
mod sim;
pub mod sweep;
pub mod world;

pub use driver::{Bank, ChallengeEnd, Driver, EngineConfig, NullDriver, PayRequest, PayResult};
pub use mix::Mix;
pub use report::{markdown, Scenario, Tally, Truth, KEY_FIGURES};
pub use sim::{RunConfig, Simulation, MAX_DAYS, MAX_MERCHANTS, MAX_USERS};

use serde_json::{json, Map, Value};
use std::time::Instant;

/// The blunt baseline's rules.
pub const STRICT_RULES: &str = include_str!("../baselines/strict-rules.json");

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid mix: {0}")]
    Mix(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("driver: {0}")]
    Driver(String),
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
    std::thread::scope(|scope| {
        let handles: Vec<_> = engines
            .iter()
            .map(|engine| {
                scope.spawn(move || {
                    let mut bank = Bank::new(engine, currency)?;
                    run_with(config, &engine.name, &mut bank, &mut |day, payments| {
                        progress(&engine.name, day, payments)
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a simulation thread panicked")).collect()
    })
}

/// The report: the first run is `overall` and `scenarios`; every run is a `baselines`
/// entry under its configuration name.
pub fn report(config: &RunConfig, runs: &[ConfigRun]) -> Value {
    assert!(!runs.is_empty(), "a report needs a run");
    let primary = &runs[0];
    let mut baselines = Map::new();
    let mut performance = Map::new();
    for r in runs {
        baselines.insert(r.name.clone(), r.tally.overall_json());
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
