//! The testing toolkit: `Sequencer` and the checkpoint assertions.

mod common;

use common::{Log, mock_run};
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;
use trio::ResultExt;
use trio::testing::{
    MockClock, Sequencer, assert_checkpoints, assert_no_checkpoints, measure_checkpoints,
    wait_all_tasks_blocked,
};
use trio::{CancelScope, ErrorKind, Runner};

fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        panic!("a panic payload that is not a string")
    }
}

/// Runs `f` on an autojump clock with a given seed.
fn seeded_run<T>(seed: u64, f: impl Future<Output = trio::Result<T>>) -> trio::Result<T> {
    Runner::new().clock(MockClock::autojump()).seed(seed).run(f)
}

// ----- Sequencer ----------------------------------------------------------

#[test]
fn sequencer_orders_steps_across_three_tasks() {
    for seed in 0..16 {
        let log = Log::default();
        seeded_run(seed, async {
            let seq = Sequencer::new();
            trio::open_nursery(async |n| {
                // (task, its steps): started in an order unrelated to the steps.
                for (name, steps) in [("c", [2, 5]), ("a", [0, 3]), ("b", [1, 4])] {
                    let (seq, log) = (&seq, &log);
                    n.start_soon(async move {
                        for step in steps {
                            let guard = seq.step(step).await?;
                            assert_eq!(guard.position(), step);
                            log.push(format!("{name}{step} start"));
                            // The others stay out while we block inside a step.
                            trio::sleep(0.1).await?;
                            trio::checkpoint().await?;
                            log.push(format!("{name}{step} end"));
                        }
                        Ok(())
                    });
                }
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
        let expected: Vec<String> = ["a0", "b1", "c2", "a3", "b4", "c5"]
            .iter()
            .flat_map(|s| [format!("{s} start"), format!("{s} end")])
            .collect();
        assert_eq!(log.take(), expected, "seed {seed}");
    }
}

#[trio::test(autojump)]
async fn sequencer_step_zero_does_not_wait_or_checkpoint() -> trio::Result<()> {
    let seq = Sequencer::new();
    let g = assert_no_checkpoints(seq.step(0)).await?;
    drop(g);
    // A released step: the next one is a checkpoint but does not block.
    let _g = assert_checkpoints(seq.step(1)).await?;
    Ok(())
}

#[trio::test(autojump)]
async fn sequencer_reusing_a_step_is_a_usage_error() -> trio::Result<()> {
    let seq = Sequencer::new();
    {
        let _g = seq.step(0).await?;
        let err = seq.step(0).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
        assert!(err.to_string().contains("reuse sequence point 0"), "{err}");
    }
    let _g = seq.step(1).await?;
    // Also after the step is over, and for a step still in the future.
    assert_eq!(seq.step(0).await.unwrap_err().kind(), ErrorKind::Usage);
    assert_eq!(seq.step(1).await.unwrap_err().kind(), ErrorKind::Usage);
    assert!(!seq.is_broken());
    assert!(format!("{seq:?}").contains("claimed: [0, 1]"));
    Ok(())
}

#[test]
fn sequencer_cancelled_wait_breaks_the_sequence() {
    let broke_at = Cell::new(None);
    let results: RefCell<Vec<(&str, ErrorKind)>> = RefCell::new(Vec::new());
    mock_run(async {
        let seq = Sequencer::new();
        trio::open_nursery(async |n| {
            let (seq, results, broke_at) = (&seq, &results, &broke_at);
            n.start_soon(async move {
                // Nobody ever takes step 0, so this waits until its timeout.
                let r = trio::move_on_after(1.0, seq.step(1)).await;
                broke_at.set(Some(trio::current_time().as_secs_f64()));
                // The cancellation is turned into an error, which the scope
                // does not absorb (as Trio's RuntimeError).
                results
                    .borrow_mut()
                    .push(("timed out", r.unwrap_err().kind()));
                Ok(())
            });
            n.start_soon(async move {
                let r = seq.step(2).await;
                results
                    .borrow_mut()
                    .push(("other waiter", r.unwrap_err().kind()));
                Ok(())
            });
            Ok(())
        })
        .await?;
        assert!(seq.is_broken());
        // Later calls fail too, even for a step nobody claimed.
        let err = seq.step(0).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Broken);
        assert!(err.to_string().contains("broken"), "{err}");
        Ok(())
    })
    .unwrap();
    assert_eq!(broke_at.get(), Some(1.0));
    let mut results = results.into_inner();
    results.sort_by_key(|r| r.0);
    assert_eq!(
        results,
        [
            ("other waiter", ErrorKind::Broken),
            ("timed out", ErrorKind::Broken)
        ]
    );
}

#[trio::test(autojump)]
async fn sequencer_dropped_wait_breaks_the_sequence() -> trio::Result<()> {
    let seq = Sequencer::new();
    let mut step = Box::pin(seq.step(1));
    poll_fn(|cx| {
        assert!(step.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    assert!(!seq.is_broken());
    drop(step);
    assert!(seq.is_broken());
    assert_eq!(seq.step(2).await.unwrap_err().kind(), ErrorKind::Broken);
    Ok(())
}

#[test]
fn sequencer_step_is_released_when_the_guard_unwinds_with_an_error() {
    let log = Log::default();
    mock_run(async {
        let seq = Sequencer::new();
        let err = trio::open_nursery(async |n| {
            let (seq, log) = (&seq, &log);
            n.start_soon(async move {
                let _g = seq.step(1).await?;
                log.push("one");
                Ok(())
            });
            n.start_soon(async move {
                let _g = seq.step(0).await?;
                log.push("zero fails");
                Err(trio::Error::new(ErrorKind::Other, "step 0 failed"))
            });
            Ok(())
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "step 0 failed");
        Ok(())
    })
    .unwrap();
    // Step 1 was let in (the failure cancels it only at its next checkpoint,
    // and it has none after the step).
    assert_eq!(log.take(), ["zero fails", "one"]);
}

#[trio::test(autojump)]
async fn sequencer_is_clone_and_debug() -> trio::Result<()> {
    let seq = Sequencer::new();
    let other = seq.clone();
    let g = other.step(0).await?;
    assert_eq!(format!("{g:?}"), "StepGuard { position: 0 }");
    assert_eq!(
        format!("{seq:?}"),
        "Sequencer { claimed: [0], broken: false }"
    );
    Ok(())
}

// ----- checkpoint assertions ---------------------------------------------

/// (schedule points, cancel points) of `fut`, and its output.
async fn counts<F: Future>(fut: F) -> (F::Output, (u64, u64)) {
    let (out, c) = measure_checkpoints(fut).await;
    (out, (c.schedule_points, c.cancel_points))
}

/// A socket read that succeeds at once counts one of each (here its
/// schedule point passes in place: nothing else is ready); dropped after
/// its first poll (the task yielded at its shielded schedule point, the
/// result not yet taken, as `select!` may do) it has counted both too:
/// the task did yield (the table in `testing`'s checkpoint docs).
#[trio::test]
async fn a_ready_socket_operation_counts_its_points_even_dropped_at_the_schedule_point()
-> trio::Result<()> {
    use std::pin::pin;
    use trio::socket::SocketStream;
    use trio::stream::{ReceiveStream, SendStream};
    let (a, b) = SocketStream::unix_pair()?;
    a.send_all(b"xy").await?;
    let mut buf = [0; 1];
    let (r, c) = counts(b.receive_some(&mut buf)).await;
    assert_eq!((r?, c), (1, (1, 1)));
    let (_, c) = counts(async {
        let mut op = pin!(b.receive_some(&mut buf));
        let mut first = true;
        poll_fn(|cx| {
            if std::mem::take(&mut first) {
                // Another wake is pending (this task's own), so the
                // schedule point cannot pass in place: read at once, and
                // the operation yields.
                cx.waker().wake_by_ref();
                assert!(op.as_mut().poll(cx).is_pending());
                return Poll::Pending;
            }
            Poll::Ready(())
        })
        .await;
    })
    .await;
    assert_eq!(c, (1, 1));
    Ok(())
}

#[trio::test(autojump)]
async fn checkpoint_and_sleep_pass_assert_checkpoints() -> trio::Result<()> {
    assert_checkpoints(trio::checkpoint()).await?;
    assert_checkpoints(trio::sleep(0.0)).await?;
    assert_checkpoints(trio::sleep(5.0)).await?;
    assert_eq!(counts(trio::checkpoint()).await.1, (1, 1));
    assert_eq!(counts(trio::sleep(0.0)).await.1, (1, 1));
    // The output comes back.
    let v: trio::Result<i32> = assert_checkpoints(async {
        trio::checkpoint().await?;
        Ok(7)
    })
    .await;
    let v = v?;
    assert_eq!(v, 7);
    // Returning `()` works too.
    assert_checkpoints(async { trio::checkpoint().await.unwrap() }).await;
    Ok(())
}

#[test]
fn nursery_exit_is_a_schedule_point_only() {
    // Trio: exiting a nursery is a schedule point but not a cancel point, so
    // assert_checkpoints fails on it.
    mock_run(async {
        let (r, c) = counts(trio::open_nursery(async |_| Ok(()))).await;
        r?;
        assert_eq!(c, (1, 0));
        Ok(())
    })
    .unwrap();
    let msg = panic_message(|| {
        mock_run(async {
            assert_checkpoints(trio::open_nursery(async |_| Ok(()))).await?;
            Ok(())
        })
        .unwrap();
    });
    assert!(
        msg.contains("without a checkpoint") && msg.contains("1 schedule point(s) and 0 cancel"),
        "{msg}"
    );
    assert!(msg.contains("testing_toolkit.rs"), "{msg}");
}

#[trio::test(autojump)]
async fn only_the_measuring_tasks_checkpoints_count() -> trio::Result<()> {
    // Counts are per task, as in Trio: a child's checkpoint does not count,
    // the body's does (it is the same task), and so does the nursery exit.
    let (r, c) = counts(trio::open_nursery(async |n| {
        n.start_soon(trio::checkpoint());
        Ok(())
    }))
    .await;
    r?;
    assert_eq!(c, (1, 0), "only the exit's schedule point");
    let (r, c) = counts(trio::open_nursery(async |n| {
        n.start_soon(trio::checkpoint());
        trio::checkpoint().await
    }))
    .await;
    r?;
    assert_eq!(c, (2, 1), "the body's checkpoint and the exit");
    Ok(())
}

#[test]
fn cancel_shielded_checkpoint_is_a_schedule_point_only() {
    mock_run(async {
        assert_eq!(counts(trio::cancel_shielded_checkpoint()).await.1, (1, 0));
        Ok(())
    })
    .unwrap();
    let msg = panic_message(|| {
        mock_run(async {
            assert_checkpoints(trio::cancel_shielded_checkpoint()).await?;
            Ok(())
        })
        .unwrap();
    });
    assert!(msg.contains("without a checkpoint"), "{msg}");
}

#[test]
fn checkpoint_if_cancelled_is_a_cancel_point_only() {
    // Trio's checkpoint_if_cancelled counts a cancel point, not a schedule
    // point: both assertions fail on it.
    mock_run(async {
        assert_eq!(counts(trio::checkpoint_if_cancelled()).await.1, (0, 1));
        Ok(())
    })
    .unwrap();
    let msg = panic_message(|| {
        mock_run(async {
            assert_checkpoints(trio::checkpoint_if_cancelled()).await?;
            Ok(())
        })
        .unwrap();
    });
    assert!(
        msg.contains("0 schedule point(s) and 1 cancel point(s)"),
        "{msg}"
    );
    let msg = panic_message(|| {
        mock_run(async {
            assert_no_checkpoints(trio::checkpoint_if_cancelled()).await?;
            Ok(())
        })
        .unwrap();
    });
    assert!(
        msg.contains("assert_no_checkpoints at")
            && msg.contains("(0 schedule point(s), 1 cancel point(s))"),
        "{msg}"
    );
}

#[test]
fn synchronous_code_has_no_checkpoints() {
    mock_run(async {
        let x = assert_no_checkpoints(async { 1 + 1 }).await;
        assert_eq!(x, 2);
        let (tx, rx) = trio::open_memory_channel::<u32>(1);
        assert!(assert_no_checkpoints(async { tx.try_send(5).is_ok() }).await);
        assert_eq!(assert_no_checkpoints(async { rx.try_receive() }).await?, 5);
        // Opening a nursery is not a checkpoint: only its exit is.
        trio::open_nursery(async |n| {
            assert_no_checkpoints(async {
                n.start_soon(trio::sleep(1.0));
                Ok(())
            })
            .await
        })
        .await?;
        Ok(())
    })
    .unwrap();
    let msg = panic_message(|| {
        mock_run(async {
            assert_checkpoints(async {}).await;
            Ok(())
        })
        .unwrap();
    });
    assert!(
        msg.contains("0 schedule point(s) and 0 cancel point(s)"),
        "{msg}"
    );
}

#[test]
fn assert_no_checkpoints_fails_on_a_checkpoint() {
    let msg = panic_message(|| {
        mock_run(async {
            assert_no_checkpoints(trio::sleep(0.0)).await?;
            Ok(())
        })
        .unwrap();
    });
    assert!(
        msg.contains("the code checkpointed (1 schedule point(s), 1 cancel point(s))"),
        "{msg}"
    );
    assert!(msg.contains("testing_toolkit.rs"), "{msg}");
}

#[trio::test(autojump)]
async fn a_checkpoint_in_a_cancelled_scope_still_counts() -> trio::Result<()> {
    let scope = CancelScope::new();
    scope.cancel();
    scope
        .run(async {
            // It ends in Err(Cancelled) after a schedule and a cancel point.
            let (r, c) = counts(trio::checkpoint()).await;
            assert!(r.is_cancelled());
            assert_eq!(c, (1, 1));
            // assert_checkpoints: the code "raised", so nothing is checked
            // (as in Trio), and the error comes back.
            let r = assert_checkpoints(trio::sleep(1.0)).await;
            assert!(r.is_cancelled());
            let r = assert_checkpoints(trio::checkpoint_if_cancelled()).await;
            assert!(r.is_cancelled());
            Ok(())
        })
        .await?;
    Ok(())
}

#[test]
fn assert_no_checkpoints_checks_even_when_the_code_fails() {
    // Trio checks assert_no_checkpoints in a `finally`.
    let msg = panic_message(|| {
        mock_run(async {
            let scope = CancelScope::new();
            scope.cancel();
            scope
                .run(async {
                    let _ = assert_no_checkpoints(trio::checkpoint_if_cancelled()).await;
                    Ok(())
                })
                .await?;
            Ok(())
        })
        .unwrap();
    });
    assert!(msg.contains("the code checkpointed"), "{msg}");
}

#[trio::test(autojump)]
async fn other_tasks_checkpoints_do_not_count() -> trio::Result<()> {
    let busy_done = Cell::new(0);
    trio::open_nursery(async |n| {
        let busy_done = &busy_done;
        n.start_soon(async move {
            for _ in 0..100 {
                trio::checkpoint().await?;
            }
            busy_done.set(100);
            Ok(())
        });
        // While we sleep, the other task does 100 checkpoints.
        let (r, c) = counts(trio::sleep(1.0)).await;
        r?;
        assert_eq!(busy_done.get(), 100);
        assert_eq!(c, (1, 1));
        Ok(())
    })
    .await?;
    Ok(())
}

#[test]
fn measure_outside_a_run_is_zero() {
    // Polled by hand outside any run: no counts, and the inner error comes back.
    let (r, c) = block_on_ready(measure_checkpoints(trio::checkpoint_if_cancelled()));
    assert!(r.is_err());
    assert_eq!((c.schedule_points, c.cancel_points), (0, 0));
}

/// Polls a future that is ready at once, without a runtime.
fn block_on_ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("not ready"),
    }
}

#[trio::test(autojump)]
async fn wait_all_tasks_blocked_with_sequencer() -> trio::Result<()> {
    // The toolkit pieces compose: a step holder blocks, everyone else waits.
    let seq = Sequencer::new();
    let reached = Cell::new(false);
    trio::open_nursery(async |n| {
        let (seq, reached) = (&seq, &reached);
        n.start_soon(async move {
            let _g = seq.step(1).await?;
            reached.set(true);
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        assert!(!reached.get());
        drop(seq.step(0).await?);
        wait_all_tasks_blocked().await?;
        assert!(reached.get());
        Ok(())
    })
    .await?;
    Ok(())
}
