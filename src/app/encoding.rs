//! Content-coding negotiation from `Accept-Encoding` (RFC 9110 §12.5.3), q-values included.
//! Never fails: an unparseable header means "identity".

/// A content coding rampart can serve. Ordered by preference on equal q (smaller first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoding {
    /// Brotli (`br`).
    Brotli,
    /// gzip (`gzip`, also accepted as `x-gzip`).
    Gzip,
    /// No coding.
    Identity,
}

impl Encoding {
    /// The token used in `Content-Encoding`.
    #[must_use]
    pub fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Gzip => "gzip",
            Self::Identity => "identity",
        }
    }
}

/// Picks the coding to send among `available` (which need not list identity): the highest
/// q-value wins, ties go to the smaller coding (br, then gzip, then identity). Identity is
/// the answer when nothing else is acceptable, even if the client excluded it: RFC 9110
/// allows sending an unlisted coding rather than a 406, and every client reads identity.
#[must_use]
pub fn negotiate(accept_encoding: Option<&[u8]>, available: &[Encoding]) -> Encoding {
    let Some(header) = accept_encoding else {
        return Encoding::Identity;
    };
    let q = QValues::parse(header);
    // Identity is always acceptable as the fallback, but only a q-value the client gave it
    // (directly or through `*`) lets it compete: `br;q=0.2, gzip;q=0.5` prefers gzip.
    let mut best = (Encoding::Identity, q.identity.or(q.star).unwrap_or(0));
    for &enc in available {
        if enc == Encoding::Identity {
            continue;
        }
        let q = q.of(enc);
        if q > 0 && (q > best.1 || (q == best.1 && enc < best.0)) {
            best = (enc, q);
        }
    }
    best.0
}

/// The q-value (in thousandths) that `accept_encoding` gives `enc`, directly or through
/// `*`; 0 when it is not acceptable. Without the header nothing but identity is: a file that
/// exists only compressed is not sent to a client that did not ask for the coding.
#[must_use]
pub fn accepted(accept_encoding: Option<&[u8]>, enc: Encoding) -> u16 {
    accept_encoding.map_or(u16::from(enc == Encoding::Identity) * 1000, |h| {
        QValues::parse(h).of(enc)
    })
}

/// The q-values of one `Accept-Encoding` header, in thousandths; `None` = not mentioned.
struct QValues {
    br: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    star: Option<u16>,
}

impl QValues {
    fn parse(header: &[u8]) -> Self {
        let mut out = Self {
            br: None,
            gzip: None,
            identity: None,
            star: None,
        };
        for item in header.split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let name = trim(parts.next().unwrap_or_default());
            let mut q = Some(1000);
            for param in parts {
                let param = trim(param);
                if param.len() >= 2 && param[..2].eq_ignore_ascii_case(b"q=") {
                    q = parse_q(trim(&param[2..]));
                }
            }
            let Some(q) = q else { continue };
            let slot = if name.eq_ignore_ascii_case(b"br") {
                &mut out.br
            } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
                &mut out.gzip
            } else if name.eq_ignore_ascii_case(b"identity") {
                &mut out.identity
            } else if name == b"*" {
                &mut out.star
            } else {
                continue;
            };
            // A coding listed twice keeps its highest q.
            *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
        }
        out
    }

    /// The q-value of a coding (identity included), 0 when not acceptable.
    fn of(&self, enc: Encoding) -> u16 {
        match enc {
            Encoding::Brotli => self.br.or(self.star).unwrap_or(0),
            Encoding::Gzip => self.gzip.or(self.star).unwrap_or(0),
            // Identity is acceptable unless excluded (RFC 9110 §12.5.3).
            Encoding::Identity => self.identity.or(self.star).unwrap_or(1000),
        }
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_q(s: &[u8]) -> Option<u16> {
    let (&first, rest) = s.split_first()?;
    let frac = match rest {
        [] => &[][..],
        [b'.', digits @ ..] if digits.len() <= 3 && digits.iter().all(u8::is_ascii_digit) => digits,
        _ => return None,
    };
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match first {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Brotli, Gzip, Identity};

    const BOTH: &[Encoding] = &[Brotli, Gzip];

    fn pick(h: &str) -> Encoding {
        negotiate(Some(h.as_bytes()), BOTH)
    }

    #[test]
    fn browsers_get_brotli() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Brotli);
        assert_eq!(pick("gzip, deflate"), Gzip);
        assert_eq!(pick("x-gzip"), Gzip);
        assert_eq!(negotiate(None, BOTH), Identity);
        assert_eq!(pick(""), Identity);
    }

    #[test]
    fn q_values_decide() {
        assert_eq!(pick("br;q=0.2, gzip;q=0.5"), Gzip);
        assert_eq!(pick("br;q=0, gzip"), Gzip);
        assert_eq!(pick("br;q=0, gzip;q=0"), Identity);
        assert_eq!(pick("*"), Brotli);
        assert_eq!(pick("*;q=0.5, identity"), Identity);
        assert_eq!(pick("gzip;q=1.0, br;q=0.999"), Gzip);
        assert_eq!(pick("BR ; Q=1"), Brotli);
    }

    #[test]
    fn bad_q_values_drop_the_item() {
        assert_eq!(pick("br;q=2, gzip"), Gzip);
        assert_eq!(pick("br;q=0.1234, gzip;q=abc"), Identity);
        assert_eq!(pick("br;q=, gzip;q=1.001"), Identity);
    }

    #[test]
    fn accepted_reads_a_codings_q_value_and_a_missing_header_accepts_only_identity() {
        assert_eq!(accepted(Some(b"gzip, br;q=0.5"), Brotli), 500);
        assert_eq!(accepted(Some(b"gzip"), Brotli), 0);
        assert_eq!(accepted(Some(b"*;q=0.1"), Gzip), 100);
        assert_eq!(accepted(Some(b"br;q=0"), Brotli), 0);
        assert_eq!(accepted(None, Brotli), 0);
        assert_eq!(accepted(None, Identity), 1000);
    }

    #[test]
    fn only_available_codings_are_chosen() {
        assert_eq!(negotiate(Some(b"br"), &[Gzip]), Identity);
        assert_eq!(negotiate(Some(b"br, gzip"), &[Gzip]), Gzip);
        assert_eq!(negotiate(Some(b"br, gzip"), &[]), Identity);
    }
}
