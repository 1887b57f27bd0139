//! In-place rounds and schedule points passed in place (see "In-place
//! rounds" in the nursery module's docs), as a reviewer attacked them:
//! the clock is read as the run loop's tick reads it (outside the state
//! borrow, and only when a round or pass could be taken), instruments see
//! exactly the order they saw before, and the I/O poll comes exactly when
//! it would have.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use trio::testing::MockClock;
use trio::{CancelScope, Clock, Instant, checkpoint, open_nursery};

/// A MockClock that runs `on_read` (user code, which may touch the run's
/// state) every time the run reads it. The run loop reads its clock
/// outside its state borrow; an in-place round must too.
struct HookClock {
    inner: MockClock,
    on_read: Box<dyn Fn(Instant)>,
}

impl Clock for HookClock {
    fn start_clock(&self) {
        Clock::start_clock(&self.inner)
    }
    fn current_time(&self) -> Instant {
        let now = self.inner.current_time();
        (self.on_read)(now);
        now
    }
    fn deadline_to_sleep_time(&self, deadline: Instant) -> Duration {
        self.inner.deadline_to_sleep_time(deadline)
    }
}

/// A round reads the user's clock outside the run's state borrow: a clock
/// that touches run state (cancels a scope) works.
#[test]
fn a_round_reads_the_clock_outside_the_state_borrow() {
    let inner = MockClock::new();
    let jumps = inner.clone();
    let slot = Rc::new(RefCell::new(None));
    // An "alarm" clock: it cancels a scope once it reads 3 s or more.
    let alarm = slot.clone();
    let clock = HookClock {
        inner,
        on_read: Box::new(move |now| {
            if now.as_secs_f64() >= 3.0
                && let Some(s) = alarm.borrow_mut().take()
            {
                CancelScope::cancel(&s);
            }
        }),
    };
    let passed = trio::Runner::new()
        .clock(clock)
        .run(async move {
            let passed = Cell::new(0u32);
            let scope = CancelScope::new();
            *slot.borrow_mut() = Some(scope.clone());
            // A far deadline, so that a round reads the clock.
            trio::move_on_after(1000.0, async {
                scope
                    .run(open_nursery(async |n| {
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
                    }))
                    .await
            })
            .await?;
            Ok(passed.get())
        })
        .unwrap();
    // The clock cancels at its first read at >= 3 s (after the third jump).
    assert!(passed >= 2, "{passed}");
}

/// Records task steps and schedulings of the tasks named "T" and "C".
#[derive(Default)]
struct Steps(RefCell<Vec<String>>);

impl Steps {
    fn push(&self, what: &str, task: trio::lowlevel::Task) {
        if let Some(name) = task.name()
            && (name == "T" || name == "C")
        {
            self.0.borrow_mut().push(format!("{what} {name}"));
        }
    }
}

impl trio::lowlevel::Instrument for Steps {
    fn task_scheduled(&self, task: trio::lowlevel::Task) {
        self.push("scheduled", task);
    }
    fn before_task_step(&self, task: trio::lowlevel::Task) {
        self.push("before", task);
    }
    fn after_task_step(&self, task: trio::lowlevel::Task) {
        self.push("after", task);
    }
}

/// With an instrument (even one added during the nursery's poll), a
/// child's checkpoint schedules the nursery's owner inside the child's step
/// (between its `before_task_step` and `after_task_step`), as without
/// rounds: wakes are not queued then.
#[test]
fn instruments_see_the_owner_scheduled_inside_the_childs_step() {
    let steps = Rc::new(Steps::default());
    let s2 = steps.clone();
    trio::run(async move {
        open_nursery(async |p| {
            p.start_soon_named("T", async move {
                open_nursery(async |n| {
                    n.start_soon_named("C", async move {
                        checkpoint().await?;
                        // Recorded from here on.
                        trio::lowlevel::add_instrument(s2)?;
                        checkpoint().await?;
                        Ok(())
                    });
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
    assert_eq!(
        got[..4],
        ["scheduled C", "scheduled T", "after C", "after T"],
        "{got:?}"
    );
}

/// A round that cannot be taken does not read the clock: two tasks, each
/// with a nursery whose child checkpoints 300 times (never a round: the
/// other one is always ready), under one far deadline read it about once
/// per tick (304 times; a check that read it first read it 1 196 times).
#[test]
fn refused_rounds_do_not_read_the_clock() {
    let reads = Rc::new(Cell::new(0));
    let counted = reads.clone();
    let clock = HookClock {
        inner: MockClock::new(),
        on_read: Box::new(move |_| counted.set(counted.get() + 1)),
    };
    trio::Runner::new()
        .clock(clock)
        .run(async {
            trio::move_on_after(1000.0, async {
                open_nursery(async |p| {
                    for _ in 0..2 {
                        p.start_soon(async {
                            open_nursery(async |n| {
                                n.start_soon(async {
                                    for _ in 0..300 {
                                        checkpoint().await?;
                                    }
                                    Ok(())
                                });
                                Ok(())
                            })
                            .await?;
                            Ok(())
                        });
                    }
                    Ok(())
                })
                .await
            })
            .await?;
            Ok(())
        })
        .unwrap();
    assert!(reads.get() < 400, "{} clock reads", reads.get());
}

/// How many checkpoints a lone spinner (taking in-place rounds) passes
/// before a reader of a now-readable fd is woken, for three phases of the
/// I/O-poll interval: the same counts as without rounds, which are counted
/// as ticks exactly (`ticks_since_io += rounds - remaining`).
#[test]
fn probe_io_latency_in_spinner_checkpoints() {
    let mut seen = Vec::new();
    use std::io::Write;
    use std::os::fd::AsRawFd;
    for round in 0..3 {
        let out = trio::run(async {
            let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
            a.set_nonblocking(true)?;
            let fd = a.as_raw_fd();
            let spun = Cell::new(0u32);
            let seen_at = Cell::new(0u32);
            open_nursery(async |n| {
                let (spun, seen_at) = (&spun, &seen_at);
                n.start_soon(async move {
                    trio::lowlevel::wait_readable(fd).await?;
                    seen_at.set(spun.get());
                    Ok(())
                });
                n.start_soon(async move {
                    for _ in 0..round * 17 {
                        checkpoint().await?;
                    }
                    b.write_all(b"x")?;
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
        seen.push(out);
    }
    assert_eq!(seen, [59, 42, 25]);
}
