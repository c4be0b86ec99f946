//! The per-connection hyper service around the shared asset service: the in-flight count
//! the deadlines need, and each response's metrics and access-log line, recorded when its
//! body ends.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::Incoming;

use super::io::{ConnState, InFlight};
use crate::app::{AssetService, Body, SendBudget};
use crate::telemetry::Metrics;

/// The per-connection hyper service: counts requests in flight (for the deadlines) around
/// the shared [`AssetService`], and records each response when its body ends (metrics, and
/// the access log when on).
#[derive(Clone)]
pub(super) struct ConnService {
    pub(super) app: AssetService,
    pub(super) state: Arc<ConnState>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) h2: bool,
    /// The connection as the access log describes it; None when the access log is off.
    pub(super) access: Option<Arc<ConnInfo>>,
    /// The connection's share of the file bytes read and not yet sent.
    pub(super) budget: Arc<SendBudget>,
}

/// What the access log says about a request's connection.
pub(super) struct ConnInfo {
    pub(super) peer: SocketAddr,
    pub(super) tls: &'static str,
    pub(super) resumed: bool,
    pub(super) sni: Option<String>,
}

impl hyper::service::Service<http::Request<Incoming>> for ConnService {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = ConnFuture;

    fn call(&self, req: http::Request<Incoming>) -> ConnFuture {
        self.state.request_started();
        Metrics::inc(if self.h2 {
            &self.metrics.requests_h2
        } else {
            &self.metrics.requests_h1
        });
        let access = self.access.as_ref().map(|conn| AccessLine {
            conn: Arc::clone(conn),
            method: req.method().clone(),
            target: req.uri().clone(),
            version: req.version(),
        });
        let done = RequestDone {
            _in_flight: InFlight(Arc::clone(&self.state)),
            metrics: Arc::clone(&self.metrics),
            h2: self.h2,
            start: std::time::Instant::now(),
            status: 0,
            len: 0,
            access,
        };
        let inner = tower::Service::call(&mut self.app.clone(), req);
        ConnFuture {
            inner,
            done: Some(done),
            budget: Arc::clone(&self.budget),
        }
    }
}

pub(super) struct ConnFuture {
    inner: crate::app::ResponseFuture,
    done: Option<RequestDone>,
    budget: Arc<SendBudget>,
}

impl Future for ConnFuture {
    type Output = Result<http::Response<Body>, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let res = std::task::ready!(Pin::new(&mut this.inner).poll(cx));
        Poll::Ready(res.map(|r| match this.done.take() {
            Some(mut done) => {
                done.status = r.status().as_u16();
                done.len = r.body().remaining();
                let budget = &this.budget;
                r.map(|b| b.with_guard(done).with_budget(budget))
            }
            None => r,
        }))
    }
}

/// Rides on a response body; when the body ends (or is dropped), counts the response and
/// writes the access line. Dropping it ends the request's in-flight count.
struct RequestDone {
    _in_flight: InFlight,
    metrics: Arc<Metrics>,
    h2: bool,
    start: std::time::Instant,
    status: u16,
    /// Body length at the start.
    len: u64,
    access: Option<AccessLine>,
}

struct AccessLine {
    conn: Arc<ConnInfo>,
    method: http::Method,
    target: http::Uri,
    version: http::Version,
}

impl crate::app::OnDone for RequestDone {
    fn done(self: Box<Self>, unsent: u64) {
        let elapsed = self.start.elapsed();
        let bytes = self.len.saturating_sub(unsent);
        self.metrics.response(self.h2, self.status, bytes, elapsed);
        if let Some(a) = &self.access {
            let path = a
                .target
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str);
            tracing::info!(
                target: crate::telemetry::ACCESS_TARGET,
                peer = %a.conn.peer,
                method = %a.method,
                path,
                status = self.status,
                bytes,
                complete = unsent == 0,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                protocol = ?a.version,
                tls = a.conn.tls,
                resumed = a.conn.resumed,
                sni = a.conn.sni.as_deref().unwrap_or("-"),
                "access"
            );
        }
    }
}
