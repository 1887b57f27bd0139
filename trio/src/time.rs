//! Points in time on a run's clock, and the durations the API accepts.
//!
//! A run's clock counts from an origin of its own (the [`MockClock`] starts at
//! zero), so an [`Instant`] means something only inside the run that made it.
//! Instants are whole nanoseconds in an `i64`, with the two extremes standing
//! for −∞ and +∞, as Trio's float deadlines can: `Instant::INFINITY` is "no
//! deadline" and `Instant::NEG_INFINITY` is "already expired". Arithmetic
//! saturates into those, so `now + Duration::MAX` is simply +∞.
//!
//! Durations come in as anything implementing [`TryIntoDuration`]: a
//! `std::time::Duration` (always valid) or a number of seconds as `f64`
//! (negative or NaN gives an [`ErrorKind::InvalidArgument`] error, +∞ means
//! forever), so `trio::sleep(0.5)` reads like Trio.
//!
//! [`MockClock`]: crate::testing::MockClock

use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time on the current run's clock, in nanoseconds from the
/// clock's origin, with −∞ and +∞ at the ends.
///
/// ```
/// use std::time::Duration;
/// use trio::Instant;
/// let t = Instant::from_secs_f64(1.5);
/// assert_eq!((t + Duration::from_millis(500)).as_secs_f64(), 2.0);
/// assert_eq!(Instant::INFINITY + Duration::from_secs(1), Instant::INFINITY);
/// assert!(Instant::NEG_INFINITY < t && t < Instant::INFINITY);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    nanos: i64,
}

impl Instant {
    /// "Never": the deadline of a scope without one.
    pub const INFINITY: Instant = Instant { nanos: i64::MAX };
    /// "Already past": the effective deadline inside a cancelled scope.
    pub const NEG_INFINITY: Instant = Instant { nanos: i64::MIN };
    /// The clock's origin.
    pub const ZERO: Instant = Instant { nanos: 0 };

    /// An instant this many nanoseconds after the origin.
    pub const fn from_nanos(nanos: i64) -> Instant {
        Instant { nanos }
    }

    /// Nanoseconds since the origin (`i64::MAX`/`MIN` for ±∞).
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// An instant from seconds since the origin; values beyond the range
    /// (about ±292 years) saturate to ±∞.
    ///
    /// # Panics
    ///
    /// If `secs` is NaN, which names no instant (a bug in the caller's
    /// arithmetic, like std's `Instant + Duration` overflow). Use
    /// [`try_from_secs_f64`](Self::try_from_secs_f64) for values from
    /// outside the program.
    #[track_caller]
    pub fn from_secs_f64(secs: f64) -> Instant {
        match Self::try_from_secs_f64(secs) {
            Ok(t) => t,
            Err(_) => panic!("Instant::from_secs_f64(NaN): NaN is not an instant"),
        }
    }

    /// As [`from_secs_f64`](Self::from_secs_f64), but NaN is an
    /// [`ErrorKind::InvalidArgument`] error instead of a panic.
    ///
    /// ```
    /// use trio::{ErrorKind, Instant};
    /// assert_eq!(Instant::try_from_secs_f64(1.5)?.as_secs_f64(), 1.5);
    /// assert_eq!(Instant::try_from_secs_f64(f64::INFINITY)?, Instant::INFINITY);
    /// let err = Instant::try_from_secs_f64(f64::NAN).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    /// # Ok::<(), trio::Error>(())
    /// ```
    pub fn try_from_secs_f64(secs: f64) -> Result<Instant> {
        if secs.is_nan() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "an instant cannot be NaN",
            ));
        }
        let n = secs * 1e9;
        Ok(if n >= i64::MAX as f64 {
            Instant::INFINITY
        } else if n <= i64::MIN as f64 {
            Instant::NEG_INFINITY
        } else {
            Instant {
                nanos: n.round() as i64,
            }
        })
    }

    /// Seconds since the origin, with ±∞ for the extremes.
    pub fn as_secs_f64(self) -> f64 {
        match self.nanos {
            i64::MAX => f64::INFINITY,
            i64::MIN => f64::NEG_INFINITY,
            n => n as f64 / 1e9,
        }
    }

    /// True unless this is ±∞.
    pub const fn is_finite(self) -> bool {
        self.nanos != i64::MAX && self.nanos != i64::MIN
    }

    /// How long from `earlier` to `self`; zero if `earlier` is later, and
    /// `Duration::MAX` if either end is infinite in the way that makes the
    /// gap unbounded.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        if self <= earlier {
            return Duration::ZERO;
        }
        if self == Instant::INFINITY || earlier == Instant::NEG_INFINITY {
            return Duration::MAX;
        }
        let diff = (self.nanos as i128) - (earlier.nanos as i128);
        Duration::from_nanos(diff.min(u64::MAX as i128) as u64)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturating: past the range is +∞; −∞ stays −∞.
    fn add(self, d: Duration) -> Instant {
        if !self.is_finite() {
            return self;
        }
        let sum = self.nanos as i128 + d.as_nanos().min(i128::MAX as u128 / 2) as i128;
        if sum >= i64::MAX as i128 {
            Instant::INFINITY
        } else {
            Instant { nanos: sum as i64 }
        }
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturating: past the range is −∞; +∞ stays +∞.
    fn sub(self, d: Duration) -> Instant {
        if !self.is_finite() {
            return self;
        }
        let diff = self.nanos as i128 - d.as_nanos().min(i128::MAX as u128 / 2) as i128;
        if diff <= i64::MIN as i128 {
            Instant::NEG_INFINITY
        } else {
            Instant { nanos: diff as i64 }
        }
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.nanos {
            i64::MAX => f.write_str("+inf"),
            i64::MIN => f.write_str("-inf"),
            _ => write!(f, "{:.6}s", self.as_secs_f64()),
        }
    }
}

/// A value the API accepts as a duration: `std::time::Duration`, or seconds
/// as `f64`/`f32` (checked: negative or NaN is an error, +∞ is forever).
///
/// ```
/// use std::time::Duration;
/// use trio::TryIntoDuration;
/// assert_eq!(0.25.try_into_duration().unwrap(), Duration::from_millis(250));
/// assert_eq!((-1.0).try_into_duration().unwrap_err().kind(), trio::ErrorKind::InvalidArgument);
/// assert_eq!(f64::INFINITY.try_into_duration().unwrap(), Duration::MAX);
/// ```
pub trait TryIntoDuration {
    /// The duration, or an [`ErrorKind::InvalidArgument`] error.
    fn try_into_duration(self) -> Result<Duration>;
}

impl TryIntoDuration for Duration {
    fn try_into_duration(self) -> Result<Duration> {
        Ok(self)
    }
}

impl TryIntoDuration for f64 {
    fn try_into_duration(self) -> Result<Duration> {
        if self.is_nan() {
            return Err(Error::new(ErrorKind::InvalidArgument, "duration is NaN"));
        }
        if self < 0.0 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("duration must be non-negative, got {self}"),
            ));
        }
        Ok(Duration::try_from_secs_f64(self).unwrap_or(Duration::MAX))
    }
}

impl TryIntoDuration for f32 {
    fn try_into_duration(self) -> Result<Duration> {
        (self as f64).try_into_duration()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_arithmetic() {
        let t = Instant::from_nanos(10);
        assert_eq!(t + Duration::MAX, Instant::INFINITY);
        assert_eq!(t - Duration::MAX, Instant::NEG_INFINITY);
        assert_eq!(
            Instant::NEG_INFINITY + Duration::from_secs(5),
            Instant::NEG_INFINITY
        );
        assert_eq!(
            Instant::INFINITY.saturating_duration_since(t),
            Duration::MAX
        );
        assert_eq!(
            t.saturating_duration_since(Instant::INFINITY),
            Duration::ZERO
        );
        assert!(Instant::try_from_secs_f64(f64::NAN).is_err());
        assert_eq!(Instant::from_secs_f64(1e300), Instant::INFINITY);
    }

    #[test]
    fn durations_are_checked() {
        assert!(f64::NAN.try_into_duration().is_err());
        assert!((-0.5f32).try_into_duration().is_err());
        assert_eq!(
            1.5.try_into_duration().unwrap(),
            Duration::from_millis(1500)
        );
    }
}
