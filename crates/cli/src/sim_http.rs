//! The simulator's HTTP driver: the same population, sent to a running server as real
//! clients would (idempotency keys, codes read from the phone gateway, captures and repayments).
//! Used by `xiezhi simulate --target` and by `serve --demo` for its live traffic.
//!
//! The server decides on its own clock. The driver reads it from `/healthz` (time and
//! speed), maps the run's first midnight to the server's "now", and sends every event when
//! the server's clock reaches it; run the server with `--clock-speed` equal to `--speed`.

use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use xiezhi_money::{format_minor, Currency};
use xiezhi_risk::Outcome;
use xiezhi_sim::world::{MerchantSpec, UserSpec};
use xiezhi_sim::{AppealTerms, ChallengeEnd, ConfigRun, Driver, PayRequest, PayResult, RunConfig, SimError};

/// Most payments whose follow-up (capture, void, challenge) the driver remembers.
const MAX_TRACKED_PAYMENTS: usize = 100_000;

/// Server ids of the population, saved so that a restarted demo reuses its shoppers.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Registry {
    pub seed: u64,
    pub users: u32,
    pub merchants: u32,
    pub merchant_ids: Vec<Option<(String, String)>>,
    pub line_ids: Vec<Option<String>>,
    /// The limit the server granted each line (lines opened on an application: what the
    /// shopper's app shows); `None` where the shopper's own limit stands.
    #[serde(default)]
    pub line_limits: Vec<Option<i64>>,
    /// Users whose credit application the server declined: they have no line.
    #[serde(default)]
    pub declined: Vec<u32>,
}

/// What the server answered to a line's opening.
enum Opened {
    /// The line's id and its limit.
    Line(String, i64),
    /// `422 credit_declined`: no line.
    Declined,
}

/// Counters a watcher (the demo's status line) reads while the run goes on.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub payments: AtomicU64,
    pub approved: AtomicU64,
    pub stepped_up: AtomicU64,
    pub declined: AtomicU64,
    pub restricted: AtomicU64,
    pub errors: AtomicU64,
    pub latency_us_total: AtomicU64,
    /// Simulated time (ms) of the last event sent.
    pub sim_now_ms: AtomicU64,
}

struct Tracked {
    payment_id: String,
    challenge_id: Option<String>,
}

pub struct HttpDriver {
    handle: Handle,
    client: Client,
    base: String,
    currency: Currency,
    run_tag: String,
    registry: Registry,
    registry_path: Option<PathBuf>,
    tracked: HashMap<u64, Tracked>,
    /// The last payment captured: `keep_for_refund` keeps its id.
    last_captured: Option<(u64, String)>,
    /// Settled payments a merchant may refund: the server's payment ids, by token.
    refundable: HashMap<u64, String>,
    /// The last payment's body and simulated time, for a re-send with the same key.
    last_body: Option<(u64, Value, i64)>,
    /// Server time minus simulated time.
    offset_ms: i64,
    /// Server clock at `wall_origin`, and its speed.
    server_origin_ms: i64,
    wall_origin: Instant,
    speed: f64,
    pub counters: Arc<LiveCounters>,
    /// The wallet the lines it opens belong to (the demo's, so its wallet key acts for them).
    pub wallet_id: Option<String>,
    /// Where the shoppers' phones receive their codes.
    pub phone: Option<crate::phone::Phone>,
    /// A client without the API key, for the phone gateway.
    phone_client: Client,
}

fn error(e: impl std::fmt::Display) -> SimError {
    SimError::Driver(e.to_string())
}

fn timestamp_ms(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

impl HttpDriver {
    /// Connects to `base` and reads its clock. `sim_start_ms` is the run's first midnight.
    pub fn connect(
        handle: Handle,
        base: &str,
        api_key: &str,
        currency: Currency,
        sim_start_ms: i64,
        registry: Registry,
        registry_path: Option<PathBuf>,
    ) -> Result<HttpDriver, SimError> {
        let client =
            crate::client::client(api_key, Client::builder().timeout(Duration::from_secs(15))).map_err(error)?;
        let base = base.trim_end_matches('/').to_owned();
        let health: Value = handle
            .block_on(async { client.get(format!("{base}/healthz")).send().await?.json::<Value>().await })
            .map_err(|e| error(format!("{base}/healthz: {e}")))?;
        let server_now_ms =
            health["clock"]["now_ms"].as_i64().ok_or_else(|| error("the server does not report its clock"))?;
        let speed = health["clock"]["speed"].as_f64().unwrap_or(1.0).max(1.0);
        Ok(HttpDriver {
            handle,
            client,
            base,
            currency,
            run_tag: format!("sim{}-{:x}", registry.seed, fastrand::u32(..)),
            registry,
            registry_path,
            tracked: HashMap::new(),
            last_captured: None,
            refundable: HashMap::new(),
            last_body: None,
            offset_ms: server_now_ms - sim_start_ms,
            server_origin_ms: server_now_ms,
            wall_origin: Instant::now(),
            speed,
            counters: Arc::default(),
            wallet_id: None,
            phone: None,
            phone_client: Client::builder().timeout(Duration::from_secs(15)).build().map_err(error)?,
        })
    }

    /// Opens every user's line not yet on the server, 32 requests at a time: seeding
    /// thousands of lines one by one would keep a newcomer waiting.
    pub fn open_lines(&mut self, users: &[UserSpec]) -> Result<(), SimError> {
        if self.registry.line_ids.len() < users.len() {
            self.registry.line_ids.resize(users.len(), None);
        }
        let server_now = self.server_origin_ms;
        let missing: Vec<&UserSpec> =
            users.iter().filter(|u| self.registry.line_ids[u.index as usize].is_none()).collect();
        for chunk in missing.chunks(32) {
            let requests: Vec<(u32, Value, String)> = chunk
                .iter()
                .map(|u| (u.index, self.line_body(u, server_now), format!("{}-line-{}", self.run_tag, u.index)))
                .collect();
            let url = format!("{}/v1/credit-lines", self.base);
            let results = self.handle.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for (index, body, key) in requests {
                    let (client, url) = (self.client.clone(), url.clone());
                    set.spawn(async move {
                        let r = client.post(url).header("Idempotency-Key", key).json(&body).send().await;
                        match r {
                            Ok(r) => {
                                let status = r.status();
                                let v: Value = r.json().await.unwrap_or(Value::Null);
                                Ok((index, status, v))
                            }
                            Err(e) => Err(format!("opening a credit line: {e}")),
                        }
                    });
                }
                let mut out = Vec::new();
                while let Some(done) = set.join_next().await {
                    out.push(done.map_err(|e| e.to_string()).and_then(|r| r));
                }
                out
            });
            for r in results {
                let (index, status, value) = r.map_err(error)?;
                let opened = self.opened(status, &value)?;
                self.remember_line(index, opened);
            }
        }
        self.save_registry();
        Ok(())
    }

    /// A line's opening as the server answered it: `201` with the line (its limit is what
    /// the server granted), or `422 credit_declined`.
    fn opened(&self, status: StatusCode, value: &Value) -> Result<Opened, SimError> {
        if status == StatusCode::CREATED {
            let id = value["id"].as_str().unwrap_or_default().to_owned();
            let limit = value["limit"]
                .as_str()
                .and_then(|t| xiezhi_money::parse_minor(t, self.currency, xiezhi_money::Sign::NonNegative).ok())
                .ok_or_else(|| error(format!("opening a credit line: no limit in {value}")))?;
            return Ok(Opened::Line(id, limit));
        }
        if status == StatusCode::UNPROCESSABLE_ENTITY && value["code"] == "credit_declined" {
            return Ok(Opened::Declined);
        }
        Err(error(format!("opening a credit line: {status} {value}")))
    }

    fn remember_line(&mut self, index: u32, opened: Opened) {
        let i = index as usize;
        if self.registry.line_ids.len() <= i {
            self.registry.line_ids.resize(i + 1, None);
        }
        if self.registry.line_limits.len() <= i {
            self.registry.line_limits.resize(i + 1, None);
        }
        match opened {
            Opened::Line(id, limit) => {
                self.registry.line_ids[i] = Some(id);
                self.registry.line_limits[i] = Some(limit);
            }
            Opened::Declined => {
                // Not asked again: the same application would be declined again.
                self.registry.line_ids[i] = Some(String::new());
                if !self.registry.declined.contains(&index) {
                    self.registry.declined.push(index);
                }
            }
        }
    }

    /// What the registry says of `u`'s line: `Some(Some(limit))` opened, `Some(None)`
    /// declined, `None` not asked yet.
    fn known_line(&self, u: &UserSpec) -> Option<Option<i64>> {
        let i = u.index as usize;
        if self.registry.declined.contains(&u.index) {
            return Some(None);
        }
        self.registry.line_ids.get(i).and_then(Option::as_ref)?;
        let granted = self.registry.line_limits.get(i).copied().flatten();
        Some(Some(granted.unwrap_or(u.limit_minor)))
    }

    fn line_body(&self, u: &UserSpec, server_now: i64) -> Value {
        let mut body = json!({
            "user_id": format!("{}-u{}", self.run_tag, u.index),
            "currency": self.currency.alpha(),
            "profile": {"birth_date": u.birth_date, "kyc_level": u.kyc_level, "region": u.region},
            "opened_at": rfc3339((u.opened_at_ms + self.offset_ms).clamp(946_684_800_000, server_now.max(946_684_800_000))),
        });
        match &u.application {
            // The server's scorecard sets the limit from the application and the income.
            Some(a) => {
                body["application"] = Value::Object((*a.answers).clone());
                body["monthly_income"] = json!(self.amount(a.monthly_income_minor));
            }
            None => body["limit"] = json!(self.amount(u.limit_minor)),
        }
        if let Some(wallet_id) = &self.wallet_id {
            body["wallet_id"] = json!(wallet_id);
        }
        body
    }

    /// Registers every merchant not yet on the server (the run would do it lazily; a demo
    /// wants its banner to show one).
    pub fn register_merchants(&mut self, merchants: &[MerchantSpec], now_ms: i64) -> Result<(), SimError> {
        for m in merchants.iter().filter(|m| !m.fraud_qr) {
            self.add_merchant(m, now_ms)?;
        }
        self.save_registry();
        Ok(())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn save_registry(&self) {
        if let Some(path) = &self.registry_path {
            // Written whole or not at all: a reader (or a restart after a crash) never sees
            // half a registry.
            if let Ok(text) = serde_json::to_string(&self.registry) {
                let staged = path.with_extension("json.tmp");
                if std::fs::write(&staged, text).is_ok() {
                    let _ = std::fs::rename(&staged, path);
                }
            }
        }
    }

    /// Waits until the server's clock reaches simulated instant `sim_ms`.
    fn pace(&self, sim_ms: i64) {
        self.counters.sim_now_ms.store(sim_ms.max(0) as u64, Ordering::Relaxed);
        let target = sim_ms + self.offset_ms;
        let wall_ms = ((target - self.server_origin_ms) as f64 / self.speed).max(0.0);
        let due = self.wall_origin + Duration::from_micros((wall_ms * 1_000.0) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }

    fn amount(&self, minor: i64) -> String {
        format_minor(minor, self.currency.minor_unit_exponent())
    }

    fn post(&self, path: &str, body: &Value, key: &str) -> Result<(StatusCode, Value), SimError> {
        let url = format!("{}{path}", self.base);
        self.handle
            .block_on(async {
                let r = self.client.post(&url).header("Idempotency-Key", key).json(body).send().await?;
                let status = r.status();
                let value = r.json::<Value>().await.unwrap_or(Value::Null);
                Ok::<_, reqwest::Error>((status, value))
            })
            .map_err(|e| error(format!("POST {path}: {e}")))
    }

    fn get(&self, path: &str) -> Result<(StatusCode, Value), SimError> {
        let url = format!("{}{path}", self.base);
        self.handle
            .block_on(async {
                let r = self.client.get(&url).send().await?;
                let status = r.status();
                Ok::<_, reqwest::Error>((status, r.json::<Value>().await.unwrap_or(Value::Null)))
            })
            .map_err(|e| error(format!("GET {path}: {e}")))
    }

    /// A dynamic code (the amount in it) for `merchant`, as its terminal would show it.
    fn dynamic_code(&self, token: u64, merchant: u32, amount_minor: i64) -> Result<String, SimError> {
        let (merchant_id, _) = self
            .registry
            .merchant_ids
            .get(merchant as usize)
            .and_then(Clone::clone)
            .ok_or_else(|| error(format!("no merchant {merchant}")))?;
        let key = format!("{}-code-{token}", self.run_tag);
        let body = json!({"amount": self.amount(amount_minor)});
        let (status, value) = self.post(&format!("/v1/merchants/{merchant_id}/qr"), &body, &key)?;
        match value["qr_payload"].as_str() {
            Some(payload) if status.is_success() => Ok(payload.to_owned()),
            _ => Err(error(format!("dynamic code: {status} {value}"))),
        }
    }

    fn line_id(&self, user: u32) -> Result<String, SimError> {
        self.registry
            .line_ids
            .get(user as usize)
            .and_then(Clone::clone)
            .ok_or_else(|| error(format!("no credit line for user {user}")))
    }

    /// The code the shopper's phone received for `challenge_id` (from the phone gateway: the
    /// API never shows one). `None` without a phone gateway, or when none arrived.
    fn phone_code(&self, challenge_id: &str) -> Option<String> {
        let phone = self.phone.as_ref()?;
        self.handle.block_on(phone.code_for(&self.phone_client, challenge_id))
    }

    fn answer(&self, challenge_id: &str, code: &str, attempt: u32) -> Result<Value, SimError> {
        let key = format!("{}-answer-{challenge_id}-{attempt}", self.run_tag);
        let (status, value) = self.post(&format!("/v1/challenges/{challenge_id}"), &json!({"code": code}), &key)?;
        if !status.is_success() {
            return Err(error(format!("answering challenge {challenge_id}: {status} {value}")));
        }
        Ok(value)
    }
}

impl HttpDriver {
    /// `POST /v1/payments` with the payment's own idempotency key: a re-send is answered
    /// from the server's idempotency store.
    fn send_payment(&self, token: u64, body: &Value) -> Result<Value, SimError> {
        let (status, value) = self.post("/v1/payments", body, &format!("{}-pay-{token}", self.run_tag))?;
        if status != StatusCode::CREATED && status != StatusCode::OK {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            return Err(error(format!("payment: {status} {value}")));
        }
        Ok(value)
    }

    /// The outcome, reason codes and restriction end of a payment view, in simulated time.
    fn read_decision(&self, payment: &Value, paid_at_ms: i64) -> (Outcome, Vec<String>, Option<i64>) {
        let decision = &payment["decision"];
        let outcome = match decision["outcome"].as_str() {
            Some("approve") => Outcome::Approve,
            Some("step_up") => Outcome::StepUp,
            Some("restrict") => Outcome::Restrict,
            _ => Outcome::Decline,
        };
        // The engine may approve what the ledger then cannot hold.
        let outcome =
            if outcome == Outcome::Approve && payment["status"] != "authorized" { Outcome::Decline } else { outcome };
        let reason_codes = decision["reason_codes"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let restricted_until_ms = (outcome == Outcome::Restrict).then(|| {
            let until = decision["expires_at"].as_str().and_then(timestamp_ms);
            until.map_or(paid_at_ms + 24 * 3_600_000, |t| t - self.offset_ms)
        });
        (outcome, reason_codes, restricted_until_ms)
    }
}

fn wrong_code(code: &str) -> String {
    let mut digits: Vec<u8> = code.bytes().collect();
    if let Some(last) = digits.last_mut() {
        *last = if *last == b'9' { b'0' } else { *last + 1 };
    }
    String::from_utf8(digits).unwrap_or_else(|_| "000000".into())
}

impl Driver for HttpDriver {
    fn mode(&self) -> &'static str {
        "http"
    }

    fn add_merchant(&mut self, m: &MerchantSpec, now_ms: i64) -> Result<(), SimError> {
        let index = m.index as usize;
        if self.registry.merchant_ids.get(index).is_some_and(Option::is_some) {
            return Ok(());
        }
        self.pace(now_ms);
        let server_now = now_ms + self.offset_ms;
        let onboarded = (m.created_at_ms + self.offset_ms).min(server_now);
        let mut body = json!({"name": m.name, "city": m.city_name, "country": "CN", "mcc": m.category.mcc(),
            "currency": self.currency.alpha()});
        if onboarded > 946_684_800_000 {
            body["onboarded_at"] = json!(rfc3339(onboarded));
        }
        let key = format!("{}-merchant-{}", self.run_tag, m.index);
        let (status, value) = self.post("/v1/merchants", &body, &key)?;
        if status != StatusCode::CREATED {
            return Err(error(format!("creating merchant {}: {status} {value}", m.name)));
        }
        if self.registry.merchant_ids.len() <= index {
            self.registry.merchant_ids.resize(index + 1, None);
        }
        let id = value["id"].as_str().unwrap_or_default().to_owned();
        let qr = value["qr_payload"].as_str().unwrap_or_default().to_owned();
        self.registry.merchant_ids[index] = Some((id, qr));
        if m.fraud_qr {
            self.save_registry();
        }
        Ok(())
    }

    fn open_line(&mut self, u: &UserSpec, now_ms: i64) -> Result<Option<i64>, SimError> {
        let index = u.index as usize;
        if index == 0 {
            // A run registers every merchant before the first line: the ids are complete.
            self.save_registry();
        }
        if let Some(known) = self.known_line(u) {
            return Ok(known);
        }
        let body = self.line_body(u, now_ms + self.offset_ms);
        let key = format!("{}-line-{}", self.run_tag, u.index);
        let (status, value) = self.post("/v1/credit-lines", &body, &key)?;
        let opened = self.opened(status, &value)?;
        self.remember_line(u.index, opened);
        if index + 1 == self.registry.users as usize {
            self.save_registry();
        }
        Ok(self.known_line(u).flatten())
    }

    fn pay(&mut self, r: &PayRequest) -> Result<PayResult, SimError> {
        self.pace(r.now_ms);
        let line_id = self.line_id(r.user)?;
        let (_, qr) = self
            .registry
            .merchant_ids
            .get(r.merchant as usize)
            .and_then(Clone::clone)
            .ok_or_else(|| error(format!("no merchant {}", r.merchant)))?;
        let qr = if r.dynamic_code { self.dynamic_code(r.token, r.merchant, r.amount_minor)? } else { qr };
        let mut context = serde_json::Map::new();
        if let Some(d) = r.device {
            context.insert("device_id".into(), json!(format!("d{d:x}")));
        }
        if let Some(ip) = r.ip {
            context.insert("ip".into(), json!(ip.to_string()));
        }
        if let Some(n) = r.network {
            context.insert("network".into(), json!(n));
        }
        let mut body = json!({"credit_line_id": line_id, "qr_payload": qr, "context": context});
        if !r.dynamic_code {
            // A static code carries no amount: the shopper types it. A dynamic one does.
            body["amount"] = json!(self.amount(r.amount_minor));
        }
        let started = Instant::now();
        let value = self.send_payment(r.token, &body)?;
        let latency_ns = started.elapsed().as_nanos() as u64;
        self.last_body = Some((r.token, body, r.now_ms));
        let (outcome, reason_codes, restricted_until_ms) = self.read_decision(&value, r.now_ms);
        let c = &self.counters;
        c.payments.fetch_add(1, Ordering::Relaxed);
        c.latency_us_total.fetch_add(latency_ns / 1_000, Ordering::Relaxed);
        match outcome {
            Outcome::Approve => c.approved.fetch_add(1, Ordering::Relaxed),
            Outcome::StepUp => c.stepped_up.fetch_add(1, Ordering::Relaxed),
            Outcome::Decline => c.declined.fetch_add(1, Ordering::Relaxed),
            Outcome::Restrict => c.restricted.fetch_add(1, Ordering::Relaxed),
        };
        if self.tracked.len() >= MAX_TRACKED_PAYMENTS {
            // Follow-ups come within seconds; anything this old is settled.
            let oldest = self.tracked.keys().copied().min().unwrap_or(0);
            self.tracked.retain(|token, _| *token > oldest + (MAX_TRACKED_PAYMENTS as u64) / 2);
        }
        self.tracked.insert(
            r.token,
            Tracked {
                payment_id: value["id"].as_str().unwrap_or_default().to_owned(),
                challenge_id: value["decision"]["challenge_id"].as_str().map(str::to_owned),
            },
        );
        Ok(PayResult { outcome, reason_codes, restricted_until_ms, latency_ns, challenger_outcome: None })
    }

    fn resend(&mut self, token: u64, now_ms: i64) -> Result<PayResult, SimError> {
        let Some((last, body, paid_at_ms)) = self.last_body.clone() else {
            return Err(error(format!("payment {token} was not the last one sent")));
        };
        if last != token {
            return Err(error(format!("payment {token} was not the last one sent")));
        }
        self.pace(now_ms);
        let started = Instant::now();
        let value = self.send_payment(token, &body)?;
        let (outcome, reason_codes, restricted_until_ms) = self.read_decision(&value, paid_at_ms);
        let latency_ns = started.elapsed().as_nanos() as u64;
        Ok(PayResult { outcome, reason_codes, restricted_until_ms, latency_ns, challenger_outcome: None })
    }

    fn answer_challenge(
        &mut self,
        token: u64,
        wrong_codes: u32,
        then_correct: bool,
        now_ms: i64,
    ) -> Result<ChallengeEnd, SimError> {
        self.pace(now_ms);
        let challenge_id = match self.tracked.get(&token) {
            Some(Tracked { challenge_id: Some(c), .. }) => c.clone(),
            _ => return Err(error(format!("no challenge for payment {token}"))),
        };
        let code = self.phone_code(&challenge_id).unwrap_or_else(|| "000000".into());
        let mut last = Value::Null;
        for attempt in 0..wrong_codes {
            last = self.answer(&challenge_id, &wrong_code(&code), attempt)?;
            if last["status"] != "pending" {
                return Ok(ChallengeEnd::Failed);
            }
        }
        if !then_correct {
            return Ok(ChallengeEnd::Failed);
        }
        last = self.answer(&challenge_id, &code, wrong_codes).map(|v| if v.is_null() { last } else { v })?;
        Ok(match (last["status"].as_str(), last["payment"]["status"].as_str()) {
            (Some("passed"), Some("authorized")) => ChallengeEnd::Approved,
            (Some("passed"), _) => ChallengeEnd::PassedDeclined,
            _ => ChallengeEnd::Failed,
        })
    }

    fn capture(&mut self, token: u64, now_ms: i64) -> Result<(), SimError> {
        self.pace(now_ms);
        let Some(t) = self.tracked.remove(&token) else { return Ok(()) };
        let key = format!("{}-capture-{token}", self.run_tag);
        let (status, value) = self.post(&format!("/v1/payments/{}/capture", t.payment_id), &json!({}), &key)?;
        if !status.is_success() {
            return Err(error(format!("capture: {status} {value}")));
        }
        self.last_captured = Some((token, t.payment_id));
        Ok(())
    }

    fn keep_for_refund(&mut self, token: u64, _user: u32, _merchant: u32) {
        let Some((captured, payment_id)) = self.last_captured.take() else { return };
        if captured != token {
            return;
        }
        if self.refundable.len() >= MAX_TRACKED_PAYMENTS {
            // Refunds come within weeks; the oldest kept receipts go first.
            let oldest = self.refundable.keys().copied().min().unwrap_or(0);
            self.refundable.retain(|t, _| *t > oldest + (MAX_TRACKED_PAYMENTS as u64) / 2);
        }
        self.refundable.insert(token, payment_id);
    }

    fn refund(&mut self, token: u64, amount_minor: i64, now_ms: i64) -> Result<bool, SimError> {
        self.pace(now_ms);
        let Some(payment_id) = self.refundable.get(&token).cloned() else { return Ok(false) };
        let key = format!("{}-refund-{token}-{now_ms}", self.run_tag);
        let body = json!({"amount": self.amount(amount_minor)});
        let (status, value) = self.post(&format!("/v1/payments/{payment_id}/refunds"), &body, &key)?;
        if status.is_server_error() {
            return Err(error(format!("refund: {status} {value}")));
        }
        // A refund the server refuses (more than is left) changes nothing, as in process.
        Ok(status.is_success())
    }

    fn void(&mut self, token: u64, now_ms: i64) -> Result<(), SimError> {
        self.pace(now_ms);
        let Some(t) = self.tracked.remove(&token) else { return Ok(()) };
        let key = format!("{}-void-{token}", self.run_tag);
        let (status, value) = self.post(&format!("/v1/payments/{}/void", t.payment_id), &json!({}), &key)?;
        if !status.is_success() {
            return Err(error(format!("void: {status} {value}")));
        }
        Ok(())
    }

    fn repay(&mut self, user: u32, amount_minor: i64, now_ms: i64) -> Result<i64, SimError> {
        self.pace(now_ms);
        let line_id = self.line_id(user)?;
        let (_, line) = self.get(&format!("/v1/credit-lines/{line_id}"))?;
        let owed = line["receivable"]
            .as_str()
            .and_then(|t| xiezhi_money::parse_minor(t, self.currency, xiezhi_money::Sign::NonNegative).ok())
            .unwrap_or(0);
        let amount_minor = amount_minor.min(owed);
        if amount_minor <= 0 {
            return Ok(0);
        }
        let key = format!("{}-repay-{user}-{now_ms}", self.run_tag);
        let (status, value) = self.post(
            &format!("/v1/credit-lines/{line_id}/repayments"),
            &json!({"amount": self.amount(amount_minor)}),
            &key,
        )?;
        if !status.is_success() {
            return Err(error(format!("repayment: {status} {value}")));
        }
        Ok(amount_minor)
    }

    /// The policy the server decides with (`GET /v1/policy`, needs `policy:read`).
    fn appeal_terms(&mut self) -> Result<AppealTerms, SimError> {
        let (status, value) = self.get("/v1/policy")?;
        if !status.is_success() {
            return Err(appeals_refused("GET /v1/policy", status, &value));
        }
        let document: xiezhi_risk::PolicyDocument = serde_json::from_value(value["document"].clone())
            .map_err(|e| error(format!("the server's policy: {e}")))?;
        AppealTerms::from_policy(&document, self.currency)
    }

    /// `POST /v1/appeals` on the restriction in force on the line (`appeals:file`).
    fn file_appeal(&mut self, user: u32, now_ms: i64) -> Result<Option<String>, SimError> {
        self.pace(now_ms);
        let line_id = self.line_id(user)?;
        let (_, line) = self.get(&format!("/v1/credit-lines/{line_id}"))?;
        let Some(restriction_id) = line["restriction"]["id"].as_str() else { return Ok(None) };
        let body =
            json!({"restriction_id": restriction_id, "message": "It was me paying: please give me my line back."});
        let key = format!("{}-appeal-{user}-{now_ms}", self.run_tag);
        let (status, value) = self.post("/v1/appeals", &body, &key)?;
        match status {
            // One open appeal per restriction, or the time to appeal is over: nothing new.
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => Ok(None),
            s if s.is_success() => Ok(value["id"].as_str().map(str::to_owned)),
            _ => Err(appeals_refused("POST /v1/appeals", status, &value)),
        }
    }

    /// `POST /v1/appeals/{id}/claim` (`appeals:decide`). Every simulated reviewer uses the
    /// driver's one key, so the server sees one reviewer; the simulation keeps them apart.
    fn claim_appeal(&mut self, appeal: &str, _reviewer: u32, now_ms: i64) -> Result<(), SimError> {
        self.pace(now_ms);
        let key = format!("{}-claim-{appeal}", self.run_tag);
        let (status, value) = self.post(&format!("/v1/appeals/{appeal}/claim"), &json!({}), &key)?;
        if !status.is_success() {
            return Err(appeals_refused("POST /v1/appeals/{id}/claim", status, &value));
        }
        Ok(())
    }

    /// `POST /v1/appeals/{id}/decision`: the server lifts on an overturn and owes the
    /// compensation from its fund.
    fn decide_appeal(&mut self, appeal: &str, _user: u32, overturn: bool, now_ms: i64) -> Result<bool, SimError> {
        self.pace(now_ms);
        let outcome = if overturn { "overturn" } else { "uphold" };
        let body = json!({"outcome": outcome, "note": "simulated reviewer"});
        let key = format!("{}-decide-{appeal}", self.run_tag);
        let (status, value) = self.post(&format!("/v1/appeals/{appeal}/decision"), &body, &key)?;
        if !status.is_success() {
            return Err(appeals_refused("POST /v1/appeals/{id}/decision", status, &value));
        }
        Ok(overturn && value["lifted_restriction"] == true)
    }

    /// The server escalates on its own clock (its writer's sweep); this reads whether it
    /// did and lifted the restriction. A sweep that has not run yet reads as not lifted.
    fn escalate_appeal(&mut self, appeal: &str, _user: u32, _auto_lift: bool, now_ms: i64) -> Result<bool, SimError> {
        self.pace(now_ms);
        let (status, value) = self.get(&format!("/v1/appeals/{appeal}"))?;
        if !status.is_success() {
            return Err(appeals_refused("GET /v1/appeals/{id}", status, &value));
        }
        Ok(value["escalated_at"].is_string() && value["outcome"].is_null() && value["lifted_restriction"] == true)
    }

    fn lift_restriction(&mut self, user: u32, now_ms: i64) -> Result<bool, SimError> {
        self.pace(now_ms);
        let line_id = self.line_id(user)?;
        let (_, line) = self.get(&format!("/v1/credit-lines/{line_id}"))?;
        let Some(challenge_id) = line["restriction"]["challenge_id"].as_str().map(str::to_owned) else {
            return Ok(false);
        };
        let Some(code) = self.phone_code(&challenge_id) else { return Ok(false) };
        let answer = self.answer(&challenge_id, &code, 0)?;
        Ok(answer["status"] == "passed")
    }
}

/// An appeal request the server refused: names what the driver's key needs, and how to run
/// without appeals.
fn appeals_refused(what: &str, status: StatusCode, value: &Value) -> SimError {
    error(format!(
        "{what}: {status} {value}. Simulated appeals need a key with policy:read, appeals:file and appeals:decide; \
         a mix with honest.appeal_prob and adversaries.restricted_fraudster_appeal_prob at 0 files none"
    ))
}

/// `xiezhi simulate --target`: one run against the server, on its clock.
pub fn run(
    config: &RunConfig,
    target: &str,
    api_key: &str,
    phone: Option<crate::phone::Phone>,
    registry_path: Option<&Path>,
) -> Result<ConfigRun, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let currency = Currency::from_alpha(&config.mix.currency).ok_or("unknown currency")?;
    let sim = xiezhi_sim::Simulation::new(config).map_err(|e| e.to_string())?;
    let registry =
        Registry { seed: config.seed, users: config.users, merchants: config.merchants, ..Registry::default() };
    let mut driver = HttpDriver::connect(
        runtime.handle().clone(),
        target,
        api_key,
        currency,
        sim.start_ms(),
        registry,
        registry_path.map(Path::to_path_buf),
    )
    .map_err(|e| e.to_string())?;
    driver.phone = phone;
    eprintln!(
        "xiezhi simulate: {} users against {target}; its clock runs at {}x, so a simulated day takes {:.0} s",
        config.users,
        driver.speed,
        86_400.0 / driver.speed
    );
    driver.open_lines(&sim.world().users).map_err(|e| e.to_string())?;
    let days = config.days;
    xiezhi_sim::run_simulation(sim, "server", &mut driver, &mut |day, payments| {
        eprintln!("[server] day {}/{days} done, {payments} payments", day + 1);
    })
    .map_err(|e| e.to_string())
}
