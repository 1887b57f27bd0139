//! The cross-run channel: [`open_cross_run_channel`] and its two ends.
//!
//! The design and invariants are the module's (`cross_run`): one `Chan`
//! behind a mutex; every operation decides under it, then wakes after it.
//! What is particular to the channel:
//!
//! - A wait is named by its *sequence number* (`seq`), given under the
//!   mutex when it is queued, so each queue is in `seq` order (found by
//!   binary search) and FIFO.
//! - `outcomes` holds what a woken waiter will find when it resumes
//!   (see [`Outcome`]); only ended-but-not-resumed waits have one, so it
//!   stays tiny and a linear search beats hashing.
//! - A handle's `closed` flag is read and written under the mutex, so a
//!   close cannot miss a wait queued through the same handle by another
//!   thread at the same moment.
//! - A task's send or receive decides in one locking: done at once, or
//!   queued. Only when it must wait does it make the wait, under the
//!   mutex, in one look at the run: the run's spare park record
//!   re-armed (`new_spare_park`, see "spare wait records" in
//!   `core/park.rs`) and a `TaskWaiter`; neither calls out. The locking
//!   runs in a poll of its own, which lends the task's waker: a plain
//!   waker of this run (the task's own) is registered with the record at
//!   once, decoded in place, and the park's first poll has nothing left
//!   to do. Any other waker (a foreign executor's, which registering
//!   would `clone`, a call-out) is registered by that first poll, after
//!   the mutex is released.
//! - A send or receive that did not wait ends with a schedule point that
//!   passes in place, in the poll that did the operation, when nothing
//!   else in the run could run (see `pass_in_place`), at most `IN_PLACE_LIMIT` (63) times in a row. A
//!   task that polls several futures itself (`join!`, `select!`) clears
//!   its own wake when its poll starts, so a sibling future that woke
//!   itself may wait up to that many channel operations of the others
//!   before the task yields; no other task, timer, reactor event or
//!   cross-thread post is held up (any of them makes the run busy).

use super::waiter::{TaskWaiter, Waiter, Wake, finish_all};
use super::{AtomicBool, Mutex, Ordering, blocking_in_run, lock};
use crate::channel::{MemoryChannelStatistics, SendError, closed_error, no_receivers_error};
use crate::core::park::{SparePark, new_spare_park};
use crate::core::runtime;
use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::{Abort, AbortReason, WaitKey, checkpoint, checkpoint_if_cancelled};
use crate::sync::WaitSite;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

struct SendWaiter<T> {
    seq: u64,
    handle: u64,
    waiter: Waiter,
    value: T,
}

struct RecvWaiter {
    seq: u64,
    handle: u64,
    waiter: Waiter,
}

/// How a wait ended, kept for the waiter until it resumes.
enum Outcome<T> {
    /// A receive was handed this value.
    Value(T),
    /// A receive failed (`Closed`, `EndOfChannel`).
    Failed(Error),
    /// A send completed: a receiver took its value.
    Sent,
    /// A send failed (`Closed`, `Broken`): its value comes back.
    Refused(Error, T),
    /// A send was cancelled (its abort function took it out of the queue):
    /// its value comes back, with the park's `Cancelled`.
    Withdrawn(T),
}

struct Chan<T> {
    capacity: usize,
    buffer: VecDeque<T>,
    open_senders: usize,
    open_receivers: usize,
    send_waiters: VecDeque<SendWaiter<T>>,
    recv_waiters: VecDeque<RecvWaiter>,
    /// See the module docs.
    outcomes: Vec<(u64, Outcome<T>)>,
    next_seq: u64,
    next_handle: u64,
}

type ChanRef<T> = Arc<Mutex<Chan<T>>>;

impl<T> Chan<T> {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn handle_id(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }

    fn take_outcome(&mut self, seq: u64) -> Option<Outcome<T>> {
        let i = self.outcomes.iter().position(|(s, _)| *s == seq)?;
        Some(self.outcomes.swap_remove(i).1)
    }

    fn find_send(&self, seq: u64) -> Option<usize> {
        self.send_waiters.binary_search_by_key(&seq, |w| w.seq).ok()
    }

    fn find_recv(&self, seq: u64) -> Option<usize> {
        self.recv_waiters.binary_search_by_key(&seq, |w| w.seq).ok()
    }

    /// Hands `value` to the oldest waiting receiver (its outcome now),
    /// returning the wake-up to finish after the mutex; or gives the value
    /// back if none waits. Stale receivers (of runs that have ended) are
    /// dropped on the way.
    fn hand_to_receiver(&mut self, value: T) -> std::result::Result<Wake, T> {
        while let Some(w) = self.recv_waiters.pop_front() {
            // Posted before the outcome is written, but the receiver can
            // only read it under the mutex, which is held until then.
            if let Some(wake) = w.waiter.prepare() {
                self.outcomes.push((w.seq, Outcome::Value(value)));
                return Ok(wake);
            }
        }
        Err(value)
    }

    fn statistics(&self) -> MemoryChannelStatistics {
        MemoryChannelStatistics {
            current_buffer_used: self.buffer.len(),
            max_buffer_size: self.capacity,
            open_send_channels: self.open_senders,
            open_receive_channels: self.open_receivers,
            tasks_waiting_send: self.send_waiters.len(),
            tasks_waiting_receive: self.recv_waiters.len(),
        }
    }
}

/// Opens a channel between runs (and threads) with room for `capacity`
/// buffered values: `0` for a rendezvous channel, `N`, or
/// [`UNBOUNDED`](crate::channel::UNBOUNDED). Returns the two ends; both are
/// `Send + Sync` and can be cloned.
///
/// Its semantics are the memory channel's
/// ([`open_memory_channel`](crate::open_memory_channel)): see there, and
/// the [module docs](crate::cross_run) for what crossing runs adds.
///
/// ```
/// use trio::cross_run::open_cross_run_channel;
///
/// let (tx, rx) = open_cross_run_channel::<String>(1);
/// let worker = std::thread::spawn(move || {
///     // A plain thread, outside any run: the blocking twins.
///     let job = rx.receive_blocking().unwrap();
///     job.to_uppercase()
/// });
/// trio::run(async move {
///     tx.send("hello".to_string()).await?;
///     Ok(())
/// })
/// .unwrap();
/// assert_eq!(worker.join().unwrap(), "HELLO");
/// ```
pub fn open_cross_run_channel<T: Send>(
    capacity: usize,
) -> (CrossRunSender<T>, CrossRunReceiver<T>) {
    let chan = Arc::new(Mutex::new(Chan {
        capacity,
        buffer: VecDeque::new(),
        open_senders: 1,
        open_receivers: 1,
        send_waiters: VecDeque::new(),
        recv_waiters: VecDeque::new(),
        outcomes: Vec::new(),
        next_seq: 0,
        next_handle: 2,
    }));
    (
        CrossRunSender {
            chan: chan.clone(),
            id: 1,
            closed: AtomicBool::new(false),
        },
        CrossRunReceiver {
            chan,
            id: 2,
            closed: AtomicBool::new(false),
        },
    )
}

// ----- errors -------------------------------------------------------------------

fn end_of_channel() -> Error {
    Error::new(ErrorKind::EndOfChannel, "every send channel is closed")
}

fn would_block(what: &'static str) -> Error {
    Error::new(ErrorKind::WouldBlock, what)
}

// ----- sending ------------------------------------------------------------------

/// What one locked attempt to send came to.
enum SendStep<T> {
    Sent,
    /// No room, and no waiter was offered: the value comes back.
    Full(T),
    Failed(Error, T),
    /// Queued with this sequence number.
    Queued(u64),
}

/// The sending end of a cross-run channel: `Send + Sync`, clonable.
///
/// Clones are independent handles: each must be closed (or dropped) for
/// the receivers to see the end of the channel. A clone of a closed handle
/// is closed.
pub struct CrossRunSender<T> {
    chan: ChanRef<T>,
    id: u64,
    /// Read and written under the channel's mutex (see the module docs).
    closed: AtomicBool,
}

impl<T> CrossRunSender<T> {
    /// One locked attempt: hand `value` to a waiting receiver, buffer it,
    /// or (if `waiter` is given) queue it to wait. Wakes a receiver after
    /// the mutex is released.
    fn send_step(&self, value: T, waiter: Option<Waiter>) -> SendStep<T> {
        self.send_step_with(value, || waiter.map(Ok))
    }

    /// [`send_step`](Self::send_step), with the waiter made by
    /// `make_waiter` under the mutex, only if the value must wait (`None`:
    /// none offered, the value comes back as `Full`). It makes the wait (a
    /// park record, a waiter) and calls nothing out.
    fn send_step_with(
        &self,
        value: T,
        make_waiter: impl FnOnce() -> Option<Result<Waiter>>,
    ) -> SendStep<T> {
        let mut c = lock(&self.chan);
        if self.closed.load(Ordering::Relaxed) {
            return SendStep::Failed(closed_error("send"), value);
        }
        if c.open_receivers == 0 {
            return SendStep::Failed(no_receivers_error(), value);
        }
        let value = match c.hand_to_receiver(value) {
            Ok(wake) => {
                drop(c);
                wake.finish();
                return SendStep::Sent;
            }
            Err(value) => value,
        };
        if c.buffer.len() < c.capacity {
            c.buffer.push_back(value);
            return SendStep::Sent;
        }
        let waiter = match make_waiter() {
            None => return SendStep::Full(value),
            Some(Err(e)) => return SendStep::Failed(e, value),
            Some(Ok(w)) => w,
        };
        let seq = c.seq();
        c.send_waiters.push_back(SendWaiter {
            seq,
            handle: self.id,
            waiter,
            value,
        });
        SendStep::Queued(seq)
    }

    /// Sends `value` without waiting: to a waiting receiver, or into the
    /// buffer. [`ErrorKind::WouldBlock`] if the buffer is full,
    /// [`ErrorKind::Closed`] if this handle is closed,
    /// [`ErrorKind::Broken`] if every receiver is closed; the value comes
    /// back in the error. Not a checkpoint; callable from any thread.
    pub fn try_send(&self, value: T) -> std::result::Result<(), SendError<T>> {
        match self.send_step(value, None) {
            SendStep::Sent => Ok(()),
            SendStep::Full(v) => Err(SendError::new(
                would_block("the channel's buffer is full"),
                v,
            )),
            SendStep::Failed(e, v) => Err(SendError::new(e, v)),
            SendStep::Queued(_) => unreachable!("no waiter was offered"),
        }
    }

    /// Sends `value`, waiting for room (or, with capacity 0, for a
    /// receiver), from a task of any run. A checkpoint. On failure the
    /// value comes back in the error: `Cancelled` (nothing was sent),
    /// [`ErrorKind::Closed`] (this handle was closed),
    /// [`ErrorKind::Broken`] (every receiver is closed).
    ///
    /// The task tree shows a blocked sender as waiting in
    /// `CrossRunSender.send` at the caller's location.
    #[track_caller]
    pub fn send(
        &self,
        value: T,
    ) -> impl Future<Output = std::result::Result<(), SendError<T>>> + '_ {
        self.send_at(value, WaitSite::new("CrossRunSender.send"))
    }

    async fn send_at(&self, value: T, site: WaitSite) -> std::result::Result<(), SendError<T>> {
        if let Err(e) = checkpoint_if_cancelled().await {
            return Err(SendError::new(e, value));
        }
        // One locking: the value goes at once, or the wait is made and
        // queued under the same lock (invariant 1), only when it is needed
        // (a park record and a waiter: no call-out under the mutex).
        // Made in a poll of its own, which lends the task's waker: a wait
        // is registered with it as it is made (see `make_task_wait`).
        let seq = Cell::new(0);
        let seq_ref = &seq;
        let mut park = None;
        let mut value = Some(value);
        // A send that did not wait passes its schedule point in place in
        // the same poll when it may (see `pass_in_place`).
        let (step, passed) = std::future::poll_fn(|cx| {
            let value = value.take().expect("polled once: it is ready at once");
            let step = self.send_step_with(value, || {
                let abort = withdraw_on_cancel(move || self.withdraw(seq_ref.get()));
                make_task_wait(&site, abort, &mut park, cx.waker())
            });
            let passed = matches!(step, SendStep::Sent) && pass_in_place();
            Poll::Ready((step, passed))
        })
        .await;
        match step {
            SendStep::Sent => {
                if !passed {
                    let _ = SchedulePoint::default().await;
                }
                return Ok(());
            }
            SendStep::Failed(e, v) => return Err(SendError::new(e, v)),
            SendStep::Full(_) => unreachable!("a waiter was offered"),
            SendStep::Queued(s) => seq.set(s),
        }
        // Awaited in place (a `SparePark` is `Unpin`): moving it out of the
        // `Option` would copy it within the future's state on every wait.
        let park = park.as_mut().expect("a queued send made its wait");
        let mut guard = SendGuard {
            chan: &self.chan,
            seq: seq.get(),
            armed: true,
        };
        let parked = park.await;
        guard.armed = false;
        self.finish(seq.get(), parked)
    }

    /// A cancelled send's abort function: takes it out of the queue (the
    /// cancel wins) unless a peer already decided its outcome.
    fn withdraw(&self, seq: u64) -> Abort {
        let mut c = lock(&self.chan);
        let Some(i) = c.find_send(seq) else {
            return Abort::Failed; // its wake-up is on the way
        };
        let w = c.send_waiters.remove(i).expect("index just found");
        c.outcomes.push((seq, Outcome::Withdrawn(w.value)));
        drop(c);
        drop(w.waiter);
        Abort::Succeeded
    }

    /// What a send that waited comes to, from its outcome.
    fn finish(&self, seq: u64, parked: Result<()>) -> std::result::Result<(), SendError<T>> {
        let mut c = lock(&self.chan);
        let outcome = match c.take_outcome(seq) {
            Some(o) => o,
            // The park failed without an outcome (a misuse, such as
            // polling it in another run): still queued; take it back.
            None => {
                let w = c.find_send(seq).and_then(|i| c.send_waiters.remove(i));
                drop(c);
                let w = w.expect("a send without an outcome is still queued");
                let e = parked.err().unwrap_or_else(|| {
                    Error::usage("a cross-run send was woken without an outcome")
                });
                return Err(SendError::new(e, w.value));
            }
        };
        drop(c);
        match outcome {
            Outcome::Sent => Ok(()),
            Outcome::Refused(e, v) => Err(SendError::new(e, v)),
            Outcome::Withdrawn(v) => Err(SendError::new(
                parked.err().unwrap_or_else(Error::cancelled),
                v,
            )),
            Outcome::Value(_) | Outcome::Failed(_) => {
                unreachable!("a send's outcome is a send's")
            }
        }
    }

    /// Sends `value` from a thread outside any run, blocking the thread
    /// until there is room (or a receiver). Fails as
    /// [`send`](Self::send) does, and with [`ErrorKind::Usage`] on a run's
    /// thread (where it would block the whole run); the value comes back.
    pub fn send_blocking(&self, value: T) -> std::result::Result<(), SendError<T>> {
        if runtime::is_in_run() {
            return Err(SendError::new(
                blocking_in_run("CrossRunSender::send_blocking"),
                value,
            ));
        }
        let seq = match self.send_step_with(value, || Some(Ok(Waiter::current_thread()))) {
            SendStep::Sent => return Ok(()),
            SendStep::Failed(e, v) => return Err(SendError::new(e, v)),
            SendStep::Full(_) => unreachable!("a waiter was offered"),
            SendStep::Queued(seq) => seq,
        };
        let outcome = park_until(&self.chan, seq);
        match outcome {
            Outcome::Sent => Ok(()),
            Outcome::Refused(e, v) => Err(SendError::new(e, v)),
            Outcome::Withdrawn(v) => Err(SendError::new(Error::cancelled(), v)),
            Outcome::Value(_) | Outcome::Failed(_) => {
                unreachable!("a send's outcome is a send's")
            }
        }
    }

    /// Closes this handle. Tasks and threads blocked sending through it
    /// fail with [`ErrorKind::Closed`] (getting their values back); if it
    /// was the last open send handle, receivers see the end of the channel
    /// once the buffer is drained. Idempotent; not a checkpoint; callable
    /// from any thread.
    pub fn close(&self) {
        let mut c = lock(&self.chan);
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut wake = Vec::new();
        let mut stale = Vec::new();
        let mut i = 0;
        while i < c.send_waiters.len() {
            if c.send_waiters[i].handle == self.id {
                let w = c.send_waiters.remove(i).expect("index in range");
                match w.waiter.prepare() {
                    Some(prepared) => {
                        c.outcomes
                            .push((w.seq, Outcome::Refused(closed_error("send"), w.value)));
                        wake.push(prepared);
                    }
                    None => stale.push(w.value),
                }
            } else {
                i += 1;
            }
        }
        c.open_senders -= 1;
        if c.open_senders == 0 {
            let receivers: Vec<RecvWaiter> = c.recv_waiters.drain(..).collect();
            for w in receivers {
                if let Some(prepared) = w.waiter.prepare() {
                    c.outcomes.push((w.seq, Outcome::Failed(end_of_channel())));
                    wake.push(prepared);
                }
            }
        }
        drop(c);
        // Wake first: a value's `Drop` may panic, and must not strand a
        // waiter whose wake-up was prepared.
        finish_all(wake);
        drop(stale);
    }

    /// Closes this handle (see [`close`](Self::close)), then checkpoints.
    /// The handle is closed even if this returns `Cancelled`.
    pub async fn aclose(&self) -> Result<()> {
        self.close();
        checkpoint().await
    }

    /// Whether this handle is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Debugging information about the channel (the memory channel's
    /// statistics; "tasks" waiting count blocked threads too).
    pub fn statistics(&self) -> MemoryChannelStatistics {
        lock(&self.chan).statistics()
    }
}

/// The schedule point that ends a send or receive that did not wait
/// (DESIGN §6: Trio's `cancel_shielded_checkpoint`, so a `Cancelled`
/// always means no effect) passes in place when the run loop's next tick
/// would do nothing but poll this task again (no other task ready, nothing
/// posted, no deadline due, the I/O poll not due, no instruments, not a
/// guest run), as a nursery's
/// exit does (`Runtime::pass_schedule_point_in_place`), which no other task
/// can observe: a run that only talks through cross-run channels (a worker
/// run, the ping-pong benchmark) then saves the trip through the run loop
/// after every hand-off (about 300 instructions, callgrind). The operation
/// looks in the poll that did it, right after its locking (and after any
/// wake-up of a task of this run, which makes the run busy): `true` if the
/// schedule point passed (and is counted). Otherwise it awaits a
/// [`SchedulePoint`].
#[inline]
fn pass_in_place() -> bool {
    runtime::with_runtime(|rt| {
        let passed = rt.pass_schedule_point_in_place();
        if passed {
            rt.count_checkpoint(true, false);
        }
        passed
    })
    .unwrap_or(false)
}

/// A schedule point that could not pass in place (see [`pass_in_place`]):
/// it yields once, as `cancel_shielded_checkpoint` does.
#[derive(Default)]
struct SchedulePoint {
    yielded: bool,
}

impl Future for SchedulePoint {
    type Output = Result<()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<()>> {
        use std::task::Poll;
        let yielded = self.yielded;
        let passed = runtime::with_runtime(|rt| {
            if !yielded {
                rt.wake_by_ref(cx.waker());
                return false;
            }
            rt.count_checkpoint(true, false);
            true
        });
        match passed {
            Some(true) => Poll::Ready(Ok(())),
            Some(false) => {
                self.yielded = true;
                Poll::Pending
            }
            None => Poll::Ready(Err(Error::outside_run())),
        }
    }
}

/// Blocks the calling thread until the wait `seq` has an outcome.
fn park_until<T>(chan: &Mutex<Chan<T>>, seq: u64) -> Outcome<T> {
    loop {
        if let Some(o) = lock(chan).take_outcome(seq) {
            return o;
        }
        // An unpark that came before this park makes it return at once;
        // a spurious return just looks again.
        #[cfg(loom)]
        loom::thread::park();
        #[cfg(not(loom))]
        std::thread::park();
    }
}

/// Puts things right if a send's future is dropped while it waits
/// (invariant 4), wherever that drop happens.
struct SendGuard<'a, T> {
    chan: &'a Mutex<Chan<T>>,
    seq: u64,
    armed: bool,
}

impl<T> Drop for SendGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Disarmed on every wait that ends: the check alone, in place.
        if self.armed {
            self.put_right();
        }
    }
}

impl<T> SendGuard<'_, T> {
    /// The send's future was dropped while it waited.
    #[cold]
    #[inline(never)]
    fn put_right(&mut self) {
        let mut c = lock(self.chan);
        let (value, waiter) = match c.find_send(self.seq) {
            Some(i) => {
                let w = c.send_waiters.remove(i).expect("index just found");
                (Some(w.value), Some(w.waiter))
            }
            None => match c.take_outcome(self.seq) {
                Some(Outcome::Refused(_, v) | Outcome::Withdrawn(v)) => (Some(v), None),
                _ => (None, None),
            },
        };
        drop(c);
        // Nobody is left to hand the value back to.
        drop(value);
        drop(waiter);
    }
}

impl<T> Clone for CrossRunSender<T> {
    fn clone(&self) -> Self {
        let mut c = lock(&self.chan);
        let id = c.handle_id();
        let closed = self.closed.load(Ordering::Relaxed);
        if !closed {
            c.open_senders += 1;
        }
        drop(c);
        CrossRunSender {
            chan: self.chan.clone(),
            id,
            closed: AtomicBool::new(closed),
        }
    }
}

impl<T> Drop for CrossRunSender<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for CrossRunSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrossRunSender")
            .field("closed", &self.is_closed())
            .field("statistics", &self.statistics())
            .finish()
    }
}

/// The abort function of a task's blocked send or receive: a cancel runs
/// `withdraw` (which decides whether the cancel wins); a drop is put right
/// by the caller's guard, wherever it happens.
fn withdraw_on_cancel(
    mut withdraw: impl FnMut() -> Abort,
) -> impl FnMut(WaitKey, AbortReason) -> Abort {
    move |_key, reason| match reason {
        AbortReason::Cancelled => withdraw(),
        AbortReason::Dropped { .. } => Abort::Succeeded,
    }
}

/// The wait of a task's send or receive that must block, made under the
/// mutex (a park record and a waiter; nothing calls out): the park goes
/// to `park`, the waiter is returned for the queue.
///
/// The record is the run's spare one, re-armed, or a new one (see
/// "spare wait records" in `core/park.rs`). A plain waker of this run (the
/// usual task's) is registered with it at once, decoded in place; the
/// park's first poll, which follows at once in the same poll of the task,
/// then has nothing to do. Any other waker (a foreign executor's, a
/// counted one) is left to that first poll, after the mutex: its `clone`
/// may call out.
fn make_task_wait<A: FnMut(WaitKey, AbortReason) -> Abort>(
    site: &WaitSite,
    abort: A,
    park: &mut Option<SparePark<A>>,
    waker: &std::task::Waker,
) -> Option<Result<Waiter>> {
    // The park's record and the waiter in one look at the run, each
    // written where it goes (nothing to move out of the look).
    let made = runtime::with_runtime(|rt| {
        let (key, registered) = new_spare_park(rt, site.label, site.location, waker);
        *park = Some(SparePark::new(key, registered, abort));
        TaskWaiter::in_run(rt, key)
    });
    match made {
        Some(waiter) => Some(Ok(Waiter::Task(waiter))),
        None => Some(Err(Error::outside_run())),
    }
}

// ----- receiving ----------------------------------------------------------------

/// What one locked attempt to receive came to.
enum RecvStep<T> {
    Ready(T),
    /// Nothing yet, and no waiter was offered.
    Empty,
    Failed(Error),
    Queued(u64),
}

/// The receiving end of a cross-run channel: `Send + Sync`, clonable.
///
/// Clones are independent handles that share the values (each value goes
/// to one receiver): each must be closed (or dropped) before senders see
/// the channel as broken. A clone of a closed handle is closed.
pub struct CrossRunReceiver<T> {
    chan: ChanRef<T>,
    id: u64,
    /// Read and written under the channel's mutex (see the module docs).
    closed: AtomicBool,
}

impl<T> CrossRunReceiver<T> {
    /// One locked attempt: take the oldest blocked sender's value (its
    /// send completes), or a buffered one, or (if `waiter` is given) queue
    /// to wait. Wakes a sender after the mutex is released.
    fn receive_step(&self, waiter: Option<Waiter>) -> RecvStep<T> {
        self.receive_step_with(|| waiter.map(Ok))
    }

    /// [`receive_step`](Self::receive_step), with the waiter made by
    /// `make_waiter` under the mutex, only if the receive must wait
    /// (`None`: none offered, `Empty`). It makes the wait (a park record, a
    /// waiter) and calls nothing out.
    fn receive_step_with(
        &self,
        make_waiter: impl FnOnce() -> Option<Result<Waiter>>,
    ) -> RecvStep<T> {
        let mut stale = Vec::new();
        let mut c = lock(&self.chan);
        let step = loop {
            if self.closed.load(Ordering::Relaxed) {
                break RecvStep::Failed(closed_error("receive"));
            }
            if let Some(w) = c.send_waiters.pop_front() {
                let Some(wake) = w.waiter.prepare() else {
                    // A send left by a future leaked in a run that has
                    // ended: it never completed, and nobody can get its
                    // value back. Dropped after the mutex.
                    stale.push(w.value);
                    continue;
                };
                // The oldest blocked sender has waited longest: its value
                // goes behind the buffered ones (or straight to us if
                // there are none), and its send completes now.
                let v = match c.buffer.pop_front() {
                    Some(front) => {
                        c.buffer.push_back(w.value);
                        front
                    }
                    None => w.value,
                };
                c.outcomes.push((w.seq, Outcome::Sent));
                drop(c);
                wake.finish(); // before any user `Drop`, as in `close`
                drop(stale);
                return RecvStep::Ready(v);
            }
            if let Some(v) = c.buffer.pop_front() {
                break RecvStep::Ready(v);
            }
            if c.open_senders == 0 {
                break RecvStep::Failed(Error::new(
                    ErrorKind::EndOfChannel,
                    "every send channel is closed and the buffer is empty",
                ));
            }
            let waiter = match make_waiter() {
                None => break RecvStep::Empty,
                Some(Err(e)) => break RecvStep::Failed(e),
                Some(Ok(w)) => w,
            };
            let seq = c.seq();
            c.recv_waiters.push_back(RecvWaiter {
                seq,
                handle: self.id,
                waiter,
            });
            break RecvStep::Queued(seq);
        };
        drop(c);
        drop(stale);
        step
    }

    /// Takes a value without waiting. [`ErrorKind::WouldBlock`] if there
    /// is none yet, [`ErrorKind::EndOfChannel`] if there never will be
    /// (every sender closed, buffer empty), [`ErrorKind::Closed`] if this
    /// handle is closed. Not a checkpoint; callable from any thread.
    pub fn try_receive(&self) -> Result<T> {
        match self.receive_step(None) {
            RecvStep::Ready(v) => Ok(v),
            RecvStep::Empty => Err(would_block("the channel is empty")),
            RecvStep::Failed(e) => Err(e),
            RecvStep::Queued(_) => unreachable!("no waiter was offered"),
        }
    }

    /// Takes the next value, waiting for one, from a task of any run. A
    /// checkpoint. Fails with [`ErrorKind::EndOfChannel`] when every sender
    /// is closed and the buffer is empty, [`ErrorKind::Closed`] if this
    /// handle is closed, and `Cancelled` if cancelled, in which case
    /// nothing was taken.
    ///
    /// The task tree shows a blocked receiver as waiting in
    /// `CrossRunReceiver.receive` at the caller's location.
    #[track_caller]
    pub fn receive(&self) -> impl Future<Output = Result<T>> + '_ {
        self.receive_at(WaitSite::new("CrossRunReceiver.receive"))
    }

    /// Like [`receive`](Self::receive), shaped for a `while let` loop:
    /// `None` at the end of the channel, `Some(Err(_))` on another error.
    /// Shown in the task tree as `CrossRunReceiver.next`.
    #[track_caller]
    pub fn next(&self) -> impl Future<Output = Option<Result<T>>> + '_ {
        let site = WaitSite::new("CrossRunReceiver.next");
        async move {
            match self.receive_at(site).await {
                Err(e) if e.kind() == ErrorKind::EndOfChannel => None,
                r => Some(r),
            }
        }
    }

    async fn receive_at(&self, site: WaitSite) -> Result<T> {
        checkpoint_if_cancelled().await?;
        // One locking: a value at once, or the wait made and queued under
        // the same lock (invariant 1), only when it is needed (a park
        // record and a waiter: no call-out under the mutex).
        // Made in a poll of its own, which lends the task's waker: a wait
        // is registered with it as it is made (see `make_task_wait`).
        let seq = Cell::new(0);
        let seq_ref = &seq;
        let mut park = None;
        // A value taken at once: its schedule point passes in place in the
        // same poll when it may (see `pass_in_place`).
        let (step, passed) = std::future::poll_fn(|cx| {
            let step = self.receive_step_with(|| {
                let abort = withdraw_on_cancel(move || self.withdraw(seq_ref.get()));
                make_task_wait(&site, abort, &mut park, cx.waker())
            });
            let passed = matches!(step, RecvStep::Ready(_)) && pass_in_place();
            Poll::Ready((step, passed))
        })
        .await;
        match step {
            RecvStep::Ready(v) if passed => return Ok(v),
            RecvStep::Ready(v) => return self.hold_through_checkpoint(v).await,
            RecvStep::Failed(e) => return Err(e),
            RecvStep::Empty => unreachable!("a waiter was offered"),
            RecvStep::Queued(s) => seq.set(s),
        }
        // Awaited in place (a `SparePark` is `Unpin`): moving it out of the
        // `Option` would copy it within the future's state on every wait.
        let park = park.as_mut().expect("a queued receive made its wait");
        let mut guard = RecvGuard {
            chan: &self.chan,
            seq: seq.get(),
            armed: true,
        };
        let parked = park.await;
        guard.armed = false;
        let mut c = lock(&self.chan);
        match c.take_outcome(seq.get()) {
            Some(Outcome::Value(v)) => Ok(v),
            Some(Outcome::Failed(e)) => Err(e),
            Some(_) => Err(Error::usage("a receive's outcome was a send's")),
            None => {
                // Cancelled (the abort took it out of the queue), or a
                // misuse that left it queued: take it out.
                let w = c
                    .find_recv(seq.get())
                    .and_then(|i| c.recv_waiters.remove(i));
                drop(c);
                drop(w);
                Err(parked.err().unwrap_or_else(|| {
                    Error::usage("a cross-run receive was woken without an outcome")
                }))
            }
        }
    }

    /// The end of a receive that took `v` without waiting: a schedule
    /// point; if the future is dropped there, `v` goes back to the front.
    async fn hold_through_checkpoint(&self, v: T) -> Result<T> {
        let mut holding = Holding {
            chan: &self.chan,
            value: Some(v),
        };
        SchedulePoint::default().await?;
        Ok(holding.value.take().expect("held until now"))
    }

    /// A cancelled receive's abort function: takes it out of the queue
    /// (the cancel wins: nothing was consumed) unless a peer already
    /// handed it a value or an error.
    fn withdraw(&self, seq: u64) -> Abort {
        let mut c = lock(&self.chan);
        let Some(i) = c.find_recv(seq) else {
            return Abort::Failed; // its wake-up is on the way
        };
        let w = c.recv_waiters.remove(i);
        drop(c);
        drop(w);
        Abort::Succeeded
    }

    /// Takes the next value from a thread outside any run, blocking the
    /// thread until there is one. Fails as [`receive`](Self::receive) does
    /// (but is never cancelled), and with [`ErrorKind::Usage`] on a run's
    /// thread (where it would block the whole run).
    pub fn receive_blocking(&self) -> Result<T> {
        if runtime::is_in_run() {
            return Err(blocking_in_run("CrossRunReceiver::receive_blocking"));
        }
        let seq = match self.receive_step_with(|| Some(Ok(Waiter::current_thread()))) {
            RecvStep::Ready(v) => return Ok(v),
            RecvStep::Failed(e) => return Err(e),
            RecvStep::Empty => unreachable!("a waiter was offered"),
            RecvStep::Queued(seq) => seq,
        };
        match park_until(&self.chan, seq) {
            Outcome::Value(v) => Ok(v),
            Outcome::Failed(e) => Err(e),
            _ => Err(Error::usage("a receive's outcome was a send's")),
        }
    }

    /// Closes this handle. Tasks and threads blocked receiving through it
    /// fail with [`ErrorKind::Closed`]. If it was the last open receive
    /// handle, every blocked sender fails with [`ErrorKind::Broken`]
    /// (getting its value back), later sends fail the same way, and the
    /// buffered values are dropped. Idempotent; not a checkpoint; callable
    /// from any thread.
    pub fn close(&self) {
        let mut c = lock(&self.chan);
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut wake = Vec::new();
        let mut stale = Vec::new();
        let mut i = 0;
        while i < c.recv_waiters.len() {
            if c.recv_waiters[i].handle == self.id {
                let w = c.recv_waiters.remove(i).expect("index in range");
                if let Some(prepared) = w.waiter.prepare() {
                    c.outcomes
                        .push((w.seq, Outcome::Failed(closed_error("receive"))));
                    wake.push(prepared);
                }
            } else {
                i += 1;
            }
        }
        c.open_receivers -= 1;
        let buffer = if c.open_receivers == 0 {
            let senders: Vec<SendWaiter<T>> = c.send_waiters.drain(..).collect();
            for w in senders {
                match w.waiter.prepare() {
                    Some(prepared) => {
                        c.outcomes
                            .push((w.seq, Outcome::Refused(no_receivers_error(), w.value)));
                        wake.push(prepared);
                    }
                    None => stale.push(w.value),
                }
            }
            std::mem::take(&mut c.buffer)
        } else {
            VecDeque::new()
        };
        drop(c);
        finish_all(wake); // before any user `Drop`, as in the sender's `close`
        drop(buffer);
        drop(stale);
    }

    /// Closes this handle (see [`close`](Self::close)), then checkpoints.
    /// The handle is closed even if this returns `Cancelled`.
    pub async fn aclose(&self) -> Result<()> {
        self.close();
        checkpoint().await
    }

    /// Whether this handle is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Debugging information about the channel (the memory channel's
    /// statistics; "tasks" waiting count blocked threads too).
    pub fn statistics(&self) -> MemoryChannelStatistics {
        lock(&self.chan).statistics()
    }
}

impl<T: Send + 'static> CrossRunReceiver<T> {
    /// This receiver as a [`Stream`](futures_core::Stream) of `Result<T>`
    /// that ends at the end of the channel, for stream combinators. Each
    /// item is one [`receive`](Self::receive) (a checkpoint).
    ///
    /// The stream keeps the receive in progress between polls, so unlike
    /// the receiver it is neither `Send` nor `Sync`: make it in the task
    /// that consumes it. Dropping it mid-receive loses nothing (a value
    /// already handed to it goes back to the front of the channel), then
    /// closes the receiver.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// use std::pin::Pin;
    /// use futures_core::Stream;
    /// use trio::cross_run::open_cross_run_channel;
    ///
    /// let (tx, rx) = open_cross_run_channel::<u32>(8);
    /// for i in 0..3 {
    ///     tx.try_send(i).unwrap();
    /// }
    /// drop(tx);
    /// trio::run(async move {
    ///     let mut stream = rx.into_stream();
    ///     let mut got = Vec::new();
    ///     while let Some(v) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
    ///         got.push(v?);
    ///     }
    ///     assert_eq!(got, [0, 1, 2]);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn into_stream(self) -> CrossRunReceiverStream<T> {
        CrossRunReceiverStream {
            pending: None,
            receiver: Arc::new(self),
        }
    }
}

/// A [`CrossRunReceiver`] as a [`Stream`](futures_core::Stream); made by
/// [`CrossRunReceiver::into_stream`].
pub struct CrossRunReceiverStream<T> {
    /// The receive in progress. Declared first, so that it is dropped
    /// before the receiver (it gives back a value it was handed).
    pending: Option<std::pin::Pin<Box<dyn Future<Output = Result<T>>>>>,
    receiver: Arc<CrossRunReceiver<T>>,
}

impl<T: Send + 'static> futures_core::Stream for CrossRunReceiverStream<T> {
    type Item = Result<T>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<T>>> {
        use std::task::Poll;
        let this = self.get_mut();
        let pending = this.pending.get_or_insert_with(|| {
            let receiver = this.receiver.clone();
            // Polled through a stream combinator, the user's call site is
            // out of reach: the task tree points here.
            let site = WaitSite {
                label: "CrossRunReceiver.poll_next",
                location: std::panic::Location::caller(),
            };
            Box::pin(async move { receiver.receive_at(site).await })
        });
        let result = match pending.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        this.pending = None;
        Poll::Ready(match result {
            Err(e) if e.kind() == ErrorKind::EndOfChannel => None,
            r => Some(r),
        })
    }
}

impl<T> fmt::Debug for CrossRunReceiverStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrossRunReceiverStream")
            .field("receiving", &self.pending.is_some())
            .field("receiver", &self.receiver)
            .finish()
    }
}

/// Puts a value that a receiver will not take back at the front of the
/// channel, or hands it to the next waiting receiver; drops it if every
/// receiver is closed.
fn give_back<T>(chan: &Mutex<Chan<T>>, value: T) {
    let mut c = lock(chan);
    if c.open_receivers == 0 {
        drop(c);
        drop(value);
        return;
    }
    match c.hand_to_receiver(value) {
        Ok(wake) => {
            drop(c);
            wake.finish();
        }
        Err(value) => c.buffer.push_front(value),
    }
}

/// A value taken by a receive that has not returned yet.
struct Holding<'a, T> {
    chan: &'a Mutex<Chan<T>>,
    value: Option<T>,
}

impl<T> Drop for Holding<'_, T> {
    fn drop(&mut self) {
        if let Some(v) = self.value.take() {
            give_back(self.chan, v);
        }
    }
}

/// Puts things right if a receive's future is dropped while it waits
/// (invariant 4), wherever that drop happens.
struct RecvGuard<'a, T> {
    chan: &'a Mutex<Chan<T>>,
    seq: u64,
    armed: bool,
}

impl<T> Drop for RecvGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Disarmed on every wait that ends: the check alone, in place.
        if self.armed {
            self.put_right();
        }
    }
}

impl<T> RecvGuard<'_, T> {
    /// The receive's future was dropped while it waited.
    #[cold]
    #[inline(never)]
    fn put_right(&mut self) {
        let mut c = lock(self.chan);
        if let Some(i) = c.find_recv(self.seq) {
            let w = c.recv_waiters.remove(i);
            drop(c);
            drop(w);
            return;
        }
        let outcome = c.take_outcome(self.seq);
        drop(c);
        if let Some(Outcome::Value(v)) = outcome {
            give_back(self.chan, v);
        }
    }
}

impl<T> Clone for CrossRunReceiver<T> {
    fn clone(&self) -> Self {
        let mut c = lock(&self.chan);
        let id = c.handle_id();
        let closed = self.closed.load(Ordering::Relaxed);
        if !closed {
            c.open_receivers += 1;
        }
        drop(c);
        CrossRunReceiver {
            chan: self.chan.clone(),
            id,
            closed: AtomicBool::new(closed),
        }
    }
}

impl<T> Drop for CrossRunReceiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for CrossRunReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrossRunReceiver")
            .field("closed", &self.is_closed())
            .field("statistics", &self.statistics())
            .finish()
    }
}

/// What the loom model (`loom_model.rs`) drives directly: the steps a
/// task's receive takes, with the model's stand-in for a task.
#[cfg(all(test, loom))]
impl<T> CrossRunReceiver<T> {
    /// A receive's slow path up to the park: a value at once, or queued.
    pub(super) fn model_receive_or_queue(
        &self,
        waiter: Waiter,
    ) -> Result<std::result::Result<T, u64>> {
        match self.receive_step(Some(waiter)) {
            RecvStep::Ready(v) => Ok(Ok(v)),
            RecvStep::Queued(seq) => Ok(Err(seq)),
            RecvStep::Failed(e) => Err(e),
            RecvStep::Empty => unreachable!("a waiter was offered"),
        }
    }

    /// The abort function of a cancelled receive.
    pub(super) fn model_withdraw(&self, seq: u64) -> Abort {
        self.withdraw(seq)
    }

    /// What a woken receive finds.
    pub(super) fn model_outcome(&self, seq: u64) -> Option<Result<T>> {
        match lock(&self.chan).take_outcome(seq)? {
            Outcome::Value(v) => Some(Ok(v)),
            Outcome::Failed(e) => Some(Err(e)),
            _ => Some(Err(Error::usage("a receive's outcome was a send's"))),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lowlevel::checkpoint_counts;

    /// Two tasks that each send (or receive) three times without waiting:
    /// each one's schedule point lets the other, ready, run first, so
    /// every task's step `i` comes before any task's step `i + 1`. (Passed
    /// in place wrongly, one task would take several steps in a row.)
    fn steps_interleave(receive: bool) {
        let log = crate::run(async move {
            let (tx, rx) = open_cross_run_channel::<u32>(crate::channel::UNBOUNDED);
            for i in 0..6 {
                tx.try_send(i).unwrap();
            }
            let log = std::cell::RefCell::new(Vec::new());
            crate::open_nursery(async |n| {
                for me in 0..2 {
                    let (tx, rx, log) = (&tx, &rx, &log);
                    n.start_soon(async move {
                        for i in 0..3 {
                            log.borrow_mut().push((me, i));
                            if receive {
                                rx.receive().await?;
                            } else {
                                tx.send(i).await?;
                            }
                        }
                        Ok(())
                    });
                }
                Ok(())
            })
            .await?;
            Ok(log.into_inner())
        })
        .unwrap();
        assert_eq!(log.len(), 6);
        for (k, &(_, i)) in log.iter().enumerate() {
            for &(_, later) in &log[k + 1..] {
                assert!(later >= i, "a task took two steps in a row: {log:?}");
            }
        }
    }

    #[test]
    fn sends_that_do_not_wait_yield_to_ready_tasks() {
        steps_interleave(false);
    }

    #[test]
    fn receives_that_do_not_wait_yield_to_ready_tasks() {
        steps_interleave(true);
    }

    /// Passed in place (a lone task), the schedule point still counts:
    /// a send and a receive that do not wait are each one schedule point
    /// and one cancel point.
    #[test]
    fn a_schedule_point_passed_in_place_still_counts() {
        crate::run(async {
            let (tx, rx) = open_cross_run_channel::<u32>(1);
            let before = checkpoint_counts()?;
            tx.send(1).await?;
            assert_eq!(rx.receive().await?, 1);
            let after = checkpoint_counts()?;
            assert_eq!(after.schedule_points - before.schedule_points, 2);
            assert_eq!(after.cancel_points - before.cancel_points, 2);
            Ok(())
        })
        .unwrap();
    }
}

/// What a task's blocked wait makes: the run's spare wait record
/// (`core/park.rs`) and its run's direct-syscall waker.
#[cfg(all(test, not(loom)))]
mod spare_record_tests {
    use super::*;
    use std::task::Poll;

    fn parks_in_table() -> usize {
        runtime::with_runtime(|rt| rt.state.borrow().parks.len()).unwrap()
    }

    /// Blocked receives one after another, each ended by a cancel (the
    /// abort function winning) or by a send: the park table does not grow
    /// (at most the run's spare record and the other task's wait are
    /// in it between two waits), each cancelled receive consumes nothing,
    /// and each receive gets its own value.
    #[test]
    fn successive_waits_leave_no_records_behind() {
        crate::run(async {
            let (tx, rx) = open_cross_run_channel::<u32>(0);
            let scopes: Vec<crate::CancelScope> =
                (0..4).map(|_| crate::CancelScope::new()).collect();
            let sizes = std::cell::RefCell::new(Vec::new());
            crate::open_nursery(async |n| {
                n.start_soon(async {
                    for (i, scope) in (0..).zip(&scopes) {
                        assert!(scope.run(rx.receive()).await?.is_none());
                        assert_eq!(rx.receive().await?, i);
                        sizes.borrow_mut().push(parks_in_table());
                    }
                    Ok(())
                });
                for (i, scope) in (0..).zip(&scopes) {
                    crate::testing::wait_all_tasks_blocked().await?;
                    scope.cancel();
                    crate::testing::wait_all_tasks_blocked().await?;
                    tx.send(i).await.map_err(Error::from)?;
                }
                Ok(())
            })
            .await?;
            let sizes = sizes.into_inner();
            assert_eq!(sizes.len(), 4);
            assert!(sizes.iter().all(|&s| s <= 2), "{sizes:?}");
            Ok(())
        })
        .unwrap();
    }

    /// On Linux (x86_64, aarch64) a run's first cross-run wait gives it
    /// the direct-syscall reactor waker (`sys/reactor_wake.rs`), and a
    /// thread's hand-off to the blocked run wakes it through that.
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    #[test]
    fn a_cross_run_wait_gives_its_run_the_direct_waker() {
        let (tx, rx) = open_cross_run_channel::<u32>(0);
        let sender = std::thread::spawn(move || {
            // A peer outside the run: the real clock, until the receive
            // is blocked.
            while tx.statistics().tasks_waiting_receive == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            tx.send_blocking(5).map_err(Error::from)
        });
        crate::run(async {
            let direct = || runtime::with_runtime(|rt| rt.shared.has_direct_waker()).unwrap();
            assert!(!direct(), "no cross-run wait yet");
            assert_eq!(rx.receive().await?, 5);
            assert!(direct());
            Ok(())
        })
        .unwrap();
        sender.join().unwrap().unwrap();
    }

    /// A guest run whose host runs other runs on the same thread between
    /// its steps, each with a blocked cross-run wait, while the guest's
    /// spare record rests: the guest's park table stays small (the other
    /// runs' waits do not throw its spare record away, leaving it behind
    /// in its table, once per step).
    #[test]
    fn other_runs_between_a_guest_runs_steps_leave_its_records_alone() {
        use crate::lowlevel::{GuestRun, GuestStep};
        let (tx, rx) = open_cross_run_channel::<u32>(0);
        let mut guest = GuestRun::new(crate::Runner::new(), async {
            for i in 0..20 {
                assert_eq!(rx.receive().await?, i);
                // A step ends here, the spare record resting.
                crate::lowlevel::checkpoint().await?;
            }
            Ok(parks_in_table())
        })
        .unwrap();
        let other_run = || {
            crate::run(async {
                let (tx2, rx2) = open_cross_run_channel::<u32>(0);
                crate::open_nursery(async |n| {
                    n.start_soon(async {
                        assert_eq!(rx2.receive().await?, 1);
                        Ok(())
                    });
                    crate::testing::wait_all_tasks_blocked().await?;
                    tx2.send(1).await.map_err(Error::from)?;
                    Ok(())
                })
                .await
            })
            .unwrap();
        };
        let mut sent = 0;
        let parks = loop {
            match guest.step(true).unwrap() {
                GuestStep::Done(result) => break result.unwrap(),
                GuestStep::Pending(_) => {}
            }
            other_run();
            if tx.statistics().tasks_waiting_receive == 1 {
                tx.try_send(sent).map_err(Error::from).unwrap();
                sent += 1;
            }
        };
        assert_eq!(sent, 20);
        assert!(parks <= 2, "{parks} park records left in the guest run");
    }

    /// A receive dropped after a thread handed it a value, before its run
    /// applied the posted reschedule: the value goes back to the channel,
    /// and the stale reschedule, applied while the next wait on this thread
    /// is blocked, cannot end that wait (the dropped wait's record is not
    /// re-used).
    #[test]
    fn a_stale_reschedule_cannot_end_the_next_wait() {
        crate::run(async {
            let (tx, rx) = open_cross_run_channel::<u32>(0);
            let (tx_b, rx_b) = open_cross_run_channel::<u32>(0);
            let mut first = Box::pin(rx.receive());
            let polled = std::future::poll_fn(|cx| Poll::Ready(first.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
            // Handed over from outside the run: the reschedule waits in
            // this run's inbox until the task yields.
            let tx_thread = tx.clone();
            std::thread::spawn(move || tx_thread.send_blocking(1))
                .join()
                .unwrap()
                .map_err(Error::from)?;
            drop(first);
            // The next wait on this thread, armed before the run drains the
            // stale reschedule (at the task's next yield).
            let mut second = Box::pin(rx_b.receive());
            let polled = std::future::poll_fn(|cx| Poll::Ready(second.as_mut().poll(cx))).await;
            assert!(polled.is_pending());
            crate::open_nursery(async |n| {
                n.start_soon(async {
                    crate::testing::wait_all_tasks_blocked().await?;
                    tx_b.send(7).await.map_err(Error::from)?;
                    Ok(())
                });
                assert_eq!(second.as_mut().await?, 7, "ended by its own send");
                Ok(())
            })
            .await?;
            assert_eq!(
                rx.try_receive()?,
                1,
                "the dropped receive gave its value back"
            );
            Ok(())
        })
        .unwrap();
    }
}

#[cfg(all(test, not(loom)))]
mod in_place_tests {
    use super::*;
    use std::cell::Cell;
    use std::task::Poll;

    /// One task polls two futures (a hand-written join): a loop of sends
    /// that do not wait, and a counter that yields with its own waker
    /// (`wake_by_ref` + `Pending`, as `yield_now` in other libraries).
    /// At most `IN_PLACE_LIMIT + 1` sends pass between two steps of the
    /// counter (the bound the module docs state).
    #[test]
    fn self_woken_sibling_future_between_in_place_passes() {
        let max_run = crate::run(async {
            let (tx, _rx) = open_cross_run_channel::<u32>(crate::channel::UNBOUNDED);
            let since = Cell::new(0u32);
            let max_run = Cell::new(0u32);
            let done = Cell::new(false);
            let mut sends = std::pin::pin!(async {
                for i in 0..500 {
                    tx.send(i).await.map_err(Error::from)?;
                    since.set(since.get() + 1);
                    max_run.set(max_run.get().max(since.get()));
                }
                done.set(true);
                Ok::<(), Error>(())
            });
            let mut sends_done = false;
            std::future::poll_fn(|cx| {
                if !sends_done && let Poll::Ready(r) = sends.as_mut().poll(cx) {
                    r.unwrap();
                    sends_done = true;
                }
                if sends_done {
                    return Poll::Ready(());
                }
                // the "yield_now" sibling: one step per poll
                since.set(0);
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
            Ok(max_run.get())
        })
        .unwrap();
        eprintln!("max sends in a row without the sibling polled: {max_run}");
        assert!(max_run <= 64, "{max_run}");
    }
}
