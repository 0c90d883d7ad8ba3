//! Per-environment counters. Secret-free by construction: only numbers.

use crate::prelude::*;
use crate::breaker::Phase;
use crate::error::ErrorKind;
use crate::histogram::Histogram;

/// Errors returned to callers, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub invalid_request: u64,
    pub not_found: u64,
    pub permission_denied: u64,
    pub unavailable: u64,
    pub timeout: u64,
    pub rate_limited: u64,
    pub backend: u64,
}

/// Counters of one environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Reads answered from this instance's memory.
    pub hits: u64,
    /// Reads that missed memory (some of them answered by shared state).
    pub misses: u64,
    /// Misses answered from shared state, without a backend request.
    pub shared_hits: u64,
    /// Shared-state records that failed to open (edited, swapped or sealed
    /// under another key): ignored and replaced, never served.
    pub shared_rejected: u64,
    pub errors: ErrorCounts,
    /// Reads answered with a value past its TTL because the backend failed.
    pub stale_served: u64,
    /// Reads answered from a cached not-found.
    pub negative_hits: u64,
    /// Reads answered by a fallback tier (not the primary).
    pub fallbacks: u64,
    /// Reads sent to the backend although a value was cached (refresh-ahead or `refresh`).
    pub refreshes: u64,
    /// `refresh` reads answered from the cache because the value was fetched
    /// within the refresh interval.
    pub refresh_limited: u64,
    /// Fetches that would have retried but found the retry budget spent, and
    /// failed with their last error instead (`retry.budget`).
    pub budget_exhausted: u64,
}

/// How many counters [`Counters::to_array`] holds.
pub const COUNTER_COUNT: usize = 17;

/// Their names, in [`Counters::to_array`] order (shared-state keys are derived from them).
pub const COUNTER_NAMES: [&str; COUNTER_COUNT] = [
    "hits",
    "misses",
    "shared_hits",
    "shared_rejected",
    "invalid_request",
    "not_found",
    "permission_denied",
    "unavailable",
    "timeout",
    "rate_limited",
    "backend",
    "budget_exhausted",
    "stale_served",
    "negative_hits",
    "fallbacks",
    "refreshes",
    "refresh_limited",
];

impl Counters {
    /// Every counter, in [`COUNTER_NAMES`] order.
    pub fn to_array(&self) -> [u64; COUNTER_COUNT] {
        let e = &self.errors;
        [
            self.hits,
            self.misses,
            self.shared_hits,
            self.shared_rejected,
            e.invalid_request,
            e.not_found,
            e.permission_denied,
            e.unavailable,
            e.timeout,
            e.rate_limited,
            e.backend,
            self.budget_exhausted,
            self.stale_served,
            self.negative_hits,
            self.fallbacks,
            self.refreshes,
            self.refresh_limited,
        ]
    }

    /// The inverse of [`Counters::to_array`].
    pub fn from_array(a: [u64; COUNTER_COUNT]) -> Counters {
        Counters {
            hits: a[0],
            misses: a[1],
            shared_hits: a[2],
            shared_rejected: a[3],
            errors: ErrorCounts {
                invalid_request: a[4],
                not_found: a[5],
                permission_denied: a[6],
                unavailable: a[7],
                timeout: a[8],
                rate_limited: a[9],
                backend: a[10],
            },
            budget_exhausted: a[11],
            stale_served: a[12],
            negative_hits: a[13],
            fallbacks: a[14],
            refreshes: a[15],
            refresh_limited: a[16],
        }
    }

    /// Counts an error returned to a caller.
    pub fn error(&mut self, kind: ErrorKind) {
        let e = &mut self.errors;
        let slot = match kind {
            ErrorKind::InvalidRequest => &mut e.invalid_request,
            ErrorKind::NotFound => &mut e.not_found,
            ErrorKind::PermissionDenied => &mut e.permission_denied,
            ErrorKind::Unavailable => &mut e.unavailable,
            ErrorKind::Timeout => &mut e.timeout,
            ErrorKind::RateLimited => &mut e.rate_limited,
            ErrorKind::Backend => &mut e.backend,
            // Unknown environments and a broken configuration belong to no
            // environment; `health` reports them.
            ErrorKind::UnknownEnvironment | ErrorKind::Config => return,
        };
        *slot += 1;
    }
}

/// Counters of one backend tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierCounters {
    /// HTTP requests sent to this tier (every attempt).
    pub backend_calls: u64,
    /// Attempts that retried an earlier failed one.
    pub retries: u64,
    /// Attempts that failed transiently (what the breaker counts).
    pub failures: u64,
    /// Times this tier's breaker opened (closed or half-open → open).
    pub breaker_opened: u64,
    /// Times it closed again after probing.
    pub breaker_closed: u64,
    /// Reads that skipped this tier: breaker open, or throttled by `Retry-After`.
    pub skipped: u64,
}

/// How many counters [`TierCounters::to_array`] holds.
pub const TIER_COUNTER_COUNT: usize = 6;

/// Their names, in [`TierCounters::to_array`] order.
pub const TIER_COUNTER_NAMES: [&str; TIER_COUNTER_COUNT] =
    ["backend_calls", "retries", "failures", "breaker_opened", "breaker_closed", "skipped"];

impl TierCounters {
    pub fn to_array(&self) -> [u64; TIER_COUNTER_COUNT] {
        [self.backend_calls, self.retries, self.failures, self.breaker_opened, self.breaker_closed, self.skipped]
    }

    pub fn from_array(a: [u64; TIER_COUNTER_COUNT]) -> TierCounters {
        TierCounters { backend_calls: a[0], retries: a[1], failures: a[2], breaker_opened: a[3], breaker_closed: a[4], skipped: a[5] }
    }
}

/// One tier in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierStats {
    pub backend: &'static str,
    pub breaker: Phase,
    pub counters: TierCounters,
    /// Each attempt's duration (answer or failure).
    pub call_latency: Histogram,
}

/// A snapshot of one environment for `admin.stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentStats {
    pub environment: String,
    /// The primary's kind.
    pub backend: &'static str,
    pub counters: Counters,
    /// The primary's breaker.
    pub breaker: Phase,
    pub cache_entries: u32,
    /// Memory hits' durations inside the component (one hit in [`super::HIT_SAMPLE`]).
    pub hit_latency: Histogram,
    /// Per tier, primary first.
    pub tiers: Vec<TierStats>,
}

impl EnvironmentStats {
    /// HTTP requests sent to the environment's backends: its tiers' sum (not
    /// counted twice, so per-tier and environment figures can never disagree).
    pub fn backend_calls(&self) -> u64 {
        self.tiers.iter().map(|t| t.counters.backend_calls).sum()
    }

    /// Attempts that retried an earlier failed one, over every tier.
    pub fn retries(&self) -> u64 {
        self.tiers.iter().map(|t| t.counters.retries).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_round_trip_through_arrays_in_name_order() {
        let mut c = Counters { hits: 1, misses: 2, shared_hits: 3, shared_rejected: 4, budget_exhausted: 7, ..Counters::default() };
        c.error(ErrorKind::InvalidRequest);
        c.error(ErrorKind::Backend);
        c.error(ErrorKind::Backend);
        let a = c.to_array();
        assert_eq!(Counters::from_array(a), c);
        let at = |name: &str| a[COUNTER_NAMES.iter().position(|n| *n == name).unwrap()];
        assert_eq!((at("backend"), at("invalid_request")), (2, 1));
        assert_eq!(a[COUNTER_NAMES.iter().position(|n| *n == "budget_exhausted").unwrap()], 7);
    }
}

/// One environment's health for `admin.health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentHealth {
    pub environment: String,
    /// The best tier's breaker (the environment serves while any tier can).
    pub breaker: Phase,
    pub retry_after_ms: Option<u64>,
    /// Each tier's breaker, primary first.
    pub tiers: Vec<Phase>,
}
