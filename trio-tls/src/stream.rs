//! [`TlsStream`]: TLS over any trio [`Stream`], on rustls (DESIGN §9, Trio's
//! `SSLStream`).
//!
//! # Design
//!
//! rustls is a state machine with no I/O. This module drives its
//! *unbuffered* API (`UnbufferedClientConnection`,
//! `UnbufferedServerConnection`): `process_tls_records` is handed the
//! received bytes, decrypts in place in them, and answers with a state
//! (plaintext to take, a handshake record to encode, room to encrypt
//! application data, more input needed) and how many bytes to discard
//! from the front. All of that is synchronous and happens under a short
//! `RefCell` borrow of the connection, never across an `await`. The awaits
//! are on the transport only; sending is under one internal trio [`Lock`],
//! receiving under a flag:
//!
//! - **Sending** (`send_lock`). Every byte rustls produces, by whichever
//!   task, is appended at once to one `outgoing` buffer, in the order
//!   rustls produced it. The task holding the send lock hands *everything*
//!   in `outgoing` to the transport and loops until it is empty. So the
//!   order on the wire is rustls's order, and a task cancelled while
//!   waiting for the lock loses nothing: its bytes are still queued and go
//!   out with the next flush.
//! - **Receiving** (`receiving`). One task at a time receives from the
//!   transport, straight into `incoming`, the buffer rustls then decrypts
//!   in. No lock is needed for that: the receivers are the handshake's
//!   runner, the one `receive_some` (a second one is `Busy`), which waits
//!   for the handshake first, and `unwrap`, which owns the stream. The
//!   `receiving` flag checks it (an overlap would be `Busy`, not a race),
//!   and keeps `receive_some` from running rustls on the received bytes
//!   while a receive is under way.
//!
//! # Processing
//!
//! A run of the state machine (`run`) loops until rustls needs something
//! from outside: more input, or (for a sender) the room to encrypt. Each
//! decrypted record's plaintext is copied straight into the receiving
//! caller's buffer; only what does not fit (a record larger than the
//! buffer, or a record processed by a task that was not receiving) goes
//! to the `plain` buffer, which `receive_some` empties first. A run stops
//! before a record that might not fit the rest of the caller's buffer
//! rather than decrypt it into `plain`. So a bulk receive copies each byte
//! once from the kernel into `incoming` and once out to the caller (plus
//! rustls's own copy of each record's plaintext, which tokio-rustls pays
//! too): one copy fewer than feeding rustls's buffered API, whose
//! `read_tls` reads from a synchronous `io::Read`, from our buffer.
//!
//! rustls reports exactly how many bytes it is done with, and reads
//! nothing after the peer's `close_notify`: whatever follows it stays in
//! `incoming`, and [`TlsStream::unwrap`] returns it with the transport.
//!
//! # Full duplex
//!
//! To encrypt, a sender needs rustls's `WriteTraffic` state, which only
//! `process_tls_records` gives, and that call takes the received bytes,
//! which the receiver holds while it waits on the transport. The sender
//! therefore passes an empty slice instead, which is equivalent while
//! rustls keeps nothing in `incoming`. rustls does keep something there in
//! one case: a handshake message split over several records, whose first
//! records it leaves in place (remembering offsets into the buffer) until
//! the rest arrives; an empty stand-in would then make rustls slice out of
//! bounds. `held` says when that may be so: after a run that stopped for
//! more input (or to write), a whole record still at the front of
//! `incoming` may be one rustls kept, since it processes every whole record
//! before it asks for more (it errs on the safe side: rustls also leaves
//! in place records it will never read, such as those after the peer's
//! `close_notify`, and `held` is then set needlessly, which costs only the
//! copy below). After plaintext nothing is kept: a handshake message
//! cannot be interleaved with application data. While `held`, the sender
//! passes the real buffer (rustls finds nothing new to process in it), and
//! the receiver leaves `incoming` in place and receives into a separate
//! buffer that it then appends (one copy, only then: post-handshake
//! messages split over records are rare). rustls bounds a handshake
//! message's declared size, not the records that carry it (one byte per
//! record, or TLS 1.3's zero padding, could make it keep gigabytes), so
//! while `held` the kept bytes are limited: past either limit the stream
//! is Broken.
//!
//! - The bytes of one message (`HELD_LIMIT`, 64 KiB and two records),
//!   counted from where rustls last completed a message (`held_mark`).
//! - All the bytes kept (`HELD_RUN_LIMIT`, 4 MiB). rustls discards
//!   nothing of a run of handshake records until one of them ends where a
//!   message ends: until then its offsets start at the run's first record,
//!   even for the messages it has completed. A TLS 1.3 server sends its
//!   session tickets as one flight cut into full records without regard to
//!   where a ticket ends (rustls's `HandshakeFlight`): 5 000 tickets of 81
//!   bytes are 405 KB in which no record ends where a ticket does, so the
//!   whole flight is kept. Tickets of one size line up with the records
//!   every so often (81-byte tickets every 1.3 MB), and each flight ends
//!   with its last ticket, so any number of tickets is fine; but a run
//!   that does not line up for 4 MiB is refused rather than kept without
//!   bound.
//!
//! The only messages after the handshake that can span records are a
//! client's session tickets (rustls requires a key update to end its
//! record, and a server receives no others), so "completed a message" is
//! seen from rustls's count of tickets received; during the handshake no
//! message counts as completed, and both limits apply to all held bytes.
//!
//! After rustls returns an error (or its input is refused as above) it is
//! never run again: it may keep offsets into bytes that are gone. A
//! dedicated flag (`tls_failed`) says so, apart from the status, since
//! [`aclose`](AsyncResource::aclose) turns Broken into Closed. `aclose`
//! still queues its own `close_notify` on a Closed stream whose rustls did
//! not fail: that run reads no new input (a stand-in, or while `held` the
//! real buffer, whose records rustls has all seen).
//!
//! The server name (SNI) is read by wrapping the config's certificate
//! resolver (rustls's unbuffered server has no accessor for it): the
//! resolver sees exactly the name rustls keeps, and notes it in a
//! thread-local slot that the run which called it takes at once.
//!
//! # Buffers
//!
//! A stream starts small (`START_RECEIVE`, 4 KiB receives) and grows its
//! buffers for a bulk transfer: receives double while they come back full,
//! up to `MAX_RECEIVE` (128 KiB), `outgoing` and its spare to a
//! `SEND_CHUNK` of ciphertext (64 KiB), `plain` to what a receive left
//! over. It gives that memory back once it is drained and idle: when a
//! transport receive that follows one which took all the peer's bytes
//! (`burst_over`: it returned less than it asked) waits `IDLE_SHRINK` (1
//! s) with nothing received, and some buffer grew, that receive is
//! cancelled (a cancelled receive has no effect), the empty buffers are
//! dropped (`incoming`, `plain`, `outgoing` if nothing is queued, the
//! spare) and the receive waits again on a 4 KiB buffer; the receives
//! grow again as at the start. The bulk path pays nothing for this: a
//! receive after a full one is not bounded, and one after a short one
//! only enters a cancel scope with a deadline (the peer's burst was over:
//! it usually waits anyway). What it does not cover: a stream nobody
//! receives on keeps its send buffers, and a transfer whose last receive
//! came back exactly full keeps its buffers until the next short receive.
//! Server instructions per MiB received (`--instructions --mib 4`, three
//! runs each, 2026-11-27): 3.0599–3.0615 M before, 3.0553–3.0614 M after.
//!
//! # Costs against tokio-rustls
//!
//! Server instructions (callgrind: `cargo bench -p trio-tls --bench tls --
//! --instructions`, marginal between 100 and 200 handshakes and between
//! 16 and 32 MiB): per MiB received 3.061–3.063 M against tokio-rustls's
//! 3.059–3.085 M (0.993–1.001; 3.21 M, 1.042, when this module fed
//! rustls's buffered API; `--mib 4` runs of 2026-11-27: 0.991–0.995). Per
//! TLS 1.3 handshake (2026-11-27, `--handshakes 400`, so 400 against 800,
//! two runs each): before the composite operations ("Schedule points")
//! 1.3127 and 1.3136 M against 1.3125 and 1.3124 M (1.000, 1.001); with
//! them 1.3096 and 1.3107 M against 1.3127 and 1.3123 M (0.998, 0.999).
//! With the default `--handshakes 100` the figure moves by a few K from
//! run to run (0.997 to 1.002 with them, 1.000 twice before): it depends
//! on how many connections happen to wait for the client and so register
//! with the reactor, which differs between the two sizes. A handshake
//! is a floor of shared work: ring's cryptography alone is 1.2123 M of it,
//! the same to the instruction in both servers; then `malloc` (24.7 K
//! against 25.5 K), rustls itself (16.2 K; tokio-rustls's buffered use of
//! it 18.2 K, tokio-rustls included) and `memcpy` (15.7 K against 18.6 K:
//! trio-tls copies less). Trio's and trio-tls's own code (by source
//! file, without what the compiler inlined from std) run 3.6 K and 3.5 K
//! per handshake, tokio's 4.1 K. The connection's task is polled 5 times
//! per handshake (8 before: every transport operation took its own
//! schedule point; tokio's 3). A handshake at 0.99 of tokio-rustls's
//! would need 13 K fewer instructions than it, about twice all of trio's
//! and trio-tls's own code: the difference left is not in this layer.
//!
//! Skipping the schedule point of every transport operation, handshake
//! flights included, measured worse (1.3168 M, 1.003): right after its
//! flight the server reads the client's Finished, which cannot be there
//! yet, so nearly every connection registers with the reactor (`strace`:
//! 0.71 `EAGAIN` receives and `epoll_ctl` pairs per handshake against
//! 0.09–0.14 with the yield), and registering, arming a wait and
//! deregistering at close cost more than the three polls saved (measured
//! when the unscheduled operations waited as poll waiters; they now run
//! the ordinary operation's wait without its trailing schedule point, at
//! the same instruction counts: 0.999 per handshake, 0.993 per MiB). A trio
//! socket registers on its first wait and learns readiness from then on
//! (tokio registers every socket up front, and always pays the
//! `epoll_ctl` pair), so a first wait also costs one `EAGAIN` receive.
//!
//! System calls (`strace -c -f` on the server, marginal per handshake, 8
//! client loops; strace slows the server until it is always busy): trio 1
//! `accept4`, 2 `setsockopt` (TCP_NODELAY and TCP_NOTSENT_LOWAT), 3
//! `sendto`, 3 receives, 1 `close`, and, when a receive finds nothing
//! there yet (0.1 to 0.2 times a handshake), one `EAGAIN` receive and an
//! `epoll_ctl` add and delete; tokio-rustls 1.4 `accept4` (0.4 `EAGAIN`),
//! 1 `setsockopt`, 4 `writev`, 3 receives, a `shutdown`, always an
//! `epoll_ctl` add and delete, and 0.8 `mprotect`. An accepted socket is
//! set up with `accept4(SOCK_NONBLOCK | SOCK_CLOEXEC)` and its listener's
//! family (no `fcntl`, `SO_TYPE` or `getsockname` per connection).
//!
//! `epoll_wait` counts depend on how often the server runs out of work,
//! not on the TLS layer: trio's run loop (`core/run.rs`) polls the reactor
//! only when no task is runnable (a blocking wait) or, while tasks are
//! runnable, every 61st batch if some task waits on I/O (tokio's
//! `event_interval`); tokio's `current_thread` parks in `epoll_wait` when
//! its queue is empty and also looks every 61 ticks. So each time all of
//! a server's connections wait for the client, it makes one `epoll_wait`,
//! which usually returns one event. With strace on every system call the
//! server never runs dry: about 0 `epoll_wait` a handshake for trio, 0.3
//! for tokio. Tracing only `epoll_*` and `accept4` (`strace -f
//! --seccomp-bpf -e trace=epoll_wait,epoll_ctl,accept4`, 2000 and 4000
//! handshakes, at load 9 on the shared machine): trio 2.4 a handshake
//! before this change and 2.1 after, tokio 2.0 and 1.2, varying with the
//! load from run to run as much as between the servers. A difference of
//! the run loops, if any, is the core's to look at.
//!
//! Pinned timing (`cargo bench -p trio-tls --bench tls -- --pin --rounds 9
//! --handshakes 2000 --mib 256`; median of the per-round ratio trio/tokio
//! of server CPU per operation, and its range), three runs back to back.
//! With the composite operations (2026-11-27, the first run started at
//! load 1.5 on the shared 2-core machine, other helpers' builds came back
//! during the second and third: load 3.1 and 4.6): handshakes 0.911
//! [0.736–1.073], 0.969 [0.778–1.190], 0.956 [0.814–1.119]; bulk 0.858
//! [0.795–0.930], 0.854 [0.777–1.028], 0.886 [0.754–0.988]. Before them
//! (started at load 1.2, then 3.7): handshakes 0.977 [0.807–1.172], 1.007
//! [0.922–1.078], 0.967 [0.838–1.025]; bulk 0.973 [0.791–1.101], 0.925
//! [0.875–1.025], 0.868 [0.796–0.913]. The handshake medians are below 1
//! in each run now, but single rounds still range from 0.74 to 1.19: the
//! margin is inside the noise of this machine, as the instruction counts
//! (0.998–0.999) say it must be. Bulk is below. The timing counts the
//! kernel too, where receives of up to 128 KiB make fewer system calls
//! than tokio-rustls's reads of a few KiB.
//!
//! # State and its invariants
//!
//! - `status` is `Ok`, `Broken` (for good: a failed or cancelled handshake,
//!   a failed or cancelled send, a TLS error, a transport failure, a
//!   ragged end of stream unless `https_compatible`) or `Closed` (our own
//!   `aclose`, or a finished `unwrap`). `Closed` wins over `Broken`.
//!   `tls_failed` (rustls is never run again) and `send_failed` (nothing
//!   more is sent: a send failed or was abandoned part-way, so a later
//!   record would follow a gap) hold whatever the status becomes. A send
//!   future dropped (not cancelled) during the transport send sets both
//!   (a drop guard, as for an abandoned handshake); so does a failed one.
//! - `handshake` goes `NotStarted → Running → Done | Failed` once. The
//!   first caller runs it in its own task; concurrent callers wait on the
//!   `Running` event (made by the first of them) and then read the
//!   outcome. A runner whose future is
//!   dropped marks it `Failed` (and wakes the waiters).
//! - A TLS 1.3 server's last handshake flight (session tickets) is not
//!   flushed at the end of the handshake but queued for the next send
//!   (Trio does the same): the client may not be receiving yet, and over a
//!   transport with no buffer the server would block forever.
//! - After the handshake, `receive_some` never sends: bytes rustls
//!   produces while receiving (a key-update reply) are queued for the next
//!   flush. So a receive only ever waits for the transport's receive, and
//!   cancelled there it had no effect.
//!
//! # Schedule points
//!
//! Every operation is a checkpoint (DESIGN §6), as a whole: it starts with
//! [`checkpoint_if_cancelled`] and, unless one of its steps already took a
//! schedule point, ends with [`cancel_shielded_checkpoint`]. Its steps
//! need not each be one ("Composite operations" in `trio::stream`):
//!
//! - Transport receives use `receive_some_unscheduled`: a cancel point
//!   at its start and while it waits (cancelled: nothing received, so the
//!   TLS receive had no effect), a schedule point only if it waited.
//! - The sends of `send_all` (its last chunk of `SEND_CHUNK`: every
//!   chunk before keeps the transport's schedule point, so that a long
//!   send over a transport that never makes it wait still lets other
//!   tasks run), `send_eof` and `aclose` use `send_all_unscheduled` (a
//!   cancelled send breaks the stream anyway; `aclose`'s transport close
//!   right after is a checkpoint).
//! - A handshake flight (and `unwrap`'s `close_notify`) keeps the
//!   transport's ordinary `send_all`, with its own schedule point: the
//!   answer is a round trip away, and yielding right after the send lets
//!   other tasks run meanwhile, so that the receive usually finds the
//!   answer there. Without it a busy server reads before the peer can have
//!   answered: almost every connection then registers with the reactor
//!   (an `EAGAIN` receive, an `epoll_ctl` add and delete), which cost more
//!   than the yields saved (see "Costs against tokio-rustls").
//!
//! - A receive that works through transport receives which make no
//!   plaintext (records split across receives, session tickets) takes a
//!   schedule point after every second one that did not wait, so that a
//!   peer sending records without data cannot hold the run.
//!
//! Whether a step took a schedule point is seen by `noting`: its future
//! returned `Pending` (every `Pending` of a task is one), or the run's
//! count of schedule points moved while it was polled (a step's schedule
//! point passes in place when nothing else in the run is ready). Over a transport
//! that does not override the `*_unscheduled` methods (memory streams,
//! boxed streams) every step is a full checkpoint, as before.

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerConnectionData, UnbufferedServerConnection,
};
use rustls::sign::CertifiedKey;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedConnectionCommon, UnbufferedStatus,
    WriteTraffic,
};
use rustls::{ClientConfig, CommonState, ProtocolVersion, ServerConfig};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use trio::stream::BusySlot;
use trio::stream::{AsyncResource, ReceiveStream, SendStream, Stream, aclose_forcefully};
use trio::sync::{Event, Lock, LockGuard};
use trio::{Error, ErrorKind, Result, cancel_shielded_checkpoint, checkpoint_if_cancelled};

/// The length of a TLS record header: type (1), version (2), length (2).
const RECORD_HEADER: usize = 5;
/// The first transport receive size: enough for a handshake flight with
/// a certificate chain or two. Small, because the receive buffer is
/// zero-filled when it grows, and a connection that only does a handshake
/// and a short exchange should not pay for a bulk transfer's buffer.
const START_RECEIVE: usize = 4 * 1024;
/// Receives grow (doubling while they come back full) up to this, to make
/// bulk transfers cost fewer system calls. 128 KiB: in the pinned bulk
/// benchmark (`benches/tls.rs`) the server's CPU per MiB against
/// tokio-rustls was 1.05x with 64 KiB, 0.955x with 128 KiB and 0.96x with
/// 256 KiB (medians of three runs of 7 rounds); only a connection whose
/// receives keep coming back full grows its buffer this far.
const MAX_RECEIVE: usize = 128 * 1024;
/// The largest TLS record on the wire: header, 16 KiB of plaintext, and
/// TLS 1.2's allowance for ciphertext expansion (2048; TLS 1.3 allows 256).
const MAX_RECORD: usize = RECORD_HEADER + 16 * 1024 + 2048;
/// The most received bytes kept for one handshake message while rustls
/// holds it (`held`), counted from where rustls last completed a message
/// (`held_mark`; how many it completed is seen from the session tickets a
/// client has received, the only post-handshake messages that can span
/// records; during the handshake every held byte counts). rustls caps a
/// handshake message's declared size (0xffff), not the bytes on the wire
/// that carry it: records of one byte, or TLS 1.3 records of zero padding,
/// could make it keep megabytes to gigabytes. 64 KiB of message in full
/// records, plus the overhead of a few records and a partial record after
/// them, stays well under this; rustls's buffered API likewise refuses
/// more than 64 KiB while joining a handshake message.
const HELD_LIMIT: usize = 64 * 1024 + 2 * MAX_RECORD;
/// The most received bytes kept while rustls holds a partial handshake
/// message, however many messages it completed meanwhile. rustls (0.23's
/// unbuffered API) discards nothing of a run of handshake records until
/// one of them ends where a message ends: a TLS 1.3 server sends its
/// session tickets as one flight cut into full records, so the whole
/// flight is kept (5 000 tickets: about 405 KB). No API lets the caller
/// drop the front of the run (rustls keeps offsets from it), so memory is
/// bounded here: 4 MiB. Tickets of one size line up with the records
/// every so often: rustls's stateful tickets (81 bytes) every 1.3 MB (81
/// times 16 KiB), so a flight of any number of them passes; a run of 4
/// MiB needs tickets of a size that lines up later (1 049 bytes: every 17
/// MB), as a hostile peer may choose. rustls and OpenSSL servers send 2
/// tickets by default. rustls's buffered API refuses a run at 64 KiB.
const HELD_RUN_LIMIT: usize = 4 * 1024 * 1024;
/// How long a receive must wait for the peer, after the peer's bytes were
/// all taken (`burst_over`), before the stream gives back the memory a
/// bulk transfer grew (see "Buffers" in the module docs). Long enough that
/// the pauses inside a transfer (the peer computing its next write, a
/// round trip) do not trigger it; short enough that an idle connection
/// soon holds a few KiB rather than the 128 KiB and more of a transfer.
const IDLE_SHRINK: Duration = Duration::from_secs(1);
/// A send buffer (`outgoing` or `spare`) up to this size is kept when
/// idle: what a handshake flight or a few small sends need (`room`
/// allocates at least 4 KiB).
const OUT_KEEP: usize = 16 * 1024;
/// The `plain` buffer up to this size is kept when idle: a record's worth.
const PLAIN_KEEP: usize = 16 * 1024;
/// Plaintext encrypted per flush in `send_all`, so that a large send does
/// not first encrypt all of itself into memory.
const SEND_CHUNK: usize = 64 * 1024;

enum Status {
    Ok,
    /// Why (the first failure's message); reported by every later call.
    Broken(Rc<str>),
    Closed,
}

enum Handshake {
    NotStarted,
    /// Set when the runner finishes, however it finishes; made by the
    /// first task that waits for it (most handshakes have none).
    Running(Option<Event>),
    Done,
    Failed,
}

/// Transport bytes received whose records rustls has not discarded yet:
/// `buf[start..end]`, starting at a record boundary. rustls decrypts in
/// place in it, and may keep a handshake message that spans records here
/// (it then remembers offsets from `start`: see "Full duplex" in the module
/// docs). `buf[end..]` is initialized room for the next receive.
#[derive(Default)]
struct Incoming {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Incoming {
    /// The length of the record at `start`, header included, if its header
    /// has been received.
    fn record_len(&self) -> Option<usize> {
        let h = self.buf.get(self.start..self.start + RECORD_HEADER)?;
        if self.start + RECORD_HEADER > self.end {
            return None;
        }
        Some(RECORD_HEADER + usize::from(u16::from_be_bytes([h[3], h[4]])))
    }

    /// Whether a whole record has been received at `start`.
    fn has_record(&self) -> bool {
        self.record_len()
            .is_some_and(|len| len <= self.end - self.start)
    }

    /// Makes at least `want` bytes of room after `end`. Moving the bytes to
    /// the front is safe for rustls: it remembers offsets from `start`.
    fn make_room(&mut self, want: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < want && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < want {
            self.buf.resize(self.end + want, 0);
        }
    }
}

/// Bytes queued for the transport, `buf[..len]`; `buf[len..]` is
/// initialized room, kept so that encrypting into it zero-fills nothing in
/// the steady state.
#[derive(Default)]
struct Outgoing {
    buf: Vec<u8>,
    len: usize,
}

impl Outgoing {
    /// At least `want` bytes of room after the queued bytes.
    fn room(&mut self, want: usize) -> &mut [u8] {
        let need = self.len + want;
        if self.buf.len() < need {
            // One allocation for a handshake flight made of several
            // messages, rather than one per message (only what is used
            // is zero-filled).
            if self.buf.capacity() < need {
                let cap = need.max(4096).max(2 * self.buf.capacity());
                self.buf.reserve_exact(cap - self.buf.len());
            }
            self.buf.resize(need, 0);
        }
        &mut self.buf[self.len..]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Plaintext rustls decrypted that no caller's buffer took (a record
/// larger than the buffer, or one processed by a task that was not
/// receiving): `buf[start..]`, handed out before anything else.
#[derive(Default)]
struct Plain {
    buf: Vec<u8>,
    start: usize,
}

impl Plain {
    fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// Moves as much as fits into `dest`.
    fn take_into(&mut self, dest: &mut [u8]) -> usize {
        if self.is_empty() {
            return 0;
        }
        let n = dest.len().min(self.buf.len() - self.start);
        dest[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        if self.is_empty() {
            self.buf.clear();
            self.start = 0;
        }
        n
    }
}

/// `incoming`, taken out of its cell while the receiving task waits
/// on the transport (no borrow across an `await`); put back on drop, so a
/// cancelled or dropped receive loses nothing.
struct Taken<'a> {
    home: &'a RefCell<Incoming>,
    buf: Incoming,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        *self.home.borrow_mut() = std::mem::take(&mut self.buf);
    }
}

/// Marks the receive side in use until dropped (see "Receiving" in the
/// module docs); dropped on cancellation too.
struct Receiving<'a>(&'a Cell<bool>);

impl<'a> Receiving<'a> {
    fn enter(flag: &'a Cell<bool>) -> Option<Self> {
        (!flag.replace(true)).then_some(Receiving(flag))
    }
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// The capacities of a stream's buffers, in bytes
/// ([`TlsStream::buffer_capacities`], for tests).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferCapacities {
    /// Received TLS bytes (0 while a receive waits: the receiving task
    /// holds the buffer).
    pub incoming: usize,
    /// TLS bytes to send: the queue and its spare together.
    pub outgoing: usize,
    /// Decrypted plaintext no caller took yet.
    pub plain: usize,
    /// The next transport receive's size.
    pub receive_size: usize,
}

/// What one [`TlsStream::pull`] achieved.
enum Pull {
    /// Something changed: re-check.
    Progress,
    /// Plaintext was put at the front of the caller's buffer.
    Data(usize),
    /// Nothing more will come: the transport ended, or the peer's
    /// `close_notify` was processed.
    Eof,
}

/// Marks a handshake whose runner's future was dropped mid-way as failed
/// (and the stream broken), and wakes the tasks waiting for it.
struct RunningGuard<'a> {
    handshake: &'a RefCell<Handshake>,
    status: &'a RefCell<Status>,
    armed: bool,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        {
            let mut status = self.status.borrow_mut();
            if matches!(*status, Status::Ok) {
                *status = Status::Broken("the TLS handshake was abandoned".into());
            }
        }
        let old = std::mem::replace(&mut *self.handshake.borrow_mut(), Handshake::Failed);
        if let Handshake::Running(Some(done)) = old {
            done.set();
        }
    }
}

/// Marks the stream broken if a transport send's future is dropped
/// part-way (its caller's future dropped, not cancelled): an unknown prefix
/// of the bytes went out, and the rest are gone, so a later record would
/// follow a gap.
struct SendingGuard<'a> {
    status: &'a RefCell<Status>,
    send_failed: &'a Cell<bool>,
    armed: bool,
}

impl Drop for SendingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.send_failed.set(true);
        let mut status = self.status.borrow_mut();
        if matches!(*status, Status::Ok) {
            *status = Status::Broken("a send to the transport was abandoned part-way".into());
        }
    }
}

// ----- rustls's unbuffered state machine -------------------------------------------

/// The connection: rustls's unbuffered client or server.
enum Conn {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

impl Conn {
    fn common(&self) -> &CommonState {
        match self {
            Conn::Client(c) => c,
            Conn::Server(s) => s,
        }
    }

    fn run(&mut self, job: &mut Job<'_>) -> Result<Stop> {
        match self {
            Conn::Client(c) => run(c, job),
            Conn::Server(s) => run(s, job),
        }
    }

    /// How many handshake messages rustls completed that may have spanned
    /// records after the handshake: a client's session tickets (a key
    /// update must end its record; a server receives no others).
    fn messages_completed(&self) -> u32 {
        match self {
            Conn::Client(c) => c.tls13_tickets_received(),
            Conn::Server(_) => 0,
        }
    }
}

/// `process_tls_records`, which rustls defines once per side.
trait Side: Sized {
    fn process<'c, 'i>(
        conn: &'c mut UnbufferedConnectionCommon<Self>,
        input: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self>;
}

impl Side for ClientConnectionData {
    fn process<'c, 'i>(
        conn: &'c mut UnbufferedConnectionCommon<Self>,
        input: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self> {
        conn.process_tls_records(input)
    }
}

impl Side for ServerConnectionData {
    fn process<'c, 'i>(
        conn: &'c mut UnbufferedConnectionCommon<Self>,
        input: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self> {
        conn.process_tls_records(input)
    }
}

/// What to do when rustls can encrypt.
enum Write<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// One run of the state machine: what it may read, where its output goes.
struct Job<'a> {
    /// The received bytes, or `None` for an empty stand-in (see "Full
    /// duplex" in the module docs).
    input: Option<&'a mut Incoming>,
    /// Where every TLS byte rustls produces goes, in its order.
    out: &'a mut Outgoing,
    /// The receiving caller's buffer (empty: none) and how much of it the
    /// run filled; plaintext that does not fit goes to `plain`.
    dest: &'a mut [u8],
    filled: usize,
    plain: &'a mut Plain,
    write: Write<'a>,
    /// Only encode what rustls has queued (its alert after an error), and
    /// stop before it would read any input.
    encode_only: bool,
    /// Set when the peer's `close_notify` was processed.
    peer_closed: bool,
}

/// Why a run stopped.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Stop {
    /// rustls needs more bytes from the peer, or (with nothing to write)
    /// could encrypt.
    NeedInput,
    /// The caller's buffer has no room for the next record.
    Full,
    /// The `write` was done: this many TLS bytes were queued.
    Wrote,
    /// Both sides sent `close_notify`: rustls will do nothing more.
    Closed,
}

/// Runs rustls on `job` until it needs something from outside (see
/// "Processing" in the module docs). Never waits.
fn run<D: Side>(conn: &mut UnbufferedConnectionCommon<D>, job: &mut Job<'_>) -> Result<Stop> {
    let mut empty: [u8; 0] = [];
    loop {
        if job.encode_only && !conn.wants_write() {
            return Ok(Stop::NeedInput);
        }
        if job.filled > 0
            && let Some(inc) = job.input.as_deref()
            && inc
                .record_len()
                .is_none_or(|len| job.dest.len() - job.filled < len)
        {
            // Plaintext was delivered, and the next record may not fit:
            // leave it for the next call rather than decrypt it into
            // `plain` (a copy more).
            return Ok(Stop::Full);
        }
        let input: &mut [u8] = match job.input.as_deref_mut() {
            Some(inc) => &mut inc.buf[inc.start..inc.end],
            None => &mut empty,
        };
        let status = D::process(conn, input);
        let mut discard = status.discard;
        let r = match status.state {
            Err(e) => Err(tls_error(e)),
            Ok(ConnectionState::ReadTraffic(mut t)) => {
                let mut r = Ok(None);
                while let Some(record) = t.next_record() {
                    match record {
                        Ok(record) => {
                            discard += record.discard;
                            let p = record.payload;
                            let n = p.len().min(job.dest.len() - job.filled);
                            job.dest[job.filled..job.filled + n].copy_from_slice(&p[..n]);
                            job.filled += n;
                            if n < p.len() {
                                job.plain.buf.extend_from_slice(&p[n..]);
                            }
                        }
                        Err(e) => {
                            r = Err(tls_error(e));
                            break;
                        }
                    }
                }
                r
            }
            Ok(ConnectionState::EncodeTlsData(mut e)) => {
                // The room already there first (none: `encode` says how
                // much it needs, and fails without doing anything).
                let mut want = 0;
                loop {
                    match e.encode(job.out.room(want)) {
                        Ok(n) => {
                            job.out.len += n;
                            break Ok(None);
                        }
                        Err(EncodeError::InsufficientSize(s)) => want = s.required_size,
                        Err(e) => break Err(Error::with_kind(ErrorKind::Broken, e)),
                    }
                }
            }
            // Queued in `out`, which whoever holds the send lock sends.
            Ok(ConnectionState::TransmitTlsData(t)) => {
                t.done();
                Ok(None)
            }
            Ok(ConnectionState::PeerClosed) => {
                job.peer_closed = true;
                Ok(None)
            }
            Ok(ConnectionState::Closed) => {
                job.peer_closed = true;
                Ok(Some(Stop::Closed))
            }
            Ok(ConnectionState::BlockedHandshake) => Ok(Some(Stop::NeedInput)),
            Ok(ConnectionState::WriteTraffic(mut w)) => {
                match std::mem::replace(&mut job.write, Write::Nothing) {
                    Write::Nothing => Ok(Some(Stop::NeedInput)),
                    Write::Data(data) => encrypt(&mut w, data, job.out).map(|()| Some(Stop::Wrote)),
                    Write::CloseNotify => close_notify(&mut w, job.out).map(|()| Some(Stop::Wrote)),
                }
            }
            Ok(ConnectionState::ReadEarlyData(_)) => Err(Error::new(
                ErrorKind::Unsupported,
                "the client sent 0-RTT early data, which trio-tls does not accept \
                 (leave the server config's max_early_data_size at 0)",
            )),
            Ok(_) => Err(Error::new(
                ErrorKind::Broken,
                "rustls reached a connection state trio-tls does not know",
            )),
        };
        if let Some(inc) = job.input.as_deref_mut() {
            inc.start += discard;
        }
        if let Some(stop) = r? {
            return Ok(stop);
        }
    }
}

/// The TLS bytes of `data`, plus `data.len() / 16 KiB + 1` records'
/// overhead (header, tag, content type, TLS 1.2 nonce), with room to spare.
fn sealed_len(data: usize) -> usize {
    data + (data / (16 * 1024) + 1) * 64 + 256
}

fn encrypt<D>(w: &mut WriteTraffic<'_, D>, data: &[u8], out: &mut Outgoing) -> Result<()> {
    let mut want = sealed_len(data.len());
    loop {
        match w.encrypt(data, out.room(want)) {
            Ok(n) => {
                out.len += n;
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(s)) => want = s.required_size,
            Err(e) => return Err(Error::with_kind(ErrorKind::Broken, e)),
        }
    }
}

fn close_notify<D>(w: &mut WriteTraffic<'_, D>, out: &mut Outgoing) -> Result<()> {
    let mut want = sealed_len(2);
    loop {
        match w.queue_close_notify(out.room(want)) {
            Ok(n) => {
                out.len += n;
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(s)) => want = s.required_size,
            Err(e) => return Err(Error::with_kind(ErrorKind::Broken, e)),
        }
    }
}

// ----- the server name (SNI) ---------------------------------------------------------

thread_local! {
    /// The server name of the last ClientHello a [`SniRecorder`] saw on
    /// this thread, taken right after the `process_tls_records` call that
    /// saw it (rustls's unbuffered server does not tell it otherwise).
    static SEEN_SNI: RefCell<Option<Option<Box<str>>>> = const { RefCell::new(None) };
}

/// Wraps a server config's certificate resolver to note the server name
/// the client asked for: rustls hands the resolver exactly the name it
/// keeps for the connection.
#[derive(Debug)]
struct SniRecorder(Arc<dyn ResolvesServerCert>);

// Forward every method of the trait: one added to it later and not
// forwarded here would silently take its default, not the wrapped
// resolver's answer (rustls 0.23: `resolve` and `only_raw_public_keys`).
impl ResolvesServerCert for SniRecorder {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(Box::from);
        SEEN_SNI.with(|s| *s.borrow_mut() = Some(name));
        self.0.resolve(hello)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.0.only_raw_public_keys()
    }
}

/// `config` with its certificate resolver wrapped in a [`SniRecorder`].
pub(crate) fn recording_sni(config: &ServerConfig) -> Arc<ServerConfig> {
    let mut config = config.clone();
    config.cert_resolver = Arc::new(SniRecorder(config.cert_resolver.clone()));
    Arc::new(config)
}

/// A TLS stream over any trio [`Stream`] (Trio's `SSLStream`), on a rustls
/// client or server connection. It is a [`Stream`] itself, with the
/// semantics of DESIGN §9:
///
/// - **Handshake**: run once, lazily by the first operation that needs it,
///   or by [`do_handshake`](Self::do_handshake); concurrent callers share
///   it (the others wait for the first's outcome). A handshake that fails
///   or is cancelled leaves the stream Broken for good.
/// - **Full duplex**: one task may send while another receives (one
///   internal lock on the transport's sending side; during the handshake
///   whichever task runs it sends its flights, after it a receiver never
///   sends: what it makes, such as a key-update reply, goes out with the
///   next send). A second concurrent sender or receiver gets `Busy`.
/// - **Cancellation**: a cancelled `send_all` leaves the stream Broken (an
///   unknown prefix went out); a `receive_some` cancelled while waiting for
///   the transport had no effect.
/// - **End of stream**: the peer's `close_notify` reads as end of stream
///   (`0`). A transport end of stream without it is Broken (a truncation
///   attack looks like that), or a clean end with
///   [`https_compatible`](Self::https_compatible).
/// - [`aclose`](AsyncResource::aclose) sends `close_notify` without
///   waiting for the peer's, then closes the transport; with
///   `https_compatible` it closes the transport at once; cancelled, it
///   closes the transport forcefully. If the handshake never started there
///   is no TLS session to close: it only closes the transport. Sending
///   `close_notify` waits for a send already in progress (a peer that does
///   not read can hold it up: bound it with a timeout, or use
///   [`aclose_forcefully`]).
/// - [`send_eof`](Stream::send_eof) sends `close_notify` on TLS 1.3 (the
///   peer reads end of stream, and this side can still receive); on TLS
///   1.2, where `close_notify` ends both directions, it is an
///   [`ErrorKind::Unsupported`] error.
/// - [`unwrap`](Self::unwrap) ends TLS and returns the transport with any
///   bytes received after the peer's `close_notify`.
/// - **Memory**: receives grow from 4 KiB to 128 KiB during a bulk
///   transfer, and the buffers give that memory back once a receive has
///   waited a second for the peer after taking all its bytes. A peer that
///   sends more than 64 KiB and two records of TLS records for one
///   handshake message, or more than 4 MiB of handshake records none of
///   which ends where a message ends (rustls keeps them all), breaks the
///   stream; any number of session tickets is fine within that.
///
/// ```
/// use trio::stream::{ReceiveStream, SendStream};
/// use trio_tls::TlsStream;
/// # use std::sync::Arc;
/// # let key = rcgen::KeyPair::generate().unwrap();
/// # let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
/// #     .unwrap()
/// #     .self_signed(&key)
/// #     .unwrap();
/// # let provider = Arc::new(rustls::crypto::ring::default_provider());
/// # let mut roots = rustls::RootCertStore::empty();
/// # roots.add(cert.der().clone()).unwrap();
/// # let client_config = Arc::new(
/// #     rustls::ClientConfig::builder_with_provider(provider.clone())
/// #         .with_safe_default_protocol_versions()
/// #         .unwrap()
/// #         .with_root_certificates(roots)
/// #         .with_no_client_auth(),
/// # );
/// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
/// # let server_config = Arc::new(
/// #     rustls::ServerConfig::builder_with_provider(provider)
/// #         .with_safe_default_protocol_versions()
/// #         .unwrap()
/// #         .with_no_client_auth()
/// #         .with_single_cert(vec![cert.der().clone()], key)
/// #         .unwrap(),
/// # );
/// // client_config: Arc<rustls::ClientConfig> trusting the server's
/// // certificate for "localhost"; server_config: Arc<rustls::ServerConfig>
/// // (see the crate docs for how to build them).
/// trio::run(async move {
///     let (a, b) = trio::testing::memory_stream_pair();
///     let name = "localhost".try_into().unwrap();
///     let client = TlsStream::client(a, client_config, name)?;
///     let server = TlsStream::server(b, server_config)?;
///     trio::open_nursery(async |n| {
///         n.start_soon(async { client.send_all(b"hello").await });
///         let mut buf = [0; 16];
///         let k = server.receive_some(&mut buf).await?; // runs the handshake first
///         assert_eq!(&buf[..k], b"hello");
///         Ok(())
///     })
///     .await
/// })
/// .unwrap();
/// ```
pub struct TlsStream<S> {
    transport: S,
    conn: RefCell<Conn>,
    server_side: bool,
    https_compatible: bool,
    handshake_timeout: Option<Duration>,
    status: RefCell<Status>,
    handshake: RefCell<Handshake>,
    /// The peer's `close_notify` has been processed: rustls reads nothing
    /// more (what follows it stays in `incoming`, for `unwrap`).
    peer_closed: Cell<bool>,
    /// The transport's `receive_some` returned 0.
    transport_eof: Cell<bool>,
    /// The handshake failed because the transport ended (with
    /// `https_compatible`, `receive_some` reads that as end of stream).
    handshake_eof: Cell<bool>,
    /// This side queued its `close_notify` (`send_eof`, `aclose`,
    /// `unwrap`): nothing more may be sent.
    sent_close_notify: Cell<bool>,
    /// TLS bytes rustls produced, in its order, not yet handed to the
    /// transport. Appended to by any task; emptied by the send lock holder.
    outgoing: RefCell<Outgoing>,
    /// The send lock holder's second buffer, swapped with `outgoing`, so
    /// that flushing allocates nothing in the steady state.
    spare: RefCell<Outgoing>,
    /// rustls returned an error (or the stream refused its input): it must
    /// never run again, whatever the status (see "State" in the module
    /// docs).
    tls_failed: Cell<bool>,
    /// A transport send failed or was abandoned part-way: nothing more may
    /// be sent, since later records would follow a gap.
    send_failed: Cell<bool>,
    /// Received and not yet discarded by rustls. Only the receiving task
    /// receives into it.
    incoming: RefCell<Incoming>,
    /// rustls may hold a partial handshake message in `incoming` (see
    /// "Full duplex" in the module docs): it must not run on a stand-in.
    held: Cell<bool>,
    /// While `held`: the received bytes kept (`end - start` of
    /// `incoming`) right after rustls last completed a message that may
    /// span records, 0 if it completed none in this held run; `HELD_LIMIT`
    /// applies to the bytes past it. And `messages_completed` then.
    held_mark: Cell<usize>,
    messages_seen: Cell<u32>,
    /// `incoming` may hold whole records rustls has not processed (bytes
    /// arrived since its last run, or a run stopped for a full buffer):
    /// otherwise running it again before the next receive is useless.
    fresh: Cell<bool>,
    /// Plaintext decrypted and not yet returned.
    plain: RefCell<Plain>,
    /// On a server: the name the client asked for, once its ClientHello
    /// was processed.
    sni: RefCell<Option<Box<str>>>,
    /// The next transport receive's size.
    receive_size: Cell<usize>,
    /// The last transport receive returned less than it asked for: the
    /// peer's bytes were all taken, so the next receive may wait (and is
    /// then bounded by `IDLE_SHRINK`, if the buffers grew).
    burst_over: Cell<bool>,
    send_lock: Lock,
    /// A task is receiving (see "Receiving" in the module docs).
    receiving: Cell<bool>,
    send_slot: BusySlot,
    recv_slot: BusySlot,
}

fn closed() -> Error {
    Error::new(ErrorKind::Closed, "the TLS stream was closed")
}

/// A rustls error: the stream is broken.
fn tls_error(e: rustls::Error) -> Error {
    Error::with_kind(ErrorKind::Broken, e)
}

fn not_handshaken() -> Error {
    Error::new(
        ErrorKind::Usage,
        "the TLS handshake has not completed (call do_handshake first)",
    )
}

/// Whether a flush's transport sends take their own schedule point (see
/// "Schedule points" in the module docs).
#[derive(Clone, Copy)]
enum Sched {
    /// The ordinary `send_all`: for a handshake flight, whose answer is a
    /// round trip away, so that other tasks run before the receive.
    Own,
    /// `send_all_unscheduled`: the operation takes its schedule point at
    /// its end (or the transport's close does, right after); for the last
    /// send of an operation only.
    Deferred,
}

/// Runs a transport operation of the `*_unscheduled` kind (see "Schedule
/// points" in the module docs), setting `*waited` if it took a schedule
/// point: if its future ever returned `Pending` (every `Pending` of a
/// task is one), or the run counted one while it was polled (a schedule
/// point passed in place when nothing else was ready; only this task runs
/// during the poll).
async fn noting<F: Future>(fut: F, waited: &mut bool) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let before = schedule_points();
        let p = fut.as_mut().poll(cx);
        if p.is_pending() || schedule_points() != before {
            *waited = true;
        }
        p
    })
    .await
}

/// The run's count of schedule points so far (0 outside a run, where the
/// transport operation fails anyway).
fn schedule_points() -> u64 {
    trio::lowlevel::checkpoint_counts().map_or(0, |c| c.schedule_points)
}

/// Takes `lock`: at once if it is free (no checkpoint), else by waiting.
/// Returns whether it waited (a checkpoint).
async fn take(lock: &Lock) -> Result<(LockGuard, bool)> {
    match lock.try_acquire() {
        Ok(guard) => Ok((guard, false)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok((lock.acquire().await?, true)),
        Err(e) => Err(e),
    }
}

impl<S: Stream> TlsStream<S> {
    /// The client end of a TLS connection over `transport`, for the server
    /// named `server_name` (checked against its certificate, and sent as
    /// SNI). Nothing happens on the transport until the handshake.
    ///
    /// Build `config` with
    /// [`ClientConfig::builder_with_provider`] and rustls's `ring` provider
    /// (rustls panics at run time when two providers are enabled and none
    /// is chosen).
    pub fn client(
        transport: S,
        config: Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<Self> {
        let conn = UnbufferedClientConnection::new(config, server_name).map_err(tls_error)?;
        Ok(Self::new(transport, Conn::Client(conn)))
    }

    /// The server end of a TLS connection over `transport`. Nothing
    /// happens on the transport until the handshake.
    ///
    /// `config` is copied, with its certificate resolver wrapped to note
    /// the name the client asks for ([`server_name`](Self::server_name));
    /// a [`TlsListener`](crate::TlsListener) does that once for all its
    /// connections. 0-RTT early data is not accepted: with a
    /// `max_early_data_size` above 0, a client that sends some breaks the
    /// stream ([`ErrorKind::Unsupported`]).
    pub fn server(transport: S, config: Arc<ServerConfig>) -> Result<Self> {
        let conn = UnbufferedServerConnection::new(recording_sni(&config)).map_err(tls_error)?;
        Ok(Self::from_server_connection(transport, conn))
    }

    /// The server end over `transport`, on a connection already made
    /// (from a config made by [`recording_sni`]).
    pub(crate) fn from_server_connection(transport: S, conn: UnbufferedServerConnection) -> Self {
        Self::new(transport, Conn::Server(conn))
    }

    fn new(transport: S, conn: Conn) -> Self {
        TlsStream {
            transport,
            server_side: matches!(conn, Conn::Server(_)),
            conn: RefCell::new(conn),
            https_compatible: false,
            handshake_timeout: None,
            status: RefCell::new(Status::Ok),
            handshake: RefCell::new(Handshake::NotStarted),
            peer_closed: Cell::new(false),
            transport_eof: Cell::new(false),
            handshake_eof: Cell::new(false),
            sent_close_notify: Cell::new(false),
            outgoing: RefCell::new(Outgoing::default()),
            spare: RefCell::new(Outgoing::default()),
            tls_failed: Cell::new(false),
            send_failed: Cell::new(false),
            incoming: RefCell::new(Incoming::default()),
            held: Cell::new(false),
            held_mark: Cell::new(0),
            messages_seen: Cell::new(0),
            fresh: Cell::new(false),
            plain: RefCell::new(Plain::default()),
            sni: RefCell::new(None),
            receive_size: Cell::new(START_RECEIVE),
            burst_over: Cell::new(false),
            send_lock: Lock::new(),
            receiving: Cell::new(false),
            send_slot: BusySlot::new("another task is already sending on this TLS stream"),
            recv_slot: BusySlot::new("another task is already receiving on this TLS stream"),
        }
    }

    /// Trio's `https_compatible`: a transport end of stream without
    /// `close_notify` reads as a clean end of stream instead of Broken, and
    /// [`aclose`](AsyncResource::aclose) closes the transport at once
    /// without sending `close_notify`. What HTTPS peers expect (HTTP
    /// delimits its own messages). Off by default.
    pub fn https_compatible(mut self, on: bool) -> Self {
        self.https_compatible = on;
        self
    }

    /// Fails the handshake with [`ErrorKind::TooSlow`] (and leaves the
    /// stream Broken) if it takes longer than `timeout` from its start.
    /// `None` (the default): no limit.
    pub fn handshake_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The transport. Using it directly while TLS runs over it corrupts
    /// the TLS stream; it is here to read its addresses and options.
    pub fn transport(&self) -> &S {
        &self.transport
    }

    /// Whether this is the server end.
    pub fn is_server(&self) -> bool {
        self.server_side
    }

    /// Runs the handshake if it has not run yet, or waits for the one in
    /// progress (another task's). Returns once it has completed; its error
    /// otherwise (the stream is then Broken for good). A checkpoint.
    pub async fn do_handshake(&self) -> Result<()> {
        checkpoint_if_cancelled().await?;
        self.check_status()?;
        let mut waited = false;
        self.ensure_handshake(&mut waited).await?;
        if !waited {
            cancel_shielded_checkpoint().await?;
        }
        Ok(())
    }

    /// Whether the handshake has completed.
    pub fn is_handshake_done(&self) -> bool {
        matches!(*self.handshake.borrow(), Handshake::Done)
    }

    /// The ALPN protocol the handshake agreed on (`None`: none). An
    /// [`ErrorKind::Usage`] error before the handshake has completed.
    pub fn negotiated_alpn(&self) -> Result<Option<Vec<u8>>> {
        self.after_handshake(|c| c.alpn_protocol().map(<[u8]>::to_vec))
    }

    /// The peer's certificate chain, its own certificate first (`None`: it
    /// sent none, as a client usually does). An [`ErrorKind::Usage`] error
    /// before the handshake has completed.
    pub fn peer_certificates(&self) -> Result<Option<Vec<CertificateDer<'static>>>> {
        self.after_handshake(|c| c.peer_certificates().map(<[_]>::to_vec))
    }

    /// The TLS version the handshake agreed on. An [`ErrorKind::Usage`]
    /// error before the handshake has completed.
    pub fn protocol_version(&self) -> Result<ProtocolVersion> {
        self.after_handshake(|c| c.protocol_version())?
            .ok_or_else(not_handshaken)
    }

    /// On a server: the name the client asked for (SNI), if any. An
    /// [`ErrorKind::Usage`] error before the handshake has completed, and
    /// always `None` on a client.
    pub fn server_name(&self) -> Result<Option<String>> {
        self.after_handshake(|_| ())?;
        Ok(self.sni.borrow().as_deref().map(str::to_owned))
    }

    fn after_handshake<T>(&self, f: impl FnOnce(&CommonState) -> T) -> Result<T> {
        if !self.is_handshake_done() {
            return Err(not_handshaken());
        }
        Ok(f(self.conn.borrow().common()))
    }

    /// Ends TLS and gives the transport back, with the bytes that arrived
    /// after the peer's `close_notify` (Trio's `SSLStream.unwrap`): sends
    /// this side's `close_notify` (if `send_eof` did not already), then
    /// receives until the peer's. Typical after a peer-initiated close:
    /// `receive_some` returned 0, then `unwrap()` returns at once.
    ///
    /// Application data still unread, or arriving before the peer's
    /// `close_notify`, is an [`ErrorKind::Broken`] error (it would be lost
    /// otherwise). On any error (or cancellation) the transport is closed
    /// forcefully.
    pub async fn unwrap(self) -> Result<(S, Vec<u8>)> {
        let r = self.unwrap_tls().await;
        let TlsStream {
            transport,
            incoming,
            ..
        } = self;
        match r {
            Ok(()) => {
                let incoming = incoming.into_inner();
                Ok((
                    transport,
                    incoming.buf[incoming.start..incoming.end].to_vec(),
                ))
            }
            Err(e) => {
                let _ = aclose_forcefully(&transport).await;
                Err(e)
            }
        }
    }

    async fn unwrap_tls(&self) -> Result<()> {
        checkpoint_if_cancelled().await?;
        self.check_status()?;
        let mut waited = false;
        self.ensure_handshake(&mut waited).await?;
        self.queue_close_notify()?;
        // The peer's close_notify is a round trip away: the send's own
        // schedule point lets other tasks run meanwhile.
        self.flush(&mut waited, Sched::Own)
            .await
            .map_err(|e| self.fail(e))?;
        loop {
            if !self.plain.borrow().is_empty() {
                return Err(self.fail(Error::new(
                    ErrorKind::Broken,
                    "unwrap: application data arrived before the peer's close_notify \
                     (receive to the end of the stream first)",
                )));
            }
            if self.peer_closed.get() {
                break;
            }
            if let Pull::Eof = self.pull(&mut waited, &mut []).await? {
                return Err(self.fail(Error::new(
                    ErrorKind::Broken,
                    "unwrap: the transport ended before the peer's close_notify",
                )));
            }
        }
        *self.status.borrow_mut() = Status::Closed;
        if !waited {
            cancel_shielded_checkpoint().await?;
        }
        Ok(())
    }

    // ----- state ---------------------------------------------------------------

    fn check_status(&self) -> Result<()> {
        match &*self.status.borrow() {
            Status::Ok => Ok(()),
            Status::Closed => Err(closed()),
            Status::Broken(why) => Err(Error::new(
                ErrorKind::Broken,
                format!("the TLS stream is broken: {why}"),
            )),
        }
    }

    fn is_closed(&self) -> bool {
        matches!(*self.status.borrow(), Status::Closed)
    }

    /// Records a failure (Broken for good, unless closed) and returns the
    /// error to report: `e` itself the first time; after our own close, a
    /// transport error becomes `Closed`.
    fn fail(&self, e: Error) -> Error {
        let mut status = self.status.borrow_mut();
        match &*status {
            Status::Closed => match e.kind() {
                ErrorKind::Closed | ErrorKind::Broken | ErrorKind::Io => closed(),
                _ => e,
            },
            Status::Broken(_) => e,
            Status::Ok => {
                let why: Rc<str> = if e.is_cancelled() {
                    "an operation was cancelled part-way".into()
                } else {
                    e.to_string().into()
                };
                *status = Status::Broken(why);
                e
            }
        }
    }

    fn queue_close_notify(&self) -> Result<()> {
        if !self.sent_close_notify.replace(true) {
            self.write(Write::CloseNotify).map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    // ----- running rustls --------------------------------------------------------

    /// Runs rustls on the received bytes, or on none (`input == false`,
    /// or while another task receives into them), putting plaintext into
    /// `dest` and then `plain`, and queueing what it produces (see
    /// "Processing" and "Full duplex" in the module docs). A TLS error
    /// breaks the stream; the fatal alert rustls made for it is queued.
    fn process(&self, input: bool, dest: &mut [u8], write: Write<'_>) -> Result<(Stop, usize)> {
        if self.tls_failed.get() || matches!(*self.status.borrow(), Status::Broken(_)) {
            // rustls failed before: it must not run again (it may keep
            // offsets into bytes that are gone). Checked apart from the
            // status, which `aclose` turns from Broken into Closed.
            return Err(match self.check_status() {
                Err(e) => e,
                Ok(()) => Error::new(ErrorKind::Broken, "the TLS stream is broken"),
            });
        }
        let mut conn = self.conn.borrow_mut();
        let mut out = self.outgoing.borrow_mut();
        let mut plain = self.plain.borrow_mut();
        let mut incoming = self.incoming.borrow_mut();
        // Only the receiving task (or a run that must, see `held`)
        // gives rustls the received bytes; rustls keeps nothing of them
        // otherwise, so an empty stand-in is equivalent.
        let input = input || self.held.get();
        let mut job = Job {
            input: input.then_some(&mut *incoming),
            out: &mut out,
            dest,
            filled: 0,
            plain: &mut plain,
            write,
            encode_only: false,
            peer_closed: false,
        };
        let r = conn.run(&mut job);
        let (filled, peer_closed) = (job.filled, job.peer_closed);
        if peer_closed {
            self.peer_closed.set(true);
        }
        if input {
            // After a stop for more input (or to write, which rustls also
            // only offers once it has no whole record left to process), a
            // whole record still at the front is one rustls keeps (a
            // partial handshake message). After plaintext (Full), nothing
            // is kept: a handshake message cannot be interleaved with
            // application data.
            let held = matches!(r, Ok(Stop::NeedInput | Stop::Wrote)) && incoming.has_record();
            self.held.set(held);
            self.fresh.set(matches!(r, Ok(Stop::Full)));
            // Where the message rustls holds now began, near enough (see
            // `HELD_LIMIT`): after the last one it completed.
            let completed = conn.messages_completed();
            if !held {
                self.held_mark.set(0);
            } else if completed != self.messages_seen.get() {
                self.held_mark.set(incoming.end - incoming.start);
            }
            self.messages_seen.set(completed);
        }
        if self.server_side
            && !self.is_handshake_done()
            && let Some(name) = SEEN_SNI.with(|s| s.borrow_mut().take())
        {
            *self.sni.borrow_mut() = name;
        }
        match r {
            Ok(stop) => Ok((stop, filled)),
            Err(e) => {
                self.tls_failed.set(true);
                // Queue the alert rustls made (sent with the next flush, if
                // any; the stream is broken): rustls hands out what it has
                // queued before it reads any input.
                let mut job = Job {
                    input: None,
                    out: &mut out,
                    dest: &mut [],
                    filled: 0,
                    plain: &mut plain,
                    write: Write::Nothing,
                    encode_only: true,
                    peer_closed: false,
                };
                let _ = conn.run(&mut job);
                drop((conn, out, plain, incoming));
                Err(self.fail(e))
            }
        }
    }

    /// Encrypts `what` into `outgoing` (no waiting; `flush` sends it).
    fn write(&self, what: Write<'_>) -> Result<()> {
        match self.process(false, &mut [], what)? {
            (Stop::Wrote, _) => Ok(()),
            (Stop::Closed, _) => Err(closed_for_sending()),
            _ => Err(Error::new(
                ErrorKind::Broken,
                "rustls cannot encrypt application data now",
            )),
        }
    }

    // ----- the handshake -------------------------------------------------------

    /// Runs the handshake or waits for it (see the module docs). Sets
    /// `*waited` when it waited (a checkpoint happened).
    async fn ensure_handshake(&self, waited: &mut bool) -> Result<()> {
        let running = match &mut *self.handshake.borrow_mut() {
            Handshake::Done => return Ok(()),
            Handshake::Failed => None,
            Handshake::Running(done) => Some(Some(done.get_or_insert_with(Event::new).clone())),
            Handshake::NotStarted => Some(None),
        };
        let running = match running {
            None => return Err(self.status_error()),
            Some(r) => r,
        };
        if let Some(done) = running {
            done.wait().await?;
            *waited = true;
            return match *self.handshake.borrow() {
                Handshake::Done => Ok(()),
                _ => Err(self.status_error()),
            };
        }
        *self.handshake.borrow_mut() = Handshake::Running(None);
        let mut guard = RunningGuard {
            handshake: &self.handshake,
            status: &self.status,
            armed: true,
        };
        let r = match self.handshake_timeout {
            Some(t) => trio::fail_after(t, self.run_handshake(waited)).await,
            None => self.run_handshake(waited).await,
        };
        guard.armed = false;
        let (state, out) = match r {
            Ok(()) => (Handshake::Done, Ok(())),
            Err(e) => (Handshake::Failed, Err(e)),
        };
        let old = std::mem::replace(&mut *self.handshake.borrow_mut(), state);
        let out = out.map_err(|e| self.fail(e));
        if let Handshake::Running(Some(done)) = old {
            done.set();
        }
        out
    }

    /// The error of an operation that needed a handshake that failed.
    fn status_error(&self) -> Error {
        match self.check_status() {
            Err(e) => e,
            Ok(()) => Error::new(ErrorKind::Broken, "the TLS handshake failed"),
        }
    }

    async fn run_handshake(&self, waited: &mut bool) -> Result<()> {
        // The first flight (a client's ClientHello; a server waits).
        if !self.server_side {
            self.process(true, &mut [], Write::Nothing)?;
        }
        loop {
            let (handshaking, tls13_server) = {
                let conn = self.conn.borrow();
                let common = conn.common();
                let tls13 = common.protocol_version() == Some(ProtocolVersion::TLSv1_3);
                (common.is_handshaking(), self.server_side && tls13)
            };
            if !handshaking {
                // A TLS 1.3 server's last flight is only session tickets,
                // which nobody waits for: queue them (module docs).
                if !tls13_server {
                    self.flush(waited, Sched::Own).await?;
                }
                return Ok(());
            }
            if !self.outgoing.borrow().is_empty() {
                self.flush(waited, Sched::Own).await?;
                continue;
            }
            if let Pull::Eof = self.pull(waited, &mut []).await? {
                self.handshake_eof.set(true);
                return Err(Error::new(
                    ErrorKind::Broken,
                    "the transport ended during the TLS handshake",
                ));
            }
        }
    }

    // ----- the transport -------------------------------------------------------

    /// Hands everything in `outgoing` to the transport, under the send lock.
    /// A transport failure (or cancellation part-way) breaks the stream; a
    /// cancellation while waiting for the lock loses nothing (the bytes
    /// stay queued) and is returned as is.
    async fn flush(&self, waited: &mut bool, sched: Sched) -> Result<()> {
        if self.outgoing.borrow().is_empty() {
            return Ok(());
        }
        let (_guard, w) = take(&self.send_lock).await?;
        *waited |= w;
        if self.send_failed.get() {
            // A flush before this one failed (or was abandoned) part-way,
            // perhaps while this task waited for the lock.
            return Err(match self.check_status() {
                Err(e) => e,
                Ok(()) => closed(),
            });
        }
        loop {
            let mut buf = {
                let spare = std::mem::take(&mut *self.spare.borrow_mut());
                std::mem::replace(&mut *self.outgoing.borrow_mut(), spare)
            };
            if buf.is_empty() {
                let spare = std::mem::replace(&mut *self.outgoing.borrow_mut(), buf);
                *self.spare.borrow_mut() = spare;
                return Ok(());
            }
            let mut sending = SendingGuard {
                status: &self.status,
                send_failed: &self.send_failed,
                armed: true,
            };
            let data = &buf.buf[..buf.len];
            let r = match sched {
                Sched::Own => noting(self.transport.send_all(data), waited).await,
                Sched::Deferred => noting(self.transport.send_all_unscheduled(data), waited).await,
            };
            sending.armed = false;
            buf.len = 0;
            {
                let mut out = self.outgoing.borrow_mut();
                if out.is_empty() {
                    // Nothing was queued meanwhile: go on with this buffer,
                    // so that a stream nobody sends on concurrently only
                    // ever has one.
                    *self.spare.borrow_mut() = std::mem::replace(&mut *out, buf);
                } else {
                    *self.spare.borrow_mut() = buf;
                }
            }
            if let Err(e) = r {
                self.send_failed.set(true);
                return Err(self.fail(e));
            }
        }
    }

    /// Makes the receive side progress once: runs rustls on what is
    /// already received, or receives from the transport and runs rustls on
    /// that. Plaintext goes to the front of `dest` (`Pull::Data`), or to
    /// `plain` if `dest` is empty. Cancelled, it had no effect.
    async fn pull(&self, waited: &mut bool, dest: &mut [u8]) -> Result<Pull> {
        let Some(_guard) = Receiving::enter(&self.receiving) else {
            return Err(Error::new(
                ErrorKind::Busy,
                "another task is already receiving on this TLS stream",
            ));
        };
        // What is already here first (records a full buffer left behind).
        if self.fresh.get()
            && let Some(p) = self.run_received(dest)?
        {
            return Ok(p);
        }
        if self.peer_closed.get() || self.transport_eof.get() {
            return Ok(Pull::Eof);
        }
        let mut want = self.receive_size.get();
        let n = if self.held.get() {
            // rustls keeps part of a handshake message in `incoming` and a
            // sender may need it there: receive beside it (rare).
            let mut side = vec![0; want];
            let n = self.receive(&mut side, waited).await?;
            let mut inc = self.incoming.borrow_mut();
            inc.make_room(n);
            let end = inc.end;
            inc.buf[end..end + n].copy_from_slice(&side[..n]);
            inc.end += n;
            self.fresh.set(true);
            n
        } else {
            let mut taken = Taken {
                home: &self.incoming,
                buf: std::mem::take(&mut *self.incoming.borrow_mut()),
            };
            taken.buf.make_room(want);
            let end = taken.buf.end;
            // After the peer's bytes were all taken, a stream whose buffers
            // grew bounds the wait: idle that long, it gives the memory
            // back and waits on a small buffer (module docs, "Buffers").
            // Only then: a receive that follows a full one usually finds
            // bytes at once, and the bulk path pays nothing.
            let idle_bound = self.burst_over.get()
                && end == 0
                && (want > START_RECEIVE || self.grown(&taken.buf));
            let got = if idle_bound {
                trio::move_on_after(
                    IDLE_SHRINK,
                    self.receive(&mut taken.buf.buf[..want], waited),
                )
                .await?
            } else {
                Some(
                    self.receive(&mut taken.buf.buf[end..end + want], waited)
                        .await?,
                )
            };
            let n = match got {
                Some(n) => n,
                None => {
                    // Idle: nothing was received (a cancelled receive has
                    // no effect), and nothing is kept in `incoming`.
                    want = START_RECEIVE;
                    self.receive_size.set(want);
                    taken.buf = Incoming::default();
                    self.shrink_idle();
                    taken.buf.make_room(want);
                    self.receive(&mut taken.buf.buf[..want], waited).await?
                }
            };
            taken.buf.end += n;
            self.fresh.set(true);
            n
        };
        if n == 0 {
            self.transport_eof.set(true);
            return Ok(Pull::Eof);
        }
        self.burst_over.set(n < want);
        if n == want {
            self.receive_size.set((want * 2).min(MAX_RECEIVE));
        }
        let pulled = self.run_received(dest)?.unwrap_or(Pull::Progress);
        if self.held.get() {
            let kept = {
                let inc = self.incoming.borrow();
                inc.end - inc.start
            };
            let refused = if kept.saturating_sub(self.held_mark.get()) > HELD_LIMIT {
                Some(format!(
                    "the peer sent more than {HELD_LIMIT} bytes of records \
                     for one TLS handshake message"
                ))
            } else if kept > HELD_RUN_LIMIT {
                Some(format!(
                    "the peer sent more than {HELD_RUN_LIMIT} bytes of TLS handshake \
                     records without one ending where a handshake message ends"
                ))
            } else {
                None
            };
            if let Some(why) = refused {
                // rustls still holds offsets into `incoming`: it is not
                // run again (see `tls_failed`).
                self.tls_failed.set(true);
                return Err(self.fail(Error::new(ErrorKind::Broken, why)));
            }
        }
        Ok(pulled)
    }

    /// One transport receive (setting `*waited` if it took a schedule
    /// point); a failure (not a cancellation) breaks the stream.
    async fn receive(&self, buf: &mut [u8], waited: &mut bool) -> Result<usize> {
        match noting(self.transport.receive_some_unscheduled(buf), waited).await {
            Ok(n) => Ok(n),
            Err(e) if e.is_cancelled() => Err(e),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Whether any buffer holds more memory than a stream that never made a
    /// bulk transfer would (`incoming` is the receiving task's, taken out
    /// of its cell).
    fn grown(&self, incoming: &Incoming) -> bool {
        let out = |o: &RefCell<Outgoing>| o.borrow().buf.capacity() > OUT_KEEP;
        incoming.buf.capacity() > START_RECEIVE
            || out(&self.outgoing)
            || out(&self.spare)
            || self.plain.borrow().buf.capacity() > PLAIN_KEEP
    }

    /// Gives back the memory of the buffers that hold nothing (module docs,
    /// "Buffers"); `incoming` is the caller's to replace. A buffer a send
    /// in progress holds is not here: it is put back as the spare, which
    /// the next idle wait gives back.
    fn shrink_idle(&self) {
        {
            let mut out = self.outgoing.borrow_mut();
            if out.is_empty() && out.buf.capacity() > OUT_KEEP {
                *out = Outgoing::default();
            }
        }
        {
            let mut spare = self.spare.borrow_mut();
            if spare.buf.capacity() > OUT_KEEP {
                *spare = Outgoing::default();
            }
        }
        let mut plain = self.plain.borrow_mut();
        if plain.is_empty() && plain.buf.capacity() > PLAIN_KEEP {
            *plain = Plain::default();
        }
    }

    /// The capacities of the stream's buffers, for tests of their
    /// shrinking (module docs, "Buffers"). `incoming` reads 0 while a
    /// receive waits (the receiving task holds it).
    #[doc(hidden)]
    pub fn buffer_capacities(&self) -> BufferCapacities {
        BufferCapacities {
            incoming: self.incoming.borrow().buf.capacity(),
            outgoing: self.outgoing.borrow().buf.capacity() + self.spare.borrow().buf.capacity(),
            plain: self.plain.borrow().buf.capacity(),
            receive_size: self.receive_size.get(),
        }
    }

    /// Runs rustls on the received bytes (`receiving` is set):
    /// `Some` if that delivered plaintext into `dest` or changed anything
    /// else (a record processed).
    fn run_received(&self, dest: &mut [u8]) -> Result<Option<Pull>> {
        let state = |s: &Self| {
            let inc = s.incoming.borrow();
            let plain = s.plain.borrow();
            (inc.start, inc.end, plain.buf.len(), s.peer_closed.get())
        };
        let before = state(self);
        let (_, filled) = self.process(true, dest, Write::Nothing)?;
        Ok(if filled > 0 {
            Some(Pull::Data(filled))
        } else if state(self) != before {
            Some(Pull::Progress)
        } else {
            None
        })
    }

    /// After some plaintext was put into the caller's buffer: fills more
    /// of it (`rest`) from records already received, without waiting, if
    /// no receive is under way. A failure is recorded (Broken) and
    /// reported by the next call, so the bytes already read are returned.
    fn read_more(&self, rest: &mut [u8]) -> usize {
        if !self.fresh.get() {
            return 0;
        }
        let Some(_guard) = Receiving::enter(&self.receiving) else {
            return 0;
        };
        match self.run_received(rest) {
            Ok(Some(Pull::Data(n))) => n,
            _ => 0,
        }
    }
}

impl<S: Stream> AsyncResource for TlsStream<S> {
    async fn aclose(&self) -> Result<()> {
        let graceful = {
            let mut status = self.status.borrow_mut();
            let graceful = match *status {
                Status::Closed => None,
                Status::Broken(_) => Some(false),
                Status::Ok => Some(!self.https_compatible),
            };
            *status = Status::Closed;
            graceful
        };
        match graceful {
            None => return trio::checkpoint().await,
            Some(false) => return self.transport.aclose().await,
            Some(true) => {}
        }
        if matches!(*self.handshake.borrow(), Handshake::NotStarted) {
            // No TLS session yet: nothing to close_notify.
            return self.transport.aclose().await;
        }
        let sent = async {
            let mut waited = false;
            self.ensure_handshake(&mut waited).await?;
            self.queue_close_notify()?;
            // The transport's close right after is a checkpoint.
            self.flush(&mut waited, Sched::Deferred).await
        }
        .await;
        match sent {
            Ok(()) => self.transport.aclose().await,
            Err(e) if e.is_cancelled() || e.kind() == ErrorKind::TooSlow => {
                let _ = aclose_forcefully(&self.transport).await;
                Err(e)
            }
            // The peer is gone (Broken) or the handshake had failed: no
            // close_notify to send, but the transport closes as usual
            // (Trio does the same).
            Err(_) => self.transport.aclose().await,
        }
    }
}

impl<S: Stream> SendStream for TlsStream<S> {
    async fn send_all(&self, data: &[u8]) -> Result<()> {
        let _slot = self.send_slot.enter()?;
        checkpoint_if_cancelled().await?;
        self.check_status()?;
        if self.sent_close_notify.get() {
            return Err(closed_for_sending());
        }
        let mut waited = false;
        self.ensure_handshake(&mut waited).await?;
        self.check_status()?;
        let mut rest = data;
        while !rest.is_empty() {
            let (chunk, later) = rest.split_at(rest.len().min(SEND_CHUNK));
            if rest.len() != data.len() {
                // Another task may have closed the stream, or a receive
                // broken it, while this one flushed the last chunk.
                self.check_status()?;
            }
            self.write(Write::Data(chunk)).map_err(|e| self.fail(e))?;
            rest = later;
            // A chunk before the last keeps the transport's schedule point:
            // a long send over a fast transport (which never makes it wait)
            // still lets other tasks run every SEND_CHUNK bytes.
            let sched = if rest.is_empty() {
                Sched::Deferred
            } else {
                Sched::Own
            };
            // Any failure here, a cancellation while waiting for the send
            // lock included, breaks the stream: our data may be queued.
            if let Err(e) = self.flush(&mut waited, sched).await {
                return Err(self.fail(e));
            }
        }
        if !waited {
            cancel_shielded_checkpoint().await?;
        }
        Ok(())
    }

    async fn wait_send_all_might_not_block(&self) -> Result<()> {
        let _slot = self.send_slot.enter()?;
        checkpoint_if_cancelled().await?;
        self.check_status()?;
        if self.sent_close_notify.get() {
            return Err(closed_for_sending());
        }
        // Under the send lock: a receiving task may be flushing handshake
        // bytes, and the transport allows one send-side call at a time.
        let (_guard, _) = take(&self.send_lock).await?;
        match self.transport.wait_send_all_might_not_block().await {
            Ok(()) => Ok(()),
            Err(e) if e.is_cancelled() => Err(e),
            Err(e) => Err(self.fail(e)),
        }
    }
}

fn closed_for_sending() -> Error {
    Error::new(
        ErrorKind::Closed,
        "this TLS stream sent its close_notify (send_eof): nothing more can be sent",
    )
}

impl<S: Stream> ReceiveStream for TlsStream<S> {
    async fn receive_some(&self, buf: &mut [u8]) -> Result<usize> {
        let _slot = self.recv_slot.enter()?;
        if buf.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "receive_some needs a non-empty buffer",
            ));
        }
        checkpoint_if_cancelled().await?;
        let ragged_ok = |s: &Self| s.https_compatible && s.handshake_eof.get() && !s.is_closed();
        if ragged_ok(self) {
            cancel_shielded_checkpoint().await?;
            return Ok(0);
        }
        self.check_status()?;
        let mut waited = false;
        if let Err(e) = self.ensure_handshake(&mut waited).await {
            if ragged_ok(self) {
                if !waited {
                    cancel_shielded_checkpoint().await?;
                }
                return Ok(0);
            }
            return Err(e);
        }
        // Transport receives that made no plaintext and did not wait, since
        // the last schedule point (see "Schedule points" in the module docs).
        let mut unyielded = 0;
        loop {
            self.check_status()?;
            let n = self.plain.borrow_mut().take_into(buf);
            // 0 with the peer's close_notify processed: end of stream.
            if n > 0 || self.peer_closed.get() {
                let n = if n > 0 && n < buf.len() {
                    n + self.read_more(&mut buf[n..])
                } else {
                    n
                };
                if !waited {
                    cancel_shielded_checkpoint().await?;
                }
                return Ok(n);
            }
            let mut pull_waited = false;
            let pulled = self.pull(&mut pull_waited, buf).await?;
            waited |= pull_waited;
            match pulled {
                Pull::Data(n) => {
                    if !waited {
                        cancel_shielded_checkpoint().await?;
                    }
                    return Ok(n);
                }
                // A run of records without plaintext (session tickets, say,
                // which a peer may send without end) keeps letting other
                // tasks run, as a long `send_all` does: one such receive
                // is free (a record split across two is common), then each
                // takes a schedule point unless it waited.
                Pull::Progress if pull_waited => unyielded = 0,
                Pull::Progress => {
                    unyielded += 1;
                    if unyielded > 1 {
                        cancel_shielded_checkpoint().await?;
                        waited = true;
                        unyielded = 0;
                    }
                }
                // The peer's close_notify: the loop returns 0.
                Pull::Eof if self.peer_closed.get() => {}
                Pull::Eof if self.https_compatible => {
                    if !waited {
                        cancel_shielded_checkpoint().await?;
                    }
                    return Ok(0);
                }
                Pull::Eof => {
                    return Err(self.fail(Error::new(
                        ErrorKind::Broken,
                        "the transport ended without a TLS close_notify (the data may be truncated)",
                    )));
                }
            }
        }
    }
}

impl<S: Stream> Stream for TlsStream<S> {
    async fn send_eof(&self) -> Result<()> {
        let _slot = self.send_slot.enter()?;
        checkpoint_if_cancelled().await?;
        self.check_status()?;
        let mut waited = false;
        if !self.sent_close_notify.get() {
            self.ensure_handshake(&mut waited).await?;
            self.check_status()?;
            let version = self.conn.borrow().common().protocol_version();
            if version != Some(ProtocolVersion::TLSv1_3) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "send_eof needs TLS 1.3: in TLS 1.2 a close_notify ends both directions",
                ));
            }
            self.queue_close_notify()?;
            if let Err(e) = self.flush(&mut waited, Sched::Deferred).await {
                return Err(self.fail(e));
            }
        }
        if !waited {
            cancel_shielded_checkpoint().await?;
        }
        Ok(())
    }
}

impl<S> fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status.try_borrow().as_deref() {
            Ok(Status::Ok) => "ok".to_owned(),
            Ok(Status::Closed) => "closed".to_owned(),
            Ok(Status::Broken(why)) => format!("broken: {why}"),
            Err(_) => "(in use)".to_owned(),
        };
        let handshake = match self.handshake.try_borrow().as_deref() {
            Ok(Handshake::NotStarted) => "not started",
            Ok(Handshake::Running(_)) => "running",
            Ok(Handshake::Done) => "done",
            Ok(Handshake::Failed) => "failed",
            Err(_) => "(in use)",
        };
        let version = self
            .conn
            .try_borrow()
            .ok()
            .and_then(|c| c.common().protocol_version());
        f.debug_struct("TlsStream")
            .field("side", &if self.server_side { "server" } else { "client" })
            .field("status", &status)
            .field("handshake", &handshake)
            .field("version", &version)
            .field("https_compatible", &self.https_compatible)
            .field("peer_closed", &self.peer_closed.get())
            .field("sent_close_notify", &self.sent_close_notify.get())
            .field("sending", &self.send_slot.is_busy())
            .field("receiving", &self.recv_slot.is_busy())
            .finish_non_exhaustive()
    }
}
