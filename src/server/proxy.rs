//! The PROXY protocol header (v1 text and v2 binary, haproxy's `proxy-protocol.txt`) that a
//! load balancer sends before the client's bytes to pass on the client's address. Pure and
//! total over any input (unit-, property- and fuzz-tested): it owns the byte format only.
//! Whom to believe (the `--trusted-proxy` ranges), reading under the handshake deadline
//! and logging belong to `server/connection.rs`.
//!
//! Strict on purpose: a header is either exactly what the spec describes or the connection is
//! refused, so a malformed or spoofed header never yields a client address.
//! - v1: `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n` with single spaces, addresses that
//!   parse and match the family, ports of 1 to 5 digits without sign or leading zero, at most
//!   [`V1_MAX`] bytes; `PROXY UNKNOWN ...\r\n` carries no address.
//! - v2: the 12-byte signature, version 2, command LOCAL (no address: a health check) or
//!   PROXY; AF_INET/AF_INET6 over STREAM give the address, UNSPEC gives none; AF_UNIX and
//!   DGRAM are refused. TLVs after the addresses are skipped but must be well-formed, and the
//!   whole header is at most [`V2_MAX`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature: the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The v1 prefix.
const V1_PREFIX: &[u8] = b"PROXY ";

/// Longest v1 header, CRLF included (the spec's limit).
pub const V1_MAX: usize = 107;

/// Longest v2 header accepted (16 fixed bytes + addresses + TLVs). The spec allows up to
/// 16 + 65535; load balancers send a few hundred at most (AWS NLB, GCP, haproxy TLVs), and
/// the cap bounds what one connection may make the server buffer before its handshake.
pub const V2_MAX: usize = 4096;

/// Bytes enough to tell a PROXY header from anything else (the v2 signature's length).
pub const DECISIVE_LEN: usize = V2_SIGNATURE.len();

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes the header took at the start of the buffer; what follows is the client's.
    pub consumed: usize,
    /// The client's address; `None` for v1 `UNKNOWN`, v2 `LOCAL` (the proxy's own
    /// connection, e.g. a health check) and v2 `UNSPEC`: use the real peer then.
    pub source: Option<SocketAddr>,
    /// 1 or 2.
    pub version: u8,
}

/// Why [`parse`] returned no header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Parse {
    /// The buffer is a valid beginning of a header: read more bytes.
    #[error("incomplete PROXY header")]
    NeedMore,
    /// Not a PROXY header, or a malformed one; the reason is for the log.
    #[error("invalid PROXY header: {0}")]
    Invalid(&'static str),
}

/// Whether `buf` (non-empty) is the beginning of a PROXY header so far: a prefix of
/// `"PROXY "` or of the v2 signature, or starts with one of them. [`DECISIVE_LEN`] bytes
/// settle it.
#[must_use]
pub fn looks_like_proxy(buf: &[u8]) -> bool {
    let consistent = |prefix: &[u8]| {
        let n = buf.len().min(prefix.len());
        buf[..n] == prefix[..n]
    };
    !buf.is_empty() && (consistent(V1_PREFIX) || consistent(&V2_SIGNATURE))
}

/// Whether `buf` starts with `"PROXY "` or the whole v2 signature: a PROXY header, valid or
/// not.
#[must_use]
pub fn is_proxy_start(buf: &[u8]) -> bool {
    buf.starts_with(V1_PREFIX) || buf.starts_with(&V2_SIGNATURE)
}

/// Parses the PROXY header at the start of `buf` (which may hold the client's first bytes
/// after it).
///
/// # Errors
/// [`Parse::NeedMore`] while `buf` is a strict prefix of a header that may still be valid;
/// [`Parse::Invalid`] as soon as it cannot be one.
pub fn parse(buf: &[u8]) -> Result<Header, Parse> {
    if buf.len() < DECISIVE_LEN && !buf.is_empty() && looks_like_proxy(buf) {
        // "PROXY " is six bytes: a v1 line can be judged earlier.
        if !buf.starts_with(V1_PREFIX) {
            return Err(Parse::NeedMore);
        }
    }
    if buf.starts_with(V1_PREFIX) {
        parse_v1(buf)
    } else if buf.starts_with(&V2_SIGNATURE) {
        parse_v2(buf)
    } else if buf.is_empty() {
        Err(Parse::NeedMore)
    } else {
        Err(Parse::Invalid("not a PROXY header"))
    }
}

fn parse_v1(buf: &[u8]) -> Result<Header, Parse> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if window.len() >= V1_MAX {
            return Err(Parse::Invalid("v1: no CRLF within 107 bytes"));
        }
        // Fail early on what can never become a header (a TLS record, binary data).
        return match window.iter().position(|&b| !(b' '..=b'~').contains(&b)) {
            Some(i) if window[i] == b'\r' && i + 1 == window.len() => Err(Parse::NeedMore),
            Some(_) => Err(Parse::Invalid("v1: a byte that is not printable ASCII")),
            None => Err(Parse::NeedMore),
        };
    };
    let Some(line) = window[..lf].strip_suffix(b"\r") else {
        return Err(Parse::Invalid("v1: line does not end in CRLF"));
    };
    if line.iter().any(|&b| !(b' '..=b'~').contains(&b)) {
        return Err(Parse::Invalid("v1: a byte that is not printable ASCII"));
    }
    // Printable ASCII, so valid UTF-8.
    let text = std::str::from_utf8(&line[V1_PREFIX.len()..])
        .map_err(|_| Parse::Invalid("v1: not ASCII"))?;
    let consumed = lf + 1;
    if text == "UNKNOWN" || text.starts_with("UNKNOWN ") {
        // The spec: the receiver must ignore whatever follows UNKNOWN.
        return Ok(Header {
            consumed,
            source: None,
            version: 1,
        });
    }
    // At most 6 pieces: a sixth (even empty, from a trailing space) is an error.
    let fields: Vec<&str> = text.splitn(6, ' ').collect();
    let [family, src, dst, sport, dport] = fields[..] else {
        return Err(Parse::Invalid(
            "v1: expected TCP4|TCP6 src dst sport dport, single spaces",
        ));
    };
    let parse_ip = match family {
        "TCP4" => ipv4,
        "TCP6" => ipv6,
        _ => return Err(Parse::Invalid("v1: protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let src = parse_ip(src).ok_or(Parse::Invalid("v1: bad source address for the family"))?;
    parse_ip(dst).ok_or(Parse::Invalid("v1: bad destination address for the family"))?;
    let sport = port(sport).ok_or(Parse::Invalid("v1: bad source port"))?;
    port(dport).ok_or(Parse::Invalid("v1: bad destination port"))?;
    Ok(Header {
        consumed,
        source: Some(SocketAddr::new(src, sport)),
        version: 1,
    })
}

fn ipv4(text: &str) -> Option<IpAddr> {
    // std rejects leading zeros (no octal ambiguity) and anything but four decimal octets.
    text.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn ipv6(text: &str) -> Option<IpAddr> {
    text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// 0-65535 in plain decimal: digits only (no `+`), no leading zero but for `0` itself.
fn port(text: &str) -> Option<u16> {
    let digits = text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if text.is_empty() || text.len() > 5 || !digits || leading_zero {
        return None;
    }
    text.parse().ok()
}

fn parse_v2(buf: &[u8]) -> Result<Header, Parse> {
    // 12 signature, 1 version+command, 1 family+transport, 2 length (big-endian).
    let ver_cmd = buf.get(12).copied();
    if let Some(b) = ver_cmd {
        if b >> 4 != 2 {
            return Err(Parse::Invalid("v2: version is not 2"));
        }
        if b & 0x0f > 1 {
            return Err(Parse::Invalid("v2: command is not LOCAL or PROXY"));
        }
    }
    let fam = buf.get(13).copied();
    if let Some(b) = fam {
        if b >> 4 > 3 || b & 0x0f > 2 {
            return Err(Parse::Invalid("v2: unknown address family or transport"));
        }
    }
    let (Some(ver_cmd), Some(fam), Some(hi), Some(lo)) = (ver_cmd, fam, buf.get(14), buf.get(15))
    else {
        return Err(Parse::NeedMore);
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let total = 16 + len;
    if total > V2_MAX {
        return Err(Parse::Invalid("v2: header longer than the cap"));
    }
    let Some(body) = buf.get(16..total) else {
        return Err(Parse::NeedMore);
    };
    let local = ver_cmd & 0x0f == 0;
    let (source, addr_len) = match fam {
        // UNSPEC: no address (allowed with either command).
        0x00 => (None, 0),
        // TCP over IPv4: src(4) dst(4) sport(2) dport(2).
        0x11 => {
            let a = body
                .get(..12)
                .ok_or(Parse::Invalid("v2: address block too short for AF_INET"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            (Some(SocketAddr::new(IpAddr::V4(ip), port)), 12)
        }
        // TCP over IPv6: src(16) dst(16) sport(2) dport(2).
        0x21 => {
            let a = body
                .get(..36)
                .ok_or(Parse::Invalid("v2: address block too short for AF_INET6"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            (
                Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port)),
                36,
            )
        }
        // A LOCAL header's address block is ignored whatever it holds.
        _ if local => (None, 0),
        _ => {
            return Err(Parse::Invalid(
                "v2: only TCP over IPv4/IPv6 (or UNSPEC) is supported",
            ))
        }
    };
    // TLVs follow a known address block; after UNSPEC or LOCAL the layout is unknown.
    if source.is_some() && !local {
        check_tlvs(&body[addr_len..])?;
    }
    Ok(Header {
        consumed: total,
        source: if local { None } else { source },
        version: 2,
    })
}

/// TLVs are skipped, but each must fit in what is left (type 1 byte, length 2 bytes).
fn check_tlvs(mut rest: &[u8]) -> Result<(), Parse> {
    while !rest.is_empty() {
        let [_, hi, lo, ..] = *rest else {
            return Err(Parse::Invalid("v2: truncated TLV"));
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        rest = rest
            .get(end..)
            .ok_or(Parse::Invalid("v2: TLV longer than the header"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The start of a TLS 1.3 ClientHello record, as a client sends it after the header.
    const HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn v2_inet(src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut body = src.to_vec();
        body.extend_from_slice(&[10, 0, 0, 1]);
        body.extend_from_slice(&sport.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(tlvs);
        v2(1, 0x11, &body)
    }

    fn with_hello(header: &[u8]) -> Vec<u8> {
        [header, HELLO].concat()
    }

    fn invalid(buf: &[u8]) -> bool {
        matches!(parse(buf), Err(Parse::Invalid(_)))
    }

    #[test]
    fn v1_spec_examples_give_the_client_address_and_leave_the_hello() {
        let h = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        assert_eq!(h.len(), 56);
        let got = parse(&with_hello(h)).unwrap();
        assert_eq!(got.consumed, h.len());
        assert_eq!(got.source, Some("255.255.255.255:65535".parse().unwrap()));
        assert_eq!(got.version, 1);

        let h = b"PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        assert!(invalid(h), "the spec's elided form is not an address");
        let h = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(h.len(), 104);
        let got = parse(&with_hello(h)).unwrap();
        assert_eq!(got.consumed, 104);
        assert_eq!(
            got.source,
            Some(
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                    .parse()
                    .unwrap()
            )
        );

        let h = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
        let got = parse(&with_hello(h)).unwrap();
        assert_eq!(got.source, Some("192.168.0.1:56324".parse().unwrap()));
        assert_eq!(&with_hello(h)[got.consumed..], HELLO);
    }

    #[test]
    fn v1_unknown_carries_no_address_and_ignores_the_rest_of_the_line() {
        for h in [
            &b"PROXY UNKNOWN\r\n"[..],
            b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        ] {
            let got = parse(&with_hello(h)).unwrap();
            assert_eq!((got.consumed, got.source), (h.len(), None));
        }
    }

    #[test]
    fn v1_rejects_loose_syntax() {
        for h in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
            b"PROXY \r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        ] {
            assert!(invalid(h), "{:?}", String::from_utf8_lossy(h));
        }
    }

    #[test]
    fn v1_longer_than_107_bytes_is_rejected() {
        let mut h = b"PROXY UNKNOWN ".to_vec();
        h.resize(V1_MAX - 2, b'x');
        h.extend_from_slice(b"\r\n");
        assert_eq!(parse(&h).unwrap().consumed, V1_MAX);
        let mut long = h[..V1_MAX - 2].to_vec();
        long.extend_from_slice(b"x\r\n");
        assert!(invalid(&long));
        assert!(
            invalid(&long[..V1_MAX]),
            "107 bytes without CRLF is already final"
        );
    }

    #[test]
    fn v1_prefixes_ask_for_more_until_a_byte_rules_it_out() {
        let h = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
        for k in 0..h.len() {
            assert_eq!(parse(&h[..k]), Err(Parse::NeedMore), "{k}");
        }
        assert!(invalid(b"PROXY TCP4 1.2.3.4\x16\x03"));
        assert!(invalid(b"PROXY TCP4\r1"));
    }

    #[test]
    fn v2_inet_and_inet6_give_the_client_address_and_leave_the_hello() {
        let h = v2_inet([203, 0, 113, 7], 51234, &[]);
        assert_eq!(h.len(), 28);
        let buf = with_hello(&h);
        let got = parse(&buf).unwrap();
        assert_eq!(got.consumed, 28);
        assert_eq!(got.source, Some("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(got.version, 2);
        assert_eq!(&buf[got.consumed..], HELLO);

        let src: Ipv6Addr = "2001:db8::42".parse().unwrap();
        let mut body = src.octets().to_vec();
        body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(&[0xc3, 0x50, 0x01, 0xbb]);
        let h = v2(1, 0x21, &body);
        let got = parse(&with_hello(&h)).unwrap();
        assert_eq!(got.consumed, 16 + 36);
        assert_eq!(got.source, Some("[2001:db8::42]:50000".parse().unwrap()));
    }

    #[test]
    fn v2_local_and_unspec_carry_no_address() {
        for h in [
            v2(0, 0x00, &[]),
            v2(0, 0x11, &[1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]),
            v2(0, 0x31, &[0; 216]),
            v2(1, 0x00, &[]),
            v2(1, 0x00, &[9; 7]),
        ] {
            let got = parse(&with_hello(&h)).unwrap();
            assert_eq!((got.consumed, got.source), (h.len(), None), "{h:02x?}");
        }
    }

    #[test]
    fn v2_tlvs_are_skipped_but_must_be_well_formed() {
        // PP2_TYPE_AUTHORITY "example.com" and a NOOP padding TLV.
        let mut tlvs = vec![0x02, 0x00, 0x0b];
        tlvs.extend_from_slice(b"example.com");
        tlvs.extend_from_slice(&[0x04, 0x00, 0x02, 0, 0]);
        let h = v2_inet([192, 0, 2, 1], 1000, &tlvs);
        let got = parse(&with_hello(&h)).unwrap();
        assert_eq!(got.consumed, h.len());
        assert_eq!(got.source, Some("192.0.2.1:1000".parse().unwrap()));

        assert!(invalid(&v2_inet(
            [192, 0, 2, 1],
            1000,
            &[0x02, 0x00, 0x0c, b'x']
        )));
        assert!(invalid(&v2_inet([192, 0, 2, 1], 1000, &[0x02, 0x00])));
    }

    #[test]
    fn v2_rejects_what_it_does_not_serve() {
        let mut wrong_version = v2_inet([1, 2, 3, 4], 1, &[]);
        wrong_version[12] = 0x11;
        assert!(invalid(&wrong_version));
        assert!(invalid(&v2(2, 0x11, &[0; 12])), "command 2");
        assert!(invalid(&v2(1, 0x12, &[0; 12])), "UDP");
        assert!(invalid(&v2(1, 0x31, &[0; 216])), "AF_UNIX");
        assert!(invalid(&v2(1, 0x41, &[0; 12])), "family 4");
        assert!(invalid(&v2(1, 0x11, &[0; 11])), "short AF_INET block");
        assert!(invalid(&v2(1, 0x21, &[0; 35])), "short AF_INET6 block");
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(
            invalid(&huge),
            "length over the cap is refused before it is read"
        );
    }

    #[test]
    fn v2_prefixes_ask_for_more() {
        let h = v2_inet([10, 1, 2, 3], 8080, &[0x04, 0x00, 0x01, 0]);
        for k in 0..h.len() {
            assert_eq!(parse(&h[..k]), Err(Parse::NeedMore), "{k}");
        }
        assert!(parse(&h).is_ok());
    }

    #[test]
    fn anything_else_is_not_a_proxy_header() {
        assert!(invalid(HELLO));
        assert!(invalid(b"GET / HTTP/1.1\r\n"));
        assert!(invalid(b"PROXX"));
        assert!(invalid(b"\r\n\r\n\0\r\nQUIX"));
        assert_eq!(parse(b""), Err(Parse::NeedMore));
    }

    #[test]
    fn looks_like_proxy_follows_both_prefixes() {
        assert!(!looks_like_proxy(b""));
        assert!(looks_like_proxy(b"P"));
        assert!(looks_like_proxy(b"PROXY"));
        assert!(looks_like_proxy(b"PROXY TCP4 "));
        assert!(looks_like_proxy(b"\r\n"));
        assert!(looks_like_proxy(&v2_inet([1, 2, 3, 4], 5, &[])));
        assert!(!looks_like_proxy(b"PROXX"));
        assert!(!looks_like_proxy(b"PUT "));
        assert!(!looks_like_proxy(HELLO));
        assert!(!looks_like_proxy(b"\r\n\r\n\0\r\nQUIX"));
    }
}
