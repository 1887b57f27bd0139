//! [`run_process`]: run a command to completion, with its input fed and its
//! output captured concurrently, and Trio's cancellation protocol (see the
//! [module docs](super#cancellation)).
//!
//! Steps, numbered as in `run`:
//! 1. configure the command's stdio from the [`RunOptions`] and spawn it;
//! 2. under `nursery.start`, hand back a handle to the child, with the
//!    pipes the run does not use (see [`run_process_started`]);
//! 3. in one nursery: feed stdin (then close it, so the child sees the end
//!    of its input), drain stdout and stderr into buffers, each in its own
//!    task, and wait for the child in the body. Both directions run at once,
//!    so a child that writes more than a pipe buffer before reading all its
//!    input cannot deadlock with us;
//! 4. if that failed or was cancelled and the child is still unreaped:
//!    shielded, SIGTERM, wait up to the grace period, SIGKILL, wait, (group:
//!    SIGKILL the group before reaping), reap; then return the error;
//! 5. otherwise, with `check`, a non-zero exit is a [`ProcessError`].

use super::{Process, describe, open_process};
use crate::error::{Error, ErrorKind, Result};
use crate::stream::{AsyncResource, ReceiveStream, SendStream};
use crate::{CancelScope, TaskStatus, move_on_after, open_nursery};
use std::borrow::BorrowMut;
use std::cell::RefCell;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// Where the child's stdin comes from.
#[derive(Clone, Debug)]
enum StdinSource {
    /// Empty input (`/dev/null`), Trio's default: a child must not read the
    /// terminal by accident.
    Null,
    /// These bytes, through a pipe, which is then closed.
    Bytes(Vec<u8>),
    /// Whatever the [`Command`] was configured with (inherited by default).
    FromCommand,
}

/// Options of [`run_process`] (what `subprocess.run`'s keyword arguments are
/// in Trio); the working directory and environment are set on the
/// [`Command`] itself.
///
/// ```
/// use std::time::Duration;
/// use trio::process::RunOptions;
/// let options = RunOptions::new()
///     .stdin(b"input".to_vec())
///     .capture_stdout()
///     .check(false)
///     .grace_period(Duration::from_secs(1))
///     .process_group(true);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct RunOptions {
    stdin: StdinSource,
    capture_stdout: bool,
    capture_stderr: bool,
    check: bool,
    grace_period: Duration,
    process_group: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions::new()
    }
}

impl RunOptions {
    /// The defaults, Trio's: empty stdin, stdout and stderr as the
    /// [`Command`] says (inherited unless set), `check` on, a 5-second
    /// grace period, no process group.
    pub fn new() -> Self {
        RunOptions {
            stdin: StdinSource::Null,
            capture_stdout: false,
            capture_stderr: false,
            check: true,
            grace_period: Duration::from_secs(5),
            process_group: false,
        }
    }

    /// Feeds `data` to the child's stdin through a pipe, then closes it. A
    /// child that exits without reading it all is not an error.
    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = StdinSource::Bytes(data);
        self
    }

    /// Leaves stdin as the [`Command`] configured it (inherited from this
    /// process unless set), instead of the default empty input.
    pub fn stdin_from_command(mut self) -> Self {
        self.stdin = StdinSource::FromCommand;
        self
    }

    /// Captures stdout into [`CompletedProcess::stdout`].
    pub fn capture_stdout(mut self) -> Self {
        self.capture_stdout = true;
        self
    }

    /// Captures stderr into [`CompletedProcess::stderr`].
    pub fn capture_stderr(mut self) -> Self {
        self.capture_stderr = true;
        self
    }

    /// Whether a non-zero exit (or death by a signal) is an error
    /// ([`ProcessError`]); on by default, as in Trio.
    pub fn check(mut self, check: bool) -> Self {
        self.check = check;
        self
    }

    /// How long a cancelled run waits, after SIGTERM, before SIGKILL (on
    /// the run's clock). 5 seconds by default.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// Spawns the child as the leader of a new process group
    /// (`process_group(0)`), and sends a cancelled run's signals to the
    /// whole group, so that its children do not outlive it (see the
    /// [module docs](super#cancellation)).
    pub fn process_group(mut self, on: bool) -> Self {
        self.process_group = on;
        self
    }
}

/// What [`run_process`] returns (Python's `CompletedProcess`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompletedProcess {
    /// The child's pid (no longer reserved: the child was reaped).
    pub pid: u32,
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout, if captured (else empty).
    pub stdout: Vec<u8>,
    /// Its stderr, if captured (else empty).
    pub stderr: Vec<u8>,
}

/// A checked [`run_process`] whose child failed (Python's
/// `CalledProcessError`): the exit status and the captured output.
///
/// It reaches the caller inside a [`trio::Error`](crate::Error) of kind
/// [`Other`](ErrorKind::Other); get it back with
/// [`downcast_ref`](crate::Error::downcast_ref) (or
/// [`find`](crate::Error::find) through a group):
///
/// ```
/// use std::process::Command;
/// use trio::process::{ProcessError, RunOptions, run_process};
///
/// trio::run(async {
///     let mut cmd = Command::new("sh");
///     cmd.args(["-c", "echo oops >&2; exit 3"]);
///     let err = run_process(cmd, RunOptions::new().capture_stderr()).await.unwrap_err();
///     let failed = err.downcast_ref::<ProcessError>().unwrap();
///     assert_eq!(failed.status.code(), Some(3));
///     assert_eq!(failed.stderr, b"oops\n");
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProcessError {
    /// The command, as [`Command`]'s `Debug` shows it.
    pub command: String,
    /// The child's pid (reaped).
    pub pid: u32,
    /// How it exited.
    pub status: ExitStatus,
    /// Its stdout, if captured (else empty).
    pub stdout: Vec<u8>,
    /// Its stderr, if captured (else empty).
    pub stderr: Vec<u8>,
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command {} (pid {}) failed with {}",
            self.command,
            self.pid,
            describe(self.status)
        )
    }
}

impl std::error::Error for ProcessError {}

/// Runs `cmd` to completion (Trio's `run_process`): see [`RunOptions`] for
/// stdin, capture, `check`, the grace period and process groups; set the
/// working directory and environment on the [`Command`]
/// (`current_dir`, `env`, `env_clear`). A checkpoint.
///
/// It returns once the child has exited and the captured pipes have reached
/// their end: a grandchild that keeps a captured pipe open keeps it waiting
/// (as with Python's `subprocess.run`).
///
/// `cmd` is a [`Command`] or a `&mut Command`; the stdio the options ask
/// for (stdin, captured outputs, the process group) is set on it before
/// it is spawned, so a borrowed command keeps those settings.
///
/// Errors: spawning failed (its `io::Error` is the source); with `check`,
/// a [`ProcessError`]; `Cancelled` after the child was terminated, given
/// the grace period, killed and reaped (see the
/// [module docs](super#cancellation)).
///
/// ```
/// use std::process::Command;
/// use trio::process::{RunOptions, run_process};
///
/// trio::run(async {
///     let mut cmd = Command::new("sh");
///     cmd.args(["-c", "echo $GREETING from $(pwd)"]).env("GREETING", "hi").current_dir("/");
///     let done = run_process(cmd, RunOptions::new().capture_stdout()).await?;
///     assert_eq!(done.stdout, b"hi from /\n");
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn run_process(
    mut cmd: impl BorrowMut<Command>,
    options: RunOptions,
) -> Result<CompletedProcess> {
    run(cmd.borrow_mut(), options, None).await
}

/// [`run_process`] for [`Nursery::start`](crate::Nursery::start): hands
/// back the [`Process`] as soon as the child is spawned, then runs it to
/// completion in the nursery (the [`CompletedProcess`] is dropped; a
/// failure is the task's error).
///
/// The handle carries the pipes that the [`Command`] asked for
/// ([`Stdio::piped`]) and the run does not use: stdin with
/// [`RunOptions::stdin_from_command`], outputs not captured. So, as with
/// Trio's `nursery.start(run_process, …, stdin=PIPE)`, the starter can talk
/// to the child while the run supervises it (plain [`run_process`] closes
/// such pipes at once).
///
/// ```
/// use std::process::Command;
/// use trio::process::{RunOptions, run_process_started};
///
/// trio::run(async {
///     trio::open_nursery(async |nursery| {
///         let mut cmd = Command::new("sleep");
///         cmd.arg("100");
///         let process = nursery
///             .start(|status| run_process_started(status, cmd, RunOptions::new()))
///             .await?;
///         assert!(process.pid() > 0);
///         nursery.cancel_scope().cancel(); // terminates and reaps it
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn run_process_started(
    task_status: TaskStatus<Process>,
    mut cmd: impl BorrowMut<Command>,
    options: RunOptions,
) -> Result<()> {
    run(cmd.borrow_mut(), options, Some(task_status))
        .await
        .map(drop)
}

async fn run(
    cmd: &mut Command,
    options: RunOptions,
    task_status: Option<TaskStatus<Process>>,
) -> Result<CompletedProcess> {
    // 1.
    match &options.stdin {
        StdinSource::Null => {
            cmd.stdin(Stdio::null());
        }
        StdinSource::Bytes(_) => {
            cmd.stdin(Stdio::piped());
        }
        StdinSource::FromCommand => {}
    }
    if options.capture_stdout {
        cmd.stdout(Stdio::piped());
    }
    if options.capture_stderr {
        cmd.stderr(Stdio::piped());
    }
    if options.process_group {
        cmd.process_group(0);
    }
    let command = format!("{cmd:?}");
    let mut process = open_process(cmd)?;
    let feeding = matches!(options.stdin, StdinSource::Bytes(_));
    let stdin = process.stdin.take_if(|_| feeding);
    let stdout = process.stdout.take_if(|_| options.capture_stdout);
    let stderr = process.stderr.take_if(|_| options.capture_stderr);
    // 2. Pipes the run does not use (the `Command` asked for them) go to
    // the starter, or are closed.
    if let Some(s) = task_status {
        s.started(Process {
            stdin: process.stdin.take(),
            stdout: process.stdout.take(),
            stderr: process.stderr.take(),
            ..process.handle()
        });
    }
    process.stdin = None;
    process.stdout = None;
    process.stderr = None;
    let out = RefCell::new(Vec::new());
    let err = RefCell::new(Vec::new());

    // 3.
    let outcome = open_nursery(async |n| {
        if let (Some(stdin), StdinSource::Bytes(data)) = (&stdin, &options.stdin) {
            n.start_soon(async move {
                match stdin.send_all(data).await {
                    // The child closed its stdin (or exited) without
                    // reading it all: its business, as in Trio.
                    Err(e) if e.kind() == ErrorKind::Broken => {}
                    r => r?,
                }
                stdin.aclose().await
            });
        }
        if let Some(stdout) = &stdout {
            n.start_soon(read_all(stdout, &out));
        }
        if let Some(stderr) = &stderr {
            n.start_soon(read_all(stderr, &err));
        }
        process.wait().await
    })
    .await;

    let status = match outcome {
        Ok(Some(status)) => status,
        // 4.
        other => {
            let e = other.err().unwrap_or_else(|| {
                Error::new(ErrorKind::Other, "run_process's nursery was cancelled")
            });
            return Err(match stop(&process, &options).await {
                Ok(()) => e,
                Err(cleanup) => Error::group([e, cleanup]).expect("two errors"),
            });
        }
    };
    // 5.
    let (stdout, stderr) = (out.into_inner(), err.into_inner());
    if options.check && !status.success() {
        return Err(Error::with_kind(
            ErrorKind::Other,
            ProcessError {
                command,
                pid: process.pid(),
                status,
                stdout,
                stderr,
            },
        ));
    }
    Ok(CompletedProcess {
        pid: process.pid(),
        status,
        stdout,
        stderr,
    })
}

/// Appends everything `r` gives, up to its end, to `into`.
async fn read_all<R: ReceiveStream>(r: &R, into: &RefCell<Vec<u8>>) -> Result<()> {
    // 64 KiB: a Linux pipe's default capacity, so one read can take
    // everything a full pipe holds.
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = r.receive_some(&mut buf).await?;
        if n == 0 {
            return r.aclose().await;
        }
        into.borrow_mut().extend_from_slice(&buf[..n]);
    }
}

/// Step 4: stops an unreaped child, shielded: SIGTERM, the grace period,
/// SIGKILL, then reaps it (with a group: SIGKILL to the group first).
async fn stop(process: &Process, options: &RunOptions) -> Result<()> {
    if process.status().is_some() {
        return Ok(());
    }
    let group = options.process_group;
    let signal = |sig| {
        if group {
            process.send_signal_to_group(sig)
        } else {
            process.send_signal(sig)
        }
    };
    let shield = CancelScope::new().with_shield(true);
    shield
        .run(async {
            signal(libc::SIGTERM)?;
            let exited = move_on_after(options.grace_period, process.wait_exited()).await?;
            if exited.is_none() {
                signal(libc::SIGKILL)?;
                process.wait_exited().await?;
            }
            if group {
                // The leader is a zombie, so the group id is still ours:
                // nothing in the group outlives the run.
                process.send_signal_to_group(libc::SIGKILL)?;
            }
            process.poll()?;
            Ok(())
        })
        .await
        .map(drop)
}
