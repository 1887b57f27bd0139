//! The crate's error type.
//!
//! Design: one error type, [`Error`], flows through every task, nursery and
//! cancel scope, so that `?` works on io errors, the runtime's own errors and
//! the user's errors alike (any `std::error::Error + Send + Sync + 'static`
//! converts into it, the way `anyhow::Error` does).
//!
//! Three kinds of value matter to the runtime and are told apart by
//! construction, never by message text:
//! - `Cancelled`: produced only by the runtime (there is no public
//!   constructor), so a cancel scope can never mistake a user's error for its
//!   own cancellation;
//! - a *group*: several failures reported together by a nursery (Trio's
//!   `ExceptionGroup`), with [`Error::leaves`], [`Error::find`] and
//!   [`Error::split`] to look inside. A nursery with exactly one failure
//!   reports that failure itself, not a group of one;
//! - everything else: a kind ([`ErrorKind`]) plus a message or a wrapped error.
//!
//! # Round trips through `io::Error`
//!
//! Trio errors cross into foreign code as an `io::Error` that contains
//! them whole (`From<Error> for io::Error`, as a [`StdError`]), and come
//! back through the same `From` that `?` uses:
//! 1. An `io::Error` whose `get_ref()` is a `StdError` (or a `StdError`
//!    itself) gives back the very error that went in: every kind, groups
//!    included, message and source kept.
//! 2. Otherwise a `Cancelled` buried deeper (at every level inside
//!    `io::Error::get_ref()`, else through `source()`: a library error
//!    carrying the io error it got) is looked for.
//! 3. Anything else is wrapped (`Io`, `WouldBlock`, or `Other`).
//!
//! A `Cancelled` found in step 1 or 2 is judged: a scope must catch its
//! own cancellation and never someone else's (DESIGN §4, §13). It stays
//! `Cancelled` **only if the converting task's own scope chain is
//! cancelled** right now (then its scope catches it, as it would any
//! checkpoint's); otherwise it belonged to another task or scope and
//! becomes [`ErrorKind::Broken`] wrapping a [`ForeignCancelled`] whose
//! source is what carried it. Outside a run nothing is cancelled.
//!
//! `Error` is one word (a `Box`, with `Cancelled` in its null niche) and
//! allocates only for non-cancellation errors; the common `Result<()>`
//! stays small on the hot path.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely. Match on this instead of on message text.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operation was cancelled by an enclosing cancel scope.
    Cancelled,
    /// A `fail_after`/`fail_at` deadline expired.
    TooSlow,
    /// Several failures reported together by a nursery.
    Group,
    /// The resource was closed by this side (Trio's `ClosedResourceError`).
    Closed,
    /// The other side is gone (Trio's `BrokenResourceError`).
    Broken,
    /// Another task is already using the resource in a way that allows only
    /// one (Trio's `BusyResourceError`).
    Busy,
    /// The operation would have had to wait (Trio's `WouldBlock`).
    WouldBlock,
    /// No more values will come (Trio's `EndOfChannel`).
    EndOfChannel,
    /// An argument was out of range: a negative or NaN duration, and so on.
    InvalidArgument,
    /// The runtime was used in a way it does not allow: outside a run, a
    /// nested run, spawning into a closed nursery, and so on.
    Usage,
    /// The run ended while the operation still needed it.
    RunFinished,
    /// No task of the run could ever run again; see
    /// [`Deadlock`](crate::lowlevel::Deadlock).
    Deadlock,
    /// An I/O error from the operating system.
    Io,
    /// The resource cannot do this at all (a stream without half-close asked
    /// for [`send_eof`](crate::stream::Stream::send_eof), say).
    Unsupported,
    /// The run was interrupted by a signal it handles: Ctrl-C (SIGINT), or
    /// SIGTERM when asked (see [`crate::signal`]). The error carries an
    /// [`Interrupted`](crate::signal::Interrupted) with the signal number;
    /// `#[trio::main]` then ends the process by that signal. (Unlike
    /// `std::io::ErrorKind::Interrupted`, this is not "try again".)
    Interrupted,
    /// Any other error, typically one of the user's own.
    Other,
}

/// The error type of every fallible operation in `trio`, and of tasks.
///
/// ```
/// use trio::{Error, ErrorKind};
///
/// fn parse(s: &str) -> trio::Result<u32> {
///     Ok(s.parse::<u32>()?) // a std error converts with `?`
/// }
/// let err: Error = parse("x").unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Other);
/// assert!(err.downcast_ref::<std::num::ParseIntError>().is_some());
/// ```
pub struct Error {
    repr: Repr,
}

enum Repr {
    Cancelled,
    Boxed(Box<Inner>),
}

enum Inner {
    Simple {
        kind: ErrorKind,
        message: Cow<'static, str>,
    },
    Wrapped {
        kind: ErrorKind,
        error: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    Group(Vec<Error>),
}

impl Error {
    /// The runtime's cancellation error. Not public: only the runtime cancels.
    pub(crate) const fn cancelled() -> Error {
        Error {
            repr: Repr::Cancelled,
        }
    }

    /// An error of the given kind with a message.
    ///
    /// ```
    /// let e = trio::Error::new(trio::ErrorKind::Busy, "someone else is reading");
    /// assert_eq!(e.kind(), trio::ErrorKind::Busy);
    /// assert_eq!(e.to_string(), "someone else is reading");
    /// ```
    ///
    /// Asking for [`ErrorKind::Cancelled`] or [`ErrorKind::Group`] gives an
    /// [`ErrorKind::Other`] error instead: only the runtime produces those.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Error {
        let kind = match kind {
            ErrorKind::Cancelled | ErrorKind::Group => ErrorKind::Other,
            k => k,
        };
        Error::boxed(Inner::Simple {
            kind,
            message: message.into(),
        })
    }

    /// Wraps any error under the given kind.
    pub fn with_kind<E>(kind: ErrorKind, error: E) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let kind = match kind {
            ErrorKind::Cancelled | ErrorKind::Group => ErrorKind::Other,
            k => k,
        };
        Error::boxed(Inner::Wrapped {
            kind,
            error: Box::new(error),
        })
    }

    fn boxed(inner: Inner) -> Error {
        Error {
            repr: Repr::Boxed(Box::new(inner)),
        }
    }

    pub(crate) fn usage(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Usage, message)
    }

    pub(crate) fn invalid(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn outside_run() -> Error {
        Error::usage("this must be called from inside trio::run")
    }
}

/// The panic of an infallible run-only function called outside a run
/// (misuse, see [Errors and panics](crate#errors-and-panics)): says which
/// fallible twin to use instead. Out of line and cold, so callers stay small.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn panic_outside_run(function: &str, twin: &str) -> ! {
    panic!(
        "trio::{function}() called outside trio::run; use trio::{twin} in code that may run outside"
    )
}

impl Error {
    /// Builds a group from several errors. Nested groups are flattened,
    /// repeated cancellations are kept once, and a group of one is that one
    /// error. Returns `None` for no errors.
    ///
    /// ```
    /// use trio::{Error, ErrorKind};
    /// let g = Error::group(vec![
    ///     Error::new(ErrorKind::Busy, "a"),
    ///     Error::new(ErrorKind::Broken, "b"),
    /// ])
    /// .unwrap();
    /// assert_eq!(g.kind(), ErrorKind::Group);
    /// assert_eq!(g.leaves().count(), 2);
    /// ```
    pub fn group(errors: impl IntoIterator<Item = Error>) -> Option<Error> {
        let mut flat = Vec::new();
        let mut saw_cancel = false;
        for e in errors {
            e.flatten_into(&mut flat, &mut saw_cancel);
        }
        match flat.len() {
            0 => None,
            1 => flat.pop(),
            _ => Some(Error::boxed(Inner::Group(flat))),
        }
    }

    fn flatten_into(self, out: &mut Vec<Error>, saw_cancel: &mut bool) {
        match self.repr {
            Repr::Cancelled => {
                if !*saw_cancel {
                    *saw_cancel = true;
                    out.push(Error::cancelled());
                }
            }
            Repr::Boxed(inner) => match *inner {
                Inner::Group(v) => {
                    for e in v {
                        e.flatten_into(out, saw_cancel);
                    }
                }
                other => out.push(Error {
                    repr: Repr::Boxed(Box::new(other)),
                }),
            },
        }
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        match &self.repr {
            Repr::Cancelled => ErrorKind::Cancelled,
            Repr::Boxed(inner) => match &**inner {
                Inner::Simple { kind, .. } | Inner::Wrapped { kind, .. } => *kind,
                Inner::Group(_) => ErrorKind::Group,
            },
        }
    }

    /// True if this is the runtime's cancellation (not a group containing one).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// True if this is a group of several errors.
    pub fn is_group(&self) -> bool {
        self.kind() == ErrorKind::Group
    }

    /// The errors inside, without groups: the error itself if it is not a
    /// group. Works the same whether one or several tasks failed.
    pub fn leaves(&self) -> impl Iterator<Item = &Error> {
        let slice: &[Error] = match &self.repr {
            Repr::Boxed(inner) => match &**inner {
                Inner::Group(v) => v,
                _ => std::slice::from_ref(self),
            },
            Repr::Cancelled => std::slice::from_ref(self),
        };
        slice.iter()
    }

    /// Consumes the error and returns its leaves (see [`Error::leaves`]).
    pub fn into_leaves(self) -> Vec<Error> {
        match self.repr {
            Repr::Boxed(inner) => match *inner {
                Inner::Group(v) => v,
                other => vec![Error {
                    repr: Repr::Boxed(Box::new(other)),
                }],
            },
            Repr::Cancelled => vec![self],
        }
    }

    /// The wrapped error as `E`, if this error wraps one of that type.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match &self.repr {
            Repr::Boxed(inner) => match &**inner {
                Inner::Wrapped { error, .. } => error.downcast_ref::<E>(),
                _ => None,
            },
            Repr::Cancelled => None,
        }
    }

    /// The first leaf (see [`Error::leaves`]) that wraps an `E`.
    ///
    /// ```
    /// # use trio::{Error, ErrorKind};
    /// let io = std::io::Error::other("disk on fire");
    /// let g = Error::group(vec![Error::new(ErrorKind::Busy, "x"), io.into()]).unwrap();
    /// assert!(g.find::<std::io::Error>().is_some());
    /// ```
    pub fn find<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.leaves().find_map(|e| e.downcast_ref::<E>())
    }

    /// True if any leaf has this kind.
    pub fn contains_kind(&self, kind: ErrorKind) -> bool {
        self.leaves().any(|e| e.kind() == kind)
    }

    /// Splits the leaves into those matching `pred` and the rest, each side
    /// rebuilt as an error (or `None` if empty).
    ///
    /// ```
    /// # use trio::{Error, ErrorKind};
    /// let g = Error::group(vec![Error::new(ErrorKind::Busy, "a"), Error::new(ErrorKind::Broken, "b")]).unwrap();
    /// let (busy, rest) = g.split(|e| e.kind() == ErrorKind::Busy);
    /// assert_eq!(busy.unwrap().kind(), ErrorKind::Busy);
    /// assert_eq!(rest.unwrap().kind(), ErrorKind::Broken);
    /// ```
    pub fn split(self, mut pred: impl FnMut(&Error) -> bool) -> (Option<Error>, Option<Error>) {
        let (yes, no): (Vec<Error>, Vec<Error>) =
            self.into_leaves().into_iter().partition(|e| pred(e));
        (Error::group(yes), Error::group(no))
    }

    /// Converts into a boxed standard error, for callers outside `trio`
    /// (`main` returning `Box<dyn Error>`, say).
    pub fn into_std(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        Box::new(StdError(self))
    }
}

/// `Error` as a `std::error::Error`, for code that needs one. (`Error` itself
/// cannot implement the trait, for the same coherence reason as
/// `anyhow::Error`: it converts from every such error.)
pub struct StdError(pub Error);

impl fmt::Debug for StdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
impl fmt::Display for StdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl std::error::Error for StdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.repr {
            Repr::Boxed(inner) => match &**inner {
                Inner::Wrapped { error, .. } => Some(&**error),
                _ => None,
            },
            Repr::Cancelled => None,
        }
    }
}

impl From<Error> for Box<dyn std::error::Error + Send + Sync + 'static> {
    fn from(e: Error) -> Self {
        e.into_std()
    }
}

impl From<Error> for Box<dyn std::error::Error + 'static> {
    fn from(e: Error) -> Self {
        e.into_std()
    }
}

impl From<Error> for std::io::Error {
    /// An `io::Error` that contains the trio error whole (as a
    /// [`StdError`]), so converting back (`?`, `From`) gives it back (see
    /// [`ForeignCancelled`] for what happens to a `Cancelled`). The io
    /// kind is the wrapped OS error's own if there is one, else one that
    /// stands for the trio kind (`Cancelled` is `Other`, never
    /// `Interrupted`, which read loops retry).
    fn from(e: Error) -> Self {
        let kind = match e.downcast_ref::<std::io::Error>() {
            Some(os) => os.kind(),
            None => match e.kind() {
                ErrorKind::WouldBlock => std::io::ErrorKind::WouldBlock,
                ErrorKind::InvalidArgument => std::io::ErrorKind::InvalidInput,
                ErrorKind::Broken => std::io::ErrorKind::BrokenPipe,
                ErrorKind::TooSlow => std::io::ErrorKind::TimedOut,
                ErrorKind::Unsupported => std::io::ErrorKind::Unsupported,
                ErrorKind::Busy => std::io::ErrorKind::ResourceBusy,
                _ => std::io::ErrorKind::Other,
            },
        };
        std::io::Error::new(kind, StdError(e))
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    /// Wraps `error`, except that a trio error that went out through
    /// `io::Error` (or [`StdError`]) comes back as itself, and a
    /// cancellation found inside (also deeper, in `io::Error::get_ref()`
    /// and `source()` chains) is judged as [`ForeignCancelled`] explains.
    fn from(error: E) -> Self {
        let any: &dyn Any = &error;
        let io = any.downcast_ref::<std::io::Error>();
        // 1. One of ours, converted whole: take it back out.
        let ours = match io {
            Some(io) => io.get_ref().is_some_and(|inner| inner.is::<StdError>()),
            None => any.is::<StdError>(),
        };
        if ours {
            return take_back(error);
        }
        // 2. A cancellation buried deeper (a library error carrying one).
        if holds_cancelled(&error) {
            return if current_task_is_cancelled() {
                Error::cancelled()
            } else {
                Error::with_kind(ErrorKind::Broken, ForeignCancelled::new(error))
            };
        }
        // 3. Anything else, wrapped.
        let kind = match io {
            Some(io) if io.kind() == std::io::ErrorKind::WouldBlock => ErrorKind::WouldBlock,
            Some(_) => ErrorKind::Io,
            None => ErrorKind::Other,
        };
        Error::boxed(Inner::Wrapped {
            kind,
            error: Box::new(error),
        })
    }
}

/// How deep [`holds_cancelled`] looks. Real chains are a few levels deep;
/// the bound only guarantees an end on a chain a buggy `source()` made
/// circular.
const MAX_SOURCE_DEPTH: usize = 64;

/// Step 1 of `From<E>`: `error` is a [`StdError`], or an `io::Error` whose
/// `get_ref()` is one. Takes the trio error out (by value: no clone, no
/// allocation) and [`adopt`]s it.
#[cold]
fn take_back<E: Any>(error: E) -> Error {
    let mut slot = Some(error);
    let any: &mut dyn Any = &mut slot;
    if let Some(std) = any
        .downcast_mut::<Option<StdError>>()
        .and_then(Option::take)
    {
        return adopt(std.0);
    }
    let taken = any
        .downcast_mut::<Option<std::io::Error>>()
        .and_then(Option::take)
        .and_then(std::io::Error::into_inner)
        .map(|inner| inner.downcast::<StdError>());
    match taken {
        Some(Ok(std)) => adopt(std.0),
        // Not reachable (the caller checked); an error, not a panic.
        _ => Error::new(ErrorKind::Io, "an io::Error lost its trio error"),
    }
}

/// A trio error back from a trip through foreign code: itself, except
/// that a `Cancelled` in it stays `Cancelled` only if the current task's
/// scope chain is cancelled; otherwise it becomes `Broken` wrapping a
/// [`ForeignCancelled`] (the module docs say why).
fn adopt(error: Error) -> Error {
    if !error.contains_kind(ErrorKind::Cancelled) || current_task_is_cancelled() {
        return error;
    }
    if error.is_cancelled() {
        return stale(error);
    }
    // A group holding a Cancelled: only that leaf changes.
    let (cancelled, rest) = error.split(Error::is_cancelled);
    Error::group(cancelled.map(stale).into_iter().chain(rest))
        .unwrap_or_else(|| Error::new(ErrorKind::Other, "an empty error group"))
}

/// A `Cancelled` that is not the current task's, as `Broken`.
fn stale(cancelled: Error) -> Error {
    Error::with_kind(
        ErrorKind::Broken,
        ForeignCancelled::new(StdError(cancelled)),
    )
}

/// Whether the current task is inside a cancelled scope (false outside a
/// run: nothing is cancelled there).
fn current_task_is_cancelled() -> bool {
    crate::core::runtime::with_runtime(|rt| crate::core::cancel_waiter::is_cancelled_now(rt))
        .unwrap_or(false)
}

/// Whether a trio `Cancelled` is inside `error`: at each level inside an
/// `io::Error`'s `get_ref()` (its `source()` skips the error it wraps),
/// else through `source()`.
fn holds_cancelled(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    for _ in 0..MAX_SOURCE_DEPTH {
        let Some(e) = current else { return false };
        if let Some(trio) = e.downcast_ref::<StdError>()
            && trio.0.contains_kind(ErrorKind::Cancelled)
        {
            return true;
        }
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

/// A cancellation that reached a task whose own scopes are not cancelled:
/// it belonged to another task or scope and came here through foreign code
/// (a cancelled connection-driver task's error, handed to a request task
/// through a library's shared state, say). Converting such an error into
/// [`Error`] gives [`ErrorKind::Broken`] wrapping this, so no scope
/// mistakes it for its own; its [`source`](std::error::Error::source) is
/// the error that carried it.
///
/// The rule, applied by `From<E> for Error` (what `?` uses): a trio error
/// that went out as an `io::Error` (`From<Error> for io::Error`) comes back
/// as the very same error, every kind; a `Cancelled` in it, or found
/// deeper (inside `io::Error::get_ref()` at every level, and through
/// `source()` chains, as in a library error carrying the io error it got),
/// stays `Cancelled` **only if the converting task's own scope chain is
/// cancelled** (then its scope catches it as its own), and otherwise
/// becomes `Broken` wrapping this. Outside a run nothing is cancelled.
///
/// ```
/// use trio::{ErrorKind, ForeignCancelled};
///
/// trio::run(async {
///     let scope = trio::CancelScope::new();
///     scope.cancel();
///     // A Cancelled made in a scope that has since exited ...
///     let stale = scope.run(async { Ok(trio::checkpoint().await) }).await?.unwrap().unwrap_err();
///     // ... sent out through io::Error and converted back here, uncancelled.
///     let e = trio::Error::from(std::io::Error::from(stale));
///     assert_eq!(e.kind(), ErrorKind::Broken);
///     assert!(e.downcast_ref::<ForeignCancelled>().is_some());
///     Ok(())
/// })
/// .unwrap();
/// ```
pub struct ForeignCancelled {
    carrier: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl ForeignCancelled {
    /// Wraps the error that carried a foreign cancellation.
    pub fn new(carrier: impl std::error::Error + Send + Sync + 'static) -> Self {
        ForeignCancelled {
            carrier: Box::new(carrier),
        }
    }

    /// The error that carried the cancellation.
    pub fn carrier(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.carrier
    }
}

impl fmt::Debug for ForeignCancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignCancelled")
            .field("carrier", &self.carrier)
            .finish()
    }
}

impl fmt::Display for ForeignCancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a cancellation that belongs to another task or scope reached this task through foreign code",
        )
    }
}

impl std::error::Error for ForeignCancelled {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.carrier)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("cancelled"),
            Repr::Boxed(inner) => match &**inner {
                Inner::Simple { message, .. } => f.write_str(message),
                Inner::Wrapped { error, .. } => fmt::Display::fmt(error, f),
                Inner::Group(v) => {
                    write!(f, "{} errors: ", v.len())?;
                    for (i, e) in v.iter().enumerate() {
                        if i > 0 {
                            f.write_str("; ")?;
                        }
                        write!(f, "[{}] {e}", i + 1)?;
                    }
                    Ok(())
                }
            },
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("Cancelled"),
            Repr::Boxed(inner) => match &**inner {
                Inner::Simple { kind, message } => f
                    .debug_struct("Error")
                    .field("kind", kind)
                    .field("message", message)
                    .finish(),
                Inner::Wrapped { kind, error } => f
                    .debug_struct("Error")
                    .field("kind", kind)
                    .field("error", error)
                    .finish(),
                Inner::Group(v) => f.debug_tuple("Group").field(v).finish(),
            },
        }
    }
}

/// Short questions about a `trio::Result`, for tests and cleanup code:
/// `r.is_cancelled()` instead of `r.as_ref().is_err_and(trio::Error::is_cancelled)`.
/// In [`trio::prelude`](crate::prelude).
///
/// ```
/// use trio::prelude::*;
/// trio::run(async {
///     let scope = CancelScope::new();
///     scope.cancel();
///     scope
///         .run(async {
///             let r = trio::checkpoint().await;
///             assert!(r.is_cancelled());
///             assert!(r.is_err_kind(ErrorKind::Cancelled));
///             assert!(!trio::sleep(-1.0).await.is_cancelled()); // a bad duration
///             Ok(())
///         })
///         .await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub trait ResultExt {
    /// True if this is `Err` holding the runtime's cancellation (see
    /// [`Error::is_cancelled`]).
    fn is_cancelled(&self) -> bool;
    /// True if this is `Err` of this kind (see [`Error::kind`]).
    fn is_err_kind(&self, kind: ErrorKind) -> bool;
}

impl<T> ResultExt for Result<T> {
    fn is_cancelled(&self) -> bool {
        self.as_ref().is_err_and(Error::is_cancelled)
    }
    fn is_err_kind(&self, kind: ErrorKind) -> bool {
        self.as_ref().is_err_and(|e| e.kind() == kind)
    }
}

/// What a task may return: `()` or `trio::Result<()>`. Its error goes to the
/// nursery.
///
/// Only these two, so that `?` inside an `async move { … Ok(()) }` child
/// infers its error type without annotations. A function returning another
/// error type can be spawned as `async { f().await.map_err(trio::Error::from) }`.
pub trait TaskResult {
    /// Converts into the runtime's task outcome.
    fn into_task_result(self) -> Result<()>;
}

impl TaskResult for () {
    fn into_task_result(self) -> Result<()> {
        Ok(())
    }
}

impl TaskResult for Result<()> {
    fn into_task_result(self) -> Result<()> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_flattens_and_dedups_cancelled() {
        let g = Error::group(vec![
            Error::cancelled(),
            Error::group(vec![Error::cancelled(), Error::new(ErrorKind::Busy, "x")]).unwrap(),
        ])
        .unwrap();
        assert_eq!(g.leaves().count(), 2);
        let (c, rest) = g.split(Error::is_cancelled);
        assert!(c.unwrap().is_cancelled());
        assert_eq!(rest.unwrap().kind(), ErrorKind::Busy);
        assert!(Error::group(vec![]).is_none());
        assert!(
            Error::group(vec![Error::cancelled(), Error::cancelled()])
                .unwrap()
                .is_cancelled()
        );
    }

    #[test]
    fn users_cannot_make_cancelled() {
        assert_eq!(
            Error::new(ErrorKind::Cancelled, "fake").kind(),
            ErrorKind::Other
        );
        assert!(!Error::new(ErrorKind::Cancelled, "fake").is_cancelled());
    }

    #[test]
    fn io_errors_keep_their_kind() {
        let e: Error = std::io::Error::from(std::io::ErrorKind::WouldBlock).into();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        let e: Error = std::io::Error::other("x").into();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(e.find::<std::io::Error>().is_some());
    }

    /// The module docs promise one word (and so two for `Result<()>`: a
    /// `Box` has only the one niche, which `Cancelled` takes).
    #[test]
    fn error_is_one_word() {
        assert_eq!(size_of::<Error>(), size_of::<usize>());
        assert!(size_of::<Result<()>>() <= 2 * size_of::<usize>());
    }
}
