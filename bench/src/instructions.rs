//! `--instructions`: instructions per operation, counted by callgrind.
//!
//! Timings on the shared 2-core VMs move by tens of percent between runs;
//! instruction counts do not depend on the machine's load, so they can judge
//! a change that the timings cannot resolve. (They under-weight atomics and
//! cache misses: they back a timing claim, they do not replace it.)
//!
//! # Method
//!
//! For each selected workload and runtime, this binary re-runs itself under
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null` twice: once at
//! scale `s`, once at `2s` (`--only W --runtimes R --rounds 1 --warmup 0`),
//! and reads the total instruction count from callgrind's
//! `Collected : N` line on stderr. Both runs pay the same start-up (process,
//! allocator, runtime construction), so
//!
//! ```text
//! instructions per op = (Ir(2s) - Ir(s)) / (ops(2s) - ops(s))
//! ```
//!
//! is the marginal cost of one more operation, start-up subtracted. `s` is
//! `--scale` (default [`DEFAULT_SCALE`]). The child also prints its CSV, which
//! is checked so that a runtime reporting `n/a` is not given a figure.
//! `task_memory` is not counted (it is bytes, not time).
//!
//! Repeatability: trio's and tokio's counts repeat to within 0.1% except on
//! `sleep`, which waits on the real clock (how many sleeps expire per wake-up
//! depends on timing; a few percent). smol's can move by a few percent on
//! other workloads too (observed: ping_pong 4071 and 4324 on a loaded
//! machine): async-io's `block_on` and the executor's periodic yields poll the
//! reactor on paths that depend on timing. Compare such figures over two runs.

use std::process::Command;

use crate::stats::Spread;
use crate::workloads::{Runtime, Workload};

/// Scale `s` when `--scale` is not given: 0.05 and 0.1 take a few seconds
/// per workload and runtime under callgrind (roughly 50x slower than native)
/// while the marginal counts already settle (`../shared/BENCHMARKING.md`).
pub const DEFAULT_SCALE: f64 = 0.05;

/// Instructions per operation of one workload, per runtime (`None`: not
/// selected, or the runtime cannot run it).
pub struct Counted {
    pub workload: Workload,
    pub per_op: [Option<f64>; 3],
}

impl Counted {
    /// trio / `other`, or `None` if either is missing.
    pub fn ratio(&self, other: Runtime) -> Option<f64> {
        let idx = Runtime::ALL.iter().position(|&r| r == other)?;
        Some(self.per_op[0]? / self.per_op[idx]?)
    }

    /// As a single-sample [`Spread`] per runtime, for the shared printers.
    pub fn values(&self) -> [Option<Spread>; 3] {
        self.per_op.map(|v| v.map(Spread::single))
    }
}

/// Counts every selected (workload, runtime) pair, one after another.
pub fn count_all(
    workloads: &[Workload],
    runtimes: &[Runtime],
    scale: f64,
) -> Result<Vec<Counted>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let exe = exe
        .to_str()
        .ok_or("own binary path is not UTF-8")?
        .to_string();
    workloads
        .iter()
        .map(|&w| {
            let mut per_op = [None; 3];
            for (i, rt) in Runtime::ALL.into_iter().enumerate() {
                if runtimes.contains(&rt) {
                    eprintln!("callgrind: {} on {} ...", w.name(), rt.name());
                    per_op[i] = marginal(&exe, w, rt, scale)?;
                }
            }
            Ok(Counted {
                workload: w,
                per_op,
            })
        })
        .collect()
}

/// Marginal instructions per op between scales `s` and `2s`.
fn marginal(exe: &str, w: Workload, rt: Runtime, s: f64) -> Result<Option<f64>, String> {
    let (small, large) = (s, 2.0 * s);
    let (ops_small, ops_large) = (w.shape(small).ops, w.shape(large).ops);
    if ops_large <= ops_small {
        return Err(format!(
            "{}: scale {s} is too small (ops {ops_small} at {small}, {ops_large} at {large})",
            w.name()
        ));
    }
    let (Some(ir_small), Some(ir_large)) =
        (collected(exe, w, rt, small)?, collected(exe, w, rt, large)?)
    else {
        return Ok(None);
    };
    Ok(Some(per_op(ir_small, ir_large, ops_small, ops_large)))
}

fn per_op(ir_small: u64, ir_large: u64, ops_small: usize, ops_large: usize) -> f64 {
    (ir_large as f64 - ir_small as f64) / (ops_large - ops_small) as f64
}

/// Total instructions of one child run at `scale`, or `None` if the runtime
/// reported the workload as `n/a`.
fn collected(exe: &str, w: Workload, rt: Runtime, scale: f64) -> Result<Option<u64>, String> {
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null", exe])
        .args(["--only", w.name(), "--runtimes", rt.name()])
        .args([
            "--scale",
            &scale.to_string(),
            "--rounds",
            "1",
            "--warmup",
            "0",
        ])
        .arg("--machine")
        .output()
        .map_err(|e| format!("cannot run valgrind (is it installed?): {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "{} on {}: child failed:\n{stderr}",
            w.name(),
            rt.name()
        ));
    }
    if !ran(&String::from_utf8_lossy(&out.stdout), w, rt) {
        return Ok(None);
    }
    parse_collected(&stderr)
        .map(Some)
        .ok_or_else(|| format!("no `Collected :` line in callgrind's output:\n{stderr}"))
}

/// Whether the child's CSV has a figure for `w` on `rt` (not `n/a`).
fn ran(csv: &str, w: Workload, rt: Runtime) -> bool {
    let column = 1 + Runtime::ALL.iter().position(|&r| r == rt).unwrap_or(0);
    csv.lines()
        .filter_map(|line| line.strip_prefix(w.name())?.strip_prefix(','))
        .any(|rest| rest.split(',').nth(column - 1).is_some_and(|v| v != "n/a"))
}

/// The `N` of callgrind's `==PID== Collected : N`.
fn parse_collected(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        let (_, after) = line.split_once("Collected :")?;
        after.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_callgrind_summary() {
        let stderr = "==42== Events    : Ir\n==42== Collected : 123456789\n==42==\n";
        assert_eq!(parse_collected(stderr), Some(123_456_789));
        assert_eq!(parse_collected("==42== Events : Ir\n"), None);
    }

    #[test]
    fn start_up_cancels_out() {
        // 1000 start-up instructions + 40 per op, at 100 and 200 ops.
        assert_eq!(per_op(1000 + 40 * 100, 1000 + 40 * 200, 100, 200), 40.0);
    }

    #[test]
    fn n_a_in_the_child_csv_means_not_run() {
        let csv = "workload,trio_ns_per_op,tokio_ns_per_op,smol_ns_per_op\nyield,n/a,5.0,n/a\n";
        assert!(!ran(csv, Workload::Yield, Runtime::Trio));
        assert!(ran(csv, Workload::Yield, Runtime::Tokio));
        assert!(!ran(csv, Workload::PingPong, Runtime::Tokio));
    }
}
