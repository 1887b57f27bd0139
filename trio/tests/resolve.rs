//! Name resolution (`trio::net::getaddrinfo`): literal addresses take no
//! thread, the system resolver answers in a worker thread under the run's
//! resolver limiter, a cancelled lookup returns at once, a name that does
//! not resolve is a typed error, and the per-run resolver can be swapped.
//!
//! The tests that wait on a worker thread use the real clock: the thread
//! is outside the run. They wait by polling with short sleeps, never for a
//! fixed time.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use trio::net::{
    HostnameResolver, LookupError, ThreadResolver, current_hostname_resolver,
    current_resolver_limiter, getaddrinfo, set_hostname_resolver,
};
use trio::stream::BoxFuture;
use trio::testing::assert_checkpoints;
use trio::{CancelScope, ErrorKind};

/// A blocking lookup that counts its calls and answers 10.0.0.1.
fn counting_resolver() -> (ThreadResolver, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let resolver = ThreadResolver::new(move |_host, port| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(vec![SocketAddr::from(([10, 0, 0, 1], port))])
    });
    (resolver, calls)
}

#[trio::test(autojump)]
async fn literal_addresses_use_no_thread_and_no_resolver() -> trio::Result<()> {
    let (resolver, calls) = counting_resolver();
    set_hostname_resolver(Some(Rc::new(resolver)))?;
    let limiter = current_resolver_limiter()?;
    for (host, want) in [
        ("127.0.0.1", "127.0.0.1:8080"),
        ("::1", "[::1]:8080"),
        ("[::1]", "[::1]:8080"),
        ("fe80::1", "[fe80::1]:8080"),
    ] {
        let addrs = assert_checkpoints(getaddrinfo(host, 8080)).await?;
        assert_eq!(addrs, [want.parse::<SocketAddr>().unwrap()], "{host}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(limiter.borrowed_tokens(), 0);
    // A name does go to the resolver.
    assert_eq!(
        getaddrinfo("db.internal", 1).await?,
        ["10.0.0.1:1".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    Ok(())
}

#[trio::test(autojump)]
async fn a_cancelled_caller_gets_cancelled_before_any_lookup() -> trio::Result<()> {
    let (resolver, calls) = counting_resolver();
    set_hostname_resolver(Some(Rc::new(resolver)))?;
    let scope = CancelScope::new();
    scope.cancel();
    let out = scope
        .run(async {
            for host in ["127.0.0.1", "db.internal"] {
                let err = getaddrinfo(host, 1).await.unwrap_err();
                assert!(err.is_cancelled(), "{host}: {err}");
            }
            Ok(())
        })
        .await?;
    assert_eq!(out, Some(()));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    Ok(())
}

#[trio::test]
async fn the_system_resolver_finds_localhost() -> trio::Result<()> {
    let addrs = getaddrinfo("localhost", 4321).await?;
    assert!(!addrs.is_empty());
    assert!(
        addrs
            .iter()
            .all(|a| a.port() == 4321 && a.ip().is_loopback()),
        "{addrs:?}"
    );
    // The thread has finished and returned its token.
    assert_eq!(current_resolver_limiter()?.borrowed_tokens(), 0);
    Ok(())
}

#[trio::test]
async fn a_name_that_does_not_resolve_is_an_io_error_naming_it() -> trio::Result<()> {
    // `.invalid` is reserved (RFC 2606): it never resolves.
    let err = getaddrinfo("no-such-host.invalid", 80).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let lookup = err.downcast_ref::<LookupError>().unwrap();
    assert_eq!(lookup.host(), "no-such-host.invalid");
    assert_eq!(lookup.port(), 80);
    let message = err.to_string();
    assert!(
        message.starts_with("cannot resolve host \"no-such-host.invalid\": "),
        "{message}"
    );
    // The resolver's own error is the source.
    let source = std::error::Error::source(lookup).unwrap();
    assert_eq!(source.to_string(), lookup.io_error().to_string());
    Ok(())
}

/// Answers every name with one address made from a fixed last byte.
struct Fixed(u8);

impl HostnameResolver for Fixed {
    fn getaddrinfo<'a>(
        &'a self,
        _host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, trio::Result<Vec<SocketAddr>>> {
        Box::pin(async move { Ok(vec![SocketAddr::from(([10, 0, 0, self.0], port))]) })
    }
}

#[trio::test(autojump)]
async fn the_resolver_can_be_swapped_and_restored() -> trio::Result<()> {
    assert!(current_hostname_resolver()?.is_none());
    assert!(set_hostname_resolver(Some(Rc::new(Fixed(1))))?.is_none());
    assert_eq!(getaddrinfo("a", 1).await?[0].ip().to_string(), "10.0.0.1");
    let previous = set_hostname_resolver(Some(Rc::new(Fixed(2))))?.unwrap();
    assert_eq!(getaddrinfo("a", 1).await?[0].ip().to_string(), "10.0.0.2");
    // The previous one is handed back, and can be put back.
    set_hostname_resolver(Some(previous))?;
    assert_eq!(getaddrinfo("a", 1).await?[0].ip().to_string(), "10.0.0.1");
    assert!(set_hostname_resolver(None)?.is_some());
    assert!(current_hostname_resolver()?.is_none());
    Ok(())
}

#[test]
fn the_resolver_is_per_run() {
    trio::run(async {
        set_hostname_resolver(Some(Rc::new(Fixed(1))))?;
        Ok(())
    })
    .unwrap();
    trio::run(async {
        assert!(current_hostname_resolver()?.is_none());
        Ok(())
    })
    .unwrap();
    // Outside a run: an error, not a panic.
    assert_eq!(
        set_hostname_resolver(None).unwrap_err().kind(),
        ErrorKind::Usage
    );
}

/// Polls (real clock) until `done()` holds.
async fn wait_until(mut done: impl FnMut() -> bool) -> trio::Result<()> {
    while !done() {
        trio::sleep(0.001).await?;
    }
    Ok(())
}

// A lookup blocked in its thread: cancelling it returns at once, the
// thread is abandoned (still holding its limiter token until it really
// finishes), and its late answer is dropped.
#[trio::test]
async fn a_cancelled_lookup_returns_at_once_and_drops_the_late_answer() -> trio::Result<()> {
    let started = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let (s, f) = (started.clone(), finished.clone());
    let blocking = ThreadResolver::new(move |_host, port| {
        s.store(true, Ordering::SeqCst);
        // Blocks until the test lets it go (or the test is gone).
        let _ = released.lock().unwrap().recv();
        f.store(true, Ordering::SeqCst);
        Ok(vec![SocketAddr::from(([10, 0, 0, 1], port))])
    });
    set_hostname_resolver(Some(Rc::new(blocking)))?;
    let limiter = current_resolver_limiter()?;

    let scope = CancelScope::new();
    // A bound, not a timing assertion: a lookup that failed to return
    // would otherwise hang the test (the thread waits for `release`).
    let outcome = trio::fail_after(
        30.0,
        trio::open_nursery(async |nursery| {
            nursery
                .start_soon(async { scope.run(getaddrinfo("slow.example", 80)).await.map(drop) });
            wait_until(|| started.load(Ordering::SeqCst)).await?;
            assert_eq!(limiter.borrowed_tokens(), 1);
            scope.cancel();
            Ok(())
        }),
    )
    .await?;
    assert_eq!(outcome, Some(()));
    // The nursery closed, so the lookup has returned, while its thread is
    // still blocked.
    assert!(scope.cancelled_caught());
    assert!(!finished.load(Ordering::SeqCst));
    assert_eq!(limiter.borrowed_tokens(), 1);

    // Let the thread finish: its token comes back; its answer goes nowhere.
    release.send(()).unwrap();
    wait_until(|| limiter.borrowed_tokens() == 0).await?;
    assert!(finished.load(Ordering::SeqCst));
    Ok(())
}

// The limiter bounds concurrent system lookups: with one token, a second
// lookup waits for the first thread to finish.
#[trio::test]
async fn the_resolver_limiter_bounds_concurrent_lookups() -> trio::Result<()> {
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (r, m) = (running.clone(), most.clone());
    let resolver = ThreadResolver::new(move |_host, port| {
        let now = r.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(20));
        r.fetch_sub(1, Ordering::SeqCst);
        Ok(vec![SocketAddr::from(([10, 0, 0, 1], port))])
    });
    set_hostname_resolver(Some(Rc::new(resolver)))?;
    current_resolver_limiter()?.set_total_tokens(1)?;
    trio::open_nursery(async |nursery| {
        for _ in 0..3 {
            nursery.start_soon(async {
                assert_eq!(getaddrinfo("x.example", 1).await?.len(), 1);
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    assert_eq!(most.load(Ordering::SeqCst), 1);
    Ok(())
}
