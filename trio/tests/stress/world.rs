//! The shared state of one seed: the primitives every task uses, the
//! bookkeeping that checks them, and the instrument that pokes them.
//!
//! The world is built *outside* the runs (primitives need no run to exist),
//! so the channel that must outlive a run can, and so the instrument can
//! hold it. Every primitive has a tracker: an RAII value that the workload
//! holds exactly while it believes it holds the resource, and that checks
//! on entry that nobody else does (lock never held twice, semaphore and
//! limiter use never above capacity, one token per borrower).

use super::counters::{C, Counts};
use super::ledger::{ChannelProbe, Ledger, Payload, Violations};
use super::prng::Rng;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use trio::channel::UNBOUNDED;
use trio::lowlevel::{Instrument, Task};
use trio::sync::{Borrower, CapacityLimiter, Condition, Event, Lock, Mutex, Semaphore};
use trio::{CancelScope, Instant, MemoryReceiveChannel, MemorySendChannel, TaskStatus};

/// Parts of the workload a seed may switch off (swarm testing: each seed
/// runs a random subset, so that one frequent failure does not hide the
/// others, and so that rare interleavings get room).
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// An instrument whose hooks call `statistics()` on every primitive.
    pub instrument: bool,
    /// `mem::forget` of pending send futures, also on a channel that
    /// outlives the run (used again by a second run).
    pub leak_send: bool,
    /// `TaskStatus::started` called by a task other than the one started.
    pub start_handoff: bool,
    /// Two tasks borrowing limiter tokens for one shared `Borrower`.
    pub shared_borrower: bool,
    /// Nursery futures dropped while their children run.
    pub drop_nursery: bool,
    /// A task that cancels, shields and moves the deadlines of others' scopes.
    pub chaos: bool,
    /// Children that fail or panic.
    pub failing_children: bool,
    /// Two tasks waiting to read one fd (Busy).
    pub fd_busy: bool,
    /// Byte-stream sessions over memory and lockstep streams
    /// (`stress/streams.rs`).
    pub streams: bool,
    /// Byte-stream sessions over Unix and loopback TCP socket streams.
    pub sockets: bool,
    /// Servers (`serve_listeners`) over a scripted in-memory listener
    /// (`stress/serving.rs`); deterministic.
    pub serving: bool,
    /// Servers (`serve_tcp`) on loopback TCP, with real clients.
    pub tcp_serving: bool,
    /// Child processes: pipes, `run_process`, waits and signals
    /// (`stress/processes.rs`), on a fraction of the seeds that have it.
    pub processes: bool,
    /// A temp file and directory under random cancellation
    /// (`stress/files.rs`).
    pub files: bool,
}

/// The features that do real I/O whose timing the seed does not fix
/// (`seeds_replay_exactly` switches them off for its strict check).
pub const REAL_IO_FEATURES: &[&str] = &["sockets", "tcp_serving", "processes", "files"];

/// The names accepted by `TRIO_STRESS_FEATURES`.
pub const FEATURE_NAMES: &[&str] = &[
    "instrument",
    "leak_send",
    "start_handoff",
    "shared_borrower",
    "drop_nursery",
    "chaos",
    "failing_children",
    "fd_busy",
    "streams",
    "sockets",
    "serving",
    "tcp_serving",
    "processes",
    "files",
];

impl Features {
    /// Each feature on with probability 70% (drawn from the seed), then the
    /// overrides (`name` forces on, `-name` forces off).
    pub fn for_seed(seed: u64, overrides: &[(String, bool)]) -> Features {
        let mut rng = Rng::new(seed ^ 0xFEA7_0000);
        // Drawn in order: a feature added at the end leaves the earlier
        // ones of every seed as they were.
        let mut on = [false; 14];
        for (i, slot) in on.iter_mut().enumerate() {
            *slot = rng.chance(70);
            for (name, value) in overrides {
                if name == "all" || name == FEATURE_NAMES[i] {
                    *slot = *value;
                }
            }
        }
        Features {
            instrument: on[0],
            leak_send: on[1],
            start_handoff: on[2],
            shared_borrower: on[3],
            drop_nursery: on[4],
            chaos: on[5],
            failing_children: on[6],
            fd_busy: on[7],
            streams: on[8],
            sockets: on[9],
            serving: on[10],
            tcp_serving: on[11],
            processes: on[12],
            files: on[13],
        }
    }

    /// Whether any feature that does real I/O is on.
    pub fn real_io(&self) -> bool {
        self.sockets || self.tcp_serving || self.processes || self.files
    }

    pub fn describe(&self) -> String {
        let on = [
            self.instrument,
            self.leak_send,
            self.start_handoff,
            self.shared_borrower,
            self.drop_nursery,
            self.chaos,
            self.failing_children,
            self.fd_busy,
            self.streams,
            self.sockets,
            self.serving,
            self.tcp_serving,
            self.processes,
            self.files,
        ];
        FEATURE_NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One memory channel and what the workload needs to use and check it.
pub struct Chan {
    pub index: usize,
    pub capacity: usize,
    pub tx: MemorySendChannel<Payload>,
    pub rx: MemoryReceiveChannel<Payload>,
    /// Its receivers are all closed at some point of the run, so senders
    /// see `Broken` and buffered values are dropped.
    pub doomed: bool,
    /// Open receivers, asked by payload destructors (through a closed
    /// receive handle, which does not count as open).
    pub probe: Rc<ChannelProbe>,
}

impl Chan {
    fn new(index: usize, capacity: usize, doomed: bool) -> Chan {
        let (tx, rx) = trio::open_memory_channel(capacity);
        let spy = rx.clone();
        spy.close();
        let probe: Rc<ChannelProbe> = Rc::new(move || spy.statistics().open_receive_channels);
        Chan {
            index,
            capacity,
            tx,
            rx,
            doomed,
            probe,
        }
    }
}

/// A `start` whose `TaskStatus` waits for another task to call `started`.
pub struct Handoff {
    pub status: TaskStatus<u64>,
    /// When `started` was called, for the check that `start` returned then.
    pub started_at: Rc<Cell<Option<Instant>>>,
}

/// What the `Mutex<T>` guards: a counter incremented by read, checkpoint,
/// write, so that a second holder would lose an update.
#[derive(Default)]
pub struct MutexData {
    pub count: u64,
}

pub struct World {
    pub seed: u64,
    pub features: Features,
    pub threads: bool,
    pub counts: Counts,
    pub violations: Rc<Violations>,
    pub ledger: Rc<Ledger>,
    /// Capacities 0, 1, N, UNBOUNDED, then one doomed channel.
    pub chans: Vec<Chan>,
    /// The channel that outlives the run (capacity 0).
    pub xchan: Chan,
    pub lock: Lock,
    pub lock_holder: Cell<Option<Task>>,
    /// Shares `lock`.
    pub cond: Condition,
    pub cond_notifies: Cell<u64>,
    pub mutex: Mutex<MutexData>,
    pub mutex_holder: Cell<Option<Task>>,
    pub sem: Semaphore,
    pub sem_cap: usize,
    pub sem_in_use: Cell<usize>,
    pub limiter: CapacityLimiter,
    pub limiter_in_use: Cell<usize>,
    pub limiter_holding: RefCell<Vec<Borrower>>,
    pub shared_borrower: Borrower,
    pub events: RefCell<Vec<Event>>,
    /// Scopes (all with finite deadlines) that the chaos task may cancel,
    /// shield or move.
    pub scopes: RefCell<Vec<CancelScope>>,
    /// Nursery scopes the chaos task may cancel.
    pub nursery_scopes: RefCell<Vec<CancelScope>>,
    pub handoffs: RefCell<VecDeque<Handoff>>,
    pub doomed_closed: Cell<bool>,
    /// Never written: waiting to read it blocks until cancelled.
    pub fd: (UnixStream, UnixStream),
}

impl World {
    pub fn new(seed: u64, features: Features, threads: bool) -> World {
        let mut rng = Rng::new(seed ^ 0x3011_D000);
        let violations = Rc::new(Violations::default());
        let n = rng.range(2, 4) as usize;
        let doomed_cap = [0, 1, 3, UNBOUNDED][rng.below(4) as usize];
        let chans = vec![
            Chan::new(0, 0, false),
            Chan::new(1, 1, false),
            Chan::new(2, n, false),
            Chan::new(3, UNBOUNDED, false),
            Chan::new(4, doomed_cap, true),
        ];
        let lock = Lock::new();
        let sem_cap = rng.range(1, 3) as usize;
        let limiter_total = rng.range(2, 3) as usize;
        World {
            seed,
            features,
            threads,
            counts: Counts::default(),
            ledger: Ledger::new(violations.clone()),
            violations,
            chans,
            xchan: Chan::new(5, 0, false),
            cond: Condition::with_lock(lock.clone()),
            lock,
            lock_holder: Cell::new(None),
            cond_notifies: Cell::new(0),
            mutex: Mutex::new(MutexData::default()),
            mutex_holder: Cell::new(None),
            sem: Semaphore::with_max(sem_cap, sem_cap).expect("initial == max"),
            sem_cap,
            sem_in_use: Cell::new(0),
            limiter: CapacityLimiter::new(limiter_total).expect("total >= 1"),
            limiter_in_use: Cell::new(0),
            limiter_holding: RefCell::new(Vec::new()),
            shared_borrower: Borrower::unique(),
            events: RefCell::new((0..3).map(|_| Event::new()).collect()),
            scopes: RefCell::new(Vec::new()),
            nursery_scopes: RefCell::new(Vec::new()),
            handoffs: RefCell::new(VecDeque::new()),
            doomed_closed: Cell::new(false),
            fd: UnixStream::pair().expect("socketpair"),
        }
    }

    pub fn bump(&self, c: C) {
        self.counts.bump(c);
    }

    pub fn violation(&self, message: String) {
        self.violations.push(message);
    }

    /// A fresh value for `chan`.
    pub fn payload(&self, chan: &Chan) -> Payload {
        self.ledger
            .new_value(chan.index, Rc::downgrade(&chan.probe))
    }

    /// A borrower's name for messages. (`Borrower`'s own `Debug` shows a
    /// process-wide counter, which would differ between replays.)
    pub fn borrower_name(&self, b: Borrower) -> String {
        if b == self.shared_borrower {
            "the shared borrower".into()
        } else if let Some(t) = b.task() {
            format!("{t:?}")
        } else {
            "a unique borrower".into()
        }
    }

    pub fn register_scope(&self, scope: &CancelScope) {
        let mut s = self.scopes.borrow_mut();
        // Bounded: old entries have usually exited (then every call on them
        // is a no-op), and the chaos task should hit live ones.
        if s.len() >= 32 {
            s.remove(0);
        }
        s.push(scope.clone());
    }

    pub fn register_nursery_scope(&self, scope: CancelScope) {
        let mut s = self.nursery_scopes.borrow_mut();
        if s.len() >= 16 {
            s.remove(0);
        }
        s.push(scope);
    }

    /// Calls `statistics()` on every primitive and checks what can be
    /// checked at any moment. Run from instrument hooks, i.e. from inside
    /// the runtime, wherever it reschedules or steps a task.
    pub fn probe_everything(&self) {
        for c in self.chans.iter().chain([&self.xchan]) {
            let s = c.tx.statistics();
            if s.max_buffer_size != c.capacity {
                self.violation(format!(
                    "channel {} reports capacity {}",
                    c.index, s.max_buffer_size
                ));
            }
            // (No check of the buffer against the capacity: a value handed
            // to a receive future that is then dropped goes back to the
            // front of the buffer even when that makes it overfull, so that
            // it is not lost.)
            if s.tasks_waiting_send > 0 && s.tasks_waiting_receive > 0 {
                self.violation(format!(
                    "channel {} has senders and receivers waiting at once ({s:?})",
                    c.index
                ));
            }
            let _ = c.rx.statistics();
        }
        let lock = self.lock.statistics();
        if self.lock_holder.get().is_some() && !lock.locked {
            self.violation("the workload holds the Lock but it is not locked".into());
        }
        let _ = self.cond.statistics();
        let _ = self.mutex.statistics();
        let sem = self.sem.statistics();
        if sem.value + self.sem_in_use.get() > self.sem_cap {
            self.violation(format!(
                "Semaphore value {} + {} units in use exceeds its capacity {}",
                sem.value,
                self.sem_in_use.get(),
                self.sem_cap
            ));
        }
        let lim = self.limiter.statistics();
        if self.limiter_in_use.get() > lim.borrowed_tokens {
            self.violation(format!(
                "{} CapacityLimiter tokens in use but the limiter counts {} borrowed",
                self.limiter_in_use.get(),
                lim.borrowed_tokens
            ));
        }
        if let Ok(events) = self.events.try_borrow() {
            for e in events.iter() {
                let _ = e.statistics();
            }
        }
        self.bump(C::instrument_probes);
    }
}

/// The instrument: every hook probes every primitive.
pub struct Probe(pub Rc<World>);

impl Probe {
    fn probe(&self) {
        // A second panic while unwinding would abort the test binary.
        if !std::thread::panicking() {
            self.0.probe_everything();
        }
    }
}

impl Instrument for Probe {
    fn task_spawned(&self, _task: Task) {
        self.probe();
    }
    fn task_scheduled(&self, _task: Task) {
        self.probe();
    }
    fn before_task_step(&self, _task: Task) {
        self.probe();
    }
    fn task_exited(&self, _task: Task) {
        self.probe();
    }
}

// ----- trackers ------------------------------------------------------------

/// Held while the workload holds `World::lock` (through a guard, a raw
/// acquire, or the Condition).
pub struct LockHeld<'w> {
    w: &'w World,
    task: Task,
}

impl<'w> LockHeld<'w> {
    pub fn enter(w: &'w World, task: Task) -> Self {
        if let Some(other) = w.lock_holder.replace(Some(task)) {
            w.violation(format!("Lock held twice: by {other:?} and {task:?}"));
        }
        if w.lock.owner() != Some(task) {
            w.violation(format!(
                "acquired the Lock but its owner is {:?}, not {task:?}",
                w.lock.owner()
            ));
        }
        w.bump(C::lock_acquired);
        LockHeld { w, task }
    }
}

impl Drop for LockHeld<'_> {
    fn drop(&mut self) {
        if self.w.lock_holder.replace(None) != Some(self.task) {
            self.w
                .violation(format!("Lock holder changed while {:?} held it", self.task));
        }
    }
}

/// Held while the workload holds the `Mutex<T>`.
pub struct MutexHeld<'w> {
    w: &'w World,
    task: Task,
}

impl<'w> MutexHeld<'w> {
    pub fn enter(w: &'w World, task: Task) -> Self {
        if let Some(other) = w.mutex_holder.replace(Some(task)) {
            w.violation(format!("Mutex held twice: by {other:?} and {task:?}"));
        }
        MutexHeld { w, task }
    }
}

impl Drop for MutexHeld<'_> {
    fn drop(&mut self) {
        if self.w.mutex_holder.replace(None) != Some(self.task) {
            self.w.violation(format!(
                "Mutex holder changed while {:?} held it",
                self.task
            ));
        }
    }
}

/// Held while the workload holds one Semaphore unit; `raw` units are
/// released by this tracker (any task may release a semaphore).
pub struct SemHeld<'w> {
    w: &'w World,
    raw: bool,
}

impl<'w> SemHeld<'w> {
    pub fn enter(w: &'w World, raw: bool) -> Self {
        let n = w.sem_in_use.get() + 1;
        w.sem_in_use.set(n);
        if n + w.sem.value() > w.sem_cap {
            w.violation(format!(
                "Semaphore over capacity: {n} units in use + value {} > {}",
                w.sem.value(),
                w.sem_cap
            ));
        }
        w.bump(C::semaphore_acquired);
        SemHeld { w, raw }
    }
}

impl Drop for SemHeld<'_> {
    fn drop(&mut self) {
        self.w.sem_in_use.set(self.w.sem_in_use.get() - 1);
        if self.raw
            && let Err(e) = self.w.sem.release()
        {
            self.w
                .violation(format!("releasing a Semaphore unit we held failed: {e}"));
        }
    }
}

/// Held while `borrower` holds a limiter token; with `release`, gives it
/// back through `release_on_behalf_of` when dropped (guards release their
/// own).
pub struct LimiterHeld<'w> {
    w: &'w World,
    borrower: Borrower,
    release: bool,
}

impl<'w> LimiterHeld<'w> {
    pub fn enter(w: &'w World, borrower: Borrower, release: bool) -> Self {
        {
            let mut holding = w.limiter_holding.borrow_mut();
            if holding.contains(&borrower) {
                w.violation(format!(
                    "CapacityLimiter lent a second token to {} while it still held one",
                    w.borrower_name(borrower)
                ));
            }
            holding.push(borrower);
        }
        let n = w.limiter_in_use.get() + 1;
        w.limiter_in_use.set(n);
        if n > w.limiter.borrowed_tokens() {
            w.violation(format!(
                "{n} CapacityLimiter tokens in use, but the limiter counts only {} borrowed (total {})",
                w.limiter.borrowed_tokens(),
                w.limiter.total_tokens()
            ));
        }
        w.bump(C::limiter_acquired);
        LimiterHeld {
            w,
            borrower,
            release,
        }
    }
}

impl Drop for LimiterHeld<'_> {
    fn drop(&mut self) {
        let w = self.w;
        {
            let mut holding = w.limiter_holding.borrow_mut();
            match holding.iter().position(|b| *b == self.borrower) {
                Some(i) => {
                    holding.remove(i);
                }
                None => w.violation(format!(
                    "{} lost track of its token",
                    w.borrower_name(self.borrower)
                )),
            }
        }
        w.limiter_in_use.set(w.limiter_in_use.get() - 1);
        if self.release
            && let Err(e) = w.limiter.release_on_behalf_of(self.borrower)
        {
            w.violation(format!(
                "release_on_behalf_of({}) of a token it was lent failed: {e}",
                w.borrower_name(self.borrower)
            ));
        }
    }
}
