//! A circuit breaker per environment/backend.
//!
//! The states carry their own data (failsafe-rs style); the clock is a
//! parameter. Only transient failures (timeouts, connection errors, 5xx, 429)
//! are reported as failures; a 403 or 404 proves the backend is up and is
//! reported as a success, unless it was slow (see
//! [`BreakerSettings::slow_call_ms`]).
//!
//! A closed breaker opens on either rule: `failure_threshold` consecutive
//! failures, or (with a [`WindowSettings`]) a failure rate over the last
//! calls ([`window`]).

mod settings;
pub mod window;
#[cfg(test)]
mod tests;

pub use settings::{BreakerSettings, WindowSettings};
pub use window::Window;

/// The breaker's state; each carries what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `window`: the latest outcomes, when the settings have a window (else always empty).
    Closed { consecutive_failures: u32, window: Window },
    Open { until_ms: u64 },
    /// `probes_until_ms`: when the newest probe counts as lost.
    HalfOpen { in_flight: u32, successes: u32, probes_until_ms: u64 },
}

impl State {
    /// Closed, with nothing counted.
    pub const CLOSED: State = State::Closed { consecutive_failures: 0, window: Window::EMPTY };
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
        Breaker { settings, state: State::CLOSED, generation: 0 }
    }

    /// A breaker in a state read back from shared state. A window is cut to
    /// this instance's window size (dropped without one): instances whose
    /// policies differ still read each other's records.
    pub fn restore(settings: BreakerSettings, state: State, generation: u64) -> Breaker {
        let state = match state {
            State::Closed { consecutive_failures, window } => {
                let window = settings.window.map_or(Window::EMPTY, |w| window.fit(w.size()));
                State::Closed { consecutive_failures, window }
            }
            other => other,
        };
        Breaker { settings, state, generation }
    }

    /// [`Breaker::restore`] for a state written by another instance at an
    /// unknown wall time: no period may end later than this instance's own
    /// settings allow from `now_ms`, so a writer whose clock runs ahead cannot
    /// keep every instance's breaker open (or its probes out) for longer.
    pub fn restore_at(settings: BreakerSettings, state: State, generation: u64, now_ms: u64) -> Breaker {
        let state = match state {
            State::Open { until_ms } => State::Open { until_ms: until_ms.min(now_ms.saturating_add(settings.open_ms)) },
            State::HalfOpen { in_flight, successes, probes_until_ms } => State::HalfOpen {
                in_flight,
                successes,
                probes_until_ms: probes_until_ms.min(now_ms.saturating_add(settings.probe_timeout_ms)),
            },
            closed @ State::Closed { .. } => closed,
        };
        Breaker::restore(settings, state, generation)
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

    /// Adds an outcome to a closed breaker's window (when it has one).
    fn record(&self, window: Window, failed: bool) -> Window {
        self.settings.window.map_or(Window::EMPTY, |w| window.record(failed, w.size()))
    }

    /// Whether a closed breaker's window says open.
    fn rate_trips(&self, window: &Window) -> bool {
        self.settings.window.is_some_and(|w| w.trips(window))
    }

    /// The permitted request succeeded (or failed non-transiently) after
    /// `elapsed_ms`. A slow success counts as a failure (a slow probe as a
    /// failed probe); `now_ms` is when the answer came.
    pub fn on_success(&mut self, permit: Permit, now_ms: u64, elapsed_ms: u64) {
        if self.settings.is_slow(elapsed_ms) {
            return self.on_failure(permit, now_ms);
        }
        let open = State::Open { until_ms: now_ms.saturating_add(self.settings.open_ms) };
        self.state = match self.state {
            State::Closed { window, .. } => {
                // A success can complete `min_calls` of a window that is mostly failures.
                let window = self.record(window, false);
                if self.rate_trips(&window) {
                    open
                } else {
                    State::Closed { consecutive_failures: 0, window }
                }
            }
            half_open @ State::HalfOpen { .. } if !self.is_current_probe(permit) => half_open,
            State::HalfOpen { in_flight, successes, probes_until_ms } => {
                let successes = successes + 1;
                if successes >= self.settings.success_threshold {
                    // A fresh window: what failed before the open period is history.
                    State::CLOSED
                } else {
                    State::HalfOpen { in_flight: in_flight.saturating_sub(1), successes, probes_until_ms }
                }
            }
            // A late success from before the breaker opened changes nothing.
            open @ State::Open { .. } => open,
        };
    }

    /// The permitted request was never sent (its tier's login had just
    /// failed, and that failure is its answer): no outcome is recorded, and
    /// a half-open probe slot is handed back.
    pub fn forget(&mut self, permit: Permit) {
        if let State::HalfOpen { in_flight, successes, probes_until_ms } = self.state {
            if self.is_current_probe(permit) {
                self.state = State::HalfOpen { in_flight: in_flight.saturating_sub(1), successes, probes_until_ms };
            }
        }
    }

    /// The permitted request failed transiently.
    pub fn on_failure(&mut self, permit: Permit, now_ms: u64) {
        let open = State::Open { until_ms: now_ms.saturating_add(self.settings.open_ms) };
        self.state = match self.state {
            State::Closed { consecutive_failures, window } => {
                let failures = consecutive_failures.saturating_add(1);
                let window = self.record(window, true);
                if failures >= self.settings.failure_threshold || self.rate_trips(&window) {
                    open
                } else {
                    State::Closed { consecutive_failures: failures, window }
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

