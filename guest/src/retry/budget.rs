//! A retry budget: a cap on retries relative to traffic, per environment.
//!
//! `retry.attempts` alone is a guess that fails both ways: high enough to
//! ride out a blip, it multiplies the load on a backend that is really down
//! (every caller sends `attempts` requests: a retry storm that keeps it
//! down). A budget bounds retries by what is being sent anyway: each first
//! attempt deposits, each retry withdraws, and over the last `window_ms`
//!
//! ```text
//! retries allowed = min_per_sec * window_secs + ratio_percent / 100 * calls - retries made
//! ```
//!
//! so a blip is retried in full, while in an outage retries add at most
//! `ratio_percent` % to the load (plus a small floor, so a quiet environment
//! may still retry at all). The same idea as tower's and Finagle's budgets.
//!
//! The window is [`SLOTS`] time slots of `window_ms / SLOTS`: counts slide out
//! a slot at a time. Everything here is pure; time is a parameter. (The
//! shared version, over counters in the store: `engine::shared::budget`.)

use crate::prelude::*;

/// Time slots per window.
pub const SLOTS: u64 = 10;

/// Validated budget settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    ratio_percent: u32,
    min_per_sec: u32,
    window_ms: u64,
}

impl Default for RetryBudget {
    /// 20 % of the calls, at least 10 retries a second, over 10 s (tower's defaults).
    fn default() -> Self {
        RetryBudget { ratio_percent: 20, min_per_sec: 10, window_ms: 10_000 }
    }
}

impl RetryBudget {
    /// `ratio_percent` 0..=1000 (retries per 100 calls), `min_per_sec`
    /// 0..=10 000, `window_ms` 1 000..=600 000 (a shorter window forgets an
    /// outage between two bursts of it; a longer one keeps a recovered
    /// backend's retries down for minutes).
    pub fn new(ratio_percent: u32, min_per_sec: u32, window_ms: u64) -> Result<RetryBudget, String> {
        if ratio_percent > 1_000 {
            return Err(format!("ratio_percent must be between 0 and 1000, got {ratio_percent}"));
        }
        if min_per_sec > 10_000 {
            return Err(format!("min_per_sec must be between 0 and 10000, got {min_per_sec}"));
        }
        if !(1_000..=600_000).contains(&window_ms) {
            return Err(format!("window_ms must be between 1000 and 600000, got {window_ms}"));
        }
        Ok(RetryBudget { ratio_percent, min_per_sec, window_ms })
    }

    pub fn ratio_percent(&self) -> u32 {
        self.ratio_percent
    }

    pub fn min_per_sec(&self) -> u32 {
        self.min_per_sec
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The length of one slot.
    pub fn slot_ms(&self) -> u64 {
        self.window_ms / SLOTS
    }

    /// The slot `now_ms` falls in (slots are numbered from time 0).
    pub fn slot_of(&self, now_ms: u64) -> u64 {
        now_ms / self.slot_ms()
    }

    /// Retries allowed in any window whatever the traffic: `min_per_sec * window_secs`.
    pub fn floor(&self) -> u64 {
        u64::from(self.min_per_sec) * self.window_ms / 1_000
    }

    /// Whether `retries` retries (the one asked for included) fit a window
    /// that saw `calls` first attempts. In hundredths, to stay in integers.
    pub fn fits(&self, calls: u64, retries: u64) -> bool {
        let allowed = self.floor().saturating_mul(100).saturating_add(calls.saturating_mul(u64::from(self.ratio_percent)));
        retries.saturating_mul(100) <= allowed
    }
}

/// One slot's counts, and which slot they belong to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    index: u64,
    calls: u64,
    retries: u64,
}

/// The counts of one instance's window, in memory: the budget when shared
/// state is not usable, and a mirror of this instance's traffic otherwise
/// (so a store failure falls back to a ledger that knows recent traffic).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Slot `n` lives at `n % SLOTS`, valid while its `index` is `n`.
    slots: [Slot; SLOTS as usize],
}

impl Ledger {
    /// The current slot's counts, reset if they are a lap old.
    fn current(&mut self, budget: &RetryBudget, now_ms: u64) -> &mut Slot {
        let index = budget.slot_of(now_ms);
        let slot = &mut self.slots[(index % SLOTS) as usize];
        if slot.index != index {
            *slot = Slot { index, calls: 0, retries: 0 };
        }
        slot
    }

    /// First attempts and retries in the window ending at `now_ms`.
    pub fn totals(&self, budget: &RetryBudget, now_ms: u64) -> (u64, u64) {
        let current = budget.slot_of(now_ms);
        let live = |s: &&Slot| s.index <= current && s.index + SLOTS > current;
        self.slots.iter().filter(live).fold((0, 0), |(c, r), s| (c + s.calls, r + s.retries))
    }

    /// A first attempt was sent.
    pub fn deposit(&mut self, budget: &RetryBudget, now_ms: u64) {
        self.current(budget, now_ms).calls += 1;
    }

    /// Takes one retry from the budget: `false` (and nothing taken) when it is spent.
    pub fn withdraw(&mut self, budget: &RetryBudget, now_ms: u64) -> bool {
        let (calls, retries) = self.totals(budget, now_ms);
        if !budget.fits(calls, retries + 1) {
            return false;
        }
        self.note_retry(budget, now_ms);
        true
    }

    /// Counts a retry that was allowed elsewhere (by the shared budget).
    pub fn note_retry(&mut self, budget: &RetryBudget, now_ms: u64) {
        self.current(budget, now_ms).retries += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio_percent: u32, min_per_sec: u32, window_ms: u64) -> RetryBudget {
        RetryBudget::new(ratio_percent, min_per_sec, window_ms).unwrap()
    }

    /// How many withdrawals succeed in a row at `now_ms`.
    fn drain(ledger: &mut Ledger, b: &RetryBudget, now_ms: u64) -> u32 {
        let mut n = 0;
        while ledger.withdraw(b, now_ms) {
            n += 1;
            assert!(n < 100_000, "a budget that never runs out");
        }
        n
    }

    #[test]
    fn the_floor_allows_min_per_sec_times_the_window_without_any_calls() {
        let b = budget(0, 3, 2_000);
        let mut ledger = Ledger::default();
        assert_eq!(drain(&mut ledger, &b, 0), 6);
        assert_eq!(drain(&mut ledger, &budget(0, 0, 2_000), 0), 0, "no floor, no calls: no retries");
    }

    #[test]
    fn each_call_adds_ratio_percent_of_a_retry() {
        let b = budget(20, 0, 10_000);
        let mut ledger = Ledger::default();
        for _ in 0..4 {
            ledger.deposit(&b, 0);
        }
        assert!(!ledger.withdraw(&b, 0), "4 calls * 20 % = 0.8 of a retry");
        ledger.deposit(&b, 0);
        assert!(ledger.withdraw(&b, 0), "5 calls * 20 % = 1");
        assert!(!ledger.withdraw(&b, 0));
        for _ in 0..10 {
            ledger.deposit(&b, 0);
        }
        assert_eq!(drain(&mut ledger, &b, 0), 2, "15 calls: 3 retries, 1 already made");
        let generous = budget(1_000, 0, 10_000);
        let mut ledger = Ledger::default();
        ledger.deposit(&generous, 0);
        assert_eq!(drain(&mut ledger, &generous, 0), 10, "1000 %: ten retries per call");
    }

    #[test]
    fn calls_and_retries_slide_out_a_slot_at_a_time() {
        // Slots of 100 ms; the window is the current slot and the nine before it.
        let b = budget(100, 0, 1_000);
        let mut ledger = Ledger::default();
        ledger.deposit(&b, 0);
        ledger.deposit(&b, 950);
        assert_eq!(ledger.totals(&b, 999), (2, 0));
        assert_eq!(ledger.totals(&b, 1_000), (1, 0), "the deposit at 0 slid out with its slot");
        assert!(ledger.withdraw(&b, 1_000));
        assert!(!ledger.withdraw(&b, 1_000));
        assert_eq!(ledger.totals(&b, 1_899), (1, 1));
        assert_eq!(ledger.totals(&b, 1_900), (0, 1), "the call at 950 is gone, the retry at 1000 is not");
        assert_eq!(ledger.totals(&b, 2_000), (0, 0));
        assert_eq!(ledger.totals(&b, 500_000), (0, 0), "a slot a lap (or many) old counts for nothing");
    }

    #[test]
    fn a_spent_budget_refills_as_retries_slide_out() {
        let b = budget(0, 1, 1_000);
        let mut ledger = Ledger::default();
        assert!(ledger.withdraw(&b, 0));
        assert!(!ledger.withdraw(&b, 500));
        assert!(ledger.withdraw(&b, 1_000));
    }

    #[test]
    fn invalid_settings_are_rejected() {
        assert_eq!(RetryBudget::new(1_001, 0, 1_000).unwrap_err(), "ratio_percent must be between 0 and 1000, got 1001");
        assert_eq!(RetryBudget::new(0, 10_001, 1_000).unwrap_err(), "min_per_sec must be between 0 and 10000, got 10001");
        assert_eq!(RetryBudget::new(0, 0, 999).unwrap_err(), "window_ms must be between 1000 and 600000, got 999");
        assert!(RetryBudget::new(0, 0, 600_001).is_err());
        assert!(RetryBudget::new(1_000, 10_000, 600_000).is_ok());
        assert_eq!(RetryBudget::default(), budget(20, 10, 10_000));
    }
}
