//! Reaching a run from other threads: its [`Shared`] block, [`TrioToken`],
//! and the registry of live runs.
//!
//! Each run has a `Shared` block (behind an `Arc`): its [`Inbox`] (the
//! cross-thread protocol, see `inbox`) and a mio `Waker` that interrupts
//! the reactor when a post asks for it. Tokens and counted task wakers hold
//! the `Arc` itself, so they reach their own run without any lookup, and a
//! finished run's closed inbox turns them into no-ops.
//!
//! A run that waits on a cross-run primitive (where every hand-off to it
//! while it is blocked is a wake-up of its reactor) also gets a
//! [`DirectWaker`] (`sys/reactor_wake.rs`): a second eventfd in its epoll
//! set, under the reactor waker's token, written with a direct system
//! call instead of libc's `write` (a cancellation point: about 75
//! instructions less per wake-up in a multi-threaded process). It is made
//! on the run's thread, which has the epoll fd, the first time a
//! cross-run waiter is made ([`Shared::use_direct_waker`]); from then on
//! every notify uses it. Until then, or where it cannot be made (other
//! OSes, no fd left), mio's waker serves; both wake the same reactor, so
//! a notify racing with its making is not lost either way.
//!
//! A registry of live runs, keyed by the 16-bit run id that plain wakers
//! carry, remains for the rare plain waker used off its run's thread (a
//! `&Waker` lent to a scoped thread during a poll), and to keep the 16-bit
//! ids of live runs distinct.

use crate::core::inbox::{Callback, Inbox, Posted};
use crate::core::runtime;
use crate::error::{Error, ErrorKind, Result};
use crate::sys::reactor_wake::DirectWaker;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

/// What other threads share with a run.
pub(crate) struct Shared {
    pub(crate) run_id: u32,
    pub(crate) inbox: Inbox,
    reactor_waker: mio::Waker,
    /// The direct-syscall waker (see the module docs): unset until the
    /// run's first cross-run wait; `None` inside if it could not be made.
    direct_waker: OnceLock<Option<DirectWaker>>,
}

impl Shared {
    pub(crate) fn new(run_id: u32, reactor_waker: mio::Waker) -> Self {
        Shared {
            run_id,
            inbox: Inbox::new(),
            reactor_waker,
            direct_waker: OnceLock::new(),
        }
    }

    /// Interrupts the reactor if a post asked for it.
    #[inline]
    pub(crate) fn notify(&self, posted: Posted) {
        if posted == Posted::Notify {
            // Best effort: if the wake fails, the loop still sees `pending`
            // the next time it looks.
            match self.direct_waker.get() {
                Some(Some(direct)) => {
                    let _ = direct.wake();
                }
                _ => {
                    let _ = self.reactor_waker.wake();
                }
            }
        }
    }

    /// Makes the direct-syscall waker if it is not made yet (see the
    /// module docs); on the run's thread only, where `rt` is this run.
    /// One atomic load once made.
    #[inline]
    pub(crate) fn use_direct_waker(&self, rt: &runtime::Runtime) {
        if self.direct_waker.get().is_none() {
            self.make_direct_waker(rt);
        }
    }

    /// Whether notifies use the direct-syscall waker (for tests).
    #[cfg(test)]
    pub(crate) fn has_direct_waker(&self) -> bool {
        matches!(self.direct_waker.get(), Some(Some(_)))
    }

    #[cold]
    #[inline(never)]
    fn make_direct_waker(&self, rt: &runtime::Runtime) {
        // The reactor is not borrowed while a task runs; if it were, the
        // next cross-run wait tries again.
        let Ok(reactor) = rt.reactor.try_borrow() else {
            return;
        };
        let epoll_fd = reactor.raw_fd();
        drop(reactor);
        let token = crate::core::io::WAKER_TOKEN.0 as u64;
        let _ = self
            .direct_waker
            .set(DirectWaker::register(epoll_fd, token).ok());
    }

    fn post_callback(&self, f: Callback) -> bool {
        let posted = self.inbox.post_callback(f);
        self.notify(posted);
        posted != Posted::Closed
    }
}

// ----- the registry of live runs -------------------------------------------

static NEXT_RUN_ID: AtomicU32 = AtomicU32::new(1);
static REGISTRY: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Weak<Shared>>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh run id whose low 16 bits (what plain wakers carry) no live run
/// uses.
pub(crate) fn allocate_run_id() -> u32 {
    let reg = registry();
    loop {
        let id = NEXT_RUN_ID.fetch_add(1, Ordering::Relaxed);
        let short = id as u16;
        if short == 0 {
            continue;
        }
        let clash = reg
            .iter()
            .filter_map(Weak::upgrade)
            .any(|s| s.run_id as u16 == short);
        if !clash {
            return id;
        }
    }
}

pub(crate) fn register(shared: &Arc<Shared>) {
    let mut reg = registry();
    reg.retain(|w| w.strong_count() > 0);
    reg.push(Arc::downgrade(shared));
}

pub(crate) fn unregister(shared: &Arc<Shared>) {
    let mut reg = registry();
    reg.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(shared)));
}

/// The live run whose id ends in these 16 bits.
pub(crate) fn live_run(short_id: u16) -> Option<Arc<Shared>> {
    registry()
        .iter()
        .filter_map(Weak::upgrade)
        .find(|s| s.run_id as u16 == short_id && !s.inbox.is_closed())
}

// ----- RunHandle ---------------------------------------------------------------

/// The runtime's own, uncounted way to reach a run from another thread.
///
/// A [`TrioToken`] counts as "someone outside could still wake the run"
/// for deadlock detection; the runtime's worker threads use this instead,
/// because they are accounted for by their work guards (which they lend
/// back while they wait on the run, see `from_thread`).
#[derive(Clone)]
pub(crate) struct RunHandle {
    shared: Arc<Shared>,
}

impl RunHandle {
    pub(crate) fn current() -> Result<Self> {
        Ok(RunHandle {
            shared: runtime::current()?.shared.clone(),
        })
    }

    /// As [`TrioToken::run_sync_soon`].
    pub(crate) fn run_sync_soon(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        if self.shared.post_callback(Box::new(f)) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::RunFinished,
                "the run this token belongs to has finished",
            ))
        }
    }

    /// The handle of the run with this `Shared` block.
    pub(crate) fn of(shared: &Arc<Shared>) -> Self {
        RunHandle {
            shared: shared.clone(),
        }
    }

    /// Counts one more holder outside the run that could still wake it (as
    /// a `TrioToken` does); see `cancel_handle`.
    pub(crate) fn hold(&self) {
        self.shared.inbox.token_made();
    }

    /// Gives back a count taken with [`hold`](Self::hold), and pokes the run
    /// so that a blocked loop looks again (it may be deadlocked now).
    pub(crate) fn release(&self) {
        self.shared.notify(self.shared.inbox.token_dropped());
    }

    /// Whether the calling thread is running this run.
    pub(crate) fn is_current(&self) -> bool {
        runtime::is_current_run(&self.shared)
    }

    pub(crate) fn same_run(&self, other: &RunHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle")
            .field("run_id", &self.shared.run_id)
            .finish()
    }
}

// ----- TrioToken -------------------------------------------------------------

/// A handle other threads use to reach a run (Trio's `TrioToken`).
///
/// `Send + Sync + Clone`. Get one inside the run with
/// [`current_trio_token`] and move it anywhere.
///
/// ```
/// use std::sync::mpsc;
/// trio::run(async {
///     let token = trio::lowlevel::current_trio_token()?;
///     let (tx, rx) = mpsc::channel();
///     std::thread::spawn(move || {
///         token.run_sync_soon(move || tx.send(trio::try_current_time().is_ok()).unwrap()).unwrap();
///     })
///     .join()
///     .unwrap();
///     trio::testing::wait_all_tasks_blocked().await?; // let the callback run
///     trio::sleep(0.01).await?;
///     assert!(rx.try_recv().unwrap()); // it ran inside the run
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct TrioToken {
    handle: RunHandle,
}

impl TrioToken {
    /// Schedules `f` to run on the run's thread soon, between tasks, in the
    /// order posted. Fails with [`ErrorKind::RunFinished`] once the run has
    /// ended. `f` runs with the run's context (it may call `reschedule`,
    /// `current_time`, …); a panic in it ends the run with that panic.
    pub fn run_sync_soon(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        self.handle.run_sync_soon(f)
    }

    /// A snapshot of the run's task tree, taken on the run's thread between
    /// tasks; blocks the calling thread until the run answers (a blocked
    /// run is woken to do it). For watchdogs and signal handlers. Fails
    /// with [`ErrorKind::Usage`] on the run's own thread (it would wait for
    /// itself) and [`ErrorKind::RunFinished`] once the run has ended.
    ///
    /// ```
    /// trio::run(async {
    ///     let token = trio::lowlevel::current_trio_token()?;
    ///     let watchdog = std::thread::spawn(move || token.task_tree().map(|t| t.to_string()));
    ///     let work = trio::lowlevel::begin_external_work()?; // not idle while the thread asks
    ///     while !watchdog.is_finished() {
    ///         trio::sleep(0.001).await?;
    ///     }
    ///     drop(work);
    ///     let tree = watchdog.join().unwrap()?;
    ///     assert!(tree.contains("<root>"));
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn task_tree(&self) -> Result<crate::core::tree::TaskTree> {
        let on_run_thread = runtime::is_current_run(&self.handle.shared);
        if on_run_thread {
            return Err(Error::usage(
                "TrioToken::task_tree would wait for its own thread; use trio::lowlevel::task_tree() inside the run",
            ));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.run_sync_soon(move || {
            if let Some(tree) = runtime::with_runtime(|rt| crate::core::tree::snapshot(rt, None)) {
                let _ = tx.send(tree);
            }
        })?;
        rx.recv().map_err(|_| {
            Error::new(
                ErrorKind::RunFinished,
                "the run ended before it could answer",
            )
        })
    }

    /// Whether the run is still accepting callbacks.
    pub fn is_running(&self) -> bool {
        !self.handle.shared.inbox.is_closed()
    }

    /// The uncounted handle inside (for the runtime's worker threads).
    pub(crate) fn handle(&self) -> &RunHandle {
        &self.handle
    }
}

impl TrioToken {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.inbox.token_made();
        TrioToken {
            handle: RunHandle {
                shared: shared.clone(),
            },
        }
    }
}

impl Clone for TrioToken {
    fn clone(&self) -> Self {
        TrioToken::new(&self.handle.shared)
    }
}

impl Drop for TrioToken {
    fn drop(&mut self) {
        // A run blocked with nothing else to wait for may now be deadlocked:
        // this pokes it to look again.
        let shared = &self.handle.shared;
        shared.notify(shared.inbox.token_dropped());
    }
}

impl fmt::Debug for TrioToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrioToken")
            .field("run_id", &self.handle.shared.run_id)
            .field("running", &self.is_running())
            .finish()
    }
}

impl PartialEq for TrioToken {
    fn eq(&self, other: &Self) -> bool {
        self.handle.same_run(&other.handle)
    }
}
impl Eq for TrioToken {}

/// The current run's token.
pub fn current_trio_token() -> Result<TrioToken> {
    let rt = runtime::current()?;
    Ok(TrioToken::new(&rt.shared))
}
