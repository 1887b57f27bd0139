//! Schedule points over TCP (DESIGN §6, "Composite operations" in
//! `trio::stream`): a TLS operation's transport receives and its final
//! sends skip their own trailing schedule point, and the operation takes
//! exactly one, at its end, unless one of its steps waited (which was
//! one). Cancellation keeps its meaning: a receive cancelled while waiting
//! for the transport had no effect.

mod common;

use common::*;
use trio::lowlevel::watch_checkpoints;
use trio::stream::{AsyncResource, ReceiveStream, SendStream, Stream};
use trio::testing::wait_all_tasks_blocked;
use trio::{CancelScope, open_nursery};
use trio_tls::TlsStream;
use trio_tls::rustls::ProtocolVersion;

const V13: Option<ProtocolVersion> = Some(ProtocolVersion::TLSv1_3);

async fn handshake_both<S: Stream>(a: &TlsStream<S>, b: &TlsStream<S>) -> trio::Result<()> {
    open_nursery(async |n| {
        n.start_soon(a.do_handshake());
        n.start_soon(b.do_handshake());
        Ok(())
    })
    .await
    .map(drop)
}

/// A send, and a receive of bytes already in the kernel: one schedule
/// point each, whether it comes from the transport or the operation.
#[trio::test]
async fn one_schedule_point_per_operation_without_a_wait() -> trio::Result<()> {
    let (a, b) = tcp_pair().await?;
    let (client, server) = tls_pair(a, b, V13);
    handshake_both(&client, &server).await?;
    let watch = watch_checkpoints()?;
    client.send_all(b"ping").await?;
    let c = watch.counts();
    assert_eq!(c.schedule_points, 1, "{c:?}");
    assert!(c.cancel_points >= 1, "{c:?}");
    // Loopback: the bytes are in the server's receive queue already.
    let mut buf = [0; 16];
    let before = watch.counts();
    let n = server.receive_some(&mut buf).await?;
    assert_eq!(&buf[..n], b"ping");
    let c = watch.counts();
    assert_eq!(c.schedule_points - before.schedule_points, 1, "{c:?}");
    assert!(c.cancel_points > before.cancel_points, "{c:?}");
    // A send of four encryption chunks (64 KiB each, the last one 8
    // KiB): every chunk before the last keeps its own schedule point, so
    // that a long send lets other tasks run even when it never waits.
    let big = vec![7u8; 200 * 1024];
    open_nursery(async |n| {
        n.start_soon(async {
            let mut got = 0;
            let mut buf = vec![0; 64 * 1024];
            while got < big.len() {
                got += server.receive_some(&mut buf).await?;
            }
            Ok(())
        });
        let before = watch.counts();
        client.send_all(&big).await?;
        let c = watch.counts();
        assert!(c.schedule_points - before.schedule_points >= 3, "{c:?}");
        Ok(())
    })
    .await?;
    Ok(())
}

/// A receive that waits for the transport: the wait is its schedule
/// point, and none is added.
#[trio::test]
async fn a_wait_is_the_only_schedule_point() -> trio::Result<()> {
    let (a, b) = tcp_pair().await?;
    let (client, server) = tls_pair(a, b, V13);
    handshake_both(&client, &server).await?;
    // The server's session tickets go out with its first send; have the
    // client read them now so that its next receive is a plain wait.
    server.send_all(b"t").await?;
    let mut buf = [0; 16];
    assert_eq!(client.receive_some(&mut buf).await?, 1);
    open_nursery(async |n| {
        n.start_soon(async {
            wait_all_tasks_blocked().await?;
            server.send_all(b"late").await
        });
        let watch = watch_checkpoints()?;
        let mut buf = [0; 16];
        let k = client.receive_some(&mut buf).await?;
        assert_eq!(&buf[..k], b"late");
        let c = watch.counts();
        assert_eq!(c.schedule_points, 1, "{c:?}");
        Ok(())
    })
    .await
    .map(drop)
}

/// Cancelled while waiting for the transport (through the socket's poll
/// waiter), a TLS receive had no effect: the stream works on, and the
/// next receive gets the data.
#[trio::test]
async fn a_receive_cancelled_while_waiting_had_no_effect() -> trio::Result<()> {
    let (a, b) = tcp_pair().await?;
    let (client, server) = tls_pair(a, b, V13);
    handshake_both(&client, &server).await?;
    open_nursery(async |n| {
        let scope = CancelScope::new();
        let s2 = scope.clone();
        n.start_soon(async move {
            wait_all_tasks_blocked().await?;
            s2.cancel();
            Ok(())
        });
        let mut buf = [0; 16];
        let r = scope.run(server.receive_some(&mut buf)).await?;
        assert!(r.is_none(), "{r:?}");
        Ok(())
    })
    .await?;
    client.send_all(b"after").await?;
    let mut buf = [0; 16];
    let n = server.receive_some(&mut buf).await?;
    assert_eq!(&buf[..n], b"after");
    // And the handshake, cancelled while waiting, breaks the stream as
    // before (DESIGN §9).
    let (a, b) = tcp_pair().await?;
    let (_client, server) = tls_pair(a, b, V13);
    open_nursery(async |n| {
        let scope = CancelScope::new();
        let s2 = scope.clone();
        n.start_soon(async move {
            wait_all_tasks_blocked().await?;
            s2.cancel();
            Ok(())
        });
        let r = scope.run(server.do_handshake()).await?;
        assert!(r.is_none(), "{r:?}");
        Ok(())
    })
    .await?;
    let e = server.do_handshake().await.unwrap_err();
    assert_eq!(e.kind(), trio::ErrorKind::Broken, "{e:?}");
    Ok(())
}

/// Every TLS operation that succeeds takes a schedule point, on the paths
/// that never wait for the transport: plaintext already decrypted, an
/// empty send, `send_eof`, the peer's `close_notify` read as end of
/// stream, a handshake already done, `aclose`, and a second caller of a
/// running handshake.
#[trio::test]
async fn every_operation_takes_a_schedule_point_on_paths_without_a_wait() -> trio::Result<()> {
    let (a, b) = tcp_pair().await?;
    let (client, server) = tls_pair(a, b, V13);
    // Two callers of one handshake on the client: both checkpoint.
    open_nursery(async |n| {
        n.start_soon(server.do_handshake());
        n.start_soon(async {
            let watch = watch_checkpoints()?;
            client.do_handshake().await?;
            assert!(watch.counts().schedule_points >= 1);
            Ok(())
        });
        n.start_soon(async {
            let watch = watch_checkpoints()?;
            client.do_handshake().await?;
            assert!(watch.counts().schedule_points >= 1);
            Ok(())
        });
        Ok(())
    })
    .await?;
    let sp = |w: &trio::lowlevel::CheckpointWatch| w.counts().schedule_points;
    let watch = watch_checkpoints()?;
    // A handshake already done.
    let before = sp(&watch);
    client.do_handshake().await?;
    assert_eq!(sp(&watch) - before, 1);
    // An empty send.
    let before = sp(&watch);
    client.send_all(b"").await?;
    assert_eq!(sp(&watch) - before, 1);
    // Plaintext left over from an earlier receive: no transport receive.
    client.send_all(b"abcdef").await?;
    let mut two = [0; 2];
    let mut got = Vec::new();
    while got.len() < 6 {
        let before = sp(&watch);
        let n = server.receive_some(&mut two).await?;
        assert_eq!(sp(&watch) - before, 1, "after {got:?}");
        got.extend_from_slice(&two[..n]);
    }
    assert_eq!(got, b"abcdef");
    // send_eof, then the peer's close_notify read as the end.
    let before = sp(&watch);
    client.send_eof().await?;
    assert_eq!(sp(&watch) - before, 1);
    let mut buf = [0; 16];
    // The server's session tickets went nowhere yet; the close_notify is
    // in the server's receive queue (loopback) or comes soon.
    let before = sp(&watch);
    assert_eq!(server.receive_some(&mut buf).await?, 0);
    assert_eq!(sp(&watch) - before, 1);
    // Again: end of stream from the state alone.
    let before = sp(&watch);
    assert_eq!(server.receive_some(&mut buf).await?, 0);
    assert_eq!(sp(&watch) - before, 1);
    // A second send_eof (a no-op).
    let before = sp(&watch);
    client.send_eof().await?;
    assert_eq!(sp(&watch) - before, 1);
    let before = sp(&watch);
    server.aclose().await?;
    assert!(sp(&watch) - before >= 1);
    let before = sp(&watch);
    client.aclose().await?;
    assert!(sp(&watch) - before >= 1);
    Ok(())
}

/// A TLS send cancelled while the transport waits (its send buffer full:
/// the peer does not read) leaves the stream Broken for good (DESIGN §9),
/// and the peer's side is unaffected by the cancel itself.
#[trio::test]
async fn a_send_cancelled_while_waiting_breaks_the_stream() -> trio::Result<()> {
    let (a, b) = tcp_pair().await?;
    let (client, server) = tls_pair(a, b, V13);
    handshake_both(&client, &server).await?;
    let big = vec![1u8; 16 << 20];
    open_nursery(async |n| {
        let scope = CancelScope::new();
        let s2 = scope.clone();
        n.start_soon(async move {
            wait_all_tasks_blocked().await?;
            s2.cancel();
            Ok(())
        });
        let r = scope.run(client.send_all(&big)).await?;
        assert!(r.is_none(), "{r:?}");
        Ok(())
    })
    .await?;
    let e = client.send_all(b"x").await.unwrap_err();
    assert_eq!(e.kind(), trio::ErrorKind::Broken, "{e:?}");
    let e = client.send_eof().await.unwrap_err();
    assert_eq!(e.kind(), trio::ErrorKind::Broken, "{e:?}");
    // Closing still works (no close_notify on a broken stream).
    client.aclose().await?;
    Ok(())
}

/// The schedule point of a TLS `unwrap` after the peer's close: one.
#[trio::test]
async fn unwrap_takes_a_schedule_point() -> trio::Result<()> {
    let (a, b) = tcp_pair().await?;
    let (client, server) = tls_pair(a, b, V13);
    handshake_both(&client, &server).await?;
    client.send_eof().await?;
    let mut buf = [0; 16];
    assert_eq!(server.receive_some(&mut buf).await?, 0);
    let watch = watch_checkpoints()?;
    let (_t, rest) = server.unwrap().await?;
    assert!(rest.is_empty());
    assert!(watch.counts().schedule_points >= 1);
    assert!(watch.counts().cancel_points >= 1);
    Ok(())
}

/// A receive that works through many records without plaintext, all
/// already received by the kernel (here session tickets, which a TLS 1.3
/// client takes any number of), still lets other tasks run: the transport
/// receives that produced no plaintext are not all left without a
/// schedule point (before the composite operations each was one).
#[trio::test]
async fn records_without_plaintext_do_not_hold_the_run() -> trio::Result<()> {
    let (a, b) = tcp_pair().await?;
    let mut config = (*server_config(V13)).clone();
    // Some 76 KB of tickets: transport receives of 4, 8, 16, 32 KiB ...
    config.send_tls13_tickets = 1000;
    let client = TlsStream::client(a, client_config(V13), localhost())?;
    let server = TlsStream::server(b, std::sync::Arc::new(config))?;
    handshake_both(&client, &server).await?;
    open_nursery(async |n| {
        // The tickets go out with the server's first send.
        n.start_soon(server.send_all(b"x"));
        wait_all_tasks_blocked().await?;
        let watch = watch_checkpoints()?;
        let mut buf = [0; 16];
        assert_eq!(client.receive_some(&mut buf).await?, 1);
        let c = watch.counts();
        assert!(c.schedule_points >= 2, "{c:?}");
        Ok(())
    })
    .await
    .map(drop)
}
