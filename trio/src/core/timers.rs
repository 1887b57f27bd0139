//! The run's deadlines: a binary heap with lazy deletion.
//!
//! Cancel-scope deadlines and timed waits push an entry; nothing is ever
//! removed from the middle. When a scope exits or a wait ends early its entry
//! simply becomes stale: the owner says so with [`Timers::note_stale`], and a
//! stale entry is recognised (its target is gone, or has another deadline)
//! when it reaches the top. When stale entries outnumber live ones the heap is
//! rebuilt with only the live ones, so a loop that opens a million timeouts
//! that never fire keeps a heap of a handful of entries and never allocates
//! after warming up. Ties are broken by insertion order, so equal deadlines
//! fire first-in first-out.
//!
//! The heap itself knows nothing of its targets: the `impl State` below
//! decides whether an entry is live (its cancel status or park still has
//! that deadline and has not been cancelled or rescheduled) and fires it.

use crate::core::park::ParkState;
use crate::core::runtime::State;
use crate::core::slab::Key;
use crate::time::Instant;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerTarget {
    /// A cancel scope's deadline: cancels the scope when it fires.
    CancelStatus(Key),
    /// A timed wait: reschedules the park with `Ok(())` when it fires.
    Park(Key),
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerTarget)>>,
    seq: u64,
    stale: usize,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers::default()
    }

    pub(crate) fn push(&mut self, deadline: Instant, target: TimerTarget) {
        self.seq += 1;
        self.heap.push(Reverse((deadline, self.seq, target)));
    }

    pub(crate) fn peek(&self) -> Option<(Instant, TimerTarget)> {
        self.heap.peek().map(|Reverse((d, _, t))| (*d, *t))
    }

    pub(crate) fn pop(&mut self) {
        self.heap.pop();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// One more entry in the heap is dead.
    pub(crate) fn note_stale(&mut self) {
        self.stale += 1;
    }

    /// A dead entry has been popped.
    pub(crate) fn forget_stale(&mut self) {
        self.stale = self.stale.saturating_sub(1);
    }

    pub(crate) fn needs_pruning(&self) -> bool {
        self.stale > 64 && self.stale > self.heap.len() / 2
    }

    /// Keeps only the entries `live` accepts.
    pub(crate) fn prune(&mut self, mut live: impl FnMut(Instant, TimerTarget) -> bool) {
        self.heap.retain(|Reverse((d, _, t))| live(*d, *t));
        self.stale = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

impl State {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_on_ties_and_pruning() {
        let mut t = Timers::new();
        let a = TimerTarget::Park(Key {
            index: 1,
            generation: 0,
        });
        let b = TimerTarget::Park(Key {
            index: 0,
            generation: 0,
        });
        t.push(Instant::from_nanos(5), a);
        t.push(Instant::from_nanos(5), b);
        assert_eq!(t.peek().unwrap().1, a);
        for _ in 0..100 {
            t.push(
                Instant::from_nanos(1),
                TimerTarget::CancelStatus(Key::DANGLING),
            );
            t.note_stale();
        }
        assert!(t.needs_pruning());
        t.prune(|_, target| target != TimerTarget::CancelStatus(Key::DANGLING));
        assert_eq!(t.len(), 2);
    }
}
