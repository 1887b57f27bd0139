//! `open_tcp_listeners`, `TcpListenOptions` and `open_unix_listener`
//! (issue 12, item 3; DESIGN §9). Loopback and wildcard addresses only;
//! the real clock (the peers are the kernel's). Skipping a family the OS
//! lacks is tested in `net/listeners.rs`'s unit tests, which can make
//! `socket()` fail with `EAFNOSUPPORT`.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use trio::net::TcpListenOptions;
use trio::socket::{SocketListener, SocketStream};
use trio::stream::{Listener, ReceiveStream, SendStream};
use trio::{ErrorKind, open_tcp_listeners, open_unix_listener};

fn addr_of(l: &SocketListener) -> SocketAddr {
    l.local_addr().unwrap().as_socket().unwrap()
}

/// A client connects to `to`, the listener accepts, one byte goes across.
async fn check_accepts(listener: &SocketListener, to: SocketAddr) -> trio::Result<()> {
    let client = SocketStream::connect_tcp(to).await?;
    let server = listener.accept().await?;
    client.send_all(b"x").await?;
    let mut buf = [0; 1];
    assert_eq!(server.receive_some(&mut buf).await?, 1);
    Ok(())
}

#[trio::test]
async fn no_host_listens_on_both_wildcards_each_on_a_port_of_its_own() -> trio::Result<()> {
    let listeners = open_tcp_listeners(0, None).await?;
    let addrs: Vec<_> = listeners.iter().map(addr_of).collect();
    assert_eq!(addrs.len(), 2);
    assert_eq!(addrs[0].ip(), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(addrs[1].ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    // Port 0: the kernel picked one for each.
    assert!(addrs.iter().all(|a| a.port() != 0));
    for l in &listeners {
        let s = l.socket()?;
        assert!(s.as_socket2().reuse_address()?);
    }
    // IPV6_V6ONLY: `::` does not also take IPv4, so the two are independent.
    assert!(listeners[0].socket()?.as_socket2().only_v6()?);
    check_accepts(&listeners[0], (Ipv6Addr::LOCALHOST, addrs[0].port()).into()).await?;
    check_accepts(&listeners[1], (Ipv4Addr::LOCALHOST, addrs[1].port()).into()).await?;
    Ok(())
}

#[trio::test]
async fn a_fixed_port_is_used_by_every_listener() -> trio::Result<()> {
    // A port free on both families a moment ago.
    let port = {
        let probe = open_tcp_listeners(0, None).await?;
        addr_of(&probe[0]).port()
    };
    let listeners = open_tcp_listeners(port, None).await?;
    let ports: Vec<_> = listeners.iter().map(|l| addr_of(l).port()).collect();
    assert_eq!(ports, [port, port]);
    Ok(())
}

#[trio::test]
async fn a_literal_host_gives_one_listener_on_it() -> trio::Result<()> {
    let v4 = open_tcp_listeners(0, Some("127.0.0.1")).await?;
    assert_eq!(v4.len(), 1);
    assert_eq!(addr_of(&v4[0]).ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    check_accepts(&v4[0], addr_of(&v4[0])).await?;

    let v6 = open_tcp_listeners(0, Some("::1")).await?;
    assert_eq!(v6.len(), 1);
    assert_eq!(addr_of(&v6[0]).ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert!(v6[0].socket()?.as_socket2().only_v6()?);
    check_accepts(&v6[0], addr_of(&v6[0])).await?;
    Ok(())
}

#[trio::test]
async fn a_name_gives_one_listener_per_distinct_address() -> trio::Result<()> {
    let listeners = open_tcp_listeners(0, Some("localhost")).await?;
    let addrs: Vec<_> = listeners.iter().map(addr_of).collect();
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    let mut ips: Vec<_> = addrs.iter().map(|a| a.ip()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(
        ips.len(),
        addrs.len(),
        "one listener per address: {addrs:?}"
    );
    for (l, a) in listeners.iter().zip(&addrs) {
        check_accepts(l, *a).await?;
    }
    Ok(())
}

#[trio::test]
async fn the_configure_hook_runs_on_every_socket_before_bind() -> trio::Result<()> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let hook_seen = seen.clone();
    let listeners = TcpListenOptions::new()
        .configure(move |socket| {
            // Not bound yet: the local address still has port 0.
            let port = socket.local_addr()?.as_socket().map(|a| a.port());
            hook_seen.borrow_mut().push(port);
            socket.set_reuse_port(true)
        })
        .open(0)
        .await?;
    assert_eq!(*seen.borrow(), [Some(0), Some(0)]);
    for l in &listeners {
        // SO_REUSEPORT, read back with getsockopt.
        assert!(l.socket()?.as_socket2().reuse_port()?);
    }
    // What SO_REUSEPORT is for: a second listener on the same port.
    let port = addr_of(&listeners[1]).port();
    let again = TcpListenOptions::new()
        .host("0.0.0.0")
        .configure(|s| s.set_reuse_port(true))
        .open(port)
        .await?;
    assert_eq!(addr_of(&again[0]).port(), port);
    Ok(())
}

#[trio::test]
async fn a_failing_hook_fails_the_whole_call() -> trio::Result<()> {
    let calls = Rc::new(RefCell::new(0));
    let hook_calls = calls.clone();
    let err = TcpListenOptions::new()
        .configure(move |_| {
            *hook_calls.borrow_mut() += 1;
            if *hook_calls.borrow() == 2 {
                return Err(std::io::Error::other("no thanks"));
            }
            Ok(())
        })
        .open(0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(err.to_string(), "no thanks");
    assert_eq!(*calls.borrow(), 2);
    Ok(())
}

/// The listen backlog as `ss` reports it (its `Send-Q` column for a
/// listening socket), or `None` without `ss`.
fn backlog_of(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[trio::test]
async fn the_backlog_is_the_largest_the_system_allows_unless_asked() -> trio::Result<()> {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(4096);
    let default = open_tcp_listeners(0, Some("127.0.0.1")).await?;
    let Some(got) = backlog_of(addr_of(&default[0]).port()) else {
        eprintln!("ss not found: skipped");
        return Ok(());
    };
    assert_eq!(got, somaxconn.min(0xFFFF));
    let small = TcpListenOptions::new()
        .host("127.0.0.1")
        .backlog(7)
        .open(0)
        .await?;
    assert_eq!(backlog_of(addr_of(&small[0]).port()), Some(7));
    Ok(())
}

#[trio::test]
async fn open_unix_listener_accepts_and_will_not_take_an_existing_path() -> trio::Result<()> {
    let path = std::env::temp_dir().join(format!("trio-listeners-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = open_unix_listener(&path)?;
    let client = SocketStream::connect_unix(&path).await?;
    let server = listener.accept().await?;
    client.send_all(b"unix").await?;
    let mut buf = [0; 4];
    assert_eq!(server.receive_some(&mut buf).await?, 4);
    assert_eq!(&buf, b"unix");
    let err = open_unix_listener(&path).unwrap_err();
    let io = err.find::<std::io::Error>().unwrap();
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
    std::fs::remove_file(&path)?;
    Ok(())
}
