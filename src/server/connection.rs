//! One client connection, from the first byte to the close: the PROXY header from a trusted
//! load balancer (with `--proxy-protocol`), sniff (TLS, plaintext HTTP or garbage) and TLS
//! handshake under one deadline, then HTTP/1.1 or HTTP/2 chosen from ALPN,
//! driven with the header, idle and stall deadlines and the shutdown tokens. Every failure is
//! confined to this task, logged with the peer, and ends in the close path of
//! `ConnIo` (server/io.rs) (close_notify + lingering close).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use rustls::server::Acceptor;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::LazyConfigAcceptor;

use super::io::{close_gracefully, ConnIo, ConnState, Deadline, InFlight, Prefixed};
use super::sniff::{self, Sniff};
use super::{plaintext, proxy, Shared};
use crate::app::{AssetService, Body};
use crate::telemetry::{FailureClass, Metrics};

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// HTTPS (plaintext requests get the plaintext answer).
    Tls,
    /// The `--http-listen` port: every request is redirected.
    Redirect,
}

/// Serves one accepted connection to its end.
pub(crate) async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    kind: Kind,
) {
    // Everything before the TLS session (sniffing, plaintext answers, the handshake) is
    // boxed and freed once done, so that a connection's task is only as large as its
    // serving state (kept small for idle keep-alive connections, see PARK_AFTER).
    // `peer` is the client: the TCP peer, or the address a trusted proxy's header gave.
    let Some((tls, sni, peer)) = Box::pin(establish(tcp, peer, local, &shared, kind)).await else {
        return;
    };
    serve(tls, sni, peer, &shared).await;
}

/// Reads the PROXY header (trusted proxies), sniffs, answers plaintext, and runs the TLS
/// handshake; None when the connection ended. Returns the client's address with the session.
async fn establish(
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: &Arc<Shared>,
    kind: Kind,
) -> Option<(Tls, Option<String>, SocketAddr)> {
    let shared = Arc::clone(shared);
    let deadline = Instant::now() + shared.limits.handshake_timeout;
    let mut tcp = tcp;
    // Bytes read so far and not yet consumed: replayed to whoever handles the connection next.
    let mut first = Vec::with_capacity(sniff::MAX_SNIFF);
    // With --proxy-protocol, a peer outside the trusted ranges is served directly, but must
    // not pass itself off as a proxy.
    let mut untrusted = false;
    let mut peer = peer;
    if let Some(trusted) = &shared.trusted_proxies {
        if trusted.iter().any(|range| range.contains(peer.ip())) {
            let read = Box::pin(read_proxy_header(&mut tcp, &shared, deadline)).await;
            match read {
                Ok((header, mut buf)) => {
                    Metrics::inc(&shared.metrics.proxy_headers);
                    let proxy = peer;
                    if let Some(client) = header.source {
                        peer = client;
                    }
                    tracing::debug!(%peer, %proxy, version = header.version, address = header.source.is_some(), "PROXY header");
                    first = buf.split_off(header.consumed);
                }
                Err(HeaderCut::Closed { empty: true }) => {
                    // A bare connect-and-close (a load balancer's TCP health check).
                    Metrics::inc(&shared.metrics.handshake_failures[1]);
                    return None;
                }
                Err(HeaderCut::Closed { empty: false }) => {
                    proxy_refused(&shared, peer, Refusal::Trusted("closed inside the header"));
                    return None;
                }
                Err(HeaderCut::Invalid(why)) => {
                    proxy_refused(&shared, peer, Refusal::Trusted(why));
                    return None;
                }
                Err(HeaderCut::Cut(Cut::Timeout)) => {
                    proxy_refused(&shared, peer, Refusal::Trusted("no header in time"));
                    return None;
                }
                Err(HeaderCut::Cut(Cut::Shutdown)) => {
                    closed_at_shutdown(peer);
                    return None;
                }
            }
        } else {
            untrusted = true;
        }
    }
    if kind == Kind::Redirect {
        // Rare paths are boxed so that their buffers do not size every connection's task.
        let outcome = Box::pin(plaintext::answer(
            &mut tcp,
            first,
            deadline,
            local,
            shared.https_port,
            crate::cli::PlaintextMode::Redirect,
        ));
        let outcome = before_tls(&shared, deadline, outcome)
            .await
            .unwrap_or(plaintext::Outcome::Incomplete);
        log_plaintext(&shared, peer, &outcome, false);
        Box::pin(close_gracefully(tcp, false)).await;
        return None;
    }

    // Sniff by reading; the bytes are replayed to whoever handles the connection next.
    let verdict = loop {
        match sniff::classify(&first) {
            Sniff::NeedMore => {}
            v => break Ok(v),
        }
        let mut byte = [0u8; sniff::MAX_SNIFF];
        let want = sniff::MAX_SNIFF.saturating_sub(first.len()).max(1);
        match before_tls(&shared, deadline, tcp.read(&mut byte[..want])).await {
            Err(Cut::Timeout) => break Err(FailureClass::Timeout),
            Err(Cut::Shutdown) => {
                closed_at_shutdown(peer);
                return None;
            }
            Ok(Ok(0) | Err(_)) => break Err(FailureClass::Eof),
            Ok(Ok(n)) => first.extend_from_slice(&byte[..n]),
        }
    };
    match verdict {
        Ok(Sniff::Tls) => {}
        Ok(Sniff::Http) => {
            let outcome = Box::pin(plaintext::answer(
                &mut tcp,
                first,
                deadline,
                local,
                shared.https_port,
                shared.limits.plaintext,
            ));
            let outcome = before_tls(&shared, deadline, outcome)
                .await
                .unwrap_or(plaintext::Outcome::Incomplete);
            log_plaintext(&shared, peer, &outcome, true);
            Box::pin(close_gracefully(tcp, false)).await;
            return None;
        }
        Ok(_) if untrusted && proxy::looks_like_proxy(&first) => {
            // The sniff stops at MAX_SNIFF bytes: read up to the v2 signature's length to
            // tell a PROXY header from other garbage.
            while first.len() < proxy::DECISIVE_LEN
                && proxy::looks_like_proxy(&first)
                && !proxy::is_proxy_start(&first)
            {
                let mut more = [0u8; proxy::DECISIVE_LEN];
                let want = proxy::DECISIVE_LEN - first.len();
                match before_tls(&shared, deadline, tcp.read(&mut more[..want])).await {
                    Ok(Ok(n)) if n > 0 => first.extend_from_slice(&more[..n]),
                    _ => break,
                }
            }
            if proxy::is_proxy_start(&first) {
                proxy_refused(&shared, peer, Refusal::Untrusted);
            } else {
                not_tls(&shared, peer, &first);
            }
            return None;
        }
        Ok(_) => {
            not_tls(&shared, peer, &first);
            return None;
        }
        Err(class) => {
            if !(class == FailureClass::Eof && first.is_empty()) {
                handshake_failed(
                    &shared,
                    peer,
                    None,
                    None,
                    class,
                    "before the first TLS record",
                );
            } else {
                // A bare connect-and-close (port scanners, load-balancer TCP checks).
                Metrics::inc(&shared.metrics.handshake_failures[1]);
            }
            return None;
        }
    }

    let io = Prefixed::new(first, tcp);
    let mut acceptor = std::pin::pin!(LazyConfigAcceptor::new(Acceptor::default(), io));
    let start = match before_tls(&shared, deadline, acceptor.as_mut()).await {
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
                &shared,
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
                &shared,
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
    let tls = match before_tls(
        &shared,
        deadline,
        start.into_stream(Arc::clone(&shared.tls)),
    )
    .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let (class, why) = classify_error(&e);
            handshake_failed(&shared, peer, sni.as_deref(), Some(&alpn), class, &why);
            return None;
        }
        Err(Cut::Timeout) => {
            handshake_failed(
                &shared,
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

/// Why a connection was refused for its PROXY header.
enum Refusal {
    /// A trusted proxy's connection without a valid header: the reason.
    Trusted(&'static str),
    /// A PROXY header from outside the trusted ranges (a spoofing attempt, or a proxy that
    /// is missing from --trusted-proxy).
    Untrusted,
}

/// Counts and logs (rate-limited) a connection closed for its PROXY header.
fn proxy_refused(shared: &Shared, peer: SocketAddr, refusal: Refusal) {
    Metrics::inc(&shared.metrics.proxy_rejected);
    let Some(suppressed) = shared.warn_limit.allow() else {
        return;
    };
    match refusal {
        Refusal::Trusted(why) => {
            tracing::warn!(%peer, reason = why, suppressed, "no valid PROXY header from a trusted proxy; closed");
        }
        Refusal::Untrusted => {
            tracing::warn!(%peer, reason = "peer not in --trusted-proxy", suppressed, "PROXY header from an untrusted peer; closed");
        }
    }
}

/// Serves HTTP over an established session, then logs how it ended.
async fn serve(tls: Tls, sni: Option<String>, peer: SocketAddr, shared: &Arc<Shared>) {
    let conn = tls.get_ref().1;
    match conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => Metrics::inc(&shared.metrics.handshakes_resumed),
        Some(rustls::HandshakeKind::FullWithHelloRetryRequest) => {
            Metrics::inc(&shared.metrics.handshakes_full_hrr)
        }
        _ => Metrics::inc(&shared.metrics.handshakes_full),
    }
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => Metrics::inc(&shared.metrics.handshakes_tls12),
        _ => Metrics::inc(&shared.metrics.handshakes_tls13),
    }
    let h2 = conn.alpn_protocol() == Some(b"h2");
    tracing::debug!(%peer, sni = sni.as_deref().unwrap_or("none"), version = ?conn.protocol_version(), kind = ?conn.handshake_kind(), h2, "tls established");

    let access = shared.access_log.then(|| {
        Arc::new(ConnInfo {
            peer,
            tls: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
                _ => "1.3",
            },
            resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            sni: sni.clone(),
        })
    });
    let state = Arc::new(ConnState::new(!h2));
    let io = ConnIo::new(tls, Arc::clone(&state), shared.tracker.token());
    let svc = ConnService {
        app: shared.app.clone(),
        state: Arc::clone(&state),
        metrics: Arc::clone(&shared.metrics),
        h2,
        access,
    };
    let result = if h2 {
        serve_h2(io, svc, &state, shared).await
    } else {
        serve_h1(io, svc, &state, shared).await
    };
    match result {
        Ok(()) => {}
        Err(Ended {
            tls: Some(tls),
            why,
        }) => {
            // A TLS error inside an established session (an alert from the client, a record
            // that failed to decrypt): the failures this server exists to prevent.
            Metrics::inc(&shared.metrics.session_tls_errors);
            tracing::warn!(%peer, sni = sni.as_deref().unwrap_or("none"), h2, tls_error = %tls, reason = %why, "tls error in an established session");
        }
        Err(Ended { why, .. }) => {
            tracing::debug!(%peer, h2, reason = %why, "connection ended with an error");
        }
    }
}

/// Why an established connection ended early.
struct Ended {
    /// The rustls error in the cause chain, if any.
    tls: Option<String>,
    /// The whole cause chain, or the deadline that closed it.
    why: String,
}

impl Ended {
    fn deadline(why: &str) -> Self {
        Self {
            tls: None,
            why: why.to_owned(),
        }
    }

    fn from_error(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut why = e.to_string();
        let mut tls = None;
        let mut cur = Some(e);
        while let Some(err) = cur {
            let text = err.to_string();
            if !why.ends_with(&text) {
                why.push_str(": ");
                why.push_str(&text);
            }
            let inner = err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>());
            if let Some(t) = err.downcast_ref::<rustls::Error>().or(inner) {
                tls = Some(format!("{t:?}"));
                if inner.is_some() {
                    why.push_str(": ");
                    why.push_str(&t.to_string());
                }
            }
            cur = err.source();
        }
        Self { tls, why }
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
/// request): within [`SHUTDOWN_GRACE`] of the shutdown, so that a silent client cannot hold
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

/// Once shutdown began: how long a connection still in its handshake may take to finish
/// it, and how long a new session may take to send its first request.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn closed_at_shutdown(peer: SocketAddr) {
    tracing::debug!(%peer, "closed before the TLS handshake completed: shutting down");
}

/// How long an idle connection asked to close may take to do so.
const IDLE_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// An idle HTTP/1.1 keep-alive connection gives back hyper's buffers (two of 8 KiB) and its
/// serving state after this long without a request, and waits on the TLS stream alone; the
/// next request gets new ones (nginx frees its request buffers the same way). Back-to-back
/// requests never park.
const PARK_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// The established session, boxed: moved by value through the serving futures (rustc keeps
/// a copy per async fn), a 1.3 KiB stream would otherwise be counted several times over.
type Tls = Box<tokio_rustls::server::TlsStream<Prefixed<TcpStream>>>;

pub(crate) type Io = ConnIo<Tls>;

/// A hyper connection as [`drive`] runs it.
trait Serve: Future<Output = Result<Self::Done, Self::Error>> {
    /// What a connection that ended without error leaves behind.
    type Done;
    /// hyper's error.
    type Error: std::error::Error + 'static;
    /// Finish what is in flight, then end (hyper's graceful shutdown).
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C> Serve for C
where
    C: GracefulConnection,
    C::Error: std::error::Error + 'static,
{
    type Done = ();
    type Error = C::Error;
    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

type H1Conn = hyper::server::conn::http1::Connection<TokioIo<Io>, ConnService>;

/// An HTTP/1.1 connection that ends without shutting its stream down, giving the stream
/// back (and what hyper had read beyond the last request) so that it can park.
struct H1(Option<H1Conn>);

impl Future for H1 {
    type Output = Result<hyper::server::conn::http1::Parts<TokioIo<Io>, ConnService>, hyper::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Polled again after completion (drive never does): stays pending, never panics.
        let Some(conn) = self.0.as_mut() else {
            return Poll::Pending;
        };
        std::task::ready!(conn.poll_without_shutdown(cx))?;
        match self.0.take() {
            Some(conn) => Poll::Ready(Ok(conn.into_parts())),
            None => Poll::Pending,
        }
    }
}

impl Serve for H1 {
    type Done = hyper::server::conn::http1::Parts<TokioIo<Io>, ConnService>;
    type Error = hyper::Error;
    fn graceful_shutdown(mut self: Pin<&mut Self>) {
        if let Some(conn) = self.0.as_mut() {
            Pin::new(conn).graceful_shutdown();
        }
    }
}

async fn serve_h2(
    io: Io,
    svc: ConnService,
    state: &ConnState,
    shared: &Shared,
) -> Result<(), Ended> {
    let limits = &shared.limits;
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .initial_stream_window_size(1024 * 1024)
        .initial_connection_window_size(4 * 1024 * 1024)
        .max_send_buf_size(1024 * 1024);
    drive(
        Box::pin(b.serve_connection(TokioIo::new(io), svc)),
        state,
        shared,
        None,
    )
    .await
    .map(|_| ())
}

/// Serves HTTP/1.1 requests; between bursts of requests the connection parks (see
/// [`PARK_AFTER`]) until the next request's first byte, the idle timeout or shutdown.
async fn serve_h1(
    mut io: Io,
    svc: ConnService,
    state: &ConnState,
    shared: &Shared,
) -> Result<(), Ended> {
    let limits = &shared.limits;
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        // Deadlines are ours (ConnState): hyper's would also cut idle keep-alive.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_size.max(8192))
        .max_headers(limits.max_headers)
        .half_close(false);
    loop {
        let conn = H1(Some(b.serve_connection(TokioIo::new(io), svc.clone())));
        let (parts, parked) = drive(Box::pin(conn), state, shared, Some(PARK_AFTER)).await?;
        let hyper::server::conn::http1::Parts {
            io: back, read_buf, ..
        } = parts;
        io = back.into_inner();
        if !parked || shared.tokens.graceful.is_cancelled() {
            // hyper ended on its own (`Connection: close`, HTTP/1.0, the client's EOF) or
            // shutdown began: close (the close path sends close_notify).
            return Ok(());
        }
        if !read_buf.is_empty() {
            // The client already sent more: serve it at once.
            io.replay(read_buf);
            continue;
        }
        // Even empty, it can hold hyper's whole read buffer.
        drop(read_buf);
        // Parked: only the TLS stream is held. One byte tells that a request is coming.
        tracing::trace!("keep-alive connection parked");
        let mut first = [0u8; 1];
        let idle_until = state.idle_deadline(limits.idle_timeout);
        tokio::select! {
            r = io.read(&mut first) => match r {
                Ok(0) => return Ok(()),
                Ok(_) => io.replay(bytes::Bytes::copy_from_slice(&first)),
                Err(e) => return Err(Ended::from_error(&e)),
            },
            () = tokio::time::sleep_until(idle_until) => {
                Metrics::inc(&shared.metrics.connections_closed_idle);
                return Ok(());
            }
            () = shared.tokens.graceful.cancelled() => return Ok(()),
        }
    }
}

/// Runs a hyper connection under the deadlines and shutdown tokens; with `park_after`, an
/// idle connection is asked to end after that long (to park, see [`serve_h1`]). The flag
/// says whether it ended because it was asked to park.
async fn drive<C>(
    mut conn: Pin<Box<C>>,
    state: &ConnState,
    shared: &Shared,
    park_after: Option<std::time::Duration>,
) -> Result<(C::Done, bool), Ended>
where
    C: Serve,
{
    let mut closing = false;
    let mut parking = false;
    // Shutdown began before this session's first request: it is awaited until then.
    let mut first_request_until: Option<Instant> = None;
    // Set once an idle connection was asked to close: hyper closes an idle HTTP/1 connection
    // at once and an HTTP/2 one after GOAWAY; one that does not by then is dropped.
    let mut grace_until: Option<Instant> = None;
    let limits = &shared.limits;
    loop {
        let next = match grace_until {
            Some(until) if Instant::now() >= until => {
                Metrics::inc(&shared.metrics.connections_closed_stalled);
                return Err(Ended::deadline(
                    "did not close within the grace period after idling",
                ));
            }
            Some(until) => until,
            None => match state.check(
                limits.header_timeout,
                limits.idle_timeout,
                park_after.filter(|_| !closing && first_request_until.is_none()),
            ) {
                Deadline::Next(at) => at,
                Deadline::Park => {
                    // hyper ends an idle HTTP/1.1 connection at once when asked.
                    closing = true;
                    parking = true;
                    conn.as_mut().graceful_shutdown();
                    grace_until = Some(Instant::now() + IDLE_CLOSE_GRACE);
                    continue;
                }
                Deadline::Idle => {
                    Metrics::inc(&shared.metrics.connections_closed_idle);
                    if !closing {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    grace_until = Some(Instant::now() + IDLE_CLOSE_GRACE);
                    continue;
                }
                Deadline::Stalled => {
                    Metrics::inc(&shared.metrics.connections_closed_stalled);
                    return Err(Ended::deadline("no progress for the idle timeout"));
                }
                Deadline::HeaderTimeout => {
                    Metrics::inc(&shared.metrics.connections_closed_header_timeout);
                    return Err(Ended::deadline(
                        "request head not complete within the header timeout",
                    ));
                }
            },
        };
        if let Some(until) = first_request_until {
            if !closing && (state.wait_first_request() || Instant::now() >= until) {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
        let next = first_request_until
            .filter(|_| !closing)
            .map_or(next, |u| u.min(next));
        tokio::select! {
            res = conn.as_mut() => return res.map(|done| (done, parking)).map_err(|e| Ended::from_error(&e)),
            () = shared.tokens.graceful.cancelled(), if !closing && first_request_until.is_none() => {
                if state.wait_first_request() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                } else {
                    // A client that connected before shutdown gets its first request
                    // served (then `Connection: close` / GOAWAY), as nginx does.
                    first_request_until = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            }
            () = shared.tokens.force.cancelled() => return Err(Ended::deadline("shutdown deadline passed")),
            () = state.wake.notified() => {}
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

/// The per-connection hyper service: counts requests in flight (for the deadlines) around
/// the shared [`AssetService`], and records each response when its body ends (metrics, and
/// the access log when on).
#[derive(Clone)]
struct ConnService {
    app: AssetService,
    state: Arc<ConnState>,
    metrics: Arc<Metrics>,
    h2: bool,
    /// The connection as the access log describes it; None when the access log is off.
    access: Option<Arc<ConnInfo>>,
}

/// What the access log says about a request's connection.
struct ConnInfo {
    peer: SocketAddr,
    tls: &'static str,
    resumed: bool,
    sni: Option<String>,
}

impl hyper::service::Service<http::Request<Incoming>> for ConnService {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = ConnFuture;

    fn call(&self, req: http::Request<Incoming>) -> ConnFuture {
        self.state.request_started();
        Metrics::inc(if self.h2 {
            &self.metrics.requests_h2
        } else {
            &self.metrics.requests_h1
        });
        let access = self.access.as_ref().map(|conn| AccessLine {
            conn: Arc::clone(conn),
            method: req.method().clone(),
            target: req.uri().clone(),
            version: req.version(),
        });
        let done = RequestDone {
            _in_flight: InFlight(Arc::clone(&self.state)),
            metrics: Arc::clone(&self.metrics),
            h2: self.h2,
            start: std::time::Instant::now(),
            status: 0,
            len: 0,
            access,
        };
        let inner = tower::Service::call(&mut self.app.clone(), req);
        ConnFuture {
            inner,
            done: Some(done),
        }
    }
}

struct ConnFuture {
    inner: crate::app::ResponseFuture,
    done: Option<RequestDone>,
}

impl Future for ConnFuture {
    type Output = Result<http::Response<Body>, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let res = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        Poll::Ready(res.map(|r| match this.done.take() {
            Some(mut done) => {
                done.status = r.status().as_u16();
                done.len = r.body().remaining();
                r.map(|b| b.with_guard(done))
            }
            None => r,
        }))
    }
}

/// Rides on a response body; when the body ends (or is dropped), counts the response and
/// writes the access line. Dropping it ends the request's in-flight count.
struct RequestDone {
    _in_flight: InFlight,
    metrics: Arc<Metrics>,
    h2: bool,
    start: std::time::Instant,
    status: u16,
    /// Body length at the start.
    len: u64,
    access: Option<AccessLine>,
}

struct AccessLine {
    conn: Arc<ConnInfo>,
    method: http::Method,
    target: http::Uri,
    version: http::Version,
}

impl crate::app::OnDone for RequestDone {
    fn done(self: Box<Self>, unsent: u64) {
        let elapsed = self.start.elapsed();
        let bytes = self.len.saturating_sub(unsent);
        self.metrics.response(self.h2, self.status, bytes, elapsed);
        if let Some(a) = &self.access {
            let path = a
                .target
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str);
            tracing::info!(
                target: crate::telemetry::ACCESS_TARGET,
                peer = %a.conn.peer,
                method = %a.method,
                path,
                status = self.status,
                bytes,
                complete = unsent == 0,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                protocol = ?a.version,
                tls = a.conn.tls,
                resumed = a.conn.resumed,
                sni = a.conn.sni.as_deref().unwrap_or("-"),
                "access"
            );
        }
    }
}

/// Maps a handshake error to a class and a precise reason.
fn classify_error(e: &std::io::Error) -> (FailureClass, String) {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::AlertReceived(a) => (
                FailureClass::AlertReceived,
                format!("alert_received({a:?})"),
            ),
            rustls::Error::InvalidMessage(m) => (
                FailureClass::AlertSent,
                format!("alert_sent(decode_error): {m:?}"),
            ),
            rustls::Error::PeerIncompatible(p) => (
                FailureClass::AlertSent,
                format!("alert_sent(handshake_failure): {p:?}"),
            ),
            rustls::Error::PeerMisbehaved(p) => (
                FailureClass::AlertSent,
                format!("alert_sent(illegal_parameter): {p:?}"),
            ),
            rustls::Error::NoApplicationProtocol => (
                FailureClass::AlertSent,
                "alert_sent(no_application_protocol)".into(),
            ),
            rustls::Error::DecryptError => {
                (FailureClass::AlertSent, "alert_sent(bad_record_mac)".into())
            }
            other => (
                FailureClass::ProtocolError,
                format!("protocol_error({other})"),
            ),
        };
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => (
            FailureClass::Eof,
            "eof: peer closed during the handshake".into(),
        ),
        std::io::ErrorKind::ConnectionReset => {
            (FailureClass::Eof, "eof: connection reset by peer".into())
        }
        std::io::ErrorKind::InvalidData => (FailureClass::AlertSent, format!("alert_sent: {e}")),
        _ => (FailureClass::ProtocolError, format!("protocol_error({e})")),
    }
}

fn not_tls(shared: &Shared, peer: SocketAddr, first: &[u8]) {
    handshake_failed(
        shared,
        peer,
        None,
        None,
        FailureClass::NotTls,
        &format!("first bytes {first:02x?} are not a TLS handshake"),
    );
}

fn handshake_failed(
    shared: &Shared,
    peer: SocketAddr,
    sni: Option<&str>,
    alpn: Option<&[String]>,
    class: FailureClass,
    why: &str,
) {
    shared.metrics.failure(class);
    let Some(suppressed) = shared.warn_limit.allow() else {
        return;
    };
    let names = shared.resolver.current().names.join(",");
    let sni_covered = sni.is_some_and(|s| crate::tls::covers(&shared.resolver.current().names, s));
    tracing::warn!(
        %peer,
        sni = sni.unwrap_or("none"),
        sni_covered,
        cert_names = %names,
        alpn = ?alpn.unwrap_or_default(),
        reason = class.label(),
        detail = why,
        suppressed,
        "tls handshake failed"
    );
}

fn log_plaintext(
    shared: &Shared,
    peer: SocketAddr,
    outcome: &plaintext::Outcome,
    on_tls_port: bool,
) {
    match outcome {
        plaintext::Outcome::Incomplete => {
            if on_tls_port {
                shared.metrics.failure(FailureClass::PlaintextHttp);
            }
        }
        _ => {
            Metrics::inc(&shared.metrics.plaintext_redirects);
            if on_tls_port {
                shared.metrics.failure(FailureClass::PlaintextHttp);
            }
        }
    }
    if on_tls_port {
        if let Some(suppressed) = shared.warn_limit.allow() {
            tracing::warn!(%peer, reason = "plaintext_http", outcome = ?outcome, suppressed, "plaintext HTTP on the HTTPS port");
        }
    } else {
        tracing::debug!(%peer, outcome = ?outcome, "cleartext request redirected");
    }
}
