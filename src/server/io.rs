//! IO around a client connection, one job per file:
//!
//! - [`Prefixed`] (io/prefixed.rs): the stream under TLS, made of the next two.
//!   - io/replay.rs: bytes already read, replayed before the socket (what sniffing read,
//!     so sniffing needs no `peek` loop; also what woke a parked connection, for
//!     [`ConnIo`]).
//!   - io/ticket_hold.rs: the TLS 1.3 session tickets held back so that they leave with
//!     the first response.
//! - [`ConnState`] (io/state.rs): a connection's activity (bytes moved, requests in flight,
//!   request heads, writes waiting on the client), snapshotted for the deadline policy
//!   (server/policy.rs).
//! - [`ConnIo`] (io/conn_io.rs) is the stream hyper sees: it replays bytes put back in front
//!   of it, corks HTTP/2's writes, follows HTTP/2 client frames (server/frame_watch.rs),
//!   records activity, and guarantees the close path when dropped.
//! - io/cork.rs: the HTTP/2 write cork and its flush gate (the driver puts flushes off
//!   until the end of a wake-up).
//! - The close path (io/close.rs): whenever a connection ends (normal end, error, timeout,
//!   panic unwinding, forced shutdown) a task sends TLS close_notify if hyper did not, then
//!   reads until the peer's EOF for a short while so that closing never turns into a TCP
//!   RST that destroys data the client has not read yet (nginx calls this lingering close).
//! - io/write.rs: writing held bytes ahead of new ones in one write, shared by the ticket
//!   hold and the cork.

mod close;
mod conn_io;
pub(crate) mod cork;
mod prefixed;
mod replay;
mod state;
mod ticket_hold;
mod write;

pub(crate) use close::{close_gracefully, LINGER};
pub(crate) use conn_io::ConnIo;
pub(crate) use prefixed::Prefixed;
pub(crate) use state::{ConnState, InFlight};

/// A recording stream for the IO unit tests.
#[cfg(test)]
pub(super) mod test_stream {
    use std::io;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// A stream that records each write it is given; it takes at most `max` bytes per write
    /// and answers `Pending` (waking at once) every other call when `stutter` is set.
    #[derive(Clone, Default)]
    pub(crate) struct Recorder {
        pub(crate) writes: Arc<Mutex<Vec<Vec<u8>>>>,
        pub(crate) flushes: Arc<AtomicU32>,
        max: usize,
        stutter: bool,
        calls: Arc<AtomicU32>,
    }

    impl Recorder {
        pub(crate) fn new(max: usize, stutter: bool) -> Self {
            Self {
                max,
                stutter,
                ..Self::default()
            }
        }
        pub(crate) fn writes(&self) -> Vec<Vec<u8>> {
            self.writes.lock().unwrap().clone()
        }
        pub(crate) fn bytes(&self) -> Vec<u8> {
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

    /// Distinct bytes, so that a lost, repeated or reordered byte shows.
    pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| seed.wrapping_add((i % 251) as u8))
            .collect()
    }
}
