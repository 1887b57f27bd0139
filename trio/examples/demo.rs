//! A tour of trio in one run, on a virtual clock: run with `cargo run --example demo`.
//!
//! 1. A nursery of three "downloads" that borrow the caller's data.
//! 2. One child fails: its siblings and the body are cancelled, and the
//!    nursery reports just that failure.
//! 3. Timeouts that compose: `move_on_after` around a slow call that has its
//!    own timeout inside.
//! 4. `start`: wait for a "server" to be ready before using it.
//!
//! Everything runs on `MockClock::autojump()`, so the minutes of simulated
//! waiting take milliseconds, and the output is the same on every run.

use std::cell::RefCell;
use std::time::Duration;
use trio::ErrorKind;
use trio::testing::MockClock;

fn t() -> String {
    format!("[t={:>5.1}s]", trio::current_time().as_secs_f64())
}

async fn download(name: &str, seconds: f64, log: &RefCell<Vec<String>>) -> trio::Result<()> {
    println!("{} {name}: started ({seconds} s)", t());
    match trio::sleep(seconds).await {
        Ok(()) => {
            println!("{} {name}: done", t());
            log.borrow_mut().push(name.to_string());
            Ok(())
        }
        Err(e) => {
            println!("{} {name}: {e}", t());
            Err(e)
        }
    }
}

async fn demo() -> trio::Result<()> {
    println!(
        "== 1. a nursery: children borrow the caller's data, and all finish before it returns"
    );
    let names: Vec<String> = ["alpha", "beta", "gamma"]
        .into_iter()
        .map(String::from)
        .collect();
    let done = RefCell::new(Vec::new());
    trio::open_nursery(async |nursery| {
        for (i, name) in names.iter().enumerate() {
            nursery.start_soon(download(name, 1.0 + i as f64, &done));
        }
        Ok(())
    })
    .await?;
    println!("{} nursery closed; finished: {:?}\n", t(), done.borrow());

    println!("== 2. a failing child cancels its siblings and the body");
    let result = trio::open_nursery(async |nursery| {
        nursery.start_soon(download("slow-1", 60.0, &done));
        nursery.start_soon(download("slow-2", 90.0, &done));
        nursery.start_soon(async {
            trio::sleep(2.0).await?;
            println!("{} flaky: failing", t());
            Err(trio::Error::new(
                ErrorKind::Broken,
                "flaky: connection reset",
            ))
        });
        match trio::sleep(3600.0).await {
            Ok(()) => println!("{} body: woke normally", t()),
            Err(e) => println!("{} body: {e}", t()),
        }
        Ok(())
    })
    .await;
    match result {
        Err(e) => println!(
            "{} the nursery reports exactly the failure: {e} ({:?})\n",
            t(),
            e.kind()
        ),
        Ok(_) => println!("unexpected success\n"),
    }

    println!("== 3. timeouts compose across layers");
    async fn library_fetch() -> trio::Result<&'static str> {
        // The library has its own 30 s timeout...
        match trio::move_on_after(30.0, trio::sleep(45.0)).await? {
            Some(()) => Ok("page"),
            None => Ok("library timeout"),
        }
    }
    // ... and the caller's tighter 10 s timeout wins without either knowing the other.
    match trio::move_on_after(Duration::from_secs(10), library_fetch()).await? {
        Some(v) => println!("{} got {v}", t()),
        None => println!(
            "{} caller gave up after 10 s; the library's scope did not catch it",
            t()
        ),
    }
    let err = trio::fail_after(5.0, trio::sleep_forever())
        .await
        .unwrap_err();
    println!("{} fail_after: {err} ({:?})\n", t(), err.kind());

    println!("== 4. start(): wait until a child is ready");
    trio::open_nursery(async |nursery| {
        let port = nursery
            .start(async |status| {
                println!("{} server: binding...", t());
                trio::sleep(0.5).await?;
                status.started(8080);
                trio::sleep_forever().await
            })
            .await?;
        println!("{} server ready on port {port}; shutting it down", t());
        nursery.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    println!("{} all done: no task left running", t());
    Ok(())
}

fn main() {
    let clock = MockClock::autojump();
    let started = std::time::Instant::now();
    match trio::Runner::new().clock(clock.clone()).run(demo()) {
        Ok(()) => println!(
            "\n{:.1} virtual seconds in {:.1} ms of real time",
            clock.current_time().as_secs_f64(),
            started.elapsed().as_secs_f64() * 1e3
        ),
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}
