//! Ctrl-C wired to the graceful stop: the `serve_ctrl_c` example as a child
//! process, a real SIGINT (`kill -INT`), and `curl` with a request in
//! flight. Real clock (the peers are other processes), every wait bounded.
//!
//! The example's binary is built by `cargo test -p trio-hyper` (cargo
//! builds a package's examples for its tests); a run limited to this test
//! (`--test ctrl_c`) may not have it: then the test is skipped with a note,
//! unless TRIO_REQUIRE_TOOLS=1 (then it fails), like a missing curl.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// How long any one step may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

fn require(what: &str) {
    if std::env::var("TRIO_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{what} is required (TRIO_REQUIRE_TOOLS=1) but is missing");
    }
    eprintln!("note: {what} is missing: skipping this test");
}

/// The example's binary (target/<profile>/examples/serve_ctrl_c), if built.
fn example() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?; // target/<profile>/deps/.. 
    let path = dir.join("examples").join("serve_ctrl_c");
    if path.exists() {
        return Some(path);
    }
    require(
        "the serve_ctrl_c example (build it: cargo build -p trio-hyper --example serve_ctrl_c)",
    );
    None
}

fn have_curl() -> bool {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        require("curl");
    }
    found
}

/// The server child and its stdout lines.
struct Server {
    child: Child,
    lines: Receiver<String>,
    port: u16,
}

impl Server {
    fn start(exe: &PathBuf) -> Server {
        let mut child = Command::new(exe)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            port: 0,
        };
        let line = server.expect_line("listening on ");
        server.port = line
            .trim_start_matches("listening on http://127.0.0.1:")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|_| panic!("no port in {line:?}"));
        server
    }

    /// Waits for the next line, which must start with `prefix`.
    fn expect_line(&mut self, prefix: &str) -> String {
        match self.lines.recv_timeout(LIMIT) {
            Ok(line) if line.starts_with(prefix) => line,
            Ok(line) => panic!("expected {prefix:?}..., the server said {line:?}"),
            Err(e) => panic!("no line {prefix:?} from the server: {e}"),
        }
    }

    fn sigint(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the server to exit; its exit code.
    fn wait(&mut self) -> Option<i32> {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if t0.elapsed() > LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the server did not exit within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Our own child, by its id; a no-op once it has exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -i` of `path`, running in the background.
fn curl(port: u16, path: &str) -> std::thread::JoinHandle<Output> {
    let url = format!("http://127.0.0.1:{port}{path}");
    std::thread::spawn(move || {
        Command::new("curl")
            .args(["-sS", "-i", "--max-time", "30", &url])
            .output()
            .expect("curl runs")
    })
}

#[test]
fn ctrl_c_lets_a_request_in_flight_finish_then_the_server_exits_0() {
    let (Some(exe), true) = (example(), have_curl()) else {
        return;
    };
    let mut server = Server::start(&exe);
    let slow = curl(server.port, "/slow");
    server.expect_line("request /slow");
    server.sigint();
    server.expect_line("signal 2: stopping gracefully");
    let out = slow.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("HTTP/1.1 200 OK\n"), "{text}");
    assert!(text.contains("\nconnection: close\n"), "{text}");
    assert!(text.ends_with("\n\nhello /slow\n"), "{text}");
    server.expect_line("stopped");
    assert_eq!(server.wait(), Some(0));
}

#[test]
fn a_second_ctrl_c_stops_at_once() {
    let (Some(exe), true) = (example(), have_curl()) else {
        return;
    };
    let mut server = Server::start(&exe);
    let slow = curl(server.port, "/slow");
    server.expect_line("request /slow");
    server.sigint();
    server.expect_line("signal 2: stopping gracefully");
    server.sigint();
    server.expect_line("second signal: stopping now");
    server.expect_line("stopped");
    assert_eq!(server.wait(), Some(0));
    // The request in flight was cut: curl got no answer.
    let out = slow.join().unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
