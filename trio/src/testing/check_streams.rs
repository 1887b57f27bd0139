//! Conformance checks for any stream implementation (Trio's
//! `trio.testing.check_one_way_stream` and siblings). What they check, and
//! how they fail, is documented once, in
//! [`testing`'s module docs](crate::testing#stream-conformance-checks).
//!
//! Layout: one numbered block per scenario, each on a fresh pair that
//! `close_both` closes forcefully afterwards (Trio's `_ForceCloseBoth`), so
//! a failing scenario never leaves a stream open for the next.

use super::{assert_checkpoints, wait_all_tasks_blocked};
use crate::error::{ErrorKind, Result};
use crate::stream::{AsyncResource, ReceiveStream, SendStream, Stream, aclose_forcefully};
use crate::{CancelScope, open_nursery};
use std::cell::RefCell;
use std::fmt::Debug;

/// Panics with the check's prefix.
macro_rules! fail {
    ($($arg:tt)*) => {
        panic!("stream conformance check failed: {}", format!($($arg)*))
    };
}

/// Expects `r` to be an error of `kind`.
#[track_caller]
fn expect_kind<T: Debug>(r: Result<T>, kind: ErrorKind, what: &str) {
    match r {
        Err(e) if e.kind() == kind => {}
        other => fail!("{what}: expected an error of kind {kind:?}, got {other:?}"),
    }
}

/// `None`, typed as a clogged stream maker: for a check without one.
///
/// ```
/// use trio::testing::{check_half_closeable_stream, memory_stream_pair, no_clogged_stream_maker};
/// # trio::testing::run_test(trio::testing::TestOptions::new().autojump(), async {
/// check_half_closeable_stream(async || Ok(memory_stream_pair()), no_clogged_stream_maker()).await?;
/// # Ok(()) });
/// ```
pub fn no_clogged_stream_maker<A, B>() -> Option<NoStreamMaker<A, B>> {
    None
}

/// The type of [`no_clogged_stream_maker`]'s `None`: a maker that is never
/// called.
pub type NoStreamMaker<A, B> = fn() -> std::future::Ready<Result<(A, B)>>;

async fn send_checked<S: SendStream + ?Sized>(s: &S, data: &[u8]) -> Result<()> {
    assert_checkpoints(s.send_all(data)).await
}

async fn receive_checked<R: ReceiveStream + ?Sized>(r: &R, max: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0; max];
    let n = assert_checkpoints(r.receive_some(&mut buf)).await?;
    if n > max {
        fail!("receive_some returned {n} for a buffer of {max} bytes");
    }
    buf.truncate(n);
    Ok(buf)
}

async fn receive_1_expecting<R: ReceiveStream + ?Sized>(r: &R, expected: &[u8]) -> Result<()> {
    let got = receive_checked(r, 1).await?;
    if got != expected {
        fail!("receive_some(1) returned {got:?}, expected {expected:?}");
    }
    Ok(())
}

async fn aclose_checked<A: AsyncResource + ?Sized>(a: &A) -> Result<()> {
    assert_checkpoints(a.aclose()).await
}

/// Runs one scenario's `outcome`, then closes both ends forcefully (Trio's
/// `_ForceCloseBoth`). The scenario's error comes first.
async fn close_both<A, B>(a: &A, b: &B, outcome: Result<()>) -> Result<()>
where
    A: AsyncResource + ?Sized,
    B: AsyncResource + ?Sized,
{
    let ra = aclose_forcefully(a).await;
    let rb = aclose_forcefully(b).await;
    outcome.and(ra).and(rb)
}

/// Sends until an error (a bounded number of times): the error.
async fn send_until_error<S: SendStream + ?Sized>(s: &S) -> Result<()> {
    // Enough to fill any sane transport buffer many times over; a stream
    // that never reports the closed receiver fails instead of hanging.
    for _ in 0..10_000 {
        send_checked(s, &[b'x'; 100]).await?;
    }
    fail!("10 000 sends to a closed receiver all succeeded (expected Broken)")
}

/// Expects `op` to fail with `Busy` when run concurrently with `first`
/// (started first, and cancelled by the failure).
async fn expect_busy(
    first: impl Future<Output = Result<()>>,
    second: impl Future<Output = Result<()>>,
    what: &str,
) {
    let r = open_nursery(async |n| {
        n.start_soon(first);
        wait_all_tasks_blocked().await?;
        n.start_soon(second);
        Ok(())
    })
    .await;
    expect_kind(r, ErrorKind::Busy, what);
}

/// Checks a one-way stream: `stream_maker` returns a connected
/// `(sender, receiver)` pair, `clogged_stream_maker` (optional, see the
/// [`testing` docs](crate::testing#stream-conformance-checks)) a pair whose sender blocks until the receiver
/// receives. Panics on a violation (see [failure](crate::testing#failure)).
///
/// ```
/// use trio::testing::{check_one_way_stream, lockstep_stream_one_way_pair};
/// # trio::testing::run_test(trio::testing::TestOptions::new().autojump(), async {
/// let maker = async || Ok(lockstep_stream_one_way_pair());
/// check_one_way_stream(maker, Some(maker)).await?;
/// # Ok(()) });
/// ```
pub async fn check_one_way_stream<S, R, M, C>(
    mut stream_maker: M,
    mut clogged_stream_maker: Option<C>,
) -> Result<()>
where
    S: SendStream,
    R: ReceiveStream,
    M: AsyncFnMut() -> Result<(S, R)>,
    C: AsyncFnMut() -> Result<(S, R)>,
{
    // 1. Basics, argument checks, Busy, Broken and Closed.
    let (s, r) = stream_maker().await?;
    let outcome = async {
        let (s, r) = (&s, &r);
        open_nursery(async |n| {
            n.start_soon(send_checked(s, b"x"));
            n.start_soon(receive_1_expecting(r, b"x"));
            Ok(())
        })
        .await?;
        // An empty send means nothing special.
        open_nursery(async |n| {
            n.start_soon(async {
                send_checked(s, b"").await?;
                send_checked(s, b"y").await
            });
            n.start_soon(receive_1_expecting(r, b"y"));
            Ok(())
        })
        .await?;
        // An empty buffer is invalid; a large one is fine.
        expect_kind(
            r.receive_some(&mut []).await,
            ErrorKind::InvalidArgument,
            "receive_some with an empty buffer",
        );
        open_nursery(async |n| {
            n.start_soon(send_checked(s, b"x"));
            let got = receive_checked(r, 4096).await?;
            if got != b"x" {
                fail!("receive_some(4096) returned {got:?}, expected \"x\"");
            }
            Ok(())
        })
        .await?;
        // Two receivers at once: Busy.
        let r2 = open_nursery(async |n| {
            n.start_soon(async { receive_checked(r, 1).await.map(drop) });
            n.start_soon(async { receive_checked(r, 1).await.map(drop) });
            Ok(())
        })
        .await;
        expect_kind(r2, ErrorKind::Busy, "two concurrent receive_some");
        // wait_send_all_might_not_block returns while a receive is blocked
        // on an empty stream.
        open_nursery(async |n| {
            let scope = n.cancel_scope();
            n.start_soon(async move {
                assert_checkpoints(s.wait_send_all_might_not_block()).await?;
                scope.cancel();
                Ok(())
            });
            n.start_soon(async { receive_checked(r, 1).await.map(drop) });
            Ok(())
        })
        .await?;
        // Closing the receiver makes the sender Broken (eventually), and it
        // stays Broken.
        open_nursery(async |n| {
            n.start_soon(async {
                expect_kind(
                    send_until_error(s).await,
                    ErrorKind::Broken,
                    "send_all after the receiver closed",
                );
            });
            n.start_soon(aclose_checked(r));
            Ok(())
        })
        .await?;
        expect_kind(
            send_checked(s, &[b'x'; 100]).await,
            ErrorKind::Broken,
            "send_all once Broken was reported (Broken must stick)",
        );
        expect_kind(
            receive_checked(r, 4096).await,
            ErrorKind::Closed,
            "receive_some after the receiver's own close",
        );
        aclose_checked(r).await?;
        aclose_checked(r).await?;
        aclose_checked(s).await?;
        expect_kind(
            send_checked(s, &[b'x'; 100]).await,
            ErrorKind::Closed,
            "send_all after the sender's own close",
        );
        expect_kind(
            send_checked(s, b"").await,
            ErrorKind::Closed,
            "an empty send_all after the sender's own close",
        );
        expect_kind(
            assert_checkpoints(s.wait_send_all_might_not_block()).await,
            ErrorKind::Closed,
            "wait_send_all_might_not_block after the sender's own close",
        );
        aclose_checked(s).await?;
        aclose_checked(s).await
    }
    .await;
    close_both(&s, &r, outcome).await?;

    // 2. Send, then close gracefully: the receiver gets the data, then the end.
    let (s, r) = stream_maker().await?;
    let outcome = open_nursery(async |n| {
        n.start_soon(async {
            send_checked(&s, b"y").await?;
            aclose_checked(&s).await
        });
        n.start_soon(async {
            wait_all_tasks_blocked().await?;
            receive_1_expecting(&r, b"y").await?;
            receive_1_expecting(&r, b"").await?;
            aclose_checked(&r).await
        });
        Ok(())
    })
    .await
    .map(drop);
    close_both(&s, &r, outcome).await?;

    // 3. A forcefully closed receiver: Broken for the sender, Closed for itself.
    let (s, r) = stream_maker().await?;
    let outcome = async {
        aclose_forcefully(&r).await?;
        expect_kind(
            send_until_error(&s).await,
            ErrorKind::Broken,
            "send_all after the receiver closed forcefully",
        );
        expect_kind(
            receive_checked(&r, 4096).await,
            ErrorKind::Closed,
            "receive_some after a forceful close",
        );
        Ok(())
    }
    .await;
    close_both(&s, &r, outcome).await?;

    // 4. A forcefully closed sender: Closed for itself; the receiver sees the
    //    end or Broken, never data, never a hang.
    let (s, r) = stream_maker().await?;
    let outcome = async {
        aclose_forcefully(&s).await?;
        expect_kind(
            send_checked(&s, b"123").await,
            ErrorKind::Closed,
            "send_all after a forceful close",
        );
        match receive_checked(&r, 1).await {
            Ok(got) if got.is_empty() => {}
            Err(e) if e.kind() == ErrorKind::Broken => {}
            other => fail!(
                "receive_some after the sender closed forcefully: expected the end or Broken, got {other:?}"
            ),
        }
        Ok(())
    }
    .await;
    close_both(&s, &r, outcome).await?;

    // 5. A cancelled aclose still closes.
    let (s, r) = stream_maker().await?;
    let outcome = async {
        let scope = CancelScope::new();
        scope.cancel();
        scope.run(r.aclose()).await?;
        let scope = CancelScope::new();
        scope.cancel();
        scope.run(s.aclose()).await?;
        expect_kind(
            send_checked(&s, b"123").await,
            ErrorKind::Closed,
            "send_all after a cancelled aclose",
        );
        expect_kind(
            receive_checked(&r, 4096).await,
            ErrorKind::Closed,
            "receive_some after a cancelled aclose",
        );
        Ok(())
    }
    .await;
    close_both(&s, &r, outcome).await?;

    // 6. Cancelled operations, then a graceful close.
    let (s, r) = stream_maker().await?;
    let outcome = async {
        let scope = CancelScope::new();
        scope.cancel();
        scope
            .run(open_nursery(async |n| {
                n.start_soon(async {
                    let got = send_checked(&s, b"x").await;
                    if !got.as_ref().is_err_and(|e| e.is_cancelled()) {
                        fail!("send_all in a cancelled scope: expected Cancelled, got {got:?}");
                    }
                });
                n.start_soon(async {
                    let got = receive_checked(&r, 1).await;
                    if !got.as_ref().is_err_and(|e| e.is_cancelled()) {
                        fail!("receive_some in a cancelled scope: expected Cancelled, got {got:?}");
                    }
                });
                Ok(())
            }))
            .await?;
        open_nursery(async |n| {
            n.start_soon(aclose_checked(&s));
            n.start_soon(aclose_checked(&r));
            Ok(())
        })
        .await
        .map(drop)
    }
    .await;
    close_both(&s, &r, outcome).await?;

    // 7. Closing the receiver wakes a blocked receive_some with Closed.
    let (s, r) = stream_maker().await?;
    let outcome = open_nursery(async |n| {
        n.start_soon(async {
            let mut buf = [0; 10];
            expect_kind(
                r.receive_some(&mut buf).await,
                ErrorKind::Closed,
                "a receive_some blocked while its stream was closed",
            );
        });
        wait_all_tasks_blocked().await?;
        aclose_forcefully(&r).await
    })
    .await
    .map(drop);
    close_both(&s, &r, outcome).await?;

    let Some(clogged) = clogged_stream_maker.as_mut() else {
        return Ok(());
    };

    // 8. wait_send_all_might_not_block wakes once the receiver drains.
    let (s, r) = clogged().await?;
    let record = RefCell::new(Vec::new());
    let outcome = open_nursery(async |n| {
        let scope = n.cancel_scope();
        let (s, r, record) = (&s, &r, &record);
        n.start_soon(async move {
            record.borrow_mut().push("waiter sleeping");
            assert_checkpoints(s.wait_send_all_might_not_block()).await?;
            record.borrow_mut().push("waiter woke up");
            scope.cancel();
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        n.start_soon(async move {
            wait_all_tasks_blocked().await?;
            record.borrow_mut().push("receiver starting");
            let mut buf = vec![0; 16384];
            while r.receive_some(&mut buf).await? > 0 {}
            Ok(())
        });
        Ok(())
    })
    .await
    .map(drop);
    close_both(&s, &r, outcome).await?;
    let record = record.into_inner();
    if record != ["waiter sleeping", "receiver starting", "waiter woke up"] {
        fail!("wait_send_all_might_not_block on a clogged stream: events in order {record:?}");
    }

    // 9. Concurrent send-side calls: Busy.
    let (s, r) = clogged().await?;
    expect_busy(
        s.wait_send_all_might_not_block(),
        s.wait_send_all_might_not_block(),
        "two concurrent wait_send_all_might_not_block",
    )
    .await;
    expect_busy(
        s.wait_send_all_might_not_block(),
        s.send_all(b"123"),
        "send_all during wait_send_all_might_not_block",
    )
    .await;
    close_both(&s, &r, Ok(())).await?;
    let (s, r) = clogged().await?;
    expect_busy(
        s.send_all(b"123"),
        s.send_all(b"123"),
        "two concurrent send_all",
    )
    .await;
    close_both(&s, &r, Ok(())).await?;

    // 10. Closing the receiver lets a blocked wait_send_all_might_not_block
    //     return (Ok or Broken), and one started after the close.
    let (s, r) = clogged().await?;
    let outcome = open_nursery(async |n| {
        n.start_soon(async {
            match assert_checkpoints(s.wait_send_all_might_not_block()).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Broken => {}
                Err(e) => fail!(
                    "wait_send_all_might_not_block when the receiver closed: expected Ok or Broken, got {e:?}"
                ),
            }
        });
        n.start_soon(async {
            wait_all_tasks_blocked().await?;
            aclose_forcefully(&r).await
        });
        Ok(())
    })
    .await
    .map(drop);
    close_both(&s, &r, outcome).await?;
    let (s, r) = clogged().await?;
    aclose_forcefully(&r).await?;
    match assert_checkpoints(s.wait_send_all_might_not_block()).await {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Broken => {}
        Err(e) => fail!(
            "wait_send_all_might_not_block after the receiver closed: expected Ok or Broken, got {e:?}"
        ),
    }
    close_both(&s, &r, Ok(())).await?;

    // 11. Closing the sender wakes its blocked send_all and
    //     wait_send_all_might_not_block with Closed.
    let (s, r) = clogged().await?;
    let outcome = open_nursery(async |n| {
        n.start_soon(async {
            wait_all_tasks_blocked().await?;
            aclose_forcefully(&s).await
        });
        expect_kind(
            s.send_all(b"xyzzy").await,
            ErrorKind::Closed,
            "a send_all blocked while its stream was closed",
        );
        Ok(())
    })
    .await
    .map(drop);
    close_both(&s, &r, outcome).await?;
    let (s, r) = clogged().await?;
    let outcome = open_nursery(async |n| {
        n.start_soon(async {
            wait_all_tasks_blocked().await?;
            aclose_forcefully(&s).await
        });
        expect_kind(
            s.wait_send_all_might_not_block().await,
            ErrorKind::Closed,
            "a wait_send_all_might_not_block blocked while its stream was closed",
        );
        Ok(())
    })
    .await
    .map(drop);
    close_both(&s, &r, outcome).await
}

/// Checks a two-way stream: everything [`check_one_way_stream`] checks, in
/// both directions, then full-duplex bulk transfer (1 MiB each way at once,
/// in random-sized pieces) and a close seen by the other end. The makers
/// return two connected ends. Panics on a violation.
///
/// ```
/// use trio::testing::{check_two_way_stream, lockstep_stream_pair};
/// # trio::testing::run_test(trio::testing::TestOptions::new().autojump(), async {
/// let maker = async || Ok(lockstep_stream_pair());
/// check_two_way_stream(maker, Some(maker)).await?;
/// # Ok(()) });
/// ```
pub async fn check_two_way_stream<A, B, M, C>(
    mut stream_maker: M,
    mut clogged_stream_maker: Option<C>,
) -> Result<()>
where
    A: Stream,
    B: Stream,
    M: AsyncFnMut() -> Result<(A, B)>,
    C: AsyncFnMut() -> Result<(A, B)>,
{
    check_one_way_stream(&mut stream_maker, clogged_stream_maker.as_mut()).await?;
    let flipped = async || {
        let (a, b) = stream_maker().await?;
        Ok((b, a))
    };
    let flipped_clogged = clogged_stream_maker.as_mut().map(|c| {
        async move || {
            let (a, b) = c().await?;
            Ok((b, a))
        }
    });
    check_one_way_stream(flipped, flipped_clogged).await?;

    // Full duplex, in bulk.
    let (s1, s2) = stream_maker().await?;
    let outcome = async {
        const SIZE: usize = 1 << 20;
        const CHUNK_MAX: usize = 1 << 14;
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let data: Vec<u8> = (0..SIZE).map(|_| rng.next() as u8).collect();
        let reversed: Vec<u8> = data.iter().rev().copied().collect();
        open_nursery(async |n| {
            n.start_soon(send_in_pieces(&s1, &data, 1));
            n.start_soon(send_in_pieces(&s2, &reversed, 2));
            n.start_soon(receive_in_pieces(&s1, &reversed, 3));
            n.start_soon(receive_in_pieces(&s2, &data, 4));
            Ok(())
        })
        .await?;

        async fn send_in_pieces<S: SendStream>(s: &S, data: &[u8], seed: u64) -> Result<()> {
            let mut rng = XorShift(seed);
            let mut rest = data;
            while !rest.is_empty() {
                let k = (1 + rng.next() as usize % CHUNK_MAX).min(rest.len());
                s.send_all(&rest[..k]).await?;
                rest = &rest[k..];
            }
            Ok(())
        }

        async fn receive_in_pieces<R: ReceiveStream>(
            r: &R,
            expected: &[u8],
            seed: u64,
        ) -> Result<()> {
            let mut rng = XorShift(seed);
            let mut got = Vec::with_capacity(expected.len());
            let mut buf = vec![0; CHUNK_MAX];
            while got.len() < expected.len() {
                let k = 1 + rng.next() as usize % CHUNK_MAX;
                let n = r.receive_some(&mut buf[..k]).await?;
                if n == 0 {
                    fail!(
                        "full duplex: the stream ended after {} of {} bytes",
                        got.len(),
                        expected.len()
                    );
                }
                got.extend_from_slice(&buf[..n]);
            }
            if got != expected {
                fail!("full duplex: the bytes received differ from the bytes sent");
            }
            Ok(())
        }

        // A close is seen by the other end as the end of the stream.
        open_nursery(async |n| {
            n.start_soon(async {
                let got = receive_checked(&s2, 10).await?;
                if !got.is_empty() {
                    fail!("receive_some after the peer closed: expected the end, got {got:?}");
                }
                s2.aclose().await
            });
            n.start_soon(s1.aclose());
            Ok(())
        })
        .await
        .map(drop)
    }
    .await;
    close_both(&s1, &s2, outcome).await
}

/// Checks a half-closeable stream: everything [`check_two_way_stream`]
/// checks, then `send_eof` (the end reaches the peer, later sends are
/// `Closed`, it is idempotent and a checkpoint, the other direction keeps
/// working) and, with a clogged maker, that `send_eof` shares the send slot
/// (`Busy`). Panics on a violation.
///
/// ```
/// use trio::testing::{check_half_closeable_stream, lockstep_stream_pair};
/// # trio::testing::run_test(trio::testing::TestOptions::new().autojump(), async {
/// let maker = async || Ok(lockstep_stream_pair());
/// check_half_closeable_stream(maker, Some(maker)).await?;
/// # Ok(()) });
/// ```
pub async fn check_half_closeable_stream<A, B, M, C>(
    mut stream_maker: M,
    mut clogged_stream_maker: Option<C>,
) -> Result<()>
where
    A: Stream,
    B: Stream,
    M: AsyncFnMut() -> Result<(A, B)>,
    C: AsyncFnMut() -> Result<(A, B)>,
{
    check_two_way_stream(&mut stream_maker, clogged_stream_maker.as_mut()).await?;

    async fn send_x_then_eof<S: Stream>(s: &S) -> Result<()> {
        s.send_all(b"x").await?;
        assert_checkpoints(s.send_eof()).await
    }
    async fn expect_x_then_eof<R: ReceiveStream>(r: &R) -> Result<()> {
        wait_all_tasks_blocked().await?;
        let mut buf = [0; 10];
        let n = r.receive_some(&mut buf).await?;
        if &buf[..n] != b"x" {
            fail!(
                "receive_some before send_eof's end: got {:?}, expected \"x\"",
                &buf[..n]
            );
        }
        let n = r.receive_some(&mut buf).await?;
        if n != 0 {
            fail!(
                "receive_some after send_eof: expected the end, got {:?}",
                &buf[..n]
            );
        }
        Ok(())
    }

    let (s1, s2) = stream_maker().await?;
    let outcome = async {
        open_nursery(async |n| {
            n.start_soon(send_x_then_eof(&s1));
            n.start_soon(expect_x_then_eof(&s2));
            Ok(())
        })
        .await?;
        expect_kind(
            s1.send_all(b"y").await,
            ErrorKind::Closed,
            "send_all after send_eof",
        );
        assert_checkpoints(s1.send_eof()).await?;
        open_nursery(async |n| {
            n.start_soon(send_x_then_eof(&s2));
            n.start_soon(expect_x_then_eof(&s1));
            Ok(())
        })
        .await
        .map(drop)
    }
    .await;
    close_both(&s1, &s2, outcome).await?;

    if let Some(clogged) = clogged_stream_maker.as_mut() {
        let (s1, s2) = clogged().await?;
        expect_busy(s1.send_all(b"x"), s1.send_eof(), "send_eof during send_all").await;
        close_both(&s1, &s2, Ok(())).await?;
        let (s1, s2) = clogged().await?;
        expect_busy(
            s1.wait_send_all_might_not_block(),
            s1.send_eof(),
            "send_eof during wait_send_all_might_not_block",
        )
        .await;
        close_both(&s1, &s2, Ok(())).await?;
    }
    Ok(())
}

/// A small deterministic generator for the bulk data and chunk sizes
/// (xorshift64; its state must not be zero).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
