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
    let after = threads();
    assert_eq!(after, before, "threads before the run and after it");
    // And again: a second run starts (and stops) a runtime of its own.
    trio::run(async {
        trio_compat::tokio_raw(async { tokio::task::yield_now().await }).await?;
        Ok(())
    })
    .unwrap();
    assert_eq!(threads(), before, "threads after a second run");
    println!("tokio_threads: ok ({before} threads before, {after} after)");
}
