//! [`AcmeSource`]: the certificate source (tls/source.rs) of `--acme`: the last certificate
//! issued, read from the state directory and inspected like any pair of files, refused when
//! it does not cover every `--acme` name. Until one is there, handshakes fail and the line
//! they log says why ([`Progress`]: ordering, which attempt, the last error).

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::tls::source::{Files, ProvidesCert};
use crate::tls::{LoadedCert, TlsError};

/// How the ACME task is doing, shared with the source for its log lines.
#[derive(Debug, Default)]
pub struct Progress {
    attempt: AtomicU32,
    last_error: Mutex<Option<String>>,
}

impl Progress {
    /// An order is starting: its number since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The order failed with `why`.
    pub fn failed(&self, why: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(why);
        }
    }

    /// A certificate was issued (or found): attempts count from zero again.
    pub fn succeeded(&self) {
        self.attempt.store(0, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = None;
        }
    }

    fn describe(&self) -> (u32, Option<String>) {
        let last = self.last_error.lock().ok().and_then(|l| l.clone());
        (self.attempt.load(Ordering::Relaxed).max(1), last)
    }
}

/// The certificate of `--acme` names as stored in the state directory.
#[derive(Debug, Clone)]
pub struct AcmeSource {
    files: Files,
    domains: Vec<String>,
    progress: Arc<Progress>,
}

impl AcmeSource {
    /// The source for `domains`, whose pair is stored at `cert` and `key`.
    #[must_use]
    pub fn new(domains: Vec<String>, cert: PathBuf, key: PathBuf, progress: Arc<Progress>) -> Self {
        Self {
            files: Files { cert, key },
            domains,
            progress,
        }
    }

    /// The names the certificate must cover.
    #[must_use]
    pub fn domains(&self) -> &[String] {
        &self.domains
    }
}

impl fmt::Display for AcmeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ACME certificate for {}", self.domains.join(", "))
    }
}

impl ProvidesCert for AcmeSource {
    fn load(&self) -> Result<LoadedCert, TlsError> {
        if !self.files.cert.exists() {
            return Err(TlsError::NotYet(self.missing()));
        }
        let cert = self.files.load()?;
        if let Some(name) = self.domains.iter().find(|d| !cert.names.covers(d)) {
            return Err(TlsError::NotYet(format!(
                "the stored certificate {} does not cover {name} (it covers {}): a new one is ordered",
                self.files.cert.display(),
                cert.names
            )));
        }
        Ok(cert)
    }

    fn files(&self) -> Vec<PathBuf> {
        self.files.files()
    }

    fn missing(&self) -> String {
        let (attempt, last) = self.progress.describe();
        let first = self.domains.first().map_or("", String::as_str);
        match last {
            Some(why) => format!(
                "certificate for {first} not yet issued: ordering, attempt {attempt} (the last failed: {why})"
            ),
            None => format!("certificate for {first} not yet issued: ordering, attempt {attempt}"),
        }
    }
}
