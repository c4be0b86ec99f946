//! HTTP limits and connection deadlines over real TLS sockets: 431/414, the handshake,
//! header and idle deadlines (each idle/established close carries close_notify), and the
//! graceful drain on shutdown.

mod support;

use std::time::{Duration, Instant};

use support::{TestServer, H2};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads until EOF; `Ok` only for a clean TLS close (close_notify received).
async fn read_to_clean_eof<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

/// Sends `request` as written on a new HTTP/1.1 connection; the first read of the answer.
async fn first_response(server: &TestServer, request: &str) -> String {
    let mut tls = server.connect(server.client(&[b"http/1.1"])).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_too_many_headers_get_431_and_a_long_target_gets_414() {
    let server = TestServer::start(|c| {
        c.max_header_size = 8192;
        c.max_headers = 20;
        c.max_uri_length = 1024;
    })
    .await;
    let big = "x".repeat(10_000);
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("x-h{i}"), "v".to_owned()))
        .collect();
    let cases: Vec<(String, u16)> = vec![
        (
            format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n"),
            431,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
                many.iter()
                    .map(|(k, v)| format!("{k}: {v}\r\n"))
                    .collect::<String>()
            ),
            431,
        ),
        (
            format!(
                "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                "a".repeat(2000)
            ),
            414,
        ),
    ];
    for (request, status) in cases {
        let head = first_response(&server, &request).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "expected {status}, got {head}"
        );
    }
    // The server is unaffected.
    assert_eq!(server.get("/").await.0.status, 200);
}

/// The default limit (100, hyper's own default, so rampart does not set it): 100 headers
/// pass, 101 get 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_header_count_limit_is_100() {
    let server = TestServer::start(|c| assert_eq!(c.max_headers, 100)).await;
    for (count, status) in [(100, 200), (101, 431)] {
        // Host is one of them.
        let extra: String = (1..count).map(|i| format!("x-h{i}: v\r\n")).collect();
        let request = format!("GET / HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
        let head = first_response(&server, &request).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{count} headers: expected {status}, got {head}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_is_closed_at_the_handshake_deadline() {
    let server = TestServer::start(|c| c.handshake_timeout = Duration::from_millis(500)).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "no bytes (no TLS alert) for a silent client");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
    let m = server.metrics.snapshot();
    assert_eq!(m.failures(rampart::telemetry::FailureClass::Timeout), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_request_head_is_closed_at_the_header_deadline_with_close_notify() {
    let server = TestServer::start(|c| c.header_timeout = Duration::from_millis(600)).await;
    let mut tls = server.connect(server.client(&[b"http/1.1"])).await;
    tls.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let start = Instant::now();
    // Trickle a header byte every 100 ms: activity, but the head never completes.
    let (mut rd, mut wr) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = tokio::time::timeout(Duration::from_secs(3), read_to_clean_eof(&mut rd))
        .await
        .expect("closed in time");
    let waited = start.elapsed();
    trickle.abort();
    assert!(out.is_ok(), "clean TLS close expected, got {out:?}");
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_millis(1800),
        "{waited:?}"
    );
    assert_eq!(
        server.metrics.snapshot().connections_closed_header_timeout,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_deadline_with_close_notify() {
    let server = TestServer::start(|c| c.idle_timeout = Duration::from_millis(700)).await;
    let mut tls = server.connect(server.client(&[b"http/1.1"])).await;
    tls.write_all(b"GET /robots.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let start = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(3), read_to_clean_eof(&mut tls))
        .await
        .expect("closed in time");
    assert!(
        rest.is_ok(),
        "a rustls client must read a clean EOF (close_notify), got {rest:?}"
    );
    assert!(rest.unwrap().is_empty());
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_millis(2000),
        "{waited:?}"
    );
    let m = server.metrics.snapshot();
    assert_eq!(
        (m.connections_closed_idle, m.connections_closed_stalled),
        (1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_gets_goaway_and_is_closed_at_the_idle_deadline() {
    let server = TestServer::start(|c| c.idle_timeout = Duration::from_millis(700)).await;
    let mut h2 = H2::connect(&server).await;
    assert_eq!(h2.request("/", &[]).await.0.status, 200);
    let start = Instant::now();
    while !h2.send.is_closed() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "h2 connection still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    let m = server.metrics.snapshot();
    assert_eq!(
        (m.connections_closed_idle, m.connections_closed_stalled),
        (1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_h1_and_h2_connections_with_close_notify_and_refuses_new_ones() {
    let server = TestServer::start(|c| c.shutdown_timeout = Duration::from_secs(5)).await;
    let addr = server.addr;
    let mut h1 = server.connect(server.client(&[b"http/1.1"])).await;
    h1.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 8192];
    let _ = h1.read(&mut buf).await.unwrap();
    let mut h2 = H2::connect(&server).await;
    assert_eq!(h2.request("/", &[]).await.0.status, 200);

    let start = Instant::now();
    let summary = server.shutdown().await;
    assert!(!summary.forced, "{summary:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let rest = tokio::time::timeout(Duration::from_secs(2), read_to_clean_eof(&mut h1))
        .await
        .unwrap();
    assert!(rest.is_ok(), "h1 must end with close_notify: {rest:?}");
    assert!(
        h2.send.is_closed() || h2.send.ready().await.is_err(),
        "h2 connection must be closed after GOAWAY"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "new connections are refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_clients_wait_in_the_backlog_until_a_slot_frees() {
    let server = TestServer::start(|c| c.max_connections = 2).await;
    let a = server.connect(server.client(&[b"http/1.1"])).await;
    let _b = server.connect(server.client(&[b"http/1.1"])).await;
    // The third TCP connect succeeds (kernel backlog) but is not served while both slots are taken.
    let waiting = support::tls_connect(server.addr, server.client(&[b"http/1.1"]), "localhost");
    let mut waiting = Box::pin(waiting);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut waiting)
            .await
            .is_err(),
        "a third connection must wait while two are open"
    );
    drop(a);
    let third = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot frees")
        .unwrap();
    let mut h1 = support::H1::over(third, server.addr).await;
    assert_eq!(h1.request(http::Method::GET, "/", &[]).await.0.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_keep_alive_connection_serves_the_next_requests_and_keeps_its_deadlines() {
    // After 100 ms idle an HTTP/1.1 connection gives back its HTTP buffers and waits on the
    // TLS stream alone; what the client sends next must be served exactly as before.
    let server = TestServer::start(|c| c.header_timeout = Duration::from_millis(800)).await;
    let mut tls = server.connect(server.client(&[b"http/1.1"])).await;
    let robots = support::www_file("robots.txt");
    let get = b"GET /robots.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";
    async fn read_response(
        tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        body: &[u8],
    ) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(body) {
            let n = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf))
                .await
                .expect("response in time")
                .unwrap();
            assert!(n > 0, "closed early after {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }
    // 1: a request, then idle long enough to park, then a second one on the same connection.
    tls.write_all(get).await.unwrap();
    assert!(read_response(&mut tls, &robots)
        .await
        .starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    tls.write_all(get).await.unwrap();
    assert!(read_response(&mut tls, &robots)
        .await
        .starts_with("HTTP/1.1 200"));
    // 2: parked again, then two pipelined requests in one write: both answered, in order.
    tokio::time::sleep(Duration::from_millis(400)).await;
    tls.write_all(&[&get[..], &get[..]].concat()).await.unwrap();
    let both = read_response(&mut tls, &robots).await;
    let both = if both.matches("HTTP/1.1 200").count() < 2 {
        both + &read_response(&mut tls, &robots).await
    } else {
        both
    };
    assert_eq!(both.matches("HTTP/1.1 200").count(), 2, "{both}");
    // 3: parked, then one byte of a head and silence: the header deadline still applies,
    // counted from that byte, and the close is clean.
    tokio::time::sleep(Duration::from_millis(400)).await;
    tls.write_all(b"G").await.unwrap();
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(4), read_to_clean_eof(&mut tls))
        .await
        .expect("closed in time");
    assert!(out.is_ok(), "clean TLS close expected, got {out:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
    let m = server.metrics.snapshot();
    assert_eq!(m.requests_h1, 4);
    assert_eq!(m.connections_closed_header_timeout, 1);
    // Parked after each of the three pauses (and never between back-to-back requests).
    assert_eq!(m.connections_parked, 3, "{m:?}");
}
