//! Guards for the scheduler's shortcuts (issue 10): a task that only ever
//! calls `checkpoint()` still meets its deadline and still lets the reactor
//! see ready fds; a nursery registered lazily behaves like any other; and
//! an empty nursery's exit, which passes its schedule point in place when
//! nothing else could run, still lets every other ready task, deadline, fd
//! and `join!` branch run.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use trio::{ErrorKind, checkpoint, open_nursery};

mod common;
use common::drained_stream;

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

// ----- the exit schedule point of an empty nursery --------------------------

/// Opens and closes an empty nursery (a schedule point, no cancel point).
async fn empty_nursery() -> trio::Result<()> {
    open_nursery(async |_| Ok(())).await?;
    Ok(())
}

/// A sibling already ready in the same batch runs before the exit returns:
/// the exit does not pass in place while another task is ready. (No seed,
/// so the batch runs in spawn order: the exiting task first.)
#[test]
fn empty_exit_lets_a_ready_sibling_run_first() {
    trio::run(async {
        let log = RefCell::new(Vec::new());
        open_nursery(async |n| {
            let log = &log;
            n.start_soon(async move {
                empty_nursery().await?;
                log.borrow_mut().push("exited");
                Ok(())
            });
            n.start_soon(async move { log.borrow_mut().push("sibling") });
            Ok(())
        })
        .await?;
        assert_eq!(*log.borrow(), ["sibling", "exited"]);
        Ok(())
    })
    .unwrap();
}

/// Polls both futures with the task's own waker until both are done, as
/// `join!` does (the case that a pass in place could starve).
async fn join2(a: impl Future<Output = trio::Result<()>>, b: impl Future<Output = ()>) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut a_done, mut b_done) = (false, false);
    std::future::poll_fn(|cx| {
        if !a_done && let Poll::Ready(r) = a.as_mut().poll(cx) {
            r.unwrap();
            a_done = true;
        }
        if !b_done && b.as_mut().poll(cx).is_ready() {
            b_done = true;
        }
        if a_done && b_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// A lone task spinning on empty nurseries inside a `join!` until the other
/// branch sets a flag still lets that branch be polled: passes in place
/// are bounded per batch.
#[test]
fn empty_exits_in_a_join_let_the_other_branch_run() {
    trio::run(async {
        let done = Cell::new(false);
        let spins = Cell::new(0u32);
        let spinner = async {
            while !done.get() {
                empty_nursery().await?;
                spins.set(spins.get() + 1);
            }
            Ok(())
        };
        let setter = async {
            // Not at once: first let the spinner pass some exits.
            for _ in 0..3 {
                trio::lowlevel::cancel_shielded_checkpoint().await.unwrap();
            }
            done.set(true);
        };
        join2(spinner, setter).await;
        assert!(spins.get() > 0);
        Ok(())
    })
    .unwrap();
}

/// A deadline around a loop of empty nurseries fires (real clock). The
/// body's `checkpoint_if_cancelled` is the loop's only cancel point.
#[test]
fn empty_exit_loop_meets_its_deadline() {
    trio::run(async {
        let spun: Option<()> = trio::move_on_after(Duration::from_millis(20), async {
            loop {
                open_nursery(async |_| trio::lowlevel::checkpoint_if_cancelled().await).await?;
            }
        })
        .await?;
        assert!(spun.is_none(), "the deadline fired");
        Ok(())
    })
    .unwrap();
}

/// A body spinning on empty nurseries does not starve a child waiting for
/// a readable fd.
#[test]
fn empty_exit_loop_still_sees_fds() {
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
                empty_nursery().await?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap();
}

/// A body spinning on empty nurseries still sees work finished in another
/// thread (a wake posted to the run's inbox).
#[test]
fn empty_exit_loop_still_sees_other_threads() {
    trio::run(async {
        let got = Cell::new(None);
        open_nursery(async |n| {
            let got = &got;
            n.start_soon(async move {
                let v = trio::to_thread::run_sync(|| 7).await?;
                got.set(Some(v));
                Ok(())
            });
            while got.get().is_none() {
                empty_nursery().await?;
            }
            Ok(())
        })
        .await?;
        assert_eq!(got.get(), Some(7));
        Ok(())
    })
    .unwrap();
}

/// Passed in place or not, the exit counts as one schedule point, and the
/// task tree shows no nursery left behind.
#[test]
fn empty_exit_counts_one_schedule_point() {
    trio::run(async {
        let before = trio::lowlevel::checkpoint_counts()?;
        for _ in 0..200 {
            empty_nursery().await?;
        }
        let after = trio::lowlevel::checkpoint_counts()?;
        assert_eq!(after.schedule_points - before.schedule_points, 200);
        assert_eq!(after.cancel_points, before.cancel_points);
        assert!(trio::lowlevel::current_task().child_nurseries().is_empty());
        Ok(())
    })
    .unwrap();
}

/// A handle kept past its nursery's end leaves nothing behind when asked
/// for its scope or info (the nursery never registered, and must not
/// register once closed).
#[test]
fn escaped_handle_of_an_empty_nursery_registers_nothing() {
    trio::run(async {
        let mut escaped = None;
        open_nursery(async |n| {
            escaped = Some(n.clone());
            Ok(())
        })
        .await?;
        let n = escaped.expect("the body ran");
        let scope = n.cancel_scope();
        scope.cancel();
        let _ = n.info();
        assert!(n.is_closed());
        assert!(trio::lowlevel::current_task().child_nurseries().is_empty());
        checkpoint().await?; // the cancel did not reach this task
        Ok(())
    })
    .unwrap();
}

// ----- in-place rounds ---------------------------------------------------------
//
// A nursery whose children passed schedule points polls them again at once
// when the run loop's next tick would do nothing else (see "In-place
// rounds" in the nursery module's docs). These guard that it does, and
// that every condition holds: other ready tasks, deadlines, fds, other
// threads.

/// A future that counts its polls and finishes once `left` is 0; the last
/// child to finish wakes it.
async fn count_polls_until_done(
    polls: &Cell<u32>,
    left: &Cell<u32>,
    waker: &RefCell<Option<std::task::Waker>>,
) {
    std::future::poll_fn(|cx| {
        polls.set(polls.get() + 1);
        if left.get() == 0 {
            return Poll::Ready(());
        }
        *waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// Children passing schedule points over and over are polled again by
/// their nursery in place: the body, which the owner's every poll of the
/// nursery polls too, sees one poll per run-loop trip, not one per
/// schedule point. (Without rounds: about 1 000 here; with them, one per
/// `IO_POLL_INTERVAL` ticks.)
#[test]
fn yielding_children_are_polled_again_in_place() {
    trio::run(async {
        let polls = Cell::new(0);
        let left = Cell::new(2);
        let waker = RefCell::new(None::<std::task::Waker>);
        open_nursery(async |n| {
            for _ in 0..2 {
                let (left, waker) = (&left, &waker);
                n.start_soon(async move {
                    for _ in 0..1000 {
                        checkpoint().await?;
                    }
                    left.set(left.get() - 1);
                    if let Some(w) = waker.borrow_mut().take() {
                        w.wake();
                    }
                    Ok(())
                });
            }
            count_polls_until_done(&polls, &left, &waker).await;
            Ok(())
        })
        .await?;
        assert!(
            polls.get() < 100,
            "the body was polled {} times",
            polls.get()
        );
        Ok(())
    })
    .unwrap();
}

/// `log` holds `each` steps of 'a' and of 'b', and at no point has one
/// taken two steps more than the other: each schedule point let the other
/// run.
fn assert_interleaved(log: &[char], each: i32) {
    let (mut a, mut b) = (0i32, 0i32);
    for (i, c) in log.iter().enumerate() {
        if *c == 'a' {
            a += 1;
        } else {
            b += 1;
        }
        assert!((a - b).abs() <= 1, "at step {i}: a {a}, b {b}");
    }
    assert_eq!((a, b), (each, each));
}

/// Two tasks, each with a nursery whose one child passes schedule points:
/// no round lets one child run twice while the other is ready, so the
/// two stay interleaved.
#[test]
fn rounds_keep_children_of_two_nurseries_interleaved() {
    trio::run(async {
        let log = RefCell::new(Vec::new());
        let spin = |name: char| {
            let log = &log;
            async move {
                open_nursery(async |n| {
                    n.start_soon(async move {
                        for _ in 0..300 {
                            log.borrow_mut().push(name);
                            checkpoint().await?;
                        }
                        Ok(())
                    });
                    Ok(())
                })
                .await?;
                Ok(())
            }
        };
        open_nursery(async |n| {
            n.start_soon(spin('a'));
            n.start_soon(spin('b'));
            Ok(())
        })
        .await?;
        assert_interleaved(&log.borrow(), 300);
        Ok(())
    })
    .unwrap();
}

/// Children that wake themselves and finish in the same poll, over and
/// over, beside a spinner in a nursery: their queued slots are taken out
/// when they exit, so they never make a round look due while a spinner
/// elsewhere (here a child of the outer nursery) is ready.
#[test]
fn children_exiting_while_queued_do_not_start_a_round() {
    trio::run(async {
        let log = RefCell::new(Vec::new());
        let log = &log;
        let spin = async move |name: char, n: Option<trio::Nursery<'_>>| -> trio::Result<()> {
            for _ in 0..300 {
                log.borrow_mut().push(name);
                if let Some(n) = &n {
                    n.start_soon(std::future::poll_fn(|cx| -> Poll<trio::Result<()>> {
                        cx.waker().wake_by_ref();
                        Poll::Ready(Ok(()))
                    }));
                }
                checkpoint().await?;
            }
            Ok(())
        };
        open_nursery(async |outer| {
            outer.start_soon(async move {
                open_nursery(async |n| {
                    n.start_soon(spin('a', Some(n.clone())));
                    Ok(())
                })
                .await?;
                Ok(())
            });
            outer.start_soon(spin('b', None));
            Ok(())
        })
        .await?;
        assert_interleaved(&log.borrow(), 300);
        Ok(())
    })
    .unwrap();
}

/// A deadline that comes due stops the rounds: the run loop's tick fires it
/// at once, so the spinning child is cancelled at the first schedule point
/// after the clock passed it, not rounds later. (A frozen MockClock that
/// only the child moves.)
#[test]
fn a_due_deadline_stops_the_rounds() {
    let clock = trio::testing::MockClock::new();
    let jumps = clock.clone();
    let passed = trio::Runner::new()
        .clock(clock)
        .run(async move {
            let passed = Cell::new(0);
            let done = trio::move_on_after(5.5, async {
                open_nursery(async |n| {
                    let (passed, jumps) = (&passed, &jumps);
                    n.start_soon(async move {
                        while passed.get() < 1000 {
                            jumps.jump(1.0)?;
                            checkpoint().await?;
                            passed.set(passed.get() + 1);
                        }
                        Ok(())
                    });
                    Ok(())
                })
                .await
            })
            .await?;
            assert!(done.is_none(), "the deadline fired");
            Ok(passed.get())
        })
        .unwrap();
    // Jumps to 1..=5 pass; the jump to 6 passes the deadline (5.5), and
    // that checkpoint is cancelled.
    assert_eq!(passed, 5);
}

/// A child spinning on `checkpoint()` in a nursery still lets a sibling
/// waiting on an fd be woken (the rounds count as ticks, and the I/O poll
/// comes when due), and a sibling waiting on another thread.
#[test]
fn rounds_still_see_fds_and_other_threads() {
    trio::run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
        a.set_nonblocking(true)?;
        let fd = a.as_raw_fd();
        let seen = Cell::new(0);
        open_nursery(async |n| {
            let seen = &seen;
            n.start_soon(async move {
                trio::lowlevel::wait_readable(fd).await?;
                seen.set(seen.get() + 1);
                Ok(())
            });
            n.start_soon(async move {
                let v = trio::to_thread::run_sync(|| 1).await?;
                seen.set(seen.get() + v);
                Ok(())
            });
            n.start_soon(async move {
                while seen.get() < 2 {
                    checkpoint().await?;
                }
                Ok(())
            });
            b.write_all(b"x")?;
            Ok(())
        })
        .await?;
        assert_eq!(seen.get(), 2);
        Ok(())
    })
    .unwrap();
}

// ----- a socket operation's schedule point, passed in place --------------------
//
// A socket operation that did not wait ends with a shielded schedule point;
// when the run loop's next tick would poll only this task again, it passes
// in place. These guard the conditions.

/// Two children sending on their own sockets: each send's schedule point
/// still lets the other run first (no pass while another task is ready).
/// 100 one-byte sends stay well inside a Unix socket's send buffer (each
/// costs the kernel about a kilobyte of it), so no send waits whatever the
/// reader threads do: a sender that waited would rightly let the other run
/// twice.
#[test]
fn socket_sends_of_two_children_stay_interleaved() {
    use trio::stream::SendStream;
    let log = RefCell::new(Vec::new());
    let (a, ra) = drained_stream();
    let (b, rb) = drained_stream();
    trio::run(async {
        let log = &log;
        let send = async move |name: char, s: &trio::socket::SocketStream| -> trio::Result<()> {
            for _ in 0..100 {
                log.borrow_mut().push(name);
                s.send_all(b"x").await?;
            }
            Ok(())
        };
        open_nursery(async |n| {
            n.start_soon(send('a', &a));
            n.start_soon(send('b', &b));
            Ok(())
        })
        .await?;
        Ok(())
    })
    .unwrap();
    drop((a, b));
    assert_eq!((ra.join().unwrap(), rb.join().unwrap()), (100, 100));
    assert_interleaved(&log.borrow(), 100);
}

/// A lone task sending while a sibling waits on an fd (so each pass uses a
/// tick) stops passing once a deadline is due: the tick fires it, and the
/// next send is cancelled. (A frozen MockClock that only the sender moves.)
#[test]
fn a_due_deadline_stops_sends_passing_in_place() {
    use trio::stream::SendStream;
    let (s, reader) = drained_stream();
    let (quiet, _quiet_peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let clock = trio::testing::MockClock::new();
    let jumps = clock.clone();
    let sent = trio::Runner::new()
        .clock(clock)
        .run(async {
            let sent = Cell::new(0);
            let done = trio::move_on_after(5.5, async {
                open_nursery(async |n| {
                    n.start_soon(trio::lowlevel::wait_readable(quiet.as_raw_fd()));
                    while sent.get() < 1000 {
                        jumps.jump(1.0)?;
                        s.send_all(b"x").await?;
                        sent.set(sent.get() + 1);
                    }
                    Ok(())
                })
                .await
            })
            .await?;
            assert!(done.is_none(), "the deadline fired");
            Ok(sent.get())
        })
        .unwrap();
    // Sends at 1..=5 pass in place; the one at 6 completes (its schedule
    // point is shielded) but yields, the tick fires the deadline (5.5), and
    // the send at 7 is cancelled before it sends anything.
    assert_eq!(sent, 6);
    drop(s);
    assert_eq!(reader.join().unwrap(), 6);
}

/// A task sending in a loop while a sibling waits for a readable fd: the
/// passes count as ticks, so the I/O poll still comes when due and the
/// sibling is woken while the sender still sends.
#[test]
fn sends_passing_in_place_still_let_the_reactor_see_fds() {
    use trio::stream::SendStream;
    let (s, reader) = drained_stream();
    let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
    r.set_nonblocking(true).unwrap();
    w.write_all(b"x").unwrap();
    let sent = trio::run(async {
        let seen = Cell::new(false);
        let sent = Cell::new(0u32);
        open_nursery(async |n| {
            let seen = &seen;
            n.start_soon(async move {
                trio::lowlevel::wait_readable(r.as_raw_fd()).await?;
                seen.set(true);
                Ok(())
            });
            while !seen.get() {
                s.send_all(b"x").await?;
                sent.set(sent.get() + 1);
            }
            Ok(())
        })
        .await?;
        Ok(sent.get())
    })
    .unwrap();
    drop(s);
    assert_eq!(reader.join().unwrap(), sent as usize);
}
