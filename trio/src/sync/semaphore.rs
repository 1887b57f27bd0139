//! [`Semaphore`]: a counter of interchangeable units.
//!
//! A value plus a [`WaitQueue`]. As with [`Lock`](crate::sync::Lock), a
//! release while tasks are waiting hands the unit straight to the oldest
//! waiter (the value stays 0), so waiters are served in FIFO order and a
//! late `try_acquire` cannot overtake them. Invariant: the value is 0
//! whenever anyone is waiting. The value never wraps: a release that would
//! take it past its maximum (`usize::MAX` when unbounded) is a usage error
//! and changes nothing.

use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::{cancel_shielded_checkpoint, checkpoint_if_cancelled};
use crate::sync::Try;
use crate::sync::parking_lot::{WaitQueue, WaitSite};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};

struct Inner {
    /// The tasks blocked in `acquire`, each waiting for one unit.
    waiters: WaitQueue<()>,
    value: Cell<usize>,
    max: Option<usize>,
}

/// A semaphore (Trio's `trio.Semaphore`), optionally bounded. Clones are
/// handles to the same semaphore.
///
/// ```
/// use trio::sync::Semaphore;
/// trio::run(async {
///     let sem = Semaphore::new(2);
///     let a = sem.acquire().await?;
///     let _b = sem.acquire().await?;
///     assert_eq!(sem.value(), 0);
///     assert_eq!(sem.try_acquire().unwrap_err().kind(), trio::ErrorKind::WouldBlock);
///     drop(a); // a permit releases its unit when dropped
///     assert_eq!(sem.value(), 1);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Rc<Inner>,
}

/// What [`Semaphore::statistics`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemaphoreStatistics {
    /// The current value.
    pub value: usize,
    /// The maximum value, if bounded.
    pub max_value: Option<usize>,
    /// How many tasks are waiting in [`Semaphore::acquire`].
    pub tasks_waiting: usize,
}

/// One unit of a [`Semaphore`]; released when dropped.
#[must_use = "the unit is released as soon as the permit is dropped"]
pub struct SemaphorePermit {
    sem: Semaphore,
}

impl Semaphore {
    /// A semaphore with `initial` units and no maximum (but `usize::MAX`:
    /// releasing past it is an error).
    pub fn new(initial: usize) -> Self {
        Self::make(initial, None)
    }

    /// A semaphore with `initial` units that may never exceed `max`
    /// (releasing past it is an error). [`ErrorKind::InvalidArgument`] if
    /// `initial > max`.
    pub fn with_max(initial: usize, max: usize) -> Result<Self> {
        if initial > max {
            return Err(Error::invalid(format!(
                "a semaphore's initial value ({initial}) cannot exceed its maximum ({max})"
            )));
        }
        Ok(Self::make(initial, Some(max)))
    }

    fn make(initial: usize, max: Option<usize>) -> Self {
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            // A unit handed to a waiter whose future was dropped goes back.
            let on_lost = Rc::new(move |()| {
                if let Some(inner) = weak.upgrade() {
                    let _ = release(&inner);
                }
            });
            Inner {
                waiters: WaitQueue::with_lost_handler(on_lost),
                value: Cell::new(initial),
                max,
            }
        });
        Semaphore { inner }
    }

    /// The number of units available now.
    pub fn value(&self) -> usize {
        self.inner.value.get()
    }

    /// The maximum value, if bounded.
    pub fn max_value(&self) -> Option<usize> {
        self.inner.max
    }

    /// Waits for a unit and returns a permit that gives it back when
    /// dropped. A checkpoint. `Cancelled` means no unit was taken. The
    /// task tree shows a blocked task as waiting in `Semaphore.acquire` at
    /// the caller's location.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<SemaphorePermit>> + '_ {
        let site = WaitSite::new("Semaphore.acquire");
        async move {
            self.acquire_raw_at(site).await?;
            Ok(SemaphorePermit { sem: self.clone() })
        }
    }

    /// Takes a unit if one is available and nobody is waiting; otherwise
    /// [`ErrorKind::WouldBlock`]. Not a checkpoint.
    pub fn try_acquire(&self) -> Result<SemaphorePermit> {
        self.try_acquire_raw()?;
        Ok(SemaphorePermit { sem: self.clone() })
    }

    /// Like [`acquire`](Semaphore::acquire) without a permit: give the unit
    /// back with [`release`](Semaphore::release).
    #[track_caller]
    pub fn acquire_raw(&self) -> impl Future<Output = Result<()>> + '_ {
        self.acquire_raw_at(WaitSite::new("Semaphore.acquire_raw"))
    }

    async fn acquire_raw_at(&self, site: WaitSite) -> Result<()> {
        checkpoint_if_cancelled().await?;
        match try_take(&self.inner) {
            Try::Ready(()) => {
                let mut undo = Undo {
                    inner: &self.inner,
                    armed: true,
                };
                cancel_shielded_checkpoint().await?;
                undo.armed = false;
                Ok(())
            }
            Try::WouldBlock => self.inner.waiters.park((), site).await,
            Try::Failed(e) => Err(e),
        }
    }

    /// Like [`try_acquire`](Semaphore::try_acquire) without a permit.
    pub fn try_acquire_raw(&self) -> Result<()> {
        try_take(&self.inner)
            .into_result(|| Error::new(ErrorKind::WouldBlock, "the semaphore has no units left"))
    }

    /// Gives a unit back: to the oldest waiter if there is one, else to the
    /// value. Any task may release. [`ErrorKind::Usage`] (and nothing
    /// changes) if that would take the value past its maximum, or past
    /// `usize::MAX`. Not a checkpoint.
    pub fn release(&self) -> Result<()> {
        release(&self.inner)
    }

    /// Debugging information.
    pub fn statistics(&self) -> SemaphoreStatistics {
        SemaphoreStatistics {
            value: self.value(),
            max_value: self.max_value(),
            tasks_waiting: self.inner.waiters.len(),
        }
    }
}

fn try_take(inner: &Inner) -> Try<()> {
    let v = inner.value.get();
    if v > 0 {
        inner.value.set(v - 1);
        Try::Ready(())
    } else {
        Try::WouldBlock
    }
}

fn release(inner: &Inner) -> Result<()> {
    // A waiter gets the unit directly (the value stays 0), before it is
    // rescheduled.
    if inner.waiters.unpark_one().is_some() {
        return Ok(());
    }
    let v = inner.value.get();
    match v.checked_add(1) {
        Some(next) if inner.max.is_none_or(|max| next <= max) => {
            inner.value.set(next);
            Ok(())
        }
        _ => Err(Error::usage(format!(
            "semaphore released too many times (it would exceed its maximum, {})",
            inner.max.unwrap_or(usize::MAX)
        ))),
    }
}

/// Gives back a unit taken by an acquire whose future is dropped before it
/// completes.
struct Undo<'a> {
    inner: &'a Inner,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = release(self.inner);
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value())
            .field("max_value", &self.max_value())
            .field("tasks_waiting", &self.inner.waiters.len())
            .finish()
    }
}

impl SemaphorePermit {
    /// The semaphore this permit belongs to.
    pub fn semaphore(&self) -> &Semaphore {
        &self.sem
    }
}

impl Drop for SemaphorePermit {
    fn drop(&mut self) {
        // Can fail only if someone released raw units behind the permit's
        // back, past the maximum; the permit's unit is then simply dropped.
        let _ = release(&self.sem.inner);
    }
}

impl fmt::Debug for SemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}
