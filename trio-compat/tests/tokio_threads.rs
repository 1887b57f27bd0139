//! No thread is left running after a run that used `trio_compat::tokio`:
//! the run's tokio helper thread and tokio's blocking-pool threads
//! (`tokio::fs`) are gone when `trio::run` returns.
//!
//! A `harness = false` binary, so that no test-harness threads run beside
//! it and the count of `/proc/self/task` is exact.

use std::time::Duration;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable (Linux)")
        .count()
}

/// The thread count once it is back to `want`, or after 2 s. A joined
/// thread can still be listed for a moment: `pthread_join` returns when the
/// kernel clears the thread's tid, which comes before the thread's task is
/// released (and tokio's idle blocking-pool threads exit on their own,
/// after the runtime's shutdown has seen them stop working).
fn threads_settled(want: usize) -> usize {
    let end = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let n = threads();
        if n == want || std::time::Instant::now() > end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() {
    let before = threads();
    trio::run(async {
        // The runtime starts: one helper thread, plus blocking-pool threads
        // for the file operations and the timer.
        let dir = std::env::temp_dir().join(format!("trio-compat-threads-{}", std::process::id()));
        trio_compat::tokio(async {
            tokio::fs::create_dir_all(&dir).await?;
            tokio::fs::write(dir.join("x"), b"x").await?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::fs::remove_dir_all(&dir).await
        })
        .await?;
        // A task tokio spawned that is still pending when the run ends is
        // dropped with the runtime.
        trio_compat::tokio_raw(async {
            tokio::spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
        })
        .await?;
        assert!(threads() > before, "the helper thread runs during the run");
        Ok(())
    })
    .unwrap();
    let after = threads_settled(before);
    assert_eq!(after, before, "threads before the run and after it");
    // And again: a second run starts (and stops) a runtime of its own.
    trio::run(async {
        trio_compat::tokio_raw(async { tokio::task::yield_now().await }).await?;
        Ok(())
    })
    .unwrap();
    assert_eq!(
        threads_settled(before),
        before,
        "threads after a second run"
    );
    println!("tokio_threads: ok ({before} threads before, {after} after)");
}
