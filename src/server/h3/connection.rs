//! One QUIC connection, from its Initial packet to CONNECTION_CLOSE: the handshake under
//! `--handshake-timeout` (with `--http3-0rtt`, a 0.5-RTT connection whose unsafe requests
//! wait for the handshake), then the HTTP/3 connection that accepts request streams and
//! hands each to its own task (request.rs), until one of [`End`] happens. Every way it
//! ends is counted and logged with the peer; nothing here panics on what a client sends.
//!
//! Shutdown and idleness end it gracefully: GOAWAY naming the next stream (requests
//! already accepted finish; later ones are rejected and the client retries them
//! elsewhere), then, with nothing in flight, CONNECTION_CLOSE with H3_NO_ERROR.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::endpoint::Settings;
use super::request::{self, HandshakeDone};
use crate::app::budget::{self, SendBudget};
use crate::protocol::Protocol;
use crate::server::io::ConnState;
use crate::server::service::{ConnInfo, ConnService};
use crate::server::shared::Shared;
use crate::telemetry::{FailureClass, Metrics};

/// HTTP/3's "no error" code: the graceful close (RFC 9114 section 8.1).
const H3_NO_ERROR: u32 = 0x100;
/// How often a draining connection looks whether its last request finished.
const DRAIN_POLL: Duration = Duration::from_millis(25);

/// Counts a connection as "handshaking" until dropped (accept.rs retries above a bound).
struct Handshaking(Arc<AtomicUsize>);

impl Handshaking {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a served connection ended.
#[derive(Debug)]
enum End {
    /// GOAWAY sent (shutdown or idleness) and nothing left in flight.
    Drained,
    /// The client sent GOAWAY and its last request finished.
    ClientDone,
    /// The shutdown deadline passed: closed with requests in flight.
    Forced,
    /// The connection failed or the client closed it.
    Failed(h3::error::ConnectionError),
}

/// Why GOAWAY was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goaway {
    Shutdown,
    Idle,
}

/// Serves one accepted QUIC connection to its end.
pub(super) async fn handle(
    incoming: quinn::Incoming,
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    handshaking: Arc<AtomicUsize>,
) {
    let peer = incoming.remote_address();
    let handshaking = Handshaking::new(handshaking);
    let Some((conn, done)) = handshake(incoming, peer, &shared, &settings, handshaking).await
    else {
        return;
    };
    serve(conn, done, peer, &shared, &settings).await;
}

/// The handshake: completed under the deadline, or (0-RTT) started with a task that
/// completes it and opens the gate. None when it failed (counted and logged).
async fn handshake(
    incoming: quinn::Incoming,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    settings: &Settings,
    handshaking: Handshaking,
) -> Option<(quinn::Connection, Option<HandshakeDone>)> {
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            handshake_failed(shared, peer, &e);
            return None;
        }
    };
    let connecting = if settings.early_data {
        match connecting.into_0rtt() {
            Ok((conn, accepted)) => {
                let (tx, rx) = watch::channel(false);
                let (shared, conn2, deadline) =
                    (Arc::clone(shared), conn.clone(), settings.handshake_timeout);
                tokio::spawn(async move {
                    let _handshaking = handshaking;
                    // The gate opens only on a completed handshake: a replayed flight
                    // never completes one, so what waits behind it is never served.
                    // The future's value says nothing on a server (quinn-proto sets
                    // `accepted_0rtt` only on clients, so it is always false here): it
                    // resolves when the handshake completes or the connection ends, and
                    // only in the second case is there a close reason.
                    match tokio::time::timeout(deadline, accepted).await {
                        Ok(_) => match conn2.close_reason() {
                            None => {
                                Metrics::inc(&shared.metrics.h3_handshakes);
                                let _ = tx.send(true);
                            }
                            Some(e) => handshake_failed(&shared, peer, &e),
                        },
                        Err(_) => {
                            shared.metrics.failure(FailureClass::Timeout);
                            tracing::debug!(%peer, "HTTP/3 handshake timed out (after 0-RTT)");
                            conn2.close(H3_NO_ERROR.into(), b"handshake timeout");
                        }
                    }
                });
                return Some((conn, Some(rx)));
            }
            Err(connecting) => connecting,
        }
    } else {
        connecting
    };
    let result = tokio::time::timeout(settings.handshake_timeout, connecting).await;
    drop(handshaking);
    match result {
        Ok(Ok(conn)) => {
            Metrics::inc(&shared.metrics.h3_handshakes);
            Some((conn, None))
        }
        Ok(Err(e)) => {
            handshake_failed(shared, peer, &e);
            None
        }
        Err(_) => {
            shared.metrics.failure(FailureClass::Timeout);
            tracing::debug!(%peer, "HTTP/3 handshake timed out");
            None
        }
    }
}

/// Counts a failed handshake by the same reasons as TCP's and logs it with the peer.
fn handshake_failed(shared: &Shared, peer: SocketAddr, e: &quinn::ConnectionError) {
    let class = failure_class(e);
    shared.metrics.failure(class);
    if matches!(class, FailureClass::AlertReceived | FailureClass::AlertSent) {
        if let Some(suppressed) = shared.warn_limit.allow() {
            tracing::warn!(%peer, error = %e, reason = class.label(), suppressed, "HTTP/3 handshake failed");
        }
    } else {
        tracing::debug!(%peer, error = %e, reason = class.label(), "HTTP/3 handshake failed");
    }
}

/// The failure class of a QUIC connection error: a CRYPTO_ERROR (0x100..=0x1ff, a TLS
/// alert) from the peer or from rampart, a timeout, the peer going away, or the rest.
fn failure_class(e: &quinn::ConnectionError) -> FailureClass {
    let is_alert = |code: quinn::TransportErrorCode| (0x100..=0x1ff).contains(&u64::from(code));
    match e {
        quinn::ConnectionError::TimedOut => FailureClass::Timeout,
        quinn::ConnectionError::ConnectionClosed(c) if is_alert(c.error_code) => {
            FailureClass::AlertReceived
        }
        quinn::ConnectionError::TransportError(t) if is_alert(t.code) => FailureClass::AlertSent,
        quinn::ConnectionError::ConnectionClosed(_)
        | quinn::ConnectionError::ApplicationClosed(_)
        | quinn::ConnectionError::Reset
        | quinn::ConnectionError::LocallyClosed => FailureClass::Eof,
        _ => FailureClass::ProtocolError,
    }
}

/// Serves HTTP/3 on an established (or 0.5-RTT) connection until it ends.
async fn serve(
    conn: quinn::Connection,
    done: Option<HandshakeDone>,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    settings: &Arc<Settings>,
) {
    let sni = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.server_name);
    tracing::debug!(%peer, sni = sni.as_deref().unwrap_or("none"), protocol = "h3", "quic established");
    let state = Arc::new(
        ConnState::new(None).with_send_budget(SendBudget::for_connection(
            &shared.send_pool,
            budget::CONNECTION_MAX,
        )),
    );
    let svc = ConnService {
        app: shared.app.clone(),
        state: Arc::clone(&state),
        shared: Arc::clone(shared),
        peer,
        protocol: Protocol::Http3,
        access: shared.access_log.then(|| {
            Arc::new(ConnInfo {
                peer,
                tls: "1.3",
                resumed: None,
                sni,
            })
        }),
        // The same advertisement as on TCP (RFC 7838 allows it on any version), so that a
        // 404 over HTTP/3 has the headers of a 404 over HTTP/2.
        alt_svc: shared.alt_svc.common(),
    };
    let built = h3::server::builder()
        .max_field_section_size(settings.max_field_section)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn.clone()))
        .await;
    let mut h3c = match built {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "HTTP/3 connection failed before its first request");
            return;
        }
    };
    let mut goaway: Option<Goaway> = None;
    let mut idle_check = state.idle_deadline(settings.idle_timeout);
    let end = loop {
        tokio::select! {
            biased;
            () = shared.tokens.force.cancelled() => break End::Forced,
            () = shared.tokens.graceful.cancelled(), if goaway.is_none() => {
                // GOAWAY names the next stream: those accepted finish, later ones retry.
                let _ = h3c.shutdown(1).await;
                goaway = Some(Goaway::Shutdown);
            }
            () = tokio::time::sleep_until(idle_check), if goaway.is_none() => {
                if state.look().busy {
                    // A request in flight (a long download): look again later; its end
                    // moves the deadline.
                    idle_check = Instant::now() + settings.idle_timeout;
                } else if Instant::now() >= state.idle_deadline(settings.idle_timeout) {
                    let _ = h3c.shutdown(1).await;
                    goaway = Some(Goaway::Idle);
                } else {
                    idle_check = state.idle_deadline(settings.idle_timeout);
                }
            }
            () = tokio::time::sleep(DRAIN_POLL), if goaway.is_some() => {
                if !state.look().busy {
                    break End::Drained;
                }
            }
            accepted = h3c.accept() => match accepted {
                Ok(Some(resolver)) => {
                    tokio::spawn(request::serve(
                        resolver,
                        svc.clone(),
                        done.clone(),
                        Arc::clone(settings),
                    ));
                }
                Ok(None) => break End::ClientDone,
                Err(e) => break End::Failed(e),
            },
        }
    };
    match &end {
        End::Drained | End::ClientDone => {
            if goaway == Some(Goaway::Idle) {
                Metrics::inc(&shared.metrics.connections_closed_idle);
            }
            settle(&conn, &shared.tokens.force).await;
            conn.close(H3_NO_ERROR.into(), b"");
        }
        End::Forced => {
            Metrics::inc(&shared.metrics.connections_closed_after_shutdown);
            conn.close(H3_NO_ERROR.into(), b"shutting down");
        }
        End::Failed(e) => {
            if e.is_h3_no_error() {
                tracing::debug!(%peer, protocol = "h3", "client closed the connection");
            } else if matches!(conn.close_reason(), Some(quinn::ConnectionError::TimedOut)) {
                Metrics::inc(&shared.metrics.connections_closed_idle);
                tracing::debug!(%peer, protocol = "h3", "connection idle timeout (QUIC)");
            } else {
                tracing::debug!(%peer, protocol = "h3", error = %e, "connection ended with an error");
            }
        }
    }
    tracing::trace!(%peer, ?end, "HTTP/3 connection ended");
}

/// Waits until the responses handed to QUIC are delivered: a finished response may still
/// sit in quinn's send buffer (up to the send window, 4 MiB), and CONNECTION_CLOSE
/// abandons what is unsent or unacknowledged. h3 does not expose its streams' `stopped()`,
/// so this waits until no STREAM frame has been sent for three RTTs and 100 ms (longer than
/// a probe timeout: a lost last packet would have been sent again), the client closes, or
/// the shutdown deadline passes.
async fn settle(conn: &quinn::Connection, force: &tokio_util::sync::CancellationToken) {
    let mut sent = conn.stats().frame_tx.stream;
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            () = force.cancelled() => return,
            _ = conn.closed() => return,
            () = tokio::time::sleep(DRAIN_POLL) => {}
        }
        let now = conn.stats().frame_tx.stream;
        if now != sent {
            sent = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= conn.rtt() * 3 + Duration::from_millis(100) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_errors_are_alerts_and_the_rest_have_their_class() {
        let alert = quinn::TransportErrorCode::crypto(40);
        let closed = |code| {
            quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
                error_code: code,
                frame_type: None,
                reason: Bytes::new(),
            })
        };
        assert_eq!(failure_class(&closed(alert)), FailureClass::AlertReceived);
        assert_eq!(
            failure_class(&closed(quinn::TransportErrorCode::NO_ERROR)),
            FailureClass::Eof
        );
        assert_eq!(
            failure_class(&quinn::ConnectionError::TimedOut),
            FailureClass::Timeout
        );
        assert_eq!(
            failure_class(&quinn::ConnectionError::VersionMismatch),
            FailureClass::ProtocolError
        );
    }
}
