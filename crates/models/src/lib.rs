//! Xiezhi's learned models, trained and served in Rust.
//!
//! - [`table`]: a typed in-memory table (numeric columns with missing values, categorical
//!   columns with levels) and the fixed train/test split of `../shared/data/README.md`.
//! - [`metrics`]: ROC AUC, KS, PR AUC (average precision), Brier score, recall at a false
//!   positive rate.
//! - [`scorecard`]: the industry-standard credit scorecard: supervised monotone binning,
//!   weight of evidence, information value, logistic regression, points, and adverse-action
//!   reasons (the features that cost the applicant most points against their best bin).
//! - [`gbdt`]: gradient-boosted trees (`forust-ml`) with per-prediction contributions: the
//!   credit challenger and the fraud model.
//! - [`artefact`]: the versioned model file: format version, content hash, training data
//!   hash, features, metrics.
//!
//! No file or network I/O: loaders live in `xiezhi-datasets`, the CLI reads and writes the
//! artefact files.

pub mod artefact;
pub mod gbdt;
pub mod metrics;
pub mod scorecard;
pub mod table;

pub use artefact::{Artefact, ModelKind, FORMAT_VERSION};
pub use metrics::Metrics;
pub use scorecard::{Scorecard, ScorecardOptions};
pub use table::{Column, Table};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("no rows to train on")]
    Empty,
    #[error("the target has a single class: {0}")]
    OneClass(String),
    #[error("no feature carries information (every information value under {0})")]
    NoFeatures(f64),
    #[error("feature schema mismatch: {0}")]
    Schema(String),
    #[error("invalid model artefact: {0}")]
    Artefact(String),
}
