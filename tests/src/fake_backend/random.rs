//! Seeded random faults: a small deterministic PRNG (splitmix64) deciding, request by
//! request, whether to inject a fault and which one. No crate: the sequence must be the same
//! on every machine and every dependency version, so a failing chaos run can be replayed.

use super::Fault;

/// splitmix64 (Steele, Lea, Flood 2014): one 64-bit state, full period, good enough mixing for
/// test decisions. Public so tests that drive the fake can pick their own inputs from a seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`). The modulo bias is below 2^-50 for the small `n` tests
    /// use, far under anything a test could observe.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below(0)");
        self.next_u64() % n
    }
}

/// The random fault mode of one fake backend: each draw is one request.
#[derive(Debug)]
pub(crate) struct RandomFaults {
    rng: SplitMix64,
    percent: u32,
    faults: Vec<Fault>,
}

impl RandomFaults {
    pub(crate) fn new(seed: u64, percent: u32, faults: Vec<Fault>) -> RandomFaults {
        assert!(percent <= 100, "set_random_faults: percent must be 0..=100, got {percent}");
        assert!(!faults.is_empty() || percent == 0, "set_random_faults: no faults to pick from");
        RandomFaults { rng: SplitMix64::new(seed), percent, faults }
    }

    /// The fault for the next request, if it gets one. Always two draws per request (the
    /// coin, then the pick), so the n-th request's decision depends on `n` alone.
    pub(crate) fn draw(&mut self) -> Option<Fault> {
        let hit = self.rng.below(100) < u64::from(self.percent);
        let pick = self.rng.below(self.faults.len().max(1) as u64) as usize;
        hit.then(|| self.faults[pick].clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn faults() -> Vec<Fault> {
        vec![Fault::vault_sealed(), Fault::Malformed, Fault::Delay(Duration::from_millis(1)), Fault::CloseConnection]
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_another_seed_another() {
        let run = |seed| {
            let mut r = RandomFaults::new(seed, 30, faults());
            (0..1_000).map(|_| r.draw()).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        // Pinned: splitmix64's published first output for seed 0, so a changed generator
        // (which would silently change every chaos run's faults) fails here.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn about_percent_of_draws_fault_and_every_fault_is_picked() {
        let mut r = RandomFaults::new(0xC0FFEE, 30, faults());
        let mut picked = vec![0u32; faults().len()];
        for _ in 0..10_000 {
            if let Some(f) = r.draw() {
                picked[faults().iter().position(|g| *g == f).unwrap()] += 1;
            }
        }
        let total: u32 = picked.iter().sum();
        // Binomial(10 000, 0.3) has a standard deviation of ~46: ±300 is over 6 sigma.
        assert!((2_700..=3_300).contains(&total), "{total} faults in 10 000 draws");
        assert!(picked.iter().all(|&n| n > 500), "each of 4 faults gets about 750: {picked:?}");
    }

    #[test]
    fn zero_and_a_hundred_percent_are_exact() {
        let mut never = RandomFaults::new(1, 0, faults());
        assert!((0..1_000).all(|_| never.draw().is_none()));
        let mut always = RandomFaults::new(1, 100, vec![Fault::Malformed]);
        assert!((0..1_000).all(|_| always.draw() == Some(Fault::Malformed)));
    }
}
