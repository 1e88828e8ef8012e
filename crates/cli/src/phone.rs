//! Where one-time codes go: an SMS gateway over HTTP ([`SmsGateway`], the `Notifier` the
//! service is given), and, for demos and tests, a loopback **phone gateway** that plays the
//! SMS provider and the shoppers' phones ([`PhoneGateway`]). The simulator's HTTP driver
//! reads codes only from there: the payment API has no way to show them.
//!
//! What a gateway is sent, one JSON object per message:
//! `{"id", "to", "credit_line_id", "kind", "challenge_id"?, "text": {"zh", "en"}}`, with
//! `Authorization: Bearer <token>` when a token is configured.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xiezhi_core::{Notifier, NotifierHandle, OutboundMessage};

/// Messages waiting to be posted; beyond this new ones are dropped (and counted).
pub const MAX_QUEUED_MESSAGES: usize = 10_000;
/// Posts per message before it is given up (and logged by id, never by text).
const DELIVERY_ATTEMPTS: u32 = 3;
/// Messages the phone gateway keeps (the oldest go first).
pub const MAX_PHONE_MESSAGES: usize = 100_000;

fn wire(message: &OutboundMessage) -> Value {
    json!({
        "id": message.id,
        "to": message.to_user_id,
        "credit_line_id": message.credit_line_id,
        "kind": message.kind,
        "challenge_id": message.challenge_id,
        "text": {"zh": message.message.zh, "en": message.message.en},
    })
}

/// Posts each message to an SMS gateway, off the writer's thread.
pub struct SmsGateway {
    queue: tokio::sync::mpsc::Sender<OutboundMessage>,
}

impl Notifier for SmsGateway {
    fn deliver(&self, messages: Vec<OutboundMessage>) {
        for message in messages {
            if self.queue.try_send(message).is_err() {
                metrics::counter!("xiezhi_messages_dropped_total").increment(1);
                tracing::error!("the SMS queue is full; a message was dropped");
            }
        }
    }
}

impl SmsGateway {
    /// A notifier posting to `url` (with `token` as a bearer credential) from a task on
    /// `runtime`.
    pub fn start(
        url: String,
        token: Option<String>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<NotifierHandle, String> {
        let client = gateway_client(token)?;
        let (queue, mut receiver) = tokio::sync::mpsc::channel::<OutboundMessage>(MAX_QUEUED_MESSAGES);
        runtime.spawn(async move {
            while let Some(message) = receiver.recv().await {
                post_with_retries(&client, &url, &message).await;
            }
        });
        Ok(NotifierHandle(Arc::new(SmsGateway { queue })))
    }
}

async fn post_with_retries(client: &reqwest::Client, url: &str, message: &OutboundMessage) {
    let body = wire(message);
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=DELIVERY_ATTEMPTS {
        match client.post(url).json(&body).send().await {
            Ok(response) if response.status().is_success() => {
                metrics::counter!("xiezhi_messages_delivered_total").increment(1);
                return;
            }
            Ok(response) => {
                tracing::warn!(message_id = %message.id, status = %response.status(), attempt, "the SMS gateway refused a message")
            }
            Err(error) => tracing::warn!(message_id = %message.id, %error, attempt, "the SMS gateway is unreachable"),
        }
        tokio::time::sleep(delay).await;
        delay *= 5;
    }
    metrics::counter!("xiezhi_messages_failed_total").increment(1);
    tracing::error!(message_id = %message.id, "a message could not be delivered");
}

/// The loopback stand-in for an SMS provider and the shoppers' phones.
#[derive(Clone)]
pub struct PhoneGateway {
    messages: Arc<Mutex<VecDeque<Value>>>,
    token: Arc<str>,
}

#[derive(serde::Deserialize)]
struct MessagesQuery {
    credit_line_id: Option<String>,
    challenge_id: Option<String>,
}

impl PhoneGateway {
    /// Listens on `address`; returns its base URL and the token both sides send. The token
    /// is fresh from the OS generator on every start.
    pub async fn start(address: std::net::SocketAddr) -> Result<(String, String), String> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| format!("the OS random generator failed: {e}"))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let gateway = PhoneGateway { messages: Arc::default(), token: token.clone().into() };
        let router = Router::new()
            .route("/messages", post(receive).get(list))
            .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
            .with_state(gateway);
        let listener =
            tokio::net::TcpListener::bind(address).await.map_err(|e| format!("phone gateway on {address}: {e}"))?;
        let base = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok((base, token))
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let expected = format!("Bearer {}", self.token);
        headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| {
            // Compared in constant time: the token guards every shopper's codes.
            v.len() == expected.len() && v.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }
}

async fn receive(State(gateway): State<PhoneGateway>, headers: HeaderMap, Json(message): Json<Value>) -> StatusCode {
    if !gateway.authorized(&headers) {
        return StatusCode::UNAUTHORIZED;
    }
    let mut messages = gateway.messages.lock().unwrap_or_else(|e| e.into_inner());
    if messages.len() >= MAX_PHONE_MESSAGES {
        messages.pop_front();
    }
    messages.push_back(message);
    StatusCode::ACCEPTED
}

async fn list(
    State(gateway): State<PhoneGateway>,
    headers: HeaderMap,
    Query(query): Query<MessagesQuery>,
) -> Result<Json<Value>, StatusCode> {
    if !gateway.authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let messages = gateway.messages.lock().unwrap_or_else(|e| e.into_inner());
    let wanted = |m: &&Value| {
        query.credit_line_id.as_ref().is_none_or(|id| m["credit_line_id"] == **id)
            && query.challenge_id.as_ref().is_none_or(|id| m["challenge_id"] == **id)
    };
    let found: Vec<Value> = messages.iter().rev().filter(wanted).take(100).cloned().collect();
    Ok(Json(json!({ "messages": found })))
}

/// How the simulator's driver reads a shopper's phone.
#[derive(Clone, Debug)]
pub struct Phone {
    pub base: String,
    pub token: String,
}

impl Phone {
    /// The code sent for `challenge_id`, waiting briefly for it (delivery follows the
    /// commit, so the payment's answer may arrive first).
    pub async fn code_for(&self, client: &reqwest::Client, challenge_id: &str) -> Option<String> {
        let url = format!("{}/messages", self.base.trim_end_matches('/'));
        for _ in 0..100 {
            let response =
                client.get(&url).bearer_auth(&self.token).query(&[("challenge_id", challenge_id)]).send().await.ok()?;
            let body: Value = response.json().await.ok()?;
            let text = body["messages"].as_array().and_then(|m| m.first()).and_then(|m| m["text"]["en"].as_str());
            if let Some(code) = text.and_then(xiezhi_core::code_in) {
                return Some(code);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// A client for the SMS gateway: its bearer token (if any) on every request, marked
/// sensitive so no debug print shows it, and a 10 s timeout. Shared by the one-time-code
/// notifier and the outbox's SMS channel.
fn gateway_client(token: Option<String>) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the SMS gateway token is not visible ASCII".to_owned())?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

/// The outbox's SMS channel over the same gateway: one POST per message, one attempt per
/// call, the outcome returned to the dispatcher (which retries, backs off and parks). What
/// it posts has the shape the gateway already takes, with the text in the message's one
/// language: `{"id", "to", "kind", "language", "text": {"zh"|"en": …}}`; the id is the
/// outbox message id, so a gateway that deduplicates drops a resend.
pub struct GatewaySmsSender {
    client: reqwest::Client,
    url: String,
}

impl GatewaySmsSender {
    pub fn new(url: String, token: Option<String>) -> Result<GatewaySmsSender, String> {
        let client = gateway_client(token)?;
        Ok(GatewaySmsSender { client, url })
    }
}

impl xiezhi_notify::SmsSender for GatewaySmsSender {
    fn send_sms(
        &self,
        sms: xiezhi_notify::SmsMessage,
    ) -> xiezhi_notify::BoxFuture<'_, Result<(), xiezhi_notify::DeliveryError>> {
        use xiezhi_notify::DeliveryError;
        Box::pin(async move {
            let language = match sms.language {
                xiezhi_notify::Language::Zh => "zh",
                xiezhi_notify::Language::En => "en",
            };
            let mut text = serde_json::Map::new();
            text.insert(language.to_owned(), Value::String(sms.text));
            let body =
                json!({"id": sms.id, "to": sms.to, "kind": sms.kind.as_str(), "language": language, "text": text});
            // Errors carry neither the URL (it may hold a token) nor the text (it may hold
            // a code).
            let response = self
                .client
                .post(&self.url)
                .json(&body)
                .send()
                .await
                .map_err(|e| DeliveryError::Transient(e.without_url().to_string()))?;
            let status = response.status();
            match status {
                s if s.is_success() => Ok(()),
                // A gateway that says the number is invalid will say it again.
                reqwest::StatusCode::BAD_REQUEST | reqwest::StatusCode::UNPROCESSABLE_ENTITY => {
                    Err(DeliveryError::Permanent(format!("the SMS gateway answered {status}")))
                }
                _ => Err(DeliveryError::Transient(format!("the SMS gateway answered {status}"))),
            }
        })
    }
}
