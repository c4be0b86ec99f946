//! Certificate reload: on SIGHUP, or when the certificate or key file changes on disk
//! (polled), the pair is loaded and validated (parses, key matches, inside its validity
//! window) on the blocking pool and only then swapped into the resolver. A bad pair keeps
//! the current certificate and logs an error that names the problem. Live connections keep
//! the certificate they were established with; the session cache and ticketer are part of
//! the unchanged `ServerConfig`, so clients keep resuming across a reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{load_cert, CertResolver};

/// Time for a deploy tool to finish writing both files after the first change is seen.
const SETTLE: Duration = Duration::from_millis(300);

fn stamp(path: &Path) -> Option<(u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}

/// Loads, validates and swaps in the pair; logs the outcome. Returns whether it was swapped.
pub async fn reload_now(resolver: &CertResolver, cert: &Path, key: &Path, why: &str) -> bool {
    let (c, k) = (cert.to_owned(), key.to_owned());
    match tokio::task::spawn_blocking(move || load_cert(&c, &k)).await {
        Ok(Ok(loaded)) => {
            let not_after = httpdate::fmt_http_date(loaded.not_after);
            let names = loaded.names.join(",");
            resolver.set(loaded);
            tracing::info!(trigger = why, cert = %cert.display(), names = %names, not_after = %not_after, "certificate reloaded");
            true
        }
        Ok(Err(e)) => {
            tracing::error!(trigger = why, error = %e, "certificate reload refused; still serving the previous certificate");
            false
        }
        Err(e) => {
            tracing::error!(trigger = why, error = %e, "certificate reload task failed");
            false
        }
    }
}

/// Watches for SIGHUP and file changes until `stop`. `interval` zero = SIGHUP only.
/// `on_hangup` runs on each SIGHUP too (the server re-scans the asset root).
pub(crate) async fn watch(
    resolver: Arc<CertResolver>,
    cert: PathBuf,
    key: PathBuf,
    interval: Duration,
    stop: CancellationToken,
    on_hangup: impl Fn() + Send + 'static,
) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; certificate reload only on file change");
            None
        }
    };
    let mut last = (stamp(&cert), stamp(&key));
    let poll = if interval.is_zero() {
        Duration::from_secs(3600 * 24 * 365)
    } else {
        interval
    };
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            _ = hangup => {
                on_hangup();
                reload_now(&resolver, &cert, &key, "SIGHUP").await;
                last = (stamp(&cert), stamp(&key));
            }
            () = tokio::time::sleep(poll), if !interval.is_zero() => {
                let now = (stamp(&cert), stamp(&key));
                if now != last {
                    tokio::time::sleep(SETTLE).await;
                    last = (stamp(&cert), stamp(&key));
                    reload_now(&resolver, &cert, &key, "file change").await;
                }
            }
        }
    }
}
