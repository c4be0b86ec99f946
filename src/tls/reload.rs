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
            let names = loaded.names.to_string();
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
    let files = vec![cert.clone(), key.clone()];
    on_change_or_hangup(files, interval, stop, "certificate", move |why| {
        if why == "SIGHUP" {
            on_hangup();
        }
        let (resolver, cert, key) = (Arc::clone(&resolver), cert.clone(), key.clone());
        async move {
            reload_now(&resolver, &cert, &key, why).await;
        }
    })
    .await;
}

/// Calls `on_event("SIGHUP")` on every SIGHUP and `on_event("file change")` when the size,
/// mtime or inode of one of `files` changes (polled every `interval`, then [`SETTLE`]
/// allowed for the writer to finish; zero = SIGHUP only), until `stop`. Shared by the
/// certificate and the ticket key file watchers.
pub(crate) async fn on_change_or_hangup<F, Fut>(
    files: Vec<PathBuf>,
    interval: Duration,
    stop: CancellationToken,
    what: &str,
    mut on_event: F,
) where
    F: FnMut(&'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; {what} reload only on file change");
            None
        }
    };
    let stamps = || files.iter().map(|f| stamp(f)).collect::<Vec<_>>();
    let mut last = stamps();
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
                on_event("SIGHUP").await;
                last = stamps();
            }
            () = tokio::time::sleep(poll), if !interval.is_zero() => {
                if stamps() != last {
                    tokio::time::sleep(SETTLE).await;
                    last = stamps();
                    on_event("file change").await;
                }
            }
        }
    }
}
