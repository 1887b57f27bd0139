//! The run's state: its tables, and the scheduling and cancellation logic
//! that works on them.
//!
//! One [`Runtime`] exists per `trio::run`, reachable from its thread through a
//! thread-local while the run is active. Its mutable tables live in one
//! `RefCell<State>`:
//!
//! - `tasks`: every task: the root task, system tasks and nursery
//!   children. A task has a parent: the run loop (top level) or a nursery
//!   slot. (A nursery's body is not a task of its own: it is polled as part
//!   of the task that opened the nursery, as in Trio.)
//! - `nurseries`: per nursery, the list of its slots that are ready to poll
//!   and the waker of whoever polls the nursery future.
//! - `cancel_statuses`: the cancel-status tree (one node per entered cancel scope or
//!   nursery), with the *effective* cancellation of each kept up to date
//!   eagerly, so a checkpoint's cancel check is one table lookup.
//! - `parks`: every task currently parked in a [`Park`](crate::lowlevel::Park)
//!   (the low-level wait that every blocking operation uses), with the cancel
//!   status it waits under, so cancelling a scope wakes exactly the waits
//!   inside it.
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

use crate::core::clock::Clock;
use crate::core::inbox::WakeRef;
use crate::core::instrument::Instrument;
use crate::core::io::Reactor;
use crate::core::slab::{Key, Slab};
use crate::core::timers::{TimerTarget, Timers};
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

pub(crate) type TaskId = Key;
pub(crate) type NurseryId = Key;
pub(crate) type CancelStatusId = Key;
pub(crate) type ParkId = Key;

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

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parent {
    Top { slot: u32 },
    Nursery { nursery: NurseryId, slot: u32 },
}

pub(crate) struct TaskRecord {
    pub(crate) name: TaskName,
    pub(crate) parent: Parent,
    pub(crate) ready: bool,
    pub(crate) location: Option<&'static Location<'static>>,
}

/// Whom to wake: a waker remembered from the last poll. Ours are decoded
/// and applied in place (no reference counts, no allocation); foreign ones
/// are queued and woken after the state borrow ends.
#[derive(Clone, Default)]
pub(crate) struct WakeTarget(Option<Waker>);

impl WakeTarget {
    pub(crate) const NONE: WakeTarget = WakeTarget(None);

    /// Remembers `waker`, given to a poll in the current run `rt`, outside
    /// the state borrow (the waker it replaces is dropped here).
    pub(crate) fn update_in(&mut self, waker: &Waker, rt: &Runtime) {
        let _old = self.update(waker, rt.run_id, Arc::as_ptr(&rt.shared).addr());
    }

    /// Wakes whoever was remembered, once (outside any state borrow).
    pub(crate) fn wake(&mut self) {
        if let Some(w) = self.0.take() {
            w.wake();
        }
    }

    /// Remembers `waker`, given to a poll in this run (`run_id`,
    /// `shared_addr`: see `State`). Returns what it replaced, for the caller
    /// to drop after the state borrow (see [`State::retire`]).
    #[must_use]
    pub(crate) fn update(&mut self, waker: &Waker, run_id: u32, shared_addr: usize) -> WakeTarget {
        if let Some(w) = &self.0
            && w.will_wake(waker)
        {
            return WakeTarget::NONE;
        }
        // Ours are kept plain: the runtime's own tables do not count as
        // someone outside holding a waker.
        let ours = classify(waker).and_then(|w| w.task_in(run_id, shared_addr));
        let new = match ours {
            Some(task) => task_waker(WakerWord::new(run_id, task.key())),
            None => waker.clone(),
        };
        WakeTarget(self.0.replace(new))
    }

    /// Whether dropping this can run foreign code (it holds a waker that
    /// is not one of our plain ones).
    fn needs_retiring(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|w| !matches!(classify(w), Some(OurWaker::Plain(_))))
    }
}

pub(crate) struct NurseryRecord {
    /// The task that opened the nursery.
    pub(crate) owner: TaskId,
    pub(crate) cancel_status: CancelStatusId,
    pub(crate) ready: Vec<u32>,
    pub(crate) woken: bool,
    pub(crate) waker: WakeTarget,
    pub(crate) closed: bool,
    pub(crate) live: u32,
    pub(crate) pending_starts: u32,
    /// The nursery `start` uses for a child that has not started yet.
    pub(crate) hidden: bool,
    pub(crate) location: &'static Location<'static>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum CancelStatusKind {
    Root,
    System,
    Scope,
    Nursery,
}

/// What a new cancel status starts as.
pub(crate) struct NewCancelStatus {
    pub(crate) parent: Option<CancelStatusId>,
    pub(crate) kind: CancelStatusKind,
    pub(crate) owner: TaskId,
    pub(crate) shield: bool,
    pub(crate) cancel_called: bool,
    pub(crate) deadline: Instant,
}

impl NewCancelStatus {
    /// A plain cancel status: not shielded, not cancelled, no deadline.
    pub(crate) fn plain(
        parent: Option<CancelStatusId>,
        kind: CancelStatusKind,
        owner: TaskId,
    ) -> Self {
        NewCancelStatus {
            parent,
            kind,
            owner,
            shield: false,
            cancel_called: false,
            deadline: Instant::INFINITY,
        }
    }
}

pub(crate) struct CancelStatusRecord {
    pub(crate) parent: Option<CancelStatusId>,
    pub(crate) children: Vec<CancelStatusId>,
    index_in_parent: u32,
    pub(crate) cancel_called: bool,
    pub(crate) shield: bool,
    pub(crate) effective: bool,
    pub(crate) deadline: Instant,
    parked: Vec<ParkId>,
    parked_live: u32,
    pub(crate) kind: CancelStatusKind,
    pub(crate) owner: TaskId,
}

pub(crate) enum ParkState {
    Waiting,
    Done(Result<()>),
}

pub(crate) struct ParkRecord {
    pub(crate) state: ParkState,
    pub(crate) target: WakeTarget,
    pub(crate) cancel_status: Option<CancelStatusId>,
    pub(crate) task: TaskId,
    pub(crate) location: &'static Location<'static>,
    /// What the task waits for, for the task tree ("sleep", "Event.wait" …).
    pub(crate) label: &'static str,
    pub(crate) deadline: Instant,
}

pub(crate) struct State {
    pub(crate) run_id: u32,
    /// The address of the run's `Shared` block, to recognise its counted
    /// wakers (which hold it alive, so the address cannot be reused while
    /// one exists).
    pub(crate) shared_addr: usize,
    pub(crate) tasks: Slab<TaskRecord>,
    pub(crate) nurseries: Slab<NurseryRecord>,
    pub(crate) cancel_statuses: Slab<CancelStatusRecord>,
    pub(crate) parks: Slab<ParkRecord>,
    pub(crate) run_queue: Vec<TaskId>,
    pub(crate) timers: Timers,
    pub(crate) idle_waiters: BTreeMap<(Duration, u64), ParkId>,
    pub(crate) idle_seq: u64,
    pub(crate) rng: Option<u64>,
    /// Foreign wakers to wake once the borrow ends (moved here, not cloned:
    /// cloning one runs foreign code too).
    pub(crate) pending_foreign: Vec<Waker>,
    /// Wakers to drop once the borrow ends, for the same reason.
    retired: Vec<Waker>,
    pub(crate) log_scheduled: bool,
    pub(crate) scheduled_log: Vec<TaskId>,
    scratch: Vec<CancelStatusId>,
    /// Cleared ready lists of finished nurseries, so opening one does not allocate.
    spare_lists: Vec<Vec<u32>>,
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
            run_queue: Vec::new(),
            timers: Timers::new(),
            idle_waiters: BTreeMap::new(),
            idle_seq: 0,
            // xorshift must not start at zero.
            rng: seed.map(|s| s ^ 0x9E37_79B9_7F4A_7C15 | 1),
            pending_foreign: Vec::new(),
            retired: Vec::new(),
            log_scheduled: false,
            scheduled_log: Vec::new(),
            scratch: Vec::new(),
            spare_lists: Vec::new(),
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
        let parent = t.parent;
        if self.log_scheduled {
            self.scheduled_log.push(id);
        }
        match parent {
            Parent::Top { .. } => self.run_queue.push(id),
            Parent::Nursery { nursery, slot } => {
                if let Some(n) = self.nurseries.get_mut(nursery) {
                    n.ready.push(slot);
                    self.poke_nursery(nursery);
                }
            }
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
    pub(crate) fn wake_target(&mut self, target: WakeTarget) {
        if let Some(w) = target.0 {
            self.wake_waker(w);
        }
    }

    /// Keeps `target` to drop after the borrow if dropping it could run
    /// foreign code (the discipline in the module docs: no call-outs under
    /// the borrow).
    pub(crate) fn retire(&mut self, target: WakeTarget) {
        if target.needs_retiring()
            && let Some(w) = target.0
        {
            self.retired.push(w);
        }
    }

    /// Applies one of our wakers in place; queues a foreign one.
    fn wake_waker(&mut self, w: Waker) {
        match classify(&w).and_then(|o| o.task_in(self.run_id, self.shared_addr)) {
            Some(task) => {
                self.wake_ref(task);
                self.retire(WakeTarget(Some(w)));
            }
            None => self.pending_foreign.push(w),
        }
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

    // ----- cancel statuses --------------------------------------------

    /// Enters a new cancel status. `now` matters only for a finite deadline
    /// (one already past starts cancelled).
    pub(crate) fn enter_cancel_status(
        &mut self,
        spec: NewCancelStatus,
        now: Instant,
    ) -> CancelStatusId {
        let NewCancelStatus {
            parent,
            kind,
            owner,
            shield,
            cancel_called,
            deadline,
        } = spec;
        let cancel_called = cancel_called || deadline <= now;
        let parent = parent.filter(|p| self.cancel_statuses.get(*p).is_some());
        let parent_eff =
            parent.is_some_and(|p| self.cancel_statuses.get(p).is_some_and(|s| s.effective));
        let id = self.cancel_statuses.insert(CancelStatusRecord {
            parent,
            children: Vec::new(),
            index_in_parent: 0,
            cancel_called,
            shield,
            effective: cancel_called || (!shield && parent_eff),
            deadline,
            parked: Vec::new(),
            parked_live: 0,
            kind,
            owner,
        });
        if let Some(p) = parent {
            self.attach_child(p, id);
        }
        if deadline.is_finite() && !cancel_called {
            self.timers.push(deadline, TimerTarget::CancelStatus(id));
        }
        id
    }

    fn attach_child(&mut self, parent: CancelStatusId, child: CancelStatusId) {
        let Some(p) = self.cancel_statuses.get_mut(parent) else {
            return;
        };
        let index = p.children.len() as u32;
        p.children.push(child);
        if let Some(c) = self.cancel_statuses.get_mut(child) {
            c.parent = Some(parent);
            c.index_in_parent = index;
        }
    }

    fn detach_child(&mut self, child: CancelStatusId) {
        let Some(c) = self.cancel_statuses.get(child) else {
            return;
        };
        let (parent, index) = (c.parent, c.index_in_parent as usize);
        let Some(parent) = parent else { return };
        let Some(p) = self.cancel_statuses.get_mut(parent) else {
            return;
        };
        if p.children.get(index) == Some(&child) {
            p.children.swap_remove(index);
            if let Some(&moved) = p.children.get(index) {
                if let Some(m) = self.cancel_statuses.get_mut(moved) {
                    m.index_in_parent = index as u32;
                }
            }
        }
    }

    /// Moves `child` under `new_parent` and recomputes its cancellation.
    pub(crate) fn reparent_cancel_status(
        &mut self,
        child: CancelStatusId,
        new_parent: CancelStatusId,
    ) {
        self.detach_child(child);
        self.attach_child(new_parent, child);
        self.recompute(child);
    }

    /// Whether a checkpoint under `status` must fail with `Cancelled`.
    pub(crate) fn is_cancelled(&self, status: CancelStatusId) -> bool {
        self.cancel_statuses
            .get(status)
            .is_some_and(|s| s.effective)
    }

    pub(crate) fn cancel(&mut self, status: CancelStatusId) {
        let Some(s) = self.cancel_statuses.get_mut(status) else {
            return;
        };
        if s.cancel_called {
            return;
        }
        s.cancel_called = true;
        if s.deadline.is_finite() {
            self.timers.note_stale();
        }
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "trio", status = ?status, kind = ?s.kind, "cancel scope cancelled");
        self.recompute(status);
    }

    pub(crate) fn set_shield(&mut self, status: CancelStatusId, shield: bool) {
        if let Some(s) = self.cancel_statuses.get_mut(status) {
            s.shield = shield;
            self.recompute(status);
        }
    }

    pub(crate) fn set_deadline(&mut self, status: CancelStatusId, deadline: Instant, now: Instant) {
        let Some(s) = self.cancel_statuses.get_mut(status) else {
            return;
        };
        if s.deadline == deadline {
            return;
        }
        if s.deadline.is_finite() && !s.cancel_called {
            self.timers.note_stale();
        }
        s.deadline = deadline;
        if s.cancel_called {
            return;
        }
        if deadline <= now {
            self.cancel(status);
        } else if deadline.is_finite() {
            self.timers
                .push(deadline, TimerTarget::CancelStatus(status));
        }
    }

    /// Brings `effective` up to date below `root`, waking the parked waits of
    /// every status that becomes cancelled.
    fn recompute(&mut self, root: CancelStatusId) {
        let mut stack = std::mem::take(&mut self.scratch);
        stack.push(root);
        while let Some(id) = stack.pop() {
            let Some(s) = self.cancel_statuses.get(id) else {
                continue;
            };
            let parent_eff = s
                .parent
                .is_some_and(|p| self.cancel_statuses.get(p).is_some_and(|p| p.effective));
            let eff = s.cancel_called || (!s.shield && parent_eff);
            if eff == s.effective && id != root {
                continue;
            }
            let changed = eff != s.effective;
            let s = self.cancel_statuses.get_mut(id).expect("checked above");
            s.effective = eff;
            if eff && changed {
                let parked = std::mem::take(&mut s.parked);
                for &pid in &parked {
                    if let Some(p) = self.parks.get_mut(pid)
                        && p.cancel_status == Some(id)
                        && matches!(p.state, ParkState::Waiting)
                    {
                        // Used up: the park registers again when polled.
                        let target = std::mem::take(&mut p.target);
                        self.wake_target(target);
                    }
                }
                if let Some(s) = self.cancel_statuses.get_mut(id) {
                    s.parked = parked;
                }
            }
            if changed || id == root {
                if let Some(s) = self.cancel_statuses.get(id) {
                    stack.extend_from_slice(&s.children);
                }
            }
        }
        self.scratch = stack;
    }

    /// Decides what leaves a scope: its own cancellations are caught (and
    /// removed from `error`) iff the scope was cancelled and its parent's
    /// cancellation is not visible to it. Returns (what propagates, caught).
    /// Removes the status.
    pub(crate) fn exit_cancel_status(
        &mut self,
        status: CancelStatusId,
        error: Option<Error>,
    ) -> (Option<Error>, bool) {
        let should_catch = match self.cancel_statuses.get(status) {
            Some(s) => {
                let parent_visible = !s.shield
                    && s.parent
                        .is_some_and(|p| self.cancel_statuses.get(p).is_some_and(|p| p.effective));
                s.cancel_called && !parent_visible
            }
            None => false,
        };
        self.remove_cancel_status(status);
        match error {
            Some(e) if should_catch && e.leaves().any(Error::is_cancelled) => {
                let (_, rest) = e.split(Error::is_cancelled);
                (rest, true)
            }
            other => (other, false),
        }
    }

    pub(crate) fn remove_cancel_status(&mut self, status: CancelStatusId) {
        self.detach_child(status);
        let Some(s) = self.cancel_statuses.remove(status) else {
            return;
        };
        if s.deadline.is_finite() && !s.cancel_called {
            self.timers.note_stale();
        }
        // Scopes nest, so normally nothing is left below; if an inner scope
        // was leaked, keep the tree connected.
        for child in s.children {
            match s.parent {
                Some(p) => {
                    self.attach_child(p, child);
                    self.recompute(child);
                }
                None => {
                    if let Some(c) = self.cancel_statuses.get_mut(child) {
                        c.parent = None;
                    }
                }
            }
        }
    }

    /// The earliest deadline of the unshielded scopes around `status`, or −∞
    /// if one of them is cancelled (Trio's `current_effective_deadline`).
    pub(crate) fn effective_deadline(&self, status: CancelStatusId, now: Instant) -> Instant {
        let mut deadline = Instant::INFINITY;
        let mut cur = Some(status);
        while let Some(id) = cur {
            let Some(s) = self.cancel_statuses.get(id) else {
                break;
            };
            if s.cancel_called || s.deadline <= now {
                return Instant::NEG_INFINITY;
            }
            deadline = deadline.min(s.deadline);
            if s.shield {
                break;
            }
            cur = s.parent;
        }
        deadline
    }

    // ----- parks -------------------------------------------------------

    /// Records that `park` waits under `status`, to be woken through `waker`.
    pub(crate) fn register_park(&mut self, park: ParkId, status: CancelStatusId, waker: &Waker) {
        let (run_id, shared_addr) = (self.run_id, self.shared_addr);
        let Some(p) = self.parks.get_mut(park) else {
            return;
        };
        let replaced = p.target.update(waker, run_id, shared_addr);
        let old = if p.cancel_status == Some(status) {
            None
        } else {
            Some(p.cancel_status.replace(status))
        };
        self.retire(replaced);
        let Some(old) = old else { return };
        if let Some(old) = old
            && let Some(s) = self.cancel_statuses.get_mut(old)
        {
            s.parked_live = s.parked_live.saturating_sub(1);
        }
        if let Some(s) = self.cancel_statuses.get_mut(status) {
            s.parked.push(park);
            s.parked_live += 1;
            if s.parked.len() > 2 * s.parked_live as usize + 8 {
                let parks = &self.parks;
                s.parked.retain(|pid| {
                    parks
                        .get(*pid)
                        .is_some_and(|p| p.cancel_status == Some(status))
                });
            }
        }
    }

    /// Removes a park's record (its waker is retired, see [`State::retire`]).
    pub(crate) fn remove_park(&mut self, park: ParkId) -> Option<ParkRecord> {
        let mut p = self.parks.remove(park)?;
        let target = std::mem::take(&mut p.target);
        self.retire(target);
        if let Some(s) = p
            .cancel_status
            .and_then(|s| self.cancel_statuses.get_mut(s))
        {
            s.parked_live = s.parked_live.saturating_sub(1);
        }
        if p.deadline.is_finite() && matches!(p.state, ParkState::Waiting) {
            self.timers.note_stale();
        }
        Some(p)
    }

    /// Gives a parked wait its outcome and wakes it. False if it is not
    /// waiting (already rescheduled, aborted or gone).
    pub(crate) fn reschedule(&mut self, park: ParkId, outcome: Result<()>) -> bool {
        let Some(p) = self.parks.get_mut(park) else {
            return false;
        };
        if !matches!(p.state, ParkState::Waiting) {
            return false;
        }
        p.state = ParkState::Done(outcome);
        if p.deadline.is_finite() {
            self.timers.note_stale();
        }
        let target = std::mem::take(&mut p.target);
        self.wake_target(target);
        true
    }

    // ----- timers ------------------------------------------------------

    fn timer_is_live(&self, deadline: Instant, target: TimerTarget) -> bool {
        match target {
            TimerTarget::CancelStatus(id) => self
                .cancel_statuses
                .get(id)
                .is_some_and(|s| s.deadline == deadline && !s.cancel_called),
            TimerTarget::Park(id) => self
                .parks
                .get(id)
                .is_some_and(|p| p.deadline == deadline && matches!(p.state, ParkState::Waiting)),
        }
    }

    /// The earliest live deadline, dropping dead entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Instant {
        loop {
            let Some((deadline, target)) = self.timers.peek() else {
                return Instant::INFINITY;
            };
            if self.timer_is_live(deadline, target) {
                return deadline;
            }
            self.timers.pop();
            self.timers.forget_stale();
        }
    }

    /// Fires every deadline at or before `now`. True if any fired.
    pub(crate) fn expire_timers(&mut self, now: Instant) -> bool {
        let mut fired = false;
        while let Some((deadline, target)) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            if !self.timer_is_live(deadline, target) {
                self.timers.forget_stale();
                continue;
            }
            fired = true;
            match target {
                TimerTarget::CancelStatus(id) => {
                    // The entry is consumed here, so it must not count as stale.
                    if let Some(s) = self.cancel_statuses.get_mut(id) {
                        s.cancel_called = true;
                        #[cfg(feature = "tracing")]
                        tracing::debug!(target: "trio", status = ?id, %deadline, "deadline expired: cancel scope cancelled");
                    }
                    self.recompute(id);
                }
                TimerTarget::Park(id) => {
                    if let Some(p) = self.parks.get_mut(id) {
                        p.deadline = Instant::INFINITY;
                    }
                    self.reschedule(id, Ok(()));
                }
            }
        }
        if self.timers.needs_pruning() {
            let mut timers = std::mem::take(&mut self.timers);
            timers.prune(|d, t| self.timer_is_live(d, t));
            self.timers = timers;
        }
        fired
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
    pub(crate) instruments_on: Cell<bool>,
    pub(crate) reactor: RefCell<Reactor>,
    pub(crate) run_vars: RefCell<HashMap<usize, Box<dyn Any>>>,
    pub(crate) system_tasks: RefCell<Vec<Option<SystemTask>>>,
    pub(crate) system_cancel_status: Cell<CancelStatusId>,
    pub(crate) root_cancel_status: Cell<CancelStatusId>,
    pub(crate) root_task: Cell<TaskId>,
    /// The task callbacks from other threads run as (`run_sync_soon`).
    pub(crate) callback_task: Cell<TaskId>,
    /// Checkpoints completed so far (for `testing::assert_checkpoints`).
    pub(crate) schedule_points: Cell<u64>,
    pub(crate) cancel_points: Cell<u64>,
    /// Per-task counts for tasks someone is watching
    /// (`lowlevel::watch_checkpoints`): (watch id, task, schedule, cancel).
    pub(crate) watches: RefCell<Vec<(u64, TaskId, u64, u64)>>,
    pub(crate) watching: Cell<bool>,
    /// Callbacks to run when a task exits (`Task::on_exit`): (id, task, f).
    pub(crate) exit_hooks: RefCell<Vec<ExitHookEntry>>,
    pub(crate) has_exit_hooks: Cell<bool>,
}

pub(crate) type SystemTask = Pin<Box<dyn Future<Output = Result<()>>>>;
pub(crate) type ExitHookEntry = (u64, TaskId, Box<dyn FnOnce()>);

thread_local! {
    static CURRENT: RefCell<Option<Rc<Runtime>>> = const { RefCell::new(None) };
}

/// Runs `f` with the current thread's runtime, or returns `None` outside a
/// run (and while the thread's thread-locals are being destroyed: wakers
/// and drops may run then, and must find no run rather than panic).
///
/// The thread-local is only borrowed shared while `f` runs (no reference
/// count traffic); `f` may call this again. Only `run` itself replaces the
/// runtime, and never from inside `f`.
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

pub(crate) fn is_in_run() -> bool {
    with_runtime(|_| ()).is_some()
}

pub(crate) fn set_current(rt: Option<Rc<Runtime>>) -> Option<Rc<Runtime>> {
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), rt))
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

    /// Runs `f` on the state, then wakes any foreign wakers it queued and
    /// reports scheduled tasks to instruments, after the borrow has ended.
    #[inline]
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.state.borrow_mut();
        let r = f(&mut st);
        if st.pending_foreign.is_empty() && st.scheduled_log.is_empty() && st.retired.is_empty() {
            return r;
        }
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
            for w in self.watches.borrow_mut().iter_mut().filter(|w| w.1 == task) {
                w.2 += schedule as u64;
                w.3 += cancel as u64;
            }
        }
    }

    /// Runs the exit hooks of `task` (it has just exited). One `bool` check
    /// when there are none.
    pub(crate) fn task_exited(&self, task: TaskId) {
        if !self.has_exit_hooks.get() {
            return;
        }
        let mine: Vec<ExitHookEntry> = {
            let mut hooks = self.exit_hooks.borrow_mut();
            let (mine, rest): (Vec<_>, Vec<_>) = hooks.drain(..).partition(|h| h.1 == task);
            *hooks = rest;
            self.has_exit_hooks.set(!hooks.is_empty());
            mine
        };
        for (_, _, f) in mine {
            f();
        }
    }

    /// True if code polled right now is inside a cancelled scope.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.state
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
                    self.remove_instrument(&inst);
                    self.instrument_panic.borrow_mut().get_or_insert(payload);
                }
            }
        }
    }

    /// Removes `inst` from the list; true if it was there.
    pub(crate) fn remove_instrument(&self, inst: &Rc<dyn Instrument>) -> bool {
        let mut list = self.instruments.borrow_mut();
        let before = list.len();
        list.retain(|i| !Rc::ptr_eq(i, inst));
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
        assert!(size_of::<ParkRecord>() <= 88);
        assert!(size_of::<WakeTarget>() <= 16);
    }
}
