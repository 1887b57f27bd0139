//! TLS for [trio] streams, on [rustls]: Trio's `SSLStream` semantics
//! over any trio [`Stream`](trio::stream::Stream) (DESIGN §9, §13: bridge
//! crates live in their own workspace crate, so rustls stays out of
//! `trio`'s API and `cargo test -p trio` does not build it).
//!
//! - [`TlsStream`]: a TLS client or server over any stream (TCP, Unix,
//!   memory, another TLS stream), itself a [`Stream`](trio::stream::Stream)
//!   that passes trio's conformance checks.
//! - [`TlsListener`]: wraps any [`Listener`](trio::stream::Listener); the
//!   handshake of an accepted connection runs lazily in the connection's
//!   own task, with an optional timeout.
//! - [`open_tls_over_tcp_stream`] and [`serve_tls_over_tcp`]: the TCP
//!   helpers (Trio's `open_ssl_over_tcp_stream` and `serve_ssl_over_tcp`).
//!
//! # Configuration
//!
//! Configs are plain rustls configs. This crate builds rustls with only the
//! `ring` provider (no C crypto library to compile); build configs with
//! `builder_with_provider` and [`rustls::crypto::ring::default_provider`],
//! since rustls panics at run time when no provider is chosen and two are
//! compiled in (another crate of the program may enable aws-lc-rs).
//! `rustls` is re-exported, so versions agree.
//!
//! ```
//! use std::sync::Arc;
//! use trio_tls::rustls;
//!
//! fn client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
//!     let provider = Arc::new(rustls::crypto::ring::default_provider());
//!     let mut config = rustls::ClientConfig::builder_with_provider(provider)
//!         .with_safe_default_protocol_versions()
//!         .expect("ring supports the default versions")
//!         .with_root_certificates(roots)
//!         .with_no_client_auth();
//!     config.alpn_protocols = vec![b"http/1.1".to_vec()];
//!     Arc::new(config)
//! }
//! # let _ = client_config(rustls::RootCertStore::empty());
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod listener;
mod stream;

pub use listener::{
    ServeTls, TlsListener, TlsServe, TlsTcpListener, open_tls_over_tcp_stream, serve_tls_over_tcp,
};
pub use rustls;
#[doc(hidden)]
pub use stream::BufferCapacities;
pub use stream::TlsStream;
