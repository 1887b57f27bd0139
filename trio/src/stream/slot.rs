//! [`BusySlot`]: detects two tasks using one direction of a stream at once
//! (Trio's `ConflictDetector`).
//!
//! A slot is a flag; [`BusySlot::enter`] raises it and returns a guard that
//! lowers it when dropped, whether the operation finished, failed, was
//! cancelled or its future was dropped. Entering a raised slot is an
//! [`ErrorKind::Busy`] error at once, with no checkpoint: the caller is
//! misusing the stream, and waiting would hide that.
//!
//! Public so that stream implementations outside this crate (`trio-tls`,
//! a user's own) follow the same rule with the same error.

use crate::error::{Error, ErrorKind, Result};
use std::cell::Cell;
use std::fmt;

/// One direction of a stream that one task at a time may use (Trio's
/// `ConflictDetector`): for implementing the Busy rule of the
/// [stream traits](crate::stream).
///
/// ```
/// use trio::ErrorKind;
/// use trio::stream::BusySlot;
///
/// let sending = BusySlot::new("another task is already sending on this stream");
/// let guard = sending.enter().unwrap();
/// assert_eq!(sending.enter().unwrap_err().kind(), ErrorKind::Busy);
/// drop(guard); // however the operation ended
/// assert!(!sending.is_busy());
/// ```
pub struct BusySlot {
    busy: Cell<bool>,
    /// The message of the `Busy` error.
    what: &'static str,
}

impl BusySlot {
    /// A free slot; `what` is the message of its `Busy` error ("another task
    /// is already sending on this stream").
    pub const fn new(what: &'static str) -> Self {
        BusySlot {
            busy: Cell::new(false),
            what,
        }
    }

    /// Takes the slot until the guard is dropped; `Busy` if it is taken.
    // Inlined: it runs at the start of every stream operation, and as a
    // call it cost ~20 instructions per echoed message (callgrind).
    #[inline]
    pub fn enter(&self) -> Result<SlotGuard<'_>> {
        if self.busy.replace(true) {
            return Err(self.busy_error());
        }
        Ok(SlotGuard { slot: self })
    }

    /// The `Busy` error, out of line: the misuse is rare.
    #[cold]
    fn busy_error(&self) -> Error {
        Error::new(ErrorKind::Busy, self.what)
    }

    /// Whether a task holds the slot.
    pub fn is_busy(&self) -> bool {
        self.busy.get()
    }
}

impl fmt::Debug for BusySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusySlot")
            .field("busy", &self.busy.get())
            .finish()
    }
}

/// Holds a [`BusySlot`] until dropped.
#[must_use = "the slot is free again as soon as the guard is dropped"]
#[derive(Debug)]
pub struct SlotGuard<'a> {
    slot: &'a BusySlot,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.slot.busy.set(false);
    }
}
