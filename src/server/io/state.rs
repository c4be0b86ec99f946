//! [`ConnState`]: a connection's activity, shared by its IO, its service and its driver;
//! the driver decides from a snapshot of it ([`ConnState::look`], server/policy.rs).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::cork::FlushGate;
use crate::app::SendBudget;
use crate::server::frame_watch::FrameFault;
use crate::server::policy::Activity;

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
    /// Set by the first request; see [`ConnState::wake_on_first_request`].
    first_request: AtomicBool,
    /// The driver asked to be woken by the first request (shutdown began before it).
    wake_on_first: AtomicBool,
    /// Wakes the driver when a head starts whose deadline is before its next look.
    pub(crate) wake: tokio::sync::Notify,
    /// Whether a flush of the HTTP/2 cork is put off (io/cork.rs): held by the driver while
    /// it polls the connection, asked by the IO on each flush.
    pub(crate) flush_gate: FlushGate,
    /// The last write to the client could not go out (its receive window is full): the
    /// connection is busy, not idle, until a write succeeds; see `Activity::busy` (server/policy.rs).
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
            flush_gate: FlushGate::default(),
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
            // SeqCst with `look` and `set_next_look`: either the driver's look sees this
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
            // SeqCst with wake_on_first_request and look: either the driver's look sees
            // this request, or this sees that the driver waits for it.
            self.first_request.store(true, Ordering::SeqCst);
            if self.wake_on_first.load(Ordering::SeqCst) {
                self.wake.notify_one();
            }
        }
    }

    /// From now on the first request wakes the driver (shutdown began before it); a
    /// [`ConnState::look`] after this sees a request that came before.
    pub(crate) fn wake_on_first_request(&self) {
        self.wake_on_first.store(true, Ordering::SeqCst);
    }

    /// A response body finished or was dropped.
    pub(crate) fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A snapshot of the connection's activity for the deadline policy
    /// (server/policy.rs). The driver calls it before deciding; until it sets its next
    /// look again ([`ConnState::set_next_look`]) every request head that starts wakes it.
    pub(crate) fn look(&self) -> Activity {
        // SeqCst with `on_read`: either this sees the head that starts now, or `on_read`
        // sees that the driver is looking and wakes it.
        self.next_look.store(u64::MAX, Ordering::SeqCst);
        let head = self.head_started.load(Ordering::SeqCst);
        Activity {
            last_io: self.at(self.last_io.load(Ordering::Relaxed)),
            busy: self.in_flight.load(Ordering::Acquire) > 0
                || self.write_blocked.load(Ordering::Relaxed),
            head_started: (self.head_timeout_ms.is_some() && head > 0).then(|| self.at(head - 1)),
            first_request: self.first_request.load(Ordering::SeqCst),
        }
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

/// Decrements the in-flight count when a response body is done (attached to the body).
pub(crate) struct InFlight(pub(crate) Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}
