//! A fixed-bucket latency histogram: small (a few hundred bytes), mergeable
//! across instances by adding counts, and precise enough for p50/p99 at the
//! 1-2-5 resolution operators read dashboards in.

/// Number of bounded buckets; `counts` has one more, for overflow.
pub const N: usize = 22;

/// Upper bounds (inclusive), in microseconds: 1 µs to 10 s in 1-2.5-5 steps.
pub const BUCKET_BOUNDS_US: [u64; N] = [
    1,
    2,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
];

/// Counts per bucket (`counts[N]`: above 10 s) and the sum of all samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Histogram {
    pub counts: [u64; N + 1],
    pub sum_us: u64,
}

impl Histogram {
    /// Adds one sample.
    pub fn record(&mut self, us: u64) {
        // First bound >= us; N (overflow) when none is.
        let bucket = BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        self.counts[bucket] = self.counts[bucket].saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |total, &c| total.saturating_add(c))
    }

    /// Merges another histogram (another instance's, say) into this one.
    pub fn add(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// The upper bound of the bucket holding quantile `q_permille / 1000`
    /// (500: median, 990: p99; above 1000 counts as 1000): at most one bucket
    /// above the true value. `None` with no samples; `u64::MAX` when the
    /// quantile is in the overflow bucket, which has no bound.
    pub fn quantile_us(&self, q_permille: u32) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let q = u128::from(q_permille.min(1000));
        // The rank (1-based) of the sample at the quantile: ceil(total * q), at least 1.
        let rank = (u128::from(total) * q).div_ceil(1000).max(1);
        let mut seen = 0u128;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u128::from(c);
            if seen >= rank {
                return Some(BUCKET_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_strictly_increasing() {
        assert!(BUCKET_BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn samples_land_in_the_first_bucket_whose_bound_holds_them() {
        let mut h = Histogram::default();
        for us in [0, 1, 2, 3, 1_000, 1_001, 10_000_000, 10_000_001, u64::MAX] {
            h.record(us);
        }
        let bucket = |bound: u64| BUCKET_BOUNDS_US.iter().position(|&b| b == bound).unwrap();
        assert_eq!(h.counts[bucket(1)], 2, "0 and 1 µs");
        assert_eq!(h.counts[bucket(2)], 1);
        assert_eq!(h.counts[bucket(5)], 1, "3 µs");
        assert_eq!(h.counts[bucket(1_000)], 1);
        assert_eq!(h.counts[bucket(2_500)], 1, "1001 µs");
        assert_eq!(h.counts[bucket(10_000_000)], 1);
        assert_eq!(h.counts[N], 2, "overflow");
        assert_eq!(h.count(), 9);
        assert_eq!(h.sum_us, u64::MAX, "the sum saturates");
    }

    #[test]
    fn quantiles_report_the_bucket_bound() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_us(500), None);
        // 90 fast (≤ 100 µs), 9 at ~2 ms, 1 at ~400 ms.
        for _ in 0..90 {
            h.record(80);
        }
        for _ in 0..9 {
            h.record(2_000);
        }
        h.record(400_000);
        assert_eq!(h.quantile_us(0), Some(100), "q=0 is the smallest sample's bucket");
        assert_eq!(h.quantile_us(500), Some(100));
        assert_eq!(h.quantile_us(900), Some(100), "rank 90 is still fast");
        assert_eq!(h.quantile_us(901), Some(2_500));
        assert_eq!(h.quantile_us(990), Some(2_500));
        assert_eq!(h.quantile_us(999), Some(500_000));
        assert_eq!(h.quantile_us(1000), Some(500_000));
        assert_eq!(h.quantile_us(5000), Some(500_000), "clamped to 1000");
        h.record(60_000_000);
        assert_eq!(h.quantile_us(1000), Some(u64::MAX), "overflow has no bound");
    }

    #[test]
    fn add_merges_counts_and_sums() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(3);
        b.record(3);
        b.record(20_000);
        a.add(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.sum_us, 20_006);
        assert_eq!(a.quantile_us(500), Some(5));
        assert_eq!(a.quantile_us(1000), Some(25_000));
        let mut full = Histogram { counts: [u64::MAX; N + 1], sum_us: u64::MAX };
        full.add(&a);
        assert_eq!(full.count(), u64::MAX, "counts saturate");
    }
}
