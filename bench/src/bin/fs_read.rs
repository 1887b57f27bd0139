//! `cargo run --release -p bench --bin fs_read`: the cost of one small file
//! read, `trio::fs::File::read` vs tokio `current_thread`'s
//! `tokio::fs::File::read` (and a plain blocking `std::fs::File::read` as
//! the floor: the system call and the copy, no thread hop).
//!
//! # Method
//!
//! - A 1 MiB file is written once and read once (so it is in the page
//!   cache). Each measurement opens it, then times `--ops` reads of
//!   `--size` bytes (default 4096), rewinding at the end of the file (one
//!   rewind per 256 reads at the defaults, the same for every runtime), and
//!   reports elapsed / reads in ns/op. Opening and runtime construction are
//!   not timed.
//! - Both async runtimes do each read in a worker thread (trio:
//!   `to_thread`; tokio: `spawn_blocking`), so this measures the hop: hand
//!   the job over, wake a pool thread, `read(2)`, post the result back, wake
//!   the run.
//! - Rounds are interleaved (std, trio, tokio, std, trio, tokio …) after one
//!   unreported warm-up round, a fresh runtime per measurement; the figures
//!   are the median over `--rounds` (default 11) with the min–max, and the
//!   ratio trio / tokio is taken per round, then its median and min–max.
//! - Pin from outside, `taskset -c 1 cargo run …` or `taskset -c 1
//!   target/release/fs_read`: the run thread and every worker share one
//!   CPU, for both runtimes alike. The header says how many CPUs the
//!   process may use.

#[path = "../spread.rs"]
#[allow(dead_code)] // each bin uses part of it
mod spread;
use spread::Spread;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

const FILE_SIZE: usize = 1 << 20;

struct Options {
    ops: usize,
    size: usize,
    rounds: usize,
}

#[path = "../cli.rs"]
mod cli;

const USAGE: &str = "usage: fs_read [--ops N] [--size BYTES] [--rounds N]";

/// The command line, or a message for a bad one (printed with the usage).
fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        ops: 20_000,
        size: 4096,
        rounds: 11,
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
            "--ops" => o.ops = value(i)?,
            "--size" => o.size = value(i)?,
            "--rounds" => o.rounds = value(i)?,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    if o.size > FILE_SIZE {
        return Err(format!("--size must be in 1..={FILE_SIZE}"));
    }
    Ok(o)
}

/// ns per read with blocking std calls on this thread.
fn run_std(path: &Path, o: &Options) -> f64 {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0; o.size];
    let start = Instant::now();
    for _ in 0..o.ops {
        if f.read(&mut buf).unwrap() == 0 {
            f.seek(SeekFrom::Start(0)).unwrap();
        }
    }
    start.elapsed().as_nanos() as f64 / o.ops as f64
}

/// ns per read with `trio::fs::File`.
fn run_trio(path: &Path, o: &Options) -> f64 {
    trio::run(async {
        let f = trio::fs::File::open(path).await?;
        let mut buf = vec![0; o.size];
        let start = Instant::now();
        for _ in 0..o.ops {
            if f.read(&mut buf).await? == 0 {
                f.rewind().await?;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / o.ops as f64;
        f.aclose().await?;
        Ok(ns)
    })
    .unwrap()
}

/// ns per read with `tokio::fs::File` on a `current_thread` runtime.
fn run_tokio(path: &Path, o: &Options) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut f = tokio::fs::File::open(path).await.unwrap();
        let mut buf = vec![0; o.size];
        let start = Instant::now();
        for _ in 0..o.ops {
            if f.read(&mut buf).await.unwrap() == 0 {
                f.rewind().await.unwrap();
            }
        }
        start.elapsed().as_nanos() as f64 / o.ops as f64
    })
}

/// Median of the rounds (see `bench/src/spread.rs`).
fn median(v: &[f64]) -> f64 {
    Spread::of(v).map_or(f64::NAN, |s| s.median)
}

/// Min and max of the rounds.
fn range(v: &[f64]) -> (f64, f64) {
    Spread::of(v).map_or((f64::NAN, f64::NAN), |s| (s.min, s.max))
}

/// Removes the file when the benchmark ends, even on a panic.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn main() {
    let o = cli::options_or_exit(parse_options(), "fs_read", USAGE);
    let file =
        TempFile(std::env::temp_dir().join(format!("trio-bench-fs-read-{}", std::process::id())));
    {
        let data: Vec<u8> = (0..FILE_SIZE).map(|i| (i % 251) as u8).collect();
        let mut f = std::fs::File::create(&file.0).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        // Read once: the file is in the page cache from here on.
        assert_eq!(std::fs::read(&file.0).unwrap().len(), FILE_SIZE);
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "fs_read: {} reads of {} bytes of a cached {} KiB file per measurement, {} rounds (+1 warm-up), {} CPU(s) allowed{}",
        o.ops,
        o.size,
        FILE_SIZE / 1024,
        o.rounds,
        cpus,
        if cpus == 1 {
            " (pinned)"
        } else {
            " (not pinned: use taskset -c N)"
        }
    );

    let (mut std_ns, mut trio_ns, mut tokio_ns, mut ratio) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..=o.rounds {
        let s = run_std(&file.0, &o);
        let t = run_trio(&file.0, &o);
        let k = run_tokio(&file.0, &o);
        eprintln!("round {round}: std {s:.0} trio {t:.0} tokio {k:.0} ns/op");
        if round == 0 {
            continue; // warm-up
        }
        std_ns.push(s);
        trio_ns.push(t);
        tokio_ns.push(k);
        ratio.push(t / k);
    }

    println!("{:<28} {:>10} {:>22}", "", "median", "min–max");
    for (name, v) in [
        ("std (blocking) ns/op", &std_ns),
        ("trio::fs::File::read ns/op", &trio_ns),
        ("tokio::fs::File::read ns/op", &tokio_ns),
    ] {
        let (lo, hi) = range(v);
        println!("{name:<28} {:>10.0} {:>10.0} – {:<10.0}", median(v), lo, hi);
    }
    let (lo, hi) = range(&ratio);
    println!(
        "{:<28} {:>10.2} {:>10.2} – {:<10.2}",
        "ratio trio / tokio",
        median(&ratio),
        lo,
        hi
    );
}
