//! The workload: tasks that run random operations on the world's
//! primitives, each operation wrapped in a random nest of cancel scopes.
//!
//! Every operation returns `Ok(())` when it is done, whatever the primitive
//! answered, and `Err` only with a `Cancelled` that belongs to an outer
//! scope (so the task unwinds). Errors the runtime must not produce are
//! recorded as violations (the run goes on, to find more).
//!
//! Operations that open nurseries (failing children, dropped nurseries,
//! shared clones) run child operations one level deeper, up to
//! [`MAX_DEPTH`]. Inside a nursery that may be dropped (`droppable`), only
//! operations whose cleanup works from any task are used: a raw
//! `Lock::acquire_raw` must be released by its owner, which a dropped
//! future cannot do.

use super::counters::C;
use super::ledger::Payload;
use super::prng::Rng;
use super::world::{Chan, Handoff, LimiterHeld, LockHeld, MutexHeld, SemHeld, World};
use std::any::Any;
use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use trio::lowlevel::{checkpoint_if_cancelled, current_task};
use trio::sync::{Borrower, Event};
use trio::{CancelScope, Error, ErrorKind, Nursery, Result};

/// How deep operations may nest nurseries.
pub const MAX_DEPTH: u32 = 2;

/// The message of the workload's own failures.
const BOOM: &str = "boom (an intentional failure)";

/// The payload of the workload's own panics (the panic hook stays quiet
/// about these).
pub struct Intentional;

pub type BoxFut<'w> = Pin<Box<dyn Future<Output = Result<()>> + 'w>>;

/// Where an operation runs.
#[derive(Clone, Copy)]
pub struct Ctx<'w> {
    pub w: &'w World,
    pub depth: u32,
    /// Inside a nursery whose future may be dropped.
    pub droppable: bool,
}

impl<'w> Ctx<'w> {
    fn deeper(self, droppable: bool) -> Ctx<'w> {
        Ctx {
            depth: self.depth + 1,
            droppable: self.droppable || droppable,
            ..self
        }
    }
}

// ----- results ----------------------------------------------------------------

fn note(w: &World, e: &Error) {
    match e.kind() {
        ErrorKind::Cancelled => w.bump(C::cancels_delivered),
        ErrorKind::Broken => w.bump(C::broken_errors),
        ErrorKind::Busy => w.bump(C::busy_errors),
        ErrorKind::Closed => w.bump(C::closed_errors),
        ErrorKind::WouldBlock => w.bump(C::would_block),
        ErrorKind::TooSlow => w.bump(C::too_slow),
        _ => {}
    }
}

/// `Ok(Some(v))` on success; `Ok(None)` for an error of an `allowed` kind
/// (or an unexpected one, which is recorded); `Err` for `Cancelled`.
fn check<T>(w: &World, what: &str, r: Result<T>, allowed: &[ErrorKind]) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            note(w, &e);
            if e.is_cancelled() {
                return Err(e);
            }
            if !allowed.contains(&e.kind()) {
                w.violation(format!("{what}: unexpected error {e:?}"));
            }
            Ok(None)
        }
    }
}

fn is_boom(e: &Error) -> bool {
    e.kind() == ErrorKind::Other && e.to_string() == BOOM
}

fn boom() -> Error {
    Error::new(ErrorKind::Other, BOOM)
}

/// A nursery's outcome: intentional failures are counted, a `Cancelled`
/// (an outer scope's) propagates, anything else is a violation.
pub fn settle_nursery<T>(w: &World, what: &str, r: Result<Option<T>>) -> Result<()> {
    let Err(e) = r else { return Ok(()) };
    let (cancelled, rest) = e.split(Error::is_cancelled);
    if let Some(rest) = rest {
        let mut booms = 0;
        for leaf in rest.leaves() {
            if is_boom(leaf) {
                booms += 1;
            } else {
                w.violation(format!("{what}: unexpected error {leaf:?}"));
            }
        }
        if booms > 0 {
            w.bump(C::child_failures);
        }
    }
    match cancelled {
        Some(c) => {
            w.bump(C::cancels_delivered);
            Err(c)
        }
        None => Ok(()),
    }
}

// ----- future helpers -----------------------------------------------------------

/// Catches a panic out of `poll` (the runtime resumes a child's panic in
/// the task that awaits its nursery).
struct CatchUnwind<F: Future>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let f = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| f.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Polls `fut` by hand at most `polls` more times, then drops it if it is
/// still pending (`None`).
struct DropAfterPolls<F: Future> {
    fut: Option<Pin<Box<F>>>,
    polls: u32,
}

impl<F: Future> Future for DropAfterPolls<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(f) = this.fut.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            this.fut = None;
            return Poll::Ready(Some(v));
        }
        if this.polls == 0 {
            // Dropped while the task is being polled: mid-way, from inside.
            this.fut = None;
            return Poll::Ready(None);
        }
        this.polls -= 1;
        Poll::Pending
    }
}

/// Runs `fut` against a timer; if the timer fires first, drops `fut`
/// (`None`), as `select!` drops its losing branch.
struct DropOnTimer<F: Future, T: Future> {
    fut: Option<Pin<Box<F>>>,
    timer: Pin<Box<T>>,
}

impl<F: Future, T: Future> Future for DropOnTimer<F, T> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(f) = this.fut.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            this.fut = None;
            return Poll::Ready(Some(v));
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            this.fut = None;
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// Polls `fut` once: its output if ready, else the still-pending future.
async fn poll_once<F: Future>(mut fut: Pin<Box<F>>) -> std::result::Result<F::Output, Pin<Box<F>>> {
    let ready = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match ready {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(fut),
    }
}

fn panic_intentionally() -> Result<()> {
    std::panic::panic_any(Intentional)
}

fn panic_is_intentional(payload: &(dyn Any + Send)) -> bool {
    payload.is::<Intentional>()
}

// ----- the task loop -------------------------------------------------------------

/// One workload task: `steps` random operations.
pub async fn worker<'w>(cx: Ctx<'w>, home: Nursery<'w>, mut rng: Rng, steps: u64) -> Result<()> {
    for _ in 0..steps {
        // Stop at once when an outer scope is cancelled (a shielded
        // operation would otherwise keep the task going until its deadline).
        checkpoint_if_cancelled().await?;
        random_op(cx, home.clone(), rng.fork()).await?;
    }
    Ok(())
}

/// The chaos task: until cancelled, cancels, shields and moves the
/// deadlines of other tasks' scopes.
pub async fn chaos(w: &World, mut rng: Rng) -> Result<()> {
    loop {
        trio::sleep(rng.secs(0.5)).await?;
        chaos_step(w, &mut rng)?;
    }
}

fn chaos_step(w: &World, rng: &mut Rng) -> Result<()> {
    let scopes = w.scopes.borrow().clone();
    let nurseries = w.nursery_scopes.borrow().clone();
    match rng.below(4) {
        0 if !scopes.is_empty() => {
            scopes[rng.below(scopes.len() as u64) as usize].cancel();
            w.bump(C::remote_cancels);
        }
        1 if !scopes.is_empty() => {
            let s = &scopes[rng.below(scopes.len() as u64) as usize];
            s.set_shield(!s.shield());
            w.bump(C::shield_toggles);
        }
        2 if !scopes.is_empty() => {
            // Finite, so that a shielded scope still ends.
            let s = &scopes[rng.below(scopes.len() as u64) as usize];
            s.set_deadline(trio::current_time() + secs(rng.secs(3.0)));
            w.bump(C::deadline_moves);
        }
        3 if !nurseries.is_empty() => {
            nurseries[rng.below(nurseries.len() as u64) as usize].cancel();
            w.bump(C::remote_cancels);
        }
        _ => {}
    }
    Ok(())
}

/// Closes the doomed channel's receivers at a random time: senders then
/// get `Broken` and buffered values are dropped.
pub async fn closer(w: &World, mut rng: Rng) -> Result<()> {
    trio::sleep(rng.secs(40.0)).await?;
    close_doomed(w);
    Ok(())
}

pub fn close_doomed(w: &World) {
    for c in w.chans.iter().filter(|c| c.doomed) {
        c.rx.close();
    }
    w.doomed_closed.set(true);
}

fn secs(s: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(s)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Send,
    Receive,
    StreamReceive,
    CloneAndClose,
    Lock,
    Mutex,
    Semaphore,
    Limiter,
    Event,
    Condition,
    Start,
    ServeHandoff,
    FailingChildren,
    DropNursery,
    LeakSend,
    Fd,
    Sleep,
    Chaos,
    WaitAllBlocked,
    Thread,
}

/// The operations available here, with weights.
fn menu(cx: Ctx<'_>) -> Vec<(u64, Op)> {
    let f = cx.w.features;
    let nest = cx.depth < MAX_DEPTH;
    let mut m = vec![
        (14, Op::Send),
        (14, Op::Receive),
        (3, Op::StreamReceive),
        (6, Op::Lock),
        (5, Op::Mutex),
        (5, Op::Semaphore),
        (6, Op::Limiter),
        (5, Op::Event),
        (5, Op::Condition),
        (5, Op::Start),
        (4, Op::Sleep),
        (1, Op::WaitAllBlocked),
    ];
    if nest {
        m.push((3, Op::CloneAndClose));
    }
    if f.start_handoff {
        m.push((4, Op::ServeHandoff));
    }
    if f.failing_children && nest {
        m.push((3, Op::FailingChildren));
    }
    if f.drop_nursery && nest {
        m.push((3, Op::DropNursery));
    }
    if f.leak_send {
        m.push((2, Op::LeakSend));
    }
    if f.fd_busy {
        m.push((2, Op::Fd));
    }
    if f.chaos {
        m.push((2, Op::Chaos));
    }
    if cx.w.threads {
        m.push((8, Op::Thread));
    }
    m
}

/// One random operation inside a random nest of cancel scopes.
pub fn random_op<'w>(cx: Ctx<'w>, home: Nursery<'w>, mut rng: Rng) -> BoxFut<'w> {
    let m = menu(cx);
    let total: u64 = m.iter().map(|(wt, _)| wt).sum();
    let mut x = rng.below(total);
    let mut op = m[0].1;
    for (wt, o) in &m {
        if x < *wt {
            op = *o;
            break;
        }
        x -= wt;
    }
    let r = rng.fork();
    let w = cx.w;
    let fut: BoxFut<'w> = match op {
        Op::Send => Box::pin(op_send(cx, r)),
        Op::Receive => Box::pin(op_receive(cx, r)),
        Op::StreamReceive => Box::pin(op_stream_receive(cx, r)),
        Op::CloneAndClose => Box::pin(op_clone_and_close(cx, r)),
        Op::Lock => Box::pin(op_lock(cx, r)),
        Op::Mutex => Box::pin(op_mutex(cx, r)),
        Op::Semaphore => Box::pin(op_semaphore(cx, r)),
        Op::Limiter => Box::pin(op_limiter(cx, r)),
        Op::Event => Box::pin(op_event(cx, r)),
        Op::Condition => Box::pin(op_condition(cx, r)),
        Op::Start => Box::pin(op_start(cx, home, r)),
        Op::ServeHandoff => Box::pin(async move { serve_handoff(w) }),
        Op::FailingChildren => Box::pin(op_failing_children(cx, r)),
        Op::DropNursery => Box::pin(op_drop_nursery(cx, r)),
        Op::LeakSend => Box::pin(op_leak_send(cx, r)),
        Op::Fd => Box::pin(op_fd(cx, r)),
        Op::Sleep => Box::pin(op_sleep(cx, r)),
        Op::Chaos => Box::pin(async move {
            let mut r = r;
            chaos_step(w, &mut r)
        }),
        Op::WaitAllBlocked => Box::pin(async move {
            if check(
                w,
                "wait_all_tasks_blocked",
                trio::testing::wait_all_tasks_blocked().await,
                &[],
            )?
            .is_some()
            {
                w.bump(C::wait_all_blocked);
            }
            Ok(())
        }),
        Op::Thread => Box::pin(op_thread(cx, r)),
    };
    in_random_scopes(w, &mut rng, fut)
}

/// Wraps `fut` in 0–2 scopes: `move_on_after`, `fail_after`, or a
/// `CancelScope` with a deadline (maybe shielded, maybe handed to the
/// chaos task). Every shielded scope has a finite deadline, so that the
/// run always ends.
pub fn in_random_scopes<'w>(w: &'w World, rng: &mut Rng, mut fut: BoxFut<'w>) -> BoxFut<'w> {
    for _ in 0..rng.below(3) {
        let d = rng.secs(3.0);
        fut = match rng.below(4) {
            0 => Box::pin(async move {
                let r = trio::move_on_after(d, fut).await?;
                if r.is_none() {
                    w.bump(C::scopes_caught);
                }
                Ok(())
            }),
            1 => Box::pin(async move {
                match trio::fail_after(d, fut).await {
                    Err(e) if e.kind() == ErrorKind::TooSlow => {
                        w.bump(C::too_slow);
                        Ok(())
                    }
                    r => r,
                }
            }),
            _ => {
                let scope = CancelScope::new()
                    .with_relative_deadline(d)
                    .expect("valid duration");
                if rng.chance(25) {
                    scope.set_shield(true);
                }
                if w.features.chaos {
                    w.register_scope(&scope);
                }
                Box::pin(async move {
                    let r = scope.run(fut).await;
                    if scope.cancelled_caught() {
                        w.bump(C::scopes_caught);
                    }
                    r.map(|_| ())
                })
            }
        };
    }
    fut
}

/// Holds a resource for a little while (a checkpoint, a sleep, or nothing).
async fn hold_for(rng: &mut Rng) -> Result<()> {
    match rng.below(3) {
        0 => trio::checkpoint().await,
        1 => trio::sleep(rng.secs(1.0)).await,
        _ => Ok(()),
    }
}

fn pick_chan<'w>(w: &'w World, rng: &mut Rng) -> &'w Chan {
    &w.chans[rng.below(w.chans.len() as u64) as usize]
}

// ----- channels -----------------------------------------------------------------

/// Records a value a receiver got, maybe holds it across a checkpoint.
async fn got_value(w: &World, v: Payload, rng: &mut Rng) -> Result<()> {
    w.ledger.received(v.id);
    w.bump(C::values_received);
    if rng.chance(20) {
        trio::checkpoint().await?;
    }
    drop(v);
    Ok(())
}

/// The error kinds a channel operation may give besides `Cancelled`.
fn channel_errors(chan: &Chan, try_op: bool) -> Vec<ErrorKind> {
    let mut k = Vec::new();
    if try_op {
        k.push(ErrorKind::WouldBlock);
    }
    if chan.doomed {
        // Receivers gone (Broken for senders), or a clone of the closed
        // master handle (Closed).
        k.extend([ErrorKind::Broken, ErrorKind::Closed]);
    }
    k
}

async fn send_one(
    w: &World,
    chan: &Chan,
    tx: &trio::MemorySendChannel<Payload>,
    try_op: bool,
) -> Result<()> {
    let v = w.payload(chan);
    let id = v.id;
    let r = if try_op {
        tx.try_send(v)
    } else {
        tx.send(v).await
    };
    match r {
        Ok(()) => {
            w.ledger.sent(id);
            w.bump(C::values_sent);
            Ok(())
        }
        Err(e) => {
            let (e, v) = e.into_parts();
            if v.id != id {
                w.violation(format!("a failed send of #{id} handed back #{}", v.id));
            }
            w.ledger.handed_back(v.id);
            w.bump(C::values_handed_back);
            drop(v);
            check(w, "send", Err::<(), _>(e), &channel_errors(chan, try_op)).map(|_| ())
        }
    }
}

async fn op_send(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let chan = pick_chan(w, &mut rng);
    let clone = rng.chance(50).then(|| chan.tx.clone());
    let tx = clone.as_ref().unwrap_or(&chan.tx);
    for _ in 0..rng.range(1, 3) {
        let try_op = rng.chance(25);
        send_one(w, chan, tx, try_op).await?;
    }
    if let Some(c) = clone
        && rng.chance(50)
    {
        // Closes even when cancelled.
        check(w, "aclose", c.aclose().await, &[])?;
    }
    Ok(())
}

async fn op_receive(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let chan = pick_chan(w, &mut rng);
    let clone = rng.chance(50).then(|| chan.rx.clone());
    let rx = clone.as_ref().unwrap_or(&chan.rx);
    for _ in 0..rng.range(1, 3) {
        let (r, try_op) = match rng.below(4) {
            0 => (rx.try_receive(), true),
            1 => (
                match rx.next().await {
                    Some(r) => r,
                    None => Err(Error::new(ErrorKind::EndOfChannel, "next() gave None")),
                },
                false,
            ),
            _ => (rx.receive().await, false),
        };
        if let Some(v) = check(w, "receive", r, &channel_errors(chan, try_op))? {
            got_value(w, v, &mut rng).await?;
        }
    }
    if let Some(c) = clone
        && rng.chance(30)
    {
        check(w, "aclose", c.aclose().await, &[])?;
    }
    Ok(())
}

/// Receives through the `Stream` impl on a clone; sometimes polls it once
/// by hand and drops the clone with the receive pending (a value already
/// handed to it must go back to the channel).
async fn op_stream_receive(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    use futures_core::Stream;
    let w = cx.w;
    let chan = pick_chan(w, &mut rng);
    let mut rx = chan.rx.clone();
    let drop_early = rng.chance(40);
    let item = if drop_early {
        match poll_fn(|task_cx| Poll::Ready(Pin::new(&mut rx).poll_next(task_cx))).await {
            Poll::Ready(item) => item,
            Poll::Pending => {
                drop(rx);
                return trio::checkpoint().await;
            }
        }
    } else {
        poll_fn(|task_cx| Pin::new(&mut rx).poll_next(task_cx)).await
    };
    w.bump(C::stream_receives);
    match item {
        Some(r) => {
            if let Some(v) = check(w, "stream receive", r, &channel_errors(chan, false))? {
                got_value(w, v, &mut rng).await?;
            }
        }
        None => w.violation(format!(
            "channel {} stream ended while senders were open",
            chan.index
        )),
    }
    Ok(())
}

/// Tasks blocked on a clone of one end, then the clone is closed under
/// them: blocked receivers get `Closed`, blocked senders get `Closed` and
/// their values back.
async fn op_clone_and_close(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let chan = pick_chan(w, &mut rng);
    let delay = rng.secs(1.0);
    let senders = rng.chance(50);
    let tx = chan.tx.clone();
    let rx = chan.rx.clone();
    let (tx, rx) = (&tx, &rx);
    let r = trio::open_nursery(async |n| {
        for _ in 0..rng.range(1, 2) {
            let mut r = rng.fork();
            if senders {
                n.start_soon(async move {
                    let mut k = channel_errors(chan, false);
                    k.push(ErrorKind::Closed);
                    let v = w.payload(chan);
                    let id = v.id;
                    match tx.send(v).await {
                        Ok(()) => {
                            w.ledger.sent(id);
                            w.bump(C::values_sent);
                            Ok(())
                        }
                        Err(e) => {
                            let (e, v) = e.into_parts();
                            w.ledger.handed_back(v.id);
                            w.bump(C::values_handed_back);
                            drop(v);
                            check(w, "send on a clone", Err::<(), _>(e), &k).map(|_| ())
                        }
                    }
                });
            } else {
                n.start_soon(async move {
                    let mut k = channel_errors(chan, false);
                    k.push(ErrorKind::Closed);
                    if let Some(v) = check(w, "receive on a clone", rx.receive().await, &k)? {
                        got_value(w, v, &mut r).await?;
                    }
                    Ok(())
                });
            }
        }
        trio::sleep(delay).await?;
        if senders {
            tx.close();
        } else {
            rx.close();
        }
        Ok(())
    })
    .await;
    settle_nursery(w, "clone-and-close nursery", r)
}

/// Sends on a channel, polls the send once by hand and, if it is pending,
/// leaks it with `mem::forget`. Half the time on the channel that outlives
/// the run: its leaked waiter is met again by the next run.
async fn op_leak_send(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let across = rng.chance(50);
    let chan = if across {
        &w.xchan
    } else {
        // Capacity 0 or 1 (likely full): the send parks.
        &w.chans[rng.below(2) as usize]
    };
    let v = w.payload(chan);
    let id = v.id;
    match poll_once(Box::pin(chan.tx.send(v))).await {
        Ok(Ok(())) => {
            w.ledger.sent(id);
            w.bump(C::values_sent);
        }
        Ok(Err(e)) => {
            let (e, v) = e.into_parts();
            w.ledger.handed_back(v.id);
            w.bump(C::values_handed_back);
            drop(v);
            check(
                w,
                "send before leaking",
                Err::<(), _>(e),
                &channel_errors(chan, false),
            )?;
        }
        Err(pending) => {
            w.ledger.leaked(id);
            w.bump(C::values_leaked);
            if across {
                w.bump(C::leaked_across_runs);
            }
            std::mem::forget(pending);
        }
    }
    trio::checkpoint().await
}

// ----- locks and friends ----------------------------------------------------------

async fn op_lock(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let me = current_task();
    match rng.below(4) {
        0 => {
            let Some(guard) = check(
                w,
                "Lock::try_acquire",
                w.lock.try_acquire(),
                &[ErrorKind::WouldBlock],
            )?
            else {
                return trio::checkpoint().await;
            };
            let held = LockHeld::enter(w, me);
            let r = hold_for(&mut rng).await;
            drop(held);
            drop(guard);
            r
        }
        1 if !cx.droppable => {
            // The raw form: the owner must release, also when cancelled.
            if check(w, "Lock::acquire_raw", w.lock.acquire_raw().await, &[])?.is_none() {
                return Ok(());
            }
            let held = LockHeld::enter(w, me);
            let r = hold_for(&mut rng).await;
            drop(held);
            if let Err(e) = w.lock.release() {
                w.violation(format!("Lock::release by its owner failed: {e}"));
            }
            r
        }
        _ => {
            let Some(guard) = check(w, "Lock::acquire", w.lock.acquire().await, &[])? else {
                return Ok(());
            };
            let held = LockHeld::enter(w, me);
            let r = hold_for(&mut rng).await;
            drop(held);
            drop(guard);
            r
        }
    }
}

async fn op_mutex(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let me = current_task();
    let guard = if rng.chance(25) {
        check(
            w,
            "Mutex::try_lock",
            w.mutex.try_lock(),
            &[ErrorKind::WouldBlock],
        )?
    } else {
        check(w, "Mutex::lock", w.mutex.lock().await, &[])?
    };
    let Some(mut guard) = guard else {
        return trio::checkpoint().await;
    };
    let held = MutexHeld::enter(w, me);
    // Read, let others run, write: a second holder would lose an update.
    let seen = guard.count;
    let r = hold_for(&mut rng).await;
    if r.is_ok() {
        guard.count = seen + 1;
        w.bump(C::mutex_sections);
    }
    drop(held);
    drop(guard);
    r
}

async fn op_semaphore(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    match rng.below(3) {
        0 => {
            let Some(permit) = check(
                w,
                "Semaphore::try_acquire",
                w.sem.try_acquire(),
                &[ErrorKind::WouldBlock],
            )?
            else {
                return trio::checkpoint().await;
            };
            let held = SemHeld::enter(w, false);
            let r = hold_for(&mut rng).await;
            drop(held);
            drop(permit);
            r
        }
        1 => {
            // Raw: released by the tracker, from whichever task drops it.
            if check(w, "Semaphore::acquire_raw", w.sem.acquire_raw().await, &[])?.is_none() {
                return Ok(());
            }
            let held = SemHeld::enter(w, true);
            let r = hold_for(&mut rng).await;
            drop(held);
            r
        }
        _ => {
            let Some(permit) = check(w, "Semaphore::acquire", w.sem.acquire().await, &[])? else {
                return Ok(());
            };
            let held = SemHeld::enter(w, false);
            let r = hold_for(&mut rng).await;
            drop(held);
            drop(permit);
            r
        }
    }
}

async fn op_limiter(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let lim = &w.limiter;
    let mode = rng.below(10);
    match mode {
        0 => {
            lim.set_total_tokens(rng.range(1, 3) as usize)?;
            w.bump(C::limiter_total_changes);
            trio::checkpoint().await
        }
        1 => {
            let b = Borrower::unique();
            let r = lim.try_acquire_on_behalf_of(b);
            if check(w, "try_acquire_on_behalf_of", r, &[ErrorKind::WouldBlock])?.is_none() {
                return trio::checkpoint().await;
            }
            let held = LimiterHeld::enter(w, b, true);
            let r = hold_for(&mut rng).await;
            drop(held);
            r
        }
        2 if w.features.shared_borrower && cx.depth < MAX_DEPTH => {
            shared_borrower_burst(cx, rng).await
        }
        3..=4 if w.features.shared_borrower => {
            // Two tasks may do this at once: while one holds the token,
            // the other must not get a second one.
            let b = w.shared_borrower;
            let r = lim.acquire_on_behalf_of(b).await;
            if check(w, "acquire_on_behalf_of(shared)", r, &[ErrorKind::Usage])?.is_none() {
                return Ok(());
            }
            w.bump(C::limiter_for_shared_borrower);
            let held = LimiterHeld::enter(w, b, true);
            let r = hold_for(&mut rng).await;
            drop(held);
            r
        }
        5..=6 => {
            let b = Borrower::unique();
            if check(
                w,
                "acquire_on_behalf_of",
                lim.acquire_on_behalf_of(b).await,
                &[],
            )?
            .is_none()
            {
                return Ok(());
            }
            let held = LimiterHeld::enter(w, b, true);
            let r = hold_for(&mut rng).await;
            drop(held);
            r
        }
        _ => {
            let Some(guard) = check(w, "CapacityLimiter::acquire", lim.acquire().await, &[])?
            else {
                return Ok(());
            };
            let held = LimiterHeld::enter(w, Borrower::current_task()?, false);
            let r = hold_for(&mut rng).await;
            drop(held);
            drop(guard);
            r
        }
    }
}

/// Two tasks acquire for the shared borrower at once, while this task
/// holds every free token and then gives them back one by one: when two
/// tokens come free, the first waiter gets one and the second must not get
/// another for the same borrower.
async fn shared_borrower_burst(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let lim = &w.limiter;
    let mut taken = Vec::new();
    loop {
        let b = Borrower::unique();
        match lim.try_acquire_on_behalf_of(b) {
            Ok(()) => taken.push(LimiterHeld::enter(w, b, true)),
            Err(e) => {
                check(
                    w,
                    "try_acquire_on_behalf_of",
                    Err::<(), _>(e),
                    &[ErrorKind::WouldBlock],
                )?;
                break;
            }
        }
    }
    let r = trio::open_nursery(async |n| {
        for _ in 0..2 {
            let mut r = rng.fork();
            n.start_soon(async move {
                let got = lim.acquire_on_behalf_of(w.shared_borrower).await;
                if check(w, "acquire_on_behalf_of(shared)", got, &[ErrorKind::Usage])?.is_some() {
                    w.bump(C::limiter_for_shared_borrower);
                    let held = LimiterHeld::enter(w, w.shared_borrower, true);
                    let r = hold_for(&mut r).await;
                    drop(held);
                    r?;
                }
                Ok(())
            });
        }
        // Let both queue up (a child runs in the batch after its spawn),
        // then free the tokens one at a time.
        for _ in 0..3 {
            trio::checkpoint().await?;
        }
        while let Some(t) = taken.pop() {
            drop(t);
            trio::checkpoint().await?;
        }
        Ok(())
    })
    .await;
    drop(taken);
    settle_nursery(w, "shared-borrower nursery", r)
}

async fn op_event(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let i = rng.below(3) as usize;
    if rng.chance(35) {
        // One-shot: set it and put a fresh one in its place.
        let e = std::mem::replace(&mut w.events.borrow_mut()[i], Event::new());
        e.set();
        w.bump(C::events_set);
        return trio::checkpoint().await;
    }
    let e = w.events.borrow()[i].clone();
    if check(w, "Event::wait", e.wait().await, &[])?.is_some() {
        if !e.is_set() {
            w.violation("Event::wait returned Ok but the event is not set".into());
        }
        w.bump(C::event_waits_woken);
    }
    Ok(())
}

async fn op_condition(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let me = current_task();
    let Some(guard) = check(w, "Condition::acquire", w.cond.acquire().await, &[])? else {
        return Ok(());
    };
    if rng.chance(50) {
        let held = LockHeld::enter(w, me);
        w.cond_notifies.set(w.cond_notifies.get() + 1);
        if rng.chance(50) {
            w.cond.notify(rng.range(1, 2) as usize)?;
        } else {
            w.cond.notify_all()?;
        }
        w.bump(C::condition_notifies);
        let r = hold_for(&mut rng).await;
        drop(held);
        drop(guard);
        return r;
    }
    let held = LockHeld::enter(w, me);
    let before = w.cond_notifies.get();
    // `wait` releases the lock: nobody holds it while we wait.
    drop(held);
    let r = w.cond.wait().await;
    // However it returns (except Broken), we hold the lock again.
    let held = LockHeld::enter(w, me);
    if r.is_ok() {
        if w.cond_notifies.get() == before {
            w.violation("Condition::wait returned Ok without a notify".into());
        }
        w.bump(C::condition_waits_woken);
    }
    let r = check(w, "Condition::wait", r, &[]).map(|_| ());
    drop(held);
    drop(guard);
    r
}

// ----- nurseries and start ---------------------------------------------------------

fn serve_handoff(w: &World) -> Result<()> {
    let h = w.handoffs.borrow_mut().pop_front();
    if let Some(h) = h {
        h.started_at.set(Some(trio::current_time()));
        h.status.started(42);
    }
    Ok(())
}

async fn op_start<'w>(cx: Ctx<'w>, home: Nursery<'w>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let variant = rng.below(if w.features.start_handoff { 5 } else { 3 });
    let mut r = rng.fork();
    let child_cx = cx;
    let home2 = home.clone();
    match variant {
        0 => {
            // The usual form: a little work, started(), more work in `home`.
            let r = home
                .start(async move |status| {
                    if r.chance(50) {
                        random_op(child_cx, home2.clone(), r.fork()).await?;
                    }
                    status.started(7);
                    random_op(child_cx, home2, r.fork()).await
                })
                .await;
            if let Some(v) = check(w, "start", r, &[])? {
                if v != 7 {
                    w.violation(format!(
                        "start returned {v}, not the value given to started()"
                    ));
                }
                w.bump(C::starts_ok);
            }
            Ok(())
        }
        1 => {
            // Fails before started(): start itself returns the error.
            let d = r.secs(1.0);
            let r: Result<u64> = home
                .start(async move |_status| {
                    trio::sleep(d).await?;
                    Err::<(), _>(boom())
                })
                .await;
            match r {
                Ok(v) => w.violation(format!("start of a failing task returned {v}")),
                Err(e) if is_boom(&e) => w.bump(C::starts_failed_early),
                Err(e) => {
                    check(w, "start (fails early)", Err::<(), _>(e), &[])?;
                }
            }
            Ok(())
        }
        2 => {
            // Returns without calling started(): a usage error.
            let r: Result<u64> = home
                .start(async move |_status| trio::checkpoint().await)
                .await;
            match r {
                Ok(v) => w.violation(format!(
                    "start of a task that never called started() returned {v}"
                )),
                Err(e) if e.kind() == ErrorKind::Usage => w.bump(C::starts_never_started),
                Err(e) => {
                    check(w, "start (never started)", Err::<(), _>(e), &[])?;
                }
            }
            Ok(())
        }
        _ => {
            // started() is called by whichever task serves the handoff; the
            // child then waits for `release`, which only this task sets
            // after start returns. start must return as soon as started()
            // is called, without any virtual time passing.
            let release = Event::new();
            let release2 = release.clone();
            let started_at = Rc::new(Cell::new(None));
            let started_at2 = started_at.clone();
            let result = home
                .start(async move |status| {
                    w.handoffs.borrow_mut().push_back(Handoff {
                        status,
                        started_at: started_at2,
                    });
                    release2.wait().await?;
                    random_op(child_cx, home2, r.fork()).await
                })
                .await;
            release.set();
            if let Some(t) = started_at.get() {
                let now = trio::current_time();
                if now > t {
                    w.violation(format!(
                        "start() returned {:.3}s (virtual) after another task called TaskStatus::started() (result {:?}): the caller was not woken",
                        now - t,
                        result.as_ref().map(|_| ()).map_err(|e| e.kind())
                    ));
                }
            }
            if let Some(v) = check(w, "start (handed off)", result, &[])? {
                if v != 42 {
                    w.violation(format!(
                        "start returned {v}, not the value given to started()"
                    ));
                }
                w.bump(C::starts_ok);
                w.bump(C::starts_handed_off);
            }
            Ok(())
        }
    }
}

/// A nursery whose children run random operations while one child (or the
/// body) fails or panics; the failure cancels the rest and comes out here.
async fn op_failing_children(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let child_cx = cx.deeper(false);
    let mode = rng.below(3);
    let delay = rng.secs(2.0);
    let r = CatchUnwind(Box::pin(trio::open_nursery(async |n| {
        if w.features.chaos {
            w.register_nursery_scope(n.cancel_scope());
        }
        for _ in 0..rng.range(1, 3) {
            n.start_soon(worker(child_cx, n.clone(), rng.fork(), rng.range(1, 3)));
        }
        match mode {
            0 => n.start_soon(async move {
                trio::sleep(delay).await?;
                Err::<(), _>(boom())
            }),
            1 => n.start_soon(async move {
                trio::sleep(delay).await?;
                panic_intentionally()
            }),
            _ => {
                trio::sleep(delay).await?;
                return Err(boom());
            }
        }
        Ok(())
    })))
    .await;
    match r {
        Ok(r) => settle_nursery(w, "failing-children nursery", r),
        Err(payload) if panic_is_intentional(&*payload) => {
            w.bump(C::panics_caught);
            Ok(())
        }
        Err(payload) => resume_unwind(payload),
    }
}

/// A nursery future dropped while its children run: after a few polls by
/// hand, or when a timer beats it (as `select!` drops a branch).
async fn op_drop_nursery(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let child_cx = cx.deeper(true);
    let by_polls = rng.chance(50);
    let polls = rng.range(0, 6) as u32;
    let after = rng.secs(2.0);
    let mut rng2 = rng.fork();
    let nursery = trio::open_nursery(async move |n| {
        if w.features.chaos {
            w.register_nursery_scope(n.cancel_scope());
        }
        for _ in 0..rng2.range(1, 3) {
            n.start_soon(worker(child_cx, n.clone(), rng2.fork(), rng2.range(1, 4)));
        }
        worker(child_cx, n.clone(), rng2.fork(), 1).await
    });
    let out = if by_polls {
        DropAfterPolls {
            fut: Some(Box::pin(nursery)),
            polls,
        }
        .await
    } else {
        DropOnTimer {
            fut: Some(Box::pin(nursery)),
            timer: Box::pin(trio::sleep(after)),
        }
        .await
    };
    match out {
        None => {
            w.bump(C::nurseries_dropped);
            trio::checkpoint().await
        }
        Some(r) => settle_nursery(w, "droppable nursery", r),
    }
}

// ----- the rest -------------------------------------------------------------------

async fn op_fd(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    use std::os::fd::AsRawFd;
    let w = cx.w;
    let fd = w.fd.0.as_raw_fd();
    // Nobody writes: this ends by the timeout, or at once with Busy when
    // another task is already waiting.
    let r = trio::move_on_after(rng.secs(1.0), trio::lowlevel::wait_readable(fd)).await;
    if let Some(Some(())) = check(w, "wait_readable", r, &[ErrorKind::Busy])? {
        w.violation("wait_readable returned on an fd nobody wrote to".into());
    }
    Ok(())
}

async fn op_sleep(_cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    match rng.below(3) {
        0 => trio::checkpoint().await,
        1 => trio::sleep(0.0).await,
        _ => trio::sleep(rng.secs(1.0)).await,
    }
}

/// A call into a worker thread (threads pass only): sometimes abandoned
/// when cancelled, sometimes limited by the world's limiter (shared with
/// the limiter operations), sometimes calling back into the run.
async fn op_thread(cx: Ctx<'_>, mut rng: Rng) -> Result<()> {
    let w = cx.w;
    let mut b = trio::to_thread::Builder::new().abandon_on_cancel(rng.chance(50));
    if rng.chance(50) {
        b = b.limiter(w.limiter.clone());
    }
    let micros = rng.below(300);
    let call_back = rng.chance(30);
    let r = b
        .run_sync(move || {
            std::thread::sleep(std::time::Duration::from_micros(micros));
            let back = call_back
                .then(|| trio::from_thread::run_sync(|| 1u64).ok())
                .flatten();
            (micros * 2, back)
        })
        .await;
    match r {
        Ok((v, back)) => {
            if v != micros * 2 {
                w.violation(format!("to_thread returned {v}, expected {}", micros * 2));
            }
            if back.is_some() {
                w.bump(C::from_thread_calls);
            }
            w.bump(C::thread_calls);
            Ok(())
        }
        Err(e) => {
            if e.is_cancelled() {
                w.bump(C::threads_abandoned);
            }
            check(w, "to_thread::run_sync", Err::<(), _>(e), &[]).map(|_| ())
        }
    }
}
