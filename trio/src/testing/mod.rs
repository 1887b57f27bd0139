//! Tools for testing code that uses `trio` (Trio's `trio.testing`).
//!
//! - Running tests: the [`#[trio::test]`](crate::test) attribute, and
//!   [`run_test`] with [`TestOptions`] underneath it: a fresh run per test,
//!   optionally on an autojumping [`MockClock`], always with a scheduling
//!   seed that a failure reports so the schedule can be replayed.
//! - Time: [`MockClock`], a virtual clock that can skip idle time.
//! - Ordering: [`wait_all_tasks_blocked`] (wait until every other task is
//!   blocked; [`wait_all_tasks_blocked_with_cushion`] for a while) and
//!   [`Sequencer`] (force steps in several tasks to happen in
//!   a given order).
//! - Checkpoints: [`assert_checkpoints`], [`assert_no_checkpoints`] and
//!   [`measure_checkpoints`].
//!
//! Not here yet: the memory streams and stream conformance checks of
//! Trio's `trio.testing` (`memory_stream_pair`, `lockstep_stream_pair`,
//! `check_*_stream`) wait for the stream traits.

mod checkpoints;
mod mock_clock;
mod run_test;
mod sequencer;

pub use crate::core::park::{wait_all_tasks_blocked, wait_all_tasks_blocked_with_cushion};
pub use checkpoints::{
    MeasureCheckpoints, Outcome, assert_checkpoints, assert_no_checkpoints, measure_checkpoints,
};
pub use mock_clock::MockClock;
pub use run_test::{SEED_ENV_VAR, TestOptions, run_test};
pub use sequencer::{Sequencer, StepGuard};
