//! The platform calls of [`process`](crate::process) that std does not
//! offer: each is one libc call with its `SAFETY` argument.
//!
//! - [`pidfd_open`]: a pollable fd that becomes readable when the child
//!   exits (Linux ≥ 5.3; `Unsupported` elsewhere, and the caller falls back
//!   to SIGCHLD);
//! - [`set_nonblocking`]: `O_NONBLOCK` on a pipe end (std has it only for
//!   sockets);
//! - [`send_signal`]: `kill(2)`, to a process or (negative id) a group;
//! - [`has_exited`]: `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`, which
//!   asks whether *one* child has exited without reaping it, so that its
//!   pid (and process-group id) stays reserved until we reap it with
//!   `std::process::Child::try_wait`. Never `-1`/`P_ALL`: that would reap
//!   other libraries' children.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// `pidfd_open(pid, 0)`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `pidfd_open` takes two integers and touches no memory of
    // ours; the libc crate has no wrapper, hence the raw syscall.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd_open returned no fd"))?;
    // SAFETY: the kernel just installed `fd` for us (close-on-exec, as
    // pidfds always are); nothing else refers to it, so this `OwnedFd` is
    // its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_open` where the OS has no pidfds.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pidfd_open(_pid: u32) -> io::Result<OwnedFd> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Sets `O_NONBLOCK` on `fd`.
#[allow(unsafe_code)]
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: `fcntl(F_GETFL)` on an fd we borrow (so it is open) reads
    // its flags and touches no memory of ours.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; `F_SETFL` only changes the file status flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `kill(pid, signal)`. A negative `pid` names a process group. The caller
/// must know that `pid` is still its unreaped child (or that child's
/// group), so that the number cannot belong to someone else.
#[allow(unsafe_code)]
pub(crate) fn send_signal(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: `kill` takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether our child `pid` has exited, without reaping it.
#[allow(unsafe_code)]
pub(crate) fn has_exited(pid: u32) -> io::Result<bool> {
    let pid = libc::id_t::from(pid);
    // SAFETY: all-zero bytes are a valid `siginfo_t` (plain integers and
    // padding); `waitid` gets a pointer to this local, which lives across
    // the call.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `info` is a valid, writable `siginfo_t`; the other
        // arguments are integers.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    // With WNOHANG, a child that has not changed state leaves `si_pid` 0
    // (the buffer was zeroed, as POSIX asks callers to do).
    // SAFETY: `waitid` returned 0, so `info` is initialised; reading the
    // `si_pid` field of its union is what the libc accessor is for.
    Ok(unsafe { info.si_pid() } != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn has_exited_does_not_reap_and_pidfd_opens() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        #[cfg(target_os = "linux")]
        let _pidfd = pidfd_open(pid).unwrap();
        while !has_exited(pid).unwrap() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Still ours to reap: WNOWAIT left it a zombie.
        assert!(has_exited(pid).unwrap());
        assert!(child.wait().unwrap().success());
        // Reaped: no longer our child.
        assert!(has_exited(pid).is_err());
    }

    #[test]
    fn nonblocking_pipe_reads_would_block() {
        let (r, _w) = std::io::pipe().unwrap();
        set_nonblocking(r.as_fd()).unwrap();
        let e = std::io::Read::read(&mut &r, &mut [0; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
