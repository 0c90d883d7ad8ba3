//! Counters totalled across instances: each instance adds what it counted to
//! shared integers (`wasi:keyvalue/atomics` increment), and `stats` reads the
//! totals back. Under Spin every request gets a fresh instance whose own
//! counters die with it, so without this `/metrics` would always read zero.
//!
//! Flushing costs a store operation per changed counter, so it happens after
//! every call that used the store anyway (misses) but at most once a second
//! after calls that did not (memory hits in a reused instance): an instance
//! dropped between two flushes loses at most a second of hit counts.
//!
//! Totals are plain integers under HMAC-keyed names: they reveal traffic
//! volumes to whoever can read the bucket, but no names or values.

use crate::prelude::*;
use super::stats::{Counters, COUNTER_COUNT, COUNTER_NAMES};
use super::{Io, Provider};

/// Longest time hit counts wait in memory before they are added to the totals.
pub const FLUSH_INTERVAL_MS: u64 = 1_000;

impl Provider {
    /// Adds what was counted since the last flush to the shared totals, when
    /// it is time (see the module docs) or when `force`d. `now` is the call's
    /// start (monotonic): the hit path reads the clock once, not again here.
    pub(super) fn flush_counters(&mut self, io: &mut Io<'_>, now: u64, force: bool) {
        if self.shared.ready.is_none() {
            return;
        }
        let due = self.shared.last_flush_ms.is_none_or(|last| now.saturating_sub(last) >= FLUSH_INTERVAL_MS);
        if !(force || self.shared.touched || due) {
            return;
        }
        // Whatever happens below, the next attempt waits for its turn: a failing store must
        // not be tried again on every memory hit.
        self.shared.last_flush_ms = Some(now);
        self.shared.flushed.resize(self.envs.len(), [0; COUNTER_COUNT]);
        for env in 0..self.envs.len() {
            let current = self.envs[env].counters.to_array();
            for (i, name) in COUNTER_NAMES.iter().enumerate() {
                let delta = current[i].saturating_sub(self.shared.flushed[env][i]);
                if delta == 0 {
                    continue;
                }
                let Some(id) = self.counter_id(env, name) else { return };
                let delta = i64::try_from(delta).unwrap_or(i64::MAX);
                if self.store_op(io, |store| store.increment(&id, delta)).is_none() {
                    // Not added: it stays pending until the store works again.
                    return;
                }
                self.shared.flushed[env][i] = current[i];
            }
        }
        self.shared.touched = false;
    }

    /// The totals over every instance sharing the store, per environment in
    /// the order of [`Provider::stats`]; `None` without usable shared state.
    pub fn shared_totals(&mut self, io: &mut Io<'_>) -> Option<Vec<Counters>> {
        let now = io.clock.now_ms();
        self.flush_counters(io, now, true);
        let mut totals = Vec::with_capacity(self.envs.len());
        for env in 0..self.envs.len() {
            let mut values = [0u64; COUNTER_COUNT];
            for (i, name) in COUNTER_NAMES.iter().enumerate() {
                let id = self.counter_id(env, name)?;
                // Adding zero reads the total in a form every store agrees on.
                let total = self.store_op(io, |store| store.increment(&id, 0))?;
                values[i] = u64::try_from(total).unwrap_or(0);
            }
            totals.push(Counters::from_array(values));
        }
        Some(totals)
    }

    fn counter_id(&self, env: usize, name: &str) -> Option<String> {
        let ready = self.shared.usable()?;
        Some(ready.key.entry_id("count", &[self.envs[env].env.spec.name.as_bytes(), name.as_bytes()]))
    }
}
