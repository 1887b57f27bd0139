//! The low-level API that the rest of `trio` is built on, public so that
//! users can build their own primitives the same way (Trio's
//! `trio.lowlevel`).
//!
//! - Blocking: [`Park`] a task with an abort function and [`reschedule`] it
//!   later; every blocking operation in the crate is built on this.
//! - Tasks: [`current_task`], the task tree ([`Task`], [`NurseryInfo`]),
//!   [`spawn_system_task`].
//! - Other threads: [`TrioToken`] and [`ExternalWork`].
//! - Run state: [`RunVar`], [`Instrument`]s.
//! - Foreign code: [`CancelWaiter`] (a cancel wakes a future polled
//!   inside foreign combinators), [`cancel_point`] (any future as a cancel
//!   point), [`current_task_is_cancelled`], [`PendingMark`] (a poll
//!   adapter's "still registered" shortcut over trio's poll methods),
//!   [`StoredWaker`] (a waker kept
//!   for later, with no allocation for a task's own), [`TimerEntry`] (a
//!   waker woken at a deadline of the run's clock) with
//!   [`std_instant_now`] / [`from_std_instant`] (the run's clock as
//!   `std::time::Instant`s), for foreign timers.
//! - I/O: [`wait_readable`], [`wait_writable`], [`notify_closing`] on raw fds.
//! - Guest mode: [`GuestRun`] steps a run from another event loop on the
//!   same thread (Trio's `start_guest_run`).

pub use crate::core::cancel_waiter::{
    CancelPoint, CancelWaiter, PendingMark, cancel_point, current_task_is_cancelled,
};
pub use crate::core::clock::Clock;
pub use crate::core::instrument::{Instrument, add_instrument, remove_instrument};
pub use crate::core::io::{notify_closing, wait_readable, wait_writable};
pub use crate::core::nursery::Nursery;
pub use crate::core::park::{
    Abort, AbortReason, CheckpointCounts, CheckpointWatch, Park, WaitKey,
    cancel_shielded_checkpoint, checkpoint, checkpoint_counts, checkpoint_if_cancelled, reschedule,
    watch_checkpoints,
};
pub use crate::core::run::{
    ExternalWork, GuestRun, GuestStep, GuestWait, begin_external_work, spawn_system_task,
};
pub use crate::core::runvar::RunVar;
pub use crate::core::stored_waker::StoredWaker;
pub use crate::core::task::{
    ExitHook, NurseryInfo, Task, current_root_task, current_task, try_current_root_task,
    try_current_task,
};
pub use crate::core::timers::{TimerEntry, from_std_instant, std_instant_now};
pub use crate::core::token::{TrioToken, current_trio_token};
pub use crate::core::tree::{Deadlock, TaskTree, task_tree};
pub use crate::sync::ParkingLot;
