//! [`BusySlot`]: detects two tasks using one direction of a stream at once
//! (Trio's `ConflictDetector`; the same rule as trio's own streams, whose
//! helper is private to `trio`).
//!
//! A slot is a flag; [`BusySlot::enter`] raises it and returns a guard that
//! lowers it when dropped, whether the operation finished, failed, was
//! cancelled or its future was dropped. Entering a raised slot is an
//! [`ErrorKind::Busy`] error at once, with no checkpoint.

use std::cell::Cell;
use trio::{Error, ErrorKind, Result};

/// One direction of a stream that one task at a time may use.
pub(crate) struct BusySlot {
    busy: Cell<bool>,
    /// The message of the `Busy` error.
    what: &'static str,
}

impl BusySlot {
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

    pub(crate) fn is_busy(&self) -> bool {
        self.busy.get()
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
