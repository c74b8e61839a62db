//! A tiny deterministic random source (SplitMix64) for key choice and jitter.
//!
//! The edge seeds it from the platform's entropy once per request; tests seed it with a
//! constant so every choice they make is reproducible.

/// SplitMix64: fast, well distributed, and good enough for load spreading (not for secrets).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n`, without modulo bias (Lemire's nearly divisionless method:
    /// the division runs only in the rare case a draw may be biased); 0 when `n` is 0. A
    /// range that fits 32 bits is drawn with 64-bit arithmetic: wasm has no 128-bit multiply.
    pub fn below(&mut self, n: usize) -> usize {
        match u32::try_from(n) {
            Ok(0) => 0,
            Ok(n) => self.below_u32(n) as usize,
            Err(_) => self.below_u64(n as u64) as usize,
        }
    }

    fn below_u32(&mut self, n: u32) -> u32 {
        let mut m = (self.next_u64() >> 32) * u64::from(n);
        if (m as u32) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u32) < threshold {
                m = (self.next_u64() >> 32) * u64::from(n);
            }
        }
        (m >> 32) as u32
    }

    fn below_u64(&mut self, n: u64) -> u64 {
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            seen[rng.below(5)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 850 && c < 1150), "{seen:?}");
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn ranges_beyond_32_bits_stay_in_range_and_cover_it() {
        let mut rng = Rng::new(9);
        let n = (1usize << 40) + 3;
        let draws: Vec<usize> = (0..4_000).map(|_| rng.below(n)).collect();
        assert!(draws.iter().all(|&d| d < n));
        // Both halves of the range are reached about equally.
        let low = draws.iter().filter(|&&d| d < n / 2).count();
        assert!((1_800..2_200).contains(&low), "{low}");
    }
}
