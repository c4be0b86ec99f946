//! HTTP/3 against the real server with a real HTTP/3 client (h3 over quinn): the same
//! app, rules and guarantees as over HTTP/1.1 and HTTP/2: routing and the SPA fallback,
//! cache and security headers, HEAD and 405, conditional and range requests, content
//! negotiation. A large streamed file, site rules and Alt-Svc are in http3_site.rs; the
//! transport's own limits, resumption, 0-RTT, shutdown and metrics in http3_transport.rs.
//! Loopback only.

mod support;

use std::time::Duration;

use http::response::Parts;
use http::{Method, StatusCode};
use rampart::app::assets::decompress;
use rampart::app::encoding::Encoding;
use support::h3client::{connect as h3, content_length, get_with, header as h, H3Client};
use support::{random_bytes, TestServer, H2};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SHORT: &str = "public, max-age=300, must-revalidate";
/// The hashed script of the demo app (12 KB of text: it has compressed variants).
const APP_JS: &str = "/assets/app.3dd227a0.js";

/// A server over a copy of the demo app to which `files` adds.
/// (The directory goes with the server.)
async fn with_files(files: impl FnOnce(&std::path::Path)) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    support::copy_tree(&support::www(), &root);
    files(&root);
    (TestServer::start(move |c| c.root = root).await, dir)
}

fn assert_security_headers(p: &Parts, what: &str) {
    assert_eq!(
        h(p, "strict-transport-security"),
        Some("max-age=31536000"),
        "HSTS on {what}"
    );
    assert_eq!(h(p, "x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(
        h(p, "referrer-policy"),
        Some("strict-origin-when-cross-origin"),
        "{what}"
    );
}

#[tokio::test]
async fn index_html_over_h3_and_alt_svc_over_tcp() {
    let server = TestServer::start(|_| {}).await;
    let h3_addr = server.h3_addr.expect("HTTP/3 on by default");
    assert_eq!(h3_addr.port(), server.addr.port(), "same port on UDP");
    let client = H3Client::new(&server.ca);
    let mut conn = client.connect(h3_addr).await.unwrap();
    let a = conn.get("/").await;
    assert_eq!(a.parts.status, 200);
    assert_eq!(a.parts.version, http::Version::HTTP_3);
    assert!(
        String::from_utf8_lossy(&a.body).contains("<html"),
        "index.html"
    );
    let (parts, _) = server.get("/").await;
    assert_eq!(
        parts.headers["alt-svc"],
        format!("h3=\":{}\"; ma=86400", h3_addr.port()).as_str()
    );
    assert_eq!(server.metrics.snapshot().requests_h3, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_its_cache_policy_and_security_headers_are_served_over_h3() {
    let server = TestServer::start(|_| {}).await;
    let mut conn = h3(&server).await;
    let index = support::www_file("index.html");
    // index.html, client routes (with a query too) and the root: the app, never cached
    // without revalidation.
    for path in ["/", "/index.html", "/dashboard/settings", "/?tab=2&x=%20y"] {
        let (p, body) = get_with(&mut conn, path, &[]).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert_eq!(body, index, "{path}");
        assert_eq!(h(&p, "cache-control"), Some("no-cache"), "{path}");
        assert_eq!(
            h(&p, "content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_eq!(content_length(&p), index.len(), "{path}");
        assert!(h(&p, "etag").is_some(), "{path}");
        assert!(h(&p, "last-modified").is_some(), "{path}");
        assert_security_headers(&p, path);
        // The same advertisement as over TCP (from the asset table: one listener).
        let want = format!("h3=\":{}\"; ma=86400", server.addr.port());
        assert_eq!(h(&p, "alt-svc"), Some(want.as_str()), "{path}");
    }
    // Every file of the demo app, with its exact bytes, type and cache policy.
    for (path, ct, cc) in [
        (APP_JS, "text/javascript; charset=utf-8", IMMUTABLE),
        (
            "/assets/app.d7c5df6b.css",
            "text/css; charset=utf-8",
            IMMUTABLE,
        ),
        ("/assets/logo.82fac36e.png", "image/png", IMMUTABLE),
        ("/assets/inter.6fb50190.woff2", "font/woff2", IMMUTABLE),
        ("/robots.txt", "text/plain; charset=utf-8", SHORT),
        ("/robots.txt?v=2", "text/plain; charset=utf-8", SHORT),
        (
            "/.well-known/security.txt",
            "text/plain; charset=utf-8",
            SHORT,
        ),
    ] {
        let (p, body) = get_with(&mut conn, path, &[]).await;
        let file = path.split('?').next().unwrap();
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert_eq!(body, support::www_file(file), "{path}");
        assert_eq!(h(&p, "content-type"), Some(ct), "{path}");
        assert_eq!(h(&p, "cache-control"), Some(cc), "{path}");
        assert_eq!(h(&p, "accept-ranges"), Some("bytes"), "{path}");
        assert_eq!(content_length(&p), body.len(), "{path}");
        assert_security_headers(&p, path);
    }
    // A missing file with an extension is a 404, not the app; so are dotfiles and
    // traversal.
    for path in [
        "/assets/missing.4b1d2c3e.js",
        "/missing.css",
        "/.env",
        "/assets/../../etc/passwd",
        "/%2e%2e/Cargo.toml",
    ] {
        let (p, body) = get_with(&mut conn, path, &[]).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body, b"404 Not Found\n", "{path}");
        assert_eq!(h(&p, "cache-control"), Some("no-cache"), "{path}");
        assert_security_headers(&p, path);
    }
    assert_eq!(server.metrics.snapshot().requests_h3, 16);
}

/// Everything a response says, less what legitimately differs between two requests
/// (`date`); `alt-svc` is the same on both.
fn comparable(p: &Parts) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = p
        .headers
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_over_h3_has_the_status_headers_and_bytes_of_the_same_answer_over_h2() {
    let server = TestServer::start(|_| {}).await;
    let mut conn = h3(&server).await;
    let mut h2 = H2::connect(&server).await;
    let (etag_p, _) = h2.request(APP_JS, &[]).await;
    let etag = h(&etag_p, "etag").unwrap().to_owned();
    let lm = h(&etag_p, "last-modified").unwrap().to_owned();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/", vec![]),
        ("/", vec![("accept-encoding", "br, gzip")]),
        ("/settings/profile", vec![("sec-fetch-mode", "navigate")]),
        ("/missing.js", vec![("sec-fetch-dest", "script")]),
        (APP_JS, vec![("accept-encoding", "br")]),
        (APP_JS, vec![("accept-encoding", "gzip")]),
        (APP_JS, vec![("accept-encoding", "identity")]),
        (APP_JS, vec![("if-none-match", etag.as_str())]),
        (APP_JS, vec![("if-modified-since", lm.as_str())]),
        (APP_JS, vec![("range", "bytes=0-99")]),
        (APP_JS, vec![("range", "bytes=-10")]),
        (APP_JS, vec![("range", "bytes=99999-")]),
        (
            APP_JS,
            vec![("range", "bytes=0-9"), ("if-range", etag.as_str())],
        ),
        (
            "/assets/vendor.4db4f5aa.js",
            vec![("accept-encoding", "br")],
        ),
        ("/manifest.webmanifest", vec![]),
        ("/favicon.ico", vec![]),
        ("/robots.txt?x=1", vec![]),
    ];
    for (path, headers) in &cases {
        let (p3, b3) = get_with(&mut conn, path, headers).await;
        let (p2, b2) = h2.request(path, headers).await;
        assert_eq!(p3.status, p2.status, "{path} {headers:?}");
        assert_eq!(comparable(&p3), comparable(&p2), "{path} {headers:?}");
        assert!(b3 == b2, "{path} {headers:?}: bodies differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_over_h3_has_the_get_headers_and_no_body_and_other_methods_get_405() {
    let server = TestServer::start(|_| {}).await;
    let mut conn = h3(&server).await;
    for (path, headers) in [
        ("/", vec![]),
        ("/dashboard", vec![]),
        (APP_JS, vec![("accept-encoding", "br")]),
        ("/missing.js", vec![]),
    ] {
        let (get, get_body) = get_with(&mut conn, path, &headers).await;
        let head = conn.request(Method::HEAD, path, &headers).await.unwrap();
        assert_eq!(head.parts.status, get.status, "{path} {headers:?}");
        assert_eq!(comparable(&head.parts), comparable(&get), "{path}");
        assert!(head.body.is_empty(), "{path}: HEAD has no body");
        assert_eq!(content_length(&head.parts), get_body.len(), "{path}");
    }
    // HEAD ignores Range: it describes the whole body.
    let head = conn
        .request(Method::HEAD, APP_JS, &[("range", "bytes=0-9")])
        .await
        .unwrap();
    assert_eq!(head.parts.status, StatusCode::OK);
    assert_eq!(h(&head.parts, "content-range"), None);
    assert_eq!(
        content_length(&head.parts),
        support::www_file(&APP_JS[1..]).len()
    );
    assert!(head.body.is_empty());
    let custom = Method::from_bytes(b"PROPFIND").unwrap();
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
        custom,
    ] {
        for path in ["/", "/robots.txt", "/dashboard", "/missing.js"] {
            let a = conn.request(method.clone(), path, &[]).await.unwrap();
            assert_eq!(
                a.parts.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(h(&a.parts, "allow"), Some("GET, HEAD"), "{method} {path}");
            assert_eq!(content_length(&a.parts), a.body.len(), "{method} {path}");
            assert!(!a.body.is_empty(), "{method} {path}");
            assert_security_headers(&a.parts, "405");
        }
    }
    // A POST with a body is answered too, and the connection goes on.
    let mut req = conn
        .send
        .send_request(
            http::Request::post(format!("https://localhost:{}/api", conn.port))
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    req.send_data(bytes::Bytes::from_static(b"{\"a\":1}"))
        .await
        .unwrap();
    req.finish().await.unwrap();
    let resp = req.recv_response().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(conn.get("/robots.txt").await.parts.status, StatusCode::OK);
    let m = server.metrics.snapshot();
    assert_eq!(m.requests_h3, 4 * 2 + 1 + 6 * 4 + 2);
    assert_eq!(m.responses[2][1], 3 * 2 + 1 + 1, "2xx over h3");
    assert_eq!(m.responses[2][3], 2 + 6 * 4 + 1, "4xx over h3");
}

#[tokio::test]
async fn conditional_requests_over_h3_get_304_and_if_range_picks_206_or_200() {
    let server = TestServer::start(|_| {}).await;
    let mut conn = h3(&server).await;
    let js = support::www_file(&APP_JS[1..]);
    let (p, _) = get_with(&mut conn, APP_JS, &[]).await;
    let etag = h(&p, "etag").unwrap().to_owned();
    let lm = h(&p, "last-modified").unwrap().to_owned();
    let later =
        httpdate::fmt_http_date(httpdate::parse_http_date(&lm).unwrap() + Duration::from_secs(60));
    let earlier =
        httpdate::fmt_http_date(httpdate::parse_http_date(&lm).unwrap() - Duration::from_secs(60));
    let weak = format!("W/{etag}");
    let list = format!("\"other\", {etag}");
    for headers in [
        vec![("if-none-match", etag.as_str())],
        vec![("if-none-match", "*")],
        vec![("if-none-match", weak.as_str())],
        vec![("if-none-match", list.as_str())],
        vec![("if-modified-since", lm.as_str())],
        vec![("if-modified-since", later.as_str())],
    ] {
        let (p, body) = get_with(&mut conn, APP_JS, &headers).await;
        assert_eq!(p.status, StatusCode::NOT_MODIFIED, "{headers:?}");
        assert!(body.is_empty(), "{headers:?}");
        assert_eq!(h(&p, "etag"), Some(etag.as_str()));
        assert_eq!(h(&p, "cache-control"), Some(IMMUTABLE));
        assert_eq!(h(&p, "content-length"), None);
        assert_security_headers(&p, "304");
    }
    for headers in [
        vec![("if-none-match", "\"other\"")],
        vec![("if-modified-since", earlier.as_str())],
        // If-None-Match wins over If-Modified-Since.
        vec![
            ("if-none-match", "\"other\""),
            ("if-modified-since", later.as_str()),
        ],
    ] {
        let (p, body) = get_with(&mut conn, APP_JS, &headers).await;
        assert_eq!(p.status, StatusCode::OK, "{headers:?}");
        assert_eq!(body, js, "{headers:?}");
    }
    // If-Match / If-Unmodified-Since.
    let (p, _) = get_with(&mut conn, APP_JS, &[("if-match", "\"other\"")]).await;
    assert_eq!(p.status, StatusCode::PRECONDITION_FAILED);
    let (p, _) = get_with(&mut conn, APP_JS, &[("if-unmodified-since", &earlier)]).await;
    assert_eq!(p.status, StatusCode::PRECONDITION_FAILED);
    // If-Range: the current validator gives the range, a stale one the whole file.
    for (if_range, status) in [
        (etag.as_str(), StatusCode::PARTIAL_CONTENT),
        (lm.as_str(), StatusCode::PARTIAL_CONTENT),
        ("\"stale\"", StatusCode::OK),
        (weak.as_str(), StatusCode::OK),
        (earlier.as_str(), StatusCode::OK),
    ] {
        let (p, body) = get_with(
            &mut conn,
            APP_JS,
            &[("range", "bytes=100-199"), ("if-range", if_range)],
        )
        .await;
        assert_eq!(p.status, status, "{if_range}");
        if status == StatusCode::OK {
            assert_eq!(body, js, "{if_range}");
            assert_eq!(h(&p, "content-range"), None);
        } else {
            assert_eq!(body, &js[100..200], "{if_range}");
            assert_eq!(
                h(&p, "content-range"),
                Some(format!("bytes 100-199/{}", js.len()).as_str())
            );
        }
    }
    let m = server.metrics.snapshot();
    assert_eq!(m.responses[2][2], 6, "3xx (304) over h3");
}

/// One part of a multipart/byteranges body: (Content-Type, Content-Range, bytes).
type BodyPart = (String, String, Vec<u8>);

/// Parses a multipart/byteranges body strictly (each part's length from its Content-Range).
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<BodyPart> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type}"));
    let first = format!("--{boundary}\r\n");
    assert!(
        body.starts_with(first.as_bytes()),
        "opens with the boundary"
    );
    let mut rest = &body[first.len()..];
    let mut parts = Vec::new();
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part head ends");
        let head = std::str::from_utf8(&rest[..end]).unwrap();
        rest = &rest[end + 4..];
        let (mut ct, mut cr) = (String::new(), String::new());
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(": ").expect("part header line");
            match k.to_ascii_lowercase().as_str() {
                "content-type" => ct = v.to_owned(),
                "content-range" => cr = v.to_owned(),
                other => panic!("unexpected part header {other}"),
            }
        }
        let span = cr
            .strip_prefix("bytes ")
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        parts.push((ct, cr, rest[..n].to_vec()));
        rest = &rest[n..];
        let delim = format!("\r\n--{boundary}");
        assert!(rest.starts_with(delim.as_bytes()), "delimiter after a part");
        rest = &rest[delim.len()..];
        if rest == b"--\r\n" {
            return parts;
        }
        assert!(rest.starts_with(b"\r\n"), "CRLF after a delimiter");
        rest = &rest[2..];
    }
}

#[tokio::test]
async fn ranges_over_h3_give_206_with_the_exact_bytes_multipart_and_416() {
    let data = random_bytes(1000, 11);
    let (server, _dir) =
        with_files(|root| std::fs::write(root.join("data.bin"), &data).unwrap()).await;
    let mut conn = h3(&server).await;
    let (p, body) = get_with(&mut conn, "/data.bin", &[]).await;
    assert_eq!(p.status, StatusCode::OK, "the new file is served");
    assert_eq!(body, data);
    for (range, span, want) in [
        ("bytes=0-99", "0-99", &data[..100]),
        ("bytes=10-10", "10-10", &data[10..11]),
        ("bytes=900-5000", "900-999", &data[900..]),
        ("bytes=-100", "900-999", &data[900..]),
        ("bytes=-5000", "0-999", &data[..]),
        ("bytes=250-", "250-999", &data[250..]),
        ("bytes=0-99,50-149,150-199", "0-199", &data[..200]),
    ] {
        let (p, body) = get_with(&mut conn, "/data.bin", &[("range", range)]).await;
        assert_eq!(p.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            h(&p, "content-range"),
            Some(format!("bytes {span}/1000").as_str()),
            "{range}"
        );
        assert_eq!(content_length(&p), want.len(), "{range}");
        assert_eq!(h(&p, "content-type"), Some("application/octet-stream"));
        assert!(body == want, "{range}: wrong bytes");
    }
    let (p, body) = get_with(
        &mut conn,
        "/data.bin",
        &[("range", "bytes=500-599, 0-9,-50")],
    )
    .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&p, "content-range"), None);
    assert_eq!(content_length(&p), body.len());
    let parts = parse_multipart(h(&p, "content-type").unwrap(), &body);
    let expected = [(0usize, 9usize), (500, 599), (950, 999)];
    assert_eq!(parts.len(), expected.len());
    for ((ct, cr, bytes), (a, b)) in parts.iter().zip(expected) {
        assert_eq!(ct, "application/octet-stream");
        assert_eq!(cr, &format!("bytes {a}-{b}/1000"));
        assert!(bytes[..] == data[a..=b], "part {a}-{b}");
    }
    for range in ["bytes=1000-", "bytes=1000-2000, 5000-6000", "bytes=-0"] {
        let (p, body) = get_with(&mut conn, "/data.bin", &[("range", range)]).await;
        assert_eq!(p.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(h(&p, "content-range"), Some("bytes */1000"), "{range}");
        assert_eq!(content_length(&p), body.len(), "{range}");
        assert_security_headers(&p, "416");
    }
    for range in ["bytes=", "bytes=5-1", "items=0-1"] {
        let (p, body) = get_with(&mut conn, "/data.bin", &[("range", range)]).await;
        assert_eq!(p.status, StatusCode::OK, "{range}: ignored");
        assert_eq!(body, data, "{range}");
    }
    // A range of a compressible asset is of its identity bytes, brotli accepted or not.
    let js = support::www_file(&APP_JS[1..]);
    let (p, body) = get_with(
        &mut conn,
        APP_JS,
        &[
            ("accept-encoding", "br, gzip"),
            ("range", "bytes=1000-1999"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&p, "content-encoding"), None);
    assert_eq!(body, &js[1000..2000]);
}

#[tokio::test]
async fn accept_encoding_over_h3_picks_br_gzip_or_identity_with_vary() {
    let server = TestServer::start(|_| {}).await;
    let mut conn = h3(&server).await;
    for path in [APP_JS, "/assets/vendor.4db4f5aa.js", "/"] {
        let original = support::www_file(if path == "/" {
            "index.html"
        } else {
            &path[1..]
        });
        let mut etags = Vec::new();
        for (ae, coding) in [
            ("br", Some(Encoding::Brotli)),
            ("gzip, deflate, br", Some(Encoding::Brotli)),
            ("gzip", Some(Encoding::Gzip)),
            ("br;q=0.5, gzip;q=0.9", Some(Encoding::Gzip)),
            ("identity", None),
            ("br;q=0, gzip;q=0", None),
            ("", None),
        ] {
            let headers: &[(&str, &str)] = if ae.is_empty() {
                &[]
            } else {
                &[("accept-encoding", ae)]
            };
            let (p, body) = get_with(&mut conn, path, headers).await;
            assert_eq!(p.status, StatusCode::OK, "{path} {ae}");
            assert_eq!(h(&p, "vary"), Some("Accept-Encoding"), "{path} {ae}");
            assert_eq!(content_length(&p), body.len(), "{path} {ae}");
            let name = coding.map(|c| match c {
                Encoding::Brotli => "br",
                Encoding::Gzip => "gzip",
                _ => unreachable!(),
            });
            assert_eq!(h(&p, "content-encoding"), name, "{path} {ae}");
            let plain = match coding {
                Some(c) => {
                    assert!(body.len() < original.len(), "{path} {ae}: compressed");
                    decompress(c, &body).unwrap()
                }
                None => body,
            };
            assert!(plain == original, "{path} {ae}: decodes to the file");
            etags.push(h(&p, "etag").unwrap().to_owned());
        }
        // One validator per coding.
        assert_ne!(etags[0], etags[2], "{path}");
        assert_ne!(etags[0], etags[4], "{path}");
        assert_ne!(etags[2], etags[4], "{path}");
    }
    // An image: no coding, no Vary.
    let (p, body) = get_with(
        &mut conn,
        "/assets/logo.82fac36e.png",
        &[("accept-encoding", "br, gzip")],
    )
    .await;
    assert_eq!(h(&p, "content-encoding"), None);
    assert_eq!(h(&p, "vary"), None);
    assert_eq!(body, support::www_file("assets/logo.82fac36e.png"));
}
