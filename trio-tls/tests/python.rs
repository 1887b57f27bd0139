//! Python's `ssl` module (OpenSSL) as a real peer this project did not
//! write: as client and as server, with `maximum_version` TLS 1.2 and 1.3;
//! close_notify both ways, a ragged EOF under both settings, and `unwrap`
//! after a peer-initiated close (Python's `SSLSocket.unwrap()`, which runs
//! `SSLObject`'s shutdown: it sends close_notify and waits for ours).
//!
//! Skipped with a note when python3 is absent, unless TRIO_REQUIRE_TOOLS=1.
//! The peer is another process: these tests use the real clock, each under
//! a 60 s limit so a broken peer fails instead of hanging.

mod common;

use common::*;
use std::process::{Command, Stdio};
use trio::ErrorKind;
use trio::socket::SocketStream;
use trio::stream::{AsyncResource, Listener, ReceiveStream, SendStream, Stream};
use trio_tls::TlsStream;

/// A Python TLS server for one connection: prints its port, then runs
/// `mode` (see the branches); exits non-zero (with a traceback) when what
/// it saw differs from what the test expects.
const PY_SERVER: &str = r#"
import socket, ssl, sys
mode, ver, chain, key = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2 if ver == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(chain, key)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
conn, _ = ls.accept()
conn.settimeout(30)
s = ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False)
want = "TLSv1.2" if ver == "1.2" else "TLSv1.3"
assert s.version() == want, s.version()
def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        d = sock.recv(n - len(data))
        assert d, "early end of stream"
        data += d
    return data
if mode == "echo":
    # Echo one message, then expect our peer's close_notify: recv() returns
    # b"" only for a close_notify (a ragged EOF raises SSLEOFError here).
    s.sendall(b"pong:" + recv_exact(s, 4))
    assert s.recv(100) == b""
elif mode == "unwrap":
    # A peer-initiated close: send, then close_notify (unwrap waits for
    # the peer's), then plain bytes on the raw socket.
    s.sendall(b"bye")
    raw = s.unwrap()
    raw.sendall(b"PLAIN")
    assert recv_exact(raw, 3) == b"RAW"
elif mode == "halfclose":
    # TLS 1.3 half-close: our peer sends, then close_notify (send_eof);
    # we read to the end, and can still send before closing in turn.
    assert recv_exact(s, 4) == b"ping"
    assert s.recv(100) == b""
    s.sendall(b"after-eof")
    s.unwrap()
elif mode.startswith("bulk"):
    # Echo N bytes as they come (our side must send and receive at once),
    # then close first: close_notify, and wait for the peer's.
    total = int(mode[4:])
    done = 0
    while done < total:
        d = s.recv(65536)
        assert d, "early end of stream"
        s.sendall(d)
        done += len(d)
    s.unwrap()
elif mode == "ragged":
    # The TCP connection ends without a close_notify.
    s.sendall(b"bye")
    s.shutdown(socket.SHUT_WR)
    import time; time.sleep(0.2)
else:
    raise SystemExit("unknown mode " + mode)
print("ok", flush=True)
"#;

/// A Python TLS client: connects to the port, then runs `mode`.
const PY_CLIENT: &str = r#"
import socket, ssl, sys
port, mode, ver, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2 if ver == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.load_verify_locations(ca)
sock = socket.create_connection(("127.0.0.1", port), timeout=30)
s = ctx.wrap_socket(sock, server_hostname="localhost", suppress_ragged_eofs=False)
want = "TLSv1.2" if ver == "1.2" else "TLSv1.3"
assert s.version() == want, s.version()
def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        d = sock.recv(n - len(data))
        assert d, "early end of stream"
        data += d
    return data
if mode == "echo":
    s.sendall(b"ping")
    assert recv_exact(s, 9) == b"pong:ping"
    # Our peer closes (aclose): its close_notify reads as b"".
    assert s.recv(100) == b""
elif mode == "unwrap":
    s.sendall(b"bye")
    raw = s.unwrap()
    raw.sendall(b"PLAIN")
    assert recv_exact(raw, 3) == b"RAW"
elif mode == "ragged":
    s.sendall(b"bye")
    s.shutdown(socket.SHUT_WR)
    import time; time.sleep(0.2)
else:
    raise SystemExit("unknown mode " + mode)
print("ok", flush=True)
"#;

const VERSIONS: [&str; 2] = ["1.2", "1.3"];

/// Reads one line from the child's stdout.
async fn read_line<R: ReceiveStream>(r: &R) -> trio::Result<String> {
    let mut line = Vec::new();
    let mut b = [0; 1];
    loop {
        let n = r.receive_some(&mut b).await?;
        if n == 0 || b[0] == b'\n' {
            return Ok(String::from_utf8(line).unwrap());
        }
        line.push(b[0]);
    }
}

async fn receive_exact<R: ReceiveStream>(r: &R, n: usize) -> trio::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0; 64];
    while got.len() < n {
        let k = r.receive_some(&mut buf[..(n - got.len()).min(64)]).await?;
        assert_ne!(k, 0, "early end of stream after {got:?}");
        got.extend_from_slice(&buf[..k]);
    }
    Ok(got)
}

/// Runs the Python server in `mode`, connects a `TlsStream` client to it
/// and runs `ours` on it; then the server must exit 0 having printed "ok".
async fn with_python_server(
    mode: &str,
    ver: &str,
    https_compatible: bool,
    ours: impl AsyncFnOnce(TlsStream<SocketStream>) -> trio::Result<()>,
) -> trio::Result<()> {
    let pem = pem_files(&format!("server-{mode}-{ver}"));
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PY_SERVER)
        .arg(mode)
        .arg(ver)
        .arg(&pem.chain)
        .arg(&pem.key)
        .stdout(Stdio::piped());
    let process = trio::open_process(cmd)?;
    let out = process.stdout.as_ref().unwrap();
    let port: u16 = read_line(out).await?.trim().parse().unwrap();
    let tcp = trio::open_tcp_stream("127.0.0.1", port).await?;
    let tls = TlsStream::client(tcp, client_config(None), localhost())?
        .https_compatible(https_compatible);
    ours(tls).await?;
    assert_eq!(
        read_line(out).await?,
        "ok",
        "the Python server failed ({mode}, TLS {ver})"
    );
    assert!(process.wait().await?.success());
    Ok(())
}

/// Listens, runs the Python client in `mode` against us, and runs `ours`
/// on the accepted `TlsStream`; the client must exit 0 having printed "ok".
async fn with_python_client(
    mode: &str,
    ver: &str,
    https_compatible: bool,
    ours: impl AsyncFnOnce(TlsStream<SocketStream>) -> trio::Result<()>,
) -> trio::Result<()> {
    let pem = pem_files(&format!("client-{mode}-{ver}"));
    let listeners = trio::open_tcp_listeners(0, Some("127.0.0.1")).await?;
    let port = listeners[0].local_addr()?.as_socket().unwrap().port();
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(PY_CLIENT)
        .arg(port.to_string())
        .arg(mode)
        .arg(ver)
        .arg(&pem.ca)
        .stdout(Stdio::piped());
    let process = trio::open_process(cmd)?;
    let tcp = listeners[0].accept().await?;
    listeners[0].aclose().await?;
    let tls = TlsStream::server(tcp, server_config(None))?.https_compatible(https_compatible);
    ours(tls).await?;
    let out = process.stdout.as_ref().unwrap();
    assert_eq!(
        read_line(out).await?,
        "ok",
        "the Python client failed ({mode}, TLS {ver})"
    );
    assert!(process.wait().await?.success());
    Ok(())
}

fn expected_version(ver: &str) -> trio_tls::rustls::ProtocolVersion {
    match ver {
        "1.2" => trio_tls::rustls::ProtocolVersion::TLSv1_2,
        _ => trio_tls::rustls::ProtocolVersion::TLSv1_3,
    }
}

#[trio::test]
async fn python_server_echo_then_our_close_notify() -> trio::Result<()> {
    if !have_tool("python3") {
        return Ok(());
    }
    trio::fail_after(60.0, async {
        for ver in VERSIONS {
            with_python_server("echo", ver, false, async |tls| {
                tls.send_all(b"ping").await?;
                assert_eq!(receive_exact(&tls, 9).await?, b"pong:ping");
                assert_eq!(tls.protocol_version()?, expected_version(ver));
                tls.aclose().await
            })
            .await?;
        }
        Ok(())
    })
    .await
}

#[trio::test]
async fn python_client_echo_then_our_close_notify() -> trio::Result<()> {
    if !have_tool("python3") {
        return Ok(());
    }
    trio::fail_after(60.0, async {
        for ver in VERSIONS {
            with_python_client("echo", ver, false, async |tls| {
                let got = receive_exact(&tls, 4).await?;
                assert_eq!(got, b"ping");
                tls.send_all(b"pong:ping").await?;
                assert_eq!(tls.protocol_version()?, expected_version(ver));
                tls.aclose().await
            })
            .await?;
        }
        Ok(())
    })
    .await
}

/// Python closes first (close_notify, then waits for ours): we read the
/// end of stream, unwrap, and talk plain TCP after TLS.
async fn unwrap_after_peer_close(tls: TlsStream<SocketStream>) -> trio::Result<()> {
    assert_eq!(receive_exact(&tls, 3).await?, b"bye");
    let mut buf = [0; 16];
    assert_eq!(tls.receive_some(&mut buf).await?, 0);
    let (tcp, mut rest) = tls.unwrap().await?;
    while rest.len() < 5 {
        let n = tcp.receive_some(&mut buf).await?;
        assert_ne!(n, 0);
        rest.extend_from_slice(&buf[..n]);
    }
    assert_eq!(rest, b"PLAIN");
    tcp.send_all(b"RAW").await?;
    tcp.aclose().await
}

#[trio::test]
async fn python_server_closes_first_and_we_unwrap() -> trio::Result<()> {
    if !have_tool("python3") {
        return Ok(());
    }
    trio::fail_after(60.0, async {
        for ver in VERSIONS {
            with_python_server("unwrap", ver, false, unwrap_after_peer_close).await?;
        }
        Ok(())
    })
    .await
}

#[trio::test]
async fn python_client_closes_first_and_we_unwrap() -> trio::Result<()> {
    if !have_tool("python3") {
        return Ok(());
    }
    trio::fail_after(60.0, async {
        for ver in VERSIONS {
            with_python_client("unwrap", ver, false, unwrap_after_peer_close).await?;
        }
        Ok(())
    })
    .await
}

/// Python ends TCP without a close_notify: Broken, or the end of stream
/// with `https_compatible`.
async fn ragged(tls: TlsStream<SocketStream>, https_compatible: bool) -> trio::Result<()> {
    assert_eq!(receive_exact(&tls, 3).await?, b"bye");
    let mut buf = [0; 16];
    let r = tls.receive_some(&mut buf).await;
    if https_compatible {
        assert_eq!(r?, 0);
    } else {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Broken);
    }
    tls.aclose().await
}

#[trio::test]
async fn python_ragged_eof_is_broken_or_an_end_when_https_compatible() -> trio::Result<()> {
    if !have_tool("python3") {
        return Ok(());
    }
    trio::fail_after(60.0, async {
        for ver in VERSIONS {
            for https in [false, true] {
                with_python_server("ragged", ver, https, async |t| ragged(t, https).await).await?;
                with_python_client("ragged", ver, https, async |t| ragged(t, https).await).await?;
            }
        }
        Ok(())
    })
    .await
}

/// Full duplex in bulk against OpenSSL: Python echoes 4 MiB as it comes,
/// so we must send and receive at once (through the internal locks), then
/// Python closes first and we answer its close_notify with ours.
#[trio::test]
async fn python_server_echoes_4_mib_while_we_send_full_duplex() -> trio::Result<()> {
    if !have_tool("python3") {
        return Ok(());
    }
    const TOTAL: usize = 4 << 20;
    let data: Vec<u8> = (0..TOTAL).map(|i| (i * 7 + i / 4096) as u8).collect();
    trio::fail_after(120.0, async {
        for ver in VERSIONS {
            with_python_server(&format!("bulk{TOTAL}"), ver, false, async |tls| {
                let tls = &tls;
                trio::open_nursery(async |n| {
                    n.start_soon(async {
                        for chunk in data.chunks(100_000) {
                            tls.send_all(chunk).await?;
                        }
                        Ok(())
                    });
                    let mut got = Vec::with_capacity(TOTAL);
                    let mut buf = vec![0; 1 << 16];
                    while got.len() < TOTAL {
                        let n = tls.receive_some(&mut buf).await?;
                        assert_ne!(n, 0, "early end after {} bytes", got.len());
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(got == data, "the echoed bytes differ");
                    Ok(())
                })
                .await?;
                let mut buf = [0; 16];
                assert_eq!(tls.receive_some(&mut buf).await?, 0);
                tls.aclose().await
            })
            .await?;
        }
        Ok(())
    })
    .await
}

/// `send_eof` against OpenSSL on TLS 1.3: Python reads the end, still
/// sends, then closes; we read its data and its end.
#[trio::test]
async fn python_server_sees_our_send_eof_and_still_sends_on_tls13() -> trio::Result<()> {
    if !have_tool("python3") {
        return Ok(());
    }
    trio::fail_after(60.0, async {
        with_python_server("halfclose", "1.3", false, async |tls| {
            tls.send_all(b"ping").await?;
            tls.send_eof().await?;
            assert_eq!(
                tls.send_all(b"x").await.unwrap_err().kind(),
                ErrorKind::Closed
            );
            assert_eq!(receive_exact(&tls, 9).await?, b"after-eof");
            let mut buf = [0; 16];
            assert_eq!(tls.receive_some(&mut buf).await?, 0);
            tls.aclose().await
        })
        .await
    })
    .await
}
