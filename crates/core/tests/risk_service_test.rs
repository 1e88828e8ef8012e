//! The risk side of the service on the real store: what the engine remembers survives a
//! restart (trusted devices, failed challenges, restrictions, pending challenges, rules),
//! and challenges lapse on the service's clock.

use serde_json::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xiezhi_core::*;
use xiezhi_store_sqlite::SqliteStore;

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

const START_MS: i64 = 1_795_000_000_000;

/// The code secret a service keeps across restarts (`xiezhi serve` keeps it in a file).
const CODE_SECRET: [u8; 32] = [7; 32];

fn start(dir: &std::path::Path, clock: Arc<ManualClock>) -> Service {
    start_with_secret(dir, clock, CODE_SECRET)
}

fn start_with_secret(dir: &std::path::Path, clock: Arc<ManualClock>, secret: [u8; 32]) -> Service {
    let store = SqliteStore::open_dir(dir).unwrap();
    let notifier = Some(NotifierHandle(Arc::clone(phone()) as Arc<dyn xiezhi_core::Notifier>));
    let config = ServiceConfig { code_secret: Some(secret), notifier, ..Default::default() };
    Service::start(Box::new(store), config, clock).unwrap()
}

fn restart(service: Service, dir: &std::path::Path, clock: Arc<ManualClock>) -> Service {
    drop(service);
    std::thread::sleep(Duration::from_millis(50));
    start(dir, clock)
}

fn run(service: &Service, command: Command) -> Result<Reply, CoreError> {
    service.execute_blocking(command, None)
}

fn setup(service: &Service) -> (String, String) {
    let merchant = NewMerchant {
        name: "Suning".into(),
        city: "Nanjing".into(),
        country: "CN".into(),
        mcc: "5732".into(),
        currency: "CNY".into(),
        partner_accounts: vec![],
        onboarded_at: None,
    };
    let Reply::Merchant(m) = run(service, Command::CreateMerchant(merchant)).unwrap() else { panic!() };
    let profile = UserProfile { birth_date: Some("1990-01-01".into()), kyc_level: 2, region: "CN-JS".into() };
    let line = NewCreditLine {
        user_id: "u1".into(),
        currency: "CNY".into(),
        limit: "20000".into(),
        profile,
        opened_at: None,
        wallet_id: None,
        contact: None,
    };
    let Reply::CreditLine(l) = run(service, Command::CreateCreditLine(line)).unwrap() else { panic!() };
    (m.qr_payload, l.id)
}

fn pay(service: &Service, line: &str, qr: &str, amount: &str, device: &str) -> PaymentView {
    let request = NewPayment {
        credit_line_id: line.into(),
        qr_payload: qr.into(),
        amount: Some(amount.into()),
        tip: None,
        context: PaymentContext {
            device_id: Some(device.into()),
            ip: Some("10.9.8.7".into()),
            network: Some("wifi".into()),
            ..Default::default()
        },
    };
    let command = service.prepare_payment(request).unwrap();
    match run(service, command).unwrap() {
        Reply::Payment(p) => p,
        other => panic!("{other:?}"),
    }
}

/// The phone every service in this file sends its codes to.
fn phone() -> &'static Arc<RecordingNotifier> {
    static PHONE: std::sync::OnceLock<Arc<RecordingNotifier>> = std::sync::OnceLock::new();
    PHONE.get_or_init(Arc::default)
}

/// The code the shopper's phone received for `challenge_id`; the inbox says a code was sent
/// and never shows it.
fn code_for(service: &Service, line: &str, challenge_id: &str) -> String {
    let code = phone().code_for(challenge_id).unwrap_or_else(|| panic!("no code sent for {challenge_id}"));
    let Reply::Document(inbox) = run(service, Command::GetNotifications { credit_line_id: line.into() }).unwrap()
    else {
        panic!()
    };
    let text = inbox.to_string();
    assert!(text.contains(challenge_id), "the inbox tells of the code: {text}");
    assert!(!text.contains(&code), "the inbox never shows the code: {text}");
    code
}

fn answer(service: &Service, challenge_id: &str, code: &str) -> ChallengeView {
    let command = Command::CompleteChallenge { id: challenge_id.into(), answer: ChallengeAnswer { code: code.into() } };
    match run(service, command).unwrap() {
        Reply::Challenge(c) => c,
        other => panic!("{other:?}"),
    }
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" {
        "999999"
    } else {
        "000000"
    }
}

fn line_view(service: &Service, id: &str) -> CreditLineView {
    match run(service, Command::GetCreditLine { id: id.into() }).unwrap() {
        Reply::CreditLine(l) => l,
        other => panic!("{other:?}"),
    }
}

#[test]
fn what_the_engine_learned_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = start(dir.path(), clock.clone());
    let (qr, line) = setup(&service);
    // Three approved payments make the phone trusted.
    for i in 0..3 {
        clock.0.fetch_add(3_600_000, Ordering::SeqCst);
        let p = pay(&service, &line, &qr, &format!("{}.00", 300 + i), "phone-1");
        assert_eq!(p.status, PaymentStatus::Authorized, "{:?}", p.decision);
    }
    let service = restart(service, dir.path(), clock.clone());
    clock.0.fetch_add(3_600_000, Ordering::SeqCst);
    let trusted = pay(&service, &line, &qr, "1800.00", "phone-1");
    assert_eq!(trusted.status, PaymentStatus::Authorized, "the phone is still trusted: {:?}", trusted.decision);
    let stranger = pay(&service, &line, &qr, "1800.00", "phone-2");
    assert_eq!(stranger.status, PaymentStatus::ChallengeRequired, "{:?}", stranger.decision);

    // Three wrong codes from the stranger, then a restart: the next payment restricts the line.
    let challenge_id = stranger.decision.challenge_id.clone().unwrap();
    let code = code_for(&service, &line, &challenge_id);
    let service = restart(service, dir.path(), clock.clone());
    for attempt in 0..3 {
        let c = answer(&service, &challenge_id, wrong(&code));
        assert_eq!(c.attempts_left, 2 - attempt, "the pending challenge survived the restart");
    }
    let service = restart(service, dir.path(), clock.clone());
    let blocked = pay(&service, &line, &qr, "20.00", "phone-2");
    assert_eq!(blocked.decision.outcome, Outcome::Restrict, "{:?}", blocked.decision);
    let restriction = line_view(&service, &line).restriction.expect("restricted");
    assert_eq!(restriction.reason_code, "repeated_challenge_failures");

    // The restriction and its lifting challenge survive a restart too.
    let service = restart(service, dir.path(), clock.clone());
    let still = line_view(&service, &line).restriction.expect("still restricted after restart");
    assert_eq!(still, restriction);
    let refused = pay(&service, &line, &qr, "20.00", "phone-1");
    assert!(refused.decision.reason_codes.contains(&"line_restricted".to_string()), "{:?}", refused.decision);
    let lift_id = restriction.challenge_id.unwrap();
    let lift_code = code_for(&service, &line, &lift_id);
    assert_eq!(answer(&service, &lift_id, &lift_code).status, ChallengeStatus::Passed);
    let service = restart(service, dir.path(), clock.clone());
    assert!(line_view(&service, &line).restriction.is_none());
    let after = pay(&service, &line, &qr, "20.00", "phone-1");
    assert_eq!(after.status, PaymentStatus::Authorized, "{:?}", after.decision);
}

#[test]
fn a_rule_set_put_through_the_api_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = start(dir.path(), clock.clone());
    let (qr, line) = setup(&service);
    let definition: xiezhi_risk::RuleSetDefinition = serde_json::from_value(serde_json::json!({
        "version": "ops-7", "rules": [{"id": "no_large", "version": 2, "expression": "amount_minor >= 50000",
        "effect": {"outcome": "decline"}, "reason_code": "amount_unusual", "mode": "live"}]}))
    .unwrap();
    run(&service, Command::PutRules(definition)).unwrap();
    let service = restart(service, dir.path(), clock.clone());
    let Reply::Document(rules) = run(&service, Command::GetRules).unwrap() else { panic!() };
    assert_eq!(rules["version"], "ops-7");
    let p = pay(&service, &line, &qr, "600.00", "phone-1");
    assert_eq!(p.decision.reason_codes, vec!["amount_unusual"]);
    let Reply::Document(record) = run(&service, Command::GetDecision { payment_id: p.id.clone() }).unwrap() else {
        panic!()
    };
    assert_eq!(record["versions"]["rules"], Value::from("ops-7"));
}

#[test]
fn an_unanswered_challenge_lapses_on_the_service_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = start(dir.path(), clock.clone());
    let (qr, line) = setup(&service);
    let p = pay(&service, &line, &qr, "1500.00", "phone-9");
    assert_eq!(p.status, PaymentStatus::ChallengeRequired);
    let challenge_id = p.decision.challenge_id.clone().unwrap();
    clock.0.fetch_add(301_000, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    let lapsed = loop {
        let Reply::Challenge(c) = run(&service, Command::GetChallenge { id: challenge_id.clone() }).unwrap() else {
            panic!()
        };
        if c.status != ChallengeStatus::Pending {
            break c;
        }
        assert!(Instant::now() < deadline, "the sweep never expired the challenge");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(lapsed.status, ChallengeStatus::Expired);
    let payment = lapsed.payment.unwrap();
    assert_eq!(payment.status, PaymentStatus::Declined);
    assert!(payment.decision.reason_codes.contains(&"challenge_failed".to_string()));
    // A late right answer changes nothing.
    let code = code_for(&service, &line, &challenge_id);
    assert_eq!(answer(&service, &challenge_id, &code).status, ChallengeStatus::Expired);
    assert_eq!(line_view(&service, &line).held, "0.00");
}

/// Rule sets swapped again and again while payments flow: every decision was made by one
/// whole rule set, the one its record names, never by half of two.
#[test]
fn rule_sets_swap_atomically_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = start(dir.path(), clock.clone());
    let (qr, line) = setup(&service);
    // Both sets fire on every payment; set A with two rules, set B with one.
    let set = |version: &str, ids: &[&str]| -> xiezhi_risk::RuleSetDefinition {
        let rules: Vec<Value> = ids
            .iter()
            .map(|id| {
                serde_json::json!({"id": id, "version": 1, "expression": "amount_minor > 0",
                    "effect": {"score": 1}, "reason_code": "amount_unusual", "mode": "shadow"})
            })
            .collect();
        serde_json::from_value(serde_json::json!({"version": version, "rules": rules})).unwrap()
    };
    let ids: Vec<String> = std::thread::scope(|scope| {
        let swapper = scope.spawn(|| {
            for i in 0..60 {
                let definition = if i % 2 == 0 { set("A", &["a1", "a2"]) } else { set("B", &["b1"]) };
                run(&service, Command::PutRules(definition)).unwrap();
            }
        });
        let payers: Vec<_> = (0..4)
            .map(|t| {
                let (service, qr, line) = (service.clone(), qr.clone(), line.clone());
                scope.spawn(move || {
                    (0..40)
                        .map(|i| pay(&service, &line, &qr, &format!("{}.{:02}", 1 + t, i), "phone-1").id)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        swapper.join().unwrap();
        payers.into_iter().flat_map(|p| p.join().unwrap()).collect()
    });
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        let Reply::Document(record) = run(&service, Command::GetDecision { payment_id: id }).unwrap() else { panic!() };
        let version = record["versions"]["rules"].as_str().unwrap().to_owned();
        let mut sources: Vec<&str> = record["signals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["layer"] == "behaviour")
            .map(|s| s["source"].as_str().unwrap())
            .collect();
        sources.sort();
        let expected: &[&str] = match version.as_str() {
            "A" => &["a1@1", "a2@1"],
            "B" => &["b1@1"],
            _ => &[],
        };
        if version == "A" || version == "B" {
            assert_eq!(sources, expected, "a decision under rule set {version} saw {sources:?}");
        }
        seen.insert(version);
    }
    assert!(seen.contains("A") && seen.contains("B"), "the swaps must interleave with payments: {seen:?}");
}

/// A step-up for `line`: a large payment (not a round amount: round ones at a new merchant
/// look like cash-out) from a phone the user has never used.
fn step_up(service: &Service, line: &str, qr: &str, device: &str, amount: &str) -> String {
    let p = pay(service, line, qr, amount, device);
    assert_eq!(p.status, PaymentStatus::ChallengeRequired, "{:?}", p.decision);
    p.decision.challenge_id.expect("a challenge")
}

/// What the store keeps of a one-time code is an HMAC under the service's secret: the code
/// itself never, and a copy of the store without the secret cannot tell a right code.
#[test]
fn a_code_is_kept_only_as_an_hmac_under_the_services_secret() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = start(dir.path(), clock.clone());
    let (qr, line) = setup(&service);
    let challenge_id = step_up(&service, &line, &qr, "phone-x", "1234.56");
    let code = code_for(&service, &line, &challenge_id);
    drop(service);
    std::thread::sleep(Duration::from_millis(50));
    let mut store = SqliteStore::open_dir(dir.path()).unwrap();
    let stored =
        xiezhi_store::Store::record(&mut store, xiezhi_store::RecordKind::Challenge, &challenge_id).unwrap().unwrap();
    let record: Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(record["code_hmac"].as_str().map(str::len), Some(64), "{record}");
    assert!(record.get("code_sha256").is_none(), "{record}");
    assert!(!stored.body.contains(&format!("\"{code}\"")), "the code itself is stored: {}", stored.body);
    drop(store);
    // Another secret (a stolen copy of the store, say) does not accept the right code.
    let stranger = start_with_secret(dir.path(), clock.clone(), [8; 32]);
    assert_eq!(answer(&stranger, &challenge_id, &code).status, ChallengeStatus::Pending);
    drop(stranger);
    std::thread::sleep(Duration::from_millis(50));
    let service = start(dir.path(), clock);
    assert_eq!(answer(&service, &challenge_id, &code).status, ChallengeStatus::Passed);
}

/// Three tries per challenge, and ten wrong answers per line an hour across challenges:
/// then even the right code waits, so a stream of fresh challenges is no way to try codes.
#[test]
fn wrong_answers_are_limited_per_line_per_hour() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_MS)));
    let service = start(dir.path(), clock.clone());
    let (qr, line) = setup(&service);
    // Five challenges open at once (answering wrong first would restrict the line).
    let amounts = ["1234.56", "1345.67", "1456.78", "1567.89", "1678.91"];
    let open: Vec<(String, String)> = amounts
        .iter()
        .enumerate()
        .map(|(i, amount)| {
            clock.0.fetch_add(10_000, Ordering::SeqCst);
            let id = step_up(&service, &line, &qr, &format!("phone-{i}"), amount);
            let code = code_for(&service, &line, &id);
            (id, code)
        })
        .collect();
    assert_eq!(open.len() * 2, MAX_WRONG_ANSWERS_PER_LINE_HOUR);
    for (id, code) in &open {
        for _ in 0..2 {
            assert_eq!(answer(&service, id, wrong(code)).status, ChallengeStatus::Pending);
        }
    }
    // Each challenge has a try left, but the line has had its ten wrong answers this hour.
    let (id, code) = &open[0];
    let command = Command::CompleteChallenge { id: id.clone(), answer: ChallengeAnswer { code: code.clone() } };
    let refused = run(&service, command);
    assert!(matches!(refused, Err(CoreError::TooManyAttempts { retry_after_s }) if retry_after_s > 0), "{refused:?}");
    // An hour on, the line answers again: so many failures restrict its next payment, and
    // the restriction's own lifting challenge is answered.
    clock.0.fetch_add(3_600_000, Ordering::SeqCst);
    let restricted = pay(&service, &line, &qr, "12.34", "phone-0");
    assert_eq!(restricted.decision.outcome, Outcome::Restrict, "{:?}", restricted.decision);
    let lift = restricted.decision.challenge_id.expect("a lifting challenge");
    let code = code_for(&service, &line, &lift);
    assert_eq!(answer(&service, &lift, &code).status, ChallengeStatus::Passed);
}
