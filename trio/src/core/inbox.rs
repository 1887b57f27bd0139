//! The cross-thread protocol of a run: its inbox, and the counts of what
//! outside the run could still wake a task.
//!
//! Other threads reach a run only through its [`Inbox`]: they *post* task
//! wakes, *reschedules* of parked waits and callbacks, and the run loop
//! *drains* them. Posting pushes under a mutex, then sets the `pending`
//! flag; only the post that turns the flag on asks its caller to interrupt
//! the reactor (one syscall per burst, not per message). The loop reads the
//! flag each iteration and takes the lock only when it is set.
//!
//! A reschedule ([`Inbox::post_reschedule`]) is how a cross-run primitive
//! ends a parked wait of this run from another thread: the wait's key
//! only, no allocation and no callback. `drain` hands them to the loop
//! with the task wakes, and the loop applies both in the one borrow of its
//! state it takes for the wakes, before it runs the callbacks drained with
//! them (a reschedule only makes a task runnable, and tasks run after the
//! callbacks anyway). The loop owns the three buffers and swaps them with
//! the queue's, so a post allocates nothing in the steady state.
//!
//! The inbox also counts the things outside the run that might post later:
//! live [`TrioToken`](crate::lowlevel::TrioToken)s, clones of task wakers
//! held outside the runtime, and [`ExternalWork`](crate::lowlevel::ExternalWork)
//! guards. The run loop calls itself deadlocked only when nothing is
//! runnable, no deadline or fd can fire, and [`Inbox::is_quiet`] says that
//! nothing is posted and nobody outside is left to post.
//!
//! # Why the deadlock check cannot miss a post
//!
//! Every holder follows one rule: *post first, then release* (a thread that
//! calls `run_sync_soon` and drops its token; a waker woken, then dropped;
//! a worker that posts its result, then drops its work guard). Releasing
//! decrements a count with `Release` ordering and then posts an empty
//! message (a *poke*), so a loop blocked in the reactor looks again.
//!
//! `is_quiet` reads the counts *first* (with `Acquire`) and the `pending`
//! flag *last*. If it sees a count at zero, it has synchronised with the
//! decrement that made it zero, so everything that holder posted before
//! releasing is visible: either still `pending`, or already drained by this
//! loop earlier in the iteration (the loop is the only one that clears the
//! flag, and it runs what it drained before it checks). If it sees a count
//! above zero, it does not report, and blocks; the holder's release pokes
//! the reactor, and the loop checks again. Reading `pending` first (as an
//! earlier version did) loses exactly this race: the flag is read before the
//! post, the count after the release. The loom model at the end of this file
//! checks both orders of events for tokens, wakers and work guards.
//!
//! A cross-run waiter releases its count *by its post*
//! ([`Inbox::outside_waker_released_by_post`]): right after posting the
//! reschedule that ends its wait, the waking thread gives the count back
//! without a poke. The post itself is the poke: it set `pending` (and
//! interrupted the reactor if the flag was off) before the count went, so
//! the argument above holds unchanged, and the loom model checks this
//! order too.
//!
//! Under `cfg(loom)` the atomics and mutex are loom's, so the model runs this
//! very code.

#[cfg(loom)]
use loom::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering},
};
#[cfg(not(loom))]
use std::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering},
};

use crate::core::park::WaitKey;

/// A callback posted with `run_sync_soon`.
pub(crate) type Callback = Box<dyn FnOnce() + Send>;

/// A task to wake, as a waker fired on another thread names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct WakeRef {
    pub(crate) index: u32,
    /// The task's generation: all 32 bits from a counted waker, only the
    /// low 16 from a plain one (see `waker`).
    pub(crate) generation: u32,
    pub(crate) exact: bool,
}

impl WakeRef {
    pub(crate) fn exact(key: crate::core::slab::Key) -> Self {
        WakeRef {
            index: key.index,
            generation: key.generation,
            exact: true,
        }
    }

    /// The task's key (exact only if `exact`).
    pub(crate) fn key(self) -> crate::core::slab::Key {
        crate::core::slab::Key {
            index: self.index,
            generation: self.generation,
        }
    }
}

/// What is waiting for the loop.
#[derive(Default)]
struct Queue {
    wakes: Vec<WakeRef>,
    /// Parked waits of this run to give `Ok(())` (see the module docs).
    reschedules: Vec<WaitKey>,
    callbacks: Vec<Callback>,
    /// Set when the run ends: later posts are refused.
    closed: bool,
}

/// What a post asks of its caller.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum Posted {
    /// The first post since the loop last drained: interrupt the reactor.
    Notify,
    /// The loop has already been told.
    Queued,
    /// The run has ended; nothing was posted.
    Closed,
}

/// See the module docs.
pub(crate) struct Inbox {
    queue: Mutex<Queue>,
    /// Set by a post, cleared by the loop just before it drains.
    pending: AtomicBool,
    /// Live `TrioToken`s.
    tokens: AtomicUsize,
    /// Clones of task wakers that exist outside the runtime's own tables.
    outside_wakers: AtomicIsize,
    /// Live `ExternalWork` guards.
    external_work: AtomicUsize,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Inbox {
            queue: Mutex::new(Queue::default()),
            pending: AtomicBool::new(false),
            tokens: AtomicUsize::new(0),
            outside_wakers: AtomicIsize::new(0),
            external_work: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Pushes and swaps only: a panic while holding the lock cannot leave
        // the queue inconsistent, so poisoning is ignored.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[inline]
    fn post(&self, f: impl FnOnce(&mut Queue)) -> Posted {
        let mut queue = self.lock();
        if queue.closed {
            return Posted::Closed;
        }
        f(&mut queue);
        drop(queue);
        if self.pending.swap(true, Ordering::AcqRel) {
            Posted::Queued
        } else {
            Posted::Notify
        }
    }

    pub(crate) fn post_wake(&self, wake: WakeRef) -> Posted {
        self.post(|q| q.wakes.push(wake))
    }

    /// Ends the parked wait `key` of this run with `Ok(())`, from another
    /// thread (see the module docs).
    #[inline]
    pub(crate) fn post_reschedule(&self, key: WaitKey) -> Posted {
        self.post(|q| q.reschedules.push(key))
    }

    pub(crate) fn post_callback(&self, f: Callback) -> Posted {
        self.post(|q| q.callbacks.push(f))
    }

    /// An empty post: makes a blocked loop go round once more.
    pub(crate) fn poke(&self) -> Posted {
        self.post(|_| {})
    }

    /// Whether anything may be posted (cheap: no lock).
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes everything posted so far (the loop only, on the run's thread):
    /// swaps the queue's task wakes, reschedules (this run's parked waits to
    /// give `Ok(())`, see the module docs) and callbacks with the caller's
    /// buffers, which must be empty, so that both sides keep their
    /// allocations. The caller applies the wakes and reschedules, then runs
    /// the callbacks.
    #[inline]
    pub(crate) fn drain(
        &self,
        wakes: &mut Vec<WakeRef>,
        reschedules: &mut Vec<WaitKey>,
        callbacks: &mut Vec<Callback>,
    ) {
        debug_assert!(wakes.is_empty() && reschedules.is_empty() && callbacks.is_empty());
        self.pending.store(false, Ordering::Release);
        let mut queue = self.lock();
        // Only what was posted (a cross-run hand-off posts one reschedule
        // and nothing else): an empty buffer stays where it is.
        if !queue.wakes.is_empty() {
            std::mem::swap(&mut queue.wakes, wakes);
        }
        if !queue.reschedules.is_empty() {
            std::mem::swap(&mut queue.reschedules, reschedules);
        }
        if !queue.callbacks.is_empty() {
            std::mem::swap(&mut queue.callbacks, callbacks);
        }
    }

    /// Refuses further posts; returns the callbacks that will never run
    /// (for the caller to drop outside the lock).
    pub(crate) fn close(&self) -> Vec<Callback> {
        let mut queue = self.lock();
        queue.closed = true;
        queue.wakes.clear();
        queue.reschedules.clear();
        std::mem::take(&mut queue.callbacks)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    // ----- holders ------------------------------------------------------

    pub(crate) fn token_made(&self) {
        self.tokens.fetch_add(1, Ordering::AcqRel);
    }

    /// A token is gone. Returns the poke's outcome (the caller notifies).
    pub(crate) fn token_dropped(&self) -> Posted {
        self.tokens.fetch_sub(1, Ordering::AcqRel);
        self.poke()
    }

    pub(crate) fn outside_waker_made(&self) {
        self.outside_wakers.fetch_add(1, Ordering::AcqRel);
    }

    /// An outside waker is gone. The poke is needed only when the drop
    /// happens off the run's thread: on it, the loop is running, not
    /// blocked, and reads the count before it next blocks.
    pub(crate) fn outside_waker_dropped(&self, on_run_thread: bool) -> Posted {
        self.outside_wakers.fetch_sub(1, Ordering::AcqRel);
        if on_run_thread {
            Posted::Queued
        } else {
            self.poke()
        }
    }

    /// An outside waker's count given back by the thread that has just
    /// posted its wake-up to this inbox (post first, then release): no
    /// poke, the post was one (see the module docs).
    pub(crate) fn outside_waker_released_by_post(&self) {
        self.outside_wakers.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn work_started(&self) {
        self.external_work.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn work_finished(&self) -> Posted {
        self.external_work.fetch_sub(1, Ordering::AcqRel);
        self.poke()
    }

    /// Whether work is out in threads (the run is not idle).
    pub(crate) fn has_external_work(&self) -> bool {
        self.external_work.load(Ordering::Acquire) > 0
    }

    /// Nothing posted and nobody outside left to post: counts first, the
    /// `pending` flag last (see the module docs for why this order).
    pub(crate) fn is_quiet(&self) -> bool {
        let work = self.external_work.load(Ordering::Acquire);
        let tokens = self.tokens.load(Ordering::Acquire);
        let wakers = self.outside_wakers.load(Ordering::Acquire);
        work == 0 && tokens == 0 && wakers <= 0 && !self.has_pending()
    }
}

/// Run with `RUSTFLAGS="--cfg loom" cargo test -p trio --lib --release loom`
/// (what `.ci/run` does).
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Condvar};

    /// The reactor, reduced to what the protocol needs: a wake-up flag the
    /// loop can block on.
    #[derive(Default)]
    struct Reactor {
        woken: loom::sync::Mutex<bool>,
        cond: Condvar,
    }

    impl Reactor {
        fn notify(&self, posted: Posted) {
            if posted == Posted::Notify {
                *self.woken.lock().unwrap() = true;
                self.cond.notify_one();
            }
        }
        fn wait(&self) {
            let mut woken = self.woken.lock().unwrap();
            while !*woken {
                woken = self.cond.wait(woken).unwrap();
            }
            *woken = false;
        }
    }

    /// One outside holder posts and then releases (`release` is one of the
    /// inbox's `*_dropped` calls); the loop drains, runs callbacks, and
    /// checks for a deadlock until the posted wake-up has arrived. Fails if
    /// the loop ever reports a deadlock before it, or blocks forever (a lost
    /// wake-up: loom reports it as a deadlock of the model).
    fn model(
        acquire: fn(&Inbox),
        post: fn(&Inbox, Arc<AtomicBool>) -> Posted,
        release: fn(&Inbox) -> Posted,
    ) {
        loom::model(move || {
            let inbox = Arc::new(Inbox::new());
            let reactor = Arc::new(Reactor::default());
            let arrived = Arc::new(AtomicBool::new(false));
            acquire(&inbox);
            let holder = {
                let (inbox, reactor, arrived) = (inbox.clone(), reactor.clone(), arrived.clone());
                loom::thread::spawn(move || {
                    reactor.notify(post(&inbox, arrived));
                    reactor.notify(release(&inbox));
                })
            };
            let (mut wakes, mut reschedules, mut callbacks) = (Vec::new(), Vec::new(), Vec::new());
            loop {
                if inbox.has_pending() {
                    inbox.drain(&mut wakes, &mut reschedules, &mut callbacks);
                    if !reschedules.is_empty() {
                        reschedules.clear();
                        arrived.store(true, Ordering::Relaxed);
                    }
                    for cb in callbacks.drain(..) {
                        cb();
                    }
                    if !wakes.is_empty() {
                        wakes.clear();
                        arrived.store(true, Ordering::Relaxed);
                    }
                }
                if arrived.load(Ordering::Relaxed) {
                    break;
                }
                assert!(
                    !inbox.is_quiet(),
                    "false deadlock: a wake-up was posted but the run looks quiet"
                );
                reactor.wait();
            }
            holder.join().unwrap();
        });
    }

    /// One outside holder releases without posting anything: the loop,
    /// blocked because the holder existed, must wake up and find the run
    /// quiet (and report the deadlock) rather than sleep forever.
    fn model_silent_release(acquire: fn(&Inbox), release: fn(&Inbox) -> Posted) {
        loom::model(move || {
            let inbox = Arc::new(Inbox::new());
            let reactor = Arc::new(Reactor::default());
            acquire(&inbox);
            let holder = {
                let (inbox, reactor) = (inbox.clone(), reactor.clone());
                loom::thread::spawn(move || reactor.notify(release(&inbox)))
            };
            let (mut wakes, mut reschedules, mut callbacks) = (Vec::new(), Vec::new(), Vec::new());
            loop {
                if inbox.has_pending() {
                    inbox.drain(&mut wakes, &mut reschedules, &mut callbacks);
                    wakes.clear();
                    reschedules.clear();
                    callbacks.clear();
                }
                if inbox.is_quiet() {
                    break; // reported
                }
                reactor.wait();
            }
            holder.join().unwrap();
        });
    }

    #[test]
    fn a_silently_dropped_token_wakes_the_loop_to_report() {
        model_silent_release(Inbox::token_made, Inbox::token_dropped);
    }

    #[test]
    fn a_silently_dropped_waker_wakes_the_loop_to_report() {
        model_silent_release(Inbox::outside_waker_made, |inbox| {
            inbox.outside_waker_dropped(false)
        });
    }

    #[test]
    fn a_silently_dropped_work_guard_wakes_the_loop_to_report() {
        model_silent_release(Inbox::work_started, Inbox::work_finished);
    }

    fn wake_ref() -> WakeRef {
        WakeRef {
            index: 0,
            generation: 0,
            exact: true,
        }
    }

    #[test]
    fn a_token_dropped_after_run_sync_soon() {
        model(
            Inbox::token_made,
            |inbox, arrived| {
                inbox.post_callback(Box::new(move || arrived.store(true, Ordering::Relaxed)))
            },
            Inbox::token_dropped,
        );
    }

    #[test]
    fn a_waker_dropped_after_waking_on_another_thread() {
        model(
            Inbox::outside_waker_made,
            |inbox, _| inbox.post_wake(wake_ref()),
            |inbox| inbox.outside_waker_dropped(false),
        );
    }

    /// A cross-run waiter: its wake posts a reschedule, and the waking
    /// thread gives the count back right after, without a poke.
    #[test]
    fn a_waiter_released_by_its_reschedule_post() {
        model(
            Inbox::outside_waker_made,
            |inbox, _| {
                inbox.post_reschedule(crate::core::park::WaitKey {
                    park: crate::core::slab::Key {
                        index: 0,
                        generation: 0,
                    },
                    run_id: 0,
                })
            },
            |inbox| {
                inbox.outside_waker_released_by_post();
                Posted::Queued
            },
        );
    }

    #[test]
    fn a_work_guard_dropped_after_posting_the_result() {
        model(
            Inbox::work_started,
            |inbox, arrived| {
                inbox.post_callback(Box::new(move || arrived.store(true, Ordering::Relaxed)))
            },
            Inbox::work_finished,
        );
    }
}
