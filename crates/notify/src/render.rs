//! Messages rendered from the Fluent templates in `locales/{en,zh}.ftl`: an email's subject
//! and body, an SMS text, a webhook's JSON body.

use crate::message::{ChannelKind, EventKind, Language, OutboxMessage};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

/// Longest SMS text in characters: three concatenated UCS-2 segments (67 characters each),
/// which every Chinese text needs; longer texts are cut with an ellipsis.
pub const MAX_SMS_CHARS: usize = 201;

const EN: &str = include_str!("../locales/en.ftl");
const ZH: &str = include_str!("../locales/zh.ftl");

/// What a channel sends.
#[derive(Clone, PartialEq, Eq)]
pub enum Rendered {
    Email {
        subject: String,
        body: String,
    },
    Sms {
        text: String,
    },
    /// The exact bytes that are signed and posted.
    Webhook {
        body: String,
    },
}

// Rendered texts may hold a one-time code.
impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rendered::Email { .. } => f.write_str("Rendered::Email(…)"),
            Rendered::Sms { .. } => f.write_str("Rendered::Sms(…)"),
            Rendered::Webhook { body } => write!(f, "Rendered::Webhook({} bytes)", body.len()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("no message `{id}` in the {language:?} templates")]
    MissingMessage { id: String, language: Language },
    #[error("message `{id}` in {language:?} left a placeable unfilled: {detail}")]
    Unfilled { id: String, language: Language, detail: String },
}

/// The zh and en template bundles, parsed once.
pub struct Renderer {
    en: FluentBundle<FluentResource>,
    zh: FluentBundle<FluentResource>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

fn bundle(locale: &str, source: &str) -> FluentBundle<FluentResource> {
    // The locale ids are literals and the files are compiled in; the rendering test parses
    // both on every run, so these cannot fail in a build that passed its tests.
    let langid: unic_langid::LanguageIdentifier = locale.parse().expect("locale id");
    let mut bundle = FluentBundle::new_concurrent(vec![langid]);
    // Plain text for mail clients and phones: no bidi isolation marks around arguments.
    bundle.set_use_isolating(false);
    let resource = FluentResource::try_new(source.to_owned())
        .unwrap_or_else(|(_, errors)| panic!("the {locale} locale file does not parse: {errors:?}"));
    bundle.add_resource(resource).expect("no duplicate message ids");
    bundle
}

impl Default for Renderer {
    fn default() -> Renderer {
        Renderer::new()
    }
}

impl Renderer {
    pub fn new() -> Renderer {
        Renderer { en: bundle("en", EN), zh: bundle("zh-CN", ZH) }
    }

    /// One template in one language, every placeable filled, or an error.
    pub fn text(&self, language: Language, id: &str, message: &OutboxMessage) -> Result<String, RenderError> {
        let bundle = match language {
            Language::En => &self.en,
            Language::Zh => &self.zh,
        };
        let missing = || RenderError::MissingMessage { id: id.to_owned(), language };
        let pattern = bundle.get_message(id).ok_or_else(missing)?.value().ok_or_else(missing)?;
        let mut args = FluentArgs::new();
        for (name, value) in &message.arguments {
            args.set(name.as_str(), value.as_str());
        }
        let mut errors = vec![];
        let text = bundle.format_pattern(pattern, Some(&args), &mut errors);
        if let Some(error) = errors.first() {
            return Err(RenderError::Unfilled { id: id.to_owned(), language, detail: error.to_string() });
        }
        Ok(text.trim().to_owned())
    }

    /// What `message`'s channel sends, in the message's language.
    pub fn render(&self, message: &OutboxMessage) -> Result<Rendered, RenderError> {
        let prefix = message.kind.fluent_id();
        let language = message.language;
        match message.recipient.channel() {
            ChannelKind::Email => {
                let subject = self.text(language, &format!("{prefix}-subject"), message)?;
                let body = self.text(language, &format!("{prefix}-body"), message)?;
                let footer = self.text(language, "email-footer", message)?;
                Ok(Rendered::Email { subject, body: format!("{body}\n\n{footer}\n") })
            }
            ChannelKind::Sms => {
                Ok(Rendered::Sms { text: sms_text(self.text(language, &format!("{prefix}-sms"), message)?) })
            }
            ChannelKind::Webhook => {
                let summary = self.text(language, &format!("{prefix}-subject"), message)?;
                Ok(Rendered::Webhook { body: webhook_body(message, &summary) })
            }
        }
    }
}

/// `text` cut to [`MAX_SMS_CHARS`] characters.
pub fn sms_text(text: String) -> String {
    if text.chars().count() <= MAX_SMS_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_SMS_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// The webhook body: `{"id", "type", "language", "summary", "data"}`, with every argument
/// but the secret ones (a code never reaches a webhook anyway, see `EventKind::allowed_on`).
pub fn webhook_body(message: &OutboxMessage, summary: &str) -> String {
    let body = serde_json::json!({
        "id": message.id,
        "type": message.kind.as_str(),
        "language": message.language,
        "summary": summary,
        "data": message.public_arguments(),
    });
    body.to_string()
}

/// Every Fluent id the renderer may ask for, per kind: the rendering test walks these.
pub fn template_ids(kind: EventKind) -> [String; 3] {
    let prefix = kind.fluent_id();
    [format!("{prefix}-subject"), format!("{prefix}-body"), format!("{prefix}-sms")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::sample;
    use crate::message::Recipient;

    fn recipients() -> [Recipient; 3] {
        [
            Recipient::Email { address: "shopper@example.com".into() },
            Recipient::Sms { phone: "+8613800000000".into() },
            Recipient::Webhook { endpoint_id: "ops".into() },
        ]
    }

    #[test]
    fn every_kind_renders_in_every_language_with_every_placeable_filled() {
        let renderer = Renderer::new();
        for kind in EventKind::ALL {
            for language in Language::ALL {
                let message = sample(kind, Recipient::Sms { phone: "+8613800000000".into() }, language);
                for id in template_ids(kind).iter().chain([&"email-footer".to_owned()]) {
                    let text = renderer.text(language, id, &message).unwrap_or_else(|e| panic!("{e}"));
                    assert!(
                        !text.is_empty() && !text.contains('{') && !text.contains('}'),
                        "{id} {language:?}: {text}"
                    );
                }
                for recipient in recipients() {
                    if !kind.allowed_on(recipient.channel()) {
                        continue;
                    }
                    let message = sample(kind, recipient, language);
                    assert_eq!(message.validate(), Ok(()));
                    renderer.render(&message).unwrap_or_else(|e| panic!("{kind:?} {language:?}: {e}"));
                }
            }
        }
    }

    #[test]
    fn a_missing_argument_or_message_is_an_error_not_a_literal_placeable() {
        let renderer = Renderer::new();
        let mut message =
            sample(EventKind::CompensationPaid, Recipient::Email { address: "a@b.c".into() }, Language::En);
        message.arguments.remove("amount");
        assert!(matches!(renderer.render(&message), Err(RenderError::Unfilled { .. })));
        assert!(matches!(renderer.text(Language::Zh, "no-such", &message), Err(RenderError::MissingMessage { .. })));
    }

    #[test]
    fn selectors_pick_the_right_variant_in_the_right_language() {
        let renderer = Renderer::new();
        let mut message = sample(EventKind::AppealDecided, Recipient::Sms { phone: "+86138".into() }, Language::Zh);
        let Rendered::Sms { text } = renderer.render(&message).expect("renders") else { panic!("sms") };
        assert!(text.contains("申诉成功"), "{text}");
        message.language = Language::En;
        message.arguments.insert("outcome".into(), "uphold".into());
        let Rendered::Sms { text } = renderer.render(&message).expect("renders") else { panic!("sms") };
        assert!(text.contains("decision stands"), "{text}");
    }

    #[test]
    fn shipped_sms_texts_fit_and_long_ones_are_cut() {
        let renderer = Renderer::new();
        for kind in EventKind::ALL {
            for language in Language::ALL {
                let message = sample(kind, Recipient::Sms { phone: "+8613800000000".into() }, language);
                let text = renderer.text(language, &format!("{}-sms", kind.fluent_id()), &message).expect("renders");
                assert!(
                    text.chars().count() <= MAX_SMS_CHARS,
                    "{kind:?} {language:?} is {} chars",
                    text.chars().count()
                );
            }
        }
        let cut = sms_text("验".repeat(500));
        assert_eq!(cut.chars().count(), MAX_SMS_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn webhook_bodies_are_json_without_secrets() {
        let renderer = Renderer::new();
        let message =
            sample(EventKind::RestrictionImposed, Recipient::Webhook { endpoint_id: "m1".into() }, Language::En);
        let Rendered::Webhook { body } = renderer.render(&message).expect("renders") else { panic!("webhook") };
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["type"], "restriction_imposed");
        assert_eq!(json["id"], message.id);
        assert_eq!(json["language"], "en");
        assert_eq!(json["data"]["scope"], "scan_to_pay");
        assert_eq!(json["summary"], "Credit payments on your account are paused");
    }

    #[test]
    fn both_locale_files_define_the_same_messages() {
        let ids = |source: &str| -> std::collections::BTreeSet<String> {
            source
                .lines()
                .filter_map(|l| l.split_once(" =").map(|(id, _)| id))
                .filter(|id| !id.is_empty() && !id.starts_with([' ', '#']))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(ids(EN), ids(ZH));
    }
}
