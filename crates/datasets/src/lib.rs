//! The datasets of `../shared/data/` (see its README), loaded into [`Table`]s exactly as the
//! README defines them: the target and its positive label, the columns that must never be
//! features (ids and leaks), and the fixed split. On a machine without `../shared`,
//! `scripts/fetch-data` rebuilds the same files from their PyPI packages (checked against
//! `data/SHA256SUMS`) into `.data/shared`, where [`default_data_dir`] finds them.

use sha2::{Digest, Sha256};
mod fraud;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use xiezhi_models::table::{Column, Table, MAX_LEVELS, MISSING_CODE};

/// Largest file read (the biggest, SBA, is 180 MB unpacked).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

#[derive(thiserror::Error)]
pub enum DataError {
    #[error("unknown dataset `{0}` (known: {1})")]
    Unknown(String, String),
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: row {row}: {message}")]
    Row { path: String, row: usize, message: String },
    /// One of the public datasets is not where it was looked for: says, in one line, which
    /// command fetches it.
    #[error("{0}")]
    Missing(String),
}

/// As its message, so that a test returning `Result<(), DataError>` fails with that one line
/// (no panic, so no backtrace).
impl std::fmt::Debug for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// How rows are split into training and test data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Data-row index modulo 10 in {0, 1, 2} is test.
    Credit,
    /// Sorted by this column, then by `id`: the earliest 70 % train.
    Time { column: &'static str },
    /// Already in time order (the simulator's export): the first 70 % of rows train.
    Ordered,
}

#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub name: &'static str,
    /// Relative to the data directory.
    pub file: &'static str,
    pub target: &'static str,
    /// Labels of the positive class (bad, default, fraud), compared trimmed.
    pub positive: &'static [&'static str],
    /// Never features: ids, leaks, free text, raw dates.
    pub drop: &'static [&'static str],
    /// Read as categories even when every value is a number (codes).
    pub categorical: &'static [&'static str],
    /// Money written as `"$60,000.00 "`.
    pub money: &'static [&'static str],
    pub split: Split,
    /// Columns that say who a person is rather than how they handle credit: age, sex and
    /// marital status, nationality, foreign-worker status. A model that decides credit never
    /// reads them (the `*_application` datasets leave them out); the datasets as the README
    /// defines them keep them, so the recorded figures stay comparable.
    pub protected: &'static [&'static str],
}

/// The German credit data's protected columns: age, sex with marital status (one column),
/// and foreign-worker status.
const GERMAN_PROTECTED: &[&str] = &["age_in_years", "personal_status_and_sex", "foreign_worker"];

const SBA_DROP: &[&str] =
    &["LoanNr_ChkDgt", "Name", "ChgOffDate", "ChgOffPrinGr", "BalanceGross", "ApprovalDate", "DisbursementDate", "Zip"];
const SBA_DROP_NO_TERM: &[&str] = &[
    "LoanNr_ChkDgt",
    "Name",
    "ChgOffDate",
    "ChgOffPrinGr",
    "BalanceGross",
    "ApprovalDate",
    "DisbursementDate",
    "Zip",
    "Term",
];
const SBA_CATEGORICAL: &[&str] = &["NAICS", "FranchiseCode", "UrbanRural", "NewExist", "ApprovalFY"];
const SBA_MONEY: &[&str] = &["DisbursementGross", "GrAppv", "SBA_Appv"];

pub const DATASETS: &[DatasetSpec] = &[
    DatasetSpec {
        name: "german_credit",
        file: "credit/german_credit.csv",
        target: "creditability",
        positive: &["bad"],
        drop: &[],
        categorical: &[],
        money: &[],
        split: Split::Credit,
        protected: GERMAN_PROTECTED,
    },
    // What a lender may weigh when someone applies: the German data without its protected
    // columns. The shipped credit scorecard is trained on it (crates/risk/models/credit-default).
    DatasetSpec {
        name: "german_credit_application",
        file: "credit/german_credit.csv",
        target: "creditability",
        positive: &["bad"],
        drop: GERMAN_PROTECTED,
        categorical: &[],
        money: &[],
        split: Split::Credit,
        protected: GERMAN_PROTECTED,
    },
    DatasetSpec {
        name: "modeldata_credit_data",
        file: "credit/modeldata_credit_data.csv",
        target: "Status",
        positive: &["bad"],
        drop: &["rownames"],
        categorical: &[],
        money: &[],
        split: Split::Credit,
        protected: &["Age", "Marital"],
    },
    DatasetSpec {
        name: "modeldata_lending_club",
        file: "credit/modeldata_lending_club.csv",
        target: "Class",
        positive: &["bad"],
        drop: &["rownames"],
        categorical: &[],
        money: &[],
        split: Split::Credit,
        protected: &[],
    },
    DatasetSpec {
        name: "taiwan_uci_credit_card_sample6000",
        file: "credit/taiwan_uci_credit_card_sample6000.csv",
        target: "default",
        positive: &["1"],
        drop: &[],
        categorical: &["EDUCATION", "MARRIAGE"],
        money: &[],
        split: Split::Credit,
        protected: &["MARRIAGE"],
    },
    DatasetSpec {
        name: "sba_national_loans",
        file: "credit/sba_national_loans.csv.gz",
        target: "MIS_Status",
        positive: &["CHGOFF"],
        drop: SBA_DROP,
        categorical: SBA_CATEGORICAL,
        money: SBA_MONEY,
        split: Split::Credit,
        protected: &[],
    },
    DatasetSpec {
        name: "sba_no_term",
        file: "credit/sba_national_loans.csv.gz",
        target: "MIS_Status",
        positive: &["CHGOFF"],
        drop: SBA_DROP_NO_TERM,
        categorical: SBA_CATEGORICAL,
        money: SBA_MONEY,
        split: Split::Credit,
        protected: &[],
    },
    DatasetSpec {
        name: "taiwan_credit_cards_causaldata",
        file: "credit/taiwan_credit_cards_causaldata.csv",
        target: "LateSept",
        positive: &["True"],
        drop: &["rownames"],
        categorical: &[],
        money: &[],
        split: Split::Credit,
        protected: &["AGE"],
    },
    DatasetSpec {
        name: "islr_default",
        file: "credit/islr_default.csv",
        target: "default",
        positive: &["Yes"],
        drop: &[],
        categorical: &[],
        money: &[],
        split: Split::Credit,
        protected: &[],
    },
    DatasetSpec {
        name: "evalml_fraud_transactions",
        file: "fraud/evalml_fraud_transactions.csv.gz",
        target: "fraud",
        positive: &["True"],
        drop: &["id", "card_id", "store_id"],
        categorical: &[],
        money: &[],
        split: Split::Time { column: "datetime" },
        protected: &[],
    },
    DatasetSpec {
        name: "sim_traffic",
        file: "sim_traffic.csv",
        target: "fraud",
        positive: &["1"],
        drop: &[],
        categorical: &["currency", "mcc", "merchant_country", "user_region", "credit_band"],
        money: &[],
        split: Split::Ordered,
        protected: &[],
    },
    DatasetSpec {
        name: "aer_creditcard",
        file: "credit/aer_creditcard.csv",
        target: "card",
        positive: &["no"],
        drop: &["rownames", "share", "expenditure"],
        categorical: &[],
        money: &[],
        split: Split::Credit,
        protected: &["age"],
    },
];

pub fn spec(name: &str) -> Result<&'static DatasetSpec, DataError> {
    DATASETS.iter().find(|d| d.name == name).ok_or_else(|| {
        DataError::Unknown(name.to_owned(), DATASETS.iter().map(|d| d.name).collect::<Vec<_>>().join(", "))
    })
}

/// The public datasets' files (relative to the data directory), as `scripts/fetch-data`
/// rebuilds them and `data/SHA256SUMS` records them.
pub const PUBLIC_FILES: [&str; 9] = [
    "credit/aer_creditcard.csv",
    "credit/german_credit.csv",
    "credit/islr_default.csv",
    "credit/modeldata_credit_data.csv",
    "credit/modeldata_lending_club.csv",
    "credit/sba_national_loans.csv.gz",
    "credit/taiwan_credit_cards_causaldata.csv",
    "credit/taiwan_uci_credit_card_sample6000.csv",
    "fraud/evalml_fraud_transactions.csv.gz",
];

/// The command that fetches the public datasets, relative to the repository.
pub const FETCH_COMMAND: &str = "scripts/fetch-data";

/// The workspace this crate was built from.
fn workspace_root() -> &'static Path {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).unwrap_or(manifest)
}

/// Where `scripts/fetch-data` puts the datasets by default: `.data/shared` in the workspace
/// this crate was built from.
pub fn fetched_data_dir() -> PathBuf {
    workspace_root().join(".data/shared")
}

/// Where the data lives: `XIEZHI_DATA_DIR` when set (even when it does not exist: loading
/// then says so, never falling back to another copy); else the first of `../shared/data`
/// from the working directory or from the workspace root, then the copy `scripts/fetch-data`
/// made (`.data/shared` in the working directory or the workspace root). With none of them,
/// the fetched copy's place, so that loading names the command that fills it.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XIEZHI_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let candidates = [
        PathBuf::from("../shared/data"),
        workspace_root().join("../shared/data"),
        PathBuf::from(".data/shared"),
        fetched_data_dir(),
    ];
    candidates.into_iter().find(|d| d.join("credit").is_dir()).unwrap_or_else(fetched_data_dir)
}

/// The one-line error for a public dataset's file missing from `data_dir`.
fn missing(data_dir: &Path, file: &str) -> DataError {
    let from_env = std::env::var_os("XIEZHI_DATA_DIR").is_some_and(|d| Path::new(&d) == data_dir);
    let shown = data_dir.display();
    let dest = if data_dir == fetched_data_dir() { String::new() } else { format!(" --dest {shown}") };
    let message = if from_env {
        format!("no {file} in {shown} (XIEZHI_DATA_DIR): fetch the public datasets with {FETCH_COMMAND}{dest}")
    } else {
        format!(
            "no {file} in {shown}: fetch the public datasets with {FETCH_COMMAND}{dest} (or set XIEZHI_DATA_DIR to a copy)"
        )
    };
    DataError::Missing(message)
}

/// A loaded dataset: every labelled row, and the SHA-256 of the file's bytes.
#[derive(Debug)]
pub struct Loaded {
    pub table: Table,
    pub sha256: String,
}

impl Loaded {
    /// (train, test) by the dataset's fixed split.
    pub fn split(&self, spec: &DatasetSpec) -> (Table, Table) {
        match spec.split {
            Split::Credit => xiezhi_models::table::credit_split(&self.table),
            // Time-split tables are loaded in time order already.
            Split::Time { .. } | Split::Ordered => {
                let order: Vec<usize> = (0..self.table.rows()).collect();
                xiezhi_models::table::time_split(&self.table, &order)
            }
        }
    }
}

fn clean_money(text: &str) -> String {
    text.trim().trim_start_matches('$').replace(',', "")
}

/// Interned values of one column while reading.
#[derive(Default)]
pub(crate) struct Builder {
    index: HashMap<String, u32>,
    values: Vec<String>,
    codes: Vec<u32>,
}

impl Builder {
    pub(crate) fn push(&mut self, text: &str) {
        if text.is_empty() {
            self.codes.push(MISSING_CODE);
            return;
        }
        let code = match self.index.get(text) {
            Some(c) => *c,
            None => {
                let c = self.values.len() as u32;
                self.index.insert(text.to_owned(), c);
                self.values.push(text.to_owned());
                c
            }
        };
        self.codes.push(code);
    }

    /// Numeric when every distinct value is a number, unless forced categorical.
    pub(crate) fn finish(self, categorical: bool) -> Column {
        if !categorical {
            let numbers: Option<Vec<f64>> =
                self.values.iter().map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite())).collect();
            if let Some(numbers) = numbers {
                return Column::Numeric(
                    self.codes
                        .iter()
                        .map(|c| if *c == MISSING_CODE { f64::NAN } else { numbers[*c as usize] })
                        .collect(),
                );
            }
        }
        // Rare levels beyond the cap fold into one: the scorecard groups rare levels anyway.
        let mut levels = self.values;
        let mut codes = self.codes;
        if levels.len() > MAX_LEVELS {
            let mut counts = vec![0u64; levels.len()];
            for c in codes.iter().filter(|c| **c != MISSING_CODE) {
                counts[*c as usize] += 1;
            }
            let mut order: Vec<usize> = (0..levels.len()).collect();
            order.sort_by(|a, b| counts[*b].cmp(&counts[*a]).then(a.cmp(b)));
            let mut remap = vec![(MAX_LEVELS - 1) as u32; levels.len()];
            let mut kept = Vec::with_capacity(MAX_LEVELS);
            for (new, old) in order.iter().take(MAX_LEVELS - 1).enumerate() {
                remap[*old] = new as u32;
                kept.push(levels[*old].clone());
            }
            kept.push("(rare levels)".to_owned());
            for c in codes.iter_mut().filter(|c| **c != MISSING_CODE) {
                *c = remap[*c as usize];
            }
            levels = kept;
        }
        Column::Categorical { codes, levels }
    }
}

pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    let err = |message: String| DataError::Read { path: path.display().to_string(), message };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(err(format!("over {MAX_FILE_BYTES} bytes")));
    }
    std::fs::read(path).map_err(|e| err(e.to_string()))
}

/// A data file's bytes (unpacked when gzip) and the SHA-256 of the file as stored.
pub(crate) fn read_text(path: &Path) -> Result<(Vec<u8>, String), DataError> {
    let raw = read_bytes(path)?;
    let sha256: String = Sha256::digest(&raw).iter().map(|b| format!("{b:02x}")).collect();
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(MAX_FILE_BYTES)
            .read_to_end(&mut out)
            .map_err(|e| DataError::Read { path: path.display().to_string(), message: format!("gzip: {e}") })?;
        Ok((out, sha256))
    } else {
        Ok((raw, sha256))
    }
}

/// The header row of a CSV reader.
pub(crate) fn headers(reader: &mut csv::Reader<&[u8]>, path: &Path) -> Result<Vec<String>, DataError> {
    Ok(reader
        .headers()
        .map_err(|e| DataError::Read { path: path.display().to_string(), message: e.to_string() })?
        .iter()
        .map(str::to_owned)
        .collect())
}

/// The columns of `spec` a model may read (every column but the target and the dropped
/// ones), from the file's header alone: what the dataset's features are called, without
/// reading its rows. A public file missing from `data_dir` is the one-line error naming
/// the command that fetches it.
pub fn feature_names(spec: &DatasetSpec, data_dir: &Path) -> Result<Vec<String>, DataError> {
    use std::io::BufRead;
    let path = data_dir.join(spec.file);
    if PUBLIC_FILES.contains(&spec.file) && !path.is_file() {
        return Err(missing(data_dir, spec.file));
    }
    let err = |message: String| DataError::Read { path: path.display().to_string(), message };
    let file = std::fs::File::open(&path).map_err(|e| err(e.to_string()))?;
    let mut reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let mut line = String::new();
    reader.by_ref().take(1 << 20).read_line(&mut line).map_err(|e| err(e.to_string()))?;
    let mut csv = csv::ReaderBuilder::new().has_headers(true).from_reader(line.as_bytes());
    let headers = csv.headers().map_err(|e| err(e.to_string()))?;
    Ok(headers.iter().filter(|h| *h != spec.target && !spec.drop.contains(h)).map(str::to_owned).collect())
}

/// Loads `spec` from `data_dir`.
pub fn load(spec: &DatasetSpec, data_dir: &Path) -> Result<Loaded, DataError> {
    if PUBLIC_FILES.contains(&spec.file) && !data_dir.join(spec.file).is_file() {
        return Err(missing(data_dir, spec.file));
    }
    if let Split::Time { column } = spec.split {
        return fraud::load(spec, column, data_dir);
    }
    let path = data_dir.join(spec.file);
    let shown = path.display().to_string();
    let (text, sha256) = read_text(&path)?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_slice());
    let headers = headers(&mut reader, &path)?;
    let target = headers.iter().position(|h| h == spec.target).ok_or_else(|| DataError::Read {
        path: shown.clone(),
        message: format!("no target column `{}`", spec.target),
    })?;
    let features: Vec<usize> =
        (0..headers.len()).filter(|i| *i != target && !spec.drop.contains(&headers[*i].as_str())).collect();
    let money: Vec<bool> = features.iter().map(|i| spec.money.contains(&headers[*i].as_str())).collect();
    let mut builders: Vec<Builder> = features.iter().map(|_| Builder::default()).collect();
    let mut labels = Vec::new();
    let mut row_index = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut row = 0usize;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(DataError::Row { path: shown.clone(), row, message: e.to_string() }),
        }
        if record.len() != headers.len() {
            return Err(DataError::Row {
                path: shown.clone(),
                row,
                message: format!("{} fields, the header has {}", record.len(), headers.len()),
            });
        }
        // The split index counts every data row; unlabelled rows are dropped after it.
        let label = record[target].trim();
        if !label.is_empty() {
            labels.push(spec.positive.contains(&label));
            row_index.push(row);
            for (k, i) in features.iter().enumerate() {
                let value = record[*i].trim();
                if money[k] {
                    builders[k].push(&clean_money(value));
                } else {
                    builders[k].push(value);
                }
            }
        }
        row += 1;
    }
    let columns = builders
        .into_iter()
        .zip(&features)
        .map(|(b, i)| b.finish(spec.categorical.contains(&headers[*i].as_str())))
        .collect();
    Ok(Loaded {
        table: Table {
            names: features.iter().map(|i| headers[*i].clone()).collect(),
            columns,
            target: labels,
            row_index,
        },
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A public dataset; without the data, the one-line error naming the fetch command,
    /// which the test returns (a failure without a backtrace).
    fn public(name: &str) -> Result<Loaded, DataError> {
        load(spec(name)?, &default_data_dir())
    }

    #[test]
    fn german_credit_loads_as_the_readme_says() -> Result<(), DataError> {
        let spec = spec("german_credit")?;
        let loaded = public("german_credit")?;
        let t = &loaded.table;
        assert_eq!(t.rows(), 1_000);
        assert_eq!(t.positives(), 300, "30 % bad");
        assert_eq!(t.names.len(), 20);
        let amount = t.names.iter().position(|n| n == "credit_amount").unwrap();
        assert!(matches!(t.columns[amount], Column::Numeric(_)));
        let purpose = t.names.iter().position(|n| n == "purpose").unwrap();
        assert!(matches!(t.columns[purpose], Column::Categorical { .. }));
        let (train, test) = loaded.split(spec);
        assert_eq!((train.rows(), test.rows()), (700, 300));
        assert_eq!(loaded.sha256.len(), 64);
        Ok(())
    }

    #[test]
    fn the_application_dataset_is_german_credit_without_its_protected_columns() -> Result<(), DataError> {
        let full = public("german_credit")?;
        let application = public("german_credit_application")?;
        let spec = spec("german_credit_application")?;
        assert_eq!(application.table.rows(), full.table.rows());
        assert_eq!(application.table.target, full.table.target);
        assert_eq!(application.table.names.len(), full.table.names.len() - 3);
        for column in spec.protected {
            assert!(full.table.names.iter().any(|n| n == column), "{column} is a German column");
            assert!(!application.table.names.iter().any(|n| n == column), "{column} left out");
        }
        // The header alone names the same features, in order.
        assert_eq!(feature_names(spec, &default_data_dir())?, application.table.names);
        assert_eq!(feature_names(super::spec("sba_no_term")?, &default_data_dir())?.len(), 17);
        Ok(())
    }

    #[test]
    fn ids_and_leaks_are_never_features() -> Result<(), DataError> {
        let loaded = public("aer_creditcard")?;
        for leak in ["rownames", "share", "expenditure", "card"] {
            assert!(!loaded.table.names.iter().any(|n| n == leak), "{leak}");
        }
        let lc = public("modeldata_lending_club")?;
        assert_eq!(lc.table.rows(), 9_857);
        assert_eq!(lc.table.positives(), 517);
        assert!(!lc.table.names.iter().any(|n| n == "rownames"));
        Ok(())
    }

    #[test]
    fn the_public_files_are_the_ones_fetched_and_checked() {
        let listed: Vec<&str> = include_str!("../../../data/SHA256SUMS")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(listed, PUBLIC_FILES, "data/SHA256SUMS and PUBLIC_FILES list the same files");
        let specs: std::collections::BTreeSet<&str> =
            DATASETS.iter().map(|d| d.file).filter(|f| PUBLIC_FILES.contains(f)).collect();
        assert_eq!(specs.len(), PUBLIC_FILES.len(), "every public file is a dataset");
    }

    #[test]
    fn a_missing_dataset_names_the_command_that_fetches_it_in_one_line() {
        let dir = Path::new("/nonexistent/xiezhi-data");
        for name in ["german_credit", "sba_national_loans", "evalml_fraud_transactions"] {
            let e = feature_names(spec(name).unwrap(), dir).unwrap_err().to_string();
            assert!(e.contains("scripts/fetch-data --dest /nonexistent/xiezhi-data"), "{e}");
            let e = load(spec(name).unwrap(), dir).unwrap_err().to_string();
            assert!(e.contains("scripts/fetch-data --dest /nonexistent/xiezhi-data"), "{e}");
            assert!(e.contains(spec(name).unwrap().file) && !e.contains('\n'), "{e}");
        }
        if !fetched_data_dir().join("credit/german_credit.csv").is_file() {
            let e = load(spec("german_credit").unwrap(), &fetched_data_dir()).unwrap_err().to_string();
            assert!(e.contains("with scripts/fetch-data (or set XIEZHI_DATA_DIR"), "{e}");
        }
        // The simulator's export is not a public dataset: its absence is an ordinary read error.
        let e = load(spec("sim_traffic").unwrap(), dir).unwrap_err().to_string();
        assert!(!e.contains("fetch-data"), "{e}");
    }

    #[test]
    fn unknown_datasets_are_named() {
        let e = spec("nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("german_credit"), "{e}");
    }
}
