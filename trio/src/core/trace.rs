//! `tracing` integration (cargo feature `tracing`).
//!
//! An [`Instrument`] installed in every run when the feature is on: each
//! task gets a `trio.task` span (fields `name`, `spawned_at` and `path`, the
//! chain of task names from the root), entered while the task is polled, so
//! events a task emits land inside its span. Cancellation, expired deadlines
//! and deadlocks are reported as events with target `trio`. Without the
//! feature none of this is compiled.

use crate::core::instrument::Instrument;
use crate::core::task::Task;
use std::cell::RefCell;
use std::collections::HashMap;
use tracing::span::EnteredSpan;

#[derive(Default)]
pub(crate) struct TracingInstrument {
    spans: RefCell<HashMap<Task, tracing::Span>>,
    entered: RefCell<Vec<EnteredSpan>>,
}

/// "<root>/outer/inner": the names of the task and its ancestors.
fn path(task: Task) -> String {
    let mut names = Vec::new();
    let mut cur = Some(task);
    while let Some(t) = cur {
        names.push(t.name().unwrap_or_else(|| "?".into()));
        cur = t.parent_nursery().and_then(|n| n.parent_task());
    }
    names.reverse();
    names.join("/")
}

impl TracingInstrument {
    fn span(&self, task: Task) -> tracing::Span {
        if let Some(s) = self.spans.borrow().get(&task) {
            return s.clone();
        }
        let span = tracing::debug_span!(
            target: "trio",
            "trio.task",
            name = %task.name().unwrap_or_default(),
            spawned_at = %task.spawn_location().unwrap_or_default(),
            path = %path(task),
        );
        self.spans.borrow_mut().insert(task, span.clone());
        span
    }
}

impl Instrument for TracingInstrument {
    fn task_spawned(&self, task: Task) {
        let span = self.span(task);
        tracing::trace!(target: "trio", parent: &span, "task spawned");
    }

    fn before_task_step(&self, task: Task) {
        let span = self.span(task);
        self.entered.borrow_mut().push(span.entered());
    }

    fn after_task_step(&self, _task: Task) {
        self.entered.borrow_mut().pop();
    }

    fn task_exited(&self, task: Task) {
        if let Some(span) = self.spans.borrow_mut().remove(&task) {
            tracing::trace!(target: "trio", parent: &span, "task exited");
        }
    }
}
