//! A trained model as files: `model.json` (the model itself) and `manifest.json` (format
//! version, kind, the SHA-256 of `model.json`'s bytes, the training data's hash, the feature
//! schema and the metrics). Loading checks the format version and the content hash, so a
//! model edited by hand or cut short is refused, never served.

use crate::gbdt::Gbdt;
use crate::metrics::Metrics;
use crate::scorecard::Scorecard;
use crate::table::FeatureKind;
use crate::ModelError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
pub const MODEL_FILE: &str = "model.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Scorecard,
    Gbdt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub name: String,
    pub kind: FeatureKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub kind: ModelKind,
    /// `kind-dataset-<first 12 hex digits of the content hash>`.
    pub version: String,
    pub dataset: String,
    pub content_sha256: String,
    pub training_data_sha256: String,
    pub training_rows: usize,
    pub seed: u64,
    /// What the model reads, in order.
    pub features: Vec<FeatureSpec>,
    /// `train` and `test` metrics on the fixed split.
    pub metrics: BTreeMap<String, Metrics>,
    /// Information value of every candidate feature (scorecards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub information_values: Vec<(String, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelBody {
    Scorecard(Scorecard),
    Gbdt(Gbdt),
}

impl ModelBody {
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelBody::Scorecard(_) => ModelKind::Scorecard,
            ModelBody::Gbdt(_) => ModelKind::Gbdt,
        }
    }

    /// What the model reads, in order.
    pub fn features(&self) -> Vec<FeatureSpec> {
        match self {
            ModelBody::Scorecard(card) => {
                card.features.iter().map(|f| FeatureSpec { name: f.name.clone(), kind: f.kind }).collect()
            }
            ModelBody::Gbdt(model) => {
                model.features.iter().map(|f| FeatureSpec { name: f.name.clone(), kind: f.kind }).collect()
            }
        }
    }

    /// Probabilities of the positive class for every row of `table`.
    pub fn predict(&self, table: &crate::Table) -> Result<Vec<f64>, ModelError> {
        match self {
            ModelBody::Scorecard(card) => card.predict(table),
            ModelBody::Gbdt(model) => model.predict(table),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Artefact {
    pub manifest: Manifest,
    pub model: ModelBody,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Artefact {
    /// Wraps a trained model with its manifest.
    pub fn new(
        model: ModelBody,
        dataset: &str,
        training_data_sha256: String,
        training_rows: usize,
        seed: u64,
        metrics: BTreeMap<String, Metrics>,
    ) -> Artefact {
        let features = model.features();
        let information_values = match &model {
            ModelBody::Scorecard(card) => card.information_values.clone(),
            ModelBody::Gbdt(_) => Vec::new(),
        };
        let kind = model.kind();
        let content_sha256 = sha256_hex(&Self::model_bytes(&model));
        let kind_name = match kind {
            ModelKind::Scorecard => "scorecard",
            ModelKind::Gbdt => "gbdt",
        };
        Artefact {
            manifest: Manifest {
                format_version: FORMAT_VERSION,
                kind,
                version: format!("{kind_name}-{dataset}-{}", &content_sha256[..12]),
                dataset: dataset.to_owned(),
                content_sha256,
                training_data_sha256,
                training_rows,
                seed,
                features,
                metrics,
                information_values,
            },
            model,
        }
    }

    fn model_bytes(model: &ModelBody) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(model).expect("a model serialises");
        bytes.push(b'\n');
        bytes
    }

    /// The two files' contents: (`manifest.json`, `model.json`).
    pub fn to_files(&self) -> (String, Vec<u8>) {
        let manifest = serde_json::to_string_pretty(&self.manifest).expect("a manifest serialises") + "\n";
        (manifest, Self::model_bytes(&self.model))
    }

    /// Reads the two files back, refusing another format version, a hash mismatch or a
    /// manifest that does not describe the model.
    pub fn from_files(manifest: &str, model: &[u8]) -> Result<Artefact, ModelError> {
        let bad = |m: String| ModelError::Artefact(m);
        let version: serde_json::Value = serde_json::from_str(manifest).map_err(|e| bad(format!("manifest: {e}")))?;
        if version["format_version"] != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                version["format_version"]
            )));
        }
        let manifest: Manifest = serde_json::from_str(manifest).map_err(|e| bad(format!("manifest: {e}")))?;
        let actual = sha256_hex(model);
        if actual != manifest.content_sha256 {
            return Err(bad(format!(
                "{MODEL_FILE} has SHA-256 {actual}, the manifest says {}",
                manifest.content_sha256
            )));
        }
        let mut body: ModelBody = serde_json::from_slice(model).map_err(|e| bad(format!("{MODEL_FILE}: {e}")))?;
        if body.kind() != manifest.kind || body.features() != manifest.features {
            return Err(bad("the manifest does not describe the model".into()));
        }
        if let ModelBody::Gbdt(gbdt) = body {
            body = ModelBody::Gbdt(gbdt.load()?);
        }
        Ok(Artefact { manifest, model: body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorecard::ScorecardOptions;
    use crate::table::{Column, Table};

    fn artefact() -> Artefact {
        let n = 400;
        let t = Table {
            names: vec!["x".into()],
            columns: vec![Column::Numeric((0..n).map(|i| i as f64).collect())],
            target: (0..n).map(|i| (i * 7919) % 100 < i / 5).collect(),
            row_index: (0..n).collect(),
        };
        let card = Scorecard::train(&t, &ScorecardOptions::default()).unwrap();
        Artefact::new(ModelBody::Scorecard(card), "toy", "ab".repeat(32), n, 1, BTreeMap::new())
    }

    #[test]
    fn an_artefact_round_trips_and_refuses_tampering() {
        let a = artefact();
        let (manifest, model) = a.to_files();
        let back = Artefact::from_files(&manifest, &model).unwrap();
        assert_eq!(back.manifest, a.manifest);
        assert!(a.manifest.version.starts_with("scorecard-toy-"));

        let mut edited = model.clone();
        let i = edited.iter().position(|b| *b == b'1').unwrap();
        edited[i] = b'2';
        let e = Artefact::from_files(&manifest, &edited).unwrap_err().to_string();
        assert!(e.contains("SHA-256"), "{e}");

        let future = manifest.replace("\"format_version\": 1", "\"format_version\": 2");
        let e = Artefact::from_files(&future, &model).unwrap_err().to_string();
        assert!(e.contains("format version 2"), "{e}");
    }
}
