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
//! It connects with `trio::open_tcp_stream("localhost", port)`: the name
//! is resolved in a worker thread, and Happy Eyeballs tries `::1` and
//! `127.0.0.1` (whichever the resolver gives first, the other 250 ms later
//! or as soon as the first fails).

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
async fn connect(port: u16) -> trio::Result<SocketStream> {
    let mut tries = 0;
    loop {
        match trio::open_tcp_stream("localhost", port).await {
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
    println!("parent: connecting to localhost:{port}");
    let stream = connect(port).await?;
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
