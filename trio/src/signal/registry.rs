//! The process-wide record of which signals trio handles, and for whom
//! (see the [module docs](super) for the design).
//!
//! One [`Slot`] per signal trio has touched, behind one mutex (never held
//! while calling out to user code; signal-hook's handlers never take it):
//!
//! - `before`: what the signal did before trio first touched it, read once;
//! - `armed`: read by the "default action" registered first for a signal
//!   whose `before` is the default action. Invariant: `armed` is true iff
//!   no receiver is open and no run hook is active (installed and not
//!   suspended), so the default action applies exactly when nobody handles
//!   the signal;
//! - `receivers`: open [`SignalReceiver`](super::SignalReceiver)s of the
//!   signal. While it is non-zero a run hook of the signal is suspended
//!   (its signal-hook actions unregistered): the receiver takes the signal;
//! - `hook`: the run hook of the signal (Ctrl-C, SIGTERM or tree dump), if a
//!   main-thread run installed one (one run at a time can: the main thread
//!   runs one run at a time).
//!
//! Order of changes, chosen so that a signal arriving in between is either
//! handled or gets its previous behaviour, never silently dropped: a new
//! consumer registers its actions *before* disarming the default, and a
//! leaving consumer re-arms the default (or resumes the hook) *before*
//! unregistering its actions.

use signal_hook::SigId;
use std::collections::BTreeMap;
use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a signal did before trio first touched it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Before {
    /// `SIG_DFL`.
    Default,
    /// `SIG_IGN`.
    Ignored,
    /// Someone else's handler.
    Caught,
}

/// The signal-hook actions of a run hook for one signal.
pub(crate) struct HookSpec {
    /// For Ctrl-C-like hooks: set in the handler by each signal; when
    /// already set, the signal's default action runs (the second SIGINT).
    pub(crate) fired: Option<Arc<AtomicBool>>,
    /// Set in the handler; the hook's reader takes it.
    pub(crate) pending: Arc<AtomicBool>,
    /// The write end of the hook's wake-up socket (a clone is given to
    /// signal-hook at each registration).
    pub(crate) wake: UnixStream,
}

struct HookSlot {
    spec: HookSpec,
    /// The registered actions; empty while suspended.
    ids: Vec<SigId>,
}

struct Slot {
    before: Before,
    armed: Arc<AtomicBool>,
    receivers: usize,
    hook: Option<HookSlot>,
}

impl Slot {
    /// Re-establishes the `armed` invariant (see the module docs).
    fn update_armed(&self) {
        let active_hook = self.hook.as_ref().is_some_and(|h| !h.ids.is_empty());
        self.armed
            .store(self.receivers == 0 && !active_hook, Ordering::SeqCst);
    }
}

static SLOTS: Mutex<BTreeMap<i32, Slot>> = Mutex::new(BTreeMap::new());

fn slots() -> MutexGuard<'static, BTreeMap<i32, Slot>> {
    SLOTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// What `signal` does now, from the process's signal masks in
/// `/proc/self/status` (`SigIgn`, `SigCgt`: hex bit masks, bit `n - 1` for
/// signal `n`). Where that file does not exist, the default is assumed.
fn read_disposition(signal: i32) -> Before {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Before::Default;
    };
    let has = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|mask| (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0)
    };
    if has("SigIgn:") {
        Before::Ignored
    } else if has("SigCgt:") {
        Before::Caught
    } else {
        Before::Default
    }
}

/// The slot of `signal`, created on first use: then its previous
/// disposition is read and, if it was the default action, the action that
/// emulates it is registered (armed: nobody handles the signal yet).
fn slot(map: &mut BTreeMap<i32, Slot>, signal: i32) -> io::Result<&mut Slot> {
    use std::collections::btree_map::Entry;
    match map.entry(signal) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(e) => {
            let before = read_disposition(signal);
            let armed = Arc::new(AtomicBool::new(true));
            if before == Before::Default {
                // Never unregistered: it *is* the signal's disposition from
                // now on.
                signal_hook::flag::register_conditional_default(signal, armed.clone())?;
            }
            Ok(e.insert(Slot {
                before,
                armed,
                receivers: 0,
                hook: None,
            }))
        }
    }
}

/// Makes sure trio's slot for `signal` exists (so its previous disposition
/// is recorded before any trio action is registered).
pub(crate) fn touch(signal: i32) -> io::Result<Before> {
    let mut map = slots();
    Ok(slot(&mut map, signal)?.before)
}

/// A receiver of `signal` has registered its actions.
pub(crate) fn receiver_opened(signal: i32) -> io::Result<()> {
    let mut map = slots();
    let s = slot(&mut map, signal)?;
    s.receivers += 1;
    s.update_armed();
    if let Some(h) = &mut s.hook {
        for id in h.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
    Ok(())
}

/// A receiver of `signal` is about to unregister its actions.
pub(crate) fn receiver_closing(signal: i32) {
    let mut map = slots();
    let Some(s) = map.get_mut(&signal) else {
        return;
    };
    s.receivers = s.receivers.saturating_sub(1);
    // Should re-registering fail (signal-hook only fails on a failed
    // `sigaction`, which cannot happen for a signal it already handles),
    // the hook stays suspended and the default applies (`update_armed`).
    if s.receivers == 0
        && let Some(h) = &mut s.hook
        && let Ok(ids) = register_hook(signal, &h.spec)
    {
        h.ids = ids;
    }
    s.update_armed();
}

/// Registers a hook's actions, in the order the second-signal rule needs:
/// the conditional default first (it sees `fired` as the previous signal
/// left it), then the flag that arms it, then the pending flag, then the
/// wake-up byte (after the flag it announces).
fn register_hook(signal: i32, spec: &HookSpec) -> io::Result<Vec<SigId>> {
    let mut ids = Vec::new();
    let result = (|| {
        if let Some(fired) = &spec.fired {
            ids.push(signal_hook::flag::register_conditional_default(
                signal,
                fired.clone(),
            )?);
            ids.push(signal_hook::flag::register(signal, fired.clone())?);
        }
        ids.push(signal_hook::flag::register(signal, spec.pending.clone())?);
        ids.push(signal_hook::low_level::pipe::register(
            signal,
            spec.wake.try_clone()?,
        )?);
        Ok(())
    })();
    match result {
        Ok(()) => Ok(ids),
        Err(e) => {
            for id in ids {
                signal_hook::low_level::unregister(id);
            }
            Err(e)
        }
    }
}

/// Installs a run hook for `signal` (suspended at once if a receiver of the
/// signal is open). Fails if another hook holds the signal.
pub(crate) fn install_hook(signal: i32, spec: HookSpec) -> io::Result<()> {
    let mut map = slots();
    let s = slot(&mut map, signal)?;
    if s.hook.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another run already handles this signal",
        ));
    }
    let ids = if s.receivers == 0 {
        register_hook(signal, &spec)?
    } else {
        Vec::new()
    };
    s.hook = Some(HookSlot { spec, ids });
    s.update_armed();
    Ok(())
}

/// Removes the run hook of `signal`: the previous behaviour (or a
/// receiver) takes the signal again.
pub(crate) fn remove_hook(signal: i32) {
    let mut map = slots();
    let Some(s) = map.get_mut(&signal) else {
        return;
    };
    let Some(h) = s.hook.take() else { return };
    s.update_armed();
    for id in h.ids {
        signal_hook::low_level::unregister(id);
    }
}
