//! IO wrappers around a client connection.
//!
//! [`Prefixed`] replays the bytes read while sniffing (TLS or plaintext?) before reading from
//! the socket again, so sniffing needs no `peek` loop, and holds the TLS 1.3 session tickets
//! back so that they leave with the first response. [`ConnIo`] is the stream hyper sees: it
//! corks HTTP/2's writes until a flush (the driver puts flushes off until the end of a
//! wake-up), records activity for the idle/header/stall deadlines and guarantees the close path:
//! whenever it is dropped (normal end, error, timeout, panic unwinding, forced shutdown) a
//! task sends TLS close_notify if hyper did not, then reads until the peer's EOF for a short
//! while so that closing never turns into a TCP RST that destroys data the client has not
//! read yet (nginx calls this lingering close).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::frame_watch::{FrameFault, FrameWatch};
use crate::app::SendBudget;

/// How long the close path waits for close_notify to be written and for the peer's EOF.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// The most [`ConnIo`] holds back until a flush: one full TLS record of plaintext. hyper's
/// HTTP/2 writes each response whose body is over 256 bytes as its own write (frame
/// headers, then the body), and the TLS stream sends every write at once: without the cork,
/// ten responses to one read of ten requests cost ten records and ten `writev`s. A write
/// that does not fit goes out behind what is held, in the same write.
const CORK_MAX: usize = 16 * 1024;

/// A stream that first yields `prefix`, then reads from `inner`; counts the bytes written.
/// It can hold back the TLS 1.3 session tickets so that they leave with the first response
/// (see [`Prefixed::hold_tickets`]).
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
    written: usize,
    /// Whether a write that is a TLS 1.3 ticket flight is held back.
    holding: bool,
    /// Held bytes go out when a read finds nothing (no request came with the Finished).
    drain_when_idle: bool,
    /// Held bytes: they go out ahead of the next write, at shutdown, or when a read finds
    /// nothing to read (a client that sent no request with its Finished).
    held: Vec<u8>,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
            written: 0,
            holding: false,
            drain_when_idle: false,
            held: Vec::new(),
        }
    }

    /// Bytes written through this stream so far (e.g. whether a TLS alert went out).
    pub(crate) fn written(&self) -> usize {
        self.written
    }

    /// While on, a write made only of TLS application-data records longer than an alert is
    /// held back: during a TLS 1.3 handshake that is the server's session tickets, which
    /// rustls sends once the client's Finished arrives and which tokio-rustls writes and
    /// flushes on their own. A client sends its first request with its Finished, so held
    /// they leave with the response: one `writev` per handshake less. Every other handshake
    /// write (flights start with a handshake record; an alert record is 19 bytes) goes out
    /// at once. See [`Prefixed::handshake_done`].
    pub(crate) fn hold_tickets(&mut self) {
        self.holding = true;
    }

    /// The handshake is done: nothing more is held. What is held leaves ahead of the first
    /// write (the response), or at shutdown; without `request_waiting` (no request came
    /// with the client's Finished) also as soon as a read finds nothing to read.
    pub(crate) fn handshake_done(&mut self, request_waiting: bool) {
        self.holding = false;
        self.drain_when_idle = !request_waiting;
    }
}

/// Whether `bufs` are whole TLS records, each of them application data (type 23) longer
/// than an encrypted alert: the TLS 1.3 ticket flight, when written during the handshake.
fn is_ticket_flight(bufs: &[io::IoSlice<'_>]) -> bool {
    const APPLICATION_DATA: u8 = 23;
    /// An encrypted TLS 1.3 alert: 2 bytes, the inner content type and a 16-byte tag.
    const ALERT_LEN: usize = 19;
    let total = total_len(bufs);
    if total == 0 || total > 16 * 1024 {
        return false;
    }
    let joined: std::borrow::Cow<'_, [u8]> = match bufs {
        [one] => std::borrow::Cow::Borrowed(&one[..]),
        _ => bufs.iter().flat_map(|b| b.iter().copied()).collect(),
    };
    let mut rest = &joined[..];
    while !rest.is_empty() {
        let [kind, _, _, hi, lo, ..] = *rest else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if kind != APPLICATION_DATA || len <= ALERT_LEN || rest.len() < 5 + len {
            return false;
        }
        rest = &rest[5 + len..];
    }
    true
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            buf.put_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if res.is_pending() && !self.held.is_empty() && self.drain_when_idle {
            // No request came with the client's Finished: the tickets go now.
            let this = &mut *self;
            if let Poll::Ready(Err(e)) = poll_drain(&mut this.inner, cx, &mut this.held) {
                return Poll::Ready(Err(e));
            }
        }
        res
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Held tickets are not flushed: tokio-rustls flushes at the end of the handshake
        // and hyper may flush before its first write; they wait for that write (see
        // `handshake_done`).
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(poll_drain(&mut this.inner, cx, &mut this.held))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.holding && is_ticket_flight(bufs) {
            for b in bufs {
                this.held.extend_from_slice(b);
            }
            let n = total_len(bufs);
            this.written = this.written.saturating_add(n);
            return Poll::Ready(Ok(n));
        }
        let res = poll_write_behind(&mut this.inner, cx, &mut this.held, bufs);
        if let Poll::Ready(Ok(n)) = res {
            this.written = this.written.saturating_add(n);
        }
        res
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Per-connection activity shared by the IO, the service and the deadline driver.
#[derive(Debug)]
pub(crate) struct ConnState {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last byte read or written.
    last_io: AtomicU64,
    /// Requests whose response body is not finished.
    in_flight: AtomicU32,
    /// Milliseconds since `epoch` + 1 when the first byte of a request head arrived on an
    /// idle HTTP/1 connection; 0 when no head is being read.
    head_started: AtomicU64,
    /// The header timeout in ms when heads are tracked (HTTP/1).
    head_timeout_ms: Option<u64>,
    /// Milliseconds since `epoch` when the driver will look at the deadlines next
    /// (`u64::MAX` while it is looking): a head that starts notifies it only when the
    /// header deadline comes before that, so back-to-back requests do not wake it.
    next_look: AtomicU64,
    /// Set by the first request; see [`ConnState::wait_first_request`].
    first_request: AtomicBool,
    /// The driver asked to be woken by the first request (shutdown began before it).
    wake_on_first: AtomicBool,
    /// Wakes the driver when a head starts whose deadline is before its next look.
    pub(crate) wake: tokio::sync::Notify,
    /// Set by the driver while it polls the connection: a flush of corked writes is put off
    /// until the driver's last poll of this wake-up ([`ConnState::defer_flushes`]).
    defer_flush: AtomicBool,
    /// A flush was put off and the cork still holds bytes.
    flush_owed: AtomicBool,
    /// The last write to the client could not go out (its receive window is full): the
    /// connection is busy, not idle, until a write succeeds; see [`ConnState::check`].
    write_blocked: AtomicBool,
    /// What the HTTP/2 client did that ended the connection (server/frame_watch.rs); h2
    /// keeps only the text of an IO error, so the driver learns why from here.
    frame_fault: std::sync::OnceLock<FrameFault>,
    /// The connection's share of the file bytes read for responses and not yet sent
    /// (app/budget.rs); kept here because every response already holds this state.
    pub(crate) send_budget: Option<SendBudget>,
}

impl ConnState {
    /// `head_timeout`: track request heads (HTTP/1) against this timeout.
    pub(crate) fn new(head_timeout: Option<Duration>) -> Self {
        Self {
            epoch: Instant::now(),
            last_io: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            head_started: AtomicU64::new(0),
            head_timeout_ms: head_timeout.map(millis),
            next_look: AtomicU64::new(u64::MAX),
            first_request: AtomicBool::new(false),
            wake_on_first: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            defer_flush: AtomicBool::new(false),
            flush_owed: AtomicBool::new(false),
            write_blocked: AtomicBool::new(false),
            frame_fault: std::sync::OnceLock::new(),
            send_budget: None,
        }
    }

    /// Response bodies that stream a file take their chunks from `budget`.
    #[must_use]
    pub(crate) fn with_send_budget(mut self, budget: SendBudget) -> Self {
        self.send_budget = Some(budget);
        self
    }

    /// While `on`, a flush of a corked [`ConnIo`] that holds bytes answers at once and
    /// leaves them held. hyper's HTTP/2 flushes before each response body over 1 KiB, so
    /// responses to one read of requests would still leave one write each; the driver sets
    /// this while it polls the connection, then (when [`ConnState::take_flush_owed`] says a
    /// flush was put off) polls it once more with it off, and that poll's flush (h2 flushes
    /// at the end of every poll) writes them all at once. Only the connection's own task
    /// reads and writes these flags.
    pub(crate) fn defer_flushes(&self, on: bool) {
        self.defer_flush.store(on, Ordering::Relaxed);
    }

    /// Whether a flush was put off since the last real one (and clears the flag).
    pub(crate) fn take_flush_owed(&self) -> bool {
        self.flush_owed.swap(false, Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        let Some(head_timeout) = self.head_timeout_ms else {
            return;
        };
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            // SeqCst with `check` and `set_next_look`: either the driver's check sees this
            // head, or this sees the next look the driver set without it.
            self.head_started.store(now + 1, Ordering::SeqCst);
            if now.saturating_add(head_timeout) < self.next_look.load(Ordering::SeqCst) {
                self.wake.notify_one();
            }
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
        if self.write_blocked.load(Ordering::Relaxed) {
            self.write_blocked.store(false, Ordering::Relaxed);
        }
    }

    /// What the client did, when the connection was ended for it.
    pub(crate) fn frame_fault(&self) -> Option<&FrameFault> {
        self.frame_fault.get()
    }

    /// A write found the client's receive window full.
    fn on_write_blocked(&self) {
        self.write_blocked.store(true, Ordering::Relaxed);
    }

    /// A request reached the service: its head is complete.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
        if !self.first_request.load(Ordering::Relaxed) {
            // SeqCst with wait_first_request: one of the two sides sees the other's store.
            self.first_request.store(true, Ordering::SeqCst);
            if self.wake_on_first.load(Ordering::SeqCst) {
                self.wake.notify_one();
            }
        }
    }

    /// Whether a request has arrived; if not, the next one wakes the driver.
    pub(crate) fn wait_first_request(&self) -> bool {
        self.wake_on_first.store(true, Ordering::SeqCst);
        self.first_request.load(Ordering::SeqCst)
    }

    /// A response body finished or was dropped.
    pub(crate) fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// What the deadlines say now, and when to look again. The header deadline applies
    /// when a header timeout was given to [`ConnState::new`].
    pub(crate) fn check(&self, idle_timeout: Duration, park_after: Option<Duration>) -> Deadline {
        self.next_look.store(u64::MAX, Ordering::SeqCst);
        let now = self.now_ms();
        let last = self.last_io.load(Ordering::Relaxed);
        // A response in flight, or written and waiting for the client to read it (hyper
        // counts a small response as done once it is in its write buffer): never idle, so
        // never parked (a parked connection must hold no buffered bytes); stalled when no
        // byte moves for the idle timeout.
        if self.in_flight.load(Ordering::Acquire) > 0 || self.write_blocked.load(Ordering::Relaxed)
        {
            let due = last.saturating_add(millis(idle_timeout));
            return if now >= due {
                Deadline::Stalled
            } else {
                Deadline::Next(self.at(due))
            };
        }
        let head = self.head_started.load(Ordering::SeqCst);
        let idle_due = last.saturating_add(millis(idle_timeout));
        if let Some(header_timeout) = self.head_timeout_ms.filter(|_| head > 0) {
            let due = (head - 1).saturating_add(header_timeout);
            if now >= due {
                return Deadline::HeaderTimeout;
            }
            return Deadline::Next(self.at(due.min(idle_due)));
        }
        if now >= idle_due {
            return Deadline::Idle;
        }
        match park_after.map(|p| last.saturating_add(millis(p))) {
            Some(park_due) if now >= park_due => Deadline::Park,
            Some(park_due) => Deadline::Next(self.at(park_due.min(idle_due))),
            None => Deadline::Next(self.at(idle_due)),
        }
    }

    /// With no request in flight and no write waiting for the client: since when, counting
    /// from `since` at the earliest (the last byte moved, or `since`); `None` when busy.
    pub(crate) fn quiet_since(&self, since: Instant) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 || self.write_blocked.load(Ordering::Relaxed)
        {
            return None;
        }
        Some(since.max(self.at(self.last_io.load(Ordering::Relaxed))))
    }

    /// The driver will look at the deadlines again at `at` (or earlier, when notified).
    pub(crate) fn set_next_look(&self, at: Instant) {
        let ms = millis(at.saturating_duration_since(self.epoch));
        self.next_look.store(ms, Ordering::SeqCst);
    }

    /// When an idle connection reaches its idle timeout.
    pub(crate) fn idle_deadline(&self, idle_timeout: Duration) -> Instant {
        self.at(self
            .last_io
            .load(Ordering::Relaxed)
            .saturating_add(millis(idle_timeout)))
    }
}

/// `d` in whole milliseconds, saturating (deadlines are kept as milliseconds since a
/// connection's epoch).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Verdict of [`ConnState::check`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Nothing due before this instant.
    Next(Instant),
    /// No request in flight and nothing read for the idle timeout.
    Idle,
    /// No request in flight and nothing read for the park delay (HTTP/1.1): time to give
    /// back the per-connection HTTP buffers while the connection waits.
    Park,
    /// A request head started and did not complete in time.
    HeaderTimeout,
    /// A response is in flight but no byte moved for the idle timeout.
    Stalled,
}

/// Decrements the in-flight count when a response body is done (attached to the body).
pub(crate) struct InFlight(pub(crate) Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The client stream as hyper sees it; see the module docs for its close guarantee.
pub(crate) struct ConnIo<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    inner: Option<S>,
    /// Plaintext already read from `inner` that the next reader must see first (the bytes
    /// that woke a parked keep-alive connection, or what hyper had buffered).
    replay: bytes::Bytes,
    /// Small writes held until the next flush (or a large write), so that what hyper writes
    /// between two flushes leaves as one TLS record and one `writev`; see [`CORK_MAX`].
    corked: Vec<u8>,
    /// Whether writes are corked (HTTP/2, see [`ConnIo::cork_writes`]).
    corking: bool,
    state: Arc<ConnState>,
    shut_down: bool,
    token: Option<TaskTrackerToken>,
    /// HTTP/2: follows the client's frames (server/frame_watch.rs).
    frames: Option<Box<FrameWatch>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ConnIo<S> {
    pub(crate) fn new(inner: S, state: Arc<ConnState>, token: TaskTrackerToken) -> Self {
        Self {
            inner: Some(inner),
            replay: bytes::Bytes::new(),
            corked: Vec::new(),
            corking: false,
            state,
            shut_down: false,
            token: Some(token),
            frames: None,
        }
    }

    /// From now on the bytes read are followed as HTTP/2 frames; a client that keeps its
    /// flow-control windows tiny or sends pseudo-header fields in trailers gets a read error
    /// that ends the connection, and the [`FrameFault`] is kept in the [`ConnState`]
    /// (server/frame_watch.rs).
    pub(crate) fn watch_frames(&mut self) {
        self.frames = Some(Box::default());
    }

    /// From now on, writes up to [`CORK_MAX`] in all are held until a flush, and the stream
    /// reports no vectored writes. For HTTP/2: h2 copies a DATA frame of up to 1 KiB into
    /// its own write buffer when the IO is not vectored (256 bytes when it is), and it writes
    /// a larger frame's header and body as two writes; the cork makes those one TLS record.
    /// HTTP/1.1 writes each response once, vectored, and is not corked.
    pub(crate) fn cork_writes(&mut self) {
        self.corking = true;
    }

    /// Puts bytes back in front of the stream. They count as just read: a request that
    /// starts in them is not idle time (the driver must not park or time out a connection
    /// whose next request is already here).
    pub(crate) fn replay(&mut self, bytes: bytes::Bytes) {
        if !bytes.is_empty() {
            self.state.on_read();
        }
        if self.replay.is_empty() {
            self.replay = bytes;
        } else {
            let mut joined = bytes::BytesMut::with_capacity(bytes.len() + self.replay.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.replay);
            self.replay = joined.freeze();
        }
    }

    /// Whether bytes put back with [`ConnIo::replay`] are still unread.
    pub(crate) fn has_replay(&self) -> bool {
        !self.replay.is_empty()
    }

    fn inner(&mut self) -> io::Result<&mut S> {
        connected(&mut self.inner)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for ConnIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            buf.put_slice(&self.replay.split_to(n));
            self.state.on_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let inner = self.inner()?;
        let res = Pin::new(&mut *inner).poll_read(cx, buf);
        if res.is_pending() {
            // What the TLS layer answered on its own to the records just read (rustls'
            // `no_renegotiation` warning to a TLS 1.2 renegotiation request) waits in its
            // buffer for the next write; the client waits for it first, so without this
            // flush both sides stalled until the idle timeout. A no-op when nothing waits.
            if let Poll::Ready(Err(e)) = Pin::new(inner).poll_flush(cx) {
                return Poll::Ready(Err(e));
            }
        } else if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
            if let Some(watch) = self.frames.as_mut() {
                if let Err(fault) = watch.feed(&buf.filled()[before..]) {
                    let why = io::Error::other(fault.to_string());
                    let _ = self.state.frame_fault.set(fault);
                    return Poll::Ready(Err(why));
                }
            }
        }
        res
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ConnIo<S> {
    /// Takes `bufs` into the cork when they fit in it with what it holds; `None` when not.
    fn cork(&mut self, bufs: &[io::IoSlice<'_>]) -> Option<usize> {
        let len = total_len(bufs);
        if self.corked.len() + len > CORK_MAX {
            return None;
        }
        if self.corked.capacity() == 0 {
            // Room for a few small responses; it grows up to CORK_MAX when more come.
            self.corked.reserve(len.max(CORK_MAX / 4));
        }
        for b in bufs {
            self.corked.extend_from_slice(b);
        }
        Some(len)
    }

    /// Writes `bufs` behind what the cork holds, in one write to `inner` (one TLS record
    /// and one `writev` when they fit); the count is of `bufs`' bytes only.
    fn poll_write_through(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let inner = connected(&mut self.inner)?;
        let res = poll_write_behind(inner, cx, &mut self.corked, bufs);
        match res {
            Poll::Ready(Ok(n)) if n > 0 => self.state.on_write(),
            Poll::Pending => self.state.on_write_blocked(),
            _ => {}
        }
        res
    }

    /// Writes out what the cork holds.
    fn poll_uncork(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.corked.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let inner = connected(&mut self.inner)?;
        let before = self.corked.len();
        let res = poll_drain(inner, cx, &mut self.corked);
        if self.corked.len() < before {
            self.state.on_write();
        }
        if res.is_pending() {
            self.state.on_write_blocked();
        }
        res
    }
}

/// The stream of a [`ConnIo`] until its drop hands it to the close path.
fn connected<S>(inner: &mut Option<S>) -> io::Result<&mut S> {
    inner
        .as_mut()
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
}

/// The bytes in `bufs`.
fn total_len(bufs: &[io::IoSlice<'_>]) -> usize {
    bufs.iter().map(|b| b.len()).sum()
}

/// Writes `bufs` behind `held` in one write to `inner`; `Ready(n)` counts `bufs`' bytes
/// only. What of `held` went out leaves it; its allocation is freed once it is empty (an
/// idle connection keeps none).
fn poll_write_behind<W: AsyncWrite + Unpin>(
    inner: &mut W,
    cx: &mut Context<'_>,
    held: &mut Vec<u8>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    loop {
        let before = held.len();
        if before == 0 {
            return Pin::new(&mut *inner).poll_write_vectored(cx, bufs);
        }
        let mut all = Vec::with_capacity(bufs.len() + 1);
        all.push(io::IoSlice::new(held));
        all.extend(bufs.iter().map(|b| io::IoSlice::new(b)));
        let n = std::task::ready!(Pin::new(&mut *inner).poll_write_vectored(cx, &all))?;
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        if n < before {
            held.drain(..n);
            continue;
        }
        *held = Vec::new();
        if n > before || bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(n - before));
        }
    }
}

/// Writes out all of `held`, freeing its allocation once it is empty.
fn poll_drain<W: AsyncWrite + Unpin>(
    inner: &mut W,
    cx: &mut Context<'_>,
    held: &mut Vec<u8>,
) -> Poll<io::Result<()>> {
    while !held.is_empty() {
        let n = std::task::ready!(Pin::new(&mut *inner).poll_write(cx, held))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        if n == held.len() {
            *held = Vec::new();
        } else {
            held.drain(..n);
        }
    }
    Poll::Ready(Ok(()))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for ConnIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.corking {
            if let Some(n) = this.cork(bufs) {
                return Poll::Ready(Ok(n));
            }
        }
        this.poll_write_through(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        !self.corking
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.corked.is_empty() && this.state.defer_flush.load(Ordering::Relaxed) {
            this.state.flush_owed.store(true, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(this.poll_uncork(cx))?;
        this.state.flush_owed.store(false, Ordering::Relaxed);
        let res = Pin::new(this.inner()?).poll_flush(cx);
        match res {
            // The TLS stream still holds records the socket did not take.
            Poll::Pending => this.state.on_write_blocked(),
            Poll::Ready(Ok(())) if this.state.write_blocked.load(Ordering::Relaxed) => {
                this.state.on_write();
            }
            Poll::Ready(_) => {}
        }
        res
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_uncork(cx))?;
        let res = Pin::new(this.inner()?).poll_shutdown(cx);
        if res.is_ready() {
            this.shut_down = true;
        }
        res
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for ConnIo<S> {
    fn drop(&mut self) {
        let Some(stream) = self.inner.take() else {
            return;
        };
        let token = self.token.take();
        let shut_down = self.shut_down;
        // Written but never flushed (hyper always flushes; an error path may not): it goes
        // out ahead of close_notify, as it would have without the cork.
        let corked = std::mem::take(&mut self.corked);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut stream = stream;
                if !corked.is_empty() {
                    let wrote = tokio::time::timeout(LINGER, stream.write_all(&corked)).await;
                    if !matches!(wrote, Ok(Ok(()))) {
                        drop(token);
                        return;
                    }
                }
                close_gracefully(stream, shut_down).await;
                drop(token);
            });
        }
    }
}

/// Sends close_notify (unless already sent) and FIN, then discards what the peer still sends
/// until its EOF or [`LINGER`], so the socket is never closed with unread data (an RST).
pub(crate) async fn close_gracefully<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    shut_down: bool,
) {
    let _ = tokio::time::timeout(LINGER, async {
        if !shut_down && stream.shutdown().await.is_err() {
            return;
        }
        let mut sink = [0u8; 4096];
        let mut budget = 256 * 1024usize;
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 || budget < n {
                break;
            }
            budget -= n;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A stream that records each write it is given; it takes at most `max` bytes per write
    /// and answers `Pending` (waking at once) every other call when `stutter` is set.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        flushes: Arc<AtomicU32>,
        max: usize,
        stutter: bool,
        calls: Arc<AtomicU32>,
    }

    impl Recorder {
        fn new(max: usize, stutter: bool) -> Self {
            Self {
                max,
                stutter,
                ..Self::default()
            }
        }
        fn writes(&self) -> Vec<Vec<u8>> {
            self.writes.lock().unwrap().clone()
        }
        fn bytes(&self) -> Vec<u8> {
            self.writes().concat()
        }
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            if self.stutter && self.calls.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut took = Vec::new();
            for b in bufs {
                let n = (self.max - took.len()).min(b.len());
                took.extend_from_slice(&b[..n]);
            }
            let n = took.len();
            if n > 0 {
                self.writes.lock().unwrap().push(took);
            }
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn conn(rec: &Recorder, cork: bool) -> (ConnIo<Recorder>, tokio_util::task::TaskTracker) {
        let tracker = tokio_util::task::TaskTracker::new();
        let mut io = ConnIo::new(rec.clone(), Arc::new(ConnState::new(None)), tracker.token());
        if cork {
            io.cork_writes();
        }
        (io, tracker)
    }

    /// Distinct bytes, so that a lost, repeated or reordered byte shows.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| seed.wrapping_add((i % 251) as u8))
            .collect()
    }

    #[tokio::test]
    async fn small_writes_are_held_until_the_flush_and_leave_in_one_write() {
        let rec = Recorder::new(usize::MAX, false);
        let (mut io, _t) = conn(&rec, true);
        assert!(!io.is_write_vectored(), "h2 must copy small DATA frames");
        let mut expect = Vec::new();
        for i in 0..10u8 {
            let frame = pattern(9 + 771, i);
            io.write_all(&frame).await.unwrap();
            expect.extend_from_slice(&frame);
        }
        assert!(rec.writes().is_empty(), "nothing leaves before the flush");
        io.flush().await.unwrap();
        assert_eq!(rec.writes().len(), 1);
        assert_eq!(rec.bytes(), expect);
        assert_eq!(rec.flushes.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_write_that_does_not_fit_leaves_behind_the_held_bytes_in_the_same_write() {
        let rec = Recorder::new(usize::MAX, false);
        let (mut io, _t) = conn(&rec, true);
        let head = pattern(9, 1);
        let body = pattern(CORK_MAX, 2);
        io.write_all(&head).await.unwrap();
        let n = io.write(&body).await.unwrap();
        assert_eq!(n, body.len(), "the count is of the caller's bytes only");
        assert_eq!(rec.writes(), vec![[head, body].concat()]);
        io.flush().await.unwrap();
        assert_eq!(rec.writes().len(), 1, "nothing was left to flush");
    }

    #[tokio::test]
    async fn partial_and_pending_inner_writes_lose_and_reorder_nothing() {
        for (max, stutter) in [(1, false), (7, true), (100, true), (5000, false)] {
            let rec = Recorder::new(max, stutter);
            let (mut io, _t) = conn(&rec, true);
            let mut expect = Vec::new();
            for (i, len) in [3usize, 900, 20_000, 1, 16_000, 70_000, 5]
                .iter()
                .enumerate()
            {
                let chunk = pattern(*len, i as u8);
                io.write_all(&chunk).await.unwrap();
                expect.extend_from_slice(&chunk);
                if i % 3 == 2 {
                    io.flush().await.unwrap();
                }
            }
            io.flush().await.unwrap();
            assert_eq!(rec.bytes(), expect, "max {max}, stutter {stutter}");
        }
    }

    #[tokio::test]
    async fn shutdown_and_drop_write_out_what_is_held() {
        let rec = Recorder::new(usize::MAX, false);
        let (mut io, _t) = conn(&rec, true);
        io.write_all(b"held").await.unwrap();
        io.shutdown().await.unwrap();
        assert_eq!(rec.bytes(), b"held");

        let rec = Recorder::new(usize::MAX, false);
        let (mut io, tracker) = conn(&rec, true);
        io.write_all(b"never flushed").await.unwrap();
        drop(io);
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("the close task ends");
        assert_eq!(rec.bytes(), b"never flushed");
    }

    #[tokio::test]
    async fn a_flush_put_off_by_the_driver_holds_until_one_that_is_not() {
        let rec = Recorder::new(usize::MAX, false);
        let (mut io, _t) = conn(&rec, true);
        let state = Arc::clone(&io.state);
        // No bytes held: nothing is owed, the flush goes through.
        state.defer_flushes(true);
        io.flush().await.unwrap();
        assert!(!state.take_flush_owed());
        // Two responses, each followed by a flush, while the driver polls hyper.
        io.write_all(&pattern(2000, 1)).await.unwrap();
        io.flush().await.unwrap();
        io.write_all(&pattern(3000, 2)).await.unwrap();
        io.flush().await.unwrap();
        state.defer_flushes(false);
        assert!(rec.writes().is_empty());
        assert!(state.take_flush_owed());
        // The driver's last poll: hyper's flush writes both at once.
        io.flush().await.unwrap();
        assert_eq!(
            rec.writes(),
            vec![[pattern(2000, 1), pattern(3000, 2)].concat()]
        );
        assert!(!state.take_flush_owed());
        assert_eq!(io.corked.capacity(), 0, "an idle connection holds no cork");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_client_does_not_read_is_busy_not_parked_and_replayed_bytes_count_as_read(
    ) {
        let idle = Duration::from_secs(60);
        let park = Some(Duration::from_millis(100));
        let state = Arc::new(ConnState::new(None));
        // A write the client's window did not take: waiting on the client is not idleness.
        state.on_write_blocked();
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(matches!(state.check(idle, park), Deadline::Next(_)));
        // ... until the idle timeout with no byte moved: stalled, as a response in flight.
        tokio::time::advance(idle).await;
        assert_eq!(state.check(idle, park), Deadline::Stalled);
        // Once a write goes out, the connection is idle again and parks after the delay.
        state.on_write();
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(state.check(idle, park), Deadline::Park);

        // Bytes put back in front of the stream are activity: the next request is already
        // here, so the driver must not park the connection before hyper reads them.
        let tracker = tokio_util::task::TaskTracker::new();
        let mut io = ConnIo::new(Recorder::default(), Arc::clone(&state), tracker.token());
        io.replay(bytes::Bytes::from_static(b"GET / HTTP/1.1\r\n"));
        assert!(io.has_replay());
        assert!(matches!(state.check(idle, park), Deadline::Next(_)));
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
        assert!(!io.has_replay());
    }

    /// TLS records of `kind` with payloads of these lengths.
    fn records(kind: u8, lens: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, len) in lens.iter().enumerate() {
            out.extend_from_slice(&[kind, 3, 3]);
            out.extend_from_slice(&u16::try_from(*len).unwrap().to_be_bytes());
            out.extend_from_slice(&pattern(*len, i as u8));
        }
        out
    }

    #[test]
    fn only_application_data_records_longer_than_an_alert_are_a_ticket_flight() {
        let one = |b: &[u8]| is_ticket_flight(&[io::IoSlice::new(b)]);
        assert!(one(&records(23, &[155, 155])));
        // The same flight as rustls hands it over: one slice per record.
        let (a, b) = (records(23, &[155]), records(23, &[200]));
        assert!(is_ticket_flight(&[
            io::IoSlice::new(&a),
            io::IoSlice::new(&b)
        ]));
        // An encrypted alert (19 bytes) goes at once, alone or behind a ticket.
        assert!(!one(&records(23, &[19])));
        assert!(!one(&records(23, &[155, 19])));
        // A flight that starts with a handshake record (ServerHello, a TLS 1.2 flight).
        assert!(!one(&[records(22, &[122]), records(23, &[155])].concat()));
        assert!(!one(&records(21, &[2])));
        // Anything cut short or empty.
        assert!(!one(&records(23, &[155])[..100]));
        assert!(!one(&[23, 3, 3]));
        assert!(!one(b""));
    }

    fn prefixed(rec: &Recorder) -> Prefixed<Recorder> {
        let mut p = Prefixed::new(Vec::new(), rec.clone());
        p.hold_tickets();
        p
    }

    #[tokio::test]
    async fn tickets_leave_with_the_first_response_when_a_request_came_with_the_finished() {
        let rec = Recorder::new(usize::MAX, false);
        let mut p = prefixed(&rec);
        let flight = [
            records(22, &[122]),
            records(20, &[1]),
            records(23, &[30, 900]),
        ]
        .concat();
        p.write_all(&flight).await.unwrap();
        p.flush().await.unwrap();
        let tickets = records(23, &[155, 155]);
        p.write_all(&tickets).await.unwrap();
        p.flush().await.unwrap();
        assert_eq!(rec.writes(), vec![flight.clone()], "the tickets are held");
        assert_eq!(p.written(), flight.len() + tickets.len());
        p.handshake_done(true);
        let mut buf = [0u8; 16];
        let _ = p.read(&mut buf).await.unwrap();
        p.flush().await.unwrap();
        assert_eq!(
            rec.writes().len(),
            1,
            "neither a flush nor a read sends them"
        );
        let response = records(23, &[1200]);
        p.write_all(&response).await.unwrap();
        assert_eq!(rec.writes(), vec![flight, [tickets, response].concat()]);
    }

    /// A stream whose reads never complete (the client sent nothing more).
    struct Silent(Recorder);

    impl AsyncRead for Silent {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Silent {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn without_a_request_the_tickets_go_when_a_read_finds_nothing_or_at_shutdown() {
        let rec = Recorder::new(usize::MAX, false);
        let mut p = Prefixed::new(Vec::new(), Silent(rec.clone()));
        p.hold_tickets();
        let tickets = records(23, &[155, 155]);
        p.write_all(&tickets).await.unwrap();
        p.handshake_done(false);
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(50), p.read(&mut buf)).await;
        assert!(read.is_err(), "the read waits for the client");
        assert_eq!(rec.bytes(), tickets);

        let rec = Recorder::new(usize::MAX, false);
        let mut p = prefixed(&rec);
        p.write_all(&tickets).await.unwrap();
        p.handshake_done(true);
        p.shutdown().await.unwrap();
        assert_eq!(
            rec.bytes(),
            tickets,
            "shutdown sends them before close_notify"
        );
    }

    #[tokio::test]
    async fn without_the_cork_every_write_goes_straight_through() {
        let rec = Recorder::new(usize::MAX, false);
        let (mut io, _t) = conn(&rec, false);
        assert!(io.is_write_vectored());
        io.write_all(b"one").await.unwrap();
        io.write_all(b"two").await.unwrap();
        assert_eq!(rec.writes(), vec![b"one".to_vec(), b"two".to_vec()]);
    }
}
