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
    }

    pub fn restriction_lifted(&mut self, user: u32, at_ms: i64) {
        if let Some((start, until)) = self.open_restrictions.remove(&user) {
            self.restriction_ms.push(at_ms.min(until) - start);
        }
    }

    pub fn finish(&mut self) {
        for (_, (start, until)) in self.open_restrictions.drain() {
            self.restriction_ms.push(until - start);
        }
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
        let h = |q: f64| -> Value {
            if hours.is_empty() {
                return Value::Null;
            }
            let i = ((q * hours.len() as f64).ceil() as usize).clamp(1, hours.len()) - 1;
            json!((hours[i] as f64 / 3_600_000.0 * 100.0).round() / 100.0)
        };
        m.insert("honest_restrictions".into(), json!(self.honest_restrictions));
        m.insert("honest_restriction_hours_p50".into(), h(0.5));
        m.insert("honest_restriction_hours_max".into(), h(1.0));
        m.insert("honest_payments_skipped_no_credit".into(), json!(self.skipped_no_credit[Truth::Honest as usize]));
        m.insert("retries_with_same_key".into(), json!(self.retries_with_same_key));
        m.insert("idempotent_replay_mismatches".into(), json!(self.replay_mismatches));
        Value::Object(m)
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
