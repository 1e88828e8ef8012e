//! Notifications that never get lost: the delivery side of the transactional outbox.
//!
//! The writer stores an [`OutboxEntry`] (an [`OutboxMessage`] in state `pending`) in the
//! same store transaction as the event it tells of; a [`Dispatcher`] later reads the rows
//! that are due, sends each through its [`Channel`] (signed webhooks, SMTP email, SMS
//! through an [`SmsSender`]), rendered from Fluent templates in the recipient's language,
//! and returns the state changes to persist: `delivered`, `retry_at` (exponential backoff
//! with full jitter) or `dead` (a dead letter, until [`OutboxEntry::replay`]).
//!
//! This crate knows nothing of the service, its store or HTTP server: dependencies point
//! from the service to here, never back.

pub mod backoff;
pub mod dispatch;
pub mod email;
pub mod message;
pub mod outbox;
pub mod render;
pub mod sealed;
pub mod signature;
pub mod sms;
pub mod webhook;

pub use backoff::{os_random, PolicyError, RetryPolicy};
pub use dispatch::{Channels, Claim, DispatchError, Dispatcher, DispatcherConfig, Transition, MAX_DISPATCH_BATCH};
pub use email::{EmailChannel, SmtpConfig, SmtpConfigError, SmtpSecurity};
pub use message::{new_message_id, ChannelKind, EventKind, Language, MessageError, OutboxMessage, Recipient};
pub use outbox::{DeliveryError, DeliveryState, OutboxEntry, TransitionError};
pub use render::{RenderError, Rendered, Renderer, MAX_SMS_CHARS};
pub use sealed::{CodeKey, SealError, SealedCode};
pub use signature::{
    parse_signature_header, sign, signature_header, verify_signature, SignatureError, WebhookSecret, SIGNATURE_HEADER,
};
pub use sms::{SmsChannel, SmsMessage, SmsSender};
pub use webhook::{WebhookChannel, WebhookConfig, WebhookConfigError, WebhookEndpoint};

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so channels can sit behind `dyn Channel`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One delivery channel. `send` is one attempt: it returns once the receiver has accepted
/// the message or refused it; retries are the dispatcher's.
pub trait Channel: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;
    fn send<'a>(
        &'a self,
        message: &'a OutboxMessage,
        content: &'a Rendered,
    ) -> BoxFuture<'a, Result<(), DeliveryError>>;
}
