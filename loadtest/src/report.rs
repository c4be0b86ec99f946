//! Counters, latency histograms, live progress and the final summary (text and JSON).

use crate::classify::Failure;
use crate::net::{Handshake, Proto, TlsKind};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many error details are kept for the summary.
const SAMPLES: usize = 20;

#[derive(Default)]
struct Inner {
    errors: BTreeMap<String, u64>,
    samples: Vec<String>,
    conns: BTreeMap<(TlsKind, Proto), ConnCount>,
    requests: Option<Histogram<u64>>,
    pages: Option<Histogram<u64>>,
    handshakes: Option<Histogram<u64>>,
}

/// Connections opened with one (kind, protocol), as seen by this client.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ConnCount {
    /// Connections whose handshake completed.
    pub total: u64,
    /// Of those, resumed sessions.
    pub resumed: u64,
    /// Of those, TLS 1.3.
    pub tls13: u64,
}

/// Shared by every virtual user.
pub struct Stats {
    start: Instant,
    /// Completed page loads (every request verified).
    pub page_loads: AtomicU64,
    /// Page loads abandoned on purpose (refresh).
    pub page_loads_aborted: AtomicU64,
    /// Page loads with at least one error.
    pub page_loads_failed: AtomicU64,
    /// Verified responses.
    pub requests_ok: AtomicU64,
    /// Requests cut off by our own aborts (not errors).
    pub requests_aborted: AtomicU64,
    /// Requests resent on a new connection after the server closed cleanly before
    /// answering (its shutdown or restart; see `Failure::retry_safe`).
    pub requests_resent: AtomicU64,
    /// Connections closed by our own aborts.
    pub conns_aborted: AtomicU64,
    /// Of those, closed with a TCP RST.
    pub conns_reset: AtomicU64,
    /// Body bytes received (as sent, before decoding).
    pub bytes: AtomicU64,
    /// Server-fault errors.
    pub errors: AtomicU64,
    inner: Mutex<Inner>,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds are valid")
}

impl Stats {
    /// Empty counters; the clock starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            page_loads: AtomicU64::new(0),
            page_loads_aborted: AtomicU64::new(0),
            page_loads_failed: AtomicU64::new(0),
            requests_ok: AtomicU64::new(0),
            requests_aborted: AtomicU64::new(0),
            requests_resent: AtomicU64::new(0),
            conns_aborted: AtomicU64::new(0),
            conns_reset: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                requests: Some(hist()),
                pages: Some(hist()),
                handshakes: Some(hist()),
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a server-fault error.
    pub fn error(&self, f: &Failure) {
        Self::inc(&self.errors);
        let mut g = self.lock();
        *g.errors.entry(f.class.clone()).or_default() += 1;
        if g.samples.len() < SAMPLES {
            let secs = self.start.elapsed().as_secs_f64();
            g.samples
                .push(format!("[{secs:.3}s] {}: {}", f.class, f.detail));
        }
    }

    /// Records a completed handshake.
    pub fn handshake(&self, h: &Handshake) {
        let mut g = self.lock();
        let c = g.conns.entry((h.kind, h.proto)).or_default();
        c.total += 1;
        c.resumed += u64::from(h.resumed);
        c.tls13 += u64::from(h.tls13);
        if let Some(hh) = g.handshakes.as_mut() {
            let _ = hh.record(micros(h.elapsed));
        }
    }

    /// Records a verified response.
    pub fn request(&self, latency: Duration, bytes: usize) {
        Self::inc(&self.requests_ok);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Some(h) = self.lock().requests.as_mut() {
            let _ = h.record(micros(latency));
        }
    }

    /// Records a completed page load.
    pub fn page(&self, latency: Duration) {
        Self::inc(&self.page_loads);
        if let Some(h) = self.lock().pages.as_mut() {
            let _ = h.record(micros(latency));
        }
    }

    /// Seconds since start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// One-line progress text.
    pub fn progress_line(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let secs = self.elapsed().as_secs_f64().max(0.001);
        format!(
            "{:>5.1}s  page loads {} ({:.0}/s)  requests {} ({:.0}/s)  aborted loads {}  errors {}",
            secs,
            g(&self.page_loads),
            g(&self.page_loads) as f64 / secs,
            g(&self.requests_ok),
            g(&self.requests_ok) as f64 / secs,
            g(&self.page_loads_aborted),
            g(&self.errors),
        )
    }

    /// The final summary.
    pub fn summary(&self, mode: &str, users: usize) -> Summary {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let secs = self.elapsed().as_secs_f64().max(0.001);
        let inner = self.lock();
        let mut by_kind: BTreeMap<String, BTreeMap<String, ConnCount>> = BTreeMap::new();
        let (mut total, mut resumed, mut resumable, mut resumable_resumed, mut tls13) =
            (0, 0, 0, 0, 0);
        for ((kind, proto), c) in &inner.conns {
            by_kind
                .entry(kind.label().to_owned())
                .or_default()
                .insert(proto.label().to_owned(), *c);
            total += c.total;
            resumed += c.resumed;
            tls13 += c.tls13;
            if kind.resumes() {
                resumable += c.total;
                resumable_resumed += c.resumed;
            }
        }
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Summary {
            mode: mode.to_owned(),
            users,
            duration_s: secs,
            page_loads: PageLoads {
                completed: g(&self.page_loads),
                aborted: g(&self.page_loads_aborted),
                failed: g(&self.page_loads_failed),
                per_s: g(&self.page_loads) as f64 / secs,
            },
            requests: Requests {
                ok: g(&self.requests_ok),
                aborted: g(&self.requests_aborted),
                resent: g(&self.requests_resent),
                per_s: g(&self.requests_ok) as f64 / secs,
            },
            bytes: g(&self.bytes),
            latency_ms: Latency {
                request: inner.requests.as_ref().map(Percentiles::of),
                page_load: inner.pages.as_ref().map(Percentiles::of),
                handshake: inner.handshakes.as_ref().map(Percentiles::of),
            },
            connections: Connections {
                total,
                resumed,
                tls13,
                tls12: total - tls13,
                resumption_rate: ratio(resumed, total),
                resumption_rate_resumable_kinds: ratio(resumable_resumed, resumable),
                aborted_by_client: g(&self.conns_aborted),
                reset_by_client: g(&self.conns_reset),
                by_kind,
            },
            errors: Errors {
                total: g(&self.errors),
                by_class: inner.errors.clone(),
            },
            samples: inner.samples.clone(),
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Everything the run measured.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `storm`, `bench` or `handshake`.
    pub mode: String,
    /// Virtual users (storm) or connections (bench).
    pub users: usize,
    /// Wall time.
    pub duration_s: f64,
    /// Page loads.
    pub page_loads: PageLoads,
    /// Requests.
    pub requests: Requests,
    /// Body bytes received.
    pub bytes: u64,
    /// Latency percentiles.
    pub latency_ms: Latency,
    /// Connections and resumption.
    pub connections: Connections,
    /// Server-fault errors.
    pub errors: Errors,
    /// The first few errors in full.
    pub samples: Vec<String>,
}

/// Page-load counts.
#[derive(Debug, Serialize)]
pub struct PageLoads {
    /// Completed and verified.
    pub completed: u64,
    /// Abandoned on purpose.
    pub aborted: u64,
    /// With at least one error.
    pub failed: u64,
    /// Completed per second.
    pub per_s: f64,
}

/// Request counts.
#[derive(Debug, Serialize)]
pub struct Requests {
    /// Verified responses.
    pub ok: u64,
    /// Cut off by our own aborts.
    pub aborted: u64,
    /// Resent on a new connection after the server closed cleanly before answering.
    pub resent: u64,
    /// Verified responses per second.
    pub per_s: f64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Per request (send to last body byte).
    pub request: Option<Percentiles>,
    /// Per page load (index plus every asset).
    pub page_load: Option<Percentiles>,
    /// TCP connect plus TLS handshake.
    pub handshake: Option<Percentiles>,
}

/// p50/p90/p99/p99.9/max in milliseconds.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Connection counts, client view.
#[derive(Debug, Serialize)]
pub struct Connections {
    /// Handshakes completed.
    pub total: u64,
    /// Resumed handshakes.
    pub resumed: u64,
    /// TLS 1.3 handshakes.
    pub tls13: u64,
    /// TLS 1.2 handshakes.
    pub tls12: u64,
    /// resumed / total.
    pub resumption_rate: f64,
    /// resumed / handshakes of the kinds that try to resume.
    pub resumption_rate_resumable_kinds: f64,
    /// Connections this client dropped mid-transfer on purpose.
    pub aborted_by_client: u64,
    /// Of those, closed with a TCP RST.
    pub reset_by_client: u64,
    /// kind -> protocol -> counts.
    pub by_kind: BTreeMap<String, BTreeMap<String, ConnCount>>,
}

/// Errors by class.
#[derive(Debug, Serialize)]
pub struct Errors {
    /// All server-fault errors.
    pub total: u64,
    /// Class label -> count.
    pub by_class: BTreeMap<String, u64>,
}

impl Summary {
    /// The human-readable summary table.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "== {} summary: {} users, {:.1} s",
            self.mode, self.users, self.duration_s
        );
        if self.mode == "storm" {
            let _ = writeln!(
                s,
                "page loads   {:>10} completed  {:>8.1}/s   {} aborted on purpose   {} failed",
                self.page_loads.completed,
                self.page_loads.per_s,
                self.page_loads.aborted,
                self.page_loads.failed
            );
        }
        let _ = writeln!(
            s,
            "requests     {:>10} verified   {:>8.1}/s   {} cut by our aborts   {} resent after a clean server close",
            self.requests.ok, self.requests.per_s, self.requests.aborted, self.requests.resent
        );
        let _ = writeln!(
            s,
            "bytes        {:>10} ({:.1} MB/s)",
            self.bytes,
            self.bytes as f64 / self.duration_s / 1e6
        );
        let lat = |name: &str, p: &Option<Percentiles>, s: &mut String| {
            if let Some(p) = p.as_ref().filter(|p| p.count > 0) {
                let _ = writeln!(
                    s,
                    "latency {name:<10} p50 {:>8.2} ms  p90 {:>8.2}  p99 {:>8.2}  p99.9 {:>8.2}  max {:>8.2}  (n={})",
                    p.p50, p.p90, p.p99, p.p999, p.max, p.count
                );
            }
        };
        lat("request", &self.latency_ms.request, &mut s);
        lat("page load", &self.latency_ms.page_load, &mut s);
        lat("handshake", &self.latency_ms.handshake, &mut s);
        let c = &self.connections;
        let _ = writeln!(
            s,
            "connections  {:>10} handshakes: {} resumed ({:.1}%; {:.1}% of resumable kinds), TLS 1.3 {}, TLS 1.2 {}; {} dropped by us ({} with RST)",
            c.total,
            c.resumed,
            c.resumption_rate * 100.0,
            c.resumption_rate_resumable_kinds * 100.0,
            c.tls13,
            c.tls12,
            c.aborted_by_client,
            c.reset_by_client
        );
        for (kind, protos) in &c.by_kind {
            for (proto, n) in protos {
                let _ = writeln!(
                    s,
                    "  {kind:<13} {proto:<3} {:>9} handshakes  {:>9} resumed",
                    n.total, n.resumed
                );
            }
        }
        let _ = writeln!(s, "errors       {:>10}", self.errors.total);
        for (class, n) in &self.errors.by_class {
            let _ = writeln!(s, "  {class:<40} {n}");
        }
        for sample in &self.samples {
            let _ = writeln!(s, "  sample: {sample}");
        }
        s
    }
}

/// A live progress line on a terminal (hidden when stderr is not a terminal or `quiet`).
pub fn progress(quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("static template"),
    );
    pb
}
