//! [`TrioTimer`]: hyper's [`Timer`] on the run's clock.
//!
//! # The problem
//!
//! hyper wants a `Timer` that is `Send + Sync + 'static` and whose
//! [`Sleep`] futures are `Send + Sync`; a trio sleep is a `!Send` future
//! tied to the task that polls it, and it is a cancel point. So a
//! `TrioSleep` holds no trio object at all: it is plain data (a deadline
//! and the key of its registration), `Send + Sync` by construction, and
//! everything that is `!Send` lives in a run-local registry that only the
//! run's thread can reach.
//!
//! # How it works
//!
//! 1. Each run has one `Registry` in a [`RunVar`], made on first use. It
//!    fixes the *clock mapping*: the `std::time::Instant` and the run's
//!    [`trio::Instant`] read at the same moment. [`TrioTimer::now`] is the
//!    std instant that the run's clock reads now through that mapping, so
//!    it follows a [`MockClock`](trio::testing::MockClock) (jumps
//!    included); every deadline hyper gives back is converted with the
//!    same mapping (`Registry::to_trio`, monotonic), so the comparisons
//!    of step 3 and step 4 agree exactly.
//! 2. `TrioSleep` is ready once the run's clock has reached its deadline:
//!    on its first poll it reads the clock; once registered, it is ready
//!    when the driver has removed its entry (which the driver does only
//!    for a deadline that has passed), so later polls read no clock.
//!    Its poll never checks for cancellation (it is not a cancel point: a
//!    cancelled connection ends through its I/O, not its timers) and never
//!    parks its task.
//! 3. A pending poll registers `(deadline, id) → waker` in the registry's
//!    ordered map (or refreshes the waker). The waker is kept as a
//!    [`StoredWaker`]: the task's own waker is stored decoded, so a
//!    registration allocates no counted waker (which a `Waker::clone` of a
//!    trio waker does). If the new deadline is earlier
//!    than what the driver waits for, it unparks the driver.
//! 4. The *driver* is a system task of the run ([`spawn_system_task`],
//!    started with the registry): it removes every entry whose deadline
//!    has passed, wakes their wakers (after its borrow of the map ends),
//!    and sleeps until the earliest remaining deadline or until step 3
//!    unparks it. It is cancelled with the run's other system tasks when
//!    the main task ends. Because it sleeps with trio's `move_on_at`, the
//!    MockClock's autojump sees hyper's timers as it sees any sleep.
//! 5. Dropping a registered `TrioSleep` removes its entry (it finds the
//!    registry through the `RunVar`, and checks that it is the same run by
//!    the registry's id); reset ([`Timer::reset`]) moves it, keeping the
//!    waker, so a reset sleep fires at its new deadline even if hyper does
//!    not poll it again before then.
//!
//! # Finding the registry fast
//!
//! hyper arms a timer on every HTTP/1.1 request (its header-read
//! timeout): `now()`, a poll that registers, a drop that deregisters. A
//! [`RunVar`] lookup hashes (and moves its box out and back), which cost
//! about a tenth of a hello-world server's CPU in `benches/hello.rs`. So
//! each thread keeps a one-entry cache: the run's root [`Task`] (unique
//! in the process, since run ids are) and a `Weak` to that run's
//! registry. A hit needs the same root task and a live registry; a miss
//! (first use, another run on the thread) goes through the `RunVar` and
//! refills the cache. The cache holds no strong reference, so it never
//! keeps a finished run's registry (and the wakers in it) alive.
//!
//! Outside a run there is no clock to follow: `now()` is
//! `std::time::Instant::now()`, and a `TrioSleep` polled outside a run is
//! ready at once (a timer that fires early, never one that hangs: hyper
//! only polls its timers inside its connection futures, which must run in
//! a trio task anyway).

use hyper::rt::{Sleep, Timer};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant as StdInstant};
use trio::lowlevel::{RunVar, StoredWaker, Task, spawn_system_task, try_current_root_task};
use trio::sync::ParkingLot;

/// The run-local registry (step 1), made on first use in a run.
static REGISTRY: RunVar<Option<Rc<Registry>>> = RunVar::with_default("trio_hyper::timer", || None);

thread_local! {
    /// The last registry found on this thread, with its run's root task
    /// (see "Finding the registry fast" in the module docs).
    static CACHE: RefCell<Option<(Task, Weak<Registry>)>> = const { RefCell::new(None) };
}

/// Registry ids, unique in the process, so that a sleep registered in one
/// run never touches the registry of a later run on the same thread.
static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(1);

/// Entry ids, unique in the process (a sleep may be polled in two runs).
static NEXT_ENTRY: AtomicU64 = AtomicU64::new(1);

/// One run's timers (steps 1, 3, 4).
struct Registry {
    id: u64,
    /// The clock mapping: these two instants are the same moment.
    std_base: StdInstant,
    trio_base: trio::Instant,
    /// Pending sleeps by deadline. Invariant: an entry exists exactly while
    /// its `TrioSleep` holds the key and its deadline has not been seen
    /// passed by the driver.
    entries: RefCell<BTreeMap<(StdInstant, u64), StoredWaker>>,
    /// What the driver sleeps until (`INFINITY`: nothing pending).
    driver_target: Cell<trio::Instant>,
    /// Where the driver waits to be told of an earlier deadline.
    driver_lot: ParkingLot,
}

impl Registry {
    /// The run's registry, made (with its driver) on first use. `None`
    /// outside a run.
    fn current() -> Option<Rc<Registry>> {
        let root = try_current_root_task().ok()?;
        if let Some(reg) = Registry::cached(root) {
            return Some(reg);
        }
        let reg = Registry::current_slow()?;
        Registry::remember(root, &reg);
        Some(reg)
    }

    /// The cached registry, if it is `root`'s run's and still alive.
    fn cached(root: Task) -> Option<Rc<Registry>> {
        CACHE.with(|c| match &*c.borrow() {
            Some((task, reg)) if *task == root => reg.upgrade(),
            _ => None,
        })
    }

    /// Fills the cache.
    fn remember(root: Task, reg: &Rc<Registry>) {
        // The old entry (a `Weak`) drops after the borrow: it runs no
        // foreign code, but keep the rule simple.
        let old = CACHE.with(|c| c.borrow_mut().replace((root, Rc::downgrade(reg))));
        drop(old);
    }

    /// [`current`](Self::current) through the `RunVar`.
    fn current_slow() -> Option<Rc<Registry>> {
        let existing = REGISTRY.get().ok()?;
        if let Some(reg) = existing {
            return Some(reg);
        }
        let now = trio::try_current_time().ok()?;
        let reg = Rc::new(Registry {
            id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed),
            std_base: StdInstant::now(),
            trio_base: now,
            entries: RefCell::new(BTreeMap::new()),
            driver_target: Cell::new(trio::Instant::INFINITY),
            driver_lot: ParkingLot::new(),
        });
        // If the driver cannot start (the run is ending), sleeps still
        // complete when polled after their deadline; nobody wakes them,
        // but nothing runs any more either.
        let driver = reg.clone();
        let _ = spawn_system_task(async move { driver.drive().await });
        REGISTRY.set(Some(reg.clone())).ok()?;
        Some(reg)
    }

    /// The run's registry if it has one (never makes one: for drops and
    /// resets, which have nothing to register in a fresh registry).
    fn existing() -> Option<Rc<Registry>> {
        let root = try_current_root_task().ok()?;
        if let Some(reg) = Registry::cached(root) {
            return Some(reg);
        }
        let reg = REGISTRY.get().ok().flatten()?;
        Registry::remember(root, &reg);
        Some(reg)
    }

    /// The std instant that the run's clock reads at `now`.
    fn to_std(&self, now: trio::Instant) -> StdInstant {
        let since = now.saturating_duration_since(self.trio_base);
        self.std_base.checked_add(since).unwrap_or(self.std_base)
    }

    /// The run's instant of a std deadline (monotonic in `deadline`).
    fn to_trio(&self, deadline: StdInstant) -> trio::Instant {
        match deadline.checked_duration_since(self.std_base) {
            Some(after) => self.trio_base + after,
            None => self.trio_base - self.std_base.duration_since(deadline),
        }
    }

    /// Step 3: registers (or moves) an entry; unparks the driver if it
    /// waits for a later time.
    fn register(&self, key: (StdInstant, u64), waker: StoredWaker) {
        self.entries.borrow_mut().insert(key, waker);
        let at = self.to_trio(key.0);
        if at < self.driver_target.get() {
            self.driver_target.set(at);
            self.driver_lot.unpark_all();
        }
    }

    /// Removes an entry; its waker is dropped after the borrow ends.
    fn remove(&self, key: &(StdInstant, u64)) -> Option<StoredWaker> {
        // (Edition 2024: the borrow ends before the caller gets the waker.)
        self.entries.borrow_mut().remove(key)
    }

    /// Step 4: the driver task.
    async fn drive(&self) -> trio::Result<()> {
        loop {
            let now = trio::current_time();
            let mut due = Vec::new();
            let next = {
                let mut entries = self.entries.borrow_mut();
                while let Some(entry) = entries.first_entry() {
                    if self.to_trio(entry.key().0) > now {
                        break;
                    }
                    due.push(entry.remove());
                }
                entries.keys().next().map(|k| self.to_trio(k.0))
            };
            // Wakers are foreign code: called with no borrow held.
            for waker in due {
                waker.wake();
            }
            let target = next.unwrap_or(trio::Instant::INFINITY);
            self.driver_target.set(target);
            // Woken early by `register`, or at the deadline.
            trio::move_on_at(target, self.driver_lot.park()).await?;
        }
    }
}

/// hyper's [`Timer`] on the current run's clock: see the
/// [module docs](self) for the design. A unit value: `Send + Sync +
/// 'static`, usable with every hyper builder's `.timer(TrioTimer)`, in
/// any task of any run (each run keeps its own timers).
///
/// ```
/// use hyper::rt::Timer;
/// use std::time::Duration;
/// use trio_hyper::TrioTimer;
///
/// trio::Runner::new()
///     .clock(trio::testing::MockClock::autojump())
///     .run(async {
///         let t0 = TrioTimer.now();
///         TrioTimer.sleep(Duration::from_secs(3600)).await; // autojumps
///         assert!(TrioTimer.now() - t0 >= Duration::from_secs(3600));
///         Ok(())
///     })
///     .unwrap();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TrioTimer;

impl Timer for TrioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        let now = self.now();
        Box::pin(TrioSleep::until(now.checked_add(duration)))
    }

    fn sleep_until(&self, deadline: StdInstant) -> Pin<Box<dyn Sleep>> {
        Box::pin(TrioSleep::until(Some(deadline)))
    }

    /// The run's clock as a std instant (step 1); outside a run, the
    /// system's.
    fn now(&self) -> StdInstant {
        match Registry::current() {
            Some(reg) => reg.to_std(trio::current_time()),
            None => StdInstant::now(),
        }
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: StdInstant) {
        match sleep.as_mut().downcast_mut_pin::<TrioSleep>() {
            Some(mine) => mine.get_mut().reset(Some(new_deadline)),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// The [`Sleep`] of [`TrioTimer`]: ready once the run's clock reaches its
/// deadline. Plain data (`Send + Sync`), not a cancel point; see the
/// [module docs](self).
pub struct TrioSleep {
    /// `None`: never (a deadline past what `std::time::Instant` can hold).
    deadline: Option<StdInstant>,
    /// Registered as `(registry id, entry key)`.
    registered: Option<(u64, (StdInstant, u64))>,
}

impl TrioSleep {
    fn until(deadline: Option<StdInstant>) -> Self {
        TrioSleep {
            deadline,
            registered: None,
        }
    }

    /// Step 5: moves the deadline, keeping the registration's waker.
    fn reset(&mut self, deadline: Option<StdInstant>) {
        self.deadline = deadline;
        let Some((reg_id, key)) = self.registered.take() else {
            return;
        };
        let Some(reg) = Registry::existing().filter(|r| r.id == reg_id) else {
            return;
        };
        let waker = reg.remove(&key);
        if let (Some(waker), Some(deadline)) = (waker, deadline) {
            let key = (deadline, NEXT_ENTRY.fetch_add(1, Ordering::Relaxed));
            reg.register(key, waker);
            self.registered = Some((reg.id, key));
        }
    }
}

impl fmt::Debug for TrioSleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrioSleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.registered.is_some())
            .finish()
    }
}

impl Future for TrioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(reg) = Registry::current() else {
            return Poll::Ready(());
        };
        let Some(deadline) = this.deadline else {
            // Never: nothing to register, nobody to wake.
            return Poll::Pending;
        };
        // Registered here: the entry is gone once the driver saw the
        // deadline pass (it removes an entry only then), else refresh the
        // waker if it changed. No clock read on this path.
        if let Some((reg_id, key)) = this.registered
            && reg_id == reg.id
        {
            let mut entries = reg.entries.borrow_mut();
            let Some(w) = entries.get_mut(&key) else {
                drop(entries);
                this.registered = None;
                return Poll::Ready(());
            };
            if !w.will_wake(cx.waker()) {
                let old = std::mem::replace(w, StoredWaker::new(cx.waker()));
                drop(entries);
                drop(old);
            }
            return Poll::Pending;
        }
        // First poll (in this run): ready at once if the deadline has
        // passed, else registered.
        if reg.to_trio(deadline) <= trio::current_time() {
            this.registered = None;
            return Poll::Ready(());
        }
        let key = (deadline, NEXT_ENTRY.fetch_add(1, Ordering::Relaxed));
        reg.register(key, StoredWaker::new(cx.waker()));
        this.registered = Some((reg.id, key));
        Poll::Pending
    }
}

impl Sleep for TrioSleep {}

impl Drop for TrioSleep {
    fn drop(&mut self) {
        if let Some((reg_id, key)) = self.registered.take()
            && let Some(reg) = Registry::existing().filter(|r| r.id == reg_id)
        {
            drop(reg.remove(&key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn the_timer_and_its_sleep_are_send_and_sync() {
        assert_send_sync::<TrioTimer>();
        assert_send_sync::<TrioSleep>();
    }

    fn entries() -> usize {
        Registry::existing().map_or(0, |r| r.entries.borrow().len())
    }

    /// Sleeps fire at their deadline (virtual time), a reset one at its
    /// new deadline, an expired one at once; a dropped or fired sleep
    /// leaves no entry; a second run on the same thread gets a registry
    /// of its own (the thread's cache does not mix runs).
    #[test]
    fn sleeps_follow_the_mock_clock_resets_and_drops() {
        let run = || {
            trio::Runner::new()
                .clock(trio::testing::MockClock::autojump())
                .run(async {
                    let t0 = trio::current_time();
                    TrioTimer.sleep(Duration::from_secs(5)).await;
                    assert_eq!(trio::current_time() - t0, 5.0);
                    assert_eq!(entries(), 0);

                    // Reset while registered: fires at the new deadline.
                    let mut sleep = TrioTimer.sleep(Duration::from_secs(100));
                    let polled = std::future::poll_fn(|cx| {
                        Poll::Ready(sleep.as_mut().poll(cx).is_pending())
                    })
                    .await;
                    assert!(polled);
                    assert_eq!(entries(), 1);
                    TrioTimer.reset(&mut sleep, TrioTimer.now() + Duration::from_secs(2));
                    sleep.await;
                    assert_eq!(trio::current_time() - t0, 7.0);
                    assert_eq!(entries(), 0);

                    // Already expired: ready on the first poll.
                    TrioTimer.sleep_until(TrioTimer.now()).await;
                    assert_eq!(trio::current_time() - t0, 7.0);

                    // Dropped while registered: the entry goes.
                    let mut sleep = TrioTimer.sleep(Duration::from_secs(1));
                    let _ = std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
                    assert_eq!(entries(), 1);
                    drop(sleep);
                    assert_eq!(entries(), 0);
                    Ok(Registry::existing().unwrap().id)
                })
                .unwrap()
        };
        let (first, second) = (run(), run());
        assert_ne!(first, second);
    }
}
