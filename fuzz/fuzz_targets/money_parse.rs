//! Any input: parsing never panics, and whatever parses formats back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xiezhi_money::{format_minor, parse_minor, Currency, Sign};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for currency in ["CNY", "JPY", "BHD", "CLF"] {
        let currency = Currency::from_code(currency).expect("known");
        if let Ok(minor) = parse_minor(text, currency, Sign::Any) {
            let formatted = format_minor(minor, currency.minor_unit_exponent());
            assert_eq!(parse_minor(&formatted, currency, Sign::Any), Ok(minor));
        }
    }
});
