//! The nursery of runs (`trio::run_per_core`, `trio::PerCore`), deadlock
//! detection per run beside cross-run waits between sibling runs, and
//! serving one port from several runs with `SO_REUSEPORT`
//! (`harness = false`).
//!
//! Why no test harness: Ctrl-C is owned by a run on the *main thread* only,
//! and libtest runs every test on a thread of its own. So, as in
//! `tests/signals.rs`, this binary is both the runner and the program under
//! test: run plainly, it runs the tests below on its main thread, one at a
//! time; the Ctrl-C test starts *itself* again with
//! `TRIO_PER_CORE_SCENARIO=<name>`, and the child runs the scenario on its
//! main thread and prints markers that the test reads. Positional arguments
//! filter the tests by substring, as libtest's do.
//!
//! Each run of a nursery of runs is on its own thread, so waits across runs
//! use the real clock (each run has its own clock; a MockClock per run
//! would let a "sleep for an hour" finish at once instead of waiting for a
//! sibling's cancel). The long sleeps below (an hour) only stand for
//! "until cancelled"; the limits on child processes only turn a hang into
//! a failure. No assertion depends on timing.

use std::io::{BufRead, BufReader, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use trio::cross_run::open_cross_run_channel;
use trio::net::TcpListenOptions;
use trio::socket::{Domain, SockAddr, Socket, SocketStream, Type};
use trio::stream::{ReceiveStream, SendStream};
use trio::{CancelHandle, CancelScope, Error, ErrorKind, PerCore};

const SCENARIO: &str = "TRIO_PER_CORE_SCENARIO";
/// How long a child may take to print a marker or to exit before the test
/// calls it hung.
const LIMIT: Duration = Duration::from_secs(30);
/// "Until cancelled", in seconds.
const AN_HOUR: f64 = 3600.0;

// ----- results, arguments, nesting -------------------------------------------------

fn results_come_in_core_order() {
    let got = trio::run_per_core(4, |core| async move {
        // Later cores finish first: the order is the cores', not the finish's.
        trio::sleep(0.001 * (4 - core.index()) as f64).await?;
        Ok(format!("{}/{}", core.index(), core.count()))
    })
    .unwrap();
    assert_eq!(got, ["0/4", "1/4", "2/4", "3/4"]);
}

/// Each run is its own `trio::run`, with its own thread: run-local `Rc`
/// state, no `Send` on the future.
fn each_run_is_a_run_on_a_thread_of_its_own() {
    let threads = trio::run_per_core(3, |_core| async {
        let local = std::rc::Rc::new(std::cell::Cell::new(0));
        trio::open_nursery(async |n| {
            for _ in 0..2 {
                let local = local.clone();
                n.start_soon(async move {
                    trio::checkpoint().await?;
                    local.set(local.get() + 1);
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        assert_eq!(local.get(), 2);
        Ok(std::thread::current().id())
    })
    .unwrap();
    assert_ne!(threads[0], threads[1]);
    assert_ne!(threads[1], threads[2]);
    assert_ne!(threads[0], threads[2]);
    assert!(!threads.contains(&std::thread::current().id()));
}

fn zero_runs_is_an_invalid_argument() {
    let e = trio::run_per_core(0, |_| async { Ok(()) }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// More runs than cores is allowed: they share the cores.
fn more_runs_than_cores_is_allowed() {
    let n = trio::available_cores() * 2 + 1;
    let got = trio::run_per_core(n, |core| async move { Ok(core.index()) }).unwrap();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

fn nested_use_is_a_usage_error() {
    // Inside a run: the call would block that run.
    let e = trio::run(async {
        let e = trio::run_per_core(1, |_| async { Ok(()) }).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        Ok(())
    });
    e.unwrap();
    // Inside one of its own runs: that run fails with the Usage error.
    let e = trio::run_per_core(2, |core| async move {
        if core.index() == 1 {
            trio::run_per_core(1, |_| async { Ok(()) })?;
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage, "{e}");
}

/// Each run gets the `Runner` the factory makes, on its own thread: here a
/// MockClock with autojump, so an hour of virtual time passes at once.
fn a_runner_per_run() {
    let ends = PerCore::new(2)
        .runner(|_| trio::Runner::new().clock(trio::testing::MockClock::autojump()))
        .run(|_| async {
            trio::sleep(AN_HOUR).await?;
            Ok(trio::current_time().as_secs_f64())
        })
        .unwrap();
    assert_eq!(ends, [AN_HOUR, AN_HOUR]);
}

fn pinned_runs_get_a_cpu_each() {
    // Each run also reports how many CPUs its thread may use (Linux's
    // `available_parallelism` follows the affinity mask): 1 once pinned.
    let cpus = PerCore::new(2)
        .pin_threads(true)
        .run(|core| async move {
            let allowed = std::thread::available_parallelism().map_or(0, |n| n.get());
            Ok((core.cpu(), allowed))
        })
        .unwrap();
    assert!(cpus.iter().all(|&(_, allowed)| allowed == 1), "{cpus:?}");
    let cpus: Vec<_> = cpus.into_iter().map(|(cpu, _)| cpu).collect();
    assert!(cpus.iter().all(Option::is_some), "{cpus:?}");
    if trio::available_cores() >= 2 {
        assert_ne!(cpus[0], cpus[1]);
    }
    let unpinned = trio::run_per_core(1, |core| async move { Ok(core.cpu()) }).unwrap();
    assert_eq!(unpinned, [None]);
}

// ----- failures and panics ---------------------------------------------------------

/// Run 0 fails after its first checkpoint; the others are in a long
/// sleep, get `Cancelled` there, and the call reports run 0's error alone
/// (the siblings' `Cancelled` is the nursery's own, removed).
fn a_failing_run_cancels_its_siblings() {
    let saw_cancelled = AtomicUsize::new(0);
    let e = trio::run_per_core(3, |core| {
        let saw_cancelled = &saw_cancelled;
        async move {
            if core.index() == 0 {
                trio::checkpoint().await?;
                return Err(Error::new(ErrorKind::Busy, "run 0 fails"));
            }
            let r = trio::sleep(AN_HOUR).await;
            if r.as_ref().is_err_and(Error::is_cancelled) {
                saw_cancelled.fetch_add(1, Ordering::SeqCst);
            }
            r
        }
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert_eq!(e.to_string(), "run 0 fails");
    assert_eq!(saw_cancelled.load(Ordering::SeqCst), 2);
}

/// A run that registers after a sibling failed cancels itself at once:
/// run 1's `Runner` is made only after a pause (real time, only to make
/// that order likely; in the other order run 1 is cancelled by the
/// failure instead), and its first checkpoint sees `Cancelled` either way.
fn a_run_that_starts_after_a_failure_is_cancelled_at_once() {
    let saw_cancelled = AtomicUsize::new(0);
    let e = PerCore::new(2)
        .runner(|core| {
            if core.index() == 1 {
                std::thread::sleep(Duration::from_millis(50));
            }
            trio::Runner::new()
        })
        .run(|core| {
            let saw_cancelled = &saw_cancelled;
            async move {
                if core.index() == 0 {
                    return Err(Error::new(ErrorKind::Busy, "run 0 fails at once"));
                }
                let r = trio::sleep(AN_HOUR).await;
                if r.as_ref().is_err_and(Error::is_cancelled) {
                    saw_cancelled.fetch_add(1, Ordering::SeqCst);
                }
                r
            }
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert_eq!(saw_cancelled.load(Ordering::SeqCst), 1);
}

/// Two runs fail (neither reaches a checkpoint, so neither can be
/// cancelled first): both failures are in the group, in core order.
fn every_failure_is_reported() {
    let e = trio::run_per_core(3, |core| async move {
        match core.index() {
            0 => Err(Error::new(ErrorKind::Busy, "a")),
            1 => Ok(()),
            _ => Err(Error::new(ErrorKind::Broken, "b")),
        }
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Group);
    let leaves: Vec<_> = e.leaves().map(|l| (l.kind(), l.to_string())).collect();
    assert_eq!(
        leaves,
        [
            (ErrorKind::Busy, "a".to_string()),
            (ErrorKind::Broken, "b".to_string())
        ]
    );
}

/// A cancelled run that fails in its cleanup reports that failure (and
/// not its `Cancelled`).
fn a_failure_during_cleanup_is_reported_too() {
    let e = trio::run_per_core(2, |core| async move {
        if core.index() == 0 {
            trio::checkpoint().await?;
            return Err(Error::new(ErrorKind::Busy, "first"));
        }
        let _ = trio::sleep(AN_HOUR).await; // cancelled
        Err::<(), _>(Error::new(ErrorKind::Broken, "cleanup failed"))
    })
    .unwrap_err();
    let mut kinds: Vec<_> = e.leaves().map(Error::kind).collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(kinds, [ErrorKind::Broken, ErrorKind::Busy]);
}

/// Run 1 panics; the others are cancelled, run their cleanup (shielded,
/// so it takes a while), and only then does the panic resume in the
/// caller, with its payload.
fn a_panic_resumes_in_the_caller_after_the_others_finished() {
    let cleaned_up = AtomicUsize::new(0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        trio::run_per_core(3, |core| {
            let cleaned_up = &cleaned_up;
            async move {
                if core.index() == 1 {
                    trio::checkpoint().await?;
                    std::panic::panic_any("run 1 panics");
                }
                let r = trio::sleep(AN_HOUR).await;
                CancelScope::new()
                    .with_shield(true)
                    .run(trio::sleep(0.05))
                    .await?;
                cleaned_up.fetch_add(1, Ordering::SeqCst);
                r
            }
        })
    }));
    let payload = r.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"run 1 panics"));
    assert_eq!(cleaned_up.load(Ordering::SeqCst), 2);
}

/// Run 0 is blocked forever with nothing that could wake it: its own
/// deadlock detection reports it, as run 0's failure, and that cancels run
/// 1 (which had a deadline, so it was never deadlocked).
fn a_deadlocked_run_fails_and_cancels_its_siblings() {
    let e = trio::run_per_core(2, |core| async move {
        match core.index() {
            0 => trio::sleep_forever().await,
            _ => trio::sleep(AN_HOUR).await,
        }
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deadlock, "{e}");
}

// ----- deadlock detection across sibling runs ---------------------------------------

/// Polls (real clock) until `cond` holds: for a sibling run to get
/// somewhere. The sleeping run has a deadline meanwhile, so it is never
/// itself a deadlock candidate while it waits.
async fn until(cond: impl Fn() -> bool) -> trio::Result<()> {
    while !cond() {
        trio::sleep(0.001).await?;
    }
    Ok(())
}

/// A few real milliseconds more during which the blocked sibling stays
/// blocked with nothing of its own that could wake it: seeing its wait
/// queued says it is about to block, and this pause makes it all but sure
/// that its loop has got there and checked for a deadlock (which would
/// wrongly fire) before the wake-up comes. Not a timing assertion: the
/// expected outcome is the same whatever the pause.
const SIT_BLOCKED: f64 = 0.005;

/// Two runs of one nursery of runs are blocked at the same time, each with
/// its only task waiting on a cross-run primitive whose other end a
/// sibling holds: run 0 receives on a channel whose sender run 1 holds;
/// run 1 waits on a cross-run `Event` that run 2 sets once it has seen
/// both blocked (and a few real ms later). Neither blocked run is reported
/// as a deadlock: run 1 sends, run 0 gets the value, all finish `Ok`.
fn no_false_deadlock_while_sibling_runs_wait_on_each_other() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let go = trio::cross_run::Event::new();
    let got = trio::run_per_core(3, |core| {
        let (tx, rx, go) = (&tx, &rx, &go);
        async move {
            match core.index() {
                0 => rx.receive().await, // this run's only task, blocked
                1 => {
                    go.wait().await?; // this run's only task, blocked
                    tx.send(7).await?;
                    Ok(1)
                }
                _ => {
                    until(|| tx.statistics().tasks_waiting_receive == 1 && go.waiting() == 1)
                        .await?;
                    trio::sleep(SIT_BLOCKED).await?;
                    go.set();
                    Ok(2)
                }
            }
        }
    })
    .unwrap_or_else(|e| panic!("no run may fail: {e}"));
    assert_eq!(got, [7, 1, 2]);
    assert_eq!(rx.statistics().tasks_waiting_receive, 0);
}

/// A rendezvous (capacity 0) send from run 1 to run 0, which receives
/// late: run 1's only task is blocked in the send, with nothing in its own
/// run that could end it, until run 0 (having seen it blocked, and a few
/// real ms later) receives. No deadlock is reported; the send completes
/// only with the receive.
fn a_rendezvous_send_waits_for_a_sibling_that_receives_late() {
    let (tx, rx) = open_cross_run_channel::<&'static str>(0);
    let sent = AtomicBool::new(false);
    let got = trio::run_per_core(2, |core| {
        let (tx, rx, sent) = (&tx, &rx, &sent);
        async move {
            if core.index() == 1 {
                tx.send("late").await?;
                sent.store(true, Ordering::SeqCst);
                return Ok((None, true));
            }
            until(|| rx.statistics().tasks_waiting_send == 1).await?;
            trio::sleep(SIT_BLOCKED).await?;
            let sent_before = sent.load(Ordering::SeqCst);
            Ok((Some(rx.receive().await?), sent_before))
        }
    })
    .unwrap_or_else(|e| panic!("no run may fail: {e}"));
    assert_eq!(got, [(Some("late"), false), (None, true)]);
    assert!(sent.load(Ordering::SeqCst));
}

/// A run blocked on cross-run channels whose other ends all go away (held
/// by a sibling run, which drops one and ends with the other) is woken
/// with the channel's errors, as documented, not left hanging and not
/// reported as a deadlock: its receive gets `EndOfChannel`, its send
/// `Broken` with the value handed back.
fn a_run_whose_sibling_drops_the_other_ends_gets_the_channel_errors() {
    let (tx_a, rx_a) = open_cross_run_channel::<u32>(0);
    let (tx_b, rx_b) = open_cross_run_channel::<String>(0);
    // Run 1 takes the only sender of `a` and the only receiver of `b`.
    let peer_ends = Mutex::new(Some((tx_a, rx_b)));
    let got = trio::run_per_core(2, |core| {
        let (rx_a, tx_b, peer_ends) = (&rx_a, &tx_b, &peer_ends);
        async move {
            if core.index() == 1 {
                let (tx_a, rx_b) = peer_ends.lock().unwrap().take().unwrap();
                until(|| {
                    tx_a.statistics().tasks_waiting_receive == 1
                        && rx_b.statistics().tasks_waiting_send == 1
                })
                .await?;
                trio::sleep(SIT_BLOCKED).await?;
                drop(tx_a); // the last sender: the receive ends
                return Ok(Vec::new()); // the run ends: `rx_b` is dropped
            }
            let outcomes = std::cell::RefCell::new(Vec::new());
            trio::open_nursery(async |n| {
                let outcomes = &outcomes;
                n.start_soon(async move {
                    let e = rx_a.receive().await.unwrap_err();
                    outcomes.borrow_mut().push((e.kind(), None));
                });
                n.start_soon(async move {
                    let e = tx_b.send("back".to_string()).await.unwrap_err();
                    outcomes.borrow_mut().push((e.kind(), Some(e.into_inner())));
                });
                Ok(())
            })
            .await?;
            let mut outcomes = outcomes.into_inner();
            outcomes.sort_by_key(|(kind, _)| format!("{kind:?}"));
            Ok(outcomes)
        }
    })
    .unwrap_or_else(|e| panic!("no run may fail: {e}"));
    assert_eq!(
        got,
        [
            vec![
                (ErrorKind::Broken, Some("back".to_string())),
                (ErrorKind::EndOfChannel, None),
            ],
            vec![],
        ]
    );
}

/// The positive case beside a cross-run wait: run 0 is really deadlocked
/// (its only task waits on a run-local `trio::sync::Event` nobody can set)
/// while run 1 is blocked receiving on a cross-run channel (which counts
/// as outside hope, so run 1 is never reported itself). Run 0's deadlock
/// is reported, and it cancels run 1 in its blocked receive, which
/// consumes nothing. The error is the deadlock alone (run 1's `Cancelled`
/// is the nursery's own). The sender is kept outside the runs, so run 0's
/// end cannot end run 1's receive with `EndOfChannel` instead.
fn a_real_deadlock_beside_a_cross_run_wait_is_reported_and_cancels_it() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let run1_saw = Mutex::new(None);
    let e = trio::run_per_core(2, |core| {
        let (tx, rx, run1_saw) = (&tx, &rx, &run1_saw);
        async move {
            if core.index() == 1 {
                let r = rx.receive().await;
                *run1_saw.lock().unwrap() = Some(r.as_ref().map_err(Error::kind).copied());
                return r.map(|_| ());
            }
            until(|| tx.statistics().tasks_waiting_receive == 1).await?;
            trio::sync::Event::new().wait().await
        }
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deadlock, "{e}");
    assert_eq!(e.leaves().count(), 1, "{e}");
    assert_eq!(*run1_saw.lock().unwrap(), Some(Err(ErrorKind::Cancelled)));
    // The cancelled receive left the channel: a send finds nobody waiting.
    assert_eq!(tx.statistics().tasks_waiting_receive, 0);
    assert_eq!(tx.try_send(1).unwrap_err().kind(), ErrorKind::WouldBlock);
}

/// The CancelHandle pattern for stopping the siblings *without* failing:
/// each run hands out a handle of its own scope; run 0 cancels them all.
fn runs_stop_each_other_with_cancel_handles() {
    let handles: Mutex<Vec<CancelHandle>> = Mutex::new(Vec::new());
    let got = trio::run_per_core(3, |core| {
        let handles = &handles;
        async move {
            if core.index() == 0 {
                // Wait until the others have handed out their handles.
                while handles.lock().unwrap().len() < 2 {
                    trio::sleep(0.001).await?;
                }
                for h in handles.lock().unwrap().iter() {
                    h.cancel();
                }
                return Ok("stopper");
            }
            let scope = CancelScope::new();
            handles.lock().unwrap().push(scope.handle());
            let r = scope.run(trio::sleep(AN_HOUR)).await?;
            assert_eq!(r, None); // the scope caught its own cancellation
            Ok("stopped")
        }
    })
    .unwrap();
    assert_eq!(got, ["stopper", "stopped", "stopped"]);
}

// ----- SO_REUSEPORT -----------------------------------------------------------------

/// A port for several `SO_REUSEPORT` listeners: a socket with the option,
/// bound (not listening, so it is never handed a connection) to a port the
/// kernel picks, kept while the runs bind the same port.
fn reserve_port() -> (Socket, u16) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.as_socket2().set_reuse_port(true).unwrap();
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.bind(&SockAddr::from(addr)).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

/// Runs 0 and 1 each serve their own listener on one port (one byte back:
/// the index of the run that served); run 2 is the client: 64 connections,
/// each answered. The kernel spreads connections by a hash of their
/// addresses, so both servers get some: the chance that 64 connections all
/// hash to one of two listeners is 2^-63.
fn two_runs_serve_one_port() {
    const CONNECTIONS: usize = 64;
    let (_reserved, port) = reserve_port();
    let stops: Mutex<Vec<CancelHandle>> = Mutex::new(Vec::new());
    let served = trio::run_per_core(3, |core| {
        let stops = &stops;
        async move {
            let index = core.index() as u8;
            if index < 2 {
                let options = TcpListenOptions::new().host("127.0.0.1").reuse_port(true);
                let scope = CancelScope::new();
                let stop = scope.handle();
                let count = std::cell::Cell::new(0usize);
                let count = &count;
                let handler = async move |stream: &SocketStream| {
                    let mut byte = [0u8; 1];
                    stream.receive_some(&mut byte).await?;
                    count.set(count.get() + 1);
                    stream.send_all(&[index]).await
                };
                scope
                    .run(trio::open_nursery(async |n| {
                        n.start(|s| {
                            trio::serve_tcp(handler, port)
                                .listen_options(options)
                                .task_status(s)
                        })
                        .await?;
                        // Listening: the client may connect, and stop us.
                        stops.lock().unwrap().push(stop);
                        Ok(())
                    }))
                    .await?;
                return Ok(vec![count.get()]);
            }
            // The client: once both servers listen (each hands out its stop
            // handle once its listener is open; connecting before both are
            // could serve every connection on one, or leave the other
            // never stopped), connect many times.
            while stops.lock().unwrap().len() < 2 {
                trio::sleep(0.001).await?;
            }
            let mut by_server = vec![0usize; 2];
            let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
            let mut done = 0;
            while done < CONNECTIONS {
                let client = match SocketStream::connect_tcp(addr).await {
                    Ok(c) => c,
                    Err(_) => {
                        trio::sleep(0.01).await?;
                        continue;
                    }
                };
                client.send_all(b"?").await?;
                let mut answer = [0u8; 1];
                assert_eq!(client.receive_some(&mut answer).await?, 1);
                by_server[answer[0] as usize] += 1;
                done += 1;
            }
            for h in stops.lock().unwrap().iter() {
                h.cancel();
            }
            Ok(by_server)
        }
    })
    .unwrap();
    let by_server = &served[2];
    assert_eq!(by_server.iter().sum::<usize>(), CONNECTIONS);
    assert_eq!(served[0], [by_server[0]], "{served:?}");
    assert_eq!(served[1], [by_server[1]], "{served:?}");
    assert!(by_server.iter().all(|&n| n > 0), "{served:?}");
}

// ----- Ctrl-C (a child process, real SIGINT) ------------------------------------------

/// The child: two runs wait "forever"; on Ctrl-C each gets `Cancelled`,
/// runs a shielded cleanup and says so; the call fails with `Interrupted`.
fn scenario_ctrl_c() -> ExitCode {
    let e = trio::run_per_core(2, |core| async move {
        println!("ready {}", core.index());
        let r = trio::sleep(AN_HOUR).await;
        if r.as_ref().is_err_and(Error::is_cancelled) {
            CancelScope::new()
                .with_shield(true)
                .run(trio::sleep(0.02))
                .await?;
            println!("run {} cleaned up", core.index());
        }
        r
    })
    .unwrap_err();
    let signal = trio::signal::Interrupted::of(&e).map(|i| i.signal());
    println!("kind {:?} signal {signal:?}", e.kind());
    ExitCode::SUCCESS
}

fn ctrl_c_cancels_every_run_gracefully() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SCENARIO, "ctrl_c")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let end = Instant::now() + LIMIT;
    while !(seen.iter().any(|l| l == "ready 0") && seen.iter().any(|l| l == "ready 1")) {
        match lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("the runs never got ready; stdout: {seen:?}");
            }
        }
    }
    let status = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit after SIGINT; stdout: {seen:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    while let Ok(l) = lines.recv_timeout(LIMIT) {
        seen.push(l);
    }
    assert_eq!(status.code(), Some(0), "{status:?}, stdout {seen:?}");
    for marker in [
        "run 0 cleaned up",
        "run 1 cleaned up",
        "kind Interrupted signal Some(2)",
    ] {
        assert!(
            seen.iter().any(|l| l == marker),
            "no {marker:?} in {seen:?}"
        );
    }
}

fn child(scenario: &str) -> ExitCode {
    match scenario {
        "ctrl_c" => scenario_ctrl_c(),
        other => panic!("unknown scenario {other:?}"),
    }
}

// ----- the runner ----------------------------------------------------------------------

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    ("results_come_in_core_order", results_come_in_core_order),
    (
        "each_run_is_a_run_on_a_thread_of_its_own",
        each_run_is_a_run_on_a_thread_of_its_own,
    ),
    (
        "zero_runs_is_an_invalid_argument",
        zero_runs_is_an_invalid_argument,
    ),
    (
        "more_runs_than_cores_is_allowed",
        more_runs_than_cores_is_allowed,
    ),
    ("nested_use_is_a_usage_error", nested_use_is_a_usage_error),
    ("a_runner_per_run", a_runner_per_run),
    ("pinned_runs_get_a_cpu_each", pinned_runs_get_a_cpu_each),
    (
        "a_failing_run_cancels_its_siblings",
        a_failing_run_cancels_its_siblings,
    ),
    (
        "a_run_that_starts_after_a_failure_is_cancelled_at_once",
        a_run_that_starts_after_a_failure_is_cancelled_at_once,
    ),
    ("every_failure_is_reported", every_failure_is_reported),
    (
        "a_failure_during_cleanup_is_reported_too",
        a_failure_during_cleanup_is_reported_too,
    ),
    (
        "a_panic_resumes_in_the_caller_after_the_others_finished",
        a_panic_resumes_in_the_caller_after_the_others_finished,
    ),
    (
        "a_deadlocked_run_fails_and_cancels_its_siblings",
        a_deadlocked_run_fails_and_cancels_its_siblings,
    ),
    (
        "no_false_deadlock_while_sibling_runs_wait_on_each_other",
        no_false_deadlock_while_sibling_runs_wait_on_each_other,
    ),
    (
        "a_rendezvous_send_waits_for_a_sibling_that_receives_late",
        a_rendezvous_send_waits_for_a_sibling_that_receives_late,
    ),
    (
        "a_run_whose_sibling_drops_the_other_ends_gets_the_channel_errors",
        a_run_whose_sibling_drops_the_other_ends_gets_the_channel_errors,
    ),
    (
        "a_real_deadlock_beside_a_cross_run_wait_is_reported_and_cancels_it",
        a_real_deadlock_beside_a_cross_run_wait_is_reported_and_cancels_it,
    ),
    (
        "runs_stop_each_other_with_cancel_handles",
        runs_stop_each_other_with_cancel_handles,
    ),
    ("two_runs_serve_one_port", two_runs_serve_one_port),
    (
        "ctrl_c_cancels_every_run_gracefully",
        ctrl_c_cancels_every_run_gracefully,
    ),
];

fn main() -> ExitCode {
    if let Ok(scenario) = std::env::var(SCENARIO) {
        return child(&scenario);
    }
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
        let _ = std::io::stdout().flush();
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
