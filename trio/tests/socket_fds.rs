//! No fd leaks: counts `/proc/self/fd` before and after socket work of
//! every kind — streams closed and dropped, listeners, datagrams, a
//! cancelled connect (which must close its socket), a socket moved to
//! another run, conversions to std types. `harness = false`: the default
//! harness runs tests in parallel threads, whose fds would blur the count.

use socket2::{Domain, Type};
use trio::socket::{Socket, SocketListener, SocketStream};
use trio::stream::{AsyncResource, Listener, ReceiveStream, SendStream, Stream};
use trio::{CancelScope, ErrorKind};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

async fn exercise() -> trio::Result<()> {
    // TCP: a stream closed gracefully, one dropped, one closed abortively.
    let listener = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
    let addr = listener.local_addr()?.as_socket().unwrap();
    for i in 0..3 {
        let client = SocketStream::connect_tcp(addr).await?;
        let server = listener.accept().await?;
        client.send_all(b"ping").await?;
        let mut buf = [0; 4];
        server.receive_some(&mut buf).await?;
        match i {
            0 => {
                client.send_eof().await?;
                assert_eq!(server.receive_some(&mut buf).await?, 0);
                client.aclose().await?;
                server.aclose().await?;
            }
            1 => drop((client, server)),
            _ => {
                client.set_abortive_close()?;
                client.aclose().await?;
            }
        }
    }
    listener.aclose().await?;

    // A connect cancelled before it starts closes its socket.
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let scope = CancelScope::new();
    scope.cancel();
    assert!(scope.run(s.connect(&addr.into())).await?.is_none());

    // Unix streams and datagrams, and a receive blocked then cancelled.
    let (a, b) = SocketStream::unix_pair()?;
    let mut buf = [0; 4];
    assert!(
        trio::move_on_after(0.01, a.receive_some(&mut buf))
            .await?
            .is_none()
    );
    b.aclose().await?;
    assert_eq!(a.receive_some(&mut buf).await?, 0);
    let (c, d) = Socket::pair(Domain::UNIX, Type::DGRAM, None)?;
    c.send(b"x").await?;
    d.recv(&mut buf).await?;

    // UDP; to std and back.
    let u = trio::socket::udp_bind("127.0.0.1:0".parse().unwrap())?;
    let _ = trio::move_on_after(0.01, u.recv_from(&mut buf)).await?;
    let std_u: std::net::UdpSocket = u.into();
    let u = Socket::try_from(std_u)?;
    drop(u);

    // A socket registered here, then used (and dropped) in another run.
    let (e, f) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    let _ = trio::move_on_after(0.01, e.recv(&mut buf)).await?;
    std::thread::spawn(move || {
        trio::run(async move {
            f.send(b"y").await?;
            let mut buf = [0; 1];
            e.recv(&mut buf).await?;
            Ok(())
        })
    })
    .join()
    .unwrap()?;

    // Operations on a closed stream say Closed.
    let (g, _h) = SocketStream::unix_pair()?;
    g.aclose().await?;
    assert_eq!(
        g.send_all(b"z").await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    Ok(())
}

fn main() {
    let before = open_fds();
    for _ in 0..3 {
        trio::run(exercise()).unwrap();
    }
    let after = open_fds();
    assert_eq!(before, after, "fds open before and after the socket work");
    println!("socket_fds: {before} fds before and after: no leak");
}
