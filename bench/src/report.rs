//! Printing: the human table (medians, min–max lines, warnings) and the
//! `--machine` CSV, whose columns are listed in the crate docs.

use crate::instructions::Counted;
use crate::stats::{self, Round, Spread, WIDE_RATIO_SPREAD};
use crate::workloads::{Runtime, Workload};

/// The `--machine` header. Keep in step with [`csv_line`] and the crate docs.
pub const CSV_HEADER: &str = "workload,trio_ns_per_op,tokio_ns_per_op,smol_ns_per_op,\
ratio_tokio,ratio_smol,ratio_tokio_min,ratio_tokio_max,ratio_smol_min,ratio_smol_max,\
trio_min,trio_max,tokio_min,tokio_max,smol_min,smol_max,ops,rounds";

/// The `--machine --instructions` header.
pub const CSV_HEADER_INSTRUCTIONS: &str =
    "workload,trio_ir_per_op,tokio_ir_per_op,smol_ir_per_op,ratio_tokio,ratio_smol";

/// One reported line: a workload, or one of the `task_memory` figures.
pub struct Row {
    pub name: &'static str,
    /// Operations per round (tasks, for `task_memory`).
    pub count: usize,
    /// Rounds the figures summarise (1 for `task_memory`).
    pub rounds: usize,
    /// Per runtime, in `Runtime::ALL` order; `None` = n/a.
    pub values: [Option<Spread>; 3],
    /// trio / tokio and trio / smol, one ratio per round.
    pub ratios: [Option<Spread>; 2],
}

/// The two runtimes trio is compared with, in column order.
const OTHERS: [Runtime; 2] = [Runtime::Tokio, Runtime::Smol];

impl Row {
    pub fn from_rounds(name: &'static str, count: usize, rounds: &[Round]) -> Row {
        Row {
            name,
            count,
            rounds: rounds.len(),
            values: stats::per_runtime(rounds),
            ratios: OTHERS.map(|other| stats::ratio(rounds, other)),
        }
    }
}

/// Everything the table's header says besides the rows.
pub struct Header {
    pub rounds: usize,
    pub warmup: usize,
    pub scale: f64,
    /// From [`crate::machine::describe`].
    pub machine: String,
    /// What the clock measures (CPU or wall time), and how long a round of
    /// one runtime lasts at least.
    pub clock: String,
}

// ----- CSV ------------------------------------------------------------------

/// A number for the CSV (`n/a` when missing).
fn plain(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"))
}

/// One CSV line for `row`, under [`CSV_HEADER`].
pub fn csv_line(row: &Row) -> String {
    let median = |s: Option<Spread>| plain(s.map(|s| s.median));
    let range =
        |s: Option<Spread>| format!("{},{}", plain(s.map(|s| s.min)), plain(s.map(|s| s.max)));
    let mut fields = vec![row.name.to_string()];
    fields.extend(row.values.iter().map(|&s| median(s)));
    fields.extend(row.ratios.iter().map(|&s| median(s)));
    fields.extend(row.ratios.iter().map(|&s| range(s)));
    fields.extend(row.values.iter().map(|&s| range(s)));
    fields.push(row.count.to_string());
    fields.push(row.rounds.to_string());
    fields.join(",")
}

pub fn print_csv(rows: &[Row]) {
    println!("{CSV_HEADER}");
    for row in rows {
        println!("{}", csv_line(row));
    }
}

pub fn print_instructions_csv(counted: &[Counted]) {
    println!("{CSV_HEADER_INSTRUCTIONS}");
    for c in counted {
        let v = c.per_op.map(plain);
        let r = OTHERS.map(|other| plain(c.ratio(other)));
        println!(
            "{},{},{},{},{},{}",
            c.workload.name(),
            v[0],
            v[1],
            v[2],
            r[0],
            r[1]
        );
    }
}

// ----- table ----------------------------------------------------------------

/// Column widths: name, count, then five figure columns.
const NAME_W: usize = 20;
const COUNT_W: usize = 9;
const COL_W: usize = 13;

fn fmt_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_ratio(v: f64) -> String {
    format!("{v:.2}")
}

/// The median line's five figure cells and the min–max line's.
fn cells(row: &Row) -> ([String; 5], [String; 5]) {
    let cell = |s: Option<Spread>, f: fn(f64) -> String| -> (String, String) {
        match s {
            None => ("n/a".into(), String::new()),
            Some(s) => (f(s.median), format!("{}-{}", f(s.min), f(s.max))),
        }
    };
    let all: Vec<(String, String)> = row
        .values
        .iter()
        .map(|&s| cell(s, fmt_value))
        .chain(row.ratios.iter().map(|&s| cell(s, fmt_ratio)))
        .collect();
    (
        std::array::from_fn(|i| all[i].0.clone()),
        std::array::from_fn(|i| all[i].1.clone()),
    )
}

fn print_columns(name: &str, count: &str, cols: &[String; 5]) {
    let mut line = format!("{name:<NAME_W$} {count:>COUNT_W$}");
    for c in cols {
        line += &format!(" {c:>COL_W$}");
    }
    println!("{}", line.trim_end());
}

fn print_header_row(unit: &str) {
    let names = Runtime::ALL.map(|r| format!("{} {unit}", r.name()));
    let cols = [
        names[0].clone(),
        names[1].clone(),
        names[2].clone(),
        "trio/tokio".into(),
        "trio/smol".into(),
    ];
    println!();
    print_columns("workload", "ops", &cols);
}

/// A row's median line, then (with more than one round) its min–max line.
fn print_row(row: &Row) {
    let (medians, ranges) = cells(row);
    print_columns(row.name, &row.count.to_string(), &medians);
    if row.rounds > 1 {
        print_columns("  min-max", "", &ranges);
    }
}

/// The ratios whose spread is too wide to trust, as warning lines.
pub fn warnings(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for row in rows {
        for (other, ratio) in OTHERS.iter().zip(&row.ratios) {
            let Some(s) = ratio else { continue };
            if s.width() > WIDE_RATIO_SPREAD {
                out.push(format!(
                    "warning: {}: trio/{} ranges {}-{} over {} rounds (max/min {:.2} > {:.2}); \
                     do not trust this ratio",
                    row.name,
                    other.name(),
                    fmt_ratio(s.min),
                    fmt_ratio(s.max),
                    row.rounds,
                    s.width(),
                    WIDE_RATIO_SPREAD
                ));
            }
        }
    }
    out
}

pub fn print_table(rows: &[Row], memory: &[Row], h: &Header) {
    println!(
        "trio vs tokio (current_thread + LocalSet) vs smol (LocalExecutor): median of {} \
         round(s) after {} warm-up, scale {}",
        h.rounds, h.warmup, h.scale
    );
    println!("{}", h.machine);
    println!("{}", h.clock);
    println!(
        "ratio = trio / other, taken per round (a round runs trio, tokio, smol back to back): \
         < 1 means trio is faster (or smaller)"
    );
    if h.rounds > 1 {
        println!(
            "min-max: the range over the rounds; a ratio whose max/min exceeds {WIDE_RATIO_SPREAD:.2} \
             is flagged below"
        );
    } else {
        println!("one round: no spread measured (use --rounds 7 or more)");
    }
    if !rows.is_empty() {
        print_header_row("ns/op");
        rows.iter().for_each(print_row);
        println!();
        for r in rows {
            if let Some(w) = Workload::from_name(r.name) {
                println!("  {:<14} op = {}", r.name, w.describe());
            }
        }
    }
    if !memory.is_empty() {
        print_header_row("B/task");
        memory.iter().for_each(print_row);
        println!(
            "\n  task_memory_runtime  runtime-owned bytes per blocked task: live-byte delta / tasks \
             - size of the task's future\n  \
             task_memory_total    all bytes per blocked task: live-byte delta / tasks\n  \
             (every task blocks on an equivalent wait: trio Event::wait, tokio \
             Notify::notified, smol event_listener; ops = tasks; one measurement, no rounds)"
        );
    }
    let warnings = warnings(rows);
    if !warnings.is_empty() {
        println!();
        warnings.iter().for_each(|w| println!("{w}"));
    }
}

pub fn print_instructions_table(counted: &[Counted], scale: f64, machine: &str) {
    println!(
        "instructions per operation (valgrind callgrind): marginal between scale {scale} and {}, \
         (Ir(2s) - Ir(s)) / (ops(2s) - ops(s)), start-up subtracted",
        2.0 * scale
    );
    println!("{machine}");
    println!(
        "ratio = trio / other: < 1 means trio executes fewer instructions \
         (counts do not depend on load or pinning; they under-weight atomics and cache misses)"
    );
    print_header_row("Ir/op");
    for c in counted {
        let row = Row {
            name: c.workload.name(),
            count: c.workload.shape(2.0 * scale).ops,
            rounds: 1,
            values: c.values(),
            ratios: OTHERS.map(|other| c.ratio(other).map(Spread::single)),
        };
        print_row(&row);
    }
    println!("\n  ops = operations at the larger scale");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_line_matches_the_header() {
        let rounds = [
            [Some(10.0), Some(20.0), Some(40.0)],
            [Some(12.0), Some(20.0), Some(30.0)],
        ];
        let row = Row::from_rounds("yield", 1000, &rounds);
        let line = csv_line(&row);
        assert_eq!(
            line.split(',').count(),
            CSV_HEADER.split(',').count(),
            "{line}"
        );
        assert_eq!(
            line,
            "yield,11.000,20.000,35.000,0.550,0.325,0.500,0.600,0.250,0.400,\
             10.000,12.000,20.000,20.000,30.000,40.000,1000,2"
        );
    }

    #[test]
    fn missing_runtimes_print_as_n_a() {
        let row = Row::from_rounds("task_memory_total", 100, &[[Some(200.0), None, None]]);
        assert_eq!(
            csv_line(&row),
            "task_memory_total,200.000,n/a,n/a,n/a,n/a,n/a,n/a,n/a,n/a,\
             200.000,200.000,n/a,n/a,n/a,n/a,100,1"
        );
    }

    #[test]
    fn only_wide_ratio_spreads_warn() {
        let steady = [
            [Some(1.0), Some(2.0), Some(2.0)],
            [Some(1.05), Some(2.0), Some(2.0)],
        ];
        assert!(warnings(&[Row::from_rounds("a", 1, &steady)]).is_empty());
        let wide = [
            [Some(1.0), Some(2.0), Some(2.0)],
            [Some(1.5), Some(2.0), Some(2.0)],
        ];
        let w = warnings(&[Row::from_rounds("b", 1, &wide)]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("warning: b: trio/tokio ranges 0.50-0.75"),
            "{w:?}"
        );
    }
}
