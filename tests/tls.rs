//! TLS over real sockets on loopback: TLS 1.2 and 1.3 verify against the dev CA and serve,
//! TLS 1.0/1.1 are refused, ALPN picks h2 or http/1.1, sessions resume (TLS 1.3 tickets,
//! TLS 1.2 tickets, TLS 1.2 session IDs) as seen by the client and by the server's counters,
//! 1000 reconnects from 8 client threads resume, and `openssl s_client` agrees.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::telemetry::{FailureClass, MetricsSnapshot};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::{HandshakeKind, ProtocolVersion, SupportedProtocolVersion};
use support::{client_config, tls_connect, www_file, TestServer, H1};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;

/// Generous bound for anything that should take milliseconds on loopback.
const STEP: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// helpers

/// A client config trusting the server's dev CA, offering `alpn`, limited to `version`.
/// Returned unwrapped so a test can change it (e.g. `resumption`) before sharing it.
fn config_for(
    server: &TestServer,
    alpn: &[&[u8]],
    version: &'static SupportedProtocolVersion,
) -> rustls::ClientConfig {
    owned(client_config(&server.ca, alpn, Some(&[version])))
}

fn owned(config: Arc<rustls::ClientConfig>) -> rustls::ClientConfig {
    Arc::try_unwrap(config).unwrap_or_else(|shared| (*shared).clone())
}

/// TLS 1.2 resumption by session ID only (no ticket extension offered): the server must
/// find the session in its own session cache.
fn session_id_only(mut config: rustls::ClientConfig) -> rustls::ClientConfig {
    config.resumption =
        Resumption::in_memory_sessions(256).tls12_resumption(Tls12Resumption::SessionIdOnly);
    config
}

async fn connect(server: &TestServer, config: &Arc<rustls::ClientConfig>) -> TlsStream<TcpStream> {
    tokio::time::timeout(
        STEP,
        tls_connect(server.addr, Arc::clone(config), "localhost"),
    )
    .await
    .expect("handshake within the time bound")
    .expect("tls handshake")
}

/// `GET /` over HTTP/1.1 on an established connection; asserts the SPA index comes back.
async fn get_index_h1(tls: TlsStream<TcpStream>, addr: SocketAddr) {
    let mut h1 = H1::over(tls, addr).await;
    let (parts, body) = tokio::time::timeout(STEP, h1.request(http::Method::GET, "/", &[]))
        .await
        .expect("response within the time bound");
    assert_eq!(parts.status, 200);
    assert_eq!(&body[..], &www_file("index.html")[..]);
}

/// `GET /` over HTTP/1.1 without panicking (for client threads): status and body.
async fn try_get_index(tls: TlsStream<TcpStream>, authority: &str) -> Result<(u16, Bytes), String> {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http1 handshake: {e}"))?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("/")
        .header("host", authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = send
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

fn failures_total(m: &MetricsSnapshot) -> u64 {
    m.handshake_failures.iter().sum()
}

/// Waits (bounded) until the server's counters satisfy `pred`; panics with them otherwise.
async fn wait_for_metrics(
    server: &TestServer,
    what: &str,
    pred: impl Fn(&MetricsSnapshot) -> bool,
) -> MetricsSnapshot {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let m = server.metrics.snapshot();
        if pred(&m) {
            return m;
        }
        assert!(Instant::now() < until, "{what}: counters are {m:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

const OPENSSL: &str = "/usr/bin/openssl";

fn openssl_available() -> bool {
    Command::new(OPENSSL)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `openssl` with `args`, feeding `stdin` then closing it; kills it after `limit`.
/// Returns the exit status and stdout followed by stderr.
async fn openssl(args: Vec<String>, stdin: &'static [u8], limit: Duration) -> (ExitStatus, String) {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(OPENSSL)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl starts");
        let mut input = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(stdin);
        });
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let reader_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let reader_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let until = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for openssl") {
                break status;
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                let out = reader_out.join().unwrap_or_default();
                let err = reader_err.join().unwrap_or_default();
                panic!("openssl {args:?} ran past {limit:?}:\n{out}\n{err}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let _ = writer.join();
        let text = reader_out.join().unwrap() + &reader_err.join().unwrap();
        (status, text)
    })
    .await
    .expect("openssl task")
}

/// Common `s_client` arguments: verify the chain against the dev CA and the name.
fn s_client_args(server: &TestServer, version_flag: &str) -> Vec<String> {
    vec![
        "s_client".into(),
        "-connect".into(),
        format!("127.0.0.1:{}", server.addr.port()),
        version_flag.into(),
        "-CAfile".into(),
        server.ca.display().to_string(),
        "-servername".into(),
        "localhost".into(),
        "-verify_hostname".into(),
        "localhost".into(),
        "-verify_return_error".into(),
    ]
}

fn count_lines_starting(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

/// Every "Verify return code" line says 0 (ok); returns how many there are.
fn verified_ok(text: &str) -> usize {
    let codes: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Verify return code:"))
        .collect();
    assert!(
        codes.iter().all(|c| *c == "Verify return code: 0 (ok)"),
        "a verification failed: {codes:?}\n{text}"
    );
    codes.len()
}

// ---------------------------------------------------------------------------------------
// 1. versions and verification

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_and_tls13_handshakes_verify_against_the_dev_ca_and_serve_http() {
    let server = TestServer::start(|_| {}).await;
    for (version, expected) in [
        (TLS12, ProtocolVersion::TLSv1_2),
        (TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let config = Arc::new(config_for(&server, &[b"http/1.1"], version));
        let tls = connect(&server, &config).await;
        let conn = tls.get_ref().1;
        assert_eq!(conn.protocol_version(), Some(expected));
        assert_eq!(conn.handshake_kind(), Some(HandshakeKind::Full));
        assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        // The verifier accepted a chain whose leaf the server presented.
        assert!(!conn.peer_certificates().unwrap_or_default().is_empty());
        get_index_h1(tls, server.addr).await;
    }
    let m = server.metrics.snapshot();
    assert_eq!(m.handshakes_full + m.handshakes_full_hrr, 2, "{m:?}");
    assert_eq!(m.requests_h1, 2, "{m:?}");
    assert_eq!(failures_total(&m), 0, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_dev_ca_or_asking_for_another_name_rejects_the_certificate() {
    let server = TestServer::start(|_| {}).await;

    // No trust anchors at all: the dev chain does not verify.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let untrusting = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    );
    let err = tokio::time::timeout(STEP, tls_connect(server.addr, untrusting, "localhost"))
        .await
        .expect("bounded")
        .expect_err("an untrusted chain must be rejected");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );

    // Trusting the CA but asking for a name the leaf does not cover.
    let trusting = server.client(&[b"http/1.1"]);
    let err = tokio::time::timeout(
        STEP,
        tls_connect(server.addr, trusting, "not-localhost.example"),
    )
    .await
    .expect("bounded")
    .expect_err("a name outside the certificate must be rejected");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(_))
        ) && format!("{err:?}").contains("NotValidForName"),
        "{err:?}"
    );

    // Both clients told the server with an alert; it counted both and served nothing.
    let m = wait_for_metrics(&server, "two alerts received", |m| {
        m.failures(FailureClass::AlertReceived) >= 2
    })
    .await;
    assert_eq!(m.handshakes_full + m.handshakes_resumed, 0, "{m:?}");
    assert_eq!(m.requests_h1 + m.requests_h2, 0, "{m:?}");
}

// ---------------------------------------------------------------------------------------
// 2. old versions refused

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls10_and_tls11_clients_are_refused_and_counted_as_handshake_failures() {
    assert!(openssl_available(), "{OPENSSL} is required");
    let server = TestServer::start(|_| {}).await;
    for flag in ["-tls1", "-tls1_1"] {
        let before = server.metrics.snapshot();
        let args = vec![
            "s_client".into(),
            "-connect".into(),
            format!("127.0.0.1:{}", server.addr.port()),
            flag.into(),
            "-cipher".into(),
            "DEFAULT:@SECLEVEL=0".into(),
        ];
        let (status, out) = openssl(args, b"", STEP).await;
        assert!(!status.success(), "{flag}: handshake succeeded:\n{out}");
        let refused_by_server = out.contains("SSL alert number");
        let refused_locally = out.contains("no protocols available");
        assert!(
            refused_by_server || refused_locally,
            "{flag}: no alert and no local refusal:\n{out}"
        );
        assert!(
            !out.contains("Server certificate") && !out.contains("BEGIN CERTIFICATE"),
            "{flag}: the server got as far as sending its certificate:\n{out}"
        );
        if out.contains("Cipher is") {
            assert!(
                out.contains("Cipher is (NONE)"),
                "{flag}: a cipher was negotiated:\n{out}"
            );
        }
        if refused_by_server {
            // A ClientHello reached the server: it answered with an alert and counted it.
            let m = wait_for_metrics(&server, flag, |m| {
                failures_total(m) == failures_total(&before) + 1
            })
            .await;
            assert_eq!(
                m.failures(FailureClass::AlertSent),
                before.failures(FailureClass::AlertSent) + 1,
                "{flag}: {m:?}"
            );
            assert_eq!(m.handshakes_full, before.handshakes_full, "{flag}: {m:?}");
            assert_eq!(m.handshakes_resumed, before.handshakes_resumed);
        }
    }
    // The refusals did not disturb a modern client.
    let (parts, _) = server.get("/").await;
    assert_eq!(parts.status, 200);
}

// ---------------------------------------------------------------------------------------
// 3. ALPN

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_prefers_h2_then_http11_and_no_alpn_still_serves_http11() {
    let server = TestServer::start(|_| {}).await;

    // [h2, http/1.1] -> h2, and HTTP/2 is spoken.
    let tls = connect(&server, &server.client(&[b"h2", b"http/1.1"])).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(format!("https://localhost:{}/", server.addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = tokio::time::timeout(STEP, send.send_request(req))
        .await
        .expect("bounded")
        .expect("h2 response");
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], &www_file("index.html")[..]);

    // [http/1.1] -> http/1.1.
    let tls = connect(&server, &server.client(&[b"http/1.1"])).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    get_index_h1(tls, server.addr).await;

    // Nothing offered -> nothing negotiated, and HTTP/1.1 works.
    let tls = connect(&server, &server.client(&[])).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    get_index_h1(tls, server.addr).await;

    let m = server.metrics.snapshot();
    assert_eq!(m.requests_h2, 1, "{m:?}");
    assert_eq!(m.requests_h1, 2, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_only_unknown_alpn_protocols_is_refused_with_an_alert() {
    let server = TestServer::start(|_| {}).await;
    let err = tokio::time::timeout(
        STEP,
        tls_connect(
            server.addr,
            server.client(&[b"spdy/3", b"imap"]),
            "localhost",
        ),
    )
    .await
    .expect("bounded")
    .expect_err("no common protocol must fail the handshake");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            ))
        ),
        "{err:?}"
    );
    let m = wait_for_metrics(&server, "alert sent", |m| {
        m.failures(FailureClass::AlertSent) == 1
    })
    .await;
    assert_eq!(m.handshakes_full, 0, "{m:?}");
}

// ---------------------------------------------------------------------------------------
// 4. resumption

/// Connects twice with `config`, a request on each; asserts the first is full, the second
/// resumed, on both sides.
async fn assert_second_connection_resumes(
    server: &TestServer,
    config: rustls::ClientConfig,
    expected: ProtocolVersion,
) {
    let config = Arc::new(config);
    let tls = connect(server, &config).await;
    assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
    assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
    // TLS 1.3 tickets follow the handshake: reading a response makes sure they arrived.
    get_index_h1(tls, server.addr).await;

    let tls = connect(server, &config).await;
    assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
    assert_eq!(
        tls.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Resumed),
        "client side: the second handshake was not resumed"
    );
    get_index_h1(tls, server.addr).await;

    let m = server.metrics.snapshot();
    assert_eq!(m.handshakes_full + m.handshakes_full_hrr, 1, "{m:?}");
    assert_eq!(m.handshakes_resumed, 1, "server side: {m:?}");
    assert_eq!(failures_total(&m), 0, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_reconnect_resumes_with_a_ticket() {
    let server = TestServer::start(|_| {}).await;
    let config = config_for(&server, &[b"http/1.1"], TLS13);
    assert_second_connection_resumes(&server, config, ProtocolVersion::TLSv1_3).await;
}

/// The server holds its TLS 1.3 tickets back to send them with the first response; a
/// client that sends nothing after its handshake still gets them, and resumes with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_tickets_reach_a_client_that_sends_nothing_after_its_handshake() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start(|_| {}).await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let config = Arc::new(config_for(&server, &[alpn], TLS13));
        let mut tls = connect(&server, &config).await;
        assert_eq!(tls.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
        // Reading processes what arrives (the tickets; for h2 also the server's SETTINGS).
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_millis(300), tls.read(&mut buf)).await;
        drop(tls);
        let tls = connect(&server, &config).await;
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{}: no ticket arrived",
            String::from_utf8_lossy(alpn)
        );
    }
    let m = wait_for_metrics(&server, "two resumed", |m| m.handshakes_resumed == 2).await;
    assert_eq!(m.handshakes_full, 2, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_reconnect_resumes_with_a_ticket() {
    let server = TestServer::start(|_| {}).await;
    let config = config_for(&server, &[b"http/1.1"], TLS12);
    assert_second_connection_resumes(&server, config, ProtocolVersion::TLSv1_2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_session_id_resumption_works_without_tickets() {
    let server = TestServer::start(|_| {}).await;
    let config = session_id_only(config_for(&server, &[b"http/1.1"], TLS12));
    assert_second_connection_resumes(&server, config, ProtocolVersion::TLSv1_2).await;
}

// ---------------------------------------------------------------------------------------
// 5. concurrency

#[derive(Debug, Clone, Copy)]
enum Flavour {
    Tls13,
    Tls12Tickets,
    Tls12SessionIds,
}

#[derive(Debug, Default)]
struct ThreadReport {
    full: usize,
    resumed: usize,
    resumed_after_first: usize,
    errors: Vec<String>,
}

/// One client thread with its own runtime and its own session store: `n` connections in a
/// row, one `GET /` each.
fn client_thread(
    addr: SocketAddr,
    ca: PathBuf,
    flavour: Flavour,
    n: usize,
    index: Arc<Vec<u8>>,
) -> ThreadReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (version, expected) = match flavour {
            Flavour::Tls13 => (TLS13, ProtocolVersion::TLSv1_3),
            Flavour::Tls12Tickets | Flavour::Tls12SessionIds => (TLS12, ProtocolVersion::TLSv1_2),
        };
        let mut config = owned(client_config(&ca, &[b"http/1.1"], Some(&[version])));
        if let Flavour::Tls12SessionIds = flavour {
            config = session_id_only(config);
        }
        let config = Arc::new(config);
        let authority = format!("localhost:{}", addr.port());
        let mut report = ThreadReport::default();
        for i in 0..n {
            let attempt = async {
                let tls = tls_connect(addr, Arc::clone(&config), "localhost")
                    .await
                    .map_err(|e| format!("handshake: {e}"))?;
                let conn = tls.get_ref().1;
                if conn.protocol_version() != Some(expected) {
                    return Err(format!("negotiated {:?}", conn.protocol_version()));
                }
                let kind = conn.handshake_kind();
                let (status, body) = try_get_index(tls, &authority).await?;
                if status != 200 {
                    return Err(format!("status {status}"));
                }
                if body[..] != index[..] {
                    return Err(format!("body of {} bytes differs", body.len()));
                }
                Ok(kind)
            };
            match tokio::time::timeout(STEP, attempt).await {
                Ok(Ok(Some(HandshakeKind::Resumed))) => {
                    report.resumed += 1;
                    if i > 0 {
                        report.resumed_after_first += 1;
                    }
                }
                Ok(Ok(_)) => report.full += 1,
                Ok(Err(e)) => report.errors.push(format!("{flavour:?} #{i}: {e}")),
                Err(_) => report
                    .errors
                    .push(format!("{flavour:?} #{i}: no response within {STEP:?}")),
            }
        }
        report
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_reconnects_from_eight_threads_mixing_tls12_and_tls13_resume() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 125;
    let server = TestServer::start(|_| {}).await;
    let index = Arc::new(www_file("index.html"));
    // Half TLS 1.3; the TLS 1.2 half split between tickets and session IDs (the sharded
    // session cache under concurrent use).
    let flavours = [
        Flavour::Tls13,
        Flavour::Tls12Tickets,
        Flavour::Tls13,
        Flavour::Tls12SessionIds,
        Flavour::Tls13,
        Flavour::Tls12Tickets,
        Flavour::Tls13,
        Flavour::Tls12SessionIds,
    ];
    let started = Instant::now();
    let threads: Vec<_> = flavours
        .iter()
        .map(|&flavour| {
            let (addr, ca, index) = (server.addr, server.ca.clone(), Arc::clone(&index));
            std::thread::spawn(move || client_thread(addr, ca, flavour, PER_THREAD, index))
        })
        .collect();
    assert_eq!(threads.len(), THREADS);
    let reports = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || {
            threads
                .into_iter()
                .map(|t| t.join().expect("client thread panicked"))
                .collect::<Vec<_>>()
        }),
    )
    .await
    .expect("1000 connections within 120 s")
    .unwrap();
    let elapsed = started.elapsed();

    let errors: Vec<&String> = reports.iter().flat_map(|r| &r.errors).collect();
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    for (flavour, r) in flavours.iter().zip(&reports) {
        assert_eq!(r.full + r.resumed, PER_THREAD, "{flavour:?}: {r:?}");
        assert!(
            r.resumed_after_first * 10 >= (PER_THREAD - 1) * 9,
            "{flavour:?}: only {} of {} reconnects resumed: {r:?}",
            r.resumed_after_first,
            PER_THREAD - 1
        );
    }
    let client_resumed: usize = reports.iter().map(|r| r.resumed).sum();
    let m = server.metrics.snapshot();
    let total = u64::try_from(THREADS * PER_THREAD).unwrap();
    assert_eq!(
        m.handshakes_full + m.handshakes_full_hrr + m.handshakes_resumed,
        total,
        "{m:?}"
    );
    assert!(m.handshakes_resumed >= 900, "{m:?}");
    assert_eq!(
        m.handshakes_resumed,
        u64::try_from(client_resumed).unwrap(),
        "client and server disagree on resumptions: {m:?}"
    );
    assert_eq!(m.requests_h1, total, "{m:?}");
    assert_eq!(failures_total(&m), 0, "{m:?}");
    assert_eq!(m.connection_panics, 0, "{m:?}");
    eprintln!("1000 connections in {elapsed:?}; {client_resumed} resumed");
}

// ---------------------------------------------------------------------------------------
// 6. openssl s_client

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_tls12_reconnect_resumes_five_times_with_tickets_and_with_session_ids() {
    assert!(openssl_available(), "{OPENSSL} is required");
    let server = TestServer::start(|_| {}).await;
    // Default: tickets. `-no_ticket`: session IDs from the server's session cache.
    for (i, extra) in [None, Some("-no_ticket")].into_iter().enumerate() {
        let mut args = s_client_args(&server, "-tls1_2");
        args.push("-reconnect".into());
        args.extend(extra.map(String::from));
        let (status, out) = openssl(args, b"", Duration::from_secs(20)).await;
        assert!(status.success(), "{extra:?}: s_client failed:\n{out}");
        assert_eq!(
            count_lines_starting(&out, "New, TLSv1.2,"),
            1,
            "{extra:?}:\n{out}"
        );
        assert_eq!(
            count_lines_starting(&out, "Reused, TLSv1.2,"),
            5,
            "{extra:?}: -reconnect makes 5 reconnects, all should resume:\n{out}"
        );
        assert_eq!(verified_ok(&out), 6, "{extra:?}:\n{out}");
        let want = u64::try_from(5 * (i + 1)).unwrap();
        wait_for_metrics(&server, "openssl resumptions counted", |m| {
            m.handshakes_resumed == want
        })
        .await;
    }
    let m = server.metrics.snapshot();
    assert_eq!(m.handshakes_full, 2, "{m:?}");
}

/// `s_client -reconnect` cannot resume TLS 1.3: it drops each connection as soon as its own
/// handshake completes, before the post-handshake NewSessionTicket arrives (OpenSSL issue
/// #10714, open). The equivalent that works: one request per connection (so the tickets
/// are read), saving the session with `-sess_out` and offering it with `-sess_in`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_tls13_reconnects_resume_five_times_with_saved_tickets() {
    assert!(openssl_available(), "{OPENSSL} is required");
    let server = TestServer::start(|_| {}).await;
    let dir = server.tmp().to_path_buf();
    let session = |i: usize| dir.join(format!("openssl-session-{i}.pem"));
    let request: &'static [u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut all = String::new();
    for i in 0..6 {
        let mut args = s_client_args(&server, "-tls1_3");
        args.push("-ign_eof".into());
        if i > 0 {
            args.push("-sess_in".into());
            args.push(path_arg(&session(i - 1)));
        }
        args.push("-sess_out".into());
        args.push(path_arg(&session(i)));
        let (status, out) = openssl(args, request, Duration::from_secs(20)).await;
        assert!(status.success(), "connection {i}: s_client failed:\n{out}");
        assert_eq!(
            count_lines_starting(&out, "HTTP/1.1 200"),
            1,
            "connection {i}:\n{out}"
        );
        let kind = if i == 0 {
            "New, TLSv1.3,"
        } else {
            "Reused, TLSv1.3,"
        };
        assert_eq!(
            count_lines_starting(&out, kind),
            1,
            "connection {i}:\n{out}"
        );
        assert!(verified_ok(&out) >= 1, "connection {i}:\n{out}");
        assert!(session(i).exists(), "connection {i}: no ticket saved");
        all.push_str(&out);
    }
    assert_eq!(count_lines_starting(&all, "Reused, TLSv1.3,"), 5);
    let m = server.metrics.snapshot();
    assert_eq!(m.handshakes_full, 1, "{m:?}");
    assert_eq!(m.handshakes_resumed, 5, "{m:?}");
    assert_eq!(m.requests_h1, 6, "{m:?}");
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// A client offering exactly `suites`, in that order.
fn client_with_suites(
    server: &TestServer,
    version: &'static SupportedProtocolVersion,
    suites: &[rustls::SupportedCipherSuite],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&server.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = suites.to_vec();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aes_128_gcm_is_preferred_but_a_client_preferring_chacha20_gets_it() {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    use rustls::CipherSuite as S;
    let server = TestServer::start(|_| {}).await;
    let cases: [(
        &SupportedProtocolVersion,
        Vec<rustls::SupportedCipherSuite>,
        S,
    ); 6] = [
        // rustls' and OpenSSL's clients list AES-256 first: the server's order wins.
        (
            TLS13,
            vec![
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
            ],
            S::TLS13_AES_128_GCM_SHA256,
        ),
        // A client that lists ChaCha20 first (no AES hardware) gets it.
        (
            TLS13,
            vec![
                cs::TLS13_CHACHA20_POLY1305_SHA256,
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
            ],
            S::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        // A client with one suite gets that one.
        (
            TLS13,
            vec![cs::TLS13_AES_256_GCM_SHA384],
            S::TLS13_AES_256_GCM_SHA384,
        ),
        (
            TLS12,
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ],
            S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            TLS12,
            vec![
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ],
            S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            TLS12,
            vec![cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
            S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ];
    for (version, suites, expected) in cases {
        let offered: Vec<S> = suites.iter().map(|s| s.suite()).collect();
        let config = client_with_suites(&server, version, &suites);
        let tls = connect(&server, &config).await;
        let got = tls.get_ref().1.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(got, expected, "client offering {offered:?}");
        // And the session serves.
        get_index_h1(tls, server.addr).await;
    }
}
