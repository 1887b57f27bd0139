//! The run's state: its tables and the scheduling that works on them.
//!
//! One [`Runtime`] exists per `trio::run`, reachable from its thread through a
//! thread-local while the run is active. Its mutable tables live in one
//! `RefCell<State>`:
//!
//! - `tasks`: every task: the root task, system tasks and nursery
//!   children. A task has a parent: the run loop (top level) or a nursery
//!   slot. (A nursery's body is not a task of its own: it is polled as part
//!   of the task that opened the nursery, as in Trio.) Maintained here and,
//!   for nursery children, by the `impl State` in `nursery`.
//! - `nurseries`: per nursery, the list of its slots that are ready to poll
//!   and the waker of whoever polls the nursery future (`NurseryRecord`, in
//!   `nursery`).
//! - `cancel_statuses`: the cancel-status tree (one node per entered cancel
//!   scope or nursery), with the *effective* cancellation of each kept up to
//!   date eagerly, so a checkpoint's cancel check is one table lookup (two
//!   thread-local loads while nothing on the thread is cancelled)
//!   (`cancel_status` has the records, their maintenance and invariants).
//! - `parks`: every task currently parked in a [`Park`](crate::lowlevel::Park)
//!   (the low-level wait that every blocking operation uses), with the cancel
//!   status it waits under, so cancelling a scope wakes exactly the waits
//!   inside it (`ParkRecord` and its maintenance are in `park`).
//! - `timers`: the deadlines of scopes and timed waits (`timers`, which also
//!   fires them).
//!
//! Each table's records and the `impl State` block that maintains them live
//! together in the table's module; this one keeps `State` itself, the
//! scheduling below, and the [`Runtime`] around it.
//!
//! Scheduling: waking a task marks it ready and pushes its slot onto its
//! nursery's ready list, then wakes whoever polls that nursery, and so on up
//! to the run loop's queue. A task already marked ready stops the climb, so a
//! wake is O(1) amortised. Because children are polled only from inside their
//! nursery's future, a wake during a tick is seen in the next tick: batches.
//!
//! Discipline: no code may call out (poll a future, drop one, run a user
//! callback or a foreign waker) while holding the `State` borrow. Our own
//! wakers are applied directly; foreign ones are queued and run by
//! [`Runtime::with_state`] after the borrow ends.

use crate::core::cancel_status::{CancelStatusId, CancelStatusRecord};
use crate::core::clock::Clock;
use crate::core::inbox::WakeRef;
use crate::core::instrument::Instrument;
use crate::core::io::Reactor;
use crate::core::nursery::{NurseryId, NurseryRecord};
use crate::core::park::{CheckpointWatchEntry, ParkId, ParkRecord};
use crate::core::slab::{Key, Slab};
use crate::core::task::ExitHookEntry;
use crate::core::timers::Timers;
use crate::core::token::Shared;
use crate::core::waker::{OurWaker, WakerWord, classify, task_waker};
use crate::error::{Error, Result};
use crate::time::Instant;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

/// A task's key in `State::tasks`.
pub(crate) type TaskId = Key;

/// How many schedule points a task may pass in place in one batch (see
/// [`Runtime::pass_schedule_point_in_place`]). Passing in place saves a
/// trip through the run loop; yielding every `IN_PLACE_LIMIT + 1`st time
/// bounds how long another future polled by the same task (in a `join!`)
/// waits. The number is a trade between the two, not tuned.
pub(crate) const IN_PLACE_LIMIT: u32 = 63;

/// The top-level slot of the root task.
pub(crate) const ROOT_SLOT: u32 = u32::MAX;
/// The top-level slot of the task callbacks from other threads run as
/// (never polled).
pub(crate) const CALLBACK_SLOT: u32 = u32::MAX - 1;

/// A task's name: where it was spawned, unless it was given one.
#[derive(Clone)]
pub(crate) enum TaskName {
    Location(&'static Location<'static>),
    Named(Rc<str>),
    Static(&'static str),
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskName::Location(l) => write!(f, "{}:{}:{}", l.file(), l.line(), l.column()),
            TaskName::Named(s) => f.write_str(s),
            TaskName::Static(s) => f.write_str(s),
        }
    }
}

/// Who polls a task.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parent {
    /// The run loop: `slot` is `ROOT_SLOT`, `CALLBACK_SLOT`, or an index in
    /// `Runtime::system_tasks`.
    Top { slot: u32 },
    /// A nursery future: `slot` indexes its children.
    Nursery { nursery: NurseryId, slot: u32 },
}

/// The run's record of one task (its future lives with its parent: the
/// run loop's root future, `Runtime::system_tasks`, or a nursery future).
pub(crate) struct TaskRecord {
    /// For the task tree and instruments.
    pub(crate) name: TaskName,
    /// Who polls the task, and where it sits there.
    pub(crate) parent: Parent,
    /// Woken and not yet polled: its slot is already queued (in `run_queue`
    /// or its nursery's `ready` list), so another wake stops here. Cleared
    /// just before the task is polled. Set only by `State::wake_task` and
    /// cleared only by `State::clear_ready` (or the record's removal by
    /// `State::remove_task`), which keep `State::ready_tasks` exact.
    pub(crate) ready: bool,
    /// Where it was spawned (`None` for the root task and the callback task).
    pub(crate) location: Option<&'static Location<'static>>,
}

/// Whom to wake: a waker remembered from the last poll. Ours are decoded
/// once, when remembered, and applied in place (no reference counts, no
/// waker to make, decode or drop per wake); foreign ones are queued and
/// woken after the state borrow ends.
#[derive(Clone, Default)]
pub(crate) enum WakeTarget {
    #[default]
    None,
    /// A task of this run, named as a plain waker of this run names it.
    Task(WakerWord),
    /// Any other waker (boxed: rare, and it keeps this at two words).
    Foreign(Box<Waker>),
}

impl WakeTarget {
    pub(crate) const NONE: WakeTarget = WakeTarget::None;

    /// Remembers `waker`, given to a poll in the current run `rt`, outside
    /// the state borrow (the waker it replaces is dropped here).
    pub(crate) fn update_in(&mut self, waker: &Waker, rt: &Runtime) {
        let _old = self.update(waker, rt.run_id, Arc::as_ptr(&rt.shared).addr());
    }

    /// The task a plain waker of this run names, if that is what is
    /// remembered.
    #[inline]
    pub(crate) fn task_word(&self) -> Option<WakerWord> {
        match self {
            WakeTarget::Task(w) => Some(*w),
            _ => None,
        }
    }

    /// Wakes whoever was remembered, once (outside any state borrow).
    pub(crate) fn wake(&mut self) {
        match std::mem::take(self) {
            WakeTarget::None => {}
            WakeTarget::Task(w) => task_waker(w).wake(),
            WakeTarget::Foreign(w) => (*w).wake(),
        }
    }

    /// Wakes whoever was remembered and keeps it (outside any state
    /// borrow); no clone of a foreign waker.
    pub(crate) fn wake_by_ref(&self) {
        match self {
            WakeTarget::None => {}
            WakeTarget::Task(w) => task_waker(*w).wake_by_ref(),
            WakeTarget::Foreign(w) => w.wake_by_ref(),
        }
    }

    /// Remembers `waker`, given to a poll in this run (`run_id`,
    /// `shared_addr`: see `State`). Returns what it replaced, for the caller
    /// to drop after the state borrow (see [`State::retire`]).
    #[must_use]
    #[inline]
    pub(crate) fn update(&mut self, waker: &Waker, run_id: u32, shared_addr: usize) -> WakeTarget {
        // Ours are kept decoded: the runtime's own tables do not count as
        // someone outside holding a waker.
        if let Some(OurWaker::Plain(w)) = classify(waker)
            && w.run == run_id as u16
        {
            if let WakeTarget::Task(old) = self
                && *old == w
            {
                return WakeTarget::NONE;
            }
            return std::mem::replace(self, WakeTarget::Task(w));
        }
        self.update_slow(waker, run_id, shared_addr)
    }

    /// `update` for any waker but a plain one of this run.
    #[cold]
    #[inline(never)]
    fn update_slow(&mut self, waker: &Waker, run_id: u32, shared_addr: usize) -> WakeTarget {
        match classify(waker).and_then(|o| o.task_in(run_id, shared_addr)) {
            Some(t) => std::mem::replace(
                self,
                WakeTarget::Task(WakerWord {
                    run: run_id as u16,
                    index: t.index,
                    short_gen: t.generation as u16,
                }),
            ),
            None => self.update_foreign(waker),
        }
    }

    fn update_foreign(&mut self, waker: &Waker) -> WakeTarget {
        if let WakeTarget::Foreign(w) = self
            && w.will_wake(waker)
        {
            return WakeTarget::NONE;
        }
        std::mem::replace(self, WakeTarget::Foreign(Box::new(waker.clone())))
    }
}

/// The run's mutable tables, behind one `RefCell` in [`Runtime`]; see the
/// module docs.
pub(crate) struct State {
    /// This run's id (in every waker it makes).
    pub(crate) run_id: u32,
    /// The address of the run's `Shared` block, to recognise its counted
    /// wakers (which hold it alive, so the address cannot be reused while
    /// one exists).
    pub(crate) shared_addr: usize,
    pub(crate) tasks: Slab<TaskRecord>,
    pub(crate) nurseries: Slab<NurseryRecord>,
    pub(crate) cancel_statuses: Slab<CancelStatusRecord>,
    pub(crate) parks: Slab<ParkRecord>,
    /// The run's spare cross-run wait record, `Idle` (see "spare wait
    /// records" in `core/park.rs`): per run, not per thread, as runs that
    /// share a thread (a guest run and the runs its host makes between its
    /// steps) would throw each other's away, leaving them in their tables.
    pub(crate) spare_park: Option<ParkId>,
    /// Top-level tasks (the root task, system tasks) woken since the run
    /// loop took the last batch; each appears once (see `TaskRecord::ready`).
    pub(crate) run_queue: Vec<TaskId>,
    /// How many task records have `ready` set: tasks woken and not yet
    /// polled, wherever they are queued (the run queue, a batch being run,
    /// a nursery's ready list). Zero means no task but the one being polled
    /// could run before it: [`Runtime::pass_schedule_point_in_place`] relies
    /// on that, so it must never be lower than the true count.
    pub(crate) ready_tasks: u32,
    pub(crate) timers: Timers,
    /// The parks of `wait_all_tasks_blocked` calls, keyed by (cushion,
    /// arrival number): the run loop wakes the smallest cushion first, and
    /// equal cushions together, in arrival order. A waiter's abort removes
    /// its entry; the run loop removes the ones it wakes.
    pub(crate) idle_waiters: BTreeMap<(Duration, u64), ParkId>,
    /// The last arrival number given out in `idle_waiters`.
    pub(crate) idle_seq: u64,
    /// The xorshift state that shuffles batches, if the run has a seed
    /// (never zero).
    pub(crate) rng: Option<u64>,
    /// Foreign wakers to wake once the borrow ends (moved here, not cloned:
    /// cloning one runs foreign code too).
    pending_foreign: Vec<Waker>,
    /// Wakers to drop once the borrow ends, for the same reason.
    retired: Vec<Waker>,
    /// `pending_foreign`, `retired` or `scheduled_log` may be non-empty:
    /// set by every push onto them, cleared when [`Runtime::with_state`]
    /// empties them, so that the end of a borrow costs one check.
    deferred: bool,
    /// This run is the thread's current one (`CURRENT`): kept by
    /// [`set_current`], so that a nursery can check that it is polled in
    /// its run without a thread-local lookup.
    pub(crate) is_current: bool,
    /// Whether to record woken tasks in `scheduled_log`: true iff instruments
    /// are installed (`Runtime::instruments_on`), kept in the state so that
    /// `wake_task`, which runs under the borrow, can check it.
    pub(crate) log_scheduled: bool,
    /// Tasks woken under the current borrow, for the instruments'
    /// `task_scheduled` hook, which [`Runtime::with_state`] calls once the
    /// borrow ends (hooks are user code). Empty when `log_scheduled` is off.
    pub(crate) scheduled_log: Vec<TaskId>,
    /// `recompute`'s work stack, kept to reuse its allocation. Empty
    /// between calls.
    pub(super) recompute_stack: Vec<CancelStatusId>,
    /// Cleared ready lists of finished nurseries, so opening one does not allocate.
    spare_lists: Vec<Vec<u32>>,
    /// How many of `cancel_statuses` are effectively cancelled: this
    /// state's part of the thread's count (`cancel_status`, invariant 6),
    /// taken back out of it when the state is dropped.
    pub(super) cancelled_statuses: u32,
}

impl Drop for State {
    fn drop(&mut self) {
        crate::core::cancel_status::forget_cancelled(self.cancelled_statuses);
    }
}

impl State {
    pub(crate) fn new(run_id: u32, shared: &Arc<Shared>, seed: Option<u64>) -> Self {
        State {
            run_id,
            shared_addr: Arc::as_ptr(shared).addr(),
            tasks: Slab::new(),
            nurseries: Slab::new(),
            cancel_statuses: Slab::new(),
            parks: Slab::new(),
            spare_park: None,
            run_queue: Vec::new(),
            ready_tasks: 0,
            timers: Timers::new(),
            idle_waiters: BTreeMap::new(),
            idle_seq: 0,
            // xorshift must not start at zero.
            rng: seed.map(|s| s ^ 0x9E37_79B9_7F4A_7C15 | 1),
            pending_foreign: Vec::new(),
            retired: Vec::new(),
            deferred: false,
            is_current: false,
            log_scheduled: false,
            scheduled_log: Vec::new(),
            recompute_stack: Vec::new(),
            spare_lists: Vec::new(),
            cancelled_statuses: 0,
        }
    }

    // ----- scheduling -------------------------------------------------

    /// Marks a task ready and makes sure whoever polls it will.
    pub(crate) fn wake_task(&mut self, id: TaskId) {
        let Some(t) = self.tasks.get_mut(id) else {
            return;
        };
        if t.ready {
            return;
        }
        t.ready = true;
        self.ready_tasks += 1;
        let parent = t.parent;
        if self.log_scheduled {
            self.scheduled_log.push(id);
            self.deferred = true;
        }
        match parent {
            Parent::Top { .. } => self.run_queue.push(id),
            Parent::Nursery { nursery, slot } => {
                // `poke_nursery` on the record already looked up (one
                // table lookup per wake, not two).
                if let Some(n) = self.nurseries.get_mut(nursery) {
                    n.ready.push(slot);
                    // (While the nursery polls, it may poll the child in
                    // place: `NurseryRecord::queueing`.)
                    if !n.woken && (!n.queueing || self.log_scheduled) {
                        n.woken = true;
                        let target = std::mem::take(&mut n.waker);
                        self.wake_target(target);
                    }
                }
            }
        }
    }

    /// Clears `ready` on a task about to be polled (or moved to another
    /// queue); returns the record.
    #[inline]
    pub(crate) fn clear_ready(&mut self, id: TaskId) -> Option<&mut TaskRecord> {
        let t = self.tasks.get_mut(id)?;
        if t.ready {
            t.ready = false;
            debug_assert!(self.ready_tasks > 0);
            // Wrapping, not saturating: were the count ever off, a count too
            // high only turns the in-place schedule point off.
            self.ready_tasks = self.ready_tasks.wrapping_sub(1);
        }
        Some(t)
    }

    /// Removes a task's record (it has exited, or its nursery was dropped).
    #[inline]
    pub(crate) fn remove_task(&mut self, id: TaskId) {
        if let Some(t) = self.tasks.remove(id)
            && t.ready
        {
            debug_assert!(self.ready_tasks > 0);
            self.ready_tasks = self.ready_tasks.wrapping_sub(1);
        }
    }

    /// Wakes whoever polls the nursery's future, once per batch.
    pub(crate) fn poke_nursery(&mut self, nursery: NurseryId) {
        let Some(n) = self.nurseries.get_mut(nursery) else {
            return;
        };
        if n.woken {
            return;
        }
        n.woken = true;
        // The waker is used up: the nursery registers a fresh one when the
        // wake makes it poll.
        let target = std::mem::take(&mut n.waker);
        self.wake_target(target);
    }

    /// Wakes a task named by a waker.
    pub(crate) fn wake_ref(&mut self, task: WakeRef) {
        if task.exact {
            self.wake_task(task.key());
        } else if let Some((id, _)) = self
            .tasks
            .get_mut_by_short(task.index, task.generation as u16)
        {
            self.wake_task(id);
        }
    }

    /// The full key of the task a plain waker names (exact from now on).
    pub(crate) fn exact(&self, task: WakeRef) -> WakeRef {
        if task.exact {
            return task;
        }
        match self.tasks.key_by_short(task.index, task.generation as u16) {
            Some(key) => WakeRef::exact(key),
            None => task,
        }
    }

    /// Wakes a remembered waker, using it up.
    #[inline]
    pub(crate) fn wake_target(&mut self, target: WakeTarget) {
        TARGETS_USED.with(|c| c.set(c.get().wrapping_add(1)));
        match target {
            WakeTarget::None => {}
            WakeTarget::Task(w) => self.wake_ref(w.task_ref()),
            WakeTarget::Foreign(w) => self.wake_waker(*w),
        }
    }

    /// Keeps `target` to drop after the borrow if dropping it could run
    /// foreign code (the discipline in the module docs: no call-outs under
    /// the borrow).
    #[inline]
    pub(crate) fn retire(&mut self, target: WakeTarget) {
        if let WakeTarget::Foreign(w) = target {
            self.retired.push(*w);
            self.deferred = true;
        }
    }

    /// Applies one of our wakers in place; queues a foreign one.
    fn wake_waker(&mut self, w: Waker) {
        match classify(&w).and_then(|o| o.task_in(self.run_id, self.shared_addr)) {
            Some(task) => {
                self.wake_ref(task);
                self.retired.push(w);
            }
            None => self.pending_foreign.push(w),
        }
        self.deferred = true;
    }

    /// Shuffles `items` (a batch of ready tasks) with the run's xorshift
    /// generator if the run has a scheduling seed; leaves them in order
    /// otherwise.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        let Some(mut x) = self.rng else { return };
        for i in (1..items.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = (x % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
        self.rng = Some(x);
    }

    /// An empty list, reusing a finished nursery's allocation if possible.
    pub(crate) fn take_list(&mut self) -> Vec<u32> {
        self.spare_lists.pop().unwrap_or_default()
    }

    /// Keeps a list's allocation for the next nursery (a few, not all).
    pub(crate) fn give_list(&mut self, mut list: Vec<u32>) {
        if self.spare_lists.len() < 64 && list.capacity() > 0 && list.capacity() <= 1024 {
            list.clear();
            self.spare_lists.push(list);
        }
    }
}

/// One run's runtime; see the module docs.
pub(crate) struct Runtime {
    pub(crate) run_id: u32,
    pub(crate) state: RefCell<State>,
    /// The task being polled right now. (A nursery body is polled as part
    /// of the task that opened the nursery, so it is that task.)
    pub(crate) current_task: Cell<TaskId>,
    /// The innermost cancel status of the code being polled right now.
    pub(crate) current_cancel_status: Cell<CancelStatusId>,
    pub(crate) clock: Rc<dyn Clock>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) instruments: RefCell<Vec<Rc<dyn Instrument>>>,
    /// The first panic from an instrument hook: the instrument is removed
    /// (as Trio disables one that raises) and `run` resumes the panic at
    /// the end, so the run itself stays consistent.
    pub(crate) instrument_panic: RefCell<Option<Box<dyn Any + Send>>>,
    /// `!instruments.is_empty()`, so `instrument` costs one check when
    /// there are none (mirrored in `State::log_scheduled`).
    pub(crate) instruments_on: Cell<bool>,
    pub(crate) reactor: RefCell<Reactor>,
    pub(crate) run_vars: RefCell<HashMap<usize, Box<dyn Any>>>,
    /// The futures of the system tasks, by slot (`None`: free, or being
    /// polled).
    pub(crate) system_tasks: RefCell<Vec<Option<SystemTask>>>,
    /// The cancel status system tasks and callbacks run under; cancelled
    /// when the root task finishes.
    pub(crate) system_cancel_status: Cell<CancelStatusId>,
    /// The root task's cancel status; cancelled when a system task fails.
    pub(crate) root_cancel_status: Cell<CancelStatusId>,
    pub(crate) root_task: Cell<TaskId>,
    /// The task callbacks from other threads run as (`run_sync_soon`).
    pub(crate) callback_task: Cell<TaskId>,
    /// Checkpoints completed so far (for `testing::assert_checkpoints`).
    pub(crate) schedule_points: Cell<u64>,
    /// Cancel points completed so far.
    pub(crate) cancel_points: Cell<u64>,
    /// Schedule points passed in place (see
    /// [`pass_schedule_point_in_place`](Self::pass_schedule_point_in_place))
    /// since the run loop last started a batch.
    pub(crate) passed_in_place: Cell<u32>,
    /// How many more in-place rounds the batch being run may take (see
    /// [`end_of_nursery_poll`](Self::end_of_nursery_poll)): the ticks left
    /// before the run loop's next I/O poll is due. Set by the run loop for
    /// each batch of `run` (0 in guest mode and with instruments), 0
    /// outside a batch.
    pub(crate) in_place_rounds: Cell<u32>,
    /// Per-task counts for tasks someone is watching
    /// (`lowlevel::watch_checkpoints`).
    pub(crate) watches: RefCell<Vec<CheckpointWatchEntry>>,
    /// `!watches.is_empty()`, so `count_checkpoint` costs one check when
    /// nobody watches.
    pub(crate) watching: Cell<bool>,
    /// The nurseries whose body is being polled right now and that had not
    /// registered when it started (see `nursery`, "Lazy registration").
    pub(crate) lazy: crate::core::nursery::LazyBodies,
    /// Callbacks to run when a task exits (`Task::on_exit`).
    pub(crate) exit_hooks: RefCell<Vec<ExitHookEntry>>,
    /// `!exit_hooks.is_empty()`, so `task_exited` costs one check when
    /// there are none.
    pub(crate) has_exit_hooks: Cell<bool>,
}

pub(crate) type SystemTask = Pin<Box<dyn Future<Output = Result<()>>>>;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
    /// `CURRENT` holds a run: kept by [`set_current`], its only writer, so
    /// that [`is_in_run`] is one load (`CURRENT` has a destructor, so each
    /// access to it checks the thread-local's state, then borrows it).
    static IN_RUN: Cell<bool> = const { Cell::new(false) };
    /// `CURRENT`'s clock reads the system's monotonic clock from a fixed
    /// origin ([`Clock::std_origin`]): kept by [`set_current`] with
    /// `IN_RUN`, so that [`std_clock_in_run`] is one load (foreign timers
    /// read the run's clock as a `std::time::Instant` per request: hyper's
    /// header-read timeout).
    static STD_CLOCK: Cell<bool> = const { Cell::new(false) };
    /// Bumped by every [`State::wake_target`]: the only way a remembered
    /// waker (a park's, a poll waiter's, a nursery's) is used up. A
    /// [`PendingMark`](crate::lowlevel::PendingMark) reads it to know that
    /// the registration it marks is still in place.
    static TARGETS_USED: Cell<u64> = const { Cell::new(0) };
}

/// A poll waiter's registration changed (another status or waker) without
/// a wake: counted as a use, so that no `PendingMark` of it holds.
#[inline]
pub(crate) fn note_registration_moved() {
    TARGETS_USED.with(|c| c.set(c.get().wrapping_add(1)));
}

/// How many remembered wakers the runs on this thread have used up so far
/// (see `TARGETS_USED`).
#[inline]
pub(crate) fn targets_used() -> u64 {
    TARGETS_USED.with(Cell::get)
}

/// Runs `f` with the current thread's runtime, or returns `None` outside a
/// run (and while the thread's thread-locals are being destroyed: wakers
/// and drops may run then, and must find no run rather than panic).
///
/// The thread-local is only borrowed shared while `f` runs (no reference
/// count traffic); `f` may call this again. Only `run` itself replaces the
/// runtime, and never from inside `f`.
#[inline(always)]
pub(crate) fn with_runtime<R>(f: impl FnOnce(&Rc<Runtime>) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// The current runtime, or an error outside a run.
pub(crate) fn current() -> Result<Rc<Runtime>> {
    with_runtime(Rc::clone).ok_or_else(Error::outside_run)
}

/// Whether this thread is running a run (see `IN_RUN`).
#[inline]
pub(crate) fn is_in_run() -> bool {
    IN_RUN.with(Cell::get)
}

/// Whether this thread is running a run whose clock reads the system's
/// monotonic clock from a fixed origin (see `STD_CLOCK`): then the run's
/// clock as a `std::time::Instant` is `Instant::now()` itself.
#[inline]
pub(crate) fn std_clock_in_run() -> bool {
    STD_CLOCK.with(Cell::get)
}

pub(crate) fn set_current(rt: Option<Rc<Runtime>>) -> Option<Rc<Runtime>> {
    let new = rt.clone();
    // The clock is asked before any borrow here (it is user code).
    let std_clock = new.as_ref().is_some_and(|r| r.clock.std_origin().is_some());
    IN_RUN.with(|f| f.set(new.is_some()));
    STD_CLOCK.with(|f| f.set(std_clock));
    let old = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), rt));
    if let Some(old) = &old {
        old.state.borrow_mut().is_current = false;
    }
    if let Some(new) = &new {
        new.state.borrow_mut().is_current = true;
    }
    old
}

/// Whether this thread is running the run that owns `shared`.
pub(crate) fn is_current_run(shared: &Arc<Shared>) -> bool {
    with_runtime(|rt| Arc::ptr_eq(&rt.shared, shared)).unwrap_or(false)
}

/// The `Shared` block of the live run whose id ends in `short_id`: the
/// current one if it matches (the usual case), else from the registry.
pub(crate) fn shared_of_run(short_id: u16) -> Option<Arc<Shared>> {
    with_runtime(|rt| (rt.run_id as u16 == short_id).then(|| rt.shared.clone()))
        .flatten()
        .or_else(|| crate::core::token::live_run(short_id))
}

/// `task` with its full key if this thread runs that run and can look.
pub(crate) fn exact_task(shared: &Arc<Shared>, task: WakeRef) -> WakeRef {
    with_runtime(|rt| {
        if !Arc::ptr_eq(&rt.shared, shared) {
            return task;
        }
        match rt.state.try_borrow() {
            Ok(st) => st.exact(task),
            Err(_) => task,
        }
    })
    .unwrap_or(task)
}

/// Wakes `task` if this thread is running the run whose id ends in
/// `short_id`. False if it is not (the caller posts instead).
pub(crate) fn wake_local(short_id: u16, task: WakeRef) -> bool {
    with_runtime(|rt| rt.run_id as u16 == short_id && rt.wake_here(task)).unwrap_or(false)
}

/// Wakes `task` if this thread is running the run that owns `shared`.
pub(crate) fn wake_local_in(shared: &Arc<Shared>, task: WakeRef) -> bool {
    with_runtime(|rt| Arc::ptr_eq(&rt.shared, shared) && rt.wake_here(task)).unwrap_or(false)
}

impl Runtime {
    /// Wakes a task of this run, on its thread. If the state is borrowed
    /// (a waker fired from code the runtime itself called, which should not
    /// happen, but must not panic), the wake goes through the inbox.
    fn wake_here(&self, task: WakeRef) -> bool {
        if self.state.try_borrow_mut().is_ok() {
            self.with_state(|st| st.wake_ref(task));
        } else {
            self.shared.notify(self.shared.inbox.post_wake(task));
        }
        true
    }

    /// `waker.wake_by_ref()`, applied in place when it is one of this run's
    /// plain task wakers (no trip through the waker's vtable and the
    /// thread-local). Outside any state borrow.
    #[inline]
    pub(crate) fn wake_by_ref(&self, waker: &Waker) {
        match classify(waker) {
            Some(OurWaker::Plain(w)) if w.run == self.run_id as u16 => {
                let task = w.task_ref();
                let current = self.current_task.get();
                self.with_state(|st| {
                    if task.index == current.index
                        && task.generation == current.generation as u16 as u32
                    {
                        st.wake_task(current);
                    } else {
                        st.wake_ref(task);
                    }
                });
            }
            _ => waker.wake_by_ref(),
        }
    }

    /// Cancels the root task's scope: everything in the run but its
    /// system tasks (Ctrl-C, a failed system task, a sibling run failing).
    pub(crate) fn cancel_root(&self) {
        let root = self.root_cancel_status.get();
        self.with_state(|st| st.cancel(root));
    }

    /// Runs `f` on the state, then wakes any foreign wakers it queued and
    /// reports scheduled tasks to instruments, after the borrow has ended.
    #[inline]
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.state.borrow_mut();
        let r = f(&mut st);
        if !st.deferred {
            return r;
        }
        st.deferred = false;
        let foreign = std::mem::take(&mut st.pending_foreign);
        let retired = std::mem::take(&mut st.retired);
        let scheduled = std::mem::take(&mut st.scheduled_log);
        drop(st);
        drop(retired);
        for w in foreign {
            w.wake();
        }
        if !scheduled.is_empty() {
            self.instrument(|i, _| {
                for &t in &scheduled {
                    i.task_scheduled(crate::core::task::Task::from_id(self, t));
                }
            });
        }
        r
    }

    pub(crate) fn waker_for(&self, task: TaskId) -> Waker {
        task_waker(WakerWord::new(self.run_id, task))
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.current_time()
    }

    /// Counts a completed schedule point and/or cancel point.
    #[inline]
    pub(crate) fn count_checkpoint(&self, schedule: bool, cancel: bool) {
        self.schedule_points
            .set(self.schedule_points.get() + schedule as u64);
        self.cancel_points
            .set(self.cancel_points.get() + cancel as u64);
        if self.watching.get() {
            let task = self.current_task.get();
            for w in self
                .watches
                .borrow_mut()
                .iter_mut()
                .filter(|w| w.task == task)
            {
                w.counts.schedule_points += schedule as u64;
                w.counts.cancel_points += cancel as u64;
            }
        }
    }

    /// Whether the schedule point the current task is at may pass without
    /// leaving the poll, because the run loop's next tick would do nothing
    /// but poll this task again: no other task is ready (anywhere: run
    /// queue, a batch being run, a nursery's ready list), no other thread
    /// has posted anything, no deadline is due, and the reactor's poll is
    /// not due at that tick (`in_place_rounds`, which the pass then uses up
    /// as the tick it stands for, so the I/O poll comes exactly when it
    /// would have; 0 in guest mode, whose step is one tick, and with
    /// instruments, which would see the task step end). Counts the pass
    /// when it says yes.
    ///
    /// At most [`IN_PLACE_LIMIT`] times per batch (or in-place round): a
    /// task may poll several futures of its own with its waker (`join!`,
    /// `select!`), and one that spins on schedule points waiting for
    /// another must let it be polled.
    ///
    /// Used by a nursery's exit (a schedule point without a cancel point),
    /// by the shielded schedule point that ends a socket or pipe operation
    /// that did not wait (`IoOp`), and by the cross-run channel's after a
    /// send or receive that did not wait
    /// (`cross_run::channel::SchedulePoint`); `checkpoint()` always yields.
    #[inline]
    pub(crate) fn pass_schedule_point_in_place(&self) -> bool {
        // The usual refusal first (a busy run has other tasks ready), and
        // the quiet case (no deadline) inline; the rest out of line, so as
        // not to weigh on the callers' code.
        let timers = {
            let st = self.state.borrow();
            if st.ready_tasks != 0 {
                return false;
            }
            !st.timers.is_empty()
        };
        let passed = self.passed_in_place.get();
        let rounds = self.in_place_rounds.get();
        if passed >= IN_PLACE_LIMIT
            || rounds == 0
            || self.instruments_on.get()
            || self.shared.inbox.has_pending()
            || timers && self.deadline_due()
        {
            return false;
        }
        // The pass is the tick it stands for.
        self.in_place_rounds.set(rounds - 1);
        self.passed_in_place.set(passed + 1);
        true
    }

    /// Whether a deadline is due, as the run loop's next tick would find:
    /// the clock is read only if a deadline exists (as the tick does), and
    /// outside the state borrow (a clock is user code).
    fn deadline_due(&self) -> bool {
        if self.state.borrow().timers.is_empty() {
            return false;
        }
        let now = self.clock.current_time();
        self.state.borrow_mut().next_deadline() <= now
    }

    /// The end of a poll of nursery `id` that queued its children's wakes
    /// (`NurseryRecord::queueing`), once it has polled the children it
    /// took: either an in-place round (the children woken meanwhile are
    /// taken into `batch`, the round counted as one of the run loop's
    /// ticks; returns true), or the end of the queueing (the owner woken
    /// once if children are queued, as `release_queued_wakes`; false).
    ///
    /// A round when the run loop's next tick would do nothing but poll
    /// them: every ready task of the run is one of them (`ready_tasks`
    /// counts all, and the nursery's queue holds exactly its ready children
    /// once its poll has polled the ones it took), no other thread has
    /// posted anything, no deadline is due (the clock is read only then,
    /// and only if a deadline exists, as the tick would), and the I/O poll
    /// is not due at that tick (`in_place_rounds`, which the run loop keeps
    /// at 0 in guest mode and with instruments). Every task passing a
    /// schedule point during the last round still lets every other ready
    /// task run first: there is none. See "In-place rounds" in the
    /// `nursery` module docs.
    #[inline]
    pub(crate) fn end_of_nursery_poll(&self, id: NurseryId, batch: &mut Vec<u32>) -> bool {
        let rounds = self.in_place_rounds.get();
        let quiet = rounds > 0 && !self.instruments_on.get() && !self.shared.inbox.has_pending();
        let mut deadlines_checked = false;
        loop {
            let mut st = self.state.borrow_mut();
            let ready_tasks = st.ready_tasks as usize;
            let timers = !st.timers.is_empty();
            let Some(n) = st.nurseries.get_mut(id) else {
                return false;
            };
            let queued = n.ready.len();
            if queued == 0 {
                n.queueing = false;
                return false;
            }
            if !quiet || queued != ready_tasks {
                break;
            }
            if timers && !deadlines_checked {
                // The clock is user code: read outside the borrow, then
                // everything looked at again.
                drop(st);
                if self.deadline_due() {
                    break;
                }
                deadlines_checked = true;
                continue;
            }
            std::mem::swap(&mut n.ready, batch);
            st.shuffle(batch);
            drop(st);
            self.in_place_rounds.set(rounds - 1);
            self.passed_in_place.set(0);
            return true;
        }
        self.release_queued_wakes(id);
        false
    }

    /// Ends the queueing of nursery `id`'s poll (`NurseryRecord::queueing`):
    /// if children are queued, whoever polls the nursery is woken now,
    /// once; otherwise the next child wake will do it.
    pub(crate) fn release_queued_wakes(&self, id: NurseryId) {
        self.with_state(|st| {
            let Some(n) = st.nurseries.get_mut(id) else {
                return;
            };
            n.queueing = false;
            if !n.ready.is_empty() && !n.woken {
                n.woken = true;
                let target = std::mem::take(&mut n.waker);
                st.wake_target(target);
            }
        });
    }

    /// Runs the exit hooks of `task` (it has just exited). One `bool` check
    /// when there are none.
    pub(crate) fn task_exited(&self, task: TaskId) {
        if !self.has_exit_hooks.get() {
            return;
        }
        let mine: Vec<ExitHookEntry> = {
            let mut hooks = self.exit_hooks.borrow_mut();
            let (mine, rest): (Vec<_>, Vec<_>) = hooks.drain(..).partition(|h| h.task == task);
            *hooks = rest;
            self.has_exit_hooks.set(!hooks.is_empty());
            mine
        };
        for hook in mine {
            (hook.callback)();
        }
    }

    /// True if code polled right now is inside a cancelled scope. Without
    /// the state borrow while no status is cancelled (`cancel_status`,
    /// invariant 6).
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        !crate::core::cancel_status::no_status_cancelled()
            && self
                .state
                .borrow()
                .is_cancelled(self.current_cancel_status.get())
    }

    /// Calls `f` on each instrument, if there are any. The list is not
    /// borrowed while `f` runs (an instrument may add or remove instruments),
    /// and nothing is allocated per event. A hook that panics never unwinds
    /// through the run loop: see `instrument_panic`.
    #[inline]
    pub(crate) fn instrument(&self, f: impl Fn(&dyn Instrument, &Self)) {
        if !self.instruments_on.get() {
            return;
        }
        self.instrument_slow(&f);
    }

    #[cold]
    fn instrument_slow(&self, f: &dyn Fn(&dyn Instrument, &Self)) {
        let mut i = 0;
        loop {
            let inst = self.instruments.borrow().get(i).cloned();
            let Some(inst) = inst else { break };
            let hook = std::panic::AssertUnwindSafe(|| f(&*inst, self));
            match std::panic::catch_unwind(hook) {
                Ok(()) => i += 1,
                Err(payload) => {
                    self.remove_instrument(crate::core::instrument::address(&inst));
                    self.instrument_panic.borrow_mut().get_or_insert(payload);
                }
            }
        }
    }

    /// Removes `inst` from the list; true if it was there.
    pub(crate) fn remove_instrument(&self, addr: *const ()) -> bool {
        let mut list = self.instruments.borrow_mut();
        let before = list.len();
        list.retain(|i| crate::core::instrument::address(i) != addr);
        let removed = list.len() != before;
        let on = !list.is_empty();
        drop(list);
        self.instruments_on.set(on);
        self.state.borrow_mut().log_scheduled = on;
        removed
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// These records are per task or per wait: keep them from growing by accident.
    #[test]
    fn records_stay_small() {
        assert!(size_of::<TaskRecord>() <= 56);
        assert!(size_of::<ParkRecord>() <= 80);
        assert!(size_of::<WakeTarget>() <= 16);
    }
}
