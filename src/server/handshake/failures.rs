//! How an opening that ended before its TLS session is counted and logged: the failure
//! classes of a handshake (with the alert that did or did not go out), a refused PROXY
//! header, garbage, a plaintext request, a connection closed at shutdown. Warnings are
//! rate-limited; each names the peer.

use std::net::SocketAddr;

use crate::server::shared::Shared;
use crate::server::{plaintext, sniff};
use crate::telemetry::{FailureClass, Metrics};

/// Why a connection was refused for its PROXY header.
pub(super) enum Refusal {
    /// A trusted proxy's connection without a valid header: the reason.
    Trusted(&'static str),
    /// A PROXY header from outside the trusted ranges (a spoofing attempt, or a proxy that
    /// is missing from --trusted-proxy).
    Untrusted,
}

/// Counts and logs (rate-limited) a connection closed for its PROXY header.
pub(super) fn proxy_refused(shared: &Shared, peer: SocketAddr, refusal: Refusal) {
    Metrics::inc(&shared.metrics.proxy_rejected);
    let Some(suppressed) = shared.warn_limit.allow() else {
        return;
    };
    match refusal {
        Refusal::Trusted(why) => {
            tracing::warn!(%peer, reason = why, suppressed, "no valid PROXY header from a trusted proxy; closed");
        }
        Refusal::Untrusted => {
            tracing::warn!(%peer, reason = "peer not in --trusted-proxy", suppressed, "PROXY header from an untrusted peer; closed");
        }
    }
}

pub(super) fn closed_at_shutdown(peer: SocketAddr) {
    tracing::debug!(%peer, "closed before the TLS handshake completed: shutting down");
}

/// Maps a handshake error to a class and a precise reason.
pub(super) fn classify_error(e: &std::io::Error) -> (FailureClass, String) {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::AlertReceived(a) => (
                FailureClass::AlertReceived,
                format!("alert_received({a:?})"),
            ),
            rustls::Error::InvalidMessage(m) => (
                FailureClass::AlertSent,
                format!("alert_sent(decode_error): {m:?}"),
            ),
            rustls::Error::PeerIncompatible(p) => (
                FailureClass::AlertSent,
                format!("alert_sent(handshake_failure): {p:?}"),
            ),
            rustls::Error::PeerMisbehaved(p) => (
                FailureClass::AlertSent,
                format!("alert_sent(illegal_parameter): {p:?}"),
            ),
            rustls::Error::NoApplicationProtocol => (
                FailureClass::AlertSent,
                "alert_sent(no_application_protocol)".into(),
            ),
            rustls::Error::DecryptError => {
                (FailureClass::AlertSent, "alert_sent(bad_record_mac)".into())
            }
            other => (
                FailureClass::ProtocolError,
                format!("protocol_error({other})"),
            ),
        };
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => (
            FailureClass::Eof,
            "eof: peer closed during the handshake".into(),
        ),
        std::io::ErrorKind::ConnectionReset => {
            (FailureClass::Eof, "eof: connection reset by peer".into())
        }
        std::io::ErrorKind::InvalidData => (FailureClass::AlertSent, format!("alert_sent: {e}")),
        _ => (FailureClass::ProtocolError, format!("protocol_error({e})")),
    }
}

pub(super) fn not_tls(shared: &Shared, peer: SocketAddr, first: &[u8]) {
    handshake_failed(
        shared,
        peer,
        None,
        None,
        FailureClass::NotTls,
        &format!(
            "first bytes {:02x?} are not a TLS handshake",
            &first[..first.len().min(sniff::MAX_SNIFF)]
        ),
    );
}

pub(super) fn handshake_failed(
    shared: &Shared,
    peer: SocketAddr,
    sni: Option<&str>,
    alpn: Option<&[String]>,
    class: FailureClass,
    why: &str,
) {
    shared.metrics.failure(class);
    let Some(suppressed) = shared.warn_limit.allow() else {
        return;
    };
    let current = shared.resolver.current();
    let names = current
        .as_ref()
        .map_or_else(|| "none yet".to_owned(), |c| c.names.to_string());
    let sni_covered = sni.is_some_and(|s| current.as_ref().is_some_and(|c| c.names.covers(s)));
    tracing::warn!(
        %peer,
        sni = sni.unwrap_or("none"),
        sni_covered,
        cert_names = %names,
        alpn = ?alpn.unwrap_or_default(),
        reason = class.label(),
        detail = why,
        suppressed,
        "tls handshake failed"
    );
}

pub(super) fn log_plaintext(
    shared: &Shared,
    peer: SocketAddr,
    outcome: &plaintext::Outcome,
    on_tls_port: bool,
) {
    match outcome {
        plaintext::Outcome::Incomplete => {
            if on_tls_port {
                shared.metrics.failure(FailureClass::PlaintextHttp);
            }
        }
        plaintext::Outcome::ChallengeAnswered(token) => {
            tracing::info!(%peer, token, "answered an http-01 challenge");
            return;
        }
        plaintext::Outcome::ChallengeUnknown => {
            tracing::debug!(%peer, "no http-01 answer for this token: 404");
            return;
        }
        _ => {
            Metrics::inc(&shared.metrics.plaintext_redirects);
            if on_tls_port {
                shared.metrics.failure(FailureClass::PlaintextHttp);
            }
        }
    }
    if on_tls_port {
        if let Some(suppressed) = shared.warn_limit.allow() {
            tracing::warn!(%peer, reason = "plaintext_http", outcome = ?outcome, suppressed, "plaintext HTTP on the HTTPS port");
        }
    } else {
        tracing::debug!(%peer, outcome = ?outcome, "cleartext request redirected");
    }
}
