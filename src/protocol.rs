//! [`Protocol`]: the HTTP version a connection speaks, chosen from ALPN after the handshake.
//! It imports nothing of the crate, so that the connection core, the per-connection service
//! and the metrics can all name it; a new protocol (HTTP/3) is a new variant here and one
//! match arm where connections are dispatched (server/connection.rs).

use std::fmt;

/// The HTTP version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (and 1.0): ALPN `http/1.1`, or none.
    Http1,
    /// HTTP/2: ALPN `h2`.
    Http2,
}

impl Protocol {
    /// Every protocol, in [`Protocol::index`] order.
    pub const ALL: [Self; 2] = [Self::Http1, Self::Http2];

    /// The protocol an ALPN value selects; no ALPN is HTTP/1.1.
    #[must_use]
    pub fn from_alpn(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(b"h2") => Self::Http2,
            _ => Self::Http1,
        }
    }

    /// Short name for logs and metric labels: `h1`, `h2`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Http1 => "h1",
            Self::Http2 => "h2",
        }
    }

    /// Position in per-protocol arrays (metrics).
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::Http1 => 0,
            Self::Http2 => 1,
        }
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
