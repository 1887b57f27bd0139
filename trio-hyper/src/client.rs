//! HTTP clients: hyper's `client::conn::{http1, http2}::handshake` over a
//! trio stream, with the connection's driver as a child task of a nursery.
//!
//! hyper splits a client connection in two: a `SendRequest` handle, and
//! the `Connection` future that does the I/O and must be polled meanwhile.
//! [`http1_handshake`] and [`http2_handshake`] spawn the latter into the
//! caller's nursery (so it lives no longer than the nursery, and may
//! borrow the stream) and return the handle. Dropping every `SendRequest`
//! lets the connection finish (it closes when idle), so the nursery ends
//! on its own. On HTTP/2, hyper's own background futures (the I/O task,
//! each request body's sending) are children of the same nursery, through
//! [`NurseryExecutor`].
//!
//! The driver's errors go to the requests in flight (hyper fails them
//! with the connection's error), so the driver itself ends quietly on
//! them; only a cancellation of its own scope (the nursery's) is
//! returned, as any cancelled child's is.
//!
//! # Cancelling a request
//!
//! hyper's response future (`SendRequest::send_request`) is foreign code:
//! it waits on a channel from the driver, not on trio, so it is **not a
//! cancel point**, and a `move_on_after` around it alone would wait for
//! the answer anyway. Wrap it in [`trio::lowlevel::cancel_point`]: on
//! cancel the future is dropped, which on HTTP/2 resets that one stream
//! (the connection and its other streams go on) and on HTTP/1.1 leaves
//! the connection unusable for further requests (hyper closes it).
//! [`get`] and [`get_tls`] do this, and so also end when their connection
//! is cancelled.
//!
//! [`get`] / [`get_tls`] are the small "GET this URL" helpers: one request
//! on a new connection, the whole body read. Wrap them in
//! `move_on_after` for a timeout.

use crate::server::{from_hyper, from_hyper_here};
use crate::{NurseryExecutor, TrioTimer};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use trio::lowlevel::cancel_point;
use trio::stream::Stream;
use trio::{Error, ErrorKind, Nursery};
use trio_compat::{Io, NativePoll};
use trio_tls::rustls::ClientConfig;

/// A boxed error, as hyper's traits want them.
type BoxError = Box<dyn StdError + Send + Sync>;

/// The task name of an HTTP/1.1 client connection's driver.
const DRIVER_NAME: &str = "trio_hyper http1 client connection";
/// The task name of an HTTP/2 client connection's driver.
const DRIVER_NAME_H2: &str = "trio_hyper http2 client connection";

/// A client connection's driver: hyper's `Connection` future, ending
/// quietly on errors (the requests in flight get them) except its own
/// cancellation.
async fn drive<C: Future<Output = hyper::Result<()>>>(conn: C) -> trio::Result<()> {
    match conn.await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = from_hyper_here(e).await;
            // Only our own cancellation is ours to report.
            if e.is_cancelled() { Err(e) } else { Ok(()) }
        }
    }
}

/// Starts an HTTP/1.1 client connection over `stream` (hyper's
/// `http1::handshake`, which sends nothing yet) and spawns its driver into
/// `nursery`; returns the handle that sends requests. See the
/// [module docs](self).
///
/// Errors: spawning into a closed nursery is a `Usage` error.
pub async fn http1_handshake<'a, S, B>(
    nursery: &Nursery<'a>,
    stream: S,
) -> trio::Result<http1::SendRequest<B>>
where
    S: Stream + 'a,
    B: Body + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    http1_handshake_io(nursery, Io::new(stream)).await
}

/// [`http1_handshake`] over a stream that polls natively (a
/// `SocketStream` or `&SocketStream`, see
/// [`NativePoll`]): the adapter is [`Io::native`], with no allocation per
/// poll. Same behaviour and errors otherwise; [`get`] uses it.
pub async fn http1_handshake_native<'a, S, B>(
    nursery: &Nursery<'a>,
    stream: S,
) -> trio::Result<http1::SendRequest<B>>
where
    S: Stream + NativePoll + 'a,
    B: Body + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    http1_handshake_io(nursery, Io::native(stream)).await
}

/// [`http1_handshake`] over a ready adapter (either path).
async fn http1_handshake_io<'a, S, B>(
    nursery: &Nursery<'a>,
    io: Io<'a, S>,
) -> trio::Result<http1::SendRequest<B>>
where
    S: Stream + 'a,
    B: Body + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (send, conn) = http1::handshake(io).await.map_err(from_hyper)?;
    nursery.try_start_soon_named(DRIVER_NAME, drive(conn))?;
    Ok(send)
}

/// Starts an HTTP/2 client connection over `stream` (prior knowledge:
/// h2c, or h2 over TLS once ALPN chose `h2`) and spawns its driver into
/// `nursery`; hyper's background futures run there too
/// ([`NurseryExecutor`]), and its timer is [`TrioTimer`]. Returns the
/// handle that sends requests; clone it for concurrent requests (each is
/// a stream of the one connection). See the [module docs](self).
///
/// The request's URI should be absolute (`http://host/path`): HTTP/2
/// takes `:scheme` and `:authority` from it.
///
/// The stream is shared (`Rc`) and `'static`, unlike
/// [`http1_handshake`]'s: hyper's HTTP/2 client connection requires
/// `'static` I/O. Keep a clone to close the stream after the connection
/// ends (memory streams do not close when dropped; sockets and TLS
/// streams over them do).
///
/// ```
/// use hyper::{Request, Response, body::Incoming, service::service_fn};
/// use std::rc::Rc;
/// use trio::testing::memory_stream_pair;
/// use trio_hyper::{Http, Protocol, http2_handshake, read_body};
///
/// trio::run(async {
///     let (server, client) = memory_stream_pair();
///     let hello = service_fn(async |req: Request<Incoming>| {
///         Ok::<_, std::convert::Infallible>(Response::new(format!("{:?}", req.version())))
///     });
///     let http = Http::new().protocol(Protocol::Http2);
///     trio::open_nursery(async |nursery| {
///         nursery.start_soon(http.serve_connection(&server, &hello));
///         let mut send = http2_handshake::<_, String>(&nursery, Rc::new(client)).await?;
///         let req = Request::get("http://example/").body(String::new()).unwrap();
///         let resp = send.send_request(req).await.map_err(trio_hyper::from_hyper)?;
///         assert_eq!(read_body(resp.into_body()).await?, b"HTTP/2.0");
///         // Memory streams do not close when dropped: end both sides.
///         nursery.cancel_scope().cancel();
///         Ok(())
///     })
///     .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// Errors: hyper's handshake errors (it sends the preface and settings
/// at once); spawning into a closed nursery is a `Usage` error.
pub async fn http2_handshake<'a, S, B>(
    nursery: &Nursery<'a>,
    stream: Rc<S>,
) -> trio::Result<http2::SendRequest<B>>
where
    S: Stream + 'static,
    B: Body + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = http2::Builder::new(NurseryExecutor::new(nursery));
    builder.timer(TrioTimer);
    let (send, conn) = builder
        .handshake(Io::from_rc(stream))
        .await
        .map_err(from_hyper)?;
    nursery.try_start_soon_named(DRIVER_NAME_H2, drive(conn))?;
    Ok(send)
}

/// Reads a whole body (any [`Body`], e.g. a response's [`Incoming`]).
/// Trailers are skipped. Errors: the body's, converted like
/// [`from_hyper`] converts hyper's.
pub async fn read_body<B>(body: B) -> trio::Result<Vec<u8>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    use hyper::body::Buf;
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(frame) = poll_fn(|cx| Pin::as_mut(&mut body).poll_frame(cx)).await {
        let frame =
            frame.map_err(|e| trio_compat::error::from_io(std::io::Error::other(e.into())))?;
        if let Ok(mut data) = frame.into_data() {
            while data.has_remaining() {
                let chunk = data.chunk();
                out.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(out)
}

/// A URL taken apart for [`get`] / [`get_tls`].
struct Target {
    uri: hyper::Uri,
    /// The host without IPv6 brackets, to connect to (and for SNI).
    host: String,
    port: u16,
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str, scheme: &str, default_port: u16) -> trio::Result<Target> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("bad URL {url:?}: {e}")))?;
        if uri.scheme_str() != Some(scheme) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("a {scheme}:// URL is needed here: {url:?}"),
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, format!("no host in {url:?}")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(default_port);
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_owned();
        Ok(Target {
            uri,
            host,
            port,
            authority,
            path,
        })
    }
}

/// One GET over `stream` (HTTP/2 if `h2`, else HTTP/1.1) in a nursery of
/// its own, the whole body read.
///
/// `make_io` chooses the HTTP/1.1 adapter's path ([`Io::native_rc`] for a
/// socket, [`Io::from_rc`] otherwise).
async fn fetch<S: Stream + 'static>(
    stream: Rc<S>,
    h2: bool,
    target: &Target,
    make_io: fn(Rc<S>) -> Io<'static, S>,
) -> trio::Result<Response<Vec<u8>>> {
    let bad_request = |e: hyper::http::Error| Error::new(ErrorKind::InvalidArgument, e.to_string());
    let got = trio::open_nursery(async |nursery| {
        let resp = if h2 {
            let mut send = http2_handshake::<_, String>(&nursery, stream.clone()).await?;
            // HTTP/2 takes :scheme and :authority from the absolute URI.
            let req = Request::get(target.uri.clone())
                .body(String::new())
                .map_err(bad_request)?;
            let resp = cancel_point(send.send_request(req)).await?;
            drop(send); // the connection ends once the body is read
            resp
        } else {
            let mut send =
                http1_handshake_io::<_, String>(&nursery, make_io(stream.clone())).await?;
            let req = Request::get(target.path.as_str())
                .header(hyper::header::HOST, target.authority.as_str())
                .body(String::new())
                .map_err(bad_request)?;
            let resp = cancel_point(send.send_request(req)).await?;
            drop(send);
            resp
        };
        let (parts, body) = resp.map_err(from_hyper)?.into_parts();
        let body = read_body::<Incoming>(body).await?;
        Ok(Response::from_parts(parts, body))
    })
    .await?;
    // `None` only if the nursery's own scope was cancelled, which nothing here does.
    got.ok_or_else(|| Error::new(ErrorKind::Broken, "the request's nursery was cancelled"))
}

/// GETs an `http://host[:port]/path` URL over a new HTTP/1.1 connection
/// and returns the response with its whole body. The connection's driver
/// runs in a nursery of this call, which ends with it. No redirects: the
/// example-sized helper of the issue; for `https://`, see [`get_tls`]; for
/// a timeout, wrap it in [`trio::move_on_after`] (the request is a cancel
/// point, see the [module docs](self#cancelling-a-request)).
///
/// Errors: a URL that is not `http://…` is `InvalidArgument`; connecting,
/// hyper's errors, and a body that fails.
pub async fn get(url: &str) -> trio::Result<Response<Vec<u8>>> {
    let target = Target::parse(url, "http", 80)?;
    let stream = trio::open_tcp_stream(&target.host, target.port).await?;
    fetch(Rc::new(stream), false, &target, Io::native_rc).await
}

/// GETs an `https://host[:port]/path` URL like [`get`], over TLS
/// (`trio_tls`, with `config`'s roots checking the server's certificate
/// for `host`). ALPN offers `h2` and `http/1.1` (unless `config` sets its
/// own list), and the request goes over HTTP/2 if the server chose `h2`,
/// else HTTP/1.1. This crate brings no root certificates: `config` says
/// whom to trust.
///
/// Errors: a URL that is not `https://…`, or whose host is no valid TLS
/// server name, is `InvalidArgument`; connecting, the TLS handshake (a
/// certificate not trusted, say), hyper's errors, and a body that fails.
pub async fn get_tls(url: &str, config: Arc<ClientConfig>) -> trio::Result<Response<Vec<u8>>> {
    let target = Target::parse(url, "https", 443)?;
    let config = if config.alpn_protocols.is_empty() {
        let mut with_alpn = (*config).clone();
        with_alpn.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(with_alpn)
    } else {
        config
    };
    let tls = trio_tls::open_tls_over_tcp_stream(&target.host, target.port, config).await?;
    tls.do_handshake().await?;
    let h2 = tls.negotiated_alpn()?.as_deref() == Some(b"h2");
    fetch(Rc::new(tls), h2, &target, Io::from_rc).await
}
