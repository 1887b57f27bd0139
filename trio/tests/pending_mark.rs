//! A `PendingMark` must not hold once the poll waiter it marks has been
//! re-registered under another cancel status (same task, same waker, no
//! wake-up used): the task would then miss a cancel of its own scope.

use std::future::poll_fn;
use std::task::Poll;
use trio::CancelScope;
use trio::lowlevel::PendingMark;
use trio::socket::SocketStream;

#[test]
fn a_mark_does_not_hold_after_its_waiter_moved_to_another_status() {
    trio::run(async {
        let (_a, b) = SocketStream::unix_pair()?;
        let mut buf = [0; 4];
        // Pending under the root status: the mark.
        let mark = poll_fn(|cx| {
            let (polled, mark) = PendingMark::watch(cx, |cx| b.poll_receive(cx, &mut buf));
            assert!(polled.is_pending());
            Poll::Ready(mark.expect("a plain task waker"))
        })
        .await;
        // The same task polls the same direction inside an inner scope: the
        // reactor's poll waiter is now registered under that scope's status
        // (which then exits and is removed).
        CancelScope::new()
            .run(async {
                poll_fn(|cx| {
                    assert!(b.poll_receive(cx, &mut buf).is_pending());
                    Poll::Ready(())
                })
                .await;
                Ok(())
            })
            .await?;
        // Back under the root status: the registration is not what a poll
        // here would make (it is under a dead status, so a cancel of this
        // one would not wake it), yet the mark says it is.
        let holds = poll_fn(|cx| Poll::Ready(mark.still_holds(cx.waker()))).await;
        assert!(
            !holds,
            "the mark holds though its waiter moved to another status"
        );
        Ok(())
    })
    .unwrap();
}
