//! HTTP/1.1 clients: hyper's `client::conn::http1::handshake` over a trio
//! stream, with the connection's driver as a child task of a nursery.
//!
//! hyper splits a client connection in two: a [`SendRequest`] handle, and
//! the `Connection` future that does the I/O and must be polled meanwhile.
//! [`http1_handshake`] spawns the latter into the caller's nursery (so it
//! lives no longer than the nursery, and may borrow the stream) and
//! returns the handle. Dropping every `SendRequest` lets the connection
//! finish (it closes when idle), so the nursery ends on its own.
//!
//! The driver's errors go to the requests in flight (hyper fails them
//! with the connection's error), so the driver itself ends quietly on
//! them; only a cancellation of its own scope (the nursery's) is
//! returned, as any cancelled child's is.
//!
//! [`get`] is the small "GET this URL" helper: one request on a new
//! connection, the whole body read. Wrap it in `move_on_after` for a
//! timeout.

use crate::server::from_hyper;
use hyper::body::{Body, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use std::error::Error as StdError;
use std::future::poll_fn;
use std::pin::Pin;
use trio::stream::Stream;
use trio::{Error, ErrorKind, Nursery};
use trio_compat::Io;

/// A boxed error, as hyper's traits want them.
type BoxError = Box<dyn StdError + Send + Sync>;

/// The task name of a client connection's driver.
const DRIVER_NAME: &str = "trio_hyper http1 client connection";

/// Starts an HTTP/1.1 client connection over `stream` (hyper's
/// `http1::handshake`, which sends nothing yet) and spawns its driver into
/// `nursery`; returns the handle that sends requests. See the
/// [module docs](self).
///
/// Errors: spawning into a closed nursery is a `Usage` error.
pub async fn http1_handshake<'a, S, B>(
    nursery: &Nursery<'a>,
    stream: S,
) -> trio::Result<SendRequest<B>>
where
    S: Stream + 'a,
    B: Body + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (send, conn) = http1::handshake(Io::new(stream))
        .await
        .map_err(from_hyper)?;
    nursery.try_start_soon_named(DRIVER_NAME, async move {
        match conn.await {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = from_hyper(e);
                // Only our own cancellation is ours to report.
                if e.is_cancelled() { Err(e) } else { Ok(()) }
            }
        }
    })?;
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

/// GETs an `http://host[:port]/path` URL over a new HTTP/1.1 connection
/// and returns the response with its whole body. The connection's driver
/// runs in a nursery of this call, which ends with it. No TLS, no
/// redirects: the example-sized helper of the issue; for a timeout, wrap
/// it in [`trio::move_on_after`].
///
/// Errors: a URL that is not `http://…` is `InvalidArgument`; connecting,
/// hyper's errors, and a body that fails.
pub async fn get(url: &str) -> trio::Result<Response<Vec<u8>>> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("bad URL {url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("only http:// URLs are supported: {url:?}"),
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, format!("no host in {url:?}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let stream = trio::open_tcp_stream(&host, port).await?;
    let got = trio::open_nursery(async |nursery| {
        let mut send = http1_handshake::<_, String>(&nursery, &stream).await?;
        let req = Request::get(path)
            .header(hyper::header::HOST, authority)
            .body(String::new())
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, e.to_string()))?;
        let resp = send.send_request(req).await.map_err(from_hyper)?;
        drop(send); // the connection ends once the body is read
        let (parts, body) = resp.into_parts();
        let body = read_body::<Incoming>(body).await?;
        Ok(Response::from_parts(parts, body))
    })
    .await?;
    // `None` only if the nursery's own scope was cancelled, which nothing here does.
    got.ok_or_else(|| Error::new(ErrorKind::Broken, "the request's nursery was cancelled"))
}
