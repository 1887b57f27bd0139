//! Tests for `trio::Path` (`trio::fs::path::Path`): the value semantics it
//! shares with `PathBuf`, the path builders that return a `trio::Path`,
//! every async I/O method against what `std` gives for the same path,
//! errors naming the path, and cancellation (the default completes; a
//! `Builder` taking a `&trio::Path` abandons when asked).
//!
//! Cancellation while a worker thread runs uses a FIFO, as `tests/fs.rs`
//! does: `read` on a FIFO stays in its thread until the test writes and
//! closes the writer. Worker threads keep the run from counting as idle,
//! so these tests run on the autojumping MockClock with no sleep.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use trio::fs::{self, OpenOptions};
use trio::{CancelScope, ErrorKind, Path, to_thread};

/// A fresh directory for one test, removed at the end.
struct TempDir(Path);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("trio-fs-path-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        // Canonical, so it compares equal to what canonicalize and
        // /proc/self/fd give.
        TempDir(Path::from(std::fs::canonicalize(p).unwrap()))
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The message of `err`, which must be an `Io` error.
fn io_message(err: trio::Error) -> String {
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    err.to_string()
}

/// The `io::ErrorKind` inside `err`.
fn io_kind(err: &trio::Error) -> io::ErrorKind {
    err.downcast_ref::<io::Error>()
        .expect("an io::Error inside")
        .kind()
}

// ----- value semantics -----------------------------------------------------------

#[test]
fn conversions_agree_with_path_buf() {
    let std_path = PathBuf::from("/a/b.txt");
    let all = [
        Path::new("/a/b.txt"),
        Path::from("/a/b.txt"),
        Path::from(String::from("/a/b.txt")),
        Path::from(std_path.clone()),
        Path::from(&std_path),
        Path::from(std_path.as_path()),
        Path::from(OsString::from("/a/b.txt")),
        "/a/b.txt".parse::<Path>().unwrap(),
    ];
    for p in &all {
        assert_eq!(*p, all[0]);
        assert_eq!(*p, std_path);
        assert_eq!(std_path, *p);
        assert_eq!(*p, std_path.as_path());
        assert_eq!(*std_path.as_path(), *p);
        assert_eq!(p.as_path(), std_path.as_path());
        assert_eq!(Path::from(p), *p);
    }
    let back: PathBuf = all[0].clone().into();
    assert_eq!(back, std_path);
    assert_eq!(all[0].clone().into_path_buf(), std_path);
    let as_ref: &std::path::Path = all[0].as_ref();
    assert_eq!(as_ref, std_path.as_path());
    let os: &std::ffi::OsStr = all[0].as_ref();
    assert_eq!(os, std_path.as_os_str());
    assert_eq!(Path::default(), PathBuf::default());
}

#[test]
fn it_is_send_and_sync_as_path_buf_is() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Path>();
}

#[test]
fn display_and_debug_are_those_of_std() {
    let p = Path::from("/tmp/a b/ü.txt");
    let s = std::path::Path::new("/tmp/a b/ü.txt");
    assert_eq!(p.to_string(), s.display().to_string());
    assert_eq!(format!("{p:?}"), format!("{:?}", s.to_path_buf()));
    assert_eq!(format!("{p:?}"), r#""/tmp/a b/ü.txt""#);
    // Non-UTF-8 bytes: lossy, as display() is.
    use std::os::unix::ffi::OsStringExt;
    let raw = OsString::from_vec(b"/x/\xff".to_vec());
    let p = Path::from(raw.clone());
    assert_eq!(
        p.to_string(),
        std::path::Path::new(&raw).display().to_string()
    );
    assert_eq!(p.to_string(), "/x/\u{fffd}");
}

#[test]
fn eq_ord_and_hash_are_those_of_path_buf() {
    let names = ["/b", "/a/c", "/a", "/a/./b", "a", "/a//b", "/a/b/"];
    let ours: Vec<Path> = names.iter().map(|n| Path::from(*n)).collect();
    let std: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
    for i in 0..names.len() {
        for j in 0..names.len() {
            assert_eq!(ours[i] == ours[j], std[i] == std[j], "{i} {j}");
            assert_eq!(ours[i].cmp(&ours[j]), std[i].cmp(&std[j]), "{i} {j}");
        }
    }
    // Component-wise equality, as PathBuf: "/a/./b" == "/a/b" == "/a//b/".
    assert_eq!(Path::from("/a/./b"), Path::from("/a//b/"));
    // Borrow<std::path::Path>: a map keyed by trio::Path is looked up by a
    // std path (which needs Hash and Eq to agree with std's).
    let mut map = HashMap::new();
    map.insert(Path::from("/a/b"), 1);
    assert_eq!(map.get(std::path::Path::new("/a/./b")), Some(&1));
    let set: BTreeSet<Path> = ours.iter().cloned().collect();
    let std_set: BTreeSet<PathBuf> = std.iter().cloned().collect();
    assert!(
        set.iter()
            .map(Path::as_path)
            .eq(std_set.iter().map(PathBuf::as_path))
    );
}

#[test]
fn path_builders_return_trio_paths_equal_to_std_ones() {
    let p = Path::from("/a/b.tar.gz");
    let s = std::path::Path::new("/a/b.tar.gz");
    let joined: Path = p.join("c");
    assert_eq!(joined, s.join("c"));
    // An absolute path replaces, as in std.
    assert_eq!(p.join("/abs"), PathBuf::from("/abs"));
    let parent: Option<Path> = p.parent();
    assert_eq!(parent, s.parent().map(Path::from));
    assert_eq!(Path::from("/").parent(), None);
    assert_eq!(Path::from("").parent(), None);
    let renamed: Path = p.with_file_name("x");
    assert_eq!(renamed, s.with_file_name("x"));
    let ext: Path = p.with_extension("zip");
    assert_eq!(ext, s.with_extension("zip"));
    // Chains stay trio paths.
    let chained: Path = p.parent().unwrap().join("d").with_extension("txt");
    assert_eq!(chained, PathBuf::from("/a/d.txt"));

    // Pure methods of std::path::Path come through Deref.
    assert_eq!(p.file_name(), s.file_name());
    assert_eq!(p.extension(), s.extension());
    assert_eq!(p.file_stem(), s.file_stem());
    assert!(p.is_absolute());
    assert!(p.starts_with("/a"));
    assert_eq!(
        p.components().collect::<Vec<_>>(),
        s.components().collect::<Vec<_>>()
    );

    // The mutators, against PathBuf's.
    let (mut ours, mut std) = (Path::from("/a/b.txt"), PathBuf::from("/a/b.txt"));
    ours.push("c");
    std.push("c");
    assert_eq!(ours, std);
    assert_eq!(ours.pop(), std.pop());
    assert_eq!(ours, std);
    ours.set_file_name("z.rs");
    std.set_file_name("z.rs");
    assert_eq!(ours, std);
    assert_eq!(ours.set_extension("md"), std.set_extension("md"));
    assert_eq!(ours, std);
    let (mut root_ours, mut root_std) = (Path::from("/"), PathBuf::from("/"));
    assert_eq!(root_ours.pop(), root_std.pop());
    assert_eq!(root_ours.set_extension("x"), root_std.set_extension("x"));
    assert_eq!(root_ours, root_std);
}

// ----- I/O methods against std -------------------------------------------------------

#[trio::test(autojump)]
async fn whole_file_methods_match_std() -> trio::Result<()> {
    let dir = TempDir::new("whole-file");
    let a = dir.join("a.txt");
    a.write("héllo\n").await?;
    assert_eq!(std::fs::read(&a)?, "héllo\n".as_bytes());
    assert_eq!(a.read().await?, std::fs::read(&a)?);
    assert_eq!(a.read_to_string().await?, std::fs::read_to_string(&a)?);
    a.write(vec![0xff, 0xfe]).await?; // truncates
    assert_eq!(a.read().await?, [0xff, 0xfe]);
    let err = a.read_to_string().await.unwrap_err();
    assert_eq!(io_kind(&err), io::ErrorKind::InvalidData);
    assert_eq!(
        io_kind(&err),
        std::fs::read_to_string(&a).unwrap_err().kind()
    );
    Ok(())
}

#[trio::test(autojump)]
async fn open_methods_match_std_file_constructors() -> trio::Result<()> {
    let dir = TempDir::new("open");
    let p = dir.join("f");

    // create: write-only, creates, truncates.
    let f = p.create().await?;
    assert_eq!(f.path(), Some(p.as_path()));
    f.write_all(b"0123456789").await?;
    let mut buf = [0; 4];
    assert_eq!(io_kind(&f.read(&mut buf).await.unwrap_err()), {
        std::fs::File::create(dir.join("std"))
            .and_then(|mut g| io::Read::read(&mut g, &mut buf))
            .unwrap_err()
            .kind()
    });
    f.aclose().await?;
    let f = p.create().await?;
    f.aclose().await?;
    assert_eq!(std::fs::metadata(&p)?.len(), 0);

    // open: read-only.
    std::fs::write(&p, b"abc")?;
    let f = p.open().await?;
    let mut s = String::new();
    f.read_to_string(&mut s).await?;
    assert_eq!(s, "abc");
    assert!(f.write(b"x").await.is_err());
    f.aclose().await?;

    // open_with: any options.
    let f = p.open_with(OpenOptions::new().append(true)).await?;
    f.write_all(b"def").await?;
    f.aclose().await?;
    assert_eq!(std::fs::read(&p)?, b"abcdef");

    // create_new: fails on an existing file, as std's does.
    let err = p.create_new().await.unwrap_err();
    assert_eq!(io_kind(&err), io::ErrorKind::AlreadyExists);
    assert_eq!(
        std::fs::File::create_new(&p).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    let fresh = dir.join("fresh");
    let f = fresh.create_new().await?;
    f.write_all(b"rw").await?;
    f.rewind().await?;
    let mut s = String::new();
    f.read_to_string(&mut s).await?; // read-write, as std's
    assert_eq!(s, "rw");
    f.aclose().await
}

#[trio::test(autojump)]
async fn queries_match_std_for_every_kind_of_path() -> trio::Result<()> {
    let dir = TempDir::new("queries");
    let file = dir.join("file");
    file.write("x").await?;
    let sub = dir.join("sub");
    sub.create_dir().await?;
    let link_to_file = dir.join("link-file");
    file.symlink(&link_to_file).await?;
    let link_to_dir = dir.join("link-dir");
    sub.symlink(&link_to_dir).await?;
    let broken = dir.join("broken");
    dir.join("nowhere").symlink(&broken).await?;
    let missing = dir.join("missing");
    let under_file = file.join("child"); // ENOTDIR

    for p in [
        &file,
        &sub,
        &link_to_file,
        &link_to_dir,
        &broken,
        &missing,
        &under_file,
    ] {
        let s = p.as_path();
        assert_eq!(p.exists().await?, s.exists(), "{p}");
        assert_eq!(p.is_file().await?, s.is_file(), "{p}");
        assert_eq!(p.is_dir().await?, s.is_dir(), "{p}");
        assert_eq!(p.is_symlink().await?, s.is_symlink(), "{p}");
        match (p.try_exists().await, s.try_exists()) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{p}"),
            (Err(a), Err(b)) => assert_eq!(io_kind(&a), b.kind(), "{p}"),
            (a, b) => panic!("{p}: {a:?} vs {b:?}"),
        }
        match (p.metadata().await, std::fs::metadata(p)) {
            (Ok(a), Ok(b)) => assert_eq!((a.ino(), a.file_type()), (b.ino(), b.file_type())),
            (Err(a), Err(b)) => assert_eq!(io_kind(&a), b.kind(), "{p}"),
            (a, b) => panic!("{p}: {a:?} vs {b:?}"),
        }
        match (p.symlink_metadata().await, std::fs::symlink_metadata(p)) {
            (Ok(a), Ok(b)) => assert_eq!((a.ino(), a.file_type()), (b.ino(), b.file_type())),
            (Err(a), Err(b)) => assert_eq!(io_kind(&a), b.kind(), "{p}"),
            (a, b) => panic!("{p}: {a:?} vs {b:?}"),
        }
        match (p.canonicalize().await, std::fs::canonicalize(p)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{p}"),
            (Err(a), Err(b)) => assert_eq!(io_kind(&a), b.kind(), "{p}"),
            (a, b) => panic!("{p}: {a:?} vs {b:?}"),
        }
        match (p.read_link().await, std::fs::read_link(p)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{p}"),
            (Err(a), Err(b)) => assert_eq!(io_kind(&a), b.kind(), "{p}"),
            (a, b) => panic!("{p}: {a:?} vs {b:?}"),
        }
    }
    // The two that return a trio Path.
    let canon: Path = link_to_file.canonicalize().await?;
    assert_eq!(canon, file);
    let target: Path = link_to_file.read_link().await?;
    assert_eq!(target, file);
    Ok(())
}

#[trio::test(autojump)]
async fn directory_methods_match_std() -> trio::Result<()> {
    let dir = TempDir::new("dirs");
    let names: BTreeSet<String> = (0..40).map(|i| format!("f{i:02}")).collect();
    for n in &names {
        dir.join(n).write(n).await?;
    }
    dir.join("d").create_dir().await?;

    // read_dir: the same entries as std's, across more than one batch.
    let mut ours = BTreeSet::new();
    let mut entries = dir.read_dir().await?;
    while let Some(e) = entries.next_entry().await? {
        assert_eq!(e.path(), dir.join(e.file_name()));
        ours.insert(e.file_name().into_string().unwrap());
    }
    let std: BTreeSet<String> = std::fs::read_dir(&*dir)?
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(ours, std);
    assert_eq!(ours.len(), names.len() + 1);

    // create_dir / create_dir_all / remove_dir / remove_dir_all.
    let deep = dir.join("a/b/c");
    let err = deep.create_dir().await.unwrap_err();
    assert_eq!(
        io_kind(&err),
        std::fs::create_dir(&deep).unwrap_err().kind()
    );
    deep.create_dir_all().await?;
    assert!(std::fs::metadata(&deep)?.is_dir());
    deep.create_dir_all().await?; // already there: fine, as std's
    let err = dir.join("a").remove_dir().await.unwrap_err();
    assert_eq!(
        io_kind(&err),
        std::fs::remove_dir(dir.join("a")).unwrap_err().kind()
    );
    deep.remove_dir().await?;
    assert!(!deep.as_path().exists());
    dir.join("a").remove_dir_all().await?;
    assert!(!dir.join("a").as_path().exists());
    Ok(())
}

#[trio::test(autojump)]
async fn two_path_methods_take_self_as_the_first_argument() -> trio::Result<()> {
    let dir = TempDir::new("two-paths");
    let a = dir.join("a");
    a.write("data").await?;

    assert_eq!(a.copy(dir.join("b")).await?, 4);
    assert_eq!(std::fs::read(dir.join("b"))?, b"data");
    dir.join("b").rename(dir.join("c")).await?;
    assert!(!dir.join("b").as_path().exists());
    assert_eq!(std::fs::read(dir.join("c"))?, b"data");

    a.hard_link(dir.join("hard")).await?;
    assert_eq!(
        std::fs::metadata(dir.join("hard"))?.ino(),
        std::fs::metadata(&a)?.ino()
    );
    assert_eq!(std::fs::metadata(&a)?.nlink(), 2);

    a.symlink(dir.join("soft")).await?;
    assert_eq!(std::fs::read_link(dir.join("soft"))?, a);

    dir.join("c").remove_file().await?;
    assert!(!dir.join("c").as_path().exists());
    Ok(())
}

#[trio::test(autojump)]
async fn set_permissions_matches_std() -> trio::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perms");
    let p = dir.join("f");
    p.write("").await?;
    p.set_permissions(std::fs::Permissions::from_mode(0o640))
        .await?;
    assert_eq!(std::fs::metadata(&p)?.permissions().mode() & 0o777, 0o640);
    assert_eq!(p.metadata().await?.permissions().mode() & 0o777, 0o640);
    Ok(())
}

#[trio::test(autojump)]
async fn a_trio_path_goes_wherever_a_std_path_does() -> trio::Result<()> {
    let dir = TempDir::new("as-ref");
    let p = dir.join("f");
    // The free functions, a Builder and std all take it.
    fs::write(&p, "1").await?;
    assert_eq!(fs::Builder::new().read(&p).await?, b"1");
    assert_eq!(std::fs::read(&p)?, b"1");
    let out = std::process::Command::new("cat").arg(&p).output()?;
    assert_eq!(out.stdout, b"1");
    Ok(())
}

// ----- errors name the path -------------------------------------------------------------

#[trio::test(autojump)]
async fn errors_name_the_operation_and_the_path() -> trio::Result<()> {
    let dir = TempDir::new("errors");
    let missing = dir.join("missing");
    let file = dir.join("file");
    file.write("").await?;
    let enoent = "No such file or directory (os error 2)";
    let m = missing.to_string();
    let f = file.to_string();

    let cases: Vec<(trio::Error, String)> = vec![
        (
            missing.open().await.unwrap_err(),
            format!("open {m}: {enoent}"),
        ),
        (
            missing
                .open_with(OpenOptions::new().read(true))
                .await
                .unwrap_err(),
            format!("open {m}: {enoent}"),
        ),
        (
            missing.join("x").create().await.unwrap_err(),
            format!("open {m}/x: {enoent}"),
        ),
        (
            file.create_new().await.unwrap_err(),
            format!("open {f}: File exists (os error 17)"),
        ),
        (
            missing.read().await.unwrap_err(),
            format!("read {m}: {enoent}"),
        ),
        (
            missing.read_to_string().await.unwrap_err(),
            format!("read {m}: {enoent}"),
        ),
        (
            missing.join("x").write("").await.unwrap_err(),
            format!("write {m}/x: {enoent}"),
        ),
        (
            missing.metadata().await.unwrap_err(),
            format!("metadata {m}: {enoent}"),
        ),
        (
            missing.symlink_metadata().await.unwrap_err(),
            format!("symlink_metadata {m}: {enoent}"),
        ),
        (
            file.join("x").try_exists().await.unwrap_err(),
            format!("try_exists {f}/x: Not a directory (os error 20)"),
        ),
        (
            missing.canonicalize().await.unwrap_err(),
            format!("canonicalize {m}: {enoent}"),
        ),
        (
            file.read_link().await.unwrap_err(),
            format!("read_link {f}: Invalid argument (os error 22)"),
        ),
        (
            missing
                .set_permissions(std::fs::metadata(&file)?.permissions())
                .await
                .unwrap_err(),
            format!("set_permissions {m}: {enoent}"),
        ),
        (
            file.read_dir().await.unwrap_err(),
            format!("read_dir {f}: Not a directory (os error 20)"),
        ),
        (
            file.create_dir().await.unwrap_err(),
            format!("create_dir {f}: File exists (os error 17)"),
        ),
        (
            file.join("x").create_dir_all().await.unwrap_err(),
            format!("create_dir_all {f}/x: Not a directory (os error 20)"),
        ),
        (
            missing.remove_file().await.unwrap_err(),
            format!("remove_file {m}: {enoent}"),
        ),
        (
            missing.remove_dir().await.unwrap_err(),
            format!("remove_dir {m}: {enoent}"),
        ),
        (
            missing.remove_dir_all().await.unwrap_err(),
            format!("remove_dir_all {m}: {enoent}"),
        ),
        (
            missing.rename(&file).await.unwrap_err(),
            format!("rename {m} to {f}: {enoent}"),
        ),
        (
            missing.copy(&file).await.unwrap_err(),
            format!("copy {m} to {f}: {enoent}"),
        ),
        (
            missing.hard_link(dir.join("h")).await.unwrap_err(),
            format!("hard_link {m} to {}/h: {enoent}", *dir),
        ),
        (
            missing.symlink(&file).await.unwrap_err(),
            format!("symlink {m} to {f}: File exists (os error 17)"),
        ),
    ];
    for (err, want) in cases {
        assert_eq!(io_message(err), want);
    }

    // The payload is a PathError naming the trio Path's std path.
    let err = missing.read().await.unwrap_err();
    let p = err
        .downcast_ref::<io::Error>()
        .unwrap()
        .get_ref()
        .unwrap()
        .downcast_ref::<fs::PathError>()
        .unwrap();
    assert_eq!(
        (p.operation(), p.path(), p.to()),
        ("read", Some(missing.as_path()), None)
    );
    Ok(())
}

// ----- cancellation ----------------------------------------------------------------------

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

/// Yields until a worker thread has opened `fifo` too (the test's writer
/// is the other descriptor). Needed before closing the writer: if the last
/// descriptor of a FIFO closes before the worker opens it, the data is
/// discarded and the worker's open waits for a writer forever.
async fn until_worker_opened(fifo: &Path) -> trio::Result<()> {
    let count = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target == fifo.as_path())
            .count()
    };
    while count() < 2 {
        trio::checkpoint().await?;
    }
    Ok(())
}

/// A FIFO and a read-write std handle on it (opening a FIFO read-write
/// does not block on Linux; the handle is the writer the reads wait for).
fn fifo(dir: &TempDir) -> (Path, std::fs::File) {
    let p = dir.join("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&p)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo failed");
    let writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    (p, writer)
}

#[trio::test(autojump)]
async fn a_path_method_cancelled_before_its_thread_starts_has_no_effect() -> trio::Result<()> {
    let dir = TempDir::new("cancel-before");
    let p = dir.join("f");
    let scope = CancelScope::new();
    scope.cancel();
    assert_eq!(scope.run(p.write("x")).await?, None);
    assert!(!p.as_path().exists()); // nothing was written
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancelled_query_reports_cancelled_not_false() -> trio::Result<()> {
    // exists/is_file/is_dir/is_symlink turn I/O errors into false, but not
    // Cancelled: a cancelled checkpoint must raise, or a polling loop
    // would spin forever.
    let dir = TempDir::new("cancel-query");
    // A scope is entered once: a fresh cancelled one per call.
    let cancelled = || {
        let scope = CancelScope::new();
        scope.cancel();
        scope
    };
    assert_eq!(cancelled().run(dir.exists()).await?, None);
    assert_eq!(cancelled().run(dir.is_dir()).await?, None);
    assert_eq!(cancelled().run(dir.is_file()).await?, None);
    assert_eq!(cancelled().run(dir.is_symlink()).await?, None);
    // Outside any cancellation, the same calls answer.
    assert!(dir.exists().await?);
    assert!(dir.is_dir().await?);
    assert!(!dir.is_file().await?);
    assert!(!dir.is_symlink().await?);
    Ok(())
}

#[trio::test(autojump)]
async fn a_path_method_cancelled_in_its_thread_completes() -> trio::Result<()> {
    let dir = TempDir::new("cancel-default");
    let (fifo, mut writer) = fifo(&dir);
    let scope = CancelScope::new();
    let got = RefCell::new(None);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            // Reading a FIFO reads until every writer is gone.
            *got.borrow_mut() = Some(scope.run(fifo.read()).await?);
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
    // Completed with its bytes; the cancellation found no later
    // checkpoint inside the scope.
    assert_eq!(got.into_inner(), Some(Some(b"data".to_vec())));
    Ok(())
}

#[trio::test(autojump)]
async fn a_builder_given_a_trio_path_abandons_when_asked() -> trio::Result<()> {
    let dir = TempDir::new("cancel-abandon");
    let (fifo, mut writer) = fifo(&dir);
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
        // Cancelled at once, while the thread still blocks.
        assert_eq!(limiter.borrowed_tokens(), 1);
        Ok(())
    })
    .await?;
    assert_eq!(got.into_inner(), Some(None));
    // Let the abandoned thread finish; its token comes back.
    until_worker_opened(&fifo).await?;
    writer.write_all(b"late")?;
    drop(writer);
    trio::testing::wait_all_tasks_blocked().await?;
    assert_eq!(limiter.borrowed_tokens(), 0);
    Ok(())
}
