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
//!   near 100%, other load on the machine was (both wait on each other).
//!
//! Rounds (default 7, at least 5 asked by the issue) interleave the servers,
//! rotating their order each round so that none always runs first. Each
//! figure is the median over the rounds with its min–max; the **ratios**
//! trio/tokio, trio/mio, trio/smol of CPU per message are taken per round
//! (both samples saw nearly the same machine), then their median and range.
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
//! `calls_per_msg`, `calls_per_mib`. The command and machine lines go to
//! stderr.
//!
//! `machine.rs` is the micro-benchmarks' own module, included by path
//! (no copy, no change to their `main.rs`).

mod client;
mod cpu;
#[allow(dead_code)] // the micro-benchmarks use more of it than this binary
#[path = "../../machine.rs"]
mod machine;
mod servers;

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use client::{Bulk, PingPong};
use cpu::Spread;
use servers::Kind;

const GIB: f64 = (1u64 << 30) as f64;
/// Round trips per connection at scale 1.
const MSGS: usize = 3000;
const WARMUP_MSGS: usize = 200;
const BULK_BYTES: u64 = 1 << 30;
const BULK_WARMUP: u64 = 64 << 20;
/// How long the driver waits for a server to exit once its clients are done
/// (callgrind writes its totals then).
const SERVER_EXIT: Duration = Duration::from_secs(60);

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
            [--conns N] [--size BYTES] [--no-bulk] [--server-cpu N] [--client-cpu N]
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
                opts.servers = value("--servers")?
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Kind::from_name(s).ok_or_else(|| format!("unknown server `{s}`")))
                    .collect::<Result<_, _>>()?;
            }
            "--conns" => opts.conns = parse_num(value("--conns")?, "--conns")?,
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
    if opts.rounds == 0 || opts.conns == 0 || opts.size == 0 || opts.servers.is_empty() {
        return Err("--rounds, --conns, --size and --servers must not be empty or 0".into());
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------
// Running one server against one client.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Job {
    PingPong(PingPong),
    Bulk(Bulk),
}

/// What the server process runs under.
#[derive(Clone, Debug)]
enum Wrapper {
    None,
    /// Callgrind writing its profile to the file (or /dev/null).
    Callgrind(PathBuf),
    Strace(PathBuf),
}

/// One measured run.
#[derive(Clone, Debug)]
struct Outcome {
    elapsed_ns: u64,
    /// Messages (ping-pong) or bytes (bulk) in the measured window.
    units: u64,
    /// Server CPU over the window (0 under a wrapper: not meaningful).
    server_cpu_ns: u64,
    /// The load generator's CPU over the window (0 under a wrapper).
    client_cpu_ns: u64,
    server_stderr: String,
}

/// Kills and reaps a child unless it was waited for.
struct Reap(Option<Child>);

impl Reap {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().expect("child already reaped")
    }

    /// Waits at most `limit` for the child to exit on its own.
    fn wait_for(&mut self, limit: Duration) -> Result<std::process::ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.get().try_wait() {
                Ok(Some(status)) => {
                    self.0 = None;
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => return Err(format!("did not exit within {limit:?}")),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_line(out: &mut BufReader<ChildStdout>, who: &str) -> Result<String, String> {
    let mut line = String::new();
    match out.read_line(&mut line) {
        Ok(0) => Err(format!("{who} exited early")),
        Ok(_) => Ok(line.trim_end().to_string()),
        Err(e) => Err(format!("{who}: {e}")),
    }
}

fn run_once(
    exe: &Path,
    opts: &Options,
    kind: Kind,
    job: Job,
    wrapper: &Wrapper,
) -> Result<Outcome, String> {
    let conns = match job {
        Job::PingPong(p) => p.conns,
        Job::Bulk(_) => 1,
    };
    let mut cmd = match wrapper {
        Wrapper::None => Command::new(exe),
        Wrapper::Callgrind(out) => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(exe);
            c
        }
        Wrapper::Strace(out) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-c", "-o"]).arg(out).arg(exe);
            c
        }
    };
    cmd.args(["server", kind.name(), &conns.to_string()]);
    if let Some(cpu) = opts.server_cpu {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    if let Some(nice) = opts.nice {
        cmd.args(["--nice", &nice.to_string()]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the server ({cmd:?}): {e}"))?;
    let mut server = Reap(Some(child));
    let server_pid = server.get().id();
    let mut server_err = server.get().stderr.take().expect("piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = server_err.read_to_string(&mut s);
        s
    });
    let mut server_out = BufReader::new(server.get().stdout.take().expect("piped"));
    let result = (|| {
        let line = read_line(&mut server_out, "the server")?;
        let port: u16 = line
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("server said `{line}`, not `port N`"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
        let mut cmd = Command::new(exe);
        match job {
            Job::PingPong(p) => cmd.args([
                "client",
                &addr,
                &p.conns.to_string(),
                &p.size.to_string(),
                &p.warmup.to_string(),
                &p.msgs.to_string(),
            ]),
            Job::Bulk(b) => cmd.args(["bulk", &addr, &b.warmup.to_string(), &b.bytes.to_string()]),
        };
        if let Some(cpu) = opts.client_cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        if let Some(nice) = opts.nice {
            cmd.args(["--nice", &nice.to_string()]);
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the client: {e}"))?;
        let mut client = Reap(Some(child));
        let mut client_out = BufReader::new(client.get().stdout.take().expect("piped"));
        let line = read_line(&mut client_out, "the client")?;
        if line != "ready" {
            return Err(format!("client said `{line}`, not `ready`"));
        }
        let measure = matches!(wrapper, Wrapper::None);
        let client_pid = client.get().id();
        let sample = || -> Result<(u64, u64), String> {
            if !measure {
                return Ok((0, 0));
            }
            let server = cpu::process_cpu_ns(server_pid);
            let client = cpu::process_cpu_ns(client_pid);
            Ok((
                server.map_err(|e| format!("server CPU time: {e}"))?,
                client.map_err(|e| format!("client CPU time: {e}"))?,
            ))
        };
        let cpu_before = sample()?;
        let mut stdin = client.get().stdin.take().expect("piped");
        writeln!(stdin, "go").map_err(|e| format!("client stdin: {e}"))?;
        drop(stdin);
        let line = read_line(&mut client_out, "the client")?;
        let cpu_after = sample()?;
        let (elapsed_ns, units) = parse_done(&line)?;
        let status = client
            .wait_for(SERVER_EXIT)
            .map_err(|e| format!("client: {e}"))?;
        if !status.success() {
            return Err(format!("client failed: {status}"));
        }
        let server_cpu = cpu_after.0.saturating_sub(cpu_before.0);
        let client_cpu = cpu_after.1.saturating_sub(cpu_before.1);
        Ok((elapsed_ns, units, server_cpu, client_cpu))
    })();
    // On success the server exits by itself; on failure, Reap kills it.
    let result = result.and_then(|r| {
        let status = server
            .wait_for(SERVER_EXIT)
            .map_err(|e| format!("server: {e}"))?;
        if !status.success() {
            return Err(format!("server failed: {status}"));
        }
        Ok(r)
    });
    drop(server);
    let server_stderr = stderr_reader.join().unwrap_or_default();
    let (elapsed_ns, units, server_cpu_ns, client_cpu_ns) = result.map_err(|e| {
        format!(
            "{} server, {job:?}: {e}\nserver stderr:\n{server_stderr}",
            kind.name()
        )
    })?;
    Ok(Outcome {
        elapsed_ns,
        units,
        server_cpu_ns,
        client_cpu_ns,
        server_stderr,
    })
}

fn parse_done(line: &str) -> Result<(u64, u64), String> {
    let mut f = line.split_whitespace();
    match (f.next(), f.next(), f.next()) {
        (Some("done"), Some(ns), Some(units)) => {
            Ok((parse_num(ns, "elapsed")?, parse_num(units, "units")?))
        }
        _ => Err(format!("client said `{line}`, not `done NS UNITS`")),
    }
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
    let header = [
        format!("command: {}", command.join(" ")),
        format!("{}; {pinning}", machine::describe_cpu()),
    ];
    for line in &header {
        if opts.csv {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    let figures = match opts.mode {
        Mode::Time => time(&exe, opts)?,
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
    Ok(())
}

/// Per round: each selected server's outcome (`None` if not selected).
type Rounds = Vec<Vec<(Kind, Outcome)>>;

fn run_rounds(exe: &Path, opts: &Options, job: Job, label: &str) -> Result<Rounds, String> {
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
            samples.push((kind, run_once(exe, opts, kind, job, &Wrapper::None)?));
        }
        rounds.push(samples);
    }
    if tty {
        eprint!("\r{:50}\r", "");
    }
    Ok(rounds)
}

/// The spread over rounds of `f(outcome)` for `kind`.
fn spread_of(rounds: &Rounds, kind: Kind, f: impl Fn(&Outcome) -> f64) -> Option<Spread> {
    let samples: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r.iter().find(|(k, _)| *k == kind).map(|(_, o)| f(o)))
        .collect();
    Spread::of(&samples)
}

/// Per-round ratios trio / `other` of `f`.
fn ratio_of(rounds: &Rounds, other: Kind, f: impl Fn(&Outcome) -> f64) -> Option<Spread> {
    let samples: Vec<f64> = rounds
        .iter()
        .filter_map(|r| {
            let get = |kind| r.iter().find(|(k, _)| *k == kind).map(|(_, o)| f(o));
            Some(get(Kind::Trio)? / get(other)?)
        })
        .collect();
    Spread::of(&samples)
}

fn time(exe: &Path, opts: &Options) -> Result<Vec<Figure>, String> {
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
    let rounds = run_rounds(exe, opts, Job::PingPong(pp), "ping-pong")?;
    let rate = |o: &Outcome| o.units as f64 * 1e9 / o.elapsed_ns as f64;
    let cpu_us = |o: &Outcome| o.server_cpu_ns as f64 / 1e3 / o.units as f64;
    let busy = |o: &Outcome| o.server_cpu_ns as f64 / o.elapsed_ns as f64;
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
        let rounds = run_rounds(exe, opts, Job::Bulk(b), "bulk")?;
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
    let n = rounds.len();
    if !opts.csv {
        println!(
            "\n{:<8} {:<28} {:<28} {:<16} client busy (%)",
            t.title, t.rate.0, t.cpu.0, "server busy (%)"
        );
    }
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
            println!(
                "{:<8} {:<28} {:<28} {:<16} {}",
                kind.name(),
                fmt_spread(rate, digits_for(rate.median)),
                fmt_spread(cpu, digits_for(cpu.median)),
                fmt_spread(busy.scaled(100.0), 0),
                fmt_spread(client.scaled(100.0), 0),
            );
        }
        let mut push = |metric: &str, unit, spread| {
            figures.push(Figure {
                workload: t.workload,
                server: kind.name().into(),
                metric: metric.into(),
                unit,
                spread,
                rounds: n,
            })
        };
        push("rate", t.rate.1, rate);
        push("server_cpu", t.cpu.1, cpu);
        push("server_busy", "fraction", busy);
        push("client_busy", "fraction", client);
    }
    if !opts.servers.contains(&Kind::Trio) {
        return;
    }
    let mut line = String::from("server CPU ratios (per round):");
    for other in [Kind::Tokio, Kind::Mio, Kind::Smol] {
        let Some(r) = ratio_of(rounds, other, t.cpu.2) else {
            continue;
        };
        line += &format!("  trio/{} {}", other.name(), fmt_spread(r, 3));
        figures.push(Figure {
            workload: t.workload,
            server: format!("trio/{}", other.name()),
            metric: "cpu_ratio".into(),
            unit: "x",
            spread: r,
            rounds: n,
        });
    }
    if !opts.csv {
        println!("{line}");
        if t.workload == "pingpong" {
            goal_line(rounds, t.cpu.2);
        }
    }
}

/// The issue's goal, judged on the medians of the per-round ratios.
fn goal_line(rounds: &Rounds, cpu: Metric<'_>) {
    let verdict = |other, limit: f64| match ratio_of(rounds, other, cpu) {
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

// ---------------------------------------------------------------------------
// --instructions and --syscalls.
// ---------------------------------------------------------------------------

/// A per-run file name in the temporary directory (the caller removes it).
fn temp_path(tool: &str, kind: Kind, n: usize) -> PathBuf {
    std::env::temp_dir().join(format!(
        "echo-{tool}-{}-{}-{n}",
        std::process::id(),
        kind.name()
    ))
}

/// The `N` of callgrind's `==PID== Collected : N`.
fn parse_collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        let (_, after) = line.split_once("Collected :")?;
        after.trim().parse().ok()
    })
}

fn instructions(exe: &Path, opts: &Options) -> Result<Vec<Figure>, String> {
    let (small, large) = (
        opts.ping_pong(opts.scale()),
        opts.ping_pong(2.0 * opts.scale()),
    );
    if large.msgs <= small.msgs {
        return Err("--scale is too small for two distinct message counts".into());
    }
    if !opts.csv {
        println!(
            "instructions per message (callgrind, user space only): ping-pong {} connections x {} B, \
             ({} - {}) round trips per connection, start-up subtracted",
            small.conns, small.size, large.msgs, small.msgs
        );
    }
    let mut per_msg = Vec::new();
    for &kind in &opts.servers {
        let mut ir = [0u64; 2];
        for (slot, job) in ir.iter_mut().zip([small, large]) {
            eprintln!(
                "callgrind: {} at {} msgs per connection ...",
                kind.name(),
                job.msgs
            );
            // A file of our own, removed after, rather than /dev/null: the
            // profile is not read, and no tool here writes to a shared path.
            let out = temp_path("callgrind", kind, job.msgs);
            let o = run_once(
                exe,
                opts,
                kind,
                Job::PingPong(job),
                &Wrapper::Callgrind(out.clone()),
            );
            let _ = std::fs::remove_file(&out);
            let o = o?;
            *slot = parse_collected(&o.server_stderr).ok_or_else(|| {
                format!("no `Collected :` line from callgrind:\n{}", o.server_stderr)
            })?;
        }
        let msgs = (small.conns * (large.msgs - small.msgs)) as f64;
        let v = (ir[1] as f64 - ir[0] as f64) / msgs;
        per_msg.push((kind, v));
    }
    let trio = per_msg.iter().find(|(k, _)| *k == Kind::Trio).map(|p| p.1);
    let mut figures = Vec::new();
    for &(kind, v) in &per_msg {
        let ratio = trio.map(|t| t / v);
        if !opts.csv {
            let ratio = ratio.map_or(String::new(), |r| format!("   trio/{} {r:.3}", kind.name()));
            println!("{:<8} {v:>9.0} Ir/msg{ratio}", kind.name());
        }
        figures.push(Figure {
            workload: "pingpong_ir",
            server: kind.name().into(),
            metric: "instructions".into(),
            unit: "ir_per_msg",
            spread: Spread::of(&[v]).expect("one sample"),
            rounds: 1,
        });
    }
    Ok(figures)
}

/// `callgrind_annotate`'s exclusive counts per `file:function`, as
/// (source file, function, Ir). A function's instructions are split by the
/// source file they were inlined from.
fn parse_annotate(text: &str) -> Vec<(String, String, u64)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (count, rest) = line.split_once(' ')?;
            let ir: u64 = count.replace(',', "").parse().ok()?;
            let (_, name) = rest.split_once("%)")?;
            let name = name.trim();
            // Drop the object file: `file:function [/path/to/binary]`.
            let name = match name.rsplit_once(" [") {
                Some((n, obj)) if obj.ends_with(']') => n,
                _ => name,
            };
            let (file, function) = name.split_once(':')?;
            (!function.is_empty()).then(|| (file.to_string(), function.to_string(), ir))
        })
        .collect()
}

/// `--profile KIND`: where one server's user-space instructions per message
/// go, by function and by source file: callgrind at `m` and `2m` messages
/// per connection, each function's count at `m` subtracted from its count
/// at `2m` (start-up and connection set-up cancel out), divided by the
/// extra messages. Functions are the compiled ones (what was inlined into
/// them counts as theirs); source files show where inlined code came from.
fn profile(exe: &Path, opts: &Options, kind: Kind) -> Result<Vec<Figure>, String> {
    use std::collections::HashMap;

    let (small, large) = (
        opts.ping_pong(opts.scale()),
        opts.ping_pong(2.0 * opts.scale()),
    );
    if large.msgs <= small.msgs {
        return Err("--scale is too small for two distinct message counts".into());
    }
    let msgs = (small.conns * (large.msgs - small.msgs)) as f64;
    let mut by_fn: HashMap<String, f64> = HashMap::new();
    let mut by_file: HashMap<String, f64> = HashMap::new();
    for (job, sign) in [(small, -1.0), (large, 1.0)] {
        let out = temp_path("callgrind", kind, job.msgs);
        eprintln!(
            "callgrind: {} at {} msgs per connection ...",
            kind.name(),
            job.msgs
        );
        let ran = run_once(
            exe,
            opts,
            kind,
            Job::PingPong(job),
            &Wrapper::Callgrind(out.clone()),
        );
        let annotated = ran.and_then(|_| {
            Command::new("callgrind_annotate")
                .args([
                    "--threshold=100",
                    "--auto=no",
                    "--tree=none",
                    "--inclusive=no",
                ])
                .arg(&out)
                .output()
                .map_err(|e| format!("cannot run callgrind_annotate: {e}"))
        });
        let _ = std::fs::remove_file(&out);
        let annotated = annotated?;
        for (file, function, ir) in parse_annotate(&String::from_utf8_lossy(&annotated.stdout)) {
            let v = sign * ir as f64 / msgs;
            *by_fn.entry(function).or_default() += v;
            *by_file.entry(file).or_default() += v;
        }
    }
    let total: f64 = by_fn.values().sum();
    let sorted = |m: HashMap<String, f64>| {
        let mut v: Vec<(String, f64)> = m.into_iter().filter(|(_, ir)| *ir >= 1.0).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    };
    let (by_fn, by_file) = (sorted(by_fn), sorted(by_file));
    if !opts.csv {
        println!(
            "{} server, user-space instructions per message (callgrind, exclusive): {total:.0} in all; \
             ping-pong {} connections x {} B, ({} - {}) round trips per connection",
            kind.name(),
            small.conns,
            small.size,
            large.msgs,
            small.msgs
        );
        println!("\nby function (>= 1 Ir/msg):");
        for (name, ir) in &by_fn {
            println!("{ir:8.1}  {name}");
        }
        println!("\nby source file (inlined code counted where it was written):");
        for (name, ir) in &by_file {
            println!("{ir:8.1}  {name}");
        }
    }
    let figure = |metric: &str, ir: f64| Figure {
        workload: "pingpong_profile",
        server: kind.name().into(),
        // Function names hold commas (generics); keep the CSV columns.
        metric: metric.replace(',', ";"),
        unit: "ir_per_msg",
        spread: Spread::of(&[ir]).expect("one sample"),
        rounds: 1,
    };
    let mut figures = vec![figure("total", total)];
    figures.extend(by_fn.iter().map(|(name, ir)| figure(name, *ir)));
    Ok(figures)
}

/// strace -c's table: (syscall, calls).
fn parse_strace(text: &str) -> Vec<(String, u64)> {
    // Columns: % time, seconds, usecs/call, calls, [errors], syscall.
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 || f[0].starts_with('-') || f[0] == "%" {
                return None;
            }
            let name = f.last()?;
            if *name == "total" {
                return None;
            }
            Some((name.to_string(), f[3].parse().ok()?))
        })
        .collect()
}

fn syscalls(exe: &Path, opts: &Options) -> Result<Vec<Figure>, String> {
    let pp = opts.ping_pong(opts.scale());
    let msgs = (pp.conns * (pp.warmup + pp.msgs)) as f64;
    if !opts.csv {
        println!(
            "server syscalls per message (strace -f -c; ping-pong, {msgs} messages incl. warm-up, \
             set-up included)"
        );
    }
    let mut figures = Vec::new();
    for &kind in &opts.servers {
        let calls = strace_counts(exe, opts, kind, Job::PingPong(pp))?;
        report_calls(
            opts,
            kind,
            calls,
            msgs,
            "pingpong_syscalls",
            "calls_per_msg",
            &mut figures,
        );
    }
    if opts.bulk {
        let b = opts.bulk_job();
        let mib = ((b.warmup + b.bytes) >> 20) as f64;
        if !opts.csv {
            println!(
                "server syscalls per MiB echoed (strace -f -c; bulk, {mib} MiB incl. warm-up)"
            );
        }
        for &kind in &opts.servers {
            let calls = strace_counts(exe, opts, kind, Job::Bulk(b))?;
            report_calls(
                opts,
                kind,
                calls,
                mib,
                "bulk_syscalls",
                "calls_per_mib",
                &mut figures,
            );
        }
    }
    Ok(figures)
}

/// One run of `kind` under `strace -f -c`: calls per syscall.
fn strace_counts(
    exe: &Path,
    opts: &Options,
    kind: Kind,
    job: Job,
) -> Result<Vec<(String, u64)>, String> {
    let out = temp_path("strace", kind, 0);
    let run = run_once(exe, opts, kind, job, &Wrapper::Strace(out.clone()));
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    run?;
    Ok(parse_strace(
        &text.map_err(|e| format!("strace output: {e}"))?,
    ))
}

/// Prints (unless CSV) and records the calls made at least once per 100
/// `units` and at least 50 times, most frequent first.
fn report_calls(
    opts: &Options,
    kind: Kind,
    mut calls: Vec<(String, u64)>,
    units: f64,
    workload: &'static str,
    unit: &'static str,
    figures: &mut Vec<Figure>,
) {
    // At least 50 calls: set-up (mmap, openat, ...) is not per-unit work.
    calls.retain(|(_, n)| *n >= 50 && *n as f64 / units >= 0.01);
    calls.sort_by_key(|c| std::cmp::Reverse(c.1));
    if !opts.csv {
        let list: Vec<String> = calls
            .iter()
            .map(|(name, n)| format!("{name} {:.3}", *n as f64 / units))
            .collect();
        println!("{:<8} {}", kind.name(), list.join(", "));
    }
    for (name, n) in calls {
        figures.push(Figure {
            workload,
            server: kind.name().into(),
            metric: name,
            unit,
            spread: Spread::of(&[n as f64 / units]).expect("one sample"),
            rounds: 1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_callgrind_total() {
        let stderr = "==42== Events    : Ir\n==42== Collected : 123456789\n==42==\n";
        assert_eq!(parse_collected(stderr), Some(123_456_789));
        assert_eq!(parse_collected("==42== Events : Ir\n"), None);
    }

    #[test]
    fn parses_strace_summary() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 50.00    0.100000           5     20000           sendto
 40.00    0.080000           4     20010        64 recvfrom
------ ----------- ----------- --------- --------- ----------------
100.00    0.180000           4     40010        64 total
";
        assert_eq!(
            parse_strace(text),
            vec![("sendto".into(), 20000), ("recvfrom".into(), 20010)]
        );
    }

    #[test]
    fn parses_callgrind_annotate() {
        let text = "\
180,558,588 (100.0%)  PROGRAM TOTALS
--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
10,598,773 ( 5.87%)  /w/trio/src/socket/mod.rs:<F as trio::X<A, B>>::poll [/w/echo]
   905,408 ( 0.50%)  ???:memset
";
        assert_eq!(
            parse_annotate(text),
            vec![
                (
                    "/w/trio/src/socket/mod.rs".into(),
                    "<F as trio::X<A, B>>::poll".into(),
                    10_598_773
                ),
                ("???".into(), "memset".into(), 905_408),
            ]
        );
    }

    #[test]
    fn parses_done_line() {
        assert_eq!(parse_done("done 1500 64"), Ok((1500, 64)));
        assert!(parse_done("ready").is_err());
    }

    #[test]
    fn quick_is_small() {
        let args: Vec<String> = ["--quick"].iter().map(|s| s.to_string()).collect();
        let opts = parse_options(&args).unwrap();
        assert_eq!(opts.rounds, 1);
        assert_eq!(opts.ping_pong(opts.scale()).msgs, 60);
        assert!(opts.bulk_job().bytes < 32 << 20);
    }
}
