//! [`WindowWatch`]: spots an HTTP/2 client that keeps its flow-control windows tiny.
//!
//! A client that opens its window a byte at a time gets a one-byte DATA frame (and a TLS
//! record) per WINDOW_UPDATE: 2.65 million frames in 10 s, a core busy for a few bytes a
//! second. The h2 crate sends whatever window is open, so the connection cannot wait for a
//! useful amount; instead the frames the client sends are followed as hyper reads them
//! (frame headers only: payloads are skipped, never copied), and a connection whose client
//! sends more than [`TINY_PER_SECOND`] WINDOW_UPDATEs of under [`TINY`] bytes within a second
//! is closed, as h2o does. Ordinary clients open windows by half a window or more at a time
//! (nghttp2, browsers, Go), and a small response ends its stream before any update is due.
//!
//! Total over any bytes: a malformed frame stream is hyper's to refuse; this only counts.

use tokio::time::Instant;

/// A WINDOW_UPDATE increment below this is tiny: under one full TLS record's worth of DATA
/// would be less than 1/16 of it.
pub(crate) const TINY: u32 = 1024;

/// Tiny WINDOW_UPDATEs a client may send within one second. One per response for a page of
/// a thousand small assets, and far below a dribble (hundreds of thousands a second).
pub(crate) const TINY_PER_SECOND: u32 = 1000;

/// The client's connection preface, before its first frame.
const PREFACE_LEN: usize = 24;

/// HTTP/2's WINDOW_UPDATE frame type.
const WINDOW_UPDATE: u8 = 0x8;

/// Follows the frames of one HTTP/2 connection's incoming bytes; see the module docs.
#[derive(Debug)]
pub(crate) struct WindowWatch {
    /// Bytes still to skip: the preface, then each frame's payload.
    skip: usize,
    /// The frame header (9 bytes) or WINDOW_UPDATE payload (4 bytes) being collected.
    partial: [u8; 9],
    have: usize,
    /// What `partial` collects.
    reading: Reading,
    /// Tiny updates in the current second, which began at `since`.
    tiny: u32,
    since: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Header,
    /// A WINDOW_UPDATE's increment; the rest of its payload (if longer) is skipped.
    Increment {
        rest: usize,
    },
}

/// The client keeps its windows tiny: the connection should be closed.
#[derive(Debug, thiserror::Error)]
#[error("HTTP/2 client keeps its flow-control windows tiny ({count} WINDOW_UPDATEs under {TINY} bytes within a second)")]
pub(crate) struct TinyWindows {
    pub(crate) count: u32,
}

impl Default for WindowWatch {
    fn default() -> Self {
        Self {
            skip: PREFACE_LEN,
            partial: [0; 9],
            have: 0,
            reading: Reading::Header,
            tiny: 0,
            since: None,
        }
    }
}

impl WindowWatch {
    /// Follows `bytes`, the next bytes the client sent.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), TinyWindows> {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let want = match self.reading {
                Reading::Header => 9,
                Reading::Increment { .. } => 4,
            };
            let n = (want - self.have).min(bytes.len());
            self.partial[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < want {
                break;
            }
            self.have = 0;
            match self.reading {
                Reading::Header => {
                    let [l0, l1, l2, kind, ..] = self.partial;
                    let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
                    if kind == WINDOW_UPDATE && len >= 4 {
                        self.reading = Reading::Increment { rest: len - 4 };
                    } else {
                        self.skip = len;
                    }
                }
                Reading::Increment { rest } => {
                    let [a, b, c, d, ..] = self.partial;
                    let increment = u32::from_be_bytes([a & 0x7f, b, c, d]);
                    self.skip = rest;
                    self.reading = Reading::Header;
                    if increment < TINY {
                        self.count_tiny()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn count_tiny(&mut self) -> Result<(), TinyWindows> {
        let now = Instant::now();
        match self.since {
            Some(since) if now.duration_since(since) < std::time::Duration::from_secs(1) => {
                self.tiny += 1;
            }
            _ => {
                self.since = Some(now);
                self.tiny = 1;
            }
        }
        if self.tiny > TINY_PER_SECOND {
            return Err(TinyWindows { count: self.tiny });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut out = vec![len[1], len[2], len[3], kind, 0];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn preface() -> Vec<u8> {
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(0x4, 0, &[0, 4, 0, 0, 0, 0]));
        out
    }

    #[test]
    fn a_client_opening_windows_a_byte_at_a_time_is_caught_however_its_bytes_are_cut() {
        let mut stream = preface();
        stream.extend(frame(0x1, 1, &[0x82; 20]));
        for _ in 0..=TINY_PER_SECOND {
            stream.extend(frame(WINDOW_UPDATE, 1, &1u32.to_be_bytes()));
        }
        for cut in [1, 5, 9, 13, 4096] {
            let mut watch = WindowWatch::default();
            let caught = stream.chunks(cut).try_for_each(|c| watch.feed(c));
            let err = caught.expect_err("caught");
            assert_eq!(err.count, TINY_PER_SECOND + 1, "cut {cut}");
        }
    }

    #[test]
    fn ordinary_traffic_and_large_updates_are_not_counted() {
        let mut watch = WindowWatch::default();
        watch.feed(&preface()).unwrap();
        for i in 0..5000u32 {
            // Requests, DATA with payloads that look like WINDOW_UPDATE headers, big updates.
            watch.feed(&frame(0x1, 2 * i + 1, &[0x82; 30])).unwrap();
            watch
                .feed(&frame(
                    0x0,
                    2 * i + 1,
                    &frame(WINDOW_UPDATE, 1, &[0, 0, 0, 1]),
                ))
                .unwrap();
            watch
                .feed(&frame(WINDOW_UPDATE, 0, &(32 * 1024u32).to_be_bytes()))
                .unwrap();
        }
        assert_eq!(watch.tiny, 0);
    }

    #[test]
    fn a_few_tiny_updates_a_second_are_allowed() {
        let mut watch = WindowWatch::default();
        watch.feed(&preface()).unwrap();
        for _ in 0..TINY_PER_SECOND {
            watch
                .feed(&frame(WINDOW_UPDATE, 1, &100u32.to_be_bytes()))
                .unwrap();
        }
        // A malformed WINDOW_UPDATE (short payload) is hyper's to refuse; it is skipped here.
        watch.feed(&frame(WINDOW_UPDATE, 1, &[0, 1])).unwrap();
    }
}
