//! Instruments: hooks the run loop calls on run, task and I/O-wait events
//! (Trio's `trio.abc.Instrument`).
//!
//! Hooks are called with no runtime borrow held, so an instrument may call
//! any runtime function. When no instrument is installed the run loop pays one
//! `bool` check per event.

use crate::core::runtime;
use crate::core::task::Task;
use crate::error::Result;
use std::rc::Rc;
use std::time::Duration;

/// Hooks on the run loop's events. Every method has an empty default.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use trio::lowlevel::{Instrument, Task};
///
/// #[derive(Default)]
/// struct CountSteps(Cell<u32>);
/// impl Instrument for CountSteps {
///     fn before_task_step(&self, _task: Task) {
///         self.0.set(self.0.get() + 1);
///     }
/// }
///
/// let steps = Rc::new(CountSteps::default());
/// trio::Runner::new()
///     .instrument(steps.clone())
///     .run(async { trio::checkpoint().await })
///     .unwrap();
/// assert_eq!(steps.0.get(), 2); // before and after the checkpoint's yield
/// ```
pub trait Instrument {
    /// The run is starting.
    fn before_run(&self) {}
    /// The run has finished.
    fn after_run(&self) {}
    /// A task was spawned.
    fn task_spawned(&self, task: Task) {
        let _ = task;
    }
    /// A task became runnable.
    fn task_scheduled(&self, task: Task) {
        let _ = task;
    }
    /// A task is about to be polled.
    fn before_task_step(&self, task: Task) {
        let _ = task;
    }
    /// A task was polled.
    fn after_task_step(&self, task: Task) {
        let _ = task;
    }
    /// A task finished.
    fn task_exited(&self, task: Task) {
        let _ = task;
    }
    /// The loop is about to wait for I/O for at most `timeout`.
    fn before_io_wait(&self, timeout: Duration) {
        let _ = timeout;
    }
    /// The loop has finished waiting for I/O.
    fn after_io_wait(&self, timeout: Duration) {
        let _ = timeout;
    }
}

/// Installs an instrument in the current run. Adding one that is already
/// installed (the same `Rc`, compared by address) does nothing, as in Trio.
/// A hook that panics removes its instrument; `run` resumes the panic when
/// the run has ended.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use trio::lowlevel::{Instrument, Task, add_instrument, remove_instrument};
///
/// #[derive(Default)]
/// struct CountSpawns(Cell<u32>);
/// impl Instrument for CountSpawns {
///     fn task_spawned(&self, _task: Task) {
///         self.0.set(self.0.get() + 1);
///     }
/// }
///
/// trio::run(async {
///     let spawns = Rc::new(CountSpawns::default());
///     add_instrument(spawns.clone())?;
///     trio::open_nursery(async |n| {
///         n.start_soon(trio::checkpoint());
///         Ok(())
///     })
///     .await?;
///     assert!(remove_instrument(&spawns)?);
///     assert_eq!(spawns.0.get(), 1);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn add_instrument<I: Instrument + 'static>(instrument: Rc<I>) -> Result<()> {
    let rt = runtime::current()?;
    let addr = address(&instrument);
    let mut list = rt.instruments.borrow_mut();
    if !list.iter().any(|i| address(i) == addr) {
        list.push(instrument);
    }
    drop(list);
    rt.instruments_on.set(true);
    rt.state.borrow_mut().log_scheduled = true;
    Ok(())
}

/// Removes an instrument (the same `Rc` as was added, compared by address;
/// `Rc<dyn Instrument>` works too); false if it was not installed.
pub fn remove_instrument<I: Instrument + ?Sized>(instrument: &Rc<I>) -> Result<bool> {
    let rt = runtime::current()?;
    Ok(rt.remove_instrument(address(instrument)))
}

/// What identifies an instrument: the address of its value (without the
/// vtable, which may differ between two `Rc<dyn Instrument>` to one value).
pub(crate) fn address<I: ?Sized>(instrument: &Rc<I>) -> *const () {
    Rc::as_ptr(instrument).cast::<()>()
}
