//! Percent-encoding as site rules need it: the request's raw query read into decoded
//! `name=value` pairs (for query conditions), and captured text encoded for a `Location`.
//! Total on any input: a malformed escape is kept as written, bytes that are not UTF-8
//! become U+FFFD.

use std::fmt::Write as _;

/// The `name=value` pairs of a raw query, percent-decoded, `+` as a space.
#[must_use]
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (decode(name, true), decode(value, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (a malformed one is kept as written); with `plus`, `+` is a space.
/// Bytes that are not UTF-8 become U+FFFD.
#[must_use]
pub fn decode(text: &str, plus: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        // Two hex digits are at most 0xFF.
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `value` to a URL, every byte outside the unreserved characters and the few
/// delimiters that mean the same anywhere in a path percent-encoded (so a captured `?`,
/// `#`, `%`, space or non-ASCII character cannot change the URL's meaning).
pub fn encode_into(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$'()*,;:@".contains(&b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `value` encoded as [`encode_into`] does.
#[must_use]
pub fn encode(value: &str) -> String {
    let mut out = String::new();
    encode_into(value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(decode("a%20b%2", false), "a b%2");
        assert_eq!(decode("%", true), "%");
        assert_eq!(decode("%zz+", true), "%zz ");
        assert_eq!(decode("%ff", false), "\u{fffd}");
        assert_eq!(
            query_pairs("a=1&&b&c=%41"),
            [
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "A".into())
            ]
        );
    }
}
