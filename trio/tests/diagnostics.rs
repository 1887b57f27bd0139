//! The task tree and deadlock detection: real deadlocks are reported with a
//! tree naming the stuck tasks; runs that wait on something that can still
//! happen never are.

mod common;

use common::mock_run;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;
use trio::lowlevel::{Abort, Deadlock, Park, reschedule};
use trio::sync::Event;
use trio::{CancelScope, ErrorKind, Instant, open_memory_channel, open_nursery};

fn deadlock_tree(err: &trio::Error) -> String {
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err:?}");
    err.find::<Deadlock>()
        .expect("carries a Deadlock")
        .tree()
        .to_string()
}

#[test]
fn two_tasks_waiting_on_each_other_are_a_deadlock() {
    let err = mock_run(async {
        let (a_ready, b_ready) = (Event::new(), Event::new());
        open_nursery(async |n| {
            let (a, b) = (a_ready.clone(), b_ready.clone());
            n.start_soon_named("alice", async move {
                b.wait().await?; // only bob would set a
                a.set();
                Ok(())
            });
            let (a, b) = (a_ready.clone(), b_ready.clone());
            n.start_soon_named("bob", async move {
                a.wait().await?; // only alice would set b
                b.set();
                Ok(())
            });
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap_err();
    let tree = deadlock_tree(&err);
    assert!(
        tree.contains("task \"alice\" spawned at trio/tests/diagnostics.rs:"),
        "{tree}"
    );
    assert!(
        tree.contains("task \"bob\" spawned at trio/tests/diagnostics.rs:"),
        "{tree}"
    );
    assert!(
        tree.contains("nursery opened at trio/tests/diagnostics.rs:"),
        "{tree}"
    );
    assert_eq!(tree.matches("waiting in").count(), 2, "{tree}");
    assert!(err.to_string().starts_with("deadlock"), "{err}");
}

#[test]
fn a_receiver_whose_senders_are_all_blocked_is_a_deadlock() {
    let err = mock_run(async {
        let (tx, rx) = open_memory_channel::<u32>(0);
        let never = Event::new();
        open_nursery(async |n| {
            let never2 = never.clone();
            n.start_soon_named("sender", async move {
                never2.wait().await?; // blocked before it ever sends
                tx.send(1).await?;
                Ok(())
            });
            n.start_soon_named("receiver", async move {
                rx.receive().await?;
                Ok(())
            });
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap_err();
    let tree = deadlock_tree(&err);
    assert!(tree.contains("task \"sender\""), "{tree}");
    assert!(tree.contains("task \"receiver\""), "{tree}");
}

#[test]
fn deadlocks_inside_nested_nurseries_and_scopes_are_reported_with_the_whole_tree() {
    let err = mock_run(async {
        let gate = Event::new();
        open_nursery(async |outer| {
            let g = gate.clone();
            outer.start_soon_named("outer-waiter", async move { g.wait().await });
            CancelScope::new()
                .with_deadline(Instant::INFINITY)
                .with_shield(true)
                .run(async {
                    open_nursery(async |inner| {
                        let g = gate.clone();
                        inner.start_soon_named("inner-waiter", async move { g.wait().await });
                        gate.clone().wait().await // the body waits too
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
    .unwrap_err();
    let tree = deadlock_tree(&err);
    assert!(tree.contains("cancel scope [shielded]"), "{tree}");
    assert_eq!(tree.matches("nursery opened at").count(), 2, "{tree}");
    for name in ["outer-waiter", "inner-waiter"] {
        assert!(
            tree.contains(&format!(
                "task \"{name}\" spawned at trio/tests/diagnostics.rs:"
            )),
            "{tree}"
        );
    }
    // Indentation shows nesting: the inner waiter is deeper than the outer one.
    let depth = |needle: &str| {
        let line = tree.lines().find(|l| l.contains(needle)).unwrap();
        line.len() - line.trim_start().len()
    };
    assert!(depth("inner-waiter") > depth("outer-waiter"), "{tree}");
}

#[test]
fn a_task_blocked_forever_with_nothing_else_is_a_deadlock_not_a_hang() {
    let err = trio::run(async { trio::sleep_forever().await }).unwrap_err();
    let tree = deadlock_tree(&err);
    assert!(
        tree.contains("waiting in sleep_forever at trio/tests/diagnostics.rs:"),
        "{tree}"
    );
}

// ----- never a false positive ---------------------------------------------

#[test]
fn waiting_on_a_socket_is_not_a_deadlock() {
    trio::run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
        a.set_nonblocking(true)?;
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            b.write_all(b"x").unwrap();
        });
        trio::lowlevel::wait_readable(a.as_raw_fd()).await?;
        writer.join().unwrap();
        Ok(())
    })
    .unwrap();
}

#[trio::test(autojump)]
async fn waiting_on_a_thread_is_not_a_deadlock() -> trio::Result<()> {
    let v = trio::to_thread::run_sync(|| {
        std::thread::sleep(Duration::from_millis(20));
        7
    })
    .await?;
    assert_eq!(v, 7);
    Ok(())
}

#[test]
fn waiting_on_timers_is_not_a_deadlock() {
    trio::run(async { trio::sleep(0.01).await }).unwrap();
    mock_run(async { trio::sleep(3600.0).await }).unwrap();
    // A frozen MockClock without autojump still has a pending timer that
    // could be jumped to: not reported (even though only a jump could help).
    let clock = trio::testing::MockClock::new();
    let c2 = clock.clone();
    trio::Runner::new()
        .clock(clock)
        .run(async {
            open_nursery(async |n| {
                n.start_soon(trio::sleep(10.0));
                trio::testing::wait_all_tasks_blocked().await?;
                c2.jump(10.0)?;
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn waiting_on_a_token_held_by_another_thread_is_not_a_deadlock() {
    trio::run(async {
        let token = trio::lowlevel::current_trio_token()?;
        let park = Park::new(|_, _| Abort::Succeeded)?;
        let key = park.key();
        let helper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            token
                .run_sync_soon(move || {
                    reschedule(key, Ok(()));
                })
                .unwrap();
        });
        park.await?;
        helper.join().unwrap();
        Ok(())
    })
    .unwrap();
}

#[test]
fn waiting_on_a_foreign_waker_is_not_a_deadlock() {
    trio::run(async {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut sent = false;
        std::future::poll_fn(|cx| {
            if rx.try_recv().is_ok() {
                return std::task::Poll::Ready(());
            }
            if !sent {
                sent = true;
                let (waker, tx) = (cx.waker().clone(), tx.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    tx.send(()).unwrap();
                    waker.wake();
                });
            }
            std::task::Poll::Pending
        })
        .await;
        Ok(())
    })
    .unwrap();
}

// ----- the tree on demand ---------------------------------------------------

#[trio::test(autojump)]
async fn the_tree_shows_scopes_nurseries_and_waits() -> trio::Result<()> {
    let scope = CancelScope::new().with_deadline(Instant::from_secs_f64(50.0));
    scope
        .run(async {
            open_nursery(async |n| {
                n.start_soon_named("sleeper", trio::sleep(100.0));
                n.start_soon(async {
                    trio::move_on_after(5.0, trio::sleep_forever()).await?;
                    Ok(())
                });
                trio::testing::wait_all_tasks_blocked().await?;
                let tree = trio::lowlevel::task_tree()?.to_string();
                let expect = [
                    "task <root>: running (taking this snapshot)",
                    "  cancel scope [deadline 50.000000s]",
                    "    nursery opened at trio/tests/diagnostics.rs:",
                    "      task \"sleeper\" spawned at trio/tests/diagnostics.rs:",
                    "waiting in sleep at",
                    "(until 100.000000s)",
                    "        cancel scope [deadline 5.000000s]",
                    "waiting in sleep_forever at trio/tests/diagnostics.rs:",
                ];
                for e in expect {
                    assert!(tree.contains(e), "missing {e:?} in\n{tree}");
                }
                n.cancel_scope().cancel();
                Ok(())
            })
            .await?;
            Ok(())
        })
        .await?;
    Ok(())
}

#[test]
fn the_tree_can_be_asked_for_from_another_thread() {
    trio::run(async {
        let token = trio::lowlevel::current_trio_token()?;
        assert_eq!(
            token.task_tree().unwrap_err().kind(),
            ErrorKind::Usage,
            "not from the run's own thread"
        );
        let t2 = token.clone();
        let asker = std::thread::spawn(move || t2.task_tree());
        // Block in the reactor: the request must wake the run.
        trio::sleep(0.05).await?;
        let tree = asker.join().unwrap()?;
        assert!(tree.as_str().contains("waiting in sleep at"), "{tree}");
        Ok(token)
    })
    .map(|token| {
        assert_eq!(
            token.task_tree().unwrap_err().kind(),
            ErrorKind::RunFinished
        )
    })
    .unwrap();
}

#[test]
fn a_deadlock_after_using_worker_threads_is_still_reported() {
    // The thread pool must not keep the run's token once the work is done,
    // or every later deadlock would go unreported.
    let err = mock_run(async {
        let v = trio::to_thread::run_sync(|| 1 + 1).await?;
        assert_eq!(v, 2);
        let never = Event::new();
        never.wait().await
    })
    .unwrap_err();
    let tree = deadlock_tree(&err);
    assert!(
        tree.contains("waiting in Event.wait at trio/tests/diagnostics.rs:"),
        "{tree}"
    );
}
