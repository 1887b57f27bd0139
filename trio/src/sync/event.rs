//! [`Event`]: a one-shot flag tasks can wait for.
//!
//! A flag plus a list of waits: `set` raises the flag and wakes every
//! waiter at once; once set, an event stays set (as in Trio, there is no
//! `clear`: make a new event instead, which avoids the classic lost-wake-up
//! races of resettable events).
//!
//! # Design
//!
//! An event needs less than the general [`WaitQueue`](super::WaitQueue):
//! its waits carry nothing, are never moved to another queue, and are all
//! woken together. So a waiter is just its wait's key in a `Vec`, in the
//! order the waits began, and the waiting future ([`EventWait`]) is a
//! small hand-written state machine around a [`Park`] whose abort function
//! is an empty closure (zero bytes; no shared record per waiter): a blocked
//! task costs the event one key.
//!
//! # Invariants
//!
//! - While the flag is down, `keys` holds the key of every wait blocked in
//!   this event, in the order they began, plus stale keys of waits that
//!   ended without `set` (cancelled, or their future dropped): those leave
//!   their key behind (lazy deletion, like the cancel statuses' park lists)
//!   and only decrement `live`, which is therefore exact.
//! - The keys are of waits of one run, `run_id` (a key is a park's key,
//!   without the run id every key would repeat). A wait of another run
//!   replaces the list: runs on a thread do not overlap (they cannot be
//!   nested), so the old run has ended and none of its waits can be woken.
//! - Stale keys are harmless (rescheduling one does nothing: keys carry a
//!   generation) and are dropped when they outnumber the live ones, so the
//!   list stays within `2 * live + 8` entries after every wait that ends.
//! - `set` raises the flag and takes the whole list before waking anyone,
//!   with no borrow held while it wakes: from then on no wait is listed and
//!   `live` is 0, so a wait that ends after `set` has nothing to remove.

use crate::core::park::{ParkId, Yield, register_plain, reschedule_all, retain_waiting};
use crate::error::{Error, Result};
use crate::lowlevel::{Abort, AbortReason, Park, WaitKey};
use crate::time::Instant;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

struct Inner {
    flag: Cell<bool>,
    /// The waits blocked in `wait` (see the module docs' invariants).
    waiters: RefCell<Waiters>,
}

struct Waiters {
    /// Keys of the waits, oldest first, stale ones included.
    keys: Vec<ParkId>,
    /// The run the keys belong to.
    run_id: u32,
    /// How many of `keys` are waits still blocked here.
    live: usize,
}

impl Inner {
    /// A wait listed in this event ended without `set` (cancelled or
    /// dropped): one fewer live key, and the stale ones are dropped once
    /// they outnumber the live ones.
    fn wait_ended(&self) {
        if self.flag.get() {
            // `set` already took the list.
            return;
        }
        let mut w = self.waiters.borrow_mut();
        w.live = w.live.saturating_sub(1);
        if w.keys.len() > 2 * w.live + 8 {
            let run_id = w.run_id;
            retain_waiting(run_id, &mut w.keys);
        }
    }
}

/// A one-shot event (Trio's `trio.Event`): tasks [`wait`](Event::wait)
/// until some task calls [`set`](Event::set). Clones are handles to the same
/// event.
///
/// ```
/// use trio::sync::Event;
/// trio::run(async {
///     let ready = Event::new();
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async {
///             ready.wait().await?; // blocks until set
///             Ok(())
///         });
///         ready.set(); // synchronous; wakes every waiter
///         Ok(())
///     })
///     .await?;
///     assert!(ready.is_set());
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Rc<Inner>,
}

/// What [`Event::statistics`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventStatistics {
    /// How many tasks are blocked in [`Event::wait`].
    pub tasks_waiting: usize,
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// An event that is not set.
    pub fn new() -> Self {
        Event {
            inner: Rc::new(Inner {
                flag: Cell::new(false),
                waiters: RefCell::new(Waiters {
                    keys: Vec::new(),
                    run_id: 0,
                    live: 0,
                }),
            }),
        }
    }

    /// Sets the event and wakes every waiting task. Synchronous, not a
    /// checkpoint; setting an event that is already set does nothing.
    pub fn set(&self) {
        if !self.inner.flag.replace(true) {
            let (run_id, keys) = {
                let mut w = self.inner.waiters.borrow_mut();
                w.live = 0;
                (w.run_id, std::mem::take(&mut w.keys))
            };
            // No borrow held: a woken task may use the event at once.
            reschedule_all(run_id, &keys);
        }
    }

    /// Whether the event has been set.
    pub fn is_set(&self) -> bool {
        self.inner.flag.get()
    }

    /// Waits until the event is set. A checkpoint, even if the event is
    /// already set (so a loop around it stays cancellable and fair).
    /// `Cancelled` if cancelled while waiting. The task tree shows a
    /// blocked task as waiting in `Event.wait` at the caller's location.
    #[track_caller]
    pub fn wait(&self) -> impl Future<Output = Result<()>> + '_ {
        EventWait {
            event: &self.inner,
            state: WaitState::Start(Location::caller(), no_abort()),
        }
    }

    /// Debugging information.
    pub fn statistics(&self) -> EventStatistics {
        EventStatistics {
            tasks_waiting: self.inner.waiters.borrow().live,
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("tasks_waiting", &self.inner.waiters.borrow().live)
            .finish()
    }
}

/// The abort function of an `Event` wait: nothing to undo (a cancelled or
/// dropped wait leaves a stale key, see the module docs). A closure that
/// captures nothing, so the `Park` holding it is no bigger than its key.
fn no_abort() -> impl FnMut(WaitKey, AbortReason) -> Abort + Copy {
    |_, _| Abort::Succeeded
}

/// The future of [`Event::wait`].
struct EventWait<'a, A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort + Copy,
{
    event: &'a Inner,
    state: WaitState<A>,
}

enum WaitState<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort + Copy,
{
    /// Not polled yet: the first poll decides between a checkpoint (the
    /// event is set) and a wait. The caller's location, for the task tree,
    /// is kept here only (so it shares its room with the wait).
    Start(&'static Location<'static>, A),
    /// The event was set: a checkpoint.
    Checkpoint(Yield),
    /// Blocked, with its key in the event's list (until `set`).
    Waiting(Park<A>),
    Done,
}

// Nothing in it is pinned structurally: the state is moved freely.
impl<A> Unpin for EventWait<'_, A> where A: FnMut(WaitKey, AbortReason) -> Abort + Copy {}

impl<A> Future for EventWait<'_, A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort + Copy,
{
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let r = match &mut this.state {
            WaitState::Start(..) if this.event.flag.get() => {
                let mut y = Yield::checkpoint();
                let r = Pin::new(&mut y).poll(cx);
                this.state = WaitState::Checkpoint(y);
                r
            }
            WaitState::Start(location, abort) => {
                match register_plain("Event.wait", location, |_| Instant::INFINITY, cx) {
                    Ok(key) => {
                        let mut w = this.event.waiters.borrow_mut();
                        if w.run_id != key.run_id {
                            w.keys.clear();
                            w.run_id = key.run_id;
                        }
                        crate::core::slab::push_capped(&mut w.keys, key.park);
                        w.live += 1;
                        drop(w);
                        this.state = WaitState::Waiting(Park::registered(key, *abort));
                        return Poll::Pending;
                    }
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
            WaitState::Checkpoint(y) => Pin::new(y).poll(cx),
            WaitState::Waiting(park) => {
                let r = park.poll_plain(cx);
                if let Poll::Ready(Err(_)) = r {
                    // Cancelled (or misused): `set` did not end it.
                    this.event.wait_ended();
                }
                r
            }
            WaitState::Done => {
                return Poll::Ready(Err(Error::usage(
                    "Event::wait was polled after it completed",
                )));
            }
        };
        if r.is_ready() {
            this.state = WaitState::Done;
        }
        r
    }
}

impl<A> Drop for EventWait<'_, A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort + Copy,
{
    fn drop(&mut self) {
        if let WaitState::Waiting(park) = std::mem::replace(&mut self.state, WaitState::Done) {
            // Its record goes first, so the list's clean-up sees it gone.
            drop(park);
            self.event.wait_ended();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::wait_all_tasks_blocked;
    use std::cell::RefCell;
    use std::task::Waker;

    /// Waits that end without `set` (cancelled, or their future dropped)
    /// leave stale keys behind: the count stays exact and the list bounded.
    #[test]
    fn ended_waits_keep_the_count_exact_and_the_list_bounded() {
        crate::run(async {
            let ev = Event::new();
            for round in 0..50 {
                crate::open_nursery(async |n| {
                    n.start_soon(ev.wait());
                    n.start_soon(ev.wait());
                    wait_all_tasks_blocked().await?;
                    assert_eq!(ev.statistics().tasks_waiting, 2);
                    n.cancel_scope().cancel();
                    Ok(())
                })
                .await?;
                // A wait polled once, then dropped.
                let mut dropped = Box::pin(ev.wait());
                let mut cx = Context::from_waker(Waker::noop());
                assert!(dropped.as_mut().poll(&mut cx).is_pending());
                assert_eq!(ev.statistics().tasks_waiting, 1);
                drop(dropped);
                assert_eq!(ev.statistics().tasks_waiting, 0, "round {round}");
                assert!(ev.inner.waiters.borrow().keys.len() <= 8);
            }
            Ok(())
        })
        .unwrap();
    }

    /// `set` wakes the waits in the order they began, each once, and a
    /// later wait is a checkpoint.
    #[test]
    fn set_wakes_waiters_in_order() {
        crate::run(async {
            let ev = Event::new();
            let order = RefCell::new(Vec::new());
            crate::open_nursery(async |n| {
                for i in 0..5 {
                    let (ev, order) = (&ev, &order);
                    n.start_soon(async move {
                        ev.wait().await?;
                        order.borrow_mut().push(i);
                        crate::Result::Ok(())
                    });
                    wait_all_tasks_blocked().await?;
                }
                ev.set();
                ev.set();
                Ok(())
            })
            .await?;
            assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
            let counts = crate::lowlevel::checkpoint_counts()?;
            ev.wait().await?;
            let after = crate::lowlevel::checkpoint_counts()?;
            assert_eq!(after.schedule_points, counts.schedule_points + 1);
            Ok(())
        })
        .unwrap();
    }

    /// An event outlives a run: a wait leaked in one run is never woken,
    /// and the next run's waits are listed and woken as usual.
    #[test]
    fn an_event_serves_run_after_run() {
        let ev = Event::new();
        crate::run(async {
            let mut leaked = Box::pin(ev.wait());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(leaked.as_mut().poll(&mut cx).is_pending());
            std::mem::forget(leaked);
            Ok(())
        })
        .unwrap();
        assert_eq!(ev.statistics().tasks_waiting, 1); // the leaked wait
        crate::run(async {
            crate::open_nursery(async |n| {
                n.start_soon(ev.wait());
                wait_all_tasks_blocked().await?;
                assert_eq!(ev.inner.waiters.borrow().keys.len(), 1);
                ev.set();
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
        assert_eq!(ev.statistics().tasks_waiting, 0);
    }

    /// A blocked task's wait is part of its future: keep it from growing by
    /// accident (a reference, and a park key with its flags, sharing their
    /// room with the caller's location).
    #[test]
    fn the_wait_future_stays_small() {
        let ev = Event::new();
        assert!(size_of_val(&ev.wait()) <= 24);
    }
}
