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
use super::shared_entries::Outgoing;
use crate::cache::CacheKey;
use crate::error::Error;
use crate::shared::seal::SealKey;
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
    pub(super) outbox: Vec<(usize, CacheKey, Outgoing, u64)>,
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

pub(super) fn version_text(version: &VersionSel) -> String {
    version.text()
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
            let now = io.clock.now_ms();
            let mut own = Vec::new();
            for (slot, job, _until) in core::mem::take(&mut wait) {
                let budget_over = now >= start.saturating_add(self.envs[job.env].env.spec.policy.deadline_ms / 2);
                if let Some(answer) = self.shared_lookup(&job, io) {
                    results[slot] = Some(answer);
                } else if budget_over || self.shared.usable().is_none() {
                    own.push((slot, job, None));
                } else {
                    // Look at the lease again: a holder whose fetch failed has released it, and
                    // one that died lets it run out; either way take it over (or wait for
                    // whoever did) instead of sleeping out the lease first read.
                    self.claim(slot, job, true, &mut own, &mut wait, &mut results, io);
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
    pub(super) fn env_epoch(&mut self, env: usize, io: &mut Io<'_>) -> Option<i64> {
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
}
