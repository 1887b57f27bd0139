//! Property tests of the public API's inputs: every number a caller can
//! pass (durations, instants, capacities, clock parameters, cushions) either
//! works as documented or is refused with a typed error; nothing panics
//! inside the runtime and nothing hangs.
//!
//! # Design
//!
//! Numbers come from strategies that mix proptest's full ranges (`any::<f64>()`
//! includes NaN, ±∞, subnormals, ±0) with the edges that matter here: the
//! limits of `Duration`, the ±292-year range of `Instant` (i64
//! nanoseconds), `usize::MAX` capacities. Runs use an autojumping
//! `MockClock`, so a sleep of a million virtual seconds takes no time; any
//! sleep or timeout of unbounded length is itself wrapped in a
//! [`CAP`]-second `move_on_after`, so "forever" is observable as "still
//! waiting at `CAP`". Each case's run happens on a fresh thread under a
//! real-time watchdog ([`watched`]): a hang fails the case instead of the
//! whole test binary, and after one hang later cases fail fast (each hung
//! run leaves a thread behind).
//!
//! What "works" means is written next to each property. Values a run cannot
//! represent (past ±292 years) saturate to ±∞ where the API says so.
//!
//! # Running
//!
//! `cargo test -p trio --test input_props` (a few seconds; 64 cases per
//! property). `PROPTEST_CASES=2000` runs more; a failure prints the input,
//! shrunk, and proptest's seed. No regression files are written.

use proptest::prelude::*;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use trio::sync::{CapacityLimiter, Semaphore};
use trio::testing::MockClock;
use trio::{CancelScope, ErrorKind, Instant, Runner, TryIntoDuration};

/// Virtual seconds after which a wait counts as "forever".
const CAP: f64 = 1e6;

/// Real time after which a case counts as hung.
const WATCHDOG: Duration = Duration::from_secs(10);

static HUNG: AtomicBool = AtomicBool::new(false);

/// Runs `f` on a fresh thread and returns its result; panics (failing the
/// case) if it takes longer than [`WATCHDOG`] or panics itself.
fn watched<T: Send + 'static>(what: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    assert!(
        !HUNG.load(Ordering::Relaxed),
        "{what}: not run, an earlier case hung (see its message)"
    );
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            HUNG.store(true, Ordering::Relaxed);
            panic!("{what}: hung (no result after {WATCHDOG:?} of real time)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => panic!("{what}: the run's thread ended without a result"),
        },
    }
}

/// A run on an autojumping MockClock, returning the virtual time it ended at.
fn mock_run<T>(f: impl Future<Output = trio::Result<T>>) -> (trio::Result<T>, f64) {
    let clock = MockClock::autojump();
    let r = Runner::new().clock(clock.clone()).run(f);
    (r, clock.current_time().as_secs_f64())
}

/// The message of a caught panic ("" if there was none).
fn panic_text<T>(r: &std::thread::Result<T>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "<non-string payload>".into()),
    }
}

fn now() -> f64 {
    trio::current_time().as_secs_f64()
}

/// Any f64, with the special values made frequent.
fn any_secs() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        2 => 0.0..10.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
        1 => Just(f64::MIN_POSITIVE / 4.0), // subnormal
        1 => Just(f64::MAX),
        1 => Just(-1e-9),
        1 => Just(1e10),                    // past ±292 years in nanoseconds
        1 => Just(9.3e9),                   // just past i64::MAX nanoseconds
        1 => Just(u64::MAX as f64),         // past Duration's range
    ]
}

/// Any `Duration`, with its extremes.
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (any::<u64>(), 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
        3 => (0..100u64, 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n)),
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
        1 => Just(Duration::from_nanos(1)),
        1 => Just(Duration::from_nanos(i64::MAX as u64)),
    ]
}

/// Any instant as nanoseconds, with ±∞ and the values next to them.
fn any_nanos() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => any::<i64>(),
        3 => -5_000_000_000..5_000_000_000i64,
        1 => Just(i64::MIN),
        1 => Just(i64::MIN + 1),
        1 => Just(i64::MAX),
        1 => Just(i64::MAX - 1),
        1 => Just(0i64),
    ]
}

fn any_capacity() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 0..10usize,
        2 => any::<usize>(),
        1 => Just(usize::MAX),
        1 => Just(usize::MAX - 1),
    ]
}

/// What a valid f64 duration should become (`None`: refused).
fn expected_duration(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        None
    } else {
        Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    }
}

/// Where a sleep of `d` from 0 ends on a MockClock, if before [`CAP`].
fn ends_before_cap(d: Duration) -> Option<f64> {
    (d.as_secs_f64() < CAP).then(|| Instant::from_nanos(d.as_nanos() as i64).as_secs_f64())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// f64 seconds: NaN and negatives are InvalidArgument; +∞ and anything
    /// past `Duration::MAX` is `Duration::MAX` (forever); the rest convert.
    #[test]
    fn f64_durations_convert_or_are_refused(secs in any_secs()) {
        match (secs.try_into_duration(), expected_duration(secs)) {
            (Ok(d), Some(want)) => prop_assert_eq!(d, want),
            (Err(e), None) => prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument),
            (got, want) => prop_assert!(false, "{secs}: got {got:?}, want {want:?}"),
        }
        let f = secs as f32;
        match (f.try_into_duration(), expected_duration(f as f64)) {
            (Ok(d), Some(want)) => prop_assert_eq!(d, want),
            (Err(e), None) => prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument),
            (got, want) => prop_assert!(false, "{f}f32: got {got:?}, want {want:?}"),
        }
    }

    /// `sleep(secs)`: refused with InvalidArgument, or sleeps exactly its
    /// duration (saturating at +∞, i.e. forever: still asleep at CAP).
    #[test]
    fn sleep_takes_its_duration_or_is_refused(secs in any_secs()) {
        let (r, end) = watched(format!("sleep({secs})"), move || {
            mock_run(trio::move_on_after(CAP, trio::sleep(secs)))
        });
        match expected_duration(secs) {
            None => prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument),
            Some(d) => match ends_before_cap(d) {
                Some(at) => {
                    prop_assert_eq!(r.unwrap(), Some(()));
                    prop_assert_eq!(end, at);
                }
                None => {
                    prop_assert_eq!(r.unwrap(), None);
                    prop_assert_eq!(end, CAP);
                }
            },
        }
    }

    /// `sleep(Duration)` never fails and sleeps exactly that long.
    #[test]
    fn sleep_takes_any_std_duration(d in any_duration()) {
        let (r, end) = watched(format!("sleep({d:?})"), move || {
            mock_run(trio::move_on_after(CAP, trio::sleep(d)))
        });
        let r = r.unwrap();
        match ends_before_cap(d) {
            Some(at) => {
                prop_assert_eq!(r, Some(()));
                prop_assert_eq!(end, at);
            }
            None => {
                prop_assert_eq!(r, None);
                prop_assert_eq!(end, CAP);
            }
        }
    }

    /// `move_on_after(secs)` and `fail_after(secs)` around a task that never
    /// finishes: refused, or they fire exactly at `secs` (never, for +∞).
    #[test]
    fn timeouts_fire_at_their_duration_or_are_refused(secs in any_secs(), fail in any::<bool>()) {
        let (r, end) = watched(format!("timeout({secs}), fail_after: {fail}"), move || {
            mock_run(trio::move_on_after(CAP, async move {
                if fail {
                    match trio::fail_after(secs, trio::sleep_forever()).await {
                        Err(e) if e.kind() == ErrorKind::TooSlow => Ok(true),
                        Err(e) => Err(e),
                        Ok(()) => Ok(false),
                    }
                } else {
                    Ok(trio::move_on_after(secs, trio::sleep_forever()).await?.is_none())
                }
            }))
        });
        match expected_duration(secs) {
            None => prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument),
            Some(d) => match ends_before_cap(d) {
                Some(at) => {
                    prop_assert_eq!(r.unwrap(), Some(true), "timed out");
                    prop_assert_eq!(end, at);
                }
                None => {
                    prop_assert_eq!(r.unwrap(), None);
                    prop_assert_eq!(end, CAP);
                }
            },
        }
    }

    /// A `CancelScope` with any absolute deadline, set before entry or
    /// while running: a deadline at or before now (including −∞) cancels at
    /// once, a later one at that time, +∞ never. The scope catches its own
    /// cancellation, and `current_effective_deadline` reports the deadline.
    #[test]
    fn cancel_scope_deadlines_of_any_instant(nanos in any_nanos(), while_running in any::<bool>()) {
        let (r, end) = watched(format!("CancelScope deadline {nanos}ns (set while running: {while_running})"), move || {
            mock_run(trio::move_on_after(CAP, async move {
                let deadline = Instant::from_nanos(nanos);
                let scope = if while_running { CancelScope::new() } else { CancelScope::new().with_deadline(deadline) };
                let s2 = scope.clone();
                let out = scope
                    .run(async move {
                        if while_running {
                            s2.set_deadline(deadline);
                        }
                        // The outer CAP scope counts too: the earliest wins.
                        let eff = trio::current_effective_deadline();
                        let want = if deadline <= trio::current_time() {
                            Instant::NEG_INFINITY
                        } else {
                            deadline.min(Instant::from_secs_f64(CAP))
                        };
                        if eff != want {
                            return Err(trio::Error::new(ErrorKind::Other, format!("effective deadline {eff}, want {want}")));
                        }
                        trio::sleep_forever().await
                    })
                    .await?;
                Ok((out.is_none(), scope.cancelled_caught(), now()))
            }))
        });
        let r = r.unwrap();
        if nanos <= 0 {
            prop_assert_eq!(r, Some((true, true, 0.0)));
        } else if (nanos as f64) / 1e9 < CAP {
            prop_assert_eq!(r, Some((true, true, nanos as f64 / 1e9)));
        } else {
            prop_assert_eq!(r, None);
            prop_assert_eq!(end, CAP);
        }
    }

    /// A relative deadline: refused, or fires that long after entry.
    #[test]
    fn cancel_scope_relative_deadlines(secs in any_secs()) {
        let (r, end) = watched(format!("relative deadline {secs}"), move || {
            mock_run(trio::move_on_after(CAP, async move {
                let scope = CancelScope::new().with_relative_deadline(secs)?;
                Ok(scope.run(trio::sleep_forever()).await?.is_none())
            }))
        });
        match expected_duration(secs) {
            None => prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument),
            Some(d) => match ends_before_cap(d) {
                Some(at) => {
                    prop_assert_eq!(r.unwrap(), Some(true));
                    prop_assert_eq!(end, at);
                }
                None => prop_assert_eq!(r.unwrap(), None),
            },
        }
    }

    /// `sleep_until(t)`: returns at once if `t` is not in the future, at
    /// `t` otherwise, never for +∞. (−∞ itself: see
    /// `sleep_until_negative_infinity_returns_at_once`, which needs its own
    /// watchdog.)
    #[test]
    fn sleep_until_any_instant(nanos in any_nanos().prop_filter("−∞ has its own test", |n| *n != i64::MIN), start in 0..3u64) {
        let (r, end) = watched(format!("sleep_until({nanos}ns) from {start}s"), move || {
            mock_run(trio::move_on_after(CAP, async move {
                trio::sleep(start as f64).await?;
                trio::sleep_until(Instant::from_nanos(nanos)).await?;
                Ok(now())
            }))
        });
        let start = start as f64;
        let at = nanos as f64 / 1e9;
        if at <= start {
            prop_assert_eq!(r.unwrap(), Some(start));
        } else if at < CAP {
            prop_assert_eq!(r.unwrap(), Some(at));
        } else {
            prop_assert_eq!(r.unwrap(), None);
            prop_assert_eq!(end, CAP);
        }
    }

    /// Instants from any f64 other than NaN: ±∞ and values past ±292 years
    /// saturate, the rest round to the nanosecond; the mapping is monotonic.
    /// Arithmetic with any Duration saturates instead of overflowing.
    #[test]
    fn instants_from_any_f64_and_arithmetic(a in any_secs().prop_filter("NaN has its own test", |x| !x.is_nan()),
                                            b in any_secs().prop_filter("NaN has its own test", |x| !x.is_nan()),
                                            d in any_duration()) {
        let (ta, tb) = (Instant::from_secs_f64(a), Instant::from_secs_f64(b));
        if a <= b {
            prop_assert!(ta <= tb, "{a} -> {ta}, {b} -> {tb}");
        }
        if a.abs() < 1e9 {
            prop_assert!((ta.as_secs_f64() - a).abs() <= 1e-9 * a.abs().max(1.0), "{a} -> {ta}");
        }
        if a == f64::INFINITY {
            prop_assert_eq!(ta, Instant::INFINITY);
        }
        if a == f64::NEG_INFINITY {
            prop_assert_eq!(ta, Instant::NEG_INFINITY);
        }
        let up = ta + d;
        let down = ta - d;
        prop_assert!(up >= ta && down <= ta);
        if !ta.is_finite() {
            prop_assert_eq!(up, ta);
            prop_assert_eq!(down, ta);
        }
        let _ = tb.saturating_duration_since(ta);
        let _ = ta.saturating_duration_since(tb);
    }

    /// A channel of any capacity: `statistics` reports it; `try_send`
    /// buffers up to it (checked up to 8 values), then says WouldBlock and
    /// hands the value back; the values come out in order.
    #[test]
    fn channels_of_any_capacity(cap in any_capacity()) {
        let (tx, rx) = trio::open_memory_channel::<u32>(cap);
        prop_assert_eq!(tx.statistics().max_buffer_size, cap);
        let fits = cap.min(8);
        for i in 0..fits as u32 {
            prop_assert!(tx.try_send(i).is_ok());
        }
        if cap < 8 {
            let e = tx.try_send(99).unwrap_err();
            prop_assert_eq!(e.kind(), ErrorKind::WouldBlock);
            prop_assert_eq!(e.into_inner(), 99);
        }
        for i in 0..fits as u32 {
            prop_assert_eq!(rx.try_receive().unwrap(), i);
        }
    }

    /// A semaphore with any initial value (and maybe a maximum): a release
    /// past the maximum (`usize::MAX` when unbounded) is a typed error that
    /// changes nothing; otherwise it adds one. `with_max` refuses
    /// `initial > max`.
    #[test]
    fn semaphores_of_any_size(initial in any_capacity(), max in proptest::option::of(any_capacity())) {
        let sem = match max {
            None => Semaphore::new(initial),
            Some(m) => match Semaphore::with_max(initial, m) {
                Ok(s) => {
                    prop_assert!(initial <= m);
                    s
                }
                Err(e) => {
                    prop_assert!(initial > m);
                    prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                    return Ok(());
                }
            },
        };
        prop_assert_eq!(sem.value(), initial);
        let limit = max.unwrap_or(usize::MAX);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sem.release()));
        prop_assert!(r.is_ok(), "Semaphore(initial {}, max {:?}).release() panicked: {}", initial, max, panic_text(&r));
        match r.unwrap() {
            Ok(()) => {
                prop_assert!(initial < limit, "release past the maximum {} was accepted: value now {}", limit, sem.value());
                prop_assert_eq!(sem.value(), initial + 1);
            }
            Err(e) => {
                prop_assert_eq!(initial, limit);
                prop_assert!(matches!(e.kind(), ErrorKind::Usage | ErrorKind::InvalidArgument));
                prop_assert_eq!(sem.value(), initial);
            }
        }
    }

    /// A limiter with any total, changed to any total: 0 is refused (and
    /// changes nothing), anything else is taken; tokens can be borrowed up
    /// to it.
    #[test]
    fn limiters_of_any_size(total in any_capacity(), next in any_capacity()) {
        let (r, _) = watched(format!("CapacityLimiter {total} -> {next}"), move || {
            mock_run(async move {
                let lim = match CapacityLimiter::new(total) {
                    Ok(l) => l,
                    Err(e) => return Ok(Err((e.kind(), total))),
                };
                if lim.total_tokens() != total {
                    return Ok(Err((ErrorKind::Other, lim.total_tokens())));
                }
                let before = lim.total_tokens();
                match lim.set_total_tokens(next) {
                    Err(e) if lim.total_tokens() != before => return Ok(Err((e.kind(), usize::MAX))),
                    Err(e) => return Ok(Err((e.kind(), next))),
                    Ok(()) => {}
                }
                let g = lim.acquire().await?;
                let borrowed = lim.borrowed_tokens();
                drop(g);
                Ok(Ok((lim.total_tokens(), borrowed, lim.borrowed_tokens())))
            })
        });
        match r.unwrap() {
            Ok(got) => {
                prop_assert!(total > 0 && next > 0);
                prop_assert_eq!(got, (next, 1, 0));
            }
            Err((kind, n)) => {
                prop_assert_eq!(kind, ErrorKind::InvalidArgument, "for {}", n);
                prop_assert_eq!(n, 0, "refused a non-zero total, or changed the total on refusal");
            }
        }
    }

    /// `MockClock::set_rate`: accepted rates are kept and the clock keeps
    /// reading a finite, non-decreasing time afterwards (it is read again
    /// after a little real time); refused ones are InvalidArgument and
    /// change nothing.
    #[test]
    fn mock_clock_rates(rate in prop_oneof![any_secs(), Just(1e300), Just(1e6), Just(1e7)]) {
        let clock = MockClock::new();
        let before = clock.current_time();
        match clock.set_rate(rate) {
            Ok(()) => {
                prop_assert_eq!(clock.rate(), rate);
                std::thread::sleep(Duration::from_millis(1));
                let later = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| clock.current_time()));
                prop_assert!(later.is_ok(), "set_rate({:e}) was accepted, then current_time() panicked: {}", rate, panic_text(&later));
                let later = later.unwrap();
                prop_assert!(later.is_finite() && later >= before, "set_rate({:e}) then time {}", rate, later);
            }
            Err(e) => {
                prop_assert!(!(0.0..=1e6).contains(&rate), "refused rate {:e}: {:?}", rate, e);
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                prop_assert_eq!(clock.rate(), 0.0);
            }
        }
    }

    /// `MockClock::jump`: refused (InvalidArgument, time unchanged), or the
    /// clock moves by exactly that much and still reads a finite time (a
    /// clock at +∞ would turn every later deadline off).
    #[test]
    fn mock_clock_jumps(first in 0.0..1e9f64, secs in any_secs()) {
        let clock = MockClock::new();
        clock.jump(first).unwrap();
        let before = clock.current_time();
        match clock.jump(secs) {
            Ok(()) => {
                let d = expected_duration(secs);
                prop_assert!(d.is_some(), "jump({:e}) accepted", secs);
                let now = clock.current_time();
                prop_assert!(now.is_finite(), "jump({:e}) from {} accepted: the clock now reads {}", secs, before, now);
                prop_assert_eq!(now, before + d.unwrap());
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
                prop_assert_eq!(clock.current_time(), before);
            }
        }
    }

    /// `set_autojump_threshold`: refused like a duration; +∞ turns
    /// autojump off; a small threshold lets a long sleep end at once.
    #[test]
    fn mock_clock_autojump_thresholds(secs in any_secs()) {
        let clock = MockClock::new();
        match (clock.set_autojump_threshold(secs), expected_duration(secs)) {
            (Err(e), None) => prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument),
            (Ok(()), Some(Duration::MAX)) => prop_assert_eq!(clock.autojump_threshold(), None),
            (Ok(()), Some(d)) => {
                prop_assert_eq!(clock.autojump_threshold(), Some(d));
                if d <= Duration::from_millis(2) {
                    let r = watched(format!("autojump threshold {secs}"), move || {
                        let clock = MockClock::new();
                        clock.set_autojump_threshold(d).unwrap();
                        Runner::new().clock(clock).run(trio::sleep(1000.0))
                    });
                    prop_assert!(r.is_ok());
                }
            }
            (got, want) => prop_assert!(false, "{secs}: got {got:?}, want {want:?}"),
        }
    }

    /// `wait_all_tasks_blocked_with_cushion(cushion)`: refused like a duration; a small
    /// one returns once the other task is blocked. (Huge cushions: see
    /// `a_huge_cushion_waits_and_can_be_cancelled`.)
    #[test]
    fn wait_all_tasks_blocked_cushions(secs in prop_oneof![any_secs(), 0.0..0.002f64]) {
        let valid = expected_duration(secs);
        if valid.is_some_and(|d| d > Duration::from_millis(2)) {
            return Ok(());
        }
        let (r, _) = watched(format!("wait_all_tasks_blocked_with_cushion({secs})"), move || {
            mock_run(trio::open_nursery(async |n| {
                n.start_soon(trio::sleep(5.0));
                trio::testing::wait_all_tasks_blocked_with_cushion(secs).await?;
                let at = now();
                n.cancel_scope().cancel();
                Ok(at)
            }))
        });
        match valid {
            None => prop_assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument),
            Some(_) => prop_assert_eq!(r.unwrap(), Some(0.0)),
        }
    }
}

/// `sleep_until(−∞)`: the deadline has passed, so it returns at once.
#[test]
fn sleep_until_negative_infinity_returns_at_once() {
    let (r, end) = watched("sleep_until(Instant::NEG_INFINITY)".into(), || {
        mock_run(trio::sleep_until(Instant::NEG_INFINITY))
    });
    assert!(
        r.is_ok(),
        "sleep_until(Instant::NEG_INFINITY) did not return: {r:?}"
    );
    assert_eq!(end, 0.0);
}

/// NaN names no instant: `Instant::from_secs_f64(NaN)` must not quietly
/// give one (a panic that says so is allowed: it is a bug in the caller's
/// arithmetic, DESIGN §4).
#[test]
fn instant_from_nan_is_not_a_silent_instant() {
    let r = std::panic::catch_unwind(|| Instant::from_secs_f64(f64::NAN));
    if let Ok(t) = r {
        panic!("Instant::from_secs_f64(NaN) returned {t} instead of refusing");
    }
}

thread_local! {
    static WAITER: std::cell::RefCell<Option<CancelScope>> = const { std::cell::RefCell::new(None) };
}

/// A cushion of any size (up to `Duration::MAX`) blocks without panicking
/// and can still be cancelled; here from another thread through the run's
/// token, after 50 ms of real time.
#[test]
fn a_huge_cushion_waits_and_can_be_cancelled() {
    for cushion in [1e9, 1e300, f64::INFINITY] {
        let (r, _) = watched(
            format!("wait_all_tasks_blocked_with_cushion({cushion})"),
            move || {
                mock_run(async move {
                    let token = trio::lowlevel::current_trio_token()?;
                    let scope = CancelScope::new();
                    WAITER.with(|w| *w.borrow_mut() = Some(scope.clone()));
                    std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(50));
                        let _ = token.run_sync_soon(|| {
                            WAITER.with(|w| {
                                if let Some(s) = w.borrow().as_ref() {
                                    s.cancel();
                                }
                            })
                        });
                    });
                    let out = scope
                        .run(trio::testing::wait_all_tasks_blocked_with_cushion(cushion))
                        .await?;
                    Ok(out.is_none())
                })
            },
        );
        assert!(r.unwrap(), "cushion {cushion}: the wait was not cancelled");
    }
}
