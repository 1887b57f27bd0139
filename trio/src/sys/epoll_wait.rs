//! Waiting on a run's epoll instance with a direct system call: an
//! [`EpollEvents`] buffer filled by `epoll_pwait(2)` through `syscall(2)`,
//! instead of mio's `Poll::poll`, whose `epoll_wait` is libc's.
//!
//! Why: libc's `epoll_wait` is a POSIX cancellation point, so in a process
//! with a second thread glibc wraps it in `__pthread_enable_asynccancel` /
//! `__pthread_disable_asynccancel` (about 31 user-space instructions per
//! call, callgrind), and mio's `Poll::poll` adds its timeout conversion and
//! event-buffer handling: about 73 instructions per wait, against about 25
//! here. A run blocks in the reactor once per cross-run hand-off that finds
//! its receiver waiting (`bench/src/bin/cross_channel.rs`). Nothing in
//! Rust uses `pthread_cancel`, so the bookkeeping buys nothing; the kernel
//! sees the same wait (`epoll_pwait` with no signal mask is `epoll_wait`,
//! and aarch64 has only the former).
//!
//! The events are decoded exactly as mio decodes them on Linux
//! (`mio::sys::unix::selector::epoll::event`): the same bits give the same
//! readable / writable / read-closed / write-closed / error answers, so the
//! reactor treats an event the same whichever way it was read. The timeout
//! is rounded as mio rounds it (up to the next millisecond, so a deadline
//! never turns into a busy loop; at most `c_int::MAX` ms; `None` blocks).
//!
//! Only on Linux on x86_64 and aarch64; elsewhere [`EpollEvents::wait`]
//! fails with `Unsupported` and the reactor keeps mio's `Poll::poll`.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// How many events one wait can return: mio's buffer size in the reactor.
pub(crate) const CAPACITY: usize = 256;

/// One event as the kernel reported it: its token (the registration's
/// `u64` data) and its readiness bits, decoded as mio decodes them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawEvent {
    /// `epoll_event.events`.
    bits: u32,
    /// `epoll_event.u64`: the token.
    data: u64,
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
impl RawEvent {
    fn has(self, flag: libc::c_int) -> bool {
        self.bits as libc::c_int & flag != 0
    }

    /// The registration's token.
    pub(crate) fn token(self) -> usize {
        self.data as usize
    }

    /// `EPOLLIN` or `EPOLLPRI`.
    pub(crate) fn is_readable(self) -> bool {
        self.has(libc::EPOLLIN) || self.has(libc::EPOLLPRI)
    }

    /// `EPOLLOUT`.
    pub(crate) fn is_writable(self) -> bool {
        self.has(libc::EPOLLOUT)
    }

    /// `EPOLLERR`.
    pub(crate) fn is_error(self) -> bool {
        self.has(libc::EPOLLERR)
    }

    /// Both halves closed (`EPOLLHUP`), or a FIN / `shutdown(SHUT_RD)`
    /// (`EPOLLIN` with `EPOLLRDHUP`).
    pub(crate) fn is_read_closed(self) -> bool {
        self.has(libc::EPOLLHUP) || (self.has(libc::EPOLLIN) && self.has(libc::EPOLLRDHUP))
    }

    /// Both halves closed (`EPOLLHUP`), a pipe's write end closed
    /// (`EPOLLOUT` with `EPOLLERR`), or its read end closed (`EPOLLERR`
    /// alone).
    pub(crate) fn is_write_closed(self) -> bool {
        self.has(libc::EPOLLHUP)
            || (self.has(libc::EPOLLOUT) && self.has(libc::EPOLLERR))
            || self.bits as libc::c_int == libc::EPOLLERR
    }
}

/// The epoll wait's timeout argument, as mio computes it: milliseconds
/// rounded up, at most `c_int::MAX`; `-1` (block) for `None`.
#[allow(dead_code)] // unused where the direct wait is not available
fn timeout_ms(timeout: Option<Duration>) -> i32 {
    timeout
        .map(|to| {
            i32::try_from(
                to.checked_add(Duration::from_nanos(999_999))
                    .unwrap_or(to)
                    .as_millis(),
            )
            .unwrap_or(i32::MAX)
        })
        .unwrap_or(-1)
}

/// A buffer of up to [`CAPACITY`] events, filled by [`wait`](Self::wait).
/// Left uninitialised until the kernel writes it (no cost to make one on
/// the stack per wait).
pub(crate) struct EpollEvents {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    buf: [std::mem::MaybeUninit<libc::epoll_event>; CAPACITY],
    /// How many of `buf`'s first entries the last wait filled.
    len: usize,
}

impl std::fmt::Debug for EpollEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpollEvents")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
impl EpollEvents {
    /// An empty buffer.
    #[inline]
    pub(crate) fn new() -> Self {
        EpollEvents {
            buf: [const { std::mem::MaybeUninit::uninit() }; CAPACITY],
            len: 0,
        }
    }

    /// Waits on the epoll instance `epoll_fd` for at most `timeout`
    /// (`None`: until an event), filling the buffer with the events that
    /// are ready. An error (`EINTR`, a bad fd) leaves it empty.
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) fn wait(&mut self, epoll_fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
        self.len = 0;
        // SAFETY: `epoll_pwait(epfd, events, maxevents, timeout, sigmask,
        // sigsetsize)` writes at most `maxevents` `epoll_event`s to
        // `events`: `buf` is exactly `CAPACITY` of them, borrowed mutably
        // for the call. A null `sigmask` makes it `epoll_wait` (the kernel
        // then ignores `sigsetsize`, the size of its 64-bit signal set).
        // A bad `epoll_fd` only makes the call fail. Each argument is
        // passed as a `c_long`, as `syscall(2)` reads them.
        let n = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait,
                epoll_fd as libc::c_long,
                self.buf.as_mut_ptr() as libc::c_long,
                CAPACITY as libc::c_long,
                timeout_ms(timeout) as libc::c_long,
                std::ptr::null::<libc::sigset_t>() as libc::c_long,
                8 as libc::c_long,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.len = (n as usize).min(CAPACITY);
        Ok(())
    }

    /// The events of the last wait, in the kernel's order.
    #[allow(unsafe_code)]
    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = RawEvent> + '_ {
        self.buf[..self.len].iter().map(|e| {
            // SAFETY: the kernel initialised the first `len` entries in
            // the last `wait` (its return value, at most `CAPACITY`), and
            // nothing has written `buf` since.
            let e = unsafe { e.assume_init_ref() };
            RawEvent {
                bits: e.events,
                data: e.u64,
            }
        })
    }

    /// Whether the last wait filled the buffer (more may be ready).
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len == CAPACITY
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
impl EpollEvents {
    /// An empty buffer.
    pub(crate) fn new() -> Self {
        EpollEvents { len: 0 }
    }

    /// Not here: the reactor keeps mio's `Poll::poll` (see the module docs).
    pub(crate) fn wait(&mut self, _epoll_fd: RawFd, _timeout: Option<Duration>) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// Never filled here.
    pub(crate) fn iter(&self) -> impl Iterator<Item = RawEvent> + '_ {
        std::iter::empty()
    }

    /// Never filled here.
    pub(crate) fn is_full(&self) -> bool {
        false
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
impl RawEvent {
    pub(crate) fn token(self) -> usize {
        self.data as usize
    }
    pub(crate) fn is_readable(self) -> bool {
        false
    }
    pub(crate) fn is_writable(self) -> bool {
        false
    }
    pub(crate) fn is_error(self) -> bool {
        false
    }
    pub(crate) fn is_read_closed(self) -> bool {
        false
    }
    pub(crate) fn is_write_closed(self) -> bool {
        false
    }
}

#[cfg(all(
    test,
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn epoll() -> OwnedFd {
        // SAFETY: a new epoll instance, owned below.
        #[allow(unsafe_code)]
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        // SAFETY: `ep` was just made and is owned by nobody else.
        #[allow(unsafe_code)]
        unsafe {
            OwnedFd::from_raw_fd(ep)
        }
    }

    fn add(ep: &OwnedFd, fd: RawFd, events: libc::c_int, token: u64) {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: token,
        };
        // SAFETY: `event` lives on this stack for the call; both fds are open.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        assert_eq!(rc, 0);
    }

    /// A socket pair's readiness comes back with its token and mio's
    /// decoding: writable at once, readable after a write, read-closed
    /// after the peer closes; nothing is ready on an empty set.
    #[test]
    fn events_come_back_with_their_tokens_and_readiness() {
        let ep = epoll();
        let mut events = EpollEvents::new();
        events.wait(ep.as_raw_fd(), Some(Duration::ZERO)).unwrap();
        assert_eq!(events.iter().count(), 0);
        assert!(!events.is_full());

        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        add(
            &ep,
            a.as_raw_fd(),
            libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP,
            7,
        );
        events.wait(ep.as_raw_fd(), Some(Duration::ZERO)).unwrap();
        let got: Vec<RawEvent> = events.iter().collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].token(), 7);
        assert!(got[0].is_writable() && !got[0].is_readable());
        assert!(!got[0].is_read_closed() && !got[0].is_write_closed() && !got[0].is_error());

        use std::io::Write;
        (&b).write_all(b"x").unwrap();
        events.wait(ep.as_raw_fd(), None).unwrap();
        let got: Vec<RawEvent> = events.iter().collect();
        assert!(got[0].is_readable() && got[0].is_writable());

        drop(b);
        events.wait(ep.as_raw_fd(), None).unwrap();
        let got: Vec<RawEvent> = events.iter().collect();
        assert!(got[0].is_readable() && got[0].is_read_closed());
    }

    /// The decoding is mio's, bit for bit (its `epoll::event` functions).
    #[test]
    fn decoding_matches_mio() {
        let e = |bits: libc::c_int| RawEvent {
            bits: bits as u32,
            data: 0,
        };
        assert!(e(libc::EPOLLPRI).is_readable());
        assert!(!e(libc::EPOLLRDHUP).is_read_closed(), "RDHUP needs IN");
        assert!(e(libc::EPOLLIN | libc::EPOLLRDHUP).is_read_closed());
        assert!(e(libc::EPOLLHUP).is_read_closed() && e(libc::EPOLLHUP).is_write_closed());
        assert!(e(libc::EPOLLERR).is_write_closed() && e(libc::EPOLLERR).is_error());
        assert!(e(libc::EPOLLOUT | libc::EPOLLERR).is_write_closed());
        assert!(!e(libc::EPOLLIN | libc::EPOLLERR).is_write_closed());
    }

    /// mio's rounding: up to the next millisecond, `-1` to block.
    #[test]
    fn timeouts_round_up_to_milliseconds() {
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_millis(5))), 5);
        assert_eq!(timeout_ms(Some(Duration::from_micros(5_001))), 6);
        assert_eq!(timeout_ms(Some(Duration::MAX)), i32::MAX);
    }

    /// More fds ready at once than one wait returns: the buffer fills,
    /// and the reactor still wakes every waiter (the rest taken at once
    /// through mio's buffer, or by the next wait).
    #[test]
    fn more_ready_fds_than_one_wait_returns() {
        const N: usize = CAPACITY + 8;
        let pairs: Vec<_> = (0..N)
            .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
            .collect();
        for (a, b) in &pairs {
            a.set_nonblocking(true).unwrap();
            use std::io::Write;
            (&*b).write_all(b"x").unwrap();
        }
        let ep = epoll();
        for (i, (a, _)) in pairs.iter().enumerate() {
            add(&ep, a.as_raw_fd(), libc::EPOLLIN, i as u64);
        }
        let mut events = EpollEvents::new();
        events.wait(ep.as_raw_fd(), None).unwrap();
        assert!(events.is_full());
        assert_eq!(events.iter().count(), CAPACITY);

        let woken = std::cell::Cell::new(0);
        crate::run(async {
            crate::open_nursery(async |nursery| {
                for (a, _) in &pairs {
                    let fd = a.as_raw_fd();
                    let woken = &woken;
                    nursery.start_soon(async move {
                        crate::lowlevel::wait_readable(fd).await?;
                        woken.set(woken.get() + 1);
                        Ok(())
                    });
                }
                Ok(())
            })
            .await
        })
        .unwrap();
        assert_eq!(woken.get(), N);
    }

    #[test]
    fn a_bad_epoll_fd_is_an_error() {
        let mut events = EpollEvents::new();
        assert!(events.wait(-1, Some(Duration::ZERO)).is_err());
        assert_eq!(events.iter().count(), 0);
    }
}
