//! HTTP/3 by hand for what a well-behaved client never sends: a request HEADERS frame
//! whose QPACK field section uses only literals (no dynamic table, no Huffman), and the
//! `:status` of the answer read back from the raw stream. Loopback only.

/// A QUIC variable-length integer (RFC 9000 16).
pub fn varint(v: u64, out: &mut Vec<u8>) {
    match v {
        0..=63 => out.push(v as u8),
        64..=16_383 => out.extend_from_slice(&(v as u16 | 0x4000).to_be_bytes()),
        _ => out.extend_from_slice(&(v as u32 | 0x8000_0000).to_be_bytes()),
    }
}

/// An HPACK/QPACK prefixed integer (RFC 7541 5.1): `flags` in the bits above the prefix.
pub fn prefixed(v: usize, bits: u8, flags: u8, out: &mut Vec<u8>) {
    let max = (1usize << bits) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// A HEADERS frame whose QPACK field section uses only the static table and literals (no
/// dynamic table, no Huffman): what any client may send, whatever the server's SETTINGS.
pub fn headers_frame(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut block = vec![0, 0]; // Required Insert Count 0, Base 0
    for (name, value) in fields {
        // Literal field line with literal name (RFC 9204 4.5.6): 001 N H NameLen(3+).
        prefixed(name.len(), 3, 0x20, &mut block);
        block.extend_from_slice(name.as_bytes());
        prefixed(value.len(), 7, 0x00, &mut block);
        block.extend_from_slice(value.as_bytes());
    }
    let mut frame = Vec::new();
    varint(0x01, &mut frame);
    varint(block.len() as u64, &mut frame);
    frame.extend(block);
    frame
}

pub fn read_varint(buf: &[u8]) -> (u64, usize) {
    let len = 1 << (buf[0] >> 6);
    let mut v = u64::from(buf[0] & 0x3f);
    for b in &buf[1..len] {
        v = v << 8 | u64::from(*b);
    }
    (v, len)
}

/// The `:status` of the first HEADERS frame in `stream`, as h3's stateless encoder writes
/// it: the whole static entry (200, 404, ...) or a name reference with a literal value.
pub fn status_of(stream: &[u8]) -> Option<u16> {
    const STATIC: [(u8, u16); 14] = [
        (24, 103),
        (25, 200),
        (26, 304),
        (27, 404),
        (28, 503),
        (63, 100),
        (64, 204),
        (65, 206),
        (66, 302),
        (67, 400),
        (68, 403),
        (69, 421),
        (70, 425),
        (71, 500),
    ];
    let mut at = 0;
    while at < stream.len() {
        let (kind, n) = read_varint(&stream[at..]);
        let (len, m) = read_varint(&stream[at + n..]);
        let payload = &stream[at + n + m..at + n + m + len as usize];
        at += n + m + len as usize;
        if kind != 0x01 {
            continue; // GREASE or another frame before HEADERS
        }
        let field = &payload[2..];
        return if field[0] & 0xc0 == 0xc0 {
            // Indexed static: 11 + index(6+).
            let index = if field[0] & 0x3f == 0x3f {
                63 + field[1]
            } else {
                field[0] & 0x3f
            };
            STATIC.iter().find(|(i, _)| *i == index).map(|(_, s)| *s)
        } else {
            // Literal with a static name reference (01 N T index(4+)), index 24..28 or
            // 63..71 (:status); the value follows.
            let skip = if field[0] & 0x0f == 0x0f { 2 } else { 1 };
            let value = &field[skip..];
            let len = usize::from(value[0] & 0x7f);
            let text = &value[1..=len];
            let digits = if value[0] & 0x80 != 0 {
                super::h2raw::huffman_digits(text)
            } else {
                String::from_utf8(text.to_vec()).unwrap()
            };
            digits.parse().ok()
        };
    }
    None
}
