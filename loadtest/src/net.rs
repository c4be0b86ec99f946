//! Connections: TCP (with an optional RST on drop), rustls with a chosen resumption mode,
//! then hyper's HTTP/1.1 or HTTP/2 client connection chosen by ALPN; or QUIC and HTTP/3
//! (quic.rs), behind the same [`Conn`] and [`Requester`].

use crate::classify::Failure;
use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::{ClientSessionMemoryCache, Resumption, Tls12Resumption};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as Cx, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::quic::{self, Counting, QuicConfig, TicketStore};

/// How a connection's TLS session is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsKind {
    /// TLS 1.3, no resumption: always a full handshake.
    Full13,
    /// TLS 1.2, no resumption: always a full handshake.
    Full12,
    /// TLS 1.3 with a per-user ticket store (PSK resumption).
    Tls13,
    /// TLS 1.2 resumption by session ticket (RFC 5077).
    Tls12Ticket,
    /// TLS 1.2 resumption by session ID only (the server's session cache).
    Tls12Id,
    /// TLS 1.3 resumption in which QUIC connections use only tickets that this user's TCP
    /// connections received (the server shares its ticket keys between the two).
    TcpTicket,
}

impl TlsKind {
    /// Every kind, in label order.
    pub const ALL: [Self; 6] = [
        Self::Full13,
        Self::Full12,
        Self::Tls13,
        Self::Tls12Ticket,
        Self::Tls12Id,
        Self::TcpTicket,
    ];

    /// The label used on the command line and in reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::Full13 => "full13",
            Self::Full12 => "full12",
            Self::Tls13 => "tls13",
            Self::Tls12Ticket => "tls12-ticket",
            Self::Tls12Id => "tls12-id",
            Self::TcpTicket => "tcp-ticket",
        }
    }

    /// Parses a label.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.label() == s)
            .with_context(|| {
                let all: Vec<_> = Self::ALL.iter().map(|k| k.label()).collect();
                format!("unknown TLS kind {s:?} (one of {})", all.join(", "))
            })
    }

    /// Whether this kind tries to resume.
    pub fn resumes(self) -> bool {
        !matches!(self, Self::Full13 | Self::Full12)
    }

    /// Whether QUIC (TLS 1.3 only) can use this kind.
    pub fn quic(self) -> bool {
        matches!(self, Self::Full13 | Self::Tls13 | Self::TcpTicket)
    }
}

/// The HTTP version asked for by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// HTTP/1.1 (up to six connections per page load, like a browser).
    H1,
    /// HTTP/2 (one multiplexed connection).
    H2,
    /// HTTP/3 over QUIC (one multiplexed connection).
    H3,
}

impl Proto {
    /// The label used on the command line and in reports.
    pub fn label(self) -> &'static str {
        match self {
            Self::H1 => "h1",
            Self::H2 => "h2",
            Self::H3 => "h3",
        }
    }

    /// Whether one connection carries concurrent requests (HTTP/2, HTTP/3).
    pub fn multiplexed(self) -> bool {
        !matches!(self, Self::H1)
    }
}

/// Reads a PEM file of trust anchors.
pub fn roots(ca: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots
            .add(cert.with_context(|| format!("parsing {}", ca.display()))?)
            .with_context(|| format!("adding a root from {}", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("{}: no certificates", ca.display());
    }
    Ok(Arc::new(roots))
}

/// One client configuration per HTTP version, sharing a session store (per user and kind).
/// A key exchange group the client offers alone (`handshake --kx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kx {
    X25519,
    /// The post-quantum hybrid browsers send first (ML-KEM-768 + X25519).
    X25519MlKem768,
    P256,
}

impl Kx {
    /// From the flag's value (`x25519`, `x25519mlkem768`, `p256`; clap checks the list).
    pub fn from_flag(flag: &str) -> Self {
        match flag {
            "x25519mlkem768" => Self::X25519MlKem768,
            "p256" => Self::P256,
            _ => Self::X25519,
        }
    }

    fn group(self) -> &'static dyn rustls::crypto::SupportedKxGroup {
        use rustls::crypto::aws_lc_rs::kx_group;
        match self {
            Self::X25519 => kx_group::X25519,
            Self::X25519MlKem768 => kx_group::X25519MLKEM768,
            Self::P256 => kx_group::SECP256R1,
        }
    }
}

/// What the client offers instead of rustls' defaults: one cipher suite (the suites whose
/// name contains `cipher`: `AES_128_GCM`, `AES_256_GCM`, `CHACHA20`; servers that follow the
/// client's order, rustls' default, then use it, as they would for a browser that prefers
/// it) and one key exchange group (its key share is the one sent: no HelloRetryRequest).
#[derive(Debug, Clone, Copy, Default)]
pub struct Offer {
    pub cipher: Option<&'static str>,
    pub kx: Option<Kx>,
}

#[derive(Clone)]
pub struct KindConfigs {
    h1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
    h3: QuicConfig,
}

impl KindConfigs {
    /// Builds the configs for `kind` with a fresh session store.
    pub fn new(roots: &Arc<RootCertStore>, kind: TlsKind) -> Self {
        Self::offering(roots, kind, Offer::default())
    }

    /// Like [`KindConfigs::new`], offering only what `offer` names.
    pub fn offering(roots: &Arc<RootCertStore>, kind: TlsKind, offer: Offer) -> Self {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if let Some(want) = offer.cipher {
            provider
                .cipher_suites
                .retain(|s| format!("{:?}", s.suite()).contains(want));
        }
        if let Some(kx) = offer.kx {
            provider.kx_groups = vec![kx.group()];
        }
        let provider = Arc::new(provider);
        let versions: &[&rustls::SupportedProtocolVersion] = match kind {
            TlsKind::Full13 | TlsKind::Tls13 => &[&rustls::version::TLS13],
            TlsKind::TcpTicket => &[&rustls::version::TLS13],
            _ => &[&rustls::version::TLS12],
        };
        let memory: Arc<dyn rustls::client::ClientSessionStore> =
            Arc::new(ClientSessionMemoryCache::new(64));
        let tickets = Arc::new(TicketStore::default());
        // One verifier for TCP and QUIC: rustls resumes only sessions it verified.
        let verifier = Counting::new(roots);
        let mut base = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(
                Arc::clone(&verifier) as Arc<dyn rustls::client::danger::ServerCertVerifier>
            )
            .with_no_client_auth();
        base.resumption = match kind {
            TlsKind::Full13 | TlsKind::Full12 => Resumption::disabled(),
            TlsKind::Tls13 | TlsKind::Tls12Ticket => Resumption::store(Arc::clone(&memory)),
            TlsKind::Tls12Id => Resumption::store(Arc::clone(&memory))
                .tls12_resumption(Tls12Resumption::SessionIdOnly),
            TlsKind::TcpTicket => Resumption::store(tickets.tcp()),
        };
        // QUIC shares the TCP store (TLS 1.3 tickets resume on either transport).
        let h3 = match kind {
            TlsKind::Full13 | TlsKind::Full12 => QuicConfig::new(&base, &verifier, None, None),
            TlsKind::Tls13 | TlsKind::Tls12Ticket | TlsKind::Tls12Id => {
                QuicConfig::new(&base, &verifier, Some(memory), None)
            }
            TlsKind::TcpTicket => {
                QuicConfig::new(&base, &verifier, Some(tickets.quic()), Some(tickets))
            }
        };
        let mut h1 = base.clone();
        h1.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut h2 = base;
        h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self {
            h1: Arc::new(h1),
            h2: Arc::new(h2),
            h3,
        }
    }

    /// The QUIC side (HTTP/3).
    pub fn quic(&self) -> &QuicConfig {
        &self.h3
    }

    fn get(&self, proto: Proto) -> Arc<ClientConfig> {
        Arc::clone(match proto {
            Proto::H1 => &self.h1,
            Proto::H2 | Proto::H3 => &self.h2,
        })
    }
}

/// Where to connect and what to call the server.
#[derive(Clone, Debug)]
pub struct Target {
    /// The socket address (loopback in every shipped script).
    pub addr: SocketAddr,
    /// SNI / certificate name.
    pub name: ServerName<'static>,
    /// The same name as text (what quinn takes).
    pub host: String,
    /// `host[:port]` for Host / :authority.
    pub authority: String,
    /// `https://authority`.
    pub origin: String,
}

impl Target {
    /// Parses `https://host:port/...` and resolves the host.
    pub fn parse(url: &str) -> Result<(Self, String)> {
        let uri: http::Uri = url.parse().with_context(|| format!("bad URL {url:?}"))?;
        if uri.scheme_str() != Some("https") {
            bail!("--url must be https://...");
        }
        let host = uri.host().context("URL has no host")?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(bare, port))
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let name = ServerName::try_from(bare.to_owned())
            .with_context(|| format!("bad server name {host}"))?;
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let path = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.to_string());
        Ok((
            Self {
                addr,
                name,
                host: bare.to_owned(),
                origin: format!("https://{authority}"),
                authority,
            },
            path,
        ))
    }
}

/// TCP stream that resets (SO_LINGER 0) instead of closing when `rst` is set at drop.
pub struct Sock {
    inner: TcpStream,
    rst: Arc<AtomicBool>,
}

impl Drop for Sock {
    fn drop(&mut self) {
        if self.rst.load(Ordering::Relaxed) {
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for Sock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Cx<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Sock {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Cx<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Cx<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Cx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Cx<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    H3(quic::SendRequest),
}

/// Sends requests on a connection; HTTP/2 connections hand out several (one per stream).
pub struct Requester {
    sender: Sender,
    /// The connection driver's error, once it failed: hyper often hands the request only
    /// a cause-less "connection error" or "channel closed" while the driver holds the TLS
    /// alert or decrypt error that explains it.
    driver_error: DriverError,
    /// This end's address, so that an error can be matched with the server's log.
    local: Option<SocketAddr>,
    /// Responses completed through this requester.
    served: u32,
}

/// Where a connection's driver leaves the error that ended it.
pub type DriverError = Arc<std::sync::Mutex<Option<Failure>>>;

/// Runs a hyper connection, keeping its error for the requests that it broke.
fn drive<F>(conn: F, slot: DriverError) -> JoinHandle<Result<(), hyper::Error>>
where
    F: std::future::Future<Output = Result<(), hyper::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let r = conn.await;
        if let Err(e) = &r {
            if let Ok(mut g) = slot.lock() {
                *g = Some(Failure::from_error("connection", e));
            }
        }
        r
    })
}

/// What the TLS handshake produced.
#[derive(Debug, Clone, Copy)]
pub struct Handshake {
    /// The kind of configuration used.
    pub kind: TlsKind,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// Whether TLS 1.3 was negotiated.
    pub tls13: bool,
    /// The HTTP version ALPN chose.
    pub proto: Proto,
    /// Time from TCP connect start to the end of the handshake.
    pub elapsed: Duration,
}

/// One open connection.
pub struct Conn {
    /// Sends this connection's requests (HTTP/1.1: one at a time).
    pub req: Requester,
    driver: JoinHandle<Result<(), hyper::Error>>,
    /// TCP: close with an RST. QUIC: close with H3_REQUEST_CANCELLED at once (else the
    /// request streams are cancelled first and the connection closed with H3_NO_ERROR).
    rst: Arc<AtomicBool>,
    /// The handshake this connection made.
    pub handshake: Handshake,
    /// The QUIC connection (HTTP/3).
    quic: Option<quinn::Connection>,
}

/// A completed response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: http::StatusCode,
    /// `content-encoding`, if any.
    pub encoding: Option<String>,
    /// The body as received (still encoded).
    pub body: Bytes,
}

/// A TLS connection with no HTTP on it yet: what [`connect`] builds on, and what the
/// `attack` mode writes raw HTTP/1.1 and hand-built HTTP/2 frames to.
pub struct TlsConn {
    /// The TLS stream over TCP.
    pub stream: tokio_rustls::client::TlsStream<Sock>,
    /// The handshake it made (`proto` is what ALPN chose).
    pub handshake: Handshake,
    /// This end's address.
    pub local: Option<SocketAddr>,
    rst: Arc<AtomicBool>,
}

/// Opens TCP + TLS within `timeout` each, offering the ALPN protocols of `proto`.
pub async fn connect_tls(
    target: &Target,
    configs: &KindConfigs,
    kind: TlsKind,
    proto: Proto,
    timeout: Duration,
) -> Result<TlsConn, Failure> {
    let start = Instant::now();
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(target.addr)).await {
        Err(_) => return Err(Failure::new("timeout", "TCP connect timed out")),
        Ok(Err(e)) => return Err(Failure::new("connect_failed", format!("connect: {e}"))),
        Ok(Ok(t)) => t,
    };
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().ok();
    let rst = Arc::new(AtomicBool::new(false));
    let sock = Sock {
        inner: tcp,
        rst: Arc::clone(&rst),
    };
    let connector = TlsConnector::from(configs.get(proto));
    let tls =
        match tokio::time::timeout(timeout, connector.connect(target.name.clone(), sock)).await {
            Err(_) => return Err(Failure::new("timeout", "TLS handshake timed out")),
            Ok(Err(e)) => return Err(Failure::from_error("TLS handshake", &e)),
            Ok(Ok(t)) => t,
        };
    let c = tls.get_ref().1;
    let handshake = Handshake {
        kind,
        resumed: c.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        tls13: c.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3),
        proto: if c.alpn_protocol() == Some(b"h2") {
            Proto::H2
        } else {
            Proto::H1
        },
        elapsed: start.elapsed(),
    };
    Ok(TlsConn {
        stream: tls,
        handshake,
        local,
        rst,
    })
}

/// Opens TCP + TLS + HTTP within `timeout` (QUIC + HTTP/3 for [`Proto::H3`]).
pub async fn connect(
    target: &Target,
    configs: &KindConfigs,
    kind: TlsKind,
    proto: Proto,
    timeout: Duration,
) -> Result<Conn, Failure> {
    if proto == Proto::H3 {
        return quic::connect(target, configs.quic(), kind, timeout).await;
    }
    let TlsConn {
        stream: tls,
        handshake,
        local,
        rst,
    } = connect_tls(target, configs, kind, proto, timeout).await?;
    let io = TokioIo::new(tls);
    let driver_error = DriverError::default();
    let (sender, driver) = match handshake.proto {
        Proto::H1 => {
            let (s, c) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| Failure::from_error("HTTP/1.1 handshake", &e))?;
            (Sender::H1(s), drive(c, Arc::clone(&driver_error)))
        }
        Proto::H2 => {
            let (s, c) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .initial_stream_window_size(1 << 20)
                .initial_connection_window_size(4 << 20)
                .handshake(io)
                .await
                .map_err(|e| Failure::from_error("HTTP/2 handshake", &e))?;
            (Sender::H2(s), drive(c, Arc::clone(&driver_error)))
        }
        Proto::H3 => unreachable!("ALPN over TCP is h2 or http/1.1"),
    };
    Ok(Conn {
        req: Requester {
            sender,
            driver_error,
            local,
            served: 0,
        },
        driver,
        rst,
        handshake,
        quic: None,
    })
}

impl Requester {
    /// A requester on an HTTP/3 connection.
    pub fn h3(
        send: quic::SendRequest,
        driver_error: DriverError,
        local: Option<SocketAddr>,
    ) -> Self {
        Self {
            sender: Sender::H3(send),
            driver_error,
            local,
            served: 0,
        }
    }

    /// Sends GET `path` and reads the whole body; `on_chunk` sees each body chunk's size.
    pub async fn get(
        &mut self,
        target: &Target,
        path: &str,
        accept_encoding: Option<&str>,
        timeout: Duration,
        on_chunk: &(dyn Fn(usize) + Sync),
    ) -> Result<Response, Failure> {
        let mut head = false;
        let fut = async {
            let uri = match &mut self.sender {
                Sender::H1(_) => path.to_owned(),
                Sender::H2(_) => format!("{}{path}", target.origin),
                Sender::H3(s) => {
                    return quic::get(s, target, path, accept_encoding, on_chunk, &mut head).await;
                }
            };
            let mut req = http::Request::get(uri);
            if matches!(self.sender, Sender::H1(_)) {
                req = req.header(http::header::HOST, &target.authority);
            }
            if let Some(ae) = accept_encoding {
                req = req.header(http::header::ACCEPT_ENCODING, ae);
            }
            req = req.header(http::header::USER_AGENT, "rampart-loadtest/0.1");
            let req = req
                .body(Empty::<Bytes>::new())
                .map_err(|e| Failure::new("other", format!("building request: {e}")))?;
            let resp = match &mut self.sender {
                Sender::H1(s) => {
                    s.ready().await.map_err(|e| Failure::from_error(path, &e))?;
                    s.send_request(req).await
                }
                Sender::H2(s) => {
                    s.ready().await.map_err(|e| Failure::from_error(path, &e))?;
                    s.send_request(req).await
                }
                Sender::H3(_) => unreachable!("HTTP/3 returned above"),
            }
            .map_err(|e| Failure::from_error(path, &e))?;
            head = true;
            let (parts, mut body) = resp.into_parts();
            let mut buf = BytesMut::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| Failure::from_error(path, &e))?;
                if let Ok(data) = frame.into_data() {
                    on_chunk(data.len());
                    buf.extend_from_slice(&data);
                }
            }
            Ok::<Response, Failure>(Response {
                status: parts.status,
                encoding: parts
                    .headers
                    .get(http::header::CONTENT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: buf.freeze(),
            })
        };
        let r = match tokio::time::timeout(timeout, fut).await {
            Ok(Err(f)) if f.class == "other" => Err(self.explain(f).await),
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                "timeout",
                format!("{path}: no complete response in {timeout:?}"),
            )),
        };
        if r.is_ok() {
            self.served += 1;
        }
        let h2 = matches!(self.sender, Sender::H2(_));
        let h3 = matches!(self.sender, Sender::H3(_));
        let reused = self.served > 0;
        r.map_err(|mut f| {
            if let Some(local) = self.local {
                f.detail = format!("{} (client {local})", f.detail);
            }
            // quic.rs decides for HTTP/3 (GOAWAY, H3_REQUEST_REJECTED).
            f.retry_safe = !head
                && (if h3 {
                    f.retry_safe
                } else {
                    retry_safe(&f.class, h2, reused)
                });
            f
        })
    }

    /// Replaces a vague request error with the connection driver's, when it has one
    /// (waiting briefly: the driver may still be finishing).
    async fn explain(&self, vague: Failure) -> Failure {
        for _ in 0..40 {
            if let Some(f) = self.driver_error.lock().ok().and_then(|g| g.clone()) {
                return Failure::new(f.class, format!("{}; {}", vague.detail, f.detail));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        vague
    }
}

/// Whether a request that got no response byte may be resent on a new connection: only
/// after a clean close by the server (see [`Failure::retry_safe`]); never after a TLS error,
/// a close without close_notify, a reset or a timeout.
fn retry_safe(class: &str, h2: bool, reused: bool) -> bool {
    // "other" is hyper's "channel closed" / "canceled": the request was never sent because
    // the connection had already ended cleanly (a driver error would have replaced it).
    if h2 {
        class.starts_with("h2_goaway:") || class == "h2_reset:refused_stream" || class == "other"
    } else {
        // "truncated": closed with close_notify before the response.
        reused && (class == "truncated" || class == "other")
    }
}

impl Conn {
    /// An HTTP/3 connection (quic.rs builds it).
    pub fn h3(
        req: Requester,
        driver: JoinHandle<Result<(), hyper::Error>>,
        hard: Arc<AtomicBool>,
        handshake: Handshake,
        quic: quinn::Connection,
    ) -> Self {
        Self {
            req,
            driver,
            rst: hard,
            handshake,
            quic: Some(quic),
        }
    }

    /// A second requester for another concurrent stream (HTTP/2 and HTTP/3).
    pub fn stream(&self) -> Option<Requester> {
        let sender = match &self.req.sender {
            Sender::H2(s) => Sender::H2(s.clone()),
            Sender::H3(s) => Sender::H3(s.clone()),
            Sender::H1(_) => return None,
        };
        Some(Requester {
            sender,
            driver_error: Arc::clone(&self.req.driver_error),
            local: self.req.local,
            served: 0,
        })
    }

    /// Whether another request can go out on this connection.
    pub fn is_open(&self) -> bool {
        !self.driver.is_finished()
            && match &self.req.sender {
                Sender::H1(s) => !s.is_closed(),
                Sender::H2(s) => !s.is_closed(),
                Sender::H3(_) => self
                    .quic
                    .as_ref()
                    .is_some_and(|q| q.close_reason().is_none()),
            }
    }

    /// A handle that cuts this connection from elsewhere (see [`Conn::abort`]); true when
    /// it is a QUIC connection.
    pub fn killer(&self) -> (tokio::task::AbortHandle, Arc<AtomicBool>, bool) {
        (
            self.driver.abort_handle(),
            Arc::clone(&self.rst),
            self.quic.is_some(),
        )
    }

    /// Closes like a browser abandoning the page: the socket goes at once, without
    /// close_notify, with a TCP RST when `reset` (QUIC: CONNECTION_CLOSE, with
    /// H3_REQUEST_CANCELLED when `reset`).
    pub fn abort(self, reset: bool) {
        self.rst.store(reset, Ordering::Relaxed);
        self.driver.abort();
    }

    /// Closes cleanly (close_notify, FIN; QUIC: CONNECTION_CLOSE H3_NO_ERROR) and returns
    /// the driver's outcome.
    pub async fn close(self, timeout: Duration) -> Result<(), Failure> {
        if let Some(q) = &self.quic {
            drop(self.req);
            self.driver.abort();
            q.close(quinn::VarInt::from_u32(0x100), b"");
            return Ok(());
        }
        drop(self.req);
        match tokio::time::timeout(timeout, self.driver).await {
            Err(_) => Ok(()), // the server may keep the socket half-open; not a fault
            Ok(Err(_)) => Ok(()),
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(Failure::from_error("connection", &e)),
        }
    }
}

/// Decodes a body by its content-encoding.
pub fn decode(encoding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    match encoding.map(str::trim) {
        None | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            Ok(out)
        }
        Some("br") => {
            let mut out = Vec::new();
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .map_err(|e| format!("br: {e}"))?;
            Ok(out)
        }
        Some(other) => Err(format!("unexpected content-encoding {other:?}")),
    }
}
