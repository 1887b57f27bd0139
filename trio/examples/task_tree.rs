//! Print the task tree of a small TCP echo server: `cargo run --example task_tree`.
//!
//! The server accepts on 127.0.0.1 (a port the OS picks), handles each
//! connection in its own task, and two clients connect and then wait for an
//! echo that the server is slow to send. While everything is blocked, the
//! tree is printed twice: from inside the run (`trio::lowlevel::task_tree`)
//! and from a watchdog thread holding the run's token
//! (`TrioToken::task_tree`), which is how a signal handler or a "what is it
//! doing?" endpoint would get it. Each blocked task shows what it waits on
//! and the file:line of the call.
//!
//! (Built on the low-level fd waits; the high-level socket API comes later.)

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use trio::lowlevel::{wait_readable, wait_writable};
use trio::{Nursery, TaskStatus};

/// Reads once from a non-blocking stream, waiting until it is readable.
async fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> trio::Result<usize> {
    loop {
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(stream.as_raw_fd()).await?
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn write_all(stream: &mut TcpStream, mut data: &[u8]) -> trio::Result<()> {
    while !data.is_empty() {
        match stream.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(stream.as_raw_fd()).await?
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn handle(mut conn: TcpStream) -> trio::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        let n = read_some(&mut conn, &mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        trio::sleep(3600.0).await?; // a slow server: the echo takes an hour
        write_all(&mut conn, &buf[..n]).await?;
    }
}

/// Accepts forever, one task per connection. Reports its port once listening.
async fn serve(handlers: Nursery<'_>, status: TaskStatus<u16>) -> trio::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    status.started(listener.local_addr()?.port());
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(true)?;
                handlers.start_soon_named("connection", handle(conn));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(listener.as_raw_fd()).await?
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn client(port: u16) -> trio::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nonblocking(true)?;
    write_all(&mut s, b"hello").await?;
    let mut buf = [0u8; 5];
    read_some(&mut s, &mut buf).await?; // waits for the slow echo
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    trio::run(async {
        trio::open_nursery(async |nursery| {
            let handlers = nursery.clone();
            let port = nursery
                .start_named("server", async move |status| serve(handlers, status).await)
                .await?;
            nursery.start_soon_named("client 1", client(port));
            nursery.start_soon_named("client 2", client(port));
            // Let everything settle until all tasks are blocked.
            trio::testing::wait_all_tasks_blocked_with_cushion(0.05).await?;

            println!("--- the task tree, from inside the run ---");
            println!("{}", trio::lowlevel::task_tree()?);

            let token = trio::lowlevel::current_trio_token()?;
            let watchdog = std::thread::spawn(move || token.task_tree());
            let work = trio::lowlevel::begin_external_work()?;
            while !watchdog.is_finished() {
                trio::sleep(0.001).await?;
            }
            drop(work);
            let tree = watchdog.join().expect("watchdog thread")?;
            println!("--- the same, asked for by a watchdog thread through the run's token ---");
            println!("{tree}");

            nursery.cancel_scope().cancel();
            Ok(())
        })
        .await?;
        Ok(())
    })?;
    Ok(())
}
