//! Issue 13, item 2: subprocesses, with real processes (`sh`, `cat`,
//! `sleep`, `true`, `false`).
//!
//! Every scenario runs in both wait modes: `in_both_modes!` turns each
//! `async fn` below into `pidfd::NAME` and `sigchld::NAME`, which set the
//! run's [`WaitMode`] first (a per-run switch, so the two run side by side
//! in the parallel harness).
//!
//! Clocks: a scenario that only waits on children runs on the real clock
//! (a child is a peer outside the run). The grace-period scenarios use the
//! MockClock: with autojump when the child ignores SIGTERM (waiting for it
//! is idle, so the clock jumps exactly to the grace deadline: the
//! behaviour under test), frozen without autojump when the child obeys
//! SIGTERM (so that a slow exit cannot let the clock run out the grace).
//!
//! Whether a child is gone is checked by pid: after it was reaped,
//! `/proc/PID` is absent or belongs to a process that is not our child.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use trio::process::{ProcessError, RunOptions, WaitMode, run_process, run_process_started};
use trio::socket::{Socket, SocketStream};
use trio::stream::{AsyncResource, ReceiveStream, SendStream};
use trio::testing::{TestOptions, run_test};
use trio::{ErrorKind, open_process};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
const SIGHUP: i32 = 1;

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

/// `/proc/PID/stat`'s state letter and parent pid, if the pid exists.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid …": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The pid is not a child of ours any more (neither running nor a zombie).
fn assert_not_our_child(pid: u32) {
    if let Some((state, ppid)) = proc_stat(pid) {
        assert_ne!(
            ppid,
            std::process::id(),
            "pid {pid} is still our child (state {state})"
        );
    }
}

/// The pid is dead: gone, or a zombie waiting for someone else (an
/// orphaned grandchild is reaped by init, which may take a moment, or
/// never in a container without an init).
fn assert_dead(pid: u32) {
    if let Some((state, _)) = proc_stat(pid) {
        assert_eq!(state, 'Z', "pid {pid} is still running");
    }
}

/// A Unix socket pair: one end for the child's stdout, the other as a
/// trio stream, so a test can read what a child says while `run_process`
/// runs it.
fn side_channel() -> (Stdio, SocketStream) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let ours = SocketStream::new(Socket::try_from(ours).unwrap()).unwrap();
    (Stdio::from(OwnedFd::from(theirs)), ours)
}

/// Reads one line (up to `\n`) from `s`.
async fn read_line(s: &SocketStream) -> trio::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0];
    while s.receive_some(&mut byte).await? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    Ok(String::from_utf8(line).unwrap())
}

macro_rules! in_both_modes {
    ($($name:ident: $options:expr;)*) => {
        mod pidfd {
            use trio::testing::{MockClock, TestOptions, run_test};
            $(
                #[test]
                fn $name() {
                    run_test($options, async {
                        trio::process::set_wait_mode(trio::process::WaitMode::Pidfd)?;
                        super::$name().await
                    });
                }
            )*
        }
        mod sigchld {
            use trio::testing::{MockClock, TestOptions, run_test};
            $(
                #[test]
                fn $name() {
                    run_test($options, async {
                        trio::process::set_wait_mode(trio::process::WaitMode::Sigchld)?;
                        super::$name().await
                    });
                }
            )*
        }
    };
}

in_both_modes! {
    exit_codes_and_poll: TestOptions::new();
    run_process_captures_stdout_and_stderr_separately: TestOptions::new();
    run_process_feeds_stdin: TestOptions::new();
    check_failure_carries_status_and_output: TestOptions::new();
    check_off_returns_the_failed_status: TestOptions::new();
    cwd_and_env_come_from_the_command: TestOptions::new();
    more_than_a_pipe_buffer_both_ways_at_once_does_not_deadlock: TestOptions::new();
    cancelled_run_terminates_reaps_and_reports_cancelled: TestOptions::new().clock(MockClock::new());
    a_deadline_cancels_a_run: TestOptions::new().autojump();
    a_child_ignoring_sigterm_is_killed_after_exactly_the_grace_period: TestOptions::new().autojump();
    a_custom_grace_period_is_used: TestOptions::new().autojump();
    process_group_option_takes_the_grandchildren_down_too: TestOptions::new().clock(MockClock::new());
    a_group_ignoring_sigterm_is_killed_after_the_grace_period: TestOptions::new().autojump();
    a_cancelled_wait_had_no_effect: TestOptions::new().autojump();
    several_tasks_may_wait_for_one_child: TestOptions::new();
    signals_reach_the_child_and_not_after_reaping: TestOptions::new();
    no_zombie_after_wait: TestOptions::new();
    a_wait_on_an_already_exited_child_is_still_a_checkpoint: TestOptions::new();
    open_process_pipes_in_both_directions: TestOptions::new();
    the_run_wait_mode_is_the_one_used: TestOptions::new();
    a_started_run_hands_over_the_pipes_it_does_not_use: TestOptions::new();
    a_cancelled_receive_consumed_nothing: TestOptions::new();
}

async fn a_cancelled_receive_consumed_nothing() -> trio::Result<()> {
    let mut cmd = sh("echo queued; exec cat");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let p = open_process(cmd)?;
    let (stdin, stdout) = (p.stdin.as_ref().unwrap(), p.stdout.as_ref().unwrap());
    let mut buf = [0; 64];
    // Blocked (nothing to read yet, or data in flight), then cancelled: no
    // byte is lost either way.
    let scope = trio::CancelScope::new();
    scope.cancel();
    assert_eq!(scope.run(stdout.receive_some(&mut buf)).await?, None);
    let mut got = Vec::new();
    while got.len() < 7 {
        let n = stdout.receive_some(&mut buf).await?;
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"queued\n");
    // Cancelled while parked waiting for data.
    let r = trio::open_nursery(async |n| {
        let scope = n.cancel_scope();
        n.start_soon(async move {
            trio::testing::wait_all_tasks_blocked().await?;
            scope.cancel();
            Ok(())
        });
        stdout.receive_some(&mut buf).await.map(drop)
    })
    .await?;
    assert_eq!(r, None);
    stdin.send_all(b"after").await?;
    stdin.aclose().await?;
    let mut got = Vec::new();
    loop {
        let n = stdout.receive_some(&mut buf).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"after");
    assert!(p.wait().await?.success());
    Ok(())
}

async fn a_started_run_hands_over_the_pipes_it_does_not_use() -> trio::Result<()> {
    // Trio's `nursery.start(run_process, cmd, stdin=PIPE)`: the starter
    // talks to the child, the run supervises it; stderr is captured (and
    // dropped: the started form keeps no output), so it is not handed over.
    let mut cmd = sh("cat; echo bye >&2");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut reply = Vec::new();
    let mut pid = None;
    trio::open_nursery(async |n| {
        let p = n
            .start(|s| {
                run_process_started(
                    s,
                    cmd,
                    RunOptions::new().stdin_from_command().capture_stderr(),
                )
            })
            .await?;
        assert!(p.stderr.is_none());
        let (stdin, stdout) = (p.stdin.as_ref().unwrap(), p.stdout.as_ref().unwrap());
        stdin.send_all(b"hello").await?;
        stdin.aclose().await?;
        let mut buf = [0; 16];
        loop {
            let k = stdout.receive_some(&mut buf).await?;
            if k == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..k]);
        }
        pid = Some(p.pid());
        Ok(())
    })
    .await?;
    assert_eq!(reply, b"hello");
    assert_not_our_child(pid.unwrap());

    // Plain `run_process` closes such a pipe at once: `cat` reads the end
    // of its input and exits.
    let mut cmd = Command::new("cat");
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let done = run_process(cmd, RunOptions::new().stdin_from_command()).await?;
    assert!(done.status.success());
    Ok(())
}

async fn the_run_wait_mode_is_the_one_used() -> trio::Result<()> {
    let p = open_process(Command::new("true"))?;
    // pidfds exist on every kernel this runs on: no silent fallback.
    assert_eq!(p.wait_mode(), trio::process::wait_mode()?);
    assert!(p.wait().await?.success());
    // `&mut Command`, as the builder methods return, works too.
    let p = open_process(Command::new("sh").args(["-c", "exit 4"]))?;
    assert_eq!(p.wait().await?.code(), Some(4));
    Ok(())
}

/// A process and its pipes may move to another thread (and run) while
/// idle, like sockets; waiting and signalling may happen from any task.
#[test]
fn processes_and_pipes_are_send() {
    fn send<T: Send>() {}
    send::<trio::process::Process>();
    send::<trio::process::ProcessStdin>();
    send::<trio::process::ProcessStdout>();
    send::<trio::process::ProcessStderr>();
    send::<trio::process::CompletedProcess>();
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ProcessError>();
}

async fn exit_codes_and_poll() -> trio::Result<()> {
    let t = open_process(Command::new("true"))?;
    assert_eq!(t.wait().await?.code(), Some(0));
    let f = open_process(Command::new("false"))?;
    assert_eq!(f.wait().await?.code(), Some(1));
    let seven = open_process(sh("exit 7"))?;
    assert_eq!(seven.wait().await?.code(), Some(7));
    // Again: the status is kept.
    assert_eq!(seven.wait().await?.code(), Some(7));
    assert_eq!(seven.poll()?.and_then(|s| s.code()), Some(7));

    let mut cat = Command::new("cat");
    cat.stdin(Stdio::piped());
    let p = open_process(cat)?;
    assert_eq!(p.poll()?, None);
    assert_eq!(p.try_wait()?, None);
    p.stdin.as_ref().unwrap().aclose().await?;
    assert_eq!(p.wait().await?.code(), Some(0));
    assert_eq!(p.status().and_then(|s| s.code()), Some(0));
    Ok(())
}

async fn run_process_captures_stdout_and_stderr_separately() -> trio::Result<()> {
    let done = run_process(
        sh("echo out; echo err >&2; echo more"),
        RunOptions::new().capture_stdout().capture_stderr(),
    )
    .await?;
    assert_eq!(done.stdout, b"out\nmore\n");
    assert_eq!(done.stderr, b"err\n");
    assert!(done.status.success());
    assert_not_our_child(done.pid);
    // Not captured: nothing collected (the output went to ours).
    let done = run_process(sh("true"), RunOptions::new()).await?;
    assert!(done.stdout.is_empty() && done.stderr.is_empty());
    Ok(())
}

async fn run_process_feeds_stdin() -> trio::Result<()> {
    let done = run_process(
        Command::new("cat"),
        RunOptions::new()
            .stdin(b"to cat\n".to_vec())
            .capture_stdout(),
    )
    .await?;
    assert_eq!(done.stdout, b"to cat\n");
    // The default stdin is /dev/null, not ours. (Checked by name: on some
    // machines /dev/null is a regular file that others write into.)
    let done = run_process(
        sh("readlink /proc/$$/fd/0"),
        RunOptions::new().capture_stdout(),
    )
    .await?;
    assert_eq!(done.stdout, b"/dev/null\n");
    // A child that does not read its input is not an error.
    let done = run_process(
        Command::new("true"),
        RunOptions::new().stdin(vec![b'x'; 1 << 20]),
    )
    .await?;
    assert!(done.status.success());
    Ok(())
}

async fn check_failure_carries_status_and_output() -> trio::Result<()> {
    let err = run_process(
        sh("echo partial; echo why >&2; exit 3"),
        RunOptions::new().capture_stdout().capture_stderr(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    let failed = err.downcast_ref::<ProcessError>().expect("a ProcessError");
    assert_eq!(failed.status.code(), Some(3));
    assert_eq!(failed.stdout, b"partial\n");
    assert_eq!(failed.stderr, b"why\n");
    assert!(failed.command.contains("sh"), "{}", failed.command);
    assert!(err.to_string().contains("exit status 3"), "{err}");
    assert_not_our_child(failed.pid);

    // Death by a signal is a failure too.
    let err = run_process(sh("kill -9 $$"), RunOptions::new())
        .await
        .unwrap_err();
    let failed = err.downcast_ref::<ProcessError>().unwrap();
    assert_eq!(failed.status.signal(), Some(SIGKILL));
    assert!(err.to_string().contains("signal 9 (SIGKILL)"), "{err}");

    let err = run_process(Command::new("false"), RunOptions::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.downcast_ref::<ProcessError>().unwrap().status.code(),
        Some(1)
    );
    Ok(())
}

async fn check_off_returns_the_failed_status() -> trio::Result<()> {
    let done = run_process(Command::new("false"), RunOptions::new().check(false)).await?;
    assert_eq!(done.status.code(), Some(1));
    // A command that cannot be spawned is an I/O error naming the cause.
    let err = run_process(Command::new("/nonexistent/program"), RunOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(
        err.downcast_ref::<std::io::Error>().unwrap().kind(),
        std::io::ErrorKind::NotFound
    );
    Ok(())
}

async fn cwd_and_env_come_from_the_command() -> trio::Result<()> {
    let mut cmd = sh("echo \"$WHO\" in \"$(pwd)\"");
    cmd.env("WHO", "trio").current_dir("/tmp");
    let done = run_process(cmd, RunOptions::new().capture_stdout()).await?;
    assert_eq!(done.stdout, b"trio in /tmp\n");
    let mut cmd = sh("echo \"[$HOME]\"");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap());
    let done = run_process(cmd, RunOptions::new().capture_stdout()).await?;
    assert_eq!(done.stdout, b"[]\n");
    Ok(())
}

async fn more_than_a_pipe_buffer_both_ways_at_once_does_not_deadlock() -> trio::Result<()> {
    // `tee` copies its input to stdout and stderr as it reads: with 4 MiB
    // (64 pipe buffers) it blocks on both outputs long before its input
    // ends, so this finishes only if input and both outputs move at once.
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let done = run_process(
        sh("tee /dev/stderr"),
        RunOptions::new()
            .stdin(data.clone())
            .capture_stdout()
            .capture_stderr(),
    )
    .await?;
    assert!(done.stdout == data, "stdout differs");
    assert!(done.stderr == data, "stderr differs");
    Ok(())
}

async fn cancelled_run_terminates_reaps_and_reports_cancelled() -> trio::Result<()> {
    // Frozen MockClock: the grace period never runs out, so the child is
    // known to have died of the SIGTERM. (Plain `sleep` dies of SIGTERM.)
    let start = trio::current_time();
    let mut process = None;
    let r = trio::open_nursery(async |n| {
        let p = n
            .start(|s| run_process_started(s, cmd("sleep", &["100"]), RunOptions::new()))
            .await?;
        process = Some(p);
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    let _ = r;
    let p = process.unwrap();
    assert_eq!(p.status().and_then(|s| s.signal()), Some(SIGTERM));
    assert_eq!(trio::current_time(), start);
    assert_not_our_child(p.pid());

    // `run_process` itself reports Cancelled, after the cleanup.
    let scope = trio::CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            let e = run_process(cmd("sleep", &["100"]), RunOptions::new())
                .await
                .unwrap_err();
            assert!(e.is_cancelled(), "{e:?}");
            Err::<(), _>(e)
        })
        .await?;
    assert_eq!(r, None);
    Ok(())
}

async fn a_deadline_cancels_a_run() -> trio::Result<()> {
    // Autojump: the run's only deadline is the timeout, so the clock jumps
    // to it while the child sleeps.
    let mut pid = None;
    let r = trio::move_on_after(
        1.0,
        trio::open_nursery(async |n| {
            let p = n
                .start(|s| run_process_started(s, cmd("sleep", &["100"]), RunOptions::new()))
                .await?;
            pid = Some(p.pid());
            Ok(())
        }),
    )
    .await?;
    assert_eq!(r, None);
    assert!(trio::current_time().as_secs_f64() >= 1.0);
    assert_not_our_child(pid.unwrap());
    Ok(())
}

fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Runs `script` (which must print its first line once its handlers are
/// set) under `run_process` with `options`, cancels it, and returns the
/// process handle and the virtual time the cleanup took.
async fn cancel_after_first_line(
    script: &str,
    options: RunOptions,
) -> trio::Result<(trio::process::Process, String, f64)> {
    let (out, ours) = side_channel();
    let mut cmd = sh(script);
    cmd.stdout(out);
    let mut found = None;
    trio::open_nursery(async |n| {
        let p = n.start(|s| run_process_started(s, cmd, options)).await?;
        // No deadline exists yet, so autojump has nothing to jump to
        // while we wait for the child to get ready.
        let line = read_line(&ours).await?;
        let t0 = trio::current_time();
        n.cancel_scope().cancel();
        found = Some((p, line, t0));
        Ok(())
    })
    .await?;
    let (p, line, t0) = found.unwrap();
    let took = trio::current_time().checked_secs_since(t0)?;
    Ok((p, line, took))
}

async fn a_child_ignoring_sigterm_is_killed_after_exactly_the_grace_period() -> trio::Result<()> {
    // `exec sleep`: one process, ignoring SIGTERM (an ignored signal stays
    // ignored across exec).
    let (p, _, took) = cancel_after_first_line(
        "trap '' TERM; echo ready; exec sleep 100",
        RunOptions::new(),
    )
    .await?;
    assert_eq!(took, 5.0);
    assert_eq!(p.status().and_then(|s| s.signal()), Some(SIGKILL));
    assert_not_our_child(p.pid());
    Ok(())
}

async fn a_custom_grace_period_is_used() -> trio::Result<()> {
    let (p, _, took) = cancel_after_first_line(
        "trap '' TERM; echo ready; exec sleep 100",
        RunOptions::new().grace_period(Duration::from_millis(1500)),
    )
    .await?;
    assert_eq!(took, 1.5);
    assert_eq!(p.status().and_then(|s| s.signal()), Some(SIGKILL));
    Ok(())
}

/// Waits (briefly, in real time) until `pid` is dead: SIGKILL is
/// synchronous for the target's death, not for its reaping by its new
/// parent, nor for /proc showing it.
fn wait_dead(pid: u32) {
    for _ in 0..200 {
        if proc_stat(pid).is_none_or(|(s, _)| s == 'Z') {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_dead(pid);
}

async fn process_group_option_takes_the_grandchildren_down_too() -> trio::Result<()> {
    // The leader obeys SIGTERM; its child ignores it, and would outlive the
    // run without the group's final SIGKILL. (Frozen MockClock: the grace
    // period never runs out, so the leader died of the SIGTERM.)
    let (p, grandchild, took) = cancel_after_first_line(
        "(trap '' TERM; exec sleep 100) & echo $!; wait",
        RunOptions::new().process_group(true),
    )
    .await?;
    let grandchild: u32 = grandchild.parse().unwrap();
    assert_eq!(took, 0.0);
    assert_eq!(p.status().and_then(|s| s.signal()), Some(SIGTERM));
    assert_not_our_child(p.pid());
    wait_dead(grandchild);
    Ok(())
}

async fn a_group_ignoring_sigterm_is_killed_after_the_grace_period() -> trio::Result<()> {
    // Leader and child both ignore SIGTERM (autojump: the grace period
    // passes at once in virtual time).
    let (p, grandchild, took) = cancel_after_first_line(
        "trap '' TERM; sleep 100 & echo $!; wait",
        RunOptions::new().process_group(true),
    )
    .await?;
    let grandchild: u32 = grandchild.parse().unwrap();
    assert_eq!(took, 5.0);
    assert_eq!(p.status().and_then(|s| s.signal()), Some(SIGKILL));
    assert_not_our_child(p.pid());
    wait_dead(grandchild);
    Ok(())
}

async fn a_cancelled_wait_had_no_effect() -> trio::Result<()> {
    let p = open_process(cmd("sleep", &["100"]))?;
    // Autojump: the wait is idle, so the clock jumps to the timeout.
    let r = trio::move_on_after(10.0, p.wait()).await?;
    assert_eq!(r, None);
    // Not signalled, not reaped: still running, still ours.
    assert_eq!(p.poll()?, None);
    assert_eq!(
        proc_stat(p.pid()).map(|(_, ppid)| ppid),
        Some(std::process::id())
    );
    // A wait in an already-cancelled scope did nothing either.
    let scope = trio::CancelScope::new();
    scope.cancel();
    assert_eq!(scope.run(p.wait()).await?, None);
    assert_eq!(p.poll()?, None);
    p.kill()?;
    assert_eq!(p.wait().await?.signal(), Some(SIGKILL));
    Ok(())
}

async fn several_tasks_may_wait_for_one_child() -> trio::Result<()> {
    let mut cmd = Command::new("cat");
    cmd.stdin(Stdio::piped());
    let p = open_process(cmd)?;
    let statuses = std::cell::RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        for _ in 0..3 {
            n.start_soon(async {
                let s = p.wait().await?;
                statuses.borrow_mut().push(s.code());
                Ok(())
            });
        }
        trio::testing::wait_all_tasks_blocked().await?;
        p.stdin.as_ref().unwrap().aclose().await
    })
    .await?;
    assert_eq!(statuses.into_inner(), [Some(0); 3]);
    Ok(())
}

async fn signals_reach_the_child_and_not_after_reaping() -> trio::Result<()> {
    let p = open_process(cmd("sleep", &["100"]))?;
    p.send_signal(SIGHUP)?;
    assert_eq!(p.wait().await?.signal(), Some(SIGHUP));
    // Reaped: the pid may be someone else's now; signals are no-ops.
    p.kill()?;
    p.terminate()?;
    let p = open_process(cmd("sleep", &["100"]))?;
    p.terminate()?;
    assert_eq!(p.wait().await?.signal(), Some(SIGTERM));
    let p = open_process(cmd("sleep", &["100"]))?;
    p.kill()?;
    assert_eq!(p.wait().await?.signal(), Some(SIGKILL));
    Ok(())
}

async fn no_zombie_after_wait() -> trio::Result<()> {
    let p = open_process(Command::new("true"))?;
    let pid = p.pid();
    p.wait_exited().await?;
    // Exited but not reaped yet: a zombie, still ours.
    assert_eq!(proc_stat(pid), Some(('Z', std::process::id())));
    p.wait().await?;
    assert_not_our_child(pid);
    let done = run_process(Command::new("true"), RunOptions::new()).await?;
    assert_not_our_child(done.pid);
    Ok(())
}

async fn a_wait_on_an_already_exited_child_is_still_a_checkpoint() -> trio::Result<()> {
    let p = open_process(Command::new("true"))?;
    p.wait().await?;
    trio::testing::assert_checkpoints(p.wait()).await?;
    Ok(())
}

async fn open_process_pipes_in_both_directions() -> trio::Result<()> {
    let mut cmd = sh("cat; echo done >&2");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut p = open_process(cmd)?;
    let (stdin, stdout, stderr) = (
        p.stdin.take().unwrap(),
        p.stdout.take().unwrap(),
        p.stderr.take().unwrap(),
    );
    let data = vec![7u8; 1 << 20];
    let mut echoed = Vec::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            stdin.send_all(&data).await?;
            stdin.aclose().await
        });
        let mut buf = vec![0; 10_000];
        loop {
            let k = stdout.receive_some(&mut buf).await?;
            if k == 0 {
                break;
            }
            echoed.extend_from_slice(&buf[..k]);
        }
        Ok(())
    })
    .await?;
    assert!(echoed == data);
    let mut buf = [0; 16];
    let k = stderr.receive_some(&mut buf).await?;
    assert_eq!(&buf[..k], b"done\n");
    assert_eq!(stderr.receive_some(&mut buf).await?, 0);
    assert!(p.wait().await?.success());
    Ok(())
}

// ----- the stream conformance checks, on `cat` --------------------------------

/// `cat` with its stdin and stdout as a one-way stream (the `Process` is
/// dropped: `cat` exits when its pipes close and is reaped as an orphan).
async fn cat_pair() -> trio::Result<(trio::process::ProcessStdin, trio::process::ProcessStdout)> {
    let mut cmd = Command::new("cat");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut p = open_process(cmd)?;
    Ok((p.stdin.take().unwrap(), p.stdout.take().unwrap()))
}

/// A `cat` pair whose sender is blocked: stdin, `cat`'s buffer and stdout
/// are all full. `cat` moves data in real time (this runs on the system
/// clock), so: send until a send makes no progress for 50 ms *and* `cat` is
/// blocked writing its full stdout (its `/proc/PID/wchan` is the kernel's
/// `pipe_write`), where it stays until the receiver reads. (A timed-out
/// `send_all` may have written a prefix; the checks never look at the
/// contents.) Where wchan is hidden, two stuck sends in a row stand in.
async fn clogged_cat_pair()
-> trio::Result<(trio::process::ProcessStdin, trio::process::ProcessStdout)> {
    let mut cmd = Command::new("cat");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut p = open_process(cmd)?;
    let (s, r) = (p.stdin.take().unwrap(), p.stdout.take().unwrap());
    let chunk = vec![b'c'; 64 * 1024];
    let mut stuck = 0;
    loop {
        match trio::move_on_after(0.05, s.send_all(&chunk)).await? {
            Some(()) => stuck = 0,
            None => stuck += 1,
        }
        let wchan = std::fs::read_to_string(format!("/proc/{}/wchan", p.pid())).unwrap_or_default();
        let blocked_writing = wchan.contains("pipe_write");
        let wchan_hidden = wchan.is_empty() || wchan == "0";
        if stuck >= 1 && blocked_writing || stuck >= 2 && wchan_hidden {
            break;
        }
    }
    Ok((s, r))
}

#[test]
fn cat_pipes_pass_the_one_way_stream_checks() {
    for mode in [WaitMode::Pidfd, WaitMode::Sigchld] {
        run_test(TestOptions::new(), async move {
            trio::process::set_wait_mode(mode)?;
            trio::testing::check_one_way_stream(cat_pair, Some(clogged_cat_pair)).await
        });
    }
}

/// Spawned in one run, used and waited for in another run on another
/// thread: the pipes' and the pidfd's registrations move with them.
#[test]
fn a_process_moves_to_a_run_on_another_thread() {
    let p = trio::run(async {
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let p = open_process(cmd)?;
        // Register both pipes and the pidfd here first.
        p.stdin.as_ref().unwrap().send_all(b"one ").await?;
        let r = trio::move_on_after(0.01, p.wait()).await?;
        assert!(r.is_none());
        Ok(p)
    })
    .unwrap();
    std::thread::spawn(move || {
        trio::run(async {
            let (stdin, stdout) = (p.stdin.as_ref().unwrap(), p.stdout.as_ref().unwrap());
            stdin.send_all(b"two").await?;
            stdin.aclose().await?;
            let mut got = Vec::new();
            let mut buf = [0; 64];
            loop {
                let n = stdout.receive_some(&mut buf).await?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"one two");
            assert!(p.wait().await?.success());
            Ok(())
        })
        .unwrap();
    })
    .join()
    .unwrap();
}
