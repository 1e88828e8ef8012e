//! Email over SMTP through `lettre` (tokio, rustls with ring: no system OpenSSL). The
//! message id becomes the email's `Message-ID` (`<id@xiezhi.notify>`) and an
//! `Xiezhi-Message-Id` header, so a mailbox or a relay that deduplicates drops a resend.

use crate::message::{ChannelKind, OutboxMessage, Recipient};
use crate::outbox::DeliveryError;
use crate::render::Rendered;
use crate::{BoxFuture, Channel};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// Default time for each SMTP command.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest SMTP command timeout a configuration may set.
pub const MAX_SMTP_TIMEOUT: Duration = Duration::from_secs(120);

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No TLS: only to a loopback relay (a local MTA, or the test server).
    Plain,
    /// Plain connection upgraded with STARTTLS, refusing to go on without it (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Where and how to send email.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// `(user, password)`, read by the caller from the environment, never from a flag.
    pub credentials: Option<(String, String)>,
    /// The `From:` mailbox, e.g. `Xiezhi <notify@xiezhi.example>`.
    pub from: String,
    /// The name given in `EHLO`.
    pub hello_name: String,
    pub timeout: Duration,
}

// The password must never reach a log.
impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("credentials", &self.credentials.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("plain SMTP (no TLS) is only allowed to a loopback relay")]
    PlainToRemote,
    #[error("the From address does not parse: {0}")]
    From(String),
    #[error("the SMTP timeout must be non-zero and at most {MAX_SMTP_TIMEOUT:?}")]
    Timeout,
    #[error("TLS parameters for `{0}`: {1}")]
    Tls(String, String),
}

fn loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Sends email messages through one SMTP relay.
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChannel").field("from", &self.from.email.to_string()).finish()
    }
}

impl EmailChannel {
    pub fn new(config: &SmtpConfig) -> Result<EmailChannel, SmtpConfigError> {
        if config.timeout.is_zero() || config.timeout > MAX_SMTP_TIMEOUT {
            return Err(SmtpConfigError::Timeout);
        }
        let from: Mailbox =
            config.from.parse().map_err(|e: lettre::address::AddressError| SmtpConfigError::From(e.to_string()))?;
        let tls_parameters = || {
            TlsParameters::new(config.host.clone())
                .map_err(|e| SmtpConfigError::Tls(config.host.clone(), e.to_string()))
        };
        let tls = match config.security {
            SmtpSecurity::Plain if !loopback_host(&config.host) => return Err(SmtpConfigError::PlainToRemote),
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout))
            .hello_name(ClientId::Domain(config.hello_name.clone()));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(EmailChannel { transport: builder.build(), from })
    }

    fn build(&self, message: &OutboxMessage, subject: &str, body: &str) -> Result<Message, DeliveryError> {
        let Recipient::Email { address } = &message.recipient else {
            return Err(DeliveryError::Permanent("not an email recipient".into()));
        };
        let to: Mailbox =
            address.parse().map_err(|_| DeliveryError::Permanent("the email address does not parse".into()))?;
        let mut email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{}@xiezhi.notify>", message.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| DeliveryError::Permanent(format!("the email cannot be built: {e}")))?;
        email
            .headers_mut()
            .insert_raw(HeaderValue::new(HeaderName::new_from_ascii_str("Xiezhi-Message-Id"), message.id.clone()));
        Ok(email)
    }

    async fn send_email(&self, message: &OutboxMessage, subject: &str, body: &str) -> Result<(), DeliveryError> {
        let email = self.build(message, subject, body)?;
        match self.transport.send(email).await {
            Ok(_) => Ok(()),
            // A 5xx reply (mailbox unknown, message refused) will be refused again.
            Err(e) if e.is_permanent() => Err(DeliveryError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(DeliveryError::Transient(format!("SMTP: {e}"))),
        }
    }
}

impl Channel for EmailChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn send<'a>(
        &'a self,
        message: &'a OutboxMessage,
        content: &'a Rendered,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            match content {
                Rendered::Email { subject, body } => self.send_email(message, subject, body).await,
                _ => Err(DeliveryError::Permanent("the email channel was handed another channel's content".into())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, security: SmtpSecurity) -> SmtpConfig {
        SmtpConfig {
            host: host.into(),
            port: 25,
            security,
            credentials: Some(("user".into(), "hunter2-password".into())),
            from: "Xiezhi <notify@xiezhi.example>".into(),
            hello_name: "localhost".into(),
            timeout: DEFAULT_SMTP_TIMEOUT,
        }
    }

    #[test]
    fn plain_smtp_only_to_loopback_and_passwords_never_printed() {
        assert!(EmailChannel::new(&config("127.0.0.1", SmtpSecurity::Plain)).is_ok());
        assert!(EmailChannel::new(&config("::1", SmtpSecurity::Plain)).is_ok());
        assert_eq!(
            EmailChannel::new(&config("smtp.example", SmtpSecurity::Plain)).err(),
            Some(SmtpConfigError::PlainToRemote)
        );
        assert!(EmailChannel::new(&config("smtp.example", SmtpSecurity::StartTls)).is_ok());
        assert!(EmailChannel::new(&config("smtp.example", SmtpSecurity::Tls)).is_ok());
        assert!(!format!("{:?}", config("h", SmtpSecurity::Tls)).contains("hunter2"));
        let bad_from = SmtpConfig { from: "not an address".into(), ..config("127.0.0.1", SmtpSecurity::Plain) };
        assert!(matches!(EmailChannel::new(&bad_from), Err(SmtpConfigError::From(_))));
    }
}
