//! The `Alt-Svc` header (RFC 7838) that tells HTTP/1.1 and HTTP/2 clients where HTTP/3 is
//! served: `h3=":PORT"; ma=86400`, the port of the QUIC endpoint that pairs with the TCP
//! listener a connection came in on (its own port on UDP, or the first `--http3-listen`).
//! Where every listener advertises the same port (the usual case) the value is also put in
//! the asset table's precomputed headers (`common`), so that a response needs no insertion:
//! adding a header to a cloned map reallocates it, which cost HTTP/2 about 10% of its
//! small-file throughput.

use std::net::SocketAddr;

use http::HeaderValue;

/// How long clients may remember the advertisement (`ma`, seconds): a day.
pub(crate) const MAX_AGE_SECS: u32 = 86_400;

/// The advertisement for each HTTPS listener's port; empty when HTTP/3 is off.
#[derive(Debug, Clone, Default)]
pub(crate) struct AltSvc {
    /// (TCP listener port, header value naming its HTTP/3 port).
    by_tcp_port: Vec<(u16, HeaderValue)>,
}

impl AltSvc {
    /// `pairs`: each HTTPS listener's TCP port with the UDP port its clients should use.
    pub(crate) fn new(pairs: impl IntoIterator<Item = (u16, u16)>) -> Self {
        Self {
            by_tcp_port: pairs
                .into_iter()
                .map(|(tcp, udp)| (tcp, value(udp)))
                .collect(),
        }
    }

    /// The header for a connection accepted on `local` (None: HTTP/3 off, or not an HTTPS
    /// listener's address).
    pub(crate) fn for_local(&self, local: SocketAddr) -> Option<HeaderValue> {
        self.by_tcp_port
            .iter()
            .find(|(port, _)| *port == local.port())
            .map(|(_, v)| v.clone())
    }

    /// The header when every HTTPS listener advertises the same port (one `--listen`,
    /// several on one port, or `--http3-listen`): the asset table then carries it in each
    /// response's precomputed headers. None when HTTP/3 is off or the listeners differ.
    pub(crate) fn common(&self) -> Option<HeaderValue> {
        let (_, first) = self.by_tcp_port.first()?;
        self.by_tcp_port
            .iter()
            .all(|(_, v)| v == first)
            .then(|| first.clone())
    }
}

/// `h3=":PORT"; ma=86400`, as a static value: one per listener, made once at start-up, so
/// that adding it to each response copies a pointer and touches no shared counter.
fn value(port: u16) -> HeaderValue {
    let text: &'static str =
        Box::leak(format!("h3=\":{port}\"; ma={MAX_AGE_SECS}").into_boxed_str());
    HeaderValue::from_static(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_listener_advertises_its_paired_port() {
        let alt = AltSvc::new([(8443, 8443), (9443, 4433)]);
        let at = |port| alt.for_local(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(at(8443).unwrap(), "h3=\":8443\"; ma=86400");
        assert_eq!(at(9443).unwrap(), "h3=\":4433\"; ma=86400");
        assert!(at(80).is_none());
        assert!(AltSvc::default()
            .for_local("127.0.0.1:8443".parse().unwrap())
            .is_none());
        assert!(alt.common().is_none(), "two ports advertised");
        assert!(AltSvc::default().common().is_none());
        let one = AltSvc::new([(8443, 8443), (8443, 8443)]);
        assert_eq!(one.common().unwrap(), "h3=\":8443\"; ma=86400");
    }
}
