//! The read path's use of shared state: misses are looked up in the shared
//! bucket before the backend, fetched values are published to it, and a short
//! lease lets one instance fetch a secret while the others wait for its answer.

use crate::prelude::*;
use super::lease::{Held, Lease};
use super::LEASE_POLL_MS;
use crate::engine::{Io, Job, Provider, Reason, Secret};
use crate::error::Error;

/// Whether `claim` should look `job` up in shared state first, or a lookup
/// (begun at the given wall time) just found nothing.
enum Looked {
    Not(u64),
    Just(u64),
}

fn same_read(a: &Job, b: &Job) -> bool {
    a.env == b.env && a.name == b.name && a.version == b.version
}

impl Provider {
    /// Answers validated misses: from shared state, by waiting for another
    /// instance's fetch, or from the backend. One result per job, in order.
    pub(in crate::engine) fn resolve(&mut self, jobs: Vec<Job>, io: &mut Io<'_>) -> Vec<Result<Secret, Error>> {
        if self.shared.ready.is_none() {
            return self.fetch(jobs, io);
        }
        let start = io.clock.now_ms();
        let wall = io.clock.wall_ms();
        let jobs: Vec<Job> = jobs.into_iter().map(|job| self.with_freshness(job, wall)).collect();
        // One store read for every first lookup (and the epochs they need).
        self.read_ahead_jobs(&jobs, io);
        let mut results: Vec<Option<Result<Secret, Error>>> = jobs.iter().map(|_| None).collect();
        let mut wait: Vec<(usize, Job, u64)> = Vec::new();
        let mut own = Vec::new();
        for (slot, job) in jobs.into_iter().enumerate() {
            self.claim(slot, job, Looked::Not(wall), &mut own, &mut wait, &mut results, io);
        }
        self.fetch_own(own, &mut results, io, start);
        // Wait for the other instances' answers, up to their leases and at most
        // half the deadline (leaving the other half for a fetch of our own).
        while !wait.is_empty() {
            io.clock.sleep_ms(LEASE_POLL_MS);
            let now = io.clock.now_ms();
            let mut own = Vec::new();
            for (slot, job, _until) in core::mem::take(&mut wait) {
                let budget_over = now >= start.saturating_add(self.envs[job.env].env.spec.policy.deadline_ms / 2);
                if let Some(answer) = self.shared_lookup(&job, io) {
                    results[slot] = Some(answer);
                } else if budget_over || self.shared.usable().is_none() {
                    own.push((slot, job, None));
                } else {
                    // Look at the lease again: a holder whose fetch failed has released it, and
                    // one that died lets it run out; either way take it over (or wait for
                    // whoever did) instead of sleeping out the lease first read.
                    let looked_at = io.clock.wall_ms();
                    self.claim(slot, job, Looked::Just(looked_at), &mut own, &mut wait, &mut results, io);
                }
            }
            self.fetch_own(own, &mut results, io, start);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::backend(None, "internal: no result"))))
            .collect()
    }

    /// Decides who answers `job`: shared state now (unless `looked` says a
    /// lookup just found nothing), this instance (under a lease it takes, or
    /// one it already holds for the same read), or another instance.
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &mut self,
        slot: usize,
        job: Job,
        looked: Looked,
        own: &mut Vec<(usize, Job, Option<Held>)>,
        wait: &mut Vec<(usize, Job, u64)>,
        results: &mut [Option<Result<Secret, Error>>],
        io: &mut Io<'_>,
    ) {
        // Another field of a read this call fetches anyway: one request serves both.
        if own.iter().any(|(_, other, _)| same_read(other, &job)) {
            own.push((slot, job, None));
            return;
        }
        let looked_at = match looked {
            Looked::Not(at) => {
                if let Some(answer) = self.shared_lookup(&job, io) {
                    results[slot] = Some(answer);
                    return;
                }
                at
            }
            Looked::Just(at) => at,
        };
        match self.lease(&job, io) {
            Lease::Fetch(Some(held)) => {
                // A lease that ended after our lookup began: its holder may have published
                // since. Look once more before going to the backend (a lease that ended
                // earlier, or none at all, published nothing our lookup missed).
                let recent = held.previous_end_ms.is_some_and(|end| end >= looked_at);
                if let Some(answer) = recent.then(|| self.shared_lookup(&job, io)).flatten() {
                    self.release(&held, io);
                    results[slot] = Some(answer);
                } else {
                    own.push((slot, job, Some(held)));
                }
            }
            Lease::Fetch(None) => own.push((slot, job, None)),
            // Another instance is refreshing this value: keep serving it meanwhile.
            Lease::HeldUntil(_) if job.reason == Reason::Ahead => match self.still_cached(&job, io) {
                Some(secret) => results[slot] = Some(Ok(secret)),
                None => own.push((slot, job, None)),
            },
            Lease::HeldUntil(until) => wait.push((slot, job, until)),
        }
    }

    /// Fetches this instance's share, publishes the answers, releases its leases.
    fn fetch_own(&mut self, own: Vec<(usize, Job, Option<Held>)>, results: &mut [Option<Result<Secret, Error>>], io: &mut Io<'_>, start: u64) {
        if own.is_empty() {
            return;
        }
        let mut slots = Vec::with_capacity(own.len());
        let mut jobs = Vec::with_capacity(own.len());
        let mut leases = Vec::new();
        for (slot, job, held) in own {
            slots.push(slot);
            if let Some(held) = held {
                leases.push((job.env, job.name.clone(), job.version.clone(), held));
            }
            jobs.push(job);
        }
        for (slot, result) in slots.into_iter().zip(self.fetch_since(jobs, io, start)) {
            results[slot] = Some(result);
        }
        let published = self.publish(io);
        for (env, name, version, held) in &leases {
            // Waiters poll for the entry: a lease whose answer is published has done its job.
            if !published.iter().any(|(e, n, v)| e == env && n == name && v == version) {
                self.release(held, io);
            }
        }
    }
}
