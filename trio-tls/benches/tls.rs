//! trio-tls vs tokio-rustls on tokio `current_thread`, over loopback
//! (issue 15): full TLS 1.3 handshakes per second, and bulk MB/s, with the
//! **server's CPU time per operation** beside them (the figure that does
//! not depend on who is the bottleneck; shared/BENCHMARKING.md).
//!
//! Method:
//! - The server runs on a thread of its own: a trio run (`TlsListener`
//!   over a TCP listener, one task per connection) or a tokio
//!   `current_thread` runtime (`TlsAcceptor`, one task per connection). It
//!   reads its own thread's run time from `/proc/thread-self/schedstat`
//!   (nanoseconds on the CPU) before and after the work.
//! - The load generator is the same for both: tokio `current_thread` +
//!   tokio-rustls on another thread.
//! - Handshakes: `conns` concurrent client loops, each: connect, full
//!   handshake (client resumption disabled), 1-byte echo, close_notify
//!   both ways, close. Bulk: one connection, the client sends `mib` MiB
//!   in 64 KiB writes, the server reads it all (64 KiB buffer), answers 1
//!   byte, both close.
//! - Same rustls (ring provider), same certificate (ECDSA P-256, rcgen),
//!   same configs. Rounds alternate which runtime goes first; the table
//!   shows medians and the min–max spread.
//!
//! `cargo bench -p trio-tls --bench tls -- [--rounds N] [--handshakes N]
//! [--conns N] [--mib N]`

use std::io;
use std::sync::{Arc, mpsc};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trio::stream::{AsyncResource, ReceiveStream, SendStream};
use trio_tls::TlsListener;
use trio_tls::rustls::{self, pki_types};

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Copy, Debug)]
enum Work {
    Handshakes { count: usize, conns: usize },
    Bulk { bytes: usize },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Runtime {
    Trio,
    Tokio,
}

fn configs() -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    let key = pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .unwrap();
    (Arc::new(client), Arc::new(server))
}

// ----- servers: each returns its thread's CPU nanoseconds for the work ------------

fn trio_server(work: Work, config: Arc<rustls::ServerConfig>, port: mpsc::Sender<u16>) -> u64 {
    trio::run(async move {
        let listeners = trio::open_tcp_listeners(0, Some("127.0.0.1")).await?;
        let addr = listeners[0].local_addr()?.as_socket().unwrap();
        let listener = TlsListener::new(listeners.into_iter().next().unwrap(), config);
        port.send(addr.port()).unwrap();
        use trio::stream::Listener;
        let start = thread_cpu_ns();
        match work {
            Work::Handshakes { count, .. } => {
                trio::open_nursery(async |n| {
                    for _ in 0..count {
                        let s = listener.accept().await?;
                        n.start_soon(async move {
                            let mut b = [0; 16];
                            let k = s.receive_some(&mut b).await?;
                            s.send_all(&b[..k]).await?;
                            while s.receive_some(&mut b).await? > 0 {}
                            s.aclose().await
                        });
                    }
                    Ok(())
                })
                .await?;
            }
            Work::Bulk { bytes } => {
                let s = listener.accept().await?;
                let mut buf = vec![0; 64 * 1024];
                let mut got = 0;
                while got < bytes {
                    let n = s.receive_some(&mut buf).await?;
                    assert_ne!(n, 0);
                    got += n;
                }
                s.send_all(b"k").await?;
                while s.receive_some(&mut buf).await? > 0 {}
                s.aclose().await?;
            }
        }
        Ok(thread_cpu_ns() - start)
    })
    .unwrap()
}

fn tokio_server(work: Work, config: Arc<rustls::ServerConfig>, port: mpsc::Sender<u16>) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        port.send(l.local_addr().unwrap().port()).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let start = thread_cpu_ns();
        match work {
            Work::Handshakes { count, .. } => {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..count {
                    let (tcp, _) = l.accept().await.unwrap();
                    tcp.set_nodelay(true).unwrap();
                    let acceptor = acceptor.clone();
                    set.spawn(async move {
                        let mut s = acceptor.accept(tcp).await?;
                        let mut b = [0; 16];
                        let k = s.read(&mut b).await?;
                        s.write_all(&b[..k]).await?;
                        read_to_end(&mut s).await?;
                        s.shutdown().await
                    });
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap().unwrap();
                }
            }
            Work::Bulk { bytes } => {
                let (tcp, _) = l.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                let mut s = acceptor.accept(tcp).await.unwrap();
                let mut buf = vec![0; 64 * 1024];
                let mut got = 0;
                while got < bytes {
                    let n = s.read(&mut buf).await.unwrap();
                    assert_ne!(n, 0);
                    got += n;
                }
                s.write_all(b"k").await.unwrap();
                read_to_end(&mut s).await.unwrap();
                s.shutdown().await.unwrap();
            }
        }
        thread_cpu_ns() - start
    })
}

/// Reads until close_notify (tokio-rustls: `Ok(0)`); a ragged end counts.
async fn read_to_end<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> io::Result<()> {
    let mut b = [0; 256];
    loop {
        match s.read(&mut b).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

// ----- the load generator: tokio current_thread + tokio-rustls ---------------------

fn client(work: Work, port: u16, config: Arc<rustls::ClientConfig>) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async move {
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = pki_types::ServerName::try_from("localhost").unwrap();
        let t0 = Instant::now();
        match work {
            Work::Handshakes { count, conns } => {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..conns {
                    let per = count / conns + usize::from(i < count % conns);
                    let (connector, name) = (connector.clone(), name.clone());
                    set.spawn(async move {
                        for _ in 0..per {
                            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                            tcp.set_nodelay(true)?;
                            let mut s = connector.connect(name.clone(), tcp).await?;
                            s.write_all(b"x").await?;
                            let mut b = [0; 1];
                            s.read_exact(&mut b).await?;
                            s.shutdown().await?;
                            read_to_end(&mut s).await?;
                        }
                        io::Result::Ok(())
                    });
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap().unwrap();
                }
            }
            Work::Bulk { bytes } => {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                tcp.set_nodelay(true).unwrap();
                let mut s = connector.connect(name, tcp).await.unwrap();
                let chunk: Vec<u8> = (0..64 * 1024).map(|i| i as u8).collect();
                let mut sent = 0;
                while sent < bytes {
                    let k = chunk.len().min(bytes - sent);
                    s.write_all(&chunk[..k]).await.unwrap();
                    sent += k;
                }
                s.flush().await.unwrap();
                let mut b = [0; 1];
                s.read_exact(&mut b).await.unwrap();
                s.shutdown().await.unwrap();
                read_to_end(&mut s).await.unwrap();
            }
        }
        t0.elapsed().as_secs_f64()
    })
}

/// One measurement: (wall seconds at the client, server CPU ns).
fn measure(
    rt: Runtime,
    work: Work,
    configs: &(Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>),
) -> (f64, u64) {
    let (tx, rx) = mpsc::channel();
    let server_config = configs.1.clone();
    // Named, so that a profiler can tell the servers apart (`perf report --comm`).
    let name = if rt == Runtime::Trio {
        "srv-trio"
    } else {
        "srv-tokio"
    };
    let server = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || match rt {
            Runtime::Trio => trio_server(work, server_config, tx),
            Runtime::Tokio => tokio_server(work, server_config, tx),
        })
        .unwrap();
    let port = rx.recv().unwrap();
    let wall = client(work, port, configs.0.clone());
    let cpu = server.join().unwrap();
    (wall, cpu)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = arg(&args, "--rounds", 5);
    let handshakes = arg(&args, "--handshakes", 2000);
    let conns = arg(&args, "--conns", 8);
    let mib = arg(&args, "--mib", 256);
    let configs = configs();
    let works = [
        (
            "handshakes",
            Work::Handshakes {
                count: handshakes,
                conns,
            },
        ),
        ("bulk", Work::Bulk { bytes: mib << 20 }),
    ];
    println!(
        "trio-tls vs tokio-rustls (tokio current_thread), loopback, TLS 1.3, {rounds} rounds; \
         handshakes: {handshakes} over {conns} concurrent client loops; bulk: {mib} MiB"
    );
    println!(
        "{:<11} {:<6} {:>22} {:>30}",
        "workload", "server", "rate median [min-max]", "server CPU/op median [min-max]"
    );
    for (label, work) in works {
        let mut rate = [Vec::new(), Vec::new()];
        let mut cpu = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [Runtime::Trio, Runtime::Tokio]
            } else {
                [Runtime::Tokio, Runtime::Trio]
            };
            for rt in order {
                let (wall, ns) = measure(rt, work, &configs);
                let i = usize::from(rt == Runtime::Tokio);
                match work {
                    Work::Handshakes { count, .. } => {
                        rate[i].push(count as f64 / wall);
                        cpu[i].push(ns as f64 / count as f64 / 1000.0);
                    }
                    Work::Bulk { bytes } => {
                        let mb = bytes as f64 / 1e6;
                        rate[i].push(mb / wall);
                        cpu[i].push(ns as f64 / (bytes as f64 / (1 << 20) as f64) / 1000.0);
                    }
                }
            }
        }
        let (rate_unit, cpu_unit) = match work {
            Work::Handshakes { .. } => ("hs/s", "us/handshake"),
            Work::Bulk { .. } => ("MB/s", "us/MiB"),
        };
        for (i, name) in ["trio", "tokio"].iter().enumerate() {
            let (rmin, rmax) = min_max(&rate[i]);
            let (cmin, cmax) = min_max(&cpu[i]);
            println!(
                "{:<11} {:<6} {:>9.0} [{:.0}-{:.0}] {rate_unit:<5} {:>8.1} [{:.1}-{:.1}] {cpu_unit}",
                label,
                name,
                median(&mut rate[i]),
                rmin,
                rmax,
                median(&mut cpu[i]),
                cmin,
                cmax
            );
        }
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}
