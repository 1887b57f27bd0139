//! Cancellation through foreign code: a cancel waiter without a park, and
//! the combinator that makes any future a cancel point (DESIGN §13).
//!
//! A [`Park`](crate::lowlevel::Park) is woken by a cancel because its
//! record says which cancel status it waits under. A future polled inside
//! foreign code (`FuturesUnordered`, a `select!`, hyper's connection state
//! machine) may wait on something that is no park at all: a foreign
//! channel, a foreign timer, an adapter's buffer. [`CancelWaiter`] gives it
//! the same guarantee: each poll registers the waker it was polled with
//! under the cancel status current *at that poll*, and cancelling that
//! status (or any status whose cancellation reaches it) wakes that waker.
//! [`cancel_point`] builds on it: any future becomes a cancel point.
//!
//! # Invariants
//!
//! 1. *A registration lives in its status.* Each registered waiter is one
//!    entry of its cancel status's `waiters` slab (see `cancel_status`);
//!    the waiter holds the status id and the entry's key. The entry goes
//!    when the waiter is dropped, re-registers under another status, or
//!    completes; and with the status itself when the scope exits (a
//!    waiter that outlives its scope then finds nothing and registers
//!    afresh under the status current at its next poll).
//! 2. *A cancel wakes each entry once.* When a status becomes effectively
//!    cancelled, `recompute` takes the wake target out of every entry of
//!    that status and wakes it (our own task wakers in place, foreign ones
//!    queued and woken by `Runtime::with_state` *after* the state borrow
//!    ends: no call-out under the borrow). The entry stays, empty, until
//!    the waiter's next poll, which sees the cancel and completes. Shields
//!    need nothing special: a shielded status whose own scope is not
//!    cancelled does not become effective, so its waiters are not woken.
//! 3. *Re-registered on every poll.* A waiter is tied to the status current
//!    when it was last polled. (Re-registering the same task's waker under
//!    the same status changes nothing, so a poll skips the state borrow
//!    when nothing can have changed: see invariant 4.) If the task has entered another scope since
//!    (the waiter moved into a `move_on_after` body, say), the next poll
//!    moves the registration there; until that poll, a cancel of the new
//!    scope does not wake it (nothing polls it there yet, so nothing is
//!    lost), and a cancel of the old one wakes it spuriously at worst.
//!
//! 4. *The used-up epoch.* A thread-local counter is bumped whenever a
//!    cancel takes the wake targets of some status's waiters (invariant
//!    2), the only way an entry loses its waker while it stays
//!    registered. A poll whose waiter registered, at the current epoch,
//!    the same plain task waker under the status that is current now
//!    returns `Pending` without touching the tables: its entry still holds
//!    that waker, and the status is not cancelled (it was not when the
//!    entry was made, and becoming so would have used the entry up and
//!    bumped the epoch). Any other case takes the full path. Runs on one
//!    thread share the counter, which only makes the shortcut rarer.
//!
//! 5. *Pending marks.* [`PendingMark`] is the same idea for registrations
//!    made by trio's own poll methods (the reactor's poll waiters, which
//!    are registered under the cancel status too): the reactor's poll path
//!    notes each plain-waker registration it makes (`note_armed`), and a
//!    mark holds while the thread's count of used-up remembered wakers
//!    (`runtime::targets_used`, bumped by every `State::wake_target`) has
//!    not moved, the waker is the same and the current status is the
//!    same. Readiness, a cancel and a close all use the poll waiter's
//!    waker up through `wake_target`, so an unmoved count means the
//!    registration is still there, unused.
//!
//! # The deadlock detector
//!
//! The run reports a deadlock only when nothing outside the runtime holds
//! a clone of a task waker ("counted" wakers, `core/waker.rs`). A waker
//! registered here is kept the way a park keeps one: one of ours (plain or
//! counted) is stored decoded and counts as nothing (the runtime's own
//! table is not "outside"); a foreign waker (a `FuturesUnordered`'s
//! per-future waker) is stored as a clone, and keeps alive whatever counted
//! waker it holds, so the detector stays conservative: a task waiting
//! inside foreign code is never reported as deadlocked while the waker it
//! could be woken through exists. A task blocked only in a cancel point
//! over a future that holds no waker is a real deadlock (only a cancel
//! could end it, and nothing is left to cancel it), and is reported.

use crate::core::cancel_status::CancelStatusId;
use crate::core::runtime::{self, State, WakeTarget};
use crate::core::slab::{Key, Slab};
use crate::core::waker::{OurWaker, WakerWord, classify};
use crate::error::{Error, Result};
use pin_project_lite::pin_project;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

thread_local! {
    /// Bumped when a cancel uses up waiters' entries (invariant 4).
    static USED_UP: Cell<u64> = const { Cell::new(0) };
}

/// The used-up epoch now (invariant 4).
fn used_up_epoch() -> u64 {
    USED_UP.with(Cell::get)
}

/// Where a [`CancelWaiter`] is registered: its run, its cancel status, and
/// its entry in that status's `waiters` (invariant 1); and, for the
/// shortcut of invariant 4, the task waker it holds (if it is a plain one
/// of the run) and the used-up epoch when it was stored.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Registration {
    run_id: u32,
    status: CancelStatusId,
    entry: Key,
    task: Option<WakerWord>,
    epoch: u64,
}

impl Registration {
    /// Whether a poll with `waker` would re-register exactly this, with
    /// the status not cancelled: invariant 4.
    fn still_holds(&self, waker: &Waker) -> bool {
        let Some(task) = self.task else {
            return false;
        };
        if used_up_epoch() != self.epoch
            || !matches!(classify(waker), Some(OurWaker::Plain(w)) if w == task)
        {
            return false;
        }
        runtime::with_runtime(|rt| {
            rt.settle_lazy();
            rt.run_id == self.run_id && rt.current_cancel_status.get() == self.status
        })
        .unwrap_or(false)
    }
}

/// What one poll of a waiter found (in the state borrow).
enum WaiterPoll {
    /// The status is cancelled; the old registration (if any) is gone.
    Cancelled,
    /// Registered (or updated) under the current status: the status, the
    /// entry, the task waker it holds if a plain one of the run, and the
    /// used-up epoch then.
    Registered(CancelStatusId, Key, Option<WakerWord>, u64),
}

impl State {
    /// Checks `status` and, unless it is cancelled, makes sure `waker` is
    /// registered under it, reusing `old` when it is the same status.
    fn poll_cancel_waiter(
        &mut self,
        old: Option<Registration>,
        status: CancelStatusId,
        waker: &Waker,
    ) -> WaiterPoll {
        let (run_id, shared_addr) = (self.run_id, self.shared_addr);
        if self.is_cancelled(status) {
            if let Some(old) = old {
                self.remove_cancel_waiter(old.status, old.entry);
            }
            return WaiterPoll::Cancelled;
        }
        // Read here, in the borrow: a cancel after it bumps it.
        let epoch = used_up_epoch();
        let task = match classify(waker) {
            Some(OurWaker::Plain(w)) if w.run == run_id as u16 => Some(w),
            _ => None,
        };
        if let Some(old) = old {
            if old.status == status
                && let Some(target) = self
                    .cancel_statuses
                    .get_mut(status)
                    .and_then(|s| s.waiters.as_deref_mut()?.get_mut(old.entry))
            {
                let replaced = target.update(waker, run_id, shared_addr);
                self.retire(replaced);
                return WaiterPoll::Registered(status, old.entry, task, epoch);
            }
            self.remove_cancel_waiter(old.status, old.entry);
        }
        let mut target = WakeTarget::NONE;
        // Replaces nothing: `NONE` has nothing to retire.
        let _ = target.update(waker, run_id, shared_addr);
        match self.cancel_statuses.get_mut(status) {
            Some(s) => {
                let waiters = s.waiters.get_or_insert_with(|| Box::new(Slab::new()));
                WaiterPoll::Registered(status, waiters.insert(target), task, epoch)
            }
            // The current status always exists while code runs under it;
            // were it gone, nothing could cancel it: wait, registered
            // nowhere, and register again at the next poll.
            None => {
                self.retire(target);
                WaiterPoll::Registered(status, Key::DANGLING, None, epoch)
            }
        }
    }

    /// Removes a waiter's entry (its waker dropped after the borrow).
    fn remove_cancel_waiter(&mut self, status: CancelStatusId, entry: Key) {
        let removed = self
            .cancel_statuses
            .get_mut(status)
            .and_then(|s| s.waiters.as_deref_mut()?.remove(entry));
        if let Some(target) = removed {
            self.retire(target);
        }
    }

    /// Wakes every waiter registered under `status` (invariant 2); called
    /// by `recompute` when `status` becomes cancelled.
    pub(super) fn wake_cancel_waiters(&mut self, status: CancelStatusId) {
        let Some(waiters) = self
            .cancel_statuses
            .get(status)
            .and_then(|s| s.waiters.as_deref())
            .filter(|w| w.iter().next().is_some())
        else {
            return;
        };
        // Entries are used up below (invariant 4).
        USED_UP.with(|c| c.set(c.get().wrapping_add(1)));
        // Keys first: waking needs `&mut self` (the allocation is paid only
        // by a status that has waiters, once per cancel).
        let entries: Vec<Key> = waiters.iter().map(|(k, _)| k).collect();
        for entry in entries {
            let target = self
                .cancel_statuses
                .get_mut(status)
                .and_then(|s| s.waiters.as_deref_mut()?.get_mut(entry))
                .map(std::mem::take);
            if let Some(target) = target {
                self.wake_target(target);
            }
        }
    }
}

/// Wakes the waker it was last polled with when the cancel status current
/// at that poll is cancelled: a cancel waiter without a park, for futures
/// polled inside foreign combinators (`FuturesUnordered`, `select!`).
///
/// Poll it with [`poll_cancelled`](Self::poll_cancelled) from a
/// hand-written future (typically just before returning `Pending`), or
/// await it: it completes with `Cancelled` when the scope around it is
/// cancelled, and never otherwise.
///
/// - Each poll registers the waker under the cancel status current *then*
///   (re-registering if the task has moved into another scope since).
/// - Shields are respected: inside a shielded scope, only that scope's own
///   cancellation wakes it.
/// - Dropping it removes the registration (and so does the exit of the
///   scope it was registered in). Outside a run, polling it is a
///   [`Usage`](crate::ErrorKind::Usage) error.
/// - A registered waker that is one of trio's own counts as nothing for
///   the deadlock detector (as a park's does); a foreign one is held by
///   the run, and whatever trio waker it holds counts as held outside (the
///   detector never reports a task that could still be woken).
///
/// ```
/// use std::task::Poll;
/// use trio::lowlevel::CancelWaiter;
///
/// trio::run(async {
///     let scope = trio::CancelScope::new();
///     let r = scope
///         .run(async {
///             let mut waiter = CancelWaiter::new();
///             // A hand-written wait: registered, not cancelled yet.
///             let first = std::future::poll_fn(|cx| Poll::Ready(waiter.poll_cancelled(cx))).await;
///             assert!(first.is_pending() && waiter.is_registered());
///             scope.cancel();
///             Err::<(), _>(waiter.wait().await) // completes at once now
///         })
///         .await?;
///     assert_eq!(r, None); // the scope caught its own Cancelled
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Default)]
pub struct CancelWaiter {
    registration: Option<Registration>,
}

impl CancelWaiter {
    /// A waiter, registered nowhere until its first poll. Needs no run.
    pub const fn new() -> Self {
        CancelWaiter { registration: None }
    }

    /// `Ready(Cancelled)` if the code polling it is in a cancelled scope
    /// (a completed cancel point); otherwise registers `cx`'s waker under
    /// the current cancel status and returns `Pending`. Outside a run,
    /// `Ready` with a [`Usage`](crate::ErrorKind::Usage) error.
    ///
    /// After `Ready` the registration is gone; polling again checks again
    /// (cancellation is level-triggered).
    pub fn poll_cancelled(&mut self, cx: &mut Context<'_>) -> Poll<Error> {
        if self.registration.is_some_and(|r| r.still_holds(cx.waker())) {
            // Invariant 4: registered as this poll would register it.
            return Poll::Pending;
        }
        let old = self.registration.take();
        let polled = runtime::with_runtime(|rt| {
            rt.settle_lazy();
            let status = rt.current_cancel_status.get();
            // A registration of another run is not ours to touch (that
            // run's table went with it).
            let old = old.filter(|r| r.run_id == rt.run_id);
            let polled = rt.with_state(|st| st.poll_cancel_waiter(old, status, cx.waker()));
            match polled {
                WaiterPoll::Cancelled => {
                    rt.count_checkpoint(false, true);
                    None
                }
                WaiterPoll::Registered(status, entry, task, epoch) => Some(Registration {
                    run_id: rt.run_id,
                    status,
                    entry,
                    task,
                    epoch,
                }),
            }
        });
        match polled {
            None => Poll::Ready(Error::outside_run()),
            Some(None) => Poll::Ready(Error::cancelled()),
            Some(Some(registration)) => {
                self.registration = Some(registration);
                Poll::Pending
            }
        }
    }

    /// The check of [`poll_cancelled`](Self::poll_cancelled) alone, for a
    /// future that checks on every poll but registers only when it is
    /// about to return `Pending` (a poll that completes needs no waker
    /// kept): `Err(Cancelled)` if the code polling it is in a cancelled
    /// scope (a completed cancel point; the registration, if any, is
    /// removed), a [`Usage`](crate::ErrorKind::Usage) error outside a run,
    /// else `Ok(())`, leaving the registration as it is. It touches no
    /// table: while no cancel status of the thread's runs is cancelled it
    /// is two thread-local loads, else a look at the current status.
    ///
    /// ```
    /// use std::task::Poll;
    /// use trio::lowlevel::CancelWaiter;
    ///
    /// trio::run(async {
    ///     let scope = trio::CancelScope::new();
    ///     scope
    ///         .run(async {
    ///             let mut waiter = CancelWaiter::new();
    ///             waiter.check()?; // not cancelled: registers nothing
    ///             assert!(!waiter.is_registered());
    ///             scope.cancel();
    ///             let e = waiter.check().unwrap_err();
    ///             assert!(e.is_cancelled());
    ///             Err::<(), _>(e)
    ///         })
    ///         .await?;
    ///     Ok(())
    /// })
    /// .unwrap();
    /// let outside = CancelWaiter::new().check().unwrap_err();
    /// assert_eq!(outside.kind(), trio::ErrorKind::Usage);
    /// ```
    #[inline]
    pub fn check(&mut self) -> Result<()> {
        // Two thread-local loads while no status of this thread's runs is
        // cancelled (`cancel_status`, invariant 6): nothing to look up.
        if crate::core::cancel_status::no_status_cancelled() && runtime::is_in_run() {
            return Ok(());
        }
        self.check_slow()
    }

    /// [`check`](Self::check) when some status is cancelled (or outside a
    /// run).
    #[cold]
    #[inline(never)]
    fn check_slow(&mut self) -> Result<()> {
        let cancelled = runtime::with_runtime(|rt| {
            // No `settle_lazy`: a nursery not registered yet has a status
            // that is cancelled exactly when its parent's (the current
            // one) is. A borrowed state (a conversion inside the
            // runtime's own borrow) reads as not cancelled.
            let cancelled = is_cancelled_now(rt);
            if cancelled {
                rt.count_checkpoint(false, true);
            }
            cancelled
        });
        match cancelled {
            None => Err(Error::outside_run()),
            Some(false) => Ok(()),
            Some(true) => {
                self.reset();
                Err(Error::cancelled())
            }
        }
    }

    /// Waits until the scope around the caller is cancelled; returns that
    /// `Cancelled` (or a `Usage` error outside a run).
    pub fn wait(&mut self) -> impl Future<Output = Error> + '_ {
        std::future::poll_fn(move |cx| self.poll_cancelled(cx))
    }

    /// Whether a poll left a waker registered: true from a `Pending` poll
    /// until the next `Ready` one, [`reset`](Self::reset) or drop (even if
    /// a cancel has used the waker up since, or the scope it was
    /// registered in has exited, which removed the entry).
    pub fn is_registered(&self) -> bool {
        self.registration.is_some()
    }

    /// Removes the registration, if any (as dropping does); the next poll
    /// registers again. For a future that completed and keeps its waiter.
    pub fn reset(&mut self) {
        let Some(r) = self.registration.take() else {
            return;
        };
        runtime::with_runtime(|rt| {
            if rt.run_id == r.run_id {
                rt.with_state(|st| st.remove_cancel_waiter(r.status, r.entry));
            }
        });
    }
}

impl Drop for CancelWaiter {
    fn drop(&mut self) {
        self.reset();
    }
}

impl Future for CancelWaiter {
    type Output = Error;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Error> {
        self.get_mut().poll_cancelled(cx)
    }
}

impl fmt::Debug for CancelWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelWaiter")
            .field("registered", &self.registration.is_some())
            .finish()
    }
}

pin_project! {
    /// The future of [`cancel_point`]: `inner`, made a cancel point.
    #[must_use = "a cancel point does nothing unless awaited"]
    pub struct CancelPoint<F> {
        // Declared first so it drops first (before the waiter deregisters).
        #[pin]
        inner: Option<F>,
        waiter: CancelWaiter,
    }
}

/// Makes any future — typically a foreign one — a cancel point: while the
/// scope around it is cancelled, it drops `fut` and returns `Cancelled`;
/// otherwise it polls `fut`, and while `fut` is pending, a cancel wakes it
/// (through a [`CancelWaiter`]) even when `fut` itself waits on something
/// trio knows nothing about, and even when it is polled inside foreign
/// combinators.
///
/// - Checked before every poll of `fut`, so a scope cancelled before the
///   first poll drops `fut` unpolled. A `fut` that completes in the poll
///   during which its scope is cancelled gives its value (`Ok`).
/// - Not a schedule point. Counts as one cancel point when it completes.
/// - **The limit:** trio's own operations promise that a `Cancelled`
///   means they had no effect (DESIGN §5); foreign code cannot promise
///   that. A dropped `fut` may have done part of its work (sent part of a
///   request, taken a value from a foreign channel and dropped it). Use it
///   where dropping `fut` is what cancelling it should mean.
///
/// ```
/// use trio::lowlevel::cancel_point;
/// use trio::testing::MockClock;
///
/// trio::Runner::new().clock(MockClock::autojump()).run(async {
///     // A foreign future that never finishes and knows nothing of trio.
///     let r = trio::move_on_after(1.0, cancel_point(std::future::pending::<()>())).await?;
///     assert_eq!(r, None); // the deadline cancelled it, and it was dropped
///     let v = cancel_point(async { 7 }).await?;
///     assert_eq!(v, 7);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn cancel_point<F: Future>(fut: F) -> CancelPoint<F> {
    CancelPoint {
        inner: Some(fut),
        waiter: CancelWaiter::new(),
    }
}

impl<F: Future> Future for CancelPoint<F> {
    type Output = Result<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(Error::usage(
                "a cancel point was polled after it completed",
            )));
        };
        // The check and the registration, in one state borrow.
        if let Poll::Ready(e) = this.waiter.poll_cancelled(cx) {
            // Dropped here, in place, outside any borrow.
            this.inner.set(None);
            return Poll::Ready(Err(e));
        }
        let value = match inner.poll(cx) {
            Poll::Ready(v) => v,
            Poll::Pending => return Poll::Pending,
        };
        this.inner.set(None);
        this.waiter.reset();
        runtime::with_runtime(|rt| rt.count_checkpoint(false, true));
        Poll::Ready(Ok(value))
    }
}

impl<F> fmt::Debug for CancelPoint<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelPoint")
            .field("done", &self.inner.is_none())
            .field("waiter", &self.waiter)
            .finish_non_exhaustive()
    }
}

/// Whether the code being polled right now is inside a cancelled scope:
/// what a checkpoint would report, without being one (nothing is counted,
/// nothing yields). Inside a shielded scope, only that scope's own
/// cancellation counts. An error outside a run.
///
/// For code that must decide whose a `Cancelled` is (see
/// [`ForeignCancelled`](crate::ForeignCancelled)).
///
/// ```
/// use trio::lowlevel::current_task_is_cancelled;
/// trio::run(async {
///     assert!(!current_task_is_cancelled()?);
///     let scope = trio::CancelScope::new();
///     scope.cancel();
///     scope
///         .run(async {
///             assert!(current_task_is_cancelled()?);
///             trio::CancelScope::new()
///                 .with_shield(true)
///                 .run(async { Ok(assert!(!current_task_is_cancelled()?)) })
///                 .await?;
///             Ok(())
///         })
///         .await?;
///     Ok(())
/// })
/// .unwrap();
/// assert!(current_task_is_cancelled().is_err()); // outside a run
/// ```
pub fn current_task_is_cancelled() -> Result<bool> {
    runtime::with_runtime(|rt| is_cancelled_now(rt)).ok_or_else(Error::outside_run)
}

/// [`current_task_is_cancelled`] in a run; false (not a panic) if the state
/// is borrowed, which only a conversion inside the runtime's own borrow
/// could cause.
pub(crate) fn is_cancelled_now(rt: &runtime::Runtime) -> bool {
    !crate::core::cancel_status::no_status_cancelled()
        && rt
            .state
            .try_borrow()
            .is_ok_and(|st| st.is_cancelled(rt.current_cancel_status.get()))
}

thread_local! {
    /// The mark of the last poll waiter armed on this thread (see
    /// [`PendingMark::watch`]): set by the reactor's poll path, taken by
    /// `watch`, which clears it first.
    static ARMED: Cell<Option<PendingMark>> = const { Cell::new(None) };
}

/// A mark left by one of trio's own poll methods (a socket's or a pipe's
/// `poll_receive` or `poll_send`) that returned `Pending` after
/// registering its waker in trio's reactor, under the task's cancel status
/// (see `NativePoll::pending_wakes_on_cancel` in trio-compat), so that the
/// next poll can tell, in a few loads, that the registration is still
/// exactly what it would make again, and return `Pending` at once.
///
/// [`still_holds`](Self::still_holds) is true while the runs on this
/// thread have used up no remembered waker since the registration
/// (readiness, a cancel, a close: each wakes through the waker it uses
/// up, and every such wake is counted), the waker given is the same plain
/// task waker of the current run, and the code polling is under the same
/// cancel status. Then the registration is still in place, unused.
/// (Anything else only makes it false: a poll that then does its full
/// work is never wrong.) A foreign waker makes no mark.
///
/// For poll-based adapters over trio's poll methods, which may poll the
/// same stream twice in one task step (hyper reads for the end of a
/// keep-alive request and then for the next head). A second poller of
/// the same direction replacing the waker without a wake (a caller's bug
/// that loses a wake-up anyway, as in tokio) is not seen.
///
/// ```
/// use std::task::Poll;
/// use trio::lowlevel::PendingMark;
/// use trio::socket::SocketStream;
///
/// trio::run(async {
///     let (_a, b) = SocketStream::unix_pair()?;
///     let mut buf = [0; 4];
///     std::future::poll_fn(|cx| {
///         let (polled, mark) = PendingMark::watch(cx, |cx| b.poll_receive(cx, &mut buf));
///         assert!(polled.is_pending()); // nothing sent: registered in the reactor
///         assert!(mark.expect("a task's own waker").still_holds(cx.waker()));
///         Poll::Ready(())
///     })
///     .await;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PendingMark {
    run_id: u32,
    status: CancelStatusId,
    task: WakerWord,
    targets_used: u64,
}

impl PendingMark {
    /// Runs `poll`, a poll of one of trio's own poll methods with `cx`,
    /// and returns its outcome with the mark of the registration it made
    /// if it returned `Pending` having registered `cx`'s waker (a plain
    /// task waker of the current run) in trio's reactor; else `None`.
    #[inline]
    pub fn watch<T>(
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> (Poll<T>, Option<PendingMark>) {
        ARMED.with(|a| a.set(None));
        let polled = poll(cx);
        if polled.is_ready() {
            return (polled, None);
        }
        let mark = ARMED
            .with(Cell::take)
            .filter(|m| matches!(classify(cx.waker()), Some(OurWaker::Plain(w)) if w == m.task));
        (polled, mark)
    }

    /// Whether a poll with `waker` may return `Pending` now without
    /// registering again (see the type's docs).
    #[inline]
    pub fn still_holds(&self, waker: &Waker) -> bool {
        if runtime::targets_used() != self.targets_used
            || !matches!(classify(waker), Some(OurWaker::Plain(w)) if w == self.task)
        {
            return false;
        }
        runtime::with_runtime(|rt| {
            rt.settle_lazy();
            rt.run_id == self.run_id && rt.current_cancel_status.get() == self.status
        })
        .unwrap_or(false)
    }
}

/// Records the registration the reactor's poll path has just made: a
/// poll waiter of the current run armed with `task`'s plain waker under
/// `status`, when `targets_used` remembered wakers had been used up (read
/// before the registration). See [`PendingMark::watch`].
pub(crate) fn note_armed(run_id: u32, status: CancelStatusId, task: WakerWord, targets_used: u64) {
    ARMED.with(|a| {
        a.set(Some(PendingMark {
            run_id,
            status,
            task,
            targets_used,
        }))
    });
}

#[cfg(test)]
mod tests {
    use super::{CancelWaiter, PendingMark};
    use std::task::Poll;

    /// A pending mark holds while nothing happens, not under another
    /// cancel status, and no longer once readiness has used the poll
    /// waiter's waker up (the run loop polls I/O at least every
    /// `IO_POLL_INTERVAL` batches, so a bounded number of checkpoints
    /// sees it).
    #[test]
    fn a_pending_mark_holds_until_its_registration_is_used() {
        crate::run(async {
            let (a, b) = crate::socket::SocketStream::unix_pair()?;
            let mut buf = [0; 4];
            let mark = poll_fn(|cx| {
                let (polled, mark) = PendingMark::watch(cx, |cx| b.poll_receive(cx, &mut buf));
                assert!(polled.is_pending());
                let mark = mark.expect("a task's plain waker");
                assert!(mark.still_holds(cx.waker()));
                Poll::Ready(mark)
            })
            .await;
            let holds = || poll_fn(|cx| Poll::Ready(mark.still_holds(cx.waker())));
            assert!(holds().await);
            let inner = CancelScope::new().run(async { Ok(holds().await) }).await?;
            assert_eq!(inner, Some(false));
            crate::stream::SendStream::send_all(&a, b"x").await?;
            let mut checkpoints = 0;
            while holds().await {
                crate::lowlevel::checkpoint().await?;
                checkpoints += 1;
                assert!(checkpoints < 1000, "readiness never used the waker up");
            }
            Ok(())
        })
        .unwrap();
    }
    use crate::CancelScope;
    use std::cell::Cell;
    use std::future::poll_fn;

    /// Invariant 4: a second poll with the same task waker takes the
    /// shortcut; a registration used up by a cancel (the task woken) is
    /// renewed at the next poll even though its status is no longer
    /// cancelled by then (re-shielded), so a later cancel still wakes the
    /// task (else the run would end in a deadlock).
    #[test]
    fn a_used_up_registration_is_renewed() {
        let polls = Cell::new(0);
        let outer = CancelScope::new();
        let inner = CancelScope::new().with_shield(true);
        crate::Runner::new()
            .clock(crate::testing::MockClock::autojump())
            .run(async {
                crate::open_nursery(async |n| {
                    n.start_soon(async {
                        outer
                            .run(async {
                                inner
                                    .run(async {
                                        let mut waiter = CancelWaiter::new();
                                        let e = poll_fn(|cx| {
                                            polls.set(polls.get() + 1);
                                            let polled = waiter.poll_cancelled(cx);
                                            if polled.is_pending() {
                                                // The shortcut: same waker, status, epoch.
                                                assert!(waiter.poll_cancelled(cx).is_pending());
                                            }
                                            polled
                                        })
                                        .await;
                                        Err::<(), _>(e)
                                    })
                                    .await
                            })
                            .await?;
                        Ok(())
                    });
                    crate::testing::wait_all_tasks_blocked().await?;
                    outer.cancel(); // inner is shielded: nothing yet
                    inner.set_shield(false); // the entry is used up, the task woken
                    inner.set_shield(true); // not cancelled any more
                    crate::testing::wait_all_tasks_blocked().await?;
                    assert_eq!(polls.get(), 2);
                    inner.cancel();
                    Ok(())
                })
                .await
            })
            .unwrap();
        assert_eq!(polls.get(), 3);
        assert!(inner.cancelled_caught());
    }
}
