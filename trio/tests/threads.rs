//! Tests for to_thread / from_thread. Every test takes `POOL` so that the
//! process-wide thread pool is used by one test at a time (thread reuse is
//! then deterministic).

// `serial()`'s guard is held across the awaits of a whole test on purpose:
// it is what keeps the other tests (on other threads) out of the pool.
#![allow(clippy::await_holding_lock)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use trio::ResultExt;
use trio::sync::CapacityLimiter;
use trio::testing::{MockClock, wait_all_tasks_blocked};
use trio::{CancelScope, ErrorKind, to_thread};

static POOL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on an autojumping MockClock and unwraps its result.
fn run_autojump<T>(f: impl Future<Output = trio::Result<T>>) -> T {
    trio::Runner::new()
        .clock(MockClock::autojump())
        .run(f)
        .unwrap()
}

#[trio::test(autojump)]
async fn returns_the_result_from_a_reused_thread() -> trio::Result<()> {
    let _s = serial();
    let main = std::thread::current().id();
    let a = to_thread::run_sync(|| std::thread::current().id()).await?;
    let b = to_thread::run_sync(|| std::thread::current().id()).await?;
    assert_ne!(a, main);
    assert_eq!(a, b); // the idle thread was reused
    let s = to_thread::run_sync(|| "hello".to_string()).await?;
    assert_eq!(s, "hello");
    Ok(())
}

#[test]
fn a_panic_in_the_function_resumes_in_the_caller() {
    let _s = serial();
    let caught = std::panic::catch_unwind(|| {
        run_autojump(async {
            to_thread::run_sync(|| -> u32 { panic!("boom in a thread") }).await?;
            Ok(())
        })
    })
    .unwrap_err();
    assert_eq!(caught.downcast_ref::<&str>(), Some(&"boom in a thread"));
    // The pool survives.
    assert_eq!(run_autojump(to_thread::run_sync(|| 3)), 3);
}

#[trio::test(autojump)]
async fn checkpoints_before_starting() -> trio::Result<()> {
    let _s = serial();
    let ran = Arc::new(AtomicBool::new(false));
    let scope = CancelScope::new();
    let r = scope
        .run(async {
            scope.cancel();
            let ran = ran.clone();
            to_thread::run_sync(move || ran.store(true, Ordering::SeqCst)).await
        })
        .await?;
    assert_eq!(r, None);
    assert!(!ran.load(Ordering::SeqCst));
    Ok(())
}

/// Starts `run_sync` in a cancel scope in a child, waits until the thread is
/// running, cancels the scope, then lets the thread finish. Returns what the
/// child's scope returned and the limiter's count seen right after the
/// cancel.
async fn cancel_mid_call(abandon: bool) -> trio::Result<(Option<u32>, usize, bool)> {
    let limiter = CapacityLimiter::new(1)?;
    let scope = CancelScope::new();
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let outcome = std::cell::RefCell::new(None);
    let mut borrowed_after_cancel = 0;
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let builder = to_thread::Builder::new()
                .limiter(limiter.clone())
                .abandon_on_cancel(abandon);
            let r = scope
                .run(builder.run_sync(move || {
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    42u32
                }))
                .await?;
            *outcome.borrow_mut() = Some(r);
            Ok(())
        });
        // Let the child start the thread (its steps are checkpoints).
        while started_rx.try_recv().is_err() {
            trio::checkpoint().await?;
        }
        scope.cancel();
        for _ in 0..5 {
            trio::checkpoint().await?;
        }
        borrowed_after_cancel = limiter.borrowed_tokens();
        go_tx.send(()).unwrap();
        Ok(())
    })
    .await?;
    // Wait until the thread has really finished and reported back.
    wait_all_tasks_blocked().await?;
    let returned = limiter.borrowed_tokens() == 0;
    let r = outcome.into_inner().expect("the child finished");
    Ok((r, borrowed_after_cancel, returned))
}

#[trio::test(autojump)]
async fn cancelled_call_keeps_waiting_for_the_thread_by_default() -> trio::Result<()> {
    let _s = serial();
    let (r, borrowed, returned) = cancel_mid_call(false).await?;
    assert_eq!(r, Some(42)); // the thread's result, despite the cancel
    assert_eq!(borrowed, 1);
    assert!(returned);
    Ok(())
}

#[trio::test(autojump)]
async fn abandoning_returns_cancelled_at_once_but_keeps_the_token_until_done() -> trio::Result<()> {
    let _s = serial();
    let (r, borrowed, returned) = cancel_mid_call(true).await?;
    assert_eq!(r, None); // Cancelled, caught by the scope
    assert_eq!(borrowed, 1); // the thread still runs and holds its token
    assert!(returned); // given back once it finished
    Ok(())
}

#[trio::test(autojump)]
async fn the_limiter_caps_concurrent_threads() -> trio::Result<()> {
    let _s = serial();
    let limiter = CapacityLimiter::new(2)?;
    let running = Arc::new(Mutex::new((0u32, 0u32))); // (now, max)
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    trio::open_nursery(async |n| {
        for _ in 0..6 {
            let (limiter, running, gate) = (limiter.clone(), running.clone(), gate.clone());
            n.start_soon(async move {
                to_thread::Builder::new()
                    .limiter(limiter)
                    .run_sync(move || {
                        {
                            let mut r = running.lock().unwrap();
                            r.0 += 1;
                            r.1 = r.1.max(r.0);
                        }
                        let mut open = gate.0.lock().unwrap();
                        while !*open {
                            open = gate.1.wait(open).unwrap();
                        }
                        drop(open);
                        running.lock().unwrap().0 -= 1;
                    })
                    .await
            });
        }
        // Two threads run (blocked on the gate); four tasks queue.
        while limiter.statistics().tasks_waiting < 4 || running.lock().unwrap().0 < 2 {
            trio::checkpoint().await?;
        }
        assert_eq!(limiter.borrowed_tokens(), 2);
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        Ok(())
    })
    .await?;
    assert_eq!(running.lock().unwrap().1, 2);
    assert_eq!(limiter.borrowed_tokens(), 0);
    Ok(())
}

#[test]
fn default_limiter_is_per_run_and_40() {
    let _s = serial();
    run_autojump(async {
        let l = to_thread::current_default_thread_limiter()?;
        assert_eq!(l.total_tokens(), 40);
        l.set_total_tokens(3)?;
        assert_eq!(
            to_thread::current_default_thread_limiter()?.total_tokens(),
            3
        );
        to_thread::run_sync(|| ()).await?;
        assert_eq!(l.borrowed_tokens(), 0);
        Ok(())
    });
    run_autojump(async {
        assert_eq!(
            to_thread::current_default_thread_limiter()?.total_tokens(),
            40
        );
        Ok(())
    });
}

#[trio::test(autojump)]
async fn from_thread_round_trip() -> trio::Result<()> {
    let _s = serial();
    let flag = trio::sync::Event::new();
    let token = trio::lowlevel::current_trio_token()?;
    let (a, b, c) = to_thread::run_sync(move || -> trio::Result<_> {
        // Sync: runs in the run, between tasks.
        let a = trio::from_thread::run_sync(|| trio::current_time().as_secs_f64())?;
        // Async: a sleep in virtual time, autojumped while we wait.
        let b = trio::from_thread::run(|| async {
            trio::sleep(10.0).await?;
            Ok(trio::current_time().as_secs_f64())
        })?;
        // With an explicit token.
        let c = trio::from_thread::run_sync_with_token(&token, || 5)?;
        Ok((a, b, c))
    })
    .await??;
    assert_eq!((a, b, c), (0.0, 10.0, 5));
    // Errors and panics come back to the thread.
    let (err, panicked) = to_thread::run_sync(|| {
        let err = trio::from_thread::run(|| async {
            Err::<(), _>(trio::Error::new(ErrorKind::Busy, "nope"))
        })
        .unwrap_err()
        .kind();
        let panicked =
            std::panic::catch_unwind(|| trio::from_thread::run_sync(|| panic!("in the run")))
                .is_err();
        (err, panicked)
    })
    .await?;
    assert_eq!(err, ErrorKind::Busy);
    assert!(panicked);
    assert!(!flag.is_set());
    Ok(())
}

#[test]
fn from_thread_misuse_is_an_error() {
    let _s = serial();
    // Inside the run's own thread: an error, not a deadlock.
    run_autojump(async {
        let token = trio::lowlevel::current_trio_token()?;
        let e = trio::from_thread::run_sync_with_token(&token, || ()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        // A plain thread with no token cannot use the token-less form.
        let e = std::thread::spawn(|| trio::from_thread::run_sync(|| ()).unwrap_err().kind())
            .join()
            .unwrap();
        assert_eq!(e, ErrorKind::Usage);
        Ok(())
    });
    // After the run ended: RunFinished.
    let token = run_autojump(async { trio::lowlevel::current_trio_token() });
    let e = std::thread::spawn(move || {
        trio::from_thread::run_sync_with_token(&token, || ())
            .unwrap_err()
            .kind()
    })
    .join()
    .unwrap();
    assert_eq!(e, ErrorKind::RunFinished);
}

#[test]
fn abandoned_thread_calling_back_after_the_run_gets_run_finished() {
    let _s = serial();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    run_autojump(async {
        trio::open_nursery(async |n| {
            n.start_soon(async {
                to_thread::Builder::new()
                    .abandon_on_cancel(true)
                    .run_sync(move || {
                        started_tx.send(()).unwrap();
                        go_rx.recv().unwrap();
                        let e = trio::from_thread::run_sync(|| ()).unwrap_err().kind();
                        done_tx.send(e).unwrap();
                    })
                    .await?;
                Ok(())
            });
            while started_rx.try_recv().is_err() {
                trio::checkpoint().await?;
            }
            n.cancel_scope().cancel(); // the call returns at once
            Ok(())
        })
        .await?;
        Ok(())
    });
    // The run is over; now let the abandoned thread try to call back.
    go_tx.send(()).unwrap();
    assert_eq!(done_rx.recv().unwrap(), ErrorKind::RunFinished);
}

#[test]
fn a_cancelled_caller_is_visible_to_its_worker_and_its_calls_back() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // check_cancelled: the worker sees its caller's cancellation.
    let saw = Arc::new(AtomicBool::new(false));
    let s2 = saw.clone();
    trio::Runner::new()
        .clock(trio::testing::MockClock::autojump())
        .run(async move {
            let r = trio::move_on_after(1.0, async move {
                trio::to_thread::run_sync(move || {
                    assert!(
                        trio::from_thread::check_cancelled().is_ok(),
                        "not cancelled yet"
                    );
                    // Wait (in the run, on its clock) until the caller's
                    // timeout has fired, then look again.
                    trio::from_thread::run_sync(|| ()).unwrap();
                    let mut cancelled = false;
                    while !cancelled {
                        cancelled = trio::from_thread::check_cancelled().is_err();
                        if !cancelled {
                            // A call back into the run is itself cancelled once
                            // the caller is: sleep until then.
                            let r = trio::from_thread::run(|| trio::sleep(10.0));
                            cancelled = r.is_cancelled();
                        }
                    }
                    s2.store(true, Ordering::SeqCst);
                    Ok(())
                })
                .await?
            })
            .await?;
            // The worker returned Ok, so the scope saw no Cancelled: Some(()).
            assert_eq!(r, Some(()));
            assert_eq!(
                trio::current_time().as_secs_f64(),
                1.0,
                "the sleep was cut short at 1 s"
            );
            Ok(())
        })
        .unwrap();
    assert!(saw.load(Ordering::SeqCst));
    // Outside a worker thread it is a usage error.
    assert_eq!(
        trio::from_thread::check_cancelled().unwrap_err().kind(),
        trio::ErrorKind::Usage
    );
}
