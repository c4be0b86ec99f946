//! Key file reload: the file is re-read when its size, mtime or inode changes (polled, like
//! the certificate files in [`crate::tls::reload`]) and on SIGHUP. A file that does not parse
//! is logged at warn with the file and line and the keys in use stay; a good file swaps the
//! ring (info: generation, key count, encrypting key id). Tickets in flight need nothing:
//! every key still in the file keeps decrypting.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::TicketKeys;

/// Re-reads the key file on the blocking pool and logs the outcome. Returns whether the ring
/// changed.
pub async fn reload_now(keys: &Arc<TicketKeys>, why: &str) -> bool {
    let Some(file) = keys.file().map(Path::to_owned) else {
        return false;
    };
    let k = Arc::clone(keys);
    match tokio::task::spawn_blocking(move || k.reload()).await {
        Ok(Ok(changed)) => {
            let ids = keys.key_ids();
            let current = ids.first().map(ToString::to_string).unwrap_or_default();
            if changed {
                tracing::info!(trigger = why, file = %file.display(), generation = keys.generation(), keys = ids.len(), current = %current, "ticket keys reloaded");
            } else {
                tracing::info!(trigger = why, file = %file.display(), generation = keys.generation(), keys = ids.len(), current = %current, "ticket key file re-read; keys unchanged");
            }
            changed
        }
        Ok(Err(e)) => {
            tracing::warn!(trigger = why, error = %e, generation = keys.generation(), "ticket key reload refused; the keys in use stay");
            false
        }
        Err(e) => {
            tracing::error!(trigger = why, error = %e, "ticket key reload task failed");
            false
        }
    }
}

/// Watches the key file for changes (every `interval`; zero = SIGHUP only) and SIGHUP until
/// `stop`. Logs the keys in use first; returns at once for in-memory keys (they rotate
/// themselves on the encrypt path).
pub async fn watch(keys: Arc<TicketKeys>, interval: Duration, stop: CancellationToken) {
    let ids = keys.key_ids();
    let current = ids.first().map(ToString::to_string).unwrap_or_default();
    let Some(file) = keys.file().map(Path::to_owned) else {
        tracing::info!(source = "in-memory", rotation_s = super::ROTATION.as_secs(), generation = keys.generation(), keys = ids.len(), current = %current, "session ticket keys");
        return;
    };
    tracing::info!(source = "file", file = %file.display(), generation = keys.generation(), keys = ids.len(), current = %current, "session ticket keys");
    crate::tls::reload::on_change_or_hangup(vec![file], interval, stop, "ticket key", |why| {
        let keys = Arc::clone(&keys);
        async move {
            reload_now(&keys, why).await;
        }
    })
    .await;
}
