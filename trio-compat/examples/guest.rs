//! Guest mode: a tokio program that runs one subsystem on trio.
//!
//! The host is an ordinary `#[tokio::main]` program with a TCP server of its
//! own. Its new subsystem, a trio guest, serves TCP with `trio::serve_tcp`
//! on the same thread. A client (a tokio task) talks to both; then the host
//! stops the guest gracefully through a `CancelHandle` and gets the guest's
//! result back as a value.
//!
//! `cargo run -p trio-compat --example guest`

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trio::CancelScope;
use trio::socket::SocketStream;
use trio::stream::{ReceiveStream, SendStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The host's own server: answers with its input, reversed.
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let host_addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut text = String::new();
                stream.read_to_string(&mut text).await?;
                let reversed: String = text.chars().rev().collect();
                stream.write_all(reversed.as_bytes()).await
            });
        }
    });

    // The guest: serves until the host cancels it; answers in upper case.
    let scope = CancelScope::new();
    let stop = scope.handle(); // Send + Sync: the host keeps it
    let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel();
    let guest = trio_compat::guest::start_guest(trio::Runner::new(), async move {
        let upper = async |stream: &SocketStream| {
            let mut text = Vec::new();
            let mut buf = [0; 1024];
            loop {
                let n = stream.receive_some(&mut buf).await?;
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buf[..n]);
            }
            stream.send_all(&text.to_ascii_uppercase()).await
        };
        let served = scope
            .run(trio::open_nursery(async |nursery| {
                let listeners = nursery
                    .start(|status| {
                        trio::serve_tcp(upper, 0)
                            .host("127.0.0.1")
                            .task_status(status)
                    })
                    .await?;
                let _ = addr_tx.send(listeners[0].local_addr()?.as_socket());
                Ok(())
            }))
            .await?;
        // `None`: the scope caught the host's cancellation.
        Ok(served.is_none())
    });

    // A client, on the host: one request to each server, at the same time.
    let client = async move {
        let guest_addr = addr_rx.recv().await.flatten().ok_or("no guest address")?;
        let (to_guest, to_host) =
            tokio::join!(ask(guest_addr, "hello trio"), ask(host_addr, "hello tokio"));
        println!("guest answered {:?}", to_guest?);
        println!("host answered {:?}", to_host?);
        stop.cancel(); // from the host, between the guest's steps
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    let (stopped, client) = tokio::join!(guest, client);
    client?;
    println!("guest stopped by the host: {}", stopped?);
    Ok(())
}

/// Sends `text`, half-closes, and reads the answer to the end.
async fn ask(addr: SocketAddr, text: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(text.as_bytes()).await?;
    stream.shutdown().await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}
