//! The FIFO wait queue every primitive in [`sync`](crate::sync) is built on,
//! and its public face, [`ParkingLot`] (Trio's `trio.lowlevel.ParkingLot`).
//!
//! # Design
//!
//! A queue is an `Rc<RefCell<…>>` holding a `VecDeque` of waiters in park
//! order. Each waiter has a sequence number from its queue's counter, so the
//! deque is always sorted by sequence number and a waiter that gives up
//! (cancelled, or its future dropped) finds its entry by binary search.
//!
//! Every wait is a [`Park`] from the low-level API. Its abort function finds
//! the waiter through a small shared `Home` record that says which queue the
//! waiter is in *now*: [`ParkingLot::repark`] moves waiters between queues
//! (a `Condition` moves its waiters onto its lock's queue), so the queue a
//! task parked on is not necessarily the one it must leave.
//!
//! # Invariants
//!
//! - A waiter is in at most one queue; `Home::at` names it (or is `None`
//!   once the waiter was unparked or the queue broken).
//! - Unparking takes the waiters out of the queue, and lets the primitive
//!   record what it hands them (`hand_over`), *before* rescheduling any of
//!   them, with no borrow held: a rescheduled waiter is never found by a
//!   later unpark, and whatever `reschedule` calls out to (instrument hooks,
//!   foreign wakers) finds the queue and the primitive already in their new
//!   state, free to use.
//! - A waiter whose wait is stale (made in a run that has ended, by a
//!   future that was leaked) cannot be woken: `reschedule` returns false and
//!   does nothing. The primitive undoes its hand-off (`take_back`) and the
//!   next waiter is tried.
//! - A waiter whose wake-up carried something (a lock's ownership, a
//!   semaphore unit, a limiter token) and whose future is dropped before it
//!   saw the wake-up hands that thing back through the queue's *lost
//!   wake-up handler* (see `AbortReason::Dropped { rescheduled: true }`):
//!   nothing is ever leaked by dropping a future.
//! - Abort functions and lost wake-up handlers never run inside a borrow of
//!   a queue (the runtime calls them on the waiting task's own poll or drop).

use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::{Abort, AbortReason, Park, Task, WaitKey, reschedule, try_current_task};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::rc::{Rc, Weak};

/// What a parked task waits in and where the user asked for it: shown by
/// the task tree and deadlock reports ("waiting in {label} at {location}").
/// Public blocking methods capture it with `#[track_caller]` before their
/// future is built, so the location is the user's call, not trio's.
#[derive(Copy, Clone, Debug)]
pub(crate) struct WaitSite {
    pub(crate) label: &'static str,
    pub(crate) location: &'static Location<'static>,
}

impl WaitSite {
    /// `label` at the location of the caller (of the `#[track_caller]`
    /// chain this is called from).
    #[track_caller]
    pub(crate) fn new(label: &'static str) -> Self {
        WaitSite {
            label,
            location: Location::caller(),
        }
    }
}

/// Called with a waiter's payload when a wake-up that handed it something
/// was lost because the waiting future was dropped first.
pub(crate) type LostHandler<P> = Rc<dyn Fn(P)>;

struct Entry<P> {
    seq: u64,
    key: WaitKey,
    payload: P,
    home: Rc<Home<P>>,
}

/// A queue and a waiter's sequence number in it.
type Place<P> = (Weak<RefCell<Inner<P>>>, u64);

/// Where a waiter is now; shared between the queue entry and the waiter's
/// abort function.
struct Home<P> {
    at: RefCell<Option<Place<P>>>,
    /// Set by an unpark whose queue has a lost wake-up handler.
    lost: RefCell<Option<(LostHandler<P>, P)>>,
}

struct Inner<P> {
    waiters: VecDeque<Entry<P>>,
    next_seq: u64,
    /// `Some(by)` once broken.
    broken_by: Option<Option<Task>>,
    on_lost: Option<LostHandler<P>>,
}

/// A FIFO queue of parked tasks, each carrying a payload `P` that the
/// unparker gets back (the task to make a lock's owner, the borrower to give
/// a limiter token to, …). Cheap to clone: clones share the queue.
pub(crate) struct WaitQueue<P> {
    inner: Rc<RefCell<Inner<P>>>,
}

impl<P> Clone for WaitQueue<P> {
    fn clone(&self) -> Self {
        WaitQueue {
            inner: self.inner.clone(),
        }
    }
}

fn position<P>(waiters: &VecDeque<Entry<P>>, seq: u64) -> Option<usize> {
    waiters.binary_search_by_key(&seq, |e| e.seq).ok()
}

impl<P: Clone + 'static> WaitQueue<P> {
    pub(crate) fn new() -> Self {
        WaitQueue {
            inner: Rc::new(RefCell::new(Inner {
                waiters: VecDeque::new(),
                next_seq: 0,
                broken_by: None,
                on_lost: None,
            })),
        }
    }

    /// A queue whose wake-ups hand something over: `on_lost` gets it back
    /// if the woken future is dropped before it runs.
    pub(crate) fn with_lost_handler(on_lost: LostHandler<P>) -> Self {
        let q = Self::new();
        q.inner.borrow_mut().on_lost = Some(on_lost);
        q
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.borrow().waiters.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.inner.borrow().waiters.is_empty()
    }

    pub(crate) fn broken_by(&self) -> Option<Option<Task>> {
        self.inner.borrow().broken_by
    }

    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    fn broken_error(by: Option<Task>) -> Error {
        let msg = match by.and_then(|t| t.name()) {
            Some(name) => format!("this parking lot was broken by task {name}"),
            None => "this parking lot is broken".to_string(),
        };
        Error::new(ErrorKind::Broken, msg)
    }

    /// Parks the current task with `payload` until unparked (`Ok`),
    /// cancelled (`Cancelled`, and the task is out of the queue: no effect)
    /// or the queue is broken (`Broken`). Not a checkpoint by itself beyond
    /// the park: a cancelled caller returns `Cancelled` on the first poll.
    /// `site` says what the task waits in, for the task tree.
    pub(crate) async fn park(&self, payload: P, site: WaitSite) -> Result<()> {
        self.park_then(payload, site, || {}).await
    }

    /// [`park`](Self::park), calling `enqueued` once the waiter is in the
    /// queue (and before it blocks).
    pub(crate) async fn park_then(
        &self,
        payload: P,
        site: WaitSite,
        enqueued: impl FnOnce(),
    ) -> Result<()> {
        if let Some(by) = self.broken_by() {
            return Err(Self::broken_error(by));
        }
        let home: Rc<Home<P>> = Rc::new(Home {
            at: RefCell::new(None),
            lost: RefCell::new(None),
        });
        let abort_home = home.clone();
        let park = Park::new_at(site.label, site.location, move |_key, reason| {
            match reason {
                AbortReason::Cancelled | AbortReason::Dropped { rescheduled: false } => {
                    let at = abort_home.at.borrow_mut().take();
                    if let Some((queue, seq)) = at
                        && let Some(queue) = queue.upgrade()
                    {
                        let removed = {
                            let mut q = queue.borrow_mut();
                            position(&q.waiters, seq).and_then(|i| q.waiters.remove(i))
                        };
                        // Dropped outside the borrow: a payload's destructor
                        // may touch the queue.
                        drop(removed);
                    }
                }
                AbortReason::Dropped { rescheduled: true } => {
                    let lost = abort_home.lost.borrow_mut().take();
                    if let Some((handler, payload)) = lost {
                        handler(payload);
                    }
                }
            }
            Abort::Succeeded
        })?;
        {
            let mut q = self.inner.borrow_mut();
            let seq = q.next_seq;
            q.next_seq += 1;
            q.waiters.push_back(Entry {
                seq,
                key: park.key(),
                payload,
                home: home.clone(),
            });
            *home.at.borrow_mut() = Some((Rc::downgrade(&self.inner), seq));
        }
        enqueued();
        park.await
    }

    /// Wakes up to `n` waiters, oldest first, and returns their payloads.
    pub(crate) fn unpark(&self, n: usize) -> Vec<P> {
        self.unpark_with(n, |_| {}, |_| {})
    }

    /// Wakes up to `n` waiters, oldest first, and returns their payloads.
    /// They all leave the queue, and `hand_over` runs for each, before the
    /// first is rescheduled; a stale one gets `take_back` instead and does
    /// not count (see the module docs).
    pub(crate) fn unpark_with(
        &self,
        n: usize,
        mut hand_over: impl FnMut(&P),
        mut take_back: impl FnMut(&P),
    ) -> Vec<P> {
        let mut woken = Vec::new();
        while woken.len() < n {
            let leaving = self.take_oldest(n - woken.len());
            if leaving.is_empty() {
                break;
            }
            for e in &leaving {
                hand_over(&e.payload);
            }
            for e in leaving {
                if let Some(payload) = Self::wake(e, &mut take_back) {
                    woken.push(payload);
                }
            }
        }
        woken
    }

    /// Wakes the oldest waiter and returns its payload.
    pub(crate) fn unpark_one(&self) -> Option<P> {
        self.unpark_one_with(|_| {}, |_| {})
    }

    /// [`unpark_with`](Self::unpark_with) for one waiter, without
    /// allocating.
    pub(crate) fn unpark_one_with(
        &self,
        mut hand_over: impl FnMut(&P),
        mut take_back: impl FnMut(&P),
    ) -> Option<P> {
        loop {
            let e = self.take_oldest_one()?;
            hand_over(&e.payload);
            if let Some(payload) = Self::wake(e, &mut take_back) {
                return Some(payload);
            }
        }
    }

    /// Takes up to `n` waiters out of the queue, oldest first, ready to be
    /// woken.
    fn take_oldest(&self, n: usize) -> Vec<Entry<P>> {
        let (taken, on_lost): (Vec<Entry<P>>, _) = {
            let mut q = self.inner.borrow_mut();
            let n = n.min(q.waiters.len());
            (q.waiters.drain(..n).collect(), q.on_lost.clone())
        };
        for e in &taken {
            Self::leave(e, &on_lost);
        }
        taken
    }

    fn take_oldest_one(&self) -> Option<Entry<P>> {
        let (e, on_lost) = {
            let mut q = self.inner.borrow_mut();
            (q.waiters.pop_front()?, q.on_lost.clone())
        };
        Self::leave(&e, &on_lost);
        Some(e)
    }

    /// Marks a waiter as out of the queue and, if the queue hands something
    /// over, arms the waiter's lost wake-up handler.
    fn leave(e: &Entry<P>, on_lost: &Option<LostHandler<P>>) {
        *e.home.at.borrow_mut() = None;
        if let Some(handler) = on_lost {
            let old = e
                .home
                .lost
                .replace(Some((handler.clone(), e.payload.clone())));
            drop(old);
        }
    }

    /// Reschedules a waiter taken out of the queue: its payload, or `None`
    /// (after `take_back`) if its wait was stale.
    fn wake(e: Entry<P>, take_back: &mut impl FnMut(&P)) -> Option<P> {
        if reschedule(e.key, Ok(())) {
            return Some(e.payload);
        }
        // A stale wait (its run is gone): it gets nothing.
        let lost = e.home.lost.take();
        drop(lost);
        take_back(&e.payload);
        None
    }

    /// Moves up to `n` waiters (oldest first) to the back of `to`, in order.
    pub(crate) fn repark(&self, to: &WaitQueue<P>, n: usize) {
        if self.ptr_eq(to) {
            return;
        }
        let moved: Vec<Entry<P>> = {
            let mut q = self.inner.borrow_mut();
            let n = n.min(q.waiters.len());
            q.waiters.drain(..n).collect()
        };
        if moved.is_empty() {
            return;
        }
        if let Some(by) = to.broken_by() {
            Self::fail_all(moved, by);
            return;
        }
        let mut t = to.inner.borrow_mut();
        for mut e in moved {
            e.seq = t.next_seq;
            t.next_seq += 1;
            *e.home.at.borrow_mut() = Some((Rc::downgrade(&to.inner), e.seq));
            t.waiters.push_back(e);
        }
    }

    /// Breaks the queue: every waiter gets `Broken`, and so does every later
    /// `park`.
    pub(crate) fn break_queue(&self, by: Option<Task>) {
        let drained: Vec<Entry<P>> = {
            let mut q = self.inner.borrow_mut();
            if q.broken_by.is_some() {
                return;
            }
            q.broken_by = Some(by);
            q.waiters.drain(..).collect()
        };
        Self::fail_all(drained, by);
    }

    /// Wakes waiters already taken out of their queue with `Broken`: all
    /// are marked out of any queue before the first is rescheduled.
    fn fail_all(leaving: Vec<Entry<P>>, by: Option<Task>) {
        for e in &leaving {
            *e.home.at.borrow_mut() = None;
        }
        for e in leaving {
            reschedule(e.key, Err(Self::broken_error(by)));
        }
    }
}

/// A fair queue of parked tasks (Trio's `trio.lowlevel.ParkingLot`): the
/// building block of [`Lock`](crate::sync::Lock) and the other primitives
/// (but [`Event`](crate::sync::Event), which keeps a lighter list of its
/// own), public so you can build your own.
///
/// [`park`](ParkingLot::park) blocks the calling task until another task
/// [`unpark`](ParkingLot::unpark)s it; tasks are woken in the order they
/// parked (FIFO). A parked task that is cancelled leaves the queue and gets
/// `Cancelled`, without disturbing the order of the others. Clones are
/// handles to the same lot.
///
/// ```
/// use trio::sync::ParkingLot;
/// trio::run(async {
///     let lot = ParkingLot::new();
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async {
///             lot.park().await?; // blocks until unparked
///             Ok(())
///         });
///         trio::testing::wait_all_tasks_blocked().await?;
///         assert_eq!(lot.len(), 1);
///         assert_eq!(lot.unpark(1).len(), 1);
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct ParkingLot {
    pub(crate) queue: WaitQueue<Task>,
}

/// What [`ParkingLot::statistics`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkingLotStatistics {
    /// How many tasks are parked.
    pub tasks_waiting: usize,
    /// Whether the lot has been broken with [`ParkingLot::break_lot`].
    pub broken: bool,
}

impl Default for ParkingLot {
    fn default() -> Self {
        Self::new()
    }
}

impl ParkingLot {
    /// An empty lot.
    pub fn new() -> Self {
        ParkingLot {
            queue: WaitQueue::new(),
        }
    }

    /// Blocks the current task until it is unparked (`Ok`), its cancel
    /// scope is cancelled (`Cancelled`; it is then no longer in the lot), or
    /// the lot is broken ([`ErrorKind::Broken`]). Parking in a broken lot
    /// fails at once. The task tree shows the task as waiting in
    /// `ParkingLot.park` at the caller's location.
    #[track_caller]
    pub fn park(&self) -> impl Future<Output = Result<()>> + '_ {
        let site = WaitSite::new("ParkingLot.park");
        async move {
            let me = try_current_task()?;
            self.queue.park(me, site).await
        }
    }

    /// Wakes up to `n` parked tasks, oldest first, and returns them.
    pub fn unpark(&self, n: usize) -> Vec<Task> {
        self.queue.unpark(n)
    }

    /// Wakes every parked task, oldest first, and returns them.
    pub fn unpark_all(&self) -> Vec<Task> {
        self.queue.unpark(usize::MAX)
    }

    /// Moves up to `n` parked tasks (oldest first) to the back of `to`,
    /// without waking them: they wake when `to` unparks them. (This is how
    /// a [`Condition`](crate::sync::Condition) hands its waiters to its
    /// lock.) Reparking onto a broken lot wakes them with `Broken`;
    /// reparking onto the same lot does nothing.
    pub fn repark(&self, to: &ParkingLot, n: usize) {
        self.queue.repark(&to.queue, n)
    }

    /// Moves every parked task to `to` (see [`repark`](ParkingLot::repark)).
    pub fn repark_all(&self, to: &ParkingLot) {
        self.queue.repark(&to.queue, usize::MAX)
    }

    /// Breaks the lot: every parked task wakes with an
    /// [`ErrorKind::Broken`] error naming `by` (default: the current task),
    /// and so does every later [`park`](ParkingLot::park). Breaking twice
    /// does nothing more.
    pub fn break_lot(&self, by: Option<Task>) {
        let by = by.or_else(|| try_current_task().ok());
        self.queue.break_queue(by)
    }

    /// Whether the lot has been broken.
    pub fn is_broken(&self) -> bool {
        self.queue.broken_by().is_some()
    }

    /// The task named when the lot was broken, if any.
    pub fn broken_by(&self) -> Option<Task> {
        self.queue.broken_by().flatten()
    }

    /// How many tasks are parked.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no task is parked.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Debugging information.
    pub fn statistics(&self) -> ParkingLotStatistics {
        ParkingLotStatistics {
            tasks_waiting: self.len(),
            broken: self.is_broken(),
        }
    }
}

impl fmt::Debug for ParkingLot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParkingLot")
            .field("tasks_waiting", &self.len())
            .field("broken", &self.is_broken())
            .finish()
    }
}
