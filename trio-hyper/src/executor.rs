//! [`NurseryExecutor`]: hyper's [`Executor`] spawning into a trio nursery.
//!
//! hyper hands its executor the futures it wants run in the background:
//! on HTTP/2, one per stream (the request's service future and the
//! response body's sending) and the client's connection task. They need
//! not be `Send` or `'static` here: they become children of a nursery,
//! which outlives them, so they may borrow whatever the nursery's owner
//! borrows (the service, say).
//!
//! # Never panics
//!
//! hyper calls `execute` from inside its own poll and cannot handle a
//! failure, and a panic there would tear down the connection's task. So
//! spawning uses [`Nursery::try_start_soon_named`]: if the nursery has
//! closed (or belongs to another run), the future is dropped (hyper sees
//! the stream's handles dropped, which resets that one stream) and the
//! event is logged to stderr. A nursery only closes after its body and
//! children end, so with the nursery opened around the connection (as
//! [`crate::server`] and [`crate::client`] do) this does not happen.

use hyper::rt::Executor;
use std::fmt;
use std::future::Future;
use trio::Nursery;

/// The task name of the futures hyper spawns, in the task tree.
const TASK_NAME: &str = "trio_hyper background";

/// hyper's [`Executor`] for any future (`Send` or not, borrowing or not)
/// that lives as long as the nursery: each one runs as a child task of it.
/// Cheap to clone (a nursery handle). See the [module docs](self).
///
/// ```
/// use hyper::rt::Executor;
/// use std::cell::Cell;
/// use trio_hyper::NurseryExecutor;
///
/// trio::run(async {
///     let ran = Cell::new(false);
///     trio::open_nursery(async |nursery| {
///         let exec = NurseryExecutor::new(&nursery);
///         exec.execute(async { ran.set(true) }); // borrows `ran`: no 'static
///         Ok(())
///     })
///     .await?;
///     assert!(ran.get());
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct NurseryExecutor<'a> {
    nursery: Nursery<'a>,
}

impl<'a> NurseryExecutor<'a> {
    /// An executor spawning into `nursery`.
    pub fn new(nursery: &Nursery<'a>) -> Self {
        NurseryExecutor {
            nursery: nursery.clone(),
        }
    }

    /// The nursery it spawns into.
    pub fn nursery(&self) -> &Nursery<'a> {
        &self.nursery
    }
}

impl fmt::Debug for NurseryExecutor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NurseryExecutor")
            .field("nursery", &self.nursery)
            .finish()
    }
}

impl<'a, F> Executor<F> for NurseryExecutor<'a>
where
    F: Future<Output = ()> + 'a,
{
    fn execute(&self, fut: F) {
        if let Err(e) = self.nursery.try_start_soon_named(TASK_NAME, fut) {
            // Dropped, not run: see the module docs.
            eprintln!("trio_hyper: a background future of hyper was dropped: {e}");
        }
    }
}
