//! DESIGN §9's socket rules that the conformance checks do not reach: the
//! options a `SocketStream` sets, `send_eof` as a half-close the peer
//! sees, an abortive close, Broken that sticks with the OS error as its
//! source, `connect` consuming (closing) a cancelled socket, and
//! `into_socket2` leaving the reactor. Real clock, loopback only: the
//! kernel is outside the run.

use socket2::{Domain, Type};
use std::io::ErrorKind as IoKind;
use std::os::fd::AsRawFd;
use trio::socket::{Socket, SocketListener, SocketStream};
use trio::stream::{AsyncResource, Listener, ReceiveStream, SendStream, Stream};
use trio::{CancelScope, ErrorKind};

async fn tcp_pair() -> trio::Result<(SocketStream, SocketStream)> {
    let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
    let addr = listener.local_addr()?.as_socket().unwrap();
    let client = SocketStream::connect_tcp(addr).await?;
    let server = listener.accept().await?;
    Ok((client, server))
}

/// Whether `fd` is open in this process.
fn fd_is_open(fd: i32) -> bool {
    std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists()
}

#[trio::test]
async fn a_tcp_socket_stream_sets_nodelay_and_notsent_lowat() -> trio::Result<()> {
    let (client, server) = tcp_pair().await?;
    for s in [&client, &server] {
        let sock = s.socket()?;
        assert!(sock.as_socket2().tcp_nodelay()?, "TCP_NODELAY is off");
        #[cfg(target_os = "linux")]
        assert_eq!(sock.as_socket2().tcp_notsent_lowat()?, 16 * 1024);
    }
    Ok(())
}

#[trio::test]
async fn send_eof_is_a_half_close_the_peer_reads_as_end_of_stream() -> trio::Result<()> {
    let (client, server) = tcp_pair().await?;
    client.send_all(b"last words").await?;
    client.send_eof().await?;
    client.send_eof().await?; // idempotent
    let mut got = Vec::new();
    let mut buf = [0; 64];
    loop {
        let n = server.receive_some(&mut buf).await?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"last words");
    // The other direction still works.
    server.send_all(b"reply").await?;
    let n = client.receive_some(&mut buf).await?;
    assert_eq!(&buf[..n], b"reply");
    // Sending after send_eof is Closed (our own doing), not Broken.
    let err = client.send_all(b"more").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    Ok(())
}

#[trio::test]
async fn an_abortive_close_resets_and_broken_sticks_with_the_os_error() -> trio::Result<()> {
    let (client, server) = tcp_pair().await?;
    client.set_abortive_close()?;
    client.aclose().await?;
    let mut buf = [0; 16];
    let err = server.receive_some(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    let source = err
        .downcast_ref::<std::io::Error>()
        .expect("the OS error is the source");
    assert_eq!(source.kind(), IoKind::ConnectionReset);
    // Sticky: later receives are Broken with the same cause. Sends are
    // Broken too, from their own syscall (the kernel reports the reset
    // once, then EPIPE), and that sticks for sends.
    for _ in 0..2 {
        let again = server.receive_some(&mut buf).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Broken, "{again}");
        let source = again
            .downcast_ref::<std::io::Error>()
            .expect("the OS error stays the source");
        assert_eq!(source.kind(), IoKind::ConnectionReset);
        let send = server.send_all(b"x").await.unwrap_err();
        assert_eq!(send.kind(), ErrorKind::Broken, "{send}");
        let source = send
            .downcast_ref::<std::io::Error>()
            .expect("the OS error is the source");
        assert!(
            matches!(source.kind(), IoKind::BrokenPipe | IoKind::ConnectionReset),
            "{source:?}"
        );
    }
    // Closing a broken stream is still fine, and then it is Closed.
    server.aclose().await?;
    assert_eq!(
        server.receive_some(&mut buf).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    Ok(())
}

#[trio::test]
async fn a_cancelled_connect_closes_the_socket() -> trio::Result<()> {
    let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
    let addr = listener.local_addr()?.as_socket().unwrap();
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let fd = socket.as_raw_fd();
    assert!(fd_is_open(fd));
    let scope = CancelScope::new();
    scope.cancel();
    let outcome = scope.run(socket.connect(&addr.into())).await;
    assert!(outcome?.is_none(), "the scope caught the cancellation");
    // `connect` took the socket by value: cancelled, it is gone (its fd
    // number may be reused by now, so check that nothing connected).
    let listener_sock = listener.socket()?.as_socket2().try_clone()?;
    listener_sock.set_nonblocking(true)?;
    let pending = listener_sock.accept();
    assert!(
        matches!(&pending, Err(e) if e.kind() == IoKind::WouldBlock),
        "a cancelled connect still connected: {pending:?}"
    );
    Ok(())
}

#[trio::test]
async fn into_socket2_leaves_the_reactor_and_the_socket_can_come_back() -> trio::Result<()> {
    let (a, b) = Socket::pair(Domain::UNIX, Type::DGRAM, None)?;
    // Register `b` with the reactor by making it wait once.
    let mut buf = [0; 8];
    trio::open_nursery(async |n| {
        n.start_soon(async {
            trio::testing::wait_all_tasks_blocked().await?;
            a.send(b"1").await?;
            Ok(())
        });
        let got = b.recv(&mut buf).await?;
        assert_eq!(&buf[..got], b"1");
        Ok(())
    })
    .await?;
    // Out of the reactor, then back in as a new trio socket: registering
    // again would fail (EEXIST) if the first registration were still there.
    let raw = b.into_socket2();
    let back = Socket::from_socket2(raw)?;
    trio::open_nursery(async |n| {
        n.start_soon(async {
            trio::testing::wait_all_tasks_blocked().await?;
            a.send(b"2").await?;
            Ok(())
        });
        let got = back.recv(&mut buf).await?;
        assert_eq!(&buf[..got], b"2");
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test]
async fn a_broken_send_does_not_hide_data_the_peer_sent_before_closing() -> trio::Result<()> {
    let (a, b) = SocketStream::unix_pair()?;
    b.send_all(b"hello").await?;
    b.aclose().await?;
    // EPIPE: the send direction is Broken, and stays so...
    for _ in 0..2 {
        let err = a.send_all(b"x").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Broken, "{err}");
    }
    // ...but what the peer sent before closing is still there, then the end.
    let mut buf = [0; 16];
    let n = a.receive_some(&mut buf).await?;
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(a.receive_some(&mut buf).await?, 0);
    Ok(())
}
