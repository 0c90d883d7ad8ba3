//! What a read falls back on when its backends fail: a stale value (in
//! memory, then in shared state) within the environment's `max_stale`, and
//! short-lived not-found answers so a hot miss does not hammer the backend.
//!
//! Stale values answer only failures that say nothing about the secret
//! itself (timeouts, an open breaker, throttling, 5xx, unusable answers):
//! never a not-found or a permission-denied, which are the backend's word.

use crate::prelude::*;
use super::{Io, Job, Provider, Secret};
use crate::cache::CacheKey;
use crate::error::Error;
use crate::trace::TraceParent;
use super::events::About;

/// What one result slot of a fetch asked for.
pub(super) struct Read {
    env: usize,
    key: CacheKey,
    trace: Option<TraceParent>,
}

impl Read {
    pub(super) fn of(job: &Job) -> Read {
        Read {
            env: job.env,
            key: job.cache_key(),
            trace: job.trace,
        }
    }
}

impl Provider {
    /// Settles a fetch's results: failures that allow it are answered from a
    /// stale (or, for refresh-ahead, still fresh) value; what remains an
    /// error is counted.
    pub(super) fn settle(&mut self, reads: &[Read], results: Vec<Result<Secret, Error>>, io: &mut Io<'_>) -> Vec<Result<Secret, Error>> {
        let now = io.clock.now_ms();
        reads
            .iter()
            .zip(results)
            .map(|(read, result)| match result {
                Err(error) if error.allows_stale() => {
                    let about = About { env: read.env, tier: 0, name: &read.key.name, trace: read.trace.as_ref() };
                    match self.last_known(read, now, io) {
                        Some(secret) => {
                            if secret.stale {
                                self.envs[read.env].counters.stale_served += 1;
                                self.log_stale(&About { tier: secret.tier as usize, ..about }, &error);
                            }
                            Ok(secret)
                        }
                        None => {
                            self.envs[read.env].counters.error(error.kind());
                            self.log_read_failed(&about, &error);
                            Err(error)
                        }
                    }
                }
                Err(error) => {
                    self.envs[read.env].counters.error(error.kind());
                    Err(error)
                }
                ok => ok,
            })
            .collect()
    }

    /// The last value known for a read, within its stale window.
    fn last_known(&mut self, read: &Read, now: u64, io: &mut Io<'_>) -> Option<Secret> {
        let key = &read.key;
        if let Some((cached, expired)) = self.envs[read.env].cache.stale(&key.name, &key.version, &key.field, now) {
            // A refresh (ahead or forced) that failed keeps the value it was refreshing.
            return Some(Secret::cached(cached, expired));
        }
        self.shared_stale(read.env, key, io)
    }

    /// Caches a not-found answer for the environment's `negative_ttl_ms`, in
    /// memory and (queued) in shared state.
    pub(super) fn remember_not_found(&mut self, env: usize, key: CacheKey, message: &str, now: u64) {
        let ttl = self.envs[env].env.spec.policy.negative_ttl_ms;
        self.queue_publish_not_found(env, key.clone(), message, ttl);
        self.envs[env].cache.insert_negative(key, message.to_string(), ttl, now);
    }
}
