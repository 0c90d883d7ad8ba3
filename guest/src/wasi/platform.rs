//! Clock, randomness and configuration from WASI.

use crate::prelude::*;
use super::wasi::clocks::{monotonic_clock, wall_clock};
use super::wasi::config::store;
use super::wasi::random::random;
use crate::config::ConfigSource;
use crate::engine::{Clock, Random};

/// `wasi:clocks/monotonic-clock`.
pub struct WasiClock;

impl Clock for WasiClock {
    fn now_ms(&self) -> u64 {
        monotonic_clock::now() / 1_000_000
    }

    fn wall_ms(&self) -> u64 {
        let now = wall_clock::now();
        now.seconds.saturating_mul(1_000).saturating_add(u64::from(now.nanoseconds / 1_000_000))
    }

    fn sleep_ms(&mut self, ms: u64) {
        monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
    }

    /// The clock is in nanoseconds: keep the precision latencies need.
    fn now_us(&self) -> u64 {
        monotonic_clock::now() / 1_000
    }
}

/// `wasi:random/random`.
pub struct WasiRandom;

impl Random for WasiRandom {
    fn next_u64(&mut self) -> u64 {
        random::get_random_u64()
    }
}

/// `wasi:config/store`.
pub struct WasiConfig;

impl ConfigSource for WasiConfig {
    fn get(&self, key: &str) -> Result<Option<String>, String> {
        store::get(key).map_err(|e| match e {
            store::Error::Upstream(msg) | store::Error::Io(msg) => msg,
        })
    }
}
