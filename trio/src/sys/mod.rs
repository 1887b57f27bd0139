//! The platform layer: every piece of OS-specific socket code lives here,
//! behind `cfg`s, the way mio keeps `sys/`, so that another OS (macOS and
//! the BSDs, whose kqueue mio already drives) means adding a branch here,
//! not editing [`socket`](crate::socket).
//!
//! - [`set_notsent_lowat`]: `TCP_NOTSENT_LOWAT` on Linux and Android, a
//!   no-op elsewhere (macOS has the option too, but socket2 does not expose
//!   it there yet).
//! - [`set_bind_address_no_port`]: `IP_BIND_ADDRESS_NO_PORT` on Linux,
//!   for a local address given to `open_tcp_stream`; a no-op elsewhere.
//! - [`accept_error_is_transient`]: Trio's list of `accept` errors that
//!   mean "that connection died before we took it", which differ by OS.
//! - [`as_uninit`]: a buffer cast for socket2's `MaybeUninit` receive calls.
//! - [`process`]: pidfds, `kill`, a non-reaping `waitid` and `O_NONBLOCK`
//!   for [`crate::process`].
//! - [`affinity`]: the allowed CPUs and thread pinning, for
//!   [`PerCore`](crate::PerCore).
//! - [`stream_io`]: a stream socket's `recv` and `send` as direct system
//!   calls on Linux (x86_64, aarch64): libc's are cancellation points,
//!   whose bookkeeping costs a multi-threaded process two atomics per call.
//!
//! With the waker module, this is the only place with `unsafe`: the buffer
//! cast, one `setsockopt` socket2 does not expose, the fd-passing code,
//! the process calls, the affinity calls and the stream `recv`/`send`,
//! each block with its `SAFETY` comment.

pub(crate) mod affinity;
pub(crate) mod epoll_wait;
pub(crate) mod process;
pub(crate) mod reactor_wake;
pub(crate) mod stream_io;

use std::io;
use std::mem::MaybeUninit;

/// Sets `TCP_NOTSENT_LOWAT` where the OS has it (see the module docs).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_notsent_lowat(socket: &socket2::Socket, bytes: u32) -> io::Result<()> {
    socket.set_tcp_notsent_lowat(bytes)
}

/// Sets `TCP_NOTSENT_LOWAT` where the OS has it (see the module docs).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_notsent_lowat(_socket: &socket2::Socket, _bytes: u32) -> io::Result<()> {
    Ok(())
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` where the OS has it (Linux): a socket
/// bound to a local address with port 0 before `connect` then gets its port
/// at connect time, so the same port can serve connections to different
/// peers (Trio sets it for `open_tcp_stream`'s local address). A no-op
/// elsewhere; callers treat failure as "not available".
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
pub(crate) fn set_bind_address_no_port(socket: &socket2::Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: `setsockopt` reads `optlen` bytes from `optval`, which points
    // to a live `c_int` of exactly that size for the duration of the call;
    // the fd is owned by `socket`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` where the OS has it (see above).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_bind_address_no_port(_socket: &socket2::Socket) -> io::Result<()> {
    Ok(())
}

/// Whether `accept` failed only because the pending connection died before
/// it was accepted (Trio's `_ignorable_accept_errno_names`): the listener
/// then tries again.
pub(crate) fn accept_error_is_transient(e: &io::Error) -> bool {
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    let common = [
        libc::EPERM,
        libc::ECONNABORTED,
        libc::EPROTO,
        libc::ENETDOWN,
        libc::ENOPROTOOPT,
        libc::EHOSTDOWN,
        libc::EHOSTUNREACH,
        libc::EOPNOTSUPP,
        libc::ENETUNREACH,
    ];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let os_specific = [libc::ENONET];
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let os_specific: [i32; 0] = [];
    common.contains(&code) || os_specific.contains(&code)
}

/// Whether a `connect` on a non-blocking socket has started and will finish
/// in the background (`EINPROGRESS`; `EAGAIN` for Unix sockets whose
/// listener's backlog is full is a real failure, as in Trio).
pub(crate) fn connect_in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// Views an initialised buffer as a `MaybeUninit` one, for socket2's receive
/// calls, which only ever write initialised bytes into it.
#[allow(unsafe_code)]
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the slice keeps
    // the same pointer, length and lifetime. Writing uninitialised bytes
    // through the result would make `buf` unsound to read afterwards; the
    // only callers pass it to socket2's `recv`/`recv_from`, which write
    // bytes the kernel copied (initialised) and never de-initialise any.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

/// Ancillary data for fd passing (`SCM_RIGHTS`), encoded and decoded by hand
/// in the Linux `cmsghdr` layout (`cmsg_len` a `size_t`, then level and
/// type as `int`s, data aligned to `size_t`): libc's `CMSG_*` helpers are
/// `unsafe fn`s over raw pointers, while this is plain byte arithmetic.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod fd_passing {
    use std::os::fd::AsRawFd;
    use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

    const WORD: usize = std::mem::size_of::<usize>();
    const HEADER: usize = std::mem::size_of::<libc::cmsghdr>();
    const FD: usize = std::mem::size_of::<RawFd>();

    fn align(n: usize) -> usize {
        n.div_ceil(WORD) * WORD
    }

    /// The control-buffer size for `n` fds (`CMSG_SPACE`).
    pub(crate) fn space(n: usize) -> usize {
        HEADER + align(n * FD)
    }

    /// One `SCM_RIGHTS` message carrying `fds`.
    pub(crate) fn encode(fds: &[BorrowedFd<'_>]) -> Vec<u8> {
        let mut buf = vec![0; space(fds.len())];
        let len = HEADER + fds.len() * FD;
        buf[..WORD].copy_from_slice(&len.to_ne_bytes());
        buf[WORD..WORD + 4].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        buf[WORD + 4..WORD + 8].copy_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
        for (i, fd) in fds.iter().enumerate() {
            let at = HEADER + i * FD;
            buf[at..at + FD].copy_from_slice(&fd.as_raw_fd().to_ne_bytes());
        }
        buf
    }

    /// The fds of every `SCM_RIGHTS` message in `control` (the first
    /// `control.len()` bytes the kernel filled), now owned by the caller.
    pub(crate) fn decode(control: &[u8]) -> Vec<OwnedFd> {
        let mut fds = Vec::new();
        let mut off = 0;
        while off + HEADER <= control.len() {
            let word = |at: usize| usize::from_ne_bytes(control[at..at + WORD].try_into().unwrap());
            let int = |at: usize| i32::from_ne_bytes(control[at..at + 4].try_into().unwrap());
            let len = word(off);
            if len < HEADER || off + len > control.len() {
                break;
            }
            if int(off + WORD) == libc::SOL_SOCKET && int(off + WORD + 4) == libc::SCM_RIGHTS {
                let data = &control[off + HEADER..off + len];
                for chunk in data.chunks_exact(FD) {
                    fds.push(super::own_received_fd(i32::from_ne_bytes(
                        chunk.try_into().unwrap(),
                    )));
                }
            }
            off += align(len);
        }
        fds
    }
}

/// Takes ownership of an fd the kernel just installed in this process
/// through `SCM_RIGHTS`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn own_received_fd(fd: std::os::fd::RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `recvmsg` installed `fd` in our fd table for this message and
    // nothing else refers to it yet; each received fd is taken exactly once
    // (`decode` walks each control message once), so this `OwnedFd` is its
    // only owner and will close it once.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_that_died_before_accept_are_transient_and_others_are_not() {
        let os = io::Error::from_raw_os_error;
        for code in [
            libc::ECONNABORTED,
            libc::EPROTO,
            libc::EPERM,
            libc::ENETDOWN,
        ] {
            assert!(accept_error_is_transient(&os(code)), "{code}");
        }
        // Resource exhaustion is the server's business (back off), and a
        // closed or invalid listener is a real failure.
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::ENOMEM,
            libc::EBADF,
            libc::EINVAL,
        ] {
            assert!(!accept_error_is_transient(&os(code)), "{code}");
        }
        assert!(!accept_error_is_transient(&io::Error::other("no errno")));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn bind_address_no_port_defers_the_port_to_connect() {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        set_bind_address_no_port(&s).unwrap();
        s.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        let port = s.local_addr().unwrap().as_socket().unwrap().port();
        assert_eq!(port, 0, "the bind chose a port: the option is not set");
    }
}
