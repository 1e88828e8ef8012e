//! Decodes the corpus of real payloads and the broken ones, and checks errors name the
//! right field and byte offset.

use xiezhi_qr::{crc16, decode, AccountTemplate, DecodeOptions, MerchantPresentedQr, PointOfInitiation, QrErrorKind};

const VALID: &str = include_str!("corpus/valid.tsv");
const INVALID: &str = include_str!("corpus/invalid.tsv");

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| l.split('\t').collect())
}

fn lenient(payload: &str) -> Result<MerchantPresentedQr, xiezhi_qr::QrError> {
    decode(payload, DecodeOptions::default())
}

/// One data object with its length counted in characters.
fn tlv(id: &str, value: &str) -> String {
    format!("{id}{:02}{value}", value.chars().count())
}

fn with_crc(body: &str) -> String {
    let body = format!("{body}6304");
    format!("{body}{:04X}", crc16(body.as_bytes()))
}

#[test]
fn every_real_payload_decodes_with_the_expected_warnings() {
    let mut count = 0;
    for row in rows(VALID) {
        let [scheme, warnings, payload] = row[..] else { panic!("bad row {row:?}") };
        let qr = lenient(payload).unwrap_or_else(|e| panic!("{scheme}: {e}"));
        let got: Vec<&str> = qr.warnings.iter().map(|w| w.code.as_str()).collect();
        let want: Vec<&str> = if warnings == "-" { vec![] } else { warnings.split(',').collect() };
        assert_eq!(got, want, "{scheme}");
        assert!(!qr.merchant_account_information.is_empty(), "{scheme}");
        assert!(qr.currency().is_some(), "{scheme}");
        // Under --strict, exactly the payloads with warnings are refused, with the first one.
        match decode(payload, DecodeOptions { strict: true }) {
            Ok(_) => assert!(want.is_empty(), "{scheme} passed strict despite warnings"),
            Err(err) => match err.kind {
                QrErrorKind::SpecDeviation { warning_code, .. } => {
                    assert_eq!(warning_code, want[0], "{scheme}")
                }
                other => panic!("{scheme}: {other}"),
            },
        }
        // Re-encoding what was decoded reproduces a payload that decodes to the same content.
        let again = lenient(&qr.encode().unwrap()).unwrap();
        assert_eq!(strip(again), strip(qr.clone()), "{scheme}");
        count += 1;
    }
    assert!(count >= 20, "corpus shrank to {count}");
}

fn strip(mut qr: MerchantPresentedQr) -> MerchantPresentedQr {
    qr.crc.clear();
    qr.warnings.clear();
    qr.merchant_account_information.sort_by(|a, b| a.id.cmp(&b.id));
    qr
}

#[test]
fn every_broken_payload_names_its_defect() {
    let mut count = 0;
    for row in rows(INVALID) {
        let [name, code, field, offset, payload] = row[..] else { panic!("bad row {row:?}") };
        let err = lenient(payload).expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err}");
        let field = (field != "-").then_some(field);
        assert_eq!(err.field_id.as_deref(), field, "{name}: {err}");
        assert_eq!(err.offset, offset.parse::<usize>().unwrap(), "{name}: {err}");
        count += 1;
    }
    assert!(count >= 9);
}

#[test]
fn emvco_sample_decodes_field_by_field() {
    let payload = rows(VALID).next().unwrap()[2];
    let qr = lenient(payload).unwrap();
    assert_eq!(qr.payload_format_indicator, "01");
    assert_eq!(qr.point_of_initiation, Some(PointOfInitiation::Dynamic));
    assert_eq!(qr.merchant_account_information.len(), 2);
    let account = &qr.merchant_account_information[0];
    assert_eq!(account.id, "29");
    assert_eq!(account.globally_unique_identifier.as_deref(), Some("D15600000000"));
    assert_eq!(account.fields.get("05").map(String::as_str), Some("A93FO3230Q"));
    assert_eq!(qr.merchant_category_code.as_deref(), Some("4111"));
    assert_eq!(qr.transaction_currency, "156");
    assert_eq!(qr.transaction_amount.as_deref(), Some("23.72"));
    assert_eq!(qr.tip_or_convenience_indicator.as_deref(), Some("01"));
    assert_eq!(qr.country_code.as_deref(), Some("CN"));
    assert_eq!(qr.merchant_name.as_deref(), Some("BEST TRANSPORT"));
    assert_eq!(qr.merchant_city.as_deref(), Some("BEIJING"));
    assert_eq!(qr.additional_data.store_label.as_deref(), Some("1234"));
    assert_eq!(qr.additional_data.customer_label.as_deref(), Some("***"));
    assert_eq!(qr.additional_data.terminal_label.as_deref(), Some("A6008667"));
    assert_eq!(qr.additional_data.additional_consumer_data_request.as_deref(), Some("ME"));
    let language = qr.merchant_information_language.as_ref().unwrap();
    assert_eq!(language.language_preference.as_deref(), Some("ZH"));
    assert_eq!(language.merchant_name.as_deref(), Some("最佳运输"));
    assert_eq!(language.merchant_city.as_deref(), Some("北京"));
    assert_eq!(qr.unreserved_templates.len(), 1);
    assert_eq!(qr.unreserved_templates[0].globally_unique_identifier.as_deref(), Some("A011223344998877"));
    assert_eq!(qr.crc, "A13A");
    let json = serde_json::to_value(&qr).unwrap();
    for key in [
        "payload_format_indicator",
        "point_of_initiation",
        "merchant_account_information",
        "merchant_category_code",
        "transaction_currency",
        "transaction_amount",
        "country_code",
        "merchant_name",
        "merchant_city",
        "postal_code",
        "additional_data",
        "crc",
        "warnings",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["point_of_initiation"], "dynamic");
}

#[test]
fn content_deviations_warn_and_strict_refuses() {
    // Payload format "02", lower-case CRC, no MCC, UTF-8 in template 62.
    let body = [
        tlv("00", "02"),
        tlv("01", "11"),
        tlv("26", &(tlv("00", "CN.XIEZHI.PAY") + &tlv("01", "m_1"))),
        tlv("53", "156"),
        tlv("58", "CN"),
        tlv("59", "TEST SHOP"),
        tlv("60", "BEIJING"),
        tlv("62", &tlv("05", "账单号")),
    ]
    .concat();
    let payload = with_crc(&body);
    let lower = format!("{}{}", &payload[..payload.len() - 4], payload[payload.len() - 4..].to_lowercase());
    let qr = lenient(&lower).unwrap();
    let codes: Vec<&str> = qr.warnings.iter().map(|w| w.code.as_str()).collect();
    assert!(codes.contains(&"payload_format_indicator_unexpected"), "{codes:?}");
    assert!(codes.contains(&"lowercase_crc"), "{codes:?}");
    assert!(codes.contains(&"missing_merchant_category_code"), "{codes:?}");
    assert!(codes.contains(&"non_ascii_characters"), "{codes:?}");
    assert_eq!(qr.additional_data.reference_label.as_deref(), Some("账单号"));
    let err = decode(&lower, DecodeOptions { strict: true }).unwrap_err();
    assert_eq!(err.code(), "spec_deviation");
}

#[test]
fn field_defects_are_typed() {
    let account = tlv("26", &(tlv("00", "SG.PAYNOW") + &tlv("01", "2")));
    let base = format!(
        "000201010211{account}{}{}{}{}{}",
        tlv("52", "5812"),
        tlv("53", "702"),
        tlv("58", "SG"),
        tlv("59", "SHOP"),
        tlv("60", "SINGAPORE")
    );
    // Amount that is not a decimal.
    let err = lenient(&with_crc(&format!("{base}54041O.0"))).unwrap_err();
    assert!(matches!(err.kind, QrErrorKind::InvalidAmount { .. }), "{err}");
    assert_eq!(err.field_id.as_deref(), Some("54"));
    assert_eq!(err.offset, base.len() + 4);
    // Amount longer than 13 characters.
    let err = lenient(&with_crc(&format!("{base}541412345678901.00"))).unwrap_err();
    assert_eq!(err.kind, QrErrorKind::FieldTooLong { length: 14, max: 13 });
    // Currency of the wrong length.
    let err =
        lenient(&with_crc(&format!("000201010211{account}{}{}", tlv("52", "5812"), tlv("53", "7020")))).unwrap_err();
    assert_eq!(err.kind, QrErrorKind::WrongLength { length: 4, expected: 3 });
    assert_eq!(err.field_id.as_deref(), Some("53"));
    // No currency.
    let err = lenient(&with_crc(&format!("000201010211{account}{}", tlv("52", "5812")))).unwrap_err();
    assert_eq!((err.kind, err.field_id.as_deref()), (QrErrorKind::MissingMandatory, Some("53")));
    // No merchant account information.
    let err = lenient(&with_crc("0002010102115303702")).unwrap_err();
    assert_eq!((err.kind, err.field_id.as_deref()), (QrErrorKind::MissingMandatory, Some("02-51")));
    // Duplicate field.
    let err = lenient(&with_crc(&format!("{base}5802SG"))).unwrap_err();
    assert_eq!((err.kind, err.field_id.as_deref()), (QrErrorKind::DuplicateId, Some("58")));
    // Duplicate inside a template.
    let err = lenient(&with_crc(&format!("{base}{}", tlv("62", &(tlv("01", "AB") + &tlv("01", "CD")))))).unwrap_err();
    assert_eq!((err.kind, err.field_id.as_deref()), (QrErrorKind::DuplicateId, Some("62.01")));
}

#[test]
fn encode_builds_a_payload_that_decodes_back() {
    let qr = MerchantPresentedQr {
        payload_format_indicator: "01".into(),
        point_of_initiation: Some(PointOfInitiation::Dynamic),
        merchant_account_information: vec![AccountTemplate::template("26", "CN.XIEZHI.PAY", &[("01", "m_1")])],
        merchant_category_code: Some("5411".into()),
        transaction_currency: "156".into(),
        transaction_amount: Some("12.30".into()),
        tip_or_convenience_indicator: None,
        convenience_fee_fixed: None,
        convenience_fee_percentage: None,
        country_code: Some("CN".into()),
        merchant_name: Some("Lotus Market".into()),
        merchant_city: Some("Hangzhou".into()),
        postal_code: Some("310000".into()),
        additional_data: xiezhi_qr::AdditionalData { bill_number: Some("B-1".into()), ..Default::default() },
        merchant_information_language: None,
        reserved: Default::default(),
        unreserved_templates: vec![],
        crc: String::new(),
        warnings: vec![],
    };
    let payload = qr.encode().unwrap();
    assert!(payload.starts_with("000201010212"));
    let decoded = lenient(&payload).unwrap();
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    assert_eq!(decoded.account_by_guid("cn.xiezhi.pay").unwrap().fields["01"], "m_1");
    assert_eq!(strip(decoded), strip(qr));
}
