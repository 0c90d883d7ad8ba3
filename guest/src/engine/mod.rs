//! The provider: environments with their caches, breakers and counters, and
//! the read path (validate → cache → fetch). Pure: the clock, randomness and
//! HTTP transport come in through [`Io`].

use crate::prelude::*;

mod credentials;
mod events;
mod fallback;
mod lookup;
pub mod fetch;
mod shared;
pub mod stats;
#[cfg(test)]
mod tests;

use crate::breaker::{Breaker, Phase};
use crate::cache::Cache;
use crate::config::Environment;
use crate::error::Error;
use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::retry::Ledger;
use crate::secret::SecretBytes;
use crate::shared::{SharedSetup, SharedStatus, SharedStore};
use crate::validate::VersionSel;
use crate::validate;
use lookup::Lookup;
use crate::histogram::Histogram;
use crate::trace::TraceParent;
use stats::{Counters, EnvironmentHealth, EnvironmentStats, TierCounters, TierStats};

/// One memory hit of `get` in this many is timed for the hit-latency histogram.
pub const HIT_SAMPLE: u64 = 8;

/// Time in milliseconds, and sleeping.
pub trait Clock {
    /// Monotonic time: deadlines, timeouts and this instance's cache TTLs.
    fn now_ms(&self) -> u64;
    /// Wall-clock time (Unix milliseconds): anything shared with other
    /// instances or hosts (shared cache expiry, breaker open periods, leases),
    /// whose monotonic clocks have other origins.
    fn wall_ms(&self) -> u64;
    fn sleep_ms(&mut self, ms: u64);
    /// Monotonic time in microseconds, for latency histograms; clocks that
    /// can should say more than `now_ms` does.
    fn now_us(&self) -> u64 {
        self.now_ms().saturating_mul(1_000)
    }
}

/// Uniform random numbers: backoff jitter, and (with shared state) AEAD nonces
/// and lease ids, so with shared state it must be cryptographically secure
/// (`wasi:random/random` in the component).
pub trait Random {
    fn next_u64(&mut self) -> u64;
}

/// One request for the transport, with its limits.
#[derive(Debug)]
pub struct Outbound {
    pub request: HttpRequest,
    /// The whole exchange (connect, headers, body) must finish within this.
    pub timeout_ms: u64,
    /// Bodies above this are cut off with `BodyTooLarge`.
    pub max_body_bytes: usize,
}

/// Identifies a request started on a [`Transport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// Sends requests concurrently. Requests are started one by one and
/// collected as they finish, so a slow request never holds back the handling
/// (and the retries) of a fast one.
pub trait Transport {
    /// Starts a request; it runs until it finishes or its timeout passes.
    fn start(&mut self, outbound: Outbound) -> Ticket;

    /// Waits until at least one started request has finished, or until the
    /// monotonic time `until_ms` (if given) has come, whichever is first.
    /// Returns the requests that finished (possibly none when `until_ms`
    /// came first). With nothing in flight it returns at once.
    fn wait(&mut self, until_ms: Option<u64>) -> Vec<(Ticket, Result<HttpResponse, TransportError>)>;
}

/// The effects the provider may use.
pub struct Io<'a> {
    pub clock: &'a mut dyn Clock,
    pub random: &'a mut dyn Random,
    pub transport: &'a mut dyn Transport,
    /// The shared-state bucket; only used when the provider has shared state
    /// configured ([`crate::shared::NoStore`] otherwise).
    pub store: &'a mut dyn SharedStore,
    /// The config store, for the credentials an environment reads on its first
    /// backend read ([`crate::config::Environment::read_credentials`]).
    pub config: &'a dyn crate::config::ConfigSource,
}

/// A read request, as received from a caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretRequest {
    pub environment: String,
    pub name: String,
    pub version: Option<String>,
    pub field: Option<String>,
    /// Bypass the cache (rate-limited per key: within the environment's
    /// `cache.refresh_interval_ms` of the last fetch, the cached value is the answer).
    pub refresh: bool,
    /// The caller's W3C `traceparent`, propagated to backend calls.
    pub traceparent: Option<String>,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Backend,
    Cache,
}

/// A successful read.
#[derive(Debug, Clone)]
pub struct Secret {
    pub value: SecretBytes,
    pub version: String,
    pub source: Source,
    /// Past its TTL: served because the backend failed transiently.
    pub stale: bool,
    /// The tier that served the value (0: the primary).
    pub tier: u32,
}

impl Secret {
    fn cached(cached: &crate::cache::Cached, stale: bool) -> Secret {
        Secret { value: cached.value.clone(), version: cached.version.clone(), source: Source::Cache, stale, tier: cached.tier }
    }
}

/// One configured environment and its live state.
struct EnvState {
    env: Environment,
    cache: Cache,
    /// How long memory hits took inside the component.
    hit_latency: Histogram,
    /// One per tier, in tier order.
    tiers: Vec<TierState>,
    /// This instance's retry-budget counts (see [`shared::budget`]).
    budget: Ledger,
    counters: Counters,
    /// The primary backend and URL as shared cache entries are bound to them,
    /// written on first use (see `shared::backend_identity`).
    backend_identity: core::cell::OnceCell<String>,
    /// Whether a failure to read its credentials was logged (once per instance).
    credential_error_logged: bool,
}

/// One backend tier's live state.
struct TierState {
    breaker: Breaker,
    /// The backend asked for a pause (`Retry-After` on a throttle): no request
    /// to it before this monotonic time.
    throttled_until_ms: u64,
    counters: TierCounters,
    /// How long each attempt took, answer or failure.
    call_latency: Histogram,
    /// The token it holds, when its method issues tokens.
    auth: credentials::TierAuth,
}

/// Why a read goes to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Nothing usable was cached.
    Miss,
    /// The caller asked for `refresh`.
    Forced,
    /// The cached value is still fresh but due for refresh-ahead; on a
    /// failure the caller keeps it.
    Ahead,
}

/// A read that is going to the backend, validated.
struct Job {
    env: usize,
    name: String,
    version: VersionSel,
    field: String,
    reason: Reason,
    /// A shared answer fetched before this wall time does not satisfy the job
    /// (it is the value being refreshed).
    fresher_than_wall_ms: u64,
    /// The caller's trace, when it sent one.
    trace: Option<TraceParent>,
}

impl Job {
    fn cache_key(&self) -> crate::cache::CacheKey {
        crate::cache::CacheKey { name: self.name.clone(), version: self.version.clone(), field: self.field.clone() }
    }
}

/// The provider.
pub struct Provider {
    /// In the order they were added (see [`Provider::add_environment`]).
    envs: Vec<EnvState>,
    unknown_environment_errors: u64,
    shared: shared::Layer,
    /// Events for the WASI layer to write out after each call.
    log: crate::log::Log,
    /// Answers that arrived while a login was waited for, for the fetch loop,
    /// with when they arrived (monotonic ms).
    stash: Vec<(Ticket, Result<HttpResponse, TransportError>, u64)>,
}

impl Provider {
    /// A provider over loaded environments, with in-memory state only.
    pub fn new(environments: Vec<Environment>) -> Provider {
        Provider::with_shared(environments, SharedSetup::Disabled)
    }

    /// A provider whose cache and breakers are also kept in a shared bucket
    /// (when `shared` is ready).
    pub fn with_shared(environments: Vec<Environment>, shared: SharedSetup) -> Provider {
        let mut provider =
            Provider { envs: Vec::new(), unknown_environment_errors: 0, shared: shared::Layer::new(shared), log: Default::default(), stash: Vec::new() };
        environments.into_iter().for_each(|env| provider.add_environment(env));
        provider
    }

    /// Adds an environment loaded after the others (the component reads each
    /// one when a call first names it). Its index stays the same for the
    /// provider's life: shared-state bookkeeping is kept per index.
    pub fn add_environment(&mut self, env: Environment) {
        debug_assert!(self.find(&env.spec.name).is_none(), "an environment is added once");
        let tiers = env
            .spec
            .tiers
            .iter()
            .map(|_| TierState {
                breaker: Breaker::new(env.spec.policy.breaker),
                throttled_until_ms: 0,
                counters: TierCounters::default(),
                call_latency: Histogram::default(),
                auth: credentials::TierAuth::default(),
            })
            .collect();
        self.envs.push(EnvState {
            cache: Cache::new(env.spec.policy.cache_max_entries),
            hit_latency: Histogram::default(),
            tiers,
            budget: Ledger::default(),
            counters: Counters::default(),
            backend_identity: core::cell::OnceCell::new(),
            credential_error_logged: false,
            env,
        });
    }

    /// Reads one secret.
    pub fn get(&mut self, request: &SecretRequest, io: &mut Io<'_>) -> Result<Secret, Error> {
        let start_us = io.clock.now_us();
        let now = start_us / 1_000;
        self.shared.begin_call(now);
        match self.lookup(request, now) {
            Lookup::Hit(env, secret) => {
                // Timing a hit costs a second clock read, ~15 % of the hit itself: one in
                // HIT_SAMPLE is timed, so the histogram shows the distribution for a fraction.
                if self.envs[env].counters.hits.is_multiple_of(HIT_SAMPLE) {
                    let elapsed = io.clock.now_us().saturating_sub(start_us);
                    self.envs[env].hit_latency.record(elapsed);
                }
                self.end_call_counts(io, now);
                Ok(secret)
            }
            Lookup::Done(result) => {
                self.end_call_counts(io, now);
                result
            }
            Lookup::Miss(job) => {
                let mut results = self.resolve(vec![job], io);
                let result = results.pop().unwrap_or_else(|| Err(Error::backend(None, "internal: no result")));
                self.end_call_counts(io, now);
                result
            }
        }
    }

    /// Reads several secrets; misses are fetched in parallel. Results are in
    /// request order.
    pub fn get_many(&mut self, requests: &[SecretRequest], io: &mut Io<'_>) -> Vec<Result<Secret, Error>> {
        let now = io.clock.now_ms();
        self.shared.begin_call(now);
        let mut done: Vec<Option<Result<Secret, Error>>> = Vec::with_capacity(requests.len());
        let mut jobs = Vec::new();
        for (slot, request) in requests.iter().enumerate() {
            match self.lookup(request, now) {
                Lookup::Hit(_, secret) => done.push(Some(Ok(secret))),
                Lookup::Done(result) => done.push(Some(result)),
                Lookup::Miss(job) => {
                    done.push(None);
                    jobs.push((slot, job));
                }
            }
        }
        if !jobs.is_empty() {
            let (slots, jobs): (Vec<usize>, Vec<Job>) = jobs.into_iter().unzip();
            for (slot, result) in slots.into_iter().zip(self.resolve(jobs, io)) {
                done[slot] = Some(result);
            }
        }
        self.end_call_counts(io, now);
        done.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::backend(None, "internal: no result"))))
            .collect()
    }

    /// Drops cached entries of an environment (all, or one secret's) from this
    /// instance's memory and, with shared state, makes every shared entry of the
    /// environment unreachable (each carries the environment's epoch, which
    /// this moves on with one write; one secret cannot be singled out there,
    /// since its entries' keys are not enumerable). Returns how many in-memory
    /// entries were dropped.
    pub fn invalidate(&mut self, environment: &str, name: Option<&str>, io: &mut Io<'_>) -> Result<u32, Error> {
        let now = io.clock.now_ms();
        self.shared.begin_call(now);
        let Some(i) = self.find(environment) else {
            self.unknown_environment_errors += 1;
            return Err(Error::UnknownEnvironment(validate::shorten(environment)));
        };
        let cache = &mut self.envs[i].cache;
        let dropped = match name {
            Some(name) => cache.remove_name(name),
            None => cache.clear(),
        };
        if !self.invalidate_shared(i, io) {
            // The caller relies on the next read not serving the old value: say it cannot
            // be promised instead of reporting success.
            return Err(Error::Unavailable { retry_after_ms: shared::STORE_BACKOFF_MS });
        }
        Ok(dropped)
    }

    /// Counters per environment, sorted by name. `now_ms` is wall-clock time
    /// (breakers run on it; see [`Clock::wall_ms`]).
    pub fn stats(&self, now_ms: u64) -> Vec<EnvironmentStats> {
        self.by_name()
            .map(|s| EnvironmentStats {
                environment: s.env.spec.name.clone(),
                backend: s.env.spec.primary().backend.kind(),
                counters: s.counters,
                breaker: s.tiers[0].breaker.phase(now_ms).0,
                cache_entries: u32::try_from(s.cache.len()).unwrap_or(u32::MAX),
                hit_latency: s.hit_latency,
                tiers: s
                    .tiers
                    .iter()
                    .zip(&s.env.spec.tiers)
                    .map(|(t, spec)| TierStats {
                        backend: spec.backend.kind(),
                        breaker: t.breaker.phase(now_ms).0,
                        counters: t.counters,
                        call_latency: t.call_latency,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Breaker health per environment, sorted by name (`now_ms`: wall-clock).
    pub fn health(&self, now_ms: u64) -> Vec<EnvironmentHealth> {
        self.by_name()
            .map(|s| {
                // The environment can serve while any tier can: report the best one.
                let (breaker, retry_after_ms) = s
                    .tiers
                    .iter()
                    .map(|t| t.breaker.phase(now_ms))
                    .min_by_key(|(phase, after)| (*phase != Phase::Closed, *after))
                    .unwrap_or((Phase::Closed, None));
                let tiers = s.tiers.iter().map(|t| t.breaker.phase(now_ms).0).collect();
                EnvironmentHealth { environment: s.env.spec.name.clone(), breaker, retry_after_ms, tiers }
            })
            .collect()
    }

    /// Whether every breaker is closed.
    pub fn all_closed(&self, now_ms: u64) -> bool {
        self.envs.iter().all(|s| s.tiers.iter().all(|t| t.breaker.phase(now_ms).0 == Phase::Closed))
    }

    /// The state of the shared-state layer, and the last store error (secret-free).
    pub fn shared_status(&self) -> (SharedStatus, Option<&str>) {
        self.shared.status()
    }

    /// The events logged since the last call (oldest first).
    pub fn take_log(&mut self) -> Vec<crate::log::Event> {
        self.log.drain()
    }

    /// The least severe level logged (the policy's `log.level`).
    pub fn set_log_level(&mut self, level: crate::log::Level) {
        self.log.set_level(level);
    }

    /// Requests that named an unconfigured environment.
    pub fn unknown_environment_errors(&self) -> u64 {
        self.unknown_environment_errors
    }

    fn find(&self, environment: &str) -> Option<usize> {
        self.envs.iter().position(|s| s.env.spec.name == environment)
    }

    /// The environments' indices sorted by name (they are kept in the order
    /// they were added).
    fn order_by_name(&self) -> Vec<usize> {
        // An insertion sort: a few environments, and a library sort cost ~8 KB of guest.
        let name = |i: usize| self.envs[i].env.spec.name.as_str();
        let mut order: Vec<usize> = Vec::with_capacity(self.envs.len());
        for i in 0..self.envs.len() {
            let at = order.partition_point(|&j| name(j) < name(i));
            order.insert(at, i);
        }
        order
    }

    fn by_name(&self) -> impl Iterator<Item = &EnvState> {
        self.order_by_name().into_iter().map(|i| &self.envs[i])
    }
}

