//! Byte streams (Trio's `trio.abc` stream interfaces): the traits every
//! transport implements — TCP and Unix sockets, pipes, TLS, the memory
//! streams of [`testing`](crate::testing) — and the generic pieces built on
//! them ([`StapledStream`], [`BufferedReceiveStream`], [`aclose_forcefully`]).
//!
//! # The contract (DESIGN §9)
//!
//! Every method takes `&self`, so one task can send while another receives
//! on the same stream without splitting it.
//!
//! 1. **One sender and one receiver at a time.** A second task that calls a
//!    send-side method ([`send_all`](SendStream::send_all),
//!    [`wait_send_all_might_not_block`](SendStream::wait_send_all_might_not_block)
//!    and [`send_eof`](Stream::send_eof) share one slot) while another is in
//!    one, or a second concurrent [`receive_some`](ReceiveStream::receive_some),
//!    gets [`ErrorKind::Busy`](crate::ErrorKind::Busy) at once.
//! 2. **Closed, Broken.** After this side's own [`aclose`](AsyncResource::aclose)
//!    every operation fails with [`ErrorKind::Closed`](crate::ErrorKind::Closed),
//!    and closing wakes operations blocked on the stream with `Closed`. When
//!    the peer or the transport fails, operations fail with
//!    [`ErrorKind::Broken`](crate::ErrorKind::Broken), and a stream that
//!    reported `Broken` keeps reporting it (the OS error, if any, is the
//!    source).
//! 3. **`aclose` always closes**, even when it fails or is cancelled (the
//!    error then only means "not gracefully"); it is idempotent and always a
//!    checkpoint. [`aclose_forcefully`] closes without grace.
//! 4. **Checkpoints.** Every async method is a checkpoint when it succeeds.
//!    An operation that may complete without waiting runs in DESIGN §6's
//!    order: [`checkpoint_if_cancelled`](crate::checkpoint_if_cancelled),
//!    the operation, [`cancel_shielded_checkpoint`](crate::cancel_shielded_checkpoint).
//! 5. **Cancelled means no effect** for `receive_some`, `accept` and the
//!    waits: a cancelled `receive_some` consumed nothing. The documented
//!    exceptions are `send_all` (any prefix of the data may have gone:
//!    treat the stream as broken) and `aclose` (it closed, then reports the
//!    cancellation).
//! 6. **End of stream.** `receive_some` returns `0` if and only if the peer
//!    finished sending; an empty buffer is
//!    [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).
//!
//! [`testing::check_one_way_stream`](crate::testing::check_one_way_stream)
//! and its siblings check an implementation against this contract.
//!
//! # Composite operations
//!
//! A stream built on another one (TLS over TCP) may make several
//! transport operations inside one operation of its own (a TLS handshake
//! receives, sends, receives). Rule 4 asks the schedule point of the
//! operation as a whole, not of each step: taking one per step only makes
//! the task yield more often (a handshake's task was polled eight times,
//! tokio-rustls's three). So the transport operations have forms without
//! the trailing schedule point,
//! [`send_all_unscheduled`](SendStream::send_all_unscheduled) and
//! [`receive_some_unscheduled`](ReceiveStream::receive_some_unscheduled):
//! still a cancel point at their start (and while waiting), with the same
//! cancellation semantics, but a schedule point only when they wait. The
//! composite operation then follows rule 4 itself: it starts with
//! [`checkpoint_if_cancelled`](crate::checkpoint_if_cancelled), and ends
//! with [`cancel_shielded_checkpoint`](crate::cancel_shielded_checkpoint)
//! unless one of its steps already took a schedule point, which it sees as
//! the step's future returning `Pending` (every `Pending` of a task is one)
//! or as the run's count of schedule points
//! ([`checkpoint_counts`](crate::lowlevel::checkpoint_counts)) moving while
//! the step was polled: a step's schedule point passes in place, without a
//! `Pending`, when the run loop's next tick would poll only this task.
//! Their defaults are the ordinary operations, so a stream that does not
//! override them stays correct (each step is then a full checkpoint).
//!
//! # Traits and their boxed forms
//!
//! The traits return `impl Future`, so implementations write `async fn` and
//! nothing is boxed; the futures need not be `Send` (a run is
//! single-threaded). They are not object-safe; each has an object-safe
//! companion ([`DynSendStream`], [`DynReceiveStream`], [`DynStream`],
//! [`DynListener`], [`DynAsyncResource`]) implemented for every
//! implementation of the trait, whose methods return boxed futures. The
//! `dyn` companions implement the plain traits in turn, and so do boxes of
//! them, so `Box<dyn DynStream>` ([`BoxStream`]) goes wherever a
//! `S: Stream` does.
//!
//! ```
//! use trio::stream::{BoxStream, ReceiveStream, SendStream};
//! use trio::testing::memory_stream_pair;
//!
//! trio::run(async {
//!     let (a, b) = memory_stream_pair();
//!     let (a, b): (BoxStream, BoxStream) = (Box::new(a), Box::new(b));
//!     a.send_all(b"hello").await?;
//!     let mut buf = [0; 16];
//!     let n = b.receive_some(&mut buf).await?;
//!     assert_eq!(&buf[..n], b"hello");
//!     Ok(())
//! })
//! .unwrap();
//! ```

use crate::error::Result;
use crate::{CancelScope, Error};
use std::future::Future;

mod boxed;
mod buffered;
mod slot;
mod stapled;

pub use boxed::{
    BoxFuture, BoxListener, BoxReceiveStream, BoxSendStream, BoxStream, DynAsyncResource,
    DynListener, DynReceiveStream, DynSendStream, DynStream,
};
pub use buffered::{BufferedReceiveStream, ChunkTooLong};
pub use slot::{BusySlot, SlotGuard};
pub use stapled::StapledStream;

/// Something that must be closed, asynchronously (Trio's
/// `trio.abc.AsyncResource`).
///
/// [`aclose`](AsyncResource::aclose) **always** closes the resource, even
/// when it returns an error or is cancelled: an error only means the close
/// was not graceful. It is idempotent (closing again succeeds and does
/// nothing more) and always a checkpoint. After it, the resource's other
/// operations fail with [`ErrorKind::Closed`](crate::ErrorKind::Closed).
pub trait AsyncResource {
    /// Closes the resource, gracefully if it can. See the trait docs.
    #[must_use = "futures do nothing unless awaited"]
    fn aclose(&self) -> impl Future<Output = Result<()>>;
}

/// Closes `resource` without grace: runs its [`aclose`](AsyncResource::aclose)
/// in an already-cancelled scope, so a graceful shutdown (a TLS
/// `close_notify`, flushing a buffer) is skipped and the resource is closed
/// at once (Trio's `aclose_forcefully`).
///
/// Returns `Ok` when the close completed, whether or not the cancellation
/// cut something short; any other error of `aclose` is returned (the
/// resource is closed anyway). Always a checkpoint (a schedule point; the
/// cancellation it delivers is its own).
///
/// ```
/// use trio::stream::{ReceiveStream, aclose_forcefully};
/// use trio::testing::memory_stream_pair;
/// use trio::ErrorKind;
///
/// trio::run(async {
///     let (a, _b) = memory_stream_pair();
///     aclose_forcefully(&a).await?;
///     let mut buf = [0; 4];
///     assert_eq!(a.receive_some(&mut buf).await.unwrap_err().kind(), ErrorKind::Closed);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn aclose_forcefully<R: AsyncResource + ?Sized>(resource: &R) -> Result<()> {
    let scope = CancelScope::new();
    scope.cancel();
    scope.run(resource.aclose()).await.map(|_| ())
}

/// The sending half of a byte stream (Trio's `trio.abc.SendStream`).
///
/// See the [module docs](self) for the rules every implementation follows
/// (Busy, Closed, Broken, checkpoints, cancellation).
pub trait SendStream: AsyncResource {
    /// Sends all of `data`, waiting for room as needed. Returns once the
    /// data is handed to the transport (not necessarily received). Sending
    /// an empty slice is allowed and means nothing special.
    ///
    /// Cancelled or failed part-way, an unknown prefix of `data` may have
    /// been sent: treat the stream as broken (the documented exception to
    /// "cancelled means no effect").
    #[must_use = "futures do nothing unless awaited"]
    fn send_all(&self, data: &[u8]) -> impl Future<Output = Result<()>>;

    /// Waits until a [`send_all`](SendStream::send_all) *might* not block.
    /// May return early (a later `send_all` can still block), never late.
    /// Shares the send slot: concurrent with another send-side call it
    /// fails with `Busy`.
    #[must_use = "futures do nothing unless awaited"]
    fn wait_send_all_might_not_block(&self) -> impl Future<Output = Result<()>>;

    /// Low level, for a stream built on this one (TLS): [`send_all`](SendStream::send_all)
    /// without its trailing schedule point. See [Composite
    /// operations](self#composite-operations): the caller's own operation
    /// takes that schedule point, once, at its end.
    ///
    /// A cancel point at its start, as `send_all` (Cancelled: nothing was
    /// sent); a schedule point only if it waited (its future returned
    /// `Pending`). The default is `send_all` itself, which is always both;
    /// [`SocketStream`](crate::socket::SocketStream) overrides it.
    #[must_use = "futures do nothing unless awaited"]
    fn send_all_unscheduled(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        self.send_all(data)
    }
}

/// The receiving half of a byte stream (Trio's `trio.abc.ReceiveStream`).
///
/// See the [module docs](self) for the rules every implementation follows.
pub trait ReceiveStream: AsyncResource {
    /// Receives some bytes into `buf`: returns as soon as at least one byte
    /// is there, with how many were written; returns `0` if and only if the
    /// peer has finished sending (end of stream). An empty `buf` is an
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// error. Cancelled, it consumed nothing.
    #[must_use = "futures do nothing unless awaited"]
    fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>>;

    /// Low level, for a stream built on this one (TLS):
    /// [`receive_some`](ReceiveStream::receive_some) without its trailing
    /// schedule point. See [Composite operations](self#composite-operations):
    /// the caller's own operation takes that schedule point, once, at its
    /// end.
    ///
    /// A cancel point at its start and while it waits, as `receive_some`
    /// (Cancelled: it consumed nothing); a schedule point only if it waited
    /// (its future returned `Pending`). The default is `receive_some`
    /// itself, which is always both;
    /// [`SocketStream`](crate::socket::SocketStream) overrides it.
    #[must_use = "futures do nothing unless awaited"]
    fn receive_some_unscheduled(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        self.receive_some(buf)
    }
}

/// A two-way byte stream (Trio's `trio.abc.HalfCloseableStream`; there is
/// no separate `Stream` without half-close, as Trio #823 proposes).
pub trait Stream: SendStream + ReceiveStream {
    /// Half-closes: tells the peer that nothing more will be sent (it sees
    /// end of stream), while this side can still receive. Idempotent; a
    /// checkpoint; shares the send slot (`Busy` while another task sends).
    /// After it, `send_all` fails with `Closed`. A transport that cannot
    /// half-close returns an [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
    /// error.
    #[must_use = "futures do nothing unless awaited"]
    fn send_eof(&self) -> impl Future<Output = Result<()>>;
}

/// Something that accepts connections (Trio's `trio.abc.Listener`).
pub trait Listener: AsyncResource {
    /// The stream of an accepted connection.
    type Stream: Stream;

    /// Waits for and returns the next connection. `Busy` if another task is
    /// already accepting; `Closed` after [`aclose`](AsyncResource::aclose)
    /// (which wakes a blocked accept). Cancelled, it accepted nothing.
    #[must_use = "futures do nothing unless awaited"]
    fn accept(&self) -> impl Future<Output = Result<Self::Stream>>;
}

/// The error of a receive on an empty buffer.
pub(crate) fn empty_buffer() -> Error {
    Error::invalid("receive_some needs a non-empty buffer")
}

// ----- forwarding impls: references and boxes --------------------------------------

impl<T: AsyncResource + ?Sized> AsyncResource for &T {
    fn aclose(&self) -> impl Future<Output = Result<()>> {
        (**self).aclose()
    }
}

impl<T: AsyncResource + ?Sized> AsyncResource for Box<T> {
    fn aclose(&self) -> impl Future<Output = Result<()>> {
        (**self).aclose()
    }
}

impl<T: SendStream + ?Sized> SendStream for &T {
    fn send_all(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        (**self).send_all(data)
    }
    fn wait_send_all_might_not_block(&self) -> impl Future<Output = Result<()>> {
        (**self).wait_send_all_might_not_block()
    }
    fn send_all_unscheduled(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        (**self).send_all_unscheduled(data)
    }
}

impl<T: SendStream + ?Sized> SendStream for Box<T> {
    fn send_all(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        (**self).send_all(data)
    }
    fn wait_send_all_might_not_block(&self) -> impl Future<Output = Result<()>> {
        (**self).wait_send_all_might_not_block()
    }
    fn send_all_unscheduled(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        (**self).send_all_unscheduled(data)
    }
}

impl<T: ReceiveStream + ?Sized> ReceiveStream for &T {
    fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        (**self).receive_some(buf)
    }
    fn receive_some_unscheduled(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        (**self).receive_some_unscheduled(buf)
    }
}

impl<T: ReceiveStream + ?Sized> ReceiveStream for Box<T> {
    fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        (**self).receive_some(buf)
    }
    fn receive_some_unscheduled(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        (**self).receive_some_unscheduled(buf)
    }
}

impl<T: Stream + ?Sized> Stream for &T {
    fn send_eof(&self) -> impl Future<Output = Result<()>> {
        (**self).send_eof()
    }
}

impl<T: Stream + ?Sized> Stream for Box<T> {
    fn send_eof(&self) -> impl Future<Output = Result<()>> {
        (**self).send_eof()
    }
}

impl<T: Listener + ?Sized> Listener for Box<T> {
    type Stream = T::Stream;
    fn accept(&self) -> impl Future<Output = Result<Self::Stream>> {
        (**self).accept()
    }
}
