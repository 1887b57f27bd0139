//! Opening listeners: [`open_tcp_listeners`] (one [`SocketListener`] per
//! passive address), its builder [`TcpListenOptions`], and
//! [`open_unix_listener`] (DESIGN §9, Trio's
//! `_highlevel_open_tcp_listeners.py`, Trio #279 and #281).
//!
//! # What every TCP listener gets
//!
//! 1. One socket per address: no host means both wildcards, `::` and
//!    `0.0.0.0`; a host is resolved with [`getaddrinfo`] (a literal address
//!    needs no thread) and every distinct address gets its own listener.
//! 2. `SO_REUSEADDR` (so a restarted server can bind while old connections
//!    linger in `TIME_WAIT`; Trio #39), and `IPV6_V6ONLY` on IPv6 sockets,
//!    so that `::` and `0.0.0.0` are two independent listeners on every
//!    OS instead of one dual-stack socket on some.
//! 3. `SO_REUSEPORT` if asked for ([`TcpListenOptions::reuse_port`]), then
//!    the user's configuration hook, if any ([`TcpListenOptions::configure`]),
//!    both *before* `bind`: such options only work there.
//! 4. `bind`, then `listen` with the largest backlog: `0xFFFF` unless asked
//!    for less. The kernel silently truncates a backlog to its configured
//!    maximum (`net.core.somaxconn` on Linux), so asking for "infinity" gets
//!    that maximum; `0xFFFF` and not more because several kernels store the
//!    backlog in 16 bits without overflow checks (Trio's `_compute_backlog`,
//!    Go issue 5030).
//!
//! A family the OS lacks (`socket` fails with `EAFNOSUPPORT`) is skipped
//! as long as another address worked. Any other failure closes the
//! listeners opened so far and returns the error: the call opens all of
//! them or none.
//!
//! Port 0 lets the kernel pick a free port *for each listener*, as in Trio:
//! with several addresses (no host, or a name with both an IPv4 and an IPv6
//! address) the listeners usually get different ports; read each one's
//! [`local_addr`](SocketListener::local_addr).

use super::resolve::getaddrinfo;
use crate::error::{Error, ErrorKind, Result};
use crate::socket::{Domain, Protocol, SockAddr, Socket, SocketListener, Type};
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::rc::Rc;

/// The backlog `listen` is given by default: the kernel truncates it to its
/// maximum (see the [module docs](self) for why not more).
pub(crate) const MAX_BACKLOG: u32 = 0xFFFF;

/// A hook that configures a listening socket before `bind`.
type ConfigureHook = Rc<dyn Fn(&socket2::Socket) -> io::Result<()>>;

/// Options for opening TCP listeners: a builder whose
/// [`open`](Self::open) does what [`open_tcp_listeners`] does, with a host,
/// a backlog and a socket-configuration hook.
///
/// ```
/// use trio::net::TcpListenOptions;
///
/// trio::run(async {
///     let listeners = TcpListenOptions::new()
///         .host("127.0.0.1")
///         .backlog(128)
///         // Runs before bind: SO_REUSEPORT lets several runs (one per
///         // core) listen on the same port.
///         .configure(|socket| socket.set_reuse_port(true))
///         .open(0)
///         .await?;
///     assert_eq!(listeners.len(), 1);
///     assert!(listeners[0].socket()?.as_socket2().reuse_port()?);
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Default)]
pub struct TcpListenOptions {
    host: Option<String>,
    backlog: Option<u32>,
    reuse_port: bool,
    configure: Option<ConfigureHook>,
}

impl fmt::Debug for TcpListenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListenOptions")
            .field("host", &self.host)
            .field("backlog", &self.backlog)
            .field("reuse_port", &self.reuse_port)
            .field("configure", &self.configure.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl TcpListenOptions {
    /// No host (both wildcards), the largest backlog, no hook.
    pub fn new() -> Self {
        Self::default()
    }

    /// The local address or name to listen on (`"127.0.0.1"`, `"::1"`,
    /// `"localhost"`); one listener per address it resolves to. Without
    /// it, both wildcards `::` and `0.0.0.0`; for one family only, pass its
    /// wildcard.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Like [`host`](Self::host), from an `Option` (`None`: both wildcards).
    pub fn host_opt(mut self, host: Option<&str>) -> Self {
        self.host = host.map(str::to_owned);
        self
    }

    /// The `listen` backlog, capped at `0xFFFF`. By default the largest the
    /// system allows.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = Some(backlog);
        self
    }

    /// Sets `SO_REUSEPORT` on each listener before `bind` (off by
    /// default), so that several listeners — one per run of a
    /// [`PerCore`](crate::PerCore), say — can bind the *same* address and
    /// port, and the kernel spreads incoming connections among them (on
    /// Linux by a hash of the connection's addresses; every listener must
    /// set it, and be opened by the same user). With port 0 each listener
    /// still gets a port of its own: share a fixed port, or one the first
    /// listener got (see `examples/echo_all_cores.rs`). On an OS without
    /// `SO_REUSEPORT`, opening fails with an I/O error of kind
    /// `Unsupported` (trio's own, before any system call).
    ///
    /// ```
    /// use trio::net::TcpListenOptions;
    ///
    /// trio::run(async {
    ///     let options = TcpListenOptions::new().host("127.0.0.1").reuse_port(true);
    ///     let first = options.open(0).await?;
    ///     let port = first[0].local_addr()?.as_socket().unwrap().port();
    ///     let second = options.open(port).await?; // the same port again
    ///     assert_eq!(second[0].local_addr()?.as_socket().unwrap().port(), port);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// A hook called with each new socket after trio's own options are set
    /// and before `bind` (Trio #281): the place for buffer sizes,
    /// `IP_FREEBIND` and the like (`SO_REUSEPORT` has
    /// [`reuse_port`](Self::reuse_port)). An error from it closes every
    /// listener opened so far and is returned (as an
    /// [`ErrorKind::Io`] error).
    pub fn configure(
        mut self,
        hook: impl Fn(&socket2::Socket) -> io::Result<()> + 'static,
    ) -> Self {
        self.configure = Some(Rc::new(hook));
        self
    }

    /// Opens the listeners on `port` (0: the kernel picks one per
    /// listener). A checkpoint.
    pub async fn open(&self, port: u16) -> Result<Vec<SocketListener>> {
        let addrs = match &self.host {
            // `getaddrinfo` checkpoints on its own.
            Some(host) => getaddrinfo(host, port).await?,
            None => {
                checkpoint_if_cancelled().await?;
                let addrs = vec![
                    SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
                    SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
                ];
                cancel_shielded_checkpoint().await?;
                addrs
            }
        };
        self.open_addrs(&addrs, |domain| {
            Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
        })
    }

    /// Opens a listener on each distinct address in `addrs`, with sockets
    /// from `new_socket` (a seam: the unit tests make one family fail).
    fn open_addrs(
        &self,
        addrs: &[SocketAddr],
        new_socket: impl Fn(Domain) -> Result<Socket>,
    ) -> Result<Vec<SocketListener>> {
        let backlog = self.backlog.unwrap_or(MAX_BACKLOG).min(MAX_BACKLOG) as i32;
        let mut listeners = Vec::new();
        let mut unsupported = Vec::new();
        let mut seen = Vec::new();
        for &addr in addrs {
            if seen.contains(&addr) {
                continue;
            }
            seen.push(addr);
            let socket = match new_socket(Domain::for_address(addr)) {
                Ok(s) => s,
                Err(e) if raw_os_error(&e) == Some(libc::EAFNOSUPPORT) => {
                    unsupported.push(e);
                    continue;
                }
                // Dropping `listeners` closes those opened so far.
                Err(e) => return Err(e),
            };
            listeners.push(self.listen_on(socket, addr, backlog)?);
        }
        if listeners.is_empty() {
            return Err(match Error::group(unsupported) {
                Some(e) => Error::with_kind(
                    ErrorKind::Io,
                    io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!(
                            "this system supports none of the address families of {addrs:?}: {e}"
                        ),
                    ),
                ),
                None => Error::invalid("no address to listen on"),
            });
        }
        Ok(listeners)
    }

    /// Steps 2–4 of the module docs on one socket (closed on failure: it
    /// is dropped).
    fn listen_on(&self, socket: Socket, addr: SocketAddr, backlog: i32) -> Result<SocketListener> {
        let s = socket.as_socket2();
        #[cfg(not(windows))]
        s.set_reuse_address(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        if self.reuse_port {
            set_reuse_port(s)?;
        }
        if let Some(hook) = &self.configure {
            hook(s)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        SocketListener::new(socket)
    }
}

/// `SO_REUSEPORT`, where socket2 has it (every Unix but Solaris and
/// illumos); elsewhere an `Unsupported` error.
#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
fn set_reuse_port(s: &socket2::Socket) -> io::Result<()> {
    s.set_reuse_port(true)
}

#[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
fn set_reuse_port(_: &socket2::Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this OS",
    ))
}

/// The OS error number inside a trio error, if it wraps one.
pub(crate) fn raw_os_error(e: &Error) -> Option<i32> {
    e.find::<io::Error>().and_then(io::Error::raw_os_error)
}

/// Opens TCP listeners on `port`: one [`SocketListener`] per address of
/// `host`, or on both wildcards (`::` and `0.0.0.0`) when `host` is `None`
/// (Trio's `open_tcp_listeners`). What each listener gets, and how port 0
/// and missing address families are handled, is in the
/// [module docs](crate::net::listeners). For a backlog or a
/// hook that sets socket options before `bind`, use [`TcpListenOptions`].
///
/// A checkpoint.
///
/// ```
/// use trio::socket::SocketStream;
/// use trio::stream::{Listener, ReceiveStream, SendStream};
///
/// trio::run(async {
///     let listeners = trio::open_tcp_listeners(0, Some("127.0.0.1")).await?;
///     let addr = listeners[0].local_addr()?.as_socket().unwrap();
///     let client = SocketStream::connect_tcp(addr).await?;
///     let server = listeners[0].accept().await?;
///     client.send_all(b"hi").await?;
///     let mut buf = [0; 2];
///     assert_eq!(server.receive_some(&mut buf).await?, 2);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn open_tcp_listeners(port: u16, host: Option<&str>) -> Result<Vec<SocketListener>> {
    TcpListenOptions::new().host_opt(host).open(port).await
}

/// Opens a listener on a Unix socket at `path`, with the largest backlog
/// (Trio #279). The path must not exist (`AddrInUse` otherwise: a stale
/// socket file is the caller's to remove, since removing it blindly could
/// steal another server's address). Not a checkpoint: nothing blocks.
///
/// ```
/// use trio::socket::SocketStream;
/// use trio::stream::Listener;
///
/// trio::run(async {
///     let path = std::env::temp_dir().join(format!("trio-doc-{}.sock", std::process::id()));
///     let listener = trio::open_unix_listener(&path)?;
///     let _client = SocketStream::connect_unix(&path).await?;
///     let _server = listener.accept().await?;
///     std::fs::remove_file(&path)?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn open_unix_listener(path: impl AsRef<Path>) -> Result<SocketListener> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(MAX_BACKLOG as i32)?;
    SocketListener::new(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eafnosupport() -> Error {
        io::Error::from_raw_os_error(libc::EAFNOSUPPORT).into()
    }

    fn wildcards() -> [SocketAddr; 2] {
        [
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0),
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
        ]
    }

    /// An OS without IPv6: the IPv4 listener is enough.
    #[test]
    fn a_missing_family_is_skipped_when_another_works() {
        let listeners = TcpListenOptions::new()
            .open_addrs(&wildcards(), |domain| {
                if domain == Domain::IPV6 {
                    Err(eafnosupport())
                } else {
                    Socket::new(domain, Type::STREAM, None)
                }
            })
            .unwrap();
        assert_eq!(listeners.len(), 1);
        let addr = listeners[0].local_addr().unwrap().as_socket().unwrap();
        assert!(addr.is_ipv4());
    }

    #[test]
    fn no_supported_family_is_an_io_error() {
        let err = TcpListenOptions::new()
            .open_addrs(&wildcards(), |_| Err(eafnosupport()))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.to_string().contains("supports none"), "{err}");
    }

    /// Any other failure is returned, not skipped.
    #[test]
    fn other_socket_errors_are_returned() {
        let err = TcpListenOptions::new()
            .open_addrs(&wildcards(), |domain| {
                if domain == Domain::IPV4 {
                    Err(io::Error::from_raw_os_error(libc::EMFILE).into())
                } else {
                    Socket::new(domain, Type::STREAM, None)
                }
            })
            .unwrap_err();
        assert_eq!(raw_os_error(&err), Some(libc::EMFILE));
    }
}
