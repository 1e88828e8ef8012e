//! Crash safety under mixed load: `xiezhi serve` is killed with SIGKILL over and over while
//! concurrent clients pay, capture (fully or in part), void, refund, repay and re-send
//! requests under their idempotency keys. After every kill the books must balance
//! (`xiezhi store check`), and every operation a client saw acknowledged must be there exactly
//! once, as the client was told. Each client works alone on its own credit lines and keeps a
//! model of its payments and lines built only from acknowledged answers, so the model is
//! exact and is compared field by field with what the restarted server reports.
//!
//! A request cut off by the kill may or may not have been committed. After the restart its
//! client re-sends it unchanged (same key, same bytes): a committed one replays its stored
//! answer, an uncommitted one runs now, and either way that answer enters the model.
//!
//! `CRASH_SEED=n` repeats a run's random choices; how far each client gets before each kill
//! still depends on the machine's timing.

mod common;

use common::Server;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::io::BufReader;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Stdio};
use std::time::{Duration, Instant};

/// Kills: enough that kills land in every phase of the pipelined group commit many times.
const CYCLES: usize = 100;
const CLIENTS: usize = 12;
/// Each line has its own user, so a client moves on before a user nears the daily cap.
const LINES_PER_CLIENT: usize = 4;
const LINE_LIMIT_MINOR: i64 = 2_000_000;
/// Per user and day: under the policy's daily cap of 20000.00 (which a rule set cannot
/// switch off), so no payment of this test is declined for it.
const USER_DAY_BUDGET_MINOR: i64 = 1_500_000;
/// Repay in full when available credit falls below this: high utilisation adds to the
/// heuristic fraud score, and a payment must never exceed what is available.
const REPAY_BELOW_MINOR: i64 = 1_400_000;
/// Above the tiny-payment threshold (2.00; several tiny payments look like card testing),
/// far below the per-payment cap (5000.00) and the identity-check amount (1000.00).
const AMOUNT_MINOR: RangeInclusive<i64> = 201..=5_000;
/// How long clients run before the kill.
const LOAD_MS: RangeInclusive<u64> = 100..=400;
/// Each client sends at most one request per interval (no pause when the answer took
/// longer). Every restart and store check reads all that was written before, so the run
/// time grows with the write rate: the cap keeps it bounded on a fast machine, while the
/// server still commits batches of several requests and most clients are waiting for an
/// answer when the kill comes.
const MIN_REQUEST_INTERVAL: Duration = Duration::from_millis(5);
/// Every this many restarts every payment is read and its creation re-sent; in between,
/// those that changed since the last look (the lines, which sum up every payment, and
/// the store check, which compares every payment record with the ledger, run every time).
const FULL_VERIFY_EVERY: usize = 10;
/// Payments per client and cycle whose creation is re-sent besides the ones just touched.
const RESENDS_PER_CYCLE: usize = 4;
/// No rules: velocity rules would step up or decline payments of this busy test.
const NO_RULES: &str = r#"{"version":"none","rules":[]}"#;

fn decimal(amount_minor: i64) -> String {
    assert!(amount_minor >= 0, "negative amount {amount_minor}");
    format!("{}.{:02}", amount_minor / 100, amount_minor % 100)
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_else(|| panic!("no string `{field}` in {value}"))
}

/// A running server; its stdout stays open while it runs (it prints there).
struct Running {
    server: Server,
    base: String,
    _stdout: BufReader<ChildStdout>,
}

fn start(data_dir: &Path, rules: &Path) -> Running {
    let rules = rules.to_str().expect("UTF-8 temp path");
    let (server, base, stdout) = common::serve(data_dir, &["--rules", rules]);
    Running { server, base, _stdout: stdout }
}

fn http_client() -> reqwest::Client {
    // A hung server must fail the test, not stall it.
    common::client()
}

/// `xiezhi store check` on a byte-for-byte copy of the data directory as the kill left it.
/// The copy lets the check run beside the restarted server: the check reads the store in
/// several transactions, between which a live writer would move the books.
struct StoreCheck {
    child: std::process::Child,
    copy: PathBuf,
    cycle: usize,
}

impl StoreCheck {
    fn spawn(data_dir: &Path, copy: PathBuf, cycle: usize) -> StoreCheck {
        std::fs::create_dir_all(&copy).expect("create the copy");
        for entry in std::fs::read_dir(data_dir).expect("read the data directory") {
            let entry = entry.expect("a directory entry");
            std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy the store");
        }
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_xiezhi"))
            .args(["store", "check", "--data-dir"])
            .arg(&copy)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run xiezhi store check");
        StoreCheck { child, copy, cycle }
    }

    /// Exit 0, balanced, and no disagreement in any list the report carries. A failing
    /// copy is kept (outside the temporary directory) as evidence.
    fn assert_passed(self) {
        let cycle = self.cycle;
        let output = self.child.wait_with_output().expect("wait for xiezhi store check");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let mut failures = disagreements(&report);
        if !output.status.success() || report["balanced"] != true {
            failures.push(format!("{}, balanced {}", output.status, report["balanced"]));
        }
        if failures.is_empty() {
            std::fs::remove_dir_all(&self.copy).expect("remove the copy");
            return;
        }
        let kept = std::env::temp_dir().join(format!("xiezhi-crash-{}-after-kill-{cycle}", std::process::id()));
        let kept = std::fs::rename(&self.copy, &kept).map_or(self.copy, |()| kept);
        panic!(
            "after kill {cycle}: store check failed ({}); the store is kept in {}\n{report}\n{}",
            failures.join("; "),
            kept.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Lists of disagreements the report carries (payment records against the ledger,
/// unbalanced transactions, frozen lines) that are not empty.
fn disagreements(report: &Value) -> Vec<String> {
    let Some(fields) = report.as_object() else { return Vec::new() };
    let mut found = Vec::new();
    for (name, value) in fields {
        let suspicious = ["mismatch", "disagree", "discrepan", "unbalanced", "frozen"].iter().any(|w| name.contains(w));
        match value {
            Value::Array(items) if suspicious && !items.is_empty() => found.push(format!("{name} is not empty")),
            Value::Object(_) => found.extend(disagreements(value)),
            _ => {}
        }
    }
    found
}

/// A mutating request as sent. Re-sending it means sending these bytes under this key.
#[derive(Clone, Debug)]
struct Request {
    op: Op,
    path: String,
    key: String,
    body: String,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Pay {
        line: usize,
        amount_minor: i64,
    },
    /// `None` captures the whole authorization (empty body).
    Capture {
        payment: usize,
        amount_minor: Option<i64>,
    },
    Void {
        payment: usize,
    },
    Refund {
        payment: usize,
        amount_minor: i64,
    },
    Repay {
        line: usize,
        amount_minor: i64,
    },
    /// An acknowledged request sent again: the answer must be the same, byte for byte.
    Resend {
        acked: usize,
    },
}

/// An acknowledged request and the answer it got (compact JSON).
struct Acked {
    request: Request,
    status: u16,
    answer: String,
}

enum Answer {
    Reply(u16, Value),
    /// No answer (connection refused or reset, body cut off): the server died.
    Lost(String),
}

async fn post(http: &reqwest::Client, base: &str, request: &Request) -> Answer {
    for _ in 0..20 {
        let sent = http
            .post(format!("{base}{}", request.path))
            .header("Idempotency-Key", &request.key)
            .header("Content-Type", "application/json")
            .body(request.body.clone())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => return Answer::Lost(error.to_string()),
        };
        let status = response.status().as_u16();
        let answer = match response.json::<Value>().await {
            Ok(answer) => answer,
            Err(error) => return Answer::Lost(error.to_string()),
        };
        // Overloaded or storage unavailable: the service asks for a retry under the key.
        if status != 503 {
            return Answer::Reply(status, answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Answer::Reply(503, json!({"error": "still 503 after 20 tries"}))
}

async fn get(http: &reqwest::Client, url: String, context: &str) -> Value {
    let response = http.get(&url).send().await.unwrap_or_else(|e| panic!("{context}: GET {url}: {e}"));
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_else(|e| panic!("{context}: GET {url}: {e}"));
    assert_eq!(status, 200, "{context}: GET {url}: {body}");
    body
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LineModel {
    available_minor: i64,
    held_minor: i64,
    receivable_minor: i64,
    credit_balance_minor: i64,
}

struct Line {
    id: String,
    model: LineModel,
    /// Approved on this line's user: stays under the daily cap.
    approved_minor: i64,
}

#[derive(Clone, Debug)]
struct PaymentModel {
    id: String,
    line: usize,
    amount_minor: i64,
    status: &'static str,
    captured_minor: i64,
    refunded_minor: i64,
    refunds: usize,
    /// Index of its creation in `Client::acked`.
    created: usize,
}

fn assert_line(view: &Value, line: &Line, context: &str) {
    let got = ["limit", "available", "held", "receivable", "credit_balance"].map(|f| text(view, f).to_owned());
    let m = &line.model;
    let want =
        [LINE_LIMIT_MINOR, m.available_minor, m.held_minor, m.receivable_minor, m.credit_balance_minor].map(decimal);
    assert_eq!(
        got, want,
        "{context}: credit line {} differs from its model\n  (limit, available, held, receivable, credit balance; \
         left: server, right: model)\n  server: {view}",
        line.id
    );
    assert!(view.get("restriction").is_none(), "{context}: line {} restricted: {view}", line.id);
}

/// A stepped-up payment whose challenge lapses is declined by the writer's sweep: the only
/// change a payment may undergo that no client asked for.
fn status_seen(expected: &'static str, got: &str) -> bool {
    expected == got || (expected == "challenge_required" && matches!(got, "declined" | "expired"))
}

fn assert_payment(view: &Value, p: &PaymentModel, line_id: &str, context: &str) {
    let refunds = view["refunds"].as_array().map_or(usize::MAX, Vec::len);
    let got = (
        text(view, "id"),
        text(view, "credit_line_id"),
        text(view, "amount"),
        text(view, "captured_amount"),
        text(view, "refunded_amount"),
        refunds,
    );
    let (amount, captured, refunded) = (decimal(p.amount_minor), decimal(p.captured_minor), decimal(p.refunded_minor));
    let want = (p.id.as_str(), line_id, amount.as_str(), captured.as_str(), refunded.as_str(), p.refunds);
    let status = text(view, "status");
    assert!(
        got == want && status_seen(p.status, status),
        "{context}: payment differs from its model\n  model (id, line, amount, captured, refunded, refunds): \
         {want:?}, status {}\n  server: {view}",
        p.status
    );
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    payments: usize,
    not_approved: usize,
    captures_full: usize,
    captures_partial: usize,
    voids: usize,
    refunds_full: usize,
    refunds_partial: usize,
    repayments: usize,
    /// Re-sent acknowledged requests, during load and (`resends_verifying`) after restarts.
    resends: usize,
    resends_verifying: usize,
    in_flight: usize,
    payment_reads: usize,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.payments += o.payments;
        self.not_approved += o.not_approved;
        self.captures_full += o.captures_full;
        self.captures_partial += o.captures_partial;
        self.voids += o.voids;
        self.refunds_full += o.refunds_full;
        self.refunds_partial += o.refunds_partial;
        self.repayments += o.repayments;
        self.resends += o.resends;
        self.resends_verifying += o.resends_verifying;
        self.in_flight += o.in_flight;
        self.payment_reads += o.payment_reads;
    }

    /// Acknowledged operations that changed something (re-sends change nothing).
    fn writes(&self) -> usize {
        self.payments
            + self.captures_full
            + self.captures_partial
            + self.voids
            + self.refunds_full
            + self.refunds_partial
            + self.repayments
    }
}

/// One sequential HTTP client: its lines, its payments, and what it was told.
struct Client {
    index: usize,
    rng: fastrand::Rng,
    qr_payloads: Vec<String>,
    lines: Vec<Line>,
    current_line: usize,
    payments: Vec<PaymentModel>,
    payment_ids: HashMap<String, usize>,
    /// Authorized payments (to capture or void).
    open: Vec<usize>,
    /// Captured payments with something left to refund.
    refundable: Vec<usize>,
    acked: Vec<Acked>,
    /// Payments an acknowledged (or in-flight) request changed since the last verification.
    touched: BTreeSet<usize>,
    in_flight: Option<Request>,
    next_key: u64,
    stats: Stats,
}

impl Client {
    fn new(index: usize, seed: u64, qr_payloads: Vec<String>, line_ids: Vec<String>) -> Client {
        let lines = line_ids
            .into_iter()
            .map(|id| Line {
                id,
                model: LineModel { available_minor: LINE_LIMIT_MINOR, ..LineModel::default() },
                approved_minor: 0,
            })
            .collect();
        Client {
            index,
            rng: fastrand::Rng::with_seed(seed.wrapping_add(index as u64)),
            qr_payloads,
            lines,
            current_line: 0,
            payments: Vec::new(),
            payment_ids: HashMap::new(),
            open: Vec::new(),
            refundable: Vec::new(),
            acked: Vec::new(),
            touched: BTreeSet::new(),
            in_flight: None,
            next_key: 0,
            stats: Stats::default(),
        }
    }

    /// The next operation, chosen among those the model says are valid now.
    fn next_op(&mut self) -> Op {
        let line = self.current_line;
        let model = self.lines[line].model.clone();
        if model.available_minor < REPAY_BELOW_MINOR && model.receivable_minor > 0 {
            return Op::Repay { line, amount_minor: model.receivable_minor };
        }
        match self.rng.u32(0..100) {
            0..=29 => {}
            30..=59 if !self.open.is_empty() => return self.settle_op(),
            60..=74 if !self.refundable.is_empty() => return self.refund_op(),
            75..=84 if model.receivable_minor > 0 => {
                return Op::Repay { line, amount_minor: self.rng.i64(1..=model.receivable_minor) }
            }
            85..=99 if !self.acked.is_empty() => return self.resend_op(),
            _ => {}
        }
        self.pay_op()
    }

    fn pay_op(&mut self) -> Op {
        let budget_left = USER_DAY_BUDGET_MINOR - self.lines[self.current_line].approved_minor;
        if budget_left < *AMOUNT_MINOR.end() && self.current_line + 1 < self.lines.len() {
            self.current_line += 1;
        }
        Op::Pay { line: self.current_line, amount_minor: self.rng.i64(AMOUNT_MINOR) }
    }

    /// Capture (fully or in part) or void an authorized payment, mostly the newest one:
    /// most payments are captured at once, a few much later.
    fn settle_op(&mut self) -> Op {
        let pick = if self.rng.u32(0..4) > 0 { self.open.len() - 1 } else { self.rng.usize(..self.open.len()) };
        let payment = self.open[pick];
        let amount_minor = self.payments[payment].amount_minor;
        match self.rng.u32(0..100) {
            0..=44 => Op::Capture { payment, amount_minor: None },
            45..=74 => Op::Capture { payment, amount_minor: Some(self.rng.i64(1..amount_minor)) },
            _ => Op::Void { payment },
        }
    }

    fn refund_op(&mut self) -> Op {
        let payment = self.refundable[self.rng.usize(..self.refundable.len())];
        let p = &self.payments[payment];
        let left_minor = p.captured_minor - p.refunded_minor;
        let amount_minor = if left_minor == 1 || self.rng.bool() { left_minor } else { self.rng.i64(1..left_minor) };
        Op::Refund { payment, amount_minor }
    }

    fn resend_op(&mut self) -> Op {
        let n = self.acked.len();
        let acked = if self.rng.bool() { n - 1 - self.rng.usize(..n.min(8)) } else { self.rng.usize(..n) };
        Op::Resend { acked }
    }

    fn request(&mut self, op: Op) -> Request {
        if let Op::Resend { acked } = op {
            return Request { op, ..self.acked[acked].request.clone() };
        }
        self.next_key += 1;
        let key = format!("crash-c{}-{}", self.index, self.next_key);
        let (path, body) = match op {
            Op::Pay { line, amount_minor } => ("/v1/payments".to_owned(), self.payment_body(line, amount_minor)),
            Op::Capture { payment, amount_minor } => (
                self.payment_path(payment, "capture"),
                amount_minor.map_or_else(|| json!({}), |a| json!({ "amount": decimal(a) })),
            ),
            Op::Void { payment } => (self.payment_path(payment, "void"), json!({})),
            Op::Refund { payment, amount_minor } => {
                (self.payment_path(payment, "refunds"), json!({ "amount": decimal(amount_minor) }))
            }
            Op::Repay { line, amount_minor } => (
                format!("/v1/credit-lines/{}/repayments", self.lines[line].id),
                json!({ "amount": decimal(amount_minor) }),
            ),
            Op::Resend { .. } => unreachable!("handled above"),
        };
        Request { op, path, key, body: body.to_string() }
    }

    fn payment_path(&self, payment: usize, action: &str) -> String {
        format!("/v1/payments/{}/{action}", self.payments[payment].id)
    }

    /// One device, address and network per client: its device becomes trusted after a few
    /// payments, as a real shopper's does.
    fn payment_body(&mut self, line: usize, amount_minor: i64) -> Value {
        let qr = &self.qr_payloads[self.rng.usize(..self.qr_payloads.len())];
        json!({
            "credit_line_id": self.lines[line].id,
            "qr_payload": qr,
            "amount": decimal(amount_minor),
            "context": {"device_id": format!("crash-device-{}", self.index), "ip": format!("10.1.{}.7", self.index), "network": "wifi"},
        })
    }
}

impl Client {
    /// Applies an acknowledged answer to the model after checking it against the model.
    fn acknowledge(&mut self, request: Request, status: u16, answer: Value, context: &str) {
        let context = format!(
            "{context}: POST {} (key {}) {} answered {status} {answer}",
            request.path, request.key, request.body
        );
        match request.op {
            Op::Resend { acked } => return self.check_resend(acked, status, &answer, &context),
            Op::Pay { line, amount_minor } => self.paid(line, amount_minor, status, &answer, &context),
            Op::Capture { payment, amount_minor } => self.captured(payment, amount_minor, status, &answer, &context),
            Op::Void { payment } => self.voided(payment, status, &answer, &context),
            Op::Refund { payment, amount_minor } => self.refunded(payment, amount_minor, status, &answer, &context),
            Op::Repay { line, amount_minor } => self.repaid(line, amount_minor, status, &answer, &context),
        }
        self.acked.push(Acked { request, status, answer: answer.to_string() });
    }

    fn check_resend(&mut self, acked: usize, status: u16, answer: &Value, context: &str) {
        let first = &self.acked[acked];
        // Compared as text: `Value == String` would compare with a JSON string.
        let answer_text = answer.to_string();
        assert!(
            status == first.status && answer_text == first.answer,
            "{context}\n  a re-sent request must get its first answer: {} {}",
            first.status,
            first.answer
        );
        self.stats.resends += 1;
    }

    fn paid(&mut self, line: usize, amount_minor: i64, status: u16, answer: &Value, context: &str) {
        assert_eq!(status, 201, "{context}");
        let id = text(answer, "id").to_owned();
        let index = self.payments.len();
        assert!(self.payment_ids.insert(id.clone(), index).is_none(), "{context}: a second answer with payment {id}");
        let payment_status = match text(answer, "status") {
            "authorized" => "authorized",
            // Stepped up or declined by the risk engine: nothing is held.
            "declined" => "declined",
            "challenge_required" => "challenge_required",
            other => panic!("{context}: a new payment cannot be {other}"),
        };
        if payment_status == "authorized" {
            let l = &mut self.lines[line];
            l.model.available_minor -= amount_minor;
            l.model.held_minor += amount_minor;
            l.approved_minor += amount_minor;
            self.open.push(index);
        } else {
            self.stats.not_approved += 1;
        }
        let p = PaymentModel {
            id,
            line,
            amount_minor,
            status: payment_status,
            captured_minor: 0,
            refunded_minor: 0,
            refunds: 0,
            created: self.acked.len(),
        };
        assert_payment(answer, &p, &self.lines[line].id, context);
        self.payments.push(p);
        self.touched.insert(index);
        self.stats.payments += 1;
    }

    /// Whether a payment still belongs on the open or refundable list.
    fn relist(&mut self, payment: usize) {
        let p = &self.payments[payment];
        let (open, refundable) = (p.status == "authorized", p.captured_minor > p.refunded_minor);
        self.open.retain(|&i| i != payment || open);
        self.refundable.retain(|&i| i != payment || refundable);
        if refundable && !self.refundable.contains(&payment) {
            self.refundable.push(payment);
        }
        self.touched.insert(payment);
    }

    fn check_payment_answer(&self, payment: usize, status: u16, expected_status: u16, answer: &Value, context: &str) {
        assert_eq!(status, expected_status, "{context}");
        let p = &self.payments[payment];
        assert_payment(answer, p, &self.lines[p.line].id, context);
    }

    fn captured(&mut self, payment: usize, amount_minor: Option<i64>, status: u16, answer: &Value, context: &str) {
        let p = &mut self.payments[payment];
        assert_eq!(p.status, "authorized", "{context}: the test captured a payment that is not authorized");
        let captured_minor = amount_minor.unwrap_or(p.amount_minor);
        let m = &mut self.lines[p.line].model;
        m.held_minor -= p.amount_minor;
        m.available_minor += p.amount_minor - captured_minor;
        m.receivable_minor += captured_minor;
        p.status = "captured";
        p.captured_minor = captured_minor;
        if amount_minor.is_some() {
            self.stats.captures_partial += 1;
        } else {
            self.stats.captures_full += 1;
        }
        self.relist(payment);
        self.check_payment_answer(payment, status, 200, answer, context);
    }

    fn voided(&mut self, payment: usize, status: u16, answer: &Value, context: &str) {
        let p = &mut self.payments[payment];
        assert_eq!(p.status, "authorized", "{context}: the test voided a payment that is not authorized");
        let m = &mut self.lines[p.line].model;
        m.held_minor -= p.amount_minor;
        m.available_minor += p.amount_minor;
        p.status = "voided";
        self.stats.voids += 1;
        self.relist(payment);
        self.check_payment_answer(payment, status, 200, answer, context);
    }

    /// A refund first reduces what the user owes; the rest is owed back to the user.
    fn refunded(&mut self, payment: usize, amount_minor: i64, status: u16, answer: &Value, context: &str) {
        let p = &mut self.payments[payment];
        let m = &mut self.lines[p.line].model;
        let against_receivable_minor = amount_minor.min(m.receivable_minor);
        m.receivable_minor -= against_receivable_minor;
        m.available_minor += against_receivable_minor;
        m.credit_balance_minor += amount_minor - against_receivable_minor;
        p.refunded_minor += amount_minor;
        p.refunds += 1;
        assert!(p.refunded_minor <= p.captured_minor, "{context}: the test refunded more than was captured");
        p.status = if p.refunded_minor == p.captured_minor { "refunded" } else { "partially_refunded" };
        if p.refunded_minor == p.captured_minor {
            self.stats.refunds_full += 1;
        } else {
            self.stats.refunds_partial += 1;
        }
        self.relist(payment);
        self.check_payment_answer(payment, status, 201, answer, context);
    }

    fn repaid(&mut self, line: usize, amount_minor: i64, status: u16, answer: &Value, context: &str) {
        assert_eq!(status, 201, "{context}");
        assert_eq!(text(answer, "amount"), decimal(amount_minor), "{context}");
        let l = &mut self.lines[line];
        l.model.receivable_minor -= amount_minor;
        l.model.available_minor += amount_minor;
        assert_line(&answer["credit_line"], l, context);
        self.stats.repayments += 1;
    }
}

impl Client {
    /// Sends operations one after another until the server dies under a request, which is
    /// then in flight: it may or may not have happened.
    async fn run_load(mut self, http: reqwest::Client, base: String, cycle: usize) -> Client {
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut next_send = tokio::time::Instant::now();
        while Instant::now() < give_up {
            tokio::time::sleep_until(next_send).await;
            next_send = tokio::time::Instant::now() + MIN_REQUEST_INTERVAL;
            let op = self.next_op();
            let request = self.request(op);
            match post(&http, &base, &request).await {
                Answer::Reply(status, answer) => {
                    let context = format!("cycle {cycle}, client {}", self.index);
                    self.acknowledge(request, status, answer, &context);
                }
                Answer::Lost(_) => {
                    self.in_flight = Some(request);
                    return self;
                }
            }
        }
        panic!("cycle {cycle}: client {} still running a minute after the kill was due", self.index);
    }

    /// Re-sends the request the kill cut off; its answer says what happened.
    async fn resolve_in_flight(mut self, http: reqwest::Client, base: String, cycle: usize) -> Client {
        let Some(request) = self.in_flight.take() else { return self };
        let context = format!("cycle {cycle}, client {}, in-flight request re-sent after the restart", self.index);
        match post(&http, &base, &request).await {
            Answer::Reply(status, answer) => self.acknowledge(request, status, answer, &context),
            Answer::Lost(error) => panic!("{context}: no answer from a live server: {error}"),
        }
        self.stats.in_flight += 1;
        self
    }

    /// Compares the server with the model: every line, the payments touched since the last
    /// verification (or all of them), and re-sent creations that must answer as at first.
    async fn verify(mut self, http: reqwest::Client, base: String, cycle: usize, everything: bool) -> Client {
        let context = format!("after kill {cycle}, client {}", self.index);
        for line in &self.lines {
            assert_line(&get(&http, format!("{base}/v1/credit-lines/{}", line.id), &context).await, line, &context);
        }
        let touched = std::mem::take(&mut self.touched);
        let to_read: Vec<usize> =
            if everything { (0..self.payments.len()).collect() } else { touched.into_iter().collect() };
        for &index in &to_read {
            let p = &self.payments[index];
            let view = get(&http, format!("{base}/v1/payments/{}", p.id), &context).await;
            assert_payment(&view, p, &self.lines[p.line].id, &context);
        }
        self.stats.payment_reads += to_read.len();
        let mut resend = to_read;
        if !everything {
            let n = self.payments.len();
            resend.extend((0..RESENDS_PER_CYCLE.min(n)).map(|_| self.rng.usize(..n)));
        }
        self.stats.resends_verifying += resend.len();
        for index in resend {
            let op = Op::Resend { acked: self.payments[index].created };
            let request = self.request(op);
            match post(&http, &base, &request).await {
                Answer::Reply(status, answer) => self.acknowledge(request, status, answer, &context),
                Answer::Lost(error) => panic!("{context}: no answer from a live server: {error}"),
            }
        }
        self
    }
}

async fn create(http: &reqwest::Client, base: &str, path: &str, key: String, body: Value) -> Value {
    let request = Request { op: Op::Resend { acked: 0 }, path: path.to_owned(), key, body: body.to_string() };
    match post(http, base, &request).await {
        Answer::Reply(201, answer) => answer,
        Answer::Reply(status, answer) => panic!("POST {path} {body}: {status} {answer}"),
        Answer::Lost(error) => panic!("POST {path} {body}: {error}"),
    }
}

/// Two merchants and, for each client, its lines (one user each).
async fn open_accounts(http: &reqwest::Client, base: &str, seed: u64) -> Vec<Client> {
    let mut qr_payloads = Vec::new();
    for (name, mcc) in [("Crash Mart", "5411"), ("Crash Noodles", "5812")] {
        let body = json!({"name": name, "city": "Hangzhou", "country": "CN", "mcc": mcc, "currency": "CNY"});
        let merchant = create(http, base, "/v1/merchants", format!("crash-merchant-{mcc}"), body).await;
        qr_payloads.push(text(&merchant, "qr_payload").to_owned());
    }
    let mut clients = Vec::new();
    for index in 0..CLIENTS {
        let mut line_ids = Vec::new();
        for line in 0..LINES_PER_CLIENT {
            let user_id = format!("crash-user-{index}-{line}");
            let body = json!({"user_id": user_id, "currency": "CNY", "limit": decimal(LINE_LIMIT_MINOR)});
            let created = create(http, base, "/v1/credit-lines", format!("crash-line-{index}-{line}"), body).await;
            line_ids.push(text(&created, "id").to_owned());
        }
        clients.push(Client::new(index, seed, qr_payloads.clone(), line_ids));
    }
    clients
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Client>>) -> Vec<Client> {
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        // A client's failed assertion surfaces here with its message.
        clients.push(task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
    }
    clients
}

/// Runs every client against the server for `load_ms`, then kills it with SIGKILL.
async fn load_until_killed(clients: Vec<Client>, running: &mut Running, load_ms: u64, cycle: usize) -> Vec<Client> {
    let http = http_client();
    let tasks = clients
        .into_iter()
        .map(|client| tokio::spawn(client.run_load(http.clone(), running.base.clone(), cycle)))
        .collect();
    tokio::time::sleep(Duration::from_millis(load_ms)).await;
    running.server.0.kill().expect("SIGKILL");
    running.server.0.wait().expect("reap the killed server");
    join(tasks).await
}

/// The server's count of answers replayed under an idempotency key since it started.
async fn replays(base: &str) -> usize {
    let metrics = http_client().get(format!("{base}/metrics")).send().await.expect("metrics").text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("xiezhi_idempotent_replays_total "))
        .map_or(0, |n| n.trim().parse::<f64>().expect("a counter") as usize)
}

/// After a restart: settle every client's in-flight request, then verify every client.
/// Returns the clients and how many in-flight requests had been committed before the kill.
async fn recover(clients: Vec<Client>, base: &str, cycle: usize, everything: bool) -> (Vec<Client>, usize) {
    let http = http_client();
    // Re-sent acknowledged requests replay whether or not the kill cut them off.
    let resends = clients.iter().filter(|c| matches!(c.in_flight, Some(Request { op: Op::Resend { .. }, .. }))).count();
    let tasks =
        clients.into_iter().map(|c| tokio::spawn(c.resolve_in_flight(http.clone(), base.to_owned(), cycle))).collect();
    let clients = join(tasks).await;
    let replayed = replays(base).await;
    let committed =
        replayed.checked_sub(resends).unwrap_or_else(|| panic!("{replayed} replays for {resends} re-sends"));
    let tasks =
        clients.into_iter().map(|c| tokio::spawn(c.verify(http.clone(), base.to_owned(), cycle, everything))).collect();
    (join(tasks).await, committed)
}

#[derive(Default)]
struct Timings {
    start: Duration,
    load: Duration,
    copy: Duration,
    /// Waiting for a store check that outlasted the restart and the recovery.
    store_check: Duration,
    recover: Duration,
}

fn report(clients: &[Client], committed_in_flight: usize, timings: &Timings, total: Duration) -> Stats {
    let mut stats = Stats::default();
    clients.iter().for_each(|c| stats.add(&c.stats));
    eprintln!(
        "crash test: {CYCLES} kills, {CLIENTS} clients, {} acknowledged writes and {} re-sends in {total:.1?}\n  \
         {stats:?}\n  \
         in flight at a kill: {} ({committed_in_flight} had been committed, the rest ran after the restart)\n  \
         time in server start {:.1?}, load {:.1?}, copying the store {:.1?}, recovery and verification {:.1?}, \
         waiting for store checks {:.1?}",
        stats.writes(),
        stats.resends,
        stats.in_flight,
        timings.start,
        timings.load,
        timings.copy,
        timings.recover,
        timings.store_check,
    );
    stats
}

fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = f();
    *total += started.elapsed();
    value
}

/// The test's temporary directory, kept when the test fails: the store is the evidence.
struct KeptOnFailure(Option<tempfile::TempDir>);

impl Drop for KeptOnFailure {
    fn drop(&mut self) {
        if let (true, Some(dir)) = (std::thread::panicking(), self.0.take()) {
            eprintln!("crash test failed; its data is kept in {}", dir.keep().display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_under_mixed_load_loses_nothing_acknowledged() {
    let seed = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash test: CRASH_SEED={seed}");
    let started = Instant::now();
    let dir = KeptOnFailure(Some(tempfile::tempdir().unwrap()));
    let root = dir.0.as_ref().expect("just made").path().to_owned();
    let (data_dir, rules) = (root.join("data"), root.join("no-rules.json"));
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(&rules, NO_RULES).unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut clients, mut timings, mut committed_in_flight) = (Vec::new(), Timings::default(), 0);
    let mut store_check: Option<StoreCheck> = None;
    for cycle in 0..=CYCLES {
        let mut running = timed(&mut timings.start, || start(&data_dir, &rules));
        let recovery = Instant::now();
        if cycle == 0 {
            clients = open_accounts(&http_client(), &running.base, seed).await;
        } else {
            let (recovered, committed) =
                recover(clients, &running.base, cycle, cycle % FULL_VERIFY_EVERY == 0 || cycle == CYCLES).await;
            (clients, committed_in_flight) = (recovered, committed_in_flight + committed);
        }
        timings.recover += recovery.elapsed();
        // The books as the last kill left them are checked before any new load.
        if let Some(check) = store_check.take() {
            timed(&mut timings.store_check, || check.assert_passed());
        }
        if cycle == CYCLES {
            break;
        }
        let load = Instant::now();
        clients = load_until_killed(clients, &mut running, rng.u64(LOAD_MS), cycle + 1).await;
        timings.load += load.elapsed();
        let copy = root.join(format!("after-kill-{}", cycle + 1));
        store_check = Some(timed(&mut timings.copy, || StoreCheck::spawn(&data_dir, copy, cycle + 1)));
    }
    let stats = report(&clients, committed_in_flight, &timings, started.elapsed());
    assert!(stats.writes() >= 20 * CYCLES, "too little traffic to mean anything: {stats:?}");
    assert!(stats.in_flight >= CYCLES, "too few requests cut off by a kill: {stats:?}");
}
