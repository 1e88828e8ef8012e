//! The credit scorecard, as credit risk teams build it: each feature cut into bins
//! (monotone in the bad rate for numbers, frequent levels for categories, missing values on
//! their own), each bin's weight of evidence (WOE), information value (IV) to choose the
//! features, a logistic regression on the WOE values, and points scaled so that
//! `base_score` means `base_odds`:1 good to bad and every `pdo` points double the odds.
//!
//! Reasons are what an adverse-action notice gives: the features that cost the applicant the
//! most points against the best bin of that feature.

use crate::table::{Column, FeatureKind, Table, Value, MISSING_CODE};
use crate::ModelError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorecardOptions {
    /// Quantile bins a numeric feature starts from, before merging.
    pub max_initial_bins: usize,
    /// Smallest bin, as a share of the training rows.
    pub min_bin_share: f64,
    /// Features below this information value are left out.
    pub min_iv: f64,
    /// L2 penalty of the logistic regression (not on the intercept).
    pub l2: f64,
    pub base_score: f64,
    pub base_odds: f64,
    pub pdo: f64,
}

impl Default for ScorecardOptions {
    fn default() -> Self {
        ScorecardOptions {
            max_initial_bins: 20,
            min_bin_share: 0.05,
            min_iv: 0.02,
            l2: 1e-3,
            base_score: 600.0,
            base_odds: 50.0,
            pdo: 20.0,
        }
    }
}

/// Which values fall in a bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinRule {
    /// `lower <= x < upper`; `None` is unbounded.
    Range {
        lower: Option<f64>,
        upper: Option<f64>,
    },
    Levels {
        levels: Vec<String>,
    },
    /// Rare and unseen levels.
    Other,
    Missing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub rule: BinRule,
    /// Training rows and positives (bads) in the bin.
    pub rows: u64,
    pub bads: u64,
    /// ln(share of goods / share of bads): positive is better than average.
    pub woe: f64,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureCard {
    pub name: String,
    pub kind: FeatureKind,
    pub iv: f64,
    /// `increasing` or `decreasing` bad rate with the value, for numeric features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monotone: Option<String>,
    pub coefficient: f64,
    pub bins: Vec<Bin>,
    /// Every level of a categorical feature seen in training, rare ones included (in the
    /// order the data first showed them): what an application may say. Unseen levels still
    /// score (in the `Other` bin); a service validating applications refuses them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
}

impl FeatureCard {
    /// Level → bin, for categorical features: a bin may hold thousands of levels.
    fn level_index(&self) -> HashMap<&str, usize> {
        let mut index = HashMap::new();
        for (i, b) in self.bins.iter().enumerate() {
            if let BinRule::Levels { levels } = &b.rule {
                for l in levels {
                    index.insert(l.as_str(), i);
                }
            }
        }
        index
    }

    fn bin_in(&self, value: Value<'_>, index: &HashMap<&str, usize>) -> usize {
        match value {
            Value::Level(level) => index
                .get(level)
                .copied()
                .or_else(|| self.bins.iter().position(|b| matches!(b.rule, BinRule::Other)))
                .unwrap_or(0),
            other => self.bin_of(other),
        }
    }

    fn bin_of(&self, value: Value<'_>) -> usize {
        let fallback = |want: fn(&BinRule) -> bool| self.bins.iter().position(|b| want(&b.rule));
        match value {
            Value::Missing => fallback(|r| matches!(r, BinRule::Missing))
                .or_else(|| fallback(|r| matches!(r, BinRule::Other)))
                .unwrap_or(0),
            Value::Number(x) => self
                .bins
                .iter()
                .position(|b| match &b.rule {
                    BinRule::Range { lower, upper } => lower.is_none_or(|l| x >= l) && upper.is_none_or(|u| x < u),
                    _ => false,
                })
                .unwrap_or(0),
            Value::Level(level) => self
                .bins
                .iter()
                .position(|b| matches!(&b.rule, BinRule::Levels { levels } if levels.iter().any(|l| l == level)))
                .or_else(|| fallback(|r| matches!(r, BinRule::Other)))
                .unwrap_or(0),
        }
    }

    fn best_points(&self) -> f64 {
        self.bins.iter().map(|b| b.points).fold(f64::NEG_INFINITY, f64::max)
    }
}

/// Why a score is what it is: a feature and the points it cost against its best bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub feature: String,
    pub points_lost: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredRow {
    pub score: f64,
    pub probability: f64,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    pub options: ScorecardOptions,
    pub intercept: f64,
    /// The features in the model, in scoring order.
    pub features: Vec<FeatureCard>,
    /// Every candidate's information value, highest first (selected or not).
    pub information_values: Vec<(String, f64)>,
}

const SMOOTHING: f64 = 0.5;

fn woe(goods: f64, bads: f64, total_goods: f64, total_bads: f64, bins: f64) -> f64 {
    let g = (goods + SMOOTHING) / (total_goods + SMOOTHING * bins);
    let b = (bads + SMOOTHING) / (total_bads + SMOOTHING * bins);
    (g / b).ln()
}

/// A bin under construction: its rule and (rows, bads).
struct Draft {
    rule: BinRule,
    rows: u64,
    bads: u64,
}

fn finish(
    name: &str,
    kind: FeatureKind,
    drafts: Vec<Draft>,
    monotone: Option<String>,
    total_bads: u64,
    total: u64,
) -> FeatureCard {
    let total_goods = (total - total_bads) as f64;
    let k = drafts.len() as f64;
    let mut iv = 0.0;
    let bins: Vec<Bin> = drafts
        .into_iter()
        .map(|d| {
            let goods = (d.rows - d.bads) as f64;
            let w = woe(goods, d.bads as f64, total_goods, total_bads as f64, k);
            let g_share = (goods + SMOOTHING) / (total_goods + SMOOTHING * k);
            let b_share = (d.bads as f64 + SMOOTHING) / (total_bads as f64 + SMOOTHING * k);
            iv += (g_share - b_share) * w;
            Bin { rule: d.rule, rows: d.rows, bads: d.bads, woe: w, points: 0.0 }
        })
        .collect();
    FeatureCard { name: name.to_owned(), kind, iv, monotone, coefficient: 0.0, bins, levels: Vec::new() }
}

/// Bins a numeric feature: quantile cuts, then adjacent bins pooled until the bad rate is
/// monotone (pool-adjacent-violators) and every bin holds `min_rows`.
fn bin_numeric(values: &[f64], target: &[bool], options: &ScorecardOptions) -> (Vec<Draft>, Option<String>) {
    let mut pairs: Vec<(f64, bool)> =
        values.iter().zip(target).filter(|(v, _)| !v.is_nan()).map(|(v, t)| (*v, *t)).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let missing_rows = values.len() - pairs.len();
    let missing_bads = values.iter().zip(target).filter(|(v, t)| v.is_nan() && **t).count();
    let min_rows = ((values.len() as f64 * options.min_bin_share).ceil() as u64).max(1);
    // Quantile cut points between distinct values.
    let mut cuts: Vec<f64> = Vec::new();
    let n = pairs.len();
    for q in 1..options.max_initial_bins.max(1) {
        let i = n * q / options.max_initial_bins.max(1);
        if i == 0 || i >= n {
            continue;
        }
        // Bins are `[lower, upper)`: cutting at a value keeps all its ties in the upper bin.
        let x = pairs[i].0;
        if x > pairs[0].0 && cuts.last().is_none_or(|c| *c < x) {
            cuts.push(x);
        }
    }
    // Initial bins as (upper cut index, rows, bads).
    let mut bins: Vec<(Option<f64>, Option<f64>, u64, u64)> = Vec::new();
    let mut lower = None;
    let mut j = 0;
    for c in cuts.iter().copied().map(Some).chain(std::iter::once(None)) {
        let (mut rows, mut bads) = (0u64, 0u64);
        while j < n && c.is_none_or(|c| pairs[j].0 < c) {
            rows += 1;
            bads += u64::from(pairs[j].1);
            j += 1;
        }
        if rows > 0 {
            bins.push((lower, c, rows, bads));
        } else if let Some(last) = bins.last_mut() {
            last.1 = c;
        }
        lower = c;
    }
    // Direction: the sign of the bad-rate slope across the value range.
    let rate = |b: &(Option<f64>, Option<f64>, u64, u64)| b.3 as f64 / b.2.max(1) as f64;
    let half = bins.len() / 2;
    let (lo, hi) = bins.split_at(half.max(1).min(bins.len()));
    let pooled = |s: &[(Option<f64>, Option<f64>, u64, u64)]| {
        let (r, b) = s.iter().fold((0u64, 0u64), |(r, b), x| (r + x.2, b + x.3));
        b as f64 / r.max(1) as f64
    };
    let increasing = pooled(hi) >= pooled(lo);
    let violates = |a: f64, b: f64| if increasing { a > b } else { a < b };
    // Pool adjacent violators until monotone.
    let mut merged: Vec<(Option<f64>, Option<f64>, u64, u64)> = Vec::new();
    for b in bins {
        merged.push(b);
        while merged.len() >= 2 {
            let k = merged.len();
            if violates(rate(&merged[k - 2]), rate(&merged[k - 1])) {
                let last = merged.pop().expect("two");
                let prev = merged.last_mut().expect("one");
                prev.1 = last.1;
                prev.2 += last.2;
                prev.3 += last.3;
            } else {
                break;
            }
        }
    }
    // Bins below the minimum size join the neighbour with the closer bad rate; merging
    // neighbours keeps the order monotone.
    while let Some(small) = (0..merged.len()).filter(|i| merged[*i].2 < min_rows).min_by_key(|i| merged[*i].2) {
        if merged.len() == 1 {
            break;
        }
        let into = if small == 0 {
            1
        } else if small == merged.len() - 1 {
            small - 1
        } else {
            let r = rate(&merged[small]);
            if (rate(&merged[small - 1]) - r).abs() <= (rate(&merged[small + 1]) - r).abs() {
                small - 1
            } else {
                small + 1
            }
        };
        let (a, b) = (small.min(into), small.max(into));
        let right = merged.remove(b);
        let left = &mut merged[a];
        left.1 = right.1;
        left.2 += right.2;
        left.3 += right.3;
    }
    if let Some(first) = merged.first_mut() {
        first.0 = None;
    }
    if let Some(last) = merged.last_mut() {
        last.1 = None;
    }
    let mut drafts: Vec<Draft> = merged
        .into_iter()
        .map(|(lower, upper, rows, bads)| Draft { rule: BinRule::Range { lower, upper }, rows, bads })
        .collect();
    if missing_rows > 0 {
        drafts.push(Draft { rule: BinRule::Missing, rows: missing_rows as u64, bads: missing_bads as u64 });
    }
    (drafts, Some(if increasing { "increasing" } else { "decreasing" }.into()))
}

/// Fewest rows a level needs to be placed by its own bad rate; rarer levels (and levels
/// never seen in training) share the `Other` bin.
const MIN_LEVEL_ROWS: u64 = 50;
/// Weight, in rows, of the overall bad rate in a level's shrunk rate.
const PRIOR_ROWS: f64 = 100.0;

/// Bins a categorical feature (coarse classing): levels ordered by their bad rate, then
/// grouped greedily in that order into bins of at least `min_rows`; rare levels together.
fn bin_categorical(codes: &[u32], levels: &[String], target: &[bool], options: &ScorecardOptions) -> Vec<Draft> {
    let min_rows = ((codes.len() as f64 * options.min_bin_share).ceil() as u64).max(1);
    let mut counts = vec![(0u64, 0u64); levels.len()];
    let (mut missing_rows, mut missing_bads) = (0u64, 0u64);
    for (c, t) in codes.iter().zip(target) {
        if *c == MISSING_CODE {
            missing_rows += 1;
            missing_bads += u64::from(*t);
        } else {
            counts[*c as usize].0 += 1;
            counts[*c as usize].1 += u64::from(*t);
        }
    }
    let mut frequent: Vec<usize> = (0..levels.len()).filter(|i| counts[*i].0 >= MIN_LEVEL_ROWS).collect();
    // Rates shrunk towards the overall rate, so that small levels do not order by noise.
    let overall = target.iter().filter(|t| **t).count() as f64 / target.len().max(1) as f64;
    let rate = |i: usize| (counts[i].1 as f64 + PRIOR_ROWS * overall) / (counts[i].0 as f64 + PRIOR_ROWS);
    frequent.sort_by(|a, b| rate(*a).total_cmp(&rate(*b)).then(a.cmp(b)));
    let mut drafts: Vec<Draft> = Vec::new();
    let mut open: Option<Draft> = None;
    for i in frequent {
        let d = open.get_or_insert_with(|| Draft { rule: BinRule::Levels { levels: Vec::new() }, rows: 0, bads: 0 });
        if let BinRule::Levels { levels: l } = &mut d.rule {
            l.push(levels[i].clone());
        }
        d.rows += counts[i].0;
        d.bads += counts[i].1;
        if d.rows >= min_rows {
            drafts.extend(open.take());
        }
    }
    // A last group short of the minimum joins the one before it.
    if let Some(rest) = open {
        match drafts.last_mut() {
            Some(prev) => {
                if let (BinRule::Levels { levels: a }, BinRule::Levels { levels: b }) = (&mut prev.rule, rest.rule) {
                    a.extend(b);
                }
                prev.rows += rest.rows;
                prev.bads += rest.bads;
            }
            None => drafts.push(rest),
        }
    }
    let other = (0..levels.len()).filter(|i| counts[*i].0 < MIN_LEVEL_ROWS);
    let (other_rows, other_bads) = other.fold((0, 0), |(r, b), i| (r + counts[i].0, b + counts[i].1));
    drafts.push(Draft { rule: BinRule::Other, rows: other_rows, bads: other_bads });
    if missing_rows > 0 {
        drafts.push(Draft { rule: BinRule::Missing, rows: missing_rows, bads: missing_bads });
    }
    drafts
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Logistic regression by Newton's method (IRLS) with an L2 penalty on the slopes.
/// `x` is row-major, `p` columns; returns (intercept, slopes).
fn logistic(x: &[f64], p: usize, y: &[bool], l2: f64) -> (f64, Vec<f64>) {
    let n = y.len();
    let d = p + 1;
    let mut beta = vec![0.0; d];
    let base = y.iter().filter(|t| **t).count() as f64 / n as f64;
    beta[0] = (base / (1.0 - base)).ln();
    for _ in 0..50 {
        let mut grad = vec![0.0; d];
        let mut hess = vec![0.0; d * d];
        let mut row = vec![1.0; d];
        for i in 0..n {
            row[1..].copy_from_slice(&x[i * p..(i + 1) * p]);
            let z: f64 = row.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let mu = sigmoid(z);
            let w = (mu * (1.0 - mu)).max(1e-12);
            let r = f64::from(u8::from(y[i])) - mu;
            for a in 0..d {
                grad[a] += row[a] * r;
                let wa = w * row[a];
                for b in a..d {
                    hess[a * d + b] += wa * row[b];
                }
            }
        }
        for a in 0..d {
            for b in 0..a {
                hess[a * d + b] = hess[b * d + a];
            }
        }
        for a in 1..d {
            grad[a] -= l2 * n as f64 * beta[a];
            hess[a * d + a] += l2 * n as f64;
        }
        let step = solve(&mut hess, &grad, d);
        let mut biggest = 0.0f64;
        for a in 0..d {
            beta[a] += step[a];
            biggest = biggest.max(step[a].abs());
        }
        if biggest < 1e-9 {
            break;
        }
    }
    (beta[0], beta[1..].to_vec())
}

/// Solves `a x = b` for a symmetric positive definite `a` (Cholesky); `a` is overwritten.
fn solve(a: &mut [f64], b: &[f64], d: usize) -> Vec<f64> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        let diag = s.max(1e-12).sqrt();
        a[j * d + j] = diag;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / diag;
        }
    }
    let mut y = vec![0.0; d];
    for i in 0..d {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * d + k] * y[k];
        }
        y[i] = s / a[i * d + i];
    }
    let mut x = vec![0.0; d];
    for i in (0..d).rev() {
        let mut s = y[i];
        for k in i + 1..d {
            s -= a[k * d + i] * x[k];
        }
        x[i] = s / a[i * d + i];
    }
    x
}

impl Scorecard {
    /// Trains on every column of `train` (the caller leaves out ids and leaks).
    pub fn train(train: &Table, options: &ScorecardOptions) -> Result<Scorecard, ModelError> {
        let n = train.rows();
        if n == 0 {
            return Err(ModelError::Empty);
        }
        let bads = train.positives() as u64;
        if bads == 0 || bads == n as u64 {
            return Err(ModelError::OneClass(format!("{bads} positives in {n} rows")));
        }
        let mut cards: Vec<FeatureCard> = train
            .names
            .iter()
            .zip(&train.columns)
            .map(|(name, column)| match column {
                Column::Numeric(v) => {
                    let (drafts, monotone) = bin_numeric(v, &train.target, options);
                    finish(name, FeatureKind::Numeric, drafts, monotone, bads, n as u64)
                }
                Column::Categorical { codes, levels } => {
                    let drafts = bin_categorical(codes, levels, &train.target, options);
                    let mut card = finish(name, FeatureKind::Categorical, drafts, None, bads, n as u64);
                    let mut seen = vec![false; levels.len()];
                    for c in codes.iter().filter(|c| **c != MISSING_CODE) {
                        seen[*c as usize] = true;
                    }
                    card.levels = levels.iter().zip(seen).filter(|(_, s)| *s).map(|(l, _)| l.clone()).collect();
                    card
                }
            })
            .collect();
        let mut information_values: Vec<(String, f64)> = cards.iter().map(|c| (c.name.clone(), c.iv)).collect();
        information_values.sort_by(|a, b| b.1.total_cmp(&a.1));
        cards.retain(|c| c.iv >= options.min_iv && c.bins.len() > 1);
        // The WOE design matrix, one row per training row.
        let columns: Vec<usize> =
            cards.iter().map(|c| train.names.iter().position(|n| *n == c.name).expect("own column")).collect();
        let woe_of = |cards: &[FeatureCard], columns: &[usize]| -> Vec<f64> {
            let indexes: Vec<HashMap<&str, usize>> = cards.iter().map(FeatureCard::level_index).collect();
            let mut x = Vec::with_capacity(n * cards.len());
            for row in 0..n {
                for ((card, col), index) in cards.iter().zip(columns).zip(&indexes) {
                    x.push(card.bins[card.bin_in(train.value(*col, row), index)].woe);
                }
            }
            x
        };
        // A feature whose slope comes out with the wrong sign (more bad with better WOE)
        // is explaining another's effect: drop the weakest such feature and fit again.
        let (mut cards, mut columns) = (cards, columns);
        let (intercept, slopes) = loop {
            if cards.is_empty() {
                return Err(ModelError::NoFeatures(options.min_iv));
            }
            let x = woe_of(&cards, &columns);
            let (intercept, slopes) = logistic(&x, cards.len(), &train.target, options.l2);
            let wrong =
                (0..cards.len()).filter(|i| slopes[*i] > 0.0).min_by(|a, b| cards[*a].iv.total_cmp(&cards[*b].iv));
            match wrong {
                Some(i) => {
                    cards.remove(i);
                    columns.remove(i);
                }
                None => break (intercept, slopes),
            }
        };
        let factor = options.pdo / std::f64::consts::LN_2;
        let offset = options.base_score - factor * options.base_odds.ln();
        let k = cards.len() as f64;
        for (card, slope) in cards.iter_mut().zip(&slopes) {
            card.coefficient = *slope;
            for bin in &mut card.bins {
                // ln(odds good) = -(intercept + Σ slope·woe); spread the constant evenly.
                bin.points = -factor * slope * bin.woe + (offset - factor * intercept) / k;
            }
        }
        Ok(Scorecard { options: options.clone(), intercept, features: cards, information_values })
    }

    pub fn feature_names(&self) -> Vec<&str> {
        self.features.iter().map(|f| f.name.as_str()).collect()
    }

    /// Ready to score many rows: level lookups built once.
    pub fn compile(&self) -> CompiledScorecard<'_> {
        CompiledScorecard {
            card: self,
            indexes: self.features.iter().map(FeatureCard::level_index).collect(),
            best: self.features.iter().map(FeatureCard::best_points).collect(),
        }
    }

    /// Scores one applicant. `values` follow [`Scorecard::feature_names`].
    pub fn score(&self, values: &[Value<'_>], max_reasons: usize) -> ScoredRow {
        self.compile().score(values, max_reasons)
    }

    /// The column of `table` holding each model feature; a missing one is a schema error.
    pub fn columns_in(&self, table: &Table) -> Result<Vec<usize>, ModelError> {
        table.columns_for(self.features.iter().map(|f| (f.name.as_str(), f.kind)))
    }

    /// Probabilities of the positive class for every row of `table`.
    pub fn predict(&self, table: &Table) -> Result<Vec<f64>, ModelError> {
        let columns = self.columns_in(table)?;
        let compiled = self.compile();
        let mut values = Vec::with_capacity(columns.len());
        Ok((0..table.rows())
            .map(|row| {
                values.clear();
                values.extend(columns.iter().map(|c| table.value(*c, row)));
                compiled.score(&values, 0).probability
            })
            .collect())
    }
}

/// A scorecard with its lookups built: what serving holds.
pub struct CompiledScorecard<'a> {
    card: &'a Scorecard,
    indexes: Vec<HashMap<&'a str, usize>>,
    best: Vec<f64>,
}

impl CompiledScorecard<'_> {
    /// Scores one applicant: points, probability of default, and the `max_reasons`
    /// features that cost the most points against their best bin.
    pub fn score(&self, values: &[Value<'_>], max_reasons: usize) -> ScoredRow {
        let card = self.card;
        assert_eq!(values.len(), card.features.len(), "one value per feature");
        let mut logit = card.intercept;
        let mut points = 0.0;
        let mut reasons: Vec<Reason> = Vec::new();
        for (i, (feature, value)) in card.features.iter().zip(values).enumerate() {
            let bin = &feature.bins[feature.bin_in(*value, &self.indexes[i])];
            logit += feature.coefficient * bin.woe;
            points += bin.points;
            let lost = self.best[i] - bin.points;
            if max_reasons > 0 && lost > 1e-9 {
                reasons.push(Reason { feature: feature.name.clone(), points_lost: lost });
            }
        }
        reasons.sort_by(|a, b| b.points_lost.total_cmp(&a.points_lost));
        reasons.truncate(max_reasons);
        ScoredRow { score: points, probability: sigmoid(logit), reasons }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(n: usize) -> Table {
        // Bad rate falls with income; a useless noise column; a category with one risky level.
        let mut income = Vec::new();
        let mut noise = Vec::new();
        let mut codes = Vec::new();
        let mut target = Vec::new();
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for i in 0..n {
            let x = next() * 100.0;
            let c = (i % 4) as u32;
            let p = 0.8 - x / 120.0 + if c == 3 { 0.15 } else { 0.0 };
            income.push(if i % 50 == 0 { f64::NAN } else { x });
            noise.push(next());
            codes.push(c);
            target.push(next() < p);
        }
        Table {
            names: vec!["income".into(), "noise".into(), "segment".into()],
            columns: vec![
                Column::Numeric(income),
                Column::Numeric(noise),
                Column::Categorical { codes, levels: vec!["a".into(), "b".into(), "c".into(), "d".into()] },
            ],
            target,
            row_index: (0..n).collect(),
        }
    }

    #[test]
    fn a_scorecard_finds_the_signal_and_explains_scores() {
        let t = table(4_000);
        let card = Scorecard::train(&t, &ScorecardOptions::default()).unwrap();
        let names = card.feature_names();
        assert!(names.contains(&"income") && names.contains(&"segment"), "{names:?}");
        assert!(!names.contains(&"noise"), "noise has no information value: {:?}", card.information_values);
        let income = card.features.iter().find(|f| f.name == "income").unwrap();
        assert_eq!(income.monotone.as_deref(), Some("decreasing"));
        // WOE rises with income (fewer bads): monotone by construction.
        let woes: Vec<f64> =
            income.bins.iter().filter(|b| matches!(b.rule, BinRule::Range { .. })).map(|b| b.woe).collect();
        assert!(woes.windows(2).all(|w| w[0] <= w[1] + 1e-12), "{woes:?}");
        assert!(income.bins.iter().any(|b| b.rule == BinRule::Missing));
        // A categorical card lists every level training saw (what an application may say).
        let segment = card.features.iter().find(|f| f.name == "segment").unwrap();
        assert_eq!(segment.levels, ["a", "b", "c", "d"]);
        assert!(income.levels.is_empty());
        let p = card.predict(&t).unwrap();
        let auc = crate::metrics::roc_auc(&p, &t.target);
        assert!(auc > 0.75, "{auc}");
        // Points: a richer applicant in a safe segment scores higher, and the poor one's
        // first reason is income.
        let rich = card.score(&[Value::Number(95.0), Value::Level("a")], 3);
        let poor = card.score(&[Value::Number(3.0), Value::Level("d")], 3);
        assert!(rich.score > poor.score + 40.0, "{} vs {}", rich.score, poor.score);
        assert!(rich.probability < poor.probability);
        assert_eq!(poor.reasons[0].feature, "income");
        // Unseen levels and missing values land in the catch-all bins.
        let unseen = card.score(&[Value::Missing, Value::Level("zzz")], 3);
        assert!(unseen.score.is_finite());
    }

    #[test]
    fn the_points_scale_is_600_at_50_to_1_and_20_to_double() {
        let t = table(3_000);
        let card = Scorecard::train(&t, &ScorecardOptions::default()).unwrap();
        for (income, segment) in [(10.0, "a"), (50.0, "b"), (90.0, "d")] {
            let s = card.score(&[Value::Number(income), Value::Level(segment)], 0);
            let odds_good = (1.0 - s.probability) / s.probability;
            let expected = 600.0 + 20.0 / std::f64::consts::LN_2 * (odds_good / 50.0).ln();
            assert!((s.score - expected).abs() < 1e-6, "{} vs {expected}", s.score);
        }
    }

    #[test]
    fn training_is_deterministic_and_refuses_one_class() {
        let t = table(1_000);
        let a = Scorecard::train(&t, &ScorecardOptions::default()).unwrap();
        let b = Scorecard::train(&t, &ScorecardOptions::default()).unwrap();
        assert_eq!(a, b);
        let mut one = t.clone();
        one.target = vec![false; one.rows()];
        assert!(matches!(Scorecard::train(&one, &ScorecardOptions::default()), Err(ModelError::OneClass(_))));
    }
}
