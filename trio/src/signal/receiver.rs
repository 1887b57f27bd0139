//! [`SignalReceiver`]: signals as an async stream (see the
//! [module docs](super) for the design).
//!
//! # Invariants
//!
//! - For each watched signal, the flag action is registered before the
//!   wake-up byte, so a task that read a byte sees the flag of the signal
//!   that wrote it. A receive looks at the flags, and only when none is set
//!   drains the socket and parks: a signal between the look and the park
//!   leaves a byte, which wakes the park. No signal is lost.
//! - `queue` holds each signal at most once: pending signals are a set.
//! - `receiving` is true while a receive runs (one at a time; `Busy`
//!   otherwise). It is reset by a guard, so a cancelled receive frees it.
//! - A signal leaves `queue` only when the receive that returns it can no
//!   longer be cancelled.

use super::registry;
use crate::core::io::{Direction, IoRegistration};
use crate::error::{Error, ErrorKind, Result};
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled};
use signal_hook::SigId;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// Starts receiving `signals`: returns a [`SignalReceiver`], an async
/// stream of the signal numbers that arrive from now until it is dropped.
///
/// While the receiver is open, the signals no longer do what they did
/// before (kill the process, for SIGINT); once it is dropped, they do again.
/// A run's own Ctrl-C handling of SIGINT (see the
/// [module docs](crate::signal)) is suspended while a receiver of SIGINT is
/// open. May be called on any thread, inside a run (the receiver waits
/// through the run's reactor).
///
/// Fails with [`ErrorKind::InvalidArgument`] for an empty list, for the
/// signals signal-hook refuses (SIGKILL, SIGSTOP, SIGILL, SIGFPE, SIGSEGV)
/// and for numbers whose default action trio cannot emulate (unknown and
/// real-time signals); with [`ErrorKind::Usage`] outside a run.
///
/// ```
/// use trio::signal::consts::SIGUSR2;
/// trio::run(async {
///     let signals = trio::open_signal_receiver(&[SIGUSR2])?;
///     trio::signal::raise(SIGUSR2)?; // or `kill -USR2 <pid>`
///     trio::signal::raise(SIGUSR2)?; // pending twice: merged
///     assert_eq!(signals.recv().await?, SIGUSR2);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn open_signal_receiver(signals: &[i32]) -> Result<SignalReceiver> {
    crate::core::runtime::current()?;
    if signals.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "open_signal_receiver needs at least one signal",
        ));
    }
    let mut wanted: Vec<i32> = signals.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    for &s in &wanted {
        super::check_signal(s)?;
    }
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    let mut inner = Inner {
        reg: IoRegistration::default(),
        read,
        watched: Vec::new(),
        queue: RefCell::new(VecDeque::new()),
        receiving: Cell::new(false),
    };
    for signal in wanted {
        // Dropping `inner` on an error below undoes what was done so far.
        registry::touch(signal)?;
        let flag = Arc::new(AtomicBool::new(false));
        let mut ids = vec![signal_hook::flag::register(signal, flag.clone())?];
        let registered = signal_hook::low_level::pipe::register(signal, write.try_clone()?);
        match registered {
            Ok(id) => ids.push(id),
            Err(e) => {
                signal_hook::low_level::unregister(ids[0]);
                return Err(e.into());
            }
        }
        if let Err(e) = registry::receiver_opened(signal) {
            for id in ids {
                signal_hook::low_level::unregister(id);
            }
            return Err(e.into());
        }
        inner.watched.push(Watched { signal, flag, ids });
    }
    Ok(SignalReceiver {
        inner: Rc::new(inner),
        pending: None,
    })
}

/// One watched signal: its pending flag and its signal-hook actions.
struct Watched {
    signal: i32,
    flag: Arc<AtomicBool>,
    ids: Vec<SigId>,
}

struct Inner {
    // Declared first: deregisters (in `Drop`) before `read` closes.
    reg: IoRegistration,
    /// The read end of the wake-up socket pair (non-blocking); signal-hook
    /// owns the clones of the write end.
    read: UnixStream,
    /// Sorted by signal number.
    watched: Vec<Watched>,
    /// Signals taken from the flags, not yet returned; each at most once.
    queue: RefCell<VecDeque<i32>>,
    receiving: Cell<bool>,
}

impl Inner {
    /// Moves the set flags into the queue (skipping signals already in it)
    /// and returns the first queued signal, leaving it queued.
    fn peek(&self) -> Option<i32> {
        let mut q = self.queue.borrow_mut();
        for w in &self.watched {
            if w.flag.swap(false, Ordering::SeqCst) && !q.contains(&w.signal) {
                q.push_back(w.signal);
            }
        }
        q.front().copied()
    }

    /// Reads every wake-up byte there is. True if there was any.
    fn drain(&self) -> io::Result<bool> {
        let mut any = false;
        let mut buf = [0u8; 64];
        loop {
            match (&self.read).read(&mut buf) {
                Ok(0) => return Ok(any),
                Ok(_) => any = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reg.deregister(self.read.as_raw_fd());
        for w in self.watched.drain(..) {
            // The previous behaviour first, then our actions go: a signal in
            // between is handled by one or the other.
            registry::receiver_closing(w.signal);
            for id in w.ids {
                signal_hook::low_level::unregister(id);
            }
        }
    }
}

/// Frees the receiver for the next receive, however this one ends.
struct Receiving<'a>(&'a Cell<bool>);

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

async fn recv(
    inner: &Inner,
    label: &'static str,
    location: &'static Location<'static>,
) -> Result<i32> {
    if inner.receiving.replace(true) {
        return Err(Error::new(
            ErrorKind::Busy,
            "another task is already receiving from this SignalReceiver",
        ));
    }
    let _receiving = Receiving(&inner.receiving);
    checkpoint_if_cancelled().await?;
    let mut parked = false;
    loop {
        if let Some(signal) = inner.peek() {
            // A park was already a schedule point.
            if !parked {
                cancel_shielded_checkpoint().await?;
            }
            inner.queue.borrow_mut().pop_front();
            return Ok(signal);
        }
        // Bytes read now announce flags that are set already: look again.
        if inner.drain()? {
            continue;
        }
        inner.reg.clear_ready(Direction::Read);
        inner
            .reg
            .wait(
                inner.read.as_raw_fd(),
                Direction::Read,
                false,
                label,
                location,
            )
            .await?;
        parked = true;
    }
}

/// An open signal receiver: an async stream of signal numbers, from
/// [`open_signal_receiver`]. Dropping it gives the signals back their
/// previous behaviour.
///
/// Receive with [`recv`](Self::recv) (or [`next`](Self::next) in a `while
/// let`, or as a [`futures_core::Stream`]). One task at a time may receive
/// ([`ErrorKind::Busy`] otherwise). Signals that arrive when no task is
/// receiving are kept, each once (see the [module docs](crate::signal)).
/// `!Send`: it belongs to the run that opened it.
///
/// ```no_run
/// use trio::signal::consts::{SIGHUP, SIGTERM};
/// # async fn reload_config() {}
/// trio::run(async {
///     let signals = trio::open_signal_receiver(&[SIGHUP, SIGTERM])?;
///     while let Some(signal) = signals.next().await {
///         match signal? {
///             SIGHUP => reload_config().await,
///             _ => break, // SIGTERM: shut down
///         }
///     }
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct SignalReceiver {
    inner: Rc<Inner>,
    /// The receive in progress for the `Stream` impl.
    pending: Option<Pin<Box<dyn Future<Output = Result<i32>>>>>,
}

impl SignalReceiver {
    /// The next signal, waiting for one. A checkpoint; a cancelled receive
    /// took nothing. [`ErrorKind::Busy`] if another task is receiving.
    /// Shown in the task tree as waiting in `SignalReceiver.recv`.
    #[track_caller]
    pub fn recv(&self) -> impl Future<Output = Result<i32>> + '_ {
        recv(&self.inner, "SignalReceiver.recv", Location::caller())
    }

    /// Like [`recv`](Self::recv), shaped for a `while let` loop (the
    /// stream never ends, so this is always `Some`). Shown in the task tree
    /// as `SignalReceiver.next`.
    #[track_caller]
    pub fn next(&self) -> impl Future<Output = Option<Result<i32>>> + '_ {
        let location = Location::caller();
        async move { Some(recv(&self.inner, "SignalReceiver.next", location).await) }
    }

    /// The signals this receiver watches, in ascending order.
    pub fn signals(&self) -> Vec<i32> {
        self.inner.watched.iter().map(|w| w.signal).collect()
    }
}

impl futures_core::Stream for SignalReceiver {
    type Item = Result<i32>;

    /// Each item is one [`recv`](SignalReceiver::recv); the stream never
    /// ends.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<i32>>> {
        let this = self.get_mut();
        let pending = this.pending.get_or_insert_with(|| {
            let inner = this.inner.clone();
            // Polled through a stream combinator, the user's call site is
            // out of reach: the tree points here.
            let location = Location::caller();
            Box::pin(async move { recv(&inner, "SignalReceiver.poll_next", location).await })
        });
        let result = match pending.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        this.pending = None;
        Poll::Ready(Some(result))
    }
}

impl fmt::Debug for SignalReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalReceiver")
            .field("signals", &self.signals())
            .field("queued", &self.inner.queue.borrow())
            .field("receiving", &self.inner.receiving.get())
            .finish()
    }
}
