//! Timing and summary statistics.
//!
//! The machines this runs on are shared and noisy, so a figure is never one long loop: it is
//! several batches, each timed as a whole (one `Instant` pair per batch, so the clock costs
//! nothing per operation), summarised by the median batch. Compared figures run as interleaved
//! pairs (A B, B A, A B, ...): a burst of noise or a frequency change then hits both sides, and
//! the ratio is taken per round before the median, so drift between rounds cancels out.

use std::time::{Duration, Instant};

use anyhow::Result;

/// Per-operation nanoseconds, one value per batch.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn push(&mut self, ns_per_op: f64) {
        self.0.push(ns_per_op);
    }

    pub fn push_total(&mut self, total: Duration, ops: u64) {
        self.push(total.as_nanos() as f64 / ops.max(1) as f64);
    }

    /// Whether there are values and all are finite and positive (the smoke test's only claim).
    pub fn all_finite_positive(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|v| v.is_finite() && *v > 0.0)
    }

    pub fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        }
    }

    /// Half the min–max range as a fraction of the median: "±x %" across batches.
    pub fn spread(&self) -> f64 {
        let (min, max) = self.0.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if self.0.is_empty() {
            return f64::NAN;
        }
        (max - min) / 2.0 / self.median()
    }
}

/// Runs `ops` operations as one batch under a single clock pair; returns the elapsed time.
pub fn timed(ops: u64, mut op: impl FnMut() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    for _ in 0..ops {
        op()?;
    }
    Ok(start.elapsed())
}

/// One contender: how many operations a batch holds, and a closure that runs a batch of that
/// many and returns the time to count. Most wrap their loop in [`timed`]; slow operations with
/// set-up or tear-down (a runtime, an instance) time only the part the figure is about.
pub struct Side<'a> {
    pub ops: u64,
    pub run: &'a mut dyn FnMut(u64) -> Result<Duration>,
}

impl<'a> Side<'a> {
    pub fn new(ops: u64, run: &'a mut dyn FnMut(u64) -> Result<Duration>) -> Side<'a> {
        Side { ops: ops.max(1), run }
    }
}

/// Runs `batches` rounds of every side, rotating which goes first, and returns each side's
/// samples (index `i` of every result is round `i`, so [`ratio`] pairs them up). With `warm_up`,
/// one untimed batch of each runs first (caches, branch predictors, lazily built state, pooled
/// connections); slow one-shot operations such as compiling skip it.
pub fn interleave(batches: usize, warm_up: bool, sides: &mut [Side<'_>]) -> Result<Vec<Samples>> {
    if warm_up {
        for side in sides.iter_mut() {
            (side.run)(side.ops)?;
        }
    }
    let n = sides.len();
    let mut out = vec![Samples::default(); n];
    for round in 0..batches.max(1) {
        let mut this_round = vec![0.0; n];
        for k in 0..n {
            let i = (round + k) % n;
            let side = &mut sides[i];
            this_round[i] = (side.run)(side.ops)?.as_nanos() as f64 / side.ops as f64;
        }
        for (samples, value) in out.iter_mut().zip(this_round) {
            samples.push(value);
        }
    }
    Ok(out)
}

/// `a / b` round by round (both from the same [`interleave`] call).
pub fn ratio(a: &Samples, b: &Samples) -> Samples {
    Samples(a.0.iter().zip(&b.0).map(|(x, y)| x / y).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Samples(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median(), s.spread()), (2.0, 0.5));
        assert_eq!(Samples(vec![4.0, 1.0, 2.0, 3.0]).median(), 2.5);
        assert!(Samples::default().median().is_nan());
    }

    #[test]
    fn interleave_rotates_and_counts_every_operation() {
        let order = std::cell::RefCell::new(Vec::new());
        let (mut a_ops, mut b_ops) = (0u64, 0u64);
        let mut a = |ops: u64| {
            order.borrow_mut().push('a');
            timed(ops, || {
                a_ops += 1;
                Ok(())
            })
        };
        let mut b = |ops: u64| {
            order.borrow_mut().push('b');
            b_ops += ops;
            Ok(Duration::from_nanos(10 * ops))
        };
        let out = interleave(4, true, &mut [Side::new(3, &mut a), Side::new(2, &mut b)]).unwrap();
        assert_eq!((a_ops, b_ops), (15, 10));
        assert_eq!(order.into_inner().iter().collect::<String>(), "ababbaabba");
        assert_eq!(out[1].median(), 10.0);
        assert_eq!(ratio(&out[1], &out[1]).median(), 1.0);
    }
}
