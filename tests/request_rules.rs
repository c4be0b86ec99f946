//! The protocol rules a request must meet before it is served, against the real binary:
//! HTTP/1.1 `Host` (RFC 9112 3.2), no `Transfer-Encoding` with or without `Content-Length`
//! (request smuggling, RFC 9112 6.1), HTTP/2 `:authority`/`host` (RFC 9113 8.3.1), and that
//! a stream error in an HTTP/2 request body always wins over a response (RFC 9113 8.1,
//! 5.4.2), whatever the timing. HTTP/2 is spoken frame by frame, built by hand over the
//! harness's rustls stream, so that the client can send what a real client never would.

mod support;

use std::time::{Duration, Instant};

use support::binary::{field, Rampart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long a test waits for an answer it expects.
const WAIT: Duration = Duration::from_secs(5);

/// Sends `request` on a new HTTP/1.1 connection and reads until the server closes it:
/// the whole answer, or a panic if the connection stays open.
async fn h1_until_close(server: &Rampart, request: &str) -> String {
    let mut tls = server.connect(&[b"http/1.1"]).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, tls.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "connection still open after {WAIT:?}; got {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_without_exactly_one_valid_host_gets_400_and_the_connection_closes() {
    let server = Rampart::start(&[]);
    let cases = [
        ("GET / HTTP/1.1\r\n\r\n", "needs a Host header"),
        (
            "GET / HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n",
            "more than one Host",
        ),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "not a valid host"),
        ("GET / HTTP/1.1\r\nHost: user@x\r\n\r\n", "not a valid host"),
        // A keep-alive request: the 400 still closes.
        (
            "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "needs a Host header",
        ),
    ];
    for (request, why) in cases {
        let answer = h1_until_close(&server, request).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{request:?}: {answer}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{answer}"
        );
        assert!(answer.contains(why), "{request:?}: {answer}");
        // One answer: the request after it was never read.
        assert_eq!(answer.matches("HTTP/1.1 4").count(), 1, "{answer}");
    }
    let line = server
        .wait_line("request refused", Duration::from_secs(2))
        .await;
    assert!(line.contains(" WARN "), "{line}");
    assert!(
        field(&line, "peer").unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    assert_eq!(field(&line, "reason"), Some("missing_host"), "{line}");
    let counters = counters_at_exit(server).await;
    for (key, n) in [
        ("rejected_missing_host", 2),
        ("rejected_duplicate_host", 1),
        ("rejected_invalid_host", 2),
        ("rejected_transfer_encoding", 0),
    ] {
        assert_eq!(count(&counters, key), Some(n), "{key}: {counters}");
    }
}

/// The `counters` line the binary logs at exit, after SIGTERM.
async fn counters_at_exit(mut server: Rampart) -> String {
    server.signal("-TERM");
    server.wait_exit(WAIT).await;
    server.wait_line(" counters ", WAIT).await
}

fn count(counters: &str, key: &str) -> Option<u64> {
    field(counters, key).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_without_host_is_served_and_valid_hosts_of_every_shape_are_accepted() {
    let server = Rampart::start(&[]);
    let answer = h1_until_close(&server, "GET / HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200 "), "{answer}");
    for host in ["localhost", "localhost:8443", "127.0.0.1", "[::1]:443"] {
        let answer = h1_until_close(
            &server,
            &format!("GET /robots.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{host}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_gets_400_and_the_connection_closes() {
    let server = Rampart::start(&[]);
    for (first, second) in [
        ("Content-Length: 5", "Transfer-Encoding: chunked"),
        ("Transfer-Encoding: chunked", "Content-Length: 5"),
    ] {
        // Behind a load balancer that reads Content-Length, "0\r\n\r\n" would be the body
        // and the request after it a second, smuggled one.
        let request = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\n{first}\r\n{second}\r\n\r\n0\r\n\r\n\
             GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
        let answer = h1_until_close(&server, &request).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{first}: {answer}");
        assert!(answer.contains("Transfer-Encoding"), "{answer}");
        assert!(!answer.contains("HTTP/1.1 2"), "{answer}");
    }
    let line = server
        .wait_line("reason=\"transfer_encoding\"", Duration::from_secs(2))
        .await;
    assert!(
        field(&line, "peer").unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    let counters = counters_at_exit(server).await;
    assert_eq!(
        count(&counters, "rejected_transfer_encoding"),
        Some(2),
        "{counters}"
    );
}

// ---- HTTP/2 by hand ------------------------------------------------------------------

use support::h2raw::{
    frame, header_block as hpack, huffman_digits, Frame, DATA, END_HEADERS, END_STREAM, GOAWAY,
    HEADERS, RST_STREAM, SETTINGS, WINDOW_UPDATE,
};

const NO_ERROR: u32 = 0x0;
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const STREAM_CLOSED: u32 = 0x5;
const CANCEL: u32 = 0x8;

/// Header fields as (name, value).
type Fields<'a> = &'a [(&'a str, &'a str)];

/// A request's HEADERS frame: `GET /` with an `:authority`, then `extra` fields.
fn get(stream: u32, flags: u8, extra: Fields) -> Vec<u8> {
    let mut fields = vec![
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        (":authority", "localhost"),
    ];
    fields.extend_from_slice(extra);
    frame(HEADERS, flags | END_HEADERS, stream, &hpack(&fields))
}

/// What the server sent on one stream, read until it ended.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    /// The status of a response HEADERS on the stream.
    status: Option<u16>,
    /// The error code of a RST_STREAM on the stream.
    reset: Option<u32>,
    /// The error code of a GOAWAY.
    goaway: Option<u32>,
}

/// An HTTP/2 connection spoken frame by frame.
struct RawH2 {
    tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl RawH2 {
    /// Preface and empty SETTINGS; returns once the server's SETTINGS and connection window
    /// update (rampart raises it to 4 MiB) are in, so the client may send large bodies.
    async fn connect(server: &Rampart) -> Self {
        let tls = server.connect(&[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut c = Self {
            tls,
            buf: Vec::new(),
        };
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        c.send(&hello).await;
        let (mut settings, mut window) = (false, false);
        while !(settings && window) {
            let f = c.next(WAIT).await.expect("server preface");
            match f.kind {
                SETTINGS if f.flags & 0x1 == 0 => {
                    settings = true;
                    c.send(&frame(SETTINGS, 0x1, 0, &[])).await;
                }
                WINDOW_UPDATE if f.stream == 0 => window = true,
                _ => {}
            }
        }
        c
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).await.unwrap();
        self.tls.flush().await.unwrap();
    }

    /// The next frame, or None at EOF or after `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Frame> {
        let until = Instant::now() + wait;
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let f: Vec<u8> = self.buf.drain(..9 + len).collect();
                    return Some(Frame {
                        kind: f[3],
                        flags: f[4],
                        stream: u32::from_be_bytes([f[5], f[6], f[7], f[8]]) & 0x7fff_ffff,
                        payload: f[9..].to_vec(),
                    });
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let left = until.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.tls.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads until `stream` is reset or ends, a GOAWAY comes, or `wait` passes.
    async fn outcome(&mut self, stream: u32, wait: Duration) -> Outcome {
        let mut out = Outcome::default();
        while let Some(f) = self.next(wait).await {
            match f.kind {
                HEADERS if f.stream == stream => {
                    out.status = Some(status(&f.payload));
                    if f.flags & END_STREAM != 0 {
                        break;
                    }
                }
                DATA if f.stream == stream && f.flags & END_STREAM != 0 => break,
                RST_STREAM if f.stream == stream => {
                    out.reset = Some(u32::from_be_bytes(f.payload[..4].try_into().unwrap()));
                    break;
                }
                GOAWAY => {
                    out.goaway = Some(u32::from_be_bytes(f.payload[4..8].try_into().unwrap()));
                    break;
                }
                _ => {}
            }
        }
        out
    }
}

/// The `:status` of a response header block as h2 encodes it: first field, an indexed
/// static entry (200, 204, 206, 304, 400, 404, 500) or a literal with the `:status` name.
fn status(block: &[u8]) -> u16 {
    match block[0] {
        b @ 0x88..=0x8e => [200, 204, 206, 304, 400, 404, 500][usize::from(b - 0x88)],
        0x48 | 0x08 | 0x18 => {
            let len = usize::from(block[1] & 0x7f);
            let value = &block[2..2 + len];
            let digits = if block[1] & 0x80 == 0 {
                String::from_utf8(value.to_vec()).unwrap()
            } else {
                huffman_digits(value)
            };
            digits.parse().unwrap()
        }
        b => panic!("unexpected first field {b:#x} in {block:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_without_authority_or_host_gets_protocol_error_and_with_host_alone_is_served() {
    let server = Rampart::start(&[]);
    let mut h2 = RawH2::connect(&server).await;
    let bare = [(":method", "GET"), (":scheme", "https"), (":path", "/")];
    h2.send(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &hpack(&bare)))
        .await;
    let out = h2.outcome(1, WAIT).await;
    assert_eq!(
        out,
        Outcome {
            reset: Some(PROTOCOL_ERROR),
            ..Outcome::default()
        }
    );
    // The connection goes on: `host` alone names the server.
    let mut with_host = bare.to_vec();
    with_host.push(("host", "localhost"));
    h2.send(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        3,
        &hpack(&with_host),
    ))
    .await;
    assert_eq!(h2.outcome(3, WAIT).await.status, Some(200));
    // Userinfo in :authority is malformed too (RFC 9113 8.3.1).
    let userinfo = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/"),
        (":authority", "user@localhost"),
    ];
    h2.send(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        5,
        &hpack(&userinfo),
    ))
    .await;
    assert_eq!(h2.outcome(5, WAIT).await.reset, Some(PROTOCOL_ERROR));
    let line = server
        .wait_line("reason=\"missing_host\"", Duration::from_secs(2))
        .await;
    assert!(line.contains("protocol=h2"), "{line}");
}

/// Opens stream 1 with a request that has a body to come, waits `delay` (0: the rest goes
/// in the same write), sends `rest`, and returns what the server did on stream 1.
async fn body_case(server: &Rampart, extra: Fields<'_>, rest: &[u8], delay: u64) -> Outcome {
    let mut h2 = RawH2::connect(server).await;
    let head = get(1, 0, extra);
    if delay == 0 {
        h2.send(&[head, rest.to_vec()].concat()).await;
    } else {
        h2.send(&head).await;
        // Long enough for the server to accept the stream and, were it to answer early,
        // to answer.
        tokio::time::sleep(Duration::from_millis(delay)).await;
        h2.send(rest).await;
    }
    h2.outcome(1, WAIT).await
}

/// The delays each HTTP/2 body case is run with, 20 runs in all.
const DELAYS: [u64; 4] = [0, 1, 10, 40];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_stream_errors_in_a_request_body_always_reset_the_stream_before_any_response() {
    let server = Rampart::start(&[]);
    let second_headers = frame(HEADERS, END_HEADERS, 1, &hpack(&[("x-trailer", "1")]));
    let short_body = frame(DATA, END_STREAM, 1, b"12345");
    let window_overflow = frame(WINDOW_UPDATE, 0, 1, &0x7fff_ffffu32.to_be_bytes());
    // What the case is, the request's extra fields, what follows its HEADERS, the reset.
    type Case<'a> = (&'a str, Fields<'a>, &'a [u8], u32);
    let cases: [Case; 3] = [
        (
            "a second HEADERS without END_STREAM",
            &[],
            &second_headers,
            PROTOCOL_ERROR,
        ),
        (
            "content-length 10 with 5 bytes of DATA",
            &[("content-length", "10")],
            &short_body,
            PROTOCOL_ERROR,
        ),
        (
            "a WINDOW_UPDATE past 2^31-1",
            &[],
            &window_overflow,
            FLOW_CONTROL_ERROR,
        ),
    ];
    for (what, extra, rest, code) in cases {
        for run in 0..20 {
            let delay = DELAYS[run % DELAYS.len()];
            let out = body_case(&server, extra, rest, delay).await;
            assert_eq!(
                out,
                Outcome {
                    reset: Some(code),
                    ..Outcome::default()
                },
                "{what}, run {run}, delay {delay} ms"
            );
        }
    }
    let m = server.wait_line("reason=\"stream_error\"", WAIT).await;
    assert!(m.contains("protocol=h2"), "{m}");
    server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_data_after_the_clients_reset_gets_no_response_and_a_stream_closed_error() {
    let server = Rampart::start(&[]);
    let rest = [
        frame(RST_STREAM, 0, 1, &CANCEL.to_be_bytes()),
        frame(DATA, 0, 1, b"late"),
    ]
    .concat();
    for run in 0..20 {
        let delay = DELAYS[run % DELAYS.len()];
        let out = body_case(&server, &[], &rest, delay).await;
        // RFC 9113 5.1: a frame after RST_STREAM is a stream error STREAM_CLOSED, which an
        // endpoint may treat as a connection error (5.4); h2 does the latter while the
        // stream is still held, the former once it has been let go.
        assert_eq!(out.status, None, "run {run}, delay {delay} ms: {out:?}");
        assert!(
            out.reset == Some(STREAM_CLOSED) || out.goaway.is_some(),
            "run {run}, delay {delay} ms: {out:?}"
        );
    }
    server_still_serves(&server).await;
}

/// RFC 9113 8.1 makes trailers with pseudo-header fields malformed, but h2 0.4.20 drops
/// them unchecked (`Recv::recv_trailers` keeps `frame.into_fields()` only), so hyper never
/// sees them: rampart's frame watch (server/frame_watch.rs) spots them in the trailers
/// block and closes the connection before h2 reads it (a stream error treated as a
/// connection error): never a response, whatever the timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pseudo_headers_in_trailers_close_the_connection_before_any_response() {
    let server = Rampart::start(&[]);
    let trailers = frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &hpack(&[(":path", "/x")]),
    );
    for run in 0..20 {
        let delay = DELAYS[run % DELAYS.len()];
        let started = Instant::now();
        let out = body_case(&server, &[], &trailers, delay).await;
        assert_eq!(out, Outcome::default(), "run {run}, delay {delay} ms");
        assert!(
            started.elapsed() < WAIT,
            "run {run}: the connection was not closed"
        );
    }
    server
        .wait_line("pseudo-header fields in its trailers", WAIT)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_with_a_proper_body_are_answered_and_a_body_past_64_kib_gets_413() {
    let server = Rampart::start(&[]);
    let body = frame(DATA, END_STREAM, 1, b"12345");
    for run in 0..20 {
        let delay = DELAYS[run % DELAYS.len()];
        let out = body_case(&server, &[("content-length", "5")], &body, delay).await;
        assert_eq!(
            out.status,
            Some(200),
            "run {run}, delay {delay} ms: {out:?}"
        );
        assert_eq!(out.reset, None, "{out:?}");
    }
    // Trailers end a body too.
    let trailers = frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &hpack(&[("x-t", "1")]),
    );
    let data = frame(DATA, 0, 1, b"12345");
    let out = body_case(&server, &[], &[data, trailers].concat(), 10).await;
    assert_eq!(out.status, Some(200), "DATA then trailers: {out:?}");
    // 65 KiB in 16 KiB frames, no END_STREAM: answered 413 without waiting for the end.
    let chunk = vec![b'x'; 16 * 1024];
    let mut big = Vec::new();
    for _ in 0..4 {
        big.extend(frame(DATA, 0, 1, &chunk));
    }
    big.extend(frame(DATA, 0, 1, &[b'x'; 1024]));
    let mut h2 = RawH2::connect(&server).await;
    h2.send(&[get(1, 0, &[]), big].concat()).await;
    let out = h2.outcome(1, WAIT).await;
    assert_eq!(out.status, Some(413), "{out:?}");
    // The rest of the request is refused with NO_ERROR (RFC 9113 8.1), not an error.
    let after = h2.outcome(1, Duration::from_secs(1)).await;
    assert!(
        after.reset.is_none_or(|c| c == NO_ERROR) && after.goaway.is_none(),
        "{after:?}"
    );
    server.wait_line("reason=\"body_too_large\"", WAIT).await;
}

/// A plain HTTP/2 GET on a new connection still gets its 200.
async fn server_still_serves(server: &Rampart) {
    let mut h2 = RawH2::connect(server).await;
    h2.send(&get(1, END_STREAM, &[])).await;
    assert_eq!(h2.outcome(1, WAIT).await.status, Some(200));
}
