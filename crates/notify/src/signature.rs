//! Webhook signatures: `Xiezhi-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, the MAC
//! taken with the endpoint's secret over `{t}.{body}` (the timestamp, a dot, the exact body
//! bytes). The timestamp inside the MAC stops a captured request from being replayed later;
//! receivers check it is within a tolerance of their clock. Several `v1=` entries may appear
//! (while a secret is rotated); one matching is enough.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header's name.
pub const SIGNATURE_HEADER: &str = "Xiezhi-Signature";
/// Longest header a receiver parses.
pub const MAX_SIGNATURE_HEADER_BYTES: usize = 1024;
/// Most comma-separated entries in the header.
pub const MAX_SIGNATURE_ENTRIES: usize = 8;
/// How far a timestamp may be from the receiver's clock, by default.
pub const DEFAULT_TOLERANCE_S: u64 = 300;
/// Shortest secret accepted for signing: 128 bits from the generator, hex-encoded.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest secret accepted.
pub const MAX_SECRET_BYTES: usize = 256;
/// Most digits in a timestamp (seconds until the year 33658).
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// An endpoint's signing secret. Never printed: `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret must be {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} visible ASCII characters")]
    Invalid,
    #[error("the OS random generator failed: {0}")]
    Random(String),
}

impl WebhookSecret {
    pub fn new(secret: impl Into<String>) -> Result<WebhookSecret, SecretError> {
        let secret = secret.into();
        let ok = (MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&secret.len())
            && secret.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(WebhookSecret(secret))
        } else {
            Err(SecretError::Invalid)
        }
    }

    /// A fresh secret: `whsec_` and 64 hex digits (256 bits from the OS generator).
    pub fn generate() -> Result<WebhookSecret, SecretError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(WebhookSecret(format!("whsec_{}", crate::message::hex(&bytes))))
    }

    /// The secret's text, to hand to the endpoint's owner once. The MAC key is these bytes.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Why a signature was refused. Receivers should answer all of them the same way (401)
/// and not tell the sender which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is longer than {MAX_SIGNATURE_HEADER_BYTES} bytes")]
    TooLong,
    #[error("the signature header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the signature header has no v1 signature")]
    NoSignature,
    #[error("the timestamp is {age_s} s from now, beyond the tolerance")]
    Stale { age_s: u64 },
    #[error("no signature matches")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this never fails.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The hex HMAC-SHA256 of `{timestamp}.{body}`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    crate::message::hex(&mac(secret, timestamp, body).finalize().into_bytes())
}

/// The header value: `t=<timestamp>,v1=<hex>`.
pub fn signature_header(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret.expose().as_bytes(), timestamp, body))
}

/// A parsed header: its timestamp and every `v1` signature in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    pub timestamp: i64,
    pub v1: Vec<[u8; 32]>,
}

fn hex_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Reads `t=…,v1=…[,v1=…]`; entries of other schemes (`v0=`, a later `v2=`) are skipped
/// so that senders can add one without breaking receivers.
pub fn parse_signature_header(header: &str) -> Result<ParsedSignature, SignatureError> {
    if header.len() > MAX_SIGNATURE_HEADER_BYTES {
        return Err(SignatureError::TooLong);
    }
    let mut timestamp = None;
    let mut v1 = vec![];
    for (i, entry) in header.split(',').enumerate() {
        if i >= MAX_SIGNATURE_ENTRIES {
            return Err(SignatureError::Malformed("too many entries"));
        }
        let (key, value) =
            entry.trim_matches(' ').split_once('=').ok_or(SignatureError::Malformed("entry without ="))?;
        match key {
            "t" => {
                let digits_ok = !value.is_empty()
                    && value.len() <= MAX_TIMESTAMP_DIGITS
                    && value.bytes().all(|b| b.is_ascii_digit());
                let parsed = value.parse::<i64>().ok().filter(|_| digits_ok);
                let parsed = parsed.ok_or(SignatureError::Malformed("t is not a number of seconds"))?;
                if timestamp.replace(parsed).is_some() {
                    return Err(SignatureError::Malformed("more than one t"));
                }
            }
            "v1" => v1.push(hex_digest(value).ok_or(SignatureError::Malformed("v1 is not 64 hex digits"))?),
            "" => return Err(SignatureError::Malformed("empty key")),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t"))?;
    if v1.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    Ok(ParsedSignature { timestamp, v1 })
}

/// What a receiver runs on each request: the header parses, its timestamp is within
/// `tolerance_s` of `now` (unix seconds, either side), and one `v1` is the MAC of
/// `{t}.{body}` under `secret` (compared in constant time).
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_s: u64,
) -> Result<(), SignatureError> {
    let parsed = parse_signature_header(header)?;
    let age_s = now.saturating_sub(parsed.timestamp).unsigned_abs();
    if age_s > tolerance_s {
        return Err(SignatureError::Stale { age_s });
    }
    let expected = mac(secret, parsed.timestamp, body);
    if parsed.v1.iter().any(|candidate| expected.clone().verify_slice(candidate).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_0123456789abcdef_0123456789";
    const BODY: &[u8] = br#"{"id":"msg_1","type":"appeal_received"}"#;
    const T: i64 = 1_767_225_600;

    #[test]
    fn known_answer_vector_from_python() {
        // python3 -c "import hmac,hashlib; print(hmac.new(b'whsec_test_0123456789abcdef',
        //   b'1767225600.' + b'{\"id\":\"msg_1\",\"type\":\"appeal_received\"}', hashlib.sha256).hexdigest())"
        assert_eq!(
            sign(b"whsec_test_0123456789abcdef", T, BODY),
            "c4cd29513061e28281764721ef43bfaaf11794a90a8c30a454e3af58b528c147"
        );
    }

    #[test]
    fn a_signed_body_verifies_and_a_changed_one_does_not() {
        let secret = WebhookSecret::new(SECRET).expect("valid");
        let header = signature_header(&secret, T, BODY);
        assert!(header.starts_with(&format!("t={T},v1=")), "{header}");
        assert_eq!(verify_signature(SECRET.as_bytes(), &header, BODY, T + 10, 300), Ok(()));
        assert_eq!(verify_signature(SECRET.as_bytes(), &header, b"{}", T, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(b"another secret", &header, BODY, T, 300), Err(SignatureError::Mismatch));
        // The timestamp is inside the MAC: moving it breaks the signature.
        let moved = header.replacen(&T.to_string(), &(T + 1).to_string(), 1);
        assert_eq!(verify_signature(SECRET.as_bytes(), &moved, BODY, T, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let secret = WebhookSecret::new(SECRET).expect("valid");
        let header = signature_header(&secret, T, BODY);
        assert_eq!(
            verify_signature(SECRET.as_bytes(), &header, BODY, T + 301, 300),
            Err(SignatureError::Stale { age_s: 301 })
        );
        assert_eq!(
            verify_signature(SECRET.as_bytes(), &header, BODY, T - 301, 300),
            Err(SignatureError::Stale { age_s: 301 })
        );
        assert!(matches!(
            verify_signature(SECRET.as_bytes(), &header, BODY, i64::MIN, 300),
            Err(SignatureError::Stale { .. })
        ));
    }

    #[test]
    fn rotation_any_matching_v1_is_enough_and_other_schemes_are_skipped() {
        let good = sign(SECRET.as_bytes(), T, BODY);
        let header = format!("t={T},v0=whatever,v1={},v1={good}", "0".repeat(64));
        assert_eq!(verify_signature(SECRET.as_bytes(), &header, BODY, T, 300), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let v1 = "a".repeat(64);
        let cases: &[(&str, SignatureError)] = &[
            ("", SignatureError::Malformed("entry without =")),
            ("t=1", SignatureError::NoSignature),
            (&format!("v1={v1}"), SignatureError::Malformed("no t")),
            (&format!("t=-5,v1={v1}"), SignatureError::Malformed("t is not a number of seconds")),
            (&format!("t=1e9,v1={v1}"), SignatureError::Malformed("t is not a number of seconds")),
            (&format!("t=9999999999999,v1={v1}"), SignatureError::Malformed("t is not a number of seconds")),
            (&format!("t=1,t=2,v1={v1}"), SignatureError::Malformed("more than one t")),
            ("t=1,v1=abc", SignatureError::Malformed("v1 is not 64 hex digits")),
            (&format!("t=1,v1={}", "g".repeat(64)), SignatureError::Malformed("v1 is not 64 hex digits")),
            (&format!("t=1,v1={}", "é".repeat(32)), SignatureError::Malformed("v1 is not 64 hex digits")),
            (&format!("t=1,=x,v1={v1}"), SignatureError::Malformed("empty key")),
            (&format!("t=1{}", ",x=1".repeat(8)), SignatureError::Malformed("too many entries")),
            (&"x".repeat(MAX_SIGNATURE_HEADER_BYTES + 1), SignatureError::TooLong),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_signature_header(header).as_ref().err(), Some(expected), "{header}");
        }
    }

    #[test]
    fn secrets_are_checked_generated_and_never_printed() {
        assert_eq!(WebhookSecret::new("short"), Err(SecretError::Invalid));
        assert_eq!(WebhookSecret::new(format!("{SECRET} with space")), Err(SecretError::Invalid));
        let a = WebhookSecret::generate().expect("OS generator");
        let b = WebhookSecret::generate().expect("OS generator");
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 6 + 64);
        assert!(!format!("{a:?}").contains(&a.expose()[6..]));
    }
}
