//! Schedule points passed in place are unobservable but for the work they
//! save: each test compares a run with a no-op instrument (instruments turn
//! passes and rounds off: the behaviour without them exactly) with the same
//! run without one. (Written by a reviewer against the first version,
//! where three of them failed.)

use std::cell::Cell;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use trio::{checkpoint, open_nursery};

mod common;
use common::drained_stream;

struct Noop;
impl trio::lowlevel::Instrument for Noop {}

/// `k` socket sends by S while no fd is waited on (passed in place, and
/// not counted as ticks), then T starts waiting on a readable fd; S writes
/// the byte T waits for and checkpoints until T sees it. Returns how many
/// checkpoints S passed meanwhile: the I/O poll's phase.
fn latency_after_tickless_passes(k: u32, instrumented: bool) -> u32 {
    use std::io::Write;
    use trio::stream::SendStream;
    let (x, reader) = drained_stream();
    let (r, mut w) = std::os::unix::net::UnixStream::pair().unwrap();
    r.set_nonblocking(true).unwrap();
    let mut runner = trio::Runner::new();
    if instrumented {
        runner = runner.instrument(Rc::new(Noop));
    }
    let seen = runner
        .run(async {
            let go = trio::sync::Event::new();
            let waiting = Cell::new(false);
            let spun = Cell::new(0u32);
            let seen_at = Cell::new(0u32);
            open_nursery(async |n| {
                let (go, waiting, spun, seen_at) = (&go, &waiting, &spun, &seen_at);
                let fd = r.as_raw_fd();
                n.start_soon(async move {
                    go.wait().await?;
                    waiting.set(true);
                    trio::lowlevel::wait_readable(fd).await?;
                    seen_at.set(spun.get());
                    Ok(())
                });
                let x = &x;
                let w = &mut w;
                n.start_soon(async move {
                    // Let T park on the event first.
                    checkpoint().await?;
                    for _ in 0..k {
                        x.send_all(b"x").await?;
                    }
                    go.set();
                    while !waiting.get() {
                        checkpoint().await?;
                    }
                    w.write_all(b"x")?;
                    while seen_at.get() == 0 {
                        checkpoint().await?;
                        spun.set(spun.get() + 1);
                    }
                    Ok(())
                });
                Ok(())
            })
            .await?;
            Ok(seen_at.get())
        })
        .unwrap();
    drop(x);
    reader.join().unwrap();
    seen
}

/// Passes taken while no fd is waited on count as ticks too, so the run
/// loop's I/O poll comes exactly when it would have once an fd is waited
/// on after such passes.
#[test]
fn tickless_passes_shift_the_io_poll() {
    for k in [20, 40] {
        let old = latency_after_tickless_passes(k, true);
        let new = latency_after_tickless_passes(k, false);
        assert_eq!(new, old, "k = {k}");
    }
}

/// How many socket sends a lone guest task makes in each of the first
/// steps after it starts sending. A guest step "runs at most one batch"
/// and lets the host's own work run between steps; a send that did not
/// wait ends with a schedule point, so the old behaviour is one send per
/// step.
fn guest_sends_per_step(instrumented: bool) -> Vec<u32> {
    use trio::lowlevel::{GuestRun, GuestStep};
    use trio::stream::SendStream;
    let (x, reader) = drained_stream();
    let sent = Rc::new(Cell::new(0u32));
    let s2 = sent.clone();
    let mut runner = trio::Runner::new();
    if instrumented {
        runner = runner.instrument(Rc::new(Noop));
    }
    let x = Rc::new(x);
    let x2 = x.clone();
    let mut guest = GuestRun::new(runner, async move {
        for _ in 0..300 {
            x2.send_all(b"x").await?;
            s2.set(s2.get() + 1);
        }
        Ok(())
    })
    .unwrap();
    let mut per_step = Vec::new();
    let mut last = 0;
    loop {
        match guest.step(false).unwrap() {
            GuestStep::Done(r) => {
                r.unwrap();
                break;
            }
            GuestStep::Pending(_) => {
                per_step.push(sent.get() - last);
                last = sent.get();
            }
        }
    }
    drop(guest);
    drop(x);
    reader.join().unwrap();
    per_step.retain(|&n| n != 0);
    per_step.truncate(5);
    per_step
}

/// A guest task's socket sends never pass their schedule points in place
/// (a guest step is one tick): one send per step, so host code runs
/// between them.
#[test]
fn guest_steps_run_one_send_each() {
    let old = guest_sends_per_step(true);
    let new = guest_sends_per_step(false);
    assert_eq!(new, old);
}

/// Records schedulings and steps of the task named "O".
#[derive(Default)]
struct OwnerSteps(std::cell::RefCell<Vec<&'static str>>);

impl trio::lowlevel::Instrument for OwnerSteps {
    fn task_scheduled(&self, task: trio::lowlevel::Task) {
        if task.name().as_deref() == Some("O") {
            self.0.borrow_mut().push("scheduled");
        }
    }
    fn before_task_step(&self, task: trio::lowlevel::Task) {
        if task.name().as_deref() == Some("O") {
            self.0.borrow_mut().push("before");
        }
    }
    fn after_task_step(&self, task: trio::lowlevel::Task) {
        if task.name().as_deref() == Some("O") {
            self.0.borrow_mut().push("after");
        }
    }
}

/// What an instrument sees of a nursery's owner "O" whose body `start`s a
/// task: the `PendingStart` dropped during the nursery's own poll pokes
/// the nursery, which schedules the owner again (an extra step), exactly
/// as before in-place rounds existed ("instruments see exactly the old
/// order").
fn owner_steps_with_a_start() -> Vec<&'static str> {
    let steps = Rc::new(OwnerSteps::default());
    trio::Runner::new()
        .instrument(steps.clone())
        .run(async {
            open_nursery(async |p| {
                p.start_soon_named("O", async {
                    open_nursery(async |n| {
                        n.start(async |status| {
                            status.started(());
                            checkpoint().await?;
                            Ok(())
                        })
                        .await?;
                        Ok(())
                    })
                    .await?;
                    Ok(())
                });
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
    let got = steps.0.borrow().clone();
    eprintln!("owner steps: {got:?}");
    got
}

#[test]
fn instruments_see_the_old_owner_steps_around_a_start() {
    let got = owner_steps_with_a_start();
    // Recorded without in-place passes (before they existed), same code.
    assert_eq!(got, OLD_OWNER_STEPS);
}

const OLD_OWNER_STEPS: &[&str] = &[
    "scheduled",
    "before",
    "scheduled",
    "after",
    "before",
    "scheduled",
    "after",
    "before",
    "after",
];

/// As above, with the `start` polled once and dropped inside the body's
/// poll (its `PendingStart` drops during the nursery's own poll).
fn owner_steps_with_a_dropped_start() -> Vec<&'static str> {
    let steps = Rc::new(OwnerSteps::default());
    trio::Runner::new()
        .instrument(steps.clone())
        .run(async {
            open_nursery(async |p| {
                p.start_soon_named("O", async {
                    open_nursery(async |n| {
                        // A registered nursery (a child), polled again.
                        n.start_soon(trio::sleep(1.0));
                        checkpoint().await?;
                        {
                            let mut st = std::pin::pin!(n.start(async |status| {
                                checkpoint().await?;
                                status.started(());
                                Ok(())
                            }));
                            std::future::poll_fn(|cx| {
                                let _ = st.as_mut().poll(cx);
                                std::task::Poll::Ready(())
                            })
                            .await;
                        }
                        checkpoint().await?;
                        n.cancel_scope().cancel();
                        Ok(())
                    })
                    .await?;
                    Ok(())
                });
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
    let got = steps.0.borrow().clone();
    eprintln!("owner steps (dropped start): {got:?}");
    got
}

#[test]
fn instruments_see_the_old_owner_steps_around_a_dropped_start() {
    let got = owner_steps_with_a_dropped_start();
    assert_eq!(got, OLD_OWNER_STEPS_DROPPED);
}

/// Recorded without in-place passes (before they existed), same code.
const OLD_OWNER_STEPS_DROPPED: &[&str] = &[
    "scheduled",
    "before",
    "scheduled",
    "after",
    "before",
    "scheduled",
    "after",
    "before",
    "scheduled",
    "after",
    "before",
    "after",
];
