//! The pipe ends of a child's stdio as streams: [`ProcessStdin`] (a
//! [`SendStream`]) and [`ProcessStdout`] / [`ProcessStderr`]
//! ([`ReceiveStream`]s).
//!
//! Each end is a non-blocking pipe fd registered with the reactor through
//! the crate's `IoRegistration`, once, edge-triggered, exactly as a socket
//! is, and each operation runs in DESIGN §6's order (the same steps as
//! `trio::socket`'s module docs): cancel check; the `read`/`write` unless
//! the reactor knows it would block; a shielded schedule point on success;
//! on `WouldBlock` only, clear the cached readiness and park.
//! Measured with `strace` (10 000 16-byte messages echoed through `cat`):
//! one `write` and one `read` per message on our side; each pipe cost one
//! `epoll_ctl` to register and one to deregister, none per operation.
//!
//! Writing to a pipe whose reader has gone raises SIGPIPE; Rust programs
//! ignore it (the std runtime sets `SIG_IGN` before `main`), so the write
//! fails with `EPIPE` instead, which becomes Broken. A host that restores
//! the default disposition would be killed instead (there is no
//! `MSG_NOSIGNAL` for pipes).
//!
//! The poll methods ([`ProcessStdout::poll_receive`],
//! [`ProcessStdin::poll_send`]) are the same operations for poll-based code
//! (`trio_compat::Io`): the `read`/`write`, else `cx`'s waker registered in
//! the reactor; not checkpoints, one waker per direction (the last wins),
//! exactly as `SocketStream::poll_receive` documents.
//!
//! # Invariants
//!
//! - `pipe` is `None` once this end has closed: every later operation fails
//!   with Closed. Operations in flight hold their own `Arc` of the pipe, so
//!   the fd stays open until they return; closing deregisters first, which
//!   wakes their waits with Closed, and they check `pipe` after each wait.
//! - `broken` holds the first OS error (e.g. `EPIPE` when the child closed
//!   its stdin): every later operation reports it as Broken (sticky).

use crate::core::io::{Direction, IoRegistration};
use crate::error::{Error, ErrorKind, Result};
use crate::stream::{AsyncResource, BusySlot, ReceiveStream, SendStream, empty_buffer};
use crate::{checkpoint, checkpoint_if_cancelled, sys};
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::panic::Location;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One non-blocking pipe fd and its reactor registration.
struct Pipe {
    // Declared first: it deregisters (in `Drop`) before `file` closes.
    reg: IoRegistration,
    fd: RawFd,
    file: File,
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.reg.deregister(self.fd);
    }
}

impl Pipe {
    fn new(fd: OwnedFd) -> Result<Pipe> {
        sys::process::set_nonblocking(fd.as_fd())?;
        Ok(Pipe {
            reg: IoRegistration::default(),
            fd: fd.as_raw_fd(),
            file: File::from(fd),
        })
    }

    /// One operation in the order of the module docs; `closed` is asked
    /// after each wait (a pipe closed meanwhile must not be touched). `op`
    /// also says whether it drained the direction (a short read or
    /// write): the cached readiness is then cleared in the same poll as the
    /// syscall, before the schedule point. (Cleared after it, an edge the
    /// reactor recorded during the schedule point would be erased and the
    /// next operation would wait for data already in the pipe.)
    async fn io<T>(
        &self,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        closed: &dyn Fn() -> bool,
        mut op: impl FnMut(&File) -> io::Result<(T, bool)>,
    ) -> Result<T> {
        self.reg
            .io_op(self.fd, dir, label, location, closed, closed_error, || {
                op(&self.file)
            })
            .await
    }

    /// [`io`](Self::io) for a poll method (see the module docs); `op`
    /// says whether it drained the direction, as for `io`.
    fn poll_io<T>(
        &self,
        cx: &Context<'_>,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        mut op: impl FnMut(&File) -> io::Result<(T, bool)>,
    ) -> Poll<Result<T>> {
        self.reg
            .poll_io_op(cx, self.fd, dir, label, location, || op(&self.file))
    }
}

fn closed_error() -> Error {
    Error::new(ErrorKind::Closed, "this pipe was closed")
}

/// The shared state of one pipe end (see the module invariants).
struct End {
    pipe: RefCell<Option<Arc<Pipe>>>,
    slot: BusySlot,
    broken: RefCell<Option<(io::ErrorKind, String)>>,
}

impl End {
    fn new(fd: OwnedFd, busy: &'static str) -> Result<End> {
        Ok(End {
            pipe: RefCell::new(Some(Arc::new(Pipe::new(fd)?))),
            slot: BusySlot::new(busy),
            broken: RefCell::new(None),
        })
    }

    fn is_closed(&self) -> bool {
        self.pipe.borrow().is_none()
    }

    /// The pipe for an operation: Closed, or sticky Broken, first.
    fn usable(&self) -> Result<Arc<Pipe>> {
        let p = self.pipe.borrow().clone().ok_or_else(closed_error)?;
        if let Some((kind, msg)) = &*self.broken.borrow() {
            return Err(broken(io::Error::new(*kind, msg.clone())));
        }
        Ok(p)
    }

    /// Records an OS error (sticky) and returns it as Broken; trio's own
    /// errors (Cancelled, Closed, Busy) pass through.
    fn fail(&self, e: Error) -> Error {
        if matches!(
            e.kind(),
            ErrorKind::Cancelled | ErrorKind::Closed | ErrorKind::Busy
        ) {
            return e;
        }
        let Some(io) = e.downcast_ref::<io::Error>() else {
            return e;
        };
        let io = io::Error::new(io.kind(), io.to_string());
        self.broken
            .borrow_mut()
            .get_or_insert((io.kind(), io.to_string()));
        broken(io)
    }

    /// Deregisters (waking blocked operations with Closed) and drops this
    /// handle's `Arc`: the fd closes once no operation holds it.
    fn close_now(&self) {
        let taken = self.pipe.borrow_mut().take();
        if let Some(p) = taken {
            p.reg.deregister(p.fd);
        }
    }

    fn fd(&self) -> Option<RawFd> {
        self.pipe.borrow().as_ref().map(|p| p.fd)
    }
}

fn broken(e: io::Error) -> Error {
    Error::with_kind(ErrorKind::Broken, e)
}

impl fmt::Debug for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipe")
            .field("fd", &self.fd())
            .field("broken", &self.broken.borrow())
            .field("busy", &self.slot.is_busy())
            .finish()
    }
}

/// The write end of a child's stdin, a [`SendStream`].
///
/// Closing it ([`aclose`](AsyncResource::aclose)) is how the child sees
/// the end of its input; a child that closed its stdin (or exited) makes
/// sends fail with [`Broken`](ErrorKind::Broken) (`EPIPE`, kept as the
/// source). Cancellation: as for every `send_all`, a cancelled one may have
/// written any prefix; a cancelled
/// [`wait_send_all_might_not_block`](SendStream::wait_send_all_might_not_block)
/// did nothing.
pub struct ProcessStdin {
    end: End,
}

/// The read end of a child's stdout, a [`ReceiveStream`]: `receive_some`
/// returns 0 once every writer (the child and anything it passed the pipe
/// to) has closed it. A cancelled `receive_some` consumed nothing.
pub struct ProcessStdout {
    end: End,
}

/// The read end of a child's stderr; like [`ProcessStdout`].
pub struct ProcessStderr {
    end: End,
}

impl ProcessStdin {
    /// Wraps the pipe end std gave us (made non-blocking).
    pub fn from_std(stdin: std::process::ChildStdin) -> Result<ProcessStdin> {
        Ok(ProcessStdin {
            end: End::new(stdin.into(), "another task is already sending on this pipe")?,
        })
    }

    /// The fd, until closed.
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.end.fd()
    }

    /// Writes what it can of `data` without a future, for poll-based code:
    /// `Ready(Ok(n))` (`n ≥ 1`; 0 only for an empty `data`), or `Pending`
    /// while the pipe is full, with `cx`'s waker registered. Not a
    /// checkpoint; one waker, the last one wins; `Busy` against a
    /// `send_all` in flight (the rules of
    /// [`SocketStream::poll_receive`](crate::socket::SocketStream::poll_receive)).
    #[track_caller]
    pub fn poll_send(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<Result<usize>> {
        let location = Location::caller();
        let end = &self.end;
        let p = match end.slot.enter().and_then(|_g| end.usable()) {
            Ok(p) => p,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A short write: the pipe is full; wait for the edge.
        p.poll_io(
            cx,
            Direction::Write,
            "ProcessStdin::poll_send",
            location,
            |mut f| f.write(data).map(|n| (n, n < data.len())),
        )
        .map_err(|e| end.fail(e))
    }

    /// Closes the pipe at once, without a future (what
    /// [`aclose`](AsyncResource::aclose) does before its checkpoint): the
    /// child reads the end of its input. Not a checkpoint; idempotent.
    pub fn close_now(&self) {
        self.end.close_now();
    }
}

macro_rules! receive_end {
    ($t:ident, $std:ty, $label:literal, $poll_label:literal) => {
        impl $t {
            /// Wraps the pipe end std gave us (made non-blocking).
            pub fn from_std(pipe: $std) -> Result<$t> {
                Ok($t {
                    end: End::new(
                        pipe.into(),
                        "another task is already receiving on this pipe",
                    )?,
                })
            }

            /// The fd, until closed.
            pub fn raw_fd(&self) -> Option<RawFd> {
                self.end.fd()
            }

            /// Reads into `buf` without a future, for poll-based code:
            /// `Ready(Ok(n))` (0 at the end of the pipe), or `Pending` with
            /// `cx`'s waker registered in the reactor. Not a checkpoint;
            /// one waker, the last one wins; `Busy` against a
            /// `receive_some` in flight (the rules of
            /// [`SocketStream::poll_receive`](crate::socket::SocketStream::poll_receive)).
            #[track_caller]
            pub fn poll_receive(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<Result<usize>> {
                let location = Location::caller();
                let end = &self.end;
                let p = match end.slot.enter().and_then(|_g| end.usable()) {
                    Ok(p) => p,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                if buf.is_empty() {
                    return Poll::Ready(Err(empty_buffer()));
                }
                // A short read drained the pipe: wait for the edge next
                // time.
                let len = buf.len();
                p.poll_io(cx, Direction::Read, $poll_label, location, |mut f| {
                    f.read(buf).map(|n| (n, n < len))
                })
                .map_err(|e| end.fail(e))
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($t)).field(&self.end).finish()
            }
        }

        impl AsyncResource for $t {
            /// Closes at once (waking a blocked receive with Closed), then
            /// checkpoints: always closes, idempotent.
            async fn aclose(&self) -> Result<()> {
                self.end.close_now();
                checkpoint().await
            }
        }

        impl ReceiveStream for $t {
            #[track_caller]
            fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = Result<usize>> {
                let location = Location::caller();
                async move {
                    let end = &self.end;
                    let _g = end.slot.enter()?;
                    let p = end.usable()?;
                    if buf.is_empty() {
                        checkpoint_if_cancelled().await?;
                        return Err(empty_buffer());
                    }
                    // A short read drained the pipe (a read takes all
                    // there is, up to the buffer): wait for the edge next
                    // time.
                    let len = buf.len();
                    p.io(
                        Direction::Read,
                        $label,
                        location,
                        &|| end.is_closed(),
                        |mut f| f.read(buf).map(|n| (n, n < len)),
                    )
                    .await
                    .map_err(|e| end.fail(e))
                }
            }
        }
    };
}

receive_end!(
    ProcessStdout,
    std::process::ChildStdout,
    "ProcessStdout::receive_some",
    "ProcessStdout::poll_receive"
);
receive_end!(
    ProcessStderr,
    std::process::ChildStderr,
    "ProcessStderr::receive_some",
    "ProcessStderr::poll_receive"
);

impl fmt::Debug for ProcessStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProcessStdin").field(&self.end).finish()
    }
}

impl AsyncResource for ProcessStdin {
    /// Closes at once (the child reads the end of its input; a blocked
    /// send wakes with Closed), then checkpoints: always closes,
    /// idempotent.
    async fn aclose(&self) -> Result<()> {
        self.end.close_now();
        checkpoint().await
    }
}

impl SendStream for ProcessStdin {
    #[track_caller]
    fn send_all(&self, data: &[u8]) -> impl Future<Output = Result<()>> {
        let location = Location::caller();
        async move {
            let end = &self.end;
            let _g = end.slot.enter()?;
            let p = end.usable()?;
            if data.is_empty() {
                return checkpoint().await;
            }
            let mut sent = 0;
            while sent < data.len() {
                let rest = &data[sent..];
                // A short write: the pipe is full; wait for the edge.
                let n = p
                    .io(
                        Direction::Write,
                        "ProcessStdin::send_all",
                        location,
                        &|| end.is_closed(),
                        |mut f| f.write(rest).map(|n| (n, n < rest.len())),
                    )
                    .await
                    .map_err(|e| end.fail(e))?;
                sent += n;
            }
            Ok(())
        }
    }

    #[track_caller]
    fn wait_send_all_might_not_block(&self) -> impl Future<Output = Result<()>> {
        let location = Location::caller();
        async move {
            let end = &self.end;
            let _g = end.slot.enter()?;
            let p = end.usable()?;
            checkpoint_if_cancelled().await?;
            // Not preceded by a write, so the cached readiness may be
            // stale: re-arm (one epoll_ctl) to learn the current state.
            p.reg
                .wait(
                    p.fd,
                    Direction::Write,
                    true,
                    "ProcessStdin::wait_send_all_might_not_block",
                    location,
                )
                .await?;
            if end.is_closed() {
                return Err(closed_error());
            }
            Ok(())
        }
    }
}
