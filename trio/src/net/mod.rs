//! High-level networking, Trio's `trio.open_tcp_stream`, `trio.serve_tcp`
//! and friends, built on [`trio::socket`](crate::socket) and the
//! [`stream`](crate::stream) traits (DESIGN §9).
//!
//! - [`resolve`]: name resolution that never blocks the run loop, and the
//!   per-run [`HostnameResolver`].
//! - [`factory`]: the per-run [`SocketFactory`] that opens each connection
//!   attempt.
//! - [`tcp`]: [`open_tcp_stream`] with Happy Eyeballs, and
//!   [`open_unix_stream`].
//! - [`listeners`]: [`open_tcp_listeners`], [`open_unix_listener`].
//! - [`serve`]: [`serve_listeners`], [`serve_tcp`] and their graceful stop.

#[cfg(unix)]
pub mod factory;
#[cfg(unix)]
pub mod listeners;
pub mod resolve;
#[cfg(unix)]
pub mod serve;
#[cfg(unix)]
pub mod tcp;

#[cfg(unix)]
pub use factory::{SocketFactory, SystemSocketFactory, current_socket_factory, set_socket_factory};
#[cfg(unix)]
pub use listeners::{TcpListenOptions, open_tcp_listeners, open_unix_listener};
pub use resolve::{
    DEFAULT_RESOLVER_LIMIT, HostnameResolver, LookupError, ThreadResolver,
    current_hostname_resolver, current_resolver_limiter, getaddrinfo, set_hostname_resolver,
};
#[cfg(unix)]
pub use serve::{
    OnHandlerError, Serve, ServeControl, ServeEvent, ServeSource, TcpSource, serve_listeners,
    serve_tcp,
};
#[cfg(unix)]
pub use tcp::{
    ConnectAttemptsFailed, DEFAULT_HAPPY_EYEBALLS_DELAY, TcpConnect, open_tcp_stream,
    open_unix_stream,
};
