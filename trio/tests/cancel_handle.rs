//! `CancelHandle`: cancelling a scope from another thread, another run,
//! before entry and after exit.

use std::time::Duration;
use trio::prelude::*;

/// Lets a thread run for a little real time before it acts, so the run is
/// blocked (waiting on the handle) when the cancel arrives.
fn after_a_moment(f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        f();
    })
}

#[trio::test(autojump)]
async fn a_handle_cancels_from_another_thread() -> trio::Result<()> {
    let scope = CancelScope::new();
    let handle = scope.handle();
    assert!(!handle.is_cancel_called());
    // Nothing else could wake this run: the live handle keeps it from
    // being reported as a deadlock while the thread sleeps.
    let thread = after_a_moment(move || handle.cancel());
    let r = scope.run(trio::sleep_forever()).await?;
    assert_eq!(r, None);
    assert!(scope.cancel_called() && scope.cancelled_caught());
    thread.join().unwrap();
    Ok(())
}

#[trio::test(autojump)]
async fn a_handle_cancels_from_another_run() -> trio::Result<()> {
    let scope = CancelScope::new();
    let handle = scope.handle();
    let other_run = std::thread::spawn(move || {
        trio::run(async move {
            trio::sleep(0.02).await?; // real time: this run has a system clock
            handle.cancel();
            assert!(handle.is_cancel_called());
            Ok(())
        })
    });
    let r = scope.run(trio::sleep_forever()).await?;
    assert_eq!(r, None);
    other_run.join().unwrap()?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_handle_cancelled_before_entry_starts_the_scope_cancelled() -> trio::Result<()> {
    let scope = CancelScope::new();
    let handle = scope.handle();
    std::thread::spawn(move || handle.cancel()).join().unwrap();
    assert!(scope.cancel_called());
    let r = scope.run(trio::checkpoint()).await?;
    assert_eq!(r, None);
    assert!(scope.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn a_handle_on_the_run_thread_cancels_at_once() -> trio::Result<()> {
    let scope = CancelScope::new();
    let handle = scope.handle();
    trio::open_nursery(async |nursery| {
        let scope = &scope;
        nursery.start_soon(async move {
            assert_eq!(scope.run(trio::sleep_forever()).await?, None);
            Ok(())
        });
        trio::testing::wait_all_tasks_blocked().await?;
        handle.cancel();
        // Cancelled now, not at some later post: the status says so at once.
        assert!(scope.cancel_called());
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn a_handle_after_exit_does_nothing() -> trio::Result<()> {
    let scope = CancelScope::new().with_relative_deadline(1.0)?;
    let handle = scope.handle();
    assert_eq!(scope.run(trio::sleep(0.5)).await?, Some(()));
    assert!(!handle.is_cancel_called());
    let h2 = handle.clone();
    std::thread::spawn(move || h2.cancel()).join().unwrap();
    handle.cancel();
    assert!(!scope.cancelled_caught());
    assert!(format!("{handle:?}").contains("Exited"));
    // A scope that ended by its deadline reads as cancelled from anywhere.
    let timed_out = CancelScope::new().with_relative_deadline(1.0)?;
    let handle = timed_out.handle();
    assert_eq!(timed_out.run(trio::sleep_forever()).await?, None);
    assert!(handle.is_cancel_called());
    Ok(())
}

#[trio::test(autojump)]
async fn a_handle_to_a_nursery_scope_works_from_a_thread() -> trio::Result<()> {
    let r = trio::open_nursery(async |nursery| {
        let handle = nursery.cancel_scope().handle();
        nursery.start_soon(trio::sleep_forever());
        after_a_moment(move || handle.cancel());
        Ok(())
    })
    .await?;
    assert_eq!(r, Some(()));
    Ok(())
}

#[test]
fn a_run_whose_only_handle_was_dropped_is_a_deadlock() {
    let err = trio::run(async {
        let scope = CancelScope::new();
        let handle = scope.handle();
        after_a_moment(move || drop(handle));
        scope.run(trio::sleep_forever()).await?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadlock);
}

#[test]
fn cancel_handles_are_send_sync_clone_debug() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    check::<trio::CancelHandle>();
}
