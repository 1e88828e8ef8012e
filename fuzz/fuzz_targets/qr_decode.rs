//! Any input: the decoder must return, never panic; whatever it accepts must re-encode to a
//! payload that decodes to the same content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xiezhi_qr::{decode, DecodeOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = decode(text, DecodeOptions { strict: true });
    if let Ok(mut qr) = decode(text, DecodeOptions::default()) {
        let payload = qr.encode().expect("a decoded payload re-encodes");
        let mut again = decode(&payload, DecodeOptions::default()).expect("a re-encoded payload decodes");
        for q in [&mut qr, &mut again] {
            q.crc.clear();
            q.warnings.clear();
            q.merchant_account_information.sort_by(|a, b| a.id.cmp(&b.id));
        }
        assert_eq!(qr, again);
    }
});
