//! TLS: the rustls `ServerConfig` (TLS 1.2 + 1.3 only, ALPN h2 + http/1.1), the certificate
//! resolver (an `ArcSwap` so a reload swaps the pair without touching live connections; its
//! certificates come from a [`source`]),
//! a sharded session cache for session-ID resumption and the ticket key ring ([`ticket`]:
//! a shared key file or rotating in-memory keys) for stateless resumption. Certificates are
//! validated by [`inspect`] (the one reader of chain and key, which `rampart check` uses
//! too) before they are ever used. [`challenge_config`] is the configuration that presents
//! an ACME TLS-ALPN-01 answer instead.

pub mod devcert;
pub mod inspect;
pub mod kernel;
pub mod reload;
pub mod session_cache;
pub mod source;
pub mod ticket;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

pub use source::ProvidesCert;

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The inspector refused the pair: the file and the first error it found.
    #[error("{}: {finding}", .file.display())]
    Refused {
        /// The certificate or key file the finding is about.
        file: PathBuf,
        /// The first error-level finding.
        finding: Box<inspect::Finding>,
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
    /// A source has no certificate yet (ACME: not issued yet), with the reason.
    #[error("{0}")]
    NotYet(String),
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
    pub names: inspect::Names,
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

/// Serves the current certificate to every client, with or without SNI (clients that
/// connect by IP address send none). The certificate comes from a [`ProvidesCert`] source,
/// at start-up and on each [`CertResolver::reload`]; it is swapped only for one the
/// inspector accepted. A resolver made by [`CertResolver::pending`] may have none yet (an
/// ACME certificate not issued yet): handshakes then fail, and the reason is logged (at
/// most once a second).
#[derive(Debug)]
pub struct CertResolver {
    source: Box<dyn ProvidesCert>,
    current: ArcSwapOption<LoadedCert>,
    /// Seconds since the epoch of the last "no certificate" log line.
    missing_logged: AtomicU64,
}

impl CertResolver {
    /// A resolver serving what `source` yields now.
    ///
    /// # Errors
    /// The source's [`TlsError`] when it has no certificate to serve.
    pub fn new(source: Box<dyn ProvidesCert>) -> Result<Self, TlsError> {
        let cert = source.load()?;
        Ok(Self {
            source,
            current: ArcSwapOption::from_pointee(cert),
            missing_logged: AtomicU64::new(0),
        })
    }

    /// A resolver serving what `source` yields now, or nothing until a
    /// [`CertResolver::reload`] finds a certificate (the first start of ACME).
    #[must_use]
    pub fn pending(source: Box<dyn ProvidesCert>) -> Self {
        let cert = source.load().ok().map(Arc::new);
        Self {
            source,
            current: ArcSwapOption::new(cert),
            missing_logged: AtomicU64::new(0),
        }
    }

    /// Where the certificates come from.
    #[must_use]
    pub fn source(&self) -> &dyn ProvidesCert {
        self.source.as_ref()
    }

    /// The certificate now served; `None` before the first one (see
    /// [`CertResolver::pending`]).
    #[must_use]
    pub fn current(&self) -> Option<Arc<LoadedCert>> {
        self.current.load_full()
    }

    /// Loads from the source again (blocking) and swaps the result in. Live connections
    /// keep theirs.
    ///
    /// # Errors
    /// The source's [`TlsError`]; the current certificate then stays in service.
    pub fn reload(&self) -> Result<Arc<LoadedCert>, TlsError> {
        let cert = Arc::new(self.source.load()?);
        self.current.store(Some(Arc::clone(&cert)));
        Ok(cert)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(cert) = self.current.load().as_ref() {
            return Some(Arc::clone(&cert.key));
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.missing_logged.swap(now, Ordering::Relaxed) != now {
            tracing::warn!(
                sni = hello.server_name().unwrap_or("none"),
                "{}",
                self.source.missing()
            );
        }
        None
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

/// The HTTP/3 (QUIC) configuration beside `tcp` (made by [`server_config`]): TLS 1.3 only,
/// ALPN `h3`, the same certificate resolver (so a reload reaches QUIC too), the same
/// session storage and `ticketer` (the TCP one, or a wrapper of it), so that a ticket
/// issued over TCP resumes a QUIC handshake and the other way round. `early_data`: accept
/// TLS 1.3 early data (0-RTT; QUIC allows only all, `u32::MAX`, or nothing), which rustls
/// does only with stateful resumption: then QUIC's tickets are keys into `stateful` (a
/// wrapper of the TCP session cache) and the ticketer is not used.
///
/// # Errors
/// [`TlsError::Config`] if the provider refuses (it does not with aws-lc-rs).
pub fn quic_server_config(
    tcp: &ServerConfig,
    resolver: Arc<CertResolver>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    stateful: Arc<dyn rustls::server::StoresServerSessions>,
    early_data: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::clone(tcp.crypto_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h3".to_vec()];
    if early_data {
        // rustls accepts 0-RTT only with stateful resumption (RFC 8446 8.1: each ticket a
        // single-use key into the server's cache, so early data cannot be replayed) and
        // issues no early-data tickets while a ticketer is on: with --http3-0rtt, QUIC
        // tickets are keys into `stateful` and TCP tickets do not resume QUIC.
        config.session_storage = stateful;
        config.max_early_data_size = u32::MAX;
    } else {
        config.session_storage = Arc::clone(&tcp.session_storage);
        config.ticketer = ticketer;
    }
    config.send_tls13_tickets = tcp.send_tls13_tickets;
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

/// The configuration that answers a TLS-ALPN-01 validation (RFC 8737): ALPN `acme-tls/1`
/// only, TLS 1.3 and 1.2, no resumption, `key` (the challenge certificate) presented to
/// every client; `None` refuses every handshake for want of a certificate (an
/// access_denied alert). Built from `provider`: the server's own, so that a CA meets the
/// same TLS as every other client.
///
/// Not `with_single_cert`: it parses the certificate with webpki, which refuses the
/// critical acmeIdentifier extension.
///
/// # Errors
/// [`TlsError::Config`] if the provider refuses (it does not with aws-lc-rs).
pub fn challenge_config(
    provider: Arc<rustls::crypto::CryptoProvider>,
    key: Option<Arc<CertifiedKey>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Presents(key)));
    config.alpn_protocols = vec![crate::acme::challenge::ACME_TLS_ALPN.to_vec()];
    // One handshake per validation: nothing to resume.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Presents one certificate (or none) whatever the ClientHello.
#[derive(Debug)]
struct Presents(Option<Arc<CertifiedKey>>);

impl ResolvesServerCert for Presents {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.clone()
    }
}
