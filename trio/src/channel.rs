//! Memory channels: send values between the tasks of a run (Trio's
//! `open_memory_channel`).
//!
//! # Design
//!
//! One shared state (`Rc<RefCell<Chan>>`) holds the buffer, the counts of
//! open send and receive handles, and two FIFO queues of parked tasks:
//! blocked senders (each with the value it is trying to send) and blocked
//! receivers. Each wait is a low-level [`Park`]; the value travels in the
//! channel's own state, keyed by the waiter's sequence number, since a
//! wake-up carries only `Ok`/`Err`.
//!
//! # Invariants
//!
//! - Receivers wait only when the buffer is empty and no sender is
//!   waiting; senders wait only when the buffer is full (capacity 0: always,
//!   until a receiver comes) and no receiver is waiting. So at most one of
//!   the two queues is non-empty.
//! - **Direct hand-off.** A value sent while a receiver waits is given to
//!   the oldest waiting receiver at once (it owns it from then on; the value
//!   sits `in_transit`, keyed by that receiver). A receive that finds senders
//!   waiting takes the oldest sender's value and completes that send. So a
//!   value is never in limbo between a send and a receive: a receiver that is
//!   cancelled before the hand-off leaves the queue and gets nothing; one
//!   that was handed a value gets it, even if cancelled meanwhile.
//! - **Cancelled means no effect.** A cancelled `receive` consumed nothing;
//!   a cancelled `send` delivered nothing and hands the value back
//!   ([`SendError::into_inner`]). If a future that was already handed a
//!   value is *dropped* instead of completing, the value goes back to the
//!   front of the channel, so dropping a future never loses a value either.
//! - Closing a handle wakes the tasks blocked *on that handle* with
//!   [`ErrorKind::Closed`]. Closing the last send handle wakes every
//!   waiting receiver with [`ErrorKind::EndOfChannel`] (buffered values can
//!   still be received). Closing the last receive handle wakes every waiting
//!   sender with [`ErrorKind::Broken`] (values handed back) and drops the
//!   buffer. Dropping a handle closes it.
//! - **No call-outs under the borrow.** Values are never dropped while the
//!   state is borrowed (a value's destructor may use the channel), and
//!   waiters are rescheduled only after it is released (`reschedule` runs
//!   instrument hooks and foreign wakers, which may use the channel too).
//!   Before it releases the borrow, an operation brings the state to what it
//!   will be after the wake-up: the woken waiter is out of its queue and its
//!   value is where it will find it.
//! - **Stale waits.** A waiter left by a future leaked in a run that has
//!   ended (the channel outlived it) can never be woken: `reschedule`
//!   returns false and does nothing. A value meant for such a receiver goes
//!   to the next one; a value such a sender left is dropped (nobody can get
//!   it back), outside the borrow.

use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::{
    Abort, AbortReason, Park, WaitKey, cancel_shielded_checkpoint, checkpoint,
    checkpoint_if_cancelled, reschedule,
};
use crate::sync::{Try, WaitSite};
use std::cell::{Cell, RefCell, RefMut};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// The capacity that means "no limit" for [`open_memory_channel`].
pub const UNBOUNDED: usize = usize::MAX;

struct SendWaiter<T> {
    seq: u64,
    key: WaitKey,
    handle: u64,
    value: T,
}

struct RecvWaiter {
    seq: u64,
    key: WaitKey,
    handle: u64,
}

struct Chan<T> {
    capacity: usize,
    buffer: VecDeque<T>,
    open_senders: usize,
    open_receivers: usize,
    send_waiters: VecDeque<SendWaiter<T>>,
    recv_waiters: VecDeque<RecvWaiter>,
    /// Values in transit to a woken waiter: handed to a receiver, or given
    /// back to a sender whose send failed, with the waiter's `seq`. Only
    /// woken-but-not-yet-polled waiters have one, so this stays tiny and a
    /// linear search beats hashing.
    in_transit: Vec<(u64, T)>,
    next_seq: u64,
    next_handle: u64,
}

type Shared<T> = Rc<RefCell<Chan<T>>>;

impl<T> Chan<T> {
    /// Leaves `value` in transit for the waiter `seq` to pick up.
    fn put_in_transit(&mut self, seq: u64, value: T) {
        self.in_transit.push((seq, value));
    }

    /// Takes the value in transit for the waiter `seq`, if any.
    fn take_in_transit(&mut self, seq: u64) -> Option<T> {
        let i = self.in_transit.iter().position(|(s, _)| *s == seq)?;
        Some(self.in_transit.swap_remove(i).1)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn handle_id(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }
}

/// What [`hand_to_receiver`] did with a value.
enum Handed<'a, T> {
    /// A receiver has it, and has been rescheduled (the borrow is gone).
    Yes,
    /// No receiver is waiting: here are the borrow and the value back.
    NoReceiver(RefMut<'a, Chan<T>>, T),
}

/// Hands `value` to the oldest waiting receiver: puts it in transit for
/// that receiver, releases the borrow `c`, then reschedules it.
fn hand_to_receiver<'a, T>(
    chan: &'a Shared<T>,
    mut c: RefMut<'a, Chan<T>>,
    mut value: T,
) -> Handed<'a, T> {
    loop {
        let Some(w) = c.recv_waiters.pop_front() else {
            return Handed::NoReceiver(c, value);
        };
        c.put_in_transit(w.seq, value);
        drop(c);
        if reschedule(w.key, Ok(())) {
            return Handed::Yes;
        }
        // A stale wait (its run is gone) cannot take it: `reschedule` did
        // nothing, so the value is still in transit. Next receiver.
        c = chan.borrow_mut();
        match c.take_in_transit(w.seq) {
            Some(v) => value = v,
            None => return Handed::Yes, // unreachable: nothing ran meanwhile
        }
    }
}

/// Drops the values left in transit for `seqs` (stale senders that could
/// not be woken to take them back), outside the borrow.
fn drop_in_transit<T>(chan: &Shared<T>, seqs: &[u64]) {
    if seqs.is_empty() {
        return;
    }
    let values: Vec<T> = {
        let mut c = chan.borrow_mut();
        seqs.iter().filter_map(|&s| c.take_in_transit(s)).collect()
    };
    drop(values);
}

/// Opens a channel with room for `capacity` buffered values: `0` for a
/// rendezvous channel (each send waits for a receiver), `N`, or
/// [`UNBOUNDED`]. Returns the two ends; each can be cloned.
///
/// ```
/// use trio::open_memory_channel;
/// trio::run(async {
///     let (tx, mut rx) = open_memory_channel::<u32>(0);
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async move {
///             for i in 0..3 {
///                 tx.send(i).await?;
///             }
///             Ok(()) // dropping `tx` closes it: the loop below ends
///         });
///         let mut got = Vec::new();
///         while let Some(v) = rx.next().await {
///             got.push(v?);
///         }
///         assert_eq!(got, [0, 1, 2]);
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn open_memory_channel<T>(capacity: usize) -> (MemorySendChannel<T>, MemoryReceiveChannel<T>) {
    let chan = Rc::new(RefCell::new(Chan {
        capacity,
        buffer: VecDeque::new(),
        open_senders: 1,
        open_receivers: 1,
        send_waiters: VecDeque::new(),
        recv_waiters: VecDeque::new(),
        in_transit: Vec::new(),
        next_seq: 0,
        next_handle: 2,
    }));
    (
        MemorySendChannel {
            chan: chan.clone(),
            id: 1,
            closed: Cell::new(false),
        },
        MemoryReceiveChannel {
            chan,
            handle: Rc::new(RecvHandle {
                id: 2,
                closed: Cell::new(false),
            }),
            pending: None,
        },
    )
}

/// What the `statistics()` of either end reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryChannelStatistics {
    /// Values in the buffer.
    pub current_buffer_used: usize,
    /// The capacity ([`UNBOUNDED`] for no limit).
    pub max_buffer_size: usize,
    /// Open send handles.
    pub open_send_channels: usize,
    /// Open receive handles.
    pub open_receive_channels: usize,
    /// Tasks blocked in `send`.
    pub tasks_waiting_send: usize,
    /// Tasks blocked in `receive`.
    pub tasks_waiting_receive: usize,
}

fn statistics<T>(chan: &Shared<T>) -> MemoryChannelStatistics {
    let c = chan.borrow();
    MemoryChannelStatistics {
        current_buffer_used: c.buffer.len(),
        max_buffer_size: c.capacity,
        open_send_channels: c.open_senders,
        open_receive_channels: c.open_receivers,
        tasks_waiting_send: c.send_waiters.len(),
        tasks_waiting_receive: c.recv_waiters.len(),
    }
}

// ----- errors -------------------------------------------------------------------

/// A failed send: why, and the value that was not sent.
///
/// Converts into [`Error`] with `?` (dropping the value); a cancellation
/// stays a cancellation.
///
/// ```
/// use trio::{ErrorKind, open_memory_channel};
/// trio::run(async {
///     let (tx, rx) = open_memory_channel::<String>(0);
///     drop(rx);
///     let err = tx.try_send("hello".to_string()).unwrap_err();
///     assert_eq!(err.kind(), ErrorKind::Broken);
///     assert_eq!(err.into_inner(), "hello"); // the value comes back
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct SendError<T> {
    error: Error,
    value: T,
}

impl<T> SendError<T> {
    pub(crate) fn new(error: Error, value: T) -> Self {
        SendError { error, value }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }

    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// Whether the send was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.error.is_cancelled()
    }

    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The error and the value.
    pub fn into_parts(self) -> (Error, T) {
        (self.error, self.value)
    }
}

impl<T> From<SendError<T>> for Error {
    fn from(e: SendError<T>) -> Error {
        e.error
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

pub(crate) fn closed_error(what: &str) -> Error {
    Error::new(ErrorKind::Closed, format!("this {what} channel is closed"))
}

pub(crate) fn no_receivers_error() -> Error {
    Error::new(ErrorKind::Broken, "every receive channel is closed")
}

/// What a non-blocking send came to; the value comes back unless it was
/// sent.
enum TrySend<T> {
    Sent,
    Full(T),
    Failed(Error, T),
}

// ----- sending ------------------------------------------------------------------

/// The sending end of a memory channel.
///
/// Clones are independent handles: each must be closed (or dropped) for
/// the receivers to see the end of the channel. A clone of a closed handle
/// is closed.
pub struct MemorySendChannel<T> {
    chan: Shared<T>,
    id: u64,
    closed: Cell<bool>,
}

impl<T> MemorySendChannel<T> {
    /// Sends `value` without waiting: to a waiting receiver, or into the
    /// buffer. [`ErrorKind::WouldBlock`] if the buffer is full,
    /// [`ErrorKind::Closed`] if this handle is closed,
    /// [`ErrorKind::Broken`] if every receiver is closed; the value comes
    /// back in the error. Not a checkpoint.
    pub fn try_send(&self, value: T) -> Result<(), SendError<T>> {
        match self.try_send_inner(value) {
            TrySend::Sent => Ok(()),
            TrySend::Full(v) => Err(SendError::new(
                Error::new(ErrorKind::WouldBlock, "the channel's buffer is full"),
                v,
            )),
            TrySend::Failed(e, v) => Err(SendError::new(e, v)),
        }
    }

    fn try_send_inner(&self, value: T) -> TrySend<T> {
        if self.closed.get() {
            return TrySend::Failed(closed_error("send"), value);
        }
        let c = self.chan.borrow_mut();
        if c.open_receivers == 0 {
            return TrySend::Failed(no_receivers_error(), value);
        }
        match hand_to_receiver(&self.chan, c, value) {
            Handed::Yes => TrySend::Sent,
            Handed::NoReceiver(mut c, value) => {
                if c.buffer.len() < c.capacity {
                    c.buffer.push_back(value);
                    TrySend::Sent
                } else {
                    TrySend::Full(value)
                }
            }
        }
    }

    /// Sends `value`, waiting for room (or, with capacity 0, for a
    /// receiver). A checkpoint. On failure the value comes back in the
    /// error: `Cancelled` (nothing was sent), [`ErrorKind::Closed`] (this
    /// handle was closed), [`ErrorKind::Broken`] (every receiver is closed).
    ///
    /// The task tree shows a blocked sender as waiting in
    /// `MemorySendChannel.send` at the caller's location.
    #[track_caller]
    pub fn send(&self, value: T) -> impl Future<Output = Result<(), SendError<T>>> + '_ {
        self.send_at(value, WaitSite::new("MemorySendChannel.send"))
    }

    async fn send_at(&self, value: T, site: WaitSite) -> Result<(), SendError<T>> {
        if let Err(e) = checkpoint_if_cancelled().await {
            return Err(SendError::new(e, value));
        }
        let value = match self.try_send_inner(value) {
            TrySend::Sent => {
                let _ = cancel_shielded_checkpoint().await;
                return Ok(());
            }
            TrySend::Full(v) => v,
            TrySend::Failed(e, v) => return Err(SendError::new(e, v)),
        };
        let chan = &self.chan;
        let seq = chan.borrow_mut().seq();
        let park = Park::new_at(site.label, site.location, |_key, reason| {
            match reason {
                AbortReason::Cancelled => {
                    // Take the value back for the caller: nothing was sent.
                    let mut c = chan.borrow_mut();
                    if let Some(i) = find(&c.send_waiters, seq, |w| w.seq) {
                        let w = c.send_waiters.remove(i).expect("index just found");
                        c.put_in_transit(seq, w.value);
                    }
                }
                AbortReason::Dropped { rescheduled } => {
                    let value = {
                        let mut c = chan.borrow_mut();
                        match find(&c.send_waiters, seq, |w| w.seq) {
                            Some(i) if !rescheduled => c.send_waiters.remove(i).map(|w| w.value),
                            _ => c.take_in_transit(seq),
                        }
                    };
                    drop(value);
                }
            }
            Abort::Succeeded
        });
        let park = match park {
            Ok(p) => p,
            Err(e) => return Err(SendError::new(e, value)),
        };
        chan.borrow_mut().send_waiters.push_back(SendWaiter {
            seq,
            key: park.key(),
            handle: self.id,
            value,
        });
        match park.await {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut c = chan.borrow_mut();
                let value = match c.take_in_transit(seq) {
                    Some(v) => Some(v),
                    None => find(&c.send_waiters, seq, |w| w.seq)
                        .and_then(|i| c.send_waiters.remove(i))
                        .map(|w| w.value),
                };
                // Every way a parked send can fail puts its value back
                // where this finds it (see the abort function and `close`).
                let value = value.expect("a failed send's value is always handed back");
                Err(SendError::new(e, value))
            }
        }
    }

    /// Closes this handle. Tasks blocked sending through it fail with
    /// [`ErrorKind::Closed`] (getting their values back); if it was the
    /// last open send handle, receivers see the end of the channel once the
    /// buffer is drained. Idempotent; not a checkpoint.
    pub fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let mut closed_waits = Vec::new();
        let mut ended = Vec::new();
        {
            let mut c = self.chan.borrow_mut();
            let mut i = 0;
            while i < c.send_waiters.len() {
                if c.send_waiters[i].handle == self.id {
                    let w = c.send_waiters.remove(i).expect("index in range");
                    c.put_in_transit(w.seq, w.value);
                    closed_waits.push((w.seq, w.key));
                } else {
                    i += 1;
                }
            }
            c.open_senders -= 1;
            if c.open_senders == 0 {
                ended.extend(c.recv_waiters.drain(..).map(|w| w.key));
            }
        }
        let mut stale = Vec::new();
        for (seq, key) in closed_waits {
            if !reschedule(key, Err(closed_error("send"))) {
                stale.push(seq);
            }
        }
        drop_in_transit(&self.chan, &stale);
        for key in ended {
            reschedule(
                key,
                Err(Error::new(
                    ErrorKind::EndOfChannel,
                    "every send channel is closed",
                )),
            );
        }
    }

    /// Closes this handle (see [`close`](Self::close)), then checkpoints.
    /// The handle is closed even if this returns `Cancelled`.
    pub async fn aclose(&self) -> Result<()> {
        self.close();
        checkpoint().await
    }

    /// Whether this handle is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Debugging information about the channel.
    pub fn statistics(&self) -> MemoryChannelStatistics {
        statistics(&self.chan)
    }
}

fn find<X>(q: &VecDeque<X>, seq: u64, key: impl Fn(&X) -> u64) -> Option<usize> {
    q.binary_search_by_key(&seq, key).ok()
}

impl<T> Clone for MemorySendChannel<T> {
    fn clone(&self) -> Self {
        let mut c = self.chan.borrow_mut();
        let id = c.handle_id();
        let closed = self.closed.get();
        if !closed {
            c.open_senders += 1;
        }
        MemorySendChannel {
            chan: self.chan.clone(),
            id,
            closed: Cell::new(closed),
        }
    }
}

impl<T> Drop for MemorySendChannel<T> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<T> fmt::Debug for MemorySendChannel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySendChannel")
            .field("closed", &self.closed.get())
            .field("statistics", &self.statistics())
            .finish()
    }
}

// ----- receiving ----------------------------------------------------------------

struct RecvHandle {
    id: u64,
    closed: Cell<bool>,
}

/// The receiving end of a memory channel. Also a
/// [`Stream`](futures_core::Stream) of `Result<T>` that ends at the end of
/// the channel.
///
/// Clones are independent handles that share the values (each value goes
/// to one receiver): each must be closed (or dropped) before senders see
/// the channel as broken. A clone of a closed handle is closed.
pub struct MemoryReceiveChannel<T> {
    chan: Shared<T>,
    handle: Rc<RecvHandle>,
    /// The receive in progress when used as a `Stream`.
    pending: Option<Pin<Box<dyn Future<Output = Result<T>>>>>,
}

fn try_receive<T>(chan: &Shared<T>, handle: &RecvHandle) -> Try<T> {
    if handle.closed.get() {
        return Try::Failed(closed_error("receive"));
    }
    loop {
        let mut c = chan.borrow_mut();
        let Some(w) = c.send_waiters.pop_front() else {
            return match c.buffer.pop_front() {
                Some(v) => Try::Ready(v),
                None if c.open_senders == 0 => Try::Failed(Error::new(
                    ErrorKind::EndOfChannel,
                    "every send channel is closed and the buffer is empty",
                )),
                None => Try::WouldBlock,
            };
        };
        // The oldest blocked sender has waited longest: its value goes
        // behind the buffered ones (or straight to us if there are none),
        // and its send completes now.
        let (v, from_buffer) = match c.buffer.pop_front() {
            Some(front) => {
                c.buffer.push_back(w.value);
                (front, true)
            }
            None => (w.value, false),
        };
        drop(c);
        if reschedule(w.key, Ok(())) {
            return Try::Ready(v);
        }
        // A stale send (its run is gone): `reschedule` did nothing, so the
        // state is as we left it. Its value never went anywhere; nobody can
        // get it back: drop it (outside the borrow) and try again.
        let stale = if from_buffer {
            let mut c = chan.borrow_mut();
            let stale = c.buffer.pop_back();
            c.buffer.push_front(v);
            stale
        } else {
            Some(v)
        };
        drop(stale);
    }
}

/// Puts a value that a receiver will not take back at the front of the
/// channel (or hands it to the next waiting receiver).
fn give_back<T>(chan: &Shared<T>, value: T) {
    let c = chan.borrow_mut();
    if c.open_receivers == 0 {
        drop(c);
        drop(value);
        return;
    }
    if let Handed::NoReceiver(mut c, v) = hand_to_receiver(chan, c, value) {
        c.buffer.push_front(v);
    }
}

/// A value taken by a receive that has not returned yet.
struct Holding<'a, T> {
    chan: &'a Shared<T>,
    value: Option<T>,
}

impl<T> Drop for Holding<'_, T> {
    fn drop(&mut self) {
        if let Some(v) = self.value.take() {
            give_back(self.chan, v);
        }
    }
}

async fn receive<T>(chan: &Shared<T>, handle: &RecvHandle, site: WaitSite) -> Result<T> {
    checkpoint_if_cancelled().await?;
    match try_receive(chan, handle) {
        Try::Ready(v) => {
            let mut holding = Holding {
                chan,
                value: Some(v),
            };
            cancel_shielded_checkpoint().await?;
            return Ok(holding.value.take().expect("held until now"));
        }
        Try::WouldBlock => {}
        Try::Failed(e) => return Err(e),
    }
    let seq = chan.borrow_mut().seq();
    let park = Park::new_at(site.label, site.location, |_key, reason| {
        match reason {
            AbortReason::Cancelled | AbortReason::Dropped { rescheduled: false } => {
                let mut c = chan.borrow_mut();
                if let Some(i) = find(&c.recv_waiters, seq, |w| w.seq) {
                    c.recv_waiters.remove(i);
                }
            }
            AbortReason::Dropped { rescheduled: true } => {
                let value = chan.borrow_mut().take_in_transit(seq);
                if let Some(v) = value {
                    give_back(chan, v);
                }
            }
        }
        Abort::Succeeded
    })?;
    chan.borrow_mut().recv_waiters.push_back(RecvWaiter {
        seq,
        key: park.key(),
        handle: handle.id,
    });
    park.await?;
    let value = chan.borrow_mut().take_in_transit(seq);
    value.ok_or_else(|| Error::usage("a receive was woken without a value"))
}

impl<T> MemoryReceiveChannel<T> {
    /// Takes a value without waiting. [`ErrorKind::WouldBlock`] if there
    /// is none yet, [`ErrorKind::EndOfChannel`] if there never will be
    /// (every sender closed, buffer empty), [`ErrorKind::Closed`] if this
    /// handle is closed. Not a checkpoint.
    pub fn try_receive(&self) -> Result<T> {
        try_receive(&self.chan, &self.handle)
            .into_result(|| Error::new(ErrorKind::WouldBlock, "the channel is empty"))
    }

    /// Takes the next value, waiting for one. A checkpoint. Fails with
    /// [`ErrorKind::EndOfChannel`] when every sender is closed and the
    /// buffer is empty, [`ErrorKind::Closed`] if this handle is closed, and
    /// `Cancelled` if cancelled, in which case nothing was taken.
    ///
    /// The task tree shows a blocked receiver as waiting in
    /// `MemoryReceiveChannel.receive` at the caller's location.
    #[track_caller]
    pub fn receive(&self) -> impl Future<Output = Result<T>> + '_ {
        receive(
            &self.chan,
            &self.handle,
            WaitSite::new("MemoryReceiveChannel.receive"),
        )
    }

    /// Like [`receive`](Self::receive), shaped for a `while let` loop:
    /// `None` at the end of the channel, `Some(Err(_))` on another error.
    /// (The same signature as `StreamExt::next`, without an allocation.)
    /// Shown in the task tree as `MemoryReceiveChannel.next`.
    #[track_caller]
    pub fn next(&self) -> impl Future<Output = Option<Result<T>>> + '_ {
        let site = WaitSite::new("MemoryReceiveChannel.next");
        async move {
            match receive(&self.chan, &self.handle, site).await {
                Err(e) if e.kind() == ErrorKind::EndOfChannel => None,
                r => Some(r),
            }
        }
    }

    /// Closes this handle. Tasks blocked receiving through it fail with
    /// [`ErrorKind::Closed`]. If it was the last open receive handle, every
    /// blocked sender fails with [`ErrorKind::Broken`] (getting its value
    /// back), later sends fail the same way, and the buffered values are
    /// dropped. Idempotent; not a checkpoint.
    pub fn close(&self) {
        if self.handle.closed.replace(true) {
            return;
        }
        let mut closed_waits = Vec::new();
        let mut broken = Vec::new();
        let buffer;
        {
            let mut c = self.chan.borrow_mut();
            let mut i = 0;
            while i < c.recv_waiters.len() {
                if c.recv_waiters[i].handle == self.handle.id {
                    let w = c.recv_waiters.remove(i).expect("index in range");
                    closed_waits.push(w.key);
                } else {
                    i += 1;
                }
            }
            c.open_receivers -= 1;
            if c.open_receivers == 0 {
                let waiters: Vec<_> = c.send_waiters.drain(..).collect();
                for w in waiters {
                    c.put_in_transit(w.seq, w.value);
                    broken.push((w.seq, w.key));
                }
                buffer = std::mem::take(&mut c.buffer);
            } else {
                buffer = VecDeque::new();
            }
        }
        drop(buffer);
        for key in closed_waits {
            reschedule(key, Err(closed_error("receive")));
        }
        let mut stale = Vec::new();
        for (seq, key) in broken {
            if !reschedule(key, Err(no_receivers_error())) {
                stale.push(seq);
            }
        }
        drop_in_transit(&self.chan, &stale);
    }

    /// Closes this handle (see [`close`](Self::close)), then checkpoints.
    /// The handle is closed even if this returns `Cancelled`.
    pub async fn aclose(&self) -> Result<()> {
        self.close();
        checkpoint().await
    }

    /// Whether this handle is closed.
    pub fn is_closed(&self) -> bool {
        self.handle.closed.get()
    }

    /// Debugging information about the channel.
    pub fn statistics(&self) -> MemoryChannelStatistics {
        statistics(&self.chan)
    }
}

impl<T: 'static> futures_core::Stream for MemoryReceiveChannel<T> {
    type Item = Result<T>;

    /// Each item is one [`receive`](MemoryReceiveChannel::receive) (a
    /// checkpoint); the stream ends at the end of the channel.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        let pending = this.pending.get_or_insert_with(|| {
            let (chan, handle) = (this.chan.clone(), this.handle.clone());
            // Polled through a stream combinator, the user's call site is
            // out of reach: the tree points here.
            let site = WaitSite {
                label: "MemoryReceiveChannel.poll_next",
                location: Location::caller(),
            };
            Box::pin(async move { receive(&chan, &handle, site).await })
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

impl<T> Clone for MemoryReceiveChannel<T> {
    fn clone(&self) -> Self {
        let mut c = self.chan.borrow_mut();
        let id = c.handle_id();
        let closed = self.handle.closed.get();
        if !closed {
            c.open_receivers += 1;
        }
        MemoryReceiveChannel {
            chan: self.chan.clone(),
            handle: Rc::new(RecvHandle {
                id,
                closed: Cell::new(closed),
            }),
            pending: None,
        }
    }
}

impl<T> Drop for MemoryReceiveChannel<T> {
    fn drop(&mut self) {
        // A receive in progress as a stream gives up first (a value already
        // handed to it goes back to the channel), then the handle closes.
        self.pending = None;
        self.close();
    }
}

impl<T> fmt::Debug for MemoryReceiveChannel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReceiveChannel")
            .field("closed", &self.handle.closed.get())
            .field("statistics", &self.statistics())
            .finish()
    }
}
