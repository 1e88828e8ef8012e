use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use xiezhi_core::{
    AcceptanceConfig, AcceptedScheme, Clock, Command, KeyCommand, Reply, RiskConfig, ScaledClock, Service,
    ServiceConfig, SystemClock,
};
use xiezhi_store_sqlite::SqliteStore;

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the embedded store lives.
    #[arg(long, default_value = "./xiezhi-data")]
    pub data_dir: PathBuf,
    /// Seed demo merchants and users and run live simulated traffic against this server.
    #[arg(long)]
    pub demo: bool,
    /// Demo payments per second, roughly: sets how fast the demo's service clock runs
    /// (unless `--clock-speed` is given), as the simulated shoppers pay at human rates.
    #[arg(long, default_value_t = 20)]
    pub demo_rate: u32,
    /// Demo shoppers, each with a credit line, seeded at first start. Enough that each pays
    /// a few times an hour at the default rate, as people do.
    #[arg(long, default_value_t = 5_000)]
    pub demo_shoppers: usize,
    /// Run the service clock this many times faster than the wall, from the later of now
    /// and where an earlier fast run left it: for demos and simulations (`xiezhi simulate
    /// --target`), never for production. Default 1, or what `--demo-rate` needs.
    #[arg(long)]
    pub clock_speed: Option<f64>,
    /// Refuse QR codes with content deviations from the EMV specification.
    #[arg(long)]
    pub strict_qr: bool,
    /// Accept a partner scheme's codes: GUID:FIELD, where FIELD is the sub-field holding the
    /// merchant's reference (repeatable), e.g. `--partner-scheme D15600000000:05`.
    #[arg(long, value_parser = parse_scheme)]
    pub partner_scheme: Vec<AcceptedScheme>,
    /// How long an authorization holds credit before it expires, in seconds.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub hold_ttl_secs: i64,
    /// Rule set to run (JSON, see crates/risk/rules/default.json). Overrides one stored
    /// through `PUT /v1/rules`; without either, the shipped rules run.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Regulatory policy document (JSON, see crates/risk/policy/default.json). Overrides one
    /// stored through `PUT /v1/policy`; without either, the shipped policy applies.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Serve reads only (payments, lines, decisions, rules, stats) and refuse every write
    /// with `503 read_only`, starting even on books whose journal fails replay (shown as
    /// recorded): what to run while deciding what to do about `xiezhi store check`'s findings.
    #[arg(long)]
    pub read_only: bool,
    /// The fraud scorer: a trained model's directory (`xiezhi model train-sim`, or `model
    /// train --kind gbdt` on engine features; refused at start if its features are not the
    /// engine's, re-read on `kill -HUP`), `heuristic` for the hand-weighted scorer, or
    /// `shipped`. Default: the shipped model (docs/QUALITY.md says how it was chosen).
    #[arg(long)]
    pub fraud_model: Option<PathBuf>,
    /// A trained fraud model that scores every payment beside the scorer in force without
    /// deciding any (champion and challenger): each decision record's `challenger` says
    /// what it would have decided.
    #[arg(long)]
    pub challenger_model: Option<PathBuf>,
    /// Requests a second each client network (an IPv4 address, an IPv6 /64) may send, in
    /// bursts of twice that; over it, `429 rate_limited`. 0 turns the limit off.
    #[arg(long, default_value_t = xiezhi_server::rate::RateLimits::default().per_ip_per_s)]
    pub rate_limit_ip_per_s: u32,
    /// Requests a second each API key (with its rotated successors) or shopper token may
    /// send, in bursts of twice that. 0 turns the limit off.
    #[arg(long, default_value_t = xiezhi_server::rate::RateLimits::default().per_caller_per_s)]
    pub rate_limit_key_per_s: u32,
    /// Post one-time codes to this SMS gateway (one JSON message per POST, see the README);
    /// its credential comes from `XIEZHI_SMS_GATEWAY_TOKEN`.
    #[arg(long)]
    pub sms_gateway_url: Option<String>,
    /// Run the loopback phone gateway on this address (a stand-in for an SMS provider and
    /// the shoppers' phones, for demos and tests) and send codes there; its token is written
    /// to `<data-dir>/phone-gateway.token`. `--demo` runs one on a free port.
    #[arg(long)]
    pub phone_gateway: Option<SocketAddr>,
    /// Where notifications of restrictions, appeals and compensation go (the outbox).
    #[command(flatten)]
    pub delivery: crate::outbox_loop::DeliveryArgs,
}

/// The secret one-time codes are kept under: `<data-dir>/code-secret`, 32 bytes from the OS
/// generator written on first start, readable by the service's user only. Beside the store,
/// not in it, so a copy of the database alone reveals no code.
fn code_secret(data_dir: &Path) -> Result<[u8; 32], String> {
    let path = data_dir.join("code-secret");
    let bytes = secret_file(&path, || {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("the OS random generator failed: {e}"))?;
        Ok(secret.to_vec())
    })?;
    bytes.try_into().map_err(|_| format!("{}: not a 32-byte secret", path.display()))
}

/// The Ed25519 key pair shopper tokens are signed with: `<data-dir>/token-signing.key`,
/// made on first start, readable by the service's user only. Tokens handed out before a
/// restart stay valid after it.
fn token_keys(data_dir: &Path) -> Result<xiezhi_server::tokens::TokenKeys, String> {
    let path = data_dir.join("token-signing.key");
    let bytes = secret_file(&path, || Ok(xiezhi_server::tokens::TokenKeys::generate().to_bytes()))?;
    xiezhi_server::tokens::TokenKeys::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a secret kept beside the store, making it with `make` (mode 0600) if it is not there.
fn secret_file(path: &Path, make: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = make()?;
            write_private(path, &secret, false)?;
            Ok(secret)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `bytes` to a file only this user can read (0600), durably; refuses to replace an
/// existing file unless `replace`.
pub fn write_private(path: &Path, bytes: &[u8], replace: bool) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // A file that existed keeps its mode through open(); make it private either way.
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| format!("{}: {e}", path.display()))
}

/// A data directory with no key gets one admin key with every scope: the value of
/// `XIEZHI_BOOTSTRAP_ADMIN_KEY` when set (automation), else a fresh key written to
/// `<data-dir>/admin.key` (0600). The path is printed, never the key.
async fn bootstrap_admin_key(service: &Service, data_dir: &Path) -> Result<(), String> {
    let from_env = std::env::var("XIEZHI_BOOTSTRAP_ADMIN_KEY").ok().filter(|k| !k.trim().is_empty());
    let env_given = from_env.is_some();
    let command = Command::Keys(KeyCommand::Bootstrap { secret: from_env.map(|k| k.trim().to_owned()) });
    let reply = service.execute(command, None).await.map_err(|e| format!("cannot make the admin key: {e}"))?;
    let Reply::Document(made) = reply else { return Err("unexpected answer to the bootstrap".into()) };
    if made["created"] != true {
        return Ok(());
    }
    let id = made["id"].as_str().unwrap_or_default();
    if env_given {
        println!("admin key {id}: the value of XIEZHI_BOOTSTRAP_ADMIN_KEY, with every scope");
        return Ok(());
    }
    let path = data_dir.join("admin.key");
    let key = made["key"].as_str().ok_or("the bootstrap made no key")?;
    write_private(&path, format!("{key}\n").as_bytes(), true)?;
    println!("admin key {id} (every scope) written to {} (readable by this user only)", path.display());
    Ok(())
}

fn read_file(what: &str, path: &Option<PathBuf>) -> Result<Option<String>, String> {
    path.as_ref()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("cannot read the {what} file {}: {e}", p.display())))
        .transpose()
}

/// Ctrl-C or SIGTERM (what service managers send): stop accepting, finish in-flight requests.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

fn parse_scheme(text: &str) -> Result<AcceptedScheme, String> {
    let (guid, field) = text.split_once(':').ok_or("expected GUID:FIELD")?;
    if guid.is_empty() || guid.len() > 32 {
        return Err("the GUID must be 1 to 32 characters".into());
    }
    if field.len() != 2 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err("FIELD must be a two-digit sub-field ID".into());
    }
    Ok(AcceptedScheme { globally_unique_identifier: guid.into(), merchant_ref_field: field.into() })
}

pub fn run(args: ServeArgs) -> ExitCode {
    // Logs go to stderr, in colour only on a terminal: stdout carries the listening line and
    // the banner that scripts read.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("xiezhi serve: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xiezhi serve: {message}");
            ExitCode::from(1)
        }
    }
}

/// Where codes and other texts go: an SMS gateway, the loopback phone gateway, or (with a
/// warning) nowhere.
struct Phones {
    /// Every text, one-time codes included, through the outbox: one attempt per call.
    sms: Option<Arc<dyn xiezhi_notify::SmsSender>>,
    /// The demo shoppers' phone.
    phone: Option<crate::phone::Phone>,
    said: String,
}

async fn phones(args: &ServeArgs) -> Result<Phones, String> {
    let phone_address = args
        .phone_gateway
        .or_else(|| (args.demo && args.sms_gateway_url.is_none()).then(|| SocketAddr::from(([127, 0, 0, 1], 0))));
    let (url, token, phone, said) = match (&args.sms_gateway_url, phone_address) {
        (Some(_), Some(_)) => return Err("--sms-gateway-url and --phone-gateway: choose one".into()),
        (Some(url), None) => {
            let token = std::env::var("XIEZHI_SMS_GATEWAY_TOKEN").ok().filter(|t| !t.is_empty());
            (url.clone(), token, None, format!("one-time codes go to the SMS gateway at {url}"))
        }
        (None, Some(address)) => {
            let (base, token) = crate::phone::PhoneGateway::start(address).await?;
            let token_file = args.data_dir.join("phone-gateway.token");
            write_private(&token_file, format!("{token}\n").as_bytes(), true)?;
            let url = format!("{base}/messages");
            let said = format!(
                "phone gateway (the demo's SMS provider and phones) on {url}; its token is in {}",
                token_file.display()
            );
            (url, Some(token.clone()), Some(crate::phone::Phone { base, token }), said)
        }
        (None, None) => {
            let said = "no SMS gateway (--sms-gateway-url): one-time codes reach nobody".to_owned();
            return Ok(Phones { sms: None, phone: None, said });
        }
    };
    let sender = crate::phone::GatewaySmsSender::new(url, token)?;
    Ok(Phones { sms: Some(Arc::new(sender) as Arc<dyn xiezhi_notify::SmsSender>), phone, said })
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let store = SqliteStore::open_dir(&args.data_dir).map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    let Phones { sms, phone, said: delivery } = phones(&args).await?;
    let (outbox, channels, notifications) = crate::outbox_loop::channels(&args.delivery, sms)?;
    let outbox_key = crate::outbox_loop::outbox_key(&args.delivery)?;
    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    let config = ServiceConfig {
        acceptance: AcceptanceConfig { partner_schemes: args.partner_scheme.clone(), ..Default::default() },
        hold_ttl_ms: args.hold_ttl_secs.clamp(1, 30 * 24 * 3600) * 1000,
        strict_qr: args.strict_qr,
        risk: RiskConfig {
            rules_json: read_file("rules", &args.rules)?,
            policy_json: read_file("policy", &args.policy)?,
            scorer: Some(crate::model_cmd::scorer_named(args.fraud_model.as_deref())?),
            challenger: args.challenger_model.as_deref().map(crate::model_cmd::fraud_scorer).transpose()?,
            hash_key: None,
        },
        read_only: args.read_only,
        code_secret: Some(code_secret(&args.data_dir)?),
        // Codes go through the outbox (sealed, erased once sent), never a notifier.
        notifier: None,
        outbox,
        outbox_key: Some(outbox_key.clone()),
        outbox_wake: Arc::clone(&outbox_wake),
        ..Default::default()
    };
    let speed = match (args.clock_speed, args.demo) {
        (Some(speed), _) => speed,
        (None, true) => {
            // The simulated shoppers pay at human rates; the clock makes up the rest.
            let per_user_day = xiezhi_sim::payments_per_user_day(&xiezhi_sim::Mix::default_mix());
            let per_day = per_user_day * args.demo_shoppers.clamp(10, 100_000) as f64;
            (f64::from(args.demo_rate.max(1)) * 86_400.0 / per_day.max(1.0)).round()
        }
        (None, false) => 1.0,
    };
    if !(1.0..=xiezhi_core::MAX_CLOCK_SPEED).contains(&speed) {
        return Err(format!("--clock-speed is from 1 to {}", xiezhi_core::MAX_CLOCK_SPEED));
    }
    let clock_file = args.data_dir.join("clock-state.json");
    let saved_ms = std::fs::read_to_string(&clock_file)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["now_ms"].as_i64());
    let wall_ms = SystemClock.now_ms();
    let clock: Arc<dyn Clock> = match saved_ms {
        // A fast clock never goes back: records already carry its later times.
        Some(saved) if saved > wall_ms => Arc::new(ScaledClock::new(saved, speed)),
        _ if speed > 1.0 => Arc::new(ScaledClock::new(wall_ms, speed)),
        _ => Arc::new(SystemClock),
    };
    let service = Service::start(Box::new(store), config, Arc::clone(&clock)).map_err(|e| e.to_string())?;
    if clock.speed() > 1.0 || saved_ms.is_some_and(|s| s > wall_ms) {
        let clock = Arc::clone(&clock);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                ticker.tick().await;
                let _ = std::fs::write(&clock_file, serde_json::json!({"now_ms": clock.now_ms()}).to_string());
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{address}");
    // Scripts and tests read this line to find the port.
    println!("xiezhi listening on {base} (data in {})", args.data_dir.display());
    println!("{delivery}");
    println!("{notifications}");
    if let Some(dir) = args.fraud_model.clone().filter(|d| crate::model_cmd::is_model_dir(d)) {
        tokio::spawn(reload_fraud_model_on_sighup(service.clone(), dir));
    }
    if let Some(reason) = service.stats().read_only.get() {
        println!("serving reads only: {reason}");
    } else {
        bootstrap_admin_key(&service, &args.data_dir).await?;
    }
    let token_keys = Arc::new(token_keys(&args.data_dir)?);
    let rate_limits = xiezhi_server::rate::RateLimits {
        per_ip_per_s: args.rate_limit_ip_per_s,
        per_ip_burst: args.rate_limit_ip_per_s.saturating_mul(2),
        per_caller_per_s: args.rate_limit_key_per_s,
        per_caller_burst: args.rate_limit_key_per_s.saturating_mul(2),
    };
    let router = xiezhi_server::router_with(service.clone(), xiezhi_server::RouterConfig { token_keys, rate_limits });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    let server = tokio::spawn(xiezhi_server::serve(listener, router, shutdown));
    let dispatcher = match service.stats().read_only.get() {
        Some(_) => None,
        None => {
            let dispatcher =
                crate::outbox_loop::dispatcher(&args.delivery, channels, Arc::clone(&clock))?.with_code_key(outbox_key);
            Some(tokio::spawn(crate::outbox_loop::run(service.clone(), dispatcher, stopped, outbox_wake)))
        }
    };
    if args.demo && !args.read_only {
        let demo =
            crate::demo::Demo::new(base.clone(), args.data_dir.clone(), args.demo_shoppers, clock.speed(), service)
                .with_phone(phone);
        demo.spawn(tokio::runtime::Handle::current());
    }
    let served = server.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
    if let Some(dispatcher) = dispatcher {
        // The round in flight records its outcomes; one cut short is sent again after its
        // lease (at least once: receivers drop the duplicate by message id).
        if tokio::time::timeout(crate::outbox_loop::SHUTDOWN_GRACE, dispatcher).await.is_err() {
            tracing::warn!("the outbox dispatcher did not finish its round in time");
        }
    }
    served?;
    println!("xiezhi stopped");
    Ok(())
}

/// `kill -HUP`: re-read the `--fraud-model` directory and swap the scorer between two
/// payments. A model that does not load (bad hash, wrong features) leaves the running one.
async fn reload_fraud_model_on_sighup(service: Service, dir: PathBuf) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        match crate::model_cmd::fraud_scorer(&dir) {
            Ok(scorer) => {
                match service.execute(xiezhi_core::Command::SetScorer(xiezhi_core::ScorerHandle(scorer)), None).await {
                    Ok(reply) => println!("fraud model reloaded: {reply:?}"),
                    Err(e) => eprintln!("fraud model not reloaded: {e}"),
                }
            }
            Err(e) => eprintln!("fraud model not reloaded, the running one stays: {e}"),
        }
    }
}
