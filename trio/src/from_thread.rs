//! Calling into a run from other threads (Trio's `trio.from_thread`).
//!
//! A worker thread started by [`to_thread`](crate::to_thread) knows its run
//! (a thread-local set for the duration of the job), so
//! [`run`] and [`run_sync`] need no arguments there. Any other thread that
//! holds the run's [`TrioToken`] uses [`run_with_token`] and
//! [`run_sync_with_token`].
//!
//! # Design
//!
//! The call posts a callback with [`TrioToken::run_sync_soon`] and blocks
//! the calling thread on a channel for the answer. [`run_sync`] calls the
//! function in that callback; [`run`] starts the future there as a *system
//! task* ([`spawn_system_task`]), which sends the answer when it finishes.
//! Panics are caught in the run and resumed in the calling thread. If the
//! run ends first, the callback (or task) is dropped unrun, the channel
//! disconnects, and the call fails with [`ErrorKind::RunFinished`]: an
//! error, never a hang.
//!
//! A worker thread that waits here is not "working": it lends its
//! work-in-progress guard back to the run for the wait (the run makes a
//! fresh one when it answers), so a MockClock can autojump over a `sleep`
//! inside [`run`].
//!
//! A [`run`] made by a `to_thread` worker runs in a cancel scope that is
//! cancelled when the task that called `to_thread::run_sync` is, and
//! [`check_cancelled`] lets the worker itself notice, as in Trio.
//!
//! Calling these from a thread that is itself running a run is an error
//! ([`ErrorKind::Usage`]): blocking that thread would stop its run (and
//! deadlock, if it is the run being called).

use crate::core::token::RunHandle;
use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::{ExternalWork, TrioToken, begin_external_work, spawn_system_task};
use crate::to_thread::WorkerContext;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};

type Answer<R> = (std::thread::Result<R>, Option<ExternalWork>);

/// The run this worker thread works for. Uncounted (see `RunHandle`): the
/// worker is accounted for by its work guard, which it lends back to the
/// run while it waits, so a worker blocked on the run hides no deadlock.
fn worker_token() -> Result<RunHandle> {
    WorkerContext::token().ok_or_else(|| {
        Error::usage(
            "from_thread::run/run_sync without a token work only in threads started by \
             trio::to_thread; elsewhere use run_with_token/run_sync_with_token",
        )
    })
}

fn check_not_in_run() -> Result<()> {
    if crate::core::runtime::is_in_run() {
        return Err(Error::usage(
            "from_thread functions block the calling thread, so they cannot be called from \
             inside a run (use the async function directly, or spawn a task)",
        ));
    }
    Ok(())
}

/// In a worker thread started by [`to_thread`](crate::to_thread): fails
/// with `Cancelled` once the task that called `to_thread::run_sync` has been
/// cancelled (whether or not it abandoned the thread), so long-running work
/// can stop early. Errors with [`ErrorKind::Usage`] in any other thread.
///
/// ```
/// use std::time::Duration;
/// trio::run(async {
///     let r = trio::move_on_after(0.01, async {
///         trio::to_thread::run_sync(|| {
///             for _ in 0..1000 {
///                 trio::from_thread::check_cancelled()?; // stops once the caller gives up
///                 std::thread::sleep(Duration::from_millis(1));
///             }
///             Ok("finished")
///         })
///         .await? // the thread's own result: its Cancelled comes out here
///     })
///     .await?;
///     // The caller waited for the thread, which saw the cancellation; the
///     // scope caught it.
///     assert_eq!(r, None);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn check_cancelled() -> Result<()> {
    match WorkerContext::caller_cancelled() {
        Some(true) => Err(Error::cancelled()),
        Some(false) => Ok(()),
        None => Err(Error::usage(
            "from_thread::check_cancelled works only in threads started by trio::to_thread",
        )),
    }
}

fn run_finished() -> Error {
    Error::new(
        ErrorKind::RunFinished,
        "the run finished before it could answer this from_thread call",
    )
}

/// Posts `make_callback(tx)` to the run and waits for the answer.
fn call<R, C>(
    token: &RunHandle,
    make_callback: impl FnOnce(mpsc::SyncSender<Answer<R>>, bool) -> C,
) -> Result<R>
where
    C: FnOnce() + Send + 'static,
{
    check_not_in_run()?;
    let (tx, rx) = mpsc::sync_channel::<Answer<R>>(1);
    // While we wait, the run (not this thread) is the one doing the work.
    let lent = WorkerContext::lend_work(token);
    let callback = make_callback(tx, lent.is_some());
    if let Err(e) = token.run_sync_soon(callback) {
        if let Some(w) = lent {
            WorkerContext::return_work(w);
        }
        return Err(e);
    }
    drop(lent);
    match rx.recv() {
        Ok((result, work)) => {
            // The run made a fresh guard for us (unless it is ending).
            if let Some(w) = work {
                WorkerContext::return_work(w);
            }
            match result {
                Ok(v) => Ok(v),
                Err(payload) => resume_unwind(payload),
            }
        }
        Err(_) => Err(run_finished()),
    }
}

/// Runs the synchronous function `f` in the run this worker thread works
/// for, and returns its result. `f` runs between tasks, with the run's
/// context (it may use `current_time`, set an `Event`, …, but not block).
/// A panic in `f` resumes here.
///
/// Errors: [`ErrorKind::Usage`] outside a `to_thread` worker or inside a
/// run; [`ErrorKind::RunFinished`] if the run has ended.
///
/// ```
/// trio::run(async {
///     let t = trio::to_thread::run_sync(|| {
///         trio::from_thread::run_sync(|| trio::current_time())
///     })
///     .await??;
///     assert!(t.as_secs_f64() >= 0.0);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn run_sync<F, R>(f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    run_sync_in(&worker_token()?, f)
}

/// [`run_sync`] for any thread that holds the run's token.
///
/// ```
/// trio::run(async {
///     let token = trio::lowlevel::current_trio_token()?;
///     let v = trio::to_thread::run_sync(move || {
///         trio::from_thread::run_sync_with_token(&token, || 6 * 7)
///     })
///     .await??;
///     assert_eq!(v, 42);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn run_sync_with_token<F, R>(token: &TrioToken, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    run_sync_in(token.handle(), f)
}

fn run_sync_in<F, R>(token: &RunHandle, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    call(token, |tx, lend| {
        move || {
            let result = catch_unwind(AssertUnwindSafe(f));
            let work = lend.then(|| begin_external_work().ok()).flatten();
            let _ = tx.send((result, work));
        }
    })
}

/// Runs an async function in the run this worker thread works for, as a
/// system task, and returns its result. `f` is called in the run (so the
/// future need not be `Send`); it is cancelled if the run ends first. A
/// panic in it resumes here.
///
/// Errors: as [`run_sync`], plus whatever the future returns.
///
/// ```
/// use trio::testing::MockClock;
/// trio::Runner::new().clock(MockClock::autojump()).run(async {
///     let v = trio::to_thread::run_sync(|| {
///         trio::from_thread::run(|| async {
///             trio::sleep(5.0).await?; // virtual time: instant
///             Ok(trio::current_time().as_secs_f64())
///         })
///     })
///     .await??;
///     assert_eq!(v, 5.0);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn run<F, Fut, R>(f: F) -> Result<R>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<R>> + 'static,
    R: Send + 'static,
{
    run_in(&worker_token()?, f)
}

/// [`run`] for any thread that holds the run's token.
pub fn run_with_token<F, Fut, R>(token: &TrioToken, f: F) -> Result<R>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<R>> + 'static,
    R: Send + 'static,
{
    run_in(token.handle(), f)
}

fn run_in<F, Fut, R>(token: &RunHandle, f: F) -> Result<R>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<R>> + 'static,
    R: Send + 'static,
{
    // Made from a worker of this run: run under its caller's cancellation.
    let linked_call = WorkerContext::call_id(token);
    let result: Result<Result<R>> = call(token, |tx, lend| {
        move || {
            let scope = linked_call.map(crate::to_thread::scope_for_call);
            let task = CatchUnwind {
                inner: Box::pin(async move {
                    match scope {
                        Some(scope) => match scope.run(f()).await? {
                            Some(v) => Ok(v),
                            None => Err(Error::cancelled()),
                        },
                        None => f().await,
                    }
                }),
            };
            // If this fails the future (and `tx`) is dropped: the caller
            // sees the run as finished.
            let _ = spawn_system_task(async move {
                let result = task.await;
                let work = lend.then(|| begin_external_work().ok()).flatten();
                let _ = tx.send((result, work));
                Ok(())
            });
        }
    });
    result?
}

/// Polls a future, catching panics (so a panic inside `from_thread::run`
/// goes to the calling thread instead of ending the run).
struct CatchUnwind<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match catch_unwind(AssertUnwindSafe(move || inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
