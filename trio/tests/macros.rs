//! `#[trio::test]`, `#[trio::main]`'s sibling, and `testing::run_test`
//! underneath it: clocks, seeds, failure reports, and replaying a schedule.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use trio::testing::{SEED_ENV_VAR, TestOptions, run_test};
use trio::{Error, ErrorKind};

// ----- the attribute ----------------------------------------------------

#[trio::test(autojump)]
async fn autojump_makes_a_30_second_timeout_instant() -> trio::Result<()> {
    let started = std::time::Instant::now();
    let err = trio::fail_after(30.0, trio::sleep_forever())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooSlow);
    assert_eq!(trio::current_time().as_secs_f64(), 30.0);
    assert!(started.elapsed().as_secs() < 10);
    Ok(())
}

#[trio::test(seed = 42)]
async fn seed_option_runs_tasks() -> trio::Result<()> {
    let log = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        for i in 0..3 {
            let log = &log;
            n.start_soon(async move {
                trio::checkpoint().await?;
                log.borrow_mut().push(i);
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    let mut seen = log.into_inner();
    seen.sort();
    assert_eq!(seen, [0, 1, 2]);
    Ok(())
}

#[trio::test(autojump, seed = 7)]
async fn options_combine() -> trio::Result<()> {
    trio::sleep(3600.0).await?;
    assert_eq!(trio::current_time().as_secs_f64(), 3600.0);
    Ok(())
}

#[trio::test(seed = 1, autojump)]
async fn options_in_any_order() {
    trio::sleep(1.0).await.unwrap();
}

const SEED: u64 = 99;

#[trio::test(seed = SEED)]
async fn seed_may_be_a_constant() {
    trio::checkpoint().await.unwrap();
}

#[trio::test]
async fn returning_unit() {
    trio::checkpoint().await.unwrap();
}

#[trio::test]
async fn question_mark_converts_std_errors() -> trio::Result<()> {
    let n: u32 = "17".parse()?;
    assert_eq!(n, 17);
    Ok(())
}

#[trio::test]
async fn early_return_works() -> trio::Result<()> {
    if trio::current_time().as_secs_f64() >= 0.0 {
        return Ok(());
    }
    unreachable!()
}

/// Attributes other than the macro's own stay on the test.
#[trio::test(seed = 5)]
#[should_panic(expected = "rerun with TRIO_SEED=5")]
async fn an_error_fails_the_test_and_names_the_seed() -> trio::Result<()> {
    Err(Error::new(ErrorKind::Other, "boom"))
}

#[trio::test]
#[should_panic(expected = "the original panic")]
async fn a_panic_fails_the_test_with_its_own_payload() {
    trio::checkpoint().await.unwrap();
    panic!("the original panic");
}

#[trio::test(autojump)]
#[should_panic(expected = "a child panicked")]
async fn a_panicking_child_fails_the_test() {
    trio::open_nursery(async |n| {
        n.start_soon(async {
            trio::sleep(1.0).await.unwrap();
            if trio::try_current_time().is_ok() {
                panic!("a child panicked");
            }
        });
        Ok(())
    })
    .await
    .unwrap();
}

// ----- run_test directly ------------------------------------------------

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

#[test]
fn run_test_error_report_contains_error_and_seed() {
    let msg = panic_message(|| {
        run_test(TestOptions::new().seed(1234567), async {
            trio::checkpoint().await?;
            Err::<(), _>(Error::new(ErrorKind::Busy, "the failure"))
        })
    });
    assert!(msg.contains("the failure"), "{msg}");
    assert!(msg.contains("Busy"), "{msg}");
    assert!(
        msg.contains("trio test failed with seed 1234567; rerun with TRIO_SEED=1234567"),
        "{msg}"
    );
}

#[test]
fn run_test_resumes_a_panic_with_its_payload() {
    let msg = panic_message(|| {
        run_test(TestOptions::new().seed(3), async {
            trio::checkpoint().await.unwrap();
            if trio::try_current_time().is_ok() {
                panic!("payload {}", 42);
            }
        })
    });
    assert_eq!(msg, "payload 42");
}

#[test]
fn run_test_passes_and_uses_the_clock() {
    let clock = trio::testing::MockClock::autojump();
    let options = TestOptions::new().clock(clock.clone()).seed(9);
    assert_eq!(options.fixed_seed(), Some(9));
    assert!(options.mock_clock().is_some());
    run_test(options, async {
        trio::sleep(12.5).await?;
        Ok(())
    });
    assert_eq!(clock.current_time().as_secs_f64(), 12.5);
    assert_eq!(TestOptions::new().fixed_seed(), None);
    assert!(TestOptions::new().mock_clock().is_none());
    assert!(TestOptions::new().autojump().mock_clock().is_some());
}

#[test]
fn run_test_reports_a_run_error() {
    // A nested run is a usage error of the runtime: still a failure with a seed.
    let msg = panic_message(|| {
        run_test(TestOptions::new().seed(11), async {
            trio::run(async { Ok(()) })?;
            Ok(())
        })
    });
    assert!(msg.contains("nested"), "{msg}");
    assert!(msg.contains("TRIO_SEED=11"), "{msg}");
}

/// Six tasks each doing five checkpoints (inside nested nurseries for half
/// of them), logging who ran when.
fn interleaving(seed: u64) -> Vec<(u32, u32)> {
    let log = RefCell::new(Vec::new());
    run_test(TestOptions::new().seed(seed), async {
        trio::open_nursery(async |n| {
            for t in 0..6u32 {
                let log = &log;
                n.start_soon(async move {
                    let work = async move {
                        for i in 0..5u32 {
                            log.borrow_mut().push((t, i));
                            trio::checkpoint().await?;
                        }
                        Ok(())
                    };
                    if t % 2 == 0 {
                        work.await
                    } else {
                        trio::open_nursery(async |inner| {
                            inner.start_soon(work);
                            Ok(())
                        })
                        .await
                        .map(drop)
                    }
                });
            }
            Ok(())
        })
        .await?;
        Ok(())
    });
    log.into_inner()
}

#[test]
fn same_seed_same_interleaving() {
    for seed in [0, 1, 7, 1234567, u64::MAX] {
        let first = interleaving(seed);
        assert_eq!(first.len(), 30);
        for _ in 0..3 {
            assert_eq!(interleaving(seed), first, "seed {seed}");
        }
    }
}

#[test]
fn different_seeds_give_different_interleavings() {
    let orders: std::collections::HashSet<_> = (0..20).map(interleaving).collect();
    assert!(
        orders.len() > 1,
        "20 seeds all gave the same interleaving: the seed has no effect"
    );
}

// ----- the TRIO_SEED environment variable, in a child process -----------

/// Set in the child processes below; the probes do nothing without it.
const PROBE_VAR: &str = "TRIO_MACROS_TEST_PROBE";

fn probing() -> bool {
    std::env::var_os(PROBE_VAR).is_some()
}

/// Five tasks doing four checkpoints each; the order in which they ran.
async fn five_tasks() -> trio::Result<Vec<u32>> {
    let log = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        for t in 0..5u32 {
            let log = &log;
            n.start_soon(async move {
                for _ in 0..4 {
                    log.borrow_mut().push(t);
                    trio::checkpoint().await?;
                }
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    Ok(log.into_inner())
}

/// Prints its interleaving, for `env_seed_replays_the_schedule`.
#[trio::test]
async fn probe_print_interleaving() -> trio::Result<()> {
    if !probing() {
        return Ok(());
    }
    println!("ORDER: {:?}", five_tasks().await?);
    Ok(())
}

/// Panics, for `a_panicking_test_names_its_seed`.
#[trio::test]
async fn probe_panic() {
    if probing() {
        panic!("probe panic");
    }
}

/// Fails, for `env_seed_failure_names_the_env_seed`.
#[trio::test]
async fn probe_fail() -> trio::Result<()> {
    if !probing() {
        return Ok(());
    }
    Err(Error::new(ErrorKind::Other, "probe failure"))
}

/// Runs one test of this binary in a child process with `TRIO_SEED` set
/// (or not): (success, stdout + stderr).
fn run_probe(name: &str, seed: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(PROBE_VAR, "1");
    match seed {
        Some(s) => cmd.env(SEED_ENV_VAR, s),
        None => cmd.env_remove(SEED_ENV_VAR),
    };
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn probe_order(seed: Option<&str>) -> String {
    let (ok, text) = run_probe("probe_print_interleaving", seed);
    assert!(ok, "{text}");
    text.lines()
        .find_map(|l| l.split_once("ORDER: "))
        .unwrap_or_else(|| panic!("no ORDER line in {text}"))
        .1
        .to_string()
}

#[test]
fn env_seed_replays_the_schedule() {
    let a = probe_order(Some("123"));
    assert_eq!(probe_order(Some("123")), a);
    // Some other seed gives another order.
    let others: Vec<String> = (0..8).map(|s| probe_order(Some(&s.to_string()))).collect();
    assert!(others.iter().any(|o| *o != a), "{a} / {others:?}");
    // The seed given by attribute (or option) and by environment are the same thing.
    let order = RefCell::new(Vec::new());
    run_test(TestOptions::new().seed(123), async {
        *order.borrow_mut() = five_tasks().await?;
        Ok(())
    });
    assert_eq!(format!("{:?}", order.into_inner()), a);
}

#[test]
fn a_panicking_test_names_its_seed() {
    let (ok, text) = run_probe("probe_panic", Some("4242"));
    assert!(!ok, "{text}");
    let panic_at = text.find("probe panic").expect(&text);
    let seed_at = text
        .find("trio test failed with seed 4242; rerun with TRIO_SEED=4242")
        .expect(&text);
    assert!(panic_at < seed_at, "{text}");
}

#[test]
fn env_seed_failure_names_the_env_seed() {
    let (ok, text) = run_probe("probe_fail", Some("8675309"));
    assert!(!ok, "{text}");
    assert!(text.contains("probe failure"), "{text}");
    assert!(
        text.contains("trio test failed with seed 8675309; rerun with TRIO_SEED=8675309"),
        "{text}"
    );
}

#[test]
fn without_env_seed_a_failure_names_a_random_seed() {
    let (ok, text) = run_probe("probe_fail", None);
    assert!(!ok, "{text}");
    let seed = text
        .split("trio test failed with seed ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no seed in {text}"));
    seed.parse::<u64>().unwrap();
    assert!(
        text.contains(&format!("rerun with TRIO_SEED={seed}")),
        "{text}"
    );
}

#[test]
fn a_bad_env_seed_is_a_clear_failure() {
    let (ok, text) = run_probe("probe_fail", Some("not-a-number"));
    assert!(!ok, "{text}");
    assert!(
        text.contains("TRIO_SEED must be an unsigned 64-bit integer, got \"not-a-number\""),
        "{text}"
    );
}
