//! Issue 9, racing, structured: `trio::race` and `trio::race2`. Every test
//! runs on the autojumping MockClock, so the times asserted are exact, and
//! checks from a log that the losers were cancelled and had finished their
//! cleanup before the race returned.

use std::cell::RefCell;
use trio::{CancelScope, Either, Error, ErrorKind};

/// The run's clock in seconds.
fn now() -> f64 {
    trio::current_time().as_secs_f64()
}

/// An ordered record of what happened, with times.
#[derive(Default)]
struct Log(RefCell<Vec<String>>);

impl Log {
    fn push(&self, what: &str) {
        self.0.borrow_mut().push(format!("{what} at {}", now()));
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

/// Finishes with `name` after `delay` seconds. If cancelled first, it logs
/// that, runs a half-second cleanup under a shield (which a cancellation
/// cannot cut short), logs the end of it, and returns the `Cancelled`.
async fn contender<'a>(log: &Log, name: &'a str, delay: f64) -> trio::Result<&'a str> {
    match trio::sleep(delay).await {
        Ok(()) => Ok(name),
        Err(e) => {
            log.push(&format!("{name} cancelled"));
            let cleanup = CancelScope::new();
            cleanup.set_shield(true);
            cleanup.run(trio::sleep(0.5)).await?;
            log.push(&format!("{name} cleaned up"));
            Err(e)
        }
    }
}

#[trio::test(autojump)]
async fn the_first_to_succeed_wins_and_the_losers_are_cancelled_and_awaited() -> trio::Result<()> {
    let log = Log::default();
    let winner = trio::race([
        contender(&log, "slow", 3.0),
        contender(&log, "fast", 1.0),
        contender(&log, "middle", 2.0),
    ])
    .await?;
    log.push("race returned");
    assert_eq!(winner, "fast");
    // The winner finished at 1 s; both losers were cancelled then, and the
    // race waited for their half-second cleanups.
    let mut events = log.take();
    events[..2].sort();
    events[2..4].sort();
    assert_eq!(
        events,
        [
            "middle cancelled at 1",
            "slow cancelled at 1",
            "middle cleaned up at 1.5",
            "slow cleaned up at 1.5",
            "race returned at 1.5",
        ]
    );
    Ok(())
}

#[trio::test(autojump)]
async fn contestants_may_borrow_from_the_caller() -> trio::Result<()> {
    let names = [String::from("a"), String::from("b")];
    let seen = RefCell::new(Vec::new());
    let winner = trio::race(names.iter().enumerate().map(|(i, name)| {
        let seen = &seen;
        async move {
            trio::sleep(i as f64 + 1.0).await?;
            seen.borrow_mut().push(name.as_str());
            Ok(name.as_str())
        }
    }))
    .await?;
    assert_eq!(winner, "a");
    assert_eq!(seen.into_inner(), ["a"]);
    assert_eq!(now(), 1.0);
    Ok(())
}

#[trio::test(autojump)]
async fn a_race_of_one_is_that_future() -> trio::Result<()> {
    let log = Log::default();
    assert_eq!(trio::race([contender(&log, "only", 2.0)]).await?, "only");
    assert_eq!(now(), 2.0);
    assert!(log.take().is_empty());
    Ok(())
}

#[trio::test(autojump)]
async fn an_empty_race_is_an_invalid_argument() -> trio::Result<()> {
    let none: Vec<std::future::Ready<trio::Result<()>>> = Vec::new();
    let err = trio::race(none).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    Ok(())
}

#[trio::test(autojump)]
async fn a_failure_fails_the_race_and_cancels_the_others() -> trio::Result<()> {
    let log = Log::default();
    let failing = async {
        trio::sleep(1.0).await?;
        Err(Error::new(ErrorKind::Broken, "mirror down"))
    };
    let err = trio::race([
        Box::pin(contender(&log, "slow", 5.0)) as std::pin::Pin<Box<dyn Future<Output = _>>>,
        Box::pin(failing),
    ])
    .await
    .unwrap_err();
    log.push("race returned");
    assert_eq!(err.kind(), ErrorKind::Broken); // the slow one's Cancelled was the race's own
    assert_eq!(
        log.take(),
        [
            "slow cancelled at 1",
            "slow cleaned up at 1.5",
            "race returned at 1.5"
        ]
    );
    Ok(())
}

#[trio::test(autojump)]
async fn an_error_from_a_loser_fails_the_race_even_after_a_winner() -> trio::Result<()> {
    // No error is lost: the loser's cleanup fails after the winner won.
    let bad_loser = async {
        let cancelled = trio::sleep(5.0).await.unwrap_err();
        assert!(cancelled.is_cancelled());
        Err::<(), _>(Error::new(ErrorKind::Broken, "cleanup failed"))
    };
    let winner = async {
        trio::sleep(1.0).await?;
        Ok(())
    };
    let err = trio::race2(winner, bad_loser).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    assert_eq!(now(), 1.0);
    Ok(())
}

#[trio::test(autojump)]
async fn several_failures_come_out_as_a_group() -> trio::Result<()> {
    // Neither reaches a checkpoint, so the first failure's cancel does not
    // stop the second: both are reported.
    let err = trio::race2(
        async { Err::<(), _>(Error::new(ErrorKind::Broken, "one")) },
        async { Err::<(), _>(Error::new(ErrorKind::Closed, "two")) },
    )
    .await
    .unwrap_err();
    assert!(err.is_group());
    assert!(err.contains_kind(ErrorKind::Broken) && err.contains_kind(ErrorKind::Closed));
    Ok(())
}

#[trio::test(autojump)]
async fn cancelling_the_caller_cancels_the_race() -> trio::Result<()> {
    let log = Log::default();
    let r = trio::move_on_after(
        1.0,
        trio::race([contender(&log, "a", 5.0), contender(&log, "b", 7.0)]),
    )
    .await?;
    log.push("move_on_after returned");
    assert_eq!(r, None); // the race's Cancelled was the timeout's, caught there
    let mut events = log.take();
    events[..2].sort();
    events[2..4].sort();
    assert_eq!(
        events,
        [
            "a cancelled at 1",
            "b cancelled at 1",
            "a cleaned up at 1.5",
            "b cleaned up at 1.5",
            "move_on_after returned at 1.5",
        ]
    );
    Ok(())
}

#[trio::test(autojump)]
async fn a_loser_that_finishes_anyway_is_awaited_and_its_value_dropped() -> trio::Result<()> {
    // The loser shields itself, so it never sees the cancel and finishes
    // with Ok at 2 s; the race waits for it and keeps the winner's value.
    let stubborn = async {
        let shield = CancelScope::new();
        shield.set_shield(true);
        shield.run(trio::sleep(2.0)).await?;
        Ok("stubborn")
    };
    let quick = async {
        trio::sleep(1.0).await?;
        Ok("quick")
    };
    let winner = trio::race([
        Box::pin(stubborn) as std::pin::Pin<Box<dyn Future<Output = _>>>,
        Box::pin(quick),
    ])
    .await?;
    assert_eq!(winner, "quick");
    assert_eq!(now(), 2.0);
    Ok(())
}

#[trio::test(autojump)]
async fn race2_says_which_side_won() -> trio::Result<()> {
    let log = Log::default();
    let number = async {
        trio::sleep(1.0).await?;
        Ok(7u32)
    };
    assert_eq!(
        trio::race2(number, contender(&log, "text", 2.0)).await?,
        Either::Left(7)
    );
    assert_eq!(
        log.take(),
        ["text cancelled at 1", "text cleaned up at 1.5"]
    );
    assert_eq!(now(), 1.5);

    let number = async {
        trio::sleep(2.0).await?;
        Ok(7u32)
    };
    assert_eq!(
        trio::race2(number, contender(&log, "text", 1.0)).await?,
        Either::Right("text")
    );
    assert_eq!(now(), 2.5);
    Ok(())
}

#[trio::test(autojump)]
async fn a_race_whose_only_contestant_returns_a_stale_cancelled_has_no_winner() -> trio::Result<()>
{
    // A `Cancelled` kept from an earlier scope, which caught it, and
    // returned later when nothing is cancelled: the race has no value to
    // return and passes a `Cancelled` on (never a panic, never a value).
    let stale = RefCell::new(None);
    let scope = CancelScope::new();
    scope.cancel();
    scope
        .run(async {
            *stale.borrow_mut() = trio::checkpoint().await.err();
            Ok(())
        })
        .await?;
    let stale = stale.into_inner().expect("the checkpoint was cancelled");
    let err = trio::race([async { Err::<(), _>(stale) }])
        .await
        .unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    Ok(())
}
