//! Redeploy watching: polls the root's metadata (names, sizes, mtimes, inodes) and, once a
//! change has been stable for a moment (a deploy copies files one by one), rebuilds the
//! table and swaps it in. Polling works on every filesystem (bind mounts, NFS, overlay) and
//! costs one `stat` per file per interval.
//!
//! A poll logs nothing unless the tree changed: the walk only collects what it refuses, and
//! [`Site::reload`] logs a new table's findings when it swaps it in. A failure (the root
//! unreadable, a deploy without index.html) is logged once, until it changes or a rebuild
//! goes through; the build is retried on every poll meanwhile (it may be a transient error).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Site;

/// How long a change must stay unchanged before the rebuild.
const SETTLE: Duration = Duration::from_millis(200);

/// Runs until `stop` is cancelled.
pub(crate) async fn run(site: Arc<Site>, interval: Duration, stop: CancellationToken) {
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let table = site.table();
        let root = site.options().root.clone();
        match tokio::task::spawn_blocking(move || table.is_stale(&root)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                // Back to the tree in service: a later failure is news again.
                last_error = None;
                continue;
            }
            Ok(Err(e)) => {
                warn_once(&mut last_error, &e);
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "redeploy check task failed");
                continue;
            }
        }
        // Wait until the tree stops changing before building.
        tokio::time::sleep(SETTLE).await;
        let s = Arc::clone(&site);
        match tokio::task::spawn_blocking(move || s.reload()).await {
            Ok(Ok(Some(generation))) => {
                let t = site.table();
                tracing::info!(
                    generation,
                    files = t.files(),
                    bytes = t.bytes(),
                    "redeploy picked up: asset table swapped"
                );
                last_error = None;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => warn_once(&mut last_error, &e),
            Err(e) => tracing::error!(error = %e, "asset rebuild task failed"),
        }
    }
}

/// Logs a failed check or rebuild unless it is the failure logged last.
fn warn_once(last_error: &mut Option<String>, e: &super::BuildError) {
    let msg = e.to_string();
    if last_error.as_deref() != Some(&msg) {
        tracing::warn!(error = %msg, "redeploy not picked up; still serving the previous files");
    }
    *last_error = Some(msg);
}
