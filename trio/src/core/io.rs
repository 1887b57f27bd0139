//! The I/O reactor: readiness waits on raw file descriptors, on mio.
//!
//! The reactor is part of the run loop: when no task is runnable the loop
//! blocks in `mio::Poll` until an fd is ready, a deadline arrives or another
//! thread posts to the inbox (its mio `Waker` has a reserved token).
//!
//! Each fd has at most one reader and one writer waiting (a second is a
//! [`Busy`](crate::ErrorKind::Busy) error, as in Trio). mio registrations are
//! edge-triggered, so every new wait re-arms the fd (`reregister`, one
//! `epoll_ctl`), which makes the kernel report readiness that already exists;
//! when the last waiter of an fd leaves, the fd is deregistered. That keeps
//! the low-level layer stateless about readiness: a task that gets
//! `WouldBlock` simply waits again. Socket types built later may cache
//! readiness to save the re-arm.

use crate::core::park::{Abort, Park, WaitKey, reschedule};
use crate::core::runtime;
use crate::error::{Error, ErrorKind, Result};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::panic::Location;
use std::time::Duration;

/// The token of the inbox's waker.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

#[derive(Default)]
struct FdWaiters {
    read: Option<WaitKey>,
    write: Option<WaitKey>,
    registered: bool,
}

impl FdWaiters {
    fn interest(&self) -> Option<Interest> {
        match (self.read.is_some(), self.write.is_some()) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }
}

pub(crate) struct Reactor {
    poll: Poll,
    events: Events,
    fds: HashMap<RawFd, FdWaiters>,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

/// What one reactor wait found.
pub(crate) struct Readiness {
    pub(crate) ready: Vec<WaitKey>,
    pub(crate) any_event: bool,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<(Reactor, mio::Waker)> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok((
            Reactor {
                poll,
                events: Events::with_capacity(256),
                fds: HashMap::new(),
            },
            waker,
        ))
    }

    /// Whether any fd is being waited on.
    pub(crate) fn has_waiters(&self) -> bool {
        !self.fds.is_empty()
    }

    /// Re-arms (or drops) the registration of `fd` for its current waiters.
    fn sync_registration(&mut self, fd: RawFd) -> io::Result<()> {
        let Some(w) = self.fds.get_mut(&fd) else {
            return Ok(());
        };
        let registry = self.poll.registry();
        match w.interest() {
            Some(interest) => {
                let token = Token(fd as usize);
                if w.registered {
                    registry.reregister(&mut SourceFd(&fd), token, interest)
                } else {
                    registry.register(&mut SourceFd(&fd), token, interest)?;
                    w.registered = true;
                    Ok(())
                }
            }
            None => {
                let was = w.registered;
                self.fds.remove(&fd);
                if was {
                    // The fd may already be closed; nothing to undo then.
                    let _ = registry.deregister(&mut SourceFd(&fd));
                }
                Ok(())
            }
        }
    }

    fn add_waiter(&mut self, fd: RawFd, dir: Direction, key: WaitKey) -> Result<()> {
        let w = self.fds.entry(fd).or_default();
        let slot = match dir {
            Direction::Read => &mut w.read,
            Direction::Write => &mut w.write,
        };
        if slot.is_some() {
            if w.interest().is_none() {
                self.fds.remove(&fd);
            }
            let what = if dir == Direction::Read {
                "read"
            } else {
                "write"
            };
            return Err(Error::new(
                ErrorKind::Busy,
                format!("another task is already waiting to {what} fd {fd}"),
            ));
        }
        *slot = Some(key);
        if let Err(e) = self.sync_registration(fd) {
            self.remove_waiter(fd, dir, key);
            return Err(e.into());
        }
        Ok(())
    }

    fn remove_waiter(&mut self, fd: RawFd, dir: Direction, key: WaitKey) {
        if let Some(w) = self.fds.get_mut(&fd) {
            let slot = match dir {
                Direction::Read => &mut w.read,
                Direction::Write => &mut w.write,
            };
            if *slot == Some(key) {
                *slot = None;
                let _ = self.sync_registration(fd);
            }
        }
    }

    /// Blocks for at most `timeout` (`None`: until something happens) and
    /// returns the waits whose fds became ready.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> Readiness {
        let mut out = Readiness {
            ready: Vec::new(),
            any_event: false,
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return out,
            Err(_) => return out,
        }
        let mut touched = Vec::new();
        for ev in self.events.iter() {
            out.any_event = true;
            if ev.token() == WAKER_TOKEN {
                continue;
            }
            let fd = ev.token().0 as RawFd;
            let Some(w) = self.fds.get_mut(&fd) else {
                continue;
            };
            let broken = ev.is_error();
            if (ev.is_readable() || ev.is_read_closed() || broken)
                && let Some(k) = w.read.take()
            {
                out.ready.push(k);
            }
            if (ev.is_writable() || ev.is_write_closed() || broken)
                && let Some(k) = w.write.take()
            {
                out.ready.push(k);
            }
            touched.push(fd);
        }
        for fd in touched {
            let _ = self.sync_registration(fd);
        }
        out
    }

    /// Wakes every waiter of `fd` with a Closed error and forgets the fd.
    fn closing(&mut self, fd: RawFd) -> Vec<WaitKey> {
        let Some(w) = self.fds.remove(&fd) else {
            return Vec::new();
        };
        if w.registered {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        w.read.into_iter().chain(w.write).collect()
    }
}

async fn wait_fd(fd: RawFd, dir: Direction, location: &'static Location<'static>) -> Result<()> {
    if fd < 0 {
        return Err(Error::invalid(format!("invalid file descriptor {fd}")));
    }
    let rt = runtime::current()?;
    let rt2 = rt.clone();
    let label = match dir {
        Direction::Read => "wait_readable",
        Direction::Write => "wait_writable",
    };
    let park = Park::new_at(label, location, move |key, _why| {
        rt2.reactor.borrow_mut().remove_waiter(fd, dir, key);
        Abort::Succeeded
    })?;
    rt.reactor.borrow_mut().add_waiter(fd, dir, park.key())?;
    park.await
}

/// Waits until `fd` is readable (or at EOF, or in error). A checkpoint.
/// Only one task may wait to read a given fd at a time: a second gets a
/// [`Busy`](ErrorKind::Busy) error.
///
/// ```no_run
/// # use std::os::fd::AsRawFd;
/// # trio::run(async {
/// let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
/// a.set_nonblocking(true)?;
/// std::io::Write::write_all(&mut b, b"x")?;
/// trio::lowlevel::wait_readable(a.as_raw_fd()).await?;
/// # Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn wait_readable(fd: RawFd) -> impl Future<Output = Result<()>> {
    wait_fd(fd, Direction::Read, Location::caller())
}

/// Waits until `fd` is writable (or in error). A checkpoint; one writer per fd.
#[track_caller]
pub fn wait_writable(fd: RawFd) -> impl Future<Output = Result<()>> {
    wait_fd(fd, Direction::Write, Location::caller())
}

/// Tells the reactor that `fd` is about to be closed: tasks waiting on it
/// wake with a [`Closed`](ErrorKind::Closed) error, and the fd is forgotten.
/// Call it before closing an fd that other tasks may be waiting on.
pub fn notify_closing(fd: RawFd) -> Result<()> {
    let rt = runtime::current()?;
    let keys = rt.reactor.borrow_mut().closing(fd);
    for k in keys {
        reschedule(
            k,
            Err(Error::new(
                ErrorKind::Closed,
                "another task closed this file descriptor",
            )),
        );
    }
    Ok(())
}
