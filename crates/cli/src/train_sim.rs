//! `xiezhi model train-sim`: the fraud model trained on the engine's own features, over
//! simulated populations drawn from the sweep's ranges on the tuning seeds only. Everything
//! that decides its bytes is in a recipe kept beside the shipped model, so one command
//! regenerates the same bytes and CI checks that it does (docs/QUALITY.md).

use crate::model_cmd::{fit, write_artefact};
use serde::{Deserialize, Serialize};
use std::path::Path;
use xiezhi_models::gbdt::GbdtOptions;
use xiezhi_sim::{EngineConfig, Mix, RunConfig};

/// The recipe of the shipped model, read by `train-sim` when no `--recipe` is given.
pub const SHIPPED_RECIPE: &str = include_str!("../../risk/models/fraud-default/recipe.json");

/// Everything that decides the model's bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub version: String,
    pub users: u32,
    pub merchants: u32,
    pub days: u32,
    pub warmup_days: u32,
    /// The population's seed (shoppers, merchants, plans); the mixes come from the sweep seeds.
    pub population_seed: u64,
    /// Sweep seeds whose mixes the model learns from: the tuning seeds, never the ones
    /// reported on (docs/QUALITY.md names both sets).
    pub sweep_seeds: Vec<u64>,
    pub mixes_per_seed: u32,
    /// Every adversary's incidence times this, in %: attackers are rare, and a model learns
    /// an attack from its examples, not from its rarity.
    pub adversary_scale_pct: u32,
    pub gbdt: GbdtOptions,
}

impl Recipe {
    pub fn from_json(text: &str) -> Result<Recipe, String> {
        let recipe: Recipe = serde_json::from_str(text).map_err(|e| format!("recipe: {e}"))?;
        if recipe.sweep_seeds.is_empty() || recipe.mixes_per_seed == 0 {
            return Err("recipe: needs at least one sweep seed and one mix per seed".into());
        }
        if recipe.mixes_per_seed > xiezhi_sim::sweep::MAX_SWEEP_MIXES || recipe.adversary_scale_pct == 0 {
            return Err("recipe: mixes_per_seed or adversary_scale_pct out of range".into());
        }
        Ok(recipe)
    }

    /// The runs the model learns from, in the order their rows are written.
    fn runs(&self) -> Result<Vec<RunConfig>, String> {
        let ranges = xiezhi_sim::sweep::Ranges::shipped();
        let mut runs = Vec::new();
        for seed in &self.sweep_seeds {
            for index in 0..self.mixes_per_seed {
                let (mut mix, _) = ranges.draw(&Mix::default_mix(), *seed, index).map_err(|e| e.to_string())?;
                // Nobody appeals in the training traffic: the model learns from payments, an
                // appeal only changes a restricted line's later ones, and the model's bytes
                // should not depend on how fast or how well simulated reviewers work.
                mix.honest.appeal_prob = 0.0;
                mix.adversaries.restricted_fraudster_appeal_prob = 0.0;
                let config = RunConfig {
                    users: self.users,
                    merchants: self.merchants,
                    days: self.days,
                    seed: self.population_seed,
                    warmup_days: self.warmup_days,
                    mix: scale_adversaries(&mix, self.adversary_scale_pct)?,
                };
                config.check().map_err(|e| e.to_string())?;
                runs.push(config);
            }
        }
        Ok(runs)
    }
}

/// `mix` with every adversary's incidence (`per_10k_users`, `per_100k_users`,
/// `rings_per_100k_users`, …) multiplied by `pct` / 100. Generic over the JSON so a new
/// scenario's incidence scales without being listed here.
fn scale_adversaries(mix: &Mix, pct: u32) -> Result<Mix, String> {
    let mut value = serde_json::to_value(mix).map_err(|e| e.to_string())?;
    if let Some(adversaries) = value.get_mut("adversaries").and_then(|a| a.as_object_mut()) {
        for scenario in adversaries.values_mut().filter_map(|s| s.as_object_mut()) {
            for (key, rate) in scenario.iter_mut() {
                if let (true, Some(x)) = (key.contains("per_") && key.ends_with("_users"), rate.as_f64()) {
                    *rate = serde_json::json!(x * f64::from(pct) / 100.0);
                }
            }
        }
    }
    value["version"] = serde_json::json!(format!("{}*{pct}%", mix.version));
    let scaled: Mix = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok(scaled)
}

/// The engine the training traffic runs through: the shipped rules and policy with the
/// heuristic scorer, pinned so the model never learns from its own decisions.
fn training_engine() -> EngineConfig {
    EngineConfig {
        name: "training".into(),
        rules_json: None,
        policy_json: None,
        scorer: Some(std::sync::Arc::new(xiezhi_risk::HeuristicScorer)),
        challenger: None,
    }
}

/// Runs every mix of the recipe (one per core at a time) and writes their feature rows, in
/// recipe order whatever finished first, to `csv`.
fn write_training_data(recipe: &Recipe, csv: &Path) -> Result<u64, String> {
    let runs = recipe.runs()?;
    let engine = training_engine();
    let outputs = crate::simulate::in_parallel(runs.len(), |i| {
        let mut rows = Vec::new();
        let run = crate::simulate::write_feature_rows(&runs[i], &engine, &mut rows, &mut |_, _| {});
        eprintln!("[train-sim] mix {}/{} ({}) simulated", i + 1, runs.len(), runs[i].mix.version);
        run.map(|r| (rows, r.payments))
    });
    let mut text = crate::simulate::feature_header().into_bytes();
    text.push(b'\n');
    let mut payments = 0;
    for out in outputs {
        let (rows, n) = out?;
        text.extend_from_slice(&rows);
        payments += n;
    }
    std::fs::write(csv, text).map_err(|e| format!("{}: {e}", csv.display()))?;
    Ok(payments)
}

/// Simulates the recipe's mixes, trains the GBDT on their features (the first 70 % of rows
/// in recipe order train, the rest test) and writes the artefact to `out`.
pub fn train_sim(recipe_path: Option<&Path>, out: &Path) -> Result<(), String> {
    let text = match recipe_path {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => SHIPPED_RECIPE.to_owned(),
    };
    let recipe = Recipe::from_json(&text)?;
    let started = std::time::Instant::now();
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let data_dir = out.join("training-data");
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let spec = xiezhi_datasets::spec("sim_traffic").map_err(|e| e.to_string())?;
    let payments = write_training_data(&recipe, &data_dir.join(spec.file))?;
    let simulated_s = started.elapsed().as_secs_f64();
    let (artefact, mut summary) = fit("sim_traffic", "gbdt", &data_dir, &recipe.gbdt)?;
    std::fs::remove_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    std::fs::write(out.join(RECIPE_FILE), &text).map_err(|e| format!("{}: {e}", out.display()))?;
    write_artefact(out, &artefact)?;
    summary["recipe"] = serde_json::json!(recipe.version);
    summary["payments_simulated"] = serde_json::json!(payments);
    summary["simulation_seconds"] = serde_json::json!((simulated_s * 10.0).round() / 10.0);
    summary["seconds"] = serde_json::json!((started.elapsed().as_secs_f64() * 10.0).round() / 10.0);
    summary["out"] = serde_json::json!(out.display().to_string());
    println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    Ok(())
}

pub const RECIPE_FILE: &str = "recipe.json";
