//! Who may call: API keys, their kinds and scopes, and the callers a command runs for.
//!
//! A key is 192 bits from the OS generator, shown once when it is made and kept only as its
//! SHA-256 (a key that long cannot be guessed from its hash, so no slow hash is needed, and
//! every request can be checked with one lookup). Keys are records in the store, written by
//! the writer like everything else; the [`KeyRing`] is the writer's copy of the valid ones,
//! shared with the HTTP layer, which checks every request against it without a round trip
//! to the writer.
//!
//! Scopes are checked at the HTTP boundary (one table per route). What a scope cannot say,
//! whose payment or line it is, is checked here by the writer ([`State::authorize`]), where
//! the payment and the line are at hand.

use crate::state::{record, State};
use crate::{Command, CoreError, Reply};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use xiezhi_store::{Batch, RecordKind};

/// The most API keys a store keeps (revoked ones included).
pub const MAX_API_KEYS: usize = 10_000;
/// The longest overlap a rotation may grant the old key.
pub const MAX_ROTATION_OVERLAP_S: i64 = 30 * 86_400;
/// The overlap a rotation grants the old key when none is given.
pub const DEFAULT_ROTATION_OVERLAP_S: i64 = 86_400;
/// The shortest key accepted from `XIEZHI_BOOTSTRAP_ADMIN_KEY` (a key made here is longer).
pub const MIN_BOOTSTRAP_KEY_CHARS: usize = 32;
/// What every key made here starts with (so a leaked one is recognisable by scanners).
pub const KEY_PREFIX: &str = "xz_";

macro_rules! scopes {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// What a key may do. Each route needs one scope (the server's route table).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope { $($variant),* }

        impl Scope {
            pub const ALL: &'static [Scope] = &[$(Scope::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(Scope::$variant => $name),* }
            }
            pub fn parse(text: &str) -> Option<Scope> {
                match text { $($name => Some(Scope::$variant),)* _ => None }
            }
        }
    };
}

scopes! {
    PaymentsWrite = "payments:write",
    PaymentsSettle = "payments:settle",
    PaymentsRead = "payments:read",
    DecisionsRead = "decisions:read",
    LinesWrite = "lines:write",
    LinesRead = "lines:read",
    LinesMigrate = "lines:migrate",
    ChallengesWrite = "challenges:write",
    MerchantsWrite = "merchants:write",
    MerchantsRead = "merchants:read",
    QrWrite = "qr:write",
    RulesRead = "rules:read",
    RulesWrite = "rules:write",
    PolicyRead = "policy:read",
    PolicyWrite = "policy:write",
    ListsRead = "lists:read",
    ListsWrite = "lists:write",
    ModelsWrite = "models:write",
    KeysAdmin = "keys:admin",
    TokensMint = "tokens:mint",
    StatsRead = "stats:read",
    MetricsRead = "metrics:read",
    // Appended: a scope's place is its bit, never stored, but keep the list's order stable.
    AppealsFile = "appeals:file",
    AppealsDecide = "appeals:decide",
    RestrictionsWrite = "restrictions:write",
    FundRead = "fund:read",
    FundWrite = "fund:write",
    OutboxRead = "outbox:read",
    OutboxReplay = "outbox:replay",
    ReportsRead = "reports:read",
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Scope, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown scope `{text}`")))
    }
}

/// A set of scopes, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u32);

const _: () = assert!(Scope::ALL.len() <= 32, "scopes fit one u32");

impl Scopes {
    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | 1 << *s as u32))
    }
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & (1 << scope as u32) != 0
    }
    pub fn list(self) -> Vec<Scope> {
        Scope::ALL.iter().copied().filter(|s| self.contains(*s)).collect()
    }
}

/// Who holds a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// The platform's back office: every scope may be granted.
    Operator,
    /// One merchant: its own payments (read, capture, void, refund), its record and codes.
    Merchant,
    /// The shopper-facing app's backend: opens lines and acts for the shoppers on them.
    Wallet,
}

impl KeyKind {
    /// The scopes a key of this kind may hold (also its scopes when none are asked for).
    pub fn allowed(self) -> Scopes {
        use Scope::*;
        match self {
            KeyKind::Operator => Scopes::of(Scope::ALL),
            KeyKind::Merchant => Scopes::of(&[PaymentsRead, PaymentsSettle, MerchantsRead, QrWrite]),
            KeyKind::Wallet => Scopes::of(&[
                PaymentsWrite,
                PaymentsRead,
                LinesWrite,
                LinesRead,
                ChallengesWrite,
                TokensMint,
                AppealsFile,
            ]),
        }
    }
}

/// A key as stored: never the key itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    /// The first key of a rotation chain: idempotency keys are scoped by it, so a request
    /// retried with the rotated key finds the answer given to the old one.
    pub principal_id: String,
    pub name: String,
    pub kind: KeyKind,
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<String>,
    /// SHA-256 of the key, hex.
    pub secret_sha256: String,
    /// The key's first characters, to tell keys apart in a listing.
    pub prefix: String,
    pub created_at_ms: i64,
    /// The key that made this one (`bootstrap` for the first admin key).
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<String>,
}

impl ApiKey {
    fn valid_at(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|t| t > now_ms)
    }

    fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "scopes": self.scopes,
            "merchant_id": self.merchant_id,
            "wallet_id": self.wallet_id,
            "prefix": self.prefix,
            "created_at": crate::timestamp(self.created_at_ms),
            "created_by": self.created_by,
            "expires_at": self.expires_at_ms.map(crate::timestamp),
            "revoked_at": self.revoked_at_ms.map(crate::timestamp),
            "rotated_to": self.rotated_to,
        })
    }
}

/// An authenticated key, as a request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub principal_id: String,
    pub kind: KeyKind,
    pub scopes: Scopes,
    pub merchant_id: Option<String>,
    pub wallet_id: Option<String>,
    pub expires_at_ms: Option<i64>,
}

/// A shopper's token, verified: it speaks for one credit line from one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shopper {
    pub credit_line_id: String,
    pub device_id: String,
    /// The wallet that minted the token (empty when an operator key did).
    pub wallet_id: String,
    /// The principal of the key that minted it: the token dies with that key.
    pub minted_by: String,
}

/// For whom a command runs.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The process itself (its CLI tools, benchmarks, the in-process simulator): trusted.
    System,
    Key(Arc<Principal>),
    Shopper(Arc<Shopper>),
}

impl Caller {
    /// The id stored with what this caller sets (who opened a line, who moved it in).
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Caller::Key(p) => Some(&p.key_id),
            _ => None,
        }
    }

    /// Idempotency keys are scoped per caller, so two callers cannot collide or read each
    /// other's answers.
    pub(crate) fn idempotency_scope(&self) -> Option<&str> {
        match self {
            Caller::System => None,
            Caller::Key(p) => Some(&p.principal_id),
            Caller::Shopper(s) => Some(&s.credit_line_id),
        }
    }

    fn operator_with(&self, scope: Scope) -> bool {
        match self {
            Caller::System => true,
            Caller::Key(p) => p.kind == KeyKind::Operator && p.scopes.contains(scope),
            Caller::Shopper(_) => false,
        }
    }
}

/// Why a presented key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Unknown, revoked, or (after a rotation's overlap) expired.
    Invalid,
}

/// The valid keys by hash, shared by the writer (which replaces them on every change) and
/// the HTTP layer (which reads them on every request).
#[derive(Debug, Default)]
pub struct KeyRing {
    by_hash: RwLock<HashMap<[u8; 32], Arc<Principal>>>,
    /// Each principal with a key not revoked, and when its last such key expires (`None`:
    /// never).
    principals: RwLock<HashMap<String, Option<i64>>>,
    /// Whether any key was ever made (a store with none gets the bootstrap key).
    any: std::sync::atomic::AtomicBool,
}

pub fn key_sha256(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl KeyRing {
    /// The principal behind `secret`, if it is a valid key at `now_ms`.
    pub fn authenticate(&self, secret: &str, now_ms: i64) -> Result<Arc<Principal>, KeyRefusal> {
        let hash = key_sha256(secret);
        let ring = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        let principal = ring.get(&hash).ok_or(KeyRefusal::Invalid)?;
        if principal.expires_at_ms.is_some_and(|t| t <= now_ms) {
            return Err(KeyRefusal::Invalid);
        }
        Ok(Arc::clone(principal))
    }

    /// Whether `principal_id` still has a valid key (a shopper token lives only as long as
    /// the key that minted it).
    pub fn principal_active(&self, principal_id: &str, now_ms: i64) -> bool {
        let principals = self.principals.read().unwrap_or_else(|e| e.into_inner());
        principals.get(principal_id).is_some_and(|until| until.is_none_or(|t| t > now_ms))
    }

    pub fn is_empty(&self) -> bool {
        !self.any.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn publish(&self, keys: &HashMap<String, ApiKey>) {
        let mut ring = HashMap::with_capacity(keys.len());
        let mut principals: HashMap<String, Option<i64>> = HashMap::new();
        for key in keys.values().filter(|k| k.revoked_at_ms.is_none()) {
            let until = principals.entry(key.principal_id.clone()).or_insert(key.expires_at_ms);
            *until = match (*until, key.expires_at_ms) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            let Some(hash) = crate::decide::hex_bytes(&key.secret_sha256).and_then(|h| <[u8; 32]>::try_from(h).ok())
            else {
                tracing::error!(key_id = %key.id, "a stored key's hash is not 32 bytes of hex; the key is not accepted");
                continue;
            };
            let principal = Principal {
                key_id: key.id.clone(),
                principal_id: key.principal_id.clone(),
                kind: key.kind,
                scopes: Scopes::of(&key.scopes),
                merchant_id: key.merchant_id.clone(),
                wallet_id: key.wallet_id.clone(),
                expires_at_ms: key.expires_at_ms,
            };
            ring.insert(hash, Arc::new(principal));
        }
        *self.by_hash.write().unwrap_or_else(|e| e.into_inner()) = ring;
        *self.principals.write().unwrap_or_else(|e| e.into_inner()) = principals;
        self.any.store(!keys.is_empty(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// A request for a new key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    pub kind: KeyKind,
    /// Default: every scope the kind allows.
    #[serde(default)]
    #[cfg_attr(feature = "utoipa", schema(value_type = Option<Vec<String>>))]
    pub scopes: Option<Vec<Scope>>,
    /// Required for (and only for) merchant keys.
    #[serde(default)]
    pub merchant_id: Option<String>,
    /// Required for (and only for) wallet keys: the wallet the lines it opens belong to.
    #[serde(default)]
    pub wallet_id: Option<String>,
}

/// Key management, run by the writer.
#[derive(Debug, Clone)]
pub enum KeyCommand {
    Create(NewApiKey),
    List,
    Rotate {
        id: String,
        overlap_s: Option<i64>,
    },
    Revoke {
        id: String,
    },
    /// Makes an admin key with every scope if the store has no key at all: with `secret`
    /// when given (`XIEZHI_BOOTSTRAP_ADMIN_KEY`), else a fresh one, returned once.
    Bootstrap {
        secret: Option<String>,
    },
}

/// What a key may do and for whom: carried over to a rotated key's successor.
struct Terms {
    name: String,
    kind: KeyKind,
    scopes: Vec<Scope>,
    merchant_id: Option<String>,
    wallet_id: Option<String>,
}

/// A new key record under `terms` for `secret` (kept only as its hash), in the rotation chain
/// of `principal_id` (a new chain when `None`).
fn issue(terms: Terms, principal_id: Option<String>, secret: &str, prefix: String, by: &str, now_ms: i64) -> ApiKey {
    let id = crate::state::new_id("key", now_ms);
    ApiKey {
        principal_id: principal_id.unwrap_or_else(|| id.clone()),
        id,
        name: terms.name,
        kind: terms.kind,
        scopes: terms.scopes,
        merchant_id: terms.merchant_id,
        wallet_id: terms.wallet_id,
        secret_sha256: crate::decide::hex(&key_sha256(secret)),
        prefix,
        created_at_ms: now_ms,
        created_by: by.to_owned(),
        expires_at_ms: None,
        revoked_at_ms: None,
        rotated_to: None,
    }
}

/// The first characters of a key made here, to tell keys apart in a listing (24 of its 192
/// bits).
fn visible_prefix(secret: &str) -> String {
    secret[..KEY_PREFIX.len() + 6].to_owned()
}

/// A fresh key: `xz_` and 48 hex digits (192 bits from the OS generator).
fn fresh_secret() -> String {
    let bytes: [u8; 24] = crate::random::os_bytes();
    format!("{KEY_PREFIX}{}", crate::decide::hex(&bytes))
}

/// A key manages only keys whose scopes it holds itself: `keys:admin` alone is not a way to
/// mint, take over (by rotating) or shut out (by revoking) a stronger key.
fn within(ceiling: Scopes, scopes: &[Scope]) -> Result<(), CoreError> {
    match scopes.iter().find(|s| !ceiling.contains(**s)) {
        None => Ok(()),
        Some(scope) => Err(CoreError::Forbidden {
            scope: scope.as_str().into(),
            message: format!("this key does not hold `{}`, so it cannot manage a key that does", scope.as_str()),
        }),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> CoreError {
    CoreError::InvalidRequest { field: field.into(), message: message.into() }
}

impl State {
    pub(crate) fn reload_keys(&mut self) -> Result<(), xiezhi_store::StoreError> {
        self.api_keys.clear();
        for stored in self.store.records(RecordKind::ApiKey)? {
            let key: ApiKey = serde_json::from_str(&stored.body)
                .map_err(|e| xiezhi_store::StoreError::Corrupt(format!("api key `{}`: {e}", stored.id)))?;
            self.api_keys.insert(key.id.clone(), key);
        }
        self.key_ring.publish(&self.api_keys);
        Ok(())
    }

    fn save_key(&mut self, key: ApiKey, now_ms: i64, out: &mut Batch) {
        out.records.push(record(RecordKind::ApiKey, &key.id, &key, now_ms));
        self.api_keys.insert(key.id.clone(), key);
        self.key_ring.publish(&self.api_keys);
    }

    pub(crate) fn key_command(
        &mut self,
        caller: &Caller,
        command: KeyCommand,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let by = caller.key_id().unwrap_or("system").to_owned();
        let ceiling = match caller {
            Caller::System => Scopes::of(Scope::ALL),
            Caller::Key(p) => p.scopes,
            Caller::Shopper(_) => Scopes::default(),
        };
        match command {
            KeyCommand::Create(request) => {
                within(ceiling, request.scopes.as_deref().unwrap_or(&request.kind.allowed().list()))?;
                self.create_key(request, &by, now_ms, out)
            }
            KeyCommand::List => {
                let mut keys: Vec<&ApiKey> = self.api_keys.values().collect();
                keys.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
                let keys: Vec<serde_json::Value> = keys.iter().map(|k| k.view()).collect();
                Ok(Reply::Document(serde_json::json!({ "api_keys": keys })))
            }
            KeyCommand::Rotate { id, overlap_s } => {
                within(ceiling, &self.live_key(&id, now_ms)?.scopes)?;
                self.rotate_key(&id, overlap_s, &by, now_ms, out)
            }
            KeyCommand::Revoke { id } => {
                let mut key = self.live_key(&id, now_ms)?;
                within(ceiling, &key.scopes)?;
                key.revoked_at_ms = Some(now_ms);
                let view = key.view();
                self.save_key(key, now_ms, out);
                tracing::info!(key_id = %id, by = %by, "API key revoked");
                Ok(Reply::Document(view))
            }
            KeyCommand::Bootstrap { secret } => self.bootstrap_key(secret, now_ms, out),
        }
    }

    fn live_key(&self, id: &str, now_ms: i64) -> Result<ApiKey, CoreError> {
        self.api_keys
            .get(id)
            .filter(|k| k.valid_at(now_ms))
            .cloned()
            .ok_or_else(|| CoreError::ApiKeyNotFound { id: id.to_owned() })
    }

    fn check_new_key(&self, request: &NewApiKey) -> Result<Scopes, CoreError> {
        crate::state::check_text("name", &request.name)?;
        if self.api_keys.len() >= MAX_API_KEYS {
            return Err(invalid("kind", format!("the store keeps at most {MAX_API_KEYS} keys")));
        }
        match (request.kind, &request.merchant_id, &request.wallet_id) {
            (KeyKind::Merchant, Some(merchant_id), None) => {
                self.merchants
                    .get(merchant_id)
                    .ok_or_else(|| CoreError::MerchantNotFound { id: merchant_id.clone() })?;
            }
            (KeyKind::Wallet, None, Some(wallet_id)) => crate::state::check_text("wallet_id", wallet_id)?,
            (KeyKind::Operator, None, None) => {}
            (KeyKind::Merchant, _, _) => return Err(invalid("merchant_id", "a merchant key names its merchant_id")),
            (KeyKind::Wallet, _, _) => return Err(invalid("wallet_id", "a wallet key names its wallet_id")),
            (KeyKind::Operator, _, _) => {
                return Err(invalid("kind", "an operator key names neither merchant_id nor wallet_id"))
            }
        }
        let allowed = request.kind.allowed();
        let scopes = match &request.scopes {
            None => allowed,
            Some(scopes) => {
                if let Some(scope) = scopes.iter().find(|s| !allowed.contains(**s)) {
                    return Err(invalid(
                        "scopes",
                        format!("a {:?} key cannot hold `{}`", request.kind, scope.as_str()).to_lowercase(),
                    ));
                }
                Scopes::of(scopes)
            }
        };
        Ok(scopes)
    }

    fn create_key(&mut self, request: NewApiKey, by: &str, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        let scopes = self.check_new_key(&request)?;
        let secret = fresh_secret();
        let terms = Terms {
            name: request.name,
            kind: request.kind,
            scopes: scopes.list(),
            merchant_id: request.merchant_id,
            wallet_id: request.wallet_id,
        };
        let key = issue(terms, None, &secret, visible_prefix(&secret), by, now_ms);
        tracing::info!(key_id = %key.id, kind = ?key.kind, by = %by, "API key created");
        Ok(self.key_with_secret(key, secret, now_ms, out))
    }

    /// Saves `key` and answers with its view and, this once, the key itself.
    fn key_with_secret(&mut self, key: ApiKey, secret: String, now_ms: i64, out: &mut Batch) -> Reply {
        let mut view = key.view();
        view["key"] = serde_json::Value::String(secret);
        self.save_key(key, now_ms, out);
        Reply::Document(view)
    }

    fn rotate_key(
        &mut self,
        id: &str,
        overlap_s: Option<i64>,
        by: &str,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let overlap_s = overlap_s.unwrap_or(DEFAULT_ROTATION_OVERLAP_S);
        if !(0..=MAX_ROTATION_OVERLAP_S).contains(&overlap_s) {
            return Err(invalid("overlap_s", format!("the overlap is 0 to {MAX_ROTATION_OVERLAP_S} seconds")));
        }
        let mut old = self.live_key(id, now_ms)?;
        if self.api_keys.len() >= MAX_API_KEYS {
            return Err(invalid("id", format!("the store keeps at most {MAX_API_KEYS} keys")));
        }
        let secret = fresh_secret();
        let terms = Terms {
            name: old.name.clone(),
            kind: old.kind,
            scopes: old.scopes.clone(),
            merchant_id: old.merchant_id.clone(),
            wallet_id: old.wallet_id.clone(),
        };
        let key = issue(terms, Some(old.principal_id.clone()), &secret, visible_prefix(&secret), by, now_ms);
        let until = now_ms.saturating_add(overlap_s * 1000);
        old.expires_at_ms = Some(old.expires_at_ms.map_or(until, |t| t.min(until)));
        old.rotated_to = Some(key.id.clone());
        tracing::info!(key_id = %old.id, new_key_id = %key.id, by = %by, "API key rotated");
        self.save_key(old, now_ms, out);
        Ok(self.key_with_secret(key, secret, now_ms, out))
    }

    fn bootstrap_key(&mut self, secret: Option<String>, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        if !self.api_keys.is_empty() {
            return Ok(Reply::Document(serde_json::json!({ "created": false })));
        }
        let from_env = secret.is_some();
        let secret = match secret {
            Some(s) if s.chars().count() < MIN_BOOTSTRAP_KEY_CHARS || !s.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(invalid(
                    "XIEZHI_BOOTSTRAP_ADMIN_KEY",
                    format!("the bootstrap key is at least {MIN_BOOTSTRAP_KEY_CHARS} visible ASCII characters"),
                ));
            }
            Some(s) => s,
            None => fresh_secret(),
        };
        let terms = Terms {
            name: "bootstrap admin".into(),
            kind: KeyKind::Operator,
            scopes: Scope::ALL.to_vec(),
            merchant_id: None,
            wallet_id: None,
        };
        // A key chosen by the operator may not start with our prefix: show none of it.
        let prefix = if from_env { "(XIEZHI_BOOTSTRAP_ADMIN_KEY)".into() } else { visible_prefix(&secret) };
        let key = issue(terms, None, &secret, prefix, "bootstrap", now_ms);
        let Reply::Document(mut view) = self.key_with_secret(key, secret, now_ms, out) else { unreachable!() };
        view["created"] = serde_json::Value::Bool(true);
        Ok(Reply::Document(view))
    }

    /// Whether `caller` may run `command` on the records it names: a merchant key acts on
    /// its own merchant's payments only, a wallet key on the lines it opened, a shopper on
    /// their own line. What is not theirs is answered as not found, so ids cannot be probed.
    pub(crate) fn authorize(&mut self, caller: &Caller, command: &Command) -> Result<(), CoreError> {
        match caller {
            Caller::System => Ok(()),
            Caller::Key(p) if p.kind == KeyKind::Operator => self.check_migration(caller, command),
            Caller::Key(p) if p.kind == KeyKind::Merchant => {
                let merchant_id = p.merchant_id.as_deref().unwrap_or_default();
                self.authorize_merchant(merchant_id, command)
            }
            Caller::Key(p) => {
                self.check_migration(caller, command)?;
                let wallet_id = p.wallet_id.as_deref().unwrap_or_default();
                self.authorize_wallet(wallet_id, command)
            }
            Caller::Shopper(s) => self.authorize_shopper(s, command),
        }
    }

    /// Moving a line or a merchant in from an older book (backdating it, or setting a
    /// verified identity level) is for operators with the migrate scope: a backdated line
    /// would defeat the young-line rules, a backdated merchant the pasted-QR check.
    fn check_migration(&self, caller: &Caller, command: &Command) -> Result<(), CoreError> {
        // A line with a limit or on an application alike.
        let migrated_line = command.new_line().is_some_and(|r| r.opened_at.is_some() || r.profile.kyc_level != 0);
        match command {
            _ if migrated_line => {
                if caller.operator_with(crate::Scope::LinesMigrate) {
                    return Ok(());
                }
                Err(CoreError::Forbidden {
                    scope: "lines:migrate".into(),
                    message: "setting `opened_at` or `profile.kyc_level` needs an operator key with lines:migrate"
                        .into(),
                })
            }
            Command::CreateMerchant(r) if r.onboarded_at.is_some() && !caller.operator_with(Scope::MerchantsWrite) => {
                Err(CoreError::Forbidden {
                    scope: "merchants:write".into(),
                    message: "setting `onboarded_at` needs an operator key with merchants:write".into(),
                })
            }
            _ => Ok(()),
        }
    }

    fn payment_of_merchant(&mut self, id: &str, merchant_id: &str) -> Result<(), CoreError> {
        match self.payment(id) {
            Ok(p) if p.merchant_id == merchant_id => Ok(()),
            Ok(_) | Err(CoreError::PaymentNotFound { .. }) => Err(CoreError::PaymentNotFound { id: id.to_owned() }),
            Err(other) => Err(other),
        }
    }

    fn authorize_merchant(&mut self, merchant_id: &str, command: &Command) -> Result<(), CoreError> {
        match command {
            Command::GetMerchant { id } | Command::IssueDynamicQr { merchant_id: id, .. } => {
                if id == merchant_id {
                    Ok(())
                } else {
                    Err(CoreError::MerchantNotFound { id: id.clone() })
                }
            }
            Command::GetPayment { id }
            | Command::Capture { payment_id: id, .. }
            | Command::Void { payment_id: id }
            | Command::Refund { payment_id: id, .. }
            | Command::GetDecision { payment_id: id } => self.payment_of_merchant(id, merchant_id),
            _ => Err(not_for("a merchant key")),
        }
    }

    fn line_of_wallet(&self, credit_line_id: &str, wallet_id: &str) -> Result<(), CoreError> {
        let owned = self.line_profiles.get(credit_line_id).is_some_and(|p| p.wallet_id.as_deref() == Some(wallet_id));
        if owned {
            Ok(())
        } else {
            Err(CoreError::CreditLineNotFound { id: credit_line_id.to_owned() })
        }
    }

    fn payment_of_wallet(&mut self, id: &str, wallet_id: &str) -> Result<(), CoreError> {
        match self.payment(id) {
            Ok(p) if self.line_of_wallet(&p.credit_line_id, wallet_id).is_ok() => Ok(()),
            Ok(_) | Err(CoreError::PaymentNotFound { .. }) => Err(CoreError::PaymentNotFound { id: id.to_owned() }),
            Err(other) => Err(other),
        }
    }

    fn challenge_line(&mut self, id: &str) -> Result<String, CoreError> {
        Ok(self.challenge(id)?.credit_line_id)
    }

    fn authorize_wallet(&mut self, wallet_id: &str, command: &Command) -> Result<(), CoreError> {
        match command {
            Command::CreateCreditLine(_) | Command::ApplyForCreditLine(_)
                if command.new_line().is_some_and(|r| r.wallet_id.as_deref().is_none_or(|w| w == wallet_id)) =>
            {
                Ok(())
            }
            Command::CreateCreditLine(_) | Command::ApplyForCreditLine(_) => Err(CoreError::Forbidden {
                scope: String::new(),
                message: "a wallet key opens lines for its own wallet only".into(),
            }),
            Command::GetCreditLine { id: line }
            | Command::Repay { credit_line_id: line, .. }
            | Command::CompleteProfile { credit_line_id: line, .. }
            | Command::GetNotifications { credit_line_id: line } => self.line_of_wallet(line, wallet_id),
            Command::CreatePayment(p) => self.line_of_wallet(&p.request.credit_line_id, wallet_id),
            Command::GetPayment { id } => self.payment_of_wallet(id, wallet_id),
            Command::GetChallenge { id } | Command::CompleteChallenge { id, .. } => {
                let line = self.challenge_line(id)?;
                self.line_of_wallet(&line, wallet_id).map_err(|_| CoreError::ChallengeNotFound { id: id.clone() })
            }
            Command::UserStatus { user_id, .. } => {
                let owned = self.user_wallets.get(user_id).is_some_and(|w| w.as_deref() == Some(wallet_id));
                owned.then_some(()).ok_or_else(|| CoreError::UserNotFound { id: user_id.clone() })
            }
            Command::FileAppeal(request) => {
                let line = self.appeal_subject_line(request)?;
                self.line_of_wallet(&line, wallet_id).map_err(|_| appeal_subject_not_found(request))
            }
            _ => Err(not_for("a wallet key")),
        }
    }

    fn authorize_shopper(&mut self, shopper: &Shopper, command: &Command) -> Result<(), CoreError> {
        let own = |line: &str| line == shopper.credit_line_id;
        match command {
            // A wallet's token for a line that is no longer the wallet's reads nothing.
            _ if !shopper.wallet_id.is_empty()
                && self.line_of_wallet(&shopper.credit_line_id, &shopper.wallet_id).is_err() =>
            {
                Err(not_for("this shopper token"))
            }
            Command::GetCreditLine { id } | Command::GetNotifications { credit_line_id: id } if own(id) => Ok(()),
            Command::GetCreditLine { id } | Command::GetNotifications { credit_line_id: id } => {
                Err(CoreError::CreditLineNotFound { id: id.clone() })
            }
            Command::GetChallenge { id } | Command::CompleteChallenge { id, .. } => {
                let line = self.challenge_line(id)?;
                if own(&line) {
                    Ok(())
                } else {
                    Err(CoreError::ChallengeNotFound { id: id.clone() })
                }
            }
            // The token speaks for its user: their status, and appeals of any of their lines.
            Command::UserStatus { user_id, .. } if self.shopper_user(shopper) == Some(user_id.as_str()) => Ok(()),
            Command::UserStatus { user_id, .. } => Err(CoreError::UserNotFound { id: user_id.clone() }),
            Command::FileAppeal(request) => {
                let line = self.appeal_subject_line(request)?;
                let user = self.line_profiles.get(&line).map(|p| p.user_id.as_str());
                if user.is_some() && user == self.shopper_user(shopper) {
                    Ok(())
                } else {
                    Err(appeal_subject_not_found(request))
                }
            }
            Command::GetAppeal { id } => {
                let user = self.appeal(id)?.user_id.as_str();
                if Some(user) == self.shopper_user(shopper) {
                    Ok(())
                } else {
                    Err(CoreError::AppealNotFound { id: id.clone() })
                }
            }
            _ => Err(not_for("a shopper token")),
        }
    }
}

impl State {
    /// The user a shopper token's line belongs to.
    fn shopper_user(&self, shopper: &Shopper) -> Option<&str> {
        self.line_profiles.get(&shopper.credit_line_id).map(|p| p.user_id.as_str())
    }
}

/// What an appeal of someone else's decision or restriction is answered: the same as for
/// one that does not exist.
fn appeal_subject_not_found(request: &crate::NewAppeal) -> CoreError {
    match (&request.restriction_id, &request.decision_id) {
        (Some(id), _) => CoreError::RestrictionNotFound { id: id.clone() },
        (None, Some(id)) => CoreError::DecisionNotFound { id: id.clone() },
        (None, None) => CoreError::InvalidRequest {
            field: "restriction_id".into(),
            message: "name exactly one of `decision_id` and `restriction_id`".into(),
        },
    }
}

fn not_for(who: &str) -> CoreError {
    CoreError::Forbidden { scope: String::new(), message: format!("{who} cannot do this") }
}
