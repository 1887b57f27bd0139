//! A tutorial chapter: HTTP with hyper on trio.
//!
//! It continues [trio's tutorial](trio::tutorial) (whose networking part
//! ends with an echo server): the same ideas — nurseries, cancel scopes,
//! borrowing instead of `'static` — applied to hyper, the HTTP library most
//! of Rust builds on. Every snippet is a doctest: it compiles and runs as
//! shown (on loopback only).
//!
//! # 1. A server and a client in one program
//!
//! A hyper *service* turns a `Request` into a `Response`; `service_fn`
//! makes one from an async closure. [`serve_http`](crate::serve_http) is
//! trio's [`serve_tcp`](trio::serve_tcp) with hyper on each connection:
//! one task per connection, HTTP/1.1 keep-alive, HTTP/2 for clients that
//! start with its preface. Port 0 picks a free port; `nursery.start`
//! waits until the server listens and hands back its listeners.
//! [`get`](crate::get) fetches a URL (one request, its own connection).
//!
//! ```
//! use hyper::{Request, Response, body::Incoming, service::service_fn};
//! use std::convert::Infallible;
//! use trio_hyper::{Http, get, serve_http};
//!
//! async fn hello(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
//!     Ok(Response::new(format!("hello from {}\n", req.uri().path())))
//! }
//!
//! trio::run(async {
//!     let service = service_fn(hello);
//!     trio::open_nursery(async |nursery| {
//!         let listeners = nursery
//!             .start(|s| serve_http(Http::new(), &service, 0).host("127.0.0.1").task_status(s))
//!             .await?;
//!         let port = listeners[0].local_addr()?.as_socket().unwrap().port();
//!         let resp = get(&format!("http://127.0.0.1:{port}/tutorial")).await?;
//!         assert_eq!(resp.status(), 200);
//!         assert_eq!(resp.body(), b"hello from /tutorial\n");
//!         nursery.cancel_scope().cancel(); // stop the server
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # 2. Services borrow; nothing needs `Send` or `'static`
//!
//! On tokio, a hyper service usually holds an `Arc<Mutex<State>>`, because
//! its futures may move between threads and outlive the code that made
//! them. Here every connection is a child task of the server's nursery,
//! and every HTTP/2 stream a child of its connection's
//! ([`NurseryExecutor`](crate::NurseryExecutor)): none outlives the
//! `open_nursery` call, so a service may borrow locals, a plain `Cell`
//! included.
//!
//! ```
//! use hyper::{Response, service::service_fn};
//! use std::cell::Cell;
//! use trio_hyper::{Http, get, serve_http};
//!
//! trio::run(async {
//!     let hits = Cell::new(0); // a local, borrowed by the service
//!     let count = service_fn(async |_req| {
//!         hits.set(hits.get() + 1);
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("{}", hits.get())))
//!     });
//!     trio::open_nursery(async |nursery| {
//!         let listeners = nursery
//!             .start(|s| serve_http(Http::new(), &count, 0).host("127.0.0.1").task_status(s))
//!             .await?;
//!         let port = listeners[0].local_addr()?.as_socket().unwrap().port();
//!         for _ in 0..3 {
//!             get(&format!("http://127.0.0.1:{port}/")).await?;
//!         }
//!         nursery.cancel_scope().cancel();
//!         Ok(())
//!     })
//!     .await?;
//!     assert_eq!(hits.get(), 3);
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # 3. Several requests on one connection
//!
//! [`http1_handshake`](crate::http1_handshake) (or
//! [`http2_handshake`](crate::http2_handshake)) opens a client connection
//! over any trio stream and runs its driver as a child of the nursery you
//! give it. Keep the `SendRequest` handle for as many requests as you
//! like; drop it, and the connection ends, and with it the nursery.
//!
//! Tests need no network at all: a
//! [`memory_stream_pair`](trio::testing::memory_stream_pair) connects
//! [`Http::serve_connection`](crate::Http::serve_connection) to the client
//! in the same run, and `#[trio::test(autojump)]`'s MockClock makes every
//! timeout instant.
//!
//! ```
//! use hyper::{Request, Response, service::service_fn};
//! use trio::testing::memory_stream_pair;
//! use trio_hyper::{Http, http1_handshake, read_body};
//!
//! trio::run(async {
//!     let (server_end, client_end) = memory_stream_pair();
//!     let echo_path = service_fn(async |req: Request<hyper::body::Incoming>| {
//!         Ok::<_, std::convert::Infallible>(Response::new(req.uri().path().to_string()))
//!     });
//!     let http = Http::new();
//!     trio::open_nursery(async |nursery| {
//!         nursery.start_soon(http.serve_connection(&server_end, &echo_path));
//!         let mut send = http1_handshake::<_, String>(&nursery, &client_end).await?;
//!         for path in ["/one", "/two"] {
//!             let req = Request::get(path).header("host", "test").body(String::new()).unwrap();
//!             let resp = send.send_request(req).await.map_err(trio_hyper::from_hyper)?;
//!             assert_eq!(read_body(resp.into_body()).await?, path.as_bytes());
//!         }
//!         drop(send); // the client connection ends...
//!         // ...but memory streams do not close when dropped: close ours,
//!         // and the server's connection sees the end and returns.
//!         trio::stream::aclose_forcefully(&client_end).await?;
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # 4. Timeouts and cancellation
//!
//! Two places a cancel scope can sit, and they mean different things:
//!
//! - **Inside a service**, a scope is the service's own business: a
//!   `move_on_after` around slow work gives `None`, the service answers
//!   (503, say), and the connection serves its next request as usual.
//! - **Around a connection** (a grace deadline, or `move_on_after` around
//!   `serve_connection`), it cancels the connection's I/O: the connection
//!   ends at once.
//!
//! On the client side, mind one thing: hyper's `send_request` future is
//! foreign code that waits on a channel, not on trio, so it is **not a
//! cancel point**. Wrap it in
//! [`cancel_point`](trio::lowlevel::cancel_point) and a timeout drops it
//! (on HTTP/2 that resets just that stream). [`get`](crate::get) does so
//! already.
//!
//! ```
//! use hyper::{Request, Response, StatusCode, service::service_fn};
//! use trio::lowlevel::cancel_point;
//! use trio::testing::{MockClock, memory_stream_pair};
//! use trio_hyper::{Http, http1_handshake};
//!
//! trio::Runner::new().clock(MockClock::autojump()).run(async {
//!     let (server_end, client_end) = memory_stream_pair();
//!     let slow = service_fn(async |req: Request<hyper::body::Incoming>| {
//!         let secs: f64 = req.uri().path()[1..].parse().unwrap();
//!         // The service's own timeout: 1 s of work at most, then 503.
//!         let done = trio::move_on_after(1.0, trio::sleep(secs)).await;
//!         let resp = match done.map_err(trio::StdError)? {
//!             Some(()) => Response::new("done".to_string()),
//!             None => {
//!                 let mut r = Response::new("busy".to_string());
//!                 *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
//!                 r
//!             }
//!         };
//!         Ok::<_, trio::StdError>(resp)
//!     });
//!     let http = Http::new();
//!     trio::open_nursery(async |nursery| {
//!         nursery.start_soon(http.serve_connection(&server_end, &slow));
//!         let mut send = http1_handshake::<_, String>(&nursery, &client_end).await?;
//!         let ask = |secs: &str| Request::get(format!("/{secs}")).header("host", "t")
//!             .body(String::new()).unwrap();
//!         // 5 s of work: the service gives up at 1 s and answers 503.
//!         let resp = cancel_point(send.send_request(ask("5"))).await?.unwrap();
//!         assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
//!         // The same connection goes on: 0.5 s of work is done in time.
//!         let resp = cancel_point(send.send_request(ask("0.5"))).await?.unwrap();
//!         assert_eq!(resp.status(), StatusCode::OK);
//!         // A client-side timeout shorter than the work: the request is
//!         // dropped at 0.2 s (and this HTTP/1.1 connection with it).
//!         let gave_up = trio::move_on_after(0.2, cancel_point(send.send_request(ask("0.5"))))
//!             .await?;
//!         assert!(gave_up.is_none());
//!         nursery.cancel_scope().cancel(); // end the server's side too
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # 5. Graceful shutdown, and Ctrl-C
//!
//! A [`ServeControl`](trio::net::ServeControl) given to
//! [`Http::control`](crate::Http::control) (which `serve_http` also hands to
//! `serve_tcp`) stops a server gracefully: `control.stop(grace)` stops
//! accepting, closes idle connections, lets requests in flight finish
//! (their answers say `connection: close`), and cancels what still runs
//! at the grace deadline. `serve_http` then returns.
//!
//! ```
//! use hyper::{Response, service::service_fn};
//! use trio::net::ServeControl;
//! use trio_hyper::{Http, get, serve_http};
//!
//! trio::run(async {
//!     let control = ServeControl::new();
//!     let hello = service_fn(async |_req| {
//!         Ok::<_, std::convert::Infallible>(Response::new("hi".to_string()))
//!     });
//!     trio::open_nursery(async |nursery| {
//!         let listeners = nursery
//!             .start(|s| {
//!                 serve_http(Http::new().control(&control), &hello, 0)
//!                     .host("127.0.0.1")
//!                     .task_status(s)
//!             })
//!             .await?;
//!         let port = listeners[0].local_addr()?.as_socket().unwrap().port();
//!         get(&format!("http://127.0.0.1:{port}/")).await?;
//!         control.stop(5.0)?; // the server returns: no cancel needed
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! To stop on Ctrl-C, wait for the signal in a task and call `stop` then.
//! A [`SignalReceiver`](trio::signal::SignalReceiver) for SIGINT takes the
//! signal from the run's own Ctrl-C handling (which would cancel every task
//! at once) while it is open. The whole program is the `serve_ctrl_c`
//! example (`cargo run -p trio-hyper --example serve_ctrl_c`), tested with
//! a real SIGINT and a request in flight; its core:
//!
//! ```no_run
//! # use trio::net::ServeControl;
//! use trio::signal::{consts::SIGINT, open_signal_receiver};
//! # async fn server(control: &ServeControl) -> trio::Result<()> { Ok(()) }
//! # trio::run(async {
//! let control = ServeControl::new();
//! let signals = open_signal_receiver(&[SIGINT])?;
//! trio::open_nursery(async |nursery| {
//!     let everything = nursery.cancel_scope();
//!     let (signals, control) = (&signals, &control);
//!     nursery.start_soon(async move {
//!         signals.recv().await?; // the first Ctrl-C: stop gracefully
//!         control.stop(10.0)?;
//!         signals.recv().await?; // the second: stop now
//!         everything.cancel();
//!         Ok(())
//!     });
//!     server(control).await?; // returns once the graceful stop is done
//!     nursery.cancel_scope().cancel(); // and ends the signal task
//!     Ok(())
//! })
//! .await?;
//! # Ok(())
//! # }).unwrap();
//! ```
//!
//! # 6. HTTPS and HTTP/2
//!
//! TLS is one more stream layer: `trio_tls::serve_tls_over_tcp` hands each
//! connection's `TlsStream` to the same
//! [`Http::serve_connection`](crate::Http::serve_connection). With ALPN
//! offering `h2`, HTTP/2 clients get HTTP/2 (the server recognises its
//! preface). On the client side, [`get_tls`](crate::get_tls) offers `h2`
//! and `http/1.1` and speaks whichever the server chose. This crate brings
//! no root certificates: the rustls `ClientConfig` says whom to trust
//! (here, a self-signed certificate made on the spot).
//!
//! ```
//! use hyper::{Request, Response, body::Incoming, service::service_fn};
//! use std::sync::Arc;
//! use trio_hyper::{Http, get_tls};
//! use trio_tls::rustls::{self, pki_types};
//!
//! let key = rcgen::KeyPair::generate().unwrap();
//! let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
//!     .unwrap()
//!     .self_signed(&key)
//!     .unwrap();
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
//!     .with_safe_default_protocol_versions()
//!     .unwrap()
//!     .with_no_client_auth()
//!     .with_single_cert(
//!         vec![cert.der().clone()],
//!         pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
//!     )
//!     .unwrap();
//! server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
//! let mut roots = rustls::RootCertStore::empty();
//! roots.add(cert.der().clone()).unwrap();
//! let client_config = rustls::ClientConfig::builder_with_provider(provider)
//!     .with_safe_default_protocol_versions()
//!     .unwrap()
//!     .with_root_certificates(roots)
//!     .with_no_client_auth();
//!
//! trio::run(async {
//!     let version = service_fn(async |req: Request<Incoming>| {
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("{:?}", req.version())))
//!     });
//!     let http = Http::new();
//!     trio::open_nursery(async |nursery| {
//!         let listeners = nursery
//!             .start(|s| {
//!                 trio_tls::serve_tls_over_tcp(
//!                     async |tls: &_| http.serve_connection(tls, &version).await,
//!                     0,
//!                     Arc::new(server_config),
//!                 )
//!                 .host("127.0.0.1")
//!                 .task_status(s)
//!             })
//!             .await?;
//!         let port = listeners[0].listener().local_addr()?.as_socket().unwrap().port();
//!         let url = format!("https://localhost:{port}/");
//!         let resp = trio::fail_after(10.0, get_tls(&url, Arc::new(client_config))).await?;
//!         assert_eq!(resp.body(), b"HTTP/2.0"); // ALPN chose h2
//!         nursery.cancel_scope().cancel();
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # Where next
//!
//! - The [`server`](crate::server) module: protocol choice, graceful
//!   shutdown and the cancellation rules in full.
//! - The [`client`](crate::client) module: handshakes, drivers, and
//!   cancelling requests.
//! - `benches/hello.rs`: hyper on trio against hyper on tokio, under wrk.
