//! Errors across the bridge: [`trio::Error`] ⇄ [`io::Error`], keeping every
//! kind, and keeping cancellation with the scope that owns it.
//!
//! # The two directions
//!
//! - [`to_io`]: a trio error becomes an `io::Error` that *contains it whole*
//!   (as [`trio::StdError`], its source). The io kind says what foreign
//!   code needs to know: the wrapped OS error's own kind if there is one
//!   (`ConnectionReset` stays `ConnectionReset`), else a kind mapped from
//!   trio's ([`io_kind`]). Cancelled maps to `Other`, **never
//!   `Interrupted`**: read loops (`read_exact`, `copy`, `std::io` helpers)
//!   retry `Interrupted`, so a cancellation would spin instead of unwinding.
//! - [`from_io`]: the way back.
//!   1. An `io::Error` made by [`to_io`] (or by trio's own
//!      `From<trio::Error> for io::Error`) gives back the very error that
//!      went in: every kind round-trips, groups included.
//!   2. Otherwise the error is searched for a trio error buried deeper: in
//!      `io::Error::get_ref()` (at every level: `io::Error::source()` skips
//!      the error it wraps) and through `source()` chains, which is how
//!      library errors such as `hyper::Error` carry the io error they got.
//!      One found gives its kind to the result (the whole `io::Error` is
//!      kept as the source).
//!   3. A plain OS error converts as trio's `?` does (`Io`, or
//!      `WouldBlock`).
//!
//! # Whose cancellation is it?
//!
//! A `Cancelled` that comes back out of foreign code may not be ours: a
//! connection driver task that was cancelled can hand its error to a
//! request task through a library's shared state, say. A cancel scope must
//! catch its own cancellation and never someone else's (DESIGN §4, §13),
//! so a `Cancelled` found by [`from_io`] (in either step 1 or 2) stays
//! `Cancelled` **only if the converting task's own cancel status is
//! cancelled** right now; then its scope will catch it as its own, as it
//! would any checkpoint's. Otherwise it is stale: it becomes
//! [`ErrorKind::Broken`] wrapping a [`ForeignCancelled`] whose source is
//! the error that carried it, which no scope mistakes for its own.
//!
//! The rule itself lives in trio: `From<io::Error> for trio::Error` (what
//! `?` uses) applies it, and [`ForeignCancelled`] is trio's own type,
//! re-exported here. This module adds what trio's blanket conversion does
//! not: the io kinds of [`to_io`], and the kind of a non-cancellation trio
//! error found deep inside a library error (step 2).
//! "Is the current task cancelled?" is
//! [`trio::lowlevel::current_task_is_cancelled`]; outside a run nothing
//! is cancelled, so a `Cancelled` found there is stale.

use std::error::Error as StdErrorTrait;
use std::io;
pub use trio::ForeignCancelled;
use trio::{Error, ErrorKind, StdError};

/// How deep [`from_io`] looks into nested errors. Real chains are a few
/// levels deep; the bound only guarantees an end (no hang) on a chain that
/// a buggy `source()` made circular.
const MAX_DEPTH: usize = 64;

/// Converts a trio error into an `io::Error` that contains it whole; see
/// the [module docs](self). [`from_io`] gives back the same error.
///
/// ```
/// use trio::{Error, ErrorKind};
/// use trio_compat::error::{from_io, to_io};
///
/// let e = to_io(Error::new(ErrorKind::Busy, "someone else is reading"));
/// assert_eq!(e.kind(), std::io::ErrorKind::ResourceBusy);
/// let back = from_io(e);
/// assert_eq!(back.kind(), ErrorKind::Busy);
/// assert_eq!(back.to_string(), "someone else is reading");
/// ```
pub fn to_io(error: Error) -> io::Error {
    let kind = match error.downcast_ref::<io::Error>() {
        Some(os) => os.kind(),
        None => io_kind(error.kind()),
    };
    io::Error::new(kind, StdError(error))
}

/// The io kind that stands for a trio kind in [`to_io`] (when the error
/// wraps no `io::Error` of its own). Kinds with no io counterpart, and
/// `Cancelled`, are `Other` (never `Interrupted`: see the module docs).
pub fn io_kind(kind: ErrorKind) -> io::ErrorKind {
    match kind {
        ErrorKind::WouldBlock => io::ErrorKind::WouldBlock,
        ErrorKind::InvalidArgument => io::ErrorKind::InvalidInput,
        ErrorKind::Broken => io::ErrorKind::BrokenPipe,
        ErrorKind::TooSlow => io::ErrorKind::TimedOut,
        ErrorKind::Unsupported => io::ErrorKind::Unsupported,
        ErrorKind::Busy => io::ErrorKind::ResourceBusy,
        _ => io::ErrorKind::Other,
    }
}

/// Converts an `io::Error` back into a trio error; see the
/// [module docs](self) for the three steps and the rule for `Cancelled`.
///
/// ```
/// use trio::ErrorKind;
/// use trio_compat::error::from_io;
///
/// let os = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
/// let e = from_io(os);
/// assert_eq!(e.kind(), ErrorKind::Io);
/// assert_eq!(e.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::ConnectionReset);
/// ```
pub fn from_io(error: io::Error) -> Error {
    // 1. A trio error converted whole: trio's own conversion takes it back
    // out and judges a `Cancelled` in it.
    if error.get_ref().is_some_and(|inner| inner.is::<StdError>()) {
        return Error::from(error);
    }
    // 2. A trio error deeper inside.
    let found = search(&error);
    if found.cancelled {
        // trio's conversion finds it too, and judges it the same way.
        return Error::from(error);
    }
    match found.kind {
        Some(kind) if kind != ErrorKind::Group => Error::with_kind(kind, error),
        // 3. A plain OS error (or a group, which `with_kind` cannot make).
        _ => Error::from(error),
    }
}

/// `io::Result<T>` → `trio::Result<T>` through [`from_io`], for `?` in trio
/// code that calls foreign code (plain `?` would use trio's blanket
/// conversion, which does not look inside; see the crate docs).
///
/// ```
/// use trio_compat::error::IoResultExt;
///
/// fn parse(r: std::io::Result<u8>) -> trio::Result<u8> {
///     Ok(r.into_trio()? + 1)
/// }
/// assert_eq!(parse(Ok(1)).unwrap(), 2);
/// ```
pub trait IoResultExt<T> {
    /// Converts the error with [`from_io`].
    fn into_trio(self) -> trio::Result<T>;
}

impl<T> IoResultExt<T> for io::Result<T> {
    fn into_trio(self) -> trio::Result<T> {
        self.map_err(from_io)
    }
}

/// What [`search`] found inside an error.
#[derive(Default)]
struct Found {
    /// A trio error with a `Cancelled` leaf.
    cancelled: bool,
    /// The kind of the outermost trio error found.
    kind: Option<ErrorKind>,
}

/// Looks for trio errors inside `error`: at each level, inside an
/// `io::Error`'s `get_ref()` (its `source()` skips the wrapped error), else
/// through `source()`.
fn search(error: &io::Error) -> Found {
    let mut found = Found::default();
    let mut current: Option<&(dyn StdErrorTrait + 'static)> = Some(error);
    for _ in 0..MAX_DEPTH {
        let Some(e) = current else { break };
        if let Some(trio) = e.downcast_ref::<StdError>() {
            found.cancelled |= trio.0.contains_kind(ErrorKind::Cancelled);
            found.kind.get_or_insert(trio.0.kind());
        }
        current = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    /// A library error that carries an io error as its source, the way
    /// `hyper::Error` does.
    #[derive(Debug)]
    struct LibraryError(io::Error);
    impl fmt::Display for LibraryError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("library failed")
        }
    }
    impl StdErrorTrait for LibraryError {
        fn source(&self) -> Option<&(dyn StdErrorTrait + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn every_kind_round_trips_through_io() {
        let kinds = [
            ErrorKind::TooSlow,
            ErrorKind::Closed,
            ErrorKind::Broken,
            ErrorKind::Busy,
            ErrorKind::WouldBlock,
            ErrorKind::EndOfChannel,
            ErrorKind::InvalidArgument,
            ErrorKind::Usage,
            ErrorKind::RunFinished,
            ErrorKind::Deadlock,
            ErrorKind::Io,
            ErrorKind::Unsupported,
            ErrorKind::Other,
        ];
        for kind in kinds {
            let back = from_io(to_io(Error::new(kind, "x")));
            assert_eq!(back.kind(), kind);
            assert_eq!(back.to_string(), "x");
            // Also through trio's own `From<Error> for io::Error`.
            let back = from_io(io::Error::from(Error::new(kind, "y")));
            assert_eq!(back.kind(), kind);
        }
        let group = Error::group([
            Error::new(ErrorKind::Busy, "a"),
            Error::new(ErrorKind::Closed, "b"),
        ])
        .unwrap();
        let back = from_io(to_io(group));
        assert_eq!(back.kind(), ErrorKind::Group);
        assert_eq!(back.leaves().count(), 2);
    }

    #[test]
    fn io_kinds_round_trip_through_trio() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::TimedOut,
            io::ErrorKind::WouldBlock,
            io::ErrorKind::UnexpectedEof,
        ] {
            let e = from_io(io::Error::new(kind, "os"));
            let back = to_io(e);
            assert_eq!(back.kind(), kind);
            // And trio again: the same kind as the first conversion.
            let again = from_io(back);
            assert!(
                again
                    .find::<io::Error>()
                    .is_some_and(|os| os.kind() == kind)
            );
        }
    }

    #[test]
    fn cancelled_is_never_interrupted() {
        assert_eq!(io_kind(ErrorKind::Cancelled), io::ErrorKind::Other);
    }

    #[test]
    fn a_trio_error_inside_a_library_error_gives_its_kind() {
        let inner = to_io(Error::new(ErrorKind::Closed, "closed"));
        let lib = io::Error::other(LibraryError(inner));
        let e = from_io(lib);
        assert_eq!(e.kind(), ErrorKind::Closed);
        assert!(e.downcast_ref::<io::Error>().is_some());
    }

    #[test]
    fn outside_a_run_nothing_is_cancelled() {
        assert_eq!(
            trio::lowlevel::current_task_is_cancelled()
                .unwrap_err()
                .kind(),
            ErrorKind::Usage
        );
    }
}
