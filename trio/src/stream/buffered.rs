//! [`BufferedReceiveStream`]: exact-size, delimited and to-the-end reads on
//! top of any [`ReceiveStream`] (Trio #796).
//!
//! # Design
//!
//! The helpers read from the inner stream into a buffer owned by the
//! wrapper, and take their result out of that buffer only when they
//! succeed. Whatever they read before failing or being cancelled stays
//! buffered, and the next call (or [`receive_some`](ReceiveStream::receive_some)
//! on the wrapper) sees it first.
//!
//! # Invariants
//!
//! - **Cancelled means nothing lost.** Each read of the inner stream is its
//!   `receive_some`, which consumed nothing when cancelled; every byte it
//!   did return is in the buffer before the helper can be interrupted again.
//! - No borrow of the buffer is held across an `await`: other `&self`
//!   methods (`buffered_len`) stay callable while a helper waits.
//! - One receiver at a time: every receiving method takes the wrapper's
//!   receive slot (`Busy` otherwise), so two helpers never interleave.
//! - **Closed means closed.** [`aclose`](AsyncResource::aclose) on the
//!   wrapper marks it closed and drops the buffer before closing the inner
//!   stream; every receiving method checks the mark right after taking the
//!   slot, so after its own close the wrapper fails with `Closed` even
//!   when it held bytes (stream contract, rule 2), and a helper that was
//!   waiting when the close came fails with `Closed` (the inner stream
//!   wakes it so).
//! - Checkpoints follow DESIGN §6: a helper that needs no read of the inner
//!   stream still does `checkpoint_if_cancelled` first and a
//!   `cancel_shielded_checkpoint` before it takes its result.

use super::{AsyncResource, BusySlot, ReceiveStream, empty_buffer};
use crate::error::{Error, ErrorKind, Result};
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled};
use std::cell::{Cell, RefCell};
use std::fmt;

/// How much one read of the inner stream asks for.
const READ_SIZE: usize = 16 * 1024;

/// The error of a delimited or to-the-end read whose result would be longer
/// than its `max_size`. It comes as an [`Error`] of kind
/// [`ErrorKind::Other`]; find it with [`Error::downcast_ref`]. The bytes
/// stay buffered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkTooLong {
    /// The limit that was passed.
    pub max_size: usize,
}

impl fmt::Display for ChunkTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no complete chunk within the first {} bytes",
            self.max_size
        )
    }
}

impl std::error::Error for ChunkTooLong {}

/// A [`ReceiveStream`] with a read buffer and helpers to receive exactly
/// `n` bytes, a line, a chunk up to a delimiter, or everything up to end of
/// stream. It is a `ReceiveStream` itself: its `receive_some` returns
/// buffered bytes first.
///
/// A cancelled helper loses nothing: the bytes it had already read stay
/// buffered for the next call.
///
/// ```
/// use trio::stream::{BufferedReceiveStream, SendStream};
/// use trio::testing::memory_stream_one_way_pair;
///
/// trio::run(async {
///     let (tx, rx) = memory_stream_one_way_pair();
///     let rx = BufferedReceiveStream::new(rx);
///     tx.send_all(b"HELO\r\nhello, world\nrest").await?;
///     trio::stream::AsyncResource::aclose(&tx).await?;
///     assert_eq!(rx.receive_until(b"\r\n", 100).await?, b"HELO\r\n");
///     assert_eq!(rx.receive_exactly(5).await?, b"hello");
///     assert_eq!(rx.receive_line(100).await?, b", world\n");
///     assert_eq!(rx.receive_to_end(100).await?, b"rest");
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct BufferedReceiveStream<R> {
    inner: R,
    /// Bytes read from `inner` and not yet returned, in order.
    buffer: RefCell<Vec<u8>>,
    /// Reused space for reads of `inner` (taken out while a read is in
    /// flight, so never borrowed across an `await`).
    scratch: Cell<Vec<u8>>,
    slot: BusySlot,
    /// Set by this wrapper's own `aclose`.
    closed: Cell<bool>,
}

impl<R: ReceiveStream> BufferedReceiveStream<R> {
    /// Wraps `inner` with an empty buffer.
    pub fn new(inner: R) -> Self {
        BufferedReceiveStream {
            inner,
            buffer: RefCell::new(Vec::new()),
            scratch: Cell::new(Vec::new()),
            slot: BusySlot::new("another task is already receiving on this stream"),
            closed: Cell::new(false),
        }
    }

    /// The inner stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// How many bytes are buffered.
    pub fn buffered_len(&self) -> usize {
        self.buffer.borrow().len()
    }

    /// The inner stream and the bytes read from it but not yet returned.
    pub fn into_inner(self) -> (R, Vec<u8>) {
        (self.inner, self.buffer.into_inner())
    }

    /// Closed after this wrapper's own `aclose`.
    fn check_open(&self) -> Result<()> {
        if self.closed.get() {
            return Err(Error::new(ErrorKind::Closed, "this stream was closed"));
        }
        Ok(())
    }

    /// Reads once from the inner stream into the buffer: how many bytes
    /// came (0 at end of stream). Cancelled, it read nothing.
    async fn fill(&self) -> Result<usize> {
        let mut scratch = self.scratch.take();
        scratch.resize(READ_SIZE, 0);
        let r = self.inner.receive_some(&mut scratch).await;
        // Closed while the read finished (at its schedule point): the bytes
        // go the way of the buffer.
        if let Ok(n) = r
            && !self.closed.get()
        {
            self.buffer.borrow_mut().extend_from_slice(&scratch[..n]);
        }
        self.scratch.set(scratch);
        self.check_open()?;
        r
    }

    /// Takes the first `n` buffered bytes.
    fn take(&self, n: usize) -> Vec<u8> {
        self.buffer.borrow_mut().drain(..n).collect()
    }

    /// The schedule point of a helper that did not read (§6 order). A
    /// close during it emptied the buffer: Closed.
    async fn finish(&self, read: bool) -> Result<()> {
        if !read {
            cancel_shielded_checkpoint().await?;
        }
        self.check_open()
    }

    /// Receives exactly `n` bytes. If the stream ends first, fails with
    /// [`ErrorKind::Broken`] and leaves what came buffered.
    pub async fn receive_exactly(&self, n: usize) -> Result<Vec<u8>> {
        let _g = self.slot.enter()?;
        self.check_open()?;
        checkpoint_if_cancelled().await?;
        let mut read = false;
        while self.buffered_len() < n {
            read = true;
            if self.fill().await? == 0 {
                return Err(Error::new(
                    ErrorKind::Broken,
                    format!(
                        "the stream ended after {} of the {n} bytes expected",
                        self.buffered_len()
                    ),
                ));
            }
        }
        self.finish(read).await?;
        Ok(self.take(n))
    }

    /// Receives up to and including the first occurrence of `delimiter`.
    /// Fails with [`ChunkTooLong`] if the chunk, delimiter included, would
    /// be longer than `max_size` (the bytes stay buffered). At end of
    /// stream returns what is left without a delimiter (empty if nothing),
    /// as std's `read_until` does. An empty delimiter is
    /// [`ErrorKind::InvalidArgument`].
    pub async fn receive_until(&self, delimiter: &[u8], max_size: usize) -> Result<Vec<u8>> {
        if delimiter.is_empty() {
            return Err(Error::invalid("the delimiter must not be empty"));
        }
        let _g = self.slot.enter()?;
        self.check_open()?;
        checkpoint_if_cancelled().await?;
        let mut read = false;
        // Where the search resumes: earlier positions cannot start a match.
        let mut searched = 0;
        loop {
            let found = {
                let buf = self.buffer.borrow();
                let window = &buf[..buf.len().min(max_size)];
                let found = window[searched.min(window.len())..]
                    .windows(delimiter.len())
                    .position(|w| w == delimiter)
                    .map(|i| searched + i + delimiter.len());
                if found.is_none() {
                    if buf.len() >= max_size {
                        return Err(ChunkTooLong { max_size }.into());
                    }
                    searched = (buf.len() + 1).saturating_sub(delimiter.len());
                }
                found
            };
            if let Some(end) = found {
                self.finish(read).await?;
                return Ok(self.take(end));
            }
            read = true;
            if self.fill().await? == 0 {
                let len = self.buffered_len();
                return Ok(self.take(len));
            }
        }
    }

    /// Receives a line: [`receive_until`](Self::receive_until) with `b"\n"`
    /// (the newline is included).
    pub async fn receive_line(&self, max_size: usize) -> Result<Vec<u8>> {
        self.receive_until(b"\n", max_size).await
    }

    /// Receives everything up to end of stream. Fails with [`ChunkTooLong`]
    /// once more than `max_size` bytes came (they stay buffered).
    pub async fn receive_to_end(&self, max_size: usize) -> Result<Vec<u8>> {
        let _g = self.slot.enter()?;
        self.check_open()?;
        checkpoint_if_cancelled().await?;
        loop {
            if self.buffered_len() > max_size {
                return Err(ChunkTooLong { max_size }.into());
            }
            if self.fill().await? == 0 {
                let len = self.buffered_len();
                return Ok(self.take(len));
            }
        }
    }
}

impl<R: ReceiveStream> ReceiveStream for BufferedReceiveStream<R> {
    async fn receive_some(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Err(empty_buffer());
        }
        let _g = self.slot.enter()?;
        self.check_open()?;
        if self.buffered_len() == 0 {
            return self.inner.receive_some(buf).await;
        }
        checkpoint_if_cancelled().await?;
        cancel_shielded_checkpoint().await?;
        self.check_open()?;
        let mut b = self.buffer.borrow_mut();
        let n = b.len().min(buf.len());
        buf[..n].copy_from_slice(&b[..n]);
        b.drain(..n);
        Ok(n)
    }
}

impl<R: ReceiveStream> AsyncResource for BufferedReceiveStream<R> {
    /// Drops the buffered bytes and closes the inner stream (see the
    /// module docs: every later receive fails with `Closed`).
    fn aclose(&self) -> impl Future<Output = Result<()>> {
        self.closed.set(true);
        // Not borrowed elsewhere: no borrow is held across an await.
        self.buffer.borrow_mut().clear();
        self.inner.aclose()
    }
}

impl<R: fmt::Debug> fmt::Debug for BufferedReceiveStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferedReceiveStream")
            .field("inner", &self.inner)
            .field("buffered", &self.buffer.borrow().len())
            .field("receiving", &self.slot.is_busy())
            .field("closed", &self.closed.get())
            .finish()
    }
}
