//! [`drive`]: runs one hyper connection (HTTP/1.1 or HTTP/2) under the connection's
//! deadlines (header, idle, stall, park) and the shutdown tokens, and says how it ended
//! ([`Ended`]). The protocol drivers (server/h1.rs, server/h2.rs) call it; it knows neither.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::server::graceful::GracefulConnection;
use tokio::time::Instant;

use super::frame_watch::FrameFault;
use super::handshake::{Tls, SHUTDOWN_GRACE};
use super::io::{ConnIo, ConnState, Deadline};
use super::Shared;
use crate::telemetry::Metrics;

/// Why an established connection ended early.
pub(super) struct Ended {
    /// The rustls error in the cause chain, if any.
    pub(super) tls: Option<String>,
    /// The whole cause chain, or the deadline that closed it.
    pub(super) why: String,
    /// What the HTTP/2 client did that ended it (server/frame_watch.rs).
    pub(super) fault: Option<FrameFault>,
}

impl Ended {
    pub(super) fn deadline(why: &str) -> Self {
        Self {
            tls: None,
            why: why.to_owned(),
            fault: None,
        }
    }

    pub(super) fn from_error(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut why = e.to_string();
        let mut tls = None;
        let mut cur = Some(e);
        while let Some(err) = cur {
            let text = err.to_string();
            if !why.ends_with(&text) {
                why.push_str(": ");
                why.push_str(&text);
            }
            let inner = err
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<rustls::Error>());
            if let Some(t) = err.downcast_ref::<rustls::Error>().or(inner) {
                tls = Some(format!("{t:?}"));
                if inner.is_some() {
                    why.push_str(": ");
                    why.push_str(&t.to_string());
                }
            }
            cur = err.source();
        }
        Self {
            tls,
            why,
            fault: None,
        }
    }
}

/// How long an idle connection asked to close may take to do so.
const IDLE_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Streams a protocol hands over while [`drive`] polls its connection, run once that poll
/// returns (HTTP/2's stream executor, server/h2.rs).
pub(super) trait QueuedStreams {
    /// Runs what was queued; whether anything was.
    fn run_queued(&self) -> bool;
}

/// No streams of its own (HTTP/1.1).
pub(super) struct NoStreams;

impl QueuedStreams for NoStreams {
    fn run_queued(&self) -> bool {
        false
    }
}

/// The stream the protocol drivers serve: the TLS session behind [`ConnIo`].
pub(crate) type Io = ConnIo<Tls>;

/// A hyper connection as [`drive`] runs it.
pub(super) trait Serve: Future<Output = Result<Self::Done, Self::Error>> {
    /// What a connection that ended without error leaves behind.
    type Done;
    /// hyper's error.
    type Error: std::error::Error + 'static;
    /// Finish what is in flight, then end (hyper's graceful shutdown).
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C> Serve for C
where
    C: GracefulConnection,
    C::Error: std::error::Error + 'static,
{
    type Done = ();
    type Error = C::Error;
    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

/// Runs a hyper connection under the deadlines and shutdown tokens; with `park_after`, an
/// idle connection is asked to end after that long (to park, see [`serve_h1`]). The flag
/// says whether it ended because it was asked to park.
pub(super) async fn drive<C, Q>(
    mut conn: Pin<Box<C>>,
    state: &ConnState,
    shared: &Shared,
    park_after: Option<std::time::Duration>,
    streams: Option<&Q>,
) -> Result<(C::Done, bool), Ended>
where
    C: Serve,
    Q: QueuedStreams,
{
    let mut closing = false;
    let mut parking = false;
    // Shutdown began before this session's first request: it is awaited until then.
    let mut first_request_until: Option<Instant> = None;
    // Set once an idle connection was asked to close: hyper closes an idle HTTP/1 connection
    // at once and an HTTP/2 one after GOAWAY; one that does not by then is dropped.
    let mut grace_until: Option<Instant> = None;
    // Set when shutdown asked the connection to close (GOAWAY, `Connection: close`): once no
    // request is in flight it gets SHUTDOWN_GRACE to close by itself, then it is closed
    // (close_notify). hyper's HTTP/2 graceful shutdown waits for the client's answer to its
    // PING, so a client that never answers held the connection, and the process, until the
    // shutdown deadline.
    let mut draining_since: Option<Instant> = None;
    let limits = &shared.limits;
    let rare = Arc::new(Rare::default());
    let rare_waker = std::task::Waker::from(Arc::clone(&rare));
    loop {
        if let Some(quiet_at) = draining_since.and_then(|since| state.quiet_since(since)) {
            if Instant::now() >= quiet_at + SHUTDOWN_GRACE {
                Metrics::inc(&shared.metrics.connections_closed_after_shutdown);
                return Err(Ended::deadline(
                    "closed after shutdown: nothing in flight and the client did not close",
                ));
            }
        }
        let next = match grace_until {
            Some(until) if Instant::now() >= until => {
                Metrics::inc(&shared.metrics.connections_closed_stalled);
                return Err(Ended::deadline(
                    "did not close within the grace period after idling",
                ));
            }
            Some(until) => until,
            None => match state.check(
                limits.idle_timeout,
                park_after.filter(|_| !closing && first_request_until.is_none()),
            ) {
                Deadline::Next(at) => at,
                Deadline::Park => {
                    // hyper ends an idle HTTP/1.1 connection at once when asked.
                    closing = true;
                    parking = true;
                    conn.as_mut().graceful_shutdown();
                    grace_until = Some(Instant::now() + IDLE_CLOSE_GRACE);
                    continue;
                }
                Deadline::Idle => {
                    Metrics::inc(&shared.metrics.connections_closed_idle);
                    if !closing {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    grace_until = Some(Instant::now() + IDLE_CLOSE_GRACE);
                    continue;
                }
                Deadline::Stalled => {
                    Metrics::inc(&shared.metrics.connections_closed_stalled);
                    return Err(Ended::deadline("no progress for the idle timeout"));
                }
                Deadline::HeaderTimeout => {
                    Metrics::inc(&shared.metrics.connections_closed_header_timeout);
                    return Err(Ended::deadline(
                        "request head not complete within the header timeout",
                    ));
                }
            },
        };
        if let Some(until) = first_request_until {
            if !closing && (state.wait_first_request() || Instant::now() >= until) {
                closing = true;
                draining_since = Some(Instant::now());
                conn.as_mut().graceful_shutdown();
            }
        }
        let next = first_request_until
            .filter(|_| !closing)
            .map_or(next, |u| u.min(next));
        // While draining, the end of the last request is not an event the driver hears of:
        // it looks again every DRAIN_LOOK (shutdown only).
        let next = draining_since.map_or(next, |_| next.min(Instant::now() + DRAIN_LOOK));
        state.set_next_look(next);
        let graceful_armed = !closing && first_request_until.is_none();
        let graceful = shared.tokens.graceful.cancelled();
        let force = shared.tokens.force.cancelled();
        let wake = state.wake.notified();
        let sleep = tokio::time::sleep_until(next);
        tokio::pin!(graceful, force, wake, sleep);
        rare.fired.store(true, Ordering::Relaxed);
        let event = std::future::poll_fn(|cx| {
            // HTTP/2: flushes are put off while hyper runs (see ConnState::defer_flushes).
            let mut defer = streams.is_some();
            loop {
                state.defer_flushes(defer);
                let polled = conn.as_mut().poll(cx);
                state.defer_flushes(false);
                if let Poll::Ready(res) = polled {
                    return Poll::Ready(Event::Done(res));
                }
                // The HTTP/2 streams hyper accepted in that poll: their responses are
                // queued in the connection, which the next poll (asked for here) writes
                // with what is held, in one go.
                if streams.is_some_and(QueuedStreams::run_queued) {
                    cx.waker().wake_by_ref();
                    break;
                }
                // Nothing more to run: the flush that was put off happens now.
                if defer && state.take_flush_owed() {
                    defer = false;
                    continue;
                }
                break;
            }
            // The events below are rare; they are polled only after one of them woke the
            // task (or on the first poll), not on every wake-up of the connection.
            rare.task.register(cx.waker());
            if !rare.fired.swap(false, Ordering::AcqRel) {
                return Poll::Pending;
            }
            let mut rcx = Context::from_waker(&rare_waker);
            if graceful_armed && graceful.as_mut().poll(&mut rcx).is_ready() {
                return Poll::Ready(Event::Graceful);
            }
            if force.as_mut().poll(&mut rcx).is_ready() {
                return Poll::Ready(Event::Force);
            }
            if wake.as_mut().poll(&mut rcx).is_ready() || sleep.as_mut().poll(&mut rcx).is_ready() {
                return Poll::Ready(Event::Look);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Done(res) => {
                return res
                    .map(|done| (done, parking))
                    .map_err(|e| Ended::from_error(&e))
            }
            Event::Graceful => {
                if state.wait_first_request() {
                    closing = true;
                    draining_since = Some(Instant::now());
                    conn.as_mut().graceful_shutdown();
                } else {
                    // A client that connected before shutdown gets its first request
                    // served (then `Connection: close` / GOAWAY), as nginx does.
                    first_request_until = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            }
            Event::Force => return Err(Ended::deadline("shutdown deadline passed")),
            Event::Look => {}
        }
    }
}

/// How often a draining connection (shutdown began) looks whether its last request ended.
const DRAIN_LOOK: std::time::Duration = std::time::Duration::from_millis(100);

/// What woke [`drive`].
enum Event<T> {
    /// The connection ended.
    Done(T),
    /// Shutdown began.
    Graceful,
    /// The shutdown deadline passed.
    Force,
    /// A deadline may be due, or a request head started: check again.
    Look,
}

/// Gates [`drive`]'s rare events: set when one of them woke the task.
#[derive(Default)]
struct Rare {
    fired: AtomicBool,
    task: futures_util::task::AtomicWaker,
}

impl std::task::Wake for Rare {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}
