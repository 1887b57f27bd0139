//! The `tracing` feature: task spans with their tree path, cancellation events.
#![cfg(feature = "tracing")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn tasks_get_spans_and_cancellation_is_an_event() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let _guard = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish()
        .set_default();
    trio::Runner::new()
        .clock(trio::testing::MockClock::autojump())
        .run(async {
            trio::open_nursery(async |n| {
                n.start_soon_named("worker", async {
                    trio::move_on_after(1.0, trio::sleep_forever()).await?;
                    Ok(())
                });
                Ok(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("trio.task"), "{out}");
    assert!(out.contains("path=<root>/worker"), "{out}");
    assert!(
        out.contains("deadline expired: cancel scope cancelled"),
        "{out}"
    );
    assert!(out.contains("task exited"), "{out}");
}
