//! [`Replay`]: bytes already read from a stream that its next reader must see first (what
//! sniffing read before the TLS session, what woke a parked keep-alive connection, what
//! hyper had buffered beyond its last request). Used by both the stream under TLS
//! ([`super::Prefixed`]) and the stream hyper sees ([`super::ConnIo`]).

use tokio::io::ReadBuf;

/// Bytes to be read again, in order, before the stream itself.
#[derive(Debug, Default)]
pub(super) struct Replay {
    bytes: bytes::Bytes,
}

impl Replay {
    pub(super) fn new(bytes: impl Into<bytes::Bytes>) -> Self {
        Self {
            bytes: bytes.into(),
        }
    }

    /// Puts `bytes` back in front of what is still to be replayed.
    pub(super) fn put_back(&mut self, bytes: bytes::Bytes) {
        if self.bytes.is_empty() {
            self.bytes = bytes;
        } else if !bytes.is_empty() {
            let mut joined = bytes::BytesMut::with_capacity(bytes.len() + self.bytes.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.bytes);
            self.bytes = joined.freeze();
        }
    }

    /// Whether every byte was read.
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Reads as much as `buf` takes; whether there was anything to read (the allocation
    /// is freed with the last byte).
    pub(super) fn read_into(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.bytes.is_empty() {
            return false;
        }
        let n = self.bytes.len().min(buf.remaining());
        buf.put_slice(&self.bytes.split_to(n));
        if self.bytes.is_empty() {
            self.bytes = bytes::Bytes::new();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut Replay, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunk = vec![0u8; step];
        loop {
            let mut buf = ReadBuf::new(&mut chunk);
            if !r.read_into(&mut buf) {
                return out;
            }
            out.extend_from_slice(buf.filled());
        }
    }

    #[test]
    fn bytes_put_back_are_read_first_in_order_whatever_the_read_size() {
        for step in [1, 3, 64] {
            let mut r = Replay::new(b"world".to_vec());
            r.put_back(bytes::Bytes::from_static(b"hello "));
            r.put_back(bytes::Bytes::new());
            assert!(!r.is_empty());
            assert_eq!(read_all(&mut r, step), b"hello world");
            assert!(r.is_empty());
        }
    }
}
