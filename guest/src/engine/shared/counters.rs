//! Counters totalled across instances. Under Spin every request gets a fresh
//! instance whose own counters die with it, so without this `/metrics` would
//! always read zero.
//!
//! Per environment, every counter (the flat list of [`Provider::flat_counters`])
//! is one sealed [`CountsRecord`] per shard ([`SHARDS`] of them, so that
//! instances adding at once rarely contend). An instance adds what it owes to
//! one shard picked at random, with compare-and-swap ([`CAS_ROUNDS`] tries,
//! a random shard each; then it keeps owing). `stats` reads every shard (and
//! every breaker) of every environment with one `get-many`, and a reused
//! instance answers `stats` from that read for [`TOTALS_REUSE_MS`] (plus its
//! own counts since): a scraper, or a flood of authenticated `/metrics`,
//! costs at most one store read a second per instance.
//!
//! When an exported call ends, what it counted is handed on:
//!
//! - **exactly, now**, when the call wrote to the store anyway (a miss, a
//!   breaker update): one more compare-and-swap next to its writes;
//! - **sampled**, when it is the instance's first call and it only read the
//!   store (a shared hit in a fresh instance, the usual case under Spin): with
//!   probability 1/`count_sample` its counts are added multiplied by
//!   `count_sample`, else dropped. Totals stay unbiased (each count's expected
//!   contribution is itself) and a shared hit writes nothing; their spread
//!   over `k` such calls is about `sqrt(count_sample / k)` of the total (16 and
//!   10 000 shared hits: ±4 %). `count_sample: 1` makes every such call write;
//! - **at most once a second** in a reused instance (memory hits), exactly; a
//!   call of it that only read the store waits for a later one. An instance
//!   dropped between two flushes loses at most a second of its counts.
//!
//! Totals reveal traffic volumes to whoever can read the bucket once unsealed
//! with the key, but no names or values; without the key, nothing.

use crate::prelude::*;
use crate::engine::stats::{Counters, TierCounters, COUNTER_COUNT, TIER_COUNTER_COUNT};
use crate::histogram::{Histogram, N};
use crate::engine::{Io, Provider};
use crate::shared::record::CountsRecord;
use crate::shared::seal;

/// Longest time hit counts wait in memory before they are added to the totals.
pub const FLUSH_INTERVAL_MS: u64 = 1_000;
/// How long a reused instance answers `stats` from its last read of the totals.
pub const TOTALS_REUSE_MS: u64 = 1_000;
/// Count records per environment.
pub const SHARDS: u64 = 4;
/// Compare-and-swap tries, each on a random shard, before a flush gives up
/// (the counts stay owed: a reused instance adds them later, a fresh one that
/// lost this many races in a row drops them).
const CAS_ROUNDS: u32 = 8;

/// What this instance's counters owe the shared totals.
#[derive(Default)]
pub(in crate::engine) struct Ledger {
    /// Per environment: the counter values already handed on (added to
    /// `owed`, or dropped by sampling).
    seen: Vec<Vec<u64>>,
    /// Per environment: counts not yet added to a shard.
    owed: Vec<Vec<u64>>,
    /// When counts were last flushed (monotonic ms).
    last_flush_ms: Option<u64>,
    /// The shards' sums per environment, as last read, and when (monotonic
    /// ms). Dropped when this instance adds to a shard: its own counts then
    /// live in the store, no longer in `owed`.
    totals_read: Option<(u64, Vec<CountsRecord>)>,
}

/// How a call's counts are handed on (see the module docs).
enum Hand {
    Exact,
    Sampled,
    Later,
}

impl Provider {
    /// Hands on what the call that started at `now` (monotonic) counted.
    pub(in crate::engine) fn end_call_counts(&mut self, io: &mut Io<'_>, now: u64) {
        let Some(ready) = self.shared.ready.as_ref() else { return };
        let sample = ready.count_sample;
        let first = self.shared.calls == 0;
        self.shared.calls = self.shared.calls.saturating_add(1);
        let due = self.shared.counts.last_flush_ms.is_none_or(|last| now.saturating_sub(last) >= FLUSH_INTERVAL_MS);
        let hand = if self.shared.wrote {
            Hand::Exact
        } else if first {
            Hand::Sampled
        } else if due && !self.shared.touched {
            Hand::Exact
        } else {
            Hand::Later
        };
        let scale = match hand {
            Hand::Later => return,
            Hand::Exact => 1,
            Hand::Sampled if io.random.next_u64().is_multiple_of(sample) => sample,
            Hand::Sampled => 0,
        };
        // Whatever happens below, the next attempt waits for its turn: a failing store must
        // not be tried again on every memory hit.
        self.shared.counts.last_flush_ms = Some(now);
        self.owe(scale);
        if scale > 0 {
            self.pay(io);
        }
    }

    /// Moves what was counted since the last hand-over into what is owed,
    /// multiplied by `scale` (0: dropped, for an unsampled call).
    fn owe(&mut self, scale: u64) {
        let envs = self.envs.len();
        self.shared.counts.seen.resize(envs, Vec::new());
        self.shared.counts.owed.resize(envs, Vec::new());
        for env in 0..envs {
            let current = self.flat_counters(env);
            if scale == 0 {
                // Dropped (an unsampled call): nothing is owed, the baseline moves on.
                self.shared.counts.seen[env] = current;
                continue;
            }
            let ledger = &mut self.shared.counts;
            ledger.seen[env].resize(current.len(), 0);
            ledger.owed[env].resize(current.len(), 0);
            for (i, value) in current.iter().enumerate() {
                let delta = value.saturating_sub(ledger.seen[env][i]);
                ledger.owed[env][i] = ledger.owed[env][i].saturating_add(delta.saturating_mul(scale));
                ledger.seen[env][i] = *value;
            }
        }
    }

    /// Adds what is owed to the shared totals, one environment at a time.
    fn pay(&mut self, io: &mut Io<'_>) {
        for env in 0..self.shared.counts.owed.len() {
            if self.shared.counts.owed[env].iter().all(|v| *v == 0) {
                continue;
            }
            if !self.pay_env(env, io) {
                return;
            }
        }
    }

    /// Adds environment `env`'s owed counts to one of its shards; `false` if
    /// they are still owed.
    fn pay_env(&mut self, env: usize, io: &mut Io<'_>) -> bool {
        for _ in 0..CAS_ROUNDS {
            let shard = io.random.next_u64() % SHARDS;
            let Some((id, identity)) = self.count_ids(env, shard) else { return false };
            let Some((current, token)) = self.store_read(io, |store| store.watch(&id)) else { return false };
            // A shard that does not open is counted rejected, read as empty and replaced by this write.
            let mut record = current.and_then(|sealed| self.open_record(env, &identity, &sealed, CountsRecord::decode)).unwrap_or_default();
            record.add(&self.shared.counts.owed[env]);
            let nonce = super::nonce(io);
            let Some(ready) = self.shared.usable() else { return false };
            let sealed = ready.key.seal(&identity, &record.encode(), nonce);
            match self.store_write(io, |store| store.swap(token, &sealed)) {
                Some(true) => {
                    self.shared.counts.owed[env].iter_mut().for_each(|v| *v = 0);
                    self.shared.counts.totals_read = None;
                    return true;
                }
                // Another instance added to this shard meanwhile: try another.
                Some(false) => continue,
                None => return false,
            }
        }
        false
    }

    /// The totals over every instance sharing the store, per environment in
    /// the order of [`Provider::stats`], with this instance's counts not yet
    /// added to them; the breakers are brought up to date from the same read
    /// (one `get-many` in all, no write). `None` without usable shared state.
    pub fn shared_totals(&mut self, io: &mut Io<'_>) -> Option<Vec<Totals>> {
        let now = io.clock.now_ms();
        self.shared.begin_call(now);
        self.shared.usable()?;
        let recent = self.shared.counts.totals_read.as_ref().filter(|(at, sums)| now.saturating_sub(*at) < TOTALS_REUSE_MS && sums.len() == self.envs.len());
        let sums = match recent {
            Some((_, sums)) => sums.clone(),
            None => {
                let sums = self.read_totals(io)?;
                self.shared.counts.totals_read = Some((now, sums.clone()));
                sums
            }
        };
        // What this instance counted and has not added yet (rejected shards just now included).
        self.owe(1);
        // In the order of `stats`: by name.
        let totals = self
            .order_by_name()
            .into_iter()
            .map(|env| (env, sums[env].clone()))
            .map(|(env, mut sum)| {
                sum.add(&self.shared.counts.owed.get(env).cloned().unwrap_or_default());
                unflatten(&sum.values)
            })
            .collect();
        Some(totals)
    }

    /// Every environment's shards, summed, and every breaker, adopted: one `get-many`.
    fn read_totals(&mut self, io: &mut Io<'_>) -> Option<Vec<CountsRecord>> {
        let mut ids = Vec::new();
        for env in 0..self.envs.len() {
            for shard in 0..SHARDS {
                ids.push(self.count_ids(env, shard)?);
            }
        }
        let breakers = self.breaker_ids_all()?;
        let keys: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).chain(breakers.iter().map(|(_, _, id, _)| id.as_str())).collect();
        let mut values = self.store_read(io, |store| store.get_many(&keys))?.into_iter();
        let mut sums: Vec<CountsRecord> = (0..self.envs.len()).map(|_| CountsRecord::default()).collect();
        for (i, (_, identity)) in ids.iter().enumerate() {
            let env = i / SHARDS as usize;
            if let Some(record) = values.next().flatten().and_then(|sealed| self.open_record(env, identity, &sealed, CountsRecord::decode)) {
                sums[env].add(&record.values);
            }
        }
        for (env, tier, _, identity) in &breakers {
            let sealed = values.next().flatten();
            self.adopt_breaker(*env, *tier, identity, sealed.as_deref(), io);
        }
        Some(sums)
    }

    /// An environment's counters and histogram, then each tier's, as one list:
    /// the layout of a count record (bound into its identity, see [`Self::count_ids`]).
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

    /// The bucket key and identity of shard `shard` of environment `env`'s
    /// counts. The flat layout's sizes are part of the identity: a version
    /// that counts more things keeps its totals apart instead of misreading them.
    fn count_ids(&self, env: usize, shard: u64) -> Option<(String, Vec<u8>)> {
        let ready = self.shared.usable()?;
        let layout = [COUNTER_COUNT as u8, TIER_COUNTER_COUNT as u8, HISTOGRAM_LEN as u8, shard as u8];
        let parts: [&[u8]; 2] = [self.envs[env].env.spec.name.as_bytes(), &layout];
        Some((ready.key.entry_id("count", &parts), seal::identity("count", &parts)))
    }
}

/// One environment's totals across instances.
pub struct Totals {
    pub counters: Counters,
    pub hit_latency: Histogram,
    /// Per tier: its counters and attempt latencies.
    pub tiers: Vec<(TierCounters, Histogram)>,
}

/// A flat list read back as counters, histograms and tiers.
fn unflatten(values: &[u64]) -> Totals {
    let mut rest = values;
    let counters = Counters::from_array(take(&mut rest));
    let hit_latency = take_histogram(&mut rest);
    let mut tiers = Vec::new();
    while !rest.is_empty() {
        tiers.push((TierCounters::from_array(take(&mut rest)), take_histogram(&mut rest)));
    }
    Totals { counters, hit_latency, tiers }
}

/// The next `K` values of `rest` (zeros past its end: a shard that lacks a
/// value reads as zero, not as an error).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_list_reads_back_as_counters_histograms_and_tiers() {
        let tier_len = TIER_COUNTER_COUNT + HISTOGRAM_LEN;
        let values: Vec<u64> = (1..=(COUNTER_COUNT + HISTOGRAM_LEN + 2 * tier_len) as u64).collect();
        let totals = unflatten(&values);
        assert_eq!(totals.counters.hits, 1);
        assert_eq!(totals.hit_latency.counts[0], COUNTER_COUNT as u64 + 1);
        assert_eq!(totals.hit_latency.sum_us, (COUNTER_COUNT + HISTOGRAM_LEN) as u64);
        assert_eq!(totals.tiers.len(), 2);
        assert_eq!(totals.tiers[1].0.backend_calls, (COUNTER_COUNT + HISTOGRAM_LEN + tier_len + 1) as u64);
        let short = unflatten(&values[..3]);
        assert_eq!((short.counters.misses, short.counters.errors.backend, short.tiers.len()), (2, 0, 0), "missing values read as zero");
    }
}
