//! Serving: [`serve_listeners`] and [`serve_tcp`] run a handler for every
//! connection accepted on some listeners (DESIGN §9, Trio's
//! `_highlevel_serve_listeners.py`, Trio #147 for the graceful stop).
//!
//! Both return a [`Serve`] builder, which *is* the server future: `.await`
//! it to serve in place, spawn it, or pass it to [`Nursery::start`] with
//! its [`task_status`](Serve::task_status), and `start` returns the
//! listeners once they accept.
//!
//! ```
//! use trio::socket::SocketStream;
//! use trio::stream::{ReceiveStream, SendStream};
//!
//! async fn echo(stream: &SocketStream) -> trio::Result<()> {
//!     let mut buf = [0; 1024];
//!     loop {
//!         let n = stream.receive_some(&mut buf).await?;
//!         if n == 0 {
//!             return Ok(()); // the stream is closed for us afterwards
//!         }
//!         stream.send_all(&buf[..n]).await?;
//!     }
//! }
//!
//! trio::run(async {
//!     trio::open_nursery(async |nursery| {
//!         let listeners = nursery
//!             .start(|status| trio::serve_tcp(echo, 0).host("127.0.0.1").task_status(status))
//!             .await?;
//!         let addr = listeners[0].local_addr()?.as_socket().unwrap();
//!         let client = SocketStream::connect_tcp(addr).await?;
//!         client.send_all(b"ping").await?;
//!         let mut buf = [0; 4];
//!         let mut got = 0;
//!         while got < 4 {
//!             got += client.receive_some(&mut buf[got..]).await?;
//!         }
//!         assert_eq!(&buf, b"ping");
//!         nursery.cancel_scope().cancel(); // the usual way to stop: cancel it
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # How a server runs
//!
//! 1. The listeners are opened (`serve_tcp`) or taken (`serve_listeners`),
//!    and `task_status.started` hands them out, shared (`Rc<[L]>`): they
//!    are already queueing connections.
//! 2. One accept loop per listener, all inside one *accept scope*. Each
//!    loop waits for room under [`max_connections`](Serve::max_connections)
//!    (at the limit it stops accepting: new clients wait in the kernel's
//!    backlog), accepts, waits for room again (another loop may have taken
//!    the last slot meanwhile: the limit is never exceeded), and spawns the
//!    connection's task.
//! 3. Accept failing with `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM` (the
//!    system is out of fds or memory: it may recover when connections
//!    close) is logged and retried 100 ms later ([`trio::sleep`](crate::sleep),
//!    so a `MockClock` sees it). `Closed` (someone closed the listener)
//!    ends that listener's loop quietly. Any other error ends the server
//!    with that error.
//! 4. A connection's task runs `handler(&stream)` (inside a cancel scope
//!    of its own when the server has a [`ServeControl`], for the grace
//!    deadline), then closes the stream with
//!    [`aclose_forcefully`] whatever happened (as Trio does: a handler
//!    that wanted a graceful close has done it, and `aclose` is
//!    idempotent). The task runs in the server's internal nursery, or in
//!    the caller's [`handler_nursery`](Serve::handler_nursery).
//! 5. A failing handler: see [`OnHandlerError`]. By default its error goes
//!    to the nursery it runs in, which stops the server (Trio); with
//!    [`OnHandlerError::LogAndContinue`] it is logged and serving goes on.
//! 6. Stopping. Cancelling the server future stops everything at once (the
//!    handlers in the internal nursery too). [`ServeControl::stop`] stops
//!    gracefully: the accept scope is cancelled and the listeners closed
//!    (new clients are refused), running handlers see
//!    [`ServeControl::is_stopping`] and may finish until the grace
//!    deadline, when their scopes' deadline cancels them. The server
//!    returns `Ok(())` once every connection it accepted has ended. (So it
//!    does when every listener was closed by its owner: the same drain,
//!    with no deadline.)
//!
//! The listeners are closed when the server ends, however it ends.
//!
//! # Nothing is silent
//!
//! Every event a server handles without returning it — an accept retried,
//! a handler failure under `LogAndContinue`, a handler cancelled at the
//! grace deadline — is a [`ServeEvent`] given to the
//! [`log`](Serve::log) hook. The default hook writes it to
//! [`tracing`](https://docs.rs/tracing) (target `trio::serve`; errors at
//! `ERROR`, grace cancellations at `WARN`) when trio's `tracing` feature is
//! on, and to stderr otherwise.

use super::listeners::{TcpListenOptions, raw_os_error};
use crate::core::cancel::CancelScope;
use crate::core::nursery::{Nursery, TaskStatus, open_nursery};
use crate::error::{Error, ErrorKind, Result};
use crate::socket::{SocketListener, SocketStream};
use crate::stream::{Listener, aclose_forcefully};
use crate::sync::{Event, WaitQueue, WaitSite};
use crate::time::{Instant, TryIntoDuration};
use crate::{sleep, try_current_time};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long the accept loop waits after `EMFILE` & co. (Trio's
/// `SLEEP_TIME`).
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The errno's name if an accept error means "the system is out of
/// resources for now" (Trio's `ACCEPT_CAPACITY_ERRNOS`).
fn capacity_errno_name(e: &Error) -> Option<&'static str> {
    match raw_os_error(e)? {
        libc::EMFILE => Some("EMFILE"),
        libc::ENFILE => Some("ENFILE"),
        libc::ENOBUFS => Some("ENOBUFS"),
        libc::ENOMEM => Some("ENOMEM"),
        _ => None,
    }
}

// ----- the control handle ----------------------------------------------------------

/// A handle to stop servers gracefully, and for their handlers to see that
/// they are asked to stop (Trio #147).
///
/// Make one, give clones to [`Serve::control`] (one control may stop
/// several servers) and to the handlers that should react, then call
/// [`stop`](Self::stop). Clones are handles to the same control; it
/// belongs to one thread (it is `!Send`, like the run).
///
/// ```
/// use trio::net::ServeControl;
/// use trio::socket::SocketStream;
/// use trio::stream::ReceiveStream;
///
/// trio::run(async {
///     let control = ServeControl::new();
///     let handler = {
///         let control = control.clone();
///         async move |_stream: &SocketStream| {
///             control.stopping().await?; // finish the current work, then return
///             Ok(())
///         }
///     };
///     trio::open_nursery(async |nursery| {
///         let listeners = nursery
///             .start(|status| {
///                 trio::serve_tcp(handler, 0)
///                     .host("127.0.0.1")
///                     .control(&control)
///                     .task_status(status)
///             })
///             .await?;
///         let addr = listeners[0].local_addr()?.as_socket().unwrap();
///         let client = SocketStream::connect_tcp(addr).await?;
///         while control.active_connections() == 0 {
///             trio::sleep(0.001).await?;
///         }
///         control.stop(5.0)?; // the handler returns at once: no need for the 5 s
///         let mut buf = [0; 1];
///         assert_eq!(client.receive_some(&mut buf).await?, 0); // closed after the handler
///         Ok(())
///     })
///     .await?; // the server has returned here
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Default)]
pub struct ServeControl {
    inner: Rc<ControlInner>,
}

struct ControlInner {
    /// The earliest grace deadline asked for; `None` until the first stop.
    deadline: Cell<Option<Instant>>,
    /// Set by the first stop, for handlers to wait on.
    stopping: Event,
    /// The servers' stop watchers, woken by every stop (a later stop may
    /// bring the deadline forward).
    watchers: WaitQueue<()>,
    /// Connections running, over every server under this control.
    active: Cell<usize>,
}

impl Default for ControlInner {
    fn default() -> Self {
        ControlInner {
            deadline: Cell::new(None),
            stopping: Event::new(),
            watchers: WaitQueue::new(),
            active: Cell::new(0),
        }
    }
}

impl fmt::Debug for ServeControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeControl")
            .field("grace_deadline", &self.inner.deadline.get())
            .field("active_connections", &self.inner.active.get())
            .finish()
    }
}

impl ServeControl {
    /// A control that has not been stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops every server under this control gracefully: they stop
    /// accepting and close their listeners at once; running handlers may
    /// finish during `grace`, then are cancelled. Synchronous (the servers
    /// act at their next scheduling tick). Calling it again may bring the
    /// deadline forward (`stop(0)` after `stop(30)` cancels the handlers
    /// now), never back.
    ///
    /// Errors: a negative or NaN `grace` is
    /// [`InvalidArgument`](ErrorKind::InvalidArgument); outside a run,
    /// [`Usage`](ErrorKind::Usage) (the deadline is on the run's clock).
    pub fn stop(&self, grace: impl TryIntoDuration) -> Result<()> {
        let grace = grace.try_into_duration()?;
        let deadline = try_current_time()? + grace;
        let inner = &self.inner;
        if inner.deadline.get().is_none_or(|d| deadline < d) {
            inner.deadline.set(Some(deadline));
        }
        inner.stopping.set();
        inner.watchers.unpark(usize::MAX);
        Ok(())
    }

    /// Whether [`stop`](Self::stop) has been called.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.is_set()
    }

    /// Waits until [`stop`](Self::stop) is called (a checkpoint, like
    /// [`Event::wait`]): handlers race it against their work to end at a
    /// good moment, such as between two requests.
    #[track_caller]
    pub fn stopping(&self) -> impl Future<Output = Result<()>> + '_ {
        self.inner.stopping.wait()
    }

    /// The deadline after which handlers are cancelled, once stopping.
    pub fn grace_deadline(&self) -> Option<Instant> {
        self.inner.deadline.get()
    }

    /// How many connections are being handled now, over every server
    /// under this control.
    pub fn active_connections(&self) -> usize {
        self.inner.active.get()
    }
}

// ----- events and policies ---------------------------------------------------------

/// What happens when a handler returns an error (not a cancellation of the
/// server itself, which always propagates). A panicking handler is not an
/// error: its panic resumes in the caller as any task's does, under either
/// policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnHandlerError {
    /// The error goes to the nursery the handler runs in, as any failing
    /// task's does: the internal one cancels the server and `serve_*`
    /// returns the error (Trio's behaviour); a caller's
    /// [`handler_nursery`](Serve::handler_nursery) handles it as it
    /// handles any child's failure.
    #[default]
    StopServer,
    /// The error is logged ([`ServeEvent::HandlerFailed`]) and the server
    /// keeps serving.
    LogAndContinue,
}

/// Something a server handled without returning it; given to the
/// [`log`](Serve::log) hook. `Display` writes one line.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeEvent<'a> {
    /// `accept` failed for lack of resources; it is retried after
    /// `retry_in`.
    AcceptRetry {
        /// The accept error (an [`ErrorKind::Io`] error).
        error: &'a Error,
        /// The errno's name: `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM`.
        errno: &'static str,
        /// How long until the next try ([`ACCEPT_RETRY_DELAY`]).
        retry_in: Duration,
    },
    /// A handler failed, under [`OnHandlerError::LogAndContinue`].
    HandlerFailed {
        /// Its error.
        error: &'a Error,
    },
    /// A handler was still running at the grace deadline of a
    /// [`ServeControl::stop`] and was cancelled.
    HandlerCancelled,
}

impl fmt::Display for ServeEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeEvent::AcceptRetry {
                error,
                errno,
                retry_in,
            } => write!(
                f,
                "accept returned {errno} ({error}); retrying in {} ms",
                retry_in.as_millis()
            ),
            ServeEvent::HandlerFailed { error } => {
                write!(
                    f,
                    "a connection handler failed (the server goes on): {error}"
                )
            }
            ServeEvent::HandlerCancelled => {
                f.write_str("a connection handler was cancelled at the grace deadline")
            }
        }
    }
}

/// The default log hook: `tracing` with the feature, stderr without.
fn default_log(event: &ServeEvent<'_>) {
    #[cfg(feature = "tracing")]
    match event {
        ServeEvent::HandlerCancelled => tracing::warn!(target: "trio::serve", "{event}"),
        _ => tracing::error!(target: "trio::serve", "{event}"),
    }
    #[cfg(not(feature = "tracing"))]
    eprintln!("trio::serve: {event}");
}

type LogHook<'env> = Rc<dyn Fn(&ServeEvent<'_>) + 'env>;

// ----- where the listeners come from -----------------------------------------------

mod sealed {
    pub trait Sealed {}
}

/// Where a [`Serve`] gets its listeners: a `Vec` of them
/// ([`serve_listeners`]) or a TCP port ([`TcpSource`], [`serve_tcp`]).
/// Sealed.
pub trait ServeSource: sealed::Sealed {
    /// The listeners' type.
    type Listener: Listener;
    /// Opens (or hands over) the listeners.
    #[doc(hidden)]
    fn open(self) -> impl Future<Output = Result<Vec<Self::Listener>>>;
}

impl<L: Listener> sealed::Sealed for Vec<L> {}

impl<L: Listener> ServeSource for Vec<L> {
    type Listener = L;
    async fn open(self) -> Result<Vec<L>> {
        Ok(self)
    }
}

/// The listeners of [`serve_tcp`]: a port and [`TcpListenOptions`].
#[derive(Clone, Debug)]
pub struct TcpSource {
    port: u16,
    options: TcpListenOptions,
}

impl sealed::Sealed for TcpSource {}

impl ServeSource for TcpSource {
    type Listener = SocketListener;
    async fn open(self) -> Result<Vec<SocketListener>> {
        self.options.open(self.port).await
    }
}

// ----- the builder / future --------------------------------------------------------

/// The stream type of a source's listeners.
type StreamOf<S> = <<S as ServeSource>::Listener as Listener>::Stream;

/// A server: a builder of options that is also the future that runs it
/// (see the [module docs](self)). Made by [`serve_listeners`] and
/// [`serve_tcp`].
///
/// Options are set before the first poll; setting one afterwards does
/// nothing. Invalid options (`max_connections(0)`) come out of the first
/// poll as an [`ErrorKind::InvalidArgument`] error.
///
/// Output: `Ok(())` after a graceful stop (or when every listener was
/// closed) and every connection has ended; the first fatal error
/// otherwise (an accept error, a handler's error under
/// [`OnHandlerError::StopServer`]); `Cancelled` when cancelled from
/// outside.
#[must_use = "a server does nothing unless awaited or spawned"]
pub struct Serve<'env, S: ServeSource, H> {
    /// Until the first poll. Boxed so that `Serve` is `Unpin` whatever `H`
    /// is (the running future is boxed too).
    config: Option<Box<Config<'env, S, H>>>,
    running: Option<Pin<Box<dyn Future<Output = Result<()>> + 'env>>>,
}

struct Config<'env, S: ServeSource, H> {
    source: S,
    handler: H,
    handler_nursery: Option<Nursery<'env>>,
    on_handler_error: OnHandlerError,
    max_connections: Option<usize>,
    control: Option<ServeControl>,
    log: Option<LogHook<'env>>,
    task_status: Option<TaskStatus<Rc<[S::Listener]>>>,
}

impl<S: ServeSource, H> fmt::Debug for Serve<'_, S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Serve");
        match &self.config {
            Some(c) => d
                .field("handler_nursery", &c.handler_nursery)
                .field("on_handler_error", &c.on_handler_error)
                .field("max_connections", &c.max_connections)
                .field("control", &c.control)
                .field("custom_log", &c.log.is_some())
                .field("task_status", &c.task_status.is_some()),
            None => d.field("running", &self.running.is_some()),
        };
        d.finish()
    }
}

impl<'env, S: ServeSource, H> Serve<'env, S, H> {
    fn new(source: S, handler: H) -> Self {
        Serve {
            config: Some(Box::new(Config {
                source,
                handler,
                handler_nursery: None,
                on_handler_error: OnHandlerError::default(),
                max_connections: None,
                control: None,
                log: None,
                task_status: None,
            })),
            running: None,
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config<'env, S, H>)) -> Self {
        if let Some(c) = &mut self.config {
            f(c);
        }
        self
    }

    /// Reports the listeners to [`Nursery::start`] once they accept:
    /// `nursery.start(|status| serve_tcp(handler, 0).task_status(status))`
    /// returns them, shared with the server (read their addresses; closing
    /// one stops accepting on it).
    pub fn task_status(self, status: TaskStatus<Rc<[S::Listener]>>) -> Self {
        self.with(|c| c.task_status = Some(status))
    }

    /// Runs the connections' tasks in `nursery` instead of an internal
    /// one: they may outlive the server, and their failures are that
    /// nursery's (Trio's `handler_nursery`). A graceful stop still applies
    /// its grace deadline to them, and the server still waits for them
    /// before returning.
    pub fn handler_nursery(self, nursery: &Nursery<'env>) -> Self {
        let nursery = nursery.clone();
        self.with(|c| c.handler_nursery = Some(nursery))
    }

    /// What a failing handler does; [`OnHandlerError::StopServer`] by
    /// default.
    pub fn on_handler_error(self, policy: OnHandlerError) -> Self {
        self.with(|c| c.on_handler_error = policy)
    }

    /// At most `n` connections handled at once: at the limit the server
    /// stops accepting (clients wait in the kernel's backlog) until one
    /// ends. `0` is an invalid argument.
    pub fn max_connections(self, n: usize) -> Self {
        self.with(|c| c.max_connections = Some(n))
    }

    /// Stops gracefully when `control` says so (see [`ServeControl`]).
    pub fn control(self, control: &ServeControl) -> Self {
        let control = control.clone();
        self.with(|c| c.control = Some(control))
    }

    /// Where the server's [`ServeEvent`]s go, instead of the default
    /// (`tracing` or stderr, see the [module docs](self#nothing-is-silent)).
    pub fn log(self, hook: impl Fn(&ServeEvent<'_>) + 'env) -> Self {
        let hook: LogHook<'env> = Rc::new(hook);
        self.with(|c| c.log = Some(hook))
    }
}

impl<'env, H> Serve<'env, TcpSource, H> {
    fn tcp(self, f: impl FnOnce(TcpListenOptions) -> TcpListenOptions) -> Self {
        self.with(|c| c.source.options = f(std::mem::take(&mut c.source.options)))
    }

    /// The host to listen on ([`TcpListenOptions::host`]); both wildcards
    /// by default.
    pub fn host(self, host: impl Into<String>) -> Self {
        let host = host.into();
        self.tcp(|o| o.host(host))
    }

    /// The `listen` backlog ([`TcpListenOptions::backlog`]).
    pub fn backlog(self, backlog: u32) -> Self {
        self.tcp(|o| o.backlog(backlog))
    }

    /// A hook that configures each listening socket before `bind`
    /// ([`TcpListenOptions::configure`]), e.g. for `SO_REUSEPORT`.
    pub fn configure(
        self,
        hook: impl Fn(&socket2::Socket) -> std::io::Result<()> + 'static,
    ) -> Self {
        self.tcp(|o| o.configure(hook))
    }

    /// All the listening options at once.
    pub fn listen_options(self, options: TcpListenOptions) -> Self {
        self.tcp(|_| options)
    }
}

impl<'env, S, H> Future for Serve<'env, S, H>
where
    S: ServeSource + 'env,
    S::Listener: 'env,
    StreamOf<S>: 'env,
    H: AsyncFn(&StreamOf<S>) -> Result<()> + 'env,
{
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = &mut *self;
        let running = match &mut this.running {
            Some(running) => running,
            None => {
                let Some(config) = this.config.take() else {
                    return Poll::Ready(Err(Error::usage(
                        "a Serve future was polled after it finished",
                    )));
                };
                this.running.insert(Box::pin(run(*config)))
            }
        };
        let out = running.as_mut().poll(cx);
        if out.is_ready() {
            this.running = None;
        }
        out
    }
}

/// Serves `listeners`: runs `handler(&stream)` in a task of its own for
/// each accepted connection, and closes the stream after it (Trio's
/// `serve_listeners`). Any [`Listener`] works, so tests can serve memory
/// streams. Returns the [`Serve`] builder-future; the
/// [module docs](self) say how it runs and stops.
///
/// The handler is any async closure or `async fn` taking `&Stream` and
/// returning `trio::Result<()>`; it is shared by every connection. To wrap
/// the stream (TLS, a [`BufferedReceiveStream`](crate::stream::BufferedReceiveStream)),
/// wrap the reference: `&S` is a [`Stream`](crate::stream::Stream) too.
pub fn serve_listeners<'env, L, H>(handler: H, listeners: Vec<L>) -> Serve<'env, Vec<L>, H>
where
    L: Listener,
    H: AsyncFn(&L::Stream) -> Result<()>,
{
    Serve::new(listeners, handler)
}

/// Opens TCP listeners on `port` (all interfaces, both families, unless
/// [`host`](Serve::host) says otherwise; port 0: the kernel picks, see
/// [`open_tcp_listeners`](crate::open_tcp_listeners)) and serves them with
/// `handler` (Trio's `serve_tcp`): [`serve_listeners`] over
/// [`TcpListenOptions::open`]. Returns the [`Serve`] builder-future.
pub fn serve_tcp<'env, H>(handler: H, port: u16) -> Serve<'env, TcpSource, H>
where
    H: AsyncFn(&SocketStream) -> Result<()>,
{
    Serve::new(
        TcpSource {
            port,
            options: TcpListenOptions::new(),
        },
        handler,
    )
}

// ----- the running server ----------------------------------------------------------

/// What the accept loops and the connections' tasks share.
struct Server<'env, H> {
    handler: H,
    on_handler_error: OnHandlerError,
    max_connections: Option<usize>,
    control: ServeControl,
    log: Option<LogHook<'env>>,
    /// Connections of this server whose task has not ended (≤
    /// `max_connections`). Changed only by `Connection::new` and
    /// `Connection::drop`.
    active: Cell<usize>,
    /// The cancel scope of each running connection, by id, for the grace
    /// deadline of a stop. Only with a control (`graceful`): without one
    /// there is no graceful stop, and a connection costs no scope.
    scopes: RefCell<HashMap<u64, CancelScope>>,
    graceful: bool,
    next_id: Cell<u64>,
    /// Accept loops waiting for `active` to drop below the limit.
    room: WaitQueue<()>,
    /// The server's end, waiting for `active` to reach 0.
    drained: WaitQueue<()>,
}

impl<H> Server<'_, H> {
    fn log(&self, event: &ServeEvent<'_>) {
        match &self.log {
            Some(hook) => hook(event),
            None => default_log(event),
        }
    }

    /// Waits until one more connection is allowed (no checkpoint when
    /// there is room: the accept is one).
    #[track_caller]
    fn wait_room(&self) -> impl Future<Output = Result<()>> + '_ {
        let site = WaitSite::new("serve: at max_connections");
        async move {
            if let Some(limit) = self.max_connections {
                while self.active.get() >= limit {
                    self.room.park((), site).await?;
                }
            }
            Ok(())
        }
    }

    async fn wait_drained(&self) -> Result<()> {
        while self.active.get() > 0 {
            self.drained
                .park(
                    (),
                    WaitSite::new("serve: waiting for the connections to end"),
                )
                .await?;
        }
        Ok(())
    }
}

/// A connection's slot: counted from when it is accepted; released on
/// drop (so also when its task fails, panics, or is dropped before it ever
/// ran), which uncounts it and wakes whoever waits for room or for the
/// drain. It holds the connection's cancel scope, under a control.
struct Connection<'env, H> {
    server: Rc<Server<'env, H>>,
    id: u64,
    scope: Option<CancelScope>,
}

impl<'env, H> Connection<'env, H> {
    /// Counts a new connection of `server` and, under a control, makes its
    /// cancel scope (with the grace deadline already, if a stop came
    /// before the watcher saw it).
    fn new(server: &Rc<Server<'env, H>>) -> Self {
        let id = server.next_id.get();
        server.next_id.set(id + 1);
        let scope = server.graceful.then(|| {
            let scope = CancelScope::new();
            if let Some(deadline) = server.control.grace_deadline() {
                scope.set_deadline(deadline);
            }
            server.scopes.borrow_mut().insert(id, scope.clone());
            scope
        });
        server.active.set(server.active.get() + 1);
        let control = &server.control.inner;
        control.active.set(control.active.get() + 1);
        Connection {
            server: server.clone(),
            id,
            scope,
        }
    }
}

impl<H> Drop for Connection<'_, H> {
    fn drop(&mut self) {
        let server = &*self.server;
        // Dropped after the borrow ends.
        let scope = server.scopes.borrow_mut().remove(&self.id);
        drop(scope);
        server.active.set(server.active.get() - 1);
        let control = &server.control.inner;
        control.active.set(control.active.get() - 1);
        server.room.unpark(usize::MAX);
        if server.active.get() == 0 {
            server.drained.unpark(usize::MAX);
        }
    }
}

/// Where the connections' tasks go.
enum Spawner<'a, 'env> {
    Internal(Nursery<'a>),
    Caller(Nursery<'env>),
}

const CONNECTION_TASK: &str = "trio::serve connection";

async fn run<'env, S, H>(c: Config<'env, S, H>) -> Result<()>
where
    S: ServeSource + 'env,
    S::Listener: 'env,
    StreamOf<S>: 'env,
    H: AsyncFn(&StreamOf<S>) -> Result<()> + 'env,
{
    if c.max_connections == Some(0) {
        return Err(Error::invalid("max_connections must be at least 1"));
    }
    // 1.
    let listeners: Rc<[S::Listener]> = c.source.open().await?.into();
    if listeners.is_empty() {
        return Err(Error::invalid("no listeners to serve"));
    }
    let watch = c.control.is_some();
    let server = Rc::new(Server {
        handler: c.handler,
        on_handler_error: c.on_handler_error,
        max_connections: c.max_connections,
        control: c.control.unwrap_or_default(),
        log: c.log,
        active: Cell::new(0),
        scopes: RefCell::new(HashMap::new()),
        graceful: watch,
        next_id: Cell::new(0),
        room: WaitQueue::new(),
        drained: WaitQueue::new(),
    });
    let accept_scope = CancelScope::new();
    let watcher_scope = CancelScope::new();
    let handler_nursery = c.handler_nursery;
    let task_status = c.task_status;
    let served = open_nursery(async |nursery| {
        if watch {
            nursery.start_soon_named("trio::serve stop watcher", async {
                watcher_scope
                    .run(watch_stop(&server, &accept_scope))
                    .await?;
                Ok(())
            });
        }
        if let Some(status) = task_status {
            status.started(listeners.clone());
        }
        // 2.
        let spawner = match &handler_nursery {
            Some(n) => Spawner::Caller(n.clone()),
            None => Spawner::Internal(nursery.clone()),
        };
        let accepted = accept_scope
            .run(open_nursery(async |loops| {
                for listener in listeners.iter() {
                    loops.start_soon_named(
                        "trio::serve accept loop",
                        accept_loop(&server, listener, &spawner),
                    );
                }
                Ok(())
            }))
            .await;
        let closed = close_all(&listeners).await;
        accepted?;
        closed?;
        // 6.
        server.wait_drained().await?;
        watcher_scope.cancel();
        Ok(())
    })
    .await;
    // An early failure (a handler's, under StopServer) may have skipped the
    // close above.
    let closed = close_all(&listeners).await;
    served?;
    closed
}

/// Closes every listener (idempotent), and reports the first error that is
/// not a cancellation (they are closed anyway).
async fn close_all<L: Listener>(listeners: &[L]) -> Result<()> {
    let mut first = None;
    for l in listeners {
        if let Err(e) = aclose_forcefully(l).await
            && !e.is_cancelled()
        {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Step 6's watcher: applies each (earlier) grace deadline.
async fn watch_stop<H>(server: &Server<'_, H>, accept_scope: &CancelScope) -> Result<()> {
    let mut applied: Option<Instant> = None;
    loop {
        if let Some(deadline) = server.control.grace_deadline()
            && applied.is_none_or(|a| deadline < a)
        {
            applied = Some(deadline);
            accept_scope.cancel();
            let scopes: Vec<CancelScope> = server.scopes.borrow().values().cloned().collect();
            for scope in scopes {
                if deadline < scope.deadline() {
                    scope.set_deadline(deadline);
                }
            }
        }
        server
            .control
            .inner
            .watchers
            .park((), WaitSite::new("serve: waiting for ServeControl::stop"))
            .await?;
    }
}

/// Steps 2–3 for one listener.
async fn accept_loop<'a, 'env: 'a, L, H>(
    server: &Rc<Server<'env, H>>,
    listener: &L,
    spawner: &Spawner<'a, 'env>,
) -> Result<()>
where
    L: Listener,
    L::Stream: 'env,
    H: AsyncFn(&L::Stream) -> Result<()> + 'env,
{
    loop {
        server.wait_room().await?;
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => match capacity_errno_name(&e) {
                Some(errno) => {
                    server.log(&ServeEvent::AcceptRetry {
                        error: &e,
                        errno,
                        retry_in: ACCEPT_RETRY_DELAY,
                    });
                    sleep(ACCEPT_RETRY_DELAY).await?;
                    continue;
                }
                None if e.kind() == ErrorKind::Closed => return Ok(()),
                None => return Err(e),
            },
        };
        // Another loop may have taken the last slot while this one accepted.
        if let Err(e) = server.wait_room().await {
            let _ = aclose_forcefully(&stream).await;
            return Err(e);
        }
        let task = connection(Connection::new(server), stream);
        match spawner {
            Spawner::Internal(n) => n.try_start_soon_named(CONNECTION_TASK, task)?,
            Spawner::Caller(n) => n.try_start_soon_named(CONNECTION_TASK, task)?,
        }
    }
}

/// Steps 4–5: one connection's task.
async fn connection<S, H>(conn: Connection<'_, H>, stream: S) -> Result<()>
where
    S: crate::stream::Stream,
    H: AsyncFn(&S) -> Result<()>,
{
    let server = &*conn.server;
    let handled = match &conn.scope {
        Some(scope) => scope.run((server.handler)(&stream)).await,
        None => (server.handler)(&stream).await.map(Some),
    };
    // Closed before the slot is released (when `conn` drops at the end):
    // with the fd free, the next accept can succeed (EMFILE).
    let closed = aclose_forcefully(&stream).await;
    let result = match handled {
        Ok(Some(())) => closed,
        Ok(None) => {
            server.log(&ServeEvent::HandlerCancelled);
            closed
        }
        Err(e) => Err(e),
    };
    match result {
        Err(e)
            if !e.is_cancelled() && server.on_handler_error == OnHandlerError::LogAndContinue =>
        {
            server.log(&ServeEvent::HandlerFailed { error: &e });
            Ok(())
        }
        r => r,
    }
}
