//! Logging and counters. The subscriber is installed once by the binary; the [`Metrics`]
//! registry is plain atomics owned by the server and readable through its API (the metrics
//! endpoint publishes the same numbers). Per-peer warnings go through [`RateLimit`] so that a
//! flood of bad clients cannot flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cli::LogFormat;
use crate::error::{Error, Result};

/// The tracing target of access-log lines (one per request, with `--access-log`).
pub const ACCESS_TARGET: &str = "rampart::access";

/// Installs the tracing subscriber with an `EnvFilter` directive such as `info` or
/// `rampart=debug,hyper=info`, writing `format` lines to stderr. With `access_log`, the
/// access lines (target [`ACCESS_TARGET`], level info) are let through whatever the level.
///
/// # Errors
/// [`Error::InvalidSetting`] naming `--log-level` when the directive does not parse.
pub fn init(filter: &str, format: LogFormat, access_log: bool) -> Result<()> {
    // rustls logs per-connection warnings (an IP address sent as SNI by wrk and others,
    // every alert it sends) without rate limits; rampart reports those itself, rate-limited,
    // with the peer. They stay reachable with an explicit `rustls=...` directive.
    let mut directive = if filter.contains("rustls") {
        filter.to_owned()
    } else {
        format!("{filter},rustls=error")
    };
    if access_log {
        directive.push_str(",rampart::access=info");
    }
    let filter =
        tracing_subscriber::EnvFilter::try_new(&directive).map_err(|e| Error::InvalidSetting {
            setting: "--log-level",
            value: filter.to_owned(),
            reason: e.to_string(),
        })?;
    // A second init (tests, embedders with their own subscriber) is not an error.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // One object per line, fields at the top level: {"timestamp":..,"level":..,
        // "message":"access","peer":..}.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
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

/// Why a request was refused before the app saw it (server/request_check.rs): an HTTP/1
/// request answered 400 or an HTTP/2 stream reset, or a request body past the drain bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// HTTP/1.1 without `Host`; HTTP/2 without `:authority` and without `Host`.
    MissingHost,
    /// More than one `Host` header.
    DuplicateHost,
    /// A `Host` (or HTTP/2 `:authority`) that is not a valid authority, or has userinfo.
    InvalidHost,
    /// HTTP/1.1 with `Transfer-Encoding` (covers `Content-Length` with `Transfer-Encoding`).
    TransferEncoding,
    /// An HTTP/2 request body longer than the bound read before answering (413).
    BodyTooLarge,
    /// An HTTP/2 request whose body ended in a stream error h2 detected (the stream is reset).
    StreamError,
}

impl Rejection {
    /// All reasons, in the order of [`MetricsSnapshot::requests_rejected`].
    pub const ALL: [Self; 6] = [
        Self::MissingHost,
        Self::DuplicateHost,
        Self::InvalidHost,
        Self::TransferEncoding,
        Self::BodyTooLarge,
        Self::StreamError,
    ];

    /// The label used in logs and metrics.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::MissingHost => "missing_host",
            Self::DuplicateHost => "duplicate_host",
            Self::InvalidHost => "invalid_host",
            Self::TransferEncoding => "transfer_encoding",
            Self::BodyTooLarge => "body_too_large",
            Self::StreamError => "stream_error",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
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
    /// Requests refused before the app, by [`Rejection::ALL`] order.
    pub(crate) requests_rejected: [AtomicU64; 6],
    /// Finished responses by protocol (h1, h2) and status class (1xx..5xx).
    pub(crate) responses: [[AtomicU64; 5]; 2],
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) response_time: Histogram,
    pub(crate) connections_closed_idle: AtomicU64,
    pub(crate) connections_closed_header_timeout: AtomicU64,
    pub(crate) connections_closed_stalled: AtomicU64,
    pub(crate) connections_closed_tiny_windows: AtomicU64,
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
    /// Requests refused before the app by [`Rejection::ALL`] order (also counted in
    /// `requests_h1`/`requests_h2`; an HTTP/1 refusal also in `responses`).
    pub requests_rejected: [u64; 6],
    /// Finished responses: `[protocol][class]`, protocol 0 = HTTP/1.1, 1 = HTTP/2, class
    /// 0..5 = 1xx..5xx.
    pub responses: [[u64; 5]; 2],
    /// Response body bytes handed to the connection.
    pub bytes_sent: u64,
    /// Response times (request head received to last body byte handed over).
    pub response_time: HistogramSnapshot,
    /// Connections closed by the idle keep-alive deadline.
    pub connections_closed_idle: u64,
    /// Connections closed by the request-head deadline.
    pub connections_closed_header_timeout: u64,
    /// Connections closed because a transfer stalled.
    pub connections_closed_stalled: u64,
    /// HTTP/2 connections closed because the client kept its flow-control windows tiny.
    pub connections_closed_tiny_windows: u64,
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

    /// Requests refused for one reason.
    #[must_use]
    pub fn rejected(&self, reason: Rejection) -> u64 {
        self.requests_rejected[reason.index()]
    }

    /// Writes every counter as one `INFO counters ...` line; scripts (the load-test
    /// proofs) parse it from the log at shutdown.
    pub fn log(&self) {
        let f = |c: FailureClass| self.failures(c);
        let r = |c: Rejection| self.rejected(c);
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
            rejected_missing_host = r(Rejection::MissingHost),
            rejected_duplicate_host = r(Rejection::DuplicateHost),
            rejected_invalid_host = r(Rejection::InvalidHost),
            rejected_transfer_encoding = r(Rejection::TransferEncoding),
            rejected_body_too_large = r(Rejection::BodyTooLarge),
            rejected_stream_error = r(Rejection::StreamError),
            bytes_sent = self.bytes_sent,
            closed_idle = self.connections_closed_idle,
            closed_header_timeout = self.connections_closed_header_timeout,
            closed_stalled = self.connections_closed_stalled,
            closed_tiny_windows = self.connections_closed_tiny_windows,
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

    pub(crate) fn rejected(&self, reason: Rejection) {
        Self::inc(&self.requests_rejected[reason.index()]);
    }

    /// Counts a finished response: its status class, body bytes and time.
    pub(crate) fn response(&self, h2: bool, status: u16, bytes: u64, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        Self::inc(&self.responses[usize::from(h2)][class]);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.response_time.observe(elapsed);
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
            requests_rejected: std::array::from_fn(|i| g(&self.requests_rejected[i])),
            responses: std::array::from_fn(|p| std::array::from_fn(|c| g(&self.responses[p][c]))),
            bytes_sent: g(&self.bytes_sent),
            response_time: self.response_time.snapshot(),
            connections_closed_idle: g(&self.connections_closed_idle),
            connections_closed_header_timeout: g(&self.connections_closed_header_timeout),
            connections_closed_stalled: g(&self.connections_closed_stalled),
            connections_closed_tiny_windows: g(&self.connections_closed_tiny_windows),
            connection_panics: g(&self.connection_panics),
            session_tls_errors: g(&self.session_tls_errors),
            proxy_headers: g(&self.proxy_headers),
            proxy_rejected: g(&self.proxy_rejected),
        }
    }
}

/// Upper bounds of the response-time histogram buckets, in microseconds (Prometheus `le`
/// in seconds: 0.0001 ... 10); a last bucket takes everything above.
pub const HISTOGRAM_BOUNDS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    2_500_000, 10_000_000,
];

/// A fixed-bucket histogram of durations (atomics; no locks, no allocation).
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; HISTOGRAM_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = HISTOGRAM_BOUNDS_US.partition_point(|b| *b < us);
        Metrics::inc(&self.buckets[i]);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

/// Histogram counts per bucket (not cumulative; the last is above every bound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket of [`HISTOGRAM_BOUNDS_US`], then the overflow bucket.
    pub buckets: [u64; HISTOGRAM_BOUNDS_US.len() + 1],
    /// Sum of all observations in microseconds.
    pub sum_us: u64,
}

impl HistogramSnapshot {
    /// Number of observations.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
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
