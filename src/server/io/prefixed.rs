//! [`Prefixed`]: the bytes read while sniffing, replayed before the socket; and the TLS 1.3
//! session tickets held back so that they leave with the first response.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::write::{poll_drain, poll_write_behind, total_len};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::io::test_stream::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
}
