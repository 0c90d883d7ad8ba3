//! Breakers in shared state: each environment's breaker is read and updated
//! with compare-and-swap, so failures counted by parallel instances add up and
//! an open breaker stops every instance. The instance's own copy follows the
//! shared state whenever it is read, and carries on from there when the store
//! fails.
//!
//! Breakers run on wall-clock time: their open periods and probe deadlines are
//! compared by instances (and hosts) whose monotonic clocks differ.

use crate::prelude::*;
use super::nonce;
use crate::engine::{Io, Provider};
use crate::breaker::{Breaker, State};
use crate::shared::record::BreakerRecord;
use crate::shared::seal;

/// Compare-and-swap rounds before a breaker update falls back to memory.
const CAS_ROUNDS: u32 = 16;

enum Round<R> {
    Done(R),
    Conflict,
    Unusable,
}

/// A breaker's environment, tier, bucket key and identity.
pub(in crate::engine) type BreakerIds = (usize, usize, String, Vec<u8>);

impl Provider {
    /// Brings every environment's breaker copy up to date with shared state
    /// (before `health`, so a fresh instance reports what all see): one
    /// `get-many` of every breaker, no write (a record that needs rewriting is
    /// rewritten by the next update of it).
    pub fn sync_breakers(&mut self, io: &mut Io<'_>) {
        let now = io.clock.now_ms();
        self.shared.begin_call(now);
        let Some(breakers) = self.breaker_ids_all() else { return };
        let keys: Vec<&str> = breakers.iter().map(|(_, _, id, _)| id.as_str()).collect();
        let Some(values) = self.store_read(io, |store| store.get_many(&keys)) else { return };
        for ((env, tier, _, identity), sealed) in breakers.iter().zip(values) {
            self.adopt_breaker(*env, *tier, identity, sealed.as_deref(), io);
        }
    }

    /// Every tier's breaker as (environment, tier, bucket key, identity).
    pub(in crate::engine) fn breaker_ids_all(&self) -> Option<Vec<BreakerIds>> {
        let mut out = Vec::new();
        for env in 0..self.envs.len() {
            for tier in 0..self.envs[env].tiers.len() {
                let (id, identity) = self.breaker_ids(env, tier)?;
                out.push((env, tier, id, identity));
            }
        }
        Some(out)
    }

    fn breaker_ids(&self, env: usize, tier: usize) -> Option<(String, Vec<u8>)> {
        let ready = self.shared.usable()?;
        let name = self.envs[env].env.spec.name.as_bytes();
        let kind = self.envs[env].env.spec.tiers[tier].backend.kind().as_bytes();
        let index = [u8::try_from(tier).unwrap_or(u8::MAX)];
        let parts: [&[u8]; 3] = [name, kind, &index];
        Some((ready.key.entry_id("breaker", &parts), seal::identity("breaker", &parts)))
    }

    /// Opens a breaker record: `Err(())` if it does not open or decode
    /// (counted as rejected), `Ok(None)` if there is none.
    fn open_breaker(&mut self, env: usize, identity: &[u8], sealed: Option<&[u8]>) -> Result<Option<BreakerRecord>, ()> {
        let Some(sealed) = sealed else { return Ok(None) };
        self.open_record(env, identity, sealed, BreakerRecord::decode).map(Some).ok_or(())
    }

    /// Makes this instance's copy of a breaker what its shared record (read
    /// without a compare-and-swap) says; a forged one reads as closed.
    pub(in crate::engine) fn adopt_breaker(&mut self, env: usize, tier: usize, identity: &[u8], sealed: Option<&[u8]>, io: &mut Io<'_>) {
        let settings = self.envs[env].tiers[tier].breaker.settings();
        let breaker = match self.open_breaker(env, identity, sealed) {
            Ok(Some(record)) => Breaker::restore_at(settings, record.state, record.generation, io.clock.wall_ms()),
            // As a compare-and-swap round would start: see `shared_breaker_round`.
            Ok(None) | Err(()) => Breaker::restore(settings, State::CLOSED, io.random.next_u64()),
        };
        self.envs[env].tiers[tier].breaker = breaker;
    }

    /// Runs `op` on tier `tier` of environment `env`'s breaker: on the shared
    /// state when it is usable (read, apply, compare-and-swap; retried after a
    /// short random pause on a concurrent update), else on this instance's
    /// copy. A change of state this call made is counted in the tier's counters.
    pub(in crate::engine) fn with_breaker<R>(&mut self, env: usize, tier: usize, io: &mut Io<'_>, mut op: impl FnMut(&mut Breaker) -> R) -> R {
        let mut out = None;
        self.breaker_op(env, tier, io, &mut |b| out = Some(op(b)));
        match out {
            Some(r) => r,
            // `breaker_op` always applies `op` once; this arm only satisfies the types.
            None => op(&mut self.envs[env].tiers[tier].breaker),
        }
    }

    /// [`Self::with_breaker`] behind one non-generic function: the store round
    /// trip and the sealing are compiled once, not once per caller (it kept the
    /// component's size in check).
    #[inline(never)]
    fn breaker_op(&mut self, env: usize, tier: usize, io: &mut Io<'_>, op: &mut dyn FnMut(&mut Breaker)) {
        let mut before = None;
        let mut counted = |b: &mut Breaker| {
            before = Some(b.state());
            op(b)
        };
        let mut result = None;
        for round in 0..CAS_ROUNDS {
            if self.shared.usable().is_none() {
                break;
            }
            match self.shared_breaker_round(env, tier, io, &mut counted) {
                Round::Done(r) => {
                    result = Some(r);
                    break;
                }
                // Jitter spreads writers that collided, so the next round mostly succeeds.
                Round::Conflict => io.clock.sleep_ms(io.random.next_u64() % (1 << round.min(3))),
                Round::Unusable => break,
            }
        }
        if result.is_none() {
            counted(&mut self.envs[env].tiers[tier].breaker);
        }
        let after = self.envs[env].tiers[tier].breaker.state();
        if let Some(before) = before {
            self.note_transition(env, tier, before, after);
        }
    }

    /// Counts (and logs) a breaker changing state.
    fn note_transition(&mut self, env: usize, tier: usize, before: State, after: State) {
        let counters = &mut self.envs[env].tiers[tier].counters;
        let kind = match (before, after) {
            (State::Open { .. }, State::Open { .. }) => return,
            (_, State::Open { .. }) => {
                counters.breaker_opened += 1;
                "breaker_opened"
            }
            (State::HalfOpen { .. }, State::Closed { .. }) => {
                counters.breaker_closed += 1;
                "breaker_closed"
            }
            (State::Open { .. }, State::HalfOpen { .. }) => "breaker_half_open",
            _ => return,
        };
        self.log_breaker(env, tier, kind);
    }

    fn shared_breaker_round(&mut self, env: usize, tier: usize, io: &mut Io<'_>, op: &mut dyn FnMut(&mut Breaker)) -> Round<()> {
        let Some((id, identity)) = self.breaker_ids(env, tier) else { return Round::Unusable };
        let Some((current, token)) = self.store_read(io, |store| store.watch(&id)) else { return Round::Unusable };
        let settings = self.envs[env].tiers[tier].breaker.settings();
        let (record, rejected) = match self.open_breaker(env, &identity, current.as_deref()) {
            Ok(record) => (record, false),
            // A forged record is replaced by a fresh closed breaker.
            Err(()) => (None, true),
        };
        // A record whose periods end later than this instance's settings allow (a writer whose
        // clock runs ahead) is bounded, and the bounded state is written back below, so that
        // the bound holds from now on instead of moving along with every reader's clock.
        let mut clamped = false;
        let mut breaker = match record {
            Some(record) => {
                let bounded = Breaker::restore_at(settings, record.state, record.generation, io.clock.wall_ms());
                clamped = bounded.state() != Breaker::restore(settings, record.state, record.generation).state();
                bounded
            }
            // A fresh breaker starts at a random generation, so that a permit handed out
            // before the record vanished can never pass for a probe of a later episode.
            None => Breaker::restore(settings, State::CLOSED, io.random.next_u64()),
        };
        let before = (breaker.state(), breaker.generation());
        op(&mut breaker);
        let unchanged = breaker.state() == before.0 && (breaker.generation() == before.1 || record.is_none());
        if unchanged && !rejected && !clamped {
            self.envs[env].tiers[tier].breaker = breaker;
            return Round::Done(());
        }
        let record = BreakerRecord { state: breaker.state(), generation: breaker.generation() };
        let nonce = nonce(io);
        let Some(ready) = self.shared.usable() else { return Round::Unusable };
        let sealed = ready.key.seal(&identity, &record.encode(), nonce);
        match self.store_write(io, |store| store.swap(token, &sealed)) {
            Some(true) => {
                self.envs[env].tiers[tier].breaker = breaker;
                Round::Done(())
            }
            Some(false) => Round::Conflict,
            None => Round::Unusable,
        }
    }
}
