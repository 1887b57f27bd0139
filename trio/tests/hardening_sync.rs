//! Issue 8 ("Hardening the core"), the defects in the sync primitives and
//! channels: call-outs made while a primitive is borrowed or half-updated
//! (6), semaphore overflow (11), a limiter lending one borrower two tokens
//! (12), stale channel values dropped under the channel's borrow (13), and a
//! lock that did not know it was broken (19).
//!
//! The call-out tests (6) install an [`Instrument`] whose `task_scheduled`
//! hook uses the primitive: `reschedule` runs that hook synchronously,
//! inside the call that wakes a waiter. The hook must find the primitive
//! free to use (no borrow held) and already in its new state (the woken
//! waiter holds what it was handed).

mod common;
use common::settle;

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::rc::Rc;
use std::task::Poll;
use trio::lowlevel::{Instrument, Task, add_instrument, current_task, remove_instrument};
use trio::sync::{
    Borrower, CapacityLimiter, Condition, Event, Lock, Mutex, ParkingLot, Semaphore, StrictFifoLock,
};
use trio::{ErrorKind, open_memory_channel};

/// An instrument that calls its closure with every task made runnable.
struct OnScheduled(Box<dyn Fn(Task)>);

impl Instrument for OnScheduled {
    fn task_scheduled(&self, task: Task) {
        (self.0)(task)
    }
}

/// Runs `during` with `hook` installed as a `task_scheduled` hook, called
/// for every task but the running one (which is reported too when a child
/// of its nursery becomes runnable: its nursery has a child to poll).
fn with_scheduled_hook<R>(
    hook: impl Fn(Task) + 'static,
    during: impl FnOnce() -> R,
) -> trio::Result<R> {
    let me = current_task();
    let instrument = Rc::new(OnScheduled(Box::new(move |task| {
        if task != me {
            hook(task)
        }
    })));
    add_instrument(instrument.clone())?;
    let r = during();
    remove_instrument(&instrument)?;
    Ok(r)
}

/// A shared record of what the hook saw.
fn record<T>() -> Rc<RefCell<Vec<T>>> {
    Rc::new(RefCell::new(Vec::new()))
}

/// An outcome, reduced to its error kind.
fn kind_of<T>(r: trio::Result<T>) -> Result<(), ErrorKind> {
    r.map(drop).map_err(|e| e.kind())
}

// ----- 6: no call-outs under a borrow, none into a half-updated primitive --

#[trio::test(autojump)]
async fn a_scheduling_hook_may_use_the_channel_while_a_send_wakes_a_receiver() -> trio::Result<()> {
    let (tx, rx) = open_memory_channel::<u32>(1);
    let tx = Rc::new(tx);
    let seen = record();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            assert_eq!(rx.receive().await?, 1); // handed over directly
            assert_eq!(rx.receive().await?, 2); // sent by the hook
            Ok(())
        });
        settle().await;
        let (hook_tx, hook_seen) = (tx.clone(), seen.clone());
        with_scheduled_hook(
            move |_| {
                let s = hook_tx.statistics();
                let sent = hook_tx.try_send(2).map_err(|e| e.kind());
                hook_seen
                    .borrow_mut()
                    .push((s.tasks_waiting_receive, s.current_buffer_used, sent));
            },
            || tx.try_send(1).unwrap(),
        )?;
        assert_eq!(*seen.borrow(), [(0, 0, Ok(()))]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_scheduling_hook_may_use_the_channel_while_a_receive_wakes_a_sender() -> trio::Result<()>
{
    let (tx, rx) = open_memory_channel::<u32>(0);
    let rx = Rc::new(rx);
    let seen = record();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            tx.send(7).await?;
            Ok(())
        });
        settle().await;
        let (hook_rx, hook_seen) = (rx.clone(), seen.clone());
        let got = with_scheduled_hook(
            move |_| {
                let s = hook_rx.statistics();
                let again = kind_of(hook_rx.try_receive());
                hook_seen
                    .borrow_mut()
                    .push((s.tasks_waiting_send, s.current_buffer_used, again));
            },
            || rx.try_receive(),
        )?;
        assert_eq!(got?, 7);
        assert_eq!(*seen.borrow(), [(0, 0, Err(ErrorKind::WouldBlock))]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_scheduling_hook_finds_the_lock_already_handed_to_the_woken_waiter() -> trio::Result<()> {
    let lock = Lock::new();
    let seen = record();
    trio::open_nursery(async |n| {
        let guard = lock.acquire().await?;
        n.start_soon(async {
            let _guard = lock.acquire().await?;
            Ok(())
        });
        settle().await;
        let (hook_lock, hook_seen) = (lock.clone(), seen.clone());
        with_scheduled_hook(
            move |woken| {
                let owned = hook_lock.owner() == Some(woken);
                let again = kind_of(hook_lock.try_acquire());
                hook_seen.borrow_mut().push((owned, again));
            },
            || drop(guard),
        )?;
        assert_eq!(*seen.borrow(), [(true, Err(ErrorKind::WouldBlock))]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_scheduling_hook_finds_the_strict_fifo_lock_already_handed_to_the_woken_waiter()
-> trio::Result<()> {
    let lock = StrictFifoLock::new();
    let seen = record();
    trio::open_nursery(async |n| {
        lock.acquire_raw().await?;
        n.start_soon(async {
            let _guard = lock.acquire().await?;
            Ok(())
        });
        settle().await;
        let (hook_lock, hook_seen) = (lock.clone(), seen.clone());
        with_scheduled_hook(
            move |woken| {
                let owned = hook_lock.owner() == Some(woken);
                let again = kind_of(hook_lock.try_acquire_raw());
                hook_seen.borrow_mut().push((owned, again));
            },
            || lock.release(),
        )??;
        assert_eq!(*seen.borrow(), [(true, Err(ErrorKind::WouldBlock))]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_scheduling_hook_finds_the_mutex_already_handed_to_the_woken_waiter() -> trio::Result<()>
{
    let mutex = Rc::new(Mutex::new(0u32));
    let seen = record();
    trio::open_nursery(async |n| {
        let guard = mutex.lock().await?;
        n.start_soon(async {
            *mutex.lock().await? += 1;
            Ok(())
        });
        settle().await;
        let (hook_mutex, hook_seen) = (mutex.clone(), seen.clone());
        with_scheduled_hook(
            move |woken| {
                let owned = hook_mutex.statistics().owner == Some(woken);
                let again = kind_of(hook_mutex.try_lock());
                hook_seen.borrow_mut().push((owned, again));
            },
            || drop(guard),
        )?;
        assert_eq!(*seen.borrow(), [(true, Err(ErrorKind::WouldBlock))]);
        Ok(())
    })
    .await?;
    assert_eq!(*mutex.try_lock()?, 1);
    Ok(())
}

#[trio::test(autojump)]
async fn a_scheduling_hook_finds_the_condition_lock_already_handed_to_the_notified_waiter()
-> trio::Result<()> {
    let cond = Condition::new();
    let seen = record();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let _guard = cond.acquire().await?;
            cond.wait().await // releases the lock while waiting
        });
        settle().await;
        let guard = cond.acquire().await?;
        cond.notify_all()?; // moves the waiter onto the lock's queue
        let (hook_cond, hook_seen) = (cond.clone(), seen.clone());
        with_scheduled_hook(
            move |woken| {
                let owned = hook_cond.lock().owner() == Some(woken);
                let again = kind_of(hook_cond.try_acquire());
                hook_seen.borrow_mut().push((owned, again));
            },
            || drop(guard),
        )?;
        assert_eq!(*seen.borrow(), [(true, Err(ErrorKind::WouldBlock))]);
        Ok(())
    })
    .await?;
    Ok(())
}

/// A guard more than a defect test: the semaphore already handed its unit
/// over before waking the waiter.
#[trio::test(autojump)]
async fn a_scheduling_hook_finds_the_semaphore_unit_already_handed_to_the_woken_waiter()
-> trio::Result<()> {
    let sem = Semaphore::new(0);
    let seen = record();
    trio::open_nursery(async |n| {
        n.start_soon(async {
            let _unit = sem.acquire().await?;
            Ok(())
        });
        settle().await;
        let (hook_sem, hook_seen) = (sem.clone(), seen.clone());
        with_scheduled_hook(
            move |_| {
                let s = hook_sem.statistics();
                let again = kind_of(hook_sem.try_acquire_raw());
                hook_seen
                    .borrow_mut()
                    .push((s.value, s.tasks_waiting, again));
            },
            || sem.release(),
        )??;
        assert_eq!(*seen.borrow(), [(0, 0, Err(ErrorKind::WouldBlock))]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_scheduling_hook_finds_the_limiter_token_already_lent_to_the_woken_waiter()
-> trio::Result<()> {
    let limiter = CapacityLimiter::new(1)?;
    let seen = record();
    trio::open_nursery(async |n| {
        let token = limiter.acquire().await?;
        n.start_soon(async {
            let _token = limiter.acquire().await?;
            Ok(())
        });
        settle().await;
        let (hook_limiter, hook_seen) = (limiter.clone(), seen.clone());
        with_scheduled_hook(
            move |_| {
                let s = hook_limiter.statistics();
                // One token, lent to `woken`: nobody else may take it.
                let other = kind_of(hook_limiter.try_acquire_on_behalf_of(Borrower::unique()));
                hook_seen
                    .borrow_mut()
                    .push((s.borrowers, s.tasks_waiting, other));
            },
            || drop(token),
        )?;
        let woken = Borrower::from(n.child_tasks()[0]);
        assert_eq!(
            *seen.borrow(),
            [(vec![woken], 0, Err(ErrorKind::WouldBlock))]
        );
        Ok(())
    })
    .await?;
    assert_eq!(limiter.borrowed_tokens(), 0);
    Ok(())
}

#[trio::test(autojump)]
async fn a_scheduling_hook_finds_every_event_waiter_already_out_of_the_queue() -> trio::Result<()> {
    let ev = Event::new();
    let seen = record();
    trio::open_nursery(async |n| {
        for _ in 0..2 {
            n.start_soon(ev.wait());
        }
        settle().await;
        let (hook_ev, hook_seen) = (ev.clone(), seen.clone());
        with_scheduled_hook(
            move |_| {
                let s = hook_ev.statistics();
                hook_seen
                    .borrow_mut()
                    .push((hook_ev.is_set(), s.tasks_waiting));
            },
            || ev.set(),
        )?;
        assert_eq!(*seen.borrow(), [(true, 0), (true, 0)]);
        Ok(())
    })
    .await?;
    Ok(())
}

#[trio::test(autojump)]
async fn a_scheduling_hook_finds_every_unparked_task_already_out_of_the_lot() -> trio::Result<()> {
    let lot = ParkingLot::new();
    let seen = record();
    trio::open_nursery(async |n| {
        for _ in 0..2 {
            n.start_soon(lot.park());
        }
        settle().await;
        let (hook_lot, hook_seen) = (lot.clone(), seen.clone());
        let woken = with_scheduled_hook(
            move |_| hook_seen.borrow_mut().push(hook_lot.len()),
            || lot.unpark(2),
        )?;
        assert_eq!(woken.len(), 2);
        assert_eq!(*seen.borrow(), [0, 0]);
        Ok(())
    })
    .await?;
    Ok(())
}

// ----- 11: semaphore overflow ------------------------------------------------

#[trio::test]
async fn releasing_a_semaphore_already_at_usize_max_is_a_usage_error_that_changes_nothing()
-> trio::Result<()> {
    let sem = Semaphore::new(usize::MAX);
    assert_eq!(sem.release().unwrap_err().kind(), ErrorKind::Usage);
    assert_eq!(sem.value(), usize::MAX);
    // One unit taken and given back is fine; the second is one too many.
    let permit = sem.try_acquire()?;
    assert_eq!(sem.value(), usize::MAX - 1);
    drop(permit);
    assert_eq!(sem.value(), usize::MAX);
    Ok(())
}

// ----- 12: one token per borrower, counting waiters ---------------------------

#[trio::test(autojump)]
async fn a_borrower_waiting_for_a_token_cannot_wait_for_a_second_one() -> trio::Result<()> {
    let limiter = CapacityLimiter::new(1)?;
    let holder = Borrower::unique();
    let b = Borrower::unique();
    limiter.acquire_on_behalf_of(holder).await?;
    trio::open_nursery(async |n| {
        n.start_soon(limiter.acquire_on_behalf_of(b));
        settle().await;
        assert_eq!(limiter.statistics().tasks_waiting, 1);
        // `b` is waiting: asking again is the same misuse as asking while
        // holding a token, and fails at once.
        let again = trio::fail_after(1.0, limiter.acquire_on_behalf_of(b)).await;
        assert_eq!(kind_of(again), Err(ErrorKind::Usage));
        assert_eq!(
            kind_of(limiter.try_acquire_on_behalf_of(b)),
            Err(ErrorKind::Usage)
        );
        assert_eq!(limiter.statistics().tasks_waiting, 1);
        limiter.release_on_behalf_of(holder)?; // the first wait gets it
        Ok(())
    })
    .await?;
    assert_eq!(limiter.statistics().borrowers, [b]);
    limiter.release_on_behalf_of(b)?;
    assert_eq!(limiter.borrowed_tokens(), 0);
    Ok(())
}

// ----- 13: stale channel values are dropped outside the channel's borrow ------

/// A value whose destructor uses the channel it travels in.
struct UsesChannelOnDrop(Box<dyn Fn()>);

impl Drop for UsesChannelOnDrop {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Two runs, so a plain `#[test]`: the channel outlives the first, in which
/// a blocked send future is leaked (`mem::forget`), leaving its value queued
/// behind a wait that can never be woken.
#[test]
fn a_value_left_by_a_send_leaked_in_an_earlier_run_is_dropped_outside_the_channel() {
    let (tx, rx) = open_memory_channel::<UsesChannelOnDrop>(0);
    let rx = Rc::new(rx);
    let seen = record();
    let (drop_rx, drop_seen) = (rx.clone(), seen.clone());
    let value = UsesChannelOnDrop(Box::new(move || {
        drop_seen
            .borrow_mut()
            .push(drop_rx.statistics().tasks_waiting_send);
    }));
    trio::run(async {
        let mut send = Box::pin(tx.send(value));
        poll_fn(|cx| {
            assert!(send.as_mut().poll(cx).is_pending()); // now blocked
            Poll::Ready(())
        })
        .await;
        std::mem::forget(send);
        Ok(())
    })
    .unwrap();
    assert_eq!(rx.statistics().tasks_waiting_send, 1); // the stale send
    trio::run(async {
        // The stale send cannot complete: its value is dropped, and the
        // receive finds nothing.
        assert_eq!(kind_of(rx.try_receive()), Err(ErrorKind::WouldBlock));
        Ok(())
    })
    .unwrap();
    assert_eq!(*seen.borrow(), [0]);
}

// ----- 19: a lock knows at once that its owner is gone ------------------------

#[trio::test(autojump)]
async fn an_uncontended_lock_is_broken_as_soon_as_its_owner_exits_holding_it() -> trio::Result<()> {
    let lock = Lock::new();
    trio::open_nursery(async |n| {
        n.start_soon(lock.acquire_raw()); // exits holding it
        Ok(())
    })
    .await?;
    assert!(lock.is_broken());
    assert_eq!(kind_of(lock.try_acquire()), Err(ErrorKind::Broken));
    Ok(())
}
