//! Property tests: the decoder never panics, and whatever the encoder builds decodes back.

use proptest::prelude::*;
use xiezhi_qr::{decode, AccountTemplate, AdditionalData, DecodeOptions, MerchantPresentedQr, PointOfInitiation};

fn ans(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9 .\\-]{{1,{max}}}")).unwrap()
}

fn qr_strategy() -> impl Strategy<Value = MerchantPresentedQr> {
    (
        prop::option::of(prop::bool::ANY),
        ans(32),
        ans(20),
        prop::option::of("[0-9]{4}"),
        prop::option::of((1u32..99_999_999, 0u32..100)),
        prop::option::of(ans(25)),
        prop::option::of(ans(15)),
        prop::option::of(ans(25)),
    )
        .prop_map(|(dynamic, guid, merchant_ref, mcc, amount, name, city, bill)| MerchantPresentedQr {
            payload_format_indicator: "01".into(),
            point_of_initiation: dynamic.map(
                |d| {
                    if d {
                        PointOfInitiation::Dynamic
                    } else {
                        PointOfInitiation::Static
                    }
                },
            ),
            merchant_account_information: vec![AccountTemplate::template("26", &guid, &[("01", &merchant_ref)])],
            merchant_category_code: mcc,
            transaction_currency: "156".into(),
            transaction_amount: amount.map(|(major, minor)| format!("{major}.{minor:02}")),
            tip_or_convenience_indicator: None,
            convenience_fee_fixed: None,
            convenience_fee_percentage: None,
            country_code: Some("CN".into()),
            merchant_name: name,
            merchant_city: city,
            postal_code: None,
            additional_data: AdditionalData { bill_number: bill, ..Default::default() },
            merchant_information_language: None,
            reserved: Default::default(),
            unreserved_templates: vec![],
            crc: String::new(),
            warnings: vec![],
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics(payload in "\\PC{0,300}") {
        let _ = decode(&payload, DecodeOptions::default());
        let _ = decode(&payload, DecodeOptions { strict: true });
    }

    #[test]
    fn decode_never_panics_on_near_valid(qr in qr_strategy(), cut in 0usize..400, flip in 0usize..400, byte in 0u8..128) {
        let payload = qr.encode().unwrap();
        let mut bytes = payload.clone().into_bytes();
        let at = flip % bytes.len();
        bytes[at] = byte;
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = decode(&text, DecodeOptions::default());
        }
        let _ = decode(&payload[..cut.min(payload.len())], DecodeOptions::default());
    }

    #[test]
    fn encoded_payloads_decode_to_the_same_content(qr in qr_strategy()) {
        let payload = qr.encode().unwrap();
        let mut decoded = decode(&payload, DecodeOptions::default()).unwrap();
        prop_assert_eq!(&decoded.crc, &payload[payload.len() - 4..]);
        decoded.crc.clear();
        decoded.warnings.clear();
        prop_assert_eq!(decoded, qr);
    }

    #[test]
    fn any_single_character_change_is_caught(qr in qr_strategy(), at in 0usize..400, replacement in "[0-9A-Z]") {
        let payload = qr.encode().unwrap();
        let at = at % payload.len();
        let original = &payload[at..at + 1];
        prop_assume!(original != replacement);
        let changed = format!("{}{}{}", &payload[..at], replacement, &payload[at + 1..]);
        prop_assert!(decode(&changed, DecodeOptions::default()).is_err(), "accepted {}", changed);
    }
}
