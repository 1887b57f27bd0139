//! An HTTPS "hello" server and a client fetching from it, in one run:
//!
//! - the server: `trio_tls::serve_tls_over_tcp` (TLS on each accepted
//!   connection), each connection served by `Http::serve_connection`
//!   (HTTP/1.1, ALPN `http/1.1`), with a `ServeControl` for a graceful stop;
//! - the client: `open_tls_over_tcp_stream` + `http1_handshake` (its
//!   connection driver a child task), under `move_on_after`; then the
//!   same in one call, `trio_hyper::get_tls`, under `move_on_after` too;
//! - then a graceful stop, and the program ends on its own.
//!
//! The certificate is self-signed, made at start-up for "localhost".
//!
//! ```text
//! cargo run -p trio-hyper --example hello_https
//! ```

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::sync::Arc;
use trio::lowlevel::cancel_point;
use trio::net::{OnHandlerError, ServeControl};
use trio_hyper::{Http, get_tls, http1_handshake, read_body};
use trio_tls::rustls::{self, pki_types};
use trio_tls::{open_tls_over_tcp_stream, serve_tls_over_tcp};

/// A server and a client config that trust one self-signed certificate.
fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let key = rcgen::KeyPair::generate().expect("key generation");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("valid name")
        .self_signed(&key)
        .expect("self-signing");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .expect("a valid certificate");
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("a valid root");
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(server), Arc::new(client))
}

async fn hello(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(format!(
        "hello over HTTPS, {}\n",
        req.uri().path()
    )))
}

#[trio::main]
async fn main() -> trio::Result<()> {
    let (server_config, client_config) = configs();
    let control = ServeControl::new();
    let http = Http::new().control(&control);
    let service = service_fn(hello);
    trio::open_nursery(async |nursery| {
        let listeners = nursery
            .start(|status| {
                serve_tls_over_tcp(
                    async |tls: &_| http.serve_connection(tls, &service).await,
                    0,
                    server_config,
                )
                .host("127.0.0.1")
                // One client failing its handshake must not stop the server.
                .serve_options(|s| {
                    s.control(&control)
                        .on_handler_error(OnHandlerError::LogAndContinue)
                })
                .task_status(status)
            })
            .await?;
        let port = listeners[0]
            .listener()
            .local_addr()?
            .as_socket()
            .unwrap()
            .port();
        println!("serving https://localhost:{port}/");

        // The client: at most 10 s for the whole fetch.
        let fetched = trio::move_on_after(10.0, async {
            let tls = open_tls_over_tcp_stream("localhost", port, client_config.clone()).await?;
            let tcp_host = format!("localhost:{port}");
            trio::open_nursery(async |conn| {
                let mut send = http1_handshake::<_, String>(&conn, &tls).await?;
                let req = Request::get("/world")
                    .header("host", tcp_host.as_str())
                    .body(String::new())
                    .map_err(|e| {
                        trio::Error::new(trio::ErrorKind::InvalidArgument, e.to_string())
                    })?;
                // hyper's response future waits on its driver, not on
                // trio: `cancel_point` makes the timeout end it.
                let resp = cancel_point(send.send_request(req))
                    .await?
                    .map_err(trio_hyper::from_hyper)?;
                drop(send); // the connection driver ends once the body is read
                let status = resp.status();
                let body = read_body(resp.into_body()).await?;
                Ok((status, String::from_utf8_lossy(&body).into_owned()))
            })
            .await
        })
        .await?;
        match fetched {
            Some(Some((status, body))) => print!("client got {status}: {body}"),
            _ => println!("client gave up after 10 s"),
        }

        // The same fetch in one call: `get_tls` opens a connection (HTTP/2
        // or HTTP/1.1, as ALPN chooses), sends the GET, reads the whole
        // body, and closes. A timeout is a `move_on_after` around it:
        // `None` if the server takes longer (its connection is closed).
        let url = format!("https://localhost:{port}/again");
        match trio::move_on_after(10.0, get_tls(&url, client_config)).await? {
            Some(resp) => print!(
                "get_tls got {}: {}",
                resp.status(),
                String::from_utf8_lossy(resp.body())
            ),
            None => println!("get_tls gave up after 10 s"),
        }

        // Stop gracefully: no new connections, 5 s for running ones.
        control.stop(5.0)?;
        Ok(())
    })
    .await?;
    println!("server stopped");
    Ok(())
}
