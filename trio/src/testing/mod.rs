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
//! - Streams: in-memory byte streams ([`memory_stream_pair`],
//!   [`memory_stream_one_way_pair`] with its [`memory_stream_pump`] and
//!   hooks, [`lockstep_stream_pair`]) and the reusable conformance checks
//!   for any [`stream`](crate::stream) implementation
//!   ([`check_one_way_stream`], [`check_two_way_stream`],
//!   [`check_half_closeable_stream`]).
//!
//! # Stream conformance checks
//!
//! [`check_one_way_stream`], [`check_two_way_stream`] and
//! [`check_half_closeable_stream`] check any implementation of the
//! [`stream`](crate::stream) traits, yours too, against their contract
//! (Trio's `_check_streams.py`).
//!
//! Each check takes *stream makers*: async functions or closures that
//! return a fresh connected pair, `(sender, receiver)` for a one-way stream,
//! two ends for a two-way one. A check makes several pairs, drives each
//! through one scenario of the [stream contract](crate::stream), and closes
//! both ends forcefully after it. The optional *clogged* maker returns a
//! pair whose `send_all` and `wait_send_all_might_not_block` block until
//! the other end receives ([`lockstep_stream_pair`] is one); it enables the
//! scenarios about blocked senders. Without one, pass
//! [`no_clogged_stream_maker()`].
//!
//! What is checked, as in Trio's `_check_streams.py`:
//!
//! - every successful operation is a checkpoint ([`assert_checkpoints`]);
//! - an empty receive buffer is `InvalidArgument`; empty sends are allowed;
//! - concurrent use of one direction is `Busy`;
//! - a closed receiver makes the sender `Broken`, and it stays `Broken`;
//! - after its own close, an end gets `Closed`; closing is idempotent, and a
//!   close wakes a blocked operation with `Closed`;
//! - a graceful close delivers the data, then end of stream; a forceful
//!   close gives the peer end of stream or `Broken`, never data or a hang;
//! - a cancelled `aclose` still closes; a stream can be closed gracefully
//!   after cancelled operations;
//! - `wait_send_all_might_not_block` wakes when the receiver drains;
//! - two-way: both directions, and 1 MiB each way at once in random-sized
//!   pieces, arriving intact;
//! - half-close: `send_eof` delivers end of stream, is idempotent, forbids
//!   later sends, leaves the other direction working, and shares the send
//!   slot (`Busy`).
//!
//! ## Failure
//!
//! A violated expectation **panics** with a message that says what was
//! expected (as `assert!` and [`assert_checkpoints`] do); an error the
//! stream returns where none was expected is returned as the check's `Err`.
//! In a test, `check_…(…).await.unwrap()` turns both into a failure.

mod check_streams;
mod checkpoints;
mod memory_streams;
mod mock_clock;
mod run_test;
mod sequencer;

pub use crate::core::park::{wait_all_tasks_blocked, wait_all_tasks_blocked_with_cushion};
pub use check_streams::{
    NoStreamMaker, check_half_closeable_stream, check_one_way_stream, check_two_way_stream,
    no_clogged_stream_maker,
};
pub use checkpoints::{
    MeasureCheckpoints, Outcome, assert_checkpoints, assert_no_checkpoints, measure_checkpoints,
};
pub use memory_streams::{
    LockstepReceiveStream, LockstepSendStream, LockstepStream, MemoryReceiveStream,
    MemorySendStream, MemoryStream, lockstep_stream_one_way_pair, lockstep_stream_pair,
    memory_stream_one_way_pair, memory_stream_pair, memory_stream_pump,
};
pub use mock_clock::MockClock;
pub use run_test::{SEED_ENV_VAR, TestOptions, run_test};
pub use sequencer::{Sequencer, StepGuard};
