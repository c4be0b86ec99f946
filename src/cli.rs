//! Command-line interface: clap derive structs only. Every flag is also an environment
//! variable `RAMPART_<FLAG>`; defaults are shown in `--help`. Values are turned into a
//! validated [`crate::Config`] by [`crate::config`], never used directly. The types and
//! parsers of the values live in [`crate::config::types`]; this module only wires them into
//! clap (the enums' words become clap's possible values, for `--help`, completions and
//! error messages).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::config::sections::FileSections;
use crate::config::types::{
    no_stray_quotes, parse_addr, parse_cidr, parse_duration, AcmeChallenge, Cidr, LogFormat,
    PlaintextMode,
};

/// rampart: an HTTPS server for single-page web apps.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without a subcommand, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the single-page app over HTTPS (the default).
    Serve(ServeArgs),
    /// Run every start-up check `serve` runs (root, certificate chain and names, listen
    /// addresses, settings), print a report, and exit 0 only if serving would succeed.
    Check(CheckArgs),
    /// Manage the session-ticket key file shared by a fleet (`--ticket-key-file`).
    #[command(subcommand)]
    TicketKey(TicketKeyCommand),
    /// Print a completion script for SHELL on stdout, e.g.
    /// `rampart completions bash > /etc/bash_completion.d/rampart`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout, e.g. `rampart man | man -l -`.
    Man,
    /// Read a password (one line) on standard input and print its bcrypt hash, for the
    /// credentials of a Basic authentication rule, e.g.
    /// `printf '%s\n' "$PASSWORD" | rampart hash-password`.
    HashPassword {
        /// bcrypt's cost: 2^COST rounds (each step doubles the time of every check).
        #[arg(long, value_name = "COST", default_value_t = crate::app::basic_auth::DEFAULT_COST,
              value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
}

/// `rampart check ...`: the flags of `serve`, and paths to explain.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The settings to check, as `serve` takes them.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Print the status and headers a GET of PATH would get, and which rule (file and
    /// line) or default produced each; repeatable. A full URL (`https://www.example.com/x`)
    /// also names the host, for host-qualified rules.
    #[arg(long, value_name = "PATH")]
    pub route: Vec<String>,
}

/// `rampart ticket-key ...`
#[derive(Debug, Subcommand)]
pub enum TicketKeyCommand {
    /// Create PATH with a new key, or rotate it: the new key goes first (it encrypts new
    /// tickets) and the previous newest key is kept after it (it still decrypts).
    ///
    /// The file: text, one key a line as 64 hex characters (32 random bytes), newest
    /// first; blank lines and `#` comments are ignored; at most 8 keys. The first key
    /// encrypts new tickets, every key decrypts. A key's id (first 8 bytes of each ticket)
    /// is derived from the key, so every instance agrees on it. Keys older than the
    /// previous one are dropped. The file is written atomically (temporary file with mode
    /// 0600, then rename); a file that exists but does not parse is left alone.
    ///
    /// With --staged the new key goes second instead (decrypt-only) and the current key
    /// keeps encrypting: copy the file to every instance, then run `ticket-key promote`.
    New {
        /// The ticket key file (written atomically, mode 0600).
        path: PathBuf,
        /// Add the new key decrypt-only (second); `ticket-key promote` makes it encrypt.
        #[arg(long)]
        staged: bool,
    },
    /// Make the staged (second) key of PATH the encrypting one; the current key is kept
    /// after it (it still decrypts), older keys are dropped.
    Promote {
        /// The ticket key file (written atomically, mode 0600).
        path: PathBuf,
    },
}

/// Flags of `rampart serve`.
#[derive(Debug, Clone, Args)]
#[allow(clippy::struct_excessive_bools)]
pub struct ServeArgs {
    /// TOML configuration file; its keys are the flag names (`listen = ["0.0.0.0:443"]`).
    /// Flags and RAMPART_* variables take precedence over it.
    #[arg(long, env = "RAMPART_CONFIG", value_parser = no_stray_quotes)]
    pub config: Option<String>,

    /// Directory holding the built app (must contain index.html).
    #[arg(long, env = "RAMPART_ROOT", default_value = "www", value_parser = no_stray_quotes)]
    pub root: String,

    /// Address to serve HTTPS on; repeat for several.
    #[arg(long, env = "RAMPART_LISTEN", value_delimiter = ',', default_value = "127.0.0.1:8443",
          value_parser = parse_addr)]
    pub listen: Vec<SocketAddr>,

    /// Serve HTTP/3 (QUIC) on the UDP port of every --listen address (or on --http3-listen),
    /// advertised to HTTP/1.1 and HTTP/2 clients with Alt-Svc.
    #[arg(
        long,
        env = "RAMPART_HTTP3",
        overrides_with = "no_http3",
        default_value_t = true
    )]
    pub http3: bool,

    /// Do not serve HTTP/3: no UDP socket, no Alt-Svc header.
    #[arg(long = "no-http3", overrides_with = "http3")]
    pub no_http3: bool,

    /// UDP address to serve HTTP/3 on instead of the --listen addresses' ports; repeat for
    /// several. Alt-Svc then advertises the first one's port.
    #[arg(long, env = "RAMPART_HTTP3_LISTEN", value_delimiter = ',', value_parser = parse_addr)]
    pub http3_listen: Vec<SocketAddr>,

    /// Accept TLS 1.3 early data (0-RTT) on HTTP/3 resumptions, for GET and HEAD only (other
    /// methods wait for the handshake to finish). Off by default: early data can be replayed.
    /// QUIC then resumes from this process's session cache (single-use tickets), not the
    /// ticket key ring: TCP tickets and --ticket-key-file no longer resume QUIC.
    #[arg(long = "http3-0rtt", env = "RAMPART_HTTP3_0RTT")]
    pub http3_0rtt: bool,

    /// Certificate chain (PEM, leaf first). Without --cert/--key a development CA and
    /// certificate are created under --dev-cert-dir.
    // The pairing with --key is checked by Config (not clap's `requires`, which a value from
    // the --config file could not satisfy).
    #[arg(long, env = "RAMPART_CERT", value_parser = no_stray_quotes)]
    pub cert: Option<String>,

    /// Private key (PEM: PKCS#8, RSA or SEC1) matching --cert.
    #[arg(long, env = "RAMPART_KEY", value_parser = no_stray_quotes)]
    pub key: Option<String>,

    /// Where the development CA and certificate are kept (created when missing).
    #[arg(long, env = "RAMPART_DEV_CERT_DIR", default_value = "certs/dev", value_parser = no_stray_quotes)]
    pub dev_cert_dir: String,

    /// A host name (or IP) the certificate must cover; repeat for several. `check` and the
    /// start-up checks report names the certificate does not cover.
    #[arg(long, env = "RAMPART_SERVER_NAME", value_delimiter = ',', value_parser = no_stray_quotes)]
    pub server_name: Vec<String>,

    /// Optional cleartext address whose requests are redirected (308) to https://.
    #[arg(long, env = "RAMPART_HTTP_LISTEN", value_parser = parse_addr)]
    pub http_listen: Option<SocketAddr>,

    /// Obtain and renew the certificate from an ACME CA (Let's Encrypt by default) for
    /// this name; repeat for several names on one certificate. Excludes --cert/--key.
    #[arg(long, env = "RAMPART_ACME", value_delimiter = ',', value_parser = no_stray_quotes)]
    pub acme: Vec<String>,

    /// Contact address of the ACME account (the CA writes to it about the certificates).
    #[arg(long, env = "RAMPART_ACME_EMAIL", value_parser = no_stray_quotes)]
    pub acme_email: Option<String>,

    /// The ACME CA's directory URL, or `letsencrypt` / `letsencrypt-staging`.
    #[arg(long, env = "RAMPART_ACME_DIRECTORY", default_value = "letsencrypt",
          value_parser = no_stray_quotes)]
    pub acme_directory: String,

    /// Extra trust anchor (PEM) for the ACME directory's own HTTPS, for a private CA
    /// (step-ca, Pebble).
    #[arg(long, env = "RAMPART_ACME_CA_ROOT", value_parser = no_stray_quotes)]
    pub acme_ca_root: Option<String>,

    /// Directory of the ACME account key, certificates, keys and the fleet's lock (created
    /// 0700, files 0600); instances of a fleet share it.
    #[arg(long, env = "RAMPART_ACME_STATE", default_value = "acme", value_parser = no_stray_quotes)]
    pub acme_state: String,

    /// How the CA validates the names.
    #[arg(long, env = "RAMPART_ACME_CHALLENGE", value_parser = acme_challenge(),
          default_value_t = AcmeChallenge::TlsAlpn01)]
    pub acme_challenge: AcmeChallenge,

    /// External Account Binding key id, for a CA that requires one.
    #[arg(long, env = "RAMPART_ACME_EAB_KID", value_parser = no_stray_quotes)]
    pub acme_eab_kid: Option<String>,

    /// External Account Binding HMAC key (base64url, as the CA gives it).
    #[arg(long, env = "RAMPART_ACME_EAB_HMAC_KEY", value_parser = no_stray_quotes)]
    pub acme_eab_hmac_key: Option<String>,

    /// Test-only: renew this long after a certificate was issued instead of at two thirds
    /// of its lifetime.
    #[arg(long, env = "RAMPART_ACME_RENEW_AFTER", hide = true, value_parser = parse_duration)]
    pub acme_renew_after: Option<Duration>,

    /// Set SO_REUSEPORT on the listeners, so that a new rampart can bind the same addresses
    /// and take over before this one is stopped (zero-downtime restart).
    #[arg(long, env = "RAMPART_REUSE_PORT")]
    pub reuse_port: bool,

    /// Cleartext address for /metrics (Prometheus), /healthz and /readyz.
    #[arg(long, env = "RAMPART_METRICS_LISTEN", value_parser = parse_addr)]
    pub metrics_listen: Option<SocketAddr>,

    /// Expect a PROXY protocol (v1 or v2) header from the --trusted-proxy peers and use the
    /// client address it carries (in every log line), on the HTTPS and --http-listen ports.
    /// A trusted peer without a valid header, or another peer that sends one, is closed.
    // Its --trusted-proxy partner is required by Config, which sees values from the file too.
    #[arg(long, env = "RAMPART_PROXY_PROTOCOL")]
    pub proxy_protocol: bool,

    /// Address range (CIDR, e.g. 10.0.0.0/8 or ::1/128) of the load balancers allowed to
    /// send a PROXY protocol header; repeat for several.
    #[arg(long, env = "RAMPART_TRUSTED_PROXY", value_delimiter = ',', value_parser = parse_cidr)]
    pub trusted_proxy: Vec<Cidr>,

    /// Session-ticket key file shared by a fleet, newest key first (see `rampart ticket-key
    /// new`); re-read on change and SIGHUP. Without it, keys are made and rotated in memory.
    #[arg(long, env = "RAMPART_TICKET_KEY_FILE", value_parser = no_stray_quotes)]
    pub ticket_key_file: Option<String>,

    /// Tokio worker threads [default: number of cores].
    #[arg(long, env = "RAMPART_WORKERS")]
    pub workers: Option<usize>,

    /// TLS session cache size (entries) for session-ID resumption.
    #[arg(long, env = "RAMPART_SESSION_CACHE", default_value_t = 65536)]
    pub session_cache: usize,

    /// Serve index.html for unknown extensionless paths (client-side routes).
    #[arg(
        long,
        env = "RAMPART_SPA",
        overrides_with = "no_spa",
        default_value_t = true
    )]
    pub spa: bool,

    /// Disable the SPA fallback: unknown paths get 404.
    #[arg(long = "no-spa", overrides_with = "spa")]
    pub no_spa: bool,

    /// Strict-Transport-Security max-age in seconds; 0 omits the header.
    #[arg(long, env = "RAMPART_HSTS_MAX_AGE", default_value_t = 31_536_000)]
    pub hsts_max_age: u64,

    /// What a plaintext HTTP request on the HTTPS port gets.
    #[arg(long, env = "RAMPART_PLAINTEXT", value_parser = plaintext_mode(),
          default_value_t = PlaintextMode::Redirect)]
    pub plaintext: PlaintextMode,

    /// Log filter (tracing EnvFilter syntax: `info`, `rampart=debug`, ...).
    #[arg(long, env = "RAMPART_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Format of log lines: pretty or json.
    #[arg(long, env = "RAMPART_LOG_FORMAT", value_parser = log_format(),
          default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log one line per request (peer, method, path, status, bytes, duration, protocol, TLS
    /// version, resumed, SNI) at target `access`.
    #[arg(long, env = "RAMPART_ACCESS_LOG")]
    pub access_log: bool,

    /// Deadline for first bytes plus TLS handshake.
    #[arg(long, env = "RAMPART_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Deadline for a whole request head once its first byte arrived (slowloris).
    #[arg(long, env = "RAMPART_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Idle keep-alive connections (and stalled transfers) are closed after this long.
    #[arg(long, env = "RAMPART_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// On SIGTERM/SIGINT, keep accepting for this long while /readyz answers 503, so that a
    /// load balancer stops sending new clients first; then drain.
    #[arg(long, env = "RAMPART_DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,

    /// On SIGTERM/SIGINT, in-flight responses get this long to finish.
    #[arg(long, env = "RAMPART_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Maximum open client connections; further clients wait in the listen backlog.
    #[arg(long, env = "RAMPART_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Maximum request head size in bytes (HTTP/1.1: 431 beyond; HTTP/2: header list size).
    #[arg(long, env = "RAMPART_MAX_HEADER_SIZE", default_value_t = 32 * 1024)]
    pub max_header_size: usize,

    /// Maximum number of request header fields (431 beyond).
    #[arg(long, env = "RAMPART_MAX_HEADERS", default_value_t = 100)]
    pub max_headers: usize,

    /// Maximum request-target length in bytes (414 beyond).
    #[arg(long, env = "RAMPART_MAX_URI_LENGTH", default_value_t = 8 * 1024)]
    pub max_uri_length: usize,

    /// Maximum concurrent HTTP/2 streams per connection.
    #[arg(long, env = "RAMPART_H2_MAX_STREAMS", default_value_t = 128)]
    pub h2_max_streams: u32,

    /// Files larger than this (bytes) are streamed from disk instead of held in memory.
    #[arg(long, env = "RAMPART_STREAM_THRESHOLD", default_value_t = 8 * 1024 * 1024)]
    pub stream_threshold: u64,

    /// How often the root is checked for a redeploy; 0 turns watching off.
    #[arg(long, env = "RAMPART_WATCH_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub watch_interval: Duration,

    /// After a redeploy, keep serving the previous deploys' content-hashed assets (lazy
    /// chunks of tabs opened before it) for this long (`90s`, `30m`, `12h`, `1d`); 0 turns it
    /// off. index.html and unhashed files are always the newest. At most 256 MiB and 10000
    /// old files are kept (oldest dropped first); large streamed files are not kept.
    #[arg(long, env = "RAMPART_KEEP_OLD_ASSETS", default_value = "1d", value_parser = parse_duration)]
    pub keep_old_assets: Duration,

    /// The `--config` file's sections (`[[headers]]`, `[[redirects]]`), which have no
    /// flag: filled in by [`crate::config::parse_args`], empty without a file.
    #[arg(skip)]
    pub file_sections: FileSections,
}

/// `--log-format`: the words of [`LogFormat`] as clap's possible values.
fn log_format() -> impl TypedValueParser<Value = LogFormat> {
    let words = LogFormat::ALL.map(|f| PossibleValue::new(f.as_str()).help(f.description()));
    PossibleValuesParser::new(words).try_map(|word| word.parse::<LogFormat>())
}

/// `--acme-challenge`: the words of [`AcmeChallenge`] as clap's possible values.
fn acme_challenge() -> impl TypedValueParser<Value = AcmeChallenge> {
    let words = AcmeChallenge::ALL.map(|m| PossibleValue::new(m.as_str()).help(m.description()));
    PossibleValuesParser::new(words).try_map(|word| word.parse::<AcmeChallenge>())
}

/// `--plaintext`: the words of [`PlaintextMode`] as clap's possible values.
fn plaintext_mode() -> impl TypedValueParser<Value = PlaintextMode> {
    let words = PlaintextMode::ALL.map(|m| PossibleValue::new(m.as_str()).help(m.description()));
    PossibleValuesParser::new(words).try_map(|word| word.parse::<PlaintextMode>())
}
