//! HTTP/1.1 keep-alive hello-world: hyper on trio (`trio_hyper::serve_http`)
//! vs hyper on tokio `current_thread` (hyper-util's `TokioIo`), driven by
//! `wrk -t1 -c64` (issue 16 item 6). Reports requests/s and the **server's
//! CPU time per request** (the figure that does not depend on who is the
//! bottleneck; shared/BENCHMARKING.md).
//!
//! Method:
//! - Each server is a child process (this binary, `--serve trio|tokio`),
//!   pinned to core 0 with `taskset`; `wrk` is pinned to core 1. The
//!   child prints its port and serves until it is killed.
//! - Same hyper settings on both sides: HTTP/1.1 with keep-alive, a timer
//!   (`TrioTimer` / hyper-util's `TokioTimer`, so both arm hyper's 30 s
//!   header-read timeout on every request), the same `service_fn`
//!   answering a 13-byte `String` body. One task per connection on both.
//!   The trio server uses `Http::new()` as is (`Protocol::Auto`: the
//!   HTTP/2 preface sniff costs one read per connection).
//! - Server CPU: the sum over the child's threads of
//!   `/proc/PID/task/*/schedstat`'s first field (ns on the CPU, user and
//!   kernel), read before and after the wrk run, divided by the requests
//!   wrk reports.
//! - Rounds alternate which runtime goes first; the table shows medians
//!   and the min–max spread, and the per-round ratio's median comes with
//!   its 95% confidence interval (order statistics, no assumption about
//!   the noise's shape): with many short rounds (`--rounds 101 --secs
//!   1`) it says whether a small difference is resolved.
//!
//! Measured first, with the boxed adapter (2-core VM shared with other
//! jobs, load average about 7, so the spread is wide; 7 rounds of 5 s,
//! medians [min–max]):
//!
//! | server | req/s | server CPU per request |
//! |---|---|---|
//! | trio  | 19 210 [16 413–37 153] | 10.87 [6.95–11.99] µs |
//! | tokio | 23 332 [18 134–44 242] |  8.63 [5.68–9.32] µs |
//!
//! The goal (trio ≤ tokio per request) is **not met**. Noise-free backing:
//! callgrind on each server under the same wrk load (counters zeroed after
//! a warm-up, user space only): trio 15 625 instructions per request,
//! tokio 8 626. strace: both make one `recvfrom` and one `sendto`/`writev`
//! per request, so the kernel work is the same. Per request, the I/O
//! adapter layer costs trio about 5.8k instructions (`trio_compat::Io`:
//! a boxed receive or send future per operation, trio's park and reactor
//! registration inside it, and `CancelWaiter::poll_cancelled` on every
//! poll, ~1.5k) against tokio's ~1.0k (`PollEvented` readiness polling),
//! and the timer about 2.7k against 0.65k (see `trio_hyper::timer`).
//!
//! After the native socket path and `StoredWaker` in the timer (issue 16
//! later work; 7 rounds of 5 s, load average about 5; the last line is
//! the per-round ratio trio/tokio of server CPU per request):
//!
//! | server | req/s | server CPU per request |
//! |---|---|---|
//! | trio  | 31 432 [19 720–42 081] | 9.32 [8.55–12.21] µs |
//! | tokio | 33 606 [25 571–40 455] | 7.50 [6.32–8.30] µs |
//! | trio/tokio | | 1.28 [1.03–1.54] |
//!
//! Callgrind then: trio 12.7–12.9k instructions per request, tokio
//! 8.55–8.68k (see `trio_hyper`'s "Performance" docs). Still **not
//! met**, at about 1.3× (wall-clock, noisy) and 1.5× (instructions).
//!
//! After the adapter's cheaper cancel check (registration only before a
//! `Pending`) and the timer on trio's own timer heap
//! (`trio::lowlevel::TimerEntry`); 7 rounds of 5 s, load average about 4:
//!
//! | server | req/s | server CPU per request |
//! |---|---|---|
//! | trio  | 61 077 [49 365–70 202] | 6.20 [5.48–7.09] µs |
//! | tokio | 69 082 [50 831–71 531] | 5.60 [5.32–6.65] µs |
//! | trio/tokio | | 1.10 [0.99–1.12] |
//!
//! (A second run right after, noisier: trio 6.82 [5.96–8.43] µs, tokio
//! 6.23 [6.00–6.97] µs, ratio 1.06 [0.85–1.40].) After the cancel
//! waiter's shortcut (same conditions), two runs: trio 7.79 [6.05–8.61] µs
//! vs tokio 7.66 [6.67–7.98] µs, ratio 1.00 [0.87–1.20]; trio 7.10
//! [6.15–8.40] µs vs tokio 6.77 [5.79–8.84] µs, ratio 1.06 [0.83–1.31].
//!
//! Callgrind (`benches/icount.sh`): trio 10.27–10.30k instructions per
//! request, tokio 8.67–8.77k, about 1.18× (10.08–10.09k, 1.16×, once a
//! cancel waiter skips re-registering what it already holds). Syscalls (`benches/strace.sh`):
//! one `recvfrom` and one `sendto` (tokio: `writev`) per request on both.
//! Closer, still **not met**.
//!
//! Later (the cancel check, the reactor's poll path, the native adapter's
//! registrations; see `trio_hyper`'s "Performance" docs): trio 8 886–8 901
//! instructions per request, tokio 8 711–8 722 (`benches/icount.sh BIN
//! trio|tokio 4 12`), 1.02×, most of it `TrioTimer::now`'s clock read.
//!
//! Then (2026-11-27, second session: a dropped `TrioSleep`'s entry
//! recycled by the next sleep, hyper's native read and write without the
//! generic paths' bookkeeping, `std_instant_now` as one thread-local
//! load): trio 8 156 and 8 155 instructions per request, tokio 8 695 and
//! 8 700 (`benches/icount.sh BIN trio|tokio`, 3 s / 9 s, alternating),
//! 0.94×: the goal is met with a margin in instructions; syscalls per
//! request unchanged (one `recvfrom`, one `sendto`/`writev`). Wall-clock
//! (this bench, 7 rounds of 5 s, twice, load average 0.37 and 1.55 at
//! the starts): trio 5.90 [4.91–7.28] µs vs tokio 5.61 [5.12–6.96] µs,
//! per-round ratio 1.03 [0.88–1.07]; trio 6.95 [5.71–7.54] µs vs tokio
//! 6.48 [5.72–7.29] µs, ratio 1.02 [0.92–1.17]: parity within the noise
//! (the kernel's share, the same syscalls on both sides, is about two
//! thirds of the server's CPU per request), not below 1.
//!
//! Later, code with the same instruction counts (2026-11-27 08:12–08:33
//! UTC, nothing else running), six runs:
//!
//! | run | trio CPU/req | tokio CPU/req | trio/tokio per round | user mode only |
//! |---|---|---|---|---|
//! | 7 × 5 s | 7.90 [7.38–8.30] µs | 8.18 [7.93–8.45] µs | 0.98 [0.90–1.00] | 0.94 |
//! | 7 × 5 s | 7.59 [6.04–10.69] µs | 7.38 [6.14–8.67] µs | 0.99 [0.87–1.74] | 1.03 |
//! | 7 × 5 s | 6.43 [5.66–8.73] µs | 7.99 [6.61–8.87] µs | 0.86 [0.70–0.98] | 0.84 |
//! | 7 × 5 s | 7.56 [6.29–10.31] µs | 7.24 [6.42–11.81] µs | 0.97 [0.87–1.18] | 0.96 |
//! | 21 × 5 s | 6.39 [5.43–11.36] µs | 6.80 [5.74–8.88] µs | 1.02 [0.77–1.40] | 0.98 |
//! | 41 × 1 s | 7.24 [5.56–9.91] µs | 7.06 [5.94–10.16] µs | 0.99 [0.76–1.44] | 0.96 |
//!
//! With the two runs above and six more between them (0.99, 0.95, 1.06,
//! 1.03, 0.98, 0.96; see `trio_hyper`'s Performance docs), fourteen runs
//! of the 0.94× code: per-round medians 0.86–1.06, their median 0.99,
//! nine below 1. The expected ratio from the counts is about 0.98 (user
//! space a third of the CPU, 6% fewer instructions there, the kernel's
//! work the same), a margin no run of 7–41 rounds resolves (its spread is
//! wider). Hence the interval of the median (above), and long runs of
//! short rounds:
//!
//! | run (2026-11-27) | trio CPU/req | tokio CPU/req | trio/tokio per round | 95% interval |
//! |---|---|---|---|---|
//! | 101 × 1 s, 09:10 UTC | 7.90 [5.73–9.04] µs | 7.99 [5.87–10.03] µs | 0.977 [0.79–1.27] | 0.956–1.001 |
//! | 201 × 1 s, 09:13 UTC | 8.29 [5.86–12.41] µs | 8.45 [5.78–10.14] µs | 0.987 [0.62–1.54] | 0.978–0.995 |
//! | 201 × 1 s, 09:21 UTC | 8.22 [5.59–9.72] µs | 8.47 [5.71–9.98] µs | 0.972 [0.71–1.36] | 0.968–0.986 |
//!
//! The goal (trio ≤ tokio) is met, by 1–3% (two of the three intervals
//! exclude 1; every long run's median is below it).
//!
//! `cargo bench -p trio-hyper --bench hello -- [--rounds N] [--secs N]
//! [--conns N]` (needs `wrk` and `taskset`; a quick smoke run: `--rounds 1
//! --secs 1`).

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};

/// The one answer of both servers.
async fn hello(_req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    Ok(Response::new("Hello, World!".to_string()))
}

/// The trio server: `serve_http` on an ephemeral loopback port.
fn serve_trio() -> trio::Result<()> {
    use trio_hyper::{Http, serve_http};
    trio::run(async {
        let service = service_fn(hello);
        trio::open_nursery(async |nursery| {
            let listeners = nursery
                .start(|s| {
                    serve_http(Http::new(), &service, 0)
                        .host("127.0.0.1")
                        .task_status(s)
                })
                .await?;
            let port = listeners[0].local_addr()?.as_socket().unwrap().port();
            println!("{port}");
            Ok(())
        })
        .await?;
        Ok(())
    })
}

/// The tokio server: hyper's `http1::Builder` on a `current_thread`
/// runtime, one spawned task per connection.
fn serve_tokio() -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new());
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let http = http.clone();
            tokio::spawn(async move {
                let _ = http
                    .serve_connection(TokioIo::new(stream), service_fn(hello))
                    .await;
            });
        }
    })
}

/// Nanoseconds on the CPU of all of `pid`'s threads.
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Clock ticks (`_SC_CLK_TCK`, 100 per second on Linux) in user and in
/// kernel mode of all of `pid`'s threads: `/proc/PID/task/*/stat`'s
/// fields 14 and 15. Coarser than `schedstat`, but it splits the two.
fn process_user_sys_ticks(pid: u32) -> (u64, u64) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter_map(|s| {
            // The command name (field 2) may hold spaces: split after it.
            let rest = &s[s.rfind(')')? + 2..];
            let mut fields = rest.split_whitespace().skip(11);
            let user = fields.next()?.parse::<u64>().ok()?;
            let sys = fields.next()?.parse::<u64>().ok()?;
            Some((user, sys))
        })
        .fold((0, 0), |(u, s), (du, ds)| (u + du, s + ds))
}

/// Starts `this --serve NAME` pinned to core 0; returns it and its port.
fn start_server(name: &str) -> (Child, u16) {
    let me = std::env::current_exe().expect("own path");
    let mut child = Command::new("taskset")
        .args(["-c", "0"])
        .arg(me)
        .args(["--serve", name])
        .stdout(Stdio::piped())
        // Connections wrk resets at its end make hyper's shutdown fail,
        // which trio's server logs (one line each): not wanted here.
        .stderr(Stdio::null())
        .spawn()
        .expect("taskset runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the server prints its port");
    let port = line.trim().parse().expect("a port");
    (child, port)
}

/// One wrk run against one server.
struct Measured {
    /// Requests per second, as wrk reports them.
    rate: f64,
    /// Server CPU per request, µs (`schedstat`).
    cpu_us: f64,
    /// Of which in user mode, µs (clock ticks; the rest is the kernel's).
    user_us: f64,
}

/// One wrk run against `name`'s server.
fn measure(name: &str, secs: u32, conns: u32) -> Measured {
    let (mut child, port) = start_server(name);
    let before = process_cpu_ns(child.id());
    let (user_before, _) = process_user_sys_ticks(child.id());
    let out = Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1"])
        .arg(format!("-c{conns}"))
        .arg(format!("-d{secs}s"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("wrk runs");
    let after = process_cpu_ns(child.id());
    let (user_after, _) = process_user_sys_ticks(child.id());
    // Our own child, by its id.
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors: {text}"
    );
    // "N requests in 5.00s, ..." and "Requests/sec: R".
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in: {text}"));
    let rate: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in: {text}"));
    assert!(requests > 0.0, "no requests: {text}");
    Measured {
        rate,
        cpu_us: (after - before) as f64 / requests / 1000.0,
        // 100 ticks per second: one tick is 10 000 µs.
        user_us: (user_after - user_before) as f64 * 10_000.0 / requests,
    }
}

fn arg(args: &[String], name: &str, default: u32) -> u32 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A 95% confidence interval of the median of `sorted` (ascending),
/// distribution-free: the order statistics `x(k)` and `x(n+1-k)`, with
/// `k` the largest such that P(Binomial(n, 1/2) < k) <= 2.5%. Each round's
/// ratio is taken as one independent draw (the rounds alternate which
/// server goes first). It assumes nothing about the noise's shape, but
/// the host's slow spells last several rounds and make neighbours alike,
/// so the interval is somewhat too narrow: compare runs too.
/// `None` below 6 rounds, where no `k` qualifies; n up to ~1 000 (the
/// first term, 2^-n, must stay a normal float).
fn median_interval(sorted: &[f64]) -> Option<(f64, f64)> {
    let n = sorted.len();
    let mut pmf = 0.5f64.powi(n as i32);
    let mut below = 0.0; // P(B < k), for k = 0, 1, ...
    let mut k = 0;
    while k < n / 2 && below + pmf <= 0.025 {
        below += pmf;
        pmf *= (n - k) as f64 / (k + 1) as f64;
        k += 1;
    }
    (k > 0).then(|| (sorted[k - 1], sorted[n - k]))
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        let ok = match args.get(i + 1).map(String::as_str) {
            Some("trio") => serve_trio().map_err(|e| e.to_string()),
            Some("tokio") => serve_tokio().map_err(|e| e.to_string()),
            other => Err(format!("--serve trio|tokio, not {other:?}")),
        };
        return match ok {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let rounds = arg(&args, "--rounds", 5);
    let secs = arg(&args, "--secs", 5);
    let conns = arg(&args, "--conns", 64);
    println!(
        "hyper hello-world, HTTP/1.1 keep-alive: trio vs tokio current_thread; \
         server on core 0, wrk -t1 -c{conns} -d{secs}s on core 1, {rounds} rounds"
    );
    let names = ["trio", "tokio"];
    let mut rate = [Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new()];
    let mut user = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let m = measure(names[i], secs, conns);
            rate[i].push(m.rate);
            cpu[i].push(m.cpu_us);
            user[i].push(m.user_us);
        }
    }
    let mut user_ratio: Vec<f64> = user[0].iter().zip(&user[1]).map(|(t, k)| t / k).collect();
    let mut sys_ratio: Vec<f64> = (0..cpu[0].len())
        .map(|r| (cpu[0][r] - user[0][r]) / (cpu[1][r] - user[1][r]))
        .collect();
    // Per round, trio's CPU per request over tokio's: the two runs of a
    // round are back to back, so the machine's load shifts cancel out
    // better than in the separate medians. (Before `median` sorts.)
    let mut ratio: Vec<f64> = cpu[0].iter().zip(&cpu[1]).map(|(t, k)| t / k).collect();
    println!(
        "{:<6} {:>28} {:>34}",
        "server", "req/s median [min-max]", "server CPU/req median [min-max]"
    );
    for (i, name) in names.iter().enumerate() {
        let (rmin, rmax) = min_max(&rate[i]);
        let (cmin, cmax) = min_max(&cpu[i]);
        println!(
            "{name:<6} {:>10.0} [{rmin:.0}-{rmax:.0}] {:>14.2} [{cmin:.2}-{cmax:.2}] us",
            median(&mut rate[i]),
            median(&mut cpu[i]),
        );
    }
    for (i, name) in names.iter().enumerate() {
        let (umin, umax) = min_max(&user[i]);
        println!(
            "{name:<6} user-mode CPU/req median {:.2} [{umin:.2}-{umax:.2}] us",
            median(&mut user[i]),
        );
    }
    let (qmin, qmax) = min_max(&ratio);
    println!(
        "trio/tokio server CPU per request, per round: median {:.3} [{qmin:.2}-{qmax:.2}]",
        median(&mut ratio)
    );
    if let Some((lo, hi)) = median_interval(&ratio) {
        println!(
            "  95% interval of that median: [{lo:.3}-{hi:.3}] (order statistics, {} rounds)",
            ratio.len()
        );
    }
    let (umin, umax) = min_max(&user_ratio);
    let (smin, smax) = min_max(&sys_ratio);
    println!(
        "  user mode: median {:.2} [{umin:.2}-{umax:.2}]; kernel: median {:.2} [{smin:.2}-{smax:.2}]",
        median(&mut user_ratio),
        median(&mut sys_ratio)
    );
    ExitCode::SUCCESS
}
