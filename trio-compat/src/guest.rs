//! Guest mode: a trio run inside a tokio program (feature `guest`).
//!
//! The other half of migrating (see [`crate::migration`]): a tokio program
//! adopts trio for one subsystem without giving up its runtime, the way
//! Trio's `start_guest_run` lets a Trio run live inside asyncio's loop.
//! [`start_guest`] returns a future that runs a trio run on the thread
//! that polls it, interleaved with the tokio tasks of a `current_thread`
//! runtime (or a `LocalSet`) on that thread, and resolves to the run's
//! result (DESIGN §13).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let (sum, seen) = rt.block_on(async {
//!     let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//!     // A host task: tokio keeps running it while the guest runs.
//!     let host = tokio::spawn(async move {
//!         let mut seen = Vec::new();
//!         while let Some(i) = rx.recv().await {
//!             seen.push(i);
//!         }
//!         seen
//!     });
//!     // The guest: trio's nurseries, cancel scopes and clock.
//!     let sum = trio_compat::guest::start_guest(trio::Runner::new(), async move {
//!         let total = std::cell::Cell::new(0);
//!         trio::open_nursery(async |nursery| {
//!             for i in 1..=3u64 {
//!                 let (tx, total) = (tx.clone(), &total);
//!                 nursery.start_soon(async move {
//!                     trio::sleep(0.001 * i as f64).await?;
//!                     total.set(total.get() + i);
//!                     let _ = tx.send(i); // to the host
//!                     Ok(())
//!                 });
//!             }
//!             Ok(())
//!         })
//!         .await?;
//!         Ok(total.get())
//!     })
//!     .await?; // the run's error, if any, is a value here
//!     Ok::<_, trio::Error>((sum, host.await.expect("the host task")))
//! })?;
//! assert_eq!(sum, 6);
//! assert_eq!(seen, [1, 2, 3]);
//! # Ok(())
//! # }
//! ```
//!
//! # How it runs
//!
//! The future drives a [`GuestRun`]: each poll takes **at most one batch**
//! of trio tasks ([`GuestRun::step`]), so the host's tasks and the guest's
//! take turns and neither loop can starve the other. Between polls:
//!
//! - if trio tasks are runnable, the future wakes itself at once (it goes
//!   to the back of tokio's queue; as the `block_on` future, tokio polls
//!   its driver in between);
//! - otherwise it waits for the run's epoll fd (a duplicate it owns) to
//!   become readable through tokio's [`AsyncFd`] (epoll fds nest, so no I/O
//!   thread is needed), or
//!   for a tokio timer at the run's next deadline, as the run's clock
//!   reports it (a [`MockClock`](trio::testing::MockClock) is asked
//!   `deadline_to_sleep_time`, so autojump works in a guest).
//!
//! tokio registers the fd edge-triggered: when the future has seen it
//! readable, it clears tokio's readiness and tells the step to poll the
//! reactor, and a poll that filled the reactor's event buffer makes the
//! future wake itself, since no new edge will come for events already
//! queued.
//!
//! [`trio_compat::tokio`](crate::tokio()) inside a guest uses the host's
//! runtime ([`Handle::current`] when the guest starts) instead of starting
//! one on a helper thread: its futures' I/O and timers are driven by the
//! host, on this thread, and tasks it spawns run on the host (and may
//! outlive the guest).
//!
//! # Limits
//!
//! - **One guest per thread** at a time: a second one fails with
//!   [`ErrorKind::Usage`](trio::ErrorKind::Usage) (its future resolves to
//!   the error).
//! - **Nested runs**: `trio::run` inside a guest task is a `Usage` error,
//!   as any nested run is.
//! - **Autojump, `wait_all_tasks_blocked` and deadlock detection see only
//!   trio tasks.** Host work is invisible to them: an autojump clock may
//!   jump while the host is busy, and a guest whose tasks all wait for the
//!   host with nothing that could wake them (no waker or token handed out,
//!   no [`ExternalWork`](trio::lowlevel::ExternalWork)) is reported
//!   deadlocked. Waiting on a tokio channel or a `trio_compat::tokio` call
//!   is fine: their wakers keep the run from counting as deadlocked.
//! - **Signals**: the host owns them; the guest installs no Ctrl-C handler
//!   unless the runner was given `handle_ctrl_c(true)` explicitly (see
//!   [`GuestRun`]).
//! - **The runtime** must have tokio's I/O and time drivers
//!   (`enable_all()`, as `#[tokio::main]` and `#[tokio::test]` do), and the
//!   future must be polled on a tokio runtime's thread; otherwise it
//!   resolves to a `Usage` error. The future is not `Send`: run it with
//!   `block_on` or `LocalSet::spawn_local`, not `tokio::spawn`.
//! - **Dropping the future** before it resolves abandons the run: its
//!   tasks are dropped without being cancelled first (see [`GuestRun`]'s
//!   "Dropping an unfinished run"). To stop a guest gracefully, cancel it
//!   from inside (a cancel scope's handle) and await the future.
//! - **Costs**: a busy guest wakes itself once per batch (a trip through
//!   tokio's scheduler); a wake-up of a guest task from host code goes
//!   through the run's inbox and the fd, as from another thread.
//!
//! Driving tokio from inside trio's loop instead (trio as the host) is not
//! possible with stable tokio (tokio #2443, #7348).

use std::fmt;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::runtime::Handle;
use trio::lowlevel::{GuestRun, GuestStep};
use trio::{Error, Result, Runner};

/// Runs `fut` as the root task of a trio run configured by `runner`, as a
/// guest of the tokio runtime that polls the returned future, and resolves
/// to the run's result (errors and cancellations included, as values).
/// The run starts at the first poll. See the [module docs](self).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let err = rt.block_on(trio_compat::guest::start_guest(trio::Runner::new(), async {
///     trio::fail_after(0.01, trio::sleep_forever()).await
/// }));
/// assert_eq!(err.unwrap_err().kind(), trio::ErrorKind::TooSlow);
/// # Ok(())
/// # }
/// ```
pub fn start_guest<'a, F, T>(runner: Runner, fut: F) -> impl Future<Output = Result<T>> + 'a
where
    F: Future<Output = Result<T>> + 'a,
    T: 'a,
{
    Guest {
        state: GuestState::Start {
            runner,
            root: Box::pin(fut),
        },
    }
}

/// The future [`start_guest`] returns.
struct Guest<'a, T> {
    state: GuestState<'a, T>,
}

enum GuestState<'a, T> {
    /// Not yet polled.
    Start {
        runner: Runner,
        root: Pin<Box<dyn Future<Output = Result<T>> + 'a>>,
    },
    Running(Box<Driver<'a, T>>),
    /// Resolved (or failed to start).
    Done,
}

/// A guest run and what the host waits on for it.
struct Driver<'a, T> {
    /// A duplicate of the run's epoll fd, owned here, so it stays open for
    /// as long as tokio has it registered, whenever the run ends.
    fd: AsyncFd<OwnedFd>,
    run: GuestRun<'a, T>,
    /// The timer for the run's next deadline, re-armed only when the
    /// deadline changes.
    sleep: Pin<Box<tokio::time::Sleep>>,
    armed: Option<std::time::Instant>,
}

impl<'a, T: 'a> Driver<'a, T> {
    /// Starts the run on this thread, inside the tokio runtime polling us.
    fn start(
        runner: Runner,
        root: Pin<Box<dyn Future<Output = Result<T>> + 'a>>,
    ) -> Result<Box<Self>> {
        let Ok(handle) = Handle::try_current() else {
            return Err(Error::new(
                trio::ErrorKind::Usage,
                "a trio guest must be polled by a tokio runtime (on its thread)",
            ));
        };
        // `trio_compat::tokio` inside the guest uses this runtime; set as
        // the root task starts, since run variables need the run.
        let root = Box::pin(async move {
            crate::tokio_rt::use_host_runtime(handle)?;
            root.await
        });
        let run = GuestRun::new(runner, root)?;
        let fd = run.try_clone_fd()?;
        // tokio panics when a driver is disabled; that is a bad runtime,
        // reported as an error (tokio's panic hook still prints it).
        //
        // `with_interest` is deprecated (tokio #8587) because an `AsyncFd`
        // over a *borrowed* fd could see it closed while registered; its
        // replacement is an `unsafe fn`, which this crate forbids. Here the
        // `AsyncFd` owns its fd, so it stays open for the `AsyncFd`'s whole
        // life, which is the replacement's safety condition.
        #[allow(deprecated)]
        let fd = catch_unwind(AssertUnwindSafe(|| {
            AsyncFd::with_interest(fd, Interest::READABLE)
        }))
        .map_err(|_| driver_missing("I/O (enable_io)"))??;
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        let sleep = catch_unwind(|| tokio::time::sleep_until(far))
            .map_err(|_| driver_missing("time (enable_time)"))?;
        Ok(Box::new(Driver {
            fd,
            run,
            sleep: Box::pin(sleep),
            armed: None,
        }))
    }

    /// One host poll: take what the fd reported, step once, then arrange
    /// to be woken (see "How it runs").
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<T>> {
        // Readiness seen is cleared *before* the step polls the reactor:
        // an event after the clear makes a new edge.
        let mut fd_readable = false;
        if let Poll::Ready(ready) = self.fd.poll_read_ready(cx) {
            ready?.clear_ready();
            fd_readable = true;
        }
        let wait = match self.run.step(fd_readable)? {
            GuestStep::Done(result) => return Poll::Ready(result),
            GuestStep::Pending(wait) => wait,
        };
        if wait.step_again() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // Registers the waker; ready already means an edge came meanwhile.
        if self.fd.poll_read_ready(cx).is_ready() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(deadline) = wait.deadline() {
            if self.armed != Some(deadline) {
                self.armed = Some(deadline);
                self.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(deadline));
            }
            if self.sleep.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}

fn driver_missing(which: &str) -> Error {
    Error::new(
        trio::ErrorKind::Usage,
        format!("a trio guest needs the tokio runtime's {which} driver"),
    )
}

impl<'a, T: 'a> Future for Guest<'a, T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = &mut *self;
        // Taken out for the poll: should a task's panic unwind through it,
        // the run is dropped (abandoned) and the future stays resolved.
        let mut driver = match std::mem::replace(&mut this.state, GuestState::Done) {
            GuestState::Start { runner, root } => match Driver::start(runner, root) {
                Ok(driver) => driver,
                Err(e) => return Poll::Ready(Err(e)),
            },
            GuestState::Running(driver) => driver,
            GuestState::Done => {
                return Poll::Ready(Err(Error::new(
                    trio::ErrorKind::Usage,
                    "a trio guest future was polled after it resolved",
                )));
            }
        };
        let out = driver.poll(cx);
        if out.is_pending() {
            this.state = GuestState::Running(driver);
        }
        out
    }
}

impl<T> fmt::Debug for Guest<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            GuestState::Start { .. } => "not started",
            GuestState::Running(_) => "running",
            GuestState::Done => "done",
        };
        f.debug_struct("Guest").field("state", &state).finish()
    }
}
