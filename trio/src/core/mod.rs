//! The core: run loop, tasks and nurseries, cancel scopes, time, reactor.
//!
//! Everything above the core (synchronisation, channels, networking) is
//! built on the public low-level API re-exported in [`crate::lowlevel`].

pub(crate) mod cancel;
pub(crate) mod cancel_handle;
pub(crate) mod cancel_status;
pub(crate) mod cancel_waiter;
pub(crate) mod clock;
pub(crate) mod inbox;
pub(crate) mod instrument;
pub(crate) mod io;
pub(crate) mod nursery;
pub(crate) mod park;
pub(crate) mod run;
pub(crate) mod runtime;
pub(crate) mod runvar;
pub(crate) mod slab;
pub(crate) mod stored_waker;
pub(crate) mod task;
pub(crate) mod timers;
pub(crate) mod token;
#[cfg(feature = "tracing")]
pub(crate) mod trace;
pub(crate) mod tree;
#[allow(unsafe_code)]
pub(crate) mod waker;
