//! HTTP/3 connections: QUIC by quinn on rustls (TLS 1.3, ALPN h3), HTTP/3 by h3 on top.
//!
//! quinn does not say whether a handshake resumed, so a user's configurations of one kind
//! (TCP and QUIC alike: rustls resumes only a session verified by the same verifier) share
//! a verifier that counts its calls: a resumed handshake verifies no certificate, so a QUIC
//! connection resumed when the count did not move during its handshake (a user makes one
//! handshake of a kind at a time) and, in all, resumed = connections - verifier calls.
//!
//! Tickets: a user's TCP and QUIC configurations share one session store, so a ticket from
//! an HTTP/2 connection resumes a QUIC handshake (the server's key ring is shared too).
//! [`TicketStore`] with `quic_keeps = false` is the `tcp-ticket` kind: QUIC connections
//! only ever use tickets that TCP connections brought.

use crate::classify::Failure;
use crate::net::{Conn, Handshake, Proto, Requester, Response, Target, TlsKind};
use bytes::{Buf, Bytes, BytesMut};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, NamedGroup, SignatureScheme};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The request side of an HTTP/3 connection (what `net::Requester` sends on).
pub type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// Tickets a store keeps per server, as rustls' own memory cache does.
const TICKETS_PER_SERVER: usize = 8;

/// Receive windows of this client. Loopback has a tiny bandwidth-delay product, so these do
/// not limit throughput; large ones only save MAX_STREAM_DATA frames on a 32 MiB body.
const STREAM_RECEIVE_WINDOW: u32 = 8 << 20;
const RECEIVE_WINDOW: u32 = 32 << 20;

/// The QUIC side of a user's configuration for one [`TlsKind`].
#[derive(Clone)]
pub struct QuicConfig {
    /// TLS 1.3, ALPN h3, the kind's session store and verifier (None: the kind's cipher
    /// list lacks what QUIC's Initial packets need).
    tls: Option<Arc<QuicClientConfig>>,
    /// The verifier's calls.
    calls: Arc<AtomicU64>,
    transport: Arc<quinn::TransportConfig>,
    /// One UDP socket for all this user's QUIC connections, made on first use (quinn needs
    /// the runtime).
    endpoint: Arc<OnceLock<quinn::Endpoint>>,
    /// The store, when it is a [`TicketStore`] (to ask whether a TCP ticket is held).
    tickets: Option<Arc<TicketStore>>,
}

impl QuicConfig {
    /// The QUIC configuration of a kind, made from its TCP configuration `base` (rustls
    /// resumes a session only under the same verifier and client-certificate resolver, so
    /// both must be the TCP ones), with the session store `store` (None: no resumption).
    pub fn new(
        base: &ClientConfig,
        verifier: &Arc<Counting>,
        store: Option<Arc<dyn ClientSessionStore>>,
        tickets: Option<Arc<TicketStore>>,
    ) -> Self {
        let mut tls = base.clone();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.resumption = match store {
            Some(s) => rustls::client::Resumption::store(s),
            None => rustls::client::Resumption::disabled(),
        };
        let mut transport = quinn::TransportConfig::default();
        transport
            .stream_receive_window(quinn::VarInt::from_u32(STREAM_RECEIVE_WINDOW))
            .receive_window(quinn::VarInt::from_u32(RECEIVE_WINDOW))
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(Duration::from_secs(30)).expect("30 s fits"),
            ))
            .keep_alive_interval(None);
        Self {
            tls: QuicClientConfig::try_from(Arc::new(tls)).ok().map(Arc::new),
            calls: Arc::clone(&verifier.calls),
            transport: Arc::new(transport),
            endpoint: Arc::new(OnceLock::new()),
            tickets,
        }
    }

    /// Whether a ticket from a TCP connection is waiting (`tcp-ticket` kind only; always
    /// true for the others, which need none).
    pub fn has_tcp_ticket(&self, name: &ServerName<'static>) -> bool {
        self.tickets.as_ref().is_none_or(|t| t.holds(name))
    }

    fn endpoint(&self) -> Result<quinn::Endpoint, Failure> {
        if let Some(e) = self.endpoint.get() {
            return Ok(e.clone());
        }
        let e = quinn::Endpoint::client((std::net::Ipv4Addr::UNSPECIFIED, 0).into())
            .map_err(|e| Failure::new("connect_failed", format!("UDP socket: {e}")))?;
        Ok(self.endpoint.get_or_init(|| e).clone())
    }
}

/// A verifier that counts its calls, then defers to webpki, remembering the chains it
/// accepted as a browser's verifier cache does: a handshake that presents a chain already
/// validated in the last minute (same certificates, same name) skips building the path
/// again. The handshake's own proof, the CertificateVerify signature over its transcript,
/// is checked every time. Without the cache a full-handshake benchmark spent most of the
/// client's core on path building and left the server idle between handshakes.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<WebPkiServerVerifier>,
    calls: Arc<AtomicU64>,
    accepted: std::sync::Mutex<Vec<Accepted>>,
}

/// A chain webpki accepted: its certificates, the name, and until when that holds.
#[derive(Debug, PartialEq, Eq)]
struct Accepted {
    chain: Vec<Vec<u8>>,
    name: String,
    not_after: UnixTime,
}

/// How many accepted chains are remembered (one per server a client talks to, here).
const ACCEPTED_MAX: usize = 8;

/// How long an accepted chain is taken on trust before it is validated again.
const ACCEPTED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

impl Counting {
    /// Webpki with `roots`, counted.
    pub fn new(roots: &Arc<rustls::RootCertStore>) -> Arc<Self> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), provider)
            .build()
            .expect("a root store with at least one anchor");
        Arc::new(Self {
            inner,
            calls: Arc::new(AtomicU64::new(0)),
            accepted: std::sync::Mutex::new(Vec::new()),
        })
    }
}

/// The chain as owned bytes, the end entity first.
fn chain_of(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> Vec<Vec<u8>> {
    std::iter::once(end_entity)
        .chain(intermediates)
        .map(|c| c.as_ref().to_vec())
        .collect()
}

impl ServerCertVerifier for Counting {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let chain = chain_of(end_entity, intermediates);
        let name = server_name.to_str();
        let known = |a: &Accepted| a.chain == chain && a.name == name && now <= a.not_after;
        let mut accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if accepted.iter().any(known) {
            return Ok(ServerCertVerified::assertion());
        }
        drop(accepted);
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        accepted = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        if accepted.len() >= ACCEPTED_MAX {
            accepted.remove(0);
        }
        let not_after = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            now.as_secs() + ACCEPTED_FOR.as_secs(),
        ));
        accepted.push(Accepted {
            chain,
            name: name.into_owned(),
            not_after,
        });
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A session store whose TLS 1.3 tickets can be kept from QUIC: the TCP face
/// ([`TicketStore::tcp`]) stores and takes tickets, the QUIC face only takes them, so every
/// resumed QUIC handshake used a ticket from TCP.
#[derive(Debug, Default)]
pub struct TicketStore {
    tickets: Mutex<HashMap<ServerName<'static>, VecDeque<rustls::client::Tls13ClientSessionValue>>>,
    other: OnceLock<ClientSessionMemoryCache>,
}

impl TicketStore {
    /// The face TCP configurations use.
    pub fn tcp(self: &Arc<Self>) -> Arc<dyn ClientSessionStore> {
        Arc::new(Face {
            store: Arc::clone(self),
            keeps: true,
        })
    }

    /// The face QUIC configurations use (takes tickets, keeps none).
    pub fn quic(self: &Arc<Self>) -> Arc<dyn ClientSessionStore> {
        Arc::new(Face {
            store: Arc::clone(self),
            keeps: false,
        })
    }

    /// Whether a ticket for `name` is held.
    pub fn holds(&self, name: &ServerName<'static>) -> bool {
        self.tickets
            .lock()
            .is_ok_and(|g| g.get(name).is_some_and(|q| !q.is_empty()))
    }

    fn other(&self) -> &ClientSessionMemoryCache {
        self.other.get_or_init(|| ClientSessionMemoryCache::new(4))
    }
}

#[derive(Debug)]
struct Face {
    store: Arc<TicketStore>,
    keeps: bool,
}

impl ClientSessionStore for Face {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.store.other().set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.store.other().kx_hint(server_name)
    }

    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.store.other().set_tls12_session(server_name, value);
    }

    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.store.other().tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.store.other().remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        if !self.keeps {
            return;
        }
        if let Ok(mut g) = self.store.tickets.lock() {
            let q = g.entry(server_name).or_default();
            if q.len() >= TICKETS_PER_SERVER {
                q.pop_front();
            }
            q.push_back(value);
        }
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        // Newest first, as rustls' memory cache does.
        self.store
            .tickets
            .lock()
            .ok()?
            .get_mut(server_name)?
            .pop_back()
    }
}

/// Opens QUIC + HTTP/3 within `timeout`; the handshake is resumed when no certificate was
/// verified.
pub async fn connect(
    target: &Target,
    config: &QuicConfig,
    kind: TlsKind,
    timeout: Duration,
) -> Result<Conn, Failure> {
    let start = Instant::now();
    let calls_before = config.calls.load(Ordering::Relaxed);
    let Some(tls) = &config.tls else {
        return Err(Failure::new(
            "other",
            "QUIC needs TLS 1.3 with AES-128-GCM offered",
        ));
    };
    let mut client = quinn::ClientConfig::new(Arc::clone(tls) as Arc<_>);
    client.transport_config(Arc::clone(&config.transport));
    let endpoint = config.endpoint()?;
    let connecting = endpoint
        .connect_with(client, target.addr, &target.host)
        .map_err(|e| Failure::new("connect_failed", format!("QUIC connect: {e}")))?;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => return Err(Failure::new("timeout", "QUIC handshake timed out")),
        Ok(Err(e)) => return Err(quic_failure("QUIC handshake", &e)),
        Ok(Ok(c)) => c,
    };
    let local = endpoint.local_addr().ok();
    let (mut driver, send) = match tokio::time::timeout(
        timeout,
        h3::client::new(h3_quinn::Connection::new(conn.clone())),
    )
    .await
    {
        Err(_) => return Err(Failure::new("timeout", "HTTP/3 set-up timed out")),
        Ok(Err(e)) => return Err(connection_failure("HTTP/3 set-up", &e)),
        Ok(Ok(x)) => x,
    };
    let handshake = Handshake {
        kind,
        resumed: config.calls.load(Ordering::Relaxed) == calls_before,
        tls13: true,
        proto: Proto::H3,
        elapsed: start.elapsed(),
    };
    let hard = Arc::new(AtomicBool::new(false));
    let slot = crate::net::DriverError::default();
    let guard = CloseOnDrop {
        conn: conn.clone(),
        hard: Arc::clone(&hard),
    };
    let driver_slot = Arc::clone(&slot);
    let driver = tokio::spawn(async move {
        let _guard = guard;
        let e = poll_fn(|cx| driver.poll_close(cx)).await;
        if !e.is_h3_no_error() {
            if let Ok(mut g) = driver_slot.lock() {
                *g = Some(connection_failure("connection", &e));
            }
        }
        Ok::<(), hyper::Error>(())
    });
    Ok(Conn::h3(
        Requester::h3(send, slot, local),
        driver,
        hard,
        handshake,
        conn,
    ))
}

/// Closes the QUIC connection when its driver task ends (aborted by a cut, or done):
/// H3_REQUEST_CANCELLED when `hard` (a connection dropped mid-body), else H3_NO_ERROR.
struct CloseOnDrop {
    conn: quinn::Connection,
    hard: Arc<AtomicBool>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if self.conn.close_reason().is_none() {
            let code = if self.hard.load(Ordering::Relaxed) {
                h3::error::Code::H3_REQUEST_CANCELLED
            } else {
                h3::error::Code::H3_NO_ERROR
            };
            self.conn.close(
                quinn::VarInt::from_u64(code.value()).unwrap_or_default(),
                b"",
            );
        }
    }
}

/// One GET over HTTP/3: the response with its whole body; `on_chunk` sees each chunk.
/// Sets `head` once the response head arrived.
pub async fn get(
    send: &mut SendRequest,
    target: &Target,
    path: &str,
    accept_encoding: Option<&str>,
    on_chunk: &(dyn Fn(usize) + Sync),
    head: &mut bool,
) -> Result<Response, Failure> {
    let mut req = http::Request::get(format!("{}{path}", target.origin));
    if let Some(ae) = accept_encoding {
        req = req.header(http::header::ACCEPT_ENCODING, ae);
    }
    let req = req
        .header(http::header::USER_AGENT, "rampart-loadtest/0.1")
        .body(())
        .map_err(|e| Failure::new("other", format!("building request: {e}")))?;
    let fail = |e: &h3::error::StreamError| stream_failure(path, e);
    // Dropped before its body ended (a refresh cut it), the stream tells the server with
    // STOP_SENDING (quinn's code 0: h3-quinn's stop_sending panics while a read is pending).
    let mut s = send.send_request(req).await.map_err(|e| fail(&e))?;
    s.finish().await.map_err(|e| fail(&e))?;
    let resp = s.recv_response().await.map_err(|e| fail(&e))?;
    *head = true;
    let mut buf = BytesMut::new();
    while let Some(mut chunk) = s.recv_data().await.map_err(|e| fail(&e))? {
        let n = chunk.remaining();
        on_chunk(n);
        buf.extend_from_slice(&chunk.copy_to_bytes(n));
    }
    Ok(Response {
        status: resp.status(),
        encoding: resp
            .headers()
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: buf.freeze(),
    })
}

/// `h3_reset:<code>` (the server reset the stream), `h3_goaway` (it is closing: safe to
/// resend), `h3_close:<code>` (it closed the connection), `timeout`, or quinn's class.
fn stream_failure(context: &str, e: &h3::error::StreamError) -> Failure {
    use h3::error::StreamError as S;
    let class = match e {
        S::RemoteTerminate { code, .. } => format!("h3_reset:{}", code_label(*code)),
        S::RemoteClosing { .. } => "h3_goaway".into(),
        S::ConnectionError { 0: c, .. } => return connection_failure(context, c),
        S::HeaderTooBig { .. } => "h3_header_too_big".into(),
        _ => "other".into(),
    };
    let mut f = Failure::new(class, format!("{context}: {e}"));
    f.retry_safe = matches!(e, S::RemoteClosing { .. })
        || matches!(e, S::RemoteTerminate { code, .. } if *code == h3::error::Code::H3_REQUEST_REJECTED);
    f
}

fn connection_failure(context: &str, e: &h3::error::ConnectionError) -> Failure {
    use h3::error::ConnectionError as C;
    use h3::quic::ConnectionErrorIncoming as I;
    let class = match e {
        C::Timeout { .. } | C::Remote { 0: I::Timeout, .. } => "timeout".into(),
        C::Remote {
            0: I::ApplicationClose { error_code },
            ..
        } => {
            format!("h3_close:{}", code_label_u64(*error_code))
        }
        C::Remote {
            0: I::Undefined(inner),
            ..
        } => match inner.downcast_ref::<quinn::ConnectionError>() {
            Some(q) => return quic_failure(context, q),
            None => "quic_error:other".into(),
        },
        _ => "other".into(),
    };
    Failure::new(class, format!("{context}: {e}"))
}

/// quinn's connection errors: TLS alerts the server sent keep their TLS labels.
fn quic_failure(context: &str, e: &quinn::ConnectionError) -> Failure {
    use quinn::ConnectionError as Q;
    let class = match e {
        Q::TimedOut => "timeout".into(),
        Q::Reset => "reset_by_server".into(),
        Q::ApplicationClosed(a) => {
            format!("h3_close:{}", code_label_u64(a.error_code.into_inner()))
        }
        Q::ConnectionClosed(c) => {
            let code = u64::from(c.error_code);
            if (0x100..0x200).contains(&code) {
                let alert = rustls::AlertDescription::from(u8::try_from(code - 0x100).unwrap_or(0));
                crate::classify::tls_label(&rustls::Error::AlertReceived(alert))
            } else {
                format!("quic_close:{:#x}", code)
            }
        }
        Q::TransportError(_) => "quic_error:transport".into(),
        Q::VersionMismatch => "quic_error:version_mismatch".into(),
        Q::LocallyClosed => "other".into(),
        Q::CidsExhausted => "quic_error:cids_exhausted".into(),
    };
    Failure::new(class, format!("{context}: {e}"))
}

fn code_label(code: h3::error::Code) -> String {
    format!("{code:?}").to_ascii_lowercase()
}

fn code_label_u64(code: u64) -> String {
    // h3's codes print their names; build one to borrow its Debug.
    let known = [
        h3::error::Code::H3_NO_ERROR,
        h3::error::Code::H3_GENERAL_PROTOCOL_ERROR,
        h3::error::Code::H3_INTERNAL_ERROR,
        h3::error::Code::H3_EXCESSIVE_LOAD,
        h3::error::Code::H3_REQUEST_REJECTED,
        h3::error::Code::H3_REQUEST_CANCELLED,
        h3::error::Code::H3_REQUEST_INCOMPLETE,
        h3::error::Code::H3_MESSAGE_ERROR,
        h3::error::Code::H3_FRAME_ERROR,
        h3::error::Code::H3_FRAME_UNEXPECTED,
        h3::error::Code::H3_CLOSED_CRITICAL_STREAM,
    ];
    known
        .into_iter()
        .find(|c| c.value() == code)
        .map_or_else(|| format!("{code:#x}"), code_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_face_takes_tcp_tickets_and_keeps_none() {
        let store = Arc::new(TicketStore::default());
        let name = ServerName::try_from("127.0.0.1").unwrap();
        assert!(!store.holds(&name));
        assert!(store.quic().take_tls13_ticket(&name).is_none());
        assert_eq!(code_label_u64(0x10c), "h3_request_cancelled");
        assert_eq!(code_label_u64(0x1ff), "0x1ff");
    }
}
