//! [`ReadDir`]: a directory listing as an async stream of [`DirEntry`]s,
//! read in batches of [`READ_DIR_BATCH`] entries per worker-thread hop.
//!
//! # Design and invariants
//!
//! - The `std::fs::ReadDir` iterator lives in `Shared`, behind a mutex that
//!   only worker threads lock for long (the run locks it only in `Drop` of
//!   a `Batch`, which happens in the worker when a batch was abandoned).
//! - **No entry is lost or repeated**, even when a batch is abandoned
//!   ([`Builder::abandon_on_cancel`](super::Builder::abandon_on_cancel)): a
//!   batch is a `Batch`, whose `Drop` puts the entries nobody took back
//!   into `Shared::returned`, and the next batch hands those out first.
//!   Accepted consequence: after an abandoned batch, entries may come in a
//!   different order than the OS gave them (directory order is unspecified
//!   anyway).
//! - An error met after some entries of a batch is kept in `Shared::error`
//!   and reported by the next call, after those entries.

use super::Builder;
use crate::error::Result;
use crate::{cancel_shielded_checkpoint, checkpoint_if_cancelled};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::fs::FileType;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// How many entries one worker-thread hop reads at most (32, as tokio's
/// `ReadDir`): large enough that the hop's cost is spread over many
/// entries, small enough that the first entries arrive soon.
pub const READ_DIR_BATCH: usize = 32;

/// The entries of a directory, as an async stream: see [`read_dir`](super::read_dir).
///
/// [`next_entry`](ReadDir::next_entry) returns entries until `None`; entries
/// are fetched [`READ_DIR_BATCH`] at a time in a worker thread. `.` and
/// `..` are skipped, as in `std`.
pub struct ReadDir {
    /// The directory, for error messages.
    path: PathBuf,
    shared: Arc<Mutex<Shared>>,
    /// Fetched entries not yet returned.
    ready: VecDeque<DirEntry>,
    /// The options later batches run with.
    builder: Builder,
    /// The last batch saw the iterator's end (entries of abandoned
    /// batches may still come back: see `finished`).
    done: bool,
}

/// What the worker threads share (see the module docs).
struct Shared {
    iter: std::fs::ReadDir,
    /// The iterator returned `None`.
    end: bool,
    /// Entries of abandoned batches, handed out first by the next batch.
    returned: VecDeque<DirEntry>,
    /// An error met after some entries of a batch, for the next call.
    error: Option<io::Error>,
}

/// One batch of entries on its way from a worker to the run; puts back
/// whatever nobody took when dropped.
struct Batch {
    entries: VecDeque<DirEntry>,
    /// The iterator has ended.
    end: bool,
    home: Arc<Mutex<Shared>>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        if !self.entries.is_empty() {
            lock(&self.home).returned.extend(self.entries.drain(..));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing leaves `Shared` half-updated on a panic, so a poisoned lock
    // is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// In a worker: the next batch (see the module docs).
fn fetch(shared: Arc<Mutex<Shared>>) -> io::Result<Batch> {
    let mut s = lock(&shared);
    let mut entries: VecDeque<DirEntry> = s.returned.drain(..).collect();
    if entries.is_empty()
        && let Some(e) = s.error.take()
    {
        return Err(e);
    }
    while entries.len() < READ_DIR_BATCH && !s.end {
        match s.iter.next() {
            None => s.end = true,
            Some(Ok(e)) => entries.push_back(DirEntry::new(e)),
            Some(Err(e)) if entries.is_empty() => return Err(e),
            Some(Err(e)) => {
                s.error = Some(e);
                break;
            }
        }
    }
    let end = s.end && s.error.is_none() && s.returned.is_empty();
    drop(s);
    Ok(Batch {
        entries,
        end,
        home: shared,
    })
}

impl ReadDir {
    pub(super) fn new(path: PathBuf, iter: std::fs::ReadDir, builder: Builder) -> ReadDir {
        ReadDir {
            path,
            shared: Arc::new(Mutex::new(Shared {
                iter,
                end: false,
                returned: VecDeque::new(),
                error: None,
            })),
            ready: VecDeque::new(),
            builder,
            done: false,
        }
    }

    /// The next entry, or `None` once all were returned. A checkpoint.
    /// Fetches the next batch in a worker thread when none is left;
    /// cancelled, it returned no entry (and lost none: see the [module
    /// docs](super#cancellation)). An error names the directory.
    pub async fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        loop {
            if !self.ready.is_empty() || self.finished() {
                checkpoint_if_cancelled().await?;
                let entry = self.ready.pop_front();
                cancel_shielded_checkpoint().await?;
                return Ok(entry);
            }
            let shared = self.shared.clone();
            let mut batch = self
                .builder
                .run("read_dir", &self.path, None, move || fetch(shared))
                .await?;
            self.ready = std::mem::take(&mut batch.entries);
            self.done = batch.end;
            drop(batch);
            // The thread call was the checkpoint.
            if let Some(entry) = self.ready.pop_front() {
                return Ok(Some(entry));
            }
            // Empty and not finished: an abandoned batch has yet to give
            // its entries back; fetch again (the thread waits for it).
        }
    }

    /// Whether every entry was returned: the iterator ended, and no
    /// abandoned batch can still give entries back, because no worker
    /// holds `shared` any more (so locking it here cannot block).
    fn finished(&self) -> bool {
        if !self.done || Arc::strong_count(&self.shared) != 1 {
            return false;
        }
        let s = lock(&self.shared);
        s.returned.is_empty() && s.error.is_none()
    }

    /// The directory being listed.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("path", &self.path)
            .field("ready", &self.ready.len())
            .field("done", &self.done)
            .finish()
    }
}

/// One entry of a [`ReadDir`] ([`std::fs::DirEntry`]).
///
/// Its name, path and file type come with it (the type was fetched in the
/// worker, from the directory itself where the file system says it, else
/// with an `lstat`), so those need no thread; [`metadata`](DirEntry::metadata)
/// does.
pub struct DirEntry {
    std: Arc<std::fs::DirEntry>,
    /// `file_type()`'s answer, fetched in the worker.
    file_type: io::Result<FileType>,
}

impl DirEntry {
    fn new(std: std::fs::DirEntry) -> DirEntry {
        let file_type = std.file_type();
        DirEntry {
            std: Arc::new(std),
            file_type,
        }
    }

    /// The full path: the directory's path joined with the name.
    pub fn path(&self) -> PathBuf {
        self.std.path()
    }

    /// The name, without the directory.
    pub fn file_name(&self) -> OsString {
        self.std.file_name()
    }

    /// The entry's type, not following symlinks. No I/O: fetched with
    /// the entry.
    pub fn file_type(&self) -> Result<FileType> {
        match &self.file_type {
            Ok(t) => Ok(*t),
            Err(e) => {
                // io::Error is not Clone: rebuild it, keeping the OS code.
                let e = match e.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(e.kind(), e.to_string()),
                };
                Err(super::path_error("file_type", Some(&self.path()), None, e))
            }
        }
    }

    /// The entry's inode number (no I/O).
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub fn ino(&self) -> u64 {
        std::os::unix::fs::DirEntryExt::ino(&*self.std)
    }

    /// The entry's metadata, not following symlinks
    /// ([`std::fs::DirEntry::metadata`]), in a worker thread. Cancelled
    /// while that runs, it completes.
    pub async fn metadata(&self) -> Result<std::fs::Metadata> {
        let std = self.std.clone();
        crate::to_thread::run_sync(move || std.metadata())
            .await?
            .map_err(|e| super::path_error("metadata", Some(&self.path()), None, e))
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirEntry")
            .field("path", &self.std.path())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An abandoned batch (dropped, not taken) gives its entries back, and
    /// the next batch hands them out: none lost, none repeated.
    #[test]
    fn a_dropped_batch_gives_its_entries_back() {
        let dir = std::env::temp_dir().join(format!(
            "trio-read-dir-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let n = READ_DIR_BATCH + 5;
        for i in 0..n {
            std::fs::write(dir.join(i.to_string()), b"").unwrap();
        }
        let shared = Arc::new(Mutex::new(Shared {
            iter: std::fs::read_dir(&dir).unwrap(),
            end: false,
            returned: VecDeque::new(),
            error: None,
        }));
        let first = fetch(shared.clone()).unwrap();
        assert_eq!(first.entries.len(), READ_DIR_BATCH);
        assert!(!first.end);
        drop(first); // abandoned: nobody took its entries
        assert_eq!(lock(&shared).returned.len(), READ_DIR_BATCH);
        let mut names = Vec::new();
        loop {
            let mut b = fetch(shared.clone()).unwrap();
            names.extend(b.entries.drain(..).map(|e| e.file_name()));
            if b.end {
                break;
            }
        }
        names.sort();
        let mut expected: Vec<OsString> = (0..n).map(|i| i.to_string().into()).collect();
        expected.sort();
        assert_eq!(names, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
