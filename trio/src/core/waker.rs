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
//! Clones are counted per run (see the vtables below), which is how
//! deadlock detection knows whether anything outside the runtime could
//! still wake a task.
//!
//! This is the only module with `unsafe`: the vtable functions must be
//! `unsafe fn` and `Waker::from_raw` is `unsafe`. None of them dereferences the
//! data word, so the contract of `RawWaker` (the functions are thread-safe and
//! clone/drop balance) holds trivially.

use crate::core::slab::Key;
use std::task::{RawWaker, RawWakerVTable, Waker};

// `static`s, not `const`s, so that their addresses are unique and
// `decode_ours` can compare vtable pointers reliably.
//
// Two kinds of waker share one encoding. A *plain* waker is what the runtime
// hands to a poll and keeps in its own tables: creating and dropping it is
// free. A *counted* waker is any clone made from one: clones are what leaves
// the runtime (into a foreign future, a channel, another thread), so the run
// counts them; while any exists, something outside trio's own waits might
// still wake a task, and the run must not call itself deadlocked.
static PLAIN: RawWakerVTable = RawWakerVTable::new(clone, wake_plain, wake_by_ref, drop_plain);
static COUNTED: RawWakerVTable =
    RawWakerVTable::new(clone, wake_counted, wake_by_ref, drop_counted);

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

fn make(word: usize, vtable: &'static RawWakerVTable) -> Waker {
    let raw = RawWaker::new(std::ptr::without_provenance(word), vtable);
    // SAFETY: the vtable functions never dereference the data word (it is an
    // integer, not a pointer), are callable from any thread, and hold no
    // resources (a counted waker's count lives in the run, found by the
    // word), so every requirement of `RawWaker` is met.
    unsafe { Waker::from_raw(raw) }
}

/// A plain (uncounted) waker for `task` in run `run_id`.
pub(crate) fn task_waker(word: WakerWord) -> Waker {
    make(word.encode(), &PLAIN)
}

/// The word of one of our wakers, or `None` for a foreign waker.
pub(crate) fn decode_ours(waker: &Waker) -> Option<WakerWord> {
    let vt = waker.vtable();
    if std::ptr::eq(vt, &PLAIN) || std::ptr::eq(vt, &COUNTED) {
        Some(WakerWord::decode(waker.data().addr()))
    } else {
        None
    }
}

/// Our waker as a plain one (for the runtime's own tables), or a clone of a
/// foreign one.
pub(crate) fn to_plain(waker: &Waker) -> Waker {
    match decode_ours(waker) {
        Some(word) => task_waker(word),
        None => waker.clone(),
    }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    crate::core::runtime::count_foreign_waker(WakerWord::decode(data.addr()), 1);
    RawWaker::new(data, &COUNTED)
}

unsafe fn wake_plain(data: *const ()) {
    crate::core::runtime::wake_word(WakerWord::decode(data.addr()));
}

unsafe fn wake_counted(data: *const ()) {
    let word = WakerWord::decode(data.addr());
    crate::core::runtime::wake_word(word);
    crate::core::runtime::count_foreign_waker(word, -1);
}

unsafe fn wake_by_ref(data: *const ()) {
    crate::core::runtime::wake_word(WakerWord::decode(data.addr()));
}

unsafe fn drop_plain(_: *const ()) {}

unsafe fn drop_counted(data: *const ()) {
    crate::core::runtime::count_foreign_waker(WakerWord::decode(data.addr()), -1);
}

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
        assert_eq!(decode_ours(&to_plain(&waker.clone())), Some(w));
        assert_eq!(decode_ours(Waker::noop()), None);
    }
}
