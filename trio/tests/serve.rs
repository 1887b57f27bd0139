//! `serve_listeners` and `serve_tcp` (issue 12, item 3; DESIGN §9).
//!
//! The policies (accept back-off, graceful stop, handler failures,
//! `max_connections`) are tested on the `MockClock` with a scripted
//! listener of memory streams, so every time is asserted exactly. Then, on
//! the real clock (the peers are the kernel, another process, Python):
//! 500 concurrent TCP clients, a real `EMFILE` in a child process with a
//! lowered `RLIMIT_NOFILE`, and Python clients of the echo server.

mod common;
use common::python;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;
use trio::channel::{MemoryReceiveChannel, MemorySendChannel};
use trio::net::{OnHandlerError, ServeControl, ServeEvent};
use trio::socket::SocketStream;
use trio::stream::{AsyncResource, Listener, ReceiveStream, SendStream, Stream};
use trio::sync::Event;
use trio::testing::{MemoryStream, memory_stream_pair, wait_all_tasks_blocked};
use trio::{Error, ErrorKind, open_nursery, serve_listeners, serve_tcp, sleep, sleep_forever};

fn now() -> f64 {
    trio::current_time().as_secs_f64()
}

// ----- a scripted listener ---------------------------------------------------------

/// A listener of memory streams: `accept` first fails with the scripted
/// errnos, one per call, then takes the next connection from a channel.
/// Records when each `accept` was called.
struct ScriptedListener {
    incoming: MemoryReceiveChannel<MemoryStream>,
    failures: RefCell<VecDeque<i32>>,
    accepts: RefCell<Vec<f64>>,
    closed: Cell<bool>,
}

impl AsyncResource for ScriptedListener {
    async fn aclose(&self) -> trio::Result<()> {
        self.closed.set(true);
        self.incoming.aclose().await
    }
}

impl Listener for ScriptedListener {
    type Stream = MemoryStream;
    async fn accept(&self) -> trio::Result<MemoryStream> {
        self.accepts.borrow_mut().push(now());
        let failure = self.failures.borrow_mut().pop_front();
        if let Some(errno) = failure {
            trio::checkpoint().await?;
            // As `SocketListener` reports them: an Io error with the OS
            // error as its source.
            return Err(io::Error::from_raw_os_error(errno).into());
        }
        self.incoming.receive().await
    }
}

/// A scripted listener and the sender that "connects" to it.
fn scripted_listener(failures: &[i32]) -> (Connector, ScriptedListener) {
    let (tx, rx) = trio::open_memory_channel(16);
    let listener = ScriptedListener {
        incoming: rx,
        failures: RefCell::new(failures.iter().copied().collect()),
        accepts: RefCell::new(Vec::new()),
        closed: Cell::new(false),
    };
    (Connector(tx), listener)
}

struct Connector(MemorySendChannel<MemoryStream>);

impl Connector {
    /// A new connection: the client's end.
    async fn connect(&self) -> trio::Result<MemoryStream> {
        let (client, server) = memory_stream_pair();
        self.0.send(server).await.map_err(|e| e.into_parts().0)?;
        Ok(client)
    }
}

async fn receive_exact<S: ReceiveStream>(stream: &S, n: usize) -> trio::Result<Vec<u8>> {
    let mut got = vec![0; n];
    let mut have = 0;
    while have < n {
        let k = stream.receive_some(&mut got[have..]).await?;
        assert!(k > 0, "end of stream after {have} of {n} bytes");
        have += k;
    }
    Ok(got)
}

async fn receive_to_end<S: ReceiveStream>(stream: &S) -> trio::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0; 256];
    loop {
        match stream.receive_some(&mut buf).await? {
            0 => return Ok(all),
            n => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// Echoes until end of stream.
async fn echo<S: Stream>(stream: &S) -> trio::Result<()> {
    let mut buf = [0; 4096];
    loop {
        let n = stream.receive_some(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.send_all(&buf[..n]).await?;
    }
}

/// The log hook of the tests: (time, line) pairs.
type Events = RefCell<Vec<(f64, String)>>;

fn record(events: &Events) -> impl Fn(&ServeEvent<'_>) + '_ {
    move |e| events.borrow_mut().push((now(), e.to_string()))
}

// ----- accept errors ---------------------------------------------------------------

#[trio::test(autojump)]
async fn an_injected_emfile_is_logged_and_accept_retried_100_ms_later() -> trio::Result<()> {
    let (connector, listener) =
        scripted_listener(&[libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM]);
    let control = ServeControl::new();
    let events = Events::default();
    open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                serve_listeners(echo::<MemoryStream>, vec![listener])
                    .control(&control)
                    .log(record(&events))
                    .task_status(status)
            })
            .await?;
        let client = connector.connect().await?;
        client.send_all(b"hello").await?;
        assert_eq!(receive_exact(&client, 5).await?, b"hello");
        // Four failures, each followed by 100 ms of back-off, then the
        // fifth accept took the connection.
        assert_eq!(now(), 0.4);
        assert_eq!(
            listeners[0].accepts.borrow()[..5],
            [0.0, 0.1, 0.2, 0.3, 0.4]
        );
        client.send_eof().await?;
        assert_eq!(receive_to_end(&client).await?, b"");
        control.stop(0.0)?;
        Ok(())
    })
    .await?;
    let events = events.into_inner();
    let names: Vec<_> = events
        .iter()
        .map(|(t, line)| (*t, line.split(' ').nth(2).unwrap().to_owned()))
        .collect();
    assert_eq!(
        names,
        [
            (0.0, "EMFILE".to_owned()),
            (0.1, "ENFILE".to_owned()),
            (0.2, "ENOBUFS".to_owned()),
            (0.3, "ENOMEM".to_owned()),
        ]
    );
    assert!(
        events[0].1.starts_with("accept returned EMFILE ("),
        "{events:?}"
    );
    assert!(events[0].1.ends_with("retrying in 100 ms"), "{events:?}");
    Ok(())
}

#[trio::test(autojump)]
async fn any_other_accept_error_ends_the_server_with_that_error() -> trio::Result<()> {
    let (_connector, listener) = scripted_listener(&[libc::EMFILE, libc::EINVAL]);
    let events = Events::default();
    let listeners = RefCell::new(None);
    let err = open_nursery(async |nursery| {
        let got = nursery
            .start(|status| {
                serve_listeners(echo::<MemoryStream>, vec![listener])
                    .log(record(&events))
                    .task_status(status)
            })
            .await?;
        *listeners.borrow_mut() = Some(got);
        Ok(())
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let io = err.find::<io::Error>().unwrap();
    assert_eq!(io.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(now(), 0.1); // after one back-off
    assert_eq!(events.borrow().len(), 1);
    let listeners = listeners.borrow();
    assert!(
        listeners.as_ref().unwrap()[0].closed.get(),
        "the server closes its listeners"
    );
    Ok(())
}

// ----- graceful stop ---------------------------------------------------------------

/// The handler of the stop and failure tests: the first byte says what to
/// do. `p`olite: waits for the stop request, works 1 s more, says bye;
/// `s`tubborn: ignores it; `f`ail: fails after 1 s; `e`cho.
async fn scripted_handler(
    stream: &MemoryStream,
    control: &ServeControl,
    log: &RefCell<Vec<(f64, String)>>,
) -> trio::Result<()> {
    let what = receive_exact(stream, 1).await?[0];
    match what {
        b'p' => {
            control.stopping().await?;
            sleep(1.0).await?;
            stream.send_all(b"bye").await?;
            log.borrow_mut().push((now(), "polite done".into()));
            Ok(())
        }
        b's' => {
            let r = sleep_forever().await;
            log.borrow_mut().push((now(), "stubborn cancelled".into()));
            r
        }
        b'f' => {
            sleep(1.0).await?;
            Err(Error::new(ErrorKind::Broken, "boom"))
        }
        _ => echo(stream).await,
    }
}

#[trio::test(autojump)]
async fn graceful_stop_closes_the_listeners_then_cancels_handlers_at_the_grace_deadline()
-> trio::Result<()> {
    let (connector, listener) = scripted_listener(&[]);
    let control = ServeControl::new();
    let log = RefCell::new(Vec::new());
    let events = Events::default();
    let handler = async |s: &MemoryStream| scripted_handler(s, &control, &log).await;
    let (polite, stubborn) = open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                serve_listeners(handler, vec![listener])
                    .control(&control)
                    .log(record(&events))
                    .task_status(status)
            })
            .await?;
        let polite = connector.connect().await?;
        polite.send_all(b"p").await?;
        let stubborn = connector.connect().await?;
        stubborn.send_all(b"s").await?;
        sleep(2.0).await?;
        assert_eq!(control.active_connections(), 2);
        assert!(!control.is_stopping());
        control.stop(5.0)?;
        assert!(control.is_stopping());
        assert_eq!(
            control.grace_deadline(),
            Some(trio::Instant::from_secs_f64(7.0))
        );
        wait_all_tasks_blocked().await?;
        // Stopped accepting: the listener is closed, a new client is refused.
        assert!(listeners[0].closed.get());
        assert_eq!(
            connector.connect().await.unwrap_err().kind(),
            ErrorKind::Broken
        );
        Ok((polite, stubborn))
    })
    .await?
    .unwrap();
    // The nursery waited for the server, which waited for its handlers.
    assert_eq!(now(), 7.0);
    assert_eq!(
        log.into_inner(),
        [
            (3.0, "polite done".to_owned()),
            (7.0, "stubborn cancelled".to_owned())
        ]
    );
    assert_eq!(
        events.into_inner(),
        [(
            7.0,
            "a connection handler was cancelled at the grace deadline".to_owned()
        )]
    );
    // Both streams were closed after their handler.
    assert_eq!(receive_to_end(&polite).await?, b"bye");
    assert_eq!(receive_to_end(&stubborn).await?, b"");
    assert_eq!(control.active_connections(), 0);
    Ok(())
}

#[trio::test(autojump)]
async fn a_second_stop_brings_the_grace_deadline_forward_never_back() -> trio::Result<()> {
    let (connector, listener) = scripted_listener(&[]);
    let control = ServeControl::new();
    let log = RefCell::new(Vec::new());
    let handler = async |s: &MemoryStream| scripted_handler(s, &control, &log).await;
    open_nursery(async |nursery| {
        nursery
            .start(|status| {
                serve_listeners(handler, vec![listener])
                    .control(&control)
                    .log(|_| {})
                    .task_status(status)
            })
            .await?;
        let stubborn = connector.connect().await?;
        stubborn.send_all(b"s").await?;
        sleep(1.0).await?;
        control.stop(100.0)?;
        sleep(1.0).await?;
        control.stop(0.0)?; // now
        control.stop(50.0)?; // ignored: later than now
        assert_eq!(
            control.grace_deadline(),
            Some(trio::Instant::from_secs_f64(2.0))
        );
        Ok(())
    })
    .await?;
    assert_eq!(now(), 2.0);
    assert_eq!(log.into_inner(), [(2.0, "stubborn cancelled".to_owned())]);
    Ok(())
}

#[trio::test(autojump)]
async fn a_stop_before_the_server_starts_ends_it_once_it_has_reported() -> trio::Result<()> {
    let (_connector, listener) = scripted_listener(&[]);
    let control = ServeControl::new();
    control.stop(1.0)?;
    let got = open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                serve_listeners(echo::<MemoryStream>, vec![listener])
                    .control(&control)
                    .task_status(status)
            })
            .await?;
        Ok(listeners.len())
    })
    .await?;
    assert_eq!(got, Some(1));
    assert_eq!(now(), 0.0);
    Ok(())
}

#[trio::test(autojump)]
async fn closing_every_listener_ends_the_server_once_its_connections_end() -> trio::Result<()> {
    let (connector, listener) = scripted_listener(&[]);
    let served = open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                serve_listeners(echo::<MemoryStream>, vec![listener]).task_status(status)
            })
            .await?;
        let client = connector.connect().await?;
        listeners[0].aclose().await?;
        sleep(3.0).await?;
        client.send_eof().await?; // the handler returns: the server ends
        Ok(())
    })
    .await?;
    assert!(served.is_some());
    assert_eq!(now(), 3.0);
    Ok(())
}

// ----- failing handlers ------------------------------------------------------------

#[trio::test(autojump)]
async fn by_default_a_failing_handler_stops_the_server_with_its_error() -> trio::Result<()> {
    let (connector, listener) = scripted_listener(&[]);
    let control = ServeControl::new();
    let log = RefCell::new(Vec::new());
    let handler = async |s: &MemoryStream| scripted_handler(s, &control, &log).await;
    let clients = RefCell::new(Vec::new());
    let listeners = RefCell::new(None);
    let err = open_nursery(async |nursery| {
        *listeners.borrow_mut() = Some(
            nursery
                .start(|status| serve_listeners(handler, vec![listener]).task_status(status))
                .await?,
        );
        for what in [b"s", b"f"] {
            let c = connector.connect().await?;
            c.send_all(what).await?;
            clients.borrow_mut().push(c);
        }
        sleep_forever().await
    })
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Broken);
    assert_eq!(err.to_string(), "boom");
    assert_eq!(now(), 1.0);
    // The other handler was cancelled, every stream and the listener closed.
    assert_eq!(log.into_inner(), [(1.0, "stubborn cancelled".to_owned())]);
    for c in clients.take() {
        assert_eq!(receive_to_end(&c).await?, b"");
    }
    assert!(listeners.borrow().as_ref().unwrap()[0].closed.get());
    Ok(())
}

#[trio::test(autojump)]
async fn log_and_continue_logs_a_failing_handler_and_keeps_serving() -> trio::Result<()> {
    let (connector, listener) = scripted_listener(&[]);
    let control = ServeControl::new();
    let log = RefCell::new(Vec::new());
    let events = Events::default();
    let handler = async |s: &MemoryStream| scripted_handler(s, &control, &log).await;
    open_nursery(async |nursery| {
        nursery
            .start(|status| {
                serve_listeners(handler, vec![listener])
                    .on_handler_error(OnHandlerError::LogAndContinue)
                    .control(&control)
                    .log(record(&events))
                    .task_status(status)
            })
            .await?;
        let failing = connector.connect().await?;
        failing.send_all(b"f").await?;
        assert_eq!(receive_to_end(&failing).await?, b""); // closed after the failure
        assert_eq!(now(), 1.0);
        let echoing = connector.connect().await?;
        echoing.send_all(b"e-still serving").await?;
        assert_eq!(receive_exact(&echoing, 14).await?, b"-still serving");
        echoing.send_eof().await?;
        control.stop(0.0)?;
        Ok(())
    })
    .await?;
    assert_eq!(
        events.into_inner(),
        [(
            1.0,
            "a connection handler failed (the server goes on): boom".to_owned()
        )]
    );
    Ok(())
}

/// A panic is not an error to log: it resumes in the caller, under either
/// policy.
#[trio::test(autojump)]
#[should_panic(expected = "a bug in the handler")]
async fn a_panicking_handler_panics_the_caller_even_under_log_and_continue() {
    let (connector, listener) = scripted_listener(&[]);
    let handler = async |_: &MemoryStream| -> trio::Result<()> { panic!("a bug in the handler") };
    let _ = open_nursery(async |nursery| {
        nursery
            .start(|status| {
                serve_listeners(handler, vec![listener])
                    .on_handler_error(OnHandlerError::LogAndContinue)
                    .task_status(status)
            })
            .await?;
        let _client = connector.connect().await?;
        sleep_forever().await
    })
    .await;
}

// ----- limits and nurseries --------------------------------------------------------

#[trio::test(autojump)]
async fn at_max_connections_the_server_stops_accepting_until_one_ends() -> trio::Result<()> {
    let (connector, listener) = scripted_listener(&[]);
    let control = ServeControl::new();
    let starts = RefCell::new(Vec::new());
    let peak = Cell::new(0);
    let handler = async |_: &MemoryStream| {
        starts.borrow_mut().push(now());
        peak.set(peak.get().max(control.active_connections()));
        sleep(1.0).await
    };
    open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                serve_listeners(handler, vec![listener])
                    .max_connections(2)
                    .control(&control)
                    .task_status(status)
            })
            .await?;
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(connector.connect().await?); // queued, like a backlog
        }
        sleep(3.5).await?;
        // No accept while at the limit: one per slot freed, two at a time.
        assert_eq!(
            *listeners[0].accepts.borrow(),
            [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
        );
        control.stop(0.0)?;
        Ok(())
    })
    .await?;
    assert_eq!(*starts.borrow(), [0.0, 0.0, 1.0, 1.0, 2.0]);
    assert_eq!(peak.get(), 2);
    Ok(())
}

#[trio::test(autojump)]
async fn max_connections_zero_is_an_invalid_argument() -> trio::Result<()> {
    let (_connector, listener) = scripted_listener(&[]);
    let err = serve_listeners(echo::<MemoryStream>, vec![listener])
        .max_connections(0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    Ok(())
}

#[trio::test(autojump)]
async fn a_handler_nursery_runs_the_connections_and_the_stop_still_applies() -> trio::Result<()> {
    let (connector, listener) = scripted_listener(&[]);
    let control = ServeControl::new();
    let log = RefCell::new(Vec::new());
    let handler = async |s: &MemoryStream| scripted_handler(s, &control, &log).await;
    let served_at = Cell::new(0.0);
    open_nursery(async |handlers| {
        open_nursery(async |nursery| {
            nursery.start_soon(async {
                serve_listeners(handler, vec![listener])
                    .handler_nursery(&handlers)
                    .control(&control)
                    .log(|_| {})
                    .await?;
                served_at.set(now());
                Ok(())
            });
            let stubborn = connector.connect().await?;
            stubborn.send_all(b"s").await?;
            wait_all_tasks_blocked().await?;
            let names: Vec<_> = handlers
                .child_tasks()
                .iter()
                .filter_map(|t| t.name())
                .collect();
            assert_eq!(names, ["trio::serve connection"]);
            control.stop(2.0)?;
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await?;
    // The server waited for the connection in the caller's nursery.
    assert_eq!(served_at.get(), 2.0);
    assert_eq!(log.into_inner(), [(2.0, "stubborn cancelled".to_owned())]);
    Ok(())
}

// ----- real sockets ----------------------------------------------------------------

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft
/// limit.
fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only access the struct passed, which
    // lives across each call.
    #[allow(unsafe_code)]
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// Lowers the soft `RLIMIT_NOFILE` to `limit`.
fn lower_fd_limit(limit: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as in `raise_fd_limit`.
    #[allow(unsafe_code)]
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = limit;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

const CLIENTS: usize = 500;

#[trio::test]
async fn serve_tcp_serves_500_concurrent_clients_then_stops_gracefully() -> trio::Result<()> {
    // Each client costs two fds here (its end and the server's).
    let limit = raise_fd_limit();
    assert!(
        limit as usize > 2 * CLIENTS + 64,
        "RLIMIT_NOFILE's hard limit ({limit}) is too low for {CLIENTS} clients"
    );
    let control = ServeControl::new();
    let echoed = Cell::new(0);
    let peak = Cell::new(0);
    let all_echoed = Event::new();
    // Bounded, so that a broken server fails the test instead of hanging it.
    let addr = trio::fail_after(
        60.0,
        open_nursery(async |nursery| {
            let listeners = nursery
                .start(|status| {
                    serve_tcp(echo::<SocketStream>, 0)
                        .host("127.0.0.1")
                        .control(&control)
                        .task_status(status)
                })
                .await?;
            let addr = listeners[0].local_addr()?.as_socket().unwrap();
            open_nursery(async |clients| {
                for i in 0..CLIENTS {
                    let (echoed, peak, all_echoed, control) =
                        (&echoed, &peak, &all_echoed, &control);
                    clients.start_soon(async move {
                        let c = SocketStream::connect_tcp(addr).await?;
                        let msg = format!("hello from client {i}");
                        c.send_all(msg.as_bytes()).await?;
                        assert_eq!(receive_exact(&c, msg.len()).await?, msg.as_bytes());
                        echoed.set(echoed.get() + 1);
                        if echoed.get() == CLIENTS {
                            // Every handler is still running (none has seen
                            // end of stream yet).
                            peak.set(control.active_connections());
                            all_echoed.set();
                        }
                        all_echoed.wait().await?;
                        c.send_eof().await?;
                        assert_eq!(receive_to_end(&c).await?, b""); // closed after the handler
                        c.aclose().await
                    });
                }
                Ok(())
            })
            .await?;
            control.stop(5.0)?;
            Ok(addr)
        }),
    )
    .await?
    .unwrap();
    assert_eq!(peak.get(), CLIENTS);
    assert_eq!(control.active_connections(), 0);
    // Stopped: the listener is closed, so connecting is refused.
    let err = SocketStream::connect_tcp(addr).await.unwrap_err();
    let io = err.find::<io::Error>().unwrap();
    assert_eq!(io.raw_os_error(), Some(libc::ECONNREFUSED));
    Ok(())
}

#[trio::test]
async fn serve_tcp_without_a_host_serves_both_families_with_the_listen_options() -> trio::Result<()>
{
    let control = ServeControl::new();
    open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                serve_tcp(echo::<SocketStream>, 0)
                    .backlog(64)
                    .configure(|s| s.set_reuse_port(true))
                    .control(&control)
                    .task_status(status)
            })
            .await?;
        assert_eq!(listeners.len(), 2);
        for (l, ip) in listeners.iter().zip([
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            std::net::Ipv4Addr::LOCALHOST.into(),
        ]) {
            assert!(l.socket()?.as_socket2().reuse_port()?);
            let port = l.local_addr()?.as_socket().unwrap().port();
            let c = SocketStream::connect_tcp(SocketAddr::new(ip, port)).await?;
            c.send_all(b"both").await?;
            assert_eq!(receive_exact(&c, 4).await?, b"both");
        }
        control.stop(0.0)?;
        Ok(())
    })
    .await?;
    Ok(())
}

const EMFILE_CHILD_ENV: &str = "TRIO_SERVE_EMFILE_CHILD";
const EMFILE_CLIENTS: usize = 30;

/// The server of `a_real_emfile_...`, in a child process with few fds.
/// Prints `port N`, and `out of fds` at the first EMFILE; serves
/// `EMFILE_CLIENTS` connections (each echoes one
/// message, then waits for end of stream), then prints
/// `served S retries R peak P`.
#[test]
#[ignore = "run as a child process by the test below"]
fn emfile_child() {
    if std::env::var_os(EMFILE_CHILD_ENV).is_none() {
        return;
    }
    // New fds take the lowest free numbers below the limit: leave room
    // for the run's own fds (epoll, its waker), the listener and about a
    // dozen connections. (Fds inherited with higher numbers stay usable
    // and do not count.)
    let open_below_64 = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .filter(|&fd| fd < 64)
        .count() as libc::rlim_t;
    lower_fd_limit(open_below_64 + 16);
    let retries = Cell::new(0);
    let served = Cell::new(0);
    let peak = Cell::new(0);
    let control = ServeControl::new();
    let handler = async |s: &SocketStream| {
        peak.set(peak.get().max(control.active_connections()));
        echo(s).await?;
        served.set(served.get() + 1);
        if served.get() == EMFILE_CLIENTS {
            control.stop(1.0)?;
        }
        Ok(())
    };
    // Bounded, so that a broken server fails the test instead of hanging it.
    trio::run(trio::fail_after(60.0, async {
        open_nursery(async |nursery| {
            let listeners = nursery
                .start(|status| {
                    serve_tcp(handler, 0)
                        .host("127.0.0.1")
                        .control(&control)
                        .log(|e| {
                            if let ServeEvent::AcceptRetry { errno, .. } = e {
                                assert_eq!(*errno, "EMFILE");
                                retries.set(retries.get() + 1);
                                if retries.get() == 1 {
                                    println!("\nout of fds");
                                    let _ = std::io::stdout().flush();
                                }
                            }
                            eprintln!("child: {e}");
                        })
                        .task_status(status)
                })
                .await?;
            let port = listeners[0].local_addr()?.as_socket().unwrap().port();
            println!("port {port}");
            std::io::stdout().flush()?;
            Ok(())
        })
        .await?;
        Ok(())
    }))
    .unwrap();
    println!(
        "served {} retries {} peak {}",
        served.get(),
        retries.get(),
        peak.get()
    );
}

#[test]
fn a_real_emfile_makes_connections_wait_then_they_are_served() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "emfile_child",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut port = None;
    let mut line = String::new();
    while port.is_none() && out.read_line(&mut line).unwrap() > 0 {
        // libtest's "test emfile_child ... " may begin the line.
        port = line
            .rsplit_once("port ")
            .map(|(_, p)| p.trim().parse::<u16>().unwrap());
        line.clear();
    }
    let port = port.expect("the child printed no port");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // More clients than the child has fds for: the kernel queues them all
    // (the backlog), the child accepts what it can, then gets EMFILE.
    let mut clients = Vec::new();
    for i in 0..EMFILE_CLIENTS {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        c.write_all(format!("client {i:02}").as_bytes()).unwrap();
        clients.push(c);
    }
    // Holding them all open, the child runs out of fds: wait for that.
    while !line.contains("out of fds") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child ended");
    }
    // Then in order: the first ones were echoed at once; each close frees
    // an fd in the child, whose next retry accepts one more waiting client.
    for (i, mut c) in clients.into_iter().enumerate() {
        let mut buf = [0; 9];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(buf, format!("client {i:02}").as_bytes());
        drop(c);
    }
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "child failed: {status:?}\n{err}");
    let summary = rest
        .lines()
        .find_map(|l| l.split_once("served ").map(|(_, s)| s))
        .unwrap_or_else(|| panic!("no summary in {rest:?}\n{err}"));
    let nums: Vec<usize> = summary.split(' ').filter_map(|w| w.parse().ok()).collect();
    let [served, retries, peak] = nums[..] else {
        panic!("bad summary {summary:?}")
    };
    assert_eq!(served, EMFILE_CLIENTS);
    assert!(
        retries > 0,
        "no EMFILE back-off was logged: {summary}\n{err}"
    );
    assert!(
        peak < EMFILE_CLIENTS,
        "the fd limit did not bind: {peak} at once"
    );
    assert!(err.contains("child: accept returned EMFILE ("), "{err}");
}

/// Python clients, in threads, talk to the echo server at once.
const PY_CLIENTS: &str = r#"
import socket, sys, threading
port = int(sys.argv[1])
errors = []
def client(i):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            for j in range(3):
                msg = f"client {i} message {j}".encode()
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    chunk = s.recv(4096)
                    if not chunk:
                        raise RuntimeError("closed early")
                    got += chunk
                assert got == msg, (got, msg)
            s.shutdown(socket.SHUT_WR)
            assert s.recv(10) == b""
    except Exception as e:
        errors.append(f"client {i}: {e!r}")
threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
for t in threads: t.start()
for t in threads: t.join()
print("\n".join(errors) or "all ok")
sys.exit(1 if errors else 0)
"#;

#[trio::test]
async fn the_echo_server_answers_python_clients() -> trio::Result<()> {
    let Some(mut py) = python() else {
        eprintln!("python3 not found: skipped");
        return Ok(());
    };
    let control = ServeControl::new();
    open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                serve_tcp(echo::<SocketStream>, 0)
                    .host("127.0.0.1")
                    .control(&control)
                    .task_status(status)
            })
            .await?;
        let port = listeners[0].local_addr()?.as_socket().unwrap().port();
        py.arg("-c").arg(PY_CLIENTS).arg(port.to_string());
        let out = trio::to_thread::run_sync(move || py.output()).await??;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), "all ok");
        control.stop(1.0)?;
        Ok(())
    })
    .await?;
    Ok(())
}
