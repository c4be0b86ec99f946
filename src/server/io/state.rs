//! [`ConnState`]: a connection's activity, shared by its IO, its service and its driver,
//! and the deadline verdicts drawn from it ([`Deadline`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::SendBudget;
use crate::server::frame_watch::FrameFault;

/// Per-connection activity shared by the IO, the service and the deadline driver.
#[derive(Debug)]
pub(crate) struct ConnState {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last byte read or written.
    last_io: AtomicU64,
    /// Requests whose response body is not finished.
    in_flight: AtomicU32,
    /// Milliseconds since `epoch` + 1 when the first byte of a request head arrived on an
    /// idle HTTP/1 connection; 0 when no head is being read.
    head_started: AtomicU64,
    /// The header timeout in ms when heads are tracked (HTTP/1).
    head_timeout_ms: Option<u64>,
    /// Milliseconds since `epoch` when the driver will look at the deadlines next
    /// (`u64::MAX` while it is looking): a head that starts notifies it only when the
    /// header deadline comes before that, so back-to-back requests do not wake it.
    next_look: AtomicU64,
    /// Set by the first request; see [`ConnState::wait_first_request`].
    first_request: AtomicBool,
    /// The driver asked to be woken by the first request (shutdown began before it).
    wake_on_first: AtomicBool,
    /// Wakes the driver when a head starts whose deadline is before its next look.
    pub(crate) wake: tokio::sync::Notify,
    /// Set by the driver while it polls the connection: a flush of corked writes is put off
    /// until the driver's last poll of this wake-up ([`ConnState::defer_flushes`]).
    pub(super) defer_flush: AtomicBool,
    /// A flush was put off and the cork still holds bytes.
    pub(super) flush_owed: AtomicBool,
    /// The last write to the client could not go out (its receive window is full): the
    /// connection is busy, not idle, until a write succeeds; see [`ConnState::check`].
    pub(super) write_blocked: AtomicBool,
    /// What the HTTP/2 client did that ended the connection (server/frame_watch.rs); h2
    /// keeps only the text of an IO error, so the driver learns why from here.
    pub(super) frame_fault: std::sync::OnceLock<FrameFault>,
    /// The connection's share of the file bytes read for responses and not yet sent
    /// (app/budget.rs); kept here because every response already holds this state.
    pub(crate) send_budget: Option<SendBudget>,
}

impl ConnState {
    /// `head_timeout`: track request heads (HTTP/1) against this timeout.
    pub(crate) fn new(head_timeout: Option<Duration>) -> Self {
        Self {
            epoch: Instant::now(),
            last_io: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            head_started: AtomicU64::new(0),
            head_timeout_ms: head_timeout.map(millis),
            next_look: AtomicU64::new(u64::MAX),
            first_request: AtomicBool::new(false),
            wake_on_first: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            defer_flush: AtomicBool::new(false),
            flush_owed: AtomicBool::new(false),
            write_blocked: AtomicBool::new(false),
            frame_fault: std::sync::OnceLock::new(),
            send_budget: None,
        }
    }

    /// Response bodies that stream a file take their chunks from `budget`.
    #[must_use]
    pub(crate) fn with_send_budget(mut self, budget: SendBudget) -> Self {
        self.send_budget = Some(budget);
        self
    }

    /// While `on`, a flush of a corked [`ConnIo`] that holds bytes answers at once and
    /// leaves them held. hyper's HTTP/2 flushes before each response body over 1 KiB, so
    /// responses to one read of requests would still leave one write each; the driver sets
    /// this while it polls the connection, then (when [`ConnState::take_flush_owed`] says a
    /// flush was put off) polls it once more with it off, and that poll's flush (h2 flushes
    /// at the end of every poll) writes them all at once. Only the connection's own task
    /// reads and writes these flags.
    pub(crate) fn defer_flushes(&self, on: bool) {
        self.defer_flush.store(on, Ordering::Relaxed);
    }

    /// Whether a flush was put off since the last real one (and clears the flag).
    pub(crate) fn take_flush_owed(&self) -> bool {
        self.flush_owed.swap(false, Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    pub(super) fn on_read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        let Some(head_timeout) = self.head_timeout_ms else {
            return;
        };
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            // SeqCst with `check` and `set_next_look`: either the driver's check sees this
            // head, or this sees the next look the driver set without it.
            self.head_started.store(now + 1, Ordering::SeqCst);
            if now.saturating_add(head_timeout) < self.next_look.load(Ordering::SeqCst) {
                self.wake.notify_one();
            }
        }
    }

    pub(super) fn on_write(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
        if self.write_blocked.load(Ordering::Relaxed) {
            self.write_blocked.store(false, Ordering::Relaxed);
        }
    }

    /// What the client did, when the connection was ended for it.
    pub(crate) fn frame_fault(&self) -> Option<&FrameFault> {
        self.frame_fault.get()
    }

    /// A write found the client's receive window full.
    pub(super) fn on_write_blocked(&self) {
        self.write_blocked.store(true, Ordering::Relaxed);
    }

    /// A request reached the service: its head is complete.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
        if !self.first_request.load(Ordering::Relaxed) {
            // SeqCst with wait_first_request: one of the two sides sees the other's store.
            self.first_request.store(true, Ordering::SeqCst);
            if self.wake_on_first.load(Ordering::SeqCst) {
                self.wake.notify_one();
            }
        }
    }

    /// Whether a request has arrived; if not, the next one wakes the driver.
    pub(crate) fn wait_first_request(&self) -> bool {
        self.wake_on_first.store(true, Ordering::SeqCst);
        self.first_request.load(Ordering::SeqCst)
    }

    /// A response body finished or was dropped.
    pub(crate) fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// What the deadlines say now, and when to look again. The header deadline applies
    /// when a header timeout was given to [`ConnState::new`].
    pub(crate) fn check(&self, idle_timeout: Duration, park_after: Option<Duration>) -> Deadline {
        self.next_look.store(u64::MAX, Ordering::SeqCst);
        let now = self.now_ms();
        let last = self.last_io.load(Ordering::Relaxed);
        // A response in flight, or written and waiting for the client to read it (hyper
        // counts a small response as done once it is in its write buffer): never idle, so
        // never parked (a parked connection must hold no buffered bytes); stalled when no
        // byte moves for the idle timeout.
        if self.in_flight.load(Ordering::Acquire) > 0 || self.write_blocked.load(Ordering::Relaxed)
        {
            let due = last.saturating_add(millis(idle_timeout));
            return if now >= due {
                Deadline::Stalled
            } else {
                Deadline::Next(self.at(due))
            };
        }
        let head = self.head_started.load(Ordering::SeqCst);
        let idle_due = last.saturating_add(millis(idle_timeout));
        if let Some(header_timeout) = self.head_timeout_ms.filter(|_| head > 0) {
            let due = (head - 1).saturating_add(header_timeout);
            if now >= due {
                return Deadline::HeaderTimeout;
            }
            return Deadline::Next(self.at(due.min(idle_due)));
        }
        if now >= idle_due {
            return Deadline::Idle;
        }
        match park_after.map(|p| last.saturating_add(millis(p))) {
            Some(park_due) if now >= park_due => Deadline::Park,
            Some(park_due) => Deadline::Next(self.at(park_due.min(idle_due))),
            None => Deadline::Next(self.at(idle_due)),
        }
    }

    /// With no request in flight and no write waiting for the client: since when, counting
    /// from `since` at the earliest (the last byte moved, or `since`); `None` when busy.
    pub(crate) fn quiet_since(&self, since: Instant) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 || self.write_blocked.load(Ordering::Relaxed)
        {
            return None;
        }
        Some(since.max(self.at(self.last_io.load(Ordering::Relaxed))))
    }

    /// The driver will look at the deadlines again at `at` (or earlier, when notified).
    pub(crate) fn set_next_look(&self, at: Instant) {
        let ms = millis(at.saturating_duration_since(self.epoch));
        self.next_look.store(ms, Ordering::SeqCst);
    }

    /// When an idle connection reaches its idle timeout.
    pub(crate) fn idle_deadline(&self, idle_timeout: Duration) -> Instant {
        self.at(self
            .last_io
            .load(Ordering::Relaxed)
            .saturating_add(millis(idle_timeout)))
    }
}

/// `d` in whole milliseconds, saturating (deadlines are kept as milliseconds since a
/// connection's epoch).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Verdict of [`ConnState::check`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Nothing due before this instant.
    Next(Instant),
    /// No request in flight and nothing read for the idle timeout.
    Idle,
    /// No request in flight and nothing read for the park delay (HTTP/1.1): time to give
    /// back the per-connection HTTP buffers while the connection waits.
    Park,
    /// A request head started and did not complete in time.
    HeaderTimeout,
    /// A response is in flight but no byte moved for the idle timeout.
    Stalled,
}

/// Decrements the in-flight count when a response body is done (attached to the body).
pub(crate) struct InFlight(pub(crate) Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}
