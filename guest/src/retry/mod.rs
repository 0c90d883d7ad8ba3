//! Retry policy: how many attempts, and how long to wait between them.
//!
//! Exponential backoff with full jitter: before retry `n` (0-based) sleep a
//! uniformly random time in `[0, min(cap, base * 2^n)]`. Full jitter spreads
//! the retries of many callers that failed together, so a recovering backend
//! is not hit by synchronized waves. The random source is a parameter.
//!
//! How many retries an environment may make over time, whatever `attempts`
//! allows each call: [`budget`].

use crate::prelude::*;

pub mod budget;

pub use budget::{Ledger, RetryBudget};

/// Validated retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    attempts: u32,
    base_delay_ms: u64,
    max_delay_ms: u64,
}

impl RetryPolicy {
    /// `attempts` counts the first try (1 = never retry).
    pub fn new(attempts: u32, base_delay_ms: u64, max_delay_ms: u64) -> Result<RetryPolicy, String> {
        if !(1..=10).contains(&attempts) {
            return Err(format!("attempts must be between 1 and 10, got {attempts}"));
        }
        if base_delay_ms == 0 {
            return Err("base_delay_ms must be at least 1".into());
        }
        if max_delay_ms < base_delay_ms {
            return Err(format!("max_delay_ms ({max_delay_ms}) must be at least base_delay_ms ({base_delay_ms})"));
        }
        Ok(RetryPolicy { attempts, base_delay_ms, max_delay_ms })
    }

    /// Total attempts allowed.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The upper bound of the sleep before retry `n` (0-based).
    pub fn ceiling_ms(&self, retry: u32) -> u64 {
        let factor = 1u64.checked_shl(retry).unwrap_or(u64::MAX);
        self.base_delay_ms.saturating_mul(factor).min(self.max_delay_ms)
    }

    /// The sleep before retry `n`, given a uniformly random `u64`.
    pub fn backoff_ms(&self, retry: u32, random: u64) -> u64 {
        let ceiling = self.ceiling_ms(retry);
        // The modulo bias is below 2^-40 for any ceiling we allow.
        random % (ceiling + 1)
    }

    /// Decides the wait before the next attempt, or `None` to stop.
    ///
    /// `attempts_made` counts attempts already sent. `retry_after_ms` is the
    /// backend's own hint: it replaces the backoff when given, because the
    /// backend knows better than our guess. Any wait that would end at or
    /// past `deadline_ms` stops the retries: a retry that cannot finish in
    /// time only adds load.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        retry_after_ms: Option<u64>,
        now_ms: u64,
        deadline_ms: u64,
        random: u64,
    ) -> Option<u64> {
        if attempts_made >= self.attempts {
            return None;
        }
        let delay = match retry_after_ms {
            Some(hint) => hint,
            None => self.backoff_ms(attempts_made.saturating_sub(1), random),
        };
        (now_ms.saturating_add(delay) < deadline_ms).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let p = RetryPolicy::new(10, 50, 300).unwrap();
        let ceilings: Vec<u64> = (0..5).map(|n| p.ceiling_ms(n)).collect();
        assert_eq!(ceilings, [50, 100, 200, 300, 300]);
        assert_eq!(p.ceiling_ms(200), 300, "huge exponents saturate, no overflow");
    }

    #[test]
    fn backoff_is_full_jitter_within_the_ceiling() {
        let p = RetryPolicy::new(5, 100, 10_000).unwrap();
        assert_eq!(p.backoff_ms(0, 0), 0);
        assert_eq!(p.backoff_ms(0, 100), 100);
        assert_eq!(p.backoff_ms(0, 101), 0);
        assert_eq!(p.backoff_ms(2, 399), 399);
        for r in [1u64, 7, 12345, u64::MAX] {
            assert!(p.backoff_ms(3, r) <= 800);
        }
    }

    #[test]
    fn stops_after_the_attempt_budget() {
        let p = RetryPolicy::new(3, 10, 10).unwrap();
        assert!(p.next_delay(1, None, 0, 10_000, 5).is_some());
        assert!(p.next_delay(2, None, 0, 10_000, 5).is_some());
        assert_eq!(p.next_delay(3, None, 0, 10_000, 5), None);
    }

    #[test]
    fn retry_after_replaces_backoff_only_when_it_fits_the_deadline() {
        let p = RetryPolicy::new(3, 10, 10).unwrap();
        assert_eq!(p.next_delay(1, Some(2_000), 0, 5_000, 0), Some(2_000));
        assert_eq!(p.next_delay(1, Some(2_000), 4_000, 5_000, 0), None);
    }

    #[test]
    fn never_sleeps_past_the_deadline() {
        let p = RetryPolicy::new(3, 1_000, 1_000).unwrap();
        assert_eq!(p.next_delay(1, None, 4_500, 5_000, 999), None);
        assert_eq!(p.next_delay(1, None, 4_500, 5_000, 100), Some(100));
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(RetryPolicy::new(0, 1, 1).is_err());
        assert!(RetryPolicy::new(11, 1, 1).is_err());
        assert!(RetryPolicy::new(1, 0, 1).is_err());
        assert!(RetryPolicy::new(1, 10, 5).is_err());
    }
}
