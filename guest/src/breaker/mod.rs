//! A circuit breaker per environment/backend.
//!
//! The states carry their own data (failsafe-rs style); the clock is a
//! parameter. Only transient failures (timeouts, connection errors, 5xx, 429)
//! are reported as failures; a 403 or 404 proves the backend is up and is
//! reported as a success.

use crate::prelude::*;

/// Validated breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open.
    pub open_ms: u64,
    /// Probes allowed in flight while half-open.
    pub half_open_probes: u32,
    /// Probe successes that close it.
    pub success_threshold: u32,
    /// How long a probe may take before it counts as lost (its instance died, or its answer
    /// never reached the shared state) and the next caller may probe instead: without it, a
    /// half-open breaker whose probes never report back would refuse every call for good.
    pub probe_timeout_ms: u64,
}

impl BreakerSettings {
    /// Rejects settings that would make the breaker meaningless.
    pub fn new(failure_threshold: u32, open_ms: u64, half_open_probes: u32, success_threshold: u32) -> Result<Self, String> {
        if failure_threshold == 0 {
            return Err("failure_threshold must be at least 1".into());
        }
        if open_ms == 0 {
            return Err("open_ms must be at least 1".into());
        }
        if half_open_probes == 0 {
            return Err("half_open_probes must be at least 1".into());
        }
        if success_threshold == 0 {
            return Err("success_threshold must be at least 1".into());
        }
        Ok(BreakerSettings { failure_threshold, open_ms, half_open_probes, success_threshold, probe_timeout_ms: 5_000 })
    }

    /// The same settings with another probe timeout (the policy sets its call deadline).
    pub fn with_probe_timeout(self, probe_timeout_ms: u64) -> Self {
        BreakerSettings { probe_timeout_ms: probe_timeout_ms.max(1), ..self }
    }
}

/// The breaker's state; each carries what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { consecutive_failures: u32 },
    Open { until_ms: u64 },
    /// `probes_until_ms`: when the newest probe counts as lost.
    HalfOpen { in_flight: u32, successes: u32, probes_until_ms: u64 },
}

/// The public shape of a state, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open,
    HalfOpen,
}

/// A circuit breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: BreakerSettings,
    state: State,
    /// Counts half-open episodes, so a probe's answer is told apart from a
    /// late answer to a request sent before the breaker opened.
    generation: u64,
}

/// Leave to send one request; hand it back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// `Some(generation)` when this request is a half-open probe.
    probe: Option<u64>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Breaker {
        Breaker { settings, state: State::Closed { consecutive_failures: 0 }, generation: 0 }
    }

    /// A breaker in a state read back from shared state.
    pub fn restore(settings: BreakerSettings, state: State, generation: u64) -> Breaker {
        Breaker { settings, state, generation }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The half-open episode counter (stored with the state when it is shared).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The settings it runs with.
    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }

    /// The state as seen at `now_ms` (an open breaker whose time is up reads
    /// as half-open), and the milliseconds left while open.
    pub fn phase(&self, now_ms: u64) -> (Phase, Option<u64>) {
        match self.state {
            State::Closed { .. } => (Phase::Closed, None),
            State::Open { until_ms } if now_ms < until_ms => (Phase::Open, Some(until_ms - now_ms)),
            State::Open { .. } | State::HalfOpen { .. } => (Phase::HalfOpen, None),
        }
    }

    /// Asks to send one request. `Err(ms)` means fail fast: nothing may be
    /// sent for `ms` milliseconds. Every `Ok` must be followed by exactly one
    /// `on_success` or `on_failure` with the permit.
    pub fn permit(&mut self, now_ms: u64) -> Result<Permit, u64> {
        match self.state {
            State::Closed { .. } => Ok(Permit { probe: None }),
            State::Open { until_ms } if now_ms < until_ms => Err(until_ms - now_ms),
            // An open period that is over, or probes that never reported back: a new episode.
            State::Open { .. } => Ok(self.new_episode(now_ms)),
            State::HalfOpen { probes_until_ms, .. } if now_ms >= probes_until_ms => Ok(self.new_episode(now_ms)),
            State::HalfOpen { in_flight, successes, .. } => {
                if in_flight < self.settings.half_open_probes {
                    let probes_until_ms = self.probe_deadline(now_ms);
                    self.state = State::HalfOpen { in_flight: in_flight + 1, successes, probes_until_ms };
                    Ok(Permit { probe: Some(self.generation) })
                } else {
                    // Probes are out; the caller should come back shortly.
                    Err(1)
                }
            }
        }
    }

    /// Starts a half-open episode whose first probe is the returned permit.
    fn new_episode(&mut self, now_ms: u64) -> Permit {
        self.generation = self.generation.wrapping_add(1);
        self.state = State::HalfOpen { in_flight: 1, successes: 0, probes_until_ms: self.probe_deadline(now_ms) };
        Permit { probe: Some(self.generation) }
    }

    fn probe_deadline(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.settings.probe_timeout_ms)
    }

    /// Whether `permit` is a probe of the current half-open episode. Anything
    /// else answering while half-open was sent before the breaker opened: it
    /// says nothing about recovery and must not count as a probe.
    fn is_current_probe(&self, permit: Permit) -> bool {
        permit.probe == Some(self.generation)
    }

    /// The permitted request succeeded (or failed non-transiently).
    pub fn on_success(&mut self, permit: Permit) {
        self.state = match self.state {
            State::Closed { .. } => State::Closed { consecutive_failures: 0 },
            half_open @ State::HalfOpen { .. } if !self.is_current_probe(permit) => half_open,
            State::HalfOpen { in_flight, successes, probes_until_ms } => {
                let successes = successes + 1;
                if successes >= self.settings.success_threshold {
                    State::Closed { consecutive_failures: 0 }
                } else {
                    State::HalfOpen { in_flight: in_flight.saturating_sub(1), successes, probes_until_ms }
                }
            }
            // A late success from before the breaker opened changes nothing.
            open @ State::Open { .. } => open,
        };
    }

    /// The permitted request failed transiently.
    pub fn on_failure(&mut self, permit: Permit, now_ms: u64) {
        let open = State::Open { until_ms: now_ms.saturating_add(self.settings.open_ms) };
        self.state = match self.state {
            State::Closed { consecutive_failures } => {
                let failures = consecutive_failures + 1;
                if failures >= self.settings.failure_threshold {
                    open
                } else {
                    State::Closed { consecutive_failures: failures }
                }
            }
            half_open @ State::HalfOpen { .. } if !self.is_current_probe(permit) => half_open,
            // A failed probe re-opens for a full period.
            State::HalfOpen { .. } => open,
            // Late failures while open do not extend the period.
            state @ State::Open { .. } => state,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, probes: u32, successes: u32) -> Breaker {
        Breaker::new(BreakerSettings::new(threshold, 1_000, probes, successes).unwrap())
    }

    #[test]
    fn opens_after_n_consecutive_failures() {
        let mut b = breaker(3, 1, 1);
        for _ in 0..2 {
            let p = b.permit(0).unwrap();
            b.on_failure(p, 0);
        }
        assert_eq!(b.phase(0).0, Phase::Closed);
        let p = b.permit(0).unwrap();
        b.on_failure(p, 10);
        assert_eq!(b.state(), State::Open { until_ms: 1_010 });
        assert_eq!(b.permit(500), Err(510));
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut b = breaker(2, 1, 1);
        let p = b.permit(0).unwrap();
        b.on_failure(p, 0);
        b.on_success(p);
        b.on_failure(p, 0);
        assert_eq!(b.phase(0).0, Phase::Closed);
    }

    #[test]
    fn half_open_limits_probes_and_closes_after_m_successes() {
        let mut b = breaker(1, 2, 2);
        let p = b.permit(0).unwrap();
        b.on_failure(p, 0);
        assert!(b.permit(999).is_err());
        let p1 = b.permit(1_000).unwrap();
        let p2 = b.permit(1_000).unwrap();
        assert!(b.permit(1_000).is_err(), "only two probes in flight");
        b.on_success(p1);
        assert!(matches!(b.state(), State::HalfOpen { successes: 1, .. }));
        b.on_success(p2);
        assert_eq!(b.state(), State::Closed { consecutive_failures: 0 });
    }

    #[test]
    fn a_failed_probe_reopens() {
        let mut b = breaker(1, 1, 1);
        let p = b.permit(0).unwrap();
        b.on_failure(p, 0);
        let probe = b.permit(1_000).unwrap();
        b.on_failure(probe, 1_200);
        assert_eq!(b.state(), State::Open { until_ms: 2_200 });
    }

    #[test]
    fn late_answers_from_before_the_breaker_opened_are_not_probes() {
        let mut b = breaker(1, 1, 1);
        let old_a = b.permit(0).unwrap();
        let old_b = b.permit(0).unwrap();
        b.on_failure(old_a, 0);
        let probe = b.permit(1_000).unwrap();
        // old_b's answer arrives while the probe is out: it neither closes nor re-opens.
        b.on_success(old_b);
        assert!(matches!(b.state(), State::HalfOpen { in_flight: 1, successes: 0, .. }));
        b.on_failure(old_b, 1_100);
        assert!(matches!(b.state(), State::HalfOpen { in_flight: 1, successes: 0, .. }));
        assert!(b.permit(1_100).is_err(), "still only one probe");
        b.on_success(probe);
        assert_eq!(b.state(), State::Closed { consecutive_failures: 0 });
    }

    #[test]
    fn probes_that_never_report_back_are_replaced_after_the_probe_timeout() {
        let settings = BreakerSettings::new(1, 1_000, 1, 1).unwrap().with_probe_timeout(500);
        let mut b = Breaker::new(settings);
        let p = b.permit(0).unwrap();
        b.on_failure(p, 0);
        let lost = b.permit(1_000).unwrap();
        assert_eq!(b.permit(1_499), Err(1), "the probe is still out");
        let replacement = b.permit(1_500).unwrap();
        assert_ne!(lost, replacement, "a new episode: the lost probe's late answer is not a probe of it");
        b.on_success(lost);
        assert!(matches!(b.state(), State::HalfOpen { .. }));
        b.on_success(replacement);
        assert_eq!(b.state(), State::Closed { consecutive_failures: 0 });
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(BreakerSettings::new(0, 1, 1, 1).is_err());
        assert!(BreakerSettings::new(1, 0, 1, 1).is_err());
        assert!(BreakerSettings::new(1, 1, 0, 1).is_err());
        assert!(BreakerSettings::new(1, 1, 1, 0).is_err());
    }
}
