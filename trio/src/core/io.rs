//! The I/O reactor: readiness waits on file descriptors, on mio.
//!
//! The reactor is part of the run loop: when no task is runnable the loop
//! blocks in `mio::Poll` until an fd is ready, a deadline arrives or another
//! thread posts to the inbox (its mio `Waker` has a reserved token).
//!
//! # Sources
//!
//! Every fd the reactor knows is a *source*: an entry of a slab, whose
//! reactor token is its slab index together with a generation that changes
//! each time the slot is reused. The token is never the fd number, so an
//! event that was queued for a closed fd cannot wake, or mark ready, a later
//! source that happens to get the same fd number (or the same slot).
//!
//! There are two kinds:
//!
//! - **Registered** sources belong to a socket ([`IoRegistration`]). They
//!   are registered once, for both directions, edge-triggered, and stay
//!   registered until the socket leaves the run. Each event *caches* its
//!   readiness in the entry; the socket clears a direction when a syscall
//!   returns `WouldBlock` (nothing can happen in between: the reactor runs
//!   only in step 3 of the run loop, on this thread) and parks only then. So
//!   a socket pays one `epoll_ctl` in its life, not one per wait.
//! - **Raw** sources are fds waited on through [`wait_readable`] and
//!   [`wait_writable`], which know nothing about readiness. Each such wait
//!   re-arms the fd (`reregister`, one `epoll_ctl`) so that the kernel
//!   reports readiness that already exists; the entry disappears (and the
//!   fd is deregistered) when its last waiter leaves. A raw wait on an fd
//!   that a socket has registered reuses the socket's entry (epoll cannot
//!   hold one fd twice anyway) and re-arms it the same way.
//!
//! # Invariants
//!
//! - `by_fd` maps an fd to the one entry for it, if any; entries are found
//!   by token otherwise. Lookups by fd go through `live_by_fd`, which drops
//!   a stale entry (owner gone) instead of returning it, so a registered
//!   entry found by fd always belongs to a socket still in this run.
//! - `waiting` is the number of waiters (read or write) over all entries:
//!   the run loop asks [`Reactor::has_waiters`], and a registered source
//!   with no waiter must not keep a run from being reported deadlocked.
//! - Each entry has at most one reader and one writer waiting; a second is a
//!   [`Busy`](crate::ErrorKind::Busy) error, as in Trio (a poll waiter is
//!   the exception: it gives way, see below).
//! - Nothing is woken while the reactor is borrowed: waits that an
//!   operation ends (an entry removed, an fd closing, a poll waiter
//!   evicted) go to `released`, and the caller wakes them after the borrow
//!   (`settle`), since a waker may be foreign code.
//!
//! # Operations
//!
//! A socket or pipe operation ([`IoRegistration::io_op`]) is one hand-written
//! future, [`IoOp`], rather than nested `async` blocks, so that a poll
//! looks the runtime up once and takes each lock and borrow only where it
//! needs it. Its steps, in DESIGN §6's order:
//!
//! 1. the cancel check;
//! 2. the syscall, unless the cache says the socket is not ready (then 4
//!    comes first); a read that does not fill its buffer or a short write
//!    clears the cached readiness there and then;
//! 3. on a result, a cancel-shielded schedule point: the task wakes itself
//!    for the next batch and returns the result when polled there (never
//!    in the same batch, DESIGN §2), unless that next batch would be this
//!    task alone (`Runtime::pass_schedule_point_in_place`: no other task
//!    ready, no deadline due, nothing posted, the I/O poll not due), when
//!    the point passes in place as that tick;
//! 4. on `WouldBlock`, the cached readiness is cleared and the task waits
//!    for the next edge: a cancel point (a cancelled wait did nothing, and
//!    is undone), which is also the schedule point; then back to 2.
//!
//! The wait of step 4 uses a park record that the entry keeps for each
//! direction and re-arms for every wait (`op_parks`; the rules are in
//! `park`'s module docs, "I/O wait records"): an echoed message inserts
//! and removes nothing in the park table, and pushes nothing on a cancel
//! status's list. A second operation that finds the record busy (its wait
//! woken but not yet polled) gets a record of its own. The record goes
//! with its entry, like a poll waiter's (below): a wait whose record is
//! gone ends with Closed.
//!
//! Step 3 costs a second poll of the task per message (DESIGN §6), so
//! that poll is made cheap: the operation counts its cancel and schedule
//! points when it yields, and the poll that ends the schedule point only
//! hands the result over, inlined into the caller, with no runtime lookup
//! (`OpStep::Yielded`). A wait armed in the poll that has just checked
//! for cancellation does not check again (`arm_wait`'s `check_cancel`).
//! Stream sockets make their `recv` and `send` as direct system calls
//! (`sys::stream_io`: libc's wrappers are cancellation points, whose
//! bookkeeping costs a multi-threaded process two atomics per call).
//!
//! What it costs (callgrind, `echo --instructions`, user-space
//! instructions per echoed message, 64 connections): 1 625–1 647 on one
//! core (tokio `current_thread` 1 271) and 1 642–1 648 per core (tokio
//! `multi_thread` 1 488–1 491), with one `recv` and one `send` per
//! message (2 790 and 2 910 with a `Park` per wait and nested `async`
//! blocks). The rest of the gap is mostly the second poll of the task
//! per message on the run loop's and the nursery's side (the self-wake,
//! the nursery's batch loop and the child's poll: about 400 instructions
//! per message together) and the readiness wait (arming, the reactor's
//! event, the reschedule: about 420).
//!
//! Callgrind slows the server so much that each wake-up finds ~27
//! messages per core; a timed run finds 5–8 (`perf stat` on the
//! `epoll_wait` tracepoint: 0.12–0.27 calls per message), and a
//! wake-up has a fixed cost of about 1 000 instructions here (two
//! batches: the run loop's iteration, the root task's poll down to its
//! nursery, the nursery's poll and the wake that pokes it, twice), which
//! `--conns 1` shows: 2 870 per message (tokio `current_thread` 1 712).
//!
//! # Poll waiters
//!
//! Poll methods (`SocketStream::poll_receive`, the pipes' `poll_send` …,
//! through [`IoRegistration::poll_io`]) cannot park: they have no future to
//! keep a `Park` in. They try the syscall and, on `WouldBlock`, leave the
//! waker they were polled with in the direction's slot, as a *poll waiter*:
//!
//! - A poll waiter is a park record with no `Park` future (see `park`'s
//!   module docs), one per registered entry and direction, made by the
//!   first poll that must wait and re-armed by every later one: no
//!   allocation per poll with a trio task's waker (a foreign one is boxed
//!   once per wait, as in a `Park`: a wake uses it up). Its key sits in
//!   the slot like any wait's, so readiness wakes
//!   it through the run loop's usual `reschedule` (our own task woken in
//!   place; a foreign waker after the state borrow ends), and it counts in
//!   `waiting`: the run loop polls I/O, and the deadlock detector treats it
//!   as a wait.
//! - One waker per direction; re-arming replaces it unless it would wake
//!   the same task (`Waker::will_wake`), so the last poller wins, as in
//!   tokio. A poll finding an operation's wait in the slot is Busy; an
//!   operation's wait finding a poll waiter there takes the slot and wakes
//!   the poller (`Release::Evicted`), which polls again and learns of the
//!   operation: a registered poller that has gone away must not block the
//!   socket's own operations.
//! - Registered under the poller's cancel status (as a park is), though a
//!   poll method is not a cancel point: a cancel of that status wakes the
//!   poller (for a poller that is no cancel point, a spurious wake-up,
//!   which poll methods allow), so a caller that is one (`trio_compat::Io`)
//!   checks for cancellation itself but need not register for it. Every
//!   re-arm is noted for [`PendingMark`](crate::lowlevel::PendingMark); one
//!   that moves the registration to another status or replaces another
//!   waker also counts as a use, so no mark of the old registration holds.
//! - The record goes with its entry (deregistration, close, a stale
//!   entry): its poller is woken with Closed and the record removed.
//!
//! # Moving between runs
//!
//! A socket is `Send`. Its [`IoRegistration`] remembers the run that
//! registered it and a handle to that run's registry; the first use in
//! another run deregisters it there (epoll may be called from any thread)
//! and registers it in the new run. The old run's entry is then stale: no
//! event can reach it. A socket dropped outside the run that registered it
//! (in a plain thread, or in the run it moved to) deregisters its fd from
//! that run's epoll through the shared registry, but cannot reach the
//! run's entry either, which goes stale the same way.
//!
//! A stale entry must not answer for a new fd that reuses its number (a
//! raw wait on it would share a dead registration, and the new fd's own
//! socket, registering, would take the stale entry for its own and wake
//! that wait with Closed). So each registered entry holds a weak reference
//! to its owner's registration record, which dies when the socket
//! deregisters or moves to another run (its `Arc` lives only in the
//! record). Every lookup by fd number (a raw wait, a registration,
//! `notify_closing`) checks it first: an entry whose owner is gone is
//! dropped (its waiters, if any, woken with Closed) and the lookup goes on
//! as if there were none. Stale entries that are never looked up are
//! dropped when the run ends.

use crate::core::park::{Abort, Park, ParkId, ParkState, WaitKey};
use crate::core::runtime::{self, Runtime, WakeTarget};
use crate::error::{Error, ErrorKind, Result};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::panic::Location;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, Weak};
// `task::Poll`, not to be confused with mio's `Poll`.
use std::task::{self, Context};
use std::time::Duration;

/// The token of the inbox's waker.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// A token is `generation << INDEX_BITS | index`. Half the bits each: on
/// 64-bit targets that is 2^32 slots and 2^32 reuses of a slot before a
/// generation repeats (it skips the value that would make `WAKER_TOKEN`).
const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

// Readiness bits cached in an entry.
const READABLE: u8 = 1;
const WRITABLE: u8 = 2;
const READ_CLOSED: u8 = 4;
const WRITE_CLOSED: u8 = 8;
const ERROR: u8 = 16;

/// A direction of I/O.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The readiness bits that end a wait in this direction.
    fn satisfied_by(self) -> u8 {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }

    /// The index of this direction in per-direction arrays.
    fn index(self) -> usize {
        match self {
            Direction::Read => 0,
            Direction::Write => 1,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }
}

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Kind {
    /// Owned by a socket's [`IoRegistration`]; registered for both
    /// directions until deregistered.
    Registered,
    /// Exists while raw waits are on it; `armed` once registered with mio.
    Raw { armed: bool },
}

struct Entry {
    fd: RawFd,
    kind: Kind,
    /// For a registered source: the liveness token of its owner's
    /// registration record (`Registered::_alive`). It dies when the socket
    /// leaves this run (used in another run, or deregistered from outside
    /// it), and the entry is then stale.
    owner: Weak<()>,
    /// Cached readiness of a registered source (always 0 for raw ones).
    readiness: u8,
    read: Option<WaitKey>,
    write: Option<WaitKey>,
    /// The poll waiter of each direction (`[read, write]`) of a registered
    /// source, once a poll method has needed one: a park record with no
    /// `Park` future, made by the first poll that had to wait and reused by
    /// every later one (see "Poll waiters" in the module docs). While it is
    /// waiting, its key is in the direction's slot.
    poll_parks: [Option<ParkId>; 2],
    /// The reusable wait record of each direction (`[read, write]`) for
    /// the operations' waits ([`IoOp`]), once one has needed it: re-armed
    /// by each wait and `Idle` in between (see "Operations" in the module
    /// docs). While a wait uses it, its key is in the direction's slot
    /// (or was, until readiness or a close took it out).
    op_parks: [Option<ParkId>; 2],
}

impl Entry {
    /// A registered source whose socket has left this run: nothing will
    /// deregister it here, and its fd number may already name another fd.
    fn is_stale(&self) -> bool {
        self.kind == Kind::Registered && self.owner.strong_count() == 0
    }

    fn slot(&mut self, dir: Direction) -> &mut Option<WaitKey> {
        match dir {
            Direction::Read => &mut self.read,
            Direction::Write => &mut self.write,
        }
    }

    fn raw_interest(&self) -> Option<Interest> {
        match (self.read.is_some(), self.write.is_some()) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        }
    }
}

struct Slot {
    /// Bumped each time the slot is freed, so old tokens stop matching.
    generation: usize,
    entry: Option<Entry>,
}

pub(crate) struct Reactor {
    poll: Poll,
    /// A clone of `poll`'s registry, shared with the sockets registered
    /// here so that they can deregister from another thread.
    registry: Arc<Registry>,
    events: Events,
    slots: Vec<Slot>,
    free: Vec<usize>,
    by_fd: HashMap<RawFd, usize>,
    waiting: usize,
    /// Waits this reactor ended while borrowed (an entry removed, an fd
    /// closing, a poll waiter evicted), to be woken by the caller once the
    /// borrow ends ([`Reactor::take_released`], [`wake_released`]): waking
    /// can run a foreign waker, which must not find the reactor borrowed.
    released: Vec<Release>,
}

/// A wait the reactor gave up, and how to end it.
enum Release {
    /// A wait on an fd that closed or left: it ends with Closed.
    Closed(WaitKey),
    /// A poll waiter pushed out of its slot by an operation's wait: woken
    /// (with `Ok`) so that its poller polls again and learns of the other
    /// operation.
    Evicted(WaitKey),
    /// The poll waiter or the reusable operation wait record of an entry
    /// that is gone: its waiter, if any, is woken (with Closed) and the
    /// record removed, since no entry names it any more.
    DeadRecord(ParkId),
}

fn both() -> Interest {
    Interest::READABLE | Interest::WRITABLE
}

impl Reactor {
    pub(crate) fn new() -> io::Result<(Reactor, mio::Waker)> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let registry = Arc::new(poll.registry().try_clone()?);
        Ok((
            Reactor {
                poll,
                registry,
                events: Events::with_capacity(256),
                slots: Vec::new(),
                free: Vec::new(),
                by_fd: HashMap::new(),
                waiting: 0,
                released: Vec::new(),
            },
            waker,
        ))
    }

    /// Whether any task waits on an fd.
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting > 0
    }

    /// The epoll fd, for a host loop to wait on (guest mode), or a
    /// duplicate the host owns; and whether the last `wait` filled the
    /// event buffer (more may be waiting).
    pub(crate) fn raw_fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.poll)
    }
    pub(crate) fn clone_fd(&self) -> io::Result<std::os::fd::OwnedFd> {
        std::os::fd::AsFd::as_fd(&*self.registry).try_clone_to_owned()
    }
    pub(crate) fn filled(&self) -> bool {
        self.events.iter().count() >= self.events.capacity()
    }

    fn token_of(&self, index: usize) -> usize {
        (self.slots[index].generation << INDEX_BITS) | index
    }

    /// The index of the live entry `token` names, if it is still live.
    fn index_of(&self, token: usize) -> Option<usize> {
        let index = token & INDEX_MASK;
        let slot = self.slots.get(index)?;
        (slot.entry.is_some() && self.token_of(index) == token).then_some(index)
    }

    /// The live entry `token` names: one bounds-checked look at its slot
    /// (it runs several times per echoed message).
    #[inline]
    fn entry(&mut self, token: usize) -> Option<&mut Entry> {
        entry_in(&mut self.slots, token)
    }

    fn insert(&mut self, entry: Entry) -> usize {
        let fd = entry.fd;
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i].entry = Some(entry);
                i
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: Some(entry),
                });
                self.slots.len() - 1
            }
        };
        self.by_fd.insert(fd, index);
        index
    }

    /// Frees the slot of `index`; its waiters are released (to end with
    /// Closed) and its poll waiters' records with them.
    fn remove(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        let Some(e) = slot.entry.take() else {
            return;
        };
        slot.generation = (slot.generation + 1) & INDEX_MASK;
        if (slot.generation << INDEX_BITS) | index == WAKER_TOKEN.0 {
            slot.generation = 0;
        }
        self.free.push(index);
        if self.by_fd.get(&e.fd) == Some(&index) {
            self.by_fd.remove(&e.fd);
        }
        for k in e.read.into_iter().chain(e.write) {
            self.waiting -= 1;
            self.released.push(Release::Closed(k));
        }
        for p in e.poll_parks.into_iter().chain(e.op_parks).flatten() {
            self.released.push(Release::DeadRecord(p));
        }
    }

    /// The waits released since the last call, for [`wake_released`].
    fn take_released(&mut self) -> Vec<Release> {
        if self.released.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut self.released)
    }

    /// The live entry for `fd`, if any. A stale one (see [`Entry::is_stale`])
    /// is dropped on the way, its waiters woken with Closed (a wait on the
    /// fd of a socket that left): it must not answer for a new fd that
    /// reuses the number. The fd is not deregistered from epoll: the
    /// socket's side did that when it left, and the number may now name a
    /// different fd.
    fn live_by_fd(&mut self, fd: RawFd) -> Option<usize> {
        let index = *self.by_fd.get(&fd)?;
        let stale = self.slots[index]
            .entry
            .as_ref()
            .expect("by_fd names live entries")
            .is_stale();
        if !stale {
            return Some(index);
        }
        self.remove(index);
        None
    }

    // ----- registered sources (sockets) ------------------------------------

    /// Registers `fd` once, for both directions, edge-triggered, for the
    /// registration record whose liveness token is `owner`, and returns its
    /// token. An older registered entry for the same fd number is stale (its
    /// fd was closed without telling this run); a raw entry becomes the
    /// registered one, keeping its waiters.
    fn register(&mut self, fd: RawFd, owner: Weak<()>) -> io::Result<usize> {
        if let Some(index) = self.live_by_fd(fd) {
            let e = self.slots[index]
                .entry
                .as_mut()
                .expect("by_fd names live entries");
            match e.kind {
                Kind::Raw { armed } => {
                    let token = self.token_of(index);
                    let r = if armed {
                        self.poll
                            .registry()
                            .reregister(&mut SourceFd(&fd), Token(token), both())
                    } else {
                        self.poll
                            .registry()
                            .register(&mut SourceFd(&fd), Token(token), both())
                    };
                    r?;
                    let e = self.slots[index].entry.as_mut().expect("live");
                    e.kind = Kind::Registered;
                    e.owner = owner;
                    return Ok(token);
                }
                Kind::Registered => self.remove(index),
            }
        }
        let index = self.insert(Entry {
            fd,
            kind: Kind::Registered,
            owner,
            readiness: 0,
            read: None,
            write: None,
            poll_parks: [None, None],
            op_parks: [None, None],
        });
        let token = self.token_of(index);
        let registry = self.poll.registry();
        let r = match registry.register(&mut SourceFd(&fd), Token(token), both()) {
            // Still registered under an older token (by a run this socket
            // left, on this same epoll): take it over.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                registry.reregister(&mut SourceFd(&fd), Token(token), both())
            }
            r => r,
        };
        if let Err(e) = r {
            self.remove(index);
            return Err(e);
        }
        Ok(token)
    }

    /// Forgets a registered source; its waiters are released (to end with
    /// Closed).
    fn deregister(&mut self, token: usize) {
        let Some(index) = self.index_of(token) else {
            return;
        };
        let fd = self.slots[index].entry.as_ref().expect("live").fd;
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        self.remove(index)
    }

    // ----- waiters ------------------------------------------------------------

    /// Adds a socket's waiter. With `rearm` (a raw wait on a registered
    /// source, which knows nothing about the cached readiness) the cached
    /// readiness of `dir` is dropped and the fd re-armed, so the kernel
    /// reports what exists now. A poll waiter in the slot gives way (it is
    /// released, to poll again): only a wait is an operation in flight.
    fn add_waiter(
        &mut self,
        token: usize,
        dir: Direction,
        key: WaitKey,
        rearm: bool,
    ) -> Result<()> {
        let registry = Arc::clone(&self.registry);
        let Some(e) = self.entry(token) else {
            return Err(closed_error());
        };
        let fd = e.fd;
        let poll_park = e.poll_parks[dir.index()];
        let slot = e.slot(dir);
        match *slot {
            None => {
                *slot = Some(key);
                self.waiting += 1;
            }
            Some(k) if Some(k.park) == poll_park => {
                *slot = Some(key);
                self.released.push(Release::Evicted(k));
            }
            Some(_) => return Err(busy(dir, fd)),
        }
        let e = self.entry(token).expect("live");
        let r = match e.kind {
            Kind::Registered if rearm => {
                e.readiness &= !dir.satisfied_by();
                match registry.reregister(&mut SourceFd(&fd), Token(token), both()) {
                    // Deregistered by a run that took the socket and gave
                    // it back: register it again.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        registry.register(&mut SourceFd(&fd), Token(token), both())
                    }
                    r => r,
                }
            }
            Kind::Registered => Ok(()),
            Kind::Raw { .. } => self.sync_raw(token),
        };
        if let Err(err) = r {
            self.remove_waiter(token, dir, key);
            return Err(err.into());
        }
        Ok(())
    }

    fn remove_waiter(&mut self, token: usize, dir: Direction, key: WaitKey) {
        let Some(e) = self.entry(token) else {
            return;
        };
        let raw = matches!(e.kind, Kind::Raw { .. });
        let slot = e.slot(dir);
        if *slot == Some(key) {
            *slot = None;
            self.waiting -= 1;
            if raw {
                let _ = self.sync_raw(token);
            }
        }
    }

    /// Re-arms a raw source for its current waiters, or drops it when it
    /// has none.
    fn sync_raw(&mut self, token: usize) -> io::Result<()> {
        let Some(index) = self.index_of(token) else {
            return Ok(());
        };
        let e = self.slots[index].entry.as_mut().expect("live");
        let Kind::Raw { armed } = e.kind else {
            return Ok(());
        };
        let fd = e.fd;
        let registry = self.poll.registry();
        match e.raw_interest() {
            Some(interest) => {
                if armed {
                    registry.reregister(&mut SourceFd(&fd), Token(token), interest)
                } else {
                    registry.register(&mut SourceFd(&fd), Token(token), interest)?;
                    e.kind = Kind::Raw { armed: true };
                    Ok(())
                }
            }
            None => {
                if armed {
                    // The fd may already be closed; nothing to undo then.
                    let _ = registry.deregister(&mut SourceFd(&fd));
                }
                self.remove(index);
                Ok(())
            }
        }
    }

    /// The token for a raw wait on `fd`: the registered source's if a
    /// socket has one (`true`: re-arm it), else a raw entry, made if needed.
    fn raw_token(&mut self, fd: RawFd) -> (usize, bool) {
        if let Some(index) = self.live_by_fd(fd) {
            let rearm = self.slots[index].entry.as_ref().expect("live").kind == Kind::Registered;
            return (self.token_of(index), rearm);
        }
        let index = self.insert(Entry {
            fd,
            kind: Kind::Raw { armed: false },
            owner: Weak::new(),
            readiness: 0,
            read: None,
            write: None,
            poll_parks: [None, None],
            op_parks: [None, None],
        });
        (self.token_of(index), false)
    }

    // ----- the run loop's step --------------------------------------------------

    /// Blocks for at most `timeout` (`None`: until something happens),
    /// appends the waits whose fds became ready to `ready` (the run loop's
    /// reused buffer), and says whether any event came at all (the inbox's
    /// waker included).
    ///
    /// The wait is a direct system call (`sys::epoll_wait`: no libc
    /// cancellation-point bookkeeping, about 50 instructions less per
    /// wait), its events decoded as mio decodes them; where that is not
    /// available, mio's `Poll::poll`. `filled` reads mio's buffer, so it
    /// is kept empty after a direct wait, unless the direct wait filled
    /// its own buffer: then mio's takes the rest at once (without
    /// blocking), and says whether yet more may be ready.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, ready: &mut Vec<WaitKey>) -> bool {
        let mut direct = crate::sys::epoll_wait::EpollEvents::new();
        if !self.events.is_empty() {
            self.events.clear();
        }
        match direct.wait(self.raw_fd(), timeout) {
            Ok(()) => {}
            // Not on this platform (or not allowed: `ENOSYS`).
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                return self.wait_mio(timeout, ready);
            }
            // EINTR, or nothing we could do about it here: the loop goes round.
            Err(_) => return false,
        }
        let mut any_event = self.take_events(direct.iter(), ready);
        if direct.is_full()
            && self
                .poll
                .poll(&mut self.events, Some(Duration::ZERO))
                .is_ok()
        {
            any_event |= self.take_mio_events(ready);
        }
        any_event
    }

    /// [`wait`](Self::wait) through mio's `Poll::poll`.
    fn wait_mio(&mut self, timeout: Option<Duration>, ready: &mut Vec<WaitKey>) -> bool {
        if self.poll.poll(&mut self.events, timeout).is_err() {
            // EINTR, or nothing we could do about it here: the loop goes round.
            return false;
        }
        self.take_mio_events(ready)
    }

    /// [`take_events`](Self::take_events) for the events in mio's buffer.
    fn take_mio_events(&mut self, ready: &mut Vec<WaitKey>) -> bool {
        // The walk borrows the events and the slots side by side (no
        // buffer moved out and back per wake-up).
        let Reactor {
            events,
            slots,
            waiting,
            ..
        } = self;
        let touched = take_events_into(slots, waiting, events.iter(), ready);
        self.sync_touched(touched)
    }

    /// Records the events of one wait: the ready waits go to `ready`, raw
    /// sources are re-synced. Whether any event came at all (the inbox's
    /// waker included).
    fn take_events(
        &mut self,
        events: impl Iterator<Item = impl ReadyEvent>,
        ready: &mut Vec<WaitKey>,
    ) -> bool {
        let touched = take_events_into(&mut self.slots, &mut self.waiting, events, ready);
        self.sync_touched(touched)
    }

    /// Re-syncs the raw sources an event touched; passes on whether any
    /// event came.
    fn sync_touched(&mut self, (any_event, touched): (bool, Vec<usize>)) -> bool {
        for token in touched {
            let _ = self.sync_raw(token);
        }
        any_event
    }

    /// Releases every waiter of `fd` (to end with Closed) and forgets a raw
    /// fd (a registered source stays, for its socket to deregister).
    fn closing(&mut self, fd: RawFd) {
        let Some(index) = self.live_by_fd(fd) else {
            return;
        };
        let e = self.slots[index].entry.as_mut().expect("live");
        match e.kind {
            Kind::Raw { armed } => {
                if armed {
                    let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
                }
                self.remove(index)
            }
            Kind::Registered => {
                for k in e.read.take().into_iter().chain(e.write.take()) {
                    self.waiting -= 1;
                    self.released.push(Release::Closed(k));
                }
            }
        }
    }

    // ----- poll waiters -------------------------------------------------------

    /// The poll path's wait on `dir` of the registered source `token`,
    /// begun in the same look at its entry as the readiness check (one
    /// borrow and one lookup of the reactor): `None` if the direction is
    /// ready (an edge since its readiness was last cleared: try the
    /// syscall), else
    /// [`begin_poll_wait_at`](Self::begin_poll_wait_at)'s outcome. With
    /// `clear`, the cached readiness is cleared first (after a
    /// `WouldBlock`), so the wait always begins.
    #[inline]
    fn poll_wait_if_not_ready(
        &mut self,
        token: usize,
        dir: Direction,
        run_id: u32,
        clear: bool,
    ) -> Option<Result<Option<ParkId>>> {
        let Some(index) = self.index_of(token) else {
            // Gone: the wait fails as it would have (Closed).
            return clear.then(|| Err(closed_error()));
        };
        let e = self.slots[index].entry.as_mut().expect("index_of checked");
        if clear {
            e.readiness &= !(dir.satisfied_by() & (READABLE | WRITABLE));
        } else if e.readiness & dir.satisfied_by() != 0 {
            return None;
        }
        Some(self.begin_poll_wait_at(index, dir, run_id))
    }

    /// Begins a poll waiter's wait on `dir` of the entry at `index` (see
    /// "Poll waiters" in the module docs): Busy while an operation's wait
    /// holds the slot; else returns the direction's poll-waiter record (if
    /// it has one), whose key is now in the slot, so that the caller only
    /// re-arms that record in the state and, in the usual case, need not
    /// come back here. (Its key may already be there: a second poll that
    /// waits before readiness came.) Without a record, the caller makes
    /// one and puts it in with [`set_poll_waiter`](Self::set_poll_waiter).
    fn begin_poll_wait_at(
        &mut self,
        index: usize,
        dir: Direction,
        run_id: u32,
    ) -> Result<Option<ParkId>> {
        let e = self.slots[index].entry.as_mut().expect("a live entry");
        let fd = e.fd;
        let park = e.poll_parks[dir.index()];
        let slot = e.slot(dir);
        match (*slot, park) {
            (Some(k), _) if Some(k.park) != park => Err(busy(dir, fd)),
            (Some(_), _) | (None, None) => Ok(park),
            (None, Some(p)) => {
                *slot = Some(WaitKey { park: p, run_id });
                self.waiting += 1;
                Ok(park)
            }
        }
    }

    /// Makes `key` the poll waiter of `dir` on `token` and puts it in the
    /// slot (replacing the key of the direction's former poll-waiter
    /// record, which [`begin_poll_wait_at`](Self::begin_poll_wait_at) may
    /// have put there, when that record was gone from the state).
    fn set_poll_waiter(&mut self, token: usize, dir: Direction, key: WaitKey) -> Result<()> {
        let Some(e) = self.entry(token) else {
            return Err(closed_error());
        };
        let fd = e.fd;
        let former = e.poll_parks[dir.index()].replace(key.park);
        let slot = e.slot(dir);
        match *slot {
            None => {
                *slot = Some(key);
                self.waiting += 1;
                Ok(())
            }
            Some(k) if k == key || Some(k.park) == former => {
                *slot = Some(key);
                Ok(())
            }
            Some(_) => Err(busy(dir, fd)),
        }
    }

    // ----- operations' waits (IoOp) ------------------------------------------

    /// [`begin_op_wait`](Self::begin_op_wait) if the registered source
    /// `token` is known not to be ready in `dir` (no edge since its
    /// readiness was last cleared), in one look at the entry; `None` (and
    /// nothing changed) if it may be ready, or is gone (the syscall then
    /// tells).
    #[inline]
    fn begin_op_wait_if_not_ready(
        &mut self,
        token: usize,
        dir: Direction,
        run_id: u32,
    ) -> Option<Result<(Option<WaitKey>, bool)>> {
        let Reactor {
            slots,
            waiting,
            released,
            ..
        } = self;
        let e = entry_in(slots, token)?;
        if e.readiness & dir.satisfied_by() != 0 {
            return None;
        }
        Some(begin_op_wait_on(e, waiting, released, dir, run_id))
    }

    /// Clears the cached readiness of `dir` (after `WouldBlock`, a drained
    /// read, a short write). Closed and error states do not go away; they
    /// are kept.
    fn clear_ready(&mut self, token: usize, dir: Direction) {
        if let Some(e) = self.entry(token) {
            e.readiness &= !(dir.satisfied_by() & (READABLE | WRITABLE));
        }
    }

    /// Starts an operation's wait on `dir`: Busy when another operation's
    /// wait holds the slot, Closed when the source is gone. If the entry
    /// has a reusable wait record, its key goes in the slot at once (the
    /// usual case, which then needs no second look here); a poll waiter
    /// there gives way (released, to poll again: `true` is returned, and
    /// the caller settles). Returns the key put in the slot, if any.
    fn begin_op_wait(
        &mut self,
        token: usize,
        dir: Direction,
        run_id: u32,
    ) -> Result<(Option<WaitKey>, bool)> {
        let Reactor {
            slots,
            waiting,
            released,
            ..
        } = self;
        let Some(e) = entry_in(slots, token) else {
            return Err(closed_error());
        };
        begin_op_wait_on(e, waiting, released, dir, run_id)
    }

    /// Puts an operation's wait `key` in the slot of `dir`, in place of
    /// `placed` (what [`begin_op_wait`](Self::begin_op_wait) put there, if
    /// anything); a poll waiter there gives way as in `begin_op_wait`.
    /// With `reusable`, its record becomes the entry's reusable one. Busy
    /// or Closed as `begin_op_wait`.
    fn put_op_waiter(
        &mut self,
        token: usize,
        dir: Direction,
        placed: Option<WaitKey>,
        key: WaitKey,
        reusable: bool,
    ) -> Result<bool> {
        let Some(e) = self.entry(token) else {
            return Err(closed_error());
        };
        let fd = e.fd;
        let poll_park = e.poll_parks[dir.index()];
        if reusable {
            e.op_parks[dir.index()] = Some(key.park);
        }
        let slot = e.slot(dir);
        match *slot {
            Some(k) if Some(k) == placed => {
                *slot = Some(key);
                Ok(false)
            }
            None => {
                *slot = Some(key);
                self.waiting += 1;
                Ok(false)
            }
            Some(k) if Some(k.park) == poll_park => {
                *slot = Some(key);
                self.released.push(Release::Evicted(k));
                Ok(true)
            }
            Some(_) => Err(busy(dir, fd)),
        }
    }
}

/// [`Reactor::begin_op_wait`] on the entry `e` (`waiting` and `released`
/// are the reactor's).
#[inline]
fn begin_op_wait_on(
    e: &mut Entry,
    waiting: &mut usize,
    released: &mut Vec<Release>,
    dir: Direction,
    run_id: u32,
) -> Result<(Option<WaitKey>, bool)> {
    let fd = e.fd;
    let poll_park = e.poll_parks[dir.index()];
    let existing = e.op_parks[dir.index()];
    let slot = e.slot(dir);
    let current = *slot;
    if let Some(k) = current
        && Some(k.park) != poll_park
    {
        return Err(busy(dir, fd));
    }
    let Some(park) = existing else {
        return Ok((None, false));
    };
    let key = WaitKey { park, run_id };
    *slot = Some(key);
    match current {
        None => {
            *waiting += 1;
            Ok((Some(key), false))
        }
        Some(k) => {
            released.push(Release::Evicted(k));
            Ok((Some(key), true))
        }
    }
}

/// A wait's events recorded in `slots` (see `Reactor::take_events`):
/// whether any came, and the tokens of the raw sources among them, to
/// re-sync.
fn take_events_into(
    slots: &mut [Slot],
    waiting: &mut usize,
    events: impl Iterator<Item = impl ReadyEvent>,
    ready: &mut Vec<WaitKey>,
) -> (bool, Vec<usize>) {
    let mut any_event = false;
    let mut touched = Vec::new(); // raw sources only; empty allocates nothing
    for ev in events {
        any_event = true;
        let token = ev.token();
        if token == WAKER_TOKEN.0 {
            continue;
        }
        let bits = ev.bits();
        let Some(e) = entry_in(slots, token) else {
            continue; // a source that left: its generation moved on
        };
        let raw = matches!(e.kind, Kind::Raw { .. });
        if !raw {
            e.readiness |= bits;
        }
        let mut woken = 0;
        for dir in [Direction::Read, Direction::Write] {
            if bits & dir.satisfied_by() != 0
                && let Some(k) = e.slot(dir).take()
            {
                ready.push(k);
                woken += 1;
            }
        }
        *waiting -= woken;
        if raw {
            touched.push(token);
        }
    }
    (any_event, touched)
}

/// One event of a reactor wait, read by mio or by the direct wait
/// (`sys::epoll_wait`, which decodes the kernel's bits as mio does).
trait ReadyEvent {
    fn token(&self) -> usize;
    /// Its readiness as the reactor's bits (decoded only for the events
    /// of a registered source, not for the inbox's waker).
    fn bits(&self) -> u8;
}

impl ReadyEvent for &mio::event::Event {
    fn token(&self) -> usize {
        mio::event::Event::token(self).0
    }
    fn bits(&self) -> u8 {
        readiness_bits(
            self.is_readable(),
            self.is_writable(),
            self.is_read_closed(),
            self.is_write_closed(),
            self.is_error(),
        )
    }
}

impl ReadyEvent for crate::sys::epoll_wait::RawEvent {
    fn token(&self) -> usize {
        crate::sys::epoll_wait::RawEvent::token(*self)
    }
    fn bits(&self) -> u8 {
        readiness_bits(
            self.is_readable(),
            self.is_writable(),
            self.is_read_closed(),
            self.is_write_closed(),
            self.is_error(),
        )
    }
}

/// An event's readiness as the reactor's bits.
#[inline]
fn readiness_bits(
    readable: bool,
    writable: bool,
    read_closed: bool,
    write_closed: bool,
    error: bool,
) -> u8 {
    let mut bits = 0;
    if readable {
        bits |= READABLE;
    }
    if writable {
        bits |= WRITABLE;
    }
    if read_closed {
        bits |= READ_CLOSED;
    }
    if write_closed {
        bits |= WRITE_CLOSED;
    }
    if error {
        bits |= ERROR;
    }
    bits
}

/// The live entry of `slots` that `token` names (its slot holds an entry
/// and the token's generation is the slot's).
#[inline]
fn entry_in(slots: &mut [Slot], token: usize) -> Option<&mut Entry> {
    let index = token & INDEX_MASK;
    let slot = slots.get_mut(index)?;
    if (slot.generation << INDEX_BITS) | index != token {
        return None;
    }
    slot.entry.as_mut()
}

/// Ends the waits the reactor gave up (its `released` list), after its
/// borrow.
fn wake_released(rt: &Runtime, released: Vec<Release>) {
    if released.is_empty() {
        return;
    }
    rt.with_state(|st| {
        for r in released {
            match r {
                Release::Closed(k) => {
                    st.reschedule(k.park, Err(closed_error()));
                }
                Release::Evicted(k) => {
                    st.reschedule(k.park, Ok(()));
                }
                Release::DeadRecord(p) => {
                    st.reschedule(p, Err(closed_error()));
                    st.remove_park(p);
                }
            }
        }
    });
}

/// Wakes what the reactor released during the caller's borrow (which must
/// have ended).
fn settle(rt: &Runtime) {
    let released = rt.reactor.borrow_mut().take_released();
    wake_released(rt, released);
}

fn closed_error() -> Error {
    Error::new(
        ErrorKind::Closed,
        "another task closed this file descriptor",
    )
}

fn busy(dir: Direction, fd: RawFd) -> Error {
    Error::new(
        ErrorKind::Busy,
        format!("another task is already waiting to {} fd {fd}", dir.verb()),
    )
}

async fn wait_token(
    token: usize,
    dir: Direction,
    rearm: bool,
    label: &'static str,
    location: &'static Location<'static>,
) -> Result<()> {
    let rt = runtime::current()?;
    let rt2 = rt.clone();
    let park = Park::new_at(label, location, move |key, _why| {
        rt2.reactor.borrow_mut().remove_waiter(token, dir, key);
        Abort::Succeeded
    })?;
    let added = rt
        .reactor
        .borrow_mut()
        .add_waiter(token, dir, park.key(), rearm);
    settle(&rt); // an evicted poll waiter
    added?;
    park.await
}

async fn wait_fd(fd: RawFd, dir: Direction, location: &'static Location<'static>) -> Result<()> {
    if fd < 0 {
        return Err(Error::invalid(format!("invalid file descriptor {fd}")));
    }
    let rt = runtime::current()?;
    let label = match dir {
        Direction::Read => "wait_readable",
        Direction::Write => "wait_writable",
    };
    let (token, rearm) = rt.reactor.borrow_mut().raw_token(fd);
    settle(&rt); // the waiters of a stale entry
    let r = wait_token(token, dir, rearm, label, location).await;
    if let Err(e) = &r
        && e.kind() == ErrorKind::Busy
        && !rearm
    {
        // A raw entry made for this wait alone must not outlive it.
        let _ = rt.reactor.borrow_mut().sync_raw(token);
    }
    r
}

/// Waits until `fd` is readable (or at EOF, or in error). A checkpoint.
/// Only one task may wait to read a given fd at a time: a second gets a
/// [`Busy`](ErrorKind::Busy) error. On an fd that a [`trio::socket`]
/// socket has registered, the wait shares the socket's registration (and
/// its one-reader rule).
///
/// [`trio::socket`]: crate::socket
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
    rt.reactor.borrow_mut().closing(fd);
    settle(&rt);
    Ok(())
}

// ----- a socket's side: IoRegistration -----------------------------------------

/// Where a socket is registered: in which run, under which token, and that
/// run's registry (to deregister from any thread).
struct Registered {
    run_id: u32,
    token: usize,
    registry: Arc<Registry>,
    /// The only strong reference; the run's entry holds a weak one. Dropped
    /// with this record (the socket deregistered, or moved to another run),
    /// which makes the entry stale even where this thread cannot reach the
    /// run's reactor.
    _alive: Arc<()>,
}

/// A socket's registration with the reactor of the run using it (see the
/// module docs): made lazily, on the first wait; moved when the socket is
/// used in another run; undone by [`deregister`](Self::deregister) or on
/// drop of the owner (which calls it). `Send` and `Sync`.
#[derive(Default)]
pub(crate) struct IoRegistration {
    inner: Mutex<Option<Registered>>,
    /// `inner`'s run id (0: none; no run has id 0) and token, copied for
    /// the operations' hot path, which reads them without the lock: a
    /// sequence lock, written only with `inner` locked ([`publish`]), read
    /// by [`token_here`] (an odd or changed `seq` means a write was under
    /// way: the reader takes the lock instead).
    ///
    /// [`publish`]: Self::publish
    /// [`token_here`]: Self::token_here
    seq: AtomicU32,
    run_id: AtomicU32,
    token: AtomicUsize,
}

impl fmt::Debug for IoRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match &*g {
            Some(r) => f
                .debug_struct("IoRegistration")
                .field("run_id", &r.run_id)
                .field("token", &r.token)
                .finish(),
            None => f.write_str("IoRegistration(None)"),
        }
    }
}

impl IoRegistration {
    /// The token of `fd` in the current run, registering it there first if
    /// needed (deregistering it from the run it was in before).
    fn token(&self, fd: RawFd) -> Result<usize> {
        let rt = runtime::current()?;
        self.token_in(&rt, fd)
    }

    /// Copies `r`'s run id and token for [`token_here`](Self::token_here).
    /// Call with `inner` locked (writers take turns there).
    fn publish(&self, r: Option<&Registered>) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let (run_id, token) = r.map_or((0, 0), |r| (r.run_id, r.token));
        self.run_id.store(run_id, Ordering::Relaxed);
        self.token.store(token, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// [`token`](Self::token) in the run `rt` (the current one).
    fn token_in(&self, rt: &Runtime, fd: RawFd) -> Result<usize> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = &*g {
            if r.run_id == rt.run_id {
                return Ok(r.token);
            }
            let _ = r.registry.deregister(&mut SourceFd(&fd));
        }
        // The old record (if any) dies here, with its liveness token.
        *g = None;
        self.publish(None);
        let alive = Arc::new(());
        let mut reactor = rt.reactor.borrow_mut();
        let registered = reactor.register(fd, Arc::downgrade(&alive));
        if let Ok(token) = registered {
            *g = Some(Registered {
                run_id: rt.run_id,
                token,
                registry: Arc::clone(&reactor.registry),
                _alive: alive,
            });
            self.publish(g.as_ref());
        }
        drop(reactor);
        drop(g);
        settle(rt); // the waiters of a stale entry for the same fd number
        Ok(registered?)
    }

    /// Clears the cached readiness of `dir`: after a `WouldBlock`, or after
    /// a stream read that did not fill its buffer (the receive queue is
    /// empty) or a short stream write (the send buffer is full), as tokio
    /// does. Edge-triggered: the next change sets it again. Closed and
    /// error states do not go away; they are kept.
    ///
    /// Call it in the same poll as the syscall whose result it records
    /// (as [`io_op`](Self::io_op) and [`poll_io_op`](Self::poll_io_op)
    /// do), never after an `.await` or a schedule point: the reactor may
    /// record a new edge in between, and clearing afterwards erases it, so
    /// the next operation waits for data that is already there.
    pub(crate) fn clear_ready(&self, dir: Direction) {
        runtime::with_runtime(|rt| {
            if let Some(t) = self.token_here(rt) {
                rt.reactor.borrow_mut().clear_ready(t, dir);
            }
        });
    }

    /// Parks until `fd` is ready in `dir` (a checkpoint). Call after a
    /// `WouldBlock` and [`clear_ready`](Self::clear_ready): the cache is then
    /// empty for `dir`, and the next edge wakes the wait. With `rearm`, for
    /// a wait not preceded by a syscall (whose cache may be stale, e.g.
    /// after the user wrote through `as_socket2`), the fd is re-armed so
    /// that the kernel reports its current state (one `epoll_ctl`).
    pub(crate) async fn wait(
        &self,
        fd: RawFd,
        dir: Direction,
        rearm: bool,
        label: &'static str,
        location: &'static Location<'static>,
    ) -> Result<()> {
        let token = self.token(fd)?;
        wait_token(token, dir, rearm, label, location).await
    }

    /// One non-blocking operation on the registered `fd`, in DESIGN §6's
    /// order: a cancel check; the syscall `op` (unless the cache says it
    /// would only return `WouldBlock`: then the wait for the edge comes
    /// first); on success or a real error a cancel-shielded schedule point
    /// (skipped after a wait, which was one); on `WouldBlock` the cached
    /// readiness is cleared and the task waits for the next edge (a cancel
    /// point: a cancelled wait did nothing), then tries again. `closed` is
    /// asked after each wait: an owner closed meanwhile must not touch the
    /// fd, and gets `closed_error()`. See [`IoOp`] for how it runs.
    ///
    /// `op` also says whether it drained the direction (a stream read that
    /// did not fill its buffer: the receive queue is empty; a short stream
    /// write: the send buffer is full). Then the cached readiness of `dir`
    /// is cleared in the same step, as after `WouldBlock`, and the next
    /// operation waits for the edge without a syscall that would only say
    /// `WouldBlock` (as tokio does).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn io_op<'a, T, F>(
        &'a self,
        fd: RawFd,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        closed: &'a dyn Fn() -> bool,
        closed_error: fn() -> Error,
        op: F,
    ) -> IoOp<'a, T, F>
    where
        F: FnMut() -> io::Result<(T, bool)>,
    {
        IoOp {
            reg: self,
            fd,
            dir,
            label,
            location,
            closed,
            closed_error,
            op,
            step: OpStep::Start,
            yield_at_end: true,
        }
    }

    /// The token of the registration in the run `rt`, if the fd is
    /// registered there (`None` if it is not): from the copy `publish`
    /// keeps, without the lock, unless a write is under way.
    fn token_here(&self, rt: &Runtime) -> Option<usize> {
        let seq = self.seq.load(Ordering::Acquire);
        let run_id = self.run_id.load(Ordering::Relaxed);
        let token = self.token.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if seq & 1 == 0 && self.seq.load(Ordering::Relaxed) == seq {
            return (run_id == rt.run_id).then_some(token);
        }
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref()
            .filter(|r| r.run_id == rt.run_id)
            .map(|r| r.token)
    }

    /// One non-blocking operation on the registered `fd` for a poll method
    /// (see "Poll waiters" in the module docs): the syscall `op`, unless
    /// the cache says it would only return `WouldBlock`; on `WouldBlock`
    /// the cached readiness of `dir` is cleared and `cx`'s waker is
    /// registered as the direction's poll waiter (`Pending`), to be woken by
    /// the next edge. Not a checkpoint: no cancel check, no schedule point
    /// (the caller decides). `Busy` while an operation's wait holds the
    /// direction; an error outside a run once it would have to wait.
    pub(crate) fn poll_io<T>(
        &self,
        cx: &Context<'_>,
        fd: RawFd,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> task::Poll<Result<T>> {
        self.poll_io_op(cx, fd, dir, label, location, || op().map(|v| (v, false)))
    }

    /// [`poll_io`](Self::poll_io) for an `op` that also says whether it
    /// drained the direction (as for [`io_op`](Self::io_op)): the cached
    /// readiness is then cleared in the same step. One runtime lookup and
    /// no lock on the common path.
    pub(crate) fn poll_io_op<T>(
        &self,
        cx: &Context<'_>,
        fd: RawFd,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        mut op: impl FnMut() -> io::Result<(T, bool)>,
    ) -> task::Poll<Result<T>> {
        let polled = runtime::with_runtime(|rt| {
            let token = self.token_here(rt);
            if let Some(t) = token {
                // Known not ready: the wait begins in the same look at the
                // entry (no syscall that would only say `WouldBlock`).
                let begun = rt
                    .reactor
                    .borrow_mut()
                    .poll_wait_if_not_ready(t, dir, rt.run_id, false);
                if let Some(begun) = begun {
                    return self.poll_wait_at(rt, cx, t, dir, label, location, begun);
                }
            }
            loop {
                match op() {
                    Ok((v, drained)) => {
                        if drained && let Some(t) = token {
                            rt.reactor.borrow_mut().clear_ready(t, dir);
                        }
                        return task::Poll::Ready(Ok(v));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        let t = match token {
                            Some(t) => t,
                            None => match self.token_in(rt, fd) {
                                Ok(t) => t,
                                Err(e) => return task::Poll::Ready(Err(e)),
                            },
                        };
                        let begun = rt
                            .reactor
                            .borrow_mut()
                            .poll_wait_if_not_ready(t, dir, rt.run_id, true)
                            .unwrap_or_else(|| Err(closed_error()));
                        return self.poll_wait_at(rt, cx, t, dir, label, location, begun);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return task::Poll::Ready(Err(Error::from(e))),
                }
            }
        });
        if let Some(p) = polled {
            return p;
        }
        // Outside a run: the syscall still runs; waiting is what needs one.
        loop {
            match op() {
                Ok((v, _)) => return task::Poll::Ready(Ok(v)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return task::Poll::Ready(Err(Error::outside_run()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return task::Poll::Ready(Err(Error::from(e))),
            }
        }
    }

    /// [`arm_poll_waiter`](Self::arm_poll_waiter) as a poll's result.
    #[allow(clippy::too_many_arguments)]
    fn poll_wait_at<T>(
        &self,
        rt: &Runtime,
        cx: &Context<'_>,
        token: usize,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        begun: Result<Option<ParkId>>,
    ) -> task::Poll<Result<T>> {
        match begun.and_then(|existing| {
            self.arm_poll_waiter(rt, cx, token, dir, label, location, existing)
        }) {
            Ok(()) => task::Poll::Pending,
            Err(e) => task::Poll::Ready(Err(e)),
        }
    }

    /// Registers `cx`'s waker as the poll waiter of `dir` on the registered
    /// source `token`, whose wait `Reactor::begin_poll_wait_at` began
    /// (`existing`: the direction's poll-waiter record, its key already in
    /// the slot): re-arms that record, or makes one on first use (or if it
    /// is gone) and puts it in the slot. The waker in the record is
    /// replaced only if it would not wake the same task (last waker wins,
    /// as in tokio). One state borrow, and no second look at the reactor
    /// unless the record is new.
    ///
    /// The record is also registered under the cancel status current at
    /// this poll (as a park is; unchanged in the usual case, where it
    /// already is), so a cancel of that status, or of any scope whose
    /// cancellation reaches it, wakes the waker too: a poller that is a
    /// cancel point (trio-compat's `Io`) needs no registration of its own.
    /// For any other poller it is a spurious wake-up, which poll methods
    /// allow.
    #[allow(clippy::too_many_arguments)]
    fn arm_poll_waiter(
        &self,
        rt: &Runtime,
        cx: &Context<'_>,
        token: usize,
        dir: Direction,
        label: &'static str,
        location: &'static Location<'static>,
        existing: Option<ParkId>,
    ) -> Result<()> {
        let task = rt.current_task.get();
        // As a cancel waiter reads it: a lazy nursery's status is made now.
        rt.settle_lazy();
        let status = rt.current_cancel_status.get();
        let waker = cx.waker();
        let mut targets_used = 0;
        let mut armed_task = None;
        let park = rt.with_state(|st| {
            // Re-arm the record in place (what `arm_poll_park` does, on the
            // record looked up once, without the call: this runs for every
            // keep-alive request in `benches/hello.rs`).
            let (run_id, shared_addr) = (st.run_id, st.shared_addr);
            if let Some(id) = existing
                && let Some(p) = st.parks.get_mut(id)
            {
                let replaced = p.rearm(task, label, location, waker, run_id, shared_addr);
                if p.cancel_status == status {
                    armed_task = p.target.task_word();
                    if !matches!(replaced, WakeTarget::None) {
                        // Another waker's registration replaced: marks of it
                        // no longer hold.
                        runtime::note_registration_moved();
                    }
                    st.retire(replaced);
                    targets_used = runtime::targets_used();
                    return id;
                }
                // Moved to another status: marks made under the old one no
                // longer describe it.
                runtime::note_registration_moved();
                st.retire(replaced);
                st.register_park(id, status, waker);
                armed_task = st.parks.get(id).and_then(|p| p.target.task_word());
                targets_used = runtime::targets_used();
                return id;
            }
            let id = st.arm_poll_park(None, task, label, location, waker);
            st.register_park(id, status, waker);
            armed_task = st.parks.get(id).and_then(|p| p.target.task_word());
            targets_used = runtime::targets_used();
            id
        });
        if let Some(w) = armed_task {
            crate::core::cancel_waiter::note_armed(rt.run_id, status, w, targets_used);
        }
        if Some(park) == existing {
            return Ok(());
        }
        let key = WaitKey {
            park,
            run_id: rt.run_id,
        };
        rt.reactor.borrow_mut().set_poll_waiter(token, dir, key)
    }

    /// Wakes the tasks waiting on `fd` with Closed and undoes the
    /// registration (in the current run, or through the registry of the
    /// run it belongs to, from any thread).
    pub(crate) fn deregister(&self, fd: RawFd) {
        // Taken out, and the lock released before anyone is woken.
        let taken = {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            self.publish(None);
            g.take()
        };
        let Some(r) = taken else { return };
        let done = runtime::with_runtime(|rt| {
            if rt.run_id != r.run_id {
                return false;
            }
            rt.reactor.borrow_mut().deregister(r.token);
            settle(rt);
            true
        })
        .unwrap_or(false);
        if !done {
            let _ = r.registry.deregister(&mut SourceFd(&fd));
        }
    }
}

// ----- an operation: IoOp ----------------------------------------------------

/// The future of one socket or pipe operation ([`IoRegistration::io_op`]):
/// DESIGN §6's cancel check, syscall and shielded schedule point, and the
/// readiness wait in between, written out by hand so that each poll looks
/// the runtime up once and borrows each table only as long as it needs
/// (see "Operations" in the module docs). `op` returns the syscall's
/// result and whether it drained the direction.
#[must_use = "futures do nothing unless awaited"]
pub(crate) struct IoOp<'a, T, F> {
    reg: &'a IoRegistration,
    fd: RawFd,
    dir: Direction,
    label: &'static str,
    location: &'static Location<'static>,
    closed: &'a dyn Fn() -> bool,
    closed_error: fn() -> Error,
    op: F,
    step: OpStep<T>,
    /// Whether step 3 (the shielded schedule point) is taken; see
    /// [`unscheduled`](IoOp::unscheduled).
    yield_at_end: bool,
}

/// Where an [`IoOp`] is.
enum OpStep<T> {
    /// Not polled yet: the cancel check and the first try come next.
    Start,
    /// Waiting for readiness.
    Waiting(IoWait),
    /// Done, at the shielded schedule point: the task was rescheduled for
    /// the next batch, and this poll returns the result. Its cancel and
    /// schedule points were counted when the task yielded, so an operation
    /// dropped here (by `select!`, say) has counted both: the task did
    /// yield.
    Yielded(Result<T>),
    /// The result was returned (or the future was polled outside a run).
    Finished,
}

/// An armed readiness wait of an [`IoOp`]: its key sits in the slot of the
/// reactor entry `token` (until readiness or a close takes it out).
#[derive(Copy, Clone)]
struct IoWait {
    token: usize,
    key: WaitKey,
    /// Whether its record is the entry's reusable one (else this wait's
    /// own, removed when the wait ends).
    reusable: bool,
}

/// What one look at an armed wait's record found.
enum WaitStep {
    Done(Result<()>),
    Cancelled,
    Waiting,
    /// The record went with its entry (the fd was deregistered).
    Gone,
}

// `IoOp` never pins its fields (the closure and the result are only
// called and moved), so it may move between polls.
impl<T, F> Unpin for IoOp<'_, T, F> {}

impl<'a, T, F> IoOp<'a, T, F> {
    /// Without step 3, the trailing schedule point (for the `*_unscheduled`
    /// stream operations, see "Composite operations" in `trio::stream`):
    /// the cancel check, the syscall and, on `WouldBlock`, the wait (a
    /// schedule point, undone if cancelled or dropped, as always); a result
    /// without a wait is returned at once.
    pub(crate) fn unscheduled(mut self) -> Self {
        self.yield_at_end = false;
        self
    }
}

impl<T, F> Future for IoOp<'_, T, F>
where
    F: FnMut() -> io::Result<(T, bool)>,
{
    type Output = Result<T>;

    /// Inlined into the caller: the poll that ends the shielded schedule
    /// point (step 3) only hands the result over (it was counted when the
    /// task yielded, and needs no runtime), without even the prologue of
    /// the full poll (`poll_step`). That is half the operations' polls in
    /// an echo loop.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> task::Poll<Result<T>> {
        let this = self.get_mut();
        if let OpStep::Yielded(_) = this.step {
            let OpStep::Yielded(r) = std::mem::replace(&mut this.step, OpStep::Finished) else {
                unreachable!("just matched")
            };
            return task::Poll::Ready(r);
        }
        this.poll_step(cx)
    }
}

impl<T, F> IoOp<'_, T, F>
where
    F: FnMut() -> io::Result<(T, bool)>,
{
    /// A poll that has work to do: the start, or a wait.
    #[inline(never)]
    fn poll_step(&mut self, cx: &Context<'_>) -> task::Poll<Result<T>> {
        match runtime::with_runtime(|rt| self.poll_in(rt, cx)) {
            Some(p) => p,
            None => {
                self.step = OpStep::Finished;
                task::Poll::Ready(Err(Error::outside_run()))
            }
        }
    }

    #[inline(always)]
    fn poll_in(&mut self, rt: &Runtime, cx: &Context<'_>) -> task::Poll<Result<T>> {
        // The token, once known to be registered in this run.
        let token;
        // Whether the task has waited (a schedule point already).
        let mut waited = false;
        // Each arm leaves `step` at `Finished` (only its discriminant is
        // written, not the whole step moved out); the paths that go on
        // set the next one.
        match self.step {
            OpStep::Start => {
                self.step = OpStep::Finished;
                // 1. The cancel point. It is counted (for the testing
                // toolkit) with what follows it: with the schedule point
                // of step 3, or before a wait.
                if rt.is_cancelled() {
                    rt.count_checkpoint(false, true);
                    return task::Poll::Ready(Err(Error::cancelled()));
                }
                token = self.reg.token_here(rt);
                if let Some(t) = token {
                    // 4. first: the syscall would only say WouldBlock. The
                    // readiness check and the start of the wait are one
                    // look at the entry.
                    let begun = rt
                        .reactor
                        .borrow_mut()
                        .begin_op_wait_if_not_ready(t, self.dir, rt.run_id);
                    if let Some(begun) = begun {
                        rt.count_checkpoint(false, true);
                        return self.wait_begun(rt, cx, t, false, begun);
                    }
                }
            }
            OpStep::Waiting(w) => {
                match poll_wait(rt, cx, w, self.dir) {
                    task::Poll::Pending => return task::Poll::Pending,
                    task::Poll::Ready(Err(e)) => {
                        self.step = OpStep::Finished;
                        return task::Poll::Ready(Err(e));
                    }
                    task::Poll::Ready(Ok(())) => self.step = OpStep::Finished,
                }
                if (self.closed)() {
                    return task::Poll::Ready(Err((self.closed_error)()));
                }
                token = Some(w.token);
                waited = true;
            }
            // (`poll` hands a `Yielded` result over before calling us.)
            OpStep::Yielded(_) | OpStep::Finished => {
                debug_assert!(matches!(self.step, OpStep::Finished));
                self.step = OpStep::Finished;
                return task::Poll::Ready(Err(Error::usage(
                    "an I/O operation was polled after it completed",
                )));
            }
        }
        // 2. The syscall.
        let r = loop {
            match (self.op)() {
                Ok((v, drained)) => {
                    if drained && let Some(t) = token {
                        rt.reactor.borrow_mut().clear_ready(t, self.dir);
                    }
                    break Ok(v);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // 4. Wait for the edge (registering first if needed).
                    if !waited {
                        rt.count_checkpoint(false, true);
                    }
                    let t = match token {
                        Some(t) => t,
                        None => match self.reg.token_in(rt, self.fd) {
                            Ok(t) => t,
                            Err(e) => return task::Poll::Ready(Err(e)),
                        },
                    };
                    rt.reactor.borrow_mut().clear_ready(t, self.dir);
                    // The cancel check of step 1 still holds unless a wait
                    // came in between, or registering (`token_in`) woke
                    // someone: a foreign waker is code that could cancel.
                    return self.wait(rt, cx, t, waited || token.is_none());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(Error::from(e)),
            }
        };
        if waited {
            return task::Poll::Ready(r);
        }
        if !self.yield_at_end {
            // No step 3: only the cancel point of step 1 is counted.
            rt.count_checkpoint(false, true);
            return task::Poll::Ready(r);
        }
        // 3. The shielded schedule point: this task runs again in the next
        // batch, and the result is returned then. Counted now, with the
        // cancel point of step 1. Passed in place when that next batch
        // would be this task alone.
        rt.count_checkpoint(true, true);
        if rt.pass_schedule_point_in_place() {
            return task::Poll::Ready(r);
        }
        rt.wake_by_ref(cx.waker());
        self.step = OpStep::Yielded(r);
        task::Poll::Pending
    }

    /// Arms the wait for readiness in `dir`. With `check_cancel` it is a
    /// cancel point (Cancelled if the calling code is in a cancelled
    /// scope); without, the caller has just checked in this same poll (see
    /// [`arm_wait`]).
    fn wait(
        &mut self,
        rt: &Runtime,
        cx: &Context<'_>,
        token: usize,
        check_cancel: bool,
    ) -> task::Poll<Result<T>> {
        let begun = rt
            .reactor
            .borrow_mut()
            .begin_op_wait(token, self.dir, rt.run_id);
        self.wait_begun(rt, cx, token, check_cancel, begun)
    }

    /// [`wait`](Self::wait) once the reactor's part has begun (`begun`:
    /// what [`Reactor::begin_op_wait`] said). Inlined: a call here costs
    /// the echo server about 30 instructions per message (callgrind).
    #[inline(always)]
    fn wait_begun(
        &mut self,
        rt: &Runtime,
        cx: &Context<'_>,
        token: usize,
        check_cancel: bool,
        begun: Result<(Option<WaitKey>, bool)>,
    ) -> task::Poll<Result<T>> {
        match arm_wait(
            rt,
            cx,
            token,
            self.dir,
            self.label,
            self.location,
            check_cancel,
            begun,
        ) {
            Ok(w) => {
                self.step = OpStep::Waiting(w);
                task::Poll::Pending
            }
            Err(e) => task::Poll::Ready(Err(e)),
        }
    }
}

impl<T, F> Drop for IoOp<'_, T, F> {
    #[inline]
    fn drop(&mut self) {
        // Dropped while waiting: undo the wait (the backstop, DESIGN §5).
        // The check is inlined (every operation is dropped), the undo not.
        if let OpStep::Waiting(w) = self.step {
            undo_wait(w, self.dir);
        }
    }
}

/// Takes the wait `w` of a dropped [`IoOp`] out of its slot and ends its
/// record's use.
#[cold]
#[inline(never)]
fn undo_wait(w: IoWait, dir: Direction) {
    runtime::with_runtime(|rt| {
        if rt.run_id == w.key.run_id {
            rt.reactor.borrow_mut().remove_waiter(w.token, dir, w.key);
            rt.with_state(|st| st.finish_io_park(w.key.park, w.reusable));
        }
    });
}

impl<T, F> fmt::Debug for IoOp<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.step {
            OpStep::Start => "start",
            OpStep::Waiting(_) => "waiting",
            OpStep::Yielded(_) => "yielded",
            OpStep::Finished => "finished",
        };
        f.debug_struct("IoOp")
            .field("fd", &self.fd)
            .field("label", &self.label)
            .field("step", &step)
            .finish()
    }
}

/// Arms an operation's wait for readiness of the registered source `token`
/// in `dir`, for the current task, under the current cancel status:
/// re-arms the entry's reusable record (see "I/O wait records" in
/// `park`'s module docs) and puts its key in the slot. Cancelled (a
/// completed cancel point) in a cancelled scope; Busy when another
/// operation waits in `dir`; Closed when the source is gone.
///
/// `begun` is what [`Reactor::begin_op_wait`] said for this wait (the
/// caller's look at the entry, which may have been its readiness check).
///
/// Without `check_cancel` the cancel check is skipped: the caller checked
/// in this same poll, with nothing in between that could cancel (a
/// lazily made nursery's cancel status, settled here, is cancelled only
/// if its parent's is, which the caller's check saw).
#[allow(clippy::too_many_arguments)]
fn arm_wait(
    rt: &Runtime,
    cx: &Context<'_>,
    token: usize,
    dir: Direction,
    label: &'static str,
    location: &'static Location<'static>,
    check_cancel: bool,
    begun: Result<(Option<WaitKey>, bool)>,
) -> Result<IoWait> {
    // The entry's record was put in the slot at once (`begun`, by
    // `Reactor::begin_op_wait`), and is replaced below in the rare case
    // that the park table says it cannot be re-armed.
    let (placed, mut evicted) = begun?;
    rt.settle_lazy();
    let status = rt.current_cancel_status.get();
    let task = rt.current_task.get();
    let armed = rt.with_state(|st| {
        if check_cancel && st.is_cancelled(status) {
            return None;
        }
        let existing = placed.map(|k| k.park);
        Some(st.arm_io_park(existing, task, status, label, location, cx.waker()))
    });
    let Some((park, reusable)) = armed else {
        if let Some(k) = placed {
            rt.reactor.borrow_mut().remove_waiter(token, dir, k);
        }
        if evicted {
            settle(rt);
        }
        rt.count_checkpoint(false, true);
        return Err(Error::cancelled());
    };
    let key = WaitKey {
        park,
        run_id: rt.run_id,
    };
    if placed != Some(key) {
        let put = rt
            .reactor
            .borrow_mut()
            .put_op_waiter(token, dir, placed, key, reusable);
        match put {
            Ok(e) => evicted |= e,
            Err(e) => {
                // Not in the slot: the record goes (an entry that still
                // names it finds it gone and makes another).
                rt.with_state(|st| st.finish_io_park(park, false));
                if evicted {
                    settle(rt);
                }
                return Err(e);
            }
        }
    }
    if evicted {
        settle(rt);
    }
    Ok(IoWait {
        token,
        key,
        reusable,
    })
}

/// Polls an armed wait: its outcome once the reactor (readiness) or a
/// close gave it one; Cancelled, with the wait undone, if the calling code
/// is in a cancelled scope; else `Pending`, with `cx`'s waker registered.
#[inline]
fn poll_wait(rt: &Runtime, cx: &Context<'_>, w: IoWait, dir: Direction) -> task::Poll<Result<()>> {
    if rt.run_id != w.key.run_id {
        // Moved to another run while waiting: the wait stays in its run
        // (and is undone there when that run ends).
        return task::Poll::Ready(Err(Error::usage(
            "an I/O operation was polled outside the run that started it",
        )));
    }
    rt.settle_lazy();
    let status = rt.current_cancel_status.get();
    let park = w.key.park;
    let step = rt.with_state(|st| {
        // The common case in one lookup: a reusable record's outcome
        // (what `finish_io_park` does; the wake used up its waker).
        if let Some(p) = st.parks.get_mut(park)
            && w.reusable
            && matches!(p.state, ParkState::Done(_))
        {
            let target = std::mem::take(&mut p.target);
            let state = std::mem::replace(&mut p.state, ParkState::Idle);
            st.retire(target);
            if let ParkState::Done(outcome) = state {
                return WaitStep::Done(outcome);
            }
        }
        let Some(p) = st.parks.get(park) else {
            return WaitStep::Gone;
        };
        match p.state {
            ParkState::Done(_) => {
                WaitStep::Done(st.finish_io_park(park, w.reusable).unwrap_or(Ok(())))
            }
            ParkState::Waiting if st.is_cancelled(status) => WaitStep::Cancelled,
            ParkState::Waiting => {
                st.register_park(park, status, cx.waker());
                WaitStep::Waiting
            }
            ParkState::Idle => WaitStep::Gone,
        }
    });
    match step {
        WaitStep::Waiting => task::Poll::Pending,
        WaitStep::Done(r) => {
            rt.count_checkpoint(true, true);
            task::Poll::Ready(r)
        }
        WaitStep::Gone => {
            rt.count_checkpoint(true, true);
            task::Poll::Ready(Err(closed_error()))
        }
        WaitStep::Cancelled => {
            // Still in the slot (the reactor takes keys out only in the run
            // loop, and would have given an outcome): undo, then done.
            rt.reactor.borrow_mut().remove_waiter(w.token, dir, w.key);
            rt.with_state(|st| st.finish_io_park(park, w.reusable));
            rt.count_checkpoint(false, true);
            task::Poll::Ready(Err(Error::cancelled()))
        }
    }
}

/// The poll waiters, seen from inside: the reactor's slots and the park
/// table, which the public API cannot show.
#[cfg(test)]
mod poll_waiter_tests {
    use super::*;
    use crate::ErrorKind;
    use crate::socket::SocketStream;
    use crate::stream::{AsyncResource, ReceiveStream, SendStream, Stream};
    use crate::testing::wait_all_tasks_blocked;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    /// A foreign waker that counts its wakes.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        (Arc::clone(&c), Waker::from(c))
    }

    fn wakes(c: &Counter) -> usize {
        c.0.load(Ordering::SeqCst)
    }

    /// (fds waited on, park records) in the current run.
    fn tables() -> (usize, usize) {
        let rt = runtime::current().unwrap();
        let waiting = rt.reactor.borrow().waiting;
        let parks = rt.state.borrow().parks.len();
        (waiting, parks)
    }

    fn poll_receive(s: &SocketStream, w: &Waker, buf: &mut [u8]) -> task::Poll<Result<usize>> {
        s.poll_receive(&mut Context::from_waker(w), buf)
    }

    fn run(f: impl AsyncFnOnce() -> Result<()>) {
        crate::run(f()).unwrap();
    }

    #[test]
    fn data_queued_is_received_without_registering_a_waiter() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            a.send_all(b"ready").await?;
            let before = tables();
            let (c, w) = counter();
            let mut buf = [0; 16];
            assert!(matches!(
                poll_receive(&b, &w, &mut buf),
                task::Poll::Ready(Ok(5))
            ));
            assert_eq!(&buf[..5], b"ready");
            assert_eq!(tables(), before, "no waiter, no park record");
            assert_eq!(wakes(&c), 0);
            Ok(())
        });
    }

    #[test]
    fn a_pending_poll_registers_its_waker_and_the_reactor_wakes_it() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            let (waiting, parks) = tables();
            let (c, w) = counter();
            let mut buf = [0; 16];
            assert!(poll_receive(&b, &w, &mut buf).is_pending());
            assert_eq!(tables(), (waiting + 1, parks + 1));
            // Polled again with the same waker: still one registration.
            assert!(poll_receive(&b, &w, &mut buf).is_pending());
            assert_eq!(tables(), (waiting + 1, parks + 1));
            a.send_all(b"x").await?;
            wait_all_tasks_blocked().await?;
            assert_eq!(wakes(&c), 1, "woken once by the readiness edge");
            // The slot is free again; the record stays, for re-use.
            assert_eq!(tables(), (waiting, parks + 1));
            assert!(matches!(
                poll_receive(&b, &w, &mut buf),
                task::Poll::Ready(Ok(1))
            ));
            // Drained: the next poll registers again, re-using the record.
            assert!(poll_receive(&b, &w, &mut buf).is_pending());
            assert_eq!(tables(), (waiting + 1, parks + 1));
            Ok(())
        });
    }

    #[test]
    fn the_last_waker_wins() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            let (first, w1) = counter();
            let (second, w2) = counter();
            let mut buf = [0; 16];
            assert!(poll_receive(&b, &w1, &mut buf).is_pending());
            assert!(poll_receive(&b, &w2, &mut buf).is_pending());
            a.send_all(b"x").await?;
            wait_all_tasks_blocked().await?;
            assert_eq!((wakes(&first), wakes(&second)), (0, 1));
            Ok(())
        });
    }

    #[test]
    fn closing_wakes_the_poller_and_removes_its_record() {
        run(async || {
            let (_a, b) = SocketStream::unix_pair()?;
            let before = tables();
            let (c, w) = counter();
            let mut buf = [0; 16];
            assert!(poll_receive(&b, &w, &mut buf).is_pending());
            b.aclose().await?;
            assert_eq!(wakes(&c), 1, "woken by the close");
            assert_eq!(tables(), before, "slot and record gone");
            let e = match poll_receive(&b, &w, &mut buf) {
                task::Poll::Ready(Err(e)) => e,
                other => panic!("{other:?}"),
            };
            assert_eq!(e.kind(), ErrorKind::Closed);
            Ok(())
        });
    }

    #[test]
    fn dropping_the_socket_removes_a_finished_record_too() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            let before = tables();
            let (_c, w) = counter();
            let mut buf = [0; 16];
            assert!(poll_receive(&b, &w, &mut buf).is_pending());
            a.send_all(b"x").await?;
            wait_all_tasks_blocked().await?; // the record is done, not in a slot
            drop(b);
            assert_eq!(tables(), before);
            Ok(())
        });
    }

    #[test]
    fn an_operation_takes_over_from_a_poller_which_then_is_busy() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            let (c, w) = counter();
            let mut buf = [0; 16];
            assert!(poll_receive(&b, &w, &mut buf).is_pending());
            crate::open_nursery(async |n| {
                n.start_soon(async {
                    let mut buf = [0; 16];
                    assert_eq!(b.receive_some(&mut buf).await?, 2);
                    Ok(())
                });
                wait_all_tasks_blocked().await?;
                assert_eq!(wakes(&c), 1, "the evicted poller is told");
                let mut buf = [0; 16];
                let e = match poll_receive(&b, &w, &mut buf) {
                    task::Poll::Ready(Err(e)) => e,
                    other => panic!("{other:?}"),
                };
                assert_eq!(e.kind(), ErrorKind::Busy);
                a.send_all(b"hi").await?;
                Ok(())
            })
            .await?;
            Ok(())
        });
    }

    #[test]
    fn end_of_stream_and_broken_are_per_direction() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            let (_c, w) = counter();
            let mut cx = Context::from_waker(&w);
            b.send_all(b"last").await?;
            b.send_eof().await?;
            match b.poll_send(&mut cx, b"x") {
                task::Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Closed),
                other => panic!("{other:?}"),
            }
            let mut buf = [0; 16];
            assert!(matches!(
                a.poll_receive(&mut cx, &mut buf),
                task::Poll::Ready(Ok(4))
            ));
            assert!(matches!(
                a.poll_receive(&mut cx, &mut buf),
                task::Poll::Ready(Ok(0))
            ));
            drop(b);
            // The peer has gone: sends fail (EPIPE), and it sticks.
            for _ in 0..2 {
                match a.poll_send(&mut cx, b"x") {
                    task::Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Broken),
                    other => panic!("{other:?}"),
                }
            }
            // Receiving is another direction: still the end of stream.
            assert!(matches!(
                a.poll_receive(&mut cx, &mut buf),
                task::Poll::Ready(Ok(0))
            ));
            Ok(())
        });
    }

    #[test]
    fn socket_poll_methods_accept_and_move_datagrams() {
        use crate::socket::{Domain, Socket, SocketListener, Type};
        run(async || {
            let (c, w) = counter();
            let mut cx = Context::from_waker(&w);
            // Datagrams: a receive that waits, woken by the send.
            let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM, None)?;
            let mut buf = [0; 16];
            assert!(b.poll_recv_from(&mut cx, &mut buf).is_pending());
            assert!(matches!(
                a.poll_send(&mut cx, b"dgram"),
                task::Poll::Ready(Ok(5))
            ));
            wait_all_tasks_blocked().await?;
            assert_eq!(wakes(&c), 1);
            match b.poll_recv(&mut cx, &mut buf) {
                task::Poll::Ready(Ok(5)) => assert_eq!(&buf[..5], b"dgram"),
                other => panic!("{other:?}"),
            }
            // Accept: pending until a connection arrives.
            let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
            let addr = listener.local_addr()?.as_socket().unwrap();
            let l = listener.socket()?;
            assert!(l.poll_accept(&mut cx).is_pending());
            let _client = SocketStream::connect_tcp(addr).await?;
            wait_all_tasks_blocked().await?;
            assert_eq!(wakes(&c), 2);
            match l.poll_accept(&mut cx) {
                task::Poll::Ready(Ok((conn, _))) => {
                    assert!(conn.peer_addr()?.as_socket().is_some())
                }
                other => panic!("{other:?}"),
            }
            Ok(())
        });
    }

    #[test]
    fn a_full_send_buffer_registers_and_is_woken_when_drained() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            let (c, w) = counter();
            let mut cx = Context::from_waker(&w);
            let chunk = [0u8; 64 * 1024];
            let mut sent = 0;
            while let task::Poll::Ready(r) = a.poll_send(&mut cx, &chunk) {
                sent += r?;
            }
            assert!(sent > 0);
            let mut buf = vec![0; 1 << 20];
            let mut got = 0;
            while got < sent {
                got += b.receive_some(&mut buf).await?;
            }
            wait_all_tasks_blocked().await?;
            assert_eq!(wakes(&c), 1);
            assert!(matches!(
                a.poll_send(&mut cx, &chunk),
                task::Poll::Ready(Ok(_))
            ));
            Ok(())
        });
    }
}

/// The operations' wait records ("Operations" in the module docs), seen
/// from inside: the reactor's slots and the park table.
#[cfg(test)]
mod op_wait_tests {
    use super::*;
    use crate::ErrorKind;
    use crate::socket::{Domain, Socket, SocketStream, Type};
    use crate::stream::{ReceiveStream, SendStream, Stream};
    use crate::testing::wait_all_tasks_blocked;
    use std::pin::pin;
    use std::task::Waker;

    /// (fds waited on, park records) in the current run.
    fn tables() -> (usize, usize) {
        let rt = runtime::current().unwrap();
        let waiting = rt.reactor.borrow().waiting;
        let parks = rt.state.borrow().parks.len();
        (waiting, parks)
    }

    /// The reusable wait records (`[read, write]`) of a registered socket.
    fn op_parks(s: &Socket) -> [Option<ParkId>; 2] {
        let rt = runtime::current().unwrap();
        let token = s.registration().token_here(&rt).expect("registered");
        let mut reactor = rt.reactor.borrow_mut();
        reactor.entry(token).expect("live").op_parks
    }

    fn run(f: impl AsyncFnOnce() -> Result<()>) {
        crate::run(f()).unwrap();
    }

    #[test]
    fn an_echo_loop_reuses_one_record_per_direction() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            crate::open_nursery(async |n| {
                n.start_soon(async {
                    let mut buf = [0; 64];
                    loop {
                        let k = b.receive_some(&mut buf).await?;
                        if k == 0 {
                            return Ok(());
                        }
                        b.send_all(&buf[..k]).await?;
                    }
                });
                let mut seen = None;
                let mut buf = [0; 64];
                for _ in 0..20 {
                    a.send_all(b"ping").await?;
                    assert_eq!(a.receive_some(&mut buf).await?, 4);
                    // Both tasks blocked in the same places each time.
                    wait_all_tasks_blocked().await?;
                    let now = (tables(), op_parks(&*b.socket()?));
                    assert!(now.1[0].is_some(), "the echo waits to read");
                    assert_eq!(*seen.get_or_insert(now), now, "same records, same keys");
                }
                a.send_eof().await?;
                Ok(())
            })
            .await?;
            Ok(())
        });
    }

    #[test]
    fn a_wait_with_its_record_ready_still_evicts_a_poller() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Counter(AtomicUsize);
        impl std::task::Wake for Counter {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            let mut buf = [0; 8];
            // A first wait makes the reusable record.
            crate::open_nursery(async |n| {
                n.start_soon(async {
                    let mut buf = [0; 8];
                    b.receive_some(&mut buf).await.map(drop)
                });
                wait_all_tasks_blocked().await?;
                a.send_all(b"1").await
            })
            .await?;
            assert!(op_parks(&*b.socket()?)[0].is_some());
            let c = Arc::new(Counter(AtomicUsize::new(0)));
            let w = Waker::from(Arc::clone(&c));
            let mut cx = Context::from_waker(&w);
            assert!(b.poll_receive(&mut cx, &mut buf).is_pending());
            crate::open_nursery(async |n| {
                n.start_soon(async {
                    let mut buf = [0; 8];
                    assert_eq!(b.receive_some(&mut buf).await?, 1);
                    Ok(())
                });
                wait_all_tasks_blocked().await?;
                assert_eq!(c.0.load(Ordering::SeqCst), 1, "the poller is told");
                match b.poll_receive(&mut cx, &mut buf) {
                    task::Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Busy),
                    other => panic!("{other:?}"),
                }
                a.send_all(b"2").await
            })
            .await?;
            Ok(())
        });
    }

    #[test]
    fn a_wait_that_finds_the_record_busy_gets_its_own() {
        run(async || {
            let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM, None)?;
            let before = tables();
            let w = Waker::noop();
            let mut cx = Context::from_waker(w);
            let (mut buf1, mut buf2) = ([0; 16], [0; 16]);
            let mut first = pin!(b.recv(&mut buf1));
            assert!(first.as_mut().poll(&mut cx).is_pending());
            assert_eq!(tables(), (before.0 + 1, before.1 + 1));
            a.send(b"x").await?;
            wait_all_tasks_blocked().await?;
            // The first wait is over (readiness), its record not yet
            // polled. Someone takes the datagram behind the cache's back.
            let mut raw = [0; 16];
            assert_eq!(std::io::Read::read(&mut b.as_socket2(), &mut raw)?, 1);
            let mut second = pin!(b.recv(&mut buf2));
            assert!(second.as_mut().poll(&mut cx).is_pending());
            assert_eq!(
                tables(),
                (before.0 + 1, before.1 + 2),
                "a record of its own"
            );
            // The first tries again and finds the second waiting: Busy.
            match first.as_mut().poll(&mut cx) {
                task::Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Busy),
                other => panic!("{other:?}"),
            }
            a.send(b"y").await?;
            wait_all_tasks_blocked().await?;
            assert!(matches!(
                second.as_mut().poll(&mut cx),
                task::Poll::Ready(Ok(1))
            ));
            assert_eq!(tables(), (before.0, before.1 + 1), "its own record went");
            Ok(())
        });
    }

    #[test]
    fn a_cancelled_wait_is_undone_and_the_next_one_works() {
        run(async || {
            let (a, b) = SocketStream::unix_pair()?;
            let before = tables();
            crate::open_nursery(async |n| {
                n.start_soon(async {
                    let mut buf = [0; 8];
                    b.receive_some(&mut buf).await.map(drop)
                });
                wait_all_tasks_blocked().await?;
                assert_eq!(tables().0, before.0 + 1);
                n.cancel_scope().cancel();
                Ok(())
            })
            .await?;
            assert_eq!(
                tables(),
                (before.0, before.1 + 1),
                "undone; the record stays"
            );
            a.send_all(b"x").await?;
            let mut buf = [0; 8];
            assert_eq!(b.receive_some(&mut buf).await?, 1);
            // Under another cancel status: the record was replaced, not added.
            assert_eq!(tables(), (before.0, before.1 + 1));
            Ok(())
        });
    }

    #[test]
    fn dropping_a_waiting_operation_undoes_its_wait() {
        run(async || {
            let (_a, b) = SocketStream::unix_pair()?;
            let before = tables();
            let mut buf = [0; 8];
            {
                let mut cx = Context::from_waker(Waker::noop());
                let mut op = pin!(b.receive_some(&mut buf));
                assert!(op.as_mut().poll(&mut cx).is_pending());
                assert_eq!(tables(), (before.0 + 1, before.1 + 1));
            }
            assert_eq!(tables(), (before.0, before.1 + 1));
            // The slot is free: another receive may wait.
            let r =
                crate::move_on_after(std::time::Duration::ZERO, b.receive_some(&mut buf)).await?;
            assert_eq!(r, None);
            Ok(())
        });
    }

    #[test]
    fn closing_ends_the_wait_and_removes_the_records() {
        run(async || {
            let (_a, b) = SocketStream::unix_pair()?;
            let before = tables();
            crate::open_nursery(async |n| {
                n.start_soon(async {
                    let mut buf = [0; 8];
                    let e = b.receive_some(&mut buf).await.unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::Closed);
                    Ok(())
                });
                wait_all_tasks_blocked().await?;
                crate::stream::AsyncResource::aclose(&b).await
            })
            .await?;
            assert_eq!(tables(), before);
            Ok(())
        });
    }
}
