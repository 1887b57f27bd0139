//! A small tool using files and a subprocess pipeline with a timeout:
//! `cargo run --example file_pipeline`. It needs `tr`, `sort`, `uniq` and
//! `sleep` on the `PATH`, and finishes on its own in about a second.
//!
//! 1. Writes three input files into a fresh temporary directory
//!    ([`trio::Path`]: `create_dir_all`, `write`), concurrently.
//! 2. Lists the directory with `read_dir` (an async stream of entries).
//! 3. Counts the words of each file, all files at once, under
//!    `fail_after(5 s)`, through the pipeline `tr a-z A-Z | sort | uniq -c`:
//!    `tr` and `sort` are started with `open_process`, and a task of ours
//!    carries `tr`'s stdout to `sort`'s stdin (the pipes are trio streams);
//!    `uniq -c` runs with `run_process`, its stdin given as bytes and its
//!    stdout captured.
//! 4. Writes the results into `summary.txt` with a [`trio::fs::File`] and
//!    prints it back.
//! 5. Starts `sleep 10` under `move_on_after(0.5 s)`: the timeout cancels
//!    `run_process`, which sends SIGTERM, waits for the child (up to its
//!    grace period) and reaps it; then the example checks that the pid is
//!    gone from `/proc`.
//!
//! The temporary directory is removed at the end, whatever happened.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use trio::Path;
use trio::process::{Process, RunOptions, open_process, run_process, run_process_started};
use trio::stream::{AsyncResource, ReceiveStream, SendStream};

const INPUTS: [(&str, &str); 3] = [
    ("fruit.txt", "apple banana apple\ncherry banana apple\n"),
    ("colours.txt", "red green red\nblue red green\n"),
    (
        "words.txt",
        "the quick fox\njumps over the lazy dog\nthe end\n",
    ),
];

#[trio::main]
async fn main() -> trio::Result<()> {
    let dir =
        Path::from(std::env::temp_dir()).join(format!("trio-file-pipeline-{}", std::process::id()));
    let result = tool(&dir).await;
    // Clean up whatever happened; a failure to do so is worth a line, not
    // the tool's error.
    if let Err(e) = dir.remove_dir_all().await {
        eprintln!("could not remove {dir}: {e}");
    }
    result
}

async fn tool(dir: &Path) -> trio::Result<()> {
    let start = Instant::now();
    let t = || format!("[{:>5.2}s]", start.elapsed().as_secs_f64());

    // 1. The input files, written concurrently.
    dir.create_dir_all().await?;
    trio::open_nursery(async |nursery| {
        for (name, text) in INPUTS {
            nursery.start_soon(async move { dir.join(name).write(text).await });
        }
        Ok(())
    })
    .await?;
    println!("{} wrote {} files into {dir}", t(), INPUTS.len());

    // 2. List them (sorted: directory order is unspecified).
    let mut inputs = Vec::new();
    let mut entries = dir.read_dir().await?;
    while let Some(entry) = entries.next_entry().await? {
        let path = Path::from(entry.path());
        if path.extension().is_some_and(|e| e == "txt") {
            inputs.push(path);
        }
    }
    inputs.sort();
    println!("{} read_dir found:", t());
    for p in &inputs {
        println!(
            "          {} ({} bytes)",
            p.file_name().unwrap().display(),
            p.metadata().await?.len()
        );
    }

    // 3. One pipeline per file, all at once, with a deadline for the lot.
    let results = RefCell::new(BTreeMap::new());
    trio::fail_after(5.0, async {
        trio::open_nursery(async |nursery| {
            for input in &inputs {
                let results = &results;
                nursery.start_soon(async move {
                    let counts = count_words(input).await?;
                    let name = input.file_name().unwrap().to_string_lossy().into_owned();
                    results.borrow_mut().insert(name, counts);
                    Ok(())
                });
            }
            Ok(())
        })
        .await
    })
    .await?;
    println!(
        "{} counted the words of every file (tr | sort | uniq -c)",
        t()
    );

    // 4. The summary file, written through an open File, then read back.
    let summary = dir.join("summary.txt");
    let out = summary.create().await?;
    for (name, counts) in results.into_inner() {
        out.write_all(format!("== {name}\n{counts}").as_bytes())
            .await?;
    }
    out.aclose().await?;
    println!(
        "{} wrote {}:\n",
        t(),
        summary.file_name().unwrap().display()
    );
    for line in summary.read_to_string().await?.lines() {
        println!("          {line}");
    }
    println!();

    // 5. A slow child and a timeout.
    let pid = Cell::new(None);
    let before = Instant::now();
    let finished = trio::move_on_after(0.5, async {
        trio::open_nursery(async |nursery| {
            let mut sleep = Command::new("sleep");
            sleep.arg("10");
            let options = RunOptions::new().grace_period(Duration::from_secs(2));
            // `start` hands back the Process once it is running; the child
            // task supervises it until it exits or is cancelled.
            let process = nursery
                .start(|status| run_process_started(status, sleep, options))
                .await?;
            pid.set(Some(process.pid()));
            println!(
                "{} started `sleep 10` (pid {}) with a 0.5 s timeout",
                t(),
                process.pid()
            );
            Ok(())
        })
        .await
    })
    .await?;
    let (Some(pid), None) = (pid.get(), finished) else {
        let msg = "sleep 10 did not start, or finished within 0.5 s";
        return Err(trio::Error::new(trio::ErrorKind::Other, msg));
    };
    let gone = !Path::from(format!("/proc/{pid}")).exists().await?;
    println!(
        "{} the timeout cancelled it: terminated and reaped after {:.2} s; pid {pid} gone: {gone}",
        t(),
        before.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `tr a-z A-Z < input | sort | uniq -c`, returning uniq's output.
async fn count_words(input: &Path) -> trio::Result<String> {
    // One word per line, as sort and uniq want.
    let text = input.read_to_string().await?;
    let words: String = text.split_whitespace().map(|w| format!("{w}\n")).collect();

    let tr = open_process(
        Command::new("tr")
            .args(["a-z", "A-Z"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    )?;
    let sort = match open_process(
        Command::new("sort")
            .env("LC_ALL", "C") // the same order in every locale
            .stdin(Stdio::piped())
            .stdout(Stdio::piped()),
    ) {
        Ok(sort) => sort,
        Err(e) => {
            stop(&tr).await;
            return Err(e);
        }
    };
    let sorted = RefCell::new(Vec::new());
    let piped = async {
        trio::open_nursery(async |nursery| {
            // Feed tr, then close its stdin: that is the end of its input.
            nursery.start_soon(async {
                let stdin = tr.stdin.as_ref().unwrap();
                stdin.send_all(words.as_bytes()).await?;
                stdin.aclose().await
            });
            // Carry tr's output to sort, then close sort's stdin.
            nursery.start_soon(async {
                let (from, to) = (tr.stdout.as_ref().unwrap(), sort.stdin.as_ref().unwrap());
                let mut buf = [0; 4096];
                loop {
                    let n = from.receive_some(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    to.send_all(&buf[..n]).await?;
                }
                to.aclose().await
            });
            // Collect sort's output.
            nursery.start_soon(async {
                let from = sort.stdout.as_ref().unwrap();
                let mut buf = [0; 4096];
                loop {
                    let n = from.receive_some(&mut buf).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    sorted.borrow_mut().extend_from_slice(&buf[..n]);
                }
            });
            Ok(())
        })
        .await?;
        // Both children have closed their output; reap them.
        for p in [&tr, &sort] {
            let status = p.wait().await?;
            if !status.success() {
                let msg = format!("pid {} failed: {status}", p.pid());
                return Err(trio::Error::new(trio::ErrorKind::Other, msg));
            }
        }
        Ok(())
    }
    .await;
    // On failure or cancellation, kill them, so that none is left behind.
    if let Err(e) = piped {
        stop(&tr).await;
        stop(&sort).await;
        return Err(e);
    }

    let uniq = run_process(
        Command::new("uniq").arg("-c"),
        RunOptions::new()
            .stdin(sorted.into_inner())
            .capture_stdout(),
    )
    .await?;
    Ok(String::from_utf8_lossy(&uniq.stdout).into_owned())
}

/// Kills `p` and reaps it, even if we are being cancelled.
async fn stop(p: &Process) {
    let _ = p.kill();
    let _ = trio::CancelScope::new()
        .with_shield(true)
        .run(p.wait())
        .await;
}
