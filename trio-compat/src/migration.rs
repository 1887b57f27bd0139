//! # Migrating from tokio, piece by piece
//!
//! A docs-only module: the same small program written with tokio and with
//! trio, what each tokio idiom becomes, and how to move a tokio program
//! over one piece at a time with [`tokio`](crate::tokio()) (feature
//! `tokio-rt`), from the outside in, or as a trio guest inside the tokio
//! program (`trio_compat::guest`, feature `guest`), from the inside out, as
//! Trio's users moved asyncio code with trio-asyncio and guest mode.
//!
//! # The program
//!
//! Fetch a list of URLs concurrently, give each at most five seconds, stop
//! everything when asked to from another thread, and add up the bytes.
//!
//! ## With tokio
//!
//! ```no_run
//! use std::time::Duration;
//! use tokio::task::JoinSet;
//! use tokio_util::sync::CancellationToken;
//!
//! async fn fetch(url: String) -> reqwest::Result<usize> {
//!     Ok(reqwest::get(&url).await?.bytes().await?.len())
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//!     rt.block_on(async {
//!         let shutdown = CancellationToken::new();
//!         let stop = shutdown.clone(); // Send: another thread may stop us
//!         std::thread::spawn(move || {
//!             // ... on some outside event:
//!             # return;
//!             stop.cancel();
//!         });
//!
//!         let mut set = JoinSet::new();
//!         for url in ["http://127.0.0.1:8000/a", "http://127.0.0.1:8000/b"] {
//!             let shutdown = shutdown.clone();
//!             set.spawn(async move {
//!                 tokio::select! {
//!                     _ = shutdown.cancelled() => None,
//!                     r = tokio::time::timeout(Duration::from_secs(5), fetch(url.into())) => {
//!                         r.ok().and_then(|r| r.ok())
//!                     }
//!                 }
//!             });
//!         }
//!         let mut total = 0;
//!         while let Some(joined) = set.join_next().await {
//!             total += joined?.unwrap_or(0);
//!         }
//!         println!("{total} bytes");
//!         Ok(())
//!     })
//! }
//! ```
//!
//! ## With trio (and reqwest through `trio_compat::tokio`)
//!
//! ```
//! # fn serve(bodies: usize) -> String {
//! #     use std::io::{BufRead, BufReader, Write};
//! #     let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
//! #     let url = format!("http://{}", l.local_addr().unwrap());
//! #     std::thread::spawn(move || {
//! #         for c in l.incoming().take(bodies) {
//! #             let mut c = c.unwrap();
//! #             let mut r = BufReader::new(c.try_clone().unwrap());
//! #             let mut line = String::new();
//! #             while r.read_line(&mut line).unwrap() > 2 { line.clear(); }
//! #             write!(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello").unwrap();
//! #         }
//! #     });
//! #     url
//! # }
//! use std::cell::Cell;
//! use trio::CancelScope;
//!
//! async fn fetch(url: String) -> reqwest::Result<usize> {
//!     Ok(reqwest::get(&url).await?.bytes().await?.len())
//! }
//!
//! fn main() -> trio::Result<()> {
//!     # let base = serve(2);
//!     trio::run(async {
//!         let shutdown = CancelScope::new();
//!         let stop = shutdown.handle(); // Send + Sync: another thread may stop us
//!         std::thread::spawn(move || {
//!             // ... on some outside event:
//!             # return;
//!             stop.cancel();
//!         });
//!
//!         let total = Cell::new(0); // no Arc, no Mutex: the tasks borrow it
//!         shutdown
//!             .run(trio::open_nursery(async |nursery| {
//!                 for path in ["/a", "/b"] {
//!                     let url = format!("{base}{path}");
//!                     let total = &total;
//!                     nursery.start_soon(async move {
//!                         let fetched = trio::move_on_after(5.0, trio_compat::tokio(fetch(url)));
//!                         if let Some(n) = fetched.await? {
//!                             total.set(total.get() + n);
//!                         }
//!                         Ok(())
//!                     });
//!                 }
//!                 Ok(())
//!             }))
//!             .await?; // `None` if the scope was cancelled
//!         println!("{} bytes", total.get());
//!         # assert_eq!(total.get(), 10);
//!         Ok(())
//!     })
//! }
//! ```
//!
//! What changed:
//!
//! - **`JoinSet` / `tokio::spawn` → a nursery.** Children borrow from the
//!   parent (`&total`), need neither `Send` nor `'static`, and have all
//!   finished when the nursery returns. A child's error cancels its
//!   siblings and comes out of the nursery; there is no handle to forget
//!   to join. (`start_soon`'s children return `trio::Result<()>`; collect
//!   values into something they borrow, or a channel.)
//! - **`tokio::time::timeout` → [`trio::move_on_after`] /
//!   [`trio::fail_after`].** A timeout is a cancel scope with a deadline:
//!   it cancels everything inside at its next checkpoint (here the
//!   `trio_compat::tokio` call, which drops the request), and covers
//!   nested work without passing anything down. `move_on_after` gives
//!   `Ok(None)`; `fail_after` gives a `TooSlow` error.
//! - **`CancellationToken` → [`trio::CancelScope`] and its
//!   [`CancelHandle`](trio::CancelHandle).** No token to pass to every
//!   task and poll in every `select!`: cancelling the scope cancels every
//!   task under it. The handle is `Send + Sync`, for other threads.
//! - **`select!` → cancel scopes and [`trio::race`] / [`trio::race2`].**
//!   "Whichever finishes first" is `race`: the losers are *cancelled* at a
//!   checkpoint, run their cleanup and have finished before `race`
//!   returns (`select!` drops them mid-operation). "Stop when told to" is
//!   a scope, as above.
//! - **Errors.** `trio::Result` everywhere; library errors convert with
//!   `?`, and `trio_compat::tokio` flattens a `Result<T, E>` output with
//!   `E: Into<trio::Error>`.
//!
//! ## Tests: `start_paused` → `autojump`
//!
//! ```ignore
//! #[tokio::test(start_paused = true)]
//! async fn gives_up_after_five_seconds() {
//!     let r = tokio::time::timeout(Duration::from_secs(5), std::future::pending::<()>()).await;
//!     assert!(r.is_err());
//! }
//! ```
//!
//! ```
//! # /*
//! #[trio::test(autojump)]
//! # */
//! async fn gives_up_after_five_seconds() -> trio::Result<()> {
//!     let r = trio::move_on_after(5.0, trio::sleep_forever()).await?;
//!     assert_eq!(r, None); // five virtual seconds, at once
//!     Ok(())
//! }
//! # trio::Runner::new().clock(trio::testing::MockClock::autojump())
//! #     .run(gives_up_after_five_seconds()).unwrap();
//! ```
//!
//! The MockClock jumps only when every task is blocked on trio itself.
//! Tokio timers inside `trio_compat::tokio` follow the real clock, and a
//! pending `trio_compat::tokio` call counts as work in another thread (the
//! clock does not jump past it), so move a test's timers to trio's before
//! relying on autojump.
//!
//! # Moving a program over, piece by piece
//!
//! 1. **Swap the entry point, keep everything.** Run the old async main as
//!    one tokio future inside a trio run: it is polled on the run's thread
//!    with the tokio context entered, its tokio I/O and timers are driven
//!    by the run's tokio runtime on a helper thread, and what it
//!    `tokio::spawn`s runs there.
//!
//!    ```
//!    async fn old_main() -> std::io::Result<()> {
//!        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
//!        let handle = tokio::spawn(async { 40 + 2 });
//!        assert_eq!(handle.await?, 42);
//!        Ok(())
//!    }
//!
//!    fn main() -> trio::Result<()> {
//!        trio::run(trio_compat::tokio(old_main()))
//!    }
//!    # main().unwrap();
//!    ```
//!
//! 2. **Move from the top down.** Rewrite the outer structure in trio
//!    (nurseries instead of spawns, scopes instead of tokens and
//!    timeouts) and wrap each call that still needs tokio — a library
//!    call, a leftover module — in `trio_compat::tokio(...)`. Each wrapped
//!    call is a checkpoint: trio's cancellation reaches it and drops it.
//!    Build tokio futures *inside* the call (`trio_compat::tokio(async {
//!    tokio::time::sleep(d).await; ... })`): some tokio functions act when
//!    called, before the first poll, and need the context then.
//! 3. **Replace the leaves.** `tokio::time` → [`trio::sleep`] and the
//!    scopes; `tokio::fs` → [`trio::fs`]; `tokio::net` → [`trio::net`] /
//!    [`trio::socket`]; `tokio::process` → [`trio::process`]; channels →
//!    [`trio::open_memory_channel`]; `tokio::sync` → [`trio::sync`]. What
//!    stays (reqwest, sqlx, tonic) stays wrapped.
//! 4. **At the seams.** A tokio `mpsc` channel works from both sides (wrap
//!    `recv`/`send` in [`tokio_raw`](crate::tokio_raw) /
//!    [`tokio`](crate::tokio())). A tokio-typed stream
//!    (`AsyncRead + AsyncWrite`) becomes a trio stream with
//!    [`FromIo::tokio`](crate::FromIo); a trio stream handed to code that
//!    wants tokio's traits goes through [`Io`](crate::Io).
//!
//! # What to know
//!
//! - Every tokio wake-up of a wrapped future crosses threads (tokio's
//!   drivers run on the helper thread, the future on the run's thread);
//!   each call has a fixed overhead. The figures are measured by
//!   `tests/tokio_bench.rs` (and reported in the changelog). Keep hot
//!   loops inside one `trio_compat::tokio` call, or move them to trio.
//! - Tasks that tokio spawns run outside any nursery: trio's cancellation
//!   does not reach them (they are dropped at the latest when the run ends
//!   and its tokio runtime shuts down).
//! - Cancelling a wrapped call drops the tokio future; a foreign library
//!   cannot promise that what it already did is undone (a request may have
//!   been sent).
//!
//! # Or the other way round: trio as a guest of a tokio program
//!
//! When the tokio program is large and only one subsystem should move,
//! keep tokio as the host and run the new subsystem as a trio *guest* on
//! the same thread (`trio_compat::guest`, feature `guest`; Trio's
//! `start_guest_run`). The guest is a future the program awaits like any
//! other; its tasks and tokio's take turns, one trio batch per poll.
//!
//! ```
//! use std::time::Duration;
//!
//! // The new subsystem, written with trio: jobs come in on a tokio
//! // channel; each is done in a child task with its own timeout.
//! async fn workers(mut jobs: tokio::sync::mpsc::Receiver<u64>) -> trio::Result<u64> {
//!     let done = std::cell::Cell::new(0);
//!     trio::open_nursery(async |nursery| {
//!         // A tokio future awaited by a trio task: a cancel point.
//!         while let Some(ms) = trio::lowlevel::cancel_point(jobs.recv()).await? {
//!             let done = &done;
//!             nursery.start_soon(async move {
//!                 let work = trio::sleep(Duration::from_millis(ms));
//!                 if trio::move_on_after(0.5, work).await?.is_some() {
//!                     done.set(done.get() + 1);
//!                 }
//!                 Ok(())
//!             });
//!         }
//!         Ok(())
//!     })
//!     .await?;
//!     Ok(done.get())
//! }
//!
//! # /*
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> trio::Result<()> {
//! # */
//! # async fn tokio_main() -> trio::Result<()> {
//!     let (tx, rx) = tokio::sync::mpsc::channel(8);
//!     // The rest of the tokio program goes on as before.
//!     let producer = tokio::spawn(async move {
//!         for ms in [1, 2, 3] {
//!             tx.send(ms).await.unwrap();
//!         }
//!     });
//!     let done = trio_compat::guest::start_guest(trio::Runner::new(), workers(rx)).await?;
//!     assert_eq!(done, 3);
//!     producer.await.unwrap();
//!     Ok(())
//! }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
//! #     .block_on(tokio_main()).unwrap();
//! ```
//!
//! Piece by piece, from the inside out:
//!
//! 1. **Pick a subsystem with one entry** (a worker pool, a protocol
//!    client, a server) and start it with `start_guest` where the program
//!    used to spawn it. Its result, its errors and its timeouts come back
//!    as a value (`trio::Result<T>`); its cancellation stays inside it.
//! 2. **At the seam**, use tokio's channels (a trio task awaits one
//!    through [`trio::lowlevel::cancel_point`] or
//!    [`tokio_raw`](crate::tokio_raw); host tasks as usual), and stop the
//!    guest gracefully with a [`CancelHandle`](trio::CancelHandle) of a
//!    scope around its body: it is `Send + Sync`, and a cancel from host
//!    code reaches the guest between its steps. (Dropping the guest's
//!    future instead abandons the run: its tasks are dropped, not
//!    cancelled.)
//! 3. **Inside the guest**, tokio libraries still work through
//!    [`tokio()`](crate::tokio()), which there uses the *host's* runtime
//!    (no helper thread, no thread crossing: the host drives their I/O).
//! 4. **Grow the guest** until it is the whole program; then swap the
//!    entry point for `trio::run` (step 1 of the previous section), and
//!    what still needs tokio runs through `trio_compat::tokio` on the
//!    run's own runtime.
//!
//! What to know about a guest:
//!
//! - One guest per thread at a time (a second is a `Usage` error), and
//!   its future is not `Send`: await it in `main`/`block_on`, or
//!   `LocalSet::spawn_local` it, not `tokio::spawn`. The runtime needs its
//!   I/O and time drivers (`enable_all`).
//! - Fair both ways: a busy guest yields to tokio after every batch, and a
//!   busy host delays the guest by at most one trip through tokio's queue
//!   (`tests/guest_fairness.rs` measures both).
//! - A MockClock's autojump, `wait_all_tasks_blocked` and deadlock
//!   detection see trio's tasks only: host work does not count, and
//!   tokio's timers stay real.
//! - Ctrl-C belongs to the host: the guest installs no handler unless its
//!   runner was given `handle_ctrl_c(true)`.
//! - `trio::run` inside a guest task is a `Usage` error, as any nested
//!   run is.
