//! The real `rampart` binary over HTTP/3 (h3 over quinn): its access log and Prometheus
//! families for HTTP/3, `--no-http3`, `--http3-listen`, and `rampart check` with the
//! HTTP/3 flags. Loopback only.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use support::binary::{field, Rampart};
use support::h3client::H3Client;
use support::H1;

/// How long a test waits for something it expects.
const WAIT: Duration = Duration::from_secs(5);

/// GET over a new cleartext HTTP/1.1 connection to the metrics port; the body.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use http_body_util::{BodyExt, Empty};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/metrics")
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of the sample `name{labels}` in a Prometheus text body.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_h3_access_lines_and_exports_h3_metric_families() {
    let server = Rampart::start(&["--access-log", "--metrics-listen", "127.0.0.1:0"]);
    let client = H3Client::new(&server.ca());
    let mut conn = client.connect(server.addr).await.unwrap();
    assert_eq!(conn.get("/robots.txt").await.parts.status, 200);
    assert_eq!(conn.get("/nope.js").await.parts.status, 404);
    let lines = server.wait_lines(" access ", 2, WAIT).await;
    let first = &lines[0];
    for (k, v) in [
        ("method", "GET"),
        ("path", "/robots.txt"),
        ("status", "200"),
        ("protocol", "h3"),
        ("tls", "1.3"),
        ("sni", "localhost"),
        ("complete", "true"),
    ] {
        assert_eq!(field(first, k), Some(v), "{k} in {first}");
    }
    assert_eq!(field(first, "resumed"), None, "{first}");
    assert!(field(first, "peer").unwrap().starts_with("127.0.0.1:"));
    assert_eq!(
        field(first, "bytes"),
        Some(support::www_file("robots.txt").len().to_string().as_str())
    );
    assert!(lines[1].contains("status=404") && lines[1].contains("protocol=h3"));

    let line = server
        .wait_line("metrics, /healthz and /readyz listening", WAIT)
        .await;
    let text = scrape(field(&line, "addr").unwrap().parse().unwrap()).await;
    for (name, want) in [
        ("rampart_requests_total{protocol=\"h3\"}", 2.0),
        ("rampart_requests_total{protocol=\"h2\"}", 0.0),
        (
            "rampart_responses_total{protocol=\"h3\",class=\"2xx\"}",
            1.0,
        ),
        (
            "rampart_responses_total{protocol=\"h3\",class=\"4xx\"}",
            1.0,
        ),
        ("rampart_http3_handshakes_total{kind=\"complete\"}", 1.0),
        ("rampart_http3_handshakes_total{kind=\"ticket\"}", 0.0),
        ("rampart_http3_connections_total{outcome=\"accepted\"}", 1.0),
        ("rampart_http3_connections_total{outcome=\"retry\"}", 0.0),
        ("rampart_http3_connections_total{outcome=\"refused\"}", 0.0),
    ] {
        assert_eq!(sample(&text, name), Some(want), "{name}\n{text}");
    }
}

// ---- the binary's flags ----------------------------------------------------------------

/// A UDP port that was free a moment ago on loopback.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn h1_get(server: &Rampart) -> http::response::Parts {
    let tls = server.connect(&[b"http/1.1"]).await;
    let mut h1 = H1::over(tls, server.addr).await;
    h1.request(Method::GET, "/", &[]).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_h3_on_its_port_on_http3_listen_and_not_with_no_http3() {
    let server = Rampart::start(&[]);
    let p = h1_get(&server).await;
    assert_eq!(
        p.headers["alt-svc"],
        format!("h3=\":{}\"; ma=86400", server.addr.port()).as_str()
    );
    let client = H3Client::new(&server.ca());
    let mut conn = client.connect(server.addr).await.unwrap();
    assert_eq!(conn.get("/").await.parts.status, 200);
    drop(server);

    let off = Rampart::start(&["--no-http3"]);
    let p = h1_get(&off).await;
    assert_eq!(p.status, 200);
    assert!(p.headers.get("alt-svc").is_none(), "{:?}", p.headers);
    drop(off);

    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let elsewhere = Rampart::start(&["--http3-listen", &listen]);
    let p = h1_get(&elsewhere).await;
    assert_eq!(
        p.headers["alt-svc"],
        format!("h3=\":{port}\"; ma=86400").as_str()
    );
    let client = H3Client::new(&elsewhere.ca());
    let mut conn = client.connect(listen.parse().unwrap()).await.unwrap();
    let a = conn.get("/robots.txt").await;
    assert_eq!(a.parts.status, 200);
    assert_eq!(&a.body[..], &support::www_file("robots.txt")[..]);
}

#[test]
fn rampart_check_passes_with_the_http3_flags_and_refuses_them_with_no_http3() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::www(), &dir.path().join("www"));
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["check", "--root", "www", "--listen", "127.0.0.1:0"])
            .arg("--dev-cert-dir")
            .arg(dir.path().join("certs"))
            .args(extra)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&["--http3-listen", "127.0.0.1:0", "--http3-0rtt"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("0 errors"), "{text}");
    // HTTP/3 flags that would do nothing are refused, as `serve` refuses them.
    for flag in [&["--http3-0rtt"][..], &["--http3-listen", "127.0.0.1:0"]] {
        let (code, text) = run(&[&["--no-http3"][..], flag].concat());
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains(&format!("error  {}", flag[0]))
                && text.contains("has no effect with --no-http3"),
            "{text}"
        );
    }
}
