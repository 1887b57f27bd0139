//! `trio::socket`: conformance checks on TCP and Unix socket streams, the
//! cancellation acceptance of issue 11, the reactor's registration rules,
//! and interop with Python peers. Everything uses the real clock (the peers
//! and the kernel are outside the run: autojump would count waiting on them
//! as idleness) and loopback addresses only.

mod common;
use common::python;
use socket2::{Domain, Type};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use trio::socket::{Socket, SocketListener, SocketStream};
use trio::stream::{AsyncResource, Listener, ReceiveStream, SendStream};
use trio::testing::{check_half_closeable_stream, wait_all_tasks_blocked};
use trio::{CancelScope, ErrorKind, open_nursery};

async fn tcp_pair() -> trio::Result<(SocketStream, SocketStream)> {
    let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
    let addr = listener.local_addr()?.as_socket().unwrap();
    let client = SocketStream::connect_tcp(addr).await?;
    let server = listener.accept().await?;
    Ok((client, server))
}

/// Fills both directions of a pair so that a send blocks until the peer
/// receives (Trio's clogged socket stream makers fill both ends too: the
/// two-way checks also run with the pair flipped). Small, fixed buffers
/// first: a fixed `SO_RCVBUF` also turns off TCP's receive-buffer
/// autotuning, which would otherwise open the window later and unclog the
/// sender without any receive.
fn clog(a: &SocketStream, b: &SocketStream) -> trio::Result<()> {
    let (a, b) = (a.socket()?, b.socket()?);
    for s in [&a, &b] {
        s.as_socket2().set_send_buffer_size(4096)?;
        s.as_socket2().set_recv_buffer_size(4096)?;
    }
    for s in [&a, &b] {
        // Big chunks first, then single bytes: the buffer is then truly
        // full, not merely short of one more big chunk (still "writable").
        for chunk in [4096, 1] {
            while s.as_socket2().send(&vec![b'x'; chunk]).is_ok() {}
        }
    }
    Ok(())
}

#[trio::test]
async fn tcp_socket_streams_pass_the_half_closeable_checks() -> trio::Result<()> {
    let clogged = async || {
        let (a, b) = tcp_pair().await?;
        clog(&a, &b)?;
        Ok((a, b))
    };
    check_half_closeable_stream(tcp_pair, Some(clogged)).await
}

#[trio::test]
async fn unix_socket_streams_pass_the_half_closeable_checks() -> trio::Result<()> {
    let pair = async || SocketStream::unix_pair();
    let clogged = async || {
        let (a, b) = SocketStream::unix_pair()?;
        clog(&a, &b)?;
        Ok((a, b))
    };
    check_half_closeable_stream(pair, Some(clogged)).await
}

#[trio::test]
async fn a_cancelled_receive_with_data_queued_takes_nothing() -> trio::Result<()> {
    let (a, b) = tcp_pair().await?;
    a.send_all(b"queued").await?;
    // Let the bytes cross loopback first.
    b.socket()?.wait_readable().await?;
    let scope = CancelScope::new();
    scope.cancel();
    let mut buf = [0; 16];
    let r = scope.run(b.receive_some(&mut buf)).await;
    assert!(
        matches!(r, Ok(None)),
        "expected a cancelled receive, got {r:?}"
    );
    let n = b.receive_some(&mut buf).await?;
    assert_eq!(&buf[..n], b"queued");
    Ok(())
}

#[trio::test]
async fn a_cancelled_read_or_accept_wakes_at_once_and_the_socket_stays_usable() -> trio::Result<()>
{
    let (a, b) = tcp_pair().await?;
    let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
    let start = trio::current_time();
    open_nursery(async |n| {
        let scope = n.cancel_scope();
        n.start_soon(async {
            let mut buf = [0; 4];
            let n = b.receive_some(&mut buf).await?;
            Err(trio::Error::new(
                ErrorKind::Other,
                format!("{n} bytes though nothing was sent"),
            ))
        });
        n.start_soon(async {
            listener.accept().await?;
            Err(trio::Error::new(
                ErrorKind::Other,
                "accepted though nobody connected",
            ))
        });
        wait_all_tasks_blocked().await?;
        scope.cancel();
        Ok(())
    })
    .await?;
    assert!(trio::current_time() - start < 1.0);
    a.send_all(b"ok").await?;
    let mut buf = [0; 4];
    assert_eq!(b.receive_some(&mut buf).await?, 2);
    let addr = listener.local_addr()?.as_socket().unwrap();
    let _c = SocketStream::connect_tcp(addr).await?;
    listener.accept().await?;
    Ok(())
}

#[trio::test]
async fn a_reused_fd_does_not_inherit_readiness() -> trio::Result<()> {
    // A readable socket, registered (its wait ran), then closed.
    let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    b.send(b"x").await?;
    a.wait_readable().await?;
    let fd = a.as_raw_fd();
    drop(a);
    drop(b);
    // A new, silent socket gets the same fd number.
    let (c, _d) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    assert_eq!(c.as_raw_fd(), fd, "the kernel reuses the lowest fd");
    let mut buf = [0; 1];
    trio::move_on_after(0.2, c.recv(&mut buf))
        .await?
        .map_or(Ok(()), |_| {
            Err(trio::Error::new(
                ErrorKind::Other,
                "stale readiness woke a read",
            ))
        })
}

#[trio::test]
async fn a_raw_fd_wait_on_a_registered_socket_shares_its_registration() -> trio::Result<()> {
    let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    let mut buf = [0; 4];
    // Registers `a` (the read waits).
    open_nursery(async |n| {
        let scope = n.cancel_scope();
        n.start_soon(async {
            let _ = a.recv(&mut buf).await;
            Ok(())
        });
        wait_all_tasks_blocked().await?;
        scope.cancel();
        Ok(())
    })
    .await?;
    b.send(b"ab").await?;
    trio::lowlevel::wait_readable(a.as_raw_fd()).await?;
    let mut buf = [0; 4];
    assert_eq!(a.recv(&mut buf).await?, 2);
    // Readiness already consumed: a raw wait now blocks until more comes.
    let r = trio::move_on_after(0.1, trio::lowlevel::wait_readable(a.as_raw_fd())).await?;
    assert!(r.is_none());
    Ok(())
}

#[trio::test]
async fn udp_datagrams_round_trip_and_a_cancelled_recv_takes_none() -> trio::Result<()> {
    let a = trio::socket::udp_bind("127.0.0.1:0".parse().unwrap())?;
    let b = trio::socket::udp_bind("127.0.0.1:0".parse().unwrap())?;
    let b_addr = b.local_addr()?;
    // A cancelled send sent nothing: the first datagram to arrive is "one".
    let scope = CancelScope::new();
    scope.cancel();
    assert!(scope.run(a.send_to(b"zero", &b_addr)).await?.is_none());
    a.send_to(b"one", &b_addr).await?;
    b.wait_readable().await?;
    let scope = CancelScope::new();
    scope.cancel();
    let mut buf = [0; 16];
    assert!(scope.run(b.recv_from(&mut buf)).await?.is_none());
    let (n, from) = b.recv_from(&mut buf).await?;
    assert_eq!(&buf[..n], b"one");
    assert_eq!(from.as_socket(), a.local_addr()?.as_socket());
    Ok(())
}

#[trio::test]
async fn a_socket_moves_to_another_run() -> trio::Result<()> {
    let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    let mut buf = [0; 4];
    let _ = trio::move_on_after(0.01, a.recv(&mut buf)).await?; // registers here
    let a = std::thread::spawn(move || {
        trio::run(async move {
            b.send(b"hey").await?;
            let mut buf = [0; 4];
            let n = a.recv(&mut buf).await?;
            assert_eq!(&buf[..n], b"hey");
            Ok(a)
        })
    })
    .join()
    .unwrap()?;
    let _std: std::os::unix::net::UnixStream = a.into();
    Ok(())
}

#[test]
fn tcp_echo_with_a_python_peer() {
    let Some(mut py) = python() else {
        eprintln!("python3 not found: skipped");
        return;
    };
    let mut child = py
        .arg("-c")
        .arg(
            "import socket,sys\n\
             l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n\
             print(l.getsockname()[1], flush=True)\n\
             c,_=l.accept()\n\
             while True:\n\
             \x20   d=c.recv(65536)\n\
             \x20   if not d: break\n\
             \x20   c.sendall(d)\n\
             c.close()",
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let port: u16 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    trio::run(async move {
        let s = SocketStream::connect_tcp(([127, 0, 0, 1], port).into()).await?;
        for i in 0..100u32 {
            let msg = format!("message {i}");
            s.send_all(msg.as_bytes()).await?;
            let mut got = Vec::new();
            let mut buf = [0; 64];
            while got.len() < msg.len() {
                let n = s.receive_some(&mut buf).await?;
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, msg.as_bytes());
        }
        trio::stream::Stream::send_eof(&s).await?;
        let mut buf = [0; 4];
        assert_eq!(s.receive_some(&mut buf).await?, 0);
        s.aclose().await
    })
    .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn unix_and_udp_with_python_peers() {
    let Some(mut py) = python() else {
        eprintln!("python3 not found: skipped");
        return;
    };
    let dir = std::env::temp_dir().join(format!("trio-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s");
    let _ = std::fs::remove_file(&path);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp.local_addr().unwrap();
    let listener_path = path.clone();
    trio::run(async move {
        let listener = SocketListener::bind_unix(&listener_path)?;
        let udp = Socket::try_from(udp)?;
        let mut child = py
            .arg("-c")
            .arg(format!(
                "import socket\n\
                 u=socket.socket(socket.AF_UNIX); u.connect({p:?}); u.sendall(b'unix'); u.close()\n\
                 d=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.sendto(b'udp', ('127.0.0.1', {port}))",
                p = listener_path.to_str().unwrap(),
                port = udp_addr.port()
            ))
            .spawn()?;
        let s = listener.accept().await?;
        let mut buf = [0; 16];
        let n = s.receive_some(&mut buf).await?;
        assert_eq!(&buf[..n], b"unix");
        let (n, _) = udp.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"udp");
        assert!(child.wait()?.success());
        Ok(())
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::io::stdout().flush();
}

#[test]
fn sockets_are_send_and_streams_move_between_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Socket>();
    sync::<Socket>();
    send::<SocketStream>();
    send::<SocketListener>();
}

#[trio::test]
async fn tcp_over_ipv6_loopback() -> trio::Result<()> {
    let Ok(listener) = SocketListener::bind_tcp("[::1]:0".parse().unwrap()) else {
        eprintln!("no IPv6 loopback: skipped");
        return Ok(());
    };
    let addr = listener.local_addr()?.as_socket().unwrap();
    let client = SocketStream::connect_tcp(addr).await?;
    let server = listener.accept().await?;
    server.send_all(b"six").await?;
    let mut buf = [0; 3];
    assert_eq!(client.receive_some(&mut buf).await?, 3);
    Ok(())
}

#[trio::test]
async fn fds_pass_over_a_unix_socket_and_a_cancelled_receive_takes_none() -> trio::Result<()> {
    use std::os::fd::AsFd;
    let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    let (p, q) = std::os::unix::net::UnixStream::pair()?;
    a.send_with_fds(b"fd", &[p.as_fd()]).await?;
    b.wait_readable().await?;
    let scope = CancelScope::new();
    scope.cancel();
    let mut buf = [0; 8];
    assert!(scope.run(b.recv_with_fds(&mut buf, 4)).await?.is_none());
    let (n, fds) = b.recv_with_fds(&mut buf, 4).await?;
    assert_eq!((&buf[..n], fds.len()), (&b"fd"[..], 1));
    // The received fd is `p`'s socket: writing to it reaches `q`.
    let mut passed = std::os::unix::net::UnixStream::from(fds.into_iter().next().unwrap());
    passed.write_all(b"!")?;
    let mut got = [0; 1];
    (&q).read_exact(&mut got)?;
    assert_eq!(&got, b"!");
    Ok(())
}

#[test]
fn fd_passing_with_a_python_peer() {
    let Some(mut py) = python() else {
        eprintln!("python3 not found: skipped");
        return;
    };
    trio::run(async move {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let (file_r, mut file_w) = std::os::unix::net::UnixStream::pair()?;
        file_w.write_all(b"through python")?;
        drop(file_w);
        let ours = Socket::try_from(ours)?;
        // The child inherits `theirs` (close-on-exec cleared), receives
        // one fd on it and sends it back.
        socket2::SockRef::from(&theirs).set_cloexec(false)?;
        let theirs_fd = theirs.as_raw_fd();
        let mut child = py
            .arg("-c")
            .arg(format!(
                "import socket\n\
                 s=socket.socket(fileno={theirs_fd})\n\
                 msg,fds,_,_=socket.recv_fds(s, 16, 4)\n\
                 socket.send_fds(s, [b'back:'+msg], fds)"
            ))
            .spawn()?;
        drop(theirs);
        use std::os::fd::AsFd;
        ours.send_with_fds(b"file", &[file_r.as_fd()]).await?;
        drop(file_r);
        let mut buf = [0; 32];
        let (n, fds) = ours.recv_with_fds(&mut buf, 4).await?;
        assert_eq!(&buf[..n], b"back:file");
        let mut back = std::os::unix::net::UnixStream::from(fds.into_iter().next().unwrap());
        let mut text = String::new();
        back.read_to_string(&mut text)?;
        assert_eq!(text, "through python");
        assert!(child.wait()?.success());
        Ok(())
    })
    .unwrap();
}

#[trio::test]
async fn a_socket_dropped_in_another_thread_leaves_no_readiness_for_its_fd_number()
-> trio::Result<()> {
    // `a` is registered here with readiness cached, then dropped in another
    // thread: this run's entry for it goes stale without being told.
    let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    b.send(b"x").await?;
    a.wait_readable().await?;
    let fd = a.as_raw_fd();
    std::thread::spawn(move || drop((a, b))).join().unwrap();
    let (c, _d) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    assert_eq!(c.as_raw_fd(), fd, "the kernel reuses the lowest fd");
    let mut buf = [0; 1];
    assert!(trio::move_on_after(0.2, c.recv(&mut buf)).await?.is_none());
    // A raw wait on the reused number does not see the old readiness either.
    let raw = trio::move_on_after(0.1, trio::lowlevel::wait_readable(fd)).await?;
    assert!(raw.is_none());
    Ok(())
}
