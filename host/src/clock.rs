//! [`ManualClock`]: `wasi:clocks/monotonic-clock` and `wall-clock` that tests can move forward
//! together (the component times shared state with the wall clock).
//!
//! It runs at real speed and [`advance`](ManualClock::advance) adds a jump on top. A frozen clock
//! would be simpler but wrong here: wasmtime-wasi turns `subscribe-instant` into a real-time
//! sleep of `when - now`, so a guest that waits for a deadline on a frozen clock wakes up, sees
//! the deadline still ahead, and waits again, forever. With real time underneath, every wait ends
//! as it would in production, and tests still skip cache TTLs and breaker timeouts instantly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// A monotonic clock shared by every instance of the runtimes it is given to. Cheap to clone;
/// clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    start: Instant,
    /// The wall-clock time at `start`.
    wall_start: Duration,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    pub fn new() -> ManualClock {
        let wall_start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        ManualClock(Arc::new(Inner { start: Instant::now(), wall_start, offset_nanos: AtomicU64::new(0) }))
    }

    /// Moves the clock forward by `by` (on top of real time passing).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// The time since the clock was created, including every `advance`.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now_nanos())
    }

    fn now_nanos(&self) -> u64 {
        let real = u64::try_from(self.0.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        real.saturating_add(self.0.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

/// The per-store wall-clock adapter: the real time at creation, plus the same elapsed time and
/// jumps as the monotonic clock.
pub(crate) struct WasiManualWallClock(pub(crate) ManualClock);

impl HostWallClock for WasiManualWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.0 .0.wall_start + self.0.elapsed()
    }
}

/// The per-store adapter wasmtime-wasi takes ownership of.
pub(crate) struct WasiManualClock(pub(crate) ManualClock);

impl HostMonotonicClock for WasiManualClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.0.now_nanos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_jumps_and_real_time_still_flows() {
        let clock = ManualClock::new();
        let shared = clock.clone();
        let before = clock.elapsed();
        shared.advance(Duration::from_secs(59));
        let after = clock.elapsed();
        assert!(after >= before + Duration::from_secs(59), "{before:?} -> {after:?}");
        assert!(after < before + Duration::from_secs(60), "{before:?} -> {after:?}");
        std::thread::sleep(Duration::from_millis(5));
        assert!(clock.elapsed() >= after + Duration::from_millis(5));
        let wasi = WasiManualClock(clock.clone());
        assert!(wasi.now() >= after.as_nanos() as u64);
        // The wall clock jumps with it.
        let wall = WasiManualWallClock(clock.clone());
        let before_jump = wall.now();
        clock.advance(Duration::from_secs(3600));
        assert!(wall.now() >= before_jump + Duration::from_secs(3600));
    }
}
