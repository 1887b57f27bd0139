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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// Sets its flag when dropped: tells a future dropped from one never
    /// made.
    struct DropFlag<'a>(&'a Cell<bool>);

    impl Drop for DropFlag<'_> {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }

    /// Hands `exec` a future that would set `ran`, holding a clone of
    /// `token` and a guard on `dropped`; returns once `execute` has.
    fn execute_probe<'a>(
        exec: &NurseryExecutor<'a>,
        ran: &'a Cell<bool>,
        dropped: &'a Cell<bool>,
        token: &Rc<()>,
    ) {
        let held = token.clone();
        let guard = DropFlag(dropped);
        exec.execute(async move {
            let _held = held;
            let _guard = guard;
            ran.set(true);
        });
    }

    /// The module docs' promise: `execute` into a nursery that has closed
    /// (an executor kept past the nursery's end, as a hyper connection
    /// object outliving it would) does not panic; the future is dropped
    /// at once, never run (its captures released, its `Drop` run), and
    /// nothing is left scheduled.
    #[trio::test]
    async fn execute_on_a_closed_nursery_drops_the_future_and_does_not_panic() -> trio::Result<()> {
        let (ran, dropped, token) = (Cell::new(false), Cell::new(false), Rc::new(()));
        let mut kept = None;
        trio::open_nursery(async |nursery| {
            kept = Some(NurseryExecutor::new(&nursery));
            Ok(())
        })
        .await?;
        let exec = kept.expect("set by the body");
        execute_probe(&exec, &ran, &dropped, &token);
        assert!(dropped.get());
        assert_eq!(Rc::strong_count(&token), 1);
        assert!(!ran.get());
        // Nothing was scheduled: a checkpoint (other tasks run) and the
        // run's end change nothing.
        trio::checkpoint().await?;
        assert!(!ran.get());
        Ok(())
    }

    /// The same for an executor kept past its run's end, used outside any
    /// run and then in another run (its nursery is closed too, which is
    /// the error `try_start_soon` reports first). Neither panics; the
    /// future is dropped, not run.
    #[test]
    fn execute_outside_its_run_drops_the_future_and_does_not_panic() {
        let (ran, dropped, token) = (Cell::new(false), Cell::new(false), Rc::new(()));
        let exec = trio::run(async {
            let mut kept = None;
            trio::open_nursery(async |nursery| {
                kept = Some(NurseryExecutor::new(&nursery));
                Ok(())
            })
            .await?;
            Ok(kept.expect("set by the body"))
        })
        .unwrap();

        // Outside any run.
        execute_probe(&exec, &ran, &dropped, &token);
        assert!(dropped.get());
        assert_eq!(Rc::strong_count(&token), 1);
        assert!(!ran.get());

        // In another run (the nursery is of the ended one).
        dropped.set(false);
        trio::run(async {
            execute_probe(&exec, &ran, &dropped, &token);
            assert!(dropped.get());
            assert_eq!(Rc::strong_count(&token), 1);
            trio::checkpoint().await?;
            assert!(!ran.get());
            Ok(())
        })
        .unwrap();
        assert!(!ran.get());
    }

    /// The contrast: an open nursery runs what `execute` hands it, as a
    /// child (done when the nursery is).
    #[trio::test]
    async fn execute_on_an_open_nursery_runs_the_future_as_a_child() -> trio::Result<()> {
        let (ran, dropped, token) = (Cell::new(false), Cell::new(false), Rc::new(()));
        trio::open_nursery(async |nursery| {
            execute_probe(&NurseryExecutor::new(&nursery), &ran, &dropped, &token);
            // Not yet run (it starts soon), but held by the child task.
            assert!(!ran.get());
            assert_eq!(Rc::strong_count(&token), 2);
            Ok(())
        })
        .await?;
        assert!(ran.get());
        assert!(dropped.get());
        assert_eq!(Rc::strong_count(&token), 1);
        Ok(())
    }
}
