//! CPU affinity for [`PerCore::pin_threads`](crate::PerCore::pin_threads):
//! which CPUs the process may run on, and pinning the calling thread to
//! one of them (`sched_getaffinity` / `sched_setaffinity` on Linux and
//! Android; elsewhere there is no portable call, so pinning reports
//! [`io::ErrorKind::Unsupported`] and the caller runs unpinned).

use std::io;

/// The CPUs the calling thread may run on, in ascending order (at least
/// one).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all-zero bytes
    // are a valid (empty) set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; the size passed is that of
    // `set`, and the kernel writes at most that many bytes into it.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` < CPU_SETSIZE, the number of bits in `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    if cpus.is_empty() {
        return Err(io::Error::other("the affinity mask is empty"));
    }
    Ok(cpus)
}

/// Pins the calling thread to `cpu`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
pub(crate) fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond CPU_SETSIZE"),
        ));
    }
    // SAFETY: as in `allowed_cpus`, all-zero is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE (checked above), so the bit is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is initialised and its
    // size is passed with it; the kernel only reads it.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs the calling thread may run on: unknown here, so none.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn allowed_cpus() -> io::Result<Vec<usize>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "CPU affinity is not supported on this OS",
    ))
}

/// Pinning is not supported here.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pin_to(_cpu: usize) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "CPU affinity is not supported on this OS",
    ))
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    /// Pinning a fresh thread to a CPU it may use leaves it only that CPU.
    #[test]
    fn pinning_narrows_the_mask_to_one_cpu() {
        let cpus = allowed_cpus().unwrap();
        let last = *cpus.last().unwrap();
        let after = std::thread::spawn(move || {
            pin_to(last).unwrap();
            allowed_cpus().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(after, vec![last]);
    }

    #[test]
    fn a_cpu_beyond_the_set_is_an_error() {
        let e = pin_to(usize::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
