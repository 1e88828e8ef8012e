//! When to try again: exponential backoff with full jitter. The ceiling after the n-th
//! failure is `min(cap, base · 2^(n-1))`; the wait is uniform in `[0, ceiling]`, so a crowd
//! of messages that failed together (an endpoint down) does not come back together.
//! The schedule is a pure function of the failure count and a random number; the random
//! number comes from the OS generator at the edge ([`os_random`]).

use serde::{Deserialize, Serialize};

/// Most attempts a policy may allow per message (per replay).
pub const MAX_ATTEMPTS_LIMIT: u32 = 50;
/// Longest ceiling a policy may set.
pub const MAX_CAP_MS: u64 = 24 * 3600 * 1000;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The ceiling after the first failure.
    pub base_ms: u64,
    /// The largest ceiling.
    pub cap_ms: u64,
    /// Attempts before a message is dead (the first one included).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 2 s doubling to an hour, 12 attempts: at most about 3 h 15 min of waiting in all
    /// (2 s + 4 s + … + 1024 s, then 1 h), enough to ride out a receiver's deploy or a night.
    fn default() -> RetryPolicy {
        RetryPolicy { base_ms: 2_000, cap_ms: 3_600_000, max_attempts: 12 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("max_attempts must be 1-{MAX_ATTEMPTS_LIMIT}")]
    Attempts,
    #[error("base_ms must be at least 1 and at most cap_ms, cap_ms at most {MAX_CAP_MS}")]
    Delays,
}

impl RetryPolicy {
    pub fn check(&self) -> Result<(), PolicyError> {
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err(PolicyError::Attempts);
        }
        if self.base_ms == 0 || self.base_ms > self.cap_ms || self.cap_ms > MAX_CAP_MS {
            return Err(PolicyError::Delays);
        }
        Ok(())
    }

    /// The longest wait after `failures` failures (0 means none yet: no wait).
    pub fn ceiling_ms(&self, failures: u32) -> u64 {
        if failures == 0 {
            return 0;
        }
        let doubling = 1u64.checked_shl(failures - 1).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(doubling).min(self.cap_ms)
    }

    /// The wait after `failures` failures for the random draw `random`: uniform in
    /// `[0, ceiling]` (the modulo's bias is below 2^-30 for any ceiling a policy allows).
    pub fn delay_ms(&self, failures: u32, random: u64) -> u64 {
        random % (self.ceiling_ms(failures) + 1)
    }
}

/// A random number for jitter from the OS generator. Jitter guards nothing secret, so if
/// the generator fails the wait is the ceiling itself rather than no retry at all.
pub fn os_random() -> u64 {
    getrandom::u64().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_schedule_doubles_to_its_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.check(), Ok(()));
        let ceilings: Vec<u64> = (0..=13).map(|n| policy.ceiling_ms(n) / 1000).collect();
        assert_eq!(ceilings, [0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]);
        assert_eq!(policy.ceiling_ms(u32::MAX), policy.cap_ms);
        assert_eq!(policy.delay_ms(3, u64::MAX), u64::MAX % 8001);
    }

    #[test]
    fn bad_policies_are_refused() {
        let ok = RetryPolicy::default();
        assert_eq!(RetryPolicy { max_attempts: 0, ..ok }.check(), Err(PolicyError::Attempts));
        assert_eq!(RetryPolicy { max_attempts: MAX_ATTEMPTS_LIMIT + 1, ..ok }.check(), Err(PolicyError::Attempts));
        assert_eq!(RetryPolicy { base_ms: 0, ..ok }.check(), Err(PolicyError::Delays));
        assert_eq!(RetryPolicy { base_ms: 10, cap_ms: 5, ..ok }.check(), Err(PolicyError::Delays));
        assert_eq!(RetryPolicy { cap_ms: MAX_CAP_MS + 1, ..ok }.check(), Err(PolicyError::Delays));
    }

    #[test]
    fn os_jitter_spreads() {
        let policy = RetryPolicy::default();
        let draws: std::collections::BTreeSet<u64> = (0..32).map(|_| policy.delay_ms(10, os_random())).collect();
        assert!(draws.len() > 16, "{draws:?}");
    }

    fn policies() -> impl Strategy<Value = RetryPolicy> {
        (1u64..=MAX_CAP_MS, 1u32..=MAX_ATTEMPTS_LIMIT)
            .prop_flat_map(|(cap, attempts)| (1u64..=cap, Just(cap), Just(attempts)))
            .prop_map(|(base_ms, cap_ms, max_attempts)| RetryPolicy { base_ms, cap_ms, max_attempts })
    }

    proptest! {
        #[test]
        fn ceilings_are_monotone_and_capped(policy in policies(), n in 1u32..200) {
            prop_assert!(policy.ceiling_ms(n) <= policy.cap_ms);
            prop_assert!(policy.ceiling_ms(n) >= policy.base_ms.min(policy.cap_ms));
            prop_assert!(policy.ceiling_ms(n + 1) >= policy.ceiling_ms(n));
            prop_assert!(policy.ceiling_ms(n + 1) <= policy.ceiling_ms(n).saturating_mul(2));
        }

        #[test]
        fn jitter_stays_within_zero_and_the_ceiling(policy in policies(), n in 0u32..200, random in any::<u64>()) {
            prop_assert!(policy.delay_ms(n, random) <= policy.ceiling_ms(n));
        }
    }
}
