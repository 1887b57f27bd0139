//! The task tree, as handles: tasks, the nurseries they opened, and the
//! tasks in those nurseries.
//!
//! [`Task`] and [`NurseryInfo`] are plain ids (copyable, no reference
//! counts) checked against the run's tables on every query, so holding one
//! never keeps anything alive and a stale one answers `None` or an empty list.
//! A nursery's body is part of the task that opened the nursery, as in Trio.

use crate::core::cancel_status::CancelStatusId;
use crate::core::nursery::NurseryId;
use crate::core::park::ParkState;
use crate::core::runtime::{self, Parent, Runtime, TaskId};
use crate::error::Result;
use std::fmt;

/// A task of the current run.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct Task {
    id: TaskId,
    run_id: u32,
}

/// Runs `f` on the state of run `run_id`, if that is the current run.
fn with_state_of<R>(run_id: u32, f: impl FnOnce(&runtime::State) -> Option<R>) -> Option<R> {
    runtime::with_runtime(|rt| {
        if rt.run_id != run_id {
            return None;
        }
        // A nursery whose body is running shows in the tree.
        rt.settle_lazy();
        f(&rt.state.borrow())
    })
    .flatten()
}

impl Task {
    pub(crate) fn from_id(rt: &Runtime, id: TaskId) -> Task {
        Task {
            id,
            run_id: rt.run_id,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&runtime::State) -> Option<R>) -> Option<R> {
        with_state_of(self.run_id, f)
    }

    /// The task's name (where it was spawned, unless named), or `None` if
    /// it has finished.
    pub fn name(&self) -> Option<String> {
        self.with(|st| st.tasks.get(self.id).map(|t| t.name.to_string()))
    }

    /// Where the task was spawned (`None` for the root task, or once it
    /// has finished).
    pub fn spawn_location(&self) -> Option<String> {
        self.with(|st| {
            let l = st.tasks.get(self.id)?.location?;
            Some(format!("{}:{}:{}", l.file(), l.line(), l.column()))
        })
    }

    /// If the task is blocked in one of the runtime's waits: where that wait
    /// was made (file:line:column of the call).
    pub fn waiting_at(&self) -> Option<String> {
        self.with(|st| {
            let (_, p) = st
                .parks
                .iter()
                .find(|(_, p)| matches!(p.state, ParkState::Waiting) && p.task == self.id)?;
            let l = p.location;
            Some(format!("{}:{}:{}", l.file(), l.line(), l.column()))
        })
    }

    /// Calls `f` once, on the run's thread, when this task exits (returns,
    /// fails, panics, or is dropped with its nursery). Dropping the returned
    /// [`ExitHook`] cancels it. If the task has already exited, `f` runs at
    /// once. This is how a primitive notices that a task holding it is gone
    /// (a lock's owner, say: Trio's `add_parking_lot_breaker`).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// trio::run(async {
    ///     let exited = Rc::new(Cell::new(false));
    ///     trio::open_nursery(async |n| {
    ///         n.start_soon(trio::sleep(0.001));
    ///         let child = n.child_tasks()[0];
    ///         let e = exited.clone();
    ///         child.on_exit(move || e.set(true))?.keep(); // until it fires
    ///         Ok(())
    ///     })
    ///     .await?;
    ///     assert!(exited.get());
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn on_exit(&self, f: impl FnOnce() + 'static) -> Result<ExitHook> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let rt = runtime::current()?;
        if rt.run_id != self.run_id {
            return Err(crate::error::Error::usage(
                "this task belongs to another run",
            ));
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        if !self.is_alive() {
            f();
            return Ok(ExitHook {
                id: 0,
                run_id: self.run_id,
            });
        }
        rt.exit_hooks.borrow_mut().push(ExitHookEntry {
            id,
            task: self.id,
            callback: Box::new(f),
        });
        rt.has_exit_hooks.set(true);
        Ok(ExitHook {
            id,
            run_id: self.run_id,
        })
    }

    /// Whether the task is still running.
    pub fn is_alive(&self) -> bool {
        self.with(|st| st.tasks.get(self.id).map(|_| ())).is_some()
    }

    /// The nursery the task runs in (`None` for the root task and system tasks).
    pub fn parent_nursery(&self) -> Option<NurseryInfo> {
        self.with(|st| match st.tasks.get(self.id)?.parent {
            Parent::Nursery { nursery, .. } => Some(NurseryInfo {
                id: nursery,
                run_id: self.run_id,
            }),
            Parent::Top { .. } => None,
        })
    }

    /// The nurseries this task has open, outermost first.
    pub fn child_nurseries(&self) -> Vec<NurseryInfo> {
        self.with(|st| {
            let mut v: Vec<NurseryId> = st
                .nurseries
                .iter()
                .filter(|(_, n)| n.owner == self.id && !n.hidden)
                .map(|(id, _)| id)
                .collect();
            // Inner nurseries are opened later; cancel-status depth orders them.
            v.sort_by_key(|id| {
                cancel_status_depth(st, st.nurseries.get(*id).map(|n| n.cancel_status))
            });
            Some(
                v.into_iter()
                    .map(|id| NurseryInfo {
                        id,
                        run_id: self.run_id,
                    })
                    .collect(),
            )
        })
        .unwrap_or_default()
    }
}

fn cancel_status_depth(st: &runtime::State, mut status: Option<CancelStatusId>) -> usize {
    let mut depth = 0;
    while let Some(s) = status.and_then(|s| st.cancel_statuses.get(s)) {
        depth += 1;
        status = s.parent;
    }
    depth
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.name())
            .finish()
    }
}

/// A callback registered with [`Task::on_exit`], in `Runtime::exit_hooks`
/// until the task exits (`Runtime::task_exited` runs it) or its
/// [`ExitHook`] is dropped.
pub(crate) struct ExitHookEntry {
    /// The `ExitHook`'s id (unique in the process; never 0).
    pub(crate) id: u64,
    /// The task whose exit runs it.
    pub(crate) task: TaskId,
    pub(crate) callback: Box<dyn FnOnce()>,
}

/// A registered [`Task::on_exit`] callback; dropping it unregisters it.
#[must_use = "dropping an ExitHook cancels it"]
pub struct ExitHook {
    id: u64,
    run_id: u32,
}

impl ExitHook {
    /// Leaves the callback registered until the task exits (instead of
    /// cancelling it when this handle is dropped).
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for ExitHook {
    fn drop(&mut self) {
        let id = self.id;
        if id == 0 {
            return;
        }
        let removed = runtime::with_runtime(|rt| {
            if rt.run_id != self.run_id {
                return None;
            }
            let mut hooks = rt.exit_hooks.borrow_mut();
            let i = hooks.iter().position(|h| h.id == id)?;
            let entry = hooks.remove(i);
            rt.has_exit_hooks.set(!hooks.is_empty());
            Some(entry)
        });
        // The callback (and what it captured) is dropped outside the borrow.
        drop(removed);
    }
}

impl fmt::Debug for ExitHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExitHook").field("id", &self.id).finish()
    }
}

/// A nursery of the current run, for walking the task tree.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct NurseryInfo {
    id: NurseryId,
    run_id: u32,
}

impl NurseryInfo {
    pub(crate) fn new(run_id: u32, id: NurseryId) -> Self {
        NurseryInfo { id, run_id }
    }

    fn with<R>(&self, f: impl FnOnce(&runtime::State) -> Option<R>) -> Option<R> {
        with_state_of(self.run_id, f)
    }

    /// The task that opened the nursery.
    pub fn parent_task(&self) -> Option<Task> {
        self.with(|st| {
            st.nurseries.get(self.id).map(|n| Task {
                id: n.owner,
                run_id: self.run_id,
            })
        })
    }

    /// The tasks running in the nursery, in spawn-slot order.
    pub fn child_tasks(&self) -> Vec<Task> {
        self.with(|st| {
            let mut v: Vec<(u32, TaskId)> = st
                .tasks
                .iter()
                .filter_map(|(id, t)| match t.parent {
                    Parent::Nursery { nursery, slot } if nursery == self.id => Some((slot, id)),
                    _ => None,
                })
                .collect();
            v.sort();
            Some(
                v.into_iter()
                    .map(|(_, id)| Task {
                        id,
                        run_id: self.run_id,
                    })
                    .collect(),
            )
        })
        .unwrap_or_default()
    }

    /// Where the nursery was opened (file:line:column).
    pub fn location(&self) -> Option<String> {
        self.with(|st| {
            let l = st.nurseries.get(self.id)?.location;
            Some(format!("{}:{}:{}", l.file(), l.line(), l.column()))
        })
    }

    /// Whether the nursery has finished (or is gone).
    pub fn is_closed(&self) -> bool {
        self.with(|st| st.nurseries.get(self.id).map(|n| n.closed))
            .unwrap_or(true)
    }
}

impl fmt::Debug for NurseryInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NurseryInfo").field("id", &self.id).finish()
    }
}

/// The task that is running now (a nursery body counts as the task that
/// opened the nursery).
///
/// ```
/// trio::run(async {
///     let me = trio::lowlevel::current_task();
///     assert_eq!(me.name().as_deref(), Some("<root>"));
///     assert!(me.parent_nursery().is_none());
///     assert_eq!(me, trio::lowlevel::current_root_task());
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// # Panics
///
/// Outside a run (misuse, see [Errors and panics](crate#errors-and-panics));
/// [`try_current_task`] is the fallible twin.
#[track_caller]
pub fn current_task() -> Task {
    match try_current_task() {
        Ok(t) => t,
        Err(_) => {
            crate::error::panic_outside_run("lowlevel::current_task", "lowlevel::try_current_task")
        }
    }
}

/// Like [`current_task`], but outside a run it is an
/// [`ErrorKind::Usage`](crate::ErrorKind::Usage) error instead of a panic.
pub fn try_current_task() -> Result<Task> {
    let rt = runtime::current()?;
    Ok(Task {
        id: rt.current_task.get(),
        run_id: rt.run_id,
    })
}

/// The run's root task (the future given to `run`).
///
/// # Panics
///
/// Outside a run (misuse, see [Errors and panics](crate#errors-and-panics));
/// [`try_current_root_task`] is the fallible twin.
#[track_caller]
pub fn current_root_task() -> Task {
    match try_current_root_task() {
        Ok(t) => t,
        Err(_) => crate::error::panic_outside_run(
            "lowlevel::current_root_task",
            "lowlevel::try_current_root_task",
        ),
    }
}

/// Like [`current_root_task`], but outside a run it is an
/// [`ErrorKind::Usage`](crate::ErrorKind::Usage) error instead of a panic.
pub fn try_current_root_task() -> Result<Task> {
    let rt = runtime::current()?;
    let id = rt.root_task.get();
    Ok(Task {
        id,
        run_id: rt.run_id,
    })
}
