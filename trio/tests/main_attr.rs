//! `#[trio::main]` as a real `main` (this test target has no harness).
//!
//! Run plainly, it checks the success path by running at all, then runs
//! itself in a child process twice, with `TRIO_MAIN_ATTR_PROBE` set: the
//! failing child must print the error to stderr and exit with status 1, the
//! `()`-returning one must exit with 0.

use std::process::Command;

const PROBE: &str = "TRIO_MAIN_ATTR_PROBE";

#[trio::main]
async fn main() -> trio::Result<()> {
    match std::env::var(PROBE).as_deref() {
        Ok("fail") => {
            trio::checkpoint().await?;
            return Err(trio::Error::new(
                trio::ErrorKind::Other,
                "main failed on purpose",
            ));
        }
        Ok("unit") => {
            unit_main();
            return Ok(());
        }
        _ => {}
    }
    trio::sleep(0.001).await?;

    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(&exe).env(PROBE, "fail").output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("Error: main failed on purpose"),
        "stderr: {stderr}"
    );

    let out = Command::new(&exe).env(PROBE, "unit").output()?;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "unit main ran\n");

    println!("main_attr: 2 passed, 0 failed");
    Ok(())
}

/// A `#[trio::main]` returning `()`, expanded in a module so it does not
/// clash with the real `main`; called as a plain function.
fn unit_main() {
    mod unit {
        #[trio::main]
        pub async fn main() {
            trio::checkpoint().await.unwrap();
            println!("unit main ran");
        }
    }
    // Already inside a run: the generated main's run is refused (nested),
    // so run it on another thread.
    let code = std::thread::spawn(unit::main).join().unwrap();
    assert_eq!(
        format!("{code:?}"),
        format!("{:?}", std::process::ExitCode::SUCCESS)
    );
}
