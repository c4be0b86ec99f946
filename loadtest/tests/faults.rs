//! "The tool must be able to fail": the storm client is pointed at deliberately faulty TLS
//! servers written here (not rampart), and each fault must be reported under the right error
//! class with a non-zero exit status, while a fault-free control server gives exit 0 and no
//! errors at all (no false positives).
//!
//! The servers are a minimal hand-written HTTP/1.1 (keep-alive, identity encoding only) over
//! tokio-rustls that serves the demo app in `../www`, with one [`Fault`] injected. The
//! `server_self_check_*` tests exercise every faulty server with a tiny raw client first, so a
//! failing storm test can be blamed on the tool rather than on the fault injection.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// The fault a test server injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// None: the control.
    None,
    /// Flip one byte in the middle of every body of the large asset.
    FlipBodyByte,
    /// Send half of the large asset, then close TCP (FIN) without a TLS close_notify.
    CloseMidBody,
    /// Send half of the large asset, then reset the TCP connection (SO_LINGER 0).
    ResetMidBody,
    /// Flip one byte of TLS ciphertext once a connection has written [`CORRUPT_AFTER`] bytes.
    CorruptRecord,
    /// Answer 500 for the stylesheet.
    Status500,
    /// Send the head and half of the large asset, then stop writing (connection stays open).
    Stall,
    /// Require a client certificate (from a CA the client knows nothing about).
    RequireClientCert,
}

/// For [`Fault::CorruptRecord`]: the first application-data record that starts at or after
/// this many bytes written on a connection gets one ciphertext byte flipped. Far beyond the
/// server's handshake flight and session tickets (a few KB), well inside the large asset.
const CORRUPT_AFTER: u64 = 20_000;

/// TLS record content type of application data (TLS 1.3 encrypts everything after the
/// ServerHello under it).
const APPLICATION_DATA: u8 = 23;

fn www() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../www")
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A CA (its PEM) and a leaf for 127.0.0.1 and localhost that it signed.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn make_pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = CertifiedIssuer::self_signed(ca_params("loadtest faults test CA"), ca_key)
        .expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &ca).expect("leaf certificate");
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        chain: vec![leaf_cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn server_config(pki: &Pki, fault: Fault) -> rustls::ServerConfig {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = if fault == Fault::RequireClientCert {
        // Client certificates must chain to a CA that nobody outside this function has.
        let client_ca_key = KeyPair::generate().expect("client CA key");
        let client_ca = ca_params("loadtest faults client CA")
            .self_signed(&client_ca_key)
            .expect("client CA");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(client_ca.der().clone()).expect("client CA root");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

// ---------------------------------------------------------------------------------------------
// The files
// ---------------------------------------------------------------------------------------------

/// URL path ("/assets/app.js") to contents.
type Files = HashMap<String, Arc<Vec<u8>>>;

fn load_files(root: &Path) -> Files {
    fn walk(root: &Path, dir: &Path, files: &mut Files) {
        for entry in std::fs::read_dir(dir).expect("read www") {
            let path = entry.expect("www entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let rel = path.strip_prefix(root).expect("under www");
                let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
                files.insert(url, Arc::new(std::fs::read(&path).expect("read file")));
            }
        }
    }
    let mut files = Files::new();
    walk(root, root, &mut files);
    assert!(
        files.contains_key("/index.html"),
        "no index.html in {}",
        root.display()
    );
    files
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("webmanifest") => "application/manifest+json",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("svg") => "image/svg+xml",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn is_large_asset(path: &str) -> bool {
    path.starts_with("/assets/vendor.") && path.ends_with(".js")
}

/// The large asset's URL path and contents.
fn large_asset(files: &Files) -> (String, Arc<Vec<u8>>) {
    let (path, body) = files
        .iter()
        .find(|(p, _)| is_large_asset(p))
        .expect("www has /assets/vendor.*.js");
    assert!(
        body.len() > 64 * 1024,
        "{path} is too small for mid-body faults"
    );
    (path.clone(), body.clone())
}

fn css_asset(files: &Files) -> String {
    files
        .keys()
        .find(|p| p.starts_with("/assets/") && p.ends_with(".css"))
        .expect("www has a stylesheet")
        .clone()
}

// ---------------------------------------------------------------------------------------------
// The transport: a TcpStream that can flip one byte of outgoing ciphertext
// ---------------------------------------------------------------------------------------------

/// Follows the TLS record layer of a byte stream (5-byte headers: type, version, length).
#[derive(Debug, Clone, Default)]
struct RecordParser {
    /// Stream offset of the next byte fed.
    pos: u64,
    header: [u8; 5],
    have: usize,
    record_start: u64,
    remaining: usize,
}

impl RecordParser {
    /// Feeds the next bytes of the stream; `on_header(record_start, type, length)` for every
    /// record header completed by them.
    fn feed(&mut self, mut data: &[u8], on_header: &mut impl FnMut(u64, u8, usize)) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                self.pos += n as u64;
                data = &data[n..];
                continue;
            }
            if self.have == 0 {
                self.record_start = self.pos;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            self.pos += 1;
            data = &data[1..];
            if self.have == self.header.len() {
                let len = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                on_header(self.record_start, self.header[0], len);
                self.have = 0;
                self.remaining = len;
            }
        }
    }
}

/// Flips one byte in the middle of the payload of the first application-data record that
/// starts at or after `after` (never a record header: that would be a different error).
#[derive(Debug)]
struct Corrupter {
    after: u64,
    /// The parser over the bytes the socket accepted.
    parser: RecordParser,
    target: Option<u64>,
    done: bool,
}

struct FaultyIo {
    tcp: TcpStream,
    corrupt: Option<Corrupter>,
}

impl AsyncRead for FaultyIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(c) = this.corrupt.as_mut().filter(|c| !c.done) else {
            return Pin::new(&mut this.tcp).poll_write(cx, buf);
        };
        if c.target.is_none() {
            // Look ahead without committing: the socket may accept only part of `buf`, but the
            // target is a function of the stream alone, so a later call finds the same one.
            let mut ahead = c.parser.clone();
            let (after, mut found) = (c.after, None);
            ahead.feed(buf, &mut |start, kind, len| {
                if found.is_none() && kind == APPLICATION_DATA && start >= after && len >= 64 {
                    found = Some(start + 5 + (len as u64) / 2);
                }
            });
            c.target = found;
        }
        let start = c.parser.pos;
        let poll = match c.target {
            Some(t) if t >= start && t < start + buf.len() as u64 => {
                let at = usize::try_from(t - start).expect("offset fits");
                let mut copy = buf.to_vec();
                copy[at] ^= 0x5a;
                let poll = Pin::new(&mut this.tcp).poll_write(cx, &copy);
                if matches!(poll, Poll::Ready(Ok(n)) if n > at) {
                    c.done = true;
                }
                poll
            }
            _ => Pin::new(&mut this.tcp).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = poll {
            c.parser.feed(&buf[..n], &mut |_, _, _| {});
        }
        poll
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// The HTTP/1.1 server
// ---------------------------------------------------------------------------------------------

/// How a connection ends.
enum End {
    /// Orderly: close_notify, then FIN.
    Clean,
    /// FIN without close_notify, in the middle of a body.
    CloseWithoutNotify,
    /// RST in the middle of a body.
    Reset,
    /// Nothing more is written; the connection stays open until the client gives up.
    Stall,
}

/// A running faulty server; dropping it stops it.
struct FaultyServer {
    addr: SocketAddr,
    ca_pem_path: PathBuf,
    ca_der: CertificateDer<'static>,
    files: Arc<Files>,
    dir: tempfile::TempDir,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl FaultyServer {
    fn start(fault: Fault) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let pki = make_pki();
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_pem_path = dir.path().join("ca.pem");
        std::fs::write(&ca_pem_path, &pki.ca_pem).expect("write CA");
        let files = Arc::new(load_files(&www()));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&pki, fault)));
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let served = files.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(tcp, acceptor.clone(), fault, served.clone()));
            }
        });
        FaultyServer {
            addr,
            ca_pem_path,
            ca_der: pki.ca_der,
            files,
            dir,
            rt: Some(rt),
        }
    }

    fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("running").block_on(f)
    }
}

/// Reads until the peer closes (or errors), for at most a few seconds: closing a socket with
/// unread data would send an RST instead of the FIN (or alert) the fault means to show.
async fn drain<R: AsyncRead + Unpin>(r: &mut R) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

async fn connection(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    fault: Fault,
    files: Arc<Files>,
) {
    let io = FaultyIo {
        tcp,
        corrupt: (fault == Fault::CorruptRecord).then(|| Corrupter {
            after: CORRUPT_AFTER,
            parser: RecordParser::default(),
            target: None,
            done: false,
        }),
    };
    let mut tls = match acceptor.accept(io).into_fallible().await {
        Ok(tls) => tls,
        Err((_, mut io)) => {
            // The alert (if any) has been written: FIN after it, and let the client read it.
            let _ = io.tcp.shutdown().await;
            drain(&mut io.tcp).await;
            return;
        }
    };
    match serve(&mut tls, fault, &files).await {
        Ok(End::Clean) => {
            let _ = tls.shutdown().await;
        }
        Ok(End::CloseWithoutNotify) => {
            // Never let rustls near the socket again: no close_notify, just a FIN.
            let (mut io, _) = tls.into_inner();
            let _ = io.tcp.shutdown().await;
            drain(&mut io.tcp).await;
        }
        Ok(End::Reset) => {
            // Give the half body time to arrive, then abort: SO_LINGER 0 makes close an RST.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (io, _) = tls.into_inner();
            socket2::SockRef::from(&io.tcp)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER 0");
            drop(io);
        }
        Ok(End::Stall) => {
            // Hold the connection, writing nothing, until the client closes it.
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        Err(_) => {}
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Serves requests on one connection until it ends, injecting `fault`.
async fn serve(tls: &mut TlsStream<FaultyIo>, fault: Fault, files: &Files) -> io::Result<End> {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Err(invalid("request head too large"));
            }
            let n = tls.read(&mut chunk).await?;
            if n == 0 {
                return Ok(End::Clean);
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);

        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let (method, target, version) = (
            request_line.next().unwrap_or_default().to_owned(),
            request_line.next().unwrap_or_default().to_owned(),
            request_line.next().unwrap_or_default().to_owned(),
        );
        if !target.starts_with('/') || !version.starts_with("HTTP/1.") {
            return Err(invalid("bad request line"));
        }
        let mut close = version == "HTTP/1.0";
        let mut request_body = 0usize;
        for line in lines.filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return Err(invalid("bad header line"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("content-length") {
                request_body = value.parse().map_err(|_| invalid("bad content-length"))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid("request bodies are not supported"));
            }
        }
        // Discard any request body.
        while buf.len() < request_body {
            let n = tls.read(&mut chunk).await?;
            if n == 0 {
                return Ok(End::Clean);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..request_body);

        let path = target.split(['?', '#']).next().unwrap_or("/");
        let (status, ctype, mut body): (u16, &str, Arc<Vec<u8>>) = if fault == Fault::Status500
            && path.starts_with("/assets/")
            && path.ends_with(".css")
        {
            (
                500,
                "text/plain; charset=utf-8",
                Arc::new(b"injected fault\n".to_vec()),
            )
        } else if let Some(body) = files.get(path) {
            (200, content_type(path), body.clone())
        } else if path == "/" || !path.rsplit('/').next().unwrap_or_default().contains('.') {
            (200, content_type(".html"), files["/index.html"].clone())
        } else {
            (
                404,
                "text/plain; charset=utf-8",
                Arc::new(b"not found\n".to_vec()),
            )
        };
        let large = status == 200 && is_large_asset(path);
        if large && fault == Fault::FlipBodyByte {
            let mut flipped = body.to_vec();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x01;
            body = Arc::new(flipped);
        }
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            _ => "Internal Server Error",
        };
        let response_head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
             Cache-Control: no-cache\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" },
        );
        tls.write_all(response_head.as_bytes()).await?;
        if method == "HEAD" {
            tls.flush().await?;
        } else if large
            && matches!(
                fault,
                Fault::CloseMidBody | Fault::ResetMidBody | Fault::Stall
            )
        {
            tls.write_all(&body[..body.len() / 2]).await?;
            tls.flush().await?;
            return Ok(match fault {
                Fault::CloseMidBody => End::CloseWithoutNotify,
                Fault::ResetMidBody => End::Reset,
                _ => End::Stall,
            });
        } else {
            tls.write_all(&body).await?;
            tls.flush().await?;
        }
        if close {
            return Ok(End::Clean);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Self-checks of the faulty servers (with a tiny raw client, no loadtest involved)
// ---------------------------------------------------------------------------------------------

/// Status and body of one GET on a fresh connection (TLS to 127.0.0.1, ALPN http/1.1).
async fn raw_get(server: &FaultyServer, path: &str) -> io::Result<(u16, Vec<u8>)> {
    raw_get_with(server, path, rustls::DEFAULT_VERSIONS).await
}

/// [`raw_get`] with the given TLS versions offered.
async fn raw_get_with(
    server: &FaultyServer,
    path: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> io::Result<(u16, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.ca_der.clone()).expect("CA root");
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.addr).await?;
    let name = ServerName::IpAddress(server.addr.ip().into());
    let mut tls = connector.connect(name, tcp).await?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    tls.write_all(request.as_bytes()).await?;
    tls.flush().await?;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let length: usize = head
        .split("\r\n")
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
        })
        .expect("content-length");
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "clean EOF mid-body",
            ));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, body))
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

#[test]
fn server_self_check_control() {
    let server = FaultyServer::start(Fault::None);
    let (large, body) = large_asset(&server.files);
    server.block_on(async {
        let (status, got) = raw_get(&server, &large).await.expect("large asset");
        assert_eq!((status, got.len()), (200, body.len()));
        assert!(got == *body, "control server changed {large}");
        let (status, got) = raw_get(&server, "/").await.expect("index");
        assert_eq!((status, &got), (200, &*server.files["/index.html"]));
        let (status, got) = raw_get(&server, "/some/deep/link")
            .await
            .expect("deep link");
        assert_eq!((status, &got), (200, &*server.files["/index.html"]));
        let (status, _) = raw_get(&server, "/assets/missing.js").await.expect("404");
        assert_eq!(status, 404);
    });
}

#[test]
fn server_self_check_flip_body_byte() {
    let server = FaultyServer::start(Fault::FlipBodyByte);
    let (large, body) = large_asset(&server.files);
    server.block_on(async {
        let (status, got) = raw_get(&server, &large).await.expect("large asset");
        assert_eq!((status, got.len()), (200, body.len()));
        let differing = got.iter().zip(body.iter()).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 1);
    });
}

#[test]
fn server_self_check_close_mid_body() {
    let server = FaultyServer::start(Fault::CloseMidBody);
    let (large, _) = large_asset(&server.files);
    server.block_on(async {
        for versions in [TLS13, TLS12] {
            let err = raw_get_with(&server, &large, versions)
                .await
                .expect_err("truncated");
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
            assert!(err.to_string().contains("close_notify"), "{err}");
        }
    });
}

#[test]
fn server_self_check_reset_mid_body() {
    let server = FaultyServer::start(Fault::ResetMidBody);
    let (large, _) = large_asset(&server.files);
    server.block_on(async {
        for versions in [TLS13, TLS12] {
            let err = raw_get_with(&server, &large, versions)
                .await
                .expect_err("reset");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        }
    });
}

#[test]
fn server_self_check_corrupt_record() {
    let server = FaultyServer::start(Fault::CorruptRecord);
    let (large, _) = large_asset(&server.files);
    server.block_on(async {
        // Small responses stay below the corruption offset.
        let (status, _) = raw_get(&server, "/").await.expect("index");
        assert_eq!(status, 200);
        let err = raw_get(&server, &large).await.expect_err("corrupt record");
        assert_eq!(
            rustls_error(&err),
            Some(&rustls::Error::DecryptError),
            "{err}"
        );
    });
}

#[test]
fn server_self_check_status_500() {
    let server = FaultyServer::start(Fault::Status500);
    let css = css_asset(&server.files);
    server.block_on(async {
        let (status, _) = raw_get(&server, &css).await.expect("css");
        assert_eq!(status, 500);
        let (status, _) = raw_get(&server, "/").await.expect("index");
        assert_eq!(status, 200);
    });
}

#[test]
fn server_self_check_stall() {
    let server = FaultyServer::start(Fault::Stall);
    let (large, _) = large_asset(&server.files);
    server.block_on(async {
        let got = tokio::time::timeout(Duration::from_secs(1), raw_get(&server, &large)).await;
        assert!(got.is_err(), "expected a stall, got {got:?}");
    });
}

#[test]
fn server_self_check_require_client_cert() {
    let server = FaultyServer::start(Fault::RequireClientCert);
    server.block_on(async {
        let err = raw_get(&server, "/")
            .await
            .expect_err("client certificate required");
        assert_eq!(
            rustls_error(&err),
            Some(&rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            )),
            "{err}"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// The storm against each faulty server
// ---------------------------------------------------------------------------------------------

struct StormRun {
    code: Option<i32>,
    elapsed: Duration,
    json: Option<serde_json::Value>,
    stdout: String,
    stderr: String,
}

impl fmt::Display for StormRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "exit code: {:?} after {:.1?}", self.code, self.elapsed)?;
        match &self.json {
            Some(json) => writeln!(
                f,
                "json: {}",
                serde_json::to_string_pretty(json).unwrap_or_default()
            )?,
            None => writeln!(f, "json: (none written)")?,
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

impl StormRun {
    fn json(&self) -> &serde_json::Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("the storm wrote no JSON report\n{self}"))
    }

    fn count(&self, pointer: &str) -> u64 {
        self.json()
            .pointer(pointer)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("no count at {pointer} in the JSON report\n{self}"))
    }

    /// Error classes with a non-zero count.
    fn classes(&self) -> Vec<(String, u64)> {
        let by_class = self
            .json()
            .pointer("/errors/by_class")
            .and_then(serde_json::Value::as_object)
            .unwrap_or_else(|| panic!("no errors.by_class object in the JSON report\n{self}"));
        let mut classes: Vec<(String, u64)> = by_class
            .iter()
            .map(|(k, v)| {
                let n = v
                    .as_u64()
                    .unwrap_or_else(|| panic!("errors.by_class.{k} is not a count\n{self}"));
                (k.clone(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        classes.sort();
        classes
    }
}

/// Runs `loadtest storm` against `server` (HTTP/1.1 only, no aborts, 2 users, 3 s, at most 20
/// page loads) and collects its exit status and JSON report.
fn storm(server: &FaultyServer, extra: &[&str]) -> StormRun {
    let out = server.dir.path().join("out.json");
    let stdout_path = server.dir.path().join("stdout.txt");
    let stderr_path = server.dir.path().join("stderr.txt");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("storm")
        .arg("--url")
        .arg(server.url())
        .arg("--ca")
        .arg(&server.ca_pem_path)
        .arg("--root")
        .arg(www())
        .args(["--users", "2", "--duration", "3s", "--max-page-loads", "20"])
        .args(["--mix", "h1", "--abort-share", "0", "--quiet", "--json"])
        .arg(&out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start loadtest");
    let deadline = started + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for loadtest") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "loadtest storm still running after 60 s\n--- stderr ---\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = StormRun {
        code: status.code(),
        elapsed: started.elapsed(),
        json: std::fs::read(&out).ok().map(|bytes| {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("bad JSON report: {e}\n{}", String::from_utf8_lossy(&bytes))
            })
        }),
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    };
    eprintln!("{run}");
    run
}

/// The storm against `fault` must exit 1 and report errors of class `expected` and no other.
fn assert_reported(fault: Fault, expected: &str, extra: &[&str]) {
    let server = FaultyServer::start(fault);
    let run = storm(&server, extra);
    assert_eq!(
        run.code,
        Some(1),
        "{fault:?}: expected exit status 1\n{run}"
    );
    let classes = run.classes();
    assert!(
        classes.iter().any(|(class, _)| class == expected),
        "{fault:?}: no `{expected}` error among {classes:?}\n{run}"
    );
    let others: Vec<_> = classes
        .iter()
        .filter(|(class, _)| class != expected)
        .collect();
    assert!(
        others.is_empty(),
        "{fault:?}: misclassified errors {others:?} besides `{expected}`\n{run}"
    );
    let in_class: u64 = classes.iter().map(|(_, n)| n).sum();
    assert_eq!(
        run.count("/errors/total"),
        in_class,
        "{fault:?}: errors.total\n{run}"
    );
}

#[test]
fn storm_control_server_gives_no_errors() {
    let server = FaultyServer::start(Fault::None);
    let run = storm(&server, &[]);
    assert_eq!(run.code, Some(0), "control: expected exit status 0\n{run}");
    assert_eq!(run.count("/errors/total"), 0, "control: errors\n{run}");
    assert!(run.classes().is_empty(), "control: error classes\n{run}");
    assert!(
        run.count("/requests/ok") > 0,
        "control: no request succeeded\n{run}"
    );
    assert!(
        run.count("/page_loads/completed") > 0,
        "control: no page load completed\n{run}"
    );
}

#[test]
fn storm_reports_flipped_body_byte() {
    assert_reported(Fault::FlipBodyByte, "body_mismatch", &[]);
}

#[test]
fn storm_reports_eof_without_close_notify() {
    assert_reported(Fault::CloseMidBody, "eof_without_close_notify", &[]);
}

#[test]
fn storm_reports_reset_mid_body() {
    assert_reported(Fault::ResetMidBody, "reset_by_server", &[]);
}

#[test]
fn storm_reports_corrupt_record() {
    assert_reported(Fault::CorruptRecord, "tls_error:bad_record_mac", &[]);
}

#[test]
fn storm_reports_unexpected_status() {
    assert_reported(Fault::Status500, "unexpected_status:500", &[]);
}

#[test]
fn storm_reports_stall_as_timeout() {
    assert_reported(Fault::Stall, "timeout", &["--timeout", "2s"]);
}

#[test]
fn storm_reports_required_client_certificate() {
    assert_reported(
        Fault::RequireClientCert,
        "tls_alert_received:certificate_required",
        &[],
    );
}
