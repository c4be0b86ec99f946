//! A raw HTTP/2 client for tests that need frames a well-behaved client never sends (no
//! PING answer, windows opened a byte at a time, a zero initial window): frames are built
//! and read by hand over any stream (here the harness's TLS stream with ALPN h2). HPACK is
//! written as literals without indexing and never Huffman-coded, which every decoder must
//! accept; response header blocks are not decoded (tests look at frame types, flags,
//! streams and DATA payloads).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// SETTINGS_INITIAL_WINDOW_SIZE.
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;

/// One frame as read.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

/// A frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    assert!(len < 1 << 24);
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The connection preface and a SETTINGS frame with `settings`.
pub fn preface(settings: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in settings {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &payload));
    out
}

/// An HPACK header block of literal fields (without indexing, new name, no Huffman).
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        assert!(
            name.len() < 127 && value.len() < 127,
            "one-byte HPACK lengths only"
        );
        out.push(0x00);
        out.push(u8::try_from(name.len()).unwrap());
        out.extend_from_slice(name.as_bytes());
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// A HEADERS frame with END_STREAM for `GET path` on `stream`.
pub fn get(stream: u32, path: &str) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        stream,
        &header_block(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
        ]),
    )
}

/// A WINDOW_UPDATE frame.
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// Reads one frame; `None` at a clean end of the stream (close_notify, then EOF).
/// Panics on a read error or a frame cut short.
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Option<Frame> {
    let mut head = [0u8; 9];
    match s.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) => panic!("reading a frame: {e}"),
    }
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.expect("a whole frame");
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// Reads frames until one matches `want`, within `timeout`; the frames before it are
/// returned with it. Panics at EOF or on the timeout.
pub async fn read_until<S: AsyncRead + Unpin>(
    s: &mut S,
    timeout: Duration,
    want: impl Fn(&Frame) -> bool,
) -> (Frame, Vec<Frame>) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(timeout, async {
        loop {
            let f = read_frame(s).await.expect("a frame, not the end");
            if want(&f) {
                return f;
            }
            seen.push(f);
        }
    })
    .await;
    match found {
        Ok(f) => (f, seen),
        Err(_) => panic!("no matching frame within {timeout:?}; saw {seen:?}"),
    }
}

/// Writes `bytes` and flushes.
pub async fn send<S: AsyncWrite + Unpin>(s: &mut S, bytes: &[u8]) {
    s.write_all(bytes).await.expect("write frames");
    s.flush().await.expect("flush frames");
}

/// Decodes an HPACK (and QPACK: the same code) Huffman string of digits (RFC 7541 appendix B: '0'-'2' are the 5-bit
/// codes 0-2, '3'-'9' the 6-bit codes 0x19-0x1f; the padding is 1 bits).
pub fn huffman_digits(bytes: &[u8]) -> String {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let take = |at: usize, n: usize| bits[at..at + n].iter().fold(0u8, |v, b| v << 1 | b);
    let (mut out, mut at) = (String::new(), 0);
    while bits.len() - at >= 5 {
        let five = take(at, 5);
        if five <= 2 {
            out.push(char::from(b'0' + five));
            at += 5;
        } else if bits.len() - at >= 6 && (0x19..=0x1f).contains(&take(at, 6)) {
            out.push(char::from(b'3' + take(at, 6) - 0x19));
            at += 6;
        } else {
            break;
        }
    }
    out
}
