//! Any `Xiezhi-Signature` header: parsing and verifying never panic, and whatever parses
//! re-formats (`t=…,v1=…` for each signature) to a header that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xiezhi_notify::{parse_signature_header, verify_signature};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else { return };
    let _ = verify_signature(b"whsec_fuzz_secret_0123456789abcdef", header, b"{}", 1_767_225_600, 300);
    if let Ok(parsed) = parse_signature_header(header) {
        let mut again = format!("t={}", parsed.timestamp);
        for v1 in &parsed.v1 {
            again.push_str(",v1=");
            again.extend(v1.iter().map(|b| format!("{b:02x}")));
        }
        assert_eq!(parse_signature_header(&again).as_ref(), Ok(&parsed));
    }
});
