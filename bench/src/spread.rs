//! The median and range of a set of samples: the one summary every
//! benchmark here prints. No dependencies, so the standalone bins
//! (`cross_channel`, `fs_read`) include this file with `#[path]`.

/// The median and range of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Spread> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Spread {
            median: median_of_sorted(&sorted)?,
            min: *sorted.first()?,
            max: *sorted.last()?,
        })
    }

    /// One sample: no spread (a measurement that is not repeated).
    pub fn single(value: f64) -> Spread {
        Spread {
            median: value,
            min: value,
            max: value,
        }
    }

    /// max / min: 1.0 for no spread. Samples here are positive times or
    /// ratios; a non-positive minimum counts as infinitely wide.
    pub fn width(&self) -> f64 {
        if self.min > 0.0 {
            self.max / self.min
        } else {
            f64::INFINITY
        }
    }
}

/// Median of sorted samples (mean of the middle two for an even count).
fn median_of_sorted(sorted: &[f64]) -> Option<f64> {
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[mid]),
        _ => Some((sorted[mid - 1] + sorted[mid]) / 2.0),
    }
}
