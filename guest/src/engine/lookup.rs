//! The first step of a read: validate the request and answer it from
//! memory when it can (a fresh hit, a cached not-found, a `refresh` within
//! its interval), or say why it must go to the backend.

use crate::prelude::*;
use super::{Job, Provider, Reason, Secret, SecretRequest};
use crate::backend;
use crate::error::Error;
use crate::trace::TraceParent;
use crate::validate::{self, VersionSel};

pub(super) enum Lookup {
    /// Answered from memory, in environment `.0`.
    Hit(usize, Secret),
    Done(Result<Secret, Error>),
    Miss(Job),
}

impl Provider {
    /// Validates a request and answers it from the cache if it can.
    pub(super) fn lookup(&mut self, request: &SecretRequest, now_ms: u64) -> Lookup {
        let Some(env) = self.find(&request.environment) else {
            self.unknown_environment_errors += 1;
            return Lookup::Done(Err(Error::UnknownEnvironment(validate::shorten(&request.environment))));
        };
        let state = &mut self.envs[env];
        let trace = match request.traceparent.as_deref().map(TraceParent::parse) {
            None => None,
            Some(Ok(trace)) => Some(trace),
            Some(Err(why)) => {
                let error = Error::InvalidRequest(why);
                state.counters.error(error.kind());
                return Lookup::Done(Err(error));
            }
        };
        let field = request.field.as_deref().unwrap_or(backend::DEFAULT_FIELD);
        let version = match VersionSel::parse(request.version.as_deref()) {
            Ok(version) => version,
            Err(error) => {
                state.counters.error(error.kind());
                return Lookup::Done(Err(error));
            }
        };
        // The cache comes before the name check: only validated names are ever
        // cached, so a hit needs no re-validation (the hot path stays short).
        let policy = &state.env.spec.policy;
        let interval = policy.refresh_interval_ms;
        let mut reason = Reason::Miss;
        if let Some(hit) = state.cache.lookup(&request.name, &version, field, now_ms) {
            let age = now_ms.saturating_sub(hit.fetched_at_ms);
            let recent = age < interval;
            let ttl = hit.expires_at_ms.saturating_sub(hit.fetched_at_ms);
            let ahead_at = ttl / 100 * u64::from(policy.refresh_ahead_percent);
            let wanted = if request.refresh { !recent } else { policy.refresh_ahead_percent > 0 && age >= ahead_at && !recent };
            let secret = Secret::cached(hit.cached, false);
            // One refresh per key per interval, whether the last one worked, failed or found
            // nothing: a caller looping on `refresh` gets the cached value meanwhile.
            if !wanted || !state.cache.claim_refresh(&request.name, &version, field, now_ms, interval) {
                state.counters.hits += 1;
                if request.refresh {
                    state.counters.refresh_limited += 1;
                }
                return Lookup::Hit(env, secret);
            }
            reason = if request.refresh { Reason::Forced } else { Reason::Ahead };
            state.counters.refreshes += 1;
        } else if let Some(message) = state.cache.negative(&request.name, &version, field, now_ms).map(str::to_string) {
            // A `refresh` of a secret known not to exist asks again once per interval.
            let forced = request.refresh && state.cache.claim_refresh(&request.name, &version, field, now_ms, interval);
            if !forced {
                let error = Error::NotFound(message);
                state.counters.negative_hits += 1;
                if request.refresh {
                    state.counters.refresh_limited += 1;
                }
                state.counters.error(error.kind());
                return Lookup::Done(Err(error));
            }
            reason = Reason::Forced;
        } else if request.refresh {
            // Nothing cached: a plain miss, but it starts the key's refresh interval.
            state.cache.claim_refresh(&request.name, &version, field, now_ms, interval);
            reason = Reason::Forced;
        }
        // The name, and the kind of version the primary takes (numbers, AWS ids or stages).
        let backend = &state.env.spec.primary().backend;
        let valid = backend::validate(backend, &request.name, field).and_then(|()| backend::validate_version(backend, &version));
        if let Err(error) = valid {
            state.counters.error(error.kind());
            return Lookup::Done(Err(error));
        }
        state.counters.misses += 1;
        Lookup::Miss(Job { env, name: request.name.clone(), version, field: field.to_string(), reason, fresher_than_wall_ms: 0, trace })
    }
}
