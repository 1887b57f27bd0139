//! Unix signals: [`open_signal_receiver`] (an async stream of signal
//! numbers) and the run's own Ctrl-C handling ([`Runner::handle_ctrl_c`]
//! and its siblings), after Trio's `open_signal_receiver` and its
//! `KeyboardInterrupt` handling (DESIGN §10).
//!
//! # No hand-written signal handler
//!
//! Every handler is [signal-hook](https://docs.rs/signal-hook)'s: one
//! process-wide handler per signal that runs the *actions* registered for it
//! in registration order. Trio registers only signal-hook's ready-made,
//! async-signal-safe actions: set an `AtomicBool`, write a byte to a
//! self-pipe, or (conditionally) emulate the signal's default action. All
//! the logic runs outside the handler, in a task or a thread that reads the
//! pipe.
//!
//! # What happens to a signal's disposition
//!
//! signal-hook cannot give a signal back: once its handler is installed it
//! stays for the life of the process. So trio *emulates* what the signal did
//! before trio first touched it (read once, from `/proc/self/status`):
//!
//! - **default action** (the usual case): trio registers, first of all, an
//!   action that runs the default action (`emulate_default_handler`: the
//!   disposition is reset to `SIG_DFL` and the signal re-raised) whenever no
//!   receiver and no run handles the signal. So a program still dies of
//!   SIGINT after its receiver is dropped, and the shell sees "killed by
//!   SIGINT";
//! - **ignored** (`SIG_IGN`, as `nohup` or a shell's background job leave
//!   SIGHUP/SIGINT): signal-hook's handler chains to `SIG_IGN`, so the
//!   signal stays ignored when no receiver is open. One visible difference:
//!   a program run later (`exec`) inherits the default action, not "ignored",
//!   because exec resets caught signals. The run's Ctrl-C handling does not
//!   take an ignored SIGINT (as Trio);
//! - **caught** by someone else's handler: signal-hook chains to it (it runs
//!   before trio's actions, on every signal). The run's Ctrl-C handling does
//!   not take a signal the program handles itself.
//!
//! Signal numbers signal-hook refuses (SIGKILL, SIGSTOP, SIGILL, SIGFPE,
//! SIGSEGV) and numbers it cannot emulate the default of (unknown ones,
//! real-time signals) are an [`ErrorKind::InvalidArgument`].
//!
//! # Receivers
//!
//! A [`SignalReceiver`] registers, for each of its signals, a flag and then a
//! wake-up byte on its own socket pair (in that order, so a byte read means
//! its flag is already visible), and waits for the byte through the run's
//! reactor. Pending signals form a set: a signal that arrives several times
//! between two receives is delivered once. Several different signals pending
//! at once are delivered in ascending signal-number order (signal-hook's
//! safe actions carry no timestamp, so their arrival order is unknown; a
//! signal arriving while a task waits is delivered as it comes). A signal
//! that arrives between two receives is kept for the next: none is lost.
//!
//! Signals are process-wide, so unlike Python's Trio a receiver may be
//! opened on any thread (in any run), and every open receiver of a signal
//! gets each occurrence. While any receiver of SIGINT (or of another signal
//! a run handles, see below) is open, that run's handling of the signal is
//! suspended: the receiver takes it, as in Trio.
//!
//! # The run's own handling (Ctrl-C) and the main-thread rule
//!
//! Only a run on the process's *main thread* (on Linux: the thread whose id
//! is the process id, read from `/proc/thread-self`; elsewhere: the thread
//! std names `"main"`) handles signals itself, and so does `#[trio::main]`.
//! Runs on other threads (tests, workers) install nothing. A main-thread run,
//! unless told otherwise with [`Runner`] options:
//!
//! 1. on SIGINT (and SIGTERM with [`Runner::handle_sigterm`]) cancels the
//!    whole run: the root task's cancel status is cancelled, so every task
//!    gets `Cancelled` at its next checkpoint and all cleanup runs, shielded
//!    cleanup too. `run` then fails with [`ErrorKind::Interrupted`] carrying
//!    an [`Interrupted`] (whatever the body returned; the signal wins);
//! 2. a *second* SIGINT (or SIGTERM) ends the process at once, by the
//!    default action: after the first, the default disposition applies again
//!    (a conditional default action armed by the first, inside the handler,
//!    so it works even if the run is stuck and never reads the pipe);
//! 3. `#[trio::main]` ends an interrupted program the Unix way:
//!    [`Interrupted::exit_process`] resets the default disposition and
//!    re-raises the signal, so the parent sees "killed by SIGINT" (a shell
//!    shows status 130);
//! 4. with [`Runner::dump_task_tree_on`] (say SIGUSR1), prints the task tree
//!    to stderr on that signal, to ask a hung program where it is stuck.
//!
//! The signals are read by a small thread the run starts ("trio-signals",
//! joined when the run ends), which posts
//! the cancellation (or the tree dump) to the run the way
//! [`TrioToken::run_sync_soon`](crate::lowlevel::TrioToken::run_sync_soon)
//! does. A run that never reaches a checkpoint (a task spinning on the CPU)
//! cannot be cancelled or dumped; the second SIGINT still ends it.
//!
//! # Deadlock detection is unchanged
//!
//! A possible Ctrl-C does *not* count as something that could wake the
//! run: a main-thread run whose tasks can only be woken by a signal (every
//! task in `sleep_forever`, say) is still reported as a
//! [`Deadlock`](crate::ErrorKind::Deadlock), as on any other thread.
//! Otherwise no `#[trio::main]` program (and no doctest, which runs on its
//! process's main thread) could ever get a deadlock report. A program whose
//! job is to wait for Ctrl-C says so by waiting on something: a signal
//! receiver, a socket, or a finite timer (`trio::sleep(3600.0)` in a loop:
//! a deadline that will arrive counts; `sleep_forever` does not).
//!
//! [`Runner`]: crate::Runner
//! [`Runner::handle_ctrl_c`]: crate::Runner::handle_ctrl_c
//! [`Runner::handle_sigterm`]: crate::Runner::handle_sigterm
//! [`Runner::dump_task_tree_on`]: crate::Runner::dump_task_tree_on
//! [`ErrorKind::InvalidArgument`]: crate::ErrorKind::InvalidArgument
//! [`ErrorKind::Interrupted`]: crate::ErrorKind::Interrupted

use crate::error::{Error, ErrorKind};
use std::fmt;
use std::io::Write;

pub(crate) mod ctrl_c;
mod receiver;
mod registry;

pub use receiver::{SignalReceiver, open_signal_receiver};

/// Signal numbers, re-exported from signal-hook (`SIGINT`, `SIGTERM`,
/// `SIGUSR1`, …) so that users need no other crate to name them.
pub use signal_hook::consts::signal as consts;

/// Sends `signal` to the calling thread (`raise(3)`): handlers run before
/// this returns. For tests and for programs that interrupt themselves; to
/// signal another process, see [`Process::send_signal`](crate::process::Process::send_signal).
/// A number that is not a signal is an
/// [`ErrorKind::InvalidArgument`].
///
/// ```
/// use trio::signal::consts::SIGUSR2;
/// trio::run(async {
///     let signals = trio::open_signal_receiver(&[SIGUSR2])?;
///     trio::signal::raise(SIGUSR2)?;
///     assert_eq!(signals.recv().await?, SIGUSR2);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn raise(signal: i32) -> crate::Result<()> {
    signal_hook::low_level::raise(signal).map_err(|e| {
        if e.raw_os_error() == Some(libc::EINVAL) {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{signal} is not a signal number"),
            )
        } else {
            e.into()
        }
    })
}

/// Why a run failed with [`ErrorKind::Interrupted`]:
/// the signal (SIGINT, or SIGTERM with
/// [`Runner::handle_sigterm`](crate::Runner::handle_sigterm)) that
/// cancelled it. Get it from the error with [`Interrupted::of`].
///
/// ```no_run
/// let result = trio::run(async { trio::sleep_forever().await });
/// if let Err(e) = result {
///     if let Some(interrupted) = trio::signal::Interrupted::of(&e) {
///         eprintln!("stopped by signal {}", interrupted.signal());
///         interrupted.exit_process(); // dies of that signal, as Unix programs do
///     }
/// }
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Interrupted {
    signal: i32,
}

impl Interrupted {
    pub(crate) fn new(signal: i32) -> Self {
        Interrupted { signal }
    }

    /// The signal number.
    pub fn signal(&self) -> i32 {
        self.signal
    }

    /// The interruption `error` reports, if it is one (its kind is
    /// [`ErrorKind::Interrupted`]).
    pub fn of(error: &Error) -> Option<Interrupted> {
        if error.kind() != ErrorKind::Interrupted {
            return None;
        }
        error.downcast_ref::<Interrupted>().copied()
    }

    /// Ends the process the Unix way after an interrupted run: flushes
    /// stdout and stderr, restores the signal's default disposition and
    /// re-raises it, so the parent sees the process killed by that signal.
    /// (`#[trio::main]` does this.) Should the signal not kill (it is
    /// blocked in a way that cannot be undone), exits with status
    /// `128 + signal`, the shell's convention.
    pub fn exit_process(self) -> ! {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let _ = signal_hook::low_level::emulate_default_handler(self.signal);
        std::process::exit(128 + self.signal)
    }
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match signal_hook::low_level::signal_name(self.signal) {
            Some(name) => write!(f, "the run was interrupted by {name}"),
            None => write!(f, "the run was interrupted by signal {}", self.signal),
        }
    }
}

impl std::error::Error for Interrupted {}

/// Whether the calling thread is the process's main thread (see the module
/// docs). On Linux `/proc/thread-self` links to `<pid>/task/<tid>`, and the
/// main thread's id is the process id.
pub(crate) fn is_main_thread() -> bool {
    thread_local! {
        // Asked once per thread: a run starts with this question.
        static IS_MAIN: bool = ask_is_main_thread();
    }
    IS_MAIN.with(|m| *m)
}

fn ask_is_main_thread() -> bool {
    if let Ok(link) = std::fs::read_link("/proc/thread-self") {
        let tid = link
            .file_name()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(tid) = tid {
            return tid == std::process::id();
        }
    }
    std::thread::current().name() == Some("main")
}

/// The `InvalidArgument` error for a signal trio will not handle.
fn unsupported_signal(signal: i32, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("signal {signal} cannot be received: {why}"),
    )
}

/// Checks that trio can handle `signal`: signal-hook accepts it and knows
/// its default action (to emulate it when nobody handles the signal).
pub(crate) fn check_signal(signal: i32) -> crate::Result<()> {
    if signal_hook::consts::FORBIDDEN.contains(&signal) {
        return Err(unsupported_signal(
            signal,
            "signal-hook refuses it (its default action cannot be changed safely)",
        ));
    }
    if signal_hook::low_level::signal_name(signal).is_none() {
        return Err(unsupported_signal(
            signal,
            "not a signal whose default action trio can emulate",
        ));
    }
    Ok(())
}
