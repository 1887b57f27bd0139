//! Tests for `trio::fs`: path functions, `File` (read, write, seek, stream
//! traits, Busy, close), `read_dir`, errors naming the path, and both
//! cancellation behaviours.
//!
//! Cancellation while a worker thread runs needs work that *stays* in the
//! thread until the test lets it go: a read on a FIFO, which blocks until
//! the test writes. A task knows the call's thread has started (or is about
//! to: nothing can stop it any more) once the call holds a token of the
//! run's default thread limiter. Worker threads keep the run from counting
//! as idle, so these tests run on the autojumping MockClock with no sleep.
//!
//! Not here: `testing::check_one_way_stream` on a `File`. A file is not a
//! pipe: its reads block in a worker thread that nothing can interrupt, so
//! the check's scenarios that close or cancel a receive blocked on an empty
//! stream (a FIFO with no writer data) would wait forever instead of
//! seeing `Closed`. Process pipes (non-blocking, on the reactor) are the
//! streams that pass it; a `File` follows the same contract for everything
//! that does not block forever (tested below: Busy, Closed, empty buffer,
//! end of stream, cancelled aclose).

use std::cell::RefCell;
use std::error::Error as _;
use std::io::{self, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use trio::fs::{self, File, OpenOptions};
use trio::stream::{AsyncResource, BufferedReceiveStream, ReceiveStream, SendStream};
use trio::{CancelScope, ErrorKind, to_thread};

/// A fresh directory for one test, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("trio-fs-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        // Canonical, so it compares equal to what /proc/self/fd shows.
        TempDir(std::fs::canonicalize(p).unwrap())
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A FIFO with nobody on it: opening it read-only blocks until a
    /// writer comes.
    fn bare_fifo(&self, name: &str) -> PathBuf {
        let p = self.join(name);
        let ok = std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo failed");
        p
    }

    /// A FIFO, and a read-write std handle on it: opening a FIFO read-write
    /// does not block (Linux), and the handle keeps a writer, so opening
    /// the read end does not block either.
    fn fifo(&self, name: &str) -> (PathBuf, std::fs::File) {
        let p = self.bare_fifo(name);
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        (p, writer)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Yields until the run's default thread limiter has `n` tokens out: the
/// calls holding them have started their threads (or will, whatever
/// happens now).
async fn until_threads_busy(n: usize) -> trio::Result<()> {
    let limiter = to_thread::current_default_thread_limiter()?;
    while limiter.borrowed_tokens() != n {
        trio::checkpoint().await?;
    }
    Ok(())
}

/// How many descriptors of this process are open on `path`.
fn open_count(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

/// Yields until a worker thread has opened `fifo` too (ours is the other
/// descriptor). Needed before closing our end: if the last descriptor of a
/// FIFO closes before the worker opens it, the written data is discarded
/// and the worker's open waits for a writer forever.
async fn until_worker_opened(fifo: &Path) -> trio::Result<()> {
    while open_count(fifo) < 2 {
        trio::checkpoint().await?;
    }
    Ok(())
}

// ----- path functions --------------------------------------------------------------

#[trio::test(autojump)]
async fn path_functions_do_what_std_does() -> trio::Result<()> {
    let dir = TempDir::new("path-functions");
    let a = dir.join("a.txt");
    fs::write(&a, b"hello").await?;
    assert_eq!(fs::read(&a).await?, b"hello");
    assert_eq!(fs::read_to_string(&a).await?, "hello");
    assert_eq!(fs::metadata(&a).await?.len(), 5);
    assert!(fs::try_exists(&a).await?);
    assert!(!fs::try_exists(dir.join("nope")).await?);

    assert_eq!(fs::copy(&a, dir.join("b.txt")).await?, 5);
    fs::rename(dir.join("b.txt"), dir.join("c.txt")).await?;
    assert!(!fs::try_exists(dir.join("b.txt")).await?);
    assert_eq!(fs::read(dir.join("c.txt")).await?, b"hello");
    fs::hard_link(&a, dir.join("hard")).await?;
    assert_eq!(fs::read(dir.join("hard")).await?, b"hello");

    fs::symlink(&a, dir.join("link")).await?;
    assert_eq!(fs::read_link(dir.join("link")).await?, a);
    assert!(fs::symlink_metadata(dir.join("link")).await?.is_symlink());
    assert!(fs::metadata(dir.join("link")).await?.is_file());
    assert_eq!(fs::canonicalize(dir.join("link")).await?, a);

    let mut perms = fs::metadata(&a).await?.permissions();
    perms.set_readonly(true);
    fs::set_permissions(&a, perms).await?;
    assert!(fs::metadata(&a).await?.permissions().readonly());

    fs::create_dir(dir.join("d")).await?;
    fs::create_dir_all(dir.join("d/e/f")).await?;
    assert!(fs::metadata(dir.join("d/e/f")).await?.is_dir());
    fs::remove_dir(dir.join("d/e/f")).await?;
    fs::remove_dir_all(dir.join("d")).await?;
    assert!(!fs::try_exists(dir.join("d")).await?);
    fs::remove_file(dir.join("c.txt")).await?;
    assert!(!fs::try_exists(dir.join("c.txt")).await?);
    Ok(())
}

#[trio::test(autojump)]
async fn read_to_string_of_invalid_utf8_is_invalid_data() -> trio::Result<()> {
    let dir = TempDir::new("invalid-utf8");
    let p = dir.join("bin");
    fs::write(&p, [0xff, 0xfe]).await?;
    let err = fs::read_to_string(&p).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let io_err = err.downcast_ref::<io::Error>().unwrap();
    assert_eq!(io_err.kind(), io::ErrorKind::InvalidData);
    assert!(
        err.to_string()
            .starts_with(&format!("read {}: ", p.display()))
    );
    Ok(())
}

// ----- File ----------------------------------------------------------------------------

#[trio::test(autojump)]
async fn a_file_reads_writes_and_seeks() -> trio::Result<()> {
    let dir = TempDir::new("read-write-seek");
    let p = dir.join("f");
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .await?;
    assert_eq!(f.path(), Some(p.as_path()));
    f.write_all(b"0123456789").await?;
    assert_eq!(f.stream_position().await?, 10);
    assert_eq!(f.write(b"ab").await?, 2);
    assert_eq!(f.seek(SeekFrom::Start(3)).await?, 3);
    let mut buf = [0; 4];
    assert_eq!(f.read(&mut buf).await?, 4);
    assert_eq!(&buf, b"3456");
    assert_eq!(f.seek(SeekFrom::Current(-2)).await?, 5);
    assert_eq!(f.seek(SeekFrom::End(-1)).await?, 11);
    let mut rest = Vec::new();
    assert_eq!(f.read_to_end(&mut rest).await?, 1);
    assert_eq!(rest, b"b");
    // At the end: 0, for read and for receive_some.
    assert_eq!(f.read(&mut buf).await?, 0);
    assert_eq!(f.receive_some(&mut buf).await?, 0);
    // An empty buffer: 0 for read (std), InvalidArgument for the stream.
    assert_eq!(f.read(&mut []).await?, 0);
    assert_eq!(
        f.receive_some(&mut []).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );

    f.set_len(4).await?;
    assert_eq!(f.metadata().await?.len(), 4);
    assert_eq!(f.stream_position().await?, 12); // set_len does not move it
    f.rewind().await?;
    let mut s = String::new();
    assert_eq!(f.read_to_string(&mut s).await?, 4);
    assert_eq!(s, "0123");
    f.sync_all().await?;
    f.sync_data().await?;
    f.aclose().await?;

    // Append mode, through Trio's name.
    let f = trio::open_file(&p, OpenOptions::new().append(true)).await?;
    f.write_all(b"xy").await?;
    f.aclose().await?;
    assert_eq!(fs::read(&p).await?, b"0123xy");
    Ok(())
}

#[trio::test(autojump)]
async fn small_reads_walk_the_file_in_order() -> trio::Result<()> {
    let dir = TempDir::new("small-reads");
    let p = dir.join("f");
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(&p, &data).await?;
    let f = File::open(&p).await?;
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let n = f.read(&mut buf).await?;
        sizes.push(n);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(sizes, [4096, 4096, 1808, 0]);
    assert_eq!(got, data);
    Ok(())
}

#[trio::test(autojump)]
async fn a_wrapped_file_goes_back_to_std() -> trio::Result<()> {
    let dir = TempDir::new("wrap");
    let p = dir.join("f");
    let std_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)?;
    let f = trio::wrap_file(std_file);
    assert_eq!(f.path(), None);
    f.write_all(b"abc").await?;
    let mut back = f.into_std()?;
    back.write_all(b"d")?;
    drop(back);
    assert_eq!(fs::read(&p).await?, b"abcd");

    let f = File::open(&p).await?;
    f.aclose().await?;
    assert_eq!(f.into_std().unwrap_err().kind(), ErrorKind::Closed);
    Ok(())
}

#[trio::test(autojump)]
async fn a_file_works_with_the_stream_helpers() -> trio::Result<()> {
    let dir = TempDir::new("stream-helpers");
    let p = dir.join("lines");

    /// Generic over the trait, as a library would be.
    async fn send_lines<S: SendStream>(s: &S, lines: &[&str]) -> trio::Result<()> {
        for l in lines {
            s.wait_send_all_might_not_block().await?;
            s.send_all(l.as_bytes()).await?;
            s.send_all(b"\n").await?;
        }
        s.aclose().await
    }
    send_lines(&File::create(&p).await?, &["one", "two", "three"]).await?;

    let r = BufferedReceiveStream::new(File::open(&p).await?);
    assert_eq!(r.receive_line(100).await?, b"one\n");
    assert_eq!(r.receive_line(100).await?, b"two\n");
    assert_eq!(r.receive_to_end(100).await?, b"three\n");
    let mut buf = [0; 8];
    assert_eq!(r.receive_some(&mut buf).await?, 0);
    r.aclose().await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_closed_file_says_closed_and_closing_again_is_fine() -> trio::Result<()> {
    let dir = TempDir::new("closed");
    let p = dir.join("f");
    fs::write(&p, b"abc").await?;
    let f = File::options().read(true).write(true).open(&p).await?;
    f.aclose().await?;
    assert!(f.is_closed());
    let mut buf = [0; 4];
    assert_eq!(
        f.read(&mut buf).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(
        f.receive_some(&mut buf).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(
        f.send_all(b"x").await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(f.send_all(b"").await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(
        f.wait_send_all_might_not_block().await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(
        f.seek(SeekFrom::Start(0)).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(f.metadata().await.unwrap_err().kind(), ErrorKind::Closed);
    f.aclose().await?;
    AsyncResource::aclose(&f).await?;
    Ok(())
}

/// `/proc/self/fd/N` no longer names `path`. (Another test may have reused
/// the number for another file, so compare the target, not the existence.)
fn fd_is_not(fd: i32, path: &Path) -> bool {
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Ok(target) => target != path,
        Err(_) => true,
    }
}

#[trio::test(autojump)]
async fn a_cancelled_aclose_still_closes() -> trio::Result<()> {
    let dir = TempDir::new("cancelled-aclose");
    let p = dir.join("f");
    std::fs::write(&p, b"abc")?;
    let std_file = std::fs::File::open(&p)?;
    let fd = std_file.as_raw_fd();
    let f = trio::wrap_file(std_file);
    assert!(!fd_is_not(fd, &p));

    let scope = CancelScope::new();
    scope.cancel();
    let r = scope.run(f.aclose()).await?;
    assert_eq!(r, None); // it reported the cancellation…
    assert!(fd_is_not(fd, &p)); // …after closing the descriptor
    let mut buf = [0; 4];
    assert_eq!(
        f.read(&mut buf).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    f.aclose().await?;

    // Not cancelled: closed in a worker thread.
    let std_file = std::fs::File::open(&p)?;
    let fd = std_file.as_raw_fd();
    let f = trio::wrap_file(std_file);
    f.aclose().await?;
    assert!(fd_is_not(fd, &p));
    Ok(())
}

#[trio::test(autojump)]
async fn concurrent_use_of_one_direction_is_busy() -> trio::Result<()> {
    let dir = TempDir::new("busy");
    let (fifo, mut writer) = dir.fifo("fifo");
    let f = File::open(&fifo).await?;
    let got = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let mut buf = [0; 8];
            let k = f.read(&mut buf).await?;
            got.borrow_mut().extend_from_slice(&buf[..k]);
            Ok(())
        });
        until_threads_busy(1).await?;
        // The read blocks in its thread: other reads and seeks are Busy at
        // once, with no thread of their own.
        let mut buf = [0; 8];
        assert_eq!(f.read(&mut buf).await.unwrap_err().kind(), ErrorKind::Busy);
        assert_eq!(
            f.receive_some(&mut buf).await.unwrap_err().kind(),
            ErrorKind::Busy
        );
        let mut v = Vec::new();
        assert_eq!(
            f.read_to_end(&mut v).await.unwrap_err().kind(),
            ErrorKind::Busy
        );
        assert_eq!(
            f.seek(SeekFrom::Start(0)).await.unwrap_err().kind(),
            ErrorKind::Busy
        );
        // Calls that touch no position need no slot.
        assert!(f.metadata().await?.file_type().is_fifo_like());
        writer.write_all(b"go")?;
        Ok(())
    })
    .await?;
    assert_eq!(got.into_inner(), b"go");
    f.aclose().await
}

#[trio::test(autojump)]
async fn one_reader_and_one_writer_may_work_at_once() -> trio::Result<()> {
    let dir = TempDir::new("duplex");
    let (fifo, _keep) = dir.fifo("fifo");
    // Read-write on a FIFO: what this File writes, it reads back.
    let f = File::options().read(true).write(true).open(&fifo).await?;
    let got = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let mut buf = [0; 8];
            let k = f.receive_some(&mut buf).await?;
            got.borrow_mut().extend_from_slice(&buf[..k]);
            Ok(())
        });
        until_threads_busy(1).await?;
        // The read blocks in its thread; the write slot is free.
        f.send_all(b"hi").await?;
        Ok(())
    })
    .await?;
    assert_eq!(got.into_inner(), b"hi");
    f.aclose().await
}

/// `FileType::is_fifo` lives in an extension trait; one place to import it.
trait IsFifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl IsFifoLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_fifo(self)
    }
}

// ----- read_dir ------------------------------------------------------------------------

#[trio::test(autojump)]
async fn read_dir_lists_every_entry_across_batches() -> trio::Result<()> {
    let dir = TempDir::new("read-dir");
    let n = 3 * fs::READ_DIR_BATCH + 7;
    for i in 0..n {
        std::fs::write(dir.join(&format!("file{i:03}")), b"x")?;
    }
    std::fs::create_dir(dir.join("sub"))?;
    let mut entries = fs::read_dir(&dir.0).await?;
    assert_eq!(entries.path(), dir.0.as_path());
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    while let Some(e) = entries.next_entry().await? {
        assert_eq!(e.path(), dir.0.join(e.file_name()));
        let t = e.file_type()?;
        let name = e.file_name().into_string().unwrap();
        if t.is_dir() {
            assert!(e.metadata().await?.is_dir());
            dirs.push(name);
        } else {
            assert!(t.is_file());
            assert_eq!(e.metadata().await?.len(), 1);
            files.push(name);
        }
    }
    files.sort();
    let expected: Vec<String> = (0..n).map(|i| format!("file{i:03}")).collect();
    assert_eq!(files, expected);
    assert_eq!(dirs, ["sub"]);
    // Finished stays finished.
    assert!(entries.next_entry().await?.is_none());
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancelled_next_entry_loses_no_entry() -> trio::Result<()> {
    let dir = TempDir::new("read-dir-cancel");
    for i in 0..5 {
        std::fs::write(dir.join(&i.to_string()), b"")?;
    }
    let mut entries = fs::read_dir(&dir.0).await?;
    let first = entries.next_entry().await?.unwrap();
    // Cancelled before it checks: no effect, the buffered entries stay.
    let scope = CancelScope::new();
    scope.cancel();
    assert!(scope.run(entries.next_entry()).await?.is_none());
    let mut names = vec![first.file_name()];
    while let Some(e) = entries.next_entry().await? {
        names.push(e.file_name());
    }
    names.sort();
    assert_eq!(names, ["0", "1", "2", "3", "4"]);
    Ok(())
}

// ----- errors name the path ------------------------------------------------------------

#[trio::test(autojump)]
async fn errors_name_the_operation_and_the_path() -> trio::Result<()> {
    let dir = TempDir::new("errors");
    let missing = dir.join("missing");

    let err = File::open(&missing).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(
        err.to_string(),
        format!(
            "open {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let io_err = err
        .downcast_ref::<io::Error>()
        .expect("an io::Error inside");
    assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
    let os = io_err
        .source()
        .unwrap()
        .downcast_ref::<io::Error>()
        .unwrap();
    assert_eq!(os.raw_os_error(), Some(2));
    let p = io_err
        .get_ref()
        .unwrap()
        .downcast_ref::<fs::PathError>()
        .unwrap();
    assert_eq!(
        (p.operation(), p.path(), p.to()),
        ("open", Some(missing.as_path()), None)
    );
    assert_eq!(p.io_error().raw_os_error(), Some(2));

    let a = dir.join("a");
    fs::write(&a, b"").await?;
    let err = fs::read_dir(&a).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("read_dir {}: Not a directory (os error 20)", a.display())
    );
    let err = fs::rename(&missing, &a).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "rename {} to {}: No such file or directory (os error 2)",
            missing.display(),
            a.display()
        )
    );
    let err = fs::create_dir(&a).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<io::Error>().unwrap().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert!(
        err.to_string()
            .starts_with(&format!("create_dir {}: ", a.display()))
    );

    // An open file's errors name its path; a wrapped one's name none.
    let f = File::create(&a).await?; // write-only
    let mut buf = [0; 4];
    let err = f.read(&mut buf).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("read {}: Bad file descriptor (os error 9)", a.display())
    );
    f.aclose().await?;
    let f = trio::wrap_file(std::fs::File::create(&a)?);
    let err = f.read(&mut buf).await.unwrap_err();
    assert_eq!(err.to_string(), "read: Bad file descriptor (os error 9)");
    Ok(())
}

// ----- cancellation ----------------------------------------------------------------------

#[trio::test(autojump)]
async fn a_call_cancelled_before_its_thread_starts_has_no_effect() -> trio::Result<()> {
    let dir = TempDir::new("cancel-before");
    let p = dir.join("f");
    fs::write(&p, b"abc").await?;
    let f = File::open(&p).await?;
    let scope = CancelScope::new();
    scope.cancel();
    let mut buf = [0; 4];
    assert_eq!(scope.run(f.read(&mut buf)).await?, None);
    assert_eq!(f.stream_position().await?, 0); // nothing was read
    let scope = CancelScope::new();
    scope.cancel();
    assert_eq!(scope.run(fs::write(dir.join("g"), b"x")).await?, None);
    assert!(!fs::try_exists(dir.join("g")).await?); // nothing was written
    f.aclose().await
}

#[trio::test(autojump)]
async fn a_read_cancelled_in_its_thread_still_returns_its_bytes() -> trio::Result<()> {
    let dir = TempDir::new("cancel-read");
    let (fifo, mut writer) = dir.fifo("fifo");
    let f = File::open(&fifo).await?;
    let scope = CancelScope::new();
    let got = RefCell::new(None);
    let mut buf = [0; 16];
    trio::open_nursery(async |n| {
        n.start_soon(async {
            *got.borrow_mut() = Some(scope.run(f.read(&mut buf)).await?);
            Ok(())
        });
        until_threads_busy(1).await?;
        scope.cancel();
        for _ in 0..10 {
            trio::checkpoint().await?;
        }
        assert!(
            got.borrow().is_none(),
            "the read kept waiting for its thread"
        );
        writer.write_all(b"hello")?;
        Ok(())
    })
    .await?;
    // The read completed and kept its bytes; the scope's cancellation
    // found no later checkpoint inside it.
    assert_eq!(got.into_inner(), Some(Some(5)));
    assert_eq!(&buf[..5], b"hello");
    f.aclose().await
}

#[trio::test(autojump)]
async fn a_path_call_cancelled_in_its_thread_completes_by_default() -> trio::Result<()> {
    let dir = TempDir::new("cancel-path-default");
    let (fifo, mut writer) = dir.fifo("fifo");
    let scope = CancelScope::new();
    let got = RefCell::new(None);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            // fs::read of a FIFO reads until every writer is gone.
            *got.borrow_mut() = Some(scope.run(fs::read(&fifo)).await?);
            Ok(())
        });
        until_threads_busy(1).await?;
        scope.cancel();
        for _ in 0..10 {
            trio::checkpoint().await?;
        }
        assert!(
            got.borrow().is_none(),
            "the read kept waiting for its thread"
        );
        until_worker_opened(&fifo).await?;
        writer.write_all(b"data")?;
        drop(writer);
        Ok(())
    })
    .await?;
    assert_eq!(got.into_inner(), Some(Some(b"data".to_vec())));
    Ok(())
}

#[trio::test(autojump)]
async fn an_abandoning_path_call_returns_cancelled_at_once() -> trio::Result<()> {
    let dir = TempDir::new("cancel-path-abandon");
    let (fifo, mut writer) = dir.fifo("fifo");
    let limiter = to_thread::current_default_thread_limiter()?;
    let scope = CancelScope::new();
    let got = RefCell::new(None);
    let abandoning = fs::Builder::new().abandon_on_cancel(true);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            *got.borrow_mut() = Some(scope.run(abandoning.read(&fifo)).await?);
            Ok(())
        });
        until_threads_busy(1).await?;
        scope.cancel();
        while got.borrow().is_none() {
            trio::checkpoint().await?;
        }
        // Cancelled at once, while the thread still blocks (its token is
        // still out).
        assert_eq!(limiter.borrowed_tokens(), 1);
        Ok(())
    })
    .await?;
    assert_eq!(got.into_inner(), Some(None));
    // Let the abandoned thread finish; its result is dropped, and its
    // token comes back.
    until_worker_opened(&fifo).await?;
    writer.write_all(b"late")?;
    drop(writer);
    trio::testing::wait_all_tasks_blocked().await?;
    assert_eq!(limiter.borrowed_tokens(), 0);
    Ok(())
}

/// Opens a writer on `fifo` (read-write, which does not block), releasing
/// an `open` blocked on its read end.
fn release_open(fifo: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(fifo)
        .unwrap()
}

#[trio::test(autojump)]
async fn an_open_cancelled_in_its_thread_returns_the_file_by_default() -> trio::Result<()> {
    let dir = TempDir::new("cancel-open-default");
    let fifo = dir.bare_fifo("fifo");
    let limiter = trio::sync::CapacityLimiter::new(1)?;
    let fs = fs::Builder::new().limiter(limiter.clone());
    let scope = CancelScope::new();
    let got = RefCell::new(None);
    let mut writer = None;
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let f = scope
                .run(fs.open(&fifo, OpenOptions::new().read(true)))
                .await?;
            *got.borrow_mut() = Some(f);
            Ok(())
        });
        // The open blocks in its thread, counted against our limiter.
        while limiter.borrowed_tokens() != 1 {
            trio::checkpoint().await?;
        }
        scope.cancel();
        for _ in 0..10 {
            trio::checkpoint().await?;
        }
        assert!(
            got.borrow().is_none(),
            "the open kept waiting for its thread"
        );
        writer = Some(release_open(&fifo));
        Ok(())
    })
    .await?;
    let f = got
        .into_inner()
        .unwrap()
        .expect("the opened file, despite the cancel");
    assert_eq!(f.path(), Some(fifo.as_path()));
    writer.unwrap().write_all(b"x")?;
    let mut buf = [0; 4];
    assert_eq!(f.read(&mut buf).await?, 1);
    assert_eq!(limiter.borrowed_tokens(), 0);
    f.aclose().await
}

#[trio::test(autojump)]
async fn an_abandoning_open_returns_cancelled_at_once_and_closes_the_late_file() -> trio::Result<()>
{
    let dir = TempDir::new("cancel-open-abandon");
    let fifo = dir.bare_fifo("fifo");
    let limiter = to_thread::current_default_thread_limiter()?;
    let fs = fs::Builder::new().abandon_on_cancel(true);
    let scope = CancelScope::new();
    let got = RefCell::new(None);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let f = scope
                .run(fs.open(&fifo, OpenOptions::new().read(true)))
                .await?;
            *got.borrow_mut() = Some(f.is_some());
            Ok(())
        });
        until_threads_busy(1).await?;
        scope.cancel();
        while got.borrow().is_none() {
            trio::checkpoint().await?;
        }
        assert_eq!(limiter.borrowed_tokens(), 1); // the thread still blocks
        Ok(())
    })
    .await?;
    assert_eq!(got.into_inner(), Some(false)); // Cancelled, caught by the scope
    let writer = release_open(&fifo);
    trio::testing::wait_all_tasks_blocked().await?; // the worker finished
    assert_eq!(limiter.borrowed_tokens(), 0);
    // The late file was dropped, so closed: only our own descriptor is left.
    assert_eq!(open_count(&fifo), 1);
    drop(writer);
    Ok(())
}
