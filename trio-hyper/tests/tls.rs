//! HTTPS: `curl --cacert` (`--http1.1`, then `--http2`: ALPN offers h2
//! and http/1.1) against `Http::serve_connection` over
//! `trio_tls::serve_tls_over_tcp`, and the trio client (HTTP/1.1) over
//! `open_tls_over_tcp_stream`.
//!
//! curl is another process: real clock, `--max-time`. Skipped with a note
//! when curl is absent, unless TRIO_REQUIRE_TOOLS=1 (then it fails).

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::process::Command;
use std::sync::Arc;
use trio::net::OnHandlerError;
use trio_hyper::{Http, http1_handshake, read_body};
use trio_tls::rustls::{self, pki_types};
use trio_tls::{open_tls_over_tcp_stream, serve_tls_over_tcp};

fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("TRIO_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{tool} is required (TRIO_REQUIRE_TOOLS=1) but is not installed");
        }
        eprintln!("note: {tool} is not installed: skipping this test");
    }
    found
}

/// A self-signed certificate for "localhost" as (server config, client
/// config, PEM).
fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let der = pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(server), Arc::new(client), cert.pem())
}

async fn hello(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(format!("hello {}\n", req.uri().path())))
}

#[test]
fn curl_and_the_trio_client_fetch_over_https() {
    let (server_config, client_config, pem) = configs();
    let dir = std::env::temp_dir().join(format!("trio-hyper-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let curl = have_tool("curl");
    let (curl_out, ours) = trio::run(async move {
        let http = Http::new();
        let service = service_fn(hello);
        let got = trio::open_nursery(async |nursery| {
            let listeners = nursery
                .start(|status| {
                    serve_tls_over_tcp(
                        async |tls: &_| http.serve_connection(tls, &service).await,
                        0,
                        server_config,
                    )
                    .host("127.0.0.1")
                    .serve_options(|s| s.on_handler_error(OnHandlerError::LogAndContinue))
                    .task_status(status)
                })
                .await?;
            let port = listeners[0]
                .listener()
                .local_addr()?
                .as_socket()
                .unwrap()
                .port();
            let mut curl_out = Vec::new();
            for version in ["--http1.1", "--http2"] {
                if !curl {
                    break;
                }
                let ca = ca.clone();
                curl_out.push(
                    trio::to_thread::run_sync(move || {
                        Command::new("curl")
                            .args(["-sS", version, "--max-time", "30", "--cacert"])
                            .arg(&ca)
                            .arg("--resolve")
                            .arg(format!("localhost:{port}:127.0.0.1"))
                            .args(["-w", "[%{http_version} %{response_code}]\n"])
                            .arg(format!("https://localhost:{port}/curl"))
                            .output()
                            .unwrap()
                    })
                    .await?,
                );
            }
            let ours = trio::fail_after(30.0, async {
                let tls = open_tls_over_tcp_stream("localhost", port, client_config).await?;
                let body = trio::open_nursery(async |conn| {
                    let mut send = http1_handshake::<_, String>(&conn, &tls).await?;
                    let req = Request::get("/trio")
                        .header("host", "localhost")
                        .body(String::new())
                        .unwrap();
                    let resp = send
                        .send_request(req)
                        .await
                        .map_err(trio_hyper::from_hyper)?;
                    drop(send);
                    read_body(resp.into_body()).await
                })
                .await?;
                assert_eq!(tls.negotiated_alpn()?, Some(b"http/1.1".to_vec()));
                Ok(body.unwrap())
            })
            .await?;
            nursery.cancel_scope().cancel();
            Ok((curl_out, ours))
        })
        .await?;
        Ok(got.unwrap())
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(ours, b"hello /trio\n");
    // ALPN chose http/1.1, then h2; the server saw the preface or not.
    let want = ["hello /curl\n[1.1 200]\n", "hello /curl\n[2 200]\n"];
    for (out, want) in curl_out.iter().zip(want) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "curl failed: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}

/// A self-signed certificate for "localhost": (cert PEM, key PEM, client
/// config trusting it, with no ALPN list of its own).
fn client_trusting_new_cert() -> (
    String,
    String,
    Arc<rustls::ClientConfig>,
    rustls::ServerConfig,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let der = pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .unwrap();
    (cert.pem(), key.serialize_pem(), Arc::new(client), server)
}

/// Answers the request's HTTP version and path.
async fn version(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(format!(
        "{:?} {}\n",
        req.version(),
        req.uri().path()
    )))
}

/// `get_tls` against our server over TLS, once per server ALPN list: h2
/// when the server offers it (HTTP/2 over TLS through `http2_handshake`),
/// else HTTP/1.1; and a certificate the client does not trust.
#[test]
fn get_tls_speaks_h2_or_http11_as_alpn_chooses() {
    let (_, _, client, server) = client_trusting_new_cert();
    let got = trio::run(async move {
        let mut got = Vec::new();
        for alpn in [vec![b"h2".to_vec(), b"http/1.1".to_vec()], vec![]] {
            let mut server = server.clone();
            server.alpn_protocols = alpn;
            let server = Arc::new(server);
            let service = service_fn(version);
            let http = Http::new();
            let outcome = trio::open_nursery(async |nursery| {
                let listeners = nursery
                    .start(|status| {
                        serve_tls_over_tcp(
                            async |tls: &_| http.serve_connection(tls, &service).await,
                            0,
                            server,
                        )
                        .host("127.0.0.1")
                        .serve_options(|s| s.on_handler_error(OnHandlerError::LogAndContinue))
                        .task_status(status)
                    })
                    .await?;
                let port = listeners[0]
                    .listener()
                    .local_addr()?
                    .as_socket()
                    .unwrap()
                    .port();
                let url = format!("https://localhost:{port}/x");
                let resp =
                    trio::fail_after(30.0, trio_hyper::get_tls(&url, client.clone())).await?;
                nursery.cancel_scope().cancel();
                Ok((
                    resp.version(),
                    resp.status().as_u16(),
                    String::from_utf8_lossy(resp.body()).into_owned(),
                ))
            })
            .await?;
            got.push(outcome.unwrap());
        }
        Ok(got)
    })
    .unwrap();
    assert_eq!(
        got,
        vec![
            (hyper::Version::HTTP_2, 200, "HTTP/2.0 /x\n".to_string()),
            (hyper::Version::HTTP_11, 200, "HTTP/1.1 /x\n".to_string()),
        ]
    );
}

#[test]
fn get_tls_refuses_a_certificate_it_does_not_trust_and_non_https_urls() {
    let (_, _, _, server) = client_trusting_new_cert();
    let (_, _, other_client, _) = client_trusting_new_cert();
    let server = Arc::new(server);
    let kinds = trio::run(async move {
        let service = service_fn(version);
        let http = Http::new();
        let got = trio::open_nursery(async |nursery| {
            let listeners = nursery
                .start(|status| {
                    serve_tls_over_tcp(
                        async |tls: &_| http.serve_connection(tls, &service).await,
                        0,
                        server,
                    )
                    .host("127.0.0.1")
                    .serve_options(|s| s.on_handler_error(OnHandlerError::LogAndContinue))
                    .task_status(status)
                })
                .await?;
            let port = listeners[0]
                .listener()
                .local_addr()?
                .as_socket()
                .unwrap()
                .port();
            let url = format!("https://localhost:{port}/");
            let untrusted = trio::fail_after(30.0, trio_hyper::get_tls(&url, other_client.clone()))
                .await
                .unwrap_err();
            let plain = trio_hyper::get_tls(&format!("http://localhost:{port}/"), other_client)
                .await
                .unwrap_err();
            nursery.cancel_scope().cancel();
            Ok((untrusted.kind(), plain.kind()))
        })
        .await?;
        Ok(got.unwrap())
    })
    .unwrap();
    assert_eq!(kinds.1, trio::ErrorKind::InvalidArgument);
    assert_ne!(kinds.0, trio::ErrorKind::TooSlow);
    assert_ne!(kinds.0, trio::ErrorKind::InvalidArgument);
}

/// Python's `http.server` behind Python's `ssl` (HTTP/1.1 only: no ALPN
/// h2), serving one file; it prints its port.
const PY_HTTPS: &str = r#"
import http.server, ssl, sys, os
os.chdir(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

#[test]
fn get_tls_fetches_from_python_https_server() {
    if !have_tool("python3") {
        return;
    }
    let (cert, key, client, _) = client_trusting_new_cert();
    let dir = std::env::temp_dir().join(format!("trio-hyper-pyhttps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello over python ssl\n").unwrap();
    let mut child = Command::new("python3")
        .args(["-u", "-c", PY_HTTPS])
        .arg(&dir)
        .arg(dir.join("cert.pem"))
        .arg(dir.join("key.pem"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let got = line.trim().parse::<u16>().map(|port| {
        trio::run(async move {
            let url = format!("https://localhost:{port}/hello.txt");
            let resp = trio::fail_after(30.0, trio_hyper::get_tls(&url, client)).await?;
            Ok((resp.version(), resp.status().as_u16(), resp.into_body()))
        })
    });
    // Our own child, by its id.
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let (version, status, body) = got
        .unwrap_or_else(|_| panic!("no port from python: {line:?}"))
        .unwrap();
    // SimpleHTTPRequestHandler answers as HTTP/1.0 (its default).
    assert_eq!(version, hyper::Version::HTTP_10);
    assert_eq!(status, 200);
    assert_eq!(body, b"hello over python ssl\n");
}
