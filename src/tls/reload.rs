//! Certificate reload: what reloading the certificate does. The reload module
//! (server/reload.rs) calls [`reload_now`] on SIGHUP, or when one of the source's files
//! changes on disk (polled); nothing here listens for either. The source's certificate is
//! loaded and inspected (the same checks as at start-up) on the blocking pool and only then
//! swapped into the resolver. A bad pair keeps
//! the current certificate and logs an error that names the problem. Live connections keep
//! the certificate they were established with; the session cache and ticketer are part of
//! the unchanged `ServerConfig`, so clients keep resuming across a reload.

use std::sync::Arc;

use super::CertResolver;

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
