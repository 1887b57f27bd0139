//! A stream socket's `recv` and `send` as direct system calls, for the
//! hot path of [`SocketStream`](crate::socket::SocketStream) (one
//! `recvfrom` and one `sendto` per echoed message).
//!
//! Why not libc's `recv`/`send` (which socket2 and std call): they are
//! POSIX cancellation points, so once a process has a second thread
//! (every `PerCore` server, any process with a worker thread) glibc wraps
//! each call in `__pthread_enable_asynccancel` /
//! `__pthread_disable_asynccancel`, two atomic read-modify-writes on the
//! thread's cancel state: about 90 of the ~1 950 user-space instructions
//! per echoed message of a per-core server (callgrind, `echo
//! --multicore --instructions`). Nothing in Rust uses `pthread_cancel`,
//! so that bookkeeping buys nothing here. `syscall(2)` is no cancellation
//! point: it enters the kernel with the same arguments and nothing else.
//! The system calls are the same ones (`recvfrom` and `sendto` with no
//! address), so `strace` and the kernel see no difference, except that a
//! send passes `MSG_NOSIGNAL`: a peer that has gone gives `EPIPE`, never a
//! `SIGPIPE` (Rust programs ignore `SIGPIPE` by default, but a program
//! embedding us may not).
//!
//! Elsewhere (other OSes, and Linux on other architectures, where the
//! two calls may go through `socketcall`) the functions call socket2, as
//! before.

use std::io;

/// `recv(fd, buf, 0)` on a connected stream socket: the number of bytes
/// read (0 at the end of stream), or the OS error (`WouldBlock`
/// included).
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[inline]
pub(crate) fn recv(socket: &socket2::Socket, buf: &mut [u8]) -> io::Result<usize> {
    // `recvfrom` writes at most `buf.len()` bytes into `buf`, which is
    // exclusively borrowed for the call.
    transfer(socket, libc::SYS_recvfrom, buf.as_mut_ptr(), buf.len(), 0)
}

/// `send(fd, data, MSG_NOSIGNAL)` on a connected stream socket: the
/// number of bytes sent, or the OS error (`WouldBlock` included; `EPIPE`,
/// not `SIGPIPE`, once the peer has gone).
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[inline]
pub(crate) fn send(socket: &socket2::Socket, data: &[u8]) -> io::Result<usize> {
    // `sendto` only reads from `data` (the pointer is cast to `*mut` for
    // the shared call, never written through).
    transfer(
        socket,
        libc::SYS_sendto,
        data.as_ptr().cast_mut(),
        data.len(),
        libc::MSG_NOSIGNAL,
    )
}

/// `recvfrom` or `sendto` (`nr`) on `socket` with `len` bytes at `ptr`,
/// `flags`, and no address: the byte count or the OS error.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[allow(unsafe_code)]
#[inline(always)]
fn transfer(
    socket: &socket2::Socket,
    nr: libc::c_long,
    ptr: *mut u8,
    len: usize,
    flags: libc::c_int,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `nr` is `SYS_recvfrom` or `SYS_sendto` (the two callers
    // above), whose arguments are (fd, buf, len, flags, addr, addrlen).
    // The fd stays open for the call: `socket` is borrowed. `ptr` and
    // `len` come from a slice the caller borrows for the call (mutably
    // for `recvfrom`, which writes at most `len` bytes; `sendto` only
    // reads them). The address arguments are null, so the kernel writes
    // or reads no address. Every argument is passed as a `c_long`, the
    // type `syscall(2)` reads each one as.
    let n = unsafe {
        libc::syscall(
            nr,
            socket.as_raw_fd() as libc::c_long,
            ptr as libc::c_long,
            len as libc::c_long,
            flags as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `recv` through socket2 (see the module docs).
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
#[inline]
pub(crate) fn recv(socket: &socket2::Socket, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    let mut s = socket;
    s.read(buf)
}

/// `send` through socket2 (see the module docs), with `MSG_NOSIGNAL` on
/// Linux.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
#[inline]
pub(crate) fn send(socket: &socket2::Socket, data: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    return socket.send_with_flags(data, libc::MSG_NOSIGNAL);
    #[cfg(not(target_os = "linux"))]
    return socket.send(data);
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    fn pair() -> (socket2::Socket, socket2::Socket) {
        let (a, b) = socket2::Socket::pair(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .expect("socketpair");
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn send_then_recv_moves_the_bytes_and_an_empty_queue_would_block() {
        let (a, b) = pair();
        assert_eq!(super::send(&a, b"hello").unwrap(), 5);
        let mut buf = [0; 16];
        assert_eq!(super::recv(&b, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        let e = super::recv(&b, &mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
    }

    #[test]
    fn end_of_stream_reads_zero_and_a_send_to_a_closed_peer_is_epipe() {
        let (a, b) = pair();
        drop(a);
        let mut buf = [0; 4];
        assert_eq!(super::recv(&b, &mut buf).unwrap(), 0);
        let e = super::send(&b, b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    }

    /// Whether `f` raised a `SIGPIPE` in this thread. Rust programs (the
    /// test harness too) start with `SIGPIPE` ignored, so a surviving
    /// process proves nothing; a blocked signal stays pending on Linux even
    /// while ignored, so block it, run `f`, and look at the pending set.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn raises_sigpipe(f: impl FnOnce()) -> bool {
        // SAFETY: plain libc signal-mask calls on local, initialised
        // `sigset_t`s; the thread's mask is restored before returning, and
        // a pending SIGPIPE is consumed (`sigtimedwait`, zero timeout) so
        // it cannot fire later.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            f();
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            let raised = libc::sigismember(&pending, libc::SIGPIPE) == 1;
            if raised {
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            raised
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_send_to_a_closed_peer_raises_no_sigpipe() {
        // The check itself works: a send without MSG_NOSIGNAL raises one.
        let (a, b) = pair();
        drop(a);
        let plain = raises_sigpipe(|| {
            use std::io::Write;
            let mut s = &b;
            assert!(s.write(b"x").is_err());
        });
        assert!(plain, "socket2's plain send raises SIGPIPE (blocked here)");
        assert!(!raises_sigpipe(|| assert!(super::send(&b, b"x").is_err())));
    }
}
