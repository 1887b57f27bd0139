//! Guest mode (`trio_compat::guest`): a trio run inside a tokio
//! `current_thread` runtime on the same thread. Results, errors and
//! cancellations come back as values; misuse is a `Usage` error; trio's
//! MockClock autojump works inside a guest; host and guest wake each
//! other. (The TCP acceptance test and the thread count are in
//! `guest_tcp.rs`, the fairness measurements in `guest_fairness.rs`.)

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use trio::lowlevel::{GuestRun, GuestStep};
use trio::stream::ReceiveStream;
use trio::testing::MockClock;
use trio::{ErrorKind, Runner};
use trio_compat::guest::start_guest;

/// A tokio `current_thread` runtime with every driver, as `#[tokio::main]`
/// builds it.
fn host() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[test]
fn the_guest_s_result_comes_back_to_the_host() {
    let got = host().block_on(start_guest(Runner::new(), async {
        trio::sleep(0.001).await?;
        Ok("done")
    }));
    assert_eq!(got.unwrap(), "done");
}

#[test]
fn a_timeout_that_fires_in_the_guest_comes_back_as_too_slow() {
    let err = host()
        .block_on(start_guest(Runner::new(), async {
            trio::fail_after(0.01, trio::sleep_forever()).await
        }))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooSlow);
}

#[test]
fn a_failing_child_s_error_comes_back_to_the_host() {
    let err = host()
        .block_on(start_guest(Runner::new(), async {
            trio::open_nursery(async |n| {
                n.start_soon(async {
                    trio::sleep(0.001).await?;
                    Err(trio::Error::new(ErrorKind::Broken, "the child broke"))
                });
                trio::sleep_forever().await
            })
            .await
        }))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    assert_eq!(err.to_string(), "the child broke");
}

#[test]
fn a_deadlocked_guest_reports_deadlock_instead_of_hanging() {
    let err = host()
        .block_on(start_guest(Runner::new(), async {
            trio::sleep_forever().await
        }))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadlock);
}

#[test]
fn trio_run_inside_a_guest_task_is_a_usage_error() {
    let inner = host()
        .block_on(start_guest(Runner::new(), async {
            Ok(trio::run(async { Ok(1) }))
        }))
        .unwrap();
    assert_eq!(inner.unwrap_err().kind(), ErrorKind::Usage);
}

#[test]
fn a_second_guest_on_the_thread_is_a_usage_error_and_the_first_goes_on() {
    host().block_on(async {
        let first = start_guest(Runner::new(), async {
            trio::sleep(0.01).await?;
            Ok(1)
        });
        // The second is polled while the first is running.
        let second = async {
            tokio::task::yield_now().await;
            start_guest(Runner::new(), async { Ok(2) }).await
        };
        let (first, second) = tokio::join!(first, second);
        assert_eq!(first.unwrap(), 1);
        assert_eq!(second.unwrap_err().kind(), ErrorKind::Usage);
    });
    // Once the first has finished, another may start.
    let third = host().block_on(start_guest(Runner::new(), async { Ok(3) }));
    assert_eq!(third.unwrap(), 3);
}

#[test]
fn a_guest_run_made_inside_a_run_is_a_usage_error() {
    let err = trio::run(async { Ok(GuestRun::new(Runner::new(), async { Ok(()) }).unwrap_err()) })
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Usage);
}

#[test]
fn autojump_works_inside_a_guest() {
    // An hour of virtual time; the test would hang for an hour without
    // the jump.
    let clock = MockClock::autojump();
    let now = host()
        .block_on(start_guest(Runner::new().clock(clock.clone()), async {
            trio::sleep(3600.0).await?;
            Ok(trio::current_time())
        }))
        .unwrap();
    assert_eq!(now.as_secs_f64(), 3600.0);
    assert_eq!(clock.current_time().as_secs_f64(), 3600.0);
}

#[test]
fn autojump_with_a_threshold_waits_that_long_in_real_time_then_jumps() {
    let clock = MockClock::autojump();
    clock.set_autojump_threshold(0.02).unwrap();
    let now = host()
        .block_on(start_guest(Runner::new().clock(clock), async {
            trio::sleep(60.0).await?;
            trio::sleep(60.0).await?;
            Ok(trio::current_time())
        }))
        .unwrap();
    assert_eq!(now.as_secs_f64(), 120.0);
}

#[test]
fn wait_all_tasks_blocked_works_inside_a_guest() {
    let order = host()
        .block_on(start_guest(Runner::new(), async {
            let order = std::cell::RefCell::new(Vec::new());
            trio::open_nursery(async |n| {
                n.start_soon(async {
                    trio::testing::wait_all_tasks_blocked().await?;
                    order.borrow_mut().push("all blocked");
                    Ok(())
                });
                n.start_soon(async {
                    trio::sleep(0.01).await?;
                    order.borrow_mut().push("slept");
                    Ok(())
                });
                Ok(())
            })
            .await?;
            Ok(order.into_inner())
        }))
        .unwrap();
    assert_eq!(order, ["all blocked", "slept"]);
}

#[test]
fn a_host_task_wakes_a_guest_task_through_a_tokio_channel() {
    host().block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        let sender = tokio::spawn(async move {
            for i in 0..5 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.send(i).await.unwrap();
            }
        });
        let got = start_guest(Runner::new(), async move {
            let mut got = Vec::new();
            // A tokio future polled directly by a trio task: its waker is
            // the task's, woken from host code between steps.
            while let Some(i) = trio::lowlevel::cancel_point(rx.recv()).await? {
                got.push(i);
            }
            Ok(got)
        })
        .await
        .unwrap();
        assert_eq!(got, [0, 1, 2, 3, 4]);
        sender.await.unwrap();
    });
}

#[test]
fn trio_compat_tokio_inside_a_guest_uses_the_host_runtime() {
    host().block_on(async {
        let host_thread = std::thread::current().id();
        let (tx, rx) = tokio::sync::oneshot::channel::<&str>();
        // A host task that answers after a tokio timer.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send("from the host").unwrap();
        });
        let (answer, ran_on) = start_guest(Runner::new(), async move {
            let answer = trio_compat::tokio(rx).await?;
            // tokio::spawn inside a guest spawns on the host runtime, on
            // this very thread.
            let ran_on = trio_compat::tokio(async {
                tokio::spawn(async { std::thread::current().id() }).await
            })
            .await?;
            Ok((answer, ran_on))
        })
        .await
        .unwrap();
        assert_eq!(answer, "from the host");
        assert_eq!(ran_on, host_thread);
    });
}

#[test]
fn a_trio_cancel_scope_cancels_a_tokio_call_in_a_guest() {
    let r = host()
        .block_on(start_guest(Runner::new(), async {
            trio::move_on_after(
                0.01,
                trio_compat::tokio_raw(tokio::time::sleep(Duration::from_secs(3600))),
            )
            .await
        }))
        .unwrap();
    assert_eq!(r, None);
}

#[test]
fn a_guest_runs_on_a_local_set() {
    let local = tokio::task::LocalSet::new();
    let got = local.block_on(&host(), async {
        // Not Send, and borrowing: spawn_local takes 'static futures, so
        // the shared state is an Rc.
        let hits = Rc::new(Cell::new(0));
        let h = hits.clone();
        let guest = tokio::task::spawn_local(start_guest(Runner::new(), async move {
            trio::sleep(0.001).await?;
            h.set(h.get() + 1);
            Ok(h.get())
        }));
        guest.await.unwrap()
    });
    assert_eq!(got.unwrap(), 1);
}

#[test]
fn a_guest_may_borrow_from_the_host_s_stack() {
    host().block_on(async {
        let log = std::cell::RefCell::new(Vec::new());
        start_guest(Runner::new(), async {
            log.borrow_mut().push("in the guest");
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(*log.borrow(), ["in the guest"]);
    });
}

/// Sets a flag when dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn dropping_an_unfinished_guest_drops_its_tasks_and_frees_the_thread() {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    host().block_on(async {
        let guest = start_guest(Runner::new(), async move {
            trio::open_nursery(async |n| {
                n.start_soon(async move {
                    let _flag = flag;
                    trio::sleep(3600.0).await
                });
                Ok(())
            })
            .await
        });
        // The host gives up on the guest after a while.
        let r = tokio::time::timeout(Duration::from_millis(20), guest).await;
        assert!(r.is_err(), "the guest never finishes by itself");
    });
    assert!(dropped.get(), "the child task's future was dropped");
    // The thread may start another guest.
    let again = host().block_on(start_guest(Runner::new(), async { Ok(7) }));
    assert_eq!(again.unwrap(), 7);
}

#[test]
fn polled_outside_a_tokio_runtime_it_is_a_usage_error() {
    let fut = pin!(start_guest(Runner::new(), async { Ok(()) }));
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(r) = fut.poll(&mut cx) else {
        panic!("resolves at once");
    };
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Usage);
}

#[test]
fn a_runtime_without_the_io_driver_is_a_usage_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let err = rt
        .block_on(start_guest(Runner::new(), async { Ok(()) }))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    // Nothing was left behind: a guest starts on a proper runtime.
    host()
        .block_on(start_guest(Runner::new(), async { Ok(()) }))
        .unwrap();
}

#[test]
fn events_beyond_one_reactor_poll_are_taken_without_a_new_edge() {
    // The reactor takes 256 events per poll, and tokio sees the epoll fd
    // edge-triggered. 300 registered sockets with no waiter become ready
    // first, then the one a task waits on: the first poll takes 256 events
    // that wake nobody, and the guest must step again by itself (no new
    // edge will come for the 45 still queued), or it hangs.
    const IDLE: usize = 300;
    let outcome = host().block_on(async {
        let guest = start_guest(Runner::new(), async {
            let mut idle = Vec::new();
            for _ in 0..IDLE {
                idle.push(trio::socket::SocketStream::unix_pair()?);
            }
            // Each idle socket waits once (and so registers), then gives up.
            trio::open_nursery(async |n| {
                for (reader, _) in &idle {
                    n.start_soon(async move {
                        let mut buf = [0; 1];
                        trio::move_on_after(0.001, reader.receive_some(&mut buf)).await?;
                        Ok(())
                    });
                }
                Ok(())
            })
            .await?;
            let (target, target_writer) = trio::socket::SocketStream::unix_pair()?;
            let got = Cell::new(0);
            trio::open_nursery(async |n| {
                n.start_soon(async {
                    let mut buf = [0; 1];
                    got.set(target.receive_some(&mut buf).await?);
                    Ok(())
                });
                n.start_soon(async {
                    trio::testing::wait_all_tasks_blocked().await?;
                    // All at once, without yielding: every event is queued
                    // before the reactor is polled again.
                    for (_, writer) in &idle {
                        writer.socket()?.as_socket2().send(b"x")?;
                    }
                    target_writer.socket()?.as_socket2().send(b"x")?;
                    Ok(())
                });
                Ok(())
            })
            .await?;
            Ok(got.get())
        });
        // A hang would be the bug: turn it into a failure. (Not
        // `tokio::time::timeout`, which polls the guest when the timer
        // fires, and that poll would take the events.)
        tokio::select! {
            biased;
            () = tokio::time::sleep(Duration::from_secs(20)) => None,
            r = guest => Some(r),
        }
    });
    let got = outcome.expect("the guest took the last events").unwrap();
    assert_eq!(got, 1);
}

#[test]
fn a_runtime_without_the_time_driver_is_a_usage_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let err = rt
        .block_on(start_guest(Runner::new(), async { Ok(()) }))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(err.to_string().contains("enable_time"), "{err}");
}

// ----- the low-level GuestRun, without tokio ------------------------------

#[test]
fn guest_run_steps_to_completion_and_then_refuses_to_step() {
    let mut guest = GuestRun::new(Runner::new().clock(MockClock::autojump()), async {
        trio::sleep(10.0).await?;
        Ok(5)
    })
    .unwrap();
    let mut steps = 0;
    let result = loop {
        steps += 1;
        match guest.step(true).unwrap() {
            GuestStep::Done(r) => break r,
            GuestStep::Pending(wait) => {
                // Autojump with a zero threshold: never a reason to wait.
                assert!(wait.step_again(), "{wait:?}");
            }
        }
    };
    assert_eq!(result.unwrap(), 5);
    assert!(steps > 1);
    assert!(guest.is_finished());
    assert_eq!(guest.step(true).unwrap_err().kind(), ErrorKind::Usage);
    assert_eq!(guest.try_clone_fd().unwrap_err().kind(), ErrorKind::Usage);
}

#[test]
fn guest_run_reports_its_deadline_for_the_host_to_wait() {
    let mut guest = GuestRun::new(Runner::new(), async {
        trio::sleep(30.0).await?;
        Ok(())
    })
    .unwrap();
    // The first step runs the root task, which starts sleeping.
    let GuestStep::Pending(wait) = guest.step(false).unwrap() else {
        panic!("pending");
    };
    assert!(!wait.step_again());
    let timeout = wait.timeout().expect("a deadline");
    assert!(timeout > Duration::from_secs(25) && timeout <= Duration::from_secs(30));
    assert!(wait.deadline().is_some());
    // Between steps the host is not in a run.
    assert_eq!(
        trio::try_current_time().unwrap_err().kind(),
        ErrorKind::Usage
    );
}

#[test]
fn a_panic_in_a_guest_task_unwinds_out_of_step_and_poisons_the_run() {
    let mut guest = GuestRun::new(Runner::new(), async {
        trio::open_nursery(async |n| {
            n.start_soon(async {
                if trio::current_time().as_secs_f64() >= 0.0 {
                    // Always: the `if` only gives the block a result type.
                    panic!("the child panicked");
                }
                Ok(())
            });
            trio::sleep_forever().await
        })
        .await
    })
    .unwrap();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..10 {
            let _ = guest.step(true);
        }
    }));
    let payload = unwound.expect_err("the panic came out of step");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the child panicked"));
    // Between steps the host is not in a run, panic or not.
    assert!(trio::try_current_time().is_err());
    assert_eq!(guest.step(true).unwrap_err().kind(), ErrorKind::Usage);
    drop(guest);
    // Dropped: the thread is free for another guest.
    let mut next = GuestRun::new(Runner::new(), async { Ok(1) }).unwrap();
    let result = loop {
        if let GuestStep::Done(r) = next.step(true).unwrap() {
            break r;
        }
    };
    assert_eq!(result.unwrap(), 1);
}

#[test]
fn a_second_guest_run_is_a_usage_error_until_the_first_is_dropped() {
    let first = GuestRun::new(Runner::new(), async { Ok(()) }).unwrap();
    let err = GuestRun::new(Runner::new(), async { Ok(()) }).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
    drop(first);
    GuestRun::new(Runner::new(), async { Ok(()) }).unwrap();
}

#[test]
fn trio_run_between_steps_is_a_separate_run() {
    let mut guest = GuestRun::new(Runner::new(), async {
        trio::sleep(0.001).await?;
        Ok("guest")
    })
    .unwrap();
    let GuestStep::Pending(_) = guest.step(true).unwrap() else {
        panic!("the guest sleeps");
    };
    assert_eq!(trio::run(async { Ok("between") }).unwrap(), "between");
    let result = loop {
        match guest.step(true).unwrap() {
            GuestStep::Done(r) => break r,
            GuestStep::Pending(w) => std::thread::sleep(w.timeout().unwrap_or_default()),
        }
    };
    assert_eq!(result.unwrap(), "guest");
}

#[test]
fn the_host_stops_a_guest_gracefully_with_a_cancel_handle() {
    let scope = trio::CancelScope::new();
    let stop = scope.handle();
    let cleaned_up = Cell::new(false);
    host().block_on(async {
        let guest = start_guest(Runner::new(), async {
            scope
                .run(async {
                    let r = trio::sleep(3600.0).await;
                    // Cleanup that awaits still runs: it was a cancellation,
                    // not a drop.
                    trio::lowlevel::cancel_shielded_checkpoint().await?;
                    cleaned_up.set(true);
                    r
                })
                .await
        });
        let host = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            stop.cancel(); // host code, between the guest's steps
        };
        let (r, ()) = tokio::join!(guest, host);
        assert_eq!(r.unwrap(), None, "the scope caught its cancellation");
    });
    assert!(cleaned_up.get());
}

#[test]
fn a_guest_left_pending_when_its_local_set_and_runtime_drop_is_torn_down() {
    let dropped = Rc::new(Cell::new(false));
    let flag = DropFlag(dropped.clone());
    let rt = host();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        tokio::task::spawn_local(start_guest(Runner::new(), async move {
            let _flag = flag;
            trio::sleep(3600.0).await
        }));
        // Let the guest start and go to sleep.
        tokio::time::sleep(Duration::from_millis(5)).await;
    });
    assert!(!dropped.get(), "still pending");
    drop(local);
    drop(rt);
    assert!(dropped.get(), "the guest's root future was dropped");
    let again = host().block_on(start_guest(Runner::new(), async { Ok(8) }));
    assert_eq!(again.unwrap(), 8);
}
