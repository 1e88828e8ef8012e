//! Lines opened on a credit application, in the service on the real store: the limit the
//! scorecard's band and the income set, the assessment kept with the line, the band told to
//! the engine (and again after a restart, from the stored line), and a refused application
//! changing nothing.

mod common;

use common::*;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use xiezhi_core::*;

fn apply(answers: Map<String, Value>, income: &str, user: &str) -> Result<Command, CoreError> {
    credit_line_command(CreditLineRequest {
        user_id: user.into(),
        currency: "CNY".into(),
        limit: None,
        application: Some(answers),
        monthly_income: Some(income.into()),
        profile: UserProfile { birth_date: Some("1990-01-01".into()), kyc_level: 2, region: "CN-SH".into() },
        opened_at: None,
        wallet_id: None,
        contact: None,
    })
}

fn scoring(lo: i64, hi: i64) -> Map<String, Value> {
    xiezhi_risk::shipped_credit_model().example_application(lo, hi).expect("an application in range")
}

#[test]
fn a_line_opened_on_an_application_keeps_its_band_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (service, clock) = start(dir.path(), ServiceConfig::default());
    let Reply::CreditLine(line) = run(&service, apply(scoring(480, 520), "6000.00", "u1").unwrap()).unwrap() else {
        panic!()
    };
    assert_eq!(line.limit, "3000.00", "band D: half of 6,000.00");
    let credit = line.credit.clone().expect("the assessment");
    assert_eq!(credit.band.as_deref(), Some("D"));
    assert!(!credit.reasons.is_empty());
    let shop = merchant(&service, "Lotus Market");
    let over = pay(&service, &line.id, &shop.qr_payload, Some("1100.00")).unwrap();
    assert!(over.decision.reason_codes.iter().any(|c| c == "band_spend_cap"), "{:?}", over.decision);
    // After a restart the line still has its band: the engine is told again from the store.
    drop(service);
    std::thread::sleep(std::time::Duration::from_millis(50));
    clock.0.fetch_add(60_000, Ordering::SeqCst);
    let (service, _) = start(dir.path(), ServiceConfig::default());
    assert_eq!(get_line(&service, &line.id).credit, Some(credit));
    let again = pay(&service, &line.id, &shop.qr_payload, Some("1100.00")).unwrap();
    assert!(again.decision.reason_codes.iter().any(|c| c == "band_spend_cap"), "{:?}", again.decision);
    // Within the cap (35 % of 3,000.00 a day) it goes through.
    let within = pay(&service, &line.id, &shop.qr_payload, Some("1000.00")).unwrap();
    assert!(!within.decision.reason_codes.iter().any(|c| c == "band_spend_cap"), "{:?}", within.decision);
}

#[test]
fn a_declined_application_opens_nothing_and_exactly_one_of_limit_and_application_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = start(dir.path(), ServiceConfig::default());
    let refused = run(&service, apply(scoring(0, 440), "20000.00", "u2").unwrap()).unwrap_err();
    let CoreError::CreditDeclined { credit } = &refused else { panic!("{refused:?}") };
    assert!(credit.band.is_none() && credit.score < 440 && !credit.reasons.is_empty(), "{credit:?}");
    assert_eq!(refused.code(), "credit_declined");
    // Both, neither, or an income with a fixed limit: refused before the writer.
    let both = CreditLineRequest {
        user_id: "u3".into(),
        currency: "CNY".into(),
        limit: Some("100.00".into()),
        application: Some(scoring(600, 700)),
        monthly_income: Some("1.00".into()),
        profile: Default::default(),
        opened_at: None,
        wallet_id: None,
        contact: None,
    };
    let e = credit_line_command(both.clone()).unwrap_err();
    assert!(matches!(&e, CoreError::InvalidRequest { field, .. } if field == "application"), "{e:?}");
    let neither = CreditLineRequest { limit: None, application: None, monthly_income: None, ..both.clone() };
    assert!(matches!(credit_line_command(neither), Err(CoreError::InvalidRequest { field, .. }) if field == "limit"));
    let fixed = CreditLineRequest { application: None, monthly_income: None, ..both.clone() };
    assert!(matches!(credit_line_command(fixed), Ok(Command::CreateCreditLine(l)) if l.limit == "100.00"));
    let mut unknown = scoring(600, 700);
    unknown.insert("foreign_worker".into(), json!("yes"));
    let e = apply(unknown, "1.00", "u3").unwrap_err();
    assert_eq!(e, CoreError::UnknownField { field: "application.foreign_worker".into() });
}
