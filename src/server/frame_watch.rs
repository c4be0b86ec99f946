//! [`FrameWatch`]: follows the frames an HTTP/2 client sends, as hyper reads them, for two
//! abuses the h2 crate does not stop. Frame headers are read; payloads are skipped, never
//! copied, but for the rare frame looked into (a trailers HEADERS block). Total over any
//! bytes: a malformed frame stream is hyper's to refuse; this only counts and looks.
//!
//! - **Tiny windows.** A client that opens its window a byte at a time gets a one-byte DATA
//!   frame (and a TLS record) per WINDOW_UPDATE: 2.65 million frames in 10 s, a core busy
//!   for a few bytes a second. The h2 crate sends whatever window is open, so the
//!   connection cannot wait for a useful amount; a client that sends more than
//!   [`TINY_PER_SECOND`] WINDOW_UPDATEs of under [`TINY`] bytes within a second is closed,
//!   as h2o does. Ordinary clients open windows by half a window or more at a time
//!   (nghttp2, browsers, Go), and a small response ends its stream before any update is
//!   due.
//! - **Pseudo-header fields in trailers** make a request malformed (RFC 9113 8.1), but h2
//!   0.4 drops them from trailers unchecked, so the request would be served. The trailers
//!   block of a stream (a second HEADERS) is scanned for fields that name a pseudo-header:
//!   an HPACK static-table entry 1 to 14 (`:authority` .. `:status`), or a literal name that
//!   starts with `:`. A name from the client's dynamic table or Huffman-coded is not decoded
//!   (that would mean decoding every header block twice). The connection is then closed
//!   before hyper reads the frame, so no response is sent (RFC 9113 lets an endpoint treat
//!   a stream error as a connection error).

use tokio::time::Instant;

/// A WINDOW_UPDATE increment below this is tiny: under one full TLS record's worth of DATA
/// would be less than 1/16 of it.
pub(crate) const TINY: u32 = 1024;

/// Tiny WINDOW_UPDATEs a client may send within one second. One per response for a page of
/// a thousand small assets, and far below a dribble (hundreds of thousands a second).
pub(crate) const TINY_PER_SECOND: u32 = 1000;

/// The client's connection preface, before its first frame.
const PREFACE_LEN: usize = 24;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// The largest trailers frame looked into: HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which
/// the server keeps.
const TRAILERS_MAX: usize = 16 * 1024;

/// Streams whose request body is still coming that are followed for trailers; more are not
/// (the stream limit is 128 by default).
const OPEN_BODIES_MAX: usize = 256;

/// Follows the frames of one HTTP/2 connection's incoming bytes; see the module docs.
#[derive(Debug)]
pub(crate) struct FrameWatch {
    /// Bytes still to skip: the preface, then each frame's payload.
    skip: usize,
    /// The frame header (9 bytes) or WINDOW_UPDATE increment (4 bytes) being collected.
    partial: [u8; 9],
    have: usize,
    /// What comes next.
    reading: Reading,
    /// A trailers HEADERS payload being collected.
    trailers: Vec<u8>,
    /// The stream of those trailers.
    trailers_stream: u32,
    /// Tiny updates in the current second, which began at `since`.
    tiny: u32,
    since: Option<Instant>,
    /// Streams that sent HEADERS without END_STREAM: a HEADERS frame on one is trailers.
    open_bodies: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Header,
    /// A WINDOW_UPDATE's increment; the rest of its payload (if longer) is skipped.
    Increment {
        rest: usize,
    },
    /// A trailers HEADERS payload of this length, with these flags.
    Trailers {
        len: usize,
        flags: u8,
    },
}

/// Why the connection should be closed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameFault {
    /// The client keeps its windows tiny.
    #[error("HTTP/2 client keeps its flow-control windows tiny ({count} WINDOW_UPDATEs under {TINY} bytes within a second)")]
    TinyWindows { count: u32 },
    /// A malformed request: pseudo-header fields in its trailers.
    #[error("HTTP/2 request with pseudo-header fields in its trailers (stream {stream})")]
    PseudoHeaderInTrailers { stream: u32 },
}

impl Default for FrameWatch {
    fn default() -> Self {
        Self {
            skip: PREFACE_LEN,
            partial: [0; 9],
            have: 0,
            reading: Reading::Header,
            trailers: Vec::new(),
            trailers_stream: 0,
            tiny: 0,
            since: None,
            open_bodies: Vec::new(),
        }
    }
}

impl FrameWatch {
    /// Follows `bytes`, the next bytes the client sent.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), FrameFault> {
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
                Reading::Trailers { len, flags } => {
                    let n = (len - self.trailers.len()).min(bytes.len());
                    self.trailers.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.trailers.len() == len {
                        self.reading = Reading::Header;
                        let payload = std::mem::take(&mut self.trailers);
                        if names_a_pseudo_header(header_block(&payload, flags)) {
                            return Err(FrameFault::PseudoHeaderInTrailers {
                                stream: self.trailers_stream,
                            });
                        }
                    }
                    continue;
                }
            };
            let n = (want - self.have).min(bytes.len());
            self.partial[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < want {
                break;
            }
            self.have = 0;
            if let Reading::Increment { rest } = self.reading {
                let [a, b, c, d, ..] = self.partial;
                let increment = u32::from_be_bytes([a & 0x7f, b, c, d]);
                self.skip = rest;
                self.reading = Reading::Header;
                if increment < TINY {
                    self.count_tiny()?;
                }
            } else {
                self.on_header();
            }
        }
        Ok(())
    }

    /// A whole frame header is in `partial`: decides what to do with its payload.
    fn on_header(&mut self) {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = self.partial;
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        let stream = u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]);
        self.skip = len;
        match kind {
            WINDOW_UPDATE if len >= 4 => {
                self.skip = 0;
                self.reading = Reading::Increment { rest: len - 4 };
            }
            HEADERS => match self.open_bodies.iter().position(|&s| s == stream) {
                // A second HEADERS: trailers (or, without END_STREAM, h2's own error);
                // either way the stream's body is over.
                Some(i) => {
                    self.open_bodies.swap_remove(i);
                    // A block over the default frame size is h2's FRAME_SIZE_ERROR: never
                    // collected here, so the watch holds at most one frame's 16 KiB.
                    if flags & END_STREAM != 0 && len > 0 && len <= TRAILERS_MAX {
                        self.skip = 0;
                        self.trailers_stream = stream;
                        self.trailers.reserve_exact(len);
                        self.reading = Reading::Trailers { len, flags };
                    }
                }
                None if flags & END_STREAM == 0 && self.open_bodies.len() < OPEN_BODIES_MAX => {
                    self.open_bodies.push(stream);
                }
                None => {}
            },
            DATA if flags & END_STREAM != 0 => self.forget(stream),
            RST_STREAM => self.forget(stream),
            _ => {}
        }
    }

    fn forget(&mut self, stream: u32) {
        if let Some(i) = self.open_bodies.iter().position(|&s| s == stream) {
            self.open_bodies.swap_remove(i);
        }
    }

    fn count_tiny(&mut self) -> Result<(), FrameFault> {
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
            return Err(FrameFault::TinyWindows { count: self.tiny });
        }
        Ok(())
    }
}

/// The header block fragment of a HEADERS payload: without its padding and priority.
fn header_block(payload: &[u8], flags: u8) -> &[u8] {
    let mut block = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let Some((&p, rest)) = block.split_first() else {
            return &[];
        };
        pad = usize::from(p);
        block = rest;
    }
    if flags & PRIORITY != 0 {
        block = block.get(5..).unwrap_or(&[]);
    }
    &block[..block.len().saturating_sub(pad)]
}

/// Whether an HPACK block has a field whose name is a pseudo-header: a static-table entry
/// 1 to 14 (indexed, or as a literal's name), or a literal name starting with `:` (not
/// Huffman-coded). Stops at the first representation it cannot read.
fn names_a_pseudo_header(mut block: &[u8]) -> bool {
    /// The static table's pseudo-header entries (RFC 7541 appendix A).
    const PSEUDO: std::ops::RangeInclusive<u64> = 1..=14;
    while let Some(&first) = block.first() {
        // The index's prefix bits, and whether literal strings follow.
        let (prefix, literal) = match first {
            0x80..=0xff => (7, false),
            0x40..=0x7f => (6, true),
            // A dynamic table size update: no field.
            0x20..=0x3f => {
                let Some((_, rest)) = hpack_int(block, 5) else {
                    return false;
                };
                block = rest;
                continue;
            }
            _ => (4, true),
        };
        let Some((index, rest)) = hpack_int(block, prefix) else {
            return false;
        };
        block = rest;
        if PSEUDO.contains(&index) {
            return true;
        }
        if !literal {
            continue;
        }
        if index == 0 {
            let Some((name, huffman, rest)) = hpack_string(block) else {
                return false;
            };
            if !huffman && name.first() == Some(&b':') {
                return true;
            }
            block = rest;
        }
        let Some((_, _, rest)) = hpack_string(block) else {
            return false;
        };
        block = rest;
    }
    false
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 5.1), and what follows it.
fn hpack_int(block: &[u8], n: u32) -> Option<(u64, &[u8])> {
    let (&first, mut rest) = block.split_first()?;
    let max = (1u64 << n) - 1;
    let mut value = u64::from(first) & max;
    if value < max {
        return Some((value, rest));
    }
    let mut shift = 0u32;
    loop {
        let (&b, more) = rest.split_first()?;
        rest = more;
        value = value.checked_add((u64::from(b) & 0x7f).checked_shl(shift)?)?;
        if b & 0x80 == 0 {
            return Some((value, rest));
        }
        shift += 7;
        if shift > 56 {
            return None;
        }
    }
}

/// An HPACK string literal: its bytes, whether they are Huffman-coded, what follows.
fn hpack_string(block: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let huffman = block.first()? & 0x80 != 0;
    let (len, rest) = hpack_int(block, 7)?;
    let len = usize::try_from(len).ok()?;
    (rest.len() >= len).then(|| (&rest[..len], huffman, &rest[len..]))
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
            let mut watch = FrameWatch::default();
            let caught = stream.chunks(cut).try_for_each(|c| watch.feed(c));
            assert_eq!(
                caught,
                Err(FrameFault::TinyWindows {
                    count: TINY_PER_SECOND + 1
                }),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn ordinary_traffic_and_large_updates_are_not_counted() {
        let mut watch = FrameWatch::default();
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
        let mut watch = FrameWatch::default();
        watch.feed(&preface()).unwrap();
        for _ in 0..TINY_PER_SECOND {
            watch
                .feed(&frame(WINDOW_UPDATE, 1, &100u32.to_be_bytes()))
                .unwrap();
        }
        // A malformed WINDOW_UPDATE (short payload) is hyper's to refuse; it is skipped here.
        watch.feed(&frame(WINDOW_UPDATE, 1, &[0, 1])).unwrap();
    }

    fn headers(flags: u8, stream: u32, block: &[u8]) -> Vec<u8> {
        let mut f = frame(HEADERS, stream, block);
        f[4] = flags | 0x4;
        f
    }

    /// A literal field without indexing, new name, no Huffman.
    fn literal(name: &str, value: &str) -> Vec<u8> {
        let mut out = vec![0x00, u8::try_from(name.len()).unwrap()];
        out.extend_from_slice(name.as_bytes());
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value.as_bytes());
        out
    }

    #[test]
    fn pseudo_header_fields_in_trailers_are_caught_and_ordinary_trailers_pass() {
        let request = [0x82, 0x87, 0x84, 0x41, 0x01, b'x'];
        let cases = [
            (literal(":path", "/x"), true),
            // Indexed :method GET; a literal whose name is :path by index.
            (vec![0x82], true),
            (vec![0x04, 0x02, b'/', b'y'], true),
            // A dynamic-table name (index 65), a plain trailer, a table size update.
            (
                [vec![0x7f, 0x02, 0x01, b'b'], literal("x-a", "b")].concat(),
                false,
            ),
            (literal("x-checksum", "abc"), false),
            ([vec![0x3f, 0x01], literal("x-t", "1")].concat(), false),
        ];
        for (trailers, pseudo) in cases {
            for cut in [1, 3, 4096] {
                let mut stream = preface();
                stream.extend(headers(0, 1, &request));
                let mut data = frame(DATA, 1, &[b'z'; 10]);
                data[4] = 0;
                stream.extend(data);
                stream.extend(headers(END_STREAM, 1, &trailers));
                let mut watch = FrameWatch::default();
                let got = stream.chunks(cut).try_for_each(|c| watch.feed(c));
                let want = if pseudo {
                    Err(FrameFault::PseudoHeaderInTrailers { stream: 1 })
                } else {
                    Ok(())
                };
                assert_eq!(got, want, "{trailers:02x?} cut {cut}");
            }
        }
        // Request headers with END_STREAM (no body) are never trailers, pseudo fields and all.
        let mut watch = FrameWatch::default();
        watch.feed(&preface()).unwrap();
        for i in 0..300 {
            watch
                .feed(&headers(END_STREAM, 2 * i + 1, &[0x82, 0x87, 0x84]))
                .unwrap();
        }
        assert!(watch.open_bodies.is_empty());
    }

    #[test]
    fn a_trailers_frame_over_the_frame_size_is_skipped_not_collected() {
        let mut stream = preface();
        stream.extend(headers(0, 1, &[0x82, 0x87, 0x84]));
        stream.extend(headers(END_STREAM, 1, &[0x82; TRAILERS_MAX + 1]));
        let mut watch = FrameWatch::default();
        assert_eq!(watch.feed(&stream), Ok(()));
        assert_eq!(watch.trailers.capacity(), 0);
    }

    #[test]
    fn hpack_parsing_is_total() {
        for len in 0..64usize {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = names_a_pseudo_header(&junk);
            let _ = header_block(&junk, PADDED | PRIORITY);
        }
        let huge = [
            0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(!names_a_pseudo_header(&huge));
    }

    /// Random frames: mostly well-formed headers (so that HEADERS on open streams, trailers
    /// and WINDOW_UPDATEs occur), with random payloads and flags.
    fn frames() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let one = (
            prop_oneof![
                Just(DATA),
                Just(HEADERS),
                Just(RST_STREAM),
                Just(WINDOW_UPDATE),
                any::<u8>()
            ],
            any::<u8>(),
            1u32..6,
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(kind, flags, stream, payload)| {
                let mut f = frame(kind, stream, &payload);
                f[4] = flags;
                f
            });
        proptest::collection::vec(one, 0..40).prop_map(|fs| {
            let mut out = preface();
            out.extend(fs.concat());
            out
        })
    }

    proptest::proptest! {
        // 500 cases; no regression files written into the source tree.
        #![proptest_config(proptest::test_runner::Config {
            cases: 500,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Total over any bytes, and the verdict does not depend on how the bytes are cut
        /// into reads.
        #[test]
        fn the_frame_watch_is_total_and_blind_to_how_reads_cut_the_bytes(
            stream in frames(),
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            cut in 1usize..50,
        ) {
            let whole = FrameWatch::default().feed(&stream);
            let mut watch = FrameWatch::default();
            let cut_up = stream.chunks(cut).try_for_each(|c| watch.feed(c));
            proptest::prop_assert_eq!(whole, cut_up);
            let _ = FrameWatch::default().feed(&junk);
            let _ = names_a_pseudo_header(&junk);
        }
    }
}
