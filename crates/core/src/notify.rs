//! One-time codes handed to an in-process [`Notifier`], for a service whose outbox has no
//! SMS channel (embedders, tests). With SMS in the outbox (`xiezhi serve`) a code is a
//! sealed outbox row instead (`crate::outbox`), which survives a crash; this path does not.
//!
//! The writer collects a batch's messages and hands them to the [`Notifier`] only once the
//! batch is durable: a code for a challenge that was never stored would be a code for
//! nothing. A batch that fails drops its messages with it. The code itself lives only in the
//! message handed over; the store keeps its HMAC, the inbox a text without it.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use xiezhi_risk::Explanation;

/// One message for one shopper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    pub id: String,
    /// The user the message is for (a deployment maps it to their phone number).
    pub to_user_id: String,
    pub credit_line_id: String,
    /// `one_time_code`, …
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
    /// The text, in both languages.
    pub message: Explanation,
}

/// Where messages go. `deliver` must not block: the writer calls it between two batches.
pub trait Notifier: Send + Sync + 'static {
    fn deliver(&self, messages: Vec<OutboundMessage>);
}

/// A notifier to hand to the service.
#[derive(Clone)]
pub struct NotifierHandle(pub Arc<dyn Notifier>);

impl std::fmt::Debug for NotifierHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifierHandle")
    }
}

/// Hands a committed batch's messages over (nothing when no notifier is configured: the
/// codes then reach nobody, which `serve` warns about at start).
pub(crate) fn deliver(notifier: Option<&NotifierHandle>, messages: Vec<OutboundMessage>) {
    if messages.is_empty() {
        return;
    }
    metrics::counter!("xiezhi_messages_handed_over_total").increment(messages.len() as u64);
    match notifier {
        Some(notifier) => notifier.0.deliver(messages),
        None => metrics::counter!("xiezhi_messages_undeliverable_total").increment(messages.len() as u64),
    }
}

/// The one-time code in a message's text: its first run of six digits.
pub fn code_in(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_digit() {
            start += 1;
            continue;
        }
        let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if end - start == 6 {
            return Some(text[start..end].to_owned());
        }
        start = end;
    }
    None
}

/// Most messages a [`RecordingNotifier`] keeps (the oldest go first).
pub const MAX_RECORDED_MESSAGES: usize = 10_000;

/// Keeps what it is handed, for tests and in-process tools that play the shopper's phone.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    messages: std::sync::Mutex<std::collections::VecDeque<OutboundMessage>>,
}

impl RecordingNotifier {
    pub fn messages(&self) -> Vec<OutboundMessage> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// The code sent for `challenge_id`, as the shopper's phone would show it.
    pub fn code_for(&self, challenge_id: &str) -> Option<String> {
        let messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        let message = messages.iter().rev().find(|m| m.challenge_id.as_deref() == Some(challenge_id))?;
        code_in(&message.message.en)
    }
}

impl Notifier for RecordingNotifier {
    fn deliver(&self, delivered: Vec<OutboundMessage>) {
        let mut messages = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        for message in delivered {
            if messages.len() >= MAX_RECORDED_MESSAGES {
                messages.pop_front();
            }
            messages.push_back(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::code_in;

    #[test]
    fn the_code_is_the_first_run_of_six_digits() {
        assert_eq!(code_in("Your code is 042917. It expires in 5 minutes.").as_deref(), Some("042917"));
        assert_eq!(code_in("您的獬豸验证码是 123456，5 分钟内有效").as_deref(), Some("123456"));
        assert_eq!(code_in("expires in 12345678 or 5 minutes"), None);
        assert_eq!(code_in(""), None);
    }
}
