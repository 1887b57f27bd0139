//! [`Sequencer`]: forcing code in several tasks to run in a fixed order
//! (Trio's `trio.testing.Sequencer`).
//!
//! # Design
//!
//! One [`Event`] per step number, made on first use. [`Sequencer::step`]`(n)`
//! claims step `n`, waits for event `n` (step 0 does not wait), and returns
//! a [`StepGuard`]; dropping the guard sets event `n + 1`, which lets step
//! `n + 1` in. Trio's `async with seq(n):` block is the guard's lifetime.
//!
//! # Invariants
//!
//! - Each step number is claimed at most once: a second claim is an
//!   [`ErrorKind::Usage`] error, and the first claim is unaffected.
//! - A task cancelled while waiting for its step *breaks* the sequencer:
//!   every event is set, every other waiter wakes with an
//!   [`ErrorKind::Broken`] error, and so does every later `step` call. As in
//!   Trio, the cancelled task itself also gets a `Broken` error rather than
//!   `Cancelled`: a test whose ordering was interrupted should fail loudly,
//!   not have its cancellation quietly absorbed by a scope.
//! - A `step` future dropped while it waits breaks the sequencer the same
//!   way (its step could never run, so the later ones would hang).
//! - Step `n + 1` is released when the guard of step `n` is dropped, however
//!   that happens (end of scope, `?` unwinding past it, a panic), like
//!   Trio's `finally`.

use crate::error::{Error, ErrorKind, Result};
use crate::sync::Event;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

#[derive(Default)]
struct Inner {
    points: HashMap<usize, Event>,
    claimed: HashSet<usize>,
    broken: bool,
}

impl Inner {
    fn event(&mut self, position: usize) -> Event {
        self.points.entry(position).or_default().clone()
    }
}

/// Makes steps in different tasks happen in order 0, 1, 2, … (Trio's
/// `trio.testing.Sequencer`). Clones share the sequence.
///
/// `seq.step(n).await?` waits until the guard of step `n - 1` has been
/// dropped (step 0 goes at once) and returns a [`StepGuard`] for step `n`;
/// the code that runs while the guard is alive is step `n`.
///
/// ```
/// use std::cell::RefCell;
/// use trio::testing::Sequencer;
///
/// trio::run(async {
///     let seq = Sequencer::new();
///     let log = RefCell::new(Vec::new());
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async {
///             let _step = seq.step(1).await?;
///             log.borrow_mut().push("one");
///             Ok(())
///         });
///         nursery.start_soon(async {
///             {
///                 let _step = seq.step(0).await?;
///                 log.borrow_mut().push("zero");
///             } // dropping the guard lets step 1 in
///             let _step = seq.step(2).await?;
///             log.borrow_mut().push("two");
///             Ok(())
///         });
///         Ok(())
///     })
///     .await?;
///     assert_eq!(*log.borrow(), ["zero", "one", "two"]);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Default)]
pub struct Sequencer {
    inner: Rc<RefCell<Inner>>,
}

impl Sequencer {
    /// A sequencer at step 0.
    pub fn new() -> Self {
        Sequencer::default()
    }

    /// Claims step `position` and waits for its turn: until the guard of
    /// step `position - 1` is dropped (step 0 does not wait, and is then no
    /// checkpoint). Waiting is a checkpoint.
    ///
    /// Errors: [`ErrorKind::Usage`] if `position` was claimed before;
    /// [`ErrorKind::Broken`] if the sequencer is broken, or breaks while
    /// waiting, or if this wait is cancelled (which breaks it; see the
    /// module docs).
    pub async fn step(&self, position: usize) -> Result<StepGuard> {
        let event = {
            let mut inner = self.inner.borrow_mut();
            if inner.claimed.contains(&position) {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("attempted to reuse sequence point {position}"),
                ));
            }
            if inner.broken {
                return Err(broken());
            }
            inner.claimed.insert(position);
            (position != 0).then(|| inner.event(position))
        };
        if let Some(event) = event {
            // Dropping this future mid-wait breaks the sequence too: the
            // claimed step would otherwise never run, and later steps hang.
            let mut claim = WaitingClaim {
                seq: self,
                armed: true,
            };
            let waited = event.wait().await;
            claim.armed = false;
            match waited {
                Ok(()) => {
                    if self.inner.borrow().broken {
                        return Err(broken());
                    }
                }
                Err(e) if e.is_cancelled() => {
                    self.break_sequence();
                    return Err(Error::new(
                        ErrorKind::Broken,
                        format!("Sequencer wait for step {position} cancelled: sequence broken"),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(StepGuard {
            inner: self.inner.clone(),
            position,
        })
    }

    /// Whether a cancelled wait has broken the sequencer.
    pub fn is_broken(&self) -> bool {
        self.inner.borrow().broken
    }

    fn break_sequence(&self) {
        let events: Vec<Event> = {
            let mut inner = self.inner.borrow_mut();
            inner.broken = true;
            inner.points.values().cloned().collect()
        };
        for e in events {
            e.set();
        }
    }
}

/// Breaks the sequence if a wait for a step is dropped before it ends.
struct WaitingClaim<'a> {
    seq: &'a Sequencer,
    armed: bool,
}

impl Drop for WaitingClaim<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.seq.break_sequence();
        }
    }
}

fn broken() -> Error {
    Error::new(ErrorKind::Broken, "Sequencer broken")
}

impl fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        let mut claimed: Vec<usize> = inner.claimed.iter().copied().collect();
        claimed.sort_unstable();
        f.debug_struct("Sequencer")
            .field("claimed", &claimed)
            .field("broken", &inner.broken)
            .finish()
    }
}

/// Step `n` of a [`Sequencer`] is running while this guard lives; dropping
/// it lets step `n + 1` in.
#[must_use = "dropping the guard at once ends the step and lets the next one in"]
pub struct StepGuard {
    inner: Rc<RefCell<Inner>>,
    position: usize,
}

impl StepGuard {
    /// The step number this guard holds.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        let Some(next) = self.position.checked_add(1) else {
            return;
        };
        let event = self.inner.borrow_mut().event(next);
        event.set();
    }
}

impl fmt::Debug for StepGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepGuard")
            .field("position", &self.position)
            .finish()
    }
}
