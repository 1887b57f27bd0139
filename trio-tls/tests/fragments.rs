//! Handshake messages split over many records, received a few bytes at a
//! time: rustls keeps a partial handshake message in the receive buffer
//! between receives, while another task sends (module docs of
//! `stream.rs`, "Full duplex").

mod common;

use common::*;
use std::sync::Arc;
use trio::open_nursery;
use trio::stream::{AsyncResource, BoxStream, ReceiveStream, SendStream, Stream};
use trio_tls::TlsStream;
use trio_tls::rustls::ProtocolVersion;

/// A transport whose receives return at most 7 bytes.
struct Trickle(BoxStream);

impl AsyncResource for Trickle {
    async fn aclose(&self) -> trio::Result<()> {
        self.0.aclose().await
    }
}

impl SendStream for Trickle {
    async fn send_all(&self, data: &[u8]) -> trio::Result<()> {
        self.0.send_all(data).await
    }

    async fn wait_send_all_might_not_block(&self) -> trio::Result<()> {
        self.0.wait_send_all_might_not_block().await
    }
}

impl ReceiveStream for Trickle {
    async fn receive_some(&self, buf: &mut [u8]) -> trio::Result<usize> {
        let n = buf.len().min(7);
        self.0.receive_some(&mut buf[..n]).await
    }
}

impl Stream for Trickle {
    async fn send_eof(&self) -> trio::Result<()> {
        self.0.send_eof().await
    }
}

async fn receive_to_end<R: ReceiveStream>(r: &R) -> trio::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0; 1000];
    loop {
        let n = r.receive_some(&mut buf).await?;
        if n == 0 {
            return Ok(got);
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// Both sides fragment every message into records of at most 64 bytes of
/// payload; the transport delivers 7 bytes per receive. After the
/// handshake, the server's first send carries its TLS 1.3 session tickets
/// (each split over several records) while the client receives in one
/// task and sends in another.
async fn split_messages(version: ProtocolVersion) -> trio::Result<()> {
    let (a, b) = trio::testing::memory_stream_pair();
    let mut client_config = (*client_config(Some(version))).clone();
    client_config.max_fragment_size = Some(64);
    let mut server_config = (*server_config(Some(version))).clone();
    server_config.max_fragment_size = Some(64);
    let client = TlsStream::client(Trickle(Box::new(a)), Arc::new(client_config), localhost())?;
    let server = TlsStream::server(Trickle(Box::new(b)), Arc::new(server_config))?;
    open_nursery(async |n| {
        n.start_soon(client.do_handshake());
        n.start_soon(server.do_handshake());
        Ok(())
    })
    .await?;
    assert_eq!(server.server_name()?.as_deref(), Some("localhost"));
    assert_eq!(client.protocol_version()?, version);
    let to_client: Vec<u8> = (0..3000).map(|i| (i % 251) as u8).collect();
    let to_server: Vec<u8> = (0..3000).map(|i| (i % 241) as u8).collect();
    open_nursery(async |n| {
        n.start_soon(async {
            server.send_all(&to_client).await?;
            let mut got = Vec::new();
            let mut buf = [0; 1000];
            while got.len() < to_server.len() {
                let n = server.receive_some(&mut buf).await?;
                assert_ne!(n, 0);
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, to_server);
            server.aclose().await
        });
        n.start_soon(async {
            assert_eq!(receive_to_end(&client).await?, to_client);
            Ok(())
        });
        n.start_soon(async {
            for chunk in to_server.chunks(100) {
                client.send_all(chunk).await?;
            }
            Ok(())
        });
        Ok(())
    })
    .await?;
    client.aclose().await
}

#[trio::test(autojump)]
async fn tls13_messages_split_over_records_and_receives() -> trio::Result<()> {
    split_messages(ProtocolVersion::TLSv1_3).await
}

#[trio::test(autojump)]
async fn tls12_messages_split_over_records_and_receives() -> trio::Result<()> {
    split_messages(ProtocolVersion::TLSv1_2).await
}

/// The bytes an evil client sends: a ClientHello that declares a body of
/// 65 280 bytes, one byte of it per plaintext record (6 bytes on the wire
/// per byte of the message). rustls keeps every record in the receive
/// buffer until the message is whole (about 392 KB); the stream refuses to
/// hold more than about 64 KiB plus two records of it.
#[trio::test(autojump)]
async fn a_handshake_message_in_one_byte_records_is_refused_early() -> trio::Result<()> {
    let (a, b) = trio::testing::memory_stream_pair();
    let server = TlsStream::server(b, server_config(None))?;
    // ClientHello (type 1), record version 3.1.
    refused_in_one_byte_records(&server, &a, 1, [3, 1], false).await
}

/// Feeds `tls` (from `evil`, the other end of its transport; after reading
/// the peer's first flight if `read_first`) a handshake message of type
/// `kind` that declares a body of 65 280 bytes, one byte per record of
/// version `version`, in batches, until `tls`'s handshake fails: with the
/// typed Broken error, early (the limit is 64 KiB and two records of 18
/// KiB, plus what one batch and the buffer's last receive add), and for
/// good.
async fn refused_in_one_byte_records<S: Stream>(
    tls: &TlsStream<S>,
    evil: &(impl SendStream + ReceiveStream),
    kind: u8,
    version: [u8; 2],
    read_first: bool,
) -> trio::Result<()> {
    let failed = std::cell::Cell::new(false);
    let sent = std::cell::Cell::new(0usize);
    let mut message = vec![kind, 0, 0xff, 0];
    message.resize(4 + 0xff00, 0);
    let records: Vec<u8> = message
        .iter()
        .flat_map(|&b| [22, version[0], version[1], 0, 1, b])
        .collect();
    open_nursery(async |n| {
        n.start_soon(async {
            let e = tls.do_handshake().await.unwrap_err();
            assert_eq!(e.kind(), trio::ErrorKind::Broken, "{e}");
            assert!(e.to_string().contains("handshake message"), "{e}");
            failed.set(true);
            Ok(())
        });
        n.start_soon(async {
            if read_first {
                let mut first = vec![0; 4096];
                let _ = evil.receive_some(&mut first).await?;
            }
            for batch in records.chunks(600) {
                if failed.get() {
                    break;
                }
                evil.send_all(batch).await?;
                sent.set(sent.get() + batch.len());
                trio::sleep(std::time::Duration::from_millis(1)).await?;
            }
            Ok(())
        });
        Ok(())
    })
    .await?;
    assert!(failed.get());
    assert!(
        sent.get() < 110_000,
        "{} bytes sent before the refusal",
        sent.get()
    );
    let e = tls.do_handshake().await.unwrap_err();
    assert_eq!(e.kind(), trio::ErrorKind::Broken);
    Ok(())
}

/// A transport whose sends wait while `gate` holds an event, and whose
/// `aclose` does nothing (so a send can finish after the stream's
/// `aclose`).
struct Gated {
    inner: BoxStream,
    gate: std::cell::RefCell<Option<trio::sync::Event>>,
}

impl AsyncResource for Gated {
    async fn aclose(&self) -> trio::Result<()> {
        trio::checkpoint().await
    }
}

impl SendStream for Gated {
    async fn send_all(&self, data: &[u8]) -> trio::Result<()> {
        let gate = self.gate.borrow().clone();
        if let Some(gate) = gate {
            gate.wait().await?;
        }
        self.inner.send_all(data).await
    }

    async fn wait_send_all_might_not_block(&self) -> trio::Result<()> {
        self.inner.wait_send_all_might_not_block().await
    }
}

impl ReceiveStream for Gated {
    async fn receive_some(&self, buf: &mut [u8]) -> trio::Result<usize> {
        self.inner.receive_some(buf).await
    }
}

impl Stream for Gated {
    async fn send_eof(&self) -> trio::Result<()> {
        self.inner.send_eof().await
    }
}

async fn relay<A: Stream, B: Stream>(from: &A, to: &B) -> trio::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = from.receive_some(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        to.send_all(&buf[..n]).await?;
    }
}

/// A TLS error while rustls holds part of a handshake message (the first
/// record of a session ticket split over records, then a forged record),
/// then `aclose` by another task while a large `send_all` waits between
/// chunks: rustls must not run again for the next chunk (it would slice
/// its held offsets out of an empty stand-in), and the send fails Closed.
#[trio::test(autojump)]
async fn rustls_is_not_run_again_after_its_error_even_once_closed() -> trio::Result<()> {
    let v13 = Some(ProtocolVersion::TLSv1_3);
    let (a, b1) = trio::testing::memory_stream_pair();
    let (b2, c) = trio::testing::memory_stream_pair();
    let gated = Gated {
        inner: Box::new(a),
        gate: std::cell::RefCell::new(None),
    };
    let client = TlsStream::client(gated, client_config(v13), localhost())?;
    let mut server_config = (*server_config(v13)).clone();
    server_config.max_fragment_size = Some(64);
    let server = TlsStream::server(c, Arc::new(server_config))?;
    open_nursery(async |n| {
        n.start_soon(relay(&b1, &b2));
        n.start_soon(relay(&b2, &b1));
        open_nursery(async |m| {
            m.start_soon(client.do_handshake());
            m.start_soon(server.do_handshake());
            Ok(())
        })
        .await?;
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    // The server's session tickets, split into records of 64 bytes.
    server.send_all(b"x").await?;
    let mut flight = vec![0; 64 * 1024];
    let k = b2.receive_some(&mut flight).await?;
    let first = 5 + usize::from(u16::from_be_bytes([flight[3], flight[4]]));
    assert!(k > first);
    let forged = [&[23u8, 3, 3, 0, 40][..], &[0; 40]].concat();
    let gate = trio::sync::Event::new();
    *client.transport().gate.borrow_mut() = Some(gate.clone());
    let big = vec![7u8; 200 * 1024];
    open_nursery(async |n| {
        n.start_soon(async {
            let e = client.send_all(&big).await.unwrap_err();
            assert_eq!(e.kind(), trio::ErrorKind::Closed, "{e}");
            Ok(())
        });
        b1.send_all(&flight[..first]).await?;
        b1.send_all(&forged).await?;
        let mut buf = [0; 100];
        let e = client.receive_some(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), trio::ErrorKind::Broken, "{e}");
        client.aclose().await?;
        gate.set();
        Ok(())
    })
    .await?;
    Ok(())
}

/// A TLS 1.3 server sends its session tickets as one flight, cut into full
/// records without regard to where each ticket ends: with 5 000 tickets
/// (81 bytes each: about 405 KB) no record ends where a ticket does until the last one,
/// and rustls (0.23's unbuffered API) keeps every record of the flight
/// until then. Each ticket is a small message of its own: the flight is
/// accepted, and the data sent after it arrives intact.
#[trio::test(autojump)]
async fn thousands_of_session_tickets_in_one_flight_are_accepted() -> trio::Result<()> {
    let v13 = Some(ProtocolVersion::TLSv1_3);
    let (a, b) = trio::testing::memory_stream_pair();
    let mut config = (*server_config(v13)).clone();
    config.send_tls13_tickets = 5000;
    let client = TlsStream::client(a, client_config(v13), localhost())?;
    let server = TlsStream::server(b, Arc::new(config))?;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    open_nursery(async |n| {
        // The tickets go out with the server's first send.
        n.start_soon(async {
            server.send_all(&data).await?;
            server.aclose().await
        });
        let mut got = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        loop {
            let k = client.receive_some(&mut buf).await?;
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        assert!(got == data, "{} bytes received", got.len());
        client.aclose().await
    })
    .await
    .map(drop)
}

/// The bytes an evil server sends: a ServerHello that declares a body of
/// 65 280 bytes, one byte of it per plaintext record. The client refuses it
/// as the server refuses the ClientHello above, with the typed error.
#[trio::test(autojump)]
async fn a_server_handshake_message_in_one_byte_records_is_refused_early() -> trio::Result<()> {
    let (a, b) = trio::testing::memory_stream_pair();
    let client = TlsStream::client(a, client_config(None), localhost())?;
    // ServerHello (type 2), record version 3.3, after the ClientHello.
    refused_in_one_byte_records(&client, &b, 2, [3, 3], true).await
}

/// Stateless tickets of 1 000 bytes, which make NewSessionTicket messages
/// of 1 049 bytes (4 of header, 8 of lifetime and age, 33 of nonce, 2 + 1 000
/// of ticket, 2 of extensions): an odd size, so no 16 KiB record of the
/// flight ends where a ticket does before 16 384 of them (17 MB).
#[derive(Debug)]
struct LongTickets;

impl trio_tls::rustls::server::ProducesTickets for LongTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        3600
    }

    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        Some(vec![7; 1000])
    }

    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// The memory bound of such a flight: rustls keeps all of it until a record
/// ends where a ticket does, so a flight that goes on past 4 MiB without
/// that (5 000 tickets of 1 049 bytes) is refused with the typed error
/// rather than kept, however small each ticket.
#[trio::test(autojump)]
async fn a_ticket_flight_beyond_the_memory_bound_is_refused() -> trio::Result<()> {
    let v13 = Some(ProtocolVersion::TLSv1_3);
    let (a, b) = trio::testing::memory_stream_pair();
    let mut config = (*server_config(v13)).clone();
    config.send_tls13_tickets = 5000;
    config.ticketer = Arc::new(LongTickets);
    let client = TlsStream::client(a, client_config(v13), localhost())?;
    let server = TlsStream::server(b, Arc::new(config))?;
    open_nursery(async |n| {
        n.start_soon(async {
            // The peer may be gone by the time the send flushes.
            let _ = server.send_all(b"after the tickets").await;
            Ok(())
        });
        let mut buf = [0; 64];
        let e = client.receive_some(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), trio::ErrorKind::Broken, "{e}");
        assert!(
            e.to_string()
                .contains("without one ending where a handshake message ends"),
            "{e}"
        );
        // The error stays.
        let e = client.receive_some(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), trio::ErrorKind::Broken, "{e}");
        Ok(())
    })
    .await
    .map(drop)
}

/// The same tickets, 3 000 of them (3.1 MB, under the bound): accepted,
/// and the data after them arrives.
#[trio::test(autojump)]
async fn a_long_ticket_flight_under_the_memory_bound_is_accepted() -> trio::Result<()> {
    let v13 = Some(ProtocolVersion::TLSv1_3);
    let (a, b) = trio::testing::memory_stream_pair();
    let mut config = (*server_config(v13)).clone();
    config.send_tls13_tickets = 3000;
    config.ticketer = Arc::new(LongTickets);
    let client = TlsStream::client(a, client_config(v13), localhost())?;
    let server = TlsStream::server(b, Arc::new(config))?;
    open_nursery(async |n| {
        n.start_soon(server.send_all(b"after the tickets"));
        let mut buf = [0; 64];
        let k = client.receive_some(&mut buf).await?;
        assert_eq!(&buf[..k], b"after the tickets");
        Ok(())
    })
    .await
    .map(drop)
}

/// rustls's own stateful tickets are all 81 bytes: a flight of 55 000 of
/// them (4.5 MB, more than the 4 MiB bound) has a record that ends where a
/// ticket does every 16 384 tickets (1.3 MB), where rustls discards what
/// it kept: the flight is accepted, however long it is.
#[trio::test(autojump)]
async fn a_flight_of_equal_tickets_lines_up_with_its_records_and_is_accepted() -> trio::Result<()> {
    let v13 = Some(ProtocolVersion::TLSv1_3);
    let (a, b) = trio::testing::memory_stream_pair();
    let mut config = (*server_config(v13)).clone();
    config.send_tls13_tickets = 55_000;
    let client = TlsStream::client(a, client_config(v13), localhost())?;
    let server = TlsStream::server(b, Arc::new(config))?;
    open_nursery(async |n| {
        n.start_soon(server.send_all(b"after the tickets"));
        let mut buf = [0; 64];
        let k = client.receive_some(&mut buf).await?;
        assert_eq!(&buf[..k], b"after the tickets");
        Ok(())
    })
    .await
    .map(drop)
}
