//! [`Acquire`]: the one interface of everything that is held through a
//! guard — [`Lock`], [`StrictFifoLock`], [`Semaphore`], [`CapacityLimiter`]
//! and [`Mutex<T>`](Mutex).
//!
//! Trio's generic code (its lock tests, say) uses `async with` on any of
//! them. In Rust that is a bound, `L: Acquire`, and `let guard =
//! l.acquire().await?;` in place of `async with l:`: the guard is held
//! until it is dropped. Each implementation forwards to the primitive's
//! own `acquire`/`try_acquire` (for a mutex, `lock`/`try_lock`), so the
//! rules of [`sync`](crate::sync) apply unchanged: FIFO with direct
//! hand-off, `acquire` a checkpoint, `Cancelled` means nothing was taken,
//! dropping a waiting future is safe, `try_acquire` is not a checkpoint.
//!
//! A semaphore or limiter with more than one unit is a lock only in this
//! sense (several guards may be out at once); with one unit it excludes
//! like a lock.

use crate::error::Result;
use crate::sync::{
    CapacityLimiter, CapacityLimiterGuard, Lock, LockGuard, Mutex, MutexGuard, Semaphore,
    SemaphorePermit, StrictFifoLock,
};
use std::future::Future;

/// Something a task acquires, holds through a guard, and releases by
/// dropping the guard: the common interface of [`Lock`],
/// [`StrictFifoLock`], [`Semaphore`], [`CapacityLimiter`] and
/// [`Mutex<T>`](Mutex) (Trio's `async with lock:` on any of them).
///
/// The guards are the primitives' own: [`LockGuard`], [`SemaphorePermit`],
/// [`CapacityLimiterGuard`] and [`MutexGuard`] (which derefs to the `T`).
/// The methods mean exactly what the primitive's inherent ones do; see
/// each type for its errors (a lock's `Broken`, a limiter's usage error
/// for a second token, …) and the [module docs](crate::sync) for the rules
/// they share.
///
/// Generic code over any of them:
///
/// ```
/// use std::cell::Cell;
/// use trio::sync::{Acquire, Lock, Mutex, Semaphore};
///
/// /// Runs three tasks that each take `lock`, then checks that they never
/// /// overlapped while they held it.
/// async fn take_turns<L: Acquire>(lock: &L) -> trio::Result<()> {
///     let inside = Cell::new(0);
///     trio::open_nursery(async |nursery| {
///         for _ in 0..3 {
///             let inside = &inside;
///             nursery.start_soon(async move {
///                 let _guard = lock.acquire().await?; // `async with lock:`
///                 inside.set(inside.get() + 1);
///                 assert_eq!(inside.get(), 1, "two tasks held the lock at once");
///                 trio::sleep(0.001).await?; // the others queue meanwhile
///                 inside.set(inside.get() - 1);
///                 Ok(())
///             });
///         }
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// }
///
/// trio::run(async {
///     take_turns(&Lock::new()).await?;
///     take_turns(&Semaphore::new(1)).await?;
///     take_turns(&Mutex::new(String::new())).await?;
///
///     // The guard of a mutex is access to its value.
///     let names = Mutex::new(Vec::new());
///     names.acquire().await?.push("trio");
///     assert_eq!(*names.try_acquire()?, ["trio"]);
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// The trait is for static dispatch (`impl Acquire`, `L: Acquire`); it is
/// not object-safe.
pub trait Acquire {
    /// Proof of holding the primitive; releases it when dropped.
    type Guard<'a>
    where
        Self: 'a;

    /// Waits (FIFO) until the primitive can be taken, takes it, and returns
    /// the guard. A checkpoint; `Cancelled` means nothing was taken and the
    /// other waiters keep their places.
    fn acquire(&self) -> impl Future<Output = Result<Self::Guard<'_>>>;

    /// Takes the primitive if that needs no waiting (it is free and nobody
    /// is queued); otherwise a [`WouldBlock`](crate::ErrorKind::WouldBlock)
    /// error. Not a checkpoint.
    fn try_acquire(&self) -> Result<Self::Guard<'_>>;
}

impl Acquire for Lock {
    type Guard<'a> = LockGuard;

    #[track_caller]
    fn acquire(&self) -> impl Future<Output = Result<LockGuard>> {
        Lock::acquire(self)
    }

    fn try_acquire(&self) -> Result<LockGuard> {
        Lock::try_acquire(self)
    }
}

impl Acquire for StrictFifoLock {
    type Guard<'a> = LockGuard;

    #[track_caller]
    fn acquire(&self) -> impl Future<Output = Result<LockGuard>> {
        StrictFifoLock::acquire(self)
    }

    fn try_acquire(&self) -> Result<LockGuard> {
        StrictFifoLock::try_acquire(self)
    }
}

impl Acquire for Semaphore {
    type Guard<'a> = SemaphorePermit;

    #[track_caller]
    fn acquire(&self) -> impl Future<Output = Result<SemaphorePermit>> {
        Semaphore::acquire(self)
    }

    fn try_acquire(&self) -> Result<SemaphorePermit> {
        Semaphore::try_acquire(self)
    }
}

/// Borrows for the current task, as [`CapacityLimiter::acquire`] does.
impl Acquire for CapacityLimiter {
    type Guard<'a> = CapacityLimiterGuard;

    #[track_caller]
    fn acquire(&self) -> impl Future<Output = Result<CapacityLimiterGuard>> {
        CapacityLimiter::acquire(self)
    }

    fn try_acquire(&self) -> Result<CapacityLimiterGuard> {
        CapacityLimiter::try_acquire(self)
    }
}

/// [`lock`](Mutex::lock) and [`try_lock`](Mutex::try_lock): the guard
/// derefs to the value.
impl<T> Acquire for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;

    #[track_caller]
    fn acquire(&self) -> impl Future<Output = Result<MutexGuard<'_, T>>> {
        self.lock()
    }

    fn try_acquire(&self) -> Result<MutexGuard<'_, T>> {
        self.try_lock()
    }
}
