//! Running one test on a fresh run: the run-time side of `#[trio::test]`.
//!
//! # Design
//!
//! [`run_test`] owns everything a test run needs, so the attribute macro
//! only builds a [`TestOptions`] and passes the body's future:
//!
//! - the clock: a [`MockClock`] with autojump if asked, else the system clock;
//! - the scheduling seed ([`Runner::seed`]): the one in the options, else
//!   the environment variable [`SEED_ENV_VAR`] (`TRIO_SEED`), else a fresh
//!   random one. Every test runs with *some* seed, so every schedule can be
//!   replayed;
//! - the failure report: a test that returns an error or panics names its
//!   seed, so it can be re-run with exactly the same schedule.
//!
//! # Invariants
//!
//! - The same seed, the same clock option and the same (deterministic)
//!   test body give the same schedule, run after run.
//! - A failure always fails the test: an error becomes a panic whose
//!   message holds the error and the seed; a panic is reported with the seed
//!   on stderr and then resumed with its original payload (so
//!   `#[should_panic(expected = ...)]` keeps working).
//! - Bad input (`TRIO_SEED` not a number) fails the test with a clear
//!   message rather than silently using another seed.

use crate::core::run::Runner;
use crate::error::TaskResult;
use crate::testing::MockClock;
use std::future::Future;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that gives the scheduling seed of tests that do
/// not fix one: `TRIO_SEED=1234 cargo test` replays the schedule that a
/// failing test reported.
pub const SEED_ENV_VAR: &str = "TRIO_SEED";

/// How [`run_test`] runs a test: its clock and its scheduling seed.
///
/// ```
/// use trio::testing::{TestOptions, run_test};
/// run_test(TestOptions::new().autojump().seed(42), async {
///     trio::sleep(60.0).await?; // a minute of virtual time, at once
///     Ok(())
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    clock: Option<MockClock>,
    seed: Option<u64>,
}

impl TestOptions {
    /// The defaults: the system clock, and the seed from [`SEED_ENV_VAR`] or
    /// a random one.
    pub fn new() -> Self {
        TestOptions::default()
    }

    /// Runs on a [`MockClock::autojump`] clock: sleeps and timeouts take no
    /// real time (`#[trio::test(autojump)]`).
    pub fn autojump(self) -> Self {
        self.clock(MockClock::autojump())
    }

    /// Runs on this mock clock (keep a clone to steer it from the test).
    pub fn clock(mut self, clock: MockClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Fixes the scheduling seed (`#[trio::test(seed = 42)]`); this takes
    /// precedence over [`SEED_ENV_VAR`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The seed fixed with [`seed`](Self::seed), if any.
    pub fn fixed_seed(&self) -> Option<u64> {
        self.seed
    }

    /// The mock clock the test will run on, if any.
    pub fn mock_clock(&self) -> Option<&MockClock> {
        self.clock.as_ref()
    }
}

/// Runs one test body on a fresh run, as `#[trio::test]` does, and fails
/// (panics) if the body returns an error or panics.
///
/// The body returns `()` or `trio::Result<()>`. The run uses the options'
/// clock and a scheduling seed: the options' seed, else the value of
/// [`SEED_ENV_VAR`] (`TRIO_SEED`), else a random one. On failure the seed is
/// reported as `trio test failed with seed N; rerun with TRIO_SEED=N`: in
/// the panic message for an error, on stderr before the original panic is
/// resumed for a panic. Running again with that seed, by option or by
/// environment, replays the same schedule.
///
/// Panics (failing the test) if `TRIO_SEED` is set but is not an unsigned
/// 64-bit integer.
///
/// ```
/// use trio::testing::{TestOptions, run_test};
/// let failure = std::panic::catch_unwind(|| {
///     run_test(TestOptions::new().seed(1234), async {
///         Err::<(), _>(trio::Error::new(trio::ErrorKind::Other, "boom"))
///     })
/// })
/// .unwrap_err();
/// let message = failure.downcast_ref::<String>().unwrap();
/// assert!(message.contains("boom"));
/// assert!(message.contains("rerun with TRIO_SEED=1234"));
/// ```
pub fn run_test<F>(options: TestOptions, fut: F)
where
    F: Future,
    F::Output: TaskResult,
{
    let seed = match options.seed {
        Some(seed) => seed,
        None => match seed_from_env() {
            Ok(Some(seed)) => seed,
            Ok(None) => random_seed(),
            Err(message) => panic!("{message}"),
        },
    };
    let mut runner = Runner::new().seed(seed);
    if let Some(clock) = options.clock {
        runner = runner.clock(clock);
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        runner.run(async { fut.await.into_task_result() })
    }));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("Error: {error:?}\n{}", failure_line(seed)),
        Err(payload) => {
            eprintln!("{}", failure_line(seed));
            resume_unwind(payload)
        }
    }
}

/// The line that names a failed test's seed.
fn failure_line(seed: u64) -> String {
    format!("trio test failed with seed {seed}; rerun with {SEED_ENV_VAR}={seed}")
}

/// The seed from [`SEED_ENV_VAR`]: `Ok(None)` if unset, an error message if
/// set to something that is not a `u64`.
fn seed_from_env() -> Result<Option<u64>, String> {
    match std::env::var(SEED_ENV_VAR) {
        Ok(v) => {
            v.trim().parse::<u64>().map(Some).map_err(|_| {
                format!("{SEED_ENV_VAR} must be an unsigned 64-bit integer, got {v:?}")
            })
        }
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(format!(
            "{SEED_ENV_VAR} must be an unsigned 64-bit integer, got {v:?}"
        )),
    }
}

/// A fresh seed from std alone: a randomly keyed hash of a process-wide
/// counter, the time and the process id.
fn random_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    COUNTER.fetch_add(1, Ordering::Relaxed).hash(&mut h);
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .hash(&mut h);
    std::process::id().hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_seeds_differ() {
        let a = random_seed();
        let b = random_seed();
        assert_ne!(a, b);
    }

    #[test]
    fn failure_line_names_the_seed() {
        assert_eq!(
            failure_line(7),
            "trio test failed with seed 7; rerun with TRIO_SEED=7"
        );
    }
}
