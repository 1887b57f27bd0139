//! The modes that count instead of timing: `--instructions` (callgrind
//! totals), `--profile KIND` (callgrind per function) and `--syscalls`
//! (strace). All three are independent of the machine's load; see the
//! binary's docs for what each measures and its caveats.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpu::Spread;
use crate::run::{Job, Wrapper, run_once};
use crate::servers::Kind;
use crate::{Figure, Options};

/// A per-run file name in the temporary directory (the caller removes it).
pub fn temp_path(tool: &str, kind: Kind, n: usize) -> PathBuf {
    std::env::temp_dir().join(format!(
        "echo-{tool}-{}-{}-{n}",
        std::process::id(),
        kind.name()
    ))
}

/// The `N` of callgrind's `==PID== Collected : N`.
pub fn parse_collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        let (_, after) = line.split_once("Collected :")?;
        after.trim().parse().ok()
    })
}

pub fn instructions(exe: &Path, opts: &Options) -> Result<Vec<Figure>, String> {
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
    // trio, or trio-pc with `--multicore`.
    let base = crate::ratio_pairs(opts).0;
    let trio = per_msg.iter().find(|(k, _)| *k == base).map(|p| p.1);
    let mut figures = Vec::new();
    for &(kind, v) in &per_msg {
        let ratio = trio.filter(|_| kind != base).map(|t| t / v);
        if !opts.csv {
            let ratio = ratio.map_or(String::new(), |r| {
                format!("   {}/{} {r:.3}", base.name(), kind.name())
            });
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
pub fn parse_annotate(text: &str) -> Vec<(String, String, u64)> {
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
pub fn profile(exe: &Path, opts: &Options, kind: Kind) -> Result<Vec<Figure>, String> {
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
pub fn parse_strace(text: &str) -> Vec<(String, u64)> {
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

pub fn syscalls(exe: &Path, opts: &Options) -> Result<Vec<Figure>, String> {
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
pub fn strace_counts(
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
pub fn report_calls(
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
}
