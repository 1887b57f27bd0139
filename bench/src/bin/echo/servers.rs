//! The four echo servers, each single-threaded, each echoing what it reads
//! on every connection until the peer closes it.
//!
//! Every server gets the same already-bound `std::net::TcpListener` (bound
//! by [`serve`], which prints the port), accepts exactly `conns` connections,
//! runs one echo loop per connection with a 64 KiB buffer, sets
//! `TCP_NODELAY` on each accepted socket (trio's `SocketStream` does so
//! itself; the others are told to, so all four send alike), and returns when
//! all of them have closed. Exiting on its own is what lets the driver
//! wait for the process and lets callgrind write its totals.
//!
//! * **trio**: `trio::run`, a nursery, one task per connection:
//!   `receive_some` then `send_all` ([`trio()`]).
//! * **tokio**: `current_thread` runtime with IO, `tokio::spawn` per
//!   connection, `AsyncReadExt::read` then `write_all`.
//! * **smol**: `async_io::block_on` driving an `async_executor::LocalExecutor`,
//!   `Async<TcpStream>` with futures-lite's `read` / `write_all`.
//! * **mio**: the ceiling. One `epoll` loop, edge-triggered, no tasks, no
//!   wakers: on an event, read until `WouldBlock` *or a short read* (a short
//!   stream read drained the queue, so a further `read` would only say
//!   `WouldBlock`), writing each chunk straight back; a write that cannot
//!   complete keeps the rest and stops reading until the writable edge.
//!
//! The servers on every core (`--multicore`) are in [`crate::multicore`].

use std::io::{self, Read, Write};
use std::net::TcpListener;

/// Echo buffer per connection (all servers): large enough that the bulk
/// transfer reads what the socket has in one call.
pub const BUF: usize = 64 * 1024;

/// The servers, in the order the tables list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Trio,
    Tokio,
    Smol,
    Mio,
    /// trio, one run per core (`trio::PerCore`), a `SO_REUSEPORT`
    /// listener each.
    TrioPerCore,
    /// tokio `multi_thread`, one worker per core, one listener.
    TokioMultiThread,
    /// tokio `current_thread`, one runtime per core on its own thread, a
    /// `SO_REUSEPORT` listener each.
    TokioPerCore,
}

impl Kind {
    /// The single-threaded servers (the default set).
    pub const ALL: [Kind; 4] = [Kind::Trio, Kind::Tokio, Kind::Smol, Kind::Mio];
    /// The servers on every core (`--multicore`).
    pub const MULTICORE: [Kind; 3] = [
        Kind::TrioPerCore,
        Kind::TokioMultiThread,
        Kind::TokioPerCore,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Trio => "trio",
            Kind::Tokio => "tokio",
            Kind::Smol => "smol",
            Kind::Mio => "mio",
            Kind::TrioPerCore => "trio-pc",
            Kind::TokioMultiThread => "tokio-mt",
            Kind::TokioPerCore => "tokio-pc",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .chain(Kind::MULTICORE)
            .find(|k| k.name() == name)
    }

    /// Whether the server uses every core (and so must not be pinned).
    pub fn is_multicore(self) -> bool {
        Kind::MULTICORE.contains(&self)
    }
}

/// The `server` mode: binds 127.0.0.1:0, prints `port N` on stdout, serves
/// `conns` connections with `kind`, and returns when they are all closed.
pub fn serve(kind: Kind, conns: usize) -> Result<(), String> {
    if kind.is_multicore() {
        return crate::multicore::serve(kind, conns);
    }
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("port {port}");
    io::stdout().flush().map_err(|e| e.to_string())?;
    match kind {
        Kind::Trio => trio(listener, conns).map_err(|e| format!("trio server: {e}")),
        Kind::Tokio => tokio(listener, conns).map_err(|e| format!("tokio server: {e}")),
        Kind::Smol => smol(listener, conns).map_err(|e| format!("smol server: {e}")),
        Kind::Mio => mio(listener, conns).map_err(|e| format!("mio server: {e}")),
        Kind::TrioPerCore | Kind::TokioMultiThread | Kind::TokioPerCore => {
            Err(format!("{} is served by `multicore::serve`", kind.name()))
        }
    }
}

// ---------------------------------------------------------------------------
// trio. The accept loop below is the part `trio::net::serve_tcp` (being
// written, issue 12 item 3) will replace: keep it this small, with the
// per-connection handler separate.
// ---------------------------------------------------------------------------

/// trio: accept `conns` connections in a nursery, one task each.
fn trio(listener: TcpListener, conns: usize) -> trio::Result<()> {
    use trio::socket::{Socket, SocketListener};
    use trio::stream::Listener;

    trio::run(async move {
        let listener = SocketListener::new(Socket::try_from(listener)?)?;
        trio::open_nursery(async |nursery| {
            for _ in 0..conns {
                let stream = listener.accept().await?;
                nursery.start_soon(trio_echo(stream));
            }
            Ok(())
        })
        .await?;
        Ok(())
    })
}

/// trio's per-connection handler: what a `serve_tcp` handler would be.
pub async fn trio_echo(stream: trio::socket::SocketStream) -> trio::Result<()> {
    use trio::stream::{ReceiveStream, SendStream};

    let mut buf = vec![0; BUF];
    loop {
        let n = match stream.receive_some(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            // The load generator may reset its connections at the end.
            Err(e) if e.kind() == trio::ErrorKind::Broken => return Ok(()),
            Err(e) => return Err(e),
        };
        // The `unscheduled-send` experiment (see the binary's docs) is the
        // only difference between the two builds.
        #[cfg(not(feature = "unscheduled-send"))]
        let sent = stream.send_all(&buf[..n]).await;
        #[cfg(feature = "unscheduled-send")]
        let sent = stream.send_all_unscheduled(&buf[..n]).await;
        match sent {
            Ok(()) => {}
            Err(e) if e.kind() == trio::ErrorKind::Broken => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

// ---------------------------------------------------------------------------
// tokio current_thread.
// ---------------------------------------------------------------------------

/// tokio's per-connection handler (also the multi-core tokio servers').
pub async fn tokio_echo(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut buf = vec![0; BUF];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn tokio(listener: TcpListener, conns: usize) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            tasks.push(tokio::spawn(tokio_echo(s)));
        }
        for t in tasks {
            t.await.map_err(io::Error::other)?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// smol (async-io + async-executor), one thread.
// ---------------------------------------------------------------------------

fn smol(listener: TcpListener, conns: usize) -> io::Result<()> {
    use async_io::Async;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    async fn echo(s: Async<std::net::TcpStream>) {
        let mut buf = vec![0; BUF];
        loop {
            match (&s).read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if (&s).write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    let ex = async_executor::LocalExecutor::new();
    async_io::block_on(ex.run(async {
        let listener = Async::new(listener)?;
        let mut tasks = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (s, _) = listener.accept().await?;
            s.get_ref().set_nodelay(true)?;
            tasks.push(ex.spawn(echo(s)));
        }
        for t in tasks {
            t.await;
        }
        Ok(())
    }))
}

// ---------------------------------------------------------------------------
// Raw mio: the ceiling.
// ---------------------------------------------------------------------------

struct MioConn {
    stream: mio::net::TcpStream,
    /// Bytes read but not yet written back (only after a short write).
    pending: Vec<u8>,
}

impl MioConn {
    /// Handles one readiness event; `Ok(false)` when the connection is done.
    fn on_event(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if !self.pending.is_empty() {
            let mut off = 0;
            while off < self.pending.len() {
                match self.stream.write(&self.pending[off..]) {
                    Ok(k) => off += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.pending.drain(..off);
                        return Ok(true);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Ok(false),
                }
            }
            self.pending.clear();
        }
        loop {
            let n = match self.stream.read(buf) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(false),
            };
            let mut off = 0;
            while off < n {
                match self.stream.write(&buf[off..n]) {
                    Ok(k) => off += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Stop reading until the writable edge flushes this.
                        self.pending.extend_from_slice(&buf[off..n]);
                        return Ok(true);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Ok(false),
                }
            }
            if n < buf.len() {
                // Short read: the receive queue is empty; the next data
                // brings a new edge.
                return Ok(true);
            }
        }
    }
}

fn mio(listener: TcpListener, conns: usize) -> io::Result<()> {
    use mio::{Events, Interest, Poll, Token};

    const LISTENER: Token = Token(usize::MAX);
    listener.set_nonblocking(true)?;
    let mut listener = mio::net::TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut slots: Vec<Option<MioConn>> = Vec::with_capacity(conns);
    let mut buf = vec![0; BUF];
    let mut closed = 0;
    while closed < conns {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in &events {
            if ev.token() == LISTENER {
                while slots.len() < conns {
                    let (mut stream, _) = match listener.accept() {
                        Ok(s) => s,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    stream.set_nodelay(true)?;
                    let token = Token(slots.len());
                    poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    slots.push(Some(MioConn {
                        stream,
                        pending: Vec::new(),
                    }));
                }
                continue;
            }
            let Some(slot) = slots.get_mut(ev.token().0) else {
                continue;
            };
            let Some(conn) = slot else { continue };
            if !conn.on_event(&mut buf)? {
                poll.registry().deregister(&mut conn.stream)?;
                *slot = None;
                closed += 1;
            }
        }
    }
    Ok(())
}
