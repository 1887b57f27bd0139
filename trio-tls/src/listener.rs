//! Listening and connecting over TCP with TLS: [`TlsListener`] over any
//! trio [`Listener`], [`open_tls_over_tcp_stream`] and
//! [`serve_tls_over_tcp`] (Trio's `SSLListener`, `open_ssl_over_tcp_stream`
//! and `serve_ssl_over_tcp`).
//!
//! # Where the handshake runs
//!
//! [`TlsListener::accept`] does **no** TLS work: it accepts a transport
//! connection and wraps it. The handshake runs lazily on the stream's first
//! use, so in a server it runs in the connection's own task (started by
//! [`serve_listeners`](trio::serve_listeners)), and a slow or hostile
//! client never holds up the accept loop. The listener's
//! [`handshake_timeout`](TlsListener::handshake_timeout) bounds it.

use crate::stream::{TlsStream, recording_sni};
use rustls::pki_types::ServerName;
use rustls::server::UnbufferedServerConnection;
use rustls::{ClientConfig, ServerConfig};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use trio::net::{Serve, TcpListenOptions};
use trio::socket::{SocketListener, SocketStream};
use trio::stream::{AsyncResource, Listener};
use trio::{Error, ErrorKind, Result, TaskStatus};

/// Wraps any [`Listener`]: [`accept`](Listener::accept) returns the
/// connection as the server end of a [`TlsStream`] and does no TLS work.
/// The handshake runs lazily in whichever task uses the stream first: in
/// a server, the connection's own task (started by
/// [`serve_listeners`](trio::serve_listeners)), so a slow or hostile
/// client never holds up the accept loop, and the
/// [`handshake_timeout`](TlsListener::handshake_timeout) bounds it.
pub struct TlsListener<L> {
    listener: L,
    config: Arc<ServerConfig>,
    https_compatible: bool,
    handshake_timeout: Option<Duration>,
}

impl<L: Listener> TlsListener<L> {
    /// Wraps `listener`; its connections use `config`.
    pub fn new(listener: L, config: Arc<ServerConfig>) -> Self {
        TlsListener {
            listener,
            // Once, rather than per connection (`TlsStream::server`).
            config: recording_sni(&config),
            https_compatible: false,
            handshake_timeout: None,
        }
    }

    /// The accepted streams' [`https_compatible`](TlsStream::https_compatible).
    pub fn https_compatible(mut self, on: bool) -> Self {
        self.https_compatible = on;
        self
    }

    /// The accepted streams' [`handshake_timeout`](TlsStream::handshake_timeout)
    /// (none by default). A server facing the internet wants one: a client
    /// that connects and says nothing otherwise holds its connection (and
    /// its task) until the OS gives up.
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The wrapped listener (to read its address).
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// Unwraps the listener.
    pub fn into_inner(self) -> L {
        self.listener
    }
}

impl<L: Listener> AsyncResource for TlsListener<L> {
    fn aclose(&self) -> impl Future<Output = Result<()>> {
        self.listener.aclose()
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    type Stream = TlsStream<L::Stream>;

    async fn accept(&self) -> Result<TlsStream<L::Stream>> {
        // The connection first: if it fails (a bad config), no transport
        // connection was taken that would need closing.
        let conn = UnbufferedServerConnection::new(self.config.clone())
            .map_err(|e| Error::with_kind(ErrorKind::InvalidArgument, e))?;
        let transport = self.listener.accept().await?;
        Ok(TlsStream::from_server_connection(transport, conn)
            .https_compatible(self.https_compatible)
            .handshake_timeout(self.handshake_timeout))
    }
}

impl<L: fmt::Debug> fmt::Debug for TlsListener<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("listener", &self.listener)
            .field("https_compatible", &self.https_compatible)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Connects to `host`:`port` over TCP ([`trio::open_tcp_stream`], Happy
/// Eyeballs) and returns the client end of a [`TlsStream`] for `host`
/// (checked against the server's certificate, and sent as SNI). The
/// handshake runs on first use (or [`TlsStream::do_handshake`]).
///
/// A `host` that is neither a DNS name nor an IP address is an
/// [`ErrorKind::InvalidArgument`] error, before any connection.
pub async fn open_tls_over_tcp_stream(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<SocketStream>> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("not a valid TLS server name: {host:?} ({e})"),
        )
    })?;
    let tcp = trio::open_tcp_stream(host, port).await?;
    TlsStream::client(tcp, config, name)
}

/// The listeners of [`serve_tls_over_tcp`].
pub type TlsTcpListener = TlsListener<SocketListener>;

/// The [`Serve`] under a [`ServeTls`], for [`ServeTls::serve_options`].
pub type TlsServe<'env, H> = Serve<'env, Vec<TlsTcpListener>, H>;

type ServeHook<'env, H> = Box<dyn FnOnce(TlsServe<'env, H>) -> TlsServe<'env, H> + 'env>;

struct Config<'env, H> {
    handler: H,
    port: u16,
    server_config: Arc<ServerConfig>,
    listen: TcpListenOptions,
    https_compatible: bool,
    handshake_timeout: Option<Duration>,
    task_status: Option<TaskStatus<Rc<[TlsTcpListener]>>>,
    serve_options: Option<ServeHook<'env, H>>,
}

/// Serves TLS over TCP on `port` (Trio's `serve_ssl_over_tcp`): opens TCP
/// listeners ([`TcpListenOptions`]; all interfaces unless
/// [`host`](ServeTls::host) says otherwise; port 0: the kernel picks),
/// wraps each in a [`TlsListener`] and serves them with
/// [`serve_listeners`](trio::serve_listeners): each connection runs
/// `handler(&tls_stream)` in its own task, where the handshake runs on
/// first use, and the stream is closed (forcefully) after it. A handler
/// that wants the client to see a clean end calls
/// [`aclose`](AsyncResource::aclose) itself.
///
/// A failed handshake (a client that is not speaking TLS, a certificate it
/// rejects) is the error of the handler's first operation on the stream:
/// returned from the handler, it stops the server under [`Serve`]'s
/// default policy, as any handler error does. A public server handles it,
/// or sets `serve_options(|s| s.on_handler_error(OnHandlerError::LogAndContinue))`
/// (see [`OnHandlerError`](trio::net::OnHandlerError)).
///
/// Returns [`ServeTls`], a builder that is the server future, like
/// [`Serve`]: `nursery.start(|status| serve_tls_over_tcp(h, 0,
/// config).task_status(status))` returns the listeners once they accept.
///
/// ```
/// use trio::stream::{AsyncResource, ReceiveStream, SendStream};
/// use trio_tls::{TlsStream, open_tls_over_tcp_stream, serve_tls_over_tcp};
/// # use std::sync::Arc;
/// # let key = rcgen::KeyPair::generate().unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
/// #     .unwrap()
/// #     .self_signed(&key)
/// #     .unwrap();
/// # let provider = Arc::new(rustls::crypto::ring::default_provider());
/// # let mut roots = rustls::RootCertStore::empty();
/// # roots.add(cert.der().clone()).unwrap();
/// # let client_config = Arc::new(
/// #     rustls::ClientConfig::builder_with_provider(provider.clone())
/// #         .with_safe_default_protocol_versions()
/// #         .unwrap()
/// #         .with_root_certificates(roots)
/// #         .with_no_client_auth(),
/// # );
/// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
/// # let server_config = Arc::new(
/// #     rustls::ServerConfig::builder_with_provider(provider)
/// #         .with_safe_default_protocol_versions()
/// #         .unwrap()
/// #         .with_no_client_auth()
/// #         .with_single_cert(vec![cert.der().clone()], key)
/// #         .unwrap(),
/// # );
///
/// async fn greet(stream: &TlsStream<trio::socket::SocketStream>) -> trio::Result<()> {
///     stream.send_all(b"hello over TLS").await?;
///     stream.aclose().await // close_notify: the client reads a clean end
/// }
///
/// trio::run(async move {
///     trio::open_nursery(async |nursery| {
///         let listeners = nursery
///             .start(|status| {
///                 serve_tls_over_tcp(greet, 0, server_config)
///                     .host("127.0.0.1")
///                     .task_status(status)
///             })
///             .await?;
///         let port = listeners[0].listener().local_addr()?.as_socket().unwrap().port();
///         let client = open_tls_over_tcp_stream("localhost", port, client_config).await?;
///         let mut got = Vec::new();
///         let mut buf = [0; 64];
///         loop {
///             let n = client.receive_some(&mut buf).await?;
///             if n == 0 {
///                 break;
///             }
///             got.extend_from_slice(&buf[..n]);
///         }
///         assert_eq!(got, b"hello over TLS");
///         nursery.cancel_scope().cancel();
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn serve_tls_over_tcp<'env, H>(
    handler: H,
    port: u16,
    server_config: Arc<ServerConfig>,
) -> ServeTls<'env, H>
where
    H: AsyncFn(&TlsStream<SocketStream>) -> Result<()> + 'env,
{
    ServeTls {
        config: Some(Box::new(Config {
            handler,
            port,
            server_config,
            listen: TcpListenOptions::new(),
            https_compatible: false,
            handshake_timeout: None,
            task_status: None,
            serve_options: None,
        })),
        running: None,
    }
}

/// A TLS server: a builder of options that is also the future that runs
/// it (made by [`serve_tls_over_tcp`]). Options are set before the first
/// poll. Its output is [`Serve`]'s.
#[must_use = "a server does nothing unless awaited or spawned"]
pub struct ServeTls<'env, H> {
    /// Until the first poll (boxed, so that `ServeTls` is `Unpin`).
    config: Option<Box<Config<'env, H>>>,
    running: Option<Pin<Box<dyn Future<Output = Result<()>> + 'env>>>,
}

impl<'env, H> ServeTls<'env, H> {
    fn with(mut self, f: impl FnOnce(&mut Config<'env, H>)) -> Self {
        if let Some(c) = &mut self.config {
            f(c);
        }
        self
    }

    /// Listens on this host's addresses only ("127.0.0.1", "localhost").
    pub fn host(self, host: impl Into<String>) -> Self {
        let host = host.into();
        self.with(|c| c.listen = std::mem::take(&mut c.listen).host(host))
    }

    /// All the TCP listening options (replaces [`host`](Self::host)).
    pub fn listen_options(self, options: TcpListenOptions) -> Self {
        self.with(|c| c.listen = options)
    }

    /// The connections' [`https_compatible`](TlsStream::https_compatible).
    pub fn https_compatible(self, on: bool) -> Self {
        self.with(|c| c.https_compatible = on)
    }

    /// The connections' [`handshake_timeout`](TlsListener::handshake_timeout).
    pub fn handshake_timeout(self, timeout: Option<Duration>) -> Self {
        self.with(|c| c.handshake_timeout = timeout)
    }

    /// Reports the listeners to [`Nursery::start`](trio::Nursery::start)
    /// once they accept.
    pub fn task_status(self, status: TaskStatus<Rc<[TlsTcpListener]>>) -> Self {
        self.with(|c| c.task_status = Some(status))
    }

    /// Sets [`Serve`]'s other options (`control`, `handler_nursery`,
    /// `max_connections`, `on_handler_error`, `log`) on the underlying
    /// server: `f` gets it and returns it.
    pub fn serve_options(
        self,
        f: impl FnOnce(TlsServe<'env, H>) -> TlsServe<'env, H> + 'env,
    ) -> Self {
        self.with(|c| c.serve_options = Some(Box::new(f)))
    }
}

impl<H> fmt::Debug for ServeTls<'_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServeTls");
        match &self.config {
            Some(c) => d
                .field("port", &c.port)
                .field("listen", &c.listen)
                .field("https_compatible", &c.https_compatible)
                .field("handshake_timeout", &c.handshake_timeout)
                .field("task_status", &c.task_status.is_some()),
            None => d.field("running", &self.running.is_some()),
        };
        d.finish_non_exhaustive()
    }
}

impl<'env, H> Future for ServeTls<'env, H>
where
    H: AsyncFn(&TlsStream<SocketStream>) -> Result<()> + 'env,
{
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = &mut *self;
        let running = match &mut this.running {
            Some(running) => running,
            None => {
                let Some(config) = this.config.take() else {
                    return Poll::Ready(Err(Error::new(
                        ErrorKind::Usage,
                        "a ServeTls future was polled after it finished",
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

async fn run<'env, H>(c: Config<'env, H>) -> Result<()>
where
    H: AsyncFn(&TlsStream<SocketStream>) -> Result<()> + 'env,
{
    let listeners = c.listen.open(c.port).await?;
    let listeners: Vec<TlsTcpListener> = listeners
        .into_iter()
        .map(|l| {
            TlsListener::new(l, c.server_config.clone())
                .https_compatible(c.https_compatible)
                .handshake_timeout(c.handshake_timeout)
        })
        .collect();
    let mut serve = trio::serve_listeners(c.handler, listeners);
    if let Some(status) = c.task_status {
        serve = serve.task_status(status);
    }
    if let Some(f) = c.serve_options {
        serve = f(serve);
    }
    serve.await
}
