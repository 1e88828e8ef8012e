//! Where the service meets the risk engine: the facts of a payment, what each outcome does
//! to the payment and the line (hold, challenge, restriction), challenges and their codes,
//! the user's inbox, and the operator's rules, policy and lists.

use crate::error::CoreError;
use crate::lifecycle::{LifecycleEvent, LifecycleKind};
use crate::model::*;
use crate::state::{new_id, State};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;
use xiezhi_risk::rules::RuleSetDefinition;
use xiezhi_risk::{
    ActiveRestriction, DecisionRecord, Engine, ListEntry, Lists, NewListEntry, PaymentFacts, Policy, RuleSet,
};
use xiezhi_store::{Batch, RecordKind, StoreError};

/// Most messages kept in one user's inbox.
pub const MAX_INBOX_MESSAGES: usize = 20;
/// Wrong one-time-code answers one credit line may give within an hour before every
/// answer on it is refused until the hour has passed.
pub const MAX_WRONG_ANSWERS_PER_LINE_HOUR: usize = 10;
/// Setting ids.
const RULES_SETTING: &str = "rules";
const POLICY_SETTING: &str = "policy";

/// Where the engine's policy, rules and fraud scorer come from at start-up.
#[derive(Clone, Default)]
pub struct RiskConfig {
    /// A policy document (`--policy FILE`); overrides one stored through the API.
    pub policy_json: Option<String>,
    /// A rule set (`--rules FILE`); overrides one stored through the API.
    pub rules_json: Option<String>,
    /// A trained fraud model (`--fraud-model DIR`); the heuristic scorer otherwise.
    pub scorer: Option<Arc<dyn xiezhi_risk::Scorer>>,
    /// A scorer that watches every decision without deciding (`--challenger-model DIR`):
    /// each decision record says what it would have decided.
    pub challenger: Option<Arc<dyn xiezhi_risk::Scorer>>,
    /// The secret the engine's velocity maps hash ids under. `None` (the default): a fresh
    /// one from the OS generator each time the engine is built; tests may fix it.
    pub hash_key: Option<xiezhi_risk::velocity::HashKey>,
}

impl std::fmt::Debug for RiskConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RiskConfig")
            .field("policy_json", &self.policy_json.as_ref().map(String::len))
            .field("rules_json", &self.rules_json.as_ref().map(String::len))
            .field("scorer", &self.scorer.as_ref().map(|s| format!("{}@{}", s.name(), s.version())))
            .field("challenger", &self.challenger.as_ref().map(|s| format!("{}@{}", s.name(), s.version())))
            .field("hash_key", &self.hash_key.map(|_| "fixed"))
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredListEntry {
    pub entry: ListEntry,
    pub removed_at_ms: Option<i64>,
}

/// The part of a stored decision replayed into the velocity state at start-up.
#[derive(Deserialize)]
struct ReplayedDecision {
    facts: PaymentFacts,
    outcome: Outcome,
    features: xiezhi_risk::FeatureVector,
}

type CodeMac = hmac::Hmac<Sha256>;

fn code_mac(secret: &[u8; 32], challenge_id: &str) -> CodeMac {
    use hmac::Mac;
    let mut mac = CodeMac::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(challenge_id.as_bytes());
    mac.update(b":");
    mac
}

fn code_hmac(secret: &[u8; 32], challenge_id: &str, code: &str) -> String {
    use hmac::Mac;
    let mut mac = code_mac(secret, challenge_id);
    mac.update(code.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Whether `code` is the challenge's, compared in constant time.
fn code_matches(secret: &[u8; 32], c: &Challenge, code: &str) -> bool {
    use hmac::Mac;
    if c.code_hmac.is_empty() {
        // A challenge opened before codes were keyed.
        let digest = Sha256::digest(format!("{}:{code}", c.id).as_bytes());
        return !c.code_sha256.is_empty() && hex(&digest) == c.code_sha256;
    }
    let Some(expected) = hex_bytes(&c.code_hmac) else { return false };
    let mut mac = code_mac(secret, &c.id);
    mac.update(code.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

fn rejected(error: xiezhi_risk::RuleError) -> CoreError {
    CoreError::RuleRejected { rule_id: error.rule_id, message: error.message }
}

/// A hash key nobody outside the process knows: ids a client chooses cannot be made to
/// collide in the engine's maps.
fn os_hash_key() -> xiezhi_risk::velocity::HashKey {
    xiezhi_risk::velocity::HashKey(crate::random::os_bytes())
}

pub(crate) fn build_engine(store: &mut dyn xiezhi_store::Store, config: &RiskConfig) -> Result<Engine, StoreError> {
    let mut engine = Engine::with_defaults();
    engine.state_mut().set_hash_key(config.hash_key.unwrap_or_else(os_hash_key));
    let catalogue = Arc::clone(engine.catalogue());
    let setting = |store: &mut dyn xiezhi_store::Store, id: &str| -> Result<Option<String>, StoreError> {
        Ok(store.record(RecordKind::Setting, id)?.map(|r| r.body))
    };
    let policy_text = match &config.policy_json {
        Some(text) => Some(text.clone()),
        None => setting(store, POLICY_SETTING)?,
    };
    if let Some(text) = policy_text {
        let policy = Policy::from_json(&text, &catalogue).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        engine.set_policy(Arc::new(policy));
    }
    let rules_text = match &config.rules_json {
        Some(text) => Some(text.clone()),
        None => setting(store, RULES_SETTING)?,
    };
    if let Some(text) = rules_text {
        let rules = RuleSet::from_json(&text, &catalogue).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        engine.set_rules(Arc::new(rules));
    }
    if let Some(scorer) = &config.scorer {
        engine.set_scorer(Arc::clone(scorer));
    }
    engine.set_challenger(config.challenger.clone());
    Ok(engine)
}

impl State {
    /// Loads what the engine and the risk side of the service remember: line profiles,
    /// restrictions, pending challenges, lists, and the velocity state rebuilt from every
    /// stored decision and challenge, in time order.
    pub(crate) fn reload_risk(&mut self) -> Result<(), StoreError> {
        let mut engine = build_engine(self.store.as_mut(), &self.risk_config)?;
        self.line_profiles.clear();
        self.user_wallets.clear();
        self.restrictions.clear();
        self.active_restrictions.clear();
        self.restrictions_by_line.clear();
        self.user_lines.clear();
        self.challenges.clear();
        let corrupt = |kind: RecordKind, id: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("{} record {id}: {e}", kind.as_str()))
        };
        for r in self.store.records(RecordKind::LineProfile)? {
            let p: LineProfile = serde_json::from_str(&r.body).map_err(|e| corrupt(r.kind, &r.id, e))?;
            engine.set_credit_band(&p.credit_line_id, p.credit.as_ref().and_then(|c| c.assessment.band.as_deref()));
            self.user_wallets.entry(p.user_id.clone()).or_insert_with(|| p.wallet_id.clone());
            self.user_lines.entry(p.user_id.clone()).or_default().push(p.credit_line_id.clone());
            self.line_profiles.insert(p.credit_line_id.clone(), p);
        }
        for r in self.store.records(RecordKind::Restriction)? {
            let mut restriction: Restriction = serde_json::from_str(&r.body).map_err(|e| corrupt(r.kind, &r.id, e))?;
            let user_id = self.line_profiles.get(&restriction.credit_line_id).map(|p| p.user_id.clone());
            restriction.upgrade(&r.id, user_id.as_deref());
            self.remember_restriction(restriction);
        }
        self.reload_appeals()?;
        self.reload_compensations()?;
        let mut lists = Lists::default();
        for r in self.store.records(RecordKind::ListEntry)? {
            let stored: StoredListEntry = serde_json::from_str(&r.body).map_err(|e| corrupt(r.kind, &r.id, e))?;
            if stored.removed_at_ms.is_none() {
                lists.insert(stored.entry).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            }
        }
        *engine.lists_mut() = lists;
        let mut decisions = 0u64;
        self.store.for_each_record(RecordKind::Decision, &mut |r| {
            let d: ReplayedDecision = serde_json::from_str(&r.body).map_err(|e| corrupt(r.kind, &r.id, e))?;
            let attempt = engine.attempt(&d.facts);
            let policy = engine.velocity_policy(d.facts.now_ms);
            engine.state_mut().record(&attempt, d.outcome, d.features.bool(xiezhi_risk::Feature::IsRetry), &policy);
            decisions += 1;
            Ok(())
        })?;
        // Challenge outcomes replay in time order (wrong answers before a pass at the same
        // instant: a pass clears the failures before it).
        let mut pending = vec![];
        let mut answers: Vec<(i64, bool, String, Option<String>)> = vec![];
        let mut wrong_by_line: Vec<(String, i64)> = vec![];
        self.store.for_each_record(RecordKind::Challenge, &mut |r| {
            let c: Challenge = serde_json::from_str(&r.body).map_err(|e| corrupt(r.kind, &r.id, e))?;
            for at in &c.wrong_answers_at_ms {
                answers.push((*at, false, c.user_id.clone(), c.device_id.clone()));
                wrong_by_line.push((c.credit_line_id.clone(), *at));
            }
            match (c.status, c.resolved_at_ms) {
                (ChallengeStatus::Passed, Some(at)) => answers.push((at, true, c.user_id.clone(), c.device_id.clone())),
                (ChallengeStatus::Pending, _) => pending.push(c),
                _ => {}
            }
            Ok(())
        })?;
        answers.sort_by_key(|(at, passed, _, _)| (*at, *passed));
        for (at, passed, user_id, device_id) in answers {
            engine.state_mut().record_challenge(&user_id, device_id.as_deref(), passed, at);
        }
        for c in pending {
            self.challenges.insert(c.id.clone(), c);
        }
        self.wrong_answers.clear();
        wrong_by_line.sort_by_key(|(_, at)| *at);
        for (line_id, at) in wrong_by_line {
            self.remember_wrong_answer(&line_id, at);
        }
        tracing::info!(decisions, users = engine.state().user_count(), "risk state rebuilt from stored decisions");
        self.engine = engine;
        Ok(())
    }

    pub(crate) fn save_line_profile(&mut self, profile: LineProfile, now_ms: i64, out: &mut Batch) {
        self.put(out, RecordKind::LineProfile, &profile.credit_line_id, &profile, now_ms);
        // The band the line was opened in is its payments' `credit_band`.
        let band = profile.credit.as_ref().and_then(|c| c.assessment.band.as_deref());
        self.engine.set_credit_band(&profile.credit_line_id, band);
        self.user_wallets.entry(profile.user_id.clone()).or_insert_with(|| profile.wallet_id.clone());
        let lines = self.user_lines.entry(profile.user_id.clone()).or_default();
        if !lines.contains(&profile.credit_line_id) {
            lines.push(profile.credit_line_id.clone());
        }
        self.line_profiles.insert(profile.credit_line_id.clone(), profile);
    }

    pub(crate) fn restriction_view(&self, credit_line_id: &str, now_ms: i64) -> Option<RestrictionView> {
        self.active_restriction(credit_line_id, now_ms).map(RestrictionView::from)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn payment_facts(
        &self,
        payment: &Payment,
        merchant: &Merchant,
        user_id: &str,
        available_minor: i64,
        limit_minor: i64,
        now_ms: i64,
    ) -> Result<PaymentFacts, CoreError> {
        let ip = match payment.context.ip.as_deref() {
            Some(text) => Some(text.parse().map_err(|_| CoreError::InvalidRequest {
                field: "context.ip".into(),
                message: format!("`{text}` is not an IP address"),
            })?),
            None => None,
        };
        let line = self.line_profiles.get(&payment.credit_line_id);
        Ok(PaymentFacts {
            payment_id: payment.id.clone(),
            user_id: user_id.to_owned(),
            credit_line_id: payment.credit_line_id.clone(),
            amount_minor: payment.amount_minor,
            currency: payment.currency,
            merchant_id: merchant.id.clone(),
            mcc: merchant.mcc.clone(),
            merchant_country: merchant.country.clone(),
            merchant_created_at_ms: merchant.created_at_ms,
            device_id: payment.context.device_id.clone(),
            ip,
            network: payment.context.network.clone(),
            available_minor,
            limit_minor,
            line_opened_at_ms: line.map_or(0, |l| l.opened_at_ms),
            profile: line.map(|l| l.profile.clone()).unwrap_or_default(),
            restriction: self
                .active_restriction(&payment.credit_line_id, now_ms)
                .map(|r| ActiveRestriction { reason_code: r.reason_code.clone(), until_ms: r.until_ms }),
            now_ms,
        })
    }

    /// Runs the engine on a payment and applies its outcome. Returns the decision; the caller
    /// authorizes the hold when it is an approval.
    pub(crate) fn decide(&mut self, facts: PaymentFacts, out: &mut Batch) -> DecisionRecord {
        let started = Instant::now();
        let mut decision = self.engine.decide(facts);
        decision.latency_us = started.elapsed().as_micros() as u64;
        metrics::histogram!("xiezhi_decision_latency_us").record(decision.latency_us as f64);
        metrics::counter!("xiezhi_decisions_total", "outcome" => decision.outcome.as_str()).increment(1);
        if decision.scorer_fallback {
            // The configured model could not score: the heuristic scorer decided instead.
            metrics::counter!("xiezhi_scorer_fallbacks_total").increment(1);
            tracing::warn!(payment_id = %decision.facts.payment_id, "fraud scorer failed; heuristic score used");
        }
        for code in &decision.reason_codes {
            metrics::counter!("xiezhi_reason_codes_total", "reason_code" => code.clone()).increment(1);
        }
        let now_ms = decision.facts.now_ms;
        let payment_id = decision.facts.payment_id.clone();
        self.put(out, RecordKind::Decision, &payment_id, &decision, now_ms);
        decision
    }

    /// The client's view of a decision, with amounts and instants rendered.
    pub(crate) fn decision_view(&self, d: &DecisionRecord, challenge_id: Option<String>) -> Decision {
        let currency = d.facts.currency;
        Decision {
            outcome: d.outcome,
            reason_codes: d.reason_codes.clone(),
            explanation: d.explanation.clone(),
            recovery: d
                .recovery
                .iter()
                .map(|r| RecoveryView {
                    action: r.action,
                    max_amount: r.max_amount_minor.map(|m| decimal(m, currency)),
                    until: r.until_ms.map(timestamp),
                    deadline: r.deadline_ms.map(timestamp),
                    challenge_id: match r.action {
                        RecoveryKind::OneTimeCode | RecoveryKind::Reauthenticate | RecoveryKind::VerifyIdentity => {
                            challenge_id.clone()
                        }
                        _ => None,
                    },
                    kyc_level: r.kyc_level,
                    fields: r.fields.clone(),
                    endpoint: r.endpoint.clone(),
                })
                .collect(),
            expires_at: d.expires_at_ms.map(timestamp),
            challenge_id,
            notices: d
                .notices
                .iter()
                .map(|n| NoticeView {
                    clause_id: n.clause_id.clone(),
                    reason_code: n.reason_code.clone(),
                    effective_from: timestamp(n.effective_from_ms),
                    explanation: n.explanation.clone(),
                })
                .collect(),
        }
    }

    /// Opens a challenge and sends its code to the user's inbox.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open_challenge(
        &mut self,
        purpose: ChallengePurpose,
        method: xiezhi_risk::ChallengeMethod,
        payment_id: Option<String>,
        credit_line_id: &str,
        user_id: &str,
        device_id: Option<String>,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<String, CoreError> {
        let trust = &self.engine.policy().document.trust;
        let (ttl_ms, max_attempts) = (trust.challenge_ttl_seconds * 1_000, trust.challenge_max_attempts);
        let id = new_id("ch", now_ms);
        let code = crate::random::one_time_code();
        let challenge = Challenge {
            id: id.clone(),
            purpose,
            method,
            payment_id,
            credit_line_id: credit_line_id.to_owned(),
            user_id: user_id.to_owned(),
            device_id,
            code_hmac: code_hmac(&self.code_secret, &id, &code),
            code_sha256: String::new(),
            attempts: 0,
            max_attempts,
            wrong_answers_at_ms: vec![],
            status: ChallengeStatus::Pending,
            created_at_ms: now_ms,
            expires_at_ms: now_ms + ttl_ms,
            resolved_at_ms: None,
        };
        self.put(out, RecordKind::Challenge, &id, &challenge, now_ms);
        self.challenges.insert(id.clone(), challenge);
        let minutes = (ttl_ms / 60_000).max(1).to_string();
        if self.outbox_config.sms {
            // Through the outbox, in this batch: a crash after the commit loses no code.
            if let Some(challenge) = self.challenges.get(&id).cloned() {
                self.code_event(&challenge, &code, &minutes, now_ms, out);
            }
        } else {
            self.hand_code_to_notifier(&id, code, &minutes, user_id, credit_line_id, now_ms);
        }
        // The inbox says a code was sent, never which.
        let message = self.engine.catalogue().both("notify-code-sent", &[("minutes", minutes)]);
        self.notify(credit_line_id, "one_time_code", message, Some(id.clone()), now_ms, out)?;
        Ok(id)
    }

    /// Without an SMS channel in the outbox (an embedder's or a test's in-process
    /// notifier), the code is handed over once its batch is durable, and never stored.
    fn hand_code_to_notifier(
        &mut self,
        id: &str,
        code: String,
        minutes: &str,
        user_id: &str,
        credit_line_id: &str,
        now_ms: i64,
    ) {
        let sms =
            self.engine.catalogue().both("notify-one-time-code", &[("code", code), ("minutes", minutes.to_owned())]);
        self.outbox.push(crate::notify::OutboundMessage {
            id: new_id("msg", now_ms),
            to_user_id: user_id.to_owned(),
            credit_line_id: credit_line_id.to_owned(),
            kind: "one_time_code".into(),
            challenge_id: Some(id.to_owned()),
            message: sms,
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn notify(
        &mut self,
        credit_line_id: &str,
        kind: &str,
        message: Explanation,
        challenge_id: Option<String>,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<(), CoreError> {
        let inbox = self.inbox(credit_line_id)?;
        self.notify_into(inbox, credit_line_id, kind, message, challenge_id, now_ms, out);
        Ok(())
    }

    /// Adds a message to an inbox already read (so a command can read everything before
    /// it writes anything).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn notify_into(
        &mut self,
        mut inbox: Vec<Notification>,
        credit_line_id: &str,
        kind: &str,
        message: Explanation,
        challenge_id: Option<String>,
        now_ms: i64,
        out: &mut Batch,
    ) {
        if inbox.len() >= MAX_INBOX_MESSAGES {
            inbox.remove(0);
        }
        inbox.push(Notification {
            id: new_id("ntf", now_ms),
            kind: kind.to_owned(),
            message,
            challenge_id,
            created_at: timestamp(now_ms),
        });
        self.put(out, RecordKind::Notification, credit_line_id, &inbox, now_ms);
    }

    pub(crate) fn inbox(&mut self, credit_line_id: &str) -> Result<Vec<Notification>, CoreError> {
        Ok(self.get(RecordKind::Notification, credit_line_id)?.unwrap_or_default())
    }

    /// Refuses answers on a line that has had [`MAX_WRONG_ANSWERS_PER_LINE_HOUR`] wrong
    /// answers within the hour, right or wrong: each challenge allows three tries, and this
    /// keeps a stream of new challenges from becoming a way to try the million codes.
    fn check_answer_rate(&mut self, credit_line_id: &str, now_ms: i64) -> Result<(), CoreError> {
        let Some(wrong) = self.wrong_answers.get_mut(credit_line_id) else { return Ok(()) };
        wrong.retain(|at| now_ms - at < 3_600_000);
        if wrong.len() < MAX_WRONG_ANSWERS_PER_LINE_HOUR {
            return Ok(());
        }
        let retry_after_ms = wrong.first().map_or(0, |first| first + 3_600_000 - now_ms);
        Err(CoreError::TooManyAttempts { retry_after_s: (retry_after_ms.max(0) / 1_000 + 1) as u64 })
    }

    pub(crate) fn remember_wrong_answer(&mut self, credit_line_id: &str, at_ms: i64) {
        let wrong = self.wrong_answers.entry(credit_line_id.to_owned()).or_default();
        if wrong.len() >= MAX_WRONG_ANSWERS_PER_LINE_HOUR {
            wrong.remove(0);
        }
        wrong.push(at_ms);
    }

    pub(crate) fn challenge(&mut self, id: &str) -> Result<Challenge, CoreError> {
        if let Some(c) = self.challenges.get(id) {
            return Ok(c.clone());
        }
        self.get(RecordKind::Challenge, id)?.ok_or_else(|| CoreError::ChallengeNotFound { id: id.to_owned() })
    }

    pub(crate) fn challenge_view(&mut self, id: &str) -> Result<Reply, CoreError> {
        let c = self.challenge(id)?;
        let mut view = ChallengeView::from(&c);
        if let Some(payment_id) = &c.payment_id {
            view.payment = self.payment(payment_id).ok().map(|p| PaymentView::from(&p));
        }
        Ok(Reply::Challenge(view))
    }

    /// Checks a challenge answer. A wrong code uses up an attempt; the last one fails the
    /// challenge (and declines its payment). Answers to a challenge that is no longer
    /// pending change nothing and report its status.
    pub(crate) fn complete_challenge(
        &mut self,
        id: &str,
        answer: ChallengeAnswer,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        if answer.code.is_empty() || answer.code.len() > 16 || !answer.code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CoreError::InvalidRequest {
                field: "code".into(),
                message: "`code` is the digits sent to you".into(),
            });
        }
        let mut c = self.challenge(id)?;
        if c.status != ChallengeStatus::Pending {
            return self.challenge_view(id);
        }
        if now_ms >= c.expires_at_ms {
            self.resolve_challenge(&mut c, ChallengeStatus::Expired, now_ms, out)?;
            return self.challenge_view(id);
        }
        self.check_answer_rate(&c.credit_line_id, now_ms)?;
        if code_matches(&self.code_secret, &c, &answer.code) {
            self.resolve_challenge(&mut c, ChallengeStatus::Passed, now_ms, out)?;
        } else {
            c.attempts += 1;
            c.wrong_answers_at_ms.push(now_ms);
            self.remember_wrong_answer(&c.credit_line_id, now_ms);
            self.engine.state_mut().record_challenge(&c.user_id, c.device_id.as_deref(), false, now_ms);
            metrics::counter!("xiezhi_challenge_attempts_total", "result" => "wrong").increment(1);
            if c.attempts >= c.max_attempts {
                self.resolve_challenge(&mut c, ChallengeStatus::Failed, now_ms, out)?;
            } else {
                self.put(out, RecordKind::Challenge, &c.id, &c, now_ms);
                self.challenges.insert(c.id.clone(), c.clone());
            }
        }
        let mut reply = self.challenge_view(id)?;
        if let Reply::Challenge(view) = &mut reply {
            if c.purpose == ChallengePurpose::LiftRestriction {
                view.credit_line = self.credit_line_view_at(&c.credit_line_id, now_ms).ok();
            }
        }
        Ok(reply)
    }

    fn resolve_challenge(
        &mut self,
        c: &mut Challenge,
        status: ChallengeStatus,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<(), CoreError> {
        c.status = status;
        c.resolved_at_ms = Some(now_ms);
        // Only pending challenges stay in memory; reads find the resolution in the overlay.
        self.challenges.remove(&c.id);
        self.put(out, RecordKind::Challenge, &c.id, &*c, now_ms);
        // An answered, failed or expired challenge's code is worthless: never sent after.
        self.retire_code(&c.id, status, now_ms, out);
        metrics::counter!("xiezhi_challenges_resolved_total", "status" => format!("{status:?}").to_lowercase())
            .increment(1);
        let passed = status == ChallengeStatus::Passed;
        if passed {
            self.engine.state_mut().record_challenge(&c.user_id, c.device_id.as_deref(), true, now_ms);
        }
        match c.purpose {
            ChallengePurpose::LiftRestriction => {
                // The decision that imposed the restriction tells how its challenge ended.
                if let Some(payment_id) = c.payment_id.clone() {
                    let event = LifecycleEvent::challenge(LifecycleKind::resolved(status), &c.id, now_ms);
                    self.record_on_payment(&payment_id, event, now_ms, out)?;
                }
                if passed {
                    self.lift_on_challenge(c, now_ms, out)?;
                }
            }
            ChallengePurpose::Payment => {
                let Some(payment_id) = c.payment_id.clone() else { return Ok(()) };
                let payment = self.payment(&payment_id)?;
                if payment.status != PaymentStatus::ChallengeRequired {
                    return Ok(());
                }
                if passed {
                    self.approve_after_challenge(payment, &c.id, now_ms, out)?;
                } else {
                    let event = LifecycleEvent::challenge(LifecycleKind::resolved(status), &c.id, now_ms);
                    let explanation =
                        self.engine.catalogue().explain(Outcome::Decline, &[("challenge_failed", vec![])]);
                    let recovery = vec![RecoveryView {
                        deadline: Some(timestamp(
                            now_ms + self.engine.policy().document.restriction.appeal_days * 86_400_000,
                        )),
                        ..RecoveryView::new(RecoveryKind::Appeal)
                    }];
                    self.save_payment(payment, now_ms, out, |p| {
                        p.status = PaymentStatus::Declined;
                        p.decision.outcome = Outcome::Decline;
                        p.decision.reason_codes.push("challenge_failed".into());
                        p.decision.explanation = explanation;
                        p.decision.recovery = recovery;
                        p.decision.expires_at = None;
                        p.record(event);
                    });
                }
            }
        }
        Ok(())
    }

    /// A passed step-up: authorize now if the credit is still there.
    fn approve_after_challenge(
        &mut self,
        payment: Payment,
        challenge_id: &str,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<(), CoreError> {
        let passed = LifecycleEvent::challenge(LifecycleKind::ChallengePassed, challenge_id, now_ms);
        let line = self
            .ledger
            .credit_line(&payment.credit_line_id)
            .ok_or_else(|| CoreError::CreditLineNotFound { id: payment.credit_line_id.clone() })?;
        let (available_minor, limit_minor, user_id) =
            (line.available_minor(), line.limit_minor(), line.user_id.clone());
        let merchant = self.merchant_of(&payment)?;
        let facts = self.payment_facts(&payment, &merchant, &user_id, available_minor, limit_minor, now_ms)?;
        // The code answered the step-up; policy caps, lists, restrictions and credit are
        // checked again as they stand now. A line frozen by an accepted repair takes no holds.
        let mut refusals: Vec<(String, Vec<(String, String)>)> =
            self.engine.refusals_after_challenge(facts.clone()).into_iter().map(|s| (s.reason_code, s.args)).collect();
        if self.ledger.is_frozen(&payment.credit_line_id) {
            refusals.push(("line_restricted".into(), vec![]));
        }
        if !refusals.is_empty() {
            self.decline_after_challenge(payment, passed, refusals, now_ms, out);
            return Ok(());
        }
        let expires_at_ms = now_ms + self.hold_ttl_ms;
        let transaction = self
            .ledger
            .execute(
                xiezhi_ledger::Operation::Authorize {
                    hold_id: payment.id.clone(),
                    credit_line_id: payment.credit_line_id.clone(),
                    amount_minor: payment.amount_minor,
                    expires_at_ms,
                },
                now_ms,
            )
            .map_err(|e| CoreError::InvalidRequest { field: "amount".into(), message: e.to_string() })?;
        out.transactions.push(transaction);
        // The payment now counts as approved history for the velocity layer.
        let attempt = self.engine.attempt(&facts);
        let policy = self.engine.velocity_policy(now_ms);
        self.engine.state_mut().record_late_approval(&attempt, &policy);
        let explanation = self.engine.catalogue().both("notify-challenge-passed", &[]);
        self.save_payment(payment, now_ms, out, |p| {
            p.status = PaymentStatus::Authorized;
            p.expires_at_ms = Some(expires_at_ms);
            p.decision.outcome = Outcome::Approve;
            p.decision.explanation = explanation;
            p.decision.recovery = vec![];
            p.decision.expires_at = None;
            p.record(passed);
            p.record(LifecycleEvent::new(LifecycleKind::Authorized, now_ms));
        });
        Ok(())
    }

    /// A passed step-up that the layers a code does not answer now refuse: declined, with
    /// the reasons added to the decision's, their explanation and ways out, and both events.
    fn decline_after_challenge(
        &mut self,
        payment: Payment,
        passed: LifecycleEvent,
        refusals: Vec<(String, Vec<(String, String)>)>,
        now_ms: i64,
        out: &mut Batch,
    ) {
        let reasons: Vec<(&str, Vec<(&str, String)>)> = refusals
            .iter()
            .map(|(code, args)| (code.as_str(), args.iter().map(|(k, v)| (k.as_str(), v.clone())).collect()))
            .collect();
        let explanation = self.engine.catalogue().explain(Outcome::Decline, &reasons);
        let codes: Vec<&str> = refusals.iter().map(|(code, _)| code.as_str()).collect();
        let recovery = self.ways_after_challenge(&codes, &payment.credit_line_id, now_ms);
        let declined = LifecycleEvent {
            reason_codes: refusals.iter().map(|(code, _)| code.clone()).collect(),
            ..LifecycleEvent::new(LifecycleKind::Declined, now_ms)
        };
        self.save_payment(payment, now_ms, out, |p| {
            p.status = PaymentStatus::Declined;
            p.decision.outcome = Outcome::Decline;
            p.record(passed);
            p.record(declined);
            for (code, _) in refusals {
                if !p.decision.reason_codes.contains(&code) {
                    p.decision.reason_codes.push(code);
                }
            }
            p.decision.explanation = explanation;
            p.decision.recovery = recovery;
        });
    }

    /// The ways out of a payment declined after its challenge was passed: those of its
    /// refusing reasons that fit a decline and need no figure only the engine's decision
    /// computes (a lower amount's cap, when to try again): the appeal with its deadline, a
    /// restriction's lifting challenge, repaying, completing the profile, paying otherwise.
    fn ways_after_challenge(&self, codes: &[&str], credit_line_id: &str, now_ms: i64) -> Vec<RecoveryView> {
        let deadline = timestamp(now_ms + self.engine.policy().document.restriction.appeal_days * 86_400_000);
        let lift = self.active_restriction(credit_line_id, now_ms).and_then(|r| r.challenge_id.clone());
        let way = RecoveryView::new;
        let line_restricted = codes.contains(&"line_restricted");
        self.engine
            .catalogue()
            .ways_out(Outcome::Decline, codes, line_restricted)
            .into_iter()
            .filter_map(|action| match action {
                RecoveryKind::LowerAmount | RecoveryKind::Wait => None,
                RecoveryKind::Appeal => Some(RecoveryView { deadline: Some(deadline.clone()), ..way(action) }),
                RecoveryKind::VerifyIdentity => Some(RecoveryView { challenge_id: Some(lift.clone()?), ..way(action) }),
                _ => Some(way(action)),
            })
            .collect()
    }

    fn merchant_of(&self, payment: &Payment) -> Result<Merchant, CoreError> {
        self.merchants
            .get(&payment.merchant_id)
            .cloned()
            .ok_or_else(|| CoreError::MerchantNotFound { id: payment.merchant_id.clone() })
    }

    /// Expires pending challenges whose time is up; their payments are declined.
    pub(crate) fn expire_challenges(&mut self, now_ms: i64, max: usize, out: &mut Batch) -> Result<usize, CoreError> {
        let due: Vec<String> = self
            .challenges
            .values()
            .filter(|c| c.status == ChallengeStatus::Pending && c.expires_at_ms <= now_ms)
            .take(max)
            .map(|c| c.id.clone())
            .collect();
        for id in &due {
            let mut c = self.challenge(id)?;
            self.resolve_challenge(&mut c, ChallengeStatus::Expired, now_ms, out)?;
        }
        Ok(due.len())
    }

    /// A payment's stored decision. A payment refused before the engine ran (bad QR code,
    /// unknown line) has none.
    fn stored_decision(&mut self, payment_id: &str) -> Result<DecisionRecord, CoreError> {
        match self.get(RecordKind::Decision, payment_id)? {
            Some(decision) => Ok(decision),
            None => {
                self.payment(payment_id)?;
                Err(CoreError::DecisionNotFound { id: payment_id.to_owned() })
            }
        }
    }

    pub(crate) fn decision_record(&mut self, payment_id: &str) -> Result<Reply, CoreError> {
        let record = self.stored_decision(payment_id)?;
        let features = record.features.to_map();
        let mut value = serde_json::to_value(&record).expect("records serialise");
        // Stored compactly; shown with names.
        value["features"] = serde_json::Value::Object(features);
        // What a reviewer later found it to be (an overturned appeal: a false positive).
        if let Some(label) = self.get::<crate::appeals::DecisionLabel>(RecordKind::DecisionLabel, payment_id)? {
            value["label"] = serde_json::to_value(label).expect("labels serialise");
        }
        // What happened after the decision, kept on the payment: the record stays as decided.
        value["lifecycle"] = serde_json::to_value(self.lifecycle(payment_id)?).expect("lifecycles serialise");
        Ok(Reply::Document(value))
    }

    /// Re-runs a stored decision from its recorded facts and features under the policy,
    /// rules and scorer in force now: what would be decided today, and whether it differs.
    pub(crate) fn replay_decision(&mut self, payment_id: &str) -> Result<Reply, CoreError> {
        let stored = self.stored_decision(payment_id)?;
        let replayed = self.engine.replay(&stored);
        let summary = |d: &DecisionRecord| {
            serde_json::json!({
                "outcome": d.outcome,
                "reason_codes": d.reason_codes,
                "risk_points": d.risk_points,
                "versions": d.versions,
                "signals": d.signals,
            })
        };
        Ok(Reply::Document(serde_json::json!({
            "payment_id": payment_id,
            "changed": stored.outcome != replayed.outcome || stored.reason_codes != replayed.reason_codes,
            "stored": summary(&stored),
            "replayed": summary(&replayed),
        })))
    }

    pub(crate) fn rules_document(&self) -> Reply {
        let rules = self.engine.rules();
        Reply::Document(serde_json::json!({
            "version": rules.version,
            "rules": rules.rules.iter().map(|r| serde_json::json!({
                "definition": r.definition,
                "features": r.features,
            })).collect::<Vec<_>>(),
        }))
    }

    /// Validates a rule set completely, then swaps it in between two commands, so no
    /// decision sees half of two sets; it is stored and survives restarts.
    pub(crate) fn put_rules(
        &mut self,
        definition: RuleSetDefinition,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let rules = RuleSet::compile(definition, self.engine.catalogue()).map_err(rejected)?;
        let body = serde_json::to_string(&rules.definition()).expect("rule sets serialise");
        let setting =
            xiezhi_store::Record { kind: RecordKind::Setting, id: RULES_SETTING.into(), body, updated_at_ms: now_ms };
        self.put_record(out, setting);
        tracing::info!(version = %rules.version, rules = rules.rules.len(), "rule set swapped");
        self.engine.set_rules(Arc::new(rules));
        Ok(self.rules_document())
    }

    pub(crate) fn policy_document(&self, now_ms: i64) -> Reply {
        let policy = self.engine.policy();
        let clauses: Vec<serde_json::Value> = policy
            .clauses
            .iter()
            .zip(&policy.document.clauses)
            .map(|(active, clause)| {
                let state = if policy.in_force(active, now_ms) {
                    "in_force"
                } else if active.from_ms > now_ms {
                    "scheduled"
                } else {
                    "ended"
                };
                serde_json::json!({ "clause": clause, "state": state })
            })
            .collect();
        Reply::Document(serde_json::json!({
            "version": policy.version(),
            "document": policy.document,
            "clauses": clauses,
        }))
    }

    pub(crate) fn put_policy(&mut self, text: String, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        let policy = Policy::from_json(&text, self.engine.catalogue())
            .map_err(|e| CoreError::PolicyRejected { message: e.message })?;
        let current = self.engine.policy();
        if policy.document.id == current.document.id && policy.document.version <= current.document.version {
            return Err(CoreError::PolicyRejected {
                message: format!(
                    "version {} is not newer than the active version {}",
                    policy.document.version, current.document.version
                ),
            });
        }
        let body = serde_json::to_string(&policy.document).expect("policies serialise");
        let setting =
            xiezhi_store::Record { kind: RecordKind::Setting, id: POLICY_SETTING.into(), body, updated_at_ms: now_ms };
        self.put_record(out, setting);
        tracing::info!(version = %policy.version(), "policy swapped");
        self.engine.set_policy(Arc::new(policy));
        Ok(self.policy_document(now_ms))
    }

    pub(crate) fn add_list_entry(
        &mut self,
        request: NewListEntry,
        now_ms: i64,
        out: &mut Batch,
    ) -> Result<Reply, CoreError> {
        let expires_at_ms = Lists::validate(&request)
            .map_err(|e| CoreError::InvalidRequest { field: e.field.into(), message: e.message })?;
        if expires_at_ms.is_some_and(|x| x <= now_ms) {
            return Err(CoreError::InvalidRequest {
                field: "expires_at".into(),
                message: "`expires_at` is in the past".into(),
            });
        }
        let entry = ListEntry {
            id: new_id("le", now_ms),
            list: request.list,
            subject_kind: request.subject_kind,
            subject: request.subject,
            reason: request.reason,
            author: request.author,
            created_at_ms: now_ms,
            expires_at_ms,
        };
        self.engine
            .lists_mut()
            .insert(entry.clone())
            .map_err(|e| CoreError::InvalidRequest { field: e.field.into(), message: e.message })?;
        let stored = StoredListEntry { entry: entry.clone(), removed_at_ms: None };
        self.put(out, RecordKind::ListEntry, &entry.id, &stored, now_ms);
        Ok(Reply::Document(list_entry_json(&entry)))
    }

    pub(crate) fn remove_list_entry(&mut self, id: &str, now_ms: i64, out: &mut Batch) -> Result<Reply, CoreError> {
        let entry =
            self.engine.lists_mut().remove(id).ok_or_else(|| CoreError::ListEntryNotFound { id: id.to_owned() })?;
        let stored = StoredListEntry { entry: entry.clone(), removed_at_ms: Some(now_ms) };
        self.put(out, RecordKind::ListEntry, id, &stored, now_ms);
        Ok(Reply::Document(list_entry_json(&entry)))
    }

    pub(crate) fn lists_document(&self) -> Reply {
        Reply::Document(serde_json::json!({
            "entries": self.engine.lists().entries().take(1_000).map(list_entry_json).collect::<Vec<_>>(),
            "total": self.engine.lists().len(),
        }))
    }

    pub(crate) fn notifications(&mut self, credit_line_id: &str) -> Result<Reply, CoreError> {
        if self.ledger.credit_line(credit_line_id).is_none() {
            return Err(CoreError::CreditLineNotFound { id: credit_line_id.to_owned() });
        }
        let inbox = self.inbox(credit_line_id)?;
        Ok(Reply::Document(serde_json::json!({ "credit_line_id": credit_line_id, "notifications": inbox })))
    }

    pub(crate) fn prune_risk_state(&mut self, now_ms: i64) {
        let pruned = self.engine.state_mut().prune(now_ms);
        metrics::counter!("xiezhi_risk_state_pruned_total").increment(pruned as u64);
        metrics::gauge!("xiezhi_risk_state_users").set(self.engine.state().user_count() as f64);
    }
}

fn list_entry_json(e: &ListEntry) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "list": e.list,
        "subject_kind": e.subject_kind,
        "subject": e.subject,
        "reason": e.reason,
        "author": e.author,
        "created_at": timestamp(e.created_at_ms),
        "expires_at": e.expires_at_ms.map(timestamp),
    })
}
