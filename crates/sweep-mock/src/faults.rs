//! Deterministic dice for fault injection: the same seed, request number and purpose always
//! give the same decision, so a fault test can predict exactly which requests fail.

/// One roll, from SplitMix64 over (seed, request number, purpose).
#[derive(Debug, Clone, Copy)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64, request: u64, purpose: u64) -> Self {
        let mut x =
            seed ^ request.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self(x ^ (x >> 31))
    }

    /// True with probability `p` (0 never, 1 always).
    pub fn chance(self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_matches_its_probability() {
        let hits = (0..100_000).filter(|&n| Dice::new(7, n, 1).chance(0.25)).count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
        assert!(!Dice::new(7, 1, 1).chance(0.0));
        assert!(Dice::new(7, 1, 1).chance(1.0));
        assert_eq!(Dice::new(7, 5, 1).chance(0.5), Dice::new(7, 5, 1).chance(0.5));
    }
}
