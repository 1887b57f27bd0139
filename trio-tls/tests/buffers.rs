//! A stream's buffers give back what a bulk transfer grew once the stream
//! has waited for its peer for a second (module docs of `stream.rs`,
//! "Buffers"), and keep it through shorter pauses.

mod common;

use common::*;
use std::time::Duration;
use trio::open_nursery;
use trio::stream::{BoxStream, ReceiveStream, SendStream};
use trio_tls::TlsStream;
use trio_tls::rustls::ProtocolVersion;

type Tls = TlsStream<BoxStream>;

/// 4 MiB from the client to the server (receives of 64 KiB).
async fn bulk(client: &Tls, server: &Tls) -> trio::Result<()> {
    let data = vec![5u8; 4 << 20];
    open_nursery(async |n| {
        n.start_soon(client.send_all(&data));
        let mut got = 0;
        let mut buf = vec![0; 64 * 1024];
        while got < data.len() {
            got += server.receive_some(&mut buf).await?;
        }
        assert_eq!(got, data.len());
        Ok(())
    })
    .await
    .map(drop)
}

/// After `pause`, the client sends "ping" and the server answers "pong",
/// while each side waits in a receive.
async fn ping_pong_after(client: &Tls, server: &Tls, pause: Duration) -> trio::Result<()> {
    open_nursery(async |n| {
        n.start_soon(async {
            let mut buf = [0; 16];
            let k = client.receive_some(&mut buf).await?;
            assert_eq!(&buf[..k], b"pong");
            Ok(())
        });
        n.start_soon(async {
            trio::sleep(pause).await?;
            client.send_all(b"ping").await
        });
        let mut buf = [0; 16];
        let k = server.receive_some(&mut buf).await?;
        assert_eq!(&buf[..k], b"ping");
        server.send_all(b"pong").await
    })
    .await
    .map(drop)
}

#[trio::test(autojump)]
async fn buffers_shrink_after_a_bulk_transfer_and_an_idle_second() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(Some(ProtocolVersion::TLSv1_3));
    bulk(&client, &server).await?;
    let s = server.buffer_capacities();
    let c = client.buffer_capacities();
    // What the transfer grew: receives of 128 KiB, and 64 KiB sends.
    assert_eq!(s.receive_size, 128 * 1024, "{s:?}");
    assert!(s.incoming >= 128 * 1024, "{s:?}");
    assert!(c.outgoing >= 64 * 1024, "{c:?}");
    ping_pong_after(&client, &server, Duration::from_secs(2)).await?;
    // Each side's receive waited more than a second: each gave its memory
    // back, and received the small message into a 4 KiB buffer.
    let s = server.buffer_capacities();
    let c = client.buffer_capacities();
    assert_eq!(s.receive_size, 4096, "{s:?}");
    assert!(s.incoming <= 4096, "{s:?}");
    assert!(c.outgoing <= 4096, "{c:?}");
    assert!(c.incoming <= 4096 && s.outgoing <= 16 * 1024, "{c:?} {s:?}");
    assert!(c.plain <= 16 * 1024 && s.plain <= 16 * 1024, "{c:?} {s:?}");
    // And a second transfer grows them again.
    bulk(&client, &server).await?;
    let s = server.buffer_capacities();
    assert_eq!(s.receive_size, 128 * 1024, "{s:?}");
    Ok(())
}

#[trio::test(autojump)]
async fn buffers_are_kept_through_a_shorter_pause() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(Some(ProtocolVersion::TLSv1_3));
    bulk(&client, &server).await?;
    let before_s = server.buffer_capacities();
    let before_c = client.buffer_capacities();
    ping_pong_after(&client, &server, Duration::from_millis(500)).await?;
    assert_eq!(server.buffer_capacities(), before_s);
    assert_eq!(client.buffer_capacities(), before_c);
    Ok(())
}

/// A receive cancelled while it waits had no effect, whether it is
/// cancelled before the idle second (the buffers are kept) or after it
/// (they were given back, and the small one is kept for the next
/// receive); the stream then works as before.
#[trio::test(autojump)]
async fn a_receive_cancelled_before_or_after_the_idle_second_had_no_effect() -> trio::Result<()> {
    let (client, server) = memory_tls_pair(Some(ProtocolVersion::TLSv1_3));
    bulk(&client, &server).await?;
    let peak = server.buffer_capacities();
    let mut buf = [0; 16];
    let r = trio::move_on_after(Duration::from_millis(500), server.receive_some(&mut buf)).await?;
    assert_eq!(r, None);
    assert_eq!(server.buffer_capacities(), peak);
    let r = trio::move_on_after(Duration::from_millis(1500), server.receive_some(&mut buf)).await?;
    assert_eq!(r, None);
    let s = server.buffer_capacities();
    assert_eq!(s.receive_size, 4096, "{s:?}");
    assert!(s.incoming <= 4096, "{s:?}");
    ping_pong_after(&client, &server, Duration::ZERO).await?;
    bulk(&client, &server).await
}
