//! Reaching a run from other threads: the inbox, [`TrioToken`], and wakers
//! fired elsewhere.
//!
//! Each run has a `Shared` block (behind an `Arc`): a mutex-protected inbox of
//! waker words and callbacks, and a mio `Waker` that interrupts the reactor.
//! Posting takes the lock, pushes, and wakes the reactor only if nobody has
//! since the loop last drained the inbox (one syscall per burst, not per
//! message). The loop checks an atomic flag each iteration and takes the lock
//! only when there is something to take.
//!
//! Our task wakers are integers, not pointers (see `waker`), so a waker fired
//! on a foreign thread finds its run through a global registry keyed by the
//! run id it carries. Only live runs are registered; a waker for a finished
//! run finds nothing and does nothing.

use crate::core::runtime;
use crate::core::waker::WakerWord;
use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

type Callback = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) wakes: Vec<WakerWord>,
    pub(crate) callbacks: Vec<Callback>,
    closed: bool,
}

pub(crate) struct Shared {
    pub(crate) run_id: u32,
    inbox: Mutex<Inbox>,
    /// Set when something was posted and the loop has not drained it yet.
    pending: AtomicBool,
    reactor_waker: mio::Waker,
    /// Outstanding [`ExternalWork`](crate::lowlevel::ExternalWork) guards.
    pub(crate) external_work: AtomicUsize,
    /// Waker clones made (+) or dropped (−) on other threads.
    pub(crate) remote_wakers: AtomicIsize,
    /// Live [`TrioToken`]s (deadlock detection: a token could wake the run).
    pub(crate) tokens: AtomicUsize,
}

impl Shared {
    pub(crate) fn new(run_id: u32, reactor_waker: mio::Waker) -> Self {
        Shared {
            run_id,
            inbox: Mutex::new(Inbox::default()),
            pending: AtomicBool::new(false),
            reactor_waker,
            external_work: AtomicUsize::new(0),
            remote_wakers: AtomicIsize::new(0),
            tokens: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inbox> {
        // A panic while holding this lock cannot leave the inbox inconsistent
        // (pushes and swaps only), so poisoning is ignored.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn post(&self, f: impl FnOnce(&mut Inbox)) -> bool {
        let mut inbox = self.lock();
        if inbox.closed {
            return false;
        }
        f(&mut inbox);
        drop(inbox);
        if !self.pending.swap(true, Ordering::AcqRel) {
            // Best effort: if the wake fails, the loop still sees `pending`
            // the next time it looks.
            let _ = self.reactor_waker.wake();
        }
        true
    }

    /// Makes the loop go round once more (to notice a change in `external_work`).
    pub(crate) fn poke(&self) {
        self.post(|_| {});
    }

    /// Whether the inbox may have something (cheap; no lock).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes everything posted so far.
    pub(crate) fn drain(&self, wakes: &mut Vec<WakerWord>, callbacks: &mut Vec<Callback>) {
        self.pending.store(false, Ordering::Release);
        let mut inbox = self.lock();
        std::mem::swap(&mut inbox.wakes, wakes);
        std::mem::swap(&mut inbox.callbacks, callbacks);
    }

    /// Refuses further posts; returns callbacks that will never run.
    pub(crate) fn close(&self) -> Vec<Callback> {
        let mut inbox = self.lock();
        inbox.closed = true;
        inbox.wakes.clear();
        std::mem::take(&mut inbox.callbacks)
    }
}

// ----- the registry of live runs -------------------------------------------

static NEXT_RUN_ID: AtomicU32 = AtomicU32::new(1);
static REGISTRY: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Weak<Shared>>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh run id whose low 16 bits (what wakers carry) no live run uses.
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

/// The live run whose id ends in these 16 bits (what a waker carries).
fn live_run(short_id: u16) -> Option<Arc<Shared>> {
    registry()
        .iter()
        .filter_map(Weak::upgrade)
        .find(|s| s.run_id as u16 == short_id)
}

/// A waker of ours fired on a thread that is not running its run.
pub(crate) fn wake_from_elsewhere(word: WakerWord) {
    let target = live_run(word.run);
    if let Some(shared) = target {
        shared.post(|inbox| inbox.wakes.push(word));
    }
}

/// A clone of one of our wakers made or dropped off its run's thread.
pub(crate) fn count_foreign_waker_elsewhere(word: WakerWord, delta: isize) {
    let target = live_run(word.run);
    if let Some(shared) = target {
        shared.remote_wakers.fetch_add(delta, Ordering::AcqRel);
        if delta < 0 {
            // Maybe the last outside waker: let the run re-check for a deadlock.
            shared.poke();
        }
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
///         token.run_sync_soon(move || tx.send(trio::current_time().is_ok()).unwrap()).unwrap();
///     })
///     .join()
///     .unwrap();
///     trio::testing::wait_all_tasks_blocked(0.0).await?; // let the callback run
///     trio::sleep(0.01).await?;
///     assert!(rx.try_recv().unwrap()); // it ran inside the run
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct TrioToken {
    shared: Arc<Shared>,
}

impl TrioToken {
    /// Schedules `f` to run on the run's thread soon, between tasks, in the
    /// order posted. Fails with [`ErrorKind::RunFinished`] once the run has
    /// ended. `f` runs with the run's context (it may call `reschedule`,
    /// `current_time`, …); a panic in it ends the run with that panic.
    pub fn run_sync_soon(&self, f: impl FnOnce() + Send + 'static) -> Result<()> {
        if self.shared.post(|inbox| inbox.callbacks.push(Box::new(f))) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::RunFinished,
                "the run this token belongs to has finished",
            ))
        }
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
        let on_run_thread =
            runtime::with_runtime(|rt| Arc::ptr_eq(&rt.shared, &self.shared)).unwrap_or(false);
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
        !self.shared.lock().closed
    }
}

impl TrioToken {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.tokens.fetch_add(1, Ordering::AcqRel);
        TrioToken {
            shared: shared.clone(),
        }
    }
}

impl Clone for TrioToken {
    fn clone(&self) -> Self {
        TrioToken::new(&self.shared)
    }
}

impl Drop for TrioToken {
    fn drop(&mut self) {
        self.shared.tokens.fetch_sub(1, Ordering::AcqRel);
        // A run blocked with nothing else to wait for may now be deadlocked:
        // let it look again.
        self.shared.poke();
    }
}

impl fmt::Debug for TrioToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrioToken")
            .field("run_id", &self.shared.run_id)
            .field("running", &self.is_running())
            .finish()
    }
}

impl PartialEq for TrioToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for TrioToken {}

/// The current run's token.
pub fn current_trio_token() -> Result<TrioToken> {
    let rt = runtime::current()?;
    Ok(TrioToken::new(&rt.shared))
}
