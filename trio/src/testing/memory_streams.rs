//! In-memory byte streams for tests (Trio's `trio.testing` memory streams).
//!
//! # Design
//!
//! - [`MemorySendStream`] and [`MemoryReceiveStream`] each own an unbounded
//!   byte queue. Nothing moves between them by itself: a *pump*
//!   ([`memory_stream_pump`]) takes bytes out of a send stream's queue and
//!   puts them into a receive stream's. [`memory_stream_one_way_pair`]
//!   installs a pump as the send stream's `send_all` hook and close hook, so
//!   data flows at once; a test can replace the hooks to stall, trickle or
//!   reorder the flow, and the receive side has a hook of its own.
//! - The lockstep streams ([`lockstep_stream_one_way_pair`]) have no buffer
//!   at all: `send_all` returns only once a `receive_some` took every byte.
//!   They are the "clogged" streams of the conformance checks.
//! - [`memory_stream_pair`] and [`lockstep_stream_pair`] staple two one-way
//!   pairs into two-way [`StapledStream`]s, whose `send_eof` closes the send
//!   half.
//!
//! All of them follow the stream contract of [`crate::stream`] and pass the
//! conformance checks ([`check_half_closeable_stream`](super::check_half_closeable_stream)).
//!
//! # Invariants
//!
//! - Every operation is in DESIGN §6's order: the `Busy` check (at once),
//!   `checkpoint_if_cancelled`, the operation, then a
//!   `cancel_shielded_checkpoint` unless it parked (a park is a checkpoint).
//!   So a cancelled `receive_some` took nothing: the bytes stay queued.
//! - A lockstep `receive_some` returns `0` only once the sender closed. A
//!   cancelled `send_all` withdraws the bytes nobody took; if that happens
//!   while a receive that saw them sits at its schedule point, the receive
//!   waits again instead of reporting the end.
//! - A receive stream's *own* close (`closed`) and the end of its data (its
//!   queue closed by [`put_eof`](MemoryReceiveStream::put_eof)) are separate:
//!   the first gives `Closed`, the second `0`.
//! - No borrow is held while waking waiters or calling a hook (both call
//!   out). Hooks are cloned out of their cell before they are called, so a
//!   hook may replace itself.
//! - The pump that `memory_stream_one_way_pair` installs holds its send
//!   stream weakly, so the pair is not a reference cycle. A hook of your own
//!   that holds a clone of its own stream is one (a small leak in a test).

use crate::error::{Error, ErrorKind, Result};
use crate::stream::{
    AsyncResource, BoxFuture, BusySlot, ReceiveStream, SendStream, StapledStream, empty_buffer,
};
use crate::sync::{WaitQueue, WaitSite};
use crate::{cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::Read;
use std::rc::{Rc, Weak};

/// An async hook: called, then awaited, by the operation it is attached to.
type AsyncHook = Rc<dyn Fn() -> BoxFuture<'static, Result<()>>>;
/// A synchronous hook (called on close).
type SyncHook = Rc<dyn Fn()>;

fn async_hook<F, Fut>(hook: F) -> AsyncHook
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = Result<()>> + 'static,
{
    Rc::new(move || Box::pin(hook()) as BoxFuture<'static, Result<()>>)
}

async fn call_hook(hook: &RefCell<Option<AsyncHook>>) -> Result<()> {
    let hook = hook.borrow().clone();
    match hook {
        Some(h) => h().await,
        None => Ok(()),
    }
}

fn call_sync_hook(hook: &RefCell<Option<SyncHook>>) {
    let hook = hook.borrow().clone();
    if let Some(h) = hook {
        h();
    }
}

fn check_max_bytes(max_bytes: Option<usize>) -> Result<()> {
    if max_bytes == Some(0) {
        return Err(Error::invalid("max_bytes must be at least 1"));
    }
    Ok(())
}

// ----- the unbounded byte queue ----------------------------------------------------

/// An unbounded queue of bytes with an end: after `close`, `put` fails with
/// `Closed` and readers drain what is left, then see the end.
struct ByteQueue {
    data: RefCell<VecDeque<u8>>,
    closed: Cell<bool>,
    /// Tasks waiting for data or the end.
    readers: WaitQueue<()>,
}

impl ByteQueue {
    fn new() -> Self {
        ByteQueue {
            data: RefCell::new(VecDeque::new()),
            closed: Cell::new(false),
            readers: WaitQueue::new(),
        }
    }

    fn close(&self) {
        self.closed.set(true);
        self.readers.unpark(usize::MAX);
    }

    fn close_and_wipe(&self) {
        let old = std::mem::take(&mut *self.data.borrow_mut());
        drop(old);
        self.close();
    }

    fn put(&self, bytes: &[u8]) -> Result<()> {
        if self.closed.get() {
            return Err(Error::new(ErrorKind::Closed, "virtual connection closed"));
        }
        self.data.borrow_mut().extend(bytes);
        self.readers.unpark(usize::MAX);
        Ok(())
    }

    /// Whether a read would not wait: data, or the end.
    fn ready(&self) -> bool {
        self.closed.get() || !self.data.borrow().is_empty()
    }

    /// Waits until [`ready`](Self::ready); whether it had to park.
    /// Cancelled, it took nothing.
    async fn wait_ready(&self, site: WaitSite) -> Result<bool> {
        let mut parked = false;
        while !self.ready() {
            self.readers.park((), site).await?;
            parked = true;
        }
        Ok(parked)
    }

    fn take_into(&self, buf: &mut [u8]) -> usize {
        // `Read for VecDeque<u8>` copies from the front and drops what it copied.
        self.data.borrow_mut().read(buf).unwrap_or(0)
    }

    fn take_vec(&self, max_bytes: Option<usize>) -> Vec<u8> {
        let mut d = self.data.borrow_mut();
        let n = max_bytes.unwrap_or(usize::MAX).min(d.len());
        d.drain(..n).collect()
    }
}

// ----- MemorySendStream ------------------------------------------------------------

struct SendInner {
    slot: BusySlot,
    /// Taken by `get_data` and `get_data_nowait`.
    fetch_slot: BusySlot,
    outgoing: ByteQueue,
    send_all_hook: RefCell<Option<AsyncHook>>,
    wait_send_all_might_not_block_hook: RefCell<Option<AsyncHook>>,
    close_hook: RefCell<Option<SyncHook>>,
}

/// An in-memory [`SendStream`] (Trio's `MemorySendStream`): `send_all`
/// appends to an internal buffer, then calls the `send_all` hook. Tests
/// take the data out with [`get_data`](Self::get_data) or a
/// [`memory_stream_pump`]. Clones are handles to the same stream.
///
/// ```
/// use trio::stream::SendStream;
/// use trio::testing::MemorySendStream;
///
/// trio::run(async {
///     let s = MemorySendStream::new();
///     s.send_all(b"abc").await?;
///     assert_eq!(s.get_data(None).await?, b"abc");
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct MemorySendStream {
    inner: Rc<SendInner>,
}

impl Default for MemorySendStream {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySendStream {
    /// A stream with an empty buffer and no hooks.
    pub fn new() -> Self {
        MemorySendStream {
            inner: Rc::new(SendInner {
                slot: BusySlot::new("another task is already sending on this stream"),
                fetch_slot: BusySlot::new("another task is already fetching data"),
                outgoing: ByteQueue::new(),
                send_all_hook: RefCell::new(None),
                wait_send_all_might_not_block_hook: RefCell::new(None),
                close_hook: RefCell::new(None),
            }),
        }
    }

    /// Sets the hook that [`send_all`](SendStream::send_all) awaits after
    /// buffering its data (replacing any other). Its error is `send_all`'s.
    pub fn set_send_all_hook<F, Fut>(&self, hook: F)
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        *self.inner.send_all_hook.borrow_mut() = Some(async_hook(hook));
    }

    /// Removes the `send_all` hook (data then stays in the buffer).
    pub fn clear_send_all_hook(&self) {
        let old = self.inner.send_all_hook.borrow_mut().take();
        drop(old);
    }

    /// Sets the hook that
    /// [`wait_send_all_might_not_block`](SendStream::wait_send_all_might_not_block)
    /// awaits.
    pub fn set_wait_send_all_might_not_block_hook<F, Fut>(&self, hook: F)
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        *self.inner.wait_send_all_might_not_block_hook.borrow_mut() = Some(async_hook(hook));
    }

    /// Removes the `wait_send_all_might_not_block` hook.
    pub fn clear_wait_send_all_might_not_block_hook(&self) {
        let old = self
            .inner
            .wait_send_all_might_not_block_hook
            .borrow_mut()
            .take();
        drop(old);
    }

    /// Sets the hook that [`close`](Self::close) (and so `aclose`) calls
    /// after closing.
    pub fn set_close_hook(&self, hook: impl Fn() + 'static) {
        *self.inner.close_hook.borrow_mut() = Some(Rc::new(hook));
    }

    /// Removes the close hook.
    pub fn clear_close_hook(&self) {
        let old = self.inner.close_hook.borrow_mut().take();
        drop(old);
    }

    /// Closes the stream (synchronously, not a checkpoint), then calls the
    /// close hook. Later sends fail with `Closed`; [`get_data`](Self::get_data)
    /// drains the buffer, then returns an empty `Vec` (the end). The stream
    /// itself never blocks a send; a `send_all` blocked in a hook of yours
    /// is not interrupted (as in Trio): make the hook watch for the close.
    pub fn close(&self) {
        self.inner.outgoing.close();
        call_sync_hook(&self.inner.close_hook);
    }

    /// Takes up to `max_bytes` (all if `None`) from the buffer, waiting
    /// until there is at least one byte or the stream is closed (then an
    /// empty `Vec` once drained). `Some(0)` is
    /// [`ErrorKind::InvalidArgument`]; `Busy` if another task is fetching.
    /// A checkpoint; cancelled, it took nothing.
    pub async fn get_data(&self, max_bytes: Option<usize>) -> Result<Vec<u8>> {
        let _g = self.inner.fetch_slot.enter()?;
        check_max_bytes(max_bytes)?;
        checkpoint_if_cancelled().await?;
        let site = WaitSite::new("MemorySendStream.get_data");
        if !self.inner.outgoing.wait_ready(site).await? {
            cancel_shielded_checkpoint().await?;
        }
        Ok(self.inner.outgoing.take_vec(max_bytes))
    }

    /// [`get_data`](Self::get_data) without waiting: an
    /// [`ErrorKind::WouldBlock`] error if it would have to wait.
    pub fn get_data_nowait(&self, max_bytes: Option<usize>) -> Result<Vec<u8>> {
        self.try_get_data(max_bytes)?
            .ok_or_else(|| Error::new(ErrorKind::WouldBlock, "no data to get"))
    }

    /// `None` for "would block" (no error made for the expected case).
    fn try_get_data(&self, max_bytes: Option<usize>) -> Result<Option<Vec<u8>>> {
        let _g = self.inner.fetch_slot.enter()?;
        check_max_bytes(max_bytes)?;
        if !self.inner.outgoing.ready() {
            return Ok(None);
        }
        Ok(Some(self.inner.outgoing.take_vec(max_bytes)))
    }
}

impl AsyncResource for MemorySendStream {
    async fn aclose(&self) -> Result<()> {
        self.close();
        checkpoint().await
    }
}

impl SendStream for MemorySendStream {
    async fn send_all(&self, data: &[u8]) -> Result<()> {
        let _g = self.inner.slot.enter()?;
        checkpoint_if_cancelled().await?;
        self.inner.outgoing.put(data)?;
        call_hook(&self.inner.send_all_hook).await?;
        cancel_shielded_checkpoint().await
    }

    async fn wait_send_all_might_not_block(&self) -> Result<()> {
        let _g = self.inner.slot.enter()?;
        checkpoint_if_cancelled().await?;
        // Putting nothing checks for being closed.
        self.inner.outgoing.put(b"")?;
        call_hook(&self.inner.wait_send_all_might_not_block_hook).await?;
        cancel_shielded_checkpoint().await
    }
}

impl fmt::Debug for MemorySendStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySendStream")
            .field("buffered", &self.inner.outgoing.data.borrow().len())
            .field("closed", &self.inner.outgoing.closed.get())
            .field("sending", &self.inner.slot.is_busy())
            .finish_non_exhaustive()
    }
}

// ----- MemoryReceiveStream ---------------------------------------------------------

struct ReceiveInner {
    slot: BusySlot,
    /// Closed by `put_eof` (the end of the data) or by our own close.
    incoming: ByteQueue,
    /// Our own close.
    closed: Cell<bool>,
    receive_some_hook: RefCell<Option<AsyncHook>>,
    close_hook: RefCell<Option<SyncHook>>,
}

/// An in-memory [`ReceiveStream`] (Trio's `MemoryReceiveStream`): tests
/// feed it with [`put_data`](Self::put_data) and
/// [`put_eof`](Self::put_eof), or a [`memory_stream_pump`];
/// `receive_some` calls its hook, then takes from the buffer. Clones are
/// handles to the same stream.
///
/// ```
/// use trio::stream::ReceiveStream;
/// use trio::testing::MemoryReceiveStream;
///
/// trio::run(async {
///     let r = MemoryReceiveStream::new();
///     r.put_data(b"xyz")?;
///     r.put_eof();
///     let mut buf = [0; 2];
///     assert_eq!(r.receive_some(&mut buf).await?, 2);
///     assert_eq!(r.receive_some(&mut buf).await?, 1);
///     assert_eq!(r.receive_some(&mut buf).await?, 0); // the end
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryReceiveStream {
    inner: Rc<ReceiveInner>,
}

impl Default for MemoryReceiveStream {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryReceiveStream {
    /// A stream with an empty buffer and no hooks.
    pub fn new() -> Self {
        MemoryReceiveStream {
            inner: Rc::new(ReceiveInner {
                slot: BusySlot::new("another task is already receiving on this stream"),
                incoming: ByteQueue::new(),
                closed: Cell::new(false),
                receive_some_hook: RefCell::new(None),
                close_hook: RefCell::new(None),
            }),
        }
    }

    /// Sets the hook that [`receive_some`](ReceiveStream::receive_some)
    /// awaits before it takes from the buffer.
    pub fn set_receive_some_hook<F, Fut>(&self, hook: F)
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        *self.inner.receive_some_hook.borrow_mut() = Some(async_hook(hook));
    }

    /// Removes the `receive_some` hook.
    pub fn clear_receive_some_hook(&self) {
        let old = self.inner.receive_some_hook.borrow_mut().take();
        drop(old);
    }

    /// Sets the hook that [`close`](Self::close) calls after closing.
    pub fn set_close_hook(&self, hook: impl Fn() + 'static) {
        *self.inner.close_hook.borrow_mut() = Some(Rc::new(hook));
    }

    /// Removes the close hook.
    pub fn clear_close_hook(&self) {
        let old = self.inner.close_hook.borrow_mut().take();
        drop(old);
    }

    /// Closes the stream (synchronously): discards the buffer, wakes a
    /// blocked `receive_some` with `Closed`, then calls the close hook.
    pub fn close(&self) {
        self.inner.closed.set(true);
        self.inner.incoming.close_and_wipe();
        call_sync_hook(&self.inner.close_hook);
    }

    /// Appends `data` to the buffer. `Closed` after
    /// [`put_eof`](Self::put_eof) or [`close`](Self::close).
    pub fn put_data(&self, data: &[u8]) -> Result<()> {
        self.inner.incoming.put(data)
    }

    /// Marks the end of the data: once the buffer is drained,
    /// `receive_some` returns 0.
    pub fn put_eof(&self) {
        self.inner.incoming.close();
    }

    fn closed_error() -> Error {
        Error::new(ErrorKind::Closed, "this stream was closed")
    }
}

impl AsyncResource for MemoryReceiveStream {
    async fn aclose(&self) -> Result<()> {
        self.close();
        checkpoint().await
    }
}

impl ReceiveStream for MemoryReceiveStream {
    async fn receive_some(&self, buf: &mut [u8]) -> Result<usize> {
        let _g = self.inner.slot.enter()?;
        if buf.is_empty() {
            return Err(empty_buffer());
        }
        checkpoint_if_cancelled().await?;
        if self.inner.closed.get() {
            return Err(Self::closed_error());
        }
        call_hook(&self.inner.receive_some_hook).await?;
        let site = WaitSite::new("MemoryReceiveStream.receive_some");
        let parked = self.inner.incoming.wait_ready(site).await?;
        if !parked {
            cancel_shielded_checkpoint().await?;
        }
        // Our own close wipes the buffer and wakes us: check after waiting.
        if self.inner.closed.get() {
            return Err(Self::closed_error());
        }
        Ok(self.inner.incoming.take_into(buf))
    }
}

impl fmt::Debug for MemoryReceiveStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReceiveStream")
            .field("buffered", &self.inner.incoming.data.borrow().len())
            .field("eof", &self.inner.incoming.closed.get())
            .field("closed", &self.inner.closed.get())
            .field("receiving", &self.inner.slot.is_busy())
            .finish_non_exhaustive()
    }
}

// ----- the pump and the pairs -------------------------------------------------------

/// Moves up to `max_bytes` (all if `None`) from `send`'s buffer to
/// `receive`'s: `Ok(true)` if it moved something (a closed and drained send
/// stream moves the end: `receive` gets [`put_eof`](MemoryReceiveStream::put_eof)),
/// `Ok(false)` if there was nothing to move. [`ErrorKind::Broken`] if
/// `receive` was closed (the bytes are dropped, as a network would).
///
/// This is what [`memory_stream_one_way_pair`] installs as the hooks; call
/// it from your own hook to control the flow, e.g. a byte at a time:
///
/// ```
/// use trio::stream::{ReceiveStream, SendStream};
/// use trio::testing::{memory_stream_one_way_pair, memory_stream_pump};
///
/// trio::run(async {
///     let (s, r) = memory_stream_one_way_pair();
///     s.clear_send_all_hook(); // data now stays in `s` until pumped
///     s.send_all(b"ab").await?;
///     assert!(memory_stream_pump(&s, &r, Some(1))?);
///     let mut buf = [0; 4];
///     assert_eq!(r.receive_some(&mut buf).await?, 1);
///     assert_eq!(buf[0], b'a');
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn memory_stream_pump(
    send: &MemorySendStream,
    receive: &MemoryReceiveStream,
    max_bytes: Option<usize>,
) -> Result<bool> {
    let Some(data) = send.try_get_data(max_bytes)? else {
        return Ok(false);
    };
    if data.is_empty() {
        receive.put_eof();
    } else if receive.put_data(&data).is_err() {
        return Err(Error::new(
            ErrorKind::Broken,
            "the MemoryReceiveStream was closed",
        ));
    }
    Ok(true)
}

/// A connected one-way pair with unbounded buffering, wired by a
/// [`memory_stream_pump`] in the send stream's `send_all` and close hooks
/// (Trio's `memory_stream_one_way_pair`): data flows at once. Replace the
/// hooks to control the flow.
///
/// ```
/// use trio::stream::{AsyncResource, ReceiveStream, SendStream};
/// use trio::testing::memory_stream_one_way_pair;
///
/// trio::run(async {
///     let (s, r) = memory_stream_one_way_pair();
///     s.send_all(b"hi").await?;
///     s.aclose().await?;
///     let mut buf = [0; 8];
///     assert_eq!(r.receive_some(&mut buf).await?, 2);
///     assert_eq!(r.receive_some(&mut buf).await?, 0);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn memory_stream_one_way_pair() -> (MemorySendStream, MemoryReceiveStream) {
    let send = MemorySendStream::new();
    let receive = MemoryReceiveStream::new();
    let weak_send: Weak<SendInner> = Rc::downgrade(&send.inner);
    let to = receive.clone();
    let pump = Rc::new(move || match weak_send.upgrade() {
        Some(inner) => memory_stream_pump(&MemorySendStream { inner }, &to, None).map(|_| ()),
        None => Ok(()),
    });
    let on_send = pump.clone();
    send.set_send_all_hook(move || {
        let r = on_send();
        async move { r }
    });
    // A close cannot fail; a closed receiver is already what Broken reports.
    send.set_close_hook(move || drop(pump()));
    (send, receive)
}

/// A two-way stream of two memory one-way pairs.
pub type MemoryStream = StapledStream<MemorySendStream, MemoryReceiveStream>;

/// A connected two-way pair with unbounded buffering, the memory version of
/// a socket pair (Trio's `memory_stream_pair`): two
/// [`memory_stream_one_way_pair`]s stapled together. Each end's
/// `send_stream` and `receive_stream` are public, to rewire the flow.
///
/// ```
/// use trio::stream::{ReceiveStream, SendStream};
/// use trio::testing::memory_stream_pair;
///
/// trio::run(async {
///     let (left, right) = memory_stream_pair();
///     left.send_all(b"123").await?;
///     let mut buf = [0; 8];
///     let n = right.receive_some(&mut buf).await?;
///     assert_eq!(&buf[..n], b"123");
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn memory_stream_pair() -> (MemoryStream, MemoryStream) {
    let (s1, r1) = memory_stream_one_way_pair();
    let (s2, r2) = memory_stream_one_way_pair();
    (StapledStream::new(s1, r2), StapledStream::new(s2, r1))
}

// ----- lockstep streams ------------------------------------------------------------

/// The shared state of a lockstep pair.
struct Lockstep {
    /// Bytes given to `send_all` that no `receive_some` took yet.
    data: RefCell<VecDeque<u8>>,
    sender_closed: Cell<bool>,
    receiver_closed: Cell<bool>,
    /// A `receive_some` is waiting for data (what
    /// `wait_send_all_might_not_block` waits for).
    receiver_waiting: Cell<bool>,
    /// Every waiter, of either side; woken on any change.
    waiters: WaitQueue<()>,
    send_slot: BusySlot,
    receive_slot: BusySlot,
}

/// Lowers a flag when dropped (also when a future is dropped mid-wait).
struct FlagGuard<'a>(&'a Cell<bool>);

impl Drop for FlagGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl Lockstep {
    fn something_happened(&self) {
        self.waiters.unpark(usize::MAX);
    }

    /// Waits until `done` or either side is closed; whether it parked.
    async fn wait_for(&self, done: impl Fn(&Self) -> bool, site: WaitSite) -> Result<bool> {
        let mut parked = false;
        while !done(self) && !self.sender_closed.get() && !self.receiver_closed.get() {
            self.waiters.park((), site).await?;
            parked = true;
        }
        Ok(parked)
    }

    fn close_sender(&self) {
        self.sender_closed.set(true);
        self.something_happened();
    }

    fn close_receiver(&self) {
        self.receiver_closed.set(true);
        self.something_happened();
    }

    fn closed() -> Error {
        Error::new(ErrorKind::Closed, "this stream was closed")
    }

    fn broken() -> Error {
        Error::new(ErrorKind::Broken, "the receiving side was closed")
    }

    async fn send_all(&self, bytes: &[u8]) -> Result<()> {
        let _g = self.send_slot.enter()?;
        checkpoint_if_cancelled().await?;
        if self.sender_closed.get() {
            return Err(Self::closed());
        }
        if self.receiver_closed.get() {
            return Err(Self::broken());
        }
        self.data.borrow_mut().extend(bytes);
        self.something_happened();
        let site = WaitSite::new("LockstepSendStream.send_all");
        match self.wait_for(|q| q.data.borrow().is_empty(), site).await {
            Ok(false) => cancel_shielded_checkpoint().await?,
            Ok(true) => {}
            Err(e) => {
                // Cancelled part-way (the documented exception): what was not
                // taken yet is withdrawn, so the next send starts clean.
                let old = std::mem::take(&mut *self.data.borrow_mut());
                drop(old);
                return Err(e);
            }
        }
        if self.sender_closed.get() {
            return Err(Self::closed());
        }
        if !self.data.borrow().is_empty() && self.receiver_closed.get() {
            return Err(Self::broken());
        }
        Ok(())
    }

    async fn wait_send_all_might_not_block(&self) -> Result<()> {
        let _g = self.send_slot.enter()?;
        checkpoint_if_cancelled().await?;
        if self.sender_closed.get() {
            return Err(Self::closed());
        }
        let site = WaitSite::new("LockstepSendStream.wait_send_all_might_not_block");
        if !self.wait_for(|q| q.receiver_waiting.get(), site).await? {
            cancel_shielded_checkpoint().await?;
        }
        if self.sender_closed.get() {
            return Err(Self::closed());
        }
        Ok(())
    }

    async fn receive_some(&self, buf: &mut [u8]) -> Result<usize> {
        let _g = self.receive_slot.enter()?;
        if buf.is_empty() {
            return Err(empty_buffer());
        }
        checkpoint_if_cancelled().await?;
        if self.receiver_closed.get() {
            return Err(Self::closed());
        }
        let mut scheduled = false;
        loop {
            let parked = {
                self.receiver_waiting.set(true);
                let _waiting = FlagGuard(&self.receiver_waiting);
                self.something_happened();
                let site = WaitSite::new("LockstepReceiveStream.receive_some");
                self.wait_for(|q| !q.data.borrow().is_empty(), site).await?
            };
            scheduled |= parked;
            if !scheduled {
                cancel_shielded_checkpoint().await?;
                scheduled = true;
            }
            if self.receiver_closed.get() {
                return Err(Self::closed());
            }
            let n = self.data.borrow_mut().read(buf).unwrap_or(0);
            if n > 0 {
                self.something_happened();
                return Ok(n);
            }
            if self.sender_closed.get() {
                // Closed with nothing left: the end.
                return Ok(0);
            }
            // A cancelled send_all withdrew its data while we were at the
            // schedule point: nothing is there and the sender is open, so
            // this is not the end; wait again.
        }
    }
}

/// The send half of a lockstep pair: see [`lockstep_stream_one_way_pair`].
pub struct LockstepSendStream {
    shared: Rc<Lockstep>,
}

/// The receive half of a lockstep pair: see [`lockstep_stream_one_way_pair`].
pub struct LockstepReceiveStream {
    shared: Rc<Lockstep>,
}

impl LockstepSendStream {
    /// Closes the send side (synchronously): the receiver sees the end once
    /// it took what was sent; blocked send-side calls wake with `Closed`.
    pub fn close(&self) {
        self.shared.close_sender();
    }
}

impl LockstepReceiveStream {
    /// Closes the receive side (synchronously): a blocked `receive_some`
    /// wakes with `Closed`, the sender gets `Broken`.
    pub fn close(&self) {
        self.shared.close_receiver();
    }
}

impl AsyncResource for LockstepSendStream {
    async fn aclose(&self) -> Result<()> {
        self.close();
        checkpoint().await
    }
}

impl AsyncResource for LockstepReceiveStream {
    async fn aclose(&self) -> Result<()> {
        self.close();
        checkpoint().await
    }
}

impl SendStream for LockstepSendStream {
    fn send_all(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        self.shared.send_all(data)
    }
    fn wait_send_all_might_not_block(&self) -> impl Future<Output = Result<()>> {
        self.shared.wait_send_all_might_not_block()
    }
}

impl ReceiveStream for LockstepReceiveStream {
    fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
        self.shared.receive_some(buf)
    }
}

impl fmt::Debug for Lockstep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lockstep")
            .field("in_flight", &self.data.borrow().len())
            .field("sender_closed", &self.sender_closed.get())
            .field("receiver_closed", &self.receiver_closed.get())
            .field("receiver_waiting", &self.receiver_waiting.get())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LockstepSendStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LockstepSendStream")
            .field(&self.shared)
            .finish()
    }
}

impl fmt::Debug for LockstepReceiveStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LockstepReceiveStream")
            .field(&self.shared)
            .finish()
    }
}

/// A connected one-way pair with no buffering at all (Trio's
/// `lockstep_stream_one_way_pair`): each `send_all` returns only once
/// `receive_some` calls took all of its data, and
/// `wait_send_all_might_not_block` returns once a receiver is waiting.
/// Useful to test flow control in the extreme, and as the "clogged" streams
/// of the conformance checks.
///
/// ```
/// use trio::stream::{ReceiveStream, SendStream};
/// use trio::testing::lockstep_stream_one_way_pair;
///
/// trio::run(async {
///     let (s, r) = lockstep_stream_one_way_pair();
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async { s.send_all(b"ab").await }); // blocks until read
///         let mut buf = [0; 1];
///         assert_eq!(r.receive_some(&mut buf).await?, 1);
///         assert_eq!(r.receive_some(&mut buf).await?, 1);
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn lockstep_stream_one_way_pair() -> (LockstepSendStream, LockstepReceiveStream) {
    let shared = Rc::new(Lockstep {
        data: RefCell::new(VecDeque::new()),
        sender_closed: Cell::new(false),
        receiver_closed: Cell::new(false),
        receiver_waiting: Cell::new(false),
        waiters: WaitQueue::new(),
        send_slot: BusySlot::new("another task is already sending on this stream"),
        receive_slot: BusySlot::new("another task is already receiving on this stream"),
    });
    (
        LockstepSendStream {
            shared: shared.clone(),
        },
        LockstepReceiveStream { shared },
    )
}

/// A two-way stream of two lockstep one-way pairs.
pub type LockstepStream = StapledStream<LockstepSendStream, LockstepReceiveStream>;

/// A connected two-way pair with no buffering (Trio's
/// `lockstep_stream_pair`): two [`lockstep_stream_one_way_pair`]s stapled
/// together.
///
/// ```
/// use trio::stream::{ReceiveStream, SendStream};
/// use trio::testing::lockstep_stream_pair;
///
/// trio::run(async {
///     let (a, b) = lockstep_stream_pair();
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(async { a.send_all(b"x").await });
///         let mut buf = [0; 4];
///         assert_eq!(b.receive_some(&mut buf).await?, 1);
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn lockstep_stream_pair() -> (LockstepStream, LockstepStream) {
    let (s1, r1) = lockstep_stream_one_way_pair();
    let (s2, r2) = lockstep_stream_one_way_pair();
    (StapledStream::new(s1, r2), StapledStream::new(s2, r1))
}
