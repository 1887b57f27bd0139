//! [`BusySlot`]: detects two tasks using one direction of a stream at once
//! (Trio's `ConflictDetector`).
//!
//! A slot is a flag; [`BusySlot::enter`] raises it and returns a guard that
//! lowers it when dropped, whether the operation finished, failed, was
//! cancelled or its future was dropped. Entering a raised slot is an
//! [`ErrorKind::Busy`] error at once, with no checkpoint: the caller is
//! misusing the stream, and waiting would hide that.

use crate::error::{Error, ErrorKind, Result};
use std::cell::Cell;
use std::fmt;

/// One direction of a stream that one task at a time may use.
pub(crate) struct BusySlot {
    busy: Cell<bool>,
    /// The message of the `Busy` error.
    what: &'static str,
}

impl BusySlot {
    /// A free slot; `what` is the message of its `Busy` error ("another task
    /// is already sending on this stream").
    pub(crate) const fn new(what: &'static str) -> Self {
        BusySlot {
            busy: Cell::new(false),
            what,
        }
    }

    /// Takes the slot until the guard is dropped; `Busy` if it is taken.
    pub(crate) fn enter(&self) -> Result<SlotGuard<'_>> {
        if self.busy.replace(true) {
            return Err(Error::new(ErrorKind::Busy, self.what));
        }
        Ok(SlotGuard { slot: self })
    }

    /// Whether a task holds the slot.
    pub(crate) fn is_busy(&self) -> bool {
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
pub(crate) struct SlotGuard<'a> {
    slot: &'a BusySlot,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.slot.busy.set(false);
    }
}
