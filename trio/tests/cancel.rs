//! Cancel scopes: who catches, shields, level-triggered delivery, deadlines.

mod common;

use common::{Log, mock_run, now};
use trio::ResultExt;
use trio::testing::measure_checkpoints;
use trio::{
    CancelScope, ErrorKind, Instant, cancel_shielded_checkpoint, checkpoint,
    checkpoint_if_cancelled, current_effective_deadline, fail_after, fail_at, move_on_after,
    move_on_at, open_nursery, sleep, sleep_forever,
};

#[trio::test(autojump)]
async fn the_outermost_cancelled_scope_catches() -> trio::Result<()> {
    let (outer, middle, inner) = (CancelScope::new(), CancelScope::new(), CancelScope::new());
    let r = outer
        .run(async {
            middle
                .run(async {
                    inner
                        .run(async {
                            inner.cancel();
                            middle.cancel();
                            outer.cancel();
                            checkpoint().await
                        })
                        .await?;
                    Ok(())
                })
                .await?;
            Ok(())
        })
        .await?;
    assert_eq!(r, None);
    assert!(outer.cancelled_caught());
    assert!(!middle.cancelled_caught());
    assert!(!inner.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn below_a_shield_the_outermost_cancelled_scope_catches() -> trio::Result<()> {
    let (outer, shielded, inner) = (
        CancelScope::new(),
        CancelScope::new().with_shield(true),
        CancelScope::new(),
    );
    let r = outer
        .run(async {
            let r = shielded
                .run(async {
                    inner
                        .run(async {
                            outer.cancel();
                            inner.cancel();
                            shielded.cancel();
                            checkpoint().await
                        })
                        .await?;
                    Ok("unreachable")
                })
                .await?;
            assert_eq!(r, None);
            Ok("after shield")
        })
        .await?;
    // The outer scope is cancelled but nothing checkpointed in it after
    // the shielded scope: its cancel was simply not delivered.
    assert_eq!(r, Some("after shield"));
    assert!(shielded.cancelled_caught());
    assert!(!inner.cancelled_caught());
    assert!(!outer.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn an_uncancelled_scope_never_catches() -> trio::Result<()> {
    let (outer, inner) = (CancelScope::new(), CancelScope::new());
    outer
        .run(async {
            let r = inner
                .run(async {
                    outer.cancel();
                    checkpoint().await
                })
                .await;
            assert!(r.is_cancelled(), "inner let it through");
            assert!(!inner.cancelled_caught());
            Ok(())
        })
        .await?;
    // The body returned Ok, so nothing reached the outer scope.
    assert!(!outer.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn shield_on_off_on_against_a_cancelled_outer_scope() -> trio::Result<()> {
    let outer = CancelScope::new();
    let shield = CancelScope::new().with_shield(true);
    let r = outer
        .run(async {
            outer.cancel();
            let r = shield
                .run(async {
                    checkpoint().await?; // shielded: fine
                    shield.set_shield(false);
                    assert!(checkpoint().await.is_cancelled());
                    assert!(sleep(1.0).await.is_cancelled());
                    shield.set_shield(true);
                    checkpoint().await?; // shielded again: fine
                    sleep(1.0).await?;
                    Ok(7)
                })
                .await?;
            assert_eq!(r, Some(7));
            assert!(!shield.cancelled_caught());
            checkpoint().await?; // back in the cancelled outer scope
            Ok(())
        })
        .await?;
    assert_eq!(r, None);
    assert!(outer.cancelled_caught());
    assert_eq!(now(), 1.0);
    Ok(())
}

/// A task sleeps 100 s in a shielded scope; at t=1 the outer scope is
/// cancelled and, if `unshield`, the shield is dropped. Returns what the
/// sleeper saw.
fn shielded_sleeper(unshield: bool) -> Vec<String> {
    mock_run(async {
        let outer = CancelScope::new();
        let shield = CancelScope::new().with_shield(true);
        let log = Log::default();
        outer
            .run(async {
                open_nursery(async |n| {
                    let (shield2, log2) = (&shield, &log);
                    n.start_soon(async move {
                        let r = shield2.run(sleep(100.0)).await;
                        log2.push(format!("sleeper woke at {} with {r:?}", now()));
                        r.map(|_| ())
                    });
                    sleep(1.0).await?;
                    outer.cancel();
                    if unshield {
                        shield.set_shield(false);
                    }
                    Ok(())
                })
                .await?;
                Ok(())
            })
            .await?;
        Ok(log.take())
    })
    .unwrap()
}

#[test]
fn unshielding_wakes_tasks_blocked_under_a_cancelled_parent() {
    // Shielded: the outer cancel does not reach the sleeper.
    assert_eq!(
        shielded_sleeper(false),
        ["sleeper woke at 100 with Ok(Some(()))"]
    );
    // Unshielded under the cancelled parent: it wakes at once, cancelled.
    assert_eq!(
        shielded_sleeper(true),
        ["sleeper woke at 1 with Err(Cancelled)"]
    );
}

#[trio::test(autojump)]
async fn cancellation_is_level_triggered() -> trio::Result<()> {
    let scope = CancelScope::new();
    let log = Log::default();
    scope
        .run(async {
            scope.cancel();
            // Two blocking calls in a row both fail...
            log.push(format!("{:?}", sleep(10.0).await));
            log.push(format!("{:?}", sleep_forever().await));
            // ... and so does cleanup code's checkpoint.
            log.push(format!("{:?}", checkpoint().await));
            log.push(format!("{:?}", checkpoint_if_cancelled().await));
            // A shielded schedule point does not fail.
            log.push(format!("{:?}", cancel_shielded_checkpoint().await));
            Ok(())
        })
        .await?;
    assert_eq!(
        log.take(),
        [
            "Err(Cancelled)",
            "Err(Cancelled)",
            "Err(Cancelled)",
            "Err(Cancelled)",
            "Ok(())"
        ]
    );
    assert_eq!(now(), 0.0);
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancel_with_no_checkpoint_before_exit_is_dropped() -> trio::Result<()> {
    let scope = CancelScope::new();
    let r = scope
        .run(async {
            scope.cancel();
            Ok(5)
        })
        .await?;
    assert_eq!(r, Some(5));
    assert!(scope.cancel_called());
    assert!(!scope.cancelled_caught());
    checkpoint().await?; // nothing leaked out of the scope
    Ok(())
}

#[trio::test(autojump)]
async fn cancel_before_entry_and_from_another_task() -> trio::Result<()> {
    let early = CancelScope::new();
    early.cancel();
    early.cancel(); // idempotent
    assert_eq!(early.run(checkpoint()).await?, None);
    assert!(early.cancelled_caught());

    let scope = CancelScope::new();
    let log = Log::default();
    open_nursery(async |n| {
        let (s, log) = (&scope, &log);
        n.start_soon(async move {
            let r = s.run(sleep(100.0)).await?;
            log.push(format!("woke at {} with {r:?}", now()));
            Ok(())
        });
        sleep(3.0).await?;
        scope.cancel(); // a blocked task wakes at once
        Ok(())
    })
    .await?;
    assert_eq!(log.take(), ["woke at 3 with None"]);
    Ok(())
}

#[trio::test(autojump)]
async fn a_scope_is_entered_once() -> trio::Result<()> {
    let scope = CancelScope::new();
    scope.run(checkpoint()).await?;
    let err = scope.run(checkpoint()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    Ok(())
}

#[trio::test(autojump)]
async fn deadlines_are_live_and_relative_deadlines_fixed_at_entry() -> trio::Result<()> {
    // Absolute deadline moved while running: takes effect at once.
    let scope = CancelScope::new().with_deadline(Instant::from_secs_f64(10.0));
    open_nursery(async |n| {
        let s = &scope;
        n.start_soon(async move {
            sleep(2.0).await?;
            assert_eq!(s.deadline().as_secs_f64(), 10.0);
            s.set_deadline(Instant::from_secs_f64(3.0));
            Ok(())
        });
        let r = scope.run(sleep(100.0)).await?;
        assert_eq!(r, None);
        assert_eq!(now(), 3.0);
        Ok(())
    })
    .await?;
    assert!(scope.cancel_called() && scope.cancelled_caught());

    // Relative: measured from entry, not from creation.
    let rel = CancelScope::new().with_relative_deadline(5.0)?;
    assert_eq!(
        rel.relative_deadline(),
        Some(std::time::Duration::from_secs(5))
    );
    sleep(1.0).await?; // now t = 4
    let r = rel
        .run(async {
            assert_eq!(rel.deadline().as_secs_f64(), 9.0);
            assert_eq!(
                rel.set_relative_deadline(1.0).unwrap_err().kind(),
                ErrorKind::Usage
            );
            sleep_forever().await
        })
        .await?;
    assert_eq!(r, None);
    assert_eq!(now(), 9.0);

    // A deadline already past on entry: cancelled at the first checkpoint.
    let past = CancelScope::new().with_deadline(Instant::from_secs_f64(1.0));
    assert_eq!(past.run(checkpoint()).await?, None);
    // Pushing a deadline later un-expires nothing that was cancelled, but
    // a not-yet-expired one can be moved out of the way.
    let later = CancelScope::new().with_deadline(Instant::from_secs_f64(10.0));
    let r = later
        .run(async {
            later.set_deadline(Instant::INFINITY);
            sleep(5.0).await?;
            Ok(now())
        })
        .await?;
    assert_eq!(r, Some(14.0));
    Ok(())
}

#[trio::test(autojump)]
async fn move_on_and_fail_after() -> trio::Result<()> {
    assert_eq!(move_on_after(1.0, async { Ok(1) }).await?, Some(1));
    assert_eq!(move_on_after(1.0, sleep_forever()).await?, None);
    assert_eq!(now(), 1.0);
    assert_eq!(
        move_on_at(Instant::from_secs_f64(3.0), sleep(10.0)).await?,
        None
    );
    assert_eq!(now(), 3.0);
    assert_eq!(fail_after(1.0, async { Ok("fast") }).await?, "fast");
    let err = fail_after(2.0, sleep(10.0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooSlow);
    assert_eq!(now(), 5.0);
    let err = fail_at(Instant::from_secs_f64(6.0), sleep_forever())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooSlow);
    // A body error is not turned into TooSlow.
    let err = fail_after(10.0, async {
        Err::<(), _>(trio::Error::new(ErrorKind::Broken, "x"))
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    // Bad durations are typed errors, not panics.
    assert_eq!(
        move_on_after(-1.0, checkpoint()).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        fail_after(f64::NAN, checkpoint()).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        sleep(-0.5).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    Ok(())
}

#[test]
fn a_30_second_timeout_runs_instantly_under_autojump() {
    let clock = trio::testing::MockClock::autojump();
    let r = trio::Runner::new()
        .clock(clock.clone())
        .run(async { fail_after(std::time::Duration::from_secs(30), sleep_forever()).await });
    assert_eq!(r.unwrap_err().kind(), ErrorKind::TooSlow);
    assert_eq!(clock.current_time().as_secs_f64(), 30.0);
}

#[trio::test(autojump)]
async fn timeouts_compose_across_layers() -> trio::Result<()> {
    // An inner library timeout and an outer caller timeout: whichever is
    // earlier wins, and each scope catches only its own.
    async fn library_call() -> trio::Result<&'static str> {
        match move_on_after(10.0, sleep(20.0)).await? {
            Some(()) => Ok("done"),
            None => Ok("library gave up"),
        }
    }
    assert_eq!(move_on_after(5.0, library_call()).await?, None);
    assert_eq!(now(), 5.0);
    assert_eq!(
        move_on_after(50.0, library_call()).await?,
        Some("library gave up")
    );
    assert_eq!(now(), 15.0);
    Ok(())
}

#[trio::test(autojump)]
async fn current_effective_deadline_follows_nesting_and_shields() -> trio::Result<()> {
    let at = Instant::from_secs_f64;
    assert_eq!(current_effective_deadline(), Instant::INFINITY);
    move_on_at(at(10.0), async {
        assert_eq!(current_effective_deadline(), at(10.0));
        move_on_at(at(5.0), async {
            assert_eq!(current_effective_deadline(), at(5.0));
            move_on_at(at(20.0), async {
                assert_eq!(current_effective_deadline(), at(5.0));
                CancelScope::new()
                    .with_deadline(at(30.0))
                    .with_shield(true)
                    .run(async {
                        assert_eq!(current_effective_deadline(), at(30.0));
                        let inner = CancelScope::new();
                        inner
                            .run(async {
                                assert_eq!(current_effective_deadline(), at(30.0));
                                inner.cancel();
                                assert_eq!(current_effective_deadline(), Instant::NEG_INFINITY);
                                Ok(())
                            })
                            .await?;
                        Ok(())
                    })
                    .await?;
                let cancelled = CancelScope::new();
                cancelled
                    .run(async {
                        cancelled.cancel();
                        assert_eq!(current_effective_deadline(), Instant::NEG_INFINITY);
                        CancelScope::new()
                            .with_shield(true)
                            .run(async {
                                assert_eq!(current_effective_deadline(), Instant::INFINITY);
                                Ok(())
                            })
                            .await?;
                        Ok(())
                    })
                    .await?;
                Ok(())
            })
            .await?;
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn the_cancel_check_follows_the_schedule_point() -> trio::Result<()> {
    let log = Log::default();
    open_nursery(async |n| {
        let log1 = &log;
        n.start_soon(async move {
            let s = CancelScope::new();
            s.run(async {
                s.cancel();
                // Yields first, then fails: one schedule point and a Cancelled.
                let (r, c) = measure_checkpoints(checkpoint()).await;
                assert_eq!(c.schedule_points, 1);
                log1.push(format!("a: {r:?}"));
                // Fails without yielding: no schedule point.
                let (r, c) = measure_checkpoints(checkpoint_if_cancelled()).await;
                assert_eq!(c.schedule_points, 0);
                log1.push(format!("a: {r:?}"));
                r
            })
            .await?;
            Ok(())
        });
        let log2 = &log;
        n.start_soon(async move {
            log2.push("b ran");
            checkpoint().await?;
            log2.push("b ran again");
            Ok(())
        });
        Ok(())
    })
    .await?;
    // "a" and "b" share each batch in an order the seed picks, so "b ran
    // again" may come before or after a's two failures, but never between
    // them: the second check did not yield.
    let log = log.take();
    let a_fails = ["a: Err(Cancelled)", "a: Err(Cancelled)"];
    assert!(
        log == [&["b ran"][..], &a_fails, &["b ran again"]].concat()
            || log == [&["b ran", "b ran again"][..], &a_fails].concat(),
        "{log:?}"
    );
    Ok(())
}

#[trio::test(autojump)]
async fn a_nursery_scope_catches_only_its_own_cancellation() -> trio::Result<()> {
    let outer = CancelScope::new();
    let r = outer
        .run(async {
            open_nursery(async |n| {
                n.start_soon(sleep_forever());
                sleep(1.0).await?;
                outer.cancel(); // not the nursery's own cancel: it propagates
                sleep_forever().await
            })
            .await?;
            Ok(())
        })
        .await?;
    assert_eq!(r, None);
    assert!(outer.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn scope_handles_debug_and_state_after_exit() -> trio::Result<()> {
    let s = CancelScope::new().with_deadline(Instant::from_secs_f64(2.0));
    let dbg = format!("{s:?}");
    assert!(dbg.contains("Fresh"), "{dbg}");
    s.run(sleep_forever()).await?;
    assert!(s.cancel_called() && s.cancelled_caught());
    assert_eq!(s.deadline().as_secs_f64(), 2.0);
    s.cancel(); // after exit: no effect, no panic
    s.set_shield(true);
    assert!(format!("{s:?}").contains("Exited"));
    Ok(())
}

// Trio's `move_on_after(d, shield=True)`: the body ignores the caller's
// cancellation but still has its own deadline.
#[trio::test(autojump)]
async fn shielded_timeouts_ignore_outer_cancellation_but_keep_their_deadline() -> trio::Result<()> {
    let t0 = trio::current_time();
    let outer = CancelScope::new();
    outer
        .run(async {
            outer.cancel();
            let r = trio::move_on_after(5.0, trio::sleep(1.0))
                .shielded()
                .await?;
            assert_eq!(r, Some(()));
            let r = trio::move_on_after(2.0, trio::sleep_forever())
                .shielded()
                .await?;
            assert_eq!(r, None);
            let e = trio::fail_at(trio::current_time() + 1.0, trio::sleep_forever())
                .shielded()
                .await;
            assert!(e.is_err_kind(ErrorKind::TooSlow));
            // Unshielded, the outer cancellation wins at once.
            assert!(
                trio::move_on_after(5.0, trio::sleep(1.0))
                    .await
                    .is_cancelled()
            );
            Ok(())
        })
        .await?;
    assert_eq!(trio::current_time() - t0, 4.0);
    // A bad duration is an error when awaited, not a panic when built.
    let r = trio::move_on_after(-1.0, trio::checkpoint())
        .shielded()
        .await;
    assert!(r.is_err_kind(ErrorKind::InvalidArgument));
    Ok(())
}
