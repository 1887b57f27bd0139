//! The echo server on every core: one run per core (`trio::PerCore`), each
//! with its own `SO_REUSEPORT` listener on the same port, so the kernel
//! spreads the connections and each connection stays on the core that
//! accepted it.
//!
//! ```text
//! cargo run --release --example echo_all_cores                 # until Ctrl-C, port 12345
//! cargo run --release --example echo_all_cores -- --seconds 10 # stops after 10 s
//! cargo run --example echo_all_cores -- --port 0 --self-test 32 # what CI runs
//! ```
//!
//! Options: `--port N` (default 12345; 0: a free port, shared by every run),
//! `--runs N` (default: one per core), `--pin` (pin run `i` to the `i`-th
//! CPU), `--seconds S` (serve for S seconds, then stop gracefully),
//! `--self-test N` (a client thread makes N connections, checks each echo,
//! then stops the servers). Ctrl-C stops every run gracefully and the
//! program then dies of SIGINT, the Unix way. At the end each run says how
//! many connections it served.
//!
//! How the runs are stopped without failing: each run serves inside a
//! cancel scope and hands out its [`CancelHandle`] (which is `Send`); the
//! self-test thread cancels them all. A run's scope catches its own
//! cancellation, so every run ends with `Ok`.

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use trio::net::TcpListenOptions;
use trio::socket::{Domain, SockAddr, Socket, SocketStream, Type};
use trio::stream::{ReceiveStream, SendStream};
use trio::{CancelHandle, CancelScope, PerCore};

const DEFAULT_PORT: u16 = 12345;
const HOST: &str = "0.0.0.0";

struct Args {
    port: u16,
    runs: usize,
    pin: bool,
    seconds: Option<f64>,
    self_test: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: DEFAULT_PORT,
        runs: trio::available_cores(),
        pin: false,
        seconds: None,
        self_test: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--pin" {
            args.pin = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value:?}");
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(|_| bad())?,
            "--runs" => args.runs = value.parse().map_err(|_| bad())?,
            "--seconds" => args.seconds = Some(value.parse().map_err(|_| bad())?),
            "--self-test" => args.self_test = Some(value.parse().map_err(|_| bad())?),
            _ => {
                return Err(format!(
                    "unknown option {flag:?} (--port N, --runs N, --pin, --seconds S, --self-test N)"
                ));
            }
        }
    }
    Ok(args)
}

/// What the runs and the self-test thread share.
#[derive(Default)]
struct Servers {
    state: Mutex<ServersState>,
    changed: Condvar,
}

#[derive(Default)]
struct ServersState {
    /// One per listening run: cancels its serving scope.
    stops: Vec<CancelHandle>,
    /// The runs have all ended (the self-test must not wait any more).
    ended: bool,
}

impl Servers {
    fn listening(&self, stop: CancelHandle) {
        self.state.lock().unwrap().stops.push(stop);
        self.changed.notify_all();
    }

    fn ended(&self) {
        self.state.lock().unwrap().ended = true;
        self.changed.notify_all();
    }

    /// Waits until `runs` runs listen; false if they ended first.
    fn wait_listening(&self, runs: usize) -> bool {
        let mut st = self.state.lock().unwrap();
        while st.stops.len() < runs && !st.ended {
            st = self.changed.wait(st).unwrap();
        }
        !st.ended
    }

    fn stop_all(&self) {
        for h in &self.state.lock().unwrap().stops {
            h.cancel();
        }
    }
}

/// One connection: echo until the client closes its side.
async fn echo(stream: &SocketStream) -> trio::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = stream.receive_some(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.send_all(&buf[..n]).await?;
    }
}

/// The self-test client (a plain thread, blocking sockets): `n`
/// connections, one message each, every echo checked.
fn self_test(port: u16, n: usize) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for i in 0..n {
        let mut c = TcpStream::connect(addr).map_err(|e| format!("connect {i}: {e}"))?;
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let msg = format!("message {i}");
        c.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
        let mut back = vec![0; msg.len()];
        c.read_exact(&mut back)
            .map_err(|e| format!("echo {i}: {e}"))?;
        if back != msg.as_bytes() {
            return Err(format!("echo {i}: got {back:?}"));
        }
    }
    println!("self-test: {n} connection(s) echoed");
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo_all_cores: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Port 0: one free port for every run. A socket with SO_REUSEPORT,
    // bound to a port the kernel picks and never listening (so it is never
    // handed a connection), holds the port while the runs bind it too.
    let (_reserved, port) = if args.port == 0 {
        match reserve_port() {
            Ok((s, p)) => (Some(s), p),
            Err(e) => {
                eprintln!("echo_all_cores: cannot reserve a port: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        (None, args.port)
    };
    let servers = Servers::default();
    let (runs, seconds) = (args.runs, args.seconds);
    println!("listening on {HOST}:{port} with {runs} run(s)");
    let result = std::thread::scope(|scope| {
        let client = args.self_test.map(|n| {
            let servers = &servers;
            scope.spawn(move || {
                if !servers.wait_listening(runs) {
                    return Err("the servers ended before they all listened".to_string());
                }
                let r = self_test(port, n);
                servers.stop_all();
                r
            })
        });
        let served = PerCore::new(runs).pin_threads(args.pin).run(|core| {
            let servers = &servers;
            async move {
                let served = Cell::new(0usize);
                let handler = async |stream: &SocketStream| {
                    let r = echo(stream).await;
                    served.set(served.get() + 1);
                    r
                };
                let options = TcpListenOptions::new().host(HOST).reuse_port(true);
                let scope = match seconds {
                    Some(s) => CancelScope::new().with_relative_deadline(s)?,
                    None => CancelScope::new(),
                };
                let stop = scope.handle();
                scope
                    .run(trio::open_nursery(async |nursery| {
                        nursery
                            .start(|status| {
                                trio::serve_tcp(handler, port)
                                    .listen_options(options)
                                    .task_status(status)
                            })
                            .await?;
                        servers.listening(stop);
                        Ok(())
                    }))
                    .await?;
                println!(
                    "run {}: served {} connection(s)",
                    core.index(),
                    served.get()
                );
                Ok(served.get())
            }
        });
        // If the servers ended first (a failure, Ctrl-C), the client may
        // still wait for them: let it go.
        servers.ended();
        let client = client.map(|c| c.join().expect("the self-test thread panicked"));
        (served, client)
    });
    match result {
        (Ok(served), client) => {
            let total: usize = served.iter().sum();
            println!("served {total} connection(s) on {runs} run(s)");
            if let Some(Err(e)) = client {
                eprintln!("echo_all_cores: self-test failed: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        (Err(e), _) => {
            if let Some(interrupted) = trio::signal::Interrupted::of(&e) {
                println!("interrupted; every run stopped");
                interrupted.exit_process();
            }
            eprintln!("echo_all_cores: {e}");
            ExitCode::FAILURE
        }
    }
}

fn reserve_port() -> trio::Result<(Socket, u16)> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.as_socket2().set_reuse_port(true)?;
    let any: SocketAddr = (std::net::Ipv4Addr::UNSPECIFIED, 0).into();
    s.bind(&SockAddr::from(any))?;
    let port = s.local_addr()?.as_socket().map_or(0, |a| a.port());
    Ok((s, port))
}
