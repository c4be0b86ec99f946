//! [`drive`]: runs one hyper connection (HTTP/1.1 or HTTP/2) and carries out what its
//! deadline and shutdown policy decides (server/policy.rs: header, idle, stall, park,
//! drain), and says how it ended ([`Ended`]). It owns the poll mechanics: the shutdown
//! tokens, the wake-ups, the HTTP/2 flush gate and stream queue. The protocol drivers
//! (server/h1.rs, server/h2.rs) call it with their policy; it knows neither.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::server::graceful::GracefulConnection;
use tokio::time::Instant;

use super::frame_watch::FrameFault;
use super::handshake::Tls;
use super::io::{ConnIo, ConnState};
use super::policy::{Ask, Closed, Policy, Step};
use super::shared::Shared;
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

/// Runs a hyper connection under `policy` (server/policy.rs: deadlines and shutdown
/// phases) and the shutdown tokens. The flag says whether it ended because the policy
/// asked it to park.
pub(super) async fn drive<C, Q>(
    mut conn: Pin<Box<C>>,
    state: &ConnState,
    shared: &Shared,
    mut policy: Policy,
    streams: Option<&Q>,
) -> Result<(C::Done, bool), Ended>
where
    C: Serve,
    Q: QueuedStreams,
{
    let metrics = &shared.metrics;
    let rare = Arc::new(Rare::default());
    let rare_waker = std::task::Waker::from(Arc::clone(&rare));
    loop {
        let look_at = match policy.decide(Instant::now(), &state.look()) {
            Step::Serve { look_at } => look_at,
            Step::AskToEnd(ask) => {
                if ask == Ask::Idle {
                    Metrics::inc(&metrics.connections_closed_idle);
                }
                // hyper ends an idle HTTP/1.1 connection at once, an HTTP/2 one after
                // GOAWAY; the policy closes one that does not.
                conn.as_mut().graceful_shutdown();
                continue;
            }
            Step::IdleWhileEnding => {
                Metrics::inc(&metrics.connections_closed_idle);
                continue;
            }
            Step::Close(closed) => {
                Metrics::inc(match closed {
                    Closed::AfterShutdown => &metrics.connections_closed_after_shutdown,
                    Closed::DidNotEnd | Closed::Stalled => &metrics.connections_closed_stalled,
                    Closed::HeaderTimeout => &metrics.connections_closed_header_timeout,
                });
                return Err(Ended::deadline(closed.why()));
            }
        };
        state.set_next_look(look_at);
        let graceful_armed = policy.listens_for_shutdown();
        let graceful = shared.tokens.graceful.cancelled();
        let force = shared.tokens.force.cancelled();
        let wake = state.wake.notified();
        let sleep = tokio::time::sleep_until(look_at);
        tokio::pin!(graceful, force, wake, sleep);
        rare.fired.store(true, Ordering::Relaxed);
        let event = std::future::poll_fn(|cx| {
            // HTTP/2: flushes are put off while hyper runs (io/cork.rs, FlushGate).
            let mut hold = streams.is_some();
            loop {
                state.flush_gate.hold(hold);
                let polled = conn.as_mut().poll(cx);
                state.flush_gate.hold(false);
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
                if hold && state.flush_gate.take_owed() {
                    hold = false;
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
                    .map(|done| (done, policy.parking()))
                    .map_err(|e| Ended::from_error(&e))
            }
            Event::Graceful => {
                // The first request wakes the driver from now on; the policy asks the
                // connection to end once it came (or at once, if it had).
                state.wake_on_first_request();
                policy.shutdown_began(Instant::now());
            }
            Event::Force => return Err(Ended::deadline("shutdown deadline passed")),
            Event::Look => {}
        }
    }
}

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
