//! Plaintext HTTP where HTTPS is expected: on the TLS port (a client typed http://host:8443)
//! and on the optional `--http-listen` port. One code path for both: read the request head
//! (bounded in size and by the connection's deadline, one byte at a time if need be), answer
//! `308` to the https:// URL or `400` saying the port speaks HTTPS, close cleanly.
//! The parser is pure and total (fuzzed); the Location it builds only ever contains a host
//! of hostname/IP characters, so a crafted Host header cannot redirect elsewhere or inject
//! headers.
//!
//! With ACME on, the `--http-listen` port also answers HTTP-01 challenges (RFC 8555
//! section 8.3): `GET` or `HEAD` of `/.well-known/acme-challenge/TOKEN` gets the key
//! authorization published for the token (acme/challenge.rs, which validates the token
//! before it looks anything up), or 404.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::acme::challenge::Challenges;
use crate::config::PlaintextMode;

/// Largest plaintext request head read before answering 400.
pub const MAX_HEAD: usize = 8 * 1024;

/// Where a CA fetches an HTTP-01 answer: this, then the token (RFC 8555 section 8.3).
pub const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// The parts of a plaintext request that the answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainRequest {
    /// The method: one or more ASCII capital letters.
    pub method: String,
    /// Path and query (origin form), starting with `/`.
    pub target: String,
    /// The Host header without its port, if present and well-formed.
    pub host: Option<String>,
}

/// Whether `buf` holds a complete head (ends with an empty line).
#[must_use]
pub fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

/// Parses a request head. `None` when it is not a well-formed HTTP/1.x request head.
#[must_use]
pub fn parse_head(buf: &[u8]) -> Option<PlainRequest> {
    let text = std::str::from_utf8(buf).ok()?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next()?;
    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return None;
    }
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    if target.is_empty() || !target.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return None;
    }
    let (target, mut host) = if let Some(rest) = target.strip_prefix("http://") {
        // absolute-form: http://host[:port]/path
        let (authority, path) = rest
            .find('/')
            .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        (path.to_owned(), clean_host(authority))
    } else if target.starts_with('/') {
        (target.to_owned(), None)
    } else {
        return None;
    };
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("host") && host.is_none() {
            host = clean_host(value.trim());
        }
    }
    Some(PlainRequest {
        method: method.to_owned(),
        target,
        host,
    })
}

/// The token a `GET` or `HEAD` of [`ACME_CHALLENGE_PATH`]`TOKEN` asks for: what follows
/// the prefix up to a query, not yet validated (`Challenges::http_answer` does that).
/// `None` for any other request.
#[must_use]
pub fn acme_challenge_token(req: &PlainRequest) -> Option<&str> {
    if req.method != "GET" && req.method != "HEAD" {
        return None;
    }
    let path = req.target.split('?').next().unwrap_or_default();
    path.strip_prefix(ACME_CHALLENGE_PATH)
}

/// The host part of an authority, if it is a plausible hostname or IP literal.
fn clean_host(authority: &str) -> Option<String> {
    let host = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let inner = &authority[1..end];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        &authority[..=end]
    } else {
        let host = authority.split(':').next().unwrap_or("");
        if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return None;
        }
        host
    };
    Some(host.to_ascii_lowercase())
}

/// The https:// URL for a request: its host (or the address it reached) and the HTTPS port.
#[must_use]
pub fn https_url(req: &PlainRequest, local: SocketAddr, https_port: u16) -> String {
    let host = req.host.clone().unwrap_or_else(|| match local {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    });
    if https_port == 443 {
        format!("https://{host}{}", req.target)
    } else {
        format!("https://{host}:{https_port}{}", req.target)
    }
}

/// What happened, for logs and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with a redirect to this URL.
    Redirected(String),
    /// Answered with 400 (reject mode); the URL given in the body.
    Rejected(String),
    /// The head was malformed or too large: answered 400.
    BadRequest,
    /// The client went away or the deadline passed before a whole head arrived.
    Incomplete,
    /// An ACME HTTP-01 challenge answered (200) for this token.
    ChallengeAnswered(String),
    /// An ACME HTTP-01 challenge path with no answer (404).
    ChallengeUnknown,
}

/// A response to write, then close.
struct Reply {
    status: &'static str,
    content_type: &'static str,
    location: Option<String>,
    body: String,
    /// A `HEAD` request: the headers only.
    head: bool,
}

impl Reply {
    fn text(status: &'static str, body: String) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            location: None,
            body,
            head: false,
        }
    }
}

/// Reads one request head from `io` (after `prefix`, bytes already read while sniffing) and
/// answers it. With `challenges`, ACME HTTP-01 challenge paths are answered from them.
pub(crate) async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    mut buf: Vec<u8>,
    deadline: Instant,
    local: SocketAddr,
    https_port: u16,
    mode: PlaintextMode,
    challenges: Option<&Arc<Challenges>>,
) -> Outcome {
    let mut chunk = [0u8; 1024];
    while !head_complete(&buf) && buf.len() <= MAX_HEAD {
        match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return Outcome::Incomplete,
        }
    }
    let parsed = if buf.len() > MAX_HEAD && !head_complete(&buf[..MAX_HEAD]) {
        None
    } else {
        parse_head(&buf)
    };
    let (reply, outcome) = match parsed {
        None => (
            Reply::text(
                "400 Bad Request",
                "400 Bad Request: this port speaks HTTPS.\n".to_owned(),
            ),
            Outcome::BadRequest,
        ),
        Some(req) => match (challenges, acme_challenge_token(&req)) {
            (Some(challenges), Some(token)) => challenge_reply(challenges, &req, token).await,
            _ => {
                let url = https_url(&req, local, https_port);
                let body = format!("This port speaks HTTPS. Use {url}\n");
                match mode {
                    PlaintextMode::Redirect => (
                        Reply {
                            location: Some(url.clone()),
                            ..Reply::text("308 Permanent Redirect", body)
                        },
                        Outcome::Redirected(url),
                    ),
                    PlaintextMode::Reject => {
                        (Reply::text("400 Bad Request", body), Outcome::Rejected(url))
                    }
                }
            }
        },
    };
    let mut response = format!("HTTP/1.1 {}\r\n", reply.status);
    if let Some(l) = reply.location {
        response.push_str(&format!("Location: {l}\r\n"));
    }
    response.push_str(&format!(
        "Content-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        reply.content_type,
        reply.body.len()
    ));
    if !reply.head {
        response.push_str(&reply.body);
    }
    let _ = tokio::time::timeout_at(deadline, async {
        io.write_all(response.as_bytes()).await?;
        io.flush().await
    })
    .await;
    outcome
}

/// The answer to an HTTP-01 challenge request: the key authorization published for
/// `token` (here or, through the shared directory, by another instance), else 404.
async fn challenge_reply(
    challenges: &Arc<Challenges>,
    req: &PlainRequest,
    token: &str,
) -> (Reply, Outcome) {
    // The answer may come from the shared directory (a file read): off the async workers.
    let lookup = {
        let (challenges, token) = (Arc::clone(challenges), token.to_owned());
        tokio::task::spawn_blocking(move || challenges.http_answer(&token))
    };
    let head = req.method == "HEAD";
    match lookup.await.ok().flatten() {
        Some(key_authorization) => (
            Reply {
                status: "200 OK",
                content_type: "application/octet-stream",
                location: None,
                body: key_authorization,
                head,
            },
            Outcome::ChallengeAnswered(token.to_owned()),
        ),
        // 404, not the 308 to https that other paths get: Let's Encrypt follows redirects
        // for http-01, but the HTTPS side has no answer either, and a 404 gives the CA (and
        // the operator reading its error) a clear one.
        None => (
            Reply {
                head,
                ..Reply::text(
                    "404 Not Found",
                    "404 Not Found: no answer for this ACME challenge token.\n".to_owned(),
                )
            },
            Outcome::ChallengeUnknown,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:8443".parse().unwrap()
    }

    #[test]
    fn redirect_keeps_path_and_query_and_uses_the_host_header() {
        let r = parse_head(b"GET /x?y=1 HTTP/1.1\r\nHost: Example.COM:8443\r\n\r\n").unwrap();
        assert_eq!(r.target, "/x?y=1");
        assert_eq!(
            https_url(&r, local(), 8443),
            "https://example.com:8443/x?y=1"
        );
        assert_eq!(https_url(&r, local(), 443), "https://example.com/x?y=1");
    }

    #[test]
    fn missing_or_hostile_host_falls_back_to_the_local_address() {
        for head in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: evil.example/@x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        ] {
            let r = parse_head(head).unwrap();
            assert_eq!(https_url(&r, local(), 8443), "https://127.0.0.1:8443/");
        }
        let r = parse_head(b"GET / HTTP/1.0\nHost: [::1]:80\n\n").unwrap();
        assert_eq!(https_url(&r, local(), 8443), "https://[::1]:8443/");
    }

    #[test]
    fn absolute_form_targets_are_reduced_to_their_path() {
        let r =
            parse_head(b"GET http://a.example:80/p?q HTTP/1.1\r\nHost: b.example\r\n\r\n").unwrap();
        assert_eq!(r.target, "/p?q");
        assert_eq!(r.host.as_deref(), Some("a.example"));
    }

    #[test]
    fn acme_challenge_token_is_read_from_get_and_head_of_the_challenge_path_only() {
        let token = |head: &[u8]| {
            parse_head(head).and_then(|r| acme_challenge_token(&r).map(str::to_owned))
        };
        assert_eq!(
            token(b"GET /.well-known/acme-challenge/abc-_1 HTTP/1.1\r\n\r\n").as_deref(),
            Some("abc-_1")
        );
        assert_eq!(
            token(b"HEAD /.well-known/acme-challenge/abc?x=1 HTTP/1.1\r\n\r\n").as_deref(),
            Some("abc")
        );
        assert_eq!(
            token(b"GET http://a.example/.well-known/acme-challenge/t HTTP/1.1\r\n\r\n").as_deref(),
            Some("t")
        );
        // Passed on unvalidated: the lookup refuses it.
        assert_eq!(
            token(b"GET /.well-known/acme-challenge/../x HTTP/1.1\r\n\r\n").as_deref(),
            Some("../x")
        );
        for head in [
            &b"POST /.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n"[..],
            b"GET /.well-known/acme-challenge HTTP/1.1\r\n\r\n",
            b"GET /x/.well-known/acme-challenge/abc HTTP/1.1\r\n\r\n",
            b"GET /.well-known/acme-challengeabc HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(token(head), None, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn malformed_heads_are_refused() {
        for head in [
            &b"GET /x\r\n\r\n"[..],
            b"GET x HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"\xff\xfe",
            b"GET  / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(head),
                None,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
