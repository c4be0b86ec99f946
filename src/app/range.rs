//! `Range: bytes=...` parsing (RFC 9110 §14). Never fails: a header that does not parse is
//! ignored (the full representation is sent), as the RFC requires.

use std::ops::Range;

/// Most ranges served in one multipart response; more (after merging) are answered with
/// the whole file, which costs the server less than a flood of tiny parts.
pub const MAX_RANGES: usize = 32;

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// Ignore the header and send 200 with the full body.
    Ignore,
    /// No range overlaps the representation: 416.
    Unsatisfiable,
    /// Satisfiable ranges, sorted, overlapping and adjacent ones merged; never empty.
    Satisfiable(Vec<Range<u64>>),
}

/// Parses a `Range` header value against a representation length.
#[must_use]
pub fn parse(header: &[u8], len: u64) -> Ranges {
    let Ok(header) = std::str::from_utf8(header) else {
        return Ranges::Ignore;
    };
    let header = header.trim();
    let Some((unit, specs)) = header.split_once('=') else {
        return Ranges::Ignore;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Ignore;
    }
    let mut out: Vec<Range<u64>> = Vec::new();
    let mut any = false;
    for (i, spec) in specs.split(',').enumerate() {
        // Bound the work a header can cause before merging.
        if i >= 256 {
            return Ranges::Ignore;
        }
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        any = true;
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Ignore;
        };
        let (first, last) = (first.trim(), last.trim());
        let range = if first.is_empty() {
            let Some(n) = number(last) else {
                return Ranges::Ignore;
            };
            if n == 0 || len == 0 {
                continue;
            }
            len.saturating_sub(n)..len
        } else {
            let Some(a) = number(first) else {
                return Ranges::Ignore;
            };
            let end = if last.is_empty() {
                len
            } else {
                let Some(b) = number(last) else {
                    return Ranges::Ignore;
                };
                if b < a {
                    return Ranges::Ignore;
                }
                b.saturating_add(1).min(len)
            };
            if a >= len {
                continue;
            }
            a..end
        };
        out.push(range);
    }
    if !any {
        return Ranges::Ignore;
    }
    if out.is_empty() {
        return Ranges::Unsatisfiable;
    }
    out.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(out.len());
    for r in out {
        match merged.last_mut() {
            Some(prev) if r.start <= prev.end => prev.end = prev.end.max(r.end),
            _ => merged.push(r),
        }
    }
    if merged.len() > MAX_RANGES {
        return Ranges::Ignore;
    }
    Ranges::Satisfiable(merged)
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-range vectors are the expected values
mod tests {
    use super::*;

    fn p(h: &str) -> Ranges {
        parse(h.as_bytes(), 1000)
    }

    #[test]
    fn single_suffix_and_open_ranges() {
        assert_eq!(p("bytes=0-99"), Ranges::Satisfiable(vec![0..100]));
        assert_eq!(p("bytes=-100"), Ranges::Satisfiable(vec![900..1000]));
        assert_eq!(p("bytes=900-"), Ranges::Satisfiable(vec![900..1000]));
        assert_eq!(p("bytes=990-5000"), Ranges::Satisfiable(vec![990..1000]));
        assert_eq!(p("bytes=-5000"), Ranges::Satisfiable(vec![0..1000]));
        assert_eq!(p("Bytes = 0-0"), Ranges::Satisfiable(vec![0..1]));
    }

    #[test]
    fn multiple_ranges_are_sorted_and_merged() {
        assert_eq!(
            p("bytes=500-599, 0-99"),
            Ranges::Satisfiable(vec![0..100, 500..600])
        );
        assert_eq!(p("bytes=0-99,100-199"), Ranges::Satisfiable(vec![0..200]));
        assert_eq!(
            p("bytes=0-500,200-300,-10"),
            Ranges::Satisfiable(vec![0..501, 990..1000])
        );
        assert_eq!(p("bytes=0-1,5000-6000"), Ranges::Satisfiable(vec![0..2]));
    }

    #[test]
    fn unsatisfiable_ranges_give_416() {
        assert_eq!(p("bytes=1000-"), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=1000-2000, 3000-4000"), Ranges::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Ranges::Unsatisfiable);
        assert_eq!(parse(b"bytes=0-", 0), Ranges::Unsatisfiable);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for h in [
            "bytes=",
            "bytes=a-b",
            "bytes=5-1",
            "items=0-1",
            "bytes 0-1",
            "bytes=0-1-2",
            "bytes=--1",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(p(h), Ranges::Ignore, "{h}");
        }
    }

    #[test]
    fn too_many_ranges_fall_back_to_the_whole_file() {
        let many: Vec<String> = (0..40)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect();
        assert_eq!(p(&format!("bytes={}", many.join(","))), Ranges::Ignore);
        let overlapping = vec!["0-"; 200].join(",");
        assert_eq!(
            p(&format!("bytes={overlapping}")),
            Ranges::Satisfiable(vec![0..1000])
        );
    }
}
