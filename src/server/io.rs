//! IO wrappers around a client connection.
//!
//! [`Prefixed`] replays the bytes read while sniffing (TLS or plaintext?) before reading from
//! the socket again, so sniffing needs no `peek` loop. [`ConnIo`] is the stream hyper sees:
//! it records activity for the idle/header/stall deadlines and guarantees the close path:
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

/// How long the close path waits for close_notify to be written and for the peer's EOF.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// A stream that first yields `prefix`, then reads from `inner`; counts the bytes written.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
    written: usize,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
            written: 0,
        }
    }

    /// Bytes written through this stream so far (e.g. whether a TLS alert went out).
    pub(crate) fn written(&self) -> usize {
        self.written
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
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
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.written = self.written.saturating_add(n);
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            self.written = self.written.saturating_add(n);
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
        }
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
        if self.in_flight.load(Ordering::Acquire) > 0 {
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
    state: Arc<ConnState>,
    shut_down: bool,
    token: Option<TaskTrackerToken>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> ConnIo<S> {
    pub(crate) fn new(inner: S, state: Arc<ConnState>, token: TaskTrackerToken) -> Self {
        Self {
            inner: Some(inner),
            replay: bytes::Bytes::new(),
            state,
            shut_down: false,
            token: Some(token),
        }
    }

    /// Puts bytes back in front of the stream.
    pub(crate) fn replay(&mut self, bytes: bytes::Bytes) {
        if self.replay.is_empty() {
            self.replay = bytes;
        } else {
            let mut joined = bytes::BytesMut::with_capacity(bytes.len() + self.replay.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.replay);
            self.replay = joined.freeze();
        }
    }

    fn inner(&mut self) -> io::Result<&mut S> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
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
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(self.inner()?).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read();
        }
        res
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for ConnIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(self.inner()?).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        res
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(self.inner()?).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        res
    }
    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.inner()?).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(self.inner()?).poll_shutdown(cx);
        if res.is_ready() {
            self.shut_down = true;
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
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
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
