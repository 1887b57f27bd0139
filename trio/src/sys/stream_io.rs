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
//! address, `MSG_NOSIGNAL` on send, as socket2 passes), so `strace` and
//! the kernel see no difference.
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
#[allow(unsafe_code)]
#[inline]
pub(crate) fn recv(socket: &socket2::Socket, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd() as libc::c_long;
    // SAFETY: `recvfrom(fd, buf, len, 0, NULL, NULL)` writes at most
    // `buf.len()` bytes into `buf`, which is valid and exclusively
    // borrowed for the call, and nothing else (the address pointers are
    // null, so no address is written). Every argument is passed as a
    // `c_long`, the type `syscall(2)` reads each one as.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf.as_mut_ptr() as libc::c_long,
            buf.len() as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `send(fd, data, MSG_NOSIGNAL)` on a connected stream socket: the
/// number of bytes sent, or the OS error (`WouldBlock` included; `EPIPE`,
/// not `SIGPIPE`, once the peer has gone).
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[allow(unsafe_code)]
#[inline]
pub(crate) fn send(socket: &socket2::Socket, data: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd() as libc::c_long;
    // SAFETY: `sendto(fd, data, len, MSG_NOSIGNAL, NULL, 0)` only reads
    // `data.len()` bytes from `data`, which is valid for the call; with a
    // null address it sends on the connected socket. Every argument is a
    // `c_long`, as `syscall(2)` reads them.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            data.as_ptr() as libc::c_long,
            data.len() as libc::c_long,
            libc::MSG_NOSIGNAL as libc::c_long,
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

/// `send` through socket2 (see the module docs).
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
#[inline]
pub(crate) fn send(socket: &socket2::Socket, data: &[u8]) -> io::Result<usize> {
    socket.send(data)
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
    fn end_of_stream_reads_zero_and_a_send_to_a_closed_peer_is_epipe_not_sigpipe() {
        let (a, b) = pair();
        drop(a);
        let mut buf = [0; 4];
        assert_eq!(super::recv(&b, &mut buf).unwrap(), 0);
        // MSG_NOSIGNAL: an error, and the test process is still alive.
        let e = super::send(&b, b"x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    }
}
