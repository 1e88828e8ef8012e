//! A model-based concurrent test of the payment service on the real store (SQLite, commits
//! pipelined through a second connection). Sixteen clients each run a seeded random mix of
//! every payment operation: payments with and without an idempotency key (some re-sent at
//! once), full, partial and excessive captures, voids, partial, full and excessive refunds,
//! repayments within and beyond what is owed, reads of payments and lines, captures, voids
//! and refunds of payments in the wrong state, retries of refused requests under their key
//! and replays of stored ones. Every answer is checked against a sequential model of what
//! that client alone must see, so any answer that no sequential order of the acknowledged
//! requests explains (a write missed by a later request, one key making two payments, a
//! refund beyond the captured amount, a wrong balance) is an anomaly.
//!
//! Each client owns two credit lines, whose balances it predicts exactly, and shares a third
//! with three other clients: there it predicts its own payments exactly, accepts either
//! answer where the others' spending decides (an approval, a repayment), and the line's
//! balances are checked against all acknowledged operations once the clients are done.
//! Then the service restarts on the same directory and every payment, line and a sample of
//! idempotency keys are checked again, against the model and against the replayed journal.
//!
//! A client's requests follow from its seed (printed with every anomaly; set
//! `XIEZHI_MODEL_SEED` to run another base seed). Where the other clients decide an answer on
//! a shared line, the rest of the client's sequence follows that answer, so a replay with the
//! same seed meets the same sequence only as far as the interleaving repeats.

mod common;

use common::*;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use xiezhi_core::*;
use xiezhi_ledger::{Hold, HoldStatus, Ledger, PlatformAccount};
use xiezhi_money::{parse_minor, Currency, Sign};
use xiezhi_store::{Store, StoreError};
use xiezhi_store_sqlite::SqliteStore;

const CLIENTS: usize = 16;
/// Requests each client sends (re-sends, retries and replays included).
const REQUESTS_PER_CLIENT: u64 = 6_400;
const MIN_TOTAL_REQUESTS: u64 = 100_000;
const BASE_SEED: u64 = 0x7869_657a_6869;
const OWN_LINES_PER_CLIENT: usize = 2;
/// Client `c` shares line `c % SHARED_LINES`: four clients on each.
const SHARED_LINES: usize = 4;
const OWN_LIMIT_MINOR: i64 = 300_000;
/// Small enough that four clients spending on it run into its limit now and then.
const SHARED_LIMIT_MINOR: i64 = 150_000;
const MERCHANTS: usize = 3;
const MAX_PAYMENT_MINOR: i64 = 20_000;
/// Most requests pick among a client's latest payments, where the unsettled ones are.
const RECENT_PAYMENTS: usize = 48;
/// Requests shown before an anomaly, to replay the sequence by hand.
const RECENT_REQUESTS_SHOWN: usize = 12;
const KEY_REPLAYS_AFTER_RESTART: usize = 64;
/// Every kind of answer the mix must have produced at least once, so a change that stops a
/// path from being exercised fails here instead of passing vacuously.
const EXPECTED_OUTCOMES: &[&str] = &[
    "approved",
    "declined on an owned line",
    "declined on a shared line",
    "re-sent create",
    "capture full",
    "capture partial",
    "capture over",
    "void",
    "refund partial",
    "refund rest",
    "refund over",
    "wrong state",
    "repay",
    "repay over",
    "retry accepted",
    "retry refused again",
    "replay",
    "key reused",
    "read payment",
    "read line",
];

fn cny() -> Currency {
    Currency::from_alpha("CNY").expect("CNY")
}

/// Minor units as the API writes them ("12.34"), formatted here rather than by the service.
fn text_of(amount_minor: i64) -> String {
    let sign = if amount_minor < 0 { "-" } else { "" };
    let magnitude = amount_minor.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

fn minor_of(text: &str) -> Result<i64, String> {
    parse_minor(text, cny(), Sign::Any).map_err(|e| format!("`{text}` is not an amount: {e}"))
}

/// One payment as its client knows it.
#[derive(Debug, Clone, PartialEq)]
struct PaymentModel {
    id: String,
    /// Index of its line in the client's `lines`.
    line: usize,
    merchant_id: String,
    amount_minor: i64,
    status: PaymentStatus,
    captured_minor: i64,
    refunds_minor: Vec<i64>,
}

impl PaymentModel {
    fn refunded_minor(&self) -> i64 {
        self.refunds_minor.iter().sum()
    }
    fn refundable_minor(&self) -> i64 {
        self.captured_minor - self.refunded_minor()
    }
    fn is_captured(&self) -> bool {
        matches!(self.status, PaymentStatus::Captured | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded)
    }
}

/// The fields of a payment the model predicts, as a client reads them.
#[derive(Debug, PartialEq)]
struct PaymentSeen {
    id: String,
    status: PaymentStatus,
    credit_line_id: String,
    merchant_id: String,
    currency: String,
    amount: String,
    fee: String,
    captured: String,
    refunded: String,
    refunds: Vec<String>,
    outcome: Outcome,
    reason_codes: Vec<String>,
}

impl PaymentSeen {
    fn of_view(view: &PaymentView) -> PaymentSeen {
        PaymentSeen {
            id: view.id.clone(),
            status: view.status,
            credit_line_id: view.credit_line_id.clone(),
            merchant_id: view.merchant_id.clone(),
            currency: view.currency.clone(),
            amount: view.amount.clone(),
            fee: view.fee.clone(),
            captured: view.captured_amount.clone(),
            refunded: view.refunded_amount.clone(),
            refunds: view.refunds.iter().map(|r| r.amount.clone()).collect(),
            outcome: view.decision.outcome,
            reason_codes: view.decision.reason_codes.clone(),
        }
    }

    fn of_model(payment: &PaymentModel, line_id: &str) -> PaymentSeen {
        let declined = payment.status == PaymentStatus::Declined;
        PaymentSeen {
            id: payment.id.clone(),
            status: payment.status,
            credit_line_id: line_id.to_owned(),
            merchant_id: payment.merchant_id.clone(),
            currency: "CNY".into(),
            amount: text_of(payment.amount_minor),
            fee: text_of(0),
            captured: text_of(payment.captured_minor),
            refunded: text_of(payment.refunded_minor()),
            refunds: payment.refunds_minor.iter().map(|r| text_of(*r)).collect(),
            outcome: if declined { Outcome::Decline } else { Outcome::Approve },
            // The policy and the empty rule set leave the credit line the only reason.
            reason_codes: if declined { vec!["insufficient_credit".into()] } else { vec![] },
        }
    }
}

fn payment_problem(view: &PaymentView, payment: &PaymentModel, line_id: &str) -> Option<String> {
    let (seen, want) = (PaymentSeen::of_view(view), PaymentSeen::of_model(payment, line_id));
    (seen != want).then(|| format!("payment {} reads\n      {seen:?}\n    the model says\n      {want:?}", payment.id))
}

/// One credit line as one client knows it. On a line the client owns every balance is
/// exact. On a shared line only the limit and the client's own part are known: `held_minor`
/// is then what this client's payments hold, and the exact balances go unused.
#[derive(Debug, Clone)]
struct LineModel {
    id: String,
    shared: bool,
    limit_minor: i64,
    available_minor: i64,
    held_minor: i64,
    receivable_minor: i64,
    credit_balance_minor: i64,
    /// This client's acknowledged totals, summed over clients for a shared line's check.
    captured_minor: i64,
    refunded_minor: i64,
    repaid_minor: i64,
    /// Highest credit balance this client has read: no operation lowers it, so a later read
    /// showing less saw an older state of the line.
    credit_balance_seen_minor: i64,
}

impl LineModel {
    fn new(id: String, shared: bool, limit_minor: i64) -> LineModel {
        LineModel {
            id,
            shared,
            limit_minor,
            available_minor: limit_minor,
            held_minor: 0,
            receivable_minor: 0,
            credit_balance_minor: 0,
            captured_minor: 0,
            refunded_minor: 0,
            repaid_minor: 0,
            credit_balance_seen_minor: 0,
        }
    }

    fn authorize(&mut self, amount_minor: i64) {
        self.available_minor -= amount_minor;
        self.held_minor += amount_minor;
    }

    fn capture(&mut self, authorized_minor: i64, captured_minor: i64) {
        self.held_minor -= authorized_minor;
        self.available_minor += authorized_minor - captured_minor;
        self.receivable_minor += captured_minor;
        self.captured_minor += captured_minor;
    }

    fn void(&mut self, authorized_minor: i64) {
        self.held_minor -= authorized_minor;
        self.available_minor += authorized_minor;
    }

    /// What the user still owes is reduced first; the rest is owed back to the user.
    fn refund(&mut self, amount_minor: i64) {
        let owed_minor = amount_minor.min(self.receivable_minor);
        self.receivable_minor -= owed_minor;
        self.available_minor += owed_minor;
        self.credit_balance_minor += amount_minor - owed_minor;
        self.refunded_minor += amount_minor;
    }

    fn repay(&mut self, amount_minor: i64) {
        self.receivable_minor -= amount_minor;
        self.available_minor += amount_minor;
        self.repaid_minor += amount_minor;
    }
}

/// The balances of a line as a client reads them.
#[derive(Debug, PartialEq)]
struct LineSeen {
    id: String,
    currency: String,
    limit: String,
    available: String,
    held: String,
    receivable: String,
    credit_balance: String,
    restricted: bool,
}

impl LineSeen {
    fn of_view(view: &CreditLineView) -> LineSeen {
        LineSeen {
            id: view.id.clone(),
            currency: view.currency.clone(),
            limit: view.limit.clone(),
            available: view.available.clone(),
            held: view.held.clone(),
            receivable: view.receivable.clone(),
            credit_balance: view.credit_balance.clone(),
            restricted: view.restriction.is_some(),
        }
    }

    fn of_model(line: &LineModel) -> LineSeen {
        LineSeen {
            id: line.id.clone(),
            currency: "CNY".into(),
            limit: text_of(line.limit_minor),
            available: text_of(line.available_minor),
            held: text_of(line.held_minor),
            receivable: text_of(line.receivable_minor),
            credit_balance: text_of(line.credit_balance_minor),
            restricted: false,
        }
    }
}

fn owned_line_problem(view: &CreditLineView, line: &LineModel) -> Result<(), String> {
    let (seen, want) = (LineSeen::of_view(view), LineSeen::of_model(line));
    if seen == want {
        return Ok(());
    }
    Err(format!("owned line {} reads\n      {seen:?}\n    the model says\n      {want:?}", line.id))
}

/// What one client can check of a shared line it reads: the books hold, available is not
/// negative, its own holds are in `held`, and the credit balance has not gone back. Returns
/// the credit balance read.
fn shared_line_problem(view: &CreditLineView, line: &LineModel) -> Result<i64, String> {
    let [limit, available, held, receivable, credit] =
        [&view.limit, &view.available, &view.held, &view.receivable, &view.credit_balance].map(|t| minor_of(t));
    let (limit, available, held, receivable, credit) = (limit?, available?, held?, receivable?, credit?);
    let checks = [
        (limit == line.limit_minor, "its limit changed"),
        (available >= 0, "available is negative"),
        (receivable >= 0 && credit >= 0, "a money balance is negative"),
        (available + held + receivable == limit, "available + held + drawn is not the limit"),
        (held >= line.held_minor, "held is less than this client's own acknowledged holds"),
        (credit >= line.credit_balance_seen_minor, "its credit balance went down since this client read it"),
    ];
    match checks.iter().find(|(holds, _)| !holds) {
        None => Ok(credit),
        Some((_, what)) => Err(format!(
            "shared line {}: {what}: {view:?}; this client holds {} on it and last read a credit balance of {}",
            line.id,
            text_of(line.held_minor),
            text_of(line.credit_balance_seen_minor)
        )),
    }
}

/// A request on an existing payment or line, by index into the client's model.
#[derive(Debug, Clone)]
enum Request {
    Capture { payment: usize, amount_minor: Option<i64> },
    Void { payment: usize },
    Refund { payment: usize, amount_minor: i64 },
    Repay { line: usize, amount_minor: i64 },
}

/// What the model predicts for a request on a payment.
#[derive(Debug)]
enum Expected {
    /// Accepted: the payment as it must stand afterwards.
    Payment(PaymentModel),
    Refused(CoreError),
}

/// Refusals are compared exactly, except that a wrong-state refusal is compared by the
/// state it names (its message is prose).
fn same_refusal(expected: &CoreError, got: &CoreError) -> bool {
    match (expected, got) {
        (CoreError::InvalidPaymentState { status: a, .. }, CoreError::InvalidPaymentState { status: b, .. }) => a == b,
        _ => expected == got,
    }
}

fn wrong_state(payment: &PaymentModel) -> Expected {
    Expected::Refused(CoreError::InvalidPaymentState { status: payment.status.as_str().into(), message: String::new() })
}

fn expect_capture(payment: &PaymentModel, amount_minor: Option<i64>) -> Expected {
    if payment.status != PaymentStatus::Authorized {
        return wrong_state(payment);
    }
    let captured_minor = amount_minor.unwrap_or(payment.amount_minor);
    if captured_minor > payment.amount_minor {
        return Expected::Refused(CoreError::CaptureExceedsAuthorized {
            requested: text_of(captured_minor),
            authorized: text_of(payment.amount_minor),
        });
    }
    Expected::Payment(PaymentModel { status: PaymentStatus::Captured, captured_minor, ..payment.clone() })
}

fn expect_void(payment: &PaymentModel) -> Expected {
    if payment.status != PaymentStatus::Authorized {
        return wrong_state(payment);
    }
    Expected::Payment(PaymentModel { status: PaymentStatus::Voided, ..payment.clone() })
}

fn expect_refund(payment: &PaymentModel, amount_minor: i64) -> Expected {
    if !payment.is_captured() || payment.refunds_minor.len() >= MAX_REFUNDS_PER_PAYMENT {
        return wrong_state(payment);
    }
    if amount_minor > payment.refundable_minor() {
        return Expected::Refused(CoreError::RefundExceedsCaptured {
            requested: text_of(amount_minor),
            refundable: text_of(payment.refundable_minor()),
        });
    }
    let mut next = payment.clone();
    next.refunds_minor.push(amount_minor);
    next.status = if next.refundable_minor() == 0 { PaymentStatus::Refunded } else { PaymentStatus::PartiallyRefunded };
    Expected::Payment(next)
}

fn success_label(request: &Request, next: &PaymentModel) -> &'static str {
    match request {
        Request::Capture { .. } if next.captured_minor == next.amount_minor => "capture full",
        Request::Capture { .. } => "capture partial",
        Request::Void { .. } => "void",
        Request::Refund { .. } if next.refundable_minor() == 0 => "refund rest",
        Request::Refund { .. } => "refund partial",
        Request::Repay { .. } => "repay",
    }
}

fn refusal_label(error: &CoreError) -> &'static str {
    match error {
        CoreError::CaptureExceedsAuthorized { .. } => "capture over",
        CoreError::RefundExceedsCaptured { .. } => "refund over",
        CoreError::InvalidPaymentState { .. } => "wrong state",
        CoreError::RepaymentExceedsBalance { .. } => "repay over",
        _ => "other refusal",
    }
}

/// A request whose success was stored under its key, with the answer a replay must repeat.
struct StoredKey {
    key: IdempotencyKey,
    command: Command,
    reply: Reply,
}

/// A refused request sent with a key: nothing may be stored, so its retry runs again.
struct RefusedKey {
    key: IdempotencyKey,
    request: Request,
}

struct Fixture {
    merchants: Vec<MerchantView>,
    own_lines: Vec<Vec<String>>,
    shared_lines: Vec<String>,
}

fn open_fixture(service: &Service) -> Fixture {
    let merchants = (0..MERCHANTS).map(|m| merchant(service, &format!("Shop {m}"))).collect();
    let own_limit = text_of(OWN_LIMIT_MINOR);
    let own_lines = (0..CLIENTS)
        .map(|c| {
            (0..OWN_LINES_PER_CLIENT).map(|i| line_for(service, &format!("owner-{c}-{i}"), &own_limit).id).collect()
        })
        .collect();
    let shared_limit = text_of(SHARED_LIMIT_MINOR);
    let shared_lines = (0..SHARED_LINES).map(|s| line_for(service, &format!("shared-{s}"), &shared_limit).id).collect();
    Fixture { merchants, own_lines, shared_lines }
}

/// What a client leaves behind: its model, for the checks after all clients are done.
struct ClientReport {
    client: usize,
    seed: u64,
    requests: u64,
    lines: Vec<LineModel>,
    payments: Vec<PaymentModel>,
    stored: Vec<StoredKey>,
    outcomes: BTreeMap<&'static str, u64>,
    anomaly: Option<String>,
}

struct Client<'a> {
    service: &'a Service,
    merchants: &'a [MerchantView],
    client: usize,
    seed: u64,
    rng: fastrand::Rng,
    lines: Vec<LineModel>,
    payments: Vec<PaymentModel>,
    stored: Vec<StoredKey>,
    refused: Vec<RefusedKey>,
    keys_issued: u64,
    requests: u64,
    recent: VecDeque<String>,
    outcomes: BTreeMap<&'static str, u64>,
    /// The first answer the model cannot explain; the client stops there, since its model
    /// no longer follows the service.
    anomaly: Option<String>,
}

impl<'a> Client<'a> {
    fn new(service: &'a Service, fixture: &'a Fixture, client: usize, seed: u64) -> Client<'a> {
        let mut lines: Vec<LineModel> =
            fixture.own_lines[client].iter().map(|id| LineModel::new(id.clone(), false, OWN_LIMIT_MINOR)).collect();
        let shared = fixture.shared_lines[client % SHARED_LINES].clone();
        lines.push(LineModel::new(shared, true, SHARED_LIMIT_MINOR));
        Client {
            service,
            merchants: &fixture.merchants,
            client,
            seed,
            rng: fastrand::Rng::with_seed(seed),
            lines,
            payments: vec![],
            stored: vec![],
            refused: vec![],
            keys_issued: 0,
            requests: 0,
            recent: VecDeque::new(),
            outcomes: BTreeMap::new(),
            anomaly: None,
        }
    }

    fn run(mut self) -> ClientReport {
        while self.requests < REQUESTS_PER_CLIENT && self.anomaly.is_none() {
            self.step();
        }
        ClientReport {
            client: self.client,
            seed: self.seed,
            requests: self.requests,
            lines: self.lines,
            payments: self.payments,
            stored: self.stored,
            outcomes: self.outcomes,
            anomaly: self.anomaly,
        }
    }

    fn step(&mut self) {
        let request = match self.rng.u32(0..100) {
            0..=19 => return self.create_payment(),
            20..=31 => self.capture_request(),
            32..=36 => self.void_request(),
            37..=50 => self.refund_request(),
            51..=58 => Some(self.repay_request()),
            59..=66 => return self.read_payment(),
            67..=72 => return self.read_line(),
            73..=81 => self.wrong_state_request(),
            82..=90 => return self.retry_refused(),
            _ => return self.replay_stored(),
        };
        match request {
            Some(request) => {
                let key = (self.rng.u32(0..5) < 2).then(|| self.new_key(&request));
                self.perform(request, key);
            }
            // No payment in the state the request needs yet.
            None => self.create_payment(),
        }
    }

    fn count(&mut self, outcome: &'static str) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    fn new_key(&mut self, request: &Request) -> IdempotencyKey {
        self.keys_issued += 1;
        // The fingerprint stands for the request's content, as the server's hash of the body.
        IdempotencyKey { key: format!("c{}-k{}", self.client, self.keys_issued), fingerprint: format!("{request:?}") }
    }

    fn send(&mut self, what: String, command: Command, key: Option<&IdempotencyKey>) -> Result<Reply, CoreError> {
        self.requests += 1;
        if self.recent.len() == RECENT_REQUESTS_SHOWN {
            self.recent.pop_front();
        }
        let key_text = key.map(|k| format!(" [key {}]", k.key)).unwrap_or_default();
        self.recent.push_back(format!("#{} {what}{key_text}", self.requests));
        self.service.execute_blocking(command, key.cloned())
    }

    fn anomaly(&mut self, detail: String) {
        if self.anomaly.is_some() {
            return;
        }
        let recent: Vec<&str> = self.recent.iter().map(String::as_str).collect();
        self.anomaly = Some(format!(
            "client {} (seed {}) at request #{}: {detail}\n  its last requests, oldest first:\n    {}",
            self.client,
            self.seed,
            self.requests,
            recent.join("\n    ")
        ));
    }

    /// A payment matching `wanted`: mostly among the latest, where the unsettled ones are,
    /// sometimes anywhere (old payments are read from the store, settled holds rebuilt from
    /// the journal).
    fn pick_payment(&mut self, wanted: impl Fn(&PaymentModel) -> bool) -> Option<usize> {
        let count = self.payments.len();
        for attempt in 0..24 {
            let from = if attempt % 4 == 3 { 0 } else { count.saturating_sub(RECENT_PAYMENTS) };
            let index = self.rng.usize(from..count.max(from + 1));
            if self.payments.get(index).is_some_and(&wanted) {
                return Some(index);
            }
        }
        None
    }
}

/// Creating payments.
impl Client<'_> {
    fn create_payment(&mut self) {
        let line = if self.rng.u32(0..4) == 0 { OWN_LINES_PER_CLIENT } else { self.rng.usize(..OWN_LINES_PER_CLIENT) };
        let amount_minor = self.payment_amount(line);
        let shop = &self.merchants[self.rng.usize(..self.merchants.len())];
        let (merchant_id, qr_payload) = (shop.id.clone(), shop.qr_payload.clone());
        let request = NewPayment {
            credit_line_id: self.lines[line].id.clone(),
            qr_payload,
            amount: Some(text_of(amount_minor)),
            tip: None,
            context: PaymentContext {
                device_id: Some(format!("device-{}", self.client)),
                ip: Some(format!("10.1.{}.7", self.client)),
                ..Default::default()
            },
        };
        let command = match self.service.prepare_payment(request) {
            Ok(command) => command,
            Err(error) => return self.anomaly(format!("our merchant's QR code was refused: {error:?}")),
        };
        let key = self.rng.bool().then(|| {
            self.keys_issued += 1;
            let key = format!("c{}-k{}", self.client, self.keys_issued);
            IdempotencyKey { fingerprint: format!("create {key}"), key }
        });
        let what = format!("create {} on line {} at {merchant_id}", text_of(amount_minor), self.lines[line].id);
        let reply = self.send(what, command.clone(), key.as_ref());
        let Some(payment) = self.accept_created(line, merchant_id, amount_minor, &reply) else { return };
        if let (Some(key), Ok(reply)) = (key, reply) {
            self.resend_create(&key, &command, &reply);
            self.stored.push(StoredKey { key, command, reply });
        }
        if payment.status == PaymentStatus::Authorized {
            self.lines[line].authorize(amount_minor);
        }
        self.payments.push(payment);
    }

    /// Mostly ordinary amounts; on an owned line sometimes exactly what is left and one cent
    /// more, the boundaries of the credit check.
    fn payment_amount(&mut self, line: usize) -> i64 {
        let (shared, available_minor) = (self.lines[line].shared, self.lines[line].available_minor);
        match self.rng.u32(0..40) {
            0 if !shared && available_minor > 0 => available_minor,
            1 if !shared => available_minor + 1,
            _ => self.rng.i64(1..=MAX_PAYMENT_MINOR),
        }
    }

    fn accept_created(
        &mut self,
        line: usize,
        merchant_id: String,
        amount_minor: i64,
        reply: &Result<Reply, CoreError>,
    ) -> Option<PaymentModel> {
        let Ok(Reply::Payment(view)) = reply else {
            self.anomaly(format!("creating a payment answered {reply:?}"));
            return None;
        };
        let approved = view.status == PaymentStatus::Authorized;
        if let Err(problem) = self.check_decision(line, amount_minor, view) {
            self.anomaly(problem);
            return None;
        }
        let status = if approved { PaymentStatus::Authorized } else { PaymentStatus::Declined };
        let payment = PaymentModel {
            id: view.id.clone(),
            line,
            merchant_id,
            amount_minor,
            status,
            captured_minor: 0,
            refunds_minor: vec![],
        };
        if let Some(problem) = payment_problem(view, &payment, &self.lines[line].id) {
            self.anomaly(problem);
            return None;
        }
        self.count(match (approved, self.lines[line].shared) {
            (true, _) => "approved",
            (false, false) => "declined on an owned line",
            (false, true) => "declined on a shared line",
        });
        Some(payment)
    }

    /// On an owned line a payment is approved exactly when it fits in what is available. On
    /// a shared line the others decide, but an approval can never exceed what the limit
    /// leaves after this client's own holds.
    fn check_decision(&self, line: usize, amount_minor: i64, view: &PaymentView) -> Result<(), String> {
        let line = &self.lines[line];
        let approved = view.status == PaymentStatus::Authorized;
        let fits = if line.shared {
            !approved || amount_minor <= line.limit_minor - line.held_minor
        } else {
            approved == (amount_minor <= line.available_minor)
        };
        if fits {
            return Ok(());
        }
        Err(format!(
            "a payment of {} on line {} (shared: {}; model: {} available, {} held by this client) was {} for {:?}",
            text_of(amount_minor),
            line.id,
            line.shared,
            text_of(line.available_minor),
            text_of(line.held_minor),
            view.status.as_str(),
            view.decision.reason_codes
        ))
    }

    /// The same create under the same key at once: the same payment, not a second one.
    fn resend_create(&mut self, key: &IdempotencyKey, command: &Command, first: &Reply) {
        if self.rng.bool() {
            return;
        }
        let again = self.send("re-send the same create".into(), command.clone(), Some(key));
        if again.as_ref() != Ok(first) {
            return self.anomaly(format!(
                "re-sending a create under its key answered {again:?}; the first answer was {first:?}"
            ));
        }
        self.count("re-sent create");
    }
}

/// Requests on existing payments and lines.
impl Client<'_> {
    fn capture_request(&mut self) -> Option<Request> {
        let payment = self.pick_payment(|p| p.status == PaymentStatus::Authorized)?;
        let authorized_minor = self.payments[payment].amount_minor;
        let amount_minor = match self.rng.u32(0..20) {
            0..=9 => None,
            10..=16 => Some(self.rng.i64(1..=authorized_minor)),
            _ => Some(authorized_minor + self.rng.i64(1..=1_000)),
        };
        Some(Request::Capture { payment, amount_minor })
    }

    fn void_request(&mut self) -> Option<Request> {
        let payment = self.pick_payment(|p| p.status == PaymentStatus::Authorized)?;
        Some(Request::Void { payment })
    }

    /// Partial refunds, the whole rest, and more than the rest (refused, naming the rest).
    fn refund_request(&mut self) -> Option<Request> {
        let payment = self.pick_payment(PaymentModel::is_captured)?;
        let refundable_minor = self.payments[payment].refundable_minor();
        let amount_minor = match self.rng.u32(0..10) {
            0..=3 if refundable_minor > 0 => self.rng.i64(1..=refundable_minor),
            4..=6 if refundable_minor > 0 => refundable_minor,
            _ => refundable_minor + self.rng.i64(1..=500),
        };
        Some(Request::Refund { payment, amount_minor })
    }

    /// On an owned line part of what is owed, all of it, or more (refused); on a shared line
    /// an ordinary amount, which fits or not depending on the others.
    fn repay_request(&mut self) -> Request {
        let line = self.rng.usize(..self.lines.len());
        let owed_minor = self.lines[line].receivable_minor;
        let amount_minor = match self.rng.u32(0..10) {
            _ if self.lines[line].shared => self.rng.i64(1..=MAX_PAYMENT_MINOR),
            0..=3 if owed_minor > 0 => self.rng.i64(1..=owed_minor),
            4..=6 if owed_minor > 0 => owed_minor,
            _ => owed_minor + self.rng.i64(1..=1_000),
        };
        Request::Repay { line, amount_minor }
    }

    /// Capture or void of a payment that is not authorized; refund of one not captured.
    fn wrong_state_request(&mut self) -> Option<Request> {
        if self.rng.bool() {
            let payment = self.pick_payment(|p| p.status != PaymentStatus::Authorized)?;
            return Some(if self.rng.bool() {
                Request::Capture { payment, amount_minor: None }
            } else {
                Request::Void { payment }
            });
        }
        let payment = self.pick_payment(|p| !p.is_captured())?;
        let amount_minor = self.rng.i64(1..=self.payments[payment].amount_minor);
        Some(Request::Refund { payment, amount_minor })
    }

    fn random_request(&mut self) -> Option<Request> {
        match self.rng.u32(0..4) {
            0 => self.capture_request(),
            1 => self.void_request(),
            2 => self.refund_request(),
            _ => Some(self.repay_request()),
        }
    }

    fn command(&self, request: &Request) -> Command {
        let id = |index: usize| self.payments[index].id.clone();
        match *request {
            Request::Capture { payment, amount_minor } => {
                Command::Capture { payment_id: id(payment), amount: amount_minor.map(text_of) }
            }
            Request::Void { payment } => Command::Void { payment_id: id(payment) },
            Request::Refund { payment, amount_minor } => {
                Command::Refund { payment_id: id(payment), amount: text_of(amount_minor) }
            }
            Request::Repay { line, amount_minor } => {
                Command::Repay { credit_line_id: self.lines[line].id.clone(), amount: text_of(amount_minor) }
            }
        }
    }

    fn describe(&self, request: &Request) -> String {
        let payment = |index: usize| {
            let p = &self.payments[index];
            format!(
                "{} ({}, {} captured of {}, {} refunded)",
                p.id,
                p.status.as_str(),
                text_of(p.captured_minor),
                text_of(p.amount_minor),
                text_of(p.refunded_minor())
            )
        };
        match *request {
            Request::Capture { payment: p, amount_minor } => {
                format!("capture {} of {}", amount_minor.map_or("all".into(), text_of), payment(p))
            }
            Request::Void { payment: p } => format!("void {}", payment(p)),
            Request::Refund { payment: p, amount_minor } => {
                format!("refund {} of {}", text_of(amount_minor), payment(p))
            }
            Request::Repay { line, amount_minor } => {
                format!("repay {} on {}", text_of(amount_minor), self.lines[line].id)
            }
        }
    }
}

/// Sending a request and judging the answer against the model.
impl Client<'_> {
    /// Sends `request`, checks the answer and keeps the key's fate. Returns whether the
    /// request was accepted (meaningful only while no anomaly was found).
    fn perform(&mut self, request: Request, key: Option<IdempotencyKey>) -> bool {
        let command = self.command(&request);
        let what = self.describe(&request);
        let reply = self.send(what, command.clone(), key.as_ref());
        // The model changes only once an answer is judged, so it still stands before the request.
        let judged = match request {
            Request::Capture { payment, amount_minor } => {
                self.judge(&request, expect_capture(&self.payments[payment], amount_minor), &reply)
            }
            Request::Void { payment } => self.judge(&request, expect_void(&self.payments[payment]), &reply),
            Request::Refund { payment, amount_minor } => {
                self.judge(&request, expect_refund(&self.payments[payment], amount_minor), &reply)
            }
            Request::Repay { line, amount_minor } => self.judge_repayment(line, amount_minor, &reply),
        };
        if let Err(problem) = judged {
            self.anomaly(problem);
            return false;
        }
        let accepted = reply.is_ok();
        match (key, reply) {
            (Some(key), Ok(reply)) => self.stored.push(StoredKey { key, command, reply }),
            (Some(key), Err(_)) => self.refused.push(RefusedKey { key, request }),
            (None, _) => {}
        }
        accepted
    }

    fn judge(&mut self, request: &Request, expected: Expected, reply: &Result<Reply, CoreError>) -> Result<(), String> {
        match (expected, reply) {
            (Expected::Payment(next), Ok(Reply::Payment(view))) => {
                if let Some(problem) = payment_problem(view, &next, &self.lines[next.line].id) {
                    return Err(problem);
                }
                self.count(success_label(request, &next));
                self.apply(request, next);
                Ok(())
            }
            (Expected::Refused(want), Err(got)) if same_refusal(&want, got) => {
                self.count(refusal_label(got));
                Ok(())
            }
            (expected, got) => Err(format!("the model expected {expected:?}; the service answered {got:?}")),
        }
    }

    /// Records an accepted request on a payment in the model of the payment and its line.
    fn apply(&mut self, request: &Request, next: PaymentModel) {
        let line = next.line;
        let (Request::Capture { payment, .. } | Request::Void { payment } | Request::Refund { payment, .. }) = *request
        else {
            return; // Repayments are recorded by `judge_repayment`.
        };
        let before = std::mem::replace(&mut self.payments[payment], next);
        let (after, line) = (&self.payments[payment], &mut self.lines[line]);
        match request {
            Request::Capture { .. } => line.capture(before.amount_minor, after.captured_minor),
            Request::Void { .. } => line.void(before.amount_minor),
            Request::Refund { amount_minor, .. } => line.refund(*amount_minor),
            Request::Repay { .. } => {}
        }
    }

    /// On an owned line the answer and the balances after it are exact. On a shared line a
    /// repayment fits or not depending on the others: accepted, the line must still hold
    /// together; refused, what it names as outstanding must be less than the amount.
    fn judge_repayment(
        &mut self,
        line: usize,
        amount_minor: i64,
        reply: &Result<Reply, CoreError>,
    ) -> Result<(), String> {
        let model = &self.lines[line];
        match reply {
            Ok(Reply::Repayment(view)) if view.amount == text_of(amount_minor) => {
                if model.shared {
                    let credit_balance_minor = shared_line_problem(&view.credit_line, model)?;
                    self.lines[line].credit_balance_seen_minor = credit_balance_minor;
                } else {
                    let mut next = model.clone();
                    next.repay(amount_minor);
                    owned_line_problem(&view.credit_line, &next)?;
                }
                self.lines[line].repay(amount_minor);
                self.count("repay");
                Ok(())
            }
            Err(CoreError::RepaymentExceedsBalance { requested, outstanding })
                if *requested == text_of(amount_minor) =>
            {
                let outstanding_minor = minor_of(outstanding)?;
                let explained = if model.shared {
                    (0..amount_minor).contains(&outstanding_minor)
                } else {
                    outstanding_minor == model.receivable_minor && amount_minor > outstanding_minor
                };
                if !explained {
                    return Err(format!(
                        "repaying {} on {} was refused: {reply:?}; the model owes {}",
                        text_of(amount_minor),
                        model.id,
                        text_of(model.receivable_minor)
                    ));
                }
                self.count("repay over");
                Ok(())
            }
            other => Err(format!("repaying {} on {} answered {other:?}", text_of(amount_minor), model.id)),
        }
    }
}

/// Reads, retries and replays.
impl Client<'_> {
    fn read_payment(&mut self) {
        let Some(index) = self.pick_payment(|_| true) else { return self.create_payment() };
        let id = self.payments[index].id.clone();
        let reply = self.send(format!("get {id}"), Command::GetPayment { id }, None);
        let payment = &self.payments[index];
        let problem = match &reply {
            Ok(Reply::Payment(view)) => payment_problem(view, payment, &self.lines[payment.line].id),
            other => Some(format!("reading {} answered {other:?}", payment.id)),
        };
        match problem {
            Some(problem) => self.anomaly(problem),
            None => self.count("read payment"),
        }
    }

    fn read_line(&mut self) {
        let index = self.rng.usize(..self.lines.len());
        let id = self.lines[index].id.clone();
        let reply = self.send(format!("get line {id}"), Command::GetCreditLine { id }, None);
        let line = &self.lines[index];
        let checked = match &reply {
            Ok(Reply::CreditLine(view)) if line.shared => shared_line_problem(view, line).map(Some),
            Ok(Reply::CreditLine(view)) => owned_line_problem(view, line).map(|()| None),
            other => Err(format!("reading line {} answered {other:?}", line.id)),
        };
        match checked {
            Err(problem) => self.anomaly(problem),
            Ok(credit_balance_minor) => {
                if let Some(credit_balance_minor) = credit_balance_minor {
                    self.lines[index].credit_balance_seen_minor = credit_balance_minor;
                }
                self.count("read line");
            }
        }
    }

    /// A refused request again under its key: nothing was stored, so it runs again and the
    /// model decides it afresh. Sometimes the key comes with another request altogether,
    /// which must run as well, since a refusal binds the key to nothing.
    fn retry_refused(&mut self) {
        if self.refused.is_empty() {
            return self.create_payment();
        }
        let RefusedKey { mut key, mut request } = self.refused.swap_remove(self.rng.usize(..self.refused.len()));
        if self.rng.u32(0..4) == 0 {
            if let Some(other) = self.random_request() {
                key.fingerprint = format!("{other:?}");
                request = other;
            }
        }
        let accepted = self.perform(request, Some(key));
        if self.anomaly.is_none() {
            self.count(if accepted { "retry accepted" } else { "retry refused again" });
        }
    }

    /// A stored key replays its first answer exactly and changes nothing; with another
    /// request's fingerprint it is refused.
    fn replay_stored(&mut self) {
        if self.stored.is_empty() {
            return self.create_payment();
        }
        let entry = &self.stored[self.rng.usize(..self.stored.len())];
        let (mut key, command, first) = (entry.key.clone(), entry.command.clone(), entry.reply.clone());
        if self.rng.u32(0..5) == 0 {
            key.fingerprint.push_str(" and something else");
            let got = self.send(format!("reuse key {} for another request", key.key), command, Some(&key));
            if got != Err(CoreError::IdempotencyKeyReused { key: key.key.clone() }) {
                return self.anomaly(format!("reusing key {} for another request answered {got:?}", key.key));
            }
            return self.count("key reused");
        }
        let got = self.send(format!("replay key {}", key.key), command, Some(&key));
        if got.as_ref() != Ok(&first) {
            return self.anomaly(format!("replaying key {} answered {got:?}; it first answered {first:?}", key.key));
        }
        self.count("replay");
    }
}

fn base_seed() -> u64 {
    std::env::var("XIEZHI_MODEL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(BASE_SEED)
}

fn run_clients(service: &Service, fixture: &Fixture) -> Vec<ClientReport> {
    let base = base_seed();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let seed = base.wrapping_add(client as u64);
                (client, seed, scope.spawn(move || Client::new(service, fixture, client, seed).run()))
            })
            .collect();
        handles
            .into_iter()
            .map(|(client, seed, handle)| {
                handle.join().unwrap_or_else(|_| ClientReport {
                    client,
                    seed,
                    requests: 0,
                    lines: vec![],
                    payments: vec![],
                    stored: vec![],
                    outcomes: BTreeMap::new(),
                    anomaly: Some(format!("client {client} (seed {seed}) panicked: see its message above")),
                })
            })
            .collect()
    })
}

/// A shared line's acknowledged operations, summed over the clients that share it.
#[derive(Debug, Default)]
struct SharedTotals {
    limit_minor: i64,
    held_minor: i64,
    captured_minor: i64,
    refunded_minor: i64,
    repaid_minor: i64,
}

fn shared_totals(reports: &[ClientReport]) -> BTreeMap<String, SharedTotals> {
    let mut totals: BTreeMap<String, SharedTotals> = BTreeMap::new();
    for line in reports.iter().flat_map(|r| &r.lines).filter(|l| l.shared) {
        let total = totals.entry(line.id.clone()).or_default();
        total.limit_minor = line.limit_minor;
        total.held_minor += line.held_minor;
        total.captured_minor += line.captured_minor;
        total.refunded_minor += line.refunded_minor;
        total.repaid_minor += line.repaid_minor;
    }
    totals
}

/// The balances every acknowledged operation implies. Which refunds met a debt and which
/// became a credit balance depends on the order of the clients' refunds and repayments, so
/// only their difference is fixed: receivable − credit balance = captured − refunded − repaid.
fn shared_totals_problem(view: &CreditLineView, totals: &SharedTotals) -> Option<String> {
    let parsed =
        [&view.limit, &view.available, &view.held, &view.receivable, &view.credit_balance].map(|t| minor_of(t));
    let [Ok(limit), Ok(available), Ok(held), Ok(receivable), Ok(credit)] = parsed else {
        return Some(format!("shared line {} reads amounts that do not parse: {view:?}", view.id));
    };
    let net_minor = totals.captured_minor - totals.refunded_minor - totals.repaid_minor;
    let holds = limit == totals.limit_minor
        && held == totals.held_minor
        && receivable - credit == net_minor
        && available == limit - held - receivable
        && available >= 0
        && receivable >= 0
        && (0..=totals.refunded_minor).contains(&credit);
    (!holds).then(|| format!("shared line {} reads {view:?}; its clients acknowledged {totals:?}", view.id))
}

fn read_line_view(service: &Service, id: &str) -> Result<CreditLineView, String> {
    match service.execute_blocking(Command::GetCreditLine { id: id.to_owned() }, None) {
        Ok(Reply::CreditLine(view)) => Ok(view),
        other => Err(format!("reading line {id} answered {other:?}")),
    }
}

fn check_lines(service: &Service, reports: &[ClientReport]) -> Vec<String> {
    let mut problems = vec![];
    for report in reports {
        for line in report.lines.iter().filter(|l| !l.shared) {
            let checked = read_line_view(service, &line.id).and_then(|view| owned_line_problem(&view, line));
            problems.extend(checked.err().map(|p| format!("client {} (seed {}): {p}", report.client, report.seed)));
        }
    }
    for (id, totals) in shared_totals(reports) {
        match read_line_view(service, &id) {
            Ok(view) => problems.extend(shared_totals_problem(&view, &totals)),
            Err(problem) => problems.push(problem),
        }
    }
    problems
}

/// The hold the journal leaves for a payment must be what the model says of the payment.
fn hold_problem(hold: Option<&Hold>, payment: &PaymentModel) -> Option<String> {
    let seen = hold.map(|h| (h.status, h.amount_minor, h.captured_minor, h.refunded_minor));
    let amount_minor = payment.amount_minor;
    let want = match payment.status {
        PaymentStatus::Declined => None,
        PaymentStatus::Authorized => Some((HoldStatus::Pending, amount_minor, 0, 0)),
        PaymentStatus::Voided => Some((HoldStatus::Voided, amount_minor, 0, 0)),
        _ => Some((HoldStatus::Captured, amount_minor, payment.captured_minor, payment.refunded_minor())),
    };
    (seen != want)
        .then(|| format!("the journal leaves payment {} with hold {seen:?}; the model says {want:?}", payment.id))
}

fn replay_journal(store: &mut SqliteStore) -> Result<Ledger, StoreError> {
    let mut ledger = Ledger::new();
    store.for_each_journal_entry(&mut |t| ledger.replay(&t).map_err(|e| StoreError::Corrupt(e.to_string())))?;
    Ok(ledger)
}

/// The store on its own: the books balance by SQL, the journal replays through a fresh
/// ledger, and the holds and platform accounts it leaves are what the clients acknowledged.
fn check_journal(dir: &std::path::Path, reports: &[ClientReport]) -> Vec<String> {
    let mut store = match SqliteStore::open_dir(dir) {
        Ok(store) => store,
        Err(error) => return vec![format!("the store does not open: {error}")],
    };
    let mut problems = vec![];
    match store.check_books() {
        Ok(report) if report.is_balanced() => {}
        other => problems.push(format!("the stored books do not balance: {other:?}")),
    }
    let ledger = match replay_journal(&mut store) {
        Ok(ledger) => ledger,
        Err(error) => {
            problems.push(format!("the journal does not replay: {error}"));
            return problems;
        }
    };
    if ledger.trial_balance() != (0, 0) {
        problems.push(format!("the replayed ledger's trial balance is {:?}", ledger.trial_balance()));
    }
    let payments = reports.iter().flat_map(|r| &r.payments);
    problems.extend(payments.filter_map(|p| hold_problem(ledger.hold(&p.id), p)));
    let lines: Vec<&LineModel> = reports.iter().flat_map(|r| &r.lines).collect();
    let net_captured_minor: i64 = lines.iter().map(|l| l.captured_minor - l.refunded_minor).sum();
    let repaid_minor: i64 = lines.iter().map(|l| l.repaid_minor).sum();
    let payable_minor = ledger.platform_balance(cny(), PlatformAccount::MerchantSettlementPayable);
    let received_minor = ledger.platform_balance(cny(), PlatformAccount::RepaymentsReceived);
    if (payable_minor, received_minor) != (i128::from(-net_captured_minor), i128::from(repaid_minor)) {
        problems.push(format!(
            "platform accounts: merchant payable {payable_minor}, repayments received {received_minor}; \
             the clients acknowledged {net_captured_minor} captured net of refunds and {repaid_minor} repaid"
        ));
    }
    problems
}

/// After the restart: every payment of one client reads as its model says, and a sample of
/// its stored keys replays the first answer.
fn check_client_after_restart(service: &Service, report: &ClientReport) -> Vec<String> {
    let mut problems = vec![];
    for payment in &report.payments {
        let line_id = &report.lines[payment.line].id;
        match service.execute_blocking(Command::GetPayment { id: payment.id.clone() }, None) {
            Ok(Reply::Payment(view)) => problems.extend(payment_problem(&view, payment, line_id)),
            other => problems.push(format!("reading {} answered {other:?}", payment.id)),
        }
    }
    let step = (report.stored.len() / KEY_REPLAYS_AFTER_RESTART).max(1);
    for entry in report.stored.iter().step_by(step) {
        let got = service.execute_blocking(entry.command.clone(), Some(entry.key.clone()));
        if got.as_ref() != Ok(&entry.reply) {
            problems.push(format!("key {} replays {got:?}; it first answered {:?}", entry.key.key, entry.reply));
        }
    }
    let client = format!("after the restart, client {} (seed {})", report.client, report.seed);
    problems.into_iter().map(|p| format!("{client}: {p}")).collect()
}

fn check_after_restart(service: &Service, reports: &[ClientReport]) -> Vec<String> {
    let mut problems: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            reports.iter().map(|report| scope.spawn(move || check_client_after_restart(service, report))).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|_| vec!["a checker panicked".into()])).collect()
    });
    problems.extend(check_lines(service, reports));
    problems
}

fn assert_no_problems(when: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problems {when} (base seed {}); the first:\n{}",
        problems.len(),
        base_seed(),
        problems.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn assert_every_outcome_seen(reports: &[ClientReport]) -> BTreeMap<&'static str, u64> {
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (outcome, count) in reports.iter().flat_map(|r| &r.outcomes) {
        *outcomes.entry(outcome).or_default() += count;
    }
    let missing: Vec<&&str> = EXPECTED_OUTCOMES.iter().filter(|o| !outcomes.contains_key(*o)).collect();
    assert!(missing.is_empty(), "the mix never produced {missing:?} (base seed {}): {outcomes:?}", base_seed());
    outcomes
}

#[test]
fn sixteen_clients_each_see_a_sequential_service() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (service, _clock) = start(dir.path(), approve_within_credit());
    let fixture = open_fixture(&service);
    let reports = run_clients(&service, &fixture);
    let anomalies: Vec<String> = reports.iter().filter_map(|r| r.anomaly.clone()).collect();
    assert_no_problems("while the clients ran", &anomalies);
    let total_requests: u64 = reports.iter().map(|r| r.requests).sum();
    assert!(total_requests >= MIN_TOTAL_REQUESTS, "only {total_requests} requests");
    let outcomes = assert_every_outcome_seen(&reports);
    let ids: HashSet<&str> = reports.iter().flat_map(|r| &r.payments).map(|p| p.id.as_str()).collect();
    let payments = reports.iter().map(|r| r.payments.len()).sum::<usize>();
    assert_eq!(ids.len(), payments, "two payments share an id");
    assert_no_problems("in the lines once the clients were done", &check_lines(&service, &reports));
    let ran = started.elapsed();

    drop(service);
    // The writer and committer threads close their connections after the handle goes.
    std::thread::sleep(Duration::from_millis(100));
    assert_no_problems("in the store", &check_journal(dir.path(), &reports));
    let restarted = Service::start(
        Box::new(SqliteStore::open_dir(dir.path()).unwrap()),
        approve_within_credit(),
        std::sync::Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(START_MS))),
    );
    let service = restarted.unwrap_or_else(|e| panic!("the service does not restart on its own store: {e}"));
    assert_no_problems("after the restart", &check_after_restart(&service, &reports));
    println!(
        "{total_requests} requests by {CLIENTS} clients in {ran:?}, {payments} payments; \
         all checked again after a restart by {:?}; outcomes: {outcomes:?}",
        started.elapsed()
    );
}
