//! `xiezhi model train|evaluate`: models on the public datasets, with the fixed split.

use clap::Subcommand;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use xiezhi_models::artefact::{Artefact, ModelBody, MANIFEST_FILE, MODEL_FILE};
use xiezhi_models::gbdt::{Gbdt, GbdtOptions};
use xiezhi_models::{Metrics, Scorecard, ScorecardOptions};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Train on a dataset's training split and write a versioned artefact.
    Train {
        /// A dataset of ../shared/data (german_credit, modeldata_credit_data, …).
        #[arg(long)]
        dataset: String,
        /// `scorecard` or `gbdt`.
        #[arg(long, default_value = "scorecard")]
        kind: String,
        /// Directory to write `manifest.json` and `model.json` into.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the datasets are (default: $XIEZHI_DATA_DIR or ../shared/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Train the fraud model on the engine's own features over simulated populations, from
    /// a recipe (default: the shipped model's, crates/risk/models/fraud-default/recipe.json):
    /// the same recipe gives the same bytes.
    TrainSim {
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Directory to write `recipe.json`, `manifest.json` and `model.json` into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Score one test row as a person would read it: score, probability, and the reasons
    /// (adverse-action codes with zh/en text for credit models).
    Explain {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        dataset: String,
        /// Index of the row in the test split.
        #[arg(long, default_value_t = 0)]
        row: usize,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Propose a credit limit for one test applicant from the policy's score bands and a
    /// declared monthly income; with `--current-limit`, a re-scoring proposal (increase,
    /// decrease or keep) for an existing line. Proposals only: nothing is applied.
    ProposeLimit {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        dataset: String,
        #[arg(long, default_value_t = 0)]
        row: usize,
        /// Declared monthly income, decimal in the policy's currency.
        #[arg(long)]
        monthly_income: String,
        #[arg(long)]
        current_limit: Option<String>,
        /// Policy document with `credit_limits` (default: the shipped policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Evaluate an artefact on a dataset's fixed test split.
    Evaluate {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        dataset: String,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub fn run(command: ModelCommand) -> ExitCode {
    let result = match command {
        ModelCommand::Train { dataset, kind, out, seed, data_dir } => train(&dataset, &kind, &out, seed, data_dir),
        ModelCommand::TrainSim { recipe, out } => crate::train_sim::train_sim(recipe.as_deref(), &out),
        ModelCommand::Evaluate { model, dataset, json, data_dir } => evaluate(&model, &dataset, json, data_dir),
        ModelCommand::Explain { model, dataset, row, json, data_dir } => explain(&model, &dataset, row, json, data_dir),
        ModelCommand::ProposeLimit { model, dataset, row, monthly_income, current_limit, policy, data_dir } => {
            propose_limit(&model, &dataset, row, &monthly_income, current_limit.as_deref(), policy, data_dir)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xiezhi model: {e}");
            ExitCode::from(2)
        }
    }
}

/// Fraud datasets are split by time and also report recall at a 1 % false-positive rate.
fn is_fraud(spec: &xiezhi_datasets::DatasetSpec) -> bool {
    matches!(spec.split, xiezhi_datasets::Split::Time { .. } | xiezhi_datasets::Split::Ordered)
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn metrics_json(dataset: &str, m: &Metrics, fraud: bool) -> serde_json::Value {
    let mut v = json!({
        "dataset": dataset,
        "rows_test": m.rows,
        "roc_auc": round(m.roc_auc),
        "ks": round(m.ks),
        "pr_auc": round(m.pr_auc),
        "brier": round(m.brier),
    });
    if fraud {
        v["recall_at_1pct_fpr"] = json!(round(m.recall_at_1pct_fpr));
    }
    v
}

fn train(dataset: &str, kind: &str, out: &Path, seed: u64, data_dir: Option<PathBuf>) -> Result<(), String> {
    let dir = data_dir.unwrap_or_else(xiezhi_datasets::default_data_dir);
    let options = GbdtOptions { seed, ..GbdtOptions::default() };
    let (artefact, mut summary) = fit(dataset, kind, &dir, &options)?;
    write_artefact(out, &artefact)?;
    summary["out"] = json!(out.display().to_string());
    println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    Ok(())
}

/// Trains a `kind` model on `dataset`'s training split (GBDT with `options`; a scorecard
/// takes only the seed) and measures it on both splits: the artefact and a summary.
pub fn fit(
    dataset: &str,
    kind: &str,
    dir: &Path,
    options: &GbdtOptions,
) -> Result<(Artefact, serde_json::Value), String> {
    if kind != "scorecard" && kind != "gbdt" {
        return Err(format!("unknown --kind `{kind}` (known: scorecard, gbdt)"));
    }
    let spec = xiezhi_datasets::spec(dataset).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let loaded = xiezhi_datasets::load(spec, dir).map_err(|e| e.to_string())?;
    let (train, test) = loaded.split(spec);
    let model = if kind == "gbdt" {
        ModelBody::Gbdt(Gbdt::train(&train, options).map_err(|e| e.to_string())?)
    } else {
        ModelBody::Scorecard(Scorecard::train(&train, &ScorecardOptions::default()).map_err(|e| e.to_string())?)
    };
    let mut metrics = BTreeMap::new();
    for (name, table) in [("train", &train), ("test", &test)] {
        let p = model.predict(table).map_err(|e| e.to_string())?;
        metrics.insert(name.to_owned(), Metrics::compute(&p, &table.target));
    }
    let test_metrics = metrics["test"].clone();
    let artefact = Artefact::new(model, dataset, loaded.sha256.clone(), train.rows(), options.seed, metrics);
    let summary = json!({
        "version": artefact.manifest.version,
        "kind": kind,
        "rows_train": train.rows(),
        "features": artefact.manifest.features.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "test": metrics_json(dataset, &test_metrics, is_fraud(spec)),
        "training_seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
    });
    Ok((artefact, summary))
}

/// Writes an artefact's two files into `out`.
pub fn write_artefact(out: &Path, artefact: &Artefact) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (manifest, model) = artefact.to_files();
    // The model first, then the manifest that vouches for it: a crash between leaves no
    // manifest pointing at a half-written model.
    std::fs::write(out.join(MODEL_FILE), &model).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out.join(MANIFEST_FILE), manifest).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

/// Reads an artefact directory, checking its hash and format.
pub fn read_artefact(dir: &Path) -> Result<Artefact, String> {
    let manifest = std::fs::read_to_string(dir.join(MANIFEST_FILE))
        .map_err(|e| format!("{}: {e}", dir.join(MANIFEST_FILE).display()))?;
    let model = std::fs::read(dir.join(MODEL_FILE)).map_err(|e| format!("{}: {e}", dir.join(MODEL_FILE).display()))?;
    Artefact::from_files(&manifest, &model).map_err(|e| format!("{}: {e}", dir.display()))
}

fn evaluate(model: &Path, dataset: &str, as_json: bool, data_dir: Option<PathBuf>) -> Result<(), String> {
    let artefact = read_artefact(model)?;
    let spec = xiezhi_datasets::spec(dataset).map_err(|e| e.to_string())?;
    let dir = data_dir.unwrap_or_else(xiezhi_datasets::default_data_dir);
    let loaded = xiezhi_datasets::load(spec, &dir).map_err(|e| e.to_string())?;
    let (_, test) = loaded.split(spec);
    let p = artefact.model.predict(&test).map_err(|e| format!("{}: {e}", model.display()))?;
    let m = Metrics::compute(&p, &test.target);
    let out = metrics_json(dataset, &m, is_fraud(spec));
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "{} on {dataset} (test, {} rows): ROC AUC {:.4}, KS {:.4}, PR AUC {:.4}, Brier {:.4}",
            artefact.manifest.version, m.rows, m.roc_auc, m.ks, m.pr_auc, m.brier
        );
    }
    Ok(())
}

/// The scorer a `--fraud-model` value names: none or `shipped`, the shipped model;
/// `heuristic`, the hand-weighted scorer; anything else, a model directory (write
/// `./heuristic` for a directory of that name).
pub fn scorer_named(name: Option<&Path>) -> Result<std::sync::Arc<dyn xiezhi_risk::Scorer>, String> {
    match name.and_then(|n| n.to_str()) {
        None | Some("shipped") => Ok(xiezhi_risk::shipped_scorer()),
        Some("heuristic") => Ok(std::sync::Arc::new(xiezhi_risk::HeuristicScorer)),
        Some(_) => fraud_scorer(name.expect("matched Some")),
    }
}

/// Whether a `--fraud-model` value is a model directory (not `shipped` or `heuristic`).
pub fn is_model_dir(name: &Path) -> bool {
    !matches!(name.to_str(), Some("shipped" | "heuristic"))
}

/// A fraud model directory as the engine's scorer, its schema checked against the engine's
/// features.
pub fn fraud_scorer(dir: &Path) -> Result<std::sync::Arc<dyn xiezhi_risk::Scorer>, String> {
    let artefact = read_artefact(dir)?;
    let scorer = xiezhi_risk::ModelScorer::new(artefact).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(std::sync::Arc::new(scorer))
}

/// Most reasons given for one score, as adverse-action notices give.
const MAX_REASONS: usize = 4;

fn explain(dir: &Path, dataset: &str, row: usize, as_json: bool, data_dir: Option<PathBuf>) -> Result<(), String> {
    let artefact = read_artefact(dir)?;
    let spec = xiezhi_datasets::spec(dataset).map_err(|e| e.to_string())?;
    let loaded = xiezhi_datasets::load(spec, &data_dir.unwrap_or_else(xiezhi_datasets::default_data_dir))
        .map_err(|e| e.to_string())?;
    let (_, test) = loaded.split(spec);
    if row >= test.rows() {
        return Err(format!("--row {row}: the test split has {} rows", test.rows()));
    }
    let catalogue = xiezhi_risk::Catalogue::new();
    let credit = !is_fraud(spec);
    let reason = |feature: &str| -> serde_json::Value {
        if !credit {
            return json!({});
        }
        let code = xiezhi_risk::catalogue::credit_reason_for_feature(feature);
        let text = |l| catalogue.reason(l, code, &[]).unwrap_or_default();
        json!({"reason_code": code, "explanation": {"en": text(xiezhi_risk::catalogue::Language::En),
            "zh": text(xiezhi_risk::catalogue::Language::Zh)}})
    };
    let merge = |mut a: serde_json::Value, b: serde_json::Value| {
        if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
            a.extend(b.clone());
        }
        a
    };
    let out = match &artefact.model {
        ModelBody::Scorecard(card) => {
            let columns = card.columns_in(&test).map_err(|e| e.to_string())?;
            let values: Vec<_> = columns.iter().map(|c| test.value(*c, row)).collect();
            let scored = card.score(&values, MAX_REASONS);
            json!({
                "model": artefact.manifest.version,
                "row": row,
                "actual": if test.target[row] { "bad" } else { "good" },
                "score": scored.score.round(),
                "probability_bad": round(scored.probability),
                "reasons": scored.reasons.iter().map(|r| merge(json!({"feature": r.feature,
                    "points_lost": (r.points_lost * 10.0).round() / 10.0}), reason(&r.feature))).collect::<Vec<_>>(),
            })
        }
        ModelBody::Gbdt(model) => {
            let columns = model.columns_in(&test).map_err(|e| e.to_string())?;
            let values: Vec<_> = columns.iter().map(|c| test.value(*c, row)).collect();
            let (p, contributions) = model.explain(&values).map_err(|e| e.to_string())?;
            json!({
                "model": artefact.manifest.version,
                "row": row,
                "actual": if test.target[row] { "positive" } else { "negative" },
                "probability": round(p),
                "reasons": contributions.iter().filter(|c| c.log_odds > 0.0).take(MAX_REASONS).map(|c| merge(json!({
                    "feature": c.feature, "log_odds": round(c.log_odds)}), reason(&c.feature))).collect::<Vec<_>>(),
            })
        }
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        let text = |key: &str| out[key].as_str().unwrap_or_default().to_owned();
        println!("{} on {dataset}, test row {row} (actually {}):", text("model"), text("actual"));
        if let Some(score) = out.get("score") {
            println!("  score {score}, probability of default {}", out["probability_bad"]);
        } else {
            println!("  probability {}", out["probability"]);
        }
        for r in out["reasons"].as_array().into_iter().flatten() {
            println!(
                "  - {} {}: {} / {}",
                r["feature"].as_str().unwrap_or_default(),
                r.get("reason_code").and_then(|c| c.as_str()).map(|c| format!("({c})")).unwrap_or_default(),
                r["explanation"]["en"].as_str().unwrap_or("-"),
                r["explanation"]["zh"].as_str().unwrap_or("-"),
            );
        }
    }
    Ok(())
}

/// Points on the scorecard scale (600 at 50:1 good to bad, 20 points to double the odds)
/// for a probability of default: boosted trees get a score on the same scale.
fn points_for(probability_bad: f64) -> f64 {
    let p = probability_bad.clamp(1e-9, 1.0 - 1e-9);
    600.0 + 20.0 / std::f64::consts::LN_2 * (((1.0 - p) / p) / 50.0).ln()
}

fn propose_limit(
    dir: &Path,
    dataset: &str,
    row: usize,
    monthly_income: &str,
    current_limit: Option<&str>,
    policy: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> Result<(), String> {
    let artefact = read_artefact(dir)?;
    let catalogue = std::sync::Arc::new(xiezhi_risk::Catalogue::new());
    let text = match &policy {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        None => xiezhi_risk::Policy::default_document().to_owned(),
    };
    let policy = xiezhi_risk::Policy::from_json(&text, &catalogue).map_err(|e| e.to_string())?;
    let limits = policy.credit_limits().ok_or("the policy has no `credit_limits` section")?;
    let cur = limits.currency;
    let income = xiezhi_money::parse_minor(monthly_income, cur, xiezhi_money::Sign::NonNegative)
        .map_err(|e| format!("--monthly-income: {e}"))?;
    let current = current_limit
        .map(|t| xiezhi_money::parse_minor(t, cur, xiezhi_money::Sign::NonNegative))
        .transpose()
        .map_err(|e| format!("--current-limit: {e}"))?;
    let spec = xiezhi_datasets::spec(dataset).map_err(|e| e.to_string())?;
    let loaded = xiezhi_datasets::load(spec, &data_dir.unwrap_or_else(xiezhi_datasets::default_data_dir))
        .map_err(|e| e.to_string())?;
    let (_, test) = loaded.split(spec);
    if row >= test.rows() {
        return Err(format!("--row {row}: the test split has {} rows", test.rows()));
    }
    let single = test.select(&[row]);
    let probability = artefact.model.predict(&single).map_err(|e| e.to_string())?[0];
    let score = points_for(probability).round() as i64;
    let proposal = limits.propose(score, income, current);
    let exp = cur.minor_unit_exponent();
    let out = json!({
        "model": artefact.manifest.version,
        "row": row,
        "score": score,
        "probability_bad": round(probability),
        "policy": policy.version(),
        "proposal": {
            "change": proposal.change,
            "band": proposal.band,
            "limit": xiezhi_money::format_minor(proposal.limit_minor, exp),
            "current_limit": proposal.current_limit_minor.map(|m| xiezhi_money::format_minor(m, exp)),
            "bounded_by": proposal.bounded_by,
            "currency": cur.alpha(),
        },
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    Ok(())
}
