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
//! * **Fresh runtime per measurement.** Each run of a (workload, runtime)
//!   builds its own runtime; the clock starts and stops inside it, so
//!   construction and teardown are not timed.
//! * **CPU time.** The clock is the process's CPU time
//!   ([`workloads::clock`]), not the wall clock (`--clock wall`): on a shared
//!   machine wall time also counts the moments the process waits for a CPU,
//!   and for `sleep` it was mostly the real clock's floor. Measured on a
//!   2-CPU VM while other jobs ran (load ≈ 7), pinned, 5 rounds: with wall
//!   time the per-round trio/tokio ratios of `cancel` ranged 0.20–0.83 and
//!   `nursery_10`'s 0.21–0.36; with CPU time (and the repeats below)
//!   0.39–0.44 and 0.26–0.28. CPU time does not remove everything a busy
//!   machine does to a run (caches shared with other processes, a busy
//!   sibling hyperthread): pin, and quote figures from a quiet machine.
//! * **Rounds long enough to time.** A round of one runtime lasts at least
//!   [`MIN_ROUND`] of CPU time: after the warm-up round, a runtime whose run
//!   was shorter repeats the run (each time with a fresh runtime) enough
//!   times (but not past [`MAX_ROUND_WALL`] of wall time), and its figure
//!   is total time over total operations. Without
//!   this, `nursery_empty` on smol lasted ~1 ms per round and `cancel`'s
//!   timed part ~20 ms, where one interrupt or a cold cache moves the
//!   figure by tens of percent. With `--warmup 0` (the callgrind children)
//!   every runtime runs exactly once per round. The repeated runs of a
//!   round are interleaved too, each runtime's spread evenly over the round
//!   (a runtime making 13 runs and one making 38 alternate throughout).
//! * **Memory kept, not returned.** glibc's malloc returns freed memory at
//!   the top of the heap to the kernel (and serves big blocks with `mmap`),
//!   so each run of a workload that spawns 100k tasks faulted its memory in
//!   afresh, at a cost that varies with what the kernel has to do at that
//!   moment. [`keep_freed_memory`] turns both off at start-up, the same for
//!   every runtime, so the warm-up round faults the memory in once. Not
//!   with `--warmup 0` (no warm-up round to fault it in; and the callgrind
//!   children, which run so, keep counting glibc's default behaviour, so
//!   instruction counts stay comparable with earlier ones).
//! * **Median and spread.** Each runtime's figure is the median over the
//!   rounds (default 7, as `../shared/BENCHMARKING.md` asks) of elapsed time
//!   divided by the workload's operation count, in ns/op; the line under it
//!   gives the min–max over the rounds.
//! * **Rounds spread over the run.** Round 1 of every workload runs, then
//!   round 2 of every workload, and so on, so one workload's rounds are
//!   spread over the whole run. Played back to back (as before), a slow
//!   spell of a shared machine lasting a few seconds fell into most rounds
//!   of one workload and became its median: `cancel`, whose rounds took
//!   about 2 s in all, moved by 30% between fresh runs that way, with the
//!   other runtimes slowing down too in the same rounds.
//! * **Ratios** are trio / tokio and trio / smol, taken *per round* (the three
//!   runs of a round saw the same machine), then their median and min–max
//!   ([`stats`]). Below 1 means trio is faster. A ratio whose max/min exceeds
//!   [`stats::WIDE_RATIO_SPREAD`] (1.10) gets a warning line under the table:
//!   within one run it already moves more than a quoted figure may, so it is
//!   not to be trusted; pin, add rounds, or use `--instructions`.
//! * **Rounds on a slowed CPU are played again.** Each measured round is
//!   bracketed by two CPU probes ([`probe`]: a fixed arithmetic loop, ~1 ms);
//!   a round whose slower probe reads more than [`probe::SLOWED`] (1.15×)
//!   the run's best ran on a CPU that was not at its full speed, and trio's
//!   ratios rise in such spells much more than the interleaving can cancel
//!   (trio's hot paths run many instructions per cycle; the loss of a shared
//!   core's execution units costs them more than tokio's atomics-bound
//!   paths). Before each measured round a gate ([`probe::SpeedGate`])
//!   probes, and while the CPU reads slowed it sleeps and probes again
//!   (at most 3 s per round and `--patience` seconds, default 120, in all):
//!   the spells come and go within seconds, so most rounds then start at
//!   full speed instead of being measured slowed and replaced. After the
//!   planned rounds, each workload plays up to `--rounds`
//!   extra rounds until it has `--rounds` full-speed ones, and its figures
//!   come from those; a workload that still falls short keeps every round
//!   and is named in a warning. The probe line under the table (on stderr
//!   with `--machine`) gives the best and median probe and how many rounds
//!   were left out and replayed. `--log-rounds` prints each round's probe
//!   and per-runtime figures, to see the effect for yourself.
//! * **Pinning.** `--pin [CPU]` pins the process to one CPU (default: the
//!   last one it may run on) before anything runs, as `taskset -c CPU` would;
//!   the header names the CPU model, the CPUs online and whether the process
//!   is pinned (also when pinned from outside by `taskset`). See [`machine`].
//! * **Memory per task.** With a counting global allocator ([`alloc`]) we read
//!   the live bytes, spawn N tasks that each block on an equivalent wait
//!   (trio `sync::Event::wait`, tokio `sync::Notify::notified`, smol's
//!   `event_listener::Event::listen`), let each be polled once, and read
//!   again. Two rows: `task_memory_runtime` = `delta / N - size_of(future)`,
//!   what the runtime keeps per blocked task, and `task_memory_total` =
//!   `delta / N`, everything, so that moving wait state from the runtime into
//!   the future (as tokio's `Notified` does) cannot win on paper only. Task
//!   handles are not counted (tokio/smol tasks are detached; trio children
//!   have none). One deterministic measurement, not a median.
//! * **Instructions** (`--instructions`): instead of timing, re-runs itself
//!   under callgrind at scales `s` and `2s` and reports the marginal
//!   instructions per operation, which do not depend on the machine's load;
//!   see [`instructions`]. `cargo run --release -p bench -- --instructions`
//!   (`--scale` sets `s`, default 0.05; `--only`, `--runtimes` select).
//!
//! Options: `--only a,b` (workload names, plus `task_memory`), `--rounds N`,
//! `--warmup N`, `--scale F` (multiplies the counts; `--scale 0.01 --rounds 1`
//! is a smoke run), `--runtimes a,b` (skip the others; they print as `n/a`),
//! `--pin [CPU]`, `--instructions`, `--log-rounds`, `--patience SECS`,
//! `--csv` / `--machine`.
//! Progress goes to stderr.
//!
//! # `--machine` CSV
//!
//! A header line, then one line per workload and the two `task_memory` rows
//! (numbers with three decimals, `n/a` for a runtime that did not run):
//!
//! | column | meaning |
//! |---|---|
//! | `workload` | workload name, or `task_memory_runtime` / `task_memory_total` |
//! | `trio_ns_per_op`, `tokio_ns_per_op`, `smol_ns_per_op` | median ns/op (bytes per task for `task_memory…`) |
//! | `ratio_tokio`, `ratio_smol` | median of the per-round ratios trio / tokio, trio / smol |
//! | `ratio_tokio_min`, `ratio_tokio_max`, `ratio_smol_min`, `ratio_smol_max` | their range over the rounds |
//! | `trio_min`, `trio_max`, `tokio_min`, `tokio_max`, `smol_min`, `smol_max` | each runtime's range over the rounds |
//! | `ops` | operations per round (tasks, for `task_memory…`) |
//! | `rounds` | rounds the figures come from (full-speed rounds, see above; 1 for `task_memory…`) |
//!
//! With `--instructions`, the columns are `workload`, `trio_ir_per_op`,
//! `tokio_ir_per_op`, `smol_ir_per_op`, `ratio_tokio`, `ratio_smol`.
//! The machine line of the header (CPU model, CPUs online, pinning) goes to
//! stderr in CSV mode.
//!
//! # Every workload (`--all`)
//!
//! `--all` (or `--with echo,multicore,cross` for some) also runs the
//! crate's other binaries as child processes, *before* the
//! micro-benchmarks (and before `--pin` pins this process: the children
//! choose their own CPUs), and adds one line per workload of theirs: the
//! TCP echo servers (`echo_pingpong`, `echo_bulk`), the echo on every core
//! (`echo_mc_pingpong_64`, `echo_mc_pingpong_1000`) and the cross-run
//! channel ping-pong (`cross_channel`, `cross_channel_blocking`). The
//! header then has more columns after the ones above, on every line; see
//! [`all`] for what each holds. Without `--all`, nothing changes.

mod all;
mod alloc;
mod instructions;
mod machine;
mod probe;
mod report;
mod spread;
mod stats;
mod workloads;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use report::{Header, Row};
use stats::Round;
use workloads::{Runtime, Shape, Workload};

/// Name under which `--only` selects the memory measurement (both rows; any
/// name starting with it selects it).
const TASK_MEMORY: &str = "task_memory";
/// Tasks spawned for the memory measurement at scale 1.
const TASK_MEMORY_N: usize = 100_000;

/// The least CPU time one runtime's share of a round should take (see
/// "Rounds long enough to time" above). 50 ms: long against the clock's
/// resolution, an interrupt or a page fault, and short enough that the
/// runs this adds (mostly for the runtimes that finish a workload in a
/// few milliseconds) keep a default run within about a minute.
const MIN_ROUND: Duration = Duration::from_millis(50);

/// At most this many runs per round (a runtime whose warm-up run took no
/// measurable time must not loop for ever).
const MAX_REPEATS: usize = 1000;

/// Repeats stop short of making one runtime's share of a round last longer
/// than this in wall time: `sleep` takes 0.2–0.3 s of real time per run
/// however little CPU time it uses, so at a small `--scale` filling
/// [`MIN_ROUND`] of CPU time would take dozens of runs.
const MAX_ROUND_WALL: Duration = Duration::from_secs(1);

/// The default `--patience`: how long a run may wait in all for the CPU
/// to return to full speed before its measured rounds. A quiet machine
/// never waits; a run in a slow spell takes up to this much longer.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(120);

/// Which CPU `--pin` asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pin {
    /// `--pin` alone: the last CPU the process may run on. The last rather
    /// than CPU 0, which tends to take more of the machine's interrupts and
    /// housekeeping (and `taskset -c 1` is what the shared notes use).
    Last,
    /// `--pin N`.
    Cpu(usize),
}

struct Options {
    workloads: Vec<Workload>,
    task_memory: bool,
    rounds: usize,
    warmup: usize,
    /// `--scale`, if given; the timing and instruction modes default
    /// differently.
    scale: Option<f64>,
    csv: bool,
    /// Runtimes to run (`--runtimes`); the others print as `n/a`.
    runtimes: Vec<Runtime>,
    pin: Option<Pin>,
    instructions: bool,
    /// `--clock wall`: time with the wall clock instead of CPU time.
    wall_clock: bool,
    /// `--all` / `--with`: the other binaries' workloads to add.
    with: Vec<all::Suite>,
    /// Whether `--rounds` was given (passed on to the other binaries,
    /// which otherwise use their own defaults).
    rounds_given: bool,
    /// `--log-rounds`: every measured round's probe and samples on stderr.
    log_rounds: bool,
    /// `--patience SECS`: how long in all the run may wait for the CPU to
    /// return to full speed before measured rounds ([`probe::SpeedGate`]).
    patience: Duration,
}

impl Options {
    fn scale(&self) -> f64 {
        self.scale.unwrap_or(if self.instructions {
            instructions::DEFAULT_SCALE
        } else {
            1.0
        })
    }
}

fn usage() -> String {
    let mut s = String::from(
        "usage: bench [--only NAME,NAME] [--rounds N] [--warmup N] [--scale F] [--csv|--machine]\n\
         \x20            [--runtimes trio,tokio,smol] [--pin [CPU]] [--clock cpu|wall] [--instructions]\n\
         \x20            [--patience S] [--log-rounds] [--all|--with LIST]\n\
         \n\
         --pin [CPU]     pin to CPU (default: the last allowed CPU) before measuring\n\
         --clock C       time with the process's CPU time (cpu, the default) or wall time\n\
         --instructions  instructions per op under valgrind callgrind (scales s and 2s,\n\
         \x20               s = --scale, default 0.05) instead of timings\n\
         --all           also the other binaries' workloads (= --with echo,multicore,cross):\n\
         \x20               TCP echo servers, the echo on every core, the cross-run channel\n\
         --with LIST     some of them; run first, as child processes (see `all` in the docs)\n\
         --log-rounds    print every measured round to stderr: round,WORKLOAD,N,PROBE,TRIO,TOKIO,SMOL\n\
         --patience S    wait up to S seconds in all (default 120) for a slowed CPU to recover\n\
         \x20               before measured rounds; 0 never waits\n\
         \n\
         workloads (ns per operation, trio vs tokio current_thread vs smol LocalExecutor):\n",
    );
    for w in Workload::ALL {
        s += &format!("  {:<14} {}\n", w.name(), w.describe());
    }
    s += &format!(
        "  {TASK_MEMORY:<14} bytes per blocked task: runtime-owned (excluding the future) and total\n"
    );
    s
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        workloads: Workload::ALL.to_vec(),
        task_memory: true,
        rounds: 7,
        warmup: 1,
        scale: None,
        csv: false,
        runtimes: Runtime::ALL.to_vec(),
        pin: None,
        instructions: false,
        wall_clock: false,
        with: Vec::new(),
        rounds_given: false,
        log_rounds: false,
        patience: DEFAULT_PATIENCE,
    };
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--only" => select_workloads(&value("--only")?, &mut opts)?,
            "--rounds" => {
                opts.rounds = parse_num(&value("--rounds")?, "--rounds")?;
                opts.rounds_given = true;
                if opts.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--warmup" => opts.warmup = parse_num(&value("--warmup")?, "--warmup")?,
            "--scale" => {
                let scale: f64 = parse_num(&value("--scale")?, "--scale")?;
                if !(scale.is_finite() && scale > 0.0) {
                    return Err("--scale must be a positive number".into());
                }
                opts.scale = Some(scale);
            }
            "--runtimes" => {
                let list = value("--runtimes")?;
                opts.runtimes = names(&list)
                    .map(|name| {
                        Runtime::from_name(name).ok_or_else(|| format!("unknown runtime `{name}`"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--pin" => {
                // The CPU number is optional: take the next argument only if
                // it is one.
                let cpu = args.next_if(|a| a.parse::<usize>().is_ok());
                opts.pin = Some(match cpu {
                    Some(cpu) => Pin::Cpu(parse_num(&cpu, "--pin")?),
                    None => Pin::Last,
                });
            }
            "--instructions" => opts.instructions = true,
            "--log-rounds" => opts.log_rounds = true,
            "--patience" => {
                let secs: f64 = parse_num(&value("--patience")?, "--patience")?;
                if !(secs.is_finite() && secs >= 0.0) {
                    return Err("--patience must be a number of seconds, 0 or more".into());
                }
                opts.patience = Duration::from_secs_f64(secs);
            }
            "--all" => opts.with = all::Suite::ALL.to_vec(),
            "--with" => {
                let list = value("--with")?;
                opts.with = names(&list)
                    .map(|name| {
                        all::Suite::from_name(name).ok_or_else(|| {
                            format!("--with: unknown `{name}` (echo, multicore, cross)")
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--clock" => {
                opts.wall_clock = match value("--clock")?.as_str() {
                    "cpu" => false,
                    "wall" => true,
                    other => return Err(format!("--clock: `{other}` is neither cpu nor wall")),
                }
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
    if opts.instructions && !opts.with.is_empty() {
        return Err("--all / --with time the other binaries; not with --instructions".into());
    }
    Ok(opts)
}

/// The non-empty names of a comma-separated list.
fn names(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `--only`: replaces the selection with the listed workloads.
fn select_workloads(list: &str, opts: &mut Options) -> Result<(), String> {
    opts.workloads.clear();
    opts.task_memory = false;
    for name in names(list) {
        if name.starts_with(TASK_MEMORY) {
            opts.task_memory = true;
        } else {
            let w =
                Workload::from_name(name).ok_or_else(|| format!("unknown workload `{name}`"))?;
            if !opts.workloads.contains(&w) {
                opts.workloads.push(w);
            }
        }
    }
    Ok(())
}

fn parse_num<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{name}: cannot parse `{s}`"))
}

/// Applies `--pin`, returning the CPU pinned to.
fn apply_pin(pin: Pin) -> Result<usize, String> {
    let cpu = match pin {
        Pin::Cpu(cpu) => cpu,
        Pin::Last => *machine::allowed_cpus()
            .map_err(|e| format!("cannot read the affinity mask: {e}"))?
            .last()
            .ok_or("the affinity mask is empty")?,
    };
    machine::pin_to(cpu).map_err(|e| format!("cannot pin to CPU {cpu}: {e}"))?;
    Ok(cpu)
}

/// One workload's measurement in progress: [`run_timings`] plays round 1
/// of every workload, then round 2 of every workload, and so on, so that a
/// workload's rounds are spread over the whole run instead of a few
/// back-to-back seconds. A slow spell of the machine (another VM on the same
/// host, say) then lands in one round of many workloads, where the median
/// discards it, instead of in most rounds of one workload, where it becomes
/// the median. Within a round the runtimes are interleaved, each repeating
/// its run as often as the last warm-up round says it must to fill
/// [`MIN_ROUND`]. Each measured round is bracketed by two CPU probes
/// ([`probe`]); see [`Measurement::replay_slowed`].
struct Measurement {
    w: Workload,
    shape: Shape,
    rounds: Vec<Round>,
    /// The slower of the two probes around each measured round, in round
    /// order.
    probes: Vec<f64>,
    available: [bool; 3],
    repeats: [usize; 3],
    spent: Duration,
    /// Rounds played again because their probe said the CPU was slowed.
    replayed: usize,
}

impl Measurement {
    fn new(w: Workload, opts: &Options) -> Measurement {
        Measurement {
            w,
            shape: w.shape(opts.scale()),
            rounds: Vec::with_capacity(opts.rounds),
            probes: Vec::with_capacity(opts.rounds),
            available: Runtime::ALL.map(|rt| opts.runtimes.contains(&rt)),
            repeats: [1; 3],
            spent: Duration::ZERO,
            replayed: 0,
        }
    }

    /// Plays round `round` (the first `opts.warmup` are warm-up rounds).
    fn round(&mut self, round: usize, opts: &Options, gate: &mut probe::SpeedGate) {
        let started = Instant::now();
        let warm = round < opts.warmup;
        show_progress(self.w, round, opts);
        let probe_before = if warm {
            let p = probe::measure();
            gate.saw(p);
            p
        } else {
            gate.wait_for_full_speed()
        };
        let mut samples: Round = [None; 3];
        let mut elapsed = [Duration::ZERO; 3];
        let mut wall = [Duration::ZERO; 3];
        let steps = self.repeats.iter().copied().max().unwrap_or(1);
        for step in 0..steps {
            for (i, rt) in Runtime::ALL.into_iter().enumerate() {
                if !self.available[i] || !runs_at(step, self.repeats[i], steps) {
                    continue;
                }
                let run_started = Instant::now();
                match workloads::run(rt, self.w, self.shape) {
                    Some(e) => elapsed[i] += e,
                    None => self.available[i] = false,
                }
                wall[i] += run_started.elapsed();
            }
        }
        let probe_after = probe::measure();
        gate.saw(probe_after);
        let probe = probe_before.max(probe_after);
        for i in 0..Runtime::ALL.len() {
            if !self.available[i] {
                continue;
            }
            samples[i] = Some(ns_per_op(elapsed[i], self.shape.ops * self.repeats[i]));
            if round + 1 == opts.warmup {
                let n = self.repeats[i] as u32;
                self.repeats[i] = repeats_for(elapsed[i] / n, wall[i] / n);
            }
        }
        if !warm {
            if opts.log_rounds {
                let cell = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
                eprintln!(
                    "round,{},{},{probe:.3},{},{},{}",
                    self.w.name(),
                    self.rounds.len() + 1,
                    cell(samples[0]),
                    cell(samples[1]),
                    cell(samples[2])
                );
            }
            self.rounds.push(samples);
            self.probes.push(probe);
        }
        self.spent += started.elapsed();
    }

    /// How many measured rounds ran at full CPU speed: probe within
    /// [`probe::SLOWED`] of the run's `best` probe.
    fn full_speed_rounds(&self, best: f64) -> usize {
        self.probes
            .iter()
            .filter(|&&p| probe::at_full_speed(p, best))
            .count()
    }

    /// Plays extra rounds (at most `opts.rounds` of them) until `opts.rounds`
    /// rounds ran at full CPU speed. The machines have spells in which the
    /// core runs slower (a busy hyperthread sibling, another VM) and trio's
    /// ratios rise with them (see [`probe`]); a round measured in one is
    /// not the machine's figure, so it is replaced rather than averaged in.
    fn replay_slowed(&mut self, best: f64, opts: &Options, gate: &mut probe::SpeedGate) {
        let first_extra = opts.warmup + self.rounds.len();
        while self.full_speed_rounds(best) < opts.rounds && self.replayed < opts.rounds {
            self.round(first_extra + self.replayed, opts, gate);
            self.replayed += 1;
        }
    }

    /// The workload's row (from its full-speed rounds when there are
    /// `opts.rounds` of them, else from every round), its probes, the rounds
    /// it replayed, and whether it fell short of full-speed rounds.
    fn finish(self, best: f64, opts: &Options) -> (Row, Vec<f64>, usize, bool) {
        progress_done(self.w.name(), self.spent);
        let full: Vec<Round> = self
            .rounds
            .iter()
            .zip(&self.probes)
            .filter(|&(_, &p)| probe::at_full_speed(p, best))
            .map(|(r, _)| *r)
            .collect();
        let short = full.len() < opts.rounds;
        let used = if short { &self.rounds } else { &full };
        let row = Row::from_rounds(self.w.name(), self.shape.ops, used);
        (row, self.probes, self.replayed, short)
    }
}

/// Makes glibc's malloc keep freed memory instead of returning it to the
/// kernel (no trimming of the heap top, no `mmap` for blocks up to its
/// 32 MiB maximum), so that repeated runs reuse memory that is already
/// faulted in. See "Memory kept, not returned" above.
fn keep_freed_memory() {
    // SAFETY: `mallopt` only sets malloc tunables; called at start-up,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

/// Whether a runtime that makes `runs` runs in a round of `steps` steps
/// runs at `step`: its runs are spread evenly over the round (so that a
/// runtime with few long runs and one with many short ones both sample the
/// whole round, not just its start).
fn runs_at(step: usize, runs: usize, steps: usize) -> bool {
    (step + 1) * runs / steps > step * runs / steps
}

/// How many runs make a round of at least [`MIN_ROUND`], given that one
/// run took `one` on the clock and `one_wall` of wall time (capped by
/// [`MAX_ROUND_WALL`]).
fn repeats_for(one: Duration, one_wall: Duration) -> usize {
    if one >= MIN_ROUND {
        return 1;
    }
    let runs = MIN_ROUND.as_secs_f64() / one.as_secs_f64().max(1e-9);
    let wall_cap = MAX_ROUND_WALL.as_secs_f64() / one_wall.as_secs_f64().max(1e-9);
    (runs.ceil().min(wall_cap.floor()) as usize).clamp(1, MAX_REPEATS)
}

/// An in-place "workload round i/n" line on a terminal.
fn show_progress(w: Workload, round: usize, opts: &Options) {
    if !progress_on_tty() {
        return;
    }
    let (what, i, of) = if round < opts.warmup {
        ("warm-up", round + 1, opts.warmup)
    } else if round - opts.warmup < opts.rounds {
        ("round", round - opts.warmup + 1, opts.rounds)
    } else {
        ("replay", round - opts.warmup - opts.rounds + 1, opts.rounds)
    };
    eprint!("\r{:<14} {what} {i}/{of}   ", w.name());
}

/// Whether to draw an in-place progress line (only on a terminal).
fn progress_on_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// Ends a workload's progress: clears the progress line on a terminal,
/// otherwise logs one line per workload.
fn progress_done(name: &str, spent: Duration) {
    if progress_on_tty() {
        eprint!("\r{:<40}\r", "");
    } else {
        eprintln!("{name}: done in {:.1} s", spent.as_secs_f64());
    }
}

fn ns_per_op(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / ops as f64
}

/// The two `task_memory` rows (runtime-owned, total), with `n` tasks.
fn measure_memory(n: usize, opts: &Options) -> [Row; 2] {
    let started = Instant::now();
    if progress_on_tty() {
        eprint!("\r{TASK_MEMORY} ...   ");
    }
    let measured = Runtime::ALL.map(|rt| {
        opts.runtimes
            .contains(&rt)
            .then(|| workloads::task_memory(rt, n))
    });
    progress_done(TASK_MEMORY, started.elapsed());
    let runtime: Round = measured.map(|m| m.map(|m| m.runtime));
    let total: Round = measured.map(|m| m.map(|m| m.total));
    [
        Row::from_rounds("task_memory_runtime", n, &[runtime]),
        Row::from_rounds("task_memory_total", n, &[total]),
    ]
}

/// The timing mode: every selected workload, then `task_memory`; `others`
/// are the lines of the other binaries (`--all`), already measured.
fn run_timings(opts: &Options, machine: String, others: &[all::Line]) {
    let wall = Instant::now();
    let mut measuring: Vec<Measurement> = opts
        .workloads
        .iter()
        .map(|&w| Measurement::new(w, opts))
        .collect();
    let mut gate = probe::SpeedGate::new(opts.patience);
    for round in 0..opts.warmup + opts.rounds {
        for m in &mut measuring {
            m.round(round, opts, &mut gate);
        }
    }
    let best = |ms: &[Measurement]| {
        ms.iter()
            .flat_map(|m| m.probes.iter().copied())
            .fold(f64::INFINITY, f64::min)
    };
    let first_best = best(&measuring);
    for m in &mut measuring {
        m.replay_slowed(first_best, opts, &mut gate);
    }
    // A replayed round may have probed faster still; judge every round by
    // the best probe of the whole run.
    let best = best(&measuring);
    let mut rows = Vec::new();
    let mut probes = Vec::new();
    let mut replayed = 0;
    let mut short = Vec::new();
    for m in measuring {
        let (row, p, r, s) = m.finish(best, opts);
        if s {
            short.push(row.name);
        }
        rows.push(row);
        probes.extend(p);
        replayed += r;
    }
    let probe = probe::describe(&probes, replayed, &short, &gate);
    let memory: Vec<Row> = if opts.task_memory {
        let n = ((TASK_MEMORY_N as f64 * opts.scale()).round() as usize).max(1);
        measure_memory(n, opts).into()
    } else {
        Vec::new()
    };
    if opts.csv {
        eprintln!("{machine}");
        if let Some((line, warning)) = &probe {
            eprintln!("{line}");
            if let Some(w) = warning {
                eprintln!("{w}");
            }
        }
        let rows: Vec<Row> = rows.into_iter().chain(memory).collect();
        if opts.with.is_empty() {
            report::print_csv(&rows);
        } else {
            all::print_csv(&rows, others, opts.wall_clock);
        }
        eprintln!("total wall time: {:.1} s", wall.elapsed().as_secs_f64());
    } else {
        let header = Header {
            rounds: opts.rounds,
            warmup: opts.warmup,
            scale: opts.scale(),
            machine,
            clock: format!(
                "clock: {}; a runtime repeats its run (ops = per run) until its share of a round \
                 has taken {} ms or more",
                if opts.wall_clock {
                    "wall time"
                } else {
                    "the process's CPU time (--clock wall for wall time)"
                },
                MIN_ROUND.as_millis()
            ),
        };
        report::print_table(&rows, &memory, &header);
        if let Some((line, warning)) = &probe {
            println!("\n{line}");
            if let Some(w) = warning {
                println!("{w}");
            }
        }
        all::print_table(others);
        println!("\ntotal wall time: {:.1} s", wall.elapsed().as_secs_f64());
    }
}

/// The `--instructions` mode; see [`instructions`].
fn run_instructions(opts: &Options, machine: String) -> Result<(), String> {
    let counted = instructions::count_all(&opts.workloads, &opts.runtimes, opts.scale())?;
    if opts.csv {
        eprintln!("{machine}");
        report::print_instructions_csv(&counted);
    } else {
        report::print_instructions_table(&counted, opts.scale(), &machine);
    }
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("error: {msg}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    // Pin before anything else runs, so every thread started later inherits
    // the mask.
    workloads::clock::use_wall_clock(opts.wall_clock);
    if opts.warmup > 0 && !opts.instructions {
        keep_freed_memory();
    }
    // The other binaries first, before `--pin`: they choose their own CPUs.
    let (others, failed) = if opts.with.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let rounds = opts.rounds_given.then_some(opts.rounds);
        all::with_all_cpus(|| all::run(&opts.with, rounds, opts.scale))
    };
    let pinned = match opts.pin.map(apply_pin).transpose() {
        Ok(pinned) => pinned,
        Err(msg) => {
            eprintln!("error: --pin: {msg}");
            return ExitCode::from(2);
        }
    };
    if opts.instructions {
        // Instruction counts do not depend on pinning or load: no affinity
        // in the header.
        if let Err(msg) = run_instructions(&opts, machine::describe_cpu()) {
            eprintln!("error: {msg}");
            return ExitCode::FAILURE;
        }
    } else {
        run_timings(&opts, machine::describe(pinned), &others);
    }
    if !failed.is_empty() {
        // The lines that were measured are printed; the status says some
        // are missing.
        for e in &failed {
            eprintln!("error: --all: {e}");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            workloads: Vec::new(),
            task_memory: false,
            rounds: 1,
            warmup: 0,
            scale: None,
            csv: false,
            runtimes: Vec::new(),
            pin: None,
            instructions: false,
            wall_clock: false,
            with: Vec::new(),
            rounds_given: false,
            log_rounds: false,
            patience: DEFAULT_PATIENCE,
        }
    }

    #[test]
    fn runs_spread_evenly_over_a_round() {
        for (runs, steps) in [(1, 1), (1, 38), (13, 38), (38, 38), (3, 9)] {
            let at: Vec<usize> = (0..steps).filter(|&s| runs_at(s, runs, steps)).collect();
            assert_eq!(at.len(), runs, "{runs} of {steps}: {at:?}");
        }
        // 3 runs in 9 steps: one per third.
        let at: Vec<usize> = (0..9).filter(|&s| runs_at(s, 3, 9)).collect();
        assert_eq!(at, [2, 5, 8]);
    }

    #[test]
    fn short_runs_repeat_to_fill_a_round() {
        let ms = Duration::from_millis;
        assert_eq!(repeats_for(MIN_ROUND, MIN_ROUND), 1);
        assert_eq!(repeats_for(MIN_ROUND * 3, MIN_ROUND * 3), 1);
        assert_eq!(repeats_for(MIN_ROUND / 4, MIN_ROUND / 4), 4);
        assert_eq!(repeats_for(ms(15), ms(15)), 4);
        assert_eq!(repeats_for(Duration::ZERO, Duration::ZERO), MAX_REPEATS);
        // A run that mostly waits for the real clock: few repeats.
        assert_eq!(repeats_for(ms(1), ms(300)), 3);
        assert_eq!(repeats_for(ms(1), ms(2000)), 1);
    }

    #[test]
    fn only_selects_workloads_and_task_memory_by_prefix() {
        let mut opts = options();
        select_workloads("ping_pong, task_memory_total,ping_pong", &mut opts).unwrap();
        assert_eq!(opts.workloads, [Workload::PingPong]);
        assert!(opts.task_memory);
        assert!(select_workloads("nope", &mut opts).is_err());
    }

    #[test]
    fn instructions_mode_has_its_own_default_scale() {
        let mut opts = options();
        assert_eq!(opts.scale(), 1.0);
        opts.instructions = true;
        assert_eq!(opts.scale(), instructions::DEFAULT_SCALE);
        opts.scale = Some(0.2);
        assert_eq!(opts.scale(), 0.2);
    }
}
