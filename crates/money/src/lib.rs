//! Money for Xiezhi: integer minor units tagged with an ISO 4217 currency.
//!
//! There are no floats here. Decimal strings are parsed digit by digit into `i64` minor units
//! and formatted back exactly ("12.30" ↔ 1230 for CNY, "1230" ↔ 1230 for JPY).

mod currency;

pub use currency::Currency;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest magnitude accepted for one amount, in minor units (10^15, i.e. ten trillion CNY).
///
/// Far below `i64::MAX`, so sums of many amounts in a ledger cannot overflow silently and a
/// typo'd amount is refused rather than stored.
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;

/// Why an amount was refused. Each variant is a distinct, stable failure a caller can map to
/// its own error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount `{text}` is not a decimal number (digits with an optional `.` and fraction)")]
    NotDecimal { text: String },
    #[error("amount `{text}` has {decimals} decimals but {currency} allows at most {max}")]
    TooManyDecimals { text: String, decimals: usize, max: u8, currency: Currency },
    #[error("amount `{text}` is negative")]
    Negative { text: String },
    #[error("amount `{text}` must be greater than zero")]
    Zero { text: String },
    #[error("amount `{text}` exceeds the maximum of {max_minor} minor units")]
    Overflow { text: String, max_minor: i64 },
    #[error("unknown currency `{code}`")]
    UnknownCurrency { code: String },
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
}

/// Which signs an amount may have where it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Strictly greater than zero (payments, captures, refunds, repayments, limits).
    Positive,
    /// Zero or more (e.g. a tip that may be zero).
    NonNegative,
    /// Any sign (adjustments).
    Any,
}

/// An exact amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

impl Money {
    /// Builds money from minor units, refusing magnitudes above [`MAX_AMOUNT_MINOR`].
    pub fn from_minor(amount_minor: i64, currency: Currency) -> Result<Money, MoneyError> {
        if amount_minor.unsigned_abs() > MAX_AMOUNT_MINOR as u64 {
            return Err(MoneyError::Overflow { text: amount_minor.to_string(), max_minor: MAX_AMOUNT_MINOR });
        }
        Ok(Money { amount_minor, currency })
    }

    /// Parses a decimal string in the currency's major unit ("12.30" CNY → 1230 minor units).
    pub fn parse(text: &str, currency: Currency, sign: Sign) -> Result<Money, MoneyError> {
        let amount_minor = parse_minor(text, currency, sign)?;
        Ok(Money { amount_minor, currency })
    }

    /// The amount as a decimal string with exactly the currency's number of decimals.
    pub fn to_decimal_string(self) -> String {
        format_minor(self.amount_minor, self.currency.minor_unit_exponent())
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self.amount_minor.checked_add(other.amount_minor).ok_or_else(|| overflow(self.amount_minor))?;
        Money::from_minor(sum, self.currency)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let difference =
            self.amount_minor.checked_sub(other.amount_minor).ok_or_else(|| overflow(self.amount_minor))?;
        Money::from_minor(difference, self.currency)
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency });
        }
        Ok(())
    }
}

fn overflow(amount_minor: i64) -> MoneyError {
    MoneyError::Overflow { text: amount_minor.to_string(), max_minor: MAX_AMOUNT_MINOR }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

/// Parses a decimal string into minor units of `currency`.
///
/// Accepted: an optional leading `-` (only where `sign` allows it), one or more digits, and
/// optionally `.` followed by one to `exponent` digits. Everything else is refused, including
/// exponents, spaces, `+`, `.5` and `5.`: an amount that could be read two ways is not money.
pub fn parse_minor(text: &str, currency: Currency, sign: Sign) -> Result<i64, MoneyError> {
    if text.is_empty() {
        return Err(MoneyError::Empty);
    }
    let not_decimal = || MoneyError::NotDecimal { text: text.to_owned() };
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_decimal());
    }
    let fraction = fraction.unwrap_or("");
    if unsigned.contains('.') && fraction.is_empty() {
        return Err(not_decimal());
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_decimal());
    }
    let exponent = currency.minor_unit_exponent();
    // Trailing zeros beyond the exponent carry no value ("12.300" CNY is 12.30), but any
    // non-zero digit there would be silently rounded, so it is refused.
    let significant_fraction = fraction.trim_end_matches('0');
    if significant_fraction.len() > usize::from(exponent) {
        return Err(MoneyError::TooManyDecimals {
            text: text.to_owned(),
            decimals: fraction.len(),
            max: exponent,
            currency,
        });
    }
    let overflow = || MoneyError::Overflow { text: text.to_owned(), max_minor: MAX_AMOUNT_MINOR };
    let mut minor: i64 = 0;
    for digit in whole.bytes() {
        minor = minor.checked_mul(10).and_then(|m| m.checked_add(i64::from(digit - b'0'))).ok_or_else(overflow)?;
        if minor > MAX_AMOUNT_MINOR {
            return Err(overflow());
        }
    }
    let fraction_bytes = significant_fraction.as_bytes();
    for position in 0..usize::from(exponent) {
        let digit = fraction_bytes.get(position).map_or(0, |d| d - b'0');
        minor = minor.checked_mul(10).and_then(|m| m.checked_add(i64::from(digit))).ok_or_else(overflow)?;
    }
    if minor > MAX_AMOUNT_MINOR {
        return Err(overflow());
    }
    let minor = if negative { -minor } else { minor };
    match sign {
        Sign::Positive | Sign::NonNegative if negative => Err(MoneyError::Negative { text: text.to_owned() }),
        Sign::Positive if minor == 0 => Err(MoneyError::Zero { text: text.to_owned() }),
        _ => Ok(minor),
    }
}

/// Formats minor units with `exponent` decimals: (1230, 2) → "12.30", (-5, 2) → "-0.05".
pub fn format_minor(amount_minor: i64, exponent: u8) -> String {
    format_minor_wide(i128::from(amount_minor), exponent)
}

/// [`format_minor`] for sums wider than one amount (the platform's running balances).
pub fn format_minor_wide(amount_minor: i128, exponent: u8) -> String {
    let magnitude = amount_minor.unsigned_abs();
    let sign = if amount_minor < 0 { "-" } else { "" };
    if exponent == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10u128.pow(u32::from(exponent));
    format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale, width = usize::from(exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cny() -> Currency {
        Currency::from_code("CNY").unwrap()
    }

    #[test]
    fn parses_exactly() {
        let jpy = Currency::from_code("JPY").unwrap();
        let bhd = Currency::from_code("BHD").unwrap();
        assert_eq!(parse_minor("12.30", cny(), Sign::Positive), Ok(1230));
        assert_eq!(parse_minor("12.3", cny(), Sign::Positive), Ok(1230));
        assert_eq!(parse_minor("12", cny(), Sign::Positive), Ok(1200));
        assert_eq!(parse_minor("0.01", cny(), Sign::Positive), Ok(1));
        assert_eq!(parse_minor("12.300", cny(), Sign::Positive), Ok(1230));
        assert_eq!(parse_minor("1230", jpy, Sign::Positive), Ok(1230));
        assert_eq!(parse_minor("1.234", bhd, Sign::Positive), Ok(1234));
        assert_eq!(parse_minor("-0.05", cny(), Sign::Any), Ok(-5));
        assert_eq!(parse_minor("0", cny(), Sign::NonNegative), Ok(0));
    }

    #[test]
    fn refuses_what_is_not_money() {
        let jpy = Currency::from_code("JPY").unwrap();
        for text in ["", "abc", "1e3", ".5", "5.", " 5", "5 ", "+5", "1,000", "1.2.3", "--1", "NaN"] {
            assert!(parse_minor(text, cny(), Sign::Any).is_err(), "{text:?} accepted");
        }
        assert!(matches!(
            parse_minor("12.345", cny(), Sign::Positive),
            Err(MoneyError::TooManyDecimals { max: 2, .. })
        ));
        assert!(matches!(parse_minor("1.5", jpy, Sign::Positive), Err(MoneyError::TooManyDecimals { max: 0, .. })));
        assert!(matches!(parse_minor("-1", cny(), Sign::Positive), Err(MoneyError::Negative { .. })));
        assert!(matches!(parse_minor("-0", cny(), Sign::NonNegative), Err(MoneyError::Negative { .. })));
        assert!(matches!(parse_minor("0.00", cny(), Sign::Positive), Err(MoneyError::Zero { .. })));
        assert!(matches!(
            parse_minor("99999999999999999999999", cny(), Sign::Positive),
            Err(MoneyError::Overflow { .. })
        ));
        assert!(matches!(parse_minor("10000000000000.01", cny(), Sign::Positive), Err(MoneyError::Overflow { .. })));
        assert_eq!(parse_minor("10000000000000.00", cny(), Sign::Positive), Ok(MAX_AMOUNT_MINOR));
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(format_minor(1230, 2), "12.30");
        assert_eq!(format_minor(5, 2), "0.05");
        assert_eq!(format_minor(-5, 2), "-0.05");
        assert_eq!(format_minor(1230, 0), "1230");
        assert_eq!(format_minor(1, 3), "0.001");
        assert_eq!(format_minor(i64::MIN, 2), "-92233720368547758.08");
    }

    #[test]
    fn arithmetic_checks_currency_and_bounds() {
        let usd = Currency::from_code("USD").unwrap();
        let a = Money::from_minor(100, cny()).unwrap();
        let b = Money::from_minor(100, usd).unwrap();
        assert!(matches!(a.checked_add(b), Err(MoneyError::CurrencyMismatch { .. })));
        let max = Money::from_minor(MAX_AMOUNT_MINOR, cny()).unwrap();
        assert!(matches!(max.checked_add(a), Err(MoneyError::Overflow { .. })));
        assert_eq!(a.checked_sub(a).unwrap().amount_minor, 0);
        assert_eq!(max.to_string(), "10000000000000.00 CNY");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(minor in -MAX_AMOUNT_MINOR..=MAX_AMOUNT_MINOR, pick in 0usize..1000) {
            let currency = Currency::all()[pick % Currency::all().len()];
            let text = format_minor(minor, currency.minor_unit_exponent());
            prop_assert_eq!(parse_minor(&text, currency, Sign::Any), Ok(minor));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = parse_minor(&text, cny(), Sign::Any);
        }
    }
}
