//! loadtest: a black-box HTTPS client for rampart (or any server) with five modes.
//!
//! - `storm`: virtual users loop browser-like page loads over a mix of fresh, TLS 1.3 and
//!   TLS 1.2 (ticket and session-ID) resumed connections, HTTP/1.1 (six connections) and
//!   HTTP/2, verify every body byte for byte against `--root`, abandon a share of loads
//!   mid-body (some with a TCP RST) like a browser refresh, and classify every failure.
//! - `bench`: fixed-concurrency keep-alive requests to one URL (HTTP/1.1 or HTTP/2).
//! - `handshake`: a new TLS connection per request, with or without resumption.
//! - `idle`: many connections held open after one request each (memory per connection).
//! - `attack`: a bounded denial-of-service attack on a loopback server, with the server's
//!   CPU and memory read from /proc and a legitimate client fetching throughout.
//! - `floor`: the cryptographic floor of a handshake and of a large file on this core.
//!
//! Exit status: 0 when no server-fault error occurred (attack: the server kept every
//! limit), 1 when one did, 2 on a usage or setup error.

mod attack;
mod bench;
mod classify;
mod floor;
mod net;
mod quic;
mod report;
mod site;
mod storm;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use net::{Proto, Target, TlsKind};
use report::Stats;
use site::Site;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Refresh-storm and benchmark client for HTTPS servers (loopback use)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Browser-like page loads with refresh aborts; verifies every byte.
    Storm(StormArgs),
    /// Keep-alive requests to one URL at fixed concurrency.
    Bench(BenchArgs),
    /// A new TLS connection per request (full or resumed handshakes).
    Handshake(HandshakeArgs),
    /// Opens many connections, makes one request on each, holds them idle, closes them.
    Idle(IdleArgs),
    /// A bounded denial-of-service attack on a loopback server; reports its CPU and memory.
    Attack(AttackArgs),
    /// Times the cryptography a TLS 1.3 handshake and a large file need (aws-lc-rs, this
    /// core): the floor a server's CPU per handshake and per MB is measured against.
    Floor(FloorArgs),
}

#[derive(Args)]
struct FloorArgs {
    /// Time per primitive.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    time: Duration,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct AttackArgs {
    /// The attack: pipeline (HTTP/1.1 pipelining that stops reading), h2-zero-window
    /// (HTTP/2 streams that get no window), h2-tiny-window (a window opened a byte at a time).
    #[arg(long, value_enum)]
    kind: attack::Kind,
    /// The server's URL (loopback only); the legitimate client fetches it throughout.
    #[arg(long)]
    url: String,
    /// PEM file of trusted CA certificates.
    #[arg(long)]
    ca: PathBuf,
    /// The server's process ID: its CPU and memory are read from /proc/PID.
    #[arg(long)]
    server_pid: u32,
    /// The attacked path [default: /small.txt for pipeline, /big.bin (a large file) for h2].
    #[arg(long)]
    path: Option<String>,
    /// Attacking connections [default: 4 for h2-zero-window, 1 for the others].
    #[arg(long, short = 'c')]
    connections: Option<usize>,
    /// HTTP/2 streams per connection (h2-zero-window).
    #[arg(long, default_value_t = 128)]
    streams: u32,
    /// Pipelined GETs per connection, sent in one write (pipeline).
    #[arg(long, short = 'n', default_value_t = 40_000)]
    requests: u64,
    /// One-byte WINDOW_UPDATEs per connection at most, 100 per write (h2-tiny-window).
    #[arg(long, default_value_t = 50_000)]
    updates: u64,
    /// How long the zero-window connections are held (h2-zero-window).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    hold: Duration,
    /// Fail when the server uses more than this share of a core 1-2 s after the attack, %.
    #[arg(long, default_value_t = 20.0)]
    max_cpu_after_pct: f64,
    /// Fail when the server's memory grows by more than this per attacking connection, MiB.
    #[arg(long, default_value_t = 8.0)]
    max_rss_per_conn_mib: f64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open and hold.
    #[arg(long, short = 'c', default_value_t = 5000)]
    connections: usize,
    /// How long to hold them (measure the server while they are held).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    hold: Duration,
    /// Use HTTP/2 (default HTTP/1.1).
    #[arg(long)]
    http2: bool,
}

#[derive(Args)]
struct Common {
    /// The page or file URL (https://127.0.0.1:8443/).
    #[arg(long)]
    url: String,
    /// PEM file of trusted CA certificates (rampart's dev CA: certs/dev/ca.pem).
    #[arg(long)]
    ca: PathBuf,
    /// How long to run (e.g. 20s, 10m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Deadline for a connect, handshake or whole response.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
    /// Runtime worker threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct StormArgs {
    #[command(flatten)]
    common: Common,
    /// The directory the server serves: every body is compared with these files.
    #[arg(long)]
    root: PathBuf,
    /// Concurrent virtual users.
    #[arg(long, default_value_t = 64)]
    users: usize,
    /// Stop after this many page loads in all.
    #[arg(long)]
    max_page_loads: Option<u64>,
    /// Share of page loads abandoned mid-body (refresh).
    #[arg(long, default_value_t = 0.3)]
    abort_share: f64,
    /// Share of abandoned connections closed with a TCP RST (SO_LINGER 0).
    #[arg(long, default_value_t = 0.5)]
    rst_share: f64,
    /// Share of page loads that reuse the previous load's keep-alive connections.
    #[arg(long, default_value_t = 0.3)]
    reuse: f64,
    /// HTTP versions to mix: h1, h2, h3 (QUIC), e.g. h1,h2,h3.
    #[arg(long, default_value = "h1,h2")]
    mix: String,
    /// Every page load over HTTP/3 (the same as --mix h3). With --kinds tcp-ticket a user
    /// without a ticket from TCP loads the page over HTTP/2 first, then resumes over QUIC.
    #[arg(long)]
    http3: bool,
    /// TLS kinds with weights: full13, full12, tls13, tls12-ticket, tls12-id, tcp-ticket
    /// (TLS 1.3; QUIC resumes only with tickets from TCP). HTTP/3 page loads draw from the
    /// TLS 1.3 kinds only (tls13 when none is listed).
    #[arg(
        long,
        default_value = "full13:1,full12:1,tls13:2,tls12-ticket:2,tls12-id:2"
    )]
    kinds: String,
    /// Another URL path fetched on every page load (a file under --root); repeatable.
    #[arg(long)]
    also: Vec<String>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    common: Common,
    /// Connections.
    #[arg(long, short = 'c', default_value_t = 64)]
    connections: usize,
    /// Concurrent streams per HTTP/2 connection.
    #[arg(long, short = 'm', default_value_t = 10)]
    streams: usize,
    /// Use HTTP/2 (default HTTP/1.1).
    #[arg(long)]
    http2: bool,
    /// Use HTTP/3 over QUIC (streams per connection as for HTTP/2).
    #[arg(long, conflicts_with = "http2")]
    http3: bool,
    /// Stop after this many requests.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// accept-encoding to send (e.g. "gzip, br").
    #[arg(long)]
    accept_encoding: Option<String>,
    /// Verify bodies against this directory.
    #[arg(long)]
    root: Option<PathBuf>,
}

#[derive(Args)]
struct HandshakeArgs {
    #[command(flatten)]
    common: Common,
    /// Concurrent workers, each opening one connection at a time.
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// Resume sessions (per-worker session store).
    #[arg(long)]
    resume: bool,
    /// TLS 1.2 instead of TLS 1.3 (resumption then by ticket).
    #[arg(long)]
    tls12: bool,
    /// Use HTTP/2 (default HTTP/1.1).
    #[arg(long)]
    http2: bool,
    /// QUIC handshakes and HTTP/3 (TLS 1.3 only; resumed = no certificate verified).
    #[arg(long, conflicts_with_all = ["http2", "tls12"])]
    http3: bool,
    /// Offer only this cipher: aes128 (what browsers prefer on AES hardware), aes256
    /// (rustls' and OpenSSL's own first choice), chacha20; default: rustls' list.
    #[arg(long, value_parser = ["aes128", "aes256", "chacha20"])]
    cipher: Option<String>,
    /// Offer only this key exchange: x25519, x25519mlkem768 (the post-quantum hybrid that
    /// browsers send first), p256; default: rustls' list (X25519 first).
    #[arg(long, value_parser = ["x25519", "x25519mlkem768", "p256"])]
    kx: Option<String>,
    /// Stop after this many handshakes.
    #[arg(long, short = 'n')]
    requests: Option<u64>,
}

/// `500ms`, `20s`, `10m`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn share(name: &str, v: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&v) {
        bail!("--{name} must be between 0 and 1, got {v}");
    }
    Ok(v)
}

fn parse_kinds(s: &str) -> Result<Vec<(TlsKind, u32)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part.split_once(':').unwrap_or((part, "1"));
        let w: u32 = w
            .parse()
            .with_context(|| format!("--kinds: bad weight in {part:?}"))?;
        if w > 0 {
            out.push((TlsKind::parse(name)?, w));
        }
    }
    if out.is_empty() {
        bail!("--kinds: nothing to run");
    }
    Ok(out)
}

fn parse_mix(s: &str) -> Result<Vec<Proto>> {
    let mut out = Vec::new();
    for p in s.split(',').map(str::trim) {
        out.push(match p {
            "h1" => Proto::H1,
            "h2" => Proto::H2,
            "h3" => Proto::H3,
            _ => bail!("--mix: unknown protocol {p:?} (h1, h2, h3)"),
        });
    }
    Ok(out)
}

fn proto_of(http2: bool, http3: bool) -> Proto {
    match (http2, http3) {
        (_, true) => Proto::H3,
        (true, false) => Proto::H2,
        (false, false) => Proto::H1,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    Ok(b.enable_all().build()?)
}

/// Runs a mode with a live progress line; prints and writes the summary; true when clean.
fn drive<F>(common: &Common, mode: &str, users: usize, stats: Arc<Stats>, work: F) -> Result<bool>
where
    F: std::future::Future<Output = ()>,
{
    let rt = runtime(common.threads)?;
    let pb = report::progress(common.quiet);
    rt.block_on(async {
        let ticker = {
            let (pb, stats) = (pb.clone(), Arc::clone(&stats));
            tokio::spawn(async move {
                loop {
                    pb.set_message(stats.progress_line());
                    pb.tick();
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        work.await;
        ticker.abort();
    });
    pb.finish_and_clear();
    drop(rt);
    let summary = stats.summary(mode, users);
    print!("{}", summary.text());
    if let Some(path) = &common.json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if summary.requests.ok == 0 && summary.errors.total == 0 {
        eprintln!("loadtest: no request completed");
        return Ok(false);
    }
    Ok(summary.errors.total == 0 && summary.requests.ok > 0)
}

fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Storm(a) => {
            let (target, path) = Target::parse(&a.common.url)?;
            let site = Arc::new(Site::load(&a.root, &a.also)?);
            let opts = Arc::new(storm::Options {
                target,
                path,
                site,
                roots: net::roots(&a.common.ca)?,
                users: a.users.max(1),
                duration: a.common.duration,
                max_page_loads: a.max_page_loads,
                abort_share: share("abort-share", a.abort_share)?,
                rst_share: share("rst-share", a.rst_share)?,
                reuse: share("reuse", a.reuse)?,
                protos: if a.http3 {
                    vec![Proto::H3]
                } else {
                    parse_mix(&a.mix)?
                },
                kinds: parse_kinds(&a.kinds)?,
                timeout: a.common.timeout,
            });
            let stats = Arc::new(Stats::new());
            let users = opts.users;
            drive(
                &a.common,
                "storm",
                users,
                Arc::clone(&stats),
                storm::run(opts, Arc::clone(&stats)),
            )
        }
        Command::Bench(a) => {
            let opts = bench_options(
                &a.common,
                a.root.as_deref(),
                a.requests,
                a.accept_encoding.clone(),
            )?;
            let stats = Arc::new(Stats::new());
            let proto = proto_of(a.http2, a.http3);
            let work = bench::bench(
                opts,
                Arc::clone(&stats),
                a.connections.max(1),
                a.streams,
                proto,
            );
            drive(&a.common, "bench", a.connections, stats, work)
        }
        Command::Handshake(a) => {
            let opts = bench_options(&a.common, None, a.requests, None)?;
            let stats = Arc::new(Stats::new());
            let kind = match (a.resume, a.tls12) {
                (false, false) => TlsKind::Full13,
                (false, true) => TlsKind::Full12,
                (true, false) => TlsKind::Tls13,
                (true, true) => TlsKind::Tls12Ticket,
            };
            let proto = proto_of(a.http2, a.http3);
            let cipher = a.cipher.as_deref().map(|c| match c {
                "aes128" => "AES_128_GCM",
                "aes256" => "AES_256_GCM",
                _ => "CHACHA20",
            });
            let work = bench::handshakes(
                opts,
                Arc::clone(&stats),
                a.concurrency.max(1),
                kind,
                proto,
                net::Offer {
                    cipher,
                    kx: a.kx.as_deref().map(net::Kx::from_flag),
                },
            );
            drive(&a.common, "handshake", a.concurrency, stats, work)
        }
        Command::Idle(a) => {
            let opts = bench_options(&a.common, None, None, None)?;
            let stats = Arc::new(Stats::new());
            let proto = if a.http2 { Proto::H2 } else { Proto::H1 };
            let work = bench::idle(
                opts,
                Arc::clone(&stats),
                a.connections.max(1),
                a.hold,
                proto,
            );
            drive(&a.common, "idle", a.connections, stats, work)
        }
        Command::Attack(a) => attack(a),
        Command::Floor(a) => {
            let floor = floor::measure(a.time)?;
            println!("{floor}");
            if let Some(path) = a.json {
                std::fs::write(&path, serde_json::to_vec_pretty(&floor)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(true)
        }
    }
}

fn attack(a: AttackArgs) -> Result<bool> {
    let (target, legit_path) = Target::parse(&a.url)?;
    let opts = Arc::new(attack::Options {
        kind: a.kind,
        target,
        legit_path,
        path: a.path.unwrap_or_else(|| {
            match a.kind {
                attack::Kind::Pipeline => "/small.txt",
                attack::Kind::H2ZeroWindow | attack::Kind::H2TinyWindow => "/big.bin",
            }
            .to_owned()
        }),
        roots: net::roots(&a.ca)?,
        pid: a.server_pid,
        connections: a.connections.unwrap_or(match a.kind {
            attack::Kind::H2ZeroWindow => 4,
            attack::Kind::Pipeline | attack::Kind::H2TinyWindow => 1,
        }),
        streams: a.streams,
        requests: a.requests,
        updates: a.updates,
        hold: a.hold,
        max_cpu_after_pct: a.max_cpu_after_pct,
        max_rss_per_conn_mib: a.max_rss_per_conn_mib,
    });
    opts.check()?;
    let report = runtime(None)?.block_on(attack::run(opts))?;
    print!("{}", report.text());
    if let Some(path) = &a.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.passed)
}

fn bench_options(
    common: &Common,
    root: Option<&std::path::Path>,
    requests: Option<u64>,
    accept_encoding: Option<String>,
) -> Result<Arc<bench::Options>> {
    let (target, path) = Target::parse(&common.url)?;
    Ok(Arc::new(bench::Options {
        target,
        path,
        roots: net::roots(&common.ca)?,
        site: root.map(|r| Site::load(r, &[]).map(Arc::new)).transpose()?,
        duration: common.duration,
        max_requests: requests,
        accept_encoding,
        timeout: common.timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_kinds_parse() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3y").is_err());
        let k = parse_kinds("full13:1,tls12-id:3").unwrap();
        assert_eq!(k, vec![(TlsKind::Full13, 1), (TlsKind::Tls12Id, 3)]);
        assert!(parse_kinds("tls11").is_err());
        assert_eq!(parse_mix("h2").unwrap(), vec![Proto::H2]);
        assert_eq!(parse_mix("h1,h3").unwrap(), vec![Proto::H1, Proto::H3]);
        assert_eq!(
            parse_kinds("tcp-ticket").unwrap(),
            vec![(TlsKind::TcpTicket, 1)]
        );
        assert!(share("x", 1.5).is_err());
    }
}
