//! Serving HTTP/1.1 and HTTP/2 with hyper on trio streams:
//! [`Http::serve_connection`] for one connection, [`serve_http`] for a
//! whole TCP server.
//!
//! # Protocol choice
//!
//! With [`Protocol::Auto`] (the default) the connection first reads as
//! many bytes as agree with HTTP/2's 24-byte client preface: all 24 mean
//! HTTP/2 (h2c with prior knowledge, or h2 over TLS once ALPN chose it,
//! since an h2 client then starts with the same preface); the first byte
//! that differs (an HTTP/1 request line) means HTTP/1.1. The bytes read
//! are served again to hyper first. A graceful stop while waiting for
//! those first bytes closes the connection, and so does a client that
//! sends no first request within [`Http::first_bytes_timeout`] (30 s by
//! default, like hyper's own header-read timeout; the connection then
//! ends with a `TooSlow` error). HTTP/2 streams' handlers run
//! as child tasks of a nursery opened around the connection
//! ([`NurseryExecutor`]), so they may borrow the service.
//!
//! # One connection
//!
//! [`Http::serve_connection`] wraps the stream in [`trio_compat::Io`]
//! (sockets: [`Http::serve_native_connection`], the adapter's native path,
//! which [`serve_http`] uses) and
//! drives hyper's HTTP/1.1 server connection in the calling task (with
//! keep-alive: one connection, many requests, one after another; the
//! service's futures run inside the connection's future, so they may
//! borrow). [`TrioTimer`] is its timer, so hyper's header-read timeout
//! (30 s by default) follows the run's clock.
//!
//! # Graceful shutdown
//!
//! With a [`ServeControl`] ([`Http::control`]), the connection watches
//! [`ServeControl::stopping`] while it runs. When the stop comes it calls
//! hyper's `graceful_shutdown`: an idle connection closes at once; one in
//! the middle of a request finishes that request (the response says
//! `connection: close`) and then closes. [`serve_http`] gives the same
//! control to `serve_tcp`, which stops accepting and, at the grace
//! deadline, cancels the connections that are still running (their I/O
//! fails with `Cancelled`, the serve scope catches it).
//!
//! # Cancellation (DESIGN §13)
//!
//! - A cancel scope *inside* the service (say `move_on_after` around the
//!   handler's work) is the service's business: it gets `None`, answers
//!   (503, say), and the connection goes on to the next request.
//! - A scope *around* the connection (the grace deadline, or the caller's)
//!   cancels its I/O: the connection ends at once, and
//!   `serve_connection` returns that `Cancelled` (converted with
//!   [`trio_compat::error::from_io`], which keeps it `Cancelled` only if
//!   it is this task's own). The service runs in the connection's task, so
//!   its own waits see that cancellation too: a service whose error type
//!   carries trio errors ([`trio::StdError`], say) returns it with `?`,
//!   hyper ends the connection with it, and it comes out as the same
//!   `Cancelled`. (A service that answers anyway is fine too: writing the
//!   answer fails with `Cancelled`.)
//!
//! # Errors
//!
//! A connection that fails (a peer that sends garbage, resets, or goes
//! away mid-request) returns hyper's error as an [`ErrorKind::Io`] error
//! (source kept). A public server does not want one bad client to stop
//! it: [`serve_http`] sets
//! [`OnHandlerError::LogAndContinue`].

use crate::{NurseryExecutor, TrioTimer};
use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;
use trio::ErrorKind;
use trio::net::{OnHandlerError, Serve, ServeControl, TcpSource};
use trio::socket::SocketStream;
use trio::stream::Stream;
use trio_compat::{Io, NativePoll};

/// A boxed error, as hyper's traits want them.
type BoxError = Box<dyn StdError + Send + Sync>;

/// How to serve HTTP connections: hyper's HTTP/1.1 settings and an
/// optional [`ServeControl`] for graceful shutdown. Cheap to clone. See
/// the [module docs](self).
#[derive(Clone)]
pub struct Http {
    http1: http1::Builder,
    protocol: Protocol,
    control: Option<ServeControl>,
    first_bytes_timeout: Option<Duration>,
}

/// The default of [`Http::first_bytes_timeout`]: hyper's default
/// header-read timeout.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// Which HTTP versions [`Http::serve_connection`] speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/2 if the client starts with HTTP/2's connection preface (h2c
    /// with prior knowledge, or h2 over TLS after ALPN chose it), else
    /// HTTP/1.1. See [the module docs](self#protocol-choice).
    #[default]
    Auto,
    /// HTTP/1.1 (and 1.0) only.
    Http1,
    /// HTTP/2 only.
    Http2,
}

/// HTTP/2's client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("http1", &self.http1)
            .field("protocol", &self.protocol)
            .field("control", &self.control)
            .field("first_bytes_timeout", &self.first_bytes_timeout)
            .finish()
    }
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// hyper's defaults (keep-alive on, a 30 s header-read timeout on the
    /// run's clock), no control.
    pub fn new() -> Self {
        let mut http1 = http1::Builder::new();
        http1.timer(TrioTimer);
        Http {
            http1,
            protocol: Protocol::Auto,
            control: None,
            first_bytes_timeout: Some(FIRST_BYTES_TIMEOUT),
        }
    }

    /// With [`Protocol::Auto`], how long a new connection may take to send
    /// enough bytes to tell HTTP/1 from HTTP/2 (at most 24; `None`: no
    /// limit). Past it, [`serve_connection`](Self::serve_connection) ends
    /// with a `TooSlow` error. 30 s by default, like hyper's header-read
    /// timeout, which takes over once the protocol is chosen (HTTP/1.1).
    ///
    /// ```
    /// use std::time::Duration;
    /// use trio::testing::{MockClock, memory_stream_pair};
    /// use trio_hyper::Http;
    ///
    /// trio::Runner::new().clock(MockClock::autojump()).run(async {
    ///     let (server, _silent_client) = memory_stream_pair();
    ///     let http = Http::new().first_bytes_timeout(Some(Duration::from_secs(5)));
    ///     let svc = hyper::service::service_fn(async |_req| {
    ///         Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new()))
    ///     });
    ///     let t0 = trio::current_time();
    ///     let err = http.serve_connection(&server, svc).await.unwrap_err();
    ///     assert_eq!(err.kind(), trio::ErrorKind::TooSlow);
    ///     assert_eq!(trio::current_time() - t0, 5.0);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn first_bytes_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.first_bytes_timeout = timeout;
        self
    }

    /// Which HTTP versions to speak ([`Protocol::Auto`] by default).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Shuts connections down gracefully when `control` stops (see the
    /// [module docs](self#graceful-shutdown)).
    pub fn control(mut self, control: &ServeControl) -> Self {
        self.control = Some(control.clone());
        self
    }

    /// hyper's HTTP/1.1 builder, to change its settings (its timer is
    /// already [`TrioTimer`]).
    pub fn http1(&mut self) -> &mut http1::Builder {
        &mut self.http1
    }

    /// Serves one connection over `stream` until the peer closes it, the
    /// control's graceful shutdown ends it, or it fails. `stream` may be a
    /// reference (`&SocketStream`, as `serve_tcp` lends it) or owned.
    ///
    /// Errors: hyper's, as [`ErrorKind::Io`] (source kept); `Cancelled`
    /// when a scope around this call is cancelled.
    pub async fn serve_connection<S, Svc, B>(&self, stream: S, service: Svc) -> trio::Result<()>
    where
        S: Stream,
        Svc: HttpService<Incoming, ResBody = B>,
        Svc::Error: Into<BoxError>,
        B: Body + 'static,
        B::Error: Into<BoxError>,
    {
        self.serve_io(stream, service, Io::new).await
    }

    /// [`serve_connection`](Self::serve_connection) over a stream that
    /// polls natively (a `SocketStream` or `&SocketStream`, see
    /// [`NativePoll`]): the adapter is [`Io::native`] (no allocation per
    /// poll, no copy on writes) instead of [`Io::new`]'s boxed operations.
    /// [`serve_http`] serves every connection this way. Same behaviour
    /// and errors otherwise.
    pub async fn serve_native_connection<S, Svc, B>(
        &self,
        stream: S,
        service: Svc,
    ) -> trio::Result<()>
    where
        S: Stream + NativePoll,
        Svc: HttpService<Incoming, ResBody = B>,
        Svc::Error: Into<BoxError>,
        B: Body + 'static,
        B::Error: Into<BoxError>,
    {
        self.serve_io(stream, service, Io::native).await
    }

    /// The connection, with `make_io` choosing the adapter's path (made
    /// after the protocol sniff, which reads from the stream itself).
    async fn serve_io<'a, S, Svc, B>(
        &self,
        stream: S,
        service: Svc,
        make_io: fn(S) -> Io<'a, S>,
    ) -> trio::Result<()>
    where
        S: Stream + 'a,
        Svc: HttpService<Incoming, ResBody = B>,
        Svc::Error: Into<BoxError>,
        B: Body + 'static,
        B::Error: Into<BoxError>,
    {
        let control = self.control.clone();
        let stoppable = control.is_some();
        let stopping = async {
            match &control {
                Some(c) => {
                    // A cancel here is the connection's too: its I/O
                    // reports it; shutting down meanwhile is harmless.
                    let _ = c.stopping().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let mut stopping = pin!(stopping);
        let (h2, prefix) = match self.protocol {
            Protocol::Http1 => (false, Vec::new()),
            Protocol::Http2 => (true, Vec::new()),
            Protocol::Auto => {
                let timeout = self.first_bytes_timeout;
                let mut sniff = pin!(async {
                    match timeout {
                        Some(t) => trio::fail_after(t, sniff(&stream)).await,
                        None => sniff(&stream).await,
                    }
                });
                let sniffed = poll_fn(|cx| {
                    if stopping.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    sniff.as_mut().poll(cx).map(Some)
                })
                .await;
                match sniffed {
                    // Stopping before the first request: just close.
                    None => return Ok(()),
                    Some(sniffed) => sniffed?,
                }
            }
        };
        // The sniffed bytes go back in front of the adapter's reads (no
        // wrapper between hyper and the adapter).
        let mut io = make_io(stream);
        io.unread(&prefix)?;
        if h2 {
            // Its streams' handlers run as children of this nursery.
            trio::open_nursery(async |nursery| {
                let mut builder = http2::Builder::new(NurseryExecutor::new(&nursery));
                builder.timer(TrioTimer);
                let conn = builder.serve_connection(io, service);
                drive(conn, stopping, stoppable, |c| c.graceful_shutdown()).await
            })
            .await?;
            // (`None` would be the nursery's own scope, which nothing
            // cancels.)
            Ok(())
        } else {
            let conn = self.http1.serve_connection(io, service);
            drive(conn, stopping, stoppable, |c| c.graceful_shutdown()).await
        }
    }
}

/// Polls a hyper connection, calling `shut_down` on it (once) when
/// `stopping` completes; the connection's outcome as a trio result.
async fn drive<C, F>(
    conn: C,
    mut stopping: Pin<&mut F>,
    stoppable: bool,
    shut_down: impl Fn(Pin<&mut C>),
) -> trio::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
    F: Future<Output = ()>,
{
    let mut conn = pin!(conn);
    // Without a shutdown control `stopping` never completes: not polled
    // at all then (it would be on every wake-up of the connection).
    let mut shut = !stoppable;
    let served = poll_fn(|cx| {
        if !shut && stopping.as_mut().poll(cx).is_ready() {
            shut = true;
            shut_down(conn.as_mut());
        }
        conn.as_mut().poll(cx)
    })
    .await;
    match served {
        Ok(()) => Ok(()),
        Err(e) => Err(from_hyper_here(e).await),
    }
}

/// [`from_hyper`], for a connection's own task: an error while this
/// task's scope is cancelled is that cancellation. The h2 crate keeps only
/// the kind and the message of an I/O error, so the adapters' `Cancelled`
/// does not survive HTTP/2 as a source that [`from_hyper`] could find;
/// and the adapters fail with `Cancelled` only while the polling task's
/// scope is cancelled, so such an error is this task's cancellation.
pub(crate) async fn from_hyper_here(error: hyper::Error) -> trio::Error {
    match trio::lowlevel::checkpoint_if_cancelled().await {
        Err(cancelled) => cancelled,
        Ok(()) => from_hyper(error),
    }
}

/// Reads the first bytes of a connection, as far as they agree with
/// HTTP/2's preface: all 24 of them mean HTTP/2, the first that differs
/// (or the end of the stream) HTTP/1. Returns the choice and the bytes
/// read, which the connection reads again first ([`Io::unread`]).
async fn sniff<S: Stream>(stream: &S) -> trio::Result<(bool, Vec<u8>)> {
    let mut buf = vec![0; H2_PREFACE.len()];
    let mut got = 0;
    while got < buf.len() {
        let n = stream.receive_some(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got] != H2_PREFACE[..got] {
            break;
        }
    }
    buf.truncate(got);
    // (One read may bring all 24 bytes of an HTTP/1 request: compare.)
    Ok((buf[..] == H2_PREFACE[..], buf))
}

/// A hyper error as a trio error: a `Cancelled` inside it comes back as
/// `Cancelled` if it is the current task's own (else `Broken`, see
/// [`trio_compat::error::from_io`]); anything else is an
/// [`ErrorKind::Io`] error with hyper's error as its source.
pub fn from_hyper(error: hyper::Error) -> trio::Error {
    let converted = trio_compat::error::from_io(std::io::Error::other(error));
    debug_assert!(converted.kind() != ErrorKind::Group);
    converted
}

/// Serves HTTP/1.1 on TCP `port` ([`trio::serve_tcp`] with
/// [`Http::serve_connection`] as the handler): `service` answers every
/// request of every connection (it is shared, so it is borrowed:
/// `service_fn` closures and `&S` both work). Returns trio's
/// [`Serve`] builder-future, with [`OnHandlerError::LogAndContinue`] (one
/// bad client does not stop the server) and, if `http` has a control, that
/// control (graceful shutdown, see the [module docs](self)); chain
/// `.host(..)`, `.task_status(..)` and the rest as on any `serve_tcp`.
///
/// ```no_run
/// use hyper::{Request, Response, body::Incoming, service::service_fn};
/// use trio_hyper::{Http, serve_http};
///
/// #[trio::main]
/// async fn main() -> trio::Result<()> {
///     let hello = service_fn(async |_req: Request<Incoming>| {
///         Ok::<_, std::convert::Infallible>(Response::new("hello\n".to_string()))
///     });
///     serve_http(Http::new(), &hello, 8080).host("127.0.0.1").await
/// }
/// ```
pub fn serve_http<'env, Svc, B>(
    http: Http,
    service: Svc,
    port: u16,
) -> Serve<'env, TcpSource, impl AsyncFn(&SocketStream) -> trio::Result<()> + 'env>
where
    Svc: HttpService<Incoming, ResBody = B> + Clone + 'env,
    Svc::Error: Into<BoxError>,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    let control = http.control.clone();
    let handler = async move |stream: &SocketStream| {
        http.serve_native_connection(stream, service.clone()).await
    };
    let serve = trio::serve_tcp(handler, port).on_handler_error(OnHandlerError::LogAndContinue);
    match control {
        Some(c) => serve.control(&c),
        None => serve,
    }
}
