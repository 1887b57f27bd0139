//! `TlsStream`'s own rules (DESIGN §9), beyond the conformance checks:
//! the shared handshake, cancellation, ragged EOF, `send_eof` on 1.2,
//! `unwrap` (also after full records), ALPN, certificates and the server
//! name, the handshake timeout, a peer that does not speak TLS.

mod common;

use common::*;
use std::cell::Cell;
use std::time::Duration;
use trio::stream::{AsyncResource, ReceiveStream, SendStream, Stream};
use trio::{ErrorKind, open_nursery};
use trio_tls::TlsStream;
use trio_tls::rustls::ProtocolVersion;

const V13: Option<ProtocolVersion> = Some(ProtocolVersion::TLSv1_3);
const V12: Option<ProtocolVersion> = Some(ProtocolVersion::TLSv1_2);

async fn handshake_both<S: Stream>(a: &TlsStream<S>, b: &TlsStream<S>) -> trio::Result<()> {
    open_nursery(async |n| {
        n.start_soon(a.do_handshake());
        n.start_soon(b.do_handshake());
        Ok(())
    })
    .await
    .map(drop)
}

async fn receive_all<R: ReceiveStream>(r: &R, want: usize) -> trio::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0; 64];
    while got.len() < want {
        let n = r.receive_some(&mut buf).await?;
        assert_ne!(n, 0, "early end of stream after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    Ok(got)
}

#[trio::test(autojump)]
async fn a_cancelled_handshake_leaves_the_stream_broken() -> trio::Result<()> {
    let (_client, server) = memory_tls_pair(V13);
    // The client never speaks: the server's handshake waits, then is cancelled.
    let r = trio::move_on_after(1.0, server.do_handshake()).await?;
    assert!(r.is_none());
    let e = server.send_all(b"x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broken);
    let mut buf = [0; 4];
    let e = server.receive_some(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broken);
    assert_eq!(
        server.do_handshake().await.unwrap_err().kind(),
        ErrorKind::Broken
    );
    server.aclose().await?; // a broken stream still closes
    assert_eq!(
        server.send_all(b"x").await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    Ok(())
}

#[trio::test(autojump)]
async fn an_operation_cancelled_before_it_starts_does_not_break_the_stream() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(V13);
    let scope = trio::CancelScope::new();
    scope.cancel();
    scope.run(client.send_all(b"x")).await?;
    // Nothing happened: the stream works.
    open_nursery(async |n| {
        n.start_soon(client.send_all(b"hello"));
        assert_eq!(receive_all(&server, 5).await?, b"hello");
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn concurrent_handshake_callers_share_one_handshake() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(V13);
    let done = Cell::new(0);
    open_nursery(async |n| {
        for _ in 0..3 {
            n.start_soon(async {
                server.do_handshake().await?;
                assert!(server.is_handshake_done());
                done.set(done.get() + 1);
                Ok(())
            });
        }
        n.start_soon(async {
            // A receive waits for the handshake the first caller runs.
            let got = receive_all(&server, 2).await?;
            assert_eq!(got, b"hi");
            done.set(done.get() + 1);
            Ok(())
        });
        trio::testing::wait_all_tasks_blocked().await?;
        assert!(!server.is_handshake_done());
        client.send_all(b"hi").await
    })
    .await?;
    assert_eq!(done.get(), 4);
    Ok(())
}

#[trio::test(autojump)]
async fn the_callers_waiting_for_a_cancelled_handshake_see_broken() -> trio::Result<()> {
    let (_client, server) = memory_tls_pair(V13);
    let server = &server;
    open_nursery(async |n| {
        let runner = trio::CancelScope::new();
        let cancel = runner.clone();
        n.start_soon(async move {
            runner.run(server.do_handshake()).await?;
            Ok(())
        });
        trio::testing::wait_all_tasks_blocked().await?;
        n.start_soon(async {
            let e = server.do_handshake().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Broken);
            Ok(())
        });
        trio::testing::wait_all_tasks_blocked().await?;
        cancel.cancel();
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancelled_send_breaks_the_stream_and_a_cancelled_receive_does_not() -> trio::Result<()> {
    let (client, server) = lockstep_tls_pair(V13);
    handshake_both(&client, &server).await?;
    // A receive cancelled while waiting for the transport had no effect.
    let mut buf = [0; 8];
    assert!(
        trio::move_on_after(1.0, server.receive_some(&mut buf))
            .await?
            .is_none()
    );
    // A send cancelled while the (lockstep) transport blocks: Broken.
    assert!(
        trio::move_on_after(1.0, client.send_all(b"stuck"))
            .await?
            .is_none()
    );
    assert_eq!(
        client.send_all(b"x").await.unwrap_err().kind(),
        ErrorKind::Broken
    );
    Ok(())
}

/// The client's transport ends without a close_notify.
async fn ragged_eof(https_compatible: bool) -> trio::Result<()> {
    let (client, server) = memory_tls_pair(V13);
    let server = server.https_compatible(https_compatible);
    handshake_both(&client, &server).await?;
    client.send_all(b"hi").await?;
    client.transport().aclose().await?;
    assert_eq!(receive_all(&server, 2).await?, b"hi");
    let mut buf = [0; 8];
    let r = server.receive_some(&mut buf).await;
    if https_compatible {
        assert_eq!(r?, 0);
        assert_eq!(server.receive_some(&mut buf).await?, 0); // and it stays ended
    } else {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Broken);
        let e = server.receive_some(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Broken); // Broken sticks
        assert_eq!(
            server.send_all(b"x").await.unwrap_err().kind(),
            ErrorKind::Broken
        );
    }
    server.aclose().await
}

#[trio::test(autojump)]
async fn a_transport_eof_without_close_notify_is_broken() -> trio::Result<()> {
    ragged_eof(false).await
}

#[trio::test(autojump)]
async fn a_transport_eof_without_close_notify_ends_cleanly_when_https_compatible()
-> trio::Result<()> {
    ragged_eof(true).await
}

#[trio::test(autojump)]
async fn an_eof_during_the_handshake_is_broken_or_an_end_when_https_compatible() -> trio::Result<()>
{
    for https in [false, true] {
        let (client, server) = memory_tls_pair(V13);
        let server = server.https_compatible(https);
        client.transport().aclose().await?;
        let mut buf = [0; 8];
        let r = server.receive_some(&mut buf).await;
        if https {
            assert_eq!(r?, 0);
        } else {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Broken);
        }
    }
    Ok(())
}

#[trio::test(autojump)]
async fn close_notify_reads_as_end_of_stream_and_aclose_sends_it() -> trio::Result<()> {
    for v in [V12, V13] {
        let (client, server) = memory_tls_pair(v);
        open_nursery(async |n| {
            n.start_soon(async {
                client.send_all(b"bye").await?;
                client.aclose().await
            });
            assert_eq!(receive_all(&server, 3).await?, b"bye");
            let mut buf = [0; 8];
            assert_eq!(server.receive_some(&mut buf).await?, 0);
            assert_eq!(server.receive_some(&mut buf).await?, 0);
            Ok(())
        })
        .await?;
    }
    Ok(())
}

#[trio::test(autojump)]
async fn send_eof_is_unsupported_on_tls12() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(V12);
    handshake_both(&client, &server).await?;
    assert_eq!(client.protocol_version()?, ProtocolVersion::TLSv1_2);
    let e = client.send_eof().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    // Nothing was sent: the stream still works both ways.
    client.send_all(b"ok").await?;
    assert_eq!(receive_all(&server, 2).await?, b"ok");
    Ok(())
}

#[trio::test(autojump)]
async fn unwrap_returns_the_transport_and_the_bytes_after_close_notify() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(V13);
    handshake_both(&client, &server).await?;
    // The client's data, its close_notify and plain bytes, all in the
    // server's transport before it reads: one transport read takes all.
    client.send_all(b"data").await?;
    client.send_eof().await?;
    client.transport().send_all(b"PLAIN").await?;
    assert_eq!(receive_all(&server, 4).await?, b"data");
    let mut buf = [0; 8];
    assert_eq!(server.receive_some(&mut buf).await?, 0);
    let (server_transport, rest) = server.unwrap().await?;
    assert_eq!(rest, b"PLAIN");
    // The client sees the server's close_notify and unwraps too.
    assert_eq!(client.receive_some(&mut buf).await?, 0);
    let (client_transport, rest) = client.unwrap().await?;
    assert!(rest.is_empty());
    server_transport.send_all(b"raw").await?;
    assert_eq!(receive_all(&client_transport, 3).await?, b"raw");
    Ok(())
}

#[trio::test(autojump)]
async fn unwrap_with_unread_data_is_an_error() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(V13);
    handshake_both(&client, &server).await?;
    client.send_all(b"unread").await?;
    client.send_eof().await?;
    let Err(e) = server.unwrap().await else {
        panic!("unwrap with unread data succeeded");
    };
    assert_eq!(e.kind(), ErrorKind::Broken);
    Ok(())
}

#[trio::test(autojump)]
async fn alpn_and_certificates_after_the_handshake_and_an_error_before() -> trio::Result<()> {
    let (a, b) = trio::testing::memory_stream_pair();
    let client = TlsStream::client(
        a,
        client_config_with(None, &[b"h2", b"http/1.1"]),
        localhost(),
    )?;
    let server = TlsStream::server(b, server_config_with(None, &[b"http/1.1"]))?;
    for e in [
        client.negotiated_alpn().unwrap_err(),
        client.peer_certificates().unwrap_err(),
        client.protocol_version().unwrap_err(),
        server.server_name().unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Usage);
    }
    handshake_both(&client, &server).await?;
    assert_eq!(client.negotiated_alpn()?, Some(b"http/1.1".to_vec()));
    assert_eq!(server.negotiated_alpn()?, Some(b"http/1.1".to_vec()));
    let chain = client.peer_certificates()?.unwrap();
    assert_eq!(chain[0], certs().leaf_der);
    assert_eq!(server.peer_certificates()?, None);
    assert_eq!(server.server_name()?.as_deref(), Some("localhost"));
    assert_eq!(client.protocol_version()?, ProtocolVersion::TLSv1_3);
    Ok(())
}

#[trio::test(autojump)]
async fn the_server_name_is_the_one_each_client_sent_or_none() -> trio::Result<()> {
    // Two servers on one thread, one after the other: the second client
    // connects by IP address, which TLS sends no name for.
    let (client, server) = memory_tls_pair(V13);
    handshake_both(&client, &server).await?;
    assert_eq!(server.server_name()?.as_deref(), Some("localhost"));
    assert_eq!(client.server_name()?, None);
    let (a, b) = trio::testing::memory_stream_pair();
    let ip = "127.0.0.1".try_into().unwrap();
    let client = TlsStream::client(a, client_config(V13), ip)?;
    let server = TlsStream::server(b, server_config(V13))?;
    handshake_both(&client, &server).await?;
    assert_eq!(server.server_name()?, None);
    Ok(())
}

#[trio::test(autojump)]
async fn a_certificate_for_another_name_fails_the_handshake_on_both_sides() -> trio::Result<()> {
    let (a, b) = trio::testing::memory_stream_pair();
    let name = "example.com".try_into().unwrap();
    let client = TlsStream::client(a, client_config(None), name)?;
    let server = TlsStream::server(b, server_config(None))?;
    let r = open_nursery(async |n| {
        n.start_soon(async {
            let e = client.do_handshake().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Broken);
            client.aclose().await
        });
        n.start_soon(async {
            assert!(server.do_handshake().await.is_err());
            Ok(())
        });
        Ok(())
    })
    .await;
    r.map(drop)
}

#[trio::test(autojump)]
async fn the_handshake_timeout_fails_with_too_slow_then_broken() -> trio::Result<()> {
    let (_client, server) = memory_tls_pair(V13);
    let server = server.handshake_timeout(Some(Duration::from_secs(5)));
    let start = trio::current_time();
    let e = server.do_handshake().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooSlow);
    assert_eq!(trio::current_time() - start, 5.0);
    assert_eq!(
        server.do_handshake().await.unwrap_err().kind(),
        ErrorKind::Broken
    );
    Ok(())
}

#[trio::test(autojump)]
async fn debug_shows_the_side_and_state() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(V13);
    handshake_both(&client, &server).await?;
    let s = format!("{client:?}");
    assert!(s.contains("side: \"client\""), "{s}");
    assert!(s.contains("handshake: \"done\""), "{s}");
    assert!(s.contains("TLSv1_3"), "{s}");
    Ok(())
}

#[trio::test(autojump)]
async fn one_receive_takes_every_record_already_received() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(V13);
    handshake_both(&client, &server).await?;
    for part in [&b"abc"[..], b"def", b"ghi"] {
        client.send_all(part).await?; // one record each
    }
    client.send_eof().await?;
    let mut buf = [0; 100];
    let n = server.receive_some(&mut buf).await?;
    assert_eq!(&buf[..n], b"abcdefghi");
    // A small buffer takes part of a record; the rest comes next.
    let (client, server) = memory_tls_pair(V13);
    handshake_both(&client, &server).await?;
    client.send_all(b"0123456789").await?;
    let mut small = [0; 4];
    assert_eq!(server.receive_some(&mut small).await?, 4);
    assert_eq!(&small, b"0123");
    assert_eq!(receive_all(&server, 6).await?, b"456789");
    Ok(())
}

#[trio::test(autojump)]
async fn unwrap_after_full_records_keeps_a_whole_record_shaped_trailer() -> trio::Result<()> {
    // Full 16 KiB records arrive over several receives, with part of the
    // next record behind each. The bytes after the close_notify form a
    // complete record header and body, so a stream that let rustls consume
    // whole records past the close_notify would lose them (rustls reports
    // exactly what it is done with: module docs, "Processing").
    let (client, server) = memory_tls_pair(V13);
    handshake_both(&client, &server).await?;
    let data: Vec<u8> = (0..3 * 16384 + 100).map(|i| (i % 251) as u8).collect();
    client.send_all(&data).await?;
    client.send_eof().await?;
    let trailer = [&[23u8, 3, 3, 0, 2][..], b"hi", b"and more"].concat();
    client.transport().send_all(&trailer).await?;
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = server.receive_some(&mut buf).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
    let (_transport, rest) = server.unwrap().await?;
    assert_eq!(rest, trailer);
    Ok(())
}

#[trio::test(autojump)]
async fn a_peer_that_does_not_speak_tls_fails_the_handshake_at_once() -> trio::Result<()> {
    // 18 bytes whose "record header" announces 8 KiB: the handshake must
    // fail on the header, not wait for the rest of a record that is not one.
    let (plain, server_side) = trio::testing::memory_stream_pair();
    let server = TlsStream::server(server_side, server_config(V13))?;
    plain.send_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    // (A deadline, so that waiting fails the test instead of hanging it.)
    let r = trio::fail_after(Duration::from_secs(10), server.do_handshake()).await;
    let Err(e) = r else {
        panic!("a handshake with a plain-text peer succeeded");
    };
    assert_eq!(e.kind(), ErrorKind::Broken, "{e}");
    Ok(())
}

/// Polls a future once, then drops it (as a `select` that lost would).
struct PollOnce<F: Future>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for PollOnce<F> {
    type Output = bool;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<bool> {
        std::task::Poll::Ready(self.0.as_mut().poll(cx).is_ready())
    }
}

#[trio::test(autojump)]
async fn a_send_dropped_during_the_transport_send_breaks_the_stream() -> trio::Result<()> {
    // Over a lockstep transport the send waits for the peer to receive;
    // dropping it there leaves an unknown prefix of a record sent and the
    // rest gone, so a later record would follow a gap.
    let (client, server) = lockstep_tls_pair(V13);
    handshake_both(&client, &server).await?;
    let done = PollOnce(Box::pin(client.send_all(b"lost"))).await;
    assert!(!done, "the send should wait for the peer");
    let e = client.send_all(b"after").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broken, "{e}");
    assert!(e.to_string().contains("abandoned"), "{e}");
    Ok(())
}
