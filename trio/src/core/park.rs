//! Parking: the one way a task blocks, and the checkpoints built on it.
//!
//! [`Park`] is Trio's `wait_task_rescheduled` as a future. A primitive that
//! must wait creates a `Park`, stores its [`WaitKey`] wherever whoever will
//! end the wait can find it (a waiter queue, the reactor, the timer heap),
//! and awaits it. The wait ends when someone calls [`reschedule`] with an
//! outcome, or when a cancel scope around the waiting code is cancelled: then
//! the park calls its *abort function*, which must undo the registration
//! (take the key out of the queue) and say whether that worked
//! ([`Abort::Succeeded`]: the park returns `Cancelled`, and the operation had
//! no effect) or not ([`Abort::Failed`]: the primitive promises to
//! `reschedule` soon, and the park keeps waiting).
//!
//! The abort function runs on the waiting task's own poll, never from
//! inside somebody else's call, so it may borrow the primitive's state
//! freely. It also runs if the `Park` is dropped while waiting
//! ([`AbortReason::Dropped`]), which keeps the primitive consistent when a
//! future is dropped instead of cancelled.
//!
//! Every park records the cancel status it waits under, so cancelling a
//! scope wakes exactly the parks inside it, at once.
//!
//! # The park table
//!
//! The run keeps one [`ParkRecord`] per `Park` in `State::parks`, from
//! [`new_park`] until the `Park` takes its outcome or is dropped
//! ([`State::remove_park`]). Who may touch it:
//! - the `Park`'s own poll registers its waker and cancel status
//!   ([`State::register_park`]) and takes the outcome;
//! - [`reschedule`] (and the reactor, the timer heap, the idle waiters) give
//!   it an outcome, once: `Waiting` becomes `Done` and never goes back
//!   (except the re-armed records below);
//! - a cancellation only wakes it (see `cancel_status`, invariant 3): the
//!   `Park` itself then runs its abort function and decides.
//!
//! One kind of record has no `Park`: a reactor *poll waiter* (a socket's or
//! pipe's poll method waiting for readiness, `core/io.rs`). Its owner, the
//! reactor entry, re-arms it ([`State::arm_poll_park`]), as it re-arms
//! the I/O wait records below: the only places a record goes back to
//! `Waiting`. It never registers under a cancel
//! status (a poll method is no cancel point; its caller checks), and the
//! reactor removes it when the entry goes.
//!
//! # I/O wait records
//!
//! A socket operation that must wait for readiness (`core/io.rs`, `IoOp`)
//! does not make a `Park` either: each registered reactor entry keeps one
//! record per direction for those waits, re-armed by every wait
//! ([`State::arm_io_park`]) and left [`ParkState::Idle`] in between
//! ([`State::finish_io_park`]), so an echoed message costs no insert and
//! no removal in this table. Rules that keep the table's invariants:
//! - *One wait at a time.* Only an `Idle` record is re-armed; a wait that
//!   finds the entry's record busy (another task's wait, woken but not yet
//!   polled) gets a record of its own, removed when that wait ends.
//! - *One cancel status per key.* An `Idle` record keeps its cancel status
//!   (and its entry in that status's `parked` list, counted in
//!   `parked_live`), so a re-arm under the same status pushes nothing.
//!   Under another status the record is replaced by a new one (a new key):
//!   a key that came back to a status it had left would find its old,
//!   lazily deleted entry there and be listed twice. (One case is not
//!   caught: a wait polled under another status *during* the wait moves
//!   its record there, as a `Park` does; if a later wait on the record is
//!   polled back under the first status, that list holds the key twice.
//!   It takes polling one operation from two scopes by hand; the cost is a
//!   second, harmless wake attempt and an undercounted `parked_live`.)
//! - *Keys are acted on at once.* A re-armed record keeps its key, so a
//!   stale reschedule of an earlier wait's key would reach the current
//!   wait. Nothing holds such a key across waits: the reactor's ready
//!   list is turned into reschedules in the same run-loop step, released
//!   records are settled before control returns to a task, and the key is
//!   never handed out. Code that stores a key of these records must keep
//!   this so.
//! - It is a cancel point like a `Park`: armed under the current cancel
//!   status, woken when that status is cancelled, and its owner then
//!   undoes the reactor wait itself.
//!
//! # Spare wait records
//!
//! A blocked cross-run send or receive (`cross_run/channel.rs`) re-arms
//! its run's *spare* record ([`new_spare_park`], [`SparePark`]) the
//! same way, instead of making a `Park` per wait: one spare per run,
//! re-armed only under the cancel status it rests in, and re-used only
//! once no reschedule of its previous wait can still arrive. The rules
//! are in the section comment above `new_spare_park`.

use crate::core::cancel_status::CancelStatusId;
use crate::core::runtime::{self, Runtime, State, TaskId, WakeTarget};
use crate::core::slab::Key;
use crate::core::timers::TimerTarget;
use crate::error::{Error, Result};
use crate::time::{Instant, TryIntoDuration};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// What one look at a parked wait's record decided.
enum Step {
    Done(Result<()>),
    /// The abort function must run (outside the borrow).
    Abort,
    /// A plain wait was cancelled and its record removed.
    Aborted,
    Waiting,
}

/// Identifies one parked wait, for [`reschedule`]. Copyable; stale keys are
/// harmless (rescheduling one does nothing and returns `false`), except
/// for the re-armed records of the reactor (see the module docs), whose
/// keys are never handed out.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct WaitKey {
    pub(crate) park: ParkId,
    pub(crate) run_id: u32,
}

impl fmt::Debug for WaitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WaitKey({:?})", self.park)
    }
}

/// What an abort function reports.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Abort {
    /// The wait was undone; the park returns `Cancelled`.
    Succeeded,
    /// The wait could not be undone now; the primitive will call
    /// [`reschedule`] for this key soon, and the park keeps waiting.
    Failed,
}

/// Why an abort function is called.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AbortReason {
    /// A cancel scope around the wait was cancelled. The return value counts.
    Cancelled,
    /// The `Park` is being dropped. The return value is ignored. If
    /// `rescheduled` is true the wait had already been given an outcome that
    /// nobody will now see: give back whatever that outcome handed over (a
    /// lock's ownership, say).
    Dropped {
        /// Whether [`reschedule`] had already been called for this wait.
        rescheduled: bool,
    },
}

/// A task parked until [`reschedule`]d or cancelled. See the module docs.
///
/// ```
/// use std::cell::RefCell;
/// use trio::lowlevel::{Abort, Park, WaitKey, reschedule};
///
/// trio::run(async {
///     let waiter: RefCell<Option<WaitKey>> = RefCell::new(None);
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async {
///             let park = Park::new(|_key, _why| {
///                 waiter.borrow_mut().take();
///                 Abort::Succeeded
///             })?;
///             *waiter.borrow_mut() = Some(park.key());
///             park.await // blocks until rescheduled
///         });
///         trio::testing::wait_all_tasks_blocked().await?;
///         let key = waiter.borrow_mut().take().unwrap();
///         assert!(reschedule(key, Ok(())));
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[must_use = "a Park does nothing unless awaited"]
pub struct Park<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    key: WaitKey,
    abort: A,
    abort_failed: bool,
    done: bool,
}

impl<A> Park<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    /// Prepares a wait for the current task. Errors outside a run. The
    /// task tree shows it as a "park" made where this was called.
    #[track_caller]
    pub fn new(abort: A) -> Result<Self> {
        Self::new_at("park", Location::caller(), abort)
    }

    /// Like [`new`](Self::new), saying what the task waits for (`label`,
    /// e.g. `"Event.wait"`) and where the user's call was (`location`,
    /// usually captured with `#[track_caller]` in the primitive's public
    /// method), for the task tree and deadlock reports.
    pub fn new_at(
        label: &'static str,
        location: &'static Location<'static>,
        abort: A,
    ) -> Result<Self> {
        let key = runtime::with_runtime(|rt| new_park(rt, label, location, Instant::INFINITY))
            .ok_or_else(Error::outside_run)?;
        Ok(Park {
            key,
            abort,
            abort_failed: false,
            done: false,
        })
    }

    /// The key that ends this wait with [`reschedule`].
    pub fn key(&self) -> WaitKey {
        self.key
    }

    /// The `Park` of a wait whose record is already in the run's table
    /// (made by [`register_plain`], or by the cross-run channel with no
    /// waker yet): the same struct [`new_at`](Self::new_at) builds, and its
    /// first poll registers the waker as usual.
    pub(crate) fn registered(key: WaitKey, abort: A) -> Self {
        Park {
            key,
            abort,
            abort_failed: false,
            done: false,
        }
    }

    /// `poll`, for a wait whose abort function has nothing to undo (it
    /// returns `Succeeded`): a cancelled wait ends in the state borrow that
    /// sees it, without calling it.
    pub(crate) fn poll_plain(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_with::<true>(cx)
    }
}

/// Makes the current task's wait, ending at `deadline` unless rescheduled
/// or cancelled first, registered with `cx`'s waker, in one thread-local
/// access and one state borrow: what making a [`Park`] and its first poll
/// would do, for a wait that nobody needs the key of before it blocks (a
/// sleep, an `Event` wait). Like that first poll, it is `Cancelled` (a
/// completed cancel point) if the calling code is in a cancelled scope;
/// outside a run it is an error.
pub(crate) fn register_plain(
    label: &'static str,
    location: &'static Location<'static>,
    deadline: impl FnOnce(&Runtime) -> Instant,
    cx: &Context<'_>,
) -> Result<WaitKey> {
    let made = runtime::with_runtime(|rt| {
        rt.settle_lazy();
        let status = rt.current_cancel_status.get();
        let task = rt.current_task.get();
        // −∞ has passed like any other past deadline; only +∞ means
        // "never". (The timer heap keeps finite deadlines only.)
        let deadline = deadline(rt).max(Instant::from_nanos(i64::MIN + 1));
        let park = rt.with_state(|st| {
            if st.is_cancelled(status) {
                // What a `Park` would do: nothing to undo, `Cancelled`.
                return None;
            }
            let id = st.insert_park(task, label, location, deadline);
            st.register_park(id, status, cx.waker());
            Some(id)
        });
        if park.is_none() {
            rt.count_checkpoint(false, true);
        }
        park.map(|park| WaitKey {
            park,
            run_id: rt.run_id,
        })
    });
    match made {
        None => Err(Error::outside_run()),
        Some(None) => Err(Error::cancelled()),
        Some(Some(key)) => Ok(key),
    }
}

/// Makes the record of a new wait for the current task, and its timer if
/// `deadline` is finite (a timed wait: it is rescheduled with `Ok` then).
pub(crate) fn new_park(
    rt: &Runtime,
    label: &'static str,
    location: &'static Location<'static>,
    deadline: Instant,
) -> WaitKey {
    let task = rt.current_task.get();
    let park = rt.with_state(|st| st.insert_park(task, label, location, deadline));
    WaitKey {
        park,
        run_id: rt.run_id,
    }
}

// ----- the park table ---------------------------------------------------

/// A parked wait's key in `State::parks`.
pub(crate) type ParkId = Key;

/// Where a parked wait is: see [`ParkRecord::state`].
pub(crate) enum ParkState {
    Waiting,
    Done(Result<()>),
    /// A reusable I/O wait record between two waits: no wait, no outcome
    /// (see "I/O wait records" in the module docs). Only such records are
    /// ever `Idle`.
    Idle,
}

/// The run's record of one parked wait; see the module docs.
pub(crate) struct ParkRecord {
    /// `Waiting` until someone gives the wait its outcome (or its deadline
    /// fires), then `Done(outcome)` until the `Park` takes it. (A reactor
    /// poll waiter has no `Park`: its entry re-arms it to `Waiting`; an I/O
    /// wait record rests `Idle` between waits; see the module docs.)
    pub(crate) state: ParkState,
    /// Whom to wake: the waker of the `Park`'s last poll. A wake uses it up;
    /// the `Park` registers again when polled.
    pub(crate) target: WakeTarget,
    /// The cancel status the park last registered under (`Key::DANGLING`,
    /// which names no status, before its first poll: not an `Option`, which
    /// would cost the record 8 bytes). The park has a live entry in that
    /// status's `parked` list, and is counted in its `parked_live`.
    pub(crate) cancel_status: CancelStatusId,
    /// The task that waits, for the task tree.
    pub(crate) task: TaskId,
    /// Where the wait was made, for the task tree.
    pub(crate) location: &'static Location<'static>,
    /// What the task waits for, for the task tree ("sleep", "Event.wait" …).
    pub(crate) label: &'static str,
    /// A timed wait's deadline (`Instant::INFINITY` if none). While it is
    /// finite and the park is `Waiting`, the timer heap holds a live entry
    /// for it; it is reset to infinity when that entry fires.
    pub(crate) deadline: Instant,
}

impl ParkRecord {
    /// Back to `Waiting` for `task`'s wait at `label`/`location`, woken
    /// through `waker` (kept if it would wake the same task): what
    /// re-arming a poll waiter or an `Idle` I/O wait record does. Returns
    /// the replaced waker, to retire.
    #[inline]
    pub(crate) fn rearm(
        &mut self,
        task: TaskId,
        label: &'static str,
        location: &'static Location<'static>,
        waker: &Waker,
        run_id: u32,
        shared_addr: usize,
    ) -> WakeTarget {
        self.state = ParkState::Waiting;
        self.task = task;
        self.label = label;
        self.location = location;
        self.target.update(waker, run_id, shared_addr)
    }
}

impl State {
    /// A new waiting park for `task`, with a timer if `deadline` is finite.
    pub(crate) fn insert_park(
        &mut self,
        task: TaskId,
        label: &'static str,
        location: &'static Location<'static>,
        deadline: Instant,
    ) -> ParkId {
        let id = self.parks.insert(ParkRecord {
            state: ParkState::Waiting,
            target: WakeTarget::NONE,
            cancel_status: Key::DANGLING,
            task,
            location,
            label,
            deadline,
        });
        if deadline.is_finite() {
            self.timers.push(deadline, TimerTarget::Park(id));
        }
        id
    }

    /// Records that `park` waits under `status`, to be woken through `waker`.
    pub(crate) fn register_park(&mut self, park: ParkId, status: CancelStatusId, waker: &Waker) {
        let (run_id, shared_addr) = (self.run_id, self.shared_addr);
        let Some(p) = self.parks.get_mut(park) else {
            return;
        };
        let replaced = p.target.update(waker, run_id, shared_addr);
        let old = std::mem::replace(&mut p.cancel_status, status);
        self.retire(replaced);
        if old == status {
            return;
        }
        if let Some(s) = self.cancel_statuses.get_mut(old) {
            s.parked_live = s.parked_live.saturating_sub(1);
        }
        if let Some(s) = self.cancel_statuses.get_mut(status) {
            crate::core::slab::push_capped(&mut s.parked, park);
            s.parked_live += 1;
            if s.parked.len() > 2 * s.parked_live as usize + 8 {
                let parks = &self.parks;
                s.parked
                    .retain(|pid| parks.get(*pid).is_some_and(|p| p.cancel_status == status));
            }
        }
    }

    /// Removes a park's record (its waker is retired, see [`State::retire`])
    /// and returns its state.
    pub(crate) fn remove_park(&mut self, park: ParkId) -> Option<ParkState> {
        let ParkRecord {
            state,
            target,
            cancel_status,
            deadline,
            ..
        } = self.parks.remove(park)?;
        self.retire(target);
        if let Some(s) = self.cancel_statuses.get_mut(cancel_status) {
            s.parked_live = s.parked_live.saturating_sub(1);
        }
        if deadline.is_finite() && matches!(state, ParkState::Waiting) {
            self.timers.note_stale();
        }
        Some(state)
    }

    /// Re-arms the poll waiter `existing` (see the module docs), or makes
    /// one if there is none: `Waiting` again, for `task`, to wake `waker`
    /// (kept if it would wake the same task). Returns its id.
    pub(crate) fn arm_poll_park(
        &mut self,
        existing: Option<ParkId>,
        task: TaskId,
        label: &'static str,
        location: &'static Location<'static>,
        waker: &Waker,
    ) -> ParkId {
        let id = match existing.filter(|&id| self.parks.get(id).is_some()) {
            Some(id) => id,
            None => self.insert_park(task, label, location, Instant::INFINITY),
        };
        let (run_id, shared_addr) = (self.run_id, self.shared_addr);
        let p = self.parks.get_mut(id).expect("live or just made");
        // A finished outcome nobody took is dropped: the poll that re-arms
        // is the one the wake was for.
        let replaced = p.rearm(task, label, location, waker, run_id, shared_addr);
        self.retire(replaced);
        id
    }

    /// Arms an I/O wait record for the current wait (see "I/O wait
    /// records" in the module docs): re-arms `existing`, the entry's
    /// reusable record, if it is `Idle` and was registered under `status`;
    /// else makes a new one. Returns its id and whether it is the entry's
    /// reusable record from now on (`false`: a record of this wait only,
    /// because `existing` is busy with another wait).
    ///
    /// Inlined: the usual case (the entry's record `Idle` under the same
    /// status: one lookup and the re-arm) is part of every echoed message,
    /// and as a call of seven arguments its prologue cost about as much as
    /// its body (callgrind, echo server); the rest is out of line.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn arm_io_park(
        &mut self,
        existing: Option<ParkId>,
        task: TaskId,
        status: CancelStatusId,
        label: &'static str,
        location: &'static Location<'static>,
        waker: &Waker,
    ) -> (ParkId, bool) {
        let (run_id, shared_addr) = (self.run_id, self.shared_addr);
        if let Some(id) = existing
            && let Some(p) = self.parks.get_mut(id)
            && matches!(p.state, ParkState::Idle)
            && p.cancel_status == status
        {
            let replaced = p.rearm(task, label, location, waker, run_id, shared_addr);
            self.retire(replaced);
            return (id, true);
        }
        self.arm_io_park_slow(existing, task, status, label, location, waker)
    }

    /// [`arm_io_park`](Self::arm_io_park) when the entry's record cannot
    /// simply be re-armed: there is none, it is registered under another
    /// status (replaced by a new key), or it is busy with another wait
    /// (this wait gets a record of its own).
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn arm_io_park_slow(
        &mut self,
        existing: Option<ParkId>,
        task: TaskId,
        status: CancelStatusId,
        label: &'static str,
        location: &'static Location<'static>,
        waker: &Waker,
    ) -> (ParkId, bool) {
        let mut reusable = true;
        if let Some(id) = existing
            && let Some(p) = self.parks.get(id)
        {
            match p.state {
                // Registered under another status: replaced by a new key.
                ParkState::Idle => {
                    self.remove_park(id);
                }
                // Busy with another wait: this one gets its own record.
                _ => reusable = false,
            }
        }
        let id = self.insert_park(task, label, location, Instant::INFINITY);
        self.register_park(id, status, waker);
        (id, reusable)
    }

    /// Ends an I/O wait's use of its record: a reusable one goes back to
    /// `Idle` (its waker retired, its cancel status kept), a wait's own is
    /// removed. Returns the outcome the record held, if it had one.
    pub(crate) fn finish_io_park(&mut self, park: ParkId, reusable: bool) -> Option<Result<()>> {
        if !reusable {
            return match self.remove_park(park)? {
                ParkState::Done(outcome) => Some(outcome),
                _ => None,
            };
        }
        let p = self.parks.get_mut(park)?;
        let target = std::mem::take(&mut p.target);
        let state = std::mem::replace(&mut p.state, ParkState::Idle);
        self.retire(target);
        match state {
            ParkState::Done(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// Gives a parked wait its outcome and wakes it. False if it is not
    /// waiting (already rescheduled, aborted or gone).
    pub(crate) fn reschedule(&mut self, park: ParkId, outcome: Result<()>) -> bool {
        let Some(p) = self.parks.get_mut(park) else {
            return false;
        };
        if !matches!(p.state, ParkState::Waiting) {
            return false;
        }
        p.state = ParkState::Done(outcome);
        if p.deadline.is_finite() {
            self.timers.note_stale();
        }
        let target = std::mem::take(&mut p.target);
        self.wake_target(target);
        true
    }
}

impl<A> Unpin for Park<A> where A: FnMut(WaitKey, AbortReason) -> Abort {}

impl<A> Future for Park<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_with::<false>(cx)
    }
}

impl<A> Park<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    /// `poll`; `PLAIN`: the abort function is known to have nothing to
    /// undo (it would return `Succeeded`), so a cancelled wait ends in the
    /// same state borrow without calling it.
    fn poll_with<const PLAIN: bool>(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self;
        if this.done {
            return Poll::Ready(Err(Error::usage("a Park was polled after it completed")));
        }
        let polled = runtime::with_runtime(|rt| {
            if rt.run_id != this.key.run_id {
                return None;
            }
            Some(this.poll_in::<PLAIN>(rt, cx))
        });
        match polled.flatten() {
            Some(p) => p,
            None => {
                this.done = true;
                Poll::Ready(Err(Error::usage(
                    "a Park was polled outside the run that made it",
                )))
            }
        }
    }
}

impl<A> Park<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    fn poll_in<const PLAIN: bool>(
        &mut self,
        rt: &Runtime,
        cx: &mut Context<'_>,
    ) -> Poll<Result<()>> {
        rt.settle_lazy();
        let status = rt.current_cancel_status.get();
        let key = self.key.park;
        // One pass over the record per borrow (see `settle_park`).
        let waker = cx.waker();
        let settle = |st: &mut State, may_abort: bool| -> Step {
            settle_park::<PLAIN>(st, key, status, waker, may_abort)
        };
        let mut step = rt.with_state(|st| settle(st, !self.abort_failed));
        if let Step::Abort = step {
            match (self.abort)(self.key, AbortReason::Cancelled) {
                Abort::Succeeded => {
                    rt.with_state(|st| st.remove_park(key));
                    self.done = true;
                    rt.count_checkpoint(false, true);
                    return Poll::Ready(Err(Error::cancelled()));
                }
                Abort::Failed => {
                    // The primitive will reschedule us (maybe it already has).
                    self.abort_failed = true;
                    step = rt.with_state(|st| settle(st, false));
                }
            }
        }
        match step {
            Step::Aborted => {
                self.done = true;
                rt.count_checkpoint(false, true);
                Poll::Ready(Err(Error::cancelled()))
            }
            Step::Done(outcome) => {
                self.done = true;
                rt.count_checkpoint(true, true);
                Poll::Ready(outcome)
            }
            Step::Waiting | Step::Abort => Poll::Pending,
        }
    }
}

/// One pass over a parked wait's record (one borrow, on the common path):
/// take the outcome, or register the wait, unless the scope is cancelled
/// and the abort function must run first (outside the borrow). Inlined
/// into `Park::poll_in`, as the closure it was.
#[inline(always)]
fn settle_park<const PLAIN: bool>(
    st: &mut State,
    key: ParkId,
    status: CancelStatusId,
    waker: &Waker,
    may_abort: bool,
) -> Step {
    match st.parks.get(key).map(|p| &p.state) {
        // (An `Idle` record is never a `Park`'s.)
        None | Some(ParkState::Idle) => Step::Done(Err(Error::usage("a Park's record vanished"))),
        Some(ParkState::Done(_)) => match st.remove_park(key) {
            Some(ParkState::Done(outcome)) => Step::Done(outcome),
            _ => Step::Done(Err(Error::usage("a Park's record vanished"))),
        },
        Some(ParkState::Waiting) if may_abort && st.is_cancelled(status) => {
            if PLAIN {
                st.remove_park(key);
                Step::Aborted
            } else {
                Step::Abort
            }
        }
        Some(ParkState::Waiting) => {
            st.register_park(key, status, waker);
            Step::Waiting
        }
    }
}

impl<A> Drop for Park<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    fn drop(&mut self) {
        if !self.done {
            drop_unfinished_wait(self.key, &mut self.abort);
        }
    }
}

/// A wait dropped before it took its outcome (a `Park`'s or a
/// `SparePark`'s): removes its record, if its run is current, and tells
/// the abort function, with whether a reschedule had already come.
fn drop_unfinished_wait(key: WaitKey, abort: &mut impl FnMut(WaitKey, AbortReason) -> Abort) {
    let removed = runtime::with_runtime(|rt| {
        if rt.run_id != key.run_id {
            return None;
        }
        rt.with_state(|st| st.remove_park(key.park))
    })
    .flatten();
    if let Some(state) = removed {
        let rescheduled = matches!(state, ParkState::Done(_));
        abort(key, AbortReason::Dropped { rescheduled });
    }
}

impl<A> fmt::Debug for Park<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Park")
            .field("key", &self.key)
            .field("done", &self.done)
            .finish()
    }
}

/// Ends the wait `key` with `outcome` and schedules its task. Returns false
/// (and does nothing) if that wait is not parked any more, or belongs to
/// another run, or this is called outside a run.
pub fn reschedule(key: WaitKey, outcome: Result<()>) -> bool {
    runtime::with_runtime(|rt| {
        rt.run_id == key.run_id && rt.with_state(|st| st.reschedule(key.park, outcome))
    })
    .unwrap_or(false)
}

/// The abort function of a wait with no abort work to do.
type PlainAbort = fn(WaitKey, AbortReason) -> Abort;

/// A wait with no abort work to do.
fn plain_abort(_: WaitKey, _: AbortReason) -> Abort {
    Abort::Succeeded
}

/// Gives each of the waits `parks` of run `run_id` the outcome `Ok(())`
/// and schedules its task, in order, in one state borrow. Stale ones are
/// skipped; nothing happens unless `run_id` is the current run.
pub(crate) fn reschedule_all(run_id: u32, parks: &[ParkId]) {
    runtime::with_runtime(|rt| {
        if rt.run_id != run_id {
            return;
        }
        rt.with_state(|st| {
            for &park in parks {
                st.reschedule(park, Ok(()));
            }
        });
    });
}

/// Keeps only the waits of `parks` (of run `run_id`) that are still
/// waiting: how a wait list drops the entries of waits that ended without
/// it. Outside a run nothing can be checked, and all are kept; in another
/// run than `run_id`, none can ever be woken, and none are.
pub(crate) fn retain_waiting(run_id: u32, parks: &mut Vec<ParkId>) {
    runtime::with_runtime(|rt| {
        if rt.run_id != run_id {
            parks.clear();
            return;
        }
        let st = rt.state.borrow();
        parks.retain(|&p| {
            st.parks
                .get(p)
                .is_some_and(|p| matches!(p.state, ParkState::Waiting))
        });
    });
}

// ----- checkpoints ------------------------------------------------------

/// A schedule point followed, unless `shielded`, by a cancel check.
#[derive(Debug)]
pub(crate) struct Yield {
    yielded: bool,
    check_cancel: bool,
}

impl Yield {
    /// A [`checkpoint`], as a type a hand-written future can hold.
    pub(crate) const fn checkpoint() -> Yield {
        Yield {
            yielded: false,
            check_cancel: true,
        }
    }
}

impl Future for Yield {
    type Output = Result<()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if !self.yielded {
            self.yielded = true;
            if runtime::with_runtime(|rt| rt.wake_by_ref(cx.waker())).is_none() {
                cx.waker().wake_by_ref();
            }
            return Poll::Pending;
        }
        let check = self.check_cancel;
        match runtime::with_runtime(|rt| {
            rt.count_checkpoint(true, check);
            check && rt.is_cancelled()
        }) {
            Some(true) => Poll::Ready(Err(Error::cancelled())),
            Some(false) => Poll::Ready(Ok(())),
            None => Poll::Ready(Err(Error::outside_run())),
        }
    }
}

/// A checkpoint: lets other tasks run (a schedule point), then fails with
/// `Cancelled` if the calling code is inside a cancelled scope (a cancel
/// point). Every blocking operation of the runtime is one.
///
/// ```
/// trio::run(async {
///     for _ in 0..3 {
///         trio::checkpoint().await?; // long loops stay cancellable and fair
///     }
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn checkpoint() -> impl Future<Output = Result<()>> {
    Yield::checkpoint()
}

/// A schedule point that ignores cancellation (Trio's
/// `cancel_shielded_checkpoint`).
pub fn cancel_shielded_checkpoint() -> impl Future<Output = Result<()>> {
    Yield {
        yielded: false,
        check_cancel: false,
    }
}

/// A cancel point without a schedule point: fails with `Cancelled` if the
/// calling code is in a cancelled scope, and otherwise returns at once.
pub async fn checkpoint_if_cancelled() -> Result<()> {
    // One thread-local access and no reference count traffic.
    match runtime::with_runtime(|rt| {
        rt.count_checkpoint(false, true);
        rt.is_cancelled()
    }) {
        Some(false) => Ok(()),
        Some(true) => Err(Error::cancelled()),
        None => Err(Error::outside_run()),
    }
}

// ----- time -------------------------------------------------------------

/// The current time on the run's clock.
///
/// ```
/// # trio::run(async {
/// let t0 = trio::current_time();
/// trio::sleep(0.25).await?;
/// assert!(trio::current_time() - t0 >= 0.25); // seconds, as an f64
/// # Ok(()) }).unwrap();
/// ```
///
/// # Panics
///
/// Outside a run (misuse, see [Errors and panics](crate#errors-and-panics));
/// [`try_current_time`] is the fallible twin.
#[track_caller]
pub fn current_time() -> Instant {
    match runtime::with_runtime(|rt| rt.now()) {
        Some(now) => now,
        None => crate::error::panic_outside_run("current_time", "try_current_time"),
    }
}

/// Like [`current_time`], but outside a run it is an
/// [`ErrorKind::Usage`](crate::ErrorKind::Usage) error instead of a panic.
///
/// ```
/// assert_eq!(trio::try_current_time().unwrap_err().kind(), trio::ErrorKind::Usage);
/// ```
pub fn try_current_time() -> Result<Instant> {
    Ok(runtime::current()?.now())
}

/// Sleeps for `duration` (a `Duration` or seconds as `f64`). A checkpoint;
/// `sleep(0)` is just a checkpoint.
#[track_caller]
pub fn sleep(duration: impl TryIntoDuration) -> impl Future<Output = Result<()>> {
    TimedWait::new(
        "sleep",
        Location::caller(),
        duration.try_into_duration().map(When::After),
    )
}

/// Sleeps until the run's clock reads `deadline`. A checkpoint.
#[track_caller]
pub fn sleep_until(deadline: Instant) -> impl Future<Output = Result<()>> {
    TimedWait::new("sleep_until", Location::caller(), Ok(When::At(deadline)))
}

/// Sleeps until cancelled; returns only `Err(Cancelled)`. Handy as a child
/// that just keeps its nursery open.
#[track_caller]
pub fn sleep_forever() -> impl Future<Output = Result<()>> {
    TimedWait::new(
        "sleep_forever",
        Location::caller(),
        Ok(When::At(Instant::INFINITY)),
    )
}

/// When a [`TimedWait`] ends (unless cancelled first).
enum When {
    /// At this instant of the run's clock (`Instant::INFINITY`: never).
    At(Instant),
    /// This long after its first poll.
    After(Duration),
}

/// A wait that only a deadline or a cancellation ends (the sleeps). Nobody
/// needs its key before it is first polled, so that poll makes the wait
/// already registered ([`register_plain`]); later polls are the `Park`'s
/// own.
struct TimedWait {
    label: &'static str,
    location: &'static Location<'static>,
    /// Taken by the first poll.
    when: Option<Result<When>>,
    park: Option<Park<PlainAbort>>,
}

impl TimedWait {
    fn new(label: &'static str, location: &'static Location<'static>, when: Result<When>) -> Self {
        TimedWait {
            label,
            location,
            when: Some(when),
            park: None,
        }
    }
}

impl Future for TimedWait {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if let Some(park) = &mut this.park {
            return park.poll_with::<true>(cx);
        }
        let when = match this.when.take() {
            Some(Ok(when)) => when,
            Some(Err(e)) => return Poll::Ready(Err(e)),
            None => {
                return Poll::Ready(Err(Error::usage("a sleep was polled after it completed")));
            }
        };
        let deadline = |rt: &Runtime| match when {
            When::At(t) => t,
            When::After(d) => rt.now() + d,
        };
        match register_plain(this.label, this.location, deadline, cx) {
            Ok(key) => {
                this.park = Some(Park::registered(key, plain_abort));
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

/// Waits until every other task in the run is blocked, with no timer about
/// to fire and no work out in threads (Trio's `wait_all_tasks_blocked()`,
/// cushion 0). Takes priority over the MockClock's autojump. A checkpoint.
/// [`wait_all_tasks_blocked_with_cushion`] waits for them to have been
/// blocked for a while.
///
/// ```
/// use std::cell::Cell;
/// trio::run(async {
///     let step = Cell::new(0);
///     trio::open_nursery(async |n| {
///         n.start_soon(async {
///             step.set(1);
///             trio::sleep_forever().await
///         });
///         trio::testing::wait_all_tasks_blocked().await?;
///         assert_eq!(step.get(), 1); // the child ran until it blocked
///         n.cancel_scope().cancel();
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn wait_all_tasks_blocked() -> impl Future<Output = Result<()>> {
    wait_all_tasks_blocked_with_cushion(Duration::ZERO)
}

/// Waits until every other task in the run has been blocked for `cushion`
/// (real time; a `Duration` or seconds as `f64`), with no timer about to
/// fire and no work out in threads. Waiters with smaller cushions wake
/// first; equal cushions wake together, in the order they started waiting.
/// Takes priority over the MockClock's autojump. A checkpoint. An invalid
/// cushion (negative, NaN) is an `InvalidArgument` error when awaited.
///
/// ```
/// # trio::run(async {
/// trio::testing::wait_all_tasks_blocked_with_cushion(0.01).await?; // nothing else runs
/// # Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn wait_all_tasks_blocked_with_cushion(
    cushion: impl TryIntoDuration,
) -> impl Future<Output = Result<()>> {
    let location = Location::caller();
    let cushion = cushion.try_into_duration();
    async move {
        let cushion: Duration = cushion?;
        let rt = runtime::current()?;
        let key = new_park(&rt, "wait_all_tasks_blocked", location, Instant::INFINITY);
        let entry = rt.with_state(|st| {
            st.idle_seq += 1;
            let entry = (cushion, st.idle_seq);
            st.idle_waiters.insert(entry, key.park);
            entry
        });
        let rt2 = rt.clone();
        Park {
            key,
            abort: move |_, _| {
                rt2.with_state(|st| st.idle_waiters.remove(&entry));
                Abort::Succeeded
            },
            abort_failed: false,
            done: false,
        }
        .await
    }
}

/// How many checkpoints have completed in the current run so far, by any
/// task. Read it before and after polling something to see whether *that*
/// code checkpointed (what `testing::assert_checkpoints` does).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointCounts {
    /// Completed schedule points (other tasks could run).
    pub schedule_points: u64,
    /// Completed cancel points (cancellation was checked).
    pub cancel_points: u64,
}

/// The current run's [`CheckpointCounts`].
pub fn checkpoint_counts() -> Result<CheckpointCounts> {
    // A look at the run, no `Rc` clone: composite streams (trio-tls) read
    // this around every poll of a transport operation.
    runtime::with_runtime(|rt| CheckpointCounts {
        schedule_points: rt.schedule_points.get(),
        cancel_points: rt.cancel_points.get(),
    })
    .ok_or_else(Error::outside_run)
}

/// Counts the checkpoints of one task (Trio counts per task): made by
/// [`watch_checkpoints`] for the task that calls it, it sees every schedule
/// and cancel point that task completes (including in nursery bodies it
/// runs) and none of other tasks'. Stops counting when dropped.
///
/// ```
/// trio::run(async {
///     let watch = trio::lowlevel::watch_checkpoints()?;
///     trio::checkpoint().await?;
///     trio::open_nursery(async |n| {
///         n.start_soon(trio::checkpoint()); // a child: not this task
///         Ok(())
///     })
///     .await?;
///     let c = watch.counts();
///     // checkpoint(): one of each; the nursery exit: a schedule point.
///     assert_eq!((c.schedule_points, c.cancel_points), (2, 1));
///     Ok(())
/// })
/// .unwrap();
/// ```
#[must_use = "a watch counts only while it lives"]
pub struct CheckpointWatch {
    rt: Rc<Runtime>,
    id: u64,
}

/// One [`CheckpointWatch`]'s counts, in `Runtime::watches` from
/// [`watch_checkpoints`] until the watch is dropped; counted by
/// `Runtime::count_checkpoint`.
pub(crate) struct CheckpointWatchEntry {
    /// The watch's id (unique in the process).
    pub(crate) watch: u64,
    /// The task whose checkpoints count.
    pub(crate) task: TaskId,
    pub(crate) counts: CheckpointCounts,
}

/// Starts counting the current task's checkpoints.
pub fn watch_checkpoints() -> Result<CheckpointWatch> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let rt = runtime::current()?;
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let task = rt.current_task.get();
    rt.watches.borrow_mut().push(CheckpointWatchEntry {
        watch: id,
        task,
        counts: CheckpointCounts::default(),
    });
    rt.watching.set(true);
    Ok(CheckpointWatch { rt, id })
}

impl CheckpointWatch {
    /// The checkpoints the task has completed since the watch started.
    pub fn counts(&self) -> CheckpointCounts {
        let watches = self.rt.watches.borrow();
        let w = watches.iter().find(|w| w.watch == self.id);
        w.map_or_else(CheckpointCounts::default, |w| w.counts)
    }
}

impl Drop for CheckpointWatch {
    fn drop(&mut self) {
        let mut watches = self.rt.watches.borrow_mut();
        watches.retain(|w| w.watch != self.id);
        self.rt.watching.set(!watches.is_empty());
    }
}

impl fmt::Debug for CheckpointWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointWatch")
            .field("counts", &self.counts())
            .finish()
    }
}

// ----- spare wait records (cross-run waits) -----------------------------
//
// A task's blocked cross-run send or receive (`cross_run/channel.rs`)
// waits on a record of this table like a `Park`, but instead of inserting
// a record per wait and removing it when the wait ends, it re-arms the
// run's *spare* record, as a socket re-arms its I/O wait records (see
// "I/O wait records" in the module docs), which saves the insert, the
// removal and the cancel status bookkeeping of a new key (about 170 of the
// ~420 instructions a `Park` costs per blocked receive, callgrind).
//
// - *One spare per run*, `State::spare_park`: an `Idle` record of the
//   run. (Per run, not per thread: runs can share a thread, a guest run
//   and the runs its host makes between its steps, and a thread's one
//   slot would have each throw the other's record away, leaving one
//   `Idle` record behind in its table per turn.) A wait takes it (the
//   slot is empty while the record is in use: one wait at a time) or
//   makes a new record; when its wait ends, a record goes back to the
//   slot if it is empty, else it is removed.
// - *One cancel status per key*, as for I/O wait records: the spare is
//   re-armed only under the status it rests in (keeping its entry in that
//   status's `parked` list); under another it is replaced by a new key.
//   (The same uncaught case as there: a wait polled under another status
//   during the wait, then a later wait on the record polled back under the
//   first status, lists the key twice there; harmless.)
// - *No stale wake-up can reach a later wait.* A wait's key is handed to
//   at most one waker (the channel's waiter, taken out of its queue under
//   the channel's mutex by whoever ends the wait), so at most one
//   reschedule of it is ever posted. A record is re-used only after that
//   reschedule has been applied (the wait took its `Done` outcome) or when
//   none can ever come (the abort function took the waiter out of its
//   queue: `Abort::Succeeded`). A wait dropped before either removes its
//   record, as a `Park` does: a reschedule still on its way then finds a
//   removed key (its slot's generation moved on) and does nothing.

/// Makes the record of a new wait for the current task (as [`new_park`]
/// with no deadline), re-arming the run's spare record when it rests
/// under the current cancel status. If `waker` is a plain waker of this
/// run (decoded, never cloned: nothing calls out, so the caller may hold
/// a lock), the wait is registered with it at once, as a `Park`'s first
/// poll would do, and the second member is `true`; otherwise it has no
/// waker yet, and its first poll registers it. The wait must be awaited
/// through a [`SparePark`], which gives the record back.
#[inline]
pub(crate) fn new_spare_park(
    rt: &Runtime,
    label: &'static str,
    location: &'static Location<'static>,
    waker: &Waker,
) -> (WaitKey, bool) {
    rt.settle_lazy();
    let task = rt.current_task.get();
    let status = rt.current_cancel_status.get();
    let run_id = rt.run_id;
    let ours = matches!(
        crate::core::waker::classify(waker),
        Some(crate::core::waker::OurWaker::Plain(w)) if w.run == run_id as u16
    );
    let park = rt.with_state(|st| {
        let spare = st.spare_park.take();
        // In a cancelled scope the first poll must run the abort function.
        let waker = (ours && !st.is_cancelled(status)).then_some(waker);
        (
            st.arm_spare_park(spare, task, status, label, location, waker),
            waker.is_some(),
        )
    });
    (
        WaitKey {
            park: park.0,
            run_id,
        },
        park.1,
    )
}

impl State {
    /// Re-arms the `Idle` record `spare` to `Waiting` for `task`'s wait if
    /// it rests under `status` (keeping its entry in that status's list:
    /// nothing pushed); else removes it and makes a new record. Registers
    /// `waker` under `status` if given (a plain waker of this run: nothing
    /// calls out); else the wait's first poll does. Returns the record's
    /// id.
    #[inline]
    fn arm_spare_park(
        &mut self,
        spare: Option<ParkId>,
        task: TaskId,
        status: CancelStatusId,
        label: &'static str,
        location: &'static Location<'static>,
        waker: Option<&Waker>,
    ) -> ParkId {
        let (run_id, shared_addr) = (self.run_id, self.shared_addr);
        if let Some(id) = spare
            && let Some(p) = self.parks.get_mut(id)
            && matches!(p.state, ParkState::Idle)
            && p.cancel_status == status
        {
            match waker {
                Some(waker) => {
                    let replaced = p.rearm(task, label, location, waker, run_id, shared_addr);
                    self.retire(replaced);
                }
                None => {
                    p.state = ParkState::Waiting;
                    p.task = task;
                    p.label = label;
                    p.location = location;
                }
            }
            return id;
        }
        self.arm_spare_park_slow(spare, task, status, label, location, waker)
    }

    /// [`arm_spare_park`](Self::arm_spare_park) when the spare cannot be
    /// re-armed: a new record (the spare, if any, removed).
    #[cold]
    #[inline(never)]
    fn arm_spare_park_slow(
        &mut self,
        spare: Option<ParkId>,
        task: TaskId,
        status: CancelStatusId,
        label: &'static str,
        location: &'static Location<'static>,
        waker: Option<&Waker>,
    ) -> ParkId {
        if let Some(id) = spare
            && self
                .parks
                .get(id)
                .is_some_and(|p| matches!(p.state, ParkState::Idle))
        {
            self.remove_park(id);
        }
        let id = self.insert_park(task, label, location, Instant::INFINITY);
        if let Some(waker) = waker {
            self.register_park(id, status, waker);
        }
        id
    }

    /// Ends a spare-record wait's use of its record (see the section
    /// comment): back to `Idle` and into the run's empty spare slot,
    /// or removed. Returns the outcome the record held, if any.
    #[inline]
    fn release_spare_park(&mut self, key: WaitKey) -> Option<Result<()>> {
        if self.spare_park.is_none() {
            let p = self.parks.get_mut(key.park)?;
            let target = std::mem::take(&mut p.target);
            let state = std::mem::replace(&mut p.state, ParkState::Idle);
            self.retire(target);
            self.spare_park = Some(key.park);
            match state {
                ParkState::Done(outcome) => Some(outcome),
                _ => None,
            }
        } else {
            match self.remove_park(key.park)? {
                ParkState::Done(outcome) => Some(outcome),
                _ => None,
            }
        }
    }
}

/// A [`Park`] on a record made by [`new_spare_park`]: the same future
/// (first poll registers the waker, a cancel runs the abort function,
/// which decides), except that a wait that ended with its outcome taken,
/// or with its abort function succeeding, gives its record back to the
/// run's spare slot instead of removing it (see the section comment
/// above for why no stale wake-up can reach a later wait). Dropped before
/// it ended, it removes its record and calls the abort function with
/// [`AbortReason::Dropped`], as a `Park` does.
#[must_use = "a SparePark does nothing unless awaited"]
pub(crate) struct SparePark<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    key: WaitKey,
    abort: A,
    abort_failed: bool,
    done: bool,
    /// Registered by `new_spare_park`: the first poll has nothing to do.
    registered: bool,
}

impl<A> SparePark<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    /// The wait on `key` (from [`new_spare_park`], which said whether it
    /// `registered` the waker), undone by `abort`. If it did, the caller
    /// must poll this first in the same poll of the task that made the
    /// wait, with nothing else run between: that poll then only returns
    /// `Pending` (the record is registered, and a cancel seen at the
    /// arming's cancel point has had no chance to come since).
    pub(crate) fn new(key: WaitKey, registered: bool, abort: A) -> Self {
        SparePark {
            key,
            abort,
            abort_failed: false,
            done: false,
            registered,
        }
    }

    fn poll_in(&mut self, rt: &Runtime, cx: &Context<'_>) -> Poll<Result<()>> {
        rt.settle_lazy();
        let status = rt.current_cancel_status.get();
        let key = self.key;
        let waker = cx.waker();
        let settle = |st: &mut State, may_abort: bool| -> Step {
            match st.parks.get(key.park).map(|p| &p.state) {
                None | Some(ParkState::Idle) => {
                    Step::Done(Err(Error::usage("a Park's record vanished")))
                }
                Some(ParkState::Done(_)) => match st.release_spare_park(key) {
                    Some(outcome) => Step::Done(outcome),
                    None => Step::Done(Err(Error::usage("a Park's record vanished"))),
                },
                Some(ParkState::Waiting) if may_abort && st.is_cancelled(status) => Step::Abort,
                Some(ParkState::Waiting) => {
                    st.register_park(key.park, status, waker);
                    Step::Waiting
                }
            }
        };
        let mut step = rt.with_state(|st| settle(st, !self.abort_failed));
        if let Step::Abort = step {
            match (self.abort)(key, AbortReason::Cancelled) {
                Abort::Succeeded => {
                    // Out of its queue before anyone could wake it: no
                    // reschedule of this key can ever come, so the record
                    // may serve the next wait.
                    rt.with_state(|st| st.release_spare_park(key));
                    self.done = true;
                    rt.count_checkpoint(false, true);
                    return Poll::Ready(Err(Error::cancelled()));
                }
                Abort::Failed => {
                    self.abort_failed = true;
                    step = rt.with_state(|st| settle(st, false));
                }
            }
        }
        match step {
            Step::Done(outcome) => {
                self.done = true;
                rt.count_checkpoint(true, true);
                Poll::Ready(outcome)
            }
            Step::Aborted => unreachable!("a spare park always runs its abort function"),
            Step::Waiting | Step::Abort => Poll::Pending,
        }
    }
}

impl<A> Unpin for SparePark<A> where A: FnMut(WaitKey, AbortReason) -> Abort {}

impl<A> Future for SparePark<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Err(Error::usage("a Park was polled after it completed")));
        }
        if std::mem::take(&mut this.registered) {
            return Poll::Pending;
        }
        let polled = runtime::with_runtime(|rt| {
            (rt.run_id == this.key.run_id).then(|| this.poll_in(rt, cx))
        });
        match polled.flatten() {
            Some(p) => p,
            None => {
                this.done = true;
                Poll::Ready(Err(Error::usage(
                    "a Park was polled outside the run that made it",
                )))
            }
        }
    }
}

impl<A> Drop for SparePark<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    fn drop(&mut self) {
        if !self.done {
            // Not re-used: a reschedule may still be on its way to this key.
            drop_unfinished_wait(self.key, &mut self.abort);
        }
    }
}

impl<A> fmt::Debug for SparePark<A>
where
    A: FnMut(WaitKey, AbortReason) -> Abort,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparePark")
            .field("key", &self.key)
            .field("done", &self.done)
            .finish()
    }
}
