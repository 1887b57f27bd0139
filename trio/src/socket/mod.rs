//! Sockets: a thin async layer over [socket2] (Trio's `trio.socket`), and
//! the byte streams built on it, [`SocketStream`] and [`SocketListener`].
//!
//! [`Socket`] is any socket2 socket — TCP, UDP, Unix stream or datagram —
//! made non-blocking, with async versions of the calls that can block
//! (`connect`, `accept`, `send`, `recv`, `send_to`, `recv_from`). Everything
//! else, every socket option included, is on the socket2 socket
//! ([`Socket::as_socket2`]). Sockets convert to and from std types, socket2
//! sockets and owned fds.
//!
//! # How an operation runs (DESIGN §6, §9)
//!
//! 1. [`checkpoint_if_cancelled`] — a
//!    cancelled operation has done nothing;
//! 2. the syscall — unless the reactor *knows* it would fail: the socket is
//!    registered and no readiness edge came since its last `WouldBlock` (or
//!    drained stream read, or short stream write). Then the task parks for
//!    the edge first (4). A socket not known to be blocked is always tried,
//!    so data already queued costs one `recv` and nothing else, and an
//!    echo costs one `recv` and one `send` per message;
//! 3. on success, [`cancel_shielded_checkpoint`]
//!    (a schedule point that cannot turn a done operation into `Cancelled`);
//! 4. only on `WouldBlock`: the cached readiness is cleared and the task
//!    parks in the reactor until the socket is ready (a cancel point: a
//!    cancelled wait did nothing), then goes back to 2.
//!
//! The poll methods ([`Socket::poll_recv`] and its kin,
//! [`SocketStream::poll_receive`], [`SocketStream::poll_send`]) are steps 2
//! and 4 for poll-based code: the syscall, else the waker registered in
//! the reactor (a *poll waiter*), and no cancel check or schedule point,
//! which the caller (`trio_compat::Io`) provides.
//!
//! A socket registers with the reactor on its first wait, once, for both
//! directions, edge-triggered (see the reactor's docs in `core/io.rs`):
//! there is no `epoll_ctl` per operation. [`lowlevel::wait_readable`] on a
//! registered socket's fd shares that registration.
//!
//! # Cancellation
//!
//! A cancelled `recv`, `recv_from`, `accept` or readiness wait had no
//! effect. Datagrams are all-or-nothing: a cancelled `send_to` sent
//! nothing, a cancelled `recv_from` took nothing. [`Socket::connect`] takes
//! the socket by value and, like Trio's, closes it if cancelled (a
//! half-made connection cannot be resumed).
//!
//! # Moving between runs
//!
//! Sockets are `Send` and `Sync`. A socket used in a second run moves its
//! registration there on first use; [`Socket::into_socket2`] and
//! [`IntoRawFd`] deregister it. (Until then a socket keeps the first run's
//! epoll handle alive: one fd.)
//!
//! [`lowlevel::wait_readable`]: crate::lowlevel::wait_readable
//!
//! ```
//! use trio::socket::Socket;
//! use socket2::{Domain, Type};
//!
//! trio::run(async {
//!     let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM, None)?;
//!     a.send(b"ping").await?;
//!     let mut buf = [0; 16];
//!     let n = b.recv(&mut buf).await?;
//!     assert_eq!(&buf[..n], b"ping");
//!     Ok(())
//! })
//! .unwrap();
//! ```

use crate::core::io::{Direction, IoRegistration};
use crate::error::{Error, Result};
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled, sys};
pub use socket2::{Domain, Protocol, SockAddr, Type};
use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::panic::Location;
use std::task::{Context, Poll};

mod stream;

pub use stream::{SocketListener, SocketStream};

/// A non-blocking socket with async operations (see the [module docs](self)).
///
/// `#[must_use]` futures; every async method is a checkpoint.
pub struct Socket {
    // Declared first so that it deregisters before `inner` closes the fd.
    reg: RegistrationGuard,
    inner: socket2::Socket,
}

/// `accept` for a non-blocking listener: the new socket comes back
/// non-blocking and close-on-exec. Where the OS has `accept4` that is one
/// system call (`SOCK_NONBLOCK | SOCK_CLOEXEC`); elsewhere socket2's
/// `accept` (close-on-exec) and then `set_nonblocking`. Saves the two
/// `fcntl` calls per connection that `accept` + [`Socket::from_socket2`]
/// cost (strace on the TLS benchmark's server).
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "fuchsia",
))]
pub(crate) fn accept_nonblocking(
    listener: &socket2::Socket,
) -> io::Result<(socket2::Socket, SockAddr)> {
    listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
}

/// `accept` for a non-blocking listener (see the `accept4` form above).
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "fuchsia",
)))]
pub(crate) fn accept_nonblocking(
    listener: &socket2::Socket,
) -> io::Result<(socket2::Socket, SockAddr)> {
    let (s, addr) = listener.accept()?;
    s.set_nonblocking(true)?;
    Ok((s, addr))
}

/// Deregisters on drop; separate from [`Socket`] so that the socket itself
/// has no `Drop` and `into_socket2` can move `inner` out.
#[derive(Debug)]
struct RegistrationGuard {
    fd: RawFd,
    reg: IoRegistration,
}

impl Drop for RegistrationGuard {
    fn drop(&mut self) {
        self.reg.deregister(self.fd);
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("fd", &self.reg.fd)
            .field("local_addr", &self.inner.local_addr().ok().map(DebugAddr))
            .field("registration", &self.reg.reg)
            .finish()
    }
}

struct DebugAddr(SockAddr);

impl fmt::Debug for DebugAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.as_socket(), self.0.as_unix()) {
            (Some(a), _) => write!(f, "{a}"),
            (None, Some(u)) => write!(f, "{u:?}"),
            _ => write!(f, "{:?}", self.0),
        }
    }
}

impl Socket {
    /// A new socket (socket2's `Socket::new`: close-on-exec), made
    /// non-blocking.
    pub fn new(domain: Domain, ty: Type, protocol: Option<Protocol>) -> Result<Socket> {
        Socket::from_socket2(socket2::Socket::new(domain, ty, protocol)?)
    }

    /// A connected pair (`socketpair(2)`), e.g. of Unix stream or datagram
    /// sockets.
    pub fn pair(domain: Domain, ty: Type, protocol: Option<Protocol>) -> Result<(Socket, Socket)> {
        let (a, b) = socket2::Socket::pair(domain, ty, protocol)?;
        Ok((Socket::from_socket2(a)?, Socket::from_socket2(b)?))
    }

    /// Wraps a socket2 socket, making it non-blocking.
    pub fn from_socket2(inner: socket2::Socket) -> Result<Socket> {
        inner.set_nonblocking(true)?;
        Ok(Socket::from_nonblocking(inner))
    }

    /// Wraps a socket2 socket that is already non-blocking (made so by
    /// [`accept_nonblocking`]): no `fcntl` calls.
    pub(crate) fn from_nonblocking(inner: socket2::Socket) -> Socket {
        Socket {
            reg: RegistrationGuard {
                fd: inner.as_raw_fd(),
                reg: IoRegistration::default(),
            },
            inner,
        }
    }

    /// The socket2 socket, for every option and call not wrapped here.
    /// Blocking calls on it return `WouldBlock` (the socket is
    /// non-blocking); use the async methods for those.
    pub fn as_socket2(&self) -> &socket2::Socket {
        &self.inner
    }

    /// Leaves the reactor and returns the socket2 socket (still
    /// non-blocking).
    pub fn into_socket2(self) -> socket2::Socket {
        let Socket { reg, inner } = self;
        drop(reg); // deregisters
        inner
    }

    /// The local address.
    pub fn local_addr(&self) -> Result<SockAddr> {
        Ok(self.inner.local_addr()?)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SockAddr> {
        Ok(self.inner.peer_addr()?)
    }

    /// `bind(2)`. Not async: it never blocks.
    pub fn bind(&self, addr: &SockAddr) -> Result<()> {
        Ok(self.inner.bind(addr)?)
    }

    /// `listen(2)`.
    pub fn listen(&self, backlog: i32) -> Result<()> {
        Ok(self.inner.listen(backlog)?)
    }

    /// `shutdown(2)`.
    pub fn shutdown(&self, how: std::net::Shutdown) -> Result<()> {
        Ok(self.inner.shutdown(how)?)
    }

    /// Connects, and returns the connected socket. Takes the socket by
    /// value: if the connect is cancelled or fails, the socket is closed
    /// (as in Trio, where a cancelled `connect` closes the socket).
    #[track_caller]
    pub fn connect(self, addr: &SockAddr) -> impl Future<Output = Result<Socket>> {
        let location = Location::caller();
        let addr = addr.clone();
        async move {
            checkpoint_if_cancelled().await?;
            match self.inner.connect(&addr) {
                Ok(()) => {
                    cancel_shielded_checkpoint().await?;
                    return Ok(self);
                }
                Err(e) if sys::connect_in_progress(&e) => {}
                Err(e) => return Err(e.into()),
            }
            // Cancelled here: `self` is dropped, which closes it.
            self.reg
                .reg
                .wait(
                    self.reg.fd,
                    Direction::Write,
                    false,
                    "Socket::connect",
                    location,
                )
                .await?;
            match self.inner.take_error()? {
                Some(e) => Err(e.into()),
                None => Ok(self),
            }
        }
    }

    /// Accepts a connection: the new socket (non-blocking) and its peer's
    /// address. A cancelled accept took no connection.
    #[track_caller]
    pub fn accept(&self) -> impl Future<Output = Result<(Socket, SockAddr)>> {
        let location = Location::caller();
        async move {
            let (s, addr) = self
                .io(
                    Direction::Read,
                    "Socket::accept",
                    location,
                    &|| false,
                    accept_nonblocking,
                )
                .await?;
            Ok((Socket::from_nonblocking(s), addr))
        }
    }

    /// Sends some of `buf` (all of it, for a datagram); the number of bytes
    /// sent. A cancelled send sent nothing.
    #[track_caller]
    pub fn send<'a>(&'a self, buf: &'a [u8]) -> impl Future<Output = Result<usize>> + 'a {
        self.io(
            Direction::Write,
            "Socket::send",
            Location::caller(),
            &|| false,
            move |s| s.send(buf),
        )
    }

    /// Receives into `buf`; the number of bytes (0: end of stream, or an
    /// empty datagram). A cancelled receive took nothing.
    #[track_caller]
    pub fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = Result<usize>> + 'a {
        self.io(
            Direction::Read,
            "Socket::recv",
            Location::caller(),
            &|| false,
            move |mut s| s.read(buf),
        )
    }

    /// Sends a datagram to `addr`: all of it or, if cancelled, none.
    #[track_caller]
    pub fn send_to<'a>(
        &'a self,
        buf: &'a [u8],
        addr: &'a SockAddr,
    ) -> impl Future<Output = Result<usize>> + 'a {
        self.io(
            Direction::Write,
            "Socket::send_to",
            Location::caller(),
            &|| false,
            move |s| s.send_to(buf, addr),
        )
    }

    /// Receives a datagram: its length (truncated to `buf`) and sender.
    /// A cancelled receive took nothing.
    #[track_caller]
    pub fn recv_from<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = Result<(usize, SockAddr)>> + 'a {
        self.io(
            Direction::Read,
            "Socket::recv_from",
            Location::caller(),
            &|| false,
            move |s| s.recv_from(sys::as_uninit(buf)),
        )
    }

    /// Sends `data` with `fds` attached (`sendmsg` with `SCM_RIGHTS`, on a
    /// Unix socket); the number of bytes sent. The fds are duplicated into
    /// the receiver; yours stay open. Cancelled: nothing was sent.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[cfg_attr(docsrs, doc(cfg(any(target_os = "linux", target_os = "android"))))]
    #[track_caller]
    pub fn send_with_fds<'a>(
        &'a self,
        data: &'a [u8],
        fds: &'a [BorrowedFd<'a>],
    ) -> impl Future<Output = Result<usize>> + 'a {
        let location = Location::caller();
        async move {
            let control = sys::fd_passing::encode(fds);
            let bufs = [io::IoSlice::new(data)];
            self.io(
                Direction::Write,
                "Socket::send_with_fds",
                location,
                &|| false,
                |s| {
                    let mut msg = socket2::MsgHdr::new().with_buffers(&bufs);
                    if !fds.is_empty() {
                        msg = msg.with_control(&control);
                    }
                    s.sendmsg(&msg, 0)
                },
            )
            .await
        }
    }

    /// Receives into `buf` with up to `max_fds` passed fds (`recvmsg`,
    /// close-on-exec): the number of bytes and the fds, now yours. Fds
    /// beyond `max_fds` are discarded by the kernel. Cancelled: nothing
    /// was received, and no fd was taken.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[cfg_attr(docsrs, doc(cfg(any(target_os = "linux", target_os = "android"))))]
    #[track_caller]
    pub fn recv_with_fds<'a>(
        &'a self,
        buf: &'a mut [u8],
        max_fds: usize,
    ) -> impl Future<Output = Result<(usize, Vec<OwnedFd>)>> + 'a {
        let location = Location::caller();
        async move {
            let mut control = vec![0u8; sys::fd_passing::space(max_fds.max(1))];
            let (n, control_len) = self
                .io(
                    Direction::Read,
                    "Socket::recv_with_fds",
                    location,
                    &|| false,
                    |s| {
                        let mut bufs = [socket2::MaybeUninitSlice::new(sys::as_uninit(buf))];
                        let mut msg = socket2::MsgHdrMut::new()
                            .with_buffers(&mut bufs)
                            .with_control(sys::as_uninit(&mut control));
                        let n = s.recvmsg(&mut msg, libc::MSG_CMSG_CLOEXEC)?;
                        Ok((n, msg.control_len()))
                    },
                )
                .await?;
            Ok((n, sys::fd_passing::decode(&control[..control_len])))
        }
    }

    // ----- poll methods -------------------------------------------------------

    /// [`recv`](Self::recv) without a future, for poll-based code: the
    /// syscall, else `Pending` with `cx`'s waker registered in the reactor
    /// (woken at the next readiness edge). Not a checkpoint (no cancel
    /// check, no schedule point: the caller's), one waker per direction
    /// (the last poller's), `Busy` while an async receive waits; the rules
    /// of [`SocketStream::poll_receive`].
    ///
    /// ```
    /// use socket2::{Domain, Type};
    /// use std::future::poll_fn;
    /// use trio::socket::Socket;
    ///
    /// trio::run(async {
    ///     let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM, None)?;
    ///     poll_fn(|cx| a.poll_send(cx, b"ping")).await?;
    ///     let mut buf = [0; 16];
    ///     let n = poll_fn(|cx| b.poll_recv(cx, &mut buf)).await?;
    ///     assert_eq!(&buf[..n], b"ping");
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    #[track_caller]
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize>> {
        self.poll_io(
            cx,
            Direction::Read,
            "Socket::poll_recv",
            Location::caller(),
            move |mut s| s.read(buf),
        )
    }

    /// [`send`](Self::send) without a future (see
    /// [`poll_recv`](Self::poll_recv)).
    #[track_caller]
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize>> {
        self.poll_io(
            cx,
            Direction::Write,
            "Socket::poll_send",
            Location::caller(),
            |s| s.send(buf),
        )
    }

    /// [`recv_from`](Self::recv_from) without a future (see
    /// [`poll_recv`](Self::poll_recv)).
    #[track_caller]
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<(usize, SockAddr)>> {
        self.poll_io(
            cx,
            Direction::Read,
            "Socket::poll_recv_from",
            Location::caller(),
            |s| s.recv_from(sys::as_uninit(buf)),
        )
    }

    /// [`send_to`](Self::send_to) without a future (see
    /// [`poll_recv`](Self::poll_recv)).
    #[track_caller]
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        addr: &SockAddr,
    ) -> Poll<Result<usize>> {
        self.poll_io(
            cx,
            Direction::Write,
            "Socket::poll_send_to",
            Location::caller(),
            |s| s.send_to(buf, addr),
        )
    }

    /// [`accept`](Self::accept) without a future (see
    /// [`poll_recv`](Self::poll_recv)).
    #[track_caller]
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<(Socket, SockAddr)>> {
        let polled = self.poll_io(
            cx,
            Direction::Read,
            "Socket::poll_accept",
            Location::caller(),
            accept_nonblocking,
        );
        polled.map(|r| r.map(|(s, addr)| (Socket::from_nonblocking(s), addr)))
    }

    /// Waits until the socket is readable (a checkpoint). Prefer the
    /// operations, which try first and wait only if needed.
    #[track_caller]
    pub fn wait_readable(&self) -> impl Future<Output = Result<()>> + '_ {
        self.wait_ready(
            Direction::Read,
            "Socket::wait_readable",
            Location::caller(),
            &|| false,
        )
    }

    /// Waits until the socket is writable (a checkpoint).
    #[track_caller]
    pub fn wait_writable(&self) -> impl Future<Output = Result<()>> + '_ {
        self.wait_ready(
            Direction::Write,
            "Socket::wait_writable",
            Location::caller(),
            &|| false,
        )
    }

    /// A readiness wait, not preceded by a syscall: it cannot trust the
    /// cache (the user may have used the fd directly), so it re-arms.
    pub(crate) async fn wait_ready(
        &self,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        closed: &dyn Fn() -> bool,
    ) -> Result<()> {
        checkpoint_if_cancelled().await?;
        self.reg
            .reg
            .wait(self.reg.fd, dir, true, label, location)
            .await?;
        if closed() {
            return Err(stream::closed());
        }
        Ok(())
    }

    /// One operation in the order of the module docs. `closed` is asked
    /// after each wait: a stream closed meanwhile must not touch the fd.
    pub(crate) async fn io<T>(
        &self,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        closed: &dyn Fn() -> bool,
        mut op: impl FnMut(&socket2::Socket) -> io::Result<T>,
    ) -> Result<T> {
        self.io_op(dir, label, location, closed, move |s| {
            op(s).map(|v| (v, false))
        })
        .await
    }

    /// [`io`](Self::io) for an `op` that also says whether it drained the
    /// direction (a short stream read or write): the cached readiness is
    /// then cleared in the same step (see `IoRegistration::io_op`).
    pub(crate) fn io_op<'a, T: 'a>(
        &'a self,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        closed: &'a dyn Fn() -> bool,
        op: impl FnMut(&socket2::Socket) -> io::Result<(T, bool)> + 'a,
    ) -> impl Future<Output = Result<T>> + 'a {
        self.io_op_then(dir, label, location, closed, true, op)
    }

    /// [`io_op`](Self::io_op), taking its trailing schedule point only if
    /// `schedule_point` (without it: `IoOp::unscheduled`, for the
    /// `*_unscheduled` stream operations).
    #[inline]
    pub(crate) fn io_op_then<'a, T: 'a>(
        &'a self,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        closed: &'a dyn Fn() -> bool,
        schedule_point: bool,
        mut op: impl FnMut(&socket2::Socket) -> io::Result<(T, bool)> + 'a,
    ) -> impl Future<Output = Result<T>> + 'a {
        let op = self.reg.reg.io_op(
            self.reg.fd,
            dir,
            label,
            location,
            closed,
            stream::closed,
            move || op(&self.inner),
        );
        if schedule_point { op } else { op.unscheduled() }
    }

    /// One operation for a poll method (see the module docs): the
    /// syscall, else the waker registered.
    fn poll_io<T>(
        &self,
        cx: &Context<'_>,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        mut op: impl FnMut(&socket2::Socket) -> io::Result<T>,
    ) -> Poll<Result<T>> {
        self.reg
            .reg
            .poll_io(cx, self.reg.fd, dir, label, location, || op(&self.inner))
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.reg.fd
    }

    pub(crate) fn registration(&self) -> &IoRegistration {
        &self.reg.reg
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.reg.fd
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

/// Deregisters; the fd is the caller's to close.
impl IntoRawFd for Socket {
    fn into_raw_fd(self) -> RawFd {
        self.into_socket2().into_raw_fd()
    }
}

/// Deregisters; the caller owns the fd.
impl From<Socket> for OwnedFd {
    fn from(s: Socket) -> OwnedFd {
        s.into_socket2().into()
    }
}

impl From<Socket> for socket2::Socket {
    fn from(s: Socket) -> socket2::Socket {
        s.into_socket2()
    }
}

macro_rules! from_std {
    ($($t:ty),*) => {$(
        /// Wraps it, making it non-blocking.
        impl TryFrom<$t> for Socket {
            type Error = Error;
            fn try_from(s: $t) -> Result<Socket> {
                Socket::from_socket2(socket2::Socket::from(s))
            }
        }
    )*};
}

from_std!(
    OwnedFd,
    socket2::Socket,
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener,
    std::os::unix::net::UnixDatagram
);

macro_rules! into_std {
    ($($t:ty),*) => {$(
        /// Deregisters and converts (the std socket stays non-blocking).
        impl From<Socket> for $t {
            fn from(s: Socket) -> $t {
                s.into_socket2().into()
            }
        }
    )*};
}

into_std!(
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixListener,
    std::os::unix::net::UnixDatagram
);

/// A bound UDP socket on `addr` (a literal address; port 0 picks one).
pub fn udp_bind(addr: SocketAddr) -> Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.bind(&addr.into())?;
    Ok(s)
}
