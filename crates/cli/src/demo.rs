//! Live demo traffic: seeds merchants and shoppers once, then sends a steady flow of
//! scan-to-pay payments, captures, voids, refunds and repayments to the server over HTTP,
//! as a real client would (idempotency keys, retries after a timeout, dynamic codes).

use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Most demo journeys in flight at once.
const MAX_IN_FLIGHT: usize = 64;
/// Client-side latencies kept for the periodic percentile report.
const LATENCY_WINDOW: usize = 10_000;

const MERCHANTS: [(&str, &str, &str, u32, u32); 12] = [
    // name, city, MCC, typical amount range in yuan
    ("华联超市", "Hangzhou", "5411", 20, 400),
    ("Lotus Market", "Shanghai", "5411", 15, 300),
    ("老王面馆", "Chengdu", "5812", 18, 80),
    ("Sunrise Coffee", "Shenzhen", "5814", 12, 45),
    ("7-Eleven Xuhui", "Shanghai", "5499", 5, 60),
    ("Metro Line 2", "Beijing", "4111", 3, 10),
    ("万达影城", "Wuhan", "7832", 35, 180),
    ("Jade Pharmacy", "Guangzhou", "5912", 10, 250),
    ("Sinopec Station", "Nanjing", "5541", 150, 500),
    ("Uniqlo Xidan", "Beijing", "5691", 79, 900),
    ("Suning Electronics", "Nanjing", "5732", 200, 6000),
    ("西西弗书店", "Chongqing", "5942", 30, 300),
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DemoMerchant {
    id: String,
    name: String,
    qr_payload: String,
    min_yuan: u32,
    max_yuan: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DemoShopper {
    user_id: String,
    credit_line_id: String,
    device_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seed {
    merchants: Vec<DemoMerchant>,
    shoppers: Vec<DemoShopper>,
}

#[derive(Default)]
struct Counters {
    payments: AtomicU64,
    approved: AtomicU64,
    declined: AtomicU64,
    captures: AtomicU64,
    voids: AtomicU64,
    refunds: AtomicU64,
    repayments: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
}

pub struct Demo {
    base: String,
    data_dir: PathBuf,
    rate_per_s: u32,
    client: Client,
    counters: Arc<Counters>,
    latencies_us: Arc<Mutex<Vec<u64>>>,
}

impl Demo {
    pub fn new(base: String, data_dir: PathBuf, rate_per_s: u32) -> Demo {
        let client = Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build()
            .expect("http client");
        Demo {
            base,
            data_dir,
            rate_per_s: rate_per_s.clamp(1, 2_000),
            client,
            counters: Arc::default(),
            latencies_us: Arc::new(Mutex::new(Vec::with_capacity(LATENCY_WINDOW))),
        }
    }

    pub async fn run(self) -> Result<(), String> {
        let seed = Arc::new(self.seed().await?);
        self.announce(&seed);
        let this = Arc::new(self);
        tokio::spawn(Arc::clone(&this).report_forever());
        tokio::spawn(Arc::clone(&this).repay_forever(Arc::clone(&seed)));
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / u64::from(this.rate_per_s)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                continue;
            };
            let this = Arc::clone(&this);
            let seed = Arc::clone(&seed);
            tokio::spawn(async move {
                if let Err(e) = this.journey(&seed).await {
                    this.counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("demo journey failed: {e}");
                }
                drop(permit);
            });
        }
    }

    fn announce(&self, seed: &Seed) {
        let m = &seed.merchants[0];
        let s = &seed.shoppers[0];
        println!(
            "\nDemo traffic is running: {} payments/s from {} shoppers at {} merchants.\n\
             Watch it:\n  {base}/v1/stats                      live counters\n  {base}/metrics                       Prometheus metrics\n  \
             {base}/v1/merchants/{mid}/qr?format=png   the QR code of {name}\n  {base}/v1/credit-lines/{cl}    a shopper's credit line\n\
             Pay yourself:\n  curl -s -X POST {base}/v1/payments -H 'Idempotency-Key: try-1' -H 'content-type: application/json' \\\n    \
             -d '{{\"credit_line_id\":\"{cl}\",\"qr_payload\":\"{qr}\",\"amount\":\"12.30\"}}'\n\
             A summary prints every 10 s. Ctrl-C stops.\n",
            self.rate_per_s,
            seed.shoppers.len(),
            seed.merchants.len(),
            base = self.base,
            mid = m.id,
            name = m.name,
            cl = s.credit_line_id,
            qr = m.qr_payload,
        );
    }

    async fn post(&self, path: &str, body: &Value, key: &str) -> Result<(StatusCode, Value), String> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = response.status();
        let value = response.json::<Value>().await.map_err(|e| format!("POST {path}: {e}"))?;
        Ok((status, value))
    }

    async fn get_ok(&self, path: &str) -> bool {
        matches!(self.client.get(format!("{}{path}", self.base)).send().await, Ok(r) if r.status().is_success())
    }

    /// Reuses the seed of an earlier run in the same data directory, or creates one.
    async fn seed(&self) -> Result<Seed, String> {
        let path = self.data_dir.join("demo-seed.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(seed) = serde_json::from_str::<Seed>(&text) {
                if self.get_ok(&format!("/v1/merchants/{}", seed.merchants[0].id)).await {
                    return Ok(seed);
                }
            }
        }
        let mut merchants = Vec::new();
        for (i, (name, city, mcc, min_yuan, max_yuan)) in MERCHANTS.iter().enumerate() {
            let body = json!({"name": name, "city": city, "country": "CN", "mcc": mcc, "currency": "CNY"});
            let (status, value) =
                self.post("/v1/merchants", &body, &format!("demo-seed-merchant-{i}-{}", std::process::id())).await?;
            if status != StatusCode::CREATED {
                return Err(format!("seeding merchant {name}: {status} {value}"));
            }
            merchants.push(DemoMerchant {
                id: value["id"].as_str().unwrap_or_default().into(),
                name: (*name).into(),
                qr_payload: value["qr_payload"].as_str().unwrap_or_default().into(),
                min_yuan: *min_yuan,
                max_yuan: *max_yuan,
            });
        }
        let mut shoppers = Vec::new();
        for i in 0..200 {
            let limit = [500, 1_000, 2_000, 5_000, 8_000, 20_000][i % 6];
            let user_id = format!("demo-user-{i:03}");
            let body = json!({"user_id": user_id, "currency": "CNY", "limit": limit.to_string()});
            let (status, value) =
                self.post("/v1/credit-lines", &body, &format!("demo-seed-line-{i}-{}", std::process::id())).await?;
            if status != StatusCode::CREATED {
                return Err(format!("seeding credit line: {status} {value}"));
            }
            shoppers.push(DemoShopper {
                user_id,
                credit_line_id: value["id"].as_str().unwrap_or_default().into(),
                device_id: format!("dev-{:08x}", fastrand::u32(..)),
            });
        }
        let seed = Seed { merchants, shoppers };
        let text = serde_json::to_string_pretty(&seed).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(seed)
    }

    /// One shopper scans one merchant's code, then the merchant captures, voids or refunds.
    async fn journey(&self, seed: &Seed) -> Result<(), String> {
        let merchant = &seed.merchants[fastrand::usize(..seed.merchants.len())];
        let shopper = &seed.shoppers[fastrand::usize(..seed.shoppers.len())];
        let yuan = fastrand::u32(merchant.min_yuan..=merchant.max_yuan);
        let fen = if fastrand::u8(..4) == 0 { 0 } else { fastrand::u32(..100) };
        let amount = format!("{yuan}.{fen:02}");
        let ip = format!("100.{}.{}.{}", 64 + fastrand::u8(..64), fastrand::u8(..), fastrand::u8(1..255));
        let network = ["wifi", "4g", "5g"][fastrand::usize(..3)];
        // A fifth of payments scan a dynamic code the merchant issued for this bill.
        let body = if fastrand::u8(..5) == 0 {
            let bill = format!("B{:06}", fastrand::u32(..1_000_000));
            let (status, qr) = self
                .post(
                    &format!("/v1/merchants/{}/qr", merchant.id),
                    &json!({"amount": amount, "bill_number": bill}),
                    &format!("qr-{:016x}", fastrand::u64(..)),
                )
                .await?;
            if status != StatusCode::CREATED {
                return Err(format!("dynamic QR: {status} {qr}"));
            }
            json!({"credit_line_id": shopper.credit_line_id, "qr_payload": qr["qr_payload"], "context": {"device_id": shopper.device_id, "ip": ip, "network": network}})
        } else {
            json!({"credit_line_id": shopper.credit_line_id, "qr_payload": merchant.qr_payload, "amount": amount, "context": {"device_id": shopper.device_id, "ip": ip, "network": network}})
        };
        let key = format!("pay-{:016x}", fastrand::u64(..));
        let started = Instant::now();
        let (status, payment) = self.post("/v1/payments", &body, &key).await?;
        self.record_latency(started.elapsed());
        if status != StatusCode::CREATED {
            return Err(format!("payment: {status} {payment}"));
        }
        self.counters.payments.fetch_add(1, Ordering::Relaxed);
        // Some phones lose the response and retry with the same key: the same payment comes back.
        if fastrand::u8(..30) == 0 {
            let (_, again) = self.post("/v1/payments", &body, &key).await?;
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            if again["id"] != payment["id"] {
                return Err(format!("a retry created a second payment: {} vs {}", again["id"], payment["id"]));
            }
        }
        if payment["status"] != "authorized" {
            self.counters.declined.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.counters.approved.fetch_add(1, Ordering::Relaxed);
        let id = payment["id"].as_str().unwrap_or_default().to_owned();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..1_500))).await;
        let roll = fastrand::u8(..100);
        if roll < 4 {
            self.post(&format!("/v1/payments/{id}/void"), &json!({}), &format!("void-{id}")).await?;
            self.counters.voids.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if roll < 6 {
            return Ok(()); // left pending: it expires when its hold does
        }
        let capture = if roll < 12 { json!({"amount": format!("{}.00", (yuan * 9 / 10).max(1))}) } else { json!({}) };
        let (status, captured) =
            self.post(&format!("/v1/payments/{id}/capture"), &capture, &format!("cap-{id}")).await?;
        if status != StatusCode::OK {
            return Err(format!("capture: {status} {captured}"));
        }
        self.counters.captures.fetch_add(1, Ordering::Relaxed);
        if fastrand::u8(..100) < 5 {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(100..2_000))).await;
            let refund = if fastrand::bool() { captured["captured_amount"].clone() } else { json!("1.00") };
            let (status, body) = self
                .post(&format!("/v1/payments/{id}/refunds"), &json!({"amount": refund}), &format!("ref-{id}"))
                .await?;
            if status != StatusCode::CREATED {
                return Err(format!("refund: {status} {body}"));
            }
            self.counters.refunds.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Shoppers repay what they owe, most in full, some in part, about 16 a second: enough
    /// that lines revolve and declines stay the exception.
    async fn repay_forever(self: Arc<Self>, seed: Arc<Seed>) {
        let mut ticker = tokio::time::interval(Duration::from_millis(60));
        loop {
            ticker.tick().await;
            let shopper = &seed.shoppers[fastrand::usize(..seed.shoppers.len())];
            let line =
                match self.client.get(format!("{}/v1/credit-lines/{}", self.base, shopper.credit_line_id)).send().await
                {
                    Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                    Err(_) => continue,
                };
            let owed = line["receivable"].as_str().unwrap_or("0.00").to_owned();
            if owed == "0.00" {
                continue;
            }
            let amount = if fastrand::u8(..10) < 7 { owed } else { "1.00".to_owned() };
            let key = format!("repay-{:016x}", fastrand::u64(..));
            if let Ok((StatusCode::CREATED, _)) = self
                .post(
                    &format!("/v1/credit-lines/{}/repayments", shopper.credit_line_id),
                    &json!({"amount": amount}),
                    &key,
                )
                .await
            {
                self.counters.repayments.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn record_latency(&self, elapsed: Duration) {
        let mut window = self.latencies_us.lock().expect("latency lock");
        if window.len() >= LATENCY_WINDOW {
            window.clear();
        }
        window.push(elapsed.as_micros() as u64);
    }

    async fn report_forever(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(Duration::from_secs(10));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let mut window = std::mem::take(&mut *self.latencies_us.lock().expect("latency lock"));
            window.sort_unstable();
            let pct = |p: usize| window.get((window.len().saturating_sub(1)) * p / 100).copied().unwrap_or(0);
            let c = &self.counters;
            println!(
                "demo: payments {} (approved {}, declined {}), captures {}, voids {}, refunds {}, repayments {}, retries {}, errors {} | POST /v1/payments p50 {} µs, p99 {} µs",
                c.payments.load(Ordering::Relaxed),
                c.approved.load(Ordering::Relaxed),
                c.declined.load(Ordering::Relaxed),
                c.captures.load(Ordering::Relaxed),
                c.voids.load(Ordering::Relaxed),
                c.refunds.load(Ordering::Relaxed),
                c.repayments.load(Ordering::Relaxed),
                c.retries.load(Ordering::Relaxed),
                c.errors.load(Ordering::Relaxed),
                pct(50),
                pct(99),
            );
        }
    }
}
