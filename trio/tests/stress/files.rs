//! Files under random cancellation (feature `files`): a `trio::fs::File`
//! on a temp file, the path functions, and `read_dir`.
//!
//! # What a session does
//!
//! It makes a directory of its own under the system's temp dir (removed
//! by a guard however the session ends), opens `data` in it for reading
//! and writing, and keeps a *model*: the bytes the file must hold and the
//! position. Then 8–25 random operations, each inside the workload's
//! random scopes or, one time in ten, inside an already cancelled scope:
//! `write`, `write_all`, `send_all` (the stream trait), `read`,
//! `receive_some`, `read_to_end`, `seek` (from the start, the current
//! position or the end), `stream_position`, `set_len`, `metadata`,
//! `fs::read` (sometimes through a `Builder` that abandons on cancel),
//! `fs::write` of new contents, and a listing of the directory with
//! `read_dir` after making a few more files in it.
//!
//! # What is checked
//!
//! A `File` call never abandons its thread: cancelled, it either had its
//! whole effect and returned its result (the cancellation comes at the
//! next checkpoint) or never started and returned `Cancelled`. So the
//! model follows each result exactly: a read must return exactly the
//! model's bytes at the model's position (a read that was cancelled yet
//! moved the position would make the next read or `stream_position`
//! differ), a write moves the position by what it reports, `seek` and
//! `stream_position` must give the model's position, `metadata` its
//! length, `fs::read` its bytes. `read_dir`, called again after every cut
//! (an abandoned batch is not lost), must list each name exactly once.
//! Any error other than `Cancelled` is a violation.

use super::counters::C;
use super::ops::{BoxFut, in_random_scopes};
use super::prng::Rng;
use super::world::World;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use trio::fs::{Builder, File};
use trio::stream::{ReceiveStream, SendStream};
use trio::{CancelScope, Error, Result};

/// Removes the session's directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> std::io::Result<TempDir> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "trio-stress-files-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&path)?;
    Ok(TempDir(path))
}

/// What the file must hold, and where its position is.
#[derive(Default)]
struct Model {
    bytes: Vec<u8>,
    pos: usize,
    /// Names in the directory (with `data`).
    names: BTreeSet<String>,
}

impl Model {
    fn wrote(&mut self, data: &[u8]) {
        let end = self.pos + data.len();
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[self.pos..end].copy_from_slice(data);
        self.pos = end;
    }
}

pub async fn driver(w: &World, mut rng: Rng) -> Result<()> {
    if !rng.chance(50) {
        return Ok(());
    }
    trio::sleep(rng.secs(5.0)).await?;
    for _ in 0..rng.range(1, 2) {
        trio::lowlevel::checkpoint_if_cancelled().await?;
        session(w, rng.fork()).await?;
    }
    Ok(())
}

async fn session(w: &World, mut rng: Rng) -> Result<()> {
    let dir = match temp_dir() {
        Ok(d) => d,
        Err(e) => {
            w.violation(format!("files: making a temp dir: {e}"));
            return Ok(());
        }
    };
    let path = dir.0.join("data");
    let f = match File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .await
    {
        Ok(f) => f,
        Err(e) if e.is_cancelled() => return Err(e),
        Err(e) => {
            w.violation(format!("files: opening {}: {e:?}", path.display()));
            return Ok(());
        }
    };
    w.bump(C::file_sessions);
    let model = RefCell::new(Model::default());
    model.borrow_mut().names.insert("data".into());
    let mut outcome = Ok(());
    for i in 0..rng.range(8, 25) {
        if let Err(e) = trio::lowlevel::checkpoint_if_cancelled().await {
            outcome = Err(e);
            break;
        }
        let mut r = rng.fork();
        let fut: BoxFut<'_> = Box::pin(op(w, &f, &dir.0, &path, &model, i, r.fork()));
        let r = if r.chance(10) {
            let scope = CancelScope::new();
            scope.cancel();
            scope.run(fut).await.map(drop)
        } else {
            in_random_scopes(w, &mut r, fut).await
        };
        if let Err(e) = r {
            outcome = Err(e);
            break;
        }
    }
    // Always closes, even cancelled.
    if let Err(e) = f.aclose().await
        && !e.is_cancelled()
    {
        w.violation(format!("files: aclose: {e:?}"));
    }
    drop(dir);
    outcome
}

/// A call's error: `Cancelled` goes on (it had no effect), anything else
/// is a violation.
fn failed(w: &World, what: &str, e: Error) -> Result<()> {
    if e.is_cancelled() {
        w.bump(C::file_ops_cancelled);
        return Err(e);
    }
    w.violation(format!("files: {what}: unexpected {e:?}"));
    Ok(())
}

fn letters(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
}

/// One random operation, checked against the model.
async fn op(
    w: &World,
    f: &File,
    dir: &Path,
    path: &Path,
    model: &RefCell<Model>,
    i: u64,
    mut rng: Rng,
) -> Result<()> {
    let len = model.borrow().bytes.len();
    let pos = model.borrow().pos;
    let size = match rng.below(3) {
        0 => rng.range(1, 16),
        1 => rng.range(16, 5000),
        _ => rng.range(5000, 100_000),
    } as usize;
    match rng.below(14) {
        0..=2 => {
            let data = letters(&mut rng, size);
            let what = ["write", "write_all", "send_all"][rng.below(3) as usize];
            let r = match what {
                "write" => f.write(&data).await,
                "write_all" => f.write_all(&data).await.map(|()| data.len()),
                _ => f.send_all(&data).await.map(|()| data.len()),
            };
            match r {
                Ok(n) if n >= 1 && n <= data.len() => {
                    model.borrow_mut().wrote(&data[..n]);
                    w.bump(C::file_ops_checked);
                }
                Ok(n) => w.violation(format!("files: {what} of {} bytes reported {n}", data.len())),
                Err(e) => return failed(w, what, e),
            }
        }
        3..=5 => {
            let mut buf = vec![0; size];
            let (what, r) = if rng.chance(50) {
                ("read", f.read(&mut buf).await)
            } else {
                ("receive_some", f.receive_some(&mut buf).await)
            };
            match r {
                Ok(n) => {
                    let m = &mut *model.borrow_mut();
                    let avail = m.bytes.len().saturating_sub(m.pos);
                    let expected = &m.bytes[m.pos.min(m.bytes.len())..][..n.min(avail)];
                    if n > avail || (n == 0 && avail > 0) || &buf[..n] != expected {
                        w.violation(format!(
                            "files: {what} of {size} at position {} of {} returned {n} bytes \
                             that are not the file's (lost or reread bytes)",
                            m.pos,
                            m.bytes.len()
                        ));
                    }
                    m.pos += n;
                    w.bump(C::file_ops_checked);
                }
                Err(e) => return failed(w, what, e),
            }
        }
        6 => {
            let mut got = Vec::new();
            match f.read_to_end(&mut got).await {
                Ok(n) => {
                    let m = &mut *model.borrow_mut();
                    let rest = m.bytes.get(m.pos..).unwrap_or(&[]);
                    if n != got.len() || got != rest {
                        w.violation(format!(
                            "files: read_to_end at {} returned {n} bytes, the model has {} more",
                            m.pos,
                            rest.len()
                        ));
                    }
                    m.pos = m.pos.max(m.bytes.len());
                    w.bump(C::file_ops_checked);
                }
                Err(e) => return failed(w, "read_to_end", e),
            }
        }
        7 | 8 => {
            let (from, target) = match rng.below(3) {
                0 => {
                    let t = rng.below(len as u64 + 100) as usize;
                    (SeekFrom::Start(t as u64), t)
                }
                1 => {
                    let d = rng.below(pos as u64 + 50) as i64 - pos as i64;
                    (SeekFrom::Current(d), (pos as i64 + d) as usize)
                }
                _ => {
                    let d = rng.below(len as u64 + 1) as i64 - len as i64;
                    (SeekFrom::End(d), (len as i64 + d) as usize)
                }
            };
            match f.seek(from).await {
                Ok(p) if p as usize == target => {
                    model.borrow_mut().pos = target;
                    w.bump(C::file_ops_checked);
                }
                Ok(p) => w.violation(format!(
                    "files: seek({from:?}) from {pos} in {len} bytes went to {p}, not {target}"
                )),
                Err(e) => return failed(w, "seek", e),
            }
        }
        9 => match f.stream_position().await {
            Ok(p) if p as usize == pos => w.bump(C::file_ops_checked),
            Ok(p) => w.violation(format!(
                "files: stream_position is {p}, the model says {pos}: a call moved it behind our back"
            )),
            Err(e) => return failed(w, "stream_position", e),
        },
        10 => {
            let new = rng.below(len as u64 + 2000) as usize;
            match f.set_len(new as u64).await {
                Ok(()) => {
                    model.borrow_mut().bytes.resize(new, 0);
                    w.bump(C::file_ops_checked);
                }
                Err(e) => return failed(w, "set_len", e),
            }
            match f.metadata().await {
                Ok(m) if m.len() as usize == new => {}
                Ok(m) => w.violation(format!(
                    "files: metadata says {} bytes after set_len({new})",
                    m.len()
                )),
                Err(e) => return failed(w, "metadata", e),
            }
        }
        11 => {
            let abandon = rng.chance(50);
            match Builder::new().abandon_on_cancel(abandon).read(path).await {
                Ok(got) => {
                    if got != model.borrow().bytes {
                        w.violation(format!(
                            "files: fs::read returned {} bytes that are not the file's {}",
                            got.len(),
                            len
                        ));
                    }
                    w.bump(C::file_whole_checked);
                }
                Err(e) => return failed(w, "fs::read", e),
            }
        }
        12 => {
            let data = letters(&mut rng, size);
            match trio::fs::write(path, &data).await {
                // Truncated and rewritten; our position stays.
                Ok(()) => {
                    model.borrow_mut().bytes = data;
                    w.bump(C::file_ops_checked);
                }
                Err(e) => return failed(w, "fs::write", e),
            }
        }
        _ => {
            let name = format!("f{i}");
            match trio::fs::write(dir.join(&name), b"x").await {
                Ok(()) => {
                    model.borrow_mut().names.insert(name);
                }
                Err(e) => return failed(w, "fs::write of a new file", e),
            }
            return list(w, dir, model, &mut rng).await;
        }
    }
    Ok(())
}

/// Lists the directory, retrying after every cut; each name exactly once.
async fn list(w: &World, dir: &Path, model: &RefCell<Model>, rng: &mut Rng) -> Result<()> {
    let builder = Builder::new().abandon_on_cancel(rng.chance(50));
    let mut rd = match builder.read_dir(dir).await {
        Ok(rd) => rd,
        Err(e) => return failed(w, "read_dir", e),
    };
    let seen = RefCell::new(Vec::new());
    let done = std::cell::Cell::new(false);
    for _ in 0..50 {
        let fut: BoxFut<'_> = Box::pin(async {
            loop {
                match rd.next_entry().await {
                    Ok(Some(e)) => seen
                        .borrow_mut()
                        .push(e.file_name().to_string_lossy().into_owned()),
                    Ok(None) => {
                        done.set(true);
                        return Ok(());
                    }
                    // Cancelled: a later call still gets the batch.
                    Err(e) if e.is_cancelled() => return failed(w, "next_entry", e),
                    Err(e) => {
                        done.set(true);
                        return failed(w, "next_entry", e);
                    }
                }
            }
        });
        in_random_scopes(w, rng, fut).await?;
        if done.get() {
            break;
        }
    }
    if !done.get() {
        return Ok(());
    }
    let mut seen = seen.into_inner();
    seen.sort();
    let expected: Vec<String> = model.borrow().names.iter().cloned().collect();
    if seen != expected {
        w.violation(format!(
            "files: read_dir listed {seen:?}, the directory holds {expected:?}"
        ));
    } else {
        w.bump(C::file_whole_checked);
    }
    Ok(())
}
