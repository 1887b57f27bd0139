//! Servers under random cancellation: `serve_listeners` over a scripted
//! in-memory listener (feature `serving`, deterministic) and `serve_tcp`
//! on 127.0.0.1 port 0 (feature `tcp_serving`, real sockets), both started
//! with `nursery.start`.
//!
//! # What a session does
//!
//! A seed runs one or two *sessions*. A session starts one server with a random configuration: the
//! handler-error policy (`StopServer` or `LogAndContinue`), maybe a
//! `max_connections` limit of 1–3, maybe a `ServeControl`, and a `log` hook
//! that records every `ServeEvent`. A memory server has 1–3 listeners
//! (their accept loops compete for the room under `max_connections`);
//! each memory listener is a channel of
//! `MemoryStream` ends (its capacity, 0–8, plays the backlog) whose
//! `accept` sometimes fails with an injected `EMFILE`, `ENFILE`, `ENOBUFS`
//! or `ENOMEM` (to be logged and retried) and, in a few sessions, once
//! with `EPERM` (which must end the server with that error).
//!
//! Then 2–5 clients connect at random times (memory: send a stream end
//! into the channel; TCP: `open_tcp_stream` or `SocketStream::connect_tcp`)
//! and say hello with their id and a *mode* for their handler: normal,
//! fail after `j` replies (a scripted error), slow (sleeps before each
//! reply, so that a grace deadline cuts it), or wait for the stop (after
//! the client's end of stream, the handler waits for `ServeControl::stopping`
//! before it returns). Each exchange (a request line, its reply line) runs
//! in the workload's random scopes; a cut exchange makes the client hang
//! up. A stopper calls `ServeControl::stop` with a random grace at a random
//! time (and sometimes again with grace 0), waits until the server has
//! closed its listener, and then tries to connect. At the end the session
//! stops the server (or cancels it, which also happens without a control).
//!
//! # What is checked
//!
//! - Every completed exchange got exactly its reply (the request's letters
//!   upper-cased, with their count); a client whose connection ends early
//!   may see that only if its handler has ended (failed, cancelled), or,
//!   never handled, if the server may refuse it (stopping, ended, failed).
//! - Each handler is counted once (no connection handled twice), the
//!   number of handlers running never exceeds `max_connections`, and when
//!   the server has returned none is left (`active_connections` is 0).
//! - After a stop no connection is accepted once the listener is closed,
//!   and no handler ends after the grace deadline (its cancellation is
//!   delivered at the deadline). On the memory listener a connect then
//!   fails. On TCP it usually does (counted), but not always: seen on
//!   about 1 seed in 100 with both `tcp_serving` and `processes` (seed
//!   837 failed a strict check in about half of its runs with
//!   `processes`, in none of 8 without; at the failing connect the
//!   listening socket was in no fd of this process, and a moment later
//!   `ss` showed no listener on the port). The likely cause: a child
//!   being spawned holds a copy of every fd, close-on-exec ones too,
//!   until its `execve` closes them, and the parent of a `vfork`-style
//!   `posix_spawn` runs again before that; a listener closed in that
//!   window keeps listening for a moment, and a connect then lands in a
//!   backlog nobody accepts (reset when the copy closes). So on TCP the
//!   check is that such a connection never reaches a handler (its hello
//!   names a client id that no handler may record).
//! - Under `StopServer`, a scripted handler error ends the server with that
//!   error; under `LogAndContinue` each is logged exactly once and none
//!   comes out of the server. Every injected `EMFILE`-like error is logged
//!   exactly once; an injected `EPERM` ends the server with it. The server
//!   returns `Ok` only after a stop; otherwise only with the errors above
//!   or a cancellation.

use super::counters::C;
use super::ops::{BoxFut, in_random_scopes, settle_nursery};
use super::prng::Rng;
use super::world::World;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use trio::net::{OnHandlerError, ServeControl, ServeEvent};
use trio::socket::{SocketListener, SocketStream};
use trio::stream::{
    AsyncResource, BufferedReceiveStream, Listener, ReceiveStream, SendStream, Stream,
    aclose_forcefully,
};
use trio::testing::{MemoryStream, memory_stream_pair};
use trio::{CancelScope, Error, ErrorKind, MemoryReceiveChannel, MemorySendChannel, Result};

/// How a handler ended (or that it runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HState {
    Running,
    /// How: `"cancelled"` (or another error passed on), `"failed"` (the
    /// scripted error), `"eof"` (the client's end of stream), `"hangup"`
    /// (the stream failed under it).
    Ended(&'static str),
}

/// The state of one server and its checks.
struct Srv<'w> {
    w: &'w World,
    name: &'static str,
    policy: OnHandlerError,
    max: Option<usize>,
    control: Option<ServeControl>,
    /// Handlers running now.
    live: Cell<usize>,
    entered: Cell<u64>,
    ended: Cell<u64>,
    /// By client id, once its hello was read.
    handlers: RefCell<HashMap<u64, HState>>,
    failures_raised: RefCell<Vec<u64>>,
    failures_logged: RefCell<Vec<u64>>,
    retries_injected: Cell<u64>,
    retries_logged: Cell<u64>,
    fatal_planned: bool,
    fatal_injected: Cell<bool>,
    stopped: Cell<bool>,
    cancelled: Cell<bool>,
    listener_closed: Cell<bool>,
    done: Cell<bool>,
    next_cid: Cell<u64>,
    /// Clients that connected after the listener was seen closed (see
    /// the module docs): no handler may ever see them.
    ghosts: RefCell<Vec<u64>>,
}

impl Srv<'_> {
    /// Whether a client may be refused or cut off without a handler.
    fn may_refuse(&self) -> bool {
        self.stopped.get()
            || self.cancelled.get()
            || self.done.get()
            || self.listener_closed.get()
            || self.fatal_injected.get()
            || (self.policy == OnHandlerError::StopServer
                && !self.failures_raised.borrow().is_empty())
    }

    fn on_event(&self, e: &ServeEvent<'_>) {
        match e {
            ServeEvent::AcceptRetry { .. } => {
                self.retries_logged.set(self.retries_logged.get() + 1);
                self.w.bump(C::serve_accept_retries);
            }
            ServeEvent::HandlerFailed { error } => match failure_id(error) {
                Some(cid) => {
                    self.failures_logged.borrow_mut().push(cid);
                    self.w.bump(C::serve_failures_logged);
                }
                None => self.w.violation(format!(
                    "{}: HandlerFailed logged an error no handler raised: {error:?}",
                    self.name
                )),
            },
            ServeEvent::HandlerCancelled => self.w.bump(C::serve_grace_cancels),
            other => self
                .w
                .violation(format!("{}: unexpected serve event {other}", self.name)),
        }
    }
}

const FAILURE: &str = "scripted handler failure of client ";

fn failure(cid: u64) -> Error {
    Error::new(ErrorKind::Other, format!("{FAILURE}{cid}"))
}

fn failure_id(e: &Error) -> Option<u64> {
    if e.kind() != ErrorKind::Other {
        return None;
    }
    e.to_string().strip_prefix(FAILURE)?.parse().ok()
}

fn is_fatal_accept(e: &Error) -> bool {
    e.downcast_ref::<io::Error>()
        .and_then(io::Error::raw_os_error)
        == Some(libc::EPERM)
}

// ----- the scripted memory listener ----------------------------------------------

struct MemListener<'s, 'w> {
    srv: &'s Srv<'w>,
    incoming: MemoryReceiveChannel<MemoryStream>,
    rng: RefCell<Rng>,
    /// Accept calls so far (the fatal error comes at a planned one).
    accepts: Cell<u64>,
    fatal_at: u64,
}

impl AsyncResource for MemListener<'_, '_> {
    async fn aclose(&self) -> Result<()> {
        // Closed first (a connect from here on fails), then flagged.
        self.incoming.close();
        self.srv.listener_closed.set(true);
        Ok(())
    }
}

impl Listener for MemListener<'_, '_> {
    type Stream = MemoryStream;
    async fn accept(&self) -> Result<MemoryStream> {
        trio::checkpoint().await?;
        let n = self.accepts.get();
        self.accepts.set(n + 1);
        let srv = self.srv;
        if srv.fatal_planned && n == self.fatal_at {
            srv.fatal_injected.set(true);
            return Err(io::Error::from_raw_os_error(libc::EPERM).into());
        }
        let errno = {
            let mut r = self.rng.borrow_mut();
            r.chance(15).then(|| {
                [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM][r.below(4) as usize]
            })
        };
        if let Some(errno) = errno {
            // Returned (and so logged) with no await in between.
            srv.retries_injected.set(srv.retries_injected.get() + 1);
            return Err(io::Error::from_raw_os_error(errno).into());
        }
        // (A stream handed to a parked accept just before the close is
        // still returned: it was accepted first.)
        self.incoming.receive().await
    }
}

// ----- the handler ----------------------------------------------------------------

/// Counts a running handler; on drop, checks the grace deadline.
struct Live<'s, 'w> {
    srv: &'s Srv<'w>,
    cid: Cell<Option<u64>>,
    how: Cell<&'static str>,
}

impl<'s, 'w> Live<'s, 'w> {
    fn enter(srv: &'s Srv<'w>) -> Self {
        let n = srv.live.get() + 1;
        srv.live.set(n);
        srv.entered.set(srv.entered.get() + 1);
        if let Some(max) = srv.max {
            if n > max {
                srv.w.violation(format!(
                    "{}: {n} handlers running at once, max_connections is {max}",
                    srv.name
                ));
            } else if n == max {
                srv.w.bump(C::serve_at_max_connections);
            }
        }
        Live {
            srv,
            cid: Cell::new(None),
            how: Cell::new("cancelled"),
        }
    }
}

impl Drop for Live<'_, '_> {
    fn drop(&mut self) {
        let srv = self.srv;
        srv.live.set(srv.live.get() - 1);
        srv.ended.set(srv.ended.get() + 1);
        srv.w.bump(C::serve_handlers_ended);
        if let Some(cid) = self.cid.get() {
            srv.handlers
                .borrow_mut()
                .insert(cid, HState::Ended(self.how.get()));
        }
        if let (Some(c), Ok(now)) = (&srv.control, trio::try_current_time())
            && let Some(deadline) = c.grace_deadline()
            && now > deadline
        {
            srv.w.violation(format!(
                "{}: a handler ended at {now:?}, after the grace deadline {deadline:?}",
                srv.name
            ));
        }
    }
}

/// The reply to one request line `"R {cid} {seq} {letters}\n"`.
fn reply_to(line: &[u8]) -> Vec<u8> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let letters = body.rsplit(|b| *b == b' ').next().unwrap_or(b"");
    let mut out = b"A".to_vec();
    out.extend_from_slice(&body[1..body.len() - letters.len()]);
    out.extend(letters.iter().map(u8::to_ascii_uppercase));
    out.extend_from_slice(format!(" {}\n", letters.len()).as_bytes());
    out
}

/// A connection's handler: hello, then one reply per request line.
/// Stream errors (the client hung up) end it quietly; only the scripted
/// failure is an error.
async fn handle<S: Stream>(srv: &Srv<'_>, stream: &S) -> Result<()> {
    let live = Live::enter(srv);
    let buf = BufferedReceiveStream::new(stream);
    let hello = match buf.receive_line(100).await {
        Ok(l) => l,
        Err(e) if e.is_cancelled() => return Err(e),
        Err(_) => return Ok(()),
    };
    let text = String::from_utf8_lossy(&hello).into_owned();
    let mut words = text.trim_end().split(' ');
    let (Some("H"), Some(cid), Some(mode), Some(j)) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        // End of stream before a whole hello: the client hung up.
        return Ok(());
    };
    let (Ok(cid), Ok(j)) = (cid.parse::<u64>(), j.parse::<u64>()) else {
        srv.w
            .violation(format!("{}: a garbled hello {text:?}", srv.name));
        return Ok(());
    };
    if srv
        .handlers
        .borrow_mut()
        .insert(cid, HState::Running)
        .is_some()
    {
        srv.w.violation(format!(
            "{}: client {cid}'s connection was handled twice",
            srv.name
        ));
    }
    live.cid.set(Some(cid));
    let mut served = 0;
    loop {
        if mode == "f" && served == j {
            srv.failures_raised.borrow_mut().push(cid);
            live.how.set("failed");
            return Err(failure(cid));
        }
        let line = match buf.receive_line(4096).await {
            Ok(l) => l,
            Err(e) if e.is_cancelled() => return Err(e),
            Err(_) => {
                live.how.set("hangup");
                return Ok(());
            }
        };
        if line.is_empty() {
            live.how.set("eof");
            // The client's end of stream.
            if mode == "w"
                && let Some(c) = &srv.control
            {
                c.stopping().await?;
            }
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            live.how.set("hangup");
            return Ok(());
        }
        if mode == "s" {
            trio::sleep(0.3 * (served % 5) as f64).await?;
        }
        match stream.send_all(&reply_to(&line)).await {
            Ok(()) => served += 1,
            Err(e) if e.is_cancelled() => return Err(e),
            Err(_) => {
                live.how.set("hangup");
                return Ok(());
            }
        }
    }
}

// ----- clients ------------------------------------------------------------------

/// How a client connects.
enum Connect<'c> {
    /// One sender per listener; a client picks one at random.
    Memory(&'c [MemorySendChannel<MemoryStream>]),
    Tcp(SocketAddr),
}

/// A connected client's stream.
enum ClientStream {
    Memory(MemoryStream),
    Tcp(SocketStream),
}

async fn connect(how: &Connect<'_>, rng: &mut Rng) -> Result<ClientStream> {
    match how {
        Connect::Memory(txs) => {
            let tx = &txs[rng.below(txs.len() as u64) as usize];
            let (a, b) = memory_stream_pair();
            tx.send(b).await.map_err(Error::from)?;
            Ok(ClientStream::Memory(a))
        }
        Connect::Tcp(addr) => {
            let s = if rng.chance(50) {
                trio::open_tcp_stream("127.0.0.1", addr.port()).await?
            } else {
                SocketStream::connect_tcp(*addr).await?
            };
            Ok(ClientStream::Tcp(s))
        }
    }
}

async fn client(srv: &Srv<'_>, how: &Connect<'_>, mut rng: Rng) -> Result<()> {
    let cid = srv.next_cid.get();
    srv.next_cid.set(cid + 1);
    trio::sleep(rng.secs(3.0)).await?;
    let closed_before = srv.listener_closed.get();
    let stream = match connect(how, &mut rng).await {
        Ok(s) => s,
        Err(e) if e.is_cancelled() => return Err(e),
        Err(e) => {
            if !srv.may_refuse() {
                srv.w.violation(format!(
                    "{}: client {cid} could not connect to a running server: {e:?}",
                    srv.name
                ));
            }
            return Ok(());
        }
    };
    if closed_before {
        // Possible only on TCP, through a copy of the listening fd in a
        // child being spawned; it must never reach a handler.
        srv.ghosts.borrow_mut().push(cid);
    }
    let r = match &stream {
        ClientStream::Memory(s) => talk(srv, cid, s, rng).await,
        ClientStream::Tcp(s) => talk(srv, cid, s, rng).await,
    };
    match &stream {
        ClientStream::Memory(s) => aclose_forcefully(s).await?,
        ClientStream::Tcp(s) => aclose_forcefully(s).await?,
    }
    r
}

/// The client's exchanges over its connection.
async fn talk<S: Stream>(srv: &Srv<'_>, cid: u64, s: &S, mut rng: Rng) -> Result<()> {
    let w = srv.w;
    let mode = match rng.below(10) {
        0 => "f",
        1 => "s",
        2 | 3 => "w",
        _ => "n",
    };
    let j = rng.below(3);
    let buf = BufferedReceiveStream::new(s);
    // An early end of the connection: fine only if the handler has ended,
    // or none ever began and the server may refuse.
    let cut_off = |what: &str, e: Option<&Error>| {
        let state = srv.handlers.borrow().get(&cid).copied();
        let ok = match state {
            // A client still talking: its handler may only have been
            // cancelled or have failed on purpose.
            Some(HState::Ended(how)) => how == "cancelled" || how == "failed",
            Some(HState::Running) => false,
            None => srv.may_refuse(),
        };
        if !ok {
            w.violation(format!(
                "{}: client {cid} (mode {mode}) cut off at {what} ({e:?}) while its handler is {state:?} \
                 and the server runs (stopped {}, done {})",
                srv.name,
                srv.stopped.get(),
                srv.done.get()
            ));
        }
    };
    let hello = format!("H {cid} {mode} {j}\n");
    match s.send_all(hello.as_bytes()).await {
        Ok(()) => {}
        Err(e) if e.is_cancelled() => return Err(e),
        Err(e) => {
            cut_off("hello", Some(&e));
            return Ok(());
        }
    }
    for seq in 0..rng.range(1, 5) {
        let n = rng.below(40) as usize;
        let letters: String = (0..n)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect();
        let req = format!("R {cid} {seq} {letters}\n");
        let expected = reply_to(req.as_bytes());
        // 0: completed, 1: cut off, 2: scope cut it.
        let outcome = Cell::new(2u8);
        let fut: BoxFut<'_> = Box::pin(async {
            if let Err(e) = s.send_all(req.as_bytes()).await {
                if e.is_cancelled() {
                    return Err(e);
                }
                outcome.set(1);
                cut_off("a send", Some(&e));
                return Ok(());
            }
            match buf.receive_line(4096).await {
                Ok(line) if line == expected => {
                    outcome.set(0);
                    w.bump(C::serve_exchanges);
                }
                Ok(line) if !line.ends_with(b"\n") && expected.starts_with(&line) => {
                    outcome.set(1);
                    cut_off("a reply", None);
                }
                Ok(line) => {
                    outcome.set(1);
                    w.violation(format!(
                        "{}: client {cid} sent {req:?} and got {:?}, not {:?}",
                        srv.name,
                        String::from_utf8_lossy(&line),
                        String::from_utf8_lossy(&expected)
                    ));
                }
                Err(e) if e.is_cancelled() => return Err(e),
                Err(e) => {
                    outcome.set(1);
                    cut_off("a reply", Some(&e));
                }
            }
            Ok(())
        });
        in_random_scopes(w, &mut rng, fut).await?;
        match outcome.get() {
            0 => {}
            1 => return Ok(()),
            _ => {
                w.bump(C::serve_exchanges_cut);
                return Ok(());
            }
        }
    }
    // Done: end of stream, and the handler's close comes back.
    match s.send_eof().await {
        Ok(()) => {}
        Err(e) if e.is_cancelled() => return Err(e),
        Err(_) => return Ok(()),
    }
    let mut b = [0u8; 64];
    match buf.receive_some(&mut b).await {
        Ok(0) => {}
        Ok(n) => w.violation(format!(
            "{}: client {cid} got {n} unasked-for bytes after its last reply",
            srv.name
        )),
        Err(e) if e.is_cancelled() => return Err(e),
        Err(_) => {}
    }
    Ok(())
}

// ----- the session ----------------------------------------------------------------

/// A few server sessions, one after another.
pub async fn driver(w: &World, mut rng: Rng) -> Result<()> {
    let mut kinds = Vec::new();
    if w.features.serving {
        kinds.push(false);
    }
    if w.features.tcp_serving {
        kinds.push(true);
    }
    for _ in 0..rng.range(1, 2) {
        trio::lowlevel::checkpoint_if_cancelled().await?;
        let tcp = kinds[rng.below(kinds.len() as u64) as usize];
        session(w, rng.fork(), tcp).await?;
    }
    Ok(())
}

async fn session(w: &World, mut rng: Rng, tcp: bool) -> Result<()> {
    w.bump(if tcp {
        C::serve_sessions_tcp
    } else {
        C::serve_sessions_memory
    });
    let srv = Srv {
        w,
        name: if tcp { "serve_tcp" } else { "serve_listeners" },
        policy: if rng.chance(50) {
            OnHandlerError::StopServer
        } else {
            OnHandlerError::LogAndContinue
        },
        max: rng.chance(50).then(|| rng.range(1, 3) as usize),
        control: rng.chance(80).then(ServeControl::new),
        live: Cell::new(0),
        entered: Cell::new(0),
        ended: Cell::new(0),
        handlers: RefCell::new(HashMap::new()),
        failures_raised: RefCell::new(Vec::new()),
        failures_logged: RefCell::new(Vec::new()),
        retries_injected: Cell::new(0),
        retries_logged: Cell::new(0),
        fatal_planned: !tcp && rng.chance(8),
        fatal_injected: Cell::new(false),
        stopped: Cell::new(false),
        cancelled: Cell::new(false),
        listener_closed: Cell::new(false),
        done: Cell::new(false),
        next_cid: Cell::new(0),
        ghosts: RefCell::new(Vec::new()),
    };
    let srv = &srv;
    let scope = CancelScope::new();
    let result: RefCell<Option<Result<Option<()>>>> = RefCell::new(None);
    let clients = rng.range(2, 5);
    let outer = if tcp {
        let serve = trio::serve_tcp(async |s: &SocketStream| handle(srv, s).await, 0)
            .host("127.0.0.1")
            .on_handler_error(srv.policy)
            .log(|e: &ServeEvent<'_>| srv.on_event(e));
        let serve = match srv.max {
            Some(m) => serve.max_connections(m),
            None => serve,
        };
        let serve = match &srv.control {
            Some(c) => serve.control(c),
            None => serve,
        };
        trio::open_nursery(async |n| {
            let listeners = n
                .start(|status| async {
                    let r = scope.run(serve.task_status(status)).await;
                    srv.done.set(true);
                    *result.borrow_mut() = Some(r);
                    Ok(())
                })
                .await;
            let listeners: Rc<[SocketListener]> = match listeners {
                Ok(l) => l,
                Err(e) if e.is_cancelled() => return Err(e),
                Err(e) => {
                    w.violation(format!("serve_tcp did not start: {e:?}"));
                    return Ok(());
                }
            };
            let Some(addr) = listeners[0].local_addr().ok().and_then(|a| a.as_socket()) else {
                w.violation("the serve_tcp listener has no address".into());
                scope.cancel();
                return Ok(());
            };
            let how = Connect::Tcp(addr);
            let closed = || listeners[0].socket().is_err();
            drive(srv, &how, &closed, &scope, clients, &mut rng).await
        })
        .await
    } else {
        // 1–3 listeners: their accept loops compete for the room under
        // max_connections.
        let mut txs = Vec::new();
        let mut listeners = Vec::new();
        for i in 0..rng.range(1, 3) {
            let (tx, rx) = trio::open_memory_channel([0, 1, 2, 8][rng.below(4) as usize]);
            txs.push(tx);
            listeners.push(MemListener {
                srv,
                incoming: rx,
                rng: RefCell::new(rng.fork()),
                accepts: Cell::new(0),
                // Only the first one fails fatally.
                fatal_at: if i == 0 { rng.range(0, 6) } else { u64::MAX },
            });
        }
        let serve = trio::serve_listeners(async |s: &MemoryStream| handle(srv, s).await, listeners)
            .on_handler_error(srv.policy)
            .log(|e: &ServeEvent<'_>| srv.on_event(e));
        let serve = match srv.max {
            Some(m) => serve.max_connections(m),
            None => serve,
        };
        let serve = match &srv.control {
            Some(c) => serve.control(c),
            None => serve,
        };
        trio::open_nursery(async |n| {
            let started = n
                .start(|status| async {
                    let r = scope.run(serve.task_status(status)).await;
                    srv.done.set(true);
                    *result.borrow_mut() = Some(r);
                    Ok(())
                })
                .await;
            match started {
                Ok(_) => {}
                Err(e) if e.is_cancelled() => return Err(e),
                Err(e) => {
                    w.violation(format!("serve_listeners did not start: {e:?}"));
                    return Ok(());
                }
            }
            let how = Connect::Memory(&txs);
            let closed = || srv.listener_closed.get();
            drive(srv, &how, &closed, &scope, clients, &mut rng).await
        })
        .await
    };
    check_end(srv, result.into_inner());
    settle_nursery(w, "server session nursery", outer)
}

/// The clients and the stopper, then the end of the server.
async fn drive(
    srv: &Srv<'_>,
    how: &Connect<'_>,
    closed: &dyn Fn() -> bool,
    scope: &CancelScope,
    clients: u64,
    rng: &mut Rng,
) -> Result<()> {
    let w = srv.w;
    let r = trio::open_nursery(async |n| {
        for _ in 0..clients {
            n.start_soon(client(srv, how, rng.fork()));
        }
        if let Some(control) = &srv.control {
            let mut r = rng.fork();
            n.start_soon(async move {
                trio::sleep(r.secs(4.0)).await?;
                stop(srv, control, r.secs(3.0));
                if r.chance(30) {
                    trio::sleep(r.secs(1.0)).await?;
                    stop(srv, control, 0.0);
                }
                // Wait for the listener to close, then knock.
                for _ in 0..100 {
                    if closed() {
                        srv.listener_closed.set(true);
                        break;
                    }
                    if srv.done.get() {
                        break;
                    }
                    trio::sleep(0.01).await?;
                }
                if closed() && r.chance(50) {
                    match connect(how, &mut r).await {
                        Ok(s) => {
                            // See the module docs: no handler may see it.
                            let cid = srv.next_cid.get();
                            srv.next_cid.set(cid + 1);
                            srv.ghosts.borrow_mut().push(cid);
                            let hello = format!("H {cid} n 0\n");
                            match &s {
                                ClientStream::Memory(s) => {
                                    let _ = s.send_all(hello.as_bytes()).await;
                                    aclose_forcefully(s).await?;
                                }
                                ClientStream::Tcp(s) => {
                                    let _ = s.send_all(hello.as_bytes()).await;
                                    aclose_forcefully(s).await?;
                                }
                            }
                            if matches!(s, ClientStream::Memory(_)) {
                                w.violation(format!(
                                    "{}: a connect succeeded after the listener was closed",
                                    srv.name
                                ));
                            }
                        }
                        Err(e) if e.is_cancelled() => return Err(e),
                        Err(_) => w.bump(C::serve_refused_after_stop),
                    }
                }
                Ok(())
            });
        }
        Ok(())
    })
    .await;
    match &srv.control {
        Some(c) if rng.chance(85) => stop(srv, c, rng.secs(1.0)),
        _ => {
            srv.cancelled.set(true);
            scope.cancel();
        }
    }
    settle_nursery(w, "server clients nursery", r)
}

fn stop(srv: &Srv<'_>, control: &ServeControl, grace: f64) {
    srv.stopped.set(true);
    match control.stop(grace) {
        Ok(()) => srv.w.bump(C::serve_graceful_stops),
        Err(e) => srv
            .w
            .violation(format!("{}: ServeControl::stop({grace}): {e:?}", srv.name)),
    }
}

/// The checks once the server task has ended (`result` is `None` if it
/// never ran to its end: the session was cancelled from outside).
fn check_end(srv: &Srv<'_>, result: Option<Result<Option<()>>>) {
    let w = srv.w;
    let name = srv.name;
    for cid in srv.ghosts.borrow().iter() {
        if srv.handlers.borrow().contains_key(cid) {
            w.violation(format!(
                "{name}: client {cid} connected after the listener was closed, \
                 and a handler served it"
            ));
        }
    }
    let Some(result) = result else { return };
    if srv.live.get() != 0 || srv.entered.get() != srv.ended.get() {
        w.violation(format!(
            "{name}: the server returned with {} handlers running ({} began, {} ended)",
            srv.live.get(),
            srv.entered.get(),
            srv.ended.get()
        ));
    }
    if let Some(c) = &srv.control
        && c.active_connections() != 0
    {
        w.violation(format!(
            "{name}: the server returned and its control counts {} connections",
            c.active_connections()
        ));
    }
    if srv.retries_logged.get() != srv.retries_injected.get() {
        w.violation(format!(
            "{name}: {} EMFILE-like accept errors injected, {} logged",
            srv.retries_injected.get(),
            srv.retries_logged.get()
        ));
    }
    let mut raised = srv.failures_raised.borrow().clone();
    let mut logged = srv.failures_logged.borrow().clone();
    raised.sort_unstable();
    logged.sort_unstable();
    let stop_policy = srv.policy == OnHandlerError::StopServer;
    if !stop_policy && raised != logged {
        w.violation(format!(
            "{name}: under LogAndContinue, handlers of clients {raised:?} failed but {logged:?} were logged"
        ));
    }
    if stop_policy && !logged.is_empty() {
        w.violation(format!(
            "{name}: under StopServer, failures {logged:?} were logged instead of ending the server"
        ));
    }
    match result {
        Ok(None) => {}
        Ok(Some(())) => {
            if !srv.stopped.get() {
                w.violation(format!("{name}: the server returned Ok without a stop"));
            }
            if stop_policy && !raised.is_empty() {
                w.violation(format!(
                    "{name}: handlers of clients {raised:?} failed under StopServer, yet the server returned Ok"
                ));
            }
            if srv.fatal_injected.get() {
                w.violation(format!(
                    "{name}: accept failed with EPERM, yet the server returned Ok"
                ));
            }
        }
        Err(e) => {
            let mut cancelled = false;
            let mut failures = 0;
            let mut fatal = false;
            for leaf in e.leaves() {
                if leaf.is_cancelled() {
                    cancelled = true;
                } else if let Some(cid) = failure_id(leaf)
                    && stop_policy
                    && raised.contains(&cid)
                {
                    failures += 1;
                } else if is_fatal_accept(leaf) && srv.fatal_injected.get() {
                    fatal = true;
                } else {
                    w.violation(format!(
                        "{name}: the server returned an unexpected {leaf:?}"
                    ));
                }
            }
            if failures > 0 {
                w.bump(C::serve_stopped_by_failure);
            }
            if fatal {
                w.bump(C::serve_fatal_accept);
            }
            if !cancelled && failures == 0 && !fatal {
                w.violation(format!(
                    "{name}: the server failed with nothing to show: {e:?}"
                ));
            }
            if !cancelled && srv.fatal_injected.get() && !fatal && failures == 0 {
                w.violation(format!("{name}: the injected EPERM did not end the server"));
            }
        }
    }
}
