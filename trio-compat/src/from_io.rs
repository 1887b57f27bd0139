//! [`FromIo`]: the reverse adapter, any poll-based `AsyncRead + AsyncWrite`
//! (futures-io's through [`FuturesIo`], tokio's through [`TokioIo`], or any
//! [`PollIo`]) as a trio [`Stream`].
//!
//! # Design
//!
//! - **Full duplex through `&self`.** The foreign stream sits in a
//!   `RefCell`, borrowed only for the length of one poll call, so one task
//!   may receive while another sends (DESIGN §9). The borrow is the one
//!   unavoidable call-out under a borrow (the foreign poll itself); nothing
//!   the foreign stream can reach leads back to this `RefCell`: the waker
//!   it gets touches only a mutex of stored wakers (next point), and its
//!   `Drop` runs after the borrow ends.
//! - **Both directions are woken.** Many foreign streams keep a single
//!   waker for reads and writes (the last one polled wins), which would
//!   strand whichever direction polled first. So the foreign stream is
//!   always polled with the adapter's own waker, which wakes the waker of
//!   *each* direction's pending operation; a spurious wake costs one
//!   `Pending` poll.
//! - **Busy.** A second concurrent receive, or a second send-side call
//!   (`send_all`, `wait_send_all_might_not_block` and `send_eof` share a
//!   slot), fails with [`ErrorKind::Busy`] at once.
//! - **Cancellation.** Each operation checks for cancellation first
//!   (DESIGN §6 order: cancel check, the operation, a shielded schedule
//!   point). While it waits on the foreign stream it also holds a trio
//!   [`Park`] that nobody reschedules: the park registers the task's
//!   cancel status, so a cancel wakes the operation, which then returns
//!   `Cancelled`. A cancelled `receive_some` consumed nothing (the
//!   foreign `poll_read` returned `Pending`); a cancelled `send_all` may
//!   have written a prefix, as trio documents for every stream.
//! - **Errors.** An error of the foreign stream is converted by
//!   [`from_io`](crate::error::from_io): a cancellation that is the
//!   task's own stays `Cancelled`; anything else is the transport failing,
//!   [`ErrorKind::Broken`] with the io error as its source, and it sticks
//!   for that direction (DESIGN §9).
//! - **Closing.** [`aclose`](AsyncResource::aclose) drops the foreign
//!   stream (its `Drop` is the close) and wakes blocked operations, which
//!   fail with `Closed`. It does not flush first: call
//!   [`send_eof`](Stream::send_eof) (which flushes and shuts the write half
//!   down) for a graceful end. [`send_eof`](Stream::send_eof) is
//!   `poll_close` / `poll_shutdown`.
//! - **`wait_send_all_might_not_block`** flushes: the poll traits have no
//!   other readiness question. It may return early (a later send can
//!   still wait), which the contract allows; so a `FromIo` has no
//!   "clogged" mode for the conformance checks.
//!
//! # Deadlocks
//!
//! trio reports a deadlock when no task can ever run again, and counts any
//! clone of a task waker held outside the runtime as a way it still could
//! (DESIGN §12). The waker shared by both directions (above) holds such
//! clones, so a task blocked in a `FromIo` over a *foreign* stream is never
//! reported: that is right, since foreign code (another thread, a tokio
//! driver) may still wake it, and trio cannot tell.
//!
//! A stream that is trio's own underneath, [`Io`](crate::Io) over a trio
//! stream (`FromIo::new(Io::new(stream))`), says so with
//! [`PollIo::wakes_per_direction`]: each direction's operation registers
//! the waker it is polled with, in trio's own tables. `FromIo` then polls
//! it with the task's own waker and keeps no clone, so every wait is a
//! trio wait, and a real deadlock through it (two tasks each receiving
//! what the other will never send) is reported instead of hanging. Closing
//! then ends a blocked operation through its park (rescheduled with
//! Closed) rather than through the shared waker.

use crate::error::from_io;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use trio::lowlevel::{Abort, Park, WaitKey, reschedule};
use trio::stream::{AsyncResource, ReceiveStream, SendStream, Stream};
use trio::{Error, ErrorKind, Result};

/// A poll-based byte stream, as [`FromIo`] needs it: the common shape of
/// futures-io's and tokio's `AsyncRead + AsyncWrite`. `FuturesIo` (feature
/// `futures-io`) and `TokioIo` (feature `tokio`) implement it; implement it
/// directly for anything else.
pub trait PollIo: Unpin {
    /// Reads into `buf` (0 only at the end of stream).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Writes some of `buf`.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Flushes what was written.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Shuts the write half down (after flushing).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Whether each direction's pending operation registers the waker it
    /// was polled with, independently of the other direction, and only in
    /// trio's own tables (a trio stream behind [`Io`](crate::Io)). Then
    /// [`FromIo`] polls it with the task's own waker, and trio's deadlock
    /// detector can see a task blocked in it (see the module docs). False
    /// (the default) for foreign streams, which may keep one waker for
    /// both directions.
    fn wakes_per_direction(&self) -> bool {
        false
    }
}

/// A trio stream behind [`Io`](crate::Io), and back: its operations wait
/// in trio, one per direction (see [`PollIo::wakes_per_direction`]).
impl<'a, S: Stream + 'a> PollIo for crate::Io<'a, S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_read_slice(cx, buf)
    }
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_bufs(cx, &[buf])
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_inner(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_shutdown_inner(cx)
    }
    fn wakes_per_direction(&self) -> bool {
        true
    }
}

/// A futures-io `AsyncRead + AsyncWrite` as a [`PollIo`]
/// (`poll_shutdown` is `poll_close`). Feature `futures-io`.
#[cfg(feature = "futures-io")]
#[cfg_attr(docsrs, doc(cfg(feature = "futures-io")))]
#[derive(Debug)]
pub struct FuturesIo<T>(pub T);

#[cfg(feature = "futures-io")]
impl<T> PollIo for FuturesIo<T>
where
    T: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
{
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// A tokio `AsyncRead + AsyncWrite` as a [`PollIo`]. Feature `tokio`.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug)]
pub struct TokioIo<T>(pub T);

#[cfg(feature = "tokio")]
impl<T> PollIo for TokioIo<T>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Which direction an operation is: indexes of the per-direction state.
const SEND: usize = 0;
const RECEIVE: usize = 1;

/// The waker the foreign stream is polled with: wakes the waker of each
/// direction's pending operation (see the module docs).
#[derive(Default)]
struct BothWakers {
    /// `[send, receive]`: the waker of the operation waiting in that
    /// direction, if any; taken when woken (it registers again when
    /// polled).
    slots: Mutex<[Option<Waker>; 2]>,
}

impl BothWakers {
    fn set(&self, dir: usize, waker: &Waker) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut slots[dir] {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    fn wake_all(&self) {
        let taken = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            [slots[0].take(), slots[1].take()]
        };
        // Outside the lock: a waker may do anything.
        for w in taken.into_iter().flatten() {
            w.wake();
        }
    }
}

impl Wake for BothWakers {
    fn wake(self: Arc<Self>) {
        self.wake_all();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_all();
    }
}

/// A poll-based stream as a trio [`Stream`].
///
/// - Full duplex: one task may receive while another sends; a second
///   concurrent receive, or a second send-side call (`send_all`,
///   `wait_send_all_might_not_block`, `send_eof`), is
///   [`ErrorKind::Busy`].
/// - The foreign stream is polled with a waker that wakes *both*
///   directions' pending operations, since many streams keep one waker.
/// - Each operation is a cancel point (checked first) and is woken by a
///   cancel while it waits; a cancelled `receive_some` consumed nothing.
/// - A foreign error is [`ErrorKind::Broken`] (the io error as source),
///   sticky per direction, unless it carries the task's own cancellation
///   (then `Cancelled`; see [`crate::error`]).
/// - `send_all` flushes (the data is handed to the transport);
///   `wait_send_all_might_not_block` flushes and may return early;
///   `send_eof` flushes, then `poll_close`/`poll_shutdown`.
/// - [`aclose`](AsyncResource::aclose) drops the foreign stream (its
///   close) without flushing, and wakes blocked operations with `Closed`;
///   use `send_eof` first for a graceful end.
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// use trio::stream::{ReceiveStream, SendStream, Stream};
/// use trio_compat::FromIo;
///
/// trio::run(async {
///     let (a, b) = tokio::io::duplex(1024);
///     let (a, b) = (FromIo::tokio(a), FromIo::tokio(b));
///     a.send_all(b"ping").await?;
///     a.send_eof().await?;
///     let mut buf = [0; 8];
///     let n = b.receive_some(&mut buf).await?;
///     assert_eq!(&buf[..n], b"ping");
///     assert_eq!(b.receive_some(&mut buf).await?, 0); // the end
///     Ok(())
/// })
/// .unwrap();
/// # }
/// ```
pub struct FromIo<T: PollIo> {
    /// The foreign stream; `None` once closed. Borrowed only inside one
    /// poll call.
    io: RefCell<Option<T>>,
    wakers: Arc<BothWakers>,
    /// `wakers` as a `Waker`, made once.
    waker: Waker,
    /// The Busy slots, `[send, receive]`: an operation is running.
    busy: [Cell<bool>; 2],
    /// The first transport error of each direction, `[send, receive]`,
    /// reported again (as Broken) by every later operation there.
    broken: [RefCell<Option<(io::ErrorKind, String)>>; 2],
    /// `send_eof` completed: sends fail with Closed.
    eof_sent: Cell<bool>,
    /// `[send, receive]`: the key of the park of the operation waiting in
    /// that direction, which `aclose` reschedules with Closed (the only
    /// way to wake an operation polled with the task's own waker).
    parked: [Cell<Option<WaitKey>>; 2],
}

#[cfg(feature = "futures-io")]
impl<T> FromIo<FuturesIo<T>>
where
    T: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin,
{
    /// Adapts a futures-io stream. Feature `futures-io`.
    pub fn futures(io: T) -> Self {
        FromIo::new(FuturesIo(io))
    }
}

#[cfg(feature = "tokio")]
impl<T> FromIo<TokioIo<T>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    /// Adapts a tokio stream (no tokio runtime is needed, unless the
    /// stream itself needs one). Feature `tokio`.
    pub fn tokio(io: T) -> Self {
        FromIo::new(TokioIo(io))
    }
}

/// Clears a `parked` cell when the wait that set it ends.
struct ClearOnDrop<'a>(&'a Cell<Option<WaitKey>>);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

/// Holds a Busy slot for one operation.
struct SlotGuard<'a>(&'a Cell<bool>);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "this stream was closed")
}

impl<T: PollIo> FromIo<T> {
    /// Adapts any [`PollIo`].
    pub fn new(io: T) -> Self {
        let wakers = Arc::new(BothWakers::default());
        FromIo {
            io: RefCell::new(Some(io)),
            waker: Waker::from(Arc::clone(&wakers)),
            wakers,
            busy: [Cell::new(false), Cell::new(false)],
            broken: [RefCell::new(None), RefCell::new(None)],
            eof_sent: Cell::new(false),
            parked: [Cell::new(None), Cell::new(None)],
        }
    }

    /// The foreign stream back (`None` once closed). Must not be called
    /// while an operation is in flight (that is a `Busy` error).
    pub fn into_inner(self) -> Option<T> {
        self.io.into_inner()
    }

    /// Takes direction `dir`'s Busy slot.
    fn enter(&self, dir: usize) -> Result<SlotGuard<'_>> {
        if self.busy[dir].replace(true) {
            let what = if dir == SEND { "sending" } else { "receiving" };
            return Err(Error::new(
                ErrorKind::Busy,
                format!("another task is already {what} on this stream"),
            ));
        }
        Ok(SlotGuard(&self.busy[dir]))
    }

    /// Closed, or direction `dir`'s sticky Broken, or fine.
    fn check(&self, dir: usize) -> Result<()> {
        if self.io.borrow().is_none() {
            return Err(closed());
        }
        if let Some((kind, msg)) = &*self.broken[dir].borrow() {
            return Err(Error::with_kind(
                ErrorKind::Broken,
                io::Error::new(*kind, msg.clone()),
            ));
        }
        Ok(())
    }

    /// Converts a foreign error (see the module docs); a transport failure
    /// becomes direction `dir`'s sticky Broken.
    fn fail(&self, dir: usize, e: io::Error) -> Error {
        let converted = from_io(e);
        if converted.is_cancelled() {
            return converted;
        }
        if converted.kind() == ErrorKind::Broken {
            return converted;
        }
        let (kind, msg) = match converted.find::<io::Error>() {
            Some(os) => (os.kind(), os.to_string()),
            None => (io::ErrorKind::Other, converted.to_string()),
        };
        self.broken[dir]
            .borrow_mut()
            .get_or_insert((kind, msg.clone()));
        Error::with_kind(ErrorKind::Broken, io::Error::new(kind, msg))
    }

    /// Polls `op` on the foreign stream until it is ready, as direction
    /// `dir`: woken by the foreign stream, by a cancel (then `Cancelled`)
    /// or by a close (then `Closed`). `Interrupted` is retried.
    async fn wait<R>(
        &self,
        dir: usize,
        label: &'static str,
        mut op: impl FnMut(&mut T, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Result<R> {
        // A park that nobody reschedules: it registers the task's cancel
        // status, so a cancel wakes this wait (and nothing else ends it).
        // A park rather than a `trio::lowlevel::CancelWaiter`, which would
        // do the same, because a park names the wait (`label`, where) in
        // the task tree and in deadlock reports.
        let mut cancel_waiter = None;
        // Cleared however the wait ends (a drop included).
        let _parked = ClearOnDrop(&self.parked[dir]);
        poll_fn(|cx| {
            loop {
                let polled = {
                    let mut io = self.io.borrow_mut();
                    let Some(io) = io.as_mut() else {
                        return Poll::Ready(Err(closed()));
                    };
                    if io.wakes_per_direction() {
                        // The task's own waker (see "Deadlocks").
                        op(io, cx)
                    } else {
                        self.wakers.set(dir, cx.waker());
                        op(io, &mut Context::from_waker(&self.waker))
                    }
                };
                match polled {
                    Poll::Ready(Ok(v)) => return Poll::Ready(Ok(v)),
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.fail(dir, e))),
                    Poll::Pending => break,
                }
            }
            let park = match &mut cancel_waiter {
                Some(park) => park,
                None => match Park::new_at(label, Location::caller(), |_, _| Abort::Succeeded) {
                    Ok(park) => {
                        self.parked[dir].set(Some(park.key()));
                        cancel_waiter.insert(park)
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                },
            };
            match Pin::new(park).poll(cx) {
                // Only a cancel, or `aclose` (with Closed), ends the park.
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => Poll::Ready(Err(Error::new(
                    ErrorKind::Other,
                    "FromIo's cancel waiter was rescheduled",
                ))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Flushes the foreign stream, as the send direction.
    async fn flush(&self) -> Result<()> {
        self.wait(SEND, "FromIo::flush", |io, cx| io.poll_flush(cx))
            .await
    }
}

impl<T: PollIo> AsyncResource for FromIo<T> {
    /// Drops the foreign stream (its close) and wakes blocked operations
    /// (they fail with Closed), then checkpoints. No flush: see the module
    /// docs.
    async fn aclose(&self) -> Result<()> {
        let taken = self.io.try_borrow_mut().ok().and_then(|mut io| io.take());
        drop(taken);
        self.wakers.wake_all();
        for parked in &self.parked {
            if let Some(key) = parked.take() {
                reschedule(key, Err(closed()));
            }
        }
        trio::checkpoint().await
    }
}

impl<T: PollIo> SendStream for FromIo<T> {
    async fn send_all(&self, data: &[u8]) -> Result<()> {
        let _slot = self.enter(SEND)?;
        self.check(SEND)?;
        if self.eof_sent.get() {
            return Err(Error::new(ErrorKind::Closed, "cannot send after send_eof"));
        }
        if data.is_empty() {
            return trio::checkpoint().await;
        }
        trio::checkpoint_if_cancelled().await?;
        let mut sent = 0;
        while sent < data.len() {
            let rest = &data[sent..];
            let n = self
                .wait(SEND, "FromIo::send_all", |io, cx| io.poll_write(cx, rest))
                .await?;
            if n == 0 {
                return Err(self.fail(SEND, io::Error::from(io::ErrorKind::WriteZero)));
            }
            sent += n;
        }
        // "Handed to the transport": through any buffering of the stream.
        self.flush().await?;
        trio::cancel_shielded_checkpoint().await
    }

    async fn wait_send_all_might_not_block(&self) -> Result<()> {
        let _slot = self.enter(SEND)?;
        self.check(SEND)?;
        trio::checkpoint_if_cancelled().await?;
        if !self.eof_sent.get() {
            self.flush().await?;
        }
        trio::cancel_shielded_checkpoint().await
    }
}

impl<T: PollIo> ReceiveStream for FromIo<T> {
    async fn receive_some(&self, buf: &mut [u8]) -> Result<usize> {
        let _slot = self.enter(RECEIVE)?;
        self.check(RECEIVE)?;
        trio::checkpoint_if_cancelled().await?;
        if buf.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "receive_some needs a non-empty buffer",
            ));
        }
        let n = self
            .wait(RECEIVE, "FromIo::receive_some", |io, cx| {
                io.poll_read(cx, buf)
            })
            .await?;
        trio::cancel_shielded_checkpoint().await?;
        Ok(n.min(buf.len()))
    }
}

impl<T: PollIo> Stream for FromIo<T> {
    /// Flushes, then `poll_shutdown` / `poll_close`; idempotent.
    async fn send_eof(&self) -> Result<()> {
        let _slot = self.enter(SEND)?;
        self.check(SEND)?;
        trio::checkpoint_if_cancelled().await?;
        if !self.eof_sent.get() {
            self.flush().await?;
            self.wait(SEND, "FromIo::send_eof", |io, cx| io.poll_shutdown(cx))
                .await?;
            self.eof_sent.set(true);
        }
        trio::cancel_shielded_checkpoint().await
    }
}

impl<T: PollIo + fmt::Debug> fmt::Debug for FromIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("FromIo");
        match self.io.try_borrow() {
            Ok(io) => d.field("io", &*io),
            Err(_) => d.field("io", &"<being polled>"),
        };
        d.field("sending", &self.busy[SEND].get())
            .field("receiving", &self.busy[RECEIVE].get())
            .field("eof_sent", &self.eof_sent.get())
            .finish()
    }
}
