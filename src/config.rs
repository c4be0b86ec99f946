//! [`Config`]: the validated form of the command line. Built once by [`Config::from_cli`]
//! (or by an embedder field by field); everything downstream trusts it and never re-checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cidr, LogFormat, PlaintextMode, ServeArgs};
use crate::error::{Error, Result};

/// Where the server's certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// PEM files given by the operator.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A development CA and leaf for localhost, 127.0.0.1 and ::1, kept in this directory
    /// and created when missing.
    Dev {
        /// Directory holding `ca.pem`, `cert.pem`, `key.pem`.
        dir: PathBuf,
    },
}

/// Validated server configuration. [`Config::new`] gives the defaults of `rampart serve`.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)]
pub struct Config {
    /// Directory of the built app.
    pub root: PathBuf,
    /// HTTPS listen addresses (at least one).
    pub listen: Vec<SocketAddr>,
    /// Certificate source.
    pub cert: CertSource,
    /// Optional cleartext listener that redirects to https.
    pub http_listen: Option<SocketAddr>,
    /// Host names / IPs the certificate must cover (checked at start and by `check`).
    pub server_names: Vec<String>,
    /// SO_REUSEPORT on the listeners (zero-downtime restarts).
    pub reuse_port: bool,
    /// Cleartext listener for /metrics, /healthz, /readyz.
    pub metrics_listen: Option<SocketAddr>,
    /// PROXY protocol from trusted proxies.
    pub proxy_protocol: bool,
    /// Peers allowed to send a PROXY protocol header.
    pub trusted_proxies: Vec<Cidr>,
    /// Shared session-ticket key file (None: in-memory rotating keys).
    pub ticket_key_file: Option<PathBuf>,
    /// Log line format.
    pub log_format: LogFormat,
    /// One log line per request.
    pub access_log: bool,
    /// After a shutdown signal, keep accepting this long with /readyz at 503.
    pub drain_delay: Duration,
    /// Tokio worker threads (only used by [`crate::run`], which builds the runtime).
    pub workers: usize,
    /// TLS session cache entries.
    pub session_cache: usize,
    /// SPA fallback on (unknown extensionless paths get index.html).
    pub spa: bool,
    /// HSTS max-age in seconds (0 = no header).
    pub hsts_max_age: u64,
    /// Plaintext-on-TLS-port behaviour.
    pub plaintext: PlaintextMode,
    /// Log filter.
    pub log_level: String,
    /// Sniffing + TLS handshake deadline.
    pub handshake_timeout: Duration,
    /// Request head deadline, counted from its first byte.
    pub header_timeout: Duration,
    /// Idle keep-alive (and stalled transfer) deadline.
    pub idle_timeout: Duration,
    /// Drain deadline on shutdown.
    pub shutdown_timeout: Duration,
    /// Connection cap.
    pub max_connections: usize,
    /// Request head size limit in bytes.
    pub max_header_size: usize,
    /// Request header count limit.
    pub max_headers: usize,
    /// Request-target length limit in bytes.
    pub max_uri_length: usize,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_streams: u32,
    /// Files above this many bytes are streamed from disk.
    pub stream_threshold: u64,
    /// Redeploy check interval (zero = off).
    pub watch_interval: Duration,
}

impl Config {
    /// The defaults of `rampart serve` for a given root, listening on 127.0.0.1:8443 with a
    /// development certificate under `certs/dev`.
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
            cert: CertSource::Dev {
                dir: PathBuf::from("certs/dev"),
            },
            http_listen: None,
            server_names: Vec::new(),
            reuse_port: false,
            metrics_listen: None,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
            ticket_key_file: None,
            log_format: LogFormat::Pretty,
            access_log: false,
            drain_delay: Duration::ZERO,
            workers: default_workers(),
            session_cache: 65536,
            spa: true,
            hsts_max_age: 31_536_000,
            plaintext: PlaintextMode::Redirect,
            log_level: "info".into(),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_header_size: 32 * 1024,
            max_headers: 100,
            max_uri_length: 8 * 1024,
            h2_max_streams: 128,
            stream_threshold: 8 * 1024 * 1024,
            watch_interval: Duration::from_secs(1),
        }
    }

    /// Validates the parsed flags.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the flag and value, or [`Error::Root`].
    pub fn from_cli(args: &ServeArgs) -> Result<Self> {
        let cert = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => CertSource::Files {
                cert: cert.into(),
                key: key.into(),
            },
            _ => CertSource::Dev {
                dir: PathBuf::from(&args.dev_cert_dir),
            },
        };
        let config = Self {
            root: PathBuf::from(&args.root),
            listen: args.listen.clone(),
            cert,
            http_listen: args.http_listen,
            server_names: args.server_name.clone(),
            reuse_port: args.reuse_port,
            metrics_listen: args.metrics_listen,
            proxy_protocol: args.proxy_protocol,
            trusted_proxies: args.trusted_proxy.clone(),
            ticket_key_file: args.ticket_key_file.as_ref().map(PathBuf::from),
            log_format: args.log_format,
            access_log: args.access_log,
            drain_delay: args.drain_delay,
            workers: args.workers.unwrap_or_else(default_workers),
            session_cache: args.session_cache,
            spa: !args.no_spa,
            hsts_max_age: args.hsts_max_age,
            plaintext: args.plaintext,
            log_level: args.log_level.clone(),
            handshake_timeout: args.handshake_timeout,
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            shutdown_timeout: args.shutdown_timeout,
            max_connections: args.max_connections,
            max_header_size: args.max_header_size,
            max_headers: args.max_headers,
            max_uri_length: args.max_uri_length,
            h2_max_streams: args.h2_max_streams,
            stream_threshold: args.stream_threshold,
            watch_interval: args.watch_interval,
        };
        config.validate()?;
        Ok(config)
    }

    /// How the site is served under this configuration (what [`crate::Server::bind`] loads).
    #[must_use]
    pub fn site_options(&self) -> crate::app::SiteOptions {
        crate::app::SiteOptions {
            root: self.root.clone(),
            spa: self.spa,
            max_uri_length: self.max_uri_length,
            build: crate::app::BuildOptions {
                stream_threshold: self.stream_threshold,
                security: crate::app::SecurityHeaders::new(self.hsts_max_age),
            },
        }
    }

    /// Checks ranges and cross-field rules; called by [`Config::from_cli`] and by the server
    /// before it binds anything, so embedders get the same errors.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the first bad setting, or [`Error::Root`].
    pub fn validate(&self) -> Result<()> {
        fn bad(setting: &'static str, value: impl ToString, reason: &str) -> Error {
            Error::InvalidSetting {
                setting,
                value: value.to_string(),
                reason: reason.into(),
            }
        }
        if self.listen.is_empty() {
            return Err(bad("--listen", "", "at least one address is needed"));
        }
        for (i, a) in self.listen.iter().enumerate() {
            if a.port() != 0 && (self.listen[..i].contains(a) || self.http_listen == Some(*a)) {
                return Err(bad("--listen", a, "the same address is given twice"));
            }
        }
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err(bad(
                "--proxy-protocol",
                "true",
                "needs at least one --trusted-proxy range (the load balancers' addresses)",
            ));
        }
        if !self.proxy_protocol && !self.trusted_proxies.is_empty() {
            return Err(bad(
                "--trusted-proxy",
                self.trusted_proxies[0],
                "has no effect without --proxy-protocol",
            ));
        }
        if !(1..=1024).contains(&self.workers) {
            return Err(bad("--workers", self.workers, "must be between 1 and 1024"));
        }
        if !(1..=16 * 1024 * 1024).contains(&self.session_cache) {
            return Err(bad(
                "--session-cache",
                self.session_cache,
                "must be between 1 and 16777216",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(bad(
                "--max-connections",
                self.max_connections,
                "must be between 1 and 1000000",
            ));
        }
        if !(8192..=1024 * 1024).contains(&self.max_header_size) {
            return Err(bad(
                "--max-header-size",
                self.max_header_size,
                "must be between 8192 and 1048576",
            ));
        }
        if !(1..=1000).contains(&self.max_headers) {
            return Err(bad(
                "--max-headers",
                self.max_headers,
                "must be between 1 and 1000",
            ));
        }
        if !(256..=self.max_header_size).contains(&self.max_uri_length) {
            return Err(bad(
                "--max-uri-length",
                self.max_uri_length,
                "must be between 256 and --max-header-size",
            ));
        }
        if !(1..=10_000).contains(&self.h2_max_streams) {
            return Err(bad(
                "--h2-max-streams",
                self.h2_max_streams,
                "must be between 1 and 10000",
            ));
        }
        for (flag, d) in [
            ("--handshake-timeout", self.handshake_timeout),
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                return Err(bad(flag, "0", "must be greater than zero"));
            }
        }
        if !self.root.is_dir() {
            let reason = if self.root.exists() {
                "is not a directory"
            } else {
                "no such directory"
            };
            return Err(Error::Root {
                path: self.root.clone(),
                reason: reason.into(),
            });
        }
        if !self.root.join("index.html").is_file() {
            return Err(Error::Root {
                path: self.root.clone(),
                reason: "has no index.html (a single-page app needs one)".into(),
            });
        }
        Ok(())
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
