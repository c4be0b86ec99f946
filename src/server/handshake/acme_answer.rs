//! The answer to a CA validating a TLS-ALPN-01 challenge (RFC 8737): a ClientHello that
//! offers `acme-tls/1` gets the challenge certificate for its SNI (acme/challenge.rs) and
//! then close_notify, never HTTP; a name without an answer is refused. One step of the
//! opening (server/handshake.rs), taken instead of the TLS handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::StartHandshake;

use super::failures::{classify_error, closed_at_shutdown, handshake_failed};
use super::{before_tls, Cut};
use crate::acme::challenge::{Challenges, ACME_TLS_ALPN};
use crate::server::io::{close_gracefully, Prefixed};
use crate::server::shared::Shared;
use crate::telemetry::FailureClass;
use crate::tls;

/// A ClientHello offering `acme-tls/1`: a CA validating a TLS-ALPN-01 challenge (RFC 8737)
/// for its SNI. It gets the challenge certificate and then close_notify, never HTTP; without
/// an answer for the name its handshake is refused (no certificate).
pub(super) struct AcmeValidation<'a> {
    pub(super) shared: &'a Shared,
    pub(super) challenges: &'a Arc<Challenges>,
    pub(super) peer: SocketAddr,
    pub(super) deadline: Instant,
    pub(super) sni: Option<String>,
}

impl AcmeValidation<'_> {
    /// Completes the handshake with the answer (or refuses it), then closes.
    pub(super) async fn answer(self, start: StartHandshake<Prefixed<TcpStream>>) {
        let Self {
            shared,
            challenges,
            peer,
            deadline,
            sni,
        } = self;
        // The answer may come from the shared directory (a file read, on another host's
        // volume perhaps): off the async workers.
        let answer = match sni.clone() {
            Some(name) => {
                let challenges = Arc::clone(challenges);
                let lookup = tokio::task::spawn_blocking(move || challenges.tls_alpn_answer(&name));
                match before_tls(shared, deadline, lookup).await {
                    Ok(found) => found.ok().flatten(),
                    Err(cut) => return validation_cut(shared, peer, sni.as_deref(), cut),
                }
            }
            None => None,
        };
        let domain = sni.as_deref().unwrap_or("none");
        let found = answer.is_some();
        let provider = Arc::clone(shared.tls.server_order.crypto_provider());
        let config = match tls::challenge_config(provider, answer) {
            Ok(config) => config,
            Err(e) => {
                tracing::error!(%peer, domain, error = %e, "tls-alpn-01 configuration refused (a bug)");
                return;
            }
        };
        match before_tls(shared, deadline, start.into_stream(config)).await {
            Ok(Ok(tls)) => {
                tracing::info!(%peer, domain, "answered a tls-alpn-01 challenge");
                Box::pin(close_gracefully(tls, false)).await;
            }
            // Refused as intended: no certificate, the access_denied alert has gone out.
            Ok(Err(_)) if !found => {
                shared.metrics.failure(FailureClass::AlertSent);
                tracing::debug!(%peer, domain, "no tls-alpn-01 answer for this name: handshake refused");
            }
            Ok(Err(e)) => {
                let (class, why) = classify_error(&e);
                let alpn = [String::from_utf8_lossy(ACME_TLS_ALPN).into_owned()];
                handshake_failed(shared, peer, sni.as_deref(), Some(&alpn), class, &why);
            }
            Err(cut) => validation_cut(shared, peer, sni.as_deref(), cut),
        }
    }
}

/// A TLS-ALPN-01 validation cut short by the deadline or shutdown.
fn validation_cut(shared: &Shared, peer: SocketAddr, sni: Option<&str>, cut: Cut) {
    match cut {
        Cut::Timeout => {
            let alpn = [String::from_utf8_lossy(ACME_TLS_ALPN).into_owned()];
            handshake_failed(
                shared,
                peer,
                sni,
                Some(&alpn),
                FailureClass::Timeout,
                "tls-alpn-01 handshake did not complete in time",
            );
        }
        Cut::Shutdown => closed_at_shutdown(peer),
    }
}
