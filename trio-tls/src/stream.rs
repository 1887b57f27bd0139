//! [`TlsStream`]: TLS over any trio [`Stream`], on rustls (DESIGN §9, Trio's
//! `SSLStream`).
//!
//! # Design
//!
//! rustls is a state machine with no I/O: bytes from the transport go in
//! (`read_tls` + `process_new_packets`), plaintext comes out (`reader`),
//! plaintext goes in (`writer`) and TLS bytes come out (`write_tls`). All of
//! that is synchronous and happens under a short `RefCell` borrow of the
//! connection, never across an `await`. The awaits are on the transport
//! only, under two internal trio [`Lock`]s:
//!
//! - **Sending** (`send_lock`). Every byte rustls produces, by whichever
//!   task, is appended at once to one `outgoing` buffer, in the order
//!   rustls produced it. The task holding the send lock hands *everything*
//!   in `outgoing` to the transport and loops until it is empty. So the
//!   order on the wire is rustls's order, and a task cancelled while
//!   waiting for the lock loses nothing: its bytes are still queued and go
//!   out with the next flush.
//! - **Receiving** (`recv_lock`). The lock holder receives from the
//!   transport into `incoming` and feeds rustls from it. A task that waited
//!   for the lock while another received (`recv_count` moved) does not
//!   receive again: it re-checks what it needed first (Trio's trick).
//!
//! # Feeding: one complete record per processing
//!
//! Received bytes stay in `incoming` until rustls has *processed* the
//! record they belong to. rustls is handed bytes (`read_tls`, which takes
//! what fits in its buffer, 4 KiB more per call while that grows) up to
//! the end of the current TLS record (the 5-byte record header carries its
//! length) and one byte into the next one; then `process_new_packets` runs
//! once. So each processing sees exactly one complete record: if the peer's
//! `close_notify` was processed, it was that record, and it ended where
//! `incoming` now starts. rustls drops what it was given after a
//! `close_notify`, `incoming` still has it, and [`TlsStream::unwrap`]
//! returns it with the transport.
//!
//! Handing rustls that one byte of the next record is what keeps rustls's
//! own buffer from ever emptying between records of a bulk transfer: an
//! empty buffer is shrunk to 4 KiB and then regrown (and zero-filled)
//! 4 KiB at a time for each record. Feeding exactly one record, as this
//! module once did, cost 9% more instructions per MiB received (callgrind,
//! `benches/tls.rs --instructions`: 3.49 against 3.21 million). One byte
//! rather than more: it is all rustls moves to the front of its buffer
//! when it drops the processed record.
//!
//! Feeding also stops as soon as a record yields plaintext, which keeps
//! rustls's plaintext buffer to one record; `receive_some` copies it out
//! and, while the caller's buffer has room, feeds the next records already
//! received (without waiting), so one call can return several records.
//!
//! # Why not rustls's unbuffered API
//!
//! Received bytes are copied once more than in tokio-rustls (transport
//! buffer → rustls's buffer), since rustls's buffered API reads from a
//! synchronous `io::Read` and trio's streams are async: about 3% of the
//! server's instructions per MiB (the rest of a bulk receive is the same as
//! tokio-rustls's). rustls's unbuffered API decrypts in the caller's buffer
//! and would remove that copy, but it does not fit full duplex here: to
//! encrypt, a sender must get `WriteTraffic` from `process_tls_records`,
//! which takes the receive buffer, and the receiver holds that buffer
//! while it waits on the transport (an empty stand-in is not safe: rustls
//! 0.23 slices the buffer at offsets it saved in earlier calls while a
//! handshake message is partly buffered). In rustls 0.23 it also still
//! copies the plaintext once (`ReadTraffic` pops the same plaintext
//! buffer).
//!
//! # State and its invariants
//!
//! - `status` is `Ok`, `Broken` (for good: a failed or cancelled handshake,
//!   a failed or cancelled send, a TLS error, a transport failure, a
//!   ragged end of stream unless `https_compatible`) or `Closed` (our own
//!   `aclose`, or a finished `unwrap`). `Closed` wins over `Broken`.
//! - `handshake` goes `NotStarted → Running → Done | Failed` once. The
//!   first caller runs it in its own task; concurrent callers wait on the
//!   `Running` event and then read the outcome. A runner whose future is
//!   dropped marks it `Failed` (and wakes the waiters).
//! - A TLS 1.3 server's last handshake flight (session tickets) is not
//!   flushed at the end of the handshake but queued for the next send
//!   (Trio does the same): the client may not be receiving yet, and over a
//!   transport with no buffer the server would block forever.
//! - After the handshake, `receive_some` never sends: bytes rustls
//!   produces while receiving (a key-update reply) are queued for the next
//!   flush. So a receive only ever waits for the transport's receive (or
//!   the receive lock), and cancelled there it had no effect.
//!
//! Every operation is a checkpoint: it starts with
//! [`checkpoint_if_cancelled`] and, if it never waited (the plaintext was
//! already there, say), ends with [`cancel_shielded_checkpoint`].

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, Connection, ProtocolVersion, ServerConfig, ServerConnection,
};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{BufRead, Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use trio::stream::BusySlot;
use trio::stream::{AsyncResource, ReceiveStream, SendStream, Stream, aclose_forcefully};
use trio::sync::{Event, Lock, LockGuard};
use trio::{Error, ErrorKind, Result, cancel_shielded_checkpoint, checkpoint_if_cancelled};

/// The length of a TLS record header: type (1), version (2), length (2).
const RECORD_HEADER: usize = 5;
/// The largest record rustls accepts, header included: 16 KiB of payload
/// plus 2 KiB of expansion (RFC 8446 §5.2, RFC 5246 §6.2.3).
const MAX_RECORD: usize = RECORD_HEADER + 16 * 1024 + 2048;
/// The first transport receive size: one largest TLS 1.2 record (16 KiB of
/// payload + 2 KiB of expansion + the header), rounded up.
const START_RECEIVE: usize = 20 * 1024;
/// Receives grow (doubling while they come back full) up to this, to make
/// bulk transfers cost fewer system calls. 128 KiB: in the pinned bulk
/// benchmark (`benches/tls.rs`) the server's CPU per MiB against
/// tokio-rustls was 1.05x with 64 KiB, 0.955x with 128 KiB and 0.96x with
/// 256 KiB (medians of three runs of 7 rounds); only a connection whose
/// receives keep coming back full grows its buffer this far.
const MAX_RECEIVE: usize = 128 * 1024;
/// Plaintext handed to rustls per flush in `send_all`: rustls's own default
/// buffer limit, so a write is never cut short.
const SEND_CHUNK: usize = 64 * 1024;

enum Status {
    Ok,
    /// Why (the first failure's message); reported by every later call.
    Broken(Rc<str>),
    Closed,
}

enum Handshake {
    NotStarted,
    /// Set when the runner finishes, however it finishes.
    Running(Rc<Event>),
    Done,
    Failed,
}

/// Transport bytes received whose records rustls has not processed yet:
/// `buf[start..end]`, starting at a record boundary. Its first `given`
/// bytes have been handed to rustls already (up to one byte of the next
/// record included, see "Feeding" in the module docs); they stay here until
/// the record they belong to is processed, so that whatever follows the peer's
/// `close_notify` is still here for [`TlsStream::unwrap`].
#[derive(Default)]
struct Incoming {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    given: usize,
}

impl Incoming {
    /// The length of the record starting `at` bytes after `start`, header
    /// included, if its header has been received.
    fn record_len(&self, at: usize) -> Option<usize> {
        let from = self.start + at;
        if from + RECORD_HEADER > self.end {
            return None;
        }
        let h = &self.buf[from..from + RECORD_HEADER];
        Some(RECORD_HEADER + usize::from(u16::from_be_bytes([h[3], h[4]])))
    }

    /// Whether the header at `start` (received) could start a TLS record:
    /// a known content type (20 to 24), version 3.x, and at most
    /// [`MAX_RECORD`] long. rustls rejects anything else as soon as it
    /// processes the header, which must not wait for the rest of a record
    /// that is not one (a plain-text client, say).
    fn plausible_header(&self) -> bool {
        let h = &self.buf[self.start..self.start + RECORD_HEADER];
        let len = RECORD_HEADER + usize::from(u16::from_be_bytes([h[3], h[4]]));
        (20..=24).contains(&h[0]) && h[1] == 3 && len <= MAX_RECORD
    }
}

impl Incoming {
    /// Makes at least `want` bytes of room after `end`.
    fn make_room(&mut self, want: usize) {
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

/// `incoming`, taken out of its cell while the receive lock holder waits
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

/// What one [`TlsStream::pull`] achieved.
enum Pull {
    /// Something changed: re-check.
    Progress,
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
        if let Handshake::Running(done) = old {
            done.set();
        }
    }
}

/// A TLS stream over any trio [`Stream`] (Trio's `SSLStream`), on a rustls
/// client or server connection. It is a [`Stream`] itself, with the
/// semantics of DESIGN §9:
///
/// - **Handshake**: run once, lazily by the first operation that needs it,
///   or by [`do_handshake`](Self::do_handshake); concurrent callers share
///   it (the others wait for the first's outcome). A handshake that fails
///   or is cancelled leaves the stream Broken for good.
/// - **Full duplex**: one task may send while another receives; either may
///   flush the other's handshake or alert bytes (internal locks on the
///   transport). A second concurrent sender or receiver gets `Busy`.
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
///   [`aclose_forcefully`](trio::stream::aclose_forcefully)).
/// - [`send_eof`](Stream::send_eof) sends `close_notify` on TLS 1.3 (the
///   peer reads end of stream, and this side can still receive); on TLS
///   1.2, where `close_notify` ends both directions, it is an
///   [`ErrorKind::Unsupported`] error.
/// - [`unwrap`](Self::unwrap) ends TLS and returns the transport with any
///   bytes received after the peer's `close_notify`.
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
    conn: RefCell<Connection>,
    server_side: bool,
    https_compatible: bool,
    handshake_timeout: Option<Duration>,
    status: RefCell<Status>,
    handshake: RefCell<Handshake>,
    /// The peer's `close_notify` has been processed: nothing more is fed
    /// to rustls (what follows it stays in `incoming`, for `unwrap`).
    peer_closed: Cell<bool>,
    /// The transport's `receive_some` returned 0.
    transport_eof: Cell<bool>,
    /// The handshake failed because the transport ended (with
    /// `https_compatible`, `receive_some` reads that as end of stream).
    handshake_eof: Cell<bool>,
    /// This side queued its `close_notify` (`send_eof`, `aclose`,
    /// `unwrap`): nothing more may be sent.
    sent_close_notify: Cell<bool>,
    /// Bytes rustls produced, in its order, not yet handed to the
    /// transport. Appended to by any task; emptied by the send lock holder.
    outgoing: RefCell<Vec<u8>>,
    /// The send lock holder's second buffer, swapped with `outgoing`, so
    /// that flushing allocates nothing in the steady state.
    spare: RefCell<Vec<u8>>,
    /// Received and not yet fed to rustls. Only the receive lock holder
    /// touches it (and `unwrap`, which owns the stream).
    incoming: RefCell<Incoming>,
    /// The next transport receive's size.
    receive_size: Cell<usize>,
    send_lock: Lock,
    recv_lock: Lock,
    /// Transport receives so far (see the module docs).
    recv_count: Cell<u64>,
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
        let conn = ClientConnection::new(config, server_name).map_err(tls_error)?;
        Ok(Self::new(transport, conn.into(), false))
    }

    /// The server end of a TLS connection over `transport`. Nothing
    /// happens on the transport until the handshake.
    pub fn server(transport: S, config: Arc<ServerConfig>) -> Result<Self> {
        let conn = ServerConnection::new(config).map_err(tls_error)?;
        Ok(Self::new(transport, conn.into(), true))
    }

    /// The server end over `transport`, on a connection already made.
    pub(crate) fn from_server_connection(transport: S, conn: ServerConnection) -> Self {
        Self::new(transport, conn.into(), true)
    }

    fn new(transport: S, conn: Connection, server_side: bool) -> Self {
        TlsStream {
            transport,
            conn: RefCell::new(conn),
            server_side,
            https_compatible: false,
            handshake_timeout: None,
            status: RefCell::new(Status::Ok),
            handshake: RefCell::new(Handshake::NotStarted),
            peer_closed: Cell::new(false),
            transport_eof: Cell::new(false),
            handshake_eof: Cell::new(false),
            sent_close_notify: Cell::new(false),
            outgoing: RefCell::new(Vec::new()),
            spare: RefCell::new(Vec::new()),
            incoming: RefCell::new(Incoming::default()),
            receive_size: Cell::new(START_RECEIVE),
            send_lock: Lock::new(),
            recv_lock: Lock::new(),
            recv_count: Cell::new(0),
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
        self.after_handshake(|c| match c {
            Connection::Server(s) => s.server_name().map(str::to_owned),
            Connection::Client(_) => None,
        })
    }

    fn after_handshake<T>(&self, f: impl FnOnce(&Connection) -> T) -> Result<T> {
        if !self.is_handshake_done() {
            return Err(not_handshaken());
        }
        Ok(f(&self.conn.borrow()))
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
        self.queue_close_notify();
        self.flush(&mut waited).await.map_err(|e| self.fail(e))?;
        loop {
            let unread = {
                let mut conn = self.conn.borrow_mut();
                let mut reader = conn.reader();
                matches!(reader.fill_buf(), Ok(chunk) if !chunk.is_empty())
            };
            if unread {
                return Err(self.fail(Error::new(
                    ErrorKind::Broken,
                    "unwrap: application data arrived before the peer's close_notify \
                     (receive to the end of the stream first)",
                )));
            }
            if self.peer_closed.get() {
                break;
            }
            if let Pull::Eof = self.pull(&mut waited).await? {
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

    fn queue_close_notify(&self) {
        if !self.sent_close_notify.replace(true) {
            let mut conn = self.conn.borrow_mut();
            conn.send_close_notify();
            self.drain(&mut conn);
        }
    }

    // ----- the handshake -------------------------------------------------------

    /// Runs the handshake or waits for it (see the module docs). Sets
    /// `*waited` when it waited (a checkpoint happened).
    async fn ensure_handshake(&self, waited: &mut bool) -> Result<()> {
        let running = match &*self.handshake.borrow() {
            Handshake::Done => return Ok(()),
            Handshake::Failed => None,
            Handshake::Running(done) => Some(Some(done.clone())),
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
        let done = Rc::new(Event::new());
        *self.handshake.borrow_mut() = Handshake::Running(done.clone());
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
        let out = match r {
            Ok(()) => {
                *self.handshake.borrow_mut() = Handshake::Done;
                Ok(())
            }
            Err(e) => {
                *self.handshake.borrow_mut() = Handshake::Failed;
                Err(self.fail(e))
            }
        };
        done.set();
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
        loop {
            let (handshaking, tls13_server) = {
                let mut conn = self.conn.borrow_mut();
                self.drain(&mut conn);
                let tls13 = conn.protocol_version() == Some(ProtocolVersion::TLSv1_3);
                (conn.is_handshaking(), self.server_side && tls13)
            };
            if !handshaking {
                // A TLS 1.3 server's last flight is only session tickets,
                // which nobody waits for: queue them (module docs).
                if !tls13_server {
                    self.flush(waited).await?;
                }
                return Ok(());
            }
            if !self.outgoing.borrow().is_empty() {
                self.flush(waited).await?;
                continue;
            }
            if let Pull::Eof = self.pull(waited).await? {
                self.handshake_eof.set(true);
                return Err(Error::new(
                    ErrorKind::Broken,
                    "the transport ended during the TLS handshake",
                ));
            }
        }
    }

    // ----- the transport -------------------------------------------------------

    /// Moves every TLS byte rustls has ready into `outgoing`.
    fn drain(&self, conn: &mut Connection) {
        let mut out = self.outgoing.borrow_mut();
        // Writing into a Vec cannot fail.
        while conn.wants_write() {
            match conn.write_tls(&mut *out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Hands everything in `outgoing` to the transport, under the send lock.
    /// A transport failure (or cancellation part-way) breaks the stream; a
    /// cancellation while waiting for the lock loses nothing (the bytes
    /// stay queued) and is returned as is.
    async fn flush(&self, waited: &mut bool) -> Result<()> {
        {
            let mut conn = self.conn.borrow_mut();
            self.drain(&mut conn);
        }
        if self.outgoing.borrow().is_empty() {
            return Ok(());
        }
        let (_guard, w) = take(&self.send_lock).await?;
        *waited |= w;
        loop {
            let mut buf = std::mem::take(&mut *self.spare.borrow_mut());
            {
                let mut conn = self.conn.borrow_mut();
                self.drain(&mut conn);
            }
            std::mem::swap(&mut buf, &mut *self.outgoing.borrow_mut());
            if buf.is_empty() {
                *self.spare.borrow_mut() = buf;
                return Ok(());
            }
            let r = self.transport.send_all(&buf).await;
            buf.clear();
            *self.spare.borrow_mut() = buf;
            match r {
                Ok(()) => *waited = true,
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Feeds rustls from `incoming` and processes what it was given, one
    /// complete record per `process_new_packets` (see "Feeding" in the
    /// module docs). Returns whether it did anything (handed over bytes or
    /// processed a record). Only the receive lock holder (or `unwrap`)
    /// calls it.
    fn feed(&self) -> Result<bool> {
        let mut progress = false;
        let result = {
            let mut conn = self.conn.borrow_mut();
            let mut inc = self.incoming.borrow_mut();
            let result = loop {
                if self.peer_closed.get() {
                    break Ok(());
                }
                let avail = inc.end - inc.start;
                // The record at `start`, and how far rustls may be given
                // bytes: to its end and one byte into the next record (a
                // record is at least its 5-byte header, so never the whole
                // of the next one). One byte is enough to keep rustls's
                // buffer from emptying, and is all that rustls then has to
                // move to the front of its buffer once the record is done.
                let current = inc.record_len(0);
                let limit = match current {
                    Some(len) => avail.min(len + 1),
                    None => avail,
                };
                // Process when rustls holds the whole record; one with an
                // invalid header as soon as rustls has that, to report it.
                let invalid = current.is_some() && !inc.plausible_header();
                let process = current
                    .is_some_and(|len| inc.given >= len || (invalid && inc.given >= RECORD_HEADER));
                if !process && inc.given < limit {
                    let (from, to) = (inc.start + inc.given, inc.start + limit);
                    let mut slice = &inc.buf[from..to];
                    match conn.read_tls(&mut slice) {
                        Ok(0) => {
                            break Err(Error::new(
                                ErrorKind::Broken,
                                "rustls accepted no TLS bytes",
                            ));
                        }
                        Ok(k) => inc.given += k,
                        Err(e) => break Err(Error::with_kind(ErrorKind::Broken, e)),
                    }
                    progress = true;
                    // rustls takes at most 4 KiB per call: loop until the
                    // record is complete or nothing more may be given.
                    continue;
                }
                let Some(len) = current.filter(|_| process) else {
                    break Ok(()); // the record is not all here yet
                };
                // rustls holds one complete record, and at most one byte
                // of the next, so a close_notify can only be that record.
                let state = conn.process_new_packets();
                progress = true;
                if invalid {
                    break Err(match state {
                        Err(e) => tls_error(e),
                        Ok(_) => Error::new(ErrorKind::Broken, "an invalid TLS record header"),
                    });
                }
                inc.start += len;
                inc.given -= len;
                match state {
                    Ok(state) => {
                        if state.peer_has_closed() {
                            // rustls dropped the bytes given after the
                            // close_notify; they are still in `incoming`.
                            self.peer_closed.set(true);
                            inc.given = 0;
                        }
                        if state.plaintext_bytes_to_read() > 0 {
                            break Ok(());
                        }
                    }
                    Err(e) => break Err(tls_error(e)),
                }
            };
            if inc.start == inc.end {
                inc.start = 0;
                inc.end = 0;
            }
            // Whatever processing produced (handshake messages, a
            // key-update reply, an alert) is queued in rustls's order.
            self.drain(&mut conn);
            result
        };
        result.map(|()| progress).map_err(|e| self.fail(e))
    }

    /// After some plaintext was read into the caller's buffer: fills more
    /// of it (`rest`) from records already received, without waiting, so a
    /// large buffer takes several records in one call. Feeds only if the
    /// receive lock is free. A feeding failure is recorded (Broken) and
    /// reported by the next call, so the bytes already read are returned.
    fn read_more(&self, rest: &mut [u8]) -> usize {
        let Ok(_guard) = self.recv_lock.try_acquire() else {
            return 0;
        };
        let mut filled = 0;
        while filled < rest.len() {
            if !matches!(self.feed(), Ok(true)) {
                break;
            }
            if let Ok(n) = self.conn.borrow_mut().reader().read(&mut rest[filled..]) {
                filled += n;
            }
        }
        filled
    }

    /// Makes the receive side progress once: feeds what is already
    /// received, or receives from the transport and feeds that. Cancelled,
    /// it had no effect.
    async fn pull(&self, waited: &mut bool) -> Result<Pull> {
        let seen = self.recv_count.get();
        let (_guard, w) = take(&self.recv_lock).await?;
        *waited |= w;
        if self.recv_count.get() != seen {
            // Another task received while we waited for the lock.
            return Ok(Pull::Progress);
        }
        if self.feed()? {
            self.recv_count.set(self.recv_count.get() + 1);
            return Ok(Pull::Progress);
        }
        if self.peer_closed.get() || self.transport_eof.get() {
            return Ok(Pull::Eof);
        }
        let want = self.receive_size.get();
        let mut taken = Taken {
            home: &self.incoming,
            buf: std::mem::take(&mut *self.incoming.borrow_mut()),
        };
        taken.buf.make_room(want);
        let end = taken.buf.end;
        let r = self
            .transport
            .receive_some(&mut taken.buf.buf[end..end + want])
            .await;
        let n = match r {
            Ok(n) => n,
            Err(e) if e.is_cancelled() => return Err(e),
            Err(e) => {
                drop(taken);
                return Err(self.fail(e));
            }
        };
        *waited = true;
        self.recv_count.set(self.recv_count.get() + 1);
        if n == 0 {
            self.transport_eof.set(true);
            return Ok(Pull::Eof);
        }
        taken.buf.end += n;
        if n == want {
            self.receive_size.set((want * 2).min(MAX_RECEIVE));
        }
        drop(taken);
        self.feed()?;
        Ok(Pull::Progress)
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
            self.queue_close_notify();
            self.flush(&mut waited).await
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
            let n = {
                let mut conn = self.conn.borrow_mut();
                let n = conn.writer().write(&rest[..rest.len().min(SEND_CHUNK)]);
                self.drain(&mut conn);
                n
            };
            match n {
                Ok(0) => {
                    return Err(self.fail(Error::new(
                        ErrorKind::Broken,
                        "rustls accepted no plaintext",
                    )));
                }
                Ok(n) => rest = &rest[n..],
                Err(e) => return Err(self.fail(Error::with_kind(ErrorKind::Broken, e))),
            }
            // Any failure here, a cancellation while waiting for the send
            // lock included, breaks the stream: our data may be queued.
            if let Err(e) = self.flush(&mut waited).await {
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
        loop {
            self.check_status()?;
            let r = self.conn.borrow_mut().reader().read(buf);
            match r {
                // 0: the peer's close_notify (end of stream).
                Ok(n) => {
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
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(self.fail(Error::with_kind(ErrorKind::Broken, e))),
            }
            if let Pull::Eof = self.pull(&mut waited).await? {
                if self.peer_closed.get() {
                    continue; // the reader now says 0
                }
                if self.https_compatible {
                    if !waited {
                        cancel_shielded_checkpoint().await?;
                    }
                    return Ok(0);
                }
                return Err(self.fail(Error::new(
                    ErrorKind::Broken,
                    "the transport ended without a TLS close_notify (the data may be truncated)",
                )));
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
            let version = self.conn.borrow().protocol_version();
            if version != Some(ProtocolVersion::TLSv1_3) {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "send_eof needs TLS 1.3: in TLS 1.2 a close_notify ends both directions",
                ));
            }
            self.queue_close_notify();
            if let Err(e) = self.flush(&mut waited).await {
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
            .and_then(|c| c.protocol_version());
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
