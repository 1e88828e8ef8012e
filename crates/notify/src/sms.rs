//! SMS through a gateway. The crate defines the gateway's interface only; the service's
//! HTTP gateway client (`crates/cli/src/phone.rs`, `SmsGateway`, which today posts
//! `{"id", "to", "credit_line_id", "kind", "challenge_id", "text": {"zh", "en"}}` from its
//! own queue with three attempts) will implement [`SmsSender`] by posting one message per
//! call and returning the outcome, leaving retries and queueing to the outbox and the
//! [`crate::Dispatcher`].

use crate::message::{ChannelKind, EventKind, Language, OutboxMessage, Recipient};
use crate::outbox::DeliveryError;
use crate::render::Rendered;
use crate::{BoxFuture, Channel};
use std::sync::Arc;

/// One text for one phone.
#[derive(Clone, PartialEq, Eq)]
pub struct SmsMessage {
    /// The outbox message id: a gateway that deduplicates uses it as its key.
    pub id: String,
    pub to: String,
    pub kind: EventKind,
    pub language: Language,
    /// At most [`crate::MAX_SMS_CHARS`] characters; may hold a one-time code.
    pub text: String,
    /// A challenge code's challenge and credit line, so a gateway (the loopback phone
    /// gateway) can file the text under them; `None` for other kinds.
    pub challenge_id: Option<String>,
    pub credit_line_id: Option<String>,
}

// The text may hold a code and the number is personal data.
impl std::fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsMessage").field("id", &self.id).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// An SMS provider. One call is one attempt: return `Ok` only once the provider has
/// accepted the message, [`DeliveryError::Permanent`] when it never will (an invalid
/// number), [`DeliveryError::Transient`] otherwise. Errors must not quote the text.
pub trait SmsSender: Send + Sync + 'static {
    fn send_sms(&self, sms: SmsMessage) -> BoxFuture<'_, Result<(), DeliveryError>>;
}

/// The SMS channel over any [`SmsSender`].
#[derive(Clone)]
pub struct SmsChannel {
    sender: Arc<dyn SmsSender>,
}

impl std::fmt::Debug for SmsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmsChannel")
    }
}

impl SmsChannel {
    pub fn new(sender: Arc<dyn SmsSender>) -> SmsChannel {
        SmsChannel { sender }
    }
}

impl Channel for SmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn send<'a>(
        &'a self,
        message: &'a OutboxMessage,
        content: &'a Rendered,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            let (Recipient::Sms { phone }, Rendered::Sms { text }) = (&message.recipient, content) else {
                return Err(DeliveryError::Permanent("the SMS channel was handed another channel's message".into()));
            };
            let sms = SmsMessage {
                id: message.id.clone(),
                to: phone.clone(),
                kind: message.kind,
                language: message.language,
                text: text.clone(),
                challenge_id: message.arguments.get("challenge_id").cloned(),
                credit_line_id: message.arguments.get("credit_line_id").cloned(),
            };
            self.sender.send_sms(sms).await
        })
    }
}
