//! Clocks: where a run's notion of "now" comes from.
//!
//! The run loop asks its clock two things: the current time (for deadlines)
//! and how long to block in the reactor before the next deadline arrives. A
//! clock that is not tied to real time (the [`MockClock`]) may also ask the
//! loop to *autojump*: when every task has been blocked for a threshold of
//! real time, the loop moves the clock straight to the next deadline.
//!
//! [`MockClock`]: crate::testing::MockClock

use crate::time::Instant;
use std::time::Duration;

/// A source of time for a run. [`SystemClock`] is the default; tests use
/// [`MockClock`](crate::testing::MockClock).
///
/// Implementations are used only on the run's thread.
pub trait Clock {
    /// Called once when the run starts, before any task runs.
    fn start_clock(&self) {}

    /// The current time on this clock.
    fn current_time(&self) -> Instant;

    /// How long, in real time, the run loop should block to wake up at
    /// `deadline` (which may be `Instant::INFINITY`). Zero if it has passed.
    fn deadline_to_sleep_time(&self, deadline: Instant) -> Duration;

    /// For virtual clocks: if every task has been blocked this long in real
    /// time, the loop calls [`Clock::autojump`]. `None` (the default) never
    /// jumps.
    fn autojump_threshold(&self) -> Option<Duration> {
        None
    }

    /// Moves the clock forward to `deadline`, the earliest pending deadline.
    /// Called only if [`Clock::autojump_threshold`] returned `Some`.
    fn autojump(&self, deadline: Instant) {
        let _ = deadline;
    }

    /// If this clock reads the system's monotonic clock from a fixed
    /// origin (`current_time()` is always `origin.elapsed()`, as
    /// [`SystemClock`]'s), that origin; `None` (the default) for any other
    /// clock. It lets [`std_instant_now`](crate::lowlevel::std_instant_now)
    /// (foreign timers, such as hyper's, read it per request) return
    /// `std::time::Instant::now()` as it is, instead of converting the
    /// run's clock: the run's instant `t` is then `origin + t` exactly.
    fn std_origin(&self) -> Option<std::time::Instant> {
        None
    }
}

/// The real, monotonic clock. Its origin is the start of the run, so times
/// read as "seconds into this run".
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: std::time::Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn std_origin(&self) -> Option<std::time::Instant> {
        Some(self.origin)
    }

    fn current_time(&self) -> Instant {
        let nanos = self.origin.elapsed().as_nanos();
        Instant::from_nanos(nanos.min(i64::MAX as u128 - 1) as i64)
    }

    fn deadline_to_sleep_time(&self, deadline: Instant) -> Duration {
        deadline.saturating_duration_since(self.current_time())
    }
}
