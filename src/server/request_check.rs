//! The protocol rules a request must meet before the app sees it, and nothing else: the
//! `Host` rules of RFC 9112 section 3.2 (HTTP/1.1) and RFC 9113 section 8.3.1 (HTTP/2), no
//! `Transfer-Encoding` on HTTP/1.1 (RFC 9112 section 6.1, request smuggling), and that an
//! HTTP/2 request body is read to its end before the answer (RFC 9113 sections 8.1 and 5.4.2).
//! It decides; `ConnService` (server/service.rs) answers, counts and logs. The app's own
//! rules (methods, paths, ranges) stay in src/app/.
//!
//! The common request costs two header-map lookups and, on HTTP/2, `is_end_stream`; no
//! allocation. Why `Transfer-Encoding` alone is refused on HTTP/1.1: hyper drops a
//! `Content-Length` that comes with it before the service sees the request (either order,
//! `proto::h1::role::Server::parse`), so "Content-Length with Transfer-Encoding" cannot be
//! told from `Transfer-Encoding` alone without scanning every raw request head; and the app
//! answers only GET and HEAD, which have no use for a request body.

use http::header::{HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Request, StatusCode, Version};

use crate::protocol::Protocol;
use crate::telemetry::Rejection;

/// The most an HTTP/2 request body may hold before rampart answers 413 instead of reading
/// on: the body is read (and discarded) before the answer, see [`check`].
pub(crate) const DRAIN_LIMIT: u64 = 64 * 1024;

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Hand it to the app now.
    Serve,
    /// HTTP/2 with a body still to come: read the body to its end (at most [`DRAIN_LIMIT`])
    /// and only then call the app, so that a stream error h2 finds in the rest (a second
    /// HEADERS, a content-length that DATA disagrees with, a window overflow) resets the
    /// stream before any response HEADERS, whatever the timing.
    Drain,
    /// Refuse it: HTTP/1 answers 400 and closes, HTTP/2 resets the stream (PROTOCOL_ERROR).
    Refuse(Rejection),
}

/// The verdict on a request as hyper hands it over on a `protocol` connection.
pub(crate) fn check<B: http_body::Body>(req: &Request<B>, protocol: Protocol) -> Verdict {
    if protocol.is_multiplexed() {
        // hyper (and h3) put `:authority` into the URI; without it the Host header must name the
        // server (RFC 9113 8.3.1), and neither may carry userinfo.
        let host = match req.uri().authority() {
            Some(a) if a.as_str().contains('@') => Err(Rejection::InvalidHost),
            Some(_) => Ok(()),
            None => host_header(req.headers(), true),
        };
        if let Err(why) = host {
            return Verdict::Refuse(why);
        }
        if req.body().is_end_stream() {
            Verdict::Serve
        } else {
            Verdict::Drain
        }
    } else {
        // HTTP/1.0 without Host stays allowed; a Host that is there must be right.
        if let Err(why) = host_header(req.headers(), req.version() == Version::HTTP_11) {
            return Verdict::Refuse(why);
        }
        if req.headers().contains_key(TRANSFER_ENCODING) {
            return Verdict::Refuse(Rejection::TransferEncoding);
        }
        Verdict::Serve
    }
}

/// The status and text of the answer to a refused request that gets one: every HTTP/1
/// refusal, and an HTTP/2 body past [`DRAIN_LIMIT`] (other HTTP/2 refusals are resets).
pub(crate) fn answer(why: Rejection) -> (StatusCode, &'static str) {
    let msg = match why {
        Rejection::MissingHost => "400 Bad Request: an HTTP/1.1 request needs a Host header\n",
        Rejection::DuplicateHost => "400 Bad Request: more than one Host header\n",
        Rejection::InvalidHost => "400 Bad Request: the Host header is not a valid host[:port]\n",
        Rejection::TransferEncoding => {
            "400 Bad Request: Transfer-Encoding is not accepted in requests\n"
        }
        Rejection::StreamError => "400 Bad Request: malformed request body\n",
        Rejection::BodyTooLarge => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "413 Content Too Large: this server answers GET and HEAD\n",
            )
        }
    };
    (StatusCode::BAD_REQUEST, msg)
}

/// Exactly one valid `Host` header, or none where `required` is false.
fn host_header(headers: &HeaderMap, required: bool) -> Result<(), Rejection> {
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if required => Err(Rejection::MissingHost),
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(Rejection::DuplicateHost),
        (Some(host), None) if valid_host(host) => Ok(()),
        (Some(_), None) => Err(Rejection::InvalidHost),
    }
}

/// Whether a Host value is an authority (`http::uri::Authority`) without userinfo.
fn valid_host(value: &HeaderValue) -> bool {
    let v = value.as_bytes();
    // The usual shape, a name or IPv4 address with an optional port, is checked in place;
    // the rest (IPv6 literals, sub-delims, percent signs) goes to http's parser, which
    // copies the value when it is valid: rare, and then the same rules as `:authority`.
    plain_authority(v) || (!v.contains(&b'@') && http::uri::Authority::try_from(v).is_ok())
}

/// `name[:digits]` with name of letters, digits and `.-_~`: an authority for
/// `http::uri::Authority` too (a subset of what it accepts).
fn plain_authority(v: &[u8]) -> bool {
    let (name, port) = match v.iter().position(|b| *b == b':') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~'))
        && port.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: Version, headers: &[(&str, &str)], uri: &str) -> Request<String> {
        let mut b = Request::builder().version(version).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(String::new()).unwrap()
    }

    fn h1(headers: &[(&str, &str)]) -> Verdict {
        check(&req(Version::HTTP_11, headers, "/"), Protocol::Http1)
    }

    #[test]
    fn http11_needs_exactly_one_valid_host_and_no_transfer_encoding() {
        use Rejection::*;
        assert_eq!(h1(&[("host", "example.com")]), Verdict::Serve);
        assert_eq!(h1(&[("host", "localhost:8443")]), Verdict::Serve);
        assert_eq!(h1(&[("host", "127.0.0.1:1")]), Verdict::Serve);
        assert_eq!(h1(&[("host", "[::1]:8443")]), Verdict::Serve);
        assert_eq!(h1(&[("host", "xn--bcher-kva.example")]), Verdict::Serve);
        assert_eq!(h1(&[]), Verdict::Refuse(MissingHost));
        assert_eq!(
            h1(&[("host", "a"), ("host", "a")]),
            Verdict::Refuse(DuplicateHost)
        );
        for bad in [
            "a b", "user@x", "u:p@x:1", "", "a:1:2", "[::1", "x/y", "a%zz",
        ] {
            assert_eq!(
                h1(&[("host", bad)]),
                Verdict::Refuse(InvalidHost),
                "{bad:?}"
            );
        }
        assert_eq!(
            h1(&[("host", "a"), ("transfer-encoding", "chunked")]),
            Verdict::Refuse(TransferEncoding)
        );
    }

    #[test]
    fn http10_may_omit_host_but_not_send_a_bad_one() {
        let v10 = |h: &[(&str, &str)]| check(&req(Version::HTTP_10, h, "/"), Protocol::Http1);
        assert_eq!(v10(&[]), Verdict::Serve);
        assert_eq!(v10(&[("host", "a")]), Verdict::Serve);
        assert_eq!(
            v10(&[("host", "a b")]),
            Verdict::Refuse(Rejection::InvalidHost)
        );
    }

    #[test]
    fn http2_needs_an_authority_or_a_host_and_drains_bodies() {
        let v2 = |h: &[(&str, &str)], uri: &str, body: &str| {
            let mut r = req(Version::HTTP_2, h, uri);
            *r.body_mut() = body.to_owned();
            check(&r, Protocol::Http2)
        };
        assert_eq!(v2(&[], "https://a/", ""), Verdict::Serve);
        assert_eq!(v2(&[("host", "a")], "/", ""), Verdict::Serve);
        assert_eq!(v2(&[], "/", ""), Verdict::Refuse(Rejection::MissingHost));
        assert_eq!(
            v2(&[], "https://u@a/", ""),
            Verdict::Refuse(Rejection::InvalidHost)
        );
        assert_eq!(v2(&[], "https://a/", "body"), Verdict::Drain);
    }

    #[test]
    fn the_in_place_check_accepts_only_what_http_accepts() {
        for v in ["a", "a.b-c_d~e", "A:", "a:0", "1.2.3.4:65535", "a:99999"] {
            assert!(plain_authority(v.as_bytes()), "{v}");
            assert!(http::uri::Authority::try_from(v).is_ok(), "{v}");
        }
        for v in ["", ":1", "a:b", "a b", "a@b", "[::1]"] {
            assert!(!plain_authority(v.as_bytes()), "{v}");
        }
    }
}
