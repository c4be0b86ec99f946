//! The refresh storm: virtual users loop browser-like page loads (index.html, then every
//! asset in parallel), verify every byte, and abandon a share of loads mid-body the way a
//! browser does on F5. Over HTTP/3 a cut either cancels the load's request streams
//! (STOP_SENDING H3_REQUEST_CANCELLED, then the connection closes with H3_NO_ERROR) or, for
//! the `--rst-share`, drops the connection at once (CONNECTION_CLOSE H3_REQUEST_CANCELLED).

use crate::classify::Failure;
use crate::net::{self, Conn, KindConfigs, Proto, Requester, Target, TlsKind};
use crate::report::Stats;
use crate::site::{Site, DEEP_ROUTES};
use rustls::RootCertStore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};

/// Connections per page load over HTTP/1.1, as browsers allow per host.
pub const H1_LANES: usize = 6;

/// What the storm does.
pub struct Options {
    /// The server.
    pub target: Target,
    /// The page path (`/` by default).
    pub path: String,
    /// The expected files.
    pub site: Arc<Site>,
    /// Trust anchors.
    pub roots: Arc<RootCertStore>,
    /// Concurrent virtual users.
    pub users: usize,
    /// How long to run.
    pub duration: Duration,
    /// Stop after this many page loads (all users together).
    pub max_page_loads: Option<u64>,
    /// Share of page loads abandoned mid-body.
    pub abort_share: f64,
    /// Share of abandoned connections closed with a TCP RST.
    pub rst_share: f64,
    /// Share of page loads that reuse the previous load's keep-alive connections.
    pub reuse: f64,
    /// HTTP versions to pick from.
    pub protos: Vec<Proto>,
    /// TLS kinds with weights.
    pub kinds: Vec<(TlsKind, u32)>,
    /// Per request / connect deadline.
    pub timeout: Duration,
}

/// Runs the storm to its end; the stats hold the outcome.
pub async fn run(opts: Arc<Options>, stats: Arc<Stats>) {
    let deadline = Instant::now() + opts.duration;
    let started = Arc::new(AtomicU64::new(0));
    let mut users = JoinSet::new();
    for id in 0..opts.users {
        let (opts, stats, started) = (Arc::clone(&opts), Arc::clone(&stats), Arc::clone(&started));
        users.spawn(async move {
            let mut user = User::new(id as u64, &opts);
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                if let Some(max) = opts.max_page_loads {
                    if started.fetch_add(1, Ordering::Relaxed) >= max {
                        break;
                    }
                }
                if !user.page_load(&opts, &stats).await {
                    // A failed load: do not spin on a broken server.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            user.close_pool(&opts, &stats).await;
        });
    }
    while users.join_next().await.is_some() {}
}

/// An open set of connections kept between page loads (HTTP keep-alive).
struct Pool {
    proto: Proto,
    conns: Vec<Conn>,
}

struct User {
    rng: fastrand::Rng,
    configs: HashMap<TlsKind, KindConfigs>,
    accept_encoding: Option<&'static str>,
    pool: Option<Pool>,
}

/// The connections a page load opened, so that an abort can cut them all.
#[derive(Default)]
struct Killers(Mutex<Vec<(AbortHandle, Arc<AtomicBool>, bool)>>);

impl Killers {
    fn add(&self, c: &Conn) {
        if let Ok(mut g) = self.0.lock() {
            g.push(c.killer());
        }
    }

    /// Cuts every connection; returns (cut, with RST).
    fn cut(&self, rng: &mut fastrand::Rng, rst_share: f64) -> (u64, u64) {
        let Ok(mut g) = self.0.lock() else {
            return (0, 0);
        };
        let (mut n, mut rst) = (0, 0);
        for (abort, flag, quic) in g.drain(..) {
            if abort.is_finished() {
                continue;
            }
            let reset = rng.f64() < rst_share;
            flag.store(reset, Ordering::Relaxed);
            if quic && !reset {
                // The request streams are cancelled when the load's tasks drop (quic.rs
                // `Cancel`); the connection closes just after, so that the resets go first.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    abort.abort();
                });
            } else {
                abort.abort();
            }
            n += 1;
            rst += u64::from(reset);
        }
        (n, rst)
    }
}

/// What one page load shares with its request tasks.
struct Load {
    opts: Arc<Options>,
    stats: Arc<Stats>,
    killers: Killers,
    accept_encoding: Option<&'static str>,
    received: AtomicU64,
    abort_at: Option<u64>,
    abort_now: Notify,
    inflight: AtomicU64,
    failed: AtomicBool,
    /// Set before this client cuts the load's connections: errors its request tasks see
    /// from then on (hyper reports a cut transfer as "connection closed before message
    /// completed") are the client's own doing, not the server's.
    cutting: AtomicBool,
}

impl Load {
    fn chunk(&self, n: usize) {
        let total = self.received.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if self.abort_at.is_some_and(|at| total >= at) {
            self.abort_now.notify_one();
        }
    }

    fn fail(&self, f: &Failure) {
        if self.cutting.load(Ordering::SeqCst) {
            return;
        }
        self.failed.store(true, Ordering::Relaxed);
        self.stats.error(f);
    }

    /// Cuts every connection of this load (request tasks on other threads may still be
    /// running until the load's task set is dropped); returns (cut, with RST).
    fn cut(&self, rng: &mut fastrand::Rng, rst_share: f64) -> (u64, u64) {
        self.cutting.store(true, Ordering::SeqCst);
        self.killers.cut(rng, rst_share)
    }

    async fn connect(&self, configs: &KindConfigs, kind: TlsKind, proto: Proto) -> Option<Conn> {
        match net::connect(&self.opts.target, configs, kind, proto, self.opts.timeout).await {
            Ok(c) => {
                self.killers.add(&c);
                self.stats.handshake(&c.handshake);
                Some(c)
            }
            Err(f) => {
                self.fail(&f);
                None
            }
        }
    }

    /// Fetches and verifies one URL; false when it failed (the failure is recorded). A
    /// request the server closed cleanly before answering ([`Failure::retry_safe`]: its
    /// shutdown or restart) is resent once on a new connection, as a browser does; that
    /// connection is left in `replacement` for the caller's next requests.
    async fn fetch(
        &self,
        req: &mut Requester,
        path: &str,
        again: &Again,
        replacement: &mut Option<Conn>,
    ) -> bool {
        let start = Instant::now();
        let failure = match self.attempt(req, path).await {
            Ok(len) => {
                self.stats.request(start.elapsed(), len);
                return true;
            }
            Err(f) if f.retry_safe && !self.cutting.load(Ordering::SeqCst) => {
                Stats::inc(&self.stats.requests_resent);
                let Some(mut conn) = self.connect(&again.configs, again.kind, again.proto).await
                else {
                    return false;
                };
                match self.attempt(&mut conn.req, path).await {
                    Ok(len) => {
                        self.stats.request(start.elapsed(), len);
                        *replacement = Some(conn);
                        return true;
                    }
                    Err(f) => f,
                }
            }
            Err(f) => f,
        };
        self.fail(&failure);
        false
    }

    /// One request and its verification; the body length when all is well.
    async fn attempt(&self, req: &mut Requester, path: &str) -> Result<usize, Failure> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        let r = req
            .get(
                &self.opts.target,
                path,
                self.accept_encoding,
                self.opts.timeout,
                &|n| self.chunk(n),
            )
            .await;
        self.inflight.fetch_sub(1, Ordering::Relaxed);
        r.and_then(|resp| verify(&self.opts.site, path, &resp).map(|()| resp.body.len()))
    }
}

/// How to open another connection like the page load's own.
#[derive(Clone)]
struct Again {
    configs: KindConfigs,
    kind: TlsKind,
    proto: Proto,
}

/// Checks status and body against the files.
pub fn verify(site: &Site, path: &str, resp: &net::Response) -> Result<(), Failure> {
    if resp.status != http::StatusCode::OK {
        return Err(Failure::new(
            format!("unexpected_status:{}", resp.status.as_u16()),
            format!("{path}: status {}", resp.status),
        ));
    }
    let Some(expected) = site.expected(path) else {
        return Err(Failure::new(
            "other",
            format!("{path}: not a file under --root"),
        ));
    };
    let body = net::decode(resp.encoding.as_deref(), &resp.body)
        .map_err(|e| Failure::new("bad_encoding", format!("{path}: {e}")))?;
    if body != expected.as_ref() {
        let at = body
            .iter()
            .zip(expected.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(body.len().min(expected.len()));
        return Err(Failure::new(
            "body_mismatch",
            format!(
                "{path}: {} bytes (content-encoding {}) decode to {} bytes, expected {}; first difference at byte {at}",
                resp.body.len(),
                resp.encoding.as_deref().unwrap_or("none"),
                body.len(),
                expected.len()
            ),
        ));
    }
    Ok(())
}

impl User {
    fn new(id: u64, opts: &Options) -> Self {
        let mut rng = fastrand::Rng::with_seed(0x5eed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let accept_encoding = match rng.u8(0..5) {
            0 => None,
            1 => Some("gzip, deflate"),
            _ => Some("gzip, deflate, br, zstd"),
        };
        let configs = opts
            .kinds
            .iter()
            .map(|(k, _)| (*k, KindConfigs::new(&opts.roots, *k)))
            .collect();
        Self {
            rng,
            configs,
            accept_encoding,
            pool: None,
        }
    }

    /// A kind by weight; for HTTP/3 only among the TLS 1.3 kinds (tls13 when none).
    fn pick_kind(&mut self, opts: &Options, proto: Proto) -> TlsKind {
        let usable = |k: &TlsKind| proto != Proto::H3 || k.quic();
        let total: u32 = opts
            .kinds
            .iter()
            .filter(|(k, _)| usable(k))
            .map(|(_, w)| w)
            .sum();
        if total == 0 {
            return TlsKind::Tls13;
        }
        let mut x = self.rng.u32(0..total);
        for (k, w) in opts.kinds.iter().filter(|(k, _)| usable(k)) {
            if x < *w {
                return *k;
            }
            x -= w;
        }
        TlsKind::Tls13
    }

    async fn close_pool(&mut self, opts: &Options, stats: &Stats) {
        if let Some(pool) = self.pool.take() {
            for c in pool.conns {
                if let Err(f) = c.close(opts.timeout).await {
                    stats.error(&f);
                }
            }
        }
    }

    /// One page load; false when it failed.
    async fn page_load(&mut self, opts: &Arc<Options>, stats: &Arc<Stats>) -> bool {
        let mut proto = opts.protos[self.rng.usize(0..opts.protos.len())];
        let kind = self.pick_kind(opts, proto);
        let abort = self.rng.f64() < opts.abort_share;
        let route = if self.rng.u8(0..8) == 0 {
            DEEP_ROUTES[self.rng.usize(0..DEEP_ROUTES.len())].to_owned()
        } else {
            opts.path.clone()
        };
        let reuse = self.rng.f64() < opts.reuse;
        // Kinds that only HTTP/3 adds (tls13 as the fallback) get their configuration now.
        self.configs
            .entry(kind)
            .or_insert_with(|| KindConfigs::new(&opts.roots, kind));
        // tcp-ticket over HTTP/3 with no ticket from TCP: this load goes over HTTP/2 and
        // brings the tickets the next ones resume QUIC with.
        let pooled_h3 = reuse && self.pool.as_ref().is_some_and(|p| p.proto == Proto::H3);
        if proto == Proto::H3
            && kind == TlsKind::TcpTicket
            && !pooled_h3
            && !self.configs[&kind].quic().has_tcp_ticket(&opts.target.name)
        {
            proto = Proto::H2;
        }
        let mut conns = Vec::new();
        match self.pool.take() {
            Some(p) if reuse && p.proto == proto => {
                conns = p.conns.into_iter().filter(Conn::is_open).collect();
            }
            Some(p) => {
                for c in p.conns {
                    if let Err(f) = c.close(opts.timeout).await {
                        stats.error(&f);
                    }
                }
            }
            None => {}
        }
        let load = Arc::new(Load {
            opts: Arc::clone(opts),
            stats: Arc::clone(stats),
            killers: Killers::default(),
            accept_encoding: self.accept_encoding,
            received: AtomicU64::new(0),
            abort_at: abort.then(|| self.rng.u64(0..opts.site.page_bytes().max(1))),
            abort_now: Notify::new(),
            inflight: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            cutting: AtomicBool::new(false),
        });
        for c in &conns {
            load.killers.add(c);
        }
        let configs = self.configs[&kind].clone();
        let start = Instant::now();
        let work = fetch_page(Arc::clone(&load), configs, kind, proto, route, conns);
        tokio::pin!(work);
        let kept = tokio::select! {
            kept = &mut work => kept,
            () = load.abort_now.notified(), if abort => {
                let (n, rst) = load.cut(&mut self.rng, opts.rst_share);
                stats.conns_aborted.fetch_add(n, Ordering::Relaxed);
                stats.conns_reset.fetch_add(rst, Ordering::Relaxed);
                stats.requests_aborted.fetch_add(load.inflight.load(Ordering::Relaxed), Ordering::Relaxed);
                Stats::inc(&stats.page_loads_aborted);
                return !load.failed.load(Ordering::Relaxed);
            }
        };
        if load.failed.load(Ordering::Relaxed) {
            Stats::inc(&stats.page_loads_failed);
            // Whatever state they are in, these connections are not reused.
            load.cut(&mut self.rng, 0.0);
            return false;
        }
        stats.page(start.elapsed());
        self.pool = Some(Pool { proto, conns: kept });
        true
    }
}

/// index.html, then every asset in parallel: six connections (HTTP/1.1) or one (HTTP/2).
/// Returns the connections still usable for keep-alive.
async fn fetch_page(
    load: Arc<Load>,
    configs: KindConfigs,
    kind: TlsKind,
    proto: Proto,
    route: String,
    mut conns: Vec<Conn>,
) -> Vec<Conn> {
    let again = Again {
        configs: configs.clone(),
        kind,
        proto,
    };
    let mut first = match conns.pop() {
        Some(c) => c,
        None => match load.connect(&configs, kind, proto).await {
            Some(c) => c,
            None => return conns,
        },
    };
    let mut replacement = None;
    if !load
        .fetch(&mut first.req, &route, &again, &mut replacement)
        .await
    {
        return Vec::new();
    }
    if let Some(c) = replacement.take() {
        first = c;
    }
    let assets = load.opts.site.assets.clone();
    let mut tasks: JoinSet<Option<Conn>> = JoinSet::new();
    let mut kept = Vec::new();
    if first.handshake.proto.multiplexed() {
        for path in assets {
            if let Some(mut req) = first.stream() {
                let (load, again) = (Arc::clone(&load), again.clone());
                tasks.spawn(async move {
                    let mut replacement = None;
                    load.fetch(&mut req, &path, &again, &mut replacement).await;
                    if let Some(c) = replacement {
                        let _ = c.close(load.opts.timeout).await;
                    }
                    None
                });
            }
        }
        kept.push(first);
    } else {
        let lanes = H1_LANES.min(assets.len()).max(1);
        let mut spare = Some(first);
        for lane in 0..lanes {
            let mine: Vec<String> = assets.iter().skip(lane).step_by(lanes).cloned().collect();
            let conn = spare.take().or_else(|| conns.pop());
            let (load, again) = (Arc::clone(&load), again.clone());
            tasks.spawn(async move {
                let mut conn = match conn {
                    Some(c) => c,
                    None => load.connect(&again.configs, kind, proto).await?,
                };
                for path in &mine {
                    let mut replacement = None;
                    if !load
                        .fetch(&mut conn.req, path, &again, &mut replacement)
                        .await
                    {
                        return None;
                    }
                    if let Some(c) = replacement {
                        conn = c;
                    }
                }
                Some(conn)
            });
        }
        // Connections beyond the lanes needed are closed politely.
        for c in conns.drain(..) {
            let _ = c.close(load.opts.timeout).await;
        }
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(c)) = r {
            kept.push(c);
        }
    }
    kept
}
