//! Validated breaker settings. Every constructor rejects values that would
//! make the breaker meaningless (never opens, never closes, or divides by
//! zero), with a message naming the setting, so a bad policy is refused at
//! load time instead of misbehaving under load.

use crate::prelude::*;
use super::window::{Window, MAX_WINDOW};

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
    /// The failure-rate rule, if any. Consecutive failures miss a backend that fails every
    /// other call; a rate over the last calls catches it.
    pub window: Option<WindowSettings>,
    /// Successful calls at least this slow count as failures for the breaker (the caller
    /// still gets the answer): a backend that answers in 4 s is as good as down for most
    /// callers, and only the breaker's open period gives it room to recover.
    pub slow_call_ms: Option<u64>,
}

impl BreakerSettings {
    /// Rejects settings that would make the breaker meaningless. No window, no slow calls.
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
        Ok(BreakerSettings {
            failure_threshold,
            open_ms,
            half_open_probes,
            success_threshold,
            probe_timeout_ms: 5_000,
            window: None,
            slow_call_ms: None,
        })
    }

    /// The same settings with another probe timeout (the policy sets its call deadline).
    pub fn with_probe_timeout(self, probe_timeout_ms: u64) -> Self {
        BreakerSettings { probe_timeout_ms: probe_timeout_ms.max(1), ..self }
    }

    /// The same settings with a failure-rate window (or none).
    pub fn with_window(self, window: Option<WindowSettings>) -> Self {
        BreakerSettings { window, ..self }
    }

    /// The same settings with a slow-call threshold (or none). Zero is rejected:
    /// every call would be slow.
    pub fn with_slow_call_ms(self, slow_call_ms: Option<u64>) -> Result<Self, String> {
        if slow_call_ms == Some(0) {
            return Err("slow_call_ms must be at least 1".into());
        }
        Ok(BreakerSettings { slow_call_ms, ..self })
    }

    /// Whether a call that took `elapsed_ms` is slow.
    pub fn is_slow(&self, elapsed_ms: u64) -> bool {
        self.slow_call_ms.is_some_and(|slow| elapsed_ms >= slow)
    }
}

/// The failure-rate rule: open when at least `failure_rate_percent` of the
/// last `window_size` calls failed, once `min_calls` of them were made (a
/// rate over two calls says nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSettings {
    size: u32,
    failure_rate_percent: u32,
    min_calls: u32,
}

impl WindowSettings {
    /// `window_size` 1..=128, `failure_rate_percent` 1..=100 (0 would open on
    /// every call), `min_calls` 1..=`window_size` (more could never be reached).
    pub fn new(window_size: u32, failure_rate_percent: u32, min_calls: u32) -> Result<Self, String> {
        if !(1..=MAX_WINDOW).contains(&window_size) {
            return Err(format!("window_size must be between 1 and {MAX_WINDOW}, got {window_size}"));
        }
        if !(1..=100).contains(&failure_rate_percent) {
            return Err(format!("failure_rate_percent must be between 1 and 100, got {failure_rate_percent}"));
        }
        if min_calls == 0 {
            return Err("min_calls must be at least 1".into());
        }
        if min_calls > window_size {
            return Err(format!("min_calls ({min_calls}) must not exceed window_size ({window_size})"));
        }
        Ok(WindowSettings { size: window_size, failure_rate_percent, min_calls })
    }

    /// Calls the window holds.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The failure rate that opens the breaker.
    pub fn failure_rate_percent(&self) -> u32 {
        self.failure_rate_percent
    }

    /// Calls needed before the rate applies.
    pub fn min_calls(&self) -> u32 {
        self.min_calls
    }

    /// Whether `window`'s failure rate opens the breaker (rate ≥ threshold).
    pub fn trips(&self, window: &Window) -> bool {
        let calls = window.calls();
        calls >= self.min_calls && window.failures() * 100 >= self.failure_rate_percent * calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_are_rejected() {
        assert!(BreakerSettings::new(0, 1, 1, 1).is_err());
        assert!(BreakerSettings::new(1, 0, 1, 1).is_err());
        assert!(BreakerSettings::new(1, 1, 0, 1).is_err());
        assert!(BreakerSettings::new(1, 1, 1, 0).is_err());
        let base = BreakerSettings::new(1, 1, 1, 1).unwrap();
        assert_eq!(base.with_slow_call_ms(Some(0)).unwrap_err(), "slow_call_ms must be at least 1");
        assert!(base.with_slow_call_ms(Some(1)).unwrap().is_slow(1));
    }

    #[test]
    fn invalid_windows_are_rejected_with_the_setting_named() {
        assert_eq!(WindowSettings::new(20, 50, 30).unwrap_err(), "min_calls (30) must not exceed window_size (20)");
        assert_eq!(WindowSettings::new(0, 50, 1).unwrap_err(), "window_size must be between 1 and 128, got 0");
        assert_eq!(WindowSettings::new(129, 50, 1).unwrap_err(), "window_size must be between 1 and 128, got 129");
        assert_eq!(WindowSettings::new(10, 0, 1).unwrap_err(), "failure_rate_percent must be between 1 and 100, got 0");
        assert_eq!(WindowSettings::new(10, 101, 1).unwrap_err(), "failure_rate_percent must be between 1 and 100, got 101");
        assert_eq!(WindowSettings::new(10, 50, 0).unwrap_err(), "min_calls must be at least 1");
        assert!(WindowSettings::new(128, 100, 128).is_ok());
    }

    #[test]
    fn the_rate_trips_at_the_threshold_once_min_calls_are_in() {
        let rule = WindowSettings::new(10, 50, 4).unwrap();
        let window = |outcomes: &[bool]| outcomes.iter().fold(Window::EMPTY, |w, f| w.record(*f, 10));
        assert!(!rule.trips(&window(&[true, true, true])), "3 of 3 failed, but min_calls is 4");
        assert!(!rule.trips(&window(&[true, false, false, false])), "25 %");
        assert!(rule.trips(&window(&[true, true, false, false])), "exactly 50 %");
    }
}
