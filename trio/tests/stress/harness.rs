//! Running seeds: two runs per seed on a fresh thread under a real-time
//! watchdog, the end-of-seed checks, and the pass summary.
//!
//! A seed is: the workload run (random tasks until a global virtual
//! deadline, then a finale that drains and checks everything), then an
//! epilogue run that meets what the first run leaked in the channel that
//! outlives it, then dropping the world and checking every value's fate.
//! Everything random comes from the seed (the workload's PRNG and the
//! runner's scheduling seed), and the clock is an autojumping
//! `MockClock`, so a seed without worker threads replays exactly.

use super::counters::{C, Pass, Totals};
use super::ledger::Payload;
use super::ops::{self, Ctx, Intentional, close_doomed};
use super::prng::Rng;
use super::world::{FEATURE_NAMES, Features, Probe, World};
use super::{files, processes, serving, streams};
use std::cell::RefCell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, mpsc};
use std::time::{Duration, Instant};
use trio::testing::MockClock;
use trio::{ErrorKind, MemorySendChannel, Result, Runner};

/// A pass stops after this many hung seeds.
const MAX_HANGS: usize = 3;

/// Virtual seconds the workload runs before everything is cancelled.
const GLOBAL_DEADLINE: f64 = 60.0;

/// How a pass runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Add worker-thread operations (then seeds do not replay exactly).
    pub threads: bool,
    /// Feature overrides from `TRIO_STRESS_FEATURES`.
    pub overrides: Vec<(String, bool)>,
    /// Real time after which a seed counts as hung.
    pub timeout: Duration,
}

/// What one seed did.
#[derive(Clone, Debug)]
pub struct SeedReport {
    pub seed: u64,
    pub features: String,
    pub totals: Totals,
    pub failures: Vec<String>,
    /// A hash of everything observable, equal between replays of a seed.
    pub fingerprint: u64,
}

thread_local! {
    /// Unexpected panics seen on this thread (with where they happened).
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Also print unexpected panics with the default hook (replay mode).
static LOUD: AtomicBool = AtomicBool::new(false);

fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

fn is_seed_thread() -> bool {
    std::thread::current()
        .name()
        .is_some_and(|n| n.starts_with("stress-seed-"))
}

/// On seed threads: the workload's own panics are silent, and every other
/// panic is recorded with its location (even one the runtime catches and a
/// nursery later swallows: no panic from the runtime goes unnoticed).
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !is_seed_thread() {
                return default(info);
            }
            if info.payload().is::<Intentional>() {
                return;
            }
            let at = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let text = format!("panic at {at}: {}", payload_text(info.payload()));
            PANICS.with(|p| p.borrow_mut().push(text));
            if LOUD.load(Ordering::Relaxed) {
                default(info);
            }
        }));
    });
}

pub fn set_loud(loud: bool) {
    LOUD.store(loud, Ordering::Relaxed);
}

/// Runs one seed on this thread.
pub fn run_seed(seed: u64, opts: &Options) -> SeedReport {
    PANICS.with(|p| p.borrow_mut().clear());
    let features = Features::for_seed(seed, &opts.overrides);
    let w = Rc::new(World::new(seed, features, opts.threads));
    let mut failures = Vec::new();

    let clock = MockClock::autojump();
    let mut runner = Runner::new().clock(clock.clone()).seed(seed);
    if features.instrument {
        runner = runner.instrument(Rc::new(Probe(w.clone())));
    }
    let first = catch_unwind(AssertUnwindSafe(|| runner.run(workload(&w))));
    let end_time = clock.current_time();
    if settle_run(&mut failures, "the workload run", first) {
        w.bump(C::runs);
        let second = catch_unwind(AssertUnwindSafe(|| {
            Runner::new()
                .clock(MockClock::autojump())
                .seed(seed)
                .run(epilogue(&w))
        }));
        if settle_run(&mut failures, "the epilogue run", second) {
            w.bump(C::runs);
        }
    }

    let mut totals = w.counts.totals();
    let (ledger, violations) = (w.ledger.clone(), w.violations.clone());
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| drop(w))) {
        failures.push(format!(
            "dropping the world panicked: {}",
            payload_text(&*p)
        ));
    }
    totals.0[C::drop_probes as usize] = ledger.drop_probes();
    totals.0[C::values_dropped_at_close as usize] = ledger.dropped_at_close();
    ledger.check_final();
    failures.extend(PANICS.with(|p| p.take()));
    failures.extend(
        violations
            .take()
            .into_iter()
            .map(|v| format!("violation: {v}")),
    );

    let mut h = DefaultHasher::new();
    totals.hash(&mut h);
    failures.hash(&mut h);
    end_time.as_nanos().hash(&mut h);
    SeedReport {
        seed,
        features: features.describe(),
        totals,
        failures,
        fingerprint: h.finish(),
    }
}

/// Records how a run ended; true if it returned `Ok`.
fn settle_run(failures: &mut Vec<String>, what: &str, r: std::thread::Result<Result<()>>) -> bool {
    match r {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            let text = format!("{e}");
            // A Deadlock error carries the whole task tree: keep it short.
            let text: String = text.lines().take(12).collect::<Vec<_>>().join("\n    ");
            failures.push(format!("{what} returned an error ({:?}): {text}", e.kind()));
            false
        }
        Err(p) => {
            // The hook recorded where; this says which run.
            failures.push(format!("{what} panicked: {}", payload_text(&*p)));
            false
        }
    }
}

/// The workload run: random tasks until the global deadline, then the finale.
async fn workload(w: &World) -> Result<()> {
    let mut rng = Rng::new(w.seed);
    let tasks = rng.range(4, 12);
    let cx = Ctx {
        w,
        depth: 0,
        droppable: false,
    };
    trio::move_on_after(
        GLOBAL_DEADLINE,
        trio::open_nursery(async |n| {
            for _ in 0..tasks {
                n.start_soon(ops::worker(cx, n.clone(), rng.fork(), rng.range(20, 60)));
            }
            if w.features.chaos {
                n.start_soon(ops::chaos(w, rng.fork()));
            }
            n.start_soon(ops::closer(w, rng.fork()));
            if w.features.streams || w.features.sockets {
                n.start_soon(streams::driver(w, rng.fork()));
            }
            // Forked only when on, so that a seed without these features
            // runs exactly as before they existed.
            if w.features.serving || w.features.tcp_serving {
                n.start_soon(serving::driver(w, rng.fork()));
            }
            if w.features.processes {
                n.start_soon(processes::driver(w, rng.fork()));
            }
            if w.features.files {
                n.start_soon(files::driver(w, rng.fork()));
            }
            Ok(())
        }),
    )
    .await?;
    finale(w).await
}

/// After every task has finished: drain the channels and check that
/// everything was given back.
async fn finale(w: &World) -> Result<()> {
    // Their start calls are gone; calling started() on them must be harmless.
    let orphans: Vec<_> = w.handoffs.borrow_mut().drain(..).collect();
    for h in orphans {
        h.status.started(0);
    }
    if !w.doomed_closed.get() {
        close_doomed(w);
    }
    for c in &w.chans {
        c.tx.close();
        loop {
            match c.rx.try_receive() {
                Ok(v) => {
                    w.ledger.received(v.id);
                    w.bump(C::values_received);
                }
                Err(e) if e.kind() == ErrorKind::EndOfChannel => break,
                Err(e) if c.doomed && e.kind() == ErrorKind::Closed => break,
                Err(e) => {
                    w.violation(format!("draining channel {} after the run: {e:?}", c.index));
                    break;
                }
            }
        }
        c.rx.close();
    }
    if w.lock.locked() {
        w.violation(format!(
            "the Lock is still held after every task finished: {:?}",
            w.lock
        ));
    }
    if w.sem.value() != w.sem_cap {
        w.violation(format!(
            "Semaphore value {} after every task finished, expected {}",
            w.sem.value(),
            w.sem_cap
        ));
    }
    // Abandoned worker threads may still hold tokens in the threads pass.
    if !w.threads && w.limiter.borrowed_tokens() != 0 {
        w.violation(format!(
            "CapacityLimiter still lends {} tokens after every task finished",
            w.limiter.borrowed_tokens()
        ));
    }
    let sections = w.counts.get(C::mutex_sections);
    match w.mutex.try_lock() {
        Ok(g) if g.count != sections => w.violation(format!(
            "Mutex counter is {} after {sections} critical sections: an update was lost",
            g.count
        )),
        Ok(_) => {}
        Err(e) => w.violation(format!("the Mutex is unavailable after the run: {e:?}")),
    }
    Ok(())
}

/// The second run: the channel that outlived the first one may hold send
/// waiters leaked there (stale now); it must shed them without losing its
/// footing, and still work. It sheds them one of three ways (drawn from the
/// seed): a `try_receive` that meets them, closing the send handle they
/// were made through, or closing the last receiver. Each way drops their
/// values (whose destructors use the channel) inside the channel's code.
async fn epilogue(w: &World) -> Result<()> {
    let x = &w.xchan;
    let stale = x.tx.statistics().tasks_waiting_send as u64;
    let mut rng = Rng::new(w.seed ^ 0xE916_0600);
    match rng.below(3) {
        0 => {
            shed_by_receiving(w);
            works_after_shedding(w, &x.tx).await?;
            x.tx.close();
        }
        1 => {
            // Every leaked send went through `x.tx`: closing it closes
            // their waits. A clone made first keeps the channel usable.
            let tx = x.tx.clone();
            x.tx.close();
            stale_sheds_counted(w, stale, "closing the send handle they used");
            shed_by_receiving(w);
            works_after_shedding(w, &tx).await?;
            tx.close();
        }
        _ => {
            // The last open receiver (the probe's spy is a closed clone):
            // the stale senders see Broken, and so does any later send.
            x.rx.close();
            stale_sheds_counted(w, stale, "closing the last receiver");
            let v = w.payload(x);
            match x.tx.try_send(v) {
                Ok(()) => w.violation(
                    "try_send on the channel whose receivers are all closed returned Ok".into(),
                ),
                Err(e) => {
                    let (e, v) = e.into_parts();
                    w.ledger.handed_back(v.id);
                    w.bump(C::values_handed_back);
                    if e.kind() != ErrorKind::Broken {
                        w.violation(format!(
                            "try_send on the channel whose receivers are all closed: {e:?}, expected Broken"
                        ));
                    }
                }
            }
            x.tx.close();
        }
    }
    x.rx.close();
    Ok(())
}

/// A `try_receive` on the channel that outlived its run: it meets the
/// stale senders (if still there), drops their values and finds nothing.
fn shed_by_receiving(w: &World) {
    let x = &w.xchan;
    match x.rx.try_receive() {
        Ok(v) => {
            w.ledger.received(v.id);
            w.bump(C::values_received);
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => w.violation(format!(
            "try_receive on the channel that outlived its run: {e:?}"
        )),
    }
}

/// After a close shed `stale` leaked senders: none is left, and the count.
fn stale_sheds_counted(w: &World, stale: u64, how: &str) {
    let left = w.xchan.tx.statistics().tasks_waiting_send;
    if left != 0 {
        w.violation(format!(
            "{left} of {stale} stale senders still wait after {how}"
        ));
    }
    w.counts.add(C::stale_sends_shed_by_close, stale);
}

/// A send and a receive through the channel that outlived its run.
async fn works_after_shedding(w: &World, tx: &MemorySendChannel<Payload>) -> Result<()> {
    let x = &w.xchan;
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let v = w.payload(x);
            let id = v.id;
            match tx.send(v).await {
                Ok(()) => w.ledger.sent(id),
                Err(e) => {
                    let (e, v) = e.into_parts();
                    w.ledger.handed_back(v.id);
                    w.violation(format!("send in the epilogue failed: {e:?}"));
                }
            }
            Ok(())
        });
        let v = x.rx.receive().await?;
        w.ledger.received(v.id);
        w.bump(C::values_received);
        Ok(())
    })
    .await?;
    Ok(())
}

/// Runs one seed on its own thread and waits at most `opts.timeout`.
pub fn run_watched(seed: u64, opts: &Arc<Options>) -> SeedReport {
    let (tx, rx) = mpsc::channel();
    let o = opts.clone();
    let handle = std::thread::Builder::new()
        .name(format!("stress-seed-{seed}"))
        // Nested boxed futures make deep polls in debug builds.
        .stack_size(16 << 20)
        .spawn(move || {
            let _ = tx.send(run_seed(seed, &o));
        })
        .expect("spawn a seed thread");
    let failed = |why: String| SeedReport {
        seed,
        features: Features::for_seed(seed, &opts.overrides).describe(),
        totals: Totals::default(),
        failures: vec![why],
        fingerprint: 0,
    };
    match rx.recv_timeout(opts.timeout) {
        Ok(r) => {
            let _ = handle.join();
            r
        }
        // The thread cannot be stopped: it is left running, and the pass
        // fails.
        Err(mpsc::RecvTimeoutError::Timeout) => failed(format!(
            "hung: no result after {:?} of real time (watchdog)",
            opts.timeout
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let why = match handle.join() {
                Err(p) => payload_text(&*p),
                Ok(()) => "no report".into(),
            };
            failed(format!("the seed's thread died: {why}"))
        }
    }
}

/// The settings read from the environment (see the module doc of the test).
pub struct Env {
    pub seed: Option<u64>,
    pub seeds: Option<u64>,
    pub thread_seeds: Option<u64>,
    pub first: u64,
    pub overrides: Vec<(String, bool)>,
    pub timeout: Duration,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be an unsigned integer, got {v:?}")),
    )
}

impl Env {
    pub fn read() -> Env {
        let overrides = std::env::var("TRIO_STRESS_FEATURES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let (name, on) = match s.strip_prefix('-') {
                    Some(n) => (n, false),
                    None => (s.strip_prefix('+').unwrap_or(s), true),
                };
                assert!(
                    name == "all" || FEATURE_NAMES.contains(&name),
                    "TRIO_STRESS_FEATURES: unknown feature {name:?} (known: all, {})",
                    FEATURE_NAMES.join(", ")
                );
                (name.to_string(), on)
            })
            .collect();
        Env {
            seed: env_u64("TRIO_STRESS_SEED"),
            seeds: env_u64("TRIO_STRESS_SEEDS"),
            thread_seeds: env_u64("TRIO_STRESS_THREAD_SEEDS"),
            first: env_u64("TRIO_STRESS_FIRST").unwrap_or(0),
            overrides,
            timeout: Duration::from_secs(env_u64("TRIO_STRESS_TIMEOUT").unwrap_or(30)),
        }
    }
}

/// Runs `seeds`, prints failures as they come and the counters at the
/// end; panics (failing the test) if a seed failed or, when
/// `require_counters`, if a counter of this pass stayed at zero.
pub fn run_pass(name: &str, seeds: &[u64], opts: Options, pass: Pass, require_counters: bool) {
    install_panic_hook();
    let opts = Arc::new(opts);
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut failed = Vec::new();
    let mut hung = 0;
    let mut ran = 0;
    for &seed in seeds {
        if hung == MAX_HANGS {
            // Each hung seed leaves a thread behind (maybe spinning): stop.
            eprintln!("stress[{name}]: {MAX_HANGS} seeds hung, not running the rest");
            break;
        }
        ran += 1;
        let r = run_watched(seed, &opts);
        if r.failures.iter().any(|f| f.starts_with("hung:")) {
            hung += 1;
        }
        totals.add(&r.totals);
        if !r.failures.is_empty() {
            // One write per report, so that passes running in parallel
            // do not interleave their lines.
            let mut text = format!(
                "stress[{name}] seed {} FAILED (features: {}):\n",
                r.seed, r.features
            );
            for f in r.failures.iter().take(4) {
                text += &format!("    {f}\n");
            }
            if r.failures.len() > 4 {
                text += &format!("    … and {} more\n", r.failures.len() - 4);
            }
            eprint!("{text}");
            failed.push(seed);
        }
    }
    let elapsed = started.elapsed();
    let mut text = format!(
        "stress[{name}]: {ran} seed(s) from {} in {:.1}s, {} failed; counters (summed over seeds):\n",
        seeds.first().copied().unwrap_or(0),
        elapsed.as_secs_f64(),
        failed.len()
    );
    let mut zero = Vec::new();
    for &c in C::ALL {
        // The threads pass shows the main counters too, but requires only
        // its own (it runs fewer seeds).
        if pass == Pass::Main && c.pass() != Pass::Main {
            continue;
        }
        text += &format!("    {:<28} {:>9}\n", c.name(), totals.get(c));
        if totals.get(c) == 0 && c.pass() == pass {
            zero.push(c.name());
        }
    }
    eprint!("{text}");
    if !failed.is_empty() {
        let shown: Vec<String> = failed.iter().take(30).map(u64::to_string).collect();
        panic!(
            "stress[{name}]: {} of {} seeds failed: {}{}\nreplay one with: TRIO_STRESS_SEED=<seed> cargo test -p trio --test stress {} -- --nocapture",
            failed.len(),
            ran,
            shown.join(", "),
            if failed.len() > 30 { ", …" } else { "" },
            if pass == Pass::Threads {
                "threads"
            } else {
                "mixed"
            }
        );
    }
    if require_counters && !zero.is_empty() {
        panic!(
            "stress[{name}]: these counters stayed at zero, so part of the workload never ran: {}",
            zero.join(", ")
        );
    }
}
