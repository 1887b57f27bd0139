//! Tests for the stream traits (`trio::stream`) and the memory streams of
//! `trio::testing`: the conformance checks on every stream type shipped,
//! "cancelled means nothing lost", the buffered helpers, the pump and hooks.

mod common;
use common::settle;

use std::cell::Cell;
use std::rc::Rc;
use trio::stream::{
    AsyncResource, BoxStream, BufferedReceiveStream, ChunkTooLong, ReceiveStream, SendStream,
    StapledStream, Stream, aclose_forcefully,
};
use trio::testing::{
    MemoryReceiveStream, MemorySendStream, check_half_closeable_stream, check_one_way_stream,
    check_two_way_stream, lockstep_stream_one_way_pair, lockstep_stream_pair,
    memory_stream_one_way_pair, memory_stream_pair, memory_stream_pump, no_clogged_stream_maker,
};
use trio::{CancelScope, ErrorKind};

/// Receives once into a buffer of `max` bytes.
async fn recv<R: ReceiveStream + ?Sized>(r: &R, max: usize) -> trio::Result<Vec<u8>> {
    let mut buf = vec![0; max];
    let n = r.receive_some(&mut buf).await?;
    buf.truncate(n);
    Ok(buf)
}

// ----- conformance checks on every stream type shipped (DESIGN §9, §11) ----------

#[trio::test(autojump)]
async fn memory_one_way_streams_pass_the_one_way_check() -> trio::Result<()> {
    check_one_way_stream(
        async || Ok(memory_stream_one_way_pair()),
        no_clogged_stream_maker(),
    )
    .await
}

#[trio::test(autojump)]
async fn memory_stream_pairs_pass_the_half_closeable_check() -> trio::Result<()> {
    check_half_closeable_stream(async || Ok(memory_stream_pair()), no_clogged_stream_maker()).await
}

#[trio::test(autojump)]
async fn lockstep_one_way_streams_pass_the_one_way_check_with_clogging() -> trio::Result<()> {
    let maker = async || Ok(lockstep_stream_one_way_pair());
    check_one_way_stream(maker, Some(maker)).await
}

#[trio::test(autojump)]
async fn lockstep_stream_pairs_pass_the_half_closeable_check_with_clogging() -> trio::Result<()> {
    let maker = async || Ok(lockstep_stream_pair());
    check_half_closeable_stream(maker, Some(maker)).await
}

#[trio::test(autojump)]
async fn a_stapled_stream_of_mixed_halves_passes_the_two_way_check() -> trio::Result<()> {
    // Memory one way, lockstep the other: StapledStream on its own terms.
    let maker = async || {
        let (s1, r1) = memory_stream_one_way_pair();
        let (s2, r2) = lockstep_stream_one_way_pair();
        Ok((StapledStream::new(s1, r2), StapledStream::new(s2, r1)))
    };
    check_two_way_stream(maker, no_clogged_stream_maker()).await
}

#[trio::test(autojump)]
async fn boxed_dyn_streams_pass_the_half_closeable_check() -> trio::Result<()> {
    let maker = async || {
        let (a, b) = lockstep_stream_pair();
        Ok((Box::new(a) as BoxStream, Box::new(b) as BoxStream))
    };
    check_half_closeable_stream(maker, Some(maker)).await
}

// ----- cancelled means no effect (issue 11 acceptance) ----------------------------

#[trio::test(autojump)]
async fn a_cancelled_receive_with_data_queued_consumes_nothing() -> trio::Result<()> {
    let (a, b) = memory_stream_pair();
    a.send_all(b"queued").await?;
    let scope = CancelScope::new();
    scope.cancel();
    let mut buf = [0; 16];
    let r = scope
        .run(async {
            let r = b.receive_some(&mut buf).await;
            assert!(r.as_ref().is_err_and(|e| e.is_cancelled()), "{r:?}");
            r
        })
        .await?;
    assert_eq!(r, None);
    assert_eq!(recv(&b, 16).await?, b"queued");
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancelled_blocked_receive_wakes_at_once_and_the_stream_stays_usable() -> trio::Result<()>
{
    let (a, b) = memory_stream_pair();
    let t0 = trio::current_time();
    let r = trio::move_on_after(5.0, recv(&b, 16)).await?;
    assert_eq!(r, None);
    assert_eq!(trio::current_time() - t0, 5.0); // woke at the deadline, not later
    a.send_all(b"after").await?;
    assert_eq!(recv(&b, 16).await?, b"after");
    // The same on lockstep streams, whose receive parks on shared state.
    let (a, b) = lockstep_stream_pair();
    let r = trio::move_on_after(5.0, recv(&b, 16)).await?;
    assert_eq!(r, None);
    trio::open_nursery(async |n| {
        n.start_soon(a.send_all(b"after"));
        assert_eq!(recv(&b, 16).await?, b"after");
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_receive_cancelled_by_another_task_wakes_at_once() -> trio::Result<()> {
    let (a, b) = memory_stream_pair();
    let scope = CancelScope::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let r = scope.run(recv(&b, 8)).await?;
            assert_eq!(r, None);
            Ok(())
        });
        settle().await;
        scope.cancel();
        Ok(())
    })
    .await?;
    a.send_all(b"z").await?;
    assert_eq!(recv(&b, 8).await?, b"z");
    Ok(())
}

// ----- memory streams: pump, hooks, errors ----------------------------------------

#[trio::test(autojump)]
async fn the_pump_moves_data_and_the_end_at_the_pace_the_test_sets() -> trio::Result<()> {
    let s = MemorySendStream::new();
    let r = MemoryReceiveStream::new();
    assert!(!memory_stream_pump(&s, &r, None)?); // nothing yet
    s.send_all(b"abc").await?;
    assert!(memory_stream_pump(&s, &r, Some(2))?);
    assert_eq!(recv(&r, 8).await?, b"ab");
    assert!(memory_stream_pump(&s, &r, None)?);
    s.close();
    assert!(memory_stream_pump(&s, &r, None)?); // moves the end
    assert_eq!(recv(&r, 8).await?, b"c");
    assert_eq!(recv(&r, 8).await?, b"");
    // A closed receiver makes the pump Broken.
    let s = MemorySendStream::new();
    let r = MemoryReceiveStream::new();
    s.send_all(b"x").await?;
    r.close();
    assert_eq!(
        memory_stream_pump(&s, &r, None).unwrap_err().kind(),
        ErrorKind::Broken
    );
    Ok(())
}

#[trio::test(autojump)]
async fn a_trickle_hook_delivers_a_byte_per_second() -> trio::Result<()> {
    // Trio's documented example: replace the send hook to trickle bytes.
    let (left, right) = memory_stream_pair();
    let (tx, rx) = (left.send_stream.clone(), right.receive_stream.clone());
    left.send_stream.set_send_all_hook(move || {
        let (tx, rx) = (tx.clone(), rx.clone());
        async move {
            while memory_stream_pump(&tx, &rx, Some(1))? {
                trio::sleep(1.0).await?;
            }
            Ok(())
        }
    });
    let t0 = trio::current_time();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            left.send_all(b"123").await?;
            left.send_eof().await
        });
        let mut got = Vec::new();
        loop {
            let chunk = recv(&right, 10).await?;
            if chunk.is_empty() {
                break;
            }
            assert_eq!(chunk.len(), 1);
            got.extend(chunk);
        }
        assert_eq!(got, b"123");
        Ok(())
    })
    .await?;
    assert_eq!(trio::current_time() - t0, 3.0);
    Ok(())
}

#[trio::test(autojump)]
async fn hooks_run_and_can_be_cleared() -> trio::Result<()> {
    let calls = Rc::new(Cell::new(0));
    let r = MemoryReceiveStream::new();
    let c = calls.clone();
    r.set_receive_some_hook(move || {
        c.set(c.get() + 1);
        async { Ok(()) }
    });
    let c = calls.clone();
    r.set_close_hook(move || c.set(c.get() + 10));
    r.put_data(b"x")?;
    recv(&r, 1).await?;
    assert_eq!(calls.get(), 1);
    r.clear_receive_some_hook();
    r.put_data(b"y")?;
    recv(&r, 1).await?;
    assert_eq!(calls.get(), 1);
    r.aclose().await?;
    assert_eq!(calls.get(), 11);
    assert_eq!(r.put_data(b"z").unwrap_err().kind(), ErrorKind::Closed);

    let s = MemorySendStream::new();
    let c = calls.clone();
    s.set_wait_send_all_might_not_block_hook(move || {
        c.set(c.get() + 100);
        async { Ok(()) }
    });
    s.wait_send_all_might_not_block().await?;
    assert_eq!(calls.get(), 111);
    assert_eq!(
        s.get_data_nowait(None).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(
        s.get_data(Some(0)).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    Ok(())
}

#[trio::test(autojump)]
async fn get_data_waits_for_data_then_sees_the_end() -> trio::Result<()> {
    let s = MemorySendStream::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            assert_eq!(s.get_data(None).await?, b"late");
            assert_eq!(s.get_data(None).await?, b"");
            Ok(())
        });
        trio::sleep(1.0).await?;
        s.send_all(b"late").await?;
        s.aclose().await
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn aclose_forcefully_closes_and_is_not_an_error() -> trio::Result<()> {
    let (a, b) = memory_stream_pair();
    aclose_forcefully(&a).await?;
    assert_eq!(
        a.send_all(b"x").await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(recv(&b, 4).await?, b""); // the peer sees the end
    Ok(())
}

#[trio::test(autojump)]
async fn send_eof_shares_the_send_slot_and_is_idempotent() -> trio::Result<()> {
    let (a, b) = lockstep_stream_pair();
    let r = trio::open_nursery(async |n| {
        n.start_soon(a.send_all(b"x")); // blocks: nobody receives
        settle().await;
        a.send_eof().await
    })
    .await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Busy);
    a.send_eof().await?;
    a.send_eof().await?;
    assert_eq!(recv(&b, 4).await?, b"");
    Ok(())
}

// ----- buffered helpers ------------------------------------------------------------

#[trio::test(autojump)]
async fn buffered_helpers_split_a_byte_stream() -> trio::Result<()> {
    let (tx, rx) = memory_stream_one_way_pair();
    let rx = BufferedReceiveStream::new(rx);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            // Sent in awkward pieces: the helpers must reassemble.
            for piece in [
                &b"GET / HT"[..],
                b"TP/1.1\r",
                b"\nHost: x\r\n\r\nbo",
                b"dy!tail",
            ] {
                tx.send_all(piece).await?;
                trio::sleep(1.0).await?;
            }
            tx.aclose().await
        });
        assert_eq!(rx.receive_until(b"\r\n", 100).await?, b"GET / HTTP/1.1\r\n");
        assert_eq!(
            rx.receive_until(b"\r\n\r\n", 100).await?,
            b"Host: x\r\n\r\n"
        );
        assert_eq!(rx.receive_exactly(5).await?, b"body!");
        assert_eq!(rx.receive_line(100).await?, b"tail"); // the end, no newline
        assert_eq!(rx.receive_line(100).await?, b"");
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_chunk_past_max_size_is_an_error_and_stays_buffered() -> trio::Result<()> {
    let (tx, rx) = memory_stream_one_way_pair();
    let rx = BufferedReceiveStream::new(rx);
    tx.send_all(b"0123456789\n").await?;
    let e = rx.receive_line(5).await.unwrap_err();
    assert_eq!(
        e.downcast_ref::<ChunkTooLong>(),
        Some(&ChunkTooLong { max_size: 5 })
    );
    // A limit that fits the line exactly, delimiter included, is fine.
    assert_eq!(rx.receive_line(11).await?, b"0123456789\n");
    tx.send_all(b"abcdef").await?;
    tx.aclose().await?;
    let e = rx.receive_to_end(3).await.unwrap_err();
    assert!(e.downcast_ref::<ChunkTooLong>().is_some());
    assert_eq!(rx.receive_to_end(6).await?, b"abcdef");
    assert_eq!(
        rx.receive_until(b"", 4).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    Ok(())
}

#[trio::test(autojump)]
async fn receive_exactly_at_an_early_end_is_broken_and_keeps_the_bytes() -> trio::Result<()> {
    let (tx, rx) = memory_stream_one_way_pair();
    let rx = BufferedReceiveStream::new(rx);
    tx.send_all(b"abc").await?;
    tx.aclose().await?;
    assert_eq!(
        rx.receive_exactly(5).await.unwrap_err().kind(),
        ErrorKind::Broken
    );
    assert_eq!(rx.buffered_len(), 3);
    assert_eq!(recv(&rx, 10).await?, b"abc");
    assert_eq!(recv(&rx, 10).await?, b"");
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancelled_helper_loses_nothing() -> trio::Result<()> {
    let (tx, rx) = memory_stream_one_way_pair();
    let rx = BufferedReceiveStream::new(rx);
    tx.send_all(b"hel").await?;
    // Each helper reads "hel" (and more), then times out waiting for the rest.
    assert_eq!(trio::move_on_after(1.0, rx.receive_line(100)).await?, None);
    assert_eq!(trio::move_on_after(1.0, rx.receive_exactly(6)).await?, None);
    assert_eq!(
        trio::move_on_after(1.0, rx.receive_to_end(100)).await?,
        None
    );
    assert_eq!(rx.buffered_len(), 3);
    tx.send_all(b"lo\nworld").await?;
    assert_eq!(rx.receive_line(100).await?, b"hello\n");
    // Already cancelled with everything buffered: still Cancelled, nothing taken.
    let scope = CancelScope::new();
    scope.cancel();
    assert_eq!(scope.run(rx.receive_exactly(5)).await?, None);
    assert_eq!(rx.receive_exactly(5).await?, b"world");
    Ok(())
}

#[trio::test(autojump)]
async fn buffered_helpers_checkpoint_even_from_the_buffer() -> trio::Result<()> {
    let (tx, rx) = memory_stream_one_way_pair();
    let rx = BufferedReceiveStream::new(rx);
    tx.send_all(b"a\nb\n").await?;
    trio::testing::assert_checkpoints(rx.receive_line(10)).await?; // reads
    trio::testing::assert_checkpoints(rx.receive_line(10)).await?; // from the buffer
    Ok(())
}

#[trio::test(autojump)]
async fn two_helpers_at_once_are_busy() -> trio::Result<()> {
    let (_tx, rx) = memory_stream_one_way_pair();
    let rx = BufferedReceiveStream::new(rx);
    let r = trio::open_nursery(async |n| {
        n.start_soon(async { rx.receive_line(10).await.map(drop) });
        settle().await;
        rx.receive_exactly(1).await.map(drop)
    })
    .await;
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Busy);
    Ok(())
}

/// Found by the stress suite (`TRIO_STRESS_SEED=85`, features
/// `+streams`): after its own `aclose`, a `BufferedReceiveStream` still
/// handed out the bytes it held, where every operation must fail with
/// Closed (stream contract, rule 2).
#[trio::test(autojump)]
async fn a_closed_buffered_stream_returns_closed_not_its_buffered_bytes() -> trio::Result<()> {
    let (tx, rx) = memory_stream_one_way_pair();
    let rx = BufferedReceiveStream::new(rx);
    tx.send_all(b"ab\ncd\nef").await?;
    assert_eq!(rx.receive_line(100).await?, b"ab\n");
    assert!(rx.buffered_len() > 0);
    rx.aclose().await?;
    let mut buf = [0; 8];
    let kinds = [
        rx.receive_some(&mut buf)
            .await
            .map(drop)
            .unwrap_err()
            .kind(),
        rx.receive_exactly(2).await.map(drop).unwrap_err().kind(),
        rx.receive_line(100).await.map(drop).unwrap_err().kind(),
        rx.receive_until(b"e", 100)
            .await
            .map(drop)
            .unwrap_err()
            .kind(),
        rx.receive_to_end(100).await.map(drop).unwrap_err().kind(),
    ];
    assert_eq!(kinds, [ErrorKind::Closed; 5]);
    assert_eq!(rx.buffered_len(), 0);
    // Idempotent.
    rx.aclose().await?;
    Ok(())
}

/// A close that comes while a helper sits at its last schedule point (its
/// bytes already buffered) empties the buffer under it: the helper must
/// fail with Closed, not take bytes that are gone (a panic before the fix).
#[test]
fn a_close_at_a_helpers_last_schedule_point_gives_closed() {
    let mut outcomes = Vec::new();
    // The closer checkpoints a few times first, so that for some delay and
    // scheduling seed its turn comes while the helper is at that point.
    for (seed, delay) in (0..8).flat_map(|s| (0..3).map(move |d| (s, d))) {
        let r = trio::Runner::new()
            .clock(trio::testing::MockClock::autojump())
            .seed(seed)
            .run(async {
                let (tx, rx) = memory_stream_one_way_pair();
                let rx = BufferedReceiveStream::new(rx);
                tx.send_all(b"ab\ncd").await?;
                assert_eq!(rx.receive_line(100).await?, b"ab\n");
                let got = trio::open_nursery(async |n| {
                    n.start_soon(async {
                        for _ in 0..delay {
                            trio::checkpoint().await?;
                        }
                        rx.aclose().await
                    });
                    trio::checkpoint().await?;
                    // From the buffer: no read, one schedule point.
                    Ok(rx.receive_exactly(2).await)
                })
                .await?
                .expect("not cancelled");
                Ok(got.map_err(|e| e.kind()))
            });
        let got = r.expect("the run");
        assert!(
            got == Ok(b"cd".to_vec()) || got == Err(ErrorKind::Closed),
            "seed {seed}, delay {delay}: {got:?}"
        );
        outcomes.push(got.is_err());
    }
    assert!(outcomes.contains(&true), "no seed closed under the helper");
}

/// Found by the stress suite (`TRIO_STRESS_SEED=3366`, features
/// `+streams`): a lockstep `receive_some` that found data, then let a
/// cancelled `send_all` withdraw it during its schedule point, returned 0
/// (end of stream) although the sender was still open. It must wait for
/// more data (or the end) instead.
#[test]
fn a_lockstep_receive_does_not_report_the_end_when_a_cancelled_send_withdraws() {
    for seed in 0..16 {
        let r = trio::Runner::new()
            .clock(trio::testing::MockClock::autojump())
            .seed(seed)
            .run(async {
                let (tx, rx) = lockstep_stream_one_way_pair();
                let closed = Cell::new(false);
                trio::open_nursery(async |n| {
                    n.start_soon(async {
                        // Cut at t = 1: withdraws what was not taken.
                        let _ = trio::move_on_after(1.0, tx.send_all(b"abc")).await;
                        trio::sleep(1.0).await?;
                        closed.set(true);
                        tx.aclose().await
                    });
                    // Also at t = 1: in the same batch as the cut, in an
                    // order the seed shuffles. Finding the data, the
                    // receive reaches its schedule point, where the cut
                    // may withdraw it.
                    trio::sleep(1.0).await?;
                    let mut buf = [0; 8];
                    let k = rx.receive_some(&mut buf).await?;
                    Ok((buf[..k].to_vec(), closed.get()))
                })
                .await
            });
        let (got, closed) = r.expect("the run").expect("not cancelled");
        assert!(
            got == b"abc" || (got.is_empty() && closed),
            "seed {seed}: received {got:?} with the sender {}",
            if closed { "closed" } else { "still open" }
        );
    }
}

#[test]
fn stream_types_are_debug() {
    let (a, _b) = memory_stream_pair();
    let s = format!("{a:?}");
    assert!(
        s.contains("StapledStream") && s.contains("MemorySendStream"),
        "{s}"
    );
    let (l, _m) = lockstep_stream_pair();
    assert!(format!("{l:?}").contains("LockstepSendStream"));
    let rx = BufferedReceiveStream::new(memory_stream_one_way_pair().1);
    assert!(format!("{rx:?}").contains("buffered"));
}

/// `Stream` bounds compose: a generic echo works on any of them.
async fn echo_once<S: Stream>(s: &S) -> trio::Result<()> {
    let data = recv(s, 64).await?;
    s.send_all(&data).await?;
    s.send_eof().await
}

#[trio::test(autojump)]
async fn a_generic_echo_works_on_memory_and_boxed_streams() -> trio::Result<()> {
    let (a, b) = memory_stream_pair();
    let b: BoxStream = Box::new(b);
    trio::open_nursery(async |n| {
        n.start_soon(echo_once(&b));
        a.send_all(b"ping").await?;
        assert_eq!(recv(&a, 64).await?, b"ping");
        assert_eq!(recv(&a, 64).await?, b"");
        Ok(())
    })
    .await?;
    Ok(())
}

// ----- listeners and their boxed form ---------------------------------------------

/// A listener that hands out the ends of memory stream pairs queued by the
/// test (the other ends go to the "clients").
struct MemoryListener {
    incoming: trio::MemoryReceiveChannel<trio::testing::MemoryStream>,
}

impl AsyncResource for MemoryListener {
    async fn aclose(&self) -> trio::Result<()> {
        self.incoming.aclose().await
    }
}

impl trio::stream::Listener for MemoryListener {
    type Stream = trio::testing::MemoryStream;
    async fn accept(&self) -> trio::Result<Self::Stream> {
        self.incoming.receive().await
    }
}

#[trio::test(autojump)]
async fn a_boxed_listener_accepts_boxed_streams() -> trio::Result<()> {
    use trio::stream::{BoxListener, Listener};
    let (tx, rx) = trio::open_memory_channel(1);
    let listener: BoxListener = Box::new(MemoryListener { incoming: rx });
    let (server_end, client_end) = memory_stream_pair();
    assert!(tx.send(server_end).await.is_ok());
    let conn: BoxStream = listener.accept().await?;
    client_end.send_all(b"hi").await?;
    assert_eq!(recv(&conn, 8).await?, b"hi");
    listener.aclose().await?;
    let Err(e) = listener.accept().await else {
        panic!("accept after aclose succeeded");
    };
    assert_eq!(e.kind(), ErrorKind::Closed);
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancelled_lockstep_receive_leaves_the_senders_data() -> trio::Result<()> {
    let (s, r) = lockstep_stream_one_way_pair();
    trio::open_nursery(async |n| {
        n.start_soon(s.send_all(b"waiting"));
        settle().await; // the sender has queued its data and blocks
        let scope = CancelScope::new();
        scope.cancel();
        assert_eq!(scope.run(recv(&r, 16)).await?, None);
        assert_eq!(recv(&r, 16).await?, b"waiting");
        Ok(())
    })
    .await?;
    Ok(())
}
