//! High-level networking, Trio's `trio.open_tcp_stream`, `trio.serve_tcp`
//! and friends, built on [`trio::socket`](crate::socket) and the
//! [`stream`](crate::stream) traits (DESIGN §9).
//!
//! - [`resolve`]: name resolution that never blocks the run loop.

pub mod resolve;

pub use resolve::getaddrinfo;
