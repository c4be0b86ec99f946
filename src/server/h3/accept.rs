//! Accepting QUIC connections: who gets in, decided per Initial packet before any
//! handshake work. At the connection cap (the same semaphore as TCP) a client is refused
//! (CONNECTION_REFUSED: it falls back to TCP, where it queues in the backlog). Above
//! [`Settings::retry_above`] handshakes in progress, a client that has not proven its
//! address gets a stateless Retry first, so a flood of spoofed Initials costs one packet
//! each and no state. Once shutdown begins nothing new is accepted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::connection;
use super::endpoint::Settings;
use crate::server::shared::Shared;
use crate::telemetry::Metrics;

/// What to do with an incoming connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// Handshake now.
    Accept,
    /// Send a Retry: the client must echo its token from its address.
    Retry,
    /// Refuse (CONNECTION_REFUSED).
    Refuse,
}

/// The decision for one incoming connection: `has_slot` under the connection cap,
/// `validated` (it echoed a Retry token), `may_retry` (quinn can still send it one),
/// `handshaking` now.
pub(super) fn admit(
    has_slot: bool,
    validated: bool,
    may_retry: bool,
    handshaking: usize,
    retry_above: usize,
) -> Admit {
    if !has_slot {
        Admit::Refuse
    } else if !validated && may_retry && handshaking >= retry_above {
        Admit::Retry
    } else {
        Admit::Accept
    }
}

/// Accepts on one endpoint until shutdown begins, then stops accepting (the endpoint
/// refuses new connections; those open drain in their own tasks).
pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    semaphore: Arc<Semaphore>,
    settings: Arc<Settings>,
) {
    let handshaking = Arc::new(AtomicUsize::new(0));
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => return },
            () = shared.tokens.graceful.cancelled() => break,
        };
        let permit = Arc::clone(&semaphore).try_acquire_owned().ok();
        let decision = admit(
            permit.is_some(),
            incoming.remote_address_validated(),
            incoming.may_retry(),
            handshaking.load(Ordering::Relaxed),
            settings.retry_above,
        );
        let metrics = &shared.metrics;
        match (decision, permit) {
            (Admit::Accept, Some(permit)) => {
                Metrics::inc(&metrics.h3_accepted);
                spawn(incoming, &shared, &settings, permit, &handshaking);
            }
            (Admit::Retry, _) => {
                Metrics::inc(&metrics.h3_retries);
                // Only fails when may_retry was false, which admit checked.
                let _ = incoming.retry();
            }
            _ => {
                Metrics::inc(&metrics.h3_refused);
                tracing::debug!(peer = %incoming.remote_address(), "HTTP/3 connection refused: at --max-connections");
                incoming.refuse();
            }
        }
    }
    // New connections are refused from now on; open ones finish in their tasks.
    endpoint.set_server_config(None);
}

/// Starts a connection's task, counted as a TCP one is (open, total, panics).
fn spawn(
    incoming: quinn::Incoming,
    shared: &Arc<Shared>,
    settings: &Arc<Settings>,
    permit: OwnedSemaphorePermit,
    handshaking: &Arc<AtomicUsize>,
) {
    let peer = incoming.remote_address();
    let shared2 = Arc::clone(shared);
    let settings = Arc::clone(settings);
    let handshaking = Arc::clone(handshaking);
    Metrics::inc(&shared.metrics.connections_total);
    Metrics::inc(&shared.metrics.connections_open);
    shared.tracker.spawn(async move {
        let task = std::panic::AssertUnwindSafe(connection::handle(
            incoming,
            Arc::clone(&shared2),
            settings,
            handshaking,
        ));
        if let Err(panic) = futures_util::FutureExt::catch_unwind(task).await {
            let what = panic
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Metrics::inc(&shared2.metrics.connection_panics);
            tracing::error!(%peer, panic = %what, "HTTP/3 connection task panicked (a bug); connection closed, server continues");
        }
        shared2
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_refuses_and_a_flood_retries_only_unvalidated_clients() {
        assert_eq!(admit(false, true, true, 0, 8), Admit::Refuse);
        assert_eq!(admit(true, false, true, 7, 8), Admit::Accept);
        assert_eq!(admit(true, false, true, 8, 8), Admit::Retry);
        // A client that echoed a Retry token is not retried again.
        assert_eq!(admit(true, true, false, 100, 8), Admit::Accept);
        assert_eq!(admit(true, false, false, 100, 8), Admit::Accept);
        // retry_above 0: every unvalidated client is retried.
        assert_eq!(admit(true, false, true, 0, 0), Admit::Retry);
    }
}
