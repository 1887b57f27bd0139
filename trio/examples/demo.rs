//! A tour of trio in one run, on a virtual clock: run with `cargo run --example demo`.
//!
//! 1. A nursery of three "downloads" that borrow the caller's data.
//! 2. One child fails: its siblings and the body are cancelled, and the
//!    nursery reports just that failure.
//! 3. Timeouts that compose: `move_on_after` around a slow call that has its
//!    own timeout inside.
//! 4. `start`: wait for a "server" to be ready before using it.
//!
//! Sections 1–4 run on `MockClock::autojump()`, so the minutes of simulated
//! waiting take milliseconds, and their output is the same on every run.
//!
//! 5. Happy Eyeballs on loopback: `open_tcp_stream` to a name with two
//!    addresses, one of which never answers; the second attempt starts
//!    250 ms later and wins. Then a timeout around a network read.
//!
//! Section 5 waits on the kernel, which is outside the run, so it is a
//! separate `trio::run` on the real clock (autojump would count those waits
//! as idleness and jump the clock); its times vary by a millisecond or so.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use trio::ErrorKind;
use trio::net::{HostnameResolver, SocketFactory, SystemSocketFactory};
use trio::socket::{SocketListener, SocketStream};
use trio::stream::{AsyncResource, BoxFuture, Listener, ReceiveStream, SendStream};
use trio::testing::MockClock;

fn t() -> String {
    format!("[t={:>5.1}s]", trio::current_time().as_secs_f64())
}

async fn download(name: &str, seconds: f64, log: &RefCell<Vec<String>>) -> trio::Result<()> {
    println!("{} {name}: started ({seconds} s)", t());
    match trio::sleep(seconds).await {
        Ok(()) => {
            println!("{} {name}: done", t());
            log.borrow_mut().push(name.to_string());
            Ok(())
        }
        Err(e) => {
            println!("{} {name}: {e}", t());
            Err(e)
        }
    }
}

async fn demo() -> trio::Result<()> {
    println!(
        "== 1. a nursery: children borrow the caller's data, and all finish before it returns"
    );
    let names: Vec<String> = ["alpha", "beta", "gamma"]
        .into_iter()
        .map(String::from)
        .collect();
    let done = RefCell::new(Vec::new());
    trio::open_nursery(async |nursery| {
        for (i, name) in names.iter().enumerate() {
            nursery.start_soon(download(name, 1.0 + i as f64, &done));
        }
        Ok(())
    })
    .await?;
    println!("{} nursery closed; finished: {:?}\n", t(), done.borrow());

    println!("== 2. a failing child cancels its siblings and the body");
    let result = trio::open_nursery(async |nursery| {
        nursery.start_soon(download("slow-1", 60.0, &done));
        nursery.start_soon(download("slow-2", 90.0, &done));
        nursery.start_soon(async {
            trio::sleep(2.0).await?;
            println!("{} flaky: failing", t());
            Err(trio::Error::new(
                ErrorKind::Broken,
                "flaky: connection reset",
            ))
        });
        match trio::sleep(3600.0).await {
            Ok(()) => println!("{} body: woke normally", t()),
            Err(e) => println!("{} body: {e}", t()),
        }
        Ok(())
    })
    .await;
    match result {
        Err(e) => println!(
            "{} the nursery reports exactly the failure: {e} ({:?})\n",
            t(),
            e.kind()
        ),
        Ok(_) => println!("unexpected success\n"),
    }

    println!("== 3. timeouts compose across layers");
    async fn library_fetch() -> trio::Result<&'static str> {
        // The library has its own 30 s timeout...
        match trio::move_on_after(30.0, trio::sleep(45.0)).await? {
            Some(()) => Ok("page"),
            None => Ok("library timeout"),
        }
    }
    // ... and the caller's tighter 10 s timeout wins without either knowing the other.
    match trio::move_on_after(Duration::from_secs(10), library_fetch()).await? {
        Some(v) => println!("{} got {v}", t()),
        None => println!(
            "{} caller gave up after 10 s; the library's scope did not catch it",
            t()
        ),
    }
    let err = trio::fail_after(5.0, trio::sleep_forever())
        .await
        .unwrap_err();
    println!("{} fail_after: {err} ({:?})\n", t(), err.kind());

    println!("== 4. start(): wait until a child is ready");
    trio::open_nursery(async |nursery| {
        let port = nursery
            .start(async |status| {
                println!("{} server: binding...", t());
                trio::sleep(0.5).await?;
                status.started(8080);
                trio::sleep_forever().await
            })
            .await?;
        println!("{} server ready on port {port}; shutting it down", t());
        nursery.cancel_scope().cancel();
        Ok(())
    })
    .await?;
    println!("{} all done: no task left running", t());
    Ok(())
}

/// Section 5's resolver: the demo's name has these addresses, in order.
struct Addresses(Vec<SocketAddr>);

impl HostnameResolver for Addresses {
    fn getaddrinfo<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> BoxFuture<'a, trio::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// Section 5's socket factory: the system one, narrating each attempt.
struct Narrated {
    start: f64,
}

impl Narrated {
    fn t(&self) -> String {
        format!(
            "[t={:>5.3}s]",
            trio::current_time().as_secs_f64() - self.start
        )
    }
}

impl SocketFactory for Narrated {
    fn connect(
        &self,
        addr: SocketAddr,
        local: Option<IpAddr>,
    ) -> BoxFuture<'_, trio::Result<SocketStream>> {
        Box::pin(async move {
            println!("{} attempt to {}: started", self.t(), addr.ip());
            let result = SystemSocketFactory.connect(addr, local).await;
            match &result {
                Ok(_) => println!("{} attempt to {}: connected", self.t(), addr.ip()),
                Err(e) if e.is_cancelled() => println!(
                    "{} attempt to {}: cancelled (its socket is closed)",
                    self.t(),
                    addr.ip()
                ),
                Err(e) => println!("{} attempt to {}: failed: {e}", self.t(), addr.ip()),
            }
            result
        })
    }
}

/// A listener on `addr` that never accepts, with its backlog full: a
/// further connect to it hangs (Linux drops the SYN its full accept queue
/// cannot take, and the client would retry for minutes). Returns the
/// listener and the one connection that fills it (a backlog of 0 holds
/// one).
fn silent_listener(addr: SocketAddr) -> std::io::Result<(socket2::Socket, std::net::TcpStream)> {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    listener.bind(&addr.into())?;
    listener.listen(0)?;
    let filler = std::net::TcpStream::connect(listener.local_addr()?.as_socket().unwrap())?;
    Ok((listener, filler))
}

/// One port on two loopback addresses: a silent listener on 127.0.0.2 and
/// a trio listener on 127.0.0.1. (Linux routes all of 127/8 to loopback.)
fn two_listeners() -> trio::Result<(socket2::Socket, std::net::TcpStream, SocketListener)> {
    loop {
        let (silent, filler) = silent_listener("127.0.0.2:0".parse().unwrap())?;
        let port = silent.local_addr()?.as_socket().unwrap().port();
        // Taken on 127.0.0.1 already: try another port.
        if let Ok(listener) = SocketListener::bind_tcp(([127, 0, 0, 1], port).into()) {
            return Ok((silent, filler, listener));
        }
    }
}

async fn network_demo() -> trio::Result<()> {
    println!("== 5. Happy Eyeballs on loopback (a separate run, on the real clock)");
    let (silent, filler, listener) = match two_listeners() {
        Ok(listeners) => listeners,
        Err(e) => {
            println!("(skipped: this needs 127.0.0.2 on loopback, as Linux has: {e})");
            return Ok(());
        }
    };
    let port = listener.local_addr()?.as_socket().unwrap().port();
    trio::net::set_hostname_resolver(Some(Rc::new(Addresses(vec![
        ([127, 0, 0, 2], port).into(),
        ([127, 0, 0, 1], port).into(),
    ]))))?;
    let narrated = Rc::new(Narrated {
        start: trio::current_time().as_secs_f64(),
    });
    trio::net::set_socket_factory(Some(narrated.clone()))?;
    println!("\"demo.example\" resolves to 127.0.0.2 (never answers), then 127.0.0.1");

    trio::open_nursery(async |nursery| {
        // The server: echoes one message, then stays silent until the
        // client hangs up.
        nursery.start_soon(async {
            let conn = listener.accept().await?;
            let mut buf = [0; 64];
            let n = conn.receive_some(&mut buf).await?;
            conn.send_all(&buf[..n]).await?;
            while conn.receive_some(&mut buf).await? > 0 {}
            Ok(())
        });

        let client = trio::open_tcp_stream("demo.example", port).await?;
        let peer = client.socket()?.peer_addr()?.as_socket().unwrap();
        println!(
            "{} open_tcp_stream -> {}: the silent address cost one 250 ms delay, not a connect timeout",
            narrated.t(),
            peer.ip()
        );

        client.send_all(b"ping").await?;
        let mut buf = [0; 64];
        let n = client.receive_some(&mut buf).await?;
        println!(
            "{} echo: {:?}",
            narrated.t(),
            String::from_utf8_lossy(&buf[..n])
        );
        println!(
            "{} reading again, with fail_after(0.5 s): the server has nothing more to say",
            narrated.t()
        );
        match trio::fail_after(0.5, client.receive_some(&mut buf)).await {
            Ok(n) => println!("{} unexpected: got {n} bytes", narrated.t()),
            Err(e) => println!("{} {e} ({:?})", narrated.t(), e.kind()),
        }
        // Hanging up ends the server task, and so the nursery.
        client.aclose().await
    })
    .await?;
    drop((silent, filler));
    println!("all done: every socket closed, no task left running");
    Ok(())
}

fn main() {
    let clock = MockClock::autojump();
    let started = std::time::Instant::now();
    match trio::Runner::new().clock(clock.clone()).run(demo()) {
        Ok(()) => println!(
            "\n{:.1} virtual seconds in {:.1} ms of real time\n",
            clock.current_time().as_secs_f64(),
            started.elapsed().as_secs_f64() * 1e3
        ),
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
    if let Err(e) = trio::run(network_demo()) {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}
