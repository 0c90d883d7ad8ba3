//! The read path's use of shared state: misses are looked up in the shared
//! bucket before the backend, fetched values are published to it, a short
//! lease lets one instance fetch a secret while the others wait for its answer,
//! and breakers are read and updated there with compare-and-swap so parallel
//! instances do not lose each other's updates.
//!
//! Every store failure falls back to this instance's memory for the rest of
//! the call and is reported by `health`: shared state makes the component
//! better, never less available.

use crate::prelude::*;
use super::{Io, Job, Provider, Secret, Source};
use crate::breaker::Breaker;
use crate::cache::{CacheKey, Cached};
use crate::error::Error;
use crate::secret::SecretBytes;
use crate::shared::record::{BreakerRecord, CacheRecord, LeaseRecord};
use crate::shared::seal::{self, SealKey};
use crate::shared::{SharedSetup, SharedStatus, StoreError};
use crate::validate::VersionSel;

/// How often an instance waiting on another's lease looks for its answer.
pub const LEASE_POLL_MS: u64 = 20;
/// Compare-and-swap rounds before a breaker update falls back to memory.
const CAS_ROUNDS: usize = 16;

/// The shared-state layer of a provider.
pub(super) struct Layer {
    pub(super) ready: Option<Ready>,
    status: SharedStatus,
    last_error: Option<String>,
    /// Set when a store operation failed during the current call: the rest of
    /// the call runs from memory instead of failing again at every step.
    pub(super) suspended: bool,
    /// Answers fetched during this call, to publish when it ends.
    outbox: Vec<(usize, CacheKey, Cached, u64)>,
    /// Whether the store was used since counters were last flushed.
    pub(super) touched: bool,
    /// Per environment: the counter values already added to the shared totals.
    pub(super) flushed: Vec<[u64; super::stats::COUNTER_COUNT]>,
    /// When counters were last flushed (monotonic ms).
    pub(super) last_flush_ms: Option<u64>,
}

pub(super) struct Ready {
    pub(super) key: SealKey,
    lease_ms: u64,
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
            outbox: Vec::new(),
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

    fn failed(&mut self, error: StoreError) {
        self.suspended = true;
        self.status = SharedStatus::Degraded;
        self.last_error = Some(crate::error::sanitize_reason(&error.0));
    }

    fn worked(&mut self) {
        if self.ready.is_some() && !self.suspended {
            self.status = SharedStatus::Ok;
            self.last_error = None;
        }
    }
}

/// How a fetch lease went.
pub(super) enum Lease {
    /// This instance holds it (or shared state is unusable): fetch.
    Fetch(Option<String>),
    /// Another instance is fetching until the given wall time: wait for it.
    HeldUntil(u64),
}

fn version_text(version: VersionSel) -> String {
    match version {
        VersionSel::Latest => "latest".to_string(),
        VersionSel::Pinned(n) => n.to_string(),
    }
}

fn nonce(io: &mut Io<'_>) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&io.random.next_u64().to_le_bytes());
    out[8..].copy_from_slice(&io.random.next_u64().to_le_bytes()[..4]);
    out
}

impl Provider {
    /// Answers validated misses: from shared state, by waiting for another
    /// instance's fetch, or from the backend. One result per job, in order.
    pub(super) fn resolve(&mut self, jobs: Vec<Job>, io: &mut Io<'_>) -> Vec<Result<Secret, Error>> {
        self.shared.suspended = false;
        if self.shared.ready.is_none() {
            return self.fetch(jobs, io);
        }
        let mut results: Vec<Option<Result<Secret, Error>>> = jobs.iter().map(|_| None).collect();
        let mut fetch_now: Vec<(usize, Job)> = Vec::new();
        let mut wait: Vec<(usize, Job, u64)> = Vec::new();
        let mut leases: Vec<String> = Vec::new();
        for (slot, job) in jobs.into_iter().enumerate() {
            if let Some(secret) = self.shared_lookup(&job, io) {
                results[slot] = Some(Ok(secret));
                continue;
            }
            match self.lease(&job, io) {
                Lease::Fetch(Some(lease)) => {
                    // Another instance may have published and released its lease between our
                    // lookup and our lease: look once more before going to the backend.
                    if let Some(secret) = self.shared_lookup(&job, io) {
                        self.store_op(io, |store| store.delete(&lease));
                        results[slot] = Some(Ok(secret));
                        continue;
                    }
                    leases.push(lease);
                    fetch_now.push((slot, job));
                }
                Lease::Fetch(None) => fetch_now.push((slot, job)),
                Lease::HeldUntil(until) => wait.push((slot, job, until)),
            }
        }
        self.fetch_and_publish(fetch_now, &mut results, io);
        for lease in leases {
            self.store_op(io, |store| store.delete(&lease));
        }
        // Wait for the other instances' answers, up to their leases and at most
        // half the deadline (leaving the other half for a fetch of our own).
        let start = io.clock.wall_ms();
        while !wait.is_empty() {
            let now = io.clock.wall_ms();
            let mut still = Vec::new();
            for (slot, job, until) in wait.drain(..) {
                let give_up = start.saturating_add(self.envs[job.env].env.spec.policy.deadline_ms / 2).min(until);
                if let Some(secret) = self.shared_lookup(&job, io) {
                    results[slot] = Some(Ok(secret));
                } else if now >= give_up || self.shared.usable().is_none() {
                    still.push((slot, job, 0));
                } else {
                    still.push((slot, job, until));
                }
            }
            let (give_up, waiting): (Vec<_>, Vec<_>) = still.into_iter().partition(|(_, _, until)| *until == 0);
            wait = waiting;
            // The holder gave up or vanished: fetch those ourselves (the breaker,
            // read from shared state, still stops a stampede on a failing backend).
            let own: Vec<(usize, Job)> = give_up.into_iter().map(|(slot, job, _)| (slot, job)).collect();
            self.fetch_and_publish(own, &mut results, io);
            if !wait.is_empty() {
                io.clock.sleep_ms(LEASE_POLL_MS);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::backend(None, "internal: no result"))))
            .collect()
    }

    fn fetch_and_publish(&mut self, jobs: Vec<(usize, Job)>, results: &mut [Option<Result<Secret, Error>>], io: &mut Io<'_>) {
        if jobs.is_empty() {
            return;
        }
        let (slots, jobs): (Vec<usize>, Vec<Job>) = jobs.into_iter().unzip();
        for (slot, result) in slots.into_iter().zip(self.fetch(jobs, io)) {
            results[slot] = Some(result);
        }
        self.publish(io);
    }

    /// Runs one store operation unless the layer is suspended; a failure
    /// suspends it for the rest of the call.
    pub(super) fn store_op<R>(
        &mut self,
        io: &mut Io<'_>,
        op: impl FnOnce(&mut dyn crate::shared::SharedStore) -> Result<R, StoreError>,
    ) -> Option<R> {
        self.shared.usable()?;
        self.shared.touched = true;
        match op(&mut *io.store) {
            Ok(r) => {
                self.shared.worked();
                Some(r)
            }
            Err(error) => {
                self.shared.failed(error);
                None
            }
        }
    }

    fn cache_ids(&self, env: usize, key: &CacheKey) -> Option<(String, Vec<u8>)> {
        let ready = self.shared.usable()?;
        let version = version_text(key.version);
        let parts: [&[u8]; 4] =
            [self.envs[env].env.spec.name.as_bytes(), key.name.as_bytes(), version.as_bytes(), key.field.as_bytes()];
        Some((ready.key.entry_id("cache", &parts), seal::identity("cache", &parts)))
    }

    /// A fresh shared entry for `job`, copied into memory.
    fn shared_lookup(&mut self, job: &Job, io: &mut Io<'_>) -> Option<Secret> {
        let key = CacheKey { name: job.name.clone(), version: job.version, field: job.field.clone() };
        let (id, identity) = self.cache_ids(job.env, &key)?;
        let sealed = self.store_op(io, |store| store.get(&id))??;
        let ready = self.shared.usable()?;
        let Some(record) = ready.key.open(&identity, &sealed).ok().and_then(|plain| CacheRecord::decode(&plain)) else {
            self.envs[job.env].counters.shared_rejected += 1;
            return None;
        };
        let now_wall = io.clock.wall_ms();
        if record.expires_at_ms <= now_wall {
            return None;
        }
        let state = &mut self.envs[job.env];
        let policy = state.env.spec.policy;
        let ttl = if job.version.is_pinned() { policy.cache_pinned_ttl_ms } else { policy.cache_ttl_ms };
        let ttl = ttl.min(record.expires_at_ms - now_wall);
        let cached = Cached { value: SecretBytes::new(record.value), version: record.version };
        state.cache.insert(key, cached.clone(), ttl, io.clock.now_ms());
        state.counters.shared_hits += 1;
        Some(Secret { value: cached.value, version: cached.version, source: Source::Cache })
    }

    /// Queues a fetched answer for publication (see [`Self::publish`]).
    pub(super) fn queue_publish(&mut self, env: usize, key: CacheKey, cached: &Cached, ttl_ms: u64) {
        if self.shared.ready.is_some() && ttl_ms > 0 {
            self.shared.outbox.push((env, key, cached.clone(), ttl_ms));
        }
    }

    /// Writes the answers fetched during this call to shared state.
    fn publish(&mut self, io: &mut Io<'_>) {
        for (env, key, cached, ttl) in core::mem::take(&mut self.shared.outbox) {
            let Some((id, identity)) = self.cache_ids(env, &key) else { return };
            let record = CacheRecord {
                expires_at_ms: io.clock.wall_ms().saturating_add(ttl),
                version: cached.version,
                value: cached.value.into_vec(),
            };
            let nonce = nonce(io);
            let Some(ready) = self.shared.usable() else { return };
            let sealed = ready.key.seal(&identity, &record.encode(), nonce);
            self.store_op(io, |store| store.set(&id, &sealed));
        }
    }

    /// Takes the fetch lease for `job`'s secret and version, unless another
    /// instance holds a live one.
    pub(super) fn lease(&mut self, job: &Job, io: &mut Io<'_>) -> Lease {
        let Some(ready) = self.shared.usable() else { return Lease::Fetch(None) };
        let lease_ms = ready.lease_ms;
        let version = version_text(job.version);
        let parts: [&[u8]; 3] = [self.envs[job.env].env.spec.name.as_bytes(), job.name.as_bytes(), version.as_bytes()];
        let (id, identity) = (ready.key.entry_id("lease", &parts), seal::identity("lease", &parts));
        let Some((current, token)) = self.store_op(io, |store| store.watch(&id)) else { return Lease::Fetch(None) };
        let now = io.clock.wall_ms();
        if let Some(sealed) = &current {
            let ready = self.shared.usable();
            let held = ready.and_then(|r| r.key.open(&identity, sealed).ok()).and_then(|p| LeaseRecord::decode(&p));
            match held {
                Some(lease) if lease.expires_at_ms > now => return Lease::HeldUntil(lease.expires_at_ms),
                Some(_) => {}
                None => self.envs[job.env].counters.shared_rejected += 1,
            }
        }
        let record = LeaseRecord { expires_at_ms: now.saturating_add(lease_ms), holder: io.random.next_u64() };
        let nonce = nonce(io);
        let Some(ready) = self.shared.usable() else { return Lease::Fetch(None) };
        let sealed = ready.key.seal(&identity, &record.encode(), nonce);
        match self.store_op(io, |store| store.swap(token, &sealed)) {
            Some(true) => Lease::Fetch(Some(id)),
            // Another instance took it between our read and our write.
            Some(false) => Lease::HeldUntil(record.expires_at_ms),
            None => Lease::Fetch(None),
        }
    }

    /// Brings every environment's breaker copy up to date with shared state
    /// (before `health` and `stats`, so a fresh instance reports what all see).
    pub fn sync_breakers(&mut self, io: &mut Io<'_>) {
        self.shared.suspended = false;
        for env in 0..self.envs.len() {
            if self.shared.usable().is_none() {
                return;
            }
            self.with_breaker(env, io, |_| ());
        }
    }

    /// Runs `op` on environment `env`'s breaker: on the shared state when it is
    /// usable (read, apply, compare-and-swap; retried on a concurrent update),
    /// else on this instance's copy. The instance's copy follows the shared
    /// state whenever it is read, so it carries on from there if the store fails.
    pub(super) fn with_breaker<R>(&mut self, env: usize, io: &mut Io<'_>, mut op: impl FnMut(&mut Breaker) -> R) -> R {
        if self.shared.usable().is_some() {
            for _ in 0..CAS_ROUNDS {
                match self.shared_breaker_round(env, io, &mut op) {
                    Round::Done(r) => return r,
                    Round::Conflict => continue,
                    Round::Unusable => break,
                }
            }
        }
        op(&mut self.envs[env].breaker)
    }

    fn shared_breaker_round<R>(&mut self, env: usize, io: &mut Io<'_>, op: &mut impl FnMut(&mut Breaker) -> R) -> Round<R> {
        let Some(ready) = self.shared.usable() else { return Round::Unusable };
        let name = self.envs[env].env.spec.name.as_bytes();
        let kind = self.envs[env].env.spec.backend.kind().as_bytes();
        let (id, identity) = (ready.key.entry_id("breaker", &[name, kind]), seal::identity("breaker", &[name, kind]));
        let Some((current, token)) = self.store_op(io, |store| store.watch(&id)) else { return Round::Unusable };
        let settings = self.envs[env].breaker.settings();
        let mut breaker = Breaker::new(settings);
        let mut rejected = false;
        if let Some(sealed) = &current {
            let ready = self.shared.usable();
            match ready.and_then(|r| r.key.open(&identity, sealed).ok()).and_then(|p| BreakerRecord::decode(&p)) {
                Some(record) => breaker = Breaker::restore(settings, record.state, record.generation),
                // A forged record is replaced by a fresh closed breaker.
                None => {
                    self.envs[env].counters.shared_rejected += 1;
                    rejected = true;
                }
            }
        }
        let before = (breaker.state(), breaker.generation());
        let result = op(&mut breaker);
        if (breaker.state(), breaker.generation()) == before && !rejected {
            self.envs[env].breaker = breaker;
            return Round::Done(result);
        }
        let record = BreakerRecord { state: breaker.state(), generation: breaker.generation() };
        let nonce = nonce(io);
        let Some(ready) = self.shared.usable() else { return Round::Unusable };
        let sealed = ready.key.seal(&identity, &record.encode(), nonce);
        match self.store_op(io, |store| store.swap(token, &sealed)) {
            Some(true) => {
                self.envs[env].breaker = breaker;
                Round::Done(result)
            }
            Some(false) => Round::Conflict,
            None => Round::Unusable,
        }
    }
}

enum Round<R> {
    Done(R),
    Conflict,
    Unusable,
}
