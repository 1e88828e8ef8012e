//! The fraud scorer interface and the heuristic scorer that ships until trained models
//! arrive. A scorer reads the feature vector and returns a per-mille score with the
//! contribution of each feature, so every score can be explained.

use crate::features::{Feature, FeatureVector};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    /// Points this feature added (or, negative, took away), per mille.
    pub points: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub scorer: String,
    pub version: String,
    /// 0 (surely honest) to 1000 (surely fraud).
    pub value: i64,
    /// Largest first.
    pub contributions: Vec<Contribution>,
}

/// Why a scorer could not score one payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {scorer} scorer could not score: {detail}")]
pub struct ScoreError {
    pub scorer: String,
    pub detail: String,
}

/// A fraud model the engine can run. Implementations must be pure functions of the features
/// (no clock, no I/O) so a decision can be replayed from its record. A scorer that cannot
/// score says so: the engine then scores with the heuristic scorer and records that it did
/// (`scorer_fallback`), rather than taking a silent 0 for "surely honest".
pub trait Scorer: Send + Sync {
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    /// Features the scorer reads; the engine refuses a scorer that needs one it lacks.
    fn features(&self) -> &[Feature];
    /// The score. It may leave `contributions` empty when they cost more than the score
    /// (a model's trees walked twice); the engine then asks [`Scorer::explain`] for them on
    /// the decisions a person will read: any that is not a plain approval.
    fn score(&self, features: &FeatureVector) -> Result<Score, ScoreError>;

    /// Each feature's contribution to the score, largest push first: what `score` returns,
    /// for scorers that always fill it.
    fn explain(&self, features: &FeatureVector) -> Result<Vec<Contribution>, ScoreError> {
        self.score(features).map(|s| s.contributions)
    }
}

/// Additive points over the behaviour, device and environment features.
///
/// | signal | points |
/// |---|---|
/// | base | 40 |
/// | no device id reported | +60 |
/// | device never used by this user | +170 |
/// | device trusted | −120 |
/// | IP network new to the user | +70 (+20 on a trusted device) |
/// | network type changed | +20 |
/// | amount over 3× / 10× the user's mean (≥ 5 payments of history) | +120 / +250 |
/// | limit use after payment ≥ 70 % / ≥ 90 % | +60 / +140 |
/// | ≥ 5 / ≥ 10 attempts in the hour | +60 / +120 |
/// | ≥ 4 distinct merchants in the hour | +130 |
/// | ≥ 3 tiny payments in the hour | +220 |
/// | device used by ≥ 3 users in 24 h | +220 |
/// | IP network used by ≥ 30 users in 24 h | +80 |
/// | merchant: ≥ 20 payments, ≥ 60 % round, ≥ 50 % new users in 24 h | +260 |
/// | line under 7 days old | +60 |
/// | ≥ 20 approved payments of history | −60 |
///
/// The sum is clamped to 0–1000. The weights were set by hand against the demo's and the
/// tests' scenarios; issue 6 replaces this with trained models behind the same trait.
#[derive(Debug, Default, Clone)]
pub struct HeuristicScorer;

const HEURISTIC_FEATURES: &[Feature] = &[
    Feature::DevicePresent,
    Feature::DeviceFirstSeen,
    Feature::DeviceTrusted,
    Feature::IpFirstSeen,
    Feature::NetworkChanged,
    Feature::AmountVsUserAvgPct,
    Feature::UserPaymentsTotal,
    Feature::UtilizationAfterPct,
    Feature::UserCount1h,
    Feature::UserDistinctMerchants1h,
    Feature::UserTinyCount1h,
    Feature::DeviceDistinctUsers24h,
    Feature::IpDistinctUsers24h,
    Feature::MerchantPayments24h,
    Feature::MerchantRoundAmountPct24h,
    Feature::MerchantNewUserPct24h,
    Feature::LineAgeDays,
];

impl Scorer for HeuristicScorer {
    fn name(&self) -> &str {
        "heuristic"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn features(&self) -> &[Feature] {
        HEURISTIC_FEATURES
    }

    fn score(&self, f: &FeatureVector) -> Result<Score, ScoreError> {
        Ok(self.points(f))
    }
}

impl HeuristicScorer {
    /// The additive points; never fails, which is what makes it the fallback.
    pub fn points(&self, f: &FeatureVector) -> Score {
        let mut contributions: Vec<Contribution> = Vec::with_capacity(8);
        let mut add = |feature: Feature, points: i64| {
            if points != 0 {
                contributions.push(Contribution { feature: feature.name().to_owned(), points });
            }
        };
        let trusted = f.bool(Feature::DeviceTrusted);
        if !f.bool(Feature::DevicePresent) {
            add(Feature::DevicePresent, 60);
        } else if f.bool(Feature::DeviceFirstSeen) {
            add(Feature::DeviceFirstSeen, 170);
        } else if trusted {
            add(Feature::DeviceTrusted, -120);
        }
        if f.bool(Feature::IpFirstSeen) {
            add(Feature::IpFirstSeen, if trusted { 20 } else { 70 });
        }
        if f.bool(Feature::NetworkChanged) {
            add(Feature::NetworkChanged, 20);
        }
        let history = f.int(Feature::UserPaymentsTotal);
        let ratio = f.int(Feature::AmountVsUserAvgPct);
        if history >= 5 {
            add(
                Feature::AmountVsUserAvgPct,
                if ratio >= 1_000 {
                    250
                } else if ratio >= 300 {
                    120
                } else {
                    0
                },
            );
        }
        let utilization = f.int(Feature::UtilizationAfterPct);
        add(
            Feature::UtilizationAfterPct,
            if utilization >= 90 {
                140
            } else if utilization >= 70 {
                60
            } else {
                0
            },
        );
        let hour = f.int(Feature::UserCount1h);
        add(
            Feature::UserCount1h,
            if hour >= 10 {
                120
            } else if hour >= 5 {
                60
            } else {
                0
            },
        );
        if f.int(Feature::UserDistinctMerchants1h) >= 4 {
            add(Feature::UserDistinctMerchants1h, 130);
        }
        if f.int(Feature::UserTinyCount1h) >= 3 {
            add(Feature::UserTinyCount1h, 220);
        }
        if f.int(Feature::DeviceDistinctUsers24h) >= 3 {
            add(Feature::DeviceDistinctUsers24h, 220);
        }
        if f.int(Feature::IpDistinctUsers24h) >= 30 {
            add(Feature::IpDistinctUsers24h, 80);
        }
        if f.int(Feature::MerchantPayments24h) >= 20
            && f.int(Feature::MerchantRoundAmountPct24h) >= 60
            && f.int(Feature::MerchantNewUserPct24h) >= 50
        {
            add(Feature::MerchantRoundAmountPct24h, 260);
        }
        if f.int(Feature::LineAgeDays) < 7 {
            add(Feature::LineAgeDays, 60);
        }
        if history >= 20 {
            add(Feature::UserPaymentsTotal, -60);
        }
        let value = (40 + contributions.iter().map(|c| c.points).sum::<i64>()).clamp(0, 1_000);
        contributions.sort_by(|a, b| b.points.cmp(&a.points).then_with(|| a.feature.cmp(&b.feature)));
        Score { scorer: self.name().into(), version: self.version().into(), value, contributions }
    }
}
