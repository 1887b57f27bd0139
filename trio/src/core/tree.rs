//! The task tree as text, and deadlock reports.
//!
//! A snapshot walks the run's tables: each task, the cancel scopes and
//! nurseries it has entered (in nesting order, from the cancel-status tree),
//! the tasks inside each nursery, and for every blocked task what it waits
//! for and the file:line of the call that waits. Nothing is recorded for
//! this on the hot path beyond what parking already stores (a label and a
//! `Location`), so the tree costs nothing until it is asked for.
//!
//! Deadlock detection (in the run loop) uses the same snapshot for its
//! report: when no task can ever run again, `run` fails with
//! [`ErrorKind::Deadlock`](crate::ErrorKind::Deadlock) whose [`Deadlock`]
//! carries the tree.

use crate::core::cancel_status::{CancelStatusId, CancelStatusKind};
use crate::core::park::ParkState;
use crate::core::runtime::{self, Parent, Runtime, State, TaskId};
use crate::error::{Error, ErrorKind, Result};
use crate::time::Instant;
use std::fmt::{self, Write};

/// A snapshot of a run's task tree, printable as an indented tree.
///
/// ```
/// trio::run(async {
///     trio::open_nursery(async |n| {
///         n.start_soon_named("worker", trio::sleep_forever());
///         trio::testing::wait_all_tasks_blocked().await?;
///         let tree = trio::lowlevel::task_tree()?;
///         println!("{tree}");
///         assert!(tree.to_string().contains("task \"worker\""));
///         assert!(tree.to_string().contains("waiting in sleep_forever at"));
///         n.cancel_scope().cancel();
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TaskTree {
    text: String,
}

impl TaskTree {
    /// The tree as text, one line per task, scope or nursery.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskTree(\n{})", self.text)
    }
}

/// The current run's task tree.
pub fn task_tree() -> Result<TaskTree> {
    let rt = runtime::current()?;
    // A nursery whose body is running shows in the tree.
    rt.settle_lazy();
    let running = rt.current_task.get();
    Ok(snapshot(&rt, Some(running)))
}

/// What the walk needs besides the output.
struct Walk<'a> {
    st: &'a State,
    now: Instant,
    /// The task taking the snapshot, if any (it is running, not blocked).
    running: Option<TaskId>,
}

pub(crate) fn snapshot(rt: &Runtime, running: Option<TaskId>) -> TaskTree {
    // The clock is read before the state is borrowed: it may look at run
    // state itself.
    let now = rt.now();
    let st = rt.state.borrow();
    let w = Walk {
        st: &st,
        now,
        running,
    };
    let mut out = String::new();
    let root = rt.root_task.get();
    if st.tasks.get(root).is_some() {
        task(&w, root, rt.root_cancel_status.get(), 0, &mut out);
    } else {
        out.push_str("<root>: finished\n");
    }
    let mut system: Vec<TaskId> = st
        .tasks
        .iter()
        .filter(|(id, t)| {
            matches!(t.parent, Parent::Top { .. }) && *id != root && *id != rt.callback_task.get()
        })
        .map(|(id, _)| id)
        .collect();
    system.sort();
    if !system.is_empty() {
        out.push_str("system tasks:\n");
        for t in system {
            task(&w, t, rt.system_cancel_status.get(), 1, &mut out);
        }
    }
    TaskTree { text: out }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn task(w: &Walk<'_>, id: TaskId, base: CancelStatusId, depth: usize, out: &mut String) {
    let st = w.st;
    let Some(t) = st.tasks.get(id) else { return };
    indent(out, depth);
    match &t.name {
        runtime::TaskName::Location(_) => out.push_str("task"),
        runtime::TaskName::Static(s) => {
            let _ = write!(out, "task {s}");
        }
        runtime::TaskName::Named(name) => {
            let _ = write!(out, "task {:?}", &**name);
        }
    }
    if let Some(l) = t.location {
        let _ = write!(out, " spawned at {}:{}:{}", l.file(), l.line(), l.column());
    }
    out.push_str(": ");
    let mut waits: Vec<_> = st
        .parks
        .iter()
        .filter(|(_, p)| matches!(p.state, ParkState::Waiting) && p.task == id)
        .map(|(_, p)| (p.label, p.location, p.deadline))
        .collect();
    waits.sort_by_key(|(_, l, _)| (l.file(), l.line(), l.column()));
    if Some(id) == w.running {
        out.push_str("running (taking this snapshot)");
    } else if t.ready {
        out.push_str("runnable");
    } else if !waits.is_empty() {
        for (i, (label, l, deadline)) in waits.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            let _ = write!(
                out,
                "waiting in {label} at {}:{}:{}",
                l.file(),
                l.line(),
                l.column()
            );
            if deadline.is_finite() {
                let _ = write!(out, " (until {deadline})");
            }
        }
    } else if st.nurseries.iter().any(|(_, n)| n.owner == id) {
        out.push_str("waiting for its nursery");
    } else {
        out.push_str("blocked outside trio's waits (a foreign future)");
    }
    out.push('\n');
    scopes(w, id, base, depth + 1, out);
}

fn attrs(out: &mut String, deadline: Instant, cancelled: bool, shield: bool, now: Instant) {
    let mut parts = Vec::new();
    if deadline.is_finite() {
        parts.push(format!("deadline {deadline}"));
    }
    if cancelled || deadline <= now {
        parts.push("cancelled".to_string());
    }
    if shield {
        parts.push("shielded".to_string());
    }
    if !parts.is_empty() {
        let _ = write!(out, " [{}]", parts.join(", "));
    }
}

/// The scopes and nurseries `owner` entered directly inside `status`.
fn scopes(w: &Walk<'_>, owner: TaskId, status: CancelStatusId, depth: usize, out: &mut String) {
    let (st, now) = (w.st, w.now);
    let Some(s) = st.cancel_statuses.get(status) else {
        return;
    };
    let mut children = s.children.clone();
    children.sort();
    for child in children {
        let Some(c) = st.cancel_statuses.get(child) else {
            continue;
        };
        if c.owner != owner {
            continue;
        }
        match c.kind {
            CancelStatusKind::Scope => {
                indent(out, depth);
                out.push_str("cancel scope");
                attrs(out, c.deadline, c.cancel_called, c.shield, now);
                out.push('\n');
                scopes(w, owner, child, depth + 1, out);
            }
            CancelStatusKind::Nursery => {
                let Some((nid, n)) = st.nurseries.iter().find(|(_, n)| n.cancel_status == child)
                else {
                    continue;
                };
                indent(out, depth);
                let l = n.location;
                if n.hidden {
                    let _ = write!(
                        out,
                        "starting a task (start() at {}:{}:{})",
                        l.file(),
                        l.line(),
                        l.column()
                    );
                } else {
                    let _ = write!(
                        out,
                        "nursery opened at {}:{}:{}",
                        l.file(),
                        l.line(),
                        l.column()
                    );
                }
                attrs(out, c.deadline, c.cancel_called, c.shield, now);
                out.push('\n');
                let mut kids: Vec<(u32, TaskId)> = st
                    .tasks
                    .iter()
                    .filter_map(|(id, t)| match t.parent {
                        Parent::Nursery { nursery, slot } if nursery == nid => Some((slot, id)),
                        _ => None,
                    })
                    .collect();
                kids.sort();
                for (_, kid) in kids {
                    task(w, kid, child, depth + 1, out);
                }
                scopes(w, owner, child, depth + 1, out);
            }
            CancelStatusKind::Root | CancelStatusKind::System => {}
        }
    }
}

/// Why a run failed with [`ErrorKind::Deadlock`]: no task could ever run
/// again. Carries the task tree at that moment.
///
/// ```
/// use trio::ErrorKind;
/// let err = trio::run(async {
///     let (tx, rx) = trio::open_memory_channel::<u8>(0);
///     rx.receive().await?; // nobody will ever send
///     drop(tx);
///     Ok(())
/// })
/// .unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Deadlock);
/// let report = err.find::<trio::lowlevel::Deadlock>().unwrap();
/// assert!(report.tree().as_str().contains("<root>"));
/// ```
#[derive(Debug, Clone)]
pub struct Deadlock {
    tree: TaskTree,
    frozen_clock: bool,
}

impl Deadlock {
    /// The task tree when the deadlock was found.
    pub fn tree(&self) -> &TaskTree {
        &self.tree
    }

    /// True if tasks wait for deadlines that will never arrive because the
    /// run's clock is frozen (a `MockClock` with rate 0 and no autojump,
    /// which nothing outside the blocked tasks can move).
    pub fn clock_is_frozen(&self) -> bool {
        self.frozen_clock
    }
}

impl fmt::Display for Deadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.frozen_clock {
            write!(
                f,
                "deadlock: every task is blocked, and the deadlines they wait for will never come: \
                 the clock is frozen (a MockClock with rate 0 and no autojump; use \
                 MockClock::autojump(), set a rate, or jump it from a task)\n{}",
                self.tree
            )
        } else {
            write!(
                f,
                "deadlock: every task is blocked and nothing (timer, I/O, thread, token or outside waker) can wake any of them\n{}",
                self.tree
            )
        }
    }
}

impl std::error::Error for Deadlock {}

pub(crate) fn deadlock_error(rt: &Runtime, frozen_clock: bool) -> Error {
    Error::with_kind(
        ErrorKind::Deadlock,
        Deadlock {
            tree: snapshot(rt, None),
            frozen_clock,
        },
    )
}
