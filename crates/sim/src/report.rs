//! The yardstick: who was wrongly hurt and what got through, overall and per scenario, from
//! the ground truth the simulator kept. The JSON keys are a contract (`docs/QUALITY.md`).

use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use xiezhi_risk::Outcome;

use crate::world::UserClass;

/// What a payment really was. Never shown to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Truth {
    /// An honest shopper's purchase.
    Honest,
    /// An attack: the money is lost if it goes through.
    Fraud,
    /// A first-party defaulter's spree: never repaid.
    Default,
    /// A fraudster's or defaulter's ordinary purchase while building history: no loss.
    Setup,
}

impl Truth {
    const ALL: [Truth; 4] = [Truth::Honest, Truth::Fraud, Truth::Default, Truth::Setup];
    fn name(self) -> &'static str {
        match self {
            Truth::Honest => "honest",
            Truth::Fraud => "fraud",
            Truth::Default => "default",
            Truth::Setup => "setup",
        }
    }
}

/// The behaviour that produced a payment; a regression names its scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    Routine,
    NewMerchant,
    MarketStroll,
    WeekendMall,
    Travel,
    NewPhone,
    RetryAfterTimeout,
    Festival,
    SalaryDay,
    LargePurchase,
    AccountTakeover,
    CardTesting,
    CollusionCashOut,
    SyntheticIdentity,
    FirstPartyDefault,
    CompromisedQr,
    SimSwapTakeover,
    StepUpProber,
    MuleRefundNetwork,
    CompromisedTerminal,
}

impl Scenario {
    pub const ALL: [Scenario; 20] = [
        Scenario::Routine,
        Scenario::NewMerchant,
        Scenario::MarketStroll,
        Scenario::WeekendMall,
        Scenario::Travel,
        Scenario::NewPhone,
        Scenario::RetryAfterTimeout,
        Scenario::Festival,
        Scenario::SalaryDay,
        Scenario::LargePurchase,
        Scenario::AccountTakeover,
        Scenario::CardTesting,
        Scenario::CollusionCashOut,
        Scenario::SyntheticIdentity,
        Scenario::FirstPartyDefault,
        Scenario::CompromisedQr,
        Scenario::SimSwapTakeover,
        Scenario::StepUpProber,
        Scenario::MuleRefundNetwork,
        Scenario::CompromisedTerminal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Routine => "routine",
            Scenario::NewMerchant => "new_merchant",
            Scenario::MarketStroll => "market_stroll",
            Scenario::WeekendMall => "weekend_mall",
            Scenario::Travel => "travel",
            Scenario::NewPhone => "new_phone",
            Scenario::RetryAfterTimeout => "retry_after_timeout",
            Scenario::Festival => "festival",
            Scenario::SalaryDay => "salary_day",
            Scenario::LargePurchase => "large_purchase",
            Scenario::AccountTakeover => "account_takeover",
            Scenario::CardTesting => "card_testing",
            Scenario::CollusionCashOut => "collusion_cash_out",
            Scenario::SyntheticIdentity => "synthetic_identity",
            Scenario::FirstPartyDefault => "first_party_default",
            Scenario::CompromisedQr => "compromised_qr",
            Scenario::SimSwapTakeover => "sim_swap_takeover",
            Scenario::StepUpProber => "step_up_prober",
            Scenario::MuleRefundNetwork => "mule_refund_network",
            Scenario::CompromisedTerminal => "compromised_terminal",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Whether the scenario is honest shoppers living their lives (the friction targets
    /// apply to the worst of these), not an adversary's.
    pub fn is_honest(self) -> bool {
        self.index() <= Scenario::LargePurchase.index()
    }
}

/// Latencies in a log-linear histogram: 16 steps per power of two (about 4 % wide).
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BUCKETS: u32 = 16;

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; 64 * SUB_BUCKETS as usize], total: 0 }
    }
}

impl Histogram {
    fn bucket(value: u64) -> usize {
        if value < u64::from(SUB_BUCKETS) {
            return value as usize;
        }
        let exponent = 63 - value.leading_zeros();
        let sub = (value >> (exponent - 4)) & u64::from(SUB_BUCKETS - 1);
        ((exponent - 3) * SUB_BUCKETS) as usize + sub as usize
    }

    fn lower_bound(bucket: usize) -> u64 {
        let b = bucket as u64;
        if b < u64::from(SUB_BUCKETS) {
            return b;
        }
        let exponent = b / u64::from(SUB_BUCKETS) + 3;
        let sub = b % u64::from(SUB_BUCKETS);
        (1u64 << exponent) | (sub << (exponent - 4))
    }

    pub fn record(&mut self, value: u64) {
        self.counts[Self::bucket(value)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// The value at quantile `q` (0–1): the middle of its bucket.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = (Self::lower_bound(i), Self::lower_bound(i + 1));
                return Some(lo + (hi - lo) / 2);
            }
        }
        None
    }
}

#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: u32) {
        self.0[i as usize / 64] |= 1 << (i % 64);
    }
    fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Group {
    payments: u64,
    approved: u64,
    by_truth: [u64; 4],
    honest_declined: u64,
    honest_stepped_up: u64,
    honest_not_completed: u64,
    fraud_stopped: u64,
    fraud_amount_minor: i64,
    fraud_amount_stopped_minor: i64,
    fraud_loss_minor: i64,
    default_amount_minor: i64,
    default_loss_minor: i64,
    /// Refunds of the scenario's payments (honest returns, a mule merchant's refunds).
    refunds: u64,
    refunded_minor: i64,
    latency_ns: Histogram,
    honest_payers: Bits,
    honest_restricted: Bits,
    /// First reason code of honest payments not approved outright.
    honest_reasons: HashMap<String, u64>,
}

impl Group {
    fn new(users: usize) -> Group {
        Group { honest_payers: Bits::new(users), honest_restricted: Bits::new(users), ..Group::default() }
    }

    fn merge(&mut self, o: &Group) {
        self.payments += o.payments;
        self.approved += o.approved;
        for i in 0..4 {
            self.by_truth[i] += o.by_truth[i];
        }
        self.honest_declined += o.honest_declined;
        self.honest_stepped_up += o.honest_stepped_up;
        self.honest_not_completed += o.honest_not_completed;
        self.fraud_stopped += o.fraud_stopped;
        self.fraud_amount_minor += o.fraud_amount_minor;
        self.fraud_amount_stopped_minor += o.fraud_amount_stopped_minor;
        self.fraud_loss_minor += o.fraud_loss_minor;
        self.default_amount_minor += o.default_amount_minor;
        self.default_loss_minor += o.default_loss_minor;
        self.refunds += o.refunds;
        self.refunded_minor += o.refunded_minor;
        self.latency_ns.merge(&o.latency_ns);
        self.honest_payers.union(&o.honest_payers);
        self.honest_restricted.union(&o.honest_restricted);
        for (k, v) in &o.honest_reasons {
            *self.honest_reasons.entry(k.clone()).or_default() += v;
        }
    }
}

fn pct(part: u64, whole: u64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!(((part as f64) * 100.0 / whole as f64 * 1000.0).round() / 1000.0)
    }
}

fn pct_amount(part: i64, whole: i64) -> Value {
    if whole <= 0 {
        Value::Null
    } else {
        json!(((part as f64) * 100.0 / whole as f64 * 1000.0).round() / 1000.0)
    }
}

fn micros(ns: Option<u64>) -> Value {
    ns.map_or(Value::Null, |n| json!((n as f64 / 100.0).round() / 10.0))
}

/// One scorer's decisions on the measured payments, counted the same way for the champion
/// (the scorer that decided) and the challenger (the one that watched).
#[derive(Debug, Clone, Default)]
struct Side {
    honest: u64,
    honest_declined: u64,
    honest_stepped_up: u64,
    fraud: u64,
    fraud_stopped: u64,
    fraud_amount_minor: i64,
    fraud_amount_stopped_minor: i64,
}

impl Side {
    fn record(&mut self, truth: Truth, amount_minor: i64, outcome: Outcome) {
        match truth {
            Truth::Honest => {
                self.honest += 1;
                match outcome {
                    Outcome::Approve => {}
                    Outcome::StepUp => self.honest_stepped_up += 1,
                    Outcome::Decline | Outcome::Restrict => self.honest_declined += 1,
                }
            }
            Truth::Fraud => {
                self.fraud += 1;
                self.fraud_amount_minor += amount_minor;
                if outcome != Outcome::Approve {
                    self.fraud_stopped += 1;
                    self.fraud_amount_stopped_minor += amount_minor;
                }
            }
            Truth::Default | Truth::Setup => {}
        }
    }

    fn json(&self) -> Value {
        json!({
            "honest_payments_declined_pct": pct(self.honest_declined, self.honest),
            "honest_payments_stepped_up_pct": pct(self.honest_stepped_up, self.honest),
            "fraud_payments_stopped_pct": pct(self.fraud_stopped, self.fraud),
            "fraud_amount_stopped_pct": pct_amount(self.fraud_amount_stopped_minor, self.fraud_amount_minor),
        })
    }
}

/// How a wrongly restricted honest user got their line back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Answered the code sent with the restriction.
    Challenge,
    /// A reviewer overturned their appeal.
    Appeal,
    /// Their appeal was not decided by its deadline and the policy lifted it then.
    Escalation,
    /// It ran out.
    Expiry,
}

impl Recovery {
    const ALL: [Recovery; 4] = [Recovery::Challenge, Recovery::Appeal, Recovery::Escalation, Recovery::Expiry];
    fn name(self) -> &'static str {
        match self {
            Recovery::Challenge => "challenge",
            Recovery::Appeal => "appeal",
            Recovery::Escalation => "escalation",
            Recovery::Expiry => "expiry",
        }
    }
}

/// One appeal of a measured run, as it went: when it was filed, claimed and decided
/// (simulated Unix ms), by whom (honest owner or not) and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppealRecord {
    pub user: u32,
    /// Filed by an honest owner (else a fraudster or defaulter on their own line).
    pub honest: bool,
    pub filed_at_ms: i64,
    pub deadline_ms: i64,
    pub claimed_at_ms: Option<i64>,
    pub decided_at_ms: Option<i64>,
    pub overturned: Option<bool>,
    pub escalated_at_ms: Option<i64>,
    /// Whether the escalation lifted the restriction.
    pub escalation_lifted: bool,
    pub compensation_minor: i64,
}

impl AppealRecord {
    /// An appeal just filed: nobody has claimed, decided or escalated it yet.
    pub fn filed(user: u32, honest: bool, filed_at_ms: i64, deadline_ms: i64) -> AppealRecord {
        AppealRecord {
            user,
            honest,
            filed_at_ms,
            deadline_ms,
            claimed_at_ms: None,
            decided_at_ms: None,
            overturned: None,
            escalated_at_ms: None,
            escalation_lifted: false,
            compensation_minor: 0,
        }
    }
}

/// Everything counted during one configuration's run.
pub struct Tally {
    groups: Vec<Group>,
    classes: Vec<UserClass>,
    /// Open wrong restrictions: user → (start, until).
    open_restrictions: HashMap<u32, (i64, i64)>,
    restriction_ms: Vec<i64>,
    skipped_no_credit: [u64; 4],
    retries_with_same_key: u64,
    /// Re-sent payments answered differently from the first time: must stay 0.
    replay_mismatches: u64,
    /// Restrictions set off by honest owners, including repeats on one user.
    honest_restrictions: u64,
    /// The champion's and the challenger's decisions on the same payments, when one watched.
    watch: Option<(Side, Side)>,
    /// Lines by the owner's class (honest, fraud, default): applied for, declined, and the
    /// sum of the limits granted.
    lines: [LineTally; 3],
    /// Open wrong restrictions for time to recovery: user → (start, until). Unlike
    /// `open_restrictions`, a restriction imposed again before the last one ended extends it:
    /// the user has not recovered in between.
    open_recoveries: HashMap<u32, (i64, i64)>,
    /// Time to recovery of each wrong restriction that ended, and how it ended.
    recoveries: Vec<(i64, Recovery)>,
    /// Honest users wrongly restricted, and those still restricted when the run ended.
    wrongly_restricted_users: std::collections::HashSet<u32>,
    not_recovered_users: std::collections::HashSet<u32>,
    /// Appeals filed in the measured days, by index.
    appeals: Vec<AppealRecord>,
    /// Wrongly restricted honest users still restricted when the measured days ended.
    restricted_at_end: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct LineTally {
    opened: u64,
    applied: u64,
    declined: u64,
    limit_sum_minor: i64,
}

fn class_index(class: UserClass) -> usize {
    match class {
        UserClass::Honest => 0,
        UserClass::Fraud => 1,
        UserClass::Default => 2,
    }
}

impl Tally {
    pub fn new(users: usize) -> Tally {
        Tally {
            groups: Scenario::ALL.iter().map(|_| Group::new(users)).collect(),
            classes: vec![UserClass::Honest; users],
            open_restrictions: HashMap::new(),
            restriction_ms: Vec::new(),
            skipped_no_credit: [0; 4],
            retries_with_same_key: 0,
            replay_mismatches: 0,
            honest_restrictions: 0,
            watch: None,
            lines: [LineTally::default(); 3],
            open_recoveries: HashMap::new(),
            recoveries: Vec::new(),
            wrongly_restricted_users: Default::default(),
            not_recovered_users: Default::default(),
            appeals: Vec::new(),
            restricted_at_end: 0,
        }
    }

    /// A user's line at the start: `applied` on an application (else a fixed limit), and the
    /// limit granted (`None`: the application was declined).
    pub fn line_opened(&mut self, class: UserClass, applied: bool, limit_minor: Option<i64>) {
        let t = &mut self.lines[class_index(class)];
        t.applied += u64::from(applied);
        match limit_minor {
            Some(limit) => {
                t.opened += 1;
                t.limit_sum_minor += limit;
            }
            None => t.declined += 1,
        }
    }

    /// Lines by class of owner (as classed when the lines were opened): how many were
    /// applied for, declined, and their mean limit.
    pub fn lines_json(&self) -> Value {
        let one = |t: &LineTally| {
            json!({
                "opened": t.opened,
                "applied": t.applied,
                "declined": t.declined,
                "declined_pct": pct(t.declined, t.applied),
                "mean_limit_minor": if t.opened == 0 { 0 } else { t.limit_sum_minor / t.opened as i64 },
            })
        };
        json!({"honest": one(&self.lines[0]), "fraud": one(&self.lines[1]), "default": one(&self.lines[2])})
    }

    pub fn set_classes(&mut self, classes: &[UserClass]) {
        self.classes = classes.to_vec();
    }

    pub fn overall_payments(&self) -> u64 {
        self.groups.iter().map(|g| g.payments).sum()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        scenario: Scenario,
        truth: Truth,
        user: u32,
        amount_minor: i64,
        outcome: Outcome,
        approved: bool,
        latency_ns: u64,
        reason_code: Option<&str>,
    ) {
        let g = &mut self.groups[scenario.index()];
        g.payments += 1;
        g.approved += u64::from(approved);
        g.by_truth[truth as usize] += 1;
        g.latency_ns.record(latency_ns);
        match truth {
            Truth::Honest => {
                g.honest_payers.set(user);
                match outcome {
                    Outcome::Approve => {}
                    Outcome::StepUp => g.honest_stepped_up += 1,
                    Outcome::Decline | Outcome::Restrict => g.honest_declined += 1,
                }
                if !approved {
                    g.honest_not_completed += 1;
                }
                if outcome != Outcome::Approve {
                    if let Some(code) = reason_code {
                        match g.honest_reasons.get_mut(code) {
                            Some(n) => *n += 1,
                            None => {
                                g.honest_reasons.insert(code.to_owned(), 1);
                            }
                        }
                    }
                }
            }
            Truth::Fraud => {
                g.fraud_amount_minor += amount_minor;
                if approved {
                    g.fraud_loss_minor += amount_minor;
                } else {
                    g.fraud_stopped += 1;
                    g.fraud_amount_stopped_minor += amount_minor;
                }
            }
            Truth::Default => {
                g.default_amount_minor += amount_minor;
                if approved {
                    g.default_loss_minor += amount_minor;
                }
            }
            Truth::Setup => {}
        }
    }

    /// One measured payment as the champion decided it and the challenger would have.
    pub fn record_watch(&mut self, truth: Truth, amount_minor: i64, champion: Outcome, challenger: Outcome) {
        let (champion_side, challenger_side) = self.watch.get_or_insert_with(Default::default);
        champion_side.record(truth, amount_minor, champion);
        challenger_side.record(truth, amount_minor, challenger);
    }

    /// `{champion, challenger}` figures on the same payments, when a challenger watched.
    pub fn watch_json(&self) -> Option<Value> {
        self.watch
            .as_ref()
            .map(|(champion, challenger)| json!({"champion": champion.json(), "challenger": challenger.json()}))
    }

    /// A measured payment of `scenario` was refunded (in part).
    pub fn refunded(&mut self, scenario: Scenario, amount_minor: i64) {
        let g = &mut self.groups[scenario.index()];
        g.refunds += 1;
        g.refunded_minor += amount_minor;
    }

    pub fn skipped_no_credit(&mut self, truth: Truth) {
        self.skipped_no_credit[truth as usize] += 1;
    }

    /// A client re-sent a payment with its idempotency key; `same` when the answer matched.
    pub fn retry_with_same_key(&mut self, same: bool) {
        self.retries_with_same_key += 1;
        self.replay_mismatches += u64::from(!same);
    }

    /// An honest owner's own payment restricted their line.
    pub fn honest_restriction_started(&mut self, user: u32, scenario: Scenario, at_ms: i64, until_ms: i64) {
        self.groups[scenario.index()].honest_restricted.set(user);
        self.honest_restrictions += 1;
        if let Some((start, until)) = self.open_restrictions.insert(user, (at_ms, until_ms)) {
            self.restriction_ms.push(until.min(at_ms) - start);
        }
        self.wrongly_restricted_users.insert(user);
        let open = match self.open_recoveries.get(&user).copied() {
            // Restricted again while still restricted: one spell, from the first start.
            Some((start, until)) if until > at_ms => (start, until.max(until_ms)),
            Some((start, until)) => {
                self.recoveries.push((until - start, Recovery::Expiry));
                (at_ms, until_ms)
            }
            None => (at_ms, until_ms),
        };
        self.open_recoveries.insert(user, open);
    }

    /// The owner lifted the restriction with the code sent to them.
    pub fn restriction_lifted(&mut self, user: u32, at_ms: i64) {
        self.restriction_lifted_by(user, at_ms, Recovery::Challenge);
    }

    /// The restriction on `user`'s line was lifted at `at_ms`, by `way`.
    pub fn restriction_lifted_by(&mut self, user: u32, at_ms: i64, way: Recovery) {
        if let Some((start, until)) = self.open_restrictions.remove(&user) {
            self.restriction_ms.push(at_ms.min(until) - start);
        }
        if let Some((start, until)) = self.open_recoveries.remove(&user) {
            // Lifted after it had run out: it ended by expiry (nothing was left to lift).
            let way = if at_ms >= until { Recovery::Expiry } else { way };
            self.recoveries.push((at_ms.min(until) - start, way));
        }
    }

    /// The measured days ended at `end_ms`: who is restricted then is counted, though they
    /// may still recover (see `finish_at`).
    pub fn mark_end(&mut self, end_ms: i64) {
        let still = self.open_recoveries.values().filter(|(_, until)| *until > end_ms).count();
        self.restricted_at_end = still as u64;
    }

    /// Whether a wrongly restricted honest user is still restricted after `at_ms`.
    pub fn restricted_after(&self, at_ms: i64) -> bool {
        self.open_recoveries.values().any(|(_, until)| *until > at_ms)
    }

    /// Ends the run with no end in sight: every restriction left ends at its expiry.
    pub fn finish(&mut self) {
        self.finish_at(i64::MAX);
    }

    /// Ends the run at `end_ms`: a restriction left that expired by then recovered by
    /// expiry; one still in force has not recovered.
    pub fn finish_at(&mut self, end_ms: i64) {
        for (_, (start, until)) in self.open_restrictions.drain() {
            self.restriction_ms.push(until - start);
        }
        let mut open: Vec<(u32, (i64, i64))> = self.open_recoveries.drain().collect();
        open.sort_unstable();
        for (user, (start, until)) in open {
            if until <= end_ms {
                self.recoveries.push((until - start, Recovery::Expiry));
            } else {
                self.not_recovered_users.insert(user);
            }
        }
    }

    /// An appeal was filed (in the measured days); returns its index for what follows.
    pub fn appeal_filed(&mut self, record: AppealRecord) -> usize {
        self.appeals.push(record);
        self.appeals.len() - 1
    }

    /// Appeal `index`, to record what happened to it.
    pub fn appeal_mut(&mut self, index: usize) -> Option<&mut AppealRecord> {
        self.appeals.get_mut(index)
    }

    /// Every appeal of the measured days, in the order filed.
    pub fn appeals(&self) -> &[AppealRecord] {
        &self.appeals
    }

    /// Time to recovery of every wrong restriction that ended, and how.
    pub fn recoveries(&self) -> &[(i64, Recovery)] {
        &self.recoveries
    }

    fn overall(&self) -> Group {
        let mut all = Group::new(self.classes.len());
        for g in &self.groups {
            all.merge(g);
        }
        all
    }

    fn metrics(g: &Group, honest_users: u64) -> Map<String, Value> {
        let honest = g.by_truth[Truth::Honest as usize];
        let fraud = g.by_truth[Truth::Fraud as usize];
        let restricted = g.honest_restricted.count();
        let mut m = Map::new();
        m.insert("payments".into(), json!(g.payments));
        m.insert("honest_users_restricted_pct".into(), pct(restricted, honest_users));
        m.insert("honest_users_restricted".into(), json!(restricted));
        m.insert("honest_payments_declined_pct".into(), pct(g.honest_declined, honest));
        m.insert("honest_payments_stepped_up_pct".into(), pct(g.honest_stepped_up, honest));
        m.insert("honest_payments_not_completed_pct".into(), pct(g.honest_not_completed, honest));
        m.insert("fraud_payments_stopped_pct".into(), pct(g.fraud_stopped, fraud));
        m.insert("fraud_amount_stopped_pct".into(), pct_amount(g.fraud_amount_stopped_minor, g.fraud_amount_minor));
        m.insert("fraud_loss_minor".into(), json!(g.fraud_loss_minor));
        m.insert("fraud_amount_minor".into(), json!(g.fraud_amount_minor));
        m.insert("default_loss_minor".into(), json!(g.default_loss_minor));
        m.insert("default_amount_minor".into(), json!(g.default_amount_minor));
        m.insert("refunds".into(), json!(g.refunds));
        m.insert("refunded_minor".into(), json!(g.refunded_minor));
        m.insert("approval_rate_pct".into(), pct(g.approved, g.payments));
        m.insert("decision_latency_us_p50".into(), micros(g.latency_ns.quantile(0.50)));
        m.insert("decision_latency_us_p99".into(), micros(g.latency_ns.quantile(0.99)));
        let by_class: Map<String, Value> =
            Truth::ALL.iter().map(|t| (t.name().to_owned(), json!(g.by_truth[*t as usize]))).collect();
        m.insert("payments_by_class".into(), Value::Object(by_class));
        let mut reasons: Vec<(&String, &u64)> = g.honest_reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Map<String, Value> = reasons.iter().take(5).map(|(k, v)| ((*k).clone(), json!(v))).collect();
        m.insert("honest_top_reason_codes".into(), Value::Object(top));
        m
    }

    /// The overall block: every key, plus users by class and how long wrong restrictions
    /// lasted.
    pub fn overall_json(&self) -> Value {
        let g = self.overall();
        let honest_users = self.classes.iter().filter(|c| **c == UserClass::Honest).count() as u64;
        let mut m = Self::metrics(&g, honest_users);
        let count = |c: UserClass| self.classes.iter().filter(|x| **x == c).count();
        m.insert(
            "users_by_class".into(),
            json!({"honest": count(UserClass::Honest), "fraud": count(UserClass::Fraud), "default": count(UserClass::Default)}),
        );
        let mut hours: Vec<i64> = self.restriction_ms.clone();
        hours.sort_unstable();
        m.insert("honest_restrictions".into(), json!(self.honest_restrictions));
        m.insert("honest_restriction_hours_p50".into(), hours_quantile(&hours, 0.5));
        m.insert("honest_restriction_hours_max".into(), hours_quantile(&hours, 1.0));
        self.recovery_json(&mut m);
        self.appeals_json(&mut m);
        m.insert("honest_payments_skipped_no_credit".into(), json!(self.skipped_no_credit[Truth::Honest as usize]));
        m.insert("retries_with_same_key".into(), json!(self.retries_with_same_key));
        m.insert("idempotent_replay_mismatches".into(), json!(self.replay_mismatches));
        Value::Object(m)
    }

    /// Time to recovery of wrong restrictions, whichever way they ended, and who has not
    /// recovered.
    fn recovery_json(&self, m: &mut Map<String, Value>) {
        let mut recovery_ms: Vec<i64> = self.recoveries.iter().map(|(ms, _)| *ms).collect();
        recovery_ms.sort_unstable();
        m.insert("honest_time_to_recovery_hours_p50".into(), hours_quantile(&recovery_ms, 0.5));
        m.insert("honest_time_to_recovery_hours_p95".into(), hours_quantile(&recovery_ms, 0.95));
        m.insert("honest_time_to_recovery_hours_max".into(), hours_quantile(&recovery_ms, 1.0));
        let not_recovered = self.not_recovered_users.len();
        m.insert(
            "honest_restricted_users_recovered".into(),
            json!(self.wrongly_restricted_users.len() - not_recovered),
        );
        m.insert("honest_restricted_users_not_recovered".into(), json!(not_recovered));
        m.insert("honest_users_restricted_at_end".into(), json!(self.restricted_at_end));
        let by: Map<String, Value> = Recovery::ALL
            .iter()
            .map(|way| (way.name().to_owned(), json!(self.recoveries.iter().filter(|(_, w)| w == way).count())))
            .collect();
        m.insert("recovered_by".into(), Value::Object(by));
    }

    /// What happened to the appeals filed, and the compensation overturns paid.
    fn appeals_json(&self, m: &mut Map<String, Value>) {
        let a = &self.appeals;
        let count = |f: &dyn Fn(&AppealRecord) -> bool| a.iter().filter(|r| f(r)).count() as u64;
        let filed = a.len() as u64;
        let within = count(&|r| r.decided_at_ms.is_some_and(|at| at <= r.deadline_ms));
        let paid = count(&|r| r.compensation_minor > 0);
        let by_filer = |honest: bool| {
            json!({
                "filed": count(&|r| r.honest == honest),
                "overturned": count(&|r| r.honest == honest && r.overturned == Some(true)),
                "upheld": count(&|r| r.honest == honest && r.overturned == Some(false)),
            })
        };
        m.insert("appeals_filed".into(), json!(filed));
        m.insert("appeals_overturned".into(), json!(count(&|r| r.overturned == Some(true))));
        m.insert("appeals_upheld".into(), json!(count(&|r| r.overturned == Some(false))));
        m.insert("appeals_escalated".into(), json!(count(&|r| r.escalated_at_ms.is_some())));
        m.insert("appeals_undecided".into(), json!(count(&|r| r.overturned.is_none())));
        m.insert("appeals_decided_within_deadline_pct".into(), pct(within, filed));
        m.insert("appeals_by_filer".into(), json!({"honest": by_filer(true), "fraud": by_filer(false)}));
        m.insert("compensation_paid_minor".into(), json!(a.iter().map(|r| r.compensation_minor).sum::<i64>()));
        m.insert("compensation_paid_count".into(), json!(paid));
    }

    /// One block per scenario that saw payments, by name.
    pub fn scenarios_json(&self) -> Value {
        let mut out = Map::new();
        for s in Scenario::ALL {
            let g = &self.groups[s.index()];
            if g.payments == 0 {
                continue;
            }
            let payers = g.honest_payers.count();
            out.insert(s.name().to_owned(), Value::Object(Self::metrics(g, payers)));
        }
        Value::Object(out)
    }
}

/// The value at quantile `q` (0–1) of `sorted` milliseconds, in hours to two decimals: the
/// nearest rank, so every figure is one a restriction really had. `null` when empty.
fn hours_quantile(sorted: &[i64], q: f64) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    json!((sorted[i] as f64 / 3_600_000.0 * 100.0).round() / 100.0)
}

/// The key figures the issue names, in table order.
pub const KEY_FIGURES: [&str; 11] = [
    "honest_users_restricted_pct",
    "honest_payments_declined_pct",
    "honest_payments_stepped_up_pct",
    "fraud_payments_stopped_pct",
    "fraud_amount_stopped_pct",
    "fraud_loss_minor",
    "default_loss_minor",
    "approval_rate_pct",
    "decision_latency_us_p50",
    "decision_latency_us_p99",
    "payments",
];

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "–".into(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    }
}

/// The report as markdown: configurations side by side, then the primary configuration by
/// scenario.
pub fn markdown(report: &Value) -> String {
    let mut out = String::new();
    let sim = &report["simulation"];
    out.push_str(&format!(
        "# Xiezhi decision quality\n\n{} users × {} days, {} merchants, seed {}, mix `{}`, driver `{}`.\n\n",
        sim["users"],
        sim["days"],
        sim["merchants"],
        sim["seed"],
        cell(sim.get("mix")).trim_matches('"'),
        cell(sim.get("mode")).trim_matches('"')
    ));
    if let Some(baselines) = report["baselines"].as_object() {
        out.push_str("| figure |");
        for name in baselines.keys() {
            out.push_str(&format!(" {name} |"));
        }
        out.push_str("\n|---|");
        for _ in baselines {
            out.push_str("---:|");
        }
        out.push('\n');
        let mut rows: Vec<&str> = KEY_FIGURES.to_vec();
        rows.insert(1, "honest_users_restricted");
        rows.push("honest_restriction_hours_p50");
        for key in rows {
            out.push_str(&format!("| {key} |"));
            for b in baselines.values() {
                out.push_str(&format!(" {} |", cell(b.get(key))));
            }
            out.push('\n');
        }
    }
    if let Some(scenarios) = report["scenarios"].as_object() {
        out.push_str(&format!(
            "\n## By scenario (`{}`)\n\n| scenario | payments | honest restricted % | honest declined % | honest stepped up % | fraud stopped % | fraud amount stopped % | fraud loss | default loss | approval % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            cell(sim.get("configuration")).trim_matches('"')
        ));
        for (name, s) in scenarios {
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                cell(s.get("payments")),
                cell(s.get("honest_users_restricted_pct")),
                cell(s.get("honest_payments_declined_pct")),
                cell(s.get("honest_payments_stepped_up_pct")),
                cell(s.get("fraud_payments_stopped_pct")),
                cell(s.get("fraud_amount_stopped_pct")),
                cell(s.get("fraud_loss_minor")),
                cell(s.get("default_loss_minor")),
                cell(s.get("approval_rate_pct")),
            ));
        }
    }
    if let Some(baselines) = report["baselines"].as_object() {
        out.push_str(&recovery_markdown(baselines));
    }
    if let Some(credit) = report.get("credit_layer").filter(|c| c.is_object()) {
        out.push_str(&format!(
            "\n## The credit layer (`{}`, the same population)\n\nWith: lines opened on credit applications (the scorecard's band and the policy set each limit; the band caps young lines at payment time). Without: the same people on fixed limits (`{}`). Default loss {} % lower with it.\n\n| figure | with | without |\n|---|---:|---:|\n",
            cell(credit.get("configuration")).trim_matches('"'),
            cell(credit.get("without")).trim_matches('"'),
            cell(credit.get("default_loss_reduction_pct")),
        ));
        if let Some(figures) = credit["figures"].as_object() {
            for (name, pair) in figures {
                out.push_str(&format!("| {name} | {} | {} |\n", cell(pair.get("with")), cell(pair.get("without"))));
            }
        }
        for class in ["honest", "default", "fraud"] {
            let with = &credit["lines"]["with"][class];
            out.push_str(&format!(
                "| {class} applications declined (of applied) | {} of {} | – |\n| {class} mean limit (minor) | {} | {} |\n",
                cell(with.get("declined")),
                cell(with.get("applied")),
                cell(with.get("mean_limit_minor")),
                cell(credit["lines"]["without"][class].get("mean_limit_minor")),
            ));
        }
    }
    if let Some(watch) = report.get("challenger").filter(|w| w.is_object()) {
        out.push_str(&format!(
            "\n### Champion and challenger, on the same payments\n\n| figure | champion ({}, decided) | challenger ({}, watched) |\n|---|---:|---:|\n",
            cell(watch.get("champion_scorer")).trim_matches('"'),
            cell(watch.get("challenger_scorer")).trim_matches('"'),
        ));
        for figure in [
            "honest_payments_declined_pct",
            "honest_payments_stepped_up_pct",
            "fraud_payments_stopped_pct",
            "fraud_amount_stopped_pct",
        ] {
            out.push_str(&format!(
                "| {figure} | {} | {} |\n",
                cell(watch["champion"].get(figure)),
                cell(watch["challenger"].get(figure))
            ));
        }
    }
    out
}

/// The figures of the "Recovery" section, in table order.
const RECOVERY_FIGURES: [&str; 12] = [
    "honest_restricted_users_recovered",
    "honest_restricted_users_not_recovered",
    "honest_time_to_recovery_hours_p50",
    "honest_time_to_recovery_hours_p95",
    "honest_time_to_recovery_hours_max",
    "appeals_filed",
    "appeals_overturned",
    "appeals_upheld",
    "appeals_escalated",
    "appeals_decided_within_deadline_pct",
    "compensation_paid_minor",
    "compensation_paid_count",
];

/// The "Recovery" section: for each configuration, whether every honest user it wrongly
/// restricted got their line back by the end, how long it took, and what the appeals did.
fn recovery_markdown(baselines: &Map<String, Value>) -> String {
    let mut out = String::from(
        "\n## Recovery\n\nWrongly restricted honest users: time from the restriction to its end, whichever way it ended (challenge / appeal / escalation / expiry).\n\n| figure |",
    );
    for name in baselines.keys() {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(baselines.len()));
    out.push('\n');
    for key in RECOVERY_FIGURES.iter().take(5) {
        out.push_str(&format!("| {key} |"));
        for b in baselines.values() {
            out.push_str(&format!(" {} |", cell(b.get(*key))));
        }
        out.push('\n');
    }
    out.push_str("| recovered_by (challenge / appeal / escalation / expiry) |");
    for b in baselines.values() {
        let by = |way: &str| cell(b.get("recovered_by").and_then(|r| r.get(way)));
        out.push_str(&format!(" {} / {} / {} / {} |", by("challenge"), by("appeal"), by("escalation"), by("expiry")));
    }
    out.push('\n');
    for key in RECOVERY_FIGURES.iter().skip(5) {
        out.push_str(&format!("| {key} |"));
        for b in baselines.values() {
            out.push_str(&format!(" {} |", cell(b.get(*key))));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.05, "{p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.05, "{p99}");
        assert_eq!(Histogram::default().quantile(0.5), None);
        for v in [0u64, 1, 15, 16, 17, 1 << 20, u64::MAX / 2] {
            let b = Histogram::bucket(v);
            assert!(Histogram::lower_bound(b) <= v && v < Histogram::lower_bound(b + 1).max(v + 1), "{v}");
        }
    }

    /// Twenty wrong restrictions lasting 1 h to 20 h, ended each way; one more still in
    /// force when the measured days end and past the window, one that expires after the end.
    #[test]
    fn time_to_recovery_is_counted_per_restriction_with_its_way_and_nearest_rank_quantiles() {
        const H: i64 = 3_600_000;
        let mut t = Tally::new(30);
        let ways = [Recovery::Challenge, Recovery::Appeal, Recovery::Escalation];
        for user in 0..20u32 {
            let (start, hours) = (i64::from(user) * 100 * H, i64::from(user) + 1);
            t.honest_restriction_started(user, Scenario::Routine, start, start + 24 * H);
            t.restriction_lifted_by(user, start + hours * H, ways[user as usize % 3]);
        }
        // Restricted again while restricted: one spell, from the first start to the last end.
        t.honest_restriction_started(20, Scenario::Routine, 0, 30 * H);
        t.honest_restriction_started(20, Scenario::Routine, 10 * H, 40 * H);
        // Expires after the measured days, within the window; and one never ends in it.
        t.honest_restriction_started(21, Scenario::Travel, 2_000 * H, 2_012 * H);
        t.honest_restriction_started(22, Scenario::Travel, 2_000 * H, 9_000 * H);
        t.mark_end(2_005 * H);
        assert!(t.restricted_after(2_005 * H));
        t.finish_at(3_000 * H);
        let o = t.overall_json();
        // Durations: 1..=20 h, 40 h, 12 h (22 in all); nearest rank.
        assert_eq!(o["honest_time_to_recovery_hours_p50"], 11.0);
        assert_eq!(o["honest_time_to_recovery_hours_p95"], 20.0);
        assert_eq!(o["honest_time_to_recovery_hours_max"], 40.0);
        assert_eq!(o["recovered_by"], json!({"challenge": 7, "appeal": 7, "escalation": 6, "expiry": 2}));
        assert_eq!(o["honest_restricted_users_recovered"], 22);
        assert_eq!(o["honest_restricted_users_not_recovered"], 1);
        assert_eq!(o["honest_users_restricted_at_end"], 2);
        // A lift after the expiry is the expiry.
        let mut late = Tally::new(1);
        late.honest_restriction_started(0, Scenario::Routine, 0, 2 * H);
        late.restriction_lifted_by(0, 5 * H, Recovery::Appeal);
        late.finish();
        let o = late.overall_json();
        assert_eq!(
            (o["recovered_by"]["expiry"].clone(), o["honest_time_to_recovery_hours_max"].clone()),
            (json!(1), json!(2.0))
        );
        assert_eq!(Tally::new(1).overall_json()["honest_time_to_recovery_hours_p95"], Value::Null);
    }

    #[test]
    fn appeals_are_counted_by_outcome_and_filer_with_their_compensation() {
        let mut t = Tally::new(4);
        let appeal = |user: u32, honest: bool| AppealRecord::filed(user, honest, 0, 100);
        for (user, honest, decided_at_ms, overturned) in [
            (0, true, Some(50), Some(true)),
            (1, true, Some(150), Some(false)),
            (2, false, Some(90), Some(true)),
            (3, false, None, None),
        ] {
            let i = t.appeal_filed(appeal(user, honest));
            let record = t.appeal_mut(i).unwrap();
            record.decided_at_ms = decided_at_ms;
            record.overturned = overturned;
            record.compensation_minor = if overturned == Some(true) { 5_000 } else { 0 };
            record.escalated_at_ms = decided_at_ms.is_none_or(|d| d > 100).then_some(100);
        }
        let o = t.overall_json();
        assert_eq!((o["appeals_filed"].clone(), o["appeals_overturned"].clone()), (json!(4), json!(2)));
        assert_eq!((o["appeals_upheld"].clone(), o["appeals_undecided"].clone()), (json!(1), json!(1)));
        assert_eq!(o["appeals_escalated"], 2);
        assert_eq!(o["appeals_decided_within_deadline_pct"], 50.0);
        assert_eq!(o["appeals_by_filer"]["honest"], json!({"filed": 2, "overturned": 1, "upheld": 1}));
        assert_eq!(o["appeals_by_filer"]["fraud"], json!({"filed": 2, "overturned": 1, "upheld": 0}));
        assert_eq!(
            (o["compensation_paid_minor"].clone(), o["compensation_paid_count"].clone()),
            (json!(10_000), json!(2))
        );
    }

    #[test]
    fn honest_and_fraud_figures_come_from_the_truth() {
        let mut t = Tally::new(4);
        t.set_classes(&[UserClass::Honest, UserClass::Honest, UserClass::Honest, UserClass::Fraud]);
        t.record(Scenario::Routine, Truth::Honest, 0, 1_000, Outcome::Approve, true, 5_000, None);
        t.record(Scenario::Routine, Truth::Honest, 1, 1_000, Outcome::Decline, false, 5_000, Some("velocity_burst"));
        t.record(Scenario::Travel, Truth::Honest, 2, 1_000, Outcome::StepUp, true, 5_000, Some("ip_changed"));
        t.record(Scenario::AccountTakeover, Truth::Fraud, 2, 300_000, Outcome::StepUp, false, 5_000, None);
        t.record(Scenario::AccountTakeover, Truth::Fraud, 2, 100_000, Outcome::Approve, true, 5_000, None);
        t.honest_restriction_started(1, Scenario::Routine, 0, 24 * 3_600_000);
        t.restriction_lifted(1, 2 * 3_600_000);
        t.finish();
        let o = t.overall_json();
        assert_eq!(o["payments"], 5);
        assert_eq!(o["honest_users_restricted"], 1);
        assert_eq!(o["honest_users_restricted_pct"], 33.333);
        assert_eq!(o["honest_payments_declined_pct"], 33.333);
        assert_eq!(o["honest_payments_stepped_up_pct"], 33.333);
        assert_eq!(o["fraud_payments_stopped_pct"], 50.0);
        assert_eq!(o["fraud_amount_stopped_pct"], 75.0);
        assert_eq!(o["fraud_loss_minor"], 100_000);
        assert_eq!(o["approval_rate_pct"], 60.0);
        assert_eq!(o["honest_restriction_hours_p50"], 2.0);
        assert_eq!(o["honest_top_reason_codes"]["velocity_burst"], 1);
        let s = t.scenarios_json();
        assert_eq!(s["routine"]["honest_users_restricted_pct"], 50.0, "per scenario, of its honest payers");
        assert_eq!(s["account_takeover"]["fraud_amount_stopped_pct"], 75.0);
        assert!(s.get("festival").is_none());
    }
}
