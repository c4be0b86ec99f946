//! Key file reload: what re-reading the file does. The reload module (server/reload.rs)
//! calls [`reload_now`] when the file's size, mtime or inode changes (polled, like the
//! certificate files) and on SIGHUP; nothing here listens for either. A file that does not
//! parse is logged at warn with the file and line and the keys in use stay; a good file
//! swaps the ring (info: generation, key count, encrypting key id). Tickets in flight need
//! nothing: every key still in the file keeps decrypting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Logs the keys in use at start-up (source, generation, count, encrypting key id).
/// Returns the key file to watch, or `None` for in-memory keys (they rotate themselves on
/// the encrypt path).
pub fn announce(keys: &TicketKeys) -> Option<PathBuf> {
    let ids = keys.key_ids();
    let current = ids.first().map(ToString::to_string).unwrap_or_default();
    let Some(file) = keys.file().map(Path::to_owned) else {
        tracing::info!(source = "in-memory", rotation_s = super::ROTATION.as_secs(), generation = keys.generation(), keys = ids.len(), current = %current, "session ticket keys");
        return None;
    };
    tracing::info!(source = "file", file = %file.display(), generation = keys.generation(), keys = ids.len(), current = %current, "session ticket keys");
    Some(file)
}
