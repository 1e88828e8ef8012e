//! Ranking and calibration metrics on a test set: what `xiezhi model evaluate` prints.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: usize,
    pub positives: usize,
    pub roc_auc: f64,
    pub ks: f64,
    pub pr_auc: f64,
    pub brier: f64,
    /// Share of positives caught when at most 1 % of negatives are flagged.
    pub recall_at_1pct_fpr: f64,
}

impl Metrics {
    /// `scores` are probabilities of the positive class (higher = more likely positive).
    pub fn compute(scores: &[f64], labels: &[bool]) -> Metrics {
        assert_eq!(scores.len(), labels.len());
        Metrics {
            rows: labels.len(),
            positives: labels.iter().filter(|l| **l).count(),
            roc_auc: roc_auc(scores, labels),
            ks: ks(scores, labels),
            pr_auc: average_precision(scores, labels),
            brier: brier(scores, labels),
            recall_at_1pct_fpr: recall_at_fpr(scores, labels, 0.01),
        }
    }
}

/// Indexes sorted by score, highest first; NaN scores last.
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].partial_cmp(&scores[*a]).unwrap_or(std::cmp::Ordering::Equal));
    order
}

/// Groups of equal scores in descending order: (positives, negatives) per group.
fn groups(scores: &[f64], labels: &[bool]) -> Vec<(u64, u64)> {
    let order = descending(scores);
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut last = f64::NAN;
    for i in order {
        let s = scores[i];
        if out.is_empty() || s != last {
            out.push((0, 0));
            last = s;
        }
        let g = out.last_mut().expect("pushed");
        if labels[i] {
            g.0 += 1;
        } else {
            g.1 += 1;
        }
    }
    out
}

/// Probability that a random positive scores above a random negative, ties counting half
/// (the Mann–Whitney statistic).
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let (p, n) = totals(labels);
    if p == 0 || n == 0 {
        return f64::NAN;
    }
    let mut negatives_below = n as f64;
    let mut area = 0.0;
    for (gp, gn) in groups(scores, labels) {
        negatives_below -= gn as f64;
        area += gp as f64 * (negatives_below + gn as f64 / 2.0);
    }
    area / (p as f64 * n as f64)
}

fn totals(labels: &[bool]) -> (u64, u64) {
    let p = labels.iter().filter(|l| **l).count() as u64;
    (p, labels.len() as u64 - p)
}

/// The ROC curve from the highest threshold down: (true-positive rate, false-positive rate)
/// after each group of equal scores. Empty when a class is missing.
fn roc_points(scores: &[f64], labels: &[bool]) -> impl Iterator<Item = (f64, f64)> {
    let (p, n) = totals(labels);
    let groups = if p == 0 || n == 0 { Vec::new() } else { groups(scores, labels) };
    groups.into_iter().scan((0u64, 0u64), move |(tp, fp), (gp, gn)| {
        *tp += gp;
        *fp += gn;
        Some((*tp as f64 / p as f64, *fp as f64 / n as f64))
    })
}

/// Largest gap between the cumulative shares of positives and negatives over thresholds.
pub fn ks(scores: &[f64], labels: &[bool]) -> f64 {
    let (p, n) = totals(labels);
    if p == 0 || n == 0 {
        return f64::NAN;
    }
    roc_points(scores, labels).map(|(tpr, fpr)| (tpr - fpr).abs()).fold(0.0, f64::max)
}

/// Average precision: the mean of precision at each positive's threshold (scikit-learn's
/// definition, ties taken together).
pub fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let (p, _) = totals(labels);
    if p == 0 {
        return f64::NAN;
    }
    let (mut tp, mut seen, mut ap) = (0u64, 0u64, 0.0);
    for (gp, gn) in groups(scores, labels) {
        tp += gp;
        seen += gp + gn;
        ap += (gp as f64 / p as f64) * (tp as f64 / seen as f64);
    }
    ap
}

pub fn brier(scores: &[f64], labels: &[bool]) -> f64 {
    if scores.is_empty() {
        return f64::NAN;
    }
    scores.iter().zip(labels).map(|(s, l)| (s - f64::from(u8::from(*l))).powi(2)).sum::<f64>() / scores.len() as f64
}

/// Recall at the highest threshold whose false-positive rate stays within `max_fpr`.
pub fn recall_at_fpr(scores: &[f64], labels: &[bool], max_fpr: f64) -> f64 {
    let (p, n) = totals(labels);
    if p == 0 || n == 0 {
        return f64::NAN;
    }
    roc_points(scores, labels).take_while(|(_, fpr)| *fpr <= max_fpr).last().map_or(0.0, |(tpr, _)| tpr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // scikit-learn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.75,
        // average_precision_score(...) = 0.8333…
        let labels = [false, false, true, true];
        let scores = [0.1, 0.4, 0.35, 0.8];
        assert!((roc_auc(&scores, &labels) - 0.75).abs() < 1e-12);
        assert!((average_precision(&scores, &labels) - 0.833_333_333_333_333_4).abs() < 1e-12);
        assert!((ks(&scores, &labels) - 0.5).abs() < 1e-12);
        let b = brier(&scores, &labels);
        assert!((b - (0.01 + 0.16 + 0.4225 + 0.04) / 4.0).abs() < 1e-12);
        // Ties count half.
        assert!((roc_auc(&[0.5, 0.5], &[true, false]) - 0.5).abs() < 1e-12);
        assert!(roc_auc(&[0.5, 0.5], &[true, true]).is_nan());
    }

    #[test]
    fn recall_at_fpr_stops_at_the_budget() {
        // 100 negatives, 10 positives; 5 positives outrank all negatives.
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for i in 0..100 {
            scores.push(i as f64 / 1000.0);
            labels.push(false);
        }
        for i in 0..10 {
            scores.push(if i < 5 { 1.0 + i as f64 } else { 0.0 });
            labels.push(true);
        }
        assert!((recall_at_fpr(&scores, &labels, 0.01) - 0.5).abs() < 1e-12);
    }

    proptest::proptest! {
        #[test]
        fn auc_is_a_probability_and_flips_with_the_scores(
            scores in proptest::collection::vec(0.0f64..1.0, 2..200),
            seed in 0u64..1000,
        ) {
            let labels: Vec<bool> = scores.iter().enumerate().map(|(i, _)| (i as u64 * 7 + seed).is_multiple_of(3)).collect();
            let a = roc_auc(&scores, &labels);
            if a.is_nan() { return Ok(()); }
            proptest::prop_assert!((0.0..=1.0).contains(&a));
            let flipped: Vec<f64> = scores.iter().map(|s| -s).collect();
            proptest::prop_assert!((roc_auc(&flipped, &labels) - (1.0 - a)).abs() < 1e-9);
            let ap = average_precision(&scores, &labels);
            proptest::prop_assert!((0.0..=1.0 + 1e-12).contains(&ap));
        }
    }
}
