//! The per-connection hyper service around the shared asset service: the protocol rules a
//! request must meet first (server/request_check.rs), the in-flight count the deadlines
//! need, and each response's metrics and access-log line, recorded when its body ends.
//!
//! Its error is an `h2::Error` because hyper's HTTP/2 server resets a stream whose service
//! future fails with the h2 reason found in the error's source chain
//! (`hyper::Error::h2_reason`); that is how a malformed HTTP/2 request gets RST_STREAM
//! PROTOCOL_ERROR and no response. HTTP/1 never gets an error (hyper would close the
//! connection without an answer): it gets a 400 with `Connection: close`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderValue, CONNECTION};
use hyper::body::Incoming;

use super::io::{ConnState, InFlight};
use super::request_check::{self, Verdict};
use super::Shared;
use crate::app::{AssetService, Body, ResponseFuture};
use crate::telemetry::{Metrics, Rejection};

/// The per-connection hyper service: checks the protocol rules, counts requests in flight
/// (for the deadlines) around the shared [`AssetService`], and records each response when
/// its body ends (metrics, and the access log when on).
#[derive(Clone)]
pub(super) struct ConnService {
    pub(super) app: AssetService,
    pub(super) state: Arc<ConnState>,
    pub(super) shared: Arc<Shared>,
    /// The client (the TCP peer, or the address a trusted proxy's header gave).
    pub(super) peer: SocketAddr,
    pub(super) h2: bool,
    /// The connection as the access log describes it; None when the access log is off.
    pub(super) access: Option<Arc<ConnInfo>>,
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
    type Error = h2::Error;
    type Future = ConnFuture;

    fn call(&self, req: http::Request<Incoming>) -> ConnFuture {
        self.state.request_started();
        let metrics = &self.shared.metrics;
        Metrics::inc(if self.h2 {
            &metrics.requests_h2
        } else {
            &metrics.requests_h1
        });
        let verdict = request_check::check(&req, self.h2);
        let access = self.access.as_ref().map(|conn| AccessLine {
            conn: Arc::clone(conn),
            method: req.method().clone(),
            target: req.uri().clone(),
            version: req.version(),
        });
        let done = RequestDone {
            _in_flight: InFlight(Arc::clone(&self.state)),
            metrics: Arc::clone(metrics),
            h2: self.h2,
            start: std::time::Instant::now(),
            status: 0,
            len: 0,
            access,
        };
        let step = match verdict {
            Verdict::Serve => Step::App(tower::Service::call(&mut self.app.clone(), req)),
            Verdict::Refuse(why) => {
                self.refused(why);
                if self.h2 {
                    Step::Reset(Some(h2::Reason::PROTOCOL_ERROR.into()))
                } else {
                    Step::App(ResponseFuture::Ready(Some(self.refusal_answer(why))))
                }
            }
        };
        ConnFuture {
            step,
            done: Some(done),
        }
    }
}

impl ConnService {
    /// Counts a refused request and logs it (rate-limited) with the peer.
    fn refused(&self, why: Rejection) {
        self.shared.metrics.rejected(why);
        if let Some(suppressed) = self.shared.warn_limit.allow() {
            tracing::warn!(peer = %self.peer, h2 = self.h2, reason = why.label(), suppressed, "request refused");
        }
    }

    /// The answer to a refused HTTP/1 request: the status and a line saying why, with
    /// `Connection: close`, which makes hyper close after it.
    fn refusal_answer(&self, why: Rejection) -> http::Response<Body> {
        let (status, msg) = request_check::answer(why);
        let mut r = crate::app::text(status, msg, &self.app.site().options().build.security);
        if !self.h2 {
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// What a request's future is doing.
enum Step {
    /// The app is answering (or a refusal's 400 is ready).
    App(ResponseFuture),
    /// HTTP/2 refused: the stream is reset with this.
    Reset(Option<h2::Error>),
}

pub(super) struct ConnFuture {
    step: Step,
    done: Option<RequestDone>,
}

impl Future for ConnFuture {
    type Output = Result<http::Response<Body>, h2::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let res = match &mut this.step {
            Step::App(inner) => match std::task::ready!(Pin::new(inner).poll(cx)) {
                Ok(r) => Ok(r),
                Err(never) => match never {},
            },
            Step::Reset(e) => Err(e
                .take()
                .unwrap_or_else(|| h2::Reason::INTERNAL_ERROR.into())),
        };
        Poll::Ready(res.map(|r| match this.done.take() {
            Some(mut done) => {
                done.status = r.status().as_u16();
                done.len = r.body().remaining();
                r.map(|b| b.with_guard(done))
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
