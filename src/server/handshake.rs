//! Everything before the TLS session: the PROXY header from a trusted load balancer (with
//! `--proxy-protocol`), the sniff (TLS, plaintext HTTP or garbage), the plaintext answer and
//! the TLS handshake, under one deadline, with the failure classes and their (rate-limited)
//! log lines. A ClientHello offering `acme-tls/1` (a CA validating a TLS-ALPN-01 challenge,
//! with ACME on) gets the challenge certificate and is closed, never served. A client that
//! connected before shutdown still gets its handshake.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::server::Acceptor;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;

mod acme_answer;
mod failures;

use acme_answer::AcmeValidation;
use failures::{
    classify_error, closed_at_shutdown, handshake_failed, log_plaintext, not_tls, proxy_refused,
    Refusal,
};

use super::io::{close_gracefully, Prefixed};
use super::policy::SHUTDOWN_GRACE;
use super::shared::{Kind, Shared};
use super::sniff::{self, Sniff};
use super::{plaintext, proxy};
use crate::acme::challenge::ACME_TLS_ALPN;
use crate::config::PlaintextMode;
use crate::telemetry::{FailureClass, Metrics};

/// The established session, boxed: moved by value through the serving futures (rustc keeps
/// a copy per async fn), a 1.3 KiB stream would otherwise be counted several times over.
pub(super) type Tls = Box<tokio_rustls::server::TlsStream<Prefixed<TcpStream>>>;

/// Reads the PROXY header (trusted proxies), sniffs, answers plaintext, and runs the TLS
/// handshake; None when the connection ended (each step logged and counted why). Returns
/// the client's address with the session.
///
/// `local` is the listener's address (a wildcard for a listener on all addresses).
pub(super) async fn establish(
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Shared,
    kind: Kind,
) -> Option<(Tls, Option<String>, SocketAddr)> {
    let mut opening = Opening::new(tcp, peer, local, shared);
    opening.read_proxy_header().await?;
    if kind == Kind::Redirect {
        opening
            .answer_plaintext(PlaintextMode::Redirect, false)
            .await;
        return None;
    }
    match opening.sniff().await? {
        Sniff::Tls => opening.handshake().await,
        Sniff::Http => {
            opening
                .answer_plaintext(shared.limits.plaintext, true)
                .await;
            None
        }
        _ => {
            opening.refuse_garbage().await;
            None
        }
    }
}

/// A connection before its TLS session: what each step of [`establish`] reads and leaves
/// for the next, under one deadline. A step that ends the connection logs and counts why.
struct Opening<'a> {
    shared: &'a Shared,
    tcp: TcpStream,
    /// The client: the TCP peer, or the address a trusted proxy's header gave.
    peer: SocketAddr,
    /// The listener's address (a wildcard for a listener on all addresses).
    local: SocketAddr,
    /// When the handshake must be complete (`--handshake-timeout` from the accept).
    deadline: Instant,
    /// Bytes read so far and not yet consumed: replayed to the next step. The first read
    /// takes a whole ClientHello when it is there: one read, not two.
    first: Vec<u8>,
    /// With --proxy-protocol, a peer outside the trusted ranges: served directly, but it
    /// must not pass itself off as a proxy.
    untrusted: bool,
}

impl<'a> Opening<'a> {
    fn new(tcp: TcpStream, peer: SocketAddr, local: SocketAddr, shared: &'a Shared) -> Self {
        Self {
            shared,
            tcp,
            peer,
            local,
            deadline: Instant::now() + shared.limits.handshake_timeout,
            first: Vec::with_capacity(FIRST_READ),
            untrusted: false,
        }
    }

    /// With `--proxy-protocol`: a trusted proxy must send its header first, and its client
    /// address becomes the peer. `None` when the connection ended.
    async fn read_proxy_header(&mut self) -> Option<()> {
        let Some(trusted) = &self.shared.trusted_proxies else {
            return Some(());
        };
        if !trusted.iter().any(|range| range.contains(self.peer.ip())) {
            self.untrusted = true;
            return Some(());
        }
        let (shared, peer) = (self.shared, self.peer);
        let read = Box::pin(read_proxy_header(&mut self.tcp, shared, self.deadline)).await;
        match read {
            Ok((header, mut buf)) => {
                Metrics::inc(&shared.metrics.proxy_headers);
                if let Some(client) = header.source {
                    self.peer = client;
                }
                tracing::debug!(peer = %self.peer, proxy = %peer, version = header.version, address = header.source.is_some(), "PROXY header");
                self.first = buf.split_off(header.consumed);
                return Some(());
            }
            Err(HeaderCut::Closed { empty: true }) => {
                // A bare connect-and-close (a load balancer's TCP health check).
                Metrics::inc(&shared.metrics.handshake_failures[1]);
            }
            Err(HeaderCut::Closed { empty: false }) => {
                proxy_refused(shared, peer, Refusal::Trusted("closed inside the header"));
            }
            Err(HeaderCut::Invalid(why)) => {
                proxy_refused(shared, peer, Refusal::Trusted(why));
            }
            Err(HeaderCut::Cut(Cut::Timeout)) => {
                proxy_refused(shared, peer, Refusal::Trusted("no header in time"));
            }
            Err(HeaderCut::Cut(Cut::Shutdown)) => closed_at_shutdown(peer),
        }
        None
    }

    /// Reads until the first bytes tell TLS from plaintext HTTP and garbage; the bytes are
    /// replayed to whoever handles the connection next. `None` when it ended first.
    async fn sniff(&mut self) -> Option<Sniff> {
        let shared = self.shared;
        let class = loop {
            match sniff::classify(&self.first) {
                Sniff::NeedMore => {}
                v => return Some(v),
            }
            // Never fills: classify decides within MAX_SNIFF bytes.
            self.first.reserve(sniff::MAX_SNIFF);
            match before_tls(shared, self.deadline, self.tcp.read_buf(&mut self.first)).await {
                Err(Cut::Timeout) => break FailureClass::Timeout,
                Err(Cut::Shutdown) => {
                    closed_at_shutdown(self.peer);
                    return None;
                }
                Ok(Ok(0) | Err(_)) => break FailureClass::Eof,
                Ok(Ok(_)) => {}
            }
        };
        if class == FailureClass::Eof && self.first.is_empty() {
            // A bare connect-and-close (port scanners, load-balancer TCP checks).
            Metrics::inc(&shared.metrics.handshake_failures[1]);
        } else {
            handshake_failed(
                shared,
                self.peer,
                None,
                None,
                class,
                "before the first TLS record",
            );
        }
        None
    }

    /// Answers a plaintext HTTP request (a redirect to https, or 400; on the
    /// `--http-listen` port an ACME HTTP-01 challenge too), then closes; `on_tls_port` says
    /// where it came.
    async fn answer_plaintext(mut self, mode: PlaintextMode, on_tls_port: bool) {
        let local = connection_local(&self.tcp, self.local);
        // A CA validates HTTP-01 on port 80 (the --http-listen port), never on a TLS port.
        let challenges = if on_tls_port {
            None
        } else {
            self.shared.acme_challenges.as_ref()
        };
        // Rare paths are boxed so that their buffers do not size every connection's task.
        let outcome = Box::pin(plaintext::answer(
            &mut self.tcp,
            std::mem::take(&mut self.first),
            self.deadline,
            local,
            self.shared.https_port,
            mode,
            challenges,
        ));
        let outcome = before_tls(self.shared, self.deadline, outcome)
            .await
            .unwrap_or(plaintext::Outcome::Incomplete);
        log_plaintext(self.shared, self.peer, &outcome, on_tls_port);
        Box::pin(close_gracefully(self.tcp, false)).await;
    }

    /// Neither TLS nor HTTP: closed and logged; a PROXY header from an untrusted peer is
    /// told apart from other garbage.
    async fn refuse_garbage(mut self) {
        let shared = self.shared;
        if self.untrusted && proxy::looks_like_proxy(&self.first) {
            // The sniff stops at MAX_SNIFF bytes: read up to the v2 signature's length to
            // tell a PROXY header from other garbage.
            while self.first.len() < proxy::DECISIVE_LEN
                && proxy::looks_like_proxy(&self.first)
                && !proxy::is_proxy_start(&self.first)
            {
                let mut more = [0u8; proxy::DECISIVE_LEN];
                let want = proxy::DECISIVE_LEN - self.first.len();
                match before_tls(shared, self.deadline, self.tcp.read(&mut more[..want])).await {
                    Ok(Ok(n)) if n > 0 => self.first.extend_from_slice(&more[..n]),
                    _ => break,
                }
            }
            if proxy::is_proxy_start(&self.first) {
                proxy_refused(shared, self.peer, Refusal::Untrusted);
                return;
            }
        }
        not_tls(shared, self.peer, &self.first);
    }

    /// Runs the TLS handshake: the ClientHello picks the configuration (server name,
    /// ALPN), then the session is established with its tickets held for the first
    /// response. `None` when it failed (logged with its class).
    async fn handshake(self) -> Option<(Tls, Option<String>, SocketAddr)> {
        let Self {
            shared,
            tcp,
            peer,
            deadline,
            first,
            ..
        } = self;
        let io = Prefixed::new(first, tcp);
        let mut acceptor = std::pin::pin!(LazyConfigAcceptor::new(Acceptor::default(), io));
        let start = match before_tls(shared, deadline, acceptor.as_mut()).await {
            Ok(Ok(start)) => start,
            Ok(Err(e)) => {
                let (mut class, mut why) = classify_error(&e);
                // rustls does not queue an alert for every error it returns (a handshake
                // message over its size limit, found while reassembling, is one): the log
                // must not claim an alert that never went out.
                let sent = acceptor
                    .as_mut()
                    .get_mut()
                    .take_io()
                    .map_or(0, |io| io.written());
                if class == FailureClass::AlertSent && sent == 0 {
                    class = FailureClass::ProtocolError;
                    why = match e
                        .get_ref()
                        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    {
                        Some(tls) => format!("protocol_error({tls:?}; no alert sent)"),
                        None => format!("protocol_error({e}; no alert sent)"),
                    };
                }
                handshake_failed(
                    shared,
                    peer,
                    None,
                    None,
                    class,
                    &format!("ClientHello: {why}"),
                );
                return None;
            }
            Err(Cut::Timeout) => {
                handshake_failed(
                    shared,
                    peer,
                    None,
                    None,
                    FailureClass::Timeout,
                    "ClientHello did not arrive in time",
                );
                return None;
            }
            Err(Cut::Shutdown) => {
                closed_at_shutdown(peer);
                return None;
            }
        };
        let hello = start.client_hello();
        let sni = hello.server_name().map(str::to_owned);
        let alpn: Vec<String> = hello
            .alpn()
            .map(|a| a.map(|p| String::from_utf8_lossy(p).into_owned()).collect())
            .unwrap_or_default();
        if let Some(challenges) = &shared.acme_challenges {
            if hello
                .alpn()
                .is_some_and(|mut a| a.any(|p| p == ACME_TLS_ALPN))
            {
                let validation = AcmeValidation {
                    shared,
                    challenges,
                    peer,
                    deadline,
                    sni,
                };
                Box::pin(validation.answer(start)).await;
                return None;
            }
        }
        let config = Arc::clone(shared.tls.for_hello(&hello));
        let mut accept = start.into_stream(config);
        if let Some(io) = accept.get_mut() {
            io.hold_tickets();
        }
        let tls = match before_tls(shared, deadline, accept).await {
            Ok(Ok(mut tls)) => {
                // Records that came after the client's Finished (its first request) are
                // decrypted now; an error is kept by rustls and met by the first read.
                let (io, conn) = tls.get_mut();
                let request_waiting = conn
                    .process_new_packets()
                    .is_ok_and(|state| state.plaintext_bytes_to_read() > 0);
                io.handshake_done(request_waiting);
                tls
            }
            Ok(Err(e)) => {
                let (class, why) = classify_error(&e);
                handshake_failed(shared, peer, sni.as_deref(), Some(&alpn), class, &why);
                return None;
            }
            Err(Cut::Timeout) => {
                handshake_failed(
                    shared,
                    peer,
                    sni.as_deref(),
                    Some(&alpn),
                    FailureClass::Timeout,
                    "handshake did not complete in time",
                );
                return None;
            }
            Err(Cut::Shutdown) => {
                closed_at_shutdown(peer);
                return None;
            }
        };
        Some((Box::new(tls), sni, peer))
    }
}

/// The connection's own address: the listener's, unless that is a wildcard (then the
/// kernel is asked; only the plaintext answer needs it, so a TLS connection never is).
fn connection_local(tcp: &TcpStream, listener: SocketAddr) -> SocketAddr {
    if listener.ip().is_unspecified() {
        tcp.local_addr().unwrap_or(listener)
    } else {
        listener
    }
}

/// How much the first read of a connection may take: a ClientHello with a post-quantum key
/// share is about 1.8 KB.
const FIRST_READ: usize = 2048;

/// Why no PROXY header came from a trusted proxy.
enum HeaderCut {
    /// Bytes that are not a valid header (a TLS ClientHello: the proxy sends no header).
    Invalid(&'static str),
    /// The peer closed first; `empty` when it sent nothing at all.
    Closed { empty: bool },
    /// The deadline or shutdown.
    Cut(Cut),
}

/// Reads the PROXY header a trusted proxy must send first. Returns it with every byte read
/// (the header's `consumed` bytes, then the client's). Reads at most a few hundred bytes past
/// the [`proxy::V2_MAX`] cap.
async fn read_proxy_header(
    tcp: &mut TcpStream,
    shared: &Shared,
    deadline: Instant,
) -> Result<(proxy::Header, Vec<u8>), HeaderCut> {
    let mut buf = Vec::new();
    loop {
        match proxy::parse(&buf) {
            Ok(header) => return Ok((header, buf)),
            Err(proxy::Parse::Invalid(why)) => return Err(HeaderCut::Invalid(why)),
            Err(proxy::Parse::NeedMore) => {}
        }
        buf.reserve(256);
        match before_tls(shared, deadline, tcp.read_buf(&mut buf)).await {
            Err(cut) => return Err(HeaderCut::Cut(cut)),
            Ok(Ok(0) | Err(_)) => {
                return Err(HeaderCut::Closed {
                    empty: buf.is_empty(),
                })
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// Why a step before the TLS session was established was cut short.
enum Cut {
    /// The handshake deadline passed.
    Timeout,
    /// Shutdown began and the grace for handshakes in progress passed.
    Shutdown,
}

/// Runs one step of the sniff/handshake phase under the handshake deadline. A client that
/// connected before shutdown began still gets its handshake (and, in [`drive`], its first
/// request): within `SHUTDOWN_GRACE` (server/policy.rs) of the shutdown, so that a silent client cannot hold
/// up the exit. A restart behind SO_REUSEPORT thus fails no client that reached this
/// process.
async fn before_tls<F: Future>(
    shared: &Shared,
    deadline: Instant,
    step: F,
) -> Result<F::Output, Cut> {
    let mut step = std::pin::pin!(step);
    if !shared.tokens.graceful.is_cancelled() {
        tokio::select! {
            r = tokio::time::timeout_at(deadline, step.as_mut()) => return r.map_err(|_| Cut::Timeout),
            () = shared.tokens.graceful.cancelled() => {}
        }
    }
    let until = deadline.min(Instant::now() + SHUTDOWN_GRACE);
    tokio::select! {
        r = tokio::time::timeout_at(until, step) => r.map_err(|_| {
            if until < deadline { Cut::Shutdown } else { Cut::Timeout }
        }),
        () = shared.tokens.force.cancelled() => Err(Cut::Shutdown),
    }
}
