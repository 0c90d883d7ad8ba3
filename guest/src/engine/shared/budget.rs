//! The retry budget ([`crate::retry::budget`]) across instances: each time
//! slot's first attempts and retries are shared integers (`atomics.increment`,
//! which never conflicts, unlike a compare-and-swapped record that every
//! miss of every instance would write). Under Spin each request is a fresh
//! instance, so an in-memory ledger would only ever hold one call; shared, the
//! budget is what the whole deployment sent.
//!
//! Without usable shared state, or when an increment fails (the store is then
//! marked degraded like any store failure), the instance's own [`Ledger`]
//! decides; it mirrors the instance's traffic all along, so a fallback does
//! not start from nothing.
//!
//! Slots are numbered on the wall clock (instances' monotonic clocks differ).
//! A retry costs one increment for the current slot plus a read of the other
//! nine (and of the calls, when the floor alone does not cover it); a first
//! attempt costs one increment. The keyvalue API has no expiry, so the first
//! deposit (or retry) in a slot deletes the slots that slid out since the
//! previous one (see [`Provider::sweep_budget`]).
//!
//! [`Ledger`]: crate::retry::Ledger

use crate::prelude::*;
use crate::engine::{Io, Provider};
use crate::retry::budget::{RetryBudget, SLOTS};

const CALLS: &[u8] = b"calls";
const RETRIES: &[u8] = b"retries";
/// The newest slot that had a first deposit: where the next sweep starts.
const LAST: &[u8] = b"last";

/// A store total as a count (a negative one, from a broken writer, as zero).
fn count(total: i64) -> u64 {
    u64::try_from(total).unwrap_or(0)
}

impl Provider {
    /// A first attempt of environment `env` is being sent: it earns its share of retries.
    pub(in crate::engine) fn budget_deposit(&mut self, env: usize, io: &mut Io<'_>) {
        let budget = self.envs[env].env.spec.policy.retry_budget;
        let now = io.clock.now_ms();
        self.envs[env].budget.deposit(&budget, now);
        if self.shared.usable().is_none() {
            return;
        }
        let slot = budget.slot_of(io.clock.wall_ms());
        let Some(id) = self.budget_id(env, &budget, CALLS, slot) else { return };
        if self.store_write(io, |store| store.increment(&id, 1)) == Some(1) {
            self.sweep_budget(env, &budget, slot, io);
        }
    }

    /// Takes one retry from environment `env`'s budget; `false` when it is spent.
    pub(in crate::engine) fn budget_withdraw(&mut self, env: usize, io: &mut Io<'_>) -> bool {
        let budget = self.envs[env].env.spec.policy.retry_budget;
        let now = io.clock.now_ms();
        match self.shared_withdraw(env, &budget, io) {
            Some(allowed) => {
                if allowed {
                    self.envs[env].budget.note_retry(&budget, now);
                }
                allowed
            }
            None => self.envs[env].budget.withdraw(&budget, now),
        }
    }

    /// The shared budget's answer; `None` when the store is not usable or failed.
    fn shared_withdraw(&mut self, env: usize, budget: &RetryBudget, io: &mut Io<'_>) -> Option<bool> {
        self.shared.usable()?;
        let current = budget.slot_of(io.clock.wall_ms());
        let window = current.saturating_sub(SLOTS - 1)..=current;
        // Take the retry first and look after: two instances checking at once then cannot
        // both take the last one (a failure half-way leaves it taken: fewer retries, not more).
        let taken = self.budget_id(env, budget, RETRIES, current)?;
        let mut retries = count(self.store_write(io, |store| store.increment(&taken, 1))?);
        if retries == 1 {
            // The slot's first retry may come before (or without) its first deposit.
            self.sweep_budget(env, budget, current, io);
        }
        for slot in window.clone().filter(|s| *s != current) {
            retries += self.budget_total(env, budget, RETRIES, slot, io)?;
        }
        // Within the floor the calls do not matter: one read fewer per slot in a quiet window.
        let mut allowed = budget.fits(0, retries);
        if !allowed {
            let mut calls = 0;
            for slot in window {
                calls += self.budget_total(env, budget, CALLS, slot, io)?;
            }
            allowed = budget.fits(calls, retries);
        }
        if !allowed {
            self.store_write(io, |store| store.increment(&taken, -1))?;
        }
        Some(allowed)
    }

    /// One slot's shared count (adding zero reads it in a form every store agrees on).
    fn budget_total(&mut self, env: usize, budget: &RetryBudget, kind: &[u8], slot: u64, io: &mut Io<'_>) -> Option<u64> {
        let id = self.budget_id(env, budget, kind, slot)?;
        self.store_write(io, |store| store.increment(&id, 0)).map(count)
    }

    /// Runs when a counter of `slot` is created (an increment came back 1):
    /// deletes the slot counters that slid out of the window since the last
    /// slot this ran for (`LAST`). Every counter is created within `SLOTS` of
    /// `LAST` (reads, which create counters too, only look back from a slot
    /// this ran for), so slots up to `LAST - SLOTS` went with earlier sweeps:
    /// this deletes at most `SLOTS` slots' counters, under steady traffic one
    /// slot's. Best effort: two instances sweeping at once, or a writer whose
    /// clock lags, can leave a few counters behind.
    fn sweep_budget(&mut self, env: usize, budget: &RetryBudget, slot: u64, io: &mut Io<'_>) {
        let Some(last_id) = self.budget_id(env, budget, LAST, 0) else { return };
        let Some(last) = self.store_write(io, |store| store.increment(&last_id, 0)).map(count) else { return };
        if last >= slot {
            return;
        }
        let delta = i64::try_from(slot - last).unwrap_or(i64::MAX);
        if self.store_write(io, |store| store.increment(&last_id, delta)).is_none() || last == 0 {
            // Nothing swept before: which slots exist is unknown (there are at most SLOTS).
            return;
        }
        let expired = last.saturating_sub(SLOTS - 1)..=last.min(slot.saturating_sub(SLOTS));
        for old in expired {
            for kind in [CALLS, RETRIES] {
                let Some(id) = self.budget_id(env, budget, kind, old) else { return };
                if self.store_write(io, |store| store.delete(&id)).is_none() {
                    return;
                }
            }
        }
    }

    /// The bucket key of one slot counter. The slot length is part of it, so
    /// instances configured with different windows never add up unlike slots.
    fn budget_id(&self, env: usize, budget: &RetryBudget, kind: &[u8], slot: u64) -> Option<String> {
        let ready = self.shared.usable()?;
        let mut slot_bytes = [0u8; 16];
        slot_bytes[..8].copy_from_slice(&budget.slot_ms().to_be_bytes());
        slot_bytes[8..].copy_from_slice(&slot.to_be_bytes());
        let name = self.envs[env].env.spec.name.as_bytes();
        Some(ready.key.entry_id("budget", &[name, kind, &slot_bytes]))
    }
}
