//! The per-connection service around the shared asset service: the protocol rules a
//! request must meet first (server/request_check.rs), the in-flight count the deadlines
//! need, and each response's metrics and access-log line, recorded when its body ends.
//! It knows no transport: any request body ([`RequestBody`]) and no TLS type.
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

use http::header::{HeaderValue, ALT_SVC, CONNECTION};

use super::io::{ConnState, InFlight};
use super::request_check::{self, Verdict, DRAIN_LIMIT};
use super::shared::Shared;
use crate::app::{AssetService, Body, ResponseFuture};
use crate::protocol::Protocol;
use crate::telemetry::{Metrics, Rejection};

/// The per-connection hyper service: checks the protocol rules, counts requests in flight
/// (for the deadlines) around the shared [`AssetService`], and records each response when
/// its body ends (metrics, and the access log when on).
#[derive(Clone)]
pub(crate) struct ConnService {
    pub(crate) app: AssetService,
    pub(crate) state: Arc<ConnState>,
    pub(crate) shared: Arc<Shared>,
    /// The client (the TCP or UDP peer, or the address a trusted proxy's header gave).
    pub(crate) peer: SocketAddr,
    pub(crate) protocol: Protocol,
    /// The connection as the access log describes it; None when the access log is off.
    pub(crate) access: Option<Arc<ConnInfo>>,
    /// `Alt-Svc` advertising HTTP/3, added to every response that has none (HTTP/1.1 and
    /// HTTP/2 connections while HTTP/3 is on).
    pub(crate) alt_svc: Option<HeaderValue>,
}

/// What the access log says about a request's connection.
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    pub(crate) tls: &'static str,
    /// Whether the TLS session resumed; None where the transport does not say (QUIC).
    pub(crate) resumed: Option<bool>,
    pub(crate) sni: Option<String>,
}

/// Any request body a protocol hands over (hyper's `Incoming` for HTTP/1.1 and HTTP/2):
/// the service reads one only to drain it.
pub(crate) trait RequestBody:
    http_body::Body<Error = Self::Fault> + Send + Unpin + 'static
{
    /// The body's error.
    type Fault: std::error::Error + Send + Sync + 'static;
}

impl<B> RequestBody for B
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Fault = B::Error;
}

impl<B: RequestBody> hyper::service::Service<http::Request<B>> for ConnService {
    type Response = http::Response<Body>;
    type Error = h2::Error;
    type Future = ConnFuture;

    fn call(&self, req: http::Request<B>) -> ConnFuture {
        self.state.request_started();
        let metrics = &self.shared.metrics;
        Metrics::inc(match self.protocol {
            Protocol::Http1 => &metrics.requests_h1,
            Protocol::Http2 => &metrics.requests_h2,
            Protocol::Http3 => &metrics.requests_h3,
        });
        let verdict = request_check::check(&req, self.protocol);
        let access = self.access.as_ref().map(|conn| AccessLine {
            conn: Arc::clone(conn),
            method: req.method().clone(),
            target: req.uri().clone(),
            version: req.version(),
        });
        let done = RequestDone {
            in_flight: InFlight(Arc::clone(&self.state)),
            metrics: Arc::clone(metrics),
            protocol: self.protocol,
            start: std::time::Instant::now(),
            status: 0,
            len: 0,
            access,
        };
        let step = match verdict {
            Verdict::Serve => Step::App(tower::Service::call(&mut self.app.clone(), req)),
            Verdict::Refuse(why) => {
                self.refused(why);
                if self.protocol.is_multiplexed() {
                    Step::Reset(Some(h2::Reason::PROTOCOL_ERROR.into()))
                } else {
                    Step::App(ResponseFuture::Ready(Some(self.refusal_answer(why))))
                }
            }
            Verdict::Drain => Step::Drain(Box::pin(drain_then_serve(self.clone(), req))),
        };
        ConnFuture {
            step,
            done: Some(done),
            alt_svc: self.alt_svc.clone(),
        }
    }
}

impl ConnService {
    /// Counts a refused request and logs it (rate-limited) with the peer.
    fn refused(&self, why: Rejection) {
        self.shared.metrics.rejected(why);
        if let Some(suppressed) = self.shared.warn_limit.allow() {
            tracing::warn!(peer = %self.peer, protocol = %self.protocol, reason = why.label(), suppressed, "request refused");
        }
    }

    /// The answer to a refused request that gets one (HTTP/1, and an HTTP/2 body past the
    /// bound): the status and a line saying why; on HTTP/1 with `Connection: close`, which
    /// makes hyper close after it.
    fn refusal_answer(&self, why: Rejection) -> http::Response<Body> {
        let (status, msg) = request_check::answer(why);
        let mut r = crate::app::text(status, msg, &self.app.site().options().build.security);
        if self.protocol == Protocol::Http1 {
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// A future that resolves to a response or to the h2 error to reset the stream with.
type Answer = Pin<Box<dyn Future<Output = Result<http::Response<Body>, h2::Error>> + Send>>;

/// Reads an HTTP/2 request body to its end, discarding it, then calls the app; a body past
/// [`DRAIN_LIMIT`] gets 413 (hyper then resets the rest with NO_ERROR). An error while
/// reading becomes the stream's reset: h2 has already reset the stream for its own errors
/// (PROTOCOL_ERROR, FLOW_CONTROL_ERROR), and a stream the client reset stays reset.
async fn drain_then_serve<B: RequestBody>(
    svc: ConnService,
    req: http::Request<B>,
) -> Result<http::Response<Body>, h2::Error> {
    let (parts, mut body) = req.into_parts();
    let mut read = 0u64;
    loop {
        let frame =
            std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await;
        match frame {
            None => break,
            Some(Ok(frame)) => {
                read += frame
                    .data_ref()
                    .map_or(0, |d| bytes::Buf::remaining(d) as u64);
                if read > DRAIN_LIMIT {
                    svc.refused(Rejection::BodyTooLarge);
                    return Ok(svc.refusal_answer(Rejection::BodyTooLarge));
                }
            }
            Some(Err(e)) => {
                let (reason, found_by_h2) = stream_reason(&e);
                if found_by_h2 {
                    svc.refused(Rejection::StreamError);
                }
                return Err(reason.into());
            }
        }
    }
    drop(body);
    let req = http::Request::from_parts(parts, ());
    Ok(tower::Service::call(&mut svc.app.clone(), req)
        .await
        .unwrap_or_else(|never| match never {}))
}

/// The reason of the h2 error in a body error's source chain (INTERNAL_ERROR when there is
/// none, as hyper itself would), and whether h2 found the fault (rather than the client
/// resetting the stream or the connection failing).
fn stream_reason(e: &(dyn std::error::Error + 'static)) -> (h2::Reason, bool) {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h2e) = err.downcast_ref::<h2::Error>() {
            let reason = h2e.reason().unwrap_or(h2::Reason::INTERNAL_ERROR);
            return (reason, h2e.is_library());
        }
        cur = err.source();
    }
    (h2::Reason::INTERNAL_ERROR, false)
}

/// What a request's future is doing.
enum Step {
    /// The app is answering (or a refusal's 400 is ready).
    App(ResponseFuture),
    /// HTTP/2 with a body: reading it before the app answers (rare, so boxed).
    Drain(Answer),
    /// HTTP/2 refused: the stream is reset with this.
    Reset(Option<h2::Error>),
}

pub(crate) struct ConnFuture {
    step: Step,
    done: Option<RequestDone>,
    alt_svc: Option<HeaderValue>,
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
            Step::Drain(inner) => std::task::ready!(inner.as_mut().poll(cx)),
            Step::Reset(e) => Err(e
                .take()
                .unwrap_or_else(|| h2::Reason::INTERNAL_ERROR.into())),
        };
        Poll::Ready(
            res.map(|mut r| {
                if let Some(alt_svc) = this.alt_svc.take() {
                    // Not `entry().or_insert()`: `entry` reserves a slot before it looks,
                    // and a cloned map has none spare, so it reallocated every response
                    // (HTTP/2 small files -10%). The asset table's headers already carry
                    // the value where listeners share it (server/alt_svc.rs).
                    if !r.headers().contains_key(ALT_SVC) {
                        r.headers_mut().insert(ALT_SVC, alt_svc);
                    }
                }
                r
            })
            .map(|r| match this.done.take() {
                Some(mut done) => {
                    done.status = r.status().as_u16();
                    done.len = r.body().remaining();
                    // The budget lives in the connection's state, which the request holds.
                    let r = match done.in_flight.0.send_budget.as_ref() {
                        Some(budget) => r.map(|b| b.with_budget(budget)),
                        None => r,
                    };
                    r.map(|b| b.with_guard(done))
                }
                None => r,
            }),
        )
    }
}

/// Rides on a response body; when the body ends (or is dropped), counts the response and
/// writes the access line. Dropping it ends the request's in-flight count.
struct RequestDone {
    /// Ends the in-flight count when dropped; its state also holds the send budget.
    in_flight: InFlight,
    metrics: Arc<Metrics>,
    protocol: Protocol,
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
        self.metrics
            .response(self.protocol, self.status, bytes, elapsed);
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
                protocol = %version_label(a.version),
                tls = a.conn.tls,
                // None (QUIC: not known) leaves the field out.
                resumed = a.conn.resumed,
                sni = a.conn.sni.as_deref().unwrap_or("-"),
                "access"
            );
        }
    }
}

/// The access log's `protocol` field: `HTTP/1.1`, `HTTP/2.0` as before HTTP/3 came, and
/// `h3` for HTTP/3.
fn version_label(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "h3",
        _ => "HTTP/1.1",
    }
}
