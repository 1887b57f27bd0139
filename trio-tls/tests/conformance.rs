//! `TlsStream` against trio's stream conformance checks (DESIGN §11), over
//! memory, lockstep (clogged) and TCP transports, on TLS 1.3 (half-close)
//! and TLS 1.2 (two-way: `send_eof` is unsupported there).

mod common;

use common::*;
use trio::open_nursery;
use trio::stream::Stream;
use trio::testing::{check_half_closeable_stream, check_two_way_stream};
use trio_tls::TlsStream;
use trio_tls::rustls::ProtocolVersion;

/// Both ends handshaken, for the clogged maker: over a lockstep transport
/// a lazy handshake would make a receiver that unclogs a waiting sender
/// send handshake bytes itself, and block (Trio does the same).
async fn handshaken<S: Stream>(
    (a, b): (TlsStream<S>, TlsStream<S>),
) -> trio::Result<(TlsStream<S>, TlsStream<S>)> {
    open_nursery(async |n| {
        n.start_soon(a.do_handshake());
        n.start_soon(b.do_handshake());
        Ok(())
    })
    .await?;
    Ok((a, b))
}

#[trio::test(autojump)]
async fn tls13_over_memory_streams_is_a_half_closeable_stream() -> trio::Result<()> {
    let v = Some(ProtocolVersion::TLSv1_3);
    check_half_closeable_stream(
        async || Ok(memory_tls_pair(v)),
        Some(async || handshaken(lockstep_tls_pair(v)).await),
    )
    .await
}

#[trio::test(autojump)]
async fn tls12_over_memory_streams_is_a_two_way_stream() -> trio::Result<()> {
    let v = Some(ProtocolVersion::TLSv1_2);
    check_two_way_stream(
        async || Ok(memory_tls_pair(v)),
        Some(async || handshaken(lockstep_tls_pair(v)).await),
    )
    .await
}

#[trio::test]
async fn tls13_over_tcp_is_a_half_closeable_stream() -> trio::Result<()> {
    let v = Some(ProtocolVersion::TLSv1_3);
    check_half_closeable_stream(
        async || {
            let (a, b) = tcp_pair().await?;
            Ok(tls_pair(a, b, v))
        },
        trio::testing::no_clogged_stream_maker(),
    )
    .await
}

#[trio::test]
async fn tls12_over_tcp_is_a_two_way_stream() -> trio::Result<()> {
    let v = Some(ProtocolVersion::TLSv1_2);
    check_two_way_stream(
        async || {
            let (a, b) = tcp_pair().await?;
            Ok(tls_pair(a, b, v))
        },
        trio::testing::no_clogged_stream_maker(),
    )
    .await
}
