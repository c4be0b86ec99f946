//! Hand-built HTTP/2 frames for the attacks: the 9-byte frame header, the preface with a
//! chosen SETTINGS frame, a GET as HPACK literals, WINDOW_UPDATE, and a frame reader.
//!
//! HPACK is written as literal fields without indexing and never Huffman-coded (0x00, name
//! length, name, value length, value), which every decoder must accept. Response header
//! blocks are never decoded: the attacks look only at frame types, flags and lengths. This
//! module must not grow into a client: hyper's is in `net.rs`; this one exists to send what
//! a well-behaved client never does.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// DATA frame type.
pub const DATA: u8 = 0x0;
/// HEADERS frame type.
pub const HEADERS: u8 = 0x1;
/// RST_STREAM frame type.
pub const RST_STREAM: u8 = 0x3;
/// SETTINGS frame type.
pub const SETTINGS: u8 = 0x4;
/// GOAWAY frame type.
pub const GOAWAY: u8 = 0x7;
/// WINDOW_UPDATE frame type.
pub const WINDOW_UPDATE: u8 = 0x8;

/// The ACK flag of SETTINGS (and PING).
pub const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// SETTINGS_INITIAL_WINDOW_SIZE.
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;

/// The largest frame payload read (the default SETTINGS_MAX_FRAME_SIZE, which the attacks
/// never raise); a longer frame is a protocol error on the server's side.
const MAX_PAYLOAD: usize = 16_384;

/// One frame as read (the payload is kept only for what the attacks look at).
#[derive(Debug, Clone)]
pub struct Frame {
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Payload length in bytes.
    pub len: usize,
}

/// A frame's bytes.
///
/// # Panics
/// When `payload` is 16 MiB or more (the attacks build a few hundred bytes at most).
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a frame under 16 MiB");
    assert!(len < 1 << 24, "a frame under 16 MiB");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The connection preface and a SETTINGS frame with `settings` (identifier, value).
pub fn preface(settings: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = settings
        .iter()
        .flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
        .collect();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &payload));
    out
}

/// A SETTINGS frame acknowledging the server's.
pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

/// A HEADERS frame with END_STREAM for `GET path` on `stream` (odd, increasing).
///
/// # Panics
/// When `authority` or `path` is 127 bytes or longer (one-byte HPACK lengths only).
pub fn get(stream: u32, authority: &str, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
    ] {
        let len = |s: &str| u8::try_from(s.len()).ok().filter(|&n| n < 127);
        block.push(0x00);
        block.push(len(name).expect("a short header name"));
        block.extend_from_slice(name.as_bytes());
        block.push(len(value).expect("an authority and path under 127 bytes"));
        block.extend_from_slice(value.as_bytes());
    }
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &block)
}

/// A WINDOW_UPDATE frame for `stream` (0: the connection).
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// Reads one frame; `Ok(None)` at the end of the stream. The payload is read and dropped.
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 9];
    match s.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes (over the default maximum of {MAX_PAYLOAD})"),
        ));
    }
    let mut payload = [0u8; MAX_PAYLOAD];
    s.read_exact(&mut payload[..len]).await?;
    Ok(Some(Frame {
        kind: head[3],
        flags: head[4],
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_get_is_one_headers_frame_of_literal_fields() {
        let f = get(3, "127.0.0.1:8443", "/big.bin");
        let len = u32::from_be_bytes([0, f[0], f[1], f[2]]) as usize;
        assert_eq!(len, f.len() - 9);
        assert_eq!((f[3], f[4]), (HEADERS, END_HEADERS | END_STREAM));
        assert_eq!(&f[5..9], &3u32.to_be_bytes());
        assert_eq!(&f[9..12], b"\x00\x07:");
        assert!(f.ends_with(b"\x05:path\x08/big.bin"));
    }

    #[tokio::test]
    async fn frames_read_back_and_the_end_is_none() {
        let mut bytes = preface(&[(INITIAL_WINDOW_SIZE, 0)]);
        bytes.drain(..24);
        bytes.extend(window_update(1, 1));
        let mut r = bytes.as_slice();
        let f = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!((f.kind, f.len), (SETTINGS, 6));
        let f = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!((f.kind, f.len), (WINDOW_UPDATE, 4));
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }
}
