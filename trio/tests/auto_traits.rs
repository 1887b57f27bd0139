//! Issue 9: `Send`/`!Send` pinned. Compile-time assertions: what may cross
//! threads is `Send + Sync`, and what belongs to a run (DESIGN §2: one run
//! per thread, tasks need not be `Send`) is neither, so it cannot be used
//! from another thread by mistake. Changing either is an API change; this
//! file then fails to compile. (`trio::guarantees` shows the `!Send` side
//! as `compile_fail` doctests for the main types.)

#![allow(dead_code)]

use trio::channel::MemoryChannelStatistics;
use trio::fs::{DirEntry, File, OpenOptions, PathError, ReadDir};
use trio::lowlevel::{Deadlock, ExternalWork, Task, TaskTree, TrioToken};
use trio::net::{
    ConnectAttemptsFailed, LookupError, OnHandlerError, ServeControl, SystemSocketFactory,
    TcpConnect, TcpListenOptions, ThreadResolver,
};
use trio::process::{
    CompletedProcess, Process, ProcessError, ProcessStderr, ProcessStdin, ProcessStdout,
    RunOptions, WaitMode,
};
use trio::socket::{Socket, SocketListener, SocketStream};
use trio::stream::{BufferedReceiveStream, ChunkTooLong};
use trio::sync::{
    Borrower, CapacityLimiter, CapacityLimiterGuard, CapacityLimiterStatistics, Condition,
    ConditionStatistics, Event, EventStatistics, Lock, LockGuard, LockStatistics, Mutex,
    MutexGuard, ParkingLot, ParkingLotStatistics, Semaphore, SemaphorePermit, SemaphoreStatistics,
    StrictFifoLock,
};
use trio::testing::{
    LockstepReceiveStream, LockstepSendStream, MemoryReceiveStream, MemorySendStream, MockClock,
    Sequencer, StepGuard,
};
use trio::{
    CancelScope, Either, Error, ErrorKind, Instant, MemoryReceiveChannel, MemorySendChannel,
    Nursery, Runner, SendError, StdError, SystemClock, TaskStatus,
};

/// Compiles only if every type is `Send + Sync`.
macro_rules! assert_send_sync {
    ($($t:ty),* $(,)?) => {
        const _: fn() = || {
            fn check<T: Send + Sync + ?Sized>() {}
            $(check::<$t>();)*
        };
    };
}

/// Compiles only if every type is `Send` and, through the same trick as
/// below, not `Sync`: owned I/O handles, which may move to another run
/// while idle (DESIGN §9) but are used by one task at a time through
/// `&self` methods with interior state.
macro_rules! assert_send_not_sync {
    ($($t:ty),* $(,)?) => {$(
        const _: fn() = || {
            fn check<T: Send + ?Sized>() {}
            check::<$t>();
            trait AmbiguousIfSync<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfSync<()> for T {}
            struct Invalid;
            impl<T: ?Sized + Sync> AmbiguousIfSync<Invalid> for T {}
            let _ = <$t as AmbiguousIfSync<_>>::some_item;
        };
    )*};
}

/// Compiles only if the type is not `Send` (and, since `Sync` would make
/// `&T: Send`, checks `!Sync` too). The trick (from `static_assertions`):
/// `some_item` is ambiguous, an error, exactly when the second impl also
/// applies, which it does iff the type is `Send`.
macro_rules! assert_not_send_or_sync {
    ($($t:ty),* $(,)?) => {$(
        const _: fn() = || {
            trait AmbiguousIfSend<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfSend<()> for T {}
            struct Invalid;
            impl<T: ?Sized + Send> AmbiguousIfSend<Invalid> for T {}
            let _ = <$t as AmbiguousIfSend<_>>::some_item;

            trait AmbiguousIfSync<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfSync<()> for T {}
            impl<T: ?Sized + Sync> AmbiguousIfSync<Invalid> for T {}
            let _ = <$t as AmbiguousIfSync<_>>::some_item;
        };
    )*};
}

// What crosses threads: handles to a run from outside it, errors, time,
// task identities, reports and statistics records.
assert_send_sync!(
    TrioToken,
    ExternalWork,
    Error,
    ErrorKind,
    StdError,
    SendError<u32>,
    Instant,
    SystemClock,
    Task,
    TaskTree,
    Deadlock,
    Borrower,
    Either<u32, Error>,
    LockStatistics,
    SemaphoreStatistics,
    CapacityLimiterStatistics,
    ConditionStatistics,
    EventStatistics,
    ParkingLotStatistics,
    MemoryChannelStatistics,
    // I/O: a bare socket (its registration is behind a mutex), options,
    // errors and records.
    Socket,
    OpenOptions,
    PathError,
    DirEntry,
    RunOptions,
    CompletedProcess,
    ProcessError,
    WaitMode,
    TcpConnect,
    ConnectAttemptsFailed,
    LookupError,
    ThreadResolver,
    SystemSocketFactory,
    OnHandlerError,
    ChunkTooLong,
);

// Owned I/O handles: they move between runs, one user at a time.
assert_send_not_sync!(
    SocketStream,
    SocketListener,
    BufferedReceiveStream<SocketStream>,
    File,
    Process,
    ProcessStdin,
    ProcessStdout,
    ProcessStderr,
);

// What belongs to one run (and so to one thread).
assert_not_send_or_sync!(
    Nursery<'static>,
    TaskStatus<u32>,
    CancelScope,
    MemorySendChannel<u32>,
    MemoryReceiveChannel<u32>,
    Lock,
    LockGuard,
    StrictFifoLock,
    Semaphore,
    SemaphorePermit,
    CapacityLimiter,
    CapacityLimiterGuard,
    Mutex<u32>,
    MutexGuard<'static, u32>,
    Condition,
    Event,
    ParkingLot,
    Runner,
    MockClock,
    Sequencer,
    StepGuard,
    // Run-bound I/O helpers: memory streams, serving control, options
    // holding a run's limiter or hooks.
    MemorySendStream,
    MemoryReceiveStream,
    LockstepSendStream,
    LockstepReceiveStream,
    ServeControl,
    TcpListenOptions,
    ReadDir,
    trio::fs::Builder,
);

/// The assertions above are checked when this file compiles; this test
/// only makes them show up in the test list, and checks a `TrioToken` can
/// actually be used from another thread.
#[test]
fn send_and_sync_are_pinned() {
    let token = trio::run(async { trio::lowlevel::current_trio_token() }).unwrap();
    std::thread::spawn(move || drop(token)).join().unwrap();
}
