//! A tutorial: `trio` from the first `async fn` to a deadlock report.
//!
//! It follows the shape of [Trio's tutorial](https://trio.readthedocs.io/en/stable/tutorial.html):
//! each chapter is a small program, and every snippet here is a doctest,
//! so it compiles and runs as shown. Chapter 8 is the tutorial's
//! networking part: an echo server and its client (on loopback only).
//!
//! # 1. Async functions and `trio::run`
//!
//! An `async fn` does nothing until something drives it. [`run`](crate::run)
//! drives one on the current thread until it finishes, and returns its
//! result. Inside, [`sleep`](crate::sleep) and every other blocking
//! operation of the runtime are *checkpoints*: places where other tasks may
//! run and where cancellation is delivered.
//!
//! ```
//! async fn greet(name: &str) -> trio::Result<String> {
//!     trio::sleep(0.001).await?; // a checkpoint
//!     Ok(format!("hello, {name}"))
//! }
//!
//! let greeting = trio::run(greet("world")).unwrap();
//! assert_eq!(greeting, "hello, world");
//! ```
//!
//! Errors are [`trio::Error`](crate::Error) values and travel with `?`;
//! `std::io::Error` and your own error types convert into it.
//!
//! # 2. Doing several things at once: nurseries
//!
//! Concurrency lives in a *nursery*. [`open_nursery`](crate::open_nursery)
//! gives its body a handle that spawns children, and returns only when the
//! body and every child have finished: no task outlives the call that
//! started it. Because of that, children may borrow the caller's locals.
//!
//! ```
//! use std::cell::RefCell;
//!
//! async fn child(name: &str, seconds: f64, log: &RefCell<Vec<String>>) -> trio::Result<()> {
//!     log.borrow_mut().push(format!("{name} started"));
//!     trio::sleep(seconds).await?;
//!     log.borrow_mut().push(format!("{name} exiting"));
//!     Ok(())
//! }
//!
//! trio::run(async {
//!     let log = RefCell::new(Vec::new()); // borrowed by both children
//!     trio::open_nursery(async |nursery| {
//!         nursery.start_soon(child("child 1", 0.002, &log));
//!         nursery.start_soon(child("child 2", 0.001, &log));
//!         Ok(())
//!     })
//!     .await?;
//!     // Both children have finished here.
//!     assert_eq!(log.borrow().len(), 4);
//!     assert_eq!(log.borrow()[3], "child 1 exiting");
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # 3. When a child fails
//!
//! A child that fails cancels the nursery: its siblings and the body get
//! `Cancelled` at their next checkpoint, the nursery waits for all of them,
//! and then reports the failure. No error is lost: several failures come
//! out together as a group (see [`Error::leaves`](crate::Error::leaves)).
//!
//! ```
//! use trio::ErrorKind;
//!
//! let err = trio::run(async {
//!     trio::open_nursery(async |nursery| {
//!         nursery.start_soon(trio::sleep_forever()); // will be cancelled
//!         nursery.start_soon(async {
//!             trio::sleep(0.001).await?;
//!             Err(trio::Error::new(ErrorKind::Broken, "the database went away"))
//!         });
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Broken); // just the failure: the Cancelled was the nursery's own
//! ```
//!
//! A panicking child is treated the same way, and its panic resumes in the
//! parent once the siblings have finished.
//!
//! # 4. Timeouts and cancel scopes
//!
//! A timeout is a *scope* around some code, not a parameter of each call.
//! [`move_on_after`](crate::move_on_after) cancels its body after a while and
//! returns `None`; [`fail_after`](crate::fail_after) returns a `TooSlow`
//! error instead. Scopes nest and compose across layers: whichever deadline
//! comes first wins, and each scope catches exactly its own cancellation.
//!
//! ```
//! use trio::testing::MockClock;
//!
//! trio::Runner::new().clock(MockClock::autojump()).run(async {
//!     // The inner timeout fires first and is caught by its own scope.
//!     let outer = trio::move_on_after(10.0, async {
//!         let inner = trio::move_on_after(1.0, trio::sleep(5.0)).await?;
//!         assert_eq!(inner, None);
//!         Ok("inner timed out, outer did not")
//!     })
//!     .await?;
//!     assert_eq!(outer, Some("inner timed out, outer did not"));
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! Cleanup that must run even while the surrounding code is being
//! cancelled goes in a *shielded* scope, usually with a timeout of its own
//! so it cannot hang forever:
//!
//! ```
//! # use trio::testing::MockClock;
//! # trio::Runner::new().clock(MockClock::autojump()).run(async {
//! let r = trio::move_on_after(1.0, async {
//!     let result = trio::sleep_forever().await; // cancelled at 1 s
//!     // Still inside the cancelled scope: every checkpoint here would fail,
//!     // except in a shielded scope.
//!     trio::move_on_after(5.0, trio::sleep(0.5)).shielded().await?;
//!     result
//! })
//! .await?;
//! assert_eq!(r, None);
//! assert_eq!(trio::current_time().as_secs_f64(), 1.5);
//! # Ok(()) }).unwrap();
//! ```
//!
//! A [`CancelScope`](crate::CancelScope) is the general form: hold it,
//! cancel it from another task (or, through its
//! [`handle`](crate::CancelScope::handle), from another thread), move its
//! deadline, ask afterwards what happened.
//!
//! # 5. Racing
//!
//! To take whichever of several ways finishes first, run them as children
//! and let the first cancel the rest. [`race`](crate::race) does exactly
//! that, and returns only after the losers have been cancelled and have
//! finished their cleanup.
//!
//! ```
//! use trio::testing::MockClock;
//!
//! async fn fetch_from(mirror: &str, seconds: f64) -> trio::Result<String> {
//!     trio::sleep(seconds).await?;
//!     Ok(format!("page from {mirror}"))
//! }
//!
//! trio::Runner::new().clock(MockClock::autojump()).run(async {
//!     let page = trio::race([fetch_from("slow", 3.0), fetch_from("fast", 1.0)]).await?;
//!     assert_eq!(page, "page from fast");
//!     assert_eq!(trio::current_time().as_secs_f64(), 1.0);
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! # 6. Testing with a virtual clock
//!
//! Tests should not wait in real time. `#[trio::test(autojump)]` runs an
//! async test on a [`MockClock`](crate::testing::MockClock) that jumps over
//! idle time, under a scheduling seed that a failure prints, so a 30-second
//! timeout test takes microseconds and replays exactly:
//!
//! ```
//! #[trio::test(autojump)]
//! async fn gives_up_after_30_seconds() -> trio::Result<()> {
//!     let r = trio::move_on_after(30.0, trio::sleep_forever()).await?;
//!     assert!(r.is_none());
//!     assert_eq!(trio::current_time().as_secs_f64(), 30.0);
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! [`testing::wait_all_tasks_blocked`](crate::testing::wait_all_tasks_blocked)
//! waits until every other task is blocked, which is how a test lets
//! background tasks reach a known state without sleeping.
//!
//! # 7. When something hangs: the task tree and deadlock reports
//!
//! At any moment, [`lowlevel::task_tree`](crate::lowlevel::task_tree) shows
//! every task, nursery and scope, and where each blocked task waits (file
//! and line of the call). And when no task can ever run again, `run` does
//! not hang: it fails with a `Deadlock` error carrying that tree.
//!
//! ```
//! use trio::ErrorKind;
//!
//! let err = trio::run(async {
//!     let (tx, rx) = trio::open_memory_channel::<u32>(0);
//!     trio::open_nursery(async |nursery| {
//!         nursery.start_soon_named("consumer", async move {
//!             rx.receive().await?; // nobody will ever send
//!             Ok(())
//!         });
//!         Ok(())
//!     })
//!     .await?;
//!     drop(tx);
//!     Ok(())
//! })
//! .unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Deadlock);
//! let report = err.to_string();
//! assert!(report.contains("consumer"));
//! assert!(report.contains("waiting in"));
//! ```
//!
//! # 8. Networking: an echo server and its client
//!
//! A server is a function that handles one connection, and
//! [`serve_tcp`](crate::serve_tcp) calls it for every client, each in a
//! task of its own. The handler borrows the stream; when it returns, the
//! stream is closed for it. Run under [`Nursery::start`](crate::Nursery::start),
//! the server reports its listeners once they accept, so a client can
//! connect at once — to a port the kernel picked (port 0) — with no race.
//!
//! The client runs two tasks on one connection: one sends, one receives.
//! Stream methods take `&self`, so both borrow the same stream; when the
//! sender is done it half-closes ([`send_eof`](crate::stream::Stream::send_eof)),
//! the server's handler sees end of stream and returns, and the receiver
//! sees the server close in turn.
//!
//! ```
//! use trio::socket::SocketStream;
//! use trio::stream::{ReceiveStream, SendStream, Stream};
//!
//! async fn echo_server(stream: &SocketStream) -> trio::Result<()> {
//!     let mut buf = [0; 1024];
//!     loop {
//!         let n = stream.receive_some(&mut buf).await?;
//!         if n == 0 {
//!             return Ok(()); // end of stream: serve_tcp closes our side
//!         }
//!         stream.send_all(&buf[..n]).await?;
//!     }
//! }
//!
//! async fn sender(stream: &SocketStream) -> trio::Result<()> {
//!     for i in 0..3 {
//!         stream.send_all(format!("message {i}\n").as_bytes()).await?;
//!         trio::sleep(0.01).await?;
//!     }
//!     stream.send_eof().await
//! }
//!
//! async fn receiver(stream: &SocketStream) -> trio::Result<Vec<u8>> {
//!     let mut got = Vec::new();
//!     let mut buf = [0; 1024];
//!     loop {
//!         // A timeout around a network read is a scope, like any other.
//!         match trio::fail_after(5.0, stream.receive_some(&mut buf)).await? {
//!             0 => return Ok(got),
//!             n => got.extend_from_slice(&buf[..n]),
//!         }
//!     }
//! }
//!
//! trio::run(async {
//!     trio::open_nursery(async |nursery| {
//!         let listeners = nursery
//!             .start(|status| {
//!                 trio::serve_tcp(echo_server, 0).host("127.0.0.1").task_status(status)
//!             })
//!             .await?;
//!         let addr = listeners[0].local_addr()?.as_socket().unwrap();
//!
//!         // The client.
//!         let stream = trio::open_tcp_stream("127.0.0.1", addr.port()).await?;
//!         let mut echoed = Vec::new();
//!         trio::open_nursery(async |client| {
//!             client.start_soon(sender(&stream));
//!             echoed = receiver(&stream).await?;
//!             Ok(())
//!         })
//!         .await?;
//!         assert_eq!(echoed, b"message 0\nmessage 1\nmessage 2\n");
//!
//!         nursery.cancel_scope().cancel(); // stop the server
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! `trio/examples/echo_server.rs` and `echo_client.rs` are the same
//! programs as separate processes (`cargo run --example echo_server`, then
//! `cargo run --example echo_client` in another terminal).
//!
//! A failing handler stops the server and its error comes out of
//! `serve_tcp`, as any failing task's would; `.on_handler_error(...)`
//! makes the server log it and go on instead
//! ([`OnHandlerError`](crate::net::OnHandlerError)). Accept errors that mean
//! "out of file descriptors" are logged and retried after 100 ms;
//! [`max_connections`](crate::net::Serve::max_connections) caps how many
//! clients are served at once.
//!
//! ## Stopping gracefully
//!
//! Cancelling the server stops everything at once. To stop *gracefully* —
//! refuse new clients, let the current ones finish, but not forever — give
//! the server a [`ServeControl`](crate::net::ServeControl) and call its
//! `stop(grace)`. Handlers can see the request and end at a good moment;
//! those still running at the grace deadline are cancelled.
//!
//! ```
//! use trio::net::ServeControl;
//! use trio::socket::SocketStream;
//! use trio::stream::ReceiveStream;
//!
//! trio::run(async {
//!     let control = ServeControl::new();
//!     let handler = async |_stream: &SocketStream| {
//!         // A long job, which this handler chooses to cut short when asked.
//!         trio::race2(trio::sleep(3600.0), control.stopping()).await?;
//!         Ok(())
//!     };
//!     let addr = trio::open_nursery(async |nursery| {
//!         let listeners = nursery
//!             .start(|status| {
//!                 trio::serve_tcp(handler, 0)
//!                     .host("127.0.0.1")
//!                     .control(&control)
//!                     .task_status(status)
//!             })
//!             .await?;
//!         let addr = listeners[0].local_addr()?.as_socket().unwrap();
//!         let client = SocketStream::connect_tcp(addr).await?;
//!         while control.active_connections() == 0 {
//!             trio::sleep(0.001).await?;
//!         }
//!         control.stop(10.0)?;
//!         let mut buf = [0; 1];
//!         assert_eq!(client.receive_some(&mut buf).await?, 0); // the handler ended
//!         Ok(addr)
//!     })
//!     .await?; // the server returned once its last handler ended
//!     assert_eq!(control.active_connections(), 0);
//!     // Its listeners are closed: new clients are refused.
//!     let addr = addr.unwrap();
//!     assert!(SocketStream::connect_tcp(addr).await.is_err());
//!     Ok(())
//! })
//! .unwrap();
//! ```
