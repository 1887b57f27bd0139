//! `trio::run` and the run loop.
//!
//! One iteration of the loop:
//! 1. take what other threads posted (wakes, callbacks) and apply it;
//! 2. work out how long it may block: not at all if a task is runnable,
//!    else until the next deadline, or less when `wait_all_tasks_blocked`
//!    waiters or the clock's autojump threshold ask to be told about
//!    idleness (waiters first, as in Trio);
//! 3. wait in the reactor for that long (when tasks are runnable, the
//!    reactor is only polled every `IO_POLL_INTERVAL` ticks, so busy runs do not pay a
//!    syscall per tick) and reschedule the waits whose fds are ready;
//!    if the wait returned an event, take what other threads posted as in
//!    step 1 (a wake from another thread interrupts the wait through the
//!    inbox's waker: its task then runs in this iteration's batch, not one
//!    iteration later);
//! 4. fire expired deadlines;
//! 5. if it was primed for idleness and nothing happened: wake the
//!    `wait_all_tasks_blocked` waiters with the smallest cushion, or
//!    autojump the clock to the next deadline;
//! 6. run one batch: every top-level task runnable now is polled once (its
//!    nurseries poll their ready children inside); tasks woken meanwhile wait
//!    for the next batch. A seed shuffles each batch reproducibly.
//!
//! The run ends when the root task has finished and the system tasks, which
//! are cancelled at that point, have too.
//!
//! # The loop as a step
//!
//! The loop's state lives in a `RunLoop` between iterations, and an
//! iteration is two calls: `prepare` (steps 1-2: it returns the `Wait`
//! step 3 is to do, or that the run has finished or is deadlocked) and
//! `advance` (steps 3-6, told by a `StepIo` how to wait). `run` calls them
//! alternately and blocks in step 3; both are `#[inline(always)]`, so `run`
//! compiles to the loop it always was.
//!
//! A [`GuestRun`] (guest mode) turns the iteration around: its `step`
//! does `advance` for the wait prepared by the previous step, with a
//! zero-timeout reactor poll because its host has done the waiting in
//! between, then `prepare` for the next one, and tells the host how to wait
//! (runnable now, or the reactor's fd and a deadline). Invariants:
//!
//! - The runtime is current only inside `step` (and while a finished or
//!   dropped guest is torn down); `Current` restores what was current
//!   before, however the step ends.
//! - An idle wait (step 2's cushion or autojump threshold) acts only after
//!   its whole timeout has passed in real time since the run went idle
//!   (`idle_since`), however often the host steps meanwhile: as in `run`,
//!   where it is the reactor wait that times out. Any progress (an event,
//!   a deadline, a task polled) restarts it.
//! - The host waits on the epoll fd edge-triggered, so every readiness it
//!   has seen is followed by a reactor poll (`force_poll`), and a poll that
//!   filled the event buffer is followed by another (`more_io`) without
//!   waiting, since no new edge will come for events already queued.

use crate::core::cancel_status::{CancelStatusKind, NewCancelStatus};
use crate::core::clock::{Clock, SystemClock};
use crate::core::inbox::{Callback, WakeRef};
use crate::core::instrument::Instrument;
use crate::core::io::Reactor;
use crate::core::park::WaitKey;
use crate::core::runtime::{
    self, CALLBACK_SLOT, Parent, ROOT_SLOT, Runtime, State, SystemTask, TaskId, TaskName,
    TaskRecord,
};
use crate::core::slab::Key;
use crate::core::task::Task;
use crate::core::token::{self, RunHandle, Shared};
use crate::error::{Error, Result};
use crate::time::Instant;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// How often a busy loop looks at the reactor, in ticks. The number is
/// tokio's `event_interval` default, which its builder calls "fairly
/// arbitrary" and believes was copied from golang; nothing here was tuned
/// to it.
const IO_POLL_INTERVAL: u32 = 61;

/// Runs `fut` to completion on this thread, with the default clock, and
/// returns its result.
///
/// Everything `fut` starts has finished when this returns. Calling `run`
/// inside a run is an error, not a hang.
///
/// ```
/// let answer = trio::run(async {
///     trio::sleep(0.001).await?;
///     Ok(42)
/// })
/// .unwrap();
/// assert_eq!(answer, 42);
/// ```
pub fn run<F, T>(fut: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    Runner::new().run(fut)
}

/// Configures a run: its clock, a scheduling seed, instruments.
///
/// ```
/// use trio::testing::MockClock;
/// let clock = MockClock::autojump();
/// trio::Runner::new()
///     .clock(clock.clone())
///     .seed(7)
///     .run(async {
///         trio::sleep(3600.0).await?; // an hour of virtual time, at once
///         Ok(())
///     })
///     .unwrap();
/// assert_eq!(clock.current_time().as_secs_f64(), 3600.0);
/// ```
#[derive(Default)]
pub struct Runner {
    clock: Option<Rc<dyn Clock>>,
    seed: Option<u64>,
    instruments: Vec<Rc<dyn Instrument>>,
    /// Ctrl-C, SIGTERM and tree-dump handling (`crate::signal::ctrl_c`).
    signals: crate::signal::ctrl_c::SignalOptions,
    /// `handle_ctrl_c` was called: a guest run handles Ctrl-C only then
    /// (for `run` it is on by default).
    ctrl_c_asked: bool,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("custom_clock", &self.clock.is_some())
            .field("seed", &self.seed)
            .field("instruments", &self.instruments.len())
            .field("signals", &self.signals)
            .field("ctrl_c_asked", &self.ctrl_c_asked)
            .finish()
    }
}

impl Runner {
    /// A run with the system clock, no seed and no instruments.
    pub fn new() -> Self {
        Runner::default()
    }

    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Rc::new(clock));
        self
    }

    /// Shuffles the order of tasks within each batch with this seed, so a
    /// test can shake out order dependence and replay a failing order.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Adds an instrument (adding the same `Rc` twice adds it once, as in
    /// Trio). A hook that panics removes its instrument, and `run` resumes
    /// the panic once the run has finished, so the run itself stays
    /// consistent.
    pub fn instrument<I: Instrument + 'static>(mut self, instrument: Rc<I>) -> Self {
        self.instruments.push(instrument);
        self
    }

    /// Whether a run on the main thread cancels itself on Ctrl-C (SIGINT);
    /// on by default. Then `run` fails with
    /// [`ErrorKind::Interrupted`](crate::ErrorKind::Interrupted) and a
    /// second SIGINT ends the process at once. Runs on other threads never
    /// touch SIGINT. A [guest run](crate::lowlevel::GuestRun) handles it
    /// only if this was called with `true`. See [`crate::signal`].
    ///
    /// ```
    /// // This program handles SIGINT itself (or leaves it to kill the process).
    /// trio::Runner::new().handle_ctrl_c(false).run(async { Ok(()) }).unwrap();
    /// ```
    pub fn handle_ctrl_c(mut self, on: bool) -> Self {
        self.signals.ctrl_c = on;
        self.ctrl_c_asked = true;
        self
    }

    /// Whether a run on the main thread treats SIGTERM as it treats
    /// Ctrl-C (cancel the run, `Interrupted`, a second one kills); off by
    /// default. See [`crate::signal`].
    pub fn handle_sigterm(mut self, on: bool) -> Self {
        self.signals.sigterm = on;
        self
    }

    /// Makes a run on the main thread print its task tree to stderr each
    /// time `signal` arrives (e.g. `SIGUSR1`), so a hung program can be
    /// asked where it is stuck: `kill -USR1 <pid>`. Off by default. A
    /// signal trio cannot handle makes `run` fail with
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument).
    ///
    /// ```
    /// use trio::signal::consts::SIGUSR1;
    /// trio::Runner::new().dump_task_tree_on(SIGUSR1).run(async { Ok(()) }).unwrap();
    /// ```
    pub fn dump_task_tree_on(mut self, signal: i32) -> Self {
        self.signals.dump = Some(signal);
        self
    }

    /// Runs `fut` to completion with this configuration.
    pub fn run<F, T>(self, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        if runtime::is_in_run() {
            return Err(Error::usage(
                "trio::run cannot be nested: this thread is already inside a run",
            ));
        }
        let signal_options = self.signals.clone();
        let rt = self.build()?;
        let _guard = RunGuard::enter(rt.clone());
        let signals = crate::signal::ctrl_c::install(&signal_options, RunHandle::of(&rt.shared))?;
        start(&rt);
        let fut = pin!(fut);
        let result = signals.finish(run_loop(&rt, fut));
        rt.instrument(|i, _| i.after_run());
        if let Some(payload) = rt.instrument_panic.take() {
            resume_unwind(payload);
        }
        result
    }

    /// Makes the run's runtime: its reactor, tables, root and callback
    /// tasks and the root and system cancel statuses. Not yet current.
    fn build(#[allow(unused_mut)] mut self) -> Result<Rc<Runtime>> {
        #[cfg(feature = "tracing")]
        self.instruments
            .push(Rc::new(crate::core::trace::TracingInstrument::default()));
        let (reactor, reactor_waker) = Reactor::new()?;
        let run_id = token::allocate_run_id();
        let shared = Arc::new(Shared::new(run_id, reactor_waker));
        token::register(&shared);
        let clock = self.clock.unwrap_or_else(|| Rc::new(SystemClock::new()));

        let mut instruments: Vec<Rc<dyn Instrument>> = Vec::new();
        for i in self.instruments {
            // Adding an instrument is idempotent (as in Trio).
            if !instruments.iter().any(|j| Rc::ptr_eq(&i, j)) {
                instruments.push(i);
            }
        }
        let instruments_on = !instruments.is_empty();
        let mut state = State::new(run_id, &shared, self.seed);
        state.log_scheduled = instruments_on;
        let rt = Rc::new(Runtime {
            run_id,
            state: RefCell::new(state),
            current_task: Cell::new(Key::DANGLING),
            current_cancel_status: Cell::new(Key::DANGLING),
            clock,
            shared,
            instruments: RefCell::new(instruments),
            instrument_panic: RefCell::new(None),
            instruments_on: Cell::new(instruments_on),
            reactor: RefCell::new(reactor),
            run_vars: RefCell::new(HashMap::new()),
            system_tasks: RefCell::new(Vec::new()),
            system_cancel_status: Cell::new(Key::DANGLING),
            root_cancel_status: Cell::new(Key::DANGLING),
            root_task: Cell::new(Key::DANGLING),
            callback_task: Cell::new(Key::DANGLING),
            schedule_points: Cell::new(0),
            cancel_points: Cell::new(0),
            passed_in_place: Cell::new(0),
            in_place_rounds: Cell::new(0),
            lazy: crate::core::nursery::LazyBodies::new(),
            exit_hooks: RefCell::new(Vec::new()),
            has_exit_hooks: Cell::new(false),
            watches: RefCell::new(Vec::new()),
            watching: Cell::new(false),
        });
        rt.with_state(|st| {
            let root = st.tasks.insert(TaskRecord {
                name: TaskName::Static("<root>"),
                parent: Parent::Top { slot: ROOT_SLOT },
                ready: false,
                location: None,
            });
            // The task that callbacks from other threads run as (Trio runs
            // them in a system task): never scheduled, shown nowhere.
            let callbacks = st.tasks.insert(TaskRecord {
                name: TaskName::Static("<run_sync_soon callbacks>"),
                parent: Parent::Top {
                    slot: CALLBACK_SLOT,
                },
                ready: false,
                location: None,
            });
            rt.callback_task.set(callbacks);
            let never = Instant::NEG_INFINITY;
            let root_cancel_status = st.enter_cancel_status(
                NewCancelStatus::plain(None, CancelStatusKind::Root, root),
                never,
            );
            let system_cancel_status = st.enter_cancel_status(
                NewCancelStatus::plain(None, CancelStatusKind::System, root),
                never,
            );
            rt.root_task.set(root);
            rt.root_cancel_status.set(root_cancel_status);
            rt.system_cancel_status.set(system_cancel_status);
        });
        Ok(rt)
    }
}

/// Starts a built run (current on this thread): the clock, the
/// instruments' `before_run`, and the root task scheduled.
fn start(rt: &Rc<Runtime>) {
    rt.clock.start_clock();
    rt.instrument(|i, _| i.before_run());
    let root = rt.root_task.get();
    rt.instrument(|i, rt| i.task_spawned(Task::from_id(rt, root)));
    rt.with_state(|st| st.wake_task(root));
}

/// Makes the runtime current for the run, and tears it down however the
/// run ends (including by a panic).
struct RunGuard {
    rt: Rc<Runtime>,
}

impl RunGuard {
    fn enter(rt: Rc<Runtime>) -> Self {
        runtime::set_current(Some(rt.clone()));
        RunGuard { rt }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        teardown(&self.rt);
        runtime::set_current(None);
    }
}

/// Drops what is left of a run that has ended (or is being abandoned),
/// while its runtime is still current, so that destructors can deregister
/// themselves: the system tasks, the callbacks nobody will run (the inbox
/// refuses posts from now on), the run variables.
fn teardown(rt: &Runtime) {
    let system: Vec<_> = rt.system_tasks.borrow_mut().drain(..).collect();
    drop(system);
    let unrun = rt.shared.inbox.close();
    drop(unrun);
    // Taken out first: a value's `Drop` may use another run variable.
    let vars = std::mem::take(&mut *rt.run_vars.borrow_mut());
    drop(vars);
    token::unregister(&rt.shared);
    // The run's cancelled statuses leave the thread's count now, not when
    // the state is dropped: a leaked `Rc<Runtime>` (a scope's future
    // forgotten while cancelled) would otherwise slow every later cancel
    // check on this thread.
    rt.with_state(|st| {
        crate::core::cancel_status::forget_cancelled(st.cancelled_statuses);
        st.cancelled_statuses = 0;
    });
}

/// Why the loop may block for a while in step 2: to tell someone about
/// idleness when the wait ends with nothing having happened.
#[derive(Copy, Clone, PartialEq, Debug)]
enum Idle {
    No,
    /// Wake the `wait_all_tasks_blocked` waiters with this cushion.
    Waiters(Duration),
    /// Jump the clock to the next deadline.
    Autojump,
}

/// What steps 1 and 2 decided: the wait that step 3 does.
#[derive(Copy, Clone, Debug)]
struct Wait {
    /// A task is runnable: do not block.
    runnable: bool,
    /// How long the reactor may block (`None`: until an event).
    timeout: Option<Duration>,
    /// What to do if the whole `timeout` passes with nothing happening.
    idle: Idle,
}

/// What steps 1 and 2 found.
enum Next {
    /// The root task and the system tasks have finished.
    Finished,
    /// Nothing can ever wake a task: the run is deadlocked.
    Deadlock(Error),
    /// Go on: wait (step 3), then run a batch.
    Wait(Wait),
}

/// How steps 3 to 6 wait, which is what differs between `run` (block in
/// the reactor) and a guest run (never block; the host has waited).
#[derive(Copy, Clone)]
struct StepIo {
    /// Poll the reactor with a zero timeout, whatever the wait says.
    never_block: bool,
    /// Poll the reactor even if tasks are runnable and it is not yet due.
    force_poll: bool,
    /// The wait's whole `timeout` has passed, so an idle wait that saw no
    /// event may act on idleness (`run` blocks for exactly that long).
    idle_due: bool,
}

impl StepIo {
    /// `run`'s way.
    const BLOCKING: StepIo = StepIo {
        never_block: false,
        force_poll: false,
        idle_due: true,
    };
}

/// What steps 3 to 6 did.
#[derive(Copy, Clone, Debug)]
struct Advanced {
    /// Anything happened: an event (the inbox's waker included), a
    /// deadline fired, idleness acted on, or a task polled.
    progress: bool,
    /// The reactor's event buffer came back full: more events may be
    /// waiting in the epoll set (only looked at when `never_block`).
    io_filled: bool,
}

/// The run loop's state from one iteration to the next (see the module
/// docs for the steps). `run` goes round [`RunLoop::prepare`] and
/// [`RunLoop::advance`] until the run finishes; a [`GuestRun`] does one
/// `advance` and one `prepare` per step, keeping the prepared wait in
/// between, while its host does the waiting.
struct RunLoop<T> {
    /// The root task's result once it has finished; the run then waits
    /// for its system tasks (cancelled at that point).
    root_result: Option<Result<T>>,
    /// The batch being run (step 6): swapped with the run queue, so both
    /// allocations are reused.
    batch: Vec<TaskId>,
    /// What step 1 drains from the inbox, reused.
    wakes: Vec<WakeRef>,
    reschedules: Vec<WaitKey>,
    callbacks: Vec<Callback>,
    /// Batches since the reactor was last polled while tasks were runnable.
    ticks_since_io: u32,
    /// The waits the reactor found ready, reused across iterations (no
    /// allocation per wake-up).
    io_ready: Vec<WaitKey>,
    /// The first panic of a callback from another thread: resumed when the
    /// run ends.
    callback_panic: Option<Box<dyn Any + Send>>,
    /// Errors of failed system tasks (each cancelled the root task),
    /// reported when the run ends.
    system_errors: Vec<Error>,
}

fn run_loop<T>(rt: &Rc<Runtime>, mut root: Pin<&mut dyn Future<Output = Result<T>>>) -> Result<T> {
    let mut lp = RunLoop::new();
    loop {
        match lp.prepare(rt) {
            Next::Wait(wait) => {
                lp.advance(rt, root.as_mut(), wait, StepIo::BLOCKING);
            }
            Next::Finished => return lp.finish(),
            Next::Deadlock(err) => return Err(err),
        }
    }
}

impl<T> RunLoop<T> {
    fn new() -> Self {
        RunLoop {
            root_result: None,
            batch: Vec::new(),
            wakes: Vec::new(),
            reschedules: Vec::new(),
            callbacks: Vec::new(),
            ticks_since_io: 0,
            io_ready: Vec::new(),
            callback_panic: None,
            system_errors: Vec::new(),
        }
    }

    /// Steps 1 and 2: what other threads posted; whether the run has
    /// finished; how long step 3 may block, and whether the run is
    /// deadlocked instead.
    #[inline(always)]
    fn prepare(&mut self, rt: &Rc<Runtime>) -> Next {
        // 1. What other threads posted.
        self.take_posted(rt);
        if self.root_result.is_some() && rt.system_tasks.borrow().iter().all(Option::is_none) {
            return Next::Finished;
        }

        // 2. How long may we block? (The clock is asked outside the state
        // borrow: a clock may look at run state.)
        let (runnable, next, first_cushion) = rt.with_state(|st| {
            if !st.run_queue.is_empty() {
                return (true, Instant::INFINITY, None);
            }
            let cushion = st.idle_waiters.keys().next().map(|&(c, _)| c);
            (false, st.next_deadline(), cushion)
        });
        // Only an idle run asks (an atomic load per busy tick saved).
        let external = !runnable && rt.shared.inbox.has_external_work();
        let clock = &rt.clock;
        let mut timeout = if runnable {
            Some(Duration::ZERO)
        } else {
            (next != Instant::INFINITY).then(|| clock.deadline_to_sleep_time(next))
        };
        // A deadline the clock says is infinitely far away (a frozen
        // MockClock) will not wake anyone by itself.
        let frozen_clock = timeout == Some(Duration::MAX);
        let mut idle = Idle::No;
        if !runnable && !external {
            if let Some(cushion) = first_cushion {
                if timeout.is_none_or(|t| cushion < t) {
                    timeout = Some(cushion);
                    idle = Idle::Waiters(cushion);
                }
            } else if let Some(threshold) = clock.autojump_threshold()
                && next != Instant::INFINITY
                && timeout.is_none_or(|t| threshold < t)
            {
                timeout = Some(threshold);
                idle = Idle::Autojump;
            }
        }

        // 2b. Could anything ever wake a task? If not, say so instead of hanging.
        let never_wakes = timeout.is_none() || (frozen_clock && idle == Idle::No);
        if !runnable && never_wakes && is_deadlocked(rt) {
            let err = crate::core::tree::deadlock_error(rt, frozen_clock);
            #[cfg(feature = "tracing")]
            tracing::error!(target: "trio", "{err}");
            return Next::Deadlock(err);
        }
        Next::Wait(Wait {
            runnable,
            timeout,
            idle,
        })
    }

    /// Step 1 (and 3b): takes what other threads posted, if anything was
    /// (one atomic load otherwise), and applies it: task wakes and
    /// reschedules make tasks runnable, callbacks run.
    #[inline(always)]
    fn take_posted(&mut self, rt: &Rc<Runtime>) {
        if rt.shared.inbox.has_pending() {
            rt.shared
                .inbox
                .drain(&mut self.wakes, &mut self.reschedules, &mut self.callbacks);
            rt.with_state(|st| {
                for w in self.wakes.drain(..) {
                    st.wake_ref(w);
                }
                // Cross-run wake-ups: this run's parked waits, `Ok(())`
                // (stale keys are skipped).
                for k in self.reschedules.drain(..) {
                    if k.run_id == st.run_id {
                        st.reschedule(k.park, Ok(()));
                    }
                }
            });
            if !self.callbacks.is_empty() {
                run_callbacks(rt, &mut self.callbacks, &mut self.callback_panic);
            }
        }
    }

    /// Steps 3 to 6: wait for I/O as `io` says, fire deadlines, act on
    /// idleness, run one batch.
    #[inline(always)]
    fn advance(
        &mut self,
        rt: &Rc<Runtime>,
        mut root: Pin<&mut dyn Future<Output = Result<T>>>,
        wait: Wait,
        io: StepIo,
    ) -> Advanced {
        let Wait {
            runnable,
            timeout,
            mut idle,
        } = wait;
        // 3. I/O.
        let mut any_io = false;
        let mut io_filled = false;
        self.ticks_since_io += 1;
        if !runnable || self.ticks_since_io >= IO_POLL_INTERVAL || io.force_poll {
            self.ticks_since_io = 0;
            let reactor_busy = rt.reactor.borrow().has_waiters();
            if !runnable || reactor_busy || io.force_poll {
                let timeout = if io.never_block {
                    Some(Duration::ZERO)
                } else {
                    timeout
                };
                let shown = timeout.unwrap_or(Duration::MAX);
                rt.instrument(|i, _| i.before_io_wait(shown));
                any_io = rt.reactor.borrow_mut().wait(timeout, &mut self.io_ready);
                rt.instrument(|i, _| i.after_io_wait(shown));
                if io.never_block && any_io {
                    io_filled = rt.reactor.borrow().filled();
                }
                if !self.io_ready.is_empty() {
                    rt.with_state(|st| {
                        for k in self.io_ready.drain(..) {
                            st.reschedule(k.park, Ok(()));
                        }
                    });
                }
                // 3b. What other threads posted while the loop waited (the
                // wait that a cross-run wake-up interrupted, typically):
                // taken now, so that the tasks it wakes run in this
                // iteration's batch instead of costing one more pass.
                if any_io {
                    self.take_posted(rt);
                }
            }
        }

        // 4. Deadlines. (Reading the clock costs a little; with no deadline
        // there is no need.)
        let has_timers = !rt.state.borrow().timers.is_empty();
        let fired = has_timers && {
            let now = rt.clock.current_time();
            rt.with_state(|st| st.expire_timers(now))
        };
        if fired || !io.idle_due {
            idle = Idle::No;
        }

        // 5. Idleness.
        let mut was_idle = false;
        if idle != Idle::No && !any_io {
            let jump_to = rt.with_state(|st| {
                if !st.run_queue.is_empty() {
                    return None;
                }
                was_idle = true;
                match idle {
                    Idle::Waiters(cushion) => {
                        while let Some(entry) = st.idle_waiters.first_entry() {
                            if entry.key().0 != cushion {
                                break;
                            }
                            let park = entry.remove();
                            st.reschedule(park, Ok(()));
                        }
                        None
                    }
                    Idle::Autojump => Some(st.next_deadline()).filter(|d| d.is_finite()),
                    Idle::No => None,
                }
            });
            if let Some(next) = jump_to {
                rt.clock.autojump(next);
            }
        }

        // 6. One batch.
        rt.with_state(|st| {
            std::mem::swap(&mut st.run_queue, &mut self.batch);
            st.shuffle(&mut self.batch);
        });
        let polled = !self.batch.is_empty();
        rt.passed_in_place.set(0);
        // In-place rounds a nursery may take in this batch: one per tick
        // before the next I/O poll (`StepIo::BLOCKING` only: a guest's step
        // is one tick; instruments would see the ticks go).
        let rounds = if io.never_block || io.force_poll || rt.instruments_on.get() {
            0
        } else {
            (IO_POLL_INTERVAL - 1).saturating_sub(self.ticks_since_io)
        };
        rt.in_place_rounds.set(rounds);
        let root_id = rt.root_task.get();
        for &id in &self.batch {
            // `clear_ready` wakes nobody and retires nothing: a plain
            // borrow, without `with_state`'s after-borrow checks.
            let slot = rt
                .state
                .borrow_mut()
                .clear_ready(id)
                .and_then(|t| match t.parent {
                    Parent::Top { slot } => Some(slot),
                    Parent::Nursery { .. } => None,
                });
            let Some(slot) = slot else { continue };
            rt.current_task.set(id);
            // A plain waker owns nothing (see `waker`): not dropping it
            // saves a call through its vtable per poll, as `poll_child`
            // does for nursery children.
            let waker = std::mem::ManuallyDrop::new(rt.waker_for(id));
            let mut cx = Context::from_waker(&waker);
            rt.instrument(|i, rt| i.before_task_step(Task::from_id(rt, id)));
            if slot == ROOT_SLOT {
                rt.current_cancel_status.set(rt.root_cancel_status.get());
                if self.root_result.is_none()
                    && let Poll::Ready(r) = root.as_mut().poll(&mut cx)
                {
                    self.root_result = Some(r);
                    rt.instrument(|i, rt| i.task_exited(Task::from_id(rt, root_id)));
                    rt.instrument(|i, rt| i.after_task_step(Task::from_id(rt, root_id)));
                    let system_cancel_status = rt.system_cancel_status.get();
                    rt.with_state(|st| {
                        st.remove_task(root_id);
                        st.cancel(system_cancel_status);
                    });
                    rt.task_exited(root_id);
                    continue;
                }
            } else {
                rt.current_cancel_status.set(rt.system_cancel_status.get());
                let taken = rt
                    .system_tasks
                    .borrow_mut()
                    .get_mut(slot as usize)
                    .and_then(Option::take);
                let Some(mut fut) = taken else { continue };
                match fut.as_mut().poll(&mut cx) {
                    Poll::Pending => rt.system_tasks.borrow_mut()[slot as usize] = Some(fut),
                    Poll::Ready(r) => {
                        drop(fut);
                        rt.instrument(|i, rt| i.task_exited(Task::from_id(rt, id)));
                        rt.instrument(|i, rt| i.after_task_step(Task::from_id(rt, id)));
                        rt.with_state(|st| st.remove_task(id));
                        rt.task_exited(id);
                        if let Err(e) = r
                            && !e.is_cancelled()
                        {
                            self.system_errors.push(e);
                            rt.cancel_root();
                        }
                        continue;
                    }
                }
            }
            rt.instrument(|i, rt| i.after_task_step(Task::from_id(rt, id)));
        }
        self.batch.clear();
        // The rounds taken were ticks (the I/O poll stays as due as it
        // would have been).
        self.ticks_since_io += rounds - rt.in_place_rounds.replace(0);
        Advanced {
            progress: any_io || fired || was_idle || polled,
            io_filled,
        }
    }

    /// The run's result, once [`prepare`](Self::prepare) has said
    /// `Finished`: the root task's, with the errors of failed system tasks
    /// added; a callback's panic is resumed.
    fn finish(&mut self) -> Result<T> {
        if let Some(p) = self.callback_panic.take() {
            resume_unwind(p);
        }
        let result = self
            .root_result
            .take()
            .expect("the loop ends only after the root task");
        if self.system_errors.is_empty() {
            return result;
        }
        // The root was cancelled by us because a system task failed: its own
        // `Cancelled` is ours to remove, as a nursery's scope would.
        let mut all = Vec::new();
        if let Err(e) = result
            && let (_, Some(rest)) = e.split(Error::is_cancelled)
        {
            all.push(rest);
        }
        all.append(&mut self.system_errors);
        Err(Error::group(all).expect("non-empty"))
    }
}

// ----- guest mode ---------------------------------------------------------

thread_local! {
    /// Whether a [`GuestRun`] that has not finished exists on this thread
    /// (one per thread: see its docs).
    static GUEST_ON_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// A run driven step by step by another event loop on the same thread (the
/// *host*), as Trio's `start_guest_run` lets a Trio run live inside
/// asyncio's or Qt's loop. For drivers: `trio_compat::guest` drives one
/// inside a tokio runtime; this type is what such a driver is built on.
///
/// # The protocol
///
/// A host calls [`step`](Self::step) over and over. Each step does one
/// iteration of the run loop (see [`run`]) without ever blocking: it polls
/// the reactor with a zero timeout, fires due deadlines, acts on idleness,
/// runs at most one batch of tasks, and then either returns the run's
/// result ([`GuestStep::Done`]) or says how the host should wait before the
/// next step ([`GuestStep::Pending`] with a [`GuestWait`]):
///
/// - [`GuestWait::step_again`]: tasks are runnable now (or the reactor has
///   more events than one step takes): step again soon, after letting the
///   host's own work run;
/// - otherwise wait until the run's fd (its
///   [`as_raw_fd`](std::os::fd::AsRawFd::as_raw_fd): the reactor's epoll
///   fd) is readable, or until [`GuestWait::deadline`]
///   passes, whichever comes first. The fd is readable when an fd a task
///   waits on is ready or another thread (or host code, between steps) woke
///   a task. It is *edge-triggered*: once the host has seen it readable it
///   must pass `fd_readable = true` to the next step (which then polls the
///   reactor) before waiting on it again.
///
/// A host that polls the fd level-triggered (`poll(2)` on it, say) works
/// too: the fd stays readable while events are waiting.
///
/// # In a run, and not
///
/// The run's runtime is current on the thread only *inside* `step`: the
/// run's tasks see a run (`trio::sleep`, nurseries, sockets all work) and
/// host code between steps does not. Consequences:
///
/// - A `trio::run` called inside a guest task fails with
///   [`ErrorKind::Usage`](crate::ErrorKind::Usage), as any nested run does.
///   A `trio::run` that host code calls between steps is a separate run
///   and works (it blocks the host, of course).
/// - One unfinished guest per thread: a second [`GuestRun::new`] fails with
///   `Usage` until the first has finished or been dropped.
/// - Waking a guest task from host code (a waker it gave to a host channel,
///   a [`TrioToken`](crate::lowlevel::TrioToken)) goes through the run's
///   inbox, as a wake from another thread does, and makes the fd readable.
///
/// # What the guest sees of the host
///
/// Nothing: autojump ([`MockClock`](crate::testing::MockClock)),
/// [`wait_all_tasks_blocked`](crate::testing::wait_all_tasks_blocked) and
/// deadlock detection look at trio's tasks only. A guest whose tasks all
/// wait with nothing outside the run able to wake them (no waker or
/// [`TrioToken`](crate::lowlevel::TrioToken) handed to host code, no
/// [`ExternalWork`]) is reported deadlocked, whatever the host might do
/// later; an autojump clock may jump while the host is busy. Idleness is
/// measured in real time between steps, as `run` measures it inside its
/// blocking wait.
///
/// ```
/// use trio::lowlevel::{GuestRun, GuestStep};
///
/// let mut guest = GuestRun::new(trio::Runner::new(), trio::sleep_forever())?;
/// let err = loop {
///     if let GuestStep::Done(result) = guest.step(true)? {
///         break result.unwrap_err();
///     }
/// };
/// assert_eq!(err.kind(), trio::ErrorKind::Deadlock);
/// # Ok::<_, trio::Error>(())
/// ```
///
/// # Signals
///
/// The host owns the process's signals: a guest installs no handler unless
/// asked, that is unless the runner was given
/// [`handle_ctrl_c(true)`](Runner::handle_ctrl_c) explicitly,
/// [`handle_sigterm(true)`](Runner::handle_sigterm) or
/// [`dump_task_tree_on`](Runner::dump_task_tree_on) (which then work as for
/// `run`, on the main thread, with a helper thread of their own).
///
/// # Dropping an unfinished run
///
/// Dropping a `GuestRun` before it has returned `Done` abandons the run
/// the way a panic ends `run`: the root future is dropped (and with it
/// every nursery and its children), then the system tasks, the callbacks
/// other threads posted and the run variables, with the runtime current
/// while they drop. Nothing is cancelled first and no task runs again, so
/// cleanup that needs to await does not happen; nothing leaks and nothing
/// blocks. To end a run gracefully, cancel it (a
/// [`CancelScope`](crate::CancelScope) handle the root task made, say) and
/// keep stepping until `Done`. Forgetting it (`mem::forget`) leaks the run
/// and keeps this thread from starting another guest.
///
/// # Panics
///
/// A panic in a task (that its nursery resumes in the root task) or in an
/// instrument unwinds out of `step`, as it would out of `run`; the run is
/// then poisoned: later steps fail with `Usage`, and dropping it tears it
/// down as above.
///
/// ```
/// use trio::lowlevel::{GuestRun, GuestStep};
///
/// // A toy host: step until done, sleeping in between (a real host waits
/// // on the fd and the deadline, and does its own work meanwhile).
/// let mut guest = GuestRun::new(trio::Runner::new(), async {
///     trio::sleep(0.01).await?;
///     Ok(6 * 7)
/// })?;
/// let answer = loop {
///     match guest.step(true)? {
///         GuestStep::Done(result) => break result?,
///         GuestStep::Pending(wait) => {
///             if !wait.step_again() {
///                 std::thread::sleep(wait.timeout().unwrap_or_default());
///             }
///         }
///     }
/// };
/// assert_eq!(answer, 42);
/// # Ok::<_, trio::Error>(())
/// ```
pub struct GuestRun<'a, T> {
    /// `None` once the run has finished (and been torn down).
    live: Option<Live<'a, T>>,
}

/// An unfinished guest run.
struct Live<'a, T> {
    rt: Rc<Runtime>,
    /// Boxed: it lives across the host's polls.
    root: Pin<Box<dyn Future<Output = Result<T>> + 'a>>,
    lp: RunLoop<T>,
    /// Signal handling, only if the runner asked for it explicitly.
    signals: Option<crate::signal::ctrl_c::RunSignals>,
    /// The wait the last step prepared (steps 1-2), which the host has
    /// been doing since; `None` before the first step.
    prepared: Option<Wait>,
    /// Since when the run has been idle with nothing happening: an idle
    /// wait acts once its timeout has passed since then (the host may step
    /// the run earlier, for its own reasons, without restarting the wait).
    idle_since: Option<std::time::Instant>,
    /// The last reactor poll filled the event buffer: poll again next step.
    more_io: bool,
    /// Set while a step runs: a step that unwound left it set.
    poisoned: bool,
}

/// What [`GuestRun::step`] did.
#[derive(Debug)]
pub enum GuestStep<T> {
    /// The run has finished; this is its result (as `run` would have
    /// returned it). The runtime has been torn down.
    Done(Result<T>),
    /// The run goes on; wait as this says, then step again.
    Pending(GuestWait),
}

/// How a host should wait before the next [`GuestRun::step`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct GuestWait {
    step_again: bool,
    timeout: Option<Duration>,
    deadline: Option<std::time::Instant>,
}

impl GuestWait {
    /// Step again without waiting (after letting the host's own work run):
    /// tasks are runnable, the reactor has more events to take, or the
    /// deadline has already come.
    pub fn step_again(&self) -> bool {
        self.step_again
    }

    /// The longest the host should wait, in real time, measured from the
    /// end of the step; `None`: until the fd is readable, however long.
    /// (A [`MockClock`](crate::testing::MockClock) is asked how long its
    /// next deadline is in real time, so a frozen one gives `None`.)
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// [`timeout`](Self::timeout) as a point in real time.
    pub fn deadline(&self) -> Option<std::time::Instant> {
        self.deadline
    }
}

impl<'a, T> GuestRun<'a, T> {
    /// Starts `fut` as the root task of a guest run configured by `runner`
    /// (its clock, seed and instruments; signals only if asked, see
    /// [Signals](#signals)). Nothing runs until the first
    /// [`step`](Self::step).
    ///
    /// Fails with [`ErrorKind::Usage`](crate::ErrorKind::Usage) inside a
    /// run or while another guest run on this thread is unfinished, and
    /// with an I/O error if the reactor cannot be made.
    pub fn new<F>(runner: Runner, fut: F) -> Result<Self>
    where
        F: Future<Output = Result<T>> + 'a,
    {
        if runtime::is_in_run() {
            return Err(Error::usage(
                "a guest run cannot be started inside a run (the host must be outside trio)",
            ));
        }
        if GUEST_ON_THREAD.get() {
            return Err(Error::usage(
                "this thread already has an unfinished guest run (one guest per thread)",
            ));
        }
        let mut signal_options = runner.signals.clone();
        signal_options.ctrl_c &= runner.ctrl_c_asked;
        let wants_signals =
            signal_options.ctrl_c || signal_options.sigterm || signal_options.dump.is_some();
        let rt = runner.build()?;
        let current = Current::enter(rt.clone());
        let signals = if wants_signals {
            match crate::signal::ctrl_c::install(&signal_options, RunHandle::of(&rt.shared)) {
                Ok(s) => Some(s),
                Err(e) => {
                    teardown(&rt);
                    return Err(e);
                }
            }
        } else {
            None
        };
        start(&rt);
        drop(current);
        GUEST_ON_THREAD.set(true);
        Ok(GuestRun {
            live: Some(Live {
                rt,
                root: Box::pin(fut),
                lp: RunLoop::new(),
                signals,
                prepared: None,
                idle_since: None,
                more_io: false,
                poisoned: false,
            }),
        })
    }

    /// Runs one iteration of the run loop without blocking (see
    /// [the protocol](#the-protocol)): at most one batch of tasks.
    ///
    /// `fd_readable`: whether the host saw the run's fd readable since the
    /// last step; then the reactor is polled even if tasks are runnable
    /// (otherwise only when none is, or every 61 batches, as in `run`).
    /// Pass `true` when unsure: it costs one `epoll_wait` with a zero
    /// timeout.
    ///
    /// Errors (the run itself is not affected): `Usage` if the run has
    /// already returned `Done`, if an earlier step panicked, or if called
    /// inside a run.
    pub fn step(&mut self, fd_readable: bool) -> Result<GuestStep<T>> {
        let Some(live) = self.live.as_mut() else {
            return Err(Error::usage("the guest run has already finished"));
        };
        if live.poisoned {
            return Err(Error::usage("the guest run panicked in an earlier step"));
        }
        if runtime::is_in_run() {
            return Err(Error::usage("a guest run cannot be stepped inside a run"));
        }
        let _current = Current::enter(live.rt.clone());
        live.poisoned = true;
        let outcome = live.step(fd_readable);
        live.poisoned = false;
        let Some(result) = outcome else {
            let wait = live.wait();
            return Ok(GuestStep::Pending(wait));
        };
        // Finished: tear down while the runtime is still current, as `run`
        // does, and let another guest start on this thread.
        let mut live = self.live.take().expect("checked above");
        let result = match live.signals.take() {
            Some(signals) => signals.finish(result),
            None => result,
        };
        live.rt.instrument(|i, _| i.after_run());
        drop(live.root);
        teardown(&live.rt);
        GUEST_ON_THREAD.set(false);
        if let Some(payload) = live.rt.instrument_panic.take() {
            resume_unwind(payload);
        }
        Ok(GuestStep::Done(result))
    }

    /// Whether the run has finished (a step returned `Done`).
    pub fn is_finished(&self) -> bool {
        self.live.is_none()
    }
}

impl<T> Live<'_, T> {
    /// One step; the run's result if it has finished.
    fn step(&mut self, fd_readable: bool) -> Option<Result<T>> {
        let rt = &self.rt;
        let wait = match self.prepared.take() {
            Some(w) => w,
            None => match self.lp.prepare(rt) {
                Next::Wait(w) => w,
                Next::Finished => return Some(self.lp.finish()),
                Next::Deadlock(e) => return Some(Err(e)),
            },
        };
        let idle_due = wait.idle != Idle::No
            && self
                .idle_since
                .is_some_and(|since| since.elapsed() >= wait.timeout.unwrap_or(Duration::ZERO));
        let io = StepIo {
            never_block: true,
            force_poll: fd_readable || self.more_io,
            idle_due,
        };
        let advanced = self.lp.advance(rt, self.root.as_mut(), wait, io);
        self.more_io = advanced.io_filled;
        if advanced.progress {
            self.idle_since = None;
        }
        match self.lp.prepare(rt) {
            Next::Wait(w) => {
                self.prepared = Some(w);
                None
            }
            Next::Finished => Some(self.lp.finish()),
            Next::Deadlock(e) => Some(Err(e)),
        }
    }

    /// How the host should wait for the prepared iteration.
    fn wait(&mut self) -> GuestWait {
        let Some(w) = self.prepared else {
            return GuestWait {
                step_again: true,
                timeout: Some(Duration::ZERO),
                deadline: None,
            };
        };
        let now = std::time::Instant::now();
        let timeout = match w.timeout {
            // A frozen clock's "never".
            Some(Duration::MAX) | None => None,
            // An idle wait counts from when the run became idle.
            Some(t) if w.idle != Idle::No => {
                let since = *self.idle_since.get_or_insert(now);
                Some((since + t).saturating_duration_since(now))
            }
            Some(t) => Some(t),
        };
        let step_again = w.runnable || self.more_io || timeout == Some(Duration::ZERO);
        GuestWait {
            step_again,
            timeout,
            deadline: timeout.and_then(|t| now.checked_add(t)),
        }
    }
}

impl<T> std::os::fd::AsRawFd for GuestRun<'_, T> {
    /// The reactor's epoll fd: readable when a step has I/O events or
    /// wake-ups to take (see [the protocol](GuestRun#the-protocol)); `-1`
    /// once the run has finished.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match &self.live {
            Some(live) => live.rt.reactor.borrow().raw_fd(),
            None => -1,
        }
    }
}

impl<T> GuestRun<'_, T> {
    /// A duplicate of the run's fd (its
    /// [`as_raw_fd`](std::os::fd::AsRawFd::as_raw_fd)): the same epoll set, on a descriptor the host owns, for host APIs
    /// that need the fd to stay open as long as they use it (tokio's
    /// `AsyncFd`). It keeps the epoll set alive after the run has finished,
    /// but reports nothing then. `Usage` error once the run has finished.
    pub fn try_clone_fd(&self) -> Result<std::os::fd::OwnedFd> {
        match &self.live {
            Some(live) => Ok(live.rt.reactor.borrow().clone_fd()?),
            None => Err(Error::usage("the guest run has already finished")),
        }
    }
}

impl<T> Drop for GuestRun<'_, T> {
    fn drop(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        // Abandoned: see "Dropping an unfinished run".
        let Live {
            rt, root, signals, ..
        } = live;
        let _current = Current::enter(rt.clone());
        drop(root);
        drop(signals);
        teardown(&rt);
        let _ = GUEST_ON_THREAD.try_with(|g| g.set(false));
    }
}

impl<T> fmt::Debug for GuestRun<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("GuestRun");
        match &self.live {
            Some(live) => d
                .field("run_id", &live.rt.run_id)
                .field("prepared", &live.prepared)
                .field("poisoned", &live.poisoned),
            None => d.field("finished", &true),
        };
        d.finish_non_exhaustive()
    }
}

/// Makes a guest's runtime current for a step (or its teardown), and puts
/// back what was current before, however the step ends.
struct Current {
    previous: Option<Rc<Runtime>>,
}

impl Current {
    fn enter(rt: Rc<Runtime>) -> Self {
        Current {
            previous: runtime::set_current(Some(rt)),
        }
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        // The guest's `Rc` that comes back is dropped here, outside the
        // thread-local's borrow.
        let _guest = runtime::set_current(self.previous.take());
    }
}

/// True when no task can ever run again: nothing runnable and no deadline
/// that will arrive (checked by the caller), no fd being waited on, and a
/// quiet inbox: nothing posted, no work out in threads, no token held, and
/// no clone of a task waker held outside the runtime (a foreign future or
/// another thread could use one). Any of those could still wake a task, so
/// none is ever reported as a deadlock. (`Inbox::is_quiet` explains the
/// order of its reads, which matters.)
fn is_deadlocked(rt: &Runtime) -> bool {
    !rt.reactor.borrow().has_waiters() && rt.shared.inbox.is_quiet()
}

/// Runs callbacks posted from other threads, as the run's callback task
/// (Trio runs them in a system task), inside the system cancel status. A
/// panic in one ends the run with that panic, after the run is cancelled.
fn run_callbacks(
    rt: &Rc<Runtime>,
    callbacks: &mut Vec<Callback>,
    callback_panic: &mut Option<Box<dyn std::any::Any + Send>>,
) {
    let saved = (rt.current_task.get(), rt.current_cancel_status.get());
    rt.current_task.set(rt.callback_task.get());
    rt.current_cancel_status.set(rt.system_cancel_status.get());
    for cb in callbacks.drain(..) {
        if let Err(p) = catch_unwind(AssertUnwindSafe(cb)) {
            callback_panic.get_or_insert(p);
            let (root_cancel_status, system_cancel_status) =
                (rt.root_cancel_status.get(), rt.system_cancel_status.get());
            rt.with_state(|st| {
                st.cancel(root_cancel_status);
                st.cancel(system_cancel_status);
            });
        }
    }
    rt.current_task.set(saved.0);
    rt.current_cancel_status.set(saved.1);
}

/// Starts a *system task*: a `'static` task that belongs to the run rather
/// than to any nursery (Trio's `spawn_system_task`). System tasks are
/// cancelled when the root task finishes and the run waits for them; an
/// error from one cancels the root task and is reported by `run`.
///
/// ```
/// trio::run(async {
///     trio::lowlevel::spawn_system_task(async {
///         trio::sleep_forever().await // cancelled when the root finishes
///     })?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn spawn_system_task<F>(fut: F) -> Result<Task>
where
    F: Future<Output = Result<()>> + 'static,
{
    let location = Location::caller();
    let rt = runtime::current()?;
    let fut: SystemTask = Box::pin(fut);
    let slot = {
        let mut tasks = rt.system_tasks.borrow_mut();
        match tasks.iter().position(Option::is_none) {
            Some(i) => {
                tasks[i] = Some(fut);
                i
            }
            None => {
                tasks.push(Some(fut));
                tasks.len() - 1
            }
        }
    };
    let id = rt.with_state(|st| {
        st.tasks.insert(TaskRecord {
            name: TaskName::Location(location),
            parent: Parent::Top { slot: slot as u32 },
            ready: false,
            location: Some(location),
        })
    });
    // Spawned, then scheduled (the order instruments see, as in Trio).
    rt.instrument(|i, rt| i.task_spawned(Task::from_id(rt, id)));
    rt.with_state(|st| st.wake_task(id));
    Ok(Task::from_id(&rt, id))
}

/// Marks work in progress outside the run (in a thread, say) that will
/// eventually wake a task. While any such guard exists, the run does not
/// count as idle: `wait_all_tasks_blocked` and the MockClock's autojump wait.
/// `Send`: drop it on whichever thread finishes the work.
///
/// ```
/// trio::run(async {
///     let work = trio::lowlevel::begin_external_work()?;
///     std::thread::spawn(move || drop(work)).join().unwrap();
///     Ok(())
/// })
/// .unwrap();
/// ```
#[must_use = "the run counts as busy only while the guard lives; dropping it at once ends the work"]
pub struct ExternalWork {
    shared: Arc<Shared>,
}

/// Starts an [`ExternalWork`] guard for the current run.
pub fn begin_external_work() -> Result<ExternalWork> {
    let rt = runtime::current()?;
    rt.shared.inbox.work_started();
    Ok(ExternalWork {
        shared: rt.shared.clone(),
    })
}

impl Drop for ExternalWork {
    fn drop(&mut self) {
        // This pokes the loop to re-evaluate idleness.
        self.shared.notify(self.shared.inbox.work_finished());
    }
}

impl fmt::Debug for ExternalWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalWork").finish_non_exhaustive()
    }
}
