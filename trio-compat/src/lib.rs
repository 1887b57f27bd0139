//! # trio-compat — trio streams and the ecosystem's poll-based I/O traits
//!
//! Libraries speak the poll-based I/O traits (futures-io's, tokio's,
//! hyper's) and cancel by dropping futures; trio streams have `&self`
//! async methods and cancel with scopes. This crate bridges the two
//! (DESIGN §13), in its own crate so that tokio and hyper types stay out of
//! `trio`'s API and `cargo test -p trio` does not build them.
//!
//! - [`Io`]: any trio [`Stream`](trio::stream::Stream) as
//!   `futures_io::{AsyncRead, AsyncBufRead, AsyncWrite}` (feature
//!   `futures-io`), `tokio::io::{AsyncRead, AsyncBufRead, AsyncWrite}`
//!   (feature `tokio`: the traits only, no tokio runtime) and
//!   `hyper::rt::{Read, Write}` (feature `hyper`, hyper 1.x).
//! - [`FromIo`]: the reverse, any poll-based stream as a trio `Stream`
//!   (`FromIo::futures` with feature `futures-io`, `FromIo::tokio` with
//!   feature `tokio`, or any [`PollIo`]).
//! - [`error`]: `trio::Error` ⇄ `io::Error`, keeping every kind, and
//!   keeping a cancellation with the scope it belongs to.
//! - `tokio()` (feature `tokio-rt`): tokio-requiring futures (reqwest,
//!   sqlx, tonic) inside a run; `migration`: moving a tokio program over
//!   piece by piece.
//! - `guest` (feature `guest`): the other way round, a trio run inside a
//!   tokio program, as a guest of its `current_thread` runtime.
//!
//! ```
//! # #[cfg(all(feature = "tokio", feature = "futures-io"))] {
//! use futures::io::{AsyncReadExt, AsyncWriteExt};
//! use trio::socket::SocketStream;
//! use trio_compat::Io;
//!
//! trio::run(async {
//!     let (a, b) = SocketStream::unix_pair()?;
//!     let (mut a, mut b) = (Io::new(a), Io::new(b));
//!     a.write_all(b"hello\n").await?;
//!     a.close().await?; // flush, then send_eof
//!     let mut got = String::new();
//!     b.read_to_string(&mut got).await?;
//!     assert_eq!(got, "hello\n");
//!     Ok(())
//! })
//! .unwrap();
//! # }
//! ```
//!
//! # Decisions, and why
//!
//! **Buffering.** Trio's stream futures borrow the stream, and a poll
//! trait can only keep a future across polls inside the adapter, which
//! would make it self-referential. So [`Io`] keeps the stream in an `Rc`
//! and each operation in flight is a boxed future owning an `Rc` clone and
//! a `Vec<u8>` that it hands back: one box per operation, buffers reused.
//! Reads land in a buffer of at least [`READ_CHUNK`] (16 KiB) and are
//! copied out, so nothing received is lost when foreign code drops a read
//! and comes back, and byte-at-a-time readers cost one operation per
//! 16 KiB. Writes are accepted into a buffer of at most [`WRITE_BUFFER`]
//! (64 KiB) and sent at once when no send is in flight (data leaves
//! without a flush; `poll_write` waits only when the buffer is full);
//! `poll_flush` drains it; `poll_close`/`poll_shutdown` flush, then
//! `send_eof`. The stream is dropped with the adapter, which closes
//! sockets and pipes; [`Io::aclose`] closes any stream.
//!
//! **Budget.** An adapter is a cancel point but not a schedule point: a
//! poll that finds data ready returns it without yielding, so a connection
//! with data always ready would keep its task running forever and starve
//! every timer and task of the run. After [`BUDGET`] (128, tokio's
//! per-task budget) consecutive ready polls, the adapter wakes the waker
//! and returns `Pending` once.
//!
//! **Error mapping** ([`error`]). Trio errors cross into foreign code as
//! an `io::Error` that contains them whole, so they come back unchanged
//! (every kind, groups too). `Cancelled` crosses as kind `Other`, never
//! `Interrupted` (which read loops retry: a cancellation would spin).
//! Coming back, a `Cancelled` is found inside `io::Error::get_ref()` and
//! through `source()` chains (library errors), and stays `Cancelled` only
//! if the converting task's own scope is cancelled; otherwise it belonged
//! to someone else and becomes `Broken`, source kept
//! ([`error::ForeignCancelled`]), so a scope catches its own cancellation
//! and never another's. Convert with [`error::from_io`] or
//! [`IoResultExt::into_trio`](error::IoResultExt::into_trio): trio's
//! blanket `?` conversion wraps the `io::Error` as an `Io` error without
//! looking inside.
//!
//! **Must run inside trio.** Adapters check for cancellation on every poll
//! and [`FromIo`] parks while it waits, so they must be polled inside a
//! trio task; elsewhere they fail with a `Usage` error, never a panic.
//!
//! **Native polling.** Sockets and pipes poll natively through
//! [`Io::native`] ([`NativePoll`]): the syscall, else the waker registered
//! in trio's reactor; no boxed operation and no allocation per poll.
//! [`Io::new`] takes the boxed path for any stream.
//!
//! To make any other foreign future a cancel point, use
//! [`trio::lowlevel::cancel_point`]; [`Io`] checks a
//! [`trio::lowlevel::CancelWaiter`] on every poll and registers it on
//! every poll that returns `Pending`, so a cancel reaches it inside
//! foreign combinators too.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
mod from_io;
// Without a trait feature, `Io` has no poll methods to use its internals.
#[cfg_attr(
    not(any(feature = "futures-io", feature = "tokio", feature = "hyper")),
    allow(dead_code)
)]
mod io;

#[cfg(feature = "futures-io")]
pub use from_io::FuturesIo;
#[cfg(feature = "tokio")]
pub use from_io::TokioIo;
pub use from_io::{FromIo, PollIo};
pub use io::{BUDGET, Io, NativePoll, READ_CHUNK, READ_CHUNK_MAX, WRITE_BUFFER};

#[cfg(feature = "guest")]
pub mod guest;
#[cfg(feature = "tokio-rt")]
pub mod migration;
#[cfg(feature = "tokio-rt")]
pub mod tokio_rt;
#[cfg(feature = "tokio-rt")]
pub use tokio_rt::{tokio, tokio_raw};
