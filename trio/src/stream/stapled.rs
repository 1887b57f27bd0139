//! [`StapledStream`]: a two-way stream made of a send half and a receive
//! half (Trio's `trio.StapledStream`).
//!
//! # Design
//!
//! Sending goes to the send half, receiving to the receive half. The
//! stapled stream adds one thing of its own, a send slot shared by
//! `send_all`, `wait_send_all_might_not_block` and `send_eof` (DESIGN §9):
//! `send_eof` is "close the send half", which on its own would not notice a
//! concurrent `send_all`. Receiving needs no slot of its own: the receive
//! half's is the only one in play.
//!
//! `aclose` closes both halves, the receive half even if closing the send
//! half failed or was cancelled (each `aclose` always closes).

use super::{AsyncResource, BusySlot, ReceiveStream, SendStream, Stream};
use crate::error::Result;
use std::fmt;

/// A [`Stream`] made of a [`SendStream`] and a [`ReceiveStream`].
///
/// [`send_eof`](Stream::send_eof) closes the send half
/// ([`aclose`](AsyncResource::aclose) on it), so the peer sees end of stream
/// while this side keeps receiving.
///
/// ```
/// use trio::stream::{ReceiveStream, SendStream, StapledStream, Stream};
/// use trio::testing::memory_stream_one_way_pair;
///
/// trio::run(async {
///     let (s1, r1) = memory_stream_one_way_pair();
///     let (s2, r2) = memory_stream_one_way_pair();
///     let left = StapledStream::new(s1, r2);
///     let right = StapledStream::new(s2, r1);
///     left.send_all(b"ping").await?;
///     left.send_eof().await?; // right sees end of stream, left can still receive
///     let mut buf = [0; 8];
///     let n = right.receive_some(&mut buf).await?;
///     assert_eq!(&buf[..n], b"ping");
///     assert_eq!(right.receive_some(&mut buf).await?, 0);
///     right.send_all(b"pong").await?;
///     let n = left.receive_some(&mut buf).await?;
///     assert_eq!(&buf[..n], b"pong");
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct StapledStream<S, R> {
    /// The half that sends.
    pub send_stream: S,
    /// The half that receives.
    pub receive_stream: R,
    /// Shared by `send_all`, `wait_send_all_might_not_block`, `send_eof`.
    send_slot: BusySlot,
}

impl<S: SendStream, R: ReceiveStream> StapledStream<S, R> {
    /// Staples `send_stream` and `receive_stream` together.
    pub fn new(send_stream: S, receive_stream: R) -> Self {
        StapledStream {
            send_stream,
            receive_stream,
            send_slot: BusySlot::new("another task is already sending on this stream"),
        }
    }

    /// The two halves.
    pub fn into_inner(self) -> (S, R) {
        (self.send_stream, self.receive_stream)
    }
}

impl<S: SendStream, R: ReceiveStream> AsyncResource for StapledStream<S, R> {
    async fn aclose(&self) -> Result<()> {
        let sent = self.send_stream.aclose().await;
        let received = self.receive_stream.aclose().await;
        sent.and(received)
    }
}

impl<S: SendStream, R: ReceiveStream> SendStream for StapledStream<S, R> {
    async fn send_all(&self, data: &[u8]) -> Result<()> {
        let _g = self.send_slot.enter()?;
        self.send_stream.send_all(data).await
    }

    async fn wait_send_all_might_not_block(&self) -> Result<()> {
        let _g = self.send_slot.enter()?;
        self.send_stream.wait_send_all_might_not_block().await
    }
}

impl<S: SendStream, R: ReceiveStream> ReceiveStream for StapledStream<S, R> {
    fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        self.receive_stream.receive_some(buf)
    }
}

impl<S: SendStream, R: ReceiveStream> Stream for StapledStream<S, R> {
    async fn send_eof(&self) -> Result<()> {
        let _g = self.send_slot.enter()?;
        // Like `aclose`, it closes even when cancelled (then reports it).
        self.send_stream.aclose().await
    }
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for StapledStream<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StapledStream")
            .field("send_stream", &self.send_stream)
            .field("receive_stream", &self.receive_stream)
            .field("sending", &self.send_slot.is_busy())
            .finish()
    }
}
