//! `attack`: bounded denial-of-service attacks against a server on loopback (issue 14), with
//! the server's CPU and memory read from /proc and a legitimate client fetching throughout.
//!
//! - `pipeline`: HTTP/1.1 GETs pipelined in one write by a client that stops reading, reads
//!   a little after a pause, then leaves (the server used to spin a worker for 60 s).
//! - `h2-zero-window`: HTTP/2 connections that grant no window and open many streams for a
//!   large file (the server used to read and hold a 256 KiB chunk per stream).
//! - `h2-tiny-window`: one HTTP/2 stream whose window is opened a byte at a time (the
//!   server used to send a one-byte DATA frame per update, millions of them).
//!
//! This module owns the run of one attack: the legitimate client, the readings of the server
//! before, during and after the attack ([`procfs`]), and the verdict. The attacks are in
//! [`pipeline`] and [`h2`] (raw HTTP/1.1 and hand-built HTTP/2 [`frames`] over
//! [`net::connect_tls`]), the report in [`report`]. Every loop is bounded in count and time
//! (an attack with its defaults takes under ~15 s), and only loopback addresses are attacked.

mod frames;
mod h2;
mod pipeline;
mod procfs;
mod report;

use crate::classify::Failure;
use crate::net::{self, KindConfigs, Proto, Target, TlsConn, TlsKind};
use anyhow::{bail, Result};
use procfs::{Peak, Usage};
use report::{Cpu, Figures, Legit, Report, Rss};
use rustls::RootCertStore;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// The Host (HTTP/1.1) and :authority (HTTP/2) of the attacking requests, as in the
/// issue's reproduction (a GET of 45 bytes: 40,000 make a write of 1.8 MB).
const HOST: &str = "localhost";
/// The legitimate client fetches this often, each fetch within [`LEGIT_TIMEOUT`].
const LEGIT_EVERY: Duration = Duration::from_millis(200);
/// A new TLS connection and a whole response, or the fetch failed.
const LEGIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connect and handshake deadline of an attacking connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// HTTP/1.1 pipelining by a client that stops reading.
    Pipeline,
    /// HTTP/2 streams for a large file on connections that grant no window.
    H2ZeroWindow,
    /// One HTTP/2 stream whose window is opened a byte at a time.
    H2TinyWindow,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Pipeline => "pipeline",
            Self::H2ZeroWindow => "h2-zero-window",
            Self::H2TinyWindow => "h2-tiny-window",
        }
    }
}

/// What to attack and the limits the server must keep.
pub struct Options {
    /// The attack.
    pub kind: Kind,
    /// The server (a loopback address).
    pub target: Target,
    /// The path the legitimate client fetches (the URL's).
    pub legit_path: String,
    /// The path attacked: a small file (pipeline) or a large one (HTTP/2).
    pub path: String,
    /// Trust anchors.
    pub roots: Arc<RootCertStore>,
    /// The server's process ID, for /proc.
    pub pid: u32,
    /// Attacking connections.
    pub connections: usize,
    /// Streams per connection (h2-zero-window).
    pub streams: u32,
    /// Pipelined requests per connection (pipeline).
    pub requests: u64,
    /// One-byte window updates per connection at most (h2-tiny-window).
    pub updates: u64,
    /// How long the zero-window connections are held.
    pub hold: Duration,
    /// The server fails above this CPU use 1-2 s after the attack, percent of one core.
    pub max_cpu_after_pct: f64,
    /// The server fails above this memory growth per attacking connection, MiB.
    pub max_rss_per_conn_mib: f64,
}

impl Options {
    /// Refuses anything but a loopback server and counts beyond the bounds.
    pub fn check(&self) -> Result<()> {
        if !self.target.addr.ip().is_loopback() {
            bail!(
                "--url: attacks go to loopback addresses only, not {}",
                self.target.addr
            );
        }
        let bounded = [
            ("connections", self.connections as u64, 1, 64),
            ("streams", u64::from(self.streams), 1, 1000),
            ("requests", self.requests, 1, 200_000),
            ("updates", self.updates, 1, 200_000),
        ];
        for (flag, v, lo, hi) in bounded {
            if !(lo..=hi).contains(&v) {
                bail!("--{flag} must be between {lo} and {hi}, got {v}");
            }
        }
        if self.hold > Duration::from_secs(30) {
            bail!("--hold must be at most 30s, got {:?}", self.hold);
        }
        if !self.path.starts_with('/') || self.path.len() >= 127 {
            bail!(
                "--path must start with / and be under 127 bytes, got {:?}",
                self.path
            );
        }
        Ok(())
    }
}

/// Runs one attack with the legitimate client alongside; `Err` only for a setup error.
pub async fn run(opts: Arc<Options>) -> Result<Report> {
    opts.check()?;
    let started = Instant::now();
    Usage::of(opts.pid)?;
    let mut failures = Vec::new();
    if opts.kind != Kind::Pipeline {
        // The first download of the file allocates what any download does (the allocator's
        // arenas, the first chunk buffers): not counted against the attack.
        if let Err(f) = warm_up(&opts).await {
            failures.push(format!("warm-up download of {}: {}", opts.path, f.detail));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let legit = tokio::spawn(legitimate(Arc::clone(&opts), Arc::clone(&stop), started));
    let before = Usage::of(opts.pid)?;
    let peak = Peak::start(opts.pid, &before);
    let (figures, mut found) = match opts.kind {
        Kind::Pipeline => pipeline::run(&opts).await,
        Kind::H2ZeroWindow => h2::zero_window(&opts).await,
        Kind::H2TinyWindow => h2::tiny_window(&opts).await,
    };
    failures.append(&mut found);
    // The attacker has left: the server must go quiet. The first second after is left out
    // (closing work, the kernel's FIN/RST exchange); the next one is measured.
    let left = Usage::of(opts.pid);
    let peak_kib = match &left {
        Ok(u) => peak.finish(u).await,
        Err(_) => peak.finish(&before).await,
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let quiet_from = Usage::of(opts.pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let quiet_to = Usage::of(opts.pid);
    stop.store(true, Ordering::Relaxed);
    let legitimate = legit.await.unwrap_or_default();

    let (Ok(left), Ok(quiet_from), Ok(quiet_to)) = (left, quiet_from, quiet_to) else {
        failures.push("the server process is gone".to_owned());
        return Ok(Report::gone(&opts, started, failures, figures, legitimate));
    };
    let per_connection_kib = peak_kib.saturating_sub(before.rss_kib) / opts.connections as u64;
    let limit_kib = (opts.max_rss_per_conn_mib * 1024.0) as u64;
    let cpu = Cpu {
        attack_pct: left.cpu_pct_since(&before),
        attack_s: left.at.duration_since(before.at).as_secs_f64(),
        after_pct: quiet_to.cpu_pct_since(&quiet_from),
        after_limit_pct: opts.max_cpu_after_pct,
    };
    if cpu.after_pct > opts.max_cpu_after_pct {
        failures.push(format!(
            "the server used {:.0}% of a core 1-2 s after the attacker left (limit {:.0}%)",
            cpu.after_pct, opts.max_cpu_after_pct
        ));
    }
    if per_connection_kib > limit_kib {
        failures.push(format!(
            "the server's memory grew by {:.1} MiB per attacking connection (limit {:.1} MiB)",
            per_connection_kib as f64 / 1024.0,
            opts.max_rss_per_conn_mib
        ));
    }
    if legitimate.failed > 0 || legitimate.answered == 0 {
        failures.push(format!(
            "the legitimate client had {} of {} fetches fail",
            legitimate.failed,
            legitimate.failed + legitimate.answered
        ));
    }
    Ok(Report {
        kind: opts.kind,
        passed: failures.is_empty(),
        failures,
        duration_s: started.elapsed().as_secs_f64(),
        connections: opts.connections,
        cpu,
        rss: Rss {
            before_kib: before.rss_kib,
            peak_kib,
            after_kib: quiet_to.rss_kib,
            per_connection_kib,
            per_connection_limit_kib: limit_kib,
        },
        legitimate,
        attack: figures,
    })
}

/// One whole download of the attacked file over HTTP/2, as a browser would make it.
async fn warm_up(opts: &Options) -> Result<(), Failure> {
    let configs = KindConfigs::new(&opts.roots, TlsKind::Full13);
    let timeout = Duration::from_secs(10);
    let mut conn =
        net::connect(&opts.target, &configs, TlsKind::Full13, Proto::H2, timeout).await?;
    let resp = conn
        .req
        .get(&opts.target, &opts.path, None, timeout, &|_| {})
        .await?;
    if resp.status != http::StatusCode::OK {
        return Err(Failure::new("status", format!("status {}", resp.status)));
    }
    conn.close(Duration::from_secs(1)).await
}

/// Fetches the URL over a new TLS connection every 200 ms until `stop` (at most 60 s),
/// each within 2 s: a handshake that waits behind a spinning worker fails here.
async fn legitimate(opts: Arc<Options>, stop: Arc<AtomicBool>, started: Instant) -> Legit {
    let configs = KindConfigs::new(&opts.roots, TlsKind::Full13);
    let mut legit = Legit::default();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
        let at = started.elapsed();
        let fetch = async {
            let mut conn = net::connect(
                &opts.target,
                &configs,
                TlsKind::Full13,
                Proto::H1,
                LEGIT_TIMEOUT,
            )
            .await?;
            let resp = conn
                .req
                .get(&opts.target, &opts.legit_path, None, LEGIT_TIMEOUT, &|_| {})
                .await?;
            // Closing is not part of the fetch (bounded on its own).
            tokio::spawn(conn.close(Duration::from_secs(1)));
            if resp.status == http::StatusCode::OK {
                Ok(())
            } else {
                Err(Failure::new("status", format!("status {}", resp.status)))
            }
        };
        let r = match tokio::time::timeout(LEGIT_TIMEOUT, fetch).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new("timeout", "no answer within 2 s")),
        };
        match r {
            Ok(()) => legit.answered += 1,
            Err(f) => {
                legit.failed += 1;
                if legit.samples.len() < 5 {
                    legit.samples.push(format!(
                        "[{:.3}s] {}: {}",
                        at.as_secs_f64(),
                        f.class,
                        f.detail
                    ));
                }
            }
        }
        tokio::time::sleep(LEGIT_EVERY).await;
    }
    legit
}

/// Opens an attacking connection that must speak `proto`.
async fn attacker(opts: &Options, proto: Proto) -> Result<TlsConn, String> {
    let configs = KindConfigs::new(&opts.roots, TlsKind::Full13);
    let conn = net::connect_tls(
        &opts.target,
        &configs,
        TlsKind::Full13,
        proto,
        CONNECT_TIMEOUT,
    )
    .await
    .map_err(|f| format!("attacker: {}: {}", f.class, f.detail))?;
    if conn.handshake.proto != proto {
        return Err(format!(
            "attacker: the server chose {} by ALPN, not {}",
            conn.handshake.proto.label(),
            proto.label()
        ));
    }
    Ok(conn)
}

/// Runs `one` on each of the attacking connections at once; the results in any order.
async fn each_connection<T, F, Fut>(opts: &Arc<Options>, one: F) -> Vec<Result<T, String>>
where
    T: Send + 'static,
    F: Fn(Arc<Options>) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    for _ in 0..opts.connections {
        tasks.spawn(one(Arc::clone(opts)));
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        out.push(r.unwrap_or_else(|e| Err(format!("attacker task: {e}"))));
    }
    out
}
