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
//!   shows medians and the min–max spread, and the median (and spread) of
//!   the per-round ratio trio/tokio of server CPU per operation.
//!
//! - `--pin`: the server thread on CPU 0 and the load generator on CPU 1
//!   (`--server-cpu N`, `--client-cpu N`), with `taskset -p` on the
//!   threads; timings on the shared 2-core machines are not worth much
//!   unpinned (shared/BENCHMARKING.md).
//!
//! `cargo bench -p trio-tls --bench tls -- [--rounds N] [--handshakes N]
//! [--conns N] [--mib N] [--pin]`
//!
//! # Instruction counts (`--instructions`)
//!
//! Timings here move by tens of percent between runs; instruction counts
//! do not depend on the machine's load. With `--instructions` the server
//! runs in a child process (this binary with `--serve trio|tokio`) under
//! `valgrind --tool=callgrind`, and the load generator natively in this
//! one, so only the server is counted. Each workload runs at two sizes,
//! `n` and `2n` (`--handshakes`, default 100; `--mib`, default 16), and
//!
//! ```text
//! instructions per op = (Ir(2n) - Ir(n)) / n
//! ```
//!
//! is the marginal cost of one more handshake or MiB, with the start-up
//! (process, runtime, listener, first use) subtracted. Under callgrind the
//! server is about 50x slower than the client, so its receives come back
//! full more often than in the timed runs; the same holds for both
//! runtimes. Counts under-weight system calls' kernel time, atomics and
//! cache misses: they back a timing claim, they do not replace it.
//!
//! `cargo bench -p trio-tls --bench tls -- --instructions [--handshakes N]
//! [--mib N]`; with `TLS_BENCH_PROFILE=DIR` in the environment the
//! callgrind profiles are kept in `DIR` (for `callgrind_annotate`).

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

/// A fresh ECDSA P-256 key and its self-signed certificate for "localhost",
/// as DER: (key, certificate).
fn new_identity() -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (key.serialize_der(), cert.der().to_vec())
}

/// The client and server configs (TLS 1.3 only, ring) for one identity.
fn configs(
    (key, cert): &(Vec<u8>, Vec<u8>),
) -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
    let cert = pki_types::CertificateDer::from(cert.clone());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    let key = pki_types::PrivateKeyDer::Pkcs8(key.clone().into());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
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
                        // tokio-rustls may keep written bytes buffered
                        // when the socket would block: flush, or both
                        // sides can end up waiting on each other.
                        s.flush().await?;
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
                s.flush().await.unwrap();
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
                            s.flush().await?;
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

/// Where the server thread and the load generator run in the timing mode.
#[derive(Clone, Copy, Debug)]
struct Pins {
    server: Option<usize>,
    client: Option<usize>,
}

/// Pins the calling thread to `cpu` with `taskset -p` (as `taskset -c`
/// does for a process; no `unsafe` here). The thread id comes from the
/// `/proc/thread-self` link (`/proc/PID/task/TID`).
fn pin_this_thread(cpu: usize) {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = link.file_name().unwrap().to_str().unwrap().to_owned();
    let status = std::process::Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("cannot run taskset");
    assert!(status.success(), "taskset -p -c {cpu} {tid} failed");
}

/// Runs one server (on the calling thread): sends its port, then returns
/// its thread's CPU nanoseconds for the work.
fn serve(
    rt: Runtime,
    work: Work,
    config: Arc<rustls::ServerConfig>,
    port: mpsc::Sender<u16>,
) -> u64 {
    match rt {
        Runtime::Trio => trio_server(work, config, port),
        Runtime::Tokio => tokio_server(work, config, port),
    }
}

/// One measurement: (wall seconds at the client, server CPU ns).
fn measure(
    rt: Runtime,
    work: Work,
    configs: &(Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>),
    pins: Pins,
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
        .spawn(move || {
            if let Some(cpu) = pins.server {
                pin_this_thread(cpu);
            }
            serve(rt, work, server_config, tx)
        })
        .unwrap();
    let port = rx.recv().unwrap();
    let wall = client(work, port, configs.0.clone());
    let cpu = server.join().unwrap();
    (wall, cpu)
}

// ----- the instruction-count mode ------------------------------------------------

/// `--serve RUNTIME` (a child of `--instructions`): runs one server for
/// `work` with the identity of `TLS_BENCH_IDENTITY`, prints `port N`, then
/// `cpu_ns N` when done.
fn serve_child(rt: Runtime, work: Work) {
    let identity = std::env::var("TLS_BENCH_IDENTITY").expect("TLS_BENCH_IDENTITY");
    let (key, cert) = identity.split_once(':').expect("key:cert");
    let configs = configs(&(unhex(key), unhex(cert)));
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || serve(rt, work, configs.1, tx));
    let port = rx.recv().unwrap();
    println!("port {port}");
    io::Write::flush(&mut io::stdout()).unwrap();
    let ns = server.join().unwrap();
    println!("cpu_ns {ns}");
}

/// The instructions a server executes for `work`: the server runs in a
/// child process under `valgrind --tool=callgrind` (only the server is
/// counted; the load generator runs natively in this process), and the
/// total comes from callgrind's `Collected : N` line.
fn count_server(rt: Runtime, work: Work, identity: &(Vec<u8>, Vec<u8>)) -> u64 {
    use io::BufRead;
    let exe = std::env::current_exe().unwrap();
    let (work_arg, n, conns) = match work {
        Work::Handshakes { count, conns } => ("handshakes", count, conns),
        Work::Bulk { bytes } => ("bulk", bytes, 1),
    };
    let rt_arg = if rt == Runtime::Trio { "trio" } else { "tokio" };
    // TLS_BENCH_PROFILE=DIR keeps the profiles (for `callgrind_annotate`).
    let out_file = match std::env::var("TLS_BENCH_PROFILE") {
        Ok(dir) => format!("{dir}/callgrind.{rt_arg}.{work_arg}.{n}"),
        Err(_) => "/dev/null".to_owned(),
    };
    let mut child = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={out_file}"))
        .arg(&exe)
        .args(["--serve", rt_arg, "--work", work_arg])
        .args(["--n", &n.to_string(), "--conns", &conns.to_string()])
        // glibc copies large blocks with `rep movsb`, which callgrind
        // counts as one instruction per byte (the hardware moves 32+ bytes
        // a cycle): that would make every copy look as dear as decryption.
        // The vector loops it uses below the threshold count about right.
        .env(
            "GLIBC_TUNABLES",
            "glibc.cpu.x86_rep_movsb_threshold=4294967295:\
             glibc.cpu.x86_rep_stosb_threshold=4294967295",
        )
        .env(
            "TLS_BENCH_IDENTITY",
            format!("{}:{}", hex(&identity.0), hex(&identity.1)),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run valgrind (is it installed?)");
    let mut out = io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port: u16 = line
        .strip_prefix("port ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the server child said {line:?}"));
    let client_config = configs(identity).0;
    client(work, port, client_config);
    let mut rest = String::new();
    io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the server child failed:\n{stderr}"
    );
    stderr
        .lines()
        .find_map(|l| l.split_once("Collected :")?.1.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `Collected :` line from callgrind:\n{stderr}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// `--instructions`: marginal server instructions per handshake and per
/// MiB: each workload at two sizes (`n` and `2n`), subtracted, so the
/// start-up (process, runtime, listener, first-use costs) cancels out.
fn instructions(handshakes: usize, conns: usize, mib: usize) {
    let identity = new_identity();
    println!(
        "server instructions (callgrind, marginal between two sizes): \
         handshakes {handshakes} vs {} over {conns} client loops; bulk {mib} vs {} MiB",
        2 * handshakes,
        2 * mib
    );
    println!(
        "{:<11} {:>16} {:>16} {:>7}",
        "workload", "trio", "tokio", "ratio"
    );
    for (label, unit, small, large) in [
        (
            "handshakes",
            "Ir/handshake",
            Work::Handshakes {
                count: handshakes,
                conns,
            },
            Work::Handshakes {
                count: 2 * handshakes,
                conns,
            },
        ),
        (
            "bulk",
            "Ir/MiB",
            Work::Bulk { bytes: mib << 20 },
            Work::Bulk {
                bytes: (2 * mib) << 20,
            },
        ),
    ] {
        let ops = match small {
            Work::Handshakes { count, .. } => count,
            Work::Bulk { bytes } => bytes >> 20,
        };
        let mut per_op = [0.0; 2];
        for (i, rt) in [Runtime::Trio, Runtime::Tokio].into_iter().enumerate() {
            eprintln!("callgrind: {label} on {rt:?} ...");
            let a = count_server(rt, small, &identity);
            let b = count_server(rt, large, &identity);
            per_op[i] = (b as f64 - a as f64) / ops as f64;
        }
        println!(
            "{label:<11} {:>16.0} {:>16.0} {:>7.3}  ({unit})",
            per_op[0],
            per_op[1],
            per_op[0] / per_op[1]
        );
    }
}

// ----- main ------------------------------------------------------------------------

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

fn text_arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let conns = arg(&args, "--conns", 8);
    if let Some(rt) = text_arg(&args, "--serve") {
        let rt = match rt {
            "trio" => Runtime::Trio,
            "tokio" => Runtime::Tokio,
            other => panic!("--serve trio|tokio, not {other}"),
        };
        let n = arg(&args, "--n", 0);
        let work = match text_arg(&args, "--work") {
            Some("handshakes") => Work::Handshakes { count: n, conns },
            Some("bulk") => Work::Bulk { bytes: n },
            other => panic!("--work handshakes|bulk, not {other:?}"),
        };
        return serve_child(rt, work);
    }
    if args.iter().any(|a| a == "--instructions") {
        let handshakes = arg(&args, "--handshakes", 100);
        let mib = arg(&args, "--mib", 16);
        return instructions(handshakes, conns, mib);
    }
    let rounds = arg(&args, "--rounds", 5);
    let handshakes = arg(&args, "--handshakes", 2000);
    let mib = arg(&args, "--mib", 256);
    let pins = if args.iter().any(|a| a == "--pin") {
        Pins {
            server: Some(arg(&args, "--server-cpu", 0)),
            client: Some(arg(&args, "--client-cpu", 1)),
        }
    } else {
        Pins {
            server: None,
            client: None,
        }
    };
    if let Some(cpu) = pins.client {
        // The load generator runs on this thread.
        pin_this_thread(cpu);
    }
    let configs = configs(&new_identity());
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
    let pinned = match pins {
        Pins {
            server: Some(s),
            client: Some(c),
        } => format!("server pinned to CPU {s}, client to CPU {c}"),
        _ => "NOT pinned (use --pin)".to_owned(),
    };
    println!(
        "trio-tls vs tokio-rustls (tokio current_thread), loopback, TLS 1.3, {rounds} rounds, \
         {pinned}; handshakes: {handshakes} over {conns} concurrent client loops; bulk: {mib} MiB"
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
                let (wall, ns) = measure(rt, work, &configs, pins);
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
        // Each round measures both runtimes back to back, so the ratio
        // within a round is less exposed to the machine's slow swings
        // than the two medians are.
        let mut ratios: Vec<f64> = cpu[0].iter().zip(&cpu[1]).map(|(t, k)| t / k).collect();
        let (qmin, qmax) = min_max(&ratios);
        let ratio = median(&mut ratios);
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
        println!(
            "{label:<11} trio/tokio server CPU per op, per round: median {ratio:.3} [{qmin:.3}-{qmax:.3}]"
        );
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}
