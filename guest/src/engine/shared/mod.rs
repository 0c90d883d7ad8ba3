//! Shared state: what must outlive an instance, kept in the `wasi:keyvalue`
//! bucket (Spin gives a P2 component a fresh instance per request, and with
//! Redis or Spin's SQLite every store operation is a round trip or a write,
//! so each path below makes as few as it can).
//!
//! # The store protocol
//!
//! Every key is `es1-<kind>-<32 hex>`: the kind, then HMAC-SHA256 (id key) of
//! the record's identity, so the bucket's key list shows no names. Every
//! value but the budget integers is sealed
//! ([`crate::shared::seal`]) with its identity as associated data: an edited
//! or moved record fails to open, is counted in `shared_rejected`, and is
//! replaced, never trusted.
//!
//! | kind | identity | value | written by |
//! |---|---|---|---|
//! | `epoch` | environment | sealed: 8 random bytes and the wall time it was made (absent: the initial epoch; unopenable: rejected, an epoch of its own) | `invalidate` (`set`) |
//! | `entry` | environment, its backend and URL, name, version, field | [`CacheRecord`](crate::shared::record::CacheRecord), carrying the epoch it was published under | the instance that fetched it (`set-many`); a not-found only over a key the store held |
//! | `lease` | environment, name, version | [`LeaseRecord`](crate::shared::record::LeaseRecord) | [`lease`] (watch + swap; deleted when released) |
//! | `breaker` | environment, tier's kind, tier | [`BreakerRecord`](crate::shared::record::BreakerRecord) | [`breaker`] (watch + swap, retried) |
//! | `count` | environment, shard 0..[`counters::SHARDS`] | [`CountsRecord`](crate::shared::record::CountsRecord) | [`counters`] (watch + swap) |
//! | `budget` | environment, calls/retries/last, slot | plain integer | [`budget`] (`increment`) |
//! | `token` (+ `-login`, `-refused`) | environment, tier, backend, method, who logs in | token, lease, refusal records | `engine::credentials`, [`refusal`] |
//!
//! The epoch is not part of an entry's key: a fresh instance reads the epoch
//! and the entry together with one `get-many`. An entry published under
//! another epoch is authentic but invalidated: read as absent, not counted as
//! rejected. The epoch is written with `set` and read with `get-many` (an
//! integer kept by `atomics.increment` has a host-specific byte form).
//!
//! Operations per exported call (fresh instance, token auth, closed breaker):
//!
//! - **shared hit**: one `get-many` (epoch + entry). No write: counts are
//!   sampled ([`counters`]); one such call in `count_sample` adds them (watch +
//!   swap of one shard).
//! - **memory hit** (a reused instance): none; counts at most once a second.
//! - **miss**: `get-many` (epoch + entry), lease watch + swap, budget
//!   `increment`, breaker watch for the permit and for the outcome (a swap
//!   only when the state changes), `set-many` of the fetched entries, count
//!   watch + swap: 9. A lease is released (watch + delete) only when nothing was
//!   published for it: waiters poll the entry, not the lease. The first
//!   deposit in a budget slot also sweeps old slots ([`budget`]).
//! - **stats**: one `get-many` of every environment's count shards and every
//!   breaker; this instance's own unflushed counts are added in memory.
//! - **health**: one `get-many` of every breaker.
//! - **invalidate**: one `set` of the epoch.
//!
//! Every store failure falls back to this instance's memory and is reported by
//! `health`; the store is then left alone for [`STORE_BACKOFF_MS`], so a hung
//! store costs one timeout a second, not one per call. A record that does not
//! open or decode is treated as absent and overwritten: nothing a store
//! returns can make the component trap.

use crate::prelude::*;
use crate::engine::{Io, Provider};
use entries::Outgoing;
use crate::cache::CacheKey;
use crate::shared::record::Epoch;
use crate::shared::seal::SealKey;
use crate::shared::{SharedSetup, SharedStatus, SharedStore, StoreError};
use crate::validate::VersionSel;

mod backend_identity;
pub(in crate::engine) mod breaker;
pub(in crate::engine) mod budget;
pub(in crate::engine) mod counters;
pub(in crate::engine) mod entries;
mod epoch;
pub(in crate::engine) mod lease;
pub(in crate::engine) mod refusal;
mod resolve;

/// How often an instance waiting on another's lease looks for its answer.
pub const LEASE_POLL_MS: u64 = 20;
/// After a store failure, how long the store is left alone (monotonic ms).
pub const STORE_BACKOFF_MS: u64 = 1_000;

/// An entry's environment and key, with its bucket key and identity.
pub(in crate::engine) type EntryIds = (usize, CacheKey, (String, Vec<u8>));

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
    epochs: Vec<Option<Epoch>>,
    /// Values read ahead in this call's first `get-many`, taken by the lookups.
    prefetched: Vec<(String, Option<Vec<u8>>)>,
    /// Entry ids and identities computed during this call (see
    /// `Provider::cache_ids`): the read-ahead and the lookup need the same ones.
    pub(in crate::engine) entry_ids: core::cell::RefCell<Vec<EntryIds>>,
    /// Per environment, the newest authentic epoch this instance has seen
    /// (kept across calls: a reused instance notices a rolled-back epoch).
    pub(in crate::engine) epoch_marks: Vec<Option<Epoch>>,
    /// Per entry id, the newest fetch time of a record this instance has seen
    /// or published (kept across calls, bounded): an older one is a replay.
    pub(in crate::engine) fetched_marks: Vec<(String, u64)>,
    /// Entry ids this call found holding a record (not-founds are shared only
    /// over those: see `Provider::publish`).
    present: Vec<String>,
    /// Whether this call used the store at all, and whether it wrote to it
    /// (its counts then go along exactly).
    pub(in crate::engine) touched: bool,
    pub(in crate::engine) wrote: bool,
    /// Exported calls this instance finished (0: this is its first).
    pub(in crate::engine) calls: u64,
    /// What the counters owe the shared totals.
    pub(in crate::engine) counts: counters::Ledger,
}

pub(in crate::engine) struct Ready {
    pub(in crate::engine) key: SealKey,
    pub(in crate::engine) lease_ms: u64,
    pub(in crate::engine) count_sample: u64,
}

impl Layer {
    pub(in crate::engine) fn new(setup: SharedSetup) -> Layer {
        let (ready, status) = match setup {
            SharedSetup::Disabled => (None, SharedStatus::Disabled),
            SharedSetup::NoKey { .. } => (None, SharedStatus::NoKey),
            // The bucket itself is opened by the WASI layer, which owns the handle.
            SharedSetup::Ready { key, lease_ms, count_sample, .. } => {
                (Some(Ready { key, lease_ms, count_sample: count_sample.max(1) }), SharedStatus::Ok)
            }
        };
        Layer {
            ready,
            status,
            last_error: None,
            suspended: false,
            retry_at_ms: None,
            outbox: Vec::new(),
            epochs: Vec::new(),
            prefetched: Vec::new(),
            entry_ids: core::cell::RefCell::new(Vec::new()),
            present: Vec::new(),
            epoch_marks: Vec::new(),
            fetched_marks: Vec::new(),
            touched: false,
            wrote: false,
            calls: 0,
            counts: counters::Ledger::default(),
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
        self.prefetched.clear();
        self.entry_ids.get_mut().clear();
        self.present.clear();
        self.touched = false;
        self.wrote = false;
    }

    /// A value read ahead for `key` in this call, if there is one (taken: a
    /// later look at the same key reads the store again).
    fn take_prefetched(&mut self, key: &str) -> Option<Option<Vec<u8>>> {
        let i = self.prefetched.iter().position(|(k, _)| k == key)?;
        Some(self.prefetched.swap_remove(i).1)
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
/// `wasi:random/random`, a CSPRNG; see [`crate::engine::Random`]).
pub(in crate::engine) fn nonce(io: &mut Io<'_>) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&io.random.next_u64().to_le_bytes());
    out[8..].copy_from_slice(&io.random.next_u64().to_le_bytes()[..4]);
    out
}

impl Provider {
    /// Runs one store operation that only reads, unless the layer is
    /// suspended; a failure suspends it (and backs it off) and marks it degraded.
    pub(in crate::engine) fn store_read<R>(&mut self, io: &mut Io<'_>, op: impl FnOnce(&mut dyn SharedStore) -> Result<R, StoreError>) -> Option<R> {
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

    /// Opens `sealed` under `identity` and decodes it. A record that does not
    /// open or decode (edited, moved, forged, or of another format) is counted
    /// in `shared_rejected` and read as absent: the caller treats it as no
    /// record and replaces it. `None` without counting when the store is not
    /// in use for this call.
    pub(in crate::engine) fn open_record<T>(&mut self, env: usize, identity: &[u8], sealed: &[u8], decode: impl FnOnce(&[u8]) -> Option<T>) -> Option<T> {
        let plain = self.shared.usable()?.key.open(identity, sealed);
        let record = plain.ok().and_then(|plain| decode(&plain));
        if record.is_none() {
            self.envs[env].counters.shared_rejected += 1;
        }
        record
    }

    /// [`Self::store_read`] for an operation that writes (a swap or an
    /// increment included): the call's counts then go along exactly.
    pub(in crate::engine) fn store_write<R>(&mut self, io: &mut Io<'_>, op: impl FnOnce(&mut dyn SharedStore) -> Result<R, StoreError>) -> Option<R> {
        self.shared.usable()?;
        self.shared.wrote = true;
        self.store_read(io, op)
    }
}
