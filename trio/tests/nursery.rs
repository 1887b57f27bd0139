//! Nurseries: structure, borrowing, failures, panics, `start`.

mod common;

use common::{Log, mock_run, now};
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use trio::testing::measure_checkpoints;
use trio::{
    CancelScope, Error, ErrorKind, Nursery, checkpoint, open_nursery, sleep, sleep_forever,
};

#[derive(Debug)]
struct MyError(&'static str);
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for MyError {}

#[test]
fn children_borrow_a_local_vec() {
    let numbers: Vec<u64> = (1..=100).collect();
    let total = Cell::new(0);
    trio::run(async {
        open_nursery(async |nursery| {
            for chunk in numbers.chunks(10) {
                let total = &total;
                nursery.start_soon(async move {
                    for n in chunk {
                        checkpoint().await?;
                        total.set(total.get() + n);
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
    assert_eq!(total.get(), 5050);
}

#[trio::test(autojump)]
async fn open_nursery_waits_for_every_child_and_returns_the_body_value() -> trio::Result<()> {
    let log = Log::default();
    let v = open_nursery(async |n| {
        for i in 1..=3 {
            let log = &log;
            n.start_soon(async move {
                sleep(i as f64).await?;
                log.push(format!("child {i}"));
                Ok(())
            });
        }
        Ok("body")
    })
    .await?;
    assert_eq!(v, Some("body"));
    assert_eq!(log.take(), ["child 1", "child 2", "child 3"]);
    assert_eq!(now(), 3.0);
    Ok(())
}

#[test]
fn crashing_child_cancels_looping_sibling_and_sleeping_body() {
    let log = Log::default();
    let err = mock_run(async {
        let r = open_nursery(async |n| {
            let log = &log;
            n.start_soon(async move {
                let r: trio::Result<()> = async {
                    loop {
                        checkpoint().await?;
                    }
                }
                .await;
                log.push(format!("looper: {}", r.as_ref().unwrap_err()));
                r
            });
            n.start_soon(async {
                // (A busy sibling keeps the run from idling, so the MockClock
                // never jumps: crash after a few checkpoints instead of a sleep.)
                for _ in 0..3 {
                    checkpoint().await?;
                }
                Err(Error::new(ErrorKind::Broken, "crash"))
            });
            let r = sleep(100.0).await;
            log.push(format!("body woke at {} with {:?}", now(), r));
            r?;
            Ok(())
        })
        .await;
        assert_eq!(now(), 0.0, "the sleeping body was woken at once");
        r
    })
    .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Broken,
        "just the crash, not a group: {err:?}"
    );
    assert!(!err.is_group());
    let mut lines = log.take();
    lines.sort();
    assert_eq!(
        lines,
        ["body woke at 0 with Err(Cancelled)", "looper: cancelled"]
    );
}

#[test]
fn several_failures_are_reported_together() {
    let err = mock_run(async {
        open_nursery(async |n| {
            n.start_soon(async { Err(MyError("first").into()) });
            n.start_soon(async {
                checkpoint().await?;
                Err(Error::new(ErrorKind::Busy, "second"))
            });
            n.start_soon(async {
                // Not cancelled because it never checkpoints after the first
                // failure: it fails on its own.
                Err(Error::new(ErrorKind::Closed, "third"))
            });
            Ok(())
        })
        .await
    })
    .unwrap_err();
    assert!(err.is_group(), "{err:?}");
    let kinds: Vec<ErrorKind> = err.leaves().map(Error::kind).collect();
    assert_eq!(kinds, [ErrorKind::Other, ErrorKind::Closed]);
    assert_eq!(err.find::<MyError>().unwrap().0, "first");
    let (mine, rest) = err.split(|e| e.downcast_ref::<MyError>().is_some());
    assert!(mine.unwrap().downcast_ref::<MyError>().is_some());
    assert_eq!(rest.unwrap().kind(), ErrorKind::Closed);
}

#[test]
fn tasks_can_question_mark_io_and_own_errors() {
    fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {
        s.parse()
    }
    let err = mock_run(async {
        open_nursery(async |n| {
            n.start_soon(async {
                let _ = std::fs::read("/definitely/not/here")?;
                Ok(())
            });
            n.start_soon(async {
                let _x = parse("nope")?;
                Ok(())
            });
            Ok(())
        })
        .await
    })
    .unwrap_err();
    assert!(err.find::<std::io::Error>().is_some());
    assert!(err.find::<std::num::ParseIntError>().is_some());
    assert!(err.contains_kind(ErrorKind::Io));
}

#[test]
fn body_error_cancels_children() {
    let err = mock_run(async {
        open_nursery(async |n| {
            n.start_soon(sleep_forever());
            n.start_soon(sleep_forever());
            checkpoint().await?;
            Err::<(), _>(MyError("body failed").into())
        })
        .await
    })
    .unwrap_err();
    assert_eq!(err.find::<MyError>().unwrap().0, "body failed");
    assert!(!err.is_group());
}

#[trio::test(autojump)]
async fn nursery_scope_cancel_ends_everything_and_body_value_is_none() -> trio::Result<()> {
    let r = open_nursery(async |n| {
        n.start_soon(sleep_forever());
        let n2 = n.clone();
        n.start_soon(async move {
            sleep(5.0).await?;
            n2.cancel_scope().cancel();
            Ok(())
        });
        sleep_forever().await?;
        Ok(1)
    })
    .await?;
    assert_eq!(r, None);
    assert_eq!(now(), 5.0);
    Ok(())
}

#[trio::test(autojump)]
async fn children_spawn_siblings_and_handles_travel() -> trio::Result<()> {
    let log = Log::default();
    open_nursery(async |outer| {
        open_nursery(async |inner| {
            let inner2 = inner.clone();
            let log2 = &log;
            // A task in another nursery spawns into this one.
            outer.start_soon(async move {
                inner2.start_soon(async move {
                    log2.push("grandchild via handle");
                    Ok(())
                });
                Ok(())
            });
            let inner3 = inner.clone();
            let log3 = &log;
            inner.start_soon(async move {
                sleep(1.0).await?;
                inner3.start_soon(async move {
                    log3.push("sibling");
                    Ok(())
                });
                Ok(())
            });
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await?;
    let mut l = log.take();
    l.sort();
    assert_eq!(l, ["grandchild via handle", "sibling"]);
    Ok(())
}

#[trio::test(autojump)]
async fn spawning_into_a_closed_nursery_is_an_error() -> trio::Result<()> {
    let escaped: RefCell<Option<Nursery<'_>>> = RefCell::new(None);
    open_nursery(async |n| {
        *escaped.borrow_mut() = Some(n.clone());
        Ok(())
    })
    .await?;
    let n = escaped.borrow_mut().take().unwrap();
    assert!(n.is_closed());
    let err = n.try_start_soon(async {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    let err = n.start(async |s| s.started(())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    Ok(())
}

/// Polls `fut` once per tick for `ticks` ticks (from inside a task), then
/// leaves it alone, unfinished.
async fn poll_for_ticks<F: Future + ?Sized>(mut fut: std::pin::Pin<&mut F>, ticks: u32) {
    let mut rounds = 0;
    poll_fn(|cx| {
        let _ = fut.as_mut().poll(cx);
        rounds += 1;
        if rounds < ticks {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

#[test]
fn leaked_nursery_never_polls_its_children_again() {
    let polls = Cell::new(0u32);
    trio::run(async {
        {
            let mut fut = Box::pin(open_nursery(async |n| {
                n.start_soon(async {
                    for _ in 0..u64::MAX {
                        polls.set(polls.get() + 1);
                        checkpoint().await?;
                    }
                    Ok(())
                });
                sleep_forever().await
            }));
            poll_for_ticks(fut.as_mut(), 5).await;
            std::mem::forget(fut);
        }
        let seen = polls.get();
        assert!(
            seen >= 3,
            "the child ran while the nursery was polled ({seen})"
        );
        for _ in 0..20 {
            checkpoint().await?;
        }
        assert_eq!(
            polls.get(),
            seen,
            "a leaked nursery's child was polled again"
        );
        Ok(())
    })
    .unwrap();
}

#[test]
fn dropping_a_nursery_future_drops_its_children_and_keeps_the_run_consistent() {
    struct Guard<'a>(&'a Log, &'static str);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            self.0.push(format!("dropped {}", self.1));
        }
    }
    let log = Log::default();
    mock_run(async {
        {
            let mut fut = Box::pin(open_nursery(async |n| {
                for name in ["a", "b"] {
                    let log = &log;
                    n.start_soon(async move {
                        let _g = Guard(log, name);
                        sleep_forever().await
                    });
                }
                sleep_forever().await
            }));
            poll_for_ticks(fut.as_mut(), 3).await;
        }
        let mut l = log.take();
        l.sort();
        assert_eq!(l, ["dropped a", "dropped b"]);
        // The runtime still works: scopes, timers, nurseries.
        assert_eq!(trio::move_on_after(1.0, sleep_forever()).await?, None);
        open_nursery(async |n| {
            n.start_soon(sleep(1.0));
            Ok(())
        })
        .await?;
        assert_eq!(now(), 2.0);
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_panicking_child_cancels_siblings_then_resumes_in_the_parent() {
    let log = Log::default();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        mock_run(async {
            open_nursery(async |n| {
                let log = &log;
                n.start_soon(async move {
                    let r = sleep_forever().await;
                    sleep(2.0).await.ok(); // cleanup checkpoints also fail: level-triggered
                    log.push(format!("sibling finished at {} with {:?}", now(), r));
                    r
                });
                n.start_soon(async {
                    sleep(1.0).await?;
                    if now() > 0.0 {
                        panic!("boom {}", 7);
                    }
                    Ok(())
                });
                Ok(())
            })
            .await?;
            Ok(())
        })
    }));
    let payload = caught.unwrap_err();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
    assert_eq!(msg.as_deref(), Some("boom 7"), "the original payload");
    assert_eq!(log.take(), ["sibling finished at 1 with Err(Cancelled)"]);
}

#[trio::test(autojump)]
async fn a_panic_caught_inside_the_run_leaves_the_runtime_usable() -> trio::Result<()> {
    let mut fut = pin!(trio::move_on_after(
        10.0,
        open_nursery(async |n| {
            n.start_soon(async {
                checkpoint().await?;
                if now() >= 0.0 {
                    panic!("inner");
                }
                Ok(())
            });
            Ok(())
        })
    ));
    let r = poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(_)) => Poll::Ready(false),
            Err(_) => Poll::Ready(true),
        },
    )
    .await;
    assert!(r, "the panic came out");
    assert_eq!(trio::current_effective_deadline(), trio::Instant::INFINITY);
    sleep(1.0).await?;
    assert_eq!(trio::move_on_after(1.0, sleep_forever()).await?, None);
    Ok(())
}

// ----- start ---------------------------------------------------------------

#[trio::test(autojump)]
async fn start_returns_the_started_value_and_moves_the_task_into_the_nursery() -> trio::Result<()> {
    open_nursery(async |n| {
        let (v, info) = {
            let info = n.info();
            let v = n
                .start(async |status| {
                    sleep(1.0).await?;
                    status.started(42);
                    sleep(1.0).await
                })
                .await?;
            (v, info)
        };
        assert_eq!(v, 42);
        assert_eq!(now(), 1.0);
        let kids = info.child_tasks();
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].parent_nursery(), Some(info));
        Ok(())
    })
    .await?;
    assert_eq!(now(), 2.0);
    Ok(())
}

#[trio::test(autojump)]
async fn start_reports_errors_before_started_itself() -> trio::Result<()> {
    open_nursery(async |n| {
        n.start_soon(async {
            sleep(10.0).await?;
            Ok(())
        });
        // The task never reports a value, so say which type it would be.
        let r: trio::Result<()> = n
            .start(async |_status| Err(MyError("failed to bind").into()))
            .await;
        let err = r.unwrap_err();
        assert_eq!(err.find::<MyError>().unwrap().0, "failed to bind");
        // The nursery itself is unaffected: its other child runs to the end.
        Ok(())
    })
    .await?;
    assert_eq!(now(), 10.0);
    Ok(())
}

#[trio::test(autojump)]
async fn start_without_started_is_an_error() -> trio::Result<()> {
    open_nursery(async |n| {
        let r: trio::Result<()> = n
            .start(async |_status| {
                checkpoint().await?;
                Ok(())
            })
            .await;
        let err = r.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
        assert!(err.to_string().contains("started"));
        Ok(())
    })
    .await?;
    Ok(())
}

#[test]
fn start_runs_under_the_callers_scopes_until_started() {
    mock_run(async {
        open_nursery(async |n| {
            // A caller cancelled by another task: the starting task is cancelled with it.
            let caller = CancelScope::new();
            let c2 = caller.clone();
            n.start_soon(async move {
                sleep(1.0).await?;
                c2.cancel();
                Ok(())
            });
            let r = caller
                .run(async {
                    n.start(async |status| {
                        sleep(5.0).await?;
                        status.started(());
                        Ok(())
                    })
                    .await
                })
                .await?;
            assert_eq!(r, None);
            assert!(caller.cancelled_caught());
            assert_eq!(now(), 1.0);
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap();

    // Timed: the caller's deadline hits the task while it is starting.
    mock_run(async {
        open_nursery(async |n| {
            let r = trio::move_on_after(
                1.0,
                n.start(async |status| {
                    sleep(5.0).await?;
                    status.started(());
                    Ok(())
                }),
            )
            .await?;
            assert_eq!(r, None, "start was cancelled by the caller's timeout");
            assert_eq!(now(), 1.0);
            assert!(
                n.child_tasks().is_empty(),
                "the task did not move into the nursery"
            );
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap();

    // After started, the task belongs to the nursery: the caller's scope no
    // longer reaches it.
    mock_run(async {
        let log = Log::default();
        open_nursery(async |n| {
            let log = &log;
            let r = trio::move_on_after(
                1.0,
                n.start(async move |status| {
                    status.started(());
                    sleep(5.0).await?;
                    log.push(format!("survived to {}", now()));
                    Ok(())
                }),
            )
            .await?;
            assert_eq!(r, Some(()));
            Ok(())
        })
        .await?;
        assert_eq!(log.take(), ["survived to 5"]);
        Ok(())
    })
    .unwrap();
}

#[trio::test(autojump)]
async fn a_pending_start_keeps_the_target_nursery_open() -> trio::Result<()> {
    open_nursery(async |outer| {
        open_nursery(async |target| {
            let t = target.clone();
            outer.start_soon(async move {
                let v = t
                    .start(async |status| {
                        sleep(5.0).await?;
                        status.started("ready");
                        sleep(1.0).await
                    })
                    .await?;
                assert_eq!(v, "ready");
                Ok(())
            });
            trio::testing::wait_all_tasks_blocked().await?;
            Ok(()) // the body ends at t=0 ...
        })
        .await?;
        // ... but the nursery stayed open for the start, then for the task.
        assert_eq!(now(), 6.0);
        Ok(())
    })
    .await?;
    Ok(())
}

#[test]
fn a_started_task_that_fails_later_fails_its_new_nursery() {
    let err = mock_run(async {
        open_nursery(async |n| {
            n.start(async |status| {
                status.started(());
                sleep(1.0).await?;
                Err(MyError("later").into())
            })
            .await?;
            sleep_forever().await
        })
        .await
    })
    .unwrap_err();
    assert_eq!(err.find::<MyError>().unwrap().0, "later");
}

#[test]
fn a_panic_before_started_comes_out_of_start() {
    let r = catch_unwind(AssertUnwindSafe(|| {
        mock_run(async {
            open_nursery(async |n| {
                n.start(async |_s| -> trio::Result<()> { panic!("in start") })
                    .await?;
                Ok(())
            })
            .await?;
            Ok(())
        })
    }));
    assert_eq!(*r.unwrap_err().downcast_ref::<&str>().unwrap(), "in start");
}

// ----- exit and open semantics ---------------------------------------------

#[trio::test(autojump)]
async fn opening_a_nursery_is_not_a_checkpoint_and_exit_is_a_schedule_point_only()
-> trio::Result<()> {
    let log = Log::default();
    open_nursery(async |n| {
        let log = &log;
        n.start_soon(async move {
            let scope = CancelScope::new();
            scope
                .run(async {
                    scope.cancel();
                    // Opening: no checkpoint, so the body runs in this same step.
                    let (v, c) = measure_checkpoints(open_nursery(async |_| {
                        log.push("inner body");
                        Ok(5)
                    }))
                    .await;
                    // Exiting: a schedule point but not a cancel point (no
                    // Cancelled, even though the scope is cancelled). The
                    // other task runs in the same batch as this one, before
                    // or after it as the seed picks, so the counts (not the
                    // log) show the yield.
                    assert_eq!((c.schedule_points, c.cancel_points), (1, 0));
                    log.push(format!("inner nursery returned {v:?}"));
                    checkpoint().await
                })
                .await?;
            Ok(())
        });
        n.start_soon(async move {
            log.push("other task");
            Ok(())
        });
        Ok(())
    })
    .await?;
    let mut log = log.take();
    let len = log.len();
    log.retain(|e| e != "other task");
    assert_eq!(len - log.len(), 1, "the other task ran once");
    assert_eq!(log, ["inner body", "inner nursery returned Ok(Some(5))"]);
    Ok(())
}

#[test]
fn batches_are_fair_and_fifo_without_a_seed() {
    let log = Log::default();
    mock_run(async {
        open_nursery(async |n| {
            for name in ["a", "b", "c"] {
                let log = &log;
                n.start_soon(async move {
                    for i in 0..3 {
                        log.push(format!("{name}{i}"));
                        checkpoint().await?;
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
    assert_eq!(
        log.take(),
        ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    );
}

fn order_with_seed(seed: u64) -> Vec<String> {
    let log = Log::default();
    trio::Runner::new()
        .clock(trio::testing::MockClock::autojump())
        .seed(seed)
        .run(async {
            open_nursery(async |n| {
                for name in 0..6 {
                    let log = &log;
                    n.start_soon(async move {
                        for i in 0..3 {
                            log.push(format!("{name}.{i}"));
                            checkpoint().await?;
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
    log.take()
}

#[test]
fn a_seed_shuffles_batches_reproducibly() {
    let a = order_with_seed(1);
    assert_eq!(a, order_with_seed(1), "same seed, same order");
    let distinct: std::collections::HashSet<Vec<String>> = (0..20).map(order_with_seed).collect();
    assert!(
        distinct.len() > 5,
        "seeds shuffle the order ({} distinct)",
        distinct.len()
    );
    // Batches still hold: every task's step i happens before any step i+1.
    for order in &distinct {
        let steps: Vec<u32> = order
            .iter()
            .map(|s| s.split('.').nth(1).unwrap().parse().unwrap())
            .collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
    }
}

#[trio::test(autojump)]
async fn the_task_tree_is_inspectable() -> trio::Result<()> {
    let root = trio::lowlevel::current_task();
    assert_eq!(root, trio::lowlevel::current_root_task());
    open_nursery(async |n| {
        n.start_soon_named("worker", async {
            let me = trio::lowlevel::current_task();
            assert_eq!(me.name().as_deref(), Some("worker"));
            sleep_forever().await
        });
        n.start_soon(sleep_forever());
        trio::testing::wait_all_tasks_blocked().await?;
        let me = trio::lowlevel::current_task();
        assert_eq!(
            me, root,
            "a nursery body is part of the task that opened it"
        );
        let nurseries = me.child_nurseries();
        assert_eq!(nurseries.len(), 1);
        assert_eq!(nurseries[0], n.info());
        assert_eq!(nurseries[0].parent_task(), Some(root));
        assert!(
            nurseries[0]
                .location()
                .unwrap()
                .contains("tests/nursery.rs")
        );
        let kids = n.child_tasks();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].name().as_deref(), Some("worker"));
        let default_name = kids[1].name().unwrap();
        assert!(default_name.contains("tests/nursery.rs:"), "{default_name}");
        let waiting = kids[0].waiting_at().unwrap();
        assert!(waiting.contains("tests/nursery.rs:"), "{waiting}");
        assert!(
            kids[0]
                .spawn_location()
                .unwrap()
                .contains("tests/nursery.rs:")
        );
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    assert!(root.child_nurseries().is_empty());
    Ok(())
}

#[test]
fn nested_run_is_an_error_not_a_hang() {
    trio::run(async {
        let err = trio::run(async { Ok(()) }).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
        assert!(err.to_string().contains("nested"));
        Ok(())
    })
    .unwrap();
}

#[test]
fn runtime_functions_outside_a_run_are_errors() {
    assert_eq!(
        trio::try_current_time().unwrap_err().kind(),
        ErrorKind::Usage
    );
    assert_eq!(
        trio::lowlevel::try_current_task().unwrap_err().kind(),
        ErrorKind::Usage
    );
    assert_eq!(
        trio::try_current_effective_deadline().unwrap_err().kind(),
        ErrorKind::Usage
    );
}

#[trio::test(autojump)]
async fn started_while_the_caller_is_cancelled_keeps_the_task_where_it_is() -> trio::Result<()> {
    // As in Trio: the task is not moved into a nursery where no cancelled
    // scope would catch its Cancelled; it finishes under the caller's scopes.
    let log = Log::default();
    open_nursery(async |n| {
        let caller = CancelScope::new();
        let c2 = caller.clone();
        let log = &log;
        let r = caller
            .run(async {
                n.start(async move |status| {
                    c2.cancel();
                    status.started(5);
                    let r = checkpoint().await;
                    log.push(format!("child after started: {r:?}"));
                    r
                })
                .await
            })
            .await?;
        assert_eq!(
            r, None,
            "start failed with Cancelled, caught by the caller's scope"
        );
        assert!(n.child_tasks().is_empty(), "never moved into the nursery");

        // If the task swallows the cancellation and returns, start gives the value.
        let caller = CancelScope::new();
        let c2 = caller.clone();
        let r = caller
            .run(async {
                n.start(async move |status| {
                    c2.cancel();
                    status.started(6);
                    let _ = checkpoint().await;
                    Ok(())
                })
                .await
            })
            .await?;
        assert_eq!(r, Some(6));
        Ok(())
    })
    .await?;
    assert_eq!(log.take(), ["child after started: Err(Cancelled)"]);
    Ok(())
}
