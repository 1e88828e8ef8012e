//! ISO 4217 currency table (active codes, plus a few funds codes that appear in QR payloads).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An ISO 4217 currency: alphabetic code, numeric code and the exponent of its minor unit.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    alpha: &'static str,
    numeric: u16,
    minor_unit_exponent: u8,
}

impl Currency {
    /// Alphabetic code, e.g. "CNY".
    pub fn alpha(self) -> &'static str {
        self.alpha
    }
    /// Numeric code, e.g. 156.
    pub fn numeric(self) -> u16 {
        self.numeric
    }
    /// Numeric code as the three-digit string used in EMV QR tag 53, e.g. "156".
    pub fn numeric_str(self) -> String {
        format!("{:03}", self.numeric)
    }
    /// Digits after the decimal point: CNY 2, JPY 0, BHD 3.
    pub fn minor_unit_exponent(self) -> u8 {
        self.minor_unit_exponent
    }

    /// Looks up an alphabetic code (case-insensitive) or a three-digit numeric code.
    pub fn from_code(code: &str) -> Option<Currency> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
            let numeric: u16 = code.parse().ok()?;
            return Self::from_numeric(numeric);
        }
        Self::from_alpha(code)
    }

    pub fn from_alpha(alpha: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.alpha.eq_ignore_ascii_case(alpha))
    }

    pub fn from_numeric(numeric: u16) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.numeric == numeric)
    }

    pub fn all() -> &'static [Currency] {
        CURRENCIES
    }
}

impl PartialOrd for Currency {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Currency {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.alpha.cmp(other.alpha)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.alpha)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.alpha)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.alpha)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code).ok_or_else(|| serde::de::Error::custom(format!("unknown currency `{code}`")))
    }
}

macro_rules! currencies {
    ($($alpha:literal $numeric:literal $exp:literal),* $(,)?) => {
        static CURRENCIES: &[Currency] = &[
            $(Currency { alpha: $alpha, numeric: $numeric, minor_unit_exponent: $exp }),*
        ];
    };
}

currencies! {
    "AED" 784 2, "AFN" 971 2, "ALL" 8 2, "AMD" 51 2, "ANG" 532 2, "AOA" 973 2, "ARS" 32 2,
    "AUD" 36 2, "AWG" 533 2, "AZN" 944 2, "BAM" 977 2, "BBD" 52 2, "BDT" 50 2, "BGN" 975 2,
    "BHD" 48 3, "BIF" 108 0, "BMD" 60 2, "BND" 96 2, "BOB" 68 2, "BRL" 986 2, "BSD" 44 2,
    "BTN" 64 2, "BWP" 72 2, "BYN" 933 2, "BZD" 84 2, "CAD" 124 2, "CDF" 976 2, "CHF" 756 2,
    "CLP" 152 0, "CNY" 156 2, "COP" 170 2, "CRC" 188 2, "CUP" 192 2, "CVE" 132 2, "CZK" 203 2,
    "DJF" 262 0, "DKK" 208 2, "DOP" 214 2, "DZD" 12 2, "EGP" 818 2, "ERN" 232 2, "ETB" 230 2,
    "EUR" 978 2, "FJD" 242 2, "FKP" 238 2, "GBP" 826 2, "GEL" 981 2, "GHS" 936 2, "GIP" 292 2,
    "GMD" 270 2, "GNF" 324 0, "GTQ" 320 2, "GYD" 328 2, "HKD" 344 2, "HNL" 340 2, "HTG" 332 2,
    "HUF" 348 2, "IDR" 360 2, "ILS" 376 2, "INR" 356 2, "IQD" 368 3, "IRR" 364 2, "ISK" 352 0,
    "JMD" 388 2, "JOD" 400 3, "JPY" 392 0, "KES" 404 2, "KGS" 417 2, "KHR" 116 2, "KMF" 174 0,
    "KPW" 408 2, "KRW" 410 0, "KWD" 414 3, "KYD" 136 2, "KZT" 398 2, "LAK" 418 2, "LBP" 422 2,
    "LKR" 144 2, "LRD" 430 2, "LSL" 426 2, "LYD" 434 3, "MAD" 504 2, "MDL" 498 2, "MGA" 969 2,
    "MKD" 807 2, "MMK" 104 2, "MNT" 496 2, "MOP" 446 2, "MRU" 929 2, "MUR" 480 2, "MVR" 462 2,
    "MWK" 454 2, "MXN" 484 2, "MYR" 458 2, "MZN" 943 2, "NAD" 516 2, "NGN" 566 2, "NIO" 558 2,
    "NOK" 578 2, "NPR" 524 2, "NZD" 554 2, "OMR" 512 3, "PAB" 590 2, "PEN" 604 2, "PGK" 598 2,
    "PHP" 608 2, "PKR" 586 2, "PLN" 985 2, "PYG" 600 0, "QAR" 634 2, "RON" 946 2, "RSD" 941 2,
    "RUB" 643 2, "RWF" 646 0, "SAR" 682 2, "SBD" 90 2, "SCR" 690 2, "SDG" 938 2, "SEK" 752 2,
    "SGD" 702 2, "SHP" 654 2, "SLE" 925 2, "SOS" 706 2, "SRD" 968 2, "SSP" 728 2, "STN" 930 2,
    "SVC" 222 2, "SYP" 760 2, "SZL" 748 2, "THB" 764 2, "TJS" 972 2, "TMT" 934 2, "TND" 788 3,
    "TOP" 776 2, "TRY" 949 2, "TTD" 780 2, "TWD" 901 2, "TZS" 834 2, "UAH" 980 2, "UGX" 800 0,
    "USD" 840 2, "UYU" 858 2, "UZS" 860 2, "VES" 928 2, "VND" 704 0, "VUV" 548 0, "WST" 882 2,
    "XAF" 950 0, "XCD" 951 2, "XOF" 952 0, "XPF" 953 0, "YER" 886 2, "ZAR" 710 2, "ZMW" 967 2,
    "ZWG" 924 2, "CLF" 990 4, "UYW" 927 4, "COU" 970 2, "BOV" 984 2, "MXV" 979 2, "CHE" 947 2,
    "CHW" 948 2, "USN" 997 2,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_unique_codes() {
        let all = Currency::all();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.alpha, b.alpha);
                assert_ne!(a.numeric, b.numeric, "{} and {}", a.alpha, b.alpha);
            }
        }
    }

    #[test]
    fn lookups() {
        let cny = Currency::from_code("CNY").unwrap();
        assert_eq!(cny.numeric(), 156);
        assert_eq!(cny.minor_unit_exponent(), 2);
        assert_eq!(Currency::from_code("156"), Some(cny));
        assert_eq!(Currency::from_code("cny"), Some(cny));
        assert_eq!(Currency::from_code("392").unwrap().minor_unit_exponent(), 0);
        assert_eq!(Currency::from_code("BHD").unwrap().minor_unit_exponent(), 3);
        assert_eq!(Currency::from_code("008").unwrap().alpha(), "ALL");
        assert_eq!(Currency::from_code("008").unwrap().numeric_str(), "008");
        assert_eq!(Currency::from_code("XXX"), None);
        assert_eq!(Currency::from_code("999"), None);
    }
}
