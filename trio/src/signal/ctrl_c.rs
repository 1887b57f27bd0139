//! A run's own signal handling: Ctrl-C (SIGINT), optionally SIGTERM, and
//! the task-tree dump (see the [module docs](super) for the design and the
//! main-thread rule).
//!
//! [`install`] is called once at the start of a run and returns a
//! [`RunSignals`] guard; [`RunSignals::finish`] at the end of the run turns
//! its result into [`ErrorKind::Interrupted`] if a handled signal arrived.
//!
//! 1. For each handled signal a hook is installed in the registry (its
//!    actions: conditional default + `fired` flag for interrupting signals,
//!    then a pending flag and a wake-up byte on one socket pair).
//! 2. A thread ("trio-signals") blocks reading that socket. On a byte it
//!    takes the pending flags and posts to the run, through the uncounted
//!    `RunHandle`: a cancel of the root cancel status (interrupting
//!    signals) or a tree dump to stderr.
//! 3. At the end (or on drop) the hooks are removed first, so the signals'
//!    previous behaviour applies again, then the thread is stopped (a flag,
//!    then a byte of our own) and joined. `fired` is read after the hooks are
//!    gone: a signal the handler saw at any point of the run is reported,
//!    even one whose byte the thread never read.
//!
//! A thread per run, not one kept for the process: a finished run leaves
//! no thread and no fd behind (`tests/socket_fds.rs` counts fds around three
//! main-thread runs). The price is paid once per main-thread run, which is
//! usually once per program: starting and joining the thread made an empty
//! run take about 0.2 ms instead of 7 µs on a loaded 2-core machine (a
//! thread kept for the process cost 5 to 10 µs per run, but kept its
//! socket pair open). Runs on other threads pay nothing.
//! The thread is not counted as something that could wake the run, so
//! deadlock detection is unchanged (see the [module docs](super)).

use super::registry::{self, Before, HookSpec};
use crate::core::runtime;
use crate::core::token::RunHandle;
use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// The `Runner`'s signal options.
#[derive(Clone, Debug)]
pub(crate) struct SignalOptions {
    /// SIGINT cancels the run (main thread only). Default true.
    pub(crate) ctrl_c: bool,
    /// SIGTERM cancels the run too (main thread only). Default false.
    pub(crate) sigterm: bool,
    /// Print the task tree to stderr on this signal (main thread only).
    pub(crate) dump: Option<i32>,
}

impl Default for SignalOptions {
    fn default() -> Self {
        SignalOptions {
            ctrl_c: true,
            sigterm: false,
            dump: None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Action {
    Interrupt,
    Dump,
}

struct Hook {
    signal: i32,
    action: Action,
    fired: Option<Arc<AtomicBool>>,
    pending: Arc<AtomicBool>,
}

/// The run's installed signal handling; see the module docs.
pub(crate) struct RunSignals {
    hooks: Arc<Vec<Hook>>,
    thread: Option<(JoinHandle<()>, Arc<AtomicBool>, UnixStream)>,
}

impl fmt::Debug for RunSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signals: Vec<i32> = self.hooks.iter().map(|h| h.signal).collect();
        f.debug_struct("RunSignals")
            .field("signals", &signals)
            .finish()
    }
}

/// Installs the run's signal handling, if the calling thread is the main
/// thread and `options` ask for any. `run` is the run being started.
pub(crate) fn install(options: &SignalOptions, run: RunHandle) -> Result<RunSignals> {
    let mut wanted = Vec::new();
    if options.ctrl_c {
        wanted.push((signal_hook::consts::SIGINT, Action::Interrupt));
    }
    if options.sigterm {
        wanted.push((signal_hook::consts::SIGTERM, Action::Interrupt));
    }
    if let Some(s) = options.dump {
        super::check_signal(s)?;
        if wanted.iter().any(|&(w, _)| w == s) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("signal {s} cannot both interrupt the run and dump its task tree"),
            ));
        }
        wanted.push((s, Action::Dump));
    }
    if wanted.is_empty() || !super::is_main_thread() {
        return Ok(RunSignals {
            hooks: Arc::new(Vec::new()),
            thread: None,
        });
    }
    let (mut read, write) = UnixStream::pair()?;
    let mut hooks = Vec::new();
    let mut installed = Ok(());
    for (signal, action) in wanted {
        let before = match registry::touch(signal) {
            Ok(b) => b,
            Err(e) => {
                installed = Err(e);
                break;
            }
        };
        // As Trio: a signal the program ignores or handles itself is left
        // alone; only its default action is replaced.
        if action == Action::Interrupt && before != Before::Default {
            continue;
        }
        let fired = (action == Action::Interrupt).then(|| Arc::new(AtomicBool::new(false)));
        let pending = Arc::new(AtomicBool::new(false));
        let spec = write.try_clone().map(|wake| HookSpec {
            fired: fired.clone(),
            pending: pending.clone(),
            wake,
        });
        if let Err(e) = spec.and_then(|spec| registry::install_hook(signal, spec)) {
            installed = Err(e);
            break;
        }
        hooks.push(Hook {
            signal,
            action,
            fired,
            pending,
        });
    }
    let hooks = Arc::new(hooks);
    // From here on, dropping the guard removes the hooks (also on an error).
    let mut guard = RunSignals {
        hooks: hooks.clone(),
        thread: None,
    };
    installed?;
    if hooks.is_empty() {
        return Ok(guard);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("trio-signals".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match read.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                }
                if thread_stop.load(Ordering::SeqCst) {
                    return;
                }
                for h in hooks.iter() {
                    if h.pending.swap(false, Ordering::SeqCst) {
                        // Fails only once the run has finished: then
                        // `finish` reports the signal through `fired`.
                        let _ = run.run_sync_soon(post(h.action));
                    }
                }
            }
        })?;
    guard.thread = Some((thread, stop, write));
    Ok(guard)
}

/// What the reading thread posts to the run for a signal.
fn post(action: Action) -> impl FnOnce() + Send + 'static {
    move || {
        runtime::with_runtime(|rt| match action {
            Action::Interrupt => rt.cancel_root(),
            Action::Dump => {
                let tree = crate::core::tree::snapshot(rt, None);
                eprintln!("trio: task tree (on request by signal):\n{tree}");
            }
        });
    }
}

impl RunSignals {
    /// Uninstalls (see the module docs, step 3) and turns `result` into an
    /// [`ErrorKind::Interrupted`] error if an interrupting signal arrived
    /// during the run.
    pub(crate) fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        self.uninstall();
        let fired = self
            .hooks
            .iter()
            .find(|h| h.fired.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)));
        match fired {
            Some(h) => Err(Error::with_kind(
                ErrorKind::Interrupted,
                super::Interrupted::new(h.signal),
            )),
            None => result,
        }
    }

    fn uninstall(&mut self) {
        for h in self.hooks.iter() {
            registry::remove_hook(h.signal);
        }
        if let Some((thread, stop, mut write)) = self.thread.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = write.write_all(&[0]);
            // Closing our end too: should the byte not go through, the
            // thread sees end-of-file once signal-hook's clones are gone.
            drop(write);
            let _ = thread.join();
        }
    }
}

impl Drop for RunSignals {
    fn drop(&mut self) {
        self.uninstall();
    }
}
