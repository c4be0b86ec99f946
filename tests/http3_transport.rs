//! HTTP/3's transport against the real server with a real HTTP/3 client (h3 over quinn):
//! the field-section limit, the connection cap, the idle deadline, stateless retry,
//! session resumption across TCP and QUIC, 0-RTT, graceful shutdown mid-download and the
//! metrics of HTTP/3. The binary's access log, Prometheus families and HTTP/3 flags are in
//! http3_binary.rs. Loopback only.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode};
use support::h3client::{tls_config, H3Client, H3Conn, TicketStore};
use support::h3raw::{headers_frame, status_of};
use support::{random_bytes, TestServer, H2};

/// How long a test waits for something it expects.
const WAIT: Duration = Duration::from_secs(5);

// ---- the field-section limit --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_section_over_max_header_size_gets_431_and_the_connection_stays_usable() {
    let server = TestServer::start(|c| c.max_header_size = 8 * 1024).await;
    let client = H3Client::new(&server.ca);
    let mut conn = client.connect(server.h3_addr.unwrap()).await.unwrap();
    assert_eq!(conn.get("/").await.parts.status, StatusCode::OK);
    // A well-behaved client knows the limit from the server's SETTINGS and does not send.
    let big = "x".repeat(16 * 1024);
    // (Unless it sends before the SETTINGS arrive: then the server answers 431.)
    match conn.request(Method::GET, "/", &[("x-big", &big)]).await {
        Err(e) => assert!(e.contains("8192"), "the advertised limit: {e}"),
        Ok(a) => assert_eq!(a.parts.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
    }
    // One that ignores it gets a 431, and the connection serves on.
    let authority = format!("localhost:{}", conn.port);
    let (mut send, mut recv) = conn.quic.open_bi().await.unwrap();
    send.write_all(&headers_frame(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", &authority),
        (":path", "/"),
        ("x-big", &big),
    ]))
    .await
    .unwrap();
    send.finish().unwrap();
    let answer = tokio::time::timeout(WAIT, recv.read_to_end(64 * 1024))
        .await
        .expect("an answer in time");
    match answer {
        Ok(bytes) => assert_eq!(status_of(&bytes), Some(431), "{bytes:?}"),
        Err(e) => panic!("stream reset instead of a 431: {e}"),
    }
    // Just under the limit is served.
    let fits = "y".repeat(7 * 1024);
    let a = conn
        .request(Method::GET, "/robots.txt", &[("x-fits", &fits)])
        .await
        .unwrap();
    assert_eq!(a.parts.status, StatusCode::OK);
    assert_eq!(&a.body[..], &support::www_file("robots.txt")[..]);
    assert_eq!(conn.get("/").await.parts.status, StatusCode::OK);
    assert_eq!(server.metrics.snapshot().h3_handshakes, 1, "one connection");
}

/// Sends `fields` as a request on a new stream of `conn`, by hand; the raw answer or how
/// the stream was reset.
async fn raw_request(
    conn: &H3Conn,
    fields: &[(&str, &str)],
) -> Result<Vec<u8>, quinn::ReadToEndError> {
    let (mut send, mut recv) = conn.quic.open_bi().await.unwrap();
    send.write_all(&headers_frame(fields)).await.unwrap();
    send.finish().unwrap();
    tokio::time::timeout(WAIT, recv.read_to_end(64 * 1024))
        .await
        .expect("an answer or a reset in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_authority_or_host_or_with_userinfo_is_reset_and_host_alone_serves() {
    const H3_MESSAGE_ERROR: u32 = 0x10e;
    let server = TestServer::start(|_| {}).await;
    let client = H3Client::new(&server.ca);
    let conn = client.connect(server.h3_addr.unwrap()).await.unwrap();
    let bare = [(":method", "GET"), (":scheme", "https"), (":path", "/")];
    let with = |extra: (&'static str, &'static str)| {
        let mut f = bare.to_vec();
        f.push(extra);
        f
    };
    for (what, fields) in [
        ("no :authority, no host", bare.to_vec()),
        ("userinfo", with((":authority", "user@localhost"))),
    ] {
        match raw_request(&conn, &fields).await {
            Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
                assert_eq!(code, H3_MESSAGE_ERROR.into(), "{what}");
            }
            other => panic!("{what}: not reset: {other:?}"),
        }
    }
    // `host` alone names the server; the connection went on.
    let answer = raw_request(&conn, &with(("host", "localhost")))
        .await
        .unwrap();
    assert_eq!(status_of(&answer), Some(200));
    let m = server.metrics.snapshot();
    // h3 itself resets a request with neither (malformed, RFC 9114 4.3.1) before rampart
    // sees it: unlike over HTTP/2 it is not in rampart_requests_rejected_total.
    assert_eq!(m.requests_h3, 2);
    assert_eq!(m.rejected(rampart::telemetry::Rejection::MissingHost), 0);
    assert_eq!(m.rejected(rampart::telemetry::Rejection::InvalidHost), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_max_connections_a_second_quic_connection_is_refused_while_the_first_serves() {
    let server = TestServer::start(|c| c.max_connections = 1).await;
    let addr = server.h3_addr.unwrap();
    let client = H3Client::new(&server.ca);
    let mut first = client.connect(addr).await.unwrap();
    assert_eq!(first.get("/").await.parts.status, StatusCode::OK);
    let second = client.endpoint.connect(addr, "localhost").unwrap();
    match tokio::time::timeout(WAIT, second)
        .await
        .expect("refused in time")
    {
        Err(quinn::ConnectionError::ConnectionClosed(c)) => assert_eq!(
            c.error_code,
            quinn::TransportErrorCode::CONNECTION_REFUSED,
            "{c}"
        ),
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(_) => panic!("a second connection past --max-connections 1"),
    }
    let a = first.get("/robots.txt").await;
    assert_eq!(a.parts.status, StatusCode::OK, "the first still serves");
    let m = server.metrics.snapshot();
    assert_eq!((m.h3_accepted, m.h3_refused), (1, 1));
    // Once the first closes, its slot is free again.
    first.quic.close(0x100u32.into(), b"");
    drop(first);
    let start = Instant::now();
    let mut third = loop {
        match client.connect(addr).await {
            Ok(c) => break c,
            Err(e) => assert!(start.elapsed() < WAIT, "slot never freed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(third.get("/").await.parts.status, StatusCode::OK);
}

/// The TCP accept loop waits for a free slot only after accept() (so that an idle loop
/// holds none); a QUIC client can take the last slot in between. A TCP client accepted
/// then is this process's to serve even if shutdown begins before a slot frees: a restart
/// behind SO_REUSEPORT must not answer its ClientHello with a FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_accepted_while_quic_holds_the_last_slot_is_served_through_shutdown() {
    let server = TestServer::start(|c| c.max_connections = 1).await;
    let addr = server.h3_addr.unwrap();
    let client = H3Client::new(&server.ca);
    // The accept loop is already waiting in accept() with the slot free; QUIC takes it.
    let mut quic = client.connect(addr).await.unwrap();
    assert_eq!(quic.get("/").await.parts.status, StatusCode::OK);
    let (tcp_addr, config) = (server.addr, server.client(&[b"http/1.1"]));
    let tcp = tokio::spawn(async move {
        let tls = support::tls_connect(tcp_addr, config, "localhost").await?;
        let mut h1 = support::H1::over(tls, tcp_addr).await;
        Ok::<_, std::io::Error>(h1.request(Method::GET, "/", &[]).await)
    });
    // Accepted by the kernel and by the loop, which now waits for QUIC's slot.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!tcp.is_finished(), "the TCP client waits for the slot");
    let metrics = Arc::clone(&server.metrics);
    let shutdown = tokio::spawn(server.shutdown());
    let (parts, body) = tokio::time::timeout(Duration::from_secs(10), tcp)
        .await
        .expect("answered in time")
        .unwrap()
        .expect("the handshake completes: the accepted client is not dropped");
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body[..], support::www_file("index.html")[..]);
    tokio::time::timeout(WAIT, &mut quic.closed)
        .await
        .expect("QUIC closed by the drain")
        .unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(20), shutdown)
        .await
        .expect("shutdown completes")
        .unwrap();
    // Both connections ended by themselves within the drain, nothing forced.
    assert!(!summary.forced, "{summary:?}");
    let m = metrics.snapshot();
    assert_eq!((m.h3_accepted, m.handshakes_full), (1, 1), "{m:?}");
    assert_eq!(m.connections_open, 0);
    assert_eq!(m.connection_panics, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h3_connection_is_closed_gracefully_at_the_idle_deadline() {
    let server = TestServer::start(|c| c.idle_timeout = Duration::from_secs(1)).await;
    let client = H3Client::new(&server.ca);
    let mut conn = client.connect(server.h3_addr.unwrap()).await.unwrap();
    assert_eq!(conn.get("/").await.parts.status, StatusCode::OK);
    let idle_from = Instant::now();
    let end = tokio::time::timeout(WAIT, &mut conn.closed)
        .await
        .expect("closed by the server in time")
        .unwrap();
    let after = idle_from.elapsed();
    assert!(after >= Duration::from_millis(900), "{after:?}");
    assert!(
        end.contains("H3_NO_ERROR") || end.contains("No error"),
        "a graceful close, not a silent timeout: {end}"
    );
    let reason = conn.quic.close_reason().expect("closed");
    assert!(
        matches!(reason, quinn::ConnectionError::ApplicationClosed(ref c) if c.error_code == 0x100u32.into()),
        "{reason}"
    );
    let m = server.metrics.snapshot();
    assert_eq!(m.connections_closed_idle, 1);
    // A busy connection is not idle: a request every 400 ms for 2 s keeps it open.
    let mut busy = client.connect(server.h3_addr.unwrap()).await.unwrap();
    for _ in 0..5 {
        assert_eq!(busy.get("/robots.txt").await.parts.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(busy.quic.close_reason().is_none(), "still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_retry_above_zero_every_new_client_is_retried_and_still_served() {
    let server = TestServer::start(|c| c.http3_retry_above = 0).await;
    let client = H3Client::new(&server.ca);
    for i in 0..3u64 {
        let mut conn = client.connect(server.h3_addr.unwrap()).await.unwrap();
        let a = conn.get("/robots.txt").await;
        assert_eq!(a.parts.status, StatusCode::OK);
        let m = server.metrics.snapshot();
        assert_eq!(
            (m.h3_retries, m.h3_accepted),
            (i + 1, i + 1),
            "one Retry each"
        );
    }
    assert_eq!(server.metrics.snapshot().requests_h3, 3);
}

// ---- resumption and 0-RTT -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_tcp_resumes_a_quic_handshake_and_quic_tickets_resume_quic() {
    let server = TestServer::start(|_| {}).await;
    let (store, resumption) = TicketStore::new();
    // Over TCP (HTTP/2), with the shared store: a full handshake that leaves tickets.
    // One rustls configuration for both transports: rustls resumes a ticket only under
    // the verifier (and client-certificate resolver) it was obtained with, the same Arcs.
    let (tcp_config, verified) = tls_config(&server.ca, &[b"h2"], Some(resumption));
    let quic_config = tcp_config.clone();
    let tls = support::tls_connect(server.addr, Arc::new(tcp_config), "localhost")
        .await
        .unwrap();
    let mut h2 = H2::over(tls, server.addr).await;
    assert_eq!(h2.request("/", &[]).await.0.status, StatusCode::OK);
    assert_eq!(verified.load(Ordering::SeqCst), 1);
    store.wait(1).await;
    drop(h2);
    let m = server.metrics.snapshot();
    assert_eq!((m.handshakes_full, m.h3_handshakes_resumed), (1, 0));

    // QUIC with the same store: the TCP ticket resumes it, no certificate is verified.
    let client = H3Client::from_config(quic_config, Arc::clone(&verified));
    let mut conn = client.connect(server.h3_addr.unwrap()).await.unwrap();
    assert_eq!(conn.get("/").await.parts.status, StatusCode::OK);
    assert_eq!(
        verified.load(Ordering::SeqCst),
        1,
        "QUIC resumed with the ticket from TCP: no second verification"
    );
    let m = server.metrics.snapshot();
    assert_eq!((m.h3_handshakes, m.h3_handshakes_resumed), (1, 1));

    // QUIC to QUIC: a client with its own store, one full handshake, then resumptions.
    let (tickets, resumption) = TicketStore::new();
    let fresh = H3Client::with_resumption(&server.ca, Some(resumption));
    for round in 0..3 {
        let mut conn = fresh.connect(server.h3_addr.unwrap()).await.unwrap();
        assert_eq!(conn.get("/robots.txt").await.parts.status, StatusCode::OK);
        assert_eq!(
            fresh.verifications.load(Ordering::SeqCst),
            1,
            "round {round}"
        );
        tickets.wait(2 * (round + 1)).await;
        conn.quic.close(0x100u32.into(), b"");
    }
    let m = server.metrics.snapshot();
    assert_eq!((m.h3_handshakes, m.h3_handshakes_resumed), (4, 3));
    assert_eq!(m.handshakes_full, 1, "TCP handshakes are counted apart");
}

/// Connects with a ticket in 0-RTT; (the connection, whether the server took early data,
/// the status of a GET sent before the handshake completed).
async fn early_get(client: &H3Client, addr: std::net::SocketAddr) -> (H3Conn, bool, StatusCode) {
    let connecting = client.endpoint.connect(addr, "localhost").unwrap();
    let (quic, accepted) = match connecting.into_0rtt() {
        Ok(early) => early,
        Err(_) => panic!("the client has no 0-RTT ticket"),
    };
    let mut conn = H3Conn::over(quic, addr.port()).await.unwrap();
    let a = conn.get("/robots.txt").await;
    assert_eq!(&a.body[..], &support::www_file("robots.txt")[..]);
    let accepted = tokio::time::timeout(WAIT, accepted).await.unwrap();
    (conn, accepted, a.parts.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_http3_0rtt_a_resumed_client_gets_a_get_answered_from_early_data() {
    let server = TestServer::start(|c| c.http3_0rtt = true).await;
    let addr = server.h3_addr.unwrap();
    let (store, resumption) = TicketStore::new();
    let client = H3Client::with_resumption(&server.ca, Some(resumption));
    let mut first = client.connect(addr).await.unwrap();
    assert_eq!(first.get("/").await.parts.status, StatusCode::OK);
    store.wait(1).await;
    first.quic.close(0x100u32.into(), b"");
    let (mut conn, accepted, status) = early_get(&client, addr).await;
    assert!(accepted, "the server accepted 0-RTT");
    assert_eq!(status, StatusCode::OK);
    // A method that is not safe waits for the handshake, then gets its answer.
    let a = conn.request(Method::POST, "/", &[]).await.unwrap();
    assert_eq!(a.parts.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(client.verifications.load(Ordering::SeqCst), 1);
    let m = server.metrics.snapshot();
    assert_eq!((m.h3_handshakes, m.h3_handshakes_resumed), (2, 1));
    assert_eq!(m.requests_h3, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_http3_0rtt_quic_resumes_from_the_session_cache_and_tcp_tickets_do_not_resume_it() {
    // rustls takes 0-RTT only with stateful resumption: QUIC's tickets are then single-use
    // keys into the server's cache, and the TCP side's encrypted tickets do not open it.
    let server = TestServer::start(|c| c.http3_0rtt = true).await;
    let addr = server.h3_addr.unwrap();
    let (store, resumption) = TicketStore::new();
    let (tcp_config, verified) = tls_config(&server.ca, &[b"h2"], Some(resumption));
    let quic_config = tcp_config.clone();
    let tls = support::tls_connect(server.addr, Arc::new(tcp_config), "localhost")
        .await
        .unwrap();
    let mut h2 = H2::over(tls, server.addr).await;
    assert_eq!(h2.request("/", &[]).await.0.status, StatusCode::OK);
    store.wait(2).await;
    drop(h2);
    let client = H3Client::from_config(quic_config, Arc::clone(&verified));
    let mut conn = client.connect(addr).await.unwrap();
    assert_eq!(conn.get("/").await.parts.status, StatusCode::OK);
    assert_eq!(verified.load(Ordering::SeqCst), 2, "a full QUIC handshake");
    // After a full handshake the 0-RTT gate is open: an unsafe method gets its answer.
    let a = conn.request(Method::POST, "/", &[]).await.unwrap();
    assert_eq!(a.parts.status, StatusCode::METHOD_NOT_ALLOWED);
    store.wait(4).await;
    conn.quic.close(0x100u32.into(), b"");
    // QUIC to QUIC: each resumption in 0-RTT, each ticket used once.
    for round in 1..=3u64 {
        let (conn, accepted, status) = early_get(&client, addr).await;
        assert!(accepted, "round {round}");
        assert_eq!(status, StatusCode::OK);
        store.wait(4 + 2 * round as usize).await;
        conn.quic.close(0x100u32.into(), b"");
        let m = server.metrics.snapshot();
        assert_eq!(m.h3_handshakes_resumed, round, "round {round}");
    }
    assert_eq!(verified.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_http3_0rtt_early_data_is_refused_and_the_request_is_served_after_the_handshake() {
    let server = TestServer::start(|_| {}).await;
    let addr = server.h3_addr.unwrap();
    let (store, resumption) = TicketStore::new();
    let client = H3Client::with_resumption(&server.ca, Some(resumption));
    let mut first = client.connect(addr).await.unwrap();
    assert_eq!(first.get("/").await.parts.status, StatusCode::OK);
    store.wait(1).await;
    first.quic.close(0x100u32.into(), b"");
    let connecting = client.endpoint.connect(addr, "localhost").unwrap();
    match connecting.into_0rtt() {
        // The ticket did not allow early data: a 1-RTT resumption.
        Err(connecting) => {
            let quic = connecting.await.unwrap();
            let mut conn = H3Conn::over(quic, addr.port()).await.unwrap();
            assert_eq!(conn.get("/robots.txt").await.parts.status, StatusCode::OK);
        }
        Ok(_) => panic!("a ticket allowing 0-RTT from a server without --http3-0rtt"),
    }
    assert_eq!(client.verifications.load(Ordering::SeqCst), 1, "resumed");
    let m = server.metrics.snapshot();
    assert_eq!((m.h3_handshakes, m.h3_handshakes_resumed), (2, 1));
}

// ---- shutdown --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_in_flight_at_shutdown_finishes_and_the_client_then_sees_a_clean_close() {
    const SIZE: usize = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    support::copy_tree(&support::www(), &root);
    let big = random_bytes(SIZE, 77);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let server = TestServer::start(move |c| {
        c.root = root;
        c.stream_threshold = 64 * 1024;
    })
    .await;
    let addr = server.h3_addr.unwrap();
    let metrics = Arc::clone(&server.metrics);
    let client = H3Client::new(&server.ca);
    let mut conn = client.connect(addr).await.unwrap();
    let mut idle = client.connect(addr).await.unwrap();
    assert_eq!(idle.get("/").await.parts.status, StatusCode::OK);
    let mut stream = conn
        .send
        .send_request(
            http::Request::get(format!("https://localhost:{}/big.bin", addr.port()))
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    stream.finish().await.unwrap();
    assert_eq!(stream.recv_response().await.unwrap().status(), 200);
    let mut body = BytesMut::new();
    let mut chunk = stream.recv_data().await.unwrap().expect("first bytes");
    body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    assert!(body.len() < SIZE);

    let shutdown = tokio::spawn(server.shutdown());
    // Read slowly at first, so the transfer is surely in flight while the drain begins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read = async {
        while let Some(mut chunk) = stream.recv_data().await.unwrap() {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the download finishes");
    assert_eq!(body.len(), SIZE);
    assert!(body[..] == big[..], "byte-exact through the drain");
    // Then GOAWAY and a clean close, on both connections.
    for (what, c) in [("downloading", &mut conn), ("idle", &mut idle)] {
        let end = tokio::time::timeout(WAIT, &mut c.closed)
            .await
            .unwrap_or_else(|_| panic!("{what}: closed in time"))
            .unwrap();
        let reason = c.quic.close_reason().expect("closed");
        assert!(
            matches!(reason, quinn::ConnectionError::ApplicationClosed(ref a) if a.error_code == 0x100u32.into()),
            "{what}: {reason} ({end})"
        );
    }
    let summary = tokio::time::timeout(Duration::from_secs(20), shutdown)
        .await
        .expect("shutdown completes")
        .unwrap();
    assert!(!summary.forced, "{summary:?}");
    assert_eq!(summary.open_at_start, 2);
    let m = metrics.snapshot();
    assert_eq!(m.connections_closed_after_shutdown, 0);
    assert_eq!(m.responses[2][1], 2);
    // New QUIC connections are refused once the drain is over.
    // (The endpoint is gone: the attempt is unanswered, or refused if a packet got in.)
    let late = client.endpoint.connect(addr, "localhost").unwrap();
    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), late).await {
        panic!("a QUIC connection after shutdown");
    }
}

// ---- metrics ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_mix_of_h3_traffic_exactly() {
    let server = TestServer::start(|_| {}).await;
    let client = H3Client::new(&server.ca);
    let mut one = client.connect(server.h3_addr.unwrap()).await.unwrap();
    let a = one.get("/").await;
    let etag = a.parts.headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(a.parts.status, 200);
    assert_eq!(one.get("/missing.js").await.parts.status, 404);
    let a = one.request(Method::HEAD, "/robots.txt", &[]).await.unwrap();
    assert_eq!(a.parts.status, 200);
    let a = one
        .request(Method::GET, "/", &[("if-none-match", &etag)])
        .await
        .unwrap();
    assert_eq!(a.parts.status, 304);
    let mut two = client.connect(server.h3_addr.unwrap()).await.unwrap();
    let a = two.request(Method::DELETE, "/", &[]).await.unwrap();
    assert_eq!(a.parts.status, 405);
    // One request over each TCP protocol, apart.
    assert_eq!(server.get("/").await.0.status, 200);
    let mut h2 = H2::connect(&server).await;
    assert_eq!(h2.request("/", &[]).await.0.status, 200);

    let m = server.metrics.snapshot();
    assert_eq!(m.requests_h3, 5);
    assert_eq!(m.responses[2], [0, 2, 1, 2, 0]);
    assert_eq!((m.requests_h1, m.requests_h2), (1, 1));
    assert_eq!(m.responses[0], [0, 1, 0, 0, 0]);
    assert_eq!(m.responses[1], [0, 1, 0, 0, 0]);
    assert_eq!((m.h3_accepted, m.h3_handshakes), (2, 2));
    assert_eq!(m.h3_handshakes_resumed, 1, "the second resumed");
    assert_eq!((m.h3_retries, m.h3_refused), (0, 0));
    assert_eq!(client.verifications.load(Ordering::SeqCst), 1);
}
