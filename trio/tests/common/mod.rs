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

/// A trio stream on one end of a Unix socket pair, and a thread that reads
/// the other end to its end (so sends never fill it up).
pub fn drained_stream() -> (trio::socket::SocketStream, std::thread::JoinHandle<usize>) {
    use std::io::Read;
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let ours = trio::socket::Socket::try_from(ours).unwrap();
    let reader = std::thread::spawn(move || {
        let mut total = 0;
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = theirs.read(&mut buf) {
            total += n;
        }
        total
    });
    (trio::socket::SocketStream::new(ours).unwrap(), reader)
}
