//! What the compiler guarantees: borrowing, handles, `Send`.
//!
//! This module has no items; it documents the promises that trio's types
//! make at compile time, and pins each of them with a `compile_fail`
//! doctest that must fail with the error code shown (as moro does). If a
//! change to the API made one of these programs compile, `cargo test
//! --doc` would fail. Stable rustdoc checks only that they fail; it
//! compares the error codes on a nightly toolchain, so check those with
//! `RUSTC_BOOTSTRAP=1 cargo test --doc -p trio guarantees`. The positive
//! side (what *is* `Send + Sync`), and `!Send` for every run-bound type,
//! are checked by `trio/tests/auto_traits.rs`.
//!
//! # A child cannot outlive what it borrows
//!
//! Children may borrow anything that outlives the [`open_nursery`] call
//! (`'env`, as with [`std::thread::scope`]), because the call returns only
//! when every child has finished (see [`Nursery`]; the argument for why
//! this is sound, even if the nursery future is leaked, is in the nursery
//! module's design notes). This compiles:
//!
//! ```
//! trio::run(async {
//!     let greeting = String::from("hello"); // outlives the nursery
//!     trio::open_nursery(async |nursery| {
//!         nursery.start_soon(async {
//!             trio::sleep(0.001).await?;
//!             println!("{greeting}");
//!             Ok(())
//!         });
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! A value that dies before the nursery does (a local of the body, which
//! ends while children may still run) cannot be borrowed by a child:
//!
//! ```compile_fail,E0597
//! trio::run(async {
//!     trio::open_nursery(async |nursery| {
//!         let greeting = String::from("hello"); // dropped when the body ends
//!         let greeting = &greeting;
//!         nursery.start_soon(async move {
//!             trio::sleep(0.001).await?;
//!             println!("{greeting}");
//!             Ok(())
//!         });
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! Nor can a function that was handed a nursery spawn a child borrowing
//! its own locals (move them into the child instead):
//!
//! ```compile_fail,E0373
//! fn spawn_greeter(nursery: &trio::Nursery<'_>) {
//!     let greeting = String::from("hello");
//!     nursery.start_soon(async {
//!         println!("{greeting}");
//!         Ok(())
//!     });
//! }
//! ```
//!
//! # A nursery handle cannot outlive `'env`
//!
//! A [`Nursery<'env>`](crate::Nursery) carries the lifetime its children may
//! borrow for, and is invariant in it, so the handle cannot be kept past
//! the data its children borrow:
//!
//! ```compile_fail,E0597
//! trio::run(async {
//!     let escaped;
//!     {
//!         let greeting = String::from("hello");
//!         escaped = trio::open_nursery(async |nursery| {
//!             nursery.start_soon(async {
//!                 println!("{greeting}");
//!                 Ok(())
//!             });
//!             Ok(nursery) // the handle leaves the body…
//!         })
//!         .await?;
//!     } // …but `greeting` dies here, and the handle may not outlive it
//!     drop(escaped);
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! The handle itself may outlive the `open_nursery` call when its children
//! borrow nothing shorter (returned from the body, as above). That is not
//! a hole: the nursery is closed by then, and spawning into it is an error
//! at run time, so nothing can run after the call returned.
//!
//! # `TaskStatus::started` is called at most once
//!
//! [`TaskStatus::started`] takes the status by value, so a second call is
//! a use of a moved value:
//!
//! ```compile_fail,E0382
//! fn report_twice(status: trio::TaskStatus<u16>) {
//!     status.started(8080);
//!     status.started(8081);
//! }
//! ```
//!
//! # What is `!Send`, and what is `Send + Sync`
//!
//! A run is single-threaded (DESIGN §2): tasks need not be `Send`, and the
//! handles that live in a run are `!Send` and `!Sync`, so they cannot be
//! used from another thread by mistake. Among them: [`Nursery`],
//! [`TaskStatus`], [`CancelScope`], the memory channel ends
//! ([`MemorySendChannel`], [`MemoryReceiveChannel`]), every primitive in
//! [`sync`](crate::sync) and its guards, [`Runner`] and
//! [`MockClock`](crate::testing::MockClock).
//!
//! ```compile_fail,E0277
//! fn assert_send<T: Send>(_: &T) {}
//! trio::run(async {
//!     trio::open_nursery(async |nursery| {
//!         assert_send(&nursery); // a nursery belongs to its run's thread
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! ```compile_fail,E0277
//! let scope = trio::CancelScope::new();
//! std::thread::spawn(move || scope.cancel()); // a CancelScope is !Send
//! ```
//!
//! ```compile_fail,E0277
//! let (send, _receive) = trio::open_memory_channel::<u32>(1);
//! std::thread::spawn(move || drop(send)); // a channel end is !Send
//! ```
//!
//! ```compile_fail,E0277
//! let (_send, receive) = trio::open_memory_channel::<u32>(1);
//! std::thread::spawn(move || drop(receive));
//! ```
//!
//! What crosses threads is `Send + Sync`: [`TrioToken`](crate::lowlevel::TrioToken)
//! (to call back into a run from another thread),
//! [`ExternalWork`](crate::lowlevel::ExternalWork), [`Error`] and
//! [`ErrorKind`], [`Instant`], [`Task`](crate::lowlevel::Task) (an id),
//! and the statistics records.
//!
//! ```
//! let token = trio::run(async { Ok(trio::lowlevel::current_trio_token()?) }).unwrap();
//! std::thread::spawn(move || drop(token)).join().unwrap();
//! ```
//!
//! [`open_nursery`]: crate::open_nursery
//! [`Nursery`]: crate::Nursery
//! [`TaskStatus`]: crate::TaskStatus
//! [`TaskStatus::started`]: crate::TaskStatus::started
//! [`CancelScope`]: crate::CancelScope
//! [`MemorySendChannel`]: crate::MemorySendChannel
//! [`MemoryReceiveChannel`]: crate::MemoryReceiveChannel
//! [`Runner`]: crate::Runner
//! [`Error`]: crate::Error
//! [`ErrorKind`]: crate::ErrorKind
//! [`Instant`]: crate::Instant
