//! The fate of every value sent through a channel, and the drop-counting
//! payload that reports it.
//!
//! Every [`Payload`] has a unique id and an entry in the [`Ledger`]. The
//! workload records what it saw (send returned `Ok`, value handed back in
//! a `SendError`, value received, send future leaked); the payload's own
//! `Drop` records the drop and, when the payload belongs to a channel, asks
//! that channel how many receivers are still open (calling `statistics()`
//! from inside a destructor the channel runs is deliberate: a channel that
//! drops a value while it holds its own `RefCell` borrow panics here).
//!
//! The rules checked (on the spot where possible, else at the end of a seed):
//! - received at most once (no duplication);
//! - never both received and handed back, never both sent and handed back;
//! - dropped exactly once;
//! - a value whose send returned `Ok` is received, or dropped by the
//!   channel when it had no open receiver left (buffered at close); if
//!   the channel dropped it while receivers were open, it was lost.
//!   Values whose send future was leaked or dropped may end either way.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

/// Rule violations found during a seed, in the order seen.
#[derive(Default)]
pub struct Violations(RefCell<Vec<String>>);

impl Violations {
    pub fn push(&self, message: String) {
        // Keep the first few: after one real failure, follow-on noise only hides it.
        let mut v = self.0.borrow_mut();
        if v.len() < 20 {
            v.push(message);
        }
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.borrow_mut())
    }
}

#[derive(Clone, Copy, Default)]
struct Entry {
    chan: usize,
    sent_ok: bool,
    handed_back: bool,
    received: u32,
    dropped: u32,
    leaked: bool,
    /// Open receivers of its channel when it was dropped (`None`: not
    /// asked, or the channel was gone).
    open_receivers_at_drop: Option<usize>,
}

/// Returns the number of open receivers of one channel.
pub type ChannelProbe = dyn Fn() -> usize;

/// Every value's history.
pub struct Ledger {
    entries: RefCell<Vec<Entry>>,
    violations: Rc<Violations>,
    drop_probes: std::cell::Cell<u64>,
}

impl Ledger {
    pub fn new(violations: Rc<Violations>) -> Rc<Ledger> {
        Rc::new(Ledger {
            entries: RefCell::new(Vec::new()),
            violations,
            drop_probes: std::cell::Cell::new(0),
        })
    }

    /// A new value for channel `chan`, whose destructor asks `probe`.
    pub fn new_value(self: &Rc<Self>, chan: usize, probe: Weak<ChannelProbe>) -> Payload {
        let mut e = self.entries.borrow_mut();
        e.push(Entry {
            chan,
            ..Entry::default()
        });
        Payload {
            id: e.len() - 1,
            ledger: self.clone(),
            probe,
        }
    }

    fn with(&self, id: usize, f: impl FnOnce(&mut Entry) -> Option<String>) {
        let problem = f(&mut self.entries.borrow_mut()[id]);
        if let Some(p) = problem {
            self.violations.push(format!("value #{id}: {p}"));
        }
    }

    /// Its send returned `Ok`.
    pub fn sent(&self, id: usize) {
        self.with(id, |e| {
            e.sent_ok = true;
            e.handed_back
                .then(|| "send returned Ok but the value was also handed back".into())
        });
    }

    /// A `SendError` gave it back.
    pub fn handed_back(&self, id: usize) {
        self.with(id, |e| {
            e.handed_back = true;
            if e.received > 0 {
                Some("handed back in a SendError after it had been received".into())
            } else if e.sent_ok {
                Some("handed back in a SendError after its send returned Ok".into())
            } else {
                None
            }
        });
    }

    /// A receiver got it.
    pub fn received(&self, id: usize) {
        self.with(id, |e| {
            e.received += 1;
            if e.received > 1 {
                Some(format!("received {} times (duplicated)", e.received))
            } else if e.handed_back {
                Some("received after it had been handed back to its sender".into())
            } else if e.dropped > 0 {
                Some("received after it had been dropped".into())
            } else {
                None
            }
        });
    }

    /// Its pending send future was leaked.
    pub fn leaked(&self, id: usize) {
        self.with(id, |e| {
            e.leaked = true;
            None
        });
    }

    fn dropped(&self, id: usize) {
        self.with(id, |e| {
            e.dropped += 1;
            (e.dropped > 1).then(|| format!("dropped {} times", e.dropped))
        });
    }

    fn dropped_with(&self, id: usize, open_receivers: usize) {
        self.drop_probes.set(self.drop_probes.get() + 1);
        self.with(id, |e| {
            e.open_receivers_at_drop = Some(open_receivers);
            None
        });
    }

    pub fn drop_probes(&self) -> u64 {
        self.drop_probes.get()
    }

    /// How many sent values were dropped by their channel at close.
    pub fn dropped_at_close(&self) -> u64 {
        self.entries
            .borrow()
            .iter()
            .filter(|e| e.sent_ok && e.received == 0 && e.open_receivers_at_drop == Some(0))
            .count() as u64
    }

    /// The end-of-seed rules (every handle and value must be gone by now).
    pub fn check_final(&self) {
        let entries = self.entries.borrow().clone();
        for (id, e) in entries.iter().enumerate() {
            let problem = if e.dropped == 0 {
                Some("never dropped (leaked by the runtime)".to_string())
            } else if e.sent_ok && e.received == 0 && !e.leaked {
                match e.open_receivers_at_drop {
                    Some(n) if n > 0 => Some(format!(
                        "sent (Ok) on channel {} but dropped by it while {n} receiver(s) were open: lost",
                        e.chan
                    )),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(p) = problem {
                self.violations.push(format!("value #{id}: {p}"));
            }
        }
    }
}

/// A value with a unique id whose destructor reports to the [`Ledger`] and
/// touches its channel.
pub struct Payload {
    pub id: usize,
    ledger: Rc<Ledger>,
    probe: Weak<ChannelProbe>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        // Counted first, so that a panic in the probe below (the bug it is
        // there to find) is reported as itself, not as a leak.
        self.ledger.dropped(self.id);
        // While unwinding, a second panic would abort the whole test binary.
        if !std::thread::panicking()
            && let Some(probe) = self.probe.upgrade()
        {
            self.ledger.dropped_with(self.id, probe());
        }
    }
}
