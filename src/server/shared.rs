//! What every connection task shares and obeys: [`Shared`] (the TLS configurations, the
//! app, metrics, shutdown tokens, limits), [`Limits`] and the listener [`Kind`]. Made once
//! by `Server::bind` (server/mod.rs); the connection code of every transport reads it, and
//! nothing here calls into them.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use super::alt_svc::AltSvc;
use super::shutdown::ShutdownTokens;
use crate::acme::challenge::Challenges;
use crate::app::AssetService;
use crate::config::{Cidr, PlaintextMode};
use crate::telemetry::{Metrics, RateLimit};
use crate::tls::{self, ticket::TicketKeys, CertResolver};

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// HTTPS (plaintext requests get the plaintext answer).
    Tls,
    /// The `--http-listen` port: every request is redirected.
    Redirect,
}
/// Limits and deadlines every connection obeys.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) handshake_timeout: Duration,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_header_size: usize,
    pub(crate) max_headers: usize,
    pub(crate) h2_max_streams: u32,
    pub(crate) plaintext: PlaintextMode,
}

/// State shared by all connection tasks.
pub(crate) struct Shared {
    pub(crate) tls: tls::ServerConfigs,
    pub(crate) resolver: Arc<CertResolver>,
    pub(crate) ticket_keys: Arc<TicketKeys>,
    pub(crate) app: AssetService,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) tokens: ShutdownTokens,
    pub(crate) tracker: TaskTracker,
    pub(crate) limits: Limits,
    pub(crate) https_port: u16,
    /// The `Alt-Svc` header for each HTTPS listener (empty with `--no-http3`).
    pub(crate) alt_svc: AltSvc,
    pub(crate) warn_limit: RateLimit,
    /// One access-log line per request.
    pub(crate) access_log: bool,
    /// Set when the shutdown signal arrives: /readyz answers 503 from then on.
    pub(crate) draining: AtomicBool,
    /// With `--proxy-protocol`: the `--trusted-proxy` ranges, whose connections must start
    /// with a PROXY header (server/proxy.rs). `None`: PROXY headers are not read.
    pub(crate) trusted_proxies: Option<Vec<Cidr>>,
    /// File bytes read for responses and not yet sent, all connections together (each
    /// connection has its own share of it, app/budget.rs).
    pub(crate) send_pool: crate::app::SendPool,
    /// With `--acme`: the pending challenge answers (acme/challenge.rs), answered by the
    /// handshake (tls-alpn-01) and the cleartext listener (http-01).
    pub(crate) acme_challenges: Option<Arc<Challenges>>,
}
