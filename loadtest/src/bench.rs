//! Fixed-concurrency modes: `bench` (keep-alive requests to one URL over HTTP/1.1, HTTP/2
//! or HTTP/3) and `handshake` (a new TLS or QUIC connection per request, with or without
//! resumption).

use crate::net::{self, KindConfigs, Proto, Target, TlsKind};
use crate::report::Stats;
use crate::site::Site;
use crate::storm;
use rustls::RootCertStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Shared settings of both modes.
pub struct Options {
    /// The server.
    pub target: Target,
    /// The path requested.
    pub path: String,
    /// Trust anchors.
    pub roots: Arc<RootCertStore>,
    /// Files to verify bodies against, when given.
    pub site: Option<Arc<Site>>,
    /// How long to run.
    pub duration: Duration,
    /// Stop after this many requests (all workers together).
    pub max_requests: Option<u64>,
    /// `accept-encoding` sent.
    pub accept_encoding: Option<String>,
    /// Per request / connect deadline.
    pub timeout: Duration,
}

struct Budget {
    deadline: Instant,
    max: Option<u64>,
    taken: AtomicU64,
}

impl Budget {
    fn take(&self) -> bool {
        Instant::now() < self.deadline
            && self
                .max
                .is_none_or(|m| self.taken.fetch_add(1, Ordering::Relaxed) < m)
    }
}

async fn one(req: &mut net::Requester, opts: &Options, stats: &Stats) -> bool {
    let start = Instant::now();
    let r = req
        .get(
            &opts.target,
            &opts.path,
            opts.accept_encoding.as_deref(),
            opts.timeout,
            &|_| {},
        )
        .await;
    let r = r.and_then(|resp| {
        if let Some(site) = &opts.site {
            storm::verify(site, &opts.path, &resp)?;
        } else if !resp.status.is_success() {
            return Err(crate::classify::Failure::new(
                format!("unexpected_status:{}", resp.status.as_u16()),
                format!("{}: status {}", opts.path, resp.status),
            ));
        }
        Ok(resp.body.len())
    });
    match r {
        Ok(n) => {
            stats.request(start.elapsed(), n);
            true
        }
        Err(f) => {
            stats.error(&f);
            false
        }
    }
}

/// Sends requests on one requester until the budget is spent; false at the first failure.
async fn until_spent(
    req: &mut net::Requester,
    opts: &Options,
    stats: &Stats,
    budget: &Budget,
) -> bool {
    while budget.take() {
        if !one(req, opts, stats).await {
            return false;
        }
    }
    true
}

/// Keep-alive load: `connections` connections, `streams` concurrent requests on each
/// (HTTP/2; HTTP/1.1 uses one).
pub async fn bench(
    opts: Arc<Options>,
    stats: Arc<Stats>,
    connections: usize,
    streams: usize,
    proto: Proto,
) {
    let budget = Arc::new(Budget {
        deadline: Instant::now() + opts.duration,
        max: opts.max_requests,
        taken: AtomicU64::new(0),
    });
    let configs = KindConfigs::new(&opts.roots, TlsKind::Full13);
    let mut conns = JoinSet::new();
    for _ in 0..connections {
        let (opts, stats, budget, configs) = (
            Arc::clone(&opts),
            Arc::clone(&stats),
            Arc::clone(&budget),
            configs.clone(),
        );
        conns.spawn(async move {
            while Instant::now() < budget.deadline {
                let mut conn = match net::connect(
                    &opts.target,
                    &configs,
                    TlsKind::Full13,
                    proto,
                    opts.timeout,
                )
                .await
                {
                    Ok(c) => c,
                    Err(f) => {
                        stats.error(&f);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                stats.handshake(&conn.handshake);
                let ok = if conn.handshake.proto.multiplexed() {
                    let mut workers = JoinSet::new();
                    for mut req in (0..streams.max(1)).filter_map(|_| conn.stream()) {
                        let (opts, stats, budget) =
                            (Arc::clone(&opts), Arc::clone(&stats), Arc::clone(&budget));
                        workers.spawn(async move {
                            until_spent(&mut req, &opts, &stats, &budget).await
                        });
                    }
                    let mut ok = true;
                    while let Some(r) = workers.join_next().await {
                        ok &= r.unwrap_or(false);
                    }
                    ok
                } else {
                    until_spent(&mut conn.req, &opts, &stats, &budget).await
                };
                if ok {
                    let _ = conn.close(opts.timeout).await;
                    return;
                }
                // A failed request: a new connection, as a load tool would.
                conn.abort(false);
            }
        });
    }
    while conns.join_next().await.is_some() {}
}

/// Handshake load: `concurrency` workers, each opening a new connection per request.
pub async fn handshakes(
    opts: Arc<Options>,
    stats: Arc<Stats>,
    concurrency: usize,
    kind: TlsKind,
    proto: Proto,
    offer: net::Offer,
) {
    let budget = Arc::new(Budget {
        deadline: Instant::now() + opts.duration,
        max: opts.max_requests,
        taken: AtomicU64::new(0),
    });
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (opts, stats, budget) = (Arc::clone(&opts), Arc::clone(&stats), Arc::clone(&budget));
        // One session store per worker, as one client would have.
        let configs = KindConfigs::offering(&opts.roots, kind, offer);
        workers.spawn(async move {
            while budget.take() {
                match net::connect(&opts.target, &configs, kind, proto, opts.timeout).await {
                    Ok(mut conn) => {
                        stats.handshake(&conn.handshake);
                        if one(&mut conn.req, &opts, &stats).await {
                            if let Err(f) = conn.close(opts.timeout).await {
                                stats.error(&f);
                            }
                        } else {
                            conn.abort(false);
                        }
                    }
                    Err(f) => {
                        stats.error(&f);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// Idle load: opens `connections` TLS connections (one request each, so the session is
/// fully set up), holds them open for `hold`, then closes them cleanly. Used to measure a
/// server's memory per idle keep-alive connection.
pub async fn idle(
    opts: Arc<Options>,
    stats: Arc<Stats>,
    connections: usize,
    hold: Duration,
    proto: Proto,
) {
    let configs = KindConfigs::new(&opts.roots, TlsKind::Tls13);
    let open = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let (opts, stats, configs, open) = (
            Arc::clone(&opts),
            Arc::clone(&stats),
            configs.clone(),
            Arc::clone(&open),
        );
        tasks.spawn(async move {
            // At most 64 handshakes at once, so that a listen backlog never overflows.
            let permit = open.acquire_owned().await.ok()?;
            let mut conn =
                match net::connect(&opts.target, &configs, TlsKind::Tls13, proto, opts.timeout)
                    .await
                {
                    Ok(c) => c,
                    Err(f) => {
                        stats.error(&f);
                        return None;
                    }
                };
            stats.handshake(&conn.handshake);
            let ok = one(&mut conn.req, &opts, &stats).await;
            drop(permit);
            ok.then_some(conn)
        });
    }
    let mut held = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(c)) = r {
            held.push(c);
        }
    }
    eprintln!(
        "loadtest idle: {} connections open; holding {hold:?}",
        held.len()
    );
    tokio::time::sleep(hold).await;
    let mut closing = JoinSet::new();
    for c in held {
        let t = opts.timeout;
        closing.spawn(async move { c.close(t).await });
    }
    while closing.join_next().await.is_some() {}
}
