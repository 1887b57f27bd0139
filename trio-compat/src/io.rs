//! [`Io`]: any trio [`Stream`] behind the poll-based I/O traits
//! (futures-io's, tokio's, hyper's), for foreign code that speaks them.
//!
//! # Design (the generic path, DESIGN §13)
//!
//! Trio's stream methods take `&self` and return futures that borrow the
//! stream; poll traits have no place to keep such a future across polls
//! except the adapter itself, which would make it self-referential. So the
//! adapter keeps the stream in an [`Rc`] and each operation in flight is a
//! boxed future that owns what it needs: a clone of the `Rc` and a buffer
//! (`Vec<u8>`) that it hands back when it finishes, so buffers are reused
//! and only the box is allocated per operation.
//!
//! - **Reads** go through an internal buffer: a `receive_some` into it of
//!   at least [`READ_CHUNK`] bytes (up to [`READ_CHUNK_MAX`] when the
//!   caller's buffer is bigger), then copies out. Whatever the caller's
//!   buffer could not take is served by the next read; nothing received is
//!   ever lost, even if the caller drops its read future and comes back
//!   (the operation stays in the adapter). The adapter is also an
//!   `AsyncBufRead`.
//! - **Writes** are accepted into a buffer of at most [`WRITE_BUFFER`]
//!   bytes and sent by a `send_all` operation, started at once when none
//!   is in flight (so data goes out without waiting for a flush) and
//!   otherwise when the one in flight finishes. `poll_write` waits only
//!   when the buffer is full. `poll_flush` drains everything.
//!   `poll_close`/`poll_shutdown` flush, then `send_eof` (a write-half
//!   close: tokio's `poll_shutdown` means exactly that, and futures'
//!   `poll_close` has no other useful meaning for a two-way stream).
//! - **Closing**: the stream is dropped with the adapter (the last `Rc`),
//!   which closes sockets and pipes (their `Drop` closes the fd); a stream
//!   whose `Drop` does not close it (trio's memory streams) is closed with
//!   [`Io::aclose`], which closes any stream. `aclose` is async and a
//!   `Drop` cannot await, so the adapter cannot do more on its own.
//!
//! # Cancellation and scheduling
//!
//! Every poll starts with a cancel check, made with a
//! [`trio::lowlevel::CancelWaiter`]: while the task's scope is cancelled,
//! the adapter returns an `io::Error` of kind `Other` wrapping trio's
//! `Cancelled` (see [`crate::error`]; never `Interrupted`, which read loops
//! retry) and does nothing else. The check alone
//! ([`CancelWaiter::check`]) is two thread-local loads while no cancel
//! status of the thread's runs is cancelled, and touches no table; a poll
//! that is about to return `Pending` then registers the
//! waker it was polled with under the task's current cancel status
//! ([`CancelWaiter::poll_cancelled`], which checks once more), so it is
//! woken by a cancel even when the operation in flight waits on something
//! that is no trio park, and even inside foreign combinators
//! (`FuturesUnordered`, `select!`). A poll that completes registers
//! nothing (most of a busy connection's polls: four of the six checks
//! hyper's keep-alive requests cause; see trio-hyper's Performance docs).
//! The registration is updated in place while the waker and the scope stay
//! the same, and lingers after a ready poll until the next `Pending` poll
//! or the adapter's drop (a cancel then wakes the task once more, which
//! costs a poll and loses nothing). So a task is woken by a cancel of the
//! scope its *last `Pending`* poll ran in: after a ready poll in an inner
//! scope, a wait on something that is neither this adapter nor a trio
//! operation (a foreign channel, say) is not woken by a cancel of that
//! inner scope (DESIGN §13 promises the wake for an adapter's own
//! `Pending` polls only). Outside a trio
//! run the check fails with a `Usage` error (an `io::Error`), never a
//! panic.
//!
//! On the native path the registration is the stream's own: trio's
//! sockets and pipes register a waiting poll's waker in the reactor
//! *under the task's current cancel status*
//! ([`NativePoll::pending_wakes_on_cancel`]), so a cancel of that status
//! or of any scope whose cancellation reaches it wakes it, and the adapter
//! adds no cancel waiter. And a read polled again in the same task step
//! after a `Pending` one (hyper reads twice with nothing there per
//! keep-alive request) returns `Pending` at once while the first one's
//! registration is known to be intact
//! ([`PendingMark`](trio::lowlevel::PendingMark): no waker used up
//! anywhere on the thread since, same waker, same cancel status), since
//! polling the stream again would register exactly the same thing.
//!
//! The adapter is a cancel point, not a schedule point, but keeps a
//! cooperative budget: after [`BUDGET`] consecutive ready polls it returns
//! `Pending` once, after waking the waker, so a connection with data
//! always ready cannot keep its task from yielding and starve the run.
//!
//! # The native path: sockets and pipes ([`Io::native`])
//!
//! Sockets and pipes have poll methods of their own
//! (`SocketStream::poll_receive`/`poll_send`, the pipes' likewise): try the
//! syscall, else register the waker in trio's reactor, which wakes it at
//! the next readiness edge. [`NativePoll`] names them, and
//! [`Io::native`] builds an adapter that calls them directly: no boxed
//! operation, no allocation per poll (polled with a trio task's waker; a
//! foreign waker, inside `FuturesUnordered` say, is boxed once per wait in
//! trio's tables), no buffer between the caller and the kernel (`AsyncRead::poll_read` receives into the caller's buffer,
//! `poll_write` sends from it; only `AsyncBufRead` and hyper's reads use
//! the internal read buffer: hyper's as a bounce buffer, receiving at
//! most what hyper's cursor has room for and copying all of it out, since
//! receiving into the cursor itself needs `unsafe`; and `poll_flush` has
//! nothing to drain).
//!
//! *Why a constructor and not automatic:* choosing the path by the
//! stream's type needs specialisation, which stable Rust lacks. So the
//! choice is made once, at construction: [`Io::native`] (bound
//! `S: NativePoll`) stores the three poll functions of `S` as plain `fn`
//! pointers in the adapter, and every poll dispatches on whether they are
//! there. `Io<S>` stays one type with one set of trait impls; the cost is
//! one branch and one indirect call per poll. [`Io::new`] keeps the
//! boxed path for every stream (sockets included, for comparison).
//!
//! Measured (`tests/native.rs`, release, valgrind callgrind: user-space
//! instructions): a 64-byte round trip through two adapters in one task
//! (a read that waits in the reactor, a write) costs 5 930 instructions
//! and 2 allocations on the boxed path, 3 230 and none on the native one;
//! a `futures::io::copy` of 16 MiB over a socket pair, 27.4 M against
//! 21.4 M instructions and 2 517 against 42 allocations (the run's own
//! set-up). Wall-clock times on the shared 2-core test machine were within
//! its noise of each other (the kernel's copying dominates).
//!
//! The native path makes one syscall per poll, with the caller's buffer,
//! as tokio's own sockets do; the boxed path batches (16 KiB reads and up
//! to 64 KiB of accepted writes). So a caller with small buffers makes
//! more syscalls natively: that 16 MiB copy (`futures::io::copy`, 8 KiB at
//! a time) took about 2 130 `recvfrom` and 2 130 `sendto` natively against
//! 1 070 and 1 480 boxed (`strace -c`). Give bulk transfers bigger buffers
//! (a `BufWriter`, `copy_buf` over a bigger `BufReader`).
//!
//! The socket's poll methods are not checkpoints; the adapter keeps its
//! cancel check (the [`CancelWaiter`] below, before the socket is touched:
//! DESIGN §6's order, cancel check, syscall, else register) and its budget
//! on every poll, exactly as on the boxed path. The reactor keeps one
//! waker per direction, and the last poller's wins (tokio's rule): two
//! tasks polling one adapter's reads at once is a caller's bug that loses
//! a wake-up, as in tokio, not an error. A `receive_some` of the stream
//! itself in flight at the same time makes the poll `Busy`.

use crate::error::to_io;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use trio::lowlevel::{CancelWaiter, PendingMark};
use trio::process::{ProcessStdin, ProcessStdout};
use trio::socket::SocketStream;
use trio::stream::{StapledStream, Stream};

/// The smallest read the adapter asks its stream for: 16 KiB, what Trio
/// and trio use as the "nearly empty" send watermark (`TCP_NOTSENT_LOWAT`),
/// so one read usually takes what one send of the peer wrote; twice
/// tokio's and futures' `BufReader` default. A caller reading a byte at a
/// time still costs one stream operation per 16 KiB.
pub const READ_CHUNK: usize = 16 * 1024;

/// The largest read: a caller's buffer bigger than [`READ_CHUNK`] is
/// honoured up to 64 KiB (one operation moves a big buffer's worth), and
/// no further, to bound the adapter's memory.
pub const READ_CHUNK_MAX: usize = 64 * 1024;

/// How many bytes `poll_write` accepts beyond what is in flight: 64 KiB,
/// about one TCP window; a bound on memory, and the point where
/// `poll_write` starts to wait.
pub const WRITE_BUFFER: usize = 64 * 1024;

/// How many consecutive ready polls an adapter returns before it yields
/// once (returns `Pending` after waking the waker). 128 is tokio's
/// per-task budget (`runtime/coop.rs`): enough that the yield costs
/// nothing measurable (one run-queue round per 128 operations, i.e. per
/// 2 MiB at [`READ_CHUNK`]), small enough that a busy connection lets the
/// timers and other tasks of the run in well within a millisecond. Unlike
/// tokio's it is counted per adapter (the adapter cannot see its task's
/// poll boundaries), and any `Pending` restarts the count.
pub const BUDGET: u32 = 128;

/// A stream with poll methods of its own (try the syscall, else register
/// the waker in trio's reactor), which [`Io::native`] calls directly: no
/// boxed operation and no allocation per poll.
///
/// Implemented for [`SocketStream`] (TCP and Unix), for a
/// [`StapledStream`] of a child's stdin and stdout pipes, and through
/// `&T` and `Box<T>`. The methods need not be checkpoints (the adapter
/// checks for cancellation before each poll); each must register `cx`'s
/// waker when it returns `Pending`, and do nothing then.
///
/// ```
/// # #[cfg(feature = "futures-io")] {
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use trio::socket::SocketStream;
/// use trio_compat::Io;
///
/// trio::run(async {
///     let (a, b) = SocketStream::unix_pair()?;
///     let (mut a, mut b) = (Io::native(a), Io::native(&b));
///     a.write_all(b"hello").await?;
///     a.close().await?; // send_eof
///     let mut got = Vec::new();
///     b.read_to_end(&mut got).await?;
///     assert_eq!(got, b"hello");
///     Ok(())
/// })
/// .unwrap();
/// # }
/// ```
pub trait NativePoll {
    /// Receives into `buf` (non-empty): `n ≥ 1` bytes, or 0 at the end of
    /// stream; `Pending` with `cx`'s waker registered.
    fn poll_receive(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<trio::Result<usize>>;
    /// Sends a prefix of `data` (non-empty): `n ≥ 1` bytes; `Pending`
    /// with `cx`'s waker registered.
    fn poll_send(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<trio::Result<usize>>;
    /// Ends the sending direction ([`Stream::send_eof`]).
    fn poll_send_eof(&self, cx: &mut Context<'_>) -> Poll<trio::Result<()>>;

    /// Whether every `Pending` of these methods also registered `cx`'s
    /// waker under the task's current cancel status, so that a cancel of
    /// that status (or of any scope whose cancellation reaches it) wakes
    /// it. Then the adapter makes no registration of its own before
    /// returning `Pending` (see "Cancellation and scheduling" in the
    /// module docs). False by default; true for trio's sockets and pipes,
    /// whose poll waiters are registered so in trio's reactor.
    fn pending_wakes_on_cancel(&self) -> bool {
        false
    }
}

impl NativePoll for SocketStream {
    fn poll_receive(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<trio::Result<usize>> {
        SocketStream::poll_receive(self, cx, buf)
    }
    fn poll_send(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<trio::Result<usize>> {
        SocketStream::poll_send(self, cx, data)
    }
    fn poll_send_eof(&self, cx: &mut Context<'_>) -> Poll<trio::Result<()>> {
        SocketStream::poll_send_eof(self, cx)
    }
    fn pending_wakes_on_cancel(&self) -> bool {
        true
    }
}

/// A child's stdin and stdout as one stream; `send_eof` closes stdin (as
/// [`StapledStream::send_eof`] does).
impl NativePoll for StapledStream<ProcessStdin, ProcessStdout> {
    fn poll_receive(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<trio::Result<usize>> {
        self.receive_stream.poll_receive(cx, buf)
    }
    fn poll_send(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<trio::Result<usize>> {
        self.send_stream.poll_send(cx, data)
    }
    fn poll_send_eof(&self, _cx: &mut Context<'_>) -> Poll<trio::Result<()>> {
        self.send_stream.close_now();
        Poll::Ready(Ok(()))
    }
    fn pending_wakes_on_cancel(&self) -> bool {
        true
    }
}

impl<T: NativePoll + ?Sized> NativePoll for &T {
    fn poll_receive(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<trio::Result<usize>> {
        (**self).poll_receive(cx, buf)
    }
    fn poll_send(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<trio::Result<usize>> {
        (**self).poll_send(cx, data)
    }
    fn poll_send_eof(&self, cx: &mut Context<'_>) -> Poll<trio::Result<()>> {
        (**self).poll_send_eof(cx)
    }
    fn pending_wakes_on_cancel(&self) -> bool {
        (**self).pending_wakes_on_cancel()
    }
}

impl<T: NativePoll + ?Sized> NativePoll for Box<T> {
    fn poll_receive(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<trio::Result<usize>> {
        (**self).poll_receive(cx, buf)
    }
    fn poll_send(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<trio::Result<usize>> {
        (**self).poll_send(cx, data)
    }
    fn poll_send_eof(&self, cx: &mut Context<'_>) -> Poll<trio::Result<()>> {
        (**self).poll_send_eof(cx)
    }
    fn pending_wakes_on_cancel(&self) -> bool {
        (**self).pending_wakes_on_cancel()
    }
}

/// The poll functions of a [`NativePoll`] stream, as `fn` pointers: how
/// [`Io::native`] remembers, in an adapter whose `impl` blocks know only
/// `S: Stream`, that `S` polls natively (see the module docs).
struct NativeOps<S: ?Sized> {
    receive: fn(&S, &mut Context<'_>, &mut [u8]) -> Poll<trio::Result<usize>>,
    send: fn(&S, &mut Context<'_>, &[u8]) -> Poll<trio::Result<usize>>,
    send_eof: fn(&S, &mut Context<'_>) -> Poll<trio::Result<()>>,
    /// [`NativePoll::pending_wakes_on_cancel`], asked once.
    wakes_on_cancel: bool,
}

impl<S: ?Sized> Clone for NativeOps<S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for NativeOps<S> {}

impl<S: NativePoll> NativeOps<S> {
    fn of(stream: &S) -> Self {
        NativeOps {
            receive: S::poll_receive,
            send: S::poll_send,
            send_eof: S::poll_send_eof,
            wakes_on_cancel: stream.pending_wakes_on_cancel(),
        }
    }
}

/// A native receive that skips polling the stream while `mark` says the
/// registration of its last `Pending` is still in place (only for a
/// stream whose `Pending` registers under the cancel status: the
/// adapter's own registration is then none), and leaves a mark after a
/// `Pending`.
#[inline]
fn receive_marked<S: ?Sized>(
    ops: NativeOps<S>,
    stream: &S,
    mark: &mut Option<PendingMark>,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<trio::Result<usize>> {
    if let Some(m) = mark.take()
        && m.still_holds(cx.waker())
    {
        *mark = Some(m);
        return Poll::Pending;
    }
    if !ops.wakes_on_cancel {
        return (ops.receive)(stream, cx, buf);
    }
    let (polled, new_mark) = PendingMark::watch(cx, |cx| (ops.receive)(stream, cx, buf));
    *mark = new_mark;
    polled
}

/// A receive in flight: the buffer comes back with the outcome.
type ReadOp<'a> = Pin<Box<dyn Future<Output = (Vec<u8>, trio::Result<usize>)> + 'a>>;
/// A send in flight: the buffer comes back (to be reused) with the outcome.
type WriteOp<'a> = Pin<Box<dyn Future<Output = (Vec<u8>, trio::Result<()>)> + 'a>>;
/// A `send_eof` in flight.
type EofOp<'a> = Pin<Box<dyn Future<Output = trio::Result<()>> + 'a>>;

/// A trio [`Stream`] as `futures_io::{AsyncRead, AsyncBufRead,
/// AsyncWrite}` (feature `futures-io`), `tokio::io::{AsyncRead,
/// AsyncBufRead, AsyncWrite}` (feature `tokio`) and `hyper::rt::{Read,
/// Write}` (feature `hyper`). See [the crate docs](crate#decisions-and-why)
/// for buffering, the budget and error mapping.
///
/// - Two paths, chosen at construction: [`Io::native`] for sockets and
///   pipes ([`NativePoll`]: the syscall, else the waker registered in the
///   reactor; no allocation per poll, no copy), [`Io::new`] for any
///   stream (a boxed operation in flight, with the buffering below).
/// - Reads are received into an internal buffer (at least [`READ_CHUNK`])
///   and copied out; it is also an `AsyncBufRead`. (Native: futures' and
///   tokio's `poll_read` receive straight into the caller's buffer.)
/// - `poll_write` accepts into a buffer (at most [`WRITE_BUFFER`]) and
///   starts a send at once if none is in flight (native: sends straight
///   from the caller's buffer); `poll_flush` drains it;
///   `poll_close`/`poll_shutdown` flush, then `send_eof`. As with a
///   `BufWriter`, flush before waiting for a reply: bytes accepted while a
///   send was in flight leave only when the adapter is next polled for
///   writing (a write, a flush or a close).
/// - Every poll is a cancel point: while the task's scope is cancelled it
///   fails with an `io::Error` wrapping trio's `Cancelled` (kind `Other`).
///   After [`BUDGET`] ready polls in a row it yields once.
/// - Dropping the adapter drops the stream, which closes it if the
///   stream's `Drop` does (sockets, pipes); [`Io::aclose`] closes any
///   stream.
///
/// `S` may be a stream (the adapter owns it, and dropping the adapter
/// drops it) or a reference to one (`Io::new(&stream)`: the owner keeps
/// it and closes it); `'a` is how long the operations in flight may
/// borrow from `S`. Must be polled inside a trio task.
///
/// ```
/// # #[cfg(feature = "futures-io")] {
/// use futures::io::{AsyncReadExt, AsyncWriteExt};
/// use trio::testing::memory_stream_pair;
/// use trio_compat::Io;
///
/// trio::run(async {
///     let (a, b) = memory_stream_pair();
///     let (mut a, mut b) = (Io::new(a), Io::new(b));
///     a.write_all(b"hello").await?;
///     a.flush().await?;
///     let mut buf = [0; 5];
///     b.read_exact(&mut buf).await?;
///     assert_eq!(&buf, b"hello");
///     Ok(())
/// })
/// .unwrap();
/// # }
/// ```
pub struct Io<'a, S: Stream + 'a> {
    stream: Rc<S>,
    /// The read buffer: unread bytes at `read_pos..read_filled`. Moved
    /// into `read_op` while a receive is in flight (and empty here then).
    read_buf: Vec<u8>,
    read_pos: usize,
    read_filled: usize,
    read_op: Option<ReadOp<'a>>,
    /// Accepted bytes not yet handed to a send.
    write_buf: Vec<u8>,
    /// The buffer of the last finished send, cleared, for the next one.
    spare: Vec<u8>,
    write_op: Option<WriteOp<'a>>,
    eof_op: Option<EofOp<'a>>,
    /// `send_eof` succeeded: later writes fail, shutdown is a no-op.
    eof_sent: bool,
    /// Consecutive ready polls (see [`BUDGET`]).
    ready_run: u32,
    /// The cancel check of every poll, and the registration of the
    /// waker of a poll that returns `Pending` under the task's cancel
    /// status (see "Cancellation and scheduling" in the module docs).
    cancel_waiter: CancelWaiter,
    /// Left by a native receive that returned `Pending` (its waker then
    /// registered in trio's reactor under the task's cancel status): while
    /// it [still holds](PendingMark::still_holds), the next read poll
    /// returns `Pending` without polling the stream again (see "The native
    /// path" in the module docs). Cleared by any other outcome.
    read_mark: Option<PendingMark>,
    /// `S`'s own poll functions, for an adapter made by [`Io::native`]:
    /// then no operation is ever boxed, `write_buf` stays empty and
    /// `read_buf` is used only by `AsyncBufRead` and hyper's reads.
    native: Option<NativeOps<S>>,
}

impl<'a, S: Stream + 'a> Io<'a, S> {
    /// Adapts `stream`. Allocates nothing until the first operation.
    pub fn new(stream: S) -> Self {
        Io::from_rc(Rc::new(stream))
    }

    /// Adapts a shared stream (the stream closes when its last `Rc` is
    /// dropped).
    pub fn from_rc(stream: Rc<S>) -> Self {
        Io {
            stream,
            read_buf: Vec::new(),
            read_pos: 0,
            read_filled: 0,
            read_op: None,
            write_buf: Vec::new(),
            spare: Vec::new(),
            write_op: None,
            eof_op: None,
            eof_sent: false,
            ready_run: 0,
            cancel_waiter: CancelWaiter::new(),
            read_mark: None,
            native: None,
        }
    }

    /// Adapts a stream that polls natively (a socket, a pipe pair): every
    /// operation calls `S`'s poll methods, with no allocation per poll
    /// (see [`NativePoll`] and the module docs). `Io::native(&stream)`
    /// borrows it.
    pub fn native(stream: S) -> Self
    where
        S: NativePoll,
    {
        Io::native_rc(Rc::new(stream))
    }

    /// [`native`](Self::native) over a shared stream.
    pub fn native_rc(stream: Rc<S>) -> Self
    where
        S: NativePoll,
    {
        let ops = NativeOps::of(&*stream);
        let mut io = Io::from_rc(stream);
        io.native = Some(ops);
        io
    }

    /// Whether this adapter polls its stream natively ([`Io::native`]).
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Bytes received and not yet read through the adapter.
    pub fn buffered(&self) -> &[u8] {
        &self.read_buf[self.read_pos..self.read_filled]
    }

    /// Puts `data` in front of the bytes still to be read: reads return it
    /// first, then what was buffered, then what the stream brings. For
    /// bytes read from the stream before the adapter was made (a protocol
    /// sniff: trio-hyper's server reads HTTP/2's preface this way), so
    /// that the reader sees them without a wrapper in its way.
    ///
    /// A usage error, and nothing changes, while a receive of the boxed
    /// path is in flight (its bytes would come before these).
    ///
    /// ```
    /// # #[cfg(feature = "futures-io")] {
    /// use futures::io::AsyncReadExt;
    /// use trio::stream::SendStream;
    /// use trio::socket::SocketStream;
    /// use trio_compat::Io;
    ///
    /// trio::run(async {
    ///     let (a, b) = SocketStream::unix_pair()?;
    ///     a.send_all(b"lo").await?;
    ///     drop(a);
    ///     let mut io = Io::native(b);
    ///     io.unread(b"hel")?;
    ///     let mut got = String::new();
    ///     io.read_to_string(&mut got).await?;
    ///     assert_eq!(got, "hello");
    ///     Ok(())
    /// })
    /// .unwrap();
    /// # }
    /// ```
    pub fn unread(&mut self, data: &[u8]) -> trio::Result<()> {
        if self.read_op.is_some() {
            return Err(trio::Error::new(
                trio::ErrorKind::Usage,
                "Io::unread while a receive is in flight",
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(data.len() + self.buffered().len());
        buf.extend_from_slice(data);
        buf.extend_from_slice(self.buffered());
        self.read_pos = 0;
        self.read_filled = buf.len();
        self.read_buf = buf;
        Ok(())
    }

    /// Unwraps the adapter. Operations in flight are dropped (a receive in
    /// flight received nothing that is lost: trio's `receive_some` is
    /// cancel-safe when dropped; a send in flight may have sent a prefix),
    /// and so are [`buffered`](Self::buffered) bytes and unflushed writes:
    /// flush first.
    pub fn into_rc(self) -> Rc<S> {
        self.stream
    }

    /// Closes the stream ([`AsyncResource::aclose`](trio::stream::AsyncResource::aclose)):
    /// unflushed writes are not sent.
    pub async fn aclose(&self) -> trio::Result<()> {
        self.stream.aclose().await
    }

    // ----- the budget -------------------------------------------------------

    /// Whether this poll must yield: after [`BUDGET`] ready polls in a row,
    /// wakes the waker and says yes (once; the count restarts).
    #[inline]
    fn must_yield(&mut self, cx: &mut Context<'_>) -> bool {
        if self.ready_run < BUDGET {
            return false;
        }
        self.ready_run = 0;
        cx.waker().wake_by_ref();
        true
    }

    /// The end of every poll that got past [`enter`](Self::enter): counts
    /// its outcome toward the budget, and before a `Pending` registers
    /// `cx`'s waker under the task's cancel status (so a cancel wakes a
    /// poll waiting on anything), which checks once more: a cancel seen
    /// then is the poll's outcome.
    #[inline]
    fn count<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(_) => self.ready_run += 1,
            Poll::Pending => {
                self.ready_run = 0;
                // A native stream whose `Pending` registered the waker
                // under the cancel status needs no second registration
                // (the check at `enter` saw the status not cancelled, and
                // nothing in between can cancel it).
                if !self.native.is_some_and(|ops| ops.wakes_on_cancel)
                    && let Poll::Ready(e) = self.cancel_waiter.poll_cancelled(cx)
                {
                    return Poll::Ready(Err(to_io(e)));
                }
            }
        }
        poll
    }

    /// The start of every poll: the cancel check (trio's errors, as
    /// `io::Error`s; it registers nothing, [`count`](Self::count) does
    /// when the poll is about to return `Pending`), then the budget.
    #[inline]
    fn enter(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = self.cancel_waiter.check() {
            return Poll::Ready(Err(to_io(e)));
        }
        if self.must_yield(cx) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    // ----- reading ------------------------------------------------------------

    /// Makes unread bytes available (an empty slice: end of stream),
    /// receiving at least `hint` bytes' room when it must receive.
    #[inline]
    fn poll_fill(&mut self, cx: &mut Context<'_>, hint: usize) -> Poll<io::Result<&[u8]>> {
        match self.enter(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map_ok(|()| &[][..]),
        }
        if self.read_pos == self.read_filled {
            match self.poll_receive(cx, hint) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return self.count(cx, Poll::Ready(Err(e))),
                Poll::Pending => return self.count(cx, Poll::Pending),
            }
        }
        self.ready_run += 1;
        Poll::Ready(Ok(&self.read_buf[self.read_pos..self.read_filled]))
    }

    /// Starts (if needed) and polls the receive; on success the buffer
    /// holds what came (nothing at the end of stream).
    fn poll_receive(&mut self, cx: &mut Context<'_>, hint: usize) -> Poll<io::Result<()>> {
        if let Some(ops) = self.native {
            let want = hint.clamp(READ_CHUNK, READ_CHUNK_MAX);
            if self.read_buf.len() < want {
                self.read_buf.resize(want, 0);
            }
            let n = match receive_marked(
                ops,
                &self.stream,
                &mut self.read_mark,
                cx,
                &mut self.read_buf,
            ) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(to_io(e))),
                Poll::Pending => return Poll::Pending,
            };
            self.read_pos = 0;
            self.read_filled = n.min(self.read_buf.len());
            return Poll::Ready(Ok(()));
        }
        let op = match &mut self.read_op {
            Some(op) => op,
            None => {
                let mut buf = std::mem::take(&mut self.read_buf);
                let want = hint.clamp(READ_CHUNK, READ_CHUNK_MAX);
                if buf.len() < want {
                    buf.resize(want, 0);
                }
                let stream = Rc::clone(&self.stream);
                self.read_op.insert(Box::pin(async move {
                    let r = stream.receive_some(&mut buf).await;
                    (buf, r)
                }))
            }
        };
        let (buf, outcome) = match op.as_mut().poll(cx) {
            Poll::Ready(done) => done,
            Poll::Pending => return Poll::Pending,
        };
        self.read_op = None;
        self.read_buf = buf;
        self.read_pos = 0;
        self.read_filled = 0;
        match outcome {
            Ok(n) => {
                self.read_filled = n.min(self.read_buf.len());
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }

    /// Marks `n` buffered bytes as read.
    fn consume_buffered(&mut self, n: usize) {
        self.read_pos = (self.read_pos + n).min(self.read_filled);
    }

    /// Reads into `out` (`AsyncRead::poll_read`): up to its length, 0 at the
    /// end of stream (or for an empty `out`). For futures-io's impl and
    /// `FromIo`'s `PollIo` (tokio's and hyper's have their own buffers).
    pub(crate) fn poll_read_slice(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return self.enter(cx).map_ok(|()| 0);
        }
        if self.native.is_some() && self.read_pos == self.read_filled {
            return self.poll_read_direct(cx, out);
        }
        let n = match self.poll_fill(cx, out.len()) {
            Poll::Ready(Ok(data)) => {
                let n = data.len().min(out.len());
                out[..n].copy_from_slice(&data[..n]);
                n
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        self.consume_buffered(n);
        Poll::Ready(Ok(n))
    }

    /// The native path's read: straight into `out` (non-empty), with no
    /// copy, when nothing is buffered.
    fn poll_read_direct(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.enter(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map_ok(|()| 0),
        }
        let ops = self.native.expect("the native path");
        let polled = receive_marked(ops, &self.stream, &mut self.read_mark, cx, out).map_err(to_io);
        self.count(cx, polled)
    }

    // ----- writing ------------------------------------------------------------

    /// Polls the send in flight, if any: `Ready(Ok)` once none is.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(op) = &mut self.write_op else {
            return Poll::Ready(Ok(()));
        };
        let (mut buf, outcome) = match op.as_mut().poll(cx) {
            Poll::Ready(done) => done,
            Poll::Pending => return Poll::Pending,
        };
        self.write_op = None;
        buf.clear();
        self.spare = buf;
        Poll::Ready(outcome.map_err(to_io))
    }

    /// Hands the accepted bytes to a new send (none must be in flight).
    fn start_send(&mut self) {
        let data = std::mem::replace(&mut self.write_buf, std::mem::take(&mut self.spare));
        let stream = Rc::clone(&self.stream);
        self.write_op = Some(Box::pin(async move {
            let r = stream.send_all(&data).await;
            (data, r)
        }));
    }

    /// The error of a write after `send_eof`.
    fn after_eof() -> io::Error {
        to_io(trio::Error::new(
            trio::ErrorKind::Closed,
            "cannot write after shutdown (send_eof)",
        ))
    }

    /// Accepts bytes from `bufs` in order (`AsyncWrite::poll_write` and its
    /// vectored form); waits only while the buffer is full.
    #[inline]
    pub(crate) fn poll_write_bufs<B: Deref<Target = [u8]>>(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[B],
    ) -> Poll<io::Result<usize>> {
        let polled = self.poll_write_inner(cx, bufs);
        self.count(cx, polled)
    }

    fn poll_write_inner<B: Deref<Target = [u8]>>(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[B],
    ) -> Poll<io::Result<usize>> {
        match self.enter(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map_ok(|()| 0),
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.eof_sent {
            return Poll::Ready(Err(Self::after_eof()));
        }
        if let Some(ops) = self.native {
            // Straight from the caller's buffer: the first non-empty one
            // (a vectored write may write less than all of them).
            let first = bufs.iter().find(|b| !b.is_empty()).expect("total > 0");
            return (ops.send)(&self.stream, cx, first).map_err(to_io);
        }
        loop {
            if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            let room = WRITE_BUFFER.saturating_sub(self.write_buf.len());
            if room > 0 {
                let mut accepted = 0;
                for b in bufs.iter() {
                    let take = b.len().min(room - accepted);
                    self.write_buf.extend_from_slice(&b[..take]);
                    accepted += take;
                    if accepted == room {
                        break;
                    }
                }
                if self.write_op.is_none() {
                    // Send at once: no flush needed for data to leave.
                    self.start_send();
                    if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                        return Poll::Ready(Err(e));
                    }
                }
                return Poll::Ready(Ok(accepted));
            }
            if self.write_op.is_some() {
                // Full, and the send in flight is waiting.
                return Poll::Pending;
            }
            self.start_send();
        }
    }

    /// Sends everything accepted (`poll_flush`).
    #[inline]
    pub(crate) fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.enter(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if self.native.is_some() {
            // Nothing is ever buffered natively: flushed already (hyper
            // flushes after every response).
            self.ready_run += 1;
            return Poll::Ready(Ok(()));
        }
        let polled = self.drain(cx);
        self.count(cx, polled)
    }

    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.poll_send(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            if self.write_buf.is_empty() {
                return Poll::Ready(Ok(()));
            }
            self.start_send();
        }
    }

    /// Flushes, then `send_eof` (`poll_close`, `poll_shutdown`); idempotent.
    pub(crate) fn poll_shutdown_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.enter(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let polled = self.shutdown(cx);
        self.count(cx, polled)
    }

    fn shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if self.eof_sent {
            return Poll::Ready(Ok(()));
        }
        if let Some(ops) = self.native {
            let outcome = match (ops.send_eof)(&self.stream, cx) {
                Poll::Ready(outcome) => outcome,
                Poll::Pending => return Poll::Pending,
            };
            self.eof_sent = outcome.is_ok();
            return Poll::Ready(outcome.map_err(to_io));
        }
        let op = self.eof_op.get_or_insert_with(|| {
            let stream = Rc::clone(&self.stream);
            Box::pin(async move { stream.send_eof().await })
        });
        let outcome = match op.as_mut().poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        self.eof_op = None;
        self.eof_sent = outcome.is_ok();
        Poll::Ready(outcome.map_err(to_io))
    }
}

impl<'a, S: Stream + fmt::Debug + 'a> fmt::Debug for Io<'a, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Io")
            .field("stream", &self.stream)
            .field("buffered", &(self.read_filled - self.read_pos))
            .field("receiving", &self.read_op.is_some())
            .field("unsent", &self.write_buf.len())
            .field("sending", &self.write_op.is_some())
            .field("eof_sent", &self.eof_sent)
            .field("native", &self.native.is_some())
            .finish()
    }
}

#[cfg(feature = "futures-io")]
mod futures_impls {
    use super::Io;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use trio::stream::Stream;

    impl<'a, S: Stream + 'a> futures_io::AsyncRead for Io<'a, S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_read_slice(cx, buf)
        }
    }

    impl<'a, S: Stream + 'a> futures_io::AsyncBufRead for Io<'a, S> {
        fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
            self.get_mut().poll_fill(cx, 0)
        }

        fn consume(self: Pin<&mut Self>, amt: usize) {
            self.get_mut().consume_buffered(amt);
        }
    }

    impl<'a, S: Stream + 'a> futures_io::AsyncWrite for Io<'a, S> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_bufs(cx, &[buf])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_bufs(cx, bufs)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush_inner(cx)
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_shutdown_inner(cx)
        }
    }
}

#[cfg(feature = "tokio")]
mod tokio_impls {
    use super::Io;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;
    use trio::stream::Stream;

    impl<'a, S: Stream + 'a> tokio::io::AsyncRead for Io<'a, S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if buf.remaining() == 0 {
                return this.enter(cx);
            }
            if this.native.is_some() && this.buffered().is_empty() {
                // Straight into the caller's buffer (zeroing what it has
                // not initialised yet, at most one read's worth: no
                // `unsafe` here).
                let room = buf.remaining().min(super::READ_CHUNK_MAX);
                let n = match this.poll_read_direct(cx, buf.initialize_unfilled_to(room)) {
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                };
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            let n = match this.poll_fill(cx, buf.remaining()) {
                Poll::Ready(Ok(data)) => {
                    let n = data.len().min(buf.remaining());
                    buf.put_slice(&data[..n]);
                    n
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            this.consume_buffered(n);
            Poll::Ready(Ok(()))
        }
    }

    impl<'a, S: Stream + 'a> tokio::io::AsyncBufRead for Io<'a, S> {
        fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
            self.get_mut().poll_fill(cx, 0)
        }

        fn consume(self: Pin<&mut Self>, amt: usize) {
            self.get_mut().consume_buffered(amt);
        }
    }

    impl<'a, S: Stream + 'a> tokio::io::AsyncWrite for Io<'a, S> {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_bufs(cx, &[buf])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_bufs(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            // The boxed path copies every slice into one send; the native
            // path sends one slice per call, so callers that can (hyper)
            // should flatten headers and body into one buffer: one
            // `sendto` per response instead of one per slice.
            self.native.is_none()
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush_inner(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_shutdown_inner(cx)
        }
    }
}

#[cfg(feature = "hyper")]
mod hyper_impls {
    use super::Io;
    use hyper::rt::ReadBufCursor;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use trio::stream::Stream;

    impl<'a, S: Stream + 'a> hyper::rt::Read for Io<'a, S> {
        /// Copies with `ReadBufCursor::put_slice` (no `unsafe`): the copy
        /// out of the adapter's buffer is the cost of the generic path.
        #[inline]
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if buf.remaining() == 0 {
                return this.enter(cx);
            }
            if let Some(ops) = this.native
                && this.read_pos == this.read_filled
            {
                return this.poll_read_native_cursor(ops, cx, &mut buf);
            }
            let n = match this.poll_fill(cx, buf.remaining()) {
                Poll::Ready(Ok(data)) => {
                    let n = data.len().min(buf.remaining());
                    buf.put_slice(&data[..n]);
                    n
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            this.consume_buffered(n);
            Poll::Ready(Ok(()))
        }
    }

    impl<'a, S: Stream + 'a> Io<'a, S> {
        /// hyper's write on the native path (`data` non-empty): what
        /// `poll_write_bufs` does for one slice, without its generic
        /// slice handling.
        #[inline]
        fn poll_write_native(
            &mut self,
            ops: super::NativeOps<S>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let polled = match self.enter(cx) {
                Poll::Ready(Ok(())) if self.eof_sent => Poll::Ready(Err(Self::after_eof())),
                Poll::Ready(Ok(())) => (ops.send)(&self.stream, cx, data).map_err(super::to_io),
                other => other.map_ok(|()| 0),
            };
            self.count(cx, polled)
        }

        /// hyper's read on the native path with nothing buffered (hyper
        /// reads every request this way): receives at most what `buf` has
        /// room for into the read buffer and copies all of it out (the
        /// cursor's own memory needs `unsafe` to receive into), so nothing
        /// stays buffered. The same steps as `poll_fill` then
        /// `consume_buffered`, without their bookkeeping.
        #[inline]
        fn poll_read_native_cursor(
            &mut self,
            ops: super::NativeOps<S>,
            cx: &mut Context<'_>,
            buf: &mut ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            match self.enter(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let room = buf.remaining().min(super::READ_CHUNK_MAX);
            if self.read_buf.len() < room {
                self.read_buf.resize(room.max(super::READ_CHUNK), 0);
            }
            let into = &mut self.read_buf[..room];
            let polled =
                match super::receive_marked(ops, &self.stream, &mut self.read_mark, cx, into) {
                    Poll::Ready(Ok(n)) => {
                        buf.put_slice(&into[..n.min(room)]);
                        Poll::Ready(Ok(()))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(super::to_io(e))),
                    Poll::Pending => Poll::Pending,
                };
            self.count(cx, polled)
        }
    }

    impl<'a, S: Stream + 'a> hyper::rt::Write for Io<'a, S> {
        #[inline]
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            match this.native {
                // hyper's one write per response: straight to the socket.
                Some(ops) if !buf.is_empty() => this.poll_write_native(ops, cx, buf),
                _ => this.poll_write_bufs(cx, &[buf]),
            }
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().poll_write_bufs(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            // The boxed path copies every slice into one send; the native
            // path sends one slice per call, so callers that can (hyper)
            // should flatten headers and body into one buffer: one
            // `sendto` per response instead of one per slice.
            self.native.is_none()
        }

        #[inline]
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush_inner(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_shutdown_inner(cx)
        }
    }
}

#[cfg(all(test, feature = "futures-io"))]
mod tests {
    use super::Io;
    use futures::StreamExt;
    use futures::io::AsyncReadExt;
    use futures::stream::FuturesUnordered;
    use std::future::pending;
    use std::io;
    use trio::stream::{AsyncResource, ReceiveStream, SendStream, Stream};

    /// A stream whose operations wait forever on something that is no
    /// trio park (a foreign `pending()`): only the adapter's cancel waiter
    /// can wake a task blocked on it.
    struct Silent;

    impl AsyncResource for Silent {
        async fn aclose(&self) -> trio::Result<()> {
            Ok(())
        }
    }
    impl SendStream for Silent {
        async fn send_all(&self, _: &[u8]) -> trio::Result<()> {
            pending().await
        }
        async fn wait_send_all_might_not_block(&self) -> trio::Result<()> {
            pending().await
        }
    }
    impl ReceiveStream for Silent {
        async fn receive_some(&self, _: &mut [u8]) -> trio::Result<usize> {
            pending().await
        }
    }
    impl Stream for Silent {
        async fn send_eof(&self) -> trio::Result<()> {
            pending().await
        }
    }

    #[trio::test(autojump)]
    async fn a_cancel_reaches_an_adapter_inside_futures_unordered() -> trio::Result<()> {
        let scope = trio::CancelScope::new();
        trio::open_nursery(async |n| {
            n.start_soon(async {
                let r = scope
                    .run(async {
                        let mut io = Io::new(Silent);
                        let mut buf = [0; 4];
                        let mut all = FuturesUnordered::new();
                        all.push(io.read(&mut buf));
                        let got: io::Result<usize> = all.next().await.expect("one read");
                        let e = crate::error::from_io(got.unwrap_err());
                        assert!(e.is_cancelled(), "{e:?}");
                        Err::<(), _>(e)
                    })
                    .await?;
                assert_eq!(r, None);
                Ok(())
            });
            trio::testing::wait_all_tasks_blocked().await?;
            scope.cancel();
            Ok(())
        })
        .await?;
        assert!(scope.cancelled_caught());
        Ok(())
    }
}
