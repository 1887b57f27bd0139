//! `--all` / `--with echo,multicore,cross`: the workloads that live in the
//! other binaries of this crate, run as child processes, one CSV line each
//! in the shape of the micro-benchmarks' lines (issue 19: "`bench
//! --machine` prints one line per workload with the ratios").
//!
//! # What runs
//!
//! The binaries are built alongside this one (`cargo build --release -p
//! bench` builds all three), so they are found next to
//! [`std::env::current_exe`]:
//!
//! * `echo --machine` ([`Suite::Echo`]): single-threaded TCP echo servers,
//!   trio vs tokio `current_thread` vs smol vs a raw mio loop; rows
//!   `echo_pingpong` (server CPU per message) and `echo_bulk` (server CPU
//!   per MiB echoed).
//! * `echo --multicore --machine` ([`Suite::Multicore`]): the servers on
//!   every core, trio per core vs tokio `multi_thread` vs tokio
//!   `current_thread` per core; rows `echo_mc_pingpong_64` and
//!   `echo_mc_pingpong_1000`.
//! * `cross_channel --machine` ([`Suite::Cross`]): a ping-pong between two
//!   threads; rows `cross_channel` (trio's cross-run channel between two
//!   runs vs tokio mpsc between two `current_thread` runtimes, vs
//!   crossbeam-channel and flume between blocking threads) and
//!   `cross_channel_blocking` (trio's channel from blocking threads).
//!
//! Each child prints its own CSV on stdout (read here, never changed by
//! this module) and its progress and header on stderr, which is passed
//! through. `--rounds` is passed on when given; `--scale F` becomes the
//! echo's `--scale F` and the cross-channel's `--ops 20000×F`.
//!
//! # Pinning
//!
//! The children choose their own CPUs (the echo pins its single-threaded
//! server to CPU 0 and its client to CPU 1; the multi-core servers and the
//! cross-channel threads use every CPU), and a child inherits its parent's
//! affinity mask. So the children run *first*, with this process's mask
//! widened to every online CPU (as far as the kernel allows; a narrower
//! mask from `taskset` is restored afterwards and reported on stderr), and
//! only then does `--pin` pin this process for the micro-benchmarks.
//!
//! # Columns
//!
//! In `--all` mode the header is the micro-benchmarks'
//! [`CSV_HEADER`](crate::report::CSV_HEADER) followed by [`EXTRA_HEADER`]; every line has every column, the
//! micro-benchmarks' lines included (their extra columns say what their
//! runtime columns are). The first 18 columns keep their names and their
//! meaning per line:
//!
//! * `trio_ns_per_op`: trio's figure (trio per core for the multi-core
//!   echo, trio's blocking ends for `cross_channel_blocking`);
//! * `tokio_ns_per_op`: tokio's (`current_thread` for `echo_*`,
//!   `multi_thread` for `echo_mc_*`, mpsc between two `current_thread`
//!   runtimes for `cross_channel*`);
//! * `smol_ns_per_op`: smol's, `n/a` where there is none;
//! * `ratio_*` and their `_min` / `_max`: the child's per-round ratios
//!   (median and range), trio / that column;
//! * `ops`: operations per round (messages, MiB or hand-offs), `rounds`:
//!   the rounds behind the figures.
//!
//! Then `extra1…` / `extra2…`: up to two more runtimes (name, median,
//! ratio trio / it with its range): mio for `echo_*`, tokio
//! `current_thread` per core for `echo_mc_*`, crossbeam and flume for
//! `cross_channel*`. The cross-channel binary gives per-round ratios to
//! tokio only, so trio / crossbeam and trio / flume are ratios of the
//! medians, their range `n/a`. Last, `trio_is`, `tokio_is`, `smol_is` name
//! what the three runtime columns hold, and `measure` what the figures are
//! (`cpu_ns_per_op`, `server_cpu_ns_per_msg`, `server_cpu_ns_per_mib`,
//! `wall_ns_per_handoff`, `bytes_per_task`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::report::{self, Row};

/// The columns [`csv_line`] and [`core_extra`] add after
/// [`CSV_HEADER`](crate::report::CSV_HEADER).
pub const EXTRA_HEADER: &str = "extra1,extra1_ns_per_op,ratio_extra1,ratio_extra1_min,\
ratio_extra1_max,extra2,extra2_ns_per_op,ratio_extra2,ratio_extra2_min,ratio_extra2_max,\
trio_is,tokio_is,smol_is,measure";

/// Operations of one round at scale 1, as the children compute them:
/// the echo's ping-pong is 3000 round trips on each of 64 connections
/// (the multi-core runs spread the same total over their connections),
/// its bulk transfer 1 GiB; the cross-channel makes 20 000 round trips.
const ECHO_MSGS: f64 = 3000.0 * 64.0;
const ECHO_BULK_MIB: f64 = 1024.0;
const CROSS_OPS: f64 = 20_000.0;

/// One group of workloads from another binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// `echo --machine`.
    Echo,
    /// `echo --multicore --machine`.
    Multicore,
    /// `cross_channel --machine`.
    Cross,
}

impl Suite {
    pub const ALL: [Suite; 3] = [Suite::Echo, Suite::Multicore, Suite::Cross];

    pub fn name(self) -> &'static str {
        match self {
            Suite::Echo => "echo",
            Suite::Multicore => "multicore",
            Suite::Cross => "cross",
        }
    }

    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|s| s.name() == name)
    }

    fn binary(self) -> &'static str {
        match self {
            Suite::Echo | Suite::Multicore => "echo",
            Suite::Cross => "cross_channel",
        }
    }

    /// The child's arguments.
    fn args(self, rounds: Option<usize>, scale: Option<f64>) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Suite::Echo => vec!["--machine".into()],
            Suite::Multicore => vec!["--multicore".into(), "--machine".into()],
            Suite::Cross => vec!["--machine".into()],
        };
        if let Some(r) = rounds {
            args.extend(["--rounds".into(), r.to_string()]);
        }
        if let Some(s) = scale {
            match self {
                Suite::Echo | Suite::Multicore => args.extend(["--scale".into(), s.to_string()]),
                Suite::Cross => {
                    let ops = ((CROSS_OPS * s).round() as u64).max(1);
                    args.extend(["--ops".into(), ops.to_string()]);
                }
            }
        }
        args
    }
}

/// A runtime's figure: its name and median, with its range when known.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub name: String,
    pub median: f64,
    pub range: Option<(f64, f64)>,
}

/// A ratio trio / other: median, and its range over the rounds when known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio {
    pub median: f64,
    pub range: Option<(f64, f64)>,
}

/// One line of another binary's workload, in the micro-benchmarks' shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub workload: String,
    /// The trio, tokio and smol columns (see the module docs for what
    /// each holds per workload).
    pub main: [Option<Figure>; 3],
    /// trio / the tokio column, trio / the smol column.
    pub ratios: [Option<Ratio>; 2],
    /// Up to two more runtimes, each with trio / it.
    pub extras: [Option<(Figure, Option<Ratio>)>; 2],
    pub ops: Option<u64>,
    pub rounds: Option<usize>,
    pub measure: &'static str,
}

fn plain(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"))
}

fn name_or_na(f: &Option<Figure>) -> String {
    f.as_ref().map_or_else(|| "n/a".into(), |f| f.name.clone())
}

/// `line`'s CSV under `CSV_HEADER,EXTRA_HEADER`.
pub fn csv_line(line: &Line) -> String {
    let median = |f: &Option<Figure>| plain(f.as_ref().map(|f| f.median));
    let range =
        |r: Option<(f64, f64)>| format!("{},{}", plain(r.map(|r| r.0)), plain(r.map(|r| r.1)));
    let mut fields = vec![line.workload.clone()];
    fields.extend(line.main.iter().map(median));
    fields.extend(line.ratios.iter().map(|r| plain(r.map(|r| r.median))));
    fields.extend(line.ratios.iter().map(|r| range(r.and_then(|r| r.range))));
    fields.extend(
        line.main
            .iter()
            .map(|f| range(f.as_ref().and_then(|f| f.range))),
    );
    fields.push(line.ops.map_or_else(|| "n/a".into(), |n| n.to_string()));
    fields.push(line.rounds.map_or_else(|| "n/a".into(), |n| n.to_string()));
    for extra in &line.extras {
        let (fig, ratio) = match extra {
            Some((f, r)) => (Some(f.clone()), *r),
            None => (None, None),
        };
        fields.push(name_or_na(&fig));
        fields.push(median(&fig));
        fields.push(plain(ratio.map(|r| r.median)));
        fields.push(range(ratio.and_then(|r| r.range)));
    }
    fields.extend(line.main.iter().map(name_or_na));
    fields.push(line.measure.into());
    fields.join(",")
}

/// The extra columns of a micro-benchmark line (`memory`: a
/// `task_memory…` row; `wall`: `--clock wall`).
pub fn core_extra(row: &Row, wall: bool) -> String {
    let measure = if row.name.starts_with(crate::TASK_MEMORY) {
        "bytes_per_task"
    } else if wall {
        "wall_ns_per_op"
    } else {
        "cpu_ns_per_op"
    };
    format!(
        "n/a,n/a,n/a,n/a,n/a,n/a,n/a,n/a,n/a,n/a,trio,tokio-current_thread,smol-LocalExecutor,{measure}"
    )
}

/// Prints the `--all` CSV: the micro-benchmarks' rows, then the others.
pub fn print_csv(rows: &[Row], lines: &[Line], wall: bool) {
    println!("{},{EXTRA_HEADER}", report::CSV_HEADER);
    for row in rows {
        println!("{},{}", report::csv_line(row), core_extra(row, wall));
    }
    for line in lines {
        println!("{}", csv_line(line));
    }
}

/// The human table of the other binaries' lines (medians; ratios with
/// their range).
pub fn print_table(lines: &[Line]) {
    if lines.is_empty() {
        return;
    }
    println!("\nother binaries (run as child processes; their own tables went to stderr):");
    for l in lines {
        println!("\n{} ({})", l.workload, l.measure);
        let figures = l
            .main
            .iter()
            .flatten()
            .chain(l.extras.iter().flatten().map(|e| &e.0));
        let cells: Vec<String> = figures
            .map(|f| format!("{} {:.1}", f.name, f.median))
            .collect();
        println!("  {}", cells.join("   "));
        let mut ratios = Vec::new();
        let others = l.main[1..]
            .iter()
            .zip(&l.ratios)
            .filter_map(|(f, r)| Some((f.as_ref()?, (*r)?)))
            .chain(
                l.extras
                    .iter()
                    .flatten()
                    .filter_map(|(f, r)| Some((f, (*r)?))),
            );
        for (f, r) in others {
            let range = r.range.map_or_else(
                || "(ratio of medians)".into(),
                |(a, b)| format!("[{a:.3}-{b:.3}]"),
            );
            ratios.push(format!("trio/{} {:.3} {range}", f.name, r.median));
        }
        if !ratios.is_empty() {
            println!("  {}", ratios.join("   "));
        }
    }
}

/// Where the other binaries are: next to this one.
fn binary_path(suite: Suite) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let dir = exe.parent().ok_or("own binary has no directory")?;
    let path = dir.join(suite.binary());
    if !path.exists() {
        return Err(format!(
            "{} not found next to this binary (build it: cargo build --release -p bench)",
            path.display()
        ));
    }
    Ok(path)
}

/// Runs the suites, in order, and parses their CSV. A suite that fails
/// (cannot start, exits non-zero, prints no line) is reported in the
/// returned errors; the lines it printed are kept.
pub fn run(
    suites: &[Suite],
    rounds: Option<usize>,
    scale: Option<f64>,
) -> (Vec<Line>, Vec<String>) {
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for &suite in suites {
        match run_one(suite, rounds, scale) {
            Ok((mut got, error)) => {
                if got.is_empty() {
                    errors.push(format!("{}: printed no CSV line", suite.name()));
                }
                lines.append(&mut got);
                errors.extend(error);
            }
            Err(e) => errors.push(format!("{}: {e}", suite.name())),
        }
    }
    (lines, errors)
}

fn run_one(
    suite: Suite,
    rounds: Option<usize>,
    scale: Option<f64>,
) -> Result<(Vec<Line>, Option<String>), String> {
    let path = binary_path(suite)?;
    let args = suite.args(rounds, scale);
    eprintln!("bench --all: running {} {}", path.display(), args.join(" "));
    let out = Command::new(&path)
        .args(&args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines = match suite {
        Suite::Echo | Suite::Multicore => echo_lines(&text, scale.unwrap_or(1.0)),
        Suite::Cross => cross_lines(&text),
    };
    let error =
        (!out.status.success()).then(|| format!("{} exited with {}", suite.name(), out.status));
    Ok((lines, error))
}

/// The echo binary's figures, by (workload, server, metric): median,
/// min, max, rounds.
type EchoFigures = HashMap<(String, String, String), (f64, f64, f64, usize)>;

fn parse_echo(text: &str) -> EchoFigures {
    let mut map = HashMap::new();
    for line in text
        .lines()
        .skip_while(|l| !l.starts_with("workload,"))
        .skip(1)
    {
        let f: Vec<&str> = line.split(',').collect();
        let [workload, server, metric, _unit, median, min, max, rounds] = f[..] else {
            continue;
        };
        let (Ok(median), Ok(min), Ok(max), Ok(rounds)) =
            (median.parse(), min.parse(), max.parse(), rounds.parse())
        else {
            continue;
        };
        map.insert(
            (workload.into(), server.into(), metric.into()),
            (median, min, max, rounds),
        );
    }
    map
}

/// The echo's CSV (single-threaded or `--multicore`) as lines: server CPU
/// per message in ns (per MiB for bulk), ratios of the server CPU.
pub fn echo_lines(text: &str, scale: f64) -> Vec<Line> {
    let figures = parse_echo(text);
    // (echo workload, our name, trio, tokio column, smol column, extras,
    //  unit factor to ns, measure, ops at scale 1)
    type Spec = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        [Option<&'static str>; 2],
        f64,
        &'static str,
        f64,
    );
    const SPECS: [Spec; 4] = [
        (
            "pingpong",
            "echo_pingpong",
            "trio",
            "tokio",
            Some("smol"),
            [Some("mio"), None],
            1e3,
            "server_cpu_ns_per_msg",
            ECHO_MSGS,
        ),
        (
            "bulk",
            "echo_bulk",
            "trio",
            "tokio",
            Some("smol"),
            [Some("mio"), None],
            1e9 / 1024.0,
            "server_cpu_ns_per_mib",
            ECHO_BULK_MIB,
        ),
        (
            "mc_pingpong_64",
            "echo_mc_pingpong_64",
            "trio-pc",
            "tokio-mt",
            None,
            [Some("tokio-pc"), None],
            1e3,
            "server_cpu_ns_per_msg",
            ECHO_MSGS,
        ),
        (
            "mc_pingpong_1000",
            "echo_mc_pingpong_1000",
            "trio-pc",
            "tokio-mt",
            None,
            [Some("tokio-pc"), None],
            1e3,
            "server_cpu_ns_per_msg",
            ECHO_MSGS,
        ),
    ];
    let mut lines = Vec::new();
    for (workload, name, trio, tokio, smol, extras, factor, measure, ops) in SPECS {
        let get = |server: &str, metric: &str| {
            figures.get(&(workload.to_string(), server.to_string(), metric.to_string()))
        };
        let figure = |server: &str| {
            get(server, "server_cpu").map(|&(median, min, max, _)| Figure {
                name: server.into(),
                median: median * factor,
                range: Some((min * factor, max * factor)),
            })
        };
        let ratio = |other: &str| {
            get(&format!("{trio}/{other}"), "cpu_ratio").map(|&(median, min, max, _)| Ratio {
                median,
                range: Some((min, max)),
            })
        };
        let Some(trio_figure) = figure(trio) else {
            continue;
        };
        let rounds = get(trio, "server_cpu").map(|f| f.3);
        lines.push(Line {
            workload: name.into(),
            main: [Some(trio_figure), figure(tokio), smol.and_then(figure)],
            ratios: [ratio(tokio), smol.and_then(ratio)],
            extras: extras.map(|e| e.and_then(|e| Some((figure(e)?, ratio(e))))),
            ops: Some(((ops * scale).round() as u64).max(1)),
            rounds,
            measure,
        });
    }
    lines
}

/// One workload of the cross-channel CSV: ns per hand-off (median, min,
/// max), ratio to tokio (median, min, max), hand-offs, rounds.
struct Cross {
    ns: (f64, f64, f64),
    ratio: (f64, f64, f64),
    handoffs: u64,
    rounds: usize,
}

/// The cross-channel's CSV as two lines: `cross_channel` (trio's async
/// ends) and `cross_channel_blocking` (trio's blocking ends).
pub fn cross_lines(text: &str) -> Vec<Line> {
    let mut by_name: HashMap<String, Cross> = HashMap::new();
    for line in text
        .lines()
        .skip_while(|l| !l.starts_with("workload,"))
        .skip(1)
    {
        let f: Vec<&str> = line.split(',').collect();
        let [name, ns, min, max, r, rmin, rmax, handoffs, rounds] = f[..] else {
            continue;
        };
        let num = |s: &str| s.parse::<f64>().ok();
        let (Some(ns), Some(min), Some(max)) = (num(ns), num(min), num(max)) else {
            continue;
        };
        let (Ok(handoffs), Ok(rounds)) = (handoffs.parse(), rounds.parse()) else {
            continue;
        };
        let ratio = (
            num(r).unwrap_or(f64::NAN),
            num(rmin).unwrap_or(f64::NAN),
            num(rmax).unwrap_or(f64::NAN),
        );
        let name = name.strip_prefix("cross_channel_").unwrap_or(name);
        by_name.insert(
            name.into(),
            Cross {
                ns: (ns, min, max),
                ratio,
                handoffs,
                rounds,
            },
        );
    }
    let figure = |name: &str| {
        by_name.get(name).map(|c| Figure {
            name: name.into(),
            median: c.ns.0,
            range: Some((c.ns.1, c.ns.2)),
        })
    };
    let mut lines = Vec::new();
    for (row, trio) in [
        ("cross_channel", "trio"),
        ("cross_channel_blocking", "trio_blocking"),
    ] {
        let Some(t) = by_name.get(trio) else { continue };
        let finite = |r: (f64, f64, f64)| r.0.is_finite().then_some(r);
        let to_tokio = finite(t.ratio).map(|r| Ratio {
            median: r.0,
            range: Some((r.1, r.2)),
        });
        // No per-round ratio to these two in the child's CSV: medians'.
        let to = |other: &str| {
            let o = figure(other)?;
            Some((
                o.clone(),
                Some(Ratio {
                    median: t.ns.0 / o.median,
                    range: None,
                }),
            ))
        };
        lines.push(Line {
            workload: row.into(),
            main: [figure(trio), figure("tokio"), None],
            ratios: [to_tokio, None],
            extras: [to("crossbeam"), to("flume")],
            ops: Some(t.handoffs),
            rounds: Some(t.rounds),
            measure: "wall_ns_per_handoff",
        });
    }
    lines
}

/// Runs `f` with this process's affinity widened to every online CPU (the
/// children inherit it; see "Pinning" above), then restores the mask.
pub fn with_all_cpus<T>(f: impl FnOnce() -> T) -> T {
    let before = crate::machine::allowed_cpus().ok();
    // CPUs 0..n: online CPUs are numbered from 0 without gaps unless some
    // were taken offline; the kernel ignores CPUs of the mask that are not
    // online, so at worst a CPU numbered n or above is left out.
    let all: Vec<usize> = (0..crate::machine::cpus_online().unwrap_or(1)).collect();
    let widened = match &before {
        Some(cpus) if *cpus != all => match crate::machine::set_affinity(&all) {
            Ok(()) => {
                eprintln!(
                    "bench --all: affinity widened from CPUs {cpus:?} to {all:?} for the child \
                     binaries (they pin themselves)"
                );
                true
            }
            Err(e) => {
                eprintln!(
                    "bench --all: cannot widen the affinity from CPUs {cpus:?} ({e}): the child \
                     binaries run on those only"
                );
                false
            }
        },
        _ => false,
    };
    let out = f();
    if let (true, Some(cpus)) = (widened, &before)
        && let Err(e) = crate::machine::set_affinity(cpus)
    {
        eprintln!("bench --all: cannot restore the affinity to CPUs {cpus:?}: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECHO: &str = "\
workload,server,metric,unit,median,min,max,rounds
pingpong,trio,rate,msgs_per_s,180000.0000,150000.0000,210000.0000,7
pingpong,trio,server_cpu,us_per_msg,5.2800,4.5400,6.4600,7
pingpong,tokio,server_cpu,us_per_msg,4.8000,4.3100,5.8100,7
pingpong,smol,server_cpu,us_per_msg,5.7000,5.4400,7.9500,7
pingpong,mio,server_cpu,us_per_msg,5.4700,4.3500,5.6900,7
pingpong,trio/tokio,cpu_ratio,x,1.1200,0.9200,1.3900,7
pingpong,trio/mio,cpu_ratio,x,1.1100,0.8300,1.1400,7
pingpong,trio/smol,cpu_ratio,x,0.9300,0.9000,0.9500,7
bulk,trio,server_cpu,s_per_gib,0.2910,0.2780,0.3720,7
bulk,tokio,server_cpu,s_per_gib,0.3220,0.2950,0.3960,7
bulk,trio/tokio,cpu_ratio,x,0.9000,0.8000,1.0000,7
";

    #[test]
    fn echo_csv_becomes_one_line_per_workload() {
        let lines = echo_lines(ECHO, 1.0);
        assert_eq!(lines.len(), 2);
        let pp = csv_line(&lines[0]);
        assert_eq!(
            pp,
            "echo_pingpong,5280.000,4800.000,5700.000,1.120,0.930,0.920,1.390,0.900,0.950,\
             4540.000,6460.000,4310.000,5810.000,5440.000,7950.000,192000,7,\
             mio,5470.000,1.110,0.830,1.140,n/a,n/a,n/a,n/a,n/a,\
             trio,tokio,smol,server_cpu_ns_per_msg"
        );
        let header = format!("{},{EXTRA_HEADER}", report::CSV_HEADER);
        assert_eq!(pp.split(',').count(), header.split(',').count());
        // Bulk: s/GiB to ns/MiB; smol and mio missing print as n/a.
        let bulk = &lines[1];
        assert_eq!(bulk.workload, "echo_bulk");
        let trio = bulk.main[0].as_ref().unwrap();
        assert!((trio.median - 0.291e9 / 1024.0).abs() < 1e-6);
        assert_eq!(bulk.main[2], None);
        assert_eq!(bulk.extras, [None, None]);
        assert_eq!(bulk.ops, Some(1024));
    }

    #[test]
    fn multicore_echo_compares_with_tokio_multi_thread() {
        let text = "\
workload,server,metric,unit,median,min,max,rounds
mc_pingpong_1000,trio-pc,server_cpu,us_per_msg,6.0000,5.0000,7.0000,3
mc_pingpong_1000,tokio-mt,server_cpu,us_per_msg,6.5000,6.0000,7.5000,3
mc_pingpong_1000,tokio-pc,server_cpu,us_per_msg,6.2000,6.0000,6.4000,3
mc_pingpong_1000,trio-pc/tokio-mt,cpu_ratio,x,0.9000,0.8000,1.1000,3
mc_pingpong_1000,trio-pc/tokio-pc,cpu_ratio,x,0.9500,0.9000,1.0000,3
";
        let lines = echo_lines(text, 0.5);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            csv_line(&lines[0]),
            "echo_mc_pingpong_1000,6000.000,6500.000,n/a,0.900,n/a,0.800,1.100,n/a,n/a,\
             5000.000,7000.000,6000.000,7500.000,n/a,n/a,96000,3,\
             tokio-pc,6200.000,0.950,0.900,1.000,n/a,n/a,n/a,n/a,n/a,\
             trio-pc,tokio-mt,n/a,server_cpu_ns_per_msg"
        );
    }

    #[test]
    fn cross_channel_csv_becomes_two_lines() {
        let text = "\
workload,ns_per_handoff,min,max,ratio_tokio,ratio_tokio_min,ratio_tokio_max,handoffs,rounds
cross_channel_trio,4000.000,3000.000,5000.000,0.800,0.700,0.900,40000,9
cross_channel_tokio,5000.000,4000.000,6000.000,1.000,1.000,1.000,40000,9
cross_channel_crossbeam,2000.000,1900.000,2100.000,0.400,0.350,0.450,40000,9
cross_channel_flume,8000.000,7000.000,9000.000,1.600,1.500,1.700,40000,9
cross_channel_trio_blocking,3000.000,2900.000,3100.000,0.600,0.500,0.700,40000,9
";
        let lines = cross_lines(text);
        assert_eq!(lines.len(), 2);
        assert_eq!(
            csv_line(&lines[0]),
            "cross_channel,4000.000,5000.000,n/a,0.800,n/a,0.700,0.900,n/a,n/a,\
             3000.000,5000.000,4000.000,6000.000,n/a,n/a,40000,9,\
             crossbeam,2000.000,2.000,n/a,n/a,flume,8000.000,0.500,n/a,n/a,\
             trio,tokio,n/a,wall_ns_per_handoff"
        );
        assert_eq!(lines[1].workload, "cross_channel_blocking");
        assert_eq!(lines[1].main[0].as_ref().unwrap().median, 3000.0);
        assert_eq!(lines[1].extras[0].as_ref().unwrap().1.unwrap().median, 1.5);
    }

    #[test]
    fn garbage_gives_no_lines() {
        assert!(echo_lines("echo: error\n", 1.0).is_empty());
        assert!(cross_lines("workload,x\nnope\n").is_empty());
    }

    #[test]
    fn children_get_rounds_and_scale() {
        assert_eq!(Suite::Echo.args(None, None), ["--machine"]);
        assert_eq!(
            Suite::Multicore.args(Some(3), Some(0.5)),
            [
                "--multicore",
                "--machine",
                "--rounds",
                "3",
                "--scale",
                "0.5"
            ]
        );
        assert_eq!(
            Suite::Cross.args(Some(1), Some(0.01)),
            ["--machine", "--rounds", "1", "--ops", "200"]
        );
    }
}
