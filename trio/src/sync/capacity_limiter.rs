//! [`CapacityLimiter`]: at most N borrowers at a time, one token each.
//!
//! Like a semaphore, but each token is held by a *borrower* (by default
//! the current task), a borrower can hold at most one token, and the total
//! can be changed while in use. Waiters queue FIFO with the borrower they
//! acquire for as payload; when tokens free up (a release, or a raised
//! total) the oldest waiters are handed them directly, all at once: every
//! woken borrower is in `borrowers` before the first is rescheduled.
//!
//! Invariants: `borrowers.len() <= total` except transiently after the
//! total is lowered (then nobody new gets a token until enough are
//! returned); nobody waits while a token is free; a borrower holds a
//! token, or has one acquire waiting for one, or neither — never two of
//! these (Trio lets a borrower wait twice and then lends it two tokens;
//! here the second acquire is a usage error, as when it holds one).

use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::{
    Task, cancel_shielded_checkpoint, checkpoint_if_cancelled, try_current_task,
};
use crate::sync::Try;
use crate::sync::parking_lot::{WaitQueue, WaitSite};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};

/// Who holds a [`CapacityLimiter`] token: a task, or any other party
/// identified by a unique value (Trio lets any object borrow).
///
/// ```
/// use trio::sync::Borrower;
/// let a = Borrower::unique();
/// assert_ne!(a, Borrower::unique());
/// assert_eq!(a, a);
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct Borrower(BorrowerId);

#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
enum BorrowerId {
    Task(Task),
    Unique(u64),
}

static NEXT_BORROWER: AtomicU64 = AtomicU64::new(1);

impl Borrower {
    /// A borrower different from every other one (for work that is not a
    /// task, such as a thread started by [`to_thread`](crate::to_thread)).
    pub fn unique() -> Borrower {
        Borrower(BorrowerId::Unique(
            NEXT_BORROWER.fetch_add(1, Ordering::Relaxed),
        ))
    }

    /// The current task as a borrower. Errors outside a run.
    pub fn current_task() -> Result<Borrower> {
        Ok(Borrower(BorrowerId::Task(try_current_task()?)))
    }

    /// The task, if this borrower is one.
    pub fn task(&self) -> Option<Task> {
        match self.0 {
            BorrowerId::Task(t) => Some(t),
            BorrowerId::Unique(_) => None,
        }
    }
}

impl From<Task> for Borrower {
    fn from(task: Task) -> Self {
        Borrower(BorrowerId::Task(task))
    }
}

impl fmt::Debug for Borrower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            BorrowerId::Task(t) => f.debug_tuple("Borrower").field(&t).finish(),
            BorrowerId::Unique(n) => write!(f, "Borrower(#{n})"),
        }
    }
}

struct Inner {
    /// The acquires blocked for a token, with the borrower each is for.
    waiters: WaitQueue<Borrower>,
    total: Cell<usize>,
    /// Who holds a token now.
    borrowers: RefCell<HashSet<Borrower>>,
    /// Who has an acquire waiting (in `waiters`, or just woken and not yet
    /// returned). Kept by the waiting acquire itself ([`Waiting`]).
    waiting: RefCell<HashSet<Borrower>>,
}

/// Limits how many borrowers may use a resource at once (Trio's
/// `trio.CapacityLimiter`); [`to_thread`](crate::to_thread) uses one to cap
/// its threads. Clones are handles to the same limiter.
///
/// ```
/// use trio::sync::CapacityLimiter;
/// trio::run(async {
///     let limiter = CapacityLimiter::new(1)?;
///     let token = limiter.acquire().await?; // this task borrows one token
///     assert_eq!(limiter.available_tokens(), 0);
///     limiter.set_total_tokens(2)?; // raising the total wakes waiters at once
///     assert_eq!(limiter.available_tokens(), 1);
///     drop(token);
///     assert_eq!(limiter.borrowed_tokens(), 0);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct CapacityLimiter {
    inner: Rc<Inner>,
}

/// What [`CapacityLimiter::statistics`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CapacityLimiterStatistics {
    /// Tokens currently borrowed.
    pub borrowed_tokens: usize,
    /// The total number of tokens.
    pub total_tokens: usize,
    /// Who holds them (in no particular order).
    pub borrowers: Vec<Borrower>,
    /// How many tasks are waiting for a token.
    pub tasks_waiting: usize,
}

/// A token borrowed from a [`CapacityLimiter`] by a task; returned when
/// dropped.
#[must_use = "the token is returned as soon as the guard is dropped"]
pub struct CapacityLimiterGuard {
    limiter: CapacityLimiter,
    borrower: Borrower,
}

impl CapacityLimiter {
    /// A limiter with `total` tokens ([`ErrorKind::InvalidArgument`] if 0).
    /// `usize::MAX` means no limit in practice.
    pub fn new(total: usize) -> Result<Self> {
        check_total(total)?;
        let inner = Rc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            // A token handed to a waiter whose future was dropped comes back.
            let on_lost = Rc::new(move |b: Borrower| {
                if let Some(inner) = weak.upgrade() {
                    let _ = release(&inner, b);
                }
            });
            Inner {
                waiters: WaitQueue::with_lost_handler(on_lost),
                total: Cell::new(total),
                borrowers: RefCell::new(HashSet::new()),
                waiting: RefCell::new(HashSet::new()),
            }
        });
        Ok(CapacityLimiter { inner })
    }

    /// The total number of tokens.
    pub fn total_tokens(&self) -> usize {
        self.inner.total.get()
    }

    /// Changes the total. Raising it hands the new tokens to waiters at
    /// once; lowering it below what is borrowed takes effect as tokens come
    /// back. [`ErrorKind::InvalidArgument`] if 0.
    pub fn set_total_tokens(&self, total: usize) -> Result<()> {
        check_total(total)?;
        self.inner.total.set(total);
        wake_waiters(&self.inner);
        Ok(())
    }

    /// Tokens currently borrowed.
    pub fn borrowed_tokens(&self) -> usize {
        self.inner.borrowers.borrow().len()
    }

    /// Tokens free now.
    pub fn available_tokens(&self) -> usize {
        self.total_tokens().saturating_sub(self.borrowed_tokens())
    }

    /// Borrows a token for the current task, waiting if none is free;
    /// returns a guard that gives it back when dropped. A checkpoint.
    /// `Cancelled` means nothing was borrowed. A usage error if the task
    /// already holds one of this limiter's tokens, or is already waiting
    /// for one. The task tree shows a blocked task as waiting in
    /// `CapacityLimiter.acquire` at the caller's location.
    #[track_caller]
    pub fn acquire(&self) -> impl Future<Output = Result<CapacityLimiterGuard>> + '_ {
        let site = WaitSite::new("CapacityLimiter.acquire");
        async move {
            let borrower = Borrower::current_task()?;
            self.acquire_on_behalf_of_at(borrower, site).await?;
            Ok(CapacityLimiterGuard {
                limiter: self.clone(),
                borrower,
            })
        }
    }

    /// Borrows a token for the current task if one is free and nobody is
    /// waiting; otherwise [`ErrorKind::WouldBlock`]. Not a checkpoint.
    pub fn try_acquire(&self) -> Result<CapacityLimiterGuard> {
        let borrower = Borrower::current_task()?;
        self.try_acquire_on_behalf_of(borrower)?;
        Ok(CapacityLimiterGuard {
            limiter: self.clone(),
            borrower,
        })
    }

    /// Borrows a token for `borrower`, waiting if none is free. No guard:
    /// give it back with [`release_on_behalf_of`](Self::release_on_behalf_of).
    /// A checkpoint; `Cancelled` means nothing was borrowed. A usage error
    /// if `borrower` already holds a token or already has an acquire
    /// waiting for one.
    #[track_caller]
    pub fn acquire_on_behalf_of(
        &self,
        borrower: Borrower,
    ) -> impl Future<Output = Result<()>> + '_ {
        self.acquire_on_behalf_of_at(
            borrower,
            WaitSite::new("CapacityLimiter.acquire_on_behalf_of"),
        )
    }

    /// [`acquire_on_behalf_of`](Self::acquire_on_behalf_of), reporting
    /// `site` while blocked.
    pub(crate) async fn acquire_on_behalf_of_at(
        &self,
        borrower: Borrower,
        site: WaitSite,
    ) -> Result<()> {
        checkpoint_if_cancelled().await?;
        match try_borrow(&self.inner, borrower) {
            Try::Ready(()) => {
                let mut undo = Undo {
                    inner: &self.inner,
                    borrower,
                    armed: true,
                };
                cancel_shielded_checkpoint().await?;
                undo.armed = false;
                Ok(())
            }
            Try::WouldBlock => {
                self.inner.waiting.borrow_mut().insert(borrower);
                let _waiting = Waiting {
                    inner: &self.inner,
                    borrower,
                };
                self.inner.waiters.park(borrower, site).await
            }
            Try::Failed(e) => Err(e),
        }
    }

    /// Borrows a token for `borrower` if one is free and nobody is waiting;
    /// otherwise [`ErrorKind::WouldBlock`]. A usage error if `borrower`
    /// already holds a token or has an acquire waiting for one.
    pub fn try_acquire_on_behalf_of(&self, borrower: Borrower) -> Result<()> {
        try_borrow(&self.inner, borrower)
            .into_result(|| Error::new(ErrorKind::WouldBlock, "no CapacityLimiter tokens are free"))
    }

    /// Gives back `borrower`'s token, handing it to the oldest waiter if
    /// any. A usage error if `borrower` holds none. Not a checkpoint.
    pub fn release_on_behalf_of(&self, borrower: Borrower) -> Result<()> {
        release(&self.inner, borrower)
    }

    /// Debugging information.
    pub fn statistics(&self) -> CapacityLimiterStatistics {
        CapacityLimiterStatistics {
            borrowed_tokens: self.borrowed_tokens(),
            total_tokens: self.total_tokens(),
            borrowers: self.inner.borrowers.borrow().iter().copied().collect(),
            tasks_waiting: self.inner.waiters.len(),
        }
    }
}

fn check_total(total: usize) -> Result<()> {
    if total == 0 {
        Err(Error::invalid("a CapacityLimiter needs at least one token"))
    } else {
        Ok(())
    }
}

fn try_borrow(inner: &Inner, borrower: Borrower) -> Try<()> {
    if inner.borrowers.borrow().contains(&borrower) {
        return Try::Failed(Error::usage(
            "this borrower already holds one of this CapacityLimiter's tokens",
        ));
    }
    if inner.waiting.borrow().contains(&borrower) {
        return Try::Failed(Error::usage(
            "this borrower is already waiting for one of this CapacityLimiter's tokens",
        ));
    }
    if !inner.waiters.is_empty() || inner.borrowers.borrow().len() >= inner.total.get() {
        return Try::WouldBlock;
    }
    inner.borrowers.borrow_mut().insert(borrower);
    Try::Ready(())
}

/// Marks a borrower as waiting for as long as its acquire is blocked (until
/// it returns, however it returns, or is dropped).
struct Waiting<'a> {
    inner: &'a Inner,
    borrower: Borrower,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.inner.waiting.borrow_mut().remove(&self.borrower);
    }
}

fn release(inner: &Inner, borrower: Borrower) -> Result<()> {
    if !inner.borrowers.borrow_mut().remove(&borrower) {
        return Err(Error::usage(
            "this borrower holds none of this CapacityLimiter's tokens",
        ));
    }
    wake_waiters(inner);
    Ok(())
}

/// Hands every free token to the oldest waiters: each woken borrower holds
/// its token before any of them is rescheduled.
fn wake_waiters(inner: &Inner) {
    let free = inner
        .total
        .get()
        .saturating_sub(inner.borrowers.borrow().len());
    if free == 0 {
        return;
    }
    inner.waiters.unpark_with(
        free,
        |b| {
            inner.borrowers.borrow_mut().insert(*b);
        },
        |b| {
            // A stale wait (from a run that has ended): it never returns,
            // so its `Waiting` mark goes with the token.
            inner.borrowers.borrow_mut().remove(b);
            inner.waiting.borrow_mut().remove(b);
        },
    );
}

struct Undo<'a> {
    inner: &'a Inner,
    borrower: Borrower,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = release(self.inner, self.borrower);
        }
    }
}

impl fmt::Debug for CapacityLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityLimiter")
            .field("borrowed_tokens", &self.borrowed_tokens())
            .field("total_tokens", &self.total_tokens())
            .field("tasks_waiting", &self.inner.waiters.len())
            .finish()
    }
}

impl CapacityLimiterGuard {
    /// The limiter the token belongs to.
    pub fn limiter(&self) -> &CapacityLimiter {
        &self.limiter
    }
}

impl Drop for CapacityLimiterGuard {
    fn drop(&mut self) {
        let _ = release(&self.limiter.inner, self.borrower);
    }
}

impl fmt::Debug for CapacityLimiterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityLimiterGuard")
            .field("borrower", &self.borrower)
            .finish()
    }
}
