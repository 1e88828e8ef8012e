//! `xiezhi bench ledger`: durable authorizations through the service and the embedded store,
//! with group commit, from many concurrent clients.

use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use xiezhi_core::{
    Command, NewCreditLine, NewMerchant, NewPayment, PaymentContext, PaymentStatus, Reply, Service, ServiceConfig,
    SystemClock,
};
use xiezhi_store_sqlite::SqliteStore;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// One prediction at a time, as serving does: a scorecard with its reasons, or boosted
    /// trees with their Shapley contributions, on a dataset's test rows.
    Model {
        #[arg(long)]
        model: std::path::PathBuf,
        #[arg(long)]
        dataset: String,
        #[arg(long, default_value_t = 20_000)]
        rows: usize,
    },
    /// The population simulator on one thread: with `--driver null` its own cost alone
    /// (planning, adversaries, ground truth, report); with `--driver engine` through the
    /// risk engine and the ledger in process.
    Simulate {
        #[arg(long, default_value_t = 100_000)]
        users: u32,
        #[arg(long, default_value_t = 20_000)]
        merchants: u32,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 7)]
        warmup_days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// `null` or `engine`.
        #[arg(long, default_value = "null")]
        driver: String,
    },
    /// Scan-to-pay authorizations (QR already decoded) committed durably to the embedded store.
    Ledger {
        /// Authorizations to run in total.
        #[arg(long, default_value_t = 200_000)]
        ops: usize,
        /// Concurrent clients (threads), each waiting for its own durable reply.
        #[arg(long, default_value_t = 256)]
        clients: usize,
        /// Credit lines the load is spread over.
        #[arg(long, default_value_t = 10_000)]
        lines: usize,
        /// Most requests per group commit.
        #[arg(long, default_value_t = 1_024)]
        max_batch: usize,
        /// Store directory (default: a fresh temporary directory under ./target).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Open-loop HTTP load on `POST /v1/payments` at a fixed rate, one shopper (device and
    /// network) per credit line; latency counted from when each request was due.
    Http {
        /// The server, e.g. http://127.0.0.1:18181.
        #[arg(long)]
        target: String,
        /// File with one credit line id per line.
        #[arg(long)]
        lines_file: PathBuf,
        /// The merchant QR payload to pay.
        #[arg(long)]
        qr: String,
        #[arg(long, default_value_t = 5_000)]
        rate: u32,
        #[arg(long, default_value_t = 30)]
        duration_secs: u64,
        /// Most requests in flight.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Send no Idempotency-Key (as the skeleton's hey run did); by default every request
        /// has its own key, as real clients send.
        #[arg(long)]
        without_idempotency_keys: bool,
        /// The key to send (a wallet or operator key with payments:write).
        #[command(flatten)]
        api_key: crate::client::ApiKeyArgs,
    },
    /// Open credit lines over HTTP for `bench http` and wrk, writing their ids to a file.
    SeedLines {
        #[arg(long)]
        target: String,
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
        /// Open lines without a profile (for servers older than the risk engine).
        #[arg(long)]
        without_profile: bool,
        /// The key to send (an operator key with lines:write and lines:migrate).
        #[command(flatten)]
        api_key: crate::client::ApiKeyArgs,
    },
    /// Risk decisions in process on one thread, with many live rules and velocity state for
    /// many users.
    Decide {
        /// Users with velocity state (each with three payments in the last day).
        #[arg(long, default_value_t = 1_000_000)]
        users: usize,
        /// Live rules (the shipped ones plus generated variants).
        #[arg(long, default_value_t = 200)]
        rules: usize,
        /// Decisions to time.
        #[arg(long, default_value_t = 200_000)]
        decisions: usize,
        #[arg(long, default_value_t = 20_000)]
        merchants: usize,
        /// `compiled` (Xiezhi's rule compiler, full decision) or `cel` (the `cel` crate's
        /// interpreter on the same features: rules only).
        #[arg(long, default_value = "compiled", value_parser = ["compiled", "cel"])]
        interpreter: String,
        /// The fraud scorer: `shipped` (the default, what `serve` decides with),
        /// `heuristic`, or a trained model's directory.
        #[arg(long)]
        fraud_model: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

pub fn run(command: BenchCommand) -> ExitCode {
    match command {
        BenchCommand::SeedLines { target, count, out, without_profile, api_key } => {
            let seeded = api_key.key().and_then(|key| {
                crate::bench_http::seed_lines(&target, &key, count.clamp(1, 10_000_000), &out, !without_profile)
            });
            match seeded {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xiezhi bench seed-lines: {e}");
                    ExitCode::from(1)
                }
            }
        }
        BenchCommand::Http {
            target,
            lines_file,
            qr,
            rate,
            duration_secs,
            connections,
            without_idempotency_keys,
            api_key,
        } => {
            let api_key = match api_key.key() {
                Ok(key) => key,
                Err(e) => {
                    eprintln!("xiezhi bench http: {e}");
                    return ExitCode::from(1);
                }
            };
            let args = crate::bench_http::HttpArgs {
                target,
                api_key,
                lines_file,
                qr,
                rate: rate.clamp(1, 100_000),
                duration_s: duration_secs.clamp(1, 3_600),
                connections: connections.clamp(1, 4_096),
                idempotency_keys: !without_idempotency_keys,
            };
            match crate::bench_http::http(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xiezhi bench http: {e}");
                    ExitCode::from(1)
                }
            }
        }
        BenchCommand::Decide { users, rules, decisions, merchants, interpreter, seed, fraud_model } => {
            let args = crate::bench_decide::DecideArgs {
                users: users.max(1),
                rules: rules.clamp(1, xiezhi_risk::rules::MAX_RULES),
                decisions: decisions.max(1),
                merchants: merchants.max(1),
                interpreter,
                seed,
                fraud_model,
            };
            match crate::bench_decide::decide(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xiezhi bench decide: {e}");
                    ExitCode::from(1)
                }
            }
        }
        BenchCommand::Model { model, dataset, rows } => match bench_model(&model, &dataset, rows) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xiezhi bench model: {e}");
                ExitCode::from(1)
            }
        },
        BenchCommand::Simulate { users, merchants, days, warmup_days, seed, driver } => {
            match bench_simulate(users, merchants, days, warmup_days, seed, &driver) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xiezhi bench simulate: {e}");
                    ExitCode::from(1)
                }
            }
        }
        BenchCommand::Ledger { ops, clients, lines, max_batch, data_dir } => {
            match ledger(ops, clients.clamp(1, 4_096), lines.max(1), max_batch, data_dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xiezhi bench ledger: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn ledger(ops: usize, clients: usize, lines: usize, max_batch: usize, data_dir: Option<PathBuf>) -> Result<(), String> {
    let dir = match data_dir {
        Some(dir) => dir,
        None => {
            let dir = PathBuf::from("target").join(format!("bench-ledger-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            dir
        }
    };
    let store = SqliteStore::open_dir(&dir).map_err(|e| e.to_string())?;
    let config = ServiceConfig { max_batch, queue_capacity: clients * 2, ..Default::default() };
    let service = Service::start(Box::new(store), config, Arc::new(SystemClock)).map_err(|e| e.to_string())?;
    // An established merchant and established lines: a book with history, as in production.
    // (Brand-new ones meet the engine's new-merchant and new-line rules.)
    let year_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * 365))
        .map_err(|e| e.to_string())?
        .to_string();
    let merchant = match service
        .execute_blocking(
            Command::CreateMerchant(NewMerchant {
                name: "Bench Mart".into(),
                city: "Hangzhou".into(),
                country: "CN".into(),
                mcc: "5411".into(),
                currency: "CNY".into(),
                partner_accounts: vec![],
                onboarded_at: Some(year_ago.clone()),
            }),
            None,
        )
        .map_err(|e| e.to_string())?
    {
        Reply::Merchant(m) => m,
        _ => return Err("unexpected reply".into()),
    };
    let setup = Instant::now();
    let line_ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients.min(64))
            .map(|worker| {
                let service = service.clone();
                let year_ago = year_ago.clone();
                scope.spawn(move || {
                    (worker..lines)
                        .step_by(clients.min(64))
                        .map(|i| {
                            let request = NewCreditLine {
                                user_id: format!("bench-{i}"),
                                currency: "CNY".into(),
                                limit: "1000000.00".into(),
                                profile: Default::default(),
                                opened_at: Some(year_ago.clone()),
                                wallet_id: None,
                                contact: None,
                            };
                            match service.execute_blocking(Command::CreateCreditLine(request), None) {
                                Ok(Reply::CreditLine(l)) => l.id,
                                other => panic!("opening a line: {other:?}"),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("setup thread")).collect()
    });
    eprintln!("opened {} credit lines in {:.1} s", line_ids.len(), setup.elapsed().as_secs_f64());

    let commits_before = service.stats().commits.load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let per_client = ops.div_ceil(clients);
    let results: Vec<(Vec<u32>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|client| {
                let service = service.clone();
                let qr = merchant.qr_payload.clone();
                let line_ids = &line_ids;
                scope.spawn(move || {
                    let mut latencies_us = Vec::with_capacity(per_client);
                    let mut approved = 0usize;
                    for i in 0..per_client {
                        let line = &line_ids[(client * per_client + i) % line_ids.len()];
                        let request = NewPayment {
                            credit_line_id: line.clone(),
                            qr_payload: qr.clone(),
                            amount: Some(format!("{}.{:02}", 1 + i % 50, i % 100)),
                            tip: None,
                            context: PaymentContext::default(),
                        };
                        let command = service.prepare_payment(request).expect("valid QR");
                        let t = Instant::now();
                        let reply = service.execute_blocking(command, None);
                        latencies_us.push(t.elapsed().as_micros() as u32);
                        if let Ok(Reply::Payment(p)) = reply {
                            if p.status == PaymentStatus::Authorized {
                                approved += 1;
                            }
                        }
                    }
                    (latencies_us, approved)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let elapsed = started.elapsed();
    let commits = service.stats().commits.load(std::sync::atomic::Ordering::Relaxed) - commits_before;
    let approved: usize = results.iter().map(|(_, a)| a).sum();
    let mut latencies: Vec<u32> = results.into_iter().flat_map(|(l, _)| l).collect();
    latencies.sort_unstable();
    let total = latencies.len();
    let pct = |p: f64| latencies[((total as f64 - 1.0) * p) as usize];
    let report = serde_json::json!({
        "benchmark": "ledger_authorizations_durable",
        "store": "sqlite-wal-synchronous-full",
        "authorizations": total,
        "approved": approved,
        "clients": clients,
        "credit_lines": line_ids.len(),
        "elapsed_s": format!("{:.3}", elapsed.as_secs_f64()),
        "authorizations_per_s": (total as f64 / elapsed.as_secs_f64()).round(),
        "latency_us_p50": pct(0.50),
        "latency_us_p99": pct(0.99),
        "latency_us_max": latencies[total - 1],
        "group_commits": commits,
        "mean_requests_per_commit": format!("{:.1}", total as f64 / commits.max(1) as f64),
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    drop(service);
    Ok(())
}

fn bench_simulate(
    users: u32,
    merchants: u32,
    days: u32,
    warmup_days: u32,
    seed: u64,
    driver: &str,
) -> Result<(), String> {
    let config =
        xiezhi_sim::RunConfig { users, merchants, days, seed, warmup_days, mix: xiezhi_sim::Mix::default_mix() };
    let currency = xiezhi_money::Currency::from_alpha(&config.mix.currency).ok_or("unknown currency")?;
    let mut null = xiezhi_sim::NullDriver;
    let mut bank;
    let d: &mut dyn xiezhi_sim::Driver = match driver {
        "null" => &mut null,
        "engine" => {
            bank = xiezhi_sim::Bank::new(&xiezhi_sim::EngineConfig::shipped(), currency).map_err(|e| e.to_string())?;
            &mut bank
        }
        other => return Err(format!("unknown driver `{other}` (null, engine)")),
    };
    let run = xiezhi_sim::run_with(&config, "default", d, &mut |_, _| {}).map_err(|e| e.to_string())?;
    let executed = run.executed_payments;
    let out = serde_json::json!({
        "benchmark": "simulate_single_thread",
        "driver": driver,
        "users": users,
        "days": days,
        "warmup_days": warmup_days,
        "payments_measured": run.payments,
        "payments_executed": executed,
        "wall_s": (run.wall_s * 100.0).round() / 100.0,
        "payments_per_s": (executed as f64 / run.wall_s).round(),
        "process_rss_mib": format!("{:.1}", crate::bench_decide::rss_bytes() as f64 / 1_048_576.0),
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    Ok(())
}

fn bench_model(dir: &std::path::Path, dataset: &str, rows: usize) -> Result<(), String> {
    use xiezhi_models::artefact::ModelBody;
    let artefact = crate::model_cmd::read_artefact(dir)?;
    let spec = xiezhi_datasets::spec(dataset).map_err(|e| e.to_string())?;
    let loaded = xiezhi_datasets::load(spec, &xiezhi_datasets::default_data_dir()).map_err(|e| e.to_string())?;
    let (_, test) = loaded.split(spec);
    let n = rows.min(test.rows()).max(1);
    let mut latencies_ns: Vec<u64> = Vec::with_capacity(n);
    let mut checksum = 0.0;
    match &artefact.model {
        ModelBody::Scorecard(card) => {
            let columns = card.columns_in(&test).map_err(|e| e.to_string())?;
            let compiled = card.compile();
            let mut values = Vec::with_capacity(columns.len());
            for row in 0..n {
                values.clear();
                values.extend(columns.iter().map(|c| test.value(*c, row)));
                let started = Instant::now();
                let scored = compiled.score(&values, 4);
                latencies_ns.push(started.elapsed().as_nanos() as u64);
                checksum += scored.score;
            }
        }
        ModelBody::Gbdt(model) => {
            let columns = model.columns_in(&test).map_err(|e| e.to_string())?;
            let mut values = Vec::with_capacity(columns.len());
            for row in 0..n {
                values.clear();
                values.extend(columns.iter().map(|c| test.value(*c, row)));
                let started = Instant::now();
                let (p, contributions) = model.explain(&values).map_err(|e| e.to_string())?;
                latencies_ns.push(started.elapsed().as_nanos() as u64);
                checksum += p + contributions[0].log_odds;
            }
        }
    }
    latencies_ns.sort_unstable();
    let q = |p: f64| latencies_ns[((p * n as f64) as usize).min(n - 1)] as f64 / 1_000.0;
    let out = serde_json::json!({
        "benchmark": "model_inference_one_row",
        "model": artefact.manifest.version,
        "rows": n,
        "latency_us_p50": q(0.50),
        "latency_us_p99": q(0.99),
        "latency_us_max": q(1.0),
        "checksum": checksum,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    Ok(())
}
