//! The echo client of Trio's tutorial: a sender task and a receiver task
//! share one connection, in one nursery.
//!
//! It sends a fixed number of messages (`--messages N`, default 3), 0.2 s
//! apart, then half-closes the connection; the receiver prints the echoes
//! until the server closes its side, and the program ends. Start
//! `echo_server.rs` first (see its docs for running both together):
//!
//! ```text
//! cargo run --example echo_client -- --port 12345 --messages 3
//! ```
//!
//! It connects with `SocketStream::connect_tcp` to `127.0.0.1`; with
//! `trio::open_tcp_stream("localhost", port)` (Happy Eyeballs, issue 12)
//! it would take a host name instead.

use std::net::{Ipv4Addr, SocketAddr};
use trio::socket::SocketStream;
use trio::stream::{ReceiveStream, SendStream, Stream};

const DEFAULT_PORT: u16 = 12345;
const MESSAGE: &[u8] = b"async can sometimes be confusing, but I believe in you!";

async fn sender(stream: &SocketStream, messages: usize) -> trio::Result<()> {
    println!("sender: started!");
    for _ in 0..messages {
        println!("sender: sending {:?}", String::from_utf8_lossy(MESSAGE));
        stream.send_all(MESSAGE).await?;
        trio::sleep(0.2).await?;
    }
    // Tell the server we are done: it sees end of stream and closes.
    stream.send_eof().await
}

async fn receiver(stream: &SocketStream) -> trio::Result<()> {
    println!("receiver: started!");
    let mut buf = [0; 4096];
    let mut total = 0;
    loop {
        let n = stream.receive_some(&mut buf).await?;
        if n == 0 {
            println!("receiver: connection closed ({total} bytes echoed)");
            return Ok(());
        }
        total += n;
        println!(
            "receiver: got data {:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

/// Connects, retrying for a few seconds while nobody listens yet (so the
/// client can be started together with the server).
async fn connect(addr: SocketAddr) -> trio::Result<SocketStream> {
    let mut tries = 0;
    loop {
        match SocketStream::connect_tcp(addr).await {
            Err(e) if tries < 50 && e.kind() == trio::ErrorKind::Io => {
                tries += 1;
                trio::sleep(0.1).await?;
            }
            r => return r,
        }
    }
}

/// `--port N --messages N`, both optional.
fn parse_args() -> Result<(u16, usize), String> {
    let (mut port, mut messages) = (DEFAULT_PORT, 3);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value:?}");
        match flag.as_str() {
            "--port" => port = value.parse().map_err(bad)?,
            "--messages" => messages = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown option {flag:?} (--port N, --messages N)")),
        }
    }
    Ok((port, messages))
}

#[trio::main]
async fn main() -> trio::Result<()> {
    let (port, messages) =
        parse_args().map_err(|e| trio::Error::new(trio::ErrorKind::InvalidArgument, e))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    println!("parent: connecting to {addr}");
    let stream = connect(addr).await?;
    trio::open_nursery(async |nursery| {
        println!("parent: spawning sender...");
        nursery.start_soon(sender(&stream, messages));
        println!("parent: spawning receiver...");
        nursery.start_soon(receiver(&stream));
        Ok(())
    })
    .await?;
    Ok(())
}
