//! Synchronisation between the tasks of one run (Trio's `Event`, `Lock`,
//! `Semaphore`, `CapacityLimiter`, `Condition`, `ParkingLot`, and a
//! data-owning `Mutex<T>` for Rust users).
//!
//! Everything here is built on the public low-level API
//! ([`lowlevel::Park`](crate::lowlevel::Park) and
//! [`reschedule`](crate::lowlevel::reschedule)), the way a user could build
//! it. The one exception is [`Event`], whose waits have nothing to undo: it
//! makes its `Park`s already registered (one state borrow for both steps)
//! and wakes all its waiters in one state borrow, which a user would do
//! with `Park::new` and `reschedule` at a few more instructions per waiter.
//! Common rules:
//!
//! - **FIFO-fair**: waiters are served in the order they started waiting,
//!   and a released resource is handed *directly* to the oldest waiter, so
//!   nobody can barge in ahead of it.
//! - **Checkpoints**: every `async` operation is a checkpoint (cancel point
//!   and schedule point), even when it does not need to wait.
//! - **Cancelled means no effect**: an operation that returns `Cancelled`
//!   took nothing, and the other waiters keep their places.
//! - **Dropping is safe**: dropping a waiting future leaves the primitive
//!   consistent; if the resource had already been handed to it, it is
//!   passed on.
//! - **Handles**: every primitive is a cheap-to-clone handle (an `Rc`), so
//!   it can be shared by reference with children or cloned into `'static`
//!   tasks. They are not `Send`: a run is single-threaded. Where Rust users
//!   expect RAII (locks, semaphore units, limiter tokens) the acquire
//!   returns a guard; the guard-less `*_raw` forms mirror Trio's API.
//!   [`Acquire`] is the one interface of the guarded ones (Lock,
//!   StrictFifoLock, Semaphore, CapacityLimiter, Mutex), for generic code.
//! - Each has `statistics()` for debugging.
//! - **No call-outs under a borrow, none into a half-updated primitive.**
//!   Waking a waiter ([`reschedule`](crate::lowlevel::reschedule)) calls
//!   out: instruments' `task_scheduled` hooks and foreign wakers run inside
//!   it, and may use the primitive. So does dropping a user's value. A
//!   primitive first brings its own state to what it will be after the
//!   wake-up (the woken waiter already holds what it is handed, and is out
//!   of the queue), releases every borrow of it, and only then reschedules
//!   or drops.

use crate::error::{Error, Result};

mod acquire;
mod capacity_limiter;
mod condition;
mod event;
mod lock;
mod mutex;
mod parking_lot;
mod semaphore;

pub use acquire::Acquire;
pub use capacity_limiter::{
    Borrower, CapacityLimiter, CapacityLimiterGuard, CapacityLimiterStatistics,
};
pub use condition::{Condition, ConditionStatistics};
pub use event::{Event, EventStatistics};
pub use lock::{Lock, LockGuard, LockStatistics, StrictFifoLock};
pub use mutex::{Mutex, MutexGuard};
pub use parking_lot::{ParkingLot, ParkingLotStatistics};
pub(crate) use parking_lot::{WaitQueue, WaitSite};
pub use semaphore::{Semaphore, SemaphorePermit, SemaphoreStatistics};

/// What a non-blocking attempt came to, inside the crate. "Would block" is
/// the expected outcome on the way to waiting, so it is a plain variant: an
/// [`Error`] is made only when a caller of a public `try_*` method asks for
/// one.
pub(crate) enum Try<T> {
    Ready(T),
    WouldBlock,
    Failed(Error),
}

impl<T> Try<T> {
    /// The answer of a public `try_*` method: "would block" becomes the
    /// error that `would_block` makes.
    pub(crate) fn into_result(self, would_block: impl FnOnce() -> Error) -> Result<T> {
        match self {
            Try::Ready(v) => Ok(v),
            Try::WouldBlock => Err(would_block()),
            Try::Failed(e) => Err(e),
        }
    }
}
