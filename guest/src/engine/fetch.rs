//! Fetching cache misses: parallel attempts, retries with backoff, the
//! breaker, deadlines.
//!
//! All misses of one call are scheduled together: every fetch whose time has
//! come is started (up to [`MAX_IN_FLIGHT`]), and each answer is judged as soon
//! as it arrives, so a hanging backend never delays another fetch's retry. A
//! fetch that should be retried waits for its backoff (or the backend's
//! `Retry-After`). Identical reads (same environment, name and version) share
//! one request even when they ask for different fields.

use crate::prelude::*;
use super::{Job, Outbound, Provider, Secret, Source, Ticket};
use crate::backend::{self, Failure, Fetched};
use crate::breaker::Permit;
use crate::cache::{CacheKey, Cached};
use crate::error::Error;
use crate::http::{HttpRequest, HttpResponse, TransportError};
use crate::validate::VersionSel;

/// At most this many requests per environment are in flight at once; further
/// misses of a large `get-many` start as earlier ones finish.
pub const MAX_IN_FLIGHT: usize = 32;

/// One backend read in flight, and the callers waiting for it.
struct Fetch {
    env: usize,
    name: String,
    version: VersionSel,
    request: HttpRequest,
    /// (result slot, field).
    waiters: Vec<(usize, String)>,
    attempts: u32,
    ready_at_ms: u64,
    deadline_ms: u64,
    last_error: Option<Error>,
    /// The breaker's leave for the attempt in flight.
    permit: Option<Permit>,
    /// When the attempt in flight was started (monotonic ms): slow calls count against the breaker.
    started_ms: u64,
}

type Slots = Vec<Option<Result<Secret, Error>>>;

impl Provider {
    /// Fetches `jobs`; one result per job, in order.
    pub(super) fn fetch(&mut self, jobs: Vec<Job>, io: &mut super::Io<'_>) -> Vec<Result<Secret, Error>> {
        let start = io.clock.now_ms();
        self.fetch_since(jobs, io, start)
    }

    /// Fetches `jobs` for a call that started at `start` (monotonic ms): its deadline counts
    /// from then, so time spent waiting for another instance's answer is not added to it.
    pub(super) fn fetch_since(&mut self, jobs: Vec<Job>, io: &mut super::Io<'_>, start: u64) -> Vec<Result<Secret, Error>> {
        let mut slots: Slots = jobs.iter().map(|_| None).collect();
        let mut pending: Vec<Fetch> = Vec::new();
        for (slot, job) in jobs.into_iter().enumerate() {
            let same = |f: &&mut Fetch| f.env == job.env && f.name == job.name && f.version == job.version;
            if let Some(existing) = pending.iter_mut().find(same) {
                existing.waiters.push((slot, job.field));
                continue;
            }
            let env = &self.envs[job.env].env;
            pending.push(Fetch {
                request: backend::request(&env.spec, &env.token, &job.name, job.version),
                deadline_ms: start.saturating_add(env.spec.policy.deadline_ms),
                env: job.env,
                name: job.name,
                version: job.version,
                waiters: vec![(slot, job.field)],
                attempts: 0,
                ready_at_ms: start,
                last_error: None,
                permit: None,
                started_ms: start,
            });
        }

        let mut in_flight: Vec<(Ticket, Fetch)> = Vec::new();
        loop {
            let now = io.clock.now_ms();
            // Start every fetch whose time has come, up to the cap of its environment
            // (so one hanging backend cannot take the slots of another).
            let mut waiting = Vec::with_capacity(pending.len());
            for mut fetch in pending.drain(..) {
                let busy = in_flight.iter().filter(|(_, f)| f.env == fetch.env).count() >= MAX_IN_FLIGHT;
                if fetch.ready_at_ms > now || (busy && now < fetch.deadline_ms) {
                    waiting.push(fetch);
                    continue;
                }
                match self.admit(&fetch, now, io) {
                    Ok((outbound, permit)) => {
                        fetch.permit = Some(permit);
                        fetch.started_ms = now;
                        in_flight.push((io.transport.start(outbound), fetch));
                    }
                    Err(error) => self.fail(fetch, error, &mut slots),
                }
            }
            pending = waiting;
            // Wake when a retry falls due, or when a fetch waiting for a slot
            // reaches its deadline (it then fails on time instead of waiting on).
            let next_ready = pending
                .iter()
                .map(|f| if f.ready_at_ms > now { f.ready_at_ms } else { f.deadline_ms })
                .min();
            if in_flight.is_empty() {
                match next_ready {
                    Some(at) => {
                        io.clock.sleep_ms(at.saturating_sub(now));
                        continue;
                    }
                    None => break,
                }
            }
            // Wake for whichever comes first: an answer, or a retry falling due.
            let answers = io.transport.wait(next_ready);
            if answers.is_empty() && next_ready.is_none() {
                // A transport that loses requests must not spin this loop.
                for (_, fetch) in in_flight.drain(..) {
                    self.settle_abandoned(&fetch, io);
                    self.fail(fetch, Error::backend(None, "transport lost the request"), &mut slots);
                }
                continue;
            }
            for (ticket, response) in answers {
                let Some(i) = in_flight.iter().position(|(t, _)| *t == ticket) else {
                    continue;
                };
                let (_, fetch) = in_flight.swap_remove(i);
                if let Some(retry) = self.judge(fetch, response, io, &mut slots) {
                    pending.push(retry);
                }
            }
        }
        slots
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::backend(None, "internal: fetch left no result"))))
            .collect()
    }

    /// Handles one finished attempt: delivers, fails, or returns the fetch to
    /// be retried at its new `ready_at_ms`.
    fn judge(
        &mut self,
        mut fetch: Fetch,
        response: Result<HttpResponse, TransportError>,
        io: &mut super::Io<'_>,
        slots: &mut Slots,
    ) -> Option<Fetch> {
        let now = io.clock.now_ms();
        let elapsed = now.saturating_sub(fetch.started_ms);
        fetch.attempts += 1;
        let state = &self.envs[fetch.env];
        let policy = state.env.spec.policy;
        let outcome = match response {
            Ok(response) => backend::response(&state.env.spec.backend, &fetch.name, fetch.version, &response),
            Err(error) => Err(Failure {
                transient: error.is_transient(),
                error: error.into_error(policy.deadline_ms),
                retry_after_ms: None,
            }),
        };
        let failure = match outcome {
            Ok(fetched) => {
                if let Some(permit) = fetch.permit.take() {
                    let wall = io.clock.wall_ms();
                    self.with_breaker(fetch.env, io, |b| b.on_success(permit, wall, elapsed));
                }
                self.deliver(fetch, &fetched, now, slots);
                return None;
            }
            Err(failure) => failure,
        };
        if let Some(permit) = fetch.permit.take() {
            // Breakers run on wall-clock time: their open periods are shared between instances.
            let wall = io.clock.wall_ms();
            if failure.transient {
                self.with_breaker(fetch.env, io, |b| b.on_failure(permit, wall));
            } else {
                // A 403/404/malformed answer still proves the backend is up.
                self.with_breaker(fetch.env, io, |b| b.on_success(permit, wall, elapsed));
            }
        }
        // An upstream message must never carry the credential back, even
        // from a proxy that echoes request headers into its error body.
        let failure = Failure { error: failure.error.redact(self.envs[fetch.env].env.token.expose()), ..failure };
        let delay = if failure.transient {
            policy.retry.next_delay(fetch.attempts, failure.retry_after_ms, now, fetch.deadline_ms, io.random.next_u64())
        } else {
            None
        };
        // A retry must also fit the environment's retry budget; taken now, not when the
        // backoff is over, so a spent budget fails the call at once instead of after a sleep.
        let delay = match delay {
            Some(_) if !self.budget_withdraw(fetch.env, io) => {
                self.envs[fetch.env].counters.budget_exhausted += 1;
                None
            }
            delay => delay,
        };
        match delay {
            Some(delay) => {
                fetch.ready_at_ms = now.saturating_add(delay);
                fetch.last_error = Some(failure.error);
                Some(fetch)
            }
            None => {
                self.fail(fetch, failure.error, slots);
                None
            }
        }
    }

    /// Hands back the breaker permit of an attempt that got no answer at all,
    /// as a failure: the backend did not answer.
    fn settle_abandoned(&mut self, fetch: &Fetch, io: &mut super::Io<'_>) {
        if let Some(permit) = fetch.permit {
            let wall = io.clock.wall_ms();
            self.with_breaker(fetch.env, io, |b| b.on_failure(permit, wall));
        }
    }

    /// Checks the deadline and the breaker before an attempt, and counts it.
    fn admit(&mut self, fetch: &Fetch, now: u64, io: &mut super::Io<'_>) -> Result<(Outbound, Permit), Error> {
        let policy = self.envs[fetch.env].env.spec.policy;
        if now >= fetch.deadline_ms {
            return Err(fetch.last_error.clone().unwrap_or(Error::Timeout { deadline_ms: policy.deadline_ms }));
        }
        let wall = io.clock.wall_ms();
        let permit =
            self.with_breaker(fetch.env, io, |b| b.permit(wall)).map_err(|retry_after_ms| Error::Unavailable { retry_after_ms })?;
        if fetch.attempts == 0 {
            // Every first attempt earns its share of retries (retry::budget).
            self.budget_deposit(fetch.env, io);
        }
        let state = &mut self.envs[fetch.env];
        state.counters.backend_calls += 1;
        if fetch.attempts > 0 {
            state.counters.retries += 1;
        }
        let outbound = Outbound {
            request: fetch.request.clone(),
            timeout_ms: policy.attempt_timeout_ms.min(fetch.deadline_ms - now),
            max_body_bytes: policy.max_body_bytes,
        };
        Ok((outbound, permit))
    }

    /// Hands the fetched version to every waiter and caches each field.
    fn deliver(&mut self, fetch: Fetch, fetched: &Fetched, now: u64, slots: &mut Slots) {
        let policy = self.envs[fetch.env].env.spec.policy;
        let env = fetch.env;
        // A `latest` read also answers later reads pinned to the version it
        // resolved to; pinned versions never change, so they live longer.
        let pinned_too = match fetch.version {
            VersionSel::Latest => fetched.version.parse().ok().map(VersionSel::Pinned),
            VersionSel::Pinned(_) => None,
        };
        for (slot, field) in fetch.waiters {
            let result = fetched.select(&field).map(|value| {
                let cached = Cached { value, version: fetched.version.clone() };
                if let Some(pinned) = pinned_too {
                    let key = CacheKey { name: fetch.name.clone(), version: pinned, field: field.clone() };
                    self.queue_publish(env, key.clone(), &cached, policy.cache_pinned_ttl_ms);
                    self.envs[env].cache.insert(key, cached.clone(), policy.cache_pinned_ttl_ms, now);
                }
                let ttl = if fetch.version.is_pinned() { policy.cache_pinned_ttl_ms } else { policy.cache_ttl_ms };
                let key = CacheKey { name: fetch.name.clone(), version: fetch.version, field };
                self.queue_publish(env, key.clone(), &cached, ttl);
                self.envs[env].cache.insert(key, cached.clone(), ttl, now);
                Secret { value: cached.value, version: cached.version, source: Source::Backend }
            });
            if let Err(error) = &result {
                self.envs[env].counters.error(error.kind());
            }
            slots[slot] = Some(result);
        }
    }

    /// Gives every waiter the same error.
    fn fail(&mut self, fetch: Fetch, error: Error, slots: &mut Slots) {
        let counters = &mut self.envs[fetch.env].counters;
        for (slot, _) in fetch.waiters {
            counters.error(error.kind());
            slots[slot] = Some(Err(error.clone()));
        }
    }
}
