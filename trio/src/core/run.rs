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

use crate::core::cancel_status::{CancelStatusKind, NewCancelStatus};
use crate::core::clock::{Clock, SystemClock};
use crate::core::inbox::Callback;
use crate::core::instrument::Instrument;
use crate::core::io::Reactor;
use crate::core::runtime::{
    self, CALLBACK_SLOT, Parent, ROOT_SLOT, Runtime, State, SystemTask, TaskName, TaskRecord,
};
use crate::core::slab::Key;
use crate::core::task::Task;
use crate::core::token::{self, RunHandle, Shared};
use crate::error::{Error, Result};
use crate::time::Instant;
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
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("custom_clock", &self.clock.is_some())
            .field("seed", &self.seed)
            .field("instruments", &self.instruments.len())
            .field("signals", &self.signals)
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
    /// touch SIGINT. See [`crate::signal`].
    ///
    /// ```
    /// // This program handles SIGINT itself (or leaves it to kill the process).
    /// trio::Runner::new().handle_ctrl_c(false).run(async { Ok(()) }).unwrap();
    /// ```
    pub fn handle_ctrl_c(mut self, on: bool) -> Self {
        self.signals.ctrl_c = on;
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
    pub fn run<F, T>(#[allow(unused_mut)] mut self, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        #[cfg(feature = "tracing")]
        self.instruments
            .push(Rc::new(crate::core::trace::TracingInstrument::default()));
        if runtime::is_in_run() {
            return Err(Error::usage(
                "trio::run cannot be nested: this thread is already inside a run",
            ));
        }
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
            lazy_nurseries: RefCell::new(Vec::new()),
            lazy_pending: Cell::new(false),
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
        let _guard = RunGuard::enter(rt.clone());
        let signals = crate::signal::ctrl_c::install(&self.signals, RunHandle::of(&rt.shared))?;
        rt.clock.start_clock();
        rt.instrument(|i, _| i.before_run());
        let root = rt.root_task.get();
        rt.instrument(|i, rt| i.task_spawned(Task::from_id(rt, root)));
        rt.with_state(|st| st.wake_task(root));
        let fut = pin!(fut);
        let result = signals.finish(run_loop(&rt, fut));
        rt.instrument(|i, _| i.after_run());
        if let Some(payload) = rt.instrument_panic.take() {
            resume_unwind(payload);
        }
        result
    }
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
        // Drop what is left while the runtime is still current, so their
        // destructors can deregister themselves.
        let system: Vec<_> = self.rt.system_tasks.borrow_mut().drain(..).collect();
        drop(system);
        let unrun = self.rt.shared.inbox.close();
        drop(unrun);
        // Taken out first: a value's `Drop` may use another run variable.
        let vars = std::mem::take(&mut *self.rt.run_vars.borrow_mut());
        drop(vars);
        token::unregister(&self.rt.shared);
        runtime::set_current(None);
    }
}

#[derive(Copy, Clone, PartialEq)]
enum Idle {
    No,
    Waiters(Duration),
    Autojump,
}

fn run_loop<T>(rt: &Rc<Runtime>, mut root: Pin<&mut dyn Future<Output = Result<T>>>) -> Result<T> {
    let root_id = rt.root_task.get();
    let mut root_result: Option<Result<T>> = None;
    let mut batch = Vec::new();
    let mut wakes = Vec::new();
    let mut callbacks = Vec::new();
    let mut ticks_since_io = 0u32;
    let mut callback_panic = None;
    let mut system_errors = Vec::new();
    loop {
        // 1. What other threads posted.
        if rt.shared.inbox.has_pending() {
            rt.shared.inbox.drain(&mut wakes, &mut callbacks);
            rt.with_state(|st| {
                for w in wakes.drain(..) {
                    st.wake_ref(w);
                }
            });
            if !callbacks.is_empty() {
                run_callbacks(rt, &mut callbacks, &mut callback_panic);
            }
        }
        if root_result.is_some() && rt.system_tasks.borrow().iter().all(Option::is_none) {
            break;
        }

        // 2. How long may we block? (The clock is asked outside the state
        // borrow: a clock may look at run state.)
        let external = rt.shared.inbox.has_external_work();
        let (runnable, next, first_cushion) = rt.with_state(|st| {
            if !st.run_queue.is_empty() {
                return (true, Instant::INFINITY, None);
            }
            let cushion = st.idle_waiters.keys().next().map(|&(c, _)| c);
            (false, st.next_deadline(), cushion)
        });
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
            return Err(err);
        }

        // 3. I/O.
        let mut any_io = false;
        ticks_since_io += 1;
        if !runnable || ticks_since_io >= IO_POLL_INTERVAL {
            ticks_since_io = 0;
            let reactor_busy = rt.reactor.borrow().has_waiters();
            if !runnable || reactor_busy {
                let shown = timeout.unwrap_or(Duration::MAX);
                rt.instrument(|i, _| i.before_io_wait(shown));
                let ready = rt.reactor.borrow_mut().wait(timeout);
                rt.instrument(|i, _| i.after_io_wait(shown));
                any_io = ready.any_event;
                if !ready.ready.is_empty() {
                    rt.with_state(|st| {
                        for k in ready.ready {
                            st.reschedule(k.park, Ok(()));
                        }
                    });
                }
            }
        }

        // 4. Deadlines. (Reading the clock costs a little; with no deadline
        // there is no need.)
        let has_timers = rt.with_state(|st| !st.timers.is_empty());
        let fired = has_timers && {
            let now = rt.clock.current_time();
            rt.with_state(|st| st.expire_timers(now))
        };
        if fired {
            idle = Idle::No;
        }

        // 5. Idleness.
        if idle != Idle::No && !any_io {
            let jump_to = rt.with_state(|st| {
                if !st.run_queue.is_empty() {
                    return None;
                }
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
                clock.autojump(next);
            }
        }

        // 6. One batch.
        rt.with_state(|st| {
            std::mem::swap(&mut st.run_queue, &mut batch);
            st.shuffle(&mut batch);
        });
        rt.passed_in_place.set(0);
        for &id in &batch {
            let slot = rt.with_state(|st| {
                let t = st.clear_ready(id)?;
                match t.parent {
                    Parent::Top { slot } => Some(slot),
                    Parent::Nursery { .. } => None,
                }
            });
            let Some(slot) = slot else { continue };
            rt.current_task.set(id);
            let waker = rt.waker_for(id);
            let mut cx = Context::from_waker(&waker);
            rt.instrument(|i, rt| i.before_task_step(Task::from_id(rt, id)));
            if slot == ROOT_SLOT {
                rt.current_cancel_status.set(rt.root_cancel_status.get());
                if root_result.is_none()
                    && let Poll::Ready(r) = root.as_mut().poll(&mut cx)
                {
                    root_result = Some(r);
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
                            system_errors.push(e);
                            let root_cancel_status = rt.root_cancel_status.get();
                            rt.with_state(|st| st.cancel(root_cancel_status));
                        }
                        continue;
                    }
                }
            }
            rt.instrument(|i, rt| i.after_task_step(Task::from_id(rt, id)));
        }
        batch.clear();
    }
    if let Some(p) = callback_panic {
        resume_unwind(p);
    }
    let result = root_result.expect("the loop ends only after the root task");
    if system_errors.is_empty() {
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
    all.extend(system_errors);
    Err(Error::group(all).expect("non-empty"))
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
