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
    /// A merchant that colludes in cash-out (套现): fake purchases at round amounts.
    colluder: DemoMerchant,
}

/// Merchant indexes the journeys use by role.
const SUPERMARKET: usize = 0;
const ELECTRONICS: usize = 10;

fn home_ip(shopper: usize) -> String {
    format!("10.{}.{}.23", 20 + shopper / 250, shopper % 250)
}

fn mobile_ip() -> String {
    format!("100.{}.{}.{}", 64 + fastrand::u8(..64), fastrand::u8(..), fastrand::u8(1..255))
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
    /// Honest payments that met a challenge, and how many the shopper passed.
    honest_stepped_up: AtomicU64,
    honest_challenges_passed: AtomicU64,
    honest_declined: AtomicU64,
    /// Fraud attempts, and those that got no credit.
    fraud_attempts: AtomicU64,
    fraud_stopped: AtomicU64,
    restrictions_lifted: AtomicU64,
}

pub struct Demo {
    /// Shoppers (credit lines) seeded at first start.
    shoppers: usize,
    /// Devices shoppers switched to (a new phone), by user id.
    new_devices: Mutex<std::collections::HashMap<String, String>>,
    base: String,
    data_dir: PathBuf,
    rate_per_s: u32,
    client: Client,
    counters: Arc<Counters>,
    latencies_us: Arc<Mutex<Vec<u64>>>,
}

impl Demo {
    pub fn new(base: String, data_dir: PathBuf, rate_per_s: u32, shoppers: usize) -> Demo {
        let client = Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .build()
            .expect("http client");
        Demo {
            new_devices: Mutex::default(),
            shoppers: shoppers.clamp(10, 100_000),
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
             See why a payment was decided as it was:\n  xiezhi decision explain PAYMENT_ID --server {base}\n  \
             {base}/v1/reason-codes                 every reason code, in zh and en\n\
             The mix includes honest shoppers who travel, switch networks, retry and change phones,\n\
             and fraud (account takeover, card testing, cash-out) that the engine stops.\n\
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

    async fn get_json(&self, path: &str) -> Result<Value, String> {
        let response =
            self.client.get(format!("{}{path}", self.base)).send().await.map_err(|e| format!("GET {path}: {e}"))?;
        response.json::<Value>().await.map_err(|e| format!("GET {path}: {e}"))
    }

    async fn get_ok(&self, path: &str) -> bool {
        matches!(self.client.get(format!("{}{path}", self.base)).send().await, Ok(r) if r.status().is_success())
    }

    /// Reuses the seed of an earlier run in the same data directory, or creates one.
    async fn seed(&self) -> Result<Seed, String> {
        let path = self.data_dir.join("demo-seed-v2.json");
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
        // Enough shoppers that each pays a few times an hour at the default rate, as people
        // do; opened over HTTP, 32 at a time.
        let mut shoppers = Vec::with_capacity(self.shoppers);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.shoppers {
            let limit = [500, 1_000, 2_000, 5_000, 8_000, 20_000][i % 6];
            let user_id = format!("demo-user-{i:05}");
            // Most shoppers have verified their ID; a few have not, and meet the policy's
            // identity check on larger payments.
            let kyc_level = if i % 25 == 7 { 1 } else { 2 };
            let birth_date = format!("{}-{:02}-{:02}", 1960 + i % 45, 1 + i % 12, 1 + i % 28);
            let body = json!({"user_id": user_id, "currency": "CNY", "limit": limit.to_string(),
                "profile": {"birth_date": birth_date, "kyc_level": kyc_level, "region": "CN-SH"}});
            let key = format!("demo-seed-line-{i}-{}", std::process::id());
            let (client, url) = (self.client.clone(), format!("{}/v1/credit-lines", self.base));
            tasks.spawn(async move {
                let response = client.post(url).header("Idempotency-Key", key).json(&body).send().await;
                let value: Value = match response {
                    Ok(r) if r.status() == StatusCode::CREATED => r.json().await.map_err(|e| e.to_string())?,
                    Ok(r) => return Err(format!("seeding credit line: {}", r.status())),
                    Err(e) => return Err(format!("seeding credit line: {e}")),
                };
                Ok::<_, String>((
                    i,
                    DemoShopper {
                        user_id,
                        credit_line_id: value["id"].as_str().unwrap_or_default().into(),
                        device_id: format!("dev-{:08x}", fastrand::u32(..)),
                    },
                ))
            });
            if tasks.len() >= 32 {
                if let Some(done) = tasks.join_next().await {
                    shoppers.push(done.map_err(|e| e.to_string())??);
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            shoppers.push(done.map_err(|e| e.to_string())??);
        }
        shoppers.sort_by_key(|(i, _)| *i);
        let shoppers: Vec<DemoShopper> = shoppers.into_iter().map(|(_, s)| s).collect();
        let body = json!({"name": "鑫达贸易", "city": "Dongguan", "country": "CN", "mcc": "5999", "currency": "CNY"});
        let (status, value) =
            self.post("/v1/merchants", &body, &format!("demo-seed-colluder-{}", std::process::id())).await?;
        if status != StatusCode::CREATED {
            return Err(format!("seeding the colluding merchant: {status} {value}"));
        }
        let colluder = DemoMerchant {
            id: value["id"].as_str().unwrap_or_default().into(),
            name: "鑫达贸易".into(),
            qr_payload: value["qr_payload"].as_str().unwrap_or_default().into(),
            min_yuan: 500,
            max_yuan: 2_000,
        };
        let seed = Seed { merchants, shoppers, colluder };
        let text = serde_json::to_string_pretty(&seed).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(seed)
    }

    /// The traffic mix: mostly everyday honest shopping (on home wifi or a mobile network
    /// whose address changes all the time), some honest situations that blunt rules get
    /// wrong (checkout bursts, retries after a timeout, a new phone, travel), and fraud the
    /// engine must stop (account takeover, card testing, cash-out collusion).
    async fn journey(&self, seed: &Seed) -> Result<(), String> {
        let shopper_index = fastrand::usize(..seed.shoppers.len());
        match fastrand::u8(..100) {
            0..=79 => {
                let merchant = &seed.merchants[fastrand::usize(..seed.merchants.len())];
                self.honest_payment(seed, shopper_index, merchant, None).await
            }
            80..=84 => self.checkout_burst(seed, shopper_index).await,
            85..=87 => self.retry_without_key(seed, shopper_index).await,
            88..=89 => self.new_phone(seed, shopper_index).await,
            90..=91 => {
                // Travelling: another city's mobile network, a bigger bill.
                let merchant = &seed.merchants[[6, 8, 9][fastrand::usize(..3)]];
                self.honest_payment(
                    seed,
                    shopper_index,
                    merchant,
                    Some(("4g", format!("112.{}.{}.9", fastrand::u8(..), fastrand::u8(..)))),
                )
                .await
            }
            92..=94 => self.account_takeover(seed, shopper_index).await,
            95..=97 => self.card_testing(seed, shopper_index).await,
            _ => self.cash_out(seed).await,
        }
    }

    fn device_of(&self, seed: &Seed, shopper_index: usize) -> String {
        let shopper = &seed.shoppers[shopper_index];
        let new_devices = self.new_devices.lock().expect("device lock");
        new_devices.get(&shopper.user_id).cloned().unwrap_or_else(|| shopper.device_id.clone())
    }

    /// Reads the code sent to the shopper's inbox and answers the challenge: what the owner
    /// of the phone does.
    async fn pass_challenge(&self, credit_line_id: &str, challenge_id: &str) -> Result<Value, String> {
        let inbox = self.get_json(&format!("/v1/credit-lines/{credit_line_id}/notifications")).await?;
        let code = inbox["notifications"]
            .as_array()
            .and_then(|n| n.iter().rev().find(|m| m["challenge_id"] == challenge_id && m["code"].is_string()))
            .and_then(|m| m["code"].as_str())
            .ok_or_else(|| format!("no code for challenge {challenge_id}"))?
            .to_owned();
        tokio::time::sleep(Duration::from_millis(fastrand::u64(500..3_000))).await;
        let (_, answer) = self
            .post(&format!("/v1/challenges/{challenge_id}"), &json!({"code": code}), &format!("otp-{challenge_id}"))
            .await?;
        Ok(answer)
    }

    /// An honest shopper's payment; a step-up is passed with the code from the inbox.
    async fn honest_payment(
        &self,
        seed: &Seed,
        shopper_index: usize,
        merchant: &DemoMerchant,
        network: Option<(&str, String)>,
    ) -> Result<(), String> {
        let shopper = &seed.shoppers[shopper_index];
        let yuan = fastrand::u32(merchant.min_yuan..=merchant.max_yuan);
        let fen = if fastrand::u8(..4) == 0 { 0 } else { fastrand::u32(..100) };
        let amount = format!("{yuan}.{fen:02}");
        let (network, ip) = match network {
            Some((n, ip)) => (n, ip),
            None if fastrand::u8(..10) < 6 => ("wifi", home_ip(shopper_index)),
            None => (["4g", "5g"][fastrand::usize(..2)], mobile_ip()),
        };
        let device_id = self.device_of(seed, shopper_index);
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
            json!({"credit_line_id": shopper.credit_line_id, "qr_payload": qr["qr_payload"], "context": {"device_id": device_id, "ip": ip, "network": network}})
        } else {
            json!({"credit_line_id": shopper.credit_line_id, "qr_payload": merchant.qr_payload, "amount": amount, "context": {"device_id": device_id, "ip": ip, "network": network}})
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
        let mut payment = payment;
        if payment["status"] == "challenge_required" {
            self.counters.honest_stepped_up.fetch_add(1, Ordering::Relaxed);
            let challenge_id = payment["decision"]["challenge_id"].as_str().unwrap_or_default().to_owned();
            let answer = self.pass_challenge(&shopper.credit_line_id, &challenge_id).await?;
            if answer["status"] == "passed" {
                self.counters.honest_challenges_passed.fetch_add(1, Ordering::Relaxed);
                payment = answer["payment"].clone();
            }
        }
        if payment["status"] != "authorized" {
            self.counters.declined.fetch_add(1, Ordering::Relaxed);
            self.counters.honest_declined.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.counters.approved.fetch_add(1, Ordering::Relaxed);
        let id = payment["id"].as_str().unwrap_or_default().to_owned();
        self.settle(&id, yuan).await
    }

    /// The merchant's side after an authorization: capture (sometimes partly), void, refund,
    /// or leave it to expire.
    async fn settle(&self, id: &str, yuan: u32) -> Result<(), String> {
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
        let id = id.to_owned();
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

    /// A family at the supermarket checkout paying item by item: a burst that is not fraud.
    async fn checkout_burst(&self, seed: &Seed, shopper_index: usize) -> Result<(), String> {
        for _ in 0..fastrand::usize(3..=5) {
            self.honest_payment(
                seed,
                shopper_index,
                &seed.merchants[SUPERMARKET],
                Some(("wifi", home_ip(shopper_index))),
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(fastrand::u64(3_000..15_000))).await;
        }
        Ok(())
    }

    /// The app timed out and lost its idempotency key, so it sends the same payment again
    /// seconds later: the engine sees a retry, not a burst; the client voids the duplicate.
    async fn retry_without_key(&self, seed: &Seed, shopper_index: usize) -> Result<(), String> {
        let shopper = &seed.shoppers[shopper_index];
        let merchant = &seed.merchants[fastrand::usize(..seed.merchants.len())];
        let amount = format!("{}.50", fastrand::u32(merchant.min_yuan..=merchant.max_yuan.min(300)));
        let body = json!({"credit_line_id": shopper.credit_line_id, "qr_payload": merchant.qr_payload, "amount": amount,
            "context": {"device_id": self.device_of(seed, shopper_index), "ip": mobile_ip(), "network": "4g"}});
        let mut ids = vec![];
        for attempt in 0..fastrand::usize(2..=4) {
            let (status, payment) =
                self.post("/v1/payments", &body, &format!("pay-{:016x}", fastrand::u64(..))).await?;
            if status != StatusCode::CREATED {
                return Err(format!("payment: {status} {payment}"));
            }
            self.counters.payments.fetch_add(1, Ordering::Relaxed);
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            if payment["status"] == "authorized" {
                self.counters.approved.fetch_add(1, Ordering::Relaxed);
                ids.push(payment["id"].as_str().unwrap_or_default().to_owned());
            } else {
                self.counters.declined.fetch_add(1, Ordering::Relaxed);
                self.counters.honest_declined.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1_000..4_000))).await;
        }
        for duplicate in ids.iter().skip(1) {
            self.post(&format!("/v1/payments/{duplicate}/void"), &json!({}), &format!("void-{duplicate}")).await?;
            self.counters.voids.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(first) = ids.first() {
            self.post(&format!("/v1/payments/{first}/capture"), &json!({}), &format!("cap-{first}")).await?;
            self.counters.captures.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A shopper's new phone: the first large payment on it is stepped up and passed, which
    /// makes the phone trusted.
    async fn new_phone(&self, seed: &Seed, shopper_index: usize) -> Result<(), String> {
        let shopper = &seed.shoppers[shopper_index];
        let device = format!("dev-{:08x}", fastrand::u32(..));
        self.new_devices.lock().expect("device lock").insert(shopper.user_id.clone(), device);
        self.honest_payment(seed, shopper_index, &seed.merchants[ELECTRONICS], None).await
    }

    /// Someone with a victim's account on their own phone tries to drain the line at an
    /// electronics shop. They cannot read the victim's codes; after three wrong answers the
    /// line is restricted, and later the real owner lifts it with their own code.
    async fn account_takeover(&self, seed: &Seed, victim: usize) -> Result<(), String> {
        let shopper = &seed.shoppers[victim];
        let line = self.get_json(&format!("/v1/credit-lines/{}", shopper.credit_line_id)).await?;
        // Four fifths of what is available, in whole yuan: amounts stay integers.
        let cny = xiezhi_money::Currency::from_alpha("CNY").expect("CNY");
        let available_minor =
            xiezhi_money::parse_minor(line["available"].as_str().unwrap_or("0"), cny, xiezhi_money::Sign::Any)
                .unwrap_or(0);
        let yuan = (available_minor * 4 / 5 / 100).clamp(200, 5_000);
        let device = format!("fraud-{:06x}", fastrand::u32(..0xFFFFFF));
        let ip = format!("45.{}.{}.{}", fastrand::u8(..), fastrand::u8(..), fastrand::u8(1..255));
        for _ in 0..3 {
            let body = json!({"credit_line_id": shopper.credit_line_id, "qr_payload": seed.merchants[ELECTRONICS].qr_payload,
                "amount": format!("{yuan}.00"), "context": {"device_id": device, "ip": ip, "network": "4g"}});
            let (_, payment) = self.post("/v1/payments", &body, &format!("ato-{:016x}", fastrand::u64(..))).await?;
            self.counters.payments.fetch_add(1, Ordering::Relaxed);
            self.counters.fraud_attempts.fetch_add(1, Ordering::Relaxed);
            match payment["status"].as_str() {
                Some("authorized") => self.counters.approved.fetch_add(1, Ordering::Relaxed),
                Some("challenge_required") => {
                    let challenge_id = payment["decision"]["challenge_id"].as_str().unwrap_or_default().to_owned();
                    for guess in 0..3 {
                        let code = format!("{:06}", (fastrand::u32(..1_000_000) + guess) % 1_000_000);
                        self.post(
                            &format!("/v1/challenges/{challenge_id}"),
                            &json!({"code": code}),
                            &format!("guess-{challenge_id}-{guess}"),
                        )
                        .await?;
                    }
                    self.counters.fraud_stopped.fetch_add(1, Ordering::Relaxed)
                }
                _ => self.counters.fraud_stopped.fetch_add(1, Ordering::Relaxed),
            };
            tokio::time::sleep(Duration::from_millis(fastrand::u64(2_000..6_000))).await;
        }
        // The owner notices the message, opens the app, and lifts the restriction.
        tokio::time::sleep(Duration::from_secs(fastrand::u64(5..30))).await;
        let line = self.get_json(&format!("/v1/credit-lines/{}", shopper.credit_line_id)).await?;
        if let Some(challenge_id) = line["restriction"]["challenge_id"].as_str() {
            let answer = self.pass_challenge(&shopper.credit_line_id, challenge_id).await?;
            if answer["status"] == "passed" {
                self.counters.restrictions_lifted.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Stolen credentials tested with tiny payments at several merchants, seconds apart.
    async fn card_testing(&self, seed: &Seed, victim: usize) -> Result<(), String> {
        let shopper = &seed.shoppers[victim];
        let device = format!("tester-{:06x}", fastrand::u32(..0xFFFFFF));
        for i in 0..6 {
            let merchant = &seed.merchants[(victim + i) % seed.merchants.len()];
            let body = json!({"credit_line_id": shopper.credit_line_id, "qr_payload": merchant.qr_payload,
                "amount": format!("{}.00", 1 + i % 2), "context": {"device_id": device, "ip": mobile_ip(), "network": "4g"}});
            let (_, payment) = self.post("/v1/payments", &body, &format!("ct-{:016x}", fastrand::u64(..))).await?;
            self.counters.payments.fetch_add(1, Ordering::Relaxed);
            self.counters.fraud_attempts.fetch_add(1, Ordering::Relaxed);
            if payment["status"] == "authorized" {
                self.counters.approved.fetch_add(1, Ordering::Relaxed);
                let id = payment["id"].as_str().unwrap_or_default();
                self.post(&format!("/v1/payments/{id}/void"), &json!({}), &format!("void-{id}")).await?;
            } else {
                self.counters.fraud_stopped.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(fastrand::u64(1_000..3_000))).await;
        }
        Ok(())
    }

    /// A freshly opened line pays a round amount at the colluding merchant (套现).
    async fn cash_out(&self, seed: &Seed) -> Result<(), String> {
        let user_id = format!("mule-{:08x}", fastrand::u32(..));
        let body = json!({"user_id": user_id, "currency": "CNY", "limit": "5000.00",
            "profile": {"birth_date": "1999-09-09", "kyc_level": 2, "region": "CN-GD"}});
        let (status, line) = self.post("/v1/credit-lines", &body, &format!("mule-{user_id}")).await?;
        if status != StatusCode::CREATED {
            return Err(format!("mule line: {status} {line}"));
        }
        let amount = ["500.00", "800.00", "1000.00"][fastrand::usize(..3)];
        let body = json!({"credit_line_id": line["id"], "qr_payload": seed.colluder.qr_payload, "amount": amount,
            "context": {"device_id": format!("mule-dev-{:06x}", fastrand::u32(..0xFFFFFF)), "ip": mobile_ip(), "network": "4g"}});
        let (_, payment) = self.post("/v1/payments", &body, &format!("co-{user_id}")).await?;
        self.counters.payments.fetch_add(1, Ordering::Relaxed);
        self.counters.fraud_attempts.fetch_add(1, Ordering::Relaxed);
        if payment["status"] == "authorized" {
            self.counters.approved.fetch_add(1, Ordering::Relaxed);
            let id = payment["id"].as_str().unwrap_or_default();
            self.post(&format!("/v1/payments/{id}/capture"), &json!({}), &format!("cap-{id}")).await?;
        } else {
            self.counters.fraud_stopped.fetch_add(1, Ordering::Relaxed);
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
            let Ok(line) = self.get_json(&format!("/v1/credit-lines/{}", shopper.credit_line_id)).await else {
                continue;
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
                "demo: payments {} (approved {}, declined {}), captures {}, voids {}, refunds {}, repayments {}, retries {}, errors {} | honest: stepped up {} (passed {}), declined {} | fraud: {} attempts, {} stopped; restrictions lifted by owners {} | POST /v1/payments p50 {} µs, p99 {} µs",
                c.payments.load(Ordering::Relaxed),
                c.approved.load(Ordering::Relaxed),
                c.declined.load(Ordering::Relaxed),
                c.captures.load(Ordering::Relaxed),
                c.voids.load(Ordering::Relaxed),
                c.refunds.load(Ordering::Relaxed),
                c.repayments.load(Ordering::Relaxed),
                c.retries.load(Ordering::Relaxed),
                c.errors.load(Ordering::Relaxed),
                c.honest_stepped_up.load(Ordering::Relaxed),
                c.honest_challenges_passed.load(Ordering::Relaxed),
                c.honest_declined.load(Ordering::Relaxed),
                c.fraud_attempts.load(Ordering::Relaxed),
                c.fraud_stopped.load(Ordering::Relaxed),
                c.restrictions_lifted.load(Ordering::Relaxed),
                pct(50),
                pct(99),
            );
        }
    }
}
