//! `--proxy-protocol` behind a real haproxy (send-proxy and send-proxy-v2, health checks
//! with a LOCAL header) and the trust rules over direct loopback connections: the client
//! address from a trusted proxy's header is the `peer` of every later log line; a trusted
//! proxy without a header and an untrusted peer with one are closed and logged; an untrusted
//! peer without one is served. Clients bind other loopback addresses (127.0.0.2, 127.0.0.3)
//! so that trusted (127.0.0.1) and untrusted peers can be told apart.
//!
//! haproxy is required (Debian package `haproxy`; `.ci/run` installs it): the tests that
//! use it fail, not skip, when it is missing.

mod support;

use support::binary::{field, Rampart};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(10);

fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// rampart with the PROXY protocol on, trusting 127.0.0.1 only, logging at debug.
fn rampart(extra: &[&str]) -> Rampart {
    let mut args = vec![
        "--proxy-protocol",
        "--trusted-proxy",
        "127.0.0.1/32",
        "--log-level",
        "rampart=debug",
    ];
    args.extend_from_slice(extra);
    Rampart::start(&args)
}

/// A TCP connection to `to` from the loopback address `from` (port chosen by the kernel).
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let tcp = tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect");
    tcp.set_nodelay(true).unwrap();
    tcp
}

async fn tls_over(server: &Rampart, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from("localhost").unwrap();
    let connector = TlsConnector::from(server.client(&[b"http/1.1"]));
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake ends in time")
}

/// GET / over a new TLS connection from `from` to `to`; the status and the client's port.
async fn get_from(server: &Rampart, from: IpAddr, to: SocketAddr) -> (http::StatusCode, u16) {
    let tcp = connect_from(from, to).await;
    let port = tcp.local_addr().unwrap().port();
    let tls = tls_over(server, tcp).await.expect("tls handshake");
    let mut h1 = support::H1::over(tls, server.addr).await;
    let (parts, _) = tokio::time::timeout(WAIT, h1.request(http::Method::GET, "/", &[]))
        .await
        .expect("response in time");
    (parts.status, port)
}

/// Reads until EOF or reset; what the server sent before closing.
async fn read_to_close(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {WAIT:?}"),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn haproxy_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")]);
    for dir in candidates {
        let bin = dir.join("haproxy");
        if bin.is_file() {
            return bin;
        }
    }
    panic!("haproxy is required for this test (apt-get install haproxy; .ci/run installs it)");
}

/// A haproxy process in front of rampart; killed on drop.
struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
    /// Frontend ports: `send-proxy`, `send-proxy-v2`, `send-proxy-v2` with health checks.
    v1: SocketAddr,
    v2: SocketAddr,
    checked: SocketAddr,
}

impl Haproxy {
    fn start(backend: SocketAddr) -> Self {
        let bin = haproxy_binary();
        let dir = tempfile::tempdir().unwrap();
        let addr = |port| SocketAddr::new(lo(1), port);
        let (v1, v2, checked) = (addr(free_port()), addr(free_port()), addr(free_port()));
        let config = format!(
            "global\n\
             \x20   maxconn 64\n\
             defaults\n\
             \x20   mode tcp\n\
             \x20   timeout connect 5s\n\
             \x20   timeout client 10s\n\
             \x20   timeout server 10s\n\
             frontend fe_v1\n\
             \x20   bind {v1}\n\
             \x20   default_backend be_v1\n\
             backend be_v1\n\
             \x20   server s1 {backend} send-proxy source 127.0.0.1\n\
             frontend fe_v2\n\
             \x20   bind {v2}\n\
             \x20   default_backend be_v2\n\
             backend be_v2\n\
             \x20   server s1 {backend} send-proxy-v2 source 127.0.0.1\n\
             frontend fe_checked\n\
             \x20   bind {checked}\n\
             \x20   default_backend be_checked\n\
             backend be_checked\n\
             \x20   server s1 {backend} send-proxy-v2 source 127.0.0.1 check inter 200ms\n"
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        // -db: stay in the foreground, no daemon.
        let child = Command::new(&bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let mut haproxy = Self {
            child,
            dir,
            v1,
            v2,
            checked,
        };
        haproxy.wait_listening();
        haproxy
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// Waits until every frontend accepts connections.
    fn wait_listening(&mut self) {
        let start = Instant::now();
        for addr in [self.v1, self.v2, self.checked] {
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("haproxy exited ({status}):\n{}", self.log());
                }
                assert!(
                    start.elapsed() < WAIT,
                    "haproxy not listening on {addr}:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `tls established` line of the client whose address is `client`.
async fn established_line(server: &Rampart, client: SocketAddr) -> String {
    server
        .wait_line(&format!("tls established peer={client} "), WAIT)
        .await
}

#[tokio::test]
async fn haproxy_send_proxy_v1_and_v2_pass_the_client_address_through() {
    let mut server = rampart(&["--access-log", "--metrics-listen", "127.0.0.1:0"]);
    let haproxy = Haproxy::start(server.addr);

    for (frontend, version) in [(haproxy.v1, "1"), (haproxy.v2, "2")] {
        let (status, port) = get_from(&server, lo(2), frontend).await;
        assert_eq!(status, http::StatusCode::OK, "via v{version}");
        let client = SocketAddr::new(lo(2), port);
        let line = established_line(&server, client).await;
        assert!(line.contains(" DEBUG "), "{line}");
        let header = server
            .wait_line(&format!("PROXY header peer={client} "), WAIT)
            .await;
        assert_eq!(
            field(&header, "proxy").map(|p| p.starts_with("127.0.0.1:")),
            Some(true),
            "{header}"
        );
        assert_eq!(field(&header, "version"), Some(version), "{header}");
        // The access log names the original client, not haproxy.
        let access = server
            .wait_line(&format!(" access peer={client} "), WAIT)
            .await;
        assert_eq!(field(&access, "status"), Some("200"), "{access}");
    }
    // So do the metrics: both headers accepted, none refused.
    let metrics = server
        .wait_line("metrics, /healthz and /readyz listening", WAIT)
        .await;
    let maddr: SocketAddr = field(&metrics, "addr").unwrap().parse().unwrap();
    let mut tcp = TcpStream::connect(maddr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut text = String::new();
    tokio::time::timeout(
        WAIT,
        tokio::io::AsyncReadExt::read_to_string(&mut tcp, &mut text),
    )
    .await
    .unwrap()
    .unwrap();
    // (haproxy's health checks of its `checked` backend send LOCAL headers too.)
    let accepted = text
        .lines()
        .find_map(|l| l.strip_prefix("rampart_proxy_headers_total{result=\"accepted\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(accepted >= Some(2), "{text}");
    assert!(
        text.contains("\nrampart_proxy_headers_total{result=\"rejected\"} 0\n"),
        "{text}"
    );
    let log = server.log();
    assert!(
        !log.contains("tls established peer=127.0.0.1:"),
        "the proxy's address was logged as the client:\n{log}"
    );
    assert!(!log.contains("PROXY header; closed"), "{log}");

    server.signal("-TERM");
    server.wait_exit(WAIT).await;
    let counters = server.wait_line(" counters ", WAIT).await;
    let count = |k| field(&counters, k).and_then(|v| v.parse::<u64>().ok());
    assert!(count("proxy_headers") >= Some(2), "{counters}");
    assert_eq!(count("proxy_rejected"), Some(0), "{counters}");
    drop(haproxy);
}

#[tokio::test]
async fn haproxy_health_checks_send_local_headers_that_are_accepted() {
    let mut server = rampart(&[]);
    let haproxy = Haproxy::start(server.addr);
    // A LOCAL header (no address) from the checker: the peer stays the proxy's address, and
    // the connection ends as a bare connect-and-close, without a warning.
    let line = server
        .wait_line("address=false", Duration::from_secs(15))
        .await;
    assert!(line.contains("PROXY header peer=127.0.0.1:"), "{line}");
    assert_eq!(field(&line, "version"), Some("2"), "{line}");
    // Checked traffic still reaches rampart.
    let (status, port) = get_from(&server, lo(2), haproxy.checked).await;
    assert_eq!(status, http::StatusCode::OK);
    established_line(&server, SocketAddr::new(lo(2), port)).await;
    let log = server.log();
    assert!(
        !log.contains(" WARN "),
        "a warning:\n{log}\nhaproxy:\n{}",
        haproxy.log()
    );
    server.assert_alive();
}

#[tokio::test]
async fn untrusted_peer_sending_a_proxy_header_is_closed_without_a_handshake() {
    let server = rampart(&[]);
    let v2 = {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
        h.extend_from_slice(&[10, 9, 8, 7, 127, 0, 0, 1, 0x30, 0x39, 0x01, 0xbb]);
        h
    };
    for header in [b"PROXY TCP4 10.9.8.7 127.0.0.1 12345 443\r\n".to_vec(), v2] {
        let mut tcp = connect_from(lo(3), server.addr).await;
        let peer = tcp.local_addr().unwrap();
        tcp.write_all(&header).await.unwrap();
        let answer = read_to_close(&mut tcp).await;
        assert!(answer.is_empty(), "the server answered {answer:02x?}");
        let line = server.wait_line(&format!("peer={peer} "), WAIT).await;
        assert!(
            line.contains(" WARN PROXY header from an untrusted peer; closed "),
            "{line}"
        );
        assert_eq!(field(&line, "reason"), Some("peer not in --trusted-proxy"));
    }
    assert!(!server.log().contains("10.9.8.7"), "{}", server.log());
}

#[tokio::test]
async fn trusted_proxy_without_a_header_is_closed_and_logged() {
    let server = rampart(&[]);
    let tcp = connect_from(lo(1), server.addr).await;
    let peer = tcp.local_addr().unwrap();
    assert!(
        tls_over(&server, tcp).await.is_err(),
        "a handshake without a PROXY header succeeded"
    );
    let line = server.wait_line(&format!("peer={peer} "), WAIT).await;
    assert!(
        line.contains(" WARN no valid PROXY header from a trusted proxy; closed "),
        "{line}"
    );
    assert_eq!(field(&line, "reason"), Some("not a PROXY header"), "{line}");
}

#[tokio::test]
async fn trusted_proxy_with_a_malformed_header_is_closed_and_logged() {
    let server = rampart(&[]);
    let mut tcp = connect_from(lo(1), server.addr).await;
    let peer = tcp.local_addr().unwrap();
    tcp.write_all(b"PROXY TCP4 10.0.0.1 10.0.0.2 +1 443\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut tcp).await.is_empty());
    let line = server.wait_line(&format!("peer={peer} "), WAIT).await;
    assert!(line.contains("no valid PROXY header"), "{line}");
    assert_eq!(
        field(&line, "reason"),
        Some("v1: bad source port"),
        "{line}"
    );
}

#[tokio::test]
async fn untrusted_peer_without_a_header_is_served_directly() {
    let server = rampart(&[]);
    let (status, port) = get_from(&server, lo(3), server.addr).await;
    assert_eq!(status, http::StatusCode::OK);
    established_line(&server, SocketAddr::new(lo(3), port)).await;
    assert!(!server.log().contains(" WARN "), "{}", server.log());
}

#[tokio::test]
async fn redirect_listener_takes_the_client_address_from_the_header() {
    let server = rampart(&["--http-listen", "127.0.0.1:0"]);
    let line = server.wait_line("kind=Redirect", WAIT).await;
    let http: SocketAddr = field(&line, "addr").unwrap().parse().unwrap();
    let mut tcp = connect_from(lo(1), http).await;
    tcp.write_all(
        b"PROXY TCP4 192.0.2.9 127.0.0.1 4242 80\r\nGET /x?y HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = String::from_utf8(read_to_close(&mut tcp).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    let location = format!("location: https://example.com:{}/x?y", server.addr.port());
    assert!(answer.to_ascii_lowercase().contains(&location), "{answer}");
    server
        .wait_line("cleartext request redirected peer=192.0.2.9:4242 ", WAIT)
        .await;
}

#[tokio::test]
async fn without_proxy_protocol_a_proxy_header_is_not_tls_as_before() {
    let server = Rampart::start(&[]);
    let mut tcp = connect_from(lo(1), server.addr).await;
    let peer = tcp.local_addr().unwrap();
    tcp.write_all(b"PROXY TCP4 10.0.0.1 10.0.0.2 1 443\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut tcp).await.is_empty());
    let line = server.wait_line(&format!("peer={peer} "), WAIT).await;
    assert!(line.contains(" WARN tls handshake failed "), "{line}");
    assert_eq!(field(&line, "reason"), Some("not_tls"), "{line}");
}
