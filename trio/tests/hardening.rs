//! Regression tests for the core defects found by adversarial testing
//! (issue 8). One test per defect, named after the behaviour it pins down;
//! the defect's number is in the comment above each.
//!
//! Several defects were hangs. Those tests run the case on a helper thread
//! under [`within`], a real-time watchdog that turns a hang into a failure
//! (the only use of real time here: no assertion depends on timing).

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use trio::lowlevel::{Clock, Instrument, Task, current_task, current_trio_token, try_current_task};
use trio::testing::MockClock;
use trio::{ErrorKind, Instant, open_nursery};

/// Runs `f` on its own thread and fails the test if it has not finished
/// after `secs` of real time (the case under test used to hang).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: no answer after {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the thread always sends before it ends"),
        },
    }
}

/// A future that catches a panic from polling `inner`, as
/// `futures::FutureExt::catch_unwind` does.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(p) => Poll::Ready(Err(p)),
        }
    }
}

// ----- 1. wakers during thread-local destruction ------------------------------

thread_local! {
    // Initialised before trio's own thread-locals on the thread below, so it
    // is destroyed after them.
    static KEPT_WAKER: RefCell<Option<WakeOnDrop>> = const { RefCell::new(None) };
}

/// Wakes, then drops, a waker when dropped.
struct WakeOnDrop(Option<Waker>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.wake_by_ref();
            w.wake();
        }
    }
}

/// The body of the child process of
/// `waking_and_dropping_a_waker_during_thread_local_destruction_does_nothing`
/// (it aborted the process before the fix, so it cannot run in this one).
#[test]
#[ignore = "run as a child process by the test below"]
fn tls_destruction_child() {
    if std::env::var_os("TRIO_TLS_CHILD").is_none() {
        return;
    }
    std::thread::spawn(|| {
        KEPT_WAKER.with(|_| {}); // registered first, destroyed last
        trio::run(async {
            std::future::poll_fn(|cx| {
                let w = WakeOnDrop(Some(cx.waker().clone()));
                KEPT_WAKER.with(|k| *k.borrow_mut() = Some(w));
                Poll::Ready(())
            })
            .await;
            Ok(())
        })
        .unwrap();
        // The thread ends here: trio's thread-locals go, then KEPT_WAKER,
        // whose waker is woken and dropped.
    })
    .join()
    .unwrap();
    // A second run on this thread still works.
    trio::run(async { trio::checkpoint().await }).unwrap();
}

// 1.
#[test]
fn waking_and_dropping_a_waker_during_thread_local_destruction_does_nothing() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tls_destruction_child",
            "--include-ignored",
            "--nocapture",
        ])
        .env("TRIO_TLS_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child process failed ({:?}):\n{stderr}",
        out.status
    );
}

// ----- 2. the deadlock check against a token dropped after posting -----------

// 2. (The interleaving itself is modelled with loom in `core/inbox.rs`; this
// is the same scenario on real threads, many times.)
#[test]
fn a_callback_posted_just_before_the_last_token_drops_is_never_a_deadlock() {
    within(60, || {
        for _ in 0..300 {
            trio::run(async {
                let token = current_trio_token()?;
                let park = trio::lowlevel::Park::new(|_, _| trio::lowlevel::Abort::Succeeded)?;
                let key = park.key();
                std::thread::spawn(move || {
                    token
                        .run_sync_soon(move || {
                            trio::lowlevel::reschedule(key, Ok(()));
                        })
                        .unwrap();
                    drop(token);
                });
                park.await
            })
            .unwrap();
        }
    });
}

// ----- 3. a waker from a run 65 536 runs ago ----------------------------------

// 3.
#[test]
fn a_waker_from_a_long_finished_run_cannot_affect_a_later_run() {
    /// The current run's id, as `TrioToken`'s `Debug` shows it.
    fn run_id() -> u32 {
        let shown = format!("{:?}", current_trio_token().unwrap());
        let digits = shown.split("run_id: ").nth(1).unwrap();
        digits
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
    within(300, || {
        // A clone of a task waker, kept after its run has ended.
        let (stale, old_id) = trio::run(async {
            let mut kept = None;
            std::future::poll_fn(|cx| {
                kept = Some(cx.waker().clone());
                Poll::Ready(())
            })
            .await;
            Ok((kept.unwrap(), run_id()))
        })
        .unwrap();
        let stale = RefCell::new(Some(stale));
        // Runs until one's id has the same low 16 bits; in that one, the
        // only task waits for a thread that holds its waker, and the stale
        // waker is woken and dropped meanwhile.
        for _ in 0..3 * 65_536 {
            trio::run(async {
                if run_id() as u16 != old_id as u16 {
                    return Ok(());
                }
                let (tx, rx) = mpsc::channel::<()>();
                let mut sent = false;
                std::future::poll_fn(|cx| {
                    if rx.try_recv().is_ok() {
                        return Poll::Ready(());
                    }
                    if !sent {
                        sent = true;
                        let (w, tx) = (cx.waker().clone(), tx.clone());
                        let old = stale.borrow_mut().take().unwrap();
                        old.wake_by_ref();
                        drop(old);
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_millis(20));
                            tx.send(()).unwrap();
                            w.wake();
                        });
                    }
                    Poll::Pending
                })
                .await;
                Ok(())
            })
            .unwrap();
            if stale.borrow().is_none() {
                return;
            }
        }
        panic!("no run reused the stale waker's short id");
    });
}

// ----- 6. no call-outs under the runtime's borrow -----------------------------

/// Looks at the run's state, as a logging waker might.
fn touch_the_runtime() {
    let _ = trio::lowlevel::task_tree();
    let _ = try_current_task().map(|t| t.name());
}

/// A foreign waker that looks at the runtime when woken and when dropped.
struct NosyWaker(Waker);

impl std::task::Wake for NosyWaker {
    fn wake(self: std::sync::Arc<Self>) {
        touch_the_runtime();
        self.0.wake_by_ref();
    }
}

impl Drop for NosyWaker {
    fn drop(&mut self) {
        touch_the_runtime();
    }
}

/// Polls `inner` with a fresh `NosyWaker` each time, and asks to be polled
/// twice at first (so the runtime replaces, and drops, a waker it holds).
struct NosyPoll<F> {
    inner: Pin<Box<F>>,
    polls: u32,
}

impl<F: Future> Future for NosyPoll<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls += 1;
        if self.polls == 1 {
            cx.waker().wake_by_ref();
        }
        let waker = Waker::from(std::sync::Arc::new(NosyWaker(cx.waker().clone())));
        self.inner.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

// 6. (the runtime's part; the primitives' part is in hardening_sync.rs)
#[trio::test(autojump)]
async fn foreign_wakers_are_woken_and_dropped_outside_the_runtimes_borrow() -> trio::Result<()> {
    // A sleep that ends by its deadline, one cut short by a cancel scope,
    // and a nursery whose child wakes it.
    NosyPoll {
        inner: Box::pin(trio::sleep(1.0)),
        polls: 0,
    }
    .await?;
    let r = NosyPoll {
        inner: Box::pin(trio::move_on_after(1.0, trio::sleep_forever())),
        polls: 0,
    }
    .await?;
    assert!(r.is_none());
    NosyPoll {
        inner: Box::pin(open_nursery(async |n| {
            n.start_soon(trio::sleep(1.0));
            Ok(())
        })),
        polls: 0,
    }
    .await?;
    assert_eq!(trio::current_time().as_secs_f64(), 3.0);
    Ok(())
}

// ----- 4. started() from another task -----------------------------------------

// 4.
#[trio::test(autojump)]
async fn started_called_from_another_task_returns_from_start_at_once() -> trio::Result<()> {
    let handed_over: RefCell<Option<trio::TaskStatus<&str>>> = RefCell::new(None);
    open_nursery(async |n| {
        let helper_n = n.clone();
        helper_n.start_soon(async {
            trio::sleep(1.0).await?;
            let status = handed_over.borrow_mut().take().unwrap();
            status.started("ready");
            Ok(())
        });
        let started_at = trio::fail_after(
            10.0,
            n.start(async |status| {
                *handed_over.borrow_mut() = Some(status);
                trio::sleep_forever().await
            }),
        )
        .await?;
        assert_eq!(started_at, "ready");
        assert_eq!(trio::current_time().as_secs_f64(), 1.0);
        n.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    Ok(())
}

// ----- 5. sleeping until −∞; NaN instants -------------------------------------

// 5.
#[test]
fn sleeping_until_minus_infinity_returns_at_once_and_nan_instants_are_errors() {
    within(30, || {
        trio::Runner::new()
            .clock(MockClock::autojump())
            .run(async {
                let r = trio::move_on_after(1.0, trio::sleep_until(Instant::NEG_INFINITY)).await?;
                assert_eq!(r, Some(()), "sleep_until(−∞) should return at once");
                assert_eq!(trio::current_time(), Instant::ZERO);
                Ok(())
            })
            .unwrap();
    });
    assert_eq!(
        Instant::try_from_secs_f64(f64::NAN).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(catch_unwind(|| Instant::from_secs_f64(f64::NAN)).is_err());
}

// ----- 7. a clock that reads run state ----------------------------------------

/// A MockClock that looks at the current task whenever it is read, as a
/// logging clock might.
struct NosyClock(MockClock);

impl Clock for NosyClock {
    fn start_clock(&self) {
        Clock::start_clock(&self.0)
    }
    fn current_time(&self) -> Instant {
        let _ = try_current_task().map(|t| t.name());
        self.0.current_time()
    }
    fn deadline_to_sleep_time(&self, deadline: Instant) -> Duration {
        let _ = try_current_task().map(|t| t.name());
        self.0.deadline_to_sleep_time(deadline)
    }
    fn autojump_threshold(&self) -> Option<Duration> {
        let _ = try_current_task().map(|t| t.name());
        Clock::autojump_threshold(&self.0)
    }
    fn autojump(&self, deadline: Instant) {
        let _ = try_current_task().map(|t| t.name());
        Clock::autojump(&self.0, deadline)
    }
}

// 7.
#[test]
fn a_clock_may_read_run_state() {
    trio::Runner::new()
        .clock(NosyClock(MockClock::autojump()))
        .run(async {
            let scope = trio::CancelScope::new().with_relative_deadline(5.0)?;
            scope.run(trio::sleep(10.0)).await?;
            trio::move_on_after(1.0, trio::sleep_forever()).await?;
            let _ = trio::current_effective_deadline();
            let _ = trio::lowlevel::task_tree()?;
            open_nursery(async |n| {
                n.start_soon(trio::sleep(2.0));
                Ok(())
            })
            .await?;
            assert_eq!(trio::current_time().as_secs_f64(), 8.0);
            Ok(())
        })
        .unwrap();
}

// ----- 8. a worker waiting on the run is not an outside waker -----------------

// 8.
#[test]
fn a_worker_thread_blocked_on_the_run_does_not_hide_a_deadlock() {
    let err = within(30, || {
        trio::run(async {
            trio::to_thread::run_sync(|| {
                trio::from_thread::run(|| async { trio::sync::Event::new().wait().await })
            })
            .await??;
            Ok(())
        })
        .unwrap_err()
    });
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err}");
}

// ----- 9. a frozen MockClock ---------------------------------------------------

// 9.
#[test]
fn a_sleep_on_a_frozen_mock_clock_with_nothing_to_move_it_is_a_deadlock() {
    let err = within(30, || {
        trio::Runner::new()
            .clock(MockClock::new())
            .run(trio::sleep(1.0))
            .unwrap_err()
    });
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err}");
    assert!(err.to_string().contains("frozen"), "{err}");
}

// ----- 10. MockClock arguments -------------------------------------------------

// 10.
#[test]
fn mock_clock_rejects_jumps_and_rates_it_cannot_represent() {
    let clock = MockClock::new();
    for bad in [f64::INFINITY, 1e10, f64::NAN, -1.0] {
        let e = clock.jump(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "jump({bad})");
    }
    assert_eq!(clock.current_time(), Instant::ZERO, "nothing changed");
    clock.jump(1e9).unwrap(); // ~31 years: fine
    for bad in [1e300, f64::INFINITY, f64::NAN, -1.0] {
        let e = clock.set_rate(bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "set_rate({bad})");
    }
    assert_eq!(clock.rate(), 0.0);
    // Timeouts still work after the rejected calls.
    trio::Runner::new()
        .clock(clock.clone())
        .run(async {
            clock.set_autojump_threshold(0.0)?;
            let r = trio::move_on_after(1.0, trio::sleep_forever()).await?;
            assert!(r.is_none());
            Ok(())
        })
        .unwrap();
}

// ----- 14. current task restored when a panic unwinds through a nursery -------

// 14.
#[trio::test(autojump)]
async fn a_panic_from_an_exit_hook_leaves_the_current_task_correct() -> trio::Result<()> {
    let me = current_task();
    let caught = CatchUnwind(Box::pin(open_nursery(async |n| {
        n.start_soon(async {
            current_task()
                .on_exit(|| panic!("exit hook panics"))?
                .keep();
            Ok(())
        });
        Ok(())
    })))
    .await;
    assert!(caught.is_err(), "the hook's panic reaches the parent");
    assert_eq!(current_task(), me);
    let tree = trio::lowlevel::task_tree()?.to_string();
    assert!(tree.starts_with("task <root>: running"), "{tree}");
    Ok(())
}

// ----- 15. the task seen by callbacks from other threads ----------------------

// 15.
#[trio::test(autojump)]
async fn callbacks_from_other_threads_run_as_one_stable_task() -> trio::Result<()> {
    let token = current_trio_token()?;
    let (tx, rx) = mpsc::channel::<Task>();
    let seen = Rc::new(RefCell::new(Vec::new()));
    open_nursery(async |n| {
        for i in 0..3 {
            let (token, tx) = (token.clone(), tx.clone());
            let seen = seen.clone();
            n.start_soon_named(&format!("worker {i}"), async move {
                seen.borrow_mut().push(current_task());
                let work = trio::lowlevel::begin_external_work()?;
                std::thread::spawn(move || {
                    token
                        .run_sync_soon(move || {
                            tx.send(current_task()).unwrap();
                        })
                        .unwrap();
                    drop(work);
                });
                trio::sleep(1.0).await
            });
        }
        Ok(())
    })
    .await?;
    let callers: Vec<Task> = rx.try_iter().collect();
    assert_eq!(callers.len(), 3);
    assert!(callers.iter().all(|t| *t == callers[0]), "{callers:?}");
    assert!(!seen.borrow().contains(&callers[0]));
    assert_ne!(callers[0], current_task());
    Ok(())
}

// ----- 16. cancel_called() of a scope whose deadline has passed ---------------

// 16.
#[trio::test(autojump)]
async fn a_passed_deadline_counts_as_cancel_called_before_entry_and_sticks() -> trio::Result<()> {
    trio::sleep(10.0).await?;
    let scope = trio::CancelScope::new().with_deadline(Instant::from_secs_f64(5.0));
    assert!(scope.cancel_called(), "the deadline has passed");
    scope.set_deadline(Instant::from_secs_f64(100.0));
    assert!(
        scope.cancel_called(),
        "moving the deadline does not uncancel"
    );
    let r = scope.run(trio::checkpoint()).await?;
    assert_eq!(r, None);
    assert!(scope.cancelled_caught());
    Ok(())
}

// ----- 17–19. instruments -----------------------------------------------------

/// Records every event with the task's name.
#[derive(Default)]
struct Recorder(RefCell<Vec<String>>);

impl Recorder {
    fn note(&self, what: &str, task: Task) {
        let name = task.name().unwrap_or_else(|| "<gone>".into());
        let name = if name.contains(".rs:") {
            "child".into()
        } else {
            name
        };
        self.0.borrow_mut().push(format!("{what} {name}"));
    }
    fn events(&self) -> Vec<String> {
        self.0.borrow().clone()
    }
}

impl Instrument for Recorder {
    fn before_run(&self) {
        self.0.borrow_mut().push("before_run".into());
    }
    fn after_run(&self) {
        self.0.borrow_mut().push("after_run".into());
    }
    fn task_spawned(&self, task: Task) {
        self.note("spawned", task)
    }
    fn task_scheduled(&self, task: Task) {
        self.note("scheduled", task)
    }
    fn before_task_step(&self, task: Task) {
        self.note("before", task)
    }
    fn after_task_step(&self, task: Task) {
        self.note("after", task)
    }
    fn task_exited(&self, task: Task) {
        self.note("exited", task)
    }
}

// 17.
#[test]
fn adding_an_instrument_twice_is_idempotent() {
    let rec = Rc::new(Recorder::default());
    let r2 = rec.clone();
    trio::run(async move {
        trio::lowlevel::add_instrument(r2.clone())?;
        trio::lowlevel::add_instrument(r2.clone())?;
        trio::checkpoint().await?;
        assert!(trio::lowlevel::remove_instrument(&r2)?);
        assert!(!trio::lowlevel::remove_instrument(&r2)?);
        Ok(())
    })
    .unwrap();
    let events = rec.events();
    let afters = events.iter().filter(|e| *e == "after <root>").count();
    assert_eq!(afters, 1, "{events:?}");
}

// 18, 19.
#[test]
fn instrument_events_come_in_trios_order_for_every_task() {
    let rec = Rc::new(Recorder::default());
    trio::Runner::new()
        .instrument(rec.clone())
        .run(async {
            open_nursery(async |n| {
                n.start_soon(async { Ok(()) });
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
    let events = rec.events();
    let child: Vec<&str> = events
        .iter()
        .filter(|e| e.ends_with(" child"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        child,
        [
            "spawned child",
            "scheduled child",
            "before child",
            "exited child",
            "after child"
        ]
    );
    let root: Vec<&str> = events
        .iter()
        .filter(|e| e.ends_with(" <root>") || e.contains("_run"))
        .map(String::as_str)
        .collect();
    assert_eq!(root.first(), Some(&"before_run"));
    assert_eq!(root.get(1), Some(&"spawned <root>"));
    assert_eq!(root.get(2), Some(&"scheduled <root>"));
    assert_eq!(root.last(), Some(&"after_run"));
    let n = root.len();
    assert_eq!(&root[n - 3..n - 1], ["exited <root>", "after <root>"]);
}

// 19. (system tasks)
#[test]
fn a_system_task_is_reported_spawned_before_scheduled() {
    let rec = Rc::new(Recorder::default());
    trio::Runner::new()
        .instrument(rec.clone())
        .run(async {
            trio::lowlevel::spawn_system_task(async { Ok(()) })?;
            Ok(())
        })
        .unwrap();
    let events = rec.events();
    let child: Vec<&str> = events
        .iter()
        .filter(|e| e.ends_with(" child"))
        .map(String::as_str)
        .take(2)
        .collect();
    assert_eq!(child, ["spawned child", "scheduled child"], "{events:?}");
}

// 14. (instruments) A hook that panics never unwinds through the run loop or
// a nursery: the instrument is removed, the run finishes consistently, and
// `run` resumes the panic at the end.
#[test]
fn a_panicking_instrument_is_removed_and_its_panic_comes_out_of_run() {
    struct PanicsOnce(Cell<bool>);
    impl Instrument for PanicsOnce {
        fn task_exited(&self, _: Task) {
            if !self.0.replace(true) {
                panic!("instrument hook panics");
            }
        }
    }
    let finished = Rc::new(Cell::new(0));
    let f2 = finished.clone();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        trio::Runner::new()
            .clock(MockClock::autojump())
            .instrument(Rc::new(PanicsOnce(Cell::new(false))))
            .run(async move {
                let me = current_task();
                open_nursery(async |n| {
                    for i in 0..3 {
                        let f2 = f2.clone();
                        n.start_soon(async move {
                            trio::sleep(i as f64).await?;
                            f2.set(f2.get() + 1);
                            Ok(())
                        });
                    }
                    Ok(())
                })
                .await?;
                assert_eq!(current_task(), me);
                f2.set(f2.get() + 10);
                Ok(())
            })
    }));
    let payload = caught.expect_err("the hook's panic comes out of run");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"instrument hook panics")
    );
    assert_eq!(finished.get(), 13, "every task ran to completion");
}
