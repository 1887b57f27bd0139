//! Files and directories (Trio's `trio.open_file`, `trio.wrap_file` and
//! `trio.Path`; tokio's `tokio::fs`), DESIGN §10.
//!
//! The operating system has no readiness notification for regular files, so
//! every call here does its blocking work in a worker thread
//! ([`to_thread`]), under the run's default
//! [`CapacityLimiter`] unless a [`Builder`] names another.
//!
//! - Free functions mirror [`std::fs`]: [`read`], [`read_to_string`],
//!   [`write()`], [`metadata`], [`symlink_metadata`], [`try_exists`],
//!   [`create_dir`], [`create_dir_all`], [`remove_file`], [`remove_dir`],
//!   [`remove_dir_all`], [`rename`], [`copy`], [`hard_link`], [`symlink`]
//!   (Unix), [`read_link`], [`canonicalize`], [`set_permissions`] and
//!   [`read_dir`] (an async stream of entries, [`ReadDir`], fetched in
//!   batches of [`READ_DIR_BATCH`] per thread hop).
//! - [`File`] is an open file: [`File::open`], [`File::create`],
//!   [`OpenOptions`], [`open_file`] (Trio's name), [`wrap_file`] for a
//!   `std::fs::File` you already have, and back with [`File::into_std`]. It
//!   reads, writes and seeks, and implements the [`stream`](crate::stream)
//!   traits ([`ReceiveStream`](crate::stream::ReceiveStream),
//!   [`SendStream`](crate::stream::SendStream),
//!   [`AsyncResource`](crate::stream::AsyncResource)), so the stream helpers
//!   ([`BufferedReceiveStream`](crate::stream::BufferedReceiveStream) …)
//!   work on files.
//! - [`Builder`] runs the path functions with other options: a limiter, and
//!   abandoning on cancel (below).
//! - [`Path`](path::Path) (also [`trio::Path`](crate::Path), Trio's
//!   `trio.Path`): an owned path whose I/O methods are async and call the
//!   functions above (`path.read().await`, `path.is_dir().await` …). It
//!   lives in its own module, [`path`], because the functions here take
//!   `impl AsRef<std::path::Path>` and name that type `Path`; the module
//!   docs say why it is a type and not an extension trait.
//!
//! # Errors name the path
//!
//! An OS error comes back as an [`ErrorKind::Io`]
//! error whose message names the operation and the path, such as
//! `open /x/y: No such file or directory (os error 2)`. It wraps a
//! [`std::io::Error`] with the original [`io::ErrorKind`] (so
//! `err.downcast_ref::<io::Error>()` works and `.kind()` is `NotFound`),
//! whose payload is a [`PathError`]; the original OS error (with its
//! `raw_os_error`) is that io error's [`source`](std::error::Error::source)
//! and [`PathError::io_error`]:
//!
//! ```
//! use std::error::Error as _;
//! use std::io;
//!
//! trio::run(async {
//!     let err = trio::fs::read("/no/such/file").await.unwrap_err();
//!     assert_eq!(err.kind(), trio::ErrorKind::Io);
//!     assert_eq!(
//!         err.to_string(),
//!         "read /no/such/file: No such file or directory (os error 2)"
//!     );
//!     let io_err = err.downcast_ref::<io::Error>().unwrap();
//!     assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
//!     let os = io_err.source().unwrap().downcast_ref::<io::Error>().unwrap();
//!     assert_eq!(os.raw_os_error(), Some(2)); // ENOENT
//!     Ok(())
//! })
//! .unwrap();
//! ```
//!
//! A [`File`] opened by path names that path in the errors of its
//! operations; a wrapped `std::fs::File` has no known path, and its errors
//! name only the operation (`read: Bad file descriptor (os error 9)`).
//!
//! # Cancellation
//!
//! A call is a checkpoint before its thread starts: cancelled there (or
//! while waiting for a limiter token), it had no effect. Once the work runs
//! in a thread it cannot be stopped, and then one of two things happens:
//!
//! - **Completes (default).** The call keeps waiting for the thread and
//!   returns its result, success or error; the cancellation is delivered at
//!   the caller's next checkpoint. So a cancelled read never loses bytes:
//!   either it returned them (and the file position moved past them) or it
//!   never happened.
//! - **Abandons (opt-in, [`Builder::abandon_on_cancel`]).** The call
//!   returns `Cancelled` at once; the thread runs on and its result is
//!   dropped (an opened file is closed, read bytes are discarded, a copy or
//!   a removal still finishes). Meant for long operations on whole paths
//!   (`read_dir` on a huge or remote directory, `copy`, `remove_dir_all`)
//!   where nothing depends on the state a late result would leave behind.
//!
//! | operation | cancelled while its thread runs |
//! |---|---|
//! | path functions ([`read`], [`write()`], [`copy`], [`metadata`], [`remove_dir_all`] …) and [`open_file`] / [`OpenOptions::open`] | completes; with [`Builder::abandon_on_cancel`]: abandons |
//! | [`ReadDir::next_entry`] | as the [`Builder`] that opened it; an abandoned batch is not lost: its entries come in a later call |
//! | [`DirEntry::metadata`] | completes |
//! | [`File`] methods: `read`, `receive_some`, `read_to_end`, `write`, `write_all`, `send_all`, `seek`, `set_len`, `sync_all`, `sync_data`, `metadata`, `set_permissions` | always completes: abandoning would lose bytes or move the position behind the caller's back |
//! | [`File::write_all`] / `send_all` of more than [`MAX_BUF`] bytes | each piece completes; a cancel between pieces stops it after a prefix (the [`SendStream`](crate::stream::SendStream) contract) |
//! | [`File`]'s `aclose` | always closes (see [`File`]), then reports the cancellation |
//!
//! Dropping a call's future instead of cancelling it (a `select!`-style
//! race) always abandons its thread: the work still happens, its result is
//! lost. With trio's own [`race`](crate::race) and cancel scopes this does
//! not happen.

use crate::error::{Error, ErrorKind, Result};
use crate::sync::CapacityLimiter;
use crate::to_thread;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

mod file;
pub mod path;
mod read_dir;

pub use file::{File, MAX_BUF, OpenOptions, open_file, wrap_file};
pub use read_dir::{DirEntry, READ_DIR_BATCH, ReadDir};

/// The payload of the [`io::Error`] that a failed file operation wraps: the
/// operation, the path(s) and the original OS error. See [the module
/// docs](self#errors-name-the-path).
///
/// ```
/// use std::io;
/// use trio::fs::PathError;
///
/// trio::run(async {
///     let err = trio::fs::rename("/no/a", "/no/b").await.unwrap_err();
///     let io_err = err.downcast_ref::<io::Error>().unwrap();
///     let p = io_err.get_ref().unwrap().downcast_ref::<PathError>().unwrap();
///     assert_eq!(p.operation(), "rename");
///     assert_eq!(p.path(), Some(std::path::Path::new("/no/a")));
///     assert_eq!(p.to(), Some(std::path::Path::new("/no/b")));
///     assert_eq!(p.io_error().raw_os_error(), Some(2)); // ENOENT
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct PathError {
    operation: &'static str,
    path: Option<PathBuf>,
    to: Option<PathBuf>,
    source: io::Error,
}

impl PathError {
    /// The operation that failed: `"open"`, `"read"`, `"rename"` …
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The path it failed on, if known (a wrapped `std::fs::File` has none).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The second path of a two-path operation (`rename`, `copy`,
    /// `hard_link`, `symlink`).
    pub fn to(&self) -> Option<&Path> {
        self.to.as_deref()
    }

    /// The original error, as the OS reported it.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.operation)?;
        if let Some(p) = &self.path {
            write!(f, " {}", p.display())?;
        }
        if let Some(to) = &self.to {
            write!(f, " to {}", to.display())?;
        }
        write!(f, ": {}", self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The error of `operation` on `path` (and `to`): see [`PathError`].
pub(crate) fn path_error(
    operation: &'static str,
    path: Option<&Path>,
    to: Option<&Path>,
    source: io::Error,
) -> Error {
    let kind = source.kind();
    let payload = PathError {
        operation,
        path: path.map(Path::to_path_buf),
        to: to.map(Path::to_path_buf),
        source,
    };
    Error::with_kind(ErrorKind::Io, io::Error::new(kind, payload))
}

/// Options for the path functions: which limiter their threads count
/// against, and whether a cancelled call abandons its thread. The free
/// functions of this module are `Builder::new()`'s methods.
///
/// ```
/// trio::run(async {
///     let dir = std::env::temp_dir().join(format!("trio-doc-builder-{}", std::process::id()));
///     trio::fs::create_dir_all(&dir).await?;
///     // A long copy that a timeout may give up on at once.
///     let fs = trio::fs::Builder::new().abandon_on_cancel(true);
///     fs.write(dir.join("a"), b"data").await?;
///     fs.copy(dir.join("a"), dir.join("b")).await?;
///     assert_eq!(fs.read(dir.join("b")).await?, b"data");
///     trio::fs::remove_dir_all(&dir).await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    thread: to_thread::Builder,
}

impl Builder {
    /// Default options: the run's default limiter; a cancelled call waits
    /// for its thread and returns its result.
    pub fn new() -> Self {
        Builder::default()
    }

    /// If true, a call cancelled while its thread runs returns `Cancelled`
    /// at once and the thread's result is dropped; see [the module
    /// docs](self#cancellation). Default: false.
    pub fn abandon_on_cancel(mut self, abandon: bool) -> Self {
        self.thread = self.thread.abandon_on_cancel(abandon);
        self
    }

    /// Counts the calls' threads against `limiter` instead of the run's
    /// default one.
    pub fn limiter(mut self, limiter: CapacityLimiter) -> Self {
        self.thread = self.thread.limiter(limiter);
        self
    }

    /// Runs `f` in a thread with these options; an io error becomes the
    /// error of `operation` on `path` (and `to`).
    async fn run<T, F>(
        &self,
        operation: &'static str,
        path: &Path,
        to: Option<&Path>,
        f: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        self.thread
            .clone()
            .run_sync(f)
            .await?
            .map_err(|e| path_error(operation, Some(path), to, e))
    }

    /// [`read`] with these options.
    pub async fn read(&self, path: impl AsRef<Path>) -> Result<Vec<u8>> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("read", &path, None, move || std::fs::read(p))
            .await
    }

    /// [`read_to_string`] with these options.
    pub async fn read_to_string(&self, path: impl AsRef<Path>) -> Result<String> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("read", &path, None, move || std::fs::read_to_string(p))
            .await
    }

    /// [`write()`] with these options.
    pub async fn write(&self, path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<()> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let contents = contents.as_ref().to_vec();
        self.run("write", &path, None, move || std::fs::write(p, contents))
            .await
    }

    /// [`metadata`] with these options.
    pub async fn metadata(&self, path: impl AsRef<Path>) -> Result<std::fs::Metadata> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("metadata", &path, None, move || std::fs::metadata(p))
            .await
    }

    /// [`symlink_metadata`] with these options.
    pub async fn symlink_metadata(&self, path: impl AsRef<Path>) -> Result<std::fs::Metadata> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("symlink_metadata", &path, None, move || {
            std::fs::symlink_metadata(p)
        })
        .await
    }

    /// [`try_exists`] with these options.
    pub async fn try_exists(&self, path: impl AsRef<Path>) -> Result<bool> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("try_exists", &path, None, move || std::fs::exists(p))
            .await
    }

    /// [`create_dir`] with these options.
    pub async fn create_dir(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("create_dir", &path, None, move || std::fs::create_dir(p))
            .await
    }

    /// [`create_dir_all`] with these options.
    pub async fn create_dir_all(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("create_dir_all", &path, None, move || {
            std::fs::create_dir_all(p)
        })
        .await
    }

    /// [`remove_file`] with these options.
    pub async fn remove_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("remove_file", &path, None, move || std::fs::remove_file(p))
            .await
    }

    /// [`remove_dir`] with these options.
    pub async fn remove_dir(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("remove_dir", &path, None, move || std::fs::remove_dir(p))
            .await
    }

    /// [`remove_dir_all`] with these options.
    pub async fn remove_dir_all(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("remove_dir_all", &path, None, move || {
            std::fs::remove_dir_all(p)
        })
        .await
    }

    /// [`rename`] with these options.
    pub async fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
        let (from, to) = (from.as_ref().to_path_buf(), to.as_ref().to_path_buf());
        let (f, t) = (from.clone(), to.clone());
        self.run("rename", &from, Some(&to), move || std::fs::rename(f, t))
            .await
    }

    /// [`copy`] with these options.
    pub async fn copy(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<u64> {
        let (from, to) = (from.as_ref().to_path_buf(), to.as_ref().to_path_buf());
        let (f, t) = (from.clone(), to.clone());
        self.run("copy", &from, Some(&to), move || std::fs::copy(f, t))
            .await
    }

    /// [`hard_link`] with these options.
    pub async fn hard_link(
        &self,
        original: impl AsRef<Path>,
        link: impl AsRef<Path>,
    ) -> Result<()> {
        let (from, to) = (original.as_ref().to_path_buf(), link.as_ref().to_path_buf());
        let (f, t) = (from.clone(), to.clone());
        self.run("hard_link", &from, Some(&to), move || {
            std::fs::hard_link(f, t)
        })
        .await
    }

    /// [`symlink`] with these options.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub async fn symlink(&self, original: impl AsRef<Path>, link: impl AsRef<Path>) -> Result<()> {
        let (from, to) = (original.as_ref().to_path_buf(), link.as_ref().to_path_buf());
        let (f, t) = (from.clone(), to.clone());
        self.run("symlink", &from, Some(&to), move || {
            std::os::unix::fs::symlink(f, t)
        })
        .await
    }

    /// [`read_link`] with these options.
    pub async fn read_link(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("read_link", &path, None, move || std::fs::read_link(p))
            .await
    }

    /// [`canonicalize`] with these options.
    pub async fn canonicalize(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("canonicalize", &path, None, move || {
            std::fs::canonicalize(p)
        })
        .await
    }

    /// [`set_permissions`] with these options.
    pub async fn set_permissions(
        &self,
        path: impl AsRef<Path>,
        permissions: std::fs::Permissions,
    ) -> Result<()> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        self.run("set_permissions", &path, None, move || {
            std::fs::set_permissions(p, permissions)
        })
        .await
    }

    /// [`read_dir`] with these options; the returned [`ReadDir`] fetches
    /// its later batches with them too.
    pub async fn read_dir(&self, path: impl AsRef<Path>) -> Result<ReadDir> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let iter = self
            .run("read_dir", &path, None, move || std::fs::read_dir(p))
            .await?;
        Ok(ReadDir::new(path, iter, self.clone()))
    }

    /// [`open_file`] with these options (abandoned, the late file is
    /// closed in its thread).
    pub async fn open(&self, path: impl AsRef<Path>, options: &OpenOptions) -> Result<File> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        let std_options = options.as_std().clone();
        let file = self
            .run("open", &path, None, move || std_options.open(p))
            .await?;
        Ok(File::with_path(file, Some(path)))
    }
}

/// Reads a whole file into a vector ([`std::fs::read`]).
///
/// ```
/// trio::run(async {
///     let path = std::env::temp_dir().join(format!("trio-doc-read-{}", std::process::id()));
///     trio::fs::write(&path, b"hello").await?;
///     assert_eq!(trio::fs::read(&path).await?, b"hello");
///     trio::fs::remove_file(&path).await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn read(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    Builder::new().read(path).await
}

/// Reads a whole file into a string ([`std::fs::read_to_string`]); invalid
/// UTF-8 is an error of kind `InvalidData`.
pub async fn read_to_string(path: impl AsRef<Path>) -> Result<String> {
    Builder::new().read_to_string(path).await
}

/// Writes `contents` as the whole file, creating or truncating it
/// ([`std::fs::write`]).
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<()> {
    Builder::new().write(path, contents).await
}

/// The metadata of `path`, following symlinks ([`std::fs::metadata`]).
///
/// ```
/// trio::run(async {
///     let m = trio::fs::metadata(std::env::temp_dir()).await?;
///     assert!(m.is_dir());
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn metadata(path: impl AsRef<Path>) -> Result<std::fs::Metadata> {
    Builder::new().metadata(path).await
}

/// The metadata of `path` itself, not following a final symlink
/// ([`std::fs::symlink_metadata`]).
pub async fn symlink_metadata(path: impl AsRef<Path>) -> Result<std::fs::Metadata> {
    Builder::new().symlink_metadata(path).await
}

/// Whether `path` exists (following symlinks); an error if that cannot be
/// told, e.g. for lack of permission ([`std::fs::exists`], `Path::try_exists`).
pub async fn try_exists(path: impl AsRef<Path>) -> Result<bool> {
    Builder::new().try_exists(path).await
}

/// Creates a directory ([`std::fs::create_dir`]).
pub async fn create_dir(path: impl AsRef<Path>) -> Result<()> {
    Builder::new().create_dir(path).await
}

/// Creates a directory and any missing parents ([`std::fs::create_dir_all`]).
pub async fn create_dir_all(path: impl AsRef<Path>) -> Result<()> {
    Builder::new().create_dir_all(path).await
}

/// Removes a file or symlink ([`std::fs::remove_file`]).
pub async fn remove_file(path: impl AsRef<Path>) -> Result<()> {
    Builder::new().remove_file(path).await
}

/// Removes an empty directory ([`std::fs::remove_dir`]).
pub async fn remove_dir(path: impl AsRef<Path>) -> Result<()> {
    Builder::new().remove_dir(path).await
}

/// Removes a directory and everything in it ([`std::fs::remove_dir_all`]).
pub async fn remove_dir_all(path: impl AsRef<Path>) -> Result<()> {
    Builder::new().remove_dir_all(path).await
}

/// Renames `from` to `to`, replacing `to` if it exists ([`std::fs::rename`]).
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
    Builder::new().rename(from, to).await
}

/// Copies the contents and permissions of `from` to `to`; returns the
/// number of bytes copied ([`std::fs::copy`]).
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<u64> {
    Builder::new().copy(from, to).await
}

/// Makes `link` a hard link to `original` ([`std::fs::hard_link`]).
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> Result<()> {
    Builder::new().hard_link(original, link).await
}

/// Makes `link` a symbolic link to `original`
/// ([`std::os::unix::fs::symlink`]).
#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> Result<()> {
    Builder::new().symlink(original, link).await
}

/// The target of a symbolic link ([`std::fs::read_link`]).
pub async fn read_link(path: impl AsRef<Path>) -> Result<PathBuf> {
    Builder::new().read_link(path).await
}

/// The absolute path with every symlink and `..` resolved
/// ([`std::fs::canonicalize`]).
pub async fn canonicalize(path: impl AsRef<Path>) -> Result<PathBuf> {
    Builder::new().canonicalize(path).await
}

/// Changes the permissions of `path` ([`std::fs::set_permissions`]).
pub async fn set_permissions(
    path: impl AsRef<Path>,
    permissions: std::fs::Permissions,
) -> Result<()> {
    Builder::new().set_permissions(path, permissions).await
}

/// Opens a directory for listing ([`std::fs::read_dir`]): an async stream
/// of its entries (see [`ReadDir`]).
///
/// ```
/// trio::run(async {
///     let dir = std::env::temp_dir().join(format!("trio-doc-read-dir-{}", std::process::id()));
///     trio::fs::create_dir_all(&dir).await?;
///     trio::fs::write(dir.join("a.txt"), b"").await?;
///     let mut names = Vec::new();
///     let mut entries = trio::fs::read_dir(&dir).await?;
///     while let Some(entry) = entries.next_entry().await? {
///         names.push(entry.file_name());
///     }
///     assert_eq!(names, ["a.txt"]);
///     trio::fs::remove_dir_all(&dir).await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> Result<ReadDir> {
    Builder::new().read_dir(path).await
}
