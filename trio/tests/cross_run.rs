//! Tests for the cross-run channel and event: the memory channel's test
//! list (tests/channel.rs) with the two ends in different runs, each run on
//! its own thread; blocking ends on plain threads; deadlock detection with
//! ends held outside the run.
//!
//! Runs that wait for a peer in another thread use the real clock: they
//! poll a condition with short real sleeps (`until`), never assert on time.

mod common;
use common::{run_autojump, settle};

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;
use trio::channel::UNBOUNDED;
use trio::cross_run::{CrossRunReceiver, CrossRunSender, Event, open_cross_run_channel};
use trio::{CancelScope, ErrorKind};

/// Starts a second run on its own thread; `f` makes its main future there
/// (futures need not be `Send`, the closure must).
fn spawn_run<T, F>(f: impl FnOnce() -> F + Send + 'static) -> JoinHandle<trio::Result<T>>
where
    T: Send + 'static,
    F: Future<Output = trio::Result<T>>,
{
    std::thread::spawn(move || trio::run(f()))
}

/// Waits (in a run, on the real clock) until `cond` holds: for a peer in
/// another thread to get somewhere.
async fn until(cond: impl Fn() -> bool) {
    while !cond() {
        trio::sleep(0.001).await.unwrap();
    }
}

/// `until` for a plain thread.
fn until_blocking(cond: impl Fn() -> bool) {
    while !cond() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn waiting_send<T>(rx: &CrossRunReceiver<T>) -> usize {
    rx.statistics().tasks_waiting_send
}

fn waiting_receive<T>(tx: &CrossRunSender<T>) -> usize {
    tx.statistics().tasks_waiting_receive
}

// ----- the memory channel's list, across runs ------------------------------

#[test]
fn buffered_channel_keeps_order_and_blocks_when_full() {
    let (tx, rx) = open_cross_run_channel::<u32>(2);
    let sender = spawn_run(move || async move {
        tx.try_send(1).unwrap();
        tx.send(2).await?;
        let e = tx.try_send(3).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert_eq!(e.into_inner(), 3);
        let s = tx.statistics();
        assert_eq!((s.current_buffer_used, s.max_buffer_size), (2, 2));
        tx.send(3).await?; // waits for room, made by the other run
        Ok(())
    });
    trio::run(async {
        until(|| waiting_send(&rx) == 1).await;
        assert_eq!(rx.statistics().current_buffer_used, 2);
        assert_eq!(rx.receive().await?, 1); // makes room: the send completes
        assert_eq!(rx.receive().await?, 2);
        assert_eq!(rx.receive().await?, 3);
        // The sender's run ends and drops `tx`: the end of the channel.
        assert_eq!(
            rx.receive().await.unwrap_err().kind(),
            ErrorKind::EndOfChannel
        );
        Ok(())
    })
    .unwrap();
    sender.join().unwrap().unwrap();
}

#[test]
fn rendezvous_send_waits_for_a_receiver_in_another_run() {
    let (tx, rx) = open_cross_run_channel::<&str>(0);
    assert_eq!(tx.try_send("x").unwrap_err().kind(), ErrorKind::WouldBlock);
    let sent = Arc::new(AtomicBool::new(false));
    let sender = spawn_run({
        let sent = sent.clone();
        move || async move {
            tx.send("hello").await?;
            sent.store(true, Ordering::SeqCst);
            Ok(())
        }
    });
    trio::run(async {
        until(|| waiting_send(&rx) == 1).await;
        assert!(!sent.load(Ordering::SeqCst));
        assert_eq!(rx.try_receive()?, "hello"); // completes the send
        Ok(())
    })
    .unwrap();
    sender.join().unwrap().unwrap();
    assert!(sent.load(Ordering::SeqCst));
}

#[test]
fn unbounded_channel_never_blocks() {
    let (tx, rx) = open_cross_run_channel::<usize>(UNBOUNDED);
    let sender = spawn_run(move || async move {
        for i in 0..1000 {
            tx.try_send(i).unwrap();
        }
        Ok(())
    });
    sender.join().unwrap().unwrap();
    let n = trio::run(async {
        let mut n = 0;
        while let Some(v) = rx.next().await {
            assert_eq!(v?, n);
            n += 1;
        }
        Ok(n)
    })
    .unwrap();
    assert_eq!(n, 1000);
}

#[test]
fn waiting_receivers_are_served_in_order_and_get_the_value_sent_not_a_later_one() {
    let (tx, rx) = open_cross_run_channel::<u32>(UNBOUNDED);
    let sender = std::thread::spawn(move || {
        until_blocking(|| waiting_receive(&tx) == 2);
        // Both are handed a value at once, in the order they began waiting.
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        tx.try_send(3).unwrap();
        tx
    });
    let got = RefCell::new(Vec::new());
    trio::run(async {
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
            Ok(())
        })
        .await
    })
    .unwrap();
    let _tx = sender.join().unwrap();
    got.borrow_mut().sort();
    assert_eq!(*got.borrow(), [(0, 1), (1, 2)]);
    assert_eq!(rx.try_receive().unwrap(), 3);
}

#[test]
fn a_receive_cancelled_by_a_timeout_consumes_nothing() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let go = Event::new();
    let sender = spawn_run({
        let go = go.clone();
        move || async move {
            go.wait().await?;
            tx.send(7).await?; // must reach the next receive
            Ok(())
        }
    });
    trio::run(async {
        let r = trio::move_on_after(0.01, rx.receive()).await?;
        assert_eq!(r, None, "nothing was sent yet: the timeout cancels it");
        assert_eq!(rx.statistics().tasks_waiting_receive, 0);
        go.set();
        assert_eq!(rx.receive().await?, 7);
        Ok(())
    })
    .unwrap();
    sender.join().unwrap().unwrap();
}

#[test]
fn a_cancelled_receive_leaves_the_value_for_the_next_receiver() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let go = Event::new();
    let sender = spawn_run({
        let go = go.clone();
        move || async move {
            go.wait().await?; // once the first receive has been cancelled
            tx.send(7).await?;
            Ok(())
        }
    });
    let scope = CancelScope::new();
    let got = RefCell::new(Vec::new());
    trio::run(async {
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
            go.set();
            Ok(())
        })
        .await
    })
    .unwrap();
    sender.join().unwrap().unwrap();
    assert!(scope.cancelled_caught());
    assert_eq!(*got.borrow(), [7]);
}

#[test]
fn a_receiver_cancelled_after_the_hand_off_still_gets_the_value() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let sender = std::thread::spawn(move || {
        until_blocking(|| waiting_receive(&tx) == 1);
        tx.try_send(5).unwrap(); // handed over now, the wake-up posted
        tx
    });
    let scope = CancelScope::new();
    let got = RefCell::new(None);
    trio::run(async {
        trio::open_nursery(async |n| {
            n.start_soon(async {
                *got.borrow_mut() = scope.run(rx.receive()).await?;
                Ok(())
            });
            settle().await;
            // Block this run's thread (no checkpoint: the posted wake-up
            // cannot run) until the other thread has handed the value over.
            while rx.statistics().tasks_waiting_receive != 0 {
                std::thread::yield_now();
            }
            scope.cancel(); // too late to undo the hand-off
            Ok(())
        })
        .await
    })
    .unwrap();
    let _tx = sender.join().unwrap();
    assert_eq!(*got.borrow(), Some(5));
}

#[test]
fn a_cancelled_send_delivers_nothing_and_hands_the_value_back() {
    let (tx, rx) = open_cross_run_channel::<String>(0);
    let back = trio::run(async {
        let back = RefCell::new(None);
        trio::open_nursery(async |n| {
            n.start_soon(async {
                let e = tx.send("first".to_string()).await.unwrap_err();
                assert!(e.is_cancelled());
                *back.borrow_mut() = Some(e.into_inner());
                Ok(())
            });
            settle().await;
            assert_eq!(tx.statistics().tasks_waiting_send, 1);
            n.cancel_scope().cancel();
            Ok(())
        })
        .await?;
        Ok(back.into_inner())
    })
    .unwrap();
    assert_eq!(back.as_deref(), Some("first"));
    // The receiving end, in another run, finds nothing.
    let receiver = spawn_run(move || async move {
        assert_eq!(rx.statistics().tasks_waiting_send, 0);
        assert_eq!(rx.try_receive().unwrap_err().kind(), ErrorKind::WouldBlock);
        Ok(())
    });
    receiver.join().unwrap().unwrap();
}

#[test]
fn a_cancelled_send_keeps_the_order_of_the_others() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let go = Event::new();
    let receiver = spawn_run({
        let go = go.clone();
        move || async move {
            go.wait().await?; // once the middle send has been cancelled
            assert_eq!(rx.receive().await?, 0);
            assert_eq!(rx.receive().await?, 2);
            Ok(())
        }
    });
    let scope = CancelScope::new();
    trio::run(async {
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
            assert_eq!(tx.statistics().tasks_waiting_send, 2);
            go.set();
            Ok(())
        })
        .await
    })
    .unwrap();
    receiver.join().unwrap().unwrap();
}

#[test]
fn a_value_handed_to_a_dropped_receive_goes_back_to_the_front() {
    let (tx, rx) = open_cross_run_channel::<u32>(UNBOUNDED);
    let sender = std::thread::spawn(move || {
        until_blocking(|| waiting_receive(&tx) == 1);
        tx.try_send(1).unwrap(); // handed to the waiting receive
        tx.try_send(2).unwrap();
        tx
    });
    trio::run(async {
        {
            let mut receive = pin!(rx.receive());
            poll_fn(|cx| {
                assert!(receive.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            until(|| rx.statistics().current_buffer_used == 1).await;
            // Dropped here, handed a value, unpolled since.
        }
        assert_eq!(rx.try_receive()?, 1);
        assert_eq!(rx.try_receive()?, 2);
        Ok(())
    })
    .unwrap();
    let _tx = sender.join().unwrap();
}

#[test]
fn closing_every_sender_ends_the_channel_after_the_buffer() {
    let (tx, rx) = open_cross_run_channel::<u32>(4);
    let tx2 = tx.clone();
    let rx2 = rx.clone();
    assert_eq!(tx.statistics().open_send_channels, 2);
    tx.try_send(1).unwrap();
    let closer = std::thread::spawn(move || {
        until_blocking(|| waiting_receive(&tx) == 2);
        tx.close();
        assert_eq!(tx.try_send(9).unwrap_err().kind(), ErrorKind::Closed);
        tx
    });
    let ends = RefCell::new(Vec::new());
    trio::run(async {
        trio::open_nursery(async |n| {
            assert_eq!(rx.receive().await?, 1);
            for r in [&rx, &rx2] {
                let ends = &ends;
                n.start_soon(async move {
                    let kind = r.receive().await.unwrap_err().kind();
                    ends.borrow_mut().push(kind);
                });
            }
            until(|| tx2.statistics().open_send_channels == 1).await;
            settle().await;
            assert!(ends.borrow().is_empty()); // tx2 is still open
            // The last sender closes from another run.
            spawn_run(move || async move { tx2.aclose().await })
                .join()
                .unwrap()
        })
        .await
    })
    .unwrap();
    let _tx = closer.join().unwrap();
    assert_eq!(*ends.borrow(), [ErrorKind::EndOfChannel; 2]);
    assert_eq!(
        rx.try_receive().unwrap_err().kind(),
        ErrorKind::EndOfChannel
    );
}

#[test]
fn closing_every_receiver_fails_blocked_senders_and_drops_the_buffer() {
    let (tx, rx) = open_cross_run_channel::<String>(1);
    let tx2 = tx.clone();
    let rx2 = rx.clone();
    tx.try_send("buffered".into()).unwrap();
    let closer = spawn_run(move || async move {
        until(|| waiting_send(&rx) == 2).await;
        rx.close();
        assert_eq!(rx.try_receive().unwrap_err().kind(), ErrorKind::Closed);
        assert_eq!(waiting_send(&rx), 2); // rx2 is still open
        drop(rx2); // dropping closes
        Ok(())
    });
    let failed = RefCell::new(Vec::new());
    trio::run(async {
        trio::open_nursery(async |n| {
            for t in [&tx, &tx2] {
                let failed = &failed;
                n.start_soon(async move {
                    let e = t.send("blocked".into()).await.unwrap_err();
                    failed.borrow_mut().push((e.kind(), e.into_inner()));
                });
            }
            Ok(())
        })
        .await
    })
    .unwrap();
    closer.join().unwrap().unwrap();
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
}

#[test]
fn closing_a_handle_fails_the_waits_on_that_handle_only() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let rx2 = rx.clone();
    let kinds = RefCell::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            until_blocking(|| waiting_receive(&tx) == 2);
            rx.close(); // from another thread than the waits on it
            until_blocking(|| waiting_receive(&tx) == 1);
            tx.send_blocking(4).unwrap(); // to the wait on the clone
        });
        trio::run(async {
            trio::open_nursery(async |n| {
                n.start_soon(async {
                    let kind = rx.receive().await.unwrap_err().kind();
                    kinds.borrow_mut().push(kind);
                });
                n.start_soon(async {
                    assert_eq!(rx2.receive().await.unwrap(), 4);
                });
                Ok(())
            })
            .await
        })
        .unwrap();
    });
    assert_eq!(*kinds.borrow(), [ErrorKind::Closed]);

    // Sender side: the same, with the value handed back.
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let tx2 = tx.clone();
    std::thread::scope(|s| {
        s.spawn(|| {
            until_blocking(|| waiting_send(&rx) == 1);
            tx.close();
            assert!(tx.is_closed() && !tx2.is_closed());
            assert!(tx.clone().is_closed());
            assert_eq!(tx2.statistics().open_send_channels, 1);
        });
        trio::run(async {
            let e = tx.send(1).await.unwrap_err();
            assert_eq!((e.kind(), e.into_inner()), (ErrorKind::Closed, 1));
            Ok(())
        })
        .unwrap();
    });
}

#[trio::test(autojump)]
async fn aclose_closes_even_when_cancelled() -> trio::Result<()> {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
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
    let (tx, _rx) = open_cross_run_channel::<u32>(0);
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
async fn one_run_can_use_both_ends() -> trio::Result<()> {
    // The waker's own run: rescheduled directly, no post.
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    trio::open_nursery(async |n| {
        n.start_soon(async {
            for i in 0..3 {
                tx.send(i).await?;
            }
            tx.close();
            Ok(())
        });
        let mut got = Vec::new();
        while let Some(v) = rx.next().await {
            got.push(v?);
        }
        assert_eq!(got, [0, 1, 2]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[test]
fn a_receiver_as_a_stream_takes_values_from_another_run() {
    use futures_core::Stream;
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let sender = spawn_run(move || async move {
        for i in 0..5 {
            tx.send(i).await?;
        }
        Ok(())
    });
    let got = trio::run(async move {
        let mut stream = rx.into_stream();
        let mut got = Vec::new();
        while let Some(v) = poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await {
            got.push(v?);
        }
        Ok(got)
    })
    .unwrap();
    sender.join().unwrap().unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4]);
}

#[test]
fn dropping_a_stream_mid_receive_loses_nothing() {
    use futures_core::Stream;
    let (tx, rx) = open_cross_run_channel::<u32>(UNBOUNDED);
    let mut stream = rx.clone().into_stream();
    let sender = std::thread::spawn(move || {
        until_blocking(|| waiting_receive(&tx) == 1);
        tx.try_send(1).unwrap(); // handed to the stream's receive
        tx
    });
    trio::run(async {
        poll_fn(|cx| {
            assert!(std::pin::Pin::new(&mut stream).poll_next(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        until(|| rx.statistics().tasks_waiting_receive == 0).await;
        drop(stream); // handed a value, never polled again
        assert_eq!(rx.try_receive()?, 1);
        Ok(())
    })
    .unwrap();
    let tx = sender.join().unwrap();
    assert_eq!(tx.statistics().open_receive_channels, 1);
}

// ----- blocking ends on plain threads ---------------------------------------

#[test]
fn plain_threads_send_and_receive_with_blocking_calls() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let (back_tx, back_rx) = open_cross_run_channel::<u32>(0);
    // A thread outside any run echoes doubled values back.
    let worker = std::thread::spawn(move || {
        while let Ok(v) = rx.receive_blocking() {
            back_tx.send_blocking(v * 2).unwrap();
        }
        assert_eq!(
            rx.receive_blocking().unwrap_err().kind(),
            ErrorKind::EndOfChannel
        );
    });
    trio::run(async move {
        for i in 0..100 {
            tx.send(i).await?;
            assert_eq!(back_rx.receive().await?, i * 2);
        }
        Ok(())
    })
    .unwrap();
    worker.join().unwrap();
}

#[test]
fn blocking_calls_fail_on_a_runs_thread_instead_of_hanging_it() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let event = Event::new();
    trio::run(async {
        let e = tx.send_blocking(3).unwrap_err();
        assert_eq!((e.kind(), e.into_inner()), (ErrorKind::Usage, 3));
        assert_eq!(rx.receive_blocking().unwrap_err().kind(), ErrorKind::Usage);
        assert_eq!(event.wait_blocking().unwrap_err().kind(), ErrorKind::Usage);
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_closed_blocking_sender_gets_its_value_back() {
    let (tx, rx) = open_cross_run_channel::<String>(0);
    std::thread::scope(|s| {
        let blocked = s.spawn(|| tx.send_blocking("v".into()));
        until_blocking(|| waiting_send(&rx) == 1);
        rx.close();
        let e = blocked.join().unwrap().unwrap_err();
        assert_eq!(
            (e.kind(), e.into_inner()),
            (ErrorKind::Broken, "v".to_string())
        );
    });
}

// ----- many values, several runs ----------------------------------------------

fn several_runs_send_exactly_once_and_in_order(capacity: usize) {
    const SENDERS: usize = 3;
    const EACH: usize = 300;
    let (tx, rx) = open_cross_run_channel::<(usize, usize)>(capacity);
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let tx = tx.clone();
            spawn_run(move || async move {
                for i in 0..EACH {
                    tx.send((s, i)).await?;
                }
                Ok(())
            })
        })
        .collect();
    drop(tx);
    // Two receivers: a run and a blocking thread.
    let thread_rx = rx.clone();
    let thread_got = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Ok(v) = thread_rx.receive_blocking() {
            got.push(v);
        }
        got
    });
    let run_got = trio::run(async move {
        let mut got = Vec::new();
        while let Some(v) = rx.next().await {
            got.push(v?);
        }
        Ok(got)
    })
    .unwrap();
    for s in senders {
        s.join().unwrap().unwrap();
    }
    let thread_got = thread_got.join().unwrap();
    // Each receiver sees each sender's values in order; together, all of
    // them exactly once.
    for got in [&run_got, &thread_got] {
        for s in 0..SENDERS {
            let mine: Vec<usize> = got.iter().filter(|v| v.0 == s).map(|v| v.1).collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "out of order: {mine:?}"
            );
        }
    }
    let mut all: Vec<_> = run_got.into_iter().chain(thread_got).collect();
    all.sort();
    let expected: Vec<_> = (0..SENDERS)
        .flat_map(|s| (0..EACH).map(move |i| (s, i)))
        .collect();
    assert_eq!(all, expected);
}

#[test]
fn several_runs_and_a_thread_rendezvous() {
    several_runs_send_exactly_once_and_in_order(0);
}

#[test]
fn several_runs_and_a_thread_through_a_small_buffer() {
    several_runs_send_exactly_once_and_in_order(4);
}

#[test]
fn several_runs_and_a_thread_unbounded() {
    several_runs_send_exactly_once_and_in_order(UNBOUNDED);
}

// ----- Event ------------------------------------------------------------------

#[test]
fn an_event_set_from_one_run_wakes_another_run_and_a_thread() {
    let event = Event::new();
    let blocked_thread = {
        let event = event.clone();
        std::thread::spawn(move || event.wait_blocking())
    };
    let setter = spawn_run({
        let event = event.clone();
        move || async move {
            until(|| event.waiting() == 3).await; // two tasks and the thread
            event.set();
            event.set(); // idempotent
            Ok(())
        }
    });
    trio::run(async {
        trio::open_nursery(async |n| {
            for _ in 0..2 {
                n.start_soon(event.wait());
            }
            Ok(())
        })
        .await?;
        assert!(event.is_set());
        event.wait().await // set: a checkpoint only
    })
    .unwrap();
    setter.join().unwrap().unwrap();
    blocked_thread.join().unwrap().unwrap();
    assert_eq!(event.waiting(), 0);
    assert!(format!("{event:?}").contains("set: true"));
}

#[trio::test(autojump)]
async fn a_cancelled_event_wait_leaves_the_list() -> trio::Result<()> {
    let event = Event::new();
    let r = trio::move_on_after(1.0, event.wait()).await?;
    assert_eq!(r, None);
    assert_eq!(event.waiting(), 0);
    assert!(!event.is_set());
    Ok(())
}

// ----- deadlock detection -------------------------------------------------------

#[test]
fn no_false_deadlock_while_the_sender_is_held_by_another_run() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let go = Event::new();
    let sender = spawn_run({
        let go = go.clone();
        move || async move {
            go.wait().await?; // held, unused, until the receiver is blocked
            tx.send(1).await?;
            Ok(())
        }
    });
    let got = trio::run(async {
        trio::open_nursery(async |n| {
            // The receive is this run's only task: blocked on an end held
            // elsewhere, which must not look like a deadlock.
            n.start_soon(async {
                assert_eq!(rx.receive().await?, 1);
                Ok(())
            });
            settle().await;
            go.set();
            Ok(())
        })
        .await
    });
    got.unwrap();
    sender.join().unwrap().unwrap();
}

#[test]
fn no_false_deadlock_while_the_sender_is_held_by_a_thread() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let thread = std::thread::spawn(move || {
        until_blocking(|| waiting_receive(&tx) == 1);
        std::thread::sleep(std::time::Duration::from_millis(20)); // the run sits blocked
        tx.send_blocking(1).unwrap();
    });
    let got = trio::run(async { rx.receive().await }).unwrap();
    assert_eq!(got, 1);
    thread.join().unwrap();
}

#[test]
fn a_receive_whose_senders_all_go_away_ends_instead_of_hanging() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let thread = std::thread::spawn(move || {
        until_blocking(|| waiting_receive(&tx) == 1);
        drop(tx);
    });
    let e = trio::run(async { rx.receive().await }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::EndOfChannel);
    thread.join().unwrap();
}

#[test]
fn a_real_deadlock_is_still_reported_after_cross_run_waits_ended() {
    // The counts a cross-run wait takes are given back whether it was
    // woken or cancelled: a later real deadlock is reported.
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let thread = std::thread::spawn(move || {
        until_blocking(|| waiting_receive(&tx) == 1);
        tx.send_blocking(1).unwrap();
        tx // kept open: the second receive is cancelled, not ended
    });
    let e = trio::run(async {
        assert_eq!(rx.receive().await?, 1);
        let r = trio::move_on_after(0.01, rx.receive()).await?;
        assert_eq!(r, None);
        let event = Event::new();
        let r = trio::move_on_after(0.01, event.wait()).await?;
        assert_eq!(r, None);
        trio::sync::Event::new().wait().await // nothing can ever set it
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Deadlock);
    let _tx = thread.join().unwrap();
}

#[test]
fn a_blocked_cross_run_wait_shows_in_the_task_tree() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let event = Event::new();
    trio::run(async {
        trio::open_nursery(async |n| {
            n.start_soon(async {
                let _ = rx.receive().await;
            });
            n.start_soon(async {
                let _ = event.wait().await;
            });
            settle().await;
            let tree = trio::lowlevel::task_tree()?.to_string();
            assert!(tree.contains("CrossRunReceiver.receive"), "{tree}");
            assert!(tree.contains("cross_run::Event.wait"), "{tree}");
            assert!(tree.contains("tests/cross_run.rs"), "{tree}");
            n.cancel_scope().cancel();
            Ok(())
        })
        .await
    })
    .unwrap();
    drop(tx);
}

// ----- waits left by futures leaked in an earlier run ------------------------

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
fn a_value_sent_past_a_receive_leaked_in_an_ended_run_goes_to_the_next_receiver() {
    let (tx, rx) = open_cross_run_channel::<u32>(0);
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
fn a_value_left_by_a_send_leaked_in_an_ended_run_is_dropped_not_received() {
    let (tx, rx) = open_cross_run_channel::<Arc<u32>>(1);
    let stale = Arc::new(2);
    trio::run(async {
        tx.try_send(Arc::new(1)).unwrap();
        leak_blocked(tx.send(stale.clone())).await; // the buffer is full
        Ok(())
    })
    .unwrap();
    assert_eq!(Arc::strong_count(&stale), 2);
    assert_eq!(*rx.try_receive().unwrap(), 1); // the buffered value, in order
    assert_eq!(rx.try_receive().unwrap_err().kind(), ErrorKind::WouldBlock);
    let s = rx.statistics();
    assert_eq!((s.current_buffer_used, s.tasks_waiting_send), (0, 0));
    assert_eq!(Arc::strong_count(&stale), 1, "the stale value was dropped");
}

/// A log of the values dropped.
#[derive(Clone, Default)]
struct Drops(Arc<std::sync::Mutex<Vec<u32>>>);

impl Drops {
    fn value(&self, id: u32) -> Tracked {
        Tracked(id, self.clone())
    }

    /// Which values have been dropped so far (sorted: when matters here,
    /// not the order within one close).
    fn so_far(&self) -> Vec<u32> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_unstable();
        v
    }
}

/// In a run that then ends, one blocked send of each value through its
/// sender, leaked: the sends go stale with their values queued.
fn leak_sends_in_an_ended_run(sends: Vec<(&CrossRunSender<Tracked>, Tracked)>) {
    trio::run(async {
        for (tx, value) in sends {
            leak_blocked(tx.send(value)).await;
        }
        Ok(())
    })
    .unwrap();
}

/// A value that says when it is dropped.
struct Tracked(u32, Drops);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.1.0.lock().unwrap().push(self.0);
    }
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tracked({})", self.0)
    }
}

/// The memory channel's test of the same name, across runs: sends leaked
/// in a run that has ended leave their values in the channel (nobody can
/// take them back); they stay there while a receiver is open, and closing
/// the last receiver (here from another thread) drops them, at that
/// moment, and no other value.
#[test]
fn closing_the_last_receiver_drops_values_left_by_sends_leaked_in_an_earlier_run() {
    let drops = Drops::default();
    let (tx, rx) = open_cross_run_channel::<Tracked>(0);
    let rx2 = rx.clone();
    leak_sends_in_an_ended_run(vec![(&tx, drops.value(1)), (&tx, drops.value(2))]);
    // The run has ended: its sends are stale, their values still queued.
    assert_eq!(drops.so_far(), [] as [u32; 0]);
    assert_eq!(tx.statistics().tasks_waiting_send, 2);
    rx.close(); // not the last receiver: the values stay
    assert_eq!(drops.so_far(), [] as [u32; 0]);
    assert_eq!(tx.statistics().tasks_waiting_send, 2);
    std::thread::spawn(move || rx2.close()).join().unwrap();
    assert_eq!(drops.so_far(), [1, 2], "the stale values were dropped");
    let s = tx.statistics();
    assert_eq!((s.tasks_waiting_send, s.open_receive_channels), (0, 0));
    // A later send is refused, its value handed back, not dropped.
    let e = tx.try_send(drops.value(3)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broken);
    assert_eq!(drops.so_far(), [1, 2]);
    drop(e);
    assert_eq!(drops.so_far(), [1, 2, 3]);
}

/// The same close, with the three kinds of value it finds: a buffered
/// value and a stale send's value are dropped by the close; a live
/// sender (a thread blocked behind the stale send) gets its value back
/// with `Broken`, and the value is dropped only when that sender drops it.
/// A future that ended its run with its send pending (returned out of the
/// run, not leaked) is stale too, and dropping it after the close drops
/// nothing more.
#[test]
fn closing_the_last_receiver_drops_the_buffer_and_stale_sends_but_hands_live_values_back() {
    let drops = Drops::default();
    let (tx, rx) = open_cross_run_channel::<Tracked>(1);
    let pending = trio::run(async {
        tx.try_send(drops.value(1)).unwrap(); // buffered
        leak_blocked(tx.send(drops.value(2))).await; // the buffer is full
        // Polled once, blocked, and carried out of the run alive.
        let mut pending = Box::pin(tx.send(drops.value(3)));
        poll_fn(|cx| {
            assert!(pending.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        Ok(pending)
    })
    .unwrap();
    std::thread::scope(|s| {
        let live = s.spawn(|| tx.send_blocking(drops.value(4)));
        until_blocking(|| waiting_send(&rx) == 3);
        assert_eq!(drops.so_far(), [] as [u32; 0]);
        rx.close();
        let e = live.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Broken);
        // Dropped by the close: the buffered value and the stale sends'
        // values; the live value is not.
        assert_eq!(drops.so_far(), [1, 2, 3]);
        let value = e.into_inner();
        assert_eq!(value.0, 4);
        drop(value);
        assert_eq!(drops.so_far(), [1, 2, 3, 4]);
    });
    let s = tx.statistics();
    assert_eq!((s.current_buffer_used, s.tasks_waiting_send), (0, 0));
    drop(pending); // its value is gone already: nothing is dropped twice
    assert_eq!(drops.so_far(), [1, 2, 3, 4]);
}

/// The sending side of the same rule: closing a send handle fails the
/// sends blocked through it, handing their values back; a send of that
/// handle leaked in a run that has ended has nobody to hand it to, so its
/// value is dropped at that close, and only that handle's: the other
/// handle's stale value stays queued until its own handle closes (here,
/// by being dropped). Then the receiver sees the end of the channel.
#[test]
fn closing_a_sender_drops_the_values_of_its_own_sends_leaked_in_an_earlier_run() {
    let drops = Drops::default();
    let (tx, rx) = open_cross_run_channel::<Tracked>(0);
    let tx2 = tx.clone();
    leak_sends_in_an_ended_run(vec![(&tx, drops.value(1)), (&tx2, drops.value(2))]);
    assert_eq!(waiting_send(&rx), 2);
    tx2.close();
    assert_eq!(drops.so_far(), [2]);
    assert_eq!(waiting_send(&rx), 1);
    std::thread::spawn(move || drop(tx)).join().unwrap();
    assert_eq!(drops.so_far(), [1, 2]);
    assert_eq!(waiting_send(&rx), 0);
    assert_eq!(
        rx.try_receive().unwrap_err().kind(),
        ErrorKind::EndOfChannel
    );
    assert_eq!(drops.so_far(), [1, 2]);
}

#[test]
fn handles_are_send_and_sync() {
    fn check<X: Send + Sync>() {}
    check::<CrossRunSender<String>>();
    check::<CrossRunReceiver<String>>();
    check::<Event>();
}

#[test]
fn no_false_deadlock_while_an_event_waits_for_a_thread() {
    let event = Event::new();
    let setter = {
        let event = event.clone();
        std::thread::spawn(move || {
            until_blocking(|| event.waiting() == 1);
            std::thread::sleep(std::time::Duration::from_millis(20)); // the run sits blocked
            event.set();
        })
    };
    trio::run(async { event.wait().await }).unwrap();
    setter.join().unwrap();
}

#[test]
fn a_runs_worker_thread_may_block_on_a_cross_run_channel() {
    // Worker threads of `to_thread` are not runs: the blocking twins work
    // there, and the run waits for the worker, not for itself.
    let (tx, rx) = open_cross_run_channel::<u32>(0);
    let sender = spawn_run(move || async move {
        tx.send(9).await?;
        Ok(())
    });
    let got =
        trio::run(async move { trio::to_thread::run_sync(move || rx.receive_blocking()).await? })
            .unwrap();
    assert_eq!(got, 9);
    sender.join().unwrap().unwrap();
}

// ----- hand-offs racing cancels and drops, from another thread -------------------

/// A small xorshift, so that each round's order of operations varies
/// reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Spins a little (0 to 255 iterations), to shift the next step
    /// against what the run is doing.
    fn jitter(&mut self) {
        for _ in 0..(self.next() % 256) {
            std::hint::spin_loop();
        }
    }
}

/// One round of the racing test, as the thread sees it.
struct Round {
    /// Which of the two channels the round receives from.
    channel: usize,
    /// The round's own scope, if it is one that the thread cancels; other
    /// rounds wait under the run's own cancel status, all the same one, so
    /// that they re-arm the run's spare wait record.
    cancel: Option<trio::CancelHandle>,
    /// Tells the run to drop the blocked receive instead of polling it
    /// again.
    drop_it: Arc<AtomicBool>,
    /// The waker the run's task was last polled with, to wake it for the
    /// drop.
    waker: Arc<std::sync::Mutex<Option<std::task::Waker>>>,
    /// Set by the run once the round's receive has ended (it may end at
    /// once, with a value a dropped receive gave back).
    over: Arc<AtomicBool>,
    /// Set once the thread is done with the round: a receive told to drop
    /// waits for it, so that a hand-off can reach it while it is being
    /// dropped (its wake-up posted, not yet applied).
    done: Arc<AtomicBool>,
}

/// A run receives, round after round, from one of two rendezvous
/// channels (alternately); a thread ends each round, at varying moments,
/// with a hand-off (`try_send`, which succeeds only into a waiting
/// receive) and then either nothing, a cancel of the round's scope, or a
/// drop of the receive; or with a cancel and then a hand-off. A round told
/// to drop waits in its poll until the thread's hand-off was tried, so
/// that a value can be handed to the receive while it is being dropped,
/// its wake-up posted but not applied when the next round (on the other
/// channel: the value goes back to the first) blocks on the run's
/// re-armed spare wait record. Each channel's values are received exactly
/// once and in order: a cancelled or dropped receive consumes nothing,
/// and no wake-up of an earlier round's wait ends a later one.
#[test]
fn hand_offs_racing_cancels_and_drops_lose_and_repeat_nothing() {
    const VALUES: u32 = 3000;
    let (tx_a, rx_a) = open_cross_run_channel::<u32>(0);
    let (tx_b, rx_b) = open_cross_run_channel::<u32>(0);
    let (rounds_tx, rounds_rx) = open_cross_run_channel::<Round>(UNBOUNDED);
    let thread = std::thread::spawn(move || {
        let txs = [tx_a, tx_b];
        let mut sent = [Vec::new(), Vec::new()];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // The values go out in order: the next one is the count so far.
        let count = |sent: &[Vec<u32>; 2]| (sent[0].len() + sent[1].len()) as u32;
        let hand_off = |channel: usize, sent: &mut [Vec<u32>; 2]| {
            let next = count(sent);
            if next < VALUES && txs[channel].try_send(next).is_ok() {
                sent[channel].push(next);
            }
        };
        while let Ok(round) = rounds_rx.receive_blocking() {
            let c = round.channel;
            rng.jitter();
            match round.cancel {
                Some(cancel) => {
                    // Cancel and hand-off, in either order.
                    if rng.next().is_multiple_of(2) {
                        hand_off(c, &mut sent);
                        rng.jitter();
                        cancel.cancel();
                    } else {
                        cancel.cancel();
                        rng.jitter();
                        hand_off(c, &mut sent);
                    }
                }
                None => {
                    // The receive is blocked (no scope: the round must
                    // end with the hand-off or the drop; with every value
                    // sent, with the drop, as the one the run still waits
                    // for may be back in the other channel).
                    until_blocking(|| {
                        waiting_receive(&txs[c]) == 1 || round.over.load(Ordering::SeqCst)
                    });
                    if round.over.load(Ordering::SeqCst) {
                        // Ended at once.
                    } else if count(&sent) < VALUES && rng.next().is_multiple_of(2) {
                        hand_off(c, &mut sent);
                    } else {
                        round.drop_it.store(true, Ordering::SeqCst);
                        let waker = round.waker.lock().unwrap().take();
                        waker.expect("the receive was polled").wake();
                        rng.jitter();
                        hand_off(c, &mut sent);
                    }
                }
            }
            round.done.store(true, Ordering::SeqCst);
        }
        sent
    });
    let got = trio::run(async {
        let rxs = [rx_a, rx_b];
        let mut got = [Vec::new(), Vec::new()];
        let (mut cancelled, mut dropped, mut rounds) = (0u32, 0u32, 0u32);
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut channel = 0;
        while got[0].len() + got[1].len() < VALUES as usize {
            rounds += 1;
            channel = 1 - channel;
            let scope = rng.next().is_multiple_of(3).then(CancelScope::new);
            let drop_it = Arc::new(AtomicBool::new(false));
            let waker = Arc::new(std::sync::Mutex::new(None));
            let done = Arc::new(AtomicBool::new(false));
            let over = Arc::new(AtomicBool::new(false));
            rounds_tx
                .try_send(Round {
                    channel,
                    cancel: scope.as_ref().map(CancelScope::handle),
                    drop_it: drop_it.clone(),
                    waker: waker.clone(),
                    over: over.clone(),
                    done: done.clone(),
                })
                .map_err(trio::Error::from)?;
            let receive = async {
                let mut receive = pin!(rxs[channel].receive());
                poll_fn(|cx| {
                    if drop_it.load(Ordering::SeqCst) {
                        // Dropped mid-wait (with the round), perhaps with
                        // a value handed to it whose wake-up is still
                        // posted.
                        while !done.load(Ordering::SeqCst) {
                            std::thread::yield_now();
                        }
                        return Poll::Ready(Ok(None));
                    }
                    *waker.lock().unwrap() = Some(cx.waker().clone());
                    receive.as_mut().poll(cx).map(|r| r.map(Some))
                })
                .await
            };
            let outcome = match &scope {
                Some(scope) => scope.run(receive).await?,
                None => Some(receive.await?),
            };
            over.store(true, Ordering::SeqCst);
            match outcome {
                Some(Some(v)) => got[channel].push(v),
                Some(None) => dropped += 1,
                None => cancelled += 1,
            }
        }
        rounds_tx.close();
        Ok((got, cancelled, dropped, rounds))
    });
    let (got, cancelled, dropped, rounds) = got.unwrap();
    let sent = thread.join().unwrap();
    assert_eq!(sent[0].len() + sent[1].len(), VALUES as usize);
    assert_eq!(got, sent);
    // The races happened: rounds ended all three ways.
    assert!(
        cancelled > 0 && dropped > 0,
        "{cancelled} {dropped} of {rounds}"
    );
}

/// One task blocked in two receives at once (`join!`), round after round,
/// each ended by a thread's hand-off in a varying order: the two waits
/// share the run's one spare wait record and a record of their own, and
/// each gets its own channel's values, in order.
#[test]
fn two_receives_of_one_task_at_once_each_get_their_own_values() {
    const ROUNDS: u32 = 2000;
    let (tx_a, rx_a) = open_cross_run_channel::<u32>(0);
    let (tx_b, rx_b) = open_cross_run_channel::<u32>(0);
    let thread = std::thread::spawn(move || {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for i in 0..ROUNDS {
            let (first, second) = if rng.next().is_multiple_of(2) {
                (&tx_a, &tx_b)
            } else {
                (&tx_b, &tx_a)
            };
            rng.jitter();
            first.send_blocking(i).unwrap();
            rng.jitter();
            second.send_blocking(i).unwrap();
        }
    });
    trio::run(async {
        for i in 0..ROUNDS {
            let (a, b) = futures::join!(rx_a.receive(), rx_b.receive());
            assert_eq!((a?, b?), (i, i));
        }
        Ok(())
    })
    .unwrap();
    thread.join().unwrap();
}
