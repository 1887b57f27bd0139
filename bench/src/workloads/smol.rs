//! The workloads on smol's building blocks: an [`async_executor::LocalExecutor`]
//! driven by `async_io::block_on` (exactly what `smol::LocalExecutor` +
//! `smol::block_on` are), `async-channel` for channels, `async_io::Timer` for
//! time and `futures_lite` for combinators.
//!
//! Each measurement builds a fresh executor; the clock starts inside the
//! future passed to `LocalExecutor::run`, so construction is not timed.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::clock::Instant;

use async_executor::{LocalExecutor, Task};
use async_io::Timer;
use event_listener::Event;
use futures_lite::future::{self, yield_now};

use super::{Shape, TaskMemory, Workload, per_task_overhead};
use crate::alloc;

/// Runs `f` on a fresh `LocalExecutor`, which `f` gets to spawn on.
fn block_on<T>(f: impl AsyncFnOnce(&LocalExecutor<'static>) -> T) -> T {
    let ex = LocalExecutor::new();
    async_io::block_on(ex.run(f(&ex)))
}

pub fn run(workload: Workload, shape: Shape) -> Option<Duration> {
    let Shape { n, m, .. } = shape;
    Some(match workload {
        Workload::SpawnJoin => spawn_join(n),
        Workload::Yield => yields(n, m),
        Workload::PingPong => ping_pong(n),
        Workload::Timeout => timeout(n),
        Workload::Sleep => sleep(n),
        Workload::Cancel => cancel(n, m),
        Workload::NurseryEmpty | Workload::Nursery10 => scopes(n, m),
    })
}

fn spawn_join(n: usize) -> Duration {
    block_on(async |ex: &LocalExecutor<'static>| {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n).map(|_| ex.spawn(async {})).collect();
        for task in tasks {
            task.await;
        }
        start.elapsed()
    })
}

fn yields(tasks: usize, yields: usize) -> Duration {
    block_on(async |ex: &LocalExecutor<'static>| {
        let start = Instant::now();
        let tasks: Vec<_> = (0..tasks)
            .map(|_| {
                ex.spawn(async move {
                    for _ in 0..yields {
                        yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        start.elapsed()
    })
}

fn ping_pong(round_trips: usize) -> Duration {
    block_on(async |ex: &LocalExecutor<'static>| {
        let start = Instant::now();
        let (ping_tx, ping_rx) = async_channel::bounded::<usize>(1);
        let (pong_tx, pong_rx) = async_channel::bounded::<usize>(1);
        let ponger = ex.spawn(async move {
            while let Ok(v) = ping_rx.recv().await {
                if pong_tx.send(v).await.is_err() {
                    break;
                }
            }
        });
        for i in 0..round_trips {
            ping_tx.send(i).await.expect("ponger gone");
            let v = pong_rx.recv().await.expect("ponger gone");
            debug_assert_eq!(v, i);
        }
        drop(ping_tx);
        ponger.await;
        start.elapsed()
    })
}

/// smol has no `timeout` helper; the idiom is racing the operation against a
/// `Timer` with `or`, which polls the operation first.
fn timeout(n: usize) -> Duration {
    block_on(async |_: &LocalExecutor<'static>| {
        let start = Instant::now();
        for _ in 0..n {
            let finished = future::or(
                async {
                    yield_now().await;
                    true
                },
                async {
                    Timer::after(Duration::from_secs(10)).await;
                    false
                },
            )
            .await;
            assert!(finished, "timeout fired");
        }
        start.elapsed()
    })
}

fn sleep(n: usize) -> Duration {
    block_on(async |ex: &LocalExecutor<'static>| {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                // Deadline fixed at spawn, as tokio's `sleep(d)` does.
                let timer = Timer::after(super::sleep_for(i));
                ex.spawn(async move {
                    timer.await;
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        start.elapsed()
    })
}

/// Dropping a `Task` cancels it: the executor drops its future the next time
/// it gets to it. The timed part ends when every future has been dropped,
/// which we see through the reference count of a token each future holds.
fn cancel(n: usize, batches: usize) -> Duration {
    block_on(async |ex: &LocalExecutor<'static>| {
        let mut total = Duration::ZERO;
        for _ in 0..batches {
            let started = Rc::new(Cell::new(0usize));
            let tasks: Vec<Task<()>> = (0..n)
                .map(|_| {
                    let started = started.clone();
                    ex.spawn(async move {
                        started.set(started.get() + 1);
                        future::pending::<()>().await;
                    })
                })
                .collect();
            while started.get() < n {
                yield_now().await;
            }
            let start = Instant::now();
            drop(tasks);
            while Rc::strong_count(&started) > 1 {
                yield_now().await;
            }
            total += start.elapsed();
        }
        total
    })
}

/// smol has no nursery; the equivalent is spawning the children and awaiting
/// every `Task` before going on.
fn scopes(n: usize, children: usize) -> Duration {
    block_on(async |ex: &LocalExecutor<'static>| {
        let start = Instant::now();
        for _ in 0..n {
            let tasks: Vec<Task<()>> = (0..children).map(|_| ex.spawn(async {})).collect();
            for task in tasks {
                task.await;
            }
        }
        start.elapsed()
    })
}

/// Bytes per task for `n` tasks blocked in `event_listener::Event::listen()`
/// (what smol's own channels and locks wait on; the equivalent of trio's
/// `Event::wait`; the listener is a heap entry in the event's list, so it
/// counts as runtime-owned), spawned detached (`Task::detach`, so no handle
/// storage is counted) and each polled once before the second reading.
pub fn task_memory(n: usize) -> TaskMemory {
    block_on(async |ex: &LocalExecutor<'static>| {
        let started = Rc::new(Cell::new(0usize));
        let release = Rc::new(Event::new());
        let make = || {
            let (started, release) = (started.clone(), release.clone());
            async move {
                started.set(started.get() + 1);
                release.listen().await;
            }
        };
        let future_size = size_of_val(&make());
        let before = alloc::live_bytes();
        for _ in 0..n {
            ex.spawn(make()).detach();
        }
        while started.get() < n {
            yield_now().await;
        }
        let after = alloc::live_bytes();
        // The tasks are dropped with the executor.
        per_task_overhead(after - before, n, future_size)
    })
}
