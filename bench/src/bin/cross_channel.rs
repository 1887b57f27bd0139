//! `cargo run --release -p bench --bin cross_channel`: the cost of one
//! hand-off between two threads, each a run: trio's cross-run channel vs
//! tokio's mpsc across two `current_thread` runtimes, vs crossbeam-channel
//! and flume with blocking threads (and trio's blocking ends, the same
//! channel used from plain threads).
//!
//! # Method
//!
//! - **Ping-pong.** Two threads and two channels of capacity 1, one each
//!   way. Thread A sends `i` and waits for the answer; thread B receives it
//!   and sends it back. Every message finds its receiver blocked (nothing
//!   else runs), so each one is a full cross-thread wake-up: a hand-off is
//!   one message one way, and the figure is elapsed wall time divided by
//!   the number of messages (2 per round trip), in ns per hand-off.
//!   Starting the threads and runtimes is not timed: thread A starts the
//!   clock after a first round trip.
//! - **Rounds.** One unreported warm-up round, then `--rounds` (default 9,
//!   at least the 7 `../shared/BENCHMARKING.md` asks for), each running
//!   every workload once, interleaved (trio, tokio, crossbeam, flume,
//!   trio_blocking, trio, …) so that slow spells of a shared machine hit
//!   them alike. Each figure is the median over the rounds with the min–max;
//!   the ratio to tokio is taken per round, then its median and min–max.
//! - **Wall time**, not CPU time: a ping-pong's cost is mostly the two
//!   threads waiting for each other's wake-up, which CPU time does not
//!   count.
//! - **Pinning.** Not pinned by default: the two threads then run on two
//!   CPUs (on a 2-CPU machine shared with other work: noisy, quote medians
//!   with their spread). `taskset -c 1 …` puts both threads on one CPU, where
//!   every hand-off is a context switch instead of a cross-CPU wake-up; the
//!   header says how many CPUs the process may use.
//!
//! # Counting syscalls and instructions
//!
//! Wall time on a shared 2-CPU machine is noisy; these two counts are not.
//! `--rounds 1` runs two measurements (the warm-up and one round), so
//! `--ops N` makes `4 N` hand-offs.
//!
//! - Syscalls per hand-off, without strace's slowdown (perf's tracepoints):
//!   `perf stat -e 'syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_futex'
//!   target/release/cross_channel --ops 20000 --rounds 1 --only trio`
//!   (then `--only tokio`), each count divided by 80 000 (trio's reactor
//!   waits with `epoll_pwait`, tokio's with `epoll_wait`). (`strace -f -c`
//!   gives the same counts, slower.)
//! - User-space instructions per hand-off, marginal (start-up subtracted):
//!   `valgrind --tool=callgrind --callgrind-out-file=/dev/null
//!   target/release/cross_channel --ops N --rounds 1 --only trio` for
//!   `N` = 4 000 and 12 000; (Ir(12 000) − Ir(4 000)) / 32 000.
//!
//! Measured on a 2-CPU VM with other work (load average about 6), issue 19:
//! syscalls per hand-off trio 0.55 `write` and 0.55 `epoll_wait`, tokio
//! 0.59 and 0.68, neither any `futex`; instructions trio 2 425 (2 325 with
//! the later run-loop and nursery changes; tokio 1 879 in that run), tokio 1 339
//! (before: 2 528 and 1 321; 2 366 while the park was registered with its
//! waker under the channel's mutex, undone because that clones a foreign
//! waker under a lock). Wall time, `--rounds 11`, three runs, the
//! median per-round ratio trio/tokio: unpinned 0.95, 0.81, 0.88; `taskset -c 1` (`--only
//! trio,tokio`) 1.10, 1.06, 1.07 (before: 1.00, 0.56, 1.00 and 1.04, 1.07,
//! 1.11).
//!
//! Later (the schedule point after a hand-off passed in place when the
//! run has nothing else to do, the inbox's reschedules applied in the
//! loop's own state borrow, the wait made in one look at the run):
//! instructions trio 1 759 and 1 764, tokio 1 327 and 1 328 (trio before:
//! 2 295 and 2 307); syscalls trio 0.60 `write` and 0.60 `epoll_wait`,
//! tokio 0.61 and 0.61. Wall time, `--only trio,tokio --rounds 11`, load
//! average about 4: unpinned 0.99 (0.96–1.14) and 0.99 (0.48–1.01);
//! `taskset -c 1` 1.02 (0.93–1.05) and 0.99 (0.94–1.03).
//!
//! Issue 19, 2026-11-27 (the eventfd written with a direct syscall, the
//! thread's spare wait record re-armed and registered as the wait is
//! made; load average 4–6): instructions, the two sides alternated in
//! one session, trio 1 576, 1 601, 1 579, 1 597, 1 619 against tokio
//! 1 319–1 330 (trio 1 706–1 719 at the start of the session, tokio then
//! 1 284–1 337); both make about 0.64 `epoll_wait` per hand-off (one
//! per blocked receive: that share moves the per-hand-off figure from run
//! to run, so compare runs with like shares; callgrind's call counts to
//! `epoll_wait` give it).
//! Wall time, `--only trio,tokio --rounds 11`, two runs each: unpinned
//! 1.08 (0.44–2.38) and 0.82 (0.60–1.28), `taskset -c 1` 0.96
//! (0.60–0.98) and 0.96 (0.53–1.11); later, load average 1.5–2.5:
//! unpinned 0.98 (0.54–1.37) and 0.79 (0.17–1.72), `taskset -c 1` 0.95
//! (0.61–1.13) and 1.04 (0.58–1.85). `--machine` twice at load average
//! 1.2–1.5: trio/tokio 1.006 (0.970–1.201; both about 5.4 µs per
//! hand-off, a slow spell) and 0.970 (0.732–1.090; about 2.0 µs).
//!
//! Later the same day (the reactor's wait a direct `epoll_pwait`, the
//! schedule point after a hand-off passed in the operation's own poll,
//! the wait's park awaited and written in place, the inbox's drain
//! swapping only what was posted): instructions, alternated, trio 1 398
//! and 1 400 marginal, tokio 1 337 and 1 494 (that run had more blocked
//! receives); whole-run (`--ops 20000 --rounds 1`, start-up included,
//! divided by 80 000), at like shares of blocked receives (0.64–0.65 per
//! hand-off, from callgrind's call counts to `Reactor::wait` for trio and
//! to `epoll_wait` for tokio): trio 1 406 and 1 409 against tokio 1 339
//! and 1 340 (trio at the start of the session 1 547–1 573). Syscalls,
//! `perf stat`: trio 0.56 `write` and 0.56 `epoll_pwait`, tokio 0.74 and
//! 0.74 `epoll_wait`, neither any `futex`. Wall time, `--machine` twice
//! (load average 1.3–1.8, nothing compiling): trio/tokio 0.933
//! (0.842–1.186; trio 1 354 ns, tokio 1 449 ns per hand-off) and 0.971
//! (0.923–5.540, one slow trio round; 1 331 and 1 414 ns).
//!
//! Options: `--ops N` round trips per measurement (default 20 000),
//! `--rounds N`, `--only a,b` (workloads to run, e.g. for `perf` or
//! `strace -c -f`; ratios need `tokio` among them), `--machine` (CSV on stdout, progress on stderr): a header
//! line, then one line per workload:
//! `workload,ns_per_handoff,min,max,ratio_tokio,ratio_tokio_min,ratio_tokio_max,handoffs,rounds`.

#[path = "../spread.rs"]
#[allow(dead_code)] // each bin uses part of it
mod spread;
use spread::Spread;
use std::time::{Duration, Instant};

struct Options {
    ops: usize,
    rounds: usize,
    machine: bool,
    /// `--only a,b`: the workloads to run (for profiling one; the ratio
    /// column needs `tokio`).
    only: Option<Vec<String>>,
}

#[path = "../cli.rs"]
mod cli;

const USAGE: &str = "usage: cross_channel [--ops N] [--rounds N] [--machine] [--only a,b]";

/// The command line, or a message for a bad one (printed with the usage).
fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        ops: 20_000,
        rounds: 9,
        machine: false,
        only: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| -> Result<usize, String> {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{} needs a positive number", args[i]))
        };
        match args[i].as_str() {
            "--ops" => {
                o.ops = value(i)?;
                i += 1;
            }
            "--rounds" => {
                o.rounds = value(i)?;
                i += 1;
            }
            "--machine" => o.machine = true,
            "--only" => {
                let names = args.get(i + 1).ok_or("--only needs workload names")?;
                o.only = Some(names.split(',').map(str::to_string).collect());
                i += 1;
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
        i += 1;
    }
    Ok(o)
}

/// One workload: runs `ops` round trips and returns the time they took.
type Workload = fn(usize) -> Duration;

const WORKLOADS: [(&str, Workload); 5] = [
    ("trio", run_trio),
    ("tokio", run_tokio),
    ("crossbeam", run_crossbeam),
    ("flume", run_flume),
    ("trio_blocking", run_trio_blocking),
];

/// trio: two runs, each on its own thread, `send().await` / `receive().await`.
fn run_trio(ops: usize) -> Duration {
    use trio::cross_run::open_cross_run_channel;
    let (ab_tx, ab_rx) = open_cross_run_channel::<usize>(1);
    let (ba_tx, ba_rx) = open_cross_run_channel::<usize>(1);
    let echo = std::thread::spawn(move || {
        trio::run(async move {
            while let Some(v) = ab_rx.next().await {
                ba_tx.send(v?).await?;
            }
            Ok(())
        })
        .unwrap();
    });
    let elapsed = trio::run(async move {
        ab_tx.send(0).await?;
        ba_rx.receive().await?;
        let start = Instant::now();
        for i in 0..ops {
            ab_tx.send(i).await?;
            assert_eq!(ba_rx.receive().await?, i);
        }
        Ok(start.elapsed())
    })
    .unwrap();
    echo.join().unwrap();
    elapsed
}

/// trio's channel from two plain threads: `send_blocking` / `receive_blocking`.
fn run_trio_blocking(ops: usize) -> Duration {
    use trio::cross_run::open_cross_run_channel;
    let (ab_tx, ab_rx) = open_cross_run_channel::<usize>(1);
    let (ba_tx, ba_rx) = open_cross_run_channel::<usize>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = ab_rx.receive_blocking() {
            ba_tx.send_blocking(v).unwrap();
        }
    });
    ab_tx.send_blocking(0).unwrap();
    ba_rx.receive_blocking().unwrap();
    let start = Instant::now();
    for i in 0..ops {
        ab_tx.send_blocking(i).unwrap();
        assert_eq!(ba_rx.receive_blocking().unwrap(), i);
    }
    let elapsed = start.elapsed();
    drop(ab_tx);
    echo.join().unwrap();
    elapsed
}

/// tokio: two `current_thread` runtimes (I/O and time enabled, as a server
/// has them), each on its own thread, `mpsc::channel(1)`.
fn run_tokio(ops: usize) -> Duration {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (ab_tx, mut ab_rx) = tokio::sync::mpsc::channel::<usize>(1);
    let (ba_tx, mut ba_rx) = tokio::sync::mpsc::channel::<usize>(1);
    let echo = std::thread::spawn(move || {
        runtime().block_on(async move {
            while let Some(v) = ab_rx.recv().await {
                ba_tx.send(v).await.unwrap();
            }
        });
    });
    let elapsed = runtime().block_on(async move {
        ab_tx.send(0).await.unwrap();
        ba_rx.recv().await.unwrap();
        let start = Instant::now();
        for i in 0..ops {
            ab_tx.send(i).await.unwrap();
            assert_eq!(ba_rx.recv().await.unwrap(), i);
        }
        start.elapsed()
    });
    echo.join().unwrap();
    elapsed
}

/// crossbeam-channel, blocking threads, `bounded(1)`.
fn run_crossbeam(ops: usize) -> Duration {
    let (ab_tx, ab_rx) = crossbeam_channel::bounded::<usize>(1);
    let (ba_tx, ba_rx) = crossbeam_channel::bounded::<usize>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = ab_rx.recv() {
            ba_tx.send(v).unwrap();
        }
    });
    ab_tx.send(0).unwrap();
    ba_rx.recv().unwrap();
    let start = Instant::now();
    for i in 0..ops {
        ab_tx.send(i).unwrap();
        assert_eq!(ba_rx.recv().unwrap(), i);
    }
    let elapsed = start.elapsed();
    drop(ab_tx);
    echo.join().unwrap();
    elapsed
}

/// flume, blocking threads, `bounded(1)`.
fn run_flume(ops: usize) -> Duration {
    let (ab_tx, ab_rx) = flume::bounded::<usize>(1);
    let (ba_tx, ba_rx) = flume::bounded::<usize>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = ab_rx.recv() {
            ba_tx.send(v).unwrap();
        }
    });
    ab_tx.send(0).unwrap();
    ba_rx.recv().unwrap();
    let start = Instant::now();
    for i in 0..ops {
        ab_tx.send(i).unwrap();
        assert_eq!(ba_rx.recv().unwrap(), i);
    }
    let elapsed = start.elapsed();
    drop(ab_tx);
    echo.join().unwrap();
    elapsed
}

/// Median of the rounds (see `bench/src/spread.rs`).
fn median(v: &[f64]) -> f64 {
    Spread::of(v).map_or(f64::NAN, |s| s.median)
}

/// Min and max of the rounds.
fn range(v: &[f64]) -> (f64, f64) {
    Spread::of(v).map_or((f64::NAN, f64::NAN), |s| (s.min, s.max))
}

fn main() {
    let o = cli::options_or_exit(parse_options(), "cross_channel", USAGE);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let header = format!(
        "cross_channel: ping-pong between two threads, {} round trips ({} hand-offs) per measurement, {} rounds (+1 warm-up), wall time, {} CPU(s) allowed{}",
        o.ops,
        2 * o.ops,
        o.rounds,
        cpus,
        if cpus == 1 {
            " (pinned: both threads share one CPU)"
        } else {
            " (not pinned)"
        }
    );
    if o.machine {
        eprintln!("{header}");
    } else {
        println!("{header}");
    }

    let handoffs = 2 * o.ops;
    let workloads: Vec<(&str, Workload)> = WORKLOADS
        .iter()
        .copied()
        .filter(|(n, _)| {
            o.only
                .as_ref()
                .is_none_or(|only| only.iter().any(|x| x == n))
        })
        .collect();
    // ns per hand-off, per workload, per round.
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); workloads.len()];
    for round in 0..=o.rounds {
        let mut line = format!("round {round}:");
        for (w, (name, run)) in workloads.iter().enumerate() {
            let t = run(o.ops).as_nanos() as f64 / handoffs as f64;
            line += &format!(" {name} {t:.0}");
            if round > 0 {
                ns[w].push(t);
            }
        }
        eprintln!(
            "{line} ns/hand-off{}",
            if round == 0 { " (warm-up)" } else { "" }
        );
    }

    // Ratios to tokio, per round (NaN without a tokio workload).
    let tokio = workloads.iter().position(|(n, _)| *n == "tokio");
    let ratios: Vec<Vec<f64>> = ns
        .iter()
        .map(|v| match tokio {
            Some(t) => v.iter().zip(&ns[t]).map(|(a, b)| a / b).collect(),
            None => vec![f64::NAN; v.len()],
        })
        .collect();
    if o.machine {
        println!(
            "workload,ns_per_handoff,min,max,ratio_tokio,ratio_tokio_min,ratio_tokio_max,handoffs,rounds"
        );
        for (w, (name, _)) in workloads.iter().enumerate() {
            let (lo, hi) = range(&ns[w]);
            let (rlo, rhi) = range(&ratios[w]);
            println!(
                "cross_channel_{name},{:.3},{lo:.3},{hi:.3},{:.3},{rlo:.3},{rhi:.3},{handoffs},{}",
                median(&ns[w]),
                median(&ratios[w]),
                o.rounds
            );
        }
        return;
    }
    println!(
        "{:<16} {:>14} {:>18} {:>14} {:>16}",
        "ns per hand-off", "median", "min–max", "/ tokio", "min–max"
    );
    for (w, (name, _)) in workloads.iter().enumerate() {
        let (lo, hi) = range(&ns[w]);
        let (rlo, rhi) = range(&ratios[w]);
        println!(
            "{name:<16} {:>14.0} {:>8.0} – {:<8.0} {:>14.2} {:>7.2} – {:<7.2}",
            median(&ns[w]),
            lo,
            hi,
            median(&ratios[w]),
            rlo,
            rhi
        );
    }
}
