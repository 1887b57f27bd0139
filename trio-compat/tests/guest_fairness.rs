//! Guest mode is fair both ways, measured on the real clock: a host task's
//! tokio timers fire on time while a guest task is busy (looping on
//! `checkpoint()`), and a guest task's trio timers fire on time while a
//! host task is busy (looping on `yield_now()`). Each poll of the guest
//! takes at most one batch, so neither loop can starve the other.
//!
//! Benchmark-style: it prints how late the timers fired (and, for
//! context, how many checkpoints a busy guest passes per second next to a
//! plain `trio::run`), and asserts only a generous bound (a timer less
//! than a second late), since the machine may be loaded. A `harness =
//! false` binary: the numbers are printed whether it passes or not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use trio::Runner;
use trio_compat::guest::start_guest;

/// How long the busy side keeps busy.
const BUSY: Duration = Duration::from_millis(400);
/// The timers measured: this many, of this length, one after another.
const TIMERS: usize = 20;
const TIMER: Duration = Duration::from_millis(10);
/// The generous bound on how late a timer may fire.
const BOUND: Duration = Duration::from_secs(1);

/// Lateness statistics, in milliseconds: (median, max).
fn stats(mut late: Vec<Duration>) -> (f64, f64) {
    late.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(late[late.len() / 2]), ms(late[late.len() - 1]))
}

/// A guest task that passes checkpoints for `BUSY`; returns how many.
async fn busy_guest() -> trio::Result<u64> {
    let end = Instant::now() + BUSY;
    let mut n = 0;
    while Instant::now() < end {
        trio::lowlevel::checkpoint().await?;
        n += 1;
    }
    Ok(n)
}

fn host() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn main() {
    // For context: a busy loop in a plain run.
    let plain = trio::run(busy_guest()).unwrap();

    // 1. Host timers while the guest is busy.
    let (guested, host_late) = host().block_on(async {
        let timers = tokio::spawn(async {
            let mut late = Vec::new();
            for _ in 0..TIMERS {
                let start = Instant::now();
                tokio::time::sleep(TIMER).await;
                late.push(start.elapsed().saturating_sub(TIMER));
            }
            late
        });
        let n = start_guest(Runner::new(), busy_guest()).await.unwrap();
        (n, timers.await.unwrap())
    });
    assert!(
        host_late.len() == TIMERS,
        "every host timer fired while the guest was busy ({BUSY:?} > {TIMERS} x {TIMER:?})"
    );

    // 2. Guest timers while the host is busy.
    let stop = Arc::new(AtomicBool::new(false));
    let spins = Arc::new(AtomicU64::new(0));
    let guest_late = host().block_on(async {
        let (stop2, spins2) = (stop.clone(), spins.clone());
        let busy = tokio::spawn(async move {
            let end = Instant::now() + BUSY;
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                tokio::task::yield_now().await;
                spins2.fetch_add(1, Ordering::Relaxed);
            }
        });
        let late = start_guest(Runner::new(), async {
            let mut late = Vec::new();
            for _ in 0..TIMERS {
                let start = Instant::now();
                trio::sleep(TIMER).await?;
                late.push(start.elapsed().saturating_sub(TIMER));
            }
            Ok(late)
        })
        .await
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        busy.await.unwrap();
        late
    });

    let (host_median, host_max) = stats(host_late);
    let (guest_median, guest_max) = stats(guest_late);
    let per_sec = |n: u64| n as f64 / BUSY.as_secs_f64();
    println!("guest fairness ({TIMERS} timers of {TIMER:?} each, the other side busy):");
    println!(
        "  host (tokio) timer while the guest loops on checkpoint(): \
         late by {host_median:.2} ms median, {host_max:.2} ms max"
    );
    println!(
        "  guest (trio) timer while a host task loops on yield_now(): \
         late by {guest_median:.2} ms median, {guest_max:.2} ms max"
    );
    println!(
        "  busy guest: {:.0} checkpoints/s (plain trio::run: {:.0}/s); \
         busy host: {:.0} yields/s beside the guest's timers",
        per_sec(guested),
        per_sec(plain),
        per_sec(spins.load(Ordering::Relaxed)),
    );
    let bound = BOUND.as_secs_f64() * 1e3;
    assert!(host_max < bound, "a host timer was {host_max:.1} ms late");
    assert!(
        guest_max < bound,
        "a guest timer was {guest_max:.1} ms late"
    );
    assert!(spins.load(Ordering::Relaxed) > 0, "the busy host task ran");
    println!("guest_fairness: ok");
}
