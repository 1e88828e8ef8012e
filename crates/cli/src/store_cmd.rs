use std::path::Path;
use std::process::ExitCode;
use xiezhi_core::{books, Clock, SystemClock};
use xiezhi_store_sqlite::SqliteStore;

fn open(command: &str, data_dir: &Path) -> Result<SqliteStore, ExitCode> {
    if !data_dir.join("xiezhi.sqlite3").exists() {
        eprintln!("xiezhi store {command}: {}: no store here (expected xiezhi.sqlite3)", data_dir.display());
        return Err(ExitCode::from(2));
    }
    SqliteStore::open_dir(data_dir).map_err(|e| {
        eprintln!("xiezhi store {command}: {}: {e}", data_dir.display());
        ExitCode::from(2)
    })
}

/// Checks the books three ways, independently: with SQL over the stored postings, by
/// replaying the journal through the ledger (which decides every operation again), and by
/// comparing every payment record with the ledger's hold. Prints JSON; exits 1 if anything
/// is wrong, 2 if the store cannot be read.
pub fn check(data_dir: &Path) -> ExitCode {
    let mut store = match open("check", data_dir) {
        Ok(store) => store,
        Err(code) => return code,
    };
    let report = match books::check_store(&mut store) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("xiezhi store check: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    if report.balanced && report.records_agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Accepts the first refused journal entry, as recorded, with who and why on record.
pub fn accept(data_dir: &Path, transaction_id: u64, operator: &str, reason: &str) -> ExitCode {
    let mut store = match open("accept", data_dir) {
        Ok(store) => store,
        Err(code) => return code,
    };
    match books::accept_transaction(&mut store, transaction_id, operator, reason, SystemClock.now_ms()) {
        Ok(accepted) => {
            println!("{}", serde_json::to_string_pretty(&accepted).expect("json"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xiezhi store accept: {e}");
            ExitCode::from(1)
        }
    }
}
