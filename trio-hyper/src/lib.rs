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
//! `cargo bench -p trio-hyper --bench hello -- --rounds 7 --secs 5`
//! compares hyper on trio with hyper on tokio `current_thread` under
//! `wrk -t1 -c64` (requests/s, the server's CPU time per request, and the
//! per-round ratio trio/tokio of the latter); see that file for the
//! method and the figures. In short: **trio's server still spends more
//! CPU per request than tokio's**, the goal (≤ tokio) is not met.
//!
//! Instructions per request (valgrind callgrind, user space, on the bench
//! binary's `--serve trio|tokio` under the same wrk load: counters zeroed
//! after a 5 s warm-up, dumped after 10 s, divided by wrk's request
//! count; two runs each, which differ by about 1.5%): tokio 8 550 and
//! 8 683; trio 15 625 with the boxed adapter ([`Io::new`], measured
//! before), 12 965 with [`serve_http`] on the native socket path
//! ([`Http::serve_native_connection`]), 12 728 and 12 903 with
//! [`TrioTimer`] storing wakers as [`trio::lowlevel::StoredWaker`] (no
//! counted waker allocated per request): about 1.5× tokio's. Pinned
//! wall-clock CPU (7 rounds of 5 s, load average about 5): trio 9.32
//! [8.55–12.21] µs per request, tokio 7.50 [6.32–8.30] µs; per-round
//! ratio trio/tokio median 1.28 [1.03–1.54]. What remains, per request: the adapter's
//! cancel check ([`trio::lowlevel::CancelWaiter::poll_cancelled`], about
//! 1.3k: seven polls per request at about 185 instructions each), the
//! timer (about 1.6k: hyper's header-read timer is a new boxed `Sleep` per
//! request, plus the ordered map's insert and remove, against tokio's
//! ~0.65k) and trio's reactor registration in the socket's poll.
//!
//! [`Io::new`]: trio_compat::Io::new

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
