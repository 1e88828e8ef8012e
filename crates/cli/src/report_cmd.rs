//! `xiezhi report conduct --from DATE --to DATE [--json]`: the conduct report for the
//! operator and its regulator (`xiezhi_core::conduct`), Markdown tables by default, the
//! report's JSON with `--json`.
//!
//! Offline with `--data-dir DIR`: the store in that directory is opened as `xiezhi store
//! check` opens it and only read (a running server may keep writing; the figures stand at
//! the wall clock). Otherwise from a running server (`--server URL`, key from `XIEZHI_KEY`
//! as for `xiezhi restrictions`): `GET /v1/reports/conduct`, which needs `reports:read`; the
//! figures then stand at the server's clock. Exit 0 with the report; 1 when the server
//! refuses; 2 on bad dates, an unreadable store or an unreachable server.

use crate::restrictions_cmd::{query_string, send, Target};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use xiezhi_core::conduct::{ConductRecords, ConductReport, ReportPeriod};
use xiezhi_core::{Clock, CoreError, SystemClock};
use xiezhi_store_sqlite::SqliteStore;

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Restrictions by reason code and scope, time to lift, challenges, appeals and their
    /// deadlines, compensation and false positives, for what began between two dates.
    Conduct {
        /// The first day (ISO date, UTC), e.g. 2026-11-01.
        #[arg(long)]
        from: String,
        /// The last day (ISO date, UTC), included; at most 366 days after `--from`.
        #[arg(long)]
        to: String,
        /// Read this data directory's store offline instead of asking a server.
        #[arg(long, conflicts_with = "server")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

pub fn run(command: ReportCommand) -> ExitCode {
    let ReportCommand::Conduct { from, to, data_dir, target } = command;
    let period = match ReportPeriod::parse(&from, &to) {
        Ok(period) => period,
        Err(CoreError::InvalidRequest { field, message }) => {
            eprintln!("xiezhi report conduct: --{field}: {message}");
            return ExitCode::from(2);
        }
        Err(other) => {
            eprintln!("xiezhi report conduct: {other}");
            return ExitCode::from(2);
        }
    };
    let report = match data_dir {
        Some(dir) => match offline(&dir, &period) {
            Ok(report) => report,
            Err(message) => {
                eprintln!("xiezhi report conduct: {}: {message}", dir.display());
                return ExitCode::from(2);
            }
        },
        None => {
            let path = format!("/v1/reports/conduct{}", query_string(&[("from", Some(from)), ("to", Some(to))]));
            match send(&target, reqwest::Method::GET, &path, None) {
                Ok((status, body)) if status < 300 => match serde_json::from_value::<ConductReport>(body) {
                    Ok(report) => report,
                    Err(e) => {
                        eprintln!("xiezhi report conduct: unreadable report from {}: {e}", target.server);
                        return ExitCode::from(2);
                    }
                },
                Ok((status, body)) => {
                    let code = body["code"].as_str().unwrap_or("error");
                    let detail = body["detail"].as_str().unwrap_or_default();
                    eprintln!("xiezhi report conduct: {status} {code}: {detail}");
                    return ExitCode::from(1);
                }
                Err(message) => {
                    eprintln!("xiezhi report conduct: {message}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    if target.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print!("{}", report.markdown());
    }
    ExitCode::SUCCESS
}

/// The report from a data directory's store, read and never written.
fn offline(dir: &Path, period: &ReportPeriod) -> Result<ConductReport, String> {
    if !dir.join("xiezhi.sqlite3").exists() {
        return Err("no store here (expected xiezhi.sqlite3)".into());
    }
    let mut store = SqliteStore::open_dir(dir).map_err(|e| e.to_string())?;
    let records = ConductRecords::read(&mut store, period).map_err(|e| e.to_string())?;
    Ok(ConductReport::compute(&records, period, SystemClock.now_ms()))
}
