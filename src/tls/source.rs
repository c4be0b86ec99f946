//! Certificate sources: where the resolver's certificate comes from. A source yields a
//! validated [`LoadedCert`] (a rustls `CertifiedKey` plus the names and expiry the
//! [inspector](super::inspect) found) or the reason it has none; the
//! [`CertResolver`](super::CertResolver) takes its certificate from any [`ProvidesCert`],
//! at start-up and on every reload, and never swaps in a pair the inspector refused.
//!
//! Implementors today: [`Files`] (the operator's `--cert`/`--key`) and the development CA
//! ([`super::devcert::DevCert`], created once at start-up, then read like files). Both are
//! re-read when the reload module (server/reload.rs) sees one of their [`ProvidesCert::files`]
//! change, or on SIGHUP.
//!
//! The third implementor is ACME (`crate::acme::AcmeSource`): its `load` returns the last
//! issued certificate from the state directory (after the same inspection), its renewal
//! task asks the resolver to reload when a new one is issued, and a resolver may start
//! without one ([`super::CertResolver::pending`]) until the first is issued.
//!
//! A source must not log or swap anything itself: loading is a pure read, run on the
//! blocking pool by whoever reloads.

use std::fmt;
use std::path::PathBuf;
use std::time::SystemTime;

use super::inspect::inspect;
use super::{LoadedCert, TlsError};

/// Something that yields the certificate to serve.
pub trait ProvidesCert: fmt::Display + fmt::Debug + Send + Sync {
    /// Reads and validates the certificate now (blocking: it may read files).
    ///
    /// # Errors
    /// [`TlsError`] naming the first reason the certificate cannot be served.
    fn load(&self) -> Result<LoadedCert, TlsError>;

    /// Files whose change means a new certificate may be waiting (polled by the reload
    /// module). None for a source that is told to reload some other way.
    fn files(&self) -> Vec<PathBuf>;

    /// Why there is no certificate to serve yet, for the log line of a handshake that
    /// fails for it (only a source a resolver may start without, see
    /// [`super::CertResolver::pending`], is ever asked).
    fn missing(&self) -> String {
        format!("no certificate loaded from {self}")
    }
}

/// A PEM chain (leaf first) and key (PKCS#8, RSA or SEC1) on disk.
#[derive(Debug, Clone)]
pub struct Files {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl fmt::Display for Files {
    /// The certificate file (what logs name as `cert`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cert.display())
    }
}

impl ProvidesCert for Files {
    fn load(&self) -> Result<LoadedCert, TlsError> {
        inspect(&self.cert, &self.key, SystemTime::now()).into_loaded()
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.cert.clone(), self.key.clone()]
    }
}
