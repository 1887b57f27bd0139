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
