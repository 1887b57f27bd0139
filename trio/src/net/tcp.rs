//! Opening connections: [`open_tcp_stream`] with Happy Eyeballs (RFC 6555,
//! as Trio's `trio.open_tcp_stream` does it), and [`open_unix_stream`].
//!
//! # Happy Eyeballs
//!
//! A host often has several addresses, some of which may not answer (an
//! IPv6 route that silently drops packets, a dead server behind one DNS
//! entry). Trying them one by one can wait a connect timeout, tens of
//! seconds, per dead address; trying all at once loads the network and the
//! server. The middle way:
//!
//! 1. Resolve the host ([`getaddrinfo`]), and keep the resolver's order,
//!    except that the first address of the other family moves to second
//!    place (RFC 6555 §5.4), so one family's failure costs one delay.
//! 2. Start attempt *i+1* as soon as attempt *i* fails or the delay (250 ms
//!    by default) passes, whichever comes first. Each attempt is a child
//!    task of one nursery, opened by the run's
//!    [`SocketFactory`](crate::net::SocketFactory).
//! 3. The first attempt to connect cancels the nursery: the attempts still
//!    running are cancelled, and no further one starts.
//! 4. Exactly one stream is returned. Every other socket is closed: a
//!    cancelled attempt drops (closes) its socket, and an attempt that
//!    connects in the same instant as the winner drops its stream.
//! 5. Any error of an attempt other than `Cancelled` is that attempt's
//!    failure. If every attempt fails, the error lists each attempt's error
//!    ([`ConnectAttemptsFailed`]). If the whole call is cancelled, it
//!    returns `Cancelled` and no socket stays open, not even a winner's.
//!    (As in Trio, once the last attempt has started and the delay after it
//!    has passed, the call only waits for the attempts, which is no
//!    checkpoint: a cancel that lands in the instant the winner connects
//!    then reaches the caller's next checkpoint instead, and the stream is
//!    returned.)
//!
//! With a local address, only the targets of its family are tried (a socket
//! of one family cannot connect from an address of the other); if none is
//! left, the call fails with [`ErrorKind::InvalidArgument`] before any
//! attempt.

use crate::error::{Error, ErrorKind, Result};
use crate::net::factory::current_socket_factory;
use crate::net::resolve::getaddrinfo;
use crate::socket::SocketStream;
use crate::sync::Event;
use crate::time::TryIntoDuration;
use crate::{move_on_after, open_nursery};
use std::cell::RefCell;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// How long an attempt runs alone before the next one starts (RFC 6555
/// suggests 150–250 ms; Trio and Chrome use 250 ms).
pub const DEFAULT_HAPPY_EYEBALLS_DELAY: Duration = Duration::from_millis(250);

/// Connects to `host` (a name or a literal address) on TCP `port`, trying
/// its addresses with Happy Eyeballs (the [module docs](self)) and the
/// default options. [`TcpConnect`] sets the delay and a local address.
///
/// ```
/// use trio::socket::SocketListener;
/// use trio::stream::{Listener, ReceiveStream, SendStream};
///
/// trio::run(async {
///     let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
///     let port = listener.local_addr()?.as_socket().unwrap().port();
///     let client = trio::open_tcp_stream("127.0.0.1", port).await?;
///     let server = listener.accept().await?;
///     client.send_all(b"hello").await?;
///     let mut buf = [0; 5];
///     assert_eq!(server.receive_some(&mut buf).await?, 5);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn open_tcp_stream(host: &str, port: u16) -> Result<SocketStream> {
    TcpConnect::new(host, port).connect().await
}

/// Connects to the Unix socket at `path` (Trio's `open_unix_socket`).
pub async fn open_unix_stream(path: impl AsRef<Path>) -> Result<SocketStream> {
    SocketStream::connect_unix(path).await
}

/// A TCP connection to make with Happy Eyeballs, with options:
/// [`open_tcp_stream`] with knobs.
///
/// ```
/// use trio::net::TcpConnect;
/// use trio::socket::SocketListener;
///
/// trio::run(async {
///     let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
///     let port = listener.local_addr()?.as_socket().unwrap().port();
///     let stream = TcpConnect::new("127.0.0.1", port)
///         .happy_eyeballs_delay(0.1)
///         .local_address("127.0.0.1".parse().unwrap())
///         .connect()
///         .await?;
///     let local = stream.socket()?.local_addr()?.as_socket().unwrap();
///     assert_eq!(local.ip().to_string(), "127.0.0.1");
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct TcpConnect {
    host: String,
    port: u16,
    /// The delay, or why the one given was not a duration (reported by
    /// `connect`, so that the setters can chain).
    delay: Result<Duration>,
    local_address: Option<IpAddr>,
}

impl TcpConnect {
    /// A connection to `host` (a name or a literal address) on `port`,
    /// with the default options.
    pub fn new(host: impl Into<String>, port: u16) -> TcpConnect {
        TcpConnect {
            host: host.into(),
            port,
            delay: Ok(DEFAULT_HAPPY_EYEBALLS_DELAY),
            local_address: None,
        }
    }

    /// How long each attempt runs alone before the next one starts in
    /// parallel (default [`DEFAULT_HAPPY_EYEBALLS_DELAY`]); seconds as
    /// `f64`, or a `Duration`. An invalid value (negative, NaN) makes
    /// [`connect`](Self::connect) fail with `InvalidArgument`.
    pub fn happy_eyeballs_delay(mut self, delay: impl TryIntoDuration) -> TcpConnect {
        self.delay = delay.try_into_duration();
        self
    }

    /// Connects from this local IP address (port chosen by the OS); only
    /// the host's addresses of the same family are tried. A wildcard
    /// (`0.0.0.0`, `::`) just picks the family.
    pub fn local_address(mut self, ip: IpAddr) -> TcpConnect {
        self.local_address = Some(ip);
        self
    }

    /// Resolves the host and connects (the steps in the [module
    /// docs](self)). Returns the one connected stream, or an
    /// [`ErrorKind::Io`] error wrapping [`ConnectAttemptsFailed`] if every
    /// attempt failed.
    pub async fn connect(&self) -> Result<SocketStream> {
        let delay = match &self.delay {
            Ok(d) => *d,
            Err(e) => return Err(Error::new(e.kind(), e.to_string())),
        };
        // 1. Resolve and order the targets.
        let targets = self.targets().await?;

        // 2.–4. One child task per attempt; the first to connect wins.
        let factory = current_socket_factory()?;
        let winner: RefCell<Option<SocketStream>> = RefCell::new(None);
        let failures: RefCell<Vec<(SocketAddr, Error)>> = RefCell::new(Vec::new());
        // Shared with the attempts (each `async move` copies the references).
        let (factory, winner, failures) = (&*factory, &winner, &failures);
        open_nursery(async |nursery| {
            for &addr in &targets {
                let attempt_failed = Event::new();
                let (failed, nursery_scope) = (attempt_failed.clone(), nursery.cancel_scope());
                nursery.start_soon(async move {
                    match factory.connect(addr, self.local_address).await {
                        Ok(stream) if winner.borrow().is_none() => {
                            *winner.borrow_mut() = Some(stream);
                            nursery_scope.cancel();
                        }
                        // Connected in the same instant as the winner:
                        // dropping it here closes it.
                        Ok(_late) => {}
                        Err(e) if e.is_cancelled() => return Err(e),
                        Err(e) => {
                            failures.borrow_mut().push((addr, e));
                            failed.set();
                        }
                    }
                    Ok(())
                });
                // Give this attempt at most `delay` before starting the next.
                move_on_after(delay, attempt_failed.wait()).await?;
            }
            Ok(())
        })
        .await?;

        // 5. The winner, or every attempt's error.
        match winner.take() {
            Some(stream) => Ok(stream),
            None => Err(Error::with_kind(
                ErrorKind::Io,
                ConnectAttemptsFailed {
                    target: self.target(),
                    attempts: failures.take(),
                },
            )),
        }
    }

    /// Step 1: resolves the host, keeps the family the local address allows,
    /// and reorders for RFC 6555 §5.4.
    async fn targets(&self) -> Result<Vec<SocketAddr>> {
        let mut targets = getaddrinfo(&self.host, self.port).await?;
        if let Some(local) = self.local_address {
            targets.retain(|t| t.is_ipv4() == local.is_ipv4());
            if targets.is_empty() {
                let family = if local.is_ipv4() { "IPv4" } else { "IPv6" };
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "local address {local} is {family}, but {} has no {family} address",
                        self.target()
                    ),
                ));
            }
        } else if targets.is_empty() {
            let message = format!("no results found for hostname lookup: {}", self.target());
            return Err(Error::new(ErrorKind::Io, message));
        }
        reorder_for_rfc_6555_section_5_4(&mut targets);
        Ok(targets)
    }

    /// `host:port`, with an IPv6 literal in brackets.
    fn target(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// RFC 6555 §5.4: the first two attempts should use different address
/// families. Moves the first address of the other family (if any) to
/// second place and keeps the rest in the resolver's order.
fn reorder_for_rfc_6555_section_5_4(targets: &mut [SocketAddr]) {
    let Some(&first) = targets.first() else {
        return;
    };
    if let Some(i) = targets.iter().position(|t| t.is_ipv4() != first.is_ipv4()) {
        targets[1..=i].rotate_right(1);
    }
}

/// Every attempt of an [`open_tcp_stream`] call failed: the `host:port`
/// asked for, and each address tried with its error, in the order the
/// attempts failed. Wrapped in an [`ErrorKind::Io`] error; reach it with
/// [`Error::downcast_ref`].
///
/// ```
/// use trio::net::ConnectAttemptsFailed;
/// use trio::socket::SocketListener;
///
/// trio::run(async {
///     // A port that was just free: nothing listens there.
///     let port = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?
///         .local_addr()?
///         .as_socket()
///         .unwrap()
///         .port();
///     let err = trio::open_tcp_stream("127.0.0.1", port).await.unwrap_err();
///     assert_eq!(err.kind(), trio::ErrorKind::Io);
///     let failed = err.downcast_ref::<ConnectAttemptsFailed>().unwrap();
///     assert_eq!(failed.attempts().len(), 1);
///     assert!(err.to_string().starts_with(&format!(
///         "all attempts to connect to 127.0.0.1:{port} failed: 127.0.0.1:{port}: "
///     )));
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct ConnectAttemptsFailed {
    target: String,
    attempts: Vec<(SocketAddr, Error)>,
}

impl ConnectAttemptsFailed {
    /// The `host:port` that was asked for.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Each address tried, with its error, in the order they failed.
    pub fn attempts(&self) -> &[(SocketAddr, Error)] {
        &self.attempts
    }

    /// The attempts' errors as one [`Error::group`] (`None` if there were
    /// none).
    pub fn into_group(self) -> Option<Error> {
        Error::group(self.attempts.into_iter().map(|(_, e)| e))
    }
}

impl fmt::Display for ConnectAttemptsFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "all attempts to connect to {} failed", self.target)?;
        for (i, (addr, e)) in self.attempts.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{addr}: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectAttemptsFailed {}

#[cfg(test)]
mod tests {
    use super::reorder_for_rfc_6555_section_5_4 as reorder;
    use std::net::SocketAddr;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|ip| SocketAddr::new(ip.parse().unwrap(), 80))
            .collect()
    }

    /// Trio's `test_reorder_for_rfc_6555_section_5_4` table.
    #[test]
    fn the_first_address_of_the_other_family_moves_to_second_place() {
        for list in [
            &["10.0.0.0", "10.0.0.1", "10.0.0.2"][..],
            &["::0", "::1", "::2"],
            &["10.0.0.0"],
            &[],
            // Different families in places 0 and 1 already: left alone.
            &["10.0.0.0", "::0", "10.0.0.1", "::1"],
        ] {
            let mut targets = addrs(list);
            reorder(&mut targets);
            assert_eq!(targets, addrs(list));
        }
        let mut targets = addrs(&["10.0.0.0", "10.0.0.1", "10.0.0.2", "::0", "::1"]);
        reorder(&mut targets);
        assert_eq!(
            targets,
            addrs(&["10.0.0.0", "::0", "10.0.0.1", "10.0.0.2", "::1"])
        );
    }
}
