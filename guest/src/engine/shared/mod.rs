//! The read path's use of shared state: misses are looked up in the shared
//! bucket before the backend, fetched values are published to it, and a short
//! lease lets one instance fetch a secret while the others wait for its answer.
//! (Breakers: [`super::breaker`]; counters: [`super::counters`].)
//!
//! Every store failure falls back to this instance's memory and is reported by
//! `health`; the store is then left alone for [`STORE_BACKOFF_MS`], so a hung
//! store costs one timeout a second, not one per call. Shared state makes the
//! component better, never less available.

use crate::prelude::*;
use crate::engine::{Io, Provider};
use entries::Outgoing;
use crate::cache::CacheKey;
use crate::shared::seal::SealKey;
use crate::shared::{SharedSetup, SharedStatus, SharedStore, StoreError};
use crate::validate::VersionSel;

pub(in crate::engine) mod breaker;
pub(in crate::engine) mod budget;
pub(in crate::engine) mod counters;
pub(in crate::engine) mod entries;
pub(in crate::engine) mod lease;
pub(in crate::engine) mod refusal;
mod resolve;

/// How often an instance waiting on another's lease looks for its answer.
pub const LEASE_POLL_MS: u64 = 20;
/// After a store failure, how long the store is left alone (monotonic ms).
pub const STORE_BACKOFF_MS: u64 = 1_000;

/// The shared-state layer of a provider.
pub(in crate::engine) struct Layer {
    pub(in crate::engine) ready: Option<Ready>,
    status: SharedStatus,
    last_error: Option<String>,
    /// The store is not used for the rest of this call (it failed, or is backing off).
    pub(in crate::engine) suspended: bool,
    /// After a failure: no store use before this monotonic time.
    retry_at_ms: Option<u64>,
    /// Answers fetched during this call, to publish when it ends.
    pub(in crate::engine) outbox: Vec<(usize, CacheKey, Outgoing, u64)>,
    /// Per environment, the invalidation epoch read during this call.
    epochs: Vec<Option<i64>>,
    /// Whether the store was used since counters were last flushed.
    pub(in crate::engine) touched: bool,
    /// Per environment: the counter values already added to the shared totals.
    pub(in crate::engine) flushed: Vec<Vec<u64>>,
    /// When counters were last flushed (monotonic ms).
    pub(in crate::engine) last_flush_ms: Option<u64>,
}

pub(in crate::engine) struct Ready {
    pub(in crate::engine) key: SealKey,
    pub(in crate::engine) lease_ms: u64,
}

impl Layer {
    pub(in crate::engine) fn new(setup: SharedSetup) -> Layer {
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

    pub(in crate::engine) fn status(&self) -> (SharedStatus, Option<&str>) {
        (self.status, self.last_error.as_deref())
    }

    pub(in crate::engine) fn usable(&self) -> Option<&Ready> {
        self.ready.as_ref().filter(|_| !self.suspended)
    }

    /// Starts an exported call: the store is used unless it is backing off.
    pub(in crate::engine) fn begin_call(&mut self, now_ms: u64) {
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

pub(in crate::engine) fn version_text(version: &VersionSel) -> String {
    version.text()
}


/// A fresh AEAD nonce from the provider's random source (in the component,
/// `wasi:random/random`, a CSPRNG; see [`super::Random`]).
pub(in crate::engine) fn nonce(io: &mut Io<'_>) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&io.random.next_u64().to_le_bytes());
    out[8..].copy_from_slice(&io.random.next_u64().to_le_bytes()[..4]);
    out
}

impl Provider {
    /// Runs one store operation unless the layer is suspended; a failure
    /// suspends it (and backs it off) and marks it degraded.
    pub(in crate::engine) fn store_op<R>(&mut self, io: &mut Io<'_>, op: impl FnOnce(&mut dyn SharedStore) -> Result<R, StoreError>) -> Option<R> {
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
    pub(in crate::engine) fn env_epoch(&mut self, env: usize, io: &mut Io<'_>) -> Option<i64> {
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
    pub(in crate::engine) fn invalidate_shared(&mut self, env: usize, io: &mut Io<'_>) -> bool {
        let Some(ready) = self.shared.usable() else { return self.shared.ready.is_none() };
        let id = ready.key.entry_id("epoch", &[self.envs[env].env.spec.name.as_bytes()]);
        self.shared.epochs.clear();
        self.store_op(io, |store| store.increment(&id, 1)).is_some()
    }
}
