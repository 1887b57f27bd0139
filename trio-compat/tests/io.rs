//! `Io`: trio streams driven by real foreign code (tokio-util's `Framed`,
//! `futures::io::copy`, hyper's `ReadBuf`), the cooperative budget, and
//! starvation. The socket tests run on both of `Io`'s paths: the boxed
//! one (`Io::new`) and the native one (`Io::native`).

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::{SinkExt, StreamExt};
use std::cell::Cell;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use tokio_util::codec::{Framed, LinesCodec};
use trio::socket::SocketStream;
use trio::stream::{AsyncResource, ReceiveStream, SendStream, Stream};
use trio::testing::memory_stream_pair;
use trio_compat::{BUDGET, Io};

/// A way to adapt a socket: one of `Io`'s two paths.
type Make = fn(SocketStream) -> Io<'static, SocketStream>;

/// Both paths over a socket, named for the assertion messages.
const PATHS: [(&str, Make); 2] = [("boxed", Io::new), ("native", Io::native)];

/// tokio-util's `Framed` with `LinesCodec` over a trio socket pair, both
/// ways; closing the sink (`poll_shutdown`, i.e. `send_eof`) ends the
/// peer's stream of lines.
#[trio::test]
async fn framed_lines_over_a_trio_socket_pair() -> trio::Result<()> {
    for (_, make) in PATHS {
        framed_lines(make).await?;
    }
    Ok(())
}

async fn framed_lines(make: Make) -> trio::Result<()> {
    let (a, b) = SocketStream::unix_pair()?;
    let mut a = Framed::new(make(a), LinesCodec::new());
    let mut b = Framed::new(make(b), LinesCodec::new());
    trio::open_nursery(async |n| {
        n.start_soon(async {
            for line in ["one", "two", "three"] {
                a.send(line).await.map_err(trio::Error::from)?;
            }
            SinkExt::<&str>::close(&mut a)
                .await
                .map_err(trio::Error::from)?;
            // The other direction still works after our half-close.
            let reply = a
                .next()
                .await
                .expect("a reply")
                .map_err(trio::Error::from)?;
            assert_eq!(reply, "got 3 lines");
            assert!(a.next().await.is_none());
            Ok(())
        });
        n.start_soon(async {
            let mut lines = Vec::new();
            while let Some(line) = b.next().await {
                lines.push(line.map_err(trio::Error::from)?);
            }
            assert_eq!(lines, ["one", "two", "three"]);
            b.send(format!("got {} lines", lines.len()))
                .await
                .map_err(trio::Error::from)?;
            SinkExt::<String>::close(&mut b)
                .await
                .map_err(trio::Error::from)?;
            Ok(())
        });
        Ok(())
    })
    .await?;
    Ok(())
}

/// Deterministic bytes that are not periodic at any small stride.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `futures::io::copy` from a memory reader into a trio socket, and from
/// the peer socket into a `Vec`: 1 MiB arrives intact, and `close` ends it.
#[trio::test]
async fn futures_io_copy_between_a_trio_socket_and_memory() -> trio::Result<()> {
    for (path, make) in PATHS {
        copy_through_a_socket(make)
            .await
            .map_err(|e| trio::Error::new(e.kind(), format!("{path}: {e}")))?;
    }
    Ok(())
}

async fn copy_through_a_socket(make: Make) -> trio::Result<()> {
    let data = pattern(1 << 20);
    let (a, b) = SocketStream::unix_pair()?;
    let (mut a, mut b) = (make(a), make(b));
    let mut received = Vec::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let mut source = futures::io::Cursor::new(&data);
            let sent = futures::io::copy(&mut source, &mut a).await?;
            assert_eq!(sent, data.len() as u64);
            a.close().await?;
            Ok(())
        });
        n.start_soon(async {
            let got = futures::io::copy(&mut b, &mut received).await?;
            assert_eq!(got, data.len() as u64);
            Ok(())
        });
        Ok(())
    })
    .await?;
    assert!(received == data, "the copied bytes differ");
    Ok(())
}

/// Byte-at-a-time reads are served from the adapter's buffer, and a
/// reader that reads less than arrived loses nothing.
#[trio::test(autojump)]
async fn small_reads_lose_nothing() -> trio::Result<()> {
    let (a, b) = memory_stream_pair();
    let mut b = Io::new(b);
    a.send_all(b"hello world").await?;
    let mut one = [0; 1];
    b.read_exact(&mut one).await?;
    assert_eq!(&one, b"h");
    assert_eq!(b.buffered(), b"ello world");
    let mut rest = [0; 10];
    b.read_exact(&mut rest).await?;
    assert_eq!(&rest, b"ello world");
    Ok(())
}

/// Writes leave without a flush (a send starts as soon as none is in
/// flight); `close` is `send_eof`, and later writes fail with trio's
/// Closed inside the io error.
#[trio::test(autojump)]
async fn writes_leave_without_a_flush_and_close_is_send_eof() -> trio::Result<()> {
    let (a, b) = memory_stream_pair();
    let mut a = Io::new(a);
    let n = a.write(b"unflushed").await?;
    assert_eq!(n, 9);
    let mut buf = [0; 16];
    let got = b.receive_some(&mut buf).await?;
    assert_eq!(&buf[..got], b"unflushed");
    a.close().await?;
    assert_eq!(b.receive_some(&mut buf).await?, 0);
    let err = a.write(b"x").await.unwrap_err();
    let back = trio_compat::error::from_io(err);
    assert_eq!(back.kind(), trio::ErrorKind::Closed);
    Ok(())
}

/// A stream with data always ready, that never waits or yields: the
/// stand-in for a socket with a full receive queue polled natively.
#[derive(Debug)]
struct AlwaysReady;

impl AsyncResource for AlwaysReady {
    async fn aclose(&self) -> trio::Result<()> {
        Ok(())
    }
}
impl SendStream for AlwaysReady {
    async fn send_all(&self, _data: &[u8]) -> trio::Result<()> {
        Ok(())
    }
    async fn wait_send_all_might_not_block(&self) -> trio::Result<()> {
        Ok(())
    }
}
impl ReceiveStream for AlwaysReady {
    async fn receive_some(&self, buf: &mut [u8]) -> trio::Result<usize> {
        buf.fill(b'x');
        Ok(buf.len())
    }
}
impl Stream for AlwaysReady {
    async fn send_eof(&self) -> trio::Result<()> {
        Ok(())
    }
}

/// Exactly `BUDGET` ready polls in a row, then one `Pending` (with the
/// waker woken, or the task would never run again), then again.
#[trio::test]
async fn the_budget_yields_after_exactly_budget_ready_polls() -> trio::Result<()> {
    let mut io = Io::new(AlwaysReady);
    for _ in 0..3 {
        let mut readies = 0;
        poll_fn(|cx| {
            let mut buf = [0; 1];
            loop {
                match futures::io::AsyncRead::poll_read(Pin::new(&mut io), cx, &mut buf) {
                    Poll::Ready(Ok(1)) => readies += 1,
                    Poll::Ready(other) => panic!("unexpected read: {other:?}"),
                    Poll::Pending => return Poll::Ready(()),
                }
            }
        })
        .await;
        assert_eq!(readies, BUDGET);
    }
    // Writes count the same way.
    let mut writes = 0;
    poll_fn(|cx| {
        loop {
            match futures::io::AsyncWrite::poll_write(Pin::new(&mut io), cx, b"y") {
                Poll::Ready(Ok(1)) => writes += 1,
                Poll::Ready(other) => panic!("unexpected write: {other:?}"),
                Poll::Pending => return Poll::Ready(()),
            }
        }
    })
    .await;
    assert_eq!(writes, BUDGET);
    Ok(())
}

/// A busy adapted connection (data always ready, never a wait) does not
/// keep another task's timer from firing: the budget makes the reading
/// task yield. On the real clock (autojump never jumps while a task is
/// runnable); the loop is bounded so that a starving run fails instead of
/// hanging, and nothing is timed.
#[trio::test]
async fn a_busy_connection_does_not_starve_a_timer() -> trio::Result<()> {
    let fired = Cell::new(false);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            trio::sleep(0.01).await?;
            fired.set(true);
            Ok(())
        });
        let mut io = Io::new(AlwaysReady);
        let mut buf = [0; 64];
        let mut reads: u64 = 0;
        while !fired.get() {
            assert_eq!(io.read(&mut buf).await?, 64);
            reads += 1;
            assert!(
                reads < 20_000_000,
                "the timer never fired: the busy task starved the run"
            );
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// hyper's `rt::Read` copies into its `ReadBufCursor` with `put_slice`,
/// never past its room; `rt::Write` sends.
#[trio::test(autojump)]
async fn hyper_read_and_write() -> trio::Result<()> {
    use hyper::rt::{Read, ReadBuf, Write};
    let (a, b) = memory_stream_pair();
    let (mut a, mut b) = (Io::new(a), Io::new(b));
    poll_fn(|cx| Pin::new(&mut a).poll_write(cx, b"hyper!")).await?;
    poll_fn(|cx| Pin::new(&mut a).poll_flush(cx)).await?;
    let mut storage = [0u8; 4];
    let mut rb = ReadBuf::new(&mut storage);
    poll_fn(|cx| Pin::new(&mut b).poll_read(cx, rb.unfilled())).await?;
    assert_eq!(rb.filled(), b"hype");
    let mut storage = [0u8; 4];
    let mut rb = ReadBuf::new(&mut storage);
    poll_fn(|cx| Pin::new(&mut b).poll_read(cx, rb.unfilled())).await?;
    assert_eq!(rb.filled(), b"r!");
    poll_fn(|cx| Pin::new(&mut a).poll_shutdown(cx)).await?;
    let mut storage = [0u8; 4];
    let mut rb = ReadBuf::new(&mut storage);
    poll_fn(|cx| Pin::new(&mut b).poll_read(cx, rb.unfilled())).await?;
    assert!(rb.filled().is_empty(), "the end of stream");
    Ok(())
}

/// tokio's `AsyncRead`/`AsyncWrite` through tokio's own helpers.
#[trio::test(autojump)]
async fn tokio_read_and_write() -> trio::Result<()> {
    use tokio::io::{AsyncReadExt as TokioRead, AsyncWriteExt as TokioWrite};
    let (a, b) = memory_stream_pair();
    let (mut a, mut b) = (Io::new(a), Io::new(b));
    TokioWrite::write_all(&mut a, b"tokio").await?;
    TokioWrite::shutdown(&mut a).await?;
    let mut got = String::new();
    TokioRead::read_to_string(&mut b, &mut got).await?;
    assert_eq!(got, "tokio");
    Ok(())
}

/// A borrowed stream: `Io::new(&stream)`, and the owner keeps using it.
#[trio::test(autojump)]
async fn an_adapter_may_borrow_its_stream() -> trio::Result<()> {
    let (a, b) = memory_stream_pair();
    {
        let mut io = Io::new(&a);
        io.write_all(b"borrowed").await?;
        io.flush().await?;
    }
    a.send_all(b"!").await?;
    let mut buf = [0; 16];
    let mut got = Vec::new();
    while got.len() < 9 {
        let n = b.receive_some(&mut buf).await?;
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"borrowed!");
    Ok(())
}

/// hyper 1.x itself over `Io`: an HTTP/1 client connection and a server
/// connection on a trio socket pair, each driven in a trio task (no
/// executor, no `Send`, no `'static`). Dropping the client's `SendRequest`
/// ends both connections.
#[trio::test]
async fn hyper_http1_exchange_over_a_trio_socket_pair() -> trio::Result<()> {
    for (_, make) in PATHS {
        hyper_http1_exchange(make).await?;
    }
    Ok(())
}

async fn hyper_http1_exchange(make: Make) -> trio::Result<()> {
    use hyper::body::{Body, Incoming};
    use hyper::{Request, Response};
    let (client, server) = SocketStream::unix_pair()?;
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let reply = format!("hello {}", req.uri().path());
                Ok::<_, std::convert::Infallible>(Response::new(reply))
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(make(server), service)
                .await?;
            Ok(())
        });
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, String>(make(client)).await?;
        n.start_soon(async move {
            connection.await?;
            Ok(())
        });
        let request = Request::builder()
            .uri("/trio")
            .body(String::new())
            .map_err(trio::Error::from)?;
        let response = sender.send_request(request).await?;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut got = Vec::new();
        while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            if let Ok(data) = frame?.into_data() {
                got.extend_from_slice(&data);
            }
        }
        assert_eq!(got, b"hello /trio");
        drop(sender);
        Ok(())
    })
    .await?;
    Ok(())
}

/// The native path's exact budget: over a socket with data queued, one
/// byte per read, `BUDGET` ready polls in a row, then one `Pending` (the
/// waker woken), then again; writes count the same way.
#[trio::test]
async fn the_native_path_keeps_the_budget() -> trio::Result<()> {
    let (a, b) = SocketStream::unix_pair()?;
    a.send_all(&[7; 4 * BUDGET as usize]).await?;
    let mut io = Io::native(b);
    assert!(io.is_native());
    for _ in 0..3 {
        let mut readies = 0;
        poll_fn(|cx| {
            let mut buf = [0; 1];
            loop {
                match futures::io::AsyncRead::poll_read(Pin::new(&mut io), cx, &mut buf) {
                    Poll::Ready(Ok(1)) => readies += 1,
                    Poll::Ready(other) => panic!("unexpected read: {other:?}"),
                    Poll::Pending => return Poll::Ready(()),
                }
            }
        })
        .await;
        assert_eq!(readies, BUDGET);
    }
    let mut writes = 0;
    poll_fn(|cx| {
        loop {
            match futures::io::AsyncWrite::poll_write(Pin::new(&mut io), cx, b"y") {
                Poll::Ready(Ok(1)) => writes += 1,
                Poll::Ready(other) => panic!("unexpected write: {other:?}"),
                Poll::Pending => return Poll::Ready(()),
            }
        }
    })
    .await;
    assert_eq!(writes, BUDGET);
    Ok(())
}

/// hyper's and tokio's traits on the native path, over a socket pair:
/// hyper's reads receive at most the cursor's room through the adapter's
/// buffer (`put_slice`; the rest stays in the socket, nothing is left
/// buffered), tokio's straight into its `ReadBuf`; shutdown is
/// `send_eof`, read as the end of stream.
#[trio::test]
async fn hyper_and_tokio_traits_on_the_native_path() -> trio::Result<()> {
    use hyper::rt::{Read, ReadBuf, Write};
    use tokio::io::{AsyncReadExt as TokioRead, AsyncWriteExt as TokioWrite};
    let (a, b) = SocketStream::unix_pair()?;
    let (mut a, mut b) = (Io::native(a), Io::native(b));
    poll_fn(|cx| Write::poll_write(Pin::new(&mut a), cx, b"hyper!")).await?;
    poll_fn(|cx| Write::poll_flush(Pin::new(&mut a), cx)).await?;
    let mut storage = [0u8; 4];
    let mut rb = ReadBuf::new(&mut storage);
    poll_fn(|cx| Read::poll_read(Pin::new(&mut b), cx, rb.unfilled())).await?;
    assert_eq!(rb.filled(), b"hype");
    assert_eq!(b.buffered(), b"");
    let mut storage = [0u8; 4];
    let mut rb = ReadBuf::new(&mut storage);
    poll_fn(|cx| Read::poll_read(Pin::new(&mut b), cx, rb.unfilled())).await?;
    assert_eq!(rb.filled(), b"r!");
    TokioWrite::write_all(&mut a, b"tokio").await?;
    TokioWrite::shutdown(&mut a).await?;
    let mut got = String::new();
    TokioRead::read_to_string(&mut b, &mut got).await?;
    assert_eq!(got, "tokio");
    // After `send_eof`, writes fail with trio's Closed inside.
    let err = TokioWrite::write(&mut a, b"x").await.unwrap_err();
    assert_eq!(
        trio_compat::error::from_io(err).kind(),
        trio::ErrorKind::Closed
    );
    // hyper's own write path too.
    let err = poll_fn(|cx| Write::poll_write(Pin::new(&mut a), cx, b"x"))
        .await
        .unwrap_err();
    assert_eq!(
        trio_compat::error::from_io(err).kind(),
        trio::ErrorKind::Closed
    );
    Ok(())
}

/// hyper's traits on the native path (their own fast paths) keep the
/// budget exactly (`BUDGET` ready polls in a row, then one `Pending`,
/// reads and writes alike) and the cancel check: inside a cancelled scope
/// a read and a write fail with Cancelled inside and do nothing.
#[trio::test]
async fn hyper_traits_on_the_native_path_keep_the_budget_and_the_cancel_check() -> trio::Result<()>
{
    use hyper::rt::{Read, ReadBuf, Write};
    let (a, b) = SocketStream::unix_pair()?;
    a.send_all(&[7; 4 * BUDGET as usize]).await?;
    let mut io = Io::native(b);
    for _ in 0..2 {
        let mut readies = 0;
        poll_fn(|cx| {
            loop {
                let mut storage = [0u8; 1];
                let mut rb = ReadBuf::new(&mut storage);
                match Read::poll_read(Pin::new(&mut io), cx, rb.unfilled()) {
                    Poll::Ready(Ok(())) => {
                        assert_eq!(rb.filled(), [7]);
                        readies += 1;
                    }
                    Poll::Ready(Err(e)) => panic!("unexpected read error: {e}"),
                    Poll::Pending => return Poll::Ready(()),
                }
            }
        })
        .await;
        assert_eq!(readies, BUDGET);
    }
    let mut writes = 0;
    poll_fn(|cx| {
        loop {
            match Write::poll_write(Pin::new(&mut io), cx, b"y") {
                Poll::Ready(Ok(1)) => writes += 1,
                Poll::Ready(other) => panic!("unexpected write: {other:?}"),
                Poll::Pending => return Poll::Ready(()),
            }
        }
    })
    .await;
    assert_eq!(writes, BUDGET);
    let scope = trio::CancelScope::new();
    scope.cancel();
    scope
        .run(async {
            let mut storage = [0u8; 1];
            let mut rb = ReadBuf::new(&mut storage);
            let e = poll_fn(|cx| Read::poll_read(Pin::new(&mut io), cx, rb.unfilled()))
                .await
                .unwrap_err();
            assert!(trio_compat::error::from_io(e).is_cancelled());
            assert!(rb.filled().is_empty());
            let e = poll_fn(|cx| Write::poll_write(Pin::new(&mut io), cx, b"z"))
                .await
                .unwrap_err();
            assert!(trio_compat::error::from_io(e).is_cancelled());
            Ok(())
        })
        .await?;
    // Nothing was read or written there: the next byte is still a 7, and
    // the peer got exactly the budget's worth of "y".
    let mut storage = [0u8; 1];
    let mut rb = ReadBuf::new(&mut storage);
    poll_fn(|cx| Read::poll_read(Pin::new(&mut io), cx, rb.unfilled())).await?;
    assert_eq!(rb.filled(), [7]);
    drop(io);
    let mut got = vec![0; 2 * BUDGET as usize];
    let n = trio::stream::ReceiveStream::receive_some(&a, &mut got).await?;
    assert_eq!(&got[..n], vec![b'y'; BUDGET as usize]);
    Ok(())
}

/// A child's stdin and stdout stapled together, on the native path: `cat`
/// echoes what we write, and closing (stdin's `send_eof`) ends its output.
#[trio::test]
async fn a_process_pipe_pair_on_the_native_path() -> trio::Result<()> {
    use trio::process::{ProcessStdin, ProcessStdout};
    use trio::stream::StapledStream;
    let mut child = std::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdin = ProcessStdin::from_std(child.stdin.take().expect("piped"))?;
    let stdout = ProcessStdout::from_std(child.stdout.take().expect("piped"))?;
    let pipes = StapledStream::new(stdin, stdout);
    // One adapter per task, both borrowing the pipes.
    let (mut reader, mut writer) = (Io::native(&pipes), Io::native(&pipes));
    let data = pattern(256 * 1024);
    let mut got = Vec::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            writer.write_all(&data).await?;
            writer.close().await?; // closes cat's stdin
            Ok(())
        });
        reader.read_to_end(&mut got).await?;
        Ok(())
    })
    .await?;
    assert!(got == data, "cat's output differs");
    let status = trio::to_thread::run_sync(move || child.wait()).await??;
    assert!(status.success());
    Ok(())
}

/// hyper's reads on both paths, with bytes put back by `unread` and at the
/// end of the stream: the unread bytes come first (never more than the
/// cursor's room, the rest kept), then the socket's, then the end of
/// stream (an empty read), every time it is asked; the peer's last byte
/// arrives even when the cursor has room for one byte only.
#[trio::test]
async fn hyper_reads_after_unread_and_at_the_end_of_stream() -> trio::Result<()> {
    use hyper::rt::{Read, ReadBuf};
    for (path, make) in PATHS {
        let (a, b) = SocketStream::unix_pair()?;
        a.send_all(b"world!").await?;
        a.send_eof().await?;
        let mut b = make(b);
        b.unread(b"hello ")?;
        let mut read = async |room: usize| -> trio::Result<Vec<u8>> {
            let mut storage = vec![0u8; room];
            let mut rb = ReadBuf::new(&mut storage);
            poll_fn(|cx| Read::poll_read(Pin::new(&mut b), cx, rb.unfilled())).await?;
            Ok(rb.filled().to_vec())
        };
        assert_eq!(read(4).await?, b"hell", "{path}");
        assert_eq!(read(64).await?, b"o ", "{path}");
        let mut rest = Vec::new();
        while rest.len() < 5 {
            let got = read(5 - rest.len()).await?;
            assert!(!got.is_empty(), "{path}: early end of stream");
            rest.extend(got);
        }
        assert_eq!(rest, b"world", "{path}");
        assert_eq!(read(1).await?, b"!", "{path}");
        for _ in 0..3 {
            assert_eq!(read(64).await?, b"", "{path}: the end of stream");
        }
        assert_eq!(b.buffered(), b"", "{path}");
    }
    Ok(())
}
