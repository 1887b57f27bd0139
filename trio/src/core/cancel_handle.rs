//! [`CancelHandle`]: a `Send + Sync` way to cancel a [`CancelScope`] from
//! anywhere (another thread, another run, a signal handler's thread).
//!
//! A scope lives in its run and is `!Send`; its handles share a small
//! block with it ([`HandleShared`], behind an `Arc`), created by the first
//! [`CancelScope::handle`] call, so scopes without handles pay nothing.
//!
//! # The shared block
//!
//! - `cancel_called` (atomic): set by every `cancel()`, through the scope
//!   or a handle, and by the scope's exit if it ended cancelled; readable
//!   from anywhere.
//! - `state` (a mutex, never held while calling out): the scope's phase as
//!   the handles see it, and how many handles exist.
//!   - *Fresh*: a `cancel()` only sets the flag; entry reads it, so the
//!     scope starts cancelled.
//!   - *Active*: the run and the scope's cancel status. A `cancel()` on the
//!     run's thread cancels the status at once; elsewhere it posts the
//!     cancel to the run's inbox (through the uncounted `RunHandle`), which
//!     runs it between tasks. The cancel status id carries a generation, so
//!     a post that lands after the scope exited finds nothing and does
//!     nothing.
//!   - *Exited*: `cancel()` has no effect.
//!
//! # Entry cannot miss a cancel
//!
//! `cancel()` sets the flag *before* it takes the lock; entry moves the
//! state to Active under the lock and *then* reads the flag. Either the
//! handle's lock comes after entry's (it sees Active and cancels the
//! status) or before (its flag store is visible to entry, which starts the
//! scope cancelled).
//!
//! # Deadlock detection
//!
//! A handle can cancel a task blocked forever (`sleep_forever` in the
//! scope), so while its scope is active a handle counts as something
//! outside the run that could still wake it, exactly like a
//! [`TrioToken`](crate::lowlevel::TrioToken): the run waits instead of
//! reporting a deadlock. The count is one per active scope with at least
//! one live handle: taken at entry (or when the first handle is made on an
//! active scope), given back when the scope exits or its last handle is
//! dropped, whichever is first. Releasing follows the inbox's rule (post
//! first, then release): a handle's posted cancel precedes its drop.

use crate::core::cancel::CancelScope;
use crate::core::cancel_status::CancelStatusId;
use crate::core::runtime;
use crate::core::token::RunHandle;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a scope's handles share with it. See the module docs.
pub(crate) struct HandleShared {
    /// `cancel()` was called (through the scope or a handle), or the scope
    /// exited cancelled.
    cancel_called: AtomicBool,
    state: Mutex<HandleState>,
}

struct HandleState {
    /// Live `CancelHandle`s.
    handles: usize,
    phase: HandlePhase,
}

enum HandlePhase {
    Fresh,
    Active {
        run: RunHandle,
        cancel_status: CancelStatusId,
        /// Whether this scope holds one count on the run's inbox (iff
        /// `handles > 0`).
        counted: bool,
    },
    Exited,
}

impl HandleShared {
    /// A block for a scope in this phase.
    pub(crate) fn new(
        cancel_called: bool,
        active: Option<(RunHandle, CancelStatusId)>,
        exited: bool,
    ) -> Arc<Self> {
        let phase = match active {
            Some((run, cancel_status)) => HandlePhase::Active {
                run,
                cancel_status,
                counted: false,
            },
            None if exited => HandlePhase::Exited,
            None => HandlePhase::Fresh,
        };
        Arc::new(HandleShared {
            cancel_called: AtomicBool::new(cancel_called),
            state: Mutex::new(HandleState { handles: 0, phase }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HandleState> {
        // Nothing panics while holding it, but a poisoned lock is still
        // consistent: never panic here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a `cancel()` made through the scope itself.
    pub(crate) fn note_cancel(&self) {
        self.cancel_called.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_cancel_called(&self) -> bool {
        self.cancel_called.load(Ordering::SeqCst)
    }

    /// The scope has been entered with this cancel status. Returns whether
    /// a handle cancelled it before (the caller then cancels the status).
    pub(crate) fn entered(&self, run: RunHandle, cancel_status: CancelStatusId) -> bool {
        let mut st = self.lock();
        let counted = st.handles > 0;
        if counted {
            run.hold();
        }
        st.phase = HandlePhase::Active {
            run,
            cancel_status,
            counted,
        };
        drop(st);
        self.is_cancel_called()
    }

    /// The scope has exited (`cancelled`: it ended cancelled).
    pub(crate) fn exited(&self, cancelled: bool) {
        if cancelled {
            self.note_cancel();
        }
        let mut st = self.lock();
        let old = std::mem::replace(&mut st.phase, HandlePhase::Exited);
        drop(st);
        if let HandlePhase::Active {
            run, counted: true, ..
        } = old
        {
            run.release();
        }
    }
}

/// A `Send + Sync` handle that cancels a [`CancelScope`] from anywhere:
/// another thread, another run, a signal handler's thread. Made by
/// [`CancelScope::handle`]; cheap to clone.
///
/// [`cancel`](Self::cancel) never blocks on the run and never panics:
/// - before the scope is entered, the scope will start cancelled;
/// - while it is active, it is cancelled at once on the run's own thread,
///   and otherwise as soon as the run gets to it (the cancel is posted to
///   the run, which wakes if it was blocked);
/// - after it exited, nothing happens.
///
/// While its scope is active, a live handle counts as something outside
/// the run that could still wake it (like a
/// [`TrioToken`](crate::lowlevel::TrioToken)): a run whose only hope is a
/// handle's `cancel()` waits for it rather than reporting a deadlock. Drop
/// handles you no longer need.
///
/// ```
/// use trio::CancelScope;
/// trio::run(async {
///     let scope = CancelScope::new();
///     let handle = scope.handle();
///     let canceller = std::thread::spawn(move || {
///         std::thread::sleep(std::time::Duration::from_millis(10));
///         handle.cancel(); // from another thread
///     });
///     let r = scope.run(trio::sleep_forever()).await?;
///     assert_eq!(r, None); // the scope caught its cancellation
///     canceller.join().unwrap();
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct CancelHandle {
    shared: Arc<HandleShared>,
}

impl CancelHandle {
    pub(crate) fn new(shared: Arc<HandleShared>) -> Self {
        let mut st = shared.lock();
        st.handles += 1;
        if let HandlePhase::Active { run, counted, .. } = &mut st.phase
            && !*counted
        {
            run.hold();
            *counted = true;
        }
        drop(st);
        CancelHandle { shared }
    }

    /// Cancels the scope (see the type docs for when it takes effect).
    /// Idempotent.
    pub fn cancel(&self) {
        // The flag first, then the lock: see "Entry cannot miss a cancel".
        self.shared.note_cancel();
        let st = self.shared.lock();
        let HandlePhase::Active {
            run, cancel_status, ..
        } = &st.phase
        else {
            return;
        };
        let (run, status) = (run.clone(), *cancel_status);
        drop(st);
        if run.is_current() && cancel_here(status) {
            return;
        }
        // Another thread or run (or a re-entrant call): post it. A run that
        // has finished has nothing left to cancel.
        let _ = run.run_sync_soon(move || {
            cancel_here(status);
        });
    }

    /// Whether `cancel()` was called on the scope (through it or any
    /// handle), or it exited cancelled (a deadline that passed counts from
    /// the scope's exit on). Readable from anywhere.
    pub fn is_cancel_called(&self) -> bool {
        self.shared.is_cancel_called()
    }
}

/// Cancels `status` in the current run; false if the run's state is busy
/// (a call from inside the runtime), so the caller posts it instead.
fn cancel_here(status: CancelStatusId) -> bool {
    runtime::with_runtime(|rt| {
        if rt.state.try_borrow_mut().is_err() {
            return false;
        }
        rt.with_state(|st| st.cancel(status));
        true
    })
    .unwrap_or(false)
}

impl Clone for CancelHandle {
    fn clone(&self) -> Self {
        CancelHandle::new(self.shared.clone())
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.handles -= 1;
        let release = if st.handles == 0
            && let HandlePhase::Active { run, counted, .. } = &mut st.phase
            && *counted
        {
            *counted = false;
            Some(run.clone())
        } else {
            None
        };
        drop(st);
        if let Some(run) = release {
            run.release();
        }
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.shared.lock().phase {
            HandlePhase::Fresh => "Fresh",
            HandlePhase::Active { .. } => "Active",
            HandlePhase::Exited => "Exited",
        };
        f.debug_struct("CancelHandle")
            .field("phase", &phase)
            .field("cancel_called", &self.is_cancel_called())
            .finish()
    }
}

impl CancelScope {
    /// A [`CancelHandle`] to this scope: `Send + Sync`, it cancels the
    /// scope from any thread or run. Works before entry, while active and
    /// after exit (see `CancelHandle` for what `cancel()` does in each).
    pub fn handle(&self) -> CancelHandle {
        CancelHandle::new(self.handle_shared())
    }
}
