//! What an attack measured and its verdict: the report's types (serialized as the `--json`
//! file) and the human-readable text.

use super::{Kind, Options};
use serde::Serialize;
use std::time::Instant;

/// Everything one attack measured, and the verdict.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The attack.
    pub kind: Kind,
    /// The server kept every limit.
    pub passed: bool,
    /// Why it did not, one line each.
    pub failures: Vec<String>,
    /// Wall time of the whole run (legitimate client's first fetch to the last reading).
    pub duration_s: f64,
    /// Attacking connections.
    pub connections: usize,
    /// The server's CPU use.
    pub cpu: Cpu,
    /// The server's resident memory.
    pub rss: Rss,
    /// The legitimate client's fetches during the whole run.
    pub legitimate: Legit,
    /// What the attack did and saw.
    pub attack: Figures,
}

/// Server CPU in percent of one core.
#[derive(Debug, Serialize)]
pub struct Cpu {
    /// While the attack ran.
    pub attack_pct: f64,
    /// How long it ran, seconds.
    pub attack_s: f64,
    /// From 1 s to 2 s after the attacker left (must be near 0).
    pub after_pct: f64,
    /// The limit on `after_pct`.
    pub after_limit_pct: f64,
}

/// Server resident memory (VmRSS) in KiB.
#[derive(Debug, Serialize)]
pub struct Rss {
    /// Before the attack (h2: after one warm-up download of the file).
    pub before_kib: u64,
    /// The highest reading while the attack ran (every 100 ms).
    pub peak_kib: u64,
    /// 2 s after the attacker left.
    pub after_kib: u64,
    /// (peak - before) / connections.
    pub per_connection_kib: u64,
    /// The limit on `per_connection_kib`.
    pub per_connection_limit_kib: u64,
}

/// The legitimate client: a new TLS connection and one GET every 200 ms, 2 s each.
#[derive(Debug, Default, Serialize)]
pub struct Legit {
    /// Fetches answered 200 in time.
    pub answered: u64,
    /// Fetches that failed or took over 2 s.
    pub failed: u64,
    /// The first few failures, with the time since the run started.
    pub samples: Vec<String>,
}

/// What the attacking connections did, by attack.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figures {
    /// `pipeline`, all connections together.
    Pipeline {
        /// Requests written (in one write per connection).
        requests: u64,
        /// Request bytes taken in by the server.
        bytes_written: u64,
        /// Connections whose burst the server did not take in within 5 s.
        bursts_stuck: u64,
        /// Response bytes read before leaving.
        bytes_read: u64,
        /// Status lines among them.
        responses: u64,
    },
    /// `h2-zero-window`, all connections together.
    ZeroWindow {
        /// Streams opened per connection.
        streams: u32,
        /// Response heads received.
        heads: u64,
        /// Streams reset by the server (refused).
        resets: u64,
        /// DATA frames with a payload, sent without window (a protocol error).
        data_frames: u64,
        /// Connections the server ended (GOAWAY or close) before the hold was over.
        closed_early: u64,
        /// Seconds the connections were held.
        hold_s: f64,
    },
    /// `h2-tiny-window`, all connections together.
    TinyWindow {
        /// One-byte WINDOW_UPDATEs sent before the server closed (or the bound ran out).
        updates_sent: u64,
        /// The bound per connection.
        updates_max: u64,
        /// DATA frames received.
        data_frames: u64,
        /// DATA payload bytes received.
        data_bytes: u64,
        /// Connections the server closed.
        closed: u64,
        /// Seconds from the first update to the last close (or to giving up).
        took_s: f64,
    },
}

impl Report {
    /// The report when the server died during the run: no readings after it.
    pub(super) fn gone(
        opts: &Options,
        started: Instant,
        failures: Vec<String>,
        attack: Figures,
        legitimate: Legit,
    ) -> Self {
        Self {
            kind: opts.kind,
            passed: false,
            failures,
            duration_s: started.elapsed().as_secs_f64(),
            connections: opts.connections,
            cpu: Cpu {
                attack_pct: 0.0,
                attack_s: 0.0,
                after_pct: 0.0,
                after_limit_pct: opts.max_cpu_after_pct,
            },
            rss: Rss {
                before_kib: 0,
                peak_kib: 0,
                after_kib: 0,
                per_connection_kib: 0,
                per_connection_limit_kib: 0,
            },
            legitimate,
            attack,
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mib = |kib: u64| kib as f64 / 1024.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "== attack {}: {} connection(s), {:.1} s",
            self.kind.label(),
            self.connections,
            self.duration_s
        );
        let _ = match &self.attack {
            Figures::Pipeline {
                requests,
                bytes_written,
                bursts_stuck,
                bytes_read,
                responses,
            } => writeln!(
                s,
                "attack       {requests} pipelined GETs per connection ({bytes_written} bytes taken in, {bursts_stuck} bursts stuck); read {bytes_read} bytes ({responses} responses), then left"
            ),
            Figures::ZeroWindow {
                streams,
                heads,
                resets,
                data_frames,
                closed_early,
                hold_s,
            } => writeln!(
                s,
                "attack       {streams} streams per connection with no window: {heads} response heads, {resets} refused, {data_frames} DATA frames; held {hold_s:.1} s ({closed_early} closed by the server)"
            ),
            Figures::TinyWindow {
                updates_sent,
                updates_max,
                data_frames,
                data_bytes,
                closed,
                took_s,
            } => writeln!(
                s,
                "attack       {updates_sent} one-byte window updates sent (at most {updates_max} per connection), {data_frames} DATA frames ({data_bytes} bytes) received; {closed} closed by the server, in {took_s:.2} s"
            ),
        };
        let c = &self.cpu;
        let _ = writeln!(
            s,
            "server CPU   {:.0}% of a core during the attack ({:.2} s); {:.0}% 1-2 s after it (limit {:.0}%)",
            c.attack_pct, c.attack_s, c.after_pct, c.after_limit_pct
        );
        let r = &self.rss;
        let _ = writeln!(
            s,
            "server RSS   {:.1} MiB before, {:.1} MiB peak during, {:.1} MiB after: +{:.2} MiB per connection (limit {:.1})",
            mib(r.before_kib),
            mib(r.peak_kib),
            mib(r.after_kib),
            mib(r.per_connection_kib),
            mib(r.per_connection_limit_kib)
        );
        let l = &self.legitimate;
        let _ = writeln!(
            s,
            "legitimate   {} answered, {} failed (a new TLS connection and GET every 200 ms, 2 s each)",
            l.answered, l.failed
        );
        for sample in &l.samples {
            let _ = writeln!(s, "  sample: {sample}");
        }
        if self.passed {
            let _ = writeln!(s, "verdict      PASS");
        } else {
            let _ = writeln!(s, "verdict      FAIL");
            for f in &self.failures {
                let _ = writeln!(s, "  {f}");
            }
        }
        s
    }
}
