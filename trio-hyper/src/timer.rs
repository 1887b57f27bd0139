//! [`TrioTimer`]: hyper's [`Timer`] on the run's clock.
//!
//! # The problem
//!
//! hyper wants a `Timer` that is `Send + Sync + 'static` and whose
//! [`Sleep`] futures are `Send + Sync`; a trio sleep is a `!Send` future
//! tied to the task that polls it, and it is a cancel point. So a
//! `TrioSleep` holds no trio object that is tied to a thread: it is plain
//! data (a deadline and a [`TimerEntry`], which is a run id and a key),
//! `Send + Sync` by construction.
//!
//! # How it works
//!
//! 1. *The clock*: [`TrioTimer::now`] is the run's clock read as a
//!    `std::time::Instant` ([`std_instant_now`]: one fixed anchor per run,
//!    so it follows a [`MockClock`](trio::testing::MockClock), jumps
//!    included); every deadline hyper gives back is converted with the
//!    same anchor ([`from_std_instant`], monotonic), so the run and hyper
//!    agree on when a deadline has passed.
//! 2. *A sleep's first poll* converts its deadline and registers the
//!    task's waker in the run's own timer table ([`TimerEntry`]: a slab
//!    entry and a heap push, no allocation, the task's waker kept
//!    decoded). It reads no clock: the run loop fires the entry when it
//!    sees the deadline passed, at its next deadline check if it already
//!    has, and the sleep is ready from then on (never before its
//!    deadline).
//! 3. *Later polls* ask the entry whether it has fired, and make the
//!    waker they are given the one to wake.
//! 4. *Reset* ([`Timer::reset`]) moves the entry, keeping the waker, so a
//!    reset sleep fires at its new deadline even if hyper does not poll it
//!    again before then. *Drop* removes the entry (its heap entry goes
//!    stale, trio's lazy deletion).
//! 5. Its poll never checks for cancellation (it is not a cancel point: a
//!    cancelled connection ends through its I/O, not its timers) and never
//!    parks its task. The MockClock's autojump and the deadlock detector
//!    see the entries as they see any trio sleep.
//!
//! # Cost
//!
//! hyper arms a timer on every HTTP/1.1 request (its header-read
//! timeout): `now()`, `sleep_until` (hyper boxes it), a poll that
//! registers, a drop that deregisters. Each of `now()`, the first poll and
//! the drop is one lookup of the run (a thread-local) and one borrow of
//! its state; nothing else is allocated, and no task of ours runs.
//! (Before, a run-local registry kept an ordered map of wakers, found
//! through a thread-local cache, with a driver task: about 1.8k
//! instructions per request in `benches/hello.rs`, against about 0.7k
//! now.)
//!
//! Outside a run there is no clock to follow: `now()` is
//! `std::time::Instant::now()`, and a `TrioSleep` polled outside a run
//! (or in another run than the one it was first polled in) is ready at
//! once (a timer that fires early, never one that hangs: hyper only polls
//! its timers inside its connection futures, which must run in a trio
//! task anyway).

use hyper::rt::{Sleep, Timer};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};
use trio::lowlevel::{TimerEntry, from_std_instant, std_instant_now};

/// hyper's [`Timer`] on the current run's clock: see the
/// [module docs](self) for the design. A unit value: `Send + Sync +
/// 'static`, usable with every hyper builder's `.timer(TrioTimer)`, in
/// any task of any run (each run keeps its own timers).
///
/// ```
/// use hyper::rt::Timer;
/// use std::time::Duration;
/// use trio_hyper::TrioTimer;
///
/// trio::Runner::new()
///     .clock(trio::testing::MockClock::autojump())
///     .run(async {
///         let t0 = TrioTimer.now();
///         TrioTimer.sleep(Duration::from_secs(3600)).await; // autojumps
///         assert!(TrioTimer.now() - t0 >= Duration::from_secs(3600));
///         Ok(())
///     })
///     .unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TrioTimer;

impl Timer for TrioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        let now = self.now();
        Box::pin(TrioSleep::until(now.checked_add(duration)))
    }

    fn sleep_until(&self, deadline: StdInstant) -> Pin<Box<dyn Sleep>> {
        Box::pin(TrioSleep::until(Some(deadline)))
    }

    /// The run's clock as a std instant (step 1); outside a run, the
    /// system's.
    fn now(&self) -> StdInstant {
        std_instant_now().unwrap_or_else(|_| StdInstant::now())
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: StdInstant) {
        match sleep.as_mut().downcast_mut_pin::<TrioSleep>() {
            Some(mine) => mine.get_mut().reset(Some(new_deadline)),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// The [`Sleep`] of [`TrioTimer`]: ready once the run's clock reaches its
/// deadline. Plain data (`Send + Sync`), not a cancel point; see the
/// [module docs](self).
pub struct TrioSleep {
    /// `None`: never (a deadline past what `std::time::Instant` can hold).
    deadline: Option<StdInstant>,
    /// Registered in the run's timer table (step 2).
    entry: Option<TimerEntry>,
}

impl TrioSleep {
    fn until(deadline: Option<StdInstant>) -> Self {
        TrioSleep {
            deadline,
            entry: None,
        }
    }

    /// Step 4: moves the deadline, keeping the registration's waker.
    fn reset(&mut self, deadline: Option<StdInstant>) {
        self.deadline = deadline;
        let Some(entry) = &mut self.entry else {
            return;
        };
        let moved = match deadline.map(from_std_instant) {
            Some(Ok(at)) => entry.reset(at),
            // Never, or outside a run: nothing to wake.
            _ => false,
        };
        if !moved {
            // Fired already (or never): the next poll registers anew.
            self.entry = None;
        }
    }
}

impl fmt::Debug for TrioSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrioSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.entry.is_some())
            .finish()
    }
}

impl Future for TrioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(entry) = &mut this.entry {
            // Step 3: fired (or another run), or the waker refreshed.
            if entry.is_pending(cx.waker()) {
                return Poll::Pending;
            }
            this.entry = None;
            return Poll::Ready(());
        }
        let Some(deadline) = this.deadline else {
            // Never: nothing to register, nobody to wake.
            return Poll::Pending;
        };
        // Step 2 (outside a run: ready, see the module docs).
        match TimerEntry::new_std(deadline, cx.waker()) {
            Ok(entry) => {
                this.entry = Some(entry);
                Poll::Pending
            }
            Err(_) => Poll::Ready(()),
        }
    }
}

impl Sleep for TrioSleep {}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn the_timer_and_its_sleep_are_send_and_sync() {
        assert_send_sync::<TrioTimer>();
        assert_send_sync::<TrioSleep>();
    }

    /// Sleeps fire at their deadline (virtual time), a reset one at its
    /// new deadline (without being polled in between), an expired one
    /// without time passing; a dropped sleep wakes nobody; a second run
    /// on the same thread works the same (its own clock anchor).
    #[test]
    fn sleeps_follow_the_mock_clock_resets_and_drops() {
        let run = || {
            trio::Runner::new()
                .clock(trio::testing::MockClock::autojump())
                .run(async {
                    let t0 = trio::current_time();
                    TrioTimer.sleep(Duration::from_secs(5)).await;
                    assert_eq!(trio::current_time() - t0, 5.0);

                    // Reset while registered: fires at the new deadline.
                    let mut sleep = TrioTimer.sleep(Duration::from_secs(100));
                    let polled = std::future::poll_fn(|cx| {
                        Poll::Ready(sleep.as_mut().poll(cx).is_pending())
                    })
                    .await;
                    assert!(polled);
                    TrioTimer.reset(&mut sleep, TrioTimer.now() + Duration::from_secs(2));
                    sleep.await;
                    assert_eq!(trio::current_time() - t0, 7.0);

                    // Already expired: ready without time passing.
                    TrioTimer.sleep_until(TrioTimer.now()).await;
                    assert_eq!(trio::current_time() - t0, 7.0);

                    // Dropped while registered: its deadline wakes nobody
                    // (and the run still ends: nothing waits on it).
                    let mut sleep = TrioTimer.sleep(Duration::from_secs(1));
                    let _ = std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
                    drop(sleep);
                    trio::sleep(3.0).await?;
                    assert_eq!(trio::current_time() - t0, 10.0);
                    Ok(())
                })
                .unwrap()
        };
        run();
        run();
    }
}
