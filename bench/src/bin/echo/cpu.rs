//! CPU time of another process, and medians with their spread.
//!
//! The server's CPU time is the sum over its threads of
//! `/proc/PID/task/TID/schedstat`'s first field (time on CPU, ns, user and
//! kernel together). Nanoseconds rather than `/proc/PID/stat`'s
//! utime+stime, which count in clock ticks (10 ms here): over a 2 s window
//! that alone would be a 0.5% step. Threads that exit inside the window
//! would be missed; none of the servers starts or ends a thread while it
//! serves. If schedstat cannot be read, utime+stime is the fallback.
//!
//! The kernel brings a thread's schedstat up to date when it stops running
//! and on scheduler ticks, so a thread on the CPU at the moment of reading
//! may be under-counted by up to one tick (4 ms at HZ=250). The echo
//! servers block between messages, so the lag is usually far smaller; over
//! a window of a second or more it is below 0.5% in any case.

use std::fs;
use std::io;

/// CPU time the process `pid` has used so far, in ns.
pub fn process_cpu_ns(pid: u32) -> io::Result<u64> {
    match schedstat_ns(pid) {
        Ok(ns) => Ok(ns),
        Err(_) => stat_ns(pid),
    }
}

fn schedstat_ns(pid: u32) -> io::Result<u64> {
    sum_over_threads(pid, "schedstat", |text| {
        // An exiting thread's file can read empty: gone, as below.
        if text.trim().is_empty() {
            Ok(0)
        } else {
            first_field(text)
        }
    })
}

/// How many times the threads of process `pid` have gone to sleep so far:
/// the sum of `voluntary_ctxt_switches` in `/proc/PID/task/*/status` (a
/// thread that blocks, in `epoll_wait` or on a futex, and is later woken).
/// Each sleep and wake-up costs kernel time that the CPU figure includes,
/// so this says how much of a server's CPU per message is spent on it.
pub fn process_sleeps(pid: u32) -> io::Result<u64> {
    sum_over_threads(pid, "status", |text| {
        Ok(voluntary_switches(text).unwrap_or(0))
    })
}

/// The sum of `value` over `/proc/PID/task/*/FILE`. A thread that exited
/// since the listing counts nothing: what it used is gone with it (see
/// the module docs), which is no reason to fail for all the others.
fn sum_over_threads(
    pid: u32,
    file: &str,
    value: impl Fn(&str) -> io::Result<u64>,
) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        match fs::read_to_string(entry?.path().join(file)) {
            Ok(text) => total += value(&text)?,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// The `voluntary_ctxt_switches:` line of a `/proc/.../status` text.
fn voluntary_switches(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
}

fn first_field(schedstat: &str) -> io::Result<u64> {
    schedstat
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad schedstat `{schedstat}`")))
}

/// utime + stime from `/proc/PID/stat`, in ns.
fn stat_ns(pid: u32) -> io::Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = stat_ticks(&text).ok_or_else(|| io::Error::other("bad /proc/PID/stat"))?;
    // Linux reports these in USER_HZ, 100 on every architecture we run on.
    Ok(ticks * 10_000_000)
}

/// utime + stime (fields 14 and 15); the command name (field 2) may hold
/// spaces, so count from its closing parenthesis.
fn stat_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field k is fields[k - 3].
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

#[path = "../../spread.rs"]
#[allow(dead_code)] // each bin uses part of it
mod spread;
pub use spread::Spread;

/// `s` scaled by `k` (unit changes).
pub fn scaled(s: Spread, k: f64) -> Spread {
    Spread {
        median: s.median * k,
        min: s.min * k,
        max: s.max * k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 111 222 0 0 20 0 1 0";
        assert_eq!(stat_ticks(stat), Some(333));
    }

    #[test]
    fn voluntary_switches_from_a_status_text() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(voluntary_switches(status), Some(17));
        assert_eq!(voluntary_switches("Name:\tx\n"), None);
        // This process's main thread has slept at least once by now.
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(process_sleeps(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn this_process_has_used_cpu() {
        // Spin past a few scheduler ticks so that this thread's own count
        // is brought up to date even if it is never switched out.
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(200) {
            std::hint::black_box(0);
        }
        assert!(schedstat_ns(std::process::id()).unwrap() > 0);
        assert!(stat_ns(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn spread_median_and_range() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        assert_eq!(Spread::of(&[]), None);
    }
}
