//! Automatic certificates over ACME (RFC 8555): rampart obtains the certificate of the
//! `--acme` names from a CA, keeps it in the state directory, serves it, and renews it.
//!
//! ```text
//! Server::bind ── AcmeSource (acme/source.rs) ─> CertResolver::pending (tls/): serves the
//! │               stored certificate, or none yet (handshakes fail, /readyz 503, logged)
//! └ Server::run ── renewal task (acme/renewal.rs), one per process:
//!      when due (acme/schedule.rs: 2/3 of the lifetime with jitter, or the CA's ARI window)
//!      └ the state directory's lock (acme/state.rs: one instance of a fleet orders at a time)
//!        └ account (acme/account.rs) ─> order (acme/order.rs) ─> challenge answers
//!          (acme/challenge.rs, answered by server/handshake.rs for tls-alpn-01 and by
//!          server/plaintext.rs for http-01) ─> the chain and key stored ─> resolver reload
//!      failure: logged, counted, retried with backoff (the old certificate keeps serving)
//! ```
//! The other instances of a fleet pick a new certificate up through the certificate file
//! poller of server/reload.rs, as for `--cert`/`--key` files.

pub mod account;
pub mod challenge;
pub mod order;
pub mod renewal;
pub mod schedule;
pub mod source;
pub mod state;

use std::path::PathBuf;
use std::time::Duration;

pub use source::{AcmeSource, Progress};

/// Why an ACME step failed; each names what the operator can look at.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA answered with a problem or could not be reached.
    #[error("{0}")]
    Ca(#[from] instant_acme::Error),
    /// A name could not be authorized.
    #[error("{name}: {reason}")]
    Authorization {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The CA marked the order invalid: what each failed validation said.
    #[error("validation failed: {0}")]
    Invalid(String),
    /// The challenge answer could not be published.
    #[error("{0}")]
    Challenge(#[from] challenge::ChallengeError),
    /// `--acme-ca-root` is unusable.
    #[error("--acme-ca-root {}: {reason}", .path.display())]
    CaRoot {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The state directory could not be read or written.
    #[error("--acme-state {}: {source}", .path.display())]
    State {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Anything else (a task that failed to run).
    #[error("{0}")]
    Other(String),
}

impl AcmeError {
    /// Whether the CA says the account does not exist (any more).
    #[must_use]
    pub fn account_gone(&self) -> bool {
        matches!(self, Self::Ca(instant_acme::Error::Api(p))
            if p.r#type.as_deref().is_some_and(|t| t.ends_with(":accountDoesNotExist")))
    }

    /// The least the next attempt must wait, when the CA said so: a rate limit (RFC 8555
    /// `rateLimited`) waits an hour at least, a poll timeout until the CA's suggestion.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Ca(instant_acme::Error::Api(problem))
                if problem
                    .r#type
                    .as_deref()
                    .is_some_and(|t| t.ends_with(":rateLimited")) =>
            {
                Some(Duration::from_secs(3600))
            }
            Self::Ca(instant_acme::Error::Timeout(Some(at))) => {
                Some(at.saturating_duration_since(std::time::Instant::now()))
            }
            _ => None,
        }
    }
}
