//! No zombies, process-wide: after every kind of process work — waited,
//! run to completion, failed, cancelled (with and without a process
//! group), dropped unwaited — in both wait modes, this process has no child
//! left, running or zombie. And std's own waits in another thread keep
//! working meanwhile (nothing here reaps children it did not spawn: no
//! `waitpid(-1)`). `harness = false`: the default harness runs tests in
//! parallel threads, whose children would blur the count.

use std::process::{Command, Stdio};
use std::time::Duration;
use trio::process::{RunOptions, WaitMode, run_process, run_process_started, set_wait_mode};
use trio::testing::{MockClock, TestOptions, run_test};

/// The pids whose parent is this process (from `/proc/*/stat`), with their
/// state letter.
fn our_children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // Threads of this process are listed under /proc/self/task, not
        // here; every entry here is a process.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut fields = stat[close + 2..].split(' ');
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == me {
            found.push((pid, state));
        }
    }
    found
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

async fn exercise(mode: WaitMode) -> trio::Result<()> {
    set_wait_mode(mode)?;
    // Waited.
    let p = trio::open_process(Command::new("true"))?;
    p.wait().await?;
    // Run, captured, failed.
    run_process(sh("echo hi"), RunOptions::new().capture_stdout()).await?;
    let _ = run_process(Command::new("false"), RunOptions::new()).await;
    // Cancelled, plain and as a group with a grandchild ignoring SIGTERM
    // (only the group option takes that one down: without it, it would
    // outlive the test).
    for (group, script) in [
        (false, "exec sleep 100"),
        (true, "(trap '' TERM; exec sleep 100) & wait"),
    ] {
        trio::open_nursery(async |n| {
            n.start(|s| run_process_started(s, sh(script), RunOptions::new().process_group(group)))
                .await?;
            n.cancel_scope().cancel();
            Ok(())
        })
        .await?;
    }
    // Dropped unwaited, after it exited: reaped at the next spawn.
    let mut cmd = Command::new("cat");
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let p = trio::open_process(cmd)?;
    p.stdin.as_ref().unwrap().send_all_and_close().await?;
    p.wait_exited().await?;
    drop(p);
    let p = trio::open_process(Command::new("true"))?;
    p.wait().await?;
    Ok(())
}

/// `aclose` after sending, as one call.
trait SendAllAndClose {
    async fn send_all_and_close(&self) -> trio::Result<()>;
}

impl SendAllAndClose for trio::process::ProcessStdin {
    async fn send_all_and_close(&self) -> trio::Result<()> {
        use trio::stream::{AsyncResource, SendStream};
        self.send_all(b"x").await?;
        self.aclose().await
    }
}

fn main() {
    // std waits for its own children in another thread throughout (one
    // `Command::status` after another): if anything here reaped them, it
    // would fail with ECHILD.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let std_waits = std::thread::spawn(move || {
        let mut n = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let s = Command::new("true").status().expect("std's wait");
            assert!(s.success());
            n += 1;
        }
        n
    });

    for mode in [WaitMode::Pidfd, WaitMode::Sigchld] {
        // The grace period needs virtual time (the group case waits it
        // out): autojump.
        run_test(
            TestOptions::new().clock(MockClock::autojump()),
            exercise(mode),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let std_runs = std_waits.join().unwrap();
    assert!(std_runs > 0);

    // Orphaned grandchildren are reparented away from us, so any child
    // left is ours to blame. (Give a just-killed one a moment to be marked.)
    let mut left = our_children();
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        left = our_children();
    }
    assert!(left.is_empty(), "children left behind: {left:?}");
    println!("process_zombies: ok ({std_runs} std waits alongside, no child left)");
}
