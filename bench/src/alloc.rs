//! A counting `#[global_allocator]`: [`System`] plus a live-byte counter.
//!
//! Every allocation adds its size to a counter and every deallocation
//! subtracts it, so [`live_bytes`] is "bytes currently allocated by this
//! thread, minus bytes it has freed". The memory figure of the benchmark is
//! the difference of two readings taken on the runtime's own thread (all three
//! runtimes are single-threaded), divided by the number of tasks spawned in
//! between.
//!
//! The counter is thread-local, not a global atomic: an uncontended
//! `lock xadd` on every allocation would cost a few nanoseconds, which is a
//! measurable share of a ~50 ns spawn and would pull every timing ratio
//! towards 1. A plain `Cell` add is about one cycle. The thread-local is
//! `const`-initialised and has no destructor, so reading it never allocates,
//! never registers a TLS destructor and therefore never re-enters the
//! allocator. Threads other than the benchmark thread (e.g. a helper thread of
//! `async-io`) keep their own counters, which nobody reads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Adjusts the current thread's live-byte counter.
#[inline]
fn add(delta: isize) {
    // `try_with` only fails after the TLS slot is torn down; with a
    // const-initialised, destructor-free slot that does not happen on Linux,
    // but an allocator must never panic, so a miss is silently ignored.
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_add(delta)));
}

/// Bytes allocated and not yet freed by the current thread since it started.
///
/// Only differences between two readings are meaningful: memory allocated on
/// one thread and freed on another is counted on both.
pub fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

/// [`System`] with per-thread byte accounting; see the module docs.
pub struct Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements `GlobalAlloc` correctly, and returns exactly what `System`
// returned; the only extra work is arithmetic on a thread-local `Cell` that
// neither allocates nor unwinds, so all of the trait's contract (layout
// fidelity, no unwinding, no re-entrancy) is inherited from `System`.
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller guarantees `layout` has a non-zero size, which is
        // all `System.alloc` requires.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(layout.size() as isize);
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(layout.size() as isize);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: our caller guarantees `ptr` came from this allocator (hence
        // from `System`, since we hand out only what it returned) with this
        // same `layout`.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: our caller guarantees `ptr`/`layout` describe a live block
        // from this allocator (i.e. from `System`) and that `new_size` is
        // non-zero and does not overflow when rounded to `layout.align()`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        new
    }
}
