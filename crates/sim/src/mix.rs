//! The population mix: how honest shoppers live and how each adversary attacks. Every
//! parameter is documented here; `mix/default.json` holds the shipped values, and a mix file
//! (`xiezhi simulate --mix FILE`) overrides any subset of them (merged key by key).

use crate::SimError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The shipped mix.
pub const DEFAULT_MIX: &str = include_str!("../mix/default.json");

/// Largest mix file accepted.
pub const MAX_MIX_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// Named in the report so a figure can be traced to its mix.
    pub version: String,
    /// Local date of the first simulated day (`YYYY-MM-DD`).
    pub start_date: String,
    /// Local time zone of the population, minutes east of UTC (China: 480).
    pub timezone_offset_minutes: i64,
    /// ISO 4217 code of every credit line and merchant.
    pub currency: String,
    pub cities: Vec<City>,
    pub honest: Honest,
    pub adversaries: Adversaries,
    /// How lines are opened: with a fixed limit, or on a credit application. Absent from a
    /// mix: fixed limits.
    #[serde(default)]
    pub credit: Credit,
    /// The people who decide appeals. Absent from a mix: the shipped team.
    #[serde(default)]
    pub reviewers: Reviewers,
}

/// Simulated reviewers of appeals: appeals wait in one queue, first filed first claimed;
/// a free reviewer claims one only during working hours and only when its handling time
/// ends within them, and decides it when that time is up. With `error_rate_pct` they get it
/// wrong: an honest user's appeal upheld, a fraudster's overturned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reviewers {
    /// Reviewers working at once.
    pub count: u32,
    /// Local hours [start, end) of a working day, 0 to 24.
    pub working_hours: [u32; 2],
    /// Whether they also work on Saturdays and Sundays.
    pub weekends: bool,
    /// Minutes one appeal takes to review, drawn per appeal.
    pub minutes_per_appeal: [u32; 2],
    /// Share of decisions that are wrong, in %.
    pub error_rate_pct: u32,
}

impl Default for Reviewers {
    fn default() -> Reviewers {
        Reviewers { count: 2, working_hours: [9, 18], weekends: false, minutes_per_appeal: [10, 40], error_rate_pct: 5 }
    }
}

/// How credit lines are opened. With `applications`, each user applies as a real applicant
/// did: a row of the public credit data the shipped credit scorecard was trained on
/// (`german_credit_application`), drawn from the rows it was *not* trained on (the fixed
/// split's test rows) by the user's ground truth: honest users, ring members and the
/// shoppers later recruited as mules get a row of someone who repaid, first-party
/// defaulters and synthetic identities one of someone who defaulted. Each also declares a
/// monthly income, drawn alike for every class. The service then scores the application,
/// and the policy's `credit_limits` band and the income set the limit; below every band the
/// application is declined and the user never pays with credit. Without, every line gets a
/// limit drawn from `honest.limit_yuan`, and no band. The public data must then be where
/// `xiezhi_datasets::default_data_dir` looks (`scripts/fetch-data` fetches it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credit {
    #[serde(default)]
    pub applications: bool,
    /// Declared monthly income in major units, drawn log-uniformly from [low, high] and
    /// rounded to 100.
    #[serde(default = "monthly_income_yuan")]
    pub monthly_income_yuan: [i64; 2],
    /// With `applications`, an in-process run also runs its main configuration on the same
    /// population with lines opened on `honest.limit_yuan` instead (no band, so no credit
    /// layer at payment time either), and the report puts the two side by side
    /// (`credit_layer`, and the baseline `<name>-without-credit-layer`). It doubles the
    /// main configuration's run time.
    #[serde(default)]
    pub compare_without: bool,
}

fn monthly_income_yuan() -> [i64; 2] {
    [6_000, 30_000]
}

impl Default for Credit {
    fn default() -> Credit {
        Credit { applications: false, monthly_income_yuan: monthly_income_yuan(), compare_without: false }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct City {
    pub name: String,
    /// Relative share of users and merchants.
    pub weight: u32,
}

/// Honest shoppers. Probabilities are per user per day unless named otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Honest {
    /// Mean discretionary purchases a day (convenience store, supermarket, restaurants,
    /// pharmacy, …) for an average shopper; each shopper's own rate varies around it.
    pub discretionary_per_day: f64,
    /// Share of shoppers who commute on weekdays (breakfast, metro, lunch near work).
    pub commuter_share: f64,
    pub breakfast_prob: f64,
    /// Chance of paying the metro by credit on a commuting day (two rides).
    pub metro_prob: f64,
    pub lunch_prob: f64,
    /// Chance of a mall trip (two to four payments in an afternoon) on a weekend day.
    pub weekend_mall_prob: f64,
    /// Chance of a market stroll: four to ten small payments at different stalls in 40 min.
    pub market_stroll_prob: f64,
    /// Chance that one market payment is tiny (at or under the policy's tiny amount).
    pub market_tiny_payment_prob: f64,
    /// Chance that a purchase is the shopper's first at a merchant they have not used.
    pub new_merchant_prob: f64,
    pub car_owner_share: f64,
    /// Trips to another city per month; a trip lasts `trip_days`.
    pub trips_per_month: f64,
    pub trip_days: [u32; 2],
    /// New phones per shopper per month: a new device id from then on.
    pub new_phone_per_month: f64,
    /// Share of payments away from home and work made on mobile data (carrier NAT: the IP
    /// changes every `mobile_ip_change_minutes`).
    pub mobile_data_share: f64,
    pub mobile_ip_change_minutes: u32,
    /// Chance that a payment times out on the client and is retried.
    pub timeout_prob: f64,
    /// Share of those retries that reuse the idempotency key; the rest send a new request
    /// (and void the duplicate if both went through).
    pub retry_with_same_key_share: f64,
    /// Chance that the owner completes a step-up challenge (the rest abandon it).
    pub challenge_pass_prob: f64,
    /// Chance that the owner mistypes the code once before getting it right.
    pub challenge_typo_prob: f64,
    /// Chance that a payer asked to check the payee (`merchant_qr_suspicious`) finds a
    /// QR code pasted over the real one and cancels.
    pub payee_check_catches_prob: f64,
    /// Chance that a restricted owner lifts the restriction with the code sent to them
    /// (the rest wait for it to expire).
    pub lift_restriction_prob: f64,
    pub lift_delay_minutes: [u32; 2],
    /// Chance that a restricted owner who did not lift the restriction with the code
    /// appeals it (the rest wait for it to expire). Absent from a mix: none.
    #[serde(default)]
    pub appeal_prob: f64,
    /// Minutes from the restriction to the appeal.
    #[serde(default = "appeal_after_minutes")]
    pub appeal_after_minutes: [u32; 2],
    /// Each shopper repays the whole balance every so many days (drawn per shopper).
    pub repay_every_days: [u32; 2],
    pub late_repayer_share: f64,
    pub late_days: [u32; 2],
    /// Days of the month when salaries arrive; spending is multiplied that day.
    pub salary_days: Vec<u32>,
    pub salary_day_multiplier: f64,
    /// Shopping festivals (e.g. Double 11): discretionary volume multiplied that day.
    pub festivals: Vec<Festival>,
    /// Credit limits in major units, drawn uniformly.
    pub limit_yuan: Vec<i64>,
    /// Share of honest shoppers verified by phone only (identity level 1).
    pub kyc_level_1_share: f64,
    /// Chance that the shop refunds a purchase of goods people take back (clothes,
    /// electronics, jewellery, books): a return, so that refunds alone are not a fraud
    /// signal. Absent from a mix: none.
    #[serde(default)]
    pub refund_prob: f64,
    /// Days from the purchase to its refund (0: the same day).
    #[serde(default = "refund_after_days")]
    pub refund_after_days: [u32; 2],
    /// Share of refunds that return part of the amount (one item of several, a price
    /// adjustment): 20–90 % of it; the rest return the whole amount.
    #[serde(default)]
    pub partial_refund_share: f64,
    /// Share of refunds that are exchanges: the shopper buys another size or model at the
    /// same shop within the hour, for 70–130 % of the first price. A line paying again where
    /// it was just refunded is then an honest pattern too.
    #[serde(default)]
    pub exchange_share: f64,
}

fn appeal_after_minutes() -> [u32; 2] {
    [15, 480]
}

fn refund_after_days() -> [u32; 2] {
    [0, 14]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Festival {
    pub name: String,
    pub date: String,
    pub multiplier: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adversaries {
    pub account_takeover: AccountTakeover,
    /// A takeover after a SIM swap: the thief moved the victim's number to their own SIM, so
    /// every one-time code reaches them and they pass the step-ups; only the device, the
    /// behaviour and the amount pattern give them away. Same parameters as a takeover.
    pub sim_swap_takeover: AccountTakeover,
    pub step_up_prober: StepUpProber,
    pub card_testing: CardTesting,
    pub collusion_cash_out: CollusionCashOut,
    pub synthetic_identity: SyntheticIdentity,
    pub first_party_default: FirstPartyDefault,
    pub compromised_qr: CompromisedQr,
    pub mule_refund_network: MuleRefundNetwork,
    pub compromised_terminal: CompromisedTerminal,
    /// Chance that a fraudster or defaulter whose own line is restricted appeals it, after
    /// `honest.appeal_after_minutes` like anyone; a reviewer should uphold it. Absent from
    /// a mix: none.
    #[serde(default)]
    pub restricted_fraudster_appeal_prob: f64,
}

/// A fraudster with a victim's credentials: new device, new network, drains the line fast.
/// Fails every challenge (the code goes to the owner).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountTakeover {
    /// Incidents per 10,000 users over the run (victims are honest users).
    pub per_10k_users: f64,
    pub attempts_max: u32,
    pub minutes_between: [u32; 2],
    /// First attempt as a share of the victim's available credit, in %.
    pub drain_share_pct: [u32; 2],
    /// The attacker gives up after this many stopped attempts.
    pub give_up_after_stops: u32,
}

/// A thief with a victim's credentials (not the phone) who learns the amount that gets
/// stepped up and stays under it: starts high, halves the gap after each refusal, and once a
/// payment goes through repeats just under what passed until the line runs dry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpProber {
    pub per_10k_users: f64,
    /// The first ask, as a share of the victim's available credit, in %.
    pub first_ask_pct: [u32; 2],
    pub attempts_max: u32,
    pub minutes_between: [u32; 2],
}

/// Leaked credentials tested with bursts of tiny payments at different merchants, then one
/// larger purchase if the tests went through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardTesting {
    pub per_10k_users: f64,
    pub tiny_payments: [u32; 2],
    pub seconds_between: [u32; 2],
    pub cash_out_after: bool,
}

/// 套现: a colluding merchant and a ring of users making fake purchases at round amounts.
/// The members are fraud-class users; nothing they spend is repaid.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollusionCashOut {
    pub rings_per_100k_users: f64,
    pub members: [u32; 2],
    pub payments_per_member: [u32; 2],
    pub round_amounts_yuan: Vec<i64>,
    /// The ring's purchases spread over this many days.
    pub ring_days: [u32; 2],
    /// Colluding merchants per ring: the members' purchases are spread across them, so no
    /// one merchant shows the whole ring. Default one.
    #[serde(default = "one_merchant")]
    pub merchants_per_ring: [u32; 2],
}

fn one_merchant() -> [u32; 2] {
    [1, 1]
}

/// An invented person: builds a clean history with small purchases it repays, then spends
/// the whole line in one day and disappears.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticIdentity {
    pub per_10k_users: f64,
    pub build_days: [u32; 2],
    pub build_payments_per_day: f64,
    pub bust_out_payments: [u32; 2],
}

/// A real user who spends to the limit with ordinary-looking purchases and never repays:
/// credit risk, not fraud; counted as default loss.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstPartyDefault {
    pub per_10k_users: f64,
    pub spend_days: [u32; 2],
}

/// A fraudster's QR code pasted over a real merchant's: honest shoppers there pay a new
/// account of the fraudster's for some hours.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompromisedQr {
    pub per_100k_users: f64,
    pub hours: [u32; 2],
}

/// A mule network moving value through refunds. Mule lines under the fraudsters' control pay
/// a colluding merchant on credit from their own phones (they pass the codes); the platform
/// settles the merchant; the merchant refunds most of each payment, in one or several
/// refunds, which gives the mule line its credit back; the mule pays again, and so on for a
/// few cycles, until the merchant vanishes owing its refunds. Every approved mule payment is
/// a loss: the platform paid the merchant, a refund moved the debt from the mule (who never
/// repays) to the merchant (who is gone), and what was not refunded the mule owes and never
/// repays. A platform that nets refunds against the merchant's later settlements recovers
/// part of it, so the figure is an upper bound, like every loss here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuleRefundNetwork {
    pub networks_per_100k_users: f64,
    /// Mule lines per network (fraud-class lines, opened weeks or months before).
    pub mules: [u32; 2],
    /// Colluding merchants per network (established shops of the mules' city); a mule's
    /// payments go to one of them in turn.
    pub merchants_per_network: [u32; 2],
    /// Payments per mule before the merchant vanishes; every one but the last is refunded.
    pub cycles: [u32; 2],
    /// Each payment takes this share of the mule's available credit, in % (under the
    /// per-payment cap, never a round amount).
    pub spend_share_pct: [u32; 2],
    /// Each refund gives back this share of its payment, in %.
    pub refund_share_pct: [u32; 2],
    /// A payment's refund comes in this many parts, minutes apart.
    pub refund_splits: [u32; 2],
    /// Hours from a payment to its first refund: the merchant waits to be settled.
    pub refund_after_hours: [u32; 2],
    /// Minutes from a mule's last refund to its next payment.
    pub pay_after_refund_minutes: [u32; 2],
}

/// A compromised terminal at an established, busy shop: for some hours it shows dynamic
/// (amount-bearing, point of initiation `12`) codes whose payee is the fraudster's merchant
/// account instead of the shop's, and the shop's honest customers pay them at the counter.
/// Their payments to the fraudster are the loss. Unlike a pasted code, the amount is right
/// and the code comes from the shop's own terminal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompromisedTerminal {
    pub per_100k_users: f64,
    /// How long the terminal shows the fraudster's codes, until the shop notices.
    pub hours: [u32; 2],
    /// Share of the counter's payments the terminal diverts, in %: all of them, or some,
    /// so that the shop's takings do not collapse at once.
    pub diverted_pct: [u32; 2],
    /// Age of the fraudster's payee account when the diversion starts, in days: a fresh
    /// account, or an older dormant one that dodges "new merchant" signals.
    pub payee_age_days: [u32; 2],
}

impl Mix {
    pub fn default_mix() -> Mix {
        Mix::from_json(DEFAULT_MIX).expect("the shipped mix is valid")
    }

    /// A whole mix document.
    pub fn from_json(text: &str) -> Result<Mix, SimError> {
        let mix: Mix = serde_json::from_str(text).map_err(|e| SimError::Mix(e.to_string()))?;
        mix.validate()?;
        Ok(mix)
    }

    /// The shipped mix with `text`'s keys laid over it.
    pub fn with_overrides(text: &str) -> Result<Mix, SimError> {
        if text.len() > MAX_MIX_BYTES {
            return Err(SimError::Mix(format!("the mix file is over {MAX_MIX_BYTES} bytes")));
        }
        let mut base: Value = serde_json::from_str(DEFAULT_MIX).expect("the shipped mix is JSON");
        let over: Value = serde_json::from_str(text).map_err(|e| SimError::Mix(e.to_string()))?;
        if !over.is_object() {
            return Err(SimError::Mix("a mix file is a JSON object".into()));
        }
        merge(&mut base, over);
        let mix: Mix = serde_json::from_value(base).map_err(|e| SimError::Mix(e.to_string()))?;
        mix.validate()?;
        Ok(mix)
    }

    /// The [low, high] parameters of the mule network and the compromised terminal.
    fn new_adversary_ranges(&self) -> [(&'static str, [u32; 2]); 9] {
        let (m, t) = (&self.adversaries.mule_refund_network, &self.adversaries.compromised_terminal);
        [
            ("adversaries.mule_refund_network.mules", m.mules),
            ("adversaries.mule_refund_network.merchants_per_network", m.merchants_per_network),
            ("adversaries.mule_refund_network.cycles", m.cycles),
            ("adversaries.mule_refund_network.refund_splits", m.refund_splits),
            ("adversaries.mule_refund_network.refund_after_hours", m.refund_after_hours),
            ("adversaries.mule_refund_network.pay_after_refund_minutes", m.pay_after_refund_minutes),
            ("adversaries.compromised_terminal.hours", t.hours),
            ("adversaries.compromised_terminal.payee_age_days", t.payee_age_days),
            ("adversaries.compromised_terminal.diverted_pct", t.diverted_pct),
        ]
    }

    /// Shares in % that must be at least 1 and at most their ceiling.
    fn percentage_ranges(&self) -> [(&'static str, [u32; 2], u32); 3] {
        let (m, t) = (&self.adversaries.mule_refund_network, &self.adversaries.compromised_terminal);
        [
            ("adversaries.mule_refund_network.spend_share_pct", m.spend_share_pct, 100),
            ("adversaries.mule_refund_network.refund_share_pct", m.refund_share_pct, 100),
            ("adversaries.compromised_terminal.diverted_pct", t.diverted_pct, 100),
        ]
    }

    pub(crate) fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Mix(m));
        if self.cities.is_empty() || self.cities.iter().all(|c| c.weight == 0) {
            return bad("`cities` needs at least one city with a weight".into());
        }
        if self.cities.len() > 250 {
            return bad("at most 250 cities".into());
        }
        if xiezhi_money::Currency::from_alpha(&self.currency).is_none() {
            return bad(format!("unknown currency `{}`", self.currency));
        }
        crate::clock::parse_date(&self.start_date).ok_or_else(|| SimError::Mix("`start_date` is YYYY-MM-DD".into()))?;
        let h = &self.honest;
        let probs = [
            ("honest.commuter_share", h.commuter_share),
            ("honest.breakfast_prob", h.breakfast_prob),
            ("honest.metro_prob", h.metro_prob),
            ("honest.lunch_prob", h.lunch_prob),
            ("honest.weekend_mall_prob", h.weekend_mall_prob),
            ("honest.market_stroll_prob", h.market_stroll_prob),
            ("honest.market_tiny_payment_prob", h.market_tiny_payment_prob),
            ("honest.new_merchant_prob", h.new_merchant_prob),
            ("honest.car_owner_share", h.car_owner_share),
            ("honest.mobile_data_share", h.mobile_data_share),
            ("honest.timeout_prob", h.timeout_prob),
            ("honest.retry_with_same_key_share", h.retry_with_same_key_share),
            ("honest.challenge_pass_prob", h.challenge_pass_prob),
            ("honest.challenge_typo_prob", h.challenge_typo_prob),
            ("honest.payee_check_catches_prob", h.payee_check_catches_prob),
            ("honest.lift_restriction_prob", h.lift_restriction_prob),
            ("honest.late_repayer_share", h.late_repayer_share),
            ("honest.kyc_level_1_share", h.kyc_level_1_share),
            ("honest.refund_prob", h.refund_prob),
            ("honest.partial_refund_share", h.partial_refund_share),
            ("honest.exchange_share", h.exchange_share),
            ("honest.appeal_prob", h.appeal_prob),
            ("adversaries.restricted_fraudster_appeal_prob", self.adversaries.restricted_fraudster_appeal_prob),
        ];
        for (name, p) in probs {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("`{name}` is a probability between 0 and 1, not {p}"));
            }
        }
        let rates = [
            ("honest.discretionary_per_day", h.discretionary_per_day, 50.0),
            ("honest.trips_per_month", h.trips_per_month, 30.0),
            ("honest.new_phone_per_month", h.new_phone_per_month, 30.0),
            ("honest.salary_day_multiplier", h.salary_day_multiplier, 20.0),
            ("adversaries.account_takeover.per_10k_users", self.adversaries.account_takeover.per_10k_users, 1000.0),
            ("adversaries.sim_swap_takeover.per_10k_users", self.adversaries.sim_swap_takeover.per_10k_users, 1000.0),
            ("adversaries.step_up_prober.per_10k_users", self.adversaries.step_up_prober.per_10k_users, 1000.0),
            ("adversaries.card_testing.per_10k_users", self.adversaries.card_testing.per_10k_users, 1000.0),
            (
                "adversaries.collusion_cash_out.rings_per_100k_users",
                self.adversaries.collusion_cash_out.rings_per_100k_users,
                1000.0,
            ),
            ("adversaries.synthetic_identity.per_10k_users", self.adversaries.synthetic_identity.per_10k_users, 1000.0),
            (
                "adversaries.synthetic_identity.build_payments_per_day",
                self.adversaries.synthetic_identity.build_payments_per_day,
                20.0,
            ),
            (
                "adversaries.first_party_default.per_10k_users",
                self.adversaries.first_party_default.per_10k_users,
                1000.0,
            ),
            ("adversaries.compromised_qr.per_100k_users", self.adversaries.compromised_qr.per_100k_users, 1000.0),
            (
                "adversaries.mule_refund_network.networks_per_100k_users",
                self.adversaries.mule_refund_network.networks_per_100k_users,
                1000.0,
            ),
            (
                "adversaries.compromised_terminal.per_100k_users",
                self.adversaries.compromised_terminal.per_100k_users,
                1000.0,
            ),
        ];
        for (name, v, max) in rates {
            if !(0.0..=max).contains(&v) {
                return bad(format!("`{name}` is between 0 and {max}, not {v}"));
            }
        }
        for f in &h.festivals {
            if crate::clock::parse_date(&f.date).is_none() || !(0.0..=50.0).contains(&f.multiplier) {
                return bad(format!("festival `{}` needs a YYYY-MM-DD date and a multiplier from 0 to 50", f.name));
            }
        }
        let ranges = [
            ("honest.trip_days", h.trip_days),
            ("honest.lift_delay_minutes", h.lift_delay_minutes),
            ("honest.repay_every_days", h.repay_every_days),
            ("honest.late_days", h.late_days),
            ("adversaries.account_takeover.minutes_between", self.adversaries.account_takeover.minutes_between),
            ("adversaries.account_takeover.drain_share_pct", self.adversaries.account_takeover.drain_share_pct),
            ("adversaries.sim_swap_takeover.minutes_between", self.adversaries.sim_swap_takeover.minutes_between),
            ("adversaries.sim_swap_takeover.drain_share_pct", self.adversaries.sim_swap_takeover.drain_share_pct),
            ("adversaries.step_up_prober.first_ask_pct", self.adversaries.step_up_prober.first_ask_pct),
            ("adversaries.step_up_prober.minutes_between", self.adversaries.step_up_prober.minutes_between),
            ("adversaries.card_testing.tiny_payments", self.adversaries.card_testing.tiny_payments),
            ("adversaries.card_testing.seconds_between", self.adversaries.card_testing.seconds_between),
            ("adversaries.collusion_cash_out.members", self.adversaries.collusion_cash_out.members),
            (
                "adversaries.collusion_cash_out.payments_per_member",
                self.adversaries.collusion_cash_out.payments_per_member,
            ),
            ("adversaries.collusion_cash_out.ring_days", self.adversaries.collusion_cash_out.ring_days),
            (
                "adversaries.collusion_cash_out.merchants_per_ring",
                self.adversaries.collusion_cash_out.merchants_per_ring,
            ),
            ("adversaries.synthetic_identity.build_days", self.adversaries.synthetic_identity.build_days),
            ("adversaries.synthetic_identity.bust_out_payments", self.adversaries.synthetic_identity.bust_out_payments),
            ("adversaries.first_party_default.spend_days", self.adversaries.first_party_default.spend_days),
            ("adversaries.compromised_qr.hours", self.adversaries.compromised_qr.hours),
            ("honest.refund_after_days", h.refund_after_days),
            ("honest.appeal_after_minutes", h.appeal_after_minutes),
            ("reviewers.minutes_per_appeal", self.reviewers.minutes_per_appeal),
        ];
        for (name, [lo, hi]) in ranges.into_iter().chain(self.new_adversary_ranges()) {
            if lo > hi || hi > 10_000 {
                return bad(format!("`{name}` is [low, high] with low ≤ high ≤ 10000"));
            }
        }
        for (name, [lo, hi], max) in self.percentage_ranges() {
            if lo == 0 || hi > max {
                return bad(format!("`{name}` is a share in % from 1 to {max}"));
            }
        }
        if h.repay_every_days[0] == 0
            || self.adversaries.collusion_cash_out.ring_days[0] == 0
            || self.adversaries.collusion_cash_out.merchants_per_ring[0] == 0
        {
            return bad("day ranges start at 1".into());
        }
        let m = &self.adversaries.mule_refund_network;
        if m.mules[0] == 0 || m.merchants_per_network[0] == 0 || m.cycles[0] == 0 || m.refund_splits[0] == 0 {
            return bad("mule networks have at least one mule, merchant, cycle and refund part".into());
        }
        let [lo, hi] = self.credit.monthly_income_yuan;
        if !(1 <= lo && lo <= hi && hi <= 10_000_000) {
            return bad("`credit.monthly_income_yuan` is [low, high] with 1 ≤ low ≤ high ≤ 10,000,000".into());
        }
        if h.limit_yuan.is_empty() || h.limit_yuan.iter().any(|l| !(1..=10_000_000).contains(l)) {
            return bad("`honest.limit_yuan` lists limits from 1 to 10,000,000".into());
        }
        let c = &self.adversaries.collusion_cash_out;
        if c.round_amounts_yuan.is_empty() || c.round_amounts_yuan.iter().any(|a| !(1..=1_000_000).contains(a)) {
            return bad("`adversaries.collusion_cash_out.round_amounts_yuan` lists amounts from 1 to 1,000,000".into());
        }
        if h.salary_days.iter().any(|d| !(1..=31).contains(d)) {
            return bad("`honest.salary_days` are days of the month, 1 to 31".into());
        }
        self.reviewers.validate()
    }
}

impl Reviewers {
    /// A team that can decide something: at least one reviewer, a working day with room for
    /// the longest review in it (else nothing would ever be claimed), an error rate in %.
    fn validate(&self) -> Result<(), SimError> {
        let [start, end] = self.working_hours;
        let [_, longest] = self.minutes_per_appeal;
        if !(1..=1_000).contains(&self.count) {
            return Err(SimError::Mix("`reviewers.count` is from 1 to 1000".into()));
        }
        if start >= end || end > 24 {
            return Err(SimError::Mix("`reviewers.working_hours` is [start, end) with start < end ≤ 24".into()));
        }
        if self.minutes_per_appeal[0] == 0 || longest > (end - start) * 60 {
            return Err(SimError::Mix(
                "`reviewers.minutes_per_appeal` is [low, high] from 1 minute to the length of a working day".into(),
            ));
        }
        if self.error_rate_pct > 100 {
            return Err(SimError::Mix("`reviewers.error_rate_pct` is a share in % from 0 to 100".into()));
        }
        Ok(())
    }
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    // Unknown keys are kept so that deserialisation names them.
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_mix_is_valid_and_overrides_merge() {
        let mix = Mix::default_mix();
        assert_eq!(mix.version, "mix-1");
        let over = Mix::with_overrides(r#"{"honest": {"timeout_prob": 0.05}}"#).unwrap();
        assert_eq!(over.honest.timeout_prob, 0.05);
        assert_eq!(over.honest.commuter_share, mix.honest.commuter_share);
    }

    #[test]
    fn bad_mixes_are_named() {
        let e = Mix::with_overrides(r#"{"honest": {"timeout_probability": 0.05}}"#).unwrap_err().to_string();
        assert!(e.contains("timeout_probability"), "{e}");
        let e = Mix::with_overrides(r#"{"honest": {"timeout_prob": 1.5}}"#).unwrap_err().to_string();
        assert!(e.contains("honest.timeout_prob"), "{e}");
        let e = Mix::with_overrides(r#"{"currency": "XYZ"}"#).unwrap_err().to_string();
        assert!(e.contains("XYZ"), "{e}");
        let e = Mix::with_overrides(r#"{"honest": {"trip_days": [5, 2]}}"#).unwrap_err().to_string();
        assert!(e.contains("trip_days"), "{e}");
        assert!(Mix::with_overrides("[1]").is_err());
        for (over, named) in [
            (r#"{"honest": {"appeal_prob": 2}}"#, "honest.appeal_prob"),
            (r#"{"honest": {"appeal_after_minutes": [60, 5]}}"#, "honest.appeal_after_minutes"),
            (r#"{"adversaries": {"restricted_fraudster_appeal_prob": -0.1}}"#, "restricted_fraudster_appeal_prob"),
            (r#"{"reviewers": {"count": 0}}"#, "reviewers.count"),
            (r#"{"reviewers": {"working_hours": [18, 9]}}"#, "reviewers.working_hours"),
            (r#"{"reviewers": {"working_hours": [9, 25]}}"#, "reviewers.working_hours"),
            (r#"{"reviewers": {"working_hours": [9, 10], "minutes_per_appeal": [10, 90]}}"#, "minutes_per_appeal"),
            (r#"{"reviewers": {"minutes_per_appeal": [0, 10]}}"#, "minutes_per_appeal"),
            (r#"{"reviewers": {"error_rate_pct": 101}}"#, "reviewers.error_rate_pct"),
        ] {
            let e = Mix::with_overrides(over).unwrap_err().to_string();
            assert!(e.contains(named), "{over}: {e}");
        }
    }
}
