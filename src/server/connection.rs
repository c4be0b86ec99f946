//! One client connection, from the first byte to the close: what comes before the TLS
//! session (server/handshake.rs: PROXY header, sniff, plaintext answer, handshake), then
//! the protocol chosen from ALPN (server/h1.rs or server/h2.rs, each run by the deadline
//! driver in server/driver.rs) around the per-connection service (server/service.rs), then
//! how it ended, logged. Every failure is confined to this task, logged with the peer, and
//! ends in the close path of `ConnIo` (server/io/) (close_notify + lingering close).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::driver::Ended;
use super::frame_watch::FrameFault;
use super::handshake::{establish, Tls};
use super::io::{ConnIo, ConnState};
use super::service::{ConnInfo, ConnService};
use super::shared::{Kind, Shared};
use super::{h1, h2};
use crate::app::budget::{self, SendBudget};
use crate::protocol::Protocol;
use crate::telemetry::{Metrics, Rejection};

/// Serves one accepted connection to its end.
pub(crate) async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    kind: Kind,
) {
    // Everything before the TLS session (sniffing, plaintext answers, the handshake) is
    // boxed and freed once done, so that a connection's task is only as large as its
    // serving state (kept small for idle keep-alive connections, see PARK_AFTER).
    // `peer` is the client: the TCP peer, or the address a trusted proxy's header gave.
    let Some((tls, sni, peer)) = Box::pin(establish(tcp, peer, local, &shared, kind)).await else {
        return;
    };
    let alt_svc = shared.alt_svc.for_local(local);
    serve(tls, sni, peer, alt_svc, &shared).await;
}

/// Serves HTTP over an established session, then logs how it ended.
async fn serve(
    tls: Tls,
    sni: Option<String>,
    peer: SocketAddr,
    alt_svc: Option<http::HeaderValue>,
    shared: &Arc<Shared>,
) {
    let conn = tls.get_ref().1;
    match conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => Metrics::inc(&shared.metrics.handshakes_resumed),
        Some(rustls::HandshakeKind::FullWithHelloRetryRequest) => {
            Metrics::inc(&shared.metrics.handshakes_full_hrr)
        }
        _ => Metrics::inc(&shared.metrics.handshakes_full),
    }
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => Metrics::inc(&shared.metrics.handshakes_tls12),
        _ => Metrics::inc(&shared.metrics.handshakes_tls13),
    }
    let protocol = Protocol::from_alpn(conn.alpn_protocol());
    tracing::debug!(%peer, sni = sni.as_deref().unwrap_or("none"), version = ?conn.protocol_version(), kind = ?conn.handshake_kind(), %protocol, "tls established");

    let access = shared.access_log.then(|| {
        Arc::new(ConnInfo {
            peer,
            tls: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
                _ => "1.3",
            },
            resumed: Some(conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)),
            sni: sni.clone(),
        })
    });
    let state = Arc::new(
        ConnState::new((protocol == Protocol::Http1).then_some(shared.limits.header_timeout))
            .with_send_budget(SendBudget::for_connection(
                &shared.send_pool,
                budget::CONNECTION_MAX,
            )),
    );
    let io = ConnIo::new(tls, Arc::clone(&state), shared.tracker.token());
    let svc = ConnService {
        app: shared.app.clone(),
        state: Arc::clone(&state),
        shared: Arc::clone(shared),
        peer,
        protocol,
        access,
        alt_svc,
    };
    let mut result = match protocol {
        // TCP never negotiates h3 (from_alpn): Http3 is here only to make the match total.
        Protocol::Http1 | Protocol::Http3 => h1::serve(io, svc, &state, shared).await,
        Protocol::Http2 => h2::serve(io, svc, &state, shared).await,
    };
    if let Err(ended) = result.as_mut() {
        ended.fault = state.frame_fault().cloned();
    }
    match result {
        Ok(()) => {}
        Err(Ended {
            tls: Some(tls),
            why,
            ..
        }) => {
            // A TLS error inside an established session (an alert from the client, a record
            // that failed to decrypt): the failures this server exists to prevent.
            Metrics::inc(&shared.metrics.session_tls_errors);
            tracing::warn!(%peer, sni = sni.as_deref().unwrap_or("none"), %protocol, tls_error = %tls, reason = %why, "tls error in an established session");
        }
        Err(Ended {
            fault: Some(fault), ..
        }) => {
            match fault {
                FrameFault::TinyWindows { .. } => {
                    Metrics::inc(&shared.metrics.connections_closed_tiny_windows);
                }
                FrameFault::PseudoHeaderInTrailers { .. } => {
                    shared.metrics.rejected(Rejection::StreamError);
                }
            }
            if let Some(suppressed) = shared.warn_limit.allow() {
                tracing::warn!(%peer, reason = %fault, suppressed, "closed a misbehaving HTTP/2 connection");
            }
        }
        Err(Ended { why, .. }) => {
            tracing::debug!(%peer, %protocol, reason = %why, "connection ended with an error");
        }
    }
}
