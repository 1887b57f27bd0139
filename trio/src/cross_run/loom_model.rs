//! Loom models of the cross-run protocol: the channel's real code (its
//! mutex, atomics and thread parking are loom's under `cfg(loom)`), with
//! blocking threads and with a stand-in for a task of a run
//! ([`ModelWaiter`]) that is woken through a real (loom) [`Inbox`], as a
//! task waiter is.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p trio --lib --release
//! --target-dir target/loom loom_model` (what `.ci/run` does).

use super::open_cross_run_channel;
use super::waiter::Waiter;
use crate::core::inbox::{Inbox, Posted};
use crate::error::ErrorKind;
use crate::lowlevel::Abort;
use loom::sync::{Arc, Condvar, Mutex};

/// The reactor, reduced to a wake-up flag the model's run loop blocks on
/// (as in `core/inbox.rs`'s model).
#[derive(Default)]
struct Reactor {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Reactor {
    fn notify(&self, posted: Posted) {
        if posted == Posted::Notify {
            *self.woken.lock().unwrap() = true;
            self.cond.notify_one();
        }
    }

    fn wait(&self) {
        let mut woken = self.woken.lock().unwrap();
        while !*woken {
            woken = self.cond.wait(woken).unwrap();
        }
        *woken = false;
    }
}

/// A task of a model run, as the channel sees it: what `TaskWaiter` does,
/// against a model inbox. Counted in the inbox until its wake posts a
/// reschedule of its wait, which gives the count back right after the post
/// (post first, then release; no poke), or until it is dropped.
pub(crate) struct ModelWaiter {
    inbox: Arc<Inbox>,
    reactor: Arc<Reactor>,
    counted: bool,
}

impl ModelWaiter {
    fn new(inbox: &Arc<Inbox>, reactor: &Arc<Reactor>) -> Self {
        inbox.outside_waker_made();
        ModelWaiter {
            inbox: inbox.clone(),
            reactor: reactor.clone(),
            counted: true,
        }
    }

    /// As `TaskWaiter::prepare`: posts under the primitive's mutex, then
    /// gives the count back.
    pub(crate) fn prepare(mut self) -> Option<ModelWake> {
        let key = crate::core::park::WaitKey {
            park: crate::core::slab::Key {
                index: 0,
                generation: 0,
            },
            run_id: 0,
        };
        let posted = self.inbox.post_reschedule(key);
        if posted == Posted::Closed {
            return None;
        }
        self.inbox.outside_waker_released_by_post();
        self.counted = false;
        Some(ModelWake {
            reactor: self.reactor.clone(),
            posted,
        })
    }
}

/// A model wake-up's second step: interrupt the model run's reactor.
pub(crate) struct ModelWake {
    reactor: Arc<Reactor>,
    posted: Posted,
}

impl ModelWake {
    pub(crate) fn finish(self) {
        self.reactor.notify(self.posted);
    }
}

impl Drop for ModelWaiter {
    fn drop(&mut self) {
        // Still counted: never woken (a withdraw), on the model run's
        // thread.
        if self.counted {
            let _ = self.inbox.outside_waker_dropped(true);
        }
    }
}

/// The model run's loop until the task's wait is rescheduled: drain, run
/// callbacks, and check that the run never looks deadlocked while a
/// wake-up it waits for may come.
fn run_loop_until_rescheduled(inbox: &Inbox, reactor: &Reactor) {
    let (mut wakes, mut reschedules, mut callbacks) = (Vec::new(), Vec::new(), Vec::new());
    let mut rescheduled = false;
    loop {
        if inbox.has_pending() {
            inbox.drain(&mut wakes, &mut reschedules, &mut callbacks);
            rescheduled |= !reschedules.is_empty();
            reschedules.clear();
            for cb in callbacks.drain(..) {
                cb();
            }
        }
        if rescheduled {
            return;
        }
        assert!(
            !inbox.is_quiet(),
            "false deadlock: a cross-run wake-up may come but the run looks quiet"
        );
        reactor.wait();
    }
}

#[test]
fn loom_model_rendezvous_between_blocking_threads() {
    loom::model(|| {
        let (tx, rx) = open_cross_run_channel::<u32>(0);
        let sender = loom::thread::spawn(move || tx.send_blocking(1).is_ok());
        assert_eq!(rx.receive_blocking().unwrap(), 1);
        assert!(sender.join().unwrap());
    });
}

#[test]
fn loom_model_buffered_values_then_the_end_of_the_channel() {
    loom::model(|| {
        let (tx, rx) = open_cross_run_channel::<u32>(1);
        let sender = loom::thread::spawn(move || {
            tx.send_blocking(1).unwrap();
            tx.send_blocking(2).unwrap();
            // Dropping the last sender ends the channel.
        });
        assert_eq!(rx.receive_blocking().unwrap(), 1);
        assert_eq!(rx.receive_blocking().unwrap(), 2);
        assert_eq!(
            rx.receive_blocking().unwrap_err().kind(),
            ErrorKind::EndOfChannel
        );
        sender.join().unwrap();
    });
}

#[test]
fn loom_model_closing_the_last_receiver_fails_a_blocked_sender() {
    loom::model(|| {
        let (tx, rx) = open_cross_run_channel::<u32>(0);
        let sender = loom::thread::spawn(move || tx.send_blocking(5));
        drop(rx);
        let e = sender.join().unwrap().unwrap_err();
        assert_eq!((e.kind(), e.into_inner()), (ErrorKind::Broken, 5));
    });
}

/// A task's receive is queued; another thread sends while the task's
/// scope is cancelled. Exactly one wins: either the cancel (the receive
/// consumed nothing: the send finds no receiver and keeps its value) or
/// the hand-off (the abort fails, and the value arrives through the run's
/// inbox). The run never looks deadlocked meanwhile.
#[test]
fn loom_model_a_cancel_racing_a_hand_off_loses_nothing() {
    loom::model(|| {
        let inbox = Arc::new(Inbox::new());
        let reactor = Arc::new(Reactor::default());
        let (tx, rx) = open_cross_run_channel::<u32>(0);
        let waiter = ModelWaiter::new(&inbox, &reactor);
        let seq = match rx.model_receive_or_queue(Waiter::Model(waiter)) {
            Ok(Err(seq)) => seq,
            _ => panic!("nothing was sent: the receive must wait"),
        };
        let sender = loom::thread::spawn(move || tx.try_send(7).map_err(|e| e.into_inner()));
        match rx.model_withdraw(seq) {
            Abort::Succeeded => {
                // The cancel won: nothing consumed.
                assert_eq!(sender.join().unwrap(), Err(7));
                assert!(rx.model_outcome(seq).is_none());
            }
            Abort::Failed => {
                // The hand-off won: the wake-up is on its way.
                run_loop_until_rescheduled(&inbox, &reactor);
                assert_eq!(rx.model_outcome(seq).unwrap().unwrap(), 7);
                assert_eq!(sender.join().unwrap(), Ok(()));
            }
        }
        // Every count the wait took has been given back.
        assert!(inbox.is_quiet() || inbox.has_pending());
    });
}

/// A task blocked in a receive in one run; the value comes from another
/// thread. The run never looks deadlocked until the wake-up arrives, and
/// the value is there when it does.
#[test]
fn loom_model_a_task_woken_from_another_thread() {
    loom::model(|| {
        let inbox = Arc::new(Inbox::new());
        let reactor = Arc::new(Reactor::default());
        let (tx, rx) = open_cross_run_channel::<u32>(0);
        let waiter = ModelWaiter::new(&inbox, &reactor);
        let seq = match rx.model_receive_or_queue(Waiter::Model(waiter)) {
            Ok(Err(seq)) => seq,
            _ => panic!("nothing was sent: the receive must wait"),
        };
        let sender = loom::thread::spawn(move || {
            tx.try_send(3).unwrap();
            // Dropping the last sender after the hand-off changes nothing
            // for the receive that already has its value.
        });
        run_loop_until_rescheduled(&inbox, &reactor);
        assert_eq!(rx.model_outcome(seq).unwrap().unwrap(), 3);
        sender.join().unwrap();
    });
}

/// A task's receive is queued; the last sender is dropped on another
/// thread. The end of the channel reaches the task through its run's inbox
/// and the run never looks deadlocked meanwhile.
#[test]
fn loom_model_the_last_sender_dropped_elsewhere_ends_a_tasks_receive() {
    loom::model(|| {
        let inbox = Arc::new(Inbox::new());
        let reactor = Arc::new(Reactor::default());
        let (tx, rx) = open_cross_run_channel::<u32>(0);
        let waiter = ModelWaiter::new(&inbox, &reactor);
        let seq = match rx.model_receive_or_queue(Waiter::Model(waiter)) {
            Ok(Err(seq)) => seq,
            _ => panic!("nothing was sent: the receive must wait"),
        };
        let dropper = loom::thread::spawn(move || drop(tx));
        run_loop_until_rescheduled(&inbox, &reactor);
        let e = rx.model_outcome(seq).unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::EndOfChannel);
        dropper.join().unwrap();
    });
}

/// `Event::set` on one thread, `wait_blocking` on another: the waiter
/// never misses the set, whichever comes first.
#[test]
fn loom_model_an_event_set_wakes_a_blocked_thread() {
    loom::model(|| {
        let event = super::Event::new();
        let setter = {
            let event = event.clone();
            loom::thread::spawn(move || event.set())
        };
        event.wait_blocking().unwrap();
        assert!(event.is_set());
        setter.join().unwrap();
    });
}
