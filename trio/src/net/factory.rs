//! The per-run socket factory: how [`open_tcp_stream`](crate::net::open_tcp_stream)
//! opens and connects one attempt (Trio's `trio.socket.set_custom_socket_factory`).
//!
//! A factory turns one target address (and an optional local address) into
//! a connected [`SocketStream`]. The default, [`SystemSocketFactory`],
//! creates a socket, binds it to the local address if one is given, and
//! connects it. Tests install their own with [`set_socket_factory`] to script
//! connect outcomes and times on the MockClock: "connecting to X takes
//! 0.3 s, then succeeds" is `trio::sleep(0.3)` followed by returning one end
//! of [`SocketStream::unix_pair`], whose other end shows whether the caller
//! closed it.
//!
//! Invariants:
//! - Whatever a factory's future owns is dropped if the future is dropped
//!   or cancelled, so a cancelled attempt leaves no socket open (a
//!   [`SocketStream`] or [`Socket`] closes when dropped).
//! - The factory is an `Rc` cloned out of its run variable before it is
//!   called, so a factory may itself read or replace the run's factory.

use crate::error::{Error, Result};
use crate::lowlevel::RunVar;
use crate::socket::{Socket, SocketStream};
use crate::stream::BoxFuture;
use socket2::{Domain, Type};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

static CUSTOM_FACTORY: RunVar<Option<Rc<dyn SocketFactory>>> =
    RunVar::with_default("trio::net custom socket factory", || None);

/// Opens and connects one TCP connection attempt for
/// [`open_tcp_stream`](crate::net::open_tcp_stream).
///
/// `local`, when given, is the local IP address to connect from; it has the
/// same family as `addr` (the caller checks). The returned future must be a
/// checkpoint, and dropping it must close whatever it opened.
///
/// ```
/// use std::net::{IpAddr, SocketAddr};
/// use std::rc::Rc;
/// use trio::net::{SocketFactory, SystemSocketFactory};
/// use trio::socket::SocketStream;
/// use trio::stream::BoxFuture;
///
/// /// The system factory, slowed down: every connect takes one more second.
/// struct Slow;
///
/// impl SocketFactory for Slow {
///     fn connect(
///         &self,
///         addr: SocketAddr,
///         local: Option<IpAddr>,
///     ) -> BoxFuture<'_, trio::Result<SocketStream>> {
///         Box::pin(async move {
///             trio::sleep(1.0).await?;
///             SystemSocketFactory.connect(addr, local).await
///         })
///     }
/// }
///
/// # #[cfg(unix)]
/// trio::Runner::new().clock(trio::testing::MockClock::autojump()).run(async {
///     let listener = trio::socket::SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
///     let port = listener.local_addr()?.as_socket().unwrap().port();
///     trio::net::set_socket_factory(Some(Rc::new(Slow)))?;
///     let _stream = trio::open_tcp_stream("127.0.0.1", port).await?;
///     assert_eq!(trio::current_time().as_secs_f64(), 1.0);
///     Ok(())
/// })
/// .unwrap();
/// ```
pub trait SocketFactory {
    /// Connects a new stream socket to `addr`, from `local` if given.
    fn connect(
        &self,
        addr: SocketAddr,
        local: Option<IpAddr>,
    ) -> BoxFuture<'_, Result<SocketStream>>;
}

/// Trait objects show as their trait's name (implementations need not
/// be `Debug`), so results holding them can be unwrapped and printed.
impl fmt::Debug for dyn SocketFactory + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn SocketFactory")
    }
}

/// Installs `factory` as the current run's socket factory (`None`: the
/// [`SystemSocketFactory`] again) and returns the previous custom one.
/// Errors outside a run.
pub fn set_socket_factory(
    factory: Option<Rc<dyn SocketFactory>>,
) -> Result<Option<Rc<dyn SocketFactory>>> {
    Ok(CUSTOM_FACTORY.set(factory)?.flatten())
}

/// The current run's socket factory: the custom one if installed, else the
/// [`SystemSocketFactory`]. Errors outside a run.
pub fn current_socket_factory() -> Result<Rc<dyn SocketFactory>> {
    Ok(CUSTOM_FACTORY
        .get()?
        .unwrap_or_else(|| Rc::new(SystemSocketFactory)))
}

/// The default [`SocketFactory`]: a new TCP socket of the address's family,
/// bound to `local` (port 0) if given, then connected.
///
/// Before that bind it sets `IP_BIND_ADDRESS_NO_PORT` where the OS has it
/// (Linux), as Trio does, so that the port is chosen at connect time and
/// can be shared with connections to other peers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemSocketFactory;

impl SocketFactory for SystemSocketFactory {
    fn connect(
        &self,
        addr: SocketAddr,
        local: Option<IpAddr>,
    ) -> BoxFuture<'_, Result<SocketStream>> {
        Box::pin(async move {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            if let Some(ip) = local {
                // Best effort: without it the bind picks the port.
                let _ = crate::sys::set_bind_address_no_port(socket.as_socket2());
                socket.bind(&SocketAddr::new(ip, 0).into()).map_err(|e| {
                    Error::new(
                        e.kind(),
                        format!("cannot bind to local address {ip} to connect to {addr}: {e}"),
                    )
                })?;
            }
            // A cancelled or failed connect closes the socket (it is moved in).
            SocketStream::new(socket.connect(&addr.into()).await?)
        })
    }
}
