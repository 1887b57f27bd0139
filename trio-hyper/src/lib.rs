//! # trio-hyper — hyper 1.x on trio
//!
//! hyper is runtime-agnostic through its `rt` traits; this crate gives it
//! trio's (DESIGN §13):
//!
//! - [`NurseryExecutor`]: hyper's background futures (HTTP/2 streams, a
//!   client's connection) as children of a nursery: no `Send`, no
//!   `'static`, never a panic.
//! - [`TrioTimer`]: hyper's timer on the run's clock (a
//!   [`MockClock`](trio::testing::MockClock) included); its sleeps are
//!   `Send + Sync` and not cancel points.
//! - I/O: [`trio_compat::Io`] (`hyper::rt::{Read, Write}` over any trio
//!   stream, a cancel point on every poll).
//! - [`Http::serve_connection`] / [`serve_http`]: HTTP/1.1 and HTTP/2
//!   servers ([`Protocol`]: h2c with prior knowledge, h2 over TLS after
//!   ALPN) over [`trio::serve_tcp`] (or `trio_tls::serve_tls_over_tcp`),
//!   with graceful shutdown through a
//!   [`ServeControl`](trio::net::ServeControl) (wire it to Ctrl-C).
//! - [`http1_handshake`] ([`http1_handshake_native`] over a socket) /
//!   [`http2_handshake`]: a client connection with
//!   its driver as a child task; [`get`] / [`get_tls`] for "GET this URL"
//!   (over TLS: HTTP/2 or HTTP/1.1, as ALPN chooses).
//!
//! New here? Read the [`tutorial`] chapter.
//!
//! ```
//! use hyper::{Request, Response, body::Incoming, service::service_fn};
//! use trio_hyper::{Http, get, serve_http};
//!
//! trio::run(async {
//!     let hello = service_fn(async |_req: Request<Incoming>| {
//!         Ok::<_, std::convert::Infallible>(Response::new("hello\n".to_string()))
//!     });
//!     trio::open_nursery(async |nursery| {
//!         let listeners = nursery
//!             .start(|status| serve_http(Http::new(), &hello, 0).host("127.0.0.1").task_status(status))
//!             .await?;
//!         let port = listeners[0].local_addr()?.as_socket().unwrap().port();
//!         let resp = get(&format!("http://127.0.0.1:{port}/")).await?;
//!         assert_eq!(resp.body(), b"hello\n");
//!         nursery.cancel_scope().cancel();
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # Cancellation
//!
//! A scope *inside* a service is the service's own (it answers, the
//! connection goes on); a scope *around* a connection ends it through its
//! I/O. See [`server`](crate::server#cancellation-design-13).
//!
//! # Performance
//!
//! `cargo bench -p trio-hyper --bench hello` compares hyper on trio with
//! hyper on tokio `current_thread` under `wrk` (requests/s and the
//! server's CPU time per request); see that file for the method and the
//! figures. In short: **trio's server spends more CPU per request than
//! tokio's** (about 1.2–1.3× in wall-clock CPU on these shared machines;
//! 15.6k vs 8.6k user-space instructions per request under callgrind,
//! with the same one `recvfrom` and one `sendto` per request). The extra
//! is in two places: the generic I/O adapter ([`trio_compat::Io`]: a boxed
//! operation per receive and per send, and a cancel check on every poll,
//! about 4.8k instructions per request; native socket polling needs a
//! poll-based readiness wait in trio's reactor) and [`TrioTimer`] (hyper
//! arms its header-read timeout on every request: about 2.7k instructions
//! vs tokio's 0.65k, mostly cloning and dropping the task's waker, which
//! allocates for a trio waker that outlives its poll).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod executor;
pub mod server;
pub mod timer;
pub mod tutorial;

pub use client::{
    get, get_tls, http1_handshake, http1_handshake_native, http2_handshake, read_body,
};
pub use executor::NurseryExecutor;
pub use server::{Http, Protocol, from_hyper, serve_http};
pub use timer::{TrioSleep, TrioTimer};
