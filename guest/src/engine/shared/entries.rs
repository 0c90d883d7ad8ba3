//! Cache entries in shared state: looking them up (fresh, or stale for a
//! failed read), publishing what this instance fetched (values and
//! not-founds), and the keys and identities they are sealed under.

use crate::prelude::*;
use super::backend_identity::backend_identity;
use super::{nonce, version_text};
use crate::engine::{Io, Job, Provider, Reason, Secret};
use crate::cache::{CacheKey, Cached};
use crate::error::Error;
use crate::secret::SecretBytes;
use crate::shared::record::CacheRecord;
use crate::shared::seal;
use crate::validate::VersionSel;

/// Entry keys whose newest fetch time a reused instance remembers.
const FETCHED_MARKS: usize = 256;

/// An answer to publish: a value, or a not-found (its message).
pub(in crate::engine) enum Outgoing {
    Value(Cached),
    NotFound(String),
}

impl Provider {
    /// The bucket key and associated data of a cache entry. The identity binds
    /// the environment, the backend it points at (so re-pointing `prod` at
    /// another Vault, or two deployments sharing a store and key, never serve
    /// each other's values), the name, the version and the field. Not the
    /// epoch: it is inside the record, so that a fresh instance can read the
    /// epoch and the entry at once.
    ///
    /// Kept for the rest of the call: a fresh instance's shared hit needs them
    /// for the read-ahead and again to open the entry, and the id is an HMAC
    /// (computing it twice was ~15 % of such a call in the profile).
    pub(in crate::engine) fn cache_ids(&self, env: usize, key: &CacheKey) -> Option<(String, Vec<u8>)> {
        let ready = self.shared.usable()?;
        if let Some((_, _, ids)) = self.shared.entry_ids.borrow().iter().find(|(e, k, _)| *e == env && k == key) {
            return Some(ids.clone());
        }
        let state = &self.envs[env];
        let spec = &state.env.spec;
        let backend = state.backend_identity.get_or_init(|| backend_identity(&spec.primary().backend, &spec.primary().url));
        let version = version_text(&key.version);
        let parts: [&[u8]; 5] = [spec.name.as_bytes(), backend.as_bytes(), key.name.as_bytes(), version.as_bytes(), key.field.as_bytes()];
        let ids = (ready.key.entry_id("entry", &parts), seal::identity("entry", &parts));
        self.shared.entry_ids.borrow_mut().push((env, key.clone(), ids.clone()));
        Some(ids)
    }

    /// Sets which shared answers satisfy a refresh: one fetched within the
    /// refresh interval (`refresh`), or one not yet due itself (refresh-ahead).
    pub(in crate::engine) fn with_freshness(&self, mut job: Job, wall: u64) -> Job {
        let policy = self.envs[job.env].env.spec.policy;
        let ttl = if job.version.is_pinned() { policy.cache_pinned_ttl_ms } else { policy.cache_ttl_ms };
        job.fresher_than_wall_ms = match job.reason {
            Reason::Miss => 0,
            // Fetched less than the interval ago, as for memory entries.
            Reason::Forced => wall.saturating_sub(policy.refresh_interval_ms).saturating_add(1),
            Reason::Ahead => wall.saturating_sub(ttl / 100 * u64::from(policy.refresh_ahead_percent)).saturating_add(1),
        };
        job
    }

    /// The in-memory value a refresh-ahead job is refreshing (still fresh).
    pub(in crate::engine) fn still_cached(&mut self, job: &Job, io: &mut Io<'_>) -> Option<Secret> {
        let now = io.clock.now_ms();
        let (cached, _) = self.envs[job.env].cache.stale(&job.name, &job.version, &job.field, now)?;
        Some(Secret::cached(cached, false))
    }

    /// Reads and opens `key`'s shared record. One that does not open or
    /// decode is counted as rejected; one of an older epoch (invalidated) is
    /// simply absent.
    fn shared_record(&mut self, env: usize, key: &CacheKey, io: &mut Io<'_>) -> Option<CacheRecord> {
        let (id, identity) = self.cache_ids(env, key)?;
        let (sealed, epoch) = self.read_entry(env, &id, io)?;
        let record = self.open_record(env, &identity, &sealed?, CacheRecord::decode)?;
        // Older than one this instance has seen under the same key: put back by a store
        // writer (a replay). Refused, so that the backend is asked and the record replaced.
        if record.epoch == epoch && !self.note_fetched(&id, record.fetched_at_ms) {
            self.envs[env].counters.shared_rejected += 1;
            return None;
        }
        // Written by a configuration with more tiers (a rolling deploy that dropped a
        // fallback): authentic, but its tier means nothing here, so it is not served.
        Some(record).filter(|r| r.epoch == epoch && usize::from(r.tier) < self.envs[env].tiers.len())
    }

    /// Records that the entry `id` was seen (or published) fetched at
    /// `fetched_at_ms`; `false` if this instance saw a newer one. Bounded: a
    /// reused instance remembers its latest [`FETCHED_MARKS`] keys.
    fn note_fetched(&mut self, id: &str, fetched_at_ms: u64) -> bool {
        let marks = &mut self.shared.fetched_marks;
        if let Some(i) = marks.iter().position(|(key, _)| key == id) {
            let (_, newest) = marks.remove(i);
            marks.push((id.to_string(), newest.max(fetched_at_ms)));
            return fetched_at_ms >= newest;
        }
        if marks.len() >= FETCHED_MARKS {
            marks.remove(0);
        }
        marks.push((id.to_string(), fetched_at_ms));
        true
    }

    /// A fresh shared answer for `job` (a value, or a cached not-found),
    /// copied into memory.
    pub(in crate::engine) fn shared_lookup(&mut self, job: &Job, io: &mut Io<'_>) -> Option<Result<Secret, Error>> {
        let key = job.cache_key();
        let record = self.shared_record(job.env, &key, io)?;
        let state = &mut self.envs[job.env];
        let policy = state.env.spec.policy;
        let ttl = match (record.negative, job.version.is_pinned()) {
            (true, _) => policy.negative_ttl_ms,
            (false, true) => policy.cache_pinned_ttl_ms,
            (false, false) => policy.cache_ttl_ms,
        };
        let (now_wall, now) = (io.clock.wall_ms(), io.clock.now_ms());
        // An entry claiming to live longer than the TTL allows (a writer whose clock runs
        // ahead) is not trusted past what this instance's own policy would give it. A
        // refresh is satisfied only by an answer fetched recently enough.
        let distrusted = record.expires_at_ms.saturating_sub(now_wall) > ttl;
        if record.expires_at_ms <= now_wall || distrusted || record.fetched_at_ms < job.fresher_than_wall_ms {
            return None;
        }
        let remaining = record.expires_at_ms - now_wall;
        if record.negative {
            let message = String::from_utf8_lossy(&record.value).into_owned();
            state.cache.insert_negative(key, message.clone(), remaining, now);
            state.counters.shared_hits += 1;
            state.counters.negative_hits += 1;
            let error = Error::NotFound(message);
            state.counters.error(error.kind());
            return Some(Err(error));
        }
        let cached = Cached { value: SecretBytes::new(record.value), version: record.version, tier: u32::from(record.tier) };
        // The entry keeps its age: refresh-ahead and the refresh interval count from its fetch.
        let age = now_wall.saturating_sub(record.fetched_at_ms).min(now);
        state.cache.insert_aged(key, cached.clone(), now - age, now.saturating_add(remaining), policy.max_stale_ms);
        state.counters.shared_hits += 1;
        Some(Ok(Secret::cached(&cached, false)))
    }

    /// A shared value within `max_stale` of its expiry: the answer of last
    /// resort when the backend failed.
    pub(in crate::engine) fn shared_stale(&mut self, env: usize, key: &CacheKey, io: &mut Io<'_>) -> Option<Secret> {
        self.shared.ready.as_ref()?;
        let record = self.shared_record(env, key, io)?;
        let max_stale = self.envs[env].env.spec.policy.max_stale_ms;
        let now_wall = io.clock.wall_ms();
        if record.negative || now_wall >= record.expires_at_ms.saturating_add(max_stale) {
            return None;
        }
        let cached = Cached { value: SecretBytes::new(record.value), version: record.version, tier: u32::from(record.tier) };
        Some(Secret::cached(&cached, record.expires_at_ms <= now_wall))
    }

    /// Queues a fetched answer for publication (see [`Self::publish`]).
    pub(in crate::engine) fn queue_publish(&mut self, env: usize, key: CacheKey, cached: &Cached, ttl_ms: u64) {
        if self.shared.ready.is_some() && ttl_ms > 0 {
            self.shared.outbox.push((env, key, Outgoing::Value(cached.clone()), ttl_ms));
        }
    }

    /// Queues a not-found answer for publication.
    pub(in crate::engine) fn queue_publish_not_found(&mut self, env: usize, key: CacheKey, message: &str, ttl_ms: u64) {
        if self.shared.ready.is_some() && ttl_ms > 0 {
            self.shared.outbox.push((env, key, Outgoing::NotFound(message.to_string()), ttl_ms));
        }
    }

    /// Writes the answers fetched during this call to shared state, all in
    /// one `set-many`, under the epoch this call read (an entry is never
    /// published under an epoch not read: it could be one `invalidate` just
    /// moved past). Returns the reads (environment, name, version) published.
    pub(in crate::engine) fn publish(&mut self, io: &mut Io<'_>) -> Vec<(usize, String, VersionSel)> {
        let mut sealed: Vec<(String, Vec<u8>)> = Vec::new();
        let mut published = Vec::new();
        for (env, key, answer, ttl) in core::mem::take(&mut self.shared.outbox) {
            let (Some(epoch), Some((id, identity))) = (self.known_epoch(env), self.cache_ids(env, &key)) else { continue };
            // A not-found is shared only where the store held a record for the read (the
            // secret was deleted, or an old not-found is renewed). Otherwise a caller asking
            // for ever new names would add a record per name: the store is shared by every
            // environment and host, and it would grow without bound. Instances asking for
            // such a name again each ask the backend (a reused one still caches it in memory).
            if matches!(answer, Outgoing::NotFound(_)) && !self.held_in_store(&id) {
                continue;
            }
            let wall = io.clock.wall_ms();
            let (expires_at_ms, fetched_at_ms) = (wall.saturating_add(ttl), wall);
            let record = match answer {
                Outgoing::Value(cached) => CacheRecord {
                    epoch,
                    fetched_at_ms,
                    expires_at_ms,
                    tier: u8::try_from(cached.tier).unwrap_or(u8::MAX),
                    negative: false,
                    version: cached.version,
                    value: cached.value.into_vec(),
                },
                Outgoing::NotFound(message) => CacheRecord {
                    epoch,
                    fetched_at_ms,
                    expires_at_ms,
                    tier: 0,
                    negative: true,
                    version: String::new(),
                    value: message.into_bytes(),
                },
            };
            self.note_fetched(&id, fetched_at_ms);
            let nonce = nonce(io);
            let Some(ready) = self.shared.usable() else { break };
            let mut plain = record.encode();
            sealed.push((id, ready.key.seal(&identity, &plain, nonce)));
            plain.iter_mut().for_each(|b| *b = 0);
            published.push((env, key.name, key.version));
        }
        if sealed.is_empty() {
            return Vec::new();
        }
        let entries: Vec<(&str, &[u8])> = sealed.iter().map(|(id, value)| (id.as_str(), value.as_slice())).collect();
        match self.store_write(io, |store| store.set_many(&entries)) {
            Some(()) => published,
            None => Vec::new(),
        }
    }
}
