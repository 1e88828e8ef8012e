use std::path::Path;
use std::process::ExitCode;
use xiezhi_ledger::{Ledger, PlatformAccount};
use xiezhi_store::Store;
use xiezhi_store_sqlite::SqliteStore;

/// Checks the books twice, independently: with SQL over the stored postings, and by
/// replaying the journal through the ledger (which re-validates every operation).
pub fn check(data_dir: &Path) -> ExitCode {
    if !data_dir.join("xiezhi.sqlite3").exists() {
        eprintln!("xiezhi store check: {}: no store here (expected xiezhi.sqlite3)", data_dir.display());
        return ExitCode::from(2);
    }
    let mut store = match SqliteStore::open_dir(data_dir) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("xiezhi store check: {}: {e}", data_dir.display());
            return ExitCode::from(2);
        }
    };
    let report = match store.check_books() {
        Ok(report) => report,
        Err(e) => {
            eprintln!("xiezhi store check: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ledger = Ledger::new();
    let mut replay_error = None;
    let streamed = store.for_each_journal_entry(&mut |transaction| {
        if replay_error.is_none() {
            if let Err(e) = ledger.replay(&transaction) {
                replay_error = Some(e.to_string());
            }
        }
        Ok(())
    });
    if let Err(e) = streamed {
        eprintln!("xiezhi store check: {e}");
        return ExitCode::from(2);
    }
    let (credit_total, money_total) = ledger.trial_balance();
    let mut platform = serde_json::Map::new();
    let currencies: std::collections::BTreeSet<_> = ledger.credit_lines().map(|l| l.currency).collect();
    for currency in currencies {
        for account in [
            PlatformAccount::MerchantSettlementPayable,
            PlatformAccount::RepaymentsReceived,
            PlatformAccount::FeeIncome,
            PlatformAccount::CompensationFund,
        ] {
            platform.insert(
                format!("{currency}:{}", account.as_str()),
                serde_json::Value::String(xiezhi_money::format_minor(
                    ledger.platform_balance(currency, account),
                    currency.minor_unit_exponent(),
                )),
            );
        }
    }
    let balanced = report.is_balanced() && replay_error.is_none() && credit_total == 0 && money_total == 0;
    let output = serde_json::json!({
        "balanced": balanced,
        "transactions": report.transactions,
        "postings": report.postings,
        "unbalanced_transactions": report.unbalanced_transactions,
        "replay_error": replay_error,
        "credit_lines": ledger.credit_lines().count(),
        "pending_holds": ledger.pending_hold_count(),
        "platform_balances": platform,
    });
    println!("{}", serde_json::to_string_pretty(&output).expect("json"));
    if balanced {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
