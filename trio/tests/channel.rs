//! Tests for memory channels: hand-off, "cancelled means no effect", close
//! semantics from both ends with clones, streams.

mod common;
use common::{run_autojump, settle};

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use trio::channel::UNBOUNDED;
use trio::{CancelScope, ErrorKind, open_memory_channel};

#[trio::test(autojump)]
async fn buffered_channel_keeps_order_and_blocks_when_full() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(2);
    tx.try_send(1).unwrap();
    tx.send(2).await?;
    let e = tx.try_send(3).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert_eq!(e.into_inner(), 3);
    let s = tx.statistics();
    assert_eq!((s.current_buffer_used, s.max_buffer_size), (2, 2));
    trio::open_nursery(async |n| {
        n.start_soon(async {
            tx.send(3).await?; // waits for room
            Ok(())
        });
        settle().await;
        assert_eq!(rx.statistics().tasks_waiting_send, 1);
        assert_eq!(rx.receive().await?, 1);
        Ok(())
    })
    .await?;
    assert_eq!(rx.try_receive()?, 2);
    assert_eq!(rx.receive().await?, 3);
    assert_eq!(rx.try_receive().unwrap_err().kind(), ErrorKind::WouldBlock);
    Ok(())
}

#[trio::test(autojump)]
async fn rendezvous_send_waits_for_a_receiver() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<&str>(0);
    assert_eq!(tx.try_send("x").unwrap_err().kind(), ErrorKind::WouldBlock);
    let sent = RefCell::new(false);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            tx.send("hello").await?;
            *sent.borrow_mut() = true;
            Ok(())
        });
        settle().await;
        assert!(!*sent.borrow());
        assert_eq!(rx.try_receive()?, "hello"); // completes the send
        Ok(())
    })
    .await?;
    assert!(*sent.borrow());
    Ok(())
}

#[trio::test(autojump)]
async fn unbounded_channel_never_blocks() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<usize>(UNBOUNDED);
    for i in 0..1000 {
        tx.try_send(i).unwrap();
    }
    drop(tx);
    let mut n = 0;
    while let Some(v) = rx.next().await {
        assert_eq!(v?, n);
        n += 1;
    }
    assert_eq!(n, 1000);
    Ok(())
}

#[trio::test(autojump)]
async fn a_waiting_receiver_gets_the_value_that_was_sent_not_a_later_one() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(UNBOUNDED);
    let got = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        for i in 0..2 {
            let (rx, got) = (&rx, &got);
            n.start_soon(async move {
                let v = rx.receive().await?;
                got.borrow_mut().push((i, v));
                Ok(())
            });
            settle().await; // receiver 0 waits first
        }
        // Both are handed a value at once, in order, before either runs.
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        tx.try_send(3).unwrap();
        assert_eq!(tx.statistics().current_buffer_used, 1);
        Ok(())
    })
    .await?;
    // Woken together, the two receivers run in either order: sort by receiver.
    got.borrow_mut().sort();
    assert_eq!(*got.borrow(), [(0, 1), (1, 2)]);
    assert_eq!(rx.try_receive()?, 3);
    Ok(())
}

#[trio::test(autojump)]
async fn cancelled_receive_leaves_the_value_for_the_next_receiver() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(0);
    let scope = CancelScope::new();
    let got = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let r = scope.run(rx.receive()).await?;
            assert_eq!(r, None);
            Ok(())
        });
        settle().await;
        n.start_soon(async {
            let v = rx.receive().await?;
            got.borrow_mut().push(v);
            Ok(())
        });
        settle().await;
        assert_eq!(rx.statistics().tasks_waiting_receive, 2);
        scope.cancel();
        settle().await;
        assert_eq!(rx.statistics().tasks_waiting_receive, 1);
        tx.send(7).await.unwrap();
        Ok(())
    })
    .await?;
    assert!(scope.cancelled_caught());
    assert_eq!(*got.borrow(), [7]);
    Ok(())
}

#[trio::test(autojump)]
async fn receiver_cancelled_after_the_hand_off_still_gets_the_value() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(0);
    let scope = CancelScope::new();
    let got = RefCell::new(None);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let r = scope.run(rx.receive()).await?;
            *got.borrow_mut() = r;
            Ok(())
        });
        settle().await;
        tx.try_send(5).unwrap(); // handed over now...
        scope.cancel(); // ...so this cancel comes too late to undo it
        Ok(())
    })
    .await?;
    assert_eq!(*got.borrow(), Some(5));
    Ok(())
}

#[trio::test(autojump)]
async fn cancelled_send_delivers_nothing_and_returns_the_value() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<String>(0);
    let back = RefCell::new(None);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let r = tx.send("first".to_string()).await;
            let e = r.unwrap_err();
            assert!(e.is_cancelled());
            *back.borrow_mut() = Some(e.into_inner());
            Ok(())
        });
        settle().await;
        n.start_soon(async {
            tx.send("second".to_string()).await?;
            Ok(())
        });
        settle().await;
        assert_eq!(tx.statistics().tasks_waiting_send, 2);
        n.cancel_scope().cancel(); // cancels both senders
        Ok(())
    })
    .await?;
    assert_eq!(back.borrow().as_deref(), Some("first"));
    assert_eq!(rx.statistics().tasks_waiting_send, 0);
    assert_eq!(rx.try_receive().unwrap_err().kind(), ErrorKind::WouldBlock);
    Ok(())
}

#[trio::test(autojump)]
async fn cancelled_send_keeps_the_order_of_the_others() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(0);
    let scope = CancelScope::new();
    trio::open_nursery(async |n| {
        for i in 0..3 {
            let (tx, scope) = (&tx, &scope);
            n.start_soon(async move {
                if i == 1 {
                    let r = scope.run(async { Ok(tx.send(i).await?) }).await?;
                    assert_eq!(r, None);
                } else {
                    tx.send(i).await?;
                }
                Ok(())
            });
            settle().await;
        }
        scope.cancel();
        settle().await;
        assert_eq!(rx.receive().await?, 0);
        assert_eq!(rx.receive().await?, 2);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn value_handed_to_a_dropped_receiver_goes_back_to_the_front() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(UNBOUNDED);
    let go = trio::sync::Event::new();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let mut receive = pin!(rx.receive());
            poll_fn(|cx| {
                assert!(receive.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            go.wait().await?;
            Ok(()) // dropped after being handed a value, unpolled
        });
        settle().await;
        tx.try_send(1).unwrap(); // handed to the waiting receive
        tx.try_send(2).unwrap();
        go.set();
        Ok(())
    })
    .await?;
    assert_eq!(rx.try_receive()?, 1);
    assert_eq!(rx.try_receive()?, 2);
    Ok(())
}

#[trio::test(autojump)]
async fn closing_every_sender_ends_the_channel_after_the_buffer() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(4);
    let tx2 = tx.clone();
    let rx2 = rx.clone();
    assert_eq!(tx.statistics().open_send_channels, 2);
    tx.try_send(1).unwrap();
    let ends = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        assert_eq!(rx.receive().await?, 1);
        for r in [&rx, &rx2] {
            let ends = &ends;
            n.start_soon(async move {
                let kind = r.receive().await.unwrap_err().kind();
                ends.borrow_mut().push(kind);
            });
        }
        settle().await;
        tx.close();
        settle().await;
        assert!(ends.borrow().is_empty()); // tx2 is still open
        assert_eq!(tx.try_send(9).unwrap_err().kind(), ErrorKind::Closed);
        tx2.aclose().await?;
        Ok(())
    })
    .await?;
    assert_eq!(*ends.borrow(), [ErrorKind::EndOfChannel; 2]);
    assert_eq!(
        rx.try_receive().unwrap_err().kind(),
        ErrorKind::EndOfChannel
    );
    Ok(())
}

#[trio::test(autojump)]
async fn closing_every_receiver_fails_blocked_senders_and_drops_the_buffer() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<String>(1);
    let tx2 = tx.clone();
    let rx2 = rx.clone();
    tx.try_send("buffered".into()).unwrap();
    let failed = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        for t in [&tx, &tx2] {
            let failed = &failed;
            n.start_soon(async move {
                let e = t.send("blocked".into()).await.unwrap_err();
                failed.borrow_mut().push((e.kind(), e.into_inner()));
            });
        }
        settle().await;
        rx.close();
        settle().await;
        assert!(failed.borrow().is_empty()); // rx2 still open
        assert_eq!(rx.try_receive().unwrap_err().kind(), ErrorKind::Closed);
        drop(rx2); // dropping closes
        Ok(())
    })
    .await?;
    assert_eq!(
        *failed.borrow(),
        [
            (ErrorKind::Broken, "blocked".to_string()),
            (ErrorKind::Broken, "blocked".to_string())
        ]
    );
    let s = tx.statistics();
    assert_eq!((s.current_buffer_used, s.open_receive_channels), (0, 0));
    assert_eq!(
        tx.try_send("x".into()).unwrap_err().kind(),
        ErrorKind::Broken
    );
    Ok(())
}

#[trio::test(autojump)]
async fn closing_a_handle_fails_the_tasks_blocked_on_that_handle_only() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(0);
    let rx2 = rx.clone();
    let kinds = RefCell::new(Vec::new());
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let kind = rx.receive().await.unwrap_err().kind();
            kinds.borrow_mut().push(kind);
        });
        n.start_soon(async {
            assert_eq!(rx2.receive().await.unwrap(), 4);
        });
        settle().await;
        rx.close();
        settle().await;
        assert_eq!(*kinds.borrow(), [ErrorKind::Closed]);
        tx.send(4).await?;
        Ok(())
    })
    .await?;
    // Sender side: the same, with the value handed back.
    let (tx, rx) = open_memory_channel::<u32>(0);
    let tx2 = tx.clone();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let e = tx.send(1).await.unwrap_err();
            assert_eq!((e.kind(), e.into_inner()), (ErrorKind::Closed, 1));
        });
        settle().await;
        tx.close();
        assert!(tx.is_closed() && !tx2.is_closed());
        let c = tx.clone();
        assert!(c.is_closed());
        assert_eq!(tx2.statistics().open_send_channels, 1);
        drop(rx);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn aclose_closes_even_when_cancelled() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(0);
    let scope = CancelScope::new();
    scope
        .run(async {
            scope.cancel();
            rx.aclose().await
        })
        .await?;
    assert!(rx.is_closed());
    assert_eq!(tx.try_send(1).unwrap_err().kind(), ErrorKind::Broken);
    Ok(())
}

#[trio::test(autojump)]
async fn send_error_converts_to_trio_error_keeping_cancellation() -> trio::Result<()> {
    let (tx, _rx) = open_memory_channel::<u32>(0);
    let scope = CancelScope::new();
    let r = scope
        .run(async {
            scope.cancel();
            tx.send(1).await?; // `?` turns the SendError into trio::Error
            Ok(())
        })
        .await?;
    assert_eq!(r, None); // recognised as the scope's own cancellation
    assert!(format!("{:?}", tx.try_send(2).unwrap_err()).contains("WouldBlock"));
    Ok(())
}

#[trio::test(autojump)]
async fn receiver_is_a_stream() -> trio::Result<()> {
    use futures_core::Stream;
    let (tx, mut rx) = open_memory_channel::<u32>(0);
    trio::open_nursery(async |n| {
        n.start_soon(async move {
            for i in 0..5 {
                tx.send(i).await?;
            }
            Ok(())
        });
        let mut got = Vec::new();
        loop {
            let item = poll_fn(|cx| std::pin::Pin::new(&mut rx).poll_next(cx)).await;
            match item {
                Some(v) => got.push(v?),
                None => break,
            }
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn dropping_a_stream_mid_receive_loses_nothing() -> trio::Result<()> {
    use futures_core::Stream;
    let (tx, rx) = open_memory_channel::<u32>(UNBOUNDED);
    let mut stream_rx = rx.clone();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            // Start a receive through the stream, then drop the stream.
            poll_fn(|cx| {
                assert!(
                    std::pin::Pin::new(&mut stream_rx)
                        .poll_next(cx)
                        .is_pending()
                );
                Poll::Ready(())
            })
            .await;
            trio::sleep(1.0).await?;
            drop(stream_rx);
            Ok(())
        });
        settle().await;
        tx.try_send(1).unwrap(); // handed to the stream's receive
        Ok(())
    })
    .await?;
    assert_eq!(rx.try_receive()?, 1);
    Ok(())
}

// ----- waits left by futures leaked in an earlier run -----------------------------
//
// A channel may outlive its run. A blocked future leaked (`mem::forget`) in
// that run leaves a wait that can never be woken; each test makes one in a
// first run (so a plain `#[test]`) and checks that a later run neither
// loses a value to it nor keeps its value.

/// Polls `fut` once (it must block) and leaks it.
async fn leak_blocked<F: Future>(fut: F) {
    let mut fut = Box::pin(fut);
    poll_fn(|cx| {
        assert!(fut.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    std::mem::forget(fut);
}

#[test]
fn a_value_sent_past_a_receive_leaked_in_an_earlier_run_goes_to_the_next_receiver() {
    let (tx, rx) = open_memory_channel::<u32>(0);
    trio::run(async {
        leak_blocked(rx.receive()).await;
        Ok(())
    })
    .unwrap();
    assert_eq!(rx.statistics().tasks_waiting_receive, 1);
    run_autojump(async {
        trio::open_nursery(async |n| {
            n.start_soon(async {
                assert_eq!(rx.receive().await?, 5);
                Ok(())
            });
            settle().await;
            tx.try_send(5).unwrap(); // skips the stale receive
            Ok(())
        })
        .await?;
        assert_eq!(rx.statistics().tasks_waiting_receive, 0);
        Ok(())
    });
}

#[test]
fn a_value_left_by_a_send_leaked_in_an_earlier_run_is_dropped_not_received() {
    let (tx, rx) = open_memory_channel::<Rc<u32>>(1);
    let stale = Rc::new(2);
    trio::run(async {
        tx.try_send(Rc::new(1)).unwrap();
        leak_blocked(tx.send(stale.clone())).await; // the buffer is full
        Ok(())
    })
    .unwrap();
    assert_eq!(Rc::strong_count(&stale), 2);
    run_autojump(async {
        assert_eq!(*rx.try_receive()?, 1); // the buffered value, in order
        assert_eq!(rx.try_receive().unwrap_err().kind(), ErrorKind::WouldBlock);
        let s = rx.statistics();
        assert_eq!((s.current_buffer_used, s.tasks_waiting_send), (0, 0));
        Ok(())
    });
    assert_eq!(Rc::strong_count(&stale), 1, "the stale value was dropped");
}

#[test]
fn closing_the_last_receiver_drops_values_left_by_sends_leaked_in_an_earlier_run() {
    let (tx, rx) = open_memory_channel::<Rc<u32>>(0);
    let stale = Rc::new(2);
    trio::run(async {
        leak_blocked(tx.send(stale.clone())).await;
        Ok(())
    })
    .unwrap();
    assert_eq!(Rc::strong_count(&stale), 2);
    rx.close();
    assert_eq!(Rc::strong_count(&stale), 1, "the stale value was dropped");
    assert_eq!(tx.statistics().tasks_waiting_send, 0);
}
