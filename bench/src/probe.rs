//! The CPU probe: a fixed arithmetic loop timed before every round, so that
//! a run can say whether the CPU itself changed speed while it measured.
//!
//! # Why
//!
//! The shared 2-vCPU machines have slow spells lasting minutes in which
//! trio's times rise more than tokio's (one pinned run's `yield` ratio went
//! 0.32 → 0.42 → 0.32 over three back-to-back runs; see issue 10's notes in
//! the README). Interleaving and per-round ratios cancel load that slows
//! every runtime alike; they cannot cancel a change in *how fast the core
//! executes*, which hits code with many independent instructions per cycle
//! (trio's hot paths: yield runs 400 instructions per op in a third of
//! tokio's time, whose 489 include several atomic read-modify-writes that
//! stall for a fixed latency) harder than code that waits on atomics or
//! memory. A core that shares its execution units with another busy thread
//! (a hyperthread sibling on the host) slows that way.
//!
//! # What it measures
//!
//! [`kernel`] runs eight independent add/xor chains (high instruction-level
//! parallelism, no memory traffic, no atomics), timed on the workloads'
//! clock ([`crate::workloads::clock`]), in nanoseconds per iteration. On a
//! quiet machine of the CI kind it reads ~2.0 ns with a spread of a few
//! percent. A round whose probes read more than [`SLOWED`] × the run's best
//! ran on a core that was not at its usual speed: the bench leaves it out
//! and plays it again, and before each measured round the [`SpeedGate`]
//! waits a little for the core to recover. The probe never rescales a
//! figure: it decides which rounds count, not what they measured.
//!
//! Cost: [`ITERATIONS`] iterations (~1 ms) per round of every workload.

use std::hint::black_box;
use std::time::Duration;

use crate::spread::Spread;
use crate::workloads::clock::Instant;

/// Iterations per probe: ~1 ms at ~2 ns each, long against the clock's
/// resolution, short against a round (≥ 50 ms per runtime).
pub const ITERATIONS: u64 = 500_000;

/// A round whose probe is slower than the run's best probe by more than
/// this factor ran on a slowed CPU and is played again. 1.15: on a quiet
/// machine probes stay within ~10% of each other, while in a slow spell they
/// read 1.4–2.2× the best, and the trio/tokio ratios of those rounds rose by
/// 10–50% (one loaded run, `--log-rounds`: the correlation between probe and
/// ratio over 7 rounds was 0.88–0.97 for timeout, cancel, nursery_empty and
/// nursery_10).
pub const SLOWED: f64 = 1.15;

/// Whether a round whose probe read `probe` ran at full speed, given the
/// run's best probe `best`.
pub fn at_full_speed(probe: f64, best: f64) -> bool {
    probe <= best * SLOWED
}

/// Times one probe: nanoseconds per iteration of [`kernel`].
pub fn measure() -> f64 {
    let start = Instant::now();
    black_box(kernel(black_box(ITERATIONS)));
    start.elapsed().as_secs_f64() * 1e9 / ITERATIONS as f64
}

/// Waits, before a measured round, for the CPU to run at full speed again.
///
/// The slow spells of the shared machines come and go within seconds (a
/// probe every 30 s over an hour read fast and slow in turn), so a round
/// that would start in one is better started a moment later than measured
/// and replaced. The gate probes; while the probe reads slowed against the
/// best seen so far, it sleeps [`GATE_NAP`] and probes again, for at most
/// [`GATE_ROUND_CAP`] per round and `budget` over the whole run. Sleeping
/// costs the measured process no CPU time. The round is still bracketed
/// by its own probes and judged afterwards: the gate only makes full-speed
/// rounds likelier, it never lets a slowed one through.
#[derive(Debug)]
pub struct SpeedGate {
    best: f64,
    budget: Duration,
    waited: Duration,
    rounds_delayed: usize,
}

/// How long the gate sleeps between probes while the CPU is slowed.
pub const GATE_NAP: Duration = Duration::from_millis(20);

/// The most the gate waits before any one round: a spell longer than this
/// is left to the replays.
pub const GATE_ROUND_CAP: Duration = Duration::from_secs(3);

impl SpeedGate {
    /// A gate that waits at most `budget` in all (zero: never waits).
    pub fn new(budget: Duration) -> SpeedGate {
        SpeedGate {
            best: f64::INFINITY,
            budget,
            waited: Duration::ZERO,
            rounds_delayed: 0,
        }
    }

    /// Records a probe taken elsewhere (a warm-up round's), so that the
    /// best is known before the first measured round.
    pub fn saw(&mut self, probe: f64) {
        self.best = self.best.min(probe);
    }

    /// Probes until the CPU reads at full speed (or the caps are reached)
    /// and returns the last probe.
    pub fn wait_for_full_speed(&mut self) -> f64 {
        let started = std::time::Instant::now();
        let mut probe = measure();
        self.saw(probe);
        let mut delayed = false;
        while !at_full_speed(probe, self.best) {
            let waited = started.elapsed();
            if waited >= GATE_ROUND_CAP || self.waited + waited >= self.budget {
                break;
            }
            delayed = true;
            std::thread::sleep(GATE_NAP);
            probe = measure();
            self.saw(probe);
        }
        self.waited += started.elapsed();
        self.rounds_delayed += usize::from(delayed);
        probe
    }

    /// What the gate did, for the probe line: "" if it never waited.
    pub fn describe(&self) -> String {
        if self.rounds_delayed == 0 {
            return String::new();
        }
        format!(
            "; {} rounds waited {:.1} s in all for the CPU to return to full speed",
            self.rounds_delayed,
            self.waited.as_secs_f64()
        )
    }
}

/// Eight independent add/xor chains, each step depending on its own chain
/// and one neighbour, so the core can run several per cycle; the result
/// depends on every step, so the optimiser cannot drop any.
pub fn kernel(iterations: u64) -> u64 {
    let mut s = [1u64, 2, 3, 4, 5, 6, 7, 8];
    for i in 0..iterations {
        s[0] = s[0].wrapping_add(s[1] ^ i);
        s[1] = s[1].wrapping_add(s[2] ^ s[0]);
        s[2] = s[2].wrapping_add(s[3] ^ i);
        s[3] = s[3].wrapping_add(s[4] ^ s[2]);
        s[4] = s[4].wrapping_add(s[5] ^ i);
        s[5] = s[5].wrapping_add(s[6] ^ s[4]);
        s[6] = s[6].wrapping_add(s[7] ^ i);
        s[7] = s[7].wrapping_add(s[0] ^ s[6]);
        // Keep the loop a loop: without this the compiler may vectorise or
        // unroll it differently between builds, and the probe must stay
        // comparable across builds of the bench.
        s = black_box(s);
    }
    s.iter().fold(0, |a, &x| a ^ x)
}

/// The probe line for the report and, naming the workloads whose figures
/// still include slowed rounds (`short`: they ran out of replays), a
/// warning.
pub fn describe(
    samples: &[f64],
    replayed: usize,
    short: &[&str],
    gate: &SpeedGate,
) -> Option<(String, Option<String>)> {
    let s = Spread::of(samples)?;
    let slowed = samples
        .iter()
        .filter(|&&p| !at_full_speed(p, s.min))
        .count();
    let line = format!(
        "cpu probe (a fixed arithmetic loop timed around every round): best {:.3} ns/iter, \
         median {:.3}, max {:.3}; {slowed} of {} rounds ran on a CPU slowed by more than {:.2}x \
         the best and were left out, {replayed} rounds played again in their place{}",
        s.min,
        s.median,
        s.max,
        samples.len(),
        SLOWED,
        gate.describe(),
    );
    let warning = (!short.is_empty()).then(|| {
        format!(
            "warning: the CPU was slowed for much of this run; the figures of {} include \
             slowed rounds (too few ran at full speed even after replays); re-run when the \
             machine is quiet",
            short.join(", ")
        )
    });
    Some((line, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_depends_on_its_length() {
        assert_ne!(kernel(10), kernel(11));
        assert_eq!(kernel(1000), kernel(1000));
    }

    #[test]
    fn slowed_rounds_are_counted_and_warned_about_when_not_replaced() {
        let gate = SpeedGate::new(Duration::ZERO);
        assert!(at_full_speed(2.29, 2.0));
        assert!(!at_full_speed(2.31, 2.0));
        let (line, warning) = describe(&[2.0, 2.02, 2.01], 0, &[], &gate).unwrap();
        assert!(line.contains("best 2.000 ns/iter, median 2.010"), "{line}");
        assert!(line.contains("0 of 3 rounds"), "{line}");
        assert!(warning.is_none());
        assert!(!line.contains("waited"), "{line}");
        // One slowed round, replaced by one replay: no warning.
        let (line, warning) = describe(&[2.0, 3.0, 2.1, 2.05], 1, &[], &gate).unwrap();
        assert!(line.contains("1 of 4 rounds"), "{line}");
        assert!(line.contains("1 rounds played again"), "{line}");
        assert!(warning.is_none());
        // A workload that ran out of replays is named.
        let (_, warning) = describe(&[2.0, 3.0, 2.9, 2.05], 1, &["yield"], &gate).unwrap();
        assert!(warning.unwrap().contains("figures of yield include"));
        assert!(describe(&[], 0, &[], &gate).is_none());
    }

    #[test]
    fn a_gate_without_budget_never_sleeps_and_one_with_budget_returns_a_probe() {
        let mut gate = SpeedGate::new(Duration::ZERO);
        // A best far below any real probe: every probe reads slowed.
        gate.saw(1e-6);
        let started = std::time::Instant::now();
        let p = gate.wait_for_full_speed();
        assert!(p > 0.0);
        assert!(started.elapsed() < GATE_ROUND_CAP);
        assert_eq!(gate.describe(), "");

        let mut gate = SpeedGate::new(Duration::from_millis(60));
        gate.saw(1e-6);
        gate.wait_for_full_speed();
        let line = gate.describe();
        assert!(line.contains("1 rounds waited"), "{line}");
        // The budget is spent: the next round does not wait.
        gate.wait_for_full_speed();
        assert!(gate.describe().contains("1 rounds waited"));
    }
}
