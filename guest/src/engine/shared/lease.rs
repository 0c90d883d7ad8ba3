//! Fetch leases in shared state: while one instance fetches a secret, the
//! others that miss it wait for its answer instead of asking the backend too.
//!
//! A lease that ends with an answer published is not released: the waiters
//! poll for the entry, not the lease, so a release would only cost two more
//! operations, and the expired record tells the next taker to look for that
//! answer first. There is at most one such record per published entry. A
//! holder that publishes nothing (its fetch failed, or the name does not
//! exist) releases it by deleting it, so that another instance takes over at
//! once, and so that a caller asking for ever new names leaves nothing behind.

use crate::prelude::*;
use super::nonce;
use crate::engine::{Io, Job, Provider};
use crate::shared::record::LeaseRecord;
use crate::shared::seal;

/// A fetch lease this instance holds.
pub(in crate::engine) struct Held {
    pub(in crate::engine) id: String,
    pub(in crate::engine) identity: Vec<u8>,
    pub(in crate::engine) record: LeaseRecord,
    /// When the lease this one replaced ran out or was released (wall ms),
    /// if there was one: its holder may have published after a lookup made
    /// before then.
    pub(in crate::engine) previous_end_ms: Option<u64>,
}

/// How taking a fetch lease went.
pub(in crate::engine) enum Lease {
    /// This instance holds it (`None`: shared state is unusable): fetch.
    Fetch(Option<Held>),
    /// Another instance is fetching until the given wall time: wait for it.
    HeldUntil(u64),
}

impl Provider {
    fn lease_ids(&self, job: &Job) -> Option<(String, Vec<u8>)> {
        let ready = self.shared.usable()?;
        let version = super::version_text(&job.version);
        let parts: [&[u8]; 3] = [self.envs[job.env].env.spec.name.as_bytes(), job.name.as_bytes(), version.as_bytes()];
        Some((ready.key.entry_id("lease", &parts), seal::identity("lease", &parts)))
    }

    /// Takes the fetch lease for `job`'s secret and version, unless another
    /// instance holds a live one.
    pub(in crate::engine) fn lease(&mut self, job: &Job, io: &mut Io<'_>) -> Lease {
        let Some((id, identity)) = self.lease_ids(job) else { return Lease::Fetch(None) };
        self.lease_at(job.env, id, identity, io)
    }

    /// Takes the lease stored under `id` (sealed under `identity`), unless
    /// another instance holds a live one: fetch leases, and login leases
    /// ([`super::credentials`]).
    pub(in crate::engine) fn lease_at(&mut self, env: usize, id: String, identity: Vec<u8>, io: &mut Io<'_>) -> Lease {
        let Some((current, token)) = self.store_read(io, |store| store.watch(&id)) else { return Lease::Fetch(None) };
        let wall = io.clock.wall_ms();
        let mut previous_end_ms = None;
        if let Some(sealed) = &current {
            // One that does not open is counted and taken over like an expired one.
            match self.open_record(env, &identity, sealed, LeaseRecord::decode) {
                Some(lease) if lease.expires_at_ms > wall => return Lease::HeldUntil(lease.expires_at_ms),
                Some(lease) => previous_end_ms = Some(lease.expires_at_ms),
                None => {}
            }
        }
        let lease_ms = self.shared.ready.as_ref().map_or(0, |r| r.lease_ms);
        let record = LeaseRecord { expires_at_ms: wall.saturating_add(lease_ms), holder: io.random.next_u64() };
        let nonce = nonce(io);
        let Some(ready) = self.shared.usable() else { return Lease::Fetch(None) };
        let sealed = ready.key.seal(&identity, &record.encode(), nonce);
        match self.store_write(io, |store| store.swap(token, &sealed)) {
            Some(true) => Lease::Fetch(Some(Held { id, identity, record, previous_end_ms })),
            // Another instance took it between our read and our write.
            Some(false) => Lease::HeldUntil(record.expires_at_ms),
            None => Lease::Fetch(None),
        }
    }

    /// Ends a lease, if it is still ours (an expired one may have been taken
    /// over): the record is deleted, so that leases for names that published
    /// nothing (a failed fetch, a name no backend holds) do not pile up in the
    /// store. A delete is not conditional: in the moment between our look and
    /// the delete another instance can only have taken the lease if ours ran
    /// out, and deleting that one costs at most a second fetch, never a wrong
    /// answer. The next taker sees no lease, so it does not look for an answer
    /// before fetching: a released lease published none.
    pub(in crate::engine) fn release(&mut self, held: &Held, io: &mut Io<'_>) {
        let Some((current, _token)) = self.store_read(io, |store| store.watch(&held.id)) else { return };
        let Some(ready) = self.shared.usable() else { return };
        let ours = current
            .and_then(|sealed| ready.key.open(&held.identity, &sealed).ok())
            .and_then(|plain| LeaseRecord::decode(&plain))
            .is_some_and(|lease| lease.holder == held.record.holder);
        if ours {
            self.store_write(io, |store| store.delete(&held.id));
        }
    }
}
