//! The task tree and deadlock reports name what a blocked task waits in
//! (`Event.wait`, `Lock.acquire`, …) and the line of the *user's* call, not
//! a line inside trio.

mod common;

use std::cell::Cell;
use trio::sync::{
    Borrower, CapacityLimiter, Condition, Event, Lock, ParkingLot, Semaphore, StrictFifoLock,
};
use trio::testing::wait_all_tasks_blocked;
use trio::{ErrorKind, open_memory_channel, open_nursery};

/// The task tree once every task is blocked.
async fn tree() -> trio::Result<String> {
    wait_all_tasks_blocked().await?;
    Ok(trio::lowlevel::task_tree()?.to_string())
}

fn site(label: &str, line: u32) -> String {
    format!("waiting in {label} at trio/tests/wait_sites.rs:{line}:")
}

#[track_caller]
fn assert_has(tree: &str, label: &str, line: u32) {
    let want = site(label, line);
    assert!(tree.contains(&want), "missing {want:?} in:\n{tree}");
}

#[trio::test(autojump)]
async fn blocked_primitives_show_the_callers_line() -> trio::Result<()> {
    let event = Event::new();
    let lock = Lock::new();
    let sem = Semaphore::new(0);
    let (_tx, rx) = open_memory_channel::<u32>(0); // nobody sends
    let (tx, _rx) = open_memory_channel::<u32>(0); // nobody receives
    let lines: [Cell<u32>; 5] = Default::default();
    open_nursery(async |n| {
        let _held = lock.acquire().await?;
        n.start_soon(async {
            lines[0].set(line!() + 1);
            event.wait().await
        });
        n.start_soon(async {
            lines[1].set(line!() + 1);
            let _guard = lock.acquire().await?;
            Ok(())
        });
        n.start_soon(async {
            lines[2].set(line!() + 1);
            rx.receive().await?;
            Ok(())
        });
        n.start_soon(async {
            lines[3].set(line!() + 1);
            let _permit = sem.acquire().await?;
            Ok(())
        });
        n.start_soon(async {
            lines[4].set(line!() + 1);
            tx.send(7).await?;
            Ok(())
        });
        let tree = tree().await?;
        assert_has(&tree, "Event.wait", lines[0].get());
        assert_has(&tree, "Lock.acquire", lines[1].get());
        assert_has(&tree, "MemoryReceiveChannel.receive", lines[2].get());
        assert_has(&tree, "Semaphore.acquire", lines[3].get());
        assert_has(&tree, "MemorySendChannel.send", lines[4].get());
        assert!(!tree.contains("trio/src/"), "{tree}");
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn other_blocking_methods_show_the_callers_line() -> trio::Result<()> {
    let fifo = StrictFifoLock::new();
    let raw_lock = Lock::new();
    let cond = Condition::new();
    let limiter = CapacityLimiter::new(1)?;
    let thread_limiter = CapacityLimiter::new(1)?;
    let lot = ParkingLot::new();
    let raw_sem = Semaphore::new(0);
    let (_tx, rx) = open_memory_channel::<u32>(0);
    let lines: [Cell<u32>; 9] = Default::default();
    open_nursery(async |n| {
        let _fifo = fifo.try_acquire()?;
        let _raw = raw_lock.try_acquire()?;
        let _token = limiter.try_acquire()?;
        let _thread_token = thread_limiter.try_acquire()?;
        n.start_soon(async {
            lines[0].set(line!() + 1);
            let _g = fifo.acquire().await?;
            Ok(())
        });
        n.start_soon(async {
            lines[1].set(line!() + 1);
            raw_lock.acquire_raw().await?;
            raw_lock.release()
        });
        n.start_soon(async {
            let _held = cond.acquire().await?;
            lines[2].set(line!() + 1);
            cond.wait().await
        });
        n.start_soon(async {
            lines[3].set(line!() + 1);
            let _t = limiter.acquire().await?;
            Ok(())
        });
        n.start_soon(async {
            lines[4].set(line!() + 1);
            lot.park().await
        });
        n.start_soon(async {
            lines[5].set(line!() + 1);
            raw_sem.acquire_raw().await
        });
        n.start_soon(async {
            lines[6].set(line!() + 1);
            rx.next().await.transpose()?;
            Ok(())
        });
        n.start_soon(async {
            let borrower = Borrower::unique();
            lines[7].set(line!() + 1);
            limiter.acquire_on_behalf_of(borrower).await
        });
        n.start_soon(async {
            let builder = trio::to_thread::Builder::new().limiter(thread_limiter.clone());
            lines[8].set(line!() + 1);
            builder.run_sync(|| ()).await
        });
        let tree = tree().await?;
        assert_has(&tree, "StrictFifoLock.acquire", lines[0].get());
        assert_has(&tree, "Lock.acquire_raw", lines[1].get());
        assert_has(&tree, "Condition.wait", lines[2].get());
        assert_has(&tree, "CapacityLimiter.acquire", lines[3].get());
        assert_has(&tree, "ParkingLot.park", lines[4].get());
        assert_has(&tree, "Semaphore.acquire_raw", lines[5].get());
        assert_has(&tree, "MemoryReceiveChannel.next", lines[6].get());
        assert_has(
            &tree,
            "CapacityLimiter.acquire_on_behalf_of",
            lines[7].get(),
        );
        assert_has(&tree, "to_thread.run_sync", lines[8].get());
        assert!(!tree.contains("trio/src/"), "{tree}");
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_notified_condition_waiter_still_shows_its_wait() -> trio::Result<()> {
    let cond = Condition::new();
    let line = Cell::new(0);
    open_nursery(async |n| {
        n.start_soon(async {
            let _held = cond.acquire().await?;
            line.set(line!() + 1);
            cond.wait().await
        });
        wait_all_tasks_blocked().await?;
        // Notified while we hold the lock: the waiter now waits for the
        // lock, still inside its `wait` call.
        let _held = cond.acquire().await?;
        cond.notify_all()?;
        let tree = tree().await?;
        assert_has(&tree, "Condition.wait", line.get());
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    Ok(())
}

#[test]
fn deadlock_report_names_both_event_waits() {
    let lines = [Cell::new(0), Cell::new(0)];
    let err = trio::run(async {
        let (a_ready, b_ready) = (Event::new(), Event::new());
        open_nursery(async |n| {
            n.start_soon(async {
                lines[0].set(line!() + 1);
                b_ready.wait().await?; // only the other task would set it
                a_ready.set();
                Ok(())
            });
            n.start_soon(async {
                lines[1].set(line!() + 1);
                a_ready.wait().await?;
                b_ready.set();
                Ok(())
            });
            Ok(())
        })
        .await
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err:?}");
    let report = err.to_string();
    assert_has(&report, "Event.wait", lines[0].get());
    assert_has(&report, "Event.wait", lines[1].get());
    assert!(!report.contains("trio/src/"), "{report}");
}
