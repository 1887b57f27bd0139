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
//! Every poll starts with a cancel check (a synchronous
//! [`trio::checkpoint_if_cancelled`]): while the task's scope is
//! cancelled, the adapter returns an `io::Error` of kind `Other` wrapping
//! trio's `Cancelled` (see [`crate::error`]; never `Interrupted`, which
//! read loops retry) and does nothing else. The operations in flight are
//! trio futures, which register the waker they are polled with and their
//! task's cancel status, so a cancel wakes them even inside foreign
//! combinators. Outside a trio run the check fails with a `Usage` error
//! (an `io::Error`), never a panic.
//!
//! The adapter is a cancel point, not a schedule point, but keeps a
//! cooperative budget: after [`BUDGET`] consecutive ready polls it returns
//! `Pending` once, after waking the waker, so a connection with data
//! always ready cannot keep its task from yielding and starve the run.
//!
//! # Native polling (not done)
//!
//! DESIGN §13 wants sockets and pipes to poll without a boxed operation
//! (try the syscall, else register the waker). That needs a poll-based
//! readiness wait in trio's reactor (`IoRegistration` registering a
//! `Waker` instead of parking), which trio does not have yet; until then
//! every stream, sockets included, takes this generic path.

use crate::error::{cancel_check, to_io};
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use trio::stream::Stream;

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
/// - Reads are received into an internal buffer (at least [`READ_CHUNK`])
///   and copied out; it is also an `AsyncBufRead`.
/// - `poll_write` accepts into a buffer (at most [`WRITE_BUFFER`]) and
///   starts a send at once if none is in flight; `poll_flush` drains it;
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
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Bytes received and not yet read through the adapter.
    pub fn buffered(&self) -> &[u8] {
        &self.read_buf[self.read_pos..self.read_filled]
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
    fn must_yield(&mut self, cx: &mut Context<'_>) -> bool {
        if self.ready_run < BUDGET {
            return false;
        }
        self.ready_run = 0;
        cx.waker().wake_by_ref();
        true
    }

    /// Counts a poll's outcome toward the budget.
    fn count<T>(&mut self, poll: Poll<T>) -> Poll<T> {
        match poll {
            Poll::Ready(_) => self.ready_run += 1,
            Poll::Pending => self.ready_run = 0,
        }
        poll
    }

    /// The start of every poll: the cancel check (trio's errors, as
    /// `io::Error`s), then the budget.
    fn enter(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(e) = cancel_check() {
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
    fn poll_fill(&mut self, cx: &mut Context<'_>, hint: usize) -> Poll<io::Result<&[u8]>> {
        match self.enter(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map_ok(|()| &[][..]),
        }
        if self.read_pos == self.read_filled {
            match self.poll_receive(cx, hint) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return self.count(Poll::Ready(Err(e))),
                Poll::Pending => return self.count(Poll::Pending),
            }
        }
        self.ready_run += 1;
        Poll::Ready(Ok(&self.read_buf[self.read_pos..self.read_filled]))
    }

    /// Starts (if needed) and polls the receive; on success the buffer
    /// holds what came (nothing at the end of stream).
    fn poll_receive(&mut self, cx: &mut Context<'_>, hint: usize) -> Poll<io::Result<()>> {
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
    /// end of stream (or for an empty `out`).
    // Only futures-io's `poll_read` takes a plain slice; built with the
    // hyper or tokio bridge alone, it is unused.
    #[cfg_attr(not(feature = "futures-io"), allow(dead_code))]
    fn poll_read_slice(&mut self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return self.enter(cx).map_ok(|()| 0);
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
    fn poll_write_bufs<B: Deref<Target = [u8]>>(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[B],
    ) -> Poll<io::Result<usize>> {
        let polled = self.poll_write_inner(cx, bufs);
        self.count(polled)
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
    fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.enter(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let polled = self.drain(cx);
        self.count(polled)
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
    fn poll_shutdown_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.enter(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let polled = self.shutdown(cx);
        self.count(polled)
    }

    fn shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if self.eof_sent {
            return Poll::Ready(Ok(()));
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
            true
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
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            mut buf: ReadBufCursor<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            if buf.remaining() == 0 {
                return this.enter(cx);
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

    impl<'a, S: Stream + 'a> hyper::rt::Write for Io<'a, S> {
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
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_flush_inner(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().poll_shutdown_inner(cx)
        }
    }
}
