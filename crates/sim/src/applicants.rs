//! Credit applications for the simulated population: rows of the public credit dataset the
//! shipped credit scorecard was trained on, keyed by the scorecard's features, as a lender
//! would have them at application. Only the rows the scorecard was *not* trained on (the
//! fixed split's test rows) are drawn, so the scorecard meets the population as it would
//! meet new applicants; rows of people who repaid and rows of people who defaulted are kept
//! apart, and each user draws from the pile their ground truth says.

use crate::SimError;
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;
use xiezhi_models::table::Value as Cell;

/// One applicant's answers, keyed by the credit model's features.
pub type Answers = Arc<Map<String, Value>>;

/// What a user applies with: a row's answers and a declared monthly income.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationSpec {
    pub answers: Answers,
    pub monthly_income_minor: i64,
}

/// The rows to draw from.
#[derive(Debug)]
pub struct Applicants {
    /// The dataset the rows come from.
    pub dataset: String,
    /// Rows of people who repaid, and of people who defaulted.
    pub good: Vec<Answers>,
    pub bad: Vec<Answers>,
}

impl Applicants {
    /// The shipped credit model's dataset's test rows from `data_dir`. Without the data, the
    /// datasets' one-line error naming the command that fetches it.
    pub fn load(data_dir: &Path) -> Result<Applicants, SimError> {
        let model = xiezhi_risk::shipped_credit_model();
        let spec = xiezhi_datasets::spec(model.dataset()).map_err(|e| SimError::Data(e.to_string()))?;
        let loaded = xiezhi_datasets::load(spec, data_dir).map_err(|e| SimError::Data(e.to_string()))?;
        let table = &loaded.table;
        let mut columns = Vec::with_capacity(model.features().len());
        for f in model.features() {
            let column = table.names.iter().position(|n| *n == f.name).ok_or_else(|| {
                SimError::Data(format!("{}: no column `{}` the credit model reads", model.dataset(), f.name))
            })?;
            columns.push((f.name.clone(), column));
        }
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        'rows: for row in 0..table.rows() {
            // The fixed split's test rows: data-row index modulo 10 is 0, 1 or 2.
            if table.row_index[row] % 10 > 2 {
                continue;
            }
            let mut answers = Map::new();
            for (name, column) in &columns {
                let value = match table.value(*column, row) {
                    Cell::Number(x) if x.fract() == 0.0 && x.abs() < 1e15 => Value::from(x as i64),
                    Cell::Number(x) => Value::from(x),
                    Cell::Level(level) => Value::from(level),
                    // An application answers every question: rows with a gap are not drawn.
                    Cell::Missing => continue 'rows,
                };
                answers.insert(name.clone(), value);
            }
            if table.target[row] {
                bad.push(Arc::new(answers));
            } else {
                good.push(Arc::new(answers));
            }
        }
        if good.is_empty() || bad.is_empty() {
            return Err(SimError::Data(format!("{}: no complete test rows of both outcomes", model.dataset())));
        }
        Ok(Applicants { dataset: model.dataset().to_owned(), good, bad })
    }

    /// A row of someone who defaulted (`bad`) or repaid.
    pub fn draw(&self, bad: bool, rng: &mut fastrand::Rng) -> Answers {
        let pile = if bad { &self.bad } else { &self.good };
        Arc::clone(&pile[rng.usize(..pile.len())])
    }
}
