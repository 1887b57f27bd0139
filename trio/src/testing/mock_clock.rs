//! A virtual clock for tests.
//!
//! Time is `base + rate × (real time since the last rebase)`. With the
//! default rate of 0 the clock stands still unless moved by [`MockClock::jump`]
//! or by *autojump*: with an autojump threshold set, when every task has
//! been blocked for that long in real time, the run loop moves the clock to
//! the next deadline. A threshold of zero makes a test of a 30-second timeout
//! take as long as its computation, and deterministic.

use crate::core::clock::Clock;
use crate::error::{Error, Result};
use crate::time::{Instant, TryIntoDuration};
use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

struct Inner {
    rate: Cell<f64>,
    base_virtual: Cell<Instant>,
    base_real: Cell<std::time::Instant>,
    autojump: Cell<Option<Duration>>,
}

/// A clock for tests: starts at 0, moves only as told (or at `rate` virtual
/// seconds per real second), and can autojump over idle time.
///
/// Clones share one clock: give one to [`Runner::clock`](crate::Runner::clock)
/// and keep one to steer it.
///
/// ```
/// use trio::testing::MockClock;
/// let clock = MockClock::new();
/// trio::Runner::new().clock(clock.clone()).run(async {
///     assert_eq!(trio::current_time().as_secs_f64(), 0.0);
///     clock.jump(2.5)?;
///     assert_eq!(trio::current_time().as_secs_f64(), 2.5);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct MockClock {
    inner: Rc<Inner>,
}

impl Default for MockClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The latest time a MockClock shows.
const LATEST: Instant = Instant::from_nanos(i64::MAX - 1);

impl MockClock {
    /// The fastest rate [`set_rate`](Self::set_rate) accepts: a million
    /// virtual seconds per real second (so a clock runs for months of real
    /// time before it reaches the end of the range of instants).
    pub const MAX_RATE: f64 = 1e6;

    /// A frozen clock at 0 with no autojump.
    pub fn new() -> Self {
        MockClock {
            inner: Rc::new(Inner {
                rate: Cell::new(0.0),
                base_virtual: Cell::new(Instant::ZERO),
                base_real: Cell::new(std::time::Instant::now()),
                autojump: Cell::new(None),
            }),
        }
    }

    /// A frozen clock at 0 that autojumps as soon as every task is blocked
    /// (threshold 0): the usual clock for tests.
    pub fn autojump() -> Self {
        let c = Self::new();
        c.inner.autojump.set(Some(Duration::ZERO));
        c
    }

    /// The current virtual time. (It saturates at the largest finite
    /// instant, about 292 years, rather than reach +∞, which means "never".)
    pub fn current_time(&self) -> Instant {
        let base = self.inner.base_virtual.get();
        let rate = self.inner.rate.get();
        if rate == 0.0 {
            return base;
        }
        let real = self.inner.base_real.get().elapsed().as_secs_f64();
        let advance = Duration::try_from_secs_f64(real * rate).unwrap_or(Duration::MAX);
        (base + advance).min(LATEST)
    }

    fn rebase(&self) {
        self.inner.base_virtual.set(self.current_time());
        self.inner.base_real.set(std::time::Instant::now());
    }

    /// Virtual seconds per real second (0 = frozen).
    pub fn rate(&self) -> f64 {
        self.inner.rate.get()
    }

    /// Sets the rate: at least 0 and at most [`MockClock::MAX_RATE`]; anything
    /// else (negative, NaN, infinite, too fast) is an
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) error and
    /// changes nothing.
    pub fn set_rate(&self, rate: f64) -> Result<()> {
        if !(0.0..=Self::MAX_RATE).contains(&rate) {
            return Err(Error::invalid(format!(
                "a MockClock's rate must be between 0 and {:e} virtual seconds per real second, got {rate}",
                Self::MAX_RATE
            )));
        }
        self.rebase();
        self.inner.rate.set(rate);
        Ok(())
    }

    /// The autojump threshold, if autojump is on.
    pub fn autojump_threshold(&self) -> Option<Duration> {
        self.inner.autojump.get()
    }

    /// Turns autojump on with this threshold of real idle time (+∞ turns it
    /// off). Negative or NaN is an error.
    pub fn set_autojump_threshold(&self, threshold: impl TryIntoDuration) -> Result<()> {
        let t = threshold.try_into_duration()?;
        self.inner.autojump.set((t != Duration::MAX).then_some(t));
        Ok(())
    }

    /// Moves the clock forward by `duration`. Never backward (negative is
    /// an error), and never so far that the time is no longer a finite
    /// instant (past about 292 years: +∞ means "never", and would turn every
    /// later deadline off); either is an
    /// [`InvalidArgument`](crate::ErrorKind::InvalidArgument) error and
    /// changes nothing.
    pub fn jump(&self, duration: impl TryIntoDuration) -> Result<()> {
        let d = duration.try_into_duration()?;
        let base = self.inner.base_virtual.get();
        let to = base + d;
        if to > LATEST {
            return Err(Error::invalid(format!(
                "MockClock::jump({d:?}) from {base} would leave the range of finite instants"
            )));
        }
        self.inner.base_virtual.set(to);
        Ok(())
    }
}

impl fmt::Debug for MockClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockClock")
            .field("time", &self.current_time())
            .field("rate", &self.rate())
            .field("autojump_threshold", &self.autojump_threshold())
            .finish()
    }
}

impl Clock for MockClock {
    fn start_clock(&self) {
        self.rebase();
    }

    fn current_time(&self) -> Instant {
        MockClock::current_time(self)
    }

    fn deadline_to_sleep_time(&self, deadline: Instant) -> Duration {
        let now = self.current_time();
        if deadline <= now {
            return Duration::ZERO;
        }
        let rate = self.rate();
        if rate == 0.0 {
            return Duration::MAX;
        }
        let virtual_left = deadline.saturating_duration_since(now).as_secs_f64();
        Duration::try_from_secs_f64(virtual_left / rate).unwrap_or(Duration::MAX)
    }

    fn autojump_threshold(&self) -> Option<Duration> {
        self.inner.autojump.get()
    }

    fn autojump(&self, deadline: Instant) {
        let now = self.current_time();
        if deadline > now && deadline.is_finite() {
            let to = self.inner.base_virtual.get() + deadline.saturating_duration_since(now);
            self.inner.base_virtual.set(to.min(LATEST));
        }
    }
}
