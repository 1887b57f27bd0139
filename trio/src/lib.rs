//! # trio — structured concurrency for Rust
//!
//! Python Trio's model as a single-threaded Rust runtime:
//!
//! - **Nurseries**: every task lives inside a [`Nursery`] that outlives it.
//!   [`open_nursery`] returns only when every child has finished, so a
//!   function call is a black box again, and children may *borrow* from the
//!   caller, with no `'static` bound and no `Arc<Mutex<_>>`.
//! - **Cancel scopes**: timeouts and cancellation are scopes
//!   ([`move_on_after`], [`fail_after`], [`CancelScope`]) that nest and
//!   compose; a scope catches exactly its own cancellation.
//! - **Checkpoints**: every blocking operation is a place where cancellation
//!   is delivered and other tasks may run; [`checkpoint`] is the explicit one.
//! - **Errors are never lost**: a failing child cancels its siblings and the
//!   nursery reports every failure; a panicking child resumes in the parent.
//! - **A virtual clock for tests**: [`testing::MockClock`] with autojump
//!   makes a 30-second timeout test take milliseconds.
//! - **Sockets and streams**: [`socket`] is a thin async layer over socket2
//!   (TCP, UDP, Unix stream and datagram, fd passing), on a reactor where a
//!   socket registers once; [`socket::SocketStream`] and
//!   [`socket::SocketListener`] implement the [`stream`] traits.
//!
//! ```
//! use std::cell::RefCell;
//! use std::time::Duration;
//!
//! trio::run(async {
//!     let urls = vec!["a", "b", "c"];
//!     let pages = RefCell::new(Vec::new());
//!     trio::open_nursery(async |nursery| {
//!         for url in &urls {
//!             let pages = &pages;
//!             nursery.start_soon(async move {
//!                 match trio::move_on_after(Duration::from_secs(10), fetch(url)).await? {
//!                     Some(page) => pages.borrow_mut().push(page),
//!                     None => eprintln!("{url}: gave up after 10 s"),
//!                 }
//!                 Ok(())
//!             });
//!         }
//!         Ok(())
//!     })
//!     .await?; // every child has finished here
//!     assert_eq!(pages.borrow().len(), 3);
//!     Ok(())
//! })
//! .unwrap();
//!
//! async fn fetch(url: &str) -> trio::Result<String> {
//!     trio::sleep(0.001).await?;
//!     Ok(format!("<html>{url}</html>"))
//! }
//! ```
//!
//! Execution model: one run per thread ([`run`]), one task at a time, tasks
//! need not be `Send`. Scale across cores with one run per core, started
//! and supervised together as a nursery of runs ([`run_per_core`]).
//!
//! # Errors and panics
//!
//! One rule decides whether a function returns a [`Result`] or panics:
//!
//! - **Bad values and the world fail with typed errors.** A negative or NaN
//!   duration, a closed channel, a busy resource, cancellation, a run that
//!   has finished: these come back as an [`Error`] with an [`ErrorKind`],
//!   never as a panic inside the runtime and never as a hang.
//! - **Misuse that no correct program does panics, with a message that
//!   says what to do**, as `RefCell`, std's scoped threads and tokio do:
//!   calling a run-only function outside any run ([`current_time`],
//!   [`current_effective_deadline`], [`lowlevel::current_task`]), spawning
//!   into a nursery that has closed or belongs to another run
//!   ([`Nursery::start_soon`]), arithmetic on NaN instants
//!   ([`Instant`]'s operators).
//! - **Every such function that library code may need to call safely has a
//!   fallible twin** named `try_…` ([`try_current_time`],
//!   [`try_current_effective_deadline`], [`lowlevel::try_current_task`],
//!   [`Nursery::try_start_soon`], [`Instant::checked_add_secs`] and its
//!   siblings), which returns an [`ErrorKind::Usage`] or
//!   [`ErrorKind::InvalidArgument`] error instead.
//!
//! The runtime itself never panics on its own account: a panic comes from
//! misuse as above, or is a task's own panic, which its nursery carries to
//! the parent with its original payload.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod channel;
mod core;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod cores;
pub mod cross_run;
mod error;
pub mod from_thread;
pub mod fs;
pub mod guarantees;
pub mod lowlevel;
pub mod net;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod process;
mod race;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod signal;
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod socket;
pub mod stream;
pub mod sync;
#[cfg(unix)]
mod sys;
pub mod testing;
mod time;
pub mod to_thread;
pub mod tutorial;

pub use crate::channel::{MemoryReceiveChannel, MemorySendChannel, SendError, open_memory_channel};
pub use crate::core::cancel::{
    CancelScope, FailAfter, MoveOnAfter, current_effective_deadline, fail_after, fail_at,
    move_on_after, move_on_at, try_current_effective_deadline,
};
pub use crate::core::cancel_handle::CancelHandle;
pub use crate::core::clock::{Clock, SystemClock};
pub use crate::core::nursery::{Nursery, TaskStatus, open_nursery};
pub use crate::core::park::{
    cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled, current_time, sleep,
    sleep_forever, sleep_until, try_current_time,
};
pub use crate::core::run::{Runner, run};
#[cfg(unix)]
pub use crate::cores::{CoreInfo, PerCore, available_cores, run_per_core};
pub use crate::cross_run::open_cross_run_channel;
pub use crate::error::{
    Error, ErrorKind, ForeignCancelled, Result, ResultExt, StdError, TaskResult,
};
pub use crate::fs::path::Path;
pub use crate::fs::{open_file, wrap_file};
#[cfg(unix)]
pub use crate::net::{
    open_tcp_listeners, open_tcp_stream, open_unix_listener, open_unix_stream, serve_listeners,
    serve_tcp,
};
#[cfg(unix)]
pub use crate::process::{open_process, run_process};
pub use crate::race::{Either, race, race2};
#[cfg(unix)]
pub use crate::signal::{SignalReceiver, open_signal_receiver};
pub use crate::time::{Instant, TryIntoDuration};

/// The everyday names in one import: `use trio::prelude::*;`.
///
/// Brings in the types and traits most code uses ([`Nursery`],
/// [`CancelScope`], [`TaskStatus`], [`Instant`], [`Error`], [`ErrorKind`],
/// [`ResultExt`], [`TryIntoDuration`]); functions stay qualified
/// (`trio::sleep`, `trio::open_nursery`), as Trio's do.
///
/// ```
/// use trio::prelude::*;
///
/// async fn serve(status: TaskStatus<u16>) -> trio::Result<()> {
///     status.started(8080);
///     trio::sleep_forever().await
/// }
///
/// trio::run(async {
///     let r = trio::open_nursery(async |nursery| {
///         let port = nursery.start(serve).await?;
///         assert_eq!(port, 8080);
///         nursery.cancel_scope().cancel();
///         trio::checkpoint().await
///     })
///     .await;
///     assert!(!r.is_cancelled()); // the nursery caught its own cancellation
///     Ok(())
/// })
/// .unwrap();
/// ```
pub mod prelude {
    pub use crate::{
        CancelScope, Error, ErrorKind, Instant, Nursery, ResultExt, TaskStatus, TryIntoDuration,
    };
}

/// Runs `async fn main` on a trio run.
///
/// The function must be `async`, take no parameters, and return `()` or
/// `trio::Result<()>`; the attribute takes no options (for a custom clock or
/// seed, call [`Runner`] from a plain `fn main`).
///
/// ```
/// #[trio::main]
/// async fn main() -> trio::Result<()> {
///     trio::sleep(0.001).await?;
///     println!("hello from trio");
///     Ok(())
/// }
/// ```
///
/// The generated `main` is synchronous and returns
/// [`std::process::ExitCode`]: success if the body returned `()` or
/// `Ok(())`; otherwise (the body's error, or an error of [`run`] itself) it
/// prints `Error: {error}` to stderr and exits with status 1. Destructors
/// run normally: nothing calls `process::exit`.
///
/// Ctrl-C cancels the run gracefully (every task gets `Cancelled`, cleanup
/// runs; see [`signal`]); the program then ends the Unix way, killed by
/// SIGINT (default disposition restored, signal re-raised), and a second
/// Ctrl-C during cleanup ends it at once.
#[doc(inline)]
pub use trio_macros::main;

/// Turns an `async fn` into a `#[test]` run on a fresh trio run (Trio's
/// `trio_test`).
///
/// The function must be `async`, take no parameters, and return `()` or
/// `trio::Result<()>`. It becomes a `#[test] fn` of the same name that calls
/// [`testing::run_test`], where all the run-time logic lives. Other
/// attributes (`#[should_panic]`, `#[ignore]`, docs) stay on the test.
///
/// Options, comma-separated, in any order:
///
/// - `autojump`: run on [`MockClock::autojump()`](testing::MockClock::autojump),
///   so sleeps and timeouts take no real time;
/// - `seed = <u64 expression>`: a fixed scheduling seed.
///
/// Every test runs with a scheduling seed: `seed = N` if given, else the
/// environment variable `TRIO_SEED` if set, else a random one. A failing
/// test (an error or a panic) reports it on stderr as
/// `trio test failed with seed N; rerun with TRIO_SEED=N`; running it again
/// with that seed, by option or by environment, replays the same schedule.
///
/// ```
/// #[trio::test(autojump)]
/// async fn a_thirty_second_timeout_takes_no_time() -> trio::Result<()> {
///     let r = trio::move_on_after(30.0, trio::sleep_forever()).await?;
///     assert!(r.is_none());
///     assert_eq!(trio::current_time().as_secs_f64(), 30.0);
///     Ok(())
/// }
///
/// #[trio::test(autojump, seed = 7)]
/// async fn with_a_fixed_schedule() {
///     trio::checkpoint().await.unwrap();
/// }
/// # fn main() {}
/// ```
///
/// Mistakes (not `async`, parameters, an unknown option) are compile errors
/// pointing at the offending code.
#[doc(inline)]
pub use trio_macros::test;
