//! Who waits on a cross-run primitive, and how any thread wakes them.
//!
//! A [`Waiter`] is stored in a primitive's shared state (under its mutex)
//! while a task or a thread is blocked there. Whoever ends the wait first
//! writes the outcome into that state, releases the mutex, then calls
//! [`Waiter::wake`]; the waiter reads its outcome from the state when it
//! resumes. A wake-up carries nothing itself, so tasks and threads are
//! woken the same way and a spurious wake-up is harmless.
//!
//! - A **task** waiter is the (run, wait key) pair of a parked task: its
//!   run's `Shared` block and its [`WaitKey`]. On the run's own thread,
//!   `wake` reschedules the wait directly; elsewhere it posts a callback to
//!   the run's inbox, which reschedules it between tasks (and interrupts the
//!   run's reactor if it was blocked). That is the only way into a run from
//!   outside (`core/inbox.rs`).
//! - A **thread** waiter is a thread blocked in a `*_blocking` call:
//!   `wake` unparks it.
//!
//! # Deadlock detection
//!
//! A task waiter is a way to wake its task held outside the run's own
//! tables, exactly like a clone of the task's waker: while it exists it is
//! counted in the run's inbox as one (`outside_waker_made`), so the run
//! never reports a deadlock while a cross-run wait could still be ended
//! from elsewhere. The count is given back when the waiter is dropped:
//! after its wake-up has been applied (the posted callback owns it and
//! drops it on the run's thread, right after rescheduling), or when the
//! wait is cancelled or dropped (on the run's thread too). So the rule of
//! the inbox, *post first, then release*, holds by construction: a wake-up
//! is in the inbox before the count it keeps alive goes away. A waiter
//! dropped on another thread (a run that has ended, a misuse) pokes the run
//! as an outside waker's drop does.

use crate::core::park::{WaitKey, reschedule};
use crate::core::runtime;
use crate::core::token::{RunHandle, Shared};
use crate::error::Result;
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

    /// Whether the waiter can still be woken: false for a task of a run
    /// that has ended (its wait was left by a future leaked in that run).
    /// Checked under the primitive's mutex, so that such a waiter is
    /// skipped before anything is handed to it.
    pub(crate) fn is_live(&self) -> bool {
        match self {
            Waiter::Task(t) => !t.shared.inbox.is_closed(),
            Waiter::Thread(_) => true,
            #[cfg(all(test, loom))]
            Waiter::Model(_) => true,
        }
    }

    /// Wakes the waiter. False if it can never be woken: a task of a run
    /// that has ended (its wait was left by a future leaked in that run).
    /// Never called with the primitive's mutex held.
    pub(crate) fn wake(self) -> bool {
        match self {
            Waiter::Task(t) => t.wake(),
            Waiter::Thread(t) => {
                t.unpark();
                true
            }
            #[cfg(all(test, loom))]
            Waiter::Model(m) => m.wake(),
        }
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
/// run's inbox while it lives (see the module docs).
pub(crate) struct TaskWaiter {
    shared: Arc<Shared>,
    key: WaitKey,
}

impl TaskWaiter {
    /// The waiter of the wait `key`, made in its run (on the run's thread).
    pub(crate) fn new(key: WaitKey) -> Result<Self> {
        let shared = runtime::current()?.shared.clone();
        shared.inbox.outside_waker_made();
        Ok(TaskWaiter { shared, key })
    }

    fn wake(self) -> bool {
        if runtime::is_current_run(&self.shared) {
            reschedule(self.key, Ok(()));
            return true; // dropped here, on the run's thread: no poke
        }
        let run = RunHandle::of(&self.shared);
        // The callback owns the waiter: the count goes when it has run,
        // after the reschedule (post first, then release). A run that has
        // ended refuses the post and the waiter is dropped with it.
        run.run_sync_soon(move || {
            reschedule(self.key, Ok(()));
            drop(self);
        })
        .is_ok()
    }
}

impl Drop for TaskWaiter {
    fn drop(&mut self) {
        let on_run_thread = runtime::is_current_run(&self.shared);
        let posted = self.shared.inbox.outside_waker_dropped(on_run_thread);
        self.shared.notify(posted);
    }
}
