//! High-level networking, Trio's `trio.open_tcp_stream`, `trio.serve_tcp`
//! and friends, built on [`trio::socket`](crate::socket) and the
//! [`stream`](crate::stream) traits (DESIGN §9).
//!
//! - [`resolve`]: name resolution that never blocks the run loop.
//! - [`listeners`]: `open_tcp_listeners`, `open_unix_listener`.
//! - [`serve`]: `serve_listeners`, `serve_tcp` and their graceful stop.

#[cfg(unix)]
pub mod listeners;
pub mod resolve;
#[cfg(unix)]
pub mod serve;

#[cfg(unix)]
pub use listeners::{TcpListenOptions, open_tcp_listeners, open_unix_listener};
pub use resolve::getaddrinfo;
#[cfg(unix)]
pub use serve::{
    OnHandlerError, Serve, ServeControl, ServeEvent, ServeSource, TcpSource, serve_listeners,
    serve_tcp,
};
