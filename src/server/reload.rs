//! Reload: the one owner of SIGHUP and of the pollers that notice changed files. It holds
//! the process's only SIGHUP stream and fans each signal out to three targets, each in its
//! own task so that one slow reload never delays another:
//!
//! - the certificate: its source's files (tls/source.rs) polled every second, then
//!   [`crate::tls::reload::reload_now`];
//! - the session-ticket key file (only with `--ticket-key-file`): polled every second,
//!   then [`crate::tls::ticket::reload::reload_now`];
//! - the site: the root polled every `--watch-interval` (`0` = SIGHUP only) by
//!   [`Redeploy::poll`], and [`Redeploy::rescan`] on SIGHUP.
//!
//! A polled file counts as changed when its size, mtime or inode does; the reload waits
//! [`SETTLE`] for the writer to finish first. This module decides *when*; what a reload
//! does, checks and logs belongs to each target's own module, and nothing else in the
//! crate listens for SIGHUP.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::app::redeploy::Redeploy;
use crate::app::Site;
use crate::tls::{self, ticket::TicketKeys, CertResolver};

/// How often the certificate and ticket key files are looked at.
const FILE_POLL: Duration = Duration::from_secs(1);

/// Time for a deploy tool to finish writing every file after the first change is seen.
const SETTLE: Duration = Duration::from_millis(300);

/// What can be reloaded.
pub(crate) struct Targets {
    pub(crate) resolver: Arc<CertResolver>,
    pub(crate) ticket_keys: Arc<TicketKeys>,
    pub(crate) site: Arc<Site>,
    /// `--watch-interval`: how often the root is polled; zero = SIGHUP only.
    pub(crate) site_interval: Duration,
}

/// Starts listening for SIGHUP (before returning, so a signal sent once the server is up
/// is never missed) and spawns the reload tasks; they run until `stop`.
pub(crate) fn spawn(targets: Targets, stop: CancellationToken) {
    let (hangups, _) = watch::channel(0_u64);
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            let (hangups, stop) = (hangups.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        got = hup.recv() => match got {
                            Some(()) => hangups.send_modify(|n| *n += 1),
                            None => return,
                        },
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reloads only on file change");
        }
    }

    let Targets {
        resolver,
        ticket_keys,
        site,
        site_interval,
    } = targets;
    let files = resolver.source().files();
    tokio::spawn(poll_files(
        files,
        FILE_POLL,
        stop.clone(),
        hangups.subscribe(),
        move |why| {
            let resolver = Arc::clone(&resolver);
            async move {
                tls::reload::reload_now(&resolver, why).await;
            }
        },
    ));
    if let Some(file) = tls::ticket::reload::announce(&ticket_keys) {
        tokio::spawn(poll_files(
            vec![file],
            FILE_POLL,
            stop.clone(),
            hangups.subscribe(),
            move |why| {
                let keys = Arc::clone(&ticket_keys);
                async move {
                    tls::ticket::reload::reload_now(&keys, why).await;
                }
            },
        ));
    }
    tokio::spawn(poll_site(
        Redeploy::new(site),
        site_interval,
        stop,
        hangups.subscribe(),
    ));
}

/// Resolves on the next SIGHUP; never, once no SIGHUP can come.
async fn hangup(hangups: &mut watch::Receiver<u64>) {
    if hangups.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Calls `on_event("SIGHUP")` on every SIGHUP and `on_event("file change")` when the size,
/// mtime or inode of one of `files` changes (polled every `interval`, then [`SETTLE`]
/// allowed for the writer to finish; zero = SIGHUP only), until `stop`.
async fn poll_files<F, Fut>(
    files: Vec<PathBuf>,
    interval: Duration,
    stop: CancellationToken,
    mut hangups: watch::Receiver<u64>,
    mut on_event: F,
) where
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    let stamps = || files.iter().map(|f| stamp(f)).collect::<Vec<_>>();
    let mut last = stamps();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = hangup(&mut hangups) => {
                on_event("SIGHUP").await;
                last = stamps();
            }
            () = tokio::time::sleep(interval), if !interval.is_zero() => {
                if stamps() != last {
                    tokio::time::sleep(SETTLE).await;
                    last = stamps();
                    on_event("file change").await;
                }
            }
        }
    }
}

/// Polls the root every `interval` (zero = SIGHUP only) and rescans it on SIGHUP, until
/// `stop`.
async fn poll_site(
    mut redeploy: Redeploy,
    interval: Duration,
    stop: CancellationToken,
    mut hangups: watch::Receiver<u64>,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = hangup(&mut hangups) => redeploy.rescan().await,
            () = tokio::time::sleep(interval), if !interval.is_zero() => redeploy.poll().await,
        }
    }
}

/// What tells a file changed: size, mtime (with nanoseconds) and inode.
fn stamp(path: &Path) -> Option<(u64, i64, i64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}
