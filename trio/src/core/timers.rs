//! The run's deadlines: a binary heap with lazy deletion, and the
//! public [`TimerEntry`] (a waker woken at a deadline) and std-clock
//! conversions built on it.
//!
//! Cancel-scope deadlines, timed waits and timer entries push an entry;
//! nothing is ever removed from the middle. When a scope exits, a wait ends
//! early or a timer entry is dropped, its heap entry simply becomes stale:
//! the owner says so with [`Timers::note_stale`], and a stale entry is
//! recognised (its target is gone, or has another deadline) when it
//! reaches the top. When stale entries outnumber live ones the heap is
//! rebuilt with only the live ones, so a loop that opens a million
//! timeouts that never fire keeps a heap of a handful of entries and never
//! allocates after warming up. Ties are broken by insertion order, so
//! equal deadlines fire first-in first-out. Entries that arrive in
//! deadline order (most: a timeout is "now plus a constant") skip the heap
//! for a FIFO queue (`Timers::queue`), O(1) to push and pop; the two are
//! read as one.
//!
//! The heap itself knows nothing of its targets: the `impl State` below
//! decides whether an entry is live (its cancel status, park or timer
//! entry still has that deadline and has not been cancelled, rescheduled
//! or dropped) and fires it.
//!
//! # Timer entries (for foreign timers)
//!
//! A [`TimerEntry`] is a waker in the run's own timer table (`Timers::
//! wakers`, a slab) with a heap entry: the run loop wakes it when its
//! deadline passes, exactly as it fires a timed wait, so the MockClock's
//! autojump and the deadlock detector see it as they see any sleep (a task
//! waiting on one is not deadlocked: its deadline will wake it). It is for
//! foreign timers that are polled, not awaited as trio sleeps (hyper's
//! `Sleep` in `trio-hyper`, one per HTTP/1.1 request): registering costs a
//! slab insert and a push on the in-order queue (or the heap, for a
//! deadline earlier than the queue's last), dropping a slab remove (the
//! queued entry goes stale), and no task, map or allocation is involved.
//! Invariants:
//!
//! - An entry's slab slot exists from [`TimerEntry::new`] until it fires
//!   (the run loop removes it and wakes its waker once) or the
//!   `TimerEntry` is dropped, whichever comes first (a reset keeps the
//!   slot and moves the deadline); a fired or dropped entry's key never
//!   matches again (slab generations). A `TimerEntry` dropped on another
//!   thread touches nothing: its slot stays until its deadline fires (a
//!   wake-up for nothing), or until the run ends for an infinite one.
//! - The waker is kept as a [`WakeTarget`]: a task's own decoded (no
//!   counted waker, so it does not count as held outside the run), a
//!   foreign one cloned and woken after the state borrow.
//! - A `TimerEntry` is plain data (run id and key), `Send + Sync`; used
//!   outside its run (another thread, a later run) it touches nothing.
//!
//! # The run's clock as `std::time::Instant`s
//!
//! Foreign timers speak `std::time::Instant`. [`std_instant_now`] and
//! [`from_std_instant`] map between it and the run's clock with one fixed
//! anchor per run (the two clocks read together at first use), so the
//! mapping follows a [`MockClock`](crate::testing::MockClock), jumps
//! included, and converting the same std instant twice gives the same run
//! instant (comparisons made on either side agree). A clock that reads the
//! system's monotonic clock from a fixed origin (`SystemClock`, through
//! [`Clock::std_origin`]) is anchored at that origin instead, so the
//! mapping is exact and [`std_instant_now`] is just
//! `std::time::Instant::now()`: hyper reads it per request.
//!
//! [`Clock::std_origin`]: crate::core::clock::Clock::std_origin

use crate::core::park::ParkState;
use crate::core::runtime::{self, State, WakeTarget};
use crate::core::slab::{Key, Slab};
use crate::error::{Error, Result};
use crate::time::Instant;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::task::Waker;
use std::time::Instant as StdInstant;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerTarget {
    /// A cancel scope's deadline: cancels the scope when it fires.
    CancelStatus(Key),
    /// A timed wait: reschedules the park with `Ok(())` when it fires.
    Park(Key),
    /// A [`TimerEntry`]: wakes its waker (and removes it) when it fires.
    Waker(Key),
}

pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerTarget)>>,
    /// Entries pushed in deadline order (each no earlier than the last one
    /// queued), which most are: a timeout is "now plus a constant". A
    /// queue pushes and pops them in O(1) where the heap takes O(log n);
    /// its front is its earliest. An entry that would break the order goes
    /// to the heap. (Seen as one: `peek` and `pop` take the earlier of the
    /// two fronts, ties by insertion order.)
    queue: VecDeque<(Instant, u64, TimerTarget)>,
    seq: u64,
    stale: usize,
    /// The [`TimerEntry`]s: deadline and whom to wake.
    wakers: Slab<(Instant, WakeTarget)>,
    /// The std clock's reading and the run's at the same moment (see "The
    /// run's clock as `std::time::Instant`s"); set at first use.
    std_anchor: Option<(StdInstant, Instant)>,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            queue: VecDeque::new(),
            seq: 0,
            stale: 0,
            wakers: Slab::new(),
            std_anchor: None,
        }
    }

    pub(crate) fn push(&mut self, deadline: Instant, target: TimerTarget) {
        self.seq += 1;
        if self.queue.back().is_none_or(|last| last.0 <= deadline) {
            self.queue.push_back((deadline, self.seq, target));
        } else {
            self.heap.push(Reverse((deadline, self.seq, target)));
        }
    }

    /// Whether the earliest entry is the queue's front (else the heap's
    /// top, or there is none).
    fn queue_first(&self) -> bool {
        match (self.queue.front(), self.heap.peek()) {
            (Some(q), Some(Reverse(h))) => (q.0, q.1) < (h.0, h.1),
            (q, _) => q.is_some(),
        }
    }

    pub(crate) fn peek(&self) -> Option<(Instant, TimerTarget)> {
        if self.queue_first() {
            self.queue.front().map(|(d, _, t)| (*d, *t))
        } else {
            self.heap.peek().map(|Reverse((d, _, t))| (*d, *t))
        }
    }

    pub(crate) fn pop(&mut self) {
        if self.queue_first() {
            self.queue.pop_front();
        } else {
            self.heap.pop();
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.queue.is_empty()
    }

    fn entries(&self) -> usize {
        self.heap.len() + self.queue.len()
    }

    /// One more entry in the heap is dead.
    pub(crate) fn note_stale(&mut self) {
        self.stale += 1;
    }

    /// A dead entry has been popped.
    pub(crate) fn forget_stale(&mut self) {
        self.stale = self.stale.saturating_sub(1);
    }

    pub(crate) fn needs_pruning(&self) -> bool {
        self.stale > 64 && self.stale > self.entries() / 2
    }

    /// Keeps only the entries `live` accepts.
    #[cfg(test)]
    pub(crate) fn prune(&mut self, mut live: impl FnMut(Instant, TimerTarget) -> bool) {
        self.heap.retain(|Reverse((d, _, t))| live(*d, *t));
        self.queue.retain(|(d, _, t)| live(*d, *t));
        self.stale = 0;
    }

    /// The anchor of the std mapping, made at first use from `now` (the
    /// run's clock, read by the caller outside the borrow), or from the
    /// clock's own origin if it has one ([`Clock::std_origin`], also asked
    /// outside the borrow: a clock is user code).
    ///
    /// [`Clock::std_origin`]: crate::core::clock::Clock::std_origin
    fn std_anchor(&mut self, now: Instant, origin: Option<StdInstant>) -> (StdInstant, Instant) {
        *self.std_anchor.get_or_insert_with(|| match origin {
            Some(origin) => (origin, Instant::from_nanos(0)),
            None => (StdInstant::now(), now),
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries()
    }
}

impl State {
    fn timer_is_live(&self, deadline: Instant, target: TimerTarget) -> bool {
        match target {
            TimerTarget::CancelStatus(id) => self
                .cancel_statuses
                .get(id)
                .is_some_and(|s| s.deadline == deadline && !s.cancel_called),
            TimerTarget::Park(id) => self
                .parks
                .get(id)
                .is_some_and(|p| p.deadline == deadline && matches!(p.state, ParkState::Waiting)),
            TimerTarget::Waker(id) => self.timers.wakers.get(id).is_some_and(|w| w.0 == deadline),
        }
    }

    /// The earliest live deadline, dropping dead entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Instant {
        loop {
            let Some((deadline, target)) = self.timers.peek() else {
                return Instant::INFINITY;
            };
            if self.timer_is_live(deadline, target) {
                return deadline;
            }
            self.timers.pop();
            self.timers.forget_stale();
        }
    }

    /// Fires every deadline at or before `now`. True if any fired.
    pub(crate) fn expire_timers(&mut self, now: Instant) -> bool {
        let mut fired = false;
        while let Some((deadline, target)) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            if !self.timer_is_live(deadline, target) {
                self.timers.forget_stale();
                continue;
            }
            fired = true;
            match target {
                TimerTarget::CancelStatus(id) => {
                    // The entry is consumed here, so it must not count as stale.
                    if let Some(s) = self.cancel_statuses.get_mut(id) {
                        s.cancel_called = true;
                        #[cfg(feature = "tracing")]
                        tracing::debug!(target: "trio", status = ?id, %deadline, "deadline expired: cancel scope cancelled");
                    }
                    self.recompute(id);
                }
                TimerTarget::Park(id) => {
                    if let Some(p) = self.parks.get_mut(id) {
                        p.deadline = Instant::INFINITY;
                    }
                    self.reschedule(id, Ok(()));
                }
                TimerTarget::Waker(id) => {
                    if let Some((_, target)) = self.timers.wakers.remove(id) {
                        self.wake_target(target);
                    }
                }
            }
        }
        if self.timers.needs_pruning() {
            // The entries alone are taken out: liveness reads the rest.
            let mut heap = std::mem::take(&mut self.timers.heap);
            let mut queue = std::mem::take(&mut self.timers.queue);
            heap.retain(|Reverse((d, _, t))| self.timer_is_live(*d, *t));
            queue.retain(|(d, _, t)| self.timer_is_live(*d, *t));
            self.timers.heap = heap;
            self.timers.queue = queue;
            self.timers.stale = 0;
        }
        fired
    }

    /// Adds a timer entry (see [`TimerEntry`]).
    fn add_timer_entry(&mut self, deadline: Instant, waker: &Waker) -> Key {
        let (run_id, shared_addr) = (self.run_id, self.shared_addr);
        let mut target = WakeTarget::NONE;
        // Replaces nothing: `NONE` has nothing to retire.
        let _ = target.update(waker, run_id, shared_addr);
        let key = self.timers.wakers.insert((deadline, target));
        self.timers.push(deadline, TimerTarget::Waker(key));
        key
    }

    /// Moves a timer entry that has not fired to `deadline` (its old heap
    /// entry goes stale); false if it has fired or was removed.
    fn reset_timer_entry(&mut self, key: Key, deadline: Instant) -> bool {
        let Some(entry) = self.timers.wakers.get_mut(key) else {
            return false;
        };
        if entry.0 != deadline {
            entry.0 = deadline;
            self.timers.note_stale();
            self.timers.push(deadline, TimerTarget::Waker(key));
        }
        true
    }

    /// Removes a timer entry if it has not fired (its heap entry goes
    /// stale); its waker is dropped after the borrow.
    fn remove_timer_entry(&mut self, key: Key) {
        if let Some((_, target)) = self.timers.wakers.remove(key) {
            self.timers.note_stale();
            self.retire(target);
        }
    }
}

/// The run's clock now, as a `std::time::Instant`: the std instant that
/// is as far from the run's anchor (see [`from_std_instant`]) as the
/// run's clock is from its reading at the anchor. Follows a
/// [`MockClock`](crate::testing::MockClock), jumps included. A
/// [`Usage`](crate::ErrorKind::Usage) error outside a run.
///
/// For foreign timers that speak `std::time::Instant` (hyper's `Timer`):
/// with [`from_std_instant`] and [`TimerEntry`], their deadlines are the
/// run's.
///
/// ```
/// use std::time::Duration;
/// use trio::lowlevel::{from_std_instant, std_instant_now};
/// use trio::testing::MockClock;
///
/// trio::Runner::new().clock(MockClock::autojump()).run(async {
///     let (t0, r0) = (std_instant_now()?, trio::current_time());
///     trio::sleep(5.0).await?; // virtual time
///     assert_eq!(std_instant_now()? - t0, Duration::from_secs(5));
///     assert_eq!(from_std_instant(t0)?, r0);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn std_instant_now() -> Result<StdInstant> {
    // The usual case, without a lookup of the run: a run on the system's
    // clock maps to it exactly (`Timers::std_anchor`).
    if runtime::std_clock_in_run() {
        return Ok(StdInstant::now());
    }
    runtime::with_runtime(|rt| {
        // A clock on the system's monotonic clock maps to it exactly (the
        // anchor is its origin, see `Timers::std_anchor`): no conversion.
        if rt.clock.std_origin().is_some() {
            return StdInstant::now();
        }
        // The clock is read outside the state borrow (a clock may look at
        // run state).
        let now = rt.now();
        let (std_base, run_base) = rt.with_state(|st| st.timers.std_anchor(now, None));
        let since = now.saturating_duration_since(run_base);
        std_base.checked_add(since).unwrap_or(std_base)
    })
    .ok_or_else(Error::outside_run)
}

/// The run's instant of a std instant, through the run's anchor (see
/// [`std_instant_now`]): monotonic, and the inverse of
/// [`std_instant_now`]'s mapping. A [`Usage`](crate::ErrorKind::Usage)
/// error outside a run.
pub fn from_std_instant(instant: StdInstant) -> Result<Instant> {
    runtime::with_runtime(|rt| {
        let anchor = rt.with_state(|st| st.timers.std_anchor);
        to_run_instant(anchor.unwrap_or_else(|| run_anchor(rt)), instant)
    })
    .ok_or_else(Error::outside_run)
}

/// The run's anchor, made at first use (the clock read outside the state
/// borrow: a clock may look at run state).
fn run_anchor(rt: &runtime::Runtime) -> (StdInstant, Instant) {
    let origin = rt.clock.std_origin();
    let now = rt.now();
    rt.with_state(|st| st.timers.std_anchor(now, origin))
}

/// A std instant as the run's, through `anchor` (monotonic).
fn to_run_instant((std_base, run_base): (StdInstant, Instant), instant: StdInstant) -> Instant {
    match instant.checked_duration_since(std_base) {
        Some(after) => run_base + after,
        None => run_base - std_base.duration_since(instant),
    }
}

/// A waker woken once when the run's clock reaches a deadline: an entry
/// of the run's own timer table, for foreign timers that are polled
/// rather than awaited (hyper's `Sleep`): registering costs a slab insert
/// and a queue or heap push, dropping a slab remove, with no task and no
/// allocation (once the run's tables have grown). A task that waits on
/// one is not a deadlock (its deadline will wake it).
///
/// - [`new`](Self::new) registers; [`is_pending`](Self::is_pending) says
///   whether it has not fired yet and, if so, makes the waker it is given
///   the one to wake (no-op when it wakes the same task).
/// - The waker is woken once, when the run loop sees the deadline passed
///   (as it fires timed waits: the MockClock's autojump sees it). A task's
///   own waker is kept decoded, with no allocation.
/// - Not a cancel point and not a schedule point: nothing here checks
///   the task's cancel status or yields.
/// - Dropping it removes the entry. It is plain data (`Send + Sync`);
///   outside its run it touches nothing and reports not pending.
///
/// ```
/// use std::future::poll_fn;
/// use std::task::Poll;
/// use trio::lowlevel::TimerEntry;
/// use trio::testing::MockClock;
///
/// trio::Runner::new().clock(MockClock::autojump()).run(async {
///     let t0 = trio::current_time();
///     let mut entry: Option<TimerEntry> = None;
///     // A hand-written sleep: registers on its first poll.
///     poll_fn(|cx| match &mut entry {
///         Some(e) => match e.is_pending(cx.waker()) {
///             true => Poll::Pending,
///             false => Poll::Ready(()),
///         },
///         None => {
///             entry = Some(TimerEntry::new(t0 + 2.0, cx.waker()).unwrap());
///             Poll::Pending
///         }
///     })
///     .await;
///     assert_eq!(trio::current_time() - t0, 2.0);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct TimerEntry {
    run_id: u32,
    key: Key,
    deadline: Instant,
}

impl TimerEntry {
    /// Registers `waker` to be woken when the run's clock reaches
    /// `deadline` (at the run loop's next deadline check if it has
    /// already). A [`Usage`](crate::ErrorKind::Usage) error outside a run.
    pub fn new(deadline: Instant, waker: &Waker) -> Result<TimerEntry> {
        runtime::with_runtime(|rt| TimerEntry {
            run_id: rt.run_id,
            key: rt.with_state(|st| st.add_timer_entry(deadline, waker)),
            deadline,
        })
        .ok_or_else(Error::outside_run)
    }

    /// [`new`](Self::new) with a std deadline, converted as
    /// [`from_std_instant`] does (in the same borrow of the run's state).
    pub fn new_std(deadline: StdInstant, waker: &Waker) -> Result<TimerEntry> {
        runtime::with_runtime(|rt| {
            let add = |st: &mut State, anchor| {
                let at = to_run_instant(anchor, deadline);
                TimerEntry {
                    run_id: rt.run_id,
                    key: st.add_timer_entry(at, waker),
                    deadline: at,
                }
            };
            let added = rt.with_state(|st| st.timers.std_anchor.map(|a| add(st, a)));
            added.unwrap_or_else(|| {
                let anchor = run_anchor(rt);
                rt.with_state(|st| add(st, anchor))
            })
        })
        .ok_or_else(Error::outside_run)
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline, keeping the waker: true if it had not fired
    /// (it now fires at `deadline`), false if it had (then nothing is
    /// registered: register anew with [`new`](Self::new)) or outside its
    /// run.
    pub fn reset(&mut self, deadline: Instant) -> bool {
        let moved = runtime::with_runtime(|rt| {
            rt.run_id == self.run_id && rt.with_state(|st| st.reset_timer_entry(self.key, deadline))
        })
        .unwrap_or(false);
        // `deadline()` reports what is registered: unchanged if nothing is.
        if moved {
            self.deadline = deadline;
        }
        moved
    }

    /// Whether it has not fired yet; if so, `waker` is now the one it
    /// wakes. False once fired (the waker was woken), and outside its run.
    pub fn is_pending(&mut self, waker: &Waker) -> bool {
        runtime::with_runtime(|rt| {
            rt.run_id == self.run_id
                && rt.with_state(|st| {
                    let (run_id, shared_addr) = (st.run_id, st.shared_addr);
                    let Some(entry) = st.timers.wakers.get_mut(self.key) else {
                        return false;
                    };
                    let replaced = entry.1.update(waker, run_id, shared_addr);
                    st.retire(replaced);
                    true
                })
        })
        .unwrap_or(false)
    }
}

impl Drop for TimerEntry {
    fn drop(&mut self) {
        runtime::with_runtime(|rt| {
            if rt.run_id == self.run_id {
                rt.with_state(|st| st.remove_timer_entry(self.key));
            }
        });
    }
}

impl fmt::Debug for TimerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerEntry")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_on_ties_and_pruning() {
        let mut t = Timers::new();
        let a = TimerTarget::Park(Key {
            index: 1,
            generation: 0,
        });
        let b = TimerTarget::Park(Key {
            index: 0,
            generation: 0,
        });
        t.push(Instant::from_nanos(5), a);
        t.push(Instant::from_nanos(5), b);
        assert_eq!(t.peek().unwrap().1, a);
        for _ in 0..100 {
            t.push(
                Instant::from_nanos(1),
                TimerTarget::CancelStatus(Key::DANGLING),
            );
            t.note_stale();
        }
        assert!(t.needs_pruning());
        t.prune(|_, target| target != TimerTarget::CancelStatus(Key::DANGLING));
        assert_eq!(t.len(), 2);
    }

    /// Entries in deadline order go to the queue, the others to the heap;
    /// `peek`/`pop` see one sequence, by deadline, ties in insertion order.
    #[test]
    fn queue_and_heap_read_as_one() {
        let mut t = Timers::new();
        let park = |index| {
            TimerTarget::Park(Key {
                index,
                generation: 0,
            })
        };
        for (nanos, index) in [(1, 0), (3, 1), (3, 2), (2, 3), (5, 4), (3, 5), (0, 6)] {
            t.push(Instant::from_nanos(nanos), park(index));
        }
        assert_eq!((t.queue.len(), t.heap.len()), (4, 3));
        let mut order = Vec::new();
        while let Some((deadline, target)) = t.peek() {
            order.push((deadline, target));
            t.pop();
        }
        let want: Vec<_> = [(0, 6), (1, 0), (2, 3), (3, 1), (3, 2), (3, 5), (5, 4)]
            .into_iter()
            .map(|(nanos, index)| (Instant::from_nanos(nanos), park(index)))
            .collect();
        assert_eq!(order, want);
        assert!(t.is_empty());
    }

    /// Counts the wakes of a foreign waker.
    struct Counter(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Counter {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn autojump<T>(f: impl AsyncFnOnce() -> crate::Result<T>) -> T {
        crate::Runner::new()
            .clock(crate::testing::MockClock::autojump())
            .run(f())
            .unwrap()
    }

    /// A timer entry wakes its (foreign) waker once, at its deadline, and
    /// is not pending afterwards; a task that waits only on timer
    /// entries is not a deadlock (autojump moves to their deadlines).
    #[test]
    fn a_timer_entry_wakes_once_at_its_deadline() {
        autojump(async || {
            let counter = std::sync::Arc::new(Counter(0.into()));
            let waker = Waker::from(counter.clone());
            let t0 = crate::current_time();
            let mut entry = TimerEntry::new(t0 + 1.0, &waker)?;
            assert_eq!(entry.deadline(), t0 + 1.0);
            assert!(entry.is_pending(&waker));
            crate::sleep(0.5).await?;
            assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 0);
            crate::sleep(1.0).await?;
            assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 1);
            assert!(!entry.is_pending(&waker));
            assert!(!entry.reset(t0 + 5.0), "a fired entry cannot be moved");
            // A task's own waker, waited on alone.
            let mut mine: Option<TimerEntry> = None;
            std::future::poll_fn(|cx| match &mut mine {
                Some(e) => match e.is_pending(cx.waker()) {
                    true => std::task::Poll::Pending,
                    false => std::task::Poll::Ready(()),
                },
                None => {
                    mine = Some(TimerEntry::new(t0 + 10.0, cx.waker()).unwrap());
                    std::task::Poll::Pending
                }
            })
            .await;
            assert_eq!(crate::current_time() - t0, 10.0);
            Ok(())
        });
    }

    /// Reset moves a pending entry (earlier or later), keeping its waker;
    /// a dropped entry wakes nobody and its heap entry is pruned with the
    /// other stale ones.
    #[test]
    fn reset_and_drop() {
        autojump(async || {
            let counter = std::sync::Arc::new(Counter(0.into()));
            let waker = Waker::from(counter.clone());
            let wakes = || counter.0.load(std::sync::atomic::Ordering::SeqCst);
            let t0 = crate::current_time();
            let mut later = TimerEntry::new(t0 + 1.0, &waker)?;
            assert!(later.reset(t0 + 3.0));
            let mut earlier = TimerEntry::new(t0 + 5.0, &waker)?;
            assert!(earlier.reset(t0 + 2.0));
            crate::sleep(2.5).await?;
            assert_eq!(wakes(), 1);
            assert!(!earlier.is_pending(&waker) && later.is_pending(&waker));
            crate::sleep(1.0).await?;
            assert_eq!(wakes(), 2);
            for i in 0..1000 {
                drop(TimerEntry::new(t0 + 10.0 + f64::from(i), &waker)?);
            }
            crate::sleep(1.0).await?; // a deadline check: prunes
            let left = crate::core::runtime::with_runtime(|rt| rt.with_state(|st| st.timers.len()));
            assert!(left.is_some_and(|n| n < 100), "{left:?}");
            crate::sleep(2000.0).await?;
            assert_eq!(wakes(), 2);
            Ok(())
        });
    }

    /// Outside a run: errors, never a panic; a `TimerEntry` is plain data.
    #[test]
    fn outside_a_run() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<TimerEntry>();
        let waker = Waker::from(std::sync::Arc::new(Counter(0.into())));
        let e = TimerEntry::new(Instant::from_nanos(1), &waker).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
        assert_eq!(
            std_instant_now().unwrap_err().kind(),
            crate::ErrorKind::Usage
        );
        let e = from_std_instant(StdInstant::now()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Usage);
    }

    /// The std mapping is fixed per run: conversions agree both ways.
    #[test]
    fn the_std_mapping_round_trips() {
        autojump(async || {
            let (s0, r0) = (std_instant_now()?, crate::current_time());
            crate::sleep(7.0).await?;
            let s1 = std_instant_now()?;
            assert_eq!(s1 - s0, std::time::Duration::from_secs(7));
            assert_eq!(from_std_instant(s1)?, r0 + 7.0);
            assert_eq!(
                from_std_instant(s0 - std::time::Duration::from_secs(1))?,
                r0 - 1.0
            );
            Ok(())
        });
    }

    /// On the system clock the mapping is the clock itself (anchored at its
    /// origin): `std_instant_now` is the system's now, and a std instant
    /// converts to the run's time since the origin, whichever is asked
    /// first.
    #[test]
    fn on_the_system_clock_the_mapping_is_exact() {
        use std::time::{Duration, Instant as StdInstant};
        let origin = crate::core::clock::SystemClock::new();
        let o = crate::core::clock::Clock::std_origin(&origin).expect("an origin");
        crate::Runner::new()
            .clock(origin)
            .run(async {
                // First use through a conversion: the anchor is the origin.
                let later = o + Duration::from_secs(3);
                assert_eq!(from_std_instant(later)?, Instant::from_nanos(0) + 3.0);
                let before = StdInstant::now();
                let now = std_instant_now()?;
                let r = crate::current_time();
                assert!(before <= now && now <= StdInstant::now());
                assert!(from_std_instant(now)? <= r);
                let entry = TimerEntry::new_std(later, std::task::Waker::noop())?;
                assert_eq!(entry.deadline(), Instant::from_nanos(0) + 3.0);
                Ok(())
            })
            .unwrap();
    }

    /// The thread's system-clock flag (`std_clock_in_run`) follows the run
    /// that is current, whatever ran before on the thread: a MockClock run
    /// after a system-clock run (one that ended normally, one that
    /// panicked), and a MockClock guest run stepped around a system-clock
    /// run, all map `std_instant_now` through their own virtual clock;
    /// between runs there is no run to ask.
    #[test]
    fn std_instant_now_follows_each_runs_clock_in_turn() {
        use crate::lowlevel::{GuestRun, GuestStep};
        use crate::testing::MockClock;
        use std::time::Duration;
        // Five virtual seconds on a MockClock read through the mapping.
        async fn five_virtual_seconds() -> Result<()> {
            let t0 = std_instant_now()?;
            crate::sleep(5.0).await?;
            assert_eq!(std_instant_now()? - t0, Duration::from_secs(5));
            Ok(())
        }
        let mock = || crate::Runner::new().clock(MockClock::autojump());
        let system = || crate::Runner::new().run(async { std_instant_now().map(drop) });

        system().unwrap();
        assert!(std_instant_now().is_err());
        mock().run(five_virtual_seconds()).unwrap();

        let panicked = std::panic::catch_unwind(|| {
            crate::Runner::new().run(async {
                std_instant_now()?;
                panic!("out of a system-clock run");
                #[allow(unreachable_code)]
                Ok(())
            })
        });
        assert!(panicked.is_err());
        assert!(std_instant_now().is_err());
        mock().run(five_virtual_seconds()).unwrap();

        // A guest on the MockClock, a system-clock run between its steps.
        let mut guest = GuestRun::new(mock(), async {
            five_virtual_seconds().await?;
            crate::sleep(1.0).await?;
            five_virtual_seconds().await
        })
        .unwrap();
        let mut steps = 0;
        loop {
            match guest.step(true).unwrap() {
                GuestStep::Done(result) => break result.unwrap(),
                GuestStep::Pending(_) => {
                    assert!(std_instant_now().is_err());
                    system().unwrap();
                    steps += 1;
                    assert!(steps < 10_000, "the guest never finished");
                }
            }
        }
        assert!(std_instant_now().is_err());
    }
}
