//! Cancel scopes: cancellation and timeouts that nest and compose.
//!
//! A scope wraps a future. While the future is polled, the scope's *cancel
//! status* (a node in the run's cancel-status tree, see `cancel_status`) is
//! the current one, so every checkpoint inside sees whether it is
//! cancelled: a cancel status is cancelled if its scope was cancelled (by
//! [`CancelScope::cancel`] or an expired deadline) or, unless it is
//! shielded, if its parent is.
//! Cancellation is level-triggered: every checkpoint inside fails with
//! `Cancelled` until the scope is exited.
//!
//! When the wrapped future finishes, the scope decides what to catch: its
//! own cancellation (every `Cancelled` among the errors) is absorbed iff the
//! scope was cancelled and the cancellation of its parent is not visible to
//! it. So with nested cancelled scopes the outermost cancelled one below a
//! shield catches, and an error that is not `Cancelled` always propagates.
//!
//! Cost: a scope costs a cancel-status-table entry on entry and exit (no
//! allocation once warm); a deadline adds one heap push. Nothing is done per
//! poll beyond swapping the current cancel status in and out.
//!
//! [`CancelScope`] is the handle form, shareable between tasks and usable
//! before the scope is entered; [`move_on_after`] and friends are the
//! everyday forms.

use crate::core::cancel_handle::HandleShared;
use crate::core::cancel_status::{
    CancelStatusExit, CancelStatusId, CancelStatusKind, NewCancelStatus,
};
use crate::core::runtime::{self, Runtime};
use crate::core::token::RunHandle;
use crate::error::{Error, ErrorKind, Result};
use crate::time::{Instant, TryIntoDuration};
use pin_project_lite::pin_project;
use std::cell::{Cell, OnceCell};
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// An entered cancel status; exits it when dropped (for futures dropped mid-way).
pub(crate) struct CancelStatusGuard {
    pub(crate) rt: Rc<Runtime>,
    pub(crate) cancel_status: CancelStatusId,
    armed: bool,
    /// The handle to leave the scope's final state in, if there is one.
    handle: Option<Rc<ScopeInner>>,
}

impl CancelStatusGuard {
    pub(crate) fn enter(
        rt: &Rc<Runtime>,
        kind: CancelStatusKind,
        shield: bool,
        cancel_called: bool,
        deadline: Instant,
    ) -> CancelStatusGuard {
        rt.settle_lazy();
        let parent = rt.current_cancel_status.get();
        let owner = rt.current_task.get();
        let now = if deadline.is_finite() {
            rt.now()
        } else {
            Instant::NEG_INFINITY
        };
        let status = rt.with_state(|st| {
            let spec = NewCancelStatus {
                parent: Some(parent),
                kind,
                owner,
                shield,
                cancel_called,
                deadline,
            };
            st.enter_cancel_status(spec, now)
        });
        CancelStatusGuard {
            rt: rt.clone(),
            cancel_status: status,
            armed: true,
            handle: None,
        }
    }

    /// Copies the cancel status's final state into the handle, before it goes.
    fn leave_state_in_handle(&self) {
        let Some(inner) = &self.handle else { return };
        let now = self.rt.now();
        if let Some(s) = self
            .rt
            .state
            .borrow()
            .cancel_statuses
            .get(self.cancel_status)
        {
            inner
                .cancel_called
                .set(s.cancel_called || s.deadline <= now);
            inner.deadline.set(s.deadline);
            inner.shield.set(s.shield);
        }
        inner.phase.set(Phase::Exited);
        if let Some(h) = inner.handle.get() {
            h.exited(inner.cancel_called.get());
        }
    }

    /// Polls `fut` with this cancel status current.
    pub(crate) fn poll_in<F: Future + ?Sized>(
        &self,
        fut: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        let _restore = RestoreCancelStatus {
            rt: &self.rt,
            saved: self.rt.current_cancel_status.replace(self.cancel_status),
        };
        fut.poll(cx)
    }

    /// Exits the scope with the body's error, if any.
    pub(crate) fn exit(mut self, error: Option<Error>) -> CancelStatusExit {
        self.armed = false;
        self.leave_state_in_handle();
        self.rt
            .with_state(|st| st.exit_cancel_status(self.cancel_status, error))
    }
}

/// Puts the previous cancel status back even if the poll panics, so a panic
/// caught further up does not leave a dead scope current.
struct RestoreCancelStatus<'a> {
    rt: &'a Runtime,
    saved: CancelStatusId,
}

impl Drop for RestoreCancelStatus<'_> {
    fn drop(&mut self) {
        self.rt.current_cancel_status.set(self.saved);
    }
}

impl Drop for CancelStatusGuard {
    fn drop(&mut self) {
        if self.armed {
            self.leave_state_in_handle();
            let status = self.cancel_status;
            self.rt.with_state(|st| st.remove_cancel_status(status));
        }
    }
}

/// How a scope's run ended.
struct ScopeOutcome<T> {
    /// `Ok(Some(v))` if the future finished, `Ok(None)` if the scope caught
    /// its cancellation and nothing else failed, else what propagates.
    result: Result<Option<T>>,
    /// Whether the scope caught a `Cancelled`.
    caught: bool,
}

/// Runs `fut` inside an entered cancel status and exits it. Shared by every scope form.
async fn run_in_cancel_status<T>(
    guard: CancelStatusGuard,
    fut: impl Future<Output = Result<T>>,
) -> ScopeOutcome<T> {
    let mut fut = pin!(fut);
    let result = std::future::poll_fn(|cx| guard.poll_in(fut.as_mut(), cx)).await;
    match result {
        Ok(v) => {
            // Without an error there is nothing to catch.
            let _ = guard.exit(None);
            ScopeOutcome {
                result: Ok(Some(v)),
                caught: false,
            }
        }
        Err(e) => {
            let exit = guard.exit(Some(e));
            ScopeOutcome {
                result: exit.error.map_or(Ok(None), Err),
                caught: exit.caught,
            }
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    Fresh,
    Active,
    Exited,
}

struct ScopeInner {
    phase: Cell<Phase>,
    cancel_status: Cell<Option<CancelStatusId>>,
    run_id: Cell<u32>,
    cancel_called: Cell<bool>,
    deadline: Cell<Instant>,
    relative: Cell<Option<Duration>>,
    shield: Cell<bool>,
    caught: Cell<bool>,
    /// What the scope shares with its `CancelHandle`s, made by the first
    /// `handle()` call (see `cancel_handle`).
    handle: OnceCell<Arc<HandleShared>>,
}

/// A cancel scope you can hold: cancel it from any task, move its deadline,
/// shield it, and ask afterwards what happened.
///
/// Create it, configure it, then [`run`](CancelScope::run) a future inside it
/// (once). Clones are handles to the same scope.
///
/// ```
/// use trio::CancelScope;
/// trio::run(async {
///     let scope = CancelScope::new();
///     let out = scope
///         .run(async {
///             scope.cancel();
///             trio::sleep_forever().await?; // fails at once: the scope is cancelled
///             Ok("unreachable")
///         })
///         .await?;
///     assert_eq!(out, None); // the scope caught its own cancellation
///     assert!(scope.cancel_called() && scope.cancelled_caught());
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct CancelScope {
    inner: Rc<ScopeInner>,
}

impl Default for CancelScope {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelScope {
    /// A scope with no deadline, not shielded, not cancelled.
    pub fn new() -> Self {
        CancelScope {
            inner: Rc::new(ScopeInner {
                phase: Cell::new(Phase::Fresh),
                cancel_status: Cell::new(None),
                run_id: Cell::new(0),
                cancel_called: Cell::new(false),
                deadline: Cell::new(Instant::INFINITY),
                relative: Cell::new(None),
                shield: Cell::new(false),
                caught: Cell::new(false),
                handle: OnceCell::new(),
            }),
        }
    }

    /// This scope, with its deadline set to `deadline` (a builder form of
    /// [`set_deadline`](Self::set_deadline)). With the other `with_…`
    /// builders, any scope is one expression:
    ///
    /// ```
    /// use trio::CancelScope;
    /// use trio::testing::MockClock;
    /// trio::Runner::new().clock(MockClock::autojump()).run(async {
    ///     let t0 = trio::current_time();
    ///     let r = CancelScope::new()
    ///         .with_deadline(t0 + 2.0)
    ///         .with_shield(true)
    ///         .run(trio::sleep_forever())
    ///         .await?;
    ///     assert_eq!(r, None);
    ///     assert_eq!(trio::current_time() - t0, 2.0);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn with_deadline(self, deadline: Instant) -> Self {
        self.set_deadline(deadline);
        self
    }

    /// This scope, with a deadline `duration` after the moment it is
    /// entered (a builder form of
    /// [`set_relative_deadline`](Self::set_relative_deadline)); an
    /// [`ErrorKind::InvalidArgument`] error for a negative or NaN duration.
    ///
    /// ```
    /// # trio::Runner::new().clock(trio::testing::MockClock::autojump()).run(async {
    /// let scope = trio::CancelScope::new().with_relative_deadline(1.5)?;
    /// assert_eq!(scope.run(trio::sleep_forever()).await?, None);
    /// assert_eq!(trio::current_time().as_secs_f64(), 1.5);
    /// # Ok(()) }).unwrap();
    /// ```
    pub fn with_relative_deadline(self, duration: impl TryIntoDuration) -> Result<Self> {
        self.set_relative_deadline(duration)?;
        Ok(self)
    }

    /// This scope, shielded or not (a builder form of
    /// [`set_shield`](Self::set_shield)).
    pub fn with_shield(self, shield: bool) -> Self {
        self.set_shield(shield);
        self
    }

    /// A scope attached to an already-entered cancel status (a nursery's scope).
    pub(crate) fn for_cancel_status(rt: &Runtime, status: CancelStatusId) -> Self {
        let s = Self::new();
        s.inner.phase.set(Phase::Active);
        s.inner.cancel_status.set(Some(status));
        s.inner.run_id.set(rt.run_id);
        s
    }

    /// Marks a handle as belonging to a scope that has ended.
    pub(crate) fn mark_exited(&self) {
        self.inner.phase.set(Phase::Exited);
        if let Some(h) = self.inner.handle.get() {
            h.exited(self.inner.cancel_called.get());
        }
    }

    /// The block this scope shares with its `CancelHandle`s (made on first use).
    pub(crate) fn handle_shared(&self) -> Arc<HandleShared> {
        self.inner
            .handle
            .get_or_init(|| {
                let active = self
                    .active()
                    .map(|(rt, status)| (RunHandle::of(&rt.shared), status));
                let exited = self.inner.phase.get() == Phase::Exited;
                HandleShared::new(self.inner.cancel_called.get(), active, exited)
            })
            .clone()
    }

    /// The runtime and cancel status of this scope while it is active.
    fn active(&self) -> Option<(Rc<Runtime>, CancelStatusId)> {
        if self.inner.phase.get() != Phase::Active {
            return None;
        }
        let status = self.inner.cancel_status.get()?;
        let rt = runtime::with_runtime(Rc::clone)?;
        let live = rt.run_id == self.inner.run_id.get()
            && rt.state.borrow().cancel_statuses.get(status).is_some();
        if !live {
            // Its run or its cancel status is gone: it has ended.
            self.mark_exited();
            return None;
        }
        Some((rt, status))
    }

    /// Cancels the scope: every checkpoint inside fails with `Cancelled`
    /// until it exits, and tasks blocked inside wake at once. Idempotent;
    /// works before the scope is entered (it will start cancelled) and after
    /// it exited (no effect).
    pub fn cancel(&self) {
        self.inner.cancel_called.set(true);
        if let Some(h) = self.inner.handle.get() {
            h.note_cancel();
        }
        if let Some((rt, status)) = self.active() {
            rt.with_state(|st| st.cancel(status));
        }
    }

    /// Whether [`cancel`](Self::cancel) was called or the deadline passed.
    ///
    /// On a scope that is active, or not yet entered, a passed deadline
    /// counts as a call to `cancel` right now (as in Trio): it sticks, even
    /// if the deadline is moved later afterwards.
    pub fn cancel_called(&self) -> bool {
        if self.inner.cancel_called.get() {
            return true;
        }
        if self
            .inner
            .handle
            .get()
            .is_some_and(|h| h.is_cancel_called())
        {
            // Through a handle (before entry, or posted and not yet run).
            self.inner.cancel_called.set(true);
            return true;
        }
        let deadline_passed = match self.inner.phase.get() {
            Phase::Exited => false,
            Phase::Fresh => {
                let deadline = self.inner.deadline.get();
                deadline != Instant::INFINITY
                    && runtime::with_runtime(|rt| rt.now()).is_some_and(|now| deadline <= now)
            }
            Phase::Active => match self.active() {
                Some((rt, status)) => {
                    let now = rt.now();
                    let st = rt.state.borrow();
                    match st.cancel_statuses.get(status) {
                        Some(s) if s.cancel_called => return true,
                        Some(s) => s.deadline <= now,
                        None => false,
                    }
                }
                None => false,
            },
        };
        if deadline_passed {
            self.cancel();
        }
        self.inner.cancel_called.get()
    }

    /// Whether the scope absorbed a `Cancelled` when it exited.
    pub fn cancelled_caught(&self) -> bool {
        self.inner.caught.get()
    }

    /// The absolute deadline (`Instant::INFINITY` if none).
    pub fn deadline(&self) -> Instant {
        if let Some((rt, status)) = self.active() {
            return rt
                .state
                .borrow()
                .cancel_statuses
                .get(status)
                .map_or(Instant::INFINITY, |s| s.deadline);
        }
        self.inner.deadline.get()
    }

    /// Sets the absolute deadline; on an active scope it takes effect at
    /// once (a deadline in the past cancels it). Clears a relative deadline
    /// that was not yet applied.
    pub fn set_deadline(&self, deadline: Instant) {
        self.inner.relative.set(None);
        self.inner.deadline.set(deadline);
        if let Some((rt, status)) = self.active() {
            let now = rt.now();
            rt.with_state(|st| st.set_deadline(status, deadline, now));
        }
    }

    /// The relative deadline, if one is set and not yet applied.
    pub fn relative_deadline(&self) -> Option<Duration> {
        self.inner.relative.get()
    }

    /// Sets a deadline relative to the moment of entry. Only before entry:
    /// an entered scope has an absolute deadline (a usage error otherwise).
    pub fn set_relative_deadline(&self, duration: impl TryIntoDuration) -> Result<()> {
        let d = duration.try_into_duration()?;
        if self.inner.phase.get() != Phase::Fresh {
            return Err(Error::usage(
                "relative deadlines are fixed at entry; use set_deadline on an entered scope",
            ));
        }
        self.inner.relative.set(Some(d));
        self.inner.deadline.set(Instant::INFINITY);
        Ok(())
    }

    /// Whether the scope is shielded from cancellation outside it.
    pub fn shield(&self) -> bool {
        if let Some((rt, status)) = self.active() {
            return rt
                .state
                .borrow()
                .cancel_statuses
                .get(status)
                .is_some_and(|s| s.shield);
        }
        self.inner.shield.get()
    }

    /// Shields (or unshields) the scope. Takes effect at once: unshielding
    /// under a cancelled parent wakes the tasks blocked inside.
    pub fn set_shield(&self, shield: bool) {
        self.inner.shield.set(shield);
        if let Some((rt, status)) = self.active() {
            rt.with_state(|st| st.set_shield(status, shield));
        }
    }

    /// Runs `fut` inside this scope. Returns `Ok(Some(v))` if it finished,
    /// `Ok(None)` if the scope caught its own cancellation, and otherwise its
    /// error. A scope can be entered once; a second `run` is a usage error.
    pub async fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<Option<T>> {
        if self.inner.phase.get() != Phase::Fresh {
            return Err(Error::usage("a CancelScope can be entered only once"));
        }
        let rt = runtime::current()?;
        let deadline = match self.inner.relative.take() {
            Some(d) => rt.now() + d,
            None => self.inner.deadline.get(),
        };
        let mut guard = CancelStatusGuard::enter(
            &rt,
            CancelStatusKind::Scope,
            self.inner.shield.get(),
            self.inner.cancel_called.get(),
            deadline,
        );
        guard.handle = Some(self.inner.clone());
        self.inner.cancel_status.set(Some(guard.cancel_status));
        self.inner.run_id.set(rt.run_id);
        self.inner.phase.set(Phase::Active);
        if let Some(h) = self.inner.handle.get()
            && h.entered(RunHandle::of(&rt.shared), guard.cancel_status)
        {
            // A handle cancelled it before entry (maybe from another thread
            // just now): it starts cancelled.
            self.inner.cancel_called.set(true);
            let status = guard.cancel_status;
            rt.with_state(|st| st.cancel(status));
        }
        let outcome = run_in_cancel_status(guard, fut).await;
        self.inner.caught.set(outcome.caught);
        outcome.result
    }
}

impl fmt::Debug for CancelScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelScope")
            .field("phase", &self.inner.phase.get())
            .field("deadline", &self.deadline())
            .field("shield", &self.shield())
            .field("cancel_called", &self.cancel_called())
            .field("cancelled_caught", &self.cancelled_caught())
            .finish()
    }
}

/// When a timeout scope's deadline is, as given to the helper.
enum Deadline {
    /// Absolute (`move_on_at`, `fail_at`).
    At(Instant),
    /// Relative to the first poll (`move_on_after`, `fail_after`).
    After(Duration),
}

pin_project! {
    /// The scope the timeout helpers share: enters a plain cancel scope on
    /// the first poll, polls `fut` inside it, exits it when `fut` is done.
    struct TimeoutScope<F> {
        // Declared first so it drops first: a future dropped mid-way leaves
        // its scope after its body, as the scope's guard expects.
        #[pin]
        fut: F,
        // `Some` until the first poll enters the scope (an invalid duration
        // waits here to be reported by that poll).
        deadline: Option<Result<Deadline>>,
        shield: bool,
        // The entered scope, until `fut` finishes.
        guard: Option<CancelStatusGuard>,
    }
}

impl<F> TimeoutScope<F> {
    fn new(deadline: Result<Deadline>, fut: F) -> Self {
        TimeoutScope {
            fut,
            deadline: Some(deadline),
            shield: false,
            guard: None,
        }
    }

    fn shield(&mut self) {
        self.shield = true;
        // Only reachable for an `Unpin` future polled by hand before this.
        if let Some(g) = &self.guard {
            g.rt.with_state(|st| st.set_shield(g.cancel_status, true));
        }
    }

    /// `Ok(Some(v))` if `fut` finished, `Ok(None)` if the scope caught its
    /// own cancellation (the deadline), else the error that propagates.
    fn poll_scope<T>(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Option<T>>>
    where
        F: Future<Output = Result<T>>,
    {
        let this = self.project();
        if this.guard.is_none() {
            let deadline = match this.deadline.take() {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => {
                    return Poll::Ready(Err(Error::usage(
                        "a timeout future was polled after it finished",
                    )));
                }
            };
            let rt = match runtime::current() {
                Ok(rt) => rt,
                Err(e) => return Poll::Ready(Err(e)),
            };
            let deadline = match deadline {
                Deadline::At(t) => t,
                Deadline::After(d) => rt.now() + d,
            };
            *this.guard = Some(CancelStatusGuard::enter(
                &rt,
                CancelStatusKind::Scope,
                *this.shield,
                false,
                deadline,
            ));
        }
        let Some(guard) = this.guard.as_ref() else {
            unreachable!("entered above")
        };
        let result = match guard.poll_in(this.fut, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        let Some(guard) = this.guard.take() else {
            unreachable!("entered above")
        };
        Poll::Ready(match result {
            // Without an error there is nothing to catch.
            Ok(v) => {
                let _ = guard.exit(None);
                Ok(Some(v))
            }
            Err(e) => guard.exit(Some(e)).error.map_or(Ok(None), Err),
        })
    }
}

pin_project! {
    /// The future of [`move_on_after`] and [`move_on_at`]: runs the body in a
    /// cancel scope with a deadline; `Ok(None)` if the deadline cancelled it.
    ///
    /// Await it as it is, or make the scope shielded first with
    /// [`shielded`](Self::shielded) (Trio's `move_on_after(d, shield=True)`).
    #[must_use = "a timeout does nothing unless awaited"]
    pub struct MoveOnAfter<F> {
        #[pin]
        scope: TimeoutScope<F>,
    }
}

impl<F> MoveOnAfter<F> {
    /// Shields the scope from cancellation outside it (Trio's
    /// `shield=True`): only its own deadline can cancel the body. For
    /// cleanup that must run, within a bound, even while the caller is
    /// being cancelled.
    ///
    /// ```
    /// use trio::testing::MockClock;
    /// trio::Runner::new().clock(MockClock::autojump()).run(async {
    ///     let outer = trio::CancelScope::new();
    ///     outer
    ///         .run(async {
    ///             outer.cancel();
    ///             // Cleanup still runs, for at most 5 s, inside the cancelled scope.
    ///             let r = trio::move_on_after(5.0, trio::sleep(1.0)).shielded().await?;
    ///             assert_eq!(r, Some(()));
    ///             trio::checkpoint().await // the outer cancellation again
    ///         })
    ///         .await?;
    ///     assert_eq!(trio::current_time().as_secs_f64(), 1.0);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn shielded(mut self) -> Self {
        self.scope.shield();
        self
    }
}

impl<F, T> Future for MoveOnAfter<F>
where
    F: Future<Output = Result<T>>,
{
    type Output = Result<Option<T>>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().scope.poll_scope(cx)
    }
}

impl<F> fmt::Debug for MoveOnAfter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MoveOnAfter")
            .field("shield", &self.scope.shield)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`fail_after`] and [`fail_at`]: runs the body in a
    /// cancel scope with a deadline; an [`ErrorKind::TooSlow`] error if the
    /// deadline cancelled it.
    ///
    /// Await it as it is, or make the scope shielded first with
    /// [`shielded`](Self::shielded) (Trio's `fail_after(d, shield=True)`).
    #[must_use = "a timeout does nothing unless awaited"]
    pub struct FailAfter<F> {
        #[pin]
        scope: TimeoutScope<F>,
    }
}

impl<F> FailAfter<F> {
    /// Shields the scope from cancellation outside it, as
    /// [`MoveOnAfter::shielded`] does.
    ///
    /// ```
    /// use trio::testing::MockClock;
    /// trio::Runner::new().clock(MockClock::autojump()).run(async {
    ///     let err = trio::fail_after(1.0, trio::sleep(5.0)).shielded().await.unwrap_err();
    ///     assert_eq!(err.kind(), trio::ErrorKind::TooSlow);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn shielded(mut self) -> Self {
        self.scope.shield();
        self
    }
}

impl<F, T> Future for FailAfter<F>
where
    F: Future<Output = Result<T>>,
{
    type Output = Result<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().scope.poll_scope(cx).map(too_slow_if_caught)
    }
}

impl<F> fmt::Debug for FailAfter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailAfter")
            .field("shield", &self.scope.shield)
            .finish_non_exhaustive()
    }
}

/// Runs `fut` with a timeout of `duration` from now (fixed when first
/// polled). On expiry `fut` is cancelled and this returns `Ok(None)`;
/// otherwise `Ok(Some(value))` or `fut`'s error. An invalid duration
/// (negative, NaN) is an [`ErrorKind::InvalidArgument`] error when awaited.
/// [`.shielded()`](MoveOnAfter::shielded) shields the scope.
///
/// ```
/// use std::time::Duration;
/// use trio::testing::MockClock;
/// trio::Runner::new().clock(MockClock::autojump()).run(async {
///     let r = trio::move_on_after(Duration::from_secs(30), async {
///         trio::sleep_forever().await?;
///         Ok(())
///     })
///     .await?;
///     assert_eq!(r, None); // gave up after 30 virtual seconds, instantly
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn move_on_after<F, T>(duration: impl TryIntoDuration, fut: F) -> MoveOnAfter<F>
where
    F: Future<Output = Result<T>>,
{
    let deadline = duration.try_into_duration().map(Deadline::After);
    MoveOnAfter {
        scope: TimeoutScope::new(deadline, fut),
    }
}

/// Like [`move_on_after`], with an absolute deadline on the run's clock.
pub fn move_on_at<F, T>(deadline: Instant, fut: F) -> MoveOnAfter<F>
where
    F: Future<Output = Result<T>>,
{
    MoveOnAfter {
        scope: TimeoutScope::new(Ok(Deadline::At(deadline)), fut),
    }
}

/// Runs `fut` with a timeout of `duration`; on expiry `fut` is cancelled and
/// this fails with an [`ErrorKind::TooSlow`] error.
/// [`.shielded()`](FailAfter::shielded) shields the scope.
///
/// ```
/// use trio::{ErrorKind, testing::MockClock};
/// trio::Runner::new().clock(MockClock::autojump()).run(async {
///     let err = trio::fail_after(1.0, trio::sleep(5.0)).await.unwrap_err();
///     assert_eq!(err.kind(), ErrorKind::TooSlow);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn fail_after<F, T>(duration: impl TryIntoDuration, fut: F) -> FailAfter<F>
where
    F: Future<Output = Result<T>>,
{
    let deadline = duration.try_into_duration().map(Deadline::After);
    FailAfter {
        scope: TimeoutScope::new(deadline, fut),
    }
}

/// Like [`fail_after`], with an absolute deadline on the run's clock.
pub fn fail_at<F, T>(deadline: Instant, fut: F) -> FailAfter<F>
where
    F: Future<Output = Result<T>>,
{
    FailAfter {
        scope: TimeoutScope::new(Ok(Deadline::At(deadline)), fut),
    }
}

/// A scope that caught its cancellation means the deadline hit: `TooSlow`.
/// (If other errors came out with it, those propagate instead, as in Trio.)
fn too_slow_if_caught<T>(result: Result<Option<T>>) -> Result<T> {
    match result {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(Error::new(ErrorKind::TooSlow, "deadline exceeded")),
        Err(e) => Err(e),
    }
}

/// The earliest deadline among the cancel scopes around the caller, stopping
/// at the first shield: `Instant::NEG_INFINITY` if one of them is already
/// cancelled, `Instant::INFINITY` if none has a deadline.
///
/// ```
/// # trio::Runner::new().clock(trio::testing::MockClock::new()).run(async {
/// assert_eq!(trio::current_effective_deadline(), trio::Instant::INFINITY);
/// trio::move_on_after(5.0, async {
///     assert_eq!(trio::current_effective_deadline() - trio::current_time(), 5.0);
///     Ok(())
/// })
/// .await?;
/// # Ok(()) }).unwrap();
/// ```
///
/// # Panics
///
/// Outside a run (misuse, see [Errors and panics](crate#errors-and-panics));
/// [`try_current_effective_deadline`] is the fallible twin.
#[track_caller]
pub fn current_effective_deadline() -> Instant {
    match try_current_effective_deadline() {
        Ok(t) => t,
        Err(_) => crate::error::panic_outside_run(
            "current_effective_deadline",
            "try_current_effective_deadline",
        ),
    }
}

/// Like [`current_effective_deadline`], but outside a run it is an
/// [`ErrorKind::Usage`] error instead of a panic.
pub fn try_current_effective_deadline() -> Result<Instant> {
    let rt = runtime::current()?;
    let now = rt.now();
    let status = rt.current_cancel_status.get();
    Ok(rt.state.borrow().effective_deadline(status, now))
}
