//! `Io::native`: the socket's own poll methods behind the poll traits.
//! Cancellation keeps its rules (an `io::Error` wrapping Cancelled, caught
//! by the scope that owns it, reaching reads inside `select!` and
//! `FuturesUnordered`), and an operation allocates nothing, which a
//! counting global allocator checks (per thread: tests run in parallel).
//!
//! `copy_throughput` (ignored) prints the time of a `futures::io::copy` of
//! 16 MiB over a socket pair on both paths, five times each, alternating
//! (`COPY_PATH=native` or `boxed`: one path only):
//! `cargo test --release -p trio-compat --test native -- --ignored --nocapture`.

use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use trio::socket::SocketStream;
use trio::stream::SendStream;
use trio::testing::wait_all_tasks_blocked;
use trio::{CancelScope, StdError};
use trio_compat::Io;
use trio_compat::error::IoResultExt;

/// The system allocator, counting this thread's allocations.
struct Counting;

thread_local! {
    // `const` and `Cell<u64>`: no allocation, no destructor, so the
    // allocator may use it.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed to `System` unchanged; the count is a
// side effect only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A way to adapt a socket: one of `Io`'s two paths.
type Make = fn(SocketStream) -> Io<'static, SocketStream>;

/// The trio error an adapter's `io::Error` carries.
fn inner(e: &io::Error) -> &trio::Error {
    &e.get_ref()
        .and_then(|i| i.downcast_ref::<StdError>())
        .expect("an io::Error from an adapter carries a trio error")
        .0
}

/// A native read blocked in the reactor, in a scope a deadline cancels:
/// an `io::Error` of kind `Other` wrapping Cancelled, which the deadline's
/// scope catches; the read took nothing (data sent later is all there).
#[trio::test(autojump)]
async fn a_cancelled_native_read_is_an_io_error_and_takes_nothing() -> trio::Result<()> {
    let (a, b) = SocketStream::unix_pair()?;
    let mut io = Io::native(&b);
    let outcome = trio::move_on_after(1.0, async {
        let mut buf = [0; 8];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(inner(&err).is_cancelled());
        Err::<(), _>(err).into_trio()
    })
    .await?;
    assert!(outcome.is_none(), "the deadline's scope caught it");
    a.send_all(b"after").await?;
    let mut buf = [0; 5];
    io.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"after");
    Ok(())
}

/// futures' `select!` over two native reads and a trio sleep: a cancel
/// from another task wakes the task (through the adapters' cancel
/// waiters and the sleep's park), and the scope catches it.
#[trio::test(autojump)]
async fn a_cancel_reaches_native_reads_inside_futures_select() -> trio::Result<()> {
    let (_a1, b1) = SocketStream::unix_pair()?;
    let (_a2, b2) = SocketStream::unix_pair()?;
    let scope = CancelScope::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let (mut r1, mut r2) = (Io::native(&b1), Io::native(&b2));
            let (mut x, mut y) = ([0; 4], [0; 4]);
            let r = scope
                .run(async {
                    futures::select! {
                        r = r1.read(&mut x).fuse() => r.map(drop).into_trio(),
                        r = r2.read(&mut y).fuse() => r.map(drop).into_trio(),
                        r = trio::sleep_forever().fuse() => r,
                    }
                })
                .await?;
            assert_eq!(r, None);
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    Ok(())
}

/// Native reads inside `FuturesUnordered` (each polled with the
/// combinator's own waker, a foreign one): data wakes the right one
/// through the reactor, and a cancel then ends the other.
#[trio::test(autojump)]
async fn native_reads_inside_futures_unordered() -> trio::Result<()> {
    let (a1, b1) = SocketStream::unix_pair()?;
    let (_a2, b2) = SocketStream::unix_pair()?;
    let scope = CancelScope::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let (mut r1, mut r2) = (Io::native(&b1), Io::native(&b2));
            let (mut x, mut y) = ([0; 4], [0; 4]);
            let r = scope
                .run(async {
                    let mut reads = FuturesUnordered::new();
                    reads.push(r1.read(&mut x));
                    reads.push(r2.read(&mut y));
                    let first = reads.next().await.expect("two reads")?;
                    assert_eq!(first, 4);
                    let second = reads.next().await.expect("two reads").unwrap_err();
                    assert!(inner(&second).is_cancelled());
                    Err::<(), _>(second).into_trio()
                })
                .await?;
            assert_eq!(r, None);
            assert_eq!(&x, b"ping");
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        a1.send_all(b"ping").await?;
        wait_all_tasks_blocked().await?;
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    Ok(())
}

/// One message each way per round, in one task: a read that must wait
/// (registering its waker in the reactor, woken by the peer's write) and
/// a write. Returns the allocations per round after a warm-up.
async fn allocations_per_round(make: Make) -> f64 {
    let (a, b) = SocketStream::unix_pair().unwrap();
    let (mut a, mut b) = (make(a), make(b));
    let msg = [9u8; 64];
    let mut buf = [0u8; 64];
    let mut round = async || {
        let (read, wrote) = futures::join!(b.read_exact(&mut buf), async {
            a.write_all(&msg).await?;
            a.flush().await
        });
        read.unwrap();
        wrote.unwrap();
    };
    for _ in 0..10 {
        round().await;
    }
    const ROUNDS: u64 = 1000;
    let before = allocations();
    for _ in 0..ROUNDS {
        round().await;
    }
    (allocations() - before) as f64 / ROUNDS as f64
}

/// The native path allocates nothing per operation, waits included (a
/// read that registers its waker, woken by the reactor); the boxed path
/// allocates per operation (its boxed futures).
#[trio::test]
async fn the_native_path_allocates_nothing_per_operation() -> trio::Result<()> {
    let native = allocations_per_round(Io::native).await;
    let boxed = allocations_per_round(Io::new).await;
    eprintln!("allocations per round trip: native {native}, boxed {boxed}");
    assert_eq!(native, 0.0);
    assert!(boxed >= 2.0, "a boxed receive and a boxed send: {boxed}");
    Ok(())
}

/// Times `futures::io::copy` of 16 MiB from a socket to a sink while
/// another task writes it, on both paths (prints; asserts only the bytes).
#[test]
#[ignore = "a measurement: run with --ignored --nocapture, in release"]
fn copy_throughput() {
    const LEN: usize = 16 << 20;
    // `COPY_PATH=native` (or `boxed`) measures one path only, e.g. under
    // `valgrind --tool=callgrind` for instruction counts.
    let only = std::env::var("COPY_PATH").ok();
    let paths: [(&str, Make); 2] = [("boxed", Io::new), ("native", Io::native)];
    for (path, make) in paths
        .into_iter()
        .cycle()
        .take(10)
        .filter(|(p, _)| only.as_deref().is_none_or(|o| o == *p))
    {
        let before = allocations();
        let t = std::time::Instant::now();
        trio::run(async {
            let (a, b) = SocketStream::unix_pair()?;
            let (mut a, mut b) = (make(a), make(b));
            let data = vec![7u8; LEN];
            trio::open_nursery(async |n| {
                n.start_soon(async {
                    let mut source = futures::io::Cursor::new(&data);
                    futures::io::copy(&mut source, &mut a).await?;
                    a.close().await?;
                    Ok(())
                });
                let got = futures::io::copy(&mut b, &mut futures::io::sink()).await?;
                assert_eq!(got, LEN as u64);
                Ok(())
            })
            .await
        })
        .unwrap();
        let elapsed = t.elapsed();
        eprintln!(
            "{path:>6}: {LEN} bytes in {:.2} ms ({:.0} MiB/s), {} allocations",
            elapsed.as_secs_f64() * 1e3,
            LEN as f64 / (1 << 20) as f64 / elapsed.as_secs_f64(),
            allocations() - before
        );
    }
}

/// Times `ROUNDS` (env, default 20 000) 64-byte round trips in one task
/// (a read that waits in the reactor, a write, as in
/// `allocations_per_round`) on each path (`COPY_PATH` selects one). Under
/// `valgrind --tool=callgrind`, two values of `ROUNDS` give the marginal
/// instructions per round trip.
#[test]
#[ignore = "a measurement: run with --ignored --nocapture, in release"]
fn round_trip_cost() {
    let rounds: u32 = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let only = std::env::var("COPY_PATH").ok();
    let paths: [(&str, Make); 2] = [("boxed", Io::new), ("native", Io::native)];
    for (path, make) in paths
        .into_iter()
        .filter(|(p, _)| only.as_deref().is_none_or(|o| o == *p))
    {
        trio::run(async {
            let (a, b) = SocketStream::unix_pair()?;
            let (mut a, mut b) = (make(a), make(b));
            let msg = [9u8; 64];
            let mut buf = [0u8; 64];
            let t = std::time::Instant::now();
            for _ in 0..rounds {
                let (read, wrote) = futures::join!(b.read_exact(&mut buf), async {
                    a.write_all(&msg).await?;
                    a.flush().await
                });
                read?;
                wrote?;
            }
            let ns = t.elapsed().as_nanos() as f64 / f64::from(rounds);
            eprintln!("{path:>6}: {ns:.0} ns per round trip ({rounds} rounds)");
            Ok(())
        })
        .unwrap();
    }
}

/// A task blocked in a native read shows in the task tree as waiting in
/// `SocketStream::poll_receive` (its poll waiter), like any trio wait.
#[trio::test(autojump)]
async fn a_native_read_shows_in_the_task_tree() -> trio::Result<()> {
    let (a, b) = SocketStream::unix_pair()?;
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let mut io = Io::native(&b);
            let mut buf = [0; 4];
            io.read_exact(&mut buf).await?;
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        let tree = trio::lowlevel::task_tree()?.to_string();
        assert!(
            tree.contains("waiting in SocketStream::poll_receive"),
            "{tree}"
        );
        a.send_all(b"done").await?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// Many native connections at once, each direction in its own task and
/// its own adapter: 32 socket pairs each carry 256 KiB (more than a socket
/// buffer, so both sides wait in the reactor many times) and arrive whole.
#[trio::test]
async fn many_native_connections_at_once() -> trio::Result<()> {
    const PAIRS: usize = 32;
    const LEN: usize = 256 * 1024;
    let pairs: Vec<_> = (0..PAIRS)
        .map(|_| SocketStream::unix_pair())
        .collect::<trio::Result<_>>()?;
    let received: Vec<Cell<usize>> = (0..PAIRS).map(|_| Cell::new(0)).collect();
    trio::open_nursery(async |n| {
        for ((a, b), got) in pairs.iter().zip(&received) {
            n.start_soon(async move {
                let mut w = Io::native(a);
                let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
                w.write_all(&data).await?;
                w.close().await?;
                Ok(())
            });
            n.start_soon(async move {
                let mut r = Io::native(b);
                let mut all = Vec::new();
                r.read_to_end(&mut all).await?;
                assert!(all.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
                got.set(all.len());
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    assert!(received.iter().all(|g| g.get() == LEN));
    Ok(())
}

/// Through the native adapter: after the peer sent its last bytes and
/// went away, writes fail with trio's Broken inside the `io::Error` (and
/// keep failing), while reads still get the bytes, then the end of stream.
#[trio::test]
async fn broken_and_end_of_stream_are_per_direction_through_the_adapter() -> trio::Result<()> {
    let (a, b) = SocketStream::unix_pair()?;
    b.send_all(b"last").await?;
    drop(b);
    let mut io = Io::native(a);
    for _ in 0..2 {
        let err = io.write(b"x").await.unwrap_err();
        assert_eq!(inner(&err).kind(), trio::ErrorKind::Broken, "{err}");
    }
    let mut got = Vec::new();
    io.read_to_end(&mut got).await?;
    assert_eq!(got, b"last");
    Ok(())
}

/// Only a poll that returns `Pending` registers its waker for cancels, and
/// under the scope current at that poll: reads that completed outside
/// (registering nothing) do not keep a later wait in an inner scope from
/// being woken by that scope's deadline, and the same adapter reads on
/// afterwards.
#[trio::test(autojump)]
async fn a_wait_in_an_inner_scope_is_woken_by_its_cancel() -> trio::Result<()> {
    let (a, b) = SocketStream::unix_pair()?;
    let mut io = Io::native(&b);
    let mut buf = [0; 2];
    a.send_all(b"ab").await?;
    io.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ab");
    let outcome = trio::move_on_after(1.0, async {
        let err = io.read(&mut buf).await.unwrap_err();
        Err::<(), _>(trio_compat::error::from_io(err))
    })
    .await?;
    assert_eq!(outcome, None);
    a.send_all(b"cd").await?;
    io.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"cd");
    Ok(())
}

/// Polls `io`'s read twice in one task step, as hyper does (the second
/// poll takes the adapter's shortcut: the first poll's registration still
/// holds); `Ready` if either completes.
fn poll_read_twice(
    io: &mut Io<'_, &SocketStream>,
    cx: &mut std::task::Context<'_>,
    buf: &mut [u8],
) -> std::task::Poll<io::Result<usize>> {
    use futures::io::AsyncRead;
    let mut io = std::pin::Pin::new(io);
    match io.as_mut().poll_read(cx, buf) {
        std::task::Poll::Pending => io.poll_read(cx, buf),
        ready => ready,
    }
}

/// Two pending reads in one task step leave the task's wake-ups as one
/// would: data from another task wakes it, and a cancel from another
/// thread (a `CancelHandle`) wakes it and is caught by its scope.
#[trio::test]
async fn two_pending_reads_in_one_step_keep_their_wakeups() -> trio::Result<()> {
    let (a, b) = SocketStream::unix_pair()?;
    let mut io = Io::native(&b);
    let mut buf = [0; 4];
    trio::open_nursery(async |n| {
        n.start_soon(async {
            wait_all_tasks_blocked().await?;
            a.send_all(b"hi").await
        });
        let got = std::future::poll_fn(|cx| poll_read_twice(&mut io, cx, &mut buf)).await?;
        assert_eq!(&buf[..got], b"hi");
        Ok(())
    })
    .await?;
    let scope = CancelScope::new();
    let handle = scope.handle();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            wait_all_tasks_blocked().await?;
            std::thread::spawn(move || handle.cancel())
                .join()
                .expect("the cancelling thread");
            Ok(())
        });
        let r = scope
            .run(async {
                let read = std::future::poll_fn(|cx| poll_read_twice(&mut io, cx, &mut buf)).await;
                Err::<(), _>(trio_compat::error::from_io(read.unwrap_err()))
            })
            .await?;
        assert_eq!(r, None);
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    Ok(())
}

/// A read left pending in a scope and polled again, in the same task
/// step, inside an inner scope: the second poll registers under the inner
/// scope (the first poll's registration is not what it would make), so
/// the inner scope's deadline wakes it.
#[trio::test(autojump)]
async fn a_second_poll_in_an_inner_scope_registers_there() -> trio::Result<()> {
    use futures::io::AsyncRead;
    let (_a, b) = SocketStream::unix_pair()?;
    let mut io = Io::native(&b);
    let mut buf = [0; 4];
    // The first poll, in the outer scope: pending, registered there.
    std::future::poll_fn(|cx| {
        let first = std::pin::Pin::new(&mut io).poll_read(cx, &mut buf);
        assert!(first.is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    let outcome = trio::move_on_after(1.0, async {
        let err = io.read(&mut buf).await.unwrap_err();
        Err::<(), _>(trio_compat::error::from_io(err))
    })
    .await?;
    assert_eq!(outcome, None);
    Ok(())
}

/// Review of hyper3: a read left pending by `Io` under scope S, the same
/// direction polled by the same task inside an inner scope (which then
/// exits), then `Io` read again under S: its `PendingMark` still holds, so
/// it returns `Pending` without re-registering, and the poll waiter stays
/// under the inner scope's dead status. A cancel of S (here from another
/// thread, DESIGN §5) must still wake it; it hangs instead.
#[trio::test]
async fn a_thread_cancel_wakes_a_read_whose_waiter_moved() -> trio::Result<()> {
    use futures::io::AsyncRead;
    let (_a, b) = SocketStream::unix_pair()?;
    let scope = CancelScope::new();
    let handle = scope.handle();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        handle.cancel();
    });
    let mut io = Io::native(&b);
    let mut buf = [0; 4];
    let mut other = [0; 4];
    let r = scope
        .run(async {
            std::future::poll_fn(|cx| {
                assert!(
                    std::pin::Pin::new(&mut io)
                        .poll_read(cx, &mut buf)
                        .is_pending()
                );
                std::task::Poll::Ready(())
            })
            .await;
            CancelScope::new()
                .run(async {
                    std::future::poll_fn(|cx| {
                        assert!(b.poll_receive(cx, &mut other).is_pending());
                        std::task::Poll::Ready(())
                    })
                    .await;
                    Ok(())
                })
                .await?;
            let err = io.read(&mut buf).await.unwrap_err();
            Err::<(), _>(trio_compat::error::from_io(err))
        })
        .await?;
    canceller.join().expect("the canceller");
    assert_eq!(r, None);
    Ok(())
}
