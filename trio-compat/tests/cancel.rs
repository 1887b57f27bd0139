//! Cancellation across the bridge: adapters are cancel points whose
//! `Cancelled` travels as an `io::Error` and is caught by the scope that
//! owns it, and by no other.

use futures::StreamExt;
use futures::io::AsyncReadExt;
use futures::stream::FuturesUnordered;
use std::error::Error as _;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use trio::stream::{ReceiveStream, SendStream};
use trio::testing::{memory_stream_pair, wait_all_tasks_blocked};
use trio::{CancelScope, ErrorKind, StdError};
use trio_compat::error::{ForeignCancelled, IoResultExt, from_io, to_io};
use trio_compat::{FromIo, Io};

/// The trio error an adapter's `io::Error` carries.
fn inner(e: &io::Error) -> &trio::Error {
    &e.get_ref()
        .and_then(|i| i.downcast_ref::<StdError>())
        .expect("an io::Error from an adapter carries a trio error")
        .0
}

/// A blocked read whose scope is cancelled returns an `io::Error` of kind
/// `Other` (never `Interrupted`) wrapping trio's Cancelled; converted back
/// with `?`, the deadline's own scope catches it.
#[trio::test(autojump)]
async fn a_cancelled_read_is_an_io_error_the_owning_scope_catches() -> trio::Result<()> {
    let (_a, b) = memory_stream_pair();
    let mut b = Io::new(b);
    let outcome = trio::move_on_after(1.0, async {
        let mut buf = [0; 8];
        let err = b.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(inner(&err).is_cancelled());
        Err::<(), _>(err).into_trio()
    })
    .await?;
    assert!(
        outcome.is_none(),
        "the deadline's scope caught its own cancellation"
    );
    assert_eq!(trio::current_time().as_secs_f64(), 1.0);
    Ok(())
}

/// A cancel reaches reads polled inside a foreign combinator
/// (`FuturesUnordered`): their trio waits registered the combinator's
/// wakers under the task's cancel status.
#[trio::test(autojump)]
async fn a_cancel_reaches_reads_polled_inside_futures_unordered() -> trio::Result<()> {
    let (_a1, b1) = memory_stream_pair();
    let (_a2, b2) = memory_stream_pair();
    let (mut b1, mut b2) = (Io::new(b1), Io::new(b2));
    let outcome = trio::move_on_after(1.0, async {
        let (mut x, mut y) = ([0; 4], [0; 4]);
        let mut reads = FuturesUnordered::new();
        reads.push(b1.read(&mut x));
        reads.push(b2.read(&mut y));
        let mut errors = Vec::new();
        while let Some(r) = reads.next().await {
            errors.push(r.unwrap_err());
        }
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|e| inner(e).is_cancelled()));
        Err::<(), _>(errors.remove(0)).into_trio()
    })
    .await?;
    assert!(outcome.is_none());
    Ok(())
}

/// While the scope is cancelled every poll fails, even with data ready,
/// and consumes nothing (a cancel point: Cancelled means no effect).
#[trio::test(autojump)]
async fn a_cancelled_scope_fails_polls_even_with_data_ready() -> trio::Result<()> {
    let (a, b) = memory_stream_pair();
    let mut b = Io::new(b);
    a.send_all(b"data").await?;
    let mut one = [0; 1];
    b.read_exact(&mut one).await?; // "d" read, "ata" buffered
    let scope = CancelScope::new();
    scope.cancel();
    let caught = scope
        .run(async {
            let mut buf = [0; 8];
            let err = b.read(&mut buf).await.unwrap_err();
            assert!(inner(&err).is_cancelled());
            Err::<(), _>(err).into_trio()
        })
        .await;
    assert!(caught.is_ok() && scope.cancelled_caught());
    let mut rest = [0; 3];
    b.read_exact(&mut rest).await?;
    assert_eq!(&rest, b"ata");
    Ok(())
}

/// A library error that keeps the io error it got as its source, as
/// `hyper::Error` does.
#[derive(Debug)]
struct LibraryError(io::Error);

impl fmt::Display for LibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the library's connection failed")
    }
}

impl std::error::Error for LibraryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A Cancelled that made its own scope exit, as foreign code would keep it.
async fn a_stale_cancellation() -> io::Error {
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope.run(async { Ok(trio::checkpoint().await) }).await;
    to_io(r.unwrap().unwrap().unwrap_err())
}

/// A Cancelled handed from a cancelled task (a connection driver, say) to
/// an uncancelled one becomes Broken there, its source kept: the
/// receiving task's scopes do not catch it, its nursery reports it.
#[trio::test(autojump)]
async fn a_stale_cancelled_from_another_task_becomes_broken() -> trio::Result<()> {
    let (tx, rx) = trio::open_memory_channel::<io::Error>(1);
    let r = trio::open_nursery(async |n| {
        n.start_soon(async move {
            // The driver: its own scope is cancelled; it passes the
            // error on inside a library error instead of returning it.
            let scope = CancelScope::new();
            scope.cancel();
            let cancelled = scope
                .run(async { Ok(trio::sleep_forever().await) })
                .await?
                .unwrap()
                .unwrap_err();
            let lib = io::Error::other(LibraryError(to_io(cancelled)));
            tx.send(lib)
                .await
                .map_err(|_| trio::Error::new(ErrorKind::Broken, "gone"))?;
            Ok(())
        });
        n.start_soon(async move {
            let lib = rx.receive().await?;
            let e = from_io(lib);
            assert_eq!(e.kind(), ErrorKind::Broken);
            let foreign = e
                .downcast_ref::<ForeignCancelled>()
                .expect("ForeignCancelled");
            assert!(foreign.source().is_some());
            Err(e)
        });
        Ok(())
    })
    .await;
    let e = r.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Broken,
        "reported, not swallowed: {e:?}"
    );
    Ok(())
}

/// The same buried Cancelled is the task's own while its scope is
/// cancelled (and that scope catches it), and stale (Broken) elsewhere;
/// a Cancelled converted whole follows the same rule.
#[trio::test(autojump)]
async fn a_buried_cancelled_is_ours_only_inside_our_cancelled_scope() -> trio::Result<()> {
    let buried = || async { io::Error::other(LibraryError(a_stale_cancellation().await)) };
    // Not cancelled here: stale.
    let e = from_io(buried().await);
    assert_eq!(e.kind(), ErrorKind::Broken);
    let e = from_io(a_stale_cancellation().await);
    assert_eq!(e.kind(), ErrorKind::Broken);
    // Inside a cancelled scope: ours, and caught.
    let scope = CancelScope::new();
    let lib = buried().await;
    let whole = a_stale_cancellation().await;
    scope.cancel();
    let r = scope
        .run(async {
            assert!(from_io(whole).is_cancelled());
            let e = from_io(lib);
            assert!(e.is_cancelled());
            Err::<(), _>(e)
        })
        .await;
    assert!(r.is_ok() && scope.cancelled_caught());
    Ok(())
}

/// `FromIo`: a receive blocked on the foreign stream is cancelled at once
/// by its scope and consumed nothing; the data sent afterwards arrives.
#[trio::test(autojump)]
async fn a_blocked_from_io_receive_is_cancelled_without_effect() -> trio::Result<()> {
    let (a, b) = tokio::io::duplex(64);
    let (a, b) = (FromIo::tokio(a), FromIo::tokio(b));
    let mut buf = [0; 8];
    let r = trio::move_on_after(1.0, b.receive_some(&mut buf)).await?;
    assert!(r.is_none());
    a.send_all(b"late").await?;
    let n = b.receive_some(&mut buf).await?;
    assert_eq!(&buf[..n], b"late");
    Ok(())
}

/// A cancel reaches a `FromIo` wait in a task that is blocked on the
/// foreign stream, from another task.
#[trio::test(autojump)]
async fn a_from_io_wait_is_woken_by_a_cancel_from_another_task() -> trio::Result<()> {
    let (_a, b) = tokio::io::duplex(64);
    let b = FromIo::tokio(b);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let mut buf = [0; 8];
            let r = b.receive_some(&mut buf).await;
            assert!(r.unwrap_err().is_cancelled());
        });
        wait_all_tasks_blocked().await?;
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    Ok(())
}

/// Outside a trio run the adapters fail with a Usage error, not a panic.
#[test]
fn outside_a_run_adapters_fail_with_usage() {
    let (_a, b) = memory_stream_pair();
    let mut b = Io::new(b);
    let mut buf = [0; 4];
    let mut cx = Context::from_waker(Waker::noop());
    let read = futures::io::AsyncRead::poll_read(std::pin::Pin::new(&mut b), &mut cx, &mut buf);
    match read {
        Poll::Ready(Err(e)) => assert_eq!(inner(&e).kind(), ErrorKind::Usage),
        other => panic!("expected a Usage error, got {other:?}"),
    }
    let (c, _d) = tokio::io::duplex(64);
    let c = FromIo::tokio(c);
    let mut receive = pin!(c.receive_some(&mut buf));
    match receive.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Usage),
        other => panic!("expected a Usage error, got {other:?}"),
    }
}
