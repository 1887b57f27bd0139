//! The "GET this URL with a timeout" helper (issue 16 item 3):
//! [`trio_hyper::get`] under `move_on_after` against servers that hang.
//! The server is a plain trio TCP listener in the same run (it accepts,
//! reads, and answers little or nothing), so autojump applies: the
//! timeout takes no real time, and a connection left open would be a
//! deadlock the run reports, not a hang. (A server that answers is
//! covered by `tools.rs`, `tls.rs` and the crate's doc examples.)

use std::cell::{Cell, RefCell};
use trio::Instant;
use trio::socket::{SocketListener, SocketStream};
use trio::stream::{Listener, ReceiveStream, SendStream};

/// A listener on 127.0.0.1 and its port.
async fn listener() -> trio::Result<(SocketListener, u16)> {
    let mut listeners = trio::open_tcp_listeners(0, Some("127.0.0.1")).await?;
    let listener = listeners.remove(0);
    let port = listener.local_addr()?.as_socket().unwrap().port();
    Ok((listener, port))
}

/// Reads `conn` until the end of a request's head (kept in `head`), and
/// returns the time then.
async fn read_head(conn: &SocketStream, head: &RefCell<Vec<u8>>) -> trio::Result<Instant> {
    let mut buf = [0u8; 1024];
    while !head.borrow().ends_with(b"\r\n\r\n") {
        let n = conn.receive_some(&mut buf).await?;
        assert_ne!(n, 0, "the client closed before its request's head");
        head.borrow_mut().extend_from_slice(&buf[..n]);
    }
    Ok(trio::current_time())
}

/// Reads `conn` to its end (the peer closed it), expecting nothing more,
/// and returns the time then.
async fn read_to_eof(conn: &SocketStream) -> trio::Result<Instant> {
    let mut buf = [0u8; 1024];
    let n = conn.receive_some(&mut buf).await?;
    assert_eq!(n, 0, "the client sent more: {:?}", &buf[..n]);
    Ok(trio::current_time())
}

/// The server accepts, reads the whole request, then holds the connection
/// and never answers. `get` under a 10 s `move_on_after` moves on at
/// exactly 10 s (`None`, the scope's own cancellation caught, no error),
/// after the request had reached the server; by then its connection is
/// closed (the server reads EOF at that same instant: its driver task and
/// socket are gone), and the nursery ends with nothing left running.
#[trio::test(autojump)]
async fn get_under_move_on_after_gives_up_on_a_server_that_never_answers() -> trio::Result<()> {
    let (listener, port) = listener().await?;
    let t0 = trio::current_time();
    let head = RefCell::new(Vec::new());
    let (head_at, eof_at) = (Cell::new(None), Cell::new(None));
    trio::open_nursery(async |nursery| {
        nursery.start_soon(async {
            let conn = listener.accept().await?;
            head_at.set(Some(read_head(&conn, &head).await? - t0));
            // Never answers; holds the connection until the client drops it.
            eof_at.set(Some(read_to_eof(&conn).await? - t0));
            Ok(())
        });
        let url = format!("http://127.0.0.1:{port}/hang?x=1");
        let got = trio::move_on_after(10.0, trio_hyper::get(&url)).await?;
        assert!(got.is_none(), "moved on, no response: {got:?}");
        assert_eq!(trio::current_time() - t0, 10.0);
        Ok(())
    })
    .await?;
    let head = String::from_utf8(head.into_inner()).unwrap();
    assert!(head.starts_with("GET /hang?x=1 HTTP/1.1\r\n"), "{head:?}");
    assert!(
        head.contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")),
        "{head:?}"
    );
    // The request was in before the timeout; the close came with it.
    assert_eq!(head_at.get(), Some(0.0));
    assert_eq!(eof_at.get(), Some(10.0));
    assert_eq!(trio::current_time() - t0, 10.0);
    Ok(())
}

/// The server answers the head (a 200 promising 100 bytes), sends 10 of
/// them, and stalls. `get` is then reading the body (hyper's `Incoming`,
/// fed by the connection's driver); `move_on_after` still moves on at
/// exactly 10 s with `None`, and the connection is closed then.
#[trio::test(autojump)]
async fn get_under_move_on_after_gives_up_on_a_body_that_stalls() -> trio::Result<()> {
    let (listener, port) = listener().await?;
    let t0 = trio::current_time();
    let head = RefCell::new(Vec::new());
    let eof_at = Cell::new(None);
    trio::open_nursery(async |nursery| {
        nursery.start_soon(async {
            let conn = listener.accept().await?;
            read_head(&conn, &head).await?;
            conn.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                .await?;
            eof_at.set(Some(read_to_eof(&conn).await? - t0));
            Ok(())
        });
        let url = format!("http://127.0.0.1:{port}/");
        let got = trio::move_on_after(10.0, trio_hyper::get(&url)).await?;
        assert!(got.is_none(), "moved on, no response: {got:?}");
        Ok(())
    })
    .await?;
    assert!(head.borrow().starts_with(b"GET / HTTP/1.1\r\n"));
    assert_eq!(eof_at.get(), Some(10.0));
    assert_eq!(trio::current_time() - t0, 10.0);
    Ok(())
}
