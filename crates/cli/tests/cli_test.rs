//! The `xiezhi qr` commands as an operator's script uses them: JSON out, exit codes, one
//! clear line on stderr.

use serde_json::Value;
use std::process::Command;

fn xiezhi(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xiezhi")).args(args).output().expect("run xiezhi")
}

const PIX: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";

#[test]
fn qr_decode_prints_json() {
    let out = xiezhi(&["qr", "decode", PIX]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["payload_format_indicator"], "01");
    assert_eq!(json["point_of_initiation"], Value::Null);
    assert_eq!(json["merchant_account_information"][0]["id"], "26");
    assert_eq!(json["merchant_account_information"][0]["globally_unique_identifier"], "br.gov.bcb.pix");
    assert_eq!(json["merchant_account_information"][0]["fields"]["01"], "123e4567-e12b-12d1-a456-426655440000");
    assert_eq!(json["merchant_category_code"], "0000");
    assert_eq!(json["transaction_currency"], "986");
    assert_eq!(json["transaction_amount"], Value::Null);
    assert_eq!(json["country_code"], "BR");
    assert_eq!(json["merchant_name"], "Fulano de Tal");
    assert_eq!(json["merchant_city"], "BRASILIA");
    assert_eq!(json["postal_code"], Value::Null);
    assert_eq!(json["additional_data"]["reference_label"], "***");
    assert_eq!(json["crc"], "1D3D");
    assert_eq!(json["warnings"], serde_json::json!([]));
}

#[test]
fn qr_decode_defects_exit_2_with_one_line() {
    let broken = format!("{}1D3E", &PIX[..PIX.len() - 4]);
    let out = xiezhi(&["qr", "decode", &broken]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad CRC") && stderr.contains("field 63") && stderr.contains("[bad_crc]"), "{stderr}");

    // A deviation passes by default with a warning, and fails under --strict.
    let promptpay = "00020101021229370016A0000006770101110113006692754538553037645802TH540550.006304B5FD";
    let out = xiezhi(&["qr", "decode", promptpay]);
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["warnings"][0]["code"], "missing_merchant_category_code");
    let out = xiezhi(&["qr", "decode", "--strict", promptpay]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[spec_deviation]"));
}

#[test]
fn qr_encode_writes_images_that_decode() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("shop.png");
    let out = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args([
            "qr",
            "encode",
            "--merchant-id",
            "mch_1",
            "--name",
            "Lotus Market",
            "--city",
            "Hangzhou",
            "--amount",
            "12.30",
            "--bill-number",
            "B1",
            "--out",
        ])
        .arg(&png)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let payload = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(payload.starts_with("000201010212"));
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    let decoded: Value = serde_json::from_slice(&xiezhi(&["qr", "decode", "--strict", &payload]).stdout).unwrap();
    assert_eq!(decoded["transaction_amount"], "12.30");
    assert_eq!(decoded["additional_data"]["bill_number"], "B1");
    let svg = dir.path().join("shop.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_xiezhi"))
        .args(["qr", "encode", "--merchant-id", "m", "--name", "N", "--city", "C", "--out"])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let out = xiezhi(&["qr", "encode", "--merchant-id", "m", "--name", "N", "--city", "C", "--amount", "1.234"]);
    assert_eq!(out.status.code(), Some(2));
    let out = xiezhi(&["qr", "encode", "--merchant-id", "m", "--name", "N", "--city", "C", "--currency", "XYZ"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rules_check_accepts_the_shipped_rules_and_names_a_bad_rule() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../risk");
    let ok = xiezhi(&[
        "rules",
        "check",
        &format!("{root}/rules/default.json"),
        "--policy",
        &format!("{root}/policy/default.json"),
    ]);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(
        out.contains("rule set default-4 is valid") && out.contains("policy cn-credit-scan-to-pay@2 is valid"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"version":"x","rules":[{"id":"oops","version":1,"expression":"amount_minor > 'a'","effect":{"outcome":"decline"},"reason_code":"card_testing","mode":"live"}]}"#).unwrap();
    let refused = xiezhi(&["rules", "check", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("rule `oops`") && err.contains("cannot compare int with string"), "{err}");
}
