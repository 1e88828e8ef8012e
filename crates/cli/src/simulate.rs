//! `xiezhi simulate`: a seeded population through the engine and ledger in process (the
//! default) or through a running server (`--target`), with the quality report.

use clap::Args;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use xiezhi_sim::{EngineConfig, Mix, RunConfig};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    #[arg(long, default_value_t = 2_000)]
    pub merchants: u32,
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days run before the measured ones (not in the report), so the engine knows the
    /// shoppers' history as a live service would. Default: 7 in process, 0 against a server.
    #[arg(long)]
    pub warmup_days: Option<u32>,
    /// A mix file whose keys override the shipped mix (crates/sim/mix/default.json).
    #[arg(long)]
    pub mix: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write the markdown report here (it is printed to stdout as well).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Rules for the main configuration (default: the shipped rules).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Policy for the main configuration (default: the shipped policy).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The main configuration's fraud scorer: a trained model's directory (`xiezhi model
    /// train-sim`, or `model train --kind gbdt` on the `sim_traffic` export), `heuristic`, or
    /// `shipped` (the default, what `serve` decides with).
    #[arg(long)]
    pub fraud_model: Option<PathBuf>,
    /// A scorer that watches the main configuration's every payment without deciding any:
    /// `heuristic`, `shipped`, or a trained model's directory. The report then shows both scorers'
    /// decisions on the same payments (`challenger` in the JSON).
    #[arg(long)]
    pub challenger: Option<String>,
    /// Baseline configurations run side by side with the main one: `default` (the shipped
    /// configuration), `heuristic` (the shipped rules and policy with the heuristic scorer,
    /// the default before issue 13), `strict`, or `none`.
    #[arg(long, value_delimiter = ',', default_value = "strict")]
    pub baselines: Vec<String>,
    /// Send the traffic to a running server instead (http://host:port). Events go out when
    /// the server's clock reaches them: run it with `serve --clock-speed N` to compress days.
    #[arg(long)]
    pub target: Option<String>,
    /// The key `--target` is driven with: an operator key with merchants:write,
    /// lines:migrate, payments:write, payments:settle, lines:read and challenges:write, and for
    /// the simulated appeals policy:read, appeals:file and appeals:decide.
    #[command(flatten)]
    pub api_key: crate::client::ApiKeyArgs,
    /// With `--target`: the phone gateway the server sends codes to (`serve
    /// --phone-gateway`), where the simulated shoppers read them. Its token comes from
    /// `XIEZHI_PHONE_GATEWAY_TOKEN`, else `--phone-gateway-token-file`. Without it, stepped-up
    /// shoppers have no code to answer with.
    #[arg(long)]
    pub phone_gateway: Option<String>,
    #[arg(long)]
    pub phone_gateway_token_file: Option<PathBuf>,
    /// Run N mixes drawn from the parameter ranges (crates/sim/mix/ranges.json, or
    /// `--ranges FILE`) instead of one, the main configuration only, and report each mix and
    /// the worst and median across them (`sweep` in the JSON report).
    #[arg(long)]
    pub sweep: Option<u32>,
    /// The sweep's seed: the same seed draws the same mixes.
    #[arg(long, default_value_t = 1)]
    pub sweep_seed: u64,
    /// Parameter ranges for `--sweep` (default: the shipped ones).
    #[arg(long)]
    pub ranges: Option<PathBuf>,
    /// Print the JSON report instead of markdown.
    #[arg(long)]
    pub json: bool,
    /// Write every measured payment's engine features and whether it was fraud to this CSV
    /// (training data for `xiezhi model train --dataset sim_traffic`). In process, main
    /// configuration only.
    #[arg(long)]
    pub export_features: Option<PathBuf>,
}

fn read(path: &PathBuf, what: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if meta.len() > 4 * 1024 * 1024 {
        return Err(format!("{what} {} is over 4 MiB", path.display()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The phone gateway `--phone-gateway` names, with its token.
fn phone(args: &SimulateArgs) -> Result<Option<crate::phone::Phone>, String> {
    let Some(base) = args.phone_gateway.clone() else { return Ok(None) };
    let token = match (std::env::var("XIEZHI_PHONE_GATEWAY_TOKEN"), &args.phone_gateway_token_file) {
        (Ok(token), _) if !token.trim().is_empty() => token.trim().to_owned(),
        (_, Some(path)) => read(path, "phone gateway token file")?.trim().to_owned(),
        _ => return Err("--phone-gateway needs XIEZHI_PHONE_GATEWAY_TOKEN or --phone-gateway-token-file".into()),
    };
    Ok(Some(crate::phone::Phone { base, token }))
}

pub fn run(args: SimulateArgs) -> ExitCode {
    match simulate(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xiezhi simulate: {e}");
            ExitCode::from(2)
        }
    }
}

fn simulate(args: SimulateArgs) -> Result<(), String> {
    let mix = match &args.mix {
        Some(path) => Mix::with_overrides(&read(path, "mix")?).map_err(|e| e.to_string())?,
        None => Mix::default_mix(),
    };
    let config = RunConfig {
        users: args.users,
        merchants: args.merchants,
        days: args.days,
        seed: args.seed,
        warmup_days: args.warmup_days.unwrap_or(if args.target.is_some() { 0 } else { 7 }),
        mix,
    };
    config.check().map_err(|e| e.to_string())?;
    let shipped_scorer = args.fraud_model.as_deref().is_none_or(|m| m.to_str() == Some("shipped"));
    let custom = args.rules.is_some() || args.policy.is_some() || !shipped_scorer;
    let scorer = Some(crate::model_cmd::scorer_named(args.fraud_model.as_deref())?);
    let main = EngineConfig {
        name: if custom { "custom".into() } else { "default".into() },
        rules_json: args.rules.as_ref().map(|p| read(p, "rules")).transpose()?,
        policy_json: args.policy.as_ref().map(|p| read(p, "policy")).transpose()?,
        scorer,
        challenger: match args.challenger.as_deref() {
            None => None,
            Some(name) => Some(crate::model_cmd::scorer_named(Some(std::path::Path::new(name)))?),
        },
    };
    // Built once to check it; its versions are what the report says was measured.
    let versions = main
        .build()
        .map_err(|e| {
            let files: Vec<String> = [&args.rules, &args.policy]
                .iter()
                .filter_map(|p| p.as_ref().map(|p| p.display().to_string()))
                .collect();
            format!("{}: {e}", files.join(", "))
        })?
        .versions();
    let versions = serde_json::to_value(versions).map_err(|e| e.to_string())?;
    let mut engines = vec![main];
    for name in args.baselines.iter().map(|b| b.trim()).filter(|b| !b.is_empty() && *b != "none") {
        let baseline = match name {
            "default" => EngineConfig::shipped(),
            "heuristic" => EngineConfig::heuristic(),
            "strict" => EngineConfig::strict(),
            other => return Err(format!("unknown baseline `{other}` (known: default, heuristic, strict, none)")),
        };
        if engines.iter().all(|e| e.name != baseline.name) {
            engines.push(baseline);
        }
    }
    if let Some(count) = args.sweep {
        return sweep(&args, &config, &engines[0], &versions, count);
    }
    let runs = match (&args.target, &args.export_features) {
        (None, Some(path)) => {
            if engines.len() > 1 {
                eprintln!("xiezhi simulate: exporting features runs the main configuration only; baselines skipped");
            }
            vec![export_features(&config, &engines[0], path)?]
        }
        (Some(_), Some(_)) => return Err("--export-features works in process only, not with --target".into()),
        (None, None) => {
            let tty = std::io::stderr().is_terminal();
            let last = Mutex::new(std::time::Instant::now());
            let progress = |name: &str, day: u32, payments: u64| {
                let mut last = last.lock().expect("progress lock");
                if tty || last.elapsed().as_secs() >= 5 {
                    eprintln!("[{name}] day {}/{} done, {payments} payments", day + 1, config.days);
                    *last = std::time::Instant::now();
                }
            };
            xiezhi_sim::run_in_process(&config, &engines, &progress).map_err(|e| e.to_string())?
        }
        (Some(target), None) => {
            if engines.len() > 1 {
                eprintln!("xiezhi simulate: against a server only its own configuration runs; baselines skipped");
            }
            vec![crate::sim_http::run(&config, target, &args.api_key.key()?, phone(&args)?, None)?]
        }
    };
    for r in &runs {
        eprintln!(
            "[{}] {} payments in {:.1} s: {:.0} simulated payments/s",
            r.name,
            r.payments,
            r.wall_s,
            r.payments_per_s()
        );
    }
    let mut report = xiezhi_sim::report(&config, &runs);
    report["simulation"]["versions"] = versions;
    if report["challenger"].is_object() {
        let name = |s: &dyn xiezhi_risk::Scorer| format!("{}@{}", s.name(), s.version());
        report["challenger"]["champion_scorer"] =
            json!(engines[0].scorer.as_deref().map_or_else(|| name(&xiezhi_risk::HeuristicScorer), name));
        report["challenger"]["challenger_scorer"] = json!(engines[0].challenger.as_deref().map(name));
    }
    let markdown = xiezhi_sim::markdown(&report);
    emit(&args, &report, &markdown)
}

/// Writes the report where the flags say: `--report` (JSON), `--markdown`, and stdout
/// (markdown, or JSON with `--json`).
fn emit(args: &SimulateArgs, report: &serde_json::Value, markdown: &str) -> Result<(), String> {
    if let Some(path) = &args.report {
        let text = serde_json::to_string_pretty(report).expect("report serialises");
        std::fs::write(path, text + "\n").map_err(|e| format!("report {}: {e}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown).map_err(|e| format!("markdown {}: {e}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(report).expect("report serialises"));
    } else {
        print!("{markdown}");
    }
    Ok(())
}

/// `--sweep N`: N mixes drawn from the ranges, each run in process with the main
/// configuration; the report's `sweep` block has every mix and the worst and median.
/// `versions`: what `engine` decides with, as its decision records name them.
fn sweep(
    args: &SimulateArgs,
    config: &RunConfig,
    engine: &EngineConfig,
    versions: &serde_json::Value,
    count: u32,
) -> Result<(), String> {
    if args.target.is_some() || args.export_features.is_some() {
        return Err("--sweep runs in process only, without --target or --export-features".into());
    }
    if !(1..=xiezhi_sim::sweep::MAX_SWEEP_MIXES).contains(&count) {
        return Err(format!("--sweep is 1 to {} mixes", xiezhi_sim::sweep::MAX_SWEEP_MIXES));
    }
    let ranges = match &args.ranges {
        Some(path) => xiezhi_sim::sweep::Ranges::from_json(&read(path, "ranges")?).map_err(|e| e.to_string())?,
        None => xiezhi_sim::sweep::Ranges::shipped(),
    };
    // Each mix runs on its own thread, as many at once as there are cores; the report keeps
    // the drawing order whatever finishes first.
    let results = in_parallel(count as usize, |i| -> Result<serde_json::Value, String> {
        let index = i as u32;
        let (mix, drawn) = ranges.draw(&config.mix, args.sweep_seed, index).map_err(|e| e.to_string())?;
        let drawn_config = RunConfig { mix, ..config.clone() };
        let runs = xiezhi_sim::run_in_process(&drawn_config, std::slice::from_ref(engine), &|_, _, _| {})
            .map_err(|e| e.to_string())?;
        let report = xiezhi_sim::report(&drawn_config, &runs);
        eprintln!(
            "[sweep {}/{count}] {} payments, fraud amount stopped {}%, honest users restricted {}%",
            index + 1,
            runs[0].payments,
            report["overall"]["fraud_amount_stopped_pct"],
            report["overall"]["honest_users_restricted_pct"]
        );
        Ok(json!({
            "index": index,
            "mix": drawn_config.mix.version,
            "parameters": drawn,
            "overall": report["overall"],
            "scenarios": report["scenarios"],
        }))
    });
    let mixes = results.into_iter().collect::<Result<Vec<_>, String>>()?;
    let block = xiezhi_sim::sweep::sweep_block(&ranges, args.sweep_seed, mixes);
    let report = json!({
        "simulation": {
            "users": config.users, "merchants": config.merchants, "days": config.days, "seed": config.seed,
            "mix": config.mix.version, "configuration": engine.name, "mode": "in_process",
            "versions": versions,
        },
        "sweep": block,
    });
    let markdown = xiezhi_sim::sweep::sweep_markdown(&report["sweep"]);
    emit(args, &report, &markdown)
}

/// `work(0)` … `work(count - 1)` on one thread per core (at most four), results in index
/// order. Each item is independent and seeded by its index, so the results do not depend on
/// the number of threads.
pub fn in_parallel<T: Send>(count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4).min(count.max(1));
    let mut slots: Vec<Option<T>> = (0..count).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= count {
                            return done;
                        }
                        done.push((i, work(i)));
                    }
                })
            })
            .collect();
        for handle in handles {
            for (i, result) in handle.join().expect("a worker thread panicked") {
                slots[i] = Some(result);
            }
        }
    });
    slots.into_iter().map(|slot| slot.expect("every index ran")).collect()
}

/// Runs the main configuration in process and writes the features the engine computed for
/// every measured payment, with its truth, as CSV (time order).
fn export_features(config: &RunConfig, engine: &EngineConfig, path: &PathBuf) -> Result<xiezhi_sim::ConfigRun, String> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(out, "{}", feature_header()).map_err(|e| format!("{}: {e}", path.display()))?;
    let run = write_feature_rows(config, engine, &mut out, &mut |day, payments| {
        eprintln!("[{}] day {} done, {payments} payments", engine.name, day + 1);
    })
    .map_err(|e| format!("{}: {e}", path.display()))?;
    out.flush().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(run)
}

/// The engine's features a model may read: all but the score itself, which is the model's
/// output, never its input, and the engine's memory span, which describes the service's age,
/// not the payment (a model trained on a fortnight's traffic would learn the simulation's
/// calendar from it).
fn exported_features() -> Vec<xiezhi_risk::Feature> {
    use xiezhi_risk::Feature;
    Feature::ALL.iter().copied().filter(|f| !matches!(f, Feature::FraudScore | Feature::EngineMemoryDays)).collect()
}

/// The header line of the feature export (the `sim_traffic` dataset), without its newline.
pub fn feature_header() -> String {
    let features = exported_features();
    let names: Vec<&str> = features.iter().map(|f| f.name()).chain(["fraud"]).collect();
    names.join(",")
}

/// Runs `config` on `engine` in process and writes one CSV line per measured payment: the
/// features the engine computed, then whether it was fraud.
pub fn write_feature_rows(
    config: &RunConfig,
    engine: &EngineConfig,
    out: &mut dyn std::io::Write,
    progress: &mut dyn FnMut(u32, u64),
) -> Result<xiezhi_sim::ConfigRun, String> {
    use xiezhi_risk::features::FeatureType;
    let currency = xiezhi_money::Currency::from_alpha(&config.mix.currency).ok_or("unknown currency")?;
    let mut bank = xiezhi_sim::Bank::new(engine, currency).map_err(|e| e.to_string())?;
    bank.keep_features();
    let columns = exported_features();
    let mut failed: Option<std::io::Error> = None;
    let mut line = String::new();
    let mut sim = xiezhi_sim::Simulation::new(config).map_err(|e| e.to_string())?;
    sim.export_features(|features, fraud| {
        line.clear();
        for f in &columns {
            match f.feature_type() {
                FeatureType::Int => line.push_str(&features.int(*f).to_string()),
                FeatureType::Bool => line.push(if features.bool(*f) { '1' } else { '0' }),
                FeatureType::String => {
                    let text = features.string(*f);
                    if text.contains([',', '"', '\n']) {
                        line.push('"');
                        line.push_str(&text.replace('"', "\"\""));
                        line.push('"');
                    } else {
                        line.push_str(text);
                    }
                }
            }
            line.push(',');
        }
        line.push(if fraud { '1' } else { '0' });
        line.push('\n');
        if failed.is_none() {
            if let Err(e) = out.write_all(line.as_bytes()) {
                failed = Some(e);
            }
        }
    });
    let run = xiezhi_sim::run_simulation(sim, &engine.name, &mut bank, progress).map_err(|e| e.to_string())?;
    match failed {
        Some(e) => Err(e.to_string()),
        None => Ok(run),
    }
}
