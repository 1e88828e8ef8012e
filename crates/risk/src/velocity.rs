//! What the engine remembers between payments: per user, device, IP network and merchant.
//! Exact sliding windows for users, devices and networks (their recent attempts are few),
//! hourly buckets for merchants (busy ones see thousands a day). Every collection is
//! bounded, so a burst cannot grow memory without limit; a count that reaches its bound
//! reads as "at least" the bound, which is more than any rule needs.
//!
//! Keys are 64-bit keyed hashes of the ids ([`HashKey`]), which keeps state for a million
//! users well inside 1 GiB (docs/BENCHMARKS.md). Two ids sharing a hash would share history; at a million
//! users the chance of any collision is about 3 in 100 million.

use crate::features::{Feature, FeatureVector};
use crate::Outcome;
use rustc_hash::FxHashMap;
use siphasher::sip::SipHasher13;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// Most attempts remembered per user within 24 h.
pub const MAX_USER_EVENTS: usize = 128;
/// Most devices remembered per user (least recently used goes first).
pub const MAX_USER_DEVICES: usize = 8;
/// Most IP networks remembered per user.
pub const MAX_USER_NETWORKS: usize = 8;
/// Most distinct recent merchants remembered per user.
pub const MAX_USER_MERCHANTS: usize = 32;
/// Most attempts remembered per device or IP network within 24 h.
pub const MAX_SHARED_EVENTS: usize = 64;
/// Most refunds remembered per user within 7 days (honest shoppers see one or two a month).
pub const MAX_USER_REFUNDS: usize = 16;
/// A user not seen for this long is forgotten.
pub const USER_RETENTION_S: u32 = 180 * 86_400;
/// A merchant not seen for this long is forgotten: its 7-day figures need a week.
pub const MERCHANT_RETENTION_S: u32 = 7 * DAY_S;

const DAY_S: u32 = 86_400;
/// `engine_memory_days` reads at most this: past a month, more memory changes nothing a
/// rule asks.
const MEMORY_DAYS_CAP: i64 = 30;
const HOUR_S: u32 = 3_600;
const WEEK_S: u32 = 7 * DAY_S;
/// Day buckets per merchant: seven whole UTC days, today included.
const MERCHANT_DAYS: u32 = 7;
/// A refund share with no sales to set it against, and the most any share reads.
const REFUND_PCT_CEILING: i64 = 10_000;

const FLAG_APPROVED: u8 = 1;
const FLAG_TINY: u8 = 2;
const FLAG_REFUSED: u8 = 4;
/// An approved retry: its amount counts towards what was spent (caps and credit), not
/// towards how many attempts were made.
const FLAG_RETRY: u8 = 8;

/// The secret under which the velocity maps hash the ids clients choose (users, devices,
/// merchants, networks): SipHash-1-3 keyed, so nobody can craft ids that collide and merge
/// or evict someone else's history. The service draws it from the OS at start; tests and
/// simulations fix it so that a run reproduces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashKey(pub [u8; 16]);

impl HashKey {
    fn hash(&self, value: impl Hash) -> u64 {
        let mut hasher = SipHasher13::new_with_key(&self.0);
        value.hash(&mut hasher);
        hasher.finish()
    }

    pub fn key(&self, text: &str) -> u64 {
        self.hash(text)
    }

    /// The /24 (IPv4) or /48 (IPv6) network of an address: mobile carriers hand out
    /// addresses from a pool, so the network, not the address, is what a user "has seen
    /// before".
    pub fn network_key(&self, ip: IpAddr) -> u64 {
        match ip {
            IpAddr::V4(v4) => self.hash((4u8, u32::from(v4) >> 8)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.hash((4u8, u32::from(v4) >> 8)),
                None => self.hash((6u8, u128::from(v6) >> 80)),
            },
        }
    }
}

fn short(key: u64) -> u32 {
    (key ^ (key >> 32)) as u32
}

pub fn network_kind(name: Option<&str>) -> u8 {
    match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => 0,
        Some("wifi") => 1,
        Some("4g") | Some("lte") => 2,
        Some("5g") => 3,
        Some("3g") | Some("2g") => 4,
        Some("ethernet") => 5,
        Some(_) => 6,
    }
}

/// 16 bytes: the flags ride in the top byte of the amount (amounts are at most 10^15 minor
/// units, under 2^50), which keeps a million users' recent events small.
#[derive(Debug, Clone, Copy)]
struct UserEvent {
    at_s: u32,
    merchant: u32,
    amount_and_flags: u64,
}

impl UserEvent {
    fn new(at_s: u32, merchant: u32, amount_minor: i64, flags: u8) -> UserEvent {
        let amount = amount_minor.clamp(0, (1 << 56) - 1) as u64;
        UserEvent { at_s, merchant, amount_and_flags: amount | (u64::from(flags) << 56) }
    }
    fn amount_minor(&self) -> i64 {
        (self.amount_and_flags & ((1 << 56) - 1)) as i64
    }
    fn flags(&self) -> u8 {
        (self.amount_and_flags >> 56) as u8
    }
    fn set_flag(&mut self, flag: u8) {
        self.amount_and_flags |= u64::from(flag) << 56;
    }
}

#[derive(Debug, Clone, Copy)]
struct KnownDevice {
    key: u64,
    approved: u16,
    trusted: bool,
    last_seen_s: u32,
}

/// The last first attempt (not a retry): what a retry must repeat, and when the window
/// it opened closes.
#[derive(Debug, Clone, Copy)]
struct LastAttempt {
    merchant: u32,
    amount_minor: i64,
    at_s: u32,
    /// Approved, now or after its challenge: repeating it is a new payment, not a retry.
    approved: bool,
}

#[derive(Debug, Clone, Default)]
struct UserState {
    events: Vec<UserEvent>,
    devices: Vec<KnownDevice>,
    networks: Vec<(u64, u32)>,
    merchants: Vec<u32>,
    failed_challenges: Vec<u32>,
    /// (at_s, merchant) of refunds received in the last 7 days, oldest first.
    refunds: Vec<(u32, u32)>,
    approved_count: u32,
    approved_sum_minor: i64,
    max_amount_minor: i64,
    last_network: u8,
    last: Option<LastAttempt>,
    last_seen_s: u32,
}

#[derive(Debug, Clone, Default)]
struct SharedState {
    /// (at_s, user) of recent attempts, oldest first.
    events: Vec<(u32, u32)>,
}

#[derive(Debug, Clone, Copy, Default)]
struct HourBucket {
    hour: u32,
    count: u32,
    round: u32,
    new_user: u32,
    /// Attempts by payers who had not paid this merchant before.
    first_time: u32,
    /// Linear-counting sketch of the distinct payers in this hour.
    users: [u64; 4],
    /// Approved amounts and refunded amounts, in minor units.
    sales_minor: i64,
    refunds_minor: i64,
}

/// One UTC day of a merchant's activity: what its 7-day figures sum.
#[derive(Debug, Clone, Copy, Default)]
struct DayBucket {
    day: u32,
    count: u32,
    sales_minor: i64,
    refunds_minor: i64,
}

#[derive(Debug, Clone)]
struct MerchantState {
    hours: [HourBucket; 24],
    days: [DayBucket; MERCHANT_DAYS as usize],
    last_seen_s: u32,
}

impl MerchantState {
    fn new(now_s: u32) -> MerchantState {
        MerchantState {
            hours: [HourBucket::default(); 24],
            days: [DayBucket::default(); MERCHANT_DAYS as usize],
            last_seen_s: now_s,
        }
    }
}

/// What the engine reads of a merchant's recent activity.
#[derive(Debug, Clone, Copy, Default)]
struct MerchantFigures {
    count_1h: i64,
    count_24h: i64,
    distinct_users_24h: i64,
    new_user_pct_24h: i64,
    round_pct_24h: i64,
    first_time_pct_24h: i64,
    refund_pct_24h: i64,
    count_7d: i64,
    refund_pct_7d: i64,
}

/// One payment attempt as the velocity layer sees it.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub user_id: &'a str,
    pub device_id: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub network: Option<&'a str>,
    pub merchant_id: &'a str,
    pub amount_minor: i64,
    pub tiny: bool,
    pub round: bool,
    /// The user's line is under 30 days old.
    pub new_line: bool,
    pub now_ms: i64,
}

/// Thresholds the velocity layer takes from the policy.
#[derive(Debug, Clone, Copy)]
pub struct VelocityPolicy {
    pub retry_window_s: u32,
    pub device_trusted_after: u32,
    /// Start of today in the policy's time zone, in UTC seconds.
    pub today_start_s: u32,
}

#[derive(Debug, Default, Clone)]
pub struct RiskState {
    hash_key: HashKey,
    users: Shards<UserState>,
    devices: Shards<SharedState>,
    networks: Shards<SharedState>,
    merchants: Shards<MerchantState>,
    /// The earliest attempt remembered, in UTC seconds: how far back the engine can see.
    first_attempt_s: Option<u32>,
}

/// Maps split in 64 shards that grow one at a time: a single map of a million users would
/// move every entry at once when it doubles, stalling the decision that triggered it (the
/// ledger's hold map did exactly that: 150 ms at 458,752 entries).
#[derive(Debug, Clone)]
struct Shards<V> {
    shards: Vec<FxHashMap<u64, V>>,
}

const SHARDS: usize = 64;

impl<V> Default for Shards<V> {
    fn default() -> Shards<V> {
        Shards { shards: (0..SHARDS).map(|_| FxHashMap::default()).collect() }
    }
}

impl<V> Shards<V> {
    fn shard(key: u64) -> usize {
        // Keys are already hashes; their top bits choose the shard, the map hashes the rest.
        (key >> 58) as usize % SHARDS
    }
    fn get(&self, key: &u64) -> Option<&V> {
        self.shards[Self::shard(*key)].get(key)
    }
    fn entry(&mut self, key: u64) -> std::collections::hash_map::Entry<'_, u64, V> {
        self.shards[Self::shard(key)].entry(key)
    }
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }
    fn reserve(&mut self, additional: usize) {
        for shard in &mut self.shards {
            shard.reserve(additional / SHARDS + 1);
        }
    }
    fn retain(&mut self, mut keep: impl FnMut(&u64, &mut V) -> bool) {
        for shard in &mut self.shards {
            shard.retain(&mut keep);
        }
    }
}

fn seconds(now_ms: i64) -> u32 {
    u32::try_from(now_ms.max(0) / 1_000).unwrap_or(u32::MAX)
}

fn since(now_s: u32, window_s: u32) -> u32 {
    now_s.saturating_sub(window_s)
}

fn distinct(values: impl Iterator<Item = u32>) -> i64 {
    let mut seen = [0u32; MAX_USER_EVENTS];
    let mut n = 0;
    for v in values.take(MAX_USER_EVENTS) {
        seen[n] = v;
        n += 1;
    }
    let seen = &mut seen[..n];
    seen.sort_unstable();
    let mut count = 0;
    for i in 0..seen.len() {
        if i == 0 || seen[i] != seen[i - 1] {
            count += 1;
        }
    }
    count
}

fn sketch_bit(user: u32) -> (usize, u64) {
    let h = user.wrapping_mul(0x9E37_79B1);
    (((h >> 30) & 3) as usize, 1u64 << ((h >> 24) & 63))
}

fn sketch_estimate(bits: [u64; 4]) -> i64 {
    let m = 256.0;
    let zeros = bits.iter().map(|b| b.count_zeros()).sum::<u32>() as f64;
    if zeros == 0.0 {
        // Saturated: report the sketch's ceiling rather than infinity.
        return 1_420;
    }
    (-m * (zeros / m).ln()).round() as i64
}

impl RiskState {
    pub fn new() -> RiskState {
        RiskState::default()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Sets the secret the maps hash ids under; only before anything is remembered, since
    /// entries hashed under another key could no longer be found.
    pub fn set_hash_key(&mut self, hash_key: HashKey) {
        assert!(
            self.users.len() + self.devices.len() + self.networks.len() + self.merchants.len() == 0,
            "the hash key is set before the state fills"
        );
        self.hash_key = hash_key;
    }

    pub fn reserve_users(&mut self, n: usize) {
        self.users.reserve(n);
    }

    /// Fills the velocity, device, environment and merchant features for `attempt`,
    /// reading state only.
    pub fn features(&self, attempt: &Attempt<'_>, policy: &VelocityPolicy, out: &mut FeatureVector) {
        let now_s = seconds(attempt.now_ms);
        let hk = self.hash_key;
        let user_key = hk.key(attempt.user_id);
        let merchant_key = hk.key(attempt.merchant_id);
        let merchant = short(merchant_key);
        let user = self.users.get(&user_key);
        let device_key = attempt.device_id.map(|d| hk.key(d));
        let network_key = attempt.ip.map(|ip| hk.network_key(ip));

        let (mut c1m, mut c1h, mut c24h, mut s1h, mut s24h, mut today, mut tiny1h, mut same10m, mut refused) =
            (0i64, 0i64, 0i64, 0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
        let (mut d1h, mut d24h, mut failed) = (0, 0, 0);
        let (mut first_device, mut trusted, mut first_network, mut network_changed) = (true, false, true, false);
        let (mut retry, mut first_visit) = (false, true);
        let (mut total, mut avg, mut max) = (0i64, 0i64, 0i64);
        let (mut refunds_24h, mut refunds_here_7d) = (0i64, 0i64);
        if let Some(u) = user {
            let (t24h, t7d) = (since(now_s, DAY_S), since(now_s, WEEK_S));
            refunds_24h = u.refunds.iter().filter(|(at, _)| *at > t24h).count() as i64;
            refunds_here_7d = u.refunds.iter().filter(|(at, m)| *at > t7d && *m == merchant).count() as i64;
            let (t1m, t1h, t10m, t24h) =
                (since(now_s, 60), since(now_s, HOUR_S), since(now_s, 600), since(now_s, DAY_S));
            for e in u.events.iter().filter(|e| e.at_s > t24h) {
                let approved = e.flags() & FLAG_APPROVED != 0;
                if approved {
                    s24h = s24h.saturating_add(e.amount_minor());
                    if e.at_s >= policy.today_start_s {
                        today = today.saturating_add(e.amount_minor());
                    }
                    if e.at_s > t1h {
                        s1h = s1h.saturating_add(e.amount_minor());
                    }
                }
                if e.flags() & FLAG_RETRY != 0 {
                    continue;
                }
                c24h += 1;
                if e.flags() & FLAG_REFUSED != 0 {
                    refused += 1;
                }
                if e.at_s > t1h {
                    c1h += 1;
                    if e.flags() & FLAG_TINY != 0 {
                        tiny1h += 1;
                    }
                }
                if e.at_s > t1m {
                    c1m += 1;
                }
                if e.at_s > t10m && e.merchant == merchant {
                    same10m += 1;
                }
            }
            d1h = distinct(u.events.iter().filter(|e| e.at_s > t1h).map(|e| e.merchant));
            d24h = distinct(u.events.iter().filter(|e| e.at_s > t24h).map(|e| e.merchant));
            failed = u.failed_challenges.iter().filter(|t| **t > t24h).count() as i64;
            if let Some(d) = device_key.and_then(|k| u.devices.iter().find(|d| d.key == k)) {
                first_device = false;
                trusted = d.trusted;
            }
            if let Some(n) = network_key {
                first_network = !u.networks.iter().any(|(k, _)| *k == n);
            }
            let kind = network_kind(attempt.network);
            network_changed = kind != 0 && u.last_network != 0 && kind != u.last_network;
            if let Some(last) = u.last {
                retry = !last.approved
                    && last.merchant == merchant
                    && last.amount_minor == attempt.amount_minor
                    && now_s.saturating_sub(last.at_s) <= policy.retry_window_s;
            }
            first_visit = !u.merchants.contains(&merchant);
            total = i64::from(u.approved_count);
            if u.approved_count > 0 {
                avg = u.approved_sum_minor / i64::from(u.approved_count);
            }
            max = u.max_amount_minor;
        }
        out.set_int(Feature::UserCount1m, c1m);
        out.set_int(Feature::UserCount1h, c1h);
        out.set_int(Feature::UserCount24h, c24h);
        out.set_int(Feature::UserSum1hMinor, s1h);
        out.set_int(Feature::UserSum24hMinor, s24h);
        out.set_int(Feature::UserSumTodayMinor, today);
        out.set_int(Feature::UserTinyCount1h, tiny1h);
        out.set_int(Feature::UserDistinctMerchants1h, d1h);
        out.set_int(Feature::UserDistinctMerchants24h, d24h);
        out.set_int(Feature::UserSameMerchantCount10m, same10m);
        out.set_int(Feature::UserDeclines24h, refused);
        out.set_int(Feature::UserFailedChallenges24h, failed);
        out.set_bool(Feature::IsRetry, retry);
        out.set_int(Feature::UserPaymentsTotal, total);
        out.set_int(Feature::UserAvgAmountMinor, avg);
        out.set_int(Feature::UserMaxAmountMinor, max);
        out.set_int(
            Feature::AmountVsUserAvgPct,
            if avg > 0 { attempt.amount_minor.saturating_mul(100) / avg } else { 0 },
        );
        out.set_int(Feature::UserRefunds24h, refunds_24h);
        out.set_int(Feature::UserRefundsFromMerchant7d, refunds_here_7d);

        out.set_bool(Feature::DevicePresent, device_key.is_some());
        out.set_bool(Feature::DeviceFirstSeen, device_key.is_some() && first_device);
        out.set_bool(Feature::DeviceTrusted, device_key.is_some() && trusted);
        let (dc, du) = device_key.and_then(|k| self.devices.get(&k)).map(|s| s.counts(now_s)).unwrap_or((0, 0));
        out.set_int(Feature::DeviceCount1h, dc);
        out.set_int(Feature::DeviceDistinctUsers24h, du);

        out.set_bool(Feature::IpPresent, network_key.is_some());
        out.set_bool(Feature::IpFirstSeen, network_key.is_some() && first_network);
        out.set_bool(Feature::NetworkChanged, network_changed);
        let (ic, iu) = network_key.and_then(|k| self.networks.get(&k)).map(|s| s.counts(now_s)).unwrap_or((0, 0));
        out.set_int(Feature::IpCount1h, ic);
        out.set_int(Feature::IpDistinctUsers24h, iu);

        let m = self.merchants.get(&merchant_key).map(|m| m.features(now_s)).unwrap_or_default();
        out.set_int(Feature::MerchantCount1h, m.count_1h);
        out.set_int(Feature::MerchantPayments24h, m.count_24h);
        out.set_int(Feature::MerchantDistinctUsers24h, m.distinct_users_24h);
        out.set_int(Feature::MerchantNewUserPct24h, m.new_user_pct_24h);
        out.set_int(Feature::MerchantRoundAmountPct24h, m.round_pct_24h);
        out.set_int(Feature::MerchantFirstTimePayerPct24h, m.first_time_pct_24h);
        out.set_int(Feature::MerchantRefundPct24h, m.refund_pct_24h);
        out.set_int(Feature::MerchantPayments7d, m.count_7d);
        out.set_int(Feature::MerchantRefundPct7d, m.refund_pct_7d);
        out.set_bool(Feature::MerchantFirstVisit, first_visit);
        let memory_s = self.first_attempt_s.map_or(0, |first| now_s.saturating_sub(first));
        out.set_int(Feature::EngineMemoryDays, i64::from(memory_s / DAY_S).min(MEMORY_DAYS_CAP));
    }

    /// Remembers an attempt and its outcome. A retry (the same merchant and amount within
    /// the retry window of a first attempt that was not approved) is exempt from counting
    /// attempts only: an approved retry's amount counts towards every sum, so caps and
    /// credit see it, and it never opens a retry window of its own.
    pub fn record(&mut self, attempt: &Attempt<'_>, outcome: Outcome, is_retry: bool, policy: &VelocityPolicy) {
        let now_s = seconds(attempt.now_ms);
        let hk = self.hash_key;
        let user_key = hk.key(attempt.user_id);
        let merchant_key = hk.key(attempt.merchant_id);
        let merchant = short(merchant_key);
        let user32 = short(user_key);
        let approved = outcome == Outcome::Approve;
        // Replay at start-up need not come in time order: the earliest wins.
        self.first_attempt_s = Some(self.first_attempt_s.map_or(now_s, |first| first.min(now_s)));
        let user = self.users.entry(user_key).or_default();
        user.last_seen_s = now_s;
        // Before this attempt is remembered: had the payer paid this merchant before?
        let first_time = !user.merchants.contains(&merchant);
        if is_retry {
            if let Some(first) = user.last.as_mut().filter(|_| approved) {
                first.approved = true;
            }
        } else {
            user.last = Some(LastAttempt { merchant, amount_minor: attempt.amount_minor, at_s: now_s, approved });
        }
        let kind = network_kind(attempt.network);
        if kind != 0 {
            user.last_network = kind;
        }
        if is_retry && !approved {
            return;
        }
        let t24h = since(now_s, DAY_S);
        if user.events.first().is_some_and(|e| e.at_s <= t24h) {
            user.events.retain(|e| e.at_s > t24h);
        }
        if user.events.len() >= MAX_USER_EVENTS {
            user.events.remove(0);
        }
        let mut flags = 0;
        if approved {
            flags |= FLAG_APPROVED;
        }
        if attempt.tiny {
            flags |= FLAG_TINY;
        }
        if matches!(outcome, Outcome::StepUp | Outcome::Decline | Outcome::Restrict) {
            flags |= FLAG_REFUSED;
        }
        if is_retry {
            flags |= FLAG_RETRY;
        }
        user.events.push(UserEvent::new(now_s, merchant, attempt.amount_minor, flags));
        if approved {
            Self::remember_approval(hk, user, attempt, merchant, now_s, policy);
        }
        let m = self.merchants.entry(merchant_key).or_insert_with(|| MerchantState::new(now_s));
        if approved {
            // An approved retry is a sale like any other; it is only not a new attempt.
            m.sale(now_s, attempt.amount_minor);
        }
        if is_retry {
            return;
        }
        m.push(now_s, user32, attempt.round, attempt.new_line, first_time);
        if let Some(d) = attempt.device_id {
            self.devices.entry(hk.key(d)).or_default().push(now_s, user32);
        }
        if let Some(ip) = attempt.ip {
            self.networks.entry(hk.network_key(ip)).or_default().push(now_s, user32);
        }
    }

    /// A merchant refunded `amount_minor` of a settled payment to the user's line. Honest
    /// shops refund now and then (returns); a shop that refunds much of what it sells, or a
    /// line paying again where it was just refunded, is how credit is cycled through refunds.
    pub fn record_refund(&mut self, user_id: &str, merchant_id: &str, amount_minor: i64, now_ms: i64) {
        let now_s = seconds(now_ms);
        let hk = self.hash_key;
        let merchant_key = hk.key(merchant_id);
        let user = self.users.entry(hk.key(user_id)).or_default();
        user.last_seen_s = now_s;
        let week_ago = since(now_s, WEEK_S);
        if user.refunds.first().is_some_and(|(at, _)| *at <= week_ago) {
            user.refunds.retain(|(at, _)| *at > week_ago);
        }
        if user.refunds.len() >= MAX_USER_REFUNDS {
            user.refunds.remove(0);
        }
        user.refunds.push((now_s, short(merchant_key)));
        let m = self.merchants.entry(merchant_key).or_insert_with(|| MerchantState::new(now_s));
        m.refund(now_s, amount_minor);
    }

    fn remember_approval(
        hk: HashKey,
        user: &mut UserState,
        attempt: &Attempt<'_>,
        merchant: u32,
        now_s: u32,
        policy: &VelocityPolicy,
    ) {
        user.approved_count = user.approved_count.saturating_add(1);
        user.approved_sum_minor = user.approved_sum_minor.saturating_add(attempt.amount_minor);
        user.max_amount_minor = user.max_amount_minor.max(attempt.amount_minor);
        if let Some(position) = user.merchants.iter().position(|m| *m == merchant) {
            user.merchants.remove(position);
        } else if user.merchants.len() >= MAX_USER_MERCHANTS {
            user.merchants.remove(0);
        }
        user.merchants.push(merchant);
        if let Some(ip) = attempt.ip {
            let n = hk.network_key(ip);
            match user.networks.iter_mut().find(|(k, _)| *k == n) {
                Some(entry) => entry.1 = now_s,
                None => {
                    if user.networks.len() >= MAX_USER_NETWORKS {
                        let oldest = (0..user.networks.len()).min_by_key(|i| user.networks[*i].1).expect("non-empty");
                        user.networks.swap_remove(oldest);
                    }
                    // Most users have one or two networks: grow one at a time, not by doubling.
                    user.networks.reserve_exact(1);
                    user.networks.push((n, now_s));
                }
            }
        }
        // Tiny approvals do not build trust: card testers would earn it with them.
        if let (Some(device), false) = (attempt.device_id, attempt.tiny) {
            let d = Self::device_entry(user, hk.key(device), now_s);
            d.approved = d.approved.saturating_add(1);
            if u32::from(d.approved) >= policy.device_trusted_after {
                d.trusted = true;
            }
        }
    }

    fn device_entry(user: &mut UserState, device: u64, now_s: u32) -> &mut KnownDevice {
        let position = match user.devices.iter().position(|d| d.key == device) {
            Some(p) => p,
            None => {
                if user.devices.len() >= MAX_USER_DEVICES {
                    let oldest =
                        (0..user.devices.len()).min_by_key(|i| user.devices[*i].last_seen_s).expect("non-empty");
                    user.devices.swap_remove(oldest);
                }
                user.devices.reserve_exact(1);
                user.devices.push(KnownDevice { key: device, approved: 0, trusted: false, last_seen_s: now_s });
                user.devices.len() - 1
            }
        };
        let d = &mut user.devices[position];
        d.last_seen_s = now_s;
        d
    }

    /// A challenge was answered. Passing trusts the device it was passed on; failing counts
    /// towards restriction.
    pub fn record_challenge(&mut self, user_id: &str, device_id: Option<&str>, passed: bool, now_ms: i64) {
        let now_s = seconds(now_ms);
        let hk = self.hash_key;
        let user = self.users.entry(hk.key(user_id)).or_default();
        user.last_seen_s = now_s;
        if passed {
            // The owner proved who they are: earlier failures were someone else's.
            user.failed_challenges.clear();
            if let Some(device) = device_id {
                Self::device_entry(user, hk.key(device), now_s).trusted = true;
            }
        } else {
            if user.failed_challenges.len() >= 8 {
                user.failed_challenges.remove(0);
            }
            user.failed_challenges.push(now_s);
        }
    }

    /// A stepped-up payment was approved after its challenge: count it as approved history.
    pub fn record_late_approval(&mut self, attempt: &Attempt<'_>, policy: &VelocityPolicy) {
        let now_s = seconds(attempt.now_ms);
        let hk = self.hash_key;
        let merchant = short(hk.key(attempt.merchant_id));
        let user = self.users.entry(hk.key(attempt.user_id)).or_default();
        if let Some(e) = user.events.iter_mut().rev().find(|e| {
            e.merchant == merchant && e.amount_minor() == attempt.amount_minor && e.flags() & FLAG_APPROVED == 0
        }) {
            e.set_flag(FLAG_APPROVED);
        }
        if let Some(first) =
            user.last.as_mut().filter(|l| l.merchant == merchant && l.amount_minor == attempt.amount_minor)
        {
            first.approved = true;
        }
        Self::remember_approval(hk, user, attempt, merchant, now_s, policy);
        let m = self.merchants.entry(hk.key(attempt.merchant_id)).or_insert_with(|| MerchantState::new(now_s));
        m.sale(now_s, attempt.amount_minor);
    }

    /// Forgets devices and networks idle for a day, merchants idle for a week (their 7-day
    /// figures) and users idle for the retention period. Returns how many entries went.
    pub fn prune(&mut self, now_ms: i64) -> usize {
        let now_s = seconds(now_ms);
        let before = self.users.len() + self.devices.len() + self.networks.len() + self.merchants.len();
        let day_ago = since(now_s, DAY_S);
        self.devices.retain(|_, s| s.events.last().is_some_and(|(t, _)| *t > day_ago));
        self.networks.retain(|_, s| s.events.last().is_some_and(|(t, _)| *t > day_ago));
        let merchant_cutoff = since(now_s, MERCHANT_RETENTION_S);
        self.merchants.retain(|_, m| m.last_seen_s > merchant_cutoff);
        let user_cutoff = since(now_s, USER_RETENTION_S);
        self.users.retain(|_, u| u.last_seen_s > user_cutoff);
        before - (self.users.len() + self.devices.len() + self.networks.len() + self.merchants.len())
    }
}

impl SharedState {
    fn push(&mut self, now_s: u32, user: u32) {
        let day_ago = since(now_s, DAY_S);
        if self.events.first().is_some_and(|(t, _)| *t <= day_ago) {
            self.events.retain(|(t, _)| *t > day_ago);
        }
        if self.events.len() >= MAX_SHARED_EVENTS {
            self.events.remove(0);
        }
        self.events.push((now_s, user));
    }

    /// (attempts in the last hour, distinct users in the last 24 h).
    fn counts(&self, now_s: u32) -> (i64, i64) {
        let (hour_ago, day_ago) = (since(now_s, HOUR_S), since(now_s, DAY_S));
        let count = self.events.iter().filter(|(t, _)| *t > hour_ago).count() as i64;
        (count, distinct(self.events.iter().filter(|(t, _)| *t > day_ago).map(|(_, u)| *u)))
    }
}

impl MerchantState {
    /// This hour's bucket, emptied first when it last held an hour a day ago.
    fn hour_bucket(&mut self, now_s: u32) -> &mut HourBucket {
        self.last_seen_s = now_s;
        let hour = now_s / HOUR_S;
        let bucket = &mut self.hours[(hour % 24) as usize];
        if bucket.hour != hour {
            *bucket = HourBucket { hour, ..HourBucket::default() };
        }
        bucket
    }

    /// Today's bucket (UTC), emptied first when it last held a day a week ago.
    fn day_bucket(&mut self, now_s: u32) -> &mut DayBucket {
        let day = now_s / DAY_S;
        let bucket = &mut self.days[(day % MERCHANT_DAYS) as usize];
        if bucket.day != day {
            *bucket = DayBucket { day, ..DayBucket::default() };
        }
        bucket
    }

    fn push(&mut self, now_s: u32, user: u32, round: bool, new_user: bool, first_time: bool) {
        let bucket = self.hour_bucket(now_s);
        bucket.count = bucket.count.saturating_add(1);
        bucket.round += u32::from(round);
        bucket.new_user += u32::from(new_user);
        bucket.first_time += u32::from(first_time);
        let (word, bit) = sketch_bit(user);
        bucket.users[word] |= bit;
        let day = self.day_bucket(now_s);
        day.count = day.count.saturating_add(1);
    }

    fn sale(&mut self, now_s: u32, amount_minor: i64) {
        let hour = self.hour_bucket(now_s);
        hour.sales_minor = hour.sales_minor.saturating_add(amount_minor);
        let day = self.day_bucket(now_s);
        day.sales_minor = day.sales_minor.saturating_add(amount_minor);
    }

    fn refund(&mut self, now_s: u32, amount_minor: i64) {
        let hour = self.hour_bucket(now_s);
        hour.refunds_minor = hour.refunds_minor.saturating_add(amount_minor);
        let day = self.day_bucket(now_s);
        day.refunds_minor = day.refunds_minor.saturating_add(amount_minor);
    }

    /// The 24-hour figures from the hourly buckets ("last hour" spans up to two of them),
    /// the 7-day ones from the daily buckets.
    fn features(&self, now_s: u32) -> MerchantFigures {
        let hour = now_s / HOUR_S;
        let (mut recent, mut count, mut round, mut new_user, mut first_time) = (0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut users, mut sales, mut refunds) = ([0u64; 4], 0i64, 0i64);
        for bucket in &self.hours {
            if bucket.hour + 24 <= hour || bucket.hour > hour {
                continue;
            }
            count += u64::from(bucket.count);
            round += u64::from(bucket.round);
            new_user += u64::from(bucket.new_user);
            first_time += u64::from(bucket.first_time);
            sales = sales.saturating_add(bucket.sales_minor);
            refunds = refunds.saturating_add(bucket.refunds_minor);
            for (u, b) in users.iter_mut().zip(bucket.users) {
                *u |= b;
            }
            if bucket.hour + 1 >= hour {
                recent += u64::from(bucket.count);
            }
        }
        let today = now_s / DAY_S;
        let (mut count_7d, mut sales_7d, mut refunds_7d) = (0i64, 0i64, 0i64);
        for bucket in self.days.iter().filter(|b| b.day + MERCHANT_DAYS > today && b.day <= today) {
            count_7d += i64::from(bucket.count);
            sales_7d = sales_7d.saturating_add(bucket.sales_minor);
            refunds_7d = refunds_7d.saturating_add(bucket.refunds_minor);
        }
        let pct = |part: u64| (part * 100).checked_div(count).unwrap_or(0) as i64;
        MerchantFigures {
            count_1h: recent as i64,
            count_24h: count as i64,
            // An empty sketch estimates zero payers.
            distinct_users_24h: if count == 0 { 0 } else { sketch_estimate(users) },
            new_user_pct_24h: pct(new_user),
            round_pct_24h: pct(round),
            first_time_pct_24h: pct(first_time),
            refund_pct_24h: refund_pct(refunds, sales),
            count_7d,
            refund_pct_7d: refund_pct(refunds_7d, sales_7d),
        }
    }
}

/// Refunds as a share of sales, in %: capped, and at the cap when there is nothing sold to
/// set the refunds against.
fn refund_pct(refunds_minor: i64, sales_minor: i64) -> i64 {
    match (refunds_minor, sales_minor) {
        (r, _) if r <= 0 => 0,
        (_, s) if s <= 0 => REFUND_PCT_CEILING,
        (r, s) => (i128::from(r) * 100 / i128::from(s)).min(i128::from(REFUND_PCT_CEILING)) as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_hash_under_the_secret_key() {
        let (a, b) = (HashKey([1; 16]), HashKey([2; 16]));
        assert_eq!(a.key("user-42"), a.key("user-42"));
        assert_ne!(a.key("user-42"), b.key("user-42"), "another key, other positions: collisions cannot be planned");
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let same_net: IpAddr = "203.0.113.200".parse().unwrap();
        assert_eq!(a.network_key(ip), a.network_key(same_net), "one /24 is one network");
        assert_ne!(a.network_key(ip), b.network_key(ip));
    }

    const POLICY: VelocityPolicy = VelocityPolicy { retry_window_s: 120, device_trusted_after: 3, today_start_s: 0 };
    const T0: i64 = 1_790_000_000_000;

    fn attempt<'a>(user: &'a str, merchant: &'a str, amount_minor: i64, now_ms: i64) -> Attempt<'a> {
        Attempt {
            user_id: user,
            device_id: Some("d1"),
            ip: None,
            network: None,
            merchant_id: merchant,
            amount_minor,
            tiny: false,
            round: false,
            new_line: false,
            now_ms,
        }
    }

    fn features(state: &RiskState, a: &Attempt<'_>) -> FeatureVector {
        let mut out = FeatureVector::new();
        state.features(a, &POLICY, &mut out);
        out
    }

    /// A shop that refunds a return now and then, next to one that refunds nearly all it
    /// sells to lines that pay it again: the refund features tell them apart.
    #[test]
    fn refunds_are_remembered_per_line_and_per_merchant() {
        let mut state = RiskState::new();
        let hour = 3_600_000;
        for (i, user) in ["a", "b", "c", "d"].iter().enumerate() {
            let at = T0 + i as i64 * hour;
            state.record(&attempt(user, "shop", 40_000, at), Outcome::Approve, false, &POLICY);
            state.record(&attempt(user, "mule-shop", 300_000, at), Outcome::Approve, false, &POLICY);
            state.record_refund(user, "mule-shop", 290_000, at + hour / 2);
        }
        state.record_refund("a", "shop", 40_000, T0 + 5 * hour);
        let now = T0 + 6 * hour;
        let honest = features(&state, &attempt("b", "shop", 10_000, now));
        assert_eq!(honest.int(Feature::MerchantRefundPct24h), 25, "one return in four sales");
        assert_eq!(honest.int(Feature::UserRefundsFromMerchant7d), 0);
        assert_eq!(honest.int(Feature::UserRefunds24h), 1, "b was refunded once, elsewhere");
        let cycle = features(&state, &attempt("a", "mule-shop", 300_000, now));
        assert_eq!(cycle.int(Feature::MerchantRefundPct24h), 96);
        assert_eq!(cycle.int(Feature::MerchantRefundPct7d), 96);
        assert_eq!(cycle.int(Feature::UserRefundsFromMerchant7d), 1, "paying again where it was refunded");
        assert_eq!(cycle.int(Feature::UserRefunds24h), 2);
        // A day later the 24-hour figures have gone, the week's remain.
        let later = features(&state, &attempt("a", "mule-shop", 300_000, now + 26 * hour));
        assert_eq!((later.int(Feature::MerchantRefundPct24h), later.int(Feature::UserRefunds24h)), (0, 0));
        assert_eq!(later.int(Feature::MerchantRefundPct7d), 96);
        assert_eq!(later.int(Feature::UserRefundsFromMerchant7d), 1);
        // Refunds with no sales to set them against read at the ceiling.
        state.record_refund("e", "ghost", 1_000, now);
        assert_eq!(features(&state, &attempt("e", "ghost", 1_000, now)).int(Feature::MerchantRefundPct24h), 10_000);
        // A week on, nothing is left of any of it.
        let gone = features(&state, &attempt("a", "mule-shop", 300_000, now + 8 * 24 * hour));
        assert_eq!((gone.int(Feature::MerchantRefundPct7d), gone.int(Feature::UserRefundsFromMerchant7d)), (0, 0));
    }

    /// A busy shop's payers are mostly regulars; an account that has never been paid and
    /// suddenly takes a shop's counter traffic has only first-time payers, far above its week.
    #[test]
    fn first_time_payers_and_the_week_s_volume() {
        let mut state = RiskState::new();
        let minute = 60_000;
        let day = 24 * 60 * minute;
        // Ten regulars pay the shop every day for a week.
        for d in 0..7 {
            for u in 0..10 {
                let user = format!("regular{u}");
                let at = T0 + d * day + u * minute;
                state.record(&attempt(&user, "shop", 2_000, at), Outcome::Approve, false, &POLICY);
            }
        }
        let now = T0 + 6 * day + 30 * minute;
        let shop = features(&state, &attempt("regular0", "shop", 2_000, now));
        assert_eq!(shop.int(Feature::MerchantFirstTimePayerPct24h), 0, "the first visits were six days ago");
        assert!(shop.int(Feature::MerchantPayments7d) >= 60, "{}", shop.int(Feature::MerchantPayments7d));
        // The same ten pay a dormant account within the half hour.
        for u in 0..10 {
            let user = format!("regular{u}");
            state.record(&attempt(&user, "dormant", 2_000, now + u * minute), Outcome::Approve, false, &POLICY);
        }
        let diverted = features(&state, &attempt("regular9", "dormant", 2_000, now + 11 * minute));
        assert_eq!(diverted.int(Feature::MerchantFirstTimePayerPct24h), 100);
        assert_eq!((diverted.int(Feature::MerchantPayments7d), diverted.int(Feature::MerchantCount1h)), (10, 10));
    }

    /// How far back the engine sees: from the earliest attempt it remembers, whatever order
    /// a start-up replay brings them in, in whole days and capped; pruning forgets entries,
    /// not how long the service has watched.
    #[test]
    fn engine_memory_days_counts_from_the_earliest_attempt() {
        let mut state = RiskState::new();
        let day = 24 * 3_600_000;
        let memory = |state: &RiskState, at: i64| {
            features(state, &attempt("x", "shop", 1_000, at)).int(Feature::EngineMemoryDays)
        };
        assert_eq!(memory(&state, T0), 0, "nothing remembered");
        state.record(&attempt("a", "shop", 1_000, T0 + 3 * day), Outcome::Approve, false, &POLICY);
        assert_eq!(memory(&state, T0 + 3 * day + day - 1), 0, "less than a whole day");
        state.record(&attempt("b", "shop", 1_000, T0), Outcome::Decline, false, &POLICY);
        assert_eq!(memory(&state, T0 + 3 * day + day - 1), 3, "an earlier attempt replayed later counts");
        assert_eq!(memory(&state, T0 + 7 * day), 7);
        state.prune(T0 + 200 * day);
        assert_eq!(memory(&state, T0 + 200 * day), 30, "capped, and pruning does not shorten it");
    }

    #[test]
    #[should_panic(expected = "before the state fills")]
    fn the_key_cannot_change_under_a_filled_state() {
        let mut state = RiskState::new();
        state.record_challenge("u1", None, false, 0);
        state.set_hash_key(HashKey([9; 16]));
    }
}
