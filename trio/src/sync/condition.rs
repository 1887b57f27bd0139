//! [`Condition`]: wait for a notification while holding a lock.
//!
//! As in Trio, `wait` releases the lock and parks the task on the
//! condition's own queue; `notify` does not wake anyone, it *moves*
//! waiters onto the lock's queue (`repark`), so they wake up already owning
//! the lock, one by one, as it is released. If a waiting task is cancelled
//! it re-acquires the lock (shielded from cancellation) before returning
//! `Cancelled`, so after `wait` returns, however it returns, the task
//! holds the lock again.

use crate::CancelScope;
use crate::error::{Error, Result};
use crate::lowlevel::{Task, try_current_task};
use crate::sync::lock::{self, Lock, LockGuard, LockStatistics};
use crate::sync::parking_lot::{WaitQueue, WaitSite};
use std::fmt;
use std::future::Future;
use std::rc::Rc;

struct Inner {
    lock: Lock,
    /// The tasks blocked in `wait`, not yet notified.
    waiters: WaitQueue<Task>,
}

/// A condition variable (Trio's `trio.Condition`). Clones are handles to
/// the same condition.
///
/// ```
/// use std::cell::Cell;
/// use trio::sync::Condition;
/// trio::run(async {
///     let cond = Condition::new();
///     let ready = Cell::new(false);
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async {
///             let _held = cond.acquire().await?;
///             while !ready.get() {
///                 cond.wait().await?; // releases the lock while waiting
///             }
///             Ok(())
///         });
///         trio::testing::wait_all_tasks_blocked().await?;
///         let _held = cond.acquire().await?;
///         ready.set(true);
///         cond.notify_all()?;
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Condition {
    inner: Rc<Inner>,
}

/// What [`Condition::statistics`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConditionStatistics {
    /// How many tasks are blocked in [`Condition::wait`] (not yet notified).
    pub tasks_waiting: usize,
    /// The underlying lock's statistics.
    pub lock_statistics: LockStatistics,
}

impl Default for Condition {
    fn default() -> Self {
        Self::new()
    }
}

impl Condition {
    /// A condition with a lock of its own.
    pub fn new() -> Self {
        Self::with_lock(Lock::new())
    }

    /// A condition that uses `lock` (shared with whoever else holds a
    /// handle to it).
    pub fn with_lock(lock: Lock) -> Self {
        Condition {
            inner: Rc::new(Inner {
                lock,
                waiters: WaitQueue::new(),
            }),
        }
    }

    /// The underlying lock.
    pub fn lock(&self) -> &Lock {
        &self.inner.lock
    }

    /// Acquires the underlying lock (see [`Lock::acquire`]). Shown in the
    /// task tree as `Condition.acquire`.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<LockGuard>> + '_ {
        self.inner
            .lock
            .acquire_at(WaitSite::new("Condition.acquire"))
    }

    /// Tries to acquire the underlying lock (see [`Lock::try_acquire`]).
    pub fn try_acquire(&self) -> Result<LockGuard> {
        self.inner.lock.try_acquire()
    }

    /// Acquires the underlying lock without a guard (see
    /// [`Lock::acquire_raw`]). Shown in the task tree as
    /// `Condition.acquire_raw`.
    #[track_caller]
    pub fn acquire_raw(&self) -> impl Future<Output = Result<()>> + '_ {
        self.inner
            .lock
            .acquire_raw_at(WaitSite::new("Condition.acquire_raw"))
    }

    /// Releases the underlying lock (see [`Lock::release`]).
    pub fn release(&self) -> Result<()> {
        self.inner.lock.release()
    }

    /// Whether the underlying lock is held.
    pub fn locked(&self) -> bool {
        self.inner.lock.locked()
    }

    /// Releases the lock, waits for a [`notify`](Condition::notify), and
    /// re-acquires the lock before returning. The caller must hold the lock
    /// (a usage error otherwise).
    ///
    /// If cancelled while waiting, it still re-acquires the lock (shielded
    /// from the cancellation) and then returns `Cancelled`: whatever
    /// happens, the caller holds the lock when this returns (unless the lock
    /// breaks because some other owner exited while holding it: then
    /// `Broken`, and the caller does not hold it).
    ///
    /// The task tree shows a blocked task as waiting in `Condition.wait` at
    /// the caller's location (also while, notified, it waits for the lock).
    #[track_caller]
    pub fn wait(&self) -> impl Future<Output = Result<()>> + '_ {
        let site = WaitSite::new("Condition.wait");
        self.wait_at(site)
    }

    async fn wait_at(&self, site: WaitSite) -> Result<()> {
        let task = try_current_task()?;
        let lock = &self.inner.lock;
        if lock.owner() != Some(task) {
            return Err(Error::usage(
                "Condition::wait needs the caller to hold the lock",
            ));
        }
        lock::release_owned_by(&lock.inner, task)?;
        // Woken by the *lock's* queue after a notify reparked us there: we
        // then own the lock already.
        match self.inner.waiters.park(task, site).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_cancelled() => {
                let shield = CancelScope::new().with_shield(true);
                match shield.run(lock::acquire_as(&lock.inner, task, site)).await {
                    Ok(_) => Err(e),
                    Err(broken) => Err(broken),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Wakes up to `n` waiting tasks, oldest first: each returns from
    /// `wait` once it gets the lock. The caller must hold the lock.
    pub fn notify(&self, n: usize) -> Result<()> {
        self.check_held("notify")?;
        self.inner.waiters.repark(self.inner.lock.queue(), n);
        self.inner.lock.note_waiters();
        Ok(())
    }

    /// Wakes every waiting task (see [`notify`](Condition::notify)).
    pub fn notify_all(&self) -> Result<()> {
        self.notify(usize::MAX)
    }

    fn check_held(&self, what: &str) -> Result<()> {
        if self.inner.lock.owner() != Some(try_current_task()?) {
            return Err(Error::usage(format!(
                "Condition::{what} needs the caller to hold the lock"
            )));
        }
        Ok(())
    }

    /// Debugging information.
    pub fn statistics(&self) -> ConditionStatistics {
        ConditionStatistics {
            tasks_waiting: self.inner.waiters.len(),
            lock_statistics: self.inner.lock.statistics(),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("tasks_waiting", &self.inner.waiters.len())
            .field("lock", &self.inner.lock)
            .finish()
    }
}
