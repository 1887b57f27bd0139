//! Cancellation semantics (DESIGN §13, issue 16 item 4), on the MockClock:
//! a scope inside a service, a scope around a connection, and graceful
//! shutdown with a request in flight. The peers are trio tasks of the same
//! run (memory streams, or loopback TCP), so autojump applies.

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use std::cell::RefCell;
use std::rc::Rc;
use trio::ErrorKind;
use trio::net::{ServeControl, ServeEvent};
use trio::sync::Event;
use trio::testing::memory_stream_pair;
use trio_hyper::{Http, http1_handshake, serve_http};

/// `/slow` works 10 s under a 1 s `move_on_after` and answers 503 when it
/// gives up; `/hang` never answers; anything else answers 200 at once.
/// `started` is set when a request reaches the service.
async fn service(
    req: Request<Incoming>,
    started: &Event,
    work: f64,
) -> Result<Response<String>, trio::StdError> {
    started.set();
    let resp = match req.uri().path() {
        "/slow" => match trio::move_on_after(1.0, trio::sleep(work)).await {
            Ok(Some(())) => Response::new("done".to_string()),
            Ok(None) => {
                let mut r = Response::new("gave up".to_string());
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r
            }
            Err(e) => panic!("unexpected {e}"),
        },
        "/hang" => {
            // Only a scope around the connection ends this: its Cancelled
            // goes back through hyper as the service's error, and the
            // connection ends with it.
            trio::sleep_forever().await.map_err(trio::StdError)?;
            unreachable!("sleep_forever returns only Err");
        }
        _ => Response::new("fast".to_string()),
    };
    Ok(resp)
}

fn get(path: &str) -> Request<String> {
    Request::get(path)
        .header("host", "test")
        .body(String::new())
        .unwrap()
}

#[trio::test(autojump)]
async fn a_scope_inside_the_service_answers_503_and_the_connection_goes_on() -> trio::Result<()> {
    let (server_end, client_end) = memory_stream_pair();
    let started = Event::new();
    let svc = service_fn(|req| service(req, &started, 10.0));
    let http = Http::new();
    trio::open_nursery(async |nursery| {
        nursery.start_soon(http.serve_connection(server_end, &svc));
        let mut send = http1_handshake::<_, String>(&nursery, client_end).await?;
        let slow = send.send_request(get("/slow")).await.unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(trio_hyper::read_body(slow.into_body()).await?, b"gave up");
        // The same connection serves the next request.
        let fast = send.send_request(get("/fast")).await.unwrap();
        assert_eq!(fast.status(), StatusCode::OK);
        assert_eq!(trio_hyper::read_body(fast.into_body()).await?, b"fast");
        // Dropping the handle ends the client connection, then the server's.
        drop(send);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_scope_around_a_connection_closes_it_and_comes_out_as_none_or_too_slow()
-> trio::Result<()> {
    for fail in [false, true] {
        let (server_end, client_end) = memory_stream_pair();
        let started = Event::new();
        let svc = service_fn(|req| service(req, &started, 10.0));
        let http = Http::new();
        let outcome = RefCell::new(None);
        trio::open_nursery(async |nursery| {
            nursery.start_soon(async {
                let served = if fail {
                    trio::fail_after(5.0, http.serve_connection(&server_end, &svc))
                        .await
                        .map(Some)
                } else {
                    trio::move_on_after(5.0, http.serve_connection(&server_end, &svc)).await
                };
                // Memory streams do not close when dropped (sockets do).
                trio::stream::aclose_forcefully(&server_end).await?;
                *outcome.borrow_mut() = Some(served);
                Ok(())
            });
            let mut send = http1_handshake::<_, String>(&nursery, client_end).await?;
            let err = send.send_request(get("/hang")).await.unwrap_err();
            // The server closed the connection under the request.
            assert!(err.is_incomplete_message() || err.is_canceled(), "{err:?}");
            Ok(())
        })
        .await?;
        let served = outcome.into_inner().unwrap();
        if fail {
            assert_eq!(served.unwrap_err().kind(), ErrorKind::TooSlow);
        } else {
            assert!(served.unwrap().is_none());
        }
        assert!(started.is_set());
    }
    Ok(())
}

/// A server of `service` under `control`, with its log events kept.
async fn graceful_case(
    work: f64,
    grace: f64,
) -> trio::Result<(Vec<String>, Result<String, String>)> {
    let control = ServeControl::new();
    let started = Event::new();
    let events = Rc::new(RefCell::new(Vec::new()));
    let svc = service_fn(|req| service(req, &started, work));
    let mut got = None;
    trio::open_nursery(async |nursery| {
        let log = events.clone();
        let listeners = nursery
            .start(|s| {
                serve_http(Http::new().control(&control), &svc, 0)
                    .host("127.0.0.1")
                    .log(move |e: &ServeEvent<'_>| log.borrow_mut().push(e.to_string()))
                    .task_status(s)
            })
            .await?;
        let port = listeners[0].local_addr()?.as_socket().unwrap().port();
        let stream = trio::open_tcp_stream("127.0.0.1", port).await?;
        trio::open_nursery(async |client| {
            let mut send = http1_handshake::<_, String>(&client, &stream).await?;
            client.start_soon(async {
                started.wait().await?;
                control.stop(grace)
            });
            got = Some(match send.send_request(get("/slow")).await {
                Ok(resp) => {
                    let close = resp.headers().get("connection").cloned();
                    let body = trio_hyper::read_body(resp.into_body()).await?;
                    Ok(format!(
                        "{} {:?} {}",
                        resp_status(&body),
                        close,
                        String::from_utf8_lossy(&body)
                    ))
                }
                Err(e) => Err(format!("{e}")),
            });
            Ok(())
        })
        .await?;
        // The server returns by itself once its connection has ended: the
        // outer nursery then finishes with no cancel.
        Ok(())
    })
    .await?;
    let events = events.borrow().clone();
    Ok((events, got.unwrap()))
}

fn resp_status(body: &[u8]) -> &'static str {
    if body == b"done" { "200" } else { "other" }
}

#[trio::test(autojump)]
async fn graceful_shutdown_lets_a_request_in_flight_finish_then_closes() -> trio::Result<()> {
    // `/slow` sleeps 0.5 s (within its 1 s scope), the grace is 30 s.
    let (events, got) = graceful_case(0.5, 30.0).await?;
    assert_eq!(got, Ok("200 Some(\"close\") done".to_string()));
    assert!(events.is_empty(), "{events:?}");
    Ok(())
}

#[trio::test(autojump)]
async fn graceful_shutdown_cancels_a_request_still_running_at_the_grace_deadline()
-> trio::Result<()> {
    // `/hang` never answers; the grace is 2 s.
    let control = ServeControl::new();
    let started = Event::new();
    let events = Rc::new(RefCell::new(Vec::new()));
    let svc = service_fn(|req| service(req, &started, 0.0));
    trio::open_nursery(async |nursery| {
        let log = events.clone();
        let listeners = nursery
            .start(|s| {
                serve_http(Http::new().control(&control), &svc, 0)
                    .host("127.0.0.1")
                    .log(move |e: &ServeEvent<'_>| log.borrow_mut().push(e.to_string()))
                    .task_status(s)
            })
            .await?;
        let port = listeners[0].local_addr()?.as_socket().unwrap().port();
        let stream = trio::open_tcp_stream("127.0.0.1", port).await?;
        trio::open_nursery(async |client| {
            let mut send = http1_handshake::<_, String>(&client, &stream).await?;
            client.start_soon(async {
                started.wait().await?;
                control.stop(2.0)
            });
            let t0 = trio::current_time();
            let err = send.send_request(get("/hang")).await.unwrap_err();
            assert!(err.is_incomplete_message() || err.is_canceled(), "{err:?}");
            // Cut at the grace deadline, not before (virtual time).
            assert!(trio::current_time() - t0 >= 2.0);
            Ok(())
        })
        .await?;
        Ok(())
    })
    .await?;
    assert_eq!(
        *events.borrow(),
        vec!["a connection handler was cancelled at the grace deadline".to_string()]
    );
    Ok(())
}

/// HTTP/2: three streams at once on one connection, each handler a child
/// task of the connection's nursery. (hyper's HTTP/2 client over a memory
/// stream, its connection task spawned by `NurseryExecutor`.)
#[trio::test(autojump)]
async fn on_http2_other_streams_go_on_when_one_handler_is_cancelled() -> trio::Result<()> {
    use trio::lowlevel::cancel_point;
    use trio::stream::aclose_forcefully;
    let (server_end, client_end) = memory_stream_pair();
    let client_end = Rc::new(client_end);
    let started = Event::new();
    let svc = service_fn(|req| service(req, &started, 10.0));
    let http = Http::new();
    let done = RefCell::new(Vec::new());
    trio::open_nursery(async |nursery| {
        nursery.start_soon(async {
            http.serve_connection(&server_end, &svc).await?;
            aclose_forcefully(&server_end).await
        });
        let (send, conn) = hyper::client::conn::http2::handshake::<_, _, String>(
            trio_hyper::NurseryExecutor::new(&nursery),
            // hyper's HTTP/2 client wants `'static` I/O: an `Rc`, whose
            // other clone closes it below.
            trio_compat::Io::from_rc(client_end.clone()),
        )
        .await
        .map_err(trio_hyper::from_hyper)?;
        nursery.start_soon(async {
            let _ = conn.await;
            // Memory streams do not close when dropped (sockets do).
            aclose_forcefully(&*client_end).await
        });
        // Three streams at once on one connection: `/slow` is cancelled by
        // the scope inside its handler (503 at 1 s); `/hang` by the client,
        // which gives up at 3 s (the stream is reset, its handler dropped);
        // `/fast` answers at once.
        trio::open_nursery(async |requests| {
            for path in ["/slow", "/fast", "/hang"] {
                let mut send = send.clone();
                let done = &done;
                requests.start_soon(async move {
                    // hyper's response future is foreign: `cancel_point`
                    // lets the scope's cancel reach (and drop) it.
                    let got = trio::move_on_after(3.0, cancel_point(send.send_request(get(path))))
                        .await?;
                    let status = match got {
                        Some(Ok(resp)) => resp.status().as_u16(),
                        Some(Err(e)) => panic!("{path}: {e}"),
                        None => 0, // gave up: the stream is reset
                    };
                    done.borrow_mut().push((path, status));
                    Ok(())
                });
            }
            Ok(())
        })
        .await?;
        // The connection still serves new streams.
        let resp = send.clone().send_request(get("/fast")).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(trio_hyper::read_body(resp.into_body()).await?, b"fast");
        drop(send);
        Ok(())
    })
    .await?;
    assert_eq!(
        done.into_inner(),
        vec![("/fast", 200), ("/slow", 503), ("/hang", 0)]
    );
    Ok(())
}

/// HTTP/2, a scope around the server's connection: the connection ends
/// and `serve_connection` returns `Cancelled` (so `None` from
/// `move_on_after`), even though the h2 crate keeps only the message of
/// the adapters' I/O error; the client's request fails.
#[trio::test(autojump)]
async fn on_http2_a_scope_around_the_connection_comes_out_as_none() -> trio::Result<()> {
    use trio_hyper::{Protocol, http2_handshake};
    let (server_end, client_end) = memory_stream_pair();
    let client_end = Rc::new(client_end);
    let started = Event::new();
    let svc = service_fn(|req| service(req, &started, 10.0));
    let http = Http::new().protocol(Protocol::Http2);
    let outcome = RefCell::new(None);
    trio::open_nursery(async |nursery| {
        nursery.start_soon(async {
            let served = trio::move_on_after(5.0, http.serve_connection(&server_end, &svc)).await;
            trio::stream::aclose_forcefully(&server_end).await?;
            *outcome.borrow_mut() = Some(served.map(|o| o.is_none()));
            Ok(())
        });
        let mut send = http2_handshake::<_, String>(&nursery, client_end.clone()).await?;
        let req = Request::get("http://test/hang")
            .body(String::new())
            .unwrap();
        let err = send.send_request(req).await.unwrap_err();
        assert!(started.is_set());
        drop((send, err));
        trio::stream::aclose_forcefully(&*client_end).await?;
        Ok(())
    })
    .await?;
    // `Ok(true)`: the scope's own cancellation, caught by `move_on_after`.
    assert_eq!(
        outcome.into_inner().unwrap().map_err(|e| e.kind()),
        Ok(true)
    );
    Ok(())
}
