//! The run: plans every day's payments for every user from the seed, lets the adversaries
//! act on what the service answers, and keeps the ground truth of every payment for the
//! report. The order of events is fixed by the seed, so a run is reproducible.

use crate::clock::{Calendar, SimDay, DAY_MS, HOUR_MS, MINUTE_MS};
use crate::driver::{ChallengeEnd, Driver, PayRequest};
use crate::mix::Mix;
use crate::report::{Scenario, Tally, Truth};
use crate::world::{pick_popular, Category, MerchantSpec, UserClass, World, FAVOURITES};
use crate::SimError;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xiezhi_risk::Outcome;

mod appeals;

/// Most events waiting in the queue at once; a run that would need more is refused.
pub const MAX_QUEUED_EVENTS: usize = 50_000_000;
/// Largest population and longest run accepted.
pub const MAX_USERS: u32 = 5_000_000;
pub const MAX_MERCHANTS: u32 = 1_000_000;
pub const MAX_DAYS: u32 = 366;

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub users: u32,
    pub merchants: u32,
    pub days: u32,
    pub seed: u64,
    /// Days simulated before the measured ones and left out of the report, so the engine
    /// knows the shoppers as a live service would (history, trusted devices).
    pub warmup_days: u32,
    pub mix: Mix,
}

impl RunConfig {
    pub fn check(&self) -> Result<(), SimError> {
        if !(10..=MAX_USERS).contains(&self.users) {
            return Err(SimError::Config(format!("--users is from 10 to {MAX_USERS}")));
        }
        if !(1..=MAX_MERCHANTS).contains(&self.merchants) {
            return Err(SimError::Config(format!("--merchants is from 1 to {MAX_MERCHANTS}")));
        }
        if !(1..=MAX_DAYS).contains(&self.days) {
            return Err(SimError::Config(format!("--days is from 1 to {MAX_DAYS}")));
        }
        if self.warmup_days > 60 {
            return Err(SimError::Config("--warmup-days is at most 60".into()));
        }
        Ok(())
    }
}

/// Who is paying: the line's owner, or an attacker of incident `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Owner,
    Incident(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    /// Carrier NAT: the address moves every few minutes.
    Mobile,
    /// The shop's own wifi, shared by its customers.
    ShopWifi,
    /// A proxy or data-centre network used by attackers.
    Proxy(u16),
}

#[derive(Debug, Clone, Copy)]
struct PayPlan {
    /// Stable across configurations: seeds the payer's reactions.
    plan_id: u64,
    user: u32,
    merchant: u32,
    amount_minor: i64,
    scenario: Scenario,
    truth: Truth,
    actor: Actor,
    net: Net,
    device: Option<u64>,
    /// A retry sent without the key after a timeout.
    is_retry_of: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum EventKind {
    DayStart(u32),
    Hour,
    Pay(PayPlan),
    Repay(u32),
    Lift(u32),
    Incident(u32),
    OpenMerchant(u32),
    /// A shop refunds (part of) an honest purchase: a return.
    Refund(Refund),
    /// The owner of this user's line appeals its restriction.
    Appeal(u32),
    /// A reviewers' shift starts: they claim what waits.
    AppealDispatch,
    /// Reviewer (second) decides appeal (first).
    AppealDecide(u32, u32),
    /// Appeal's deadline: escalates if still undecided.
    AppealDeadline(u32),
}

#[derive(Debug, Clone, Copy)]
struct Refund {
    token: u64,
    user: u32,
    merchant: u32,
    /// What the purchase cost, and what comes back.
    paid_minor: i64,
    amount_minor: i64,
    /// The purchase's scenario, where the report counts the refund.
    scenario: Scenario,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    at_ms: i64,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.seq).cmp(&(other.at_ms, other.seq))
    }
}

#[derive(Debug, Clone, Default)]
struct UserState {
    /// Mirror of what the line owes and holds: the shopper's app shows the available credit.
    owed_minor: i64,
    phone_generation: u32,
    phone_changed_day: Option<u32>,
    trip: Option<(u8, u32)>,
    restricted_until_ms: i64,
    next_repay_day: u32,
    /// Stops repaying (defaulters after their spree, fraud rings, synthetic identities after
    /// the bust-out).
    never_repays: bool,
    /// A fraudster spending their own line: synthetic identity or defaulter.
    spree_from_day: Option<u32>,
    /// A line recruited into a mule network: lives as its owner did until then.
    mule_from_day: Option<u32>,
    /// The user's credit application was declined: no line, so no payment with credit.
    no_line: bool,
}

#[derive(Debug, Clone)]
enum IncidentKind {
    AccountTakeover {
        victim: u32,
        attempts: u32,
        stops: u32,
        drain_pct: u32,
        /// After a SIM swap: the thief receives the codes.
        sim_swap: bool,
    },
    /// Probing for the step-up amount: `known_ok` is the most that went through, `too_high`
    /// the least that was refused (0: none yet).
    Prober {
        victim: u32,
        attempts: u32,
        known_ok: i64,
        too_high: i64,
        first_ask_pct: u32,
    },
    CardTesting {
        victim: u32,
        tests_left: u32,
        tests_passed: u32,
        tests_done: u32,
    },
    /// The ring's purchases in time order: (member, when). Shared, not copied per step.
    Ring {
        /// The colluding merchants; member `m` pays at `merchants[m % len]`.
        merchants: std::rc::Rc<[u32]>,
        payments: std::rc::Rc<[(u32, i64)]>,
        next: usize,
    },
    SyntheticBustOut {
        user: u32,
        left: u32,
    },
    DefaultSpree {
        user: u32,
        until_day: u32,
    },
    CompromisedQr {
        real: u32,
        fraud: u32,
        until_ms: i64,
    },
    /// One mule line of a network: pays a colluding merchant, is refunded, pays again.
    Mule(MuleState),
    /// A shop's terminal showing the fraudster's codes from the incident's start.
    CompromisedTerminal {
        real: u32,
        fraud: u32,
        until_ms: i64,
        diverted_pct: u32,
    },
}

#[derive(Debug, Clone)]
struct MuleState {
    user: u32,
    /// The network's colluding merchants; the mule's payments go to each in turn.
    merchants: std::rc::Rc<[u32]>,
    /// Payments that went through, and the most before the merchant vanishes.
    paid: u32,
    cycles: u32,
    stops: u32,
    spend_pct: u32,
    /// A settled payment waiting for its refund: (token, merchant, amount still to come,
    /// parts still to come).
    refund: Option<(u64, u32, i64, u32)>,
}

impl IncidentKind {
    /// The honest owner whose line an attacker uses, if any.
    fn victim(&self) -> Option<u32> {
        match self {
            IncidentKind::AccountTakeover { victim, .. }
            | IncidentKind::Prober { victim, .. }
            | IncidentKind::CardTesting { victim, .. } => Some(*victim),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Incident {
    kind: IncidentKind,
    device: u64,
    proxy: u16,
    start_ms: i64,
    done: bool,
}

pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn rng_for(seed: u64, stream: u64, id: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(splitmix(seed ^ splitmix(stream.wrapping_mul(0x1000_0000_01B3) ^ id)))
}

/// Log-uniform amount in `[lo, hi]` minor units, rounded to whole fen; sometimes to whole
/// yuan, as prices are.
fn amount_in(rng: &mut fastrand::Rng, (lo, hi): (i64, i64)) -> i64 {
    let (l, h) = ((lo.max(1)) as f64, (hi.max(lo.max(1))) as f64);
    let a = (l.ln() + rng.f64() * (h.ln() - l.ln())).exp() as i64;
    let a = if rng.u8(..10) < 6 { (a / 100).max(1) * 100 } else { a };
    a.clamp(lo.max(1), hi.max(lo.max(1)))
}

fn poisson(rng: &mut fastrand::Rng, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    // Knuth's method: means here are small (at most tens).
    let limit = (-mean.min(60.0)).exp();
    let (mut k, mut p) = (0u32, 1.0f64);
    loop {
        p *= rng.f64();
        if p <= limit || k >= 200 {
            return k;
        }
        k += 1;
    }
}

const DEVICE_ATTACKER_BIT: u64 = 1 << 62;

/// Hears a payment's engine features and whether it was fraud.
type Exporter<'a> = Box<dyn FnMut(&xiezhi_risk::FeatureVector, bool) + 'a>;

pub struct Simulation<'a> {
    config: &'a RunConfig,
    calendar: Calendar,
    world: World,
    states: Vec<UserState>,
    incidents: Vec<Incident>,
    /// Follow-ups and anything past today: a heap.
    queue: BinaryHeap<Reverse<Event>>,
    /// Today's planned payments, sorted once: most events, and a heap would pay a log-factor
    /// of cache misses on each of them.
    today: Vec<Event>,
    today_cursor: usize,
    today_end_ms: i64,
    seq: u64,
    token: u64,
    /// Real merchant → (fraudster's merchant, until): a QR pasted over the real one.
    qr_overrides: HashMap<u32, (u32, i64)>,
    /// Real merchant → (fraudster's merchant, until, share diverted in %): a compromised
    /// terminal showing the fraudster's codes.
    terminal_overrides: HashMap<u32, (u32, i64, u32)>,
    festival_days: Vec<(u32, f64)>,
    pub tally: Tally,
    end_ms: i64,
    /// Start of the first measured day; earlier payments are warm-up.
    measure_from_ms: i64,
    total_days: u32,
    /// Hears every measured payment's engine features with its truth (fraud or not).
    exporter: Option<Exporter<'a>>,
    /// Appeals and the reviewers deciding them.
    desk: appeals::Desk,
}

impl<'a> Simulation<'a> {
    pub fn new(config: &'a RunConfig) -> Result<Simulation<'a>, SimError> {
        config.check()?;
        let mix = &config.mix;
        let start = crate::clock::parse_date(&mix.start_date).ok_or(SimError::Mix("bad start_date".into()))?;
        let warm = config.warmup_days;
        let first =
            start.checked_sub(jiff::Span::new().days(i64::from(warm))).map_err(|e| SimError::Mix(e.to_string()))?;
        let calendar = Calendar::new(first, mix.timezone_offset_minutes);
        let start_ms = calendar.day(warm).start_ms;
        let end_ms = calendar.day(warm + config.days).start_ms;
        let mut rng = rng_for(config.seed, 1, 0);
        let n = config.users;
        let a = &mix.adversaries;

        // Ground-truth classes: adversaries with their own lines take some of the users.
        let count = |per: f64, scale: f64| ((f64::from(n) * per / scale).round() as u32).min(n / 10);
        let synthetic = count(a.synthetic_identity.per_10k_users, 10_000.0);
        let defaulters = count(a.first_party_default.per_10k_users, 10_000.0);
        let rings = count(a.collusion_cash_out.rings_per_100k_users, 100_000.0);
        let mut ring_sizes = Vec::with_capacity(rings as usize);
        let mut ring_members_total = 0u32;
        for _ in 0..rings {
            let size = rng.u32(a.collusion_cash_out.members[0]..=a.collusion_cash_out.members[1]).max(1);
            if ring_members_total + size > n / 10 {
                break;
            }
            ring_members_total += size;
            ring_sizes.push(size);
        }
        let mut order: Vec<u32> = (0..n).collect();
        rng.shuffle(&mut order);
        let mut classes = vec![UserClass::Honest; n as usize];
        let mut cursor = 0usize;
        let mut take = |k: u32, class: UserClass, classes: &mut Vec<UserClass>| -> Vec<u32> {
            let picked: Vec<u32> = order[cursor..cursor + k as usize].to_vec();
            cursor += k as usize;
            for u in &picked {
                classes[*u as usize] = class;
            }
            picked
        };
        let synthetic_users = take(synthetic, UserClass::Fraud, &mut classes);
        let defaulter_users = take(defaulters, UserClass::Default, &mut classes);
        let ring_members: Vec<Vec<u32>> = ring_sizes.iter().map(|s| take(*s, UserClass::Fraud, &mut classes)).collect();
        let honest: Vec<u32> = order[cursor..].to_vec();

        // Shops and lines are as old as they are on the first simulated day, warm-up
        // included: aged from the measured start instead, a shop "opened two days ago" would
        // carry a week of warm-up takings, a history no real shop has (and one the fraud
        // model, trained without warm-up, had never seen on an honest shop).
        let world_start_ms = calendar.day(0).start_ms;
        let mut world = World::generate(mix, n, config.merchants, world_start_ms, &classes, &mut rng);
        if mix.credit.applications {
            // First-party defaulters and synthetic identities apply like the data's
            // defaulters; everyone else (ring members and future mules included) like those
            // who repaid. A stream of its own, so that the rest of the population is drawn
            // exactly as without applications.
            let applicants = crate::applicants::Applicants::load(&xiezhi_datasets::default_data_dir())?;
            let bad: HashSet<u32> = synthetic_users.iter().chain(&defaulter_users).copied().collect();
            let [lo, hi] = mix.credit.monthly_income_yuan;
            for u in world.users.iter_mut() {
                let mut draw = rng_for(config.seed, 17, u64::from(u.index));
                let answers = applicants.draw(bad.contains(&u.index), &mut draw);
                let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
                let yuan = ((l + draw.f64() * (h - l)).exp() / 100.0).round() as i64 * 100;
                let monthly_income_minor = yuan.clamp(lo, hi) * 100;
                u.application = Some(crate::applicants::ApplicationSpec { answers, monthly_income_minor });
            }
        }
        let mut states = vec![UserState::default(); n as usize];
        for (u, s) in world.users.iter().zip(states.iter_mut()) {
            s.next_repay_day = rng.u32(0..u.repay_every_days.max(1));
        }

        let mut sim = Simulation {
            config,
            calendar,
            world: World { merchants: Vec::new(), users: Vec::new(), by_city_category: Vec::new(), cities: Vec::new() },
            states,
            incidents: Vec::new(),
            queue: BinaryHeap::new(),
            today: Vec::new(),
            today_cursor: 0,
            today_end_ms: i64::MIN,
            seq: 0,
            token: 0,
            qr_overrides: HashMap::new(),
            terminal_overrides: HashMap::new(),
            festival_days: Vec::new(),
            tally: Tally::new(n as usize),
            end_ms,
            measure_from_ms: start_ms,
            total_days: warm + config.days,
            exporter: None,
            desk: appeals::Desk::default(),
        };
        for f in &mix.honest.festivals {
            if let Some(i) = crate::clock::parse_date(&f.date).and_then(|d| sim.calendar.index_of(d)) {
                sim.festival_days.push((i, f.multiplier));
            }
        }
        let days = config.days;
        let day_start = |sim: &Simulation, rng: &mut fastrand::Rng, lo: u32| -> i64 {
            let d = rng.u32(lo.min(days - 1)..days);
            sim.calendar.day(warm + d).start_ms
        };
        let pick_honest = |rng: &mut fastrand::Rng| honest[rng.usize(..honest.len().max(1))];
        if !honest.is_empty() {
            for (t, sim_swap) in [(&a.account_takeover, false), (&a.sim_swap_takeover, true)] {
                for _ in 0..count(t.per_10k_users, 10_000.0) {
                    let victim = pick_honest(&mut rng);
                    let at = day_start(&sim, &mut rng, 1) + rng.i64(0..DAY_MS);
                    let drain_pct = rng.u32(t.drain_share_pct[0]..=t.drain_share_pct[1]);
                    let kind = IncidentKind::AccountTakeover { victim, attempts: 0, stops: 0, drain_pct, sim_swap };
                    sim.add_incident(kind, at, &mut rng);
                }
            }
            let p = &a.step_up_prober;
            for _ in 0..count(p.per_10k_users, 10_000.0) {
                let victim = pick_honest(&mut rng);
                let at = day_start(&sim, &mut rng, 1) + rng.i64(0..DAY_MS);
                let first_ask_pct = rng.u32(p.first_ask_pct[0]..=p.first_ask_pct[1]);
                let kind = IncidentKind::Prober { victim, attempts: 0, known_ok: 0, too_high: 0, first_ask_pct };
                sim.add_incident(kind, at, &mut rng);
            }
            let testing = count(a.card_testing.per_10k_users, 10_000.0);
            for _ in 0..testing {
                let victim = pick_honest(&mut rng);
                let at = day_start(&sim, &mut rng, 1) + rng.i64(0..DAY_MS);
                let tests = rng.u32(a.card_testing.tiny_payments[0]..=a.card_testing.tiny_payments[1]);
                let kind = IncidentKind::CardTesting { victim, tests_left: tests, tests_passed: 0, tests_done: 0 };
                sim.add_incident(kind, at, &mut rng);
            }
            let qr = count(a.compromised_qr.per_100k_users, 100_000.0);
            for _ in 0..qr {
                // A busy everyday shop: the fraudster wants many payers.
                let city = world.users[pick_honest(&mut rng) as usize].city;
                let category = [Category::Breakfast, Category::Restaurant, Category::Coffee, Category::Convenience]
                    [rng.usize(..4)];
                let list = world.merchants_in(city, category);
                let real = list[rng.usize(..list.len().min(3))];
                let at = day_start(&sim, &mut rng, 1) + 7 * HOUR_MS + rng.i64(0..12 * HOUR_MS);
                let hours = rng.u32(a.compromised_qr.hours[0]..=a.compromised_qr.hours[1]).max(1);
                let fraud = world.merchants.len() as u32;
                let city_name = world.cities[city as usize].clone();
                world.merchants.push(MerchantSpec {
                    index: fraud,
                    city,
                    city_name,
                    category,
                    name: format!("Collection code #{fraud}"),
                    created_at_ms: at - rng.i64(HOUR_MS..48 * HOUR_MS),
                    colluder: false,
                    fraud_qr: true,
                });
                let kind = IncidentKind::CompromisedQr { real, fraud, until_ms: at + i64::from(hours) * HOUR_MS };
                sim.add_incident(kind, at, &mut rng);
            }
        }
        for members in ring_members {
            let category = [Category::Electronics, Category::Jewelry, Category::Apparel][rng.usize(..3)];
            let city = rng.u8(..world.cities.len() as u8);
            let list = world.merchants_in(city, category).to_vec();
            let merchant = list[rng.usize(..list.len())];
            world.merchants[merchant as usize].colluder = true;
            let c = &a.collusion_cash_out;
            let ring_days = rng.u32(c.ring_days[0]..=c.ring_days[1]).max(1);
            let start_day = warm + rng.u32(1.min(days - 1)..days);
            // More colluding shops (drawn only when the mix asks for more than one, so a mix
            // with one per ring draws exactly what it did before there could be more).
            let mut merchants = vec![merchant];
            let [lo, hi] = c.merchants_per_ring;
            if hi > 1 {
                let wanted = (rng.u32(lo..=hi) as usize).min(list.len());
                while merchants.len() < wanted {
                    let extra = list[rng.usize(..list.len())];
                    if !merchants.contains(&extra) {
                        world.merchants[extra as usize].colluder = true;
                        merchants.push(extra);
                    }
                }
            }
            let mut payments = Vec::new();
            for m in &members {
                world.users[*m as usize].city = city;
                sim.states[*m as usize].never_repays = true;
                for _ in 0..rng.u32(c.payments_per_member[0]..=c.payments_per_member[1]) {
                    let day = (start_day + rng.u32(..ring_days)).min(warm + days - 1);
                    let at = sim.calendar.day(day).start_ms + 10 * HOUR_MS + rng.i64(0..10 * HOUR_MS);
                    payments.push((*m, at));
                }
            }
            payments.sort_by_key(|(_, at)| *at);
            let at = payments.first().map_or(start_ms, |p| p.1);
            let kind = IncidentKind::Ring { merchants: merchants.into(), payments: payments.into(), next: 0 };
            sim.add_incident(kind, at, &mut rng);
        }
        for user in synthetic_users {
            let s = &a.synthetic_identity;
            let build = rng.u32(s.build_days[0]..=s.build_days[1]);
            // Opened days before the measured period, whatever the warm-up: its history is
            // built in `build_days`, and the line pays nothing before it opens.
            world.users[user as usize].opened_at_ms = start_ms - rng.i64(0..5) * DAY_MS;
            sim.states[user as usize].spree_from_day = Some(warm + build);
            if build < days {
                let at = sim.calendar.day(warm + build).start_ms + 11 * HOUR_MS + rng.i64(0..8 * HOUR_MS);
                let left = rng.u32(s.bust_out_payments[0]..=s.bust_out_payments[1]).max(1);
                sim.add_incident(IncidentKind::SyntheticBustOut { user, left }, at, &mut rng);
            }
        }
        for user in defaulter_users {
            let from = warm + rng.u32(1.min(days - 1)..days);
            let spend = rng.u32(a.first_party_default.spend_days[0]..=a.first_party_default.spend_days[1]).max(1);
            sim.states[user as usize].spree_from_day = Some(from);
            let at = sim.calendar.day(from).start_ms + 10 * HOUR_MS;
            let kind = IncidentKind::DefaultSpree { user, until_day: from + spend };
            sim.add_incident(kind, at, &mut rng);
        }
        // The newer adversaries draw from a stream of their own, after every other incident
        // is placed, so that adding them leaves the older ones exactly as they were.
        let mut newer = rng_for(config.seed, 15, 0);
        sim.add_mule_networks(&mut world, &honest, &mut newer);
        sim.add_compromised_terminals(&mut world, &honest, &mut newer);
        for i in 0..sim.incidents.len() {
            let at = sim.incidents[i].start_ms;
            sim.push(at, EventKind::Incident(i as u32));
        }
        sim.tally.set_classes(&world.users.iter().map(|u| u.class).collect::<Vec<_>>());
        sim.world = world;
        Ok(sim)
    }

    /// A random day of the measured run from day `lo` on: its midnight.
    fn measured_day_start(&self, rng: &mut fastrand::Rng, lo: u32) -> i64 {
        let (warm, days) = (self.config.warmup_days, self.config.days);
        self.calendar.day(warm + rng.u32(lo.min(days - 1)..days)).start_ms
    }

    /// Mule networks: honest lines recruited on the network's first day (they shop as before
    /// until then), and established shops of their city that collude.
    fn add_mule_networks(&mut self, world: &mut World, honest: &[u32], rng: &mut fastrand::Rng) {
        let m = &self.config.mix.adversaries.mule_refund_network;
        let networks = (f64::from(self.config.users) * m.networks_per_100k_users / 100_000.0).round() as u32;
        let victims: HashSet<u32> = self.incidents.iter().filter_map(|i| i.kind.victim()).collect();
        let mut recruited = 0usize;
        for _ in 0..networks {
            let city = world.users[honest[rng.usize(..honest.len())] as usize].city;
            let wanted = rng.u32(m.mules[0]..=m.mules[1]) as usize;
            // Recruited where the network lives, never someone already robbed here.
            let mut pool: Vec<u32> = honest
                .iter()
                .copied()
                .filter(|u| {
                    world.users[*u as usize].city == city && world.users[*u as usize].class == UserClass::Honest
                })
                .filter(|u| !victims.contains(u))
                .collect();
            if wanted == 0 || recruited + wanted > honest.len() / 20 || pool.len() < wanted {
                break;
            }
            recruited += wanted;
            rng.shuffle(&mut pool);
            let category = [Category::Electronics, Category::Apparel, Category::Jewelry][rng.usize(..3)];
            let list = world.merchants_in(city, category).to_vec();
            let mut merchants: Vec<u32> = Vec::new();
            let wanted_merchants =
                (rng.u32(m.merchants_per_network[0]..=m.merchants_per_network[1]) as usize).min(list.len());
            while merchants.len() < wanted_merchants.max(1) {
                let pick = list[rng.usize(..list.len())];
                if !merchants.contains(&pick) {
                    merchants.push(pick);
                }
            }
            for pick in &merchants {
                world.merchants[*pick as usize].colluder = true;
            }
            let merchants: std::rc::Rc<[u32]> = merchants.into();
            let day = self.measured_day_start(rng, 1);
            for user in pool.into_iter().take(wanted) {
                world.users[user as usize].class = UserClass::Fraud;
                let first_day = ((day - self.calendar.day(0).start_ms) / DAY_MS) as u32;
                self.states[user as usize].mule_from_day = Some(first_day);
                let mule = MuleState {
                    user,
                    merchants: std::rc::Rc::clone(&merchants),
                    paid: 0,
                    cycles: rng.u32(m.cycles[0]..=m.cycles[1]).max(1),
                    stops: 0,
                    spend_pct: rng.u32(m.spend_share_pct[0]..=m.spend_share_pct[1]).max(1),
                    refund: None,
                };
                let at = day + 10 * HOUR_MS + rng.i64(0..10 * HOUR_MS);
                self.add_incident(IncidentKind::Mule(mule), at, rng);
            }
        }
    }

    /// Compromised terminals at the busiest established shops, each diverting to a payee
    /// account of the fraudster's (registered elsewhere, `payee_age_days` before).
    fn add_compromised_terminals(&mut self, world: &mut World, honest: &[u32], rng: &mut fastrand::Rng) {
        let t = &self.config.mix.adversaries.compromised_terminal;
        let terminals = (f64::from(self.config.users) * t.per_100k_users / 100_000.0).round() as u32;
        let established_before = self.measure_from_ms - 180 * DAY_MS;
        for _ in 0..terminals {
            if honest.is_empty() {
                break;
            }
            let city = world.users[honest[rng.usize(..honest.len())] as usize].city;
            let category = [Category::Supermarket, Category::Convenience, Category::Restaurant, Category::Pharmacy]
                [rng.usize(..4)];
            let list = world.merchants_in(city, category);
            // A terminal is worth compromising where many pay: one of the busiest shops.
            let busiest: Vec<u32> = list
                .iter()
                .copied()
                .filter(|m| world.merchants[*m as usize].created_at_ms < established_before)
                .take(3)
                .collect();
            let real = if busiest.is_empty() { list[0] } else { busiest[rng.usize(..busiest.len())] };
            let at = self.measured_day_start(rng, 1) + 8 * HOUR_MS + rng.i64(0..10 * HOUR_MS);
            let hours = rng.u32(t.hours[0]..=t.hours[1]).max(1);
            let diverted_pct = rng.u32(t.diverted_pct[0]..=t.diverted_pct[1]).clamp(1, 100);
            let age_days = rng.u32(t.payee_age_days[0]..=t.payee_age_days[1]);
            let payee_city = rng.u8(..world.cities.len() as u8);
            let fraud = world.merchants.len() as u32;
            world.merchants.push(MerchantSpec {
                index: fraud,
                city: payee_city,
                city_name: world.cities[payee_city as usize].clone(),
                category,
                name: format!("Terminal payee #{fraud}"),
                created_at_ms: at - i64::from(age_days) * DAY_MS - rng.i64(HOUR_MS..DAY_MS),
                colluder: false,
                fraud_qr: true,
            });
            let until_ms = at + i64::from(hours) * HOUR_MS;
            let kind = IncidentKind::CompromisedTerminal { real, fraud, until_ms, diverted_pct };
            self.add_incident(kind, at, rng);
        }
    }

    fn add_incident(&mut self, kind: IncidentKind, start_ms: i64, rng: &mut fastrand::Rng) {
        let i = self.incidents.len() as u64;
        self.incidents.push(Incident {
            kind,
            device: DEVICE_ATTACKER_BIT | (i << 8) | u64::from(rng.u8(..)),
            proxy: rng.u16(..40),
            start_ms,
            done: false,
        });
    }

    fn push(&mut self, at_ms: i64, kind: EventKind) {
        assert!(self.queue.len() + self.today.len() < MAX_QUEUED_EVENTS, "event queue over its limit");
        self.seq += 1;
        self.queue.push(Reverse(Event { at_ms, seq: self.seq, kind }));
    }

    /// A payment planned at the start of its day.
    fn plan(&mut self, at_ms: i64, plan: PayPlan) {
        if at_ms < self.today_end_ms {
            assert!(self.today.len() < MAX_QUEUED_EVENTS, "event queue over its limit");
            self.seq += 1;
            self.today.push(Event { at_ms, seq: self.seq, kind: EventKind::Pay(plan) });
        } else {
            self.push(at_ms, EventKind::Pay(plan));
        }
    }

    fn next_event(&mut self) -> Option<Event> {
        let planned = self.today.get(self.today_cursor);
        let take_planned = match (planned, self.queue.peek()) {
            (Some(p), Some(Reverse(q))) => p < q,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_planned {
            self.today_cursor += 1;
            Some(self.today[self.today_cursor - 1])
        } else {
            self.queue.pop().map(|Reverse(e)| e)
        }
    }

    /// Sends every measured payment's features and truth to `exporter` (the driver must
    /// expose them: `Bank::keep_features`).
    pub fn export_features(&mut self, exporter: impl FnMut(&xiezhi_risk::FeatureVector, bool) + 'a) {
        self.exporter = Some(Box::new(exporter));
    }

    /// The first simulated midnight (warm-up included), Unix ms.
    pub fn start_ms(&self) -> i64 {
        self.calendar.day(0).start_ms
    }

    /// Payments sent so far, warm-up included.
    pub fn executed_payments(&self) -> u64 {
        self.token
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Runs every day through `driver`. `progress` hears each finished day.
    pub fn run(&mut self, driver: &mut dyn Driver, progress: &mut dyn FnMut(u32, u64)) -> Result<(), SimError> {
        let start_ms = self.calendar.day(0).start_ms;
        let warm = self.config.warmup_days;
        // Shops opened during the warm-up are registered from the start (their age reads as
        // zero until then); a fraudster's account appears when it is created.
        for m in self.world.merchants.iter().filter(|m| !m.fraud_qr) {
            driver.add_merchant(m, start_ms)?;
        }
        let fraud_merchants: Vec<(u32, i64)> =
            self.world.merchants.iter().filter(|m| m.fraud_qr).map(|m| (m.index, m.created_at_ms)).collect();
        for (index, at) in fraud_merchants {
            self.push(at, EventKind::OpenMerchant(index));
        }
        for i in 0..self.world.users.len() {
            let u = &self.world.users[i];
            let opened = driver.open_line(u, start_ms)?;
            self.tally.line_opened(u.class, u.application.is_some(), opened);
            match opened {
                // The line the service granted: what the shopper's app shows.
                Some(limit_minor) => self.world.users[i].limit_minor = limit_minor,
                None => self.states[i].no_line = true,
            }
        }
        self.push(start_ms, EventKind::DayStart(0));
        self.push(start_ms + HOUR_MS, EventKind::Hour);
        let mut day_done = 0u32;
        while let Some(event) = self.next_event() {
            if event.at_ms >= self.end_ms {
                // Kept (with its place in the order) for the users still recovering.
                self.queue.push(Reverse(event));
                break;
            }
            match event.kind {
                EventKind::DayStart(d) => {
                    if d > warm {
                        progress(d - 1 - warm, self.tally.overall_payments());
                        day_done = d - warm;
                    }
                    self.plan_day(d);
                    if d + 1 < self.total_days {
                        let next = self.calendar.day(d + 1).start_ms;
                        self.push(next, EventKind::DayStart(d + 1));
                    }
                }
                EventKind::Hour => {
                    driver.tick(event.at_ms)?;
                    self.push(event.at_ms + HOUR_MS, EventKind::Hour);
                }
                EventKind::Pay(plan) => self.pay(driver, plan, event.at_ms)?,
                EventKind::Repay(user) => self.repay(driver, user, event.at_ms)?,
                EventKind::Lift(user) => self.lift_with_code(driver, user, event.at_ms)?,
                EventKind::Incident(i) => self.incident_step(driver, i, event.at_ms)?,
                EventKind::Refund(refund) => self.honest_refund(driver, refund, event.at_ms)?,
                EventKind::OpenMerchant(m) => {
                    let spec = self.world.merchants[m as usize].clone();
                    driver.add_merchant(&spec, event.at_ms)?;
                }
                EventKind::Appeal(user) => self.file_appeal(driver, user, event.at_ms)?,
                EventKind::AppealDispatch => self.dispatch_appeals(driver, event.at_ms)?,
                EventKind::AppealDecide(case, reviewer) => self.decide_appeal(driver, case, reviewer, event.at_ms)?,
                EventKind::AppealDeadline(case) => self.appeal_deadline(driver, case, event.at_ms)?,
            }
        }
        self.recover_after_the_end(driver)?;
        progress(day_done, self.tally.overall_payments());
        Ok(())
    }

    /// The owner answers the code sent with the restriction, if it is still in force.
    fn lift_with_code(&mut self, driver: &mut dyn Driver, user: u32, now_ms: i64) -> Result<(), SimError> {
        let s = &self.states[user as usize];
        if s.restricted_until_ms > now_ms && driver.lift_restriction(user, now_ms)? {
            self.states[user as usize].restricted_until_ms = 0;
            self.tally.restriction_lifted(user, now_ms);
        }
        Ok(())
    }

    fn day(&self, d: u32) -> SimDay {
        self.calendar.day(d)
    }

    fn plan_day(&mut self, d: u32) {
        let day = self.day(d);
        assert_eq!(self.today_cursor, self.today.len(), "yesterday's plan ran before midnight");
        self.today.clear();
        self.today_cursor = 0;
        self.today_end_ms = self.day(d + 1).start_ms;
        let config: &'a RunConfig = self.config;
        let h = &config.mix.honest;
        let festival = self.festival_days.iter().find(|(i, _)| *i == d).map(|(_, m)| *m);
        let salary = h.salary_days.contains(&day.day_of_month);
        let multiplier = festival.unwrap_or(1.0) * if salary { h.salary_day_multiplier } else { 1.0 };
        let ncities = self.world.cities.len() as u8;
        let mut pending: Vec<(i64, PayPlan)> = Vec::new();
        for u in 0..self.config.users {
            let mut rng = rng_for(self.config.seed, 2 + u64::from(d), u64::from(u));
            let mut plan_id = (u64::from(d) << 40) | (u64::from(u) << 8);
            let spec = &self.world.users[u as usize];
            let class = spec.class;
            if spec.opened_at_ms > day.start_ms + DAY_MS {
                continue;
            }
            let state = &mut self.states[u as usize];
            let in_spree = state.spree_from_day.is_some_and(|s| d >= s);
            let recruited = state.mule_from_day.is_some_and(|m| d >= m);
            if class == UserClass::Fraud && (state.never_repays || in_spree || recruited) {
                // Ring members and busted-out identities only act through their incidents.
                continue;
            }
            // Repayment of the statement, late for some.
            if d == state.next_repay_day {
                state.next_repay_day = d + spec.repay_every_days.max(1);
                let late = u64::from(spec.late_days);
                let at = day.start_ms + late as i64 * DAY_MS + 19 * HOUR_MS + rng.i64(0..3 * HOUR_MS);
                if !(class == UserClass::Default && in_spree) {
                    self.push(at, EventKind::Repay(u));
                }
            }
            let state = &mut self.states[u as usize];
            let spec = &self.world.users[u as usize];
            if class == UserClass::Default && in_spree {
                continue;
            }
            // Life events: a new phone, a trip.
            if rng.f64() < h.new_phone_per_month / 30.0 {
                state.phone_generation += 1;
                state.phone_changed_day = Some(d);
            }
            if state.trip.is_some_and(|(_, until)| d >= until) {
                state.trip = None;
            }
            if state.trip.is_none() && ncities > 1 && rng.f64() < h.trips_per_month / 30.0 {
                let mut city = rng.u8(..ncities);
                if city == spec.city {
                    city = (city + 1) % ncities;
                }
                state.trip = Some((city, d + rng.u32(h.trip_days[0]..=h.trip_days[1]).max(1)));
            }
            let travelling = state.trip.map(|(c, _)| c);
            let new_phone = state.phone_changed_day.is_some_and(|p| d <= p + 7);
            let truth = match class {
                UserClass::Honest => Truth::Honest,
                _ => Truth::Setup,
            };
            let city = travelling.unwrap_or(spec.city);
            let mut plans: Vec<(i64, Category, Scenario)> = Vec::new();
            let base = if travelling.is_some() {
                Scenario::Travel
            } else if new_phone {
                Scenario::NewPhone
            } else if festival.is_some() {
                Scenario::Festival
            } else if salary {
                Scenario::SalaryDay
            } else {
                Scenario::Routine
            };
            // A mule not yet recruited shops as the owner always did.
            let synthetic_build = class == UserClass::Fraud && state.mule_from_day.is_none();
            if synthetic_build {
                for _ in 0..poisson(&mut rng, self.config.mix.adversaries.synthetic_identity.build_payments_per_day) {
                    let c = [Category::Convenience, Category::Coffee, Category::Restaurant, Category::Supermarket]
                        [rng.usize(..4)];
                    plans.push((rng.i64(9 * HOUR_MS..21 * HOUR_MS), c, Scenario::SyntheticIdentity));
                }
            } else {
                if spec.commuter && !day.weekend && travelling.is_none() {
                    if rng.f64() < h.breakfast_prob {
                        plans.push((rng.i64(7 * HOUR_MS..9 * HOUR_MS), Category::Breakfast, base));
                    }
                    if rng.f64() < h.metro_prob {
                        plans.push((rng.i64(7 * HOUR_MS + 30 * MINUTE_MS..9 * HOUR_MS), Category::Metro, base));
                        plans.push((rng.i64(17 * HOUR_MS + 30 * MINUTE_MS..20 * HOUR_MS), Category::Metro, base));
                    }
                    if rng.f64() < h.lunch_prob {
                        plans.push((rng.i64(11 * HOUR_MS + 30 * MINUTE_MS..13 * HOUR_MS), Category::Restaurant, base));
                    }
                }
                let n = poisson(&mut rng, h.discretionary_per_day * f64::from(spec.activity) * multiplier);
                for _ in 0..n {
                    let c = discretionary_category(&mut rng, spec.car_owner, day.weekend);
                    let at = if festival.is_some() && rng.u8(..10) < 3 {
                        // Double 11 opens at midnight.
                        rng.i64(0..HOUR_MS)
                    } else {
                        time_of(&mut rng, c)
                    };
                    let scenario =
                        if matches!(c, Category::Electronics | Category::Jewelry) && base == Scenario::Routine {
                            Scenario::LargePurchase
                        } else {
                            base
                        };
                    plans.push((at, c, scenario));
                }
                if day.weekend && rng.f64() < h.weekend_mall_prob {
                    let mut at = rng.i64(13 * HOUR_MS..17 * HOUR_MS);
                    for _ in 0..rng.u32(2..=4) {
                        let c = [Category::Apparel, Category::Restaurant, Category::Cinema, Category::Coffee]
                            [rng.usize(..4)];
                        let s = if base == Scenario::Routine { Scenario::WeekendMall } else { base };
                        plans.push((at, c, s));
                        at += rng.i64(15 * MINUTE_MS..60 * MINUTE_MS);
                    }
                }
                let stroll_prob = h.market_stroll_prob * if day.weekend { 2.0 } else { 1.0 };
                if rng.f64() < stroll_prob {
                    let mut at = rng.i64(8 * HOUR_MS..11 * HOUR_MS);
                    let stalls = self.world.merchants_in(city, Category::MarketStall);
                    let first = rng.usize(..stalls.len());
                    for k in 0..rng.usize(4..=10) {
                        let merchant = stalls[(first + k) % stalls.len()];
                        let amount = if rng.f64() < h.market_tiny_payment_prob {
                            rng.i64(50..=200)
                        } else {
                            amount_in(&mut rng, Category::MarketStall.amount_range_minor())
                        };
                        plan_id += 1;
                        let plan = PayPlan {
                            plan_id,
                            user: u,
                            merchant,
                            amount_minor: amount,
                            scenario: Scenario::MarketStroll,
                            truth,
                            actor: Actor::Owner,
                            net: Net::Mobile,
                            device: None,
                            is_retry_of: None,
                        };
                        pending.push((day.start_ms + at, plan));
                        at += rng.i64(2 * MINUTE_MS..6 * MINUTE_MS);
                    }
                }
            }
            let spec = &self.world.users[u as usize];
            for (at, category, mut scenario) in plans {
                let favourite = rng.f64() >= h.new_merchant_prob;
                let merchant = if travelling.is_some() || !favourite {
                    let list = self.world.merchants_in(city, category);
                    if travelling.is_none() && scenario == Scenario::Routine {
                        scenario = Scenario::NewMerchant;
                    }
                    list[pick_popular(&mut rng, list.len())]
                } else {
                    let c = crate::world::category_index(category);
                    spec.favourites[c * FAVOURITES + pick_popular(&mut rng, FAVOURITES)]
                };
                let amount = amount_in(&mut rng, category.amount_range_minor());
                let net = if category == Category::Metro || rng.f64() < h.mobile_data_share {
                    Net::Mobile
                } else {
                    Net::ShopWifi
                };
                plan_id += 1;
                let plan = PayPlan {
                    plan_id,
                    user: u,
                    merchant,
                    amount_minor: amount,
                    scenario,
                    truth,
                    actor: Actor::Owner,
                    net,
                    device: None,
                    is_retry_of: None,
                };
                pending.push((day.start_ms + at, plan));
            }
            for (at, plan) in pending.drain(..) {
                self.plan(at, plan);
            }
        }
        self.today.sort_unstable();
    }

    fn repay(&mut self, driver: &mut dyn Driver, user: u32, now_ms: i64) -> Result<(), SimError> {
        let s = &self.states[user as usize];
        if s.never_repays || s.owed_minor <= 0 {
            return Ok(());
        }
        let repaid = driver.repay(user, s.owed_minor, now_ms)?;
        self.states[user as usize].owed_minor -= repaid;
        Ok(())
    }

    fn address(&self, plan: &PayPlan, now_ms: i64) -> (IpAddr, &'static str) {
        match plan.net {
            Net::Mobile => {
                let spec = &self.world.users[plan.user as usize];
                let minutes = i64::from(self.config.mix.honest.mobile_ip_change_minutes.max(1));
                let slot = (now_ms / (minutes * MINUTE_MS)) as u64;
                let carrier = (plan.user % 3) as u8;
                let city = self.states[plan.user as usize].trip.map_or(spec.city, |(c, _)| c);
                let h = splitmix(u64::from(plan.user) << 32 ^ slot);
                // Each carrier hands out addresses from a pool of /24s per city.
                let ip = Ipv4Addr::new(100, 64 + carrier * 16 + city % 16, (h & 0xFF) as u8, ((h >> 8) as u8).max(1));
                (IpAddr::V4(ip), if carrier == 0 { "5g" } else { "4g" })
            }
            Net::ShopWifi => {
                // At a compromised terminal the shopper stands in the real shop, on its wifi.
                let m = if plan.scenario == Scenario::CompromisedTerminal {
                    self.terminal_overrides
                        .iter()
                        .find(|(_, v)| v.0 == plan.merchant)
                        .map_or(plan.merchant, |(r, _)| *r)
                } else {
                    plan.merchant
                };
                let ip = Ipv6Addr::new(0xfd00, (m >> 16) as u16, m as u16, 0, 0, 0, 0, 1 + (plan.user % 200) as u16);
                (IpAddr::V6(ip), "wifi")
            }
            Net::Proxy(p) => {
                let h = splitmix(now_ms as u64);
                (IpAddr::V4(Ipv4Addr::new(45, 80 + (p % 40) as u8, (p / 40) as u8, (h as u8).max(1))), "wifi")
            }
        }
    }

    fn available(&self, user: u32) -> i64 {
        self.world.users[user as usize].limit_minor - self.states[user as usize].owed_minor
    }

    fn next_token(&mut self) -> u64 {
        self.token += 1;
        self.token
    }

    /// Sends one payment and plays the payer's side of what comes back. Returns whether the
    /// payment ended authorized.
    fn pay(&mut self, driver: &mut dyn Driver, mut plan: PayPlan, now_ms: i64) -> Result<(), SimError> {
        self.pay_inner(driver, &mut plan, now_ms).map(|_| ())
    }

    /// What happens to an owner's payment before it is sent: a pasted code or a compromised
    /// terminal at the shop changes the payee; a shopper without the credit pays another way.
    /// Returns whether the payment is sent.
    fn owner_reroutes(&mut self, plan: &mut PayPlan, now_ms: i64) -> bool {
        // A QR code pasted over this merchant's sends the money to the fraudster.
        if let Some((fraud, until)) = self.qr_overrides.get(&plan.merchant).copied() {
            if now_ms < until {
                plan.merchant = fraud;
                if plan.truth == Truth::Honest {
                    plan.truth = Truth::Fraud;
                    plan.scenario = Scenario::CompromisedQr;
                }
            }
        }
        // The shopper sees the available credit in the app and pays another way when it
        // is not enough.
        if plan.amount_minor > self.available(plan.user) && plan.truth != Truth::Fraud {
            if now_ms >= self.measure_from_ms {
                self.tally.skipped_no_credit(plan.truth);
            }
            return false;
        }
        // The shop's compromised terminal shows the fraudster's code for this purchase.
        if let Some((fraud, until, pct)) = self.terminal_overrides.get(&plan.merchant).copied() {
            if now_ms < until && rng_for(self.config.seed, 14, plan.plan_id).u32(..100) < pct {
                plan.merchant = fraud;
                if plan.truth == Truth::Honest {
                    plan.truth = Truth::Fraud;
                    plan.scenario = Scenario::CompromisedTerminal;
                }
            }
        }
        true
    }

    fn pay_inner(&mut self, driver: &mut dyn Driver, plan: &mut PayPlan, now_ms: i64) -> Result<bool, SimError> {
        if self.states[plan.user as usize].no_line {
            // An applicant the service declined has no line: nobody pays with it, its owner
            // nor anyone who stole its credentials.
            return Ok(false);
        }
        let config: &'a RunConfig = self.config;
        let h = &config.mix.honest;
        let mut react = rng_for(self.config.seed, 7, plan.plan_id);
        if plan.actor == Actor::Owner && !self.owner_reroutes(plan, now_ms) {
            return Ok(false);
        }
        let device = match plan.actor {
            Actor::Owner => {
                Some((u64::from(plan.user) << 16) | u64::from(self.states[plan.user as usize].phone_generation))
            }
            Actor::Incident(_) => plan.device,
        };
        let (ip, network) = self.address(plan, now_ms);
        let token = self.next_token();
        let request = PayRequest {
            token,
            user: plan.user,
            merchant: plan.merchant,
            amount_minor: plan.amount_minor,
            device,
            ip: Some(ip),
            network: Some(network),
            now_ms,
            // Shops show their static codes; a compromised terminal, and a colluding merchant
            // sending its mules a code, show dynamic ones with the amount in them.
            dynamic_code: matches!(plan.scenario, Scenario::CompromisedTerminal | Scenario::MuleRefundNetwork),
        };
        let result = driver.pay(&request)?;
        let mut approved = result.outcome == Outcome::Approve;
        // Whoever holds the line owner's phone number gets the code: the owner, the
        // fraudsters who opened the line themselves (synthetic identities, ring members), a
        // recruited mule, and a thief who swapped the owner's SIM.
        let knows_code = match plan.actor {
            Actor::Owner => true,
            Actor::Incident(_) => matches!(
                plan.scenario,
                Scenario::SyntheticIdentity
                    | Scenario::CollusionCashOut
                    | Scenario::SimSwapTakeover
                    | Scenario::MuleRefundNetwork
            ),
        };
        match result.outcome {
            Outcome::StepUp => {
                let answer_at = now_ms + react.i64(20_000..90_000);
                let payee_check = result.reason_codes.iter().any(|c| c == "merchant_qr_suspicious");
                let pasted_qr = self.world.merchants[plan.merchant as usize].fraud_qr;
                let end = if payee_check
                    && pasted_qr
                    && plan.actor == Actor::Owner
                    && react.f64() < h.payee_check_catches_prob
                {
                    // Asked to check the payee with the merchant, the payer finds the pasted code.
                    driver.answer_challenge(token, 0, false, answer_at)?
                } else if knows_code {
                    // The owner gets the code: passes, with a typo now and then, or gives up.
                    if react.f64() < h.challenge_pass_prob {
                        let typo = u32::from(react.f64() < h.challenge_typo_prob);
                        driver.answer_challenge(token, typo, true, answer_at)?
                    } else {
                        driver.answer_challenge(token, 0, false, answer_at)?
                    }
                } else {
                    // An attacker never has the code.
                    let wrong = react.u32(1..=3);
                    driver.answer_challenge(token, wrong, false, answer_at)?
                };
                approved = end == ChallengeEnd::Approved;
            }
            Outcome::Restrict => {
                if let Some(until) = result.restricted_until_ms {
                    let owner_class = self.world.users[plan.user as usize].class;
                    // Wrong when an honest owner's own payment set it off; a restriction that
                    // stops an attacker on a victim's line is the protection working.
                    let wrongly = owner_class == UserClass::Honest && plan.actor == Actor::Owner;
                    self.states[plan.user as usize].restricted_until_ms = until;
                    // The owner is told and, often, answers the code to lift it; who does not
                    // may appeal (fraudsters on their own lines too).
                    if owner_class == UserClass::Honest && react.f64() < h.lift_restriction_prob {
                        let [lo, hi] = h.lift_delay_minutes;
                        let at = now_ms + i64::from(react.u32(lo..=hi.max(lo))) * MINUTE_MS;
                        if at < until {
                            self.push(at, EventKind::Lift(plan.user));
                        }
                    } else {
                        self.maybe_appeal(plan.user, plan.plan_id, now_ms);
                    }
                    if wrongly && now_ms >= self.measure_from_ms {
                        self.tally.honest_restriction_started(plan.user, plan.scenario, now_ms, until);
                    }
                }
            }
            _ => {}
        }
        if approved {
            self.states[plan.user as usize].owed_minor += plan.amount_minor;
        }
        let measured = now_ms >= self.measure_from_ms;
        if measured {
            if let (Some(export), Some(features)) = (self.exporter.as_mut(), driver.last_features()) {
                export(features, plan.truth == Truth::Fraud);
            }
            self.tally.record(
                plan.scenario,
                plan.truth,
                plan.user,
                plan.amount_minor,
                result.outcome,
                approved,
                result.latency_ns,
                result.reason_codes.first().map(String::as_str),
            );
            if let Some(watched) = result.challenger_outcome {
                self.tally.record_watch(plan.truth, plan.amount_minor, result.outcome, watched);
            }
        }
        // A timeout on the client: retried with the same key (the service answers the same),
        // or sent again as a new request, in which case a duplicate is voided.
        let retries = plan.actor == Actor::Owner && matches!(plan.truth, Truth::Honest | Truth::Setup);
        if retries && plan.is_retry_of.is_none() && react.f64() < h.timeout_prob {
            if react.f64() < h.retry_with_same_key_share {
                // The same request again, same key: the service must answer as it did.
                let again = driver.resend(token, now_ms + react.i64(2_000..10_000))?;
                if measured {
                    self.tally.retry_with_same_key(again.outcome == result.outcome);
                }
                if approved {
                    self.settle(driver, plan, token, now_ms)?;
                }
            } else {
                let mut retry = *plan;
                retry.plan_id = plan.plan_id ^ (1 << 39);
                retry.is_retry_of = Some(token);
                retry.scenario = Scenario::RetryAfterTimeout;
                let at = now_ms + react.i64(5_000..20_000);
                let retry_approved = self.pay_inner(driver, &mut retry, at)?;
                if approved && retry_approved {
                    // The app sees two authorizations for one purchase and cancels the first.
                    driver.void(token, at)?;
                    self.states[plan.user as usize].owed_minor -= plan.amount_minor;
                } else if approved {
                    self.settle(driver, plan, token, now_ms)?;
                }
            }
        } else if approved {
            self.settle(driver, plan, token, now_ms)?;
        }
        Ok(approved)
    }

    /// The merchant settles an approved payment; now and then an honest shopper takes the
    /// goods back later and the shop refunds them (in full, or part of it).
    fn settle(&mut self, driver: &mut dyn Driver, plan: &PayPlan, token: u64, now_ms: i64) -> Result<(), SimError> {
        driver.capture(token, now_ms)?;
        let h = &self.config.mix.honest;
        let category = self.world.merchants[plan.merchant as usize].category;
        let returnable =
            matches!(category, Category::Apparel | Category::Electronics | Category::Jewelry | Category::Bookstore);
        if plan.actor != Actor::Owner || plan.truth != Truth::Honest || !returnable || h.refund_prob <= 0.0 {
            return Ok(());
        }
        // A stream of its own: refunds change no other draw of the run.
        let mut rng = rng_for(self.config.seed, 13, plan.plan_id);
        if rng.f64() >= h.refund_prob {
            return Ok(());
        }
        let [lo, hi] = h.refund_after_days;
        let at = now_ms + i64::from(rng.u32(lo..=hi.max(lo))) * DAY_MS + rng.i64(HOUR_MS..8 * HOUR_MS);
        let amount_minor = if rng.f64() < h.partial_refund_share {
            (plan.amount_minor * i64::from(rng.u32(20..=90)) / 100).max(1)
        } else {
            plan.amount_minor
        };
        if at < self.end_ms {
            driver.keep_for_refund(token, plan.user, plan.merchant);
            let (user, merchant, paid_minor, scenario) = (plan.user, plan.merchant, plan.amount_minor, plan.scenario);
            let refund = Refund { token, user, merchant, paid_minor, amount_minor, scenario };
            self.push(at, EventKind::Refund(refund));
        }
        Ok(())
    }

    /// The shop refunds an honest purchase: the shopper's credit comes back. Some returns are
    /// exchanges: another purchase at the same shop minutes later.
    fn honest_refund(&mut self, driver: &mut dyn Driver, refund: Refund, now_ms: i64) -> Result<(), SimError> {
        if !driver.refund(refund.token, refund.amount_minor, now_ms)? {
            return Ok(());
        }
        self.refunded(refund.user, refund.scenario, refund.amount_minor, now_ms);
        let mut rng = rng_for(self.config.seed, 16, refund.token);
        if rng.f64() >= self.config.mix.honest.exchange_share {
            return Ok(());
        }
        let net = if rng.f64() < self.config.mix.honest.mobile_data_share { Net::Mobile } else { Net::ShopWifi };
        // Another size or model, priced like what the shop sells.
        let (lo, hi) = self.world.merchants[refund.merchant as usize].category.amount_range_minor();
        let plan = PayPlan {
            plan_id: (1 << 62) | refund.token,
            user: refund.user,
            merchant: refund.merchant,
            amount_minor: (refund.paid_minor * i64::from(rng.u32(70..=130)) / 100).clamp(lo, hi),
            scenario: refund.scenario,
            truth: Truth::Honest,
            actor: Actor::Owner,
            net,
            device: None,
            is_retry_of: None,
        };
        self.push(now_ms + rng.i64(2 * MINUTE_MS..30 * MINUTE_MS), EventKind::Pay(plan));
        Ok(())
    }

    /// A refund the service took: the line owes that much less (what it no longer owes
    /// becomes a credit balance in the books, which the app does not offer to spend).
    fn refunded(&mut self, user: u32, scenario: Scenario, amount_minor: i64, now_ms: i64) {
        let owed = &mut self.states[user as usize].owed_minor;
        *owed -= amount_minor.min((*owed).max(0));
        if now_ms >= self.measure_from_ms {
            self.tally.refunded(scenario, amount_minor);
        }
    }

    /// A prober's next ask: the first share of the line; after a refusal, halfway between
    /// what passed and what did not; once something passed, just under it again.
    fn probe_amount(available: i64, known_ok: i64, too_high: i64, first_ask_pct: u32) -> i64 {
        let ask = match (known_ok, too_high) {
            (0, 0) => available * i64::from(first_ask_pct) / 100,
            (0, high) => high / 2,
            (ok, 0) => ok,
            (ok, high) if high - ok > 2 * ok / 10 => (ok + high) / 2,
            (ok, _) => ok * 95 / 100,
        };
        (ask.min(available).clamp(1_000, 499_900) / 100) * 100
    }

    fn incident_step(&mut self, driver: &mut dyn Driver, i: u32, now_ms: i64) -> Result<(), SimError> {
        let config: &'a RunConfig = self.config;
        let a = &config.mix.adversaries;
        let mut rng = rng_for(self.config.seed, 11, (u64::from(i) << 32) ^ now_ms as u64);
        let incident = self.incidents[i as usize].clone();
        if incident.done {
            return Ok(());
        }
        let plan_id = (1u64 << 63) | (u64::from(i) << 24) | (self.seq & 0xFF_FFFF);
        let attacker = |user: u32, merchant: u32, amount: i64, scenario: Scenario| PayPlan {
            plan_id,
            user,
            merchant,
            amount_minor: amount,
            scenario,
            truth: Truth::Fraud,
            actor: Actor::Incident(i),
            net: Net::Proxy(incident.proxy),
            device: Some(incident.device),
            is_retry_of: None,
        };
        match incident.kind {
            IncidentKind::AccountTakeover { victim, attempts, stops, drain_pct, sim_swap } => {
                let (t, scenario) = if sim_swap {
                    (&a.sim_swap_takeover, Scenario::SimSwapTakeover)
                } else {
                    (&a.account_takeover, Scenario::AccountTakeover)
                };
                let available = self.available(victim);
                if attempts >= t.attempts_max || stops >= t.give_up_after_stops || available < 10_000 {
                    self.incidents[i as usize].done = true;
                    return Ok(());
                }
                let city = self.world.users[victim as usize].city;
                let category = if rng.bool() { Category::Electronics } else { Category::Jewelry };
                let list = self.world.merchants_in(city, category);
                let merchant = list[rng.usize(..list.len())];
                // Attackers know the per-payment cap and stay under it; each stop halves the ask.
                let share = i64::from(drain_pct) >> stops.min(4);
                let amount = (available * share / 100).clamp(10_000, 499_900) / 100 * 100;
                let mut plan = attacker(victim, merchant, amount, scenario);
                let approved = self.pay_inner(driver, &mut plan, now_ms)?;
                let stops = stops + u32::from(!approved);
                self.incidents[i as usize].kind =
                    IncidentKind::AccountTakeover { victim, attempts: attempts + 1, stops, drain_pct, sim_swap };
                let gap = rng.u32(t.minutes_between[0]..=t.minutes_between[1].max(t.minutes_between[0]));
                self.push(now_ms + i64::from(gap.max(1)) * MINUTE_MS, EventKind::Incident(i));
            }
            IncidentKind::Prober { victim, attempts, known_ok, too_high, first_ask_pct } => {
                let p = &a.step_up_prober;
                let available = self.available(victim);
                if attempts >= p.attempts_max || available < 2_000 {
                    self.incidents[i as usize].done = true;
                    return Ok(());
                }
                let amount = Self::probe_amount(available, known_ok, too_high, first_ask_pct);
                let city = self.world.users[victim as usize].city;
                let category = [Category::Electronics, Category::Apparel, Category::Convenience][rng.usize(..3)];
                let list = self.world.merchants_in(city, category);
                let merchant = list[rng.usize(..list.len())];
                let mut plan = attacker(victim, merchant, amount, Scenario::StepUpProber);
                let approved = self.pay_inner(driver, &mut plan, now_ms)?;
                let (known_ok, too_high) = if approved {
                    (known_ok.max(amount), too_high)
                } else {
                    (known_ok, if too_high == 0 { amount } else { too_high.min(amount) })
                };
                self.incidents[i as usize].kind =
                    IncidentKind::Prober { victim, attempts: attempts + 1, known_ok, too_high, first_ask_pct };
                let gap = rng.u32(p.minutes_between[0]..=p.minutes_between[1].max(p.minutes_between[0]));
                self.push(now_ms + i64::from(gap.max(1)) * MINUTE_MS, EventKind::Incident(i));
            }
            IncidentKind::CardTesting { victim, tests_left, tests_passed, tests_done } => {
                let c = &a.card_testing;
                if tests_left == 0 {
                    self.incidents[i as usize].done = true;
                    if c.cash_out_after && tests_passed * 2 >= tests_done && tests_done > 0 {
                        let city = self.world.users[victim as usize].city;
                        let list = self.world.merchants_in(city, Category::Electronics);
                        let merchant = list[rng.usize(..list.len())];
                        let amount = (self.available(victim) * 8 / 10).clamp(10_000, 499_900) / 100 * 100;
                        let mut plan = attacker(victim, merchant, amount, Scenario::CardTesting);
                        self.pay_inner(driver, &mut plan, now_ms)?;
                    }
                    return Ok(());
                }
                let city = rng.u8(..self.world.cities.len() as u8);
                let category = [Category::Convenience, Category::MarketStall, Category::Coffee][rng.usize(..3)];
                let list = self.world.merchants_in(city, category);
                let merchant = list[rng.usize(..list.len())];
                let mut plan = attacker(victim, merchant, rng.i64(1..=200), Scenario::CardTesting);
                let approved = self.pay_inner(driver, &mut plan, now_ms)?;
                self.incidents[i as usize].kind = IncidentKind::CardTesting {
                    victim,
                    tests_left: tests_left - 1,
                    tests_passed: tests_passed + u32::from(approved),
                    tests_done: tests_done + 1,
                };
                let gap = rng.u32(c.seconds_between[0]..=c.seconds_between[1].max(c.seconds_between[0]));
                self.push(now_ms + i64::from(gap.max(1)) * 1_000, EventKind::Incident(i));
            }
            IncidentKind::Ring { ref merchants, ref payments, next } => {
                let Some((member, _)) = payments.get(next).copied() else {
                    self.incidents[i as usize].done = true;
                    return Ok(());
                };
                let amounts = &a.collusion_cash_out.round_amounts_yuan;
                let available = self.available(member);
                let fitting: Vec<i64> = amounts.iter().map(|y| y * 100).filter(|m| *m <= available).collect();
                if let Some(amount) = fitting.get(rng.usize(..fitting.len().max(1))).copied() {
                    let merchant = merchants[member as usize % merchants.len()];
                    let mut plan = attacker(member, merchant, amount, Scenario::CollusionCashOut);
                    // Members pay from their own phones, over the shop's wifi.
                    plan.device =
                        Some((u64::from(member) << 16) | u64::from(self.states[member as usize].phone_generation));
                    plan.net = Net::ShopWifi;
                    self.pay_inner(driver, &mut plan, now_ms)?;
                }
                if let IncidentKind::Ring { next, .. } = &mut self.incidents[i as usize].kind {
                    *next += 1;
                }
                if let Some((_, at)) = payments.get(next + 1) {
                    self.push((*at).max(now_ms), EventKind::Incident(i));
                }
            }
            IncidentKind::SyntheticBustOut { user, left } => {
                self.states[user as usize].never_repays = true;
                let available = self.available(user);
                if left == 0 || available < 5_000 {
                    self.incidents[i as usize].done = true;
                    return Ok(());
                }
                let city = self.world.users[user as usize].city;
                let category = [Category::Electronics, Category::Jewelry, Category::Apparel][rng.usize(..3)];
                let list = self.world.merchants_in(city, category);
                let merchant = list[rng.usize(..list.len())];
                let amount = (available / i64::from(left)).clamp(5_000, 499_900);
                let mut plan = attacker(user, merchant, amount, Scenario::SyntheticIdentity);
                plan.device = Some((u64::from(user) << 16) | u64::from(self.states[user as usize].phone_generation));
                plan.net = if rng.bool() { Net::Mobile } else { Net::ShopWifi };
                self.pay_inner(driver, &mut plan, now_ms)?;
                self.incidents[i as usize].kind = IncidentKind::SyntheticBustOut { user, left: left - 1 };
                self.push(now_ms + rng.i64(10 * MINUTE_MS..60 * MINUTE_MS), EventKind::Incident(i));
            }
            IncidentKind::DefaultSpree { user, until_day } => {
                self.states[user as usize].never_repays = true;
                let available = self.available(user);
                let today = ((now_ms - self.calendar.day(0).start_ms) / DAY_MS) as u32;
                if today >= until_day || available < 2_000 {
                    self.incidents[i as usize].done = true;
                    return Ok(());
                }
                let days_left = i64::from(until_day - today).max(1);
                let city = self.world.users[user as usize].city;
                let category = [Category::Apparel, Category::Electronics, Category::Supermarket, Category::Restaurant]
                    [rng.usize(..4)];
                let list = self.world.merchants_in(city, category);
                let merchant = list[rng.usize(..list.len())];
                let (lo, hi) = category.amount_range_minor();
                let amount = amount_in(&mut rng, (lo, hi.max(available / days_left / 2))).min(available).min(499_900);
                let mut plan = PayPlan {
                    plan_id,
                    user,
                    merchant,
                    amount_minor: amount,
                    scenario: Scenario::FirstPartyDefault,
                    truth: Truth::Default,
                    actor: Actor::Owner,
                    net: if rng.bool() { Net::Mobile } else { Net::ShopWifi },
                    device: None,
                    is_retry_of: None,
                };
                self.pay_inner(driver, &mut plan, now_ms)?;
                let next = now_ms + rng.i64(HOUR_MS..5 * HOUR_MS);
                let next_day_start = self.calendar.day(today + 1).start_ms;
                let at = if next - self.calendar.day(today).start_ms > 22 * HOUR_MS {
                    next_day_start + 10 * HOUR_MS
                } else {
                    next
                };
                self.push(at, EventKind::Incident(i));
            }
            IncidentKind::CompromisedQr { real, fraud, until_ms } => {
                self.qr_overrides.insert(real, (fraud, until_ms));
                self.incidents[i as usize].done = true;
            }
            IncidentKind::CompromisedTerminal { real, fraud, until_ms, diverted_pct } => {
                self.terminal_overrides.insert(real, (fraud, until_ms, diverted_pct));
                self.incidents[i as usize].done = true;
            }
            IncidentKind::Mule(mule) => self.mule_step(driver, i, mule, plan_id, now_ms, &mut rng)?,
        }
        Ok(())
    }
}

impl Simulation<'_> {
    /// A mule's next step: the merchant's next refund part if one is due, else the mule's
    /// next payment. Every payment but the last is refunded; then the merchant vanishes.
    fn mule_step(
        &mut self,
        driver: &mut dyn Driver,
        i: u32,
        mut mule: MuleState,
        plan_id: u64,
        now_ms: i64,
        rng: &mut fastrand::Rng,
    ) -> Result<(), SimError> {
        let m = &self.config.mix.adversaries.mule_refund_network;
        let (pay_after, split_gap) = (m.pay_after_refund_minutes, 5 * MINUTE_MS..90 * MINUTE_MS);
        // From the network's first day the line is the network's: its owner stops repaying.
        self.states[mule.user as usize].never_repays = true;
        if let Some((token, merchant, left, parts)) = mule.refund {
            // Split refunds look like returns of single items.
            let part = if parts <= 1 { left } else { left / i64::from(parts) };
            if part > 0 && driver.refund(token, part, now_ms)? {
                self.refunded(mule.user, Scenario::MuleRefundNetwork, part, now_ms);
            }
            mule.refund = (parts > 1).then_some((token, merchant, left - part, parts - 1));
            let next = if mule.refund.is_some() {
                now_ms + rng.i64(split_gap)
            } else {
                now_ms + i64::from(rng.u32(pay_after[0]..=pay_after[1].max(pay_after[0])).max(1)) * MINUTE_MS
            };
            self.incidents[i as usize].kind = IncidentKind::Mule(mule);
            self.push(next, EventKind::Incident(i));
            return Ok(());
        }
        let available = self.available(mule.user);
        if mule.paid >= mule.cycles || mule.stops >= 3 || available < 20_000 {
            self.incidents[i as usize].done = true;
            return Ok(());
        }
        let amount = Self::mule_amount(available, mule.spend_pct >> mule.stops.min(3), rng);
        let merchant = mule.merchants[((mule.user + mule.paid) as usize) % mule.merchants.len()];
        let user = mule.user;
        let mut plan = PayPlan {
            plan_id,
            user,
            merchant,
            amount_minor: amount,
            scenario: Scenario::MuleRefundNetwork,
            truth: Truth::Fraud,
            actor: Actor::Incident(i),
            // The mule's own phone, wherever the merchant's code reaches it.
            net: Net::Mobile,
            device: Some((u64::from(user) << 16) | u64::from(self.states[user as usize].phone_generation)),
            is_retry_of: None,
        };
        let approved = self.pay_inner(driver, &mut plan, now_ms)?;
        let next = if approved {
            // An incident's payment is one request: the last token sent.
            let token = self.token;
            mule.paid += 1;
            if mule.paid >= mule.cycles {
                // The last payment is never refunded: the merchant vanishes owing the refunds.
                self.incidents[i as usize].done = true;
                return Ok(());
            }
            driver.keep_for_refund(token, user, merchant);
            let share = i64::from(rng.u32(m.refund_share_pct[0]..=m.refund_share_pct[1]));
            let parts = rng.u32(m.refund_splits[0]..=m.refund_splits[1]).max(1);
            mule.refund = Some((token, merchant, amount * share / 100, parts));
            let [lo, hi] = m.refund_after_hours;
            now_ms + i64::from(rng.u32(lo..=hi.max(lo))) * HOUR_MS + rng.i64(0..HOUR_MS)
        } else {
            // Stopped: a smaller ask later.
            mule.stops += 1;
            now_ms + i64::from(rng.u32(pay_after[0]..=pay_after[1].max(pay_after[0])).max(1)) * MINUTE_MS
        };
        self.incidents[i as usize].kind = IncidentKind::Mule(mule);
        self.push(next, EventKind::Incident(i));
        Ok(())
    }

    /// A mule's ask: a share of the available credit under the per-payment cap, never a round
    /// amount (round amounts are what cash-out rules look for): whole hundreds less 1–99 yuan.
    fn mule_amount(available: i64, share_pct: u32, rng: &mut fastrand::Rng) -> i64 {
        let ask = (available * i64::from(share_pct.max(1)) / 100).clamp(20_000, 499_900);
        (ask / 10_000).max(1) * 10_000 - rng.i64(1..=99) * 100
    }
}

fn discretionary_category(rng: &mut fastrand::Rng, car_owner: bool, weekend: bool) -> Category {
    // Weights per 1000 purchases.
    let table: [(Category, u32); 11] = [
        (Category::Convenience, 300),
        (Category::Supermarket, if weekend { 200 } else { 140 }),
        (Category::Restaurant, 180),
        (Category::Coffee, 100),
        (Category::Pharmacy, 50),
        (Category::Apparel, if weekend { 90 } else { 50 }),
        (Category::Bookstore, 20),
        (Category::Cinema, if weekend { 40 } else { 15 }),
        (Category::Fuel, if car_owner { 70 } else { 0 }),
        (Category::Electronics, 12),
        (Category::Jewelry, 2),
    ];
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut x = rng.u32(..total);
    for (c, w) in table {
        if x < w {
            return c;
        }
        x -= w;
    }
    Category::Convenience
}

fn time_of(rng: &mut fastrand::Rng, c: Category) -> i64 {
    let (from_h, to_h) = match c {
        Category::Breakfast => (7, 10),
        Category::Restaurant => {
            if rng.bool() {
                (11, 14)
            } else {
                (17, 21)
            }
        }
        Category::Cinema => (14, 23),
        Category::Convenience => (7, 24),
        Category::Supermarket => (9, 22),
        _ => (10, 22),
    };
    rng.i64(from_h * HOUR_MS..to_h * HOUR_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prober starts at its first share of the line, halves after each refusal, narrows
    /// between what passed and what did not, then stays just under what passed.
    #[test]
    fn a_prober_homes_in_under_the_amount_that_gets_stepped_up() {
        let available = 1_000_000;
        assert_eq!(Simulation::probe_amount(available, 0, 0, 80), 499_900, "capped under the per-payment cap");
        assert_eq!(Simulation::probe_amount(available, 0, 400_000, 80), 200_000);
        assert_eq!(Simulation::probe_amount(available, 100_000, 200_000, 80), 150_000);
        assert_eq!(Simulation::probe_amount(available, 150_000, 160_000, 80), 142_500, "just under what passed");
        assert_eq!(Simulation::probe_amount(available, 150_000, 0, 80), 150_000, "repeats what passed");
        assert_eq!(Simulation::probe_amount(500, 0, 0, 80), 1_000, "never under 10 CNY");
    }
}
