//! An HTTP server that stops gracefully on Ctrl-C (or SIGTERM):
//!
//! - the first signal calls `ServeControl::stop`: no new connections, idle
//!   connections close, requests in flight finish (their answers say
//!   `connection: close`) within a 10 s grace, then whatever still runs is
//!   cancelled; the program then exits with status 0;
//! - a second signal stops at once (every task cancelled).
//!
//! A signal receiver takes SIGINT from the run's own Ctrl-C handling (which
//! would cancel everything at once) while it is open.
//!
//! ```text
//! cargo run -p trio-hyper --example serve_ctrl_c            # port 8080
//! cargo run -p trio-hyper --example serve_ctrl_c -- --port 0
//! curl http://127.0.0.1:8080/slow &  # answers after 2 s...
//! # ...press Ctrl-C meanwhile: it still answers, then the server exits.
//! ```
//!
//! It prints `listening on http://127.0.0.1:PORT/` (stdout) once it
//! accepts, and `request PATH` for each request (the Ctrl-C test in
//! `tests/ctrl_c.rs` reads both).

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::io::Write;
use trio::net::ServeControl;
use trio::signal::consts::{SIGINT, SIGTERM};
use trio::signal::open_signal_receiver;
use trio_hyper::{Http, serve_http};

/// How long requests in flight may take after the first signal.
const GRACE: f64 = 10.0;

/// Prints a line at once (stdout is a pipe in the test: no buffering).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `/slow` answers after 2 s; anything else at once.
async fn hello(req: Request<Incoming>) -> Result<Response<String>, trio::StdError> {
    say(&format!("request {}", req.uri().path()));
    if req.uri().path() == "/slow" {
        trio::sleep(2.0).await.map_err(trio::StdError)?;
    }
    Ok(Response::new(format!("hello {}\n", req.uri().path())))
}

#[trio::main]
async fn main() -> trio::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = match args.iter().position(|a| a == "--port") {
        Some(i) => args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                trio::Error::new(trio::ErrorKind::InvalidArgument, "--port takes a number")
            })?,
        None => 8080,
    };
    let control = ServeControl::new();
    let service = service_fn(hello);
    // Opened before serving, so a Ctrl-C at any moment is ours.
    let signals = open_signal_receiver(&[SIGINT, SIGTERM])?;
    trio::open_nursery(async |nursery| {
        let everything = nursery.cancel_scope();
        let (signals, control) = (&signals, &control);
        nursery.start_soon(async move {
            let signal = signals.recv().await?;
            say(&format!(
                "signal {signal}: stopping gracefully ({GRACE} s grace; again to stop now)"
            ));
            control.stop(GRACE)?;
            signals.recv().await?;
            say("second signal: stopping now");
            everything.cancel();
            Ok(())
        });
        // The server in a nursery of its own, which ends when the graceful
        // stop is complete.
        trio::open_nursery(async |server| {
            let listeners = server
                .start(|s| {
                    serve_http(Http::new().control(control), &service, port)
                        .host("127.0.0.1")
                        .task_status(s)
                })
                .await?;
            let port = listeners[0].local_addr()?.as_socket().unwrap().port();
            say(&format!("listening on http://127.0.0.1:{port}/"));
            Ok(())
        })
        .await?;
        // Stopped: end the signal task too.
        nursery.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    say("stopped");
    Ok(())
}
