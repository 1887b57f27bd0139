//! A transport operation's schedule point passed in place (when nothing
//! else in the run is ready) is not a `Pending`: the TLS operation still
//! counts it as its one schedule point. Each test compares a run with a
//! no-op instrument (no passes in place) with the same run without one.

mod common;

use common::*;
use std::rc::Rc;
use trio::lowlevel::watch_checkpoints;
use trio::open_nursery;
use trio::stream::{ReceiveStream, SendStream};
use trio_tls::rustls::ProtocolVersion;

struct Noop;
impl trio::lowlevel::Instrument for Noop {}

/// A pair of trio socket streams over a Unix socket pair (whose send
/// buffer takes a 64 KiB chunk without waiting).
fn unix_pair() -> (trio::socket::SocketStream, trio::socket::SocketStream) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let s =
        |u| trio::socket::SocketStream::new(trio::socket::Socket::try_from(u).unwrap()).unwrap();
    (s(a), s(b))
}

/// Schedule points of one TLS `send_all` of two encryption chunks (64 KiB
/// and 1 byte) over a Unix socket pair, in a run where nothing else is ready; the server
/// drains afterwards. With `instrumented`, no pass in place happens (the
/// old behaviour).
fn schedule_points_of_a_two_chunk_send(instrumented: bool) -> u64 {
    let mut runner = trio::Runner::new();
    if instrumented {
        runner = runner.instrument(Rc::new(Noop));
    }
    runner
        .run(async {
            let (a, b) = unix_pair();
            let (client, server) = tls_pair(a, b, Some(ProtocolVersion::TLSv1_3));
            open_nursery(async |n| {
                n.start_soon(client.do_handshake());
                n.start_soon(server.do_handshake());
                Ok(())
            })
            .await?;
            let big = vec![7u8; 64 * 1024 + 1];
            let watch = watch_checkpoints()?;
            client.send_all(&big).await?;
            let sp = watch.counts().schedule_points;
            let mut got = 0;
            let mut buf = vec![0; 64 * 1024];
            while got < big.len() {
                got += server.receive_some(&mut buf).await?;
            }
            Ok(sp)
        })
        .unwrap()
}

/// The first chunk's transport send keeps its own schedule point; it
/// passes in place (nothing else ready), and `noting` sees it in the run's
/// count: one schedule point in all, as without passes ("Schedule points"
/// in trio-tls's stream docs).
#[test]
fn a_two_chunk_send_takes_one_schedule_point() {
    let old = schedule_points_of_a_two_chunk_send(true);
    let new = schedule_points_of_a_two_chunk_send(false);
    assert_eq!((old, new), (1, 1));
}

/// Schedule points of each side's `do_handshake` (client, server), run as
/// two children, over a Unix socket pair.
fn handshake_schedule_points(instrumented: bool) -> (u64, u64) {
    use trio::testing::measure_checkpoints;
    let mut runner = trio::Runner::new();
    if instrumented {
        runner = runner.instrument(Rc::new(Noop));
    }
    runner
        .run(async {
            let (a, b) = unix_pair();
            let (client, server) = tls_pair(a, b, Some(ProtocolVersion::TLSv1_3));
            let (c, s) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
            open_nursery(async |n| {
                n.start_soon(async {
                    let (r, counts) = measure_checkpoints(client.do_handshake()).await;
                    c.set(counts.schedule_points);
                    r
                });
                n.start_soon(async {
                    let (r, counts) = measure_checkpoints(server.do_handshake()).await;
                    s.set(counts.schedule_points);
                    r
                });
                Ok(())
            })
            .await?;
            Ok((c.get(), s.get()))
        })
        .unwrap()
}

/// A handshake's schedule points, as before the change.
#[test]
fn handshake_schedule_points_as_before() {
    let old = handshake_schedule_points(true);
    let new = handshake_schedule_points(false);
    assert_eq!(new, old);
}
