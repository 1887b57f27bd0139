//! The workloads and their sizes, plus dispatch to the per-runtime code.
//!
//! Each workload is implemented once per runtime, in [`trio`], [`tokio`] and
//! [`smol`], written the way a user of that runtime would write it. Every
//! implementation builds a fresh runtime, starts the clock *inside* it (so
//! runtime construction and teardown are not timed) and returns the elapsed
//! time for `Shape::ops` operations, on the clock of [`clock`] (CPU time by
//! default). `None` means "this runtime cannot run the
//! workload yet" and is printed as `n/a`.
//!
//! A TCP echo workload (loopback client/server round trips) is planned but
//! left out on purpose: trio has no networking yet. When it does, add a
//! `TcpEcho` variant here, include it in [`Workload::ALL`] and implement it in
//! the three runtime modules.

pub mod clock;
pub mod smol;
pub mod tokio;
pub mod trio;

use std::time::Duration;

/// Which runtime a measurement runs on. The order here is the interleaving
/// order within a round and the column order of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Trio,
    Tokio,
    Smol,
}

impl Runtime {
    pub const ALL: [Runtime; 3] = [Runtime::Trio, Runtime::Tokio, Runtime::Smol];

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Trio => "trio",
            Runtime::Tokio => "tokio",
            Runtime::Smol => "smol",
        }
    }

    pub fn from_name(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// One benchmark workload. See [`Workload::describe`] for what each one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    SpawnJoin,
    Yield,
    PingPong,
    Timeout,
    Sleep,
    Cancel,
    NurseryEmpty,
    Nursery10,
}

/// The size of one measurement: `n` and `m` are workload-specific (see
/// [`Workload::shape`]); `ops` is what the elapsed time is divided by.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub n: usize,
    pub m: usize,
    pub ops: usize,
}

impl Workload {
    /// The default list, in the order they are run and printed.
    pub const ALL: [Workload; 8] = [
        Workload::SpawnJoin,
        Workload::Yield,
        Workload::PingPong,
        Workload::Timeout,
        Workload::Sleep,
        Workload::Cancel,
        Workload::NurseryEmpty,
        Workload::Nursery10,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::SpawnJoin => "spawn_join",
            Workload::Yield => "yield",
            Workload::PingPong => "ping_pong",
            Workload::Timeout => "timeout",
            Workload::Sleep => "sleep",
            Workload::Cancel => "cancel",
            Workload::NurseryEmpty => "nursery_empty",
            Workload::Nursery10 => "nursery_10",
        }
    }

    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// What one operation is, for `--help` and the table legend.
    pub fn describe(self) -> &'static str {
        match self {
            Workload::SpawnJoin => "spawn + join one trivial child (1M children in one scope)",
            Workload::Yield => "one yield/checkpoint (1000 tasks x 1000 yields)",
            Workload::PingPong => "one round trip over two capacity-1 channels (500k)",
            Workload::Timeout => "one yield under a 10 s timeout that never fires (1M)",
            Workload::Sleep => {
                "one task sleeping 200 + (i % 100) ms from spawn, 100k at once (real clock)"
            }
            Workload::Cancel => "cancel one blocked task and wait for it (10 x 10k)",
            Workload::NurseryEmpty => "open + close an empty nursery / JoinSet (100k)",
            Workload::Nursery10 => "open a nursery, spawn 10 trivial children, join (100k)",
        }
    }

    /// Sizes at `--scale scale` (1.0 = the documented defaults). Counts are
    /// scaled; per-task counts (yields per task, children per nursery,
    /// cancellation batches) and sleep durations are not, so the shape of the
    /// work stays the same and only its length changes.
    pub fn shape(self, scale: f64) -> Shape {
        let s = |base: usize| ((base as f64 * scale).round() as usize).max(1);
        let (n, m) = match self {
            // n children.
            Workload::SpawnJoin => (s(1_000_000), 1),
            // n tasks x m yields each.
            Workload::Yield => (s(1_000), 1_000),
            // n round trips.
            Workload::PingPong => (s(500_000), 1),
            // n timeouts, one after another in one task.
            Workload::Timeout => (s(1_000_000), 1),
            // n tasks, task i sleeps `sleep_for(i)`.
            Workload::Sleep => (s(100_000), 1),
            // m batches of n blocked tasks; only the cancellation is timed.
            Workload::Cancel => (s(10_000), 10),
            // n nurseries with m children each.
            Workload::NurseryEmpty => (s(100_000), 0),
            Workload::Nursery10 => (s(100_000), 10),
        };
        let ops = match self {
            Workload::Yield | Workload::Cancel => n * m,
            _ => n,
        };
        Shape { n, m, ops }
    }
}

/// How long every sleeper of `sleep` sleeps beyond its `i % 100` ms: long
/// enough that all of them are spawned (and their timers set) before the
/// first one is due, even on a loaded machine (spawning 100k takes tens of
/// milliseconds). Otherwise how many deadlines have already passed when
/// their timer is set, and so how much work a sleep costs, depends on how
/// fast the spawning went: a figure that does not repeat.
pub const SLEEP_LEAD: Duration = Duration::from_millis(200);

/// The `sleep` duration of sleeper `i`.
pub fn sleep_for(i: usize) -> Duration {
    SLEEP_LEAD + Duration::from_millis((i % 100) as u64)
}

/// Runs one measurement of `workload` on `runtime` with a fresh runtime.
pub fn run(runtime: Runtime, workload: Workload, shape: Shape) -> Option<Duration> {
    match runtime {
        Runtime::Trio => self::trio::run(workload, shape),
        Runtime::Tokio => self::tokio::run(workload, shape),
        Runtime::Smol => self::smol::run(workload, shape),
    }
}

/// Bytes per blocked task on `runtime`, with `n` tasks; see the
/// per-runtime `task_memory` functions.
pub fn task_memory(runtime: Runtime, n: usize) -> TaskMemory {
    match runtime {
        Runtime::Trio => self::trio::task_memory(n),
        Runtime::Tokio => self::tokio::task_memory(n),
        Runtime::Smol => self::smol::task_memory(n),
    }
}

/// The two memory figures for one runtime, in bytes per blocked task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskMemory {
    /// Live-byte delta / tasks, minus the size of the spawned future: what
    /// the runtime keeps per task (header, scheduler bookkeeping, wait
    /// records it allocates). The future is excluded because every runtime
    /// must store it somewhere, but so is whatever a wait keeps inside the
    /// future (tokio's `Notified` holds its waiter in the future), hence:
    pub runtime: f64,
    /// Live-byte delta / tasks, nothing subtracted: what a blocked task costs
    /// the user. Moving state from the runtime into the future does not
    /// change this figure.
    pub total: f64,
}

/// Turns a live-byte delta over `n` tasks, each of whose futures is
/// `future_size` bytes, into both figures per task.
pub fn per_task_overhead(delta: isize, n: usize, future_size: usize) -> TaskMemory {
    let total = delta as f64 / n as f64;
    TaskMemory {
        runtime: total - future_size as f64,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_bytes_exclude_the_future_and_total_bytes_do_not() {
        let m = per_task_overhead(3000, 10, 100);
        assert_eq!((m.runtime, m.total), (200.0, 300.0));
    }

    #[test]
    fn every_runtime_measures_memory_of_blocked_tasks() {
        for rt in Runtime::ALL {
            let m = task_memory(rt, 100);
            // The future is counted in the total only, and a blocked task
            // costs the runtime something.
            assert!(
                m.total > m.runtime && m.runtime > 0.0,
                "{}: {m:?}",
                rt.name()
            );
        }
    }
}
