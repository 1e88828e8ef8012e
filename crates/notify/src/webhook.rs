//! Webhooks: the rendered JSON body POSTed to a registered endpoint, signed
//! (`Xiezhi-Signature`), with the message id as `Idempotency-Key` and `Xiezhi-Message-Id`
//! so that a receiver that remembers ids drops the duplicates at-least-once delivery sends.

use crate::message::{ChannelKind, OutboxMessage};
use crate::outbox::DeliveryError;
use crate::render::Rendered;
use crate::signature::{signature_header, WebhookSecret, SIGNATURE_HEADER};
use crate::{BoxFuture, Channel};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Most endpoints one channel holds.
pub const MAX_WEBHOOK_ENDPOINTS: usize = 10_000;
/// Longest endpoint URL.
pub const MAX_WEBHOOK_URL_CHARS: usize = 2_048;
/// Default time to connect / for the whole request (a receiver should answer quickly and
/// do its work after; a slow one is retried, not waited for).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest timeout a configuration may set.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where one endpoint's messages go and the secret they are signed with.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: String,
    url: reqwest::Url,
    secret: WebhookSecret,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("endpoint `{0}`: the URL does not parse or is longer than {MAX_WEBHOOK_URL_CHARS} characters")]
    BadUrl(String),
    #[error("endpoint `{0}`: only https URLs are accepted (plain http only to a loopback address)")]
    Insecure(String),
    #[error("endpoint `{0}` is registered twice")]
    Duplicate(String),
    #[error("at most {MAX_WEBHOOK_ENDPOINTS} endpoints")]
    TooMany,
    #[error("timeouts must be non-zero and at most {MAX_REQUEST_TIMEOUT:?}")]
    Timeout,
    #[error("the HTTP client cannot be built: {0}")]
    Client(String),
}

fn loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl WebhookEndpoint {
    /// An endpoint. Plain `http` is refused except to a loopback address: the body names
    /// users and the signature does not hide it.
    pub fn new(id: impl Into<String>, url: &str, secret: WebhookSecret) -> Result<WebhookEndpoint, WebhookConfigError> {
        let id = id.into();
        let parsed = (url.len() <= MAX_WEBHOOK_URL_CHARS)
            .then(|| reqwest::Url::parse(url).ok())
            .flatten()
            .filter(|u| u.host().is_some() && u.username().is_empty() && u.password().is_none())
            .ok_or_else(|| WebhookConfigError::BadUrl(id.clone()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if loopback(&parsed) => {}
            _ => return Err(WebhookConfigError::Insecure(id)),
        }
        Ok(WebhookEndpoint { id, url: parsed, secret })
    }
}

/// Timeouts for webhook requests.
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig { connect_timeout: DEFAULT_CONNECT_TIMEOUT, request_timeout: DEFAULT_REQUEST_TIMEOUT }
    }
}

/// Unix seconds for the signature's timestamp (replaceable in tests).
pub type UnixClock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Posts webhook messages to their endpoints.
pub struct WebhookChannel {
    client: reqwest::Client,
    endpoints: HashMap<String, WebhookEndpoint>,
    clock: UnixClock,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel").field("endpoints", &self.endpoints.len()).finish()
    }
}

impl WebhookChannel {
    pub fn new(endpoints: Vec<WebhookEndpoint>, config: WebhookConfig) -> Result<WebhookChannel, WebhookConfigError> {
        let timeout_ok = |t: Duration| !t.is_zero() && t <= MAX_REQUEST_TIMEOUT;
        if !timeout_ok(config.connect_timeout) || !timeout_ok(config.request_timeout) {
            return Err(WebhookConfigError::Timeout);
        }
        if endpoints.len() > MAX_WEBHOOK_ENDPOINTS {
            return Err(WebhookConfigError::TooMany);
        }
        let mut by_id = HashMap::with_capacity(endpoints.len());
        for endpoint in endpoints {
            if by_id.contains_key(&endpoint.id) {
                return Err(WebhookConfigError::Duplicate(endpoint.id));
            }
            by_id.insert(endpoint.id.clone(), endpoint);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect would send the signed body somewhere nobody registered.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("xiezhi-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebhookConfigError::Client(e.without_url().to_string()))?;
        Ok(WebhookChannel { client, endpoints: by_id, clock: Arc::new(system_unix_seconds) })
    }

    /// The same channel signing with `clock`'s time.
    pub fn with_clock(mut self, clock: UnixClock) -> WebhookChannel {
        self.clock = clock;
        self
    }

    async fn post(&self, message: &OutboxMessage, body: &str) -> Result<(), DeliveryError> {
        let crate::message::Recipient::Webhook { endpoint_id } = &message.recipient else {
            return Err(DeliveryError::Permanent("not a webhook recipient".into()));
        };
        let endpoint = self
            .endpoints
            .get(endpoint_id)
            .ok_or_else(|| DeliveryError::Transient(format!("no webhook endpoint `{endpoint_id}` is configured")))?;
        let timestamp = (self.clock)();
        let response = self
            .client
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature_header(&endpoint.secret, timestamp, body.as_bytes()))
            .header("Idempotency-Key", &message.id)
            .header("Xiezhi-Message-Id", &message.id)
            .header("Xiezhi-Event", message.kind.as_str())
            .body(body.to_owned())
            .send()
            .await
            // The URL may carry a token in its query: errors are reported without it.
            .map_err(|e| DeliveryError::Transient(e.without_url().to_string()))?;
        classify(response.status())
    }
}

/// 2xx is delivered; 410 Gone says the endpoint is retired for good; anything else (5xx,
/// 429, a 4xx from a receiver mid-deploy) is retried until the attempts run out.
fn classify(status: reqwest::StatusCode) -> Result<(), DeliveryError> {
    if status.is_success() {
        Ok(())
    } else if status == reqwest::StatusCode::GONE {
        Err(DeliveryError::Permanent(format!("HTTP {status}")))
    } else {
        Err(DeliveryError::Transient(format!("HTTP {status}")))
    }
}

impl Channel for WebhookChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Webhook
    }

    fn send<'a>(
        &'a self,
        message: &'a OutboxMessage,
        content: &'a Rendered,
    ) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            match content {
                Rendered::Webhook { body } => self.post(message, body).await,
                _ => Err(DeliveryError::Permanent("the webhook channel was handed another channel's content".into())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        WebhookSecret::generate().expect("OS generator")
    }

    #[test]
    fn endpoints_must_be_https_or_loopback() {
        assert!(WebhookEndpoint::new("a", "https://merchant.example/hooks", secret()).is_ok());
        assert!(WebhookEndpoint::new("a", "http://127.0.0.1:9000/hooks", secret()).is_ok());
        assert!(WebhookEndpoint::new("a", "http://[::1]:9000/hooks", secret()).is_ok());
        assert_eq!(
            WebhookEndpoint::new("a", "http://merchant.example/hooks", secret()).err(),
            Some(WebhookConfigError::Insecure("a".into()))
        );
        assert_eq!(
            WebhookEndpoint::new("a", "ftp://x/", secret()).err(),
            Some(WebhookConfigError::Insecure("a".into()))
        );
        assert_eq!(
            WebhookEndpoint::new("a", "not a url", secret()).err(),
            Some(WebhookConfigError::BadUrl("a".into()))
        );
        assert_eq!(
            WebhookEndpoint::new("a", "https://user:pw@merchant.example/", secret()).err(),
            Some(WebhookConfigError::BadUrl("a".into()))
        );
    }

    #[test]
    fn channels_refuse_duplicates_and_bad_timeouts() {
        let e = WebhookEndpoint::new("a", "https://merchant.example/", secret()).expect("valid");
        assert_eq!(
            WebhookChannel::new(vec![e.clone(), e.clone()], WebhookConfig::default()).err(),
            Some(WebhookConfigError::Duplicate("a".into()))
        );
        let zero = WebhookConfig { request_timeout: Duration::ZERO, ..WebhookConfig::default() };
        assert_eq!(WebhookChannel::new(vec![e], zero).err(), Some(WebhookConfigError::Timeout));
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(reqwest::StatusCode::NO_CONTENT), Ok(()));
        assert!(matches!(classify(reqwest::StatusCode::GONE), Err(DeliveryError::Permanent(_))));
        assert!(matches!(classify(reqwest::StatusCode::SERVICE_UNAVAILABLE), Err(DeliveryError::Transient(_))));
        assert!(matches!(classify(reqwest::StatusCode::TOO_MANY_REQUESTS), Err(DeliveryError::Transient(_))));
    }
}
