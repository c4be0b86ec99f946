//! The server: listeners, the accept loops, connection tasks and the drain. [`Server::bind`]
//! does every start-up step that can fail (validate config, load assets, turn the
//! certificate setting into a certificate source and load it, bind every address through
//! listen.rs) so that an error surfaces before anything is served; [`Server::run`] starts
//! the reload tasks (reload.rs: SIGHUP and the file pollers) and serves until the shutdown
//! future resolves, then drains.

pub(crate) mod admin;
pub(crate) mod alt_svc;
pub mod connection;
mod driver;
mod frame_watch;
mod h1;
mod h2;
pub(crate) mod h3;
mod handshake;
pub(crate) mod io;
pub(crate) mod listen;
pub mod plaintext;
mod policy;
pub mod proxy;
mod reload;
mod request_check;
pub(crate) mod service;
pub(crate) mod shared;
pub mod shutdown;
pub mod sniff;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use shared::{Kind, Limits, Shared};

use crate::acme::challenge::Challenges;
use crate::acme::renewal::Renewal;
use crate::acme::state::StateDir;
use crate::acme::{AcmeSource, Progress};
use crate::app::{AssetService, Site};
use crate::config::{CertSource, Config};
use crate::error::{Error, Result};
use crate::telemetry::{Metrics, MetricsSnapshot, RateLimit};
use crate::tls::{self, devcert::DevCert, ticket::TicketKeys, CertResolver};

pub use shutdown::ShutdownTokens;

/// How the drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSummary {
    /// Connections open when shutdown began.
    pub open_at_start: u64,
    /// Whether the drain deadline passed and connections were closed by force.
    pub forced: bool,
}

/// A bound, ready-to-run server.
pub struct Server {
    config: Config,
    listeners: Vec<(TcpListener, Kind)>,
    /// HTTP/3 endpoints (none with `--no-http3`).
    quic: Vec<h3::Endpoint>,
    h3_settings: Arc<h3::Settings>,
    admin: Option<TcpListener>,
    shared: Arc<Shared>,
    site: Arc<Site>,
    dev_cert: Option<DevCert>,
    semaphore: Arc<Semaphore>,
    /// With `--acme`: the renewal task, started by [`Server::run`].
    acme: Option<Renewal>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.local_addrs())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Validates the config, loads the assets and the certificate, binds every listener.
    ///
    /// # Errors
    /// Any [`Error`]: bad setting, unreadable root, bad certificate, address in use.
    pub async fn bind(config: Config) -> Result<Self> {
        // Every setting, the root, the certificate chain and names: all failures at once.
        crate::check::startup(&config)?;
        let mut acme = None;
        let (source, dev_cert): (Box<dyn tls::ProvidesCert>, _) = match &config.cert {
            CertSource::Files { cert, key } => (
                Box::new(tls::source::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                None,
            ),
            CertSource::Dev { dir } => {
                let dev = tls::devcert::ensure(dir)?;
                (Box::new(dev.clone()), Some(dev))
            }
            CertSource::Acme(settings) => {
                let state = StateDir::open(&settings.state_dir).map_err(|source| Error::Other {
                    context: format!("--acme-state {}", settings.state_dir.display()),
                    source,
                })?;
                let progress = Arc::new(Progress::default());
                let (cert, key) = state.cert_paths(&settings.domains);
                let source =
                    AcmeSource::new(settings.domains.clone(), cert, key, Arc::clone(&progress));
                acme = Some((settings.clone(), state, progress));
                (Box::new(source), None)
            }
        };
        // ACME's first start has no certificate yet: the resolver starts without one.
        let resolver = Arc::new(if acme.is_some() {
            CertResolver::pending(source)
        } else {
            CertResolver::new(source)?
        });
        let ticket_keys = Arc::new(match &config.ticket_key_file {
            Some(path) => TicketKeys::from_file(path).map_err(tls::TlsError::from)?,
            None => TicketKeys::in_memory(tls::ticket::ROTATION).map_err(tls::TlsError::from)?,
        });
        let tls_config = tls::server_config(
            Arc::clone(&resolver),
            config.session_cache,
            Arc::clone(&ticket_keys),
        )?;

        let metrics = Arc::new(Metrics::default());
        let h3_settings = Arc::new(h3::Settings {
            handshake_timeout: config.handshake_timeout,
            idle_timeout: config.idle_timeout,
            header_timeout: config.header_timeout,
            max_streams: config.h2_max_streams,
            max_field_section: config.max_header_size as u64,
            early_data: config.http3_0rtt,
            retry_above: config.http3_retry_above,
        });
        let quic_tls = config
            .http3
            .then(|| {
                let ticketer = Arc::new(h3::tickets::CountingTicketer::new(
                    Arc::clone(&ticket_keys) as Arc<dyn rustls::server::ProducesTickets>,
                    Arc::clone(&metrics),
                ));
                let stateful = Arc::new(h3::tickets::CountingStore::new(
                    Arc::clone(&tls_config.session_storage),
                    Arc::clone(&metrics),
                ));
                tls::quic_server_config(
                    &tls_config,
                    Arc::clone(&resolver),
                    ticketer,
                    stateful,
                    config.http3_0rtt,
                )
            })
            .transpose()?;
        let reuse = config.reuse_port;
        let mut listeners = Vec::new();
        let mut quic = Vec::new();
        // HTTP/3 on each --listen address's own port, unless --http3-listen names others.
        let paired = quic_tls.as_ref().filter(|_| config.http3_listen.is_empty());
        for addr in &config.listen {
            let (tcp, udp) = bind_pair(*addr, reuse, paired, &h3_settings)?;
            listeners.push((tcp, Kind::Tls));
            quic.extend(udp);
        }
        if let Some(tls) = quic_tls
            .as_ref()
            .filter(|_| !config.http3_listen.is_empty())
        {
            for addr in &config.http3_listen {
                quic.push(h3::Endpoint::bind(
                    *addr,
                    "--http3-listen",
                    reuse,
                    Arc::clone(tls),
                    &h3_settings,
                )?);
            }
        }
        let alt_svc = alt_svc::AltSvc::new(listeners.iter().filter_map(|(l, _)| {
            let tcp = l.local_addr().ok()?.port();
            let udp = match config.http3_listen.is_empty() {
                true => tcp,
                false => quic.first()?.local_addr()?.port(),
            };
            (!quic.is_empty()).then_some((tcp, udp))
        }));
        if let Some(addr) = config.http_listen {
            listeners.push((listen::bind(addr, "--http-listen", reuse)?, Kind::Redirect));
        }
        // Loaded once the ports are known: the Alt-Svc header every HTTPS listener shares
        // goes into the asset table, so that a response carries it without a per-request
        // insertion (connections still add their own where listeners differ).
        let mut options = config.site_options();
        options.build.alt_svc = alt_svc.common();
        let site = tokio::task::spawn_blocking(move || Site::load(options))
            .await
            .map_err(|e| Error::Other {
                context: "loading assets".into(),
                source: std::io::Error::other(e),
            })??;
        let admin = config
            .metrics_listen
            .map(|addr| admin::bind(addr, reuse))
            .transpose()?;
        if reuse {
            listen::warn_without_migration();
        }
        let https_port = listeners[0].0.local_addr().map_or(443, |a| a.port());
        let acme = acme.map(|(settings, state, progress)| Renewal {
            challenges: Arc::new(Challenges::new(Some(state.challenges()))),
            settings,
            state,
            resolver: Arc::clone(&resolver),
            progress,
            metrics: Arc::clone(&metrics),
        });
        let shared = Arc::new(Shared {
            tls: tls::ServerConfigs::new(tls_config),
            resolver,
            ticket_keys,
            app: AssetService::new(Arc::clone(&site)),
            metrics,
            tokens: ShutdownTokens::default(),
            tracker: TaskTracker::new(),
            limits: Limits {
                handshake_timeout: config.handshake_timeout,
                header_timeout: config.header_timeout,
                idle_timeout: config.idle_timeout,
                max_header_size: config.max_header_size,
                max_headers: config.max_headers,
                h2_max_streams: config.h2_max_streams,
                plaintext: config.plaintext,
            },
            https_port,
            alt_svc,
            warn_limit: RateLimit::new(20, Duration::from_secs(10)),
            access_log: config.access_log,
            send_pool: crate::app::SendPool::default(),
            draining: AtomicBool::new(false),
            trusted_proxies: config
                .proxy_protocol
                .then(|| config.trusted_proxies.clone()),
            acme_challenges: acme.as_ref().map(|a| Arc::clone(&a.challenges)),
        });
        let semaphore = Arc::new(Semaphore::new(config.max_connections));
        Ok(Self {
            config,
            listeners,
            quic,
            h3_settings,
            admin,
            shared,
            site,
            dev_cert,
            semaphore,
            acme,
        })
    }

    /// The bound HTTPS addresses (with the real port when 0 was asked for).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs(Kind::Tls)
    }

    /// The bound HTTP/3 (UDP) addresses; none with `--no-http3`.
    #[must_use]
    pub fn http3_addrs(&self) -> Vec<SocketAddr> {
        self.quic
            .iter()
            .filter_map(h3::Endpoint::local_addr)
            .collect()
    }

    /// The bound cleartext redirect address, if any.
    #[must_use]
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.addrs(Kind::Redirect).first().copied()
    }

    /// The bound `--metrics-listen` address, if any.
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    fn addrs(&self, kind: Kind) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.1 == kind)
            .filter_map(|l| l.0.local_addr().ok())
            .collect()
    }

    /// The development certificate in use, when no --cert/--key was given.
    #[must_use]
    pub fn dev_cert(&self) -> Option<&DevCert> {
        self.dev_cert.as_ref()
    }

    /// A handle to read counters while the server runs.
    #[must_use]
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// The session-ticket key ring (its `generation()` and `key_count()` for metrics).
    #[must_use]
    pub fn ticket_keys(&self) -> Arc<TicketKeys> {
        Arc::clone(&self.shared.ticket_keys)
    }

    /// The ACME challenge answers this server gives, if any.
    #[must_use]
    pub fn acme_challenges(&self) -> Option<Arc<Challenges>> {
        self.shared.acme_challenges.clone()
    }

    /// Answers the ACME challenges that `challenges` holds: TLS-ALPN-01 on the HTTPS
    /// listeners, HTTP-01 on the `--http-listen` port. For an embedder that runs its own
    /// ACME client; call it before [`Server::run`].
    pub fn set_acme_challenges(&mut self, challenges: Arc<Challenges>) {
        // Until `run`, the server is the only holder of its shared state (connection tasks
        // take their references when the accept loops start).
        let shared = Arc::get_mut(&mut self.shared)
            .expect("no connection holds the shared state before Server::run");
        shared.acme_challenges = Some(challenges);
    }

    /// The served site (asset table).
    #[must_use]
    pub fn site(&self) -> Arc<Site> {
        Arc::clone(&self.site)
    }

    /// Serves until `shutdown` resolves; then /readyz answers 503, accepting goes on for
    /// `drain_delay`, then stops; in-flight work drains for up to `shutdown_timeout` and
    /// what is left is closed.
    ///
    /// # Errors
    /// None at present; the `Result` leaves room for run-time failures that must stop it.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<ShutdownSummary> {
        let Self {
            config,
            listeners,
            quic,
            h3_settings,
            admin,
            shared,
            site,
            semaphore,
            acme,
            ..
        } = self;
        if let Some(renewal) = acme {
            tokio::spawn(renewal.run(shared.tokens.graceful.child_token()));
        }
        // SIGHUP and changed files: the certificate, the ticket keys, the site.
        reload::spawn(
            reload::Targets {
                resolver: Arc::clone(&shared.resolver),
                ticket_keys: Arc::clone(&shared.ticket_keys),
                site: Arc::clone(&site),
                site_interval: config.watch_interval,
            },
            shared.tokens.graceful.child_token(),
        );
        tracing::info!(
            kernel_tls = %tls::kernel::KernelTls::probe(),
            "TLS records are encrypted in user space (rustls) on every connection"
        );
        let mut loops = Vec::new();
        for (listener, kind) in listeners {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, kind = ?kind, "listening");
            }
            loops.push(tokio::spawn(accept_loop(
                listener,
                kind,
                Arc::clone(&shared),
                Arc::clone(&semaphore),
            )));
        }
        let mut endpoints = Vec::new();
        for q in quic {
            if let Some(addr) = q.local_addr() {
                tracing::info!(%addr, flag = q.flag, "HTTP/3 (QUIC) listening");
            }
            endpoints.push(q.endpoint.clone());
            loops.push(tokio::spawn(h3::accept_loop(
                q.endpoint,
                Arc::clone(&shared),
                Arc::clone(&semaphore),
                Arc::clone(&h3_settings),
            )));
        }
        let admin = admin.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics, /healthz and /readyz listening");
            }
            tokio::spawn(admin::serve(
                listener,
                Arc::clone(&shared),
                Arc::clone(&site),
            ))
        });
        shutdown.await;
        shared.draining.store(true, Ordering::Relaxed);
        if !config.drain_delay.is_zero() {
            tracing::info!(
                drain_delay = ?config.drain_delay,
                "draining: /readyz answers 503; still accepting until the drain delay ends"
            );
            tokio::time::sleep(config.drain_delay).await;
        }
        let open_at_start = shared.metrics.snapshot().connections_open;
        shared.tokens.graceful.cancel();
        for l in loops {
            let _ = l.await;
        }
        shared.tracker.close();
        let forced = tokio::time::timeout(config.shutdown_timeout, shared.tracker.wait())
            .await
            .is_err();
        if forced {
            shared.tokens.force.cancel();
            // Closing tasks get their linger time to write close_notify.
            let _ = tokio::time::timeout(
                io::LINGER + Duration::from_millis(500),
                shared.tracker.wait(),
            )
            .await;
        }
        // The QUIC endpoints send the connections' CONNECTION_CLOSE and answer their
        // last packets (a short drain of three PTOs) before they go.
        for endpoint in endpoints {
            let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
            endpoint.close(0u32.into(), b"");
        }
        if let Some(admin) = admin {
            admin.abort();
        }
        let end = shared.metrics.snapshot();
        end.log();
        let left = end.connections_open;
        tracing::info!(
            drained = open_at_start.saturating_sub(left),
            forced,
            open_at_start,
            "shutdown complete"
        );
        Ok(ShutdownSummary {
            open_at_start,
            forced,
        })
    }

    /// Counters now (a convenience over [`Server::metrics`]).
    #[must_use]
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }
}

/// Binds one `--listen` address and, with `quic` (HTTP/3 on), the same address and port
/// on UDP. When the port is 0 (tests, embedders) the kernel picks the TCP port, which may
/// be taken on UDP: then both are bound again, up to 8 times.
fn bind_pair(
    addr: SocketAddr,
    reuse: bool,
    quic: Option<&Arc<rustls::ServerConfig>>,
    settings: &h3::Settings,
) -> Result<(TcpListener, Option<h3::Endpoint>)> {
    let mut tries = 0;
    loop {
        let tcp = listen::bind(addr, "--listen", reuse)?;
        let Some(tls) = quic else {
            return Ok((tcp, None));
        };
        let port = tcp.local_addr().map_or(addr.port(), |a| a.port());
        let udp_addr = SocketAddr::new(addr.ip(), port);
        match h3::Endpoint::bind(udp_addr, "--listen", reuse, Arc::clone(tls), settings) {
            Ok(udp) => return Ok((tcp, Some(udp))),
            Err(Error::Bind { source, .. })
                if addr.port() == 0
                    && tries < 8
                    && source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Accepts and spawns; never waits on a client. At the connection cap it waits for a slot
/// (clients queue in the kernel backlog). Accept errors such as EMFILE are logged and
/// retried after a pause, never fatal.
async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    shared: Arc<Shared>,
    semaphore: Arc<Semaphore>,
) {
    let local = listener.local_addr().ok();
    loop {
        // Wait for a free slot without holding it while accept() waits: HTTP/3 shares the
        // cap, and a slot held by an idle accept loop would refuse every QUIC client at
        // --max-connections 1 (and take one slot per listener from QUIC at any cap).
        tokio::select! {
            p = semaphore.acquire() => match p { Ok(p) => drop(p), Err(_) => return },
            () = shared.tokens.graceful.cancelled() => return,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shared.tokens.graceful.cancelled() => return,
        };
        // The slot may have gone to a QUIC client meanwhile: then this connection waits
        // for the next one (it was already queued in the backlog). A connection once
        // accepted is always served, even when shutdown begins now: dropping it would close
        // a client that the kernel already handed to this process (a restart behind
        // SO_REUSEPORT would fail it: its ClientHello meets a FIN). Shutdown while waiting
        // for a slot serves it without one: at most one over the cap per listener, and only
        // while the process is ending.
        let permit = tokio::select! {
            biased;
            p = Arc::clone(&semaphore).acquire_owned() => p.ok(),
            () = shared.tokens.graceful.cancelled() => None,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; pausing 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // The listener's address (a wildcard one is resolved per connection where needed).
        let local = local.unwrap_or(peer);
        let shared2 = Arc::clone(&shared);
        Metrics::inc(&shared.metrics.connections_total);
        shared
            .metrics
            .connections_open
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        shared.tracker.spawn(async move {
            let task = std::panic::AssertUnwindSafe(connection::handle(tcp, peer, local, Arc::clone(&shared2), kind));
            if let Err(panic) = futures_util::FutureExt::catch_unwind(task).await {
                let what = panic.downcast_ref::<&str>().map(ToString::to_string).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_default();
                Metrics::inc(&shared2.metrics.connection_panics);
                tracing::error!(%peer, panic = %what, "connection task panicked (a bug); connection closed, server continues");
            }
            shared2.metrics.connections_open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(permit);
        });
    }
}
