//! `open_tcp_stream` and `open_unix_stream` against real peers: a Python
//! `socketserver` echo server started by the test, trio's own listeners on
//! 127.0.0.1 (by address and as "localhost"), a local address, a refused
//! port, and Happy Eyeballs on loopback with one address that never
//! answers (a listener whose backlog is full).
//!
//! Everything uses the real clock (the peers and the kernel are outside the
//! run: autojump would count waiting on them as idleness) and loopback
//! addresses only. No test asserts a duration.

mod common;
use common::python;
use socket2::{Domain, Socket, Type};
use std::cell::RefCell;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use trio::net::{
    ConnectAttemptsFailed, HostnameResolver, SocketFactory, SystemSocketFactory, TcpConnect,
    set_hostname_resolver, set_socket_factory,
};
use trio::socket::{SocketListener, SocketStream};
use trio::stream::{AsyncResource, BoxFuture, Listener, ReceiveStream, SendStream, Stream};
use trio::{ErrorKind, open_nursery};

/// Sends `msg` and reads the same bytes back.
async fn echo_round_trip(s: &SocketStream, msg: &[u8]) -> trio::Result<()> {
    s.send_all(msg).await?;
    let mut got = Vec::new();
    let mut buf = [0; 64];
    while got.len() < msg.len() {
        let n = s.receive_some(&mut buf).await?;
        assert!(n > 0, "early end of stream");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, msg);
    Ok(())
}

#[test]
fn open_tcp_stream_talks_to_a_python_socketserver() {
    let Some(mut py) = python() else {
        eprintln!("python3 not found: skipped");
        return;
    };
    // Serves two connections (one per host spelling below), echoing each
    // until its end of stream.
    let mut child = py
        .arg("-c")
        .arg(
            "import socketserver\n\
             class Echo(socketserver.BaseRequestHandler):\n\
             \x20   def handle(self):\n\
             \x20       while True:\n\
             \x20           d = self.request.recv(65536)\n\
             \x20           if not d: break\n\
             \x20           self.request.sendall(d)\n\
             with socketserver.TCPServer(('127.0.0.1', 0), Echo) as server:\n\
             \x20   print(server.server_address[1], flush=True)\n\
             \x20   server.handle_request()\n\
             \x20   server.handle_request()\n",
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
        // "localhost" may resolve to ::1 first, where nothing listens: that
        // attempt is refused at once and the 127.0.0.1 one starts.
        for host in ["127.0.0.1", "localhost"] {
            let s = trio::open_tcp_stream(host, port).await?;
            let peer = s.socket()?.peer_addr()?.as_socket().unwrap();
            assert_eq!(peer, SocketAddr::from(([127, 0, 0, 1], port)));
            for i in 0..20u32 {
                echo_round_trip(&s, format!("{host} message {i}").as_bytes()).await?;
            }
            s.send_eof().await?;
            let mut buf = [0; 4];
            assert_eq!(s.receive_some(&mut buf).await?, 0);
            s.aclose().await?;
        }
        Ok(())
    })
    .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Connects to a trio listener on 127.0.0.1 as `host` and checks both ends.
async fn connect_to_own_listener(host: &str) -> trio::Result<()> {
    let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
    let port = listener.local_addr()?.as_socket().unwrap().port();
    open_nursery(async |nursery| {
        nursery.start_soon(async {
            let server = listener.accept().await?;
            let mut buf = [0; 64];
            let n = server.receive_some(&mut buf).await?;
            server.send_all(&buf[..n]).await?;
            server.aclose().await
        });
        let client = trio::open_tcp_stream(host, port).await?;
        echo_round_trip(&client, b"ping").await?;
        let mut buf = [0; 4];
        assert_eq!(client.receive_some(&mut buf).await?, 0);
        client.aclose().await
    })
    .await?;
    Ok(())
}

#[trio::test]
async fn open_tcp_stream_to_a_listener_on_127_0_0_1() -> trio::Result<()> {
    connect_to_own_listener("127.0.0.1").await
}

#[trio::test]
async fn open_tcp_stream_to_a_listener_as_localhost() -> trio::Result<()> {
    connect_to_own_listener("localhost").await
}

#[trio::test]
async fn a_refused_connection_reports_the_os_error() -> trio::Result<()> {
    // A port that was just free: nothing listens there.
    let port = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?
        .local_addr()?
        .as_socket()
        .unwrap()
        .port();
    let err = trio::open_tcp_stream("127.0.0.1", port).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let failed = err.downcast_ref::<ConnectAttemptsFailed>().unwrap();
    assert_eq!(failed.target(), format!("127.0.0.1:{port}"));
    let [(addr, e)] = failed.attempts() else {
        panic!("{err}")
    };
    assert_eq!(*addr, SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(
        e.downcast_ref::<std::io::Error>().unwrap().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    Ok(())
}

/// Whether this host can bind 127.0.0.2 (Linux can bind all of 127/8).
fn can_bind_127_0_0_2() -> bool {
    std::net::TcpListener::bind("127.0.0.2:0").is_ok()
}

#[trio::test]
async fn a_local_address_is_the_connection_source() -> trio::Result<()> {
    let local: IpAddr = if can_bind_127_0_0_2() {
        [127, 0, 0, 2].into()
    } else {
        [127, 0, 0, 1].into()
    };
    let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
    let port = listener.local_addr()?.as_socket().unwrap().port();
    let client = TcpConnect::new("127.0.0.1", port)
        .local_address(local)
        .connect()
        .await?;
    let server = listener.accept().await?;
    assert_eq!(
        client.socket()?.local_addr()?.as_socket().unwrap().ip(),
        local
    );
    assert_eq!(
        server.socket()?.peer_addr()?.as_socket().unwrap().ip(),
        local
    );
    // The IPv4 wildcard only picks the family.
    let client = TcpConnect::new("127.0.0.1", port)
        .local_address([0, 0, 0, 0].into())
        .connect()
        .await?;
    let server = listener.accept().await?;
    assert_eq!(
        server.socket()?.peer_addr()?.as_socket(),
        client.socket()?.local_addr()?.as_socket()
    );
    // The IPv6 wildcard cannot reach an IPv4 address.
    let err = TcpConnect::new("127.0.0.1", port)
        .local_address("::".parse().unwrap())
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    Ok(())
}

#[trio::test]
async fn open_unix_stream_connects_to_a_unix_listener() -> trio::Result<()> {
    let dir = std::env::temp_dir().join(format!("trio-net-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let listener = SocketListener::bind_unix(&path)?;
    let client = trio::open_unix_stream(&path).await?;
    let server = listener.accept().await?;
    client.send_all(b"over unix").await?;
    let mut buf = [0; 16];
    assert_eq!(server.receive_some(&mut buf).await?, 9);
    assert_eq!(&buf[..9], b"over unix");
    drop((client, server, listener));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Answers every name with the given addresses, in order.
struct Fixed(Vec<SocketAddr>);

impl HostnameResolver for Fixed {
    fn getaddrinfo<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, trio::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// The system socket factory, recording how each attempt ended.
#[derive(Default)]
struct Outcomes(RefCell<Vec<(SocketAddr, &'static str)>>);

impl SocketFactory for Outcomes {
    fn connect(
        &self,
        addr: SocketAddr,
        local: Option<IpAddr>,
    ) -> BoxFuture<'_, trio::Result<SocketStream>> {
        Box::pin(async move {
            let result = SystemSocketFactory.connect(addr, local).await;
            let outcome = match &result {
                Ok(_) => "connected",
                Err(e) if e.is_cancelled() => "cancelled",
                Err(_) => "failed",
            };
            self.0.borrow_mut().push((addr, outcome));
            result
        })
    }
}

/// A TCP listener on `ip:port` that never accepts and whose backlog is
/// full, so that a further connect to it hangs (Linux drops the SYN of a
/// connection its full accept queue cannot take, and the client retries
/// for minutes). Returns the listener and the connection that fills it.
fn full_listener(addr: SocketAddr) -> std::io::Result<(Socket, std::net::TcpStream)> {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.bind(&addr.into())?;
    // A backlog of 0 holds one connection, which the filler takes.
    listener.listen(0)?;
    let addr = listener.local_addr()?.as_socket().unwrap();
    let filler = std::net::TcpStream::connect(addr)?;
    Ok((listener, filler))
}

// Happy Eyeballs for real: the first address never answers, so the second
// attempt starts after the delay and wins; the first attempt's socket is
// cancelled, which closes it.
#[trio::test]
async fn the_second_address_wins_when_the_first_never_answers() -> trio::Result<()> {
    if !can_bind_127_0_0_2() || !cfg!(target_os = "linux") {
        eprintln!("needs 127.0.0.2 and Linux's full-backlog behaviour: skipped");
        return Ok(());
    }
    // One port on two loopback addresses: silent on .2, answering on .1.
    let (silent, _filler, listener) = loop {
        let (silent, filler) = full_listener("127.0.0.2:0".parse().unwrap())?;
        let port = silent.local_addr()?.as_socket().unwrap().port();
        if let Ok(l) = SocketListener::bind_tcp(([127, 0, 0, 1], port).into()) {
            break (silent, filler, l);
        }
    };
    let port = listener.local_addr()?.as_socket().unwrap().port();
    set_hostname_resolver(Some(Rc::new(Fixed(vec![
        ([127, 0, 0, 2], port).into(),
        ([127, 0, 0, 1], port).into(),
    ]))))?;
    let log = Rc::new(Outcomes::default());
    set_socket_factory(Some(log.clone()))?;
    let client = TcpConnect::new("two.example", port)
        .happy_eyeballs_delay(0.05)
        .connect()
        .await?;
    let server = listener.accept().await?;
    assert_eq!(
        client.socket()?.peer_addr()?.as_socket().unwrap(),
        SocketAddr::from(([127, 0, 0, 1], port))
    );
    // The silent address really hung until it was cancelled.
    assert_eq!(
        *log.0.borrow(),
        [
            (SocketAddr::from(([127, 0, 0, 1], port)), "connected"),
            (SocketAddr::from(([127, 0, 0, 2], port)), "cancelled"),
        ]
    );
    echo_round_trip_with(&client, &server).await?;
    drop(silent);
    Ok(())
}

async fn echo_round_trip_with(client: &SocketStream, server: &SocketStream) -> trio::Result<()> {
    client.send_all(b"hi").await?;
    let mut buf = [0; 2];
    assert_eq!(server.receive_some(&mut buf).await?, 2);
    assert_eq!(&buf, b"hi");
    Ok(())
}
