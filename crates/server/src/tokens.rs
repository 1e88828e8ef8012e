//! Shopper tokens: PASETO v4.public (Ed25519), minted by a wallet backend for one credit line
//! and one device, short-lived. A token lets its holder read their own line, status and
//! inbox and answer their own challenges, nothing more (`xiezhi_core`'s `authorize`).
//!
//! The payload is JSON: `sub` (credit line), `dev` (device), `wal` (the wallet that minted
//! it), `iat` and `exp` (milliseconds on the service clock). The implicit assertion binds
//! every token to this purpose, so a PASETO signed by the same key for something else does
//! not pass as a shopper token.

use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use pasetors::Public;
use serde::{Deserialize, Serialize};
use xiezhi_core::Shopper;

/// What every shopper token starts with.
pub const TOKEN_PREFIX: &str = "v4.public.";
/// How long a shopper token lives when the wallet asks for no particular time.
pub const DEFAULT_SHOPPER_TOKEN_TTL_S: i64 = 15 * 60;
/// The longest a shopper token may live.
pub const MAX_SHOPPER_TOKEN_TTL_S: i64 = 3_600;
/// Longest token accepted (a token is about 300 characters; this leaves room, no more).
pub const MAX_TOKEN_CHARS: usize = 1_024;
const IMPLICIT_ASSERTION: &[u8] = b"xiezhi shopper token v1";

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    dev: String,
    wal: String,
    /// The minting key's principal.
    kid: String,
    iat: i64,
    exp: i64,
}

/// The Ed25519 key pair tokens are signed and checked with.
pub struct TokenKeys {
    secret: AsymmetricSecretKey<V4>,
    public: AsymmetricPublicKey<V4>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// A fresh key pair from the OS generator (tokens then die with the process).
    pub fn generate() -> TokenKeys {
        let pair = AsymmetricKeyPair::<V4>::generate().expect("the OS random generator is available");
        TokenKeys { secret: pair.secret, public: pair.public }
    }

    /// A key pair from its 64 stored bytes (seed, then public key), as [`TokenKeys::to_bytes`]
    /// wrote them.
    pub fn from_bytes(bytes: &[u8]) -> Result<TokenKeys, String> {
        // The signing library panics on an all-zero seed; a damaged key file is an error.
        if bytes.len() != 64 || bytes[..32].iter().all(|b| *b == 0) {
            return Err("not a 64-byte Ed25519 key pair".to_owned());
        }
        let secret = AsymmetricSecretKey::<V4>::from(bytes).map_err(|_| "not a 64-byte Ed25519 key pair".to_owned())?;
        let public = AsymmetricPublicKey::<V4>::try_from(&secret).map_err(|_| "not an Ed25519 key pair".to_owned())?;
        Ok(TokenKeys { secret, public })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.secret.as_bytes().to_vec()
    }

    /// The public key, hex: what another service needs to check tokens itself.
    pub fn public_hex(&self) -> String {
        self.public.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn mint(&self, shopper: &Shopper, now_ms: i64, ttl_s: i64) -> String {
        let claims = Claims {
            sub: shopper.credit_line_id.clone(),
            dev: shopper.device_id.clone(),
            wal: shopper.wallet_id.clone(),
            kid: shopper.minted_by.clone(),
            iat: now_ms,
            exp: now_ms.saturating_add(ttl_s.saturating_mul(1000)),
        };
        let payload = serde_json::to_vec(&claims).expect("claims serialise");
        PublicToken::sign(&self.secret, &payload, None, Some(IMPLICIT_ASSERTION)).expect("signing a non-empty payload")
    }

    /// The shopper a token speaks for, if its signature holds and it has not expired.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Shopper, &'static str> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err("too long");
        }
        let untrusted = UntrustedToken::<Public, V4>::try_from(token).map_err(|_| "malformed")?;
        let trusted = PublicToken::verify(&self.public, &untrusted, None, Some(IMPLICIT_ASSERTION))
            .map_err(|_| "bad signature")?;
        let claims: Claims = serde_json::from_str(trusted.payload()).map_err(|_| "malformed claims")?;
        if claims.exp <= now_ms {
            return Err("expired");
        }
        Ok(Shopper { credit_line_id: claims.sub, device_id: claims.dev, wallet_id: claims.wal, minted_by: claims.kid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shopper() -> Shopper {
        Shopper {
            credit_line_id: "cl_1".into(),
            device_id: "dev-1".into(),
            wallet_id: "w".into(),
            minted_by: "key_1".into(),
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires_and_only_under_its_key() {
        let keys = TokenKeys::generate();
        let token = keys.mint(&shopper(), 1_000, 60);
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(keys.verify(&token, 60_999), Ok(shopper()));
        assert_eq!(keys.verify(&token, 61_000), Err("expired"));
        assert_eq!(TokenKeys::generate().verify(&token, 2_000), Err("bad signature"));
        let reloaded = TokenKeys::from_bytes(&keys.to_bytes()).unwrap();
        assert_eq!(reloaded.verify(&token, 2_000), Ok(shopper()));
        assert_eq!(reloaded.public_hex(), keys.public_hex());
    }

    #[test]
    fn a_changed_token_does_not_verify() {
        let keys = TokenKeys::generate();
        let token = keys.mint(&shopper(), 1_000, 60);
        for position in [TOKEN_PREFIX.len() + 3, token.len() / 2, token.len() - 2] {
            let mut bytes = token.clone().into_bytes();
            bytes[position] = if bytes[position] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            assert!(keys.verify(&changed, 2_000).is_err(), "{changed}");
        }
        assert_eq!(keys.verify("v4.public.", 0), Err("malformed"));
        assert!(TokenKeys::from_bytes(&[0u8; 64]).is_err());
    }
}
