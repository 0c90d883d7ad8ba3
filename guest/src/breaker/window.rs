//! The count-based sliding window: the outcomes of the last `window_size`
//! calls, as a bitset shift register (newest outcome in bit 0, 1 = failed)
//! and how many outcomes it holds.
//!
//! A bitset rather than a ring of counters keeps the breaker's [`State`]
//! `Copy` and 17 bytes wide in a shared record, so instances sharing a store
//! add their calls to one window with a single compare-and-swap, and the
//! window size can be at most 128.
//!
//! [`State`]: super::State

/// The largest window: the bits of a `u128`.
pub const MAX_WINDOW: u32 = 128;

/// The outcomes of the latest calls, newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Bit `i` is the outcome of the `i`-th latest call (1 = failed); bits at
    /// and above `len` are always zero.
    failed: u128,
    len: u8,
}

/// The low `n` bits set.
fn mask(n: u32) -> u128 {
    if n >= MAX_WINDOW {
        u128::MAX
    } else {
        (1u128 << n) - 1
    }
}

impl Window {
    /// No calls yet.
    pub const EMPTY: Window = Window { failed: 0, len: 0 };

    /// A window read back from a shared record. `None` unless it is one this
    /// type could have produced (at most 128 outcomes, no bits beyond them):
    /// a record is never trusted to be well-formed.
    pub fn from_parts(failed: u128, len: u8) -> Option<Window> {
        let len_ok = u32::from(len) <= MAX_WINDOW;
        (len_ok && failed & !mask(u32::from(len)) == 0).then_some(Window { failed, len })
    }

    /// The outcome bits (see [`Window::from_parts`]).
    pub fn failed_bits(&self) -> u128 {
        self.failed
    }

    /// How many calls it holds.
    pub fn calls(&self) -> u32 {
        u32::from(self.len)
    }

    /// How many of them failed.
    pub fn failures(&self) -> u32 {
        self.failed.count_ones()
    }

    /// Adds the newest outcome; the oldest slides out once `size` are held.
    pub fn record(self, failed: bool, size: u32) -> Window {
        let size = size.min(MAX_WINDOW);
        let shifted = if self.len == 0 { 0 } else { self.failed << 1 };
        let len = (self.calls() + 1).min(size);
        Window { failed: (shifted | u128::from(failed)) & mask(len), len: len as u8 }
    }

    /// Only the newest `size` outcomes: what a window of that size would hold
    /// (a record written by an instance configured with a larger window).
    pub fn fit(self, size: u32) -> Window {
        let len = self.calls().min(size.min(MAX_WINDOW));
        Window { failed: self.failed & mask(len), len: len as u8 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(outcomes: &[bool], size: u32) -> Window {
        outcomes.iter().fold(Window::EMPTY, |w, failed| w.record(*failed, size))
    }

    #[test]
    fn counts_calls_and_failures_up_to_its_size() {
        let w = of(&[true, false, true], 5);
        assert_eq!((w.calls(), w.failures(), w.failed_bits()), (3, 2, 0b101));
        let w = of(&[true, true, false, false, false, false], 5);
        assert_eq!((w.calls(), w.failures()), (5, 1), "the first failure slid out");
    }

    #[test]
    fn a_full_128_call_window_keeps_exactly_128_outcomes() {
        let w = of(&[true; 200], MAX_WINDOW);
        assert_eq!((w.calls(), w.failures()), (128, 128));
        let w = (0..128).fold(w, |w, _| w.record(false, MAX_WINDOW));
        assert_eq!((w.calls(), w.failures()), (128, 0));
    }

    #[test]
    fn fit_keeps_the_newest_outcomes() {
        let w = of(&[true, true, false], 10).fit(2);
        assert_eq!((w.calls(), w.failures(), w.failed_bits()), (2, 1, 0b10));
        assert_eq!(w.fit(50), w, "fitting to a larger size changes nothing");
    }

    #[test]
    fn from_parts_rejects_what_record_could_not_produce() {
        assert_eq!(Window::from_parts(0b101, 3), Some(of(&[true, false, true], 8)));
        assert_eq!(Window::from_parts(0b1000, 3), None, "a failure beyond the calls held");
        assert_eq!(Window::from_parts(0, 129), None);
        assert_eq!(Window::from_parts(u128::MAX, 128).map(|w| w.failures()), Some(128));
    }
}
