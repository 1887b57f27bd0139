//! `open_tcp_stream`'s Happy Eyeballs on the MockClock, with a scripted
//! resolver and a scripted socket factory: Trio's
//! `test_highlevel_open_tcp_stream.py` tables, plus cancellation, the delay
//! option and the local address.
//!
//! The trick: the scripted factory "connects" an attempt by handing out one
//! end of a real `SocketStream::unix_pair()` after a scripted
//! `trio::sleep`, and keeps the other end. After the call, the winner sends
//! a byte, and every kept end is read: end of stream means that attempt's
//! socket was closed, the byte means it is the winner's, and a read still
//! blocked a (virtual) second later means a socket was left open. Reading
//! an already-closed or already-written socket does not wait, so the check
//! is deterministic under autojump.
//!
//! Beyond the tables, `random_tables_match_the_model` runs random tables
//! (families, connect times, outcomes, delay) against a hand-written model
//! of the algorithm in integer milliseconds.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use trio::net::{
    ConnectAttemptsFailed, HostnameResolver, SocketFactory, TcpConnect, set_hostname_resolver,
    set_socket_factory,
};
use trio::socket::SocketStream;
use trio::stream::{BoxFuture, ReceiveStream, SendStream};
use trio::{Error, ErrorKind};

const HOST: &str = "test.example.com";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// Connects after the delay.
    Connects,
    /// Fails with "sorry" after the delay.
    Fails,
    /// Never finishes (the delay is ignored).
    Hangs,
}
use Outcome::*;

/// One `open_tcp_stream` call's world: what the resolver answers, how each
/// connect goes, and what happened.
struct Scenario {
    port: u16,
    targets: Vec<(IpAddr, f64, Outcome)>,
    ipv4_supported: bool,
    ipv6_supported: bool,
    start: f64,
    lookups: Cell<usize>,
    /// When each connect started (seconds since the scenario began), in
    /// order.
    connect_times: RefCell<Vec<(IpAddr, f64)>>,
    /// The local address each connect was given.
    locals: RefCell<Vec<Option<IpAddr>>>,
    /// The far end of each attempt's socket pair.
    peers: RefCell<Vec<(IpAddr, SocketStream)>>,
    /// Cancelled by a successful connect just before it returns.
    cancel_on_success: RefCell<Option<trio::CancelScope>>,
}

impl Scenario {
    fn new(port: u16, targets: &[(&str, f64, Outcome)]) -> Scenario {
        Scenario {
            port,
            targets: targets
                .iter()
                .map(|&(ip, delay, outcome)| (ip.parse().unwrap(), delay, outcome))
                .collect(),
            ipv4_supported: true,
            ipv6_supported: true,
            start: now(),
            lookups: Cell::new(0),
            connect_times: RefCell::new(Vec::new()),
            locals: RefCell::new(Vec::new()),
            peers: RefCell::new(Vec::new()),
            cancel_on_success: RefCell::new(None),
        }
    }

    /// Installs this scenario as the run's resolver and socket factory.
    fn install(self) -> Rc<Scenario> {
        let scenario = Rc::new(self);
        set_hostname_resolver(Some(scenario.clone())).unwrap();
        set_socket_factory(Some(scenario.clone())).unwrap();
        scenario
    }

    fn elapsed_ms(&self) -> u64 {
        ms(now() - self.start)
    }

    /// Each connect's start, in milliseconds since the scenario began.
    fn connect_times(&self) -> Vec<(String, u64)> {
        self.connect_times
            .borrow()
            .iter()
            .map(|(ip, t)| (ip.to_string(), ms(*t)))
            .collect()
    }

    /// Checks that every attempt's socket was closed except the winner's,
    /// and returns the winner's address. Moves the clock.
    async fn check(&self, winner: Option<&SocketStream>) -> Option<String> {
        if let Some(w) = winner {
            w.send_all(b"w").await.unwrap();
        }
        let peers = std::mem::take(&mut *self.peers.borrow_mut());
        let mut found = None;
        for (ip, peer) in peers {
            let mut buf = [0; 1];
            match trio::move_on_after(1.0, peer.receive_some(&mut buf))
                .await
                .unwrap()
            {
                Some(0) => {} // closed
                Some(_) => {
                    assert!(found.is_none(), "two winners");
                    found = Some(ip.to_string());
                }
                None => panic!("the socket to {ip} was left open"),
            }
        }
        assert_eq!(winner.is_some(), found.is_some(), "the winner's socket");
        found
    }
}

fn now() -> f64 {
    trio::current_time().as_secs_f64()
}

fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

impl HostnameResolver for Scenario {
    fn getaddrinfo<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, trio::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            assert_eq!(host, HOST);
            assert_eq!(port, self.port);
            self.lookups.set(self.lookups.get() + 1);
            Ok(self
                .targets
                .iter()
                .map(|&(ip, _, _)| SocketAddr::new(ip, port))
                .collect())
        })
    }
}

impl SocketFactory for Scenario {
    fn connect(
        &self,
        addr: SocketAddr,
        local: Option<IpAddr>,
    ) -> BoxFuture<'_, trio::Result<SocketStream>> {
        Box::pin(async move {
            let ip = addr.ip();
            assert_eq!(addr.port(), self.port);
            // Like a socket() call failing: before any connect.
            if (ip.is_ipv4() && !self.ipv4_supported) || (ip.is_ipv6() && !self.ipv6_supported) {
                return Err(Error::new(
                    ErrorKind::Io,
                    "pretending not to support this family",
                ));
            }
            let (ours, theirs) = SocketStream::unix_pair()?;
            self.peers.borrow_mut().push((ip, theirs));
            self.connect_times
                .borrow_mut()
                .push((ip, now() - self.start));
            self.locals.borrow_mut().push(local);
            let &(_, delay, outcome) = self.targets.iter().find(|t| t.0 == ip).unwrap();
            // Cancelled here: `ours` is dropped, which closes it.
            match outcome {
                Hangs => trio::sleep_forever().await?,
                _ => trio::sleep(delay).await?,
            }
            match outcome {
                Fails => Err(Error::new(ErrorKind::Io, "sorry")),
                _ => {
                    if let Some(scope) = self.cancel_on_success.borrow().as_ref() {
                        scope.cancel();
                    }
                    Ok(ours)
                }
            }
        })
    }
}

/// Connects to `HOST` on `port` through `scenario`, checks that exactly
/// the winner's socket is open, and returns the winner's address.
async fn winner_of(scenario: &Scenario, connect: TcpConnect) -> String {
    let stream = connect.connect().await.unwrap();
    scenario.check(Some(&stream)).await.unwrap()
}

fn times(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|&(ip, t)| (ip.to_string(), t)).collect()
}

#[trio::test(autojump)]
async fn one_host_quick_success() {
    let sc = Scenario::new(80, &[("1.2.3.4", 0.123, Connects)]).install();
    let stream = trio::open_tcp_stream(HOST, 80).await.unwrap();
    assert_eq!(sc.elapsed_ms(), 123);
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "1.2.3.4");
    assert_eq!(sc.lookups.get(), 1);
}

#[trio::test(autojump)]
async fn one_host_slow_success() {
    let sc = Scenario::new(81, &[("1.2.3.4", 100.0, Connects)]).install();
    let stream = trio::open_tcp_stream(HOST, 81).await.unwrap();
    assert_eq!(sc.elapsed_ms(), 100_000);
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "1.2.3.4");
}

#[trio::test(autojump)]
async fn one_host_quick_fail_reports_the_attempt() {
    let sc = Scenario::new(82, &[("1.2.3.4", 0.123, Fails)]).install();
    let err = trio::open_tcp_stream(HOST, 82).await.unwrap_err();
    assert_eq!(sc.elapsed_ms(), 123);
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(
        err.to_string(),
        "all attempts to connect to test.example.com:82 failed: 1.2.3.4:82: sorry"
    );
    assert_eq!(sc.check(None).await, None);
}

#[trio::test(autojump)]
async fn one_host_slow_fail() {
    let sc = Scenario::new(83, &[("1.2.3.4", 100.0, Fails)]).install();
    let err = trio::open_tcp_stream(HOST, 83).await.unwrap_err();
    assert_eq!(sc.elapsed_ms(), 100_000);
    assert!(err.downcast_ref::<ConnectAttemptsFailed>().is_some());
    assert_eq!(sc.check(None).await, None);
}

// With the default 250 ms delay, the third attempt wins.
#[trio::test(autojump)]
async fn basic_fallthrough_the_third_attempt_wins() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 1.0, Connects),
            ("2.2.2.2", 1.0, Connects),
            ("3.3.3.3", 0.2, Connects),
        ],
    )
    .install();
    let stream = trio::open_tcp_stream(HOST, 80).await.unwrap();
    assert_eq!(sc.elapsed_ms(), 250 + 250 + 200);
    assert_eq!(
        sc.connect_times(),
        times(&[("1.1.1.1", 0), ("2.2.2.2", 250), ("3.3.3.3", 500)])
    );
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "3.3.3.3");
}

#[trio::test(autojump)]
async fn early_success_starts_no_further_attempt() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 1.0, Connects),
            ("2.2.2.2", 0.1, Connects),
            ("3.3.3.3", 0.2, Connects),
        ],
    )
    .install();
    let winner = winner_of(&sc, TcpConnect::new(HOST, 80)).await;
    assert_eq!(winner, "2.2.2.2");
    // 3.3.3.3 was never even started.
    assert_eq!(
        sc.connect_times(),
        times(&[("1.1.1.1", 0), ("2.2.2.2", 250)])
    );
}

#[trio::test(autojump)]
async fn the_second_attempt_wins_while_the_first_hangs() {
    let sc = Scenario::new(80, &[("1.1.1.1", 0.0, Hangs), ("2.2.2.2", 0.1, Connects)]).install();
    let stream = trio::open_tcp_stream(HOST, 80).await.unwrap();
    assert_eq!(sc.elapsed_ms(), 350);
    assert_eq!(
        sc.connect_times(),
        times(&[("1.1.1.1", 0), ("2.2.2.2", 250)])
    );
    // The hanging attempt was cancelled and its socket closed.
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "2.2.2.2");
}

// With a 450 ms delay, the first attempt wins.
#[trio::test(autojump)]
async fn custom_delay() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 1.0, Connects),
            ("2.2.2.2", 1.0, Connects),
            ("3.3.3.3", 0.2, Connects),
        ],
    )
    .install();
    let winner = winner_of(&sc, TcpConnect::new(HOST, 80).happy_eyeballs_delay(0.45)).await;
    assert_eq!(winner, "1.1.1.1");
    assert_eq!(
        sc.connect_times(),
        times(&[("1.1.1.1", 0), ("2.2.2.2", 450), ("3.3.3.3", 900)])
    );
}

#[trio::test(autojump)]
async fn a_zero_delay_starts_every_attempt_at_once() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 0.3, Connects),
            ("2.2.2.2", 0.1, Connects),
            ("3.3.3.3", 0.2, Connects),
        ],
    )
    .install();
    let connect = TcpConnect::new(HOST, 80).happy_eyeballs_delay(std::time::Duration::ZERO);
    let stream = connect.connect().await.unwrap();
    assert_eq!(sc.elapsed_ms(), 100);
    // All start in the same instant, in whatever order the scheduler picks.
    let mut started = sc.connect_times();
    started.sort();
    assert_eq!(
        started,
        times(&[("1.1.1.1", 0), ("2.2.2.2", 0), ("3.3.3.3", 0)])
    );
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "2.2.2.2");
}

#[trio::test(autojump)]
async fn an_invalid_delay_is_invalid_argument() {
    let sc = Scenario::new(80, &[("1.1.1.1", 0.1, Connects)]).install();
    let err = TcpConnect::new(HOST, 80)
        .happy_eyeballs_delay(-1.0)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(sc.lookups.get(), 0);
}

// A failure starts the next attempt at once.
#[trio::test(autojump)]
async fn errors_expedite_the_next_attempt() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 0.1, Fails),
            ("2.2.2.2", 0.2, Fails),
            ("3.3.3.3", 10.0, Connects),
            // 0.25 is the default delay.
            ("4.4.4.4", 0.25, Connects),
        ],
    )
    .install();
    let stream = trio::open_tcp_stream(HOST, 80).await.unwrap();
    assert_eq!(sc.elapsed_ms(), 100 + 200 + 250 + 250);
    assert_eq!(
        sc.connect_times(),
        times(&[
            ("1.1.1.1", 0),
            ("2.2.2.2", 100),
            ("3.3.3.3", 300),
            ("4.4.4.4", 550),
        ])
    );
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "4.4.4.4");
}

#[trio::test(autojump)]
async fn all_fail_reports_every_attempt_in_the_order_they_failed() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 0.1, Fails),
            ("2.2.2.2", 0.2, Fails),
            ("3.3.3.3", 10.0, Fails),
            ("4.4.4.4", 0.25, Fails),
        ],
    )
    .install();
    let err = trio::open_tcp_stream(HOST, 80).await.unwrap_err();
    assert_eq!(sc.elapsed_ms(), 100 + 200 + 10_000);
    assert_eq!(
        sc.connect_times(),
        times(&[
            ("1.1.1.1", 0),
            ("2.2.2.2", 100),
            ("3.3.3.3", 300),
            ("4.4.4.4", 550),
        ])
    );
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(
        err.to_string(),
        "all attempts to connect to test.example.com:80 failed: \
         1.1.1.1:80: sorry; 2.2.2.2:80: sorry; 4.4.4.4:80: sorry; 3.3.3.3:80: sorry"
    );
    let failed = err.downcast_ref::<ConnectAttemptsFailed>().unwrap();
    assert_eq!(failed.target(), "test.example.com:80");
    let order: Vec<String> = failed
        .attempts()
        .iter()
        .map(|(addr, e)| {
            assert_eq!(e.kind(), ErrorKind::Io);
            assert_eq!(e.to_string(), "sorry");
            addr.ip().to_string()
        })
        .collect();
    assert_eq!(order, ["1.1.1.1", "2.2.2.2", "4.4.4.4", "3.3.3.3"]);
    assert_eq!(sc.check(None).await, None);
}

// Three attempts connect in the same instant: exactly one is kept, the
// others are closed.
#[trio::test(autojump)]
async fn several_succeed_together_and_exactly_one_is_kept() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 0.5, Fails),
            ("2.2.2.2", 10.0, Connects),
            ("3.3.3.3", 10.0 - 1.0, Connects),
            ("4.4.4.4", 10.0 - 2.0, Connects),
            ("5.5.5.5", 0.5, Fails),
        ],
    )
    .install();
    let stream = TcpConnect::new(HOST, 80)
        .happy_eyeballs_delay(1.0)
        .connect()
        .await
        .unwrap();
    assert_eq!(sc.elapsed_ms(), 500 + 10_000);
    assert_eq!(
        sc.connect_times(),
        times(&[
            ("1.1.1.1", 0),
            ("2.2.2.2", 500),
            ("3.3.3.3", 1500),
            ("4.4.4.4", 2500),
            ("5.5.5.5", 3500),
        ])
    );
    let winner = sc.check(Some(&stream)).await.unwrap();
    assert!(
        ["2.2.2.2", "3.3.3.3", "4.4.4.4"].contains(&winner.as_str()),
        "{winner}"
    );
}

// RFC 6555 §5.4: the first IPv6 address moves to second place, so it is
// tried before 2.2.2.2 (which would have won).
#[trio::test(autojump)]
async fn does_reorder() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 10.0, Fails),
            ("2.2.2.2", 1.0, Connects),
            ("::3", 0.5, Connects),
        ],
    )
    .install();
    let winner = winner_of(&sc, TcpConnect::new(HOST, 80).happy_eyeballs_delay(1.0)).await;
    assert_eq!(winner, "::3");
    assert_eq!(sc.connect_times(), times(&[("1.1.1.1", 0), ("::3", 1000)]));
}

// Only the first address of the other family moves; the rest keep the
// resolver's order.
#[trio::test(autojump)]
async fn ipv6_and_ipv4_interleave_as_the_resolver_and_rfc_order_them() {
    let sc = Scenario::new(
        80,
        &[
            ("::1", 1.0, Fails),
            ("::2", 1.0, Fails),
            ("1.1.1.1", 1.0, Fails),
            ("2.2.2.2", 1.0, Fails),
            ("::3", 1.0, Fails),
        ],
    )
    .install();
    let err = trio::open_tcp_stream(HOST, 80).await.unwrap_err();
    assert_eq!(
        sc.connect_times(),
        times(&[
            ("::1", 0),
            ("1.1.1.1", 250),
            ("::2", 500),
            ("2.2.2.2", 750),
            ("::3", 1000),
        ])
    );
    assert_eq!(sc.elapsed_ms(), 2000);
    let failed = err.downcast_ref::<ConnectAttemptsFailed>().unwrap();
    assert_eq!(failed.attempts().len(), 5);
    assert_eq!(sc.check(None).await, None);
}

#[trio::test(autojump)]
async fn handles_no_ipv4() {
    let mut sc = Scenario::new(
        80,
        // The IPv4 attempts fail at socket creation: their timings do not
        // matter.
        &[
            ("::1", 10.0, Connects),
            ("2.2.2.2", 0.0, Connects),
            ("::3", 0.1, Connects),
            ("4.4.4.4", 0.0, Connects),
        ],
    );
    sc.ipv4_supported = false;
    let sc = sc.install();
    let winner = winner_of(&sc, TcpConnect::new(HOST, 80).happy_eyeballs_delay(1.0)).await;
    assert_eq!(winner, "::3");
    assert_eq!(sc.connect_times(), times(&[("::1", 0), ("::3", 1000)]));
}

#[trio::test(autojump)]
async fn handles_no_ipv6() {
    let mut sc = Scenario::new(
        80,
        &[
            ("::1", 0.0, Connects),
            ("2.2.2.2", 10.0, Connects),
            ("::3", 0.0, Connects),
            ("4.4.4.4", 0.1, Connects),
        ],
    );
    sc.ipv6_supported = false;
    let sc = sc.install();
    let stream = TcpConnect::new(HOST, 80)
        .happy_eyeballs_delay(1.0)
        .connect()
        .await
        .unwrap();
    assert_eq!(sc.elapsed_ms(), 1100);
    assert_eq!(
        sc.connect_times(),
        times(&[("2.2.2.2", 0), ("4.4.4.4", 1000)])
    );
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "4.4.4.4");
}

#[trio::test(autojump)]
async fn no_hosts() {
    let sc = Scenario::new(80, &[]).install();
    let err = trio::open_tcp_stream(HOST, 80).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert_eq!(
        err.to_string(),
        "no results found for hostname lookup: test.example.com:80"
    );
    assert_eq!(sc.lookups.get(), 1);
}

// Cancelling the whole call cancels every attempt, and no socket stays
// open.
#[trio::test(autojump)]
async fn cancelling_the_call_leaves_no_socket_open() {
    let sc = Scenario::new(
        80,
        &[
            ("1.1.1.1", 10.0, Connects),
            ("2.2.2.2", 10.0, Connects),
            ("3.3.3.3", 10.0, Connects),
            ("4.4.4.4", 10.0, Connects),
        ],
    )
    .install();
    let scope = trio::CancelScope::new()
        .with_relative_deadline(5.0)
        .unwrap();
    let out = scope.run(trio::open_tcp_stream(HOST, 80)).await.unwrap();
    assert!(out.is_none());
    assert!(scope.cancelled_caught());
    assert_eq!(sc.elapsed_ms(), 5000);
    assert_eq!(
        sc.connect_times(),
        times(&[
            ("1.1.1.1", 0),
            ("2.2.2.2", 250),
            ("3.3.3.3", 500),
            ("4.4.4.4", 750),
        ])
    );
    assert_eq!(sc.check(None).await, None);
}

// The caller is cancelled in the instant the winner connects (the
// winning connect itself cancels the caller's scope), while the call still
// waits to start the next attempt: the call reports the cancellation, and
// closes the winner too.
#[trio::test(autojump)]
async fn a_cancel_that_lands_with_the_winner_closes_the_winner_too() {
    let sc = Scenario::new(
        80,
        &[("1.1.1.1", 0.1, Connects), ("2.2.2.2", 0.1, Connects)],
    )
    .install();
    let scope = trio::CancelScope::new();
    *sc.cancel_on_success.borrow_mut() = Some(scope.clone());
    let out = scope.run(trio::open_tcp_stream(HOST, 80)).await.unwrap();
    assert!(out.is_none());
    assert!(scope.cancelled_caught());
    assert_eq!(sc.elapsed_ms(), 100);
    assert_eq!(sc.connect_times(), times(&[("1.1.1.1", 0)]));
    assert_eq!(sc.check(None).await, None);
}

// The same after the last attempt has started and its delay has passed:
// the call only waits for its attempts then, with no checkpoint left to
// see the cancel, so (as in Trio, DESIGN §5: a cancel no checkpoint sees
// before the scope exits is dropped) it returns the stream.
#[trio::test(autojump)]
async fn a_cancel_with_the_winner_after_the_last_start_returns_the_stream() {
    let sc = Scenario::new(80, &[("1.1.1.1", 1.0, Connects)]).install();
    let scope = trio::CancelScope::new();
    *sc.cancel_on_success.borrow_mut() = Some(scope.clone());
    let out = scope.run(trio::open_tcp_stream(HOST, 80)).await.unwrap();
    let stream = out.unwrap();
    assert!(!scope.cancelled_caught());
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "1.1.1.1");
}

// With a local address only the targets of its family are tried, and
// each attempt is given the address.
#[trio::test(autojump)]
async fn a_local_address_tries_only_its_family() {
    let sc = Scenario::new(
        80,
        &[
            ("::1", 0.1, Connects),
            ("1.1.1.1", 0.1, Fails),
            ("::2", 0.1, Connects),
            ("2.2.2.2", 0.1, Connects),
        ],
    )
    .install();
    let local: IpAddr = "10.9.9.9".parse().unwrap();
    let winner = winner_of(&sc, TcpConnect::new(HOST, 80).local_address(local)).await;
    assert_eq!(winner, "2.2.2.2");
    assert_eq!(
        sc.connect_times(),
        times(&[("1.1.1.1", 0), ("2.2.2.2", 100)])
    );
    assert_eq!(*sc.locals.borrow(), [Some(local), Some(local)]);
}

#[trio::test(autojump)]
async fn a_local_address_of_no_target_family_is_invalid_argument() {
    let sc = Scenario::new(
        80,
        &[("1.1.1.1", 0.1, Connects), ("2.2.2.2", 0.1, Connects)],
    )
    .install();
    let err = TcpConnect::new(HOST, 80)
        .local_address("::".parse().unwrap())
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "local address :: is IPv6, but test.example.com:80 has no IPv6 address"
    );
    assert!(sc.connect_times().is_empty());
    assert_eq!(sc.elapsed_ms(), 0);
}

// A literal address skips the resolver, and its single attempt goes
// through the factory.
#[trio::test(autojump)]
async fn a_literal_host_skips_the_resolver() {
    let sc = Scenario::new(80, &[("1.2.3.4", 0.5, Connects)]).install();
    let stream = trio::open_tcp_stream("1.2.3.4", 80).await.unwrap();
    assert_eq!(sc.lookups.get(), 0);
    assert_eq!(sc.connect_times(), times(&[("1.2.3.4", 0)]));
    assert_eq!(sc.check(Some(&stream)).await.unwrap(), "1.2.3.4");
}

// ----- random tables against a model ----------------------------------------

/// What the model predicts for one table: when each attempt starts (target
/// index, ms), and the winner or the failure order, and when the call
/// returns.
#[derive(Debug, PartialEq)]
struct Predicted {
    starts: Vec<(usize, u64)>,
    winner: Option<usize>,
    failure_order: Vec<usize>,
    end: u64,
}

/// Happy Eyeballs by hand, in integer milliseconds. `targets` are
/// `(is_ipv6, connect_ms, succeeds)` in the resolver's order. `None` when
/// two events the outcome depends on fall in the same instant (the
/// scheduler may then order them either way).
fn model(targets: &[(bool, u64, bool)], delay: u64) -> Option<Predicted> {
    // RFC 6555 §5.4.
    let mut order: Vec<usize> = (0..targets.len()).collect();
    if let Some(i) = order.iter().position(|&i| targets[i].0 != targets[0].0) {
        order[1..=i].rotate_right(1);
    }
    let end_of = |i: usize, start: u64| start + targets[i].1;
    let mut starts: Vec<(usize, u64)> = Vec::new();
    let mut t = 0;
    for (k, &i) in order.iter().enumerate() {
        starts.push((i, t));
        if k + 1 == order.len() {
            break;
        }
        // The next attempt starts after the delay, or when this one fails.
        let next = if targets[i].2 {
            t + delay
        } else {
            (t + delay).min(end_of(i, t))
        };
        // ... unless one has connected by then.
        let first_success = starts
            .iter()
            .filter(|&&(j, _)| targets[j].2)
            .map(|&(j, s)| end_of(j, s))
            .min();
        match first_success {
            Some(s) if s == next => return None,
            Some(s) if s < next => break,
            _ => t = next,
        }
    }
    let mut successes: Vec<(u64, usize)> = starts
        .iter()
        .filter(|&&(j, _)| targets[j].2)
        .map(|&(j, s)| (end_of(j, s), j))
        .collect();
    successes.sort();
    if let [(a, _), (b, _), ..] = successes[..]
        && a == b
    {
        return None;
    }
    let mut failures: Vec<(u64, usize)> = starts.iter().map(|&(j, s)| (end_of(j, s), j)).collect();
    failures.sort();
    if failures.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    Some(match successes.first() {
        Some(&(end, winner)) => Predicted {
            starts,
            winner: Some(winner),
            failure_order: Vec::new(),
            end,
        },
        None => Predicted {
            starts,
            winner: None,
            end: failures.last().unwrap().0,
            failure_order: failures.into_iter().map(|(_, j)| j).collect(),
        },
    })
}

fn ip_of(i: usize, ipv6: bool) -> String {
    if ipv6 {
        format!("::{}", i + 1)
    } else {
        format!("10.0.0.{}", i + 1)
    }
}

/// Runs one table through `open_tcp_stream` on an autojumping MockClock
/// and reports what happened in the model's terms.
fn observe(targets: &[(bool, u64, bool)], delay: u64) -> Predicted {
    let ips: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| ip_of(i, t.0))
        .collect();
    let index = |ip: &str| ips.iter().position(|x| x == ip).unwrap();
    let table: Vec<(&str, f64, Outcome)> = targets
        .iter()
        .zip(&ips)
        .map(|(&(_, ms, ok), ip)| {
            (
                ip.as_str(),
                ms as f64 / 1000.0,
                if ok { Connects } else { Fails },
            )
        })
        .collect();
    trio::Runner::new()
        .clock(trio::testing::MockClock::autojump())
        .run(async {
            let sc = Scenario::new(80, &table).install();
            let result = TcpConnect::new(HOST, 80)
                .happy_eyeballs_delay(std::time::Duration::from_millis(delay))
                .connect()
                .await;
            let end = sc.elapsed_ms();
            let starts = sc
                .connect_times()
                .into_iter()
                .map(|(ip, t)| (index(&ip), t))
                .collect();
            Ok(match result {
                Ok(stream) => {
                    let winner = sc.check(Some(&stream)).await.unwrap();
                    Predicted {
                        starts,
                        winner: Some(index(&winner)),
                        failure_order: Vec::new(),
                        end,
                    }
                }
                Err(err) => {
                    assert_eq!(sc.check(None).await, None);
                    let failed = err.downcast_ref::<ConnectAttemptsFailed>().unwrap();
                    Predicted {
                        starts,
                        winner: None,
                        failure_order: failed
                            .attempts()
                            .iter()
                            .map(|(addr, _)| index(&addr.ip().to_string()))
                            .collect(),
                        end,
                    }
                }
            })
        })
        .unwrap()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    // Any table: the attempts start when the model says, the model's
    // winner wins (every other socket closed, checked by `observe`), or
    // every attempt fails in the model's order, at the model's time.
    #[test]
    fn random_tables_match_the_model(
        targets in proptest::collection::vec(
            (proptest::bool::ANY, 0u64..1500, proptest::bool::ANY),
            1..7,
        ),
        delay in 1u64..600,
    ) {
        let Some(predicted) = model(&targets, delay) else {
            return Ok(()); // a tie: either order is right
        };
        proptest::prop_assert_eq!(observe(&targets, delay), predicted);
    }
}
