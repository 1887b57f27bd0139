//! Tests of the stream conformance checks themselves (as Trio's
//! `test_testing.py` has): each check fails on a stream broken on purpose
//! in one way, and passes on the same wrapper with no fault (the control).
//!
//! The trick: `Faulty` wraps a memory stream pair and breaks exactly one
//! rule of the contract, chosen by `Fault`. Each test expects the check to
//! panic (a violated expectation, or `.unwrap()` of an unexpected error),
//! with a message naming the broken rule where it is deterministic.

use std::cell::Cell;
use trio::stream::{AsyncResource, ReceiveStream, SendStream, Stream};
use trio::testing::{
    LockstepStream, MemoryReceiveStream, MemoryStream, check_half_closeable_stream,
    check_one_way_stream, check_two_way_stream, lockstep_stream_pair, memory_stream_pair,
    no_clogged_stream_maker,
};
use trio::{Error, ErrorKind};

#[derive(Copy, Clone, PartialEq, Debug)]
enum Fault {
    None,
    /// `send_all` puts the data into the peer without a checkpoint.
    SendWithoutCheckpoint,
    /// `receive_some` takes an empty buffer as a request for nothing.
    EmptyBufferAccepted,
    /// A second concurrent receiver gets the wrong error, not Busy.
    NoBusy,
    /// After reporting Broken once, sends succeed again.
    BrokenNotSticky,
    /// After its own close, `receive_some` reports the end, not Closed.
    EndAfterOwnClose,
    /// `aclose` checks for cancellation before closing (so a cancelled
    /// `aclose` leaves the stream open).
    CancelledAcloseLeavesOpen,
    /// `aclose` closes synchronously, with no checkpoint.
    AcloseWithoutCheckpoint,
    /// Large sends arrive with their first byte flipped.
    CorruptsBulk,
    /// A second `send_eof` fails.
    SendEofNotIdempotent,
}

struct Faulty {
    inner: MemoryStream,
    /// The peer's receive half, for a send that skips our machinery.
    peer_rx: MemoryReceiveStream,
    fault: Fault,
    receiving: Cell<bool>,
    broken_reported: Cell<bool>,
    closed: Cell<bool>,
    eof_sent: Cell<bool>,
}

fn faulty_pair(fault: Fault) -> (Faulty, Faulty) {
    let (a, b) = memory_stream_pair();
    let (a_rx, b_rx) = (a.receive_stream.clone(), b.receive_stream.clone());
    let wrap = |inner, peer_rx| Faulty {
        inner,
        peer_rx,
        fault,
        receiving: Cell::new(false),
        broken_reported: Cell::new(false),
        closed: Cell::new(false),
        eof_sent: Cell::new(false),
    };
    (wrap(a, b_rx), wrap(b, a_rx))
}

impl AsyncResource for Faulty {
    async fn aclose(&self) -> trio::Result<()> {
        match self.fault {
            Fault::CancelledAcloseLeavesOpen => {
                trio::checkpoint().await?;
                self.closed.set(true);
                self.inner.aclose().await
            }
            Fault::AcloseWithoutCheckpoint => {
                self.closed.set(true);
                self.inner.send_stream.close();
                self.inner.receive_stream.close();
                Ok(())
            }
            _ => {
                self.closed.set(true);
                self.inner.aclose().await
            }
        }
    }
}

impl SendStream for Faulty {
    async fn send_all(&self, data: &[u8]) -> trio::Result<()> {
        match self.fault {
            Fault::SendWithoutCheckpoint => self.peer_rx.put_data(data),
            Fault::BrokenNotSticky if self.broken_reported.get() => trio::checkpoint().await,
            Fault::BrokenNotSticky => {
                let r = self.inner.send_all(data).await;
                if r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Broken) {
                    self.broken_reported.set(true);
                }
                r
            }
            Fault::CorruptsBulk if data.len() > 1000 => {
                let mut d = data.to_vec();
                d[0] ^= 1;
                self.inner.send_all(&d).await
            }
            _ => self.inner.send_all(data).await,
        }
    }

    fn wait_send_all_might_not_block(&self) -> impl Future<Output = trio::Result<()>> {
        self.inner.wait_send_all_might_not_block()
    }
}

impl ReceiveStream for Faulty {
    async fn receive_some(&self, buf: &mut [u8]) -> trio::Result<usize> {
        match self.fault {
            Fault::EmptyBufferAccepted if buf.is_empty() => {
                trio::checkpoint().await?;
                Ok(0)
            }
            Fault::NoBusy if self.receiving.get() => {
                Err(Error::new(ErrorKind::Other, "someone else is receiving"))
            }
            Fault::EndAfterOwnClose if self.closed.get() => {
                trio::checkpoint().await?;
                Ok(0)
            }
            _ => {
                self.receiving.set(true);
                let r = self.inner.receive_some(buf).await;
                self.receiving.set(false);
                r
            }
        }
    }
}

impl Stream for Faulty {
    async fn send_eof(&self) -> trio::Result<()> {
        if self.fault == Fault::SendEofNotIdempotent && self.eof_sent.replace(true) {
            return Err(Error::new(ErrorKind::Closed, "send_eof twice"));
        }
        self.inner.send_eof().await
    }
}

async fn check_half_closeable(fault: Fault) {
    check_half_closeable_stream(async || Ok(faulty_pair(fault)), no_clogged_stream_maker())
        .await
        .unwrap();
}

async fn check_one_way(fault: Fault) {
    check_one_way_stream(async || Ok(faulty_pair(fault)), no_clogged_stream_maker())
        .await
        .unwrap();
}

// ----- the control: the wrapper without a fault passes ------------------------------

#[trio::test(autojump)]
async fn the_faultless_wrapper_passes_every_check() {
    check_half_closeable(Fault::None).await;
}

// ----- one-way check ----------------------------------------------------------------

#[trio::test(autojump)]
#[should_panic(expected = "completed without a checkpoint")]
async fn the_one_way_check_catches_a_send_without_checkpoint() {
    check_one_way(Fault::SendWithoutCheckpoint).await;
}

#[trio::test(autojump)]
#[should_panic(expected = "receive_some with an empty buffer")]
async fn the_one_way_check_catches_an_accepted_empty_buffer() {
    check_one_way(Fault::EmptyBufferAccepted).await;
}

#[trio::test(autojump)]
#[should_panic(expected = "two concurrent receive_some")]
async fn the_one_way_check_catches_a_missing_busy() {
    check_one_way(Fault::NoBusy).await;
}

#[trio::test(autojump)]
#[should_panic(expected = "Broken must stick")]
async fn the_one_way_check_catches_a_broken_that_does_not_stick() {
    check_one_way(Fault::BrokenNotSticky).await;
}

#[trio::test(autojump)]
#[should_panic(expected = "receive_some after the receiver's own close")]
async fn the_one_way_check_catches_end_of_stream_instead_of_closed() {
    check_one_way(Fault::EndAfterOwnClose).await;
}

#[trio::test(autojump)]
// aclose_forcefully is a cancelled aclose: the first forceful close of the
// receiver leaves it open, and the sender never sees Broken.
#[should_panic(expected = "sends to a closed receiver all succeeded")]
async fn the_one_way_check_catches_a_cancelled_aclose_that_does_not_close() {
    check_one_way(Fault::CancelledAcloseLeavesOpen).await;
}

#[trio::test(autojump)]
#[should_panic(expected = "completed without a checkpoint")]
async fn the_one_way_check_catches_an_aclose_without_checkpoint() {
    check_one_way(Fault::AcloseWithoutCheckpoint).await;
}

// ----- two-way check ----------------------------------------------------------------

#[trio::test(autojump)]
async fn the_one_way_check_does_not_look_at_bulk_duplex() {
    // The corruption only shows in the two-way check's bulk transfer.
    check_one_way(Fault::CorruptsBulk).await;
}

#[trio::test(autojump)]
#[should_panic(expected = "full duplex")]
async fn the_two_way_check_catches_corrupted_bulk_data() {
    check_two_way_stream(
        async || Ok(faulty_pair(Fault::CorruptsBulk)),
        no_clogged_stream_maker(),
    )
    .await
    .unwrap();
}

// ----- half-closeable check ---------------------------------------------------------

#[trio::test(autojump)]
async fn the_two_way_check_does_not_call_send_eof_twice() {
    check_two_way_stream(
        async || Ok(faulty_pair(Fault::SendEofNotIdempotent)),
        no_clogged_stream_maker(),
    )
    .await
    .unwrap();
}

#[trio::test(autojump)]
#[should_panic(expected = "send_eof twice")]
async fn the_half_closeable_check_catches_a_send_eof_that_is_not_idempotent() {
    check_half_closeable(Fault::SendEofNotIdempotent).await;
}

// ----- clogged scenarios --------------------------------------------------------------

/// A lockstep stream whose `wait_send_all_might_not_block` returns at once,
/// and whose `send_eof` ignores the send slot: only the clogged scenarios
/// can tell.
struct Hasty {
    inner: LockstepStream,
    early_wait: bool,
}

impl AsyncResource for Hasty {
    fn aclose(&self) -> impl Future<Output = trio::Result<()>> {
        self.inner.aclose()
    }
}

impl SendStream for Hasty {
    fn send_all(&self, data: &[u8]) -> impl Future<Output = trio::Result<()>> {
        self.inner.send_all(data)
    }
    async fn wait_send_all_might_not_block(&self) -> trio::Result<()> {
        if self.early_wait {
            // Returns at once, with the right errors: an empty send.
            self.inner.send_all(b"").await
        } else {
            self.inner.wait_send_all_might_not_block().await
        }
    }
}

impl ReceiveStream for Hasty {
    fn receive_some(&self, buf: &mut [u8]) -> impl Future<Output = trio::Result<usize>> {
        self.inner.receive_some(buf)
    }
}

impl Stream for Hasty {
    fn send_eof(&self) -> impl Future<Output = trio::Result<()>> {
        // Bypasses the stapled stream's send slot.
        self.inner.send_stream.aclose()
    }
}

fn hasty_pair(early_wait: bool) -> (Hasty, Hasty) {
    let (a, b) = lockstep_stream_pair();
    (
        Hasty {
            inner: a,
            early_wait,
        },
        Hasty {
            inner: b,
            early_wait,
        },
    )
}

#[trio::test(autojump)]
async fn an_early_wait_passes_without_a_clogged_maker() -> trio::Result<()> {
    // "May return early": nothing but a clogged stream can observe it.
    check_one_way_stream(async || Ok(hasty_pair(true)), no_clogged_stream_maker()).await
}

#[trio::test(autojump)]
#[should_panic(expected = "wait_send_all_might_not_block on a clogged stream")]
async fn the_clogged_check_catches_a_wait_that_does_not_wait() {
    let maker = async || Ok(hasty_pair(true));
    check_one_way_stream(maker, Some(maker)).await.unwrap();
}

#[trio::test(autojump)]
#[should_panic(expected = "send_eof during send_all")]
async fn the_clogged_check_catches_a_send_eof_outside_the_send_slot() {
    let maker = async || Ok(hasty_pair(false));
    check_half_closeable_stream(maker, Some(maker))
        .await
        .unwrap();
}
