//! Real peers this project did not write, over real TCP: `curl` and
//! Python's `http.client` against a trio-hyper server, and the trio
//! client against Python's `http.server`.
//!
//! Skipped with a note when a tool is absent, unless TRIO_REQUIRE_TOOLS=1
//! (then they fail). The peers are other processes: these tests use the
//! real clock, and every peer runs under its own time limit (`curl
//! --max-time`, socket timeouts) so a broken peer fails instead of hanging.

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use trio_hyper::{Http, serve_http};

/// Whether `tool` is on PATH (see the module docs for the skip rule).
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

/// Answers `<method> <path>` and the request body's length.
async fn describe(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let line = format!("{} {}", req.method(), req.uri().path());
    let body = trio_hyper::read_body(req.into_body())
        .await
        .unwrap_or_default();
    Ok(Response::new(format!("{line} ({} bytes)\n", body.len())))
}

/// Runs a server of `describe` on a free port, runs `peer(port)` in a
/// thread, stops the server, and returns the peer's output.
fn with_server(peer: impl FnOnce(u16) -> std::process::Output + Send + 'static) -> String {
    let out = trio::run(async {
        let service = service_fn(describe);
        let got = trio::open_nursery(async |nursery| {
            let listeners = nursery
                .start(|s| {
                    serve_http(Http::new(), &service, 0)
                        .host("127.0.0.1")
                        .task_status(s)
                })
                .await?;
            let port = listeners[0].local_addr()?.as_socket().unwrap().port();
            let out = trio::to_thread::run_sync(move || peer(port)).await?;
            nursery.cancel_scope().cancel();
            Ok(out)
        })
        .await?;
        Ok(got.unwrap())
    })
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "peer failed: {stderr} (output: {:?})",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn curl_fetches_over_http11_reusing_the_connection() {
    if !have_tool("curl") {
        return;
    }
    let out = with_server(|port| {
        Command::new("curl")
            .args(["-sS", "--http1.1", "--max-time", "30"])
            .args(["-w", "[%{http_version} %{response_code} %{num_connects}]\n"])
            .arg(format!("http://127.0.0.1:{port}/a"))
            .args([
                "--next",
                "-sS",
                "--http1.1",
                "--max-time",
                "30",
                "-d",
                "hello",
            ])
            .args(["-w", "[%{http_version} %{response_code} %{num_connects}]\n"])
            .arg(format!("http://127.0.0.1:{port}/b"))
            .output()
            .unwrap()
    });
    // The second transfer reused the first one's connection: 0 connects.
    assert_eq!(
        out,
        "GET /a (0 bytes)\n[1.1 200 1]\nPOST /b (5 bytes)\n[1.1 200 0]\n"
    );
}

#[test]
fn curl_fetches_over_h2c_with_prior_knowledge() {
    if !have_tool("curl") {
        return;
    }
    // One transfer per curl: curl 7.88's reuse of a prior-knowledge
    // connection for a `--next` transfer fails inside curl ("Error in the
    // HTTP2 framing layer") before it sends anything.
    let out = with_server(|port| {
        Command::new("curl")
            .args([
                "-sS",
                "--http2-prior-knowledge",
                "--max-time",
                "30",
                "-d",
                "hello",
            ])
            .args(["-w", "[%{http_version} %{response_code}]\n"])
            .arg(format!("http://127.0.0.1:{port}/b"))
            .output()
            .unwrap()
    });
    assert_eq!(out, "POST /b (5 bytes)\n[2 200]\n");
}

/// Two requests on one `http.client` connection (keep-alive).
const PY_CLIENT: &str = r#"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.request("GET", "/one")
r = c.getresponse()
print(r.status, r.version, r.read().decode(), end="")
c.request("PUT", "/two", body=b"x" * 100000)
r = c.getresponse()
print(r.status, r.version, r.read().decode(), end="")
"#;

#[test]
fn python_http_client_sends_two_requests_on_one_connection() {
    if !have_tool("python3") {
        return;
    }
    let out = with_server(|port| {
        Command::new("python3")
            .args(["-c", PY_CLIENT, &port.to_string()])
            .output()
            .unwrap()
    });
    assert_eq!(
        out,
        "200 11 GET /one (0 bytes)\n200 11 PUT /two (100000 bytes)\n"
    );
}

/// Kills the child when dropped (also when the test fails).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_trio_client_fetches_from_python_http_server() {
    if !have_tool("python3") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("trio-hyper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from python\n").unwrap();
    let mut child = Child(
        Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // "Serving HTTP on 127.0.0.1 port 12345 (http://127.0.0.1:12345/) ..."
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let (status, body, missing) = trio::run(async move {
        let got = trio::move_on_after(30.0, async {
            let ok = trio_hyper::get(&format!("http://127.0.0.1:{port}/hello.txt")).await?;
            let missing = trio_hyper::get(&format!("http://127.0.0.1:{port}/nope")).await?;
            Ok((
                ok.status().as_u16(),
                ok.into_body(),
                missing.status().as_u16(),
            ))
        })
        .await?;
        Ok(got.expect("python's server answered within 30 s"))
    })
    .unwrap();
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, 200);
    assert_eq!(body, b"hello from python\n");
    assert_eq!(missing, 404);
}
