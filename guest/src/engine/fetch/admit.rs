//! Before each attempt: which tier takes it (deadline, `Retry-After` pauses, breakers; a
//! tier that refuses hands the read to the next one that can answer it), the tier's
//! credential, and the request itself, built per attempt.

use super::{Admission, Fetch};
use crate::backend::{self, Failure};
use crate::breaker::Phase;
use crate::engine::credentials::CredentialError;
use crate::engine::{Outbound, Provider};
use crate::error::Error;

impl Provider {
    /// The first tier after `after` that can answer this read: a fallback
    /// serves `latest` reads only (version numbers are each backend's own)
    /// of names and fields its grammar accepts.
    pub(super) fn next_tier(&self, fetch: &Fetch, after: usize) -> Option<usize> {
        if !fetch.version.is_latest() {
            return None;
        }
        let tiers = &self.envs[fetch.env].env.spec.tiers;
        (after + 1..tiers.len()).find(|&t| {
            fetch.waiters.iter().all(|(_, field)| backend::validate(&tiers[t].backend, &fetch.name, field).is_ok())
        })
    }

    /// Moves a fetch on to tier `tier`, with its own attempts.
    pub(super) fn switch_tier(&self, fetch: &mut Fetch, tier: usize) {
        fetch.tier = tier;
        fetch.attempts = 0;
    }

    /// Hands back the breaker permit of an attempt that got no answer at all,
    /// as a failure: the backend did not answer.
    pub(super) fn settle_abandoned(&mut self, fetch: &Fetch, io: &mut crate::engine::Io<'_>) {
        if let Some(permit) = fetch.permit {
            let wall = io.clock.wall_ms();
            self.with_breaker(fetch.env, fetch.tier, io, |b| b.on_failure(permit, wall));
        }
    }

    /// Checks the deadline, throttling and the breaker before an attempt, and
    /// counts it. A tier that refuses is skipped for the next one that can
    /// answer; with none left, the first refusal is the answer.
    pub(super) fn admit(&mut self, fetch: &mut Fetch, now: u64, io: &mut crate::engine::Io<'_>) -> Admission {
        let policy = self.envs[fetch.env].env.spec.policy;
        if now >= fetch.deadline_ms {
            return Admission::Refused(fetch.last_error.clone().unwrap_or(Error::Timeout { deadline_ms: policy.deadline_ms }));
        }
        let mut refusal = None;
        let permit = loop {
            let tier = fetch.tier;
            let throttled_until = self.envs[fetch.env].tiers[tier].throttled_until_ms;
            let verdict = if now < throttled_until {
                // Paused by the backend; an open breaker says more (the tier is down), and
                // asking its phase takes no probe permit.
                let wall = io.clock.wall_ms();
                match self.with_breaker(fetch.env, tier, io, |b| b.phase(wall)) {
                    (Phase::Open, Some(retry_after_ms)) => Err(Error::Unavailable { retry_after_ms }),
                    _ => Err(Error::RateLimited { retry_after_ms: Some(throttled_until - now) }),
                }
            } else {
                let wall = io.clock.wall_ms();
                self.with_breaker(fetch.env, tier, io, |b| b.permit(wall)).map_err(|retry_after_ms| Error::Unavailable { retry_after_ms })
            };
            match verdict {
                Ok(permit) => break permit,
                Err(error) => {
                    self.envs[fetch.env].tiers[tier].counters.skipped += 1;
                    let error = refusal.get_or_insert(error).clone();
                    match self.next_tier(fetch, tier) {
                        Some(next) => {
                            self.log_fallback(&fetch.about(), next, &error);
                            fetch.left_tier_because.get_or_insert_with(|| error.clone());
                            self.switch_tier(fetch, next);
                        }
                        // An earlier tier's real failure says more than a later tier's refusal.
                        None => return Admission::Refused(fetch.last_error.clone().unwrap_or(error)),
                    }
                }
            }
        };
        if fetch.attempts == 0 {
            // Every first attempt (on each tier) earns its share of retries (retry::budget).
            self.budget_deposit(fetch.env, io);
        }
        let state = &mut self.envs[fetch.env];
        state.tiers[fetch.tier].counters.backend_calls += 1;
        if fetch.attempts > 0 {
            state.tiers[fetch.tier].counters.retries += 1;
        }
        // A failed login presented no token: its permission-denied is no 403 to log in again after.
        fetch.sent_token = None;
        match self.ensure_credential(fetch.env, fetch.tier, fetch.ready_at_ms, fetch.deadline_ms, io) {
            Ok(()) => {}
            Err(CredentialError::Sent(failure)) => return Admission::Failed(failure, Some(permit)),
            Err(CredentialError::Reused(failure)) => {
                // Nothing went out: the breaker heard about this failure once, from the login.
                self.with_breaker(fetch.env, fetch.tier, io, |b| b.forget(permit));
                return Admission::Failed(failure, None);
            }
        }
        // A login may have taken a while: the read gets what is left of the deadline.
        let now = io.clock.now_ms();
        if now >= fetch.deadline_ms {
            let error = fetch.last_error.clone().unwrap_or(Error::Timeout { deadline_ms: policy.deadline_ms });
            return Admission::Failed(Failure::transient(error, None), Some(permit));
        }
        fetch.sent_token = self.presented_digest(fetch.env, fetch.tier);
        // Built per attempt: a signature (AWS) covers the time it was made.
        let wall = io.clock.wall_ms();
        let built = match self.presented(fetch.env, fetch.tier) {
            Some(presented) => backend::request(&self.envs[fetch.env].env.spec.tiers[fetch.tier], presented, &fetch.name, &fetch.version, wall),
            None => Err(Error::backend(None, "internal: the tier holds no credential")),
        };
        let mut request = match built {
            Ok(request) => request,
            Err(error) => return Admission::Failed(Failure::permanent(error), Some(permit)),
        };
        // Each attempt is a span of the caller's trace, so backend logs join it.
        request.headers.push(("traceparent".into(), fetch.trace.child(&mut *io.random).header().into_bytes()));
        let outbound = Outbound {
            request,
            timeout_ms: policy.attempt_timeout_ms.min(fetch.deadline_ms - now),
            max_body_bytes: policy.max_body_bytes,
        };
        Admission::Start(outbound, permit)
    }
}
