//! A reactor entry left behind by a socket that left its run must not
//! answer for a later fd that reuses the number (core/io.rs, "Moving
//! between runs").
//!
//! A socket registered in run A and then dropped outside A (in a plain
//! thread, or in run B after it moved there) cannot remove A's entry for
//! its fd number. When the number is reused by a new fd in A, a raw
//! `wait_readable` must get an entry of its own, so that registering the
//! socket that owns the new fd keeps the wait (instead of waking it with
//! Closed as if it waited on the old socket).
//!
//! One `#[test]` only, run on the real clock: each scenario relies on the
//! kernel handing out the lowest free fd number, which tests running in
//! parallel threads of this binary would disturb.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use trio::socket::{Domain, Socket, Type};

/// How the first socket leaves run A.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// Moved to a plain thread and dropped there.
    DroppedInThread,
    /// Moved to a thread running run B, used there (which moves its
    /// registration to B), and dropped there.
    MovedToAnotherRun,
}

/// A new fd in run A reuses the number of a socket that left A: a raw
/// wait on it, then its own socket's registration (a wait of a socket
/// wrapping the new fd), then data. The raw wait must end with Ok.
async fn scenario(leave: Leave) -> trio::Result<()> {
    let (a, _peer) = Socket::pair(Domain::UNIX, Type::STREAM, None)?;
    // The first wait registers `a` in this run.
    a.wait_writable().await?;
    let n = a.as_raw_fd();
    std::thread::spawn(move || match leave {
        Leave::DroppedInThread => drop(a),
        Leave::MovedToAnotherRun => trio::run(async move {
            a.wait_writable().await?;
            drop(a);
            Ok(())
        })
        .expect("run B"),
    })
    .join()
    .expect("the other thread");

    // The kernel hands out the lowest free number: fill any lower holes
    // until a new socket gets `n` again.
    let mut spare = Vec::new();
    let (x, mut y) = loop {
        let (p, q) = UnixStream::pair()?;
        if p.as_raw_fd() == n {
            break (p, q);
        }
        if q.as_raw_fd() == n {
            break (q, p);
        }
        assert!(
            p.as_raw_fd() < n || q.as_raw_fd() < n,
            "fd {n} was taken by someone else: the scenario cannot be set up"
        );
        spare.push((p, q));
    };
    x.set_nonblocking(true)?;
    let xfd = x.as_raw_fd();
    let x = Socket::from_socket2(socket2::Socket::from(std::os::fd::OwnedFd::from(x)))?;

    trio::open_nursery(async |nursery| {
        nursery.start_soon(async move {
            // Waits on the reused number (raw), while the socket that owns
            // the fd registers (below): the wait must survive that.
            trio::lowlevel::wait_readable(xfd).await
        });
        trio::testing::wait_all_tasks_blocked().await?;
        x.wait_writable().await?;
        std::io::Write::write_all(&mut y, b"!")?;
        Ok(())
    })
    .await?;
    let mut buf = [0; 4];
    assert_eq!(x.recv(&mut buf).await?, 1);
    Ok(())
}

#[test]
fn a_stale_entry_does_not_answer_for_a_reused_fd() {
    for leave in [Leave::MovedToAnotherRun, Leave::DroppedInThread] {
        let r = trio::run(scenario(leave));
        assert!(r.is_ok(), "{leave:?}: {:?}", r.err());
    }
}
