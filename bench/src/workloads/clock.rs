//! The clock the workloads are timed with: the process's CPU time
//! (`CLOCK_PROCESS_CPUTIME_ID`, every thread summed) by default, or the wall
//! clock with `--clock wall`.
//!
//! Why CPU time: the machines these figures come from are shared, and wall
//! time counts every moment the process sat descheduled while another
//! process ran; two fresh runs then differ by whatever else the machine did.
//! CPU time counts only the work done. It also takes the real clock out of
//! `sleep` (whose wall time is at least as long as its longest sleep, so its
//! wall figure is mostly that floor plus timer slack): what remains is what
//! the runtime spent to run the sleeps. On a quiet machine, for the other
//! (single-threaded, CPU-bound) workloads, the two clocks agree.
//!
//! Other threads count too: smol's `async-io` thread, which may take part
//! in running timers, is part of smol's cost (and its share depends on
//! timing, which is why smol's `sleep` figure still moves by ~15% between
//! runs on a loaded machine).
//!
//! The workload modules import [`Instant`] from here in place of
//! `std::time::Instant`; it has the two methods they use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static WALL: AtomicBool = AtomicBool::new(false);

/// Times with the wall clock (`--clock wall`) instead of CPU time.
pub fn use_wall_clock(wall: bool) {
    WALL.store(wall, Ordering::Relaxed);
}

/// Whether the wall clock is in use.
pub fn wall_clock() -> bool {
    WALL.load(Ordering::Relaxed)
}

/// A reading of the selected clock.
#[derive(Clone, Copy, Debug)]
pub enum Instant {
    Cpu(Duration),
    Wall(std::time::Instant),
}

impl Instant {
    pub fn now() -> Instant {
        if wall_clock() {
            Instant::Wall(std::time::Instant::now())
        } else {
            Instant::Cpu(process_cpu_time())
        }
    }

    /// Time on the same clock since `self`.
    pub fn elapsed(&self) -> Duration {
        match self {
            Instant::Cpu(start) => process_cpu_time().saturating_sub(*start),
            Instant::Wall(start) => start.elapsed(),
        }
    }
}

/// CPU time used by the whole process so far.
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer,
    // which points to a live, writable local of that type.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_advances_with_work() {
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(2) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0);
    }
}
