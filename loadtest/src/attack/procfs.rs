//! The server's CPU time and resident memory, read from /proc/PID (Linux): what the attack
//! report measures the server by. A sample is two small file reads; nothing here writes.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ: 100 on every Linux
/// architecture this runs on; the kernel scales its internal HZ to it).
const TICKS_PER_S: u64 = 100;

/// How often [`Peak`] reads the resident memory.
const PEAK_EVERY: Duration = Duration::from_millis(100);

/// One reading of the server process.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// User plus system CPU time so far.
    pub cpu: Duration,
    /// Resident memory (VmRSS), KiB.
    pub rss_kib: u64,
    /// When it was read.
    pub at: Instant,
}

impl Usage {
    /// Reads the process now; an error when it is gone (or not readable).
    pub fn of(pid: u32) -> Result<Self> {
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat (is the server running?)"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        Ok(Self {
            cpu: cpu_time(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))?,
            rss_kib: rss_kib(&status).with_context(|| format!("no VmRSS in /proc/{pid}/status"))?,
            at,
        })
    }

    /// The CPU used from `earlier` to this reading, in percent of one core.
    pub fn cpu_pct_since(&self, earlier: &Self) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(0.001);
        self.cpu.saturating_sub(earlier.cpu).as_secs_f64() / wall * 100.0
    }
}

/// utime + stime: fields 14 and 15 of the line, counted after the command name (field 2),
/// which is in parentheses and may hold spaces or parentheses itself.
fn cpu_time(stat: &str) -> Option<Duration> {
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / TICKS_PER_S))
}

fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The highest resident memory seen while an attack runs, read every 100 ms by a task.
pub struct Peak {
    max_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Peak {
    /// Starts reading `pid`'s memory; `from` is the first reading.
    pub fn start(pid: u32, from: &Usage) -> Self {
        let max_kib = Arc::new(AtomicU64::new(from.rss_kib));
        let stop = Arc::new(AtomicBool::new(false));
        let (max, halt) = (Arc::clone(&max_kib), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            // Bounded: an attack lasts seconds; ten minutes of readings is a hard stop.
            for _ in 0..6000 {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(u) = Usage::of(pid) {
                    max.fetch_max(u.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(PEAK_EVERY).await;
            }
        });
        Self {
            max_kib,
            stop,
            task,
        }
    }

    /// Stops reading; the highest value seen, `last` included.
    pub async fn finish(self, last: &Usage) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.max_kib.load(Ordering::Relaxed).max(last.rss_kib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_utime_plus_stime_after_a_command_with_spaces() {
        let stat = "4242 (tokio (w) 1) S 1 4242 4242 0 -1 4194560 9 0 0 0 250 37 0 0 20 0 3 0";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(2870)));
        assert_eq!(rss_kib("Name:\tx\nVmRSS:\t   12345 kB\n"), Some(12_345));
    }

    #[test]
    fn this_process_can_be_read() {
        let u = Usage::of(std::process::id()).unwrap();
        assert!(u.rss_kib > 0);
    }
}
