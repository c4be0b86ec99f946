//! HTTP/3 against the real server with a real HTTP/3 client (h3 over quinn), continued: a
//! large file streamed from disk (and clients that abort it), site rules (`_headers`,
//! `_redirects`), and the Alt-Svc header that advertises HTTP/3 on HTTP/1.1 and HTTP/2.
//! Loopback only.

mod support;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use support::h3client::{connect as h3, content_length, get_with, header as h, H3Client};
use support::{random_bytes, TestServer, H2};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The hashed script of the demo app.
const APP_JS: &str = "/assets/app.3dd227a0.js";

/// Reads one response's body to the end.
async fn read_body(
    stream: &mut h3::client::RequestStream<h3_quinn::BidiStream<bytes::Bytes>, bytes::Bytes>,
) -> Vec<u8> {
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    body.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_streamed_file_is_byte_exact_and_an_aborted_download_harms_no_other_request() {
    const SIZE: usize = 6 << 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    support::copy_tree(&support::www(), &root);
    let big = random_bytes(SIZE, 0x5eed);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let server = TestServer::start(move |c| {
        c.root = root;
        c.stream_threshold = 64 * 1024;
    })
    .await;
    let mut conn = h3(&server).await;
    let (p, body) = get_with(&mut conn, "/big.bin", &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(content_length(&p), SIZE);
    assert!(body == big, "6 MiB streamed over h3 byte-exact");
    // A streamed range.
    let (p, body) = get_with(&mut conn, "/big.bin", &[("range", "bytes=3000000-3999999")]).await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert!(body[..] == big[3_000_000..4_000_000], "streamed range");

    // Two downloads at once on one connection: one is read to the end, the other
    // abandoned after its first bytes (STOP_SENDING, then the stream dropped).
    let uri = format!("https://localhost:{}/big.bin", conn.port);
    let mut kept = conn
        .send
        .send_request(http::Request::get(&uri).body(()).unwrap())
        .await
        .unwrap();
    kept.finish().await.unwrap();
    let mut aborted = conn
        .send
        .send_request(http::Request::get(&uri).body(()).unwrap())
        .await
        .unwrap();
    aborted.finish().await.unwrap();
    assert_eq!(aborted.recv_response().await.unwrap().status(), 200);
    let first = aborted.recv_data().await.unwrap().expect("some bytes");
    assert!(first.remaining() > 0);
    aborted.stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
    drop(aborted);
    assert_eq!(kept.recv_response().await.unwrap().status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(20), read_body(&mut kept))
        .await
        .expect("the other download goes on");
    assert!(body == big, "the concurrent download is byte-exact");
    // The same connection and a new one still serve.
    let (p, body) = get_with(&mut conn, "/big.bin", &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(body == big, "the next download on the same connection");
    let mut other = h3(&server).await;
    let (p, body) = get_with(&mut other, "/robots.txt", &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(body, support::www_file("robots.txt"));

    // A whole connection that goes away mid-download does not hurt the others.
    let mut dropped = h3(&server).await;
    let mut s = dropped
        .send
        .send_request(http::Request::get(&uri).body(()).unwrap())
        .await
        .unwrap();
    s.finish().await.unwrap();
    s.recv_response().await.unwrap();
    s.recv_data().await.unwrap().expect("some bytes");
    dropped.quic.close(0u32.into(), b"gone");
    drop(s);
    drop(dropped);
    let (p, body) = get_with(&mut other, "/big.bin", &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(body == big, "after a connection dropped mid-download");
    let (p, _) = server.get("/robots.txt").await;
    assert_eq!(p.status, StatusCode::OK, "TCP is unaffected");
    assert_eq!(server.metrics.snapshot().connection_panics, 0);
}

const HEADERS: &str = "\
/*
  X-Frame-Options: DENY
  Strict-Transport-Security: max-age=63072000; includeSubDomains; preload

/embed/*
  ! X-Frame-Options

/assets/*
  Referrer-Policy:

/app/*
  X-Route: app
";

const REDIRECTS: &str = "\
/home              /                   301
/blog/*            /news/:splat        302
/store  id=:id     /products/:id       301
/admin/*           /admin/index.html   200
/closed/*          /gone.html          410
";

#[tokio::test]
async fn header_and_redirect_rules_apply_over_h3() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    support::copy_tree(&support::www(), &root);
    std::fs::write(root.join("_headers"), HEADERS).unwrap();
    std::fs::write(root.join("_redirects"), REDIRECTS).unwrap();
    std::fs::create_dir_all(root.join("embed")).unwrap();
    std::fs::write(root.join("embed/widget.html"), "<p>widget</p>\n").unwrap();
    std::fs::create_dir_all(root.join("admin")).unwrap();
    std::fs::write(root.join("admin/index.html"), "<title>admin app</title>\n").unwrap();
    std::fs::write(root.join("gone.html"), "<p>closed</p>\n").unwrap();
    let server = TestServer::start(move |c| c.root = root).await;
    let mut conn = h3(&server).await;

    let (p, _) = get_with(&mut conn, "/", &[]).await;
    assert_eq!(h(&p, "x-frame-options"), Some("DENY"));
    assert_eq!(
        h(&p, "strict-transport-security"),
        Some("max-age=63072000; includeSubDomains; preload"),
        "the rule overrides the default HSTS"
    );
    assert_eq!(
        h(&p, "referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    let (p, body) = get_with(&mut conn, "/embed/widget.html", &[]).await;
    assert_eq!(body, b"<p>widget</p>\n");
    assert_eq!(h(&p, "x-frame-options"), None, "removed by `!`");
    let (p, _) = get_with(&mut conn, APP_JS, &[]).await;
    assert_eq!(h(&p, "referrer-policy"), None, "an empty value removes it");
    assert_eq!(h(&p, "cache-control"), Some(IMMUTABLE));
    let (p, body) = get_with(
        &mut conn,
        "/app/settings",
        &[("sec-fetch-mode", "navigate")],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(body, support::www_file("index.html"));
    assert_eq!(h(&p, "x-route"), Some("app"));

    for (path, status, location) in [
        ("/home", 301, "/"),
        ("/home?utm=x", 301, "/?utm=x"),
        ("/blog/2024/hello", 302, "/news/2024/hello"),
        ("/store?id=42&ref=mail", 301, "/products/42"),
    ] {
        let (p, _) = get_with(&mut conn, path, &[]).await;
        assert_eq!(p.status.as_u16(), status, "{path}");
        assert_eq!(h(&p, "location"), Some(location), "{path}");
        assert_eq!(h(&p, "x-frame-options"), Some("DENY"), "{path}");
    }
    // Rewrites: another app's index, a status page.
    let (p, body) = get_with(
        &mut conn,
        "/admin/users/7",
        &[("sec-fetch-mode", "navigate")],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(body, b"<title>admin app</title>\n");
    let (p, body) = get_with(&mut conn, "/closed/item/3", &[]).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert_eq!(body, b"<p>closed</p>\n");
    for f in ["/_headers", "/_redirects"] {
        let (p, _) = get_with(&mut conn, f, &[]).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{f}");
    }
}

#[tokio::test]
async fn alt_svc_names_the_udp_port_on_h1_and_h2_and_is_absent_without_http3() {
    let server = TestServer::start(|_| {}).await;
    let want = format!("h3=\":{}\"; ma=86400", server.addr.port());
    let (p, _) = server.get("/robots.txt").await;
    assert_eq!(h(&p, "alt-svc"), Some(want.as_str()), "HTTP/1.1");
    let (p, _) = server.get("/missing.js").await;
    assert_eq!(h(&p, "alt-svc"), Some(want.as_str()), "on a 404 too");
    let mut h2 = H2::connect(&server).await;
    let (p, _) = h2.request("/", &[]).await;
    assert_eq!(h(&p, "alt-svc"), Some(want.as_str()), "HTTP/2");
    drop(server);

    let off = TestServer::start(|c| c.http3 = false).await;
    assert_eq!(off.h3_addr, None);
    let (p, _) = off.get("/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(h(&p, "alt-svc"), None);
    let mut h2 = H2::connect(&off).await;
    let (p, _) = h2.request("/", &[]).await;
    assert_eq!(h(&p, "alt-svc"), None);
    // Nothing answers QUIC on the TCP port's number.
    let client = H3Client::new(&off.ca);
    let mut cfg = quinn::TransportConfig::default();
    cfg.max_idle_timeout(Some(Duration::from_millis(500).try_into().unwrap()));
    let mut cc = quinn::ClientConfig::new(std::sync::Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(std::sync::Arc::clone(&client.tls))
            .unwrap(),
    ));
    cc.transport_config(std::sync::Arc::new(cfg));
    let attempt = client
        .endpoint
        .connect_with(cc, off.addr, "localhost")
        .unwrap();
    // Refused, given up at its idle timeout, or unanswered after 3 s: never established.
    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(3), attempt).await {
        panic!("a QUIC connection with http3 off");
    }
    drop(off);

    let elsewhere =
        TestServer::start(|c| c.http3_listen = vec!["127.0.0.1:0".parse().unwrap()]).await;
    let h3_addr = elsewhere.h3_addr.unwrap();
    assert_ne!(h3_addr.port(), elsewhere.addr.port());
    let (p, _) = elsewhere.get("/").await;
    assert_eq!(
        h(&p, "alt-svc"),
        Some(format!("h3=\":{}\"; ma=86400", h3_addr.port()).as_str())
    );
    let mut conn = h3(&elsewhere).await;
    assert_eq!(conn.get("/").await.parts.status, StatusCode::OK);
}

#[tokio::test]
async fn a_site_rule_that_sets_alt_svc_is_kept_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    support::copy_tree(&support::www(), &root);
    std::fs::write(root.join("_headers"), "/*\n  Alt-Svc: clear\n").unwrap();
    let server = TestServer::start(move |c| c.root = root).await;
    let (p, _) = server.get("/").await;
    assert_eq!(
        p.headers.get_all("alt-svc").iter().collect::<Vec<_>>(),
        ["clear"]
    );
    let mut conn = h3(&server).await;
    let (p, _) = get_with(&mut conn, "/", &[]).await;
    assert_eq!(h(&p, "alt-svc"), Some("clear"), "the rule's header over h3");
}
