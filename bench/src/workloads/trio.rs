//! The workloads on trio: one `trio::run` per measurement, nurseries for
//! every group of tasks, `trio::checkpoint` for yields, `move_on_after` for
//! timeouts and cancel scopes for cancellation.
//!
//! The clock starts inside the future given to `trio::run`, so runtime
//! construction and teardown are not timed. Children borrow from the
//! enclosing scope where that is natural (nurseries allow it), which is what
//! a trio user would do instead of `Rc`.

use std::cell::Cell;
use std::time::Duration;

use super::clock::Instant;

use super::{Shape, Workload, per_task_overhead};
use crate::alloc;

/// `trio::run`, panicking on error: a failing benchmark is a bug.
fn block_on<T>(fut: impl Future<Output = trio::Result<T>>) -> T {
    trio::run(fut).unwrap_or_else(|err| panic!("trio::run failed: {err}"))
}

pub fn run(workload: Workload, shape: Shape) -> Option<Duration> {
    let Shape { n, m, .. } = shape;
    Some(match workload {
        Workload::SpawnJoin => spawn_join(n),
        Workload::Yield => yields(n, m),
        Workload::PingPong => return ping_pong(n),
        Workload::Timeout => timeout(n),
        Workload::Sleep => sleep(n),
        Workload::Cancel => cancel(n, m),
        Workload::NurseryEmpty | Workload::Nursery10 => nurseries(n, m),
    })
}

fn spawn_join(n: usize) -> Duration {
    block_on(async {
        let start = Instant::now();
        trio::open_nursery(async |nursery| {
            for _ in 0..n {
                nursery.start_soon(async {});
            }
            Ok(())
        })
        .await?;
        Ok(start.elapsed())
    })
}

fn yields(tasks: usize, yields: usize) -> Duration {
    block_on(async {
        let start = Instant::now();
        trio::open_nursery(async |nursery| {
            for _ in 0..tasks {
                nursery.start_soon(async move {
                    for _ in 0..yields {
                        trio::checkpoint().await?;
                    }
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        Ok(start.elapsed())
    })
}

/// Two memory channels of capacity 1; the ponger echoes until the ping
/// channel closes (`receive` fails with `EndOfChannel`).
fn ping_pong(round_trips: usize) -> Option<Duration> {
    Some(block_on(async {
        let start = Instant::now();
        let (ping_tx, ping_rx) = trio::open_memory_channel::<usize>(1);
        let (pong_tx, pong_rx) = trio::open_memory_channel::<usize>(1);
        trio::open_nursery(async |nursery| {
            nursery.start_soon(async move {
                while let Ok(v) = ping_rx.receive().await {
                    pong_tx.send(v).await?;
                }
                Ok(())
            });
            for i in 0..round_trips {
                ping_tx.send(i).await?;
                let v = pong_rx.receive().await?;
                debug_assert_eq!(v, i);
            }
            ping_tx.close();
            Ok(())
        })
        .await?;
        Ok(start.elapsed())
    }))
}

fn timeout(n: usize) -> Duration {
    block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            let done = trio::move_on_after(Duration::from_secs(10), trio::checkpoint()).await?;
            assert!(done.is_some(), "timeout fired");
        }
        Ok(start.elapsed())
    })
}

fn sleep(n: usize) -> Duration {
    block_on(async {
        let start = Instant::now();
        trio::open_nursery(async |nursery| {
            // `tokio::time::sleep(d)` fixes its deadline when the future is
            // made (here, at spawn); `trio::sleep(d)`, like Trio's, when it
            // first runs (after every child is spawned). To time the same
            // work, fix the deadline at spawn on both sides: `sleep_until`.
            let now = trio::current_time();
            for i in 0..n {
                let deadline = now + super::sleep_for(i);
                nursery.start_soon(trio::sleep_until(deadline));
            }
            Ok(())
        })
        .await?;
        Ok(start.elapsed())
    })
}

/// Children blocked in `sleep_forever`; the timed part runs from
/// `cancel_scope().cancel()` until `open_nursery` has returned, i.e. until
/// every child has been woken, has seen `Cancelled` and has been reaped.
fn cancel(n: usize, batches: usize) -> Duration {
    block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..batches {
            let started = Cell::new(0usize);
            let cancelled_at = Cell::new(None);
            trio::open_nursery(async |nursery| {
                for _ in 0..n {
                    let started = &started;
                    nursery.start_soon(async move {
                        started.set(started.get() + 1);
                        trio::sleep_forever().await
                    });
                }
                while started.get() < n {
                    trio::checkpoint().await?;
                }
                cancelled_at.set(Some(Instant::now()));
                nursery.cancel_scope().cancel();
                Ok(())
            })
            .await?;
            total += cancelled_at.get().expect("nursery body ran").elapsed();
        }
        Ok(total)
    })
}

fn nurseries(n: usize, children: usize) -> Duration {
    block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            trio::open_nursery(async |nursery| {
                for _ in 0..children {
                    nursery.start_soon(async {});
                }
                Ok(())
            })
            .await?;
        }
        Ok(start.elapsed())
    })
}

/// Bytes per task for `n` children blocked in `Event::wait` (the wait that
/// tokio's `Notify::notified` and smol's `event_listener` stand for on the
/// other sides), each polled once before the second reading; the event is set
/// afterwards so the nursery can close. Nursery children have no handle, so
/// there is no handle storage to exclude.
pub fn task_memory(n: usize) -> super::TaskMemory {
    block_on(async {
        let started = Cell::new(0usize);
        let release = trio::sync::Event::new();
        let measured = Cell::new(None);
        let make = || {
            let (started, release) = (&started, &release);
            async move {
                started.set(started.get() + 1);
                release.wait().await
            }
        };
        let future_size = size_of_val(&make());
        trio::open_nursery(async |nursery| {
            let before = alloc::live_bytes();
            for _ in 0..n {
                nursery.start_soon(make());
            }
            while started.get() < n {
                trio::checkpoint().await?;
            }
            let after = alloc::live_bytes();
            measured.set(Some(per_task_overhead(after - before, n, future_size)));
            release.set();
            Ok(())
        })
        .await?;
        Ok(measured.get().expect("the nursery body ran"))
    })
}
