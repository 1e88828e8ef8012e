//! Helpers shared by the service's integration tests: a manual clock, a service on the real
//! SQLite store, and one call per command that unwraps the reply it must give.
#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use xiezhi_core::*;
use xiezhi_money::{parse_minor, Currency, Sign};
use xiezhi_store_sqlite::SqliteStore;

pub struct ManualClock(pub AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub const START_MS: i64 = 1_764_000_000_000;

/// No behaviour rules: tests of the books and of the pipeline want every payment within the
/// policy approved, however fast it comes.
pub const NO_RULES: &str = r#"{"version":"none","rules":[]}"#;

pub fn no_rules() -> ServiceConfig {
    ServiceConfig { risk: RiskConfig { rules_json: Some(NO_RULES.into()), ..Default::default() }, ..Default::default() }
}

pub fn start(dir: &std::path::Path, config: ServiceConfig) -> (Service, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let store = SqliteStore::open_dir(dir).unwrap();
    (Service::start(Box::new(store), config, clock.clone()).unwrap(), clock)
}

pub fn run(service: &Service, command: Command) -> Result<Reply, CoreError> {
    service.execute_blocking(command, None)
}

pub fn merchant(service: &Service, name: &str) -> MerchantView {
    let request = NewMerchant {
        name: name.into(),
        city: "Hangzhou".into(),
        country: "CN".into(),
        mcc: "5411".into(),
        currency: "CNY".into(),
        partner_accounts: vec![],
        onboarded_at: None,
    };
    match run(service, Command::CreateMerchant(request)).unwrap() {
        Reply::Merchant(m) => m,
        other => panic!("{other:?}"),
    }
}

pub fn line_for(service: &Service, user_id: &str, limit: &str) -> CreditLineView {
    let request = NewCreditLine {
        user_id: user_id.into(),
        currency: "CNY".into(),
        limit: limit.into(),
        profile: Default::default(),
        opened_at: None,
    };
    match run(service, Command::CreateCreditLine(request)).unwrap() {
        Reply::CreditLine(l) => l,
        other => panic!("{other:?}"),
    }
}

pub fn payment_request(line_id: &str, qr: &str, amount: Option<&str>) -> NewPayment {
    NewPayment {
        credit_line_id: line_id.into(),
        qr_payload: qr.into(),
        amount: amount.map(Into::into),
        tip: None,
        context: PaymentContext { device_id: Some("d1".into()), ip: Some("10.0.0.1".into()), ..Default::default() },
    }
}

pub fn payment_of(reply: Result<Reply, CoreError>) -> PaymentView {
    match reply.unwrap() {
        Reply::Payment(p) => p,
        other => panic!("{other:?}"),
    }
}

pub fn get_line(service: &Service, id: &str) -> CreditLineView {
    match run(service, Command::GetCreditLine { id: id.into() }).unwrap() {
        Reply::CreditLine(l) => l,
        other => panic!("{other:?}"),
    }
}

/// A key whose fingerprint is the key itself: the same key always comes with the same request.
pub fn key(name: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey { key: name.into(), fingerprint: format!("fp-{name}") })
}

pub fn minor(text: &str) -> i64 {
    parse_minor(text, Currency::from_code("CNY").unwrap(), Sign::Any).unwrap()
}
