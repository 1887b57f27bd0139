//! What the workload exercised, counted, so that a pass can prove it did
//! something: a counter that stays at zero over a whole pass means a part of
//! the workload never ran (or the runtime never produced that outcome), and
//! the pass fails.

use std::cell::Cell;

macro_rules! counters {
    ($($name:ident ($pass:ident): $doc:literal,)*) => {
        /// One counter.
        #[allow(non_camel_case_types)]
        #[derive(Copy, Clone, Debug, PartialEq, Eq)]
        pub enum C {
            $(#[doc = $doc] $name,)*
        }

        impl C {
            /// Every counter, in report order.
            pub const ALL: &[C] = &[$(C::$name,)*];

            /// The counter's name as printed.
            pub fn name(self) -> &'static str {
                match self {
                    $(C::$name => stringify!($name),)*
                }
            }

            /// Which pass must see it non-zero.
            pub fn pass(self) -> Pass {
                match self {
                    $(C::$name => Pass::$pass,)*
                }
            }
        }
    };
}

/// Which pass a counter belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Required in the replayable pass (without threads).
    Main,
    /// Required in the worker-thread pass only.
    Threads,
}

counters! {
    runs (Main): "runs completed (two per seed: the workload and the cross-run epilogue)",
    values_sent (Main): "channel sends that returned Ok",
    values_received (Main): "values received",
    values_handed_back (Main): "values returned to the sender in a SendError",
    values_dropped_at_close (Main): "sent values dropped because every receiver closed",
    values_leaked (Main): "pending send futures leaked with mem::forget",
    leaked_across_runs (Main): "of those, on the channel that outlives the run",
    stale_sends_shed_by_close (Main): "of those, met by the next run's close of a handle (not by a receive)",
    stream_receives (Main): "receives through the Stream impl",
    cancels_delivered (Main): "operations that returned Cancelled",
    scopes_caught (Main): "scopes (move_on_after, CancelScope) that caught their own cancel",
    too_slow (Main): "fail_after scopes that expired (TooSlow)",
    remote_cancels (Main): "scopes and nurseries cancelled by another task",
    shield_toggles (Main): "shields toggled by another task",
    deadline_moves (Main): "deadlines moved by another task",
    broken_errors (Main): "Broken errors (receivers gone)",
    busy_errors (Main): "Busy errors (two readers on one fd)",
    closed_errors (Main): "Closed errors (own handle closed under a waiter)",
    would_block (Main): "WouldBlock from try_* operations",
    lock_acquired (Main): "Lock acquisitions (guard, raw, via Condition)",
    mutex_sections (Main): "Mutex<T> critical sections completed",
    semaphore_acquired (Main): "Semaphore units taken",
    limiter_acquired (Main): "CapacityLimiter tokens borrowed",
    limiter_for_shared_borrower (Main): "tokens borrowed for the borrower two tasks share",
    limiter_total_changes (Main): "set_total_tokens calls",
    events_set (Main): "Events set",
    event_waits_woken (Main): "Event waits that returned Ok",
    condition_waits_woken (Main): "Condition waits that returned Ok",
    condition_notifies (Main): "Condition notifies",
    starts_ok (Main): "Nursery::start calls that returned the started value",
    starts_handed_off (Main): "of those, where started() was called by another task",
    starts_failed_early (Main): "start calls whose task failed before started()",
    starts_never_started (Main): "start calls whose task returned without started()",
    child_failures (Main): "nurseries that reported a failing child",
    panics_caught (Main): "child panics resumed in the parent and caught",
    nurseries_dropped (Main): "nursery futures dropped while children were running",
    wait_all_blocked (Main): "wait_all_tasks_blocked returns",
    instrument_probes (Main): "instrument hooks that probed every primitive",
    drop_probes (Main): "payload destructors that probed their channel",
    stream_sessions_memory (Main): "byte-stream sessions over memory or lockstep streams",
    stream_sessions_socket (Main): "byte-stream sessions over Unix or loopback TCP socket streams",
    stream_sends (Main): "stream sends (send_all, send_some) that returned Ok",
    stream_partial_sends (Main): "of those, send_some calls that sent part of their data",
    stream_send_all_cut (Main): "send_all calls cancelled or failed (the flow's tail is then uncertain)",
    stream_bytes_checked (Main): "stream bytes received and checked in order against what was sent",
    stream_helper_reads (Main): "buffered reads (exactly, line, until, to end) that returned",
    stream_chunk_too_long (Main): "buffered reads past their max size (the bytes stay buffered)",
    stream_reads_cancelled (Main): "stream reads (receive_some, buffered helpers) that returned Cancelled",
    stream_eof_checked (Main): "flows read to end of stream and accounted for",
    stream_eof_exact (Main): "of those, with an exact count (no cut send_all)",
    stream_busy (Main): "Busy from a second concurrent sender or receiver on a stream",
    stream_closed (Main): "Closed from a stream whose own end was closed (also waking a blocked op)",
    stream_broken (Main): "Broken from a stream whose peer's end was closed",
    stream_abortive_closes (Main): "socket stream ends closed abortively (SO_LINGER 0: a reset)",
    serve_sessions_memory (Main): "servers over a scripted memory listener (serve_listeners)",
    serve_sessions_tcp (Main): "servers on loopback TCP (serve_tcp, started with nursery.start)",
    serve_exchanges (Main): "client request/reply exchanges completed and checked exactly",
    serve_exchanges_cut (Main): "client exchanges cut by a scope (the client then hangs up)",
    serve_handlers_ended (Main): "handlers that ended, each counted once",
    serve_at_max_connections (Main): "handlers started with max_connections handlers running",
    serve_graceful_stops (Main): "ServeControl::stop calls (random grace)",
    serve_refused_after_stop (Main): "connects refused once the stopped server closed its listener",
    serve_grace_cancels (Main): "handlers cancelled at the grace deadline (HandlerCancelled)",
    serve_stopped_by_failure (Main): "servers ended by a handler's error (OnHandlerError::StopServer)",
    serve_failures_logged (Main): "handler errors logged and served on (LogAndContinue)",
    serve_accept_retries (Main): "injected EMFILE-like accept errors logged and retried",
    serve_fatal_accept (Main): "injected other accept errors that ended the server",
    proc_pipe_sessions (Main): "cat/sh children fed and drained through their pipes",
    proc_bytes_checked (Main): "bytes read back from a child's stdout and checked in order",
    proc_runs_ok (Main): "run_process calls that returned, output checked",
    proc_runs_cancelled (Main): "run_process calls cancelled (the child then reaped, by pid)",
    proc_signalled (Main): "children killed or terminated, exit status checked",
    proc_reaped_checked (Main): "children checked gone by pid (/proc) after the run ended",
    file_sessions (Main): "temp-file sessions",
    file_ops_checked (Main): "File reads, writes, seeks checked against the model",
    file_ops_cancelled (Main): "File and fs calls that returned Cancelled (no effect, checked)",
    file_whole_checked (Main): "fs::read / read_dir results checked against the model",
    thread_calls (Threads): "to_thread::run_sync calls that returned a result",
    threads_abandoned (Threads): "to_thread calls cancelled (abandoned or waited for)",
    from_thread_calls (Threads): "from_thread::run_sync calls made from worker threads",
}

/// Live counters of one run (not `Send`: they live in the run's thread).
pub struct Counts(Vec<Cell<u64>>);

impl Default for Counts {
    fn default() -> Self {
        Counts(C::ALL.iter().map(|_| Cell::new(0)).collect())
    }
}

impl Counts {
    pub fn add(&self, c: C, n: u64) {
        let cell = &self.0[c as usize];
        cell.set(cell.get() + n);
    }

    pub fn bump(&self, c: C) {
        self.add(c, 1);
    }

    pub fn get(&self, c: C) -> u64 {
        self.0[c as usize].get()
    }

    pub fn totals(&self) -> Totals {
        Totals(self.0.iter().map(Cell::get).collect())
    }
}

/// Counter values that can cross threads and be summed over seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Totals(pub Vec<u64>);

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        if self.0.is_empty() {
            self.0 = vec![0; C::ALL.len()];
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    pub fn get(&self, c: C) -> u64 {
        self.0.get(c as usize).copied().unwrap_or(0)
    }
}
