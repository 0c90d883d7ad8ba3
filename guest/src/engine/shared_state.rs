//! The read path's use of shared state: misses are looked up in the shared
//! bucket before the backend, fetched values are published to it, and a short
//! lease lets one instance fetch a secret while the others wait for its answer.
//! (Breakers: [`super::shared_breaker`]; counters: [`super::shared_counters`].)
//!
//! Every store failure falls back to this instance's memory and is reported by
//! `health`; the store is then left alone for [`STORE_BACKOFF_MS`], so a hung
//! store costs one timeout a second, not one per call. Shared state makes the
//! component better, never less available.

use crate::prelude::*;
use super::shared_lease::{Held, Lease};
use super::{Io, Job, Provider, Reason, Secret};
use crate::cache::{CacheKey, Cached};
use crate::error::Error;
use crate::secret::SecretBytes;
use crate::shared::record::CacheRecord;
use crate::shared::seal::{self, SealKey};
use crate::shared::{SharedSetup, SharedStatus, SharedStore, StoreError};
use crate::validate::VersionSel;

/// How often an instance waiting on another's lease looks for its answer.
pub const LEASE_POLL_MS: u64 = 20;
/// After a store failure, how long the store is left alone (monotonic ms).
pub const STORE_BACKOFF_MS: u64 = 1_000;

/// The shared-state layer of a provider.
pub(super) struct Layer {
    pub(super) ready: Option<Ready>,
    status: SharedStatus,
    last_error: Option<String>,
    /// The store is not used for the rest of this call (it failed, or is backing off).
    pub(super) suspended: bool,
    /// After a failure: no store use before this monotonic time.
    retry_at_ms: Option<u64>,
    /// Answers fetched during this call, to publish when it ends.
    outbox: Vec<(usize, CacheKey, Outgoing, u64)>,
    /// Per environment, the invalidation epoch read during this call.
    epochs: Vec<Option<i64>>,
    /// Whether the store was used since counters were last flushed.
    pub(super) touched: bool,
    /// Per environment: the counter values already added to the shared totals.
    pub(super) flushed: Vec<Vec<u64>>,
    /// When counters were last flushed (monotonic ms).
    pub(super) last_flush_ms: Option<u64>,
}

pub(super) struct Ready {
    pub(super) key: SealKey,
    pub(super) lease_ms: u64,
}

impl Layer {
    pub(super) fn new(setup: SharedSetup) -> Layer {
        let (ready, status) = match setup {
            SharedSetup::Disabled => (None, SharedStatus::Disabled),
            SharedSetup::NoKey { .. } => (None, SharedStatus::NoKey),
            // The bucket itself is opened by the WASI layer, which owns the handle.
            SharedSetup::Ready { key, lease_ms, .. } => (Some(Ready { key, lease_ms }), SharedStatus::Ok),
        };
        Layer {
            ready,
            status,
            last_error: None,
            suspended: false,
            retry_at_ms: None,
            outbox: Vec::new(),
            epochs: Vec::new(),
            touched: false,
            flushed: Vec::new(),
            last_flush_ms: None,
        }
    }

    pub(super) fn status(&self) -> (SharedStatus, Option<&str>) {
        (self.status, self.last_error.as_deref())
    }

    pub(super) fn usable(&self) -> Option<&Ready> {
        self.ready.as_ref().filter(|_| !self.suspended)
    }

    /// Starts an exported call: the store is used unless it is backing off.
    pub(super) fn begin_call(&mut self, now_ms: u64) {
        self.suspended = self.retry_at_ms.is_some_and(|at| now_ms < at);
        self.epochs.clear();
    }

    fn failed(&mut self, error: StoreError, now_ms: u64) {
        self.suspended = true;
        self.retry_at_ms = Some(now_ms.saturating_add(STORE_BACKOFF_MS));
        self.status = SharedStatus::Degraded;
        self.last_error = Some(crate::error::sanitize_reason(&error.0));
    }

    fn worked(&mut self) {
        self.retry_at_ms = None;
        self.status = SharedStatus::Ok;
        self.last_error = None;
    }
}

pub(super) fn version_text(version: VersionSel) -> String {
    match version {
        VersionSel::Latest => "latest".to_string(),
        VersionSel::Pinned(n) => n.to_string(),
    }
}

/// An answer to publish: a value, or a not-found (its message).
pub(super) enum Outgoing {
    Value(Cached),
    NotFound(String),
}

/// A fresh AEAD nonce from the provider's random source (in the component,
/// `wasi:random/random`, a CSPRNG; see [`super::Random`]).
pub(super) fn nonce(io: &mut Io<'_>) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&io.random.next_u64().to_le_bytes());
    out[8..].copy_from_slice(&io.random.next_u64().to_le_bytes()[..4]);
    out
}

fn same_read(a: &Job, b: &Job) -> bool {
    a.env == b.env && a.name == b.name && a.version == b.version
}

impl Provider {
    /// Answers validated misses: from shared state, by waiting for another
    /// instance's fetch, or from the backend. One result per job, in order.
    pub(super) fn resolve(&mut self, jobs: Vec<Job>, io: &mut Io<'_>) -> Vec<Result<Secret, Error>> {
        if self.shared.ready.is_none() {
            return self.fetch(jobs, io);
        }
        let start = io.clock.now_ms();
        let wall = io.clock.wall_ms();
        let jobs: Vec<Job> = jobs.into_iter().map(|job| self.with_freshness(job, wall)).collect();
        let mut results: Vec<Option<Result<Secret, Error>>> = jobs.iter().map(|_| None).collect();
        let mut wait: Vec<(usize, Job, u64)> = Vec::new();
        let mut own = Vec::new();
        for (slot, job) in jobs.into_iter().enumerate() {
            self.claim(slot, job, false, &mut own, &mut wait, &mut results, io);
        }
        self.fetch_own(own, &mut results, io, start);
        // Wait for the other instances' answers, up to their leases and at most
        // half the deadline (leaving the other half for a fetch of our own).
        while !wait.is_empty() {
            io.clock.sleep_ms(LEASE_POLL_MS);
            let (now, wall) = (io.clock.now_ms(), io.clock.wall_ms());
            let mut own = Vec::new();
            for (slot, job, until) in core::mem::take(&mut wait) {
                let budget_over = now >= start.saturating_add(self.envs[job.env].env.spec.policy.deadline_ms / 2);
                if let Some(answer) = self.shared_lookup(&job, io) {
                    results[slot] = Some(answer);
                } else if budget_over || self.shared.usable().is_none() {
                    own.push((slot, job, None));
                } else if wall >= until {
                    // The holder's lease ran out: take it over (or wait for whoever did).
                    self.claim(slot, job, true, &mut own, &mut wait, &mut results, io);
                } else {
                    wait.push((slot, job, until));
                }
            }
            self.fetch_own(own, &mut results, io, start);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::backend(None, "internal: no result"))))
            .collect()
    }

    /// Decides who answers `job`: shared state now (unless `looked_up` just
    /// now found nothing), this instance (under a lease it takes, or one it
    /// already holds for the same read), or another instance.
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &mut self,
        slot: usize,
        job: Job,
        looked_up: bool,
        own: &mut Vec<(usize, Job, Option<Held>)>,
        wait: &mut Vec<(usize, Job, u64)>,
        results: &mut [Option<Result<Secret, Error>>],
        io: &mut Io<'_>,
    ) {
        // Another field of a read this call fetches anyway: one request serves both.
        if own.iter().any(|(_, other, _)| same_read(other, &job)) {
            own.push((slot, job, None));
            return;
        }
        if !looked_up {
            if let Some(answer) = self.shared_lookup(&job, io) {
                results[slot] = Some(answer);
                return;
            }
        }
        match self.lease(&job, io) {
            Lease::Fetch(Some(held)) => {
                // Another instance may have published and released between our lookup and
                // our lease: look once more before going to the backend.
                if let Some(answer) = self.shared_lookup(&job, io) {
                    self.release(&held, io);
                    results[slot] = Some(answer);
                } else {
                    own.push((slot, job, Some(held)));
                }
            }
            Lease::Fetch(None) => own.push((slot, job, None)),
            // Another instance is refreshing this value: keep serving it meanwhile.
            Lease::HeldUntil(_) if job.reason == Reason::Ahead => match self.still_cached(&job, io) {
                Some(secret) => results[slot] = Some(Ok(secret)),
                None => own.push((slot, job, None)),
            },
            Lease::HeldUntil(until) => wait.push((slot, job, until)),
        }
    }

    /// Fetches this instance's share, publishes the answers, releases its leases.
    fn fetch_own(&mut self, own: Vec<(usize, Job, Option<Held>)>, results: &mut [Option<Result<Secret, Error>>], io: &mut Io<'_>, start: u64) {
        if own.is_empty() {
            return;
        }
        let mut slots = Vec::with_capacity(own.len());
        let mut jobs = Vec::with_capacity(own.len());
        let mut leases = Vec::new();
        for (slot, job, held) in own {
            slots.push(slot);
            jobs.push(job);
            leases.extend(held);
        }
        for (slot, result) in slots.into_iter().zip(self.fetch_since(jobs, io, start)) {
            results[slot] = Some(result);
        }
        self.publish(io);
        for held in &leases {
            self.release(held, io);
        }
    }

    /// Runs one store operation unless the layer is suspended; a failure
    /// suspends it (and backs it off) and marks it degraded.
    pub(super) fn store_op<R>(&mut self, io: &mut Io<'_>, op: impl FnOnce(&mut dyn SharedStore) -> Result<R, StoreError>) -> Option<R> {
        self.shared.usable()?;
        self.shared.touched = true;
        match op(&mut *io.store) {
            Ok(r) => {
                self.shared.worked();
                Some(r)
            }
            Err(error) => {
                let now = io.clock.now_ms();
                self.shared.failed(error, now);
                None
            }
        }
    }

    /// The invalidation epoch of environment `env` (read once per call):
    /// shared cache entries are keyed by it, and `invalidate` moves it on.
    fn env_epoch(&mut self, env: usize, io: &mut Io<'_>) -> Option<i64> {
        if let Some(Some(epoch)) = self.shared.epochs.get(env) {
            return Some(*epoch);
        }
        let id = self.shared.usable()?.key.entry_id("epoch", &[self.envs[env].env.spec.name.as_bytes()]);
        let epoch = self.store_op(io, |store| store.increment(&id, 0))?;
        self.shared.epochs.resize(self.envs.len(), None);
        self.shared.epochs[env] = Some(epoch);
        Some(epoch)
    }

    /// Moves environment `env`'s epoch on: every shared entry of it is then
    /// unreachable (and expires in the store by its TTL). `false` if the store
    /// could not be told.
    pub(super) fn invalidate_shared(&mut self, env: usize, io: &mut Io<'_>) -> bool {
        let Some(ready) = self.shared.usable() else { return self.shared.ready.is_none() };
        let id = ready.key.entry_id("epoch", &[self.envs[env].env.spec.name.as_bytes()]);
        self.shared.epochs.clear();
        self.store_op(io, |store| store.increment(&id, 1)).is_some()
    }

    /// The bucket key and associated data of a cache entry. The identity binds
    /// the environment, the backend it points at (so re-pointing `prod` at
    /// another Vault, or two deployments sharing a store and key, never serve
    /// each other's values), the epoch, the name, the version and the field.
    fn cache_ids(&mut self, env: usize, key: &CacheKey, io: &mut Io<'_>) -> Option<(String, Vec<u8>)> {
        let epoch = self.env_epoch(env, io)?.to_be_bytes();
        let spec = &self.envs[env].env.spec;
        let backend = format!("{:?}|{:?}", spec.primary().backend, spec.primary().url);
        let version = version_text(key.version);
        let parts: [&[u8]; 6] =
            [spec.name.as_bytes(), backend.as_bytes(), &epoch, key.name.as_bytes(), version.as_bytes(), key.field.as_bytes()];
        let ready = self.shared.usable()?;
        // `entry`, not the first layout's `cache`: records now carry their fetch time, tier
        // and not-found flag, and a record of the old layout is simply not looked up.
        Some((ready.key.entry_id("entry", &parts), seal::identity("entry", &parts)))
    }

    /// Sets which shared answers satisfy a refresh: one fetched within the
    /// refresh interval (`refresh`), or one not yet due itself (refresh-ahead).
    fn with_freshness(&self, mut job: Job, wall: u64) -> Job {
        let policy = self.envs[job.env].env.spec.policy;
        let ttl = if job.version.is_pinned() { policy.cache_pinned_ttl_ms } else { policy.cache_ttl_ms };
        job.fresher_than_wall_ms = match job.reason {
            Reason::Miss => 0,
            Reason::Forced => wall.saturating_sub(policy.refresh_interval_ms),
            Reason::Ahead => wall.saturating_sub(ttl / 100 * u64::from(policy.refresh_ahead_percent)).saturating_add(1),
        };
        job
    }

    /// The in-memory value a refresh-ahead job is refreshing (still fresh).
    fn still_cached(&mut self, job: &Job, io: &mut Io<'_>) -> Option<Secret> {
        let now = io.clock.now_ms();
        let (cached, _) = self.envs[job.env].cache.stale(&job.name, job.version, &job.field, now)?;
        Some(Secret::cached(cached, false))
    }

    /// Reads and opens `key`'s shared record (rejected records are counted).
    fn shared_record(&mut self, env: usize, key: &CacheKey, io: &mut Io<'_>) -> Option<CacheRecord> {
        let (id, identity) = self.cache_ids(env, key, io)?;
        let sealed = self.store_op(io, |store| store.get(&id))??;
        let ready = self.shared.usable()?;
        let record = ready.key.open(&identity, &sealed).ok().and_then(|plain| CacheRecord::decode(&plain));
        if record.is_none() {
            self.envs[env].counters.shared_rejected += 1;
        }
        record
    }

    /// A fresh shared answer for `job` (a value, or a cached not-found),
    /// copied into memory.
    fn shared_lookup(&mut self, job: &Job, io: &mut Io<'_>) -> Option<Result<Secret, Error>> {
        let key = CacheKey { name: job.name.clone(), version: job.version, field: job.field.clone() };
        let record = self.shared_record(job.env, &key, io)?;
        let state = &mut self.envs[job.env];
        let policy = state.env.spec.policy;
        let ttl = match (record.negative, job.version.is_pinned()) {
            (true, _) => policy.negative_ttl_ms,
            (false, true) => policy.cache_pinned_ttl_ms,
            (false, false) => policy.cache_ttl_ms,
        };
        let (now_wall, now) = (io.clock.wall_ms(), io.clock.now_ms());
        // An entry claiming to live longer than the TTL allows (a writer whose clock runs
        // ahead) is not trusted past what this instance's own policy would give it. A
        // refresh is satisfied only by an answer fetched recently enough.
        let distrusted = record.expires_at_ms.saturating_sub(now_wall) > ttl;
        if record.expires_at_ms <= now_wall || distrusted || record.fetched_at_ms < job.fresher_than_wall_ms {
            return None;
        }
        let remaining = record.expires_at_ms - now_wall;
        if record.negative {
            let message = String::from_utf8_lossy(&record.value).into_owned();
            state.cache.insert_negative(key, message.clone(), remaining, now);
            state.counters.shared_hits += 1;
            state.counters.negative_hits += 1;
            let error = Error::NotFound(message);
            state.counters.error(error.kind());
            return Some(Err(error));
        }
        let cached = Cached { value: SecretBytes::new(record.value), version: record.version, tier: u32::from(record.tier) };
        // The entry keeps its age: refresh-ahead and the refresh interval count from its fetch.
        let age = now_wall.saturating_sub(record.fetched_at_ms).min(now);
        state.cache.insert_aged(key, cached.clone(), now - age, now.saturating_add(remaining), policy.max_stale_ms);
        state.counters.shared_hits += 1;
        Some(Ok(Secret::cached(&cached, false)))
    }

    /// A shared value within `max_stale` of its expiry: the answer of last
    /// resort when the backend failed.
    pub(super) fn shared_stale(&mut self, env: usize, key: &CacheKey, io: &mut Io<'_>) -> Option<Secret> {
        self.shared.ready.as_ref()?;
        let record = self.shared_record(env, key, io)?;
        let max_stale = self.envs[env].env.spec.policy.max_stale_ms;
        let now_wall = io.clock.wall_ms();
        if record.negative || now_wall >= record.expires_at_ms.saturating_add(max_stale) {
            return None;
        }
        let cached = Cached { value: SecretBytes::new(record.value), version: record.version, tier: u32::from(record.tier) };
        Some(Secret::cached(&cached, record.expires_at_ms <= now_wall))
    }

    /// Queues a fetched answer for publication (see [`Self::publish`]).
    pub(super) fn queue_publish(&mut self, env: usize, key: CacheKey, cached: &Cached, ttl_ms: u64) {
        if self.shared.ready.is_some() && ttl_ms > 0 {
            self.shared.outbox.push((env, key, Outgoing::Value(cached.clone()), ttl_ms));
        }
    }

    /// Queues a not-found answer for publication.
    pub(super) fn queue_publish_not_found(&mut self, env: usize, key: CacheKey, message: &str, ttl_ms: u64) {
        if self.shared.ready.is_some() && ttl_ms > 0 {
            self.shared.outbox.push((env, key, Outgoing::NotFound(message.to_string()), ttl_ms));
        }
    }

    /// Writes the answers fetched during this call to shared state.
    fn publish(&mut self, io: &mut Io<'_>) {
        for (env, key, answer, ttl) in core::mem::take(&mut self.shared.outbox) {
            let Some((id, identity)) = self.cache_ids(env, &key, io) else { return };
            let wall = io.clock.wall_ms();
            let (expires_at_ms, fetched_at_ms) = (wall.saturating_add(ttl), wall);
            let record = match answer {
                Outgoing::Value(cached) => CacheRecord {
                    fetched_at_ms,
                    expires_at_ms,
                    tier: u8::try_from(cached.tier).unwrap_or(u8::MAX),
                    negative: false,
                    version: cached.version,
                    value: cached.value.into_vec(),
                },
                Outgoing::NotFound(message) => {
                    CacheRecord { fetched_at_ms, expires_at_ms, tier: 0, negative: true, version: String::new(), value: message.into_bytes() }
                }
            };
            let nonce = nonce(io);
            let Some(ready) = self.shared.usable() else { return };
            let sealed = ready.key.seal(&identity, &record.encode(), nonce);
            self.store_op(io, |store| store.set(&id, &sealed));
        }
    }
}
