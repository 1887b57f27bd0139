//! Graceful Ctrl-C: every task is cancelled at its next checkpoint, cleanup
//! (shielded cleanup too) runs, and the program then dies of SIGINT, as Unix
//! programs do (the shell shows status 130).
//!
//! ```text
//! cargo run --example ctrl_c            # interrupts itself after 0.3 s
//! cargo run --example ctrl_c -- wait    # runs until you press Ctrl-C
//! ```
//!
//! Press Ctrl-C twice (the second while the cleanup is still flushing) to
//! end it at once.

use trio::signal::consts::SIGINT;

async fn worker(id: u32) -> trio::Result<()> {
    let mut ticks = 0u64;
    let result = async {
        loop {
            trio::sleep(0.1).await?;
            ticks += 1;
        }
    }
    .await;
    // Cancelled: clean up. A shielded scope lets the cleanup itself wait.
    trio::move_on_after(1.0, async {
        trio::sleep(0.05).await?; // say, flushing a buffer
        println!("worker {id}: cleaned up after {ticks} ticks");
        Ok(())
    })
    .shielded()
    .await?;
    result
}

#[trio::main]
async fn main() -> trio::Result<()> {
    let wait = std::env::args().nth(1).is_some();
    println!(
        "working; {}",
        if wait {
            "press Ctrl-C to stop"
        } else {
            "interrupting myself in 0.3 s"
        }
    );
    trio::open_nursery(async |n| {
        for id in 0..3 {
            n.start_soon(worker(id));
        }
        if !wait {
            n.start_soon(async {
                trio::sleep(0.3).await?;
                // What Ctrl-C in a terminal does: SIGINT to the process.
                trio::signal::raise(SIGINT)?;
                Ok(())
            });
        }
        Ok(())
    })
    .await?;
    Ok(())
}
