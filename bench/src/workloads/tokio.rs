//! The workloads on tokio's `current_thread` runtime with a [`LocalSet`], so
//! tasks are `!Send`-capable `spawn_local` tasks like trio's and smol's local
//! ones.
//!
//! Each measurement builds a fresh runtime (time driver enabled, nothing else)
//! and a fresh `LocalSet`; the clock starts inside the `LocalSet` future, so
//! construction and teardown are not timed.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::clock::Instant;

use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinSet, LocalSet, spawn_local, yield_now};

use super::{Shape, TaskMemory, Workload, per_task_overhead};
use crate::alloc;

/// Runs `f` to completion on a fresh current-thread runtime + `LocalSet`.
fn block_on<T>(f: impl AsyncFnOnce() -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("build tokio runtime");
    LocalSet::new().block_on(&rt, f())
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
        Workload::NurseryEmpty | Workload::Nursery10 => join_sets(n, m),
    })
}

fn spawn_join(n: usize) -> Duration {
    block_on(async || {
        let start = Instant::now();
        let handles: Vec<_> = (0..n).map(|_| spawn_local(async {})).collect();
        for handle in handles {
            handle.await.expect("child failed");
        }
        start.elapsed()
    })
}

fn yields(tasks: usize, yields: usize) -> Duration {
    block_on(async || {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                spawn_local(async move {
                    for _ in 0..yields {
                        yield_now().await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("child failed");
        }
        start.elapsed()
    })
}

fn ping_pong(round_trips: usize) -> Duration {
    block_on(async || {
        let start = Instant::now();
        let (ping_tx, mut ping_rx) = mpsc::channel::<usize>(1);
        let (pong_tx, mut pong_rx) = mpsc::channel::<usize>(1);
        let ponger = spawn_local(async move {
            while let Some(v) = ping_rx.recv().await {
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
        ponger.await.expect("ponger failed");
        start.elapsed()
    })
}

fn timeout(n: usize) -> Duration {
    block_on(async || {
        let start = Instant::now();
        for _ in 0..n {
            tokio::time::timeout(Duration::from_secs(10), yield_now())
                .await
                .expect("timeout fired");
        }
        start.elapsed()
    })
}

fn sleep(n: usize) -> Duration {
    block_on(async || {
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| spawn_local(tokio::time::sleep(super::sleep_for(i))))
            .collect();
        for handle in handles {
            handle.await.expect("sleeper failed");
        }
        start.elapsed()
    })
}

fn cancel(n: usize, batches: usize) -> Duration {
    block_on(async || {
        let mut total = Duration::ZERO;
        for _ in 0..batches {
            let started = Rc::new(Cell::new(0usize));
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    let started = started.clone();
                    spawn_local(async move {
                        started.set(started.get() + 1);
                        std::future::pending::<()>().await;
                    })
                })
                .collect();
            // A LocalSet runs at most a few dozen tasks per tick, so one
            // yield is not enough for all of them to reach `pending()`.
            while started.get() < n {
                yield_now().await;
            }
            let start = Instant::now();
            for handle in &handles {
                handle.abort();
            }
            for handle in handles {
                let err = handle.await.expect_err("blocked task finished");
                debug_assert!(err.is_cancelled());
            }
            total += start.elapsed();
        }
        total
    })
}

/// A `JoinSet` is tokio's closest thing to a nursery.
fn join_sets(n: usize, children: usize) -> Duration {
    block_on(async || {
        let start = Instant::now();
        for _ in 0..n {
            let mut set = JoinSet::new();
            for _ in 0..children {
                set.spawn_local(async {});
            }
            while let Some(res) = set.join_next().await {
                res.expect("child failed");
            }
        }
        start.elapsed()
    })
}

/// Bytes per task for `n` tasks blocked in `Notify::notified()` (tokio's
/// equivalent of trio's `Event::wait`: its waiter lives inside the
/// `Notified` future), spawned detached (the `JoinHandle` is dropped, so no
/// handle storage is counted) and each polled once before the second
/// reading.
pub fn task_memory(n: usize) -> TaskMemory {
    block_on(async || {
        let started = Rc::new(Cell::new(0usize));
        let release = Rc::new(Notify::new());
        let make = || {
            let (started, release) = (started.clone(), release.clone());
            async move {
                started.set(started.get() + 1);
                release.notified().await;
            }
        };
        let future_size = size_of_val(&make());
        let before = alloc::live_bytes();
        for _ in 0..n {
            drop(spawn_local(make()));
        }
        while started.get() < n {
            yield_now().await;
        }
        let after = alloc::live_bytes();
        // The tasks are dropped with the LocalSet.
        per_task_overhead(after - before, n, future_size)
    })
}
