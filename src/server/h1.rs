//! HTTP/1.1: hyper's http1 connection, run by the deadline driver (server/driver.rs);
//! between bursts of requests the connection parks (gives back hyper's buffers) and waits on
//! the TLS stream alone for the next request's first byte.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;

use super::driver::{drive, Ended, Io, NoStreams, Serve};
use super::io::ConnState;
use super::policy::{Policy, Timeouts};
use super::service::ConnService;
use super::shared::Shared;
use crate::telemetry::Metrics;

/// An idle HTTP/1.1 keep-alive connection gives back hyper's buffers (two of 8 KiB) and its
/// serving state after this long without a request, and waits on the TLS stream alone; the
/// next request gets new ones (nginx frees its request buffers the same way). Back-to-back
/// requests never park.
const PARK_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

type H1Conn = hyper::server::conn::http1::Connection<TokioIo<Io>, ConnService>;

/// An HTTP/1.1 connection that ends without shutting its stream down, giving the stream
/// back (and what hyper had read beyond the last request) so that it can park.
struct H1(Option<H1Conn>);

impl Future for H1 {
    type Output = Result<hyper::server::conn::http1::Parts<TokioIo<Io>, ConnService>, hyper::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Polled again after completion (drive never does): stays pending, never panics.
        let Some(conn) = self.0.as_mut() else {
            return Poll::Pending;
        };
        std::task::ready!(conn.poll_without_shutdown(cx))?;
        match self.0.take() {
            Some(conn) => Poll::Ready(Ok(conn.into_parts())),
            None => Poll::Pending,
        }
    }
}

impl Serve for H1 {
    type Done = hyper::server::conn::http1::Parts<TokioIo<Io>, ConnService>;
    type Error = hyper::Error;
    fn graceful_shutdown(mut self: Pin<&mut Self>) {
        if let Some(conn) = self.0.as_mut() {
            Pin::new(conn).graceful_shutdown();
        }
    }
}

/// hyper's request header count limit when none is set (`proto::h1::role`).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Serves HTTP/1.1 requests; between bursts of requests the connection parks (see
/// [`PARK_AFTER`]) until the next request's first byte, the idle timeout or shutdown.
pub(super) async fn serve(
    mut io: Io,
    svc: ConnService,
    state: &ConnState,
    shared: &Shared,
) -> Result<(), Ended> {
    let limits = &shared.limits;
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        // Deadlines are ours (ConnState): hyper's would also cut idle keep-alive.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_size.max(8192))
        .half_close(false);
    // hyper's default is the same limit on a stack array; an explicit one costs a SmallVec
    // filled element by element on every request head (1.4% of an HTTP/1.1 profile).
    if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
        b.max_headers(limits.max_headers);
    }
    let policy = Policy::new(Timeouts {
        idle: limits.idle_timeout,
        header: Some(limits.header_timeout),
        park_after: Some(PARK_AFTER),
    });
    loop {
        // Each round serves at least one request or parks on the socket; the budget makes
        // sure no sequence of rounds that never waits (bytes replayed from memory) can hold
        // the worker thread.
        tokio::task::coop::consume_budget().await;
        let conn = H1(Some(b.serve_connection(TokioIo::new(io), svc.clone())));
        let (parts, parked) =
            drive(Box::pin(conn), state, shared, policy, None::<&NoStreams>).await?;
        let hyper::server::conn::http1::Parts {
            io: back, read_buf, ..
        } = parts;
        io = back.into_inner();
        if !parked || shared.tokens.graceful.is_cancelled() {
            // hyper ended on its own (`Connection: close`, HTTP/1.0, the client's EOF) or
            // shutdown began: close (the close path sends close_notify).
            return Ok(());
        }
        if !read_buf.is_empty() || io.has_replay() {
            // The client already sent more (in hyper's buffer, or replayed and not read yet):
            // serve it at once. A parked connection holds nothing unread.
            io.replay(read_buf);
            continue;
        }
        // Even empty, it can hold hyper's whole read buffer.
        drop(read_buf);
        // Parked: only the TLS stream is held. One byte tells that a request is coming.
        Metrics::inc(&shared.metrics.connections_parked);
        tracing::trace!("keep-alive connection parked");
        let mut first = [0u8; 1];
        let idle_until = state.idle_deadline(limits.idle_timeout);
        tokio::select! {
            r = io.read(&mut first) => match r {
                Ok(0) => return Ok(()),
                Ok(_) => io.replay(bytes::Bytes::copy_from_slice(&first)),
                Err(e) => return Err(Ended::from_error(&e)),
            },
            () = tokio::time::sleep_until(idle_until) => {
                Metrics::inc(&shared.metrics.connections_closed_idle);
                return Ok(());
            }
            () = shared.tokens.graceful.cancelled() => return Ok(()),
        }
    }
}
