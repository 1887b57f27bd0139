//! [`Path`]: an owned path whose I/O methods are async (Trio's `trio.Path`).
//!
//! # Why a newtype, not an extension trait
//!
//! Two Rust forms were possible: a `trio::Path` type, or an
//! `AsyncPathExt` trait with async methods on [`std::path::Path`]. The
//! trait cannot use the natural names: `std::path::Path` already has ten
//! *blocking* inherent methods that do I/O (`metadata`,
//! `symlink_metadata`, `exists`, `try_exists`, `is_file`, `is_dir`,
//! `is_symlink`, `read_dir`, `read_link`, `canonicalize`), and an inherent
//! method always wins over a trait method. So `path.metadata().await`
//! would not compile (a `Metadata` is not a future), and
//! `if path.exists() { … }` would compile and block the run loop. The
//! trait would need other names (`metadata_async`), or fully qualified
//! calls, for exactly the methods people use most.
//!
//! A newtype has no such problem: its inherent async methods shadow all
//! ten blocking ones reached through [`Deref`], so on a `trio::Path`
//! *every* method that does I/O is the async one, and a blocking call can
//! only be made on purpose (`path.as_path().metadata()`). It is also what
//! Trio users know (`trio.Path`, re-exported here as
//! [`trio::Path`](crate::Path)).
//!
//! ```compile_fail,E0308
//! let path = trio::Path::from("/tmp");
//! // Not std's blocking `exists`: the async one, a future.
//! let blocking: bool = path.exists();
//! ```
//!
//! # What it is
//!
//! - An owned path: a [`PathBuf`] inside ([`Path::new`], `From<&str>`,
//!   `From<String>`, `From<PathBuf>`, `From<&std::path::Path>`, [`FromStr`];
//!   back with [`Path::into_path_buf`] or `PathBuf::from`). It is `Clone`,
//!   `Eq`, `Ord`, `Hash` and `Borrow<std::path::Path>` exactly as
//!   `PathBuf` is, `Debug` like `PathBuf`, and `Display` as
//!   [`std::path::Path::display`] (lossy for non-UTF-8 names).
//! - `Deref<Target = std::path::Path>` and `AsRef<std::path::Path>`: every
//!   pure method of `std::path::Path` works (`file_name`, `extension`,
//!   `components`, `starts_with` …), and a `trio::Path` can be passed to
//!   anything taking `impl AsRef<std::path::Path>` (the free functions of
//!   [`trio::fs`](crate::fs), `std::process::Command::current_dir` …).
//! - The methods that build a new path are inherent and return a
//!   `trio::Path`, as Trio's do, so chains stay async-capable:
//!   [`join`](Path::join), [`parent`](Path::parent),
//!   [`with_file_name`](Path::with_file_name),
//!   [`with_extension`](Path::with_extension); so are the mutators of
//!   `PathBuf` ([`push`](Path::push), [`pop`](Path::pop),
//!   [`set_file_name`](Path::set_file_name),
//!   [`set_extension`](Path::set_extension)).
//! - Async I/O methods, each the free function of [`trio::fs`](crate::fs) of
//!   the same name (or [`File`]'s constructor) on this path: the same
//!   worker threads, the same errors naming the path, the same
//!   [cancellation](super#cancellation) (a call cancelled while its thread
//!   runs completes; the cancellation comes at the next checkpoint).
//!   [`canonicalize`](Path::canonicalize) and
//!   [`read_link`](Path::read_link) return a `trio::Path`.
//!
//! # Queries say false on I/O errors, not on cancellation
//!
//! [`exists`](Path::exists), [`is_file`](Path::is_file),
//! [`is_dir`](Path::is_dir) and [`is_symlink`](Path::is_symlink) answer
//! `false` when the OS says no *or* fails, as std's do; but they return
//! `Result<bool>`, not `bool`. Each is a checkpoint, and swallowing its
//! `Cancelled` into `false` would break Trio's rule that a cancelled
//! checkpoint raises: a loop such as `while !path.exists().await? { … }`
//! with no other checkpoint would spin forever once cancelled, each call
//! answering `false` at once. So only an [`ErrorKind::Io`] error becomes
//! `Ok(false)`; `Cancelled` (and use outside a run) is returned.
//!
//! # Options
//!
//! A `Path` is plain data and carries no [`Builder`](super::Builder)
//! options (so equal paths are equal, whatever options they were made
//! with). To run an operation on a `Path` with a limiter or abandoning on
//! cancel, pass the path to the `Builder`'s method of the same name:
//! `Builder::new().abandon_on_cancel(true).read_dir(&path)`.
//!
//! ```
//! use trio::Path;
//!
//! trio::run(async {
//!     let dir = Path::from(std::env::temp_dir())
//!         .join(format!("trio-doc-path-{}", std::process::id()));
//!     dir.create_dir_all().await?;
//!     let notes = dir.join("notes.txt");
//!     notes.write("remember the milk\n").await?;
//!     assert!(notes.is_file().await?);
//!     assert_eq!(notes.read_to_string().await?, "remember the milk\n");
//!     assert_eq!(notes.extension().unwrap(), "txt"); // std's, through Deref
//!     assert_eq!(notes.parent().as_ref(), Some(&dir));
//!     dir.remove_dir_all().await?;
//!     assert!(!dir.exists().await?);
//!     Ok(())
//! })
//! .unwrap();
//! ```

use super::{File, OpenOptions, ReadDir};
use crate::error::{ErrorKind, Result};
use std::borrow::Borrow;
use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::ops::Deref;
use std::path::{Path as StdPath, PathBuf};
use std::str::FromStr;

/// An owned filesystem path with async I/O methods (Trio's `trio.Path`);
/// see [the module docs](self) for why it is a type and how it relates to
/// [`std::path::Path`].
///
/// ```
/// use trio::Path;
///
/// trio::run(async {
///     let tmp = Path::from(std::env::temp_dir());
///     assert!(tmp.is_dir().await?);
///     let file = tmp.join("trio-doc-path-type").with_extension("txt");
///     assert_eq!(file.file_name().unwrap(), "trio-doc-path-type.txt");
///     assert_eq!(file.to_string(), format!("{}/trio-doc-path-type.txt", tmp));
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(PathBuf);

impl Path {
    /// A path from anything a [`PathBuf`] can be made from (`&str`,
    /// `String`, `&std::path::Path`, `OsString` …).
    pub fn new(path: impl Into<PathBuf>) -> Path {
        Path(path.into())
    }

    /// The path as a [`std::path::Path`] (also what [`Deref`] gives).
    pub fn as_path(&self) -> &StdPath {
        &self.0
    }

    /// The path as a [`PathBuf`], without copying.
    pub fn into_path_buf(self) -> PathBuf {
        self.0
    }

    // ----- building paths: these return a trio Path --------------------------------

    /// `self` with `path` appended ([`std::path::Path::join`]; an absolute
    /// `path` replaces `self`).
    pub fn join(&self, path: impl AsRef<StdPath>) -> Path {
        Path(self.0.join(path))
    }

    /// The path without its final component, if there is one
    /// ([`std::path::Path::parent`]), as an owned `trio::Path`.
    pub fn parent(&self) -> Option<Path> {
        self.0.parent().map(Path::from)
    }

    /// `self` with its file name replaced
    /// ([`std::path::Path::with_file_name`]).
    pub fn with_file_name(&self, file_name: impl AsRef<OsStr>) -> Path {
        Path(self.0.with_file_name(file_name))
    }

    /// `self` with its extension replaced or added
    /// ([`std::path::Path::with_extension`]).
    pub fn with_extension(&self, extension: impl AsRef<OsStr>) -> Path {
        Path(self.0.with_extension(extension))
    }

    /// Appends `path` in place ([`PathBuf::push`]).
    pub fn push(&mut self, path: impl AsRef<StdPath>) {
        self.0.push(path);
    }

    /// Removes the final component in place; false if there was none
    /// ([`PathBuf::pop`]).
    pub fn pop(&mut self) -> bool {
        self.0.pop()
    }

    /// Replaces the file name in place ([`PathBuf::set_file_name`]).
    pub fn set_file_name(&mut self, file_name: impl AsRef<OsStr>) {
        self.0.set_file_name(file_name);
    }

    /// Replaces the extension in place; false if there is no file name
    /// ([`PathBuf::set_extension`]).
    pub fn set_extension(&mut self, extension: impl AsRef<OsStr>) -> bool {
        self.0.set_extension(extension)
    }

    // ----- opening files -----------------------------------------------------------

    /// Opens the file read-only ([`File::open`]).
    ///
    /// ```
    /// use trio::Path;
    ///
    /// trio::run(async {
    ///     let p = Path::from(std::env::temp_dir())
    ///         .join(format!("trio-doc-path-open-{}", std::process::id()));
    ///     let f = p.create().await?;
    ///     f.write_all(b"abc").await?;
    ///     f.aclose().await?;
    ///     let f = p.open().await?;
    ///     let mut text = String::new();
    ///     f.read_to_string(&mut text).await?;
    ///     assert_eq!(text, "abc");
    ///     f.aclose().await?;
    ///     p.remove_file().await?;
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn open(&self) -> Result<File> {
        File::open(self).await
    }

    /// Opens the file with `options` ([`OpenOptions::open`], Trio's
    /// `Path.open(mode)`).
    ///
    /// ```
    /// use trio::Path;
    /// use trio::fs::OpenOptions;
    ///
    /// trio::run(async {
    ///     let p = Path::from(std::env::temp_dir())
    ///         .join(format!("trio-doc-path-open-with-{}", std::process::id()));
    ///     p.write("one\n").await?;
    ///     let f = p.open_with(OpenOptions::new().append(true)).await?;
    ///     f.write_all(b"two\n").await?;
    ///     f.aclose().await?;
    ///     assert_eq!(p.read_to_string().await?, "one\ntwo\n");
    ///     p.remove_file().await?;
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn open_with(&self, options: &OpenOptions) -> Result<File> {
        options.open(self).await
    }

    /// Opens the file write-only, creating or truncating it
    /// ([`File::create`]).
    pub async fn create(&self) -> Result<File> {
        File::create(self).await
    }

    /// Creates the file, read-write; an `AlreadyExists` error if it exists
    /// ([`File::create_new`]).
    pub async fn create_new(&self) -> Result<File> {
        File::create_new(self).await
    }

    // ----- whole-file I/O ----------------------------------------------------------

    /// Reads the whole file ([`read`](super::read)).
    pub async fn read(&self) -> Result<Vec<u8>> {
        super::read(self).await
    }

    /// Reads the whole file as UTF-8 ([`read_to_string`](super::read_to_string)).
    pub async fn read_to_string(&self) -> Result<String> {
        super::read_to_string(self).await
    }

    /// Writes `contents` as the whole file, creating or truncating it
    /// ([`write`](super::write())).
    pub async fn write(&self, contents: impl AsRef<[u8]>) -> Result<()> {
        super::write(self, contents).await
    }

    // ----- metadata and queries ----------------------------------------------------

    /// The metadata, following symlinks ([`metadata`](super::metadata)).
    pub async fn metadata(&self) -> Result<std::fs::Metadata> {
        super::metadata(self).await
    }

    /// The metadata of the path itself, not following a final symlink
    /// ([`symlink_metadata`](super::symlink_metadata)).
    pub async fn symlink_metadata(&self) -> Result<std::fs::Metadata> {
        super::symlink_metadata(self).await
    }

    /// Whether the path exists (following symlinks); `Ok(false)` also when
    /// that cannot be told, as [`std::path::Path::exists`]. See
    /// [`try_exists`](Path::try_exists) to tell the two apart.
    ///
    /// Like every call here it is a checkpoint, so it returns `Result`: an
    /// I/O error means `false`, but a cancellation (or use outside a run)
    /// is an error; the [module
    /// docs](self#queries-say-false-on-io-errors-not-on-cancellation) say
    /// why.
    pub async fn exists(&self) -> Result<bool> {
        false_on_io_error(self.try_exists().await)
    }

    /// Whether the path exists (following symlinks); an error if that
    /// cannot be told ([`try_exists`](super::try_exists)).
    pub async fn try_exists(&self) -> Result<bool> {
        super::try_exists(self).await
    }

    /// Whether the path is a regular file (following symlinks);
    /// `Ok(false)` on an I/O error, as [`std::path::Path::is_file`], but
    /// an error when cancelled (see [`exists`](Path::exists)).
    pub async fn is_file(&self) -> Result<bool> {
        false_on_io_error(self.metadata().await.map(|m| m.is_file()))
    }

    /// Whether the path is a directory (following symlinks); `Ok(false)`
    /// on an I/O error, as [`std::path::Path::is_dir`], but an error when
    /// cancelled (see [`exists`](Path::exists)).
    pub async fn is_dir(&self) -> Result<bool> {
        false_on_io_error(self.metadata().await.map(|m| m.is_dir()))
    }

    /// Whether the path is a symbolic link (not following it); `Ok(false)`
    /// on an I/O error, as [`std::path::Path::is_symlink`], but an error
    /// when cancelled (see [`exists`](Path::exists)).
    pub async fn is_symlink(&self) -> Result<bool> {
        false_on_io_error(
            self.symlink_metadata()
                .await
                .map(|m| m.file_type().is_symlink()),
        )
    }

    /// The absolute path with every symlink and `..` resolved
    /// ([`canonicalize`](super::canonicalize)).
    pub async fn canonicalize(&self) -> Result<Path> {
        super::canonicalize(self).await.map(Path)
    }

    /// The target of this symbolic link ([`read_link`](super::read_link)).
    pub async fn read_link(&self) -> Result<Path> {
        super::read_link(self).await.map(Path)
    }

    /// Changes the permissions ([`set_permissions`](super::set_permissions)).
    pub async fn set_permissions(&self, permissions: std::fs::Permissions) -> Result<()> {
        super::set_permissions(self, permissions).await
    }

    // ----- directories -------------------------------------------------------------

    /// Lists the directory: an async stream of entries
    /// ([`read_dir`](super::read_dir)).
    ///
    /// ```
    /// use trio::Path;
    ///
    /// trio::run(async {
    ///     let dir = Path::from(std::env::temp_dir())
    ///         .join(format!("trio-doc-path-read-dir-{}", std::process::id()));
    ///     dir.create_dir_all().await?;
    ///     dir.join("a.txt").write("").await?;
    ///     let mut entries = dir.read_dir().await?;
    ///     let mut names = Vec::new();
    ///     while let Some(entry) = entries.next_entry().await? {
    ///         names.push(entry.file_name());
    ///     }
    ///     assert_eq!(names, ["a.txt"]);
    ///     dir.remove_dir_all().await?;
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn read_dir(&self) -> Result<ReadDir> {
        super::read_dir(self).await
    }

    /// Creates this directory ([`create_dir`](super::create_dir)).
    pub async fn create_dir(&self) -> Result<()> {
        super::create_dir(self).await
    }

    /// Creates this directory and any missing parents
    /// ([`create_dir_all`](super::create_dir_all)).
    pub async fn create_dir_all(&self) -> Result<()> {
        super::create_dir_all(self).await
    }

    /// Removes this file or symlink ([`remove_file`](super::remove_file)).
    pub async fn remove_file(&self) -> Result<()> {
        super::remove_file(self).await
    }

    /// Removes this empty directory ([`remove_dir`](super::remove_dir)).
    pub async fn remove_dir(&self) -> Result<()> {
        super::remove_dir(self).await
    }

    /// Removes this directory and everything in it
    /// ([`remove_dir_all`](super::remove_dir_all)).
    pub async fn remove_dir_all(&self) -> Result<()> {
        super::remove_dir_all(self).await
    }

    // ----- two paths: this one is the first argument of the fs function -----------

    /// Renames this path to `to`, replacing `to` if it exists
    /// ([`rename`](super::rename)).
    pub async fn rename(&self, to: impl AsRef<StdPath>) -> Result<()> {
        super::rename(self, to).await
    }

    /// Copies this file's contents and permissions to `to`; returns the
    /// number of bytes copied ([`copy`](super::copy)).
    pub async fn copy(&self, to: impl AsRef<StdPath>) -> Result<u64> {
        super::copy(self, to).await
    }

    /// Makes `link` a hard link to this file
    /// ([`hard_link`](super::hard_link)`(self, link)`).
    pub async fn hard_link(&self, link: impl AsRef<StdPath>) -> Result<()> {
        super::hard_link(self, link).await
    }

    /// Makes `link` a symbolic link to this path
    /// ([`symlink`](super::symlink)`(self, link)`).
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub async fn symlink(&self, link: impl AsRef<StdPath>) -> Result<()> {
        super::symlink(self, link).await
    }
}

/// The answer of a yes/no query: an I/O error is "no" (as std's
/// `exists`, `is_file` … say), any other error (`Cancelled`, no run) goes
/// to the caller.
fn false_on_io_error(answer: Result<bool>) -> Result<bool> {
    match answer {
        Err(e) if e.kind() == ErrorKind::Io => Ok(false),
        other => other,
    }
}

impl Deref for Path {
    type Target = StdPath;

    fn deref(&self) -> &StdPath {
        &self.0
    }
}

impl AsRef<StdPath> for Path {
    fn as_ref(&self) -> &StdPath {
        &self.0
    }
}

impl AsRef<OsStr> for Path {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

/// Sound because `Path`'s `Eq`, `Ord` and `Hash` are `PathBuf`'s, which
/// agree with `std::path::Path`'s: a `HashMap<trio::Path, _>` can be looked
/// up with a `&std::path::Path`.
impl Borrow<StdPath> for Path {
    fn borrow(&self) -> &StdPath {
        &self.0
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As a PathBuf shows itself: `"/tmp/x"`.
        fmt::Debug::fmt(&self.0, f)
    }
}

/// As [`std::path::Path::display`]: non-UTF-8 bytes are shown as U+FFFD.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.display(), f)
    }
}

impl From<PathBuf> for Path {
    fn from(path: PathBuf) -> Path {
        Path(path)
    }
}

impl From<&StdPath> for Path {
    fn from(path: &StdPath) -> Path {
        Path(path.to_path_buf())
    }
}

impl From<&PathBuf> for Path {
    fn from(path: &PathBuf) -> Path {
        Path(path.clone())
    }
}

impl From<&str> for Path {
    fn from(path: &str) -> Path {
        Path(PathBuf::from(path))
    }
}

impl From<String> for Path {
    fn from(path: String) -> Path {
        Path(PathBuf::from(path))
    }
}

impl From<OsString> for Path {
    fn from(path: OsString) -> Path {
        Path(PathBuf::from(path))
    }
}

impl From<&Path> for Path {
    fn from(path: &Path) -> Path {
        path.clone()
    }
}

impl From<Path> for PathBuf {
    fn from(path: Path) -> PathBuf {
        path.0
    }
}

impl FromStr for Path {
    type Err = Infallible;

    fn from_str(s: &str) -> std::result::Result<Path, Infallible> {
        Ok(Path::from(s))
    }
}

impl PartialEq<StdPath> for Path {
    fn eq(&self, other: &StdPath) -> bool {
        self.0 == other
    }
}

impl PartialEq<&StdPath> for Path {
    fn eq(&self, other: &&StdPath) -> bool {
        self.0 == *other
    }
}

impl PartialEq<PathBuf> for Path {
    fn eq(&self, other: &PathBuf) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Path> for PathBuf {
    fn eq(&self, other: &Path) -> bool {
        *self == other.0
    }
}

impl PartialEq<Path> for StdPath {
    fn eq(&self, other: &Path) -> bool {
        self == other.0
    }
}
