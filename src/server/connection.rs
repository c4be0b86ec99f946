//! One client connection, from the first byte to the close: what comes before the TLS
//! session (server/handshake.rs: PROXY header, sniff, plaintext answer, handshake), then
//! HTTP/1.1 or HTTP/2 chosen from ALPN, driven with the header, idle and stall deadlines and
//! the shutdown tokens around the per-connection service (server/service.rs). Every failure
//! is confined to this task, logged with the peer, and ends in the close path of `ConnIo`
//! (server/io.rs) (close_notify + lingering close).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::frame_watch::FrameFault;
use super::handshake::{establish, Tls, SHUTDOWN_GRACE};
use super::io::{ConnIo, ConnState, Deadline};
use super::service::{ConnInfo, ConnService};
use super::{Kind, Shared};
use crate::app::budget::{self, SendBudget};
use crate::telemetry::{Metrics, Rejection};

/// Serves one accepted connection to its end.
pub(crate) async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
    kind: Kind,
) {
    // Everything before the TLS session (sniffing, plaintext answers, the handshake) is
    // boxed and freed once done, so that a connection's task is only as large as its
    // serving state (kept small for idle keep-alive connections, see PARK_AFTER).
    // `peer` is the client: the TCP peer, or the address a trusted proxy's header gave.
    let Some((tls, sni, peer)) = Box::pin(establish(tcp, peer, local, &shared, kind)).await else {
        return;
    };
    serve(tls, sni, peer, &shared).await;
}

/// Serves HTTP over an established session, then logs how it ended.
async fn serve(tls: Tls, sni: Option<String>, peer: SocketAddr, shared: &Arc<Shared>) {
    let conn = tls.get_ref().1;
    match conn.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => Metrics::inc(&shared.metrics.handshakes_resumed),
        Some(rustls::HandshakeKind::FullWithHelloRetryRequest) => {
            Metrics::inc(&shared.metrics.handshakes_full_hrr)
        }
        _ => Metrics::inc(&shared.metrics.handshakes_full),
    }
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => Metrics::inc(&shared.metrics.handshakes_tls12),
        _ => Metrics::inc(&shared.metrics.handshakes_tls13),
    }
    let h2 = conn.alpn_protocol() == Some(b"h2");
    tracing::debug!(%peer, sni = sni.as_deref().unwrap_or("none"), version = ?conn.protocol_version(), kind = ?conn.handshake_kind(), h2, "tls established");

    let access = shared.access_log.then(|| {
        Arc::new(ConnInfo {
            peer,
            tls: match conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
                _ => "1.3",
            },
            resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            sni: sni.clone(),
        })
    });
    let state = Arc::new(
        ConnState::new((!h2).then_some(shared.limits.header_timeout)).with_send_budget(
            SendBudget::for_connection(&shared.send_pool, budget::CONNECTION_MAX),
        ),
    );
    let io = ConnIo::new(tls, Arc::clone(&state), shared.tracker.token());
    let svc = ConnService {
        app: shared.app.clone(),
        state: Arc::clone(&state),
        shared: Arc::clone(shared),
        peer,
        h2,
        access,
    };
    let mut result = if h2 {
        serve_h2(io, svc, &state, shared).await
    } else {
        serve_h1(io, svc, &state, shared).await
    };
    if let Err(ended) = result.as_mut() {
        ended.fault = state.frame_fault().cloned();
    }
    match result {
        Ok(()) => {}
        Err(Ended {
            tls: Some(tls),
            why,
            ..
        }) => {
            // A TLS error inside an established session (an alert from the client, a record
            // that failed to decrypt): the failures this server exists to prevent.
            Metrics::inc(&shared.metrics.session_tls_errors);
            tracing::warn!(%peer, sni = sni.as_deref().unwrap_or("none"), h2, tls_error = %tls, reason = %why, "tls error in an established session");
        }
        Err(Ended {
            fault: Some(fault), ..
        }) => {
            match fault {
                FrameFault::TinyWindows { .. } => {
                    Metrics::inc(&shared.metrics.connections_closed_tiny_windows);
                }
                FrameFault::PseudoHeaderInTrailers { .. } => {
                    shared.metrics.rejected(Rejection::StreamError);
                }
            }
            if let Some(suppressed) = shared.warn_limit.allow() {
                tracing::warn!(%peer, reason = %fault, suppressed, "closed a misbehaving HTTP/2 connection");
            }
        }
        Err(Ended { why, .. }) => {
            tracing::debug!(%peer, h2, reason = %why, "connection ended with an error");
        }
    }
}

/// Why an established connection ended early.
struct Ended {
    /// The rustls error in the cause chain, if any.
    tls: Option<String>,
    /// The whole cause chain, or the deadline that closed it.
    why: String,
    /// What the HTTP/2 client did that ended it (server/frame_watch.rs).
    fault: Option<FrameFault>,
}

impl Ended {
    fn deadline(why: &str) -> Self {
        Self {
            tls: None,
            why: why.to_owned(),
            fault: None,
        }
    }

    fn from_error(e: &(dyn std::error::Error + 'static)) -> Self {
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

/// An idle HTTP/1.1 keep-alive connection gives back hyper's buffers (two of 8 KiB) and its
/// serving state after this long without a request, and waits on the TLS stream alone; the
/// next request gets new ones (nginx frees its request buffers the same way). Back-to-back
/// requests never park.
const PARK_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) type Io = ConnIo<Tls>;

/// A hyper connection as [`drive`] runs it.
trait Serve: Future<Output = Result<Self::Done, Self::Error>> {
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

async fn serve_h2(
    mut io: Io,
    svc: ConnService,
    state: &ConnState,
    shared: &Shared,
) -> Result<(), Ended> {
    let limits = &shared.limits;
    io.cork_writes();
    io.watch_frames();
    let exec = StreamExec::new(Arc::clone(&shared.metrics));
    let mut b = hyper::server::conn::http2::Builder::new(exec.clone());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX))
        .initial_stream_window_size(1024 * 1024)
        .initial_connection_window_size(4 * 1024 * 1024)
        .max_send_buf_size(1024 * 1024);
    drive(
        Box::pin(b.serve_connection(TokioIo::new(io), svc)),
        state,
        shared,
        None,
        Some(&exec),
    )
    .await
    .map(|_| ())
}

/// A stream's future as hyper hands it over.
type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs hyper's per-stream futures on the connection's own task: hyper hands each one over
/// while [`drive`] polls the connection; they are queued, and once that poll returns
/// `drive` polls each queued stream once ([`StreamExec::run_queued`]) and spawns only those
/// not finished then.
///
/// A response from the asset table is ready at once and its body fits the stream's window,
/// so nearly every stream completes in that first poll: no task allocated, scheduled and
/// woken per request. Running them after the connection's poll rather than as they arrive
/// lets the responses to one read's worth of requests leave in one flush (h2 flushes on
/// each accept, so running them in place cost a `writev` per response). A stream that must
/// wait (flow control, a file chunk from disk) is spawned as with `TokioExecutor`; tokio
/// polls a new task at once, so it registers its real waker then (the first poll's waker
/// is a no-op). A panic in that first poll is caught and resets that stream only, as it
/// would in its own task.
#[derive(Clone)]
struct StreamExec {
    metrics: Arc<Metrics>,
    queue: Arc<std::sync::Mutex<Vec<StreamFuture>>>,
}

impl StreamExec {
    fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            queue: Arc::default(),
        }
    }

    /// Polls every queued stream once, spawning the unfinished; whether there were any.
    fn run_queued(&self) -> bool {
        let batch = match self.queue.lock() {
            Ok(mut q) if !q.is_empty() => std::mem::take(&mut *q),
            _ => return false,
        };
        for fut in batch {
            self.run(fut);
        }
        true
    }

    fn run(&self, mut fut: StreamFuture) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)))
        {
            Ok(Poll::Ready(())) => {}
            Ok(Poll::Pending) => {
                tokio::spawn(fut);
            }
            Err(_) => {
                Metrics::inc(&self.metrics.connection_panics);
                tracing::error!("panic while serving an HTTP/2 stream; the stream is reset");
            }
        }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        match self.queue.lock() {
            Ok(mut q) => q.push(Box::pin(fut)),
            // Never poisoned (nothing panics while holding it); if it were, run it now.
            Err(_) => self.run(Box::pin(fut)),
        }
    }
}

/// hyper's request header count limit when none is set (`proto::h1::role`).
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// Serves HTTP/1.1 requests; between bursts of requests the connection parks (see
/// [`PARK_AFTER`]) until the next request's first byte, the idle timeout or shutdown.
async fn serve_h1(
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
    loop {
        // Each round serves at least one request or parks on the socket; the budget makes
        // sure no sequence of rounds that never waits (bytes replayed from memory) can hold
        // the worker thread.
        tokio::task::coop::consume_budget().await;
        let conn = H1(Some(b.serve_connection(TokioIo::new(io), svc.clone())));
        let (parts, parked) = drive(Box::pin(conn), state, shared, Some(PARK_AFTER), None).await?;
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

/// Runs a hyper connection under the deadlines and shutdown tokens; with `park_after`, an
/// idle connection is asked to end after that long (to park, see [`serve_h1`]). The flag
/// says whether it ended because it was asked to park.
async fn drive<C>(
    mut conn: Pin<Box<C>>,
    state: &ConnState,
    shared: &Shared,
    park_after: Option<std::time::Duration>,
    streams: Option<&StreamExec>,
) -> Result<(C::Done, bool), Ended>
where
    C: Serve,
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
                if streams.is_some_and(StreamExec::run_queued) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> StreamExec {
        StreamExec::new(Arc::new(Metrics::default()))
    }

    #[tokio::test]
    async fn handed_over_streams_run_in_place_when_the_queue_runs() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let e = exec();
        for _ in 0..3 {
            let r = Arc::clone(&ran);
            hyper::rt::Executor::execute(&e, async move {
                r.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Queued, not run, while the connection is being polled.
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert!(e.run_queued());
        // No yield in between: they ran inside run_queued.
        assert_eq!(ran.load(Ordering::SeqCst), 3);
        assert!(!e.run_queued());
    }

    #[tokio::test]
    async fn a_waiting_stream_is_spawned_and_woken() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u32>();
        let e = exec();
        hyper::rt::Executor::execute(&e, async move {
            let v = rx.await.unwrap();
            done_tx.send(v + 1).unwrap();
        });
        assert!(e.run_queued());
        // The first poll registered a no-op waker; the spawned task must still see this.
        tx.send(41).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), done_rx).await;
        assert_eq!(got.unwrap().unwrap(), 42);
    }

    #[tokio::test]
    async fn a_panicking_stream_is_counted_and_contained() {
        let e = exec();
        hyper::rt::Executor::execute(&e, async { panic!("stream panic (expected by the test)") });
        assert!(e.run_queued());
        assert_eq!(e.metrics.connection_panics.load(Ordering::Relaxed), 1);
    }
}
