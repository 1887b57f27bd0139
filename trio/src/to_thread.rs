//! Running blocking code in worker threads (Trio's `trio.to_thread`).
//!
//! # Design
//!
//! - **The pool.** Process-wide: a thread that finishes a job parks itself
//!   on an idle list and waits up to [`IDLE_TIMEOUT`] for the next job
//!   before exiting, so bursts of calls reuse threads and quiet processes
//!   hold none. The most recently idle thread is reused first. The pool
//!   itself does not limit anything: the [`CapacityLimiter`] does.
//! - **Limiting.** Each call borrows one token of a limiter (by default the
//!   run's own, of 40 tokens: [`current_default_thread_limiter`]) on behalf
//!   of a fresh [`Borrower`], before the thread starts; the token goes back
//!   only when the thread has really finished, even if the caller stopped
//!   waiting for it.
//! - **Getting the result back.** The caller parks. The thread stores the
//!   result in a shared slot and posts a callback as
//!   [`TrioToken::run_sync_soon`](crate::lowlevel::TrioToken::run_sync_soon)
//!   does (through the crate-private `RunHandle`); the callback (in the run)
//!   returns the token and reschedules the caller. The bookkeeping lives in a run-local
//!   table ([`RunVar`]) so that the callback, which must be `Send`, only
//!   carries an id. While the thread works the call holds an
//!   [`ExternalWork`] guard, so the run does
//!   not count as idle (no MockClock autojump, no `wait_all_tasks_blocked`
//!   wake-up); the callback is posted *before* the guard is dropped, so there
//!   is no moment where the run looks idle but the result is in flight.
//! - **Cancellation.** By default a cancelled call keeps waiting for the
//!   thread (the work cannot be stopped, and returning early would let it
//!   run on unsupervised) and returns its result. With
//!   [`Builder::abandon_on_cancel`] the call returns `Cancelled` at once and
//!   the thread runs on; its result is dropped.
//!   Either way the worker learns of it: `from_thread::check_cancelled`
//!   fails, and `from_thread::run` calls it makes back into the run are
//!   cancelled with the caller (they run in a cancel scope that the
//!   caller's cancellation cancels), as in Trio.
//! - **Panics** in the function resume in the calling task with their
//!   original payload, like a panicking child task.

use crate::core::cancel::CancelScope;
use crate::core::token::RunHandle;
use crate::error::{Error, Result};
use crate::lowlevel::{
    Abort, AbortReason, ExternalWork, Park, RunVar, WaitKey, begin_external_work,
    checkpoint_if_cancelled, reschedule,
};
use crate::sync::{Borrower, CapacityLimiter, WaitSite};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an idle pool thread waits for another job before exiting.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many threads the default limiter allows per run.
pub const DEFAULT_LIMIT: usize = 40;

static DEFAULT_LIMITER: RunVar<Option<CapacityLimiter>> =
    RunVar::with_default("trio::to_thread default limiter", || None);

/// The run's default thread limiter (40 tokens unless changed with
/// [`CapacityLimiter::set_total_tokens`]). Errors outside a run.
///
/// ```
/// trio::run(async {
///     let limiter = trio::to_thread::current_default_thread_limiter()?;
///     assert_eq!(limiter.total_tokens(), 40);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn current_default_thread_limiter() -> Result<CapacityLimiter> {
    if let Some(l) = DEFAULT_LIMITER.get()? {
        return Ok(l);
    }
    let l = CapacityLimiter::new(DEFAULT_LIMIT)?;
    DEFAULT_LIMITER.set(Some(l.clone()))?;
    Ok(l)
}

/// Runs `f` in a worker thread and waits for its result, with the default
/// options (see [`Builder`]). A checkpoint.
///
/// ```
/// trio::run(async {
///     let sum = trio::to_thread::run_sync(|| (1..=10).sum::<u32>()).await?;
///     assert_eq!(sum, 55);
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// The task tree shows the caller as waiting in `to_thread.run_sync` at
/// its call site (for a limiter token, then for the thread).
#[track_caller]
pub fn run_sync<F, R>(f: F) -> impl Future<Output = Result<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Builder::new().run_sync_at(f, WaitSite::new("to_thread.run_sync"))
}

/// Options for running a function in a thread.
///
/// ```
/// use trio::sync::CapacityLimiter;
/// trio::run(async {
///     let one_at_a_time = CapacityLimiter::new(1)?;
///     let v = trio::to_thread::Builder::new()
///         .limiter(one_at_a_time)
///         .abandon_on_cancel(true)
///         .run_sync(|| 7)
///         .await?;
///     assert_eq!(v, 7);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    abandon_on_cancel: bool,
    limiter: Option<CapacityLimiter>,
}

impl Builder {
    /// Default options: keep waiting when cancelled, the run's default
    /// limiter.
    pub fn new() -> Self {
        Builder::default()
    }

    /// If true, a cancelled call returns `Cancelled` at once and leaves the
    /// thread to finish on its own (its result is dropped; its limiter
    /// token is returned when it finishes). Default: false, the call waits
    /// for the thread and returns its result.
    pub fn abandon_on_cancel(mut self, abandon: bool) -> Self {
        self.abandon_on_cancel = abandon;
        self
    }

    /// Limits the call with `limiter` instead of the run's default one.
    pub fn limiter(mut self, limiter: CapacityLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Runs `f` in a worker thread and returns its result: a checkpoint
    /// first, then a token from the limiter (waiting if none is free), then
    /// the thread. Inside `f`, [`from_thread`](crate::from_thread) can call
    /// back into the run. A panic in `f` resumes in the caller.
    ///
    /// The task tree shows the caller as waiting in `to_thread.run_sync` at
    /// its call site (for a limiter token, then for the thread).
    #[track_caller]
    pub fn run_sync<F, R>(self, f: F) -> impl Future<Output = Result<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.run_sync_at(f, WaitSite::new("to_thread.run_sync"))
    }

    async fn run_sync_at<F, R>(self, f: F, site: WaitSite) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        checkpoint_if_cancelled().await?;
        let limiter = match self.limiter {
            Some(l) => l,
            None => current_default_thread_limiter()?,
        };
        // Uncounted: this call is accounted for by its work guard (which
        // `from_thread` lends back while the worker waits on the run), so a
        // worker blocked on the run cannot hide a deadlock.
        let token = RunHandle::current()?;
        let borrower = Borrower::unique();
        limiter.acquire_on_behalf_of_at(borrower, site).await?;
        // From here on the limiter token is returned by `finish` (or below,
        // if the thread never starts).
        let work = match begin_external_work() {
            Ok(w) => w,
            Err(e) => {
                let _ = limiter.release_on_behalf_of(borrower);
                return Err(e);
            }
        };
        let cancelled = Arc::new(AtomicBool::new(false));
        let id = match PENDING.with(|p| {
            p.next_id += 1;
            let id = p.next_id;
            p.calls.insert(
                id,
                Pending {
                    limiter: limiter.clone(),
                    borrower,
                    waiter: None,
                    cancelled: cancelled.clone(),
                    callbacks: Vec::new(),
                },
            );
            id
        }) {
            Ok(id) => id,
            Err(e) => {
                let _ = limiter.release_on_behalf_of(borrower);
                return Err(e);
            }
        };
        let slot: Arc<Mutex<Option<std::thread::Result<R>>>> = Arc::new(Mutex::new(None));
        let abandon = self.abandon_on_cancel;
        let park = Park::new_at(site.label, site.location, |_key, reason| match reason {
            AbortReason::Cancelled if !abandon => {
                // Keep waiting for the thread, but tell it (and the calls it
                // makes back into the run) that its caller is cancelled.
                cancel_call(id);
                Abort::Failed
            }
            _ => {
                cancel_call(id);
                // Abandoned (or dropped): the thread runs on; `finish`
                // still returns the limiter token when it is done.
                let _ = PENDING.with(|p| {
                    if let Some(c) = p.calls.get_mut(&id) {
                        c.waiter = None;
                    }
                });
                Abort::Succeeded
            }
        })?;
        let key = park.key();
        let _ = PENDING.with(|p| {
            if let Some(c) = p.calls.get_mut(&id) {
                c.waiter = Some(key);
            }
        });
        let job_slot = slot.clone();
        let job_token = token.clone();
        let job_call = (id, cancelled);
        let job: Job = Box::new(move || {
            let _ctx = WorkerContext::enter(job_token.clone(), work, job_call);
            let result = catch_unwind(AssertUnwindSafe(f));
            *lock(&job_slot) = Some(result);
            let work = WorkerContext::take_work();
            Box::new(move || {
                // Post first, then drop the work guard: the run never looks
                // idle while the result is on its way. (If the run is gone,
                // there is nobody to tell.)
                let _ = job_token.run_sync_soon(move || finish(id));
                drop(work);
            })
        });
        if let Err(e) = start_thread_soon(job) {
            drop(park);
            let _ = PENDING.with(|p| p.calls.remove(&id));
            let _ = limiter.release_on_behalf_of(borrower);
            return Err(e.into());
        }
        park.await?;
        let result = lock(&slot).take();
        match result {
            Some(Ok(v)) => Ok(v),
            Some(Err(payload)) => resume_unwind(payload),
            None => Err(Error::usage("a worker thread finished without a result")),
        }
    }
}

/// Calls in flight in this run, keyed by id.
#[derive(Default)]
struct PendingCalls {
    next_id: u64,
    calls: HashMap<u64, Pending>,
}

struct Pending {
    limiter: CapacityLimiter,
    borrower: Borrower,
    /// The parked caller, unless it gave up waiting.
    waiter: Option<WaitKey>,
    /// Set when the caller is cancelled; the worker reads it through
    /// `from_thread::check_cancelled`.
    cancelled: Arc<AtomicBool>,
    /// Scopes of `from_thread::run` calls made by the worker: cancelled
    /// with the caller, so they run under its cancellation as in Trio.
    callbacks: Vec<CancelScope>,
}

static PENDING: RunVar<PendingCalls> =
    RunVar::with_default("trio::to_thread calls in flight", PendingCalls::default);

/// In the run, when the caller of call `id` is cancelled (or gives up).
fn cancel_call(id: u64) {
    let scopes = PENDING.with(|p| {
        p.calls.get_mut(&id).map(|c| {
            c.cancelled.store(true, Ordering::Release);
            c.callbacks.clone()
        })
    });
    for scope in scopes.ok().flatten().unwrap_or_default() {
        scope.cancel();
    }
}

/// In the run: a scope for a `from_thread::run` made by the worker of call
/// `id`, already cancelled if the caller is.
pub(crate) fn scope_for_call(id: u64) -> CancelScope {
    let scope = CancelScope::new();
    let cancelled = PENDING
        .with(|p| {
            p.calls.get_mut(&id).map(|c| {
                c.callbacks.push(scope.clone());
                c.cancelled.load(Ordering::Acquire)
            })
        })
        .ok()
        .flatten()
        .unwrap_or(false);
    if cancelled {
        scope.cancel();
    }
    scope
}

/// In the run, once the thread has finished: return the limiter token,
/// then wake the caller (if it is still waiting).
fn finish(id: u64) {
    let Ok(Some(call)) = PENDING.with(|p| p.calls.remove(&id)) else {
        return;
    };
    let _ = call.limiter.release_on_behalf_of(call.borrower);
    if let Some(key) = call.waiter {
        reschedule(key, Ok(()));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here can leave the protected data half-updated, so a
    // poisoned lock (a panic elsewhere while holding it) is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ----- the worker's view: which run it works for -----------------------------

/// What a pool thread knows while running a job: the run it works for, and
/// the run's "work in progress" guard (lent out by `from_thread` while the
/// thread waits for the run).
pub(crate) struct WorkerContext;

/// The run's token, its work guard unless lent out, and the call being
/// worked on (its id in the run, and its "caller cancelled" flag).
struct Context {
    token: RunHandle,
    work: Option<ExternalWork>,
    call: (u64, Arc<AtomicBool>),
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

impl WorkerContext {
    fn enter(
        token: RunHandle,
        work: ExternalWork,
        call: (u64, Arc<AtomicBool>),
    ) -> WorkerContextGuard {
        CONTEXT.with(|c| {
            *c.borrow_mut() = Some(Context {
                token,
                work: Some(work),
                call,
            })
        });
        WorkerContextGuard
    }

    fn take_work() -> Option<ExternalWork> {
        CONTEXT.with(|c| c.borrow_mut().as_mut().and_then(|ctx| ctx.work.take()))
    }

    /// The run this thread works for, if it is a worker running a job.
    pub(crate) fn token() -> Option<RunHandle> {
        CONTEXT.with(|c| c.borrow().as_ref().map(|ctx| ctx.token.clone()))
    }

    /// The id of the call this worker runs, if it works for `token`'s run.
    pub(crate) fn call_id(token: &RunHandle) -> Option<u64> {
        CONTEXT.with(|c| match c.borrow().as_ref() {
            Some(ctx) if ctx.token.same_run(token) => Some(ctx.call.0),
            _ => None,
        })
    }

    /// Whether the task that started this worker's job has been cancelled;
    /// `None` outside a worker.
    pub(crate) fn caller_cancelled() -> Option<bool> {
        CONTEXT.with(|c| {
            c.borrow()
                .as_ref()
                .map(|ctx| ctx.call.1.load(Ordering::Acquire))
        })
    }

    /// Takes the work guard if this thread works for `token`'s run.
    pub(crate) fn lend_work(token: &RunHandle) -> Option<ExternalWork> {
        CONTEXT.with(|c| match c.borrow_mut().as_mut() {
            Some(ctx) if ctx.token.same_run(token) => ctx.work.take(),
            _ => None,
        })
    }

    /// Puts a work guard back (a fresh one made by the run).
    pub(crate) fn return_work(work: ExternalWork) {
        CONTEXT.with(|c| {
            if let Some(ctx) = c.borrow_mut().as_mut() {
                ctx.work = Some(work);
            }
        });
    }
}

struct WorkerContextGuard;

impl Drop for WorkerContextGuard {
    fn drop(&mut self) {
        // Whatever guard is still here is dropped with the context: the
        // job is over.
        let ctx = CONTEXT.with(|c| c.borrow_mut().take());
        drop(ctx);
    }
}

// ----- the pool -----------------------------------------------------------------

/// A job returns what to do once the thread is back on the idle list.
type Job = Box<dyn FnOnce() -> Box<dyn FnOnce() + Send> + Send>;

struct Worker {
    job: Mutex<Option<Job>>,
    ready: Condvar,
}

static IDLE: Mutex<Vec<Arc<Worker>>> = Mutex::new(Vec::new());

/// Runs `job` on an idle pool thread, or a new one.
fn start_thread_soon(job: Job) -> std::io::Result<()> {
    let idle = lock(&IDLE).pop();
    if let Some(w) = idle {
        *lock(&w.job) = Some(job);
        w.ready.notify_one();
        return Ok(());
    }
    let w = Arc::new(Worker {
        job: Mutex::new(Some(job)),
        ready: Condvar::new(),
    });
    std::thread::Builder::new()
        .name("trio-worker".into())
        .spawn(move || worker_loop(w))?;
    Ok(())
}

fn worker_loop(me: Arc<Worker>) {
    loop {
        let Some(job) = lock(&me.job).take() else {
            return;
        };
        let then = job();
        // Idle *before* reporting back, so a caller that starts another
        // call as soon as it hears from us finds this thread free.
        lock(&IDLE).push(me.clone());
        then();
        if !wait_for_job(&me) {
            return;
        }
    }
}

/// Waits for the next job; false if the thread should exit.
fn wait_for_job(me: &Arc<Worker>) -> bool {
    let deadline = Instant::now() + IDLE_TIMEOUT;
    let mut job = lock(&me.job);
    while job.is_none() {
        let now = Instant::now();
        if now >= deadline {
            drop(job);
            let mut idle = lock(&IDLE);
            if let Some(i) = idle.iter().position(|w| Arc::ptr_eq(w, me)) {
                idle.remove(i);
                return false;
            }
            drop(idle);
            // Someone took us off the idle list: a job is on its way.
            job = lock(&me.job);
            while job.is_none() {
                job = me.ready.wait(job).unwrap_or_else(|p| p.into_inner());
            }
            return true;
        }
        job = me
            .ready
            .wait_timeout(job, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    true
}
