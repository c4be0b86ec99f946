//! [`Config`]: the validated form of the command line and `--config` file. Built once by
//! [`Config::from_cli`] (or by an embedder field by field); everything downstream trusts it
//! and never re-checks. [`mod@file`] reads the TOML file into the flags' defaults;
//! [`sections`] checks its file-only sections into [`FileSections`] (carried in
//! [`Config::file_sections`]); [`types`] holds the domain types of the values ([`Cidr`],
//! [`LogFormat`], [`PlaintextMode`]) and their parsers, which `cli.rs` hands to clap.
//! What is wrong with a setting is a [`Problem`] (problem.rs): `rampart check` reports
//! every one, [`Config::validate`] returns the first as an error.

#[cfg(feature = "cli")]
pub mod file;
// Read only through the config file (feature `cli`); the types stay for embedders.
pub mod acme;
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub mod sections;
pub mod types;

pub use acme::AcmeSettings;
#[cfg(feature = "cli")]
pub use file::parse_args;
pub use sections::FileSections;
pub use types::{AcmeChallenge, Cidr, LogFormat, PlaintextMode};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "cli")]
use crate::cli::ServeArgs;
use crate::error::Result;
use crate::problem::Problem;

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
    /// Obtained and renewed from an ACME CA (src/acme/).
    Acme(AcmeSettings),
}

/// [`Config::http3_retry_above`]'s default.
pub const DEFAULT_HTTP3_RETRY_ABOVE: usize = 128;

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
    /// HTTP/3 over QUIC: on the UDP ports of `listen`, or on `http3_listen` when it has any.
    pub http3: bool,
    /// UDP addresses for HTTP/3 instead of the `listen` ports.
    pub http3_listen: Vec<SocketAddr>,
    /// TLS 1.3 early data (0-RTT) on HTTP/3, for GET and HEAD only.
    pub http3_0rtt: bool,
    /// QUIC handshakes in progress above which a new client must first prove its address
    /// with a stateless Retry (a handshake flood then costs one packet per spoofed
    /// Initial); 0 retries every client. No flag: the default suits every load measured.
    pub http3_retry_above: usize,
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
    /// How long a previous deploy's hashed assets stay servable (zero = off).
    pub keep_old_assets: Duration,
    /// The `--config` file's `[[headers]]` and `[[redirects]]`, read and checked (empty
    /// without a file). Nothing applies them to responses yet.
    pub file_sections: FileSections,
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
            http3: true,
            http3_listen: Vec::new(),
            http3_0rtt: false,
            http3_retry_above: DEFAULT_HTTP3_RETRY_ABOVE,
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
            keep_old_assets: Duration::from_secs(86_400),
            file_sections: FileSections::default(),
        }
    }

    /// Validates the parsed flags.
    ///
    /// # Errors
    /// [`Error::Setting`](crate::Error::Setting): the first of [`Config::problems`].
    #[cfg(feature = "cli")]
    pub fn from_cli(args: &ServeArgs) -> Result<Self> {
        let config = Self::from_cli_unvalidated(args)?;
        config.validate()?;
        Ok(config)
    }

    /// The settings of the parsed flags before [`Config::validate`], for `rampart check`,
    /// which reports every problem instead of the first.
    ///
    /// # Errors
    /// [`Error::Setting`](crate::Error::Setting) when only one of `--cert` and `--key` is
    /// given.
    #[cfg(feature = "cli")]
    pub fn from_cli_unvalidated(args: &ServeArgs) -> Result<Self> {
        let acme = (!args.acme.is_empty()).then(|| AcmeSettings {
            domains: args.acme.clone(),
            email: args.acme_email.clone(),
            directory: acme::directory_url(&args.acme_directory),
            ca_root: args.acme_ca_root.as_ref().map(PathBuf::from),
            state_dir: PathBuf::from(&args.acme_state),
            challenge: args.acme_challenge,
            eab: match (&args.acme_eab_kid, &args.acme_eab_hmac_key) {
                (Some(kid), Some(key)) => Some((kid.clone(), key.clone())),
                _ => None,
            },
            renew_after: args.acme_renew_after,
        });
        match (&args.acme_eab_kid, &args.acme_eab_hmac_key, &acme) {
            (Some(kid), None, _) => {
                return Err(Problem::invalid(
                    "--acme-eab-kid",
                    kid,
                    "needs --acme-eab-hmac-key (the binding's key) too",
                )
                .into())
            }
            (None, Some(_), _) => {
                return Err(Problem::invalid(
                    "--acme-eab-hmac-key",
                    "(hidden)",
                    "needs --acme-eab-kid (the binding's key id) too",
                )
                .into())
            }
            (Some(kid), Some(_), None) => {
                return Err(Problem::invalid(
                    "--acme-eab-kid",
                    kid,
                    "has no effect without --acme (the names to obtain a certificate for)",
                )
                .into())
            }
            _ => {}
        }
        if let (Some(acme), Some(flag)) = (
            &acme,
            args.cert
                .as_ref()
                .map(|_| "--cert")
                .or(args.key.as_ref().map(|_| "--key")),
        ) {
            return Err(Problem::invalid(
                flag,
                args.cert.as_ref().or(args.key.as_ref()).map_or("", |v| v),
                format!(
                    "conflicts with --acme {}: the certificate comes either from files or from \
                     an ACME CA, not both",
                    acme.domains.join(",")
                ),
            )
            .into());
        }
        let cert = match (&args.cert, &args.key, acme) {
            (_, _, Some(acme)) => CertSource::Acme(acme),
            (Some(cert), Some(key), None) => CertSource::Files {
                cert: cert.into(),
                key: key.into(),
            },
            (Some(cert), None, None) => {
                return Err(
                    Problem::invalid("--cert", cert, "needs --key (its private key) too").into(),
                )
            }
            (None, Some(key), None) => {
                return Err(Problem::invalid(
                    "--key",
                    key,
                    "needs --cert (its certificate chain) too",
                )
                .into())
            }
            (None, None, None) => CertSource::Dev {
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
            // --no-http3, or http3 = false from RAMPART_HTTP3 or the file.
            http3: args.http3 && !args.no_http3,
            http3_listen: args.http3_listen.clone(),
            http3_0rtt: args.http3_0rtt,
            http3_retry_above: DEFAULT_HTTP3_RETRY_ABOVE,
            metrics_listen: args.metrics_listen,
            proxy_protocol: args.proxy_protocol,
            trusted_proxies: args.trusted_proxy.clone(),
            ticket_key_file: args.ticket_key_file.as_ref().map(PathBuf::from),
            log_format: args.log_format,
            access_log: args.access_log,
            drain_delay: args.drain_delay,
            workers: args.workers.unwrap_or_else(default_workers),
            session_cache: args.session_cache,
            // --no-spa, or spa = false from RAMPART_SPA or the file.
            spa: args.spa && !args.no_spa,
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
            keep_old_assets: args.keep_old_assets,
            file_sections: args.file_sections.clone(),
        };
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
                rules: std::sync::Arc::new(crate::app::routes::OperatorRules {
                    headers: self.file_sections.headers.clone(),
                    redirects: self.file_sections.redirects.clone(),
                }),
                keep_old_assets: self.keep_old_assets,
                alt_svc: None,
            },
        }
    }

    /// Checks ranges and cross-field rules; called by [`Config::from_cli`] and (through
    /// [`crate::check`]) by the server before it binds anything, so embedders get the same
    /// errors.
    ///
    /// # Errors
    /// [`Error::Setting`](crate::Error::Setting): the first of [`Config::problems`].
    pub fn validate(&self) -> Result<()> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem.into()),
            None => Ok(()),
        }
    }

    /// Every listener with the flag it comes from: `--listen`, `--http-listen`,
    /// `--metrics-listen`.
    #[must_use]
    pub fn listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        let mut all: Vec<_> = self.listen.iter().map(|a| ("--listen", *a)).collect();
        all.extend(self.http_listen.map(|a| ("--http-listen", a)));
        all.extend(self.metrics_listen.map(|a| ("--metrics-listen", a)));
        all
    }

    /// The UDP addresses HTTP/3 is served on, with the flag each comes from: the
    /// `--http3-listen` addresses when there are any, else the `--listen` ones; none with
    /// `--no-http3`.
    #[must_use]
    pub fn http3_listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        if !self.http3 {
            Vec::new()
        } else if self.http3_listen.is_empty() {
            self.listen.iter().map(|a| ("--listen", *a)).collect()
        } else {
            self.http3_listen
                .iter()
                .map(|a| ("--http3-listen", *a))
                .collect()
        }
    }

    /// Every problem with the settings, in flag order: the document root's
    /// ([`Config::root_problem`]) first, then the others ([`Config::setting_problems`]).
    #[must_use]
    pub fn problems(&self) -> Vec<Problem> {
        let mut out: Vec<Problem> = self.root_problem().into_iter().collect();
        out.extend(self.setting_problems());
        out
    }

    /// Every problem with the settings other than the document root, in flag order, each
    /// naming the flag and value: out of range, missing partners, colliding listeners.
    #[must_use]
    pub fn setting_problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if let CertSource::Acme(acme) = &self.cert {
            out.extend(acme.problems(self.http_listen.is_some()));
        }
        if self.listen.is_empty() {
            out.push(Problem::invalid(
                "--listen",
                "",
                "at least one address is needed",
            ));
        }
        out.extend(self.collisions());
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            out.push(Problem::invalid(
                "--proxy-protocol",
                "true",
                "needs at least one --trusted-proxy range (the load balancers' addresses)",
            ));
        }
        if !self.proxy_protocol && !self.trusted_proxies.is_empty() {
            out.push(Problem::invalid(
                "--trusted-proxy",
                self.trusted_proxies[0],
                "has no effect without --proxy-protocol",
            ));
        }
        if !self.http3 && !self.http3_listen.is_empty() {
            out.push(Problem::invalid(
                "--http3-listen",
                self.http3_listen[0],
                "has no effect with --no-http3",
            ));
        }
        if !self.http3 && self.http3_0rtt {
            out.push(Problem::invalid(
                "--http3-0rtt",
                "true",
                "has no effect with --no-http3",
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            out.push(Problem::invalid(
                "--log-level",
                &self.log_level,
                e.to_string(),
            ));
        }
        let ranges: [(&'static str, u64, u64, u64, &str); 7] = [
            (
                "--workers",
                self.workers as u64,
                1,
                1024,
                "must be between 1 and 1024",
            ),
            (
                "--session-cache",
                self.session_cache as u64,
                1,
                16 * 1024 * 1024,
                "must be between 1 and 16777216",
            ),
            (
                "--max-connections",
                self.max_connections as u64,
                1,
                1_000_000,
                "must be between 1 and 1000000",
            ),
            (
                "--max-header-size",
                self.max_header_size as u64,
                8192,
                1024 * 1024,
                "must be between 8192 and 1048576",
            ),
            (
                "--max-headers",
                self.max_headers as u64,
                1,
                1000,
                "must be between 1 and 1000",
            ),
            (
                "--max-uri-length",
                self.max_uri_length as u64,
                256,
                self.max_header_size as u64,
                "must be between 256 and --max-header-size",
            ),
            (
                "--h2-max-streams",
                u64::from(self.h2_max_streams),
                1,
                10_000,
                "must be between 1 and 10000",
            ),
        ];
        for (flag, value, min, max, reason) in ranges {
            if !(min..=max).contains(&value) {
                out.push(Problem::invalid(flag, value, reason));
            }
        }
        for (flag, d) in [
            ("--handshake-timeout", self.handshake_timeout),
            ("--header-timeout", self.header_timeout),
            ("--idle-timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                out.push(Problem::invalid(flag, "0", "must be greater than zero"));
            }
        }
        out
    }

    /// Listeners that cannot all be bound: the same IP and port twice, or a port taken on
    /// every address of a family (0.0.0.0 or [::]) and on one address of it as well. Port 0
    /// (any free port) never collides.
    fn collisions(&self) -> Vec<Problem> {
        let all = self.listeners();
        let mut out = Vec::new();
        for (j, (flag, b)) in all.iter().enumerate() {
            let clash = all[..j].iter().find(|(_, a)| {
                a.port() != 0
                    && a.port() == b.port()
                    && a.is_ipv4() == b.is_ipv4()
                    && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
            });
            if let Some((other_flag, a)) = clash {
                let reason = if a.ip() == b.ip() {
                    format!("the same address is already given to {other_flag}")
                } else {
                    format!(
                        "collides with {other_flag} {a}: port {} cannot be bound on every \
                         address and on one of them too",
                        a.port()
                    )
                };
                out.push(Problem::invalid(flag, b, reason));
            }
        }
        out
    }

    /// What is wrong with the document root, if anything: it must be a readable directory
    /// holding a readable index.html.
    #[must_use]
    pub fn root_problem(&self) -> Option<Problem> {
        let fail = |reason: String| {
            Some(Problem::Root {
                path: self.root.clone(),
                reason,
            })
        };
        if !self.root.is_dir() {
            return fail(if self.root.exists() {
                "is not a directory".into()
            } else {
                "no such directory".into()
            });
        }
        if let Err(e) = std::fs::read_dir(&self.root) {
            return fail(format!("cannot be read: {e}"));
        }
        let index = self.root.join("index.html");
        if !index.is_file() {
            return fail("has no index.html (a single-page app needs one)".into());
        }
        if let Err(e) = std::fs::File::open(&index) {
            return fail(format!("index.html cannot be read: {e}"));
        }
        None
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_listeners(listen: &[&str], http: Option<&str>, metrics: Option<&str>) -> Config {
        let mut c = Config::new("www");
        c.listen = listen.iter().map(|a| a.parse().unwrap()).collect();
        c.http_listen = http.map(|a| a.parse().unwrap());
        c.metrics_listen = metrics.map(|a| a.parse().unwrap());
        c
    }

    fn collisions(c: &Config) -> Vec<String> {
        c.collisions().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn listeners_collide_on_one_address_or_a_port_shared_with_the_unspecified_address() {
        let same = with_listeners(&["127.0.0.1:8443"], Some("127.0.0.1:8443"), None);
        assert_eq!(collisions(&same).len(), 1, "{:?}", collisions(&same));
        assert!(collisions(&same)[0].contains("--http-listen"));
        let wildcard = with_listeners(&["0.0.0.0:8443"], None, Some("10.0.0.1:8443"));
        assert!(collisions(&wildcard)[0].contains("collides with --listen 0.0.0.0:8443"));
        let v6 = with_listeners(&["[::]:8443", "[::1]:8443"], None, None);
        assert_eq!(collisions(&v6).len(), 1);
    }

    #[test]
    fn listeners_on_port_zero_other_ports_or_other_families_do_not_collide() {
        for c in [
            with_listeners(&["127.0.0.1:0", "127.0.0.1:0"], Some("127.0.0.1:0"), None),
            with_listeners(&["0.0.0.0:443", "[::]:443"], Some("0.0.0.0:80"), None),
            with_listeners(&["127.0.0.1:443", "127.0.0.2:443"], None, Some("[::1]:443")),
        ] {
            assert!(collisions(&c).is_empty(), "{:?}", collisions(&c));
        }
    }

    #[test]
    fn every_settings_problem_is_reported_not_only_the_first() {
        let mut c = Config::new("no-such-root");
        c.workers = 0;
        c.max_headers = 0;
        c.log_level = "rampart=[[[".into();
        let all: Vec<String> = c.problems().iter().map(ToString::to_string).collect();
        for needle in [
            "--root no-such-root",
            "--workers",
            "--max-headers",
            "--log-level",
        ] {
            assert!(all.iter().any(|p| p.contains(needle)), "{needle}: {all:?}");
        }
    }
}
