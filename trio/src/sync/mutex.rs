//! `Mutex<T>`: a [`Lock`] that owns the data it protects.
//!
//! The lock decides who may touch the data (fairly, with direct hand-off,
//! exactly as [`Lock`]); the data itself sits in a `RefCell`, borrowed
//! mutably by the guard for as long as the task holds the lock, across
//! `.await`s. Only the lock's holder ever borrows it, so the borrow cannot
//! fail; if it somehow did, that is reported as an error, not a panic.
//! The guard's fields drop in order: the borrow ends before the lock is
//! released, so the next holder always finds the data free.

use crate::error::{Error, Result};
use crate::sync::{Lock, LockGuard, LockStatistics};
use std::cell::{RefCell, RefMut};
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};

/// A fair async mutex that owns its data: [`Lock`] plus the value it guards.
///
/// Not `Send`, like everything in a run; share it by reference with
/// children, or put it in an `Rc`.
///
/// ```
/// use trio::sync::Mutex;
/// trio::run(async {
///     let total = Mutex::new(0u32);
///     trio::open_nursery(async |n| {
///         for _ in 0..10 {
///             let total = &total;
///             n.start_soon(async move {
///                 let mut t = total.lock().await?;
///                 let seen = *t;
///                 trio::checkpoint().await?; // others run, but cannot touch `t`
///                 *t = seen + 1;
///                 Ok(())
///             });
///         }
///         Ok(())
///     })
///     .await?;
///     assert_eq!(total.into_inner(), 10); // no lost update
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct Mutex<T> {
    lock: Lock,
    value: RefCell<T>,
}

/// Access to a [`Mutex`]'s value; releases the mutex when dropped.
#[must_use = "the mutex is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    // Declared first so it is dropped first: the borrow ends, then the
    // lock is released.
    value: RefMut<'a, T>,
    _lock: LockGuard,
}

impl<T> Mutex<T> {
    /// A mutex holding `value`, unlocked.
    pub fn new(value: T) -> Self {
        Mutex {
            lock: Lock::new(),
            value: RefCell::new(value),
        }
    }

    /// Waits for the mutex (FIFO) and returns a guard to the value. A
    /// checkpoint; `Cancelled` leaves the mutex untouched and the queue
    /// order of the others as it was (see [`Lock::acquire`]). The task tree
    /// shows a waiting task in `Lock.acquire` at this call.
    #[track_caller]
    pub fn lock(&self) -> impl Future<Output = Result<MutexGuard<'_, T>>> + '_ {
        let acquire = self.lock.acquire();
        async move {
            let guard = acquire.await?;
            self.guard(guard)
        }
    }

    /// The guard if the mutex is free and nobody is queued; a
    /// [`WouldBlock`](crate::ErrorKind::WouldBlock) error otherwise.
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>> {
        let guard = self.lock.try_acquire()?;
        self.guard(guard)
    }

    fn guard(&self, lock: LockGuard) -> Result<MutexGuard<'_, T>> {
        let value = self.value.try_borrow_mut().map_err(|_| {
            Error::usage("the mutex's value is still borrowed by a previous holder")
        })?;
        Ok(MutexGuard { value, _lock: lock })
    }

    /// The value, without locking: `&mut self` proves nobody else can use it.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// The value, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }

    /// Whether some task holds the mutex.
    pub fn is_locked(&self) -> bool {
        self.lock.locked()
    }

    /// The underlying lock's statistics (holder, waiting tasks).
    pub fn statistics(&self) -> LockStatistics {
        self.lock.statistics()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.value.try_borrow() {
            Ok(v) if !self.lock.locked() => d.field("value", &*v),
            _ => d.field("value", &format_args!("<locked>")),
        };
        d.field("statistics", &self.lock.statistics()).finish()
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MutexGuard").field(&*self.value).finish()
    }
}
