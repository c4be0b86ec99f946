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

use super::CertResolver;

/// Time for a deploy tool to finish writing both files after the first change is seen.
const SETTLE: Duration = Duration::from_millis(300);

fn stamp(path: &Path) -> Option<(u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}

/// Reloads the resolver from its source on the blocking pool; logs the outcome. Returns
/// whether a new certificate was swapped in.
pub async fn reload_now(resolver: &Arc<CertResolver>, why: &str) -> bool {
    let r = Arc::clone(resolver);
    match tokio::task::spawn_blocking(move || r.reload()).await {
        Ok(Ok(loaded)) => {
            let not_after = httpdate::fmt_http_date(loaded.not_after);
            let names = loaded.names.to_string();
            tracing::info!(trigger = why, cert = %resolver.source(), names = %names, not_after = %not_after, "certificate reloaded");
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

/// Watches for SIGHUP and changes of the source's files until `stop`. `interval` zero =
/// SIGHUP only. `on_hangup` runs on each SIGHUP too (the server re-scans the asset root).
pub(crate) async fn watch(
    resolver: Arc<CertResolver>,
    interval: Duration,
    stop: CancellationToken,
    on_hangup: impl Fn() + Send + 'static,
) {
    let files = resolver.source().files();
    on_change_or_hangup(files, interval, stop, "certificate", move |why| {
        if why == "SIGHUP" {
            on_hangup();
        }
        let resolver = Arc::clone(&resolver);
        async move {
            reload_now(&resolver, why).await;
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
