//! The failure handling of the real binary (FAILURES.md), over loopback: garbage, truncated
//! and corrupted handshakes are contained to their connection and logged with the right
//! reason while other clients are served; idle connections and SIGTERM end every TLS
//! connection with close_notify (as rustls, OpenSSL and Python see it); every failed
//! handshake is logged with peer, SNI and reason.

mod support;

use support::binary::{field, Rampart};

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

impl Rampart {
    /// The `tls handshake failed` line of the connection from local port `port`.
    async fn failure_line(&self, port: u16) -> String {
        let line = self
            .wait_line(&format!("peer=127.0.0.1:{port} "), Duration::from_secs(5))
            .await;
        assert!(
            line.contains(" WARN tls handshake failed "),
            "not a handshake failure: {line}"
        );
        line
    }
}

/// Deterministic pseudo-random bytes (xorshift64).
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The first flight a rustls client writes: one TLS record holding its ClientHello.
fn client_hello(config: Arc<rustls::ClientConfig>, sni: &str) -> Vec<u8> {
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    assert_eq!(out[0], 0x16, "a handshake record");
    let len = usize::from(u16::from_be_bytes([out[3], out[4]]));
    assert_eq!(out.len(), 5 + len, "one record");
    assert_eq!(out[5], 0x01, "a ClientHello");
    out
}

/// A hand-built ClientHello offering only TLS 1.0 (record and hello versions 3.1, TLS 1.0
/// cipher suites, SNI localhost).
fn tls10_client_hello() -> Vec<u8> {
    let name = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&(u16::try_from(name.len()).unwrap() + 3).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
    sni.extend_from_slice(name);
    let mut ext = vec![0x00, 0x00];
    ext.extend_from_slice(&u16::try_from(sni.len()).unwrap().to_be_bytes());
    ext.extend_from_slice(&sni);
    // ec_point_formats: uncompressed.
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);

    let mut body = vec![0x03, 0x01];
    body.extend_from_slice(&pseudo_random(10, 32));
    body.push(0); // no session id
    let suites: [u16; 4] = [0xc014, 0xc013, 0x0035, 0x002f];
    body.extend_from_slice(&u16::try_from(suites.len() * 2).unwrap().to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&ext);

    let mut hs = vec![0x01];
    hs.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(hs.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

fn is_closed_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

/// Reads until the server closes the TCP connection (FIN or RST); what arrived first.
async fn read_until_closed(tcp: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {timeout:?}"),
            Ok(Ok(0)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if is_closed_error(&e) => return got,
            Ok(Err(e)) => panic!("unexpected read error {e:?}"),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no content-length in {head}"))
}

/// Reads a response head; returns it and the body bytes that came with it.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        let n = s.read(&mut chunk).await.expect("read response head");
        assert!(n > 0, "EOF inside the response head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one response with a Content-Length body.
async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> (String, Vec<u8>) {
    let (head, mut body) = read_head(s).await;
    let len = content_length(&head);
    let mut chunk = [0u8; 8192];
    while body.len() < len {
        let n = s.read(&mut chunk).await.expect("read response body");
        assert!(n > 0, "EOF inside the response body");
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), len);
    (head, body)
}

/// Reads to the end; `Ok` only when the stream ended with close_notify.
async fn read_to_clean_eof<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

/// One GET / with `Connection: close` over a new TLS connection; the response must be the
/// index page and the connection must end with close_notify.
async fn one_request(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    index: &[u8],
) -> Result<(), String> {
    let mut tls = support::tls_connect(addr, config, "localhost")
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let all = read_to_clean_eof(&mut tls)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if !all.starts_with(b"HTTP/1.1 200 ") || !all.ends_with(index) {
        return Err(format!(
            "bad response: {}",
            String::from_utf8_lossy(&all[..all.len().min(200)])
        ));
    }
    Ok(())
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Command::new(program)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

/// What a child process did: its status, how long it ran, and its output.
struct Ran {
    status: ExitStatus,
    took: Duration,
    stdout: String,
    stderr: String,
}

/// Runs `cmd`, writes `input` to its stdin and keeps stdin open until the process exits by
/// itself (or `timeout` passes: a failure).
fn run_holding_stdin(cmd: Command, input: &[u8], timeout: Duration) -> Ran {
    run_holding_stdin_after(cmd, Duration::ZERO, input, timeout)
}

/// As [`run_holding_stdin`], writing `input` only `delay` after the start (`timeout` counts
/// from then).
fn run_holding_stdin_after(
    mut cmd: Command,
    delay: Duration,
    input: &[u8],
    timeout: Duration,
) -> Ran {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(delay);
    let start = Instant::now();
    stdin.write_all(input).unwrap();
    stdin.flush().unwrap();
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not exit within {timeout:?} (stdin open):\n{}\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    drop(stdin);
    Ran {
        status,
        took,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Puts a relay between a TLS stream and the client that uses it, so that how the server
/// ended the stream is observed even when the client stops reading first (an HTTP/2 client
/// that got GOAWAY closes by itself): the task's result is `Ok` when the server's side ended
/// with close_notify, else the read error (`UnexpectedEof` for a bare TCP FIN).
fn relay(
    tls: TlsStream<TcpStream>,
) -> (
    tokio::io::DuplexStream,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (client_side, relay_side) = tokio::io::duplex(1 << 20);
    let task = tokio::spawn(async move {
        let (mut tls_rd, mut tls_wr) = tokio::io::split(tls);
        let (mut rd, mut wr) = tokio::io::split(relay_side);
        // Client to server; the client's end of the TLS stream is never shut down here.
        let up = async move {
            let _ = tokio::io::copy(&mut rd, &mut tls_wr).await;
            tls_wr
        };
        let down = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match tls_rd.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    // The client may be gone; keep reading to the server's end.
                    Ok(n) => drop(wr.write_all(&buf[..n]).await),
                    Err(e) => return Err(e),
                }
            }
        };
        let (_tls_wr, end) = tokio::join!(up, down);
        end
    });
    (client_side, task)
}

// ---------------------------------------------------------------------------------------
// 1. Garbage, truncated and corrupted handshakes
// ---------------------------------------------------------------------------------------

/// How a garbage case ends its side of the connection after sending.
#[derive(Debug, Clone, Copy, PartialEq)]
enum After {
    /// Keep the socket open and wait for the server to close it.
    Wait,
    /// Half-close (FIN) and wait for the server to close.
    HalfClose,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_truncated_and_corrupted_hellos_are_closed_and_logged_while_others_are_served() {
    let mut server = Rampart::start(&["--handshake-timeout", "1s"]);
    let index = support::www_file("index.html");

    // A well-behaved client requests in a loop the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (stop, addr, config) = (
            Arc::clone(&stop),
            server.addr,
            server.client(&[b"http/1.1"]),
        );
        tokio::spawn(async move {
            let (mut ok, mut errors) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let one = one_request(addr, Arc::clone(&config), &index);
                match tokio::time::timeout(Duration::from_secs(5), one).await {
                    Ok(Ok(())) => ok += 1,
                    Ok(Err(e)) => errors.push(e),
                    Err(_) => errors.push("request timed out".to_owned()),
                }
            }
            (ok, errors)
        })
    };

    let hello = client_hello(server.client(&[b"h2", b"http/1.1"]), "localhost");
    let half = hello[..hello.len() / 2].to_vec();
    // Record and handshake 50 bytes short, the hello cut there: its extensions vector
    // overruns the message.
    let shorten = |bytes: &[u8], hs: bool, rec: bool| {
        let mut b = bytes.to_vec();
        if hs {
            let len = u32::from_be_bytes([0, b[6], b[7], b[8]]) - 50;
            b[6..9].copy_from_slice(&len.to_be_bytes()[1..]);
        }
        if rec {
            let len = u16::from_be_bytes([b[3], b[4]]) - 50;
            b[3..5].copy_from_slice(&len.to_be_bytes());
            b.truncate(b.len() - 50);
        }
        b
    };
    let overrun = shorten(&hello, true, true);
    // Handshake length 50 bytes short in a full record: the last 50 bytes read as a second
    // handshake message with a bogus header.
    let short_hs = shorten(&hello, true, false);
    // Cipher-suite vector length 0xffff: runs past the end of the message.
    let mut long_suites = hello.clone();
    let sid_len = usize::from(hello[5 + 4 + 34]);
    let suites_at = 5 + 4 + 34 + 1 + sid_len;
    long_suites[suites_at..suites_at + 2].copy_from_slice(&[0xff, 0xff]);
    // Session id length 0xff (at most 32 are allowed).
    let mut long_sid = hello.clone();
    long_sid[5 + 4 + 34] = 0xff;
    // A well-formed record and handshake header around a random ClientHello body.
    let random_body = pseudo_random(4, 600);
    let mut random_hello = vec![0x16, 0x03, 0x01, 0x02, 0x5c, 0x01, 0x00, 0x02, 0x58];
    random_hello.extend_from_slice(&random_body);

    let randoms: Vec<Vec<u8>> = [(1, 1000), (2, 4096), (3, 65536)]
        .iter()
        .map(|&(seed, len)| pseudo_random(seed, len))
        .collect();
    for r in &randoms {
        assert!(
            r[0] != 0x16 && !r[0].is_ascii_uppercase(),
            "seed gives a non-TLS, non-HTTP start"
        );
    }

    let alert_or_error: &[&str] = &["alert_sent", "protocol_error"];
    let cases: Vec<(&str, Vec<u8>, After, &[&str])> = vec![
        (
            "1000 random bytes",
            randoms[0].clone(),
            After::Wait,
            &["not_tls"],
        ),
        (
            "4 KiB random bytes",
            randoms[1].clone(),
            After::Wait,
            &["not_tls"],
        ),
        (
            "64 KiB random bytes",
            randoms[2].clone(),
            After::Wait,
            &["not_tls"],
        ),
        (
            "64 KiB of zeros",
            vec![0u8; 65536],
            After::Wait,
            &["not_tls"],
        ),
        (
            "half a ClientHello, then FIN",
            half.clone(),
            After::HalfClose,
            &["eof"],
        ),
        (
            "half a ClientHello, then silence",
            half,
            After::Wait,
            &["timeout"],
        ),
        (
            "extensions overrun the ClientHello",
            overrun,
            After::Wait,
            &["alert_sent"],
        ),
        (
            "handshake length too short, bogus bytes after it",
            short_hs,
            After::Wait,
            alert_or_error,
        ),
        (
            "cipher-suite length 0xffff",
            long_suites,
            After::Wait,
            &["alert_sent"],
        ),
        (
            "session-id length 0xff",
            long_sid,
            After::Wait,
            &["alert_sent"],
        ),
        (
            "random ClientHello body",
            random_hello,
            After::Wait,
            &["alert_sent"],
        ),
        (
            "TLS 1.0-only ClientHello",
            tls10_client_hello(),
            After::Wait,
            &["alert_sent"],
        ),
    ];
    for (name, bytes, after, reasons) in cases {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        if let Err(e) = tcp.write_all(&bytes).await {
            // The server may close (RST) before a large write is done.
            assert!(is_closed_error(&e), "{name}: write failed: {e:?}");
        }
        if after == After::HalfClose {
            tcp.shutdown().await.unwrap();
        }
        let started = Instant::now();
        let got = read_until_closed(&mut tcp, Duration::from_secs(4)).await;
        let line = server.failure_line(port).await;
        eprintln!("{name}: {line}");
        let reason = field(&line, "reason").unwrap();
        assert!(
            reasons.contains(&reason),
            "{name}: reason {reason:?}, expected one of {reasons:?}: {line}"
        );
        assert!(
            field(&line, "detail").is_some_and(|d| !d.is_empty()),
            "{line}"
        );
        match reason {
            "alert_sent" => assert_eq!(
                got.first(),
                Some(&0x15),
                "{name}: an alert record before the close, got {got:02x?}"
            ),
            "timeout" => assert!(
                started.elapsed() >= Duration::from_millis(500),
                "{name}: closed too early ({:?})",
                started.elapsed()
            ),
            _ => assert!(got.is_empty(), "{name}: no bytes expected, got {got:02x?}"),
        }
    }

    // The same TLS 1.0-only offer from OpenSSL's client.
    if have("openssl") {
        let out = tokio::task::spawn_blocking({
            let addr = server.addr.to_string();
            move || {
                Command::new("openssl")
                    .args(["s_client", "-connect", &addr, "-tls1"])
                    .args(["-cipher", "DEFAULT:@SECLEVEL=0"])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "TLS 1.0 must be refused: {stderr}");
        assert!(
            stderr.contains("alert handshake failure") || stderr.contains("alert protocol version"),
            "openssl must see an alert: {stderr}"
        );
        // Its failure line is the second TLS 1.0 refusal (the hand-built hello was first).
        let lines = server
            .wait_lines("alert_sent(handshake_failure)", 2, Duration::from_secs(5))
            .await;
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            field(&lines[1], "reason"),
            Some("alert_sent"),
            "{}",
            lines[1]
        );
    } else {
        eprintln!("openssl not found: skipping the s_client -tls1 case");
    }

    stop.store(true, Ordering::Relaxed);
    let (ok, errors) = tokio::time::timeout(Duration::from_secs(10), background)
        .await
        .expect("background client stops")
        .unwrap();
    assert!(
        errors.is_empty(),
        "the well-behaved client saw errors: {errors:?}"
    );
    assert!(ok >= 3, "only {ok} background requests");
    server.assert_alive();
    let mut tls = server.connect(&[b"http/1.1"]).await;
    tls.write_all(b"GET /robots.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut tls))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
}

// ---------------------------------------------------------------------------------------
// 2. Idle close as other TLS stacks see it
// ---------------------------------------------------------------------------------------

#[test]
fn an_idle_close_is_a_clean_close_notify_for_openssl_s_client() {
    if !have("openssl") {
        eprintln!("openssl not found: skipping");
        return;
    }
    let server = Rampart::start(&["--idle-timeout", "1s"]);
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &server.addr.to_string()])
        .args(["-servername", "localhost", "-alpn", "http/1.1", "-CAfile"])
        .arg(server.ca());
    let ran = run_holding_stdin(
        cmd,
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Duration::from_secs(6),
    );
    let all = format!("{}\n{}", ran.stdout, ran.stderr);
    // The server closed while our stdin was still open, after the idle timeout.
    assert!(
        ran.took >= Duration::from_millis(900),
        "closed before the idle timeout ({:?}):\n{all}",
        ran.took
    );
    assert!(ran.stdout.contains("HTTP/1.1 200 OK"), "{all}");
    assert!(ran.stdout.contains("Verify return code: 0 (ok)"), "{all}");
    // OpenSSL 3 prints "closed" and exits 0 after close_notify; a bare EOF is reported as
    // "unexpected eof while reading" (1.1.1: "read:errno=0") with status 1.
    assert!(ran.status.success(), "{}:\n{all}", ran.status);
    assert!(all.lines().any(|l| l.trim() == "closed"), "{all}");
    assert!(!all.contains("unexpected eof"), "{all}");
    assert!(!all.contains("errno"), "{all}");
}

/// Issue 14, finding 7: a TLS 1.2 renegotiation request (`R` in s_client) used to get no
/// answer: rustls queued its `no_renegotiation` warning for the next write, the client waited
/// for the server's handshake reply, and both sat until the idle timeout. The warning now
/// leaves at once; OpenSSL ends the connection on it (as it does with nginx, which answers
/// the same way), long before the idle timeout.
#[test]
fn a_tls12_renegotiation_request_is_refused_at_once_not_left_hanging() {
    if !have("openssl") {
        eprintln!("openssl not found: skipping");
        return;
    }
    let server = Rampart::start(&["--idle-timeout", "30s"]);
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-tls1_2", "-connect", &server.addr.to_string()])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(server.ca());
    // After the handshake, as a person typing it would.
    let ran = run_holding_stdin_after(cmd, Duration::from_secs(1), b"R\n", Duration::from_secs(10));
    let all = format!("{}\n{}", ran.stdout, ran.stderr);
    assert!(all.contains("RENEGOTIATING"), "{all}");
    assert!(
        all.contains("no renegotiation"),
        "the refusal reached the client:\n{all}"
    );
    assert!(
        ran.took < Duration::from_secs(5),
        "took {:?}: the connection hung\n{all}",
        ran.took
    );
}

#[test]
fn an_idle_close_is_a_clean_close_notify_for_python_ssl() {
    if !have("python3") {
        eprintln!("python3 not found: skipping");
        return;
    }
    let server = Rampart::start(&["--idle-timeout", "1s"]);
    // suppress_ragged_eofs=False: an EOF without close_notify raises SSLEOFError instead of
    // reading as b"".
    let script = r#"
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", port), timeout=8)
s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
start, data = time.monotonic(), b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    print("CLEAN", round(time.monotonic() - start, 2), data.split(b"\r\n")[0].decode())
except ssl.SSLEOFError as e:
    print("SSLEOF", e, data.split(b"\r\n")[0].decode())
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .arg(server.addr.port().to_string())
        .arg(server.ca());
    let ran = run_holding_stdin(cmd, b"", Duration::from_secs(10));
    let all = format!("{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.status.success(), "{}:\n{all}", ran.status);
    let out = ran.stdout.trim();
    assert!(
        out.starts_with("CLEAN "),
        "python must see close_notify: {all}"
    );
    assert!(out.ends_with("HTTP/1.1 200 OK"), "{all}");
    let secs: f64 = out.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        (0.9..5.0).contains(&secs),
        "closed {secs} s after the request; the idle timeout is 1 s"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Graceful shutdown on SIGTERM
// ---------------------------------------------------------------------------------------

const BIG: usize = 32 << 20;

/// Downloads /big.bin slowly (1 MiB, pause, ...); reports when the first MiB arrived.
/// Returns the head, the body and how the connection ended after it.
async fn slow_download(
    mut tls: TlsStream<TcpStream>,
    first_mib: tokio::sync::oneshot::Sender<()>,
) -> (String, Vec<u8>, std::io::Result<Vec<u8>>) {
    tls.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, mut body) = read_head(&mut tls).await;
    let len = content_length(&head);
    let mut first_mib = Some(first_mib);
    let mut chunk = vec![0u8; 64 * 1024];
    while body.len() < len {
        let target = (body.len() + (1 << 20)).min(len);
        while body.len() < target {
            let want = chunk.len().min(target - body.len());
            let n = tls
                .read(&mut chunk[..want])
                .await
                .unwrap_or_else(|e| panic!("download failed after {} bytes: {e:?}", body.len()));
            assert!(n > 0, "EOF after {} of {len} bytes", body.len());
            body.extend_from_slice(&chunk[..n]);
        }
        if let Some(tx) = first_mib.take() {
            let _ = tx.send(());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let end = read_to_clean_eof(&mut tls).await;
    (head, body, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_a_slow_download_closes_idle_h1_and_h2_with_close_notify_and_exits_0() {
    let big = pseudo_random(32, BIG);
    let mut server = Rampart::start_with(&["--shutdown-timeout", "10s"], |root| {
        std::fs::write(root.join("big.bin"), &big).unwrap();
    });
    let addr = server.addr;

    // An idle HTTP/1.1 connection after one request.
    let mut h1 = server.connect(&[b"http/1.1"]).await;
    h1.write_all(b"GET /robots.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut h1))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, support::www_file("robots.txt"));

    // An idle HTTP/2 connection after one request.
    let tls = server.connect(&[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (io, h2_end) = relay(tls);
    let (mut h2, h2_conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    let h2_conn = tokio::spawn(h2_conn);
    let req = || {
        http::Request::get(format!("https://localhost:{}/", addr.port()))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let res = h2.send_request(req()).await.unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, support::www_file("index.html"));

    // A slow download of a file streamed from disk.
    let (tx, first_mib) = tokio::sync::oneshot::channel();
    let download = tokio::spawn(slow_download(server.connect(&[b"http/1.1"]).await, tx));
    tokio::time::timeout(Duration::from_secs(10), first_mib)
        .await
        .expect("first MiB in time")
        .unwrap();

    let sigterm = Instant::now();
    server.signal("-TERM");
    server
        .wait_line("shutting down", Duration::from_secs(5))
        .await;

    // New connections are refused while the download still runs.
    loop {
        match TcpStream::connect(addr).await {
            Err(e) => {
                // Refused once the listener is closed; reset when the probe landed in its
                // accept queue at the moment it closed.
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ),
                    "{e:?}"
                );
                break;
            }
            Ok(probe) => drop(probe),
        }
        assert!(
            sigterm.elapsed() < Duration::from_secs(2),
            "still accepting 2 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !download.is_finished(),
        "the download should still be running"
    );

    // The idle HTTP/1.1 connection is closed at once, with close_notify.
    let rest = tokio::time::timeout(Duration::from_secs(3), read_to_clean_eof(&mut h1))
        .await
        .expect("idle h1 closed in time");
    assert!(
        matches!(&rest, Ok(b) if b.is_empty()),
        "idle h1 must end with close_notify: {rest:?}"
    );

    // The idle HTTP/2 connection gets GOAWAY, then close_notify.
    let started = Instant::now();
    while !h2.is_closed() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "h2 connection still open after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h2.send_request(req()).await.is_err(), "no new h2 requests");
    let conn_result = tokio::time::timeout(Duration::from_secs(3), h2_conn)
        .await
        .expect("h2 connection task ends")
        .unwrap();
    assert!(
        conn_result.is_ok(),
        "h2 connection ended with {conn_result:?}"
    );
    let end = tokio::time::timeout(Duration::from_secs(3), h2_end)
        .await
        .expect("the server ends the h2 connection")
        .unwrap();
    assert!(end.is_ok(), "h2 must end with close_notify: {end:?}");

    // The download completes byte-exact and then ends with close_notify.
    let (head, body, end) = tokio::time::timeout(Duration::from_secs(20), download)
        .await
        .expect("download finishes")
        .unwrap();
    let finished = sigterm.elapsed();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body.len(), BIG);
    if let Some(i) = body.iter().zip(&big).position(|(a, b)| a != b) {
        panic!("downloaded body differs from the file at byte {i}");
    }
    assert!(
        matches!(&end, Ok(b) if b.is_empty()),
        "the download connection must end with close_notify: {end:?}"
    );

    // The process exits 0 soon after the last response, inside the 10 s deadline.
    let status = server.wait_exit(Duration::from_secs(10)).await;
    let exited = sigterm.elapsed();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(
        exited < Duration::from_secs(9),
        "exit {exited:?} after SIGTERM"
    );
    assert!(
        exited < finished + Duration::from_secs(3),
        "exit {exited:?} after SIGTERM, download done at {finished:?}"
    );
    let line = server
        .wait_line("shutdown complete", Duration::from_secs(1))
        .await;
    assert_eq!(field(&line, "forced"), Some("false"), "{line}");
    assert_eq!(field(&line, "open_at_start"), Some("3"), "{line}");
    assert_eq!(field(&line, "drained"), Some("3"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_does_not_wait_for_connections_that_have_not_finished_their_handshake() {
    let mut server = Rampart::start(&["--handshake-timeout", "20s", "--shutdown-timeout", "10s"]);
    let addr = server.addr;
    let hello = client_hello(server.client(&[b"h2", b"http/1.1"]), "localhost");
    // Silent; half a ClientHello; a whole ClientHello and then nothing (mid-handshake).
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&hello[..hello.len() / 2]).await.unwrap();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&hello).await.unwrap();
    let mut flight = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(5), stalled.read_exact(&mut flight))
        .await
        .expect("the server's first flight")
        .unwrap();
    assert_eq!(flight[0], 0x16, "a handshake record");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sigterm = Instant::now();
    server.signal("-TERM");
    for (name, tcp) in [
        ("silent", &mut silent),
        ("half hello", &mut half),
        ("stalled", &mut stalled),
    ] {
        read_until_closed(tcp, Duration::from_secs(3)).await;
        assert!(
            sigterm.elapsed() < Duration::from_secs(2),
            "{name}: closed {:?} after SIGTERM",
            sigterm.elapsed()
        );
    }
    let status = server.wait_exit(Duration::from_secs(3)).await;
    assert_eq!(status.code(), Some(0), "{}", server.log());
    let line = server
        .wait_line("shutdown complete", Duration::from_secs(1))
        .await;
    assert_eq!(field(&line, "forced"), Some("false"), "{line}");
    assert_eq!(field(&line, "open_at_start"), Some("3"), "{line}");
    assert!(
        !server.log().contains("tls handshake failed"),
        "closing at shutdown is not a handshake failure:\n{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------------------
// 4. Handshake-failure log lines
// ---------------------------------------------------------------------------------------

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Connects over TCP (to know the local port), then does a rustls handshake.
async fn handshake(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    sni: &str,
) -> (u16, std::io::Result<TlsStream<TcpStream>>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("handshake ends in time");
    (port, res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handshake_failures_are_logged_with_peer_sni_names_and_reason() {
    let server = Rampart::start(&["--handshake-timeout", "1s"]);
    let names = "localhost,127.0.0.1,::1";

    // (a) A client that does not trust the CA.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut untrusting = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    untrusting.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (port, res) = handshake(server.addr, Arc::new(untrusting), "localhost").await;
    let err = res.expect_err("the certificate is not trusted");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{err}"
    );
    let line = server.failure_line(port).await;
    assert_eq!(field(&line, "reason"), Some("alert_received"), "{line}");
    assert_eq!(
        field(&line, "detail"),
        Some("alert_received(UnknownCA)"),
        "{line}"
    );
    assert_eq!(field(&line, "sni"), Some("localhost"), "{line}");
    assert_eq!(field(&line, "sni_covered"), Some("true"), "{line}");
    assert_eq!(field(&line, "alpn"), Some(r#"["http/1.1"]"#), "{line}");
    assert_eq!(field(&line, "cert_names"), Some(names), "{line}");

    // (b) SNI not covered by the certificate: the client rejects it.
    let (port, res) = handshake(server.addr, server.client(&[b"h2"]), "other.example").await;
    let err = res.expect_err("the certificate does not name other.example");
    assert!(
        matches!(
            rustls_error(&err),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err}"
    );
    let line = server.failure_line(port).await;
    assert_eq!(field(&line, "reason"), Some("alert_received"), "{line}");
    assert!(
        field(&line, "detail").is_some_and(|d| d.starts_with("alert_received(")),
        "{line}"
    );
    assert_eq!(field(&line, "sni"), Some("other.example"), "{line}");
    assert_eq!(field(&line, "sni_covered"), Some("false"), "{line}");
    assert_eq!(field(&line, "cert_names"), Some(names), "{line}");
    assert_eq!(field(&line, "alpn"), Some(r#"["h2"]"#), "{line}");

    // (c) A client that connects and sends nothing.
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let started = Instant::now();
    let got = read_until_closed(&mut tcp, Duration::from_secs(4)).await;
    let waited = started.elapsed();
    assert!(got.is_empty(), "{got:02x?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}; the handshake timeout is 1 s"
    );
    let line = server.failure_line(port).await;
    assert_eq!(field(&line, "reason"), Some("timeout"), "{line}");
    assert_eq!(field(&line, "sni"), Some("none"), "{line}");
    assert_eq!(field(&line, "sni_covered"), Some("false"), "{line}");

    // (d) A client that sends its ClientHello and then stalls: the timeout line names the
    // SNI and ALPN it offered.
    let hello = client_hello(server.client(&[b"h2", b"http/1.1"]), "localhost");
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    tcp.write_all(&hello).await.unwrap();
    let got = read_until_closed(&mut tcp, Duration::from_secs(4)).await;
    assert_eq!(got.first(), Some(&0x16), "the server's first flight");
    let line = server.failure_line(port).await;
    assert_eq!(field(&line, "reason"), Some("timeout"), "{line}");
    assert_eq!(field(&line, "sni"), Some("localhost"), "{line}");
    assert_eq!(field(&line, "sni_covered"), Some("true"), "{line}");
    assert_eq!(
        field(&line, "alpn"),
        Some(r#"["h2", "http/1.1"]"#),
        "{line}"
    );
}
