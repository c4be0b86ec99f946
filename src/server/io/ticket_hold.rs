//! [`TicketHold`]: the TLS 1.3 session tickets held back during the handshake so that they
//! leave with the first response (one `writev` per handshake less). A part of the stream
//! under TLS ([`super::Prefixed`]), which gives it its writes, reads and shutdown.

use std::io;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::write::{poll_drain, poll_write_behind, total_len};

/// Held ticket bytes and when they go.
#[derive(Debug, Default)]
pub(super) struct TicketHold {
    /// Whether a write that is a TLS 1.3 ticket flight is held back.
    holding: bool,
    /// Held bytes go out when a read finds nothing (no request came with the Finished).
    drain_when_idle: bool,
    /// Held bytes: they go out ahead of the next write, at shutdown, or when a read finds
    /// nothing to read (a client that sent no request with its Finished).
    held: Vec<u8>,
}

impl TicketHold {
    /// See [`super::Prefixed::hold_tickets`].
    pub(super) fn start(&mut self) {
        self.holding = true;
    }

    /// See [`super::Prefixed::handshake_done`].
    pub(super) fn handshake_done(&mut self, request_waiting: bool) {
        self.holding = false;
        self.drain_when_idle = !request_waiting;
    }

    /// Takes `bufs` when they are a ticket flight written while holding.
    pub(super) fn take(&mut self, bufs: &[io::IoSlice<'_>]) -> Option<usize> {
        if !self.holding || !is_ticket_flight(bufs) {
            return None;
        }
        for b in bufs {
            self.held.extend_from_slice(b);
        }
        Some(total_len(bufs))
    }

    /// Writes `bufs` behind what is held, in one write.
    pub(super) fn poll_write_behind<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_write_behind(inner, cx, &mut self.held, bufs)
    }

    /// Writes out what is held (at shutdown).
    pub(super) fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        poll_drain(inner, cx, &mut self.held)
    }

    /// A read found nothing to read: when no request came with the client's Finished, the
    /// tickets go now.
    pub(super) fn poll_read_idle<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        if self.held.is_empty() || !self.drain_when_idle {
            return Poll::Ready(Ok(()));
        }
        poll_drain(inner, cx, &mut self.held)
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::server::io::test_stream::pattern;

    /// TLS records of `kind` with payloads of these lengths.
    pub(crate) fn records(kind: u8, lens: &[usize]) -> Vec<u8> {
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
}
