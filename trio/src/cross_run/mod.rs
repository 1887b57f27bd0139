//! Talking between runs: a channel and an event whose handles are `Send`,
//! usable from tasks of different runs and from plain threads.
//!
//! Scaling across cores is thread-per-core (DESIGN §2): several
//! independent runs, each on its own thread. They talk through these:
//!
//! - [`open_cross_run_channel`]: the memory channel's semantics exactly
//!   (capacity 0 / N / [`UNBOUNDED`](crate::channel::UNBOUNDED), clonable
//!   ends, close, `Closed` / `Broken` / `EndOfChannel`, direct hand-off,
//!   "cancelled means no effect"), with ends that are `Send + Sync` and have
//!   blocking twins ([`CrossRunSender::send_blocking`],
//!   [`CrossRunReceiver::receive_blocking`]) for threads outside any run.
//! - [`Event`]: [`set`](Event::set) from anywhere, [`wait`](Event::wait)
//!   in any run, [`wait_blocking`](Event::wait_blocking) from a thread.
//!
//! ```
//! use trio::cross_run::open_cross_run_channel;
//!
//! let (tx, rx) = open_cross_run_channel::<u64>(0);
//! // A second run, on its own thread, sends; this run receives.
//! let producer = std::thread::spawn(move || {
//!     trio::run(async move {
//!         for i in 0..3 {
//!             tx.send(i).await?;
//!         }
//!         Ok(()) // dropping `tx` closes the channel
//!     })
//! });
//! let got = trio::run(async move {
//!     let mut got = Vec::new();
//!     while let Some(v) = rx.next().await {
//!         got.push(v?);
//!     }
//!     Ok(got)
//! })
//! .unwrap();
//! assert_eq!(got, [0, 1, 2]);
//! producer.join().unwrap().unwrap();
//! ```
//!
//! # Design
//!
//! Each primitive is one shared state behind a mutex (an `Arc<Mutex<_>>`):
//! for the channel, the buffer, the counts of open handles, FIFO queues of
//! blocked senders (each with its value) and receivers, and the *outcomes*
//! of waits that have been ended but have not yet resumed. A blocked task
//! or thread is a *waiter* in a queue. Whoever ends a wait (a send that
//! finds a receiver waiting, a close, a cancel) does it in one locking: it
//! takes the waiter out of its queue, writes its outcome (a value handed
//! over, a send completed, an error, a value handed back) and, for a task
//! of another run, posts the wake-up to that run's inbox: a *reschedule*
//! of the wait's key (no allocation, no callback), which that run's loop
//! applies between tasks when it drains its inbox (the way
//! [`TrioToken::run_sync_soon`](crate::lowlevel::TrioToken::run_sync_soon)
//! callbacks come in too). Then it releases the mutex and finishes the
//! wake-up: interrupts that run's reactor if it was blocked, reschedules a
//! task of its own run directly, or unparks a thread. The waiter reads its
//! outcome when it resumes.
//!
//! # Invariants
//!
//! 1. **One locking decides.** Every change of a wait's fate (queued, ended
//!    with an outcome, withdrawn) happens under the mutex, so a hand-off, a
//!    close and a cancel of the same wait can race freely: exactly one of
//!    them wins, and the others see that it did.
//! 2. **Direct hand-off**, as in the memory channel: a value sent while a
//!    receiver waits becomes that receiver's outcome at once; at most one
//!    of the two queues is non-empty.
//! 3. **Cancelled means no effect.** A task's wait is cancelled through its
//!    `Park`'s abort function, which takes the waiter out of its queue
//!    under the mutex. If it is still queued, the cancel wins: a receive
//!    consumed nothing, a send hands its value back. If it is not, a peer
//!    has already decided its outcome (the wake-up is on its way): the
//!    abort fails and the task waits for it, so a value handed over is
//!    received even if the receive was cancelled meanwhile.
//! 4. **Dropping is safe.** A wait's future dropped before it resumed puts
//!    things right under the mutex: still queued, it leaves the queue (a
//!    sender's value is dropped with it); already handed a value, the value
//!    goes back to the front of the channel (or to the next receiver).
//! 5. **No call-outs under the mutex.** Values are dropped and waiters are
//!    woken only after it is released (a value's destructor, a reschedule's
//!    instrument hooks and foreign wakers may use the channel again); the
//!    mutex is never held across an `.await` or a blocking park.
//! 6. **Stale waits.** A task waiter of a run that has ended (a future
//!    leaked with `mem::forget` in it) can never be woken: the run's inbox
//!    refuses the post, under the mutex, before anything is handed to it.
//!    It is skipped (a value goes to the next receiver), and a value a
//!    stale sender left is dropped (nobody can get it back).
//!
//! # Deadlock detection
//!
//! Each run still detects its own deadlocks (DESIGN §12). A task blocked
//! on a cross-run primitive counts, for its run, as something outside could
//! still wake (its waiter is counted in the run's inbox like a task waker
//! held outside the runtime): the other ends may be in another run or a
//! thread, where they could be used at any time, so the run waits instead
//! of reporting a deadlock. A channel end carries no record of where it is
//! (moving a value to another thread runs no code), so the run cannot tell
//! a channel whose other ends are all held by its own blocked tasks from
//! one whose other end is in another run: **every cross-run wait counts as
//! external**, and a run whose only hope is such a channel waits rather
//! than reporting. Closing ends still wakes: when the last sender is
//! dropped, a blocked receiver gets `EndOfChannel`, so a run whose peers
//! have gone never hangs on them.
//!
//! # Cost
//!
//! A hand-off to a blocked task of another run is one locking of the
//! channel's mutex on the sending side (hand the value over, post the
//! reschedule: a push under the inbox's short lock, no allocation; give
//! the wait's deadlock count back) and, when that run was blocked, one
//! write to its reactor's eventfd, a direct system call
//! (`sys/reactor_wake.rs`: libc's `write` is a cancellation point, whose
//! bookkeeping and std's file path cost about 75 instructions more); the
//! receiving run applies the reschedule when it drains its inbox and takes
//! the outcome in one more locking; its reactor's wait is a direct
//! `epoll_pwait` system call too (`sys/epoll_wait.rs`: libc's
//! `epoll_wait` is a cancellation point, and mio's `Poll::poll` adds its
//! own handling; about 33 instructions per wait). A task's send or
//! receive that must wait decides and queues in one locking, and makes
//! its wait there: it
//! re-arms the run's spare wait record (`core/park.rs`, "spare wait
//! records": no insert, no removal, no cancel-status bookkeeping per
//! wait) and registers the task's own waker with it at once (a plain
//! waker of the run, decoded, not cloned: no call-out under the mutex; a
//! foreign waker is registered by the park's first poll, after the
//! mutex). The loop applies posted reschedules in the same borrow of its
//! state as the posted task wakes. A send or receive that did not wait
//! ends with its schedule point (DESIGN §6), which passes in place,
//! decided in the poll that did the operation (no future of its own),
//! without the trip through the run loop, when nothing else in the run
//! could run before it (no other task ready, nothing posted, no deadline
//! due, the I/O poll not due, no instruments, not a guest run: a run that
//! only talks through these channels, typically), as a nursery's exit
//! does; otherwise it yields.
//!
//! `bench/src/bin/cross_channel.rs` measures a ping-pong between two runs
//! against tokio's mpsc across two `current_thread` runtimes (its docs
//! give the commands and the earlier figures). On a 2-CPU VM shared with
//! other work (load average 4–6), 2026-11-27:
//!
//! - **Syscalls** per hand-off: 0.6 eventfd `write` and 0.6 `epoll_wait`
//!   (`epoll_pwait` for trio since the direct wait) on both sides, no
//!   `futex`: the floor (a hand-off that finds its receiver blocked costs
//!   one write and that run's one wait; one that finds it running costs
//!   none). Later, `perf stat`: trio 0.56 and 0.56, tokio 0.74 and 0.74.
//! - **Instructions** per hand-off (callgrind, both sides measured
//!   alternately in one session, with about 0.64 blocked receives per
//!   hand-off on both): trio 1 398 and 1 400 marginal, 1 406 and 1 409
//!   whole-run (start-up included, 80 000 hand-offs) against tokio's 1 337
//!   marginal (1 494 in a run with more blocked receives), 1 339 and 1 340
//!   whole-run; trio before this session's work 1 547–1 573 whole-run
//!   (1 576–1 619 marginal earlier; 1 706–1 719 before the spare wait
//!   record). Where the last 140 went: the reactor's direct wait (33 per
//!   wait), the schedule point passed in the operation's own poll (about
//!   35 per hand-off), the wait's park awaited in place and written in
//!   place, and the wait guards' checks inlined (about 65 together), the
//!   inbox's drain swapping only what was posted. What is left, per
//!   blocked wait: making it (about 200 instructions, the spare record's
//!   re-arming 115), the park's two polls (about 200, the record's release
//!   47), the run loop's drain and reschedule (about 170), the inbox post
//!   (about 95), the eventfd write (about 60), the reactor wait (about
//!   90); per send, its cancel check and in-place schedule point (about 70
//!   together) and the two lockings of the channel.
//! - **Wall time** (medians of per-round ratios to tokio): unpinned 0.98,
//!   0.79, 1.08, 0.82; both threads on one CPU (`taskset -c 1`) 0.95,
//!   1.04, 0.96, 0.96; `--machine` 1.006 and 0.970. Later (this
//!   session's code, load average 1.3–1.8, nothing compiling),
//!   `--machine` twice: 0.933 (0.842–1.186; trio 1 354 ns, tokio 1 449 ns
//!   per hand-off) and 0.971 (0.923–5.540, one slow round; 1 331 and
//!   1 414 ns). Spreads on this shared VM are wide (per-round ratios from
//!   0.2 to 5.5): trio is level with tokio or a little faster, not
//!   clearly so. The bench's docs give each run's spread.

mod channel;
mod event;
#[cfg(all(test, loom))]
mod loom_model;
pub(crate) mod waiter;

/// The memory channel's send error: a cross-run send fails the same way.
pub use crate::channel::SendError;
pub use channel::{
    CrossRunReceiver, CrossRunReceiverStream, CrossRunSender, open_cross_run_channel,
};
pub use event::Event;

#[cfg(loom)]
use loom::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicBool, Ordering},
};
#[cfg(not(loom))]
use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicBool, Ordering},
};

/// Locks `m`. Nothing panics while holding one of these mutexes (values
/// are dropped and waiters woken after release), but a poisoned lock is
/// still consistent: never panic here.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `Usage` error of a blocking call made on a run's thread (it would
/// block the whole run, maybe on one of its own tasks).
fn blocking_in_run(what: &'static str) -> crate::Error {
    crate::Error::usage(format!(
        "{what} would block this run's thread; use the async method inside a run"
    ))
}
