//! Where simulated traffic goes: the in-process [`Bank`] (the real engine and the real
//! ledger, on the simulator's clock), or a server over HTTP (the CLI's driver). Both answer
//! the same calls, so the report means the same thing whichever ran it.

use crate::world::{MerchantSpec, UserSpec};
use crate::SimError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use xiezhi_ledger::{Ledger, Operation, Transaction};
use xiezhi_money::Currency;
use xiezhi_risk::{ActiveRestriction, Engine, Outcome, PaymentFacts, Policy, PolicyDocument, RuleSet, UserProfile};

/// A payment as the simulator hands it over. Ids are the world's indexes; drivers turn
/// them into their own identifiers.
#[derive(Debug, Clone)]
pub struct PayRequest {
    /// Unique within a run; drivers use it to name the payment and its idempotency key.
    pub token: u64,
    pub user: u32,
    pub merchant: u32,
    pub amount_minor: i64,
    pub device: Option<u64>,
    pub ip: Option<IpAddr>,
    pub network: Option<&'static str>,
    pub now_ms: i64,
    /// The payer scanned a dynamic code (amount in the code, EMV point of initiation `12`)
    /// instead of the shop's static one. The engine's facts do not carry it (in process it
    /// changes nothing); a server records it on the payment.
    pub dynamic_code: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayResult {
    pub outcome: Outcome,
    pub reason_codes: Vec<String>,
    /// When a restriction was imposed by this payment: its end.
    pub restricted_until_ms: Option<i64>,
    /// Time to decide, as the driver can see it: the engine alone in process, the whole
    /// request over HTTP.
    pub latency_ns: u64,
    /// What the challenger scorer would have decided, when one watches.
    pub challenger_outcome: Option<Outcome>,
}

/// How a challenge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeEnd {
    /// Passed and the payment was authorized.
    Approved,
    /// Passed, but the credit or the line was no longer there.
    PassedDeclined,
    /// Wrong codes until the attempts ran out.
    Failed,
}

pub trait Driver {
    /// Short name for the report (`in_process`, `http`).
    fn mode(&self) -> &'static str;
    fn add_merchant(&mut self, merchant: &MerchantSpec, now_ms: i64) -> Result<(), SimError>;
    /// Opens `user`'s line: with their fixed `limit_minor`, or on their `application`.
    /// Returns the limit granted, or `None` when the service declined the application.
    fn open_line(&mut self, user: &UserSpec, now_ms: i64) -> Result<Option<i64>, SimError>;
    fn pay(&mut self, request: &PayRequest) -> Result<PayResult, SimError>;
    /// The client re-sends payment `token` (its last payment) with the same idempotency key
    /// after a timeout; the service answers as it did the first time.
    fn resend(&mut self, token: u64, now_ms: i64) -> Result<PayResult, SimError>;
    /// The step-up challenge of payment `token`, answered with `wrong_codes` wrong codes
    /// first and then the right one if `then_correct`.
    fn answer_challenge(
        &mut self,
        token: u64,
        wrong_codes: u32,
        then_correct: bool,
        now_ms: i64,
    ) -> Result<ChallengeEnd, SimError>;
    /// The merchant settles an authorized payment.
    fn capture(&mut self, token: u64, now_ms: i64) -> Result<(), SimError>;
    /// The client cancels an authorized payment (a duplicate after a retry).
    fn void(&mut self, token: u64, now_ms: i64) -> Result<(), SimError>;
    /// The merchant keeps the receipt of settled payment `token` (by `user`, at `merchant`)
    /// for a refund later. Drivers forget settled payments to bound their memory (the service
    /// keeps them all; a client need not); this one they keep.
    fn keep_for_refund(&mut self, token: u64, user: u32, merchant: u32);
    /// The merchant refunds `amount_minor` of settled payment `token`, kept with
    /// `keep_for_refund`. Returns whether the service took the refund.
    fn refund(&mut self, token: u64, amount_minor: i64, now_ms: i64) -> Result<bool, SimError>;
    /// Repays up to `amount_minor`; returns what was owed and repaid.
    fn repay(&mut self, user: u32, amount_minor: i64, now_ms: i64) -> Result<i64, SimError>;
    /// The owner answers the code sent with a restriction. Returns whether it was lifted.
    fn lift_restriction(&mut self, user: u32, now_ms: i64) -> Result<bool, SimError>;
    /// What the service's policy says of appeals, read from the policy it decides with.
    fn appeal_terms(&mut self) -> Result<AppealTerms, SimError>;
    /// The owner of `user`'s line appeals the restriction on it. Returns the service's id of
    /// the appeal, or `None` when no restriction is in force to appeal.
    fn file_appeal(&mut self, user: u32, now_ms: i64) -> Result<Option<String>, SimError>;
    /// Reviewer number `reviewer` takes appeal `appeal` from the queue.
    fn claim_appeal(&mut self, appeal: &str, reviewer: u32, now_ms: i64) -> Result<(), SimError>;
    /// The reviewer who claimed `appeal` decides it: an overturn lifts `user`'s restriction
    /// if it is still in force. Returns whether a restriction was lifted.
    fn decide_appeal(&mut self, appeal: &str, user: u32, overturn: bool, now_ms: i64) -> Result<bool, SimError>;
    /// `appeal` passed its deadline undecided and escalates; under a policy that lifts on
    /// escalation (`auto_lift`), `user`'s restriction lifts. Returns whether it was lifted.
    fn escalate_appeal(&mut self, appeal: &str, user: u32, auto_lift: bool, now_ms: i64) -> Result<bool, SimError>;
    /// Once per simulated hour: upkeep (expiries, pruning).
    fn tick(&mut self, _now_ms: i64) -> Result<(), SimError> {
        Ok(())
    }
    /// The features the engine computed for the last payment, when the driver can see them
    /// (in process, with `keep_features`): training data for the fraud model.
    fn last_features(&self) -> Option<&xiezhi_risk::FeatureVector> {
        None
    }
}

/// What a policy says of appeals: how long reviewers have, whether an appeal that waits
/// longer lifts its restriction, and what an overturn pays. Read from the policy the
/// service decides with, never copied into the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppealTerms {
    /// From filing to escalation (`restriction.appeal_deadline_hours`).
    pub deadline_ms: i64,
    /// `restriction.appeal_auto_lift_on_escalation`.
    pub auto_lift_on_escalation: bool,
    /// `compensation.per_wrongful_restriction`, in minor units of the run's currency: 0 when
    /// the policy pays in another currency (a line in another currency is owed nothing
    /// automatic, as in the service).
    pub compensation_minor: i64,
    /// The longest any restriction may last (`restriction.max_duration_hours`): by then
    /// every wrongly restricted user has their line back, whatever else happened.
    pub max_restriction_ms: i64,
}

impl AppealTerms {
    pub fn from_policy(document: &PolicyDocument, currency: Currency) -> Result<AppealTerms, SimError> {
        let (paid_in, amount_minor) =
            document.compensation.amount_minor().map_err(|e| SimError::Config(e.to_string()))?;
        let r = &document.restriction;
        Ok(AppealTerms {
            deadline_ms: r.appeal_deadline_hours.saturating_mul(3_600_000),
            auto_lift_on_escalation: r.appeal_auto_lift_on_escalation,
            compensation_minor: if paid_in == currency { amount_minor } else { 0 },
            max_restriction_ms: r.max_duration_hours().saturating_mul(3_600_000),
        })
    }
}

/// Which rules, policy and fraud scorer a configuration runs. `None` keeps the shipped ones.
#[derive(Clone)]
pub struct EngineConfig {
    pub name: String,
    pub rules_json: Option<String>,
    pub policy_json: Option<String>,
    pub scorer: Option<Arc<dyn xiezhi_risk::Scorer>>,
    /// A scorer that watches every decision without deciding (champion and challenger).
    pub challenger: Option<Arc<dyn xiezhi_risk::Scorer>>,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("name", &self.name)
            .field("scorer", &self.scorer.as_ref().map(|s| format!("{}@{}", s.name(), s.version())))
            .finish_non_exhaustive()
    }
}

impl EngineConfig {
    /// What `xiezhi serve` decides with when no flag says otherwise: the shipped policy and
    /// rules, scored by the shipped fraud model.
    pub fn shipped() -> EngineConfig {
        EngineConfig {
            name: "default".into(),
            rules_json: None,
            policy_json: None,
            scorer: Some(xiezhi_risk::shipped_scorer()),
            challenger: None,
        }
    }

    /// The shipped policy and rules with the hand-weighted heuristic scorer: the default
    /// before the trained model was chosen on the sweep (issue 13).
    pub fn heuristic() -> EngineConfig {
        EngineConfig { name: "heuristic".into(), rules_json: None, policy_json: None, scorer: None, challenger: None }
    }

    /// The blunt baseline: restricts on any burst or change of network.
    pub fn strict() -> EngineConfig {
        EngineConfig {
            name: "strict".into(),
            rules_json: Some(crate::STRICT_RULES.into()),
            policy_json: None,
            scorer: None,
            challenger: None,
        }
    }

    pub fn build(&self) -> Result<Engine, SimError> {
        let mut engine = Engine::with_defaults();
        let catalogue = Arc::clone(engine.catalogue());
        if let Some(text) = &self.policy_json {
            let policy = Policy::from_json(text, &catalogue).map_err(|e| SimError::Config(e.to_string()))?;
            engine.set_policy(Arc::new(policy));
        }
        if let Some(text) = &self.rules_json {
            let rules = RuleSet::from_json(text, &catalogue).map_err(|e| SimError::Config(e.to_string()))?;
            engine.set_rules(Arc::new(rules));
        }
        if let Some(scorer) = &self.scorer {
            engine.set_scorer(Arc::clone(scorer));
        }
        engine.set_challenger(self.challenger.clone());
        Ok(engine)
    }
}

struct BankMerchant {
    id: String,
    mcc: &'static str,
    created_at_ms: i64,
}

struct BankLine {
    user_id: String,
    line_id: String,
    opened_at_ms: i64,
    profile: UserProfile,
    restriction: Option<ActiveRestriction>,
}

/// A settled payment kept for a refund: whose, where, and its journal from the capture on
/// (what the ledger needs to bring the hold back once it has been evicted).
struct Receipt {
    user: u32,
    merchant: u32,
    entries: Vec<Transaction>,
}

/// A step-up waiting for its code.
struct PendingChallenge {
    request: PayRequest,
    attempts: u32,
}

/// The in-process service: the real risk engine and the real ledger, with the outcome
/// handling of the service's payment path (holds on approval, challenges on step-up, a
/// restriction with an expiry on restrict). Nothing is written to disk.
pub struct Bank {
    engine: Engine,
    ledger: Ledger,
    currency: Currency,
    merchants: Vec<Option<BankMerchant>>,
    lines: Vec<Option<BankLine>>,
    challenges: HashMap<u64, PendingChallenge>,
    hold_ttl_ms: i64,
    max_attempts: u32,
    last_prune_ms: i64,
    spare_facts: Option<PaymentFacts>,
    /// The last payment's answer, for a client re-sending it with its key: the service's
    /// idempotency store answers from it without asking the engine again.
    last_answer: Option<(u64, PayResult)>,
    /// Keep each decision's features for `last_features` (costs a copy per payment).
    keep_features: bool,
    last_features: Option<xiezhi_risk::FeatureVector>,
    /// The last capture's journal entry: `keep_for_refund` keeps it.
    last_capture: Option<(u64, Transaction)>,
    /// Settled payments the merchant may refund, by token.
    receipts: HashMap<u64, Receipt>,
}

fn empty_facts(currency: Currency) -> PaymentFacts {
    PaymentFacts {
        payment_id: String::new(),
        user_id: String::new(),
        credit_line_id: String::new(),
        amount_minor: 0,
        currency,
        merchant_id: String::new(),
        mcc: String::new(),
        merchant_country: String::new(),
        merchant_created_at_ms: 0,
        device_id: None,
        ip: None,
        network: None,
        available_minor: 0,
        limit_minor: 0,
        line_opened_at_ms: 0,
        profile: UserProfile::default(),
        restriction: None,
        now_ms: 0,
    }
}

/// `prefix` and `n` in lower-case hex: ids are written for every payment, and `format!`
/// costs more than the rest of building the facts.
fn push_id(out: &mut String, prefix: char, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(prefix);
    let digits = (64 - (n | 1).leading_zeros()).div_ceil(4);
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((n >> (i * 4)) & 0xF) as usize]));
    }
}

fn device_id(device: u64) -> String {
    let mut s = String::with_capacity(17);
    push_id(&mut s, 'd', device);
    s
}

fn hold_id(token: u64) -> String {
    let mut s = String::with_capacity(17);
    push_id(&mut s, 'p', token);
    s
}

impl Bank {
    pub fn new(config: &EngineConfig, currency: Currency) -> Result<Bank, SimError> {
        let engine = config.build()?;
        let max_attempts = engine.policy().document.trust.challenge_max_attempts.max(1);
        Ok(Bank {
            engine,
            ledger: Ledger::new(),
            currency,
            merchants: Vec::new(),
            lines: Vec::new(),
            challenges: HashMap::new(),
            hold_ttl_ms: 7 * 86_400_000,
            max_attempts,
            last_prune_ms: 0,
            spare_facts: None,
            last_answer: None,
            keep_features: false,
            last_features: None,
            last_capture: None,
            receipts: HashMap::new(),
        })
    }

    /// Keep every decision's features so that `last_features` returns them.
    pub fn keep_features(&mut self) {
        self.keep_features = true;
    }

    /// Runs the engine with this fraud scorer instead of the shipped heuristic one.
    pub fn set_scorer(&mut self, scorer: Arc<dyn xiezhi_risk::Scorer>) {
        self.engine.set_scorer(scorer);
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn line(&self, user: u32) -> Result<&BankLine, SimError> {
        self.lines
            .get(user as usize)
            .and_then(Option::as_ref)
            .ok_or(SimError::Driver(format!("no line for user {user}")))
    }

    /// The facts of `r`, written into the strings of the last decision's facts: a payment
    /// then costs no allocation for them.
    fn facts(&mut self, r: &PayRequest) -> Result<PaymentFacts, SimError> {
        let mut f = self.spare_facts.take().unwrap_or_else(|| empty_facts(self.currency));
        let line = self
            .lines
            .get(r.user as usize)
            .and_then(Option::as_ref)
            .ok_or(SimError::Driver(format!("no line for user {}", r.user)))?;
        let merchant = self
            .merchants
            .get(r.merchant as usize)
            .and_then(Option::as_ref)
            .ok_or(SimError::Driver(format!("no merchant {}", r.merchant)))?;
        let credit = self.ledger.credit_line(&line.line_id).ok_or(SimError::Driver("line not in ledger".into()))?;
        let put = |slot: &mut String, value: &str| {
            slot.clear();
            slot.push_str(value);
        };
        f.payment_id.clear();
        push_id(&mut f.payment_id, 'p', r.token);
        put(&mut f.user_id, &line.user_id);
        put(&mut f.credit_line_id, &line.line_id);
        f.amount_minor = r.amount_minor;
        f.currency = self.currency;
        put(&mut f.merchant_id, &merchant.id);
        put(&mut f.mcc, merchant.mcc);
        put(&mut f.merchant_country, "CN");
        f.merchant_created_at_ms = merchant.created_at_ms;
        f.device_id = r.device.map(|d| {
            let mut s = f.device_id.take().unwrap_or_default();
            s.clear();
            push_id(&mut s, 'd', d);
            s
        });
        f.ip = r.ip;
        f.network = r.network.map(|n| {
            let mut s = f.network.take().unwrap_or_default();
            put(&mut s, n);
            s
        });
        f.available_minor = credit.available_minor();
        f.limit_minor = credit.limit_minor();
        f.line_opened_at_ms = line.opened_at_ms;
        f.profile.kyc_level = line.profile.kyc_level;
        put(&mut f.profile.region, &line.profile.region);
        f.profile.birth_date = line.profile.birth_date.as_deref().map(|b| {
            let mut s = f.profile.birth_date.take().unwrap_or_default();
            put(&mut s, b);
            s
        });
        f.restriction = line.restriction.clone().filter(|x| x.until_ms > r.now_ms);
        f.now_ms = r.now_ms;
        Ok(f)
    }

    /// An appeal lifts the line's restriction (the state the engine's facts read), as the
    /// service's overturn and escalation do. Unlike the owner's lifting code, no challenge
    /// was passed, so the engine hears of none: earlier failed codes still count, as they do
    /// in the service.
    fn lift_by_appeal(&mut self, user: u32, now_ms: i64) -> Result<bool, SimError> {
        let line =
            self.lines.get_mut(user as usize).and_then(Option::as_mut).ok_or(SimError::Driver("no line".into()))?;
        Ok(line.restriction.take().filter(|r| r.until_ms > now_ms).is_some())
    }

    fn authorize(&mut self, r: &PayRequest) -> Result<bool, SimError> {
        let line_id = self.line(r.user)?.line_id.clone();
        let op = Operation::Authorize {
            hold_id: hold_id(r.token),
            credit_line_id: line_id,
            amount_minor: r.amount_minor,
            expires_at_ms: r.now_ms + self.hold_ttl_ms,
        };
        // Insufficient credit after a challenge is a normal decline, not an error.
        Ok(self.ledger.execute(op, r.now_ms).is_ok())
    }
}

impl Driver for Bank {
    fn mode(&self) -> &'static str {
        "in_process"
    }

    fn add_merchant(&mut self, m: &MerchantSpec, _now_ms: i64) -> Result<(), SimError> {
        let index = m.index as usize;
        if self.merchants.len() <= index {
            self.merchants.resize_with(index + 1, || None);
        }
        self.merchants[index] =
            Some(BankMerchant { id: format!("m{}", m.index), mcc: m.category.mcc(), created_at_ms: m.created_at_ms });
        Ok(())
    }

    fn open_line(&mut self, u: &UserSpec, now_ms: i64) -> Result<Option<i64>, SimError> {
        let index = u.index as usize;
        if self.lines.len() <= index {
            self.lines.resize_with(index + 1, || None);
        }
        let line_id = format!("cl{}", u.index);
        // As the service does with an application: the shipped credit scorecard scores it,
        // the policy's band and the declared income set the limit, and the band stays with
        // the line for the credit layer.
        let (limit_minor, band) = match &u.application {
            None => (u.limit_minor, None),
            Some(application) => {
                let model = xiezhi_risk::shipped_credit_model();
                let answers = model.parse(&application.answers).map_err(|e| SimError::Driver(e.to_string()))?;
                let limits = self
                    .engine
                    .policy()
                    .credit_limits()
                    .ok_or_else(|| SimError::Config("the policy sets no credit_limits for applications".into()))?;
                let catalogue = std::sync::Arc::clone(self.engine.catalogue());
                let assessment = model.assess(&answers, application.monthly_income_minor, &limits, &catalogue);
                match assessment.band {
                    Some(band) => (assessment.limit_minor, Some(band)),
                    None => return Ok(None),
                }
            }
        };
        self.ledger
            .execute(
                Operation::OpenLine {
                    credit_line_id: line_id.clone(),
                    user_id: format!("u{}", u.index),
                    currency: self.currency,
                    limit_minor,
                },
                now_ms,
            )
            .map_err(|e| SimError::Driver(e.to_string()))?;
        self.engine.set_credit_band(&line_id, band.as_deref());
        self.lines[index] = Some(BankLine {
            user_id: format!("u{}", u.index),
            line_id,
            opened_at_ms: u.opened_at_ms,
            profile: UserProfile {
                birth_date: Some(u.birth_date.clone()),
                kyc_level: i64::from(u.kyc_level),
                region: u.region.to_owned(),
            },
            restriction: None,
        });
        Ok(Some(limit_minor))
    }

    fn pay(&mut self, r: &PayRequest) -> Result<PayResult, SimError> {
        let facts = self.facts(r)?;
        let started = Instant::now();
        let decision = self.engine.decide(facts);
        let latency_ns = started.elapsed().as_nanos() as u64;
        let xiezhi_risk::DecisionRecord { facts, outcome, reason_codes, expires_at_ms, features, challenger, .. } =
            decision;
        let challenger_outcome = challenger.map(|watched| watched.outcome);
        if self.keep_features {
            self.last_features = Some(features);
        }
        self.spare_facts = Some(facts);
        let mut restricted_until_ms = None;
        let mut outcome = outcome;
        match outcome {
            Outcome::Approve => {
                if !self.authorize(r)? {
                    outcome = Outcome::Decline;
                }
            }
            Outcome::StepUp => {
                self.challenges.insert(r.token, PendingChallenge { request: r.clone(), attempts: 0 });
            }
            Outcome::Decline => {}
            Outcome::Restrict => {
                let until_ms = expires_at_ms.unwrap_or(r.now_ms + 24 * 3_600_000);
                let reason_code = reason_codes.first().cloned().unwrap_or_default();
                let line = self.lines[r.user as usize].as_mut().expect("checked in facts");
                line.restriction = Some(ActiveRestriction { reason_code, until_ms });
                restricted_until_ms = Some(until_ms);
            }
        }
        let result = PayResult { outcome, reason_codes, restricted_until_ms, latency_ns, challenger_outcome };
        self.last_answer = Some((r.token, result.clone()));
        Ok(result)
    }

    fn resend(&mut self, token: u64, _now_ms: i64) -> Result<PayResult, SimError> {
        match &self.last_answer {
            Some((t, result)) if *t == token => Ok(result.clone()),
            _ => Err(SimError::Driver(format!("payment {token} was not the last one sent"))),
        }
    }

    fn answer_challenge(
        &mut self,
        token: u64,
        wrong_codes: u32,
        then_correct: bool,
        now_ms: i64,
    ) -> Result<ChallengeEnd, SimError> {
        let Some(mut pending) = self.challenges.remove(&token) else {
            return Err(SimError::Driver(format!("no challenge for payment {token}")));
        };
        let (user_id, device) = {
            let line = self.line(pending.request.user)?;
            (line.user_id.clone(), pending.request.device.map(device_id))
        };
        for _ in 0..wrong_codes {
            pending.attempts += 1;
            self.engine.state_mut().record_challenge(&user_id, device.as_deref(), false, now_ms);
            if pending.attempts >= self.max_attempts {
                return Ok(ChallengeEnd::Failed);
            }
        }
        if !then_correct {
            // Abandoned: the challenge lapses, the payment is never authorized.
            return Ok(ChallengeEnd::Failed);
        }
        self.engine.state_mut().record_challenge(&user_id, device.as_deref(), true, now_ms);
        let mut request = pending.request;
        request.now_ms = now_ms;
        let restricted =
            self.line(request.user)?.restriction.as_ref().is_some_and(|x: &ActiveRestriction| x.until_ms > now_ms);
        // As the service does: the code answers the step-up, the policy, lists and credit
        // are checked again as they stand now.
        let facts = self.facts(&request)?;
        if restricted || !self.engine.refusals_after_challenge(facts.clone()).is_empty() || !self.authorize(&request)? {
            return Ok(ChallengeEnd::PassedDeclined);
        }
        let attempt = self.engine.attempt(&facts);
        let policy = self.engine.velocity_policy(now_ms);
        self.engine.state_mut().record_late_approval(&attempt, &policy);
        Ok(ChallengeEnd::Approved)
    }

    fn capture(&mut self, token: u64, now_ms: i64) -> Result<(), SimError> {
        let id = hold_id(token);
        let amount_minor =
            self.ledger.hold(&id).map(|h| h.amount_minor).ok_or(SimError::Driver(format!("no hold {id}")))?;
        let capture = self
            .ledger
            .execute(Operation::Capture { hold_id: id, amount_minor }, now_ms)
            .map_err(|e| SimError::Driver(e.to_string()))?;
        self.last_capture = Some((token, capture));
        Ok(())
    }

    fn keep_for_refund(&mut self, token: u64, user: u32, merchant: u32) {
        if let Some((captured, entry)) = self.last_capture.take() {
            if captured == token {
                self.receipts.insert(token, Receipt { user, merchant, entries: vec![entry] });
            }
        }
    }

    fn refund(&mut self, token: u64, amount_minor: i64, now_ms: i64) -> Result<bool, SimError> {
        let id = hold_id(token);
        let receipt = self.receipts.get_mut(&token).ok_or(SimError::Driver(format!("no receipt for {id}")))?;
        if self.ledger.hold(&id).is_none() {
            // Evicted at a daily upkeep: brought back from its own journal, as the service
            // does from its store.
            let as_of = self.ledger.last_transaction_id();
            self.ledger.restore_hold(&id, &receipt.entries, as_of).map_err(|e| SimError::Driver(e.to_string()))?;
        }
        let Ok(entry) = self.ledger.execute(Operation::Refund { hold_id: id, amount_minor }, now_ms) else {
            // More than is left to refund: the service refuses it, and so does this.
            return Ok(false);
        };
        receipt.entries.push(entry);
        let (user, merchant) = (receipt.user, receipt.merchant);
        if self.ledger.hold(&hold_id(token)).is_some_and(|h| h.refunded_minor == h.captured_minor) {
            // Nothing left to refund: the receipt can go.
            self.receipts.remove(&token);
        }
        let user_id = self.line(user)?.user_id.clone();
        let merchant_id = self.merchants.get(merchant as usize).and_then(Option::as_ref).map(|m| m.id.clone());
        let merchant_id = merchant_id.ok_or(SimError::Driver(format!("no merchant {merchant}")))?;
        // As the service does: the engine hears of the refund.
        self.engine.state_mut().record_refund(&user_id, &merchant_id, amount_minor, now_ms);
        Ok(true)
    }

    fn void(&mut self, token: u64, now_ms: i64) -> Result<(), SimError> {
        self.ledger
            .execute(Operation::Void { hold_id: hold_id(token) }, now_ms)
            .map(|_| ())
            .map_err(|e| SimError::Driver(e.to_string()))
    }

    fn repay(&mut self, user: u32, amount_minor: i64, now_ms: i64) -> Result<i64, SimError> {
        let line_id = self.line(user)?.line_id.clone();
        let owed = self.ledger.credit_line(&line_id).map_or(0, |l| l.receivable_minor());
        let amount_minor = amount_minor.min(owed);
        if amount_minor <= 0 {
            return Ok(0);
        }
        self.ledger
            .execute(Operation::Repay { credit_line_id: line_id, amount_minor }, now_ms)
            .map_err(|e| SimError::Driver(e.to_string()))?;
        Ok(amount_minor)
    }

    fn lift_restriction(&mut self, user: u32, now_ms: i64) -> Result<bool, SimError> {
        let line =
            self.lines.get_mut(user as usize).and_then(Option::as_mut).ok_or(SimError::Driver("no line".into()))?;
        let active = line.restriction.take().filter(|r| r.until_ms > now_ms).is_some();
        if active {
            let user_id = line.user_id.clone();
            // The lifting code goes to the owner's phone; passing it clears earlier failures.
            self.engine.state_mut().record_challenge(&user_id, None, true, now_ms);
        }
        Ok(active)
    }

    fn appeal_terms(&mut self) -> Result<AppealTerms, SimError> {
        AppealTerms::from_policy(&self.engine.policy().document, self.currency)
    }

    fn file_appeal(&mut self, user: u32, now_ms: i64) -> Result<Option<String>, SimError> {
        let line = self.line(user)?;
        let in_force = line.restriction.as_ref().is_some_and(|r| r.until_ms > now_ms);
        // No store here: the simulator keeps the appeal; the id only has to be unique.
        Ok(in_force.then(|| format!("ap{user:x}-{now_ms:x}")))
    }

    fn claim_appeal(&mut self, _appeal: &str, _reviewer: u32, _now_ms: i64) -> Result<(), SimError> {
        Ok(())
    }

    fn decide_appeal(&mut self, _appeal: &str, user: u32, overturn: bool, now_ms: i64) -> Result<bool, SimError> {
        if !overturn {
            return Ok(false);
        }
        self.lift_by_appeal(user, now_ms)
    }

    fn escalate_appeal(&mut self, _appeal: &str, user: u32, auto_lift: bool, now_ms: i64) -> Result<bool, SimError> {
        if !auto_lift {
            return Ok(false);
        }
        self.lift_by_appeal(user, now_ms)
    }

    fn last_features(&self) -> Option<&xiezhi_risk::FeatureVector> {
        self.last_features.as_ref()
    }

    fn tick(&mut self, now_ms: i64) -> Result<(), SimError> {
        // Abandoned authorizations lapse as in the service; the ledger checks each posting.
        self.ledger.expire_due(now_ms, usize::MAX);
        if now_ms - self.last_prune_ms >= 86_400_000 {
            self.engine.state_mut().prune(now_ms);
            // Nothing here is persisted, so every settled hold may go.
            self.ledger.evict_settled_holds(u64::MAX);
            self.last_prune_ms = now_ms;
        }
        Ok(())
    }
}

/// Approves everything at once: measures the simulator's own cost (planning, actors, ground
/// truth, report) without the engine or the ledger.
#[derive(Debug, Default)]
pub struct NullDriver;

impl Driver for NullDriver {
    fn mode(&self) -> &'static str {
        "null"
    }
    fn add_merchant(&mut self, _: &MerchantSpec, _: i64) -> Result<(), SimError> {
        Ok(())
    }
    fn open_line(&mut self, u: &UserSpec, _: i64) -> Result<Option<i64>, SimError> {
        Ok(Some(u.limit_minor))
    }
    fn pay(&mut self, _: &PayRequest) -> Result<PayResult, SimError> {
        Ok(PayResult {
            outcome: Outcome::Approve,
            reason_codes: Vec::new(),
            restricted_until_ms: None,
            latency_ns: 0,
            challenger_outcome: None,
        })
    }
    fn resend(&mut self, token: u64, now_ms: i64) -> Result<PayResult, SimError> {
        let request = PayRequest {
            token,
            user: 0,
            merchant: 0,
            amount_minor: 0,
            device: None,
            ip: None,
            network: None,
            now_ms,
            dynamic_code: false,
        };
        self.pay(&request)
    }
    fn answer_challenge(&mut self, _: u64, _: u32, _: bool, _: i64) -> Result<ChallengeEnd, SimError> {
        Ok(ChallengeEnd::Approved)
    }
    fn capture(&mut self, _: u64, _: i64) -> Result<(), SimError> {
        Ok(())
    }
    fn void(&mut self, _: u64, _: i64) -> Result<(), SimError> {
        Ok(())
    }
    fn keep_for_refund(&mut self, _: u64, _: u32, _: u32) {}
    fn refund(&mut self, _: u64, _: i64, _: i64) -> Result<bool, SimError> {
        Ok(true)
    }
    fn repay(&mut self, _: u32, amount_minor: i64, _: i64) -> Result<i64, SimError> {
        Ok(amount_minor)
    }
    fn lift_restriction(&mut self, _: u32, _: i64) -> Result<bool, SimError> {
        Ok(true)
    }
    /// The shipped policy's terms: nothing is restricted here, so nothing is appealed, but a
    /// caller asking gets what the service would say.
    fn appeal_terms(&mut self) -> Result<AppealTerms, SimError> {
        let document: PolicyDocument = serde_json::from_str(Policy::default_document())
            .map_err(|e| SimError::Config(format!("the shipped policy: {e}")))?;
        let currency = Currency::from_alpha(&document.compensation.currency)
            .ok_or_else(|| SimError::Config("the shipped policy's compensation currency".into()))?;
        AppealTerms::from_policy(&document, currency)
    }
    fn file_appeal(&mut self, _: u32, _: i64) -> Result<Option<String>, SimError> {
        Ok(None)
    }
    fn claim_appeal(&mut self, _: &str, _: u32, _: i64) -> Result<(), SimError> {
        Ok(())
    }
    fn decide_appeal(&mut self, _: &str, _: u32, overturn: bool, _: i64) -> Result<bool, SimError> {
        Ok(overturn)
    }
    fn escalate_appeal(&mut self, _: &str, _: u32, auto_lift: bool, _: i64) -> Result<bool, SimError> {
        Ok(auto_lift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The appeal terms are the loaded policy's, never constants of the simulator: the
    /// shipped ones, and a policy that changes them changes what the simulation uses.
    #[test]
    fn appeal_terms_come_from_the_policy_the_engine_loaded() {
        let shipped: PolicyDocument = serde_json::from_str(Policy::default_document()).unwrap();
        let (_, compensation_minor) = shipped.compensation.amount_minor().unwrap();
        let expected = AppealTerms {
            deadline_ms: shipped.restriction.appeal_deadline_hours * 3_600_000,
            auto_lift_on_escalation: shipped.restriction.appeal_auto_lift_on_escalation,
            compensation_minor,
            max_restriction_ms: shipped.restriction.max_duration_hours() * 3_600_000,
        };
        let cny = Currency::from_alpha("CNY").unwrap();
        assert_eq!(Bank::new(&EngineConfig::strict(), cny).unwrap().appeal_terms().unwrap(), expected);
        assert_eq!(NullDriver.appeal_terms().unwrap(), expected);

        let mut document: serde_json::Value = serde_json::from_str(Policy::default_document()).unwrap();
        document["restriction"]["appeal_deadline_hours"] = 48.into();
        document["restriction"]["appeal_auto_lift_on_escalation"] = false.into();
        document["compensation"]["per_wrongful_restriction"] = "80.00".into();
        let engine = EngineConfig { policy_json: Some(document.to_string()), ..EngineConfig::strict() };
        let terms = Bank::new(&engine, cny).unwrap().appeal_terms().unwrap();
        assert_eq!(
            (terms.deadline_ms, terms.auto_lift_on_escalation, terms.compensation_minor),
            (48 * 3_600_000, false, 8_000)
        );
        // Paid in another currency than the lines': nothing automatic, as in the service.
        let usd = Currency::from_alpha("USD").unwrap();
        assert_eq!(Bank::new(&engine, usd).unwrap().appeal_terms().unwrap().compensation_minor, 0);
    }

    #[test]
    fn ids_are_hex() {
        assert_eq!(hold_id(0), "p0");
        assert_eq!(hold_id(255), "pff");
        assert_eq!(device_id(u64::MAX), "dffffffffffffffff");
        assert_eq!(hold_id(0x1234), format!("p{:x}", 0x1234));
    }
}
