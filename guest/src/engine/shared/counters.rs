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
use crate::engine::stats::{Counters, TierCounters, COUNTER_COUNT, COUNTER_NAMES, TIER_COUNTER_COUNT, TIER_COUNTER_NAMES};
use crate::histogram::{Histogram, N};
use crate::engine::{Io, Provider};

/// Longest time hit counts wait in memory before they are added to the totals.
pub const FLUSH_INTERVAL_MS: u64 = 1_000;

impl Provider {
    /// Adds what was counted since the last flush to the shared totals, when
    /// it is time (see the module docs) or when `force`d. `now` is the call's
    /// start (monotonic): the hit path reads the clock once, not again here.
    pub(in crate::engine) fn flush_counters(&mut self, io: &mut Io<'_>, now: u64, force: bool) {
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
        self.shared.flushed.resize(self.envs.len(), Vec::new());
        for env in 0..self.envs.len() {
            let current = self.flat_counters(env);
            self.shared.flushed[env].resize(current.len(), 0);
            for (i, value) in current.iter().enumerate() {
                let delta = value.saturating_sub(self.shared.flushed[env][i]);
                if delta == 0 {
                    continue;
                }
                // Named only when it changed: most of the list does not, call after call.
                let Some(id) = self.counter_id(env, &flat_name(i)) else { return };
                let delta = i64::try_from(delta).unwrap_or(i64::MAX);
                if self.store_op(io, |store| store.increment(&id, delta)).is_none() {
                    // Not added: it stays pending until the store works again.
                    return;
                }
                self.shared.flushed[env][i] = *value;
            }
        }
        self.shared.touched = false;
    }

    /// The totals over every instance sharing the store, per environment in
    /// the order of [`Provider::stats`]; `None` without usable shared state.
    pub fn shared_totals(&mut self, io: &mut Io<'_>) -> Option<Vec<Totals>> {
        let now = io.clock.now_ms();
        self.flush_counters(io, now, true);
        let mut totals = Vec::with_capacity(self.envs.len());
        for env in 0..self.envs.len() {
            let mut values = Vec::new();
            for i in 0..self.flat_len(env) {
                let id = self.counter_id(env, &flat_name(i))?;
                // Adding zero reads the total in a form every store agrees on.
                let total = self.store_op(io, |store| store.increment(&id, 0))?;
                values.push(u64::try_from(total).unwrap_or(0));
            }
            let mut rest = values.as_slice();
            let counters = Counters::from_array(take(&mut rest));
            let hit_latency = take_histogram(&mut rest);
            let mut tiers = Vec::new();
            while !rest.is_empty() {
                tiers.push((TierCounters::from_array(take(&mut rest)), take_histogram(&mut rest)));
            }
            totals.push(Totals { counters, hit_latency, tiers });
        }
        Some(totals)
    }

    /// An environment's counters and histogram, then each tier's, as one list.
    fn flat_counters(&self, env: usize) -> Vec<u64> {
        let state = &self.envs[env];
        let mut out = state.counters.to_array().to_vec();
        push_histogram(&mut out, &state.hit_latency);
        for tier in &state.tiers {
            out.extend_from_slice(&tier.counters.to_array());
            push_histogram(&mut out, &tier.call_latency);
        }
        out
    }

    /// How many values [`Self::flat_counters`] holds.
    fn flat_len(&self, env: usize) -> usize {
        COUNTER_COUNT + HISTOGRAM_LEN + self.envs[env].tiers.len() * (TIER_COUNTER_COUNT + HISTOGRAM_LEN)
    }

    fn counter_id(&self, env: usize, name: &str) -> Option<String> {
        let ready = self.shared.usable()?;
        Some(ready.key.entry_id("count", &[self.envs[env].env.spec.name.as_bytes(), name.as_bytes()]))
    }
}

/// One environment's totals across instances.
pub struct Totals {
    pub counters: Counters,
    pub hit_latency: Histogram,
    /// Per tier: its counters and attempt latencies.
    pub tiers: Vec<(TierCounters, Histogram)>,
}

/// The next `K` values of `rest` (zeros past its end: a store that lost a
/// counter reads as zero, not as an error).
fn take<const K: usize>(rest: &mut &[u64]) -> [u64; K] {
    let mut out = [0u64; K];
    let n = K.min(rest.len());
    out[..n].copy_from_slice(&rest[..n]);
    *rest = &rest[n..];
    out
}

fn take_histogram(rest: &mut &[u64]) -> Histogram {
    let counts: [u64; N + 1] = take(rest);
    let [sum_us] = take::<1>(rest);
    Histogram { counts, sum_us }
}

fn push_histogram(out: &mut Vec<u64>, h: &Histogram) {
    out.extend_from_slice(&h.counts);
    out.push(h.sum_us);
}

/// A histogram's values in the flat list: its buckets, then its sum.
const HISTOGRAM_LEN: usize = N + 2;

/// The shared name of value `i` of [`Provider::flat_counters`]: the
/// environment's counters, `hit_us.<bucket>` / `hit_us.sum`, then per tier
/// `t<tier>.<counter>` and `t<tier>.call_us.<bucket>` / `.sum`.
fn flat_name(i: usize) -> String {
    let histogram = |prefix: &str, j: usize| if j <= N { format!("{prefix}.{j}") } else { format!("{prefix}.sum") };
    if i < COUNTER_COUNT {
        return COUNTER_NAMES[i].to_string();
    }
    let i = i - COUNTER_COUNT;
    if i < HISTOGRAM_LEN {
        return histogram("hit_us", i);
    }
    let i = i - HISTOGRAM_LEN;
    let (tier, j) = (i / (TIER_COUNTER_COUNT + HISTOGRAM_LEN), i % (TIER_COUNTER_COUNT + HISTOGRAM_LEN));
    match j.checked_sub(TIER_COUNTER_COUNT) {
        None => format!("t{tier}.{}", TIER_COUNTER_NAMES[j]),
        Some(j) => histogram(&format!("t{tier}.call_us"), j),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_names_are_the_counters_then_the_histograms_then_each_tier() {
        let names: Vec<String> = (0..COUNTER_COUNT + 2 * HISTOGRAM_LEN + TIER_COUNTER_COUNT + 1).map(flat_name).collect();
        assert_eq!(names[0], "hits");
        assert_eq!(names[COUNTER_COUNT], "hit_us.0");
        assert_eq!(names[COUNTER_COUNT + N + 1], "hit_us.sum");
        assert_eq!(names[COUNTER_COUNT + HISTOGRAM_LEN], "t0.backend_calls");
        assert_eq!(names[COUNTER_COUNT + HISTOGRAM_LEN + TIER_COUNTER_COUNT], "t0.call_us.0");
        assert_eq!(flat_name(COUNTER_COUNT + HISTOGRAM_LEN + TIER_COUNTER_COUNT + HISTOGRAM_LEN), "t1.backend_calls");
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "every value has its own name");
    }
}
