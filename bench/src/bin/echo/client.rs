//! The load generator: one thread, one mio `epoll` loop, edge-triggered.
//!
//! A blocking thread-per-connection client hands the server one wake-up at
//! a time and raised its cost per message from ~7 to ~11 us on these
//! machines (`../shared/BENCHMARKING.md`); this one keeps every connection
//! busy from one thread, like the servers it drives.
//!
//! Protocol with the driver (stdout lines, stdin line):
//!
//! 1. connect everything, run the warm-up, print `ready`;
//! 2. wait for a line on stdin (the driver samples the server's CPU time);
//! 3. run the measured part, print `done ELAPSED_NS UNITS` (messages for
//!    ping-pong, bytes for bulk), close the connections and exit.
//!
//! No progress for [`STALL`] is an error (the process exits non-zero
//! instead of hanging the driver). Ping-pong checks the echoed bytes; bulk
//! checks only that every byte came back (checking 1 GiB would add a
//! client cost of its own).

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

/// How long the client waits for any event before it gives up. Generous:
/// a server under callgrind or strace is slow.
const STALL: Duration = Duration::from_secs(60);

/// Ping-pong: `conns` connections, each sending a `size`-byte message and
/// waiting for its echo before the next, `msgs` times (after `warmup`).
#[derive(Clone, Copy, Debug)]
pub struct PingPong {
    pub conns: usize,
    pub size: usize,
    pub warmup: usize,
    pub msgs: usize,
}

/// Bulk: one connection; sends `bytes` (after `warmup` bytes) in 64 KiB
/// writes while reading the echo back, concurrently.
#[derive(Clone, Copy, Debug)]
pub struct Bulk {
    pub warmup: u64,
    pub bytes: u64,
}

fn connect(addr: SocketAddr) -> io::Result<mio::net::TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(mio::net::TcpStream::from_std(s))
}

/// Prints `ready`, waits for the driver's line, times `measured`, prints
/// `done ELAPSED_NS UNITS`.
fn handshake_and_time(units: u64, measured: impl FnOnce() -> io::Result<()>) -> Result<(), String> {
    println!("ready");
    io::stdout().flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("stdin: {e}"))?;
    let started = Instant::now();
    measured().map_err(|e| format!("measured run: {e}"))?;
    let elapsed = started.elapsed();
    println!("done {} {units}", elapsed.as_nanos());
    io::stdout().flush().map_err(|e| e.to_string())
}

fn poll_once(poll: &mut Poll, events: &mut Events) -> io::Result<()> {
    match poll.poll(events, Some(STALL)) {
        Ok(()) if events.is_empty() => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no event for {STALL:?}"),
        )),
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e),
    }
}

/// The `client` mode.
pub fn ping_pong(addr: SocketAddr, cfg: PingPong) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut streams = Vec::with_capacity(cfg.conns);
    for i in 0..cfg.conns {
        let mut s = connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        streams.push(s);
    }
    // One byte value throughout, so that any chunk of the echo can be
    // checked without tracking offsets.
    let msg = vec![0x5a; cfg.size];
    let mut events = Events::with_capacity(1024);
    let mut run = |n: usize| round_trips(&mut poll, &mut events, &mut streams, &msg, n);
    run(cfg.warmup).map_err(|e| format!("warm-up: {e}"))?;
    handshake_and_time((cfg.conns * cfg.msgs) as u64, || run(cfg.msgs))
}

/// Every connection does `n` round trips.
fn round_trips(
    poll: &mut Poll,
    events: &mut Events,
    streams: &mut [mio::net::TcpStream],
    msg: &[u8],
    n: usize,
) -> io::Result<()> {
    if n == 0 {
        return Ok(());
    }
    let mut remaining = vec![n; streams.len()];
    let mut got = vec![0; streams.len()];
    for s in streams.iter_mut() {
        send_msg(s, msg)?;
    }
    let mut active = streams.len();
    let mut buf = [0; 4096];
    while active > 0 {
        poll_once(poll, events)?;
        for ev in events.iter() {
            let i = ev.token().0;
            let s = &mut streams[i];
            loop {
                let k = match s.read(&mut buf) {
                    Ok(0) => return Err(io::Error::other("the server closed a connection")),
                    Ok(k) => k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                // Every byte sent is `msg`'s one value: a wrong byte means a
                // server that does not echo (cheap next to the syscall).
                if buf[..k].iter().any(|&b| b != msg[0]) {
                    return Err(io::Error::other("the server echoed other bytes"));
                }
                got[i] += k;
                while got[i] >= msg.len() && remaining[i] > 0 {
                    got[i] -= msg.len();
                    remaining[i] -= 1;
                    if remaining[i] > 0 {
                        send_msg(s, msg)?;
                    } else {
                        active -= 1;
                    }
                }
                if k < buf.len() {
                    break; // short read: drained
                }
            }
        }
    }
    Ok(())
}

/// One message. With one message in flight per connection the send buffer
/// is never full, so a short write is a broken invariant, not back-pressure.
fn send_msg(s: &mut mio::net::TcpStream, msg: &[u8]) -> io::Result<()> {
    loop {
        match s.write(msg) {
            Ok(k) if k == msg.len() => return Ok(()),
            Ok(k) => return Err(io::Error::other(format!("short write ({k} bytes)"))),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The `bulk` mode.
pub fn bulk(addr: SocketAddr, cfg: Bulk) -> Result<(), String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut s = connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    poll.registry()
        .register(&mut s, Token(0), Interest::READABLE | Interest::WRITABLE)
        .map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(16);
    let mut run = |n: u64| transfer(&mut poll, &mut events, &mut s, n);
    run(cfg.warmup).map_err(|e| format!("warm-up: {e}"))?;
    handshake_and_time(cfg.bytes, || run(cfg.bytes))
}

/// Sends `n` bytes and reads `n` bytes back, interleaved.
fn transfer(
    poll: &mut Poll,
    events: &mut Events,
    s: &mut mio::net::TcpStream,
    n: u64,
) -> io::Result<()> {
    let out = vec![0xa5; 64 * 1024];
    let mut buf = vec![0; 64 * 1024];
    let (mut sent, mut received) = (0u64, 0u64);
    while received < n {
        // Edge-triggered: drain both directions on every wake-up.
        while sent < n {
            let len = (n - sent).min(out.len() as u64) as usize;
            match s.write(&out[..len]) {
                Ok(k) => sent += k as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Err(io::Error::other("the server closed the connection")),
                Ok(k) => received += k as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if received < n {
            poll_once(poll, events)?;
        }
    }
    Ok(())
}
