//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use trio::testing::MockClock;

/// Runs `f` on a MockClock with autojump (threshold 0).
pub fn mock_run<T>(f: impl Future<Output = trio::Result<T>>) -> trio::Result<T> {
    trio::Runner::new().clock(MockClock::autojump()).run(f)
}

/// Runs `f` on an autojumping MockClock and unwraps its result.
pub fn run_autojump<T>(f: impl Future<Output = trio::Result<T>>) -> T {
    mock_run(f).unwrap()
}

/// Waits until every other task is blocked.
pub async fn settle() {
    trio::testing::wait_all_tasks_blocked().await.unwrap();
}

/// The run's clock in seconds.
pub fn now() -> f64 {
    trio::current_time().as_secs_f64()
}

/// An ordered record of events, shared by borrowing.
#[derive(Default)]
pub struct Log(RefCell<Vec<String>>);

impl Log {
    pub fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// `python3`, for tests that talk to peers this project did not write; or
/// `None` (the caller skips, saying so) when it is not installed. With
/// `TRIO_REQUIRE_TOOLS=1` (`.ci/run` sets it) a missing python3 is a
/// failure instead: CI must not pass by skipping.
pub fn python() -> Option<std::process::Command> {
    let found = std::process::Command::new("python3")
        .args(["-c", "pass"])
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var_os("TRIO_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
        panic!("python3 is required (TRIO_REQUIRE_TOOLS=1) but is not installed");
    }
    found.then(|| std::process::Command::new("python3"))
}
