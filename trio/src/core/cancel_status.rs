//! The cancel-status tree: how a cancellation spreads (Trio's
//! `CancelStatus`, as opposed to the `CancelScope` where it starts).
//!
//! One node per entered cancel scope or nursery, plus two roots: the root
//! task's and the system tasks' (the run cancels the second when the root
//! task finishes). A node's parent is the cancel status that was current
//! when it was entered; a nursery's children run under the nursery's node.
//!
//! # Invariants
//!
//! 1. *Effective cancellation is eager.* For every node,
//!    `effective == cancel_called || (!shield && parent.effective)`, brought
//!    up to date by [`State::recompute`] whenever an input changes (a cancel,
//!    a shield, a move, an expired deadline), so a checkpoint's cancel check
//!    ([`State::is_cancelled`]) is one table lookup, and none at all while no
//!    status on the thread is cancelled (invariant 6).
//! 2. *Parent and children agree.* `c` is in `p.children` iff
//!    `c.parent == Some(p)`, and then `p.children[c.index_in_parent] == c`,
//!    so detaching a node is one `swap_remove`. (Scopes nest, so a node
//!    normally leaves with no children; a leaked inner scope's node is
//!    handed to its grandparent, see [`State::remove_cancel_status`].)
//! 3. *A node finds the parks waiting under it.* Every park whose record
//!    says it waits under a node is in that node's `parked` list, so a
//!    cancellation wakes exactly those waits. The list is lazily deleted
//!    (like the timer heap): a park that ends or moves to another node
//!    leaves a stale entry behind and only decrements `parked_live`; stale
//!    entries are skipped when woken and dropped when they outnumber the
//!    live ones (see `State::register_park` in `park`).
//! 4. *A finite deadline has a live timer.* While `deadline` is finite and
//!    `cancel_called` is false, the timer heap holds an entry for the node
//!    with that deadline; changing either makes the entry stale (and says
//!    so with `Timers::note_stale`).
//! 5. *A node finds the cancel waiters registered under it.* Each
//!    registered `CancelWaiter` is one entry of its status's `waiters`
//!    (exact, not lazily deleted: a waiter removes its entry when it moves
//!    or drops), and a cancellation wakes them with the parks; entries
//!    still there when the status is removed are dropped with it (see
//!    `cancel_waiter`).
//! 6. *The thread's count of cancelled statuses.* `CANCELLED` counts the
//!    records with `effective` set, over every run's state on this thread
//!    (each `State` adds its own, and takes what it still holds back when
//!    it is dropped). It is exact: `effective` is set only at entry and in
//!    `recompute`, and both count the change, as does a record's removal.
//!    While it is zero no status is cancelled, so a cancel check
//!    ([`State::is_cancelled`], [`no_status_cancelled`]) is one load of a
//!    thread-local, without the table lookup (or, for the callers that
//!    first borrow the state, without the borrow). Runs on one thread
//!    share it, which only makes the shortcut rarer.

use crate::core::park::{ParkId, ParkState};
use crate::core::runtime::{State, TaskId, WakeTarget};
use crate::core::slab::{Key, Slab};
use crate::core::timers::TimerTarget;
use crate::error::Error;
use crate::time::Instant;
use std::cell::Cell;

thread_local! {
    /// Invariant 6: how many cancel statuses of the runs on this thread
    /// are effectively cancelled.
    static CANCELLED: Cell<u32> = const { Cell::new(0) };
}

/// Whether no cancel status of any run on this thread is effectively
/// cancelled (invariant 6): then no cancel check can fail.
#[inline]
pub(crate) fn no_status_cancelled() -> bool {
    CANCELLED.with(|c| c.get() == 0)
}

/// Counts a record whose `effective` went from false to true (`up`) or back
/// (invariant 6), in the thread's count and the state's own.
#[inline]
fn count_cancelled(own: &mut u32, up: bool) {
    if up {
        *own += 1;
        CANCELLED.with(|c| c.set(c.get() + 1));
    } else if *own > 0 {
        // (Zero after the run's teardown took its count out: see
        // `run::teardown`.)
        *own -= 1;
        CANCELLED.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Takes a dropped state's cancelled statuses out of the thread's count
/// (invariant 6): `State`'s `Drop`.
pub(crate) fn forget_cancelled(own: u32) {
    CANCELLED.with(|c| c.set(c.get().saturating_sub(own)));
}

pub(crate) type CancelStatusId = Key;

/// Why a cancel status exists (for the task tree).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum CancelStatusKind {
    /// The root task's.
    Root,
    /// The system tasks' (and cross-thread callbacks').
    System,
    /// An entered `CancelScope` (or `move_on_after` and friends).
    Scope,
    /// A nursery's own scope.
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

/// One node of the tree; see the module docs for the invariants.
pub(crate) struct CancelStatusRecord {
    /// The enclosing cancel status; `None` for the two roots (and for a
    /// node whose parent was already gone when it was entered, or was
    /// removed from under it, which only misuse can cause).
    pub(crate) parent: Option<CancelStatusId>,
    /// The cancel statuses entered directly inside this one (invariant 2).
    pub(crate) children: Vec<CancelStatusId>,
    /// This node's position in its parent's `children`, so it can leave in
    /// O(1) (invariant 2). Meaningless without a parent.
    index_in_parent: u32,
    /// The scope was cancelled: by `cancel`, by its deadline passing, or by
    /// a nursery's failing child. Sticky: never goes back to false.
    pub(crate) cancel_called: bool,
    /// Cancellation of the enclosing statuses does not reach this one.
    pub(crate) shield: bool,
    /// Whether a checkpoint here fails with `Cancelled`: the eager result
    /// of invariant 1, never set anywhere but `recompute` and entry.
    pub(crate) effective: bool,
    /// The scope's deadline (`Instant::INFINITY` if none); see invariant 4.
    pub(crate) deadline: Instant,
    /// The parks registered under this status, with stale entries (parks
    /// since removed or registered elsewhere) left in place: invariant 3.
    pub(super) parked: Vec<ParkId>,
    /// How many entries of `parked` are live: parks whose record's
    /// `cancel_status` is this node. Bounds the stale ones.
    pub(super) parked_live: u32,
    /// The wake targets of the [`CancelWaiter`](crate::lowlevel::CancelWaiter)s
    /// registered under this status, by the key each waiter holds
    /// (invariant 5; maintained in `cancel_waiter`). An entry a cancel has
    /// woken stays, emptied, until its waiter polls or drops. Boxed and
    /// made on the first registration: almost no status ever has a
    /// waiter, and every scope entered (each timeout) makes a record.
    pub(super) waiters: Option<Box<Slab<WakeTarget>>>,
    /// Why it exists, for the task tree.
    pub(crate) kind: CancelStatusKind,
    /// The task that entered it (the task tree shows it under that task).
    pub(crate) owner: TaskId,
}

/// What leaves a cancel status when it exits
/// ([`State::exit_cancel_status`]).
#[must_use]
pub(crate) struct CancelStatusExit {
    /// What propagates out of the scope: the body's error, minus the
    /// `Cancelled`s the scope caught.
    pub(crate) error: Option<Error>,
    /// Whether the scope caught a `Cancelled` (the public
    /// `CancelScope::cancelled_caught`).
    pub(crate) caught: bool,
}

impl State {
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
        let effective = cancel_called || (!shield && parent_eff);
        if effective {
            count_cancelled(&mut self.cancelled_statuses, true);
        }
        let id = self.cancel_statuses.insert(CancelStatusRecord {
            parent,
            children: Vec::new(),
            index_in_parent: 0,
            cancel_called,
            shield,
            effective,
            deadline,
            parked: Vec::new(),
            parked_live: 0,
            waiters: None,
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

    /// Makes `child` the last child of `parent` (invariant 2; `child` must
    /// have no parent now).
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

    /// Takes `child` out of its parent's `children` (invariant 2); its
    /// `parent` field is left for the caller to overwrite.
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
            if let Some(&moved) = p.children.get(index)
                && let Some(m) = self.cancel_statuses.get_mut(moved)
            {
                m.index_in_parent = index as u32;
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

    /// Whether a checkpoint under `status` must fail with `Cancelled`
    /// (one thread-local load while no status is cancelled: invariant 6).
    #[inline]
    pub(crate) fn is_cancelled(&self, status: CancelStatusId) -> bool {
        if no_status_cancelled() {
            return false;
        }
        self.cancel_statuses
            .get(status)
            .is_some_and(|s| s.effective)
    }

    /// Cancels the scope of `status` (idempotent) and wakes the waits that
    /// this cancels.
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

    /// Shields or unshields `status`; unshielding under a cancelled parent
    /// wakes the waits inside.
    pub(crate) fn set_shield(&mut self, status: CancelStatusId, shield: bool) {
        if let Some(s) = self.cancel_statuses.get_mut(status) {
            s.shield = shield;
            self.recompute(status);
        }
    }

    /// Moves the deadline of `status` (invariant 4); one at or before `now`
    /// cancels it at once. On a scope already cancelled it is only recorded.
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
    pub(super) fn recompute(&mut self, root: CancelStatusId) {
        let mut stack = std::mem::take(&mut self.recompute_stack);
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
            if changed {
                count_cancelled(&mut self.cancelled_statuses, eff);
            }
            if eff && changed {
                let parked = std::mem::take(&mut s.parked);
                for &pid in &parked {
                    if let Some(p) = self.parks.get_mut(pid)
                        && p.cancel_status == id
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
                self.wake_cancel_waiters(id);
            }
            if (changed || id == root)
                && let Some(s) = self.cancel_statuses.get(id)
            {
                stack.extend_from_slice(&s.children);
            }
        }
        self.recompute_stack = stack;
    }

    /// Decides what leaves a scope (see the module docs: its own
    /// cancellations are caught iff it was cancelled and its parent's
    /// cancellation is not visible to it), then removes the cancel status.
    pub(crate) fn exit_cancel_status(
        &mut self,
        status: CancelStatusId,
        error: Option<Error>,
    ) -> CancelStatusExit {
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
                CancelStatusExit {
                    error: rest,
                    caught: true,
                }
            }
            other => CancelStatusExit {
                error: other,
                caught: false,
            },
        }
    }

    /// Removes `status` (the last step of `exit_cancel_status`; alone, for a
    /// scope dropped before it finished, with nothing caught).
    pub(crate) fn remove_cancel_status(&mut self, status: CancelStatusId) {
        self.detach_child(status);
        let Some(s) = self.cancel_statuses.remove(status) else {
            return;
        };
        if s.effective {
            count_cancelled(&mut self.cancelled_statuses, false);
        }
        if s.deadline.is_finite() && !s.cancel_called {
            self.timers.note_stale();
        }
        // Waiters still registered here outlived their scope (invariant 5):
        // their wakers may be foreign, so they are dropped after the borrow.
        if let Some(mut waiters) = s.waiters {
            let entries: Vec<Key> = waiters.iter().map(|(k, _)| k).collect();
            for entry in entries {
                if let Some(target) = waiters.remove(entry) {
                    self.retire(target);
                }
            }
        }
        // Scopes nest, so normally nothing is left below; if an inner scope
        // was leaked, keep the tree connected.
        for child in s.children.iter().copied() {
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
}

#[cfg(test)]
mod count_tests {
    use super::no_status_cancelled;
    use crate::CancelScope;

    /// Invariant 6 after runs that cancel, shield, let deadlines expire,
    /// leak a cancelled scope's future, and panic with cancelled statuses.
    #[test]
    fn the_thread_count_returns_to_zero() {
        assert!(no_status_cancelled());
        crate::run(async {
            let outer = CancelScope::new();
            outer
                .run(async {
                    let inner = CancelScope::new();
                    inner.set_shield(true);
                    inner
                        .run(async {
                            outer.cancel();
                            assert!(!no_status_cancelled());
                            inner.set_shield(false);
                            inner.set_shield(true);
                            crate::lowlevel::checkpoint().await
                        })
                        .await?;
                    Ok(())
                })
                .await?;
            assert!(no_status_cancelled());
            crate::move_on_after(0.001, crate::sleep(10.0)).await?;
            assert!(no_status_cancelled());
            // A cancelled scope's future leaked mid-body.
            let leaked = CancelScope::new();
            let mut fut = Box::pin(leaked.run(async {
                crate::sleep(10.0).await?;
                Ok(())
            }));
            std::future::poll_fn(|cx| {
                let _ = fut.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
            leaked.cancel();
            drop(fut);
            Ok(())
        })
        .unwrap();
        assert!(
            no_status_cancelled(),
            "after a run that leaked a cancelled scope"
        );
        let r = std::panic::catch_unwind(|| {
            crate::run(async {
                let s = CancelScope::new();
                s.run(async {
                    s.cancel();
                    panic!("boom");
                    #[allow(unreachable_code)]
                    Ok(())
                })
                .await?;
                Ok(())
            })
        });
        assert!(r.is_err());
        assert!(no_status_cancelled(), "after a run that panicked");
    }
}
