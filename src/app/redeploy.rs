//! Redeploys: what one look at the root does. A [`Redeploy::poll`] compares the root's
//! metadata (names, sizes, mtimes, inodes) with the table in service and, once a change has
//! been stable for a moment (a deploy copies files one by one), rebuilds the table and swaps
//! it in; [`Redeploy::rescan`] (SIGHUP) rebuilds at once. Polling works on every filesystem
//! (bind mounts, NFS, overlay) and costs one `stat` per file per interval. When to look
//! (the `--watch-interval` timer, SIGHUP) is the reload module's business (server/reload.rs).
//!
//! A poll logs nothing unless the tree changed: the walk only collects what it refuses, and
//! [`Site::reload`] logs a new table's findings when it swaps it in. A failure (the root
//! unreadable, a deploy without index.html) is logged once, until it changes or a rebuild
//! goes through; the build is retried on every poll meanwhile (it may be a transient error).
//! A deploy whose index.html references bundles not yet copied is held back the same way,
//! logged at info, until they arrive or the bounded wait of app/deploy_check.rs ends.

use std::sync::Arc;
use std::time::Duration;

use super::Site;

/// How long a change must stay unchanged before the rebuild.
const SETTLE: Duration = Duration::from_millis(200);

/// The redeploy poller's state: the site and the failure it logged last.
#[derive(Debug)]
pub(crate) struct Redeploy {
    site: Arc<Site>,
    last_error: Option<String>,
}

impl Redeploy {
    pub(crate) fn new(site: Arc<Site>) -> Self {
        Self {
            site,
            last_error: None,
        }
    }

    /// One poll: rebuilds and swaps the table when the tree changed.
    pub(crate) async fn poll(&mut self) {
        let table = self.site.table();
        let root = self.site.options().root.clone();
        match tokio::task::spawn_blocking(move || table.is_stale(&root)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                // Back to the tree in service: a later failure is news again.
                self.last_error = None;
                return;
            }
            Ok(Err(e)) => {
                self.warn_once(&e);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "redeploy check task failed");
                return;
            }
        }
        // Wait until the tree stops changing before building.
        tokio::time::sleep(SETTLE).await;
        let s = Arc::clone(&self.site);
        match tokio::task::spawn_blocking(move || s.reload()).await {
            Ok(Ok(Some(generation))) => {
                let t = self.site.table();
                tracing::info!(
                    generation,
                    files = t.files(),
                    bytes = t.bytes(),
                    "redeploy picked up: asset table swapped"
                );
                t.retired().log_kept();
                self.last_error = None;
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => self.warn_once(&e),
            Err(e) => tracing::error!(error = %e, "asset rebuild task failed"),
        }
    }

    /// SIGHUP: rebuilds now if the tree changed, on the blocking pool; logs the outcome.
    pub(crate) async fn rescan(&self) {
        let site = Arc::clone(&self.site);
        match tokio::task::spawn_blocking(move || site.reload()).await {
            Ok(Ok(Some(generation))) => {
                tracing::info!(generation, "SIGHUP: asset table rebuilt");
                self.site.table().retired().log_kept();
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "SIGHUP: asset rebuild failed; still serving the previous files");
            }
            Err(e) => tracing::error!(error = %e, "asset rebuild task failed"),
        }
    }

    /// Logs a failed check or rebuild unless it is the failure logged last.
    fn warn_once(&mut self, e: &super::BuildError) {
        let msg = e.to_string();
        if self.last_error.as_deref() != Some(&msg) {
            if let super::BuildError::Incomplete { missing } = e {
                // Usually a deploy still copying; the wait is bounded (app/deploy_check.rs).
                tracing::info!(missing = %missing.join(", "), "redeploy waiting: index.html references files not in the root yet; still serving the previous files");
            } else {
                tracing::warn!(error = %msg, "redeploy not picked up; still serving the previous files");
            }
        }
        self.last_error = Some(msg);
    }
}
