//! `cargo run --release -p bench --bin echo`: a TCP echo benchmark on
//! loopback — trio vs tokio `current_thread` vs smol vs a raw mio loop (the
//! ceiling) — reporting the **server's CPU time per message** beside msgs/s,
//! and a bulk transfer (issue 12, item 5; method in
//! `../shared/BENCHMARKING.md`).
//!
//! # What runs
//!
//! Three kinds of process, all this binary:
//!
//! * the **driver** (no mode argument): runs the rounds and prints the table;
//! * a **server** (`echo server KIND CONNS [--cpu N]`, [`servers`]): single
//!   threaded, pinned to the server CPU (default 0); serves exactly CONNS
//!   connections, echoing, and exits when they have all closed;
//! * the **load generator** (`echo client ADDR ...` / `echo bulk ADDR ...`,
//!   [`client`]): one thread, a mio loop, pinned to the client CPU
//!   (default 1).
//!
//! **Ping-pong**: 64 connections, each sends a 64-byte message and waits for
//! the whole echo before the next; 3000 round trips per connection (192 000
//! messages) after 200 of warm-up. **Bulk**: one connection; the client
//! writes 1 GiB in 64 KiB writes while reading it back — the server *echoes*
//! it (the same server code as ping-pong), so the server receives 1 GiB and
//! sends 1 GiB; after a 64 MiB warm-up.
//!
//! # What is measured
//!
//! The client connects and warms up, then says `ready`; the driver reads
//! the server's CPU time ([`cpu`]: the sum over its threads of
//! `/proc/PID/task/*/schedstat`, user + kernel, ns), lets the client go,
//! and reads it again when the client reports `done` with its elapsed time.
//! Per server and round:
//!
//! * **msgs/s** (ping-pong) or **GiB/s** (bulk, one direction's payload);
//! * **server CPU per message** (us) or **per GiB** (s): the figure that does
//!   not depend on which side is the bottleneck — on 2 cores the client costs
//!   about as much per message as the fastest servers, so msgs/s meets a
//!   shared ceiling and hides server differences;
//! * **server busy**: server CPU / elapsed (near 100%: the server was the
//!   bottleneck), and **client busy**, the load generator's: when neither is
//!   near 100%, other load on the machine was (both wait on each other);
//! * **server sleeps/msg** (ping-pong tables): how many times per message
//!   the server's threads went to sleep, the change in the sum of
//!   `voluntary_ctxt_switches` over `/proc/PID/task/*/status` across the
//!   window. Every sleep and wake-up is kernel time inside the CPU
//!   figure; a server with a thread per core sleeps whenever its own
//!   connections are all waiting, so this is what separates it from tokio
//!   `multi_thread` at 64 connections (see the README). Shown, not in the
//!   CSV.
//!
//! Rounds (default 7, at least 5 asked by the issue) interleave the servers,
//! rotating their order each round so that none always runs first. Each
//! figure is the median over the rounds with its min–max; the **ratios**
//! trio/tokio, trio/mio, trio/smol of CPU per message are taken per round
//! (both samples saw nearly the same machine), then their median and range.
//!
//! A run that fails (a process error, or a client that sees no event for a
//! minute) is reported on stderr and left out of its round; the others are
//! still reported, and the exit status is then non-zero.
//!
//! # Every core (`--multicore`)
//!
//! Issue 19, item 4: the servers use every CPU the process may use
//! ([`multicore`]): **trio-pc** (`trio::PerCore`, one run per core, a
//! `SO_REUSEPORT` listener each), **tokio-mt** (tokio `multi_thread`, one
//! worker per core, one listener, work stealing) and **tokio-pc** (one
//! tokio `current_thread` runtime per core, a `SO_REUSEPORT` listener
//! each). Ping-pong at 64 and at 1000 connections (`--conns N` for one
//! count), with the same total of messages as the 64-connection run
//! (3000 × 64 × scale), no bulk; server and client unpinned unless
//! `--server-cpu` / `--client-cpu` say otherwise (a multi-core server is
//! never pinned). Workloads `mc_pingpong_64` and `mc_pingpong_1000`; the
//! ratios are trio-pc/tokio-mt and trio-pc/tokio-pc; the goal line judges
//! trio-pc's server CPU per message ≤ tokio-mt's.
//!
//! On a machine with few cores (2 here) the load generator shares the
//! cores with the server, so msgs/s cannot show how a server scales with
//! cores; the server CPU per message is still comparable.
//!
//! `--multicore` also works with `--instructions`, `--syscalls` and
//! `--profile trio-pc` (ping-pong only, at `--conns`, default 64): the
//! counts are summed over every thread of the server, so they say whether
//! a per-message difference is user-space work (instructions) or kernel
//! work (syscalls), which the timings cannot separate. Under callgrind the
//! server's threads run one at a time, and under strace each syscall is
//! slowed, so batching (messages per `epoll_wait`) differs from a timed run.
//!
//! # Other modes
//!
//! * `--instructions`: instead of timing, each server runs under
//!   `valgrind --tool=callgrind` for ping-pong at `m` and `2m` messages per
//!   connection (`m` = 3000 × `--scale`, default scale 0.05) and the
//!   difference of the totals gives **user-space instructions per message**,
//!   start-up subtracted, independent of the machine's load. Callgrind slows
//!   the server ~50x, so each `epoll_wait` finds many connections ready:
//!   the counts are of that batched regime. Kernel work is not counted.
//! * `--syscalls`: each server under `strace -f -c` for one ping-pong run
//!   (default scale 0.1); prints syscalls per message (warm-up and
//!   connection set-up included in the count, so slightly above the floor
//!   of one `recvfrom` + one `sendto`), then per MiB of a bulk run (unless
//!   `--no-bulk`). strace slows the server, so batching differs from a
//!   timed run: `epoll_wait` per message is lower here.
//! * `--profile KIND`: where one server's user-space instructions per
//!   message go, by function and by source file: callgrind at `m` and `2m`
//!   messages per connection, per-function counts subtracted (needs
//!   `callgrind_annotate`, part of valgrind).
//!
//! # The schedule-point experiment (feature `unscheduled-send`)
//!
//! Built with `--features unscheduled-send`, trio's handler (trio and
//! trio-pc) sends by `send_all_unscheduled`: a send that did not wait then
//! takes no schedule point, which DESIGN §6 requires of `send_all` (so this
//! is not a server to copy). Comparing the two builds gives what that
//! schedule point costs per message: the task is polled a second time,
//! after the other ready tasks, before it receives again. tokio's servers
//! are the same in both builds, a check that nothing else moved. The
//! binary then says so on its first line. Build it apart, so that
//! `target/release/echo` stays the real one:
//!
//! ```text
//! CARGO_TARGET_DIR=target/unsched cargo build --release -p bench --features unscheduled-send
//! target/unsched/release/echo --multicore --instructions --servers trio-pc,tokio-mt
//! ```
//!
//! (A compile-time switch rather than a second server kind: a second trio
//! handler in the same binary changes how the first is inlined, which
//! moved trio's count by 7%.)
//!
//! # Options
//!
//! `--rounds N`, `--scale F` (multiplies message counts and bulk bytes),
//! `--quick` (= `--scale 0.02 --rounds 1`: a CI smoke run of a few seconds,
//! no timing assertions), `--servers trio,tokio,smol,mio`, `--conns N`,
//! `--size BYTES`, `--no-bulk`, `--server-cpu N`, `--client-cpu N`
//! (defaults 0 and 1; where the defaults are not both available, e.g. on a
//! 1-CPU runner, the run goes unpinned and says so), `--no-pin`, `--nice N` (server and client at nice N; needs CAP_SYS_NICE
//! below 0; on the shared VMs nice -10 did not visibly reduce the noise),
//! `--machine` / `--csv`.
//!
//! Under the ping-pong table, a `goal:` line judges the issue's goal (trio's
//! server CPU per message ≤ tokio's and ≤ 1.05 × mio's) on the medians of
//! the per-round ratios; with a wide spread it is a hint, not a verdict.
//!
//! # Reading the figures on a shared machine
//!
//! When other processes load the cores, the server and the client wait for
//! the CPU after each wake-up: both show low busy figures, msgs/s falls, and
//! more messages are ready per `epoll_wait`, which lowers every server's CPU
//! per message by an amount that depends on the moment. The per-round ratios
//! absorb part of this; `--instructions` and `--profile` are not affected at
//! all (but count user space only).
//!
//! # `--machine` CSV
//!
//! The header `workload,server,metric,unit,median,min,max,rounds`, then one
//! line per figure: `workload` is `pingpong` or `bulk` (or `pingpong_ir`,
//! `pingpong_syscalls`, `bulk_syscalls`, `pingpong_profile`); `server` a
//! server name or a ratio such as `trio/tokio`; `metric` one of `rate`,
//! `server_cpu`, `server_busy`, `client_busy`, `cpu_ratio`,
//! `instructions`, a syscall name, or (profile) `total` or a function name
//! (commas turned into `;`); `unit` e.g. `msgs_per_s`, `us_per_msg`,
//! `gib_per_s`, `s_per_gib`, `fraction`, `x`, `ir_per_msg`,
//! `calls_per_msg`, `calls_per_mib`; `rounds` the number of samples behind
//! the figure. The command and machine lines go to stderr.
//!
//! Modules: [`servers`], [`client`], [`run`] (one server process against
//! one client process, CPU sampled around the window), [`cpu`] (CPU time
//! and spreads), [`counts`] (the counting modes). `machine.rs` is the
//! micro-benchmarks' own module, included by path (no copy, no change to
//! their `main.rs`).

mod client;
mod counts;
mod cpu;
#[allow(dead_code)] // the micro-benchmarks use more of it than this binary
#[path = "../../machine.rs"]
mod machine;
mod multicore;
mod run;
mod servers;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use client::{Bulk, PingPong};
use counts::{instructions, profile, syscalls};
use cpu::Spread;
use run::{Job, Outcome, Wrapper, run_once};
use servers::Kind;

const GIB: f64 = (1u64 << 30) as f64;
/// Round trips per connection at scale 1.
const MSGS: usize = 3000;
const WARMUP_MSGS: usize = 200;
const BULK_BYTES: u64 = 1 << 30;
const BULK_WARMUP: u64 = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Time,
    Instructions,
    Syscalls,
    /// `--profile KIND`.
    Profile(Kind),
}

#[derive(Clone, Debug)]
struct Options {
    rounds: usize,
    scale: Option<f64>,
    servers: Vec<Kind>,
    conns: usize,
    size: usize,
    bulk: bool,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
    /// Whether `--server-cpu` / `--client-cpu` were given (else the
    /// defaults 0 and 1 fall back to no pinning where they do not exist).
    cpus_given: bool,
    /// `--nice N` for the server and the client.
    nice: Option<i32>,
    csv: bool,
    mode: Mode,
    /// `--multicore`: the servers on every core, 64 and 1000 connections.
    multicore: bool,
    /// Whether `--conns` / `--servers` were given (else `--multicore`
    /// picks its own).
    conns_given: bool,
    servers_given: bool,
}

impl Options {
    fn scale(&self) -> f64 {
        self.scale.unwrap_or(match self.mode {
            Mode::Time => 1.0,
            Mode::Instructions | Mode::Profile(_) => 0.05,
            Mode::Syscalls => 0.1,
        })
    }

    fn ping_pong(&self, scale: f64) -> PingPong {
        PingPong {
            conns: self.conns,
            size: self.size,
            warmup: scaled(WARMUP_MSGS, self.scale()),
            msgs: scaled(MSGS, scale),
        }
    }

    fn bulk_job(&self) -> Bulk {
        let s = self.scale();
        Bulk {
            warmup: ((BULK_WARMUP as f64 * s) as u64).max(1 << 20),
            bytes: ((BULK_BYTES as f64 * s) as u64).max(1 << 20),
        }
    }
}

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale).round() as usize).max(1)
}

const USAGE: &str = "\
usage: echo [--rounds N] [--scale F | --quick] [--servers trio,tokio,smol,mio]
            [--multicore] [--conns N] [--size BYTES] [--no-bulk] [--server-cpu N] [--client-cpu N]
            [--no-pin] [--nice N] [--machine|--csv] [--instructions | --syscalls | --profile KIND]
       echo server KIND CONNS [--cpu N] [--nice N]
       echo client ADDR CONNS SIZE WARMUP MSGS [--cpu N] [--nice N]
       echo bulk ADDR WARMUP_BYTES BYTES [--cpu N] [--nice N]
(see the module docs: cargo doc -p bench --bin echo)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("server") => child_server(&args[1..]),
        Some("client") => child_client(&args[1..]),
        Some("bulk") => child_bulk(&args[1..]),
        _ => parse_options(&args).and_then(|opts| drive(&opts)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Child modes.
// ---------------------------------------------------------------------------

/// Splits off trailing `--cpu N` / `--nice N` options (any order) and
/// applies them, before the child starts any thread (threads inherit both).
fn pin_from_args(mut args: &[String]) -> Result<&[String], String> {
    loop {
        match args {
            [rest @ .., flag, cpu] if flag == "--cpu" => {
                let cpu: usize = parse_num(cpu, "--cpu")?;
                machine::pin_to(cpu).map_err(|e| format!("cannot pin to CPU {cpu}: {e}"))?;
                args = rest;
            }
            [rest @ .., flag, nice] if flag == "--nice" => {
                set_nice(parse_num(nice, "--nice")?)?;
                args = rest;
            }
            _ => return Ok(args),
        }
    }
}

/// Sets this thread's nice value (Linux: per thread; later threads
/// inherit it).
fn set_nice(nice: i32) -> Result<(), String> {
    // SAFETY: `setpriority` takes plain integers; `who` 0 is the caller.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "cannot set nice {nice} (needs CAP_SYS_NICE below 0): {e}"
        ));
    }
    Ok(())
}

fn child_server(args: &[String]) -> Result<(), String> {
    let args = pin_from_args(args)?;
    let [kind, conns] = args else {
        return Err(format!("server: bad arguments\n{USAGE}"));
    };
    let kind = Kind::from_name(kind).ok_or_else(|| format!("unknown server `{kind}`"))?;
    servers::serve(kind, parse_num(conns, "CONNS")?)
}

fn child_client(args: &[String]) -> Result<(), String> {
    let args = pin_from_args(args)?;
    let [addr, conns, size, warmup, msgs] = args else {
        return Err(format!("client: bad arguments\n{USAGE}"));
    };
    let cfg = PingPong {
        conns: parse_num(conns, "CONNS")?,
        size: parse_num(size, "SIZE")?,
        warmup: parse_num(warmup, "WARMUP")?,
        msgs: parse_num(msgs, "MSGS")?,
    };
    if cfg.size == 0 {
        return Err("SIZE must be at least 1".into());
    }
    client::ping_pong(parse_num(addr, "ADDR")?, cfg)
}

fn child_bulk(args: &[String]) -> Result<(), String> {
    let args = pin_from_args(args)?;
    let [addr, warmup, bytes] = args else {
        return Err(format!("bulk: bad arguments\n{USAGE}"));
    };
    let cfg = Bulk {
        warmup: parse_num(warmup, "WARMUP_BYTES")?,
        bytes: parse_num(bytes, "BYTES")?,
    };
    client::bulk(parse_num(addr, "ADDR")?, cfg)
}

// ---------------------------------------------------------------------------
// Options.
// ---------------------------------------------------------------------------

fn parse_num<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("{name}: cannot parse `{s}`"))
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        rounds: 7,
        scale: None,
        servers: Kind::ALL.to_vec(),
        conns: 64,
        size: 64,
        bulk: true,
        server_cpu: Some(0),
        client_cpu: Some(1),
        cpus_given: false,
        nice: None,
        csv: false,
        mode: Mode::Time,
        multicore: false,
        conns_given: false,
        servers_given: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--rounds" => opts.rounds = parse_num(value("--rounds")?, "--rounds")?,
            "--scale" => {
                let s: f64 = parse_num(value("--scale")?, "--scale")?;
                if !(s.is_finite() && s > 0.0) {
                    return Err("--scale must be a positive number".into());
                }
                opts.scale = Some(s);
            }
            "--quick" => {
                opts.scale = Some(0.02);
                opts.rounds = 1;
            }
            "--servers" => {
                opts.servers_given = true;
                opts.servers = value("--servers")?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Kind::from_name(s).ok_or_else(|| format!("unknown server `{s}`")))
                    .collect::<Result<_, _>>()?;
            }
            "--conns" => {
                opts.conns = parse_num(value("--conns")?, "--conns")?;
                opts.conns_given = true;
            }
            "--multicore" => opts.multicore = true,
            "--size" => opts.size = parse_num(value("--size")?, "--size")?,
            "--no-bulk" => opts.bulk = false,
            "--server-cpu" => {
                opts.server_cpu = Some(parse_num(value("--server-cpu")?, "--server-cpu")?);
                opts.cpus_given = true;
            }
            "--client-cpu" => {
                opts.client_cpu = Some(parse_num(value("--client-cpu")?, "--client-cpu")?);
                opts.cpus_given = true;
            }
            "--no-pin" => (opts.server_cpu, opts.client_cpu) = (None, None),
            "--nice" => opts.nice = Some(parse_num(value("--nice")?, "--nice")?),
            "--machine" | "--csv" => opts.csv = true,
            "--instructions" => opts.mode = Mode::Instructions,
            "--syscalls" => opts.mode = Mode::Syscalls,
            "--profile" => {
                let name = value("--profile")?;
                let kind =
                    Kind::from_name(name).ok_or_else(|| format!("unknown server `{name}`"))?;
                opts.mode = Mode::Profile(kind);
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if opts.multicore {
        if !opts.servers_given {
            opts.servers = Kind::MULTICORE.to_vec();
        }
        if !opts.cpus_given {
            (opts.server_cpu, opts.client_cpu) = (None, None);
        }
        // The counting modes run the multi-core servers too (one
        // connection count: `--conns`, default 64), ping-pong only: the
        // bulk transfer is one connection, served by one core.
        if opts.mode != Mode::Time {
            opts.bulk = false;
        }
    }
    if opts.rounds == 0 || opts.conns == 0 || opts.size == 0 || opts.servers.is_empty() {
        return Err("--rounds, --conns, --size and --servers must not be empty or 0".into());
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------
// The driver.
// ---------------------------------------------------------------------------

/// One figure of the report (a CSV line).
struct Figure {
    workload: &'static str,
    server: String,
    metric: String,
    unit: &'static str,
    spread: Spread,
    rounds: usize,
}

fn drive(opts: &Options) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let command: Vec<String> = std::env::args().collect();
    let cpus = machine::allowed_cpus().map_err(|e| format!("affinity mask: {e}"))?;
    let mut opts = opts.clone();
    for cpu in [opts.server_cpu, opts.client_cpu].into_iter().flatten() {
        if cpus.contains(&cpu) {
            continue;
        }
        if opts.cpus_given {
            return Err(format!(
                "CPU {cpu} is not available (allowed: {cpus:?}); use --server-cpu/--client-cpu or --no-pin"
            ));
        }
        // The defaults on a smaller machine (a 1-CPU CI runner): run, unpinned.
        eprintln!("echo: CPU {cpu} is not available (allowed: {cpus:?}): running unpinned");
        (opts.server_cpu, opts.client_cpu) = (None, None);
        break;
    }
    let opts = &opts;
    let pinning = match (opts.server_cpu, opts.client_cpu) {
        (Some(s), Some(c)) => format!("server pinned to CPU {s}, client to CPU {c}"),
        (Some(s), None) => format!("server pinned to CPU {s}, client NOT pinned"),
        (None, Some(c)) => format!("server NOT pinned, client pinned to CPU {c}"),
        (None, None) => "NOT pinned".into(),
    };
    let pinning = match opts.nice {
        Some(n) => format!("{pinning}; both at nice {n}"),
        None => pinning,
    };
    let mut header = vec![
        format!("command: {}", command.join(" ")),
        format!("{}; {pinning}", machine::describe_cpu()),
    ];
    if cfg!(feature = "unscheduled-send") {
        header.insert(
            0,
            "EXPERIMENT (feature unscheduled-send): trio's handler sends by send_all_unscheduled, \
             without send_all's schedule point; not a trio server to compare as is"
                .into(),
        );
    }
    for line in &header {
        if opts.csv {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    // Timed runs that failed (a stall on the shared machine, a crash): the
    // others are still reported, and the exit status says so.
    let mut failures = Vec::new();
    if opts.multicore {
        let line = format!(
            "multicore: the servers use all {} CPUs; the load generator shares them, \
             so msgs/s cannot show scaling (compare server CPU per message)",
            cpus.len()
        );
        if opts.csv {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    let figures = match opts.mode {
        Mode::Time if opts.multicore => time_multicore(&exe, opts, &mut failures)?,
        Mode::Time => time(&exe, opts, &mut failures)?,
        Mode::Instructions => instructions(&exe, opts)?,
        Mode::Syscalls => syscalls(&exe, opts)?,
        Mode::Profile(kind) => profile(&exe, opts, kind)?,
    };
    if opts.csv {
        println!("workload,server,metric,unit,median,min,max,rounds");
        for f in &figures {
            println!(
                "{},{},{},{},{:.4},{:.4},{:.4},{}",
                f.workload,
                f.server,
                f.metric,
                f.unit,
                f.spread.median,
                f.spread.min,
                f.spread.max,
                f.rounds
            );
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} run(s) failed and are missing from the figures:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}

/// Per round: each selected server's outcome (`None` if not selected).
type Rounds = Vec<Vec<(Kind, Outcome)>>;

/// Runs the rounds. A run that fails is reported on stderr, left out of its
/// round and added to `failures`; the rounds go on.
fn run_rounds(
    exe: &Path,
    opts: &Options,
    job: Job,
    label: &str,
    failures: &mut Vec<String>,
) -> Rounds {
    // An in-place progress line, on a terminal only.
    let tty = std::io::stderr().is_terminal();
    let mut rounds = Vec::with_capacity(opts.rounds);
    for r in 0..opts.rounds {
        let mut order = opts.servers.clone();
        let len = order.len();
        order.rotate_left(r % len);
        let mut samples = Vec::with_capacity(len);
        for kind in order {
            if tty {
                eprint!(
                    "\r{label}: round {}/{} {:<6}",
                    r + 1,
                    opts.rounds,
                    kind.name()
                );
                let _ = std::io::stderr().flush();
            }
            match run_once(exe, opts, kind, job, &Wrapper::None) {
                Ok(outcome) => samples.push((kind, outcome)),
                Err(e) => {
                    let e = format!("{label} round {}: {e}", r + 1);
                    eprintln!("\necho: run failed (left out): {e}");
                    failures.push(e);
                }
            }
        }
        rounds.push(samples);
    }
    if tty {
        eprint!("\r{:50}\r", "");
    }
    rounds
}

/// The spread over rounds of `f(outcome)` for `kind`.
fn spread_of(rounds: &Rounds, kind: Kind, f: impl Fn(&Outcome) -> f64) -> Option<Spread> {
    let samples: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r.iter().find(|(k, _)| *k == kind).map(|(_, o)| f(o)))
        .collect();
    Spread::of(&samples)
}

/// Per-round ratios `base` / `other` of `f`.
fn ratio_of(
    rounds: &Rounds,
    base: Kind,
    other: Kind,
    f: impl Fn(&Outcome) -> f64,
) -> Option<Spread> {
    let samples: Vec<f64> = rounds
        .iter()
        .filter_map(|r| {
            let get = |kind| r.iter().find(|(k, _)| *k == kind).map(|(_, o)| f(o));
            Some(get(base)? / get(other)?)
        })
        .collect();
    Spread::of(&samples)
}

/// The server the ratios are of, and the ones it is compared with.
fn ratio_pairs(opts: &Options) -> (Kind, Vec<Kind>) {
    if opts.multicore {
        (
            Kind::TrioPerCore,
            vec![Kind::TokioMultiThread, Kind::TokioPerCore],
        )
    } else {
        (Kind::Trio, vec![Kind::Tokio, Kind::Mio, Kind::Smol])
    }
}

fn time(exe: &Path, opts: &Options, failures: &mut Vec<String>) -> Result<Vec<Figure>, String> {
    let pp = opts.ping_pong(opts.scale());
    let mut figures = Vec::new();
    if !opts.csv {
        println!(
            "ping-pong: {} connections x {} B, {} round trips each ({} messages) after {} of warm-up; \
             {} rounds, servers interleaved",
            pp.conns,
            pp.size,
            pp.msgs,
            pp.conns * pp.msgs,
            pp.warmup,
            opts.rounds
        );
        println!(
            "figures: median [min-max] over the rounds. PROVISIONAL on a shared machine: \
             compare the spreads, not just the medians."
        );
    }
    let rounds = run_rounds(exe, opts, Job::PingPong(pp), "ping-pong", failures);
    let rate = |o: &Outcome| o.units as f64 * 1e9 / o.elapsed_ns as f64;
    let cpu_us = |o: &Outcome| o.server_cpu_ns as f64 / 1e3 / o.units as f64;
    let busy = |o: &Outcome| o.server_cpu_ns as f64 / o.elapsed_ns as f64;
    let sleeps = |o: &Outcome| o.server_sleeps as f64 / o.units as f64;
    table(
        opts,
        &rounds,
        &mut figures,
        Table {
            workload: "pingpong",
            title: "ping-pong",
            rate: ("msgs/s", "msgs_per_s", 1.0, &rate),
            cpu: ("server CPU/msg (us)", "us_per_msg", &cpu_us),
            busy: &busy,
            sleeps: Some(&sleeps),
        },
    );
    if opts.bulk {
        let b = opts.bulk_job();
        if !opts.csv {
            println!(
                "\nbulk: one connection; the client sends {:.3} GiB in 64 KiB writes and reads it back \
                 (the server echoes it: it receives and sends {:.3} GiB); after {} MiB of warm-up",
                b.bytes as f64 / GIB,
                b.bytes as f64 / GIB,
                b.warmup >> 20
            );
        }
        let rounds = run_rounds(exe, opts, Job::Bulk(b), "bulk", failures);
        let gibs = |o: &Outcome| o.units as f64 / GIB * 1e9 / o.elapsed_ns as f64;
        let cpu_s = |o: &Outcome| o.server_cpu_ns as f64 / 1e9 / (o.units as f64 / GIB);
        table(
            opts,
            &rounds,
            &mut figures,
            Table {
                workload: "bulk",
                title: "bulk",
                rate: ("GiB/s", "gib_per_s", 1.0, &gibs),
                cpu: ("server CPU/GiB (s)", "s_per_gib", &cpu_s),
                busy: &busy,
                sleeps: None,
            },
        );
    }
    Ok(figures)
}

/// `--multicore`: ping-pong at 64 and 1000 connections (or `--conns`),
/// the same total of messages at each.
fn time_multicore(
    exe: &Path,
    opts: &Options,
    failures: &mut Vec<String>,
) -> Result<Vec<Figure>, String> {
    let counts = if opts.conns_given {
        vec![opts.conns]
    } else {
        vec![64, 1000]
    };
    let mut figures = Vec::new();
    for conns in counts {
        // The 64-connection run's totals, spread over `conns` connections.
        let per_conn = |n: usize| (n * 64).div_ceil(conns);
        let pp = PingPong {
            conns,
            size: opts.size,
            warmup: scaled(per_conn(WARMUP_MSGS), opts.scale()),
            msgs: scaled(per_conn(MSGS), opts.scale()),
        };
        if !opts.csv {
            println!(
                "\nmulticore ping-pong: {} connections x {} B, {} round trips each ({} messages) \
                 after {} of warm-up; {} rounds, servers interleaved",
                pp.conns,
                pp.size,
                pp.msgs,
                pp.conns * pp.msgs,
                pp.warmup,
                opts.rounds
            );
        }
        let label = format!("multicore ping-pong {conns}");
        let rounds = run_rounds(exe, opts, Job::PingPong(pp), &label, failures);
        let rate = |o: &Outcome| o.units as f64 * 1e9 / o.elapsed_ns as f64;
        let cpu_us = |o: &Outcome| o.server_cpu_ns as f64 / 1e3 / o.units as f64;
        let busy = |o: &Outcome| o.server_cpu_ns as f64 / o.elapsed_ns as f64;
        let sleeps = |o: &Outcome| o.server_sleeps as f64 / o.units as f64;
        // A name per connection count, made once per run of the binary.
        let workload: &'static str = Box::leak(format!("mc_pingpong_{conns}").into_boxed_str());
        table(
            opts,
            &rounds,
            &mut figures,
            Table {
                workload,
                title: "multicore",
                rate: ("msgs/s", "msgs_per_s", 1.0, &rate),
                cpu: ("server CPU/msg (us)", "us_per_msg", &cpu_us),
                busy: &busy,
                sleeps: Some(&sleeps),
            },
        );
    }
    Ok(figures)
}

type Metric<'a> = &'a dyn Fn(&Outcome) -> f64;

struct Table<'a> {
    workload: &'static str,
    title: &'static str,
    /// Column title, CSV unit, display scale, metric.
    rate: (&'static str, &'static str, f64, Metric<'a>),
    cpu: (&'static str, &'static str, Metric<'a>),
    busy: Metric<'a>,
    /// The server's sleeps per message (ping-pong tables only): a thread
    /// that blocks and is woken again costs kernel time, which the CPU
    /// column includes. Printed, not in the CSV.
    sleeps: Option<Metric<'a>>,
}

fn fmt_spread(s: Spread, digits: usize) -> String {
    format!("{:.d$} [{:.d$}-{:.d$}]", s.median, s.min, s.max, d = digits)
}

fn digits_for(v: f64) -> usize {
    match v.abs() {
        x if x >= 1000.0 => 0,
        x if x >= 10.0 => 1,
        x if x >= 1.0 => 2,
        _ => 3,
    }
}

fn table(opts: &Options, rounds: &Rounds, figures: &mut Vec<Figure>, t: Table<'_>) {
    if !opts.csv {
        let sleeps = if t.sleeps.is_some() {
            "  server sleeps/msg"
        } else {
            ""
        };
        println!(
            "\n{:<10} {:<28} {:<28} {:<16} {:<16}{sleeps}",
            t.title, t.rate.0, t.cpu.0, "server busy (%)", "client busy (%)"
        );
    }
    // Samples behind each figure: failed runs are left out of their round.
    let has = |r: &Vec<(Kind, Outcome)>, kind| r.iter().any(|(k, _)| *k == kind);
    let count = |kind| rounds.iter().filter(|r| has(r, kind)).count();
    let (base, others) = ratio_pairs(opts);
    let both = |other| {
        let rounds = rounds.iter();
        rounds.filter(|r| has(r, base) && has(r, other)).count()
    };
    for &kind in &opts.servers {
        let client_busy = |o: &Outcome| o.client_cpu_ns as f64 / o.elapsed_ns as f64;
        let (Some(rate), Some(cpu), Some(busy), Some(client)) = (
            spread_of(rounds, kind, |o| (t.rate.3)(o) * t.rate.2),
            spread_of(rounds, kind, t.cpu.2),
            spread_of(rounds, kind, t.busy),
            spread_of(rounds, kind, client_busy),
        ) else {
            continue;
        };
        if !opts.csv {
            let sleeps = t
                .sleeps
                .and_then(|m| spread_of(rounds, kind, m))
                .map_or(String::new(), |s| format!("  {}", fmt_spread(s, 3)));
            println!(
                "{:<10} {:<28} {:<28} {:<16} {:<16}{sleeps}",
                kind.name(),
                fmt_spread(rate, digits_for(rate.median)),
                fmt_spread(cpu, digits_for(cpu.median)),
                fmt_spread(cpu::scaled(busy, 100.0), 0),
                fmt_spread(cpu::scaled(client, 100.0), 0),
            );
        }
        let mut push = |metric: &str, unit, spread| {
            figures.push(Figure {
                workload: t.workload,
                server: kind.name().into(),
                metric: metric.into(),
                unit,
                spread,
                rounds: count(kind),
            })
        };
        push("rate", t.rate.1, rate);
        push("server_cpu", t.cpu.1, cpu);
        push("server_busy", "fraction", busy);
        push("client_busy", "fraction", client);
    }
    if !opts.servers.contains(&base) {
        return;
    }
    let mut line = String::from("server CPU ratios (per round):");
    for other in others {
        let Some(r) = ratio_of(rounds, base, other, t.cpu.2) else {
            continue;
        };
        line += &format!("  {}/{} {}", base.name(), other.name(), fmt_spread(r, 3));
        figures.push(Figure {
            workload: t.workload,
            server: format!("{}/{}", base.name(), other.name()),
            metric: "cpu_ratio".into(),
            unit: "x",
            spread: r,
            rounds: both(other),
        });
    }
    if !opts.csv {
        println!("{line}");
        if t.workload == "pingpong" {
            goal_line(rounds, t.cpu.2);
        } else if opts.multicore {
            let verdict = match ratio_of(rounds, base, Kind::TokioMultiThread, t.cpu.2) {
                Some(r) if r.median <= 1.0 => format!("met (median {:.3})", r.median),
                Some(r) => format!("MISSED (median {:.3})", r.median),
                None => "not measured".into(),
            };
            println!("goal: trio-pc <= tokio-mt: {verdict}");
        }
    }
}

/// The issue's goal, judged on the medians of the per-round ratios.
fn goal_line(rounds: &Rounds, cpu: Metric<'_>) {
    let verdict = |other, limit: f64| match ratio_of(rounds, Kind::Trio, other, cpu) {
        Some(r) if r.median <= limit => format!("met (median {:.3})", r.median),
        Some(r) => format!("MISSED (median {:.3})", r.median),
        None => "not measured".into(),
    };
    println!(
        "goal: trio <= tokio: {}; trio <= 1.05 x mio: {}",
        verdict(Kind::Tokio, 1.0),
        verdict(Kind::Mio, 1.05)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_small() {
        let args: Vec<String> = ["--quick"].iter().map(|s| s.to_string()).collect();
        let opts = parse_options(&args).unwrap();
        assert_eq!(opts.rounds, 1);
        assert_eq!(opts.ping_pong(opts.scale()).msgs, 60);
        assert!(opts.bulk_job().bytes < 32 << 20);
    }
}
