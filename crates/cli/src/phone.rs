//! Where texts go: an SMS gateway over HTTP ([`GatewaySmsSender`], the outbox's SMS
//! channel: one-time codes and every other text), and, for demos and tests, a loopback
//! **phone gateway** that plays the SMS provider and the shoppers' phones
//! ([`PhoneGateway`]). The simulator's HTTP driver reads codes only from there: the payment
//! API has no way to show them.
//!
//! What a gateway is sent, one JSON object per message:
//! `{"id", "to", "kind", "language", "text": {"zh"|"en": …}}`, with `"challenge_id"` and
//! `"credit_line_id"` on a one-time code, and `Authorization: Bearer <token>` when a token
//! is configured. `id` is the outbox message id: stable across resends.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Messages the phone gateway keeps (the oldest go first).
pub const MAX_PHONE_MESSAGES: usize = 100_000;

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
            let first = body["messages"].as_array().and_then(|m| m.first()).cloned().unwrap_or_default();
            if let Some(code) = code_in_message(&first) {
                return Some(code);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// The code in a message the phone gateway kept, in whichever language it was sent.
pub fn code_in_message(message: &Value) -> Option<String> {
    ["en", "zh"].iter().find_map(|language| message["text"][language].as_str().and_then(xiezhi_core::code_in))
}

/// A client for the SMS gateway: its bearer token (if any) on every request, marked
/// sensitive so no debug print shows it, and a 10 s timeout.
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
            let mut body =
                json!({"id": sms.id, "to": sms.to, "kind": sms.kind.as_str(), "language": language, "text": text});
            // A code is filed under its challenge and line, where the phone gateway (and a
            // shopper's app) look for it.
            if let Some(challenge_id) = sms.challenge_id {
                body["challenge_id"] = Value::String(challenge_id);
            }
            if let Some(credit_line_id) = sms.credit_line_id {
                body["credit_line_id"] = Value::String(credit_line_id);
            }
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
                s if s.is_success() => {
                    // The count the code notifier kept before codes moved to the outbox.
                    if sms.kind == xiezhi_notify::EventKind::ChallengeCode {
                        metrics::counter!("xiezhi_messages_delivered_total").increment(1);
                    }
                    Ok(())
                }
                // A gateway that says the number is invalid will say it again.
                reqwest::StatusCode::BAD_REQUEST | reqwest::StatusCode::UNPROCESSABLE_ENTITY => {
                    Err(DeliveryError::Permanent(format!("the SMS gateway answered {status}")))
                }
                _ => Err(DeliveryError::Transient(format!("the SMS gateway answered {status}"))),
            }
        })
    }
}
