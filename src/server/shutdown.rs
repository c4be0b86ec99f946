//! Signals and the one shutdown path. `graceful` tells every connection to finish (HTTP/1:
//! close after the current response; HTTP/2: GOAWAY, then finish open streams); `force`
//! ends what is still open after `--shutdown-timeout`. Every close goes through
//! `ConnIo` (server/io/conn_io.rs)'s close path, so each TLS connection ends with close_notify.

use tokio_util::sync::CancellationToken;

/// The two stages of shutdown, shared by the accept loops and every connection.
#[derive(Debug, Clone, Default)]
pub struct ShutdownTokens {
    /// Stop accepting; finish in-flight work; close idle connections now.
    pub graceful: CancellationToken,
    /// The drain deadline passed: close everything now.
    pub force: CancellationToken,
}

/// Resolves on the first SIGTERM or SIGINT. A second SIGINT exits the process at once
/// (status 130), for an operator who does not want to wait for the drain.
///
/// # Panics
/// Never in practice: only if the OS refuses to install signal handlers at start-up.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; shutdown only by kill -9");
        std::future::pending::<()>().await;
        return;
    };
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = which,
        "shutting down: no new connections, draining the open ones"
    );
    tokio::spawn(async move {
        if int.recv().await.is_some() {
            tracing::warn!("second SIGINT: exiting without waiting for the drain");
            std::process::exit(130);
        }
    });
}
