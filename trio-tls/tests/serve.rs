//! `TlsListener`, `open_tls_over_tcp_stream` and `serve_tls_over_tcp`,
//! and `curl --cacert` (a real HTTPS client) against `serve_tls_over_tcp`.

mod common;

use common::*;
use std::cell::RefCell;
use std::process::Command;
use std::time::Duration;
use trio::ErrorKind;
use trio::process::{RunOptions, run_process};
use trio::socket::SocketStream;
use trio::stream::{AsyncResource, Listener, ReceiveStream, SendStream, Stream};
use trio_tls::{TlsListener, TlsStream, open_tls_over_tcp_stream, serve_tls_over_tcp};

async fn echo(stream: &TlsStream<SocketStream>) -> trio::Result<()> {
    let mut buf = [0; 1024];
    loop {
        let n = stream.receive_some(&mut buf).await?;
        if n == 0 {
            return stream.aclose().await;
        }
        stream.send_all(&buf[..n]).await?;
    }
}

#[trio::test]
async fn serve_tls_over_tcp_and_open_tls_over_tcp_stream_echo() -> trio::Result<()> {
    trio::fail_after(30.0, async {
        trio::open_nursery(async |nursery| {
            let listeners = nursery
                .start(|status| {
                    serve_tls_over_tcp(echo, 0, server_config(None))
                        .host("127.0.0.1")
                        .task_status(status)
                })
                .await?;
            let port = listeners[0]
                .listener()
                .local_addr()?
                .as_socket()
                .unwrap()
                .port();
            for _ in 0..3 {
                let client =
                    open_tls_over_tcp_stream("localhost", port, client_config(None)).await?;
                client.send_all(b"hello").await?;
                let mut got = Vec::new();
                let mut buf = [0; 16];
                while got.len() < 5 {
                    let n = client.receive_some(&mut buf).await?;
                    assert_ne!(n, 0);
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got, b"hello");
                client.send_eof().await?;
                // The server's echo loop ends and closes with close_notify.
                assert_eq!(client.receive_some(&mut buf).await?, 0);
                client.aclose().await?;
            }
            nursery.cancel_scope().cancel();
            Ok(())
        })
        .await
        .map(drop)
    })
    .await
}

/// A client that does not speak TLS fails its connection's handshake; with
/// `LogAndContinue` (through `serve_options`) the server logs it and goes
/// on serving the next client.
#[trio::test]
async fn a_failed_handshake_is_logged_and_the_server_goes_on() -> trio::Result<()> {
    let logged = RefCell::new(Vec::new());
    trio::fail_after(30.0, async {
        trio::open_nursery(async |nursery| {
            let listeners = nursery
                .start(|status| {
                    serve_tls_over_tcp(echo, 0, server_config(None))
                        .host("127.0.0.1")
                        .serve_options(|s| {
                            s.on_handler_error(trio::net::OnHandlerError::LogAndContinue)
                                .log(|event| logged.borrow_mut().push(event.to_string()))
                        })
                        .task_status(status)
                })
                .await?;
            let addr = listeners[0].listener().local_addr()?.as_socket().unwrap();
            let plain = SocketStream::connect_tcp(addr).await?;
            plain.send_all(b"GET / HTTP/1.0\r\n\r\n").await?;
            // The server closes it after the failed handshake (maybe with
            // a reset): the end, or an error, never data that echoes.
            let mut buf = [0; 64];
            if let Ok(n) = plain.receive_some(&mut buf).await {
                assert_eq!(n, 0);
            }
            let port = addr.port();
            let client = open_tls_over_tcp_stream("localhost", port, client_config(None)).await?;
            client.send_all(b"still here").await?;
            let mut got = Vec::new();
            while got.len() < 10 {
                let n = client.receive_some(&mut buf).await?;
                assert_ne!(n, 0);
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"still here");
            nursery.cancel_scope().cancel();
            Ok(())
        })
        .await
        .map(drop)
    })
    .await?;
    let logged = logged.into_inner();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains("handler failed"), "{logged:?}");
    Ok(())
}

#[trio::test(autojump)]
async fn accept_does_no_tls_work_and_the_handshake_timeout_applies_in_the_connection()
-> trio::Result<()> {
    let listeners = trio::open_tcp_listeners(0, Some("127.0.0.1")).await?;
    let addr = listeners[0].local_addr()?.as_socket().unwrap();
    let listener = TlsListener::new(listeners.into_iter().next().unwrap(), server_config(None))
        .handshake_timeout(Some(Duration::from_secs(10)));
    // A client that connects and never speaks.
    let _silent = SocketStream::connect_tcp(addr).await?;
    let stream = listener.accept().await?;
    assert!(!stream.is_handshake_done());
    let start = trio::current_time();
    let mut buf = [0; 8];
    let e = stream.receive_some(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooSlow);
    assert_eq!(trio::current_time() - start, 10.0);
    stream.aclose().await?;
    listener.aclose().await
}

/// Whether `fd` is close-on-exec (`/proc/self/fdinfo`: `flags` in octal,
/// O_CLOEXEC is 02000000).
fn is_cloexec(fd: i32) -> bool {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
        .unwrap();
    flags & 0o2000000 != 0
}

/// A `TlsListener` over a TCP `SocketListener`: the accepted transport is
/// non-blocking, close-on-exec, with TCP_NODELAY and TCP_NOTSENT_LOWAT
/// (the listener accepts with `accept4` and knows its family, so the
/// stream skips the checks and `fcntl`s; the options must still be set),
/// and TLS works over it.
#[cfg(target_os = "linux")]
#[trio::test]
async fn a_tls_listeners_accepted_transport_is_set_up_like_any_tcp_stream() -> trio::Result<()> {
    use std::os::fd::AsRawFd;
    use trio::socket::SocketListener;
    trio::fail_after(30.0, async {
        let tcp = SocketListener::bind_tcp("127.0.0.1:0".parse().unwrap())?;
        let addr = tcp.local_addr()?.as_socket().unwrap();
        let listener = TlsListener::new(tcp, server_config(None));
        // The kernel completes the connection from the listen backlog.
        let tcp_client = SocketStream::connect_tcp(addr).await?;
        let client = TlsStream::client(tcp_client, client_config(None), localhost())?;
        let server = listener.accept().await?;
        let sock = server.transport().socket()?;
        let s = sock.as_socket2();
        assert!(s.nonblocking()?, "the accepted socket blocks");
        assert!(
            is_cloexec(s.as_raw_fd()),
            "the accepted socket is not close-on-exec"
        );
        assert!(s.tcp_nodelay()?, "TCP_NODELAY is off");
        assert_eq!(s.tcp_notsent_lowat()?, 16 * 1024);
        trio::open_nursery(async |n| {
            n.start_soon(async {
                client.send_all(b"ping").await?;
                client.aclose().await
            });
            let mut buf = [0; 8];
            let k = server.receive_some(&mut buf).await?;
            assert_eq!(&buf[..k], b"ping");
            assert_eq!(server.receive_some(&mut buf).await?, 0);
            Ok(())
        })
        .await
        .map(drop)
    })
    .await
}

#[trio::test]
async fn open_tls_over_tcp_stream_rejects_a_bad_server_name() -> trio::Result<()> {
    let e = open_tls_over_tcp_stream("not a name!", 443, client_config(None))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    Ok(())
}

#[trio::test]
async fn curl_gets_a_page_from_serve_tls_over_tcp() -> trio::Result<()> {
    if !have_tool("curl") {
        return Ok(());
    }
    let pem = pem_files("curl");
    let alpn = RefCell::new(None);
    let handler = async |stream: &TlsStream<SocketStream>| {
        // Read the request head, then answer and close with close_notify.
        let mut head = Vec::new();
        let mut buf = [0; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.receive_some(&mut buf).await?;
            assert_ne!(n, 0, "the request ended early");
            head.extend_from_slice(&buf[..n]);
        }
        assert!(head.starts_with(b"GET /hello HTTP/1.1\r\n"), "{head:?}");
        *alpn.borrow_mut() = Some(stream.negotiated_alpn()?);
        stream
            .send_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nhello, curl\n",
            )
            .await?;
        stream.aclose().await
    };
    trio::fail_after(60.0, async {
        trio::open_nursery(async |nursery| {
            let listeners = nursery
                .start(|status| {
                    serve_tls_over_tcp(&handler, 0, server_config_with(None, &[b"http/1.1"]))
                        .host("127.0.0.1")
                        .task_status(status)
                })
                .await?;
            let port = listeners[0]
                .listener()
                .local_addr()?
                .as_socket()
                .unwrap()
                .port();
            let mut cmd = Command::new("curl");
            cmd.arg("--silent")
                .arg("--show-error")
                .arg("--cacert")
                .arg(&pem.ca)
                .arg("--resolve")
                .arg(format!("localhost:{port}:127.0.0.1"))
                .arg(format!("https://localhost:{port}/hello"));
            let done = run_process(cmd, RunOptions::new().capture_stdout()).await?;
            assert_eq!(done.stdout, b"hello, curl\n");
            nursery.cancel_scope().cancel();
            Ok(())
        })
        .await
        .map(drop)
    })
    .await?;
    assert_eq!(alpn.into_inner(), Some(Some(b"http/1.1".to_vec())));
    Ok(())
}
