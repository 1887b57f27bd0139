//! Signals and Ctrl-C, with real signals (`harness = false`).
//!
//! The trick: this binary is both the test runner and the programs under
//! test. Run plainly, it runs the tests below; each starts *itself* again
//! with `TRIO_SIGNALS_SCENARIO=<name>` set, so the child runs that scenario
//! on its main thread (where a run owns SIGINT), prints markers on stdout
//! ("ready" once it waits for a signal), and the test sends it real signals
//! with `kill(1)` and checks its markers and how it ended. The in-process
//! tests (Busy, merging, no loss, forbidden signals) run their runs on a
//! helper thread, so this process installs no Ctrl-C handling of its own.
//!
//! Waits on children use the real clock (they are peers outside any run),
//! with generous limits that only turn a hang into a failure; no assertion
//! depends on timing.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use trio::signal::consts::{SIGINT, SIGKILL, SIGSEGV, SIGSTOP, SIGTERM, SIGUSR1, SIGUSR2};
use trio::{CancelScope, ErrorKind};

const SCENARIO: &str = "TRIO_SIGNALS_SCENARIO";
/// How long a child may take to reach a marker or to exit before the test
/// calls it hung.
const LIMIT: Duration = Duration::from_secs(20);

// ----- the parent's side --------------------------------------------------------

/// A running scenario: this binary again, as a child.
struct Kid {
    child: Child,
    /// Lines of the child's stdout, as they come.
    stdout: mpsc::Receiver<String>,
    /// Lines of the child's stderr, as they come.
    stderr: mpsc::Receiver<String>,
    /// Every stdout line seen so far.
    seen: Vec<String>,
    /// Every stderr line seen so far.
    seen_err: Vec<String>,
    /// `seen[..cursor]` has been matched by `expect_line` already.
    cursor: usize,
}

fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Kid {
    fn start(scenario: &str) -> Kid {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(SCENARIO, scenario)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Kid {
            child,
            stdout,
            stderr,
            seen: Vec::new(),
            seen_err: Vec::new(),
            cursor: 0,
        }
    }

    /// Waits until the child printed `marker` on stdout, after the line
    /// the previous call matched (so a marker printed twice is waited for
    /// twice).
    fn expect_line(&mut self, marker: &str) {
        let end = Instant::now() + LIMIT;
        loop {
            if let Some(i) = self.seen[self.cursor..].iter().position(|l| l == marker) {
                self.cursor += i + 1;
                return;
            }
            let left = end.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no {marker:?} from the child; stdout so far: {:?}",
                        self.seen
                    );
                }
            }
        }
    }

    /// Waits until the child printed a line containing all of `parts` on
    /// stderr; returns the stderr lines so far.
    fn expect_stderr(&mut self, parts: &[&str]) -> String {
        let end = Instant::now() + LIMIT;
        loop {
            let text = self.seen_err.join("\n");
            if parts.iter().all(|p| text.contains(p)) {
                return text;
            }
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) => self.seen_err.push(l),
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no {parts:?} on the child's stderr; so far:\n{text}");
                }
            }
        }
    }

    /// Sends `signal` (a name for `kill -s`: "INT", "TERM", …).
    fn send(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits for the child to exit; returns its status and all of its
    /// stdout.
    fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let end = Instant::now() + LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the child did not exit; stdout: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // The reader ends at end-of-file (the child is gone).
        while let Ok(l) = self.stdout.recv_timeout(LIMIT) {
            self.seen.push(l);
        }
        (status, self.seen)
    }
}

// ----- the tests ------------------------------------------------------------------

/// `#[trio::main]`: SIGINT cancels every task, plain and shielded cleanup
/// run, and the process then dies of SIGINT (the Unix way).
fn ctrl_c_cancels_gracefully_and_main_dies_of_sigint() {
    let mut kid = Kid::start("main_cleanup");
    kid.expect_line("ready");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(
        status.signal(),
        Some(SIGINT),
        "status {status:?}, stdout {out:?}"
    );
    for marker in [
        "worker cancelled",
        "shielded cleanup done",
        "body saw Cancelled",
    ] {
        assert!(out.iter().any(|l| l == marker), "no {marker:?} in {out:?}");
    }
    assert!(!out.iter().any(|l| l == "not reached"), "{out:?}");
}

/// `trio::run` reports the interruption as `ErrorKind::Interrupted` with
/// the signal, even when the body caught its `Cancelled` and returned Ok.
fn run_returns_interrupted() {
    let mut kid = Kid::start("run_interrupted");
    kid.expect_line("ready");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(status.code(), Some(0), "{out:?}");
    assert!(
        out.iter().any(|l| l == "kind Interrupted signal 2"),
        "{out:?}"
    );
    assert!(out.iter().any(|l| l == "body returned Ok"), "{out:?}");
}

/// A second SIGINT while cleanup is blocked ends the process at once.
fn second_sigint_kills_during_cleanup() {
    let mut kid = Kid::start("blocked_cleanup");
    kid.expect_line("ready");
    kid.send("INT");
    kid.expect_line("cleanup blocking");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGINT), "{out:?}");
    assert!(!out.iter().any(|l| l == "cleanup finished"), "{out:?}");
}

/// With `handle_ctrl_c(false)` a receiver gets SIGINT; once it is dropped,
/// SIGINT kills the process again (the default disposition is emulated).
fn dropped_receiver_restores_default_sigint() {
    let mut kid = Kid::start("receiver_then_default");
    kid.expect_line("ready");
    kid.send("INT");
    kid.expect_line("got 2");
    kid.expect_line("dropped");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGINT), "{out:?}");
    assert!(!out.iter().any(|l| l == "not reached"), "{out:?}");
}

/// A receiver of SIGINT in a main-thread run takes SIGINT from the run's
/// Ctrl-C handling while it is open; after it is dropped, Ctrl-C cancels
/// the run again.
fn receiver_suspends_ctrl_c_handling() {
    let mut kid = Kid::start("receiver_over_ctrl_c");
    kid.expect_line("ready");
    kid.send("INT");
    kid.expect_line("got 2");
    kid.expect_line("dropped");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGINT), "{out:?}");
    assert!(out.iter().any(|l| l == "cancelled after drop"), "{out:?}");
}

/// `handle_sigterm(true)`: SIGTERM cancels the run like Ctrl-C and the
/// program dies of SIGTERM.
fn sigterm_option_cancels_gracefully() {
    let mut kid = Kid::start("sigterm");
    kid.expect_line("ready");
    kid.send("TERM");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGTERM), "{out:?}");
    assert!(out.iter().any(|l| l == "cleanup ran"), "{out:?}");
}

/// Without the option, SIGTERM keeps its default action (no cleanup).
fn sigterm_default_kills() {
    let mut kid = Kid::start("sigterm_off");
    kid.expect_line("ready");
    kid.send("TERM");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGTERM), "{out:?}");
    assert!(!out.iter().any(|l| l == "cleanup ran"), "{out:?}");
}

/// `dump_task_tree_on(SIGUSR1)`: the tree on stderr shows the blocked
/// task and where it waits; the program keeps running.
fn sigusr1_dumps_the_task_tree() {
    let mut kid = Kid::start("dump");
    kid.expect_line("ready");
    kid.send("USR1");
    let text = kid.expect_stderr(&["task \"stuck\"", "waiting in sleep at", "signals.rs:"]);
    assert!(text.contains("trio: task tree"), "{text}");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGINT), "{out:?}");
}

/// A run on another thread installs nothing: SIGINT keeps its default
/// action (no cleanup), and signal-hook never caught SIGINT.
fn non_main_thread_run_leaves_sigint_alone() {
    let mut kid = Kid::start("worker_thread");
    kid.expect_line("ready");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGINT), "{out:?}");
    assert!(out.iter().any(|l| l == "sigint caught: false"), "{out:?}");
    assert!(!out.iter().any(|l| l == "cleanup ran"), "{out:?}");
}

/// `handle_ctrl_c(false)` on the main thread installs nothing either.
fn ctrl_c_option_off_installs_nothing() {
    let mut kid = Kid::start("ctrl_c_off");
    kid.expect_line("ready");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGINT), "{out:?}");
    assert!(out.iter().any(|l| l == "sigint caught: false"), "{out:?}");
}

/// The example terminates on its own, gracefully, and dies of SIGINT.
fn example_ctrl_c_runs() {
    let mut kid = Kid::start("example");
    kid.expect_line("ready");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGINT), "{out:?}");
    assert!(out.iter().any(|l| l == "cleanup ran"), "{out:?}");
}

/// After an interrupted run, the next run on the main thread handles
/// Ctrl-C again (and its result is not marked by the first signal).
fn a_later_run_handles_ctrl_c_again() {
    let mut kid = Kid::start("two_runs");
    kid.expect_line("ready");
    kid.send("INT");
    kid.expect_line("first interrupted");
    kid.expect_line("second ok");
    kid.expect_line("ready");
    kid.send("INT");
    let (status, out) = kid.finish();
    assert_eq!(status.code(), Some(0), "{out:?}");
    assert!(out.iter().any(|l| l == "third interrupted"), "{out:?}");
}

/// A program started with SIGINT ignored (`trap '' INT`, as `nohup` and
/// background jobs are) keeps it ignored: the run does not take it, and a
/// dropped receiver leaves it ignored.
fn ignored_sigint_stays_ignored() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .args(["-c", "trap '' INT; exec \"$0\"", exe.to_str().unwrap()])
        .env(SCENARIO, "ignored")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    let mut kid = Kid {
        child,
        stdout,
        stderr,
        seen: Vec::new(),
        seen_err: Vec::new(),
        cursor: 0,
    };
    kid.expect_line("ready");
    kid.send("INT");
    kid.expect_line("got 2");
    kid.expect_line("dropped");
    kid.send("INT");
    // Still alive and not cancelled: a tick proves the run went on.
    kid.expect_line("tick");
    kid.send("TERM");
    let (status, out) = kid.finish();
    assert_eq!(status.signal(), Some(SIGTERM), "{out:?}");
    assert!(!out.iter().any(|l| l == "cleanup ran"), "{out:?}");
}

/// Runs `f` in a run on a helper thread (not the main thread: no Ctrl-C
/// handling is installed in this process).
fn in_run_on_thread(f: impl AsyncFnOnce() -> trio::Result<()> + Send + 'static) {
    std::thread::spawn(move || trio::run(f()).unwrap())
        .join()
        .unwrap();
}

/// Two tasks receiving at once: the second gets Busy.
fn concurrent_receive_is_busy() {
    in_run_on_thread(async || {
        let signals = trio::open_signal_receiver(&[SIGUSR2])?;
        trio::open_nursery(async |n| {
            let signals = &signals;
            n.start_soon(async move { signals.recv().await.map(drop) });
            trio::testing::wait_all_tasks_blocked().await?;
            let e = signals.recv().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Busy);
            trio::signal::raise(SIGUSR2)?;
            Ok(())
        })
        .await?;
        Ok(())
    });
}

/// Signals pending at once are merged: each is delivered once (in signal
/// number order), then nothing more is pending.
fn pending_duplicates_are_merged() {
    in_run_on_thread(async || {
        let signals = trio::open_signal_receiver(&[SIGUSR1, SIGUSR2])?;
        for s in [SIGUSR2, SIGUSR1, SIGUSR2, SIGUSR1, SIGUSR2] {
            trio::signal::raise(s)?;
        }
        assert_eq!(signals.recv().await?, SIGUSR1);
        assert_eq!(signals.recv().await?, SIGUSR2);
        let more = trio::move_on_after(0.05, signals.recv()).await?;
        assert_eq!(more, None, "a merged signal was delivered twice");
        Ok(())
    });
}

/// A signal that arrives between two receives (and one raised from another
/// thread while a task waits) is delivered; a cancelled receive takes
/// nothing.
fn no_signal_lost_between_receives() {
    in_run_on_thread(async || {
        let signals = trio::open_signal_receiver(&[SIGUSR2])?;
        for _ in 0..50 {
            trio::signal::raise(SIGUSR2)?;
            assert_eq!(signals.recv().await?, SIGUSR2);
        }
        // Cancelled while waiting, then a signal: the next receive gets it.
        assert_eq!(trio::move_on_after(0.01, signals.recv()).await?, None);
        trio::signal::raise(SIGUSR2)?;
        assert_eq!(signals.recv().await?, SIGUSR2);
        // From another thread, while this task is parked.
        for _ in 0..20 {
            let raiser = std::thread::spawn(|| {
                std::thread::sleep(Duration::from_millis(1));
                trio::signal::raise(SIGUSR2).unwrap();
            });
            assert_eq!(signals.recv().await?, SIGUSR2);
            raiser.join().unwrap();
        }
        Ok(())
    });
}

/// Every open receiver of a signal gets each occurrence; dropping one
/// leaves the other working.
fn every_receiver_gets_the_signal() {
    in_run_on_thread(async || {
        let a = trio::open_signal_receiver(&[SIGUSR2])?;
        let b = trio::open_signal_receiver(&[SIGUSR1, SIGUSR2])?;
        trio::signal::raise(SIGUSR2)?;
        assert_eq!(a.recv().await?, SIGUSR2);
        assert_eq!(b.recv().await?, SIGUSR2);
        drop(a);
        trio::signal::raise(SIGUSR2)?;
        assert_eq!(b.recv().await?, SIGUSR2);
        Ok(())
    });
}

/// The receiver is a `Stream`.
fn receiver_is_a_stream() {
    in_run_on_thread(async || {
        let mut signals = trio::open_signal_receiver(&[SIGUSR2])?;
        trio::signal::raise(SIGUSR2)?;
        let next = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut signals), cx)
        })
        .await;
        assert_eq!(next.unwrap()?, SIGUSR2);
        assert_eq!(signals.signals(), vec![SIGUSR2]);
        Ok(())
    });
}

/// Signals trio cannot take are typed errors, not panics.
fn forbidden_signals_are_invalid_arguments() {
    in_run_on_thread(async || {
        for bad in [
            &[SIGKILL][..],
            &[SIGSTOP],
            &[SIGSEGV],
            &[0],
            &[-1],
            &[1000],
            &[],
        ] {
            let e = trio::open_signal_receiver(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}: {e}");
        }
        Ok(())
    });
    let e = std::thread::spawn(|| {
        trio::Runner::new()
            .dump_task_tree_on(SIGKILL)
            .run(async { Ok(()) })
    })
    .join()
    .unwrap()
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let outside = trio::open_signal_receiver(&[SIGUSR2]).unwrap_err();
    assert_eq!(outside.kind(), ErrorKind::Usage);
}

// ----- the children's side --------------------------------------------------------

/// Whether signal-hook (or anyone) catches SIGINT in this process now.
fn sigint_caught() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    mask & (1 << (SIGINT - 1)) != 0
}

/// Sleeps for an hour: "until cancelled". (Not `sleep_forever`: a run whose
/// tasks could only be woken by a signal is reported as deadlocked; see the
/// `trio::signal` docs.)
async fn forever() -> trio::Result<()> {
    trio::sleep(3600.0).await
}

/// Prints "ready", then sleeps until cancelled.
async fn ready_then_sleep() -> trio::Result<()> {
    ready().await?;
    forever().await
}

/// Prints "ready" once every task is blocked.
async fn ready() -> trio::Result<()> {
    trio::testing::wait_all_tasks_blocked().await?;
    println!("ready");
    Ok(())
}

#[trio::main]
async fn main_cleanup() -> trio::Result<()> {
    let r = trio::open_nursery(async |n| {
        n.start_soon(async {
            let r = forever().await;
            if r.as_ref().is_err_and(trio::Error::is_cancelled) {
                println!("worker cancelled");
            }
            r
        });
        n.start_soon(async {
            let r = forever().await;
            // Cleanup that must wait: shielded from the cancellation.
            CancelScope::new()
                .with_shield(true)
                .run(trio::sleep(0.05))
                .await?;
            println!("shielded cleanup done");
            r
        });
        ready().await?;
        forever().await
    })
    .await;
    if r.as_ref().is_err_and(trio::Error::is_cancelled) {
        println!("body saw Cancelled");
    }
    r?;
    println!("not reached");
    Ok(())
}

fn run_interrupted() -> ExitCode {
    let e = trio::run(async {
        let r = trio::open_nursery(async |n| {
            n.start_soon(ready());
            forever().await
        })
        .await;
        assert!(r.unwrap_err().is_cancelled());
        println!("body returned Ok");
        Ok(())
    })
    .unwrap_err();
    let signal = trio::signal::Interrupted::of(&e)
        .unwrap_or_else(|| panic!("{e:?}"))
        .signal();
    println!("kind {:?} signal {signal}", e.kind());
    ExitCode::SUCCESS
}

#[trio::main]
async fn blocked_cleanup() -> trio::Result<()> {
    let r = ready_then_sleep().await;
    println!("cleanup blocking");
    CancelScope::new().with_shield(true).run(forever()).await?;
    println!("cleanup finished");
    r
}

fn receiver_then_default() -> ExitCode {
    trio::Runner::new()
        .handle_ctrl_c(false)
        .run(async {
            let signals = trio::open_signal_receiver(&[SIGINT])?;
            println!("ready");
            println!("got {}", signals.recv().await?);
            drop(signals);
            println!("dropped");
            forever().await?;
            println!("not reached");
            Ok(())
        })
        .unwrap();
    ExitCode::SUCCESS
}

#[trio::main]
async fn receiver_over_ctrl_c() -> trio::Result<()> {
    let signals = trio::open_signal_receiver(&[SIGINT])?;
    println!("ready");
    println!("got {}", signals.recv().await?);
    drop(signals);
    println!("dropped");
    let r = forever().await;
    if r.as_ref().is_err_and(trio::Error::is_cancelled) {
        println!("cancelled after drop");
    }
    r
}

fn sleep_with_cleanup(runner: trio::Runner) -> ExitCode {
    let r = runner.run(async {
        let r = ready_then_sleep().await;
        println!("cleanup ran");
        r
    });
    match r {
        Err(e) => match trio::signal::Interrupted::of(&e) {
            Some(i) => i.exit_process(),
            None => panic!("{e}"),
        },
        Ok(()) => ExitCode::SUCCESS,
    }
}

fn dump() -> ExitCode {
    let r = trio::Runner::new().dump_task_tree_on(SIGUSR1).run(async {
        trio::open_nursery(async |n| {
            n.start_soon_named("stuck", forever());
            ready().await?;
            forever().await
        })
        .await
    });
    match r {
        Err(e) => trio::signal::Interrupted::of(&e).unwrap().exit_process(),
        Ok(_) => ExitCode::SUCCESS,
    }
}

fn worker_thread() -> ExitCode {
    std::thread::spawn(|| {
        trio::run(async {
            let r = async {
                trio::testing::wait_all_tasks_blocked().await?;
                println!("sigint caught: {}", sigint_caught());
                println!("ready");
                forever().await
            }
            .await;
            println!("cleanup ran");
            r
        })
    })
    .join()
    .unwrap()
    .unwrap();
    ExitCode::SUCCESS
}

fn ctrl_c_off() -> ExitCode {
    trio::Runner::new()
        .handle_ctrl_c(false)
        .run(async {
            let r = async {
                trio::testing::wait_all_tasks_blocked().await?;
                println!("sigint caught: {}", sigint_caught());
                println!("ready");
                forever().await
            }
            .await;
            println!("cleanup ran");
            r
        })
        .unwrap();
    ExitCode::SUCCESS
}

/// The same program as `examples/ctrl_c.rs`, in short: it interrupts
/// itself.
#[trio::main]
async fn example() -> trio::Result<()> {
    let r = async {
        ready().await?;
        trio::signal::raise(SIGINT)?;
        forever().await
    }
    .await;
    println!("cleanup ran");
    r
}

fn two_runs() -> ExitCode {
    let interrupted = |r: trio::Result<()>| {
        r.is_err_and(|e| trio::signal::Interrupted::of(&e).map(|i| i.signal()) == Some(SIGINT))
    };
    if interrupted(trio::run(ready_then_sleep())) {
        println!("first interrupted");
    }
    if trio::run(async { trio::sleep(0.01).await }).is_ok() {
        println!("second ok");
    }
    if interrupted(trio::run(ready_then_sleep())) {
        println!("third interrupted");
    }
    ExitCode::SUCCESS
}

fn ignored() -> ExitCode {
    trio::run::<_, ()>(async {
        let signals = trio::open_signal_receiver(&[SIGINT])?;
        println!("ready");
        println!("got {}", signals.recv().await?);
        drop(signals);
        println!("dropped");
        // A SIGINT now is ignored; once it has had time to arrive, say so.
        loop {
            trio::sleep(0.2).await?;
            println!("tick");
        }
    })
    .unwrap();
    println!("cleanup ran");
    ExitCode::SUCCESS
}

fn child(scenario: &str) -> ExitCode {
    match scenario {
        "main_cleanup" => main_cleanup(),
        "run_interrupted" => run_interrupted(),
        "blocked_cleanup" => blocked_cleanup(),
        "receiver_then_default" => receiver_then_default(),
        "receiver_over_ctrl_c" => receiver_over_ctrl_c(),
        "sigterm" => sleep_with_cleanup(trio::Runner::new().handle_sigterm(true)),
        "sigterm_off" => sleep_with_cleanup(trio::Runner::new()),
        "dump" => dump(),
        "worker_thread" => worker_thread(),
        "ctrl_c_off" => ctrl_c_off(),
        "example" => example(),
        "two_runs" => two_runs(),
        "ignored" => ignored(),
        other => panic!("unknown scenario {other:?}"),
    }
}

// ----- the runner ------------------------------------------------------------------

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    (
        "ctrl_c_cancels_gracefully_and_main_dies_of_sigint",
        ctrl_c_cancels_gracefully_and_main_dies_of_sigint,
    ),
    ("run_returns_interrupted", run_returns_interrupted),
    (
        "second_sigint_kills_during_cleanup",
        second_sigint_kills_during_cleanup,
    ),
    (
        "dropped_receiver_restores_default_sigint",
        dropped_receiver_restores_default_sigint,
    ),
    (
        "receiver_suspends_ctrl_c_handling",
        receiver_suspends_ctrl_c_handling,
    ),
    (
        "sigterm_option_cancels_gracefully",
        sigterm_option_cancels_gracefully,
    ),
    ("sigterm_default_kills", sigterm_default_kills),
    ("sigusr1_dumps_the_task_tree", sigusr1_dumps_the_task_tree),
    (
        "non_main_thread_run_leaves_sigint_alone",
        non_main_thread_run_leaves_sigint_alone,
    ),
    (
        "ctrl_c_option_off_installs_nothing",
        ctrl_c_option_off_installs_nothing,
    ),
    ("example_ctrl_c_runs", example_ctrl_c_runs),
    (
        "a_later_run_handles_ctrl_c_again",
        a_later_run_handles_ctrl_c_again,
    ),
    ("ignored_sigint_stays_ignored", ignored_sigint_stays_ignored),
    ("concurrent_receive_is_busy", concurrent_receive_is_busy),
    (
        "pending_duplicates_are_merged",
        pending_duplicates_are_merged,
    ),
    (
        "no_signal_lost_between_receives",
        no_signal_lost_between_receives,
    ),
    (
        "every_receiver_gets_the_signal",
        every_receiver_gets_the_signal,
    ),
    ("receiver_is_a_stream", receiver_is_a_stream),
    (
        "forbidden_signals_are_invalid_arguments",
        forbidden_signals_are_invalid_arguments,
    ),
];

fn main() -> ExitCode {
    if let Ok(scenario) = std::env::var(SCENARIO) {
        return child(&scenario);
    }
    // Like libtest: positional arguments filter by substring; flags are
    // ignored.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = Vec::new();
    let mut ran = 0;
    for &(name, test) in TESTS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        match catch_unwind(AssertUnwindSafe(test)) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
