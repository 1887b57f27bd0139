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
//! 2. A thread ("trio-signals", started by the first run that installs a
//!    hook and kept for the life of the process, so that later runs pay no
//!    thread start) blocks reading that socket. On a byte it takes the
//!    pending flags of the run it serves and posts to that run, through the
//!    uncounted `RunHandle`: a cancel of the root cancel status
//!    (interrupting signals) or a tree dump to stderr.
//! 3. At the end (or on drop) the hooks are removed, so the signals'
//!    previous behaviour applies again, and the thread stops serving the
//!    run. `fired` is read after the hooks are gone: a signal the handler
//!    saw at any point of the run is reported, even one whose byte the
//!    thread never read.
//!
//! The thread is not counted as something that could wake the run, so
//! deadlock detection is unchanged (see the [module docs](super)).

use super::registry::{self, Before, HookSpec};
use crate::core::runtime;
use crate::core::token::RunHandle;
use crate::error::{Error, ErrorKind, Result};
use std::fmt;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
}

impl fmt::Debug for RunSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signals: Vec<i32> = self.hooks.iter().map(|h| h.signal).collect();
        f.debug_struct("RunSignals")
            .field("signals", &signals)
            .finish()
    }
}

/// The run whose hooks the reading thread serves (at most one: only the
/// main thread installs hooks, and it runs one run at a time).
struct Served {
    run: RunHandle,
    hooks: Arc<Vec<Hook>>,
}

/// The reading thread's side: started by the first run that installs a
/// hook, then kept for the life of the process (so later runs pay no thread
/// start); it blocks in `read` while no signal comes.
struct Reader {
    /// The write end of the wake-up socket; each hook gives signal-hook a
    /// clone of it.
    wake: UnixStream,
    served: Arc<Mutex<Option<Served>>>,
}

static READER: Mutex<Option<Reader>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The reading thread's wake-up socket (a clone of the write end) and the
/// slot of the run it serves, starting the thread on first use.
fn reader() -> Result<(UnixStream, Arc<Mutex<Option<Served>>>)> {
    let mut g = lock(&READER);
    if g.is_none() {
        let (mut read, wake) = UnixStream::pair()?;
        let served: Arc<Mutex<Option<Served>>> = Arc::new(Mutex::new(None));
        let thread_served = served.clone();
        std::thread::Builder::new()
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
                    let g = lock(&thread_served);
                    let Some(served) = &*g else { continue };
                    for h in served.hooks.iter() {
                        if h.pending.swap(false, Ordering::SeqCst) {
                            // Fails only once the run has finished: then
                            // `finish` reports the signal through `fired`.
                            let _ = served.run.run_sync_soon(post(h.action));
                        }
                    }
                }
            })?;
        *g = Some(Reader { wake, served });
    }
    let r = g.as_ref().expect("set above");
    Ok((r.wake.try_clone()?, r.served.clone()))
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
        });
    }
    let (wake, served) = reader()?;
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
        let spec = wake.try_clone().map(|wake| HookSpec {
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
    // From here on, dropping the guard removes the hooks (also on an error).
    let guard = RunSignals {
        hooks: Arc::new(hooks),
    };
    installed?;
    *lock(&served) = Some(Served {
        run,
        hooks: guard.hooks.clone(),
    });
    Ok(guard)
}

/// What the reading thread posts to the run for a signal.
fn post(action: Action) -> impl FnOnce() + Send + 'static {
    move || {
        runtime::with_runtime(|rt| match action {
            Action::Interrupt => {
                let root = rt.root_cancel_status.get();
                rt.with_state(|st| st.cancel(root));
            }
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
        if !self.hooks.is_empty()
            && let Some(r) = &*lock(&READER)
        {
            let mut served = lock(&r.served);
            if served
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(&s.hooks, &self.hooks))
            {
                *served = None;
            }
        }
    }
}

impl Drop for RunSignals {
    fn drop(&mut self) {
        self.uninstall();
    }
}
