//! Xiezhi's risk decision engine: every scan-to-pay payment gets an outcome from layers
//! evaluated in a fixed order (regulatory policy, lists, velocity and behaviour, network and
//! device, fraud score and credit), and every outcome that is not a plain approval carries
//! reason codes, a zh/en explanation and the ways out.
//!
//! Pure domain logic: no HTTP, no SQL, and no clock — the time of a decision comes in with
//! its facts, so simulations run days of traffic in seconds and records replay exactly.

pub mod catalogue;
pub mod credit;
mod engine;
pub mod features;
pub mod limits;
pub mod lists;
pub mod model_scorer;
pub mod policy;
pub mod rules;
pub mod scorer;
mod shipped;
pub mod velocity;

pub use catalogue::{Catalogue, Explanation, RecoveryKind};
pub use credit::{shipped_credit_model, Application, ApplicationError, CreditAssessment, CreditModel, CreditReason};
pub use engine::*;
pub use features::{Feature, FeatureVector};
pub use lists::{ListEntry, ListKind, Lists, NewListEntry, SubjectKind};
pub use model_scorer::ModelScorer;
pub use policy::{Policy, PolicyDocument};
pub use rules::{Layer, RuleError, RuleSet, RuleSetDefinition};
pub use scorer::{HeuristicScorer, Score, ScoreError, Scorer};
pub use shipped::{shipped_scorer, SHIPPED_MODEL, SHIPPED_MODEL_MANIFEST};

use serde::{Deserialize, Serialize};

/// What happens to a payment, mildest first. The derived order is the severity order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approve,
    /// A challenge the user can pass; the payment waits for it.
    StepUp,
    /// This payment only.
    Decline,
    /// The credit line's scan-to-pay is suspended, with an expiry and a way out.
    Restrict,
}

impl Outcome {
    /// Every outcome, mildest first.
    pub const ALL: [Outcome; 4] = [Outcome::Approve, Outcome::StepUp, Outcome::Decline, Outcome::Restrict];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approve => "approve",
            Outcome::StepUp => "step_up",
            Outcome::Decline => "decline",
            Outcome::Restrict => "restrict",
        }
    }

    /// The outcome as Fluent spells it in message ids and attributes (`step-up`).
    pub fn fluent_id(self) -> &'static str {
        match self {
            Outcome::Approve => "approve",
            Outcome::StepUp => "step-up",
            Outcome::Decline => "decline",
            Outcome::Restrict => "restrict",
        }
    }
}
