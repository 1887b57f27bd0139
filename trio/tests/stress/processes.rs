//! Child processes under random cancellation (feature `processes`): pipes
//! as streams, `run_process`, waits and signals, in both wait modes.
//!
//! Spawning costs about a millisecond, so a seed with the feature runs
//! this part only with probability 30%, and then one or two sessions of
//! one child each, in a wait mode drawn per seed
//! (`process::set_wait_mode`: pidfd or SIGCHLD).
//!
//! # Sessions and checks
//!
//! - **Pipes**: `cat` (or `sh -c 'cat; exit 3'`) with stdin and stdout
//!   piped. A writer sends a random prefix of up to 300 KB (more than a
//!   pipe buffer, so both directions must run at once) in random pieces
//!   with `send_all` inside the workload's random scopes, then closes
//!   stdin; a reader drains stdout with `receive_some` of random sizes,
//!   also in random scopes; sometimes a killer sends SIGKILL or SIGTERM.
//!   Every byte read must equal the byte sent at that offset (a cancelled
//!   receive consumed nothing); at end of stream the count must lie within
//!   what the completed sends report and the tail of the one `send_all`
//!   that was cut (after which the writer stops), unless the child was
//!   killed (then only the content check). `wait`, retried after random
//!   cancellations (a cancelled wait has no effect), must give the
//!   expected exit code, or the signal sent if the child was still
//!   running.
//! - **`run_process`** with stdin bytes, captured stdout and stderr,
//!   `check` on or off, a random grace period, sometimes its own process
//!   group, sometimes a child that ignores SIGTERM, inside random scopes:
//!   if it returns, stdout must be the input, stderr `"err\n"`, and the
//!   exit code the scripted one (a `ProcessError` with that code and
//!   output under `check`); if cancelled, no child of ours with the
//!   session's marker may remain.
//! - **`run_process_started`** under `nursery.start` (the handle gives the
//!   pid) for a child that runs until cancelled, which a random scope or
//!   the nursery's cancellation does.
//! - **Signals**: `sleep 1000`; random waits cut by scopes leave it
//!   running (`poll` is `None`); then `kill`, `terminate` or
//!   `send_signal(SIGINT)`, and `wait` gives exactly that signal.
//!
//! After every session the child must be gone, checked by pid:
//! `/proc/PID` absent, or no longer our child (the pid was reused). A
//! session cut short by an outer cancellation kills and reaps its child in
//! a shielded cleanup (SIGKILL always ends it, so that shield needs no
//! deadline).

use super::counters::C;
use super::ops::{BoxFut, in_random_scopes};
use super::prng::Rng;
use super::world::World;
use std::cell::Cell;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use trio::process::{
    Process, ProcessError, ProcessStdin, ProcessStdout, RunOptions, WaitMode, open_process,
    run_process, run_process_started, set_wait_mode,
};
use trio::stream::{AsyncResource, ReceiveStream, SendStream};
use trio::{CancelScope, Result};

/// Whether `pid` is still a child of this process (running or a zombie).
fn still_our_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) state ppid …"; comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
    ppid == Some(std::process::id())
}

/// Pids of our children whose command line contains `marker`.
fn children_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && cmdline
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
            && still_our_child(pid)
        {
            found.push(pid);
        }
    }
    found
}

fn check_gone(w: &World, what: &str, pid: u32) {
    if still_our_child(pid) {
        w.violation(format!(
            "{what}: child {pid} is still our child (running or a zombie) after its session"
        ));
    } else {
        w.bump(C::proc_reaped_checked);
    }
}

/// A marker unique in this process, for finding a child by command line.
fn marker() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "trio-stress-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Kills and reaps `p` if it has not been reaped; shielded, since it runs
/// after cancellations too.
async fn reap(w: &World, what: &str, p: &Process) {
    let scope = CancelScope::new();
    scope.set_shield(true);
    let r = scope
        .run(async {
            if p.poll()?.is_none() {
                p.kill()?;
            }
            p.wait().await
        })
        .await;
    if let Err(e) = r {
        w.violation(format!("{what}: killing and reaping the child: {e:?}"));
    }
}

pub async fn driver(w: &World, mut rng: Rng) -> Result<()> {
    if !rng.chance(30) {
        return Ok(());
    }
    let mode = if rng.chance(50) {
        WaitMode::Pidfd
    } else {
        WaitMode::Sigchld
    };
    if let Err(e) = set_wait_mode(mode) {
        w.violation(format!("set_wait_mode({mode:?}): {e:?}"));
    }
    trio::sleep(rng.secs(5.0)).await?;
    for _ in 0..rng.range(1, 2) {
        trio::lowlevel::checkpoint_if_cancelled().await?;
        let r = rng.fork();
        match rng.below(4) {
            0 => pipes(w, r).await?,
            1 => run_checked(w, r).await?,
            2 => run_started(w, r).await?,
            _ => signals(w, r).await?,
        }
    }
    Ok(())
}

// ----- pipes ------------------------------------------------------------------------

fn letters(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
}

async fn pipes(w: &World, mut rng: Rng) -> Result<()> {
    let what = "cat through pipes";
    let code = if rng.chance(50) { 0 } else { 3 };
    let mut cmd = if code == 0 {
        Command::new("cat")
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", "cat; exit 3"]);
        c
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let p = match open_process(cmd) {
        Ok(p) => p,
        Err(e) => {
            w.violation(format!("{what}: open_process: {e:?}"));
            return Ok(());
        }
    };
    w.bump(C::proc_pipe_sessions);
    let pid = p.pid();
    let len = match rng.below(3) {
        0 => rng.below(100),
        1 => rng.range(100, 20_000),
        _ => rng.range(20_000, 300_000),
    } as usize;
    let data = letters(&mut rng, len);
    let st = PipeState {
        data: &data,
        sent: Cell::new(0),
        uncertain: Cell::new(0),
        writer_done: Cell::new(false),
        killed: Cell::new(None),
        received: Cell::new(0),
        reader_stopped: Cell::new(false),
    };
    let st = &st;
    let r = trio::open_nursery(async |n| {
        let (stdin, stdout) = (p.stdin.as_ref(), p.stdout.as_ref());
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            w.violation(format!("{what}: piped stdio missing"));
            return Ok(());
        };
        let mut wr = rng.fork();
        n.start_soon(async move {
            let r = write_all(w, what, stdin, st, &mut wr).await;
            let _ = stdin.aclose().await;
            r
        });
        let mut rr = rng.fork();
        n.start_soon(async move {
            let r = read_all(w, what, stdout, st, &mut rr).await;
            // Stopped (maybe early): close, so that the child and the
            // writer stop too.
            st.reader_stopped.set(true);
            let _ = stdout.aclose().await;
            r
        });
        if rng.chance(20) {
            let mut kr = rng.fork();
            let p = &p;
            n.start_soon(async move {
                trio::sleep(kr.secs(2.0)).await?;
                let sig = if kr.chance(50) {
                    libc::SIGKILL
                } else {
                    libc::SIGTERM
                };
                st.killed.set(Some(sig));
                let r = if sig == libc::SIGKILL {
                    p.kill()
                } else {
                    p.terminate()
                };
                if let Err(e) = r {
                    w.violation(format!("{what}: signalling the child: {e:?}"));
                }
                Ok(())
            });
        }
        Ok(())
    })
    .await;
    let killed = st.killed.get();
    // Cancelled from outside: clean up, then pass it on.
    let outcome = match r {
        Ok(_) => wait_for(w, what, &p, code, killed, &mut rng).await,
        Err(e) => Err(e),
    };
    if let Some(out) = &p.stdout {
        let _ = out.aclose().await;
    }
    reap(w, what, &p).await;
    check_gone(w, what, pid);
    outcome
}

/// What the writer, reader and killer of a pipe session share.
struct PipeState<'d> {
    data: &'d [u8],
    /// Bytes that completed sends report.
    sent: Cell<usize>,
    /// The length of the one cut `send_all` (any prefix may have gone).
    uncertain: Cell<usize>,
    writer_done: Cell<bool>,
    killed: Cell<Option<i32>>,
    received: Cell<usize>,
    reader_stopped: Cell<bool>,
}

/// Sends the data in random pieces, each `send_all` in random scopes; a
/// cut one ends the writing.
async fn write_all(
    w: &World,
    what: &str,
    stdin: &ProcessStdin,
    st: &PipeState<'_>,
    wr: &mut Rng,
) -> Result<()> {
    let data = st.data;
    while st.sent.get() < data.len() {
        let start = st.sent.get();
        let end = (start + wr.range(1, 70_000) as usize).min(data.len());
        let ok = Cell::new(None);
        let fut: BoxFut<'_> = Box::pin(async {
            let r = stdin.send_all(&data[start..end]).await;
            match r {
                Ok(()) => ok.set(Some(Ok(()))),
                Err(e) if e.is_cancelled() => return Err(e),
                Err(e) => ok.set(Some(Err(e))),
            }
            Ok(())
        });
        let r = in_random_scopes(w, wr, fut).await;
        let ok = ok.into_inner();
        if let Some(Ok(())) = ok {
            st.sent.set(end);
            continue;
        }
        // Cut or failed: any prefix may have gone.
        st.uncertain.set(end - start);
        if let Some(Err(e)) = ok
            && st.killed.get().is_none()
            && !st.reader_stopped.get()
        {
            w.violation(format!(
                "{what}: send_all failed with the child running: {e:?}"
            ));
        }
        r?;
        break;
    }
    st.writer_done.set(true);
    Ok(())
}

/// Drains stdout with random reads, checking every byte.
async fn read_all(
    w: &World,
    what: &str,
    stdout: &ProcessStdout,
    st: &PipeState<'_>,
    rr: &mut Rng,
) -> Result<()> {
    let data = st.data;
    for _ in 0..2000 {
        let size = [1, 100, 4096, 65536, 200_000][rr.below(5) as usize];
        let mut buf = vec![0; size];
        let got = Cell::new(None);
        let fut: BoxFut<'_> = Box::pin(async {
            match stdout.receive_some(&mut buf).await {
                Ok(k) => {
                    got.set(Some(k));
                    Ok(())
                }
                Err(e) if e.is_cancelled() => Err(e),
                Err(e) => {
                    w.violation(format!("{what}: receive_some: {e:?}"));
                    got.set(Some(0));
                    Ok(())
                }
            }
        });
        in_random_scopes(w, rr, fut).await?;
        let Some(k) = got.get() else { continue };
        let at = st.received.get();
        if k == 0 {
            let killed = st.killed.get().is_some();
            let hi = st.sent.get() + st.uncertain.get();
            let lo = if killed { 0 } else { st.sent.get() };
            if !st.writer_done.get() && !killed && st.uncertain.get() == 0 {
                w.violation(format!(
                    "{what}: end of stream after {at} bytes while the writer still sends"
                ));
            } else if at < lo || at > hi {
                w.violation(format!(
                    "{what}: end of stream after {at} bytes; the sends account for {lo}..={hi}"
                ));
            }
            return Ok(());
        }
        if data.get(at..at + k) != Some(&buf[..k]) {
            w.violation(format!(
                "{what}: {k} bytes read at offset {at} differ from what was sent"
            ));
            return Ok(());
        }
        st.received.set(at + k);
        w.counts.add(C::proc_bytes_checked, k as u64);
    }
    Ok(())
}

/// Waits for the child (retrying after random cuts) and checks its
/// status: `code`, or the signal `killed` if it was still running.
async fn wait_for(
    w: &World,
    what: &str,
    p: &Process,
    code: i32,
    killed: Option<i32>,
    rng: &mut Rng,
) -> Result<()> {
    for _ in 0..5 {
        let status = Cell::new(None::<ExitStatus>);
        let fut: BoxFut<'_> = Box::pin(async {
            match p.wait().await {
                Ok(s) => status.set(Some(s)),
                Err(e) if e.is_cancelled() => return Err(e),
                Err(e) => w.violation(format!("{what}: wait: {e:?}")),
            }
            Ok(())
        });
        in_random_scopes(w, rng, fut).await?;
        let Some(s) = status.get() else {
            // Cut: had no effect, the next wait still gets the status.
            continue;
        };
        let ok = s.code() == Some(code)
            || killed.is_some() && s.signal() == killed
            // SIGPIPE when the reader stopped early, or a killed sh's cat.
            || s.signal() == Some(libc::SIGPIPE);
        if !ok {
            w.violation(format!(
                "{what}: exit status {s:?}, expected code {code} or signal {killed:?}"
            ));
        } else if s.signal().is_some() && s.signal() == killed {
            w.bump(C::proc_signalled);
        }
        return Ok(());
    }
    Ok(())
}

// ----- run_process ------------------------------------------------------------------

async fn run_checked(w: &World, mut rng: Rng) -> Result<()> {
    let what = "run_process";
    let mark = marker();
    let code = rng.below(3) as i32;
    let ignore_term = rng.chance(20);
    let script = format!(
        "{}cat; echo err >&2; exit {code}",
        if ignore_term { "trap '' TERM; " } else { "" }
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script, &mark]);
    let input = {
        let n = match rng.below(3) {
            0 => rng.below(50),
            1 => rng.range(50, 10_000),
            _ => rng.range(10_000, 200_000),
        } as usize;
        letters(&mut rng, n)
    };
    let check = rng.chance(50);
    let options = RunOptions::new()
        .stdin(input.clone())
        .capture_stdout()
        .capture_stderr()
        .check(check)
        .grace_period(Duration::from_millis(rng.below(2000)))
        .process_group(rng.chance(30));
    let done = Cell::new(false);
    let fut: BoxFut<'_> = Box::pin(async {
        let r = run_process(cmd, options).await;
        done.set(true);
        match r {
            Ok(c) => {
                if check && code != 0 {
                    w.violation(format!("{what}: exit {code} under check returned Ok"));
                }
                if c.stdout != input || c.stderr != b"err\n" || c.status.code() != Some(code) {
                    w.violation(format!(
                        "{what}: got {} bytes of stdout (input {}), stderr {:?}, status {:?}; expected exit {code}",
                        c.stdout.len(),
                        input.len(),
                        String::from_utf8_lossy(&c.stderr),
                        c.status
                    ));
                }
                check_gone(w, what, c.pid);
                w.bump(C::proc_runs_ok);
            }
            Err(e) if e.is_cancelled() => return Err(e),
            Err(e) => match e.downcast_ref::<ProcessError>() {
                Some(pe)
                    if check
                        && code != 0
                        && pe.status.code() == Some(code)
                        && pe.stdout == input
                        && pe.stderr == b"err\n" =>
                {
                    w.bump(C::proc_runs_ok);
                }
                _ => w.violation(format!("{what}: unexpected error {e:?}")),
            },
        }
        Ok(())
    });
    // Half of them without scopes (on the autojump clock, a scope around
    // a wait for a child nearly always expires first).
    let fut = if rng.chance(50) {
        in_random_scopes(w, &mut rng, fut)
    } else {
        fut
    };
    let r = fut.await;
    if !done.get() || r.is_err() {
        w.bump(C::proc_runs_cancelled);
    }
    for pid in children_with(&mark) {
        w.violation(format!(
            "{what}: child {pid} ({mark}) is still our child after run_process returned"
        ));
    }
    r
}

/// `run_process_started` for a child that runs until cancelled.
async fn run_started(w: &World, mut rng: Rng) -> Result<()> {
    let what = "run_process_started";
    let mut cmd = Command::new("sh");
    let script = if rng.chance(30) {
        "trap '' TERM; exec sleep 1000"
    } else {
        "exec sleep 1000"
    };
    cmd.args(["-c", script]);
    let options = RunOptions::new()
        .grace_period(Duration::from_millis(rng.below(3000)))
        .process_group(rng.chance(50));
    let pid = Cell::new(None);
    let scope = CancelScope::new();
    let r = trio::open_nursery(async |n| {
        let p = match n
            .start(|status| run_process_started(status, cmd, options))
            .await
        {
            Ok(p) => p,
            Err(e) if e.is_cancelled() => return Err(e),
            Err(e) => {
                w.violation(format!("{what}: {e:?}"));
                return Ok(());
            }
        };
        pid.set(Some(p.pid()));
        trio::sleep(rng.secs(2.0)).await?;
        n.cancel_scope().cancel();
        Ok(())
    });
    let r = scope.run(r).await;
    if let Some(pid) = pid.get() {
        w.bump(C::proc_runs_cancelled);
        check_gone(w, what, pid);
    }
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_cancelled() => Err(e),
        Err(e) => {
            w.violation(format!("{what}: the nursery failed: {e:?}"));
            Ok(())
        }
    }
}

// ----- signals ----------------------------------------------------------------------

async fn signals(w: &World, mut rng: Rng) -> Result<()> {
    let what = "signals";
    let mut cmd = Command::new("sleep");
    cmd.arg("1000");
    let p = match open_process(cmd) {
        Ok(p) => p,
        Err(e) => {
            w.violation(format!("{what}: open_process: {e:?}"));
            return Ok(());
        }
    };
    let pid = p.pid();
    let outcome = async {
        for _ in 0..rng.range(0, 2) {
            // A wait cut by a deadline: no effect.
            let r = trio::move_on_after(rng.secs(1.0), p.wait()).await?;
            if let Some(s) = r {
                w.violation(format!("{what}: sleep 1000 exited by itself: {s:?}"));
            }
            if !matches!(p.poll(), Ok(None)) {
                w.violation(format!(
                    "{what}: a cancelled wait left poll() = {:?}",
                    p.poll()
                ));
            }
        }
        let sig = [libc::SIGKILL, libc::SIGTERM, libc::SIGINT][rng.below(3) as usize];
        let r = match sig {
            libc::SIGKILL => p.kill(),
            libc::SIGTERM => p.terminate(),
            _ => p.send_signal(sig),
        };
        if let Err(e) = r {
            w.violation(format!("{what}: sending signal {sig}: {e:?}"));
        }
        let s = p.wait().await?;
        if s.signal() != Some(sig) {
            w.violation(format!("{what}: after signal {sig} the status is {s:?}"));
        } else {
            w.bump(C::proc_signalled);
        }
        if !matches!(p.poll(), Ok(Some(t)) if t == s) {
            w.violation(format!("{what}: poll() after wait is {:?}", p.poll()));
        }
        Ok(())
    }
    .await;
    reap(w, what, &p).await;
    check_gone(w, what, pid);
    outcome
}
