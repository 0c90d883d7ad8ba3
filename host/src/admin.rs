//! The operational view (`edge:secrets/admin`) as plain host types: counters, breaker states and
//! health. Secret-free, so these derive `Debug` and `Serialize` (for `--json` output and
//! benchmarks).

use serde::Serialize;

use crate::bindings::wit_admin as wit;

/// The state of an environment's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

/// Errors returned to callers, by kind (`unknown-environment` is counted in [`HealthReport`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    pub invalid_request: u64,
    pub not_found: u64,
    pub permission_denied: u64,
    pub unavailable: u64,
    pub timeout: u64,
    pub rate_limited: u64,
    pub backend: u64,
}

/// Counters for one environment: this instance's since it started, or totals over every instance
/// sharing the key-value store (`counters_shared`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentStats {
    pub environment: String,
    /// `vault` or `gcp`.
    pub backend: String,
    /// Reads answered from the instance's memory.
    pub hits: u64,
    /// Reads that missed memory (some answered by shared state).
    pub misses: u64,
    /// Misses answered from the shared cache, with no backend request.
    pub shared_hits: u64,
    /// Shared records that failed to authenticate (never served).
    pub shared_rejected: u64,
    /// HTTP requests sent (every attempt counts).
    pub backend_calls: u64,
    pub retries: u64,
    pub errors: ErrorCounts,
    /// Reads answered with a value past its TTL because the backends failed.
    pub stale_served: u64,
    /// Reads answered from a cached not-found.
    pub negative_hits: u64,
    /// Reads answered by a fallback tier.
    pub fallbacks: u64,
    /// Reads sent to the backend although a value was cached (refresh-ahead, `refresh`).
    pub refreshes: u64,
    /// `refresh` reads answered from the cache (fetched within the refresh interval).
    pub refresh_limited: u64,
    /// Reads that found the retry budget spent and failed after their attempt.
    pub budget_exhausted: u64,
    /// The primary's breaker.
    pub breaker: BreakerState,
    pub cache_entries: u32,
    /// The counters are totals over every instance sharing the key-value store (else this
    /// instance's).
    pub counters_shared: bool,
    /// How long memory hits of `get` took inside the component.
    pub hit_latency: LatencyHistogram,
    /// Per backend tier, the primary first.
    pub tiers: Vec<TierStats>,
}

/// Counters of one backend tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierStats {
    /// `vault` or `gcp`.
    pub backend: String,
    pub breaker: BreakerState,
    /// HTTP requests sent to this tier (every attempt).
    pub backend_calls: u64,
    pub retries: u64,
    /// Attempts that failed transiently.
    pub failures: u64,
    pub breaker_opened: u64,
    pub breaker_closed: u64,
    /// Reads that skipped this tier (breaker open, or a `Retry-After` pause).
    pub skipped: u64,
    /// Each attempt's duration (millisecond resolution).
    pub call_latency: LatencyHistogram,
}

/// A latency histogram: `counts[i]` samples took at most `bounds_us[i]` µs (and more than the
/// bound before); the last count has no bound.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LatencyHistogram {
    pub bounds_us: Vec<u64>,
    pub counts: Vec<u64>,
    pub sum_us: u64,
}

impl LatencyHistogram {
    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl From<wit::LatencyHistogram> for LatencyHistogram {
    fn from(h: wit::LatencyHistogram) -> Self {
        LatencyHistogram { bounds_us: h.bounds_us, counts: h.counts, sum_us: h.sum_us }
    }
}

/// Health of one environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentHealth {
    pub environment: String,
    /// The best tier's breaker: the environment serves while any tier can.
    pub breaker: BreakerState,
    /// While that breaker is open: milliseconds until probes are let through.
    pub retry_after_ms: Option<u64>,
    /// Each tier's breaker, the primary first.
    pub tiers: Vec<BreakerState>,
}

/// Health of the whole component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// `true` when the configuration loaded and every breaker is closed.
    pub ok: bool,
    /// Why the configuration failed to load, if it did.
    pub config_error: Option<String>,
    /// Per environment, sorted by environment name.
    pub environments: Vec<EnvironmentHealth>,
    pub unknown_environment_errors: u64,
    /// The shared-state layer (`wasi:keyvalue`).
    pub shared: SharedHealth,
}

/// Whether state is shared through `wasi:keyvalue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SharedStatus {
    /// No `shared` object in the policy.
    Disabled,
    /// Configured, but the sealing key is not set: memory only.
    NoKey,
    Ok,
    /// The last store operation failed: running from memory.
    Degraded,
}

/// The shared-state layer's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedHealth {
    pub status: SharedStatus,
    /// The store's last error while degraded.
    pub last_error: Option<String>,
}

impl From<wit::BreakerState> for BreakerState {
    fn from(s: wit::BreakerState) -> Self {
        match s {
            wit::BreakerState::Closed => BreakerState::Closed,
            wit::BreakerState::Open => BreakerState::Open,
            wit::BreakerState::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

impl From<wit::ErrorCounts> for ErrorCounts {
    fn from(c: wit::ErrorCounts) -> Self {
        ErrorCounts {
            invalid_request: c.invalid_request,
            not_found: c.not_found,
            permission_denied: c.permission_denied,
            unavailable: c.unavailable,
            timeout: c.timeout,
            rate_limited: c.rate_limited,
            backend: c.backend,
        }
    }
}

impl From<wit::EnvironmentStats> for EnvironmentStats {
    fn from(s: wit::EnvironmentStats) -> Self {
        EnvironmentStats {
            environment: s.environment,
            backend: s.backend,
            hits: s.hits,
            misses: s.misses,
            shared_hits: s.shared_hits,
            shared_rejected: s.shared_rejected,
            backend_calls: s.backend_calls,
            retries: s.retries,
            errors: s.errors.into(),
            stale_served: s.stale_served,
            negative_hits: s.negative_hits,
            fallbacks: s.fallbacks,
            refreshes: s.refreshes,
            refresh_limited: s.refresh_limited,
            budget_exhausted: s.budget_exhausted,
            breaker: s.breaker.into(),
            cache_entries: s.cache_entries,
            counters_shared: s.counters_shared,
            hit_latency: s.hit_latency.into(),
            tiers: s.tiers.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::TierStats> for TierStats {
    fn from(t: wit::TierStats) -> Self {
        TierStats {
            backend: t.backend,
            breaker: t.breaker.into(),
            backend_calls: t.backend_calls,
            retries: t.retries,
            failures: t.failures,
            breaker_opened: t.breaker_opened,
            breaker_closed: t.breaker_closed,
            skipped: t.skipped,
            call_latency: t.call_latency.into(),
        }
    }
}

impl From<wit::EnvironmentHealth> for EnvironmentHealth {
    fn from(h: wit::EnvironmentHealth) -> Self {
        EnvironmentHealth {
            environment: h.environment,
            breaker: h.breaker.into(),
            retry_after_ms: h.retry_after_ms,
            tiers: h.tiers.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<wit::HealthReport> for HealthReport {
    fn from(h: wit::HealthReport) -> Self {
        HealthReport {
            ok: h.ok,
            config_error: h.config_error,
            environments: h.environments.into_iter().map(Into::into).collect(),
            unknown_environment_errors: h.unknown_environment_errors,
            shared: SharedHealth {
                status: match h.shared.status {
                    wit::SharedStatus::Disabled => SharedStatus::Disabled,
                    wit::SharedStatus::NoKey => SharedStatus::NoKey,
                    wit::SharedStatus::Ok => SharedStatus::Ok,
                    wit::SharedStatus::Degraded => SharedStatus::Degraded,
                },
                last_error: h.shared.last_error,
            },
        }
    }
}
