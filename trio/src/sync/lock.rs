//! [`Lock`] and [`StrictFifoLock`]: mutual exclusion between tasks.
//!
//! # Design
//!
//! A lock is an owner (`Option<Task>`) plus a [`WaitQueue`] of the tasks
//! waiting for it (`waiters`), as in Trio:
//!
//! - **Direct hand-off.** Releasing a contended lock does not make it free:
//!   the oldest waiter becomes the owner on the spot, before it even runs.
//!   So `try_acquire` fails while anyone is queued, nobody can barge in
//!   ahead of a waiter, and tasks taking the lock in a loop get it in turn.
//! - **Owner-only release.** The lock belongs to the task that acquired it.
//!   A [`LockGuard`] releases it when dropped; [`Lock::release`] (the
//!   guard-less form) checks that the caller is the owner.
//! - **Non-reentrant.** Acquiring a lock you already hold is a usage error
//!   instead of a deadlock.
//! - **Abandoned locks break.** If the owner task exits while holding the
//!   lock (it used [`Lock::acquire_raw`] and never released, or leaked its
//!   guard with `mem::forget`), the lock is *broken*: every task waiting for
//!   it, and every later attempt to take it, fails with
//!   [`ErrorKind::Broken`] instead of waiting forever.
//!
//! # How abandonment is detected
//!
//! Three ways, so that nobody ever waits for a dead owner and nobody is
//! told a lock is fine when its owner is gone:
//! - every acquire attempt, and [`Lock::is_broken`], checks whether the
//!   owner is still alive ([`Task::is_alive`]); if not, the lock breaks
//!   then. So an abandoned lock reads as broken from the moment its owner
//!   has exited, whether or not anyone waits for it;
//! - while a lock is *contended* (held, with tasks queued), an exit hook
//!   ([`Task::on_exit`]) on the owner breaks the lock when the owner exits,
//!   which wakes the queued tasks. Only contended locks register one, so an
//!   uncontended acquire and release cost nothing extra.
//!
//! # Hand-off and call-outs
//!
//! Releasing a contended lock makes the oldest waiter the owner *before* it
//! is rescheduled, so whatever the reschedule calls out to (an instrument's
//! `task_scheduled` hook, a foreign waker) sees the lock already held by
//! the waiter (the common rule of [`sync`](crate::sync)).
//!
//! A guard may be moved to another task; it still releases when dropped.
//! But the lock stays the acquiring task's: if that task exits before the
//! guard is dropped, the lock counts as abandoned.
//!
//! # The uncontended path
//!
//! Most locks are never contended (a stream's send lock, say), so that
//! path does no more than it must: a lock is one allocation, its wait queue
//! is made by the first task that has to wait (or by a break), taking a
//! free lock sets the owner, and releasing a lock that was never contended
//! clears it: no queue is touched, nothing is allocated. (Once a queue
//! exists, a release looks at it, even when it is empty.)

use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::{
    ExitHook, Task, cancel_shielded_checkpoint, checkpoint_if_cancelled, try_current_task,
};
use crate::sync::Try;
use crate::sync::parking_lot::{WaitQueue, WaitSite};
use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;
use std::future::Future;
use std::rc::Rc;

pub(crate) struct LockInner {
    /// The tasks waiting for the lock, each to become its owner. Made when
    /// first needed (see "The uncontended path"): none means nobody has
    /// waited, and the lock was never broken.
    waiters: OnceCell<WaitQueue<Task>>,
    owner: Cell<Option<Task>>,
    /// While the lock is contended: a hook that breaks it if its owner
    /// exits, and the owner it watches.
    exit_hook: RefCell<Option<(Task, ExitHook)>>,
}

/// A fair, non-reentrant mutual-exclusion lock (Trio's `trio.Lock`).
///
/// Only one task holds it at a time; others wait in FIFO order, and
/// releasing hands it straight to the oldest waiter. Clones are handles to
/// the same lock. The rules:
///
/// - **Direct hand-off**: releasing a contended lock makes the oldest
///   waiter the owner at once, so [`try_acquire`](Lock::try_acquire) fails
///   while anyone is queued and tasks taking the lock in a loop get it in
///   turn.
/// - **Owner-only release**: a [`LockGuard`] releases when dropped;
///   [`release`](Lock::release) (for [`acquire_raw`](Lock::acquire_raw))
///   is a usage error unless the caller holds the lock.
/// - **Non-reentrant**: acquiring a lock you hold is a usage error, not a
///   deadlock.
/// - **Abandoned locks break**: if the owner task exits while holding the
///   lock (a raw acquire never released, or a guard leaked with
///   `mem::forget`), the tasks waiting for it and every later acquire fail
///   with [`ErrorKind::Broken`]. Waiters already queued are woken when the
///   owner exits; otherwise the next acquire notices. (A guard moved to
///   another task still releases when dropped, but if the acquiring task
///   exits first the lock counts as abandoned.)
///
/// ```
/// use std::cell::RefCell;
/// use trio::sync::Lock;
/// trio::run(async {
///     let lock = Lock::new();
///     let log = RefCell::new(Vec::new());
///     trio::open_nursery(async |nursery| {
///         for i in 0..3 {
///             let (lock, log) = (&lock, &log);
///             nursery.start_soon(async move {
///                 let _guard = lock.acquire().await?; // released when dropped
///                 log.borrow_mut().push(i);
///                 trio::sleep(0.001).await?; // nobody else gets in meanwhile
///                 log.borrow_mut().push(i);
///                 Ok(())
///             });
///         }
///         Ok(())
///     })
///     .await?;
///     let log = log.into_inner();
///     assert!(log.chunks(2).all(|pair| pair[0] == pair[1]));
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Lock {
    pub(crate) inner: Rc<LockInner>,
}

/// What [`Lock::statistics`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStatistics {
    /// Whether the lock is held.
    pub locked: bool,
    /// The task holding it.
    pub owner: Option<Task>,
    /// How many tasks are waiting for it.
    pub tasks_waiting: usize,
}

/// Proof of holding a [`Lock`]; releases it when dropped.
///
/// Dropping a guard releases the lock only if the task that acquired it
/// still owns it (so a guard never releases somebody else's hold).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    lock: Lock,
    task: Task,
}

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

fn would_block() -> Error {
    Error::new(ErrorKind::WouldBlock, "the lock is held by another task")
}

fn abandoned() -> Error {
    Error::new(
        ErrorKind::Broken,
        "the task that held this lock exited without releasing it",
    )
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Self {
        Lock {
            inner: Rc::new(LockInner {
                waiters: OnceCell::new(),
                owner: Cell::new(None),
                exit_hook: RefCell::new(None),
            }),
        }
    }

    /// Waits for the lock and returns a guard that releases it when
    /// dropped. A checkpoint. `Cancelled` means the lock was not taken
    /// (and the order of the other waiters is unchanged); `Broken` if the
    /// owner exited without releasing it; a usage error if the calling
    /// task already holds it. The task tree shows a blocked task as
    /// waiting in `Lock.acquire` at the caller's location.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<LockGuard>> + '_ {
        self.acquire_at(WaitSite::new("Lock.acquire"))
    }

    /// [`acquire`](Self::acquire), reporting `site` while blocked.
    pub(crate) async fn acquire_at(&self, site: WaitSite) -> Result<LockGuard> {
        let task = try_current_task()?;
        acquire_as(&self.inner, task, site).await?;
        Ok(LockGuard {
            lock: self.clone(),
            task,
        })
    }

    /// Takes the lock if nobody holds it and nobody is waiting for it;
    /// otherwise [`ErrorKind::WouldBlock`]. Not a checkpoint.
    pub fn try_acquire(&self) -> Result<LockGuard> {
        let task = try_current_task()?;
        try_acquire_as(&self.inner, task).into_result(would_block)?;
        Ok(LockGuard {
            lock: self.clone(),
            task,
        })
    }

    /// Like [`acquire`](Lock::acquire), without a guard: the calling task
    /// must [`release`](Lock::release) the lock itself (Trio's API). If it
    /// exits without doing so, the lock breaks.
    #[track_caller]
    pub fn acquire_raw(&self) -> impl Future<Output = Result<()>> + '_ {
        self.acquire_raw_at(WaitSite::new("Lock.acquire_raw"))
    }

    /// [`acquire_raw`](Self::acquire_raw), reporting `site` while blocked.
    pub(crate) async fn acquire_raw_at(&self, site: WaitSite) -> Result<()> {
        acquire_as(&self.inner, try_current_task()?, site).await
    }

    /// Like [`try_acquire`](Lock::try_acquire), without a guard.
    pub fn try_acquire_raw(&self) -> Result<()> {
        try_acquire_as(&self.inner, try_current_task()?).into_result(would_block)
    }

    /// Releases the lock, handing it to the oldest waiter if there is one.
    /// A usage error unless the calling task holds it. Not a checkpoint.
    pub fn release(&self) -> Result<()> {
        release_owned_by(&self.inner, try_current_task()?)
    }

    /// Whether some task holds the lock.
    pub fn locked(&self) -> bool {
        self.inner.owner.get().is_some()
    }

    /// The task holding the lock.
    pub fn owner(&self) -> Option<Task> {
        self.inner.owner.get()
    }

    /// Whether the lock is broken: its owner exited while holding it (true
    /// from the moment it exits, whether or not anyone waits for the lock).
    pub fn is_broken(&self) -> bool {
        is_abandoned(&self.inner)
    }

    /// Debugging information.
    pub fn statistics(&self) -> LockStatistics {
        LockStatistics {
            locked: self.locked(),
            owner: self.owner(),
            tasks_waiting: waiting(&self.inner),
        }
    }

    pub(crate) fn queue(&self) -> &WaitQueue<Task> {
        queue(&self.inner)
    }

    /// Registers the owner with the exit watcher if tasks are queued (after
    /// a `Condition` reparked waiters onto this lock, say).
    pub(crate) fn note_waiters(&self) {
        watch_if_contended(&self.inner);
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("owner", &self.owner())
            .field("tasks_waiting", &waiting(&self.inner))
            .field("broken", &self.is_broken())
            .finish()
    }
}

impl LockGuard {
    /// The lock this guard holds.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.lock.inner.owner.get() == Some(self.task) {
            let _ = release_owned_by(&self.lock.inner, self.task);
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("task", &self.task)
            .finish()
    }
}

/// The lock's wait queue, made on first use.
fn queue(inner: &Rc<LockInner>) -> &WaitQueue<Task> {
    inner.waiters.get_or_init(|| {
        let weak = Rc::downgrade(inner);
        // A waiter handed the lock whose future was dropped before it ran
        // passes the lock on, as if it had released it at once.
        WaitQueue::with_lost_handler(Rc::new(move |task: Task| {
            if let Some(inner) = weak.upgrade() {
                let _ = release_owned_by(&inner, task);
            }
        }))
    })
}

/// How many tasks wait for the lock (without making its queue).
fn waiting(inner: &LockInner) -> usize {
    inner.waiters.get().map_or(0, WaitQueue::len)
}

/// Whether nobody waits for the lock (without making its queue).
fn no_waiters(inner: &LockInner) -> bool {
    inner.waiters.get().is_none_or(WaitQueue::is_empty)
}

/// Whether the lock is broken, breaking it first if its owner is gone.
fn is_abandoned(inner: &Rc<LockInner>) -> bool {
    if inner.waiters.get().is_some_and(|q| q.broken_by().is_some()) {
        return true;
    }
    match inner.owner.get() {
        Some(owner) if !owner.is_alive() => {
            owner_exited(inner, owner);
            true
        }
        _ => false,
    }
}

pub(crate) fn try_acquire_as(inner: &Rc<LockInner>, task: Task) -> Try<()> {
    if inner.owner.get() == Some(task) {
        return Try::Failed(Error::usage(
            "this task already holds the lock (trio locks are not reentrant)",
        ));
    }
    if is_abandoned(inner) {
        return Try::Failed(abandoned());
    }
    if inner.owner.get().is_none() && no_waiters(inner) {
        inner.owner.set(Some(task));
        Try::Ready(())
    } else {
        Try::WouldBlock
    }
}

/// Releases a freshly taken lock if the acquiring future is dropped before
/// it completes (keeps "dropped means no effect" for the guard-less form).
struct Undo<'a> {
    inner: &'a Rc<LockInner>,
    task: Task,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = release_owned_by(self.inner, self.task);
        }
    }
}

pub(crate) async fn acquire_as(inner: &Rc<LockInner>, task: Task, site: WaitSite) -> Result<()> {
    checkpoint_if_cancelled().await?;
    match try_acquire_as(inner, task) {
        Try::Ready(()) => {
            let mut undo = Undo {
                inner,
                task,
                armed: true,
            };
            cancel_shielded_checkpoint().await?;
            undo.armed = false;
            Ok(())
        }
        Try::WouldBlock => {
            // Parked, the task becomes the owner at the moment it is
            // unparked (release sets the owner): the hand-off is direct.
            let parked = queue(inner).park_then(task, site, || watch_if_contended(inner));
            match parked.await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::Broken => Err(abandoned()),
                Err(e) => Err(e),
            }
        }
        Try::Failed(e) => Err(e),
    }
}

pub(crate) fn release_owned_by(inner: &Rc<LockInner>, task: Task) -> Result<()> {
    if inner.owner.get() != Some(task) {
        return Err(Error::usage(
            "only the task that holds a lock can release it",
        ));
    }
    inner.owner.set(None);
    // Nobody to hand it to: free (no exit hook either, which only a
    // contended lock has; see "The uncontended path").
    let Some(waiters) = inner.waiters.get() else {
        return Ok(());
    };
    unwatch(inner);
    // The oldest waiter owns the lock before it is rescheduled (see the
    // module docs); if its wait turns out stale, the lock is free again and
    // the next waiter is tried.
    waiters.unpark_one_with(
        |next| inner.owner.set(Some(*next)),
        |_| inner.owner.set(None),
    );
    watch_if_contended(inner);
    Ok(())
}

fn owner_exited(inner: &Rc<LockInner>, task: Task) {
    if inner.owner.get() == Some(task) {
        unwatch(inner);
        queue(inner).break_queue(Some(task));
    }
}

// ----- watching owners of contended locks for exit ---------------------------

/// While the lock is contended, registers a [`Task::on_exit`] hook on its
/// owner that breaks the lock if the owner exits still holding it.
fn watch_if_contended(inner: &Rc<LockInner>) {
    let Some(owner) = inner.owner.get() else {
        return;
    };
    if no_waiters(inner)
        || inner
            .exit_hook
            .borrow()
            .as_ref()
            .is_some_and(|(t, _)| *t == owner)
    {
        return;
    }
    unwatch(inner);
    let weak = Rc::downgrade(inner);
    let hook = owner.on_exit(move || {
        if let Some(lock) = weak.upgrade() {
            // This hook has fired: its handle only needs forgetting.
            let fired = lock.exit_hook.take();
            drop(fired);
            owner_exited(&lock, owner);
        }
    });
    if let Ok(hook) = hook {
        // Whatever was there (nothing: `unwatch` emptied the slot) is
        // dropped outside the borrow.
        let old = inner.exit_hook.replace(Some((owner, hook)));
        drop(old);
    }
}

fn unwatch(inner: &Rc<LockInner>) {
    // Dropped outside the borrow: dropping the hook touches the runtime.
    let old = inner.exit_hook.take();
    drop(old);
}

// ----- StrictFifoLock --------------------------------------------------------

/// A lock that guarantees strict FIFO hand-off (Trio's
/// `trio.StrictFIFOLock`).
///
/// [`Lock`] already behaves this way; this type exists to say so in the
/// signature, for code whose correctness depends on it (a stream that must
/// send messages in the order the tasks asked, say). Same API as [`Lock`].
///
/// ```
/// use trio::sync::StrictFifoLock;
/// trio::run(async {
///     let lock = StrictFifoLock::new();
///     let guard = lock.acquire().await?;
///     assert!(lock.locked());
///     drop(guard);
///     assert!(!lock.locked());
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Default)]
pub struct StrictFifoLock {
    lock: Lock,
}

impl StrictFifoLock {
    /// An unlocked lock.
    pub fn new() -> Self {
        StrictFifoLock { lock: Lock::new() }
    }

    /// See [`Lock::acquire`]. Shown in the task tree as
    /// `StrictFifoLock.acquire`.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<LockGuard>> + '_ {
        self.lock
            .acquire_at(WaitSite::new("StrictFifoLock.acquire"))
    }

    /// See [`Lock::try_acquire`].
    pub fn try_acquire(&self) -> Result<LockGuard> {
        self.lock.try_acquire()
    }

    /// See [`Lock::acquire_raw`]. Shown in the task tree as
    /// `StrictFifoLock.acquire_raw`.
    #[track_caller]
    pub fn acquire_raw(&self) -> impl Future<Output = Result<()>> + '_ {
        self.lock
            .acquire_raw_at(WaitSite::new("StrictFifoLock.acquire_raw"))
    }

    /// See [`Lock::try_acquire_raw`].
    pub fn try_acquire_raw(&self) -> Result<()> {
        self.lock.try_acquire_raw()
    }

    /// See [`Lock::release`].
    pub fn release(&self) -> Result<()> {
        self.lock.release()
    }

    /// See [`Lock::locked`].
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// See [`Lock::owner`].
    pub fn owner(&self) -> Option<Task> {
        self.lock.owner()
    }

    /// See [`Lock::is_broken`].
    pub fn is_broken(&self) -> bool {
        self.lock.is_broken()
    }

    /// See [`Lock::statistics`].
    pub fn statistics(&self) -> LockStatistics {
        self.lock.statistics()
    }
}

impl fmt::Debug for StrictFifoLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StrictFifoLock")
            .field("owner", &self.owner())
            .field("tasks_waiting", &waiting(&self.lock.inner))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::wait_all_tasks_blocked;
    use std::cell::RefCell;

    /// The uncontended path (module docs) makes no wait queue, whatever
    /// form of acquire and release it uses.
    #[test]
    fn an_uncontended_lock_never_makes_its_wait_queue() {
        crate::run(async {
            let lock = Lock::new();
            for _ in 0..3 {
                drop(lock.try_acquire()?);
                drop(lock.acquire().await?);
                lock.acquire_raw().await?;
                lock.release()?;
            }
            assert!(lock.inner.waiters.get().is_none());
            assert_eq!(lock.statistics().tasks_waiting, 0);
            assert!(!lock.locked());
            Ok(())
        })
        .unwrap();
    }

    /// A lock whose owner exited with nobody waiting breaks when it is
    /// next looked at (the queue is made then, to record the break).
    #[test]
    fn an_abandoned_uncontended_lock_reads_broken() {
        crate::run(async {
            let lock = Lock::new();
            crate::open_nursery(async |n| {
                n.start_soon(async { lock.acquire_raw().await });
                Ok(())
            })
            .await?;
            assert!(lock.is_broken());
            assert_eq!(lock.try_acquire().unwrap_err().kind(), ErrorKind::Broken);
            assert_eq!(lock.acquire().await.unwrap_err().kind(), ErrorKind::Broken);
            Ok(())
        })
        .unwrap();
    }

    /// Once contended, the lock hands off in FIFO order; when the queue
    /// empties again, the uncontended path works on the existing queue.
    #[test]
    fn a_once_contended_lock_hands_off_in_order_then_frees() {
        crate::run(async {
            let lock = Lock::new();
            let log = RefCell::new(Vec::new());
            let first = lock.acquire().await?;
            crate::open_nursery(async |n| {
                for i in 0..3 {
                    let (lock, log) = (&lock, &log);
                    n.start_soon(async move {
                        let _g = lock.acquire().await?;
                        log.borrow_mut().push(i);
                        Ok(())
                    });
                }
                wait_all_tasks_blocked().await?;
                assert_eq!(lock.statistics().tasks_waiting, 3);
                drop(first);
                Ok(())
            })
            .await?;
            assert_eq!(*log.borrow(), [0, 1, 2]);
            assert!(!lock.locked());
            assert!(lock.inner.waiters.get().is_some());
            drop(lock.try_acquire()?);
            assert!(!lock.locked());
            Ok(())
        })
        .unwrap();
    }
}

#[cfg(test)]
mod handoff_tests {
    use super::*;
    use crate::CancelScope;
    use crate::testing::wait_all_tasks_blocked;
    use std::cell::RefCell;

    /// A waiter cancelled in the same step it is handed the lock (first
    /// contention made the queue lazily): either it keeps the lock and
    /// releases it, or the lock passes on; the next waiter gets it, the lock
    /// ends free, statistics and Debug agree.
    #[test]
    fn cancelled_while_handed_the_lock() {
        crate::run(async {
            let lock = Lock::new();
            let log = RefCell::new(Vec::new());
            let scope = CancelScope::new();
            let first = lock.acquire().await?;
            crate::open_nursery(async |n| {
                let (l, lg, sc) = (&lock, &log, &scope);
                n.start_soon(async move {
                    let r = sc
                        .run(async {
                            let _g = l.acquire().await?;
                            lg.borrow_mut().push(1);
                            Ok(())
                        })
                        .await?;
                    if r.is_none() {
                        lg.borrow_mut().push(-1);
                    }
                    Ok(())
                });
                wait_all_tasks_blocked().await?;
                n.start_soon(async move {
                    let _g = l.acquire().await?;
                    lg.borrow_mut().push(2);
                    Ok(())
                });
                wait_all_tasks_blocked().await?;
                assert_eq!(l.statistics().tasks_waiting, 2);
                assert!(format!("{l:?}").contains("tasks_waiting: 2"));
                drop(first);
                sc.cancel();
                Ok(())
            })
            .await?;
            let log = log.into_inner();
            assert!(log == [1, 2] || log == [-1, 2], "{log:?}");
            assert!(!lock.locked());
            assert_eq!(lock.statistics().tasks_waiting, 0);
            assert!(!lock.is_broken());
            Ok(())
        })
        .unwrap();
    }

    /// Contended once, waiters gone (cancelled), then the owner abandons it
    /// uncontended: still breaks.
    #[test]
    fn abandoned_after_contention_ended() {
        crate::run(async {
            let lock = Lock::new();
            let scope = CancelScope::new();
            let go = crate::sync::Event::new();
            crate::open_nursery(async |n| {
                let (l, sc, go) = (&lock, &scope, &go);
                n.start_soon(async move {
                    l.acquire_raw().await?;
                    go.wait().await
                });
                wait_all_tasks_blocked().await?;
                n.start_soon(
                    async move { sc.run(async { l.acquire_raw().await }).await.map(drop) },
                );
                wait_all_tasks_blocked().await?;
                assert_eq!(l.statistics().tasks_waiting, 1);
                sc.cancel();
                wait_all_tasks_blocked().await?;
                assert_eq!(l.statistics().tasks_waiting, 0);
                go.set();
                Ok(())
            })
            .await?;
            assert!(lock.is_broken());
            assert_eq!(lock.acquire().await.unwrap_err().kind(), ErrorKind::Broken);
            Ok(())
        })
        .unwrap();
    }
}
