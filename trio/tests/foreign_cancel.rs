//! Cancellation through foreign code (DESIGN §13, issue 14 item 2): a
//! cancel reaches waits polled inside foreign combinators, `cancel_point`
//! makes any future a cancel point, and a `Cancelled` that travels through
//! `io::Error` and library errors is caught by its own scope and by no
//! other.
//!
//! The trick in most tests: the cancel comes from *another* task, and the
//! waiting future is one that nothing but a cancel waiter could wake (a
//! foreign `pending()`), so a test that returns proves the waiter was woken.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::cell::{Cell, RefCell};
use std::error::Error as _;
use std::fmt;
use std::future::{Future, pending, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use trio::lowlevel::{CancelWaiter, cancel_point, current_task_is_cancelled};
use trio::{CancelScope, Error, ErrorKind, ForeignCancelled, StdError, open_nursery};

/// Waits until every other task is blocked.
async fn settle() {
    trio::testing::wait_all_tasks_blocked().await.unwrap();
}

/// A foreign future that is pending forever, holds no waker, and records
/// how often it was polled and whether it was dropped.
struct Forever {
    polls: Rc<Cell<u32>>,
    dropped: Rc<Cell<bool>>,
}

impl Forever {
    fn new() -> (Self, Rc<Cell<u32>>, Rc<Cell<bool>>) {
        let (polls, dropped) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
        let f = Forever {
            polls: polls.clone(),
            dropped: dropped.clone(),
        };
        (f, polls, dropped)
    }
}

impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        self.polls.set(self.polls.get() + 1);
        Poll::Pending
    }
}

impl Drop for Forever {
    fn drop(&mut self) {
        self.dropped.set(true);
    }
}

/// A hand-written `select!`: polls both with the task's context, returns
/// the first to finish (`a` first on ties).
async fn select2<A: Future, B: Future>(a: A, b: B) -> Result<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Err(v));
        }
        Poll::Pending
    })
    .await
}

// ----- a cancel reaches waits inside foreign combinators --------------------

#[trio::test(autojump)]
async fn a_cancel_reaches_trio_waits_inside_futures_unordered() -> trio::Result<()> {
    let scope = CancelScope::new();
    open_nursery(async |n| {
        n.start_soon(async {
            let r = scope
                .run(async {
                    let mut all = FuturesUnordered::new();
                    all.push(trio::sleep_forever());
                    all.push(trio::sleep_forever());
                    // Both fail with Cancelled; the first one ends the body.
                    all.next().await.expect("two futures")
                })
                .await?;
            assert_eq!(r, None);
            Ok(())
        });
        settle().await;
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancel_reaches_foreign_futures_inside_futures_unordered() -> trio::Result<()> {
    // No park anywhere: only the cancel waiters, registered with
    // FuturesUnordered's per-future wakers, can wake the task.
    let scope = CancelScope::new();
    let (f1, polls1, dropped1) = Forever::new();
    let (f2, _, dropped2) = Forever::new();
    open_nursery(async |n| {
        n.start_soon(async {
            let r = scope
                .run(async {
                    let mut all = FuturesUnordered::new();
                    all.push(cancel_point(f1));
                    all.push(cancel_point(f2));
                    all.next().await.expect("two futures")
                })
                .await?;
            assert_eq!(r, None);
            Ok(())
        });
        settle().await;
        assert_eq!(polls1.get(), 1);
        assert!(!dropped1.get());
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    assert!(dropped1.get() && dropped2.get());
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancel_reaches_waits_inside_a_hand_written_select() -> trio::Result<()> {
    let scope = CancelScope::new();
    let (f, polls, dropped) = Forever::new();
    open_nursery(async |n| {
        n.start_soon(async {
            let r = scope
                .run(async {
                    match select2(cancel_point(f), pending::<()>()).await {
                        Ok(r) => r,
                        Err(()) => unreachable!("pending() never finishes"),
                    }
                })
                .await?;
            assert_eq!(r, None);
            Ok(())
        });
        settle().await;
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    assert_eq!(polls.get(), 1);
    assert!(dropped.get());
    // A trio wait and a bare waiter in the same select.
    let scope = CancelScope::new();
    open_nursery(async |n| {
        n.start_soon(async {
            scope
                .run(async {
                    let mut waiter = CancelWaiter::new();
                    match select2(waiter.wait(), trio::sleep_forever()).await {
                        Ok(e) | Err(Err(e)) => Err::<(), _>(e),
                        Err(Ok(())) => unreachable!("sleep_forever never finishes"),
                    }
                })
                .await?;
            Ok(())
        });
        settle().await;
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    Ok(())
}

/// futures' own `select!` macro (not a hand-written one): it polls its
/// branches with the task's context, and a cancel from another task reaches
/// every trio wait inside it (a sleep, an `Event` wait, a park-less cancel
/// point over a foreign future); the first branch to finish gives its
/// `Cancelled`, which the scope catches, and the rest are dropped.
#[trio::test(autojump)]
async fn a_cancel_reaches_trio_waits_inside_futures_select() -> trio::Result<()> {
    use futures::FutureExt;
    let scope = CancelScope::new();
    let event = trio::sync::Event::new();
    let (f, polls, dropped) = Forever::new();
    open_nursery(async |n| {
        n.start_soon(async {
            let r = scope
                .run(async {
                    futures::select! {
                        r = trio::sleep_forever().fuse() => r,
                        r = event.wait().fuse() => r,
                        r = cancel_point(f).fuse() => r,
                    }
                })
                .await?;
            assert_eq!(r, None);
            Ok(())
        });
        settle().await;
        assert_eq!(polls.get(), 1, "polled once, then blocked");
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    assert!(dropped.get());
    assert!(!event.is_set());
    Ok(())
}

// ----- cancel_point ----------------------------------------------------------

#[trio::test(autojump)]
async fn cancel_point_in_a_cancelled_scope_drops_the_future_unpolled() -> trio::Result<()> {
    let (f, polls, dropped) = Forever::new();
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            let e = cancel_point(f).await.unwrap_err();
            assert!(e.is_cancelled());
            assert!(dropped.get(), "dropped before returning");
            Err::<(), _>(e)
        })
        .await?;
    assert_eq!(r, None);
    assert_eq!(polls.get(), 0);
    Ok(())
}

#[trio::test(autojump)]
async fn cancel_point_cancelled_while_pending_drops_the_future_at_once() -> trio::Result<()> {
    let (f, polls, dropped) = Forever::new();
    let t0 = trio::current_time();
    let r = trio::move_on_after(2.0, cancel_point(f)).await?;
    assert!(r.is_none());
    assert_eq!(trio::current_time() - t0, 2.0);
    assert_eq!(polls.get(), 1);
    assert!(dropped.get());
    Ok(())
}

#[trio::test(autojump)]
async fn cancel_point_gives_the_value_and_counts_one_cancel_point() -> trio::Result<()> {
    let watch = trio::lowlevel::watch_checkpoints()?;
    assert_eq!(cancel_point(async { 7 }).await?, 7);
    let c = watch.counts();
    assert_eq!((c.schedule_points, c.cancel_points), (0, 1));
    // Polling it again after it finished is an error, not a panic.
    let mut p = pin!(cancel_point(async { 1 }));
    assert_eq!(p.as_mut().await?, 1);
    let again = poll_fn(|cx| Poll::Ready(p.as_mut().poll(cx))).await;
    assert!(matches!(again, Poll::Ready(Err(e)) if e.kind() == ErrorKind::Usage));
    Ok(())
}

#[test]
fn cancel_point_and_waiter_outside_a_run_are_usage_errors() {
    let mut cx = Context::from_waker(Waker::noop());
    let mut p = pin!(cancel_point(async { 1 }));
    assert!(
        matches!(p.as_mut().poll(&mut cx), Poll::Ready(Err(e)) if e.kind() == ErrorKind::Usage)
    );
    let mut w = CancelWaiter::new();
    assert!(matches!(w.poll_cancelled(&mut cx), Poll::Ready(e) if e.kind() == ErrorKind::Usage));
    assert!(!w.is_registered());
    assert_eq!(
        current_task_is_cancelled().unwrap_err().kind(),
        ErrorKind::Usage
    );
}

#[test]
fn a_task_blocked_only_in_a_cancel_point_is_a_deadlock() {
    // The waiter keeps our own (plain) waker decoded: it does not count as
    // a waker held outside the runtime, so the detector sees the truth.
    let err = trio::run(async {
        cancel_point(pending::<()>()).await?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err:?}");
}

// ----- shields and scopes --------------------------------------------------

/// Polls `inner`, counting the polls.
struct CountPolls<F> {
    inner: Pin<Box<F>>,
    polls: Rc<Cell<u32>>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}

#[trio::test(autojump)]
async fn a_shielded_waiter_is_not_woken_by_an_outer_cancel() -> trio::Result<()> {
    let outer = CancelScope::new();
    let inner = CancelScope::new().with_shield(true);
    let polls = Rc::new(Cell::new(0));
    let (f, _, dropped) = Forever::new();
    open_nursery(async |n| {
        n.start_soon(async {
            outer
                .run(async {
                    inner
                        .run(async {
                            let mut all = FuturesUnordered::new();
                            all.push(CountPolls {
                                inner: Box::pin(cancel_point(f)),
                                polls: polls.clone(),
                            });
                            all.next().await.expect("one future")
                        })
                        .await?;
                    // The outer cancellation, at the next checkpoint.
                    trio::checkpoint().await
                })
                .await?;
            Ok(())
        });
        settle().await;
        assert_eq!(polls.get(), 1);
        outer.cancel();
        settle().await;
        assert_eq!(polls.get(), 1, "the shield kept the cancel out");
        assert!(!dropped.get());
        // Unshielding lets the outer cancellation in, and wakes it.
        inner.set_shield(false);
        settle().await;
        assert_eq!(polls.get(), 2);
        assert!(dropped.get());
        Ok(())
    })
    .await?;
    // The outer scope caught it: the inner one was not cancelled itself.
    assert!(outer.cancelled_caught() && !inner.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn a_waiter_follows_the_task_into_a_new_scope() -> trio::Result<()> {
    let first = CancelScope::new();
    let second = CancelScope::new();
    let waiter = RefCell::new(CancelWaiter::new());
    let step = Cell::new(0);
    open_nursery(async |n| {
        n.start_soon(async {
            // Registered under `first`, which then exits: its registration
            // goes with the status.
            first
                .run(async {
                    let p = poll_fn(|cx| Poll::Ready(waiter.borrow_mut().poll_cancelled(cx))).await;
                    assert!(p.is_pending());
                    Ok(())
                })
                .await?;
            assert!(waiter.borrow().is_registered());
            step.set(1);
            // The next poll registers under `second`, the scope current then.
            second
                .run(async {
                    let e = poll_fn(|cx| waiter.borrow_mut().poll_cancelled(cx)).await;
                    step.set(2);
                    Err::<(), _>(e)
                })
                .await?;
            Ok(())
        });
        settle().await;
        assert_eq!(step.get(), 1);
        // A cancel of the exited scope reaches nothing.
        first.cancel();
        settle().await;
        assert_eq!(step.get(), 1);
        second.cancel();
        Ok(())
    })
    .await?;
    assert_eq!(step.get(), 2);
    assert!(second.cancelled_caught());
    assert!(!waiter.borrow().is_registered());
    Ok(())
}

#[trio::test(autojump)]
async fn a_waiter_moved_into_a_nested_scope_is_woken_by_that_scope() -> trio::Result<()> {
    let inner = CancelScope::new();
    let mut waiter = CancelWaiter::new();
    // Registered under the task's own status first.
    let p = poll_fn(|cx| Poll::Ready(waiter.poll_cancelled(cx))).await;
    assert!(p.is_pending());
    open_nursery(async |n| {
        n.start_soon(async {
            settle().await;
            inner.cancel();
        });
        inner
            .run(async { Err::<(), _>(waiter.wait().await) })
            .await?;
        Ok(())
    })
    .await?;
    assert!(inner.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn current_task_is_cancelled_follows_scopes_and_shields() -> trio::Result<()> {
    assert!(!current_task_is_cancelled()?);
    let scope = CancelScope::new();
    scope.cancel();
    scope
        .run(async {
            assert!(current_task_is_cancelled()?);
            let shielded = CancelScope::new().with_shield(true);
            shielded
                .run(async {
                    assert!(!current_task_is_cancelled()?);
                    Ok(())
                })
                .await?;
            // Not a checkpoint: the scope's cancellation is still there.
            assert!(current_task_is_cancelled()?);
            trio::checkpoint().await
        })
        .await?;
    assert!(!current_task_is_cancelled()?);
    Ok(())
}

// ----- no call-outs under the runtime's borrow ------------------------------

/// Counts the wakes and drops of `NosyWaker`s.
static NOSY_WAKES: AtomicUsize = AtomicUsize::new(0);
static NOSY_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Looks at the run's state, as a logging waker might: panics if the
/// runtime's state is borrowed.
fn touch_the_runtime() {
    let _ = trio::lowlevel::task_tree();
    let _ = current_task_is_cancelled();
    let _ = trio::lowlevel::try_current_task().map(|t| t.name());
}

/// A foreign waker that calls back into trio when woken and when dropped.
struct NosyWaker(Waker);

impl Wake for NosyWaker {
    fn wake(self: Arc<Self>) {
        NOSY_WAKES.fetch_add(1, Ordering::SeqCst);
        touch_the_runtime();
        self.0.wake_by_ref();
    }
}

impl Drop for NosyWaker {
    fn drop(&mut self) {
        NOSY_DROPS.fetch_add(1, Ordering::SeqCst);
        touch_the_runtime();
    }
}

/// Polls `inner` with a fresh `NosyWaker` each time.
struct NosyPoll<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for NosyPoll<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(NosyWaker(cx.waker().clone())));
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

#[trio::test(autojump)]
async fn foreign_waiter_wakers_are_woken_and_dropped_outside_the_borrow() -> trio::Result<()> {
    let wakes = NOSY_WAKES.load(Ordering::SeqCst);
    // Woken by a cancel (a deadline here, from the timer code).
    let r = trio::move_on_after(
        1.0,
        NosyPoll {
            inner: Box::pin(cancel_point(pending::<()>())),
        },
    )
    .await?;
    assert!(r.is_none());
    assert!(NOSY_WAKES.load(Ordering::SeqCst) > wakes);
    // Woken by a cancel from another task.
    let scope = CancelScope::new();
    open_nursery(async |n| {
        n.start_soon(async {
            scope
                .run(NosyPoll {
                    inner: Box::pin(async {
                        let mut w = CancelWaiter::new();
                        Err::<(), _>(w.wait().await)
                    }),
                })
                .await?;
            Ok(())
        });
        settle().await;
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    // Dropped when its scope exits while the waiter is still registered
    // (the waiter outlives the scope), and replaced on re-registration.
    let drops = NOSY_DROPS.load(Ordering::SeqCst);
    let waiter = RefCell::new(CancelWaiter::new());
    CancelScope::new()
        .run(NosyPoll {
            inner: Box::pin(async {
                let p = poll_fn(|cx| Poll::Ready(waiter.borrow_mut().poll_cancelled(cx))).await;
                assert!(p.is_pending());
                let p = poll_fn(|cx| Poll::Ready(waiter.borrow_mut().poll_cancelled(cx))).await;
                assert!(p.is_pending());
                Ok(())
            }),
        })
        .await?;
    assert!(NOSY_DROPS.load(Ordering::SeqCst) > drops);
    drop(waiter);
    Ok(())
}

// ----- errors through io::Error ----------------------------------------------

/// A library error that carries an io error as its source, as
/// `hyper::Error` does.
#[derive(Debug)]
struct LibraryError(io::Error);

impl fmt::Display for LibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("library failed")
    }
}

impl std::error::Error for LibraryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Every kind a user can make (Cancelled and Group are the runtime's).
const KINDS: [ErrorKind; 14] = [
    ErrorKind::TooSlow,
    ErrorKind::Closed,
    ErrorKind::Broken,
    ErrorKind::Busy,
    ErrorKind::WouldBlock,
    ErrorKind::EndOfChannel,
    ErrorKind::InvalidArgument,
    ErrorKind::Usage,
    ErrorKind::RunFinished,
    ErrorKind::Deadlock,
    ErrorKind::Io,
    ErrorKind::Unsupported,
    ErrorKind::Interrupted,
    ErrorKind::Other,
];

#[test]
fn every_kind_round_trips_through_io_error() {
    for kind in KINDS {
        let io = io::Error::from(Error::new(kind, "x"));
        assert_ne!(io.kind(), io::ErrorKind::Interrupted, "{kind:?}");
        let back = Error::from(io);
        assert_eq!(back.kind(), kind);
        assert_eq!(back.to_string(), "x");
        // And through `?`, and through `StdError` itself.
        let back: trio::Result<()> = (|| Ok(Err(io::Error::from(Error::new(kind, "y")))?))();
        assert_eq!(back.unwrap_err().kind(), kind);
        assert_eq!(Error::from(StdError(Error::new(kind, "z"))).kind(), kind);
    }
    // A wrapped error keeps its source; a group keeps its leaves.
    let wrapped = Error::with_kind(ErrorKind::Closed, LibraryError(io::Error::other("inner")));
    let back = Error::from(io::Error::from(wrapped));
    assert_eq!(back.kind(), ErrorKind::Closed);
    assert!(back.downcast_ref::<LibraryError>().is_some());
    let group = Error::group([
        Error::new(ErrorKind::Busy, "a"),
        Error::new(ErrorKind::Closed, "b"),
    ])
    .unwrap();
    let back = Error::from(io::Error::from(group));
    assert_eq!(back.kind(), ErrorKind::Group);
    assert_eq!(back.leaves().count(), 2);
}

#[test]
fn io_kinds_survive_a_trip_through_trio() {
    for kind in [
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::TimedOut,
        io::ErrorKind::WouldBlock,
        io::ErrorKind::UnexpectedEof,
        io::ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied,
    ] {
        let e = Error::from(io::Error::new(kind, "os"));
        assert_eq!(
            e.kind(),
            if kind == io::ErrorKind::WouldBlock {
                ErrorKind::WouldBlock
            } else {
                ErrorKind::Io
            }
        );
        let back = io::Error::from(e);
        assert_eq!(back.kind(), kind);
        let again = Error::from(back);
        assert!(
            again
                .find::<io::Error>()
                .is_some_and(|os| os.kind() == kind)
        );
    }
}

#[test]
fn a_cancelled_converted_outside_a_run_is_stale() {
    let e = trio::run(async {
        let scope = CancelScope::new();
        scope.cancel();
        Ok(scope
            .run(async { Ok(trio::checkpoint().await) })
            .await?
            .unwrap()
            .unwrap_err())
    })
    .unwrap();
    assert!(e.is_cancelled());
    // No run: nothing is cancelled, so nothing can be ours.
    let back = Error::from(io::Error::from(e));
    assert_eq!(back.kind(), ErrorKind::Broken);
    assert!(back.downcast_ref::<ForeignCancelled>().is_some());
}

#[trio::test(autojump)]
async fn a_cancelled_through_io_and_a_library_error_is_caught_by_its_own_scope() -> trio::Result<()>
{
    // Through io::Error alone.
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            let cancelled = trio::checkpoint().await.unwrap_err();
            Err(io::Error::from(cancelled))?;
            Ok(())
        })
        .await?;
    assert_eq!(r, None);
    assert!(scope.cancelled_caught());
    // Through io::Error inside a library error (found through `source()`).
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            let cancelled = trio::checkpoint().await.unwrap_err();
            let lib = LibraryError(io::Error::from(cancelled));
            Err(lib)?;
            Ok(())
        })
        .await?;
    assert_eq!(r, None);
    assert!(scope.cancelled_caught());
    // And inside another io::Error around the library error.
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            let cancelled = trio::checkpoint().await.unwrap_err();
            Err(io::Error::other(LibraryError(io::Error::from(cancelled))))?;
            Ok(())
        })
        .await?;
    assert_eq!(r, None);
    Ok(())
}

#[trio::test(autojump)]
async fn a_stale_cancelled_in_an_uncancelled_task_becomes_broken() -> trio::Result<()> {
    // A cancelled "driver" task hands its errors to us, the way a library's
    // shared state would.
    let handed: RefCell<Vec<io::Error>> = RefCell::new(Vec::new());
    open_nursery(async |n| {
        n.start_soon(async {
            let scope = CancelScope::new();
            scope.cancel();
            scope
                .run(async {
                    let c = trio::checkpoint().await.unwrap_err();
                    let c2 = trio::checkpoint().await.unwrap_err();
                    handed.borrow_mut().push(io::Error::from(c));
                    handed
                        .borrow_mut()
                        .push(io::Error::other(LibraryError(io::Error::from(c2))));
                    Ok(())
                })
                .await?;
            Ok(())
        });
        Ok(())
    })
    .await?;
    let mut handed = handed.take();
    assert_eq!(handed.len(), 2);
    let through_library = handed.pop().unwrap();
    let direct = handed.pop().unwrap();
    // Our scope is not cancelled: neither is ours, so neither is caught.
    let scope = CancelScope::new();
    let e = scope
        .run(async {
            Err(direct)?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(!scope.cancelled_caught());
    assert_eq!(e.kind(), ErrorKind::Broken);
    let foreign = e
        .downcast_ref::<ForeignCancelled>()
        .expect("ForeignCancelled");
    let carried = foreign.source().and_then(|s| s.downcast_ref::<StdError>());
    assert!(
        carried.is_some_and(|c| c.0.is_cancelled()),
        "the original is kept"
    );
    let e = Error::from(through_library);
    assert_eq!(e.kind(), ErrorKind::Broken);
    let foreign = e
        .downcast_ref::<ForeignCancelled>()
        .expect("ForeignCancelled");
    assert!(foreign.carrier().is::<io::Error>(), "the carrier is kept");
    // A group with a stale Cancelled: only that leaf changes.
    let stale = {
        let scope = CancelScope::new();
        scope.cancel();
        scope
            .run(async { Ok(trio::checkpoint().await) })
            .await?
            .unwrap()
            .unwrap_err()
    };
    let group = Error::group([stale, Error::new(ErrorKind::Busy, "busy")]).unwrap();
    let back = Error::from(io::Error::from(group));
    let kinds: Vec<ErrorKind> = back.leaves().map(Error::kind).collect();
    assert_eq!(kinds, [ErrorKind::Broken, ErrorKind::Busy]);
    Ok(())
}
