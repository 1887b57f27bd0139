//! Name resolution that never blocks the run loop (DESIGN §9).
//!
//! [`getaddrinfo`] answers in one of three ways:
//!
//! 1. **A literal address** (`"127.0.0.1"`, `"::1"`, `"[::1]"`) is parsed in
//!    place: no thread, no resolver, no limiter token.
//! 2. **The run's custom resolver**, if one was installed with
//!    [`set_hostname_resolver`] (Trio's
//!    `trio.socket.set_custom_hostname_resolver`): tests script DNS answers
//!    with one, and an asynchronous DNS client plugs in here.
//! 3. **The system resolver** otherwise: [`ThreadResolver::system`], the C
//!    library's `getaddrinfo` (through std) in a worker thread. Each lookup
//!    holds a token of the run's resolver limiter
//!    ([`current_resolver_limiter`]) until its thread has really finished,
//!    and a cancelled lookup returns `Cancelled` at once: the thread runs on
//!    unsupervised and its late answer is dropped (`abandon_on_cancel`),
//!    since a DNS query cannot be interrupted.
//!
//! Invariants:
//! - The resolver is an `Rc` cloned out of its run variable before it is
//!   called, so a resolver may itself read or replace the run's resolver.
//! - Whichever way it answers, [`getaddrinfo`] is a checkpoint: it checks
//!   for cancellation before asking, and yields (shielded) after a literal
//!   or custom answer, as DESIGN §6 orders.
//! - A name that does not resolve is an [`ErrorKind::Io`] error wrapping a
//!   [`LookupError`], which names the host and keeps the OS error as its
//!   source.

use crate::error::{Error, ErrorKind, Result};
use crate::lowlevel::RunVar;
use crate::stream::BoxFuture;
use crate::sync::CapacityLimiter;
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled, to_thread};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;

/// How many system lookups may run at once in one run (the tokens of
/// [`current_resolver_limiter`]). A lookup mostly waits on a DNS server, so
/// a few threads serve the lookups a program makes at once; the bound is
/// what a stalled DNS server can tie up (each lookup then hangs for the C
/// library's timeout, 5 s per try by default), and it leaves the default
/// thread limiter's 40 tokens to other blocking work.
pub const DEFAULT_RESOLVER_LIMIT: usize = 10;

static RESOLVER_LIMITER: RunVar<Option<CapacityLimiter>> =
    RunVar::with_default("trio::net resolver limiter", || None);

static CUSTOM_RESOLVER: RunVar<Option<Rc<dyn HostnameResolver>>> =
    RunVar::with_default("trio::net custom hostname resolver", || None);

/// Turns a host name into addresses: what [`getaddrinfo`] asks for any name
/// that is not a literal address (Trio's `trio.abc.HostnameResolver`).
///
/// Install one for the current run with [`set_hostname_resolver`]. The
/// returned addresses must carry `port`; their order is the order in which
/// [`open_tcp_stream`](crate::net::open_tcp_stream) tries them.
///
/// ```
/// use std::net::SocketAddr;
/// use std::rc::Rc;
/// use trio::net::HostnameResolver;
/// use trio::stream::BoxFuture;
///
/// /// Every name is the loopback address.
/// struct AllLoopback;
///
/// impl HostnameResolver for AllLoopback {
///     fn getaddrinfo<'a>(
///         &'a self,
///         _host: &'a str,
///         port: u16,
///     ) -> BoxFuture<'a, trio::Result<Vec<SocketAddr>>> {
///         Box::pin(async move { Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]) })
///     }
/// }
///
/// trio::run(async {
///     trio::net::set_hostname_resolver(Some(Rc::new(AllLoopback)))?;
///     let addrs = trio::net::getaddrinfo("example.com", 80).await?;
///     assert_eq!(addrs, ["127.0.0.1:80".parse().unwrap()]);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub trait HostnameResolver {
    /// The addresses of `host` with `port`, in order of preference.
    fn getaddrinfo<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<Vec<SocketAddr>>>;
}

/// Trait objects show as their trait's name (implementations need not
/// be `Debug`), so results holding them can be unwrapped and printed.
impl fmt::Debug for dyn HostnameResolver + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn HostnameResolver")
    }
}

/// Installs `resolver` as the current run's hostname resolver (`None`: the
/// system resolver again) and returns the previous custom one. Literal
/// addresses never reach it. Errors outside a run.
pub fn set_hostname_resolver(
    resolver: Option<Rc<dyn HostnameResolver>>,
) -> Result<Option<Rc<dyn HostnameResolver>>> {
    Ok(CUSTOM_RESOLVER.set(resolver)?.flatten())
}

/// The current run's custom hostname resolver, if one is installed.
/// Errors outside a run.
pub fn current_hostname_resolver() -> Result<Option<Rc<dyn HostnameResolver>>> {
    CUSTOM_RESOLVER.get()
}

/// The limiter that system lookups run under in this run
/// ([`DEFAULT_RESOLVER_LIMIT`] tokens unless changed with
/// [`CapacityLimiter::set_total_tokens`]). Errors outside a run.
///
/// ```
/// trio::run(async {
///     let limiter = trio::net::current_resolver_limiter()?;
///     assert_eq!(limiter.total_tokens(), trio::net::DEFAULT_RESOLVER_LIMIT);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub fn current_resolver_limiter() -> Result<CapacityLimiter> {
    if let Some(l) = RESOLVER_LIMITER.get()? {
        return Ok(l);
    }
    let l = CapacityLimiter::new(DEFAULT_RESOLVER_LIMIT)?;
    RESOLVER_LIMITER.set(Some(l.clone()))?;
    Ok(l)
}

/// Resolves `host` and `port` to socket addresses, in the resolver's order
/// (the steps in the [module docs](self)).
///
/// A checkpoint. Literal IPv4 and IPv6 addresses (an IPv6 one with or
/// without brackets) are answered without a thread or resolver. A name
/// that does not resolve is an [`ErrorKind::Io`] error wrapping a
/// [`LookupError`].
///
/// ```
/// trio::run(async {
///     let addrs = trio::net::getaddrinfo("127.0.0.1", 80).await?;
///     assert_eq!(addrs, ["127.0.0.1:80".parse().unwrap()]);
///     let addrs = trio::net::getaddrinfo("[::1]", 443).await?;
///     assert_eq!(addrs, ["[::1]:443".parse().unwrap()]);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn getaddrinfo(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    checkpoint_if_cancelled().await?;
    // 1. A literal address.
    if let Some(ip) = parse_literal(host) {
        cancel_shielded_checkpoint().await?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // 2. The run's custom resolver.
    if let Some(custom) = current_hostname_resolver()? {
        let found = custom.getaddrinfo(host, port).await;
        // Dropped before the yield: the resolver is the user's object.
        drop(custom);
        cancel_shielded_checkpoint().await?;
        return found;
    }
    // 3. The system resolver (itself a checkpoint: a worker thread).
    ThreadResolver::system().getaddrinfo(host, port).await
}

/// `host` as an IP address, if it is a literal one (an IPv6 address may be
/// bracketed, as in URLs).
fn parse_literal(host: &str) -> Option<IpAddr> {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    unbracketed.parse().ok()
}

/// A blocking lookup function, as [`ThreadResolver`] runs it.
type BlockingLookup = dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync;

/// A [`HostnameResolver`] that runs a blocking lookup function in a worker
/// thread under the run's resolver limiter ([`current_resolver_limiter`]),
/// abandoning the thread when the lookup is cancelled (the call returns
/// `Cancelled` at once, the late answer is dropped).
///
/// [`ThreadResolver::system`] is the resolver [`getaddrinfo`] uses when no
/// custom one is installed; [`ThreadResolver::new`] wraps any other
/// blocking resolver the same way.
///
/// ```
/// use std::rc::Rc;
/// use trio::net::ThreadResolver;
///
/// trio::run(async {
///     // A blocking "hosts file" lookup, run in a worker thread.
///     let hosts = ThreadResolver::new(|host, port| match host {
///         "db.internal" => Ok(vec![([10, 0, 0, 7], port).into()]),
///         _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host")),
///     });
///     trio::net::set_hostname_resolver(Some(Rc::new(hosts)))?;
///     let addrs = trio::net::getaddrinfo("db.internal", 5432).await?;
///     assert_eq!(addrs, ["10.0.0.7:5432".parse().unwrap()]);
///     let err = trio::net::getaddrinfo("nope.internal", 1).await.unwrap_err();
///     assert_eq!(err.kind(), trio::ErrorKind::Io);
///     assert_eq!(err.to_string(), "cannot resolve host \"nope.internal\": unknown host");
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct ThreadResolver {
    lookup: Arc<BlockingLookup>,
}

impl ThreadResolver {
    /// The system resolver: the C library's `getaddrinfo` (stream sockets,
    /// any family) through [`std::net::ToSocketAddrs`].
    pub fn system() -> ThreadResolver {
        ThreadResolver::new(|host, port| (host, port).to_socket_addrs().map(Vec::from_iter))
    }

    /// A resolver that runs `lookup(host, port)` in a worker thread.
    pub fn new(
        lookup: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> ThreadResolver {
        ThreadResolver {
            lookup: Arc::new(lookup),
        }
    }
}

impl fmt::Debug for ThreadResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadResolver").finish_non_exhaustive()
    }
}

impl HostnameResolver for ThreadResolver {
    fn getaddrinfo<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            let lookup = Arc::clone(&self.lookup);
            let owned = host.to_owned();
            let found = to_thread::Builder::new()
                .limiter(current_resolver_limiter()?)
                .abandon_on_cancel(true)
                .run_sync(move || lookup(&owned, port))
                .await?;
            found.map_err(|source| {
                Error::with_kind(
                    ErrorKind::Io,
                    LookupError {
                        host: host.to_owned(),
                        port,
                        source,
                    },
                )
            })
        })
    }
}

/// A host name that did not resolve: the name, the port asked for, and the
/// resolver's error as the [source](std::error::Error::source). Wrapped in
/// an [`ErrorKind::Io`] error; reach it with
/// [`Error::downcast_ref`](crate::Error::downcast_ref).
///
/// ```no_run
/// # trio::run(async {
/// let err = trio::net::getaddrinfo("no-such-host.invalid", 80).await.unwrap_err();
/// let lookup = err.downcast_ref::<trio::net::LookupError>().unwrap();
/// assert_eq!(lookup.host(), "no-such-host.invalid");
/// println!("{err}"); // cannot resolve host "no-such-host.invalid": failed to lookup address information: ...
/// # Ok(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct LookupError {
    host: String,
    port: u16,
    source: io::Error,
}

impl LookupError {
    /// The name that did not resolve.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port the lookup was for.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The resolver's error (for the system resolver, the C library's
    /// message, as std reports it).
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot resolve host {:?}: {}", self.host, self.source)
    }
}

impl std::error::Error for LookupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_literal;

    #[test]
    fn literals_with_and_without_brackets() {
        assert_eq!(parse_literal("127.0.0.1"), Some([127, 0, 0, 1].into()));
        assert_eq!(parse_literal("::1"), "::1".parse().ok());
        assert_eq!(parse_literal("[::1]"), "::1".parse().ok());
        for name in [
            "localhost",
            "[127.0.0.1",
            "::1]",
            "[localhost]",
            "",
            "1.2.3",
        ] {
            assert_eq!(parse_literal(name), None, "{name}");
        }
    }
}
