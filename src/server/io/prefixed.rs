//! [`Prefixed`]: the stream under TLS. Two jobs, each its own type: the bytes read while
//! sniffing are replayed before the socket ([`Replay`], io/replay.rs), and the TLS 1.3
//! session tickets are held back so that they leave with the first response
//! ([`TicketHold`], io/ticket_hold.rs). It also counts the bytes written.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::replay::Replay;
use super::ticket_hold::TicketHold;

/// A stream that first yields `prefix`, then reads from `inner`; counts the bytes written.
/// It can hold back the TLS 1.3 session tickets so that they leave with the first response
/// (see [`Prefixed::hold_tickets`]).
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    replay: Replay,
    inner: S,
    written: usize,
    tickets: TicketHold,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            replay: Replay::new(prefix),
            inner,
            written: 0,
            tickets: TicketHold::default(),
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
        self.tickets.start();
    }

    /// The handshake is done: nothing more is held. What is held leaves ahead of the first
    /// write (the response), or at shutdown; without `request_waiting` (no request came
    /// with the client's Finished) also as soon as a read finds nothing to read.
    pub(crate) fn handshake_done(&mut self, request_waiting: bool) {
        self.tickets.handshake_done(request_waiting);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replay.read_into(buf) {
            return Poll::Ready(Ok(()));
        }
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if res.is_pending() {
            if let Poll::Ready(Err(e)) = this.tickets.poll_read_idle(&mut this.inner, cx) {
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
        std::task::ready!(this.tickets.poll_drain(&mut this.inner, cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(n) = this.tickets.take(bufs) {
            this.written = this.written.saturating_add(n);
            return Poll::Ready(Ok(n));
        }
        let res = this.tickets.poll_write_behind(&mut this.inner, cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            this.written = this.written.saturating_add(n);
        }
        res
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::io::test_stream::*;
    use crate::server::io::ticket_hold::tests::records;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
}
