//! Points in time on a run's clock, and the durations the API accepts.
//!
//! A run's clock counts from an origin of its own (the [`MockClock`] starts at
//! zero), so an [`Instant`] means something only inside the run that made it.
//! Instants are whole nanoseconds in an `i64`, with the two extremes standing
//! for −∞ and +∞, as Trio's float deadlines can: `Instant::INFINITY` is "no
//! deadline" and `Instant::NEG_INFINITY` is "already expired". Arithmetic
//! saturates into those, so `now + Duration::MAX` is simply +∞.
//!
//! # Arithmetic
//!
//! As in Trio, where times are float seconds:
//!
//! - `Instant - Instant` is the gap in seconds, as an `f64` (negative if the
//!   right side is later; ±∞ if one side is infinite);
//! - `Instant ± f64` (seconds) and `Instant ± Duration` give an `Instant`,
//!   saturating to ±∞ past the range; `+=` and `-=` work too.
//!
//! A NaN operand, or a sum or difference of opposite infinities (∞ − ∞),
//! names no instant or gap: the operators panic, as std's `Instant +
//! Duration` does on overflow (misuse, see
//! [Errors and panics](crate#errors-and-panics)). The `checked_…` methods
//! ([`Instant::checked_add_secs`], [`Instant::checked_sub_secs`],
//! [`Instant::checked_secs_since`]) return an
//! [`ErrorKind::InvalidArgument`] error instead, for values from outside
//! the program.
//!
//! Durations come in as anything implementing [`TryIntoDuration`]: a
//! `std::time::Duration` (always valid) or a number of seconds as `f64`
//! (negative or NaN gives an [`ErrorKind::InvalidArgument`] error, +∞ means
//! forever), so `trio::sleep(0.5)` reads like Trio.
//!
//! [`MockClock`]: crate::testing::MockClock

use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::time::Duration;

/// A point in time on the current run's clock, in nanoseconds from the
/// clock's origin, with −∞ and +∞ at the ends.
///
/// ```
/// use std::time::Duration;
/// use trio::Instant;
/// let t = Instant::from_secs_f64(1.5);
/// assert_eq!((t + Duration::from_millis(500)).as_secs_f64(), 2.0);
/// assert_eq!(t + 0.5, Instant::from_secs_f64(2.0));
/// assert_eq!((t + 0.5) - t, 0.5); // seconds, as an f64
/// assert_eq!(t - (t + 2.0), -2.0);
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
    /// # fn main() -> trio::Result<()> {
    /// use trio::{ErrorKind, Instant};
    /// assert_eq!(Instant::try_from_secs_f64(1.5)?.as_secs_f64(), 1.5);
    /// assert_eq!(Instant::try_from_secs_f64(f64::INFINITY)?, Instant::INFINITY);
    /// let err = Instant::try_from_secs_f64(f64::NAN).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    /// # Ok(())
    /// # }
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

    /// `self` plus `secs` seconds (negative goes back), saturating to ±∞
    /// past the range; an [`ErrorKind::InvalidArgument`] error if `secs` is
    /// NaN or the sum is ∞ − ∞. The fallible form of `self + secs`.
    ///
    /// ```
    /// # fn main() -> trio::Result<()> {
    /// use trio::{ErrorKind, Instant};
    /// let t = Instant::from_secs_f64(1.0);
    /// assert_eq!(t.checked_add_secs(0.5)?, Instant::from_secs_f64(1.5));
    /// assert_eq!(t.checked_add_secs(f64::INFINITY)?, Instant::INFINITY);
    /// let err = t.checked_add_secs(f64::NAN).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    /// # Ok(())
    /// # }
    /// ```
    pub fn checked_add_secs(self, secs: f64) -> Result<Instant> {
        if secs.is_nan() {
            return Err(Error::invalid("cannot add NaN seconds to an instant"));
        }
        match self.nanos {
            i64::MAX if secs == f64::NEG_INFINITY => {
                Err(Error::invalid("+inf + -inf seconds names no instant"))
            }
            i64::MIN if secs == f64::INFINITY => {
                Err(Error::invalid("-inf + inf seconds names no instant"))
            }
            i64::MAX | i64::MIN => Ok(self),
            n => Instant::try_from_secs_f64(n as f64 / 1e9 + secs).map(|sum| {
                // Keep whole-nanosecond precision for moderate offsets:
                // add in integers when the offset fits.
                let off = secs * 1e9;
                if off.abs() < 9.0e18 {
                    let exact = n as i128 + off.round() as i128;
                    if exact >= i64::MAX as i128 {
                        Instant::INFINITY
                    } else if exact <= i64::MIN as i128 {
                        Instant::NEG_INFINITY
                    } else {
                        Instant::from_nanos(exact as i64)
                    }
                } else {
                    sum
                }
            }),
        }
    }

    /// `self` minus `secs` seconds: [`checked_add_secs`](Self::checked_add_secs)
    /// with `-secs`. The fallible form of `self - secs`.
    pub fn checked_sub_secs(self, secs: f64) -> Result<Instant> {
        self.checked_add_secs(-secs)
    }

    /// Seconds from `earlier` to `self` as an `f64` (negative if `earlier`
    /// is later; ±∞ if one side is infinite); an
    /// [`ErrorKind::InvalidArgument`] error for +∞ − +∞ or −∞ − −∞. The
    /// fallible form of `self - earlier`.
    ///
    /// ```
    /// # fn main() -> trio::Result<()> {
    /// use trio::Instant;
    /// let (a, b) = (Instant::from_secs_f64(1.0), Instant::from_secs_f64(3.5));
    /// assert_eq!(b.checked_secs_since(a)?, 2.5);
    /// assert_eq!(a.checked_secs_since(b)?, -2.5);
    /// assert_eq!(Instant::INFINITY.checked_secs_since(a)?, f64::INFINITY);
    /// assert!(Instant::INFINITY.checked_secs_since(Instant::INFINITY).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn checked_secs_since(self, earlier: Instant) -> Result<f64> {
        match (self.nanos, earlier.nanos) {
            (i64::MAX, i64::MAX) | (i64::MIN, i64::MIN) => Err(Error::invalid(
                "the gap between two equal infinite instants is undefined",
            )),
            (i64::MAX, _) | (_, i64::MIN) => Ok(f64::INFINITY),
            (i64::MIN, _) | (_, i64::MAX) => Ok(f64::NEG_INFINITY),
            (a, b) => Ok((a as i128 - b as i128) as f64 / 1e9),
        }
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

/// Seconds between two instants, as in Trio: `later - earlier` is positive.
///
/// # Panics
///
/// For +∞ − +∞ and −∞ − −∞ (see [`Instant`]); use
/// [`Instant::checked_secs_since`] where that can happen.
impl Sub<Instant> for Instant {
    type Output = f64;
    #[track_caller]
    fn sub(self, earlier: Instant) -> f64 {
        match self.checked_secs_since(earlier) {
            Ok(secs) => secs,
            Err(e) => panic!("Instant - Instant: {e}; use Instant::checked_secs_since"),
        }
    }
}

/// `self + secs` seconds (negative goes back), saturating to ±∞.
///
/// # Panics
///
/// If `secs` is NaN, or for ∞ + −∞; use [`Instant::checked_add_secs`]
/// where that can happen.
impl Add<f64> for Instant {
    type Output = Instant;
    #[track_caller]
    fn add(self, secs: f64) -> Instant {
        match self.checked_add_secs(secs) {
            Ok(t) => t,
            Err(e) => panic!("Instant + f64: {e}; use Instant::checked_add_secs"),
        }
    }
}

/// `self - secs` seconds, saturating to ±∞.
///
/// # Panics
///
/// If `secs` is NaN, or for ∞ − ∞; use [`Instant::checked_sub_secs`]
/// where that can happen.
impl Sub<f64> for Instant {
    type Output = Instant;
    #[track_caller]
    fn sub(self, secs: f64) -> Instant {
        match self.checked_sub_secs(secs) {
            Ok(t) => t,
            Err(e) => panic!("Instant - f64: {e}; use Instant::checked_sub_secs"),
        }
    }
}

impl AddAssign<f64> for Instant {
    #[track_caller]
    fn add_assign(&mut self, secs: f64) {
        *self = *self + secs;
    }
}

impl SubAssign<f64> for Instant {
    #[track_caller]
    fn sub_assign(&mut self, secs: f64) {
        *self = *self - secs;
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, d: Duration) {
        *self = *self - d;
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
    fn float_arithmetic() {
        let t = Instant::from_secs_f64(2.0);
        assert_eq!(t + 1.5, Instant::from_secs_f64(3.5));
        assert_eq!(t - 2.5, Instant::from_secs_f64(-0.5));
        assert_eq!(Instant::from_secs_f64(3.5) - t, 1.5);
        assert_eq!(t - Instant::from_secs_f64(3.5), -1.5);
        assert_eq!(t + 1e300, Instant::INFINITY);
        assert_eq!(t - 1e300, Instant::NEG_INFINITY);
        assert_eq!(Instant::INFINITY + 5.0, Instant::INFINITY);
        assert_eq!(Instant::INFINITY - t, f64::INFINITY);
        assert_eq!(t - Instant::INFINITY, f64::NEG_INFINITY);
        assert_eq!(Instant::NEG_INFINITY - Instant::INFINITY, f64::NEG_INFINITY);
        let mut u = t;
        u += 1.0;
        u -= Duration::from_millis(500);
        assert_eq!(u, Instant::from_secs_f64(2.5));
        // Whole nanoseconds stay exact for small offsets far from the origin.
        let far = Instant::from_nanos(1_000_000_000_000_000_001);
        assert_eq!((far + 1e-9).as_nanos(), 1_000_000_000_000_000_002);
        assert!(t.checked_add_secs(f64::NAN).is_err());
        assert!(Instant::INFINITY.checked_sub_secs(f64::INFINITY).is_err());
        assert!(
            Instant::NEG_INFINITY
                .checked_secs_since(Instant::NEG_INFINITY)
                .is_err()
        );
    }

    #[test]
    #[should_panic(expected = "use Instant::checked_add_secs")]
    fn adding_nan_panics() {
        let _ = Instant::ZERO + f64::NAN;
    }

    #[test]
    #[should_panic(expected = "use Instant::checked_secs_since")]
    fn infinity_minus_infinity_panics() {
        let _ = Instant::INFINITY - Instant::INFINITY;
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
