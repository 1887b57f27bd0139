//! Who waits on a cross-run primitive, and how any thread wakes them.
//!
//! A [`Waiter`] is stored in a primitive's shared state (under its mutex)
//! while a task or a thread is blocked there. Whoever ends the wait does it
//! in two steps:
//!
//! 1. *Under the mutex*, in the same locking that takes the waiter out of
//!    its queue and writes its outcome: [`Waiter::prepare`]. For a task of
//!    another run this posts the wake-up to that run's inbox (a leaf lock,
//!    never held while calling out): a *reschedule* of the task's wait, its
//!    key only (no allocation, no callback), which the run's loop applies
//!    when it drains the inbox. A run that has ended refuses the post:
//!    the waiter is *stale* (left by a future leaked in that run) and
//!    `prepare` says so, so the caller skips it before anything is handed
//!    to it, and nothing is lost to it.
//! 2. *After the mutex is released*: [`Wake::finish`]: interrupt the other
//!    run's reactor (a syscall, kept out of the mutex), reschedule a task
//!    of the current run directly (a call-out: instrument hooks and foreign
//!    wakers run inside a reschedule), or unpark a thread.
//!
//! The waiter reads its outcome from the primitive's state when it
//! resumes; a wake-up carries nothing itself, so tasks and threads are
//! woken the same way and a spurious wake-up is harmless. A task that
//! resumes early (its reschedule applied before the mutex was released)
//! simply waits for the mutex, which is released with the outcome written.
//!
//! - A **task** waiter is the (run, wait key) pair of a parked task: its
//!   run's `Shared` block and its [`WaitKey`]. The posted reschedule gives
//!   the wait `Ok(())` between tasks, through the run's inbox, the only way
//!   into a run (`core/inbox.rs`).
//! - A **thread** waiter is a thread blocked in a `*_blocking` call.
//!
//! # Deadlock detection
//!
//! A task waiter is a way to wake its task held outside the run's own
//! tables, exactly like a clone of the task's waker: while it exists it is
//! counted in the run's inbox as one (`outside_waker_made`), so the run
//! never reports a deadlock while a cross-run wait could still be ended
//! from elsewhere. The count is given back by whoever ends the wait: by
//! the waking thread *right after its post*, in `prepare`
//! (`Inbox::outside_waker_released_by_post`: no poke, the post is one), so
//! the rule of the inbox, *post first, then release*, holds by
//! construction: the wake-up is in the inbox before the count it kept
//! alive goes away. Otherwise when the waiter is dropped: rescheduled
//! directly in its own run, or the wait cancelled or dropped (on the run's
//! thread: no poke needed). A waiter dropped on another thread while still
//! counted (a run that has ended, a misuse) pokes the run as an outside
//! waker's drop does.

use crate::core::inbox::Posted;
use crate::core::park::{WaitKey, reschedule};
use crate::core::runtime;
use crate::core::token::Shared;
use crate::error::{Error, Result};
use std::fmt;
use std::sync::Arc;

#[cfg(loom)]
use loom::thread::Thread;
#[cfg(not(loom))]
use std::thread::Thread;

/// A blocked task or thread. See the module docs.
pub(crate) enum Waiter {
    Task(TaskWaiter),
    Thread(Thread),
    /// A stand-in for a task of a run, in the loom model (which has no run
    /// loop): wakes by posting to a model inbox.
    #[cfg(all(test, loom))]
    Model(super::loom_model::ModelWaiter),
}

impl Waiter {
    /// A waiter for the calling thread (a blocking call).
    pub(crate) fn current_thread() -> Self {
        #[cfg(loom)]
        return Waiter::Thread(loom::thread::current());
        #[cfg(not(loom))]
        Waiter::Thread(std::thread::current())
    }

    /// Step 1 of a wake-up (see the module docs), under the primitive's
    /// mutex: `None` if the waiter can never be woken (a task of a run that
    /// has ended), in which case the caller skips it.
    pub(crate) fn prepare(self) -> Option<Wake> {
        match self {
            Waiter::Task(t) => t.prepare(),
            Waiter::Thread(t) => Some(Wake::Unpark(t)),
            #[cfg(all(test, loom))]
            Waiter::Model(m) => m.prepare().map(Wake::Model),
        }
    }

    /// Both steps at once, for a caller that holds no mutex.
    pub(crate) fn wake(self) {
        if let Some(w) = self.prepare() {
            w.finish();
        }
    }
}

/// Step 2 of a wake-up (see the module docs): what is left to do once the
/// primitive's mutex is released.
#[must_use = "a prepared wake-up must be finished after the mutex is released"]
pub(crate) enum Wake {
    /// A task of the current run: reschedule it now.
    Here(TaskWaiter),
    /// Posted to another run's inbox (the waiter's count already given
    /// back): interrupt its reactor if the post asked for it.
    Posted(TaskWaiter, Posted),
    Unpark(Thread),
    #[cfg(all(test, loom))]
    Model(super::loom_model::ModelWake),
}

impl Wake {
    #[inline]
    pub(crate) fn finish(self) {
        match self {
            Wake::Here(t) => {
                reschedule(t.key, Ok(()));
                // Dropped here, on the run's thread: no poke.
            }
            Wake::Posted(t, posted) => t.shared.notify(posted),
            Wake::Unpark(t) => t.unpark(),
            #[cfg(all(test, loom))]
            Wake::Model(m) => m.finish(),
        }
    }
}

/// Finishes `wakes` (after the mutex is released).
pub(crate) fn finish_all(wakes: Vec<Wake>) {
    for w in wakes {
        w.finish();
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiter::Task(t) => f
                .debug_struct("Task")
                .field("run_id", &t.shared.run_id)
                .field("key", &t.key)
                .finish(),
            Waiter::Thread(t) => f.debug_tuple("Thread").field(&t.id()).finish(),
            #[cfg(all(test, loom))]
            Waiter::Model(_) => f.write_str("Model"),
        }
    }
}

/// A parked task of some run, as other threads reach it. Counted in that
/// run's inbox until its wake-up is posted, or it is dropped (see the
/// module docs).
pub(crate) struct TaskWaiter {
    shared: Arc<Shared>,
    key: WaitKey,
    /// Holds a count in the inbox (given back by `prepare`'s post, or by
    /// the drop).
    counted: bool,
}

impl TaskWaiter {
    /// The waiter of the wait `key`, made in its run (on the run's thread).
    pub(crate) fn new(key: WaitKey) -> Result<Self> {
        runtime::with_runtime(|rt| Self::in_run(rt, key)).ok_or_else(Error::outside_run)
    }

    /// [`new`](Self::new), for a caller already looking at the run `rt`
    /// (on its thread).
    #[inline]
    pub(crate) fn in_run(rt: &runtime::Runtime, key: WaitKey) -> Self {
        let shared = rt.shared.clone();
        // Its wake-ups will come from other threads: the cheaper waker.
        shared.use_direct_waker(rt);
        shared.inbox.outside_waker_made();
        TaskWaiter {
            shared,
            key,
            counted: true,
        }
    }

    fn prepare(mut self) -> Option<Wake> {
        if runtime::is_current_run(&self.shared) {
            return Some(Wake::Here(self));
        }
        let posted = self.shared.inbox.post_reschedule(self.key);
        if posted == Posted::Closed {
            // A run that has ended refused the post: stale. The drop gives
            // the count back.
            return None;
        }
        // Post first, then release: the count goes now, without a poke.
        self.shared.inbox.outside_waker_released_by_post();
        self.counted = false;
        Some(Wake::Posted(self, posted))
    }
}

impl Drop for TaskWaiter {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let on_run_thread = runtime::is_current_run(&self.shared);
        let posted = self.shared.inbox.outside_waker_dropped(on_run_thread);
        self.shared.notify(posted);
    }
}
