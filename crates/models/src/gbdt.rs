//! Gradient-boosted trees: the challenger for credit and the main fraud model.
//!
//! Trained with `forust-ml` (pure Rust, stable toolchain, histogram trees with native
//! missing values, early stopping, contributions per prediction). Contributions use the
//! path-average method (XGBoost's `approx_contribs`): they add up to the prediction's log
//! odds exactly and cost 15 µs for the 193-tree fraud model, where exact Shapley values
//! (also in forust) cost 170–290 µs (docs/BENCHMARKS.md). Categories are
//! coded by their training bad rate, so a split on the code separates risky levels from
//! safe ones; unseen levels are missing. Early stopping watches a validation slice carved
//! from the training rows by their file index, never the test split.

use crate::table::{Column, FeatureKind, Table, Value};
use crate::ModelError;
use forust_ml::gradientbooster::GradientBooster;
use forust_ml::metric::Metric;
use forust_ml::Matrix;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GbdtOptions {
    pub max_iterations: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    pub min_leaf_weight: f32,
    pub l2: f32,
    /// Rounds without improvement on the validation slice before training stops.
    pub early_stopping_rounds: usize,
    pub seed: u64,
}

impl Default for GbdtOptions {
    fn default() -> Self {
        GbdtOptions {
            max_iterations: 2_000,
            learning_rate: 0.05,
            max_depth: 4,
            min_leaf_weight: 5.0,
            l2: 1.0,
            early_stopping_rounds: 50,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbdtFeature {
    pub name: String,
    pub kind: FeatureKind,
    /// Categorical levels from safest to riskiest; a level's code is its position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Gbdt {
    pub options: GbdtOptions,
    pub features: Vec<GbdtFeature>,
    pub trees: usize,
    /// The booster as `forust-ml` writes it.
    pub booster: String,
    /// The parsed booster and level lookups, built once (training or `load`).
    #[serde(skip)]
    loaded: Option<std::sync::Arc<Ready>>,
}

struct Ready {
    booster: GradientBooster,
    lookups: Vec<HashMap<String, usize>>,
    /// Each prediction tree's hessian-weighted mean leaf value per node: what path-average
    /// contributions compare a child with its parent by. `forust` rebuilds these on every
    /// call (most of a single row's 15 µs); they depend only on the trees, so once here.
    node_means: Vec<Vec<f64>>,
}

impl Ready {
    fn new(booster: GradientBooster, lookups: Vec<HashMap<String, usize>>) -> Ready {
        let node_means = prediction_trees(&booster).iter().map(|t| t.distribute_leaf_weights()).collect();
        Ready { booster, lookups, node_means }
    }
}

/// The trees a prediction sums: all of them, or those up to the best early-stopping round.
fn prediction_trees(booster: &GradientBooster) -> &[forust_ml::tree::Tree] {
    let n = booster.prediction_iteration.unwrap_or(booster.trees.len()).min(booster.trees.len());
    &booster.trees[..n]
}

impl std::fmt::Debug for Gbdt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gbdt").field("features", &self.features).field("trees", &self.trees).finish_non_exhaustive()
    }
}

impl PartialEq for Gbdt {
    fn eq(&self, other: &Self) -> bool {
        self.options == other.options && self.features == other.features && self.booster == other.booster
    }
}

/// Training rows above which trees grow deeper (see `Gbdt::train`).
pub const LARGE_ROWS: usize = 100_000;

/// A feature's push on one prediction, in log-odds (positive = towards the positive class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    pub log_odds: f64,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Rows of `table` whose file index puts them in the validation slice of the training split.
fn is_validation(row_index: usize) -> bool {
    row_index % 10 == 3
}

impl Gbdt {
    pub fn train(train: &Table, options: &GbdtOptions) -> Result<Gbdt, ModelError> {
        if train.rows() == 0 {
            return Err(ModelError::Empty);
        }
        let positives = train.positives();
        if positives == 0 || positives == train.rows() {
            return Err(ModelError::OneClass(format!("{positives} positives in {} rows", train.rows())));
        }
        let (fit_rows, valid_rows): (Vec<usize>, Vec<usize>) =
            (0..train.rows()).partition(|i| !is_validation(train.row_index[*i]));
        let fit = train.select(&fit_rows);
        let features: Vec<GbdtFeature> = fit
            .names
            .iter()
            .zip(&fit.columns)
            .map(|(name, column)| match column {
                Column::Numeric(_) => GbdtFeature { name: name.clone(), kind: FeatureKind::Numeric, levels: vec![] },
                Column::Categorical { codes, levels } => {
                    let mut counts = vec![(0u64, 0u64); levels.len()];
                    for (c, t) in codes.iter().zip(&fit.target) {
                        if let Some(slot) = counts.get_mut(*c as usize) {
                            slot.0 += 1;
                            slot.1 += u64::from(*t);
                        }
                    }
                    let overall = positives as f64 / train.rows() as f64;
                    let rate = |i: usize| (counts[i].1 as f64 + 20.0 * overall) / (counts[i].0 as f64 + 20.0);
                    let mut order: Vec<usize> = (0..levels.len()).filter(|i| counts[*i].0 > 0).collect();
                    order.sort_by(|a, b| rate(*a).total_cmp(&rate(*b)).then(a.cmp(b)));
                    GbdtFeature {
                        name: name.clone(),
                        kind: FeatureKind::Categorical,
                        levels: order.iter().map(|i| levels[*i].clone()).collect(),
                    }
                }
            })
            .collect();
        let mut model = Gbdt { options: options.clone(), features, trees: 0, booster: String::new(), loaded: None };
        let columns: Vec<usize> = (0..fit.names.len()).collect();
        let x_fit = model.matrix(&fit, &columns);
        let y_fit: Vec<f64> = fit.target.iter().map(|t| f64::from(u8::from(*t))).collect();
        let valid = train.select(&valid_rows);
        let x_valid = model.matrix(&valid, &columns);
        let y_valid: Vec<f64> = valid.target.iter().map(|t| f64::from(u8::from(*t))).collect();
        let w_fit = vec![1.0; fit.rows()];
        let w_valid = vec![1.0; valid.rows()];
        // Large data carries deeper interactions and takes more trees to fit: above
        // `LARGE_ROWS` rows, trees go two levels deeper and learn twice as fast.
        let large = fit.rows() > LARGE_ROWS;
        let (depth, rate) = if large {
            (options.max_depth + 2, options.learning_rate * 2.0)
        } else {
            (options.max_depth, options.learning_rate)
        };
        let mut booster = GradientBooster::default()
            .set_iterations(options.max_iterations)
            .set_learning_rate(rate)
            .set_max_depth(depth)
            .set_min_leaf_weight(options.min_leaf_weight)
            .set_l2(options.l2)
            .set_seed(options.seed)
            .set_evaluation_metric(Some(Metric::LogLoss))
            .set_early_stopping_rounds(Some(options.early_stopping_rounds));
        let fit_matrix = Matrix::new(&x_fit, fit.rows(), columns.len());
        let valid_matrix = Matrix::new(&x_valid, valid.rows(), columns.len());
        let evaluation =
            if valid.rows() > 0 { Some(vec![(valid_matrix, y_valid.as_slice(), w_valid.as_slice())]) } else { None };
        booster
            .fit(&fit_matrix, &y_fit, &w_fit, evaluation)
            .map_err(|e| ModelError::Schema(format!("training failed: {e}")))?;
        model.trees = booster.trees.len();
        model.booster = booster.json_dump().map_err(|e| ModelError::Artefact(e.to_string()))?;
        model.loaded = Some(std::sync::Arc::new(Ready::new(booster, model.lookups())));
        Ok(model)
    }

    fn ready(&self) -> Result<std::sync::Arc<Ready>, ModelError> {
        match &self.loaded {
            Some(r) => Ok(std::sync::Arc::clone(r)),
            None => {
                let booster = GradientBooster::from_json(&self.booster)
                    .map_err(|e| ModelError::Artefact(format!("booster: {e}")))?;
                Ok(std::sync::Arc::new(Ready::new(booster, self.lookups())))
            }
        }
    }

    /// Parses the booster and builds the level lookups once, so that scoring does not.
    pub fn load(mut self) -> Result<Gbdt, ModelError> {
        let ready = self.ready()?;
        self.loaded = Some(ready);
        Ok(self)
    }

    fn code(&self, feature: usize, value: Value<'_>, lookup: &HashMap<String, usize>) -> f64 {
        match value {
            Value::Missing => f64::NAN,
            Value::Number(x) => x,
            Value::Level(level) => lookup.get(level).map_or(f64::NAN, |i| *i as f64),
        }
        .max(if self.features[feature].kind == FeatureKind::Numeric { f64::NEG_INFINITY } else { 0.0 })
    }

    fn lookups(&self) -> Vec<HashMap<String, usize>> {
        self.features.iter().map(|f| f.levels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect()).collect()
    }

    /// Column-major matrix of `table`'s `columns` in feature order.
    fn matrix(&self, table: &Table, columns: &[usize]) -> Vec<f64> {
        let built;
        let lookups = match &self.loaded {
            Some(ready) => &ready.lookups,
            None => {
                built = self.lookups();
                &built
            }
        };
        let mut x = Vec::with_capacity(table.rows() * columns.len());
        for (f, c) in columns.iter().enumerate() {
            for row in 0..table.rows() {
                x.push(self.code(f, table.value(*c, row), &lookups[f]));
            }
        }
        x
    }

    pub fn columns_in(&self, table: &Table) -> Result<Vec<usize>, ModelError> {
        table.columns_for(self.features.iter().map(|f| (f.name.as_str(), f.kind)))
    }

    /// Probabilities of the positive class for every row of `table`.
    pub fn predict(&self, table: &Table) -> Result<Vec<f64>, ModelError> {
        let columns = self.columns_in(table)?;
        let x = self.matrix(table, &columns);
        let ready = self.ready()?;
        let matrix = Matrix::new(&x, table.rows(), columns.len());
        Ok(ready.booster.predict(&matrix, true).into_iter().map(sigmoid).collect())
    }

    /// One row's probability of the positive class: one walk down each tree, the same sum in
    /// the same order as [`Gbdt::predict`] (a test holds them equal).
    pub fn probability(&self, values: &[Value<'_>]) -> Result<f64, ModelError> {
        assert_eq!(values.len(), self.features.len(), "one value per feature");
        let ready = self.ready()?;
        let x: Vec<f64> = values.iter().enumerate().map(|(f, v)| self.code(f, *v, &ready.lookups[f])).collect();
        let mut logit = ready.booster.base_score;
        for tree in prediction_trees(&ready.booster) {
            logit += tree.predict_row_from_row_slice(&x, &ready.booster.missing);
        }
        Ok(sigmoid(logit))
    }

    /// One row: the probability and each feature's contribution in log-odds (path
    /// averages; they sum to the prediction), largest push towards the positive class first.
    pub fn explain(&self, values: &[Value<'_>]) -> Result<(f64, Vec<Contribution>), ModelError> {
        assert_eq!(values.len(), self.features.len(), "one value per feature");
        let ready = self.ready()?;
        let x: Vec<f64> = values.iter().enumerate().map(|(f, v)| self.code(f, *v, &ready.lookups[f])).collect();
        // forust's `predict_contributions(…, Average, …)` for one row, with the node means
        // built once (a test holds the two equal).
        let mut contributions = vec![0.0; x.len() + 1];
        contributions[x.len()] = ready.booster.base_score;
        for (tree, means) in prediction_trees(&ready.booster).iter().zip(&ready.node_means) {
            tree.predict_contributions_row_average(&x, &mut contributions, means, &ready.booster.missing);
        }
        let logit: f64 = contributions.iter().sum();
        let mut out: Vec<Contribution> = self
            .features
            .iter()
            .zip(&contributions)
            .map(|(f, c)| Contribution { feature: f.name.clone(), log_odds: *c })
            .collect();
        out.sort_by(|a, b| b.log_odds.total_cmp(&a.log_odds));
        Ok((sigmoid(logit), out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: usize) -> Table {
        let mut state = 11u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let (mut a, mut b, mut codes, mut target) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let x = next();
            let y = next();
            let c = (i % 3) as u32;
            // An interaction a scorecard cannot see: risky when both are high.
            let p = if x > 0.6 && y > 0.6 { 0.8 } else { 0.1 } + if c == 2 { 0.1 } else { 0.0 };
            a.push(if i % 40 == 0 { f64::NAN } else { x });
            b.push(y);
            codes.push(c);
            target.push(next() < p);
        }
        Table {
            names: vec!["a".into(), "b".into(), "c".into()],
            columns: vec![
                Column::Numeric(a),
                Column::Numeric(b),
                Column::Categorical { codes, levels: vec!["x".into(), "y".into(), "z".into()] },
            ],
            target,
            row_index: (0..n).collect(),
        }
    }

    #[test]
    fn one_row_contributions_are_forusts_own_and_sum_to_the_prediction() {
        let t = table(3_000);
        let model = Gbdt::train(&t, &GbdtOptions::default()).unwrap();
        let ready = model.ready().unwrap();
        let probabilities = model.predict(&t).unwrap();
        for (row, probability) in probabilities.iter().enumerate().take(200) {
            let values: Vec<Value<'_>> = (0..3).map(|c| t.value(c, row)).collect();
            let (p, ours) = model.explain(&values).unwrap();
            assert!((p - probability).abs() < 1e-12, "row {row}: {p} vs {probability}");
            assert_eq!(model.probability(&values).unwrap(), *probability, "row {row}: one row as the batch");
            let x: Vec<f64> = values.iter().enumerate().map(|(f, v)| model.code(f, *v, &ready.lookups[f])).collect();
            let theirs = ready.booster.predict_contributions(
                &Matrix::new(&x, 1, x.len()),
                forust_ml::gradientbooster::ContributionsMethod::Average,
                false,
            );
            for c in &ours {
                let feature = model.features.iter().position(|f| f.name == c.feature).unwrap();
                assert_eq!(c.log_odds, theirs[feature], "row {row} feature {feature}");
            }
        }
    }

    #[test]
    fn boosting_learns_an_interaction_and_explains_it() {
        let t = table(6_000);
        let model = Gbdt::train(&t, &GbdtOptions::default()).unwrap();
        assert!(model.trees > 5, "{} trees", model.trees);
        let auc = crate::metrics::roc_auc(&model.predict(&t).unwrap(), &t.target);
        assert!(auc > 0.8, "{auc}");
        let (p, contributions) = model.explain(&[Value::Number(0.9), Value::Number(0.9), Value::Level("z")]).unwrap();
        assert!(p > 0.5, "{p}");
        assert!(["a", "b"].contains(&contributions[0].feature.as_str()), "{contributions:?}");
        let (safe, _) = model.explain(&[Value::Number(0.1), Value::Number(0.1), Value::Level("x")]).unwrap();
        assert!(safe < 0.3, "{safe}");
        // Round trip through JSON scores the same.
        let text = serde_json::to_string(&model).unwrap();
        let back: Gbdt = serde_json::from_str::<Gbdt>(&text).unwrap().load().unwrap();
        assert_eq!(back.predict(&t).unwrap(), model.predict(&t).unwrap());
    }

    #[test]
    fn training_is_deterministic() {
        let t = table(2_000);
        let a = Gbdt::train(&t, &GbdtOptions::default()).unwrap();
        let b = Gbdt::train(&t, &GbdtOptions::default()).unwrap();
        assert_eq!(a, b);
    }
}
