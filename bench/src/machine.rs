//! What machine the figures come from, and pinning to one CPU (`--pin`).
//!
//! Unpinned runs on the 2-core CI VMs differed by up to 1.7x on one workload
//! (`../shared/BENCHMARKING.md`): the scheduler migrates the process between
//! cores, each with its own caches and frequency. Pinning keeps every round on
//! one core. `--pin` does what `taskset -c N` does from outside; the header
//! reports the affinity mask the process actually has, so a run under
//! `taskset` is reported as pinned too.
//!
//! The affinity is set for the calling thread (pid 0) before any other thread
//! exists; threads started later (async-io's helper thread, tokio's blocking
//! pool if any) inherit it.

use std::io;

/// The CPUs this thread may run on, ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all-zero bytes are
    // a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size passed is that of `set`,
    // which the kernel writes at most that many bytes of.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let cpus = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` < CPU_SETSIZE, the number of bits in `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    Ok(cpus)
}

/// Pins the calling thread (and every thread it starts afterwards) to `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    set_affinity(&[cpu])
}

/// Lets the calling thread (and every thread or process it starts
/// afterwards) run on `cpus` only.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`, all-zero is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "CPU number too large",
            ));
        }
        // SAFETY: `cpu` < CPU_SETSIZE (checked above), so the bit is inside
        // `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is initialised and its size
    // is passed with it. The kernel only reads it.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The `model name` of the first CPU in `/proc/cpuinfo`, if any.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    model_name(&info)
}

fn model_name(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// CPUs online (not just those this process may use, which
/// `available_parallelism` would report: 1 when pinned).
pub fn cpus_online() -> Option<usize> {
    // SAFETY: `sysconf` only reads a system constant; no pointers involved.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0)
}

/// One header line: CPU model, core count, and whether (and by whom) the
/// process is pinned. `pinned_by_us` is the CPU `--pin` chose, if any.
pub fn describe(pinned_by_us: Option<usize>) -> String {
    let affinity = match (pinned_by_us, allowed_cpus().as_deref()) {
        (Some(cpu), _) => format!("pinned to CPU {cpu} (--pin)"),
        (None, Ok([cpu])) => format!("pinned to CPU {cpu} (by the caller's affinity mask)"),
        (None, Ok(cpus)) => format!(
            "NOT pinned (may run on CPUs {}; use --pin for stable figures)",
            fmt_cpu_list(cpus)
        ),
        (None, Err(err)) => format!("affinity unknown ({err})"),
    };
    format!("{}; {affinity}", describe_cpu())
}

/// The CPU model and the number of CPUs online, as a header line.
pub fn describe_cpu() -> String {
    let model = cpu_model().unwrap_or_else(|| "unknown CPU".into());
    let online = cpus_online().map_or_else(|| "? CPUs".into(), |n| format!("{n} CPUs"));
    format!("machine: {model}, {online} online")
}

fn fmt_cpu_list(cpus: &[usize]) -> String {
    let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
    list.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name_is_the_first_cpus() {
        let info =
            "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(model_name(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(model_name("processor\t: 0\n"), None);
    }

    #[test]
    fn this_thread_may_run_somewhere() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
