//! Randomized stress suite: a mixed workload over every primitive, on many
//! scheduling seeds, with invariants checked on every seed.
//!
//! # What runs
//!
//! Each seed builds a *world* (memory channels of capacity 0, 1, N and
//! `UNBOUNDED` plus one whose receivers all close mid-run, a `Lock` shared
//! with a `Condition`, a `Mutex<T>`, a bounded `Semaphore`, a
//! `CapacityLimiter`, `Event`s, an fd nobody writes to) and runs 4–12 tasks
//! of random operations on an autojumping `MockClock` until a global
//! virtual deadline cancels everything. Operations: sends and receives
//! (plain, `try_`, `next`, the `Stream` impl, on cloned handles that get
//! closed under blocked tasks), lock/mutex/semaphore/limiter sections
//! (guards, raw forms, `acquire_on_behalf_of`, a borrower shared by two
//! tasks, `set_total_tokens`), event and condition waits and notifies,
//! `Nursery::start` (started by the task itself, failing before
//! `started`, never calling it, and `started` called by *another* task
//! that was handed the `TaskStatus`), nurseries with failing or panicking
//! children, nursery futures dropped after a few polls or when a timer
//! wins, `mem::forget` of pending send futures (also on a channel that
//! outlives the run and is used again by a second run, which sheds the
//! stale senders by a receive, by closing the send handle they used, or by
//! closing its last receiver), two readers on one fd,
//! `wait_all_tasks_blocked`, and, in the threads pass, `to_thread::run_sync`
//! (abandoned or not, limited by the shared limiter, calling back with
//! `from_thread`). Byte streams run in sessions of their own
//! (`stress/streams.rs`): memory and lockstep stream pairs (both
//! `StapledStream`s) and Unix and loopback TCP `SocketStream`s, with a
//! writer, a reader (through a `BufferedReceiveStream`: exact, line,
//! delimited and to-the-end reads), a task that uses the same stream
//! concurrently (Busy) and one that closes an end under the others.
//! Servers run in sessions too (`stress/serving.rs`): `serve_listeners`
//! over scripted memory listeners that inject `EMFILE`-like and fatal
//! accept errors, and `serve_tcp` on loopback, started with
//! `nursery.start`, with clients under random scopes, both
//! `OnHandlerError` policies, `max_connections`, scripted handler
//! failures and graceful stops (`ServeControl::stop` with a random
//! grace). Some seeds run child processes (`stress/processes.rs`: `cat`
//! and `sh` fed and drained through their pipes, `run_process` and
//! `run_process_started` cancelled or not, `kill`/`terminate`/signals,
//! in either wait mode) and a temp file and directory
//! (`stress/files.rs`: `File` reads, writes and seeks, `fs::read`,
//! `fs::write`, `read_dir`). Each
//! operation runs inside 0–2 random
//! scopes (`move_on_after`, `fail_after`, `CancelScope` with a deadline,
//! sometimes shielded); a chaos task cancels, shields, unshields and moves
//! the deadlines of those scopes and cancels nurseries from outside.
//!
//! Each seed switches a random subset of the riskier parts on (swarm
//! testing, see `stress/world.rs`), so that one frequent failure does not
//! mask the rest. An instrument whose hooks call `statistics()` on every
//! primitive, and payload destructors that call `statistics()` on their
//! channel, catch "calls out while holding a `RefCell` borrow" bugs.
//!
//! # What is checked, on every seed
//!
//! - no stream byte lost, duplicated or reordered: every byte read is
//!   compared with what the writer sent, at once, and at end of stream the
//!   count must match what the writer's sends reported (`send_some` and a
//!   completed `send_all` exactly; a cut `send_all` may have sent any
//!   prefix, so it only widens the range and stops that writer); errors
//!   (Busy, Closed, Broken, ChunkTooLong) only where the contract allows
//!   them (details in `stress/streams.rs`);
//! - no channel value lost, duplicated, or both received and handed back:
//!   every value has a unique id and a ledger entry (`stress/ledger.rs`);
//!   each is received once, handed back in a `SendError`, or dropped by its
//!   channel when no receiver is left; every value is dropped exactly once;
//! - a lock (and the mutex) is never held by two tasks; semaphore and
//!   limiter use never exceed capacity; a borrower never holds two tokens;
//!   everything is released when the tasks are done; no lost mutex update;
//! - servers: every completed exchange got exactly its reply; each
//!   handler counted once; never more than `max_connections` at once;
//!   after a stop nothing new is accepted and no handler outlives the
//!   grace deadline; a scripted handler error ends the server under
//!   `StopServer` and is logged exactly once under `LogAndContinue`;
//!   every injected accept error is logged once (details in
//!   `stress/serving.rs`);
//! - processes: bytes read back from a child equal those sent, exit
//!   statuses and captured output are exactly the scripted ones, and every
//!   child is gone (by pid) after its session, cancelled or not;
//! - files: a cancelled `File` call either had its whole effect or none
//!   (a model of the content and position checks every read, seek and
//!   `stream_position`), and `read_dir` lists each name once;
//! - `start` returns as soon as `started` is called, whoever calls it;
//! - both runs end (a real-time watchdog turns a hang into a failure that
//!   names the seed) and neither returns an error; no panic comes out of
//!   the runtime (the panic hook records every unexpected panic, even one
//!   a nursery swallows);
//! - the pass counts what it exercised and fails if any counter stays zero.
//!
//! # Running and replaying
//!
//! ```text
//! cargo test -p trio --test stress -- --nocapture           # default: 500 + 100 seeds
//! TRIO_STRESS_SEEDS=5000 cargo test -p trio --test stress mixed -- --nocapture
//! TRIO_STRESS_SEED=1234 cargo test -p trio --test stress mixed -- --nocapture   # replay one
//! ```
//!
//! Other settings: `TRIO_STRESS_FIRST=<n>` (first seed, default 0),
//! `TRIO_STRESS_THREAD_SEEDS=<n>` (threads pass, default 100),
//! `TRIO_STRESS_TIMEOUT=<s>` (watchdog, default 30 s per seed),
//! `TRIO_STRESS_FEATURES=-instrument,+chaos` (force features off or on for
//! every seed; `all`/`-all` for all of them; names in `stress/world.rs`).
//! A failing seed prints its features, its failures (violations, panics
//! with their location, run errors) and the replay command. Seeds of the
//! mixed pass replay exactly (`seeds_replay_exactly` checks that); the
//! threads pass depends on real thread timing and does not. Seeds with the
//! `sockets` feature do real I/O on Unix and loopback TCP sockets; they
//! have replayed exactly in every run so far, but that rests on the
//! kernel delivering a send before the peer's next readiness poll, not on
//! the harness (see `stress/streams.rs`), so `seeds_replay_exactly`
//! checks every seed with them switched off, and only reports a seed that
//! does not replay with them. The same holds for the other features that
//! do real I/O (`tcp_serving`, `processes`, `files`:
//! `world::REAL_IO_FEATURES`); they seldom replay exactly (a child or a
//! worker thread takes real time, during which the autojumping clock
//! moves on), and their checks do not depend on it. The `serving` feature
//! (memory listeners) is deterministic and stays on in the strict check.

#[path = "stress/counters.rs"]
mod counters;
#[path = "stress/files.rs"]
mod files;
#[path = "stress/harness.rs"]
mod harness;
#[path = "stress/ledger.rs"]
mod ledger;
#[path = "stress/ops.rs"]
mod ops;
#[path = "stress/prng.rs"]
mod prng;
#[path = "stress/processes.rs"]
mod processes;
#[path = "stress/serving.rs"]
mod serving;
#[path = "stress/streams.rs"]
mod streams;
#[path = "stress/world.rs"]
mod world;

use counters::Pass;
use harness::{Env, Options, run_pass};
use std::sync::Arc;

/// Seeds in the default mixed pass (about 4 s of CPU in a debug build for
/// the primitives, and about 3.5 s more for the byte-stream sessions,
/// measured on the 2-core CI machine; servers, processes and files add
/// 2–6 s of user CPU to the whole test binary, measured on a loaded
/// machine: 10.4–15.6 s against 7.3–9.1 s with them switched off).
const DEFAULT_SEEDS: u64 = 500;
/// Seeds in the default threads pass (about 1.5 s).
const DEFAULT_THREAD_SEEDS: u64 = 100;

fn seeds(env: &Env, default: u64, configured: Option<u64>) -> (Vec<u64>, bool) {
    match env.seed {
        Some(s) => (vec![s], false),
        None => {
            let n = configured.unwrap_or(default);
            // Counters are only required of a run at least as large as
            // the default one (a handful of seeds need not hit them all).
            ((env.first..env.first + n).collect(), n >= default)
        }
    }
}

#[test]
fn mixed_workload_on_many_seeds() {
    let env = Env::read();
    harness::set_loud(env.seed.is_some());
    let (seeds, require) = seeds(&env, DEFAULT_SEEDS, env.seeds);
    let opts = Options {
        threads: false,
        overrides: env.overrides.clone(),
        timeout: env.timeout,
    };
    run_pass("mixed", &seeds, opts, Pass::Main, require);
}

#[test]
fn worker_threads_workload_on_many_seeds() {
    let env = Env::read();
    harness::set_loud(env.seed.is_some());
    let (seeds, require) = seeds(&env, DEFAULT_THREAD_SEEDS, env.thread_seeds);
    let opts = Options {
        threads: true,
        overrides: env.overrides.clone(),
        timeout: env.timeout,
    };
    run_pass("threads", &seeds, opts, Pass::Threads, require);
}

/// The same seed twice gives the same outcome: counters, failures and the
/// final virtual time (so a printed seed really replays). Checked with
/// socket streams switched off, since those do real kernel I/O whose
/// timing the seed does not fix (see `stress/streams.rs`); a seed that has
/// them is then also replayed with them, and a difference is printed, not
/// failed (its ledger checks are exact either way).
#[test]
fn seeds_replay_exactly() {
    let env = Env::read();
    harness::install_panic_hook();
    let mut strict = env.overrides.clone();
    for name in world::REAL_IO_FEATURES {
        strict.push((name.to_string(), false));
    }
    let strict = Arc::new(Options {
        threads: false,
        overrides: strict,
        timeout: env.timeout,
    });
    let with_sockets = Arc::new(Options {
        threads: false,
        overrides: env.overrides.clone(),
        timeout: env.timeout,
    });
    let seeds: Vec<u64> = match env.seed {
        Some(s) => vec![s],
        None => (env.first..env.first + 16).collect(),
    };
    let key = |r: &harness::SeedReport| (r.fingerprint, r.totals.clone(), r.failures.clone());
    for seed in seeds {
        let a = harness::run_watched(seed, &strict);
        let b = harness::run_watched(seed, &strict);
        assert_eq!(key(&a), key(&b), "seed {seed} did not replay exactly");
        if world::Features::for_seed(seed, &with_sockets.overrides).real_io() {
            let a = harness::run_watched(seed, &with_sockets);
            let b = harness::run_watched(seed, &with_sockets);
            if key(&a) != key(&b) {
                eprintln!(
                    "stress: seed {seed} with real I/O (sockets, TCP servers, processes, files) \
                     did not replay exactly (kernel timing; its checks passed or failed on their own)"
                );
            }
        }
    }
}
