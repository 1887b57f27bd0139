//! Running one server process against one load-generator process, and
//! sampling the server's (and the client's) CPU time around the measured
//! window.
//!
//! The server is started first (optionally under callgrind or strace),
//! prints its port; the client connects, warms up and says `ready`; the
//! CPU times are read; the client is let go and reports `done ELAPSED_NS
//! UNITS`; the CPU times are read again. Both processes must then exit on
//! their own (the server once its connections have closed); any failure
//! kills and reaps both ([`Reap`]), so that no run leaves a process behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Bulk, PingPong};
use crate::servers::Kind;
use crate::{Options, cpu, parse_num};

/// How long to wait for a process to exit once its work is done (callgrind
/// writes its totals then).
const EXIT_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
pub enum Job {
    PingPong(PingPong),
    Bulk(Bulk),
}

/// What the server process runs under.
#[derive(Clone, Debug)]
pub enum Wrapper {
    None,
    /// Callgrind writing its profile to the file (or /dev/null).
    Callgrind(PathBuf),
    Strace(PathBuf),
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub elapsed_ns: u64,
    /// Messages (ping-pong) or bytes (bulk) in the measured window.
    pub units: u64,
    /// Server CPU over the window (0 under a wrapper: not meaningful).
    pub server_cpu_ns: u64,
    /// The load generator's CPU over the window (0 under a wrapper).
    pub client_cpu_ns: u64,
    /// Times the server's threads went to sleep over the window
    /// (voluntary context switches; 0 under a wrapper).
    pub server_sleeps: u64,
    pub server_stderr: String,
}

/// Kills and reaps a child unless it was waited for.
pub struct Reap(Option<Child>);

impl Reap {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().expect("child already reaped")
    }

    /// Waits at most `limit` for the child to exit on its own.
    fn wait_for(&mut self, limit: Duration) -> Result<std::process::ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.get().try_wait() {
                Ok(Some(status)) => {
                    self.0 = None;
                    return Ok(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Ok(None) => return Err(format!("did not exit within {limit:?}")),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn read_line(out: &mut BufReader<ChildStdout>, who: &str) -> Result<String, String> {
    let mut line = String::new();
    match out.read_line(&mut line) {
        Ok(0) => Err(format!("{who} exited early")),
        Ok(_) => Ok(line.trim_end().to_string()),
        Err(e) => Err(format!("{who}: {e}")),
    }
}

pub fn run_once(
    exe: &Path,
    opts: &Options,
    kind: Kind,
    job: Job,
    wrapper: &Wrapper,
) -> Result<Outcome, String> {
    let conns = match job {
        Job::PingPong(p) => p.conns,
        Job::Bulk(_) => 1,
    };
    let mut cmd = match wrapper {
        Wrapper::None => Command::new(exe),
        Wrapper::Callgrind(out) => {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(exe);
            c
        }
        Wrapper::Strace(out) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-c", "-o"]).arg(out).arg(exe);
            c
        }
    };
    cmd.args(["server", kind.name(), &conns.to_string()]);
    // A server on every core is never pinned to one.
    if let Some(cpu) = opts.server_cpu.filter(|_| !kind.is_multicore()) {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    if let Some(nice) = opts.nice {
        cmd.args(["--nice", &nice.to_string()]);
    }
    // The server's stdin is closed once the window's CPU time is read: the
    // multi-core servers keep their threads until then (a thread that
    // exits takes its CPU time out of `/proc/PID/task`; see `multicore`).
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the server ({cmd:?}): {e}"))?;
    let mut server = Reap(Some(child));
    let mut server_in = server.get().stdin.take();
    let server_pid = server.get().id();
    let mut server_err = server.get().stderr.take().expect("piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = server_err.read_to_string(&mut s);
        s
    });
    let mut server_out = BufReader::new(server.get().stdout.take().expect("piped"));
    let result = (|| {
        let line = read_line(&mut server_out, "the server")?;
        let port: u16 = line
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("server said `{line}`, not `port N`"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
        let mut cmd = Command::new(exe);
        match job {
            Job::PingPong(p) => cmd.args([
                "client",
                &addr,
                &p.conns.to_string(),
                &p.size.to_string(),
                &p.warmup.to_string(),
                &p.msgs.to_string(),
            ]),
            Job::Bulk(b) => cmd.args(["bulk", &addr, &b.warmup.to_string(), &b.bytes.to_string()]),
        };
        if let Some(cpu) = opts.client_cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        if let Some(nice) = opts.nice {
            cmd.args(["--nice", &nice.to_string()]);
        }
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the client: {e}"))?;
        let mut client = Reap(Some(child));
        let mut client_out = BufReader::new(client.get().stdout.take().expect("piped"));
        let line = read_line(&mut client_out, "the client")?;
        if line != "ready" {
            return Err(format!("client said `{line}`, not `ready`"));
        }
        let measure = matches!(wrapper, Wrapper::None);
        let client_pid = client.get().id();
        let sample = || -> Result<(u64, u64, u64), String> {
            if !measure {
                return Ok((0, 0, 0));
            }
            let server = cpu::process_cpu_ns(server_pid);
            let client = cpu::process_cpu_ns(client_pid);
            let sleeps = cpu::process_sleeps(server_pid);
            Ok((
                server.map_err(|e| format!("server CPU time: {e}"))?,
                client.map_err(|e| format!("client CPU time: {e}"))?,
                sleeps.map_err(|e| format!("server sleeps: {e}"))?,
            ))
        };
        let cpu_before = sample()?;
        let mut stdin = client.get().stdin.take().expect("piped");
        writeln!(stdin, "go").map_err(|e| format!("client stdin: {e}"))?;
        drop(stdin);
        let line = read_line(&mut client_out, "the client")?;
        let cpu_after = sample()?;
        drop(server_in.take());
        let (elapsed_ns, units) = parse_done(&line)?;
        let status = client
            .wait_for(EXIT_LIMIT)
            .map_err(|e| format!("client: {e}"))?;
        if !status.success() {
            return Err(format!("client failed: {status}"));
        }
        let server_cpu = cpu_after.0.saturating_sub(cpu_before.0);
        let client_cpu = cpu_after.1.saturating_sub(cpu_before.1);
        let server_sleeps = cpu_after.2.saturating_sub(cpu_before.2);
        Ok((elapsed_ns, units, server_cpu, client_cpu, server_sleeps))
    })();
    // On success the server exits by itself; on failure, Reap kills it.
    let result = result.and_then(|r| {
        let status = server
            .wait_for(EXIT_LIMIT)
            .map_err(|e| format!("server: {e}"))?;
        if !status.success() {
            return Err(format!("server failed: {status}"));
        }
        Ok(r)
    });
    drop(server_in);
    drop(server);
    let server_stderr = stderr_reader.join().unwrap_or_default();
    let (elapsed_ns, units, server_cpu_ns, client_cpu_ns, server_sleeps) = result.map_err(|e| {
        format!(
            "{} server, {job:?}: {e}\nserver stderr:\n{server_stderr}",
            kind.name()
        )
    })?;
    Ok(Outcome {
        elapsed_ns,
        units,
        server_cpu_ns,
        client_cpu_ns,
        server_sleeps,
        server_stderr,
    })
}

pub fn parse_done(line: &str) -> Result<(u64, u64), String> {
    let mut f = line.split_whitespace();
    match (f.next(), f.next(), f.next()) {
        (Some("done"), Some(ns), Some(units)) => {
            Ok((parse_num(ns, "elapsed")?, parse_num(units, "units")?))
        }
        _ => Err(format!("client said `{line}`, not `done NS UNITS`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_done_line() {
        assert_eq!(parse_done("done 1500 64"), Ok((1500, 64)));
        assert!(parse_done("ready").is_err());
    }
}
