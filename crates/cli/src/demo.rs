//! Live demo traffic: the population simulator (`crates/sim`) run against this server over
//! HTTP, as real clients would (idempotency keys, codes read from the phone gateway, captures,
//! voids and repayments). The server's clock runs fast (`--clock-speed`), so a shopping day
//! passes in minutes; the population is seeded once per data directory and reused.

use crate::sim_http::{HttpDriver, LiveCounters, Registry};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use xiezhi_core::{Command, KeyCommand, KeyKind, NewApiKey, Reply, Scope, Service};
use xiezhi_sim::{Mix, RunConfig, Simulation};

/// Where the population's server ids are kept between runs.
pub const REGISTRY_FILE: &str = "demo-population-v5.json";
/// Where the demo's keys are written (0600): `{"operator": …, "merchant": …, "wallet": …}`.
pub const KEYS_FILE: &str = "demo-keys.json";
/// The wallet the demo's lines belong to.
const DEMO_WALLET: &str = "demo-wallet";
/// The demo's population seed.
const DEMO_SEED: u64 = 2026;

pub struct Demo {
    base: String,
    data_dir: PathBuf,
    shoppers: u32,
    speed: f64,
    service: Service,
    phone: Option<crate::phone::Phone>,
}

/// The demo's three keys, as written to [`KEYS_FILE`].
#[derive(serde::Serialize, serde::Deserialize, Clone, Default)]
struct DemoKeys {
    operator: String,
    merchant: String,
    wallet: String,
}

impl Demo {
    pub fn new(base: String, data_dir: PathBuf, shoppers: usize, speed: f64, service: Service) -> Demo {
        Demo { base, data_dir, shoppers: shoppers.clamp(10, 100_000) as u32, speed, service, phone: None }
    }

    /// Where the simulated shoppers read their codes.
    pub fn with_phone(self, phone: Option<crate::phone::Phone>) -> Demo {
        Demo { phone, ..self }
    }

    /// The key `new` makes, made in process (the demo runs inside the server).
    fn make_key(&self, new: NewApiKey) -> Result<String, String> {
        let command = Command::Keys(KeyCommand::Create(new));
        match self.service.execute_blocking(command, None) {
            Ok(Reply::Document(made)) => made["key"].as_str().map(str::to_owned).ok_or("no key made".into()),
            Ok(_) => Err("unexpected answer".into()),
            Err(e) => Err(format!("making a demo key: {e}")),
        }
    }

    /// The demo's keys from an earlier run, if the server still takes all three.
    fn saved_keys(&self) -> Option<DemoKeys> {
        let text = std::fs::read_to_string(self.data_dir.join(KEYS_FILE)).ok()?;
        let saved: DemoKeys = serde_json::from_str(&text).ok()?;
        let now_ms = self.service.clock().now_ms();
        let valid = |key: &str| self.service.key_ring().authenticate(key, now_ms).is_ok();
        (valid(&saved.operator) && valid(&saved.merchant) && valid(&saved.wallet)).then_some(saved)
    }

    /// An operator key with every scope but `keys:admin`: the traffic driver's (it registers
    /// merchants and moves lines in, which wallet and merchant keys may not) and a newcomer's.
    fn operator_key(&self) -> Result<String, String> {
        let scopes: Vec<Scope> = Scope::ALL.iter().copied().filter(|s| *s != Scope::KeysAdmin).collect();
        self.make_key(NewApiKey {
            name: "demo operator".into(),
            kind: KeyKind::Operator,
            scopes: Some(scopes),
            merchant_id: None,
            wallet_id: None,
        })
    }

    /// Makes the merchant key (for `merchant_id`) and the wallet key, and writes all three to
    /// `<data-dir>/demo-keys.json` (0600).
    fn write_keys(&self, operator: String, merchant_id: &str) -> Result<(), String> {
        let keys = DemoKeys {
            operator,
            merchant: self.make_key(NewApiKey {
                name: "demo merchant".into(),
                kind: KeyKind::Merchant,
                scopes: None,
                merchant_id: Some(merchant_id.to_owned()),
                wallet_id: None,
            })?,
            wallet: self.make_key(NewApiKey {
                name: "demo wallet".into(),
                kind: KeyKind::Wallet,
                scopes: None,
                merchant_id: None,
                wallet_id: Some(DEMO_WALLET.into()),
            })?,
        };
        let text = serde_json::to_string_pretty(&keys).map_err(|e| e.to_string())?;
        crate::serve::write_private(&self.data_dir.join(KEYS_FILE), format!("{text}\n").as_bytes(), true)
    }

    fn config(&self) -> RunConfig {
        RunConfig {
            users: self.shoppers,
            merchants: (self.shoppers / 5).max(60),
            days: xiezhi_sim::MAX_DAYS,
            seed: DEMO_SEED,
            warmup_days: 0,
            mix: Mix::default_mix(),
        }
    }

    /// Seeds (or reuses) the population, prints the banner, and sends traffic until the
    /// process stops. Runs on its own thread: the simulator drives the server synchronously.
    pub fn spawn(self, handle: tokio::runtime::Handle) {
        std::thread::Builder::new()
            .name("demo-traffic".into())
            .spawn(move || {
                if let Err(e) = self.run(handle) {
                    tracing::error!("demo traffic stopped: {e}");
                    eprintln!("demo traffic stopped: {e}");
                }
            })
            .expect("spawning the demo thread");
    }

    fn registry(&self, config: &RunConfig, handle: &tokio::runtime::Handle) -> Registry {
        let fresh =
            Registry { seed: config.seed, users: config.users, merchants: config.merchants, ..Registry::default() };
        let path = self.data_dir.join(REGISTRY_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else { return fresh };
        let Ok(saved) = serde_json::from_str::<Registry>(&text) else { return fresh };
        if saved.seed != fresh.seed || saved.users != fresh.users || saved.merchants != fresh.merchants {
            return fresh;
        }
        // Reuse it only if the server still knows it (the data directory may be new).
        let Some(Some((merchant_id, _))) = saved.merchant_ids.first() else { return fresh };
        let known = handle.block_on(self.service.execute(Command::GetMerchant { id: merchant_id.clone() }, None));
        if known.is_ok() {
            saved
        } else {
            fresh
        }
    }

    fn run(self, handle: tokio::runtime::Handle) -> Result<(), String> {
        let config = self.config();
        let currency = xiezhi_money::Currency::from_alpha(&config.mix.currency).ok_or("unknown currency")?;
        let mut failures = 0;
        loop {
            match self.run_once(&config, currency, &handle) {
                Ok(()) => failures = 0,
                Err(e) if failures < 5 => {
                    failures += 1;
                    eprintln!("demo: the run stopped ({e}); starting again");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn run_once(
        &self,
        config: &RunConfig,
        currency: xiezhi_money::Currency,
        handle: &tokio::runtime::Handle,
    ) -> Result<(), String> {
        let sim = Simulation::new(config).map_err(|e| e.to_string())?;
        let registry = self.registry(config, handle);
        let saved = self.saved_keys();
        let driver_key = match &saved {
            Some(keys) => keys.operator.clone(),
            None => self.operator_key()?,
        };
        let mut driver = HttpDriver::connect(
            handle.clone(),
            &self.base,
            &driver_key,
            currency,
            // The first morning starts now: a newcomer sees breakfast, not a night.
            sim.start_ms() + 7 * 3_600_000,
            registry,
            Some(self.data_dir.join(REGISTRY_FILE)),
        )
        .map_err(|e| e.to_string())?;
        driver.wallet_id = Some(DEMO_WALLET.into());
        driver.phone = self.phone.clone();
        driver.register_merchants(&sim.world().merchants, sim.start_ms()).map_err(|e| e.to_string())?;
        driver.open_lines(&sim.world().users).map_err(|e| e.to_string())?;
        if saved.is_none() {
            let first = driver.registry().merchant_ids.iter().flatten().next().cloned().unwrap_or_default().0;
            self.write_keys(driver_key, &first)?;
        }
        self.announce(&driver, config);
        let counters = Arc::clone(&driver.counters);
        handle.spawn(report_forever(counters, self.speed));
        let mut day_line = |day: u32, payments: u64| {
            println!("demo: simulated day {} done, {payments} payments so far", day + 1);
        };
        xiezhi_sim::run_simulation(sim, "demo", &mut driver, &mut day_line).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn announce(&self, driver: &HttpDriver, config: &RunConfig) {
        let registry = driver.registry();
        let (mid, qr) = registry.merchant_ids.iter().flatten().next().cloned().unwrap_or_default();
        // A line that was opened (an application the scorecard declined has an empty id).
        let cl = registry.line_ids.iter().flatten().find(|id| !id.is_empty()).cloned().unwrap_or_default();
        let keys = self.data_dir.join(KEYS_FILE);
        let keys = keys.display();
        println!(
            "\nDemo traffic is running: the population simulator's {} shoppers at {} merchants, on a\n\
             service clock {:.0}x faster than the wall (a shopping day every {:.0} min).\n\
             Every call needs a key; the demo's operator, merchant and wallet keys are in {keys}:\n  \
             export XIEZHI_API_KEY=$(sed -n 's/.*\"operator\": \"\\(.*\\)\".*/\\1/p' {keys})\n  \
             WALLET_KEY=$(sed -n 's/.*\"wallet\": \"\\(.*\\)\".*/\\1/p' {keys})\n\
             Watch it:\n  curl -s -H \"Authorization: Bearer $XIEZHI_API_KEY\" {base}/v1/stats\n  \
             curl -s -H \"Authorization: Bearer $XIEZHI_API_KEY\" {base}/metrics\n  \
             curl -s -H \"Authorization: Bearer $XIEZHI_API_KEY\" {base}/v1/merchants/{mid}/qr?format=svg\n  \
             curl -s -H \"Authorization: Bearer $WALLET_KEY\" {base}/v1/credit-lines/{cl}\n\
             Pay yourself, as the shopper's wallet:\n  curl -s -X POST {base}/v1/payments -H \"Authorization: Bearer $WALLET_KEY\" \\\n    \
             -H 'Idempotency-Key: try-1' -H 'content-type: application/json' \\\n    \
             -d '{{\"credit_line_id\":\"{cl}\",\"qr_payload\":\"{qr}\",\"amount\":\"12.30\"}}'\n\
             See why a payment was decided as it was (with XIEZHI_API_KEY set as above):\n  \
             xiezhi decision explain PAYMENT_ID --server {base}\n\
             Honest shoppers commute, shop, travel, switch networks, retry and change phones; fraud\n\
             (account takeover, card testing, cash-out rings, synthetic identities, pasted QR codes) runs among them.\n\
             A summary prints every 10 s. Ctrl-C stops.\n",
            config.users,
            config.merchants,
            self.speed,
            86_400.0 / self.speed / 60.0,
            base = self.base,
        );
    }
}

async fn report_forever(counters: Arc<LiveCounters>, speed: f64) {
    let mut ticker = tokio::time::interval(Duration::from_secs(10));
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let c = &counters;
        let payments = c.payments.load(Ordering::Relaxed);
        let sim_now = c.sim_now_ms.load(Ordering::Relaxed) as i64;
        // The population's local time (China).
        let tz = jiff::tz::TimeZone::fixed(jiff::tz::offset(8));
        let when = jiff::Timestamp::from_millisecond(sim_now)
            .map(|t| t.to_zoned(tz).strftime("%a %H:%M").to_string())
            .unwrap_or_default();
        println!(
            "demo: {payments} payments (approved {}, stepped up {}, declined {}, restricted {}), errors {} | mean POST /v1/payments {} µs | simulated time {when} ({speed:.0}x)",
            c.approved.load(Ordering::Relaxed),
            c.stepped_up.load(Ordering::Relaxed),
            c.declined.load(Ordering::Relaxed),
            c.restricted.load(Ordering::Relaxed),
            c.errors.load(Ordering::Relaxed),
            c.latency_us_total.load(Ordering::Relaxed) / payments.max(1),
        );
    }
}
