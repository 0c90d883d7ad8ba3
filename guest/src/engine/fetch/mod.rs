//! Fetching cache misses: parallel attempts, retries with backoff, the
//! breaker, deadlines.
//!
//! All misses of one call are scheduled together: every fetch whose time has
//! come is started (up to [`MAX_IN_FLIGHT`]), and each answer is judged as soon
//! as it arrives, so a hanging backend never delays another fetch's retry. A
//! fetch that should be retried waits for its backoff (or the backend's
//! `Retry-After`). Identical reads (same environment, name and version) share
//! one request even when they ask for different fields.
//!
//! An environment may list fallback tiers. A tier whose breaker is open, or
//! that asked for a pause (`Retry-After`), is skipped; a tier that fails
//! after its retries (transiently, or with an answer that cannot be used)
//! hands the read to the next one, within the same deadline (tier choice, credentials and the
//! request of each attempt: [`admit`]). What the last tier could not answer may still be answered
//! from a stale entry (see [`super::fallback`]).

use crate::prelude::*;

mod admit;
use super::{Job, Outbound, Provider, Secret, Source, Ticket};
use crate::backend::{self, Failure, Fetched};
use crate::breaker::Permit;
use crate::cache::{CacheKey, Cached};
use crate::error::Error;
use crate::http::{HttpResponse, TransportError};
use crate::trace::TraceParent;
use crate::validate::VersionSel;
use super::events::About;

/// At most this many requests per environment are in flight at once; further
/// misses of a large `get-many` start as earlier ones finish.
pub const MAX_IN_FLIGHT: usize = 32;

/// One backend read in flight, and the callers waiting for it.
struct Fetch {
    env: usize,
    name: String,
    version: VersionSel,
    /// The tier being tried.
    tier: usize,
    /// (result slot, field).
    waiters: Vec<(usize, String)>,
    attempts: u32,
    ready_at_ms: u64,
    deadline_ms: u64,
    last_error: Option<Error>,
    /// Why the read left an earlier tier (its failure or refusal), once it has.
    left_tier_because: Option<Error>,
    /// The breaker's leave for the attempt in flight.
    permit: Option<Permit>,
    /// When the attempt in flight was started (monotonic ms): slow calls count against the breaker.
    started_ms: u64,
    /// The caller's trace (or a new one): every attempt is a child span of it.
    trace: TraceParent,
    /// A 403 already made its tier log in again (once per read).
    relogged: bool,
    /// The digest of the issued token the attempt in flight presented (a 403 is
    /// judged against it: the tier may have replaced it meanwhile).
    sent_token: Option<[u8; 32]>,
}

impl Fetch {
    fn key(&self, field: &str) -> CacheKey {
        CacheKey { name: self.name.clone(), version: self.version.clone(), field: field.to_string() }
    }

    /// A fallback's not-found says nothing about an earlier tier that failed:
    /// the read then fails as that tier did (so a stale value can still answer,
    /// and no not-found is remembered).
    fn primary_view(&self, error: Error) -> Error {
        match (&error, &self.left_tier_because) {
            (Error::NotFound(_), Some(earlier)) if !matches!(earlier, Error::NotFound(_)) => earlier.clone(),
            _ => error,
        }
    }

    fn about(&self) -> About<'_> {
        About { env: self.env, tier: self.tier, name: &self.name, trace: Some(&self.trace) }
    }
}

type Slots = Vec<Option<Result<Secret, Error>>>;

/// What [`Provider::admit`] decided about an attempt.
enum Admission {
    /// Send it.
    Start(Outbound, Permit),
    /// It could not be made (no credential, a request that cannot be built):
    /// judged as a failed attempt.
    Failed(Failure, Option<Permit>),
    /// No tier can take it (deadline passed, breakers open, paused).
    Refused(Error),
}

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
        let reads: Vec<super::fallback::Read> = jobs.iter().map(super::fallback::Read::of).collect();
        let mut pending: Vec<Fetch> = Vec::new();
        // Environments whose credentials could not be read in this call: one config read each.
        let mut unreadable: Vec<(usize, Error)> = Vec::new();
        for (slot, job) in jobs.into_iter().enumerate() {
            let same = |f: &&mut Fetch| f.env == job.env && f.name == job.name && f.version == job.version;
            if let Some(existing) = pending.iter_mut().find(same) {
                existing.waiters.push((slot, job.field));
                continue;
            }
            // The first read that goes to a backend reads the environment's credentials. A
            // refresh-ahead that cannot read them keeps the fresh value it was refreshing.
            let read = match unreadable.iter().find(|(env, _)| *env == job.env) {
                Some((_, error)) => Err(error.clone()),
                None => self.read_credentials(job.env, io).inspect_err(|error| unreadable.push((job.env, error.clone()))),
            };
            if let Err(error) = read {
                let kept = if job.reason == super::Reason::Ahead { self.still_cached(&job, io) } else { None };
                slots[slot] = Some(kept.ok_or(error));
                continue;
            }
            let trace = job.trace.unwrap_or_else(|| TraceParent::root(&mut *io.random));
            let env = &self.envs[job.env].env;
            pending.push(Fetch {
                trace,
                deadline_ms: start.saturating_add(env.spec.policy.deadline_ms),
                env: job.env,
                name: job.name,
                version: job.version,
                tier: 0,
                waiters: vec![(slot, job.field)],
                attempts: 0,
                ready_at_ms: start,
                last_error: None,
                left_tier_because: None,
                permit: None,
                started_ms: start,
                relogged: false,
                sent_token: None,
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
                match self.admit(&mut fetch, now, io) {
                    Admission::Start(outbound, permit) => {
                        fetch.permit = Some(permit);
                        // Not `now`: a login may have come first.
                        fetch.started_ms = io.clock.now_ms();
                        in_flight.push((io.transport.start(outbound), fetch));
                    }
                    Admission::Failed(failure, permit) => {
                        // Failed before the read was sent (its request could not be made):
                        // judged like an attempt, so it may be retried or handed on.
                        fetch.permit = permit;
                        fetch.started_ms = now;
                        fetch.attempts += 1;
                        if let Some(retry) = self.conclude(fetch, Err(failure), 0, io, &mut slots) {
                            waiting.push(retry);
                        }
                    }
                    Admission::Refused(error) => self.fail(fetch, error, now, &mut slots),
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
            // Wake for whichever comes first: an answer, or a retry falling due (answers
            // that came in while a login was waited for are taken first, each with the
            // time it arrived: the login's wait is no part of its latency).
            let answers = if self.stash.is_empty() {
                let answers = io.transport.wait(next_ready);
                let at = io.clock.now_ms();
                answers.into_iter().map(|(ticket, response)| (ticket, response, at)).collect()
            } else {
                core::mem::take(&mut self.stash)
            };
            if answers.is_empty() && next_ready.is_none() {
                // A transport that loses requests must not spin this loop.
                for (_, fetch) in in_flight.drain(..) {
                    self.settle_abandoned(&fetch, io);
                    let now = io.clock.now_ms();
                    self.fail(fetch, Error::backend(None, "transport lost the request"), now, &mut slots);
                }
                continue;
            }
            for (ticket, response, arrived_ms) in answers {
                let Some(i) = in_flight.iter().position(|(t, _)| *t == ticket) else {
                    continue;
                };
                let (_, fetch) = in_flight.swap_remove(i);
                if let Some(retry) = self.judge(fetch, response, arrived_ms, io, &mut slots) {
                    pending.push(retry);
                }
            }
        }
        let results = slots
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::backend(None, "internal: fetch left no result"))))
            .collect();
        self.settle(&reads, results, io)
    }

    /// Handles one finished attempt, whose answer arrived at `arrived_ms`:
    /// delivers, fails, or returns the fetch to be retried at its new `ready_at_ms`.
    fn judge(
        &mut self,
        mut fetch: Fetch,
        response: Result<HttpResponse, TransportError>,
        arrived_ms: u64,
        io: &mut super::Io<'_>,
        slots: &mut Slots,
    ) -> Option<Fetch> {
        let elapsed = arrived_ms.saturating_sub(fetch.started_ms);
        fetch.attempts += 1;
        self.envs[fetch.env].tiers[fetch.tier].call_latency.record(elapsed.saturating_mul(1_000));
        let state = &self.envs[fetch.env];
        let policy = state.env.spec.policy;
        let tier = fetch.tier;
        let outcome = match response {
            Ok(response) => {
                backend::response_at(&state.env.spec.tiers[tier].backend, &fetch.name, &fetch.version, &response, io.clock.wall_ms())
            }
            Err(error) => Err(Failure {
                transient: error.is_transient(),
                error: error.into_error(policy.deadline_ms),
                retry_after_ms: None,
            }),
        };
        self.conclude(fetch, outcome, elapsed, io, slots)
    }

    /// Acts on an attempt's outcome (`elapsed` ms after it started): delivers,
    /// fails, or returns the fetch to be retried or handed to the next tier.
    fn conclude(
        &mut self,
        mut fetch: Fetch,
        outcome: Result<Fetched, Failure>,
        elapsed: u64,
        io: &mut super::Io<'_>,
        slots: &mut Slots,
    ) -> Option<Fetch> {
        let now = io.clock.now_ms();
        let policy = self.envs[fetch.env].env.spec.policy;
        let tier = fetch.tier;
        let failure = match outcome {
            Ok(fetched) => {
                if let Some(permit) = fetch.permit.take() {
                    let wall = io.clock.wall_ms();
                    if self.envs[fetch.env].env.spec.policy.breaker.is_slow(elapsed) {
                        // A slow answer is a failure for the breaker: count it where it looks.
                        self.envs[fetch.env].tiers[tier].counters.failures += 1;
                    }
                    self.with_breaker(fetch.env, tier, io, |b| b.on_success(permit, wall, elapsed));
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
                self.envs[fetch.env].tiers[tier].counters.failures += 1;
                self.with_breaker(fetch.env, tier, io, |b| b.on_failure(permit, wall));
            } else {
                // A 403/404/malformed answer still proves the backend is up.
                self.with_breaker(fetch.env, tier, io, |b| b.on_success(permit, wall, elapsed));
            }
        }
        if let (Error::RateLimited { .. }, Some(pause)) = (&failure.error, failure.retry_after_ms) {
            // The backend said when to come back: no read of this instance asks it sooner.
            let until = &mut self.envs[fetch.env].tiers[tier].throttled_until_ms;
            *until = (*until).max(now.saturating_add(pause));
        }
        let failure = Failure { error: self.redact_for_tier(fetch.env, tier, failure.error), ..failure };
        // A 403 with a token that should be valid (revoked, or lapsed early): log in
        // again and try once more, at once and outside the retry budget.
        let denied = matches!(failure.error, Error::PermissionDenied(_)) && !fetch.relogged;
        if denied && self.relogin_after_denial(fetch.env, tier, fetch.sent_token, now, io.clock.wall_ms()) {
            fetch.relogged = true;
            self.log_retry(&fetch.about(), &failure.error, elapsed);
            fetch.ready_at_ms = now;
            fetch.last_error = Some(failure.error);
            return Some(fetch);
        }
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
                self.log_budget_exhausted(&fetch.about(), &failure.error);
                None
            }
            delay => delay,
        };
        if let Some(delay) = delay {
            self.log_retry(&fetch.about(), &failure.error, elapsed);
            fetch.ready_at_ms = now.saturating_add(delay);
            fetch.last_error = Some(failure.error);
            return Some(fetch);
        }
        // A tier that failed (transiently, or with an answer that cannot be used: a proxy's HTML
        // page, a garbled body) hands the read on, as it would allow a stale answer; a
        // permission-denied never does, a not-found only when configured.
        let hand_on = failure.error.allows_stale() || (matches!(failure.error, Error::NotFound(_)) && policy.fallback_on_not_found);
        if hand_on {
            if let Some(next) = self.next_tier(&fetch, tier) {
                self.log_fallback(&fetch.about(), next, &failure.error);
                fetch.left_tier_because = Some(failure.error.clone());
                self.switch_tier(&mut fetch, next);
                fetch.ready_at_ms = now;
                fetch.last_error = Some(failure.error);
                return Some(fetch);
            }
        }
        self.fail(fetch, failure.error, now, slots);
        None
    }

    /// Hands the fetched version to every waiter and caches each field.
    fn deliver(&mut self, fetch: Fetch, fetched: &Fetched, now: u64, slots: &mut Slots) {
        let policy = self.envs[fetch.env].env.spec.policy;
        let env = fetch.env;
        let tier = fetch.tier as u32;
        // A `latest` read also answers later reads pinned to the version it
        // resolved to; pinned versions never change, so they live longer. Only
        // the primary's version numbers are the ones callers pin.
        let pinned_too = match fetch.version {
            VersionSel::Latest if fetch.tier == 0 => self.envs[env].env.spec.primary().backend.pinned(&fetched.version),
            _ => None,
        };
        for (slot, field) in &fetch.waiters {
            let result = fetched.select(field).map(|value| {
                let cached = Cached { value, version: fetched.version.clone(), tier };
                if let Some(pinned) = pinned_too.clone() {
                    let key = CacheKey { name: fetch.name.clone(), version: pinned, field: field.clone() };
                    self.queue_publish(env, key.clone(), &cached, policy.cache_pinned_ttl_ms);
                    self.envs[env].cache.insert(key, cached.clone(), policy.cache_pinned_ttl_ms, policy.max_stale_ms, now);
                }
                let ttl = if fetch.version.is_pinned() { policy.cache_pinned_ttl_ms } else { policy.cache_ttl_ms };
                let key = fetch.key(field);
                self.queue_publish(env, key.clone(), &cached, ttl);
                self.envs[env].cache.insert(key, cached.clone(), ttl, policy.max_stale_ms, now);
                Secret { value: cached.value, version: cached.version, source: Source::Backend, stale: false, tier }
            });
            let result = result.map_err(|error| fetch.primary_view(error));
            if let Err(Error::NotFound(message)) = &result {
                self.remember_not_found(env, fetch.key(field), message, now);
            }
            if result.is_ok() && tier > 0 {
                self.envs[env].counters.fallbacks += 1;
            }
            slots[*slot] = Some(result);
        }
    }

    /// Gives every waiter the same error (counted when the call settles).
    fn fail(&mut self, fetch: Fetch, error: Error, now: u64, slots: &mut Slots) {
        let error = fetch.primary_view(error);
        for (slot, field) in &fetch.waiters {
            match &error {
                Error::NotFound(message) => self.remember_not_found(fetch.env, fetch.key(field), message, now),
                // The credential was refused for this secret: its cached value is not served
                // again (fresh or stale), as after a not-found.
                Error::PermissionDenied(_) => self.envs[fetch.env].cache.forget(&fetch.key(field)),
                _ => {}
            }
            slots[*slot] = Some(Err(error.clone()));
        }
    }
}
