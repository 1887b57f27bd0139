//! `cargo run --release -p bench`: trio vs tokio `current_thread` vs smol's
//! `LocalExecutor`, on the same workloads written idiomatically for each.
//!
//! # Method
//!
//! * **Interleaving.** For each workload, every round runs trio, then tokio,
//!   then smol (A B C A B C ...), so slow drifts of the machine (frequency
//!   scaling, other load, allocator state) hit all three alike instead of
//!   whichever runtime happened to run during the drift. One unreported
//!   warm-up round comes first (`--warmup N` to change).
//! * **Fresh runtime per measurement.** Each (workload, runtime, round) builds
//!   its own runtime; the clock starts and stops inside it, so construction
//!   and teardown are not timed.
//! * **Median.** The reported figure is the median over the rounds (default 5)
//!   of elapsed time divided by the workload's operation count, in ns/op. The
//!   median ignores the odd round disturbed by the OS.
//! * **Ratios** are trio / tokio and trio / smol: below 1 means trio is faster.
//! * **Memory per task.** With a counting global allocator ([`alloc`]) we read
//!   the live bytes, spawn N tasks that block forever in a trivial future,
//!   let each be polled once, read again, and report
//!   `delta / N - size_of_val(future)`: what the runtime itself keeps per
//!   blocked task (task header, scheduler bookkeeping, queue slots), not the
//!   user's future, which every runtime must store somewhere. Task handles
//!   are not counted (tokio/smol tasks are detached; trio children have none).
//!   It is one deterministic measurement, not a median.
//!
//! Options: `--only a,b` (workload names, plus `task_memory`), `--rounds N`,
//! `--warmup N`, `--scale F` (multiplies the counts; `--scale 0.01 --rounds 1`
//! is a smoke run), `--csv` / `--machine` (one CSV line per workload on
//! stdout), `--runtimes a,b` (skip the others; they print as `n/a`).
//! Progress goes to stderr.

mod alloc;
mod workloads;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use workloads::{Runtime, Workload};

/// Name under which `--only` selects the memory measurement.
const TASK_MEMORY: &str = "task_memory";
/// Tasks spawned for the memory measurement at scale 1.
const TASK_MEMORY_N: usize = 100_000;

struct Options {
    workloads: Vec<Workload>,
    task_memory: bool,
    rounds: usize,
    warmup: usize,
    scale: f64,
    csv: bool,
    /// Runtimes to run (`--runtimes`); the others print as `n/a`.
    runtimes: Vec<Runtime>,
}

fn usage() -> String {
    let mut s = String::from(
        "usage: bench [--only NAME,NAME] [--rounds N] [--warmup N] [--scale F] [--csv|--machine]\n\
         \x20            [--runtimes trio,tokio,smol]\n\
         \n\
         workloads (ns per operation, trio vs tokio current_thread vs smol LocalExecutor):\n",
    );
    for w in Workload::ALL {
        s += &format!("  {:<14} {}\n", w.name(), w.describe());
    }
    s += &format!("  {TASK_MEMORY:<14} runtime bytes per blocked task, excluding the future\n");
    s
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        workloads: Workload::ALL.to_vec(),
        task_memory: true,
        rounds: 5,
        warmup: 1,
        scale: 1.0,
        csv: false,
        runtimes: Runtime::ALL.to_vec(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--only" => {
                let list = value("--only")?;
                opts.workloads.clear();
                opts.task_memory = false;
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if name == TASK_MEMORY {
                        opts.task_memory = true;
                    } else {
                        let w = Workload::from_name(name)
                            .ok_or_else(|| format!("unknown workload `{name}`"))?;
                        if !opts.workloads.contains(&w) {
                            opts.workloads.push(w);
                        }
                    }
                }
            }
            "--rounds" => {
                opts.rounds = parse_num(&value("--rounds")?, "--rounds")?;
                if opts.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--warmup" => opts.warmup = parse_num(&value("--warmup")?, "--warmup")?,
            "--scale" => {
                opts.scale = parse_num(&value("--scale")?, "--scale")?;
                if !(opts.scale.is_finite() && opts.scale > 0.0) {
                    return Err("--scale must be a positive number".into());
                }
            }
            "--runtimes" => {
                let list = value("--runtimes")?;
                opts.runtimes = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|name| {
                        Runtime::from_name(name).ok_or_else(|| format!("unknown runtime `{name}`"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--csv" | "--machine" => opts.csv = true,
            "-h" | "--help" => {
                print!("{}", usage());
                std::process::exit(0);
            }
            // `cargo bench` passes this to every bench target; accept it.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(opts)
}

fn parse_num<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{name}: cannot parse `{s}`"))
}

/// Median of the samples (mean of the middle two for an even count).
fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2.0
    }
}

/// One printed row: a value per runtime (`None` = n/a), in `Runtime::ALL`
/// order.
struct Row {
    name: &'static str,
    count: usize,
    values: [Option<f64>; 3],
}

impl Row {
    fn ratio(&self, other: Runtime) -> Option<f64> {
        let idx = Runtime::ALL.iter().position(|&r| r == other)?;
        Some(self.values[0]? / self.values[idx]?)
    }
}

/// Measures one workload: warm-up, then `rounds` interleaved rounds.
fn measure(w: Workload, opts: &Options) -> Row {
    let shape = w.shape(opts.scale);
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut available = Runtime::ALL.map(|rt| opts.runtimes.contains(&rt));
    let total = opts.warmup + opts.rounds;
    let started = Instant::now();
    for round in 0..total {
        let warm = round < opts.warmup;
        if progress_on_tty() {
            let (what, i, of) = if warm {
                ("warm-up", round + 1, opts.warmup)
            } else {
                ("round", round - opts.warmup + 1, opts.rounds)
            };
            eprint!("\r{:<14} {what} {i}/{of}   ", w.name());
        }
        for (i, rt) in Runtime::ALL.into_iter().enumerate() {
            if !available[i] {
                continue;
            }
            match workloads::run(rt, w, shape) {
                Some(elapsed) if !warm => samples[i].push(ns_per_op(elapsed, shape.ops)),
                Some(_) => {}
                None => available[i] = false,
            }
        }
    }
    progress_done(w.name(), started);
    let values = std::array::from_fn(|i| (!samples[i].is_empty()).then(|| median(&mut samples[i])));
    Row {
        name: w.name(),
        count: shape.ops,
        values,
    }
}

/// Whether to draw an in-place progress line (only on a terminal).
fn progress_on_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Ends a workload's progress: clears the progress line on a terminal,
/// otherwise logs one line per workload.
fn progress_done(name: &str, started: Instant) {
    if progress_on_tty() {
        eprint!("\r{:<40}\r", "");
    } else {
        eprintln!("{name}: done in {:.1} s", started.elapsed().as_secs_f64());
    }
}

fn ns_per_op(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / ops as f64
}

fn measure_memory(n: usize, opts: &Options) -> Row {
    let started = Instant::now();
    if progress_on_tty() {
        eprint!("\r{TASK_MEMORY} ...   ");
    }
    let values = Runtime::ALL.map(|rt| {
        opts.runtimes
            .contains(&rt)
            .then(|| workloads::task_memory(rt, n))
    });
    progress_done(TASK_MEMORY, started);
    Row {
        name: TASK_MEMORY,
        count: n,
        values,
    }
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"))
}

fn print_csv(rows: &[Row], memory: Option<&Row>) {
    println!("workload,trio_ns_per_op,tokio_ns_per_op,smol_ns_per_op,ratio_tokio,ratio_smol");
    let line = |r: &Row, name: &str| {
        let plain = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"));
        println!(
            "{name},{},{},{},{},{}",
            plain(r.values[0]),
            plain(r.values[1]),
            plain(r.values[2]),
            plain(r.ratio(Runtime::Tokio)),
            plain(r.ratio(Runtime::Smol)),
        );
    };
    for r in rows {
        line(r, r.name);
    }
    // Same columns, but bytes per task instead of ns per op.
    if let Some(r) = memory {
        line(r, "task_memory_bytes");
    }
}

fn print_table(rows: &[Row], memory: Option<&Row>, opts: &Options) {
    println!(
        "trio vs tokio (current_thread + LocalSet) vs smol (LocalExecutor): median of {} round(s) \
         after {} warm-up, scale {}",
        opts.rounds, opts.warmup, opts.scale
    );
    println!(
        "ratio = trio / other: < 1 means trio is faster (or smaller), > 1 means trio is slower"
    );
    let header = |unit: &str| {
        println!(
            "\n{:<14} {:>9} {:>11} {:>11} {:>11} {:>10} {:>10}",
            "workload",
            "ops",
            format!("{} {unit}", Runtime::ALL[0].name()),
            format!("{} {unit}", Runtime::ALL[1].name()),
            format!("{} {unit}", Runtime::ALL[2].name()),
            "trio/tokio",
            "trio/smol"
        );
    };
    let line = |r: &Row| {
        println!(
            "{:<14} {:>9} {:>11} {:>11} {:>11} {:>10} {:>10}",
            r.name,
            r.count,
            fmt_value(r.values[0]),
            fmt_value(r.values[1]),
            fmt_value(r.values[2]),
            fmt_ratio(r.ratio(Runtime::Tokio)),
            fmt_ratio(r.ratio(Runtime::Smol)),
        );
    };
    if !rows.is_empty() {
        header("ns/op");
        rows.iter().for_each(line);
        println!();
        for r in rows {
            if let Some(w) = Workload::from_name(r.name) {
                println!("  {:<14} op = {}", r.name, w.describe());
            }
        }
    }
    if let Some(r) = memory {
        header("B/task");
        line(r);
        println!(
            "\n  {TASK_MEMORY:<14} runtime-owned bytes per blocked task (live-byte delta / tasks \
             - size of the future); ops = tasks"
        );
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("error: {msg}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let wall = Instant::now();
    let rows: Vec<Row> = opts.workloads.iter().map(|&w| measure(w, &opts)).collect();
    let memory = opts.task_memory.then(|| {
        let n = ((TASK_MEMORY_N as f64 * opts.scale).round() as usize).max(1);
        measure_memory(n, &opts)
    });
    if opts.csv {
        print_csv(&rows, memory.as_ref());
        eprintln!("total wall time: {:.1} s", wall.elapsed().as_secs_f64());
    } else {
        print_table(&rows, memory.as_ref(), &opts);
        println!("\ntotal wall time: {:.1} s", wall.elapsed().as_secs_f64());
    }
    ExitCode::SUCCESS
}
