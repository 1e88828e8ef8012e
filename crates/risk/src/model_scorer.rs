//! A trained fraud model (a `xiezhi model` artefact) as the engine's scorer. The model's
//! features must be engine features of the same type: a model trained on anything else is
//! refused when it is loaded, never at the first payment.

use crate::features::{Feature, FeatureType, FeatureVector};
use crate::scorer::{Contribution, Score, ScoreError, Scorer};
use xiezhi_models::artefact::{Artefact, ModelBody};
use xiezhi_models::gbdt::Gbdt;
use xiezhi_models::table::{FeatureKind, Value};

/// Contributions kept in a score (largest effect first).
pub const MAX_CONTRIBUTIONS: usize = 5;

pub struct ModelScorer {
    version: String,
    model: Gbdt,
    inputs: Vec<Feature>,
}

impl ModelScorer {
    /// Checks the artefact's feature schema against the engine's features.
    pub fn new(artefact: Artefact) -> Result<ModelScorer, String> {
        let version = artefact.manifest.version.clone();
        let ModelBody::Gbdt(model) = artefact.model else {
            return Err(format!("{version}: a fraud scorer is a `gbdt` model"));
        };
        let mut inputs = Vec::with_capacity(model.features.len());
        for f in &model.features {
            let feature = Feature::from_name(&f.name).ok_or_else(|| {
                format!("{version}: `{}` is not an engine feature (see GET /v1/rules/features)", f.name)
            })?;
            if feature == Feature::FraudScore {
                return Err(format!("{version}: a fraud model cannot read `fraud_score`, its own output"));
            }
            let expected = match feature.feature_type() {
                FeatureType::String => FeatureKind::Categorical,
                FeatureType::Int | FeatureType::Bool => FeatureKind::Numeric,
            };
            if expected != f.kind {
                return Err(format!(
                    "{version}: `{}` is {:?} in the model but {:?} in the engine",
                    f.name, f.kind, expected
                ));
            }
            inputs.push(feature);
        }
        Ok(ModelScorer { version, model, inputs })
    }
}

impl Scorer for ModelScorer {
    fn name(&self) -> &str {
        "gbdt"
    }

    fn version(&self) -> &str {
        &self.version
    }

    fn features(&self) -> &[Feature] {
        &self.inputs
    }

    /// The probability alone (one walk down each tree); contributions come from `explain`.
    fn score(&self, features: &FeatureVector) -> Result<Score, ScoreError> {
        let probability = self.model.probability(&self.values(features)).map_err(|e| failed(e.to_string()))?;
        Ok(Score {
            scorer: "gbdt".into(),
            version: self.version.clone(),
            value: per_mille(probability)?,
            contributions: Vec::new(),
        })
    }

    fn explain(&self, features: &FeatureVector) -> Result<Vec<Contribution>, ScoreError> {
        let (probability, mut contributions) =
            self.model.explain(&self.values(features)).map_err(|e| failed(e.to_string()))?;
        per_mille(probability)?;
        contributions.sort_by(|a, b| b.log_odds.abs().total_cmp(&a.log_odds.abs()));
        // Log-odds contributions as per-mille points: their first-order effect on the
        // probability at this prediction, the slope floored at that of p = 0.99 so that a
        // saturated score (p ≈ 1, slope ≈ 0) still names the features behind it.
        let slope = (probability * (1.0 - probability)).max(0.99 * 0.01) * 1000.0;
        Ok(contributions
            .into_iter()
            .take(MAX_CONTRIBUTIONS)
            .map(|c| Contribution { feature: c.feature, points: (c.log_odds * slope).round() as i64 })
            .filter(|c| c.points != 0)
            .collect())
    }
}

impl ModelScorer {
    fn values<'f>(&self, features: &'f FeatureVector) -> Vec<Value<'f>> {
        self.inputs
            .iter()
            .map(|f| match f.feature_type() {
                FeatureType::Int => Value::Number(features.int(*f) as f64),
                FeatureType::Bool => Value::Number(f64::from(u8::from(features.bool(*f)))),
                FeatureType::String => Value::Level(features.string(*f)),
            })
            .collect()
    }
}

fn failed(detail: String) -> ScoreError {
    ScoreError { scorer: "gbdt".into(), detail }
}

/// A probability as the engine's per-mille score; anything but a probability is an error.
fn per_mille(probability: f64) -> Result<i64, ScoreError> {
    if !probability.is_finite() || !(0.0..=1.0).contains(&probability) {
        return Err(failed(format!("probability {probability}")));
    }
    Ok((probability * 1000.0).round().clamp(0.0, 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use xiezhi_models::gbdt::GbdtOptions;
    use xiezhi_models::table::{Column, Table};

    fn artefact(names: [&str; 3], mcc_numeric: bool) -> Artefact {
        let n = 3_000;
        let mut amount = Vec::new();
        let mut first = Vec::new();
        let mut codes = Vec::new();
        let mut target = Vec::new();
        for i in 0..n {
            let big = i % 5 == 0;
            let new_device = i % 7 == 0;
            amount.push(if big { 300_000.0 } else { 3_000.0 + (i % 50) as f64 * 100.0 });
            first.push(f64::from(u8::from(new_device)));
            codes.push((i % 3) as u32);
            target.push(big && new_device || i % 97 == 0);
        }
        let mcc = if mcc_numeric {
            Column::Numeric(codes.iter().map(|c| f64::from(*c)).collect())
        } else {
            Column::Categorical { codes, levels: vec!["5411".into(), "5812".into(), "5732".into()] }
        };
        let table = Table {
            names: names.iter().map(|s| (*s).to_owned()).collect(),
            columns: vec![Column::Numeric(amount), Column::Numeric(first), mcc],
            target,
            row_index: (0..n).collect(),
        };
        let model = Gbdt::train(&table, &GbdtOptions::default()).unwrap();
        Artefact::new(ModelBody::Gbdt(model), "toy", "00".repeat(32), n, 1, BTreeMap::new())
    }

    #[test]
    fn a_model_on_engine_features_scores_and_explains_payments() {
        let scorer = ModelScorer::new(artefact(["amount_minor", "device_first_seen", "mcc"], false)).unwrap();
        assert_eq!(scorer.features(), &[Feature::AmountMinor, Feature::DeviceFirstSeen, Feature::Mcc]);
        let mut risky = FeatureVector::new();
        risky.set_int(Feature::AmountMinor, 300_000);
        risky.set_bool(Feature::DeviceFirstSeen, true);
        risky.set_string(Feature::Mcc, "5732");
        let mut usual = FeatureVector::new();
        usual.set_int(Feature::AmountMinor, 3_500);
        usual.set_bool(Feature::DeviceFirstSeen, false);
        usual.set_string(Feature::Mcc, "5411");
        let (a, b) = (scorer.score(&risky).unwrap(), scorer.score(&usual).unwrap());
        assert!(a.value > 500 && b.value < 100, "{} vs {}", a.value, b.value);
        assert!(a.version.starts_with("gbdt-toy-"));
        // The score walks the trees once; its contributions come when asked for.
        assert!(a.contributions.is_empty());
        let explained = scorer.explain(&risky).unwrap();
        assert!(!explained.is_empty() && explained.len() <= MAX_CONTRIBUTIONS);
        assert!(explained.iter().any(|c| c.feature == "amount_minor" && c.points > 0), "{explained:?}");
    }

    #[test]
    fn a_model_on_other_features_is_refused_when_loaded() {
        let e = ModelScorer::new(artefact(["credit_amount", "device_first_seen", "mcc"], false)).err().unwrap();
        assert!(e.contains("`credit_amount` is not an engine feature"), "{e}");
        let e = ModelScorer::new(artefact(["amount_minor", "device_first_seen", "mcc"], true)).err().unwrap();
        assert!(e.contains("`mcc` is Numeric in the model but Categorical"), "{e}");
        let e = ModelScorer::new(artefact(["amount_minor", "fraud_score", "mcc"], false)).err().unwrap();
        assert!(e.contains("fraud_score"), "{e}");
    }
}
