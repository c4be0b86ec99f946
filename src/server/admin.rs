//! The operator's port (`--metrics-listen`, cleartext HTTP/1.1): `/metrics` in the
//! Prometheus text format, `/healthz` (200 while the process runs) and `/readyz` (200 while
//! serving; 503 from the shutdown signal on, so that a load balancer stops sending new
//! clients before the listeners close, see `--drain-delay`). It serves until the process
//! exits, through the drain. Not for the public: a few connections at a time, short
//! deadlines, no TLS.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::shared::Shared;
use crate::app::{Body, Site};
use crate::telemetry::{FailureClass, MetricsSnapshot, HISTOGRAM_BOUNDS_US};

/// Connections served at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 32;
/// Deadline for a request head on the metrics port.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the operator's port until the task is aborted (the connection tasks go with it).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, site: Arc<Site>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metrics port: accept failed; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let site = Arc::clone(&site);
        conns.spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let res = respond(&req, &shared, &site);
                async move { Ok::<_, std::convert::Infallible>(res) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), svc);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "metrics port: connection ended with an error");
            }
            drop(permit);
        });
    }
}

fn respond<B>(req: &Request<B>, shared: &Shared, site: &Site) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
        res.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    match req.uri().path() {
        "/metrics" => {
            let body = render(&shared.metrics.snapshot(), &gauges(shared, site));
            let mut res = text(StatusCode::OK, body);
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            res
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if shared.draining.load(Ordering::Relaxed) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        }
        "/readyz" if shared.resolver.current().is_none() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no certificate yet (ACME order in progress)\n",
        ),
        "/readyz" => text(StatusCode::OK, "ready\n"),
        _ => text(StatusCode::NOT_FOUND, "/metrics, /healthz, /readyz\n"),
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Body::from_bytes(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// Values read at scrape time rather than counted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gauges {
    pub(crate) asset_files: u64,
    pub(crate) asset_bytes: u64,
    pub(crate) asset_generation: u64,
    /// The served certificate's notAfter as a unix timestamp, one sample per name it
    /// covers (`name="..."`); none before the first certificate (ACME).
    pub(crate) cert_not_after: Vec<(String, u64)>,
    pub(crate) ticket_key_generation: u64,
    pub(crate) draining: bool,
}

fn gauges(shared: &Shared, site: &Site) -> Gauges {
    let table = site.table();
    Gauges {
        asset_files: table.files() as u64,
        asset_bytes: table.bytes(),
        asset_generation: table.generation(),
        cert_not_after: shared
            .resolver
            .current()
            .map(|c| {
                let at = c
                    .not_after
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                c.names
                    .0
                    .iter()
                    .map(|n| (format!("name=\"{}\"", label_value(&n.to_string())), at))
                    .collect()
            })
            .unwrap_or_default(),
        ticket_key_generation: shared.ticket_keys.generation(),
        draining: shared.draining.load(Ordering::Relaxed),
    }
}

/// Writes the Prometheus text exposition (format 0.0.4) of the counters and gauges.
pub(crate) fn render(m: &MetricsSnapshot, g: &Gauges) -> String {
    let mut out = String::with_capacity(8 * 1024);
    m.families(|name, kind, help, samples| write_family(&mut out, name, kind, help, samples));
    // The rest is not in telemetry.rs's table: a second view of one counter, a family with
    // two labels, the gauges read at scrape time and the histogram.
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        write_family(&mut out, name, kind, help, samples);
    };
    family(
        "rampart_plaintext_requests_total",
        "counter",
        "Plaintext HTTP requests on the HTTPS port.",
        &[("", m.failures(FailureClass::PlaintextHttp))],
    );
    let mut responses = Vec::new();
    for (p, proto) in crate::protocol::Protocol::ALL.iter().enumerate() {
        for (c, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            responses.push((
                format!("protocol=\"{proto}\",class=\"{class}\""),
                m.responses[p][c],
            ));
        }
    }
    let responses: Vec<(&str, u64)> = responses.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        "rampart_responses_total",
        "counter",
        "Finished responses by protocol and status class.",
        &responses,
    );
    family(
        "rampart_assets_files",
        "gauge",
        "Files in the asset table.",
        &[("", g.asset_files)],
    );
    family(
        "rampart_assets_bytes",
        "gauge",
        "Bytes held by the asset table.",
        &[("", g.asset_bytes)],
    );
    family(
        "rampart_assets_generation",
        "gauge",
        "Asset table generation (1 at start, +1 per redeploy).",
        &[("", g.asset_generation)],
    );
    family(
        "rampart_certificate_not_after_seconds",
        "gauge",
        "The served certificate's notAfter as a unix timestamp, by name it covers.",
        &g.cert_not_after
            .iter()
            .map(|(l, v)| (l.as_str(), *v))
            .collect::<Vec<_>>(),
    );
    family(
        "rampart_ticket_key_generation",
        "gauge",
        "Session-ticket key ring generation (+1 per rotation or reload).",
        &[("", g.ticket_key_generation)],
    );
    family(
        "rampart_draining",
        "gauge",
        "1 once shutdown began (/readyz answers 503).",
        &[("", u64::from(g.draining))],
    );
    // The histogram: cumulative buckets in seconds.
    let h = &m.response_time;
    let name = "rampart_response_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Response time: request head received to last body byte handed over.\n# TYPE {name} histogram"
    );
    let mut cumulative = 0;
    for (i, bound) in HISTOGRAM_BOUNDS_US.iter().enumerate() {
        cumulative += h.buckets[i];
        let le = Duration::from_micros(*bound).as_secs_f64();
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(
        out,
        "{name}_sum {}",
        Duration::from_micros(h.sum_us).as_secs_f64()
    );
    let _ = writeln!(out, "{name}_count {}", h.count());
    out
}

/// Writes one family: its `# HELP` and `# TYPE` lines, then a line per `(labels, value)`.
/// A Prometheus label value: backslash, quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(impl AsRef<str>, u64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let labels = labels.as_ref();
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Binds the metrics listener (same socket options as the others).
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> crate::Result<TcpListener> {
    super::listen::bind(addr, "--metrics-listen", reuse_port)
}
