//! What the outbox stores: one message for one recipient, in one language, with the
//! arguments its templates need. Stored as JSON beside the event that caused it, so its
//! shape is a contract: fields are only ever added.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest message id (it travels in HTTP headers and an email's `Message-ID`).
pub const MAX_MESSAGE_ID_CHARS: usize = 128;
/// Most arguments one message carries.
pub const MAX_ARGUMENTS: usize = 16;
/// Longest argument name.
pub const MAX_ARGUMENT_NAME_CHARS: usize = 64;
/// Longest argument value.
pub const MAX_ARGUMENT_VALUE_CHARS: usize = 256;
/// Longest recipient (webhook endpoint id, email address or phone number).
pub const MAX_RECIPIENT_CHARS: usize = 254;

/// Arguments whose values are secrets: never in a log line, a webhook body or `Debug`.
pub const SECRET_ARGUMENTS: &[&str] = &["code"];

/// What happened, which picks the templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RestrictionImposed,
    RestrictionLifted,
    ChallengeCode,
    AppealReceived,
    AppealDecided,
    CompensationPaid,
    LimitChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::RestrictionImposed,
        EventKind::RestrictionLifted,
        EventKind::ChallengeCode,
        EventKind::AppealReceived,
        EventKind::AppealDecided,
        EventKind::CompensationPaid,
        EventKind::LimitChanged,
    ];

    /// The name in JSON and webhook `type` fields.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RestrictionImposed => "restriction_imposed",
            EventKind::RestrictionLifted => "restriction_lifted",
            EventKind::ChallengeCode => "challenge_code",
            EventKind::AppealReceived => "appeal_received",
            EventKind::AppealDecided => "appeal_decided",
            EventKind::CompensationPaid => "compensation_paid",
            EventKind::LimitChanged => "limit_changed",
        }
    }

    /// The Fluent id prefix (Fluent ids spell `_` as `-`).
    pub fn fluent_id(self) -> String {
        self.as_str().replace('_', "-")
    }

    /// The arguments every message of this kind must carry: its templates may use these
    /// and nothing else (the rendering test holds the locale files to that).
    pub fn required_arguments(self) -> &'static [&'static str] {
        match self {
            EventKind::RestrictionImposed => &["restriction_id", "scope", "expires_at", "appeal_deadline"],
            EventKind::RestrictionLifted => &["restriction_id", "scope", "lifted_by"],
            EventKind::ChallengeCode => &["code", "minutes", "challenge_id", "credit_line_id"],
            EventKind::AppealReceived => &["appeal_id", "deadline"],
            EventKind::AppealDecided => &["appeal_id", "outcome"],
            EventKind::CompensationPaid => &["appeal_id", "amount", "currency"],
            EventKind::LimitChanged => &["credit_line_id", "old_limit", "new_limit", "currency", "effective_at"],
        }
    }

    /// A one-time code goes to the shopper's own phone or mailbox, never to a webhook (a
    /// merchant's or operator's server has no business holding it).
    pub fn allowed_on(self, channel: ChannelKind) -> bool {
        !(self == EventKind::ChallengeCode && channel == ChannelKind::Webhook)
    }
}

/// The message's language (the user's, chosen by the writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Zh,
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Zh, Language::En];
}

/// Which delivery channel a recipient is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook,
    Email,
    Sms,
}

/// Who receives the message, and so through which channel.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Recipient {
    /// A registered endpoint (merchant or operator); its URL and secret are configuration.
    Webhook {
        endpoint_id: String,
    },
    Email {
        address: String,
    },
    Sms {
        phone: String,
    },
}

impl Recipient {
    pub fn channel(&self) -> ChannelKind {
        match self {
            Recipient::Webhook { .. } => ChannelKind::Webhook,
            Recipient::Email { .. } => ChannelKind::Email,
            Recipient::Sms { .. } => ChannelKind::Sms,
        }
    }

    fn value(&self) -> &str {
        match self {
            Recipient::Webhook { endpoint_id } => endpoint_id,
            Recipient::Email { address } => address,
            Recipient::Sms { phone } => phone,
        }
    }
}

// Addresses and phone numbers are personal data: logs see the channel only.
impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipient::Webhook { endpoint_id } => write!(f, "Webhook({endpoint_id})"),
            Recipient::Email { .. } => f.write_str("Email(…)"),
            Recipient::Sms { .. } => f.write_str("Sms(…)"),
        }
    }
}

/// One notification as the outbox stores it. Unknown fields are ignored when a row is read,
/// so a row written by a newer version still reads during a rolling upgrade.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    /// Stable for the message's whole life (every retry and replay): receivers use it as
    /// their idempotency key.
    pub id: String,
    pub kind: EventKind,
    pub recipient: Recipient,
    pub language: Language,
    /// The templates' arguments, already formatted (amounts as decimal strings, times as
    /// RFC 3339): rendering does no arithmetic.
    pub arguments: BTreeMap<String, String>,
}

impl std::fmt::Debug for OutboxMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let arguments: BTreeMap<&str, &str> = self
            .arguments
            .iter()
            .map(|(k, v)| (k.as_str(), if SECRET_ARGUMENTS.contains(&k.as_str()) { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("OutboxMessage")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("recipient", &self.recipient)
            .field("language", &self.language)
            .field("arguments", &arguments)
            .finish()
    }
}

/// Why a message cannot be stored or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message id must be 1-{MAX_MESSAGE_ID_CHARS} characters of A-Z a-z 0-9 _ -")]
    BadId,
    #[error("recipient must be 1-{MAX_RECIPIENT_CHARS} visible characters")]
    BadRecipient,
    #[error("{kind:?} messages cannot go to a {channel:?} recipient")]
    ChannelNotAllowed { kind: EventKind, channel: ChannelKind },
    #[error("argument `{0}` is required for this kind")]
    MissingArgument(&'static str),
    #[error("argument `{0}` is not one this kind takes")]
    UnknownArgument(String),
    #[error("argument `{0}` is empty, too long or holds a control character")]
    BadArgument(String),
    #[error("at most {MAX_ARGUMENTS} arguments")]
    TooManyArguments,
    #[error("the stored message is not valid JSON: {0}")]
    Json(String),
}

// What an HTTP header value and the left part of an email `Message-ID` both take as is.
fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

fn visible(text: &str, max: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control)
}

impl OutboxMessage {
    /// Checks everything rendering and delivery rely on, so a stored message can only fail
    /// for reasons outside it (a channel down, an endpoint removed).
    pub fn validate(&self) -> Result<(), MessageError> {
        if self.id.is_empty() || self.id.len() > MAX_MESSAGE_ID_CHARS || !self.id.chars().all(id_char) {
            return Err(MessageError::BadId);
        }
        let recipient = self.recipient.value();
        if !visible(recipient, MAX_RECIPIENT_CHARS) || recipient.contains(char::is_whitespace) {
            return Err(MessageError::BadRecipient);
        }
        let channel = self.recipient.channel();
        if !self.kind.allowed_on(channel) {
            return Err(MessageError::ChannelNotAllowed { kind: self.kind, channel });
        }
        if self.arguments.len() > MAX_ARGUMENTS {
            return Err(MessageError::TooManyArguments);
        }
        let required = self.kind.required_arguments();
        if let Some(missing) = required.iter().find(|name| !self.arguments.contains_key(**name)) {
            return Err(MessageError::MissingArgument(missing));
        }
        for (name, value) in &self.arguments {
            if !required.contains(&name.as_str()) {
                let mut shown: String = name.chars().take(MAX_ARGUMENT_NAME_CHARS).collect();
                shown.retain(|c| !c.is_control());
                return Err(MessageError::UnknownArgument(shown));
            }
            if !visible(value, MAX_ARGUMENT_VALUE_CHARS) {
                return Err(MessageError::BadArgument(name.clone()));
            }
        }
        Ok(())
    }

    /// The JSON the outbox row holds.
    pub fn to_json(&self) -> String {
        // A struct of strings and maps of strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stored row back, checked.
    pub fn from_json(json: &str) -> Result<OutboxMessage, MessageError> {
        let message: OutboxMessage = serde_json::from_str(json).map_err(|e| MessageError::Json(e.to_string()))?;
        message.validate()?;
        Ok(message)
    }

    /// The arguments a webhook body may carry (no secrets).
    pub fn public_arguments(&self) -> BTreeMap<&str, &str> {
        self.arguments
            .iter()
            .filter(|(k, _)| !SECRET_ARGUMENTS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// A fresh message id from the OS generator (`msg_` and 32 hex digits), for writers with
/// no natural id; a writer may instead derive one from its event, as long as it is stable.
pub fn new_message_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format!("msg_{}", hex(&bytes)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A message of `kind` with plausible arguments.
    pub(crate) fn sample(kind: EventKind, recipient: Recipient, language: Language) -> OutboxMessage {
        let arguments = kind
            .required_arguments()
            .iter()
            .map(|name| ((*name).to_owned(), sample_argument(name).to_owned()))
            .collect();
        OutboxMessage { id: format!("msg_{}_1", kind.as_str()), kind, recipient, language, arguments }
    }

    pub(crate) fn sample_argument(name: &str) -> &'static str {
        match name {
            "scope" => "scan_to_pay",
            "lifted_by" => "appeal",
            "outcome" => "overturn",
            "code" => "042917",
            "minutes" => "5",
            "amount" | "old_limit" => "50.00",
            "new_limit" => "8000.00",
            "currency" => "CNY",
            "expires_at" | "appeal_deadline" | "deadline" | "effective_at" => "2026-05-02T10:00:00Z",
            _ => "id_123",
        }
    }

    #[test]
    fn json_round_trips_and_is_checked() {
        let message =
            sample(EventKind::LimitChanged, Recipient::Email { address: "a@example.com".into() }, Language::Zh);
        let json = message.to_json();
        assert!(json.contains(r#""kind":"limit_changed""#), "{json}");
        assert!(json.contains(r#""recipient":{"channel":"email","address":"a@example.com"}"#), "{json}");
        assert_eq!(OutboxMessage::from_json(&json), Ok(message.clone()));
        let mut bad = message;
        bad.arguments.remove("currency");
        assert_eq!(OutboxMessage::from_json(&bad.to_json()), Err(MessageError::MissingArgument("currency")));
        assert!(matches!(OutboxMessage::from_json("{"), Err(MessageError::Json(_))));
    }

    #[test]
    fn bad_messages_are_refused() {
        let good = sample(EventKind::AppealReceived, Recipient::Sms { phone: "+8613800000000".into() }, Language::En);
        assert_eq!(good.validate(), Ok(()));
        let mut m = good.clone();
        m.id = "msg\r\nX-Injected: 1".into();
        assert_eq!(m.validate(), Err(MessageError::BadId));
        let mut m = good.clone();
        m.id = "msg:1".into();
        assert_eq!(m.validate(), Err(MessageError::BadId));
        let mut m = good.clone();
        m.id = "a".repeat(MAX_MESSAGE_ID_CHARS + 1);
        assert_eq!(m.validate(), Err(MessageError::BadId));
        let mut m = good.clone();
        m.recipient = Recipient::Sms { phone: String::new() };
        assert_eq!(m.validate(), Err(MessageError::BadRecipient));
        let mut m = good.clone();
        m.arguments.insert("extra".into(), "x".into());
        assert_eq!(m.validate(), Err(MessageError::UnknownArgument("extra".into())));
        let mut m = good.clone();
        m.arguments.insert("deadline".into(), "x".repeat(MAX_ARGUMENT_VALUE_CHARS + 1));
        assert_eq!(m.validate(), Err(MessageError::BadArgument("deadline".into())));
        let mut m = good;
        m.arguments.insert("deadline".into(), "line\nbreak".into());
        assert_eq!(m.validate(), Err(MessageError::BadArgument("deadline".into())));
    }

    #[test]
    fn codes_never_go_to_webhooks_and_never_show_in_debug() {
        let m = sample(EventKind::ChallengeCode, Recipient::Webhook { endpoint_id: "ops".into() }, Language::En);
        assert!(matches!(m.validate(), Err(MessageError::ChannelNotAllowed { .. })));
        let m = sample(EventKind::ChallengeCode, Recipient::Sms { phone: "+8613800000000".into() }, Language::En);
        let shown = format!("{m:?}");
        assert!(!shown.contains("042917") && !shown.contains("13800000000"), "{shown}");
        assert!(!m.public_arguments().contains_key("code"));
    }

    #[test]
    fn fresh_ids_are_valid_and_distinct() {
        let a = new_message_id().expect("OS generator");
        let b = new_message_id().expect("OS generator");
        assert_ne!(a, b);
        assert!(a.len() == 36 && a.chars().all(id_char), "{a}");
    }
}
