//! Medians and spreads over rounds, and ratios taken round by round.
//!
//! A round runs trio, tokio and smol back to back, so the three samples of
//! one round saw (nearly) the same machine. The ratio of a round is therefore
//! the figure least disturbed by drift, and the ratio we report is the median
//! of the per-round ratios, with their min–max as its spread; not the ratio of
//! two medians, which may come from different rounds.

use crate::workloads::Runtime;

/// A ratio whose max/min over the rounds exceeds this is flagged as not to
/// be trusted. 1.10 because a README figure must reproduce within ±10%
/// (issue 10); a ratio that already moves more than that within one run
/// cannot.
pub const WIDE_RATIO_SPREAD: f64 = 1.10;

pub use crate::spread::Spread;

/// One round's figure per runtime, in `Runtime::ALL` order (`None`: that
/// runtime did not run).
pub type Round = [Option<f64>; 3];

/// Per-runtime spread over the rounds.
pub fn per_runtime(rounds: &[Round]) -> [Option<Spread>; 3] {
    std::array::from_fn(|i| {
        let samples: Vec<f64> = rounds.iter().filter_map(|r| r[i]).collect();
        Spread::of(&samples)
    })
}

/// Spread of trio / `other`, one ratio per round in which both ran.
pub fn ratio(rounds: &[Round], other: Runtime) -> Option<Spread> {
    let idx = Runtime::ALL.iter().position(|&r| r == other)?;
    let samples: Vec<f64> = rounds
        .iter()
        .filter_map(|r| Some(r[0]? / r[idx]?))
        .collect();
    Spread::of(&samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn width_is_max_over_min() {
        assert_eq!(Spread::single(5.0).width(), 1.0);
        assert!((Spread::of(&[1.0, 1.2]).unwrap().width() - 1.2).abs() < 1e-12);
        assert_eq!(Spread::of(&[0.0, 1.0]).unwrap().width(), f64::INFINITY);
    }

    #[test]
    fn ratios_pair_samples_of_the_same_round() {
        // Drift doubles every time in round 2; the per-round ratio does not
        // move, while the ratio of medians would depend on which round the
        // medians came from.
        let rounds = [
            [Some(1.0), Some(2.0), Some(4.0)],
            [Some(2.0), Some(4.0), Some(8.0)],
        ];
        let r = ratio(&rounds, Runtime::Tokio).unwrap();
        assert_eq!((r.median, r.min, r.max), (0.5, 0.5, 0.5));
        let r = ratio(&rounds, Runtime::Smol).unwrap();
        assert_eq!(r.median, 0.25);
        let trio = per_runtime(&rounds)[0].unwrap();
        assert_eq!((trio.min, trio.max), (1.0, 2.0));
    }

    #[test]
    fn a_runtime_that_did_not_run_has_no_ratio() {
        let rounds = [[Some(1.0), None, Some(2.0)]];
        assert_eq!(ratio(&rounds, Runtime::Tokio), None);
        assert_eq!(per_runtime(&rounds)[1], None);
        assert_eq!(ratio(&rounds, Runtime::Smol).unwrap().median, 0.5);
    }
}
