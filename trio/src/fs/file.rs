//! [`File`]: an open file whose blocking calls run in worker threads, and
//! [`OpenOptions`] to open one.
//!
//! # Design and invariants
//!
//! - The `std::fs::File` sits in an `Arc`, so a worker thread can use it
//!   (`&std::fs::File` reads, writes and seeks) while the `File` stays
//!   usable from the run. `handle` holds it until [`File::aclose`]
//!   (`None` afterwards: every operation then fails with `Closed`).
//! - **Who may run at once** ([`stream`](crate::stream)'s rule 1): one
//!   reading call (`read`, `receive_some`, `read_to_end`,
//!   `read_to_string`) and one writing call (`write`, `write_all`,
//!   `send_all`, `wait_send_all_might_not_block`, `set_len`); a second one
//!   in the same direction gets `Busy`. `seek`, `rewind` and
//!   `stream_position` take both slots: moving the shared position under a
//!   read or a write would make either land anywhere. `metadata`,
//!   `sync_all`, `sync_data` and `set_permissions` touch no position and
//!   take no slot.
//! - **Cancellation**: every call waits for its thread (never abandons), so
//!   the file position always reflects exactly the calls that returned
//!   (see [the module table](super#cancellation)).
//! - **Closing**: `aclose` takes the handle out first (so later calls get
//!   `Closed` at once), then drops it in a worker thread, since `close(2)`
//!   can block (NFS flushes on close). If that thread cannot start (the
//!   call was already cancelled), the closure owning the handle is dropped
//!   on the spot, which closes it there: either way the file is closed. A
//!   call still running in a thread keeps its own reference; the descriptor
//!   closes when that call ends.
//! - `spare` is a buffer lent to read and write threads and given back, so
//!   a stream of small reads allocates nothing after the first.

use super::{Builder, path_error};
use crate::error::{Error, ErrorKind, Result};
use crate::stream::{AsyncResource, BusySlot, ReceiveStream, SendStream, empty_buffer};
use crate::to_thread;
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most one thread hop reads or writes: larger reads return less (as
/// any read may), larger writes go in pieces of this size. 2 MiB, as
/// tokio's `fs::File` (`MAX_BUF`), so a huge buffer does not mean a huge
/// temporary copy.
pub const MAX_BUF: usize = 2 * 1024 * 1024;

/// The largest spare buffer kept between calls (the others are freed): 64
/// KiB covers the usual read sizes without pinning megabytes per file.
const SPARE_KEEP: usize = 64 * 1024;

/// An open file (Trio's `trio.open_file` result; tokio's `fs::File`).
///
/// Every method takes `&self` and runs its system call in a worker thread.
/// A `File` is a byte stream: it implements
/// [`ReceiveStream`] (reading from the current position; `0` at the end of
/// the file), [`SendStream`] (writing at the current position) and
/// [`AsyncResource`], so the [`stream`](crate::stream) helpers work on it.
/// Concurrent use, cancellation and closing follow [the module
/// docs](super#cancellation): one reader and one writer at a time (`Busy`
/// otherwise; `seek` counts as both), and a cancelled call still completes,
/// so no byte is lost or read twice.
///
/// ```
/// use std::io::SeekFrom;
/// use trio::fs::File;
///
/// trio::run(async {
///     let path = std::env::temp_dir().join(format!("trio-doc-file-{}", std::process::id()));
///     let f = File::options()
///         .read(true)
///         .write(true)
///         .create(true)
///         .truncate(true)
///         .open(&path)
///         .await?;
///     f.write_all(b"hello, world").await?;
///     f.seek(SeekFrom::Start(7)).await?;
///     let mut buf = [0; 16];
///     let n = f.read(&mut buf).await?;
///     assert_eq!(&buf[..n], b"world");
///     f.aclose().await?;
///
///     let f = File::open(&path).await?;
///     let mut s = String::new();
///     f.read_to_string(&mut s).await?;
///     assert_eq!(s, "hello, world");
///     f.aclose().await?;
///     trio::fs::remove_file(&path).await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
///
/// A `File` may also be a FIFO or a terminal, but a read that waits for
/// data there holds a worker thread until data comes, and neither
/// cancellation nor `aclose` can interrupt it (the call completes, as
/// above): use process pipes or sockets for streams that may stay quiet.
///
/// Dropping a `File` without [`aclose`](File::aclose) closes the
/// descriptor synchronously, in the dropping thread (as `std` does).
pub struct File {
    /// The open file; `None` once closed.
    handle: RefCell<Option<Arc<std::fs::File>>>,
    /// The path it was opened by, for error messages (`None` if wrapped).
    path: Option<PathBuf>,
    reading: BusySlot,
    writing: BusySlot,
    /// A buffer lent to worker threads and given back (see the module docs).
    spare: Cell<Vec<u8>>,
}

impl File {
    pub(crate) fn with_path(file: std::fs::File, path: Option<PathBuf>) -> File {
        File {
            handle: RefCell::new(Some(Arc::new(file))),
            path,
            reading: BusySlot::new("another task is already reading from this file"),
            writing: BusySlot::new("another task is already writing to this file"),
            spare: Cell::new(Vec::new()),
        }
    }

    /// Opens a file read-only ([`std::fs::File::open`]).
    pub async fn open(path: impl AsRef<Path>) -> Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens a file write-only, creating it or truncating it
    /// ([`std::fs::File::create`]).
    pub async fn create(path: impl AsRef<Path>) -> Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Creates a new file, read-write; an error if it exists
    /// ([`std::fs::File::create_new`]).
    pub async fn create_new(path: impl AsRef<Path>) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .await
    }

    /// Blank [`OpenOptions`] ([`std::fs::File::options`]).
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open `std::fs::File` (the same as [`wrap_file`]).
    pub fn from_std(file: std::fs::File) -> File {
        File::with_path(file, None)
    }

    /// The path this file was opened by, if it was opened by path.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether [`aclose`](File::aclose) has been called.
    pub fn is_closed(&self) -> bool {
        self.handle.borrow().is_none()
    }

    /// Unwraps the `std::fs::File`. `Closed` after `aclose`; `Busy` if a
    /// call whose future was dropped still uses the file in a worker thread
    /// (then the file closes when that thread is done).
    pub fn into_std(self) -> Result<std::fs::File> {
        let handle = self.handle.borrow_mut().take().ok_or_else(closed)?;
        Arc::try_unwrap(handle).map_err(|_| {
            Error::new(
                ErrorKind::Busy,
                "an abandoned operation still uses this file in a worker thread",
            )
        })
    }

    fn handle(&self) -> Result<Arc<std::fs::File>> {
        self.handle.borrow().clone().ok_or_else(closed)
    }

    fn error(&self, operation: &'static str, e: io::Error) -> Error {
        path_error(operation, self.path.as_deref(), None, e)
    }

    /// Runs `f` on the file in a worker thread; an io error names the
    /// operation and the path.
    async fn run<T, F>(&self, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&std::fs::File) -> io::Result<T> + Send + 'static,
    {
        let file = self.handle()?;
        to_thread::run_sync(move || f(&file))
            .await?
            .map_err(|e| self.error(operation, e))
    }

    /// Reads at most `buf.len()` (and at most [`MAX_BUF`]) bytes from the
    /// current position; returns how many, `0` at the end of the file (or
    /// for an empty `buf`, as in `std`). Cancelled while its thread runs,
    /// it still returns what it read.
    pub async fn read(&self, buf: &mut [u8]) -> Result<usize> {
        let _slot = self.reading.enter()?;
        self.read_unslotted(buf).await
    }

    async fn read_unslotted(&self, buf: &mut [u8]) -> Result<usize> {
        let file = self.handle()?;
        let mut spare = self.spare.take();
        spare.resize(buf.len().min(MAX_BUF), 0);
        let (spare, r) = to_thread::run_sync(move || {
            let r = loop {
                match (&*file).read(&mut spare) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            (spare, r)
        })
        .await?;
        let r = r.map_err(|e| self.error("read", e));
        if let Ok(n) = r {
            buf[..n].copy_from_slice(&spare[..n]);
        }
        self.give_back(spare);
        r
    }

    fn give_back(&self, spare: Vec<u8>) {
        if spare.capacity() <= SPARE_KEEP {
            self.spare.set(spare);
        }
    }

    /// Reads everything from the current position to the end, appending
    /// to `buf`; returns how many bytes it appended. On an error the bytes
    /// read before it are still appended (as in `std`).
    pub async fn read_to_end(&self, buf: &mut Vec<u8>) -> Result<usize> {
        let _slot = self.reading.enter()?;
        let file = self.handle()?;
        let (data, r) = to_thread::run_sync(move || {
            let mut data = Vec::new();
            let r = (&*file).read_to_end(&mut data);
            (data, r)
        })
        .await?;
        buf.extend_from_slice(&data);
        r.map_err(|e| self.error("read", e))
    }

    /// Reads everything from the current position to the end, appending
    /// to `buf`. Not UTF-8: an `InvalidData` error, `buf` unchanged (the
    /// bytes were consumed, as in `std`).
    pub async fn read_to_string(&self, buf: &mut String) -> Result<usize> {
        let mut data = Vec::new();
        self.read_to_end(&mut data).await?;
        let s = String::from_utf8(data)
            .map_err(|e| self.error("read", io::Error::new(io::ErrorKind::InvalidData, e)))?;
        buf.push_str(&s);
        Ok(s.len())
    }

    /// Writes at most [`MAX_BUF`] bytes of `data` at the current position
    /// with one `write(2)`; returns how many were written.
    pub async fn write(&self, data: &[u8]) -> Result<usize> {
        let _slot = self.writing.enter()?;
        self.write_piece(&data[..data.len().min(MAX_BUF)], false)
            .await
    }

    /// Writes all of `data` at the current position, in pieces of at most
    /// [`MAX_BUF`] bytes, one thread hop each. Each piece completes even if
    /// cancelled; a cancellation stops it before the next piece (so a
    /// cancelled `write_all` wrote a prefix of `data`).
    pub async fn write_all(&self, data: &[u8]) -> Result<()> {
        let _slot = self.writing.enter()?;
        self.write_all_unslotted(data).await
    }

    async fn write_all_unslotted(&self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            // Still a checkpoint, and still `Closed` after aclose.
            checkpoint_if_cancelled().await?;
            self.handle()?;
            return cancel_shielded_checkpoint().await;
        }
        for piece in data.chunks(MAX_BUF) {
            self.write_piece(piece, true).await?;
        }
        Ok(())
    }

    /// One thread hop: `write_all(piece)` if `all`, else one `write`.
    async fn write_piece(&self, piece: &[u8], all: bool) -> Result<usize> {
        let file = self.handle()?;
        let mut spare = self.spare.take();
        spare.clear();
        spare.extend_from_slice(piece);
        let (spare, r) = to_thread::run_sync(move || {
            let mut f = &*file;
            let r = if all {
                f.write_all(&spare).map(|()| spare.len())
            } else {
                loop {
                    match f.write(&spare) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => break r,
                    }
                }
            };
            (spare, r)
        })
        .await?;
        self.give_back(spare);
        r.map_err(|e| self.error("write", e))
    }

    /// Moves the position; returns the new one, from the start
    /// ([`std::io::Seek::seek`]). Takes both the read and the write slot.
    ///
    /// ```
    /// use std::io::SeekFrom;
    /// trio::run(async {
    ///     let path = std::env::temp_dir().join(format!("trio-doc-seek-{}", std::process::id()));
    ///     trio::fs::write(&path, b"0123456789").await?;
    ///     let f = trio::fs::File::open(&path).await?;
    ///     assert_eq!(f.seek(SeekFrom::End(-3)).await?, 7);
    ///     let mut buf = [0; 8];
    ///     let n = f.read(&mut buf).await?;
    ///     assert_eq!(&buf[..n], b"789");
    ///     f.aclose().await?;
    ///     trio::fs::remove_file(&path).await?;
    ///     Ok(())
    /// })
    /// .unwrap();
    /// ```
    pub async fn seek(&self, pos: SeekFrom) -> Result<u64> {
        let _r = self.reading.enter()?;
        let _w = self.writing.enter()?;
        self.run("seek", move |mut f| f.seek(pos)).await
    }

    /// Moves to the start of the file.
    pub async fn rewind(&self) -> Result<()> {
        self.seek(SeekFrom::Start(0)).await.map(drop)
    }

    /// The current position, from the start.
    pub async fn stream_position(&self) -> Result<u64> {
        self.seek(SeekFrom::Current(0)).await
    }

    /// Truncates or extends the file to `size` bytes; the position does not
    /// move ([`std::fs::File::set_len`]). Takes the write slot.
    pub async fn set_len(&self, size: u64) -> Result<()> {
        let _w = self.writing.enter()?;
        self.run("set_len", move |f| f.set_len(size)).await
    }

    /// Flushes data and metadata to the device ([`std::fs::File::sync_all`]).
    pub async fn sync_all(&self) -> Result<()> {
        self.run("sync_all", |f| f.sync_all()).await
    }

    /// Flushes the data to the device ([`std::fs::File::sync_data`]).
    pub async fn sync_data(&self) -> Result<()> {
        self.run("sync_data", |f| f.sync_data()).await
    }

    /// The file's metadata ([`std::fs::File::metadata`]).
    pub async fn metadata(&self) -> Result<std::fs::Metadata> {
        self.run("metadata", |f| f.metadata()).await
    }

    /// Changes the file's permissions ([`std::fs::File::set_permissions`]).
    pub async fn set_permissions(&self, permissions: std::fs::Permissions) -> Result<()> {
        self.run("set_permissions", move |f| f.set_permissions(permissions))
            .await
    }

    /// Closes the file: see [`AsyncResource::aclose`]. Always closes, even
    /// cancelled (then it reports `Cancelled` after closing); idempotent;
    /// a checkpoint. An error of `close(2)` itself is not reported (as in
    /// `std`, whose `File` ignores it); call [`sync_all`](File::sync_all)
    /// first to learn of write-back errors.
    pub async fn aclose(&self) -> Result<()> {
        // Take it out first: later calls get Closed at once.
        let taken = self.handle.borrow_mut().take();
        let Some(file) = taken else {
            checkpoint_if_cancelled().await?;
            return cancel_shielded_checkpoint().await;
        };
        // If the thread never starts (already cancelled), the closure and
        // the handle in it are dropped here, which closes the file now.
        to_thread::run_sync(move || drop(file)).await?;
        checkpoint_if_cancelled().await
    }
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the file was closed")
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("path", &self.path)
            .field("closed", &self.is_closed())
            .field("reading", &self.reading.is_busy())
            .field("writing", &self.writing.is_busy())
            .finish()
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}

impl AsyncResource for File {
    fn aclose(&self) -> impl Future<Output = Result<()>> {
        File::aclose(self)
    }
}

impl ReceiveStream for File {
    /// [`File::read`], except that an empty `buf` is `InvalidArgument`
    /// (the stream contract).
    async fn receive_some(&self, buf: &mut [u8]) -> Result<usize> {
        let _slot = self.reading.enter()?;
        if buf.is_empty() {
            return Err(empty_buffer());
        }
        self.read_unslotted(buf).await
    }
}

impl SendStream for File {
    /// [`File::write_all`].
    async fn send_all(&self, data: &[u8]) -> Result<()> {
        let _slot = self.writing.enter()?;
        self.write_all_unslotted(data).await
    }

    /// A file is always writable: a checkpoint that returns at once
    /// (`Closed` after `aclose`, `Busy` during another write).
    async fn wait_send_all_might_not_block(&self) -> Result<()> {
        let _slot = self.writing.enter()?;
        checkpoint_if_cancelled().await?;
        self.handle()?;
        cancel_shielded_checkpoint().await
    }
}

/// How to open a file ([`std::fs::OpenOptions`], whose methods these
/// mirror), opening it in a worker thread.
///
/// ```
/// trio::run(async {
///     let path = std::env::temp_dir().join(format!("trio-doc-options-{}", std::process::id()));
///     let f = trio::fs::OpenOptions::new().append(true).create(true).open(&path).await?;
///     f.write_all(b"line\n").await?;
///     f.aclose().await?;
///     assert_eq!(trio::fs::read(&path).await?, b"line\n");
///     trio::fs::remove_file(&path).await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    std: std::fs::OpenOptions,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// All options off ([`std::fs::OpenOptions::new`]).
    pub fn new() -> Self {
        OpenOptions {
            std: std::fs::OpenOptions::new(),
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut Self {
        self.std.read(read);
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut Self {
        self.std.write(write);
        self
    }

    /// Open for appending: every write goes to the end.
    pub fn append(&mut self, append: bool) -> &mut Self {
        self.std.append(append);
        self
    }

    /// Truncate an existing file to length 0 (needs `write`).
    pub fn truncate(&mut self, truncate: bool) -> &mut Self {
        self.std.truncate(truncate);
        self
    }

    /// Create the file if it does not exist (needs `write` or `append`).
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.std.create(create);
        self
    }

    /// Create the file; an error if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.std.create_new(create_new);
        self
    }

    /// The permission bits of a created file
    /// ([`std::os::unix::fs::OpenOptionsExt::mode`]).
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(&mut self.std, mode);
        self
    }

    /// Extra `open(2)` flags
    /// ([`std::os::unix::fs::OpenOptionsExt::custom_flags`]).
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::custom_flags(&mut self.std, flags);
        self
    }

    /// Opens `path` with these options, in a worker thread (cancelled
    /// while it runs, it completes and returns the file; see
    /// [`Builder::open`] to abandon instead).
    pub async fn open(&self, path: impl AsRef<Path>) -> Result<File> {
        Builder::new().open(path, self).await
    }

    pub(crate) fn as_std(&self) -> &std::fs::OpenOptions {
        &self.std
    }
}

impl From<std::fs::OpenOptions> for OpenOptions {
    fn from(std: std::fs::OpenOptions) -> Self {
        OpenOptions { std }
    }
}

/// Opens `path` with `options` (Trio's `trio.open_file`, with Rust's
/// [`OpenOptions`] in place of a mode string).
///
/// ```
/// use trio::fs::OpenOptions;
///
/// trio::run(async {
///     let path = std::env::temp_dir().join(format!("trio-doc-open-file-{}", std::process::id()));
///     trio::fs::write(&path, b"abc").await?;
///     let f = trio::open_file(&path, OpenOptions::new().read(true)).await?;
///     let mut buf = Vec::new();
///     f.read_to_end(&mut buf).await?;
///     assert_eq!(buf, b"abc");
///     f.aclose().await?;
///     trio::fs::remove_file(&path).await?;
///     Ok(())
/// })
/// .unwrap();
/// ```
pub async fn open_file(path: impl AsRef<Path>, options: &OpenOptions) -> Result<File> {
    options.open(path).await
}

/// Wraps an already open `std::fs::File` (Trio's `trio.wrap_file`); errors
/// of its operations name no path (it is not known).
///
/// ```
/// trio::run(async {
///     let std_file = tempfile_like()?;
///     let f = trio::wrap_file(std_file);
///     f.write_all(b"x").await?;
///     let back: std::fs::File = f.into_std()?;
///     drop(back);
///     Ok(())
/// })
/// .unwrap();
/// # fn tempfile_like() -> std::io::Result<std::fs::File> {
/// #     let p = std::env::temp_dir().join(format!("trio-doc-wrap-{}", std::process::id()));
/// #     let f = std::fs::File::create(&p)?;
/// #     std::fs::remove_file(&p)?;
/// #     Ok(f)
/// # }
/// ```
pub fn wrap_file(file: std::fs::File) -> File {
    File::from_std(file)
}
