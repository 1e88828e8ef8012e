//! `serve`'s outbox dispatcher: its own task, which reads the rows that are due from the
//! writer, claims them there by compare-and-set, hands the claimed ones to
//! `xiezhi_notify::Dispatcher` (signed webhooks, SMTP email, SMS through the gateway; a
//! one-time code's row is opened with the outbox key just before its send) and
//! writes each outcome back the same way. It keeps nothing of its own: the outbox in the
//! store is the queue, so a crash anywhere loses no message (ARCHITECTURE.md, "The path of
//! a notification").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use xiezhi_core::{Clock, Command, OutboxConfig, OutboxTransition, Reply, Service, MAX_OUTBOX_ROWS_PER_COMMAND};
use xiezhi_notify::{
    Channels, CodeKey, Dispatcher, DispatcherConfig, EmailChannel, OutboxEntry, SmsChannel, SmsSender, SmtpConfig,
    SmtpSecurity, WebhookChannel, WebhookConfig, WebhookEndpoint, WebhookSecret,
};

/// How long the loop waits after a round that found nothing due.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How long it waits after the writer refused (overloaded, storage down, reads only).
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Longest wait for a round in flight at shutdown; what is cut short stays `delivering`
/// and is sent again after its lease.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default lease of an attempt in flight (a row still `delivering` after it was lost).
pub const DEFAULT_LEASE_SECS: u64 = 300;

/// What `serve` takes to deliver notifications.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DeliveryArgs {
    /// Send every notification event, signed, to this operator endpoint: `URL` or `ID=URL`
    /// (repeatable, at most 2; ids default to `operator`, `operator-2`). https, or http to a
    /// loopback address. The signing secret comes from `XIEZHI_WEBHOOK_SECRET` or
    /// `--webhook-secret-file`, never from a flag's value.
    #[arg(long = "webhook-url", value_name = "[ID=]URL")]
    pub webhook_urls: Vec<String>,
    /// A file holding the webhook signing secret (32-256 visible ASCII characters).
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Send email through this relay: `smtp://host:port` (plain only to loopback, else
    /// STARTTLS) or `smtps://host:port`; credentials from `XIEZHI_SMTP_USER` and
    /// `XIEZHI_SMTP_PASSWORD`.
    #[arg(long)]
    pub smtp_url: Option<String>,
    /// The From: of notification email.
    #[arg(long, default_value = "Xiezhi <notify@localhost>")]
    pub smtp_from: String,
    /// Seconds an attempt may stay unrecorded before it counts as lost and is sent again
    /// (each attempt is cut off at half of this, and at a minute).
    #[arg(long, default_value_t = DEFAULT_LEASE_SECS)]
    pub outbox_lease_secs: u64,
    /// A file holding the key one-time codes are sealed under in the outbox (64 hex
    /// digits, 32 bytes). `XIEZHI_OUTBOX_KEY` takes precedence; with neither, a fresh key
    /// is made at start and kept in memory only, so codes pending at a restart go dead.
    #[arg(long)]
    pub outbox_key_file: Option<PathBuf>,
}

/// The key codes are sealed under: `XIEZHI_OUTBOX_KEY`, else `--outbox-key-file`, else a
/// fresh one from the OS generator, with a warning. Never logged.
pub fn outbox_key(args: &DeliveryArgs) -> Result<CodeKey, String> {
    let bad = |from: &str| format!("{from}: an outbox key is 64 hexadecimal digits (32 bytes)");
    if let Some(text) = std::env::var("XIEZHI_OUTBOX_KEY").ok().filter(|k| !k.trim().is_empty()) {
        return CodeKey::from_hex(&text).map_err(|_| bad("XIEZHI_OUTBOX_KEY"));
    }
    if let Some(path) = &args.outbox_key_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return CodeKey::from_hex(&text).map_err(|_| bad(&path.display().to_string()));
    }
    tracing::warn!(
        "no outbox key (XIEZHI_OUTBOX_KEY or --outbox-key-file): one-time codes are sealed under a key made now and \
         kept in memory only; codes still unsent when this process stops cannot be read after a restart and are \
         marked dead, never sent (a code expires in minutes; the shopper asks for a new one)"
    );
    CodeKey::generate().map_err(|e| e.to_string())
}

/// The webhook signing secret: `XIEZHI_WEBHOOK_SECRET`, else the file. Never logged.
fn webhook_secret(args: &DeliveryArgs) -> Result<WebhookSecret, String> {
    let text = match (std::env::var("XIEZHI_WEBHOOK_SECRET").ok().filter(|s| !s.is_empty()), &args.webhook_secret_file)
    {
        (Some(secret), _) => secret,
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        (None, None) => {
            return Err("--webhook-url needs a signing secret: XIEZHI_WEBHOOK_SECRET or --webhook-secret-file".into())
        }
    };
    WebhookSecret::new(text.trim().to_owned())
        .map_err(|_| "the webhook secret must be 32 to 256 visible ASCII characters".to_owned())
}

fn webhook_channel(args: &DeliveryArgs) -> Result<(Vec<String>, Option<WebhookChannel>), String> {
    if args.webhook_urls.is_empty() {
        return Ok((vec![], None));
    }
    let secret = webhook_secret(args)?;
    let mut endpoints = Vec::with_capacity(args.webhook_urls.len());
    for (i, given) in args.webhook_urls.iter().enumerate() {
        let default_id = if i == 0 { "operator".to_owned() } else { format!("operator-{}", i + 1) };
        let (id, url) = match given.split_once('=') {
            Some((id, url)) if !id.contains('/') => (id.to_owned(), url),
            _ => (default_id, given.as_str()),
        };
        endpoints.push(WebhookEndpoint::new(id, url, secret.clone()).map_err(|e| e.to_string())?);
    }
    let ids = endpoints.iter().map(|e| e.id.clone()).collect();
    let channel = WebhookChannel::new(endpoints, WebhookConfig::default()).map_err(|e| e.to_string())?;
    Ok((ids, Some(channel)))
}

fn email_channel(args: &DeliveryArgs) -> Result<Option<EmailChannel>, String> {
    let Some(given) = &args.smtp_url else { return Ok(None) };
    let url = reqwest::Url::parse(given).map_err(|_| "--smtp-url is smtp://host:port or smtps://host:port")?;
    let host = url.host_str().ok_or("--smtp-url names no host")?.trim_matches(['[', ']']).to_owned();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let (security, default_port) = match url.scheme() {
        "smtps" => (SmtpSecurity::Tls, 465),
        "smtp" if loopback => (SmtpSecurity::Plain, 25),
        "smtp" => (SmtpSecurity::StartTls, 587),
        other => return Err(format!("--smtp-url: `{other}` is not smtp or smtps")),
    };
    let user = std::env::var("XIEZHI_SMTP_USER").ok().filter(|u| !u.is_empty());
    let password = std::env::var("XIEZHI_SMTP_PASSWORD").unwrap_or_default();
    let config = SmtpConfig {
        host,
        port: url.port().unwrap_or(default_port),
        security,
        credentials: user.map(|user| (user, password)),
        from: args.smtp_from.clone(),
        hello_name: "localhost".into(),
        timeout: xiezhi_notify::email::DEFAULT_SMTP_TIMEOUT,
    };
    EmailChannel::new(&config).map(Some).map_err(|e| format!("--smtp-url: {e}"))
}

/// What the writer writes rows for, the channels that deliver them, and a line for the
/// operator saying so.
pub fn channels(
    args: &DeliveryArgs,
    sms: Option<Arc<dyn SmsSender>>,
) -> Result<(OutboxConfig, Channels, String), String> {
    let (operator_webhooks, webhook) = webhook_channel(args)?;
    let email = email_channel(args)?;
    let config = OutboxConfig { sms: sms.is_some(), email: email.is_some(), operator_webhooks };
    config.check()?;
    let said = format!(
        "notifications: SMS {}, email {}, operator webhooks {}",
        if config.sms { "on" } else { "off" },
        if config.email { "on" } else { "off (--smtp-url)" },
        if config.operator_webhooks.is_empty() {
            "off (--webhook-url)".to_owned()
        } else {
            config.operator_webhooks.join(", ")
        },
    );
    let channels = Channels {
        webhook: webhook.map(|c| Arc::new(c) as Arc<dyn xiezhi_notify::Channel>),
        email: email.map(|c| Arc::new(c) as Arc<dyn xiezhi_notify::Channel>),
        sms: sms.map(|s| Arc::new(SmsChannel::new(s)) as Arc<dyn xiezhi_notify::Channel>),
    };
    Ok((config, channels, said))
}

/// The dispatcher, on the service's clock (so a fast demo clock ages leases and retries too).
pub fn dispatcher(args: &DeliveryArgs, channels: Channels, clock: Arc<dyn Clock>) -> Result<Dispatcher, String> {
    let lease = Duration::from_secs(args.outbox_lease_secs.clamp(2, 24 * 3600));
    let config = DispatcherConfig {
        attempt_timeout: (lease / 2).min(Duration::from_secs(60)),
        lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
        ..DispatcherConfig::default()
    };
    Dispatcher::with_clock(channels, config, Arc::new(move || clock.now_ms())).map_err(|e| e.to_string())
}

/// Runs rounds until `stop` turns true; a round in flight finishes first. `wake` cuts an
/// idle wait short: the writer wakes it when it writes a one-time code's row, which the
/// shopper is waiting for.
pub async fn run(
    service: Service,
    dispatcher: Dispatcher,
    mut stop: tokio::sync::watch::Receiver<bool>,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let pause = match round(&service, &dispatcher).await {
            Ok(0) => IDLE_POLL,
            Ok(_) => Duration::ZERO,
            Err(error) => {
                tracing::warn!(%error, "the outbox dispatcher could not reach the writer; trying again");
                ERROR_PAUSE
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                changed = stop.changed() => {
                    // The sender gone means the server is gone too.
                    if changed.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep(pause) => {}
                () = wake.notified(), if pause == IDLE_POLL => {}
            }
        }
    }
}

/// One round: due rows, claimed by compare-and-set, sent, outcomes recorded. Returns how
/// many rows it moved.
async fn round(service: &Service, dispatcher: &Dispatcher) -> Result<usize, String> {
    let lease_ms = dispatcher.config().lease_ms;
    let command = Command::DueOutbox { max: MAX_OUTBOX_ROWS_PER_COMMAND, lease_ms };
    let reply = service.execute(command, None).await.map_err(|e| e.to_string())?;
    let Reply::Document(document) = reply else { return Err("unexpected answer to DueOutbox".into()) };
    let rows: Vec<OutboxEntry> = serde_json::from_value(document["rows"].clone()).map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(0);
    }
    let claim = dispatcher.claim(rows, service.clock().now_ms()).map_err(|e| e.to_string())?;
    let moved = claim.to_send.len() + claim.reclaimed.len();
    let mut claims = claim.reclaimed;
    claims.extend(claim.to_send.iter().cloned());
    let applied = record(service, claims).await?;
    // Only rows whose claim was stored are sent: the store must say `delivering` before a
    // byte leaves, or a crash mid-send would go unnoticed and uncounted.
    let claimed: Vec<OutboxEntry> =
        claim.to_send.into_iter().filter(|t| applied.contains(&t.entry.message.id)).map(|t| t.entry).collect();
    let outcomes = dispatcher.deliver(claimed).await;
    record(service, outcomes).await?;
    Ok(moved)
}

/// Stores transitions by compare-and-set; returns the ids applied.
async fn record(service: &Service, transitions: Vec<OutboxTransition>) -> Result<Vec<String>, String> {
    if transitions.is_empty() {
        return Ok(vec![]);
    }
    let reply = service.execute(Command::RecordOutbox(transitions), None).await.map_err(|e| e.to_string())?;
    let Reply::Document(document) = reply else { return Err("unexpected answer to RecordOutbox".into()) };
    serde_json::from_value(document["applied"].clone()).map_err(|e| e.to_string())
}
