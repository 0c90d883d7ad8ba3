//! Per-environment policy values: cache, timeouts, retry, breaker, body cap.
//! Defaults come first, then `defaults` in the document, then the
//! environment's own values; each is range-checked where it is read.

use crate::prelude::*;
use super::reader::Obj;
use crate::breaker::{BreakerSettings, WindowSettings};
use crate::retry::{RetryBudget, RetryPolicy};

const DAY_MS: u64 = 86_400_000;

/// The largest body cap a policy may set. Secrets are small (GCP caps a version at 64 KiB);
/// a body is held a few times over while it is parsed, so this keeps the worst case well
/// inside a host's usual guest memory limit.
pub const MAX_BODY_CAP: u64 = 16 << 20;

/// The resolved policy of one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub cache_ttl_ms: u64,
    pub cache_pinned_ttl_ms: u64,
    pub cache_max_entries: usize,
    /// How long past its TTL an entry is kept to answer when the backend
    /// fails transiently (0: never serve stale).
    pub max_stale_ms: u64,
    /// How long a not-found answer is cached (0: not cached).
    pub negative_ttl_ms: u64,
    /// After this share of its TTL a hit refreshes the entry (0: never ahead of expiry).
    pub refresh_ahead_percent: u32,
    /// At most one refresh per key per interval, whether refresh-ahead or
    /// asked for with `refresh`.
    pub refresh_interval_ms: u64,
    /// Whether a not-found from one tier sends the read on to the next
    /// (otherwise the primary's not-found is the answer).
    pub fallback_on_not_found: bool,
    pub attempt_timeout_ms: u64,
    pub deadline_ms: u64,
    pub retry: RetryPolicy,
    /// Retries per environment over time (`retry.budget`).
    pub retry_budget: RetryBudget,
    pub breaker: BreakerSettings,
    pub max_body_bytes: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            cache_ttl_ms: 60_000,
            cache_pinned_ttl_ms: 600_000,
            cache_max_entries: 1024,
            max_stale_ms: 300_000,
            negative_ttl_ms: 5_000,
            refresh_ahead_percent: 0,
            refresh_interval_ms: 1_000,
            fallback_on_not_found: false,
            attempt_timeout_ms: 2_000,
            deadline_ms: 5_000,
            // Both constructors accept these constants; see the tests.
            retry: RetryPolicy::new(3, 50, 1_000).unwrap_or_else(|_| unreachable!()),
            retry_budget: RetryBudget::default(),
            breaker: BreakerSettings::new(5, 30_000, 1, 1).unwrap_or_else(|_| unreachable!()),
            max_body_bytes: 1 << 20,
        }
    }
}

impl Policy {
    /// Reads a `defaults` object (groups and `max_body_bytes` only).
    pub fn read(mut obj: Obj<'_>, base: &Policy) -> Result<Policy, String> {
        let policy = Policy::read_inline(&mut obj, base)?;
        obj.finish()?;
        Ok(policy)
    }

    /// Reads the policy keys of `obj` over `base`, leaving other keys of
    /// `obj` for the caller.
    pub fn read_inline(obj: &mut Obj<'_>, base: &Policy) -> Result<Policy, String> {
        let mut p = *base;
        if let Some(mut cache) = obj.object("cache")? {
            p.cache_ttl_ms = cache.integer("ttl_ms", 0..=DAY_MS)?.unwrap_or(p.cache_ttl_ms);
            p.cache_pinned_ttl_ms = cache.integer("pinned_ttl_ms", 0..=DAY_MS)?.unwrap_or(p.cache_pinned_ttl_ms);
            if let Some(n) = cache.integer("max_entries", 1..=1_000_000)? {
                p.cache_max_entries = n as usize;
            }
            p.max_stale_ms = cache.integer("max_stale_ms", 0..=DAY_MS)?.unwrap_or(p.max_stale_ms);
            p.negative_ttl_ms = cache.integer("negative_ttl_ms", 0..=600_000)?.unwrap_or(p.negative_ttl_ms);
            if let Some(n) = cache.integer("refresh_ahead_percent", 0..=99)? {
                p.refresh_ahead_percent = n as u32;
            }
            p.refresh_interval_ms = cache.integer("refresh_interval_ms", 1..=DAY_MS)?.unwrap_or(p.refresh_interval_ms);
            cache.finish()?;
        }
        if let Some(mut t) = obj.object("timeouts")? {
            p.attempt_timeout_ms = t.integer("attempt_ms", 1..=600_000)?.unwrap_or(p.attempt_timeout_ms);
            p.deadline_ms = t.integer("deadline_ms", 1..=600_000)?.unwrap_or(p.deadline_ms);
            t.finish()?;
        }
        if p.deadline_ms < p.attempt_timeout_ms {
            return Err(format!(
                "{}: deadline_ms ({}) must be at least attempt_ms ({})",
                obj.path_of("timeouts"),
                p.deadline_ms,
                p.attempt_timeout_ms
            ));
        }
        if let Some(mut r) = obj.object("retry")? {
            let attempts = r.integer("attempts", 1..=10)?.map_or(p.retry.attempts(), |n| n as u32);
            let base = r.integer("base_delay_ms", 1..=60_000)?.unwrap_or(p.retry.ceiling_ms(0));
            let cap = r.integer("max_delay_ms", 1..=600_000)?.unwrap_or(p.retry.ceiling_ms(u32::MAX));
            if let Some(mut budget) = r.object("budget")? {
                let base = p.retry_budget;
                let ratio = budget.integer("ratio_percent", 0..=1_000)?.map_or(base.ratio_percent(), |n| n as u32);
                let min = budget.integer("min_per_sec", 0..=10_000)?.map_or(base.min_per_sec(), |n| n as u32);
                let window = budget.integer("window_ms", 1_000..=600_000)?.unwrap_or(base.window_ms());
                let path = budget.path().to_string();
                budget.finish()?;
                p.retry_budget = RetryBudget::new(ratio, min, window).map_err(|why| format!("{path}: {why}"))?;
            }
            let path = r.path().to_string();
            r.finish()?;
            p.retry = RetryPolicy::new(attempts, base, cap).map_err(|why| format!("{path}: {why}"))?;
        }
        if let Some(mut b) = obj.object("breaker")? {
            let s = p.breaker;
            let threshold = b.integer("failure_threshold", 1..=1_000)?.map_or(s.failure_threshold, |n| n as u32);
            let open_ms = b.integer("open_ms", 1..=3_600_000)?.unwrap_or(s.open_ms);
            let probes = b.integer("half_open_probes", 1..=100)?.map_or(s.half_open_probes, |n| n as u32);
            let successes = b.integer("success_threshold", 1..=100)?.map_or(s.success_threshold, |n| n as u32);
            let window = read_window(&mut b)?.or(s.window);
            let slow_call_ms = b.integer("slow_call_ms", 1..=600_000)?.or(s.slow_call_ms);
            let path = b.path().to_string();
            b.finish()?;
            let at = |why: String| format!("{path}: {why}");
            p.breaker = BreakerSettings::new(threshold, open_ms, probes, successes)
                .map_err(at)?
                .with_window(window)
                .with_slow_call_ms(slow_call_ms)
                .map_err(at)?;
        }
        p.fallback_on_not_found = obj.boolean("fallback_on_not_found")?.unwrap_or(p.fallback_on_not_found);
        if let Some(n) = obj.integer("max_body_bytes", 1024..=MAX_BODY_CAP)? {
            p.max_body_bytes = n as usize;
        }
        // A probe is one read: it has reported back by the call's deadline, or it never will.
        p.breaker = p.breaker.with_probe_timeout(p.deadline_ms);
        Ok(p)
    }
}

/// The failure-rate window of a `breaker` object: its three keys together or
/// not at all (a window without `min_calls` would be a guess on our part).
fn read_window(b: &mut Obj<'_>) -> Result<Option<WindowSettings>, String> {
    let size = b.integer("window_size", 1..=128)?;
    let rate = b.integer("failure_rate_percent", 1..=100)?;
    let min_calls = b.integer("min_calls", 1..=128)?;
    let (size, rate, min_calls) = match (size, rate, min_calls) {
        (None, None, None) => return Ok(None),
        (Some(size), Some(rate), Some(min_calls)) => (size as u32, rate as u32, min_calls as u32),
        _ => {
            let missing = [("window_size", size), ("failure_rate_percent", rate), ("min_calls", min_calls)]
                .into_iter()
                .find_map(|(key, value)| value.is_none().then_some(key))
                .unwrap_or_default();
            return Err(format!(
                "{}: is required with the other window keys (window_size, failure_rate_percent and min_calls go together)",
                b.path_of(missing)
            ));
        }
    };
    WindowSettings::new(size, rate, min_calls).map(Some).map_err(|why| format!("{}: {why}", b.path_of("min_calls")))
}
