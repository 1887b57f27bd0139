//! Racing, structured: [`race`] and [`race2`] run futures as children of a
//! nursery; the first to succeed wins, and the rest are cancelled *and
//! awaited* before the race returns (Trio's idiom: a nursery whose first
//! finisher cancels `nursery.cancel_scope()`, ready-made).
//!
//! # Design
//!
//! One private nursery per race. Each contestant is a child task that
//! awaits its future and, on success, stores the value in a shared slot
//! (first one only) and cancels the nursery's scope. Everything else is
//! the nursery's own rules, so nothing new needs to be proved:
//!
//! - losers get `Cancelled` at their next checkpoint, their cleanup runs
//!   (shielded cleanup included), and the nursery waits for them;
//! - their `Cancelled`s belong to the nursery's scope, which removes them;
//! - any other error (or a panic) fails the nursery, which cancels the
//!   siblings and reports it: no error is lost;
//! - a cancellation of the caller is visible inside and is not the
//!   nursery's own, so it propagates out of the race.

use crate::core::cancel::CancelScope;
use crate::core::nursery::open_nursery;
use crate::error::{Error, ErrorKind, Result};
use std::cell::Cell;
use std::future::Future;

/// Runs every future in `futures` concurrently, as children of a nursery,
/// and returns the value of the first to finish with `Ok`; the others are
/// cancelled and awaited before `race` returns.
///
/// - **The first `Ok` wins.** Its value is returned once every other
///   contestant has finished: each is cancelled (`Cancelled` at its next
///   checkpoint) and its cleanup, shielded cleanup included, runs to the
///   end first. A loser that finishes with `Ok` anyway (it did not reach a
///   checkpoint) has its value dropped.
/// - **An error fails the race.** A contestant that returns an error other
///   than the `Cancelled` this race gave it (or panics) fails the race the
///   way a failing child fails a nursery: the others are cancelled and
///   awaited, and the error (a group if several) is returned, even if a
///   winner had already been found. No error is lost.
/// - **The caller's cancellation cancels the race**: every contestant is
///   cancelled and awaited, and `race` returns `Cancelled` for the
///   enclosing scope to catch.
/// - **An empty `futures`** is an [`ErrorKind::InvalidArgument`] error.
/// - Contestants may borrow from the caller (no `'static`, no `Send`).
///   Opening the race is not a checkpoint; it ends with the nursery's
///   schedule point.
///
/// ```
/// use std::cell::RefCell;
/// use trio::testing::MockClock;
///
/// trio::Runner::new().clock(MockClock::autojump()).run(async {
///     let cleaned_up = RefCell::new(Vec::new());
///     let mirror = async |name: &'static str, delay: f64| {
///         let r = trio::sleep(delay).await;
///         if r.is_err() {
///             cleaned_up.borrow_mut().push(name); // the loser's cleanup
///         }
///         r.map(|()| name)
///     };
///     let fastest = trio::race([
///         mirror("eu", 0.3),
///         mirror("us", 0.1),
///         mirror("asia", 0.2),
///     ])
///     .await?;
///     assert_eq!(fastest, "us");
///     assert_eq!(trio::current_time().as_secs_f64(), 0.1);
///     cleaned_up.borrow_mut().sort();
///     assert_eq!(*cleaned_up.borrow(), ["asia", "eu"]); // before race returned
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// # `race`, `join!` and `select!`
///
/// Combinators that poll several futures inside *one* task (`join!`,
/// `select!`, `FuturesUnordered` …) work with trio's futures: dropping any
/// runtime future is safe and leaves the runtime consistent (a dropped
/// lock acquire holds nothing, a dropped receive consumed nothing). `join!`
/// is fine as it is. But a branch that `select!` drops was not
/// *cancelled*: it never saw `Cancelled` and no cleanup checkpoint ran in
/// it — its `Drop`s ran, mid-operation, and that is all. The structured
/// way to race is this function: every loser is cancelled at a checkpoint,
/// runs its cleanup, and has finished before `race` returns; the tasks
/// show up in the task tree while they run.
///
/// For two futures of different types, see [`race2`].
pub async fn race<'a, T, F>(futures: impl IntoIterator<Item = F>) -> Result<T>
where
    F: Future<Output = Result<T>> + 'a,
{
    let futures: Vec<F> = futures.into_iter().collect();
    if futures.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "race() needs at least one future",
        ));
    }
    let winner = Cell::new(None);
    open_nursery(async |nursery| {
        let scope = nursery.cancel_scope();
        for fut in futures {
            // Spawning into the nursery we are the body of cannot fail.
            nursery.start_soon(contestant(fut, &winner, scope.clone()));
        }
        Result::Ok(())
    })
    .await?;
    winner.take().ok_or_else(no_winner)
}

/// Which of [`race2`]'s two futures won, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Either<A, B> {
    /// The first future won.
    Left(A),
    /// The second future won.
    Right(B),
}

/// [`race`] for two futures of different types: `Left` if `a` won,
/// `Right` if `b` did. The same rules: the first `Ok` wins, the loser is
/// cancelled and awaited, an error fails the race, the caller's
/// cancellation cancels it.
///
/// ```
/// use trio::{Either, testing::MockClock};
///
/// trio::Runner::new().clock(MockClock::autojump()).run(async {
///     let answer = async {
///         trio::sleep(2.0).await?;
///         Ok(42)
///     };
///     let give_up = async {
///         trio::sleep(1.0).await?;
///         Ok("gave up")
///     };
///     assert_eq!(trio::race2(answer, give_up).await?, Either::Right("gave up"));
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn race2<A, B>(
    a: impl Future<Output = Result<A>>,
    b: impl Future<Output = Result<B>>,
) -> Result<Either<A, B>> {
    let winner = Cell::new(None);
    open_nursery(async |nursery| {
        let scope = nursery.cancel_scope();
        let left = async { a.await.map(Either::Left) };
        let right = async { b.await.map(Either::Right) };
        nursery.start_soon(contestant(left, &winner, scope.clone()));
        nursery.start_soon(contestant(right, &winner, scope));
        Result::Ok(())
    })
    .await?;
    winner.take().ok_or_else(no_winner)
}

/// One contestant: runs `fut`; the first to succeed stores its value and
/// cancels the race's nursery.
async fn contestant<T>(
    fut: impl Future<Output = Result<T>>,
    winner: &Cell<Option<T>>,
    race: CancelScope,
) -> Result<()> {
    let value = fut.await?;
    if !race.cancel_called() {
        winner.set(Some(value));
        race.cancel();
    }
    Ok(())
}

/// The nursery finished without error and nobody won. Only one way: a
/// contestant returned a `Cancelled` that no scope had asked for (one it
/// kept from an earlier, caught cancellation), which cancelled the race's
/// nursery, which then absorbed it. The race passes a `Cancelled` on.
fn no_winner() -> Error {
    Error::cancelled()
}
