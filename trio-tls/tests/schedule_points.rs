//! Schedule points over TCP (DESIGN §6, "Composite operations" in
//! `trio::stream`): a TLS operation's transport receives and its final
//! sends skip their own trailing schedule point, and the operation takes
//! exactly one, at its end, unless one of its steps waited (which was
//! one). Cancellation keeps its meaning: a receive cancelled while waiting
//! for the transport had no effect.

mod common;

use common::*;
use trio::lowlevel::watch_checkpoints;
use trio::stream::{ReceiveStream, SendStream, Stream};
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
