//! The platform layer: every piece of OS-specific socket code lives here,
//! behind `cfg`s, the way mio keeps `sys/`, so that another OS (macOS and
//! the BSDs, whose kqueue mio already drives) means adding a branch here,
//! not editing [`socket`](crate::socket).
//!
//! - [`set_notsent_lowat`]: `TCP_NOTSENT_LOWAT` on Linux and Android, a
//!   no-op elsewhere (macOS has the option too, but socket2 does not expose
//!   it there yet).
//! - [`accept_error_is_transient`]: Trio's list of `accept` errors that
//!   mean "that connection died before we took it", which differ by OS.
//! - [`as_uninit`]: the crate's one `unsafe` outside the waker module, to
//!   hand an initialised buffer to socket2's `MaybeUninit` receive calls.

use std::io;
use std::mem::MaybeUninit;

/// Sets `TCP_NOTSENT_LOWAT` where the OS has it (see the module docs).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_notsent_lowat(socket: &socket2::Socket, bytes: u32) -> io::Result<()> {
    socket.set_tcp_notsent_lowat(bytes)
}

/// Sets `TCP_NOTSENT_LOWAT` where the OS has it (see the module docs).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_notsent_lowat(_socket: &socket2::Socket, _bytes: u32) -> io::Result<()> {
    Ok(())
}

/// Whether `accept` failed only because the pending connection died before
/// it was accepted (Trio's `_ignorable_accept_errno_names`): the listener
/// then tries again.
pub(crate) fn accept_error_is_transient(e: &io::Error) -> bool {
    let Some(code) = e.raw_os_error() else {
        return false;
    };
    let common = [
        libc::EPERM,
        libc::ECONNABORTED,
        libc::EPROTO,
        libc::ENETDOWN,
        libc::ENOPROTOOPT,
        libc::EHOSTDOWN,
        libc::EHOSTUNREACH,
        libc::EOPNOTSUPP,
        libc::ENETUNREACH,
    ];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let os_specific = [libc::ENONET];
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let os_specific: [i32; 0] = [];
    common.contains(&code) || os_specific.contains(&code)
}

/// Whether a `connect` on a non-blocking socket has started and will finish
/// in the background (`EINPROGRESS`; `EAGAIN` for Unix sockets whose
/// listener's backlog is full is a real failure, as in Trio).
pub(crate) fn connect_in_progress(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINPROGRESS)
}

/// Views an initialised buffer as a `MaybeUninit` one, for socket2's receive
/// calls, which only ever write initialised bytes into it.
#[allow(unsafe_code)]
pub(crate) fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the slice keeps
    // the same pointer, length and lifetime. Writing uninitialised bytes
    // through the result would make `buf` unsound to read afterwards; the
    // only callers pass it to socket2's `recv`/`recv_from`, which write
    // bytes the kernel copied (initialised) and never de-initialise any.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}
