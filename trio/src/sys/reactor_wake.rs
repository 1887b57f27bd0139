//! Interrupting a run's reactor from another thread with direct system
//! calls: a [`DirectWaker`], the same wake-up as mio's `Waker` (an
//! eventfd in the run's epoll set, edge-triggered, written once per
//! wake-up and never read back), without libc's `write`.
//!
//! Why: libc's `write` is a POSIX cancellation point, so in a process with
//! a second thread (every cross-run hand-off has one) glibc wraps it in
//! `__pthread_enable_asynccancel` / `__pthread_disable_asynccancel`, and
//! mio's `Waker::wake` adds `std::fs::File`'s write path on top: about 90
//! user-space instructions per wake-up, where `syscall(2)` with the same
//! arguments takes about 15 (callgrind, `cross_channel`: a hand-off to a
//! blocked run wakes its reactor once). Nothing in Rust uses
//! `pthread_cancel`, so that bookkeeping buys nothing. The kernel sees the
//! same `write(eventfd, &1u64, 8)`.
//!
//! The eventfd is added to the run's epoll instance with the reactor
//! waker's token (`core::io::WAKER_TOKEN`), so the reactor treats its
//! events exactly as mio's waker's: an interrupted wait, nothing else. It
//! is closed when the waker is dropped, which takes it out of the epoll
//! set too. A counter about to overflow (2^64 − 2 writes never read) makes
//! a write fail with `EAGAIN`: it is read back to zero and written again,
//! as mio does.
//!
//! Only on Linux on x86_64 and aarch64 (where `SYS_write` is the plain
//! `write`); elsewhere [`DirectWaker::register`] fails with `Unsupported`
//! and the run keeps mio's waker.

use std::io;
use std::os::fd::RawFd;

/// An eventfd in a run's epoll set; see the module docs.
#[derive(Debug)]
pub(crate) struct DirectWaker {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    fd: std::os::fd::OwnedFd,
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
impl DirectWaker {
    /// A new eventfd (non-blocking, close-on-exec), added to the epoll
    /// instance `epoll_fd` as readable, edge-triggered, with `token` as
    /// its event data.
    #[allow(unsafe_code)]
    pub(crate) fn register(epoll_fd: RawFd, token: u64) -> io::Result<Self> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: `eventfd` takes two integers and returns a new
        // descriptor or -1; it touches no memory of ours.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just made, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: `epoll_ctl` reads the `epoll_event` it is given, which
        // lives on this stack for the call; `fd` is open (owned here) and
        // `epoll_fd` is the caller's open epoll descriptor (a bad one only
        // makes the call fail).
        let rc =
            unsafe { libc::epoll_ctl(epoll_fd, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DirectWaker { fd })
    }

    /// Interrupts the reactor: adds 1 to the eventfd's counter.
    #[inline]
    pub(crate) fn wake(&self) -> io::Result<()> {
        match self.transfer(libc::SYS_write, 1) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The counter would overflow: back to zero, then again.
                let _ = self.transfer(libc::SYS_read, 0);
                self.transfer(libc::SYS_write, 1).map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    /// `write` (`nr` = `SYS_write`) of `value`, or `read` (`SYS_read`,
    /// `value` ignored) of the 8-byte counter: the byte count or the error.
    #[allow(unsafe_code)]
    #[inline(always)]
    fn transfer(&self, nr: libc::c_long, value: u64) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let mut buf = value.to_ne_bytes();
        // SAFETY: `nr` is `SYS_write` or `SYS_read` (the two callers
        // above), whose arguments are (fd, buf, count). `fd` is open while
        // `self` lives. `buf` is 8 bytes on this stack, live for the call:
        // `write` reads them, `read` writes at most 8 (`count`). Each
        // argument is passed as a `c_long`, as `syscall(2)` reads them.
        let n = unsafe {
            libc::syscall(
                nr,
                self.fd.as_raw_fd() as libc::c_long,
                buf.as_mut_ptr() as libc::c_long,
                buf.len() as libc::c_long,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
impl DirectWaker {
    /// Not here: the run keeps mio's waker (see the module docs).
    pub(crate) fn register(_epoll_fd: RawFd, _token: u64) -> io::Result<Self> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// Never called: no `DirectWaker` is made here.
    pub(crate) fn wake(&self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(all(
    test,
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use super::DirectWaker;

    /// A wake-up makes a blocked `epoll_wait` on the set return the
    /// token, once per write (edge-triggered); none is pending otherwise.
    #[test]
    #[allow(unsafe_code)]
    fn a_wake_up_is_one_event_with_the_token() {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        // SAFETY: a new epoll instance, owned below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        // SAFETY: `ep` was just made and is owned by nobody else.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let waker = DirectWaker::register(ep.as_raw_fd(), 42).unwrap();
        let wait = || {
            let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
            // SAFETY: `events` has room for the 4 events asked for.
            let n = unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr(), 4, 0) };
            assert!(n >= 0);
            events[..n as usize]
                .iter()
                .map(|e| e.u64)
                .collect::<Vec<_>>()
        };
        assert!(wait().is_empty());
        waker.wake().unwrap();
        assert_eq!(wait(), [42]);
        assert!(wait().is_empty(), "edge-triggered: reported once");
        waker.wake().unwrap();
        assert_eq!(wait(), [42], "every write is a new edge");
    }

    #[test]
    fn a_bad_epoll_fd_is_an_error() {
        assert!(DirectWaker::register(-1, 0).is_err());
    }
}
