//! Every core, structured: a *nursery of runs* ([`run_per_core`],
//! [`PerCore`]) — `n` independent runs, each on its own thread, started and
//! supervised as one call that returns when all of them have finished
//! (DESIGN §2, issue 19).
//!
//! ```
//! let answers = trio::run_per_core(3, |core| async move {
//!     trio::sleep(0.001).await?;
//!     Ok(core.index() * 10)
//! })
//! .unwrap();
//! assert_eq!(answers, vec![0, 10, 20]); // in core order
//! ```
//!
//! # Thread per core, no work stealing
//!
//! Each run is an ordinary [`run`](crate::run) on its own thread: one task
//! at a time, tasks need not be `Send`, `Rc`/`RefCell` between tasks is
//! normal, and a task never moves to another thread. Nothing balances load
//! between the runs: a server shares its port with `SO_REUSEPORT`
//! ([`TcpListenOptions::reuse_port`](crate::net::TcpListenOptions::reuse_port)),
//! so the kernel spreads the *connections*, and each connection then stays
//! on the core that accepted it, with its data in that core's caches. Work
//! stealing would balance better a program whose tasks differ wildly in
//! cost, but it makes every task `Send` and every wake-up a cross-thread
//! operation; trio keeps the single-threaded run's guarantees and lets the
//! program decide what crosses cores (and by which channel).
//!
//! # Structured like a nursery
//!
//! 1. The call starts `n` threads, each running one run of `f(core)`.
//!    The closure is shared by reference (`Fn + Sync`), and the future it
//!    returns is created on the run's own thread, so it need not be
//!    `Send`; only the results (`T: Send`) cross threads.
//! 2. The calling thread *supervises*: it runs a small run of its own
//!    (the *supervisor*) that waits for the runs to finish.
//! 3. The first run that fails (returns an error, panics, or cannot start)
//!    cancels the others: their root cancel scope is cancelled, delivered
//!    as ordinary cancellation at their next checkpoint (the cancel is
//!    posted to each run's inbox, which wakes it if it was blocked).
//! 4. The call returns when every run has finished — never earlier, even
//!    when it is failing or interrupted. Then:
//!    - a panic in any run resumes in the caller with its original payload
//!      (the first one, in core order, if several panicked);
//!    - else, if the supervisor was interrupted by Ctrl-C,
//!      [`ErrorKind::Interrupted`] (as for a single run, the signal wins);
//!    - else, if any run failed, all their failures together (in core
//!      order; one failure is that error, several a
//!      [group](crate::Error::group)); the `Cancelled` errors the runs got
//!      because a sibling failed are removed, as a nursery removes its own
//!      scope's cancellations;
//!    - else the results, in core order.
//!
//! # Ctrl-C
//!
//! As DESIGN §10 says, only a run on the main thread owns SIGINT. The
//! runs of a `PerCore` are on threads of their own, so they never touch
//! it; the supervisor runs on the calling thread, so when that is the main
//! thread (a plain `fn main`: `#[trio::main]` is a run, inside which the
//! call is an error, see below) the supervisor owns Ctrl-C exactly as a
//! single run would: the first SIGINT
//! cancels the supervisor, which cancels every run (gracefully: each gets
//! `Cancelled` and runs its cleanup) and waits for them; the call then
//! fails with [`ErrorKind::Interrupted`]; a second SIGINT ends the process.
//! [`PerCore::handle_ctrl_c`] turns this off.
//!
//! # Deadlock detection, per run
//!
//! Each run keeps its own deadlock detection. The supervisor reaches the
//! runs through an *uncounted* handle, so it does not count as "someone
//! outside could still wake this run": a run whose tasks are all blocked
//! with nothing that could ever wake them (no deadline, no I/O, no token,
//! no thread) fails with [`ErrorKind::Deadlock`] even while its siblings
//! are busy, and, like any failure, that cancels the siblings. A run that
//! is meant to wait for a sibling must wait on something that counts: a
//! cross-run channel end, a [`TrioToken`](crate::lowlevel::TrioToken) or
//! [`CancelHandle`](crate::CancelHandle) held by another thread.
//!
//! # Nesting
//!
//! Calling [`PerCore::run`] inside a run (including inside one of its own
//! runs) is an [`ErrorKind::Usage`] error, as a nested `trio::run` is:
//! the calling thread would block its own run.
//!
//! # The board (invariants)
//!
//! The runs and the supervisor share one `Board` behind a `Mutex`, never
//! held while calling out (user code, a run's inbox, a reschedule):
//! - each slot goes `Starting` → `Running(handle)` (the run registered
//!   itself as its first act) → `Finished(ending)` (set by the run's thread
//!   after its run returned, so "finished" means every destructor and
//!   cleanup of that run has run), and never back; a run that fails before
//!   it registers (its thread or its `Runner` could not be made, its
//!   factory panicked) goes straight from `Starting` to `Finished`;
//! - `cancelling` goes from false to true once; whoever sets it cancels
//!   every `Running` slot, and a slot that registers afterwards cancels
//!   itself, so no run escapes a cancel;
//! - whoever makes the last slot `Finished` sets the board's `all_done`
//!   [`cross_run::Event`](crate::cross_run::Event) after releasing the
//!   lock; the supervisor waits on it only after reading the board, and
//!   the event stays set, so the wake-up cannot be missed. (Its wait
//!   counts as something outside the supervisor's run that could wake it,
//!   so the parked supervisor is never reported as a deadlock.)

use crate::core::cancel::CancelScope;
use crate::core::run::Runner;
use crate::core::runtime;
use crate::core::token::RunHandle;
use crate::cross_run::Event;
use crate::error::{Error, ErrorKind, Result};
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where a run of a [`PerCore`] is: its index among the runs, how many
/// there are, and the CPU its thread is pinned to, if any. Passed to the
/// closure by value (it is `Copy`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct CoreInfo {
    index: usize,
    count: usize,
    cpu: Option<usize>,
}

impl CoreInfo {
    /// This run's index, `0..count()`: the position of its result.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many runs there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The CPU this run's thread is pinned to, with
    /// [`PerCore::pin_threads`]; `None` when unpinned.
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }
}

/// How many runs "one per core" means: the CPUs this process may use
/// (`std::thread::available_parallelism`, which honours the affinity mask
/// and cgroup quotas), or 1 if that cannot be told.
///
/// ```
/// assert!(trio::available_cores() >= 1);
/// ```
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Makes each run's [`Runner`] (its clock, seed, instruments).
type RunnerFactory = Arc<dyn Fn(&CoreInfo) -> Runner + Send + Sync>;

/// A nursery of runs: runs `f(core)` on `n` threads, one run each, and
/// returns when all have finished (see the [module docs](crate::cores) for
/// the rules: the first failure cancels the others, every failure is
/// reported, a panic resumes in the caller, Ctrl-C cancels them all).
///
/// ```
/// use std::rc::Rc;
/// use std::cell::Cell;
///
/// let per_run = trio::PerCore::new(2)
///     .pin_threads(false)
///     .run(|core| async move {
///         // Run-local state: `Rc`, `Cell`, no `Send` needed.
///         let count = Rc::new(Cell::new(0));
///         trio::open_nursery(async |nursery| {
///             for _ in 0..3 {
///                 let count = count.clone();
///                 nursery.start_soon(async move {
///                     trio::checkpoint().await?;
///                     count.set(count.get() + 1);
///                     Ok(())
///                 });
///             }
///             Ok(())
///         })
///         .await?;
///         Ok((core.index(), count.get()))
///     })
///     .unwrap();
/// assert_eq!(per_run, vec![(0, 3), (1, 3)]);
/// ```
pub struct PerCore {
    runs: usize,
    pin: bool,
    ctrl_c: bool,
    runner: Option<RunnerFactory>,
}

impl fmt::Debug for PerCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerCore")
            .field("runs", &self.runs)
            .field("pin_threads", &self.pin)
            .field("handle_ctrl_c", &self.ctrl_c)
            .field("custom_runner", &self.runner.is_some())
            .finish()
    }
}

impl PerCore {
    /// `runs` runs (more than the machine's cores is allowed: they share
    /// them), unpinned, with Ctrl-C handled, each on a default [`Runner`].
    /// Zero runs is an [`ErrorKind::InvalidArgument`] error from
    /// [`run`](Self::run).
    pub fn new(runs: usize) -> Self {
        PerCore {
            runs,
            pin: false,
            ctrl_c: true,
            runner: None,
        }
    }

    /// One run per core this process may use ([`available_cores`]).
    pub fn all_cores() -> Self {
        Self::new(available_cores())
    }

    /// Pins run `i`'s thread to the `i`-th CPU this process may use
    /// (wrapping around when there are more runs than CPUs); off by
    /// default. Pinning keeps each run's data in one core's caches, but on
    /// a machine shared with other loads it can also keep a run waiting
    /// for a busy CPU while another is idle. On an OS without CPU affinity
    /// (only Linux and Android have it here) the call fails with
    /// [`ErrorKind::Unsupported`] before starting anything.
    pub fn pin_threads(mut self, on: bool) -> Self {
        self.pin = on;
        self
    }

    /// Whether Ctrl-C (SIGINT) cancels every run, when the calling thread
    /// is the main thread; on by default. Then the call fails with
    /// [`ErrorKind::Interrupted`] once every run has finished, and a second
    /// SIGINT ends the process at once (see [`Runner::handle_ctrl_c`]).
    pub fn handle_ctrl_c(mut self, on: bool) -> Self {
        self.ctrl_c = on;
        self
    }

    /// Makes each run's [`Runner`] with `make` (called on the run's own
    /// thread, since a `Runner` is not `Send`): a clock, a seed,
    /// instruments per run.
    ///
    /// ```
    /// use trio::testing::MockClock;
    /// let ends = trio::PerCore::new(2)
    ///     .runner(|_core| trio::Runner::new().clock(MockClock::autojump()))
    ///     .run(|_core| async {
    ///         trio::sleep(3600.0).await?; // virtual time: at once
    ///         Ok(trio::current_time().as_secs_f64())
    ///     })
    ///     .unwrap();
    /// assert_eq!(ends, vec![3600.0, 3600.0]);
    /// ```
    pub fn runner(mut self, make: impl Fn(&CoreInfo) -> Runner + Send + Sync + 'static) -> Self {
        self.runner = Some(Arc::new(make));
        self
    }

    /// Starts the runs and returns when all have finished: their results in
    /// core order, or the failures, or the first panic resumed (see the
    /// [module docs](crate::cores)).
    ///
    /// Errors before anything starts: no runs ([`ErrorKind::InvalidArgument`]),
    /// called inside a run ([`ErrorKind::Usage`]), pinning asked for on an
    /// OS without affinity ([`ErrorKind::Unsupported`]).
    pub fn run<F, Fut, T>(self, f: F) -> Result<Vec<T>>
    where
        F: Fn(CoreInfo) -> Fut + Sync,
        Fut: Future<Output = Result<T>>,
        T: Send,
    {
        if self.runs == 0 {
            return Err(Error::invalid("run_per_core needs at least one run"));
        }
        if runtime::is_in_run() {
            return Err(Error::usage(
                "run_per_core cannot be called inside a run: it would block this run until the others finish",
            ));
        }
        let cpus = if self.pin {
            Some(crate::sys::affinity::allowed_cpus().map_err(|e| {
                let kind = match e.kind() {
                    std::io::ErrorKind::Unsupported => ErrorKind::Unsupported,
                    _ => ErrorKind::Io,
                };
                Error::with_kind(kind, e)
            })?)
        } else {
            None
        };
        let infos: Vec<CoreInfo> = (0..self.runs)
            .map(|index| CoreInfo {
                index,
                count: self.runs,
                cpu: cpus.as_ref().map(|c| c[index % c.len()]),
            })
            .collect();
        let board = Mutex::new(Board::new(self.runs));
        let all_done = Event::new();
        let factory = self.runner.as_ref();
        let supervised = std::thread::scope(|scope| {
            let result = Runner::new().handle_ctrl_c(self.ctrl_c).run(async {
                // 1. Start the runs.
                for &info in &infos {
                    let (board, f, all_done) = (&board, &f, &all_done);
                    let spawned = std::thread::Builder::new()
                        .name(format!("trio-run-{}", info.index))
                        .spawn_scoped(scope, move || {
                            let ending = run_one(info, f, factory, board);
                            finish(board, all_done, info.index, ending);
                        });
                    if let Err(e) = spawned {
                        // 3. A run that cannot start is a failure.
                        finish(board, all_done, info.index, Ending::Returned(Err(e.into())));
                    }
                }
                // 2. Supervise.
                supervise(&board, &all_done).await
            });
            // 4. However the supervisor ended, no run outlives this call:
            // the scope joins every thread, so first make sure all of them
            // were asked to stop (a no-op if they have all finished).
            cancel_runs(lock(&board).cancel_all());
            result
        });
        let board = board.into_inner().unwrap_or_else(|p| p.into_inner());
        board.into_result(supervised)
    }
}

/// Runs `f(core)` on `n` threads, one run each, and returns their results
/// in core order when all have finished: [`PerCore::new(n).run(f)`](PerCore::run),
/// where the rules are.
///
/// ```
/// use trio::ErrorKind;
///
/// // The first failure cancels the others; they stop at their next checkpoint.
/// let err = trio::run_per_core(3, |core| async move {
///     if core.index() == 1 {
///         return Err(trio::Error::new(ErrorKind::Busy, "core 1 gives up"));
///     }
///     trio::sleep(3600.0).await?; // cancelled by core 1's failure
///     Ok(())
/// })
/// .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Busy);
/// assert_eq!(trio::run_per_core(0, |_| async { Ok(()) }).unwrap_err().kind(),
///            ErrorKind::InvalidArgument);
/// ```
pub fn run_per_core<F, Fut, T>(n: usize, f: F) -> Result<Vec<T>>
where
    F: Fn(CoreInfo) -> Fut + Sync,
    Fut: Future<Output = Result<T>>,
    T: Send,
{
    PerCore::new(n).run(f)
}

// ----- one run ----------------------------------------------------------------

/// How a run ended.
enum Ending<T> {
    Returned(Result<T>),
    Panicked(Box<dyn Any + Send>),
}

impl<T> Ending<T> {
    fn is_failure(&self) -> bool {
        !matches!(self, Ending::Returned(Ok(_)))
    }
}

/// One run, on its own thread: pin, make the runner, register, run `f`.
/// A panic anywhere in it (the factory, the run) is caught and carried.
fn run_one<F, Fut, T>(
    info: CoreInfo,
    f: &F,
    factory: Option<&RunnerFactory>,
    board: &Mutex<Board<T>>,
) -> Ending<T>
where
    F: Fn(CoreInfo) -> Fut + Sync,
    Fut: Future<Output = Result<T>>,
{
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<T> {
        if let Some(cpu) = info.cpu {
            crate::sys::affinity::pin_to(cpu)?;
        }
        let runner = factory.map_or_else(Runner::new, |make| make(&info));
        runner.run(async {
            let handle = RunHandle::current()?;
            let registered = lock(board).register(info.index, handle.clone());
            if registered == Registered::CancelNow {
                cancel_runs(vec![handle]);
            }
            f(info).await
        })
    }));
    match outcome {
        Ok(r) => Ending::Returned(r),
        Err(payload) => Ending::Panicked(payload),
    }
}

/// Records how run `index` ended; a failure cancels the others.
fn finish<T>(board: &Mutex<Board<T>>, all_done: &Event, index: usize, ending: Ending<T>) {
    let failed = ending.is_failure();
    let (to_cancel, last) = {
        let mut b = lock(board);
        b.slots[index] = Slot::Finished(ending);
        b.finished += 1;
        let to_cancel = if failed { b.cancel_all() } else { Vec::new() };
        (to_cancel, b.all_finished())
    };
    cancel_runs(to_cancel);
    if last {
        all_done.set();
    }
}

/// Cancels each run's root cancel status, through its inbox: delivered as
/// ordinary cancellation at its tasks' next checkpoints. A run that has
/// finished meanwhile refuses the post, which is fine.
fn cancel_runs(runs: Vec<RunHandle>) {
    for run in runs {
        let _ = run.run_sync_soon(|| {
            runtime::with_runtime(|rt| rt.cancel_root());
        });
    }
}

// ----- the board ----------------------------------------------------------------

/// A run's place on the board (see the module docs, "The board").
enum Slot<T> {
    /// Its thread is starting, or its run has not reached its root task.
    Starting,
    /// Its run is going; the handle reaches its inbox, uncounted.
    Running(RunHandle),
    /// Its run has returned (or never started): how it ended.
    Finished(Ending<T>),
}

/// What a run must do once it has registered.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Registered {
    /// Nothing: go on.
    Go,
    /// Cancel itself at once: the others were cancelled before it
    /// registered.
    CancelNow,
}

/// What the runs and the supervisor share (see the module docs).
struct Board<T> {
    slots: Vec<Slot<T>>,
    /// How many slots are `Finished`.
    finished: usize,
    /// Every run has been asked to stop (set once, never cleared).
    cancelling: bool,
}

fn lock<T>(board: &Mutex<Board<T>>) -> MutexGuard<'_, Board<T>> {
    // Nothing panics while holding it; a poisoned lock is still consistent.
    board.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> Board<T> {
    fn new(runs: usize) -> Self {
        Board {
            slots: (0..runs).map(|_| Slot::Starting).collect(),
            finished: 0,
            cancelling: false,
        }
    }

    /// Run `index` has started; says whether it must cancel itself at
    /// once (the others are already being cancelled).
    fn register(&mut self, index: usize, run: RunHandle) -> Registered {
        self.slots[index] = Slot::Running(run);
        if self.cancelling {
            Registered::CancelNow
        } else {
            Registered::Go
        }
    }

    /// Marks the board cancelling and returns the runs to cancel: all the
    /// running ones the first time, none afterwards (they were cancelled
    /// then, and later ones cancel themselves when they register).
    fn cancel_all(&mut self) -> Vec<RunHandle> {
        if std::mem::replace(&mut self.cancelling, true) {
            return Vec::new();
        }
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::Running(run) => Some(run.clone()),
                _ => None,
            })
            .collect()
    }

    fn all_finished(&self) -> bool {
        self.finished == self.slots.len()
    }

    /// The call's outcome (module docs, step 4), given the supervisor's.
    fn into_result(self, supervised: Result<()>) -> Result<Vec<T>> {
        let mut values = Vec::with_capacity(self.slots.len());
        let mut errors = Vec::new();
        let mut panic = None;
        for slot in self.slots {
            match slot {
                Slot::Finished(Ending::Returned(Ok(v))) => values.push(v),
                Slot::Finished(Ending::Returned(Err(e))) => errors.push(e),
                Slot::Finished(Ending::Panicked(p)) => {
                    panic.get_or_insert(p);
                }
                // Only if the supervisor itself failed before starting
                // every run; its error is returned below.
                Slot::Starting | Slot::Running(_) => {}
            }
        }
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        supervised?;
        if errors.is_empty() {
            return Ok(values);
        }
        // Every error cancelled the others, so each run's `Cancelled` is
        // ours (only we cancel a run's root): drop them, keep the rest.
        let mut failures = Vec::new();
        let mut cancelled = None;
        for e in errors {
            match e.split(Error::is_cancelled) {
                (_, Some(rest)) => failures.push(rest),
                (c, None) => cancelled = cancelled.or(c),
            }
        }
        // Never lose an error: a run that ended `Cancelled` with no other
        // failure in sight (no known way to get there) still reports it.
        Err(Error::group(failures)
            .or(cancelled)
            .unwrap_or_else(|| Error::new(ErrorKind::Other, "a run failed without an error")))
    }
}

// ----- the supervisor -------------------------------------------------------------

/// Waits until every run has finished. If the wait is cancelled (Ctrl-C),
/// cancels every run and goes on waiting, shielded, then reports the
/// cancellation.
async fn supervise<T>(board: &Mutex<Board<T>>, all_done: &Event) -> Result<()> {
    let Err(e) = wait_for_all(board, all_done).await else {
        return Ok(());
    };
    cancel_runs(lock(board).cancel_all());
    CancelScope::new()
        .with_shield(true)
        .run(wait_for_all(board, all_done))
        .await?;
    Err(e)
}

async fn wait_for_all<T>(board: &Mutex<Board<T>>, all_done: &Event) -> Result<()> {
    if lock(board).all_finished() {
        return Ok(());
    }
    all_done.wait().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_of(endings: Vec<Ending<u32>>) -> Board<u32> {
        let finished = endings.len();
        Board {
            slots: endings.into_iter().map(Slot::Finished).collect(),
            finished,
            cancelling: true,
        }
    }

    /// The siblings' `Cancelled` is removed; the real failures stay, in
    /// core order.
    #[test]
    fn cancellations_are_removed_and_failures_kept() {
        let board = board_of(vec![
            Ending::Returned(Err(Error::cancelled())),
            Ending::Returned(Err(Error::new(ErrorKind::Busy, "a"))),
            Ending::Returned(Ok(1)),
            Ending::Returned(Err(Error::group([
                Error::cancelled(),
                Error::new(ErrorKind::Broken, "b"),
            ])
            .unwrap())),
        ]);
        let e = board.into_result(Ok(())).unwrap_err();
        let kinds: Vec<_> = e.leaves().map(Error::kind).collect();
        assert_eq!(kinds, [ErrorKind::Busy, ErrorKind::Broken]);
    }

    /// A `Cancelled` with no other failure is still reported: no error is
    /// ever lost.
    #[test]
    fn a_lone_cancellation_is_not_lost() {
        let board = board_of(vec![
            Ending::Returned(Ok(1)),
            Ending::Returned(Err(Error::cancelled())),
        ]);
        assert!(board.into_result(Ok(())).unwrap_err().is_cancelled());
    }

    /// The supervisor's error (Ctrl-C) wins over the runs' failures, and a
    /// panic wins over both.
    #[test]
    fn a_panic_then_the_supervisor_then_the_runs() {
        let interrupted = || Error::new(ErrorKind::Interrupted, "ctrl-c");
        let board = board_of(vec![Ending::Returned(Err(Error::new(
            ErrorKind::Busy,
            "a",
        )))]);
        let e = board.into_result(Err(interrupted())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Interrupted);
        let board = board_of(vec![
            Ending::Returned(Err(Error::new(ErrorKind::Busy, "a"))),
            Ending::Panicked(Box::new("boom")),
        ]);
        let payload =
            catch_unwind(AssertUnwindSafe(|| board.into_result(Err(interrupted())))).unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    }

    #[test]
    fn results_in_core_order() {
        let board = board_of(vec![Ending::Returned(Ok(7)), Ending::Returned(Ok(8))]);
        assert_eq!(board.into_result(Ok(())).unwrap(), [7, 8]);
    }
}
