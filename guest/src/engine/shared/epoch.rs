//! Environments' invalidation epochs, and the one read that starts a call's
//! use of shared state: the epochs it needs and the entries of its first
//! lookups, in a single `get-many`.
//!
//! An epoch is sealed, so a store writer cannot make one up, and it carries
//! the time `invalidate` made it. A writer can still put back an older sealed
//! epoch (a replay) and so bring back entries published before an
//! invalidation, for as long as their own TTLs run: a fresh instance has no
//! way to tell. An instance that has seen the newer epoch does: it keeps the
//! newest it saw per environment, refuses an older one (counted in
//! `shared_rejected`) and writes its own back.

use crate::prelude::*;
use crate::engine::{Io, Job, Provider};
use crate::shared::record::Epoch;
use crate::shared::seal;

impl Provider {
    fn epoch_id(&self, env: usize) -> Option<String> {
        let ready = self.shared.usable()?;
        Some(ready.key.entry_id("epoch", &[self.envs[env].env.spec.name.as_bytes()]))
    }

    fn epoch_identity(&self, env: usize) -> Vec<u8> {
        seal::identity("epoch", &[self.envs[env].env.spec.name.as_bytes()])
    }

    /// The epoch a stored value stands for, checked against this instance's
    /// high-water mark (see the module docs).
    fn stored_epoch(&mut self, env: usize, id: &str, value: Option<&[u8]>, io: &mut Io<'_>) -> Epoch {
        let Some(sealed) = value else { return self.checked_epoch(env, id, Epoch::INITIAL, io) };
        let identity = self.epoch_identity(env);
        match self.open_record(env, &identity, sealed, |plain| <[u8; 16]>::try_from(plain).ok()) {
            Some(bytes) => self.checked_epoch(env, id, Epoch(bytes), io),
            // Edited, made up, or written by a version before epochs were sealed: an epoch of
            // its own, so it matches no entry published before (an invalidation, at worst).
            None => Epoch::from_stored(Some(sealed)),
        }
    }

    /// `epoch` (authentic), unless this instance has seen a newer one: then
    /// the store was rolled back, and the newer one is used and written back.
    fn checked_epoch(&mut self, env: usize, id: &str, epoch: Epoch, io: &mut Io<'_>) -> Epoch {
        self.shared.epoch_marks.resize(self.envs.len(), None);
        match self.shared.epoch_marks[env] {
            Some(mark) if mark.issued_at_ms() > epoch.issued_at_ms() => {
                self.envs[env].counters.shared_rejected += 1;
                self.write_epoch(env, id, mark, io);
                mark
            }
            _ => {
                self.shared.epoch_marks[env] = Some(epoch);
                epoch
            }
        }
    }

    /// Seals and sets `epoch` as environment `env`'s. `false` if the store failed.
    fn write_epoch(&mut self, env: usize, id: &str, epoch: Epoch, io: &mut Io<'_>) -> bool {
        let identity = self.epoch_identity(env);
        let nonce = super::nonce(io);
        let Some(ready) = self.shared.usable() else { return false };
        let sealed = ready.key.seal(&identity, &epoch.0, nonce);
        self.store_write(io, |store| store.set(id, &sealed)).is_some()
    }

    /// Environment `env`'s epoch, if this call has read it.
    pub(in crate::engine) fn known_epoch(&self, env: usize) -> Option<Epoch> {
        self.shared.epochs.get(env).copied().flatten()
    }

    fn note_epoch(&mut self, env: usize, epoch: Epoch) {
        self.shared.epochs.resize(self.envs.len(), None);
        self.shared.epochs[env] = Some(epoch);
    }

    /// Reads, in one operation, the epochs this call does not know yet of
    /// the environments in `envs` and the values under `keys`; the values
    /// are kept for [`Self::read_entry`]. `false` if the store failed.
    fn read_ahead(&mut self, envs: &[usize], keys: &[String], io: &mut Io<'_>) -> bool {
        let mut wanted: Vec<(Option<usize>, String)> = Vec::new();
        for &env in envs {
            if self.known_epoch(env).is_none() && !wanted.iter().any(|(e, _)| *e == Some(env)) {
                let Some(id) = self.epoch_id(env) else { return false };
                wanted.push((Some(env), id));
            }
        }
        for key in keys {
            if !wanted.iter().any(|(_, k)| k == key) {
                wanted.push((None, key.clone()));
            }
        }
        if wanted.is_empty() {
            return true;
        }
        let names: Vec<&str> = wanted.iter().map(|(_, k)| k.as_str()).collect();
        let Some(values) = self.store_read(io, |store| store.get_many(&names)) else { return false };
        // A store that answers with fewer values than asked for: the rest are absent.
        let mut values = values.into_iter();
        for (env, key) in wanted {
            let value = values.next().flatten();
            match env {
                Some(env) => {
                    let epoch = self.stored_epoch(env, &key, value.as_deref(), io);
                    self.note_epoch(env, epoch);
                }
                None => self.shared.prefetched.push((key, value)),
            }
        }
        true
    }

    /// Reads ahead the entries `jobs` will look up first, with their
    /// environments' epochs: a call that misses memory makes one store read
    /// before it knows whether shared state answers.
    pub(in crate::engine) fn read_ahead_jobs(&mut self, jobs: &[Job], io: &mut Io<'_>) {
        let envs: Vec<usize> = jobs.iter().map(|job| job.env).collect();
        let keys: Vec<String> = jobs.iter().filter_map(|job| self.cache_ids(job.env, &job.cache_key()).map(|(id, _)| id)).collect();
        self.read_ahead(&envs, &keys, io);
    }

    /// The sealed entry under `id` (of environment `env`) and the epoch it must
    /// carry: read ahead, or read now (with the epoch when this call does not
    /// know it yet, still one operation). `None`: the store failed. An id found
    /// holding anything is remembered for the call (see [`Self::held_in_store`]).
    pub(in crate::engine) fn read_entry(&mut self, env: usize, id: &str, io: &mut Io<'_>) -> Option<(Option<Vec<u8>>, Epoch)> {
        let found = self.read_entry_value(env, id, io)?;
        if found.0.is_some() && !self.held_in_store(id) {
            self.shared.present.push(id.to_string());
        }
        Some(found)
    }

    /// Whether this call found a record under the entry `id`: the store held
    /// that key before (a value, an old not-found, or anything unusable).
    pub(in crate::engine) fn held_in_store(&self, id: &str) -> bool {
        self.shared.present.iter().any(|held| held == id)
    }

    fn read_entry_value(&mut self, env: usize, id: &str, io: &mut Io<'_>) -> Option<(Option<Vec<u8>>, Epoch)> {
        if let Some(value) = self.shared.take_prefetched(id) {
            return Some((value, self.known_epoch(env)?));
        }
        if self.known_epoch(env).is_none() {
            if !self.read_ahead(&[env], &[id.to_string()], io) {
                return None;
            }
            let value = self.shared.take_prefetched(id)?;
            return Some((value, self.known_epoch(env)?));
        }
        let value = self.store_read(io, |store| store.get(id))?;
        Some((value, self.known_epoch(env)?))
    }

    /// Moves environment `env`'s epoch on: every shared entry of it is then
    /// read as absent (and is overwritten by the next fetch of its secret).
    /// `false` if the store could not be told.
    pub(in crate::engine) fn invalidate_shared(&mut self, env: usize, io: &mut Io<'_>) -> bool {
        let Some(id) = self.epoch_id(env) else { return self.shared.ready.is_none() };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&io.random.next_u64().to_le_bytes());
        // The wall clock too: even a weak random source moves the epoch on.
        bytes[8..].copy_from_slice(&io.clock.wall_ms().to_be_bytes());
        let epoch = Epoch::fresh(bytes);
        self.shared.epochs.clear();
        let told = self.write_epoch(env, &id, epoch, io);
        if told {
            self.note_epoch(env, epoch);
            self.shared.epoch_marks.resize(self.envs.len(), None);
            self.shared.epoch_marks[env] = Some(epoch);
        }
        told
    }
}
