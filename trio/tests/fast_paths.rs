//! Guards for the scheduler's shortcuts (issue 10): a task that only ever
//! calls `checkpoint()` still meets its deadline and still lets the reactor
//! see ready fds; and a nursery registered lazily behaves like any other.

use std::cell::Cell;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;
use trio::{ErrorKind, checkpoint, open_nursery};

/// A deadline around a loop of bare checkpoints fires (real clock).
#[test]
fn checkpoint_loop_meets_its_deadline() {
    trio::run(async {
        let spun: Option<()> = trio::move_on_after(Duration::from_millis(20), async {
            loop {
                checkpoint().await?;
            }
        })
        .await?;
        assert!(spun.is_none(), "the deadline fired");
        Ok(())
    })
    .unwrap();
}

/// A task spinning on `checkpoint()` does not starve a task waiting for a
/// readable fd: the reader is woken while the spinner still spins.
#[test]
fn checkpoint_loop_does_not_starve_the_reactor() {
    trio::run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
        a.set_nonblocking(true)?;
        let fd = a.as_raw_fd();
        let seen = Cell::new(false);
        open_nursery(async |n| {
            let seen = &seen;
            n.start_soon(async move {
                trio::lowlevel::wait_readable(fd).await?;
                seen.set(true);
                Ok(())
            });
            n.start_soon(async move {
                while !seen.get() {
                    checkpoint().await?;
                }
                Ok(())
            });
            b.write_all(b"x")?;
            Ok(())
        })
        .await?;
        assert!(seen.get());
        Ok(())
    })
    .unwrap();
}

/// Also with a single spinning task whose own loop is the only thing
/// runnable (the body, with the reader as the nursery's only child).
#[test]
fn lone_spinner_still_sees_fds() {
    trio::run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
        a.set_nonblocking(true)?;
        let fd = a.as_raw_fd();
        b.write_all(b"x")?;
        let seen = Cell::new(false);
        open_nursery(async |n| {
            let seen = &seen;
            n.start_soon(async move {
                trio::lowlevel::wait_readable(fd).await?;
                seen.set(true);
                Ok(())
            });
            while !seen.get() {
                checkpoint().await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap();
}

// ----- lazy nursery registration ------------------------------------------

/// A scope entered in the body before the first spawn hangs under the
/// nursery's scope: a failing child cancels it.
#[test]
fn scope_entered_before_first_spawn_is_inside_the_nursery() {
    let err = trio::run(async {
        open_nursery(async |n| {
            trio::move_on_after(3600.0, async {
                n.start_soon(async { Err(trio::Error::new(ErrorKind::Broken, "boom")) });
                trio::sleep_forever().await
            })
            .await?;
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
}

/// A body parked before anything registered the nursery is woken when the
/// nursery's scope is cancelled through a handle used later.
#[test]
fn parked_body_sees_a_later_cancel() {
    trio::run(async {
        let handle = Cell::new(None);
        open_nursery(async |outer| {
            let handle = &handle;
            outer.start_soon(async move {
                open_nursery(async |n| {
                    handle.set(Some(n.cancel_scope()));
                    trio::sleep_forever().await
                })
                .await?;
                Ok(())
            });
            trio::testing::wait_all_tasks_blocked().await?;
            handle.take().expect("the body ran").cancel();
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap();
}

/// A body that checkpoints and spawns later, and one that fails without
/// spawning, behave as before; the body sees its nursery in the task tree.
#[test]
fn lazy_bodies_behave() {
    trio::run(async {
        let ran = Cell::new(0);
        open_nursery(async |n| {
            let me = trio::lowlevel::current_task();
            assert_eq!(me.child_nurseries().len(), 1);
            checkpoint().await?;
            n.start_soon(async { ran.set(ran.get() + 1) });
            Ok(())
        })
        .await?;
        assert_eq!(ran.get(), 1);
        let err = open_nursery(async |_| Err::<(), _>(trio::Error::new(ErrorKind::Busy, "x")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Busy);
        // Exiting an empty nursery is still a schedule point, not a cancel point.
        let before = trio::lowlevel::checkpoint_counts()?;
        open_nursery(async |_| Ok(())).await?;
        let after = trio::lowlevel::checkpoint_counts()?;
        assert_eq!(after.schedule_points - before.schedule_points, 1);
        assert_eq!(after.cancel_points, before.cancel_points);
        Ok(())
    })
    .unwrap();
}
