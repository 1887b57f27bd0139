//! Tests for trio::sync: fairness, "cancelled means no effect", hand-off,
//! abandonment, statistics.

mod common;
use common::{run_autojump, settle};

use std::cell::RefCell;
use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;
use trio::sync::{
    Borrower, CapacityLimiter, Condition, Event, Lock, ParkingLot, Semaphore, StrictFifoLock,
};
use trio::{CancelScope, ErrorKind};

// ----- Event ---------------------------------------------------------------------

#[trio::test(autojump)]
async fn event_set_wakes_every_waiter() -> trio::Result<()> {
    let ev = Event::new();
    let woke = RefCell::new(0);
    trio::open_nursery(async |n| {
        for _ in 0..3 {
            n.start_soon(async {
                ev.wait().await?;
                *woke.borrow_mut() += 1;
                Ok(())
            });
        }
        settle().await;
        assert_eq!(ev.statistics().tasks_waiting, 3);
        ev.set();
        ev.set(); // idempotent
        assert!(ev.is_set());
        Ok(())
    })
    .await?;
    assert_eq!(*woke.borrow(), 3);
    Ok(())
}

#[trio::test(autojump)]
async fn waiting_on_a_set_event_still_checkpoints() -> trio::Result<()> {
    let ev = Event::new();
    ev.set();
    let scope = CancelScope::new();
    let r = scope
        .run(async {
            scope.cancel();
            ev.wait().await // already set, but a cancel point all the same
        })
        .await?;
    assert_eq!(r, None);
    assert!(scope.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn cancelled_event_wait_leaves_the_queue() -> trio::Result<()> {
    let ev = Event::new();
    let scope = CancelScope::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            scope.run(ev.wait()).await?;
            Ok(())
        });
        settle().await;
        assert_eq!(ev.statistics().tasks_waiting, 1);
        scope.cancel();
        settle().await;
        assert_eq!(ev.statistics().tasks_waiting, 0);
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    Ok(())
}

// ----- ParkingLot ------------------------------------------------------------------

#[trio::test(autojump)]
async fn parking_lot_unparks_fifo_and_cancel_keeps_order() -> trio::Result<()> {
    let lot = ParkingLot::new();
    let order = RefCell::new(Vec::new());
    let scopes: Vec<CancelScope> = (0..4).map(|_| CancelScope::new()).collect();
    trio::open_nursery(async |n| {
        for (i, scope) in scopes.iter().enumerate() {
            let (lot, order) = (&lot, &order);
            n.start_soon(async move {
                if scope.run(lot.park()).await?.is_some() {
                    order.borrow_mut().push(i);
                }
                Ok(())
            });
            settle().await; // park in a known order
        }
        assert_eq!(lot.len(), 4);
        scopes[1].cancel();
        settle().await;
        assert_eq!(lot.statistics().tasks_waiting, 3);
        assert_eq!(lot.unpark(2).len(), 2);
        settle().await;
        // FIFO picks who is woken; woken together, they run in either order.
        order.borrow_mut().sort();
        assert_eq!(*order.borrow(), [0, 2]);
        assert_eq!(lot.unpark_all().len(), 1);
        assert!(lot.unpark(5).is_empty());
        Ok(())
    })
    .await?;
    assert_eq!(*order.borrow(), [0, 2, 3]);
    Ok(())
}

#[trio::test(autojump)]
async fn parking_lot_repark_moves_waiters_in_order() -> trio::Result<()> {
    let a = ParkingLot::new();
    let b = ParkingLot::new();
    let order = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        for i in 0..3 {
            let (a, order) = (&a, &order);
            n.start_soon(async move {
                a.park().await?;
                order.borrow_mut().push(i);
                Ok(())
            });
            settle().await;
        }
        a.repark(&b, 2);
        assert_eq!((a.len(), b.len()), (1, 2));
        a.repark_all(&b);
        assert_eq!((a.len(), b.len()), (0, 3));
        // One at a time: waiters woken together run in an unspecified order.
        while !b.unpark(1).is_empty() {
            settle().await;
        }
        Ok(())
    })
    .await?;
    assert_eq!(*order.borrow(), [0, 1, 2]);
    Ok(())
}

#[trio::test(autojump)]
async fn cancelling_a_reparked_waiter_removes_it_from_the_new_lot() -> trio::Result<()> {
    let (a, b) = (ParkingLot::new(), ParkingLot::new());
    let scope = CancelScope::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            scope.run(a.park()).await?;
            Ok(())
        });
        settle().await;
        a.repark_all(&b);
        scope.cancel();
        settle().await;
        assert!(a.is_empty() && b.is_empty());
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn broken_parking_lot_fails_waiters_and_later_parks() -> trio::Result<()> {
    let lot = ParkingLot::new();
    let errors = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let kind = lot.park().await.unwrap_err().kind();
            errors.borrow_mut().push(kind);
        });
        settle().await;
        lot.break_lot(None);
        assert!(lot.is_broken());
        assert!(lot.broken_by().is_some());
        Ok(())
    })
    .await?;
    assert_eq!(*errors.borrow(), [ErrorKind::Broken]);
    assert_eq!(lot.park().await.unwrap_err().kind(), ErrorKind::Broken);
    Ok(())
}

// ----- Lock ---------------------------------------------------------------------------

#[trio::test(autojump)]
async fn lock_is_round_robin_between_tasks_in_a_loop() -> trio::Result<()> {
    let lock = Lock::new();
    let order = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        for i in 0..3 {
            let (lock, order) = (&lock, &order);
            n.start_soon(async move {
                for _ in 0..4 {
                    let _g = lock.acquire().await?;
                    order.borrow_mut().push(i);
                    trio::sleep(0.1).await?;
                }
                Ok(())
            });
            settle().await; // queue up in a known order
        }
        Ok(())
    })
    .await?;
    assert_eq!(*order.borrow(), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
    Ok(())
}

#[trio::test(autojump)]
async fn release_hands_the_lock_straight_to_the_first_waiter() -> trio::Result<()> {
    let lock = Lock::new();
    trio::open_nursery(async |n| {
        let g = lock.acquire().await?;
        n.start_soon(async {
            let _g = lock.acquire().await?;
            trio::sleep(1.0).await
        });
        settle().await;
        assert_eq!(lock.statistics().tasks_waiting, 1);
        let me = trio::lowlevel::current_task();
        drop(g);
        // The waiter owns it now, before it has even run.
        assert!(lock.locked());
        assert_ne!(lock.owner(), Some(me));
        assert_eq!(
            lock.try_acquire().unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        Ok(())
    })
    .await?;
    assert!(!lock.locked());
    Ok(())
}

#[trio::test(autojump)]
async fn try_acquire_fails_while_anyone_is_queued() -> trio::Result<()> {
    let lock = Lock::new();
    trio::open_nursery(async |n| {
        lock.acquire_raw().await?;
        n.start_soon(async {
            let _g = lock.acquire().await?;
            Ok(())
        });
        settle().await;
        // Another task finds it held and queued.
        n.start_soon(async {
            assert_eq!(
                lock.try_acquire().unwrap_err().kind(),
                ErrorKind::WouldBlock
            );
        });
        settle().await;
        lock.release()?;
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn cancelled_acquire_holds_nothing_and_keeps_the_queue_order() -> trio::Result<()> {
    let lock = Lock::new();
    let order = RefCell::new(Vec::new());
    let scopes: Vec<CancelScope> = (0..3).map(|_| CancelScope::new()).collect();
    trio::open_nursery(async |n| {
        let g = lock.acquire().await?;
        for (i, scope) in scopes.iter().enumerate() {
            let (lock, order) = (&lock, &order);
            n.start_soon(async move {
                let got = scope
                    .run(async {
                        let g = lock.acquire().await?;
                        Ok(g)
                    })
                    .await?;
                if let Some(_g) = got {
                    order.borrow_mut().push(i);
                    trio::sleep(0.1).await?;
                }
                Ok(())
            });
            settle().await;
        }
        scopes[1].cancel();
        settle().await;
        assert_eq!(lock.statistics().tasks_waiting, 2);
        drop(g);
        Ok(())
    })
    .await?;
    assert_eq!(*order.borrow(), [0, 2]);
    assert!(scopes[1].cancelled_caught());
    assert!(!lock.locked());
    Ok(())
}

#[trio::test(autojump)]
async fn lock_is_not_reentrant_and_only_the_owner_releases() -> trio::Result<()> {
    let lock = Lock::new();
    let _g = lock.acquire().await?;
    assert_eq!(lock.try_acquire().unwrap_err().kind(), ErrorKind::Usage);
    assert_eq!(lock.acquire().await.unwrap_err().kind(), ErrorKind::Usage);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            assert_eq!(lock.release().unwrap_err().kind(), ErrorKind::Usage);
        });
        Ok(())
    })
    .await?;
    assert!(lock.locked());
    Ok(())
}

#[trio::test(autojump)]
async fn owner_exiting_while_holding_breaks_the_lock_for_waiters() -> trio::Result<()> {
    let lock = Lock::new();
    let errors = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        n.start_soon(async {
            lock.acquire_raw().await?; // never released
            trio::sleep(1.0).await
        });
        settle().await;
        for _ in 0..2 {
            n.start_soon(async {
                let kind = lock.acquire().await.unwrap_err().kind();
                errors.borrow_mut().push(kind);
            });
        }
        Ok(())
    })
    .await?;
    assert_eq!(*errors.borrow(), [ErrorKind::Broken, ErrorKind::Broken]);
    assert!(lock.is_broken());
    // Later attempts fail the same way, at once.
    assert_eq!(lock.acquire().await.unwrap_err().kind(), ErrorKind::Broken);
    assert_eq!(lock.try_acquire().unwrap_err().kind(), ErrorKind::Broken);
    Ok(())
}

#[trio::test(autojump)]
async fn leaked_guard_of_an_exited_task_breaks_the_lock_on_next_acquire() -> trio::Result<()> {
    let lock = Lock::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            std::mem::forget(lock.acquire().await?);
            Ok(())
        });
        Ok(())
    })
    .await?;
    // Nobody was waiting when the owner exited: detected on the next try.
    assert!(lock.locked());
    assert_eq!(lock.try_acquire().unwrap_err().kind(), ErrorKind::Broken);
    assert_eq!(lock.acquire().await.unwrap_err().kind(), ErrorKind::Broken);
    Ok(())
}

#[trio::test(autojump)]
async fn lock_handed_to_a_dropped_waiter_is_passed_on() -> trio::Result<()> {
    let lock = Lock::new();
    let go = Event::new();
    let got = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        let g = lock.acquire().await?;
        n.start_soon(async {
            // Start waiting for the lock, then wait for something else.
            let mut acquire = pin!(lock.acquire());
            poll_fn(|cx| {
                assert!(acquire.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            go.wait().await?;
            // Dropped without being polled again, after being handed the
            // lock.
            Ok(())
        });
        settle().await;
        n.start_soon(async {
            let _g = lock.acquire().await?;
            got.borrow_mut().push("second");
            Ok(())
        });
        settle().await;
        assert_eq!(lock.statistics().tasks_waiting, 2);
        drop(g); // hands it to the first waiter...
        go.set(); // ...whose future is dropped before it sees it
        Ok(())
    })
    .await?;
    assert_eq!(*got.borrow(), ["second"]);
    assert!(!lock.locked());
    Ok(())
}

#[trio::test(autojump)]
async fn strict_fifo_lock_is_fifo() -> trio::Result<()> {
    let lock = StrictFifoLock::new();
    let order = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        let g = lock.acquire().await?;
        for i in 0..3 {
            let (lock, order) = (&lock, &order);
            n.start_soon(async move {
                let _g = lock.acquire().await?;
                order.borrow_mut().push(i);
                Ok(())
            });
            settle().await;
        }
        assert_eq!(lock.statistics().tasks_waiting, 3);
        drop(g);
        Ok(())
    })
    .await?;
    assert_eq!(*order.borrow(), [0, 1, 2]);
    Ok(())
}

// ----- Semaphore ------------------------------------------------------------------

#[trio::test(autojump)]
async fn semaphore_is_fifo_and_cancelled_acquire_takes_nothing() -> trio::Result<()> {
    let sem = Semaphore::new(1);
    let order = RefCell::new(Vec::new());
    let scopes: Vec<CancelScope> = (0..3).map(|_| CancelScope::new()).collect();
    trio::open_nursery(async |n| {
        let p = sem.acquire().await?;
        for (i, scope) in scopes.iter().enumerate() {
            let (sem, order) = (&sem, &order);
            n.start_soon(async move {
                if let Some(_p) = scope.run(sem.acquire()).await? {
                    order.borrow_mut().push(i);
                    trio::sleep(0.1).await?;
                }
                Ok(())
            });
            settle().await;
        }
        scopes[0].cancel();
        settle().await;
        assert_eq!(sem.statistics().tasks_waiting, 2);
        assert_eq!(sem.value(), 0);
        drop(p);
        // Handed over directly: the value stays 0 and nobody can barge in.
        assert_eq!(sem.value(), 0);
        assert_eq!(sem.try_acquire().unwrap_err().kind(), ErrorKind::WouldBlock);
        Ok(())
    })
    .await?;
    assert_eq!(*order.borrow(), [1, 2]);
    assert_eq!(sem.value(), 1);
    Ok(())
}

#[trio::test(autojump)]
async fn bounded_semaphore_rejects_over_release() -> trio::Result<()> {
    assert_eq!(
        Semaphore::with_max(3, 2).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let sem = Semaphore::with_max(1, 1)?;
    assert_eq!(sem.release().unwrap_err().kind(), ErrorKind::Usage);
    sem.acquire_raw().await?;
    sem.release()?;
    assert_eq!(sem.statistics().value, 1);
    assert_eq!(sem.max_value(), Some(1));
    // Unbounded: any number of releases.
    let free = Semaphore::new(0);
    free.release()?;
    free.release()?;
    assert_eq!(free.value(), 2);
    Ok(())
}

// ----- CapacityLimiter ---------------------------------------------------------------

#[trio::test(autojump)]
async fn limiter_tokens_per_borrower() -> trio::Result<()> {
    assert_eq!(
        CapacityLimiter::new(0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let lim = CapacityLimiter::new(2)?;
    let (a, b) = (Borrower::unique(), Borrower::unique());
    lim.acquire_on_behalf_of(a).await?;
    assert_eq!(
        lim.try_acquire_on_behalf_of(a).unwrap_err().kind(),
        ErrorKind::Usage
    );
    lim.try_acquire_on_behalf_of(b)?;
    assert_eq!(lim.available_tokens(), 0);
    assert_eq!(lim.try_acquire().unwrap_err().kind(), ErrorKind::WouldBlock);
    let mut who = lim.statistics().borrowers;
    who.sort_by_key(|b| format!("{b:?}"));
    assert_eq!(who.len(), 2);
    lim.release_on_behalf_of(a)?;
    assert_eq!(
        lim.release_on_behalf_of(a).unwrap_err().kind(),
        ErrorKind::Usage
    );
    {
        let _t = lim.acquire().await?; // for the current task
        assert!(
            lim.statistics()
                .borrowers
                .contains(&Borrower::current_task()?)
        );
    }
    assert_eq!(lim.borrowed_tokens(), 1);
    assert_eq!(
        lim.set_total_tokens(0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    Ok(())
}

#[trio::test(autojump)]
async fn raising_the_total_wakes_waiters_at_once_in_order() -> trio::Result<()> {
    let lim = CapacityLimiter::new(1)?;
    let order = RefCell::new(Vec::new());
    let scope = CancelScope::new();
    trio::open_nursery(async |n| {
        let t = lim.acquire().await?;
        for i in 0..4 {
            let (lim, order, scope) = (&lim, &order, &scope);
            n.start_soon(async move {
                let got = if i == 1 {
                    scope.run(lim.acquire()).await?
                } else {
                    Some(lim.acquire().await?)
                };
                if let Some(_t) = got {
                    order.borrow_mut().push(i);
                    trio::sleep(1.0).await?;
                }
                Ok(())
            });
            settle().await;
        }
        scope.cancel(); // a cancelled acquire: nothing borrowed, order kept
        settle().await;
        assert_eq!(lim.statistics().tasks_waiting, 3);
        lim.set_total_tokens(3)?; // two more tokens: two waiters at once
        assert_eq!(lim.borrowed_tokens(), 3);
        assert_eq!(lim.statistics().tasks_waiting, 1);
        settle().await;
        // FIFO picks who is woken; woken together, they run in either order.
        order.borrow_mut().sort();
        assert_eq!(*order.borrow(), [0, 2]);
        drop(t);
        Ok(())
    })
    .await?;
    assert_eq!(*order.borrow(), [0, 2, 3]);
    assert_eq!(lim.borrowed_tokens(), 0);
    Ok(())
}

#[trio::test(autojump)]
async fn lowering_the_total_takes_effect_as_tokens_return() -> trio::Result<()> {
    let lim = CapacityLimiter::new(2)?;
    let (a, b, c) = (Borrower::unique(), Borrower::unique(), Borrower::unique());
    lim.acquire_on_behalf_of(a).await?;
    lim.acquire_on_behalf_of(b).await?;
    lim.set_total_tokens(1)?;
    lim.release_on_behalf_of(a)?;
    assert_eq!(
        lim.try_acquire_on_behalf_of(c).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    lim.release_on_behalf_of(b)?;
    lim.try_acquire_on_behalf_of(c)?;
    Ok(())
}

// ----- Condition ---------------------------------------------------------------------

#[trio::test(autojump)]
async fn condition_notify_wakes_waiters_in_order_holding_the_lock() -> trio::Result<()> {
    let cond = Condition::new();
    let order = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        for i in 0..3 {
            let (cond, order) = (&cond, &order);
            n.start_soon(async move {
                let _g = cond.acquire().await?;
                cond.wait().await?;
                assert_eq!(cond.lock().owner(), Some(trio::lowlevel::current_task()));
                order.borrow_mut().push(i);
                Ok(())
            });
            settle().await;
        }
        assert_eq!(cond.statistics().tasks_waiting, 3);
        let g = cond.acquire().await?;
        cond.notify(2)?;
        assert_eq!(cond.statistics().tasks_waiting, 1);
        assert_eq!(cond.statistics().lock_statistics.tasks_waiting, 2);
        drop(g);
        settle().await;
        assert_eq!(*order.borrow(), [0, 1]);
        let _g = cond.acquire().await?;
        cond.notify_all()?;
        Ok(())
    })
    .await?;
    assert_eq!(*order.borrow(), [0, 1, 2]);
    assert!(!cond.locked());
    Ok(())
}

#[trio::test(autojump)]
async fn cancelled_condition_wait_reacquires_the_lock() -> trio::Result<()> {
    let cond = Condition::new();
    let scope = CancelScope::new();
    let held_after = RefCell::new(None);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let _g = cond.acquire().await?;
            let r = scope.run(cond.wait()).await;
            let me = trio::lowlevel::current_task();
            *held_after.borrow_mut() =
                Some((r.ok().map(|v| v.is_none()), cond.lock().owner() == Some(me)));
            Ok(())
        });
        settle().await;
        // Hold the lock while cancelling: the waiter must wait for it.
        let g = cond.acquire().await?;
        scope.cancel();
        settle().await;
        assert!(held_after.borrow().is_none());
        drop(g);
        Ok(())
    })
    .await?;
    assert_eq!(*held_after.borrow(), Some((Some(true), true)));
    assert!(!cond.locked());
    Ok(())
}

#[trio::test(autojump)]
async fn condition_needs_the_lock() -> trio::Result<()> {
    let cond = Condition::with_lock(Lock::new());
    assert_eq!(cond.wait().await.unwrap_err().kind(), ErrorKind::Usage);
    assert_eq!(cond.notify(1).unwrap_err().kind(), ErrorKind::Usage);
    assert_eq!(cond.notify_all().unwrap_err().kind(), ErrorKind::Usage);
    cond.acquire_raw().await?;
    cond.notify_all()?;
    cond.release()?;
    Ok(())
}

#[trio::test(autojump)]
async fn debug_impls_do_not_panic() -> trio::Result<()> {
    let s = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        Event::new(),
        Lock::new(),
        StrictFifoLock::new(),
        Semaphore::new(1),
        CapacityLimiter::new(1)?,
        Condition::new(),
        ParkingLot::new()
    );
    assert!(s.contains("Lock"));
    Ok(())
}

// ----- Mutex<T> ----------------------------------------------------------------

#[trio::test(autojump)]
async fn mutex_guards_its_data_across_awaits_and_hands_off_fairly() -> trio::Result<()> {
    use trio::sync::Mutex;
    let m = Mutex::new(Vec::new());
    trio::open_nursery(async |n| {
        for name in ["a", "b", "c"] {
            let m = &m;
            n.start_soon(async move {
                for i in 0..2 {
                    let mut v = m.lock().await?;
                    v.push(format!("{name}{i}"));
                    trio::checkpoint().await?; // still ours while we wait
                    v.push(format!("{name}{i}"));
                }
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    let v = m.into_inner();
    // Pairs are never interleaved, and the lock goes round-robin: the tasks
    // first queue in the order the seed runs them, then keep that order.
    let pairs: Vec<&str> = v
        .chunks(2)
        .map(|p| {
            assert_eq!(p[0], p[1], "interleaved: {v:?}");
            p[0].as_str()
        })
        .collect();
    let first: Vec<String> = pairs[..3].iter().map(|p| p.replace('0', "")).collect();
    let second: Vec<String> = pairs[3..].iter().map(|p| p.replace('1', "")).collect();
    assert!(pairs[..3].iter().all(|p| p.ends_with('0')), "{v:?}");
    assert!(pairs[3..].iter().all(|p| p.ends_with('1')), "{v:?}");
    assert_eq!(first, second, "not round-robin: {v:?}");
    let mut names = first.clone();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    Ok(())
}

#[trio::test(autojump)]
async fn mutex_try_lock_and_cancelled_lock_take_nothing() -> trio::Result<()> {
    use trio::sync::Mutex;
    let m = Mutex::new(0);
    let held = m.lock().await?;
    // Re-locking from the holder is a usage error (not re-entrant).
    assert_eq!(m.try_lock().unwrap_err().kind(), ErrorKind::Usage);
    trio::open_nursery(async |n| {
        let m = &m;
        n.start_soon(async move {
            assert_eq!(m.try_lock().unwrap_err().kind(), ErrorKind::WouldBlock);
            let r = trio::move_on_after(1.0, async { m.lock().await.map(|_| ()) }).await?;
            assert_eq!(r, None, "timed out waiting");
            Ok(())
        });
        Ok(())
    })
    .await?;
    assert!(m.is_locked());
    assert_eq!(
        m.statistics().tasks_waiting,
        0,
        "the cancelled waiter left the queue"
    );
    drop(held);
    *m.try_lock()? += 5;
    assert_eq!(*m.lock().await?, 5);
    assert!(format!("{m:?}").contains("value: 5"));
    Ok(())
}

// ----- waits left by futures leaked in an earlier run -----------------------------
//
// A primitive may outlive its run. A blocked future leaked (`mem::forget`)
// in that run leaves a wait that can never be woken; each test makes one in
// a first run (so a plain `#[test]`) and checks that a later release does
// not hand what it frees to that wait.

/// Polls `fut` once (it must block) and leaks it.
async fn leak_blocked<F: std::future::Future>(fut: F) {
    let mut fut = Box::pin(fut);
    poll_fn(|cx| {
        assert!(fut.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    std::mem::forget(fut);
}

#[test]
fn a_unit_released_past_an_acquire_leaked_in_an_earlier_run_is_not_lost() {
    let sem = Semaphore::new(0);
    trio::run(async {
        leak_blocked(sem.acquire_raw()).await;
        Ok(())
    })
    .unwrap();
    run_autojump(async {
        sem.release()?;
        assert_eq!((sem.value(), sem.statistics().tasks_waiting), (1, 0));
        Ok(())
    });
}

#[test]
fn a_token_freed_past_an_acquire_leaked_in_an_earlier_run_is_not_lost() {
    let limiter = CapacityLimiter::new(1).unwrap();
    let (holder, stale) = (Borrower::unique(), Borrower::unique());
    trio::run(async {
        limiter.acquire_on_behalf_of(holder).await?;
        leak_blocked(limiter.acquire_on_behalf_of(stale)).await;
        Ok(())
    })
    .unwrap();
    run_autojump(async {
        limiter.release_on_behalf_of(holder)?;
        let s = limiter.statistics();
        assert_eq!((s.borrowed_tokens, s.tasks_waiting), (0, 0));
        // The stale acquire no longer counts as `stale` waiting.
        limiter.try_acquire_on_behalf_of(stale)?;
        Ok(())
    });
}
