//! Time, the MockClock, idleness, parking, other threads, I/O waits,
//! run-local state and instruments.

mod common;

use common::{Log, now};
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;
use trio::lowlevel::{Abort, Park, RunVar, WaitKey, reschedule};
use trio::testing::{MockClock, wait_all_tasks_blocked, wait_all_tasks_blocked_with_cushion};
use trio::{ErrorKind, Instant, checkpoint, open_nursery, sleep, sleep_forever, sleep_until};

#[test]
fn sleeping_on_the_mock_clock() {
    let clock = MockClock::autojump();
    trio::Runner::new()
        .clock(clock.clone())
        .run(async {
            assert_eq!(now(), 0.0);
            sleep(1.5).await?;
            assert_eq!(now(), 1.5);
            sleep(Duration::from_millis(500)).await?;
            sleep_until(Instant::from_secs_f64(10.0)).await?;
            assert_eq!(now(), 10.0);
            sleep_until(Instant::from_secs_f64(3.0)).await?; // in the past: a checkpoint
            sleep(0.0).await?;
            assert_eq!(now(), 10.0);
            clock.jump(5.0)?;
            assert_eq!(now(), 15.0);
            assert_eq!(
                clock.jump(-1.0).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
            assert_eq!(
                clock.set_rate(-2.0).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
            assert_eq!(
                clock.set_rate(f64::NAN).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
            Ok(())
        })
        .unwrap();
    assert_eq!(clock.current_time().as_secs_f64(), 15.0);
}

#[trio::test(autojump)]
async fn sleepers_wake_in_deadline_order() -> trio::Result<()> {
    let log = Log::default();
    open_nursery(async |n| {
        for (name, t) in [("c", 3.0), ("a", 1.0), ("b1", 2.0), ("b2", 2.0)] {
            let log = &log;
            n.start_soon(async move {
                sleep(t).await?;
                log.push(format!("{name}@{}", now()));
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    // b1 and b2 wake in the same batch, whose order the seed picks.
    let mut log = log.take();
    log[1..3].sort();
    assert_eq!(log, ["a@1", "b1@2", "b2@2", "c@3"]);
    Ok(())
}

#[test]
fn a_frozen_clock_can_be_jumped_by_hand() {
    let clock = MockClock::new();
    assert_eq!(clock.autojump_threshold(), None);
    trio::Runner::new()
        .clock(clock.clone())
        .run(async {
            open_nursery(async |n| {
                n.start_soon(async {
                    sleep(10.0).await?;
                    assert_eq!(now(), 10.0);
                    Ok(())
                });
                wait_all_tasks_blocked().await?;
                clock.jump(10.0)?;
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_running_mock_clock_advances_with_real_time() {
    let clock = MockClock::new();
    clock.set_rate(1000.0).unwrap();
    trio::Runner::new()
        .clock(clock.clone())
        .run(async {
            sleep(5.0).await?; // about 5 ms of real time
            assert!(now() >= 5.0);
            Ok(())
        })
        .unwrap();
}

#[trio::test(autojump)]
async fn wait_all_tasks_blocked_wakes_by_cushion_and_beats_autojump() -> trio::Result<()> {
    let log = Log::default();
    open_nursery(async |n| {
        let l = &log;
        n.start_soon(async move {
            l.push("blink start");
            sleep(1.0).await?;
            l.push(format!("blink end at {}", now()));
            Ok(())
        });
        for (name, cushion) in [
            ("none", 0.0),
            ("small-1", 0.002),
            ("small-2", 0.002),
            ("big", 0.004),
        ] {
            n.start_soon(async move {
                wait_all_tasks_blocked_with_cushion(cushion).await?;
                l.push(format!("{name} at {}", now()));
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    // small-1 and small-2 wake in the same batch, whose order the seed picks.
    let mut log = log.take();
    log[2..4].sort();
    assert_eq!(
        log,
        [
            "blink start",
            "none at 0",
            "small-1 at 0",
            "small-2 at 0",
            "big at 0",
            "blink end at 1", // the clock jumps only when no one waits for idleness
        ]
    );
    Ok(())
}

#[trio::test(autojump)]
async fn wait_all_tasks_blocked_is_cancellable() -> trio::Result<()> {
    let scope = trio::CancelScope::new();
    open_nursery(async |n| {
        let s = &scope;
        n.start_soon(async move {
            let r = s.run(wait_all_tasks_blocked_with_cushion(1000.0)).await?;
            assert_eq!(r, None);
            Ok(())
        });
        wait_all_tasks_blocked().await?; // the smaller cushion wakes first
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    Ok(())
}

#[trio::test(autojump)]
async fn work_outside_the_run_is_not_idleness() -> trio::Result<()> {
    let log = Log::default();
    open_nursery(async |n| {
        let done = Arc::new(AtomicBool::new(false));
        let work = trio::lowlevel::begin_external_work()?;
        let d = done.clone();
        let handle = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            d.store(true, Ordering::SeqCst);
            drop(work);
        });
        let l = &log;
        n.start_soon(async move {
            wait_all_tasks_blocked().await?;
            l.push(format!(
                "idle after thread finished: {}",
                done.load(Ordering::SeqCst)
            ));
            Ok(())
        });
        sleep(5.0).await?; // autojump must wait for the thread too
        handle.join().unwrap();
        Ok(())
    })
    .await?;
    assert_eq!(log.take(), ["idle after thread finished: true"]);
    Ok(())
}

#[test]
fn a_waker_fired_from_another_thread_wakes_the_loop() {
    // The run has nothing else to do: it must be blocked in the reactor and
    // be woken by the other thread.
    trio::run(async {
        let fired = Arc::new(AtomicBool::new(false));
        let mut spawned = false;
        poll_fn(|cx| {
            if fired.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            if !spawned {
                spawned = true;
                let (waker, fired) = (cx.waker().clone(), fired.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(10));
                    fired.store(true, Ordering::SeqCst);
                    waker.wake();
                });
            }
            Poll::Pending
        })
        .await;
        Ok(())
    })
    .unwrap();
}

#[test]
fn tokens_reach_the_run_from_other_threads_and_fail_after_it_ends() {
    let token = trio::run(async {
        let token = trio::lowlevel::current_trio_token()?;
        assert!(token.is_running());
        let ran = Rc::new(Cell::new(false));
        let flag = Arc::new(AtomicBool::new(false));
        let (t, f) = (token.clone(), flag.clone());
        std::thread::spawn(move || {
            t.run_sync_soon(move || {
                assert!(
                    trio::try_current_time().is_ok(),
                    "callbacks run inside the run"
                );
                f.store(true, Ordering::SeqCst);
            })
            .unwrap();
        })
        .join()
        .unwrap();
        let work = trio::lowlevel::begin_external_work()?; // keep the loop honest
        drop(work);
        while !flag.load(Ordering::SeqCst) {
            checkpoint().await?;
        }
        ran.set(true);
        assert!(ran.get());
        Ok(token)
    })
    .unwrap();
    assert!(!token.is_running());
    let err = token.run_sync_soon(|| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RunFinished);
}

#[test]
fn a_panic_in_a_token_callback_ends_the_run_with_that_panic() {
    let r = std::panic::catch_unwind(|| {
        trio::run(async {
            let token = trio::lowlevel::current_trio_token()?;
            token.run_sync_soon(|| panic!("callback blew up"))?;
            sleep_forever().await
        })
    });
    assert_eq!(
        *r.unwrap_err().downcast_ref::<&str>().unwrap(),
        "callback blew up"
    );
}

#[test]
fn system_tasks_are_cancelled_when_the_root_finishes() {
    let log = Rc::new(Log::default());
    let l = log.clone();
    trio::run(async move {
        let l2 = l.clone();
        trio::lowlevel::spawn_system_task(async move {
            let r = sleep_forever().await;
            l2.push(format!("system task: {r:?}"));
            r
        })?;
        checkpoint().await?;
        l.push("root done");
        Ok(())
    })
    .unwrap();
    assert_eq!(log.take(), ["root done", "system task: Err(Cancelled)"]);

    let err = trio::run(async {
        trio::lowlevel::spawn_system_task(async {
            Err(trio::Error::new(ErrorKind::Broken, "sys"))
        })?;
        sleep_forever().await
    })
    .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Broken,
        "a failing system task cancels the root: {err:?}"
    );
}

#[test]
fn run_vars_are_per_run() {
    static COUNTER: RunVar<u32> = RunVar::with_default("counter", || 0);
    static NAME: RunVar<String> = RunVar::new("name");
    for _ in 0..2 {
        trio::run(async {
            assert_eq!(COUNTER.get()?, 0);
            COUNTER.with(|c| *c += 5)?;
            assert_eq!(COUNTER.get()?, 5);
            assert_eq!(NAME.get().unwrap_err().kind(), ErrorKind::Usage);
            assert_eq!(NAME.set("x".into())?, None);
            assert_eq!(NAME.set("y".into())?, Some("x".into()));
            assert_eq!(NAME.reset()?, Some("y".into()));
            Ok(())
        })
        .unwrap();
    }
    assert_eq!(COUNTER.get().unwrap_err().kind(), ErrorKind::Usage);
}

#[derive(Default)]
struct Recorder(RefCell<Vec<String>>);

impl trio::lowlevel::Instrument for Recorder {
    fn before_run(&self) {
        self.0.borrow_mut().push("before_run".into());
    }
    fn after_run(&self) {
        self.0.borrow_mut().push("after_run".into());
    }
    fn task_spawned(&self, task: trio::lowlevel::Task) {
        self.0
            .borrow_mut()
            .push(format!("spawned {}", task.name().unwrap()));
    }
    fn task_scheduled(&self, _task: trio::lowlevel::Task) {
        self.0.borrow_mut().push("scheduled".into());
    }
    fn task_exited(&self, task: trio::lowlevel::Task) {
        self.0
            .borrow_mut()
            .push(format!("exited {}", task.name().unwrap()));
    }
    fn before_io_wait(&self, _: Duration) {
        self.0.borrow_mut().push("io wait".into());
    }
}

#[test]
fn instruments_see_run_task_and_io_events() {
    let rec = Rc::new(Recorder::default());
    trio::Runner::new()
        .clock(MockClock::autojump())
        .instrument(rec.clone())
        .run(async {
            open_nursery(async |n| {
                n.start_soon_named("kid", async { sleep(1.0).await });
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
    let events = rec.0.borrow();
    assert_eq!(events.first().map(String::as_str), Some("before_run"));
    assert_eq!(events.last().map(String::as_str), Some("after_run"));
    for e in [
        "spawned kid",
        "exited kid",
        "scheduled",
        "io wait",
        "exited <root>",
    ] {
        assert!(events.iter().any(|x| x == e), "missing {e}: {events:?}");
    }
    let spawned = events.iter().position(|e| e == "spawned kid").unwrap();
    let exited = events.iter().position(|e| e == "exited kid").unwrap();
    assert!(spawned < exited);
}

// ----- parking -------------------------------------------------------------

#[trio::test(autojump)]
async fn park_reschedule_and_abort() -> trio::Result<()> {
    let waiting: RefCell<Vec<WaitKey>> = RefCell::new(Vec::new());
    let aborts = Log::default();
    open_nursery(async |n| {
        for i in 0..3 {
            let (waiting, aborts) = (&waiting, &aborts);
            n.start_soon(async move {
                let park = Park::new(move |key, why| {
                    waiting.borrow_mut().retain(|k| *k != key);
                    aborts.push(format!("{i}: {why:?}"));
                    Abort::Succeeded
                })?;
                waiting.borrow_mut().push(park.key());
                let r = trio::move_on_after(5.0, park).await;
                aborts.push(format!("{i} -> {r:?}"));
                Ok(())
            });
            wait_all_tasks_blocked().await?; // park in a known order
        }
        let first = waiting.borrow_mut().remove(0);
        assert!(reschedule(first, Ok(())));
        assert!(!reschedule(first, Ok(())), "a wait is rescheduled once");
        let second = waiting.borrow_mut().remove(0);
        assert!(reschedule(
            second,
            Err(trio::Error::new(ErrorKind::Broken, "gone"))
        ));
        Ok(())
    })
    .await?;
    let mut log = aborts.take();
    log.sort();
    assert_eq!(
        log,
        [
            "0 -> Ok(Some(()))",
            "1 -> Err(Error { kind: Broken, message: \"gone\" })",
            "2 -> Ok(None)",
            "2: Cancelled",
        ]
    );
    assert!(
        waiting.borrow().is_empty(),
        "the abort fn removed its own key"
    );
    Ok(())
}

#[trio::test(autojump)]
async fn a_failed_abort_keeps_waiting_until_rescheduled() -> trio::Result<()> {
    let key: Cell<Option<WaitKey>> = Cell::new(None);
    open_nursery(async |n| {
        let key = &key;
        n.start_soon(async move {
            let park = Park::new(|_, _| Abort::Failed)?;
            key.set(Some(park.key()));
            let r = trio::move_on_after(1.0, park).await?;
            // The abort failed, so the park waited for its outcome, which
            // came at t=3; the cancel is then seen by the next checkpoint.
            assert_eq!(r, Some(()));
            assert_eq!(now(), 3.0);
            Ok(())
        });
        sleep(3.0).await?;
        assert!(reschedule(key.get().unwrap(), Ok(())));
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn dropping_a_park_tells_its_abort_fn() -> trio::Result<()> {
    let log = Log::default();
    {
        let l = &log;
        let park = Park::new(move |_, why| {
            l.push(format!("{why:?}"));
            Abort::Succeeded
        })?;
        drop(park);
    }
    {
        let l = &log;
        let park = Park::new(move |_, why| {
            l.push(format!("{why:?}"));
            Abort::Succeeded
        })?;
        assert!(reschedule(park.key(), Ok(())));
        drop(park); // rescheduled but never seen: the primitive must take it back
    }
    assert_eq!(
        log.take(),
        [
            "Dropped { rescheduled: false }",
            "Dropped { rescheduled: true }"
        ]
    );
    Ok(())
}

// ----- I/O -----------------------------------------------------------------

#[test]
fn waiting_for_fds() {
    trio::run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        let fd = a.as_raw_fd();
        trio::lowlevel::wait_writable(fd).await?;
        let log = Log::default();
        open_nursery(async |n| {
            let l = &log;
            n.start_soon(async move {
                trio::lowlevel::wait_readable(fd).await?;
                l.push("readable");
                Ok(())
            });
            wait_all_tasks_blocked().await?;
            // One reader per fd.
            let err = trio::lowlevel::wait_readable(fd).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Busy);
            log.push("writing");
            b.write_all(b"x")?;
            Ok(())
        })
        .await?;
        assert_eq!(log.take(), ["writing", "readable"]);

        // A cancelled wait leaves no registration behind.
        let mut buf = [0u8; 8];
        let _ = std::io::Read::read(&mut &a, &mut buf)?;
        assert_eq!(
            trio::move_on_after(0.01, trio::lowlevel::wait_readable(fd)).await?,
            None
        );
        // notify_closing wakes a waiter with Closed.
        open_nursery(async |n| {
            n.start_soon(async move {
                let err = trio::lowlevel::wait_readable(fd).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Closed);
                Ok(())
            });
            wait_all_tasks_blocked().await?;
            trio::lowlevel::notify_closing(fd)?;
            Ok(())
        })
        .await?;
        assert_eq!(
            trio::lowlevel::wait_readable(-1).await.unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        Ok(())
    })
    .unwrap();
}

#[trio::test(autojump)]
async fn exit_hooks_fire_however_a_task_ends_and_can_be_cancelled() -> trio::Result<()> {
    let log = Rc::new(Log::default());
    open_nursery(async |n| {
        n.start_soon_named("returns", sleep(1.0));
        n.start_soon_named("cancelled", sleep_forever());
        n.start_soon_named("unhooked", sleep(1.0));
        for t in n.child_tasks() {
            let (l, name) = (log.clone(), t.name().unwrap());
            let unhooked = name == "unhooked";
            let hook = t.on_exit(move || l.push(format!("{name} exited at {}", now())))?;
            if unhooked {
                drop(hook); // cancelled: never fires
            } else {
                hook.keep();
            }
        }
        sleep(2.0).await?;
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    let mut lines = log.take();
    lines.sort();
    assert_eq!(lines, ["cancelled exited at 2", "returns exited at 1"]);

    // A task that has already exited: the callback runs at once.
    let gone = Rc::new(Cell::new(None));
    open_nursery(async |n| {
        n.start_soon(async {});
        gone.set(Some(n.child_tasks()[0]));
        Ok(())
    })
    .await?;
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    gone.get().unwrap().on_exit(move || f.set(true))?.keep();
    assert!(fired.get());

    // Children dropped with their nursery future count as exited.
    let dropped = Rc::new(Cell::new(false));
    {
        let d = dropped.clone();
        let mut fut = Box::pin(open_nursery(async move |n| {
            n.start_soon(sleep_forever());
            n.child_tasks()[0].on_exit(move || d.set(true))?.keep();
            sleep_forever().await
        }));
        let _ = trio::move_on_after(0.0, poll_fn(|cx| fut.as_mut().poll(cx).map(|_| Ok(())))).await;
    }
    assert!(dropped.get());
    Ok(())
}
