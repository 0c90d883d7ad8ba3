//! Log lines an attacker can trigger at will (connection cap reached, accept failures, throttled
//! callers) are rate-limited, so a flood cannot turn stderr into the bottleneck or bury other
//! messages.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often each kind of rate-limited line may be printed.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Prints at most one line per interval; the lines held back in between are counted and the
/// count is handed to the next line printed.
pub(crate) struct RateLimitedLog {
    interval: Duration,
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    pub(crate) fn new(interval: Duration) -> RateLimitedLog {
        RateLimitedLog { interval, state: Mutex::default() }
    }

    /// Writes `line(suppressed)` to stderr unless a line was written within the interval.
    pub(crate) fn log(&self, line: impl FnOnce(u64) -> String) {
        if let Some(suppressed) = self.admit(Instant::now()) {
            eprintln!("{}", line(suppressed));
        }
    }

    /// `Some(lines held back since the last one)` when a line may be written at `now`.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.last.is_some_and(|last| now.saturating_duration_since(last) < self.interval) {
            state.suppressed += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.suppressed))
    }
}

/// ` (N similar lines suppressed)`, or nothing, for plain-text lines.
pub(crate) fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} similar lines suppressed)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_rest_counted() {
        let log = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.admit(t0), Some(0));
        assert_eq!(log.admit(t0 + Duration::from_secs(1)), None);
        assert_eq!(log.admit(t0 + Duration::from_secs(9)), None);
        assert_eq!(log.admit(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(log.admit(t0 + Duration::from_secs(11)), None);
    }
}
