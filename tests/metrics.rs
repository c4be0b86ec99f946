//! The operator's port and the access log, end to end over the real binary: /metrics after
//! a known mix of traffic (exact counters), /healthz, /readyz flipping to 503 during the
//! drain while the TLS port still accepts, and access-log lines in both log formats.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::binary::{field, Rampart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// GET over a new cleartext HTTP/1.1 connection to the metrics port.
async fn scrape(addr: SocketAddr, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), send.send_request(req))
        .await
        .expect("metrics port answers in time")
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// `name{labels}` -> value, from the Prometheus text format.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

/// The metrics port, from its log line (which may come after the TLS port's `listening`
/// line the harness waits for).
async fn metrics_addr(server: &Rampart) -> SocketAddr {
    let line = server
        .wait_line(
            "metrics, /healthz and /readyz listening",
            Duration::from_secs(5),
        )
        .await;
    field(&line, "addr").unwrap().parse().unwrap()
}

/// One request over an HTTP/1.1 or HTTP/2 connection; returns status and body length.
async fn request(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    h2: bool,
    port: u16,
    paths: &[&str],
) -> Vec<(u16, usize)> {
    let mut out = Vec::new();
    if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        for p in paths {
            let req = http::Request::get(format!("https://localhost:{port}{p}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            send.ready().await.unwrap();
            let res = send.send_request(req).await.unwrap();
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            out.push((status, body.len()));
        }
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        for p in paths {
            let req = http::Request::get(*p)
                .header("host", format!("localhost:{port}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            send.ready().await.unwrap();
            let res = send.send_request(req).await.unwrap();
            let status = res.status().as_u16();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            out.push((status, body.len()));
        }
    }
    out
}

/// A client config with its own session store (rustls resumes only with the same
/// certificate verifier, so ALPN variants are clones of one config: see [`with_alpn`]).
fn client(
    server: &Rampart,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    (*support::client_config(&server.ca(), &[], Some(versions))).clone()
}

fn with_alpn(base: &rustls::ClientConfig, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut config = base.clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

async fn connect(
    server: &Rampart,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    tokio::time::timeout(
        Duration::from_secs(5),
        support::tls_connect(server.addr, config, "localhost"),
    )
    .await
    .expect("handshake in time")
    .expect("tls connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_mix_of_traffic_exactly() {
    let server = Rampart::start(&["--metrics-listen", "127.0.0.1:0", "--access-log"]);
    let maddr = metrics_addr(&server).await;
    let port = server.addr.port();
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let c13 = client(&server, tls13);
    let c12 = client(&server, tls12);

    // Before any traffic: zeros, and the gauges read from the server's state.
    let (status, before) = scrape(maddr, "/metrics").await;
    assert_eq!(status, 200);
    let m = samples(&before);
    assert_eq!(m["rampart_connections_total"], 0.0, "{before}");
    assert_eq!(m["rampart_assets_generation"], 1.0);
    assert!(m["rampart_assets_files"] >= 5.0, "{before}");
    // One sample per name of the development certificate.
    let not_after = m["rampart_certificate_not_after_seconds{name=\"localhost\"}"];
    assert_eq!(
        m["rampart_certificate_not_after_seconds{name=\"127.0.0.1\"}"],
        not_after
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(not_after > now + 86_400.0, "{not_after} vs {now}");
    assert_eq!(m["rampart_ticket_key_generation"], 1.0, "{before}");

    let mut bytes = 0;
    // 1: full TLS 1.3, HTTP/1.1: 200 and 404.
    let tls = connect(&server, with_alpn(&c13, b"http/1.1")).await;
    let r = request(tls, false, port, &["/", "/missing.png"]).await;
    assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [200, 404]);
    bytes += r.iter().map(|x| x.1).sum::<usize>();
    // 2: resumed TLS 1.3 (the ticket from 1), HTTP/2: 200.
    let tls = connect(&server, with_alpn(&c13, b"h2")).await;
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    let r = request(tls, true, port, &["/"]).await;
    assert_eq!(r[0].0, 200);
    bytes += r[0].1;
    // 3: full TLS 1.2, HTTP/1.1: 200.
    let tls = connect(&server, with_alpn(&c12, b"http/1.1")).await;
    let r = request(tls, false, port, &["/"]).await;
    assert_eq!(r[0].0, 200);
    bytes += r[0].1;
    // 4: plaintext HTTP on the TLS port: answered with a redirect.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(answer.starts_with(b"HTTP/1.1 308"), "{answer:?}");
    // 5: a client that does not trust the certificate: it sends an alert.
    let untrusting = {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        c.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(c)
    };
    assert!(support::tls_connect(server.addr, untrusting, "localhost")
        .await
        .is_err());
    // 6: bytes that are neither TLS nor HTTP.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(&[0u8, 1, 2, 3, 4, 5, 6, 7]).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut Vec::new())).await;

    // The failure counters are bumped by the server after the client saw the outcome.
    let start = Instant::now();
    let m = loop {
        let (_, text) = scrape(maddr, "/metrics").await;
        let m = samples(&text);
        let failures = m["rampart_handshake_failures_total{reason=\"alert_received\"}"]
            + m["rampart_handshake_failures_total{reason=\"not_tls\"}"];
        if (failures >= 2.0 && m["rampart_connections_open"] == 0.0)
            || start.elapsed() > Duration::from_secs(5)
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let expect = [
        ("rampart_connections_total", 6.0),
        ("rampart_connections_open", 0.0),
        ("rampart_handshakes_total{kind=\"full\"}", 2.0),
        ("rampart_handshakes_total{kind=\"full_hrr\"}", 0.0),
        ("rampart_handshakes_total{kind=\"resumed\"}", 1.0),
        ("rampart_handshakes_by_version_total{version=\"1.2\"}", 1.0),
        ("rampart_handshakes_by_version_total{version=\"1.3\"}", 2.0),
        (
            "rampart_handshake_failures_total{reason=\"alert_received\"}",
            1.0,
        ),
        ("rampart_handshake_failures_total{reason=\"not_tls\"}", 1.0),
        (
            "rampart_handshake_failures_total{reason=\"plaintext_http\"}",
            1.0,
        ),
        (
            "rampart_handshake_failures_total{reason=\"alert_sent\"}",
            0.0,
        ),
        ("rampart_handshake_failures_total{reason=\"timeout\"}", 0.0),
        ("rampart_plaintext_requests_total", 1.0),
        ("rampart_requests_total{protocol=\"h1\"}", 3.0),
        ("rampart_requests_total{protocol=\"h2\"}", 1.0),
        (
            "rampart_responses_total{protocol=\"h1\",class=\"2xx\"}",
            2.0,
        ),
        (
            "rampart_responses_total{protocol=\"h1\",class=\"4xx\"}",
            1.0,
        ),
        (
            "rampart_responses_total{protocol=\"h2\",class=\"2xx\"}",
            1.0,
        ),
        (
            "rampart_responses_total{protocol=\"h2\",class=\"4xx\"}",
            0.0,
        ),
        (
            "rampart_responses_total{protocol=\"h1\",class=\"5xx\"}",
            0.0,
        ),
        ("rampart_response_bytes_total", bytes as f64),
        ("rampart_response_seconds_count", 4.0),
        ("rampart_response_seconds_bucket{le=\"+Inf\"}", 4.0),
        ("rampart_session_tls_errors_total", 0.0),
        ("rampart_connection_panics_total", 0.0),
        ("rampart_draining", 0.0),
    ];
    for (name, want) in expect {
        assert_eq!(m.get(name), Some(&want), "{name}\n{m:#?}");
    }
    // The access log: one line per response, with the connection's facts.
    let lines = server
        .wait_lines(" access ", 4, Duration::from_secs(5))
        .await;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let first = &lines[0];
    for (k, v) in [
        ("method", "GET"),
        ("path", "/"),
        ("status", "200"),
        ("protocol", "HTTP/1.1"),
        ("tls", "1.3"),
        ("resumed", "false"),
        ("sni", "localhost"),
        ("complete", "true"),
    ] {
        assert_eq!(field(first, k), Some(v), "{k} in {first}");
    }
    assert!(
        field(first, "peer").unwrap().starts_with("127.0.0.1:"),
        "{first}"
    );
    assert!(lines[1].contains("status=404"), "{}", lines[1]);
    assert!(
        lines[2].contains("protocol=HTTP/2.0") && lines[2].contains("resumed=true"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("tls=\"1.2\"") || field(&lines[3], "tls") == Some("1.2"));
    let total: usize = lines
        .iter()
        .map(|l| field(l, "bytes").unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_at_shutdown_while_the_tls_port_still_accepts() {
    let mut server = Rampart::start(&["--metrics-listen", "127.0.0.1:0", "--drain-delay", "3s"]);
    let maddr = metrics_addr(&server).await;
    assert_eq!(scrape(maddr, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(scrape(maddr, "/readyz").await, (200, "ready\n".into()));
    assert_eq!(scrape(maddr, "/nope").await.0, 404);

    server.signal("-TERM");
    let start = Instant::now();
    loop {
        let (status, _) = scrape(maddr, "/readyz").await;
        if status == 503 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "readyz still {status}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Not ready, yet the listeners are open: a new client is still served.
    let tls = server.connect(&[b"http/1.1"]).await;
    let r = request(tls, false, server.addr.port(), &["/"]).await;
    assert_eq!(r[0].0, 200);
    assert_eq!(scrape(maddr, "/healthz").await.0, 200);
    let (_, text) = scrape(maddr, "/metrics").await;
    assert_eq!(samples(&text)["rampart_draining"], 1.0);
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}\n{}", server.log());
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "the TLS port is closed after the exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_writes_one_object_per_line_with_access_fields() {
    let server = Rampart::start(&["--access-log", "--log-format", "json"]);
    let tls = server.connect(&[b"http/1.1"]).await;
    let r = request(tls, false, server.addr.port(), &["/"]).await;
    assert_eq!(r[0].0, 200);
    let start = Instant::now();
    let line = loop {
        if let Some(l) = server.find_line("\"message\":\"access\"") {
            break l;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], r[0].1);
    assert_eq!(v["tls"], "1.3");
    assert_eq!(v["sni"], "localhost");
    assert!(v["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(v["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(v["timestamp"].is_string());
    // Every line is JSON, not just the access lines.
    for l in server.log().lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}
