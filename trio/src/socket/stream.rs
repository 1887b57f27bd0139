//! [`SocketStream`] and [`SocketListener`]: the `trio::stream` traits over
//! stream sockets (TCP and Unix).
//!
//! # Invariants
//!
//! - `socket` is `None` once this side has closed: every later operation
//!   fails with Closed. Operations in flight hold their own `Arc` of the
//!   socket, so the fd stays open until they have returned; closing
//!   deregisters first, which wakes their waits with Closed, and an
//!   operation woken for readiness at the same moment sees `socket` gone
//!   after its wait and returns Closed without touching the fd.
//! - `broken[d]` holds the first transport error of direction `d` (send
//!   or receive); every later operation in that direction reports it, as
//!   Broken (sticky Broken, DESIGN §9). The directions are kept apart, as
//!   the kernel keeps them: a send failing with EPIPE after the peer
//!   closed does not hide the data the peer sent before closing, which a
//!   receive still returns (as in Trio and tokio). A connection reset is
//!   seen by both directions anyway, through their own syscalls.

use super::{Domain, SockAddr, Socket, Type};
use crate::core::io::Direction;
use crate::error::{Error, ErrorKind, Result};
use crate::stream::{
    AsyncResource, BusySlot, Listener, ReceiveStream, SendStream, Stream, empty_buffer,
};
use crate::{checkpoint, checkpoint_if_cancelled, sys};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::panic::Location;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// `TCP_NOTSENT_LOWAT` for TCP socket streams: 16 KiB, Trio's choice
/// (`SocketStream.__init__`), so that `wait_send_all_might_not_block`
/// means "the kernel is nearly out of unsent data", not "the whole send
/// buffer is free".
const NOTSENT_LOWAT: u32 = 16 * 1024;

pub(crate) fn closed() -> Error {
    Error::new(ErrorKind::Closed, "this stream was closed")
}

/// Indexes of [`SocketStream`]'s per-direction `broken` state.
const SEND: usize = 0;
const RECEIVE: usize = 1;

fn broken(e: &io::Error) -> Error {
    Error::with_kind(ErrorKind::Broken, io::Error::new(e.kind(), e.to_string()))
}

/// A byte stream over a connected stream socket (TCP or Unix), implementing
/// [`Stream`] (Trio's `SocketStream`).
///
/// TCP streams get `TCP_NODELAY` and, where the OS has it,
/// `TCP_NOTSENT_LOWAT` of 16 KiB. [`send_eof`](Stream::send_eof) is
/// `shutdown(SHUT_WR)`. [`set_abortive_close`](Self::set_abortive_close)
/// makes the close send a reset (`SO_LINGER` 0).
///
/// ```
/// use trio::socket::{SocketListener, SocketStream};
/// use trio::stream::{Listener, ReceiveStream, SendStream};
///
/// trio::run(async {
///     let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
///     let addr = listener.local_addr()?.as_socket().unwrap();
///     let client = SocketStream::connect_tcp(addr).await?;
///     let server = listener.accept().await?;
///     client.send_all(b"hi").await?;
///     let mut buf = [0; 2];
///     assert_eq!(server.receive_some(&mut buf).await?, 2);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct SocketStream {
    socket: RefCell<Option<Arc<Socket>>>,
    send_slot: BusySlot,
    receive_slot: BusySlot,
    /// The first transport error of each direction: `[send, receive]`.
    broken: [RefCell<Option<(io::ErrorKind, String)>>; 2],
    did_shutdown_write: Cell<bool>,
}

impl fmt::Debug for SocketStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketStream")
            .field("socket", &self.socket.borrow())
            .field("send_broken", &self.broken[SEND].borrow())
            .field("receive_broken", &self.broken[RECEIVE].borrow())
            .field("did_shutdown_write", &self.did_shutdown_write.get())
            .finish()
    }
}

impl SocketStream {
    /// Wraps a connected stream socket; sets the TCP options above on a
    /// TCP socket. Other socket types are InvalidArgument.
    pub fn new(socket: Socket) -> Result<SocketStream> {
        let s = socket.as_socket2();
        if s.r#type()? != Type::STREAM {
            return Err(Error::invalid("SocketStream needs a stream socket"));
        }
        let tcp = s.local_addr()?.as_socket().is_some();
        SocketStream::from_checked(socket, tcp)
    }

    /// [`new`](Self::new) for a socket known to be a stream socket, TCP or
    /// not (an accepted connection: its listener said so once), without
    /// the `getsockopt(SO_TYPE)` and `getsockname` calls that find it out.
    fn from_checked(socket: Socket, tcp: bool) -> Result<SocketStream> {
        if tcp {
            let s = socket.as_socket2();
            // Best effort, as in Trio: on some systems (macOS, the BSDs) the
            // option fails on a connection reset before it was accepted,
            // and that must not fail an accept loop; the stream works
            // without it.
            let _ = s.set_tcp_nodelay(true);
            // Best effort: an OS without it streams fine.
            let _ = sys::set_notsent_lowat(s, NOTSENT_LOWAT);
        }
        Ok(SocketStream {
            socket: RefCell::new(Some(Arc::new(socket))),
            send_slot: BusySlot::new("another task is already sending on this stream"),
            receive_slot: BusySlot::new("another task is already receiving on this stream"),
            broken: [RefCell::new(None), RefCell::new(None)],
            did_shutdown_write: Cell::new(false),
        })
    }

    /// Connects to a TCP address (a literal one: no name resolution).
    pub async fn connect_tcp(addr: SocketAddr) -> Result<SocketStream> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        SocketStream::new(s.connect(&addr.into()).await?)
    }

    /// Connects to a Unix socket at `path` (Trio's `open_unix_socket`).
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<SocketStream> {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        SocketStream::new(s.connect(&SockAddr::unix(path)?).await?)
    }

    /// A connected pair of Unix stream sockets.
    pub fn unix_pair() -> Result<(SocketStream, SocketStream)> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
        Ok((SocketStream::new(a)?, SocketStream::new(b)?))
    }

    /// The socket (Closed after [`aclose`](AsyncResource::aclose)), for
    /// options and addresses.
    pub fn socket(&self) -> Result<Arc<Socket>> {
        self.socket.borrow().clone().ok_or_else(closed)
    }

    /// Makes the close abortive: `SO_LINGER` with a zero timeout, so that
    /// closing sends a reset and drops unsent data.
    pub fn set_abortive_close(&self) -> Result<()> {
        Ok(self
            .socket()?
            .as_socket2()
            .set_linger(Some(Duration::ZERO))?)
    }

    fn is_closed(&self) -> bool {
        self.socket.borrow().is_none()
    }

    /// The socket for an operation in direction `dir` ([`SEND`] or
    /// [`RECEIVE`]): Closed, or that direction's sticky Broken, first.
    /// Always inlined: it runs once per operation, and as a call (which
    /// `#[inline]` left it) its prologue and the `Result` passed through
    /// memory cost about as much as its body (callgrind, echo server).
    #[inline(always)]
    fn usable(&self, dir: usize) -> Result<Arc<Socket>> {
        let s = match &*self.socket.borrow() {
            Some(s) => Arc::clone(s),
            None => return Err(closed()),
        };
        if self.broken[dir].borrow().is_some() {
            return Err(self.broken_error(dir));
        }
        Ok(s)
    }

    /// The sticky Broken error of direction `dir` (which has one).
    #[cold]
    fn broken_error(&self, dir: usize) -> Error {
        match &*self.broken[dir].borrow() {
            Some((kind, msg)) => broken(&io::Error::new(*kind, msg.clone())),
            None => closed(),
        }
    }

    /// Records a transport failure of direction `dir` (sticky) and returns
    /// it as Broken; trio errors (Cancelled, Closed) pass through.
    fn fail(&self, dir: usize, e: Error) -> Error {
        let Some(io) = e.source_io() else { return e };
        let io = io::Error::new(io.kind(), io.to_string());
        self.broken[dir]
            .borrow_mut()
            .get_or_insert((io.kind(), io.to_string()));
        broken(&io)
    }

    /// Sends what it can of `data` (at least one byte), cancel-safely: a
    /// cancelled `send_some` sent nothing. Returns the number sent.
    #[track_caller]
    pub fn send_some<'a>(&'a self, data: &'a [u8]) -> impl Future<Output = Result<usize>> + 'a {
        let location = Location::caller();
        async move {
            let _g = self.send_slot.enter()?;
            let s = self.usable(SEND)?;
            if self.did_shutdown_write.get() {
                return Err(Error::new(ErrorKind::Closed, "cannot send after send_eof"));
            }
            // A short write: the send buffer is full (see `send_all`).
            s.io_op(
                Direction::Write,
                "SocketStream::send_some",
                location,
                &|| self.is_closed(),
                |s| sys::stream_io::send(s, data).map(|n| (n, n < data.len())),
            )
            .await
            .map_err(|e| self.fail(SEND, e))
        }
    }

    // ----- poll methods -------------------------------------------------------

    /// Receives into `buf` without a future, for poll-based code (an
    /// `AsyncRead` adapter such as `trio_compat::Io`): `Ready(Ok(n))` with
    /// `n ≥ 1` bytes, or 0 at the end of stream; `Pending` once the socket
    /// has no data, with `cx`'s waker registered in the reactor, which
    /// wakes it at the next readiness edge. No allocation, no future.
    ///
    /// - **Not a checkpoint**: no cancel check and no schedule point. A
    ///   poll method has nowhere to keep a cancel registration, so the
    ///   caller owns cancellation (`trio_compat::Io` checks with a
    ///   [`CancelWaiter`](crate::lowlevel::CancelWaiter) before every
    ///   poll) and its fairness (`Io`'s budget). A poll that returns
    ///   `Pending` did nothing, so it is always safe to stop polling.
    /// - **One waker per direction, the last one wins** (as in tokio): a
    ///   second poller of the same direction replaces the first one's
    ///   waker (unless [`Waker::will_wake`](std::task::Waker::will_wake)
    ///   says it is the same), and the first is not woken. While
    ///   [`receive_some`](ReceiveStream::receive_some) is in flight, a
    ///   poll is [`Busy`](ErrorKind::Busy); a `receive_some` that starts
    ///   while a poller is registered takes its place, and the poller is
    ///   woken to poll again (and gets `Busy`).
    /// - Errors as `receive_some`'s: Closed after this side closed (also
    ///   when closed while registered: the poller is woken), sticky Broken
    ///   per direction, InvalidArgument for an empty `buf`; a
    ///   [`Usage`](ErrorKind::Usage) error outside a run once it would
    ///   have to wait.
    /// - A registered waker stays until the socket is ready or closed (as
    ///   in tokio), even if its poller has gone; until then the run counts
    ///   it as an I/O wait (the deadlock detector treats the socket as a
    ///   possible source of wake-ups, as for any socket wait).
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use trio::socket::SocketStream;
    /// use trio::stream::SendStream;
    ///
    /// trio::run(async {
    ///     let (a, b) = SocketStream::unix_pair()?;
    ///     a.send_all(b"hi").await?;
    ///     let mut buf = [0; 8];
    ///     let n = poll_fn(|cx| b.poll_receive(cx, &mut buf)).await?;
    ///     assert_eq!(&buf[..n], b"hi");
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    #[track_caller]
    pub fn poll_receive(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize>> {
        let location = Location::caller();
        let s = match self
            .receive_slot
            .enter()
            .and_then(|_g| self.usable(RECEIVE))
        {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if buf.is_empty() {
            return Poll::Ready(Err(empty_buffer()));
        }
        // Drained (a short read): the next poll waits for the edge (as
        // `receive_some`).
        let len = buf.len();
        let polled = s.registration().poll_io_op(
            cx,
            s.fd(),
            Direction::Read,
            "SocketStream::poll_receive",
            location,
            || sys::stream_io::recv(s.as_socket2(), buf).map(|n| (n, n < len)),
        );
        match polled {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.fail(RECEIVE, e))),
            other => other,
        }
    }

    /// Sends what it can of `data` without a future, for poll-based code
    /// (an `AsyncWrite` adapter): `Ready(Ok(n))` with `n ≥ 1` bytes sent
    /// (0 only for an empty `data`), or `Pending` while the send buffer is
    /// full, with `cx`'s waker registered. The send-side twin of
    /// [`poll_receive`](Self::poll_receive), with the same rules (not a
    /// checkpoint; one waker, the last one wins; `Busy` against a
    /// `send_all` in flight); Closed after `send_eof` or close, sticky
    /// Broken (e.g. `EPIPE` once the peer has gone).
    #[track_caller]
    pub fn poll_send(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<Result<usize>> {
        let location = Location::caller();
        let s = match self.send_slot.enter().and_then(|_g| self.usable(SEND)) {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if self.did_shutdown_write.get() {
            return Poll::Ready(Err(Error::new(
                ErrorKind::Closed,
                "cannot send after send_eof",
            )));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A short write: the buffer is full; the next poll waits for the
        // edge.
        let polled = s.registration().poll_io_op(
            cx,
            s.fd(),
            Direction::Write,
            "SocketStream::poll_send",
            location,
            || sys::stream_io::send(s.as_socket2(), data).map(|n| (n, n < data.len())),
        );
        match polled {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.fail(SEND, e))),
            other => other,
        }
    }

    /// [`send_eof`](Stream::send_eof) without a future:
    /// `shutdown(SHUT_WR)`, which never blocks, so this is always `Ready`;
    /// idempotent. Not a checkpoint (see
    /// [`poll_receive`](Self::poll_receive)); `Busy` against a send in
    /// flight.
    pub fn poll_send_eof(&self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        let s = match self.send_slot.enter().and_then(|_g| self.usable(SEND)) {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if self.did_shutdown_write.replace(true) {
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(s.shutdown(Shutdown::Write).map_err(|e| self.fail(SEND, e)))
    }
}

/// The `io::Error` inside a trio error, if it wraps one.
trait SourceIo {
    fn source_io(&self) -> Option<&io::Error>;
}

impl SourceIo for Error {
    fn source_io(&self) -> Option<&io::Error> {
        if matches!(self.kind(), ErrorKind::Cancelled | ErrorKind::Closed) {
            return None;
        }
        self.downcast_ref::<io::Error>()
    }
}

/// Takes the socket out of its handle and deregisters it (which wakes
/// blocked operations with Closed); a no-op once closed.
fn close_now(socket: &RefCell<Option<Arc<Socket>>>) {
    let taken = socket.borrow_mut().take();
    if let Some(s) = taken {
        s.registration().deregister(s.fd());
    }
}

impl AsyncResource for SocketStream {
    /// Closes at once (deregistering, which wakes blocked operations with
    /// Closed), then checkpoints: always closes, idempotent.
    async fn aclose(&self) -> Result<()> {
        close_now(&self.socket);
        checkpoint().await
    }
}

impl SocketStream {
    /// `send_all`, with its trailing schedule point only if
    /// `schedule_point` (`send_all_unscheduled` without it).
    async fn send_all_then(
        &self,
        data: &[u8],
        location: &'static Location<'static>,
        schedule_point: bool,
    ) -> Result<()> {
        let _g = self.send_slot.enter()?;
        let s = self.usable(SEND)?;
        if self.did_shutdown_write.get() {
            return Err(Error::new(ErrorKind::Closed, "cannot send after send_eof"));
        }
        if data.is_empty() {
            return if schedule_point {
                checkpoint().await
            } else {
                checkpoint_if_cancelled().await
            };
        }
        let mut sent = 0;
        while sent < data.len() {
            let rest = &data[sent..];
            // A short write means the send buffer is full: the next
            // send waits for the edge instead of a syscall that would
            // say WouldBlock.
            let n = s
                .io_op_then(
                    Direction::Write,
                    "SocketStream::send_all",
                    location,
                    &|| self.is_closed(),
                    schedule_point,
                    |s| sys::stream_io::send(s, rest).map(|n| (n, n < rest.len())),
                )
                .await
                .map_err(|e| self.fail(SEND, e))?;
            sent += n;
        }
        Ok(())
    }

    /// `receive_some`, with its trailing schedule point only if
    /// `schedule_point` (`receive_some_unscheduled` without it).
    async fn receive_some_then(
        &self,
        buf: &mut [u8],
        location: &'static Location<'static>,
        schedule_point: bool,
    ) -> Result<usize> {
        let _g = self.receive_slot.enter()?;
        let s = self.usable(RECEIVE)?;
        if buf.is_empty() {
            checkpoint_if_cancelled().await?;
            return Err(empty_buffer());
        }
        // A read that does not fill `buf` drained the receive queue (a
        // stream read takes all there is, up to the buffer): the next
        // one waits for the edge without trying first.
        let len = buf.len();
        s.io_op_then(
            Direction::Read,
            "SocketStream::receive_some",
            location,
            &|| self.is_closed(),
            schedule_point,
            |s| sys::stream_io::recv(s, buf).map(|n| (n, n < len)),
        )
        .await
        .map_err(|e| self.fail(RECEIVE, e))
    }
}

impl SendStream for SocketStream {
    #[track_caller]
    fn send_all(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        self.send_all_then(data, Location::caller(), true)
    }

    #[track_caller]
    fn wait_send_all_might_not_block(&self) -> impl Future<Output = Result<()>> {
        let location = Location::caller();
        async move {
            let _g = self.send_slot.enter()?;
            let s = self.usable(SEND)?;
            s.wait_ready(
                Direction::Write,
                "SocketStream::wait_send_all_might_not_block",
                location,
                &|| self.is_closed(),
            )
            .await
        }
    }

    /// `send_all` without the trailing schedule point (see "Composite
    /// operations" in `trio::stream`): each send is `send_all`'s operation
    /// (a cancel check, the syscall, and a wait only when the send buffer
    /// is full, undone if cancelled or dropped) without its step 3.
    #[track_caller]
    fn send_all_unscheduled(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        self.send_all_then(data, Location::caller(), false)
    }
}

impl ReceiveStream for SocketStream {
    #[track_caller]
    fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        self.receive_some_then(buf, Location::caller(), true)
    }

    /// `receive_some` without the trailing schedule point (see "Composite
    /// operations" in `trio::stream`): `receive_some`'s operation (a cancel
    /// check, the syscall, and a wait only when nothing is queued, undone
    /// if cancelled or dropped) without its step 3.
    #[track_caller]
    fn receive_some_unscheduled(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        self.receive_some_then(buf, Location::caller(), false)
    }
}

impl Stream for SocketStream {
    /// `shutdown(SHUT_WR)`; idempotent.
    async fn send_eof(&self) -> Result<()> {
        let _g = self.send_slot.enter()?;
        let s = self.usable(SEND)?;
        checkpoint().await?;
        if self.did_shutdown_write.replace(true) {
            return Ok(());
        }
        s.shutdown(Shutdown::Write).map_err(|e| self.fail(SEND, e))
    }
}

/// A listening stream socket (TCP or Unix), implementing [`Listener`]
/// (Trio's `SocketListener`). `accept` skips connections that died before
/// they were accepted (Trio's list of errors) and returns any other error.
pub struct SocketListener {
    socket: RefCell<Option<Arc<Socket>>>,
    accept_slot: BusySlot,
    /// An IPv4 or IPv6 listener: its connections are TCP streams (found
    /// out once here, not per connection).
    tcp: bool,
}

impl fmt::Debug for SocketListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketListener")
            .field("socket", &self.socket.borrow())
            .finish()
    }
}

impl SocketListener {
    /// Wraps a listening stream socket (TCP or Unix); any other socket is
    /// InvalidArgument.
    pub fn new(socket: Socket) -> Result<SocketListener> {
        let s = socket.as_socket2();
        if !s.is_listener()? {
            return Err(Error::invalid("SocketListener needs a listening socket"));
        }
        // Checked once here, so that each accepted connection is known to
        // be a stream socket (and whether TCP) without asking the kernel.
        if s.r#type()? != Type::STREAM {
            return Err(Error::invalid("SocketListener needs a stream socket"));
        }
        let tcp = s.local_addr()?.as_socket().is_some();
        Ok(SocketListener {
            socket: RefCell::new(Some(Arc::new(socket))),
            accept_slot: BusySlot::new("another task is already accepting on this listener"),
            tcp,
        })
    }

    /// Binds a TCP listener to `addr` (SO_REUSEADDR; port 0 picks one).
    pub fn bind_tcp(addr: SocketAddr) -> Result<SocketListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        s.as_socket2().set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(libc::SOMAXCONN)?;
        SocketListener::new(s)
    }

    /// Binds a Unix listener to `path`.
    pub fn bind_unix(path: impl AsRef<Path>) -> Result<SocketListener> {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        s.bind(&SockAddr::unix(path)?)?;
        s.listen(libc::SOMAXCONN)?;
        SocketListener::new(s)
    }

    /// The listening address.
    pub fn local_addr(&self) -> Result<SockAddr> {
        self.socket()?.local_addr()
    }

    /// The socket (Closed after [`aclose`](AsyncResource::aclose)).
    pub fn socket(&self) -> Result<Arc<Socket>> {
        self.socket.borrow().clone().ok_or_else(closed)
    }
}

impl AsyncResource for SocketListener {
    async fn aclose(&self) -> Result<()> {
        close_now(&self.socket);
        checkpoint().await
    }
}

impl Listener for SocketListener {
    type Stream = SocketStream;

    #[track_caller]
    fn accept(&self) -> impl Future<Output = Result<SocketStream>> {
        let location = Location::caller();
        async move {
            let _g = self.accept_slot.enter()?;
            let s = self.socket()?;
            // A transient accept error reads as EINTR: `io` retries it.
            let (conn, _) = s
                .io(
                    Direction::Read,
                    "SocketListener::accept",
                    location,
                    &|| self.socket.borrow().is_none(),
                    |s| match super::accept_nonblocking(s) {
                        Err(e) if sys::accept_error_is_transient(&e) => {
                            Err(io::Error::from(io::ErrorKind::Interrupted))
                        }
                        r => r,
                    },
                )
                .await?;
            // Non-blocking from `accept4`, a stream socket of the
            // listener's family: only the TCP options are left to set.
            SocketStream::from_checked(Socket::from_nonblocking(conn), self.tcp)
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod accept_tests {
    use super::*;
    use crate::socket::Socket;
    use std::os::fd::AsRawFd;

    fn cloexec(fd: i32) -> bool {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let f = info.lines().find_map(|l| l.strip_prefix("flags:")).unwrap();
        u32::from_str_radix(f.trim(), 8).unwrap() & 0o2000000 != 0
    }

    /// A Unix listener's accepted stream (tcp = false): non-blocking,
    /// close-on-exec, no TCP options tried.
    #[test]
    fn unix_accept_is_nonblocking_cloexec() {
        crate::run(async {
            let dir = std::env::temp_dir().join(format!("rev-tc-{}", std::process::id()));
            let _ = std::fs::remove_file(&dir);
            let l = SocketListener::bind_unix(&dir)?;
            let _c = std::os::unix::net::UnixStream::connect(&dir).unwrap();
            let s = l.accept().await?;
            let sock = s.socket()?;
            assert!(sock.as_socket2().nonblocking()?);
            assert!(cloexec(sock.as_socket2().as_raw_fd()));
            let _ = std::fs::remove_file(&dir);
            Ok(())
        })
        .unwrap();
    }

    /// A listening SOCK_SEQPACKET socket (from a raw fd) is refused up
    /// front now (it used to be accepted, each accept then failing).
    #[test]
    fn seqpacket_listener_refused() {
        crate::run(async {
            let dir = std::env::temp_dir().join(format!("rev-tc-sp-{}", std::process::id()));
            let _ = std::fs::remove_file(&dir);
            let s = Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)?;
            s.bind(&socket2::SockAddr::unix(&dir)?)?;
            s.listen(8)?;
            let e = SocketListener::new(s).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{e:?}");
            let _ = std::fs::remove_file(&dir);
            Ok(())
        })
        .unwrap();
    }
}

/// The `*_unscheduled` operations (see "Composite operations" in
/// `trio::stream`): a cancel point always, a schedule point only when they
/// wait, and the ordinary operations' cancellation and close semantics.
#[cfg(test)]
mod unscheduled_tests {
    use super::*;
    use crate::lowlevel::watch_checkpoints;
    use crate::testing::wait_all_tasks_blocked;
    use crate::{CancelScope, open_nursery};

    #[test]
    fn no_schedule_point_without_a_wait() {
        crate::run(async {
            let (a, b) = SocketStream::unix_pair()?;
            let watch = watch_checkpoints()?;
            a.send_all_unscheduled(b"hello").await?;
            let mut buf = [0; 16];
            let n = b.receive_some_unscheduled(&mut buf).await?;
            assert_eq!(&buf[..n], b"hello");
            let c = watch.counts();
            assert_eq!((c.schedule_points, c.cancel_points), (0, 2));
            // An empty send: a cancel point, nothing else.
            a.send_all_unscheduled(b"").await?;
            assert_eq!(watch.counts().schedule_points, 0);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_wait_is_the_schedule_point() {
        crate::run(async {
            let (a, b) = SocketStream::unix_pair()?;
            open_nursery(async |n| {
                n.start_soon(async {
                    wait_all_tasks_blocked().await?;
                    a.send_all(b"late").await
                });
                let watch = watch_checkpoints()?;
                let mut buf = [0; 16];
                let k = b.receive_some_unscheduled(&mut buf).await?;
                assert_eq!(&buf[..k], b"late");
                let c = watch.counts();
                // Counted as `receive_some`'s wait is: one schedule point,
                // and a cancel point before the wait and at its end.
                assert_eq!((c.schedule_points, c.cancel_points), (1, 2));
                Ok(())
            })
            .await
        })
        .unwrap();
    }

    #[test]
    fn cancelled_before_or_while_waiting_consumes_nothing() {
        crate::run(async {
            let (a, b) = SocketStream::unix_pair()?;
            let mut buf = [0; 16];
            // Already cancelled: nothing read, even with data queued.
            a.send_all(b"one").await?;
            let scope = CancelScope::new();
            scope.cancel();
            let r = scope.run(b.receive_some_unscheduled(&mut buf)).await?;
            assert!(r.is_none(), "{r:?}");
            let k = b.receive_some(&mut buf).await?;
            assert_eq!(&buf[..k], b"one");
            // Cancelled while waiting (the poll waiter is woken by the
            // cancel), then data comes: the ordinary receive gets it.
            open_nursery(async |n| {
                let scope = CancelScope::new();
                let s2 = scope.clone();
                n.start_soon(async move {
                    wait_all_tasks_blocked().await?;
                    s2.cancel();
                    Ok(())
                });
                let mut buf = [0; 16];
                let r = scope.run(b.receive_some_unscheduled(&mut buf)).await?;
                assert!(r.is_none(), "{r:?}");
                Ok(())
            })
            .await?;
            a.send_all(b"two").await?;
            let k = b.receive_some(&mut buf).await?;
            assert_eq!(&buf[..k], b"two");
            // And an unscheduled receive after it waits properly.
            open_nursery(async |n| {
                n.start_soon(async {
                    wait_all_tasks_blocked().await?;
                    a.send_all(b"three").await
                });
                let mut buf = [0; 16];
                let k = b.receive_some_unscheduled(&mut buf).await?;
                assert_eq!(&buf[..k], b"three");
                Ok(())
            })
            .await
        })
        .unwrap();
    }

    /// Whether any wait sits in the reactor (what the deadlock detector
    /// and the run loop's I/O polling look at).
    fn reactor_has_waiters() -> bool {
        crate::core::runtime::with_runtime(|rt| rt.reactor.borrow().has_waiters()).unwrap()
    }

    /// An unscheduled receive on `b` (nothing queued), cancelled while it
    /// waits.
    async fn cancel_while_waiting(b: &SocketStream) -> Result<()> {
        open_nursery(async |n| {
            let scope = CancelScope::new();
            let s2 = scope.clone();
            n.start_soon(async move {
                wait_all_tasks_blocked().await?;
                assert!(reactor_has_waiters());
                s2.cancel();
                Ok(())
            });
            let mut buf = [0; 16];
            let r = scope.run(b.receive_some_unscheduled(&mut buf)).await?;
            assert!(r.is_none(), "{r:?}");
            Ok(())
        })
        .await
        .map(drop)
    }

    #[test]
    fn a_cancelled_wait_leaves_no_waiter_behind() {
        crate::run(async {
            let (_a, b) = SocketStream::unix_pair()?;
            cancel_while_waiting(&b).await?;
            // As after a cancelled `receive_some`: nobody waits on the fd.
            assert!(!reactor_has_waiters());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_dropped_wait_leaves_no_waiter_behind() {
        crate::run(async {
            let (_a, b) = SocketStream::unix_pair()?;
            let mut buf = [0; 16];
            {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let mut op = std::pin::pin!(b.receive_some_unscheduled(&mut buf));
                assert!(op.as_mut().poll(&mut cx).is_pending());
                assert!(reactor_has_waiters());
            }
            assert!(!reactor_has_waiters());
            Ok(())
        })
        .unwrap();
    }

    /// A deadlock after a cancelled unscheduled receive is reported, as
    /// after a cancelled `receive_some` (no wait is left to keep the run
    /// waiting on I/O forever).
    #[test]
    fn a_deadlock_after_a_cancelled_wait_is_reported() {
        let e = crate::run(async {
            let (_a, b) = SocketStream::unix_pair()?;
            cancel_while_waiting(&b).await?;
            crate::sync::Event::new().wait().await
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Deadlock, "{e:?}");
    }

    /// An ordinary receive that must wait, after an unscheduled one was
    /// cancelled while waiting, gets the data.
    #[test]
    fn an_ordinary_wait_after_a_cancelled_unscheduled_one() {
        crate::run(async {
            let (a, b) = SocketStream::unix_pair()?;
            cancel_while_waiting(&b).await?;
            open_nursery(async |n| {
                n.start_soon(async {
                    wait_all_tasks_blocked().await?;
                    a.send_all(b"x").await
                });
                let mut buf = [0; 16];
                assert_eq!(b.receive_some(&mut buf).await?, 1);
                Ok(())
            })
            .await?;
            assert!(!reactor_has_waiters());
            Ok(())
        })
        .unwrap();
    }

    /// A deadline (on the mock clock) ends an unscheduled wait.
    #[test]
    fn a_deadline_ends_an_unscheduled_wait() {
        crate::Runner::new()
            .clock(crate::testing::MockClock::autojump())
            .run(async {
                let (_a, b) = SocketStream::unix_pair()?;
                let mut buf = [0; 16];
                let r = crate::move_on_after(
                    std::time::Duration::from_secs(5),
                    b.receive_some_unscheduled(&mut buf),
                )
                .await?;
                assert!(r.is_none(), "{r:?}");
                let (c, d) = SocketStream::unix_pair()?;
                let r = crate::move_on_after(std::time::Duration::from_secs(5), async {
                    let big = vec![0u8; 8 << 20];
                    c.send_all_unscheduled(&big).await
                })
                .await?;
                assert!(r.is_none(), "{r:?}");
                drop(d);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn closed_while_waiting() {
        crate::run(async {
            let (_a, b) = SocketStream::unix_pair()?;
            open_nursery(async |n| {
                n.start_soon(async {
                    wait_all_tasks_blocked().await?;
                    b.aclose().await
                });
                let mut buf = [0; 16];
                let e = b.receive_some_unscheduled(&mut buf).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Closed);
                Ok(())
            })
            .await
        })
        .unwrap();
    }

    #[test]
    fn busy_errors_and_a_full_send_buffer() {
        crate::run(async {
            let (a, b) = SocketStream::unix_pair()?;
            let mut buf = [0; 16];
            assert_eq!(
                b.receive_some_unscheduled(&mut [])
                    .await
                    .unwrap_err()
                    .kind(),
                ErrorKind::InvalidArgument
            );
            // More than the socket buffers hold: the send waits for the
            // reader, and everything arrives in order.
            let data: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
            open_nursery(async |n| {
                n.start_soon(async {
                    a.send_all_unscheduled(&data).await?;
                    a.send_eof().await
                });
                wait_all_tasks_blocked().await?;
                // The sender holds the send slot.
                assert_eq!(
                    a.send_all_unscheduled(b"x").await.unwrap_err().kind(),
                    ErrorKind::Busy
                );
                let mut got = Vec::new();
                let mut chunk = vec![0; 64 * 1024];
                loop {
                    let k = b.receive_some_unscheduled(&mut chunk).await?;
                    if k == 0 {
                        break;
                    }
                    got.extend_from_slice(&chunk[..k]);
                }
                assert!(got == data);
                Ok(())
            })
            .await?;
            assert_eq!(b.receive_some(&mut buf).await?, 0);
            Ok(())
        })
        .unwrap();
    }
}
