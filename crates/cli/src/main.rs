//! `xiezhi`: the one binary. Subcommands are thin: they parse flags and call the library
//! crates.

// Payments allocate many small strings (ids in facts, records, postings); mimalloc's
// per-thread free lists measured faster than glibc's malloc here (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod appeals_cmd;
mod bench;
mod bench_decide;
mod bench_http;
mod client;
mod decision_cmd;
mod demo;
mod fund_cmd;
mod keys_cmd;
mod model_cmd;
mod outbox_cmd;
mod outbox_loop;
mod phone;
mod qr_cmd;
mod report_cmd;
mod restrictions_cmd;
mod serve;
mod sim_http;
mod simulate;
mod store_cmd;
mod train_sim;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "xiezhi", version, about = "Xiezhi (獬豸): real-time decisions and credit lines for scan-to-pay")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the HTTP service on the embedded store.
    Serve(serve::ServeArgs),
    /// Decode, validate and encode EMV merchant-presented QR codes.
    Qr {
        #[command(subcommand)]
        command: qr_cmd::QrCommand,
    },
    /// Inspect a data directory.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Explain a payment's decision for a person.
    Decision {
        #[command(subcommand)]
        command: decision_cmd::DecisionCommand,
    },
    /// Check rule sets and policy documents before they go live.
    Rules {
        #[command(subcommand)]
        command: decision_cmd::RulesCommand,
    },
    /// Train and evaluate credit and fraud models on the public datasets (docs/QUALITY.md).
    Model {
        #[command(subcommand)]
        command: model_cmd::ModelCommand,
    },
    /// Run a seeded population of shoppers and fraudsters and report decision quality
    /// (docs/QUALITY.md).
    Simulate(simulate::SimulateArgs),
    /// Reports for the operator and its regulator: `report conduct --from --to`.
    Report {
        #[command(subcommand)]
        command: report_cmd::ReportCommand,
    },
    /// Create, list, rotate and revoke API keys on a running server (needs `keys:admin`).
    Keys {
        #[command(subcommand)]
        command: keys_cmd::KeysCommand,
    },
    /// List restrictions and lift one with a reason, on a running server.
    Restrictions {
        #[command(subcommand)]
        command: restrictions_cmd::RestrictionsCommand,
    },
    /// The appeals review queue on a running server: list, claim, decide.
    Appeals {
        #[command(subcommand)]
        command: appeals_cmd::AppealsCommand,
    },
    /// The compensation fund on a running server: its balance, and deposits into it.
    Fund {
        #[command(subcommand)]
        command: fund_cmd::FundCommand,
    },
    /// The notification outbox on a running server: list by status, replay dead letters.
    Outbox {
        #[command(subcommand)]
        command: outbox_cmd::OutboxCommand,
    },
    /// Print the API's OpenAPI 3.1 document (what `GET /openapi.json` serves).
    Openapi,
    /// Benchmarks (results and commands are recorded in docs/BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Check that the stored books balance, the journal replays and every payment record
    /// agrees with the ledger; names the first journal entry replay refuses and the payments
    /// it touched. Exits 1 if anything is wrong.
    Check {
        #[arg(long, default_value = "./xiezhi-data")]
        data_dir: PathBuf,
    },
    /// Accept the first journal entry replay refuses, as recorded, so the service starts
    /// again: an audited repair (who, why, when and what replay said are stored and listed
    /// by `store check`). Stop the server first; read `store check` before deciding.
    Accept {
        #[arg(long, default_value = "./xiezhi-data")]
        data_dir: PathBuf,
        /// The journal entry, as `store check` names it (`first_refused_transaction.id`).
        #[arg(long)]
        transaction: u64,
        /// Who decided.
        #[arg(long)]
        operator: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Commands::Serve(args) => serve::run(args),
        Commands::Qr { command } => qr_cmd::run(command),
        Commands::Store { command: StoreCommand::Check { data_dir } } => store_cmd::check(&data_dir),
        Commands::Store { command: StoreCommand::Accept { data_dir, transaction, operator, reason } } => {
            store_cmd::accept(&data_dir, transaction, &operator, &reason)
        }
        Commands::Bench { command } => bench::run(command),
        Commands::Keys { command } => keys_cmd::run(command),
        Commands::Restrictions { command } => restrictions_cmd::run(command),
        Commands::Appeals { command } => appeals_cmd::run(command),
        Commands::Fund { command } => fund_cmd::run(command),
        Commands::Outbox { command } => outbox_cmd::run(command),
        Commands::Openapi => {
            println!("{}", serde_json::to_string_pretty(&xiezhi_server::openapi::document()).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Commands::Simulate(args) => simulate::run(args),
        Commands::Report { command } => report_cmd::run(command),
        Commands::Model { command } => model_cmd::run(command),
        Commands::Decision { command } => decision_cmd::run_decision(command),
        Commands::Rules { command } => decision_cmd::run_rules(command),
    }
}
