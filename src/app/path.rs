//! Request path decoding and safety rules. A peer controls every byte here: this module
//! never panics, decodes percent-escapes exactly once, and refuses anything that could name
//! a file outside the served tree or a hidden one. It does not touch the filesystem: the
//! asset table is the only namespace requests can reach.

use std::borrow::Cow;

/// Why a request path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not decodable: a bad `%` escape, invalid UTF-8 or no leading `/` (answer 400).
    Malformed,
    /// Decodable but never served: `..`, `.`, empty segments, NUL, backslash, encoded `/` or
    /// `\`, dotfiles outside `/.well-known/` (answer 404).
    Forbidden,
}

/// Decodes a request path (without the query) and applies the safety rules.
///
/// # Errors
/// [`PathError::Malformed`] or [`PathError::Forbidden`] as documented on the variants.
pub fn decode(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::Malformed);
    }
    let decoded: Cow<'_, str> = if raw.contains('%') {
        let bytes = raw.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hi = bytes.get(i + 1).and_then(|b| hex(*b));
                let lo = bytes.get(i + 2).and_then(|b| hex(*b));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::Malformed);
                };
                let b = hi << 4 | lo;
                if b == b'/' || b == b'\\' {
                    return Err(PathError::Forbidden);
                }
                out.push(b);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        Cow::Owned(String::from_utf8(out).map_err(|_| PathError::Malformed)?)
    } else {
        Cow::Borrowed(raw)
    };
    check_segments(&decoded)?;
    Ok(decoded)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn check_segments(path: &str) -> Result<(), PathError> {
    if path.contains(['\0', '\\']) {
        return Err(PathError::Forbidden);
    }
    // Skip the leading '/'; a trailing '/' leaves one empty last segment, which is fine.
    let mut segments = path[1..].split('/').peekable();
    let mut first = true;
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        match seg {
            "" if !last => return Err(PathError::Forbidden),
            "." | ".." => return Err(PathError::Forbidden),
            s if s.starts_with('.') && !(first && s == ".well-known") => {
                return Err(PathError::Forbidden);
            }
            _ => {}
        }
        first = false;
    }
    Ok(())
}

/// Whether the last segment of a decoded path has a file extension (`/a/b.js` yes,
/// `/dashboard/settings` and `/docs/` no). Decides between SPA fallback and 404.
#[must_use]
pub fn has_extension(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    last.char_indices().any(|(i, c)| c == '.' && i > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_pass_through_without_copying() {
        assert!(matches!(
            decode("/assets/app.js"),
            Ok(Cow::Borrowed("/assets/app.js"))
        ));
        assert_eq!(decode("/").unwrap(), "/");
        assert_eq!(decode("/docs/").unwrap(), "/docs/");
        assert_eq!(
            decode("/.well-known/security.txt").unwrap(),
            "/.well-known/security.txt"
        );
    }

    #[test]
    fn escapes_are_decoded_once() {
        assert_eq!(decode("/a%20b.txt").unwrap(), "/a b.txt");
        assert_eq!(decode("/%25252e").unwrap(), "/%252e");
        assert_eq!(decode("/caf%C3%A9").unwrap(), "/café");
    }

    #[test]
    fn traversal_and_hidden_files_are_forbidden() {
        for p in [
            "/../etc/passwd",
            "/a/../b",
            "/%2e%2e/x",
            "/a/./b",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/.env",
            "/.git/config",
            "/a/.hidden",
            "//evil.example",
            "/a//b",
            "/x/.well-known/y",
        ] {
            assert_eq!(decode(p), Err(PathError::Forbidden), "{p}");
        }
    }

    #[test]
    fn undecodable_paths_are_malformed() {
        for p in ["/%", "/%4", "/%zz", "/%ff%fe", "relative", "", "*"] {
            assert_eq!(decode(p), Err(PathError::Malformed), "{p}");
        }
    }

    #[test]
    fn extensions_are_seen_on_the_last_segment_only() {
        assert!(has_extension("/assets/app.3f9a1c2b.js"));
        assert!(has_extension("/logo.png"));
        assert!(!has_extension("/dashboard/settings"));
        assert!(!has_extension("/v1.2/page"));
        assert!(!has_extension("/docs/"));
        assert!(!has_extension("/.well-known"));
    }
}
