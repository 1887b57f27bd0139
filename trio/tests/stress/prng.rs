//! A small deterministic PRNG, so that a seed replays exactly and the suite
//! needs no `rand` crate.
//!
//! SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014; the constants are the paper's): one 64-bit
//! state, a Weyl increment and a mixing function. Plenty for choosing
//! operations; `fork` gives each task or operation a stream of its own, so
//! what one task draws does not depend on how many numbers another drew.

/// A SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A stream for `seed`; different seeds give unrelated streams.
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng(seed);
        // Mix once so that seeds 0, 1, 2… do not start with related outputs.
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`). The modulo bias is below 2^-50 for the
    /// small `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Seconds in `[0, max)`, rounded to whole milliseconds so that printed
    /// deadlines stay readable.
    pub fn secs(&mut self, max: f64) -> f64 {
        let ms = (max * 1000.0) as u64;
        if ms == 0 {
            return 0.0;
        }
        self.below(ms) as f64 / 1000.0
    }

    /// An independent stream derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}
