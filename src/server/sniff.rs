//! First-bytes classification of a new connection: TLS, plaintext HTTP, or neither. Pure and
//! total over any input (fuzzed and property-tested).

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// A TLS handshake record (0x16 0x03).
    Tls,
    /// An HTTP/1.x request line (an uppercase method token and a space).
    Http,
    /// Not enough bytes to tell.
    NeedMore,
    /// Anything else.
    Other,
}

/// Methods recognised as plaintext HTTP (`PRI ` is the HTTP/2 cleartext preface).
const METHODS: [&[u8]; 10] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI ",
];

/// Longest prefix [`classify`] may need.
pub const MAX_SNIFF: usize = 8;

/// Classifies the bytes received so far.
#[must_use]
pub fn classify(bytes: &[u8]) -> Sniff {
    match bytes {
        [] => Sniff::NeedMore,
        [0x16] => Sniff::NeedMore,
        [0x16, 0x03, ..] => Sniff::Tls,
        [0x16, ..] => Sniff::Other,
        _ => {
            let mut need_more = false;
            for m in METHODS {
                if bytes.starts_with(m) {
                    return Sniff::Http;
                }
                if m.starts_with(bytes) {
                    need_more = true;
                }
            }
            if need_more {
                Sniff::NeedMore
            } else {
                Sniff::Other
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_http_are_told_apart() {
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02]), Sniff::Tls);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Sniff::Http);
        assert_eq!(classify(b"OPTIONS "), Sniff::Http);
        assert_eq!(classify(b"PRI * HTTP/2.0"), Sniff::Http);
    }

    #[test]
    fn partial_input_asks_for_more() {
        assert_eq!(classify(b""), Sniff::NeedMore);
        assert_eq!(classify(&[0x16]), Sniff::NeedMore);
        assert_eq!(classify(b"G"), Sniff::NeedMore);
        assert_eq!(classify(b"OPTION"), Sniff::NeedMore);
    }

    #[test]
    fn garbage_is_other() {
        assert_eq!(classify(&[0x16, 0x02]), Sniff::Other);
        assert_eq!(classify(&[0; 8]), Sniff::Other);
        assert_eq!(classify(b"get / "), Sniff::Other);
        assert_eq!(classify(b"GETX"), Sniff::Other);
        assert_eq!(classify(b"SSH-2.0-OpenSSH"), Sniff::Other);
    }
}
