//! Costs of `trio_compat::tokio` (a `harness = false` binary that prints
//! figures; `cargo test` runs it with few iterations as a smoke test).
//!
//! Measure with `TRIO_COMPAT_BENCH_N=200000 taskset -c 0 cargo test
//! --release -p trio-compat --test tokio_bench` (pinned to one core, or
//! leave out `taskset` to let the helper thread run on another core):
//!
//! - `call`: `trio_compat::tokio(async { Ok(()) })`, a future that is ready
//!   at once: the per-call overhead (a checkpoint, the runtime lookup, one
//!   box, one waker, a schedule point), against a bare trio `checkpoint()`.
//! - `ping-pong`: a `tokio::sync::mpsc` round trip between a compat future
//!   in a trio task and a task tokio runs on the helper thread: two
//!   cross-thread wake-ups per round trip (trio → tokio's driver, tokio →
//!   the run's inbox), against the same round trip between two tasks of
//!   one tokio `current_thread` runtime (no thread crossing).

use std::time::Instant;

fn main() {
    let n: u32 = std::env::var("TRIO_COMPAT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    trio::run(async move {
        // Start the runtime outside the timed loops.
        trio_compat::tokio_raw(async {}).await?;

        let t = Instant::now();
        for _ in 0..n {
            trio::lowlevel::checkpoint().await?;
        }
        report("trio checkpoint()", t, n);

        let t = Instant::now();
        for _ in 0..n {
            trio_compat::tokio(async { Ok::<_, std::io::Error>(()) }).await?;
        }
        report("call: trio_compat::tokio(ready)", t, n);

        let (to_tokio, mut from_trio) = tokio::sync::mpsc::channel::<u32>(1);
        let (to_trio, mut from_tokio) = tokio::sync::mpsc::channel::<u32>(1);
        trio_compat::tokio_raw(async move {
            tokio::spawn(async move {
                while let Some(i) = from_trio.recv().await {
                    if to_trio.send(i).await.is_err() {
                        break;
                    }
                }
            });
        })
        .await?;
        let t = Instant::now();
        for i in 0..n {
            // One compat call per round trip: send, then wait for the echo.
            let got = trio_compat::tokio_raw(async {
                to_tokio.send(i).await.ok();
                from_tokio.recv().await
            })
            .await?;
            assert_eq!(got, Some(i));
        }
        report("ping-pong: trio task <-> tokio task", t, n);
        Ok(())
    })
    .unwrap();

    // The same round trip inside one tokio runtime, for comparison.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (to_b, mut from_a) = tokio::sync::mpsc::channel::<u32>(1);
        let (to_a, mut from_b) = tokio::sync::mpsc::channel::<u32>(1);
        tokio::spawn(async move {
            while let Some(i) = from_a.recv().await {
                if to_a.send(i).await.is_err() {
                    break;
                }
            }
        });
        let t = Instant::now();
        for i in 0..n {
            to_b.send(i).await.unwrap();
            assert_eq!(from_b.recv().await, Some(i));
        }
        report("ping-pong: tokio task <-> tokio task", t, n);
    });
}

fn report(what: &str, start: Instant, n: u32) {
    let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
    println!("{what:<40} {ns:>10.0} ns per iteration ({n} iterations)");
}
