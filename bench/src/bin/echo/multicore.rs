//! The echo servers on every core (`--multicore`, issue 19 item 4): one
//! process using all the CPUs it may, unpinned.
//!
//! * **trio-pc**: `trio::PerCore`, one run per core, each with its own
//!   `SO_REUSEPORT` listener on the same port
//!   (`TcpListenOptions::reuse_port`) and a nursery of connection tasks
//!   (the single-threaded trio server's handler, [`trio_echo`]).
//! * **tokio-mt**: tokio's `multi_thread` runtime with one worker per core,
//!   one listener; the accept loop is a task too (so every thread is a
//!   worker), `tokio::spawn` per connection (work stealing).
//! * **tokio-pc**: tokio `current_thread` runtimes, one per core on its own
//!   thread, a `SO_REUSEPORT` listener each: what trio-pc does, in tokio.
//!
//! The kernel spreads connections over `SO_REUSEPORT` listeners by a hash
//! of the addresses, so no server knows how many connections each core
//! will get: the servers count accepts across cores, and the accept that
//! makes `conns` stops every core's accept loop; each core then waits for
//! its own connections to close. The port is printed once every listener
//! listens (a connection to the port before that could be refused). A
//! socket with `SO_REUSEPORT`, bound and never listening, holds the port
//! meanwhile, so it is never handed a connection.
//!
//! The server's CPU time is summed over `/proc/PID/task/*`, and a thread
//! that exits takes its time with it. The client closes its connections
//! right after its `done`, so a core whose connections have all closed
//! could exit before the driver reads the CPU time at the end of the
//! window. So every server thread waits at the [`Gate`] before it ends,
//! which opens when the driver closes the server's stdin, after that read.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::servers::{Kind, tokio_echo, trio_echo};

pub fn serve(kind: Kind, conns: usize) -> Result<(), String> {
    let cores = trio::available_cores();
    Gate::open_at_stdin_eof();
    match kind {
        Kind::TrioPerCore => {
            let (_reserved, port) = reserve_port().map_err(|e| format!("reserve: {e}"))?;
            trio_per_core(port, cores, conns).map_err(|e| format!("trio-pc server: {e}"))
        }
        Kind::TokioPerCore => {
            let (_reserved, port) = reserve_port().map_err(|e| format!("reserve: {e}"))?;
            tokio_per_core(port, cores, conns).map_err(|e| format!("tokio-pc server: {e}"))
        }
        Kind::TokioMultiThread => {
            tokio_multi_thread(cores, conns).map_err(|e| format!("tokio-mt server: {e}"))
        }
        other => Err(format!("{} is not a multi-core server", other.name())),
    }
}

/// Where server threads wait before they end (see the module docs).
struct Gate {
    open: Mutex<bool>,
    opened: std::sync::Condvar,
}

static GATE: Gate = Gate {
    open: Mutex::new(false),
    opened: std::sync::Condvar::new(),
};

impl Gate {
    /// A thread (blocked in `read`, no CPU) that opens the gate at stdin's
    /// end of file.
    fn open_at_stdin_eof() {
        std::thread::spawn(|| {
            let _ = io::copy(&mut io::stdin(), &mut io::sink());
            *GATE.open.lock().unwrap() = true;
            GATE.opened.notify_all();
        });
    }

    /// Blocks the calling thread until the gate is open.
    fn wait() {
        let mut open = GATE.open.lock().unwrap();
        while !*open {
            open = GATE.opened.wait(open).unwrap();
        }
    }
}

/// A port for `SO_REUSEPORT` listeners, held by a bound socket that never
/// listens.
fn reserve_port() -> trio::Result<(trio::socket::Socket, u16)> {
    use trio::socket::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.as_socket2().set_reuse_port(true)?;
    s.bind(&SockAddr::from(SocketAddr::from(([127, 0, 0, 1], 0))))?;
    let port = s.local_addr()?.as_socket().map_or(0, |a| a.port());
    Ok((s, port))
}

/// What the cores of one server share: how many listen, how many
/// connections were accepted, and how to stop every accept loop.
struct Cores<S> {
    port: u16,
    cores: usize,
    conns: usize,
    accepted: AtomicUsize,
    /// Stoppers of the accept loops, and how many cores listen.
    state: Mutex<(Vec<S>, usize)>,
}

impl<S: Stop> Cores<S> {
    fn new(port: u16, cores: usize, conns: usize) -> Self {
        Cores {
            port,
            cores,
            conns,
            accepted: AtomicUsize::new(0),
            state: Mutex::new((Vec::new(), 0)),
        }
    }

    /// A core listens, with this stopper. The last one prints the port.
    /// If every connection was accepted already, it is stopped at once
    /// (the order of the two reads below and of [`Self::accepted_one`]'s makes
    /// sure one of them sees the other).
    fn listening(&self, stop: S) {
        let mut st = self.state.lock().unwrap();
        st.1 += 1;
        if st.1 == self.cores {
            println!("port {}", self.port);
            let _ = io::stdout().flush();
        }
        if self.accepted.load(Ordering::SeqCst) >= self.conns {
            stop.stop();
        }
        st.0.push(stop);
    }

    /// A connection was accepted; the one that makes `conns` stops every
    /// accept loop.
    fn accepted_one(&self) {
        if self.accepted.fetch_add(1, Ordering::SeqCst) + 1 == self.conns {
            for s in &self.state.lock().unwrap().0 {
                s.stop();
            }
        }
    }
}

trait Stop {
    fn stop(&self);
}

impl Stop for trio::CancelHandle {
    fn stop(&self) {
        self.cancel();
    }
}

impl Stop for Arc<tokio::sync::Notify> {
    fn stop(&self) {
        // Stores a permit if the loop is not waiting yet.
        self.notify_one();
    }
}

// ---------------------------------------------------------------------------
// trio, one run per core.
// ---------------------------------------------------------------------------

fn trio_per_core(port: u16, cores: usize, conns: usize) -> trio::Result<()> {
    use trio::net::TcpListenOptions;
    use trio::stream::Listener;

    let shared: Cores<trio::CancelHandle> = Cores::new(port, cores, conns);
    trio::PerCore::new(cores).run(|_core| {
        let shared = &shared;
        async move {
            let listeners = TcpListenOptions::new()
                .host("127.0.0.1")
                .reuse_port(true)
                .open(port)
                .await?;
            let listener = &listeners[0];
            let accepting = trio::CancelScope::new();
            shared.listening(accepting.handle());
            trio::open_nursery(async |nursery| {
                accepting
                    .run(async {
                        loop {
                            let stream = listener.accept().await?;
                            nursery.start_soon(trio_echo(stream));
                            shared.accepted_one();
                        }
                        #[allow(unreachable_code)]
                        trio::Result::Ok(())
                    })
                    .await?;
                Ok(())
            })
            .await?;
            // The run is done; its thread waits (blocking, on purpose:
            // nothing else is left in this run) until the CPU is read.
            Gate::wait();
            Ok(())
        }
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// tokio current_thread, one runtime per core.
// ---------------------------------------------------------------------------

fn tokio_per_core(port: u16, cores: usize, conns: usize) -> io::Result<()> {
    let shared: Cores<Arc<tokio::sync::Notify>> = Cores::new(port, cores, conns);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                let shared = &shared;
                scope.spawn(move || -> io::Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .build()?;
                    rt.block_on(async {
                        let socket = tokio::net::TcpSocket::new_v4()?;
                        socket.set_reuseaddr(true)?;
                        socket.set_reuseport(true)?;
                        socket.bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
                        let listener = socket.listen(1024)?;
                        let stop = Arc::new(tokio::sync::Notify::new());
                        shared.listening(stop.clone());
                        let mut tasks = Vec::new();
                        loop {
                            tokio::select! {
                                accepted = listener.accept() => {
                                    let (s, _) = accepted?;
                                    s.set_nodelay(true)?;
                                    tasks.push(tokio::spawn(tokio_echo(s)));
                                    shared.accepted_one();
                                }
                                _ = stop.notified() => break,
                            }
                        }
                        for t in tasks {
                            t.await.map_err(io::Error::other)?;
                        }
                        io::Result::Ok(())
                    })?;
                    Gate::wait();
                    Ok(())
                })
            })
            .collect();
        // Every thread is joined; the first failure is reported.
        let mut result = Ok(());
        for t in threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a server thread panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

// ---------------------------------------------------------------------------
// tokio multi_thread.
// ---------------------------------------------------------------------------

fn tokio_multi_thread(cores: usize, conns: usize) -> io::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_io()
        .build()?;
    rt.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        println!("port {port}");
        io::stdout().flush()?;
        let acceptor = tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(conns);
            for _ in 0..conns {
                let (s, _) = listener.accept().await?;
                s.set_nodelay(true)?;
                tasks.push(tokio::spawn(tokio_echo(s)));
            }
            for t in tasks {
                t.await.map_err(io::Error::other)?;
            }
            io::Result::Ok(())
        });
        acceptor.await.map_err(io::Error::other)?
    })?;
    // The workers are still alive (idle) until `rt` is dropped.
    Gate::wait();
    Ok(())
}
