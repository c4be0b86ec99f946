//! Logging and counters. The subscriber is installed once by the binary; the [`Metrics`]
//! registry is plain atomics owned by the server and readable through its API (the metrics
//! endpoint publishes the same numbers). Per-peer warnings go through [`RateLimit`] so that a
//! flood of bad clients cannot flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Installs the tracing subscriber with an `EnvFilter` directive such as `info` or
/// `rampart=debug,hyper=info`.
///
/// # Errors
/// [`Error::InvalidSetting`] naming `--log-level` when the directive does not parse.
pub fn init(filter: &str) -> Result<()> {
    // rustls logs per-connection warnings (an IP address sent as SNI by wrk and others,
    // every alert it sends) without rate limits; rampart reports those itself, rate-limited,
    // with the peer. They stay reachable with an explicit `rustls=...` directive.
    let directive = if filter.contains("rustls") {
        filter.to_owned()
    } else {
        format!("{filter},rustls=error")
    };
    let filter =
        tracing_subscriber::EnvFilter::try_new(&directive).map_err(|e| Error::InvalidSetting {
            setting: "--log-level",
            value: filter.to_owned(),
            reason: e.to_string(),
        })?;
    // A second init (tests, embedders with their own subscriber) is not an error.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

/// Why a connection ended before a TLS session was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// The handshake deadline passed.
    Timeout,
    /// The peer closed the connection.
    Eof,
    /// The first bytes were neither TLS nor HTTP.
    NotTls,
    /// Plaintext HTTP on the TLS port (answered, then closed).
    PlaintextHttp,
    /// The peer sent a TLS alert.
    AlertReceived,
    /// rampart sent a TLS alert (the peer's hello or messages were unacceptable).
    AlertSent,
    /// Another protocol or I/O error.
    ProtocolError,
}

impl FailureClass {
    /// All classes, in the order of [`MetricsSnapshot::handshake_failures`].
    pub const ALL: [Self; 7] = [
        Self::Timeout,
        Self::Eof,
        Self::NotTls,
        Self::PlaintextHttp,
        Self::AlertReceived,
        Self::AlertSent,
        Self::ProtocolError,
    ];

    /// The label used in logs and metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Eof => "eof",
            Self::NotTls => "not_tls",
            Self::PlaintextHttp => "plaintext_http",
            Self::AlertReceived => "alert_received",
            Self::AlertSent => "alert_sent",
            Self::ProtocolError => "protocol_error",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// Server counters (monotonic unless named `_open`).
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) handshakes_full: AtomicU64,
    pub(crate) handshakes_full_hrr: AtomicU64,
    pub(crate) handshakes_resumed: AtomicU64,
    pub(crate) handshakes_tls12: AtomicU64,
    pub(crate) handshakes_tls13: AtomicU64,
    pub(crate) handshake_failures: [AtomicU64; 7],
    pub(crate) plaintext_redirects: AtomicU64,
    pub(crate) requests_h1: AtomicU64,
    pub(crate) requests_h2: AtomicU64,
    pub(crate) connections_closed_idle: AtomicU64,
    pub(crate) connections_closed_header_timeout: AtomicU64,
    pub(crate) connections_closed_stalled: AtomicU64,
    pub(crate) connection_panics: AtomicU64,
    pub(crate) session_tls_errors: AtomicU64,
    pub(crate) proxy_headers: AtomicU64,
    pub(crate) proxy_rejected: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Connections accepted.
    pub connections_total: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Full TLS handshakes.
    pub handshakes_full: u64,
    /// Full TLS 1.3 handshakes with a HelloRetryRequest.
    pub handshakes_full_hrr: u64,
    /// Resumed TLS handshakes (ticket or session ID).
    pub handshakes_resumed: u64,
    /// Completed handshakes that negotiated TLS 1.2.
    pub handshakes_tls12: u64,
    /// Completed handshakes that negotiated TLS 1.3.
    pub handshakes_tls13: u64,
    /// Failed handshakes by [`FailureClass::ALL`] order.
    pub handshake_failures: [u64; 7],
    /// Plaintext requests answered on TLS or redirect ports.
    pub plaintext_redirects: u64,
    /// Requests served over HTTP/1.1.
    pub requests_h1: u64,
    /// Requests served over HTTP/2.
    pub requests_h2: u64,
    /// Connections closed by the idle keep-alive deadline.
    pub connections_closed_idle: u64,
    /// Connections closed by the request-head deadline.
    pub connections_closed_header_timeout: u64,
    /// Connections closed because a transfer stalled.
    pub connections_closed_stalled: u64,
    /// Connection tasks that panicked (a bug; the server kept serving).
    pub connection_panics: u64,
    /// Established sessions that ended with a TLS error (an alert from the client, a
    /// record that failed to decrypt); zero in every proof.
    pub session_tls_errors: u64,
    /// PROXY protocol headers accepted from trusted proxies (`--proxy-protocol`).
    pub proxy_headers: u64,
    /// Connections closed for their PROXY header: missing or invalid from a trusted proxy,
    /// or sent by a peer outside the trusted ranges.
    pub proxy_rejected: u64,
}

impl MetricsSnapshot {
    /// Failed handshakes of one class.
    #[must_use]
    pub fn failures(&self, class: FailureClass) -> u64 {
        self.handshake_failures[class.index()]
    }

    /// Writes every counter as one `INFO counters ...` line; scripts (the load-test
    /// proofs) parse it from the log at shutdown.
    pub fn log(&self) {
        let f = |c: FailureClass| self.failures(c);
        tracing::info!(
            connections_total = self.connections_total,
            handshakes_full = self.handshakes_full,
            handshakes_full_hrr = self.handshakes_full_hrr,
            handshakes_resumed = self.handshakes_resumed,
            handshakes_tls12 = self.handshakes_tls12,
            handshakes_tls13 = self.handshakes_tls13,
            fail_timeout = f(FailureClass::Timeout),
            fail_eof = f(FailureClass::Eof),
            fail_not_tls = f(FailureClass::NotTls),
            fail_plaintext_http = f(FailureClass::PlaintextHttp),
            fail_alert_received = f(FailureClass::AlertReceived),
            fail_alert_sent = f(FailureClass::AlertSent),
            fail_protocol_error = f(FailureClass::ProtocolError),
            requests_h1 = self.requests_h1,
            requests_h2 = self.requests_h2,
            closed_idle = self.connections_closed_idle,
            closed_header_timeout = self.connections_closed_header_timeout,
            closed_stalled = self.connections_closed_stalled,
            connection_panics = self.connection_panics,
            session_tls_errors = self.session_tls_errors,
            proxy_headers = self.proxy_headers,
            proxy_rejected = self.proxy_rejected,
            "counters"
        );
    }
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self, class: FailureClass) {
        Self::inc(&self.handshake_failures[class.index()]);
    }

    /// Reads every counter.
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            connections_total: g(&self.connections_total),
            connections_open: g(&self.connections_open),
            handshakes_full: g(&self.handshakes_full),
            handshakes_full_hrr: g(&self.handshakes_full_hrr),
            handshakes_resumed: g(&self.handshakes_resumed),
            handshakes_tls12: g(&self.handshakes_tls12),
            handshakes_tls13: g(&self.handshakes_tls13),
            handshake_failures: std::array::from_fn(|i| g(&self.handshake_failures[i])),
            plaintext_redirects: g(&self.plaintext_redirects),
            requests_h1: g(&self.requests_h1),
            requests_h2: g(&self.requests_h2),
            connections_closed_idle: g(&self.connections_closed_idle),
            connections_closed_header_timeout: g(&self.connections_closed_header_timeout),
            connections_closed_stalled: g(&self.connections_closed_stalled),
            connection_panics: g(&self.connection_panics),
            session_tls_errors: g(&self.session_tls_errors),
            proxy_headers: g(&self.proxy_headers),
            proxy_rejected: g(&self.proxy_rejected),
        }
    }
}

/// Lets through at most `burst` events per `window`; counts the rest so that the next
/// allowed line can say how many were suppressed.
#[derive(Debug)]
pub struct RateLimit {
    burst: u32,
    window: Duration,
    state: Mutex<(Instant, u32, u64)>,
}

impl RateLimit {
    /// `burst` events per `window`.
    #[must_use]
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed_since_last)` if this event may be logged.
    pub fn allow(&self) -> Option<u64> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(s.0) >= self.window {
            s.0 = now;
            s.1 = 0;
        }
        if s.1 < self.burst {
            s.1 += 1;
            Some(std::mem::take(&mut s.2))
        } else {
            s.2 += 1;
            None
        }
    }
}
