//! Guest mode's acceptance test: a tokio `current_thread` program runs a
//! trio guest that serves TCP (`trio::serve_tcp`) while the host serves TCP
//! with tokio too; clients (tokio tasks on the host) hold connections to
//! both open at once and get answers from both; the guest's cancellation
//! (a `fail_after` that fires) comes back to the host as a `TooSlow`
//! value; and no thread besides the host's is ever created.
//!
//! A `harness = false` binary, so that no test-harness threads run beside
//! it and the count of `/proc/self/task` is exact. It also runs on the
//! process's main thread, where `trio::run` would install its Ctrl-C
//! handler (a helper thread): a guest must not, unless asked.
//!
//! Real clock and real sockets (loopback).

use std::cell::Cell;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trio::net::ServeControl;
use trio::socket::SocketStream;
use trio::stream::{ReceiveStream, SendStream};
use trio::{ErrorKind, Runner};
use trio_compat::guest::start_guest;

/// Connections to each server, all open at the same time.
const CLIENTS: usize = 8;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task is readable (Linux)")
        .count()
}

/// Reads one `\n`-terminated line from a trio stream.
async fn read_line(stream: &SocketStream) -> trio::Result<String> {
    let mut line = Vec::new();
    let mut buf = [0; 64];
    while !line.ends_with(b"\n") {
        let n = stream.receive_some(&mut buf).await?;
        if n == 0 {
            break;
        }
        line.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}

/// The host's server, on tokio: answers each line with "tokio: <line>".
async fn host_server(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut line = Vec::new();
            let mut buf = [0; 64];
            while !line.ends_with(b"\n") {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                line.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&line);
            stream
                .write_all(format!("tokio: {}\n", line.trim_end()).as_bytes())
                .await?;
            stream.shutdown().await
        });
    }
}

/// Connects to both servers `CLIENTS` times, sends every request only
/// once all connections are open, then reads every answer: both servers
/// must hold their connections at the same time.
async fn clients(guest: SocketAddr, host: SocketAddr) -> std::io::Result<Vec<String>> {
    let mut streams = Vec::new();
    for i in 0..CLIENTS {
        for (name, addr) in [("guest", guest), ("host", host)] {
            streams.push((
                format!("{name} {i}"),
                tokio::net::TcpStream::connect(addr).await?,
            ));
        }
    }
    for (request, stream) in &mut streams {
        stream.write_all(format!("{request}\n").as_bytes()).await?;
    }
    let mut answers = Vec::new();
    for (_, stream) in &mut streams {
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        answers.push(answer.trim_end().to_owned());
    }
    Ok(answers)
}

fn main() {
    let before = threads();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let served = Cell::new(0);
    let (guest_result, answers, during) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("the host's listener");
        let host_addr = listener.local_addr().unwrap();
        let host_server = tokio::spawn(host_server(listener));

        let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel::<SocketAddr>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        // The guest: serve_tcp until the host says stop (through a tokio
        // channel awaited with trio_compat::tokio, on the host's runtime),
        // then a timeout that fires.
        let guest = start_guest(Runner::new(), async {
            let control = ServeControl::new();
            let handler = async |stream: &SocketStream| {
                let line = read_line(stream).await?;
                stream
                    .send_all(format!("trio: {line}\n").as_bytes())
                    .await?;
                served.set(served.get() + 1);
                Ok(())
            };
            let control = &control;
            trio::open_nursery(async |n| {
                let listeners = n
                    .start(|status| {
                        trio::serve_tcp(handler, 0)
                            .host("127.0.0.1")
                            .control(control)
                            .task_status(status)
                    })
                    .await?;
                let addr = listeners[0]
                    .local_addr()?
                    .as_socket()
                    .expect("an IP address");
                addr_tx.send(addr).expect("the host listens");
                n.start_soon(async move {
                    trio_compat::tokio(stop_rx).await?;
                    control.stop(1.0)
                });
                Ok(())
            })
            .await?;
            trio::fail_after(0.05, trio::sleep_forever()).await
        });
        let clients = async {
            let guest_addr = addr_rx.recv().await.expect("the guest's address");
            let answers = clients(guest_addr, host_addr).await.expect("the clients");
            let during = threads();
            stop_tx.send(()).expect("the guest waits for stop");
            (answers, during)
        };
        let (guest_result, (answers, during)) = tokio::join!(guest, clients);
        host_server.abort();
        (guest_result, answers, during)
    });
    drop(rt);
    let after = threads();

    let mut expected = Vec::new();
    for i in 0..CLIENTS {
        expected.push(format!("trio: guest {i}"));
        expected.push(format!("tokio: host {i}"));
    }
    assert_eq!(answers, expected);
    assert_eq!(served.get(), CLIENTS);
    let err = guest_result.expect_err("the guest's fail_after fires");
    assert_eq!(err.kind(), ErrorKind::TooSlow, "{err}");
    assert_eq!(during, before, "threads while both served");
    assert_eq!(after, before, "threads after the runtime");
    assert_eq!(before, 1, "the test binary is single-threaded");
    println!(
        "guest_tcp: ok ({} answers from the guest and the host; {before} thread throughout; \
         the guest ended with {:?})",
        answers.len(),
        err.kind()
    );
}
