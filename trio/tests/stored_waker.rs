//! `trio::lowlevel::StoredWaker`: a stored task waker wakes its task; a
//! stale one (its task ended) wakes nobody; foreign wakers are kept as
//! clones; and a task waiting only on a stored waker of its own is still
//! a deadlock.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use trio::lowlevel::{StoredWaker, checkpoint};
use trio::{ErrorKind, open_nursery};

/// A waker that counts its wakes.
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pending until `done` is set; stores its waker in `slot` on every
/// pending poll and counts its polls.
async fn wait_stored(slot: &RefCell<Option<StoredWaker>>, done: &Cell<bool>, polls: &Cell<u32>) {
    poll_fn(|cx| {
        polls.set(polls.get() + 1);
        if done.get() {
            return Poll::Ready(());
        }
        *slot.borrow_mut() = Some(StoredWaker::new(cx.waker()));
        Poll::Pending
    })
    .await
}

/// Yields until `cond` holds (the scheduler's order is shuffled by seed,
/// so one checkpoint need not let a sibling run).
async fn until(cond: impl Fn() -> bool) -> trio::Result<()> {
    while !cond() {
        checkpoint().await?;
    }
    Ok(())
}

#[trio::test(autojump)]
async fn a_stored_task_waker_wakes_its_task() -> trio::Result<()> {
    let slot = RefCell::new(None);
    let (done, polls) = (Cell::new(false), Cell::new(0));
    open_nursery(async |n| {
        n.start_soon(async {
            wait_stored(&slot, &done, &polls).await;
            Ok(())
        });
        // Let the waiter park, then wake it through the stored waker.
        until(|| polls.get() == 1).await?;
        let stored = slot.borrow_mut().take().expect("stored");
        assert_eq!(format!("{stored:?}"), r#"StoredWaker { kind: "task" }"#);
        done.set(true);
        stored.wake();
        Ok(())
    })
    .await?;
    assert_eq!(polls.get(), 2);
    Ok(())
}

#[trio::test(autojump)]
async fn a_stale_stored_waker_wakes_nobody() -> trio::Result<()> {
    let old_slot = RefCell::new(None);
    let (old_done, old_polls) = (Cell::new(false), Cell::new(0));
    let slot = RefCell::new(None);
    let (done, polls) = (Cell::new(false), Cell::new(0));
    open_nursery(async |n| {
        // A task that stores its waker, then ends (woken once by it).
        n.start_soon(async {
            wait_stored(&old_slot, &old_done, &old_polls).await;
            Ok(())
        });
        until(|| old_polls.get() == 1).await?;
        old_done.set(true);
        old_slot.borrow().as_ref().expect("stored").wake_by_ref();
        until(|| old_polls.get() == 2).await?;
        // (It returned on that poll: a checkpoint more and it has ended.)
        checkpoint().await?;
        // A new task (it may reuse the ended one's slot) waits.
        n.start_soon(async {
            wait_stored(&slot, &done, &polls).await;
            Ok(())
        });
        until(|| polls.get() == 1).await?;
        // The stale waker wakes nobody: the new task is not polled.
        old_slot.borrow_mut().take().expect("stored").wake();
        for _ in 0..10 {
            checkpoint().await?;
        }
        assert_eq!(polls.get(), 1);
        done.set(true);
        slot.borrow_mut().take().expect("stored").wake();
        Ok(())
    })
    .await?;
    assert_eq!(polls.get(), 2);
    Ok(())
}

#[trio::test(autojump)]
async fn a_foreign_waker_is_kept_as_a_clone() -> trio::Result<()> {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let stored = StoredWaker::new(&waker);
    assert_eq!(format!("{stored:?}"), r#"StoredWaker { kind: "foreign" }"#);
    assert!(stored.will_wake(&waker));
    drop(waker);
    stored.wake_by_ref();
    stored.wake();
    assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    assert_eq!(Arc::strong_count(&counter), 1, "the clone is dropped");
    Ok(())
}

#[test]
fn a_waker_stored_outside_a_run_is_kept_as_a_clone() {
    let counter = Arc::new(Counter(AtomicUsize::new(0)));
    let stored = StoredWaker::new(&Waker::from(counter.clone()));
    stored.wake();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
}

#[test]
fn a_task_waiting_only_on_its_stored_waker_is_a_deadlock() {
    // The stored waker is inside the run, so it does not count as a waker
    // held outside: nothing can wake the task, and the detector says so.
    let err = trio::run(async {
        let kept: Rc<RefCell<Option<StoredWaker>>> = Rc::default();
        poll_fn(|cx: &mut Context<'_>| {
            kept.borrow_mut()
                .get_or_insert_with(|| StoredWaker::new(cx.waker()));
            Poll::<()>::Pending
        })
        .await;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err:?}");
}
