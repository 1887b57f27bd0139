//! `trio_compat::tokio`: real tokio crates (reqwest, `tokio::fs`,
//! `tokio::process`, `tokio::sync::mpsc` with a task tokio runs, tokio
//! timers) called from trio tasks. These wait on a peer outside the run
//! (the tokio helper thread, a server thread, a child process), so they use
//! the real clock; the timeouts that fire are short and the waits they cut
//! are long, so no outcome depends on timing.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use trio::ErrorKind;

/// A one-thread HTTP/1.1 server on 127.0.0.1 answering each connection's
/// first request with `body` (or, with `body == None`, reading the request
/// and never answering, holding the connection until the client drops it).
/// Returns the base URL. The thread ends after `connections` connections.
fn http_server(body: Option<&'static str>, connections: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(connections) {
            let Ok(conn) = conn else { return };
            serve(conn, body);
        }
    });
    format!("http://{addr}")
}

fn serve(mut conn: TcpStream, body: Option<&str>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    // The request head ends with an empty line.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    match body {
        Some(body) => {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        // Silent: wait until the client closes (read returns 0 or fails).
        None => {
            let _ = reader.read_line(&mut line);
        }
    }
}

#[trio::test]
async fn reqwest_get_against_a_local_server() -> trio::Result<()> {
    let url = http_server(Some("hello from std"), 1);
    let body = trio_compat::tokio(async { reqwest::get(&url).await?.text().await }).await?;
    assert_eq!(body, "hello from std");
    Ok(())
}

/// The example: `move_on_after` around a request that never gets
/// an answer gives up (`None`); the request future is dropped.
#[trio::test]
async fn reqwest_under_a_move_on_after_that_fires() -> trio::Result<()> {
    let url = http_server(None, 1);
    let r = trio::move_on_after(0.2, trio_compat::tokio(reqwest::get(&url))).await?;
    assert!(r.is_none());
    Ok(())
}

#[trio::test]
async fn reqwest_under_a_fail_after_that_fires() -> trio::Result<()> {
    let url = http_server(None, 1);
    let err = trio::fail_after(0.2, trio_compat::tokio(reqwest::get(&url)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooSlow);
    Ok(())
}

/// A library error comes back as a trio error (reqwest::Error: std Error
/// + Send + Sync), not a panic: nothing listens on the port.
#[trio::test]
async fn reqwest_error_flattens_into_a_trio_error() -> trio::Result<()> {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again
    let err = trio_compat::tokio(reqwest::get(format!("http://127.0.0.1:{port}/")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    Ok(())
}

#[trio::test]
async fn tokio_fs_write_then_read() -> trio::Result<()> {
    let dir = std::env::temp_dir().join(format!("trio-compat-tokio-fs-{}", std::process::id()));
    let path = dir.join("f.txt");
    let read = trio_compat::tokio(async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(&path, b"through tokio::fs").await?;
        tokio::fs::read_to_string(&path).await
    })
    .await?;
    assert_eq!(read, "through tokio::fs");
    trio_compat::tokio(tokio::fs::remove_dir_all(&dir)).await?;
    assert!(!path.exists());
    Ok(())
}

#[trio::test]
async fn tokio_process_output() -> trio::Result<()> {
    // Built inside the async block: `output()` spawns the child at once,
    // which needs the tokio context.
    let out = trio_compat::tokio(async {
        tokio::process::Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output()
            .await
    })
    .await?;
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(3));
    Ok(())
}

/// A child that would run for a minute, under a `fail_after` that fires:
/// the wait is dropped, and `kill_on_drop` kills the child.
#[trio::test]
async fn tokio_process_under_a_fail_after_that_fires() -> trio::Result<()> {
    let mut child = trio_compat::tokio_raw(async {
        tokio::process::Command::new("sleep")
            .arg("60")
            .kill_on_drop(true)
            .spawn()
    })
    .await??;
    let err = trio::fail_after(0.2, trio_compat::tokio(child.wait()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooSlow);
    // Still ours to kill and reap.
    trio_compat::tokio(child.kill()).await?;
    let status = trio_compat::tokio(child.wait()).await?;
    assert!(!status.success());
    Ok(())
}

/// A `tokio::sync::mpsc` channel shared with a task that tokio runs (on
/// the helper thread): ping-pong both ways.
#[trio::test]
async fn mpsc_with_a_tokio_spawned_task() -> trio::Result<()> {
    let (to_tokio, mut from_trio) = tokio::sync::mpsc::channel::<u32>(1);
    let (to_trio, mut from_tokio) = tokio::sync::mpsc::channel::<u32>(1);
    // The JoinHandle is returned on purpose, to be awaited at the end.
    #[allow(clippy::async_yields_async)]
    let echo = trio_compat::tokio_raw(async move {
        tokio::spawn(async move {
            while let Some(n) = from_trio.recv().await {
                if to_trio.send(n * 2).await.is_err() {
                    break;
                }
            }
        })
    })
    .await?;
    for i in 0..50 {
        trio_compat::tokio(to_tokio.send(i)).await?;
        let got = trio_compat::tokio_raw(from_tokio.recv()).await?;
        assert_eq!(got, Some(i * 2));
    }
    drop(to_tokio);
    // The echo task ends when its receiver closes; its JoinHandle is a
    // tokio future too.
    trio_compat::tokio(echo).await?;
    Ok(())
}

/// A receive that nobody answers, under a `move_on_after`: gives up, and
/// the channel is still usable.
#[trio::test]
async fn mpsc_recv_under_a_move_on_after_that_fires() -> trio::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
    let r = trio::move_on_after(0.05, trio_compat::tokio_raw(rx.recv())).await?;
    assert_eq!(r, None);
    tx.try_send(5).unwrap();
    assert_eq!(trio_compat::tokio_raw(rx.recv()).await?, Some(5));
    Ok(())
}

#[trio::test]
async fn tokio_sleep_under_a_move_on_after_that_fires() -> trio::Result<()> {
    let r = trio::move_on_after(
        0.05,
        trio_compat::tokio_raw(async { tokio::time::sleep(Duration::from_secs(60)).await }),
    )
    .await?;
    assert_eq!(r, None);
    Ok(())
}

/// The future is polled and dropped inside the tokio context, also when it
/// is dropped because its scope was cancelled.
#[trio::test]
async fn dropped_on_cancel_inside_the_tokio_context() -> trio::Result<()> {
    struct Probe(Arc<AtomicBool>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.store(
                tokio::runtime::Handle::try_current().is_ok(),
                Ordering::SeqCst,
            );
        }
    }
    let dropped_in_context = Arc::new(AtomicBool::new(false));
    let probe = Probe(dropped_in_context.clone());
    let r = trio::move_on_after(
        0.05,
        trio_compat::tokio_raw(async move {
            let _probe = probe;
            assert!(tokio::runtime::Handle::try_current().is_ok());
            std::future::pending::<()>().await
        }),
    )
    .await?;
    assert_eq!(r, None);
    assert!(dropped_in_context.load(Ordering::SeqCst));
    Ok(())
}

/// A scope cancelled before the call: `Cancelled` at once, the future is
/// never polled.
#[trio::test]
async fn a_cancelled_scope_cancels_before_the_first_poll() -> trio::Result<()> {
    let polled = AtomicBool::new(false);
    let scope = trio::CancelScope::new();
    scope.cancel();
    scope
        .run(async {
            let err = trio_compat::tokio_raw(async { polled.store(true, Ordering::SeqCst) })
                .await
                .unwrap_err();
            assert!(err.is_cancelled());
            Err::<(), _>(err)
        })
        .await?;
    assert!(!polled.load(Ordering::SeqCst));
    Ok(())
}

/// While a tokio future is pending the run is not idle: autojump does not
/// skip the virtual 10 s deadline past a real 20 ms tokio sleep.
#[trio::test(autojump)]
async fn pending_tokio_work_is_not_idleness() -> trio::Result<()> {
    let r = trio::move_on_after(
        10.0,
        trio_compat::tokio_raw(async { tokio::time::sleep(Duration::from_millis(20)).await }),
    )
    .await?;
    assert_eq!(r, Some(()));
    Ok(())
}

/// A future that yields through tokio's waker on every poll does not starve
/// the run: other trio tasks still run between its polls.
#[trio::test]
async fn a_yielding_future_does_not_starve_the_run() -> trio::Result<()> {
    let count = std::cell::Cell::new(0u32);
    trio::open_nursery(async |nursery| {
        nursery.start_soon(async {
            for _ in 0..100 {
                trio_compat::tokio_raw(tokio::task::yield_now()).await?;
                count.set(count.get() + 1);
            }
            Ok(())
        });
        // Checked while the yielding task is between polls.
        trio::lowlevel::checkpoint().await?;
        assert!(count.get() < 100);
        Ok(())
    })
    .await?;
    assert_eq!(count.get(), 100);
    Ok(())
}

/// Each run has its own runtime; a second run on the same thread works.
#[test]
fn one_runtime_per_run() {
    for _ in 0..2 {
        trio::run(async {
            let h = trio_compat::tokio_raw(async { tokio::runtime::Handle::current() }).await?;
            assert_eq!(
                h.runtime_flavor(),
                tokio::runtime::RuntimeFlavor::CurrentThread
            );
            Ok(())
        })
        .unwrap();
    }
}

/// Outside a run: an error, not a panic.
#[test]
fn outside_a_run_is_an_error() {
    let fut = std::pin::pin!(trio_compat::tokio_raw(async {}));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::future::Future::poll(fut, &mut cx) {
        std::task::Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Usage),
        other => panic!("expected a Usage error, got {other:?}"),
    }
}

/// Wakers that tokio keeps after a call has ended (here the receiver's,
/// from a cancelled `recv`) hold nothing that counts as a way to wake the
/// run: a deadlock afterwards is still reported, not waited on forever.
#[test]
fn wakers_left_in_tokio_do_not_hide_a_deadlock() {
    let err = trio::run(async {
        let (_tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        let r = trio::move_on_after(0.01, trio_compat::tokio_raw(rx.recv())).await?;
        assert_eq!(r, None);
        let (_never_tx, never) = trio::open_memory_channel::<u8>(0);
        never.receive().await?; // nobody will ever send
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Deadlock);
}
