//! Subprocesses (Trio's `trio.run_process` and `trio.lowlevel.open_process`),
//! built on [`std::process::Command`].
//!
//! - [`open_process`] spawns a [`Process`]: its piped stdio as streams
//!   ([`ProcessStdin`] is a [`SendStream`](crate::stream::SendStream),
//!   [`ProcessStdout`] / [`ProcessStderr`] are
//!   [`ReceiveStream`](crate::stream::ReceiveStream)s), [`Process::wait`],
//!   [`Process::poll`], and signals ([`Process::terminate`],
//!   [`Process::kill`], [`Process::send_signal`]).
//! - [`run_process`] runs a command to completion: feeds stdin, captures
//!   stdout and stderr concurrently, and by default fails with a
//!   [`ProcessError`] on a non-zero exit. [`run_process_started`] is its
//!   form for [`Nursery::start`](crate::Nursery::start), which hands back
//!   the [`Process`] once spawned.
//!
//! # How waiting for exit works
//!
//! Waiting never blocks the run loop and uses no thread, in either of two
//! [`WaitMode`]s:
//!
//! 1. **pidfd** (the default on Linux): at spawn, `pidfd_open(pid)` gives an
//!    fd that becomes readable when the child exits. It is registered with
//!    the reactor once (as a socket is), and a wait is: ask `waitid(P_PID,
//!    pid, WEXITED | WNOHANG | WNOWAIT)` whether *this* child has exited;
//!    if not, park until the pidfd is readable, and ask again.
//! 2. **SIGCHLD** (the fallback where `pidfd_open` fails, or forced by
//!    [`set_wait_mode`] or `TRIO_PROCESS_WAIT=sigchld`): each wait
//!    registers a self-pipe (a socket pair) with
//!    [signal-hook](https://docs.rs/signal-hook), whose one process-wide
//!    handler writes a byte to every registered pipe on each SIGCHLD; the
//!    wait then asks `waitid` about its own child and parks on the pipe
//!    until the next SIGCHLD. The pipe is registered *before* the first
//!    question, so a SIGCHLD between the question and the park is not
//!    lost; it is unregistered when the wait ends.
//!
//! signal-hook installs its SIGCHLD handler on the first SIGCHLD-mode wait
//! and never removes it (it chains to any handler that was there before,
//! with `SA_RESTART`); with no registered pipe it does nothing. A program
//! that sets SIGCHLD to `SIG_IGN` makes the kernel reap every child at
//! once: waits then fail with the `ECHILD` I/O error, in either mode.
//!
//! In both modes the child is reaped, once it has exited, by
//! [`std::process::Child::try_wait`] (`waitpid(pid, WNOHANG)`), which
//! keeps its status. Nothing here ever calls `waitpid(-1)` or
//! `waitid(P_ALL)`: that reaps *any* child, stealing the exit status of
//! children that other libraries (std's own `Command::output`, say) are
//! waiting for.
//!
//! The pid of a child we have not reaped cannot be reused, so signals go to
//! it only until it is reaped ([`Process::send_signal`] does nothing
//! afterwards, as in Trio); a group signal after the leader has exited is
//! sent before the leader is reaped, while the group id is still reserved.
//!
//! A wait on a child is a wait on the outside world, but to the run it is a
//! reactor wait like any other: the [MockClock](crate::testing::MockClock)'s
//! autojump and `wait_all_tasks_blocked` count a task waiting for a child as
//! blocked (as in Trio). In a test on an autojump clock, a hung child makes
//! the clock jump to the next deadline, which is what a grace period wants;
//! a test with other deadlines should use a clock without autojump.
//!
//! # Invariants
//!
//! - A child is reaped only through its own `Child::try_wait`, under the
//!   state lock, which records the status; `status` is set once and never
//!   changes.
//! - A signal is sent only under the same lock and only while `status` is
//!   unset: the pid (and a group id equal to it) cannot have been reused.
//! - At most one wait parks on the pidfd's reactor registration
//!   (`pidfd_in_use`); a concurrent wait parks on a duplicate fd of its own.
//! - A [`Process`] and its pipes are `Send`: their reactor registrations
//!   move to the run that uses them next (as a socket's do).
//!
//! # Cancellation
//!
//! - A cancelled [`Process::wait`] had no effect: the child is neither
//!   signalled nor reaped, and a later `wait` returns its status.
//! - A cancelled `receive_some` on a pipe consumed nothing; a cancelled
//!   `send_all` may have written any prefix of its data (as on any byte
//!   stream; treat the pipe as broken).
//! - Cancelling [`run_process`] (Trio's `deliver_cancel`): the child is
//!   sent SIGTERM, given a grace period ([`RunOptions::grace_period`], 5 s
//!   by default, on the run's clock), sent SIGKILL if it is still running,
//!   and reaped; then `run_process` returns the `Cancelled` error. All of
//!   this runs shielded, so no zombie is left. With
//!   [`RunOptions::process_group`] the child leads its own process group,
//!   the signals go to the whole group, and once the leader has exited the
//!   group gets SIGKILL (before the leader is reaped), so grandchildren do
//!   not outlive a cancelled run. The pipes `run_process` used are closed
//!   (whatever the child wrote and was not yet read is dropped), and the
//!   output captured so far is discarded with them.
//! - A [`Process`] dropped before its child was reaped does not kill it
//!   (as with std and tokio); the child is kept in a process-wide list and
//!   reaped (with `waitpid(pid, WNOHANG)`) at the next spawn or drop, so a
//!   finished child does not stay a zombie for long.
//!
//! ```
//! use std::process::Command;
//! use trio::process::{RunOptions, run_process};
//!
//! trio::run(async {
//!     let mut cmd = Command::new("sh");
//!     cmd.args(["-c", "tr a-z A-Z"]);
//!     let done = run_process(cmd, RunOptions::new().stdin(b"hello".to_vec()).capture_stdout()).await?;
//!     assert_eq!(done.stdout, b"HELLO");
//!     assert!(done.status.success());
//!     Ok(())
//! })
//! .unwrap();
//! ```

use crate::core::io::{Direction, IoRegistration};
use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::RunVar;
use crate::socket::Socket;
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled, sys};
use std::borrow::BorrowMut;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::panic::Location;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

mod pipe;
mod run;

pub use pipe::{ProcessStderr, ProcessStdin, ProcessStdout};
pub use run::{CompletedProcess, ProcessError, RunOptions, run_process, run_process_started};

/// How [`Process::wait`] learns that a child has exited (see the
/// [module docs](self#how-waiting-for-exit-works)).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WaitMode {
    /// Park on a pidfd (Linux); falls back to [`Sigchld`](Self::Sigchld)
    /// for a child whose `pidfd_open` fails.
    Pidfd,
    /// Park on a self-pipe that a SIGCHLD handler (signal-hook) writes to.
    Sigchld,
}

/// The mode of this run: [`set_wait_mode`]'s, else `TRIO_PROCESS_WAIT`
/// (`sigchld` or `pidfd`), else pidfd.
static WAIT_MODE: RunVar<WaitMode> = RunVar::with_default("trio.process.wait_mode", || {
    match std::env::var("TRIO_PROCESS_WAIT").as_deref() {
        Ok("sigchld") => WaitMode::Sigchld,
        _ => WaitMode::Pidfd,
    }
});

/// Sets how processes spawned from now on in the current run wait for exit
/// (a per-run switch, so tests can run each mode side by side). The
/// default comes from the environment variable `TRIO_PROCESS_WAIT`
/// (`sigchld` forces the fallback), else [`WaitMode::Pidfd`].
///
/// ```
/// use trio::process::{WaitMode, set_wait_mode, wait_mode};
/// trio::run(async {
///     set_wait_mode(WaitMode::Sigchld)?;
///     assert_eq!(wait_mode()?, WaitMode::Sigchld);
///     let p = trio::open_process(std::process::Command::new("true"))?;
///     assert!(p.wait().await?.success());
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn set_wait_mode(mode: WaitMode) -> Result<()> {
    WAIT_MODE.set(mode).map(drop)
}

/// The current run's [`WaitMode`] for new processes (see [`set_wait_mode`]).
pub fn wait_mode() -> Result<WaitMode> {
    WAIT_MODE.get()
}

/// Children whose [`Process`] was dropped before they were reaped: reaped
/// by [`reap_orphans`] at the next spawn or drop (see the module docs).
static ORPHANS: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn reap_orphans() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(|p| p.into_inner());
    // `try_wait` is `waitpid(this pid, WNOHANG)`: it reaps only our own.
    orphans.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
}

/// The child's record, shared by the handles of one process.
struct ChildState {
    /// Its stdio pipes were taken out at spawn; `try_wait` reaps it and
    /// keeps the status. `None` only while `Inner` is dropped.
    child: Option<Child>,
    /// Set once reaped; from then on the pid may belong to someone else,
    /// so no signal is sent.
    status: Option<ExitStatus>,
}

/// A pidfd and its reactor registration.
struct PidFd {
    // Declared first: deregisters (in `Drop`) before `fd` closes.
    reg: IoRegistration,
    fd: OwnedFd,
}

impl Drop for PidFd {
    fn drop(&mut self) {
        self.reg.deregister(self.fd.as_raw_fd());
    }
}

/// The shared part of a [`Process`]: one per child, behind an `Arc` that
/// the handles (see [`Process::handle`]) share.
struct Inner {
    /// The child's pid; ours (unreusable) until `state.status` is set.
    pid: u32,
    state: Mutex<ChildState>,
    /// `Some` in pidfd mode.
    pidfd: Option<PidFd>,
    /// Whether a wait is parked on `pidfd`'s registration (the reactor
    /// allows one reader per fd); a concurrent wait parks on a duplicate.
    pidfd_in_use: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = state.child.take()
            && state.status.is_none()
            && matches!(child.try_wait(), Ok(None))
        {
            ORPHANS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(child);
        }
        reap_orphans();
    }
}

/// A spawned child process (Trio's `trio.Process`).
///
/// The pipes (present when the [`Command`] asked for
/// [`Stdio::piped`](std::process::Stdio::piped)) are public fields, to be
/// taken or used in place; the rest of the handle is
/// [`wait`](Self::wait), [`poll`](Self::poll) and signals. Waiting never
/// blocks the run loop (see the [module docs](self)). Dropping a `Process`
/// does not kill its child.
///
/// ```
/// use std::process::{Command, Stdio};
/// use trio::stream::{AsyncResource, ReceiveStream, SendStream};
///
/// trio::run(async {
///     let mut cmd = Command::new("cat");
///     cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
///     let p = trio::open_process(cmd)?;
///     let (stdin, stdout) = (p.stdin.as_ref().unwrap(), p.stdout.as_ref().unwrap());
///     stdin.send_all(b"meow").await?;
///     stdin.aclose().await?; // cat sees the end of its input
///     let mut buf = [0; 16];
///     let n = stdout.receive_some(&mut buf).await?;
///     assert_eq!(&buf[..n], b"meow");
///     assert_eq!(p.wait().await?.code(), Some(0));
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct Process {
    inner: Arc<Inner>,
    /// The child's stdin, if piped.
    pub stdin: Option<ProcessStdin>,
    /// The child's stdout, if piped.
    pub stdout: Option<ProcessStdout>,
    /// The child's stderr, if piped.
    pub stderr: Option<ProcessStderr>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.inner.pid)
            .field("status", &self.inner.lock().status)
            .field(
                "pidfd",
                &self.inner.pidfd.as_ref().map(|p| p.fd.as_raw_fd()),
            )
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .finish()
    }
}

/// Spawns `cmd` (Trio's `open_process`; a [`Command`] or a `&mut Command`,
/// as std's builder methods return): piped stdio becomes the
/// [`Process`]'s streams. Spawning itself does not block on the child
/// (std's `spawn` waits only for the `exec` to succeed or fail). Not a
/// checkpoint.
///
/// Errors: spawning failed (the `io::Error` is the source, e.g. NotFound),
/// or this is not inside a run.
pub fn open_process(mut cmd: impl BorrowMut<Command>) -> Result<Process> {
    let mode = wait_mode()?;
    reap_orphans();
    let mut child = cmd.borrow_mut().spawn()?;
    let pid = child.id();
    let stdin = child.stdin.take().map(ProcessStdin::from_std).transpose();
    let stdout = child.stdout.take().map(ProcessStdout::from_std).transpose();
    let stderr = child.stderr.take().map(ProcessStderr::from_std).transpose();
    let pidfd = match mode {
        WaitMode::Pidfd => sys::process::pidfd_open(pid).ok().map(|fd| PidFd {
            reg: IoRegistration::default(),
            fd,
        }),
        WaitMode::Sigchld => None,
    };
    let inner = Arc::new(Inner {
        pid,
        state: Mutex::new(ChildState {
            child: Some(child),
            status: None,
        }),
        pidfd,
        pidfd_in_use: AtomicBool::new(false),
    });
    // Only now can an error leave: `inner` owns the child (its drop hands
    // an unreaped child to the orphan list).
    Ok(Process {
        stdin: stdin?,
        stdout: stdout?,
        stderr: stderr?,
        inner,
    })
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ChildState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the child has exited (reaped or not), without reaping it.
    fn exited(&self) -> Result<bool> {
        if self.lock().status.is_some() {
            return Ok(true);
        }
        Ok(sys::process::has_exited(self.pid)?)
    }

    /// Reaps the child if it has exited: its status, or `None`.
    fn try_reap(&self) -> Result<Option<ExitStatus>> {
        let mut st = self.lock();
        if let Some(s) = st.status {
            return Ok(Some(s));
        }
        let Some(child) = st.child.as_mut() else {
            return Ok(None);
        };
        let s = child.try_wait()?;
        st.status = s;
        Ok(s)
    }

    fn signal(&self, signal: i32, group: bool) -> Result<()> {
        // Under the lock, so that the child cannot be reaped (and its pid
        // reused) between the check and the signal.
        let st = self.lock();
        if st.status.is_some() {
            return Ok(());
        }
        let pid = i32::try_from(self.pid).map_err(|_| Error::invalid("pid out of range"))?;
        match sys::process::send_signal(if group { -pid } else { pid }, signal) {
            // A group whose members have all exited: nothing to signal.
            Err(e) if group && e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => Ok(r?),
        }
    }

    /// Waits until the child has exited, without reaping it. A checkpoint;
    /// cancelled, it had no effect.
    async fn wait_exited(&self, location: &'static Location<'static>) -> Result<()> {
        checkpoint_if_cancelled().await?;
        if self.exited()? {
            return cancel_shielded_checkpoint().await;
        }
        match &self.pidfd {
            Some(pidfd) => self.wait_pidfd(pidfd, location).await,
            None => self.wait_sigchld(location).await,
        }
    }

    async fn wait_pidfd(&self, pidfd: &PidFd, location: &'static Location<'static>) -> Result<()> {
        let primary = !self.pidfd_in_use.swap(true, Ordering::Relaxed);
        if !primary {
            // Another task waits on the registration: wait on a duplicate
            // of the pidfd (another fd number, so another reactor entry).
            let dup = pidfd.fd.try_clone()?;
            loop {
                crate::lowlevel::wait_readable(dup.as_raw_fd()).await?;
                if self.exited()? {
                    return Ok(());
                }
            }
        }
        // Frees the registration for the next wait, however this one ends.
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        let _release = Release(&self.pidfd_in_use);
        loop {
            // The cache may hold an edge from before our last check; the
            // check above is newer, so drop it and wait for the next edge
            // (a pidfd stays readable once the child exits, and an fd
            // registered while readable reports it at once).
            pidfd.reg.clear_ready(Direction::Read);
            pidfd
                .reg
                .wait(
                    pidfd.fd.as_raw_fd(),
                    Direction::Read,
                    false,
                    "Process::wait",
                    location,
                )
                .await?;
            if self.exited()? {
                return Ok(());
            }
        }
    }

    async fn wait_sigchld(&self, _location: &'static Location<'static>) -> Result<()> {
        let pipe = SigchldPipe::register()?;
        loop {
            // Registered first, then asked: a SIGCHLD from now on leaves a
            // byte in the pipe.
            if self.exited()? {
                return Ok(());
            }
            let mut buf = [0; 64];
            pipe.read.recv(&mut buf).await?;
        }
    }
}

/// A self-pipe that signal-hook writes a byte to on each SIGCHLD, from its
/// registration to its drop.
struct SigchldPipe {
    read: Socket,
    id: signal_hook::SigId,
}

impl SigchldPipe {
    fn register() -> Result<SigchldPipe> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        let read = Socket::try_from(read)?;
        // signal-hook owns the write end from here and closes it on
        // unregister.
        let id = signal_hook::low_level::pipe::register(signal_hook::consts::SIGCHLD, write)?;
        Ok(SigchldPipe { read, id })
    }
}

impl Drop for SigchldPipe {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

impl Process {
    /// The child's process id. Until the child is reaped (by
    /// [`wait`](Self::wait) or [`poll`](Self::poll)) no other process can
    /// have it.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Waits for the child to exit and reaps it; returns its exit status
    /// (also on later calls, and in every task that waits). A checkpoint.
    /// Any number of tasks may wait at once. A cancelled wait had no
    /// effect: the child was neither signalled nor reaped.
    #[track_caller]
    pub fn wait(&self) -> impl Future<Output = Result<ExitStatus>> + '_ {
        let location = Location::caller();
        async move {
            self.inner.wait_exited(location).await?;
            self.inner
                .try_reap()?
                .ok_or_else(|| Error::new(ErrorKind::Other, "the child exited but was not reaped"))
        }
    }

    /// Waits for the child to exit *without reaping it* (a checkpoint;
    /// cancelled, it had no effect): its pid and process-group id stay
    /// reserved, so [`send_signal_to_group`](Self::send_signal_to_group)
    /// is still safe. [`poll`](Self::poll) or [`wait`](Self::wait) reaps.
    #[track_caller]
    pub fn wait_exited(&self) -> impl Future<Output = Result<()>> + '_ {
        self.inner.wait_exited(Location::caller())
    }

    /// The exit status if the child has exited (reaping it), else `None`.
    /// Never blocks; not a checkpoint (Trio's `Process.poll`).
    pub fn poll(&self) -> Result<Option<ExitStatus>> {
        self.inner.try_reap()
    }

    /// Same as [`poll`](Self::poll), under std's name.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>> {
        self.poll()
    }

    /// How this process's exits are waited for: the run's
    /// [`wait_mode`] at spawn, or [`WaitMode::Sigchld`] where `pidfd_open`
    /// failed.
    pub fn wait_mode(&self) -> WaitMode {
        match self.inner.pidfd {
            Some(_) => WaitMode::Pidfd,
            None => WaitMode::Sigchld,
        }
    }

    /// The exit status, if the child has been reaped.
    pub fn status(&self) -> Option<ExitStatus> {
        self.inner.lock().status
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the child; does nothing once
    /// it has been reaped (its pid may then be someone else's).
    pub fn send_signal(&self, signal: i32) -> Result<()> {
        self.inner.signal(signal, false)
    }

    /// Sends `signal` to the child's process group (`kill(-pid, …)`): for a
    /// child spawned as a group leader (`CommandExt::process_group(0)`).
    /// Does nothing once the child has been reaped, or when the group has
    /// no members left.
    pub fn send_signal_to_group(&self, signal: i32) -> Result<()> {
        self.inner.signal(signal, true)
    }

    /// SIGTERM: asks the child to exit.
    pub fn terminate(&self) -> Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// SIGKILL: ends the child at once.
    pub fn kill(&self) -> Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Another handle to the same child, without pipes (for
    /// [`run_process_started`]).
    fn handle(&self) -> Process {
        Process {
            inner: Arc::clone(&self.inner),
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }
}

/// Describes an exit status the Unix way: "exit status 3", "signal 9
/// (SIGKILL)".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => match signal_hook::low_level::signal_name(s) {
            Some(name) => format!("signal {s} ({name})"),
            None => format!("signal {s}"),
        },
        _ => format!("{status}"),
    }
}
