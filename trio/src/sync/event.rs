//! [`Event`]: a one-shot flag tasks can wait for.
//!
//! A flag plus a [`WaitQueue`]: `set` raises the flag and wakes every
//! waiter at once; once set, an event stays set (as in Trio, there is no
//! `clear`: make a new event instead, which avoids the classic lost-wake-up
//! races of resettable events).

use crate::error::Result;
use crate::lowlevel::checkpoint;
use crate::sync::parking_lot::{WaitQueue, WaitSite};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

struct Inner {
    flag: Cell<bool>,
    /// The tasks blocked in `wait`.
    waiters: WaitQueue<()>,
}

/// A one-shot event (Trio's `trio.Event`): tasks [`wait`](Event::wait)
/// until some task calls [`set`](Event::set). Clones are handles to the same
/// event.
///
/// ```
/// use trio::sync::Event;
/// trio::run(async {
///     let ready = Event::new();
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async {
///             ready.wait().await?; // blocks until set
///             Ok(())
///         });
///         ready.set(); // synchronous; wakes every waiter
///         Ok(())
///     })
///     .await?;
///     assert!(ready.is_set());
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Rc<Inner>,
}

/// What [`Event::statistics`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventStatistics {
    /// How many tasks are blocked in [`Event::wait`].
    pub tasks_waiting: usize,
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
            inner: Rc::new(Inner {
                flag: Cell::new(false),
                waiters: WaitQueue::new(),
            }),
        }
    }

    /// Sets the event and wakes every waiting task. Synchronous, not a
    /// checkpoint; setting an event that is already set does nothing.
    pub fn set(&self) {
        if !self.inner.flag.replace(true) {
            self.inner.waiters.unpark(usize::MAX);
        }
    }

    /// Whether the event has been set.
    pub fn is_set(&self) -> bool {
        self.inner.flag.get()
    }

    /// Waits until the event is set. A checkpoint, even if the event is
    /// already set (so a loop around it stays cancellable and fair).
    /// `Cancelled` if cancelled while waiting. The task tree shows a
    /// blocked task as waiting in `Event.wait` at the caller's location.
    #[track_caller]
    pub fn wait(&self) -> impl Future<Output = Result<()>> + '_ {
        let site = WaitSite::new("Event.wait");
        async move {
            if self.is_set() {
                checkpoint().await
            } else {
                self.inner.waiters.park((), site).await
            }
        }
    }

    /// Debugging information.
    pub fn statistics(&self) -> EventStatistics {
        EventStatistics {
            tasks_waiting: self.inner.waiters.len(),
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .field("tasks_waiting", &self.inner.waiters.len())
            .finish()
    }
}
