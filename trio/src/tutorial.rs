//! A tutorial: `trio` from the first `async fn` to a deadlock report.
//!
//! It follows the shape of [Trio's tutorial](https://trio.readthedocs.io/en/stable/tutorial.html):
//! each chapter is a small program, and every snippet here is a doctest,
//! so it compiles and runs as shown. Networking chapters come with
//! networking.
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
