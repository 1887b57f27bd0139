//! The HTTP "hello" server on every core: one trio run per core
//! ([`trio::PerCore`]), each serving hyper on its own `SO_REUSEPORT`
//! listener on the same port, so the kernel spreads the connections and
//! every connection (with its keep-alive requests) stays on the core that
//! accepted it. Nothing is shared between the runs but the port.
//!
//! ```text
//! cargo run --release -p trio-hyper --example hello_all_cores              # port 8080, until Ctrl-C
//! cargo run --release -p trio-hyper --example hello_all_cores -- --seconds 10
//! cargo run -p trio-hyper --example hello_all_cores -- --port 0 --self-test 16   # what CI runs
//! curl http://127.0.0.1:8080/                                               # "hello from run N"
//! ```
//!
//! Options: `--port N` (0: a free port, shared by every run), `--runs N`
//! (default: one per core), `--seconds S` (serve S seconds, then stop),
//! `--self-test N` (a plain client thread sends N requests, each on its own
//! connection, checks every answer, then stops the runs). Ctrl-C stops every
//! run and the program dies of SIGINT, the Unix way.
//!
//! Each run serves inside a cancel scope whose `Send` [`CancelHandle`] it
//! hands to the self-test thread; cancelling the scope is caught by the
//! scope itself, so every run ends with `Ok` and says how many requests it
//! answered.

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::cell::Cell;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;
use trio::net::TcpListenOptions;
use trio::socket::{Domain, SockAddr, Socket, Type};
use trio::{CancelHandle, CancelScope, PerCore};
use trio_hyper::{Http, serve_http};

struct Args {
    port: u16,
    runs: usize,
    seconds: Option<f64>,
    self_test: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 8080,
        runs: trio::available_cores(),
        seconds: None,
        self_test: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value:?}");
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(|_| bad())?,
            "--runs" => args.runs = value.parse().map_err(|_| bad())?,
            "--seconds" => args.seconds = Some(value.parse().map_err(|_| bad())?),
            "--self-test" => args.self_test = Some(value.parse().map_err(|_| bad())?),
            _ => {
                return Err(format!(
                    "unknown option {flag:?} (--port N, --runs N, --seconds S, --self-test N)"
                ));
            }
        }
    }
    Ok(args)
}

/// The runs' stop handles, and whether they have all ended (so the
/// self-test thread never waits for runs that failed before listening).
#[derive(Default)]
struct Stops {
    state: Mutex<(Vec<CancelHandle>, bool)>,
    changed: std::sync::Condvar,
}

impl Stops {
    fn add(&self, handle: CancelHandle) {
        self.state.lock().unwrap().0.push(handle);
        self.changed.notify_all();
    }

    fn ended(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    fn wait_for(&self, runs: usize) -> bool {
        let mut st = self.state.lock().unwrap();
        while st.0.len() < runs && !st.1 {
            st = self.changed.wait(st).unwrap();
        }
        !st.1
    }

    fn stop_all(&self) {
        for h in &self.state.lock().unwrap().0 {
            h.cancel();
        }
    }
}

/// `n` requests, one connection each (so the kernel spreads them over the
/// runs), every answer checked.
fn self_test(port: u16, n: usize) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for i in 0..n {
        let mut c = TcpStream::connect(addr).map_err(|e| format!("connect {i}: {e}"))?;
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        c.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        c.read_to_string(&mut answer)
            .map_err(|e| format!("answer {i}: {e}"))?;
        if !answer.starts_with("HTTP/1.1 200") || !answer.contains("hello from run ") {
            return Err(format!("answer {i}: {answer:?}"));
        }
    }
    println!("self-test: {n} request(s) answered");
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hello_all_cores: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Port 0: a socket with SO_REUSEPORT bound to a port the kernel picks,
    // never listening (so never handed a connection), holds it for the runs.
    let (_reserved, port) = if args.port == 0 {
        match reserve_port() {
            Ok((s, p)) => (Some(s), p),
            Err(e) => {
                eprintln!("hello_all_cores: cannot reserve a port: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        (None, args.port)
    };
    let stops = Stops::default();
    let (runs, seconds) = (args.runs, args.seconds);
    println!("listening on http://127.0.0.1:{port}/ with {runs} run(s)");
    let (served, client) = std::thread::scope(|scope| {
        let stops = &stops;
        let client = args.self_test.map(|n| {
            scope.spawn(move || {
                if !stops.wait_for(runs) {
                    return Err("the servers ended before they all listened".to_string());
                }
                let r = self_test(port, n);
                stops.stop_all();
                r
            })
        });
        let served = PerCore::new(runs).run(|core| async move {
            let answered = Cell::new(0usize);
            let hello = service_fn(|_req: Request<Incoming>| {
                answered.set(answered.get() + 1);
                let body = format!("hello from run {}\n", core.index());
                async move { Ok::<_, Infallible>(Response::new(body)) }
            });
            let scope = match seconds {
                Some(s) => CancelScope::new().with_relative_deadline(s)?,
                None => CancelScope::new(),
            };
            let stop = scope.handle();
            scope
                .run(trio::open_nursery(async |nursery| {
                    let options = TcpListenOptions::new().reuse_port(true);
                    nursery
                        .start(|status| {
                            serve_http(Http::new(), &hello, port)
                                .host("127.0.0.1")
                                .listen_options(options)
                                .task_status(status)
                        })
                        .await?;
                    stops.add(stop);
                    Ok(())
                }))
                .await?;
            println!(
                "run {}: answered {} request(s)",
                core.index(),
                answered.get()
            );
            Ok(answered.get())
        });
        stops.ended();
        let client = client.map(|c| c.join().expect("the self-test thread panicked"));
        (served, client)
    });
    match served {
        Ok(served) => {
            let total: usize = served.iter().sum();
            println!("answered {total} request(s) on {runs} run(s)");
            if let Some(Err(e)) = client {
                eprintln!("hello_all_cores: self-test failed: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let Some(interrupted) = trio::signal::Interrupted::of(&e) {
                println!("interrupted; every run stopped");
                interrupted.exit_process();
            }
            eprintln!("hello_all_cores: {e}");
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
