//! Task wakers that cost nothing to create, clone or drop.
//!
//! A waker here is not a pointer: its data word *is* the address of the task
//! — slot index, the low 16 bits of the slot's generation, and the low 16 bits
//! of the run's id — with a static vtable. Cloning copies the word, dropping
//! does nothing, and there is no reference count and no allocation per task.
//!
//! Waking decodes the word. On the run's own thread (the common case) the
//! task is scheduled directly in the run's tables; anywhere else the word is
//! posted to the run's inbox, found through a global registry of live runs,
//! and the run loop is woken. A waker that outlives its task or its run finds
//! a stale generation or no run and does nothing; the 16-bit parts mean a
//! very old waker can, rarely, wake some other task spuriously, which every
//! future must tolerate anyway.
//!
//! This is the only module with `unsafe`: the vtable functions must be
//! `unsafe fn` and `Waker::from_raw` is `unsafe`. None of them dereferences the
//! data word, so the contract of `RawWaker` (the functions are thread-safe and
//! clone/drop balance) holds trivially.

use crate::core::slab::Key;
use std::task::{RawWaker, RawWakerVTable, Waker};

// A `static`, not a `const`, so that its address is unique and `is_ours` can
// compare vtable pointers reliably.
static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

#[cfg(not(target_pointer_width = "64"))]
compile_error!("trio's waker encoding needs 64-bit pointers");

/// The parts a waker word carries.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct WakerWord {
    pub(crate) run: u16,
    pub(crate) index: u32,
    pub(crate) short_gen: u16,
}

impl WakerWord {
    pub(crate) fn new(run_id: u32, task: Key) -> Self {
        WakerWord {
            run: run_id as u16,
            index: task.index,
            short_gen: task.generation as u16,
        }
    }

    pub(crate) fn encode(self) -> usize {
        (self.index as usize) | ((self.short_gen as usize) << 32) | ((self.run as usize) << 48)
    }

    pub(crate) fn decode(word: usize) -> Self {
        WakerWord {
            index: word as u32,
            short_gen: (word >> 32) as u16,
            run: (word >> 48) as u16,
        }
    }
}

/// A waker for `task` in run `run_id`.
pub(crate) fn task_waker(word: WakerWord) -> Waker {
    let raw = RawWaker::new(std::ptr::without_provenance(word.encode()), &VTABLE);
    // SAFETY: the vtable functions never dereference the data word (it is an
    // integer, not a pointer), are callable from any thread, and clone/drop
    // hold no resources, so every requirement of `RawWaker` is met.
    unsafe { Waker::from_raw(raw) }
}

/// The word of one of our wakers, or `None` for a foreign waker.
pub(crate) fn decode_ours(waker: &Waker) -> Option<WakerWord> {
    if std::ptr::eq(waker.vtable(), &VTABLE) {
        Some(WakerWord::decode(waker.data().addr()))
    } else {
        None
    }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    crate::core::runtime::wake_word(WakerWord::decode(data.addr()));
}

unsafe fn wake_by_ref(data: *const ()) {
    crate::core::runtime::wake_word(WakerWord::decode(data.addr()));
}

unsafe fn drop_waker(_: *const ()) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let w = WakerWord::new(
            0x1_2345,
            Key {
                index: 0xdead_beef,
                generation: 0x7_0042,
            },
        );
        assert_eq!(WakerWord::decode(w.encode()), w);
        let waker = task_waker(w);
        assert_eq!(decode_ours(&waker.clone()), Some(w));
        assert_eq!(decode_ours(Waker::noop()), None);
    }
}
