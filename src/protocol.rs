//! [`Protocol`]: the HTTP version a connection speaks, chosen from ALPN after the handshake.
//! It imports nothing of the crate, so that the connection core, the per-connection service
//! and the metrics can all name it. HTTP/1.1 and HTTP/2 share the TCP connection core
//! (server/connection.rs dispatches on ALPN); HTTP/3 has its own QUIC one (server/h3/).

use std::fmt;

/// The HTTP version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (and 1.0): ALPN `http/1.1`, or none.
    Http1,
    /// HTTP/2: ALPN `h2`.
    Http2,
    /// HTTP/3 over QUIC: ALPN `h3`.
    Http3,
}

impl Protocol {
    /// Every protocol, in [`Protocol::index`] order.
    pub const ALL: [Self; 3] = [Self::Http1, Self::Http2, Self::Http3];

    /// The protocol an ALPN value selects on a TCP connection; no ALPN is HTTP/1.1. (`h3`
    /// is never offered over TCP: QUIC connections are HTTP/3 by construction.)
    #[must_use]
    pub fn from_alpn(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(b"h2") => Self::Http2,
            _ => Self::Http1,
        }
    }

    /// Short name for logs and metric labels: `h1`, `h2`, `h3`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Http1 => "h1",
            Self::Http2 => "h2",
            Self::Http3 => "h3",
        }
    }

    /// Position in per-protocol arrays (metrics).
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::Http1 => 0,
            Self::Http2 => 1,
            Self::Http3 => 2,
        }
    }

    /// Whether requests share the connection as streams (HTTP/2, HTTP/3): a refused one
    /// resets its stream rather than closing the connection after an answer.
    #[must_use]
    pub fn is_multiplexed(self) -> bool {
        !matches!(self, Self::Http1)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_selects_the_protocol_and_the_index_matches_all() {
        assert_eq!(Protocol::from_alpn(Some(b"h2")), Protocol::Http2);
        assert_eq!(Protocol::from_alpn(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(Protocol::from_alpn(None), Protocol::Http1);
        for (i, p) in Protocol::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
        assert_eq!(Protocol::Http2.to_string(), "h2");
    }
}
