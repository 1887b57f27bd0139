//! Issue 9, item 6: one interface for locks. The same generic tests (as
//! Trio's `test_sync.py` runs its generic lock tests over every lock
//! factory) run over all five primitives through [`Acquire`]: mutual
//! exclusion, FIFO hand-off, and a cancelled acquire that holds nothing.
//! Semaphores and limiters take part with one unit, as in Trio.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::ops::DerefMut;
use std::task::Poll;
use trio::sync::{Acquire, CapacityLimiter, Lock, Mutex, Semaphore, StrictFifoLock};
use trio::testing::wait_all_tasks_blocked;
use trio::{CancelScope, ErrorKind};

/// The run's clock in seconds.
fn now() -> f64 {
    trio::current_time().as_secs_f64()
}

/// Three tasks take the lock in turn and hold it across a sleep: never two
/// inside at once, and, since each waits a full second inside, they finish
/// at 1, 2 and 3 s.
async fn mutual_exclusion<L: Acquire>(lock: &L) -> trio::Result<()> {
    let inside = Cell::new(0);
    let finished = RefCell::new(Vec::new());
    trio::open_nursery(async |nursery| {
        for _ in 0..3 {
            let (inside, finished) = (&inside, &finished);
            nursery.start_soon(async move {
                let guard = lock.acquire().await?;
                inside.set(inside.get() + 1);
                assert_eq!(inside.get(), 1, "two tasks held the lock at once");
                trio::sleep(1.0).await?;
                inside.set(inside.get() - 1);
                drop(guard);
                finished.borrow_mut().push(now());
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    assert_eq!(finished.into_inner(), [1.0, 2.0, 3.0]);
    // Every guard is gone: the lock is free again.
    drop(lock.try_acquire()?);
    Ok(())
}

/// Waiters are served in the order they queued, and a release hands the
/// lock straight to the oldest one: nobody barges in between.
async fn fifo_hand_off<L: Acquire>(lock: &L) -> trio::Result<()> {
    let order = RefCell::new(Vec::new());
    let held = lock.acquire().await?;
    trio::open_nursery(async |nursery| {
        for i in 0..4 {
            let order = &order;
            nursery.start_soon(async move {
                let _guard = lock.acquire().await?;
                order.borrow_mut().push(i);
                trio::sleep(1.0).await
            });
            // Queue them one at a time, so the queue order is 0, 1, 2, 3.
            wait_all_tasks_blocked().await?;
        }
        drop(held);
        // Handed to waiter 0 already, though it has not run yet.
        assert_eq!(
            lock.try_acquire().err().map(|e| e.kind()),
            Some(ErrorKind::WouldBlock),
            "a release must hand the lock to the oldest waiter, not leave it free"
        );
        Ok(())
    })
    .await?;
    assert_eq!(order.into_inner(), [0, 1, 2, 3]);
    assert_eq!(now(), 4.0);
    Ok(())
}

/// A cancelled acquire took nothing, whether it had to wait or not, and
/// the waiters behind it keep their turn.
async fn cancelled_acquire_holds_nothing<L: Acquire>(lock: &L) -> trio::Result<()> {
    // 1. Cancelled while waiting (at 1 s, by a timeout).
    let order = RefCell::new(Vec::new());
    let held = lock.acquire().await?;
    trio::open_nursery(async |nursery| {
        let order = &order;
        nursery.start_soon(async move {
            let r = trio::move_on_after(1.0, async {
                let _guard = lock.acquire().await?;
                order.borrow_mut().push("timed out");
                Ok(())
            })
            .await?;
            assert_eq!(r, None);
            assert_eq!(now(), 1.0);
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        nursery.start_soon(async move {
            let _guard = lock.acquire().await?;
            order.borrow_mut().push("patient");
            Ok(())
        });
        trio::sleep(2.0).await?;
        drop(held); // the patient waiter is next: the cancelled one left no trace
        Ok(())
    })
    .await?;
    assert_eq!(order.into_inner(), ["patient"]);
    assert_eq!(now(), 2.0);

    // 2. Cancelled before it could take a free lock: still nothing taken.
    let scope = CancelScope::new();
    scope.cancel();
    let r = scope
        .run(async {
            let _guard = lock.acquire().await?;
            panic!("a cancelled acquire returned a guard");
        })
        .await?;
    let _: Option<()> = r;
    assert!(scope.cancelled_caught());
    drop(lock.try_acquire()?); // free

    // 3. Dropped while waiting (as `select!` drops a losing branch): not
    // cancelled, but once dropped it holds nothing, even if the lock was
    // handed to it in the meantime.
    let held = lock.acquire().await?;
    trio::open_nursery(async |nursery| {
        nursery.start_soon(async {
            let mut dropped = Box::pin(lock.acquire());
            poll_fn(|cx| {
                assert!(dropped.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            trio::sleep(2.0).await?; // the lock is handed to `dropped` at 3 s
            drop(dropped); // at 4 s: it passes the lock on
            Ok(())
        });
        trio::sleep(1.0).await?;
        drop(held);
        assert!(lock.try_acquire().is_err(), "handed to the queued acquire");
        Ok(())
    })
    .await?;
    assert_eq!(now(), 4.0);
    drop(lock.try_acquire()?);
    Ok(())
}

/// The three generic tests, for one primitive made by `$make`.
macro_rules! lock_tests {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[trio::test(autojump)]
            async fn mutual_exclusion() -> trio::Result<()> {
                super::mutual_exclusion(&$make).await
            }

            #[trio::test(autojump)]
            async fn fifo_hand_off() -> trio::Result<()> {
                super::fifo_hand_off(&$make).await
            }

            #[trio::test(autojump)]
            async fn cancelled_acquire_holds_nothing() -> trio::Result<()> {
                super::cancelled_acquire_holds_nothing(&$make).await
            }
        }
    };
}

lock_tests!(lock, Lock::new());
lock_tests!(strict_fifo_lock, StrictFifoLock::new());
lock_tests!(semaphore, Semaphore::new(1));
lock_tests!(capacity_limiter, CapacityLimiter::new(1)?);
lock_tests!(mutex, Mutex::new(0u64));

/// The mutex's guard is access to its value, through the trait too.
#[trio::test(autojump)]
async fn a_mutex_guard_from_the_trait_derefs_to_the_value() -> trio::Result<()> {
    async fn bump<'m, L>(m: &'m L) -> trio::Result<()>
    where
        L: Acquire<Guard<'m>: DerefMut<Target = u64>>,
    {
        *m.acquire().await? += 1;
        Ok(())
    }
    let m = Mutex::new(41u64);
    bump(&m).await?;
    assert_eq!(*m.try_acquire()?, 42);
    Ok(())
}
