//! Asserting that code checkpoints, or does not (Trio's
//! `assert_checkpoints()` / `assert_no_checkpoints()`).
//!
//! # Design
//!
//! [`measure_checkpoints`] wraps a future and, from its first poll, counts
//! the checkpoints of the task polling it with a
//! [`CheckpointWatch`](crate::lowlevel::CheckpointWatch): per task, as Trio
//! counts, so checkpoints of other tasks (including children of a nursery
//! the wrapped code opens) never count. The two assertions are built on it
//! and follow Trio's `_assert_yields_or_not` exactly:
//!
//! - [`assert_checkpoints`]: if the code *completes normally* it must have
//!   done at least one schedule point **and** at least one cancel point;
//!   if it ends in an error (a `Cancelled`, say) nothing is checked, as in
//!   Trio, where the check is skipped when the block raises.
//! - [`assert_no_checkpoints`]: the code must do neither a schedule point nor
//!   a cancel point, however it ends.
//!
//! What counts, per the runtime's accounting:
//!
//! | code | schedule | cancel | `assert_checkpoints` |
//! |---|---|---|---|
//! | `checkpoint()`, `sleep(0)`, any blocking call | 1 | 1 | passes |
//! | `cancel_shielded_checkpoint()` | 1 | 0 | fails |
//! | exiting a nursery (nothing else) | 1 | 0 | fails |
//! | `checkpoint_if_cancelled()` (not cancelled) | 0 | 1 | fails |
//! | synchronous code, opening a nursery | 0 | 0 | fails |
//! | a socket operation that succeeded at once, dropped before its result was taken | 1 | 1 | passes |
//!
//! and `assert_no_checkpoints` fails on every row but the last.
//!
//! # Invariants and differences from Trio
//!
//! - Counts are per task, as in Trio: the body of a nursery the wrapped
//!   code opens is the same task and counts; the nursery's children do not.
//! - A panic in the wrapped code propagates unchecked (Trio checks
//!   `assert_no_checkpoints` in a `finally`; a second panic while unwinding
//!   would abort the process).
//! - Outside a run there are no counts: the measure is zero.

use crate::lowlevel::{CheckpointCounts, CheckpointWatch, watch_checkpoints};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future of [`measure_checkpoints`].
#[must_use = "futures do nothing unless awaited"]
pub struct MeasureCheckpoints<F> {
    fut: Pin<Box<F>>,
    /// Started at the first poll, for the task that polls.
    watch: Option<CheckpointWatch>,
}

/// Runs `fut` and also returns how many checkpoints completed while it was
/// being polled (see the module docs for what counts).
///
/// ```
/// use trio::testing::measure_checkpoints;
/// trio::run(async {
///     let (r, counts) = measure_checkpoints(trio::checkpoint()).await;
///     r?;
///     assert_eq!((counts.schedule_points, counts.cancel_points), (1, 1));
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn measure_checkpoints<F: Future>(fut: F) -> MeasureCheckpoints<F> {
    MeasureCheckpoints {
        fut: Box::pin(fut),
        watch: None,
    }
}

impl<F: Future> Future for MeasureCheckpoints<F> {
    type Output = (F::Output, CheckpointCounts);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.watch.is_none() {
            this.watch = watch_checkpoints().ok();
        }
        let polled = this.fut.as_mut().poll(cx);
        polled.map(|out| {
            let counts = this.watch.take().map(|w| w.counts()).unwrap_or_default();
            (out, counts)
        })
    }
}

impl<F> fmt::Debug for MeasureCheckpoints<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeasureCheckpoints")
            .field("counts", &self.watch.as_ref().map(CheckpointWatch::counts))
            .finish_non_exhaustive()
    }
}

/// What the code checked by [`assert_checkpoints`] returns: `()` or a
/// `Result`. An `Err` means the code "raised", and then, as in Trio, it
/// need not have checkpointed.
pub trait Outcome {
    /// Whether the code ended in an error.
    fn is_failure(&self) -> bool;
}

impl Outcome for () {
    fn is_failure(&self) -> bool {
        false
    }
}

impl<T, E> Outcome for Result<T, E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }
}

/// Runs `fut` and panics if it completed successfully without at least one
/// schedule point and one cancel point (Trio's `assert_checkpoints()`).
/// If it returns an `Err` nothing is checked. Returns `fut`'s output.
///
/// ```
/// use trio::testing::assert_checkpoints;
/// trio::run(async {
///     assert_checkpoints(trio::sleep(0.0)).await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn assert_checkpoints<F>(fut: F) -> impl Future<Output = F::Output>
where
    F: Future,
    F::Output: Outcome,
{
    let location = Location::caller();
    let measured = measure_checkpoints(fut);
    async move {
        let (out, c) = measured.await;
        if !out.is_failure() && (c.schedule_points == 0 || c.cancel_points == 0) {
            panic!(
                "assert_checkpoints at {location}: the code completed without a checkpoint \
                 (it needs at least one schedule point and one cancel point; it did {} \
                 schedule point(s) and {} cancel point(s))",
                c.schedule_points, c.cancel_points
            );
        }
        out
    }
}

/// Runs `fut` and panics if it did any schedule point or cancel point
/// (Trio's `assert_no_checkpoints()`). Returns `fut`'s output.
///
/// ```
/// use trio::testing::assert_no_checkpoints;
/// trio::run(async {
///     let (tx, _rx) = trio::open_memory_channel::<u32>(1);
///     // synchronous code never checkpoints
///     let sent = assert_no_checkpoints(async { tx.try_send(1).is_ok() }).await;
///     assert!(sent);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn assert_no_checkpoints<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let location = Location::caller();
    let measured = measure_checkpoints(fut);
    async move {
        let (out, c) = measured.await;
        if c.schedule_points != 0 || c.cancel_points != 0 {
            panic!(
                "assert_no_checkpoints at {location}: the code checkpointed \
                 ({} schedule point(s), {} cancel point(s))",
                c.schedule_points, c.cancel_points
            );
        }
        out
    }
}
