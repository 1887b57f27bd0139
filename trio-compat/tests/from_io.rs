//! `FromIo`: foreign poll streams as trio streams, checked by trio's own
//! stream conformance checks, and woken in both directions even when the
//! foreign stream keeps a single waker.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use trio::ErrorKind;
use trio::socket::SocketStream;
use trio::stream::{ReceiveStream, SendStream, Stream};
use trio::testing::{check_half_closeable_stream, no_clogged_stream_maker, wait_all_tasks_blocked};
use trio_compat::{FromIo, Io, PollIo};

/// tokio's in-memory `DuplexStream` passes trio's half-closeable stream
/// checks (which include the two-way and one-way ones).
#[trio::test(autojump)]
async fn a_tokio_duplex_stream_passes_the_half_closeable_checks() -> trio::Result<()> {
    check_half_closeable_stream(
        async || {
            let (a, b) = tokio::io::duplex(64 * 1024);
            Ok((FromIo::tokio(a), FromIo::tokio(b)))
        },
        no_clogged_stream_maker(),
    )
    .await
}

/// Both adapters at once: a trio socket as futures-io (`Io`) and back as
/// a trio stream (`FromIo::futures`) passes the same checks, so `Io`'s
/// buffering, shutdown, close-on-drop and error round trips keep the
/// stream contract.
#[trio::test]
async fn a_socket_through_io_and_back_passes_the_half_closeable_checks() -> trio::Result<()> {
    check_half_closeable_stream(
        async || {
            let (a, b) = SocketStream::unix_pair()?;
            Ok((FromIo::futures(Io::new(a)), FromIo::futures(Io::new(b))))
        },
        no_clogged_stream_maker(),
    )
    .await
}

/// The same on the native path (`Io::native`), and through `FromIo`'s
/// direct polling (`Io` as a `PollIo`, which wakes per direction).
#[trio::test]
async fn a_native_socket_through_io_and_back_passes_the_half_closeable_checks() -> trio::Result<()>
{
    check_half_closeable_stream(
        async || {
            let (a, b) = SocketStream::unix_pair()?;
            Ok((FromIo::new(Io::native(a)), FromIo::new(Io::native(b))))
        },
        no_clogged_stream_maker(),
    )
    .await
}

/// A real deadlock through `FromIo` over a trio stream (two tasks, each
/// waiting for what the other will never send) is reported by the run,
/// not a hang: polled with the task's own waker, every wait is trio's.
#[test]
fn a_deadlock_through_from_io_over_a_trio_stream_is_reported() {
    let err = trio::run(async {
        let (a, b) = trio::testing::memory_stream_pair();
        let (a, b) = (FromIo::new(Io::new(a)), FromIo::new(Io::new(b)));
        trio::open_nursery(async |n| {
            n.start_soon(async {
                let mut buf = [0; 4];
                a.receive_some(&mut buf).await.map(drop)
            });
            let mut buf = [0; 4];
            b.receive_some(&mut buf).await.map(drop)
        })
        .await
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err}");
    assert!(format!("{err}").contains("FromIo::receive_some"), "{err}");
}

/// Closing a `FromIo` wakes an operation blocked in it with Closed, also
/// when it was polled with the task's own waker (then through its park).
#[trio::test(autojump)]
async fn closing_wakes_a_directly_polled_receive_with_closed() -> trio::Result<()> {
    let (_a, b) = trio::testing::memory_stream_pair();
    let b = FromIo::new(Io::new(b));
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let mut buf = [0; 4];
            let e = b.receive_some(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Closed);
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        trio::stream::AsyncResource::aclose(&b).await?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// The state of a [`OneWaker`] stream: bytes each way, and the single
/// waker it keeps for both of its directions (the last poll's).
#[derive(Default)]
struct Pipe {
    /// Bytes for the adapted end to read.
    inbound: VecDeque<u8>,
    /// Bytes the adapted end wrote, at most `CAPACITY`.
    outbound: VecDeque<u8>,
    /// The one waker: whichever direction polled last overwrote it.
    waker: Option<Waker>,
}

const CAPACITY: usize = 4;

/// A foreign stream that keeps a single waker for reads and writes, as
/// many do. The test plays its peer through the shared `Pipe`.
struct OneWaker(Rc<RefCell<Pipe>>);

impl PollIo for OneWaker {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut p = self.0.borrow_mut();
        if p.inbound.is_empty() {
            p.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(p.inbound.len());
        for (slot, byte) in buf.iter_mut().zip(p.inbound.drain(..n)) {
            *slot = byte;
        }
        Poll::Ready(Ok(n))
    }
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut p = self.0.borrow_mut();
        let room = CAPACITY - p.outbound.len();
        if room == 0 {
            p.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(room);
        p.outbound.extend(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A receive and a send both wait on a stream with one waker; the peer
/// makes both possible and wakes that one waker once: both finish.
#[trio::test]
async fn both_directions_wake_when_the_foreign_stream_keeps_one_waker() -> trio::Result<()> {
    let pipe = Rc::new(RefCell::new(Pipe::default()));
    let stream = FromIo::new(OneWaker(Rc::clone(&pipe)));
    let received = RefCell::new(Vec::new());
    let sent = Cell::new(false);
    let mut peer_got = Vec::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let mut buf = [0; 16];
            let k = stream.receive_some(&mut buf).await?;
            received.borrow_mut().extend_from_slice(&buf[..k]);
            Ok(())
        });
        n.start_soon(async {
            stream.send_all(b"12345678").await?;
            sent.set(true);
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        // Both wait: nothing to read; 4 bytes written, the rest blocked.
        assert!(received.borrow().is_empty() && !sent.get());
        let waker = {
            let mut p = pipe.borrow_mut();
            p.inbound.extend(b"hi");
            peer_got.extend(p.outbound.drain(..));
            p.waker.take().expect("the stream kept a waker")
        };
        waker.wake(); // once, as the single-waker stream would
        wait_all_tasks_blocked().await?;
        assert_eq!(*received.borrow(), b"hi");
        assert!(sent.get(), "the send was woken too");
        peer_got.extend(pipe.borrow_mut().outbound.drain(..));
        Ok(())
    })
    .await?;
    assert_eq!(peer_got, b"12345678");
    Ok(())
}

/// Send-side calls share one slot, receives another: a second one while
/// the first waits is Busy at once (and the first is unaffected).
#[trio::test]
async fn concurrent_same_direction_calls_are_busy() -> trio::Result<()> {
    let pipe = Rc::new(RefCell::new(Pipe::default()));
    let stream = FromIo::new(OneWaker(Rc::clone(&pipe)));
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let r = stream.send_all(b"more than four").await;
            assert!(r.unwrap_err().is_cancelled());
        });
        n.start_soon(async {
            let mut buf = [0; 4];
            let r = stream.receive_some(&mut buf).await;
            assert!(r.unwrap_err().is_cancelled());
        });
        wait_all_tasks_blocked().await?;
        let busy = |r: trio::Result<()>| r.unwrap_err().kind() == ErrorKind::Busy;
        assert!(busy(stream.send_all(b"x").await));
        assert!(busy(stream.wait_send_all_might_not_block().await));
        assert!(busy(stream.send_eof().await));
        let mut buf = [0; 4];
        assert!(busy(stream.receive_some(&mut buf).await.map(drop)));
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    Ok(())
}

/// A foreign transport error is Broken (the io error as its source), and
/// it sticks for that direction.
#[trio::test(autojump)]
async fn a_transport_error_is_broken_and_sticks() -> trio::Result<()> {
    struct Failing;
    impl PollIo for Failing {
        fn poll_read(&mut self, _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
        fn poll_write(&mut self, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(0))
        }
        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    let stream = FromIo::new(Failing);
    let mut buf = [0; 4];
    for _ in 0..2 {
        let e = stream.receive_some(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Broken);
        assert_eq!(
            e.downcast_ref::<io::Error>().unwrap().kind(),
            io::ErrorKind::ConnectionReset
        );
    }
    // A write of zero bytes is the transport failing too.
    let e = stream.send_all(b"x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broken);
    Ok(())
}
