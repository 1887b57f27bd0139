//! The echo server of Trio's tutorial, on `trio::serve_tcp`.
//!
//! Every connection gets its own task, which echoes what it receives
//! until the client closes its side; `serve_tcp` closes the stream after
//! the handler returns. Run it with its client, `echo_client.rs`:
//!
//! ```text
//! cargo run --example echo_server                    # until Ctrl-C, port 12345
//! cargo run --example echo_server -- --connections 1 # stops after one client
//! cargo run --example echo_client                    # in another terminal
//! ```
//!
//! Or both from one shell (the client retries its connect while the server
//! starts):
//!
//! ```text
//! cargo run --example echo_server -- --connections 1 & cargo run --example echo_client; wait
//! ```
//!
//! Options: `--port N` (default 12345), `--connections N` (stop gracefully,
//! with 5 s of grace, once N connections have been served; by default it
//! serves until interrupted).

use std::cell::Cell;
use trio::net::ServeControl;
use trio::socket::SocketStream;
use trio::stream::{ReceiveStream, SendStream};

const DEFAULT_PORT: u16 = 12345;

struct Args {
    port: u16,
    connections: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: DEFAULT_PORT,
        connections: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |_| format!("bad value for {flag}: {value:?}");
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(bad)?,
            "--connections" => args.connections = Some(value.parse().map_err(bad)?),
            _ => {
                return Err(format!(
                    "unknown option {flag:?} (--port N, --connections N)"
                ));
            }
        }
    }
    Ok(args)
}

#[trio::main]
async fn main() -> trio::Result<()> {
    let args = parse_args().map_err(|e| trio::Error::new(trio::ErrorKind::InvalidArgument, e))?;
    let control = ServeControl::new();
    let next_ident = Cell::new(0);
    let served = Cell::new(0);
    // The handler: one call per connection, all at once if need be.
    let echo_server = async |stream: &SocketStream| {
        let ident = next_ident.get();
        next_ident.set(ident + 1);
        println!("echo_server {ident}: started");
        let mut buf = [0; 4096];
        loop {
            let n = stream.receive_some(&mut buf).await?;
            if n == 0 {
                break;
            }
            println!(
                "echo_server {ident}: received data {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            stream.send_all(&buf[..n]).await?;
        }
        println!("echo_server {ident}: connection closed");
        served.set(served.get() + 1);
        if Some(served.get()) == args.connections {
            control.stop(5.0)?;
        }
        Ok(())
    };
    trio::open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                trio::serve_tcp(echo_server, args.port)
                    .control(&control)
                    .task_status(status)
            })
            .await?;
        for l in listeners.iter() {
            println!("listening on {}", l.local_addr()?.as_socket().unwrap());
        }
        Ok(())
    })
    .await?;
    println!("served {} connection(s); bye", served.get());
    Ok(())
}
