//! Nurseries: every task has a parent that waits for it.
//!
//! # Design
//!
//! [`open_nursery`] returns a future that owns its children. The children's
//! futures live in the nursery's own storage (`NurseryInner`, one boxed
//! future per child) and are polled *only from inside the nursery future's
//! `poll`*, never by the run loop directly. A woken child pushes its slot
//! onto its nursery's ready list and wakes whoever polls the nursery (see
//! `runtime`), and the nursery then polls just the children that are ready.
//! The body is polled on each poll of the nursery future, with the waker of
//! the task that opened the nursery: it *is* that task.
//!
//! # Why children may borrow, soundly
//!
//! A child may be any `Future + 'env`, where `'env` is a lifetime that
//! outlives the `open_nursery` call: children can borrow the caller's locals,
//! as with `std::thread::scope`, and no `unsafe` is needed for it anywhere:
//! the compiler checks every borrow.
//!
//! - A child is polled only by the nursery future, through `&mut` access
//!   the nursery future has only while it is itself being polled, which the
//!   borrow checker allows only while `'env` is alive.
//! - If the nursery future is dropped, it drops every child first (in its
//!   `Drop`), still inside `'env`.
//! - If the nursery future is leaked (`mem::forget`), nothing polls or drops
//!   its children ever again: the run loop holds no pointer to them (only
//!   plain ids and wakers that are integers), so there is no way to reach
//!   the borrowed data after `'env` ends. The leaked children simply stop.
//!   Their handles (`Nursery<'env>`) carry `'env` too, so the type system
//!   keeps them inside `'env` as well. A test (`leaked_nursery_never_polls`)
//!   checks this.
//!
//! # Errors, panics and exit
//!
//! A child (or the body) that fails cancels the nursery's scope, so siblings
//! and the body get `Cancelled` at their next checkpoint. When the body and
//! every child are done, the errors are combined (a group if several), and
//! the nursery's scope removes the `Cancelled`s it caused (the usual scope
//! rule). A panic is caught, treated as a failure (siblings cancelled and
//! waited for), then resumed in the parent with its original payload.
//! Exiting is a schedule point only: it never fails with `Cancelled` by
//! itself. When the run loop's next tick would do nothing but poll this
//! task again (no other task ready, nothing posted by other threads, no
//! deadline due, the I/O poll not due at that tick, no instruments, not a
//! guest run), the exit passes that point in place, as that tick, instead
//! of returning `Pending` and coming back through the run loop, which no
//! other task could observe; at most
//! `runtime::IN_PLACE_LIMIT` times per batch, so that a `join!` branch
//! spinning on empty nurseries still lets its sibling be polled (see
//! `Runtime::pass_schedule_point_in_place`; `tests/fast_paths.rs` guards
//! each condition).
//!
//! # In-place rounds
//!
//! While a registered nursery polls (its body, then the children it took
//! from its ready list) in a batch that may take rounds (see below), a
//! child woken is only queued: the owner is not woken for it yet
//! (`NurseryRecord::queueing`). Once the children
//! it took are polled, the nursery looks at the queue. If the run loop's
//! next tick would do nothing but poll these children (every ready task
//! of the run is queued here, nothing posted by other threads, no deadline
//! due, the I/O poll not due at that tick, no instruments, not a guest
//! run), it polls them again at once: an *in-place round*, counted as one
//! of the run loop's ticks, so the reactor is still polled every
//! `IO_POLL_INTERVAL` ticks. Otherwise, or when it stops, it wakes its
//! owner once for whatever is queued (`Runtime::end_of_nursery_poll`;
//! `ReleaseWake` does it if the poll unwinds). A child passing a
//! schedule point in one round therefore still lets every other ready task
//! run first, as in a batch: there is none (DESIGN §2: tasks woken during
//! a tick run in the next one; a round is that tick). What changes is
//! only the order in which the owner joins the next batch (after tasks
//! woken later in the same poll; the order within a batch is unspecified),
//! and a seeded run's shuffles (a round shuffles too). With instruments or
//! in a guest run no round is possible and wakes are not queued: those see
//! exactly the old order. What a round saves is the trip
//! back through the run loop and down the owner's futures to this
//! nursery, once per wake-up of a busy server whose handlers end each
//! operation with a schedule point (`Runtime::end_of_nursery_poll`;
//! `tests/fast_paths.rs` guards each condition).
//!
//! # Lazy registration
//!
//! A nursery's run-side records (its `NurseryRecord` and its cancel status)
//! are made only when something needs them, so a nursery whose body
//! finishes in its first poll without spawning costs no table work. Until
//! then, the body runs under the enclosing cancel status, which is
//! equivalent: an unregistered nursery's scope has no deadline, no shield,
//! and cannot have been cancelled (cancelling needs its scope handle or a
//! failing child, both of which register it), and nothing is attached under
//! it. To keep that last point, anything that would attach to the current
//! cancel status or change the polling context registers the nursery first,
//! through [`Runtime::settle_lazy`]: entering a cancel scope, a park,
//! opening or polling a nursery, the task-tree queries. So does a body that
//! is still pending after its poll (only its first poll can be lazy),
//! spawning, asking for the scope handle or the nursery's info, and a
//! failure. While a lazy body is polled, its nursery is the innermost entry
//! of `Runtime::lazy` (`LazyBodies`), and every enclosing entry has
//! registered.

use crate::core::cancel::CancelScope;
use crate::core::cancel_status::{CancelStatusId, CancelStatusKind, NewCancelStatus};
use crate::core::runtime::{
    self, Parent, Runtime, State, TaskId, TaskName, TaskRecord, WakeTarget,
};
use crate::core::slab::Key;
use crate::core::task::{NurseryInfo, Task};
use crate::error::{Error, Result, TaskResult};
use crate::time::Instant;
use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;
use std::future::{Future, poll_fn};
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};

pub(crate) type NurseryId = Key;

/// The run's record of one open nursery (its children's futures live in
/// the nursery future itself, `NurseryInner`; this is what the rest of the
/// run needs to know). Removed when the nursery future finishes or is
/// dropped.
pub(crate) struct NurseryRecord {
    /// The task that opened the nursery: its body runs as part of that task.
    pub(crate) owner: TaskId,
    /// The nursery's own cancel status (its `cancel_scope`); the body and
    /// every child run under it.
    pub(crate) cancel_status: CancelStatusId,
    /// Slots of the children woken since the nursery last polled, for it to
    /// poll next. A child is pushed once per wake (its `TaskRecord.ready`
    /// stops a second push). A child that stops being ready without being
    /// polled (it exits, or moves out) takes its slot out (`child_exited`,
    /// `child_moved`), so that once a poll has polled the children it took,
    /// `ready.len()` is the number of this nursery's ready children, which
    /// an in-place round relies on (see "In-place rounds" in the module
    /// docs).
    pub(crate) ready: Vec<u32>,
    /// Whoever polls the nursery has been woken since the nursery's last
    /// poll, so further child wakes need not wake it again (one wake per
    /// batch). Cleared when the nursery polls.
    pub(crate) woken: bool,
    /// The nursery is polling, in a batch that may take in-place rounds: a
    /// child woken now is only queued, and the end of the poll decides
    /// whether to poll it in place or wake the owner (`ReleaseWake`).
    /// Ignored once instruments are on (they see the owner woken at the
    /// child's wake, as always).
    pub(crate) queueing: bool,
    /// The waker of whoever polls the nursery future, from its last poll;
    /// used up by the wake.
    pub(crate) waker: WakeTarget,
    /// The body and every child have finished: no more spawns (mirrors
    /// `NurseryInner::closed`, for the task tree).
    pub(crate) closed: bool,
    /// How many tasks have this nursery as their parent: spawned or moved
    /// in, and not yet exited or moved out. The nursery can finish only at
    /// zero. Changed only by `child_spawned`, `child_exited` and
    /// `child_moved`.
    pub(crate) live: u32,
    /// `start` calls into this nursery still waiting for their child to
    /// start (it will move in): the nursery stays open until they end.
    pub(crate) pending_starts: u32,
    /// The nursery `start` uses for a child that has not started yet: it is
    /// not shown as one of its owner's nurseries.
    pub(crate) hidden: bool,
    /// Where the nursery was opened, for the task tree.
    pub(crate) location: &'static Location<'static>,
}

/// A nursery's children, as the task table sees them: the only code that
/// changes `NurseryRecord::live`.
impl State {
    /// Makes the task record of a child spawned into `nursery` at `slot`,
    /// and counts it live there.
    pub(crate) fn child_spawned(
        &mut self,
        nursery: NurseryId,
        slot: u32,
        name: TaskName,
        location: &'static Location<'static>,
    ) -> TaskId {
        let task = self.tasks.insert(TaskRecord {
            name,
            parent: Parent::Nursery { nursery, slot },
            ready: false,
            location: Some(location),
        });
        if let Some(n) = self.nurseries.get_mut(nursery) {
            n.live += 1;
        }
        task
    }

    /// Removes the task record of a child of `nursery` that has exited, and
    /// stops counting it live there.
    #[inline]
    pub(crate) fn child_exited(&mut self, nursery: NurseryId, task: TaskId) {
        let queued = self.queued_slot(task);
        self.remove_task(task);
        if let Some(n) = self.nurseries.get_mut(nursery) {
            n.live -= 1;
            if let Some(slot) = queued {
                n.ready.retain(|&s| s != slot);
            }
        }
    }

    /// The slot of `task` if it is a ready child of a nursery (so its slot
    /// may sit in that nursery's `ready`): rare when it exits or moves out.
    #[inline]
    fn queued_slot(&self, task: TaskId) -> Option<u32> {
        match self.tasks.get(task)? {
            TaskRecord {
                ready: true,
                parent: Parent::Nursery { slot, .. },
                ..
            } => Some(*slot),
            _ => None,
        }
    }

    /// Moves a child from nursery `from` to slot `slot` of nursery `to`
    /// (`start`, once the child has started) and schedules it there.
    pub(crate) fn child_moved(&mut self, task: TaskId, from: NurseryId, to: NurseryId, slot: u32) {
        let queued = self.queued_slot(task);
        if let Some(t) = self.clear_ready(task) {
            t.parent = Parent::Nursery { nursery: to, slot };
        }
        if let Some(n) = self.nurseries.get_mut(from) {
            n.live -= 1;
            if let Some(old) = queued {
                n.ready.retain(|&s| s != old);
            }
        }
        if let Some(n) = self.nurseries.get_mut(to) {
            n.live += 1;
        }
        self.wake_task(task);
    }
}

/// A child's future as the nursery stores it: the user's future itself,
/// boxed once, its output converted by `poll_task`. (Wrapping it in an
/// `async` block to convert its output would store it twice over: rustc
/// keeps both the captured and the awaited copy.) Every spawn path
/// (`start_soon`, `start_soon_named`, `start`) boxes the future directly.
trait ChildTask {
    fn poll_task(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>>;
}

impl<F> ChildTask for F
where
    F: Future,
    F::Output: TaskResult,
{
    fn poll_task(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll(cx).map(TaskResult::into_task_result)
    }
}

type ChildFuture<'env> = Pin<Box<dyn ChildTask + 'env>>;

struct Child<'env> {
    /// `None` while the child is being polled.
    fut: Option<ChildFuture<'env>>,
    task: TaskId,
}

/// A nursery's own record: its children and what its handles need.
///
/// Shared (`Rc`) between the nursery future and its handles: one
/// allocation per nursery, even an empty one. A handle may be cloned and
/// outlive the nursery future (spawning into it is then an error), so it
/// cannot borrow the record from the future; and a record recycled for
/// another nursery would need `unsafe` to change the `'env` of its
/// children's type.
pub(crate) struct NurseryInner<'env> {
    run_id: u32,
    /// The nursery's record and cancel status, once registered (see
    /// "Lazy registration" in the module docs).
    ids: Cell<Option<(NurseryId, CancelStatusId)>>,
    /// The cancel status and task current when the nursery was opened:
    /// where it registers if it does so after its lazy poll.
    parent_status: CancelStatusId,
    owner: TaskId,
    location: &'static Location<'static>,
    slots: RefCell<Slots<'env>>,
    closed: Cell<bool>,
    scope: OnceCell<CancelScope>,
}

/// A nursery's children, by slot, and its free slots (one `RefCell` for
/// both: a nursery is one record less to make and drop).
struct Slots<'env> {
    /// The children, by slot (`None`: free). Dropped by hand (see the
    /// `Drop` impl), which skips the call that drops an empty `Vec`'s
    /// elements: one per nursery, most of which never spawn.
    children: ManuallyDrop<Vec<Option<Child<'env>>>>,
    /// The free slots of `children`, reused first.
    free: Vec<u32>,
}

impl Drop for Slots<'_> {
    #[inline]
    fn drop(&mut self) {
        // A `Vec` that never allocated holds nothing to drop.
        if self.children.capacity() != 0 {
            drop(ManuallyDrop::into_inner(std::mem::take(&mut self.children)));
        }
    }
}

/// The nurseries whose body is being polled lazily (`Runtime::lazy`; see
/// "Lazy registration" in the module docs): the innermost one in cells,
/// the enclosing ones (all registered) in a list. An empty nursery in a
/// task that is not itself in a lazy body, the common case, so costs a few
/// plain stores and no list push or pop (measured: 17 instructions less
/// per empty nursery than a list of all entries).
pub(crate) struct LazyBodies {
    /// The innermost entry's `NurseryInner` address (it outlives the
    /// entry); 0: no entry.
    top_token: Cell<usize>,
    /// Where the innermost entry's nursery was opened (set with
    /// `top_token`).
    top_location: Cell<Option<&'static Location<'static>>>,
    /// The innermost entry's ids once registered; `None` whenever
    /// `top_token` is 0.
    top_made: Cell<Option<(NurseryId, CancelStatusId)>>,
    /// The innermost entry exists and has not registered, so
    /// [`Runtime::settle_lazy`] costs one check otherwise.
    pending: Cell<bool>,
    /// The enclosing entries, innermost last. Each had registered before
    /// the entry inside it was made (opening and polling a nursery settle
    /// the lazy body they run in).
    outer: RefCell<Vec<LazyNursery>>,
}

impl LazyBodies {
    /// No nursery body being polled.
    pub(crate) fn new() -> Self {
        LazyBodies {
            top_token: Cell::new(0),
            top_location: Cell::new(None),
            top_made: Cell::new(None),
            pending: Cell::new(false),
            outer: RefCell::new(Vec::new()),
        }
    }

    /// Makes `inner` the innermost entry, unregistered; returns whether an
    /// enclosing entry was moved to `outer` (for `leave` to restore).
    #[inline]
    fn enter(&self, inner: &NurseryInner<'_>) -> bool {
        let nested = self.top_token.get() != 0;
        if nested {
            self.push_outer();
        }
        self.top_token.set(std::ptr::from_ref(inner).addr());
        self.top_location.set(Some(inner.location));
        self.pending.set(true);
        nested
    }

    /// Ends the innermost entry (`enter` returned `nested`) and returns its
    /// ids if it registered.
    #[inline]
    fn leave(&self, nested: bool) -> Option<(NurseryId, CancelStatusId)> {
        let made = if self.pending.replace(false) {
            None
        } else {
            self.top_made.take()
        };
        self.top_token.set(0);
        if nested {
            self.pop_outer();
        }
        made
    }

    #[cold]
    #[inline(never)]
    fn push_outer(&self) {
        let entry = LazyNursery {
            token: self.top_token.get(),
            location: self.top_location.get(),
            made: self.top_made.take(),
        };
        self.outer.borrow_mut().push(entry);
    }

    #[cold]
    #[inline(never)]
    fn pop_outer(&self) {
        let entry = self.outer.borrow_mut().pop();
        if let Some(e) = entry {
            self.top_token.set(e.token);
            self.top_location.set(e.location);
            self.top_made.set(e.made);
            self.pending.set(e.made.is_none());
        }
    }

    /// The ids of the entry of the nursery at address `token`: `None` if
    /// it has no entry (its body is not being polled), `Some(None)` if it
    /// has one and has not registered.
    fn made_of(&self, token: usize) -> Option<Option<(NurseryId, CancelStatusId)>> {
        if self.top_token.get() == token {
            return Some(self.top_made.get());
        }
        let outer = self.outer.borrow();
        outer
            .iter()
            .rev()
            .find(|l| l.token == token)
            .map(|l| l.made)
    }

    /// Records the ids of the entry of the nursery at address `token`.
    fn set_made(&self, token: usize, ids: (NurseryId, CancelStatusId)) {
        if self.top_token.get() == token {
            self.top_made.set(Some(ids));
            self.pending.set(false);
            return;
        }
        let mut outer = self.outer.borrow_mut();
        if let Some(l) = outer.iter_mut().rev().find(|l| l.token == token) {
            l.made = Some(ids);
        }
    }
}

impl fmt::Debug for LazyBodies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBodies")
            .field("top_token", &self.top_token.get())
            .field("top_made", &self.top_made.get())
            .field("pending", &self.pending.get())
            .finish_non_exhaustive()
    }
}

/// An enclosing entry of `LazyBodies`.
#[derive(Copy, Clone)]
struct LazyNursery {
    /// The `NurseryInner`'s address (it outlives the entry).
    token: usize,
    location: Option<&'static Location<'static>>,
    /// Its ids once registered.
    made: Option<(NurseryId, CancelStatusId)>,
}

impl Runtime {
    /// Registers the nursery whose body is being polled lazily, if any, so
    /// that the current cancel status is the one to attach to (see "Lazy
    /// registration" in the module docs). One check when there is none.
    #[inline]
    pub(crate) fn settle_lazy(&self) {
        if self.lazy.pending.get() {
            self.settle_lazy_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn settle_lazy_slow(&self) {
        let lazy = &self.lazy;
        lazy.pending.set(false);
        let token = lazy.top_token.get();
        if token == 0 || lazy.top_made.get().is_some() {
            return;
        }
        let Some(location) = lazy.top_location.get() else {
            return;
        };
        // Inside the body's poll: the current status and task are the
        // nursery's parent and owner.
        let parent = self.current_cancel_status.get();
        let owner = self.current_task.get();
        let ids = self.with_state(|st| st.register_nursery(parent, owner, location, false));
        self.current_cancel_status.set(ids.1);
        lazy.set_made(token, ids);
    }
}

impl State {
    /// Makes the records of a nursery: its cancel status and its entry.
    fn register_nursery(
        &mut self,
        parent: CancelStatusId,
        owner: TaskId,
        location: &'static Location<'static>,
        hidden: bool,
    ) -> (NurseryId, CancelStatusId) {
        let spec = NewCancelStatus::plain(Some(parent), CancelStatusKind::Nursery, owner);
        let status = self.enter_cancel_status(spec, Instant::NEG_INFINITY);
        let ready = self.take_list();
        let id = self.nurseries.insert(NurseryRecord {
            owner,
            cancel_status: status,
            ready,
            woken: false,
            queueing: false,
            waker: WakeTarget::NONE,
            closed: false,
            live: 0,
            pending_starts: 0,
            hidden,
            location,
        });
        (id, status)
    }
}

impl<'env> NurseryInner<'env> {
    /// Closed without ever registering: it has no records, and must not
    /// make any now (nothing would remove them).
    fn closed_unregistered(&self) -> bool {
        self.closed.get() && self.ids.get().is_none()
    }

    /// The nursery's ids, registering it first if it has not yet.
    fn ensure_made(&self, rt: &Runtime) -> (NurseryId, CancelStatusId) {
        if let Some(ids) = self.ids.get() {
            return ids;
        }
        let token = std::ptr::from_ref(self).addr();
        let register = || {
            rt.with_state(|st| {
                st.register_nursery(self.parent_status, self.owner, self.location, false)
            })
        };
        let ids = match rt.lazy.made_of(token) {
            Some(Some(ids)) => ids,
            Some(None) => {
                // Its body is being polled: register in place (if it is
                // the innermost entry, under the current status, which is
                // then its parent).
                if rt.lazy.top_token.get() == token {
                    rt.settle_lazy_slow();
                }
                match rt.lazy.made_of(token) {
                    Some(Some(ids)) => ids,
                    _ => {
                        let ids = register();
                        rt.lazy.set_made(token, ids);
                        ids
                    }
                }
            }
            // Not being polled (its body has finished).
            None => register(),
        };
        self.ids.set(Some(ids));
        ids
    }

    fn alloc_slot(&self) -> u32 {
        let mut slots = self.slots.borrow_mut();
        if let Some(slot) = slots.free.pop() {
            return slot;
        }
        crate::core::slab::push_capped(&mut slots.children, None);
        (slots.children.len() - 1) as u32
    }

    fn spawn(
        &self,
        fut: ChildFuture<'env>,
        name: TaskName,
        location: &'static Location<'static>,
    ) -> Result<TaskId> {
        if self.closed.get() {
            return Err(Error::usage(
                "this nursery is closed: its body and all its tasks have finished, so it accepts no new tasks",
            ));
        }
        let rt = runtime::current()?;
        if rt.run_id != self.run_id {
            return Err(Error::usage("this nursery belongs to another run"));
        }
        let (id, _) = self.ensure_made(&rt);
        let slot = self.alloc_slot();
        // Instruments see the task spawned, then scheduled (as in Trio), so
        // with instruments the wake waits until they have been told.
        let instrumented = rt.instruments_on.get();
        let task = rt.with_state(|st| {
            let task = st.child_spawned(id, slot, name, location);
            if !instrumented {
                st.wake_task(task);
            }
            task
        });
        self.slots.borrow_mut().children[slot as usize] = Some(Child {
            fut: Some(fut),
            task,
        });
        if instrumented {
            rt.instrument(|i, rt| i.task_spawned(Task::from_id(rt, task)));
            rt.with_state(|st| st.wake_task(task));
        }
        Ok(task)
    }
}

/// A handle to an open nursery: spawn tasks into it, cancel it.
///
/// Cheap to clone (a reference count); clones can be moved into children so
/// they spawn siblings or cancel the nursery, and passed to other tasks,
/// which may spawn into it while it is open. Spawning into a closed nursery
/// is an error. `'env` is the lifetime children may borrow for.
///
/// ```
/// trio::run(async {
///     let words = vec!["a", "b", "c"]; // children borrow this
///     let seen = std::cell::RefCell::new(Vec::new());
///     trio::open_nursery(async |nursery| {
///         for w in &words {
///             let seen = &seen;
///             nursery.start_soon(async move {
///                 trio::checkpoint().await?;
///                 seen.borrow_mut().push(*w);
///                 Ok(())
///             });
///         }
///         Ok(())
///     })
///     .await?;
///     assert_eq!(seen.borrow().len(), 3); // every child finished here
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct Nursery<'env> {
    inner: Rc<NurseryInner<'env>>,
}

impl Clone for Nursery<'_> {
    fn clone(&self) -> Self {
        Nursery {
            inner: self.inner.clone(),
        }
    }
}

impl fmt::Debug for Nursery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nursery")
            .field("id", &self.inner.ids.get().map(|(id, _)| id))
            .field("closed", &self.inner.closed.get())
            .field(
                "children",
                &self
                    .inner
                    .slots
                    .borrow()
                    .children
                    .iter()
                    .filter(|c| c.is_some())
                    .count(),
            )
            .finish()
    }
}

impl<'env> Nursery<'env> {
    /// Starts `fut` as a child task. It runs concurrently with the body and
    /// the other children; its name is where it was spawned. It may return
    /// `()` or `trio::Result<()>`; an error cancels the nursery and is
    /// reported by it.
    ///
    /// # Panics
    ///
    /// If the nursery is closed (its body and every task have finished) or
    /// belongs to another run, or outside a run: misuse, see
    /// [Errors and panics](crate#errors-and-panics). Code that may spawn
    /// into a nursery that could have closed (an executor handed to a
    /// library, say) uses [`try_start_soon`](Self::try_start_soon).
    #[track_caller]
    pub fn start_soon<F>(&self, fut: F)
    where
        F: Future + 'env,
        F::Output: TaskResult,
    {
        let location = Location::caller();
        let fut: ChildFuture<'env> = Box::pin(fut);
        if let Err(e) = self
            .inner
            .spawn(fut, TaskName::Location(location), location)
        {
            spawn_failed("start_soon", "try_start_soon", e);
        }
    }

    /// Like [`start_soon`](Self::start_soon), with a name for the task tree
    /// and instruments. Panics on misuse as `start_soon` does.
    #[track_caller]
    pub fn start_soon_named<F>(&self, name: &str, fut: F)
    where
        F: Future + 'env,
        F::Output: TaskResult,
    {
        let location = Location::caller();
        let fut: ChildFuture<'env> = Box::pin(fut);
        if let Err(e) = self
            .inner
            .spawn(fut, TaskName::Named(Rc::from(name)), location)
        {
            spawn_failed("start_soon_named", "try_start_soon_named", e);
        }
    }

    /// Like [`start_soon`](Self::start_soon), but spawning into a closed
    /// nursery, a nursery of another run, or outside a run is an
    /// [`ErrorKind::Usage`](crate::ErrorKind::Usage) error instead of a
    /// panic (the future is dropped).
    ///
    /// ```
    /// trio::run(async {
    ///     let mut escaped = None;
    ///     trio::open_nursery(async |nursery| {
    ///         escaped = Some(nursery.clone());
    ///         Ok(())
    ///     })
    ///     .await?;
    ///     let closed = escaped.unwrap();
    ///     let err = closed.try_start_soon(trio::checkpoint()).unwrap_err();
    ///     assert_eq!(err.kind(), trio::ErrorKind::Usage);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    #[track_caller]
    pub fn try_start_soon<F>(&self, fut: F) -> Result<()>
    where
        F: Future + 'env,
        F::Output: TaskResult,
    {
        let location = Location::caller();
        let fut: ChildFuture<'env> = Box::pin(fut);
        self.inner
            .spawn(fut, TaskName::Location(location), location)
            .map(|_| ())
    }

    /// Like [`start_soon_named`](Self::start_soon_named), with errors as
    /// [`try_start_soon`](Self::try_start_soon) has them.
    #[track_caller]
    pub fn try_start_soon_named<F>(&self, name: &str, fut: F) -> Result<()>
    where
        F: Future + 'env,
        F::Output: TaskResult,
    {
        let location = Location::caller();
        let fut: ChildFuture<'env> = Box::pin(fut);
        self.inner
            .spawn(fut, TaskName::Named(Rc::from(name)), location)
            .map(|_| ())
    }

    /// Starts a task and waits until it reports that it is ready.
    ///
    /// `f` is an async closure (`async |task_status| …`) or any closure that
    /// returns a future, such as `|task_status| serve(task_status, port)`
    /// for an `async fn serve(task_status: TaskStatus<u16>, port: u16)`.
    /// It gets a [`TaskStatus`]; until it calls
    /// [`started(value)`](TaskStatus::started), the task runs under the
    /// *caller's* cancel scopes, and an error it returns comes out of `start`
    /// itself. After `started`, it moves into this nursery and `start`
    /// returns `value`. Finishing without calling `started` is an error;
    /// calling it twice is impossible (it consumes the `TaskStatus`). A pending
    /// `start` keeps the nursery open.
    ///
    /// ```
    /// trio::run(async {
    ///     trio::open_nursery(async |nursery| {
    ///         let port = nursery
    ///             .start(async |task_status| {
    ///                 task_status.started(8080); // "listening"
    ///                 trio::sleep_forever().await
    ///             })
    ///             .await?;
    ///         assert_eq!(port, 8080);
    ///         // An `async fn` taking its `TaskStatus` and arguments:
    ///         let port = nursery.start(|task_status| serve(task_status, 8081)).await?;
    ///         assert_eq!(port, 8081);
    ///         nursery.cancel_scope().cancel();
    ///         Ok(())
    ///     })
    ///     .await?;
    ///     Ok(())
    /// })
    /// .unwrap();
    ///
    /// async fn serve(task_status: trio::TaskStatus<u16>, port: u16) -> trio::Result<()> {
    ///     task_status.started(port);
    ///     trio::sleep_forever().await
    /// }
    /// ```
    #[track_caller]
    pub fn start<F, Fut, V>(&self, f: F) -> impl Future<Output = Result<V>>
    where
        F: FnOnce(TaskStatus<V>) -> Fut + 'env,
        Fut: Future + 'env,
        Fut::Output: TaskResult,
        V: 'env,
    {
        let location = Location::caller();
        self.start_impl(f, TaskName::Location(location), location)
    }

    /// Like [`start`](Self::start), with a name for the task.
    #[track_caller]
    pub fn start_named<F, Fut, V>(&self, name: &str, f: F) -> impl Future<Output = Result<V>>
    where
        F: FnOnce(TaskStatus<V>) -> Fut + 'env,
        Fut: Future + 'env,
        Fut::Output: TaskResult,
        V: 'env,
    {
        let location = Location::caller();
        self.start_impl(f, TaskName::Named(Rc::from(name)), location)
    }

    async fn start_impl<F, Fut, V>(
        &self,
        f: F,
        name: TaskName,
        location: &'static Location<'static>,
    ) -> Result<V>
    where
        F: FnOnce(TaskStatus<V>) -> Fut + 'env,
        Fut: Future + 'env,
        Fut::Output: TaskResult,
        V: 'env,
    {
        if self.inner.closed.get() {
            return Err(Error::usage("start() on a closed nursery"));
        }
        let rt = runtime::current()?;
        if rt.run_id != self.inner.run_id {
            return Err(Error::usage("this nursery belongs to another run"));
        }
        let _pending = PendingStart::new(&rt, self.inner.ensure_made(&rt).0);
        let slot = Rc::new(StartSlot {
            value: Cell::new(None),
            started: Cell::new(false),
            caller: RefCell::new(WakeTarget::NONE),
        });
        let status = TaskStatus { slot: slot.clone() };
        let fut: ChildFuture<'env> = Box::pin(f(status));
        let mut hidden: Driver<'env> = Driver::open(rt.clone(), true, location);
        hidden.inner.spawn(fut, name, location)?;
        let mut moved = false;
        poll_fn(|cx| {
            // `started` may be called from another task: it wakes us.
            slot.caller.borrow_mut().update_in(cx.waker(), &rt);
            let r = hidden.poll_children::<()>(cx, None, &mut None);
            if slot.started.get() && !moved {
                moved = true;
                if hidden.transfer_children_to(&self.inner) {
                    // The hidden nursery is empty now: let it finish.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            r
        })
        .await;
        hidden.finish::<()>(None)?;
        slot.value.take().ok_or_else(|| {
            Error::usage("the task given to start() finished without calling task_status.started()")
        })
    }

    /// The nursery's own cancel scope: cancelling it cancels the body and
    /// every child.
    pub fn cancel_scope(&self) -> CancelScope {
        self.inner
            .scope
            .get_or_init(|| match runtime::with_runtime(Rc::clone) {
                // (A nursery that closed unregistered never registers: its
                // scope has ended.)
                Some(rt) if rt.run_id == self.inner.run_id && !self.inner.closed_unregistered() => {
                    let (_, status) = self.inner.ensure_made(&rt);
                    CancelScope::for_cancel_status(&rt, status)
                }
                _ => {
                    // Not in its run: a handle to a scope that has ended.
                    let s = CancelScope::new();
                    s.mark_exited();
                    s
                }
            })
            .clone()
    }

    /// True once the body and every task have finished.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// The tasks currently running in this nursery.
    pub fn child_tasks(&self) -> Vec<Task> {
        self.info().child_tasks()
    }

    /// The nursery as seen by the task-tree API.
    pub fn info(&self) -> NurseryInfo {
        let id = match runtime::with_runtime(Rc::clone) {
            Some(rt) if rt.run_id == self.inner.run_id && !self.inner.closed_unregistered() => {
                self.inner.ensure_made(&rt).0
            }
            _ => self
                .inner
                .ids
                .get()
                .map_or(crate::core::slab::Key::DANGLING, |(id, _)| id),
        };
        NurseryInfo::new(self.inner.run_id, id)
    }
}

/// The panic of `start_soon` and `start_soon_named` on misuse (kept out of
/// line, so the spawn path stays small).
#[cold]
#[inline(never)]
#[track_caller]
fn spawn_failed(method: &str, twin: &str, error: Error) -> ! {
    panic!("Nursery::{method}: {error}; use Nursery::{twin} where this can happen")
}

/// Polls the body of a nursery that has not registered (see "Lazy
/// registration" in the module docs) as the innermost entry of
/// `Runtime::lazy`; the nursery takes on the ids if it registered
/// meanwhile (then also the waker of this poll, and a ready list into
/// `batch`).
fn poll_lazy_body<T>(
    rt: &Runtime,
    inner: &NurseryInner<'_>,
    body: Pin<&mut dyn Future<Output = Result<T>>>,
    cx: &mut Context<'_>,
    batch: &mut Vec<u32>,
) -> std::thread::Result<Poll<Result<T>>> {
    // The body runs under the current status until something needs the
    // nursery registered, which makes the nursery's status current (and
    // only that changes it for good: whatever else changes it puts it
    // back, with its own guard), so only then is there one to put back.
    let status = rt.current_cancel_status.get();
    let nested = rt.lazy.enter(inner);
    let r = catch_unwind(AssertUnwindSafe(|| body.poll(cx)));
    // Only a finished body stays unregistered.
    if matches!(r, Ok(Poll::Pending)) {
        rt.settle_lazy();
    }
    let Some(made) = rt.lazy.leave(nested) else {
        // The common empty nursery.
        return r;
    };
    rt.current_cancel_status.set(status);
    inner.ids.set(Some(made));
    // Registered during the poll: take the waker now, and pass on a wake
    // that came before it (a spawn).
    let id = made.0;
    rt.with_state(|st| {
        let (run_id, shared_addr) = (st.run_id, st.shared_addr);
        let target = st.nurseries.get_mut(id).map(|n| {
            let old = n.waker.update(cx.waker(), run_id, shared_addr);
            let woke = n.woken.then(|| std::mem::take(&mut n.waker));
            (old, woke)
        });
        if let Some((old, woke)) = target {
            st.retire(old);
            if let Some(w) = woke {
                st.wake_target(w);
            }
        }
        if batch.capacity() == 0 {
            *batch = st.take_list();
        }
    });
    r
}

/// Ends the queueing of a registered nursery's poll however the poll ends
/// (a panic unwinding included), unless disarmed because
/// `Runtime::end_of_nursery_poll` did it (`Runtime::release_queued_wakes`).
struct ReleaseWake<'a> {
    rt: &'a Runtime,
    id: NurseryId,
}

impl Drop for ReleaseWake<'_> {
    fn drop(&mut self) {
        self.rt.release_queued_wakes(self.id);
    }
}

/// Restores the current task and cancel status when dropped.
struct RestoreCurrent<'a> {
    rt: &'a Runtime,
    task: TaskId,
    cancel_status: CancelStatusId,
}

impl<'a> RestoreCurrent<'a> {
    fn new(rt: &'a Runtime) -> Self {
        RestoreCurrent {
            rt,
            task: rt.current_task.get(),
            cancel_status: rt.current_cancel_status.get(),
        }
    }
}

impl Drop for RestoreCurrent<'_> {
    fn drop(&mut self) {
        self.rt.current_task.set(self.task);
        self.rt.current_cancel_status.set(self.cancel_status);
    }
}

/// Keeps the target nursery open while a `start` is pending.
struct PendingStart {
    rt: Rc<Runtime>,
    nursery: NurseryId,
}

impl PendingStart {
    fn new(rt: &Rc<Runtime>, nursery: NurseryId) -> Self {
        rt.with_state(|st| {
            if let Some(n) = st.nurseries.get_mut(nursery) {
                n.pending_starts += 1;
            }
        });
        PendingStart {
            rt: rt.clone(),
            nursery,
        }
    }
}

impl Drop for PendingStart {
    fn drop(&mut self) {
        let nursery = self.nursery;
        self.rt.with_state(|st| {
            if let Some(n) = st.nurseries.get_mut(nursery) {
                n.pending_starts -= 1;
                // It may be complete now: make sure it looks.
                st.poke_nursery(nursery);
            }
        });
    }
}

struct StartSlot<V> {
    value: Cell<Option<V>>,
    started: Cell<bool>,
    /// Whoever polls the `start` call, for `started` to wake.
    caller: RefCell<WakeTarget>,
}

/// Given to a task started with [`Nursery::start`]; call
/// [`started`](Self::started) once it is ready.
pub struct TaskStatus<V> {
    slot: Rc<StartSlot<V>>,
}

impl<V> TaskStatus<V> {
    /// Reports that the task is ready: `start` returns `value` and the task
    /// moves into the nursery `start` was called on (unless the caller is
    /// being cancelled, in which case it stays where it is and finishes
    /// there, as in Trio).
    pub fn started(self, value: V) {
        self.slot.value.set(Some(value));
        self.slot.started.set(true);
        // The caller of `start` is waiting (maybe in another task than the
        // one calling this): let it see the value now.
        let mut caller = std::mem::take(&mut *self.slot.caller.borrow_mut());
        caller.wake();
    }
}

impl<V> fmt::Debug for TaskStatus<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskStatus").finish_non_exhaustive()
    }
}

/// Opens a nursery, runs `body` in it with a handle, and returns when the
/// body and every task spawned into the nursery have finished.
///
/// The body runs as part of the calling task, inside the nursery's cancel
/// scope. Returns `Ok(Some(v))` with the body's value, `Ok(None)` if the body
/// was cancelled by the nursery's own scope (say, a child called
/// `nursery.cancel_scope().cancel()`), or the failures of the body and the
/// children: one error as itself, several as a group. Opening is not a
/// checkpoint; exiting is a schedule point only.
///
/// ```
/// use trio::ErrorKind;
/// trio::run(async {
///     let err = trio::open_nursery(async |nursery| {
///         nursery.start_soon(async { trio::sleep_forever().await }); // cancelled
///         nursery.start_soon(async { Err(trio::Error::new(ErrorKind::Broken, "boom")) });
///         Ok(())
///     })
///     .await
///     .unwrap_err();
///     assert_eq!(err.kind(), ErrorKind::Broken); // just the crash: the Cancelled is the nursery's own
///     Ok(())
/// })
/// .unwrap();
/// ```
#[track_caller]
pub fn open_nursery<'env, F, T>(body: F) -> impl Future<Output = Result<Option<T>>>
where
    F: AsyncFnOnce(Nursery<'env>) -> Result<T>,
{
    let location = Location::caller();
    async move {
        // (`with_runtime` inlines; `runtime::current` is a call.)
        let Some(rt) = runtime::with_runtime(Rc::clone) else {
            return Err(Error::outside_run());
        };
        let mut driver: Driver<'env> = Driver::open(rt, false, location);
        let handle = Nursery {
            inner: driver.inner.clone(),
        };
        let mut body_fut = pin!(body(handle));
        let mut out = None;
        poll_fn(|cx| {
            let b: Pin<&mut dyn Future<Output = Result<T>>> = body_fut.as_mut();
            driver.poll_children(cx, Some(b), &mut out)
        })
        .await;
        driver.finish(out)
    }
}

/// A nursery's failures so far (`Driver::failures`).
#[derive(Default)]
struct Failures {
    errors: Vec<Error>,
    /// `errors` holds a `Cancelled` (see `Driver::fail`).
    saw_cancelled: bool,
    /// The first panic's payload.
    panic: Option<Box<dyn Any + Send>>,
}

/// The part of a nursery future that polls children and collects outcomes.
pub(crate) struct Driver<'env> {
    rt: Rc<Runtime>,
    inner: Rc<NurseryInner<'env>>,
    body_done: bool,
    /// The failures so far, boxed on the first: most nurseries have none,
    /// and one word is less to make, check and drop than their fields.
    failures: Option<Box<Failures>>,
    batch: Vec<u32>,
    waited_since_body: bool,
    finished: bool,
    /// The next poll is the first, made in the same poll of the caller that
    /// looked up the current run (`open`): it need not check the run again.
    run_checked: bool,
}

impl<'env> Driver<'env> {
    /// A driver for a nursery opened now, in the current task and cancel
    /// status of `rt`, the current run (just looked up by the caller, so
    /// the first poll need not check it again). Always inlined: as a
    /// call it cost the empty nursery ~18 instructions (measured).
    #[inline(always)]
    fn open(rt: Rc<Runtime>, hidden: bool, location: &'static Location<'static>) -> Driver<'env> {
        // Opening inside a lazy body attaches under that body's nursery.
        rt.settle_lazy();
        let parent_status = rt.current_cancel_status.get();
        let owner = rt.current_task.get();
        // `start`'s hidden nursery registers at once; others when needed.
        let (ids, batch) = if hidden {
            rt.with_state(|st| {
                let ids = st.register_nursery(parent_status, owner, location, true);
                (Some(ids), st.take_list())
            })
        } else {
            (None, Vec::new())
        };
        Driver {
            // `new_cyclic` writes the record straight into the allocation;
            // `Rc::new` builds it on the stack and copies it over (a
            // `memcpy` call, ~30 instructions per nursery, measured).
            inner: Rc::new_cyclic(|_| NurseryInner {
                run_id: rt.run_id,
                ids: Cell::new(ids),
                parent_status,
                owner,
                location,
                slots: RefCell::new(Slots {
                    children: ManuallyDrop::new(Vec::new()),
                    free: Vec::new(),
                }),
                closed: Cell::new(false),
                scope: OnceCell::new(),
            }),
            body_done: hidden,
            failures: None,
            batch,
            waited_since_body: false,
            finished: false,
            run_checked: true,
            rt,
        }
    }

    fn fail(&mut self, error: Error) {
        let f = self.failures.get_or_insert_default();
        if error.is_cancelled() {
            // `Error::group` keeps only the first `Cancelled` of a list, and
            // the first one already cancelled the (sticky) scope: another
            // changes nothing, so it is not kept (no growth per child when
            // a cancelled nursery's children all end with `Cancelled`).
            if f.saw_cancelled {
                return;
            }
            f.saw_cancelled = true;
        }
        f.errors.push(error);
        self.cancel_own_scope();
    }

    fn record_panic(&mut self, payload: Box<dyn Any + Send>) {
        let f = self.failures.get_or_insert_default();
        if f.panic.is_none() {
            f.panic = Some(payload);
        }
        self.cancel_own_scope();
    }

    fn cancel_own_scope(&self) {
        let (_, status) = self.inner.ensure_made(&self.rt);
        self.rt.with_state(|st| st.cancel(status));
    }

    /// Polls the body (if ready) and the ready children. Ready when the
    /// nursery is finished and its exit schedule point has passed.
    fn poll_children<T>(
        &mut self,
        cx: &mut Context<'_>,
        body: Option<Pin<&mut dyn Future<Output = Result<T>>>>,
        body_out: &mut Option<T>,
    ) -> Poll<()> {
        if self.inner.closed.get() {
            // Closed by an earlier poll, which then took the exit schedule
            // point (see `exit`): nothing can change any more (a closed
            // nursery takes no spawn, `start` or moved-in child, and had no
            // live child), so this is the poll after that point.
            self.rt.count_checkpoint(true, false);
            return Poll::Ready(());
        }
        if !std::mem::replace(&mut self.run_checked, false) && !self.rt.state.borrow().is_current {
            // Polled outside its run: nothing sensible to do but finish.
            if !self.body_done {
                self.body_done = true;
                self.failures
                    .get_or_insert_default()
                    .errors
                    .push(Error::usage(
                        "a nursery was polled outside the run that opened it",
                    ));
            }
            self.close();
            return Poll::Ready(());
        }
        // Polling this nursery inside a lazy body changes the context.
        self.rt.settle_lazy();
        match self.inner.ids.get() {
            None => self.poll_unregistered(cx, body, body_out),
            Some(ids) => self.poll_registered(cx, ids, body, body_out),
        }
    }

    /// `poll_children` for a registered nursery (kept out of line, so that
    /// the short path of an unregistered one stays short).
    #[inline(never)]
    fn poll_registered<T>(
        &mut self,
        cx: &mut Context<'_>,
        ids: (NurseryId, CancelStatusId),
        mut body: Option<Pin<&mut dyn Future<Output = Result<T>>>>,
        body_out: &mut Option<T>,
    ) -> Poll<()> {
        let rt = self.rt.clone();
        let mut batch = std::mem::take(&mut self.batch);
        // Only a poll that may take in-place rounds queues its children's
        // wakes (instruments and guest runs see the owner woken as before).
        let queue_wakes = rt.in_place_rounds.get() > 0;
        rt.with_state(|st| self.register_poll(st, ids.0, cx, &mut batch, queue_wakes));
        // Put back the current task and cancel status however this poll ends (a
        // panic may unwind through it, from a hook, say).
        let restore = RestoreCurrent::new(&rt);
        // Children woken from here on are only queued (if `queue_wakes`);
        // dropping this wakes the owner for them, however the poll ends.
        let mut release = queue_wakes.then_some(ReleaseWake { rt: &rt, id: ids.0 });
        // The body is part of the task polling this nursery: it runs with
        // that task's waker, inside the nursery's scope. (It may be polled
        // when only a child woke; futures take spurious polls in stride.)
        if !self.body_done
            && let Some(b) = body.as_mut()
        {
            rt.current_cancel_status.set(ids.1);
            let r = catch_unwind(AssertUnwindSafe(|| b.as_mut().poll(cx)));
            self.body_polled(r, body_out);
        }
        loop {
            for &slot in &batch {
                self.poll_child(&rt, ids, slot);
            }
            batch.clear();
            // The children woken meanwhile, now if the run loop's next tick
            // would do nothing else (see "In-place rounds").
            if release.is_none() {
                break;
            }
            if !rt.end_of_nursery_poll(ids.0, &mut batch) {
                // Released there: nothing left for the guard to do.
                std::mem::forget(release.take());
                break;
            }
        }
        drop(restore);
        drop(release);
        self.batch = batch;
        self.after_poll(cx)
    }

    /// `poll_children` for a nursery that has not registered: no children,
    /// just the body to poll (see "Lazy registration" in the module docs).
    #[inline]
    fn poll_unregistered<T>(
        &mut self,
        cx: &mut Context<'_>,
        body: Option<Pin<&mut dyn Future<Output = Result<T>>>>,
        body_out: &mut Option<T>,
    ) -> Poll<()> {
        if !self.body_done
            && let Some(b) = body
        {
            // Only the cancel status can change (a registration sets the
            // nursery's), and `poll_lazy_body` puts it back; whatever
            // changes the current task puts it back with its own guard
            // (`RestoreCurrent` in `poll_registered`).
            let r = poll_lazy_body(&self.rt, &self.inner, b, cx, &mut self.batch);
            self.body_polled(r, body_out);
        }
        if self.inner.ids.get().is_none() {
            // Still not registered: the body has finished (a pending body
            // registers), and there was never a child. No record to mark
            // closed (`close`).
            self.inner.closed.set(true);
            return self.exit_point(cx);
        }
        // Registered during the poll: children it spawned are polled next
        // time (their wake reached this task's waker).
        self.after_first_registration(cx)
    }

    /// `after_poll`, kept out of the short path of `poll_unregistered`.
    #[inline(never)]
    fn after_first_registration(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.after_poll(cx)
    }

    /// Takes in the outcome of a poll of the body.
    #[inline]
    fn body_polled<T>(
        &mut self,
        r: std::thread::Result<Poll<Result<T>>>,
        body_out: &mut Option<T>,
    ) {
        match r {
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(Ok(v))) => {
                *body_out = Some(v);
                self.body_done = true;
            }
            Ok(Poll::Ready(Err(e))) => {
                self.body_done = true;
                self.fail(e);
            }
            Err(payload) => {
                self.body_done = true;
                self.record_panic(payload);
            }
        }
    }

    /// The end of a poll of a registered nursery: pending while the body or
    /// a child (or a `start`) is still running, else `exit`.
    #[inline]
    fn after_poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.body_done {
            return Poll::Pending;
        }
        // A read: a shared borrow, without `with_state`'s after-borrow
        // work (this runs once per batch of a busy nursery).
        let idle = match self.inner.ids.get() {
            None => true,
            Some((id, _)) => self
                .rt
                .state
                .borrow()
                .nurseries
                .get(id)
                .is_none_or(|n| n.live == 0 && n.pending_starts == 0),
        };
        if !idle {
            self.waited_since_body = true;
            return Poll::Pending;
        }
        self.exit(cx)
    }

    /// Closes the finished nursery and takes its exit schedule point.
    #[inline(always)]
    fn exit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.close();
        self.exit_point(cx)
    }

    /// The exit schedule point of a closed nursery (see `exit`).
    #[inline(always)]
    fn exit_point(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.waited_since_body {
            // Exiting is a schedule point, even when nothing had to be
            // waited for: the next poll (the shortcut at the top of
            // `poll_children`) ends it. If the run loop's next tick would
            // only poll this task again, it passes here (see
            // `Runtime::pass_schedule_point_in_place`).
            self.waited_since_body = true;
            if !self.rt.pass_schedule_point_in_place() {
                self.rt.wake_by_ref(cx.waker());
                return Poll::Pending;
            }
        }
        self.rt.count_checkpoint(true, false);
        Poll::Ready(())
    }

    /// Takes the waker of this poll and the ready list, for a registered
    /// nursery.
    fn register_poll(
        &self,
        st: &mut State,
        id: NurseryId,
        cx: &Context<'_>,
        batch: &mut Vec<u32>,
        queue_wakes: bool,
    ) {
        let (run_id, shared_addr) = (st.run_id, st.shared_addr);
        if let Some(n) = st.nurseries.get_mut(id) {
            let old = n.waker.update(cx.waker(), run_id, shared_addr);
            std::mem::swap(&mut n.ready, batch);
            n.woken = false;
            // With `queue_wakes`, until `ReleaseWake`: a child woken during
            // the poll is queued without waking the owner, who is polling us
            // right now.
            n.queueing = queue_wakes;
            st.retire(old);
        }
        st.shuffle(batch);
    }

    /// Polls the child in `slot` once (the hot path of a nursery: one
    /// poll per woken child per batch). Its exit is out of line
    /// (`child_finished`).
    #[inline(always)]
    fn poll_child(&mut self, rt: &Rc<Runtime>, ids: (NurseryId, CancelStatusId), slot: u32) {
        let taken = {
            let mut slots = self.inner.slots.borrow_mut();
            slots
                .children
                .get_mut(slot as usize)
                .and_then(Option::as_mut)
                .and_then(|c| c.fut.take().map(|f| (f, c.task)))
        };
        let Some((mut fut, task)) = taken else {
            return;
        };
        // `clear_ready` wakes nobody and retires nothing: a plain borrow,
        // without `with_state`'s after-borrow checks.
        rt.state.borrow_mut().clear_ready(task);
        rt.current_task.set(task);
        rt.current_cancel_status.set(ids.1);
        // A plain waker owns nothing (see `waker`): not dropping it saves
        // a call through its vtable per poll.
        let waker = std::mem::ManuallyDrop::new(rt.waker_for(task));
        let mut ccx = Context::from_waker(&waker);
        rt.instrument(|i, rt| i.before_task_step(Task::from_id(rt, task)));
        let r = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll_task(&mut ccx)));
        if let Ok(Poll::Pending) = r {
            rt.instrument(|i, rt| i.after_task_step(Task::from_id(rt, task)));
            if let Some(Some(c)) = self
                .inner
                .slots
                .borrow_mut()
                .children
                .get_mut(slot as usize)
            {
                c.fut = Some(fut);
            }
            return;
        }
        self.child_finished(rt, ids.0, slot, task, fut, r);
    }

    /// The rest of `poll_child` for a child whose poll ended it (finished
    /// or panicked): drops it, removes its records, reports its outcome.
    fn child_finished(
        &mut self,
        rt: &Rc<Runtime>,
        id: NurseryId,
        slot: u32,
        task: TaskId,
        fut: ChildFuture<'env>,
        r: std::thread::Result<Poll<Result<()>>>,
    ) {
        let outcome = match r {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(res)) => Ok(res),
            Err(payload) => Err(payload),
        };
        // Dropping the future runs user code: a panic there counts as the
        // task's own.
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(fut)));
        // Exited before the step ends (the order instruments see, as in Trio).
        rt.instrument(|i, rt| i.task_exited(Task::from_id(rt, task)));
        rt.instrument(|i, rt| i.after_task_step(Task::from_id(rt, task)));
        {
            let mut slots = self.inner.slots.borrow_mut();
            slots.children[slot as usize] = None;
            slots.free.push(slot);
        }
        rt.with_state(|st| st.child_exited(id, task));
        // Exit hooks are user code too: a panic in one is the task's panic,
        // reported by this nursery like any other.
        let hooks = if rt.has_exit_hooks.get() {
            catch_unwind(AssertUnwindSafe(|| rt.task_exited(task)))
        } else {
            Ok(())
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.fail(e),
            Err(payload) => self.record_panic(payload),
        }
        if let Err(payload) = dropped {
            self.record_panic(payload);
        }
        if let Err(payload) = hooks {
            self.record_panic(payload);
        }
    }

    #[inline]
    fn close(&mut self) {
        if self.inner.closed.replace(true) {
            return;
        }
        if let Some((id, _)) = self.inner.ids.get() {
            self.rt.with_state(|st| {
                if let Some(n) = st.nurseries.get_mut(id) {
                    n.closed = true;
                }
            });
        }
    }

    /// Moves every child into `target` (used by `start` once the child has
    /// called `started`). Does nothing, and returns false, if the caller's
    /// scope is cancelled: the child then finishes where it is.
    fn transfer_children_to(&mut self, target: &NurseryInner<'env>) -> bool {
        if target.closed.get() {
            return false;
        }
        let (from, from_status) = self.inner.ensure_made(&self.rt);
        let (target_id, target_status) = target.ensure_made(&self.rt);
        let cancelled = self.rt.with_state(|st| st.is_cancelled(from_status));
        if cancelled || target.closed.get() {
            return false;
        }
        let moving: Vec<Child<'env>> = self
            .inner
            .slots
            .borrow_mut()
            .children
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        if moving.is_empty() {
            return false;
        }
        for child in moving {
            let slot = target.alloc_slot();
            let task = child.task;
            self.rt
                .with_state(|st| st.child_moved(task, from, target_id, slot));
            target.slots.borrow_mut().children[slot as usize] = Some(child);
        }
        {
            let mut slots = self.inner.slots.borrow_mut();
            slots.free.clear();
            slots.children.clear();
        }
        // Scopes the child entered while starting now hang under the target.
        self.rt.with_state(|st| {
            let kids = st
                .cancel_statuses
                .get(from_status)
                .map(|s| s.children.clone())
                .unwrap_or_default();
            for k in kids {
                st.reparent_cancel_status(k, target_status);
            }
        });
        true
    }

    /// Exits the nursery's scope and returns its outcome; resumes a panic.
    #[inline]
    fn finish<T>(&mut self, body_out: Option<T>) -> Result<Option<T>> {
        if self.inner.ids.get().is_none()
            && self.failures.is_none()
            && self.inner.scope.get().is_none()
        {
            // Never registered, nothing failed, no scope handle: nothing to
            // exit or report (the common empty nursery).
            self.finished = true;
            return Ok(body_out);
        }
        self.finish_slow(body_out)
    }

    fn finish_slow<T>(&mut self, body_out: Option<T>) -> Result<Option<T>> {
        self.finished = true;
        // Handles to the nursery's scope (`CancelHandle`s) see it end.
        if let Some(scope) = self.inner.scope.get() {
            scope.mark_exited();
        }
        let (errors, panic) = match self.failures.take() {
            Some(f) => (f.errors, f.panic),
            None => (Vec::new(), None),
        };
        let error = if errors.is_empty() {
            None
        } else {
            Error::group(errors)
        };
        let Some((id, status)) = self.inner.ids.get() else {
            // Never registered: no failure (that registers), nothing to exit.
            if let Some(payload) = panic {
                resume_unwind(payload);
            }
            return match error {
                Some(e) => Err(e),
                None => Ok(body_out),
            };
        };
        let batch = std::mem::take(&mut self.batch);
        // Whether the scope caught anything does not matter here: a body
        // cancelled by the nursery's own scope returns `Ok(None)` either way.
        let exit = self.rt.with_state(|st| {
            let exit = st.exit_cancel_status(status, error);
            if let Some(n) = st.nurseries.remove(id) {
                st.give_list(n.ready);
                st.retire(n.waker);
            }
            st.give_list(batch);
            exit
        });
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
        match exit.error {
            Some(e) => Err(e),
            None => Ok(body_out),
        }
    }
}

impl Drop for Driver<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.finished {
            self.drop_unfinished();
        }
    }
}

impl Driver<'_> {
    #[cold]
    fn drop_unfinished(&mut self) {
        // Dropped while running (the future was dropped, not leaked): drop
        // every child now, while what they borrow is still alive.
        self.inner.closed.set(true);
        if let Some(scope) = self.inner.scope.get() {
            scope.mark_exited();
        }
        let children: Vec<Child<'_>> = self
            .inner
            .slots
            .borrow_mut()
            .children
            .drain(..)
            .flatten()
            .collect();
        let tasks: Vec<TaskId> = children.iter().map(|c| c.task).collect();
        drop(children);
        let Some((id, status)) = self.inner.ids.get() else {
            return;
        };
        self.rt.with_state(|st| {
            for &t in &tasks {
                st.remove_task(t);
            }
            if let Some(n) = st.nurseries.remove(id) {
                st.retire(n.waker);
            }
            st.remove_cancel_status(status);
        });
        for t in tasks {
            self.rt.task_exited(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    /// Lazy bodies inside lazy bodies (`LazyBodies::outer`): handles of the
    /// enclosing nurseries find their records while the inner bodies run.
    #[test]
    fn nested_lazy_bodies_find_their_records() {
        let ran = Cell::new(0);
        let out = crate::run(async {
            crate::open_nursery(async |outer| {
                crate::open_nursery(async |middle| {
                    // Spawning into the enclosing nurseries from an inner
                    // lazy body.
                    outer.start_soon(async {
                        ran.set(ran.get() + 1);
                    });
                    crate::open_nursery(async |_inner| {
                        middle.start_soon(async {
                            ran.set(ran.get() + 10);
                        });
                        let scope = outer.cancel_scope();
                        assert!(!scope.cancel_called());
                        Ok(())
                    })
                    .await?;
                    Ok(())
                })
                .await?;
                outer.cancel_scope().cancel();
                crate::checkpoint().await?;
                Ok(())
            })
            .await
        })
        .unwrap();
        // Cancelled by its own scope: the body returns `Ok(None)`.
        assert_eq!(out, None);
        assert_eq!(ran.get(), 11);
    }
}
