//! The cross-run [`Event`]: a one-shot flag that any thread sets and tasks
//! of any run (or blocked threads) wait for.
//!
//! A flag plus a list of waiters behind a mutex (the module's design). The
//! flag is also an atomic, so [`Event::is_set`] takes no lock; it is
//! written only under the mutex, and `set` takes the whole list in the
//! same locking, so a waiter that queued before `set` is woken by it and
//! one that locks after it sees the flag (invariant 1).
//!
//! A wait's abort function has nothing to decide: a cancelled wait leaves
//! the list (if `set` has not already taken it) and returns `Cancelled`;
//! nothing was consumed either way, and a wake-up already posted for it
//! finds its wait gone and does nothing.

use super::waiter::{TaskWaiter, Waiter};
use super::{AtomicBool, Mutex, Ordering, blocking_in_run, lock};
use crate::core::runtime;
use crate::error::Result;
use crate::lowlevel::{Abort, Park, checkpoint};
use crate::sync::WaitSite;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

struct Inner {
    /// Raised by `set`, under the mutex; read anywhere.
    flag: AtomicBool,
    waiters: Mutex<Waiters>,
}

struct Waiters {
    /// The blocked waits, oldest first, each with its number.
    list: Vec<(u64, Waiter)>,
    next_seq: u64,
}

/// A one-shot event shared between runs and threads: [`set`](Self::set)
/// from anywhere, [`wait`](Self::wait) in any run,
/// [`wait_blocking`](Self::wait_blocking) from a thread outside any run.
/// `Send + Sync`; clones are handles to the same event. Like
/// [`sync::Event`](crate::sync::Event), it cannot be cleared: make a new one.
///
/// A task blocked in `wait` counts, for its run's deadlock detection, as
/// something outside could wake (see the [module docs](crate::cross_run)).
///
/// ```
/// use trio::cross_run::Event;
///
/// let ready = Event::new();
/// let setter = {
///     let ready = ready.clone();
///     std::thread::spawn(move || ready.set()) // from a plain thread
/// };
/// trio::run(async {
///     ready.wait().await?; // returns once the thread has set it
///     Ok(())
/// })
/// .unwrap();
/// assert!(ready.is_set());
/// setter.join().unwrap();
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Arc<Inner>,
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// An event that is not set.
    pub fn new() -> Self {
        Event {
            inner: Arc::new(Inner {
                flag: AtomicBool::new(false),
                waiters: Mutex::new(Waiters {
                    list: Vec::new(),
                    next_seq: 0,
                }),
            }),
        }
    }

    /// Sets the event and wakes every task and thread waiting for it.
    /// Synchronous, callable from any thread, not a checkpoint; setting an
    /// event that is already set does nothing.
    pub fn set(&self) {
        let mut w = lock(&self.inner.waiters);
        if self.inner.flag.swap(true, Ordering::Release) {
            return;
        }
        let list = std::mem::take(&mut w.list);
        drop(w);
        for (_, waiter) in list {
            waiter.wake();
        }
    }

    /// Whether the event has been set.
    pub fn is_set(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }

    /// Waits until the event is set, in a task of any run. A checkpoint,
    /// even if the event is already set. `Cancelled` if cancelled while
    /// waiting. The task tree shows a blocked task as waiting in
    /// `cross_run::Event.wait` at the caller's location.
    #[track_caller]
    pub fn wait(&self) -> impl Future<Output = Result<()>> + '_ {
        self.wait_at(WaitSite::new("cross_run::Event.wait"))
    }

    async fn wait_at(&self, site: WaitSite) -> Result<()> {
        if self.is_set() {
            return checkpoint().await;
        }
        let seq = Cell::new(0);
        let park = Park::new_at(site.label, site.location, |_key, _reason| {
            // Cancelled or dropped: leave the list if still on it. Nothing
            // was consumed, so the cancel always wins.
            self.leave(seq.get());
            Abort::Succeeded
        })?;
        let waiter = TaskWaiter::new(park.key())?;
        {
            let mut w = lock(&self.inner.waiters);
            if self.inner.flag.load(Ordering::Relaxed) {
                drop(w);
                drop(park);
                return checkpoint().await;
            }
            w.next_seq += 1;
            let s = w.next_seq;
            w.list.push((s, Waiter::Task(waiter)));
            seq.set(s);
        }
        let guard = LeaveGuard {
            event: self,
            seq: seq.get(),
        };
        let r = park.await;
        if r.is_ok() {
            // `set` took the whole list: nothing to leave, no second lock.
            std::mem::forget(guard);
        }
        r
    }

    /// Takes the wait `seq` off the list, if `set` has not already.
    fn leave(&self, seq: u64) {
        let mut w = lock(&self.inner.waiters);
        let removed = w
            .list
            .iter()
            .position(|(s, _)| *s == seq)
            .map(|i| w.list.remove(i));
        drop(w);
        drop(removed);
    }

    /// Blocks the calling thread (outside any run) until the event is set.
    /// [`ErrorKind::Usage`](crate::ErrorKind::Usage) on a run's thread,
    /// where it would block the whole run.
    pub fn wait_blocking(&self) -> Result<()> {
        if runtime::is_in_run() {
            return Err(blocking_in_run("cross_run::Event::wait_blocking"));
        }
        {
            let mut w = lock(&self.inner.waiters);
            if self.inner.flag.load(Ordering::Relaxed) {
                return Ok(());
            }
            w.next_seq += 1;
            let s = w.next_seq;
            w.list.push((s, Waiter::current_thread()));
        }
        // `set` raises the flag before it unparks; a spurious return just
        // looks again.
        while !self.is_set() {
            #[cfg(loom)]
            loom::thread::park();
            #[cfg(not(loom))]
            std::thread::park();
        }
        Ok(())
    }

    /// How many tasks and threads are blocked waiting for the event.
    pub fn waiting(&self) -> usize {
        lock(&self.inner.waiters).list.len()
    }
}

/// Takes a wait off the list however its future ends (a no-op after `set`,
/// which took the list): a future dropped outside its run does not run the
/// park's abort function, and its waiter must not stay listed.
struct LeaveGuard<'a> {
    event: &'a Event,
    seq: u64,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        self.event.leave(self.seq);
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("waiting", &self.waiting())
            .finish()
    }
}
