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
use super::state::ConnState;
use super::write::{connected, poll_drain, poll_write_behind, total_len};
use crate::server::frame_watch::FrameWatch;

/// The most [`ConnIo`] holds back until a flush: one full TLS record of plaintext. hyper's
/// HTTP/2 writes each response whose body is over 256 bytes as its own write (frame
/// headers, then the body), and the TLS stream sends every write at once: without the cork,
/// ten responses to one read of ten requests cost ten records and ten `writev`s. A write
/// that does not fit goes out behind what is held, in the same write.
const CORK_MAX: usize = 16 * 1024;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::io::test_stream::*;
    use crate::server::io::Deadline;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
