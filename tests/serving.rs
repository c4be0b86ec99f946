//! End-to-end serving over real TLS sockets: curl over HTTP/1.1 and HTTP/2, redeploy without
//! restart, many concurrent mixed h1/h2 requests byte-exact, plaintext on the TLS port.

mod support;

use std::time::{Duration, Instant};

use support::{asset_urls, www_file, TestServer, H1, H2};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn curl_available() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_the_app_over_http1_and_http2_with_the_dev_ca() {
    assert!(curl_available(), "curl is required (installed by .ci/run)");
    let server = TestServer::start(|_| {}).await;
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let url = format!("https://127.0.0.1:{}/", server.addr.port());
        let ca = server.ca.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", flag, "--cacert"])
                .arg(&ca)
                .args(["-w", "\n%{http_code} %{http_version} %{content_type}", &url])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "curl {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, meta) = text.rsplit_once('\n').unwrap();
        assert_eq!(meta, format!("200 {version} text/html; charset=utf-8"));
        assert_eq!(body.as_bytes(), &www_file("index.html")[..], "{flag} body");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_and_a_new_index_are_served_within_two_seconds_without_restart() {
    let server = TestServer::start(|_| {}).await;
    let (_, before) = server.get("/").await;
    assert_eq!(&before[..], &www_file("index.html")[..]);
    let generation = server.site.table().generation();

    let new_index = String::from_utf8(www_file("index.html"))
        .unwrap()
        .replace("rampart demo", "rampart demo v2");
    std::fs::write(server.root.join("index.html"), &new_index).unwrap();
    std::fs::write(
        server.root.join("robots.txt"),
        "User-agent: *\nDisallow: /v2\n",
    )
    .unwrap();
    std::fs::write(
        server.root.join("assets/new.0badcafe.js"),
        "console.log('new');\n",
    )
    .unwrap();
    let changed = Instant::now();
    loop {
        let (_, body) = server.get("/").await;
        if body == new_index.as_bytes() {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "new index.html not served within 2 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (parts, body) = server.get("/robots.txt").await;
    assert_eq!(parts.status, 200);
    assert_eq!(&body[..], b"User-agent: *\nDisallow: /v2\n");
    let (parts, _) = server.get("/assets/new.0badcafe.js").await;
    assert_eq!(parts.status, 200);
    assert!(server.site.table().generation() > generation);

    // A half-copied deploy without index.html keeps the previous table in service.
    std::fs::remove_file(server.root.join("index.html")).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (parts, body) = server.get("/").await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, new_index.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_over_mixed_h1_and_h2_are_byte_exact() {
    let server = std::sync::Arc::new(TestServer::start(|_| {}).await);
    let index = String::from_utf8(www_file("index.html")).unwrap();
    let mut paths = asset_urls(&index);
    paths.extend([
        "/".to_owned(),
        "/favicon.ico".to_owned(),
        "/manifest.webmanifest".to_owned(),
        "/dashboard/settings".to_owned(),
    ]);
    assert!(paths.len() >= 8, "{paths:?}");
    let expected = |p: &str| match p {
        "/" | "/dashboard/settings" => www_file("index.html"),
        other => www_file(other),
    };
    // 10 HTTP/2 connections x 10 streams and 100 HTTP/1.1 connections, all at once.
    let h2s: Vec<H2> = futures_join_all((0..10).map(|_| H2::connect(&server))).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200usize {
        let path = paths[i % paths.len()].clone();
        let want = expected(&path);
        let enc = ["identity", "gzip", "br"][i % 3];
        if i % 2 == 0 {
            let mut h2 = h2s[i % 10].clone();
            tasks.spawn(async move {
                let (parts, body) = h2.request(&path, &[("accept-encoding", enc)]).await;
                check(&path, enc, &parts, &body, &want);
            });
        } else {
            let server = std::sync::Arc::clone(&server);
            tasks.spawn(async move {
                let mut h1 = H1::connect(&server, server.client(&[b"http/1.1"])).await;
                let (parts, body) = h1
                    .request(http::Method::GET, &path, &[("accept-encoding", enc)])
                    .await;
                check(&path, enc, &parts, &body, &want);
            });
        }
    }
    let mut done = 0;
    while let Some(r) = tasks.join_next().await {
        r.expect("request task");
        done += 1;
    }
    assert_eq!(done, 200);
    let m = server.metrics.snapshot();
    assert_eq!(m.requests_h1 + m.requests_h2, 200);
}

fn check(path: &str, enc: &str, parts: &http::response::Parts, body: &[u8], want: &[u8]) {
    assert_eq!(parts.status, 200, "{path}");
    let decoded = match parts
        .headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap())
    {
        None => body.to_vec(),
        Some("gzip") => {
            rampart::app::assets::decompress(rampart::app::encoding::Encoding::Gzip, body).unwrap()
        }
        Some("br") => {
            rampart::app::assets::decompress(rampart::app::encoding::Encoding::Brotli, body)
                .unwrap()
        }
        Some(other) => panic!("unexpected coding {other}"),
    };
    if enc == "identity" {
        assert!(parts.headers.get("content-encoding").is_none());
    }
    assert_eq!(
        parts.headers["content-length"].to_str().unwrap(),
        body.len().to_string(),
        "{path}"
    );
    assert!(decoded == want, "{path} ({enc}) body differs");
}

async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futs {
        out.push(f.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_http_on_the_tls_port_gets_a_redirect_and_tls_clients_are_unaffected() {
    let server = TestServer::start(|_| {}).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /x?y HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(1), tcp.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains(&format!(
            "Location: https://localhost:{}/x?y\r\n",
            server.addr.port()
        )),
        "{reply}"
    );
    let (parts, _) = server.get("/").await;
    assert_eq!(parts.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleartext_port_redirects_to_the_https_port() {
    let server = TestServer::start(|c| c.http_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let mut tcp = tokio::net::TcpStream::connect(server.http_addr.unwrap())
        .await
        .unwrap();
    tcp.write_all(b"GET /dashboard?tab=2 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(1), tcp.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 308"), "{reply}");
    assert!(
        reply.contains(&format!(
            "Location: https://example.test:{}/dashboard?tab=2\r\n",
            server.addr.port()
        )),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_request_sent_one_byte_per_100ms_still_gets_its_redirect_while_tls_clients_are_served(
) {
    let server = std::sync::Arc::new(TestServer::start(|_| {}).await);
    let request = b"GET /x?y HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let slow = {
        let addr = server.addr;
        tokio::spawn(async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            for b in request {
                tcp.write_all(&[*b]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let sent = Instant::now();
            let mut reply = String::new();
            tokio::time::timeout(Duration::from_secs(1), tcp.read_to_string(&mut reply))
                .await
                .unwrap()
                .unwrap();
            (reply, sent.elapsed())
        })
    };
    // TLS clients are served normally while the slow plaintext client trickles in.
    let mut served = 0;
    while !slow.is_finished() {
        assert_eq!(server.get("/").await.0.status, 200);
        served += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (reply, after_last_byte) = slow.await.unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains(&format!(
            "Location: https://localhost:{}/x?y\r\n",
            server.addr.port()
        )),
        "{reply}"
    );
    assert!(after_last_byte < Duration::from_secs(1));
    assert!(served >= 10, "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_mode_answers_400_explaining_that_the_port_speaks_https() {
    let server = TestServer::start(|c| c.plaintext = rampart::config::PlaintextMode::Reject).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /x?y HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(1), tcp.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    assert!(!reply.contains("Location:"), "{reply}");
    assert!(
        reply.ends_with(&format!(
            "This port speaks HTTPS. Use https://localhost:{}/x?y\n",
            server.addr.port()
        )),
        "{reply}"
    );
    assert_eq!(server.get("/").await.0.status, 200);
    let m = server.metrics.snapshot();
    assert_eq!(
        m.failures(rampart::telemetry::FailureClass::PlaintextHttp),
        1
    );
}
