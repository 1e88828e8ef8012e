//! A typed table and the fixed split.

use serde::{Deserialize, Serialize};

/// Most levels a categorical column keeps; rarer ones fold into the last level (`other`).
pub const MAX_LEVELS: usize = 4_096;

#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `NaN` is a missing value.
    Numeric(Vec<f64>),
    /// Codes into `levels`; `u32::MAX` is a missing value.
    Categorical { codes: Vec<u32>, levels: Vec<String> },
}

pub const MISSING_CODE: u32 = u32::MAX;

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Categorical { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> FeatureKind {
        match self {
            Column::Numeric(_) => FeatureKind::Numeric,
            Column::Categorical { .. } => FeatureKind::Categorical,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    Numeric,
    Categorical,
}

/// Rows with a label. `row_index` is each row's 0-based data-row index in its source file
/// (header not counted), which the fixed split is defined on.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub names: Vec<String>,
    pub columns: Vec<Column>,
    /// `true` is the positive class (bad, default, fraud).
    pub target: Vec<bool>,
    pub row_index: Vec<usize>,
}

/// One row's value of a feature, as the scorecard reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    Level(&'a str),
    Missing,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.target.len()
    }

    pub fn value(&self, column: usize, row: usize) -> Value<'_> {
        match &self.columns[column] {
            Column::Numeric(v) => {
                let x = v[row];
                if x.is_nan() {
                    Value::Missing
                } else {
                    Value::Number(x)
                }
            }
            Column::Categorical { codes, levels } => match codes[row] {
                MISSING_CODE => Value::Missing,
                c => Value::Level(&levels[c as usize]),
            },
        }
    }

    /// The rows at `indexes`, in that order.
    pub fn select(&self, indexes: &[usize]) -> Table {
        let columns = self
            .columns
            .iter()
            .map(|c| match c {
                Column::Numeric(v) => Column::Numeric(indexes.iter().map(|i| v[*i]).collect()),
                Column::Categorical { codes, levels } => {
                    Column::Categorical { codes: indexes.iter().map(|i| codes[*i]).collect(), levels: levels.clone() }
                }
            })
            .collect();
        Table {
            names: self.names.clone(),
            columns,
            target: indexes.iter().map(|i| self.target[*i]).collect(),
            row_index: indexes.iter().map(|i| self.row_index[*i]).collect(),
        }
    }

    /// The table without the named columns.
    pub fn without(&self, drop: &[&str]) -> Table {
        let keep: Vec<usize> = (0..self.names.len()).filter(|i| !drop.contains(&self.names[*i].as_str())).collect();
        Table {
            names: keep.iter().map(|i| self.names[*i].clone()).collect(),
            columns: keep.iter().map(|i| self.columns[*i].clone()).collect(),
            target: self.target.clone(),
            row_index: self.row_index.clone(),
        }
    }

    /// The column holding each wanted feature, in order; a missing column or one of another
    /// kind is a schema error naming it.
    pub fn columns_for<'a>(
        &self,
        wanted: impl IntoIterator<Item = (&'a str, FeatureKind)>,
    ) -> Result<Vec<usize>, crate::ModelError> {
        wanted
            .into_iter()
            .map(|(name, kind)| {
                let i = self
                    .names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| crate::ModelError::Schema(format!("the data has no column `{name}`")))?;
                if self.columns[i].kind() != kind {
                    return Err(crate::ModelError::Schema(format!("`{name}` is {kind:?} in the model")));
                }
                Ok(i)
            })
            .collect()
    }

    pub fn positives(&self) -> usize {
        self.target.iter().filter(|t| **t).count()
    }
}

/// The fixed credit split: a row is test data when its data-row index modulo 10 is 0, 1 or 2.
pub fn is_credit_test_row(row_index: usize) -> bool {
    row_index % 10 <= 2
}

/// Splits a credit table into (train, test) by the fixed rule.
pub fn credit_split(table: &Table) -> (Table, Table) {
    let (test, train): (Vec<usize>, Vec<usize>) =
        (0..table.rows()).partition(|i| is_credit_test_row(table.row_index[*i]));
    (table.select(&train), table.select(&test))
}

/// Splits by time: `order` sorts rows from earliest to latest (ties already broken); the
/// earliest 70 % are training data.
pub fn time_split(table: &Table, order: &[usize]) -> (Table, Table) {
    assert_eq!(order.len(), table.rows());
    let cut = order.len() * 7 / 10;
    (table.select(&order[..cut]), table.select(&order[cut..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credit_split_is_three_in_ten_by_file_row() {
        let n = 25;
        let table = Table {
            names: vec!["x".into()],
            columns: vec![Column::Numeric((0..n).map(|i| i as f64).collect())],
            target: (0..n).map(|i| i % 2 == 0).collect(),
            row_index: (0..n).collect(),
        };
        let (train, test) = credit_split(&table);
        assert_eq!(test.row_index, vec![0, 1, 2, 10, 11, 12, 20, 21, 22]);
        assert_eq!(train.rows() + test.rows(), n);
        assert!(train.row_index.iter().all(|i| i % 10 > 2));
    }
}
