//! [`ConnIo`]: the client stream as hyper sees it (replay, HTTP/2 write cork, frame watch,
//! activity), handed to the close path when dropped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::close::{close_gracefully, LINGER};
use super::cork::Cork;
use super::replay::Replay;
use super::state::ConnState;
use super::write::connected;
use crate::server::frame_watch::FrameWatch;

/// The client stream as hyper sees it; see the module docs for its close guarantee.
pub(crate) struct ConnIo<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    inner: Option<S>,
    /// Plaintext already read from `inner` that the next reader must see first (the bytes
    /// that woke a parked keep-alive connection, or what hyper had buffered).
    replay: Replay,
    /// HTTP/2's small writes, held until the next flush (io/cork.rs).
    cork: Cork,
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
            replay: Replay::default(),
            cork: Cork::default(),
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

    /// From now on, writes up to `CORK_MAX` (io/cork.rs) in all are held until a flush, and the stream
    /// reports no vectored writes. For HTTP/2: h2 copies a DATA frame of up to 1 KiB into
    /// its own write buffer when the IO is not vectored (256 bytes when it is), and it writes
    /// a larger frame's header and body as two writes; the cork makes those one TLS record.
    /// HTTP/1.1 writes each response once, vectored, and is not corked.
    pub(crate) fn cork_writes(&mut self) {
        self.cork.turn_on();
    }

    /// Puts bytes back in front of the stream. They count as just read: a request that
    /// starts in them is not idle time (the driver must not park or time out a connection
    /// whose next request is already here).
    pub(crate) fn replay(&mut self, bytes: bytes::Bytes) {
        if !bytes.is_empty() {
            self.state.on_read();
        }
        self.replay.put_back(bytes);
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
        if self.replay.read_into(buf) {
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
    /// Writes out what the cork holds, recording the activity.
    fn poll_uncork(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = connected(&mut self.inner)?;
        let (res, moved) = self.cork.poll_uncork(inner, cx);
        if moved {
            self.state.on_write();
        }
        if res.is_pending() {
            self.state.on_write_blocked();
        }
        res
    }
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
        if let Some(n) = this.cork.take(bufs) {
            return Poll::Ready(Ok(n));
        }
        let inner = connected(&mut this.inner)?;
        let res = this.cork.poll_write_through(inner, cx, bufs);
        match res {
            Poll::Ready(Ok(n)) if n > 0 => this.state.on_write(),
            Poll::Pending => this.state.on_write_blocked(),
            _ => {}
        }
        res
    }
    fn is_write_vectored(&self) -> bool {
        !self.cork.is_on()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.state.flush_gate.put_off(&this.cork) {
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(this.poll_uncork(cx))?;
        this.state.flush_gate.flushed();
        let inner = connected(&mut this.inner)?;
        let res = Pin::new(inner).poll_flush(cx);
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
        let corked = self.cork.take_held();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::io::cork::CORK_MAX;
    use crate::server::io::test_stream::*;
    use crate::server::policy::{Ask, Closed, Policy, Step, Timeouts};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    fn conn(rec: &Recorder, cork: bool) -> (ConnIo<Recorder>, tokio_util::task::TaskTracker) {
        let tracker = tokio_util::task::TaskTracker::new();
        let mut io = ConnIo::new(rec.clone(), Arc::new(ConnState::new(None)), tracker.token());
        if cork {
            io.cork_writes();
        }
        (io, tracker)
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
        state.flush_gate.hold(true);
        io.flush().await.unwrap();
        assert!(!state.flush_gate.take_owed());
        // Two responses, each followed by a flush, while the driver polls hyper.
        io.write_all(&pattern(2000, 1)).await.unwrap();
        io.flush().await.unwrap();
        io.write_all(&pattern(3000, 2)).await.unwrap();
        io.flush().await.unwrap();
        state.flush_gate.hold(false);
        assert!(rec.writes().is_empty());
        assert!(state.flush_gate.take_owed());
        // The driver's last poll: hyper's flush writes both at once.
        io.flush().await.unwrap();
        assert_eq!(
            rec.writes(),
            vec![[pattern(2000, 1), pattern(3000, 2)].concat()]
        );
        assert!(!state.flush_gate.take_owed());
        assert_eq!(io.cork.capacity(), 0, "an idle connection holds no cork");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_whose_client_does_not_read_is_busy_not_parked_and_replayed_bytes_count_as_read(
    ) {
        let idle = Duration::from_secs(60);
        let policy = Policy::new(Timeouts {
            idle,
            header: None,
            park_after: Some(Duration::from_millis(100)),
        });
        let decide = |state: &ConnState| {
            let mut fresh = policy;
            fresh.decide(Instant::now(), &state.look())
        };
        let state = Arc::new(ConnState::new(None));
        // A write the client's window did not take: waiting on the client is not idleness.
        state.on_write_blocked();
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(matches!(decide(&state), Step::Serve { .. }));
        // ... until the idle timeout with no byte moved: stalled, as a response in flight.
        tokio::time::advance(idle).await;
        assert_eq!(decide(&state), Step::Close(Closed::Stalled));
        // Once a write goes out, the connection is idle again and parks after the delay.
        state.on_write();
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(decide(&state), Step::AskToEnd(Ask::Park));

        // Bytes put back in front of the stream are activity: the next request is already
        // here, so the driver must not park the connection before hyper reads them.
        let tracker = tokio_util::task::TaskTracker::new();
        let mut io = ConnIo::new(Recorder::default(), Arc::clone(&state), tracker.token());
        io.replay(bytes::Bytes::from_static(b"GET / HTTP/1.1\r\n"));
        assert!(io.has_replay());
        assert!(matches!(decide(&state), Step::Serve { .. }));
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");
        assert!(!io.has_replay());
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
