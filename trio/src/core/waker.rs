//! Task wakers: free inside the runtime, counted and self-contained outside.
//!
//! Two kinds of waker name a task:
//!
//! - A **plain** waker is what the runtime hands to a poll and keeps in its
//!   own tables. It is not a pointer: its data word *is* the task's address
//!   (slot index, the low 16 bits of the slot's generation, and the low 16
//!   bits of the run's id) with a static vtable, so creating, copying and
//!   dropping one costs nothing. A plain waker never outlives its run: the
//!   runtime's tables go with the run, and anything else can only borrow one
//!   during a poll. Live runs have distinct 16-bit ids (`token`), so the word
//!   is unambiguous whenever it can be used.
//! - A **counted** waker is any clone of a waker: clones are what leave the
//!   runtime (into a foreign future, a channel, another thread). It points
//!   to a small reference-counted [`OutsideWaker`] that holds the run's
//!   [`Shared`] block and the task's full key. It needs no registry and no
//!   lock: on the run's thread it schedules the task directly; anywhere else
//!   it posts to its own run's inbox. A waker of a run that has ended finds
//!   that run's inbox closed and does nothing, however old it is, and can
//!   never touch a later run.
//!
//! Each `OutsideWaker` is counted in its run's inbox while it lives, which is
//! how deadlock detection knows whether anything outside the runtime could
//! still wake a task. Cloning a counted waker only bumps the reference count.
//!
//! Nothing here touches a thread-local that may be gone: while a thread's
//! thread-locals are being destroyed, every path falls back to posting.
//!
//! This is the only module with `unsafe`: the vtable functions must be
//! `unsafe fn`, `Waker::from_raw` is `unsafe`, and a counted waker's data
//! pointer is an `Arc` turned into a raw pointer and back.

use crate::core::inbox::WakeRef;
use crate::core::runtime;
use crate::core::slab::Key;
use crate::core::token::Shared;
use std::sync::Arc;
use std::task::{RawWaker, RawWakerVTable, Waker};

// `static`s, not `const`s, so that their addresses are unique and
// `classify` can compare vtable pointers reliably.
static PLAIN: RawWakerVTable = RawWakerVTable::new(clone_plain, wake_plain, wake_plain, drop_plain);
static COUNTED: RawWakerVTable = RawWakerVTable::new(
    clone_counted,
    wake_counted,
    wake_by_ref_counted,
    drop_counted,
);

#[cfg(not(target_pointer_width = "64"))]
compile_error!("trio's waker encoding needs 64-bit pointers");

/// The parts a plain waker's word carries.
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

    fn encode(self) -> usize {
        (self.index as usize) | ((self.short_gen as usize) << 32) | ((self.run as usize) << 48)
    }

    fn decode(word: usize) -> Self {
        WakerWord {
            index: word as u32,
            short_gen: (word >> 32) as u16,
            run: (word >> 48) as u16,
        }
    }

    pub(crate) fn task_ref(self) -> WakeRef {
        self.wake_ref()
    }

    fn wake_ref(self) -> WakeRef {
        WakeRef {
            index: self.index,
            generation: self.short_gen as u32,
            exact: false,
        }
    }
}

/// What a counted waker points to. See the module docs.
pub(crate) struct OutsideWaker {
    shared: Arc<Shared>,
    /// The task: its full key when the clone was made on the run's thread
    /// (always, in practice), else what the plain word knew.
    task: WakeRef,
}

impl Drop for OutsideWaker {
    fn drop(&mut self) {
        let on_run_thread = runtime::is_current_run(&self.shared);
        let posted = self.shared.inbox.outside_waker_dropped(on_run_thread);
        self.shared.notify(posted);
    }
}

// Counted wakers are used from any thread: what they point to must allow it.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<OutsideWaker>();
};

/// A waker of ours, taken apart.
pub(crate) enum OurWaker<'a> {
    Plain(WakerWord),
    Counted(&'a OutsideWaker),
}

impl OurWaker<'_> {
    /// The task this waker names, if it belongs to the run with this id and
    /// `Shared` block.
    pub(crate) fn task_in(&self, run_id: u32, shared_addr: usize) -> Option<WakeRef> {
        match self {
            OurWaker::Plain(w) if w.run == run_id as u16 => Some(w.wake_ref()),
            OurWaker::Counted(o) if Arc::as_ptr(&o.shared).addr() == shared_addr => Some(o.task),
            _ => None,
        }
    }
}

/// A plain waker for `task` of run `run_id`.
pub(crate) fn task_waker(word: WakerWord) -> Waker {
    let raw = RawWaker::new(std::ptr::without_provenance(word.encode()), &PLAIN);
    // SAFETY: PLAIN's functions never dereference the data word (it is an
    // integer, not a pointer), are callable from any thread, and hold no
    // resources, so every requirement of `RawWaker` is met.
    unsafe { Waker::from_raw(raw) }
}

/// One of our wakers taken apart, or `None` for a foreign waker.
pub(crate) fn classify(waker: &Waker) -> Option<OurWaker<'_>> {
    let vt = waker.vtable();
    if std::ptr::eq(vt, &PLAIN) {
        Some(OurWaker::Plain(WakerWord::decode(waker.data().addr())))
    } else if std::ptr::eq(vt, &COUNTED) {
        // SAFETY: a COUNTED waker's data pointer came from `Arc::into_raw`
        // of an `OutsideWaker` (in `clone_plain`), and the waker holds one
        // strong count, so the value lives at least as long as `waker`,
        // which the returned reference borrows.
        Some(OurWaker::Counted(unsafe {
            &*waker.data().cast::<OutsideWaker>()
        }))
    } else {
        None
    }
}

unsafe fn clone_plain(data: *const ()) -> RawWaker {
    let word = WakerWord::decode(data.addr());
    // A plain waker is only ever used while its run is alive, so the run is
    // found; if not (a misuse we cannot rule out), the clone is inert.
    match runtime::shared_of_run(word.run) {
        Some(shared) => {
            shared.inbox.outside_waker_made();
            let task = runtime::exact_task(&shared, word.wake_ref());
            let outside = Arc::new(OutsideWaker { shared, task });
            RawWaker::new(Arc::into_raw(outside).cast(), &COUNTED)
        }
        None => RawWaker::new(data, &PLAIN),
    }
}

unsafe fn wake_plain(data: *const ()) {
    let word = WakerWord::decode(data.addr());
    if !runtime::wake_local(word.run, word.wake_ref())
        && let Some(shared) = runtime::shared_of_run(word.run)
    {
        let posted = shared.inbox.post_wake(word.wake_ref());
        shared.notify(posted);
    }
}

unsafe fn drop_plain(_: *const ()) {}

unsafe fn clone_counted(data: *const ()) -> RawWaker {
    // SAFETY: `data` came from `Arc::into_raw` of an `OutsideWaker` and the
    // waker being cloned holds a strong count, so the count is at least one.
    unsafe { Arc::increment_strong_count(data.cast::<OutsideWaker>()) };
    RawWaker::new(data, &COUNTED)
}

unsafe fn wake_counted(data: *const ()) {
    // SAFETY: as in `wake_by_ref_counted`; then this consumes the waker's
    // strong count, as `wake` must.
    unsafe {
        wake_by_ref_counted(data);
        drop_counted(data);
    }
}

unsafe fn wake_by_ref_counted(data: *const ()) {
    // SAFETY: `data` came from `Arc::into_raw` of an `OutsideWaker`, kept
    // alive by the strong count of the waker this is called on.
    let outside = unsafe { &*data.cast::<OutsideWaker>() };
    let wake = outside.task;
    if !runtime::wake_local_in(&outside.shared, wake) {
        let posted = outside.shared.inbox.post_wake(wake);
        outside.shared.notify(posted);
    }
}

unsafe fn drop_counted(data: *const ()) {
    // SAFETY: `data` came from `Arc::into_raw` of an `OutsideWaker`, and
    // the waker being dropped owns one strong count, released here.
    unsafe { Arc::decrement_strong_count(data.cast::<OutsideWaker>()) };
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
        assert!(matches!(classify(&waker), Some(OurWaker::Plain(x)) if x == w));
        // Outside a run a plain waker's clone stays plain (inert).
        assert!(matches!(classify(&waker.clone()), Some(OurWaker::Plain(x)) if x == w));
        assert!(classify(Waker::noop()).is_none());
    }
}
