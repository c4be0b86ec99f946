//! rampart: an HTTPS server for single-page web apps.
//!
//! # The path of a connection
//! ```text
//! listeners (server/listen.rs)      the one socket setup, also used by check's probe
//! accept loop (server/mod.rs)       accepts, takes a connection slot, spawns; never waits on a client
//!   └ connection task (server/connection.rs)
//!       before TLS (server/handshake.rs: `Opening`, one method per step, one deadline):
//!       │ PROXY header (server/proxy.rs): required from --trusted-proxy peers with
//!       │ --proxy-protocol, its client address becomes the peer; refused from anyone else
//!       │ sniff first bytes (server/sniff.rs) ── plaintext HTTP ─> 308/400 (server/plaintext.rs), close
//!       │   (--http-listen with ACME on: /.well-known/acme-challenge/TOKEN ─> HTTP-01 answer or 404)
//!       │                                 └─ garbage ─> close, warn with peer
//!       │ TLS handshake (tls/: rustls, sharded session cache, ticket key ring (tls/ticket/:
//!       │ in memory or a fleet's --ticket-key-file), swappable cert taken from a certificate
//!       │ source (tls/source.rs: files, the development CA; ACME would be one more) and
//!       │ accepted only if the inspector (tls/inspect.rs) finds no error)
//!       │ ClientHello offering acme-tls/1 (ACME on) ─> the TLS-ALPN-01 answer for its SNI
//!       │ (acme/challenge.rs) and close_notify, or a refused handshake; never HTTP
//!       HTTP/1.1 (server/h1.rs) or HTTP/2 (server/h2.rs) by ALPN (protocol.rs), each a hyper
//!       │ connection run by server/driver.rs, which carries out server/policy.rs: the
//!       │ connection's phase (serving, awaiting its first request at shutdown, draining,
//!       │ ending) and its deadlines (header, idle, stall, park) decide what happens next
//!       │ (a connection waiting on its client to read is busy, never parked or idle)
//!       │ HTTP/2 client frames followed (server/frame_watch.rs): tiny windows, pseudo
//!       │ fields in trailers close the connection
//!         └ per-connection service (server/service.rs, any request body, no TLS type)
//!         └ request rules (server/request_check.rs): one valid Host / :authority, no
//!           Transfer-Encoding (400 + close, or RST_STREAM); HTTP/2 bodies read to their end
//!         └ AssetService (app/): one tower Service over the in-memory AssetTable; each
//!           response counted (metrics) and access-logged when its body ends; file chunks
//!           read against the connection's send budget (app/budget.rs). Site rules
//!           (rules/: _headers, _redirects, [[headers]], [[redirects]]) are folded into the
//!           table's per-path header maps at build (app/routes.rs); only paths a rule marks
//!           ask them per request: redirects and rewrites, CORS preflights (app/cors.rs),
//!           Basic-Auth (app/basic_auth.rs, bcrypt on the blocking pool)
//!       IO (server/io/: replay, ticket hold, HTTP/2 cork and flush gate, activity)
//!       close path (server/io/close.rs, run when ConnIo drops): close_notify, then lingering close - on every exit
//! reload (server/reload.rs)         the one SIGHUP stream and the file pollers: certificate
//!                                   (tls/reload.rs), ticket key file (tls/ticket/reload.rs),
//!                                   redeploys (app/redeploy.rs: rebuild the table, swap it;
//!                                   app/deploy_check.rs holds back a half-copied deploy,
//!                                   app/retired.rs keeps old hashed assets servable)
//! ACME renewal (acme/, --acme)      obtains and renews the certificate: when due (acme/schedule.rs),
//!                                   under the state directory's lock (acme/state.rs), orders
//!                                   (acme/order.rs), stores it, has the resolver reload it
//! operator port (server/admin.rs)   --metrics-listen: /metrics (Prometheus), /healthz, /readyz
//! shutdown (server/shutdown.rs)     SIGTERM/SIGINT: /readyz 503, --drain-delay, stop accepting,
//!                                   first requests of new clients, drain, close_notify, exit
//! ```
//!
//! # Configuration and start-up checks
//! ```text
//! flags > RAMPART_* > --config file (config/file.rs: TOML, keys = flag names) > defaults
//!   │ the file's own sections [[headers]], [[redirects]] (config/sections.rs: a registry
//!   │ of sections and typed fields) ─> FileSections of rules:: types, applied by the app
//!   │ with the root's _headers/_redirects
//!   └ cli.rs (clap structs, feature "cli"; value types and parsers in config/types.rs)
//!       ─> Config (config.rs, validated once; each fault a problem::Problem)
//!       └ check.rs: settings, root, site rules (check/route.rs; also --route PATH), certificate chain/key/validity/names (the findings of
//!         tls/inspect.rs, which start-up and reload load through too), ticket key file,
//!         listeners (probed with server/listen.rs's socket) ─> Report of problem::Item
//!         (`rampart check` prints it; Server::bind refuses on errors, as Error::Checks;
//!         Config::validate as Error::Setting)
//! ```
//!
//! # Embedding
//! [`Config`] holds every setting ([`Config::new`] gives the defaults). [`Server::bind`]
//! does all start-up work that can fail, starting with the checks of [`check::startup`];
//! [`check::report`] is `rampart check` as a function. [`Server::run`] serves until a future completes.
//! [`app::AssetService`] is the asset-serving tower `Service` on its own, for use inside
//! another hyper or axum server. See `examples/embed.rs`.

pub mod acme;
pub mod app;
pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod error;
pub mod problem;
pub mod protocol;
pub mod rules;
pub mod server;
pub mod telemetry;
pub mod tls;

pub use app::{AssetService, Site, SiteOptions};
pub use config::{CertSource, Config};
pub use error::{Error, Result};
pub use server::{Server, ShutdownSummary};

/// Runs the server described by `config` on a new multi-threaded (work-stealing) tokio
/// runtime with `config.workers` threads, until SIGTERM or SIGINT; then drains and returns.
///
/// # Errors
/// Any start-up [`Error`]; the runtime itself failing to start is reported as
/// [`Error::Other`].
pub fn run(config: Config) -> Result<ShutdownSummary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .thread_name("rampart-worker")
        .enable_all()
        .build()
        .map_err(|source| Error::Other {
            context: "starting the tokio runtime".into(),
            source,
        })?;
    let json = config.log_format == config::LogFormat::Json;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        announce(&server, json);
        server.run(server::shutdown::signal()).await
    })
}

fn announce(server: &Server, json: bool) {
    let addrs = server.local_addrs();
    let table = server.site().table();
    for addr in &addrs {
        tracing::info!(url = %format!("https://{addr}/"), files = table.files(), bytes = table.bytes(), "serving");
    }
    if let (Some(dev), Some(addr)) = (server.dev_cert(), addrs.first()) {
        let verb = if dev.created { "created" } else { "using" };
        if json {
            tracing::info!(ca = %dev.ca.display(), created = dev.created, "development certificate for localhost, 127.0.0.1 and ::1; trust its CA to connect without warnings (never use it in production)");
            return;
        }
        eprintln!(
            "rampart: {verb} a development certificate for localhost, 127.0.0.1 and ::1.\n\
             \x20 Trust its CA to connect without warnings: {ca}\n\
             \x20 e.g.  curl --cacert {ca} https://{addr}/\n\
             \x20 (see certs/README.md for browsers and system stores; never use it in production)",
            ca = dev.ca.display()
        );
    }
}
