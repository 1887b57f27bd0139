//! Tokio-requiring futures inside a trio run (feature `tokio-rt`).
//!
//! Most of the ecosystem's network clients (reqwest, sqlx, tonic, redis)
//! need a tokio *context*: they register sockets with tokio's I/O driver,
//! start tokio timers and `tokio::spawn` background tasks. [`tokio()`] runs
//! such a future inside a trio task, async-compat's way (DESIGN §13):
//!
//! - **The runtime.** Each run that uses [`tokio()`] gets one tokio
//!   `current_thread` runtime with every driver its tokio build has
//!   (`enable_all`), created lazily on first use and kept in a
//!   [`RunVar`]. The runtime lives on a helper thread
//!   (`trio-compat-tokio`) that runs `block_on(stop)`, so its I/O driver,
//!   its timers and the tasks tokio spawns are driven there.
//! - **The future** is polled on the run's thread, in its trio task, with
//!   the runtime's `Handle` entered around every poll and around its drop,
//!   so it finds the tokio context it needs. Tokio's drivers wake it from
//!   the helper thread.
//! - **Waiting.** Between polls the task waits in a trio [`Park`]. The
//!   future is polled with a waker of its own: waking it sets a flag and,
//!   if the task is parked, posts a [`TrioToken::run_sync_soon`] callback
//!   that [`reschedule`]s the park — one trip through the run's inbox per
//!   tokio wake-up (measured in `tests/tokio_bench.rs`). A wake-up that
//!   comes while the future is being polled (tokio's cooperative budget
//!   does this) makes the task yield at a trio checkpoint and poll again,
//!   so a busy future cannot starve the run. The run's token lives in the
//!   waker only while the call waits: wakers that tokio keeps after the
//!   call (a receiver's, say) hold nothing that would keep the run from
//!   reporting a deadlock, and a call that is ready at once makes no token.
//! - **Checkpoint.** [`tokio()`] checks for cancellation before the first
//!   poll, and when the task's cancel scope is cancelled while it waits the
//!   park aborts: the future is dropped (inside the handle) and the call
//!   returns `Cancelled`. Foreign code cannot promise that a dropped
//!   operation had no effect (a request may have been sent). A future that
//!   completes at once still yields once (a schedule point), as every trio
//!   checkpoint does.
//! - **Not idle.** While the future is pending the call holds the run's
//!   [`ExternalWork`](trio::lowlevel::ExternalWork) guard: the run waits
//!   for another thread, so MockClock autojump, `wait_all_tasks_blocked`
//!   and deadlock detection do not fire.
//! - **Shutdown.** The runtime is owned by the run: when the run ends its
//!   run variables are dropped, which signals the helper thread and joins
//!   it; the helper thread calls `shutdown_timeout(`[`SHUTDOWN_TIMEOUT`]`)`
//!   (a tokio `Runtime` is never dropped on the run's thread, where tokio
//!   would panic if the run is itself inside a tokio context). Tasks that
//!   tokio spawned are dropped then; blocking-pool threads (`tokio::fs`)
//!   still busy after the timeout are left to finish on their own.
//!
//! **Build the future inside.** Only the *polls* and the drop run in the
//! tokio context, not the expression that builds the future. Some tokio
//! calls act when called, not when first polled — `tokio::time::sleep`,
//! `tokio::spawn`, `Command::output`/`spawn`, `TcpStream::from_std` — and
//! panic outside a tokio context ("there is no reactor running"). Wrap
//! them in an `async` block, which defers them to the first poll:
//! `tokio(async { tokio::time::sleep(d).await; Ok(()) })`. `async fn`s
//! (`reqwest::get`, most library calls) are lazy already.
//!
//! **In a guest run** (`trio_compat::guest`, feature `guest`) there is no
//! helper thread: the calls use the host's runtime, which already drives
//! the run's thread, so tokio's drivers wake the future from that same
//! thread (still through the run's inbox), and tasks tokio spawns run on
//! the host and may outlive the run.
//!
//! Documented costs and limits: every tokio wake-up crosses threads; tokio
//! timers follow the real clock, never a MockClock; tasks that tokio spawns
//! run outside any nursery (they end at the latest with the run). One
//! allocation per call (the future is boxed so that it can be dropped
//! inside the handle wherever the call ends).
//!
//! ```
//! use std::time::Duration;
//!
//! trio::run(async {
//!     // tokio's own timer, driven on the helper thread; flattened output.
//!     let n = trio_compat::tokio(async {
//!         tokio::time::sleep(Duration::from_millis(1)).await;
//!         Ok::<_, std::io::Error>(7)
//!     })
//!     .await?;
//!     assert_eq!(n, 7);
//!     // A trio timeout cancels a tokio future: it is dropped, `None`.
//!     let r = trio::move_on_after(
//!         0.01,
//!         trio_compat::tokio_raw(async { tokio::time::sleep(Duration::from_secs(60)).await }),
//!     )
//!     .await?;
//!     assert_eq!(r, None);
//!     Ok(())
//! })
//! .unwrap();
//! ```

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::Handle;
use trio::lowlevel::{
    Abort, Park, RunVar, TrioToken, WaitKey, begin_external_work, cancel_shielded_checkpoint,
    checkpoint, checkpoint_if_cancelled, current_trio_token, reschedule,
};
use trio::{Error, ErrorKind, Result};

/// How long the helper thread waits, when its run ends, for tokio's
/// blocking-pool threads (`spawn_blocking`, `tokio::fs`) to finish before
/// leaving them behind.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// The run's tokio runtime: its handle, and the helper thread that owns
/// the `Runtime`. Dropped with the run's variables (on the run's thread).
struct RunRuntime {
    handle: Handle,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

static RUNTIME: RunVar<Option<Arc<RunRuntime>>> =
    RunVar::with_default("trio_compat::tokio runtime", || None);

impl Drop for RunRuntime {
    fn drop(&mut self) {
        self.stop.set();
        if let Some(thread) = self.thread.take() {
            // Bounded by SHUTDOWN_TIMEOUT plus the drop of tokio's tasks.
            // A panic on the helper thread has nothing left to report to.
            let _ = thread.join();
        }
    }
}

/// The helper thread's `block_on` future: pending until the run ends.
/// (A hand-made one-shot, so that no tokio feature beyond `rt` is needed.)
#[derive(Default)]
struct Stop {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Stop {
    fn set(&self) {
        let waker = {
            let mut st = lock(&self.state);
            st.0 = true;
            st.1.take()
        };
        // Woken outside the lock: the waker may run code of its own.
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = lock(&self.state);
        if st.0 {
            Poll::Ready(())
        } else {
            st.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Locks, ignoring poisoning: the data are flags and keys, consistent
/// after any panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The current run's tokio runtime handle, starting the runtime on first
/// use. Errors outside a run, or if the thread or runtime cannot start.
fn run_handle() -> Result<Handle> {
    if let Some(rt) = RUNTIME.get()? {
        return Ok(rt.handle.clone());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Handle>>(1);
    let stop = Arc::new(Stop::default());
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("trio-compat-tokio".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("trio-compat-tokio-blocking")
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(rt.handle().clone()));
            rt.block_on(std::future::poll_fn(|cx| thread_stop.poll_stopped(cx)));
            rt.shutdown_timeout(SHUTDOWN_TIMEOUT);
        })?;
    // Building a current_thread runtime is quick and does no I/O wait, so
    // the run's thread blocks for it (once per run).
    let handle = match rx.recv() {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e.into());
        }
        Err(_) => {
            let _ = thread.join();
            return Err(Error::new(
                ErrorKind::Other,
                "the tokio helper thread ended before its runtime started",
            ));
        }
    };
    let rt = Arc::new(RunRuntime {
        handle: handle.clone(),
        stop,
        thread: Some(thread),
    });
    RUNTIME.set(Some(rt))?;
    Ok(handle)
}

/// Makes the current run's [`tokio()`] calls use `handle`, a runtime that
/// already drives this thread (a guest run's host, `crate::guest`),
/// instead of starting one on a helper thread. Nothing is shut down when
/// the run ends: the runtime is the host's.
#[cfg(feature = "guest")]
pub(crate) fn use_host_runtime(handle: Handle) -> Result<()> {
    RUNTIME.set(Some(Arc::new(RunRuntime {
        handle,
        stop: Arc::new(Stop::default()),
        thread: None,
    })))?;
    Ok(())
}

/// What the future's waker shares with the waiting task.
#[derive(Default)]
struct WakeShared {
    state: Mutex<WakeState>,
}

#[derive(Default)]
struct WakeState {
    /// Woken since the last poll began.
    woken: bool,
    /// The park the task waits in, if it waits and nobody has woken it yet.
    parked: Option<WaitKey>,
    /// The run's token, only while the call waits: made at the first
    /// `Pending` (a token costs a poke of the run when dropped, which a
    /// call that is ready at once should not pay) and taken out when the
    /// call ends, so that wakers tokio keeps after the call hold no token
    /// (a live token would keep the run from ever reporting a deadlock).
    token: Option<TrioToken>,
}

impl Wake for WakeShared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut st = lock(&self.state);
        st.woken = true;
        if let Some(key) = st.parked.take()
            && let Some(token) = &st.token
        {
            // Rescheduling must happen on the run's thread; a stale key is
            // harmless, and a finished run has nobody left to wake. (Posted
            // under this lock: it only queues a callback in the run's
            // inbox, and the lock keeps the token from being taken away
            // meanwhile.)
            let _ = token.run_sync_soon(move || {
                reschedule(key, Ok(()));
            });
        }
    }
}

/// Takes the token out of the shared state when the call ends, however it
/// ends (dropped outside the lock).
struct EndCall(Arc<WakeShared>);

impl Drop for EndCall {
    fn drop(&mut self) {
        let token = lock(&self.0.state).token.take();
        drop(token);
    }
}

/// The boxed future with the handle it must be dropped inside.
struct Entered<F: Future> {
    handle: Handle,
    fut: Option<Pin<Box<F>>>,
}

impl<F: Future> Entered<F> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Pending;
        };
        let _ctx = self.handle.enter();
        let out = fut.as_mut().poll(cx);
        if out.is_ready() {
            // Dropped now, still inside the context.
            self.fut = None;
        }
        out
    }
}

impl<F: Future> Drop for Entered<F> {
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take() {
            let _ctx = self.handle.enter();
            drop(fut);
        }
    }
}

/// Runs a future that needs a tokio context inside the current trio task
/// and returns its output, flattening `Result<T, E>` into
/// [`trio::Result<T>`] (any `E: Into<trio::Error>`: `io::Error`,
/// `reqwest::Error`, any `std::error::Error + Send + Sync`). For a future
/// whose output is not a `Result`, use [`tokio_raw`].
///
/// A checkpoint: a cancelled scope drops the future (inside the tokio
/// context) and the call returns `Cancelled`. See the [module
/// docs](self) for the runtime, the costs and the limits.
///
/// ```
/// trio::run(async {
///     let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
///     // A task that tokio runs, on the helper thread.
///     trio_compat::tokio_raw(async move {
///         tokio::spawn(async move {
///             for i in 0..3 {
///                 tx.send(i).await.unwrap();
///             }
///         });
///     })
///     .await?;
///     let mut got = Vec::new();
///     while let Some(i) = trio_compat::tokio_raw(rx.recv()).await? {
///         got.push(i);
///     }
///     assert_eq!(got, [0, 1, 2]);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn tokio<F, T, E>(fut: F) -> impl Future<Output = Result<T>>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: Into<Error>,
{
    let site = Location::caller();
    async move {
        match run_in_tokio(fut, site).await? {
            Ok(v) => Ok(v),
            Err(e) => Err(e.into()),
        }
    }
}

/// [`tokio()`] without flattening: the future's output as it is, or an error
/// of the call itself (`Cancelled`, outside a run, the runtime could not
/// start).
///
/// ```
/// use std::time::Duration;
/// trio::run(async {
///     trio_compat::tokio_raw(async { tokio::time::sleep(Duration::from_millis(1)).await })
///         .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn tokio_raw<F: Future>(fut: F) -> impl Future<Output = Result<F::Output>> {
    run_in_tokio(fut, Location::caller())
}

async fn run_in_tokio<F: Future>(fut: F, site: &'static Location<'static>) -> Result<F::Output> {
    checkpoint_if_cancelled().await?;
    let handle = run_handle()?;
    let shared = Arc::new(WakeShared::default());
    let _end = EndCall(shared.clone());
    let waker = Waker::from(shared.clone());
    let mut fut = Entered {
        handle,
        fut: Some(Box::pin(fut)),
    };
    let mut work = None;
    let mut waited = false;
    loop {
        lock(&shared.state).woken = false;
        if let Poll::Ready(out) = fut.poll(&mut Context::from_waker(&waker)) {
            drop(work);
            if !waited {
                // Done without waiting: still a schedule point.
                cancel_shielded_checkpoint().await?;
            }
            return Ok(out);
        }
        if !waited {
            waited = true;
            work = Some(begin_external_work()?);
            let token = current_trio_token()?;
            lock(&shared.state).token = Some(token);
        }
        let abort_shared = shared.clone();
        let park = Park::new_at("trio_compat::tokio", site, move |_key, _why| {
            // Nobody may reschedule this park any more.
            lock(&abort_shared.state).parked = None;
            Abort::Succeeded
        })?;
        let woken_meanwhile = {
            let mut st = lock(&shared.state);
            if !st.woken {
                st.parked = Some(park.key());
            }
            st.woken
        };
        if woken_meanwhile {
            // Woken during the poll (a yield, or a result already on its
            // way): poll again after a checkpoint, so that a future that
            // keeps yielding cannot starve the run. Dropping the unpolled
            // park just unregisters it.
            drop(park);
            checkpoint().await?;
            continue;
        }
        // On cancellation `?` returns, and `fut` is dropped inside the
        // tokio context (`Entered`'s drop).
        park.await?;
    }
}

impl fmt::Debug for RunRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunRuntime").finish_non_exhaustive()
    }
}
