//! One-time codes at rest: the outbox row of a challenge code holds the code sealed with
//! XChaCha20-Poly1305 under a key the store never sees, bound to the row's id (the AEAD's
//! associated data), so a copy of the database reveals no code and a ciphertext moved to
//! another row does not open. The dispatcher opens it just before sending; the writer
//! erases it once the row is delivered or dead, or its challenge is over.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

/// Bytes of a key (256 bits).
pub const CODE_KEY_BYTES: usize = 32;
/// XChaCha's nonce: 192 bits, large enough that random nonces never repeat in practice.
const NONCE_BYTES: usize = 24;
/// The format tag of a sealed value, so another scheme can be added beside it later.
const SEALED_PREFIX: &str = "xc1:";
/// Longest sealed value opened (a six-digit code seals to far less).
const MAX_SEALED_CHARS: usize = 512;

/// Why a key or a sealed code was refused. Never quotes a key, a code or a ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("an outbox key is {} hexadecimal digits (32 bytes)", CODE_KEY_BYTES * 2)]
    BadKey,
    #[error("the OS random generator failed: {0}")]
    Random(String),
    #[error("the sealed code is not in the expected format")]
    Malformed,
    #[error("the code does not open with this server's outbox key (the server restarted with another key, or the ciphertext belongs to another row)")]
    WrongKey,
    #[error("the code could not be sealed")]
    Seal,
}

/// The key one-time codes are sealed under. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct CodeKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(<redacted>)")
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], SealError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| SealError::Random(e.to_string()))?;
    Ok(bytes)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

impl CodeKey {
    /// A fresh key from the OS generator (kept in memory only by whoever asked).
    pub fn generate() -> Result<CodeKey, SealError> {
        Ok(CodeKey::from_bytes(&random_bytes::<CODE_KEY_BYTES>()?))
    }

    pub fn from_bytes(bytes: &[u8; CODE_KEY_BYTES]) -> CodeKey {
        CodeKey { cipher: XChaCha20Poly1305::new(bytes.into()) }
    }

    /// A key written as 64 hexadecimal digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<CodeKey, SealError> {
        let bytes = unhex(text.trim()).ok_or(SealError::BadKey)?;
        let bytes: [u8; CODE_KEY_BYTES] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(CodeKey::from_bytes(&bytes))
    }

    /// Seals `code` for the row `row_id`: `xc1:` and the hex of nonce and ciphertext.
    pub fn seal(&self, row_id: &str, code: &str) -> Result<String, SealError> {
        let nonce = random_bytes::<NONCE_BYTES>()?;
        let payload = Payload { msg: code.as_bytes(), aad: row_id.as_bytes() };
        let sealed = self.cipher.encrypt(XNonce::from_slice(&nonce), payload).map_err(|_| SealError::Seal)?;
        let mut all = nonce.to_vec();
        all.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", crate::message::hex(&all)))
    }

    /// Opens what [`CodeKey::seal`] sealed for the same row id.
    pub fn open(&self, row_id: &str, sealed: &str) -> Result<String, SealError> {
        if sealed.len() > MAX_SEALED_CHARS {
            return Err(SealError::Malformed);
        }
        let bytes = sealed.strip_prefix(SEALED_PREFIX).and_then(unhex).ok_or(SealError::Malformed)?;
        if bytes.len() <= NONCE_BYTES {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = Payload { msg: ciphertext, aad: row_id.as_bytes() };
        let code = self.cipher.decrypt(XNonce::from_slice(nonce), payload).map_err(|_| SealError::WrongKey)?;
        String::from_utf8(code).map_err(|_| SealError::Malformed)
    }
}

/// What a challenge-code row keeps beside its message: the challenge it answers, when that
/// challenge expires, and the sealed code until it is erased. The code itself is never an
/// argument of the stored message; the dispatcher adds it to the copy it sends.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedCode {
    pub challenge_id: String,
    /// After this the code is worthless: the row is never sent.
    pub expires_at_ms: i64,
    /// `None` once erased (delivered, dead, or the challenge over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<String>,
}

// The ciphertext is useless without the key, but logs have no need of it either.
impl std::fmt::Debug for SealedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCode")
            .field("challenge_id", &self.challenge_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("sealed", &self.ciphertext.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_opens_only_with_its_key_and_its_row() {
        let key = CodeKey::generate().unwrap();
        let sealed = key.seal("msg_1", "042917").unwrap();
        assert!(!sealed.contains("042917"), "{sealed}");
        assert_eq!(key.open("msg_1", &sealed).as_deref(), Ok("042917"));
        assert_eq!(key.open("msg_2", &sealed), Err(SealError::WrongKey), "bound to the row id");
        let other = CodeKey::generate().unwrap();
        assert_eq!(other.open("msg_1", &sealed), Err(SealError::WrongKey));
        assert_ne!(key.seal("msg_1", "042917").unwrap(), sealed, "a fresh nonce each time");
        assert_eq!(key.open("msg_1", "xc1:zz"), Err(SealError::Malformed));
        assert_eq!(key.open("msg_1", "042917"), Err(SealError::Malformed));
        assert_eq!(format!("{key:?}"), "CodeKey(<redacted>)");
    }

    #[test]
    fn keys_are_64_hex_digits() {
        let hex = "0f".repeat(32);
        let a = CodeKey::from_hex(&format!("{hex}\n")).unwrap();
        let b = CodeKey::from_hex(&hex).unwrap();
        assert_eq!(b.open("m", &a.seal("m", "123456").unwrap()).as_deref(), Ok("123456"));
        assert_eq!(CodeKey::from_hex("0f0f").unwrap_err(), SealError::BadKey);
        assert_eq!(CodeKey::from_hex(&"zz".repeat(32)).unwrap_err(), SealError::BadKey);
        assert_eq!(CodeKey::from_hex(&"é".repeat(32)).unwrap_err(), SealError::BadKey);
    }
}
