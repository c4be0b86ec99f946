//! HTTP/2: hyper's http2 connection, its writes corked and its client's frames followed
//! (server/io/), its streams run in place by [`StreamExec`], under the deadline driver
//! (server/driver.rs).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::{TokioIo, TokioTimer};

use super::driver::{drive, Ended, Io, QueuedStreams};
use super::io::ConnState;
use super::policy::{Policy, Timeouts};
use super::service::ConnService;
use super::shared::Shared;
use crate::telemetry::Metrics;

/// Serves HTTP/2 requests until the connection ends: writes corked until the end of a
/// wake-up, the client's frames followed, streams run in place (see [`StreamExec`]).
pub(super) async fn serve(
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
        Policy::new(Timeouts {
            idle: limits.idle_timeout,
            header: None,
            park_after: None,
        }),
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

impl QueuedStreams for StreamExec {
    fn run_queued(&self) -> bool {
        StreamExec::run_queued(self)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

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
