//! [`StoredWaker`]: a waker kept for later by a primitive that lives in
//! the run (a timer registry, a wait list), without the allocation a
//! `Waker::clone` of a trio waker costs.
//!
//! # Why
//!
//! A plain trio waker (the one a task is polled with) is an integer; its
//! clone is a *counted* waker, which allocates (see `core/waker.rs`:
//! someone outside the runtime may keep it, so the deadlock detector must
//! know). A primitive of the run that keeps the waker only until it wakes
//! it (hyper's timers in `trio-hyper`, say, one per request) needs none of
//! that: it can keep the task's key decoded, as trio's own parks and
//! cancel waiters do ([`WakeTarget`]).
//!
//! # Invariants
//!
//! - A plain waker of the current run is kept as its task key (index and
//!   generation): waking a task that has ended since (its slot reused by
//!   another task, or freed) wakes nobody, because the generation differs.
//! - A counted waker (a clone) of a task of the current run is decoded to
//!   that task's key too; any other waker (foreign, another run's, or
//!   stored outside a run) is cloned and kept as is.
//! - A stored plain waker does not count as a waker held outside the run,
//!   which is right: it is inside the run, so a task waiting only on one
//!   is still reported as a deadlock if nothing else can wake it.
//! - `StoredWaker` is `!Send`: a decoded key means something only on its
//!   run's thread.

use crate::core::runtime::{self, WakeTarget};
use std::fmt;
use std::marker::PhantomData;
use std::task::Waker;

/// A waker stored for a later wake, with no allocation when it is a trio
/// task's own (plain) waker of the current run, which it keeps decoded as
/// the task's key (with its generation: a task that has ended since is not
/// woken). Any other waker is cloned. A stored task waker does not count
/// as a waker held outside the run, so a task that waits only on one is
/// still reported as a deadlock. `!Send`: a decoded key means something
/// only on its run's thread. For primitives that live in the run (a timer
/// registry, a wait list).
///
/// ```
/// use std::future::poll_fn;
/// use std::task::Poll;
/// use trio::lowlevel::StoredWaker;
///
/// trio::run(async {
///     let mut first = true;
///     poll_fn(|cx| {
///         if first {
///             first = false;
///             let stored = StoredWaker::new(cx.waker());
///             // Woken at once: the task is polled again.
///             stored.wake();
///             return Poll::Pending;
///         }
///         Poll::Ready(())
///     })
///     .await;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct StoredWaker {
    target: WakeTarget,
    /// `!Send + !Sync`: see the module docs.
    _local: PhantomData<*const ()>,
}

impl StoredWaker {
    /// Stores `waker`: decoded if it is a plain waker of the current run,
    /// else a clone.
    pub fn new(waker: &Waker) -> Self {
        let mut target = WakeTarget::NONE;
        // (A run's `update_in` clones a foreign waker itself.)
        if runtime::with_runtime(|rt| target.update_in(waker, rt)).is_none() {
            target = WakeTarget::Foreign(Box::new(waker.clone()));
        }
        StoredWaker {
            target,
            _local: PhantomData,
        }
    }

    /// Whether waking this and waking `waker` wake the same task (or
    /// `waker` would be stored as this is).
    pub fn will_wake(&self, waker: &Waker) -> bool {
        match &self.target {
            WakeTarget::None => false,
            WakeTarget::Task(w) => crate::core::waker::task_waker(*w).will_wake(waker),
            WakeTarget::Foreign(w) => w.will_wake(waker),
        }
    }

    /// Wakes the stored waker (a task that has ended since is not woken).
    pub fn wake(mut self) {
        self.target.wake();
    }

    /// Wakes the stored waker, keeping it for another wake.
    pub fn wake_by_ref(&self) {
        self.target.wake_by_ref();
    }
}

impl fmt::Debug for StoredWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.target {
            WakeTarget::None => "none",
            WakeTarget::Task(_) => "task",
            WakeTarget::Foreign(_) => "foreign",
        };
        f.debug_struct("StoredWaker").field("kind", &kind).finish()
    }
}
