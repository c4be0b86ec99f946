//! Logging and counters. The subscriber is installed once by the binary; the [`Metrics`]
//! registry is plain atomics owned by the server and readable through its API (the metrics
//! endpoint publishes the same numbers). Per-peer warnings go through [`RateLimit`] so that a
//! flood of bad clients cannot flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LogFormat;
use crate::error::Result;
use crate::problem::Problem;
use crate::protocol::Protocol;

/// The tracing target of access-log lines (one per request, with `--access-log`).
pub const ACCESS_TARGET: &str = "rampart::access";

/// Installs the tracing subscriber with an `EnvFilter` directive such as `info` or
/// `rampart=debug,hyper=info`, writing `format` lines to stderr. With `access_log`, the
/// access lines (target [`ACCESS_TARGET`], level info) are let through whatever the level.
///
/// # Errors
/// [`Error::Setting`](crate::Error::Setting) naming `--log-level` when the directive does
/// not parse.
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
    let filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .map_err(|e| Problem::invalid("--log-level", filter, e.to_string()))?;
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

/// A snapshot value and the atomics the server counts it in: `u64` in an [`AtomicU64`], an
/// array element by element, [`HistogramSnapshot`] in a `Histogram`.
pub(crate) trait Counted {
    /// What the server increments.
    type Atomic;
    /// Reads `atomic`. Relaxed: each counter is exact, a snapshot of several is not atomic.
    fn load(atomic: &Self::Atomic) -> Self;
}

impl Counted for u64 {
    type Atomic = AtomicU64;
    fn load(atomic: &AtomicU64) -> u64 {
        atomic.load(Ordering::Relaxed)
    }
}

impl<T: Counted, const N: usize> Counted for [T; N] {
    type Atomic = [T::Atomic; N];
    fn load(atomic: &Self::Atomic) -> Self {
        std::array::from_fn(|i| T::load(&atomic[i]))
    }
}

/// The Prometheus samples of one table entry: `(labels, value)`, labels empty for none.
macro_rules! push_samples {
    ($samples:ident, $value:expr) => {
        $samples.push((String::new(), $value))
    };
    ($samples:ident, $value:expr, $label:ident = $text:literal) => {
        $samples.push((
            concat!(stringify!($label), "=\"", $text, "\"").to_owned(),
            $value,
        ))
    };
    // An array counted by an enum: one sample per element, labelled by `Enum::label()`.
    ($samples:ident, $values:expr, $label:ident = $by:ident) => {
        for (of, value) in $by::ALL.iter().zip($values) {
            $samples.push((
                format!(concat!(stringify!($label), "=\"{}\""), of.label()),
                value,
            ));
        }
    };
}

/// Binds an entry's `counters` line keys to its value: one key, or one per array element.
macro_rules! bind_log_keys {
    ($value:expr; $key:ident) => {
        let $key = $value;
    };
    ($value:expr; $($key:ident),+) => {
        let [$($key),+] = $value;
    };
}

/// The one place a metric is declared. Each entry yields a [`Metrics`] field, the
/// [`MetricsSnapshot`] field with its doc, its read in [`Metrics::snapshot`], its samples in
/// the Prometheus family around it ([`MetricsSnapshot::families`], in table order) and, with
/// `log`, its keys in the `counters` line of [`MetricsSnapshot::log`] (in table order).
///
/// An entry is `/// doc` `field: Type {label = "value"}, log key;` with the label and the
/// `log` part optional. An array counted by an enum names the enum as the label's value
/// (`{reason = FailureClass}`: labels from `ALL` and `label()`) and one log key per element.
/// The `by_hand` fields are only read into the snapshot: server/admin.rs renders them.
macro_rules! metrics {
    (
        $(
            $family:literal $kind:ident $help:literal {
                $(
                    $(#[doc = $doc:literal])*
                    $field:ident: $ty:ty $({$label:ident = $value:tt})? $(, log $($key:ident),+)?;
                )+
            }
        )+
        by_hand {
            $( $(#[doc = $hdoc:literal])* $hfield:ident: $hty:ty; )+
        }
    ) => {
        /// Server counters (monotonic unless named `_open`).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($( pub(crate) $field: <$ty as Counted>::Atomic, )+)+
            $( pub(crate) $hfield: <$hty as Counted>::Atomic, )+
        }

        /// A copy of the counters at one moment.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $($( $(#[doc = $doc])* pub $field: $ty, )+)+
            $( $(#[doc = $hdoc])* pub $hfield: $hty, )+
        }

        impl Metrics {
            /// Reads every counter.
            #[must_use]
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot {
                    $($( $field: <$ty as Counted>::load(&self.$field), )+)+
                    $( $hfield: <$hty as Counted>::load(&self.$hfield), )+
                }
            }
        }

        impl MetricsSnapshot {
            /// Writes the counters as one `INFO counters ...` line; scripts (the load-test
            /// proofs) parse it from the log at shutdown.
            pub fn log(&self) {
                $($($( bind_log_keys!(self.$field; $($key),+); )?)+)+
                tracing::info!($($($( $($key = $key,)+ )?)+)+ "counters");
            }

            /// Calls `family(name, type, help, samples)` for each family of the table, a
            /// sample being `(labels, value)`.
            pub(crate) fn families(
                &self,
                mut family: impl FnMut(&str, &str, &str, &[(String, u64)]),
            ) {
                let mut samples = Vec::new();
                $(
                    samples.clear();
                    $( push_samples!(samples, self.$field $(, $label = $value)?); )+
                    family($family, stringify!($kind), $help, &samples);
                )+
            }
        }
    };
}

// Families come out in this order, and so do the `counters` line's keys, which
// loadtest/scripts and the tests parse by name: an entry keeps its key when it moves.
metrics! {
    "rampart_connections_open" gauge "Client connections open now." {
        /// Connections open now.
        connections_open: u64;
    }
    "rampart_connections_total" counter "Client connections accepted." {
        /// Connections accepted.
        connections_total: u64, log connections_total;
    }
    "rampart_handshakes_total" counter "Completed TLS handshakes by kind." {
        /// Full TLS handshakes.
        handshakes_full: u64 {kind = "full"}, log handshakes_full;
        /// Full TLS 1.3 handshakes with a HelloRetryRequest.
        handshakes_full_hrr: u64 {kind = "full_hrr"}, log handshakes_full_hrr;
        /// Resumed TLS handshakes (ticket or session ID).
        handshakes_resumed: u64 {kind = "resumed"}, log handshakes_resumed;
    }
    "rampart_http3_handshakes_total" counter
    "Completed QUIC (HTTP/3) handshakes, and session tickets QUIC handshakes resumed with (from TCP or QUIC; quinn does not say per connection which handshakes resumed)." {
        /// Completed QUIC handshakes (TLS 1.3).
        h3_handshakes: u64 {kind = "complete"}, log h3_handshakes;
        /// Session tickets accepted by QUIC handshakes.
        h3_handshakes_resumed: u64 {kind = "ticket"}, log h3_tickets;
    }
    "rampart_http3_connections_total" counter
    "QUIC connection attempts by what was done: accepted, sent a Retry (address validation under a handshake flood), refused (at --max-connections)." {
        /// QUIC connections accepted for a handshake.
        h3_accepted: u64 {outcome = "accepted"}, log h3_accepted;
        /// Retry packets sent to validate a client's address.
        h3_retries: u64 {outcome = "retry"}, log h3_retries;
        /// QUIC connections refused at the connection cap.
        h3_refused: u64 {outcome = "refused"}, log h3_refused;
    }
    "rampart_handshakes_by_version_total" counter "Completed TLS handshakes by protocol version." {
        /// Completed handshakes that negotiated TLS 1.2.
        handshakes_tls12: u64 {version = "1.2"}, log handshakes_tls12;
        /// Completed handshakes that negotiated TLS 1.3.
        handshakes_tls13: u64 {version = "1.3"}, log handshakes_tls13;
    }
    "rampart_handshake_failures_total" counter
    "Connections that ended before a TLS session, by reason (plaintext_http: plaintext HTTP on the TLS port)." {
        /// Failed handshakes by [`FailureClass::ALL`] order.
        handshake_failures: [u64; 7] {reason = FailureClass}, log fail_timeout, fail_eof,
            fail_not_tls, fail_plaintext_http, fail_alert_received, fail_alert_sent,
            fail_protocol_error;
    }
    "rampart_redirects_total" counter
    "Plaintext requests answered with a redirect or rejection (HTTPS and --http-listen ports)." {
        /// Plaintext requests answered on TLS or redirect ports.
        plaintext_redirects: u64;
    }
    "rampart_requests_total" counter "Requests received by protocol." {
        /// Requests served over HTTP/1.1.
        requests_h1: u64 {protocol = "h1"}, log requests_h1;
        /// Requests served over HTTP/2.
        requests_h2: u64 {protocol = "h2"}, log requests_h2;
        /// Requests served over HTTP/3.
        requests_h3: u64 {protocol = "h3"}, log requests_h3;
    }
    "rampart_requests_rejected_total" counter
    "Requests refused before the app, by reason: HTTP/1 answered 400 (missing, duplicate or invalid Host; Transfer-Encoding), HTTP/2 streams reset (no :authority or Host; a stream error in the body read before answering), 413 for such a body past 64 KiB." {
        /// Requests refused before the app by [`Rejection::ALL`] order (also counted in
        /// `requests_h1`/`requests_h2`; an HTTP/1 refusal also in `responses`).
        requests_rejected: [u64; 6] {reason = Rejection}, log rejected_missing_host,
            rejected_duplicate_host, rejected_invalid_host, rejected_transfer_encoding,
            rejected_body_too_large, rejected_stream_error;
    }
    "rampart_response_bytes_total" counter "Response body bytes sent." {
        /// Response body bytes handed to the connection.
        bytes_sent: u64, log bytes_sent;
    }
    "rampart_connections_closed_total" counter "Connections closed by a deadline, by reason." {
        /// Connections closed by the idle keep-alive deadline.
        connections_closed_idle: u64 {reason = "idle"}, log closed_idle;
        /// Connections closed by the request-head deadline.
        connections_closed_header_timeout: u64 {reason = "header_timeout"},
            log closed_header_timeout;
        /// Connections closed because a transfer stalled.
        connections_closed_stalled: u64 {reason = "stalled"}, log closed_stalled;
        /// HTTP/2 connections closed because the client kept its flow-control windows tiny.
        connections_closed_tiny_windows: u64 {reason = "tiny_windows"},
            log closed_tiny_windows;
        /// Connections closed after shutdown: nothing in flight for a second and the client
        /// had not closed (it ignored GOAWAY or `Connection: close`).
        connections_closed_after_shutdown: u64 {reason = "after_shutdown"},
            log closed_after_shutdown;
    }
    "rampart_connections_parked_total" counter
    "Times an idle HTTP/1.1 keep-alive connection gave back its HTTP buffers to wait for its next request." {
        /// Times an idle HTTP/1.1 connection parked (server/h1.rs).
        connections_parked: u64, log connections_parked;
    }
    "rampart_acme_renewals_total" counter
    "ACME orders by result (success: a certificate issued and served; failure: retried with backoff)." {
        /// ACME orders that issued a certificate (acme/).
        acme_renewals_success: u64 {result = "success"}, log acme_issued;
        /// ACME orders that failed (the previous certificate, if any, kept serving).
        acme_renewals_failure: u64 {result = "failure"}, log acme_failed;
    }
    "rampart_acme_next_renewal_seconds" gauge
    "When the ACME certificate is next due for renewal, as a unix timestamp (0 without --acme or before the first certificate)." {
        /// When the ACME certificate is next due, unix seconds.
        acme_next_renewal: u64;
    }
    "rampart_connection_panics_total" counter
    "Connection tasks that panicked (a bug; the server kept serving)." {
        /// Connection tasks that panicked (a bug; the server kept serving).
        connection_panics: u64, log connection_panics;
    }
    "rampart_session_tls_errors_total" counter
    "Established TLS sessions that ended with a TLS error (alert, bad record)." {
        /// Established sessions that ended with a TLS error (an alert from the client, a
        /// record that failed to decrypt); zero in every proof.
        session_tls_errors: u64, log session_tls_errors;
    }
    "rampart_proxy_headers_total" counter
    "PROXY protocol headers accepted from trusted proxies, and connections refused for a missing, malformed or untrusted header." {
        /// PROXY protocol headers accepted from trusted proxies (`--proxy-protocol`).
        proxy_headers: u64 {result = "accepted"}, log proxy_headers;
        /// Connections closed for their PROXY header: missing or invalid from a trusted
        /// proxy, or sent by a peer outside the trusted ranges.
        proxy_rejected: u64 {result = "rejected"}, log proxy_rejected;
    }
    by_hand {
        /// Finished responses: `[protocol][class]`, protocol as [`Protocol::index`] (0 =
        /// HTTP/1.1, 1 = HTTP/2, 2 = HTTP/3), class 0..5 = 1xx..5xx.
        responses: [[u64; 5]; 3];
        /// Response times (request head received to last body byte handed over).
        response_time: HistogramSnapshot;
    }
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
    pub(crate) fn response(&self, protocol: Protocol, status: u16, bytes: u64, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        Self::inc(&self.responses[protocol.index()][class]);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.response_time.observe(elapsed);
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
}

impl Counted for HistogramSnapshot {
    type Atomic = Histogram;
    fn load(h: &Histogram) -> Self {
        Self {
            buckets: Counted::load(&h.buckets),
            sum_us: Counted::load(&h.sum_us),
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

#[cfg(test)]
mod tests {
    use super::{FailureClass, MetricsSnapshot, Rejection};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The keys and values of the `counters` line `m.log()` writes.
    fn counters_line(m: &MetricsSnapshot) -> HashMap<String, u64> {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || m.log());
        let line = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(line.contains(" counters "), "{line}");
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn counters_line_keys_name_each_failure_class_and_rejection_by_its_label() {
        let mut m = MetricsSnapshot::default();
        for (n, v) in (100..).zip(&mut m.handshake_failures) {
            *v = n;
        }
        for (n, v) in (200..).zip(&mut m.requests_rejected) {
            *v = n;
        }
        let line = counters_line(&m);
        for c in FailureClass::ALL {
            let key = format!("fail_{}", c.label());
            assert_eq!(line.get(&key), Some(&m.failures(c)), "{key}: {line:?}");
        }
        for r in Rejection::ALL {
            let key = format!("rejected_{}", r.label());
            assert_eq!(line.get(&key), Some(&m.rejected(r)), "{key}: {line:?}");
        }
    }
}
