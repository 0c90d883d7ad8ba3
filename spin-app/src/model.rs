//! Plain-data mirrors of the `edge:secrets` WIT types, and the two ports the handler talks
//! through ([`Secrets`], [`Settings`]). The wasm shell implements them over the generated
//! bindings; unit tests implement them with fakes. Nothing here knows about wasm or HTTP.

/// One read, decoded from the request URL. Secret-free (names are not secrets), so `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRead {
    pub environment: String,
    pub name: String,
    pub version: Option<String>,
    pub field: Option<String>,
    /// `?refresh=true`: bypass the cache (the provider rate-limits this per secret).
    pub refresh: bool,
    /// The caller's `traceparent`, already validated and in version-00 form (see
    /// [`crate::trace`]): the provider refuses a malformed one with `invalid-request`.
    pub traceparent: Option<String>,
}

/// A secret value. Holds secret bytes, so no `Debug`, `Display` or `Clone`.
pub struct Secret {
    pub value: Vec<u8>,
    /// The concrete version read (never `latest`).
    pub version: String,
    /// Whether the component answered from its cache.
    pub from_cache: bool,
    /// Past its TTL, served because every backend failed transiently.
    pub stale: bool,
    /// The backend tier it came from: 0 is the primary.
    pub tier: u32,
}

/// The WIT `error` variant. Every case is secret-free by the WIT contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    InvalidRequest(String),
    UnknownEnvironment(String),
    NotFound(String),
    PermissionDenied(String),
    /// Milliseconds until the breaker lets probes through.
    Unavailable(u64),
    /// The environment's total deadline in milliseconds.
    Timeout(u64),
    /// Milliseconds the backend asked callers to wait, when it said.
    RateLimited(Option<u64>),
    Backend { status: Option<u16>, reason: String },
    Config(String),
}

impl SecretError {
    /// The WIT case name, used as the `error` field of JSON bodies and as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            SecretError::InvalidRequest(_) => "invalid-request",
            SecretError::UnknownEnvironment(_) => "unknown-environment",
            SecretError::NotFound(_) => "not-found",
            SecretError::PermissionDenied(_) => "permission-denied",
            SecretError::Unavailable(_) => "unavailable",
            SecretError::Timeout(_) => "timeout",
            SecretError::RateLimited(_) => "rate-limited",
            SecretError::Backend { .. } => "backend",
            SecretError::Config(_) => "config",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const ALL: [BreakerState; 3] = [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen];

    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// Errors returned to callers, by kind (WIT `error-counts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    pub invalid_request: u64,
    pub not_found: u64,
    pub permission_denied: u64,
    pub unavailable: u64,
    pub timeout: u64,
    pub rate_limited: u64,
    pub backend: u64,
}

impl ErrorCounts {
    /// `(kind label, count)` in WIT order.
    pub fn by_kind(&self) -> [(&'static str, u64); 7] {
        [
            ("invalid-request", self.invalid_request),
            ("not-found", self.not_found),
            ("permission-denied", self.permission_denied),
            ("unavailable", self.unavailable),
            ("timeout", self.timeout),
            ("rate-limited", self.rate_limited),
            ("backend", self.backend),
        ]
    }
}

/// Counters of one environment (WIT `environment-stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentStats {
    pub environment: String,
    pub backend: String,
    pub hits: u64,
    pub misses: u64,
    /// Misses answered from the shared (`wasi:keyvalue`) cache.
    pub shared_hits: u64,
    /// Shared records that failed to authenticate (never served).
    pub shared_rejected: u64,
    pub backend_calls: u64,
    pub retries: u64,
    pub errors: ErrorCounts,
    /// Reads answered past the TTL because the backends failed.
    pub stale_served: u64,
    /// Reads answered from a cached not-found.
    pub negative_hits: u64,
    /// Reads answered by a fallback tier.
    pub fallbacks: u64,
    /// Reads sent to the backend although a value was cached (refresh-ahead or `refresh`).
    pub refreshes: u64,
    /// `refresh` reads answered from the cache (fetched within the refresh interval).
    pub refresh_limited: u64,
    /// Reads that would have retried but found the retry budget spent.
    pub budget_exhausted: u64,
    /// The primary's breaker.
    pub breaker: BreakerState,
    pub cache_entries: u32,
    /// The counters are totals over every instance sharing the key-value store (under Spin,
    /// every request's instance); else the answering instance's own.
    pub counters_shared: bool,
    /// How long memory hits took inside the component.
    pub hit_latency: Histogram,
    /// Per tier, the primary first (index = tier number).
    pub tiers: Vec<TierStats>,
}

/// A latency histogram (WIT `latency-histogram`): `counts[i]` samples took at most
/// `bounds_us[i]` µs; the last count has no bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    pub bounds_us: Vec<u64>,
    pub counts: Vec<u64>,
    pub sum_us: u64,
}

/// Counters of one backend tier (WIT `tier-stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierStats {
    /// This tier's backend kind (`vault`, `gcp`, `aws`, `azure`), which may differ from the primary's.
    pub backend: String,
    pub breaker: BreakerState,
    pub backend_calls: u64,
    pub retries: u64,
    /// Transient failures (what the breaker counts).
    pub failures: u64,
    pub breaker_opened: u64,
    pub breaker_closed: u64,
    /// Reads that skipped this tier (breaker open, or a `Retry-After` pause).
    pub skipped: u64,
    /// Each attempt's duration.
    pub call_latency: Histogram,
}

/// Health of one environment (WIT `environment-health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentHealth {
    pub environment: String,
    /// The best tier's breaker (the environment serves while any tier can).
    pub breaker: BreakerState,
    pub retry_after_ms: Option<u64>,
    /// Each tier's breaker, the primary first.
    pub tiers: Vec<BreakerState>,
}

/// WIT `health-report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub ok: bool,
    pub config_error: Option<String>,
    pub environments: Vec<EnvironmentHealth>,
    pub unknown_environment_errors: u64,
    /// The shared-state layer: `disabled`, `no-key`, `ok` or `degraded`.
    pub shared_status: &'static str,
    /// The store's last error while degraded (secret-free).
    pub shared_error: Option<String>,
}

/// The `edge:secrets/secrets` and `edge:secrets/admin` imports, as the handler uses them.
pub trait Secrets {
    fn get(&mut self, read: &SecretRead) -> Result<Secret, SecretError>;
    fn stats(&mut self) -> Vec<EnvironmentStats>;
    fn health(&mut self) -> HealthReport;
}

/// The app's own settings (`wasi:config/store`). `Err` is the store's own failure message.
pub trait Settings {
    fn get(&self, key: &str) -> Result<Option<String>, String>;

    /// The parsed `caller_tokens`: read and parsed on every call unless the implementation
    /// keeps them (the shell does, for a second: [`crate::auth::TokenCache`]).
    fn caller_tokens(&self) -> Result<std::sync::Arc<crate::auth::CallerTokens>, SecretError> {
        crate::handler::read_caller_tokens(self).map(std::sync::Arc::new)
    }
}
