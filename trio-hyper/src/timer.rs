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
//! 2. *A sleep's first poll* registers the task's waker in the run's
//!    own timer table ([`TimerEntry`]: a slab entry and a queue or heap
//!    push, no allocation, the task's waker kept decoded), unless it
//!    recycles a registration (step 6). It reads no clock: the run loop
//!    fires the entry when it sees the deadline passed, at its next
//!    deadline check if it already has, and the sleep is ready from then
//!    on (never before its deadline).
//! 3. *Later polls* ask the entry whether it has fired, and make the
//!    waker they are given the one to wake.
//! 4. *Reset* ([`Timer::reset`]) moves the entry, keeping the waker, so a
//!    reset sleep fires at its new deadline even if hyper does not poll it
//!    again before then.
//! 5. Its poll never checks for cancellation (it is not a cancel point: a
//!    cancelled connection ends through its I/O, not its timers) and never
//!    parks its task. The MockClock's autojump and the deadlock detector
//!    see the entries as they see any trio sleep.
//! 6. *Recycling*: hyper drops its header-read sleep once a request's head
//!    is in, and arms a new one for the next head right after (in the same
//!    task step, for a keep-alive connection). So a sleep dropped while
//!    registered does not remove its entry: it leaves it in a one-slot
//!    spare of the thread (`SPARE`, the entry with the std deadline it
//!    fires at; a spare already there is dropped, which removes its
//!    entry). A sleep's first poll takes the spare when it fires no later
//!    than the sleep's own deadline and has not fired: it makes the
//!    spare's waker its own ([`TimerEntry::is_pending`]) and keeps the
//!    spare's earlier deadline, with no new entry and no push. Such a
//!    sleep may fire *early*: when it does, its poll reads the run's clock
//!    and, if its own deadline has not come, registers anew (a fresh
//!    entry at its own deadline) and stays pending. So a sleep is still
//!    never ready before its deadline; what recycling adds is one early
//!    wake-up per fresh registration's lifetime (hyper's 30 s) at most,
//!    and a spare left unused may wake the task of the sleep that left it
//!    once, at its deadline (a spurious wake-up, which futures allow).
//!    An unused spare is also a pending deadline of its run: a run that is
//!    otherwise deadlocked is reported once it has fired (under the
//!    MockClock with autojump the clock jumps there first; on the system
//!    clock the report comes up to that deadline, hyper's 30 s, later). A
//!    server waiting on its listener is never deadlocked, so this touches
//!    only a run that drops a registered sleep and then hangs.
//!
//! # Cost
//!
//! hyper arms a timer on every HTTP/1.1 request (its header-read
//! timeout): `now()`, `sleep_until` (hyper boxes it), a first poll, a
//! drop. On a busy keep-alive connection the first poll recycles the
//! entry the last request's sleep left (step 6: a thread-local take and
//! one borrow of the run's state, which changes nothing when the waker is
//! the same task's) and the drop leaves it (a thread-local store): about
//! 0.3k instructions per request in `benches/hello.rs` where a fresh
//! registration and its removal cost about 0.4k more. (Before either, a
//! run-local registry kept an ordered map of wakers, found through a
//! thread-local cache, with a driver task: about 1.8k.)
//!
//! Outside a run there is no clock to follow: `now()` is
//! `std::time::Instant::now()`, and a `TrioSleep` polled outside a run
//! (or in another run than the one it was first polled in) is ready at
//! once (a timer that fires early, never one that hangs: hyper only polls
//! its timers inside its connection futures, which must run in a trio
//! task anyway).

use hyper::rt::{Sleep, Timer};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
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
    /// Registered in the run's timer table (step 2), or recycled (step 6).
    registered: Option<Registration>,
}

/// A [`TrioSleep`]'s entry in the run's timer table, and the std instant
/// it fires at: the sleep's deadline, or earlier for a recycled entry
/// (step 6), whose firing is then checked against the clock. A dropped
/// sleep leaves it as the thread's spare.
struct Registration {
    entry: TimerEntry,
    fires_at: StdInstant,
}

thread_local! {
    /// The thread's one spare registration (step 6). Replacing it drops
    /// the old one, which removes its entry from its run's table.
    static SPARE: Cell<Option<Registration>> = const { Cell::new(None) };
}

impl TrioSleep {
    fn until(deadline: Option<StdInstant>) -> Self {
        TrioSleep {
            deadline,
            registered: None,
        }
    }

    /// Step 4: moves the deadline, keeping the registration's waker.
    fn reset(&mut self, deadline: Option<StdInstant>) {
        self.deadline = deadline;
        let Some(r) = &mut self.registered else {
            return;
        };
        let moved = match deadline.map(|d| (d, from_std_instant(d))) {
            Some((d, Ok(at))) if r.entry.reset(at) => Some(d),
            // Never, or outside a run: nothing to wake.
            _ => None,
        };
        match moved {
            Some(d) => r.fires_at = d,
            // Fired already (or never): the next poll registers anew.
            None => self.registered = None,
        }
    }

    /// Step 6: the thread's spare registration, if it fires no later than
    /// `deadline` and has not fired; `waker` is then the one it wakes. A
    /// spare that fires later stays; one that has fired (or is of another
    /// run) is dropped.
    fn take_spare(deadline: StdInstant, waker: &Waker) -> Option<Registration> {
        let mut spare = SPARE.try_with(Cell::take).ok().flatten()?;
        if spare.fires_at > deadline {
            // Unusable here, and maybe for the next sleep: kept.
            let _ = SPARE.try_with(|s| s.set(Some(spare)));
            return None;
        }
        spare.entry.is_pending(waker).then_some(spare)
    }
}

impl fmt::Debug for TrioSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrioSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.registered.is_some())
            .finish()
    }
}

impl Future for TrioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(r) = &mut this.registered {
            // Step 3: fired (or another run), or the waker refreshed.
            if r.entry.is_pending(cx.waker()) {
                return Poll::Pending;
            }
            let early = this.deadline.is_some_and(|d| r.fires_at < d);
            this.registered = None;
            // Step 6: a recycled entry fired before our deadline: has it
            // come? (Else register anew, below.)
            if !early || this.deadline.is_some_and(|d| TrioTimer.now() >= d) {
                return Poll::Ready(());
            }
        }
        let Some(deadline) = this.deadline else {
            // Never: nothing to register, nobody to wake.
            return Poll::Pending;
        };
        if let Some(spare) = TrioSleep::take_spare(deadline, cx.waker()) {
            this.registered = Some(spare);
            return Poll::Pending;
        }
        // Step 2 (outside a run: ready, see the module docs).
        match TimerEntry::new_std(deadline, cx.waker()) {
            Ok(entry) => {
                this.registered = Some(Registration {
                    entry,
                    fires_at: deadline,
                });
                Poll::Pending
            }
            Err(_) => Poll::Ready(()),
        }
    }
}

impl Drop for TrioSleep {
    /// Step 6: a registration not known to have fired becomes the
    /// thread's spare (the one there before is dropped: its entry is
    /// removed). While the thread's locals are being destroyed it is
    /// simply dropped.
    fn drop(&mut self) {
        let Some(spare) = self.registered.take() else {
            return;
        };
        // The old spare is dropped outside the thread-local's access.
        let old = SPARE.try_with(|s| s.replace(Some(spare)));
        drop(old);
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
    /// without time passing; a dropped sleep delays nothing; a second run
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

                    // Dropped while registered: its entry is the thread's
                    // spare (step 6), and its deadline at most wakes this
                    // task once, spuriously, inside `trio::sleep` (and the
                    // run still ends: nothing waits on it).
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

    /// Polls `sleep` once, which registers it; it must still be pending.
    async fn poll_once_pending(sleep: &mut Pin<Box<dyn Sleep>>) {
        let polled = std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
        assert!(polled.is_pending());
    }

    /// A sleep of `first`, polled once (registered), then reset to the
    /// deadline `to()` gives after that poll, and awaited.
    async fn reset_after_first_poll(first: Duration, to: impl FnOnce() -> StdInstant) {
        let mut sleep = TrioTimer.sleep(first);
        poll_once_pending(&mut sleep).await;
        TrioTimer.reset(&mut sleep, to());
        sleep.await;
    }

    /// Polls `sleep` once (registering it) and drops it: its entry becomes
    /// the thread's spare (step 6).
    async fn leave_spare(mut sleep: Pin<Box<dyn Sleep>>) {
        poll_once_pending(&mut sleep).await;
    }

    /// Step 6: a sleep that recycles an earlier-firing spare is woken at
    /// the spare's deadline but is not ready before its own; a spare that
    /// fires later than a sleep's deadline is not used by it; the run's
    /// clock (virtual here) decides throughout.
    #[test]
    fn a_recycled_registration_never_makes_a_sleep_early() {
        trio::Runner::new()
            .clock(trio::testing::MockClock::autojump())
            .run(async {
                let t0 = trio::current_time();
                leave_spare(TrioTimer.sleep(Duration::from_secs(1))).await;
                // Recycles the entry that fires at 1 s, and waits to 5 s.
                TrioTimer.sleep(Duration::from_secs(5)).await;
                assert_eq!(trio::current_time() - t0, 5.0);

                // A spare firing at 5 + 10 s is no use to a 2 s sleep.
                leave_spare(TrioTimer.sleep(Duration::from_secs(10))).await;
                TrioTimer.sleep(Duration::from_secs(2)).await;
                assert_eq!(trio::current_time() - t0, 7.0);

                // That spare (15 s) is recycled by a 20 s sleep, reset to
                // 12 s (exact: the entry moves): ready at 7 + 12 s.
                reset_after_first_poll(Duration::from_secs(20), || {
                    TrioTimer.now() + Duration::from_secs(12)
                })
                .await;
                assert_eq!(trio::current_time() - t0, 19.0);
                Ok(())
            })
            .unwrap();
    }

    /// Runs `f` on a MockClock (autojump) and returns what it returns.
    fn mock_run<F: Future<Output = trio::Result<()>>>(f: F) {
        trio::Runner::new()
            .clock(trio::testing::MockClock::autojump())
            .run(f)
            .unwrap();
    }

    /// Step 6 across runs: a spare left by a run that has ended is of no
    /// use to the next run on the thread (its entry belongs to a dead
    /// run's table): the next run's sleeps fire at their own deadlines,
    /// whether the stale spare fires before them (it is taken, found not
    /// pending there and dropped, touching nothing) or after (kept), and
    /// whichever clocks the two runs have (MockClock, system).
    #[test]
    fn a_spare_of_an_ended_run_is_not_used_by_the_next_run() {
        // Ends with its spare (1 s) still registered.
        mock_run(async {
            leave_spare(TrioTimer.sleep(Duration::from_secs(1))).await;
            Ok(())
        });
        mock_run(async {
            let t0 = trio::current_time();
            // The stale spare fires (in std terms) long before: taken and
            // dropped, this sleep registers its own entry.
            TrioTimer.sleep(Duration::from_secs(100)).await;
            assert_eq!(trio::current_time() - t0, 100.0);
            // A spare of this run, then an already-expired sleep.
            leave_spare(TrioTimer.sleep(Duration::from_secs(3600))).await;
            TrioTimer.sleep_until(TrioTimer.now()).await;
            assert_eq!(trio::current_time() - t0, 100.0);
            Ok(())
        });
        // A spare of a run whose std instants are far ahead (a MockClock
        // that jumped a year) is kept by every earlier sleep of the next
        // run, and never used by it.
        mock_run(async {
            trio::sleep(365.0 * 86400.0).await?;
            leave_spare(TrioTimer.sleep(Duration::from_secs(1))).await;
            Ok(())
        });
        mock_run(async {
            let t0 = trio::current_time();
            TrioTimer.sleep(Duration::from_secs(2)).await;
            assert_eq!(trio::current_time() - t0, 2.0);
            Ok(())
        });
        // A system-clock run's spare (it ends at once, the spare's entry
        // pending), taken and dropped by a MockClock run's first sleep.
        trio::run(async {
            leave_spare(TrioTimer.sleep(Duration::from_secs(1))).await;
            Ok(())
        })
        .unwrap();
        mock_run(async {
            let t0 = trio::current_time();
            TrioTimer.sleep(Duration::from_secs(100)).await;
            assert_eq!(trio::current_time() - t0, 100.0);
            Ok(())
        });
    }

    /// Step 6: the spare's entry wakes the task that left it at most once,
    /// and a task that has exited is woken for nothing (its waker names a
    /// task generation that is gone); the task that recycles it is the
    /// one woken, never before its own deadline.
    #[test]
    fn a_spare_left_by_an_exited_task_wakes_nobody_else() {
        mock_run(async {
            let t0 = trio::current_time();
            trio::open_nursery(async |nursery| {
                nursery.start_soon(async {
                    leave_spare(TrioTimer.sleep(Duration::from_secs(1))).await;
                    Ok(())
                });
                Ok(())
            })
            .await?;
            // The spare (1 s) fires with its task gone; these tasks
            // (maybe in its slot) sleep on, undisturbed.
            trio::open_nursery(async |nursery| {
                nursery.start_soon(async move {
                    trio::sleep(3.0).await?;
                    assert_eq!(trio::current_time() - t0, 3.0);
                    Ok(())
                });
                nursery.start_soon(async move {
                    TrioTimer.sleep(Duration::from_secs(4)).await;
                    assert_eq!(trio::current_time() - t0, 4.0);
                    Ok(())
                });
                Ok(())
            })
            .await?;
            assert_eq!(trio::current_time() - t0, 4.0);
            Ok(())
        });
    }

    /// `TrioSleep` is `Send`: one registered in a run and dropped on
    /// another thread leaves that thread a spare of a run it is not in
    /// (touching nothing, dropped when the thread's locals are); the run
    /// goes on, its later sleeps exact, and ends.
    #[test]
    fn a_sleep_dropped_on_another_thread_leaves_the_run_alone() {
        mock_run(async {
            let t0 = trio::current_time();
            let mut sleep = TrioTimer.sleep(Duration::from_secs(1));
            let polled = std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
            let other = std::thread::spawn(move || {
                drop(sleep);
                // Outside a run a first poll is ready at once (and meets
                // the spare, of a run not current here).
                let mut outside = TrioTimer.sleep(Duration::from_secs(3600));
                let waker = std::task::Waker::noop();
                let ready = outside
                    .as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_ready();
                drop(outside);
                ready
            });
            assert!(other.join().expect("the other thread"));
            TrioTimer.sleep(Duration::from_secs(5)).await;
            assert_eq!(trio::current_time() - t0, 5.0);
            Ok(())
        });
    }

    /// Step 6, early firing: a sleep that recycles an earlier entry is
    /// woken early, re-registers, and is ready exactly at its own
    /// deadline, over a chain of recyclings; a recycled sleep reset to a
    /// deadline already past is ready without time passing, and so is an
    /// expired sleep meeting a later spare.
    #[test]
    fn recycled_entries_make_sleeps_neither_early_nor_late() {
        mock_run(async {
            let t0 = trio::current_time();
            let mut at = 0.0;
            for i in 1..=5u64 {
                // Each leaves a spare that the next sleep recycles.
                leave_spare(TrioTimer.sleep(Duration::from_secs(i))).await;
                TrioTimer.sleep(Duration::from_secs(2 * i)).await;
                at += 2.0 * i as f64;
                assert_eq!(trio::current_time() - t0, at);
            }
            leave_spare(TrioTimer.sleep(Duration::from_secs(1))).await;
            reset_after_first_poll(Duration::from_secs(20), || {
                TrioTimer.now() - Duration::from_secs(1)
            })
            .await;
            assert_eq!(trio::current_time() - t0, at);

            leave_spare(TrioTimer.sleep(Duration::from_secs(50))).await;
            TrioTimer
                .sleep_until(TrioTimer.now() - Duration::from_secs(1))
                .await;
            assert_eq!(trio::current_time() - t0, at);
            // The spare (50 s) is still there, recycled by a 60 s sleep.
            TrioTimer.sleep(Duration::from_secs(60)).await;
            assert_eq!(trio::current_time() - t0, at + 60.0);
            Ok(())
        });
    }

    /// Step 5: a `TrioSleep` is not a cancel point. Polled (plainly, by
    /// `.await` on hyper's boxed `Sleep`) inside a scope cancelled before
    /// it starts, it still waits for its deadline, and a reset one for its
    /// new deadline; it completes no checkpoint of its task (so none that
    /// could raise `Cancelled`). The scope's cancellation is observed at
    /// the next real checkpoint, and the scope catches it.
    #[trio::test(autojump)]
    async fn a_sleep_in_a_cancelled_scope_still_waits_for_its_deadline() -> trio::Result<()> {
        let t0 = trio::current_time();
        let scope = trio::CancelScope::new();
        scope.cancel();
        let got = scope
            .run(async {
                let watch = trio::lowlevel::watch_checkpoints()?;
                TrioTimer.sleep(Duration::from_secs(5)).await;
                assert_eq!(trio::current_time() - t0, 5.0);

                // Reset while registered, in the cancelled scope: fires
                // at the new deadline (later than the first), not before.
                reset_after_first_poll(Duration::from_secs(100), || {
                    TrioTimer.now() + Duration::from_secs(2)
                })
                .await;
                assert_eq!(trio::current_time() - t0, 7.0);

                // No checkpoint at all so far: the sleeps are not ones.
                assert_eq!(watch.counts(), trio::lowlevel::CheckpointCounts::default());
                // The next real checkpoint sees the cancellation.
                let err = trio::checkpoint().await.unwrap_err();
                assert!(err.is_cancelled());
                Err::<(), _>(err)
            })
            .await?;
        assert_eq!(got, None);
        assert!(scope.cancelled_caught());
        assert_eq!(trio::current_time() - t0, 7.0);
        Ok(())
    }

    /// Step 5, with the cancellation arriving while the task waits on a
    /// `TrioSleep`: another task cancels the scope at 1 s; the sleep (due
    /// at 5 s) is not cut short (whatever wake-up the cancellation makes,
    /// its poll stays pending until the deadline), then the next
    /// checkpoint raises `Cancelled`.
    #[trio::test(autojump)]
    async fn a_sleep_is_not_cut_short_by_a_cancel_while_it_waits() -> trio::Result<()> {
        let t0 = trio::current_time();
        let scope = trio::CancelScope::new();
        trio::open_nursery(async |nursery| {
            nursery.start_soon(async {
                trio::sleep(1.0).await?;
                scope.cancel();
                Ok(())
            });
            let got = scope
                .run(async {
                    TrioTimer.sleep(Duration::from_secs(5)).await;
                    assert_eq!(trio::current_time() - t0, 5.0);
                    assert!(scope.cancel_called());
                    let err = trio::checkpoint().await.unwrap_err();
                    assert!(err.is_cancelled());
                    Err::<(), _>(err)
                })
                .await?;
            assert_eq!(got, None);
            assert!(scope.cancelled_caught());
            Ok(())
        })
        .await?;
        assert_eq!(trio::current_time() - t0, 5.0);
        Ok(())
    }

    /// A spare's entry is a deadline of the run: a run that is otherwise
    /// deadlocked is woken once at it (a spurious wake-up; the MockClock
    /// jumps there), then reported deadlocked as before.
    #[test]
    fn a_spare_delays_but_does_not_hide_a_deadlock() {
        let err = trio::Runner::new()
            .clock(trio::testing::MockClock::autojump())
            .run(async {
                leave_spare(TrioTimer.sleep(Duration::from_secs(30))).await;
                trio::sleep_forever().await
            })
            .unwrap_err();
        assert_eq!(err.kind(), trio::ErrorKind::Deadlock);
    }
}
